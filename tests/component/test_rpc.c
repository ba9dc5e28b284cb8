/*
 * Component tests of RPC calls between two muxes on loopback in one loop:
 * replies, concurrency on one connection, reordering, timeouts, late
 * replies, refused connections, shutdown and hostile frames.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include <raft.h>
#include <uv.h>

#include "harness.h"
#include "rq_err.h"
#include "rq_mux.h"
#include "rq_rpc.h"
#include "rq_wire.h"

/* The tests use ports base_port to base_port + 9 (harness_pick_ports()). */
static int base_port;
#define PORT_A (base_port + 0)
#define PORT_B (base_port + 1)
#define PORT_C (base_port + 2)
#define PORT_NOBODY (base_port + 9)
#define CLUSTER_ID 5
#define SECRET "rpc-test-secret-0123456789abcdef-0123"
#define MAX_CALLS 256
#define MAX_BODY 64

enum mode { MODE_ECHO, MODE_HOLD };

struct env;

struct result {
    struct env *e;
    unsigned count; /* Callbacks received: must end at exactly 1. */
    int status;
    uint8_t body[MAX_BODY];
    size_t len;
    unsigned order; /* When it completed, counting from 1. */
};

struct env {
    uv_loop_t loop;
    uv_timer_t wake;
    char addr_a[32];
    char addr_b[32];
    struct rq_mux *mux_a;
    struct rq_mux *mux_b;
    struct rq_rpc *rpc_a;
    struct rq_rpc *rpc_b;
    bool mux_a_closed, mux_b_closed, rpc_a_closed, rpc_b_closed;
    enum mode mode;
    struct rq_rpc_call *held[MAX_CALLS];
    unsigned n_held;
    uint64_t last_sender;
    struct result results[MAX_CALLS];
    unsigned completed;
};

static bool run_until(struct env *e, harness_cond cond, void *arg, unsigned ms)
{
    return harness_run_until(&e->loop, &e->wake, cond, arg, ms);
}

static void handler(void *data, struct rq_rpc_call *call, uint32_t method,
                    const uint8_t *body, size_t len)
{
    struct env *e = data;
    e->last_sender = rq_rpc_call_sender(call);
    if (e->mode == MODE_HOLD) {
        assert_true(e->n_held < MAX_CALLS);
        e->held[e->n_held++] = call;
        return;
    }
    /* Echo: the method comes back as the status, the body as the body. */
    rq_rpc_reply(call, (int)method, body, len);
}

static void on_done(void *data, int status, const uint8_t *body, size_t len)
{
    struct result *res = data;
    res->count++;
    res->status = status;
    res->len = len;
    assert_true(len <= MAX_BODY);
    if (len > 0) {
        memcpy(res->body, body, len);
    }
    res->order = ++res->e->completed;
}

static void mux_open(struct env *e, const char *addr, uint64_t id,
                     struct rq_mux **m)
{
    char why[128];
    struct rq_mux_config cfg = {
        .cluster_id = CLUSTER_ID,
        .self_id = id,
        .bind_address = addr,
        .secret = SECRET,
        .connect_timeout_ms = 1000,
    };
    assert_int_equal(rq_mux_new(&e->loop, &cfg, m, why, sizeof why), 0);
}

static void on_flag(void *data)
{
    *(bool *)data = true;
}

static bool flag_set(void *arg)
{
    return *(bool *)arg;
}

static int env_setup(void **state)
{
    struct env *e = calloc(1, sizeof *e);
    assert_non_null(e);
    assert_int_equal(uv_loop_init(&e->loop), 0);
    uv_timer_init(&e->loop, &e->wake);
    snprintf(e->addr_a, sizeof e->addr_a, "127.0.0.1:%d", PORT_A);
    snprintf(e->addr_b, sizeof e->addr_b, "127.0.0.1:%d", PORT_B);
    mux_open(e, e->addr_a, 1, &e->mux_a);
    mux_open(e, e->addr_b, 2, &e->mux_b);
    assert_int_equal(rq_rpc_new(&e->loop, e->mux_a, &e->rpc_a), 0);
    assert_int_equal(rq_rpc_new(&e->loop, e->mux_b, &e->rpc_b), 0);
    rq_rpc_set_handler(e->rpc_a, handler, e);
    rq_rpc_set_handler(e->rpc_b, handler, e);
    *state = e;
    return 0;
}

static void reply_held(struct env *e, int status)
{
    for (unsigned i = 0; i < e->n_held; i++) {
        rq_rpc_reply(e->held[i], status, NULL, 0);
    }
    e->n_held = 0;
}

static int env_teardown(void **state)
{
    struct env *e = *state;
    if (!e->rpc_a_closed && e->rpc_a != NULL) {
        rq_rpc_close(e->rpc_a, on_flag, &e->rpc_a_closed);
    }
    if (!e->rpc_b_closed && e->rpc_b != NULL) {
        rq_rpc_close(e->rpc_b, on_flag, &e->rpc_b_closed);
    }
    /* Held calls are detached now; ending them only frees them. */
    reply_held(e, 0);
    assert_true(run_until(e, flag_set, &e->rpc_a_closed, 5000));
    assert_true(run_until(e, flag_set, &e->rpc_b_closed, 5000));
    if (e->mux_a != NULL) {
        rq_mux_close(e->mux_a, on_flag, &e->mux_a_closed);
        assert_true(run_until(e, flag_set, &e->mux_a_closed, 5000));
    }
    if (e->mux_b != NULL) {
        rq_mux_close(e->mux_b, on_flag, &e->mux_b_closed);
        assert_true(run_until(e, flag_set, &e->mux_b_closed, 5000));
    }
    uv_close((uv_handle_t *)&e->wake, NULL);
    assert_int_equal(harness_drain(&e->loop, 5000), 0);
    assert_int_equal(uv_loop_close(&e->loop), 0);
    free(e);
    return 0;
}

/* ---- Helpers ---- */

/* Starts call @i of the test with a body naming it. */
static void call(struct env *e, unsigned i, const char *address,
                 uint32_t method, unsigned timeout_ms)
{
    char body[32];
    int n = snprintf(body, sizeof body, "call-%u", i);
    struct result *res = &e->results[i];
    memset(res, 0, sizeof *res);
    res->e = e;
    assert_int_equal(rq_rpc_call(e->rpc_a, address, method, body, (size_t)n,
                                 timeout_ms, on_done, res),
                     0);
    /* Never completes inside the call. */
    assert_int_equal(res->count, 0);
}

struct upto {
    struct env *e;
    unsigned n;
};

static bool calls_done(void *arg)
{
    struct upto *u = arg;
    for (unsigned i = 0; i < u->n; i++) {
        if (u->e->results[i].count == 0) {
            return false;
        }
    }
    return true;
}

static bool wait_calls(struct env *e, unsigned n, unsigned ms)
{
    struct upto u = {e, n};
    return run_until(e, calls_done, &u, ms);
}

static bool held_reaches(void *arg)
{
    struct upto *u = arg;
    return u->e->n_held >= u->n;
}

static bool result_done(void *arg)
{
    return ((struct result *)arg)->count > 0;
}

static void assert_echo(struct env *e, unsigned i, uint32_t method)
{
    char body[32];
    int n = snprintf(body, sizeof body, "call-%u", i);
    struct result *res = &e->results[i];
    assert_int_equal(res->count, 1);
    assert_int_equal(res->status, (int)method);
    assert_int_equal(res->len, (size_t)n);
    assert_memory_equal(res->body, body, (size_t)n);
}

/* ---- Tests ---- */

static void test_rpc_call_gets_reply(void **state)
{
    struct env *e = *state;
    call(e, 0, e->addr_b, 7, 5000);
    assert_true(wait_calls(e, 1, 5000));
    assert_echo(e, 0, 7);
    assert_int_equal(e->last_sender, 1);

    /* The other way round, over a connection of its own. */
    struct result back = {.e = e};
    assert_int_equal(
        rq_rpc_call(e->rpc_b, e->addr_a, 9, "x", 1, 5000, on_done, &back), 0);
    assert_true(run_until(e, result_done, &back, 5000));
    assert_int_equal(back.count, 1);
    assert_int_equal(back.status, 9);
    assert_int_equal(e->last_sender, 2);
}

static void test_rpc_many_concurrent_calls_share_one_connection(void **state)
{
    struct env *e = *state;
    struct rq_mux_stats sa, sb;
    enum { N = 200 };

    for (unsigned i = 0; i < N; i++) {
        call(e, i, e->addr_b, 100 + i, 5000);
    }
    assert_true(wait_calls(e, N, 10000));
    for (unsigned i = 0; i < N; i++) {
        assert_echo(e, i, 100 + i);
    }
    rq_mux_stats(e->mux_a, &sa);
    rq_mux_stats(e->mux_b, &sb);
    assert_int_equal(sa.connects, 1);
    assert_int_equal(sb.accepted, 1);
}

static void test_rpc_replies_out_of_order(void **state)
{
    struct env *e = *state;
    struct upto u = {e, 10};
    e->mode = MODE_HOLD;

    for (unsigned i = 0; i < 10; i++) {
        call(e, i, e->addr_b, 1, 5000);
    }
    assert_true(run_until(e, held_reaches, &u, 5000));
    /* Answer the last call first; each reply carries its call's body back
     * so a mix-up would show. */
    for (unsigned i = 10; i-- > 0;) {
        char body[32];
        int n = snprintf(body, sizeof body, "call-%u", i);
        rq_rpc_reply(e->held[i], 1, body, (size_t)n);
    }
    e->n_held = 0;
    assert_true(wait_calls(e, 10, 5000));
    for (unsigned i = 0; i < 10; i++) {
        assert_echo(e, i, 1);
        assert_int_equal(e->results[i].order, 10 - i);
    }
}

static void test_rpc_late_reply_after_timeout(void **state)
{
    struct env *e = *state;
    struct upto u = {e, 1};
    e->mode = MODE_HOLD;

    call(e, 0, e->addr_b, 1, 150);
    assert_true(run_until(e, held_reaches, &u, 5000));
    assert_true(wait_calls(e, 1, 5000));
    assert_int_equal(e->results[0].count, 1);
    assert_int_equal(e->results[0].status, RQ_TIMEOUT);

    /* The reply comes after all; the caller must not hear of it again. A
     * second call on the same connection is answered after it, so once the
     * second is done the late reply has been read and dropped. */
    rq_rpc_reply(e->held[0], 0, "late", 4);
    e->n_held = 0;
    e->mode = MODE_ECHO;
    call(e, 1, e->addr_b, 3, 5000);
    assert_true(wait_calls(e, 2, 5000));
    assert_echo(e, 1, 3);
    assert_int_equal(e->results[0].count, 1);
    assert_int_equal(e->results[0].status, RQ_TIMEOUT);
}

static void test_rpc_nothing_listens_gives_connect_error(void **state)
{
    struct env *e = *state;
    char nobody[32];
    snprintf(nobody, sizeof nobody, "127.0.0.1:%d", PORT_NOBODY);

    call(e, 0, nobody, 1, 5000);
    call(e, 1, nobody, 1, 5000);
    assert_true(wait_calls(e, 2, 5000));
    assert_int_equal(e->results[0].status, RQ_CONNECT);
    assert_int_equal(e->results[1].status, RQ_CONNECT);
    /* A later call dials again, and fails again. */
    call(e, 2, nobody, 1, 5000);
    assert_true(wait_calls(e, 3, 5000));
    assert_int_equal(e->results[2].count, 1);
    assert_int_equal(e->results[2].status, RQ_CONNECT);
    /* An address that cannot be dialed at all. */
    call(e, 3, "not-an-address", 1, 5000);
    assert_true(wait_calls(e, 4, 5000));
    assert_int_equal(e->results[3].status, RQ_CONNECT);
}

static void test_rpc_close_ends_pending_calls_once(void **state)
{
    struct env *e = *state;
    struct upto u = {e, 5};
    char nobody[32];
    snprintf(nobody, sizeof nobody, "127.0.0.1:%d", PORT_NOBODY);
    e->mode = MODE_HOLD;

    for (unsigned i = 0; i < 5; i++) {
        call(e, i, e->addr_b, 1, 5000);
    }
    assert_true(run_until(e, held_reaches, &u, 5000));
    call(e, 5, nobody, 1, 5000); /* Still connecting. */
    rq_rpc_close(e->rpc_a, on_flag, &e->rpc_a_closed);
    assert_true(run_until(e, flag_set, &e->rpc_a_closed, 5000));
    for (unsigned i = 0; i < 6; i++) {
        assert_int_equal(e->results[i].count, 1);
        assert_int_equal(e->results[i].status, RQ_SHUTDOWN);
    }
    /* The server answers anyway: the caller's connection is gone. */
    reply_held(e, 0);
    uv_run(&e->loop, UV_RUN_NOWAIT);
    for (unsigned i = 0; i < 6; i++) {
        assert_int_equal(e->results[i].count, 1);
    }
}

static void test_rpc_server_close_detaches_held_calls(void **state)
{
    struct env *e = *state;
    struct upto u = {e, 3};
    e->mode = MODE_HOLD;

    for (unsigned i = 0; i < 3; i++) {
        call(e, i, e->addr_b, 1, 5000);
    }
    assert_true(run_until(e, held_reaches, &u, 5000));
    rq_rpc_close(e->rpc_b, on_flag, &e->rpc_b_closed);
    assert_true(run_until(e, flag_set, &e->rpc_b_closed, 5000));
    /* Replies to detached calls only free them (ASan checks). */
    reply_held(e, 0);
    /* The callers see their connection close. */
    assert_true(wait_calls(e, 3, 5000));
    for (unsigned i = 0; i < 3; i++) {
        assert_int_equal(e->results[i].count, 1);
        assert_int_equal(e->results[i].status, RQ_CONNECT);
    }
}

static void test_rpc_reconnects_after_failure(void **state)
{
    struct env *e = *state;
    struct rq_mux_stats st;

    call(e, 0, e->addr_b, 1, 5000);
    assert_true(wait_calls(e, 1, 5000));
    assert_echo(e, 0, 1);

    /* The server process goes away ... */
    rq_rpc_close(e->rpc_b, on_flag, &e->rpc_b_closed);
    assert_true(run_until(e, flag_set, &e->rpc_b_closed, 5000));
    rq_mux_close(e->mux_b, on_flag, &e->mux_b_closed);
    assert_true(run_until(e, flag_set, &e->mux_b_closed, 5000));
    call(e, 1, e->addr_b, 1, 5000);
    assert_true(wait_calls(e, 2, 5000));
    assert_int_equal(e->results[1].status, RQ_CONNECT);

    /* ... and comes back on the same port. */
    mux_open(e, e->addr_b, 2, &e->mux_b);
    e->mux_b_closed = false;
    assert_int_equal(rq_rpc_new(&e->loop, e->mux_b, &e->rpc_b), 0);
    e->rpc_b_closed = false;
    rq_rpc_set_handler(e->rpc_b, handler, e);
    call(e, 2, e->addr_b, 4, 5000);
    assert_true(wait_calls(e, 3, 5000));
    assert_echo(e, 2, 4);
    rq_mux_stats(e->mux_a, &st);
    assert_int_equal(st.connects, 2);
}

static void test_rpc_too_big_refused(void **state)
{
    struct env *e = *state;
    static const uint8_t byte = 0;
    struct result res = {.e = e};
    /* The length is checked before the body is read. */
    assert_int_equal(rq_rpc_call(e->rpc_a, e->addr_b, 1, &byte,
                                 RQ_RPC_MAX_FRAME, 1000, on_done, &res),
                     RQ_TOOBIG);
    uv_run(&e->loop, UV_RUN_NOWAIT);
    assert_int_equal(res.count, 0);
}

/* ---- Oversize frames ---- */

struct raw {
    struct rq_mux_connect req;
    uv_stream_t *stream;
    int status;
    bool connected;
    bool eof;
    bool closed;
    uv_write_t w;
    uint8_t hdr[RQ_RPC_HEADER];
    uint8_t sink[64];
};

static void on_raw_closed(uv_handle_t *h)
{
    struct raw *r = h->data;
    r->closed = true;
    raft_free(h);
}

static void on_raw_alloc(uv_handle_t *h, size_t size, uv_buf_t *buf)
{
    struct raw *r = h->data;
    (void)size;
    *buf = uv_buf_init((char *)r->sink, sizeof r->sink);
}

static void on_raw_read(uv_stream_t *s, ssize_t nread, const uv_buf_t *buf)
{
    struct raw *r = s->data;
    (void)buf;
    if (nread < 0) {
        r->eof = true;
        uv_close((uv_handle_t *)s, on_raw_closed);
    }
}

static void on_raw_written(uv_write_t *w, int status)
{
    (void)w;
    (void)status;
}

/* Writes a frame header announcing one byte more than allowed. */
static void raw_send_oversize(struct raw *r, uv_stream_t *s)
{
    memset(r->hdr, 0, sizeof r->hdr);
    rq_wire_put_u32_at(r->hdr, RQ_RPC_MAX_FRAME + 1);
    r->hdr[4] = 1;
    uv_buf_t b = uv_buf_init((char *)r->hdr, sizeof r->hdr);
    assert_int_equal(uv_write(&r->w, s, &b, 1, on_raw_written), 0);
    assert_int_equal(uv_read_start(s, on_raw_alloc, on_raw_read), 0);
}

static void on_raw_connected(struct rq_mux_connect *req, uv_stream_t *stream,
                             int status)
{
    struct raw *r = req->data;
    r->connected = true;
    r->status = status;
    r->stream = stream;
    if (stream != NULL) {
        stream->data = r;
        raw_send_oversize(r, stream);
    }
}

static bool raw_closed(void *arg)
{
    return ((struct raw *)arg)->closed;
}

static void test_rpc_oversize_frame_closes_connection(void **state)
{
    struct env *e = *state;
    struct raw r;
    memset(&r, 0, sizeof r);
    r.req.data = &r;

    /* A caller announcing a frame over the limit is cut off by the server. */
    assert_int_equal(
        rq_mux_connect(e->mux_a, &r.req, RQ_STREAM_RPC, RQ_RPC_SERVICE,
                       e->addr_b, on_raw_connected),
        0);
    assert_true(run_until(e, raw_closed, &r, 5000));
    assert_int_equal(r.status, 0);
    assert_true(r.eof);

    /* The server still serves others. */
    call(e, 0, e->addr_b, 2, 5000);
    assert_true(wait_calls(e, 1, 5000));
    assert_echo(e, 0, 2);
}

/* A fake server that answers every RPC stream with an oversize frame. */
static void on_evil_stream(void *data, uint64_t sender, const char *address,
                           uint64_t service, uv_stream_t *stream)
{
    struct raw *r = data;
    (void)sender;
    (void)address;
    (void)service;
    stream->data = r;
    r->stream = stream;
    raw_send_oversize(r, stream);
}

static void test_rpc_oversize_reply_fails_call(void **state)
{
    struct env *e = *state;
    struct rq_mux *evil;
    bool evil_closed = false;
    char addr_c[32];
    struct raw r;
    memset(&r, 0, sizeof r);

    snprintf(addr_c, sizeof addr_c, "127.0.0.1:%d", PORT_C);
    mux_open(e, addr_c, 3, &evil);
    rq_mux_set_rpc_handler(evil, on_evil_stream, &r);

    uv_update_time(&e->loop);
    uint64_t start = uv_now(&e->loop);
    call(e, 0, addr_c, 1, 5000);
    assert_true(wait_calls(e, 1, 5000));
    /* The caller dropped the connection at once instead of timing out. */
    assert_int_equal(e->results[0].status, RQ_CONNECT);
    uv_update_time(&e->loop);
    assert_true(uv_now(&e->loop) - start < 2000);
    assert_true(run_until(e, raw_closed, &r, 5000));

    rq_mux_close(evil, on_flag, &evil_closed);
    assert_true(run_until(e, flag_set, &evil_closed, 5000));
}

int main(void)
{
    base_port = harness_pick_ports("test_rpc", 10);
    if (base_port == 0) {
        return 1;
    }
#define T(name) cmocka_unit_test_setup_teardown(name, env_setup, env_teardown)
    const struct CMUnitTest tests[] = {
        T(test_rpc_call_gets_reply),
        T(test_rpc_many_concurrent_calls_share_one_connection),
        T(test_rpc_replies_out_of_order),
        T(test_rpc_late_reply_after_timeout),
        T(test_rpc_nothing_listens_gives_connect_error),
        T(test_rpc_close_ends_pending_calls_once),
        T(test_rpc_server_close_detaches_held_calls),
        T(test_rpc_reconnects_after_failure),
        T(test_rpc_too_big_refused),
        T(test_rpc_oversize_frame_closes_connection),
        T(test_rpc_oversize_reply_fails_call),
    };
#undef T
    return cmocka_run_group_tests_name("rpc", tests, NULL, NULL);
}

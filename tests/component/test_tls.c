/*
 * Component tests of the TLS relay on real loopback sockets: two ends in one
 * loop, with certificates made at test time by rq_certs (two CAs, so that a
 * stranger with a certificate of its own CA can knock), and peers that do
 * not speak TLS at all.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include <arpa/inet.h>
#include <sys/stat.h>
#include <unistd.h>
#include <uv.h>

#include "harness.h"
#include "rq_certs.h"
#include "rq_err.h"
#include "rq_tls.h"

#define CHUNK (256u << 10)
#define BULK (8u << 20)
#define FLOOD (16u << 20)
#define PREAMBLE_LEN 136

/* Certificates for the whole file: made once. */
static char dir[64];

static void path_of(char *out, size_t n, const char *name)
{
    snprintf(out, n, "%s/%s", dir, name);
}

/* One end's plaintext stream (or, for a peer without TLS, its socket). */
struct side {
    struct env *e;
    uv_tcp_t s;
    bool open;
    bool closed;
    bool reading;
    bool eof;
    int read_err;
    size_t got;
    bool pattern_ok;
    uint8_t seed;  /* Of what this side writes. */
    uint8_t rseed; /* Of what it reads: the other side's seed. */
    uint8_t first[PREAMBLE_LEN];
    size_t to_write;
    size_t written;
    size_t queued;
    int write_err;
};

struct env {
    uv_loop_t loop;
    uv_timer_t wake;
    uv_tcp_t listener;
    uint16_t port;
    struct rq_tls *server_tls; /* NULL: the server speaks plain TCP. */
    struct rq_tls *client_tls; /* NULL: the client speaks plain TCP. */
    const char *peer_host;
    bool scratch_host; /* Hand rq_tls_wrap() a copy of peer_host that
                          is overwritten and freed as soon as it returns. */
    bool server_reads; /* Start reading the server side at once. */
    uv_connect_t connect;
    int connect_status;
    bool connected;
    struct side srv;
    struct side cli;
    uint8_t rbuf[64 * 1024];
};

struct wbuf {
    uv_write_t w;
    struct side *side;
    size_t len;
    uint8_t data[];
};

static bool run_until(struct env *e, harness_cond cond, void *arg, unsigned ms)
{
    return harness_run_until(&e->loop, &e->wake, cond, arg, ms);
}

static uint8_t pattern(size_t i, uint8_t seed)
{
    return (uint8_t)((i * 7u + (i >> 12) + seed) & 0xff);
}

/* ---- Plaintext ends ---- */

static void on_side_alloc(uv_handle_t *h, size_t suggested, uv_buf_t *buf)
{
    struct side *sd = h->data;
    (void)suggested;
    buf->base = (char *)sd->e->rbuf;
    buf->len = sizeof sd->e->rbuf;
}

static void on_side_read(uv_stream_t *s, ssize_t nread, const uv_buf_t *buf)
{
    struct side *sd = s->data;
    if (nread == 0) {
        return;
    }
    if (nread < 0) {
        if (nread == UV_EOF) {
            sd->eof = true;
        } else {
            sd->read_err = (int)nread;
        }
        uv_read_stop(s);
        sd->reading = false;
        return;
    }
    for (ssize_t i = 0; i < nread; i++) {
        size_t at = sd->got + (size_t)i;
        if (at < PREAMBLE_LEN) {
            sd->first[at] = (uint8_t)buf->base[i];
        }
        if ((uint8_t)buf->base[i] != pattern(at, sd->rseed)) {
            sd->pattern_ok = false;
        }
    }
    sd->got += (size_t)nread;
}

static void side_read(struct side *sd)
{
    if (!sd->reading && sd->open) {
        sd->reading = true;
        assert_int_equal(
            uv_read_start((uv_stream_t *)&sd->s, on_side_alloc, on_side_read),
            0);
    }
}

static void side_init(struct env *e, struct side *sd, uint8_t seed,
                      uint8_t rseed)
{
    memset(sd, 0, sizeof *sd);
    sd->e = e;
    sd->seed = seed;
    sd->rseed = rseed;
    sd->pattern_ok = true;
    sd->s.data = sd;
}

static void on_side_closed(uv_handle_t *h)
{
    struct side *sd = h->data;
    sd->closed = true;
}

static void side_close(struct side *sd)
{
    if (sd->open && !uv_is_closing((uv_handle_t *)&sd->s)) {
        uv_close((uv_handle_t *)&sd->s, on_side_closed);
    }
}

static void on_side_written(uv_write_t *w, int status)
{
    struct wbuf *b = w->data;
    struct side *sd = b->side;
    if (status != 0) {
        sd->write_err = status;
    } else {
        sd->written += b->len;
    }
    free(b);
}

/* Queues @total bytes of the side's pattern, offset from what it queued
 * already. */
static void side_write(struct side *sd, size_t total)
{
    size_t end = sd->queued + total;
    while (sd->queued < end) {
        size_t n = end - sd->queued < CHUNK ? end - sd->queued : CHUNK;
        struct wbuf *b = malloc(sizeof *b + n);
        assert_non_null(b);
        for (size_t i = 0; i < n; i++) {
            b->data[i] = pattern(sd->queued + i, sd->seed);
        }
        b->side = sd;
        b->len = n;
        b->w.data = b;
        uv_buf_t buf = uv_buf_init((char *)b->data, (unsigned)n);
        int rv =
            uv_write(&b->w, (uv_stream_t *)&sd->s, &buf, 1, on_side_written);
        if (rv != 0) {
            free(b);
            sd->write_err = rv;
            return;
        }
        sd->queued += n;
    }
}

/* ---- Server and client ---- */

static void on_connection(uv_stream_t *server, int status)
{
    struct env *e = server->data;
    char why[256];
    assert_int_equal(status, 0);
    if (e->server_tls == NULL) {
        uv_tcp_init(&e->loop, &e->srv.s);
        assert_int_equal(uv_accept(server, (uv_stream_t *)&e->srv.s), 0);
    } else {
        uv_tcp_t *net = malloc(sizeof *net);
        assert_non_null(net);
        uv_tcp_init(&e->loop, net);
        assert_int_equal(uv_accept(server, (uv_stream_t *)net), 0);
        int rv = rq_tls_wrap(e->server_tls, net, free, RQ_TLS_SERVER, NULL,
                             &e->srv.s, why, sizeof why);
        assert_int_equal(rv, 0);
    }
    e->srv.s.data = &e->srv;
    e->srv.open = true;
    if (e->server_reads) {
        side_read(&e->srv);
    }
}

static void on_connect(uv_connect_t *req, int status)
{
    struct env *e = req->data;
    char why[256];
    e->connect_status = status;
    e->connected = true;
    assert_int_equal(status, 0);
    if (e->client_tls != NULL) {
        uv_tcp_t *net = (uv_tcp_t *)req->handle;
        char *host = e->scratch_host ? strdup(e->peer_host) : NULL;
        int rv = rq_tls_wrap(e->client_tls, net, free, RQ_TLS_CLIENT,
                             host != NULL ? host : e->peer_host, &e->cli.s, why,
                             sizeof why);
        assert_int_equal(rv, 0);
        if (host != NULL) {
            /* Overwritten, as the mux's stack buffer is by its next
             * call, then freed. */
            snprintf(host, strlen(host) + 1, "%s", "x.example");
            free(host);
        }
    }
    e->cli.s.data = &e->cli;
    e->cli.open = true;
    side_read(&e->cli);
}

static void client_start(struct env *e)
{
    struct sockaddr_in addr;
    uv_tcp_t *tcp;
    uv_ip4_addr("127.0.0.1", e->port, &addr);
    if (e->client_tls != NULL) {
        tcp = malloc(sizeof *tcp);
        assert_non_null(tcp);
    } else {
        tcp = &e->cli.s;
    }
    uv_tcp_init(&e->loop, tcp);
    tcp->data = e;
    e->connect.data = e;
    assert_int_equal(
        uv_tcp_connect(&e->connect, tcp, (struct sockaddr *)&addr, on_connect),
        0);
}

static struct rq_tls *load(const char *node, const char *ca,
                           unsigned handshake_ms)
{
    char cert[128], key[128], cafile[128], why[256];
    char name[32];
    struct rq_tls *tls = NULL;
    snprintf(name, sizeof name, "%s.crt", node);
    path_of(cert, sizeof cert, name);
    snprintf(name, sizeof name, "%s.key", node);
    path_of(key, sizeof key, name);
    snprintf(name, sizeof name, "%s.crt", ca);
    path_of(cafile, sizeof cafile, name);
    struct rq_tls_config cfg = {cert, key, cafile, handshake_ms};
    int rv = rq_tls_new(&cfg, &tls, why, sizeof why);
    if (rv != 0) {
        fail_msg("rq_tls_new(%s): %s", node, why);
    }
    return tls;
}

static int env_setup(void **state)
{
    struct env *e = calloc(1, sizeof *e);
    struct sockaddr_in addr;
    struct sockaddr_storage ss;
    int len = sizeof ss;

    assert_non_null(e);
    assert_int_equal(uv_loop_init(&e->loop), 0);
    uv_timer_init(&e->loop, &e->wake);
    side_init(e, &e->srv, 11, 29);
    side_init(e, &e->cli, 29, 11);
    e->server_reads = true;
    e->peer_host = "127.0.0.1";
    uv_tcp_init(&e->loop, &e->listener);
    e->listener.data = e;
    uv_ip4_addr("127.0.0.1", 0, &addr);
    assert_int_equal(uv_tcp_bind(&e->listener, (struct sockaddr *)&addr, 0), 0);
    assert_int_equal(uv_listen((uv_stream_t *)&e->listener, 16, on_connection),
                     0);
    uv_tcp_getsockname(&e->listener, (struct sockaddr *)&ss, &len);
    e->port = ntohs(((struct sockaddr_in *)&ss)->sin_port);
    *state = e;
    return 0;
}

static void close_any(uv_handle_t *h, void *arg)
{
    (void)arg;
    if (!uv_is_closing(h)) {
        uv_close(h, NULL);
    }
}

static bool relays_gone(void *arg)
{
    struct env *e = arg;
    struct rq_tls_stats a = {0}, b = {0};
    if (e->server_tls != NULL) {
        rq_tls_stats(e->server_tls, &a);
    }
    if (e->client_tls != NULL) {
        rq_tls_stats(e->client_tls, &b);
    }
    return a.relays == 0 && b.relays == 0;
}

static int env_teardown(void **state)
{
    struct env *e = *state;
    side_close(&e->srv);
    side_close(&e->cli);
    /* Every relay ends once its plaintext stream is closed. */
    bool gone = run_until(e, relays_gone, e, 5000);
    uv_walk(&e->loop, close_any, NULL);
    while (uv_run(&e->loop, UV_RUN_NOWAIT) != 0) {
    }
    assert_int_equal(uv_loop_close(&e->loop), 0);
    rq_tls_free(e->server_tls);
    if (e->client_tls != e->server_tls) {
        rq_tls_free(e->client_tls);
    }
    free(e);
    assert_true(gone);
    return 0;
}

/* ---- Conditions ---- */

static bool both_got_bulk(void *arg)
{
    struct env *e = arg;
    return e->srv.got >= BULK && e->cli.got >= BULK;
}

static bool srv_got_flood(void *arg)
{
    struct env *e = arg;
    return e->srv.got >= FLOOD;
}

static bool both_ended(void *arg)
{
    struct env *e = arg;
    return (e->srv.eof || e->srv.read_err != 0) &&
           (e->cli.eof || e->cli.read_err != 0);
}

static bool srv_ended(void *arg)
{
    struct env *e = arg;
    return e->srv.eof || e->srv.read_err != 0;
}

static bool cli_ended(void *arg)
{
    struct env *e = arg;
    return e->cli.eof || e->cli.read_err != 0;
}

/* The preamble arrived, or the client's stream ended without it. */
static bool srv_got_preamble(void *arg)
{
    struct env *e = arg;
    return e->srv.got >= PREAMBLE_LEN || e->cli.eof || e->cli.read_err != 0;
}

static bool connected(void *arg)
{
    struct env *e = arg;
    return e->connected;
}

static bool srv_open(void *arg)
{
    struct env *e = arg;
    return e->srv.open;
}

static bool never(void *arg)
{
    (void)arg;
    return false;
}

struct max_net {
    struct env *e;
    size_t max;
};

/* The largest write queue of a TCP handle that is neither end's
 * plaintext stream nor the listener: a relay's connection. */
static void net_queue(uv_handle_t *h, void *arg)
{
    struct max_net *m = arg;
    if (h->type != UV_TCP || h == (uv_handle_t *)&m->e->srv.s ||
        h == (uv_handle_t *)&m->e->cli.s ||
        h == (uv_handle_t *)&m->e->listener) {
        return;
    }
    size_t q = ((uv_stream_t *)h)->write_queue_size;
    if (q > m->max) {
        m->max = q;
    }
}

/* ---- Tests ---- */

/* Eight MiB each way at once, both sides verified against one CA; then
 * the client closes, the server reads EOF after every byte, and both
 * relays free themselves. */
static void test_tls_bulk_both_ways(void **state)
{
    struct env *e = *state;
    struct rq_tls_stats st;
    e->server_tls = load("a", "ca1", 0);
    e->client_tls = load("b", "ca1", 0);
    client_start(e);
    /* The client writes before the handshake is done: that waits. */
    assert_true(run_until(e, connected, e, 5000));
    side_write(&e->cli, BULK);
    assert_true(run_until(e, srv_open, e, 5000));
    side_write(&e->srv, BULK);
    assert_true(run_until(e, both_got_bulk, e, 20000));
    assert_int_equal(e->srv.got, BULK);
    assert_int_equal(e->cli.got, BULK);
    assert_true(e->srv.pattern_ok);
    assert_true(e->cli.pattern_ok);
    rq_tls_stats(e->server_tls, &st);
    assert_int_equal(st.handshakes, 1);
    assert_int_equal(st.failures, 0);
    assert_int_equal(st.relays, 1);
    rq_tls_stats(e->client_tls, &st);
    assert_int_equal(st.handshakes, 1);

    side_close(&e->cli);
    assert_true(run_until(e, srv_ended, e, 5000));
    assert_true(e->srv.eof);
    assert_int_equal(e->srv.got, BULK);
    rq_tls_stats(e->client_tls, &st);
    assert_int_equal(st.relays, 0);
}

/* The server's owner does not read: the client's relay stops taking
 * plaintext once its connection's queue passes RQ_TLS_QUEUE_HIGH, so the
 * backlog shows on the client's plaintext stream; every byte arrives
 * once the server reads. */
static void test_tls_backpressure(void **state)
{
    struct env *e = *state;
    struct max_net m = {e, 0};
    e->server_tls = load("a", "ca1", 0);
    e->client_tls = e->server_tls;
    e->server_reads = false;
    client_start(e);
    run_until(e, never, NULL, 300);
    assert_true(e->srv.open);
    side_write(&e->cli, FLOOD);
    run_until(e, never, NULL, 1000);
    uv_walk(&e->loop, net_queue, &m);
    assert_true(m.max <= RQ_TLS_QUEUE_HIGH + 2 * (64u << 10));
    assert_true(e->cli.s.write_queue_size > 0);
    assert_true(e->cli.written < FLOOD);
    side_read(&e->srv);
    assert_true(run_until(e, srv_got_flood, e, 20000));
    assert_int_equal(e->srv.got, FLOOD);
    assert_true(e->srv.pattern_ok);
}

/* A client with a certificate of another CA: the server refuses it, no
 * byte the client wrote reaches the server's owner, both ends read EOF. */
static void test_tls_refuses_client_of_another_ca(void **state)
{
    struct env *e = *state;
    struct rq_tls_stats st;
    e->server_tls = load("a", "ca1", 0);
    /* The client trusts both CAs, so only the server's check can refuse. */
    e->client_tls = load("x", "both", 0);
    client_start(e);
    run_until(e, never, NULL, 100);
    side_write(&e->cli, PREAMBLE_LEN);
    assert_true(run_until(e, both_ended, e, 5000));
    assert_int_equal(e->srv.got, 0);
    rq_tls_stats(e->server_tls, &st);
    assert_int_equal(st.failures, 1);
    assert_int_equal(st.handshakes, 0);
}

/* A server whose certificate another CA signed: the client refuses it
 * and never sends its plaintext. */
static void test_tls_refuses_server_of_another_ca(void **state)
{
    struct env *e = *state;
    struct rq_tls_stats st;
    e->server_tls = load("x", "ca2", 0);
    e->client_tls = load("a", "ca1", 0);
    client_start(e);
    run_until(e, never, NULL, 50);
    side_write(&e->cli, PREAMBLE_LEN);
    assert_true(run_until(e, both_ended, e, 5000));
    assert_int_equal(e->srv.got, 0);
    rq_tls_stats(e->client_tls, &st);
    assert_int_equal(st.failures, 1);
    assert_int_equal(st.handshakes, 0);
}

/* The client expects another name than the server's certificate holds. */
static void test_tls_refuses_wrong_server_name(void **state)
{
    struct env *e = *state;
    struct rq_tls_stats st;
    e->server_tls = load("a", "ca1", 0);
    e->client_tls = load("b", "ca1", 0);
    e->peer_host = "elsewhere.example";
    client_start(e);
    assert_true(run_until(e, both_ended, e, 5000));
    rq_tls_stats(e->client_tls, &st);
    assert_int_equal(st.failures, 1);
    assert_int_equal(st.handshakes, 0);
}

/* The name to check is borrowed for the call only: the caller's buffer
 * (the mux's is on its stack) is overwritten and freed before the
 * handshake reads it, and the handshake still checks the name it was
 * given. Each distinct node address in the fault-injection suite made
 * handshakes fail at random ("name does not match") while the relay kept
 * GnuTLS pointing into the caller's memory. */
static void test_tls_keeps_its_copy_of_the_peer_name(void **state)
{
    struct env *e = *state;
    struct rq_tls_stats st;
    e->server_tls = load("a", "ca1", 0);
    e->client_tls = load("b", "ca1", 0);
    e->scratch_host = true;
    client_start(e);
    assert_true(run_until(e, connected, e, 5000));
    side_write(&e->cli, PREAMBLE_LEN);
    assert_true(run_until(e, srv_got_preamble, e, 5000));
    assert_int_equal(e->srv.got, PREAMBLE_LEN);
    rq_tls_stats(e->client_tls, &st);
    assert_int_equal(st.handshakes, 1);
    assert_int_equal(st.failures, 0);
}

/* A client without TLS sends a preamble's worth of bytes: refused. */
static void test_tls_refuses_plaintext_client(void **state)
{
    struct env *e = *state;
    struct rq_tls_stats st;
    e->server_tls = load("a", "ca1", 0);
    client_start(e);
    run_until(e, never, NULL, 50);
    side_write(&e->cli, PREAMBLE_LEN);
    assert_true(run_until(e, both_ended, e, 5000));
    assert_int_equal(e->srv.got, 0);
    rq_tls_stats(e->server_tls, &st);
    assert_int_equal(st.failures, 1);
}

/* A server without TLS answers the ClientHello with junk: refused. */
static void test_tls_refuses_plaintext_server(void **state)
{
    struct env *e = *state;
    struct rq_tls_stats st;
    e->client_tls = load("a", "ca1", 0);
    client_start(e);
    run_until(e, never, NULL, 50);
    assert_true(e->srv.open);
    side_write(&e->srv, PREAMBLE_LEN);
    assert_true(run_until(e, cli_ended, e, 5000));
    assert_int_equal(e->cli.got, 0);
    rq_tls_stats(e->client_tls, &st);
    assert_int_equal(st.failures, 1);
}

/* A peer that connects and says nothing is cut at the handshake timeout. */
static void test_tls_handshake_timeout(void **state)
{
    struct env *e = *state;
    struct rq_tls_stats st;
    e->server_tls = load("a", "ca1", 200);
    client_start(e);
    assert_true(run_until(e, srv_ended, e, 3000));
    rq_tls_stats(e->server_tls, &st);
    assert_int_equal(st.failures, 1);
    assert_true(run_until(e, cli_ended, e, 3000));
}

/* The client's owner closes its stream before the handshake is done: its
 * relay goes at once (nothing was said yet), the server's handshake fails
 * on the closed connection, its owner reads EOF, and both relays go. */
static void test_tls_close_during_handshake(void **state)
{
    struct env *e = *state;
    struct rq_tls_stats st;
    e->server_tls = load("a", "ca1", 0);
    e->client_tls = load("b", "ca1", 0);
    client_start(e);
    /* Connected, and the ClientHello just sent: no answer can be in. */
    while (!e->connected) {
        uv_run(&e->loop, UV_RUN_ONCE);
    }
    rq_tls_stats(e->client_tls, &st);
    assert_int_equal(st.handshakes, 0);
    side_close(&e->cli);
    assert_true(run_until(e, srv_ended, e, 5000));
    assert_true(e->srv.eof);
    assert_int_equal(e->srv.got, 0);
    assert_true(run_until(e, relays_gone, e, 5000));
    rq_tls_stats(e->server_tls, &st);
    assert_int_equal(st.failures, 1);
    rq_tls_stats(e->client_tls, &st);
    assert_int_equal(st.failures, 0);
}

static bool srv_relay_gone(void *arg)
{
    struct env *e = arg;
    struct rq_tls_stats st;
    rq_tls_stats(e->server_tls, &st);
    return st.relays == 0;
}

/* The server's owner gives up on a client that says nothing (a preamble
 * deadline passed): the relay goes at once, not at the handshake timeout,
 * and the client sees its connection end. */
static void test_tls_owner_gives_up_during_handshake(void **state)
{
    struct env *e = *state;
    struct rq_tls_stats st;
    e->server_tls = load("a", "ca1", 0); /* Handshake timeout: 5 s. */
    client_start(e);
    assert_true(run_until(e, srv_open, e, 5000));
    side_close(&e->srv);
    assert_true(run_until(e, srv_relay_gone, e, 1000));
    assert_true(run_until(e, cli_ended, e, 1000));
    rq_tls_stats(e->server_tls, &st);
    assert_int_equal(st.failures, 0);
    assert_int_equal(st.handshakes, 0);
}

/* The rules on the flags and the files. */
static void test_tls_new_refuses_bad_files(void **state)
{
    (void)state;
    char cert[128], key[128], ca[128], ca2[128], why[256];
    struct rq_tls *tls = NULL;
    bool on = true;

    assert_int_equal(rq_tls_check_flags(NULL, "", NULL, &on, why, sizeof why),
                     0);
    assert_false(on);
    assert_int_equal(rq_tls_check_flags("c", NULL, "a", &on, why, sizeof why),
                     RQ_INVALID);
    assert_non_null(strstr(why, "--tls-key"));

    path_of(cert, sizeof cert, "a.crt");
    path_of(key, sizeof key, "b.key");
    path_of(ca, sizeof ca, "ca1.crt");
    path_of(ca2, sizeof ca2, "ca2.crt");
    struct rq_tls_config mismatch = {cert, key, ca, 0};
    assert_int_equal(rq_tls_new(&mismatch, &tls, why, sizeof why), RQ_INVALID);
    assert_non_null(strstr(why, "--tls-key"));

    path_of(key, sizeof key, "a.key");
    struct rq_tls_config foreign = {cert, key, ca2, 0};
    assert_int_equal(rq_tls_new(&foreign, &tls, why, sizeof why), RQ_INVALID);
    assert_non_null(strstr(why, "does not verify"));

    struct rq_tls_config missing = {cert, key, "/nonexistent/ca.crt", 0};
    assert_int_equal(rq_tls_new(&missing, &tls, why, sizeof why), RQ_IO);
    assert_non_null(strstr(why, "--tls-ca"));

    struct rq_tls_config notpem = {cert, key, cert, 0};
    path_of(ca, sizeof ca, "a.key");
    notpem.ca_file = ca;
    assert_int_equal(rq_tls_new(&notpem, &tls, why, sizeof why), RQ_INVALID);
    assert_non_null(strstr(why, "--tls-ca"));
}

/* ---- Certificates for the file ---- */

static void write_pair(const char *name, const char *cert, const char *key)
{
    char path[128], why[256];
    char file[32];
    snprintf(file, sizeof file, "%s.crt", name);
    path_of(path, sizeof path, file);
    assert_int_equal(rq_pem_write(path, cert, 0644, why, sizeof why), 0);
    if (key != NULL) {
        snprintf(file, sizeof file, "%s.key", name);
        path_of(path, sizeof path, file);
        assert_int_equal(rq_pem_write(path, key, 0600, why, sizeof why), 0);
        struct stat st;
        assert_int_equal(stat(path, &st), 0);
        assert_int_equal(st.st_mode & 0777, 0600);
    }
}

static void issue(struct rq_ca *ca, const char *name)
{
    const char *sans[] = {"127.0.0.1", "localhost"};
    char *cert, *key, why[256];
    assert_int_equal(
        rq_ca_issue(ca, name, sans, 2, &cert, &key, why, sizeof why), 0);
    write_pair(name, cert, key);
    free(cert);
    free(key);
}

static int group_setup(void **state)
{
    struct rq_ca *ca1, *ca2;
    char why[256];
    (void)state;
    snprintf(dir, sizeof dir, "/tmp/raftq-tls-XXXXXX");
    if (mkdtemp(dir) == NULL) {
        return -1;
    }
    if (rq_ca_new("raftq test CA 1", &ca1, why, sizeof why) != 0 ||
        rq_ca_new("raftq test CA 2", &ca2, why, sizeof why) != 0) {
        return -1;
    }
    write_pair("ca1", rq_ca_pem(ca1), NULL);
    write_pair("ca2", rq_ca_pem(ca2), NULL);
    {
        char both[8192];
        snprintf(both, sizeof both, "%s%s", rq_ca_pem(ca1), rq_ca_pem(ca2));
        write_pair("both", both, NULL);
    }
    issue(ca1, "a");
    issue(ca1, "b");
    issue(ca2, "x");
    rq_ca_free(ca1);
    rq_ca_free(ca2);
    return 0;
}

static int group_teardown(void **state)
{
    (void)state;
    harness_rm_tree(dir);
    return 0;
}

int main(void)
{
    /* As in every raftq process: a write to a closed stream fails, no
     * signal. */
    signal(SIGPIPE, SIG_IGN);
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_tls_bulk_both_ways, env_setup,
                                        env_teardown),
        cmocka_unit_test_setup_teardown(test_tls_backpressure, env_setup,
                                        env_teardown),
        cmocka_unit_test_setup_teardown(test_tls_refuses_client_of_another_ca,
                                        env_setup, env_teardown),
        cmocka_unit_test_setup_teardown(test_tls_refuses_server_of_another_ca,
                                        env_setup, env_teardown),
        cmocka_unit_test_setup_teardown(test_tls_refuses_wrong_server_name,
                                        env_setup, env_teardown),
        cmocka_unit_test_setup_teardown(
            test_tls_keeps_its_copy_of_the_peer_name, env_setup, env_teardown),
        cmocka_unit_test_setup_teardown(test_tls_refuses_plaintext_client,
                                        env_setup, env_teardown),
        cmocka_unit_test_setup_teardown(test_tls_refuses_plaintext_server,
                                        env_setup, env_teardown),
        cmocka_unit_test_setup_teardown(test_tls_handshake_timeout, env_setup,
                                        env_teardown),
        cmocka_unit_test_setup_teardown(test_tls_close_during_handshake,
                                        env_setup, env_teardown),
        cmocka_unit_test_setup_teardown(
            test_tls_owner_gives_up_during_handshake, env_setup, env_teardown),
        cmocka_unit_test(test_tls_new_refuses_bad_files),
    };
    return cmocka_run_group_tests_name("tls", tests, group_setup,
                                       group_teardown);
}

/*
 * Component tests of rq_http on loopback in one process: the server runs on
 * the test's uv loop, and clients are plain blocking sockets, either in a
 * thread of their own (fetch(), so the loop thread stays free) or, where a
 * test must order client and server steps, on the loop thread with reads
 * that never block. Covered: routing, parameters and the query string, JSON
 * bodies good and hostile, body limits and the cap on the bodies buffered
 * at once, late replies, clients that go away,
 * headers, text replies, shutdown, idle clients and binding.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cmocka.h>

#include <jansson.h>
#include <uv.h>

#include "harness.h"
#include "rq_err.h"
#include "rq_http.h"
#include "rq_metrics.h"

#define MAX_BODY 200000
#define IDLE_S 1
#define N_MANY 50
#define MAX_HELD (N_MANY + 8)
#define LATE_MS 30
#define WAIT_MS 5000

struct env {
    uv_loop_t loop;
    uv_timer_t wake;
    uv_async_t async;     /* Client threads wake the loop when they finish. */
    uv_prepare_t prepare; /* Ends an iteration early once cond holds. */
    harness_cond cond;
    void *cond_arg;
    uv_timer_t late;
    struct rq_http_req *late_req;
    struct rq_http *h;
    bool closed;
    bool ipv6;
    struct rq_http_req *held[MAX_HELD];
    unsigned n_held;
    unsigned aborts;
    unsigned want_suspended;
    struct rq_metrics *metrics; /* Given to the server when set. */
    size_t max_buffered;        /* Given to the server. */
};

/* A response as read by a client: status, raw headers and body. */
struct resp {
    int status;
    char *raw; /* Everything received, NUL-terminated. */
    size_t len;
    const char *body;
    size_t body_len;
};

/* ---- Handlers ---- */

static json_t *text_or_null(const char *s)
{
    return s != NULL ? json_string(s) : json_null();
}

static void h_records_get(struct rq_http_req *req, void *data)
{
    (void)data;
    json_t *body = json_object();
    json_object_set_new(body, "topic",
                        text_or_null(rq_http_param(req, "topic")));
    json_object_set_new(body, "nope", text_or_null(rq_http_param(req, "x")));
    json_object_set_new(body, "partition",
                        text_or_null(rq_http_query(req, "partition")));
    json_object_set_new(body, "x", text_or_null(rq_http_arg(req, "x")));
    json_object_set_new(body, "n", text_or_null(rq_http_arg(req, "n")));
    json_object_set_new(body, "f", text_or_null(rq_http_arg(req, "f")));
    json_object_set_new(body, "s", text_or_null(rq_http_arg(req, "s")));
    json_object_set_new(body, "missing",
                        text_or_null(rq_http_arg(req, "missing")));
    json_object_set_new(body, "method", json_string(rq_http_method(req)));
    json_object_set_new(body, "path", json_string(rq_http_path(req)));
    json_object_set_new(body, "query", json_string(rq_http_query_string(req)));
    json_object_set_new(body, "agent",
                        text_or_null(rq_http_header(req, "x-test-agent")));
    rq_http_reply(req, 200, body);
}

static void h_records_post(struct rq_http_req *req, void *data)
{
    char why[256];
    json_t *in = rq_http_json(req, why, sizeof why);
    (void)data;
    if (in == NULL) {
        rq_http_reply_error(req, 400, "%s", why);
        return;
    }
    size_t len;
    rq_http_body(req, &len);
    /* The parsed body is borrowed from the request: take a reference. */
    json_incref(in);
    rq_http_reply(req, 201,
                  json_pack("{s:o, s:I}", "echo", in, "len", (json_int_t)len));
}

static void h_topic_delete(struct rq_http_req *req, void *data)
{
    (void)data;
    rq_http_reply(req, 200,
                  json_pack("{s:s}", "deleted", rq_http_param(req, "topic")));
}

static void on_abort_count(struct rq_http_req *req, void *data)
{
    struct env *e = data;
    (void)req;
    e->aborts++;
}

/* A long poll that waits for the test to answer it. */
static void h_hold(struct rq_http_req *req, void *data)
{
    struct env *e = data;
    assert_true(e->n_held < MAX_HELD);
    e->held[e->n_held++] = req;
    rq_http_on_abort(req, on_abort_count, e);
}

/* The same, answered whether or not its client still waits. */
static void h_hold_unwatched(struct rq_http_req *req, void *data)
{
    h_hold(req, data);
    rq_http_unwatched(req);
}

/* A long poll whose abort callback answers at once (the usual shape). */
static void on_abort_reply(struct rq_http_req *req, void *data)
{
    struct env *e = data;
    e->aborts++;
    rq_http_reply_error(req, 504, "client went away");
}

static void h_poll(struct rq_http_req *req, void *data)
{
    rq_http_on_abort(req, on_abort_reply, data);
}

static void on_late(uv_timer_t *t)
{
    struct env *e = t->data;
    struct rq_http_req *req = e->late_req;
    e->late_req = NULL;
    rq_http_reply(req, 200, json_pack("{s:b}", "late", 1));
}

static void h_later(struct rq_http_req *req, void *data)
{
    struct env *e = data;
    e->late_req = req;
    /* A timer counts from the loop's cached time, which on a busy machine
     * can be older than the request's arrival (rq_http stamps it with
     * uv_hrtime()): refresh it, so the reply comes LATE_MS after that. */
    uv_update_time(&e->loop);
    uv_timer_start(&e->late, on_late, LATE_MS, 0);
}

static void h_busy(struct rq_http_req *req, void *data)
{
    (void)data;
    rq_http_set_header(req, "Retry-After", "2");
    rq_http_reply_error(req, 503, "busy, try again in %d s", 2);
}

static void h_metrics(struct rq_http_req *req, void *data)
{
    static const char text[] = "raftq_up 1\n";
    (void)data;
    rq_http_reply_text(req, 200, "text/plain; version=0.0.4", text,
                       sizeof text - 1);
}

/* A head and a tail the reply takes (?tail=0: none), or one buffer it
 * takes (?whole=1). */
static void h_parts(struct rq_http_req *req, void *data)
{
    const char *tail_arg = rq_http_arg(req, "tail");
    size_t n = tail_arg != NULL ? strtoul(tail_arg, NULL, 10) : 0;
    char *tail = n > 0 ? malloc(n) : NULL;
    (void)data;
    if (n > 0) {
        memset(tail, 't', n);
    }
    if (rq_http_arg(req, "whole") != NULL) {
        rq_http_reply_owned(req, 200, "application/x-whole", tail, n);
        return;
    }
    rq_http_reply_parts(req, 200, "application/x-parts", "head:", 5, tail, n);
}

/* Answers with the length of the body it got. */
static void h_sink(struct rq_http_req *req, void *data)
{
    size_t len;
    (void)data;
    rq_http_body(req, &len);
    rq_http_reply(req, 200, json_pack("{s:I}", "len", (json_int_t)len));
}

static void on_closed(void *data);

/* Closes the server from inside a handler, then answers. */
static void h_shutdown(struct rq_http_req *req, void *data)
{
    struct env *e = data;
    rq_http_close(e->h, on_closed, e);
    rq_http_reply(req, 200, json_pack("{s:s}", "bye", "now"));
}

static const struct rq_http_route routes[] = {
    {"GET", "/v1/topics/{topic}/records", h_records_get},
    {"POST", "/v1/topics/{topic}/records", h_records_post},
    {"DELETE", "/v1/topics/{topic}", h_topic_delete},
    {"GET", "/v1/hold", h_hold},
    {"GET", "/v1/hold-unwatched", h_hold_unwatched},
    {"POST", "/v1/hold", h_hold},
    {"POST", "/v1/sink", h_sink},
    {"GET", "/v1/poll", h_poll},
    {"GET", "/v1/later", h_later},
    {"GET", "/v1/busy", h_busy},
    {"GET", "/metrics", h_metrics},
    {"GET", "/parts", h_parts},
    {"POST", "/v1/shutdown", h_shutdown},
};

/* ---- Fixture ---- */

static void on_async(uv_async_t *a)
{
    (void)a; /* Only there to wake the loop. */
}

static int setup(void **state)
{
    struct env *e = calloc(1, sizeof *e);
    assert_non_null(e);
    assert_int_equal(uv_loop_init(&e->loop), 0);
    uv_timer_init(&e->loop, &e->wake);
    uv_timer_init(&e->loop, &e->late);
    e->late.data = e;
    assert_int_equal(uv_async_init(&e->loop, &e->async, on_async), 0);
    uv_prepare_init(&e->loop, &e->prepare);
    e->prepare.data = e;
    *state = e;
    return 0;
}

static void on_closed(void *data)
{
    struct env *e = data;
    e->closed = true;
}

static bool is_closed(void *arg)
{
    return ((struct env *)arg)->closed;
}

static bool run_until(struct env *e, harness_cond cond, void *arg);

static int teardown(void **state)
{
    struct env *e = *state;
    if (e->h != NULL && !e->closed) {
        rq_http_close(e->h, on_closed, e);
        assert_true(run_until(e, is_closed, e));
    }
    uv_close((uv_handle_t *)&e->wake, NULL);
    uv_close((uv_handle_t *)&e->late, NULL);
    uv_close((uv_handle_t *)&e->async, NULL);
    uv_close((uv_handle_t *)&e->prepare, NULL);
    assert_int_equal(harness_drain(&e->loop, 5000), 0);
    /* Every handle of the server, its requests' included, is closed. */
    assert_int_equal(uv_loop_close(&e->loop), 0);
    rq_metrics_free(e->metrics); /* After the server has let go of it. */
    free(e);
    return 0;
}

static void start_with(struct env *e, unsigned max_connections)
{
    struct rq_http_config cfg = {
        .bind_address = "127.0.0.1:0",
        .max_body = MAX_BODY,
        .max_connections = max_connections,
        .idle_timeout_s = IDLE_S,
        .max_buffered = e->max_buffered,
        .metrics = e->metrics,
    };
    char why[256];
    int rv =
        rq_http_new(&e->loop, &cfg, routes, sizeof routes / sizeof routes[0], e,
                    &e->h, why, sizeof why);
    if (rv != 0) {
        fail_msg("rq_http_new: %s", why);
    }
    assert_int_not_equal(rq_http_port(e->h), 0);
}

static void start(struct env *e)
{
    start_with(e, 0);
}

static void on_prepare(uv_prepare_t *p)
{
    struct env *e = p->data;
    if (e->cond(e->cond_arg)) {
        uv_stop(&e->loop); /* The poll that follows will not block. */
    }
}

/*
 * harness_run_until() checks @cond after each uv_run(UV_RUN_ONCE), but an
 * iteration whose timers (the server's zero timer) did all the work still
 * blocks in its poll until the next event. The prepare handle, which runs
 * just before that poll, stops the iteration there once @cond holds.
 */
static bool run_until(struct env *e, harness_cond cond, void *arg)
{
    bool ok;
    e->cond = cond;
    e->cond_arg = arg;
    uv_prepare_start(&e->prepare, on_prepare);
    ok = harness_run_until(&e->loop, &e->wake, cond, arg, WAIT_MS);
    uv_prepare_stop(&e->prepare);
    return ok;
}

static struct rq_http_stats stats(struct env *e)
{
    struct rq_http_stats s;
    rq_http_stats(e->h, &s);
    return s;
}

static bool suspended_reached(void *arg)
{
    struct env *e = arg;
    return stats(e).suspended == e->want_suspended;
}

/* ---- Clients ---- */

static int connect_to(bool ipv6, uint16_t port)
{
    struct timeval tv = {.tv_sec = WAIT_MS / 1000};
    int fd = socket(ipv6 ? AF_INET6 : AF_INET, SOCK_STREAM, 0);
    int rv;

    if (fd < 0) {
        return -1;
    }
    setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
    setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof tv);
    if (ipv6) {
        struct sockaddr_in6 a = {.sin6_family = AF_INET6,
                                 .sin6_port = htons(port),
                                 .sin6_addr = in6addr_loopback};
        rv = connect(fd, (struct sockaddr *)&a, sizeof a);
    } else {
        struct sockaddr_in a = {.sin_family = AF_INET,
                                .sin_port = htons(port),
                                .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
        rv = connect(fd, (struct sockaddr *)&a, sizeof a);
    }
    if (rv != 0) {
        close(fd);
        return -1;
    }
    return fd;
}

static bool send_all(int fd, const void *p, size_t n)
{
    const char *c = p;
    while (n > 0) {
        ssize_t k = send(fd, c, n, MSG_NOSIGNAL);
        if (k <= 0) {
            return false;
        }
        c += k;
        n -= (size_t)k;
    }
    return true;
}

/* Appends what is readable on @fd; true once the server closed it. With
 * @nonblock it never waits. */
static bool read_some(int fd, struct resp *r, bool nonblock)
{
    for (;;) {
        char buf[16384];
        ssize_t k = recv(fd, buf, sizeof buf, nonblock ? MSG_DONTWAIT : 0);
        if (k == 0) {
            return true;
        }
        if (k < 0) {
            /* A reset after the response also ends it. */
            return errno == ECONNRESET;
        }
        r->raw = realloc(r->raw, r->len + (size_t)k + 1);
        memcpy(r->raw + r->len, buf, (size_t)k);
        r->len += (size_t)k;
        r->raw[r->len] = '\0';
    }
}

static void parse_resp(struct resp *r)
{
    char *end;
    r->status = -1;
    if (r->raw == NULL || sscanf(r->raw, "HTTP/1.%*d %d", &r->status) != 1) {
        return;
    }
    end = strstr(r->raw, "\r\n\r\n");
    if (end != NULL) {
        r->body = end + 4;
        r->body_len = r->len - (size_t)(r->body - r->raw);
    }
}

static void resp_free(struct resp *r)
{
    free(r->raw);
    memset(r, 0, sizeof *r);
}

/* The value of header @name (copied into @out), or NULL. */
static const char *resp_header(const struct resp *r, const char *name,
                               char *out, size_t n)
{
    size_t len = strlen(name);
    const char *p = r->raw != NULL ? strstr(r->raw, "\r\n") : NULL;
    while (p != NULL && p < r->body - 2 && p[2] != '\r') {
        p += 2;
        if (strncasecmp(p, name, len) == 0 && p[len] == ':') {
            const char *v = p + len + 1;
            const char *eol = strstr(v, "\r\n");
            while (*v == ' ') {
                v++;
            }
            snprintf(out, n, "%.*s", (int)(eol - v), v);
            return out;
        }
        p = strstr(p, "\r\n");
    }
    return NULL;
}

static json_t *resp_json(const struct resp *r)
{
    json_error_t err;
    json_t *v = json_loadb(r->body, r->body_len, 0, &err);
    if (v == NULL) {
        fail_msg("reply is not JSON (%s): %s", err.text, r->raw);
    }
    return v;
}

struct job {
    struct env *e;
    uint16_t port;
    const char *req;
    size_t req_len;
    struct resp resp;
    bool ok;
    atomic_bool done;
};

static void *client_main(void *arg)
{
    struct job *j = arg;
    int fd = connect_to(j->e->ipv6, j->port);
    if (fd >= 0) {
        j->ok =
            send_all(fd, j->req, j->req_len) && read_some(fd, &j->resp, false);
        close(fd);
    }
    atomic_store(&j->done, true);
    uv_async_send(&j->e->async);
    return NULL;
}

static bool job_done(void *arg)
{
    return atomic_load(&((struct job *)arg)->done);
}

/*
 * Sends @req (@len bytes; 0 means strlen) from a client thread and runs the
 * loop until the whole response has arrived and the server has closed.
 */
static void fetch_n(struct env *e, const char *req, size_t len,
                    struct resp *out)
{
    struct job j = {.e = e, .port = rq_http_port(e->h), .req = req};
    pthread_t t;

    j.req_len = len != 0 ? len : strlen(req);
    atomic_init(&j.done, false);
    assert_int_equal(pthread_create(&t, NULL, client_main, &j), 0);
    bool done = run_until(e, job_done, &j);
    pthread_join(t, NULL);
    assert_true(done);
    assert_true(j.ok);
    *out = j.resp;
    parse_resp(out);
}

static void fetch(struct env *e, const char *req, struct resp *out)
{
    fetch_n(e, req, 0, out);
}

/* A client on the loop thread: connects and sends, never blocks reading. */
struct conn {
    int fd;
    struct resp resp;
    bool eof;
};

static void conn_open(struct env *e, struct conn *c, const char *req)
{
    memset(c, 0, sizeof *c);
    c->fd = connect_to(false, rq_http_port(e->h));
    assert_true(c->fd >= 0);
    assert_true(send_all(c->fd, req, strlen(req)));
}

struct conns {
    struct conn *c;
    unsigned n;
};

static bool all_eof(void *arg)
{
    struct conns *cs = arg;
    bool all = true;
    for (unsigned i = 0; i < cs->n; i++) {
        struct conn *c = &cs->c[i];
        if (!c->eof) {
            c->eof = read_some(c->fd, &c->resp, true);
        }
        all = all && c->eof;
    }
    return all;
}

static bool has_reply(void *arg)
{
    struct conn *c = arg;
    c->eof = read_some(c->fd, &c->resp, true);
    return c->resp.raw != NULL && strstr(c->resp.raw, "raftq_up") != NULL;
}

static void conn_close(struct conn *c)
{
    close(c->fd);
    resp_free(&c->resp);
}

/* Runs the loop until @n requests are suspended. */
static bool wait_suspended(struct env *e, unsigned n)
{
    e->want_suspended = n;
    return run_until(e, suspended_reached, e);
}

static bool one_connection(void *arg)
{
    return stats(arg).connections == 1;
}

static bool no_connections(void *arg)
{
    struct env *e = arg;
    struct rq_http_stats s = stats(e);
    return s.connections == 0 && s.suspended == 0;
}

static void assert_json_failure(const struct resp *r, int status,
                                const char *message_part)
{
    char ct[128];
    json_t *v;

    assert_int_equal(r->status, status);
    assert_non_null(resp_header(r, "Content-Type", ct, sizeof ct));
    assert_string_equal(ct, "application/json");
    v = resp_json(r);
    assert_string_equal(json_string_value(json_object_get(v, "status")),
                        "failure");
    const char *msg = json_string_value(json_object_get(v, "message"));
    assert_non_null(msg);
    if (strstr(msg, message_part) == NULL) {
        fail_msg("message \"%s\" lacks \"%s\"", msg, message_part);
    }
    json_decref(v);
}

/* ---- Tests ---- */

static void test_http_routes_params_and_query(void **state)
{
    struct env *e = *state;
    struct resp r;
    json_t *v;
    char allow[64];

    start(e);
    fetch(e,
          "GET /v1/topics/caf%C3%A9%20au%20lait/records?partition=3 "
          "HTTP/1.1\r\nHost: x\r\nX-Test-Agent: cm\r\nConnection: "
          "close\r\n\r\n",
          &r);
    assert_int_equal(r.status, 200);
    v = resp_json(&r);
    assert_string_equal(json_string_value(json_object_get(v, "status")),
                        "success");
    assert_string_equal(json_string_value(json_object_get(v, "topic")),
                        "caf\xc3\xa9 au lait");
    assert_true(json_is_null(json_object_get(v, "nope")));
    assert_string_equal(json_string_value(json_object_get(v, "partition")),
                        "3");
    assert_string_equal(json_string_value(json_object_get(v, "method")), "GET");
    assert_string_equal(json_string_value(json_object_get(v, "path")),
                        "/v1/topics/caf%C3%A9%20au%20lait/records");
    assert_string_equal(json_string_value(json_object_get(v, "query")),
                        "partition=3");
    assert_string_equal(json_string_value(json_object_get(v, "agent")), "cm");
    json_decref(v);
    resp_free(&r);

    /* The raw query string stays encoded; without one it is empty. */
    fetch(e,
          "GET /v1/topics/t/records?a=%20b&c HTTP/1.1\r\nHost: x\r\n"
          "Connection: close\r\n\r\n",
          &r);
    v = resp_json(&r);
    assert_string_equal(json_string_value(json_object_get(v, "query")),
                        "a=%20b&c");
    json_decref(v);
    resp_free(&r);
    fetch(e,
          "GET /v1/topics/t/records HTTP/1.1\r\nHost: x\r\n"
          "Connection: close\r\n\r\n",
          &r);
    v = resp_json(&r);
    assert_string_equal(json_string_value(json_object_get(v, "query")), "");
    json_decref(v);
    resp_free(&r);

    fetch(e,
          "DELETE /v1/topics/t1 HTTP/1.1\r\nHost: x\r\nConnection: "
          "close\r\n\r\n",
          &r);
    assert_int_equal(r.status, 200);
    v = resp_json(&r);
    assert_string_equal(json_string_value(json_object_get(v, "deleted")), "t1");
    json_decref(v);
    resp_free(&r);

    /* An encoded '/', an empty segment, a bad or cut escape, an encoded
     * NUL: no such path. */
    static const char *const not_found[] = {
        "/v1/topics/a%2Fb/records", "/v1/topics//records",
        "/v1/topics/a%zzb/records", "/v1/topics/a%2/records",
        "/v1/topics/a%/records",    "/v1/topics/a%00b/records",
        "/v1/topics/a/records/",    "/nope",
    };
    for (size_t i = 0; i < sizeof not_found / sizeof not_found[0]; i++) {
        char req[256];
        snprintf(req, sizeof req,
                 "GET %s HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n",
                 not_found[i]);
        fetch(e, req, &r);
        assert_json_failure(&r, 404, "no such path");
        resp_free(&r);
    }

    fetch(e,
          "PUT /v1/topics/t1/records HTTP/1.1\r\nHost: x\r\nContent-Length: "
          "0\r\nConnection: close\r\n\r\n",
          &r);
    assert_json_failure(&r, 405, "PUT");
    assert_non_null(resp_header(&r, "Allow", allow, sizeof allow));
    assert_string_equal(allow, "GET, POST");
    resp_free(&r);

    struct rq_http_stats s = stats(e);
    assert_int_equal(s.requests, 4);
    assert_int_equal(s.rejected, 9);
    assert_int_equal(s.suspended, 0);
}

/* A query argument that decodes to a NUL byte would be cut short by every
 * C string reader ("a%00b" read as "a"): refused before any handler. */
static void test_http_query_nul_is_refused(void **state)
{
    struct env *e = *state;
    struct resp r;
    static const char *const queries[] = {
        "partition=3%00",
        "partition=%00",
        "x=1&partition=3%00junk",
        "a%00b=1",
    };

    start(e);
    for (size_t i = 0; i < sizeof queries / sizeof queries[0]; i++) {
        char req[256];
        snprintf(req, sizeof req,
                 "GET /v1/topics/t/records?%s HTTP/1.1\r\nHost: x\r\n"
                 "Connection: close\r\n\r\n",
                 queries[i]);
        fetch(e, req, &r);
        assert_json_failure(&r, 400, "NUL byte");
        resp_free(&r);
    }
    /* An encoded byte other than NUL is fine. */
    fetch(e,
          "GET /v1/topics/t/records?partition=%33 HTTP/1.1\r\nHost: x\r\n"
          "Connection: close\r\n\r\n",
          &r);
    assert_int_equal(r.status, 200);
    resp_free(&r);
    struct rq_http_stats s = stats(e);
    assert_int_equal(s.requests, 1);
    assert_int_equal(s.rejected, 4);
}

/* A transfer coding other than chunked is refused at once rather than
 * left waiting for a body that cannot be read. */
static void test_http_unknown_transfer_encoding_is_refused(void **state)
{
    struct env *e = *state;
    struct resp r;

    start(e);
    fetch(e,
          "POST /v1/topics/t/records HTTP/1.1\r\nHost: x\r\n"
          "Transfer-Encoding: gzip\r\nConnection: close\r\n\r\n",
          &r);
    assert_json_failure(&r, 400, "Transfer-Encoding 'gzip' is not supported");
    resp_free(&r);
    fetch(e,
          "POST /v1/topics/t/records HTTP/1.1\r\nHost: x\r\n"
          "Transfer-Encoding: Chunked\r\nConnection: close\r\n\r\n"
          "2\r\n{}\r\n0\r\n\r\n",
          &r);
    assert_int_equal(r.status, 201);
    resp_free(&r);
}

static void test_http_arg_query_wins_over_body(void **state)
{
    struct env *e = *state;
    static const char body[] =
        "{\"x\":\"body\",\"n\":-42,\"f\":true,\"s\":\"str\"}";
    char req[512];
    struct resp r;
    json_t *v;

    start(e);
    snprintf(req, sizeof req,
             "GET /v1/topics/t/records?x=q%%20s&n HTTP/1.1\r\nHost: "
             "x\r\nContent-Length: %zu\r\nConnection: close\r\n\r\n%s",
             strlen(body), body);
    fetch(e, req, &r);
    assert_int_equal(r.status, 200);
    v = resp_json(&r);
    assert_string_equal(json_string_value(json_object_get(v, "x")), "q s");
    /* "?n" without a value is present and empty: it wins too. */
    assert_string_equal(json_string_value(json_object_get(v, "n")), "");
    assert_true(json_is_null(json_object_get(v, "f")));
    assert_string_equal(json_string_value(json_object_get(v, "s")), "str");
    assert_true(json_is_null(json_object_get(v, "missing")));
    json_decref(v);
    resp_free(&r);

    snprintf(req, sizeof req,
             "GET /v1/topics/t/records HTTP/1.1\r\nHost: x\r\nContent-Length: "
             "%zu\r\nConnection: close\r\n\r\n%s",
             strlen(body), body);
    fetch(e, req, &r);
    v = resp_json(&r);
    assert_string_equal(json_string_value(json_object_get(v, "x")), "body");
    assert_string_equal(json_string_value(json_object_get(v, "n")), "-42");
    json_decref(v);
    resp_free(&r);
}

/* POSTs @body (@len bytes) to the records route. */
static void post(struct env *e, const char *body, size_t len, struct resp *r)
{
    char head[256];
    int n = snprintf(head, sizeof head,
                     "POST /v1/topics/t/records HTTP/1.1\r\nHost: "
                     "x\r\nContent-Length: %zu\r\nConnection: close\r\n\r\n",
                     len);
    char *req = malloc((size_t)n + len);
    memcpy(req, head, (size_t)n);
    memcpy(req + n, body, len);
    fetch_n(e, req, (size_t)n + len, r);
    free(req);
}

static void test_http_json_bodies(void **state)
{
    struct env *e = *state;
    struct resp r;
    json_t *v;

    start(e);
    static const char good[] = "{\"a\":[1,2,{\"b\":null}],\"c\":\"\xc3\xa9\"}";
    post(e, good, strlen(good), &r);
    assert_int_equal(r.status, 201);
    v = resp_json(&r);
    assert_string_equal(json_string_value(json_object_get(v, "status")),
                        "success");
    json_t *want = json_loads(good, 0, NULL);
    assert_true(json_equal(json_object_get(v, "echo"), want));
    json_decref(want);
    json_decref(v);
    resp_free(&r);

    post(e, "", 0, &r); /* An empty body is an empty object. */
    assert_int_equal(r.status, 201);
    v = resp_json(&r);
    assert_int_equal(json_object_size(json_object_get(v, "echo")), 0);
    json_decref(v);
    resp_free(&r);

    post(e, "{\"a\":}", 6, &r);
    assert_json_failure(&r, 400, "body is not valid JSON");
    assert_json_failure(&r, 400, "at line 1 column 6");
    resp_free(&r);

    post(e, "[1,2]", 5, &r);
    assert_json_failure(&r, 400, "must be a JSON object, not an array");
    resp_free(&r);

    post(e, "17", 2, &r);
    assert_json_failure(&r, 400, "must be a JSON object, not a number");
    resp_free(&r);

    post(e, "{\"a\":\"\xff\"}", 9, &r);
    assert_json_failure(&r, 400, "not valid UTF-8");
    resp_free(&r);

    post(e, "{\"a\":1,\"a\":2}", 13, &r);
    assert_json_failure(&r, 400, "duplicate");
    resp_free(&r);

    post(e, "{\"a\":\"\\u0000\"}", 14, &r);
    assert_json_failure(&r, 400, "a string holds \\u0000 (NUL)");
    resp_free(&r);
}

/* A JSON object nested @depth levels deep: {"a":[[...]]}. */
static char *nested(unsigned depth, size_t *len)
{
    char *s = malloc(2 * depth + 16);
    size_t n = 0;
    n += (size_t)sprintf(s, "{\"a\":");
    for (unsigned i = 1; i < depth; i++) {
        s[n++] = '[';
    }
    for (unsigned i = 1; i < depth; i++) {
        s[n++] = ']';
    }
    s[n++] = '}';
    *len = n;
    return s;
}

static void test_http_json_depth_limit(void **state)
{
    struct env *e = *state;
    struct resp r;
    size_t len;
    char *body;

    start(e);
    body = nested(32, &len);
    post(e, body, len, &r);
    assert_int_equal(r.status, 201);
    free(body);
    resp_free(&r);

    body = nested(33, &len);
    post(e, body, len, &r);
    assert_json_failure(&r, 400, "nested deeper than 32 levels");
    free(body);
    resp_free(&r);

    /* 100000 '[' (inside the body limit) is refused before any parsing. */
    len = 100000;
    body = malloc(len);
    memset(body, '[', len);
    uint64_t t0 = uv_hrtime();
    post(e, body, len, &r);
    uint64_t ms = (uv_hrtime() - t0) / 1000000;
    assert_json_failure(&r, 400, "nested deeper than 32 levels");
    assert_true(ms < 2000);
    free(body);
    resp_free(&r);

    /* Brackets inside strings do not count. */
    static const char strs[] =
        "{\"a\":\"[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[["
        "[[[[[[\\\"[[[\"}";
    post(e, strs, strlen(strs), &r);
    assert_int_equal(r.status, 201);
    resp_free(&r);
}

/* A POST of @path whose body is four chunks of @chunk bytes, malloc'd;
 * its length in *@len. */
static char *chunked_post(const char *path, size_t chunk, size_t *len)
{
    char *req = malloc(256 + 4 * (chunk + 16));
    size_t n;
    assert_non_null(req);
    n = (size_t)sprintf(req,
                        "POST %s HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: "
                        "chunked\r\nConnection: close\r\n\r\n",
                        path);
    for (int i = 0; i < 4; i++) {
        n += (size_t)sprintf(req + n, "%zx\r\n", chunk);
        memset(req + n, 'y', chunk);
        n += chunk;
        n += (size_t)sprintf(req + n, "\r\n");
    }
    n += (size_t)sprintf(req + n, "0\r\n\r\n");
    *len = n;
    return req;
}

static void test_http_body_limit(void **state)
{
    struct env *e = *state;
    struct resp r;
    json_t *v;

    start(e);
    /* Exactly max_body bytes is accepted. */
    size_t len = MAX_BODY;
    char *body = malloc(len);
    memset(body, 'x', len);
    memcpy(body, "{\"a\":\"", 6);
    memcpy(body + len - 2, "\"}", 2);
    post(e, body, len, &r);
    assert_int_equal(r.status, 201);
    v = resp_json(&r);
    assert_int_equal(json_integer_value(json_object_get(v, "len")), MAX_BODY);
    json_decref(v);
    resp_free(&r);

    /* A declared length over the limit is refused before the body. */
    char req[256];
    snprintf(req, sizeof req,
             "POST /v1/topics/t/records HTTP/1.1\r\nHost: x\r\nContent-Length: "
             "%d\r\n\r\n",
             MAX_BODY + 1);
    fetch(e, req, &r);
    assert_json_failure(&r, 413, "larger than 200000 bytes");
    resp_free(&r);

    /* A chunked body only shows its size as it comes: 413 at its end. */
    size_t n;
    char *chunked = chunked_post("/v1/topics/t/records", MAX_BODY / 4 + 1, &n);
    fetch_n(e, chunked, n, &r);
    assert_json_failure(&r, 413, "larger than 200000 bytes");
    resp_free(&r);
    free(chunked);
    free(body);

    /* The handler never saw either. */
    assert_int_equal(stats(e).requests, 1);
    assert_int_equal(stats(e).rejected, 2);
}

static void test_http_reply_later_from_timer(void **state)
{
    struct env *e = *state;
    struct resp r;
    json_t *v;

    start(e);
    for (int i = 0; i < 3; i++) {
        uint64_t t0 = uv_hrtime();
        fetch(e,
              "GET /v1/later HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n",
              &r);
        uint64_t ms = (uv_hrtime() - t0) / 1000000;
        assert_int_equal(r.status, 200);
        v = resp_json(&r);
        assert_true(json_is_true(json_object_get(v, "late")));
        json_decref(v);
        resp_free(&r);
        /* The resumed request runs at once, not at the next socket event
         * or idle timeout. */
        assert_true(ms >= LATE_MS - 5 && ms < 900);
    }
    assert_int_equal(stats(e).suspended, 0);
}

static void test_http_many_suspended_requests(void **state)
{
    struct env *e = *state;
    struct conn c[N_MANY];
    struct conns cs = {c, N_MANY};

    start(e);
    for (unsigned i = 0; i < N_MANY; i++) {
        char req[128];
        snprintf(req, sizeof req,
                 "GET /v1/hold?i=%u HTTP/1.1\r\nHost: x\r\nConnection: "
                 "close\r\n\r\n",
                 i);
        conn_open(e, &c[i], req);
    }
    assert_true(wait_suspended(e, N_MANY));
    assert_int_equal(e->n_held, N_MANY);
    assert_int_equal(stats(e).suspended, N_MANY);

    /* Answer in reverse order of arrival. */
    for (unsigned i = N_MANY; i-- > 0;) {
        struct rq_http_req *req = e->held[i];
        rq_http_reply(req, 200,
                      json_pack("{s:s}", "i", rq_http_query(req, "i")));
    }
    e->n_held = 0;
    assert_true(run_until(e, all_eof, &cs));
    for (unsigned i = 0; i < N_MANY; i++) {
        char want[16];
        parse_resp(&c[i].resp);
        assert_int_equal(c[i].resp.status, 200);
        json_t *v = resp_json(&c[i].resp);
        snprintf(want, sizeof want, "%u", i);
        assert_string_equal(json_string_value(json_object_get(v, "i")), want);
        json_decref(v);
        conn_close(&c[i]);
    }
    assert_int_equal(stats(e).suspended, 0);
    assert_int_equal(e->aborts, 0);
}

static bool one_abort(void *arg)
{
    return ((struct env *)arg)->aborts == 1;
}

static void test_http_client_gone_aborts_long_poll(void **state)
{
    struct env *e = *state;
    struct conn c;

    start(e);
    conn_open(e, &c, "GET /v1/hold HTTP/1.1\r\nHost: x\r\n\r\n");
    assert_true(wait_suspended(e, 1));
    conn_close(&c);
    assert_true(run_until(e, one_abort, e));
    /* The request waits for its handler's reply, which is then dropped. */
    assert_int_equal(stats(e).suspended, 1);
    rq_http_reply(e->held[0], 200, json_pack("{s:s}", "data", "late"));
    e->n_held = 0;
    assert_true(run_until(e, no_connections, e));
    assert_int_equal(e->aborts, 1);

    /* Same again, with an abort callback that replies at once. */
    conn_open(e, &c, "GET /v1/poll HTTP/1.1\r\nHost: x\r\n\r\n");
    assert_true(wait_suspended(e, 1));
    e->aborts = 0;
    conn_close(&c);
    assert_true(run_until(e, one_abort, e));
    assert_true(run_until(e, no_connections, e));
    assert_int_equal(stats(e).requests, 2);
}

/* An unwatched request: its client leaving is not noticed while it waits
 * (no abort callback); the late reply is dropped, and the connection
 * ends with it. */
static void test_http_unwatched_request_is_not_aborted(void **state)
{
    struct env *e = *state;
    struct conn c;

    start(e);
    conn_open(e, &c, "GET /v1/hold-unwatched HTTP/1.1\r\nHost: x\r\n\r\n");
    assert_true(wait_suspended(e, 1));
    conn_close(&c);
    rq_http_reply(e->held[0], 200, json_pack("{s:s}", "data", "late"));
    e->n_held = 0;
    assert_true(run_until(e, no_connections, e));
    assert_int_equal(e->aborts, 0);
    assert_int_equal(stats(e).requests, 1);
}

static void test_http_retry_after_header(void **state)
{
    struct env *e = *state;
    struct resp r;
    char v[32];

    start(e);
    fetch(e, "GET /v1/busy HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n",
          &r);
    assert_json_failure(&r, 503, "busy, try again in 2 s");
    assert_non_null(resp_header(&r, "Retry-After", v, sizeof v));
    assert_string_equal(v, "2");
    resp_free(&r);
}

static void test_http_reply_text_content_type(void **state)
{
    struct env *e = *state;
    struct resp r;
    char ct[64];

    start(e);
    fetch(e, "GET /metrics HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n",
          &r);
    assert_int_equal(r.status, 200);
    assert_non_null(resp_header(&r, "Content-Type", ct, sizeof ct));
    assert_string_equal(ct, "text/plain; version=0.0.4");
    assert_int_equal(r.body_len, strlen("raftq_up 1\n"));
    assert_memory_equal(r.body, "raftq_up 1\n", r.body_len);
    resp_free(&r);
}

/* Replies that take their buffers (rq_http_reply_owned, _parts) send
 * them whole, a large one included, and free them (ASan would see a
 * leak or a double free). */
static void test_http_reply_owned_and_parts(void **state)
{
    struct env *e = *state;
    struct resp r;
    char ct[64];
    static const struct {
        const char *path;
        const char *type;
        size_t head;
        size_t tail;
    } cases[] = {
        {"/parts?tail=3", "application/x-parts", 5, 3},
        {"/parts?tail=0", "application/x-parts", 5, 0},
        {"/parts?tail=3000000", "application/x-parts", 5, 3000000},
        {"/parts?tail=7&whole=1", "application/x-whole", 0, 7},
        {"/parts?tail=0&whole=1", "application/x-whole", 0, 0},
    };

    start(e);
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        char reqline[128];
        snprintf(reqline, sizeof reqline,
                 "GET %s HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n",
                 cases[i].path);
        fetch(e, reqline, &r);
        assert_int_equal(r.status, 200);
        assert_non_null(resp_header(&r, "Content-Type", ct, sizeof ct));
        assert_string_equal(ct, cases[i].type);
        assert_int_equal(r.body_len, cases[i].head + cases[i].tail);
        if (cases[i].head > 0) {
            assert_memory_equal(r.body, "head:", 5);
        }
        for (size_t k = cases[i].head; k < r.body_len; k++) {
            assert_int_equal(r.body[k], 't');
        }
        resp_free(&r);
    }
}

/* The value of the sample line that starts with @prefix, or -1. */
static double sample(const char *text, const char *prefix)
{
    for (const char *p = strstr(text, prefix); p != NULL;
         p = strstr(p + 1, prefix)) {
        if (p == text || p[-1] == '\n') {
            return strtod(p + strlen(prefix), NULL);
        }
    }
    return -1;
}

static void test_http_metrics_count_by_route_pattern(void **state)
{
    struct env *e = *state;
    struct resp r;
    struct rq_buf b;

    assert_int_equal(rq_metrics_new(&e->metrics), 0);
    start(e);
    static const struct {
        const char *req;
        int status;
    } reqs[] = {
        {"GET /v1/topics/a/records HTTP/1.1\r\n", 200},
        {"GET /v1/topics/b/records?partition=3 HTTP/1.1\r\n", 200},
        {"GET /v1/busy HTTP/1.1\r\n", 503},
        {"GET /v1/later HTTP/1.1\r\n", 200},
        /* An encoded slash matches no route; nor does an unknown path. */
        {"GET /v1/topics/b%2Fc/records HTTP/1.1\r\n", 404},
        {"GET /nowhere HTTP/1.1\r\n", 404},
        {"BREW /nowhere HTTP/1.1\r\n", 404},
        {"DELETE /v1/hold HTTP/1.1\r\n", 405},
    };
    for (size_t i = 0; i < sizeof reqs / sizeof reqs[0]; i++) {
        char text[256];
        snprintf(text, sizeof text, "%sHost: x\r\nConnection: close\r\n\r\n",
                 reqs[i].req);
        fetch(e, text, &r);
        assert_int_equal(r.status, reqs[i].status);
        resp_free(&r);
    }

    rq_buf_init(&b);
    assert_int_equal(rq_metrics_render(e->metrics, &b), 0);
    rq_buf_put_u8(&b, '\0');
    const char *text = (const char *)b.base;
    static const struct {
        const char *prefix;
        double value;
    } want[] = {
        {"raftq_http_requests_total{method=\"GET\",route=\"/v1/topics/"
         "{topic}/records\",code=\"200\"} ",
         2},
        {"raftq_http_requests_total{method=\"GET\",route=\"/v1/busy\","
         "code=\"503\"} ",
         1},
        {"raftq_http_requests_total{method=\"GET\",route=\"unmatched\","
         "code=\"404\"} ",
         2},
        {"raftq_http_requests_total{method=\"other\",route=\"unmatched\","
         "code=\"404\"} ",
         1},
        {"raftq_http_requests_total{method=\"DELETE\",route=\"unmatched\","
         "code=\"405\"} ",
         1},
        {"raftq_http_request_duration_seconds_count{method=\"GET\",route="
         "\"/v1/topics/{topic}/records\"} ",
         2},
        {"raftq_http_request_duration_seconds_bucket{method=\"GET\",route="
         "\"/v1/later\",le=\"+Inf\"} ",
         1},
        {"raftq_http_waiting_requests ", 0},
    };
    for (size_t i = 0; i < sizeof want / sizeof want[0]; i++) {
        double v = sample(text, want[i].prefix);
        if (v != want[i].value) {
            fail_msg("%s: %g, not %g, in:\n%s", want[i].prefix, v,
                     want[i].value, text);
        }
    }
    /* The late reply was timed from its headers to its answer. libuv
     * keeps its loop time in whole milliseconds, truncated, so a timer of
     * LATE_MS may fire up to 1 ms short of LATE_MS after the exact time
     * the headers were stamped (a CI run measured 29.x ms). */
    assert_true(sample(text,
                       "raftq_http_request_duration_seconds_sum{method="
                       "\"GET\",route=\"/v1/later\"} ") >=
                (LATE_MS - 1) / 1000.0);
    assert_true(sample(text,
                       "raftq_http_request_duration_seconds_bucket{"
                       "method=\"GET\",route=\"/v1/later\",le=\"0."
                       "0005\"} ") == 0);
    /* Raw paths never become label values. */
    assert_null(strstr(text, "/v1/topics/a/"));
    assert_null(strstr(text, "BREW"));
    rq_buf_close(&b);
}

/* ---- The cap on buffered bodies ---- */

#define CAP 500000 /* max_buffered of these tests. */
#define BIG 150000 /* Three fit under CAP (each takes BIG + 1), four not. */
#define N_UPLOADS 6

/*
 * A client thread that sends its headers with "Expect: 100-continue" and
 * its body only once the server says "100 Continue", as curl does with
 * large bodies, then reads the answer to the end. Refused at once, it
 * never sends the body.
 */
struct upload {
    struct env *e;
    char head[256];
    const char *body;
    size_t body_len;
    bool sent_body;
    struct resp resp;
    bool ok;
    atomic_bool done;
};

/* Reads until @r holds a whole header block. */
static bool read_head(int fd, struct resp *r)
{
    while (r->raw == NULL || strstr(r->raw, "\r\n\r\n") == NULL) {
        char buf[4096];
        ssize_t k = recv(fd, buf, sizeof buf, 0);
        if (k <= 0) {
            return false;
        }
        r->raw = realloc(r->raw, r->len + (size_t)k + 1);
        memcpy(r->raw + r->len, buf, (size_t)k);
        r->len += (size_t)k;
        r->raw[r->len] = '\0';
    }
    return true;
}

static void *upload_main(void *arg)
{
    struct upload *u = arg;
    int fd = connect_to(false, rq_http_port(u->e->h));
    if (fd >= 0) {
        u->ok =
            send_all(fd, u->head, strlen(u->head)) && read_head(fd, &u->resp);
        if (u->ok && strncmp(u->resp.raw, "HTTP/1.1 100 ", 13) == 0) {
            resp_free(&u->resp);
            u->sent_body = true;
            u->ok = send_all(fd, u->body, u->body_len);
        }
        u->ok = u->ok && read_some(fd, &u->resp, false);
        close(fd);
    }
    parse_resp(&u->resp);
    atomic_store(&u->done, true);
    uv_async_send(&u->e->async);
    return NULL;
}

static void upload_start(struct env *e, struct upload *u, pthread_t *t,
                         const char *path, const char *body, size_t len)
{
    memset(u, 0, sizeof *u);
    u->e = e;
    u->body = body;
    u->body_len = len;
    snprintf(u->head, sizeof u->head,
             "POST %s HTTP/1.1\r\nHost: x\r\nContent-Length: %zu\r\nExpect: "
             "100-continue\r\nConnection: close\r\n\r\n",
             path, len);
    atomic_init(&u->done, false);
    assert_int_equal(pthread_create(t, NULL, upload_main, u), 0);
}

static bool upload_done(void *arg)
{
    return atomic_load(&((struct upload *)arg)->done);
}

struct uploads {
    struct env *e;
    struct upload *u;
    unsigned n;
};

/* Every upload is either answered or held by h_hold. */
static bool uploads_settled(void *arg)
{
    struct uploads *us = arg;
    unsigned done = 0;
    for (unsigned i = 0; i < us->n; i++) {
        done += atomic_load(&us->u[i].done);
    }
    return done + us->e->n_held == us->n;
}

static bool uploads_done(void *arg)
{
    struct uploads *us = arg;
    for (unsigned i = 0; i < us->n; i++) {
        if (!atomic_load(&us->u[i].done)) {
            return false;
        }
    }
    return true;
}

static bool held_reached(void *arg)
{
    struct env *e = arg;
    return e->n_held == e->want_suspended;
}

static bool buffered_is(struct env *e, uint64_t bytes)
{
    struct rq_http_stats s = stats(e);
    return s.buffered == bytes;
}

static bool nothing_buffered(void *arg)
{
    return buffered_is(arg, 0);
}

/* A 503 for the cap: Retry-After and a JSON failure that says why. */
static void assert_busy(const struct resp *r)
{
    char v[32];
    assert_json_failure(r, 503, "busy receiving other requests");
    assert_non_null(resp_header(r, "Retry-After", v, sizeof v));
    assert_string_equal(v, "1");
}

/* Answers every held request with the length of its body. */
static void reply_held(struct env *e)
{
    for (unsigned i = 0; i < e->n_held; i++) {
        size_t len;
        rq_http_body(e->held[i], &len);
        rq_http_reply(e->held[i], 200,
                      json_pack("{s:I}", "len", (json_int_t)len));
    }
    e->n_held = 0;
}

static void test_http_body_cap_concurrent_uploads(void **state)
{
    struct env *e = *state;
    struct upload u[N_UPLOADS];
    pthread_t t[N_UPLOADS];
    struct uploads us = {e, u, N_UPLOADS};
    unsigned busy = 0;
    char *body = malloc(BIG);

    assert_non_null(body);
    memset(body, 'b', BIG);
    e->max_buffered = CAP;
    start(e);
    /* Six bodies of BIG at once, held by the handler once whole: some fit
     * under the cap together, the rest are refused. */
    for (unsigned i = 0; i < N_UPLOADS; i++) {
        upload_start(e, &u[i], &t[i], "/v1/hold", body, BIG);
    }
    assert_true(run_until(e, uploads_settled, &us));
    unsigned held = e->n_held;
    assert_true(held >= 1 && held * (BIG + 1) <= CAP);
    assert_int_equal(stats(e).buffered, held * (BIG + 1));
    for (unsigned i = 0; i < N_UPLOADS; i++) {
        if (atomic_load(&u[i].done)) {
            assert_true(u[i].ok);
            assert_busy(&u[i].resp);
            busy++;
        }
    }
    assert_int_equal(busy, N_UPLOADS - held);
    assert_int_equal(stats(e).busy, busy);

    /* The rest succeed in full, and then nothing is held any more. */
    reply_held(e);
    assert_true(run_until(e, uploads_done, &us));
    for (unsigned i = 0; i < N_UPLOADS; i++) {
        pthread_join(t[i], NULL);
        if (u[i].resp.status == 200) {
            json_t *v = resp_json(&u[i].resp);
            assert_int_equal(json_integer_value(json_object_get(v, "len")),
                             BIG);
            json_decref(v);
        }
        resp_free(&u[i].resp);
    }
    assert_true(run_until(e, nothing_buffered, e));
    free(body);
}

static void test_http_body_cap_declared_and_chunked(void **state)
{
    struct env *e = *state;
    struct upload u[4];
    pthread_t t[4];
    struct resp r;
    struct rq_buf b;
    char *body = malloc(BIG);

    assert_non_null(body);
    memset(body, 'c', BIG);
    assert_int_equal(rq_metrics_new(&e->metrics), 0);
    e->max_buffered = CAP;
    start(e);

    /* Three bodies of BIG, held one after the other: 3 * (BIG + 1) bytes. */
    for (unsigned i = 0; i < 3; i++) {
        upload_start(e, &u[i], &t[i], "/v1/hold", body, BIG);
        e->want_suspended = i + 1;
        assert_true(run_until(e, held_reached, e));
    }
    assert_int_equal(stats(e).buffered, 3 * (BIG + 1));

    /* A fourth says its length: refused at once, its body never sent. */
    upload_start(e, &u[3], &t[3], "/v1/hold", body, BIG);
    assert_true(run_until(e, upload_done, &u[3]));
    pthread_join(t[3], NULL);
    assert_true(u[3].ok);
    assert_false(u[3].sent_body);
    assert_busy(&u[3].resp);
    resp_free(&u[3].resp);

    /* A chunked body shows its size only as it comes: refused when its
     * buffer would pass the cap, answered at its end, its bytes given back
     * at once. */
    size_t n;
    char *chunked = chunked_post("/v1/sink", 20000, &n);
    fetch_n(e, chunked, n, &r);
    assert_busy(&r);
    resp_free(&r);
    free(chunked);
    assert_int_equal(stats(e).buffered, 3 * (BIG + 1));

    /* What still fits is taken. */
    static const char small[] =
        "POST /v1/sink HTTP/1.1\r\nHost: x\r\nContent-Length: 20000\r\n"
        "Connection: close\r\n\r\n";
    char *req = malloc(sizeof small + 20000);
    assert_non_null(req);
    memcpy(req, small, sizeof small - 1);
    memset(req + sizeof small - 1, 's', 20000);
    fetch_n(e, req, sizeof small - 1 + 20000, &r);
    assert_int_equal(r.status, 200);
    resp_free(&r);
    free(req);

    /* The held ones succeed; then nothing is held, and it shows. */
    reply_held(e);
    for (unsigned i = 0; i < 3; i++) {
        assert_true(run_until(e, upload_done, &u[i]));
        pthread_join(t[i], NULL);
        assert_int_equal(u[i].resp.status, 200);
        resp_free(&u[i].resp);
    }
    assert_true(run_until(e, nothing_buffered, e));
    assert_int_equal(stats(e).busy, 2);
    rq_buf_init(&b);
    assert_int_equal(rq_metrics_render(e->metrics, &b), 0);
    rq_buf_put_u8(&b, '\0');
    const char *text = (const char *)b.base;
    assert_true(sample(text, "raftq_http_busy_total ") == 2);
    assert_true(sample(text, "raftq_http_buffered_body_bytes ") == 0);
    /* Refused before routing: counted as requests no route took. */
    assert_true(sample(text,
                       "raftq_http_requests_total{method=\"POST\","
                       "route=\"unmatched\",code=\"503\"} ") == 2);
    rq_buf_close(&b);
    free(body);
}

struct closing {
    struct env *e;
    struct conns cs;
};

static bool closed_and_answered(void *arg)
{
    struct closing *cl = arg;
    return all_eof(&cl->cs) && cl->e->closed;
}

static void test_http_close_answers_suspended_with_503(void **state)
{
    struct env *e = *state;
    struct conn c[4];
    struct closing cl = {e, {c, 4}};

    start(e);
    for (unsigned i = 0; i < 3; i++) {
        conn_open(e, &c[i], "GET /v1/hold HTTP/1.1\r\nHost: x\r\n\r\n");
    }
    assert_true(wait_suspended(e, 3));
    /* And an idle keep-alive connection after an answered request. */
    conn_open(e, &c[3], "GET /metrics HTTP/1.1\r\nHost: x\r\n\r\n");
    assert_true(run_until(e, has_reply, &c[3]));
    assert_int_equal(e->n_held, 3);

    rq_http_close(e->h, on_closed, e);
    assert_false(e->closed); /* The callback never runs inside close. */
    assert_true(run_until(e, closed_and_answered, &cl));
    /* Each waiting request heard of the shutdown, then was answered. */
    assert_int_equal(e->aborts, 3);
    for (unsigned i = 0; i < 3; i++) {
        parse_resp(&c[i].resp);
        assert_json_failure(&c[i].resp, 503, "shutting down");
        conn_close(&c[i]);
    }
    parse_resp(&c[3].resp);
    assert_int_equal(c[3].resp.status, 200);
    conn_close(&c[3]);
    e->h = NULL;
    /* teardown checks that uv_loop_close() finds nothing left. */
}

/* Two requests sent at once on one connection: the second waits behind the
 * first, which is suspended, and both are answered in order. */
static void test_http_pipelined_behind_suspended(void **state)
{
    struct env *e = *state;
    struct conn c;
    struct conns cs = {&c, 1};

    start(e);
    conn_open(e, &c,
              "GET /v1/hold?i=first HTTP/1.1\r\nHost: x\r\n\r\n"
              "GET /metrics HTTP/1.1\r\nHost: x\r\nConnection: "
              "close\r\n\r\n");
    assert_true(wait_suspended(e, 1));
    assert_null(c.resp.raw);
    rq_http_reply(e->held[0], 200,
                  json_pack("{s:s}", "i", rq_http_query(e->held[0], "i")));
    e->n_held = 0;
    assert_true(run_until(e, all_eof, &cs));
    const char *first = strstr(c.resp.raw, "{\"i\":\"first\"");
    const char *second = strstr(c.resp.raw, "raftq_up 1");
    assert_non_null(first);
    assert_non_null(second);
    assert_true(first < second);
    assert_int_equal(e->aborts, 0);
    assert_int_equal(stats(e).requests, 2);
    conn_close(&c);
}

/* A handler may close the server and still answer its own request. */
static void test_http_close_from_a_handler(void **state)
{
    struct env *e = *state;
    struct conn c;
    struct closing cl = {e, {&c, 1}};
    struct resp r;

    start(e);
    conn_open(e, &c, "GET /v1/hold HTTP/1.1\r\nHost: x\r\n\r\n");
    assert_true(wait_suspended(e, 1));
    fetch(e,
          "POST /v1/shutdown HTTP/1.1\r\nHost: x\r\nContent-Length: "
          "0\r\n\r\n",
          &r);
    assert_int_equal(r.status, 200);
    resp_free(&r);
    assert_true(run_until(e, closed_and_answered, &cl));
    parse_resp(&c.resp);
    assert_json_failure(&c.resp, 503, "shutting down");
    conn_close(&c);
    e->h = NULL;
}

/* A client still uploading when the server closes is cut off after the
 * drain deadline, and its request freed. */
static void test_http_close_cuts_off_unfinished_upload(void **state)
{
    struct env *e = *state;
    struct conn c;
    struct closing cl = {e, {&c, 1}};

    start(e);
    conn_open(e, &c,
              "POST /v1/topics/t/records HTTP/1.1\r\nHost: x\r\n"
              "Content-Length: 100\r\n\r\n{\"a\":");
    assert_true(run_until(e, one_connection, e));
    uint64_t t0 = uv_hrtime();
    rq_http_close(e->h, on_closed, e);
    assert_true(run_until(e, closed_and_answered, &cl));
    uint64_t ms = (uv_hrtime() - t0) / 1000000;
    assert_true(ms >= 900 && ms < 3000);
    assert_int_equal(c.resp.len, 0);
    conn_close(&c);
    e->h = NULL;
}

/* At the connection limit a new client waits in the backlog until a
 * connection closes, then is served without further socket activity. */
static void test_http_connection_limit(void **state)
{
    struct env *e = *state;
    struct conn c[3];
    struct conns waiting = {&c[2], 1};

    start_with(e, 2);
    for (int i = 0; i < 2; i++) {
        conn_open(e, &c[i],
                  "GET /v1/hold HTTP/1.1\r\nHost: x\r\nConnection: "
                  "close\r\n\r\n");
    }
    assert_true(wait_suspended(e, 2));
    conn_open(e, &c[2],
              "GET /metrics HTTP/1.1\r\nHost: x\r\nConnection: "
              "close\r\n\r\n");
    assert_false(all_eof(&waiting));
    assert_int_equal(stats(e).connections, 2);

    rq_http_reply(e->held[0], 200, NULL);
    assert_true(run_until(e, all_eof, &waiting));
    parse_resp(&c[2].resp);
    assert_int_equal(c[2].resp.status, 200);

    rq_http_reply(e->held[1], 200, NULL);
    e->n_held = 0;
    conn_close(&c[0]);
    conn_close(&c[1]);
    conn_close(&c[2]);
    assert_true(run_until(e, no_connections, e));
}

static void test_http_idle_client_is_cut_off(void **state)
{
    struct env *e = *state;
    struct conn c;
    struct conns cs = {&c, 1};

    start(e);
    memset(&c, 0, sizeof c);
    c.fd = connect_to(false, rq_http_port(e->h));
    assert_true(c.fd >= 0);
    uint64_t t0 = uv_hrtime();
    assert_true(run_until(e, all_eof, &cs));
    uint64_t ms = (uv_hrtime() - t0) / 1000000;
    assert_int_equal(c.resp.len, 0);
    assert_true(ms >= IDLE_S * 1000 - 100 && ms < IDLE_S * 1000 + 1500);
    conn_close(&c);
    assert_true(run_until(e, no_connections, e));
}

static void test_http_bind_errors(void **state)
{
    struct env *e = *state;
    struct rq_http *other = NULL;
    struct rq_http_config cfg = {0};
    char addr[64];
    char why[256];

    start(e);
    snprintf(addr, sizeof addr, "127.0.0.1:%u", (unsigned)rq_http_port(e->h));
    cfg.bind_address = addr;
    assert_int_equal(
        rq_http_new(&e->loop, &cfg, routes, 1, e, &other, why, sizeof why),
        RQ_IO);
    assert_null(other);
    assert_non_null(strstr(why, addr));
    if (strstr(why, "in use") == NULL) {
        fail_msg("why: %s", why);
    }

    cfg.bind_address = "127.0.0.1";
    assert_int_equal(
        rq_http_new(&e->loop, &cfg, routes, 1, e, &other, why, sizeof why),
        RQ_INVALID);
    cfg.bind_address = "127.0.0.1:70000";
    assert_int_equal(
        rq_http_new(&e->loop, &cfg, routes, 1, e, &other, why, sizeof why),
        RQ_INVALID);
    assert_null(other);
}

static void test_http_ipv6_loopback(void **state)
{
    struct env *e = *state;
    struct rq_http_config cfg = {.bind_address = "[::1]:0"};
    char why[256];
    struct resp r;

    if (rq_http_new(&e->loop, &cfg, routes, sizeof routes / sizeof routes[0], e,
                    &e->h, why, sizeof why) != 0) {
        e->h = NULL;
        print_message("no IPv6 loopback here: %s\n", why);
        skip();
    }
    e->ipv6 = true;
    fetch(e, "GET /metrics HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n",
          &r);
    assert_int_equal(r.status, 200);
    resp_free(&r);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_http_routes_params_and_query,
                                        setup, teardown),
        cmocka_unit_test_setup_teardown(test_http_query_nul_is_refused, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(
            test_http_unknown_transfer_encoding_is_refused, setup, teardown),
        cmocka_unit_test_setup_teardown(test_http_arg_query_wins_over_body,
                                        setup, teardown),
        cmocka_unit_test_setup_teardown(test_http_json_bodies, setup, teardown),
        cmocka_unit_test_setup_teardown(test_http_json_depth_limit, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_http_body_limit, setup, teardown),
        cmocka_unit_test_setup_teardown(test_http_body_cap_concurrent_uploads,
                                        setup, teardown),
        cmocka_unit_test_setup_teardown(test_http_body_cap_declared_and_chunked,
                                        setup, teardown),
        cmocka_unit_test_setup_teardown(test_http_reply_later_from_timer, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_http_many_suspended_requests,
                                        setup, teardown),
        cmocka_unit_test_setup_teardown(test_http_client_gone_aborts_long_poll,
                                        setup, teardown),
        cmocka_unit_test_setup_teardown(
            test_http_unwatched_request_is_not_aborted, setup, teardown),
        cmocka_unit_test_setup_teardown(test_http_retry_after_header, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(
            test_http_metrics_count_by_route_pattern, setup, teardown),
        cmocka_unit_test_setup_teardown(test_http_reply_owned_and_parts, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_http_reply_text_content_type,
                                        setup, teardown),
        cmocka_unit_test_setup_teardown(
            test_http_close_answers_suspended_with_503, setup, teardown),
        cmocka_unit_test_setup_teardown(test_http_pipelined_behind_suspended,
                                        setup, teardown),
        cmocka_unit_test_setup_teardown(test_http_close_from_a_handler, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(
            test_http_close_cuts_off_unfinished_upload, setup, teardown),
        cmocka_unit_test_setup_teardown(test_http_connection_limit, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_http_idle_client_is_cut_off, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_http_bind_errors, setup, teardown),
        cmocka_unit_test_setup_teardown(test_http_ipv6_loopback, setup,
                                        teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}

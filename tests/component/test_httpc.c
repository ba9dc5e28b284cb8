/*
 * Component tests of rq_httpc: the client and an rq_http server share the
 * test's uv loop on loopback, so every request goes through real sockets
 * with no thread of the test's own. A tiny raw HTTP server on uv_tcp counts
 * the connections it accepts, to see keep-alive at work. Covered: methods
 * with bodies and headers, error statuses and Retry-After, a server that
 * never answers, a refused connection, an answer followed at once by a
 * connection reset, the response size limit, many
 * requests at once, invalid requests, and closing with requests pending
 * (also from inside a callback). Signed requests: rq_httpc signs, and the
 * server's routes that need a signature check it (rq_httpsig) before the
 * handler.
 */
#include <arpa/inet.h>
#include <netinet/in.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <pthread.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cmocka.h>

#include <curl/curl.h>
#include <jansson.h>
#include <uv.h>

#include "harness.h"
#include "rq_certs.h"
#include "rq_err.h"
#include "rq_http.h"
#include "rq_httpc.h"
#include "rq_httpsig.h"
#include "rq_keys.h"
#include "rq_tls.h"

#define WAIT_MS 5000
#define N_MANY 200
#define N_SEQUENTIAL 10
#define RAW_CONNS_MAX 16
#define URL_LEN 128
#define SIGNED_MAX 4

/* A response as the client's callback saw it (copied). */
struct answer {
    bool done;
    unsigned calls;
    int err;
    long status;
    char *body;
    size_t body_len;
    char why[256];
    char retry_after[32];
    bool has_retry_after;
    char content_type[64]; /* "" when none. */
    uint64_t at_ms;        /* uv_now() when the callback ran. */
};

/* A connection of the raw server. */
struct raw_conn {
    uv_tcp_t tcp;
    struct env *env;
    char buf[4096];
    size_t len;
    bool closed;
};

struct env {
    uv_loop_t loop;
    uv_timer_t wake;
    uv_prepare_t prepare; /* Ends an iteration early once cond holds. */
    harness_cond cond;
    void *cond_arg;
    struct rq_http *h;
    bool h_closed;
    struct rq_keys keys;
    struct rq_httpsig *sig; /* Checks the /signed routes. */
    struct rq_httpc *c;
    bool c_closed;
    char base[URL_LEN]; /* "http://127.0.0.1:PORT" of the rq_http server. */
    struct rq_http_req *held[N_MANY];
    unsigned n_held;

    /* The raw server. */
    uv_tcp_t raw;
    bool raw_live;
    uint16_t raw_port;
    unsigned raw_accepts;
    unsigned raw_requests;  /* Requests it received. */
    unsigned raw_vanish_at; /* 0, or the request it answers by vanishing. */
    unsigned raw_reset_at;  /* 0, or the request it answers, then resets. */
    bool raw_gone;          /* It vanished: no connection, no listener. */
    struct raw_conn *raw_conns[RAW_CONNS_MAX];

    /* Closing from inside a callback. */
    struct answer *answers;
    size_t n_answers;
    int do_in_cancel; /* rq_httpc_do() from a canceled request's callback. */

    /* TLS: certificates under dir, the server's and the client's. */
    char dir[64];
    struct rq_tls *srv_tls;
    struct rq_tls *cli_tls;
    unsigned aborts; /* Abort callbacks of /internal/poll. */
    unsigned polls;  /* Requests /internal/poll received. */
};

/* ---- The rq_http server ---- */

static json_t *text_or_null(const char *s)
{
    return s != NULL ? json_string(s) : json_null();
}

/* Answers with what it was sent. */
static void h_echo(struct rq_http_req *req, void *data)
{
    size_t len;
    const uint8_t *body = rq_http_body(req, &len);
    (void)data;
    json_t *o = json_object();
    json_object_set_new(o, "method", json_string(rq_http_method(req)));
    json_object_set_new(o, "name", text_or_null(rq_http_param(req, "name")));
    json_object_set_new(o, "q", text_or_null(rq_http_query(req, "q")));
    json_object_set_new(o, "x_test",
                        text_or_null(rq_http_header(req, "X-Test")));
    json_object_set_new(o, "content_type",
                        text_or_null(rq_http_header(req, "Content-Type")));
    json_object_set_new(o, "body", json_stringn((const char *)body, len));
    rq_http_reply(req, 200, o);
}

/* Answers with the status in the path; 503 also with Retry-After. */
static void h_status(struct rq_http_req *req, void *data)
{
    (void)data;
    int status = atoi(rq_http_param(req, "code"));
    if (status == 503) {
        rq_http_set_header(req, "Retry-After", "7");
    }
    if (status >= 400) {
        rq_http_reply_error(req, status, "status %d as asked", status);
    } else {
        rq_http_reply(req, status, NULL);
    }
}

/* Never answers (until the server closes). */
static void h_hold(struct rq_http_req *req, void *data)
{
    struct env *e = data;
    assert_true(e->n_held < N_MANY);
    e->held[e->n_held++] = req;
}

/* A text body of exactly ?n bytes. */
static void h_big(struct rq_http_req *req, void *data)
{
    (void)data;
    size_t n = (size_t)atol(rq_http_query(req, "n"));
    char *text = malloc(n + 1);
    assert_non_null(text);
    memset(text, 'x', n);
    rq_http_reply_text(req, 200, "text/plain", text, n);
    free(text);
}

static void on_poll_abort(struct rq_http_req *req, void *data)
{
    struct env *e = data;
    e->aborts++;
    rq_http_reply(req, 200, NULL); /* Goes nowhere: the client left. */
}

/* A long poll that ends only when its client leaves. */
static void h_poll(struct rq_http_req *req, void *data)
{
    ((struct env *)data)->polls++;
    rq_http_on_abort(req, on_poll_abort, data);
}

static const struct rq_http_route routes[] = {
    {"GET", "/echo/{name}", h_echo},
    {"POST", "/echo/{name}", h_echo},
    {"DELETE", "/echo/{name}", h_echo},
    {"GET", "/status/{code}", h_status},
    {"GET", "/hold", h_hold},
    {"GET", "/big", h_big},
    {"GET", "/signed/{name}", h_echo, RQ_HTTPSIG_M2B},
    {"POST", "/signed/{name}", h_echo, RQ_HTTPSIG_M2B},
    {"GET", "/internal/{name}", h_echo},
    {"GET", "/internal-poll", h_poll},
};

/* ---- The raw server: counts connections, answers every request "ok" ---- */

static const char raw_reply[] =
    "HTTP/1.1 200 OK\r\nContent-Length: 2\r\nContent-Type: text/plain\r\n"
    "\r\nok";

static void on_raw_written(uv_write_t *w, int status)
{
    (void)status;
    free(w);
}

static void on_raw_conn_closed(uv_handle_t *h)
{
    struct raw_conn *rc = h->data;
    for (size_t i = 0; i < RAW_CONNS_MAX; i++) {
        if (rc->env->raw_conns[i] == rc) {
            rc->env->raw_conns[i] = NULL;
        }
    }
    free(rc);
}

static void raw_alloc(uv_handle_t *h, size_t hint, uv_buf_t *buf)
{
    struct raw_conn *rc = h->data;
    (void)hint;
    buf->base = rc->buf + rc->len;
    buf->len = sizeof rc->buf - rc->len - 1;
}

/* Answers each complete request head (the client sends GETs only). */
static void raw_close_conns(struct env *e)
{
    for (size_t i = 0; i < RAW_CONNS_MAX; i++) {
        if (e->raw_conns[i] != NULL && !e->raw_conns[i]->closed) {
            e->raw_conns[i]->closed = true;
            uv_close((uv_handle_t *)&e->raw_conns[i]->tcp, on_raw_conn_closed);
        }
    }
}

static void raw_vanish(struct env *e)
{
    raw_close_conns(e);
    uv_close((uv_handle_t *)&e->raw, NULL);
    e->raw_gone = true;
}

static void on_raw_read(uv_stream_t *s, ssize_t n, const uv_buf_t *buf)
{
    struct raw_conn *rc = s->data;
    (void)buf;
    if (n < 0) {
        rc->closed = true;
        uv_close((uv_handle_t *)s, on_raw_conn_closed);
        return;
    }
    rc->len += (size_t)n;
    rc->buf[rc->len] = '\0';
    char *end;
    while ((end = strstr(rc->buf, "\r\n\r\n")) != NULL) {
        size_t used = (size_t)(end + 4 - rc->buf);
        memmove(rc->buf, rc->buf + used, rc->len - used + 1);
        rc->len -= used;
        struct env *e = rc->env;
        if (++e->raw_requests == e->raw_vanish_at) {
            /* A server killed right after it read the request: every
             * connection closes unanswered and nothing listens any more. */
            raw_vanish(e);
            return;
        }
        uv_buf_t out = uv_buf_init((char *)raw_reply, sizeof raw_reply - 1);
        if (e->raw_requests == e->raw_reset_at) {
            /* A server that answers in full and then closes with a reset
             * (as one does that closes with unread bytes): the answer and
             * the reset are both in the client's socket before its loop
             * polls again. */
            assert_int_equal(uv_try_write(s, &out, 1), (int)out.len);
            rc->closed = true;
            assert_int_equal(
                uv_tcp_close_reset((uv_tcp_t *)s, on_raw_conn_closed), 0);
            return;
        }
        uv_write_t *w = malloc(sizeof *w);
        assert_non_null(w);
        assert_int_equal(uv_write(w, s, &out, 1, on_raw_written), 0);
    }
}

static void on_raw_connection(uv_stream_t *server, int status)
{
    struct env *e = server->data;
    assert_int_equal(status, 0);
    struct raw_conn *rc = calloc(1, sizeof *rc);
    assert_non_null(rc);
    rc->env = e;
    uv_tcp_init(&e->loop, &rc->tcp);
    rc->tcp.data = rc;
    assert_int_equal(uv_accept(server, (uv_stream_t *)&rc->tcp), 0);
    e->raw_accepts++;
    for (size_t i = 0; i < RAW_CONNS_MAX; i++) {
        if (e->raw_conns[i] == NULL) {
            e->raw_conns[i] = rc;
            break;
        }
    }
    uv_read_start((uv_stream_t *)&rc->tcp, raw_alloc, on_raw_read);
}

static void raw_start(struct env *e)
{
    struct sockaddr_in sa;
    struct sockaddr_storage bound;
    int len = sizeof bound;
    uv_tcp_init(&e->loop, &e->raw);
    e->raw.data = e;
    uv_ip4_addr("127.0.0.1", 0, &sa);
    assert_int_equal(uv_tcp_bind(&e->raw, (struct sockaddr *)&sa, 0), 0);
    assert_int_equal(uv_listen((uv_stream_t *)&e->raw, 16, on_raw_connection),
                     0);
    uv_tcp_getsockname(&e->raw, (struct sockaddr *)&bound, &len);
    e->raw_port = ntohs(((struct sockaddr_in *)&bound)->sin_port);
    e->raw_live = true;
}

/* ---- Fixture ---- */

static void on_prepare(uv_prepare_t *p)
{
    struct env *e = p->data;
    if (e->cond(e->cond_arg)) {
        uv_stop(&e->loop); /* The poll that follows will not block. */
    }
}

/* Runs the loop until @cond holds or WAIT_MS pass (see test_http.c for
 * why the prepare handle is there). */
static bool run_until(struct env *e, harness_cond cond, void *arg)
{
    e->cond = cond;
    e->cond_arg = arg;
    uv_prepare_start(&e->prepare, on_prepare);
    bool ok = harness_run_until(&e->loop, &e->wake, cond, arg, WAIT_MS);
    uv_prepare_stop(&e->prepare);
    return ok;
}

static void on_server_closed(void *data)
{
    ((struct env *)data)->h_closed = true;
}

static void on_client_closed(void *data)
{
    ((struct env *)data)->c_closed = true;
}

static bool server_closed(void *arg)
{
    return ((struct env *)arg)->h_closed;
}

static bool client_closed(void *arg)
{
    return ((struct env *)arg)->c_closed;
}

/* ---- TLS: the server speaks HTTPS and wants a client certificate on
 * /internal paths; certificates of two CAs are made for each test. ---- */

static bool internal_only(const char *path)
{
    return strncmp(path, "/internal", 9) == 0;
}

static void tls_file(const struct env *e, char *out, size_t n, const char *name)
{
    snprintf(out, n, "%s/%s", e->dir, name);
}

static void tls_write(struct env *e, const char *name, const char *pem,
                      unsigned mode)
{
    char path[128], why[256];
    tls_file(e, path, sizeof path, name);
    assert_int_equal(rq_pem_write(path, pem, mode, why, sizeof why), 0);
}

static void tls_issue(struct env *e, struct rq_ca *ca, const char *name)
{
    const char *sans[] = {"127.0.0.1", "localhost"};
    char *cert, *key, why[256], file[32];
    assert_int_equal(
        rq_ca_issue(ca, name, sans, 2, &cert, &key, why, sizeof why), 0);
    snprintf(file, sizeof file, "%s.crt", name);
    tls_write(e, file, cert, 0644);
    snprintf(file, sizeof file, "%s.key", name);
    tls_write(e, file, key, 0600);
    free(cert);
    free(key);
}

static struct rq_tls *tls_load(struct env *e, const char *node, const char *ca)
{
    char cert[128], key[128], cafile[128], why[256], name[32];
    struct rq_tls *tls;
    snprintf(name, sizeof name, "%s.crt", node);
    tls_file(e, cert, sizeof cert, name);
    snprintf(name, sizeof name, "%s.key", node);
    tls_file(e, key, sizeof key, name);
    snprintf(name, sizeof name, "%s.crt", ca);
    tls_file(e, cafile, sizeof cafile, name);
    struct rq_tls_config cfg = {cert, key, cafile, 0};
    if (rq_tls_new(&cfg, &tls, why, sizeof why) != 0) {
        fail_msg("rq_tls_new: %s", why);
    }
    return tls;
}

/* The server and the client on a fresh loop; with @tls the server speaks
 * HTTPS and the client is set up for TLS with a certificate of the same
 * CA. */
static int setup_with(void **state, bool tls)
{
    struct env *e = calloc(1, sizeof *e);
    char why[256];
    assert_non_null(e);
    if (tls) {
        struct rq_ca *ca1, *ca2;
        snprintf(e->dir, sizeof e->dir, "/tmp/raftq-httpc-XXXXXX");
        assert_non_null(mkdtemp(e->dir));
        assert_int_equal(rq_ca_new("test CA 1", &ca1, why, sizeof why), 0);
        assert_int_equal(rq_ca_new("test CA 2", &ca2, why, sizeof why), 0);
        tls_write(e, "ca1.crt", rq_ca_pem(ca1), 0644);
        tls_write(e, "ca2.crt", rq_ca_pem(ca2), 0644);
        tls_issue(e, ca1, "srv");
        tls_issue(e, ca1, "cli");
        tls_issue(e, ca2, "x");
        rq_ca_free(ca1);
        rq_ca_free(ca2);
        e->srv_tls = tls_load(e, "srv", "ca1");
        e->cli_tls = tls_load(e, "cli", "ca1");
    }
    assert_int_equal(uv_loop_init(&e->loop), 0);
    uv_timer_init(&e->loop, &e->wake);
    uv_prepare_init(&e->loop, &e->prepare);
    e->prepare.data = e;
    static const char secret[] = "httpc-test-secret-0123456789abcdef";
    rq_keys_derive(&e->keys, secret, sizeof secret - 1);
    /* Room for SIGNED_MAX accepted requests per window, so that a test
     * can fill the replay cache. */
    struct rq_httpsig_config sc = {.keys = &e->keys,
                                   .cache_entries = SIGNED_MAX};
    assert_int_equal(rq_httpsig_new(&sc, &e->sig), 0);
    struct rq_http_config cfg = {
        .bind_address = "127.0.0.1:0",
        .authenticate = rq_httpsig_authenticate,
        .auth_data = e->sig,
        .tls = e->srv_tls,
        .client_cert_required = tls ? internal_only : NULL,
    };
    if (rq_http_new(&e->loop, &cfg, routes, sizeof routes / sizeof routes[0], e,
                    &e->h, why, sizeof why) != 0) {
        fail_msg("rq_http_new: %s", why);
    }
    /* http:// also under TLS, as the processes build internal URLs. */
    snprintf(e->base, sizeof e->base, "http://127.0.0.1:%u",
             (unsigned)rq_http_port(e->h));
    if (rq_httpc_new(&e->loop, &e->c, why, sizeof why) != 0) {
        fail_msg("rq_httpc_new: %s", why);
    }
    if (tls) {
        rq_httpc_set_tls(e->c, e->cli_tls);
    }
    *state = e;
    return 0;
}

static int setup(void **state)
{
    return setup_with(state, false);
}

static int setup_tls(void **state)
{
    return setup_with(state, true);
}

static int teardown(void **state)
{
    struct env *e = *state;
    if (!e->c_closed) {
        if (e->c != NULL) {
            rq_httpc_close(e->c, on_client_closed, e);
        }
        assert_true(run_until(e, client_closed, e));
    }
    rq_http_close(e->h, on_server_closed, e);
    assert_true(run_until(e, server_closed, e));
    if (e->raw_live && !e->raw_gone) {
        raw_close_conns(e);
        uv_close((uv_handle_t *)&e->raw, NULL);
    }
    uv_close((uv_handle_t *)&e->wake, NULL);
    uv_close((uv_handle_t *)&e->prepare, NULL);
    assert_int_equal(harness_drain(&e->loop, 5000), 0);
    /* Every handle of the client and the server is closed. */
    assert_int_equal(uv_loop_close(&e->loop), 0);
    rq_httpsig_free(e->sig);
    for (size_t i = 0; i < e->n_answers; i++) {
        free(e->answers[i].body);
    }
    free(e->answers);
    rq_tls_free(e->srv_tls);
    rq_tls_free(e->cli_tls);
    if (e->dir[0] != '\0') {
        harness_rm_tree(e->dir);
    }
    free(e);
    return 0;
}

/* ---- Requests ---- */

static struct env *answer_env; /* For the callbacks that need the env. */

static void on_answer(void *data, const struct rq_httpc_resp *resp)
{
    struct answer *a = data;
    a->calls++;
    a->done = true;
    a->err = resp->err;
    a->status = resp->status;
    assert_non_null(resp->body);
    assert_int_equal(resp->body[resp->body_len], '\0');
    free(a->body);
    /* Every answer with a body is taken, not copied: ASan sees the
     * buffer freed once, by us. */
    a->body = rq_httpc_take_body(resp);
    if (a->body != NULL) {
        assert_ptr_equal(a->body, resp->body);
        assert_null(rq_httpc_take_body(resp)); /* Taken already. */
    } else {
        a->body = malloc(resp->body_len + 1);
        assert_non_null(a->body);
        memcpy(a->body, resp->body, resp->body_len + 1);
    }
    a->body_len = resp->body_len;
    snprintf(a->content_type, sizeof a->content_type, "%s",
             resp->content_type != NULL ? resp->content_type : "");
    if (resp->err != 0) {
        assert_non_null(resp->why);
        snprintf(a->why, sizeof a->why, "%s", resp->why);
    }
    a->has_retry_after = resp->retry_after != NULL;
    if (a->has_retry_after) {
        snprintf(a->retry_after, sizeof a->retry_after, "%s",
                 resp->retry_after);
    }
    if (answer_env != NULL) {
        a->at_ms = uv_now(&answer_env->loop);
    }
}

static void answer_free(struct answer *a)
{
    free(a->body);
    a->body = NULL;
}

static bool answered(void *arg)
{
    return ((struct answer *)arg)->done;
}

static void start(struct env *e, const char *method, const char *path,
                  const char *const *headers, const char *body,
                  struct answer *a)
{
    char url[URL_LEN * 2];
    snprintf(url, sizeof url, "%s%s", e->base, path);
    struct rq_httpc_req req = {
        .method = method,
        .url = url,
        .headers = headers,
        .body = body,
        .body_len = body != NULL ? strlen(body) : 0,
    };
    memset(a, 0, sizeof *a);
    assert_int_equal(rq_httpc_do(e->c, &req, on_answer, a), 0);
}

/* One request, run to its answer. */
static void call(struct env *e, const char *method, const char *path,
                 const char *const *headers, const char *body, struct answer *a)
{
    start(e, method, path, headers, body, a);
    assert_true(run_until(e, answered, a));
    assert_int_equal(a->calls, 1);
}

static json_t *answer_json(const struct answer *a)
{
    json_error_t jerr;
    json_t *o = json_loadb(a->body, a->body_len, 0, &jerr);
    if (o == NULL) {
        fail_msg("not JSON (%s): %.*s", jerr.text, (int)a->body_len, a->body);
    }
    return o;
}

static const char *field(json_t *o, const char *name)
{
    return json_string_value(json_object_get(o, name));
}

/* One request signed by @sign (or not, NULL), run to its answer. */
static void call_signed(struct env *e, const char *method, const char *path,
                        const char *body, const struct rq_httpc_signer *sign,
                        struct answer *a)
{
    char url[URL_LEN * 2];
    snprintf(url, sizeof url, "%s%s", e->base, path);
    struct rq_httpc_req req = {
        .method = method,
        .url = url,
        .body = body,
        .body_len = body != NULL ? strlen(body) : 0,
        .sign = sign,
    };
    memset(a, 0, sizeof *a);
    assert_int_equal(rq_httpc_do(e->c, &req, on_answer, a), 0);
    assert_true(run_until(e, answered, a));
}

/* ---- Tests ---- */

/* The signature covers the path and query as sent, percent-encoding and
 * all, and the body; the server checks it before the handler. */
static void test_httpc_signed_requests(void **state)
{
    struct env *e = *state;
    struct answer a;
    struct rq_httpc_signer m2b = {rq_keys_get(&e->keys, RQ_KEY_HTTP_M2B),
                                  "manager-1"};
    struct rq_httpc_signer b2m = {rq_keys_get(&e->keys, RQ_KEY_HTTP_B2M),
                                  "broker-1"};
    struct rq_httpc_signer bad_sender = {m2b.key, "manager 1"};
    char url[URL_LEN * 2];
    json_t *o;

    call_signed(e, "GET", "/signed/a%20b%C3%A9?q=x%26y&z=%2F", NULL, &m2b, &a);
    assert_int_equal(a.status, 200);
    o = answer_json(&a);
    assert_string_equal(field(o, "name"), "a b\xc3\xa9");
    assert_string_equal(field(o, "q"), "x&y");
    json_decref(o);
    answer_free(&a);
    call_signed(e, "POST", "/signed/p", "{\"k\":1}", &m2b, &a);
    assert_int_equal(a.status, 200);
    o = answer_json(&a);
    assert_string_equal(field(o, "body"), "{\"k\":1}");
    json_decref(o);
    /* Each request gets its own nonce: the same request again passes. */
    answer_free(&a);
    call_signed(e, "POST", "/signed/p", "{\"k\":1}", &m2b, &a);
    assert_int_equal(a.status, 200);

    answer_free(&a);
    call_signed(e, "POST", "/signed/p", "{}", NULL, &a);
    assert_int_equal(a.status, 401);
    assert_non_null(strstr(a.body, "missing signature"));
    answer_free(&a);
    call_signed(e, "POST", "/signed/p", "{}", &b2m, &a);
    assert_int_equal(a.status, 401);
    assert_non_null(strstr(a.body, "bad signature"));
    /* A fragment is not sent, so it is not signed. */
    answer_free(&a);
    call_signed(e, "GET", "/signed/f?q=1#part", NULL, &m2b, &a);
    assert_int_equal(a.status, 200);
    /* SIGNED_MAX accepted within the window: the replay cache is full, and
     * the next one is refused for now rather than accepted unremembered. */
    answer_free(&a);
    call_signed(e, "GET", "/signed/g", NULL, &m2b, &a);
    assert_int_equal(a.status, 503);
    assert_true(a.has_retry_after);
    assert_string_equal(a.retry_after, "1");
    assert_non_null(strstr(a.body, "retry"));
    /* A route without auth ignores the header. */
    answer_free(&a);
    call_signed(e, "GET", "/echo/e", NULL, &b2m, &a);
    assert_int_equal(a.status, 200);

    answer_free(&a);
    snprintf(url, sizeof url, "%s/signed/p", e->base);
    struct rq_httpc_req req = {
        .method = "GET", .url = url, .sign = &bad_sender};
    assert_int_equal(rq_httpc_do(e->c, &req, on_answer, &a), RQ_INVALID);
}

static void test_httpc_methods_bodies_and_headers(void **state)
{
    struct env *e = *state;
    struct answer a;
    static const char *const hdrs[] = {"X-Test: hello", NULL};
    static const char *const typed[] = {"Content-Type: text/plain", NULL};

    call(e, "GET", "/echo/one?q=a%20b", hdrs, NULL, &a);
    assert_int_equal(a.err, 0);
    assert_int_equal(a.status, 200);
    assert_string_equal(a.content_type, "application/json");
    json_t *o = answer_json(&a);
    assert_string_equal(field(o, "method"), "GET");
    assert_string_equal(field(o, "name"), "one");
    assert_string_equal(field(o, "q"), "a b");
    assert_string_equal(field(o, "x_test"), "hello");
    assert_string_equal(field(o, "body"), "");
    json_decref(o);
    answer_free(&a);

    call(e, "POST", "/echo/two", NULL, "{\"k\":\"v\"}", &a);
    assert_int_equal(a.status, 200);
    o = answer_json(&a);
    assert_string_equal(field(o, "method"), "POST");
    assert_string_equal(field(o, "body"), "{\"k\":\"v\"}");
    assert_string_equal(field(o, "content_type"), "application/json");
    assert_null(field(o, "x_test"));
    json_decref(o);
    answer_free(&a);

    call(e, "DELETE", "/echo/three", typed, "gone", &a);
    assert_int_equal(a.status, 200);
    o = answer_json(&a);
    assert_string_equal(field(o, "method"), "DELETE");
    assert_string_equal(field(o, "name"), "three");
    assert_string_equal(field(o, "body"), "gone");
    assert_string_equal(field(o, "content_type"), "text/plain");
    json_decref(o);
    answer_free(&a);

    /* A POST with no body sends an empty one. */
    call(e, "POST", "/echo/four", NULL, NULL, &a);
    assert_int_equal(a.status, 200);
    o = answer_json(&a);
    assert_string_equal(field(o, "body"), "");
    json_decref(o);
    answer_free(&a);
    assert_int_equal(rq_httpc_pending(e->c), 0);
}

static void test_httpc_error_statuses_and_retry_after(void **state)
{
    struct env *e = *state;
    struct answer a;

    call(e, "GET", "/status/404", NULL, NULL, &a);
    assert_int_equal(a.err, 0); /* A status is an answer, not an error. */
    assert_int_equal(a.status, 404);
    assert_false(a.has_retry_after);
    json_t *o = answer_json(&a);
    assert_string_equal(field(o, "status"), "failure");
    assert_string_equal(field(o, "message"), "status 404 as asked");
    json_decref(o);
    answer_free(&a);

    call(e, "GET", "/status/503", NULL, NULL, &a);
    assert_int_equal(a.err, 0);
    assert_int_equal(a.status, 503);
    assert_true(a.has_retry_after);
    assert_string_equal(a.retry_after, "7");
    answer_free(&a);

    call(e, "GET", "/status/409", NULL, NULL, &a);
    assert_int_equal(a.status, 409);
    answer_free(&a);

    call(e, "GET", "/status/204", NULL, NULL, &a);
    assert_int_equal(a.err, 0);
    assert_int_equal(a.status, 204);
    assert_int_equal(a.body_len, 0);
    answer_free(&a);

    /* An unknown path is rq_http's own 404. */
    call(e, "GET", "/nowhere", NULL, NULL, &a);
    assert_int_equal(a.status, 404);
    answer_free(&a);
}

static void test_httpc_server_that_never_answers_times_out(void **state)
{
    struct env *e = *state;
    struct answer a;
    char url[URL_LEN * 2];

    answer_env = e;
    snprintf(url, sizeof url, "%s/hold", e->base);
    struct rq_httpc_req req = {.method = "GET", .url = url, .timeout_ms = 300};
    memset(&a, 0, sizeof a);
    uv_update_time(&e->loop);
    uint64_t t0 = uv_now(&e->loop);
    assert_int_equal(rq_httpc_do(e->c, &req, on_answer, &a), 0);
    assert_true(run_until(e, answered, &a));
    answer_env = NULL;
    assert_int_equal(a.calls, 1);
    assert_int_equal(a.err, RQ_TIMEOUT);
    assert_int_equal(a.status, 0);
    assert_non_null(strstr(a.why, "/hold"));
    assert_true(a.at_ms - t0 >= 290);
    assert_true(a.at_ms - t0 < 3000);
    assert_int_equal(e->n_held, 1); /* The server did get it. */
    assert_int_equal(rq_httpc_pending(e->c), 0);
    answer_free(&a);
}

static void test_httpc_connection_refused(void **state)
{
    struct env *e = *state;
    struct answer a;
    struct sockaddr_in sa = {.sin_family = AF_INET};
    socklen_t len = sizeof sa;
    char url[URL_LEN];

    /* A port that is bound but not listening refuses connections. */
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    assert_true(fd >= 0);
    sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    assert_int_equal(bind(fd, (struct sockaddr *)&sa, sizeof sa), 0);
    assert_int_equal(getsockname(fd, (struct sockaddr *)&sa, &len), 0);
    snprintf(url, sizeof url, "http://127.0.0.1:%u/x",
             (unsigned)ntohs(sa.sin_port));
    struct rq_httpc_req req = {
        .method = "POST", .url = url, .body = "{}", .body_len = 2};
    memset(&a, 0, sizeof a);
    assert_int_equal(rq_httpc_do(e->c, &req, on_answer, &a), 0);
    assert_true(run_until(e, answered, &a));
    close(fd);
    assert_int_equal(a.calls, 1);
    assert_int_equal(a.err, RQ_CONNECT);
    assert_int_equal(a.status, 0);
    assert_int_equal(a.body_len, 0);
    char port[16];
    snprintf(port, sizeof port, "%u", (unsigned)ntohs(sa.sin_port));
    assert_non_null(strstr(a.why, port));
    answer_free(&a);
}

static void test_httpc_response_over_max_is_toobig(void **state)
{
    struct env *e = *state;
    struct answer a;
    char url[URL_LEN * 2];

    snprintf(url, sizeof url, "%s/big?n=100000", e->base);
    struct rq_httpc_req req = {
        .method = "GET", .url = url, .max_response = 100000};
    memset(&a, 0, sizeof a);
    assert_int_equal(rq_httpc_do(e->c, &req, on_answer, &a), 0);
    assert_true(run_until(e, answered, &a));
    assert_int_equal(a.err, 0); /* Exactly the limit is fine. */
    assert_int_equal(a.body_len, 100000);
    answer_free(&a);

    snprintf(url, sizeof url, "%s/big?n=100001", e->base);
    memset(&a, 0, sizeof a);
    assert_int_equal(rq_httpc_do(e->c, &req, on_answer, &a), 0);
    assert_true(run_until(e, answered, &a));
    assert_int_equal(a.calls, 1);
    assert_int_equal(a.err, RQ_TOOBIG);
    assert_int_equal(a.body_len, 0);
    assert_non_null(strstr(a.why, "100000 bytes"));
    answer_free(&a);

    /* The client goes on working. */
    call(e, "GET", "/status/200", NULL, NULL, &a);
    assert_int_equal(a.status, 200);
    answer_free(&a);
}

static bool all_answered(void *arg)
{
    struct env *e = arg;
    for (size_t i = 0; i < e->n_answers; i++) {
        if (!e->answers[i].done) {
            return false;
        }
    }
    return true;
}

static void test_httpc_many_concurrent_requests(void **state)
{
    struct env *e = *state;
    char path[64];
    char body[64];

    e->n_answers = N_MANY;
    e->answers = calloc(N_MANY, sizeof *e->answers);
    assert_non_null(e->answers);
    for (unsigned i = 0; i < N_MANY; i++) {
        snprintf(path, sizeof path, "/echo/n%u", i);
        snprintf(body, sizeof body, "{\"i\":%u}", i);
        start(e, "POST", path, NULL, body, &e->answers[i]);
    }
    assert_int_equal(rq_httpc_pending(e->c), N_MANY);
    assert_true(run_until(e, all_answered, e));
    for (unsigned i = 0; i < N_MANY; i++) {
        struct answer *a = &e->answers[i];
        assert_int_equal(a->calls, 1);
        assert_int_equal(a->err, 0);
        assert_int_equal(a->status, 200);
        json_t *o = answer_json(a);
        snprintf(path, sizeof path, "n%u", i);
        snprintf(body, sizeof body, "{\"i\":%u}", i);
        assert_string_equal(field(o, "name"), path);
        assert_string_equal(field(o, "body"), body);
        json_decref(o);
    }
    assert_int_equal(rq_httpc_pending(e->c), 0);
}

static void test_httpc_keepalive_reuses_one_connection(void **state)
{
    struct env *e = *state;
    struct answer a;
    char url[URL_LEN];

    raw_start(e);
    snprintf(url, sizeof url, "http://127.0.0.1:%u/ping",
             (unsigned)e->raw_port);
    struct rq_httpc_req req = {.method = "GET", .url = url};
    for (unsigned i = 0; i < N_SEQUENTIAL; i++) {
        memset(&a, 0, sizeof a);
        assert_int_equal(rq_httpc_do(e->c, &req, on_answer, &a), 0);
        assert_true(run_until(e, answered, &a));
        assert_int_equal(a.status, 200);
        assert_string_equal(a.body, "ok");
        answer_free(&a);
    }
    assert_int_equal(e->raw_accepts, 1);
}

/*
 * A server that reads a request and dies before answering it, on a
 * connection kept alive from an earlier request: libcurl sends the request
 * again on a new connection, which is refused, and reports RQ_CONNECT,
 * although the server did receive it. A request marked fresh goes out on a
 * new connection, so its failure (RQ_IO) says it may have arrived.
 */
static void vanishing_server(struct env *e, bool fresh, int want_err)
{
    struct answer a;
    char url[URL_LEN];

    raw_start(e);
    snprintf(url, sizeof url, "http://127.0.0.1:%u/ping",
             (unsigned)e->raw_port);
    struct rq_httpc_req req = {.method = "GET", .url = url};
    memset(&a, 0, sizeof a);
    assert_int_equal(rq_httpc_do(e->c, &req, on_answer, &a), 0);
    assert_true(run_until(e, answered, &a));
    assert_int_equal(a.status, 200);
    answer_free(&a);

    e->raw_vanish_at = 2;
    req.fresh = fresh;
    memset(&a, 0, sizeof a);
    assert_int_equal(rq_httpc_do(e->c, &req, on_answer, &a), 0);
    assert_true(run_until(e, answered, &a));
    assert_int_equal(e->raw_requests, 2); /* The server got it. */
    assert_int_equal(e->raw_accepts, fresh ? 2 : 1);
    assert_int_equal(a.status, 0);
    assert_int_equal(a.err, want_err);
    answer_free(&a);
}

/*
 * An answer followed at once by a reset: the client's socket is readable
 * (the whole answer) and in error (the reset) at the same poll. libuv
 * reports only the error; the client must still read what arrived before
 * it, as a blocking read would, rather than fail the request ("select/poll
 * returned error").
 */
static void test_httpc_answer_then_reset_is_an_answer(void **state)
{
    struct env *e = *state;
    struct answer a;
    char url[URL_LEN];

    raw_start(e);
    e->raw_reset_at = 1;
    snprintf(url, sizeof url, "http://127.0.0.1:%u/ping",
             (unsigned)e->raw_port);
    struct rq_httpc_req req = {.method = "GET", .url = url};
    memset(&a, 0, sizeof a);
    assert_int_equal(rq_httpc_do(e->c, &req, on_answer, &a), 0);
    assert_true(run_until(e, answered, &a));
    if (a.status != 200) {
        print_message("err %d: %s\n", a.err, a.why);
    }
    assert_int_equal(a.status, 200);
    assert_string_equal(a.body, "ok");
    answer_free(&a);
}

static void test_httpc_reused_connection_hides_a_received_request(void **state)
{
    vanishing_server(*state, false, RQ_CONNECT);
}

static void test_httpc_fresh_request_failure_is_not_connect(void **state)
{
    vanishing_server(*state, true, RQ_IO);
}

static void test_httpc_invalid_requests_are_refused(void **state)
{
    struct env *e = *state;
    struct answer a = {0};
    char url[URL_LEN * 2];
    static const char *const bad_header[] = {"X-A: b\r\nX-C: d", NULL};
    static const char *const no_colon[] = {"X-A", NULL};

    snprintf(url, sizeof url, "%s/echo/x", e->base);
    struct rq_httpc_req ok = {.method = "GET", .url = url};
    struct rq_httpc_req r;

    r = ok;
    r.url = "ftp://127.0.0.1/x";
    assert_int_equal(rq_httpc_do(e->c, &r, on_answer, &a), RQ_INVALID);
    r.url = "http://";
    assert_int_equal(rq_httpc_do(e->c, &r, on_answer, &a), RQ_INVALID);
    r.url = NULL;
    assert_int_equal(rq_httpc_do(e->c, &r, on_answer, &a), RQ_INVALID);
    r = ok;
    r.method = "GE T";
    assert_int_equal(rq_httpc_do(e->c, &r, on_answer, &a), RQ_INVALID);
    r.method = "";
    assert_int_equal(rq_httpc_do(e->c, &r, on_answer, &a), RQ_INVALID);
    r = ok;
    r.headers = bad_header;
    assert_int_equal(rq_httpc_do(e->c, &r, on_answer, &a), RQ_INVALID);
    r.headers = no_colon;
    assert_int_equal(rq_httpc_do(e->c, &r, on_answer, &a), RQ_INVALID);
    r = ok;
    r.body_len = 3; /* With no body. */
    assert_int_equal(rq_httpc_do(e->c, &r, on_answer, &a), RQ_INVALID);
    assert_int_equal(rq_httpc_pending(e->c), 0);
    /* A refused request never calls back, even after the loop runs. */
    call(e, "GET", "/status/200", NULL, NULL, &a);
    assert_int_equal(a.calls, 1);
    answer_free(&a);
}

static bool held_n(void *arg)
{
    struct env *e = arg;
    return e->n_held == 3;
}

/* The callback of a canceled request tries to start another. */
static void on_canceled_try_again(void *data, const struct rq_httpc_resp *resp)
{
    struct env *e = data;
    struct rq_httpc_req req = {.method = "GET", .url = "http://127.0.0.1:1/"};
    on_answer(&e->answers[e->n_answers - 1], resp);
    e->do_in_cancel = rq_httpc_do(e->c, &req, on_answer, &e->answers[0]);
}

static void test_httpc_close_with_requests_pending(void **state)
{
    struct env *e = *state;
    char url[URL_LEN * 2];

    e->n_answers = 5;
    e->answers = calloc(e->n_answers, sizeof *e->answers);
    assert_non_null(e->answers);
    for (unsigned i = 0; i < 3; i++) {
        start(e, "GET", "/hold", NULL, NULL, &e->answers[i]);
    }
    /* One is still connecting when the client closes, one not started. */
    assert_true(run_until(e, held_n, e));
    start(e, "GET", "/hold", NULL, NULL, &e->answers[3]);
    snprintf(url, sizeof url, "%s/hold", e->base);
    struct rq_httpc_req req = {.method = "GET", .url = url};
    assert_int_equal(rq_httpc_do(e->c, &req, on_canceled_try_again, e), 0);
    assert_int_equal(rq_httpc_pending(e->c), 5);

    rq_httpc_close(e->c, on_client_closed, e);
    /* Every callback ran, once, with RQ_CANCELED, before close returned. */
    for (unsigned i = 0; i < e->n_answers; i++) {
        assert_int_equal(e->answers[i].calls, 1);
        assert_int_equal(e->answers[i].err, RQ_CANCELED);
        assert_int_equal(e->answers[i].status, 0);
        assert_true(strlen(e->answers[i].why) > 0);
    }
    assert_int_equal(e->do_in_cancel, RQ_SHUTDOWN);
    assert_false(e->c_closed); /* Its callback comes from the loop. */
    assert_true(run_until(e, client_closed, e));
    e->c = NULL;
}

/* The first answer closes the client; the others are canceled. */
static void on_answer_then_close(void *data, const struct rq_httpc_resp *resp)
{
    struct env *e = data;
    on_answer(&e->answers[0], resp);
    rq_httpc_close(e->c, on_client_closed, e);
}

static void test_httpc_close_from_a_callback(void **state)
{
    struct env *e = *state;
    char url[URL_LEN * 2];

    e->n_answers = 3;
    e->answers = calloc(e->n_answers, sizeof *e->answers);
    assert_non_null(e->answers);
    start(e, "GET", "/hold", NULL, NULL, &e->answers[1]);
    start(e, "GET", "/hold", NULL, NULL, &e->answers[2]);
    snprintf(url, sizeof url, "%s/status/200", e->base);
    struct rq_httpc_req req = {.method = "GET", .url = url};
    assert_int_equal(rq_httpc_do(e->c, &req, on_answer_then_close, e), 0);
    assert_true(run_until(e, client_closed, e));
    e->c = NULL;
    assert_int_equal(e->answers[0].calls, 1);
    assert_int_equal(e->answers[0].status, 200);
    for (unsigned i = 1; i < 3; i++) {
        assert_int_equal(e->answers[i].calls, 1);
        assert_int_equal(e->answers[i].err, RQ_CANCELED);
    }
}

/* ---- TLS tests ---- */

/* One request with libcurl's easy interface in a thread of its own (the
 * server runs on the test's loop), for the clients rq_httpc cannot be:
 * without a certificate, with TLS 1.2 only, without TLS. */
struct easy {
    const char *url;
    const char *ca;   /* NULL: no TLS settings. */
    const char *cert; /* NULL: no client certificate. */
    const char *key;
    bool tls12_only;
    long timeout_ms;
    CURLcode code;
    long status;
    char body[1024];
    size_t body_len;
    volatile bool done;
    pthread_t thread;
    uv_async_t wake; /* The thread's way to wake the loop when done. */
    bool wake_closed;
};

static size_t easy_write(char *p, size_t size, size_t n, void *arg)
{
    struct easy *q = arg;
    size_t len = size * n;
    size_t room = sizeof q->body - 1 - q->body_len;
    memcpy(q->body + q->body_len, p, len < room ? len : room);
    q->body_len += len < room ? len : room;
    q->body[q->body_len] = '\0';
    return len;
}

static void *easy_main(void *arg)
{
    struct easy *q = arg;
    CURL *c = curl_easy_init();
    curl_easy_setopt(c, CURLOPT_URL, q->url);
    curl_easy_setopt(c, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(c, CURLOPT_PROXY, "");
    curl_easy_setopt(c, CURLOPT_TIMEOUT_MS, q->timeout_ms);
    curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, easy_write);
    curl_easy_setopt(c, CURLOPT_WRITEDATA, q);
    if (q->ca != NULL) {
        curl_easy_setopt(c, CURLOPT_CAINFO, q->ca);
    }
    if (q->cert != NULL) {
        curl_easy_setopt(c, CURLOPT_SSLCERT, q->cert);
        curl_easy_setopt(c, CURLOPT_SSLKEY, q->key);
    }
    if (q->tls12_only) {
        curl_easy_setopt(
            c, CURLOPT_SSLVERSION,
            (long)(CURL_SSLVERSION_TLSv1_2 | CURL_SSLVERSION_MAX_TLSv1_2));
    }
    q->code = curl_easy_perform(c);
    curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, &q->status);
    curl_easy_cleanup(c);
    q->done = true;
    uv_async_send(&q->wake);
    return NULL;
}

static bool easy_done(void *arg)
{
    return ((struct easy *)arg)->done;
}

static void on_wake_closed(uv_handle_t *h)
{
    ((struct easy *)h->data)->wake_closed = true;
}

static bool wake_closed(void *arg)
{
    return ((struct easy *)arg)->wake_closed;
}

static void easy_run(struct env *e, struct easy *q)
{
    if (q->timeout_ms == 0) {
        q->timeout_ms = WAIT_MS;
    }
    assert_int_equal(uv_async_init(&e->loop, &q->wake, NULL), 0);
    q->wake.data = q;
    assert_int_equal(pthread_create(&q->thread, NULL, easy_main, q), 0);
    assert_true(run_until(e, easy_done, q));
    pthread_join(q->thread, NULL);
    uv_close((uv_handle_t *)&q->wake, on_wake_closed);
    assert_true(run_until(e, wake_closed, q));
}

/* rq_httpc with TLS: an http:// URL goes out as https://, the server is
 * verified against the CA, and the client certificate opens /internal. */
static void test_httpc_tls_mutual(void **state)
{
    struct env *e = *state;
    struct answer a;

    call(e, "GET", "/echo/one", NULL, NULL, &a);
    assert_int_equal(a.err, 0);
    assert_int_equal(a.status, 200);
    answer_free(&a);
    call(e, "GET", "/internal/two", NULL, NULL, &a);
    assert_int_equal(a.err, 0);
    assert_int_equal(a.status, 200);
    json_t *o = answer_json(&a);
    assert_string_equal(field(o, "name"), "two");
    json_decref(o);
    answer_free(&a);
}

/* A server whose certificate another CA signed is refused by rq_httpc. */
static void test_httpc_tls_refuses_server_of_another_ca(void **state)
{
    struct env *e = *state;
    struct answer a;
    struct rq_tls *other = tls_load(e, "x", "ca2");

    rq_httpc_set_tls(e->c, other);
    call(e, "GET", "/echo/one", NULL, NULL, &a);
    assert_int_equal(a.err, RQ_IO);
    assert_int_equal(a.status, 0);
    assert_non_null(strstr(a.why, "certificate"));
    answer_free(&a);
    /* Its connection closed before the client does. */
    rq_httpc_close(e->c, on_client_closed, e);
    assert_true(run_until(e, client_closed, e));
    rq_tls_free(other);
}

/* Clients rq_httpc is not: a client without a certificate gets the public
 * paths and a 401 JSON answer on /internal, and so does one whose
 * certificate another CA signed; TLS 1.2 and plain HTTP get nothing. */
static void test_httpc_tls_server_refusals(void **state)
{
    struct env *e = *state;
    char url[URL_LEN * 2], ca[128], xcert[128], xkey[128];
    unsigned port = rq_http_port(e->h);
    tls_file(e, ca, sizeof ca, "ca1.crt");
    tls_file(e, xcert, sizeof xcert, "x.crt");
    tls_file(e, xkey, sizeof xkey, "x.key");

    snprintf(url, sizeof url, "https://127.0.0.1:%u/echo/pub", port);
    struct easy pub = {.url = url, .ca = ca};
    easy_run(e, &pub);
    assert_int_equal(pub.code, CURLE_OK);
    assert_int_equal(pub.status, 200);

    snprintf(url, sizeof url, "https://127.0.0.1:%u/internal/x?a=b", port);
    struct easy anon = {.url = url, .ca = ca};
    easy_run(e, &anon);
    assert_int_equal(anon.code, CURLE_OK);
    assert_int_equal(anon.status, 401);
    assert_non_null(strstr(anon.body, "\"failure\""));
    assert_non_null(strstr(anon.body, "client certificate"));

    struct easy foreign = {.url = url, .ca = ca, .cert = xcert, .key = xkey};
    easy_run(e, &foreign);
    assert_int_equal(foreign.code, CURLE_OK);
    assert_int_equal(foreign.status, 401);

    snprintf(url, sizeof url, "https://localhost:%u/echo/old", port);
    struct easy old = {.url = url, .ca = ca, .tls12_only = true};
    easy_run(e, &old);
    assert_true(old.code != CURLE_OK);
    assert_int_equal(old.status, 0);

    snprintf(url, sizeof url, "http://127.0.0.1:%u/echo/plain", port);
    struct easy plain = {.url = url, .timeout_ms = 2000};
    easy_run(e, &plain);
    assert_true(plain.code != CURLE_OK);
    assert_int_equal(plain.status, 0);

    /* Still serving. */
    struct answer a;
    call(e, "GET", "/echo/after", NULL, NULL, &a);
    assert_int_equal(a.status, 200);
    answer_free(&a);
}

static bool one_abort(void *arg)
{
    return ((struct env *)arg)->aborts == 1;
}

/* Under TLS too, a long-poll client that leaves is seen gone: the server
 * watches the socket of a suspended request itself. */
static void test_httpc_tls_client_gone_aborts_long_poll(void **state)
{
    struct env *e = *state;
    char url[URL_LEN * 2], ca[128], cert[128], key[128];
    tls_file(e, ca, sizeof ca, "ca1.crt");
    tls_file(e, cert, sizeof cert, "cli.crt");
    tls_file(e, key, sizeof key, "cli.key");
    snprintf(url, sizeof url, "https://127.0.0.1:%u/internal-poll",
             (unsigned)rq_http_port(e->h));
    struct easy q = {
        .url = url, .ca = ca, .cert = cert, .key = key, .timeout_ms = 300};
    easy_run(e, &q);
    assert_int_equal(q.code, CURLE_OPERATION_TIMEDOUT);
    assert_true(run_until(e, one_abort, e));
}

static bool two_polls(void *arg)
{
    return ((struct env *)arg)->polls == 2;
}

static bool two_aborts(void *arg)
{
    return ((struct env *)arg)->aborts == 2;
}

/* rq_httpc_cancel() ends only the requests started with the data given,
 * at once, and closes their connections: the server sees each client
 * leave. */
static void test_httpc_cancel_closes_the_connection(void **state)
{
    struct env *e = *state;
    struct answer a[2];

    for (unsigned i = 0; i < 2; i++) {
        start(e, "GET", "/internal-poll", NULL, NULL, &a[i]);
    }
    assert_true(run_until(e, two_polls, e));
    assert_int_equal(rq_httpc_cancel(e->c, &a[0]), 1);
    assert_int_equal(a[0].calls, 1);
    assert_int_equal(a[0].err, RQ_CANCELED);
    assert_int_equal(a[0].status, 0);
    assert_int_equal(a[1].calls, 0);
    assert_int_equal(rq_httpc_pending(e->c), 1);
    assert_true(run_until(e, one_abort, e));
    assert_int_equal(a[1].calls, 0);

    assert_int_equal(rq_httpc_cancel(e->c, &a[1]), 1);
    assert_int_equal(rq_httpc_cancel(e->c, &a[1]), 0);
    assert_int_equal(a[1].calls, 1);
    assert_int_equal(a[1].err, RQ_CANCELED);
    assert_int_equal(rq_httpc_pending(e->c), 0);
    assert_true(run_until(e, two_aborts, e));
    for (unsigned i = 0; i < 2; i++) {
        answer_free(&a[i]);
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_httpc_signed_requests, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_httpc_methods_bodies_and_headers,
                                        setup, teardown),
        cmocka_unit_test_setup_teardown(
            test_httpc_error_statuses_and_retry_after, setup, teardown),
        cmocka_unit_test_setup_teardown(
            test_httpc_server_that_never_answers_times_out, setup, teardown),
        cmocka_unit_test_setup_teardown(test_httpc_connection_refused, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_httpc_response_over_max_is_toobig,
                                        setup, teardown),
        cmocka_unit_test_setup_teardown(test_httpc_many_concurrent_requests,
                                        setup, teardown),
        cmocka_unit_test_setup_teardown(
            test_httpc_keepalive_reuses_one_connection, setup, teardown),
        cmocka_unit_test_setup_teardown(
            test_httpc_reused_connection_hides_a_received_request, setup,
            teardown),
        cmocka_unit_test_setup_teardown(
            test_httpc_fresh_request_failure_is_not_connect, setup, teardown),
        cmocka_unit_test_setup_teardown(
            test_httpc_answer_then_reset_is_an_answer, setup, teardown),
        cmocka_unit_test_setup_teardown(test_httpc_invalid_requests_are_refused,
                                        setup, teardown),
        cmocka_unit_test_setup_teardown(test_httpc_cancel_closes_the_connection,
                                        setup, teardown),
        cmocka_unit_test_setup_teardown(test_httpc_close_with_requests_pending,
                                        setup, teardown),
        cmocka_unit_test_setup_teardown(test_httpc_close_from_a_callback, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_httpc_tls_mutual, setup_tls,
                                        teardown),
        cmocka_unit_test_setup_teardown(
            test_httpc_tls_refuses_server_of_another_ca, setup_tls, teardown),
        cmocka_unit_test_setup_teardown(test_httpc_tls_server_refusals,
                                        setup_tls, teardown),
        cmocka_unit_test_setup_teardown(
            test_httpc_tls_client_gone_aborts_long_poll, setup_tls, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}

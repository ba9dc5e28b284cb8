/*
 * The HTTP server on the loop (contract in rq_http.h): libmicrohttpd in
 * external epoll mode, driven by libuv. It parses, routes and answers
 * requests; what a request means is the handlers' business.
 *
 * Driving MHD. With MHD_USE_EPOLL and no thread of its own, MHD keeps one
 * epoll descriptor holding the listening socket and every connection; a
 * uv_poll watches that descriptor and calls MHD_run(). After every run the
 * timer is re-armed from MHD_get_timeout() (that is where idle connections
 * are cut off), or started at zero when MHD must run again without any
 * socket activity: in this mode MHD puts a resumed connection back to work,
 * and puts the listening socket back into its set after the connection
 * limit was reached, only at the start of a run, and nothing wakes its
 * epoll descriptor for either.
 *
 * A request's life, and the function that moves each step:
 *
 *     NEW       -> UPLOADING   [on_uri] raw URI copied, request allocated
 *     UPLOADING -> UPLOADING   [on_access] body appended, or discarded
 *                                          once past max_body or once the
 *                                          bodies buffered pass their cap
 *     UPLOADING -> ANSWERED    [on_access] 413, 404, 405, 503 when closing
 *                                          or busy, a refusal of the
 *                                          authenticate callback, or a
 *                                          handler that
 *                                          replied
 *     UPLOADING -> SUSPENDED   [on_access] the handler did not reply
 *     SUSPENDED -> ANSWERED    [rq_http_reply] resumed; the next on_access
 *                                          queues the response
 *     any       -> DONE        [on_completed] MHD is finished with it; the
 *                                          memory goes when the watch below
 *                                          is closed (req_maybe_free)
 *
 * Clients that go away. MHD takes a suspended connection out of its epoll
 * set and never times it out, so it cannot see the client leave, and its
 * completion callback only reports the disconnect once the connection is
 * resumed. So while a request is suspended a uv_poll of its own watches the
 * socket for UV_DISCONNECT (the peer shut down its side, or reset); that
 * marks the request gone and runs its abort callback. A client that only
 * half-closes after sending its request counts as gone: it cannot be told
 * apart from one that closed. The request stays suspended, so every string
 * MHD lent it stays valid, until the handler replies; the reply then goes
 * out with "Connection: close" and the peer's kernel discards it. Dropping
 * it by failing the request in MHD instead would make MHD log an
 * "internal error" for every client that left a long poll. Should MHD
 * complete a request before its reply after all (it does not in 0.9.75),
 * the request detaches from MHD (req->conn becomes NULL, header and query
 * lookups answer NULL) and lives on until the reply.
 *
 * Bounded memory. Each connection may buffer a body of up to max_body, and
 * up to max_connections are open, so the bodies held at once are capped as
 * well: h->buffered counts the bytes allocated for request bodies (their
 * buffers' capacity, which for a body of known length never exceeds it by
 * more than one byte, and for a chunked one is under twice what came), and
 * a request that would take it past max_buffered is answered 503 with
 * Retry-After: at once when its Content-Length says so, otherwise when its
 * buffer would grow past the cap, after the rest of its body is read and
 * dropped. Its bytes are released at once; every other body's when its
 * request is freed. Only bytes that arrived count, never a length merely
 * declared, so a client that declares much and sends slowly holds nothing
 * it has not sent.
 *
 * Shutdown (rq_http_close): MHD stops listening (quiesce), every waiting
 * request gets its abort callback and then a 503 unless the callback
 * replied, requests still arriving on open connections get 503, and once
 * no request is left in MHD's hands (or CLOSE_DRAIN_MS passed) the daemon
 * stops, which closes idle connections. The handles close and the last
 * close callback frees the server and calls the user's callback.
 */
#include "rq_http.h"

#include <assert.h>
#include <ctype.h>
#include <gnutls/gnutls.h>
#include <microhttpd.h>
#include <poll.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>

#include "rq_codes.h"
#include "rq_config.h"
#include "rq_err.h"
#include "rq_json.h"
#include "rq_list.h"
#include "rq_log.h"
#include "rq_metrics.h"
#include "rq_tls.h"

#define LOG_TAG "rq_http"

#define DEFAULT_MAX_BODY (16u * 1024 * 1024)
#define DEFAULT_MAX_BUFFERED (256u * 1024 * 1024)
/* What a 503 for the body cap asks the client to wait, in seconds: bodies
 * are read at network speed and freed once answered. */
#define BUSY_RETRY_AFTER "1"
#define DEFAULT_MAX_CONNECTIONS 1024
#define DEFAULT_IDLE_TIMEOUT_S 60
/* Runs in a row that MHD may ask for at once, without socket activity
 * (rearm). */
#define ZERO_RUNS_MAX 4
/* MHD's per-connection pool holds the read buffer, in which the request
 * line and headers are parsed, and the reply's headers; the body passes
 * through the read buffer in pieces to on_access, which copies it out.
 * 32 KiB (MHD's default) bounds the request line and headers together;
 * 1024 connections then cost at most 32 MiB. MHD zeroes the whole pool
 * after every request of a kept connection, so a larger pool costs every
 * request (at 64 KiB, a fourteenth of a manager's CPU under single-record
 * produces). */
#define CONNECTION_MEMORY (32u * 1024)
/* More path segments than this can match no route (and none is that long). */
#define MAX_SEGMENTS 32
/* Time given to clients to read their 503 before the daemon stops. */
#define CLOSE_DRAIN_MS 1000
/* At most LOG_BURST lines of MHD's own log per LOG_WINDOW_MS. */
#define LOG_BURST 10
#define LOG_WINDOW_MS 1000
#define HOST_MAX 256
#define WHY_MAX 256
/* The route label of requests no route took. */
#define UNMATCHED "unmatched"

struct header {
    struct header *next;
    char *name;
    char *value;
};

/* Text made from a JSON integer by rq_http_arg(), kept until the reply. */
struct argtext {
    struct argtext *next;
    char text[24];
};

struct rq_http_req {
    struct rq_http *h;
    struct MHD_Connection *conn; /* NULL once MHD is done with the request. */
    char *uri;                   /* Raw request target; '?' cut to NUL. */
    const char *query;           /* What followed the '?' in uri, or "". */
    char *method;
    uint8_t *body; /* NUL-terminated copy, or NULL when empty. */
    size_t body_len;
    size_t body_cap;  /* Counted in h->buffered. */
    size_t body_max;  /* Content-Length + 1, or max_body + 1 if none. */
    size_t discarded; /* Body bytes dropped after passing a limit. */

    /* The path cut into percent-decoded segments (into decoded). */
    char *decoded;
    const char *seg[MAX_SEGMENTS];
    bool seg_ok[MAX_SEGMENTS]; /* Well-formed escapes, no %00, no '/'. */
    unsigned n_segs;
    bool too_many_segs;
    const struct rq_http_route *route;

    json_t *json;
    int json_state; /* 0 not parsed, 1 parsed, -1 failed (json_why). */
    char json_why[WHY_MAX];
    struct argtext *args;
    struct header *headers;

    struct MHD_Response *response; /* Built, waiting to be queued. */
    unsigned status;

    void (*abort_cb)(struct rq_http_req *req, void *data);
    void *abort_data;

    uv_poll_t watch;       /* The socket, while suspended. */
    struct rq_list link;   /* In h->waiting while handled and not replied. */
    bool started;          /* on_access has seen the request. */
    bool too_big;          /* Body past max_body: answer 413. */
    bool busy;             /* Bodies past max_buffered: answer 503. */
    bool handled;          /* The handler was called. */
    bool replied;          /* Exactly once. */
    bool suspended;        /* MHD_suspend_connection() in force. */
    bool gone;             /* The client went away before the reply. */
    bool signed_ok;        /* A signature was verified (rq_http_signed). */
    bool abort_called;     /* abort_cb ran (at most once). */
    bool unwatched;        /* rq_http_unwatched(): no watch. */
    bool watching;         /* watch is initialized and not closed. */
    bool watch_open;       /* watch's close callback has not run yet. */
    bool close_connection; /* Reply with "Connection: close". */
    bool mhd_done;         /* on_completed ran. */
    uint64_t start_ns;     /* uv_hrtime() when the headers were in. */
};

/* One status code's request counter of a route. */
struct code_count {
    unsigned code;
    struct rq_metric *requests;
};

/* The request metrics of a route, or of the requests no route took with
 * one method: children taken on first use, kept until the server is
 * freed, so counting a reply allocates only the first time its code is
 * seen there. */
struct route_metrics {
    struct rq_metric *duration;
    struct code_count *codes;
    size_t n_codes;
};

/* The methods unmatched requests are counted under; anything else is the
 * last ("other"), so a client cannot invent label values. */
static const char *const known_methods[] = {
    "GET", "HEAD", "POST", "PUT", "DELETE", "PATCH", "OPTIONS", "other",
};
#define N_KNOWN_METHODS (sizeof known_methods / sizeof known_methods[0])

struct rq_http {
    uv_loop_t *loop;
    struct MHD_Daemon *mhd;
    uv_poll_t poll;   /* MHD's epoll descriptor. */
    uv_timer_t timer; /* MHD_get_timeout(), or zero to run again. */
    uv_timer_t drain; /* Bounds the wait for clients while closing. */
    const struct rq_http_route *routes;
    size_t n_routes;
    void *data;
    rq_http_auth_cb authenticate;
    void *auth_data;
    size_t max_body;
    size_t max_buffered; /* Cap on h->buffered. */
    size_t buffered;     /* Bytes allocated for request bodies now. */
    bool (*client_cert_required)(const char *path); /* With TLS only. */
    uint16_t port;
    struct rq_list waiting; /* Handled, not replied: struct rq_http_req. */
    unsigned live;          /* Requests MHD has not completed. */
    unsigned refs;          /* Open handles plus allocated requests. */
    struct rq_http_stats stats;
    unsigned zero_runs; /* See rearm(). */
    bool in_run;        /* Inside MHD_run(). */
    bool need_run;      /* Run MHD again without waiting for a socket. */
    bool closing;       /* rq_http_close() was called. */
    bool quiesce_due;   /* Close was called inside MHD_run(). */
    bool stopped;       /* MHD_stop_daemon() was called. */
    char *start_why;    /* During rq_http_new: MHD's first complaint. */
    size_t start_whyn;  /* ... and the size of that buffer. */
    uint64_t log_window_ms;
    unsigned log_lines;
    unsigned log_suppressed;
    void (*close_cb)(void *data);
    void *close_data;

    /* Request metrics (NULL without a registry). */
    struct rq_metrics *metrics;
    struct rq_metric_family *m_requests;
    struct rq_metric_family *m_duration;
    struct rq_metric *m_connections;
    struct rq_metric *m_waiting;
    struct rq_metric *m_buffered;
    struct rq_metric *m_busy;
    /* n_routes for the routes, then N_KNOWN_METHODS for unmatched. */
    struct route_metrics *route_metrics;
};

static void run_mhd(struct rq_http *h);
static void metrics_close(struct rq_http *h);
static void on_timer(uv_timer_t *t);

/* ---- Small helpers ---- */

/*
 * Percent-decodes the NUL-terminated @s in place (MHD_http_unescape).
 * False if an escape is malformed, which MHD would keep as it is, or
 * decodes to NUL, which no C string can carry.
 */
static bool percent_decode(char *s)
{
    for (const char *p = strchr(s, '%'); p != NULL; p = strchr(p + 1, '%')) {
        if (!isxdigit((unsigned char)p[1]) || !isxdigit((unsigned char)p[2])) {
            return false;
        }
    }
    size_t n = MHD_http_unescape(s);
    return strlen(s) == n;
}

/* ---- Driving MHD from the loop ---- */

static void kick(struct rq_http *h)
{
    h->need_run = true;
    if (!h->in_run && !h->stopped) {
        uv_timer_start(&h->timer, on_timer, 0, 0);
    }
}

static void on_timer(uv_timer_t *t)
{
    run_mhd(t->data);
}

static void rearm(struct rq_http *h)
{
    MHD_UNSIGNED_LONG_LONG ms;

    if (h->need_run) {
        uv_timer_start(&h->timer, on_timer, 0, 0);
    } else if (MHD_get_timeout(h->mhd, &ms) == MHD_YES) {
        /* A zero timeout means MHD has work at once (a response to send
         * after a resume): run it again. But libmicrohttpd 0.9.75 also says
         * 0 for as long as a TLS connection waits in its handshake, and a
         * zero timer restarted from its own callback runs again in the same
         * pass of libuv's timers (1.44), so the loop would never poll for
         * the bytes the handshake waits for. After ZERO_RUNS_MAX zeros
         * without socket activity in between, the next run waits a
         * millisecond. */
        if (ms > 0) {
            h->zero_runs = 0;
        } else if (h->zero_runs < ZERO_RUNS_MAX) {
            h->zero_runs++;
        } else {
            ms = 1;
        }
        uv_timer_start(&h->timer, on_timer, (uint64_t)ms, 0);
    } else {
        uv_timer_stop(&h->timer);
    }
}

static void on_epoll(uv_poll_t *p, int status, int events)
{
    struct rq_http *h = p->data;
    (void)status; /* An error on the epoll descriptor: MHD_run() sees it. */
    (void)events;
    h->zero_runs = 0;
    run_mhd(h);
}

/* Drops one of the server's references: its handles and requests. The
 * last one, which can only come after finish(), frees it. */
static void server_unref(struct rq_http *h)
{
    assert(h->refs > 0);
    h->refs--;
    if (h->refs == 0) {
        void (*cb)(void *) = h->close_cb;
        void *data = h->close_data;
        assert(h->stopped);
        metrics_close(h);
        free(h);
        if (cb != NULL) {
            cb(data);
        }
    }
}

static void on_handle_closed(uv_handle_t *handle)
{
    server_unref(handle->data);
}

/* Stops listening; MHD hands the listening socket back to be closed. */
static void quiesce(struct rq_http *h)
{
    MHD_socket fd = MHD_quiesce_daemon(h->mhd);
    if (fd != MHD_INVALID_SOCKET) {
        close(fd);
    }
}

/*
 * The end of rq_http_close(): never called inside MHD_run(). The uv_poll is
 * closed before MHD closes the descriptor it watches.
 */
static void finish(struct rq_http *h)
{
    assert(h->closing && !h->in_run);
    if (h->stopped) {
        return;
    }
    h->stopped = true;
    uv_close((uv_handle_t *)&h->poll, on_handle_closed);
    uv_close((uv_handle_t *)&h->timer, on_handle_closed);
    uv_close((uv_handle_t *)&h->drain, on_handle_closed);
    /* Completes every request still in MHD's hands (on_completed). */
    MHD_stop_daemon(h->mhd);
    h->mhd = NULL;
    assert(rq_list_empty(&h->waiting));
    rq_log(RQ_INFO, "stopped serving on port %u", (unsigned)h->port);
}

static void run_mhd(struct rq_http *h)
{
    if (h->stopped) {
        return;
    }
    h->need_run = false;
    h->in_run = true;
    MHD_run(h->mhd);
    h->in_run = false;
    if (h->quiesce_due) {
        h->quiesce_due = false;
        quiesce(h);
    }
    if (h->closing && h->live == 0) {
        finish(h);
        return;
    }
    rearm(h);
}

static void on_drain_timeout(uv_timer_t *t)
{
    struct rq_http *h = t->data;
    rq_log(RQ_WARN, "closing with %u requests unfinished", h->live);
    finish(h);
}

/* ---- MHD's callbacks ---- */

__attribute__((format(printf, 2, 0))) static void on_mhd_log(void *cls,
                                                             const char *fmt,
                                                             va_list ap)
{
    struct rq_http *h = cls;
    char line[512];
    size_t n;

    vsnprintf(line, sizeof line, fmt, ap);
    n = strlen(line);
    while (n > 0 &&
           (line[n - 1] == '\n' || line[n - 1] == '\r' || line[n - 1] == ' ')) {
        line[--n] = '\0';
    }
    if (h->start_why != NULL) {
        /* Starting: the first complaint is the reason rq_http_new gives. */
        if (h->start_why[0] == '\0') {
            snprintf(h->start_why, h->start_whyn, "%s", line);
        }
        return;
    }
    uint64_t now = uv_now(h->loop);
    if (now - h->log_window_ms >= LOG_WINDOW_MS) {
        if (h->log_suppressed > 0) {
            rq_log(RQ_WARN, "%u messages of libmicrohttpd suppressed",
                   h->log_suppressed);
        }
        h->log_window_ms = now;
        h->log_lines = 0;
        h->log_suppressed = 0;
    }
    if (h->log_lines >= LOG_BURST) {
        h->log_suppressed++;
        return;
    }
    h->log_lines++;
    rq_log(RQ_WARN, "libmicrohttpd: %s", line);
}

static void on_connection(void *cls, struct MHD_Connection *conn,
                          void **socket_context,
                          enum MHD_ConnectionNotificationCode code)
{
    struct rq_http *h = cls;
    (void)conn;
    (void)socket_context;
    if (code == MHD_CONNECTION_NOTIFY_STARTED) {
        h->stats.connections++;
    } else {
        assert(h->stats.connections > 0);
        h->stats.connections--;
        /* If the limit was reached, the listening socket goes back into
         * MHD's set only at the start of the next run. */
        kick(h);
    }
}

/* Called with the raw request target before MHD decodes it: the routes are
 * matched on that, so an encoded '/' stays inside its segment. */
static void *on_uri(void *cls, const char *uri, struct MHD_Connection *conn)
{
    struct rq_http *h = cls;
    struct rq_http_req *req = calloc(1, sizeof *req);
    (void)conn;
    if (req == NULL) {
        return NULL; /* UNTESTED: ENOMEM only; on_access refuses it. */
    }
    req->uri = strdup(uri);
    if (req->uri == NULL) {
        free(req); /* UNTESTED: ENOMEM only. */
        return NULL;
    }
    req->h = h;
    req->body_max = h->max_body + 1;
    rq_list_init(&req->link);
    h->live++;
    h->refs++;
    return req;
}

/* Frees @req's body and gives its bytes back to the cap. */
static void body_release(struct rq_http_req *req)
{
    struct rq_http *h = req->h;
    assert(h->buffered >= req->body_cap);
    h->buffered -= req->body_cap;
    h->stats.buffered = h->buffered;
    free(req->body);
    req->body = NULL;
    req->body_len = 0;
    req->body_cap = 0;
}

static void req_free(struct rq_http_req *req)
{
    struct rq_http *h = req->h;

    rq_list_remove(&req->link);
    while (req->headers != NULL) {
        struct header *x = req->headers;
        req->headers = x->next;
        free(x->name);
        free(x->value);
        free(x);
    }
    while (req->args != NULL) {
        struct argtext *a = req->args;
        req->args = a->next;
        free(a);
    }
    if (req->response != NULL) {
        MHD_destroy_response(req->response);
    }
    json_decref(req->json);
    free(req->decoded);
    body_release(req);
    free(req->method);
    free(req->uri);
    free(req);
    server_unref(h);
}

/* Frees @req once neither MHD nor libuv nor the handler can reach it. */
static void req_maybe_free(struct rq_http_req *req)
{
    if (req->mhd_done && !req->watch_open && (req->replied || !req->handled)) {
        req_free(req);
    }
}

static void on_watch_closed(uv_handle_t *handle)
{
    struct rq_http_req *req = handle->data;
    req->watch_open = false;
    req_maybe_free(req);
}

static void watch_stop(struct rq_http_req *req)
{
    if (req->watching) {
        req->watching = false;
        uv_close((uv_handle_t *)&req->watch, on_watch_closed);
    }
}

static void abort_notify(struct rq_http_req *req)
{
    if (req->abort_cb != NULL && !req->abort_called && !req->replied) {
        req->abort_called = true;
        req->abort_cb(req, req->abort_data);
    }
}

/* The client of @req has gone: its watch ends and its abort callback runs. */
static void client_gone(struct rq_http_req *req)
{
    watch_stop(req);
    req->gone = true;
    req->close_connection = true;
    abort_notify(req);
}

static void on_watch(uv_poll_t *w, int status, int events)
{
    struct rq_http_req *req = w->data;
    if (status == 0 && (events & UV_DISCONNECT) == 0) {
        return;
    }
    client_gone(req);
}

bool rq_http_client_gone(struct rq_http_req *req)
{
    if (req->gone) {
        return true;
    }
    if (req->conn == NULL || req->replied) {
        return false; /* UNTESTED: detached (see the file comment). */
    }
    const union MHD_ConnectionInfo *ci =
        MHD_get_connection_info(req->conn, MHD_CONNECTION_INFO_CONNECTION_FD);
    if (ci == NULL) {
        return false; /* UNTESTED: MHD always knows the socket. */
    }
    struct pollfd p = {.fd = ci->connect_fd, .events = POLLRDHUP};
    if (poll(&p, 1, 0) != 1 ||
        (p.revents & (POLLRDHUP | POLLHUP | POLLERR)) == 0) {
        return false;
    }
    client_gone(req);
    return true;
}

/* Watches a suspended request's socket for the client leaving. Without the
 * watch, the reply is still sent and simply fails if nobody is there. */
static void watch_start(struct rq_http_req *req)
{
    const union MHD_ConnectionInfo *ci =
        MHD_get_connection_info(req->conn, MHD_CONNECTION_INFO_CONNECTION_FD);
    int rv;

    if (ci == NULL) {
        return; /* UNTESTED: MHD always knows the socket. */
    }
    rv = uv_poll_init(req->h->loop, &req->watch, ci->connect_fd);
    if (rv != 0) {
        rq_log(RQ_WARN, "cannot watch a waiting request's socket: %s",
               uv_strerror(rv)); /* UNTESTED: libuv refusing a socket. */
        return;
    }
    req->watch.data = req;
    req->watching = true;
    req->watch_open = true;
    uv_poll_start(&req->watch, UV_DISCONNECT, on_watch);
}

static void on_completed(void *cls, struct MHD_Connection *conn, void **con_cls,
                         enum MHD_RequestTerminationCode toe)
{
    struct rq_http *h = cls;
    struct rq_http_req *req = *con_cls;
    (void)conn;

    if (req == NULL) {
        return;
    }
    *con_cls = NULL;
    assert(h->live > 0);
    h->live--;
    if (!req->started) {
        h->stats.rejected++; /* MHD refused it before routing. */
    }
    req->conn = NULL;
    if (req->suspended) {
        req->suspended = false; /* UNTESTED: see the file comment. */
        h->stats.suspended--;
    }
    watch_stop(req);
    if (req->handled && !req->replied &&
        toe != MHD_REQUEST_TERMINATED_COMPLETED_OK) {
        /* UNTESTED: MHD does not end suspended requests on its own. The
         * request lives on, detached, until its reply; mhd_done is set
         * after the callback so that a reply from inside it cannot free
         * the request under this function. */
        req->gone = true;
        abort_notify(req);
    }
    req->mhd_done = true;
    req_maybe_free(req);
}

/* ---- Request metrics ---- */

/* From half a millisecond (a local answer) to a minute (the longest long
 * poll). */
static const double duration_buckets[] = {
    0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1,
    0.25,   0.5,   1,      2.5,   5,    10,    30,   60,
};

static size_t method_index(const char *method)
{
    for (size_t i = 0; i + 1 < N_KNOWN_METHODS; i++) {
        if (method != NULL && strcmp(method, known_methods[i]) == 0) {
            return i;
        }
    }
    return N_KNOWN_METHODS - 1;
}

/* Counts and times the reply to @req (see rq_http_config.metrics). */
static void count_reply(struct rq_http_req *req, unsigned status)
{
    struct rq_http *h = req->h;
    struct route_metrics *rm;
    struct rq_metric *requests = NULL;
    const char *labels[3];
    char code[16];

    if (h->route_metrics == NULL) {
        return;
    }
    if (req->route != NULL) {
        rm = &h->route_metrics[req->route - h->routes];
        labels[0] = req->route->method;
        labels[1] = req->route->pattern;
    } else {
        size_t i = method_index(req->method);
        rm = &h->route_metrics[h->n_routes + i];
        labels[0] = known_methods[i];
        labels[1] = UNMATCHED;
    }
    if (rm->duration == NULL) {
        rm->duration = rq_metric_get(h->m_duration, labels);
    }
    if (req->started) {
        rq_metric_observe(rm->duration,
                          (double)(uv_hrtime() - req->start_ns) / 1e9);
    }
    for (size_t i = 0; i < rm->n_codes; i++) {
        if (rm->codes[i].code == status) {
            requests = rm->codes[i].requests;
            break;
        }
    }
    if (requests == NULL) {
        struct code_count *codes =
            realloc(rm->codes, (rm->n_codes + 1) * sizeof *codes);
        if (codes == NULL) {
            return; /* UNTESTED: ENOMEM only; this reply is not counted. */
        }
        rm->codes = codes;
        snprintf(code, sizeof code, "%u", status);
        labels[2] = code;
        requests = rq_metric_get(h->m_requests, labels);
        if (requests == NULL) {
            return; /* UNTESTED: ENOMEM only. */
        }
        codes[rm->n_codes++] = (struct code_count){status, requests};
    }
    rq_metric_inc(requests);
}

static void metrics_collect(void *data)
{
    struct rq_http *h = data;
    rq_metric_set(h->m_connections, h->stats.connections);
    rq_metric_set(h->m_waiting, h->stats.suspended);
    rq_metric_set(h->m_buffered, (double)h->buffered);
    rq_metric_set(h->m_busy, (double)h->stats.busy);
}

/* Registers the server's families in @m. Without memory for them the
 * server runs uncounted. */
static void metrics_open(struct rq_http *h, struct rq_metrics *m)
{
    static const struct rq_metric_def defs[] = {
        {RQ_METRIC_COUNTER,
         "raftq_http_requests_total",
         "HTTP requests answered, by method, route pattern and status code.",
         {"method", "route", "code"}},
        {RQ_METRIC_HISTOGRAM,
         "raftq_http_request_duration_seconds",
         "Time from a request's headers to its answer, by method and route "
         "pattern (long polls and waits for a Raft commit included).",
         {"method", "route"},
         duration_buckets,
         sizeof duration_buckets / sizeof duration_buckets[0]},
        {RQ_METRIC_GAUGE,
         "raftq_http_connections",
         "Open HTTP connections.",
         {NULL}},
        {RQ_METRIC_GAUGE,
         "raftq_http_waiting_requests",
         "HTTP requests waiting for their answer (long polls, Raft commits).",
         {NULL}},
        {RQ_METRIC_GAUGE,
         "raftq_http_buffered_body_bytes",
         "Bytes allocated for HTTP request bodies now (at most "
         "--http-max-buffered-bytes).",
         {NULL}},
        {RQ_METRIC_COUNTER,
         "raftq_http_busy_total",
         "HTTP requests answered 503 because the request bodies buffered "
         "would have passed --http-max-buffered-bytes.",
         {NULL}},
    };
    h->m_requests = rq_metrics_add(m, &defs[0]);
    h->m_duration = rq_metrics_add(m, &defs[1]);
    h->m_connections = rq_metric_family_child(rq_metrics_add(m, &defs[2]));
    h->m_waiting = rq_metric_family_child(rq_metrics_add(m, &defs[3]));
    h->m_buffered = rq_metric_family_child(rq_metrics_add(m, &defs[4]));
    h->m_busy = rq_metric_family_child(rq_metrics_add(m, &defs[5]));
    h->route_metrics =
        calloc(h->n_routes + N_KNOWN_METHODS, sizeof *h->route_metrics);
    if (h->m_requests == NULL || h->m_duration == NULL ||
        h->route_metrics == NULL ||
        rq_metrics_on_collect(m, metrics_collect, h) != 0) {
        /* UNTESTED: ENOMEM only. */
        rq_log(RQ_WARN, "no memory for HTTP metrics; requests go uncounted");
        free(h->route_metrics);
        h->route_metrics = NULL;
        return;
    }
    h->metrics = m;
}

static void metrics_close(struct rq_http *h)
{
    if (h->route_metrics == NULL) {
        return;
    }
    for (size_t i = 0; i < h->n_routes + N_KNOWN_METHODS; i++) {
        struct route_metrics *rm = &h->route_metrics[i];
        rq_metric_put(rm->duration);
        for (size_t j = 0; j < rm->n_codes; j++) {
            rq_metric_put(rm->codes[j].requests);
        }
        free(rm->codes);
    }
    free(h->route_metrics);
    h->route_metrics = NULL;
    rq_metrics_off_collect(h->metrics, metrics_collect, h);
}

/* ---- Building replies ---- */

static void add_headers(struct rq_http_req *req, struct MHD_Response *resp,
                        const char *content_type)
{
    bool have_type = false;
    for (struct header *x = req->headers; x != NULL; x = x->next) {
        MHD_add_response_header(resp, x->name, x->value);
        if (strcasecmp(x->name, MHD_HTTP_HEADER_CONTENT_TYPE) == 0) {
            have_type = true;
        }
    }
    if (!have_type) {
        MHD_add_response_header(resp, MHD_HTTP_HEADER_CONTENT_TYPE,
                                content_type);
    }
}

/* Queues the built response on the connection (inside on_access). */
static enum MHD_Result queue(struct rq_http_req *req)
{
    enum MHD_Result r;

    if (req->response == NULL) {
        return MHD_NO; /* UNTESTED: ENOMEM only; closes the connection. */
    }
    if (req->close_connection || req->h->closing) {
        MHD_add_response_header(req->response, MHD_HTTP_HEADER_CONNECTION,
                                "close");
    }
    r = MHD_queue_response(req->conn, req->status, req->response);
    MHD_destroy_response(req->response);
    req->response = NULL;
    return r;
}

/*
 * Records @resp (NULL after ENOMEM) as the reply and, for a suspended
 * request, resumes it so that on_access queues the reply.
 */
static void req_reply_response(struct rq_http_req *req, unsigned status,
                               struct MHD_Response *resp)
{
    struct rq_http *h = req->h;

    assert(!req->replied); /* Replying twice is a bug in the caller. */
    req->replied = true;
    req->status = status;
    req->response = resp;
    count_reply(req, status);
    rq_list_remove(&req->link);
    watch_stop(req);
    if (req->suspended) {
        req->suspended = false;
        h->stats.suspended--;
        MHD_resume_connection(req->conn);
        kick(h);
    }
    req_maybe_free(req);
}

static void reply_json(struct rq_http_req *req, unsigned status, json_t *body)
{
    struct MHD_Response *resp;
    char *text;

    if (body == NULL) {
        body = json_object();
    }
    assert(json_is_object(body));
    if (json_object_get(body, "status") == NULL) {
        json_object_set_new(
            body, "status",
            json_string(status >= 200 && status < 300 ? "success" : "failure"));
    }
    /* Every failure names its kind (rq_codes.h): one that does not says
     * its status's. */
    const char *st = json_string_value(json_object_get(body, "status"));
    if (st != NULL && strcmp(st, "failure") == 0 &&
        json_object_get(body, "code") == NULL) {
        json_object_set_new(body, "code",
                            json_string(rq_codes_of_status((int)status)));
    }
    text = json_dumps(body, JSON_COMPACT);
    json_decref(body);
    if (text == NULL) {
        /* UNTESTED: ENOMEM only. */
        static const char fallback[] =
            "{\"status\":\"failure\",\"code\":\"internal_error\",\"message\":"
            "\"out of memory\"}";
        status = MHD_HTTP_INTERNAL_SERVER_ERROR;
        resp = MHD_create_response_from_buffer(
            sizeof fallback - 1, (void *)fallback, MHD_RESPMEM_PERSISTENT);
    } else {
        /* json_dumps() memory is released with free(), as MHD will. */
        resp = MHD_create_response_from_buffer(strlen(text), text,
                                               MHD_RESPMEM_MUST_FREE);
        if (resp == NULL) {
            free(text); /* UNTESTED: ENOMEM only. */
        }
    }
    if (resp != NULL) {
        add_headers(req, resp, "application/json");
    }
    req_reply_response(req, status, resp);
}

static void reply_failv(struct rq_http_req *req, int status, const char *code,
                        const char *fmt, va_list ap)
{
    char msg[512];
    json_t *body = json_object();
    json_t *text;

    vsnprintf(msg, sizeof msg, fmt, ap);
    text = json_string(msg);
    if (text == NULL) {
        /* Not UTF-8 (a raw path, say): keep the message readable. */
        for (char *c = msg; *c != '\0'; c++) {
            if ((unsigned char)*c < 0x20 || (unsigned char)*c >= 0x7f) {
                *c = '?';
            }
        }
        text = json_string(msg);
    }
    json_object_set_new(body, "status", json_string("failure"));
    if (code != NULL) {
        json_object_set_new(body, "code", json_string(code));
    }
    json_object_set_new(body, "message", text);
    reply_json(req, (unsigned)status, body);
}

static void reply_errorv(struct rq_http_req *req, int status, const char *fmt,
                         va_list ap)
{
    reply_failv(req, status, NULL, fmt, ap);
}

__attribute__((format(printf, 3, 4))) static void reject(
    struct rq_http_req *req, int status, const char *fmt, ...)
{
    va_list ap;
    req->h->stats.rejected++;
    va_start(ap, fmt);
    reply_errorv(req, status, fmt, ap);
    va_end(ap);
}

/* ---- Routing ---- */

/*
 * Splits the raw path (up to '?') into decoded segments. A path with more
 * segments than MAX_SEGMENTS is marked and matches nothing.
 */
static int split_path(struct rq_http_req *req)
{
    char *q = strchr(req->uri, '?');
    char *p;

    req->query = "";
    if (q != NULL) {
        *q = '\0';
        req->query = q + 1;
    }
    if (req->uri[0] != '/') {
        req->n_segs = 0; /* "*" or an absolute URI: nothing matches. */
        return 0;
    }
    req->decoded = strdup(req->uri + 1);
    if (req->decoded == NULL) {
        return RQ_NOMEM; /* UNTESTED: ENOMEM only. */
    }
    p = req->decoded;
    for (;;) {
        char *slash = strchr(p, '/');
        if (slash != NULL) {
            *slash = '\0';
        }
        if (req->n_segs == MAX_SEGMENTS) {
            req->too_many_segs = true;
            return 0;
        }
        req->seg[req->n_segs] = p;
        /* A decoded '/' would change the path's shape: such a segment
         * matches neither a literal nor a parameter. */
        req->seg_ok[req->n_segs] = percent_decode(p) && strchr(p, '/') == NULL;
        req->n_segs++;
        if (slash == NULL) {
            return 0;
        }
        p = slash + 1;
    }
}

/* Whether @pattern matches the request's path, segment by segment. */
static bool route_match(const char *pattern, const struct rq_http_req *req)
{
    const char *p = pattern + 1;
    unsigned i = 0;

    if (req->too_many_segs || req->n_segs == 0) {
        return false;
    }
    for (;;) {
        const char *end = strchr(p, '/');
        size_t len = end != NULL ? (size_t)(end - p) : strlen(p);
        if (i == req->n_segs || !req->seg_ok[i]) {
            return false;
        }
        if (len >= 2 && p[0] == '{' && p[len - 1] == '}') {
            if (req->seg[i][0] == '\0') {
                return false;
            }
        } else if (strlen(req->seg[i]) != len ||
                   memcmp(req->seg[i], p, len) != 0) {
            return false;
        }
        i++;
        if (end == NULL) {
            return i == req->n_segs;
        }
        p = end + 1;
    }
}

/* Chooses the route for @req or answers 404/405; true if routed. */
static bool route(struct rq_http_req *req)
{
    struct rq_http *h = req->h;
    char allow[128] = "";
    size_t used = 0;

    if (split_path(req) != 0) {
        reject(req, 500, "out of memory"); /* UNTESTED: ENOMEM only. */
        return false;
    }
    for (size_t i = 0; i < h->n_routes; i++) {
        const struct rq_http_route *r = &h->routes[i];
        if (!route_match(r->pattern, req)) {
            continue;
        }
        if (strcmp(r->method, req->method) == 0) {
            req->route = r;
            return true;
        }
        /* Collect each other method once, for the Allow header. */
        bool seen = false;
        for (size_t j = 0; j < i; j++) {
            if (strcmp(h->routes[j].method, r->method) == 0 &&
                route_match(h->routes[j].pattern, req)) {
                seen = true;
            }
        }
        if (!seen && used < sizeof allow) {
            used += (size_t)snprintf(allow + used, sizeof allow - used, "%s%s",
                                     used > 0 ? ", " : "", r->method);
        }
    }
    if (allow[0] == '\0') {
        reject(req, MHD_HTTP_NOT_FOUND, "no such path: %s", req->uri);
        return false;
    }
    rq_http_set_header(req, MHD_HTTP_HEADER_ALLOW, allow);
    reject(req, MHD_HTTP_METHOD_NOT_ALLOWED, "method %s not allowed on %s",
           req->method, req->uri);
    return false;
}

/* ---- The access handler ---- */

/*
 * Appends @n bytes to @req's body. Returns 0, RQ_NOMEM, or RQ_TOOBIG when
 * growing the buffer would take the bodies buffered past max_buffered (the
 * body is then left as it was).
 */
static int body_append(struct rq_http_req *req, const char *data, size_t n)
{
    struct rq_http *h = req->h;
    size_t need = req->body_len + n;
    if (need + 1 > req->body_cap) {
        size_t cap = req->body_cap > 0 ? req->body_cap : 4096;
        while (cap < need + 1) {
            cap *= 2;
        }
        /* A declared length is all the body will take: no slack. */
        if (cap > req->body_max) {
            cap = req->body_max;
        }
        assert(cap >= need + 1);
        if (h->buffered - req->body_cap + cap > h->max_buffered) {
            return RQ_TOOBIG;
        }
        uint8_t *p = realloc(req->body, cap);
        if (p == NULL) {
            return RQ_NOMEM; /* UNTESTED: ENOMEM only. */
        }
        h->buffered = h->buffered - req->body_cap + cap;
        h->stats.buffered = h->buffered;
        req->body = p;
        req->body_cap = cap;
    }
    memcpy(req->body + req->body_len, data, n);
    req->body_len = need;
    req->body[need] = '\0';
    return 0;
}

/* Answers 503 for the cap on buffered bodies. */
static void reject_busy(struct rq_http_req *req)
{
    struct rq_http *h = req->h;
    h->stats.busy++;
    rq_http_set_header(req, MHD_HTTP_HEADER_RETRY_AFTER, BUSY_RETRY_AFTER);
    reject(req, MHD_HTTP_SERVICE_UNAVAILABLE,
           "server busy receiving other requests: %zu bytes of request "
           "bodies buffered, at most %zu; retry after %s s",
           h->buffered, h->max_buffered, BUSY_RETRY_AFTER);
}

/* Finds a query argument whose decoded name or value holds a NUL byte
 * (%00): C strings would cut it short and read "a%00b" as "a". */
static enum MHD_Result find_nul_arg(void *cls, enum MHD_ValueKind kind,
                                    const char *key, size_t key_size,
                                    const char *value, size_t value_size)
{
    const char **bad = cls;
    (void)kind;
    if (strlen(key) != key_size ||
        (value != NULL && strlen(value) != value_size)) {
        *bad = key;
        return MHD_NO;
    }
    return MHD_YES;
}

/* The first call, once the headers are in: refuse early what can be. */
/* Whether the client presented a certificate that verifies against the
 * CA. libmicrohttpd asks for one (it was given the CA) but leaves the
 * check to us. */
static bool client_cert_verified(struct rq_http_req *req)
{
    const union MHD_ConnectionInfo *ci =
        MHD_get_connection_info(req->conn, MHD_CONNECTION_INFO_GNUTLS_SESSION);
    unsigned status = 0;
    unsigned n = 0;

    if (ci == NULL || ci->tls_session == NULL) {
        return false; /* UNTESTED: a TLS server always has a session. */
    }
    gnutls_session_t s = (gnutls_session_t)ci->tls_session;
    if (gnutls_certificate_get_peers(s, &n) == NULL || n == 0) {
        return false;
    }
    return gnutls_certificate_verify_peers2(s, &status) == 0 && status == 0;
}

/* Whether the path (the raw target up to '?') may be served to this
 * client as far as certificates go. */
static bool path_cert_ok(struct rq_http_req *req)
{
    char *q = strchr(req->uri, '?');
    bool needed;
    if (q != NULL) {
        *q = '\0';
    }
    needed = req->h->client_cert_required(req->uri);
    if (q != NULL) {
        *q = '?';
    }
    return !needed || client_cert_verified(req);
}

static void on_headers(struct rq_http_req *req, const char *method)
{
    struct rq_http *h = req->h;
    const char *cl;

    req->method = strdup(method);
    if (req->method == NULL) {
        reject(req, 500, "out of memory"); /* UNTESTED: ENOMEM only. */
        return;
    }
    if (h->closing) {
        req->close_connection = true;
        reject(req, MHD_HTTP_SERVICE_UNAVAILABLE, "shutting down");
        return;
    }
    if (h->client_cert_required != NULL && !path_cert_ok(req)) {
        /* Nothing of the request is read further. */
        req->close_connection = true;
        reject(req, MHD_HTTP_UNAUTHORIZED,
               "this path needs a client certificate signed by the "
               "cluster CA");
        return;
    }
    const char *nul_arg = NULL;
    MHD_get_connection_values_n(req->conn, MHD_GET_ARGUMENT_KIND, find_nul_arg,
                                &nul_arg);
    if (nul_arg != NULL) {
        reject(req, MHD_HTTP_BAD_REQUEST,
               "query argument '%s' holds a NUL byte (%%00)", nul_arg);
        return;
    }
    /* A body in a transfer coding other than chunked cannot be read: MHD
     * would wait for it until the idle timeout. */
    const char *te = MHD_lookup_connection_value(
        req->conn, MHD_HEADER_KIND, MHD_HTTP_HEADER_TRANSFER_ENCODING);
    if (te != NULL && strcasecmp(te, "chunked") != 0) {
        req->close_connection = true;
        reject(req, MHD_HTTP_BAD_REQUEST,
               "Transfer-Encoding '%s' is not supported (only chunked)", te);
        return;
    }
    /* MHD has already refused a Content-Length that is not a number. */
    cl = MHD_lookup_connection_value(req->conn, MHD_HEADER_KIND,
                                     MHD_HTTP_HEADER_CONTENT_LENGTH);
    if (cl != NULL) {
        unsigned long long declared = strtoull(cl, NULL, 10);
        if (declared > h->max_body) {
            reject(req, MHD_HTTP_CONTENT_TOO_LARGE,
                   "request body is larger than %zu bytes", h->max_body);
            return;
        }
        /* Its buffer will take declared + 1 bytes. Nothing is reserved
         * now: a slow sender holds only what it has sent. */
        if (declared > 0 && h->buffered + declared + 1 > h->max_buffered) {
            req->close_connection = true; /* Its body is not read. */
            reject_busy(req);
            return;
        }
        req->body_max = (size_t)declared + 1;
    }
}

static void call_handler(struct rq_http_req *req)
{
    struct rq_http *h = req->h;

    h->stats.requests++;
    req->handled = true;
    req->route->handler(req, h->data);
    if (req->replied) {
        return;
    }
    rq_list_push(&h->waiting, &req->link);
    if (h->closing) {
        /* The handler closed the server: nobody will answer this one. */
        abort_notify(req);
        if (!req->replied) {
            req->close_connection = true;
            rq_http_reply_error(req, MHD_HTTP_SERVICE_UNAVAILABLE,
                                "shutting down");
        }
        return;
    }
    MHD_suspend_connection(req->conn);
    req->suspended = true;
    h->stats.suspended++;
    if (!req->unwatched) {
        watch_start(req);
    }
}

/* Whether the routed @req may reach its handler; false after the
 * authenticate callback answered it. */
static bool authenticated(struct rq_http_req *req)
{
    struct rq_http *h = req->h;

    if (req->route->auth == 0) {
        return true;
    }
    if (h->authenticate(req, req->route->auth, h->auth_data)) {
        req->signed_ok = true;
        return true;
    }
    assert(req->replied); /* A refusal is answered by the callback. */
    return false;
}

static enum MHD_Result on_access(void *cls, struct MHD_Connection *conn,
                                 const char *url, const char *method,
                                 const char *version, const char *upload_data,
                                 size_t *upload_data_size, void **con_cls)
{
    struct rq_http *h = cls;
    struct rq_http_req *req = *con_cls;
    (void)url; /* Decoded by MHD; routing uses the raw target. */
    (void)version;

    if (req == NULL) {
        return MHD_NO; /* UNTESTED: ENOMEM in on_uri. */
    }
    if (!req->started) {
        req->started = true;
        req->start_ns = uv_hrtime();
        req->conn = conn;
        on_headers(req, method);
        return req->replied ? queue(req) : MHD_YES;
    }
    if (*upload_data_size > 0) {
        size_t n = *upload_data_size;
        *upload_data_size = 0;
        if (!req->too_big && !req->busy) {
            /* Only a chunked body can pass max_body here (see on_headers),
             * and any body the cap on buffered bodies. MHD cannot answer in
             * the middle of an upload: the rest is read and dropped, and
             * 413 or 503 goes out at its end, unless the client keeps
             * sending as much again. */
            if (req->body_len + n > h->max_body) {
                req->too_big = true;
            } else {
                int rv = body_append(req, upload_data, n);
                if (rv == 0) {
                    return MHD_YES;
                }
                if (rv == RQ_NOMEM) {
                    return MHD_NO; /* UNTESTED: ENOMEM only. */
                }
                req->busy = true;
            }
            req->discarded = req->body_len;
            body_release(req);
        }
        if (req->too_big || req->busy) {
            req->discarded += n;
            if (req->discarded > 2 * h->max_body) {
                h->stats.rejected++;
                rq_log(RQ_INFO,
                       "closing a connection uploading more than "
                       "twice the body limit");
                return MHD_NO;
            }
            return MHD_YES;
        }
    }
    /* The body is complete: this is the last call, or the one after a
     * suspended request was resumed. */
    if (req->replied) {
        return queue(req);
    }
    assert(!req->handled);
    if (req->too_big) {
        reject(req, MHD_HTTP_CONTENT_TOO_LARGE,
               "request body is larger than %zu bytes", h->max_body);
    } else if (req->busy) {
        req->close_connection = true;
        reject_busy(req);
    } else if (h->closing) {
        req->close_connection = true;
        reject(req, MHD_HTTP_SERVICE_UNAVAILABLE, "shutting down");
    } else if (route(req) && authenticated(req)) {
        call_handler(req);
    }
    return req->replied && !req->suspended ? queue(req) : MHD_YES;
}

/* ---- Public API ---- */

static int resolve(uv_loop_t *loop, const char *host, uint16_t port,
                   struct sockaddr_storage *ss, char *why, size_t whyn)
{
    struct sockaddr_in *in4 = (struct sockaddr_in *)ss;
    struct sockaddr_in6 *in6 = (struct sockaddr_in6 *)ss;
    uv_getaddrinfo_t gai;
    struct addrinfo hints;
    int rv;

    memset(ss, 0, sizeof *ss);
    if (uv_ip4_addr(host, port, in4) == 0 ||
        uv_ip6_addr(host, port, in6) == 0) {
        return 0;
    }
    memset(&hints, 0, sizeof hints);
    hints.ai_family = AF_UNSPEC;
    hints.ai_socktype = SOCK_STREAM;
    /* Synchronous (no callback): start-up only, like rq_mux's bind. */
    rv = uv_getaddrinfo(loop, &gai, NULL, host, NULL, &hints);
    if (rv != 0) {
        snprintf(why, whyn, "cannot resolve %s: %s", host, uv_strerror(rv));
        return RQ_INVALID;
    }
    memcpy(ss, gai.addrinfo->ai_addr, gai.addrinfo->ai_addrlen);
    uv_freeaddrinfo(gai.addrinfo);
    if (ss->ss_family == AF_INET) {
        in4->sin_port = htons(port);
    } else {
        in6->sin6_port = htons(port);
    }
    return 0;
}

static void check_routes(const struct rq_http_route *routes, size_t n,
                         bool can_authenticate)
{
    for (size_t i = 0; i < n; i++) {
        assert(routes[i].method != NULL && routes[i].handler != NULL);
        assert(routes[i].pattern != NULL && routes[i].pattern[0] == '/');
        assert(routes[i].auth == 0 || can_authenticate);
    }
    (void)routes;
    (void)n;
    (void)can_authenticate;
}

int rq_http_new(uv_loop_t *loop, const struct rq_http_config *cfg,
                const struct rq_http_route *routes, size_t n_routes, void *data,
                struct rq_http **out, char *why, size_t whyn)
{
    struct rq_http *h;
    char host[HOST_MAX];
    char mhd_why[WHY_MAX] = "";
    struct sockaddr_storage ss;
    uint16_t port;
    unsigned flags =
        MHD_USE_EPOLL | MHD_ALLOW_SUSPEND_RESUME | MHD_USE_ERROR_LOG;
    unsigned max_connections;
    unsigned idle_s;
    const union MHD_DaemonInfo *info;
    int rv;

    check_routes(routes, n_routes, cfg->authenticate != NULL);
    if (cfg->bind_address == NULL) {
        snprintf(why, whyn, "no address to listen on");
        return RQ_INVALID;
    }
    rv = rq_listen_addr_split(cfg->bind_address, host, sizeof host, &port, why,
                              whyn);
    if (rv != 0) {
        return rv;
    }
    rv = resolve(loop, host, port, &ss, why, whyn);
    if (rv != 0) {
        return rv;
    }
    if (ss.ss_family == AF_INET6) {
        flags |= MHD_USE_IPv6;
    }

    h = calloc(1, sizeof *h);
    if (h == NULL) {
        snprintf(why, whyn, "out of memory"); /* UNTESTED: ENOMEM only. */
        return RQ_NOMEM;
    }
    h->loop = loop;
    h->routes = routes;
    h->n_routes = n_routes;
    h->data = data;
    h->authenticate = cfg->authenticate;
    h->auth_data = cfg->auth_data;
    h->max_body = cfg->max_body != 0 ? cfg->max_body : DEFAULT_MAX_BODY;
    h->max_buffered =
        cfg->max_buffered != 0 ? cfg->max_buffered : DEFAULT_MAX_BUFFERED;
    /* With less, a body of max_body could never be taken. */
    if (h->max_buffered < h->max_body + 1) {
        h->max_buffered = h->max_body + 1;
    }
    max_connections = cfg->max_connections != 0 ? cfg->max_connections
                                                : DEFAULT_MAX_CONNECTIONS;
    idle_s =
        cfg->idle_timeout_s != 0 ? cfg->idle_timeout_s : DEFAULT_IDLE_TIMEOUT_S;
    rq_list_init(&h->waiting);
    h->start_why = mhd_why;
    h->start_whyn = sizeof mhd_why;

    /* The logger comes first: MHD logs through its default logger until
     * it has seen this option. */
    /* HTTPS: the node's certificate and key, TLS 1.3 only, and the CA,
     * which makes libmicrohttpd ask clients for a certificate. */
    struct MHD_OptionItem tls_opts[] = {
        {MHD_OPTION_END, 0, NULL}, {MHD_OPTION_END, 0, NULL},
        {MHD_OPTION_END, 0, NULL}, {MHD_OPTION_END, 0, NULL},
        {MHD_OPTION_END, 0, NULL},
    };
    if (cfg->tls != NULL) {
        flags |= MHD_USE_TLS;
        tls_opts[0] = (struct MHD_OptionItem){
            MHD_OPTION_HTTPS_MEM_CERT, 0, (void *)rq_tls_cert_pem(cfg->tls)};
        tls_opts[1] = (struct MHD_OptionItem){MHD_OPTION_HTTPS_MEM_KEY, 0,
                                              (void *)rq_tls_key_pem(cfg->tls)};
        tls_opts[2] = (struct MHD_OptionItem){MHD_OPTION_HTTPS_MEM_TRUST, 0,
                                              (void *)rq_tls_ca_pem(cfg->tls)};
        tls_opts[3] = (struct MHD_OptionItem){MHD_OPTION_HTTPS_PRIORITIES, 0,
                                              (void *)RQ_TLS_PRIORITY};
        h->client_cert_required = cfg->client_cert_required;
    }
    h->mhd = MHD_start_daemon(
        flags, port, NULL, NULL, on_access, h, MHD_OPTION_EXTERNAL_LOGGER,
        on_mhd_log, h, MHD_OPTION_ARRAY, tls_opts, MHD_OPTION_SOCK_ADDR,
        (const struct sockaddr *)&ss, MHD_OPTION_CONNECTION_LIMIT,
        max_connections, MHD_OPTION_CONNECTION_TIMEOUT, idle_s,
        MHD_OPTION_CONNECTION_MEMORY_LIMIT, (size_t)CONNECTION_MEMORY,
        MHD_OPTION_NOTIFY_COMPLETED, on_completed, h,
        MHD_OPTION_NOTIFY_CONNECTION, on_connection, h,
        MHD_OPTION_URI_LOG_CALLBACK, on_uri, h, MHD_OPTION_END);
    h->start_why = NULL;
    if (h->mhd == NULL) {
        snprintf(why, whyn, "cannot listen on %s: %s", cfg->bind_address,
                 mhd_why[0] != '\0' ? mhd_why : "libmicrohttpd did not start");
        free(h);
        return RQ_IO;
    }

    info = MHD_get_daemon_info(h->mhd, MHD_DAEMON_INFO_EPOLL_FD);
    rv =
        info != NULL ? uv_poll_init(loop, &h->poll, info->epoll_fd) : UV_EINVAL;
    if (rv != 0) {
        /* UNTESTED: an epoll descriptor libuv refuses. */
        snprintf(why, whyn, "cannot watch libmicrohttpd: %s", uv_strerror(rv));
        MHD_stop_daemon(h->mhd);
        free(h);
        return RQ_IO;
    }
    info = MHD_get_daemon_info(h->mhd, MHD_DAEMON_INFO_BIND_PORT);
    h->port = info != NULL ? info->port : port;
    h->poll.data = h;
    uv_timer_init(loop, &h->timer);
    h->timer.data = h;
    uv_timer_init(loop, &h->drain);
    h->drain.data = h;
    h->refs = 3;
    h->log_window_ms = uv_now(loop);
    if (cfg->metrics != NULL) {
        metrics_open(h, cfg->metrics);
    }
    uv_poll_start(&h->poll, UV_READABLE, on_epoll);
    /* MHD adds the listening socket to its set in its first run. That run
     * happens on the loop, never inside this call, so no handler can run
     * before the caller has the server. */
    kick(h);
    if (mhd_why[0] != '\0') {
        rq_log(RQ_WARN, "libmicrohttpd: %s", mhd_why);
    }
    rq_log(RQ_INFO, "serving %s on %s (port %u)",
           cfg->tls != NULL ? "HTTPS" : "HTTP", cfg->bind_address,
           (unsigned)h->port);
    *out = h;
    return 0;
}

uint16_t rq_http_port(const struct rq_http *h)
{
    return h->port;
}

void rq_http_close(struct rq_http *h, void (*cb)(void *data), void *data)
{
    assert(!h->closing);
    h->closing = true;
    h->close_cb = cb;
    h->close_data = data;
    if (h->in_run) {
        h->quiesce_due = true; /* Not in the middle of MHD's own work. */
    } else {
        quiesce(h);
    }
    /* Each pass answers the oldest waiting request, so the loop ends even
     * if abort callbacks answer others. A reply takes a request off the
     * list (and may free it), so the list, not the request, says whether
     * the abort callback replied. */
    while (!rq_list_empty(&h->waiting)) {
        struct rq_http_req *req =
            RQ_LIST_ENTRY(h->waiting.next, struct rq_http_req, link);
        abort_notify(req);
        if (h->waiting.next == &req->link) {
            req->close_connection = true;
            rq_http_reply_error(req, MHD_HTTP_SERVICE_UNAVAILABLE,
                                "shutting down");
        }
    }
    uv_timer_start(&h->drain, on_drain_timeout, CLOSE_DRAIN_MS, 0);
    kick(h); /* run_mhd() finishes once no request is left. */
}

const char *rq_http_method(const struct rq_http_req *req)
{
    return req->method;
}

const char *rq_http_path(const struct rq_http_req *req)
{
    return req->uri;
}

const char *rq_http_query_string(const struct rq_http_req *req)
{
    return req->query != NULL ? req->query : "";
}

rq_http_handler rq_http_route_handler(const struct rq_http_req *req)
{
    return req->route != NULL ? req->route->handler : NULL;
}

unsigned rq_http_route_auth(const struct rq_http_req *req)
{
    return req->route != NULL ? req->route->auth : 0;
}

bool rq_http_signed(const struct rq_http_req *req)
{
    return req->signed_ok;
}

void rq_http_set_signed(struct rq_http_req *req)
{
    req->signed_ok = true;
}

const char *rq_http_param(const struct rq_http_req *req, const char *name)
{
    const char *p;
    size_t name_len = strlen(name);
    unsigned i = 0;

    if (req->route == NULL) {
        return NULL;
    }
    p = req->route->pattern + 1;
    for (;;) {
        const char *end = strchr(p, '/');
        size_t len = end != NULL ? (size_t)(end - p) : strlen(p);
        if (len == name_len + 2 && p[0] == '{' &&
            memcmp(p + 1, name, name_len) == 0 && p[len - 1] == '}') {
            return req->seg[i];
        }
        if (end == NULL) {
            return NULL;
        }
        p = end + 1;
        i++;
    }
}

const char *rq_http_query(const struct rq_http_req *req, const char *name)
{
    const char *value = NULL;
    size_t len;

    if (req->conn == NULL ||
        MHD_lookup_connection_value_n(req->conn, MHD_GET_ARGUMENT_KIND, name,
                                      strlen(name), &value, &len) != MHD_YES) {
        return NULL;
    }
    return value != NULL ? value : ""; /* "?flag" has no value. */
}

const char *rq_http_header(const struct rq_http_req *req, const char *name)
{
    if (req->conn == NULL) {
        return NULL;
    }
    return MHD_lookup_connection_value(req->conn, MHD_HEADER_KIND, name);
}

const uint8_t *rq_http_body(const struct rq_http_req *req, size_t *len)
{
    *len = req->body_len;
    return req->body != NULL ? req->body : (const uint8_t *)"";
}

/* The parse rules are rq_json_parse_object()'s (rq_json.h). */
json_t *rq_http_json(struct rq_http_req *req, char *why, size_t whyn)
{
    if (req->json_state == 0) {
        req->json = rq_json_parse_object(req->body, req->body_len,
                                         req->json_why, sizeof req->json_why);
        req->json_state = req->json != NULL ? 1 : -1;
    }
    if (req->json == NULL && why != NULL) {
        snprintf(why, whyn, "%s", req->json_why);
    }
    return req->json;
}

/*
 * Only strings and integers are arguments; a body value of another type
 * (boolean, real, null, array, object), or a body that is not a JSON
 * object, reads as absent.
 */
const char *rq_http_arg(struct rq_http_req *req, const char *name)
{
    const char *q = rq_http_query(req, name);
    json_t *body;
    json_t *v;
    struct argtext *a;

    if (q != NULL) {
        return q;
    }
    body = rq_http_json(req, NULL, 0);
    v = body != NULL ? json_object_get(body, name) : NULL;
    if (json_is_string(v)) {
        return json_string_value(v);
    }
    if (!json_is_integer(v)) {
        return NULL;
    }
    a = malloc(sizeof *a);
    if (a == NULL) {
        return NULL; /* UNTESTED: ENOMEM only. */
    }
    snprintf(a->text, sizeof a->text, "%" JSON_INTEGER_FORMAT,
             json_integer_value(v));
    a->next = req->args;
    req->args = a;
    return a->text;
}

void rq_http_set_header(struct rq_http_req *req, const char *name,
                        const char *value)
{
    struct header *x = calloc(1, sizeof *x);

    assert(!req->replied);
    if (x == NULL || (x->name = strdup(name)) == NULL ||
        (x->value = strdup(value)) == NULL) {
        if (x != NULL) {
            free(x->name); /* UNTESTED: ENOMEM only; the header is lost. */
            free(x);
        }
        return;
    }
    x->next = req->headers;
    req->headers = x;
}

void rq_http_reply(struct rq_http_req *req, int status, json_t *body)
{
    assert(status >= 100 && status <= 999);
    reply_json(req, (unsigned)status, body);
}

void *rq_http_calloc(struct rq_http_req *req, size_t n, size_t size)
{
    void *p = calloc(n, size);
    if (p == NULL) {
        rq_http_reply_error(req, 500, "out of memory"); /* UNTESTED */
    }
    return p;
}

void rq_http_reply_error(struct rq_http_req *req, int status, const char *fmt,
                         ...)
{
    va_list ap;
    va_start(ap, fmt);
    reply_errorv(req, status, fmt, ap);
    va_end(ap);
}

void rq_http_reply_fail(struct rq_http_req *req, int status, const char *code,
                        const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    reply_failv(req, status, code, fmt, ap);
    va_end(ap);
}

void rq_http_reply_text(struct rq_http_req *req, int status,
                        const char *content_type, const char *body, size_t len)
{
    struct MHD_Response *resp = MHD_create_response_from_buffer(
        len, (void *)body, MHD_RESPMEM_MUST_COPY);
    if (resp != NULL) {
        add_headers(req, resp, content_type);
    }
    req_reply_response(req, (unsigned)status, resp);
}

void rq_http_reply_owned(struct rq_http_req *req, int status,
                         const char *content_type, void *body, size_t len)
{
    struct MHD_Response *resp =
        MHD_create_response_from_buffer(len, body, MHD_RESPMEM_MUST_FREE);
    if (resp != NULL) {
        add_headers(req, resp, content_type);
    } else {
        free(body); /* UNTESTED: ENOMEM only. */
    }
    req_reply_response(req, (unsigned)status, resp);
}

/* The buffers of a reply in parts, freed once MHD has sent them. */
struct parts {
    void *tail;
    uint8_t head[];
};

static void parts_free(void *cls)
{
    struct parts *p = cls;
    free(p->tail);
    free(p);
}

void rq_http_reply_parts(struct rq_http_req *req, int status,
                         const char *content_type, const void *head,
                         size_t head_len, void *tail, size_t tail_len)
{
    struct MHD_Response *resp = NULL;
    struct parts *p = malloc(sizeof *p + head_len);
    if (p != NULL) {
        memcpy(p->head, head, head_len);
        p->tail = tail;
        struct MHD_IoVec iov[2] = {{p->head, head_len}, {tail, tail_len}};
        resp = MHD_create_response_from_iovec(iov, tail_len > 0 ? 2 : 1,
                                              parts_free, p);
        if (resp == NULL) {
            parts_free(p); /* UNTESTED: ENOMEM only. */
        }
    } else {
        free(tail); /* UNTESTED: ENOMEM only. */
    }
    if (resp != NULL) {
        add_headers(req, resp, content_type);
    }
    req_reply_response(req, (unsigned)status, resp);
}

void rq_http_unwatched(struct rq_http_req *req)
{
    req->unwatched = true;
}

void rq_http_on_abort(struct rq_http_req *req,
                      void (*cb)(struct rq_http_req *req, void *data),
                      void *data)
{
    assert(!req->replied);
    req->abort_cb = cb;
    req->abort_data = data;
    if (req->gone) {
        abort_notify(req);
    }
}

void rq_http_stats(const struct rq_http *h, struct rq_http_stats *out)
{
    *out = h->stats;
}

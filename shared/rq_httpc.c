/*
 * The HTTP client on the loop (see rq_httpc.h): libcurl's multi interface
 * in its event-driven form. libcurl tells us which sockets to watch
 * (socket_cb: one uv_poll per socket, created on the first interest and
 * closed when libcurl says CURL_POLL_REMOVE, before it closes the socket)
 * and when to wake it (timer_cb: one uv_timer); both call
 * curl_multi_socket_action(), after which finished transfers are collected
 * with curl_multi_info_read() and their callbacks run. No callback of ours
 * ever runs inside a libcurl call, so a callback may start requests or
 * close the client.
 *
 * curl_global_init() runs once per process, from the first rq_httpc_new()
 * (pthread_once): libcurl 7.88 documents it as thread-safe only when built
 * so, and nothing else in the process calls libcurl. curl_global_cleanup()
 * is never called; what curl_global_init() allocated stays reachable until
 * exit.
 *
 * Connections are kept in the multi handle's cache and reused for the
 * next request to the same host (HTTP/1.1 keep-alive); at most
 * HOST_CONNECTIONS are open to one host, further requests wait for one.
 * Environment proxies (http_proxy) are ignored: these are calls between
 * the cluster's own processes.
 *
 * Closing: every pending transfer is removed from the multi handle and its
 * callback runs with RQ_CANCELED; the socket watchers are closed, the multi
 * handle is cleaned up (closing the cached connections) and the timer is
 * closed. The client is freed once the last handle's close callback has
 * run.
 */
#include "rq_httpc.h"

#include <assert.h>
#include <curl/curl.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/random.h>
#include <time.h>

#include "rq_err.h"
#include "rq_list.h"
#include "rq_log.h"
#include "rq_sig.h"
#include "rq_tls.h"

#define LOG_TAG "rq_httpc"

#define DEFAULT_TIMEOUT_MS 10000
#define DEFAULT_MAX_RESPONSE (64u << 20)
#define HOST_CONNECTIONS 64
#define CACHED_CONNECTIONS 64
#define WHY_LEN 320
#define RETRY_AFTER_LEN 64

/* A socket libcurl asked us to watch. */
struct sock {
    uv_poll_t poll;
    curl_socket_t fd;
    int events; /* UV_READABLE | UV_WRITABLE: what libcurl waits for. */
    struct rq_httpc *client;
    struct rq_list link; /* In client->socks until closed. */
};

/* One request, from rq_httpc_do() to its callback. */
struct xfer {
    struct rq_httpc *client;
    struct rq_list link; /* In client->xfers while pending. */
    CURL *easy;
    struct curl_slist *headers;
    char *body; /* Our copy of the request body. */
    char *resp; /* Response body, NUL-terminated; NULL until data. */
    size_t resp_len;
    size_t resp_cap;
    size_t max_response;
    bool too_big;
    char method[16];
    char errbuf[CURL_ERROR_SIZE];
    rq_httpc_cb cb;
    void *data;
};

struct rq_httpc {
    uv_loop_t *loop;
    CURLM *multi;
    uv_timer_t timer;
    struct rq_list xfers;
    struct rq_list socks;
    const struct rq_tls *tls; /* Borrowed; NULL: no TLS settings. */
    size_t pending;
    unsigned handles; /* Initialized and not yet closed-and-called-back. */
    bool closing;
    void (*close_cb)(void *data);
    void *close_data;
};

static pthread_once_t global_once = PTHREAD_ONCE_INIT;
static CURLcode global_rv;

static void global_init(void)
{
    global_rv = curl_global_init(CURL_GLOBAL_DEFAULT);
}

/* ---- Finishing ---- */

static void handle_closed(struct rq_httpc *c)
{
    assert(c->handles > 0);
    if (--c->handles > 0 || !c->closing) {
        return;
    }
    void (*cb)(void *) = c->close_cb;
    void *data = c->close_data;
    free(c);
    if (cb != NULL) {
        cb(data);
    }
}

static void on_timer_closed(uv_handle_t *h)
{
    handle_closed(h->data);
}

static void on_sock_closed(uv_handle_t *h)
{
    struct sock *s = h->data;
    struct rq_httpc *c = s->client;
    free(s);
    handle_closed(c);
}

static void sock_close(struct sock *s)
{
    rq_list_remove(&s->link);
    uv_poll_stop(&s->poll);
    uv_close((uv_handle_t *)&s->poll, on_sock_closed);
}

static int err_from_curl(const struct xfer *x, CURLcode code)
{
    switch (code) {
        case CURLE_OK:
            return 0;
        case CURLE_OPERATION_TIMEDOUT:
            return RQ_TIMEOUT;
        case CURLE_COULDNT_CONNECT:
        case CURLE_COULDNT_RESOLVE_HOST:
        case CURLE_COULDNT_RESOLVE_PROXY:
            return RQ_CONNECT;
        case CURLE_WRITE_ERROR:
            return x->too_big ? RQ_TOOBIG : RQ_IO;
        case CURLE_OUT_OF_MEMORY:
            return RQ_NOMEM; /* UNTESTED: ENOMEM only. */
        default:
            return RQ_IO;
    }
}

static void xfer_free(struct xfer *x)
{
    if (x->easy != NULL) {
        curl_easy_cleanup(x->easy);
    }
    curl_slist_free_all(x->headers);
    free(x->body);
    free(x->resp);
    free(x);
}

/*
 * Unlinks @x (already out of the multi handle), runs its callback with
 * @err (0 means use libcurl's @code) and frees it.
 */
static void xfer_finish(struct xfer *x, int err, CURLcode code)
{
    struct rq_httpc *c = x->client;
    struct rq_httpc_resp resp = {0};
    char why[WHY_LEN] = "";
    char retry_after[RETRY_AFTER_LEN];
    char content_type[128];
    const char *url = NULL;
    long status = 0;

    rq_list_remove(&x->link);
    c->pending--;
    curl_easy_getinfo(x->easy, CURLINFO_EFFECTIVE_URL, &url);
    if (err == 0) {
        err = err_from_curl(x, code);
        curl_easy_getinfo(x->easy, CURLINFO_RESPONSE_CODE, &status);
    }
    resp.err = err;
    resp.status = status;
    if (err == 0 && x->resp != NULL) {
        resp.body = x->resp;
        resp.body_len = x->resp_len;
        resp.xfer = x;
    } else {
        resp.body = "";
    }
    if (err != 0) {
        const char *detail = x->errbuf[0] != '\0' ? x->errbuf
                             : err == RQ_CANCELED
                                 ? "canceled: the client closed"
                                 : curl_easy_strerror(code);
        if (err == RQ_TOOBIG) {
            snprintf(why, sizeof why, "%s %s: response over %zu bytes",
                     x->method, url != NULL ? url : "?", x->max_response);
        } else {
            snprintf(why, sizeof why, "%s %s: %s", x->method,
                     url != NULL ? url : "?", detail);
        }
        resp.why = why;
    }
    struct curl_header *h = NULL;
    if (status != 0 && curl_easy_header(x->easy, "Retry-After", 0, CURLH_HEADER,
                                        -1, &h) == CURLHE_OK) {
        snprintf(retry_after, sizeof retry_after, "%s", h->value);
        resp.retry_after = retry_after;
    }
    if (status != 0 && curl_easy_header(x->easy, "Content-Type", 0,
                                        CURLH_HEADER, -1, &h) == CURLHE_OK) {
        snprintf(content_type, sizeof content_type, "%s", h->value);
        resp.content_type = content_type;
    }
    x->cb(x->data, &resp);
    xfer_free(x);
}

char *rq_httpc_take_body(const struct rq_httpc_resp *resp)
{
    struct xfer *x = resp->xfer;
    if (x == NULL) {
        return NULL;
    }
    char *body = x->resp;
    x->resp = NULL; /* xfer_free() leaves it to the caller. */
    return body;
}

/* Collects finished transfers; stops if a callback closes the client. */
static void check_done(struct rq_httpc *c)
{
    CURLMsg *msg;
    int left;
    while (!c->closing && (msg = curl_multi_info_read(c->multi, &left))) {
        if (msg->msg != CURLMSG_DONE) {
            continue; /* UNTESTED: libcurl 7.88 has no other message. */
        }
        CURL *easy = msg->easy_handle;
        CURLcode code = msg->data.result;
        char *priv = NULL;
        curl_easy_getinfo(easy, CURLINFO_PRIVATE, &priv);
        curl_multi_remove_handle(c->multi, easy);
        xfer_finish((struct xfer *)(void *)priv, 0, code);
    }
}

/* ---- libcurl's event hooks ---- */

static void on_poll(uv_poll_t *p, int status, int events)
{
    struct sock *s = p->data;
    struct rq_httpc *c = s->client;
    int flags = 0;
    int running;

    if (status < 0) {
        /* The socket is in error (libuv reports POLLERR alone, and stops
         * the handle). A peer that answers and then resets the connection
         * leaves the whole answer readable before the error: libcurl is
         * told the socket is ready for what it waits for, so it reads (or
         * writes) and meets the answer or the error itself, as a blocking
         * call would. Told CURL_CSELECT_ERR it would drop the answer
         * ("select/poll returned error"). */
        events = s->events;
        uv_poll_start(&s->poll, s->events, on_poll);
    }
    flags |= (events & UV_READABLE) ? CURL_CSELECT_IN : 0;
    flags |= (events & UV_WRITABLE) ? CURL_CSELECT_OUT : 0;
    if (flags == 0) {
        flags = CURL_CSELECT_ERR; /* UNTESTED: libcurl waits for something. */
    }
    /* @s may be closed (not freed) inside: read nothing from it after. */
    curl_multi_socket_action(c->multi, s->fd, flags, &running);
    check_done(c);
}

static void on_timer(uv_timer_t *t)
{
    struct rq_httpc *c = t->data;
    int running;
    curl_multi_socket_action(c->multi, CURL_SOCKET_TIMEOUT, 0, &running);
    check_done(c);
}

/* CURLMOPT_SOCKETFUNCTION: watch @fd for @what, or stop watching it. */
static int socket_cb(CURL *easy, curl_socket_t fd, int what, void *userp,
                     void *socketp)
{
    struct rq_httpc *c = userp;
    struct sock *s = socketp;
    (void)easy;

    if (what == CURL_POLL_REMOVE) {
        if (s != NULL) {
            sock_close(s);
        }
        return 0;
    }
    if (c->closing) {
        return 0; /* UNTESTED: libcurl adds no socket while cleaning up. */
    }
    if (s == NULL) {
        s = calloc(1, sizeof *s);
        if (s == NULL) {
            return -1; /* UNTESTED: ENOMEM only. */
        }
        int rv = uv_poll_init_socket(c->loop, &s->poll, fd);
        if (rv != 0) {
            rq_log(RQ_WARN, "cannot watch socket %d: %s", (int)fd,
                   uv_strerror(rv));
            free(s);
            return -1;
        }
        s->fd = fd;
        s->client = c;
        s->poll.data = s;
        c->handles++;
        rq_list_push(&c->socks, &s->link);
        curl_multi_assign(c->multi, fd, s);
    }
    int events = 0;
    events |= (what & CURL_POLL_IN) ? UV_READABLE : 0;
    events |= (what & CURL_POLL_OUT) ? UV_WRITABLE : 0;
    s->events = events;
    uv_poll_start(&s->poll, events, on_poll);
    return 0;
}

/* CURLMOPT_TIMERFUNCTION: call us back in @ms (-1: never). libcurl must
 * not be called from here, so even 0 goes through the timer. */
static int timer_cb(CURLM *multi, long ms, void *userp)
{
    struct rq_httpc *c = userp;
    (void)multi;
    if (ms < 0 || c->closing) {
        uv_timer_stop(&c->timer);
    } else {
        uv_timer_start(&c->timer, on_timer, (uint64_t)ms, 0);
    }
    return 0;
}

static size_t write_cb(char *ptr, size_t size, size_t nmemb, void *userdata)
{
    struct xfer *x = userdata;
    size_t n = size * nmemb;
    if (n > x->max_response - x->resp_len) {
        x->too_big = true;
        return 0; /* libcurl ends the transfer with CURLE_WRITE_ERROR. */
    }
    if (x->resp_len + n + 1 > x->resp_cap) {
        size_t cap = x->resp_cap == 0 ? 1024 : x->resp_cap;
        curl_off_t whole = -1;
        /* The whole body at once when its length is known: no growing
         * copies of a large answer. */
        if (x->resp_cap == 0 &&
            curl_easy_getinfo(x->easy, CURLINFO_CONTENT_LENGTH_DOWNLOAD_T,
                              &whole) == CURLE_OK &&
            whole > 0 && (uint64_t)whole < x->max_response) {
            cap = (size_t)whole + 1;
        }
        while (cap < x->resp_len + n + 1) {
            cap *= 2;
        }
        char *p = realloc(x->resp, cap);
        if (p == NULL) {
            return 0; /* UNTESTED: ENOMEM only. */
        }
        x->resp = p;
        x->resp_cap = cap;
    }
    memcpy(x->resp + x->resp_len, ptr, n);
    x->resp_len += n;
    x->resp[x->resp_len] = '\0';
    return n;
}

/* ---- API ---- */

int rq_httpc_new(uv_loop_t *loop, struct rq_httpc **out, char *why, size_t whyn)
{
    pthread_once(&global_once, global_init);
    if (global_rv != CURLE_OK) {
        rq_why(why, whyn, "curl_global_init: %s",
               curl_easy_strerror(global_rv)); /* UNTESTED */
        return RQ_IO;
    }
    struct rq_httpc *c = calloc(1, sizeof *c);
    if (c == NULL) {
        rq_why(why, whyn, "out of memory"); /* UNTESTED: ENOMEM only. */
        return RQ_NOMEM;
    }
    c->multi = curl_multi_init();
    if (c->multi == NULL) {
        rq_why(why, whyn, "curl_multi_init failed"); /* UNTESTED */
        free(c);
        return RQ_NOMEM;
    }
    c->loop = loop;
    rq_list_init(&c->xfers);
    rq_list_init(&c->socks);
    curl_multi_setopt(c->multi, CURLMOPT_SOCKETFUNCTION, socket_cb);
    curl_multi_setopt(c->multi, CURLMOPT_SOCKETDATA, c);
    curl_multi_setopt(c->multi, CURLMOPT_TIMERFUNCTION, timer_cb);
    curl_multi_setopt(c->multi, CURLMOPT_TIMERDATA, c);
    curl_multi_setopt(c->multi, CURLMOPT_MAX_HOST_CONNECTIONS,
                      (long)HOST_CONNECTIONS);
    curl_multi_setopt(c->multi, CURLMOPT_MAXCONNECTS, (long)CACHED_CONNECTIONS);
    uv_timer_init(loop, &c->timer);
    c->timer.data = c;
    c->handles = 1;
    *out = c;
    return 0;
}

void rq_httpc_set_tls(struct rq_httpc *c, const struct rq_tls *tls)
{
    c->tls = tls;
}

/* A method is an HTTP token: letters only here, which covers them all. */
static bool method_valid(const char *m)
{
    size_t n = m != NULL ? strlen(m) : 0;
    if (n == 0 || n >= sizeof((struct xfer *)0)->method) {
        return false;
    }
    for (size_t i = 0; i < n; i++) {
        if (!((m[i] >= 'A' && m[i] <= 'Z') || (m[i] >= 'a' && m[i] <= 'z'))) {
            return false;
        }
    }
    return true;
}

static bool url_valid(const char *url)
{
    if (url == NULL ||
        (strncmp(url, "http://", 7) != 0 && strncmp(url, "https://", 8) != 0)) {
        return false;
    }
    CURLU *u = curl_url();
    if (u == NULL) {
        return false; /* UNTESTED: ENOMEM only. */
    }
    CURLUcode rv = curl_url_set(u, CURLUPART_URL, url, 0);
    curl_url_cleanup(u);
    return rv == CURLUE_OK;
}

/* Header lines must be "Name: value" with no line breaks of their own. */
static bool headers_valid(const char *const *headers, bool *has_type)
{
    *has_type = false;
    for (size_t i = 0; headers != NULL && headers[i] != NULL; i++) {
        const char *h = headers[i];
        const char *colon = strchr(h, ':');
        if (colon == NULL || colon == h || strpbrk(h, "\r\n") != NULL) {
            return false;
        }
        if ((size_t)(colon - h) == strlen("Content-Type") &&
            strncasecmp(h, "Content-Type", (size_t)(colon - h)) == 0) {
            *has_type = true;
        }
    }
    return true;
}

/*
 * The X-Raftq-Auth header line of @req into @line: the path and query are
 * cut from the URL as libcurl sends them (PATH_AS_IS, no fragment).
 * RQ_INVALID for a signer rq_sig refuses, RQ_IO without randomness.
 */
static int sign_line(const struct rq_httpc_req *req, char *line, size_t n)
{
    uint8_t nonce[RQ_SIG_NONCE_SIZE];
    struct timespec now;
    const char *host = strstr(req->url, "://") + 3; /* url_valid() */
    const char *target = host + strcspn(host, "/?#");
    /* libcurl sends "http://h:1?q" as "/?q", and "http://h:1" as "/". */
    char *path = malloc(strlen(target) + 2);
    int rv;

    if (path == NULL) {
        return RQ_NOMEM; /* UNTESTED: ENOMEM only. */
    }
    snprintf(path, strlen(target) + 2, "%s%s", target[0] == '/' ? "" : "/",
             target);
    path[strcspn(path, "#")] = '\0';
    char *query = strchr(path, '?');
    if (query != NULL) {
        *query++ = '\0';
    }
    if (getrandom(nonce, sizeof nonce, 0) != (ssize_t)sizeof nonce) {
        free(path); /* UNTESTED: getrandom fails only before boot entropy. */
        return RQ_IO;
    }
    clock_gettime(CLOCK_REALTIME, &now);
    struct rq_sig_req sr = {
        .method = req->method,
        .path = path,
        .query = query,
        .body = req->body,
        .body_len = req->body_len,
    };
    size_t prefix = (size_t)snprintf(line, n, RQ_SIG_HEADER ": ");
    rv = rq_sig_sign(
        req->sign->key, req->sign->sender,
        (uint64_t)now.tv_sec * 1000 + (uint64_t)now.tv_nsec / 1000000, nonce,
        &sr, line + prefix, n - prefix);
    free(path);
    return rv;
}

int rq_httpc_do(struct rq_httpc *c, const struct rq_httpc_req *req,
                rq_httpc_cb cb, void *data)
{
    bool has_type;
    char sig_line[sizeof RQ_SIG_HEADER ": " + RQ_SIG_VALUE_MAX];
    int rv = RQ_NOMEM;

    if (c->closing) {
        return RQ_SHUTDOWN;
    }
    if (cb == NULL || !method_valid(req->method) || !url_valid(req->url) ||
        !headers_valid(req->headers, &has_type) ||
        (req->body == NULL && req->body_len != 0)) {
        return RQ_INVALID;
    }
    if (req->sign != NULL) {
        rv = sign_line(req, sig_line, sizeof sig_line);
        if (rv != 0) {
            return rv;
        }
        rv = RQ_NOMEM;
    }
    struct xfer *x = calloc(1, sizeof *x);
    if (x == NULL) {
        return RQ_NOMEM; /* UNTESTED: ENOMEM only. */
    }
    x->client = c;
    x->cb = cb;
    x->data = data;
    x->max_response =
        req->max_response != 0 ? req->max_response : DEFAULT_MAX_RESPONSE;
    snprintf(x->method, sizeof x->method, "%s", req->method);
    rq_list_init(&x->link);
    x->easy = curl_easy_init();
    if (x->easy == NULL) {
        goto err_after_alloc; /* UNTESTED: ENOMEM only. */
    }
    for (size_t i = 0; req->headers != NULL && req->headers[i] != NULL; i++) {
        struct curl_slist *l = curl_slist_append(x->headers, req->headers[i]);
        if (l == NULL) {
            goto err_after_alloc; /* UNTESTED: ENOMEM only. */
        }
        x->headers = l;
    }
    if (req->sign != NULL) {
        struct curl_slist *l = curl_slist_append(x->headers, sig_line);
        if (l == NULL) {
            goto err_after_alloc; /* UNTESTED: ENOMEM only. */
        }
        x->headers = l;
    }
    /* No "Expect: 100-continue" round trip before a large body. */
    struct curl_slist *l = curl_slist_append(x->headers, "Expect:");
    if (l == NULL) {
        goto err_after_alloc; /* UNTESTED: ENOMEM only. */
    }
    x->headers = l;
    bool is_get = strcmp(req->method, "GET") == 0;
    bool is_head = strcmp(req->method, "HEAD") == 0;
    bool send_body = req->body_len > 0 || (!is_get && !is_head);
    if (send_body && !has_type) {
        l = curl_slist_append(x->headers, "Content-Type: application/json");
        if (l == NULL) {
            goto err_after_alloc; /* UNTESTED: ENOMEM only. */
        }
        x->headers = l;
    }
    /* A zero-length copy still gives libcurl a non-NULL body. */
    x->body = malloc(req->body_len + 1);
    if (x->body == NULL) {
        goto err_after_alloc; /* UNTESTED: ENOMEM only. */
    }
    if (req->body_len > 0) {
        memcpy(x->body, req->body, req->body_len);
    }

    CURL *e = x->easy;
    unsigned timeout =
        req->timeout_ms != 0 ? req->timeout_ms : DEFAULT_TIMEOUT_MS;
    if (c->tls != NULL && strncmp(req->url, "http://", 7) == 0) {
        /* Every port of a TLS node speaks TLS: internal URLs, built as
         * http:// by their callers, go out as https://. */
        char *url = malloc(strlen(req->url) + 2);
        if (url == NULL) {
            goto err_after_alloc; /* UNTESTED: ENOMEM only. */
        }
        sprintf(url, "https://%s", req->url + 7);
        curl_easy_setopt(e, CURLOPT_URL, url); /* libcurl copies it. */
        free(url);
    } else {
        curl_easy_setopt(e, CURLOPT_URL, req->url);
    }
    if (c->tls != NULL) {
        /* The server must verify against the CA and carry the name in the
         * URL (libcurl's defaults, said here); this node's certificate goes
         * along as a client certificate. */
        curl_easy_setopt(e, CURLOPT_PROTOCOLS_STR, "https");
        curl_easy_setopt(e, CURLOPT_SSL_VERIFYPEER, 1L);
        curl_easy_setopt(e, CURLOPT_SSL_VERIFYHOST, 2L);
        curl_easy_setopt(e, CURLOPT_SSLVERSION, (long)CURL_SSLVERSION_TLSv1_3);
        curl_easy_setopt(e, CURLOPT_CAINFO, rq_tls_ca_file(c->tls));
        curl_easy_setopt(e, CURLOPT_CAPATH, NULL);
        curl_easy_setopt(e, CURLOPT_SSLCERT, rq_tls_cert_file(c->tls));
        curl_easy_setopt(e, CURLOPT_SSLKEY, rq_tls_key_file(c->tls));
    } else {
        curl_easy_setopt(e, CURLOPT_PROTOCOLS_STR, "http,https");
    }
    curl_easy_setopt(e, CURLOPT_PRIVATE, x);
    curl_easy_setopt(e, CURLOPT_ERRORBUFFER, x->errbuf);
    curl_easy_setopt(e, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(e, CURLOPT_PROXY, "");
    /* The path goes out as given: a manager forwarding "/admin/topics/.."
     * to its leader must not have libcurl squash it to "/admin/". */
    curl_easy_setopt(e, CURLOPT_PATH_AS_IS, 1L);
    curl_easy_setopt(e, CURLOPT_TIMEOUT_MS, (long)timeout);
    if (req->fresh) {
        curl_easy_setopt(e, CURLOPT_FRESH_CONNECT, 1L);
    }
    curl_easy_setopt(e, CURLOPT_HTTPHEADER, x->headers);
    curl_easy_setopt(e, CURLOPT_WRITEFUNCTION, write_cb);
    curl_easy_setopt(e, CURLOPT_WRITEDATA, x);
    if (is_head) {
        curl_easy_setopt(e, CURLOPT_NOBODY, 1L);
    } else if (is_get && !send_body) {
        curl_easy_setopt(e, CURLOPT_HTTPGET, 1L);
    } else {
        curl_easy_setopt(e, CURLOPT_POSTFIELDS, x->body);
        curl_easy_setopt(e, CURLOPT_POSTFIELDSIZE_LARGE,
                         (curl_off_t)req->body_len);
        if (strcmp(req->method, "POST") != 0) {
            curl_easy_setopt(e, CURLOPT_CUSTOMREQUEST, req->method);
        }
    }
    /* Adding arms the timer at 0: the transfer starts on the next loop
     * turn, so the callback never runs inside this call. */
    if (curl_multi_add_handle(c->multi, e) != CURLM_OK) {
        rv = RQ_NOMEM; /* UNTESTED: ENOMEM only. */
        goto err_after_alloc;
    }
    rq_list_push(&c->xfers, &x->link);
    c->pending++;
    return 0;

err_after_alloc:
    xfer_free(x);
    return rv;
}

size_t rq_httpc_cancel(struct rq_httpc *c, const void *data)
{
    size_t n = 0;
    struct rq_list *e = c->xfers.next;
    while (!c->closing && e != &c->xfers) {
        struct xfer *x = RQ_LIST_ENTRY(e, struct xfer, link);
        e = e->next;
        if (x->data != data) {
            continue;
        }
        /* Removing a transfer under way makes libcurl close its
         * connection rather than return it to the pool. */
        curl_multi_remove_handle(c->multi, x->easy);
        x->errbuf[0] = '\0';
        xfer_finish(x, RQ_CANCELED, CURLE_OK);
        n++;
        /* The callback may have started or canceled others. */
        e = c->xfers.next;
    }
    return n;
}

size_t rq_httpc_pending(const struct rq_httpc *c)
{
    return c->pending;
}

void rq_httpc_close(struct rq_httpc *c, void (*cb)(void *data), void *data)
{
    assert(!c->closing);
    c->closing = true;
    c->close_cb = cb;
    c->close_data = data;
    uv_timer_stop(&c->timer);
    while (!rq_list_empty(&c->xfers)) {
        struct xfer *x = RQ_LIST_ENTRY(c->xfers.next, struct xfer, link);
        curl_multi_remove_handle(c->multi, x->easy);
        x->errbuf[0] = '\0';
        xfer_finish(x, RQ_CANCELED, CURLE_OK);
    }
    while (!rq_list_empty(&c->socks)) {
        struct sock *s = RQ_LIST_ENTRY(c->socks.next, struct sock, link);
        /* libcurl may still report these sockets while it cleans up. */
        curl_multi_assign(c->multi, s->fd, NULL);
        sock_close(s);
    }
    curl_multi_cleanup(c->multi);
    c->multi = NULL;
    uv_close((uv_handle_t *)&c->timer, on_timer_closed);
}

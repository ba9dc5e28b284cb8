/*
 * An HTTP client on the libuv loop: libcurl's multi interface driven by
 * uv_poll handles and one uv_timer (curl_multi_socket_action), so managers
 * and brokers call each other without threads and without blocking the
 * loop. Connections are reused (keep-alive) per host.
 *
 * One request: method, URL, optional headers and body, a total timeout;
 * the callback gets the HTTP status (0 when no response arrived), the
 * response body and, on failure, a reason. Every started request calls its
 * callback exactly once, on the loop thread, also when the client closes
 * (status 0, RQ_CANCELED). A function that returns an error never calls
 * the callback. A 4xx or 5xx answer is err 0 with that status; when err is
 * not 0 the body is empty.
 *
 * A request with a signer goes out signed (rq_sig.h): the X-Raftq-Auth
 * header is made here, per request, from its method, the path and query of
 * its URL as libcurl sends them, its body, the wall clock and a fresh
 * random nonce, so every internal caller signs the same way.
 *
 * libcurl's curl_global_init() runs once per process, inside the first
 * rq_httpc_new() (pthread_once); nothing else may call libcurl.
 */
#ifndef RQ_HTTPC_H
#define RQ_HTTPC_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <uv.h>

struct rq_httpc;

struct rq_httpc_resp {
    int err; /* 0, or RQ_TIMEOUT, RQ_CONNECT, RQ_CANCELED, RQ_IO, RQ_TOOBIG */
    long status;      /* HTTP status; 0 when no response arrived */
    const char *body; /* response body (NUL-terminated; borrowed until the
                         callback returns) */
    size_t body_len;
    const char *
        why; /* a reason when err != 0 ("connect to 127.0.0.1:8001: refused") */
    const char *retry_after;  /* the Retry-After header, or NULL */
    const char *content_type; /* the Content-Type header, or NULL */
    void *xfer;               /* Private: for rq_httpc_take_body(). */
};

/*
 * Takes @resp's body for the caller, inside the callback: the bytes at
 * resp->body (body_len of them and a NUL, malloc'd; free with free()), so
 * that a large answer passed on needs no copy. NULL when there is none.
 */
char *rq_httpc_take_body(const struct rq_httpc_resp *resp);

typedef void (*rq_httpc_cb)(void *data, const struct rq_httpc_resp *resp);

/* Who signs a request and with which key (rq_keys.h); both borrowed. */
struct rq_httpc_signer {
    const uint8_t *key; /* RQ_KEY_SIZE bytes: the direction's HTTP key. */
    const char *sender; /* "manager-1", "broker-4": rq_sig.h's grammar. */
};

struct rq_httpc_req {
    const char *method; /* "GET", "POST", "DELETE", ... */
    const char *url;    /* "http://HOST:PORT/path?query" */
    const char *const
        *headers;     /* NULL-terminated "Name: value" lines, or NULL */
    const void *body; /* copied; may be NULL */
    size_t body_len;
    unsigned timeout_ms; /* whole request; 0 means 10 s */
    size_t max_response; /* bytes; 0 means 64 MiB; more is RQ_TOOBIG */
    const struct rq_httpc_signer *sign; /* NULL: sent unsigned */
    /* On a new connection, never a kept-alive one, so that RQ_CONNECT
     * proves the server never received the request. Over a reused
     * connection that dies before any answer, libcurl sends the request
     * again on a new connection and reports that one's failure: a refused
     * connect then hides a first attempt that may have arrived. */
    bool fresh;
};

/* A client on @loop. 0, or RQ_NOMEM/RQ_IO with @why. */
int rq_httpc_new(uv_loop_t *loop, struct rq_httpc **out, char *why,
                 size_t whyn);

/*
 * Makes every later request speak TLS 1.3 with @tls's files (borrowed;
 * outlives @c): the server is verified against the CA and must carry the
 * URL's host name, this node's certificate is presented as a client
 * certificate, and an http:// URL goes out as https://, since every port
 * of a node with TLS speaks TLS.
 */
struct rq_tls;
void rq_httpc_set_tls(struct rq_httpc *c, const struct rq_tls *tls);

/*
 * Starts a request. 0 (the callback will run), or RQ_INVALID/RQ_NOMEM/
 * RQ_SHUTDOWN, or RQ_IO when no nonce could be drawn for its signature
 * (the callback will not run).
 */
int rq_httpc_do(struct rq_httpc *c, const struct rq_httpc_req *req,
                rq_httpc_cb cb, void *data);

/*
 * Cancels the pending requests started with callback data @data: their
 * callbacks run with RQ_CANCELED before this returns, and their
 * connections are closed, so a server sees its client leave. Returns how
 * many there were; 0 once the client is closing.
 */
size_t rq_httpc_cancel(struct rq_httpc *c, const void *data);

/* Requests started and not yet answered. */
size_t rq_httpc_pending(const struct rq_httpc *c);

/*
 * Cancels every pending request (their callbacks run with RQ_CANCELED,
 * before this returns; rq_httpc_do() refuses with RQ_SHUTDOWN from then),
 * closes the handles and frees the client; @cb (may be NULL) runs once
 * everything is released.
 */
void rq_httpc_close(struct rq_httpc *c, void (*cb)(void *data), void *data);

#endif /* RQ_HTTPC_H */

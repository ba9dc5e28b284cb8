/*
 * An HTTP/1.1 server on the process's libuv loop, with JSON replies.
 *
 * libmicrohttpd runs without threads of its own: it uses one epoll set
 * (MHD_USE_EPOLL), which a uv_poll watches, and a uv_timer follows
 * MHD_get_timeout(); both call MHD_run(). A handler may reply at once or
 * later (after a Raft commit, at the end of a long poll): a request left
 * without a reply when its handler returns is suspended and resumed by
 * rq_http_reply(). Everything runs on the loop thread.
 *
 * Routes are a table, matched in order on method and path; a path segment
 * written {name} matches any one non-empty segment and is read back with
 * rq_http_param(). An unknown path answers 404 and a known path with
 * another method 405, both with a JSON failure body. A request body larger
 * than max_body answers 413; one that would take the bodies buffered at
 * once past max_buffered, 503 with Retry-After; a query argument whose name
 * or value decodes to a NUL byte (%00), or a Transfer-Encoding other than
 * chunked, 400; all before any handler runs. A route may require
 * authentication: the server's authenticate callback then sees the
 * complete request first and may answer it instead of the handler. Every
 * reply body is
 * JSON ({"status": "success"|"failure", ...}) except rq_http_reply_text().
 *
 * With TLS the server speaks HTTPS only (libmicrohttpd's GnuTLS support,
 * TLS 1.3); see rq_http_config.tls.
 */
#ifndef RQ_HTTP_H
#define RQ_HTTP_H

#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <uv.h>

struct rq_http;
struct rq_http_req;
struct rq_metrics;
struct rq_tls;

typedef void (*rq_http_handler)(struct rq_http_req *req, void *data);

/*
 * Decides whether @req may reach its handler, given its route's @auth (not
 * 0). Runs once the body is complete, before the handler: true lets the
 * handler run; false means the callback has replied (401, say) and the
 * handler never sees the request.
 */
typedef bool (*rq_http_auth_cb)(struct rq_http_req *req, unsigned auth,
                                void *data);

struct rq_http_route {
    const char *method;  /* "GET", "POST", "DELETE", ... */
    const char *pattern; /* "/v1/topics/{topic}/records" */
    rq_http_handler handler;
    /* 0: open. Otherwise what the route requires, passed to the server's
     * authenticate callback (for example a mask of accepted keys). */
    unsigned auth;
};

struct rq_http_config {
    const char *bind_address; /* "HOST:PORT"; port 0 picks a free one. */
    size_t max_body;          /* 0: 16 MiB. */
    /* Cap on the bytes allocated for request bodies at once, over every
     * connection; 0: 256 MiB; raised to max_body + 1 if lower. */
    size_t max_buffered;
    unsigned max_connections; /* 0: 1024. */
    unsigned idle_timeout_s;  /* 0: 60; slow clients are cut off. */
    /* Where to count requests (borrowed; outlives the server), or NULL.
     * Every reply is counted in raftq_http_requests_total{method, route,
     * code} and timed from its headers' arrival to the reply in
     * raftq_http_request_duration_seconds{method, route}, by the matched
     * route's pattern ("/v1/topics/{topic}/records"), never the raw path;
     * requests no route took (404, 405, 413, 503 while closing or busy)
     * under route "unmatched" with the method reduced to a known few or
     * "other". Gauges raftq_http_connections,
     * raftq_http_waiting_requests (suspended) and
     * raftq_http_buffered_body_bytes, and the counter raftq_http_busy_total
     * (503s for max_buffered), are set when scraped. */
    struct rq_metrics *metrics;
    /* Called for every request whose route has auth != 0 (required then),
     * with auth_data. */
    rq_http_auth_cb authenticate;
    void *auth_data;
    /* HTTPS (TLS 1.3 only) with this node's certificate, or NULL for plain
     * HTTP (borrowed; outlives the server). Clients may present a
     * certificate; it is checked against the CA. */
    const struct rq_tls *tls;
    /* With tls: whether a request for @path (raw, without the query) needs
     * a client certificate that verifies against the CA; one that has none
     * is answered 401 before its body is read or a route is looked up.
     * NULL: no path needs one. */
    bool (*client_cert_required)(const char *path);
};

/*
 * Binds and starts serving @routes (borrowed: static storage). @data is
 * passed to every handler. RQ_IO with @why if the address cannot be bound.
 */
int rq_http_new(uv_loop_t *loop, const struct rq_http_config *cfg,
                const struct rq_http_route *routes, size_t n_routes, void *data,
                struct rq_http **out, char *why, size_t whyn);

/* The bound port (useful with port 0). */
uint16_t rq_http_port(const struct rq_http *h);

/*
 * Stops accepting, answers every suspended request with 503, closes all
 * connections and frees @h, then calls @cb (never from inside this call).
 * Each request still waiting for its reply first gets its abort callback,
 * which may reply itself; after rq_http_close() returns no handler may
 * touch those requests again. A handler that calls rq_http_close() may
 * still answer its own request before it returns. Clients get up to a
 * second to read their answers before the connections are closed.
 */
void rq_http_close(struct rq_http *h, void (*cb)(void *data), void *data);

/* ---- Reading a request (all strings borrowed until the reply) ---- */

const char *rq_http_method(const struct rq_http_req *req);
/* The path as sent (still percent-encoded), without the query string. */
const char *rq_http_path(const struct rq_http_req *req);
/* The raw query string (after '?', still percent-encoded), or "". */
const char *rq_http_query_string(const struct rq_http_req *req);
/* The auth of the matched route (0: open; see rq_http_route). */
unsigned rq_http_route_auth(const struct rq_http_req *req);
/* Whether @req's signature has been verified: by the authenticate callback
 * for a route that needs one, or by a handler that verified it itself and
 * said so with rq_http_set_signed() (a signature's nonce may be checked
 * once only, so a second look asks this). */
bool rq_http_signed(const struct rq_http_req *req);
void rq_http_set_signed(struct rq_http_req *req);
/* The handler of the matched route (NULL before routing). */
rq_http_handler rq_http_route_handler(const struct rq_http_req *req);
/* A {name} segment of the matched pattern, percent-decoded; NULL if none. */
const char *rq_http_param(const struct rq_http_req *req, const char *name);
/* A query-string argument, decoded; NULL if absent. */
const char *rq_http_query(const struct rq_http_req *req, const char *name);
/* A request header, case-insensitive; NULL if absent. */
const char *rq_http_header(const struct rq_http_req *req, const char *name);
const uint8_t *rq_http_body(const struct rq_http_req *req, size_t *len);

/*
 * The body parsed as a JSON object (borrowed; cached). An empty body is an
 * empty object. NULL with a reason in @why if the body is not a JSON
 * object, is nested deeper than 32 levels, is not UTF-8, repeats a key in
 * an object or holds "\u0000"; the caller answers 400 with that reason.
 */
json_t *rq_http_json(struct rq_http_req *req, char *why, size_t whyn);

/*
 * A named argument from the query string, else from the JSON body (API.md:
 * "the query string wins"), as text; NULL if in neither. Integers and
 * strings in the body are both returned as text (borrowed until reply);
 * a body value of any other type, or a body that rq_http_json() refuses,
 * counts as absent. "?name" without "=" is present and empty.
 */
const char *rq_http_arg(struct rq_http_req *req, const char *name);

/* ---- Replying: exactly once per request ---- */

/* Adds a header to the coming reply (copied), e.g. Retry-After. */
void rq_http_set_header(struct rq_http_req *req, const char *name,
                        const char *value);

/*
 * Replies with @status and @body (stolen; NULL means {}). "status":
 * "success" or "failure" is added from the status code unless present.
 */
void rq_http_reply(struct rq_http_req *req, int status, json_t *body);

/* calloc(@n, @size) for what answers @req, or NULL once 500 "out of
 * memory" has answered it. */
void *rq_http_calloc(struct rq_http_req *req, size_t n, size_t size);

/* {"status":"failure","code":...,"message":...}, the code that of @status
 * (rq_codes.h); formatted like printf. */
void rq_http_reply_error(struct rq_http_req *req, int status, const char *fmt,
                         ...) __attribute__((format(printf, 3, 4)));
/* The same naming the error's kind: @code is one of rq_codes.h's (the
 * above gives the generic code of @status). */
void rq_http_reply_fail(struct rq_http_req *req, int status, const char *code,
                        const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));

/* A non-JSON reply (Prometheus text, the status page); @body copied. */
void rq_http_reply_text(struct rq_http_req *req, int status,
                        const char *content_type, const char *body, size_t len);

/* The same with @body malloc'd and taken (freed with free() once sent,
 * or at once if the reply cannot be made): no copy of a large answer. */
void rq_http_reply_owned(struct rq_http_req *req, int status,
                         const char *content_type, void *body, size_t len);

/* The same for a body in two parts sent one after the other: @head
 * (@head_len bytes, copied) then @tail (malloc'd and taken; may be NULL
 * when @tail_len is 0), so that a small head goes before a large buffer
 * without copying the buffer. */
void rq_http_reply_parts(struct rq_http_req *req, int status,
                         const char *content_type, const void *head,
                         size_t head_len, void *tail, size_t tail_len);

/*
 * Says that the handler answers @req later whether or not its client is
 * still there, so its socket is not watched for the client leaving while
 * it waits (two epoll_ctl() calls fewer a request): the abort callback
 * then runs only when the server closes, and a reply to a client that
 * has gone fails quietly. Call it before the handler returns.
 */
void rq_http_unwatched(struct rq_http_req *req);

/*
 * Called at most once if the client goes away before the reply, so a long
 * poll can stop waiting. The handler must still reply (the reply is then
 * dropped and the request freed); the usual callback replies at once. A
 * client that shuts down its sending side counts as gone. If the client is
 * gone already, @cb runs before this returns. rq_http_close() also calls
 * it for every request still waiting.
 */
void rq_http_on_abort(struct rq_http_req *req,
                      void (*cb)(struct rq_http_req *req, void *data),
                      void *data);

/*
 * Whether @req's client has gone, asking its socket now rather than
 * waiting for the loop to report it: a request whose connection's close
 * arrived together with it (a client that gave up while a network
 * partition held its request back) is handled before the loop can see the
 * close. If it has gone the abort callback runs (rq_http_on_abort) before
 * this returns true. One poll() of the socket; meant for the moment
 * before a step that cannot be called back.
 */
bool rq_http_client_gone(struct rq_http_req *req);

struct rq_http_stats {
    uint64_t requests;  /* Requests routed to a handler. */
    uint64_t rejected;  /* 404, 405, 413, 503 while closing or busy, and
                           requests libmicrohttpd refused before routing. */
    uint64_t busy;      /* 503s for max_buffered. */
    uint64_t buffered;  /* Bytes allocated for request bodies now. */
    unsigned suspended; /* Requests waiting for a late reply now. */
    unsigned connections;
};
void rq_http_stats(const struct rq_http *h, struct rq_http_stats *out);

/*
 * The rq_opt entries of the HTTP server's limits, for the option table of
 * every process that serves HTTP (rq_config.h); @type has uint64_t fields
 * http_idle_timeout_s, http_max_connections and http_max_buffered.
 */
/* clang-format off */
#define RQ_HTTP_OPTIONS(type)                                                \
    {"http-idle-timeout-s", "RAFTQ_HTTP_IDLE_TIMEOUT_S", RQ_OPT_U64, "60",   \
     false, offsetof(type, http_idle_timeout_s),                             \
     "close an HTTP connection idle (or sending nothing) this long"},        \
    {"http-max-connections", "RAFTQ_HTTP_MAX_CONNECTIONS", RQ_OPT_U64,       \
     "1024", false, offsetof(type, http_max_connections),                    \
     "HTTP connections open at once, at most; more are refused"},            \
    {"http-max-buffered-bytes", "RAFTQ_HTTP_MAX_BUFFERED_BYTES", RQ_OPT_U64, \
     "268435456", false, offsetof(type, http_max_buffered),                  \
     "bytes of request bodies held at once, over all connections; past "     \
     "them a request is answered 503 with Retry-After"}
/* clang-format on */

#endif /* RQ_HTTP_H */

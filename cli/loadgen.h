/*
 * A load generator for HTTP/1.1 on libuv, for `raftq bench` (bench.h): a
 * fixed number of keep-alive connections spread over a list of servers,
 * each with exactly one request in flight, so the number of connections
 * is the number of requests in flight. It measures what a client sees:
 * each answer's latency (from handing the request to the socket to the
 * last byte of the answer), the answers and the messages they carried in
 * a timed window after a warm-up, the errors by kind, and this process's
 * own CPU time in the window (the generator must not be the bottleneck).
 *
 * It is deliberately not a general HTTP client: requests are made by the
 * caller (usually prebuilt, a head and a body it lends), answers are read
 * with hresp.h (a status, a Content-Length body), there is no TLS, no
 * pipelining and no redirect. A refused connection, a reset or a 5xx is
 * an error counted in the result, never the end of a run: a connection
 * that fails is opened again after a pause, and its request is not
 * resent (the next one is built afresh).
 *
 * One run is one call of loadgen_run() on a loop of its own; it returns
 * when the window is over and the requests in flight have been answered
 * (or a short drain time has passed), when the caller's stop flag is set,
 * or in a counted run (max_requests) when that many have been answered;
 * with stop_on_error, at the first error.
 */
#ifndef LOADGEN_H
#define LOADGEN_H

#include <netinet/in.h>
#include <signal.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>
#include <uv.h>

/* Bytes each connection lends to the request builder for a request made
 * at each send (a head with a changing offset, a small body). */
#define LOADGEN_SCRATCH 2048

/* Distinct kinds of error kept apart in a result (the rest are added to
 * the last). */
#define LOADGEN_ERROR_KINDS 8

/* A server to connect to. */
struct loadgen_target {
    struct sockaddr_storage addr;
    socklen_t addr_len;
    char name[128]; /* "HOST:PORT", for messages. */
};

/* The request a connection sends next: up to two buffers (a head, then a
 * body), borrowed until its answer has come. */
struct loadgen_req {
    uv_buf_t bufs[2];
    unsigned nbufs;
    char *scratch; /* LOADGEN_SCRATCH bytes of the connection's own. */
};

/*
 * Fills @req with the request that connection @conn (0 to conns - 1,
 * talking to targets[conn % n_targets]) sends next; @seq numbers the
 * requests of the run from 0 across every connection.
 */
typedef void (*loadgen_next_cb)(void *data, unsigned conn, uint64_t seq,
                                struct loadgen_req *req);

/*
 * A 200 answer to request @seq with its @body (@len bytes, borrowed):
 * sets *messages to how many messages it carried and returns 0, or
 * returns non-zero with @why when the answer is not what the case
 * expects (counted as an error).
 */
typedef int (*loadgen_answer_cb)(void *data, unsigned conn, uint64_t seq,
                                 const char *body, size_t len,
                                 uint64_t *messages, char *why, size_t whyn);

/* Once a second while a run goes on. */
struct loadgen_progress {
    bool warming;       /* Still in the warm-up. */
    double seconds;     /* Into the window (or the warm-up). */
    uint64_t messages;  /* In the window so far. */
    double msgs_per_s;  /* In the last second. */
    uint64_t errors;    /* In the window so far. */
    uint64_t in_flight; /* Requests sent and not yet answered. */
};

typedef void (*loadgen_progress_cb)(void *data,
                                    const struct loadgen_progress *p);

struct loadgen_config {
    const struct loadgen_target *targets; /* Borrowed. */
    size_t n_targets;
    unsigned conns;        /* Connections, hence requests in flight. */
    uint64_t warmup_ms;    /* Answers in the warm-up are not counted. */
    uint64_t measure_ms;   /* The window, after the warm-up. */
    uint64_t max_requests; /* 0, or send this many requests in all and end
                              when they are answered (a fill; no warm-up,
                              measure_ms is then a time limit). */
    loadgen_next_cb next;
    loadgen_answer_cb answer;
    loadgen_progress_cb progress; /* Or NULL. */
    void *data;
    const volatile sig_atomic_t *stop; /* Or NULL; borrowed. */
    bool stop_on_error;                /* The first error ends the run. */
};

struct loadgen_error_kind {
    char kind[48]; /* "HTTP 503", "connect", "closed", "malformed"... */
    uint64_t n;
    char first[256]; /* The first one's detail. */
};

struct loadgen_result {
    double seconds;    /* The window's length. */
    uint64_t answers;  /* 200 answers in the window. */
    uint64_t messages; /* Messages they carried. */
    uint32_t *lat_us;  /* Each one's latency in microseconds; owned. */
    size_t n_lat;
    bool lat_sorted;
    double cpu_seconds; /* This process's CPU (user + system) in the
                           window. */
    uint64_t errors;    /* Errors in the window (or in a counted run). */
    struct loadgen_error_kind kinds[LOADGEN_ERROR_KINDS];
    size_t n_kinds;
    bool interrupted; /* The stop flag ended the run. */
};

/*
 * Runs the load of @cfg and fills @out (clear it with
 * loadgen_result_clear()). Returns 0, RQ_INVALID (no targets or
 * connections) or RQ_NOMEM; errors of the servers are in @out, not in the
 * return value.
 */
int loadgen_run(const struct loadgen_config *cfg, struct loadgen_result *out);

/* Frees what @r holds. */
void loadgen_result_clear(struct loadgen_result *r);

/*
 * The @q-quantile (0 to 1) of @r's latencies in milliseconds, by the
 * nearest-rank method; sorts r->lat_us. Negative when there are none.
 */
double loadgen_quantile_ms(struct loadgen_result *r, double q);

#endif /* LOADGEN_H */

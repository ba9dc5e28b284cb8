/*
 * The client's connection to the manager cluster: blocking calls with JSON
 * bodies, made by libraftq's client (libraftq/raftq.h, raftq_request), which
 * keeps its connections between calls.
 *
 * mclient_call() asks one manager and moves on to the next on a
 * connection failure or a 503 (no quorum, no leader yet), round after
 * round, for up to the configured timeout; the manager that answered last
 * is asked first next time. Any manager serves any request (followers
 * forward to the leader), so which one answers does not matter.
 * mclient_call_at() asks one given manager once.
 *
 * A signal handler may set the stop flag given at creation: the call in
 * progress is then abandoned within about a second and returns
 * RQ_CANCELED.
 */
#ifndef MCLIENT_H
#define MCLIENT_H

#include <jansson.h>
#include <signal.h>
#include <stddef.h>
#include <stdint.h>

#include "url.h"

struct mclient;

struct mclient_config {
    const char (*bases)[URL_MAX]; /* Canonical base URLs (url.h); copied. */
    size_t n_bases;
    const char *token; /* Admin bearer token, or NULL; copied. */
    /* PEM CA file that https:// managers must verify against, or NULL for
     * the system's CAs; borrowed, outlives the client. */
    const char *cacert;
    uint64_t timeout_ms; /* How long to retry unavailable managers. */
    const volatile sig_atomic_t *stop; /* Or NULL. Borrowed. */
};

/* One answer. */
struct mclient_resp {
    long status;             /* HTTP status. */
    json_t *body;            /* The JSON object answered, or NULL. Owned. */
    const char *message;     /* body's "message", or a phrase; never NULL. */
    uint64_t retry_after_ms; /* From Retry-After, 0 if absent. */
    char base[URL_MAX];      /* The manager that answered. */
    char text[256];          /* Where message points when body has none. */
};

/* 0, RQ_INVALID (no bases) or RQ_NOMEM. */
int mclient_new(const struct mclient_config *cfg, struct mclient **out);

/*
 * A second client like @c (its managers, token, CA and timeout) with its
 * own connection, stopped by @stop (or NULL), for another thread: one
 * client must not be used by two threads at once. 0 or RQ_NOMEM.
 */
int mclient_clone(const struct mclient *c, const volatile sig_atomic_t *stop,
                  struct mclient **out);
/* No-op on NULL. */
void mclient_free(struct mclient *c);

/* Frees the body; the struct may be reused. */
void mclient_resp_clear(struct mclient_resp *r);

/*
 * @method ("GET", "POST", "DELETE") on @path (with its query, built by
 * url.h on an empty base), with @body (borrowed; NULL for none; a POST
 * without a body sends an empty one). @wait_ms is added to the per-request
 * time limit, for long polls. Returns 0 when a manager answered anything
 * but 503 (see out->status); RQ_NOQUORUM when managers kept answering 503
 * until the timeout; RQ_CONNECT when none could be reached (twice round
 * the list, or until the timeout); RQ_CANCELED when stopped. @why says
 * what the last failures were. Clear @out after a 0.
 */
int mclient_call(struct mclient *c, const char *method, const char *path,
                 const json_t *body, uint64_t wait_ms, struct mclient_resp *out,
                 char *why, size_t whyn);

/* One attempt at @base within @timeout_ms. 0 when it answered (any
 * status, 503 included), RQ_CONNECT or RQ_CANCELED otherwise. */
int mclient_call_at(struct mclient *c, const char *base, const char *method,
                    const char *path, const json_t *body, uint64_t timeout_ms,
                    struct mclient_resp *out, char *why, size_t whyn);

/* The first base URL (for messages). */
const char *mclient_first(const struct mclient *c);

#endif /* MCLIENT_H */

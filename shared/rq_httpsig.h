/*
 * Signed internal requests on the HTTP server: the glue between rq_http's
 * authenticate hook and the pure rq_sig. A route's auth field is a mask of
 * the keys it accepts (RQ_HTTPSIG_M2B, ...); before its handler runs, the
 * request's X-Raftq-Auth header is verified against those keys at the wall
 * clock, and a refusal is answered here: 401 with a JSON failure body
 * naming what is wrong (missing, malformed, unknown version, expired, bad
 * signature, replayed), or 503 with Retry-After when the replay cache is
 * full. Nothing of a refused request reaches its handler. Refusals are
 * counted in raftq_http_auth_refused_total{reason} and logged at most once
 * a second; the replay cache's entries, capacity and cap are gauges
 * (raftq_http_auth_replay_cache_*), read when /metrics is scraped.
 *
 * Signing is rq_httpc's (struct rq_httpc_signer); this module only
 * verifies. It is not thread-safe: one per loop.
 */
#ifndef RQ_HTTPSIG_H
#define RQ_HTTPSIG_H

#include <stddef.h>
#include <stdint.h>

#include "rq_http.h"
#include "rq_keys.h"
#include "rq_sig.h"

/* rq_http_route.auth values: the keys a route accepts, by direction. */
#define RQ_HTTPSIG_KEY(use) (1u << (use))
#define RQ_HTTPSIG_M2B RQ_HTTPSIG_KEY(RQ_KEY_HTTP_M2B)
#define RQ_HTTPSIG_B2M RQ_HTTPSIG_KEY(RQ_KEY_HTTP_B2M)
#define RQ_HTTPSIG_M2M RQ_HTTPSIG_KEY(RQ_KEY_HTTP_M2M)

/* The bounds of --auth-clock-skew-ms. */
#define RQ_HTTPSIG_SKEW_MIN_MS 1000
#define RQ_HTTPSIG_SKEW_MAX_MS 600000
/* The bounds of --auth-replay-cache-entries. */
#define RQ_HTTPSIG_CACHE_MIN 16
#define RQ_HTTPSIG_CACHE_MAX RQ_SIG_CACHE_MAX

struct rq_metrics;
struct rq_httpsig;

struct rq_httpsig_config {
    const struct rq_keys *keys; /* Borrowed; outlives the verifier. */
    uint64_t skew_ms;           /* 0: RQ_SIG_SKEW_DEFAULT_MS. */
    size_t cache_entries;       /* The cap; 0: RQ_SIG_CACHE_DEFAULT. */
    struct rq_metrics *metrics; /* Borrowed, or NULL. */
};

#define RQ_HTTPSIG_STR_(x) #x
#define RQ_HTTPSIG_STR(x) RQ_HTTPSIG_STR_(x)

/*
 * The rq_opt entries of the signature flags, for the option table of every
 * process that verifies signed requests; @type has uint64_t fields
 * auth_clock_skew_ms and auth_replay_cache_entries. Defaults come from
 * rq_sig.h, so the table and the module cannot disagree.
 */
/* clang-format off */
#define RQ_HTTPSIG_OPTIONS(type)                                             \
    {"auth-clock-skew-ms", "RAFTQ_AUTH_CLOCK_SKEW_MS", RQ_OPT_U64,           \
     RQ_HTTPSIG_STR(RQ_SIG_SKEW_DEFAULT_MS), false,                          \
     offsetof(type, auth_clock_skew_ms),                                     \
     "how far a signed request's timestamp may be from this clock, either "  \
     "way"},                                                                 \
    {"auth-replay-cache-entries", "RAFTQ_AUTH_REPLAY_CACHE_ENTRIES",         \
     RQ_OPT_U64, RQ_HTTPSIG_STR(RQ_SIG_CACHE_DEFAULT), false,                \
     offsetof(type, auth_replay_cache_entries),                              \
     "signed requests remembered within the clock window, at most (16 "      \
     "bytes each at the cap); past it they are refused with 503"}
/* clang-format on */

/* Checks the configured --auth-clock-skew-ms and
 * --auth-replay-cache-entries: 0 or RQ_INVALID with @why naming the flag. */
int rq_httpsig_check_flags(uint64_t skew_ms, uint64_t cache_entries, char *why,
                           size_t whyn);

/* 0, or RQ_NOMEM. Caller frees with rq_httpsig_free(). */
int rq_httpsig_new(const struct rq_httpsig_config *cfg,
                   struct rq_httpsig **out);
void rq_httpsig_free(struct rq_httpsig *s);

/* The rq_http_auth_cb (data: the struct rq_httpsig). */
bool rq_httpsig_authenticate(struct rq_http_req *req, unsigned auth,
                             void *data);

/*
 * Verifies @req against the keys of @auth without replying, for a handler
 * that must know whether an optional signature is good (a manager's
 * X-Raftq-Forwarded mark). A refusal is counted.
 */
enum rq_sig_result rq_httpsig_verify(struct rq_httpsig *s,
                                     struct rq_http_req *req, unsigned auth,
                                     char *why, size_t whyn);

#endif /* RQ_HTTPSIG_H */

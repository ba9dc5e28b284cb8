/*
 * Verifying signed internal requests on the HTTP server (rq_httpsig.h):
 * reads the request's method, path, query, body and X-Raftq-Auth header,
 * takes the wall clock (signatures carry wall-clock time, so the window
 * compares clocks of different machines; the monotonic clock would mean
 * nothing to the peer), and calls rq_sig_verify().
 */
#include "rq_httpsig.h"

#include <stdio.h>
#include <stdlib.h>
#include <time.h>

#include "rq_err.h"
#include "rq_log.h"
#include "rq_metrics.h"

#define LOG_TAG "rq_httpsig"

#define WHY_LEN 256
#define LOG_EVERY_MS 1000
/* What a 503 for a full replay cache asks the caller to wait, in seconds:
 * entries expire continuously, so a second frees some. */
#define RETRY_AFTER_S "1"

/* The replay cache's gauges, in the order of gauge_defs. */
enum { G_ENTRIES, G_CAPACITY, G_MAX, G_COUNT };

static const struct rq_metric_def gauge_defs[G_COUNT] = {
    {RQ_METRIC_GAUGE,
     "raftq_http_auth_replay_cache_entries",
     "Signed internal requests the replay cache remembers (accepted within "
     "the clock window, and expired ones not yet reclaimed).",
     {NULL}},
    {RQ_METRIC_GAUGE,
     "raftq_http_auth_replay_cache_capacity",
     "Entries the replay cache holds at its present size before it must "
     "free room or grow (up to the cap).",
     {NULL}},
    {RQ_METRIC_GAUGE,
     "raftq_http_auth_replay_cache_max_entries",
     "The replay cache's cap (--auth-replay-cache-entries): past it, signed "
     "requests are refused with 503 (reason cache_full).",
     {NULL}},
};

struct rq_httpsig {
    const struct rq_keys *keys;
    struct rq_sig_cache *cache;
    struct rq_sig_verifier verifier;
    struct rq_metrics *metrics; /* Borrowed, NULL without collection. */
    struct rq_metric *gauges[G_COUNT];
    struct rq_metric *refused[RQ_SIG_N_RESULTS];
    uint64_t last_log_ms;
    uint64_t unlogged; /* Refusals since the last line. */
};

static uint64_t wall_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}

/* 0 if @lo <= @v <= @hi, else RQ_INVALID with a sentence naming @flag. */
static int check_range(uint64_t v, uint64_t lo, uint64_t hi, const char *flag,
                       char *why, size_t whyn)
{
    if (v < lo || v > hi) {
        snprintf(why, whyn, "need %llu <= --%s <= %llu", (unsigned long long)lo,
                 flag, (unsigned long long)hi);
        return RQ_INVALID;
    }
    return 0;
}

int rq_httpsig_check_flags(uint64_t skew_ms, uint64_t cache_entries, char *why,
                           size_t whyn)
{
    int rv = check_range(skew_ms, RQ_HTTPSIG_SKEW_MIN_MS, RQ_HTTPSIG_SKEW_MAX_MS,
                         "auth-clock-skew-ms", why, whyn);
    if (rv != 0) {
        return rv;
    }
    return check_range(cache_entries, RQ_HTTPSIG_CACHE_MIN,
                       RQ_HTTPSIG_CACHE_MAX, "auth-replay-cache-entries", why,
                       whyn);
}

/* The collect callback: the cache's gauges as of the scrape. */
static void collect(void *data)
{
    struct rq_httpsig *s = data;
    rq_metric_set(s->gauges[G_ENTRIES], (double)rq_sig_cache_count(s->cache));
    rq_metric_set(s->gauges[G_CAPACITY],
                  (double)rq_sig_cache_capacity(s->cache));
    rq_metric_set(s->gauges[G_MAX], (double)rq_sig_cache_max(s->cache));
}

int rq_httpsig_new(const struct rq_httpsig_config *cfg,
                   struct rq_httpsig **out)
{
    static const struct rq_metric_def def = {
        RQ_METRIC_COUNTER,
        "raftq_http_auth_refused_total",
        "Internal HTTP requests refused before their handler, by reason "
        "(missing, malformed, version, expired, bad_signature, replayed, "
        "cache_full).",
        {"reason"},
    };
    struct rq_httpsig *s = calloc(1, sizeof *s);

    if (s == NULL) {
        return RQ_NOMEM; /* UNTESTED: ENOMEM only. */
    }
    s->keys = cfg->keys;
    s->verifier.skew_ms =
        cfg->skew_ms != 0 ? cfg->skew_ms : RQ_SIG_SKEW_DEFAULT_MS;
    /* rq_sig_verify() keeps an entry until ts + skew + 1, at most twice
     * the window and one past the clock. */
    s->cache =
        rq_sig_cache_new(cfg->cache_entries, 2 * s->verifier.skew_ms + 1);
    if (s->cache == NULL) {
        free(s); /* UNTESTED: ENOMEM only. */
        return RQ_NOMEM;
    }
    s->verifier.seen = s->cache;
    if (cfg->metrics != NULL) {
        /* Every reason from the start, so a scrape shows zeros. Without
         * memory the refusals go uncounted (rq_metrics.h). */
        struct rq_metric_family *f = rq_metrics_add(cfg->metrics, &def);
        for (int r = RQ_SIG_OK + 1; r < RQ_SIG_N_RESULTS; r++) {
            const char *label = rq_sig_result_label(r);
            s->refused[r] = rq_metric_get(f, &label);
        }
        for (int g = 0; g < G_COUNT; g++) {
            s->gauges[g] = rq_metric_family_child(
                rq_metrics_add(cfg->metrics, &gauge_defs[g]));
        }
        if (rq_metrics_on_collect(cfg->metrics, collect, s) == 0) {
            s->metrics = cfg->metrics;
        }
    }
    *out = s;
    return 0;
}

void rq_httpsig_free(struct rq_httpsig *s)
{
    if (s == NULL) {
        return;
    }
    if (s->metrics != NULL) {
        rq_metrics_off_collect(s->metrics, collect, s);
    }
    for (int r = 0; r < RQ_SIG_N_RESULTS; r++) {
        rq_metric_put(s->refused[r]);
    }
    rq_sig_cache_free(s->cache);
    free(s);
}

enum rq_sig_result rq_httpsig_verify(struct rq_httpsig *s,
                                     struct rq_http_req *req, unsigned auth,
                                     char *why, size_t whyn)
{
    const uint8_t *keys[RQ_KEY_COUNT];
    size_t n_keys = 0;
    struct rq_sig_fields f;
    size_t which;
    size_t len;
    uint64_t now = wall_ms();

    for (int use = 0; use < RQ_KEY_COUNT; use++) {
        if (auth & RQ_HTTPSIG_KEY(use)) {
            keys[n_keys++] = rq_keys_get(s->keys, use);
        }
    }
    const uint8_t *body = rq_http_body(req, &len);
    struct rq_sig_req r = {
        .method = rq_http_method(req),
        .path = rq_http_path(req),
        .query = rq_http_query_string(req),
        .body = body,
        .body_len = len,
    };
    enum rq_sig_result rv =
        rq_sig_verify(&s->verifier, rq_http_header(req, RQ_SIG_HEADER), keys,
                      n_keys, &r, now, &f, &which, why, whyn);
    if (rv == RQ_SIG_OK) {
        return rv;
    }
    rq_metric_inc(s->refused[rv]);
    s->unlogged++;
    /* One line a second at most: refusals are what a stranger can cause
     * at will. */
    if (now - s->last_log_ms >= LOG_EVERY_MS) {
        rq_log(RQ_WARN, "refused %s %s: %s (%llu refusals since the last line)",
               r.method, r.path, rq_sig_result_label(rv),
               (unsigned long long)s->unlogged);
        s->last_log_ms = now;
        s->unlogged = 0;
    }
    return rv;
}

bool rq_httpsig_authenticate(struct rq_http_req *req, unsigned auth,
                             void *data)
{
    char why[WHY_LEN];
    enum rq_sig_result rv = rq_httpsig_verify(data, req, auth, why, sizeof why);

    if (rv == RQ_SIG_OK) {
        return true;
    }
    if (rv == RQ_SIG_BUSY) {
        rq_http_set_header(req, "Retry-After", RETRY_AFTER_S);
        rq_http_reply_error(req, 503, "%s", why);
    } else {
        rq_http_reply_error(req, 401, "%s", why);
    }
    return false;
}

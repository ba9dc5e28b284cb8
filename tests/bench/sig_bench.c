/*
 * Figures for the replay cache of signed internal requests (shared/rq_sig.h),
 * printed, never asserted: make bench runs it on the release build.
 *
 * Each run feeds a stream of requests on a simulated clock: request i comes
 * at T0 + i * window / rate_n milliseconds, stamped with that time (clocks in
 * sync), so each lives one window (30 s) in the cache and about rate_n are
 * live once the first window has passed. The first window warms up; the
 * next two are measured, so that the sweep the cache makes once per entry
 * lifetime (two windows) falls among the measured calls. For each live count
 * the stream is verified whole (rq_sig_verify: parse, HMAC-SHA256, the cache)
 * and then fed to the cache alone; the slowest single call shows the sweeps and
 * rehashes, which run inside calls. A last run offers twice what the cap can
 * hold and reports what got in and what a refusal cost.
 */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "rq_keys.h"
#include "rq_sig.h"

#define T0 1700000000000ull
#define WINDOW RQ_SIG_SKEW_DEFAULT_MS
#define SECRET "bench-secret-0123456789abcdef-0123456789"

static uint64_t mono_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

/* A distinct nonce per request. */
static void nonce_of(uint8_t nonce[RQ_SIG_NONCE_SIZE], uint64_t i)
{
    memset(nonce, 0xa5, RQ_SIG_NONCE_SIZE);
    memcpy(nonce, &i, sizeof i);
}

struct figures {
    double mean_ns;
    double max_ms;
    double warm_max_ms; /* The slowest call of the warm-up (doublings). */
    size_t bytes;
    size_t entries;
    uint64_t busy;
};

/* Verifies 3 * @n requests of a stream with @n live; times the last 2 * @n. */
static struct figures run_verify(size_t n)
{
    struct rq_keys keys;
    struct figures fig = {0};
    struct rq_sig_cache *cache = rq_sig_cache_new(0, 2 * WINDOW + 1);
    struct rq_sig_verifier v = {.skew_ms = WINDOW, .seen = cache};
    struct rq_sig_req r = {.method = "POST",
                           .path = "/v1/topics/t/partitions/0/records",
                           .body = "{\"records\":[{\"value\":\"x\"}]}",
                           .body_len = 28};
    char value[RQ_SIG_VALUE_MAX];
    char why[256];
    uint64_t total = 0, worst = 0;

    rq_keys_derive(&keys, SECRET, strlen(SECRET));
    const uint8_t *key = rq_keys_get(&keys, RQ_KEY_HTTP_M2B);
    for (uint64_t i = 0; i < 3 * n; i++) {
        uint8_t nonce[RQ_SIG_NONCE_SIZE];
        struct rq_sig_fields f;
        size_t which;
        uint64_t now = T0 + i * WINDOW / n;
        nonce_of(nonce, i);
        rq_sig_sign(key, "manager-1", now, nonce, &r, value, sizeof value);
        uint64_t t = mono_ns();
        enum rq_sig_result rv = rq_sig_verify(&v, value, &key, 1, &r, now, &f,
                                              &which, why, sizeof why);
        t = mono_ns() - t;
        fig.busy += rv != RQ_SIG_OK;
        if (i >= n) {
            total += t;
            worst = t > worst ? t : worst;
        }
    }
    fig.mean_ns = (double)total / (double)(2 * n);
    fig.max_ms = (double)worst / 1e6;
    fig.bytes = rq_sig_cache_bytes(cache);
    fig.entries = rq_sig_cache_count(cache);
    rq_sig_cache_free(cache);
    return fig;
}

/* The same stream, offered at @over times its rate, to the cache alone
 * (capped at @cap; 0: the default). */
static struct figures run_cache(size_t n, size_t cap, unsigned over)
{
    struct figures fig = {0};
    struct rq_sig_cache *cache = rq_sig_cache_new(cap, 2 * WINDOW + 1);
    uint64_t total = 0, worst = 0;
    uint64_t reqs = 3 * (uint64_t)n * over;
    uint64_t warm = 0;

    for (uint64_t i = 0; i < reqs; i++) {
        uint8_t nonce[RQ_SIG_NONCE_SIZE];
        uint64_t now = T0 + i * WINDOW / ((uint64_t)n * over);
        nonce_of(nonce, i);
        uint64_t t = mono_ns();
        enum rq_sig_result rv =
            rq_sig_cache_add(cache, "manager-1", nonce, now + WINDOW + 1, now);
        t = mono_ns() - t;
        if (i >= reqs / 3) {
            fig.busy += rv != RQ_SIG_OK;
            total += t;
            worst = t > worst ? t : worst;
        } else {
            warm = t > warm ? t : warm;
        }
    }
    fig.mean_ns = (double)total / (double)(reqs - reqs / 3);
    fig.warm_max_ms = (double)warm / 1e6;
    fig.max_ms = (double)worst / 1e6;
    fig.bytes = rq_sig_cache_bytes(cache);
    fig.entries = rq_sig_cache_count(cache);
    rq_sig_cache_free(cache);
    return fig;
}

int main(void)
{
    static const size_t live[] = {1000, 100000, 1000000};

    printf("replay cache (window %d ms, default cap %u entries)\n", WINDOW,
           RQ_SIG_CACHE_DEFAULT);
    printf("%9s  %12s %10s  %12s %10s %10s  %10s %10s\n", "live", "verify ns",
           "worst ms", "cache ns", "worst ms", "warm-up ms", "table KiB",
           "held");
    for (size_t k = 0; k < sizeof live / sizeof live[0]; k++) {
        struct figures v = run_verify(live[k]);
        struct figures c = run_cache(live[k], 0, 1);
        printf("%9zu  %12.0f %10.2f  %12.0f %10.2f %10.2f  %10zu %10zu\n",
               live[k], v.mean_ns, v.max_ms, c.mean_ns, c.max_ms, c.warm_max_ms,
               c.bytes / 1024, c.entries);
        if (v.busy != 0 || c.busy != 0) {
            printf("           (%" PRIu64 " and %" PRIu64 " refused)\n", v.busy,
                   c.busy);
        }
    }
    /* Overload: twice the rate the cap holds, at 1,000,000 and the
     * default. */
    static const size_t caps[] = {1000000, RQ_SIG_CACHE_DEFAULT};
    for (size_t k = 0; k < sizeof caps / sizeof caps[0]; k++) {
        struct figures o = run_cache(caps[k], caps[k], 2);
        printf(
            "overload, cap %zu, offered 2x: %.0f ns per request, worst "
            "%.2f ms, %.1f%% refused, %zu held, table %zu KiB\n",
            caps[k], o.mean_ns, o.max_ms,
            100.0 * (double)o.busy / (double)(4 * caps[k]), o.entries,
            o.bytes / 1024);
    }
    return 0;
}

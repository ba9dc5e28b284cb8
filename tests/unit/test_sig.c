/*
 * Unit tests of request signatures (shared/rq_sig.h): a known answer
 * computed independently (tests/integration/rqsign.py), the round trip,
 * every signed field tampered with, each refusal of the parser and the
 * verifier, the edges of the clock window, replays, and the replay cache:
 * expiry, growth (every live entry still found across rehashes, expired
 * ones dropped), the cap's refusal and its walk, shrinking, and clock
 * jumps.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include <cmocka.h>

#include "rq_err.h"
#include "rq_keys.h"
#include "rq_sig.h"

#define SECRET "0123456789abcdef0123456789abcdef"
#define NOW 1700000000123ull
#define SKEW 30000ull
#define BODY "{\"a\":1}"

struct fx {
    struct rq_keys keys;
    struct rq_sig_cache *cache;
    struct rq_sig_verifier v;
    struct rq_sig_req req;
    uint8_t nonce[RQ_SIG_NONCE_SIZE];
    char value[RQ_SIG_VALUE_MAX];
    char why[256];
};

static int setup(void **state)
{
    static struct fx f;
    memset(&f, 0, sizeof f);
    rq_keys_derive(&f.keys, SECRET, strlen(SECRET));
    f.cache = rq_sig_cache_new(8, 2 * SKEW + 1);
    f.v.skew_ms = SKEW;
    f.v.seen = f.cache;
    f.req = (struct rq_sig_req){
        .method = "POST",
        .path = "/v1/topics/t/partitions/0/records",
        .query = "x=%20y",
        .body = BODY,
        .body_len = strlen(BODY),
    };
    for (int i = 0; i < RQ_SIG_NONCE_SIZE; i++) {
        f.nonce[i] = (uint8_t)i;
    }
    *state = &f;
    return f.cache != NULL ? 0 : -1;
}

static int teardown(void **state)
{
    struct fx *f = *state;
    rq_sig_cache_free(f->cache);
    return 0;
}

static const uint8_t *key(struct fx *f, enum rq_key_use use)
{
    return rq_keys_get(&f->keys, use);
}

/* Signs f->req with the M2B key as manager-1 at @ts into f->value. */
static void sign_at(struct fx *f, uint64_t ts)
{
    assert_int_equal(rq_sig_sign(key(f, RQ_KEY_HTTP_M2B), "manager-1", ts,
                                 f->nonce, &f->req, f->value, sizeof f->value),
                     0);
}

/* Verifies f->value against the M2B key alone at @now. */
static enum rq_sig_result verify_at(struct fx *f, uint64_t now)
{
    const uint8_t *keys[] = {key(f, RQ_KEY_HTTP_M2B)};
    struct rq_sig_fields out;
    size_t which = 99;
    enum rq_sig_result rv =
        rq_sig_verify(&f->v, f->value, keys, 1, &f->req, now, &out, &which,
                      f->why, sizeof f->why);
    if (rv == RQ_SIG_OK) {
        assert_int_equal(which, 0);
    }
    return rv;
}

static void test_sig_sign_matches_python(void **state)
{
    struct fx *f = *state;
    sign_at(f, NOW);
    assert_string_equal(
        f->value,
        "v1 sender=manager-1 ts=1700000000123 "
        "nonce=000102030405060708090a0b0c0d0e0f "
        "sig=09e0ce33203e6bc62dcd28a9f6eb6c819264427520db9d75eb7e9281244072a0");
    assert_true(strlen(f->value) < RQ_SIG_VALUE_MAX);
}

static void test_sig_round_trip(void **state)
{
    struct fx *f = *state;
    const uint8_t *keys[] = {key(f, RQ_KEY_HTTP_B2M), key(f, RQ_KEY_HTTP_M2B)};
    struct rq_sig_fields out;
    size_t which = 99;

    sign_at(f, NOW);
    assert_int_equal(rq_sig_verify(&f->v, f->value, keys, 2, &f->req, NOW, &out,
                                   &which, f->why, sizeof f->why),
                     RQ_SIG_OK);
    assert_int_equal(which, 1);
    assert_string_equal(out.sender, "manager-1");
    assert_int_equal(out.ts_ms, NOW);
    assert_memory_equal(out.nonce, f->nonce, RQ_SIG_NONCE_SIZE);
    assert_int_equal(rq_sig_cache_count(f->cache), 1);
}

static void test_sig_empty_body_and_query(void **state)
{
    struct fx *f = *state;
    f->req = (struct rq_sig_req){.method = "GET", .path = "/internal/replicas"};
    sign_at(f, NOW);
    assert_int_equal(verify_at(f, NOW), RQ_SIG_OK);
}

/* Signs, changes one thing the signature covers, and expects BAD. */
static void assert_tamper_refused(struct fx *f, void (*tamper)(struct fx *f))
{
    struct rq_sig_req saved = f->req;
    sign_at(f, NOW);
    tamper(f);
    assert_int_equal(verify_at(f, NOW), RQ_SIG_BAD);
    assert_non_null(strstr(f->why, "bad signature"));
    f->req = saved;
}

static void set_method(struct fx *f)
{
    f->req.method = "PUT";
}
static void set_path(struct fx *f)
{
    f->req.path = "/v1/topics/t/partitions/1/records";
}
static void set_query(struct fx *f)
{
    f->req.query = "x=+y";
}
static void drop_query(struct fx *f)
{
    f->req.query = NULL;
}
static void set_body(struct fx *f)
{
    f->req.body = "{\"a\":2}";
}
static void cut_body(struct fx *f)
{
    f->req.body_len--;
}

/* Replaces the text after @field= in f->value by @with (same length). */
static void patch(struct fx *f, const char *field, const char *with)
{
    char *p = strstr(f->value, field);
    assert_non_null(p);
    memcpy(p + strlen(field), with, strlen(with));
}

static void set_sender(struct fx *f)
{
    patch(f, "sender=", "manager-2");
}
static void set_ts(struct fx *f)
{
    patch(f, "ts=", "1700000000124");
}
static void set_nonce(struct fx *f)
{
    patch(f, "nonce=", "1");
}
static void set_mac(struct fx *f)
{
    patch(f, "sig=", "1");
}

static void test_sig_tampered_fields_refused(void **state)
{
    struct fx *f = *state;
    void (*const tampers[])(struct fx *) = {
        set_method, set_path,   set_query, drop_query, set_body,
        cut_body,   set_sender, set_ts,    set_nonce,  set_mac,
    };
    for (size_t i = 0; i < sizeof tampers / sizeof tampers[0]; i++) {
        assert_tamper_refused(f, tampers[i]);
    }
    /* Nothing refused was remembered. */
    assert_int_equal(rq_sig_cache_count(f->cache), 0);
}

static void test_sig_other_direction_refused(void **state)
{
    struct fx *f = *state;
    const uint8_t *keys[] = {key(f, RQ_KEY_HTTP_M2M), key(f, RQ_KEY_HTTP_B2M)};
    struct rq_sig_fields out;
    size_t which;
    struct rq_keys other;

    sign_at(f, NOW); /* M2B */
    assert_int_equal(rq_sig_verify(&f->v, f->value, keys, 2, &f->req, NOW, &out,
                                   &which, f->why, sizeof f->why),
                     RQ_SIG_BAD);
    /* The same direction under another cluster's secret. */
    rq_keys_derive(&other, SECRET "!", strlen(SECRET) + 1);
    keys[0] = rq_keys_get(&other, RQ_KEY_HTTP_M2B);
    assert_int_equal(rq_sig_verify(&f->v, f->value, keys, 1, &f->req, NOW, &out,
                                   &which, f->why, sizeof f->why),
                     RQ_SIG_BAD);
}

static void assert_parse(const char *value, enum rq_sig_result want,
                         const char *says)
{
    struct rq_sig_fields out;
    char why[256] = "";
    enum rq_sig_result rv = rq_sig_parse(value, &out, why, sizeof why);
    if (rv != want || strstr(why, says) == NULL) {
        fail_msg("'%s': got %s '%s', want %s saying '%s'",
                 value != NULL ? value : "(null)", rq_sig_result_label(rv), why,
                 rq_sig_result_label(want), says);
    }
}

#define N32 "000102030405060708090a0b0c0d0e0f"
#define S64 N32 N32

static void test_sig_parse_refusals(void **state)
{
    (void)state;
    char longer[RQ_SIG_VALUE_MAX + 8];
    memset(longer, 'a', sizeof longer - 1);
    longer[sizeof longer - 1] = '\0';
    memcpy(longer, "v1 sender=", 10);

    assert_parse("v1 sender=a ts=1 nonce=" N32 " sig=" S64, RQ_SIG_OK, "");
    assert_parse("v1 sender=a-b.c_D9 ts=0 nonce=" N32 " sig=" S64, RQ_SIG_OK,
                 "");
    assert_parse(NULL, RQ_SIG_MISSING, "missing");
    assert_parse("", RQ_SIG_MALFORMED, "'v1 '");
    assert_parse("v2 sender=a ts=1 nonce=" N32 " sig=" S64, RQ_SIG_VERSION,
                 "'v2'");
    assert_parse("v10", RQ_SIG_VERSION, "version");
    assert_parse("V1 sender=a ts=1 nonce=" N32 " sig=" S64, RQ_SIG_MALFORMED,
                 "'v1 '");
    assert_parse("v1  sender=a ts=1 nonce=" N32 " sig=" S64, RQ_SIG_MALFORMED,
                 "sender");
    assert_parse("v1 sender= ts=1 nonce=" N32 " sig=" S64, RQ_SIG_MALFORMED,
                 "sender");
    assert_parse("v1 sender=a/b ts=1 nonce=" N32 " sig=" S64, RQ_SIG_MALFORMED,
                 "ts=");
    assert_parse("v1 sender=a ts=01 nonce=" N32 " sig=" S64, RQ_SIG_MALFORMED,
                 "leading zero");
    assert_parse("v1 sender=a ts=1234567890123456 nonce=" N32 " sig=" S64,
                 RQ_SIG_MALFORMED, "15 decimal");
    assert_parse("v1 sender=a ts=-1 nonce=" N32 " sig=" S64, RQ_SIG_MALFORMED,
                 "timestamp");
    assert_parse("v1 sender=a ts=1 nonce=" N32 "00 sig=" S64, RQ_SIG_MALFORMED,
                 "sig=");
    assert_parse(
        "v1 sender=a ts=1 nonce=000102030405060708090A0B0C0D0E0F sig=" S64,
        RQ_SIG_MALFORMED, "nonce=");
    assert_parse("v1 sender=a ts=1 nonce=" N32 " sig=" N32, RQ_SIG_MALFORMED,
                 "64 lower-case");
    assert_parse("v1 sender=a ts=1 nonce=" N32 " sig=" S64 " ",
                 RQ_SIG_MALFORMED, "after the signature");
    assert_parse("v1 ts=1 sender=a nonce=" N32 " sig=" S64, RQ_SIG_MALFORMED,
                 "sender=");
    assert_parse(longer, RQ_SIG_MALFORMED, "too long");
    /* 65 characters of sender. */
    assert_parse("v1 sender=" N32 N32 "x ts=1 nonce=" N32 " sig=" S64,
                 RQ_SIG_MALFORMED, "1 to 64");
}

static void test_sig_sign_refuses_bad_sender(void **state)
{
    struct fx *f = *state;
    assert_int_equal(rq_sig_sign(key(f, RQ_KEY_HTTP_M2B), "a b", NOW, f->nonce,
                                 &f->req, f->value, sizeof f->value),
                     RQ_INVALID);
    assert_int_equal(rq_sig_sign(key(f, RQ_KEY_HTTP_M2B), "", NOW, f->nonce,
                                 &f->req, f->value, sizeof f->value),
                     RQ_INVALID);
    assert_int_equal(rq_sig_sign(key(f, RQ_KEY_HTTP_M2B), "m", NOW, f->nonce,
                                 &f->req, f->value, 20),
                     RQ_INVALID);
}

static void test_sig_missing_and_malformed_verify(void **state)
{
    struct fx *f = *state;
    const uint8_t *keys[] = {key(f, RQ_KEY_HTTP_M2B)};
    struct rq_sig_fields out;
    size_t which;
    assert_int_equal(rq_sig_verify(&f->v, NULL, keys, 1, &f->req, NOW, &out,
                                   &which, f->why, sizeof f->why),
                     RQ_SIG_MISSING);
    assert_non_null(strstr(f->why, "X-Raftq-Auth"));
    assert_int_equal(rq_sig_verify(&f->v, "secret", keys, 1, &f->req, NOW, &out,
                                   &which, f->why, sizeof f->why),
                     RQ_SIG_MALFORMED);
    assert_string_equal(rq_sig_result_label(RQ_SIG_BAD), "bad_signature");
    assert_string_equal(rq_sig_result_label(RQ_SIG_N_RESULTS), "?");
}

static void test_sig_window_edges(void **state)
{
    struct fx *f = *state;

    /* Exactly at either edge: accepted (each with a fresh nonce). */
    sign_at(f, NOW);
    assert_int_equal(verify_at(f, NOW + SKEW), RQ_SIG_OK);
    f->nonce[0] = 1;
    sign_at(f, NOW);
    assert_int_equal(verify_at(f, NOW - SKEW), RQ_SIG_OK);

    /* One millisecond past either edge: refused, and not remembered. */
    f->nonce[0] = 2;
    sign_at(f, NOW);
    assert_int_equal(verify_at(f, NOW + SKEW + 1), RQ_SIG_EXPIRED);
    assert_non_null(strstr(f->why, "behind"));
    assert_int_equal(verify_at(f, NOW - SKEW - 1), RQ_SIG_EXPIRED);
    assert_non_null(strstr(f->why, "ahead of"));
    assert_int_equal(rq_sig_cache_count(f->cache), 2);
    /* The same request inside the window: still usable once. */
    assert_int_equal(verify_at(f, NOW), RQ_SIG_OK);
}

static void test_sig_replay_refused(void **state)
{
    struct fx *f = *state;
    sign_at(f, NOW);
    assert_int_equal(verify_at(f, NOW), RQ_SIG_OK);
    assert_int_equal(verify_at(f, NOW + 1), RQ_SIG_REPLAYED);
    assert_non_null(strstr(f->why, "replayed"));
    /* Until the end of the window. */
    assert_int_equal(verify_at(f, NOW + SKEW), RQ_SIG_REPLAYED);
    /* After it the timestamp is stale anyway. */
    assert_int_equal(verify_at(f, NOW + SKEW + 1), RQ_SIG_EXPIRED);

    /* The same nonce from another sender is another request. */
    assert_int_equal(rq_sig_sign(key(f, RQ_KEY_HTTP_M2B), "manager-2", NOW,
                                 f->nonce, &f->req, f->value, sizeof f->value),
                     0);
    assert_int_equal(verify_at(f, NOW), RQ_SIG_OK);
}

static void test_sig_cache_expiry(void **state)
{
    struct fx *f = *state;
    uint8_t nonce[RQ_SIG_NONCE_SIZE] = {0};

    assert_int_equal(rq_sig_cache_add(f->cache, "a", nonce, 100, 0), RQ_SIG_OK);
    assert_int_equal(rq_sig_cache_add(f->cache, "a", nonce, 200, 99),
                     RQ_SIG_REPLAYED);
    /* Expired at 100: the slot is taken again. */
    assert_int_equal(rq_sig_cache_add(f->cache, "a", nonce, 300, 100),
                     RQ_SIG_OK);
    assert_int_equal(rq_sig_cache_count(f->cache), 1);
    assert_int_equal(rq_sig_cache_add(f->cache, "a", nonce, 400, 299),
                     RQ_SIG_REPLAYED);
}

static void test_sig_cache_full(void **state)
{
    struct fx *f = *state;
    uint8_t nonce[RQ_SIG_NONCE_SIZE] = {0};

    /* Capacity 8: eight live entries, then refusal. */
    for (uint8_t i = 0; i < 8; i++) {
        nonce[0] = i;
        assert_int_equal(rq_sig_cache_add(f->cache, "a", nonce, 1000 + i, 0),
                         RQ_SIG_OK);
    }
    nonce[0] = 8;
    assert_int_equal(rq_sig_cache_add(f->cache, "a", nonce, 2000, 0),
                     RQ_SIG_BUSY);
    /* Held entries are still recognised while full. */
    nonce[0] = 3;
    assert_int_equal(rq_sig_cache_add(f->cache, "a", nonce, 2000, 0),
                     RQ_SIG_REPLAYED);
    /* Once the first three expire (at 1000, 1001, 1002), the sweep makes room
     * for three. */
    for (uint8_t i = 8; i < 11; i++) {
        nonce[0] = i;
        assert_int_equal(rq_sig_cache_add(f->cache, "a", nonce, 5000, 1002),
                         RQ_SIG_OK);
    }
    nonce[0] = 11;
    assert_int_equal(rq_sig_cache_add(f->cache, "a", nonce, 5000, 1002),
                     RQ_SIG_BUSY);
    /* Every live entry is still found after the deletions moved them. */
    for (uint8_t i = 3; i < 11; i++) {
        nonce[0] = i;
        assert_int_equal(rq_sig_cache_add(f->cache, "a", nonce, 5000, 1002),
                         RQ_SIG_REPLAYED);
    }
    assert_int_equal(rq_sig_cache_count(f->cache), 8);

    /* Through the verifier: 503's reason. */
    for (uint8_t i = 0; i < 8; i++) {
        nonce[0] = (uint8_t)(100 + i);
        assert_int_equal(rq_sig_cache_add(f->cache, "b", nonce, NOW + 1, NOW),
                         RQ_SIG_OK);
    }
    sign_at(f, NOW);
    assert_int_equal(verify_at(f, NOW), RQ_SIG_BUSY);
    assert_string_equal(rq_sig_result_label(RQ_SIG_BUSY), "cache_full");
}

/* Many entries with every expiry pattern: the table never loses a live
 * entry and never keeps more than its cap. */
static void test_sig_cache_churn(void **state)
{
    (void)state;
    struct rq_sig_cache *c = rq_sig_cache_new(64, 41);
    uint8_t nonce[RQ_SIG_NONCE_SIZE] = {0};
    assert_non_null(c);
    for (uint32_t t = 0; t < 5000; t++) {
        memcpy(nonce, &t, sizeof t);
        /* Each lives 40 ticks: at most 40 live, so never full. */
        assert_int_equal(rq_sig_cache_add(c, "x", nonce, t + 40, t), RQ_SIG_OK);
        assert_true(rq_sig_cache_count(c) <= 64);
        for (uint32_t back = 1; back < 40 && back <= t; back += 7) {
            uint32_t u = t - back;
            memcpy(nonce, &u, sizeof u);
            assert_int_equal(rq_sig_cache_add(c, "x", nonce, t + 40, t),
                             RQ_SIG_REPLAYED);
        }
    }
    rq_sig_cache_free(c);
    rq_sig_cache_free(NULL);
}

/* The nonce of entry @i of group @g. */
static void nonce_of(uint8_t nonce[RQ_SIG_NONCE_SIZE], uint32_t g, uint32_t i)
{
    memset(nonce, 0, RQ_SIG_NONCE_SIZE);
    memcpy(nonce, &i, sizeof i);
    memcpy(nonce + 8, &g, sizeof g);
}

static enum rq_sig_result add(struct rq_sig_cache *c, uint32_t g, uint32_t i,
                              uint64_t expires, uint64_t now)
{
    uint8_t nonce[RQ_SIG_NONCE_SIZE];
    nonce_of(nonce, g, i);
    return rq_sig_cache_add(c, "manager-1", nonce, expires, now);
}

/* Entries [0, @n) of group @g all held at @now: each one is a replay. */
static void assert_all_replayed(struct rq_sig_cache *c, uint32_t g, uint32_t n,
                                uint64_t now)
{
    size_t before = rq_sig_cache_count(c);
    for (uint32_t i = 0; i < n; i++) {
        enum rq_sig_result rv = add(c, g, i, now + 1000, now);
        if (rv != RQ_SIG_REPLAYED) {
            fail_msg("entry %u/%u at %llu: %s, not replayed", g, i,
                     (unsigned long long)now, rq_sig_result_label(rv));
        }
    }
    assert_int_equal(rq_sig_cache_count(c), before);
}

#define SLOT_BYTES 12
#define MIN_SLOTS 4096

static void test_sig_cache_starts_small(void **state)
{
    (void)state;
    struct rq_sig_cache *c = rq_sig_cache_new(0, 0);
    assert_non_null(c);
    assert_int_equal(rq_sig_cache_max(c), RQ_SIG_CACHE_DEFAULT);
    assert_int_equal(rq_sig_cache_bytes(c), MIN_SLOTS * SLOT_BYTES);
    assert_int_equal(rq_sig_cache_capacity(c), MIN_SLOTS / 4 * 3);
    assert_int_equal(rq_sig_cache_count(c), 0);
    rq_sig_cache_free(c);
    /* A cap past the largest is the largest. */
    c = rq_sig_cache_new(SIZE_MAX, 0);
    assert_non_null(c);
    assert_int_equal(rq_sig_cache_max(c), RQ_SIG_CACHE_MAX);
    rq_sig_cache_free(c);
}

/* Every live entry stays a replay across each doubling. */
static void test_sig_cache_growth_keeps_entries(void **state)
{
    (void)state;
    const uint32_t n = 100000;
    struct rq_sig_cache *c = rq_sig_cache_new(1u << 20, 1000000);
    size_t capacity = rq_sig_cache_capacity(c);
    int doublings = 0;

    for (uint32_t i = 0; i < n; i++) {
        uint64_t now = i / 100; /* A millisecond per hundred. */
        assert_int_equal(add(c, 0, i, 900000, now), RQ_SIG_OK);
        if (rq_sig_cache_capacity(c) != capacity) {
            assert_true(rq_sig_cache_capacity(c) > capacity);
            capacity = rq_sig_cache_capacity(c);
            doublings++;
            assert_all_replayed(c, 0, i + 1, now);
        }
        assert_true(rq_sig_cache_count(c) <= rq_sig_cache_capacity(c));
    }
    /* 4,096 slots to 2^18, whose 3/4 hold 100,000. */
    assert_int_equal(doublings, 6);
    assert_int_equal(rq_sig_cache_bytes(c), (1u << 18) * SLOT_BYTES);
    assert_int_equal(rq_sig_cache_count(c), n);
    assert_all_replayed(c, 0, n, 1000);
    rq_sig_cache_free(c);
}

/* Entries expire across growth: a rehash drops the expired ones and
 * keeps the rest, including expiries across 2^32 ms. */
static void test_sig_cache_expiry_across_growth(void **state)
{
    (void)state;
    /* The low 32 bits of the clock wrap at t0 + 50. */
    const uint64_t t0 = (1ull << 32) - 50;
    struct rq_sig_cache *c = rq_sig_cache_new(1u << 20, 60001);

    /* 2,000 short (until t0 + 10) and 2,000 long (until t0 + 60000): the
     * table grows once, with all of them live. */
    for (uint32_t i = 0; i < 2000; i++) {
        assert_int_equal(add(c, 1, i, t0 + 10, t0), RQ_SIG_OK);
        assert_int_equal(add(c, 2, i, t0 + 60000, t0), RQ_SIG_OK);
    }
    assert_int_equal(rq_sig_cache_count(c), 4000);
    assert_all_replayed(c, 1, 2000, t0 + 9);
    assert_all_replayed(c, 2, 2000, t0 + 9);

    /* Past the wrap and the short ones' end: 10,000 more long ones, so the
     * table grows again and drops the short ones as it does. */
    for (uint32_t i = 0; i < 10000; i++) {
        assert_int_equal(add(c, 3, i, t0 + 60000, t0 + 100), RQ_SIG_OK);
    }
    assert_int_equal(rq_sig_cache_count(c), 12000);
    assert_all_replayed(c, 2, 2000, t0 + 100);
    assert_all_replayed(c, 3, 10000, t0 + 100);
    /* The short ones are gone: each is new again. */
    for (uint32_t i = 0; i < 2000; i++) {
        assert_int_equal(add(c, 1, i, t0 + 200, t0 + 100), RQ_SIG_OK);
    }
    /* And the long ones end at their time, after the wrap. */
    assert_all_replayed(c, 3, 10000, t0 + 59999);
    assert_int_equal(add(c, 3, 0, t0 + 70000, t0 + 60000), RQ_SIG_OK);
    rq_sig_cache_free(c);
}

/* The cap: growth stops there, and a cap of live entries refuses (BUSY)
 * without forgetting any, until they expire. */
static void test_sig_cache_cap_refuses(void **state)
{
    (void)state;
    const uint32_t cap = 10000;
    struct rq_sig_cache *c = rq_sig_cache_new(cap, 1000);

    for (uint32_t i = 0; i < cap; i++) {
        assert_int_equal(add(c, 0, i, i == 0 ? 900 : 500, 0), RQ_SIG_OK);
    }
    /* 16,384 slots: 3/4 of them would be 12,288, but the cap is 10,000. */
    assert_int_equal(rq_sig_cache_capacity(c), cap);
    assert_int_equal(rq_sig_cache_bytes(c), 16384 * SLOT_BYTES);
    for (uint32_t i = 0; i < 100; i++) {
        assert_int_equal(add(c, 1, i, 500, 10 + i), RQ_SIG_BUSY);
    }
    assert_int_equal(rq_sig_cache_count(c), cap);
    assert_all_replayed(c, 0, cap, 499);
    assert_int_equal(rq_sig_cache_bytes(c), 16384 * SLOT_BYTES);
    /* At 500 all but entry 0 (until 900) have expired: the walk at the cap
     * makes room. */
    assert_int_equal(add(c, 1, 0, 1400, 500), RQ_SIG_OK);
    assert_true(rq_sig_cache_count(c) < cap);
    assert_int_equal(rq_sig_cache_bytes(c), 16384 * SLOT_BYTES);
    /* A life after the last sweep (at 0, when the table grew) a round of
     * the walk begins, 8 slots an add: 2,048 adds (replays here) later it
     * has deleted every expired entry, and the table shrinks back. */
    for (int k = 0; k < 16384 / 8; k++) {
        assert_int_equal(rq_sig_cache_bytes(c), 16384 * SLOT_BYTES);
        assert_int_equal(add(c, 1, 0, 1400, 1200), RQ_SIG_REPLAYED);
    }
    assert_int_equal(rq_sig_cache_count(c), 1);
    assert_int_equal(rq_sig_cache_bytes(c), MIN_SLOTS * SLOT_BYTES);
    assert_all_replayed(c, 1, 1, 1200);
    rq_sig_cache_free(c);
}

/* At the cap, each add walks on a few slots (32) and deletes the expired
 * entries there: once the burst that filled the cap expires, the walk
 * makes room for every request that follows. */
static void test_sig_cache_cap_walks(void **state)
{
    (void)state;
    const uint32_t cap = 100;
    struct rq_sig_cache *c = rq_sig_cache_new(cap, 1000);

    /* A burst fills the cap with entries living until 50... */
    for (uint32_t i = 0; i < cap; i++) {
        assert_int_equal(add(c, 0, i, 50, 0), RQ_SIG_OK);
    }
    /* ...then one request a millisecond, each living 50 ms: refused while
     * the burst lives, then accepted: at most 50 are live, and at the cap
     * the walk goes round the 256 slots every 8 adds. */
    for (uint32_t t = 1; t < 1000; t++) {
        enum rq_sig_result rv = add(c, 1, t, t + 50, t);
        if (t < 50) {
            assert_int_equal(rv, RQ_SIG_BUSY);
            assert_int_equal(rq_sig_cache_count(c), cap);
        } else {
            assert_int_equal(rv, RQ_SIG_OK);
        }
        assert_true(rq_sig_cache_count(c) <= cap);
    }
    rq_sig_cache_free(c);
}

/* After a burst the table shrinks back once its entries expire, keeping
 * the live ones: at the end of a round of the walk, or at once when every
 * entry has expired. */
static void test_sig_cache_shrinks(void **state)
{
    (void)state;
    struct rq_sig_cache *c = rq_sig_cache_new(1u << 20, 60001);

    for (uint32_t i = 0; i < 30000; i++) {
        assert_int_equal(add(c, 0, i, 300, 0), RQ_SIG_OK);
    }
    assert_int_equal(rq_sig_cache_bytes(c), 65536 * SLOT_BYTES);
    assert_int_equal(rq_sig_cache_capacity(c), 65536 / 4 * 3);
    for (uint32_t i = 0; i < 1000; i++) {
        assert_int_equal(add(c, 1, i, 60201, 200), RQ_SIG_OK);
    }
    assert_int_equal(rq_sig_cache_count(c), 31000);
    /* A life after the last sweep (at 0, when the table grew) a round
     * begins: 8 slots an add, 8,192 adds (replays) for 65,536 slots. At
     * its end 1,000 are left, which the smallest table holds. */
    for (uint32_t k = 0; k < 65536 / 8; k++) {
        assert_int_equal(rq_sig_cache_bytes(c), 65536 * SLOT_BYTES);
        assert_int_equal(add(c, 1, k % 1000, 70000, 60001 + k / 1000),
                         RQ_SIG_REPLAYED);
    }
    assert_int_equal(rq_sig_cache_count(c), 1000);
    assert_int_equal(rq_sig_cache_bytes(c), MIN_SLOTS * SLOT_BYTES);
    assert_int_equal(rq_sig_cache_capacity(c), MIN_SLOTS / 4 * 3);
    assert_all_replayed(c, 1, 1000, 60010);
    assert_int_equal(add(c, 0, 0, 70000, 60010), RQ_SIG_OK);

    /* A burst again, then nothing until it has all expired: the next add
     * empties the table and shrinks it at once. */
    for (uint32_t i = 0; i < 30000; i++) {
        assert_int_equal(add(c, 2, i, 61000, 60100), RQ_SIG_OK);
    }
    assert_int_equal(rq_sig_cache_bytes(c), 65536 * SLOT_BYTES);
    assert_int_equal(add(c, 3, 0, 80000, 70000), RQ_SIG_OK);
    assert_int_equal(rq_sig_cache_count(c), 1);
    assert_int_equal(rq_sig_cache_bytes(c), MIN_SLOTS * SLOT_BYTES);
    rq_sig_cache_free(c);
}

/* At the end of a round the table shrinks only when a quarter of it would
 * do (hysteresis), or its smallest size. */
static void test_sig_cache_shrink_hysteresis(void **state)
{
    (void)state;
    struct rq_sig_cache *c = rq_sig_cache_new(1u << 20, 1000);

    /* 4,000 short-lived entries grow the table to 8,192 slots. */
    for (uint32_t i = 0; i < 4000; i++) {
        assert_int_equal(add(c, 0, i, 10, 0), RQ_SIG_OK);
    }
    assert_int_equal(rq_sig_cache_bytes(c), 8192 * SLOT_BYTES);
    for (uint32_t i = 0; i < 1500; i++) {
        assert_int_equal(add(c, 1, i, 1005, 5), RQ_SIG_OK);
    }
    /* The round from 1000 (1,024 adds, replays) leaves 1,500: more than
     * half of a quarter (1,024), so the table keeps its size although
     * 4,096 slots would hold them. */
    for (uint32_t k = 0; k < 8192 / 8; k++) {
        assert_int_equal(add(c, 1, k, 1900, 1000), RQ_SIG_REPLAYED);
    }
    assert_int_equal(rq_sig_cache_count(c), 1500);
    assert_int_equal(rq_sig_cache_bytes(c), 8192 * SLOT_BYTES);
    assert_all_replayed(c, 1, 1500, 1000);
    rq_sig_cache_free(c);
}

/* A small deterministic generator (xorshift64). */
static uint64_t next_rand(uint64_t *x)
{
    *x ^= *x << 13;
    *x ^= *x >> 7;
    *x ^= *x << 17;
    return *x;
}

/*
 * Against a model (each pair's expiry in an array): random adds of new
 * pairs and replays of old ones, at a clock that mostly creeps, sometimes
 * leaps past every expiry and sometimes steps back, so that the table
 * grows, walks its rounds, shrinks and is emptied many times over. Every
 * answer must be the model's (but for pairs that had expired by an
 * earlier, later-reading clock).
 */
static void test_sig_cache_matches_model(void **state)
{
    (void)state;
    enum { KEYS = 250000, STEPS = 500000, LIFE = 1000 };
    static uint64_t model[KEYS]; /* 0: never added. */
    struct rq_sig_cache *c = rq_sig_cache_new(1u << 16, LIFE);
    uint64_t x = 88172645463325252ull;
    uint64_t now = (1ull << 40) - 500000; /* Across a wrap of 2^32. */
    uint64_t high = now;
    uint32_t added = 0;
    size_t last_bytes = rq_sig_cache_bytes(c);
    int grew = 0, shrank = 0;

    memset(model, 0, sizeof model);
    for (uint32_t step = 0; step < STEPS; step++) {
        uint64_t r = next_rand(&x);
        if (r % 20000 == 0) {
            now += 3 * LIFE; /* Past everything. */
        } else if (r % 20000 == 1) {
            now -= r / 1000 % LIFE; /* A step back. */
        } else {
            now += r / 1000 % 16 == 0; /* 16 adds a millisecond. */
        }
        /* A new pair, or one of the last 4,096 (live or lately expired). */
        uint32_t k = added < KEYS && (r >> 20) % 2 == 0
                         ? added++
                         : added - 1 - (uint32_t)((r >> 24) % 4096);
        if (k >= KEYS) {
            continue;
        }
        uint64_t life = 1 + (r >> 40) % LIFE;
        /* A pair that expired by a later clock reading may have been
         * forgotten: after a step back it may go either way. */
        high = now > high ? now : high;
        enum rq_sig_result want = model[k] > now ? RQ_SIG_REPLAYED : RQ_SIG_OK;
        enum rq_sig_result got = add(c, 9, k, now + life, now);
        if (got != want && !(model[k] > now && model[k] <= high)) {
            fail_msg("step %u: pair %u at %llu: %s, want %s", step, k,
                     (unsigned long long)now, rq_sig_result_label(got),
                     rq_sig_result_label(want));
        }
        if (got == RQ_SIG_OK) {
            model[k] = now + life;
        }
        assert_true(rq_sig_cache_count(c) <= rq_sig_cache_capacity(c));
        size_t bytes = rq_sig_cache_bytes(c);
        grew += bytes > last_bytes;
        shrank += bytes < last_bytes;
        last_bytes = bytes;
    }
    /* The table went through its sizes, both ways. */
    assert_true(grew > 10 && shrank > 5);
    rq_sig_cache_free(c);
}

/* A clock far ahead (idle for long) or far back empties the cache: every
 * entry then lies outside the window. */
static void test_sig_cache_clock_jumps(void **state)
{
    (void)state;
    const uint64_t t0 = NOW;
    struct rq_sig_cache *c = rq_sig_cache_new(1000, 2 * SKEW + 1);

    for (uint32_t i = 0; i < 500; i++) {
        assert_int_equal(add(c, 0, i, t0 + 2 * SKEW + 1, t0), RQ_SIG_OK);
    }
    /* 2^32 ms later, the low bits of the clock are as they were; the
     * entries are long gone and must not look live. */
    assert_int_equal(add(c, 0, 0, t0 + (1ull << 32) + SKEW, t0 + (1ull << 32)),
                     RQ_SIG_OK);
    assert_int_equal(rq_sig_cache_count(c), 1);
    for (uint32_t i = 1; i < 500; i++) {
        assert_int_equal(
            add(c, 0, i, t0 + (1ull << 32) + SKEW, t0 + (1ull << 32)),
            RQ_SIG_OK);
    }
    /* Back a little: still remembered. */
    assert_all_replayed(c, 0, 500, t0 + (1ull << 32) - 1000);
    /* Back 2^30 ms: forgotten. */
    assert_int_equal(add(c, 0, 0, t0 + SKEW, t0 + (1ull << 32) - (1ull << 30)),
                     RQ_SIG_OK);
    assert_int_equal(rq_sig_cache_count(c), 1);
    rq_sig_cache_free(c);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
#define T(name) cmocka_unit_test_setup_teardown(name, setup, teardown)
        T(test_sig_sign_matches_python),
        T(test_sig_round_trip),
        T(test_sig_empty_body_and_query),
        T(test_sig_tampered_fields_refused),
        T(test_sig_other_direction_refused),
        T(test_sig_parse_refusals),
        T(test_sig_sign_refuses_bad_sender),
        T(test_sig_missing_and_malformed_verify),
        T(test_sig_window_edges),
        T(test_sig_replay_refused),
        T(test_sig_cache_expiry),
        T(test_sig_cache_full),
        cmocka_unit_test(test_sig_cache_churn),
        cmocka_unit_test(test_sig_cache_starts_small),
        cmocka_unit_test(test_sig_cache_growth_keeps_entries),
        cmocka_unit_test(test_sig_cache_expiry_across_growth),
        cmocka_unit_test(test_sig_cache_cap_refuses),
        cmocka_unit_test(test_sig_cache_cap_walks),
        cmocka_unit_test(test_sig_cache_shrinks),
        cmocka_unit_test(test_sig_cache_shrink_hysteresis),
        cmocka_unit_test(test_sig_cache_clock_jumps),
        cmocka_unit_test(test_sig_cache_matches_model),
#undef T
    };
    return cmocka_run_group_tests_name("sig", tests, NULL, NULL);
}

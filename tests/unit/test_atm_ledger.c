/*
 * Unit tests of the ledger: the money rules, request-id deduplication and
 * origin eviction, the canonical snapshot and its decoder under truncated
 * and hostile input, and the write and result codecs.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "atm/atm_ledger.h"
#include "rq_err.h"
#include "rq_wire.h"

#include "unit_util.h"

/* ---- Helpers ---- */

/* A fixed-seed generator, so every run sees the same "random" bytes. */
static uint64_t rng_state;

static uint64_t rng(void)
{
    return xorshift64star(&rng_state);
}

static struct atm_write wr(uint64_t origin, uint64_t seq, enum atm_op op,
                           const char *account, const char *to, int64_t amount)
{
    struct atm_write w;
    memset(&w, 0, sizeof w);
    w.rid.origin = origin;
    w.rid.seq = seq;
    w.op = op;
    snprintf(w.account, sizeof w.account, "%s", account);
    snprintf(w.to, sizeof w.to, "%s", to != NULL ? to : "");
    w.amount = amount;
    return w;
}

/* Applies and returns the result's status. */
static int apply(struct atm_ledger *l, struct atm_write w, struct atm_result *r)
{
    struct atm_result tmp;
    assert_int_equal(atm_ledger_apply(l, &w, r != NULL ? r : &tmp), 0);
    return r != NULL ? r->status : tmp.status;
}

static void encode(const struct atm_ledger *l, struct rq_buf *b)
{
    rq_buf_init(b);
    assert_int_equal(atm_ledger_encode(l, b), 0);
}

/* Field by field: struct padding is not part of the value. */
static void assert_result_equal(const struct atm_result *a,
                                const struct atm_result *b)
{
    assert_int_equal(a->status, b->status);
    assert_true(a->balance == b->balance);
    assert_true(a->to_balance == b->to_balance);
}

static void assert_write_equal(const struct atm_write *a,
                               const struct atm_write *b)
{
    assert_true(a->rid.origin == b->rid.origin);
    assert_true(a->rid.seq == b->rid.seq);
    assert_int_equal(a->op, b->op);
    assert_string_equal(a->account, b->account);
    assert_string_equal(a->to, b->to);
    assert_true(a->amount == b->amount);
}

static void assert_same_bytes(const struct rq_buf *a, const struct rq_buf *b)
{
    assert_int_equal(a->len, b->len);
    assert_memory_equal(a->base, b->base, a->len);
}

/* Applies @w to @x and to @y, and asserts they then encode alike. */
static void assert_apply_alike(struct atm_ledger *x, struct atm_ledger *y,
                               struct atm_write w)
{
    struct rq_buf a, b;
    apply(x, w, NULL);
    apply(y, w, NULL);
    encode(x, &a);
    encode(y, &b);
    assert_same_bytes(&a, &b);
    rq_buf_close(&a);
    rq_buf_close(&b);
}

/* Asserts that @l still encodes to @before. */
static void assert_unchanged(const struct atm_ledger *l,
                             const struct rq_buf *before)
{
    struct rq_buf now;
    encode(l, &now);
    assert_same_bytes(before, &now);
    rq_buf_close(&now);
}

/* Reads n_origins from an encoding (format in atm_ledger.h). */
static uint32_t encoded_origins(const struct rq_buf *b)
{
    struct rq_cursor c;
    uint32_t v, n;
    uint64_t ops, cents;
    const uint8_t *p;
    size_t len;
    rq_cursor_init(&c, b->base, b->len);
    assert_int_equal(rq_wire_get_u32(&c, &v), 0);
    assert_int_equal(rq_wire_get_u64(&c, &ops), 0);
    assert_int_equal(rq_wire_get_u32(&c, &n), 0);
    for (uint32_t i = 0; i < n; i++) {
        assert_int_equal(rq_wire_get_blob(&c, 64, &p, &len), 0);
        assert_int_equal(rq_wire_get_u64(&c, &cents), 0);
    }
    assert_int_equal(rq_wire_get_u32(&c, &n), 0);
    return n;
}

/* A ledger with some of everything: accounts (enough to grow the table),
 * zero balances, origins with refusals remembered. */
static void populate(struct atm_ledger *l)
{
    char name[32];
    for (int i = 0; i < 200; i++) {
        snprintf(name, sizeof name, "acct%03d", (i * 37) % 200);
        apply(l,
              wr(1000 + (uint64_t)i % 7, (uint64_t)i + 1, ATM_DEPOSIT, name,
                 NULL, 100 + i),
              NULL);
    }
    apply(l, wr(5, 1, ATM_WITHDRAW, "acct000", NULL, 100), NULL); /* To 0. */
    apply(l, wr(6, 1, ATM_WITHDRAW, "acct001", NULL, 1000000), NULL);
    apply(l, wr(7, 1, ATM_TRANSFER, "acct002", "newcomer", 50), NULL);
    apply(l, wr(8, 9, ATM_DEPOSIT, "rich", NULL, INT64_MAX), NULL);
    apply(l, wr(8, 10, ATM_DEPOSIT, "rich", NULL, 1), NULL); /* Overflow. */
}

static int setup(void **state)
{
    struct atm_ledger *l;
    if (atm_ledger_new(&l) != 0) {
        return -1;
    }
    rng_state = 0x9e3779b97f4a7c15ull;
    *state = l;
    return 0;
}

static int teardown(void **state)
{
    atm_ledger_free(*state);
    return 0;
}

/* ---- Rules ---- */

static void test_atm_ledger_deposit_withdraw_transfer(void **state)
{
    struct atm_ledger *l = *state;
    struct atm_result r;

    assert_int_equal(atm_ledger_balance(l, "alice"), 0);
    assert_int_equal(atm_ledger_accounts(l), 0);
    assert_int_equal(apply(l, wr(1, 1, ATM_DEPOSIT, "alice", NULL, 1250), &r),
                     0);
    assert_int_equal(r.balance, 1250);
    assert_int_equal(r.to_balance, 0);
    assert_int_equal(apply(l, wr(1, 2, ATM_WITHDRAW, "alice", NULL, 250), &r),
                     0);
    assert_int_equal(r.balance, 1000);
    assert_int_equal(apply(l, wr(1, 3, ATM_TRANSFER, "alice", "bob", 400), &r),
                     0);
    assert_int_equal(r.balance, 600);
    assert_int_equal(r.to_balance, 400);
    assert_int_equal(atm_ledger_balance(l, "alice"), 600);
    assert_int_equal(atm_ledger_balance(l, "bob"), 400);
    assert_int_equal(atm_ledger_accounts(l), 2);
    assert_int_equal(atm_ledger_total(l), 1000);

    /* Emptying an account keeps it. */
    assert_int_equal(apply(l, wr(2, 1, ATM_WITHDRAW, "bob", NULL, 400), &r), 0);
    assert_int_equal(r.balance, 0);
    assert_int_equal(atm_ledger_accounts(l), 2);
    assert_int_equal(atm_ledger_total(l), 600);
    /* Names are case-sensitive. */
    assert_int_equal(atm_ledger_balance(l, "Alice"), 0);
}

static void test_atm_ledger_refusals_change_no_balance(void **state)
{
    struct atm_ledger *l = *state;
    struct atm_result r;

    apply(l, wr(1, 1, ATM_DEPOSIT, "a", NULL, 500), NULL);

    assert_int_equal(apply(l, wr(1, 2, ATM_WITHDRAW, "a", NULL, 501), &r),
                     ATM_INSUFFICIENT);
    assert_int_equal(r.balance, 500);
    assert_int_equal(apply(l, wr(1, 3, ATM_WITHDRAW, "ghost", NULL, 1), &r),
                     ATM_INSUFFICIENT);
    assert_int_equal(r.balance, 0);
    assert_int_equal(apply(l, wr(1, 4, ATM_TRANSFER, "a", "b", 501), &r),
                     ATM_INSUFFICIENT);
    assert_int_equal(r.balance, 500);
    assert_int_equal(r.to_balance, 0);
    assert_int_equal(apply(l, wr(1, 5, ATM_TRANSFER, "ghost", "a", 1), &r),
                     ATM_INSUFFICIENT);
    /* A refused transfer or withdrawal creates no account. */
    assert_int_equal(atm_ledger_accounts(l), 1);
    assert_int_equal(atm_ledger_balance(l, "a"), 500);

    /* The refusal is remembered for its request id. */
    struct atm_rid rid = {1, 5};
    assert_int_equal(atm_ledger_result(l, rid, &r), 0);
    assert_int_equal(r.status, ATM_INSUFFICIENT);

    /* The whole balance can go. */
    assert_int_equal(apply(l, wr(1, 6, ATM_TRANSFER, "a", "b", 500), &r), 0);
    assert_int_equal(r.balance, 0);
    assert_int_equal(r.to_balance, 500);
}

static void test_atm_ledger_overflow_at_int64_max(void **state)
{
    struct atm_ledger *l = *state;
    struct atm_result r;

    assert_int_equal(
        apply(l, wr(1, 1, ATM_DEPOSIT, "max", NULL, INT64_MAX - 1), &r), 0);
    assert_int_equal(apply(l, wr(1, 2, ATM_DEPOSIT, "max", NULL, 2), &r),
                     ATM_OVERFLOW);
    assert_true(r.balance == INT64_MAX - 1);
    assert_int_equal(apply(l, wr(1, 3, ATM_DEPOSIT, "max", NULL, 1), &r), 0);
    assert_true(r.balance == INT64_MAX);
    assert_int_equal(apply(l, wr(1, 4, ATM_DEPOSIT, "max", NULL, 1), &r),
                     ATM_OVERFLOW);
    assert_true(atm_ledger_balance(l, "max") == INT64_MAX);

    /* A transfer into a full account is refused on both sides. */
    apply(l, wr(1, 5, ATM_DEPOSIT, "src", NULL, 10), NULL);
    assert_int_equal(apply(l, wr(1, 6, ATM_TRANSFER, "src", "max", 1), &r),
                     ATM_OVERFLOW);
    assert_int_equal(r.balance, 10);
    assert_true(r.to_balance == INT64_MAX);
    assert_int_equal(atm_ledger_balance(l, "src"), 10);

    /* Out of a full account, and the sum saturates instead of wrapping. */
    assert_int_equal(apply(l, wr(1, 7, ATM_TRANSFER, "max", "src", 5), &r), 0);
    assert_true(r.balance == INT64_MAX - 5);
    apply(l, wr(1, 8, ATM_DEPOSIT, "max2", NULL, INT64_MAX), NULL);
    assert_true(atm_ledger_total(l) == INT64_MAX);
}

static void test_atm_ledger_invalid_write_changes_nothing(void **state)
{
    struct atm_ledger *l = *state;
    struct atm_result r;
    struct rq_buf before;
    struct atm_write bad[6];

    apply(l, wr(1, 1, ATM_DEPOSIT, "a", NULL, 5), NULL);
    encode(l, &before);
    bad[0] = wr(2, 1, ATM_TRANSFER, "a", "a", 1);
    bad[1] = wr(2, 1, ATM_DEPOSIT, "a", NULL, 0);
    bad[2] = wr(2, 1, ATM_DEPOSIT, "a", NULL, -3);
    bad[3] = wr(2, 1, ATM_BALANCE, "a", NULL, 1);
    bad[4] = wr(2, 1, ATM_DEPOSIT, "a b", NULL, 1);
    bad[5] = wr(2, 1, ATM_DEPOSIT, "a", NULL, 1);
    memset(bad[5].account, 'x', sizeof bad[5].account); /* No terminator. */
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        assert_int_equal(apply(l, bad[i], &r), RQ_INVALID);
        assert_unchanged(l, &before);
    }
    struct atm_rid rid = {2, 1};
    assert_int_equal(atm_ledger_result(l, rid, &r), RQ_NOTFOUND);
    rq_buf_close(&before);
}

/* ---- Request ids ---- */

static void test_atm_ledger_same_rid_applies_once(void **state)
{
    struct atm_ledger *l = *state;
    struct atm_result r1, r2, got;
    struct rq_buf before;

    assert_int_equal(apply(l, wr(9, 1, ATM_DEPOSIT, "a", NULL, 700), &r1), 0);
    encode(l, &before);
    /* A retry returns the first result and changes no byte, even if the
     * bytes of the retry differ: the request id decides. */
    assert_int_equal(apply(l, wr(9, 1, ATM_DEPOSIT, "a", NULL, 700), &r2), 0);
    assert_result_equal(&r1, &r2);
    assert_int_equal(apply(l, wr(9, 1, ATM_WITHDRAW, "a", NULL, 5), &r2), 0);
    assert_result_equal(&r1, &r2);
    assert_unchanged(l, &before);
    assert_int_equal(atm_ledger_balance(l, "a"), 700);

    /* A remembered refusal is answered again as a refusal, even though the
     * money is there now. */
    assert_int_equal(apply(l, wr(9, 2, ATM_WITHDRAW, "a", NULL, 800), &r1),
                     ATM_INSUFFICIENT);
    apply(l, wr(10, 1, ATM_DEPOSIT, "a", NULL, 500), NULL);
    assert_int_equal(apply(l, wr(9, 2, ATM_WITHDRAW, "a", NULL, 800), &r2),
                     ATM_INSUFFICIENT);
    assert_int_equal(r2.balance, 700);
    assert_int_equal(atm_ledger_balance(l, "a"), 1200);

    struct atm_rid rid = {9, 2};
    assert_int_equal(atm_ledger_result(l, rid, &got), 0);
    assert_result_equal(&got, &r1);
    rid.seq = 1; /* No longer the last of its origin. */
    assert_int_equal(atm_ledger_result(l, rid, &got), RQ_NOTFOUND);
    rid.origin = 12345;
    assert_int_equal(atm_ledger_result(l, rid, &got), RQ_NOTFOUND);
    rq_buf_close(&before);
}

static void test_atm_ledger_stale_seq_refused(void **state)
{
    struct atm_ledger *l = *state;
    struct atm_result r;
    struct rq_buf before;

    apply(l, wr(3, 5, ATM_DEPOSIT, "a", NULL, 100), NULL);
    encode(l, &before);
    assert_int_equal(apply(l, wr(3, 4, ATM_DEPOSIT, "a", NULL, 100), &r),
                     RQ_INVALID);
    assert_int_equal(r.balance, 100);
    assert_int_equal(apply(l, wr(3, 0, ATM_WITHDRAW, "a", NULL, 1), &r),
                     RQ_INVALID);
    assert_unchanged(l, &before);
    struct atm_rid rid = {3, 5};
    assert_int_equal(atm_ledger_result(l, rid, &r), 0);
    assert_int_equal(r.status, 0);

    /* Gaps are fine: only order matters. */
    assert_int_equal(apply(l, wr(3, 1000, ATM_DEPOSIT, "a", NULL, 1), &r), 0);
    assert_int_equal(r.balance, 101);
    assert_int_equal(apply(l, wr(3, 999, ATM_DEPOSIT, "a", NULL, 1), &r),
                     RQ_INVALID);
    rq_buf_close(&before);
}

/* Feeds @l the same sequence each time: ATM_ORIGINS_MAX + 100 origins, with
 * origin 1 refreshed once the table is full. */
static void eviction_run(struct atm_ledger *l)
{
    for (uint64_t o = 1; o <= ATM_ORIGINS_MAX; o++) {
        apply(l, wr(o * 7919, 1, ATM_DEPOSIT, "pool", NULL, 1), NULL);
    }
    /* Origin 1 is now the most recently used; origin 2 the least. */
    apply(l, wr(1 * 7919, 2, ATM_DEPOSIT, "pool", NULL, 1), NULL);
    for (uint64_t o = ATM_ORIGINS_MAX + 1; o <= ATM_ORIGINS_MAX + 100; o++) {
        apply(l, wr(o * 7919, 1, ATM_DEPOSIT, "pool", NULL, 1), NULL);
    }
}

static void test_atm_ledger_origin_eviction_deterministic_and_bounded(
    void **state)
{
    struct atm_ledger *l = *state;
    struct atm_ledger *twin;
    struct atm_result r;
    struct rq_buf a, b;

    eviction_run(l);
    assert_int_equal(atm_ledger_new(&twin), 0);
    eviction_run(twin);
    encode(l, &a);
    encode(twin, &b);
    assert_same_bytes(&a, &b);
    assert_int_equal(encoded_origins(&a), ATM_ORIGINS_MAX);

    struct atm_rid rid = {7919, 2};
    assert_int_equal(atm_ledger_result(l, rid, &r), 0); /* Refreshed. */
    for (uint64_t o = 2; o <= 101; o++) { /* The 100 oldest are gone. */
        rid.origin = o * 7919;
        rid.seq = 1;
        assert_int_equal(atm_ledger_result(l, rid, &r), RQ_NOTFOUND);
    }
    for (uint64_t o = 102; o <= ATM_ORIGINS_MAX + 100; o++) {
        rid.origin = o * 7919;
        if (atm_ledger_result(l, rid, &r) != 0) {
            fail_msg("origin %llu was evicted", (unsigned long long)o);
        }
    }
    /* Every write applied exactly once. */
    assert_int_equal(atm_ledger_balance(l, "pool"), ATM_ORIGINS_MAX + 101);

    /* A forgotten origin is new again: that is the documented bound. */
    assert_int_equal(
        apply(l, wr(2 * 7919, 1, ATM_DEPOSIT, "pool", NULL, 1), &r), 0);
    assert_int_equal(r.balance, ATM_ORIGINS_MAX + 102);
    rq_buf_close(&b);
    encode(l, &b);
    assert_int_equal(encoded_origins(&b), ATM_ORIGINS_MAX);

    /* A decoded copy evicts the same origin next. */
    struct atm_ledger *copy;
    assert_int_equal(atm_ledger_new(&copy), 0);
    assert_int_equal(atm_ledger_decode(copy, b.base, b.len), 0);
    assert_apply_alike(l, copy, wr(999999, 1, ATM_DEPOSIT, "pool", NULL, 1));

    rq_buf_close(&a);
    rq_buf_close(&b);
    atm_ledger_free(copy);
    atm_ledger_free(twin);
}

/* ---- Snapshot ---- */

static void test_atm_ledger_empty_encoding(void **state)
{
    struct atm_ledger *l = *state;
    struct rq_buf b;
    const uint8_t want[] = {1, 0, 0, 0, 0, 0, 0, 0, 0, 0,
                            0, 0, 0, 0, 0, 0, 0, 0, 0, 0};
    encode(l, &b);
    assert_int_equal(b.len, sizeof want);
    assert_memory_equal(b.base, want, sizeof want);
    rq_buf_close(&b);
}

static void test_atm_ledger_snapshot_roundtrip_identical_bytes(void **state)
{
    struct atm_ledger *l = *state;
    struct atm_ledger *copy, *other;
    struct rq_buf a, b;

    populate(l);
    encode(l, &a);

    /* A fresh ledger decodes it (its tables sized at once, not grown) and
     * encodes the very same bytes. */
    assert_int_equal(atm_ledger_new(&copy), 0);
    assert_int_equal(atm_ledger_decode(copy, a.base, a.len), 0);
    encode(copy, &b);
    assert_same_bytes(&a, &b);
    rq_buf_close(&b);
    assert_int_equal(atm_ledger_accounts(copy), atm_ledger_accounts(l));
    assert_true(atm_ledger_total(copy) == atm_ledger_total(l));
    assert_int_equal(atm_ledger_balance(copy, "newcomer"), 50);
    assert_true(atm_ledger_balance(copy, "rich") == INT64_MAX);
    struct atm_result r1, r2;
    struct atm_rid rid = {8, 10};
    assert_int_equal(atm_ledger_result(copy, rid, &r1), 0);
    assert_int_equal(atm_ledger_result(l, rid, &r2), 0);
    assert_result_equal(&r1, &r2);
    assert_int_equal(r1.status, ATM_OVERFLOW);

    /* Decoding replaces whatever a ledger held. */
    assert_int_equal(atm_ledger_new(&other), 0);
    apply(other, wr(77, 1, ATM_DEPOSIT, "zzz", NULL, 1), NULL);
    assert_int_equal(atm_ledger_decode(other, a.base, a.len), 0);
    assert_int_equal(atm_ledger_balance(other, "zzz"), 0);
    encode(other, &b);
    assert_same_bytes(&a, &b);
    rq_buf_close(&b);

    /* Both go on identically. */
    assert_apply_alike(l, copy, wr(5, 2, ATM_TRANSFER, "rich", "acct000", 3));

    rq_buf_close(&a);
    atm_ledger_free(copy);
    atm_ledger_free(other);
}

static void test_atm_ledger_decode_rejects_every_truncation(void **state)
{
    struct atm_ledger *l = *state;
    struct atm_ledger *victim;
    struct rq_buf full, before;

    populate(l);
    encode(l, &full);
    assert_int_equal(atm_ledger_new(&victim), 0);
    apply(victim, wr(1, 1, ATM_DEPOSIT, "keep", NULL, 42), NULL);
    encode(victim, &before);

    for (size_t n = 0; n < full.len; n++) {
        if (atm_ledger_decode(victim, full.base, n) != RQ_MALFORMED) {
            fail_msg("prefix of %zu/%zu bytes accepted", n, full.len);
        }
    }
    /* One byte too many is refused as well. */
    rq_buf_put_u8(&full, 0);
    assert_int_equal(atm_ledger_decode(victim, full.base, full.len),
                     RQ_MALFORMED);
    assert_unchanged(victim, &before);
    assert_int_equal(atm_ledger_balance(victim, "keep"), 42);

    rq_buf_close(&full);
    rq_buf_close(&before);
    atm_ledger_free(victim);
}

/* Decodes @p into @victim: either refused with @victim unchanged, or
 * accepted, in which case the input was canonical and re-encodes to itself.
 * Returns whether it was accepted. */
static int decode_checked(struct atm_ledger *victim,
                          const struct rq_buf *before, const uint8_t *p,
                          size_t n)
{
    int rv = atm_ledger_decode(victim, p, n);
    if (rv != 0) {
        assert_int_equal(rv, RQ_MALFORMED);
        assert_unchanged(victim, before);
        return 0;
    }
    struct rq_buf again;
    encode(victim, &again);
    assert_int_equal(again.len, n);
    assert_memory_equal(again.base, p, n);
    rq_buf_close(&again);
    return 1;
}

static void test_atm_ledger_decode_survives_hostile_bytes(void **state)
{
    struct atm_ledger *l = *state;
    struct atm_ledger *victim;
    struct rq_buf good, before;
    uint8_t junk[512];
    int accepted = 0;

    populate(l);
    encode(l, &good);
    assert_int_equal(atm_ledger_new(&victim), 0);
    apply(victim, wr(1, 1, ATM_DEPOSIT, "keep", NULL, 42), NULL);
    encode(victim, &before);

    /* Pure noise, with and without a plausible header. */
    for (int round = 0; round < 2000; round++) {
        size_t n = rng() % sizeof junk;
        for (size_t i = 0; i < n; i++) {
            junk[i] = (uint8_t)rng();
        }
        if (round % 2 == 0 && n >= 16) {
            rq_wire_put_u32_at(junk, 1);
            rq_wire_put_u32_at(junk + 12, (uint32_t)(rng() % 4));
        }
        accepted += decode_checked(victim, &before, junk, n);
    }
    assert_int_equal(accepted, 0);

    /* A valid snapshot with one to four bytes changed. */
    uint8_t *m = malloc(good.len);
    assert_non_null(m);
    for (int round = 0; round < 3000; round++) {
        memcpy(m, good.base, good.len);
        int flips = 1 + (int)(rng() % 4);
        for (int k = 0; k < flips; k++) {
            m[rng() % good.len] ^= (uint8_t)(1 + rng() % 255);
        }
        if (decode_checked(victim, &before, m, good.len)) {
            /* Accepted: restore the victim for the next round. */
            assert_int_equal(atm_ledger_decode(victim, before.base, before.len),
                             0);
        }
    }
    free(m);

    rq_buf_close(&good);
    rq_buf_close(&before);
    atm_ledger_free(victim);
}

/* Builds a snapshot by hand, for the checks noise rarely reaches. */
struct snap_account {
    const char *name;
    uint64_t cents;
};
struct snap_origin {
    uint64_t id, seq, last_used;
    uint32_t status;
    uint64_t balance, to_balance;
};

static void snap_build(struct rq_buf *b, uint32_t version, uint64_t ops,
                       const struct snap_account *a, uint32_t na,
                       const struct snap_origin *o, uint32_t no)
{
    rq_buf_init(b);
    rq_buf_put_u32(b, version);
    rq_buf_put_u64(b, ops);
    rq_buf_put_u32(b, na);
    for (uint32_t i = 0; i < na; i++) {
        rq_buf_put_blob(b, a[i].name, strlen(a[i].name));
        rq_buf_put_u64(b, a[i].cents);
    }
    rq_buf_put_u32(b, no);
    for (uint32_t i = 0; i < no; i++) {
        rq_buf_put_u64(b, o[i].id);
        rq_buf_put_u64(b, o[i].seq);
        rq_buf_put_u64(b, o[i].last_used);
        rq_buf_put_u32(b, o[i].status);
        rq_buf_put_u64(b, o[i].balance);
        rq_buf_put_u64(b, o[i].to_balance);
    }
    assert_int_equal(b->err, 0);
}

static void test_atm_ledger_decode_checks_every_field(void **state)
{
    struct atm_ledger *l = *state;
    struct rq_buf before, s;
    const struct snap_account ok_a[] = {{"a", 1}, {"b", 2}};
    const struct snap_origin ok_o[] = {{1, 1, 1, 0, 1, 0},
                                       {2, 7, 2, ATM_INSUFFICIENT, 2, 0}};

    encode(l, &before);
    snap_build(&s, 1, 2, ok_a, 2, ok_o, 2);
    assert_int_equal(decode_checked(l, &before, s.base, s.len), 1);
    rq_buf_close(&s);
    assert_int_equal(atm_ledger_decode(l, before.base, before.len), 0);

    struct {
        const char *what;
        uint32_t version;
        uint64_t ops;
        struct snap_account a[2];
        uint32_t na;
        struct snap_origin o[2];
        uint32_t no;
    } bad[] = {
        {"version", 2, 2, {{"a", 1}}, 1, {{1, 1, 1, 0, 1, 0}}, 1},
        {"unsorted names", 1, 2, {{"b", 1}, {"a", 1}}, 2, {{0}}, 0},
        {"duplicate names", 1, 2, {{"a", 1}, {"a", 1}}, 2, {{0}}, 0},
        {"bad name", 1, 2, {{"a.b", 1}}, 1, {{0}}, 0},
        {"empty name", 1, 2, {{"", 1}}, 1, {{0}}, 0},
        {"negative cents", 1, 2, {{"a", (uint64_t)-5}}, 1, {{0}}, 0},
        {"unsorted origins",
         1,
         2,
         {{0}},
         0,
         {{2, 1, 1, 0, 0, 0}, {1, 1, 2, 0, 0, 0}},
         2},
        {"duplicate origins",
         1,
         2,
         {{0}},
         0,
         {{1, 1, 1, 0, 0, 0}, {1, 1, 2, 0, 0, 0}},
         2},
        {"last_used beyond ops", 1, 2, {{0}}, 0, {{1, 1, 3, 0, 0, 0}}, 1},
        {"last_used zero", 1, 2, {{0}}, 0, {{1, 1, 0, 0, 0, 0}}, 1},
        {"last_used twice",
         1,
         2,
         {{0}},
         0,
         {{1, 1, 2, 0, 0, 0}, {2, 1, 2, 0, 0, 0}},
         2},
        {"stale status stored",
         1,
         2,
         {{0}},
         0,
         {{1, 1, 1, RQ_INVALID, 0, 0}},
         1},
        {"unknown status", 1, 2, {{0}}, 0, {{1, 1, 1, 7, 0, 0}}, 1},
        {"negative result balance",
         1,
         2,
         {{0}},
         0,
         {{1, 1, 1, 0, (uint64_t)INT64_MAX + 1, 0}},
         1},
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        snap_build(&s, bad[i].version, bad[i].ops, bad[i].a, bad[i].na,
                   bad[i].o, bad[i].no);
        if (atm_ledger_decode(l, s.base, s.len) != RQ_MALFORMED) {
            fail_msg("snapshot with %s accepted", bad[i].what);
        }
        assert_unchanged(l, &before);
        rq_buf_close(&s);
    }

    /* Counts that promise more records than the bytes could hold. */
    snap_build(&s, 1, 0, NULL, 0, NULL, 0);
    rq_wire_put_u32_at(s.base + 12, UINT32_MAX);
    assert_int_equal(atm_ledger_decode(l, s.base, s.len), RQ_MALFORMED);
    rq_wire_put_u32_at(s.base + 12, 0);
    rq_wire_put_u32_at(s.base + 16, ATM_ORIGINS_MAX + 1);
    assert_int_equal(atm_ledger_decode(l, s.base, s.len), RQ_MALFORMED);
    rq_buf_close(&s);
    /* A name blob longer than any name. */
    rq_buf_init(&s);
    rq_buf_put_u32(&s, 1);
    rq_buf_put_u64(&s, 0);
    rq_buf_put_u32(&s, 1);
    char longname[65];
    memset(longname, 'a', 64);
    longname[64] = '\0';
    rq_buf_put_blob(&s, longname, 64);
    rq_buf_put_u64(&s, 1);
    rq_buf_put_u32(&s, 0);
    assert_int_equal(atm_ledger_decode(l, s.base, s.len), RQ_MALFORMED);
    rq_buf_close(&s);
    /* A NUL inside a name. */
    rq_buf_init(&s);
    rq_buf_put_u32(&s, 1);
    rq_buf_put_u64(&s, 0);
    rq_buf_put_u32(&s, 1);
    rq_buf_put_blob(&s, "a\0b", 3);
    rq_buf_put_u64(&s, 1);
    rq_buf_put_u32(&s, 0);
    assert_int_equal(atm_ledger_decode(l, s.base, s.len), RQ_MALFORMED);
    rq_buf_close(&s);

    assert_unchanged(l, &before);
    rq_buf_close(&before);
}

/* ---- Write and result codecs ---- */

static void test_atm_write_codec_roundtrip(void **state)
{
    (void)state;
    char longest[64];
    memset(longest, 'L', 63);
    longest[63] = '\0';
    struct atm_write ws[] = {
        wr(0xfedcba9876543210ull, 1, ATM_DEPOSIT, "a", NULL, 1),
        wr(1, UINT64_MAX, ATM_WITHDRAW, longest, NULL, INT64_MAX),
        wr(2, 3, ATM_TRANSFER, "from_1", longest, 1250),
    };
    for (size_t i = 0; i < sizeof ws / sizeof ws[0]; i++) {
        struct rq_buf b;
        struct atm_write back;
        rq_buf_init(&b);
        assert_int_equal(atm_write_encode(&ws[i], &b), 0);
        assert_int_equal(b.len, 8 + 8 + 1 + 8 + 4 + strlen(ws[i].account) + 4 +
                                    strlen(ws[i].to));
        assert_true(rq_wire_u64_at(b.base) == ws[i].rid.origin);
        assert_int_equal(b.base[16], ws[i].op);
        assert_int_equal(atm_write_decode(b.base, b.len, &back), 0);
        assert_write_equal(&back, &ws[i]);
        rq_buf_close(&b);
    }

    /* Nothing invalid is encoded. */
    struct atm_write bad[] = {
        wr(1, 1, ATM_TRANSFER, "a", "a", 1),
        wr(1, 1, ATM_TRANSFER, "a", NULL, 1),
        wr(1, 1, ATM_DEPOSIT, "a", "b", 1),
        wr(1, 1, ATM_DEPOSIT, "", NULL, 1),
        wr(1, 1, ATM_WITHDRAW, "a", NULL, 0),
        wr(1, 1, ATM_STATUS, "a", NULL, 1),
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        struct rq_buf b;
        rq_buf_init(&b);
        assert_int_equal(atm_write_encode(&bad[i], &b), RQ_INVALID);
        assert_int_equal(b.len, 0);
        rq_buf_close(&b);
    }
}

/* A write encoded field by field, so fields the encoder refuses can be
 * written. */
static void raw_write(struct rq_buf *b, uint8_t op, uint64_t amount,
                      const char *account, size_t alen, const char *to,
                      size_t tlen)
{
    rq_buf_init(b);
    rq_buf_put_u64(b, 1);
    rq_buf_put_u64(b, 2);
    rq_buf_put_u8(b, op);
    rq_buf_put_u64(b, amount);
    rq_buf_put_blob(b, account, alen);
    rq_buf_put_blob(b, to, tlen);
}

static void test_atm_write_decode_rejects_hostile_bytes(void **state)
{
    (void)state;
    struct atm_write w = wr(5, 6, ATM_TRANSFER, "src", "dst", 99);
    struct atm_write out;
    struct rq_buf b;
    uint8_t junk[200];
    char name64[64];

    rq_buf_init(&b);
    assert_int_equal(atm_write_encode(&w, &b), 0);
    for (size_t n = 0; n < b.len; n++) {
        assert_int_equal(atm_write_decode(b.base, n, &out), RQ_MALFORMED);
    }
    rq_buf_put_u8(&b, 0);
    assert_int_equal(atm_write_decode(b.base, b.len, &out), RQ_MALFORMED);
    rq_buf_close(&b);

    memset(name64, 'n', sizeof name64);
    struct {
        const char *what;
        uint8_t op;
        uint64_t amount;
        const char *a;
        size_t alen;
        const char *t;
        size_t tlen;
    } bad[] = {
        {"op 0", 0, 1, "a", 1, "", 0},
        {"op balance", ATM_BALANCE, 1, "a", 1, "", 0},
        {"op 255", 255, 1, "a", 1, "", 0},
        {"amount 0", ATM_DEPOSIT, 0, "a", 1, "", 0},
        {"amount negative", ATM_DEPOSIT, (uint64_t)-1, "a", 1, "", 0},
        {"amount past INT64_MAX", ATM_DEPOSIT, (uint64_t)INT64_MAX + 1, "a", 1,
         "", 0},
        {"64-byte name", ATM_DEPOSIT, 1, name64, 64, "", 0},
        {"empty name", ATM_DEPOSIT, 1, "", 0, "", 0},
        {"bad character", ATM_DEPOSIT, 1, "a/b", 3, "", 0},
        {"NUL in name", ATM_DEPOSIT, 1, "a\0b", 3, "", 0},
        {"deposit with a destination", ATM_DEPOSIT, 1, "a", 1, "b", 1},
        {"transfer without destination", ATM_TRANSFER, 1, "a", 1, "", 0},
        {"transfer to itself", ATM_TRANSFER, 1, "a", 1, "a", 1},
        {"bad destination", ATM_TRANSFER, 1, "a", 1, "b c", 3},
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        raw_write(&b, bad[i].op, bad[i].amount, bad[i].a, bad[i].alen, bad[i].t,
                  bad[i].tlen);
        if (atm_write_decode(b.base, b.len, &out) != RQ_MALFORMED) {
            fail_msg("write with %s accepted", bad[i].what);
        }
        rq_buf_close(&b);
    }
    raw_write(&b, ATM_TRANSFER, 1, "a", 1, "b", 1);
    assert_int_equal(atm_write_decode(b.base, b.len, &out), 0);
    rq_buf_close(&b);

    /* Noise: refused, or accepted only if it is a canonical encoding. */
    for (int round = 0; round < 5000; round++) {
        size_t n = rng() % sizeof junk;
        for (size_t i = 0; i < n; i++) {
            junk[i] = (uint8_t)rng();
        }
        if (round % 2 == 0 && n > 40) { /* Plausible op and lengths. */
            junk[16] = (uint8_t)(1 + rng() % 3);
            junk[24] &= 0x7f;
            rq_wire_put_u32_at(junk + 25, (uint32_t)(rng() % 8));
        }
        if (atm_write_decode(junk, n, &out) == 0) {
            rq_buf_init(&b);
            assert_int_equal(atm_write_encode(&out, &b), 0);
            assert_int_equal(b.len, n);
            assert_memory_equal(b.base, junk, n);
            rq_buf_close(&b);
        }
    }
}

static void test_atm_result_codec(void **state)
{
    (void)state;
    struct atm_result rs[] = {
        {0, 1250, 0},
        {ATM_INSUFFICIENT, 5, 7},
        {ATM_OVERFLOW, INT64_MAX, INT64_MAX},
        {RQ_INVALID, 0, 0},
    };
    for (size_t i = 0; i < sizeof rs / sizeof rs[0]; i++) {
        struct rq_buf b;
        struct atm_result back;
        rq_buf_init(&b);
        assert_int_equal(atm_result_encode(&rs[i], &b), 0);
        assert_int_equal(b.len, 4 + 8 + 8);
        assert_int_equal(atm_result_decode(b.base, b.len, &back), 0);
        assert_result_equal(&back, &rs[i]);
        for (size_t n = 0; n < b.len; n++) {
            assert_int_equal(atm_result_decode(b.base, n, &back), RQ_MALFORMED);
        }
        rq_buf_put_u8(&b, 0);
        assert_int_equal(atm_result_decode(b.base, b.len, &back), RQ_MALFORMED);
        rq_buf_close(&b);
    }

    struct atm_result neg = {0, -1, 0};
    struct rq_buf b;
    rq_buf_init(&b);
    assert_int_equal(atm_result_encode(&neg, &b), RQ_INVALID);
    rq_buf_close(&b);

    uint8_t raw[20];
    struct atm_result out;
    memset(raw, 0, sizeof raw);
    rq_wire_put_u32_at(raw, 12345); /* Unknown status. */
    assert_int_equal(atm_result_decode(raw, sizeof raw, &out), RQ_MALFORMED);
    rq_wire_put_u32_at(raw, RQ_NOMEM); /* Not an outcome of a write. */
    assert_int_equal(atm_result_decode(raw, sizeof raw, &out), RQ_MALFORMED);
    rq_wire_put_u32_at(raw, 0);
    rq_wire_put_u64_at(raw + 4, (uint64_t)-1); /* Negative balance. */
    assert_int_equal(atm_result_decode(raw, sizeof raw, &out), RQ_MALFORMED);
    rq_wire_put_u64_at(raw + 4, 0);
    rq_wire_put_u64_at(raw + 12, (uint64_t)INT64_MAX + 1);
    assert_int_equal(atm_result_decode(raw, sizeof raw, &out), RQ_MALFORMED);
    rq_wire_put_u64_at(raw + 12, 3);
    assert_int_equal(atm_result_decode(raw, sizeof raw, &out), 0);
    assert_int_equal(out.to_balance, 3);
}

#define T(name) cmocka_unit_test_setup_teardown(name, setup, teardown)

int main(void)
{
    const struct CMUnitTest tests[] = {
        T(test_atm_ledger_deposit_withdraw_transfer),
        T(test_atm_ledger_refusals_change_no_balance),
        T(test_atm_ledger_overflow_at_int64_max),
        T(test_atm_ledger_invalid_write_changes_nothing),
        T(test_atm_ledger_same_rid_applies_once),
        T(test_atm_ledger_stale_seq_refused),
        T(test_atm_ledger_origin_eviction_deterministic_and_bounded),
        T(test_atm_ledger_empty_encoding),
        T(test_atm_ledger_snapshot_roundtrip_identical_bytes),
        T(test_atm_ledger_decode_rejects_every_truncation),
        T(test_atm_ledger_decode_survives_hostile_bytes),
        T(test_atm_ledger_decode_checks_every_field),
        T(test_atm_write_codec_roundtrip),
        T(test_atm_write_decode_rejects_hostile_bytes),
        T(test_atm_result_codec),
    };
    return cmocka_run_group_tests_name("atm_ledger", tests, NULL, NULL);
}

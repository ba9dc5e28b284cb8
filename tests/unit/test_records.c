/*
 * Unit tests of the records codec: round trips, and validation that
 * refuses every malformed blob without reading past it.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "broker/records.h"
#include "rq_err.h"
#include "rq_wire.h"

#include "unit_util.h"

/* A small fixed-seed generator, so failures reproduce. */
static uint64_t rng_state = 0x9e3779b97f4a7c15ull;

static uint64_t rng(void)
{
    return xorshift64(&rng_state);
}

/* Four records: keyed, unkeyed, empty key with empty value, binary. */
static void sample(struct rq_buf *b, uint8_t *bin, size_t binlen)
{
    for (size_t i = 0; i < binlen; i++) {
        bin[i] = (uint8_t)i;
    }
    rq_buf_init(b);
    records_put(b, 1700000000000, "key", 3, true, "value", 5);
    records_put(b, -5, NULL, 0, false, "no key", 6);
    records_put(b, 0, "", 0, true, NULL, 0);
    records_put(b, INT64_MAX, bin, binlen, true, bin, binlen);
    assert_int_equal(b->err, 0);
}

static void test_records_roundtrip(void **state)
{
    (void)state;
    uint8_t bin[256];
    struct rq_buf b;
    struct records_iter it;
    struct record r;

    sample(&b, bin, sizeof bin);
    assert_int_equal(b.len, 4 * RECORDS_HEADER + 3 + 5 + 6 + 2 * 256);
    assert_int_equal(records_validate(b.base, b.len, 4), 0);

    records_iter_init(&it, b.base, b.len);
    assert_int_equal(records_next(&it, &r), 1);
    assert_true(r.timestamp_ms == 1700000000000);
    assert_int_equal(r.key_len, 3);
    assert_memory_equal(r.key, "key", 3);
    assert_int_equal(r.value_len, 5);
    assert_memory_equal(r.value, "value", 5);

    assert_int_equal(records_next(&it, &r), 1);
    assert_true(r.timestamp_ms == -5);
    assert_null(r.key);
    assert_int_equal(r.key_len, 0);
    assert_memory_equal(r.value, "no key", 6);

    /* An empty key is a key, unlike no key at all. */
    assert_int_equal(records_next(&it, &r), 1);
    assert_non_null(r.key);
    assert_int_equal(r.key_len, 0);
    assert_int_equal(r.value_len, 0);

    assert_int_equal(records_next(&it, &r), 1);
    assert_true(r.timestamp_ms == INT64_MAX);
    assert_int_equal(r.key_len, 256);
    assert_memory_equal(r.key, bin, 256);
    assert_int_equal(r.value_len, 256);
    assert_memory_equal(r.value, bin, 256);

    assert_int_equal(records_next(&it, &r), 0);
    assert_int_equal(records_next(&it, &r), 0);
    rq_buf_close(&b);
}

static void test_records_empty_blob(void **state)
{
    (void)state;
    struct records_iter it;
    struct record r;
    assert_int_equal(records_validate(NULL, 0, 0), 0);
    assert_int_equal(records_validate(NULL, 0, 1), RQ_MALFORMED);
    records_iter_init(&it, NULL, 0);
    assert_int_equal(records_next(&it, &r), 0);
}

static void test_records_put_refuses_oversized(void **state)
{
    (void)state;
    struct rq_buf b;
    uint8_t one = 1;
    rq_buf_init(&b);
    /* The lengths are refused before the bytes are touched. */
    records_put(&b, 0, NULL, 0, false, &one, (size_t)UINT32_MAX + 1);
    assert_int_equal(b.err, RQ_TOOBIG);
    assert_int_equal(b.len, 0);
    rq_buf_close(&b);
    rq_buf_init(&b);
    records_put(&b, 0, &one, (size_t)INT32_MAX + 1, true, &one, 1);
    assert_int_equal(b.err, RQ_TOOBIG);
    rq_buf_close(&b);
}

static void test_records_validate_rejects_every_truncation(void **state)
{
    (void)state;
    uint8_t bin[40];
    struct rq_buf b;
    sample(&b, bin, sizeof bin);
    for (size_t n = 0; n < b.len; n++) {
        /* A copy of exactly n bytes, so ASan sees any overread. */
        uint8_t *copy = malloc(n + 1);
        assert_non_null(copy);
        memcpy(copy, b.base, n);
        assert_int_equal(records_validate(copy, n, 4), RQ_MALFORMED);
        free(copy);
    }
    rq_buf_close(&b);
}

static void test_records_validate_rejects_count_mismatch(void **state)
{
    (void)state;
    uint8_t bin[8];
    struct rq_buf b;
    sample(&b, bin, sizeof bin);
    assert_int_equal(records_validate(b.base, b.len, 4), 0);
    assert_int_equal(records_validate(b.base, b.len, 3), RQ_MALFORMED);
    assert_int_equal(records_validate(b.base, b.len, 5), RQ_MALFORMED);
    assert_int_equal(records_validate(b.base, b.len, 0), RQ_MALFORMED);
    assert_int_equal(records_validate(b.base, b.len, UINT32_MAX), RQ_MALFORMED);
    rq_buf_close(&b);
}

static void test_records_validate_rejects_bad_lengths(void **state)
{
    (void)state;
    struct rq_buf b;
    rq_buf_init(&b);
    records_put(&b, 7, "ab", 2, true, "cdef", 4);
    assert_int_equal(b.err, 0);
    assert_int_equal(records_validate(b.base, b.len, 1), 0);

    /* Negative key lengths other than -1. */
    const uint32_t bad_keys[] = {0xfffffffe, 0x80000000, 0x80000001};
    for (size_t i = 0; i < sizeof bad_keys / sizeof bad_keys[0]; i++) {
        rq_wire_put_u32_at(b.base + 8, bad_keys[i]);
        assert_int_equal(records_validate(b.base, b.len, 1), RQ_MALFORMED);
    }
    /* -1 (no key): the value then ends before the blob does. */
    rq_wire_put_u32_at(b.base + 8, UINT32_MAX);
    assert_int_equal(records_validate(b.base, b.len, 1), RQ_MALFORMED);
    rq_wire_put_u32_at(b.base + 12, 6);
    assert_int_equal(records_validate(b.base, b.len, 1), 0);

    /* Lengths past the blob, up to the largest. */
    const uint32_t keys[] = {2, 3, INT32_MAX, 2};
    const uint32_t values[] = {5, 4, 4, UINT32_MAX};
    for (size_t i = 0; i < 4; i++) {
        rq_wire_put_u32_at(b.base + 8, keys[i]);
        rq_wire_put_u32_at(b.base + 12, values[i]);
        assert_int_equal(records_validate(b.base, b.len, 1), RQ_MALFORMED);
    }
    rq_buf_close(&b);
}

static void test_records_validate_rejects_trailing_garbage(void **state)
{
    (void)state;
    uint8_t bin[8];
    struct rq_buf b;
    sample(&b, bin, sizeof bin);
    for (size_t extra = 1; extra <= RECORDS_HEADER + 1; extra++) {
        rq_buf_put_u8(&b, 0);
        assert_int_equal(records_validate(b.base, b.len, 4), RQ_MALFORMED);
    }
    rq_buf_close(&b);
}

static void test_records_hostile_blobs_never_crash(void **state)
{
    (void)state;
    uint8_t bin[32];
    struct rq_buf good;
    sample(&good, bin, sizeof bin);
    for (int round = 0; round < 20000; round++) {
        size_t len;
        uint8_t *p;
        if (round % 2 == 0) {
            /* Pure noise, biased towards small lengths that parse. */
            len = rng() % 96;
            p = malloc(len + 1);
            assert_non_null(p);
            for (size_t i = 0; i < len; i++) {
                uint64_t x = rng();
                p[i] = (x & 0x300) == 0 ? (uint8_t)(x % 8) : (uint8_t)x;
            }
        } else {
            /* A good blob with a few bytes changed and maybe cut. */
            len = good.len - (rng() % 4 == 0 ? rng() % good.len : 0);
            p = malloc(len + 1);
            assert_non_null(p);
            memcpy(p, good.base, len);
            for (int k = 0; k < 3 && len > 0; k++) {
                p[rng() % len] = (uint8_t)rng();
            }
        }
        uint32_t count = (uint32_t)(rng() % 6);
        int rv = records_validate(p, len, count);
        assert_true(rv == 0 || rv == RQ_MALFORMED);

        struct records_iter it;
        struct record r;
        uint32_t seen = 0;
        records_iter_init(&it, p, len);
        while ((rv = records_next(&it, &r)) == 1) {
            /* Every field a record gives lies inside the blob. */
            if (r.key != NULL) {
                assert_true(r.key >= p && r.key + r.key_len <= p + len);
            }
            assert_true(r.value >= p && r.value + r.value_len <= p + len);
            seen++;
        }
        assert_true(rv == 0 || rv == RQ_MALFORMED);
        if (records_validate(p, len, count) == 0) {
            assert_int_equal(rv, 0);
            assert_int_equal(seen, count);
        }
        free(p);
    }
    rq_buf_close(&good);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_records_roundtrip),
        cmocka_unit_test(test_records_empty_blob),
        cmocka_unit_test(test_records_put_refuses_oversized),
        cmocka_unit_test(test_records_validate_rejects_every_truncation),
        cmocka_unit_test(test_records_validate_rejects_count_mismatch),
        cmocka_unit_test(test_records_validate_rejects_bad_lengths),
        cmocka_unit_test(test_records_validate_rejects_trailing_garbage),
        cmocka_unit_test(test_records_hostile_blobs_never_crash),
    };
    return cmocka_run_group_tests_name("records", tests, NULL, NULL);
}

/*
 * Unit tests of the produce bodies: the binary form's round trips into a
 * records blob, the limits, UTF-8 checks agreeing with jansson's, and
 * hostile bytes (every truncation, bad lengths, noise and mutations) that
 * must give an error and never a read past the body; and the JSON form's
 * records, which must make the same blob and be refused alike.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>
#include <jansson.h>

#include "broker/produce_body.h"
#include "broker/records.h"
#include "rq_err.h"
#include "rq_wire.h"

#include "unit_util.h"

#define WHY 256

static uint64_t rng_state = 0x2545f4914f6cdd1dull;

static uint64_t rng(void)
{
    return xorshift64star(&rng_state);
}

static const struct produce_body_limits limits = {
    .max_records = 10000,
    .max_value = 1 << 20,
    .max_blob = 16 << 20,
};

/* Checks @len bytes of @p from a heap copy of exactly that size, so ASan
 * reports any read past the body. */
static int check_exact(const uint8_t *p, size_t len,
                       const struct produce_body_limits *lim, uint32_t *count,
                       size_t *blob_len)
{
    char why[WHY] = "";
    uint8_t *copy = malloc(len + 1);
    assert_non_null(copy);
    if (len > 0) {
        memcpy(copy, p, len);
    }
    int rv =
        produce_body_check(copy, len, lim, count, blob_len, why, sizeof why);
    if (rv != 0) {
        /* Every refusal says something a person can act on. */
        assert_true(strlen(why) > 10);
    }
    free(copy);
    return rv;
}

/* Four records: keyed, unkeyed, empty key and value, multi-byte text. */
static void sample(struct rq_buf *b)
{
    rq_buf_init(b);
    rq_record_body_put_count(b, 4);
    rq_record_body_put(b, "key", 3, true, "value", 5);
    rq_record_body_put(b, NULL, 0, false, "no key", 6);
    rq_record_body_put(b, "", 0, true, "", 0);
    rq_record_body_put(b, "cl\xc3\xa9", 4, true,
                       "\xe2\x82\xac \xf0\x9d\x84\x9e", 8);
    assert_int_equal(b->err, 0);
}

static void test_produce_body_roundtrip(void **state)
{
    (void)state;
    struct rq_buf b;
    uint32_t count = 0;
    size_t blob_len = 0;
    struct records_iter it;
    struct record r;

    sample(&b);
    assert_int_equal(
        b.len, RQ_RECORD_BODY_COUNT + 4 * RQ_RECORD_HEADER + 3 + 5 + 6 + 4 + 8);
    assert_int_equal(check_exact(b.base, b.len, &limits, &count, &blob_len), 0);
    assert_int_equal(count, 4);
    assert_int_equal(blob_len, 4 * RECORDS_HEADER + 3 + 5 + 6 + 4 + 8);

    uint8_t *blob = malloc(blob_len);
    assert_non_null(blob);
    produce_body_write(b.base, b.len, 1700000000123, blob);
    assert_int_equal(records_validate(blob, blob_len, 4), 0);

    /* The same bytes records_put() makes. */
    struct rq_buf want;
    rq_buf_init(&want);
    records_put(&want, 1700000000123, "key", 3, true, "value", 5);
    records_put(&want, 1700000000123, NULL, 0, false, "no key", 6);
    records_put(&want, 1700000000123, "", 0, true, "", 0);
    records_put(&want, 1700000000123, "cl\xc3\xa9", 4, true,
                "\xe2\x82\xac \xf0\x9d\x84\x9e", 8);
    assert_int_equal(want.len, blob_len);
    assert_memory_equal(want.base, blob, blob_len);

    records_iter_init(&it, blob, blob_len);
    assert_int_equal(records_next(&it, &r), 1);
    assert_true(r.timestamp_ms == 1700000000123);
    assert_memory_equal(r.key, "key", 3);
    assert_memory_equal(r.value, "value", 5);
    assert_int_equal(records_next(&it, &r), 1);
    assert_null(r.key);
    assert_int_equal(records_next(&it, &r), 1);
    assert_non_null(r.key); /* An empty key is a key. */
    assert_int_equal(r.key_len, 0);
    assert_int_equal(r.value_len, 0);
    assert_int_equal(records_next(&it, &r), 1);
    assert_int_equal(records_next(&it, &r), 0);

    rq_buf_close(&want);
    free(blob);
    rq_buf_close(&b);
}

static void test_produce_body_rejects_every_truncation(void **state)
{
    (void)state;
    struct rq_buf b;
    uint32_t count;
    size_t blob_len;

    sample(&b);
    for (size_t n = 0; n < b.len; n++) {
        assert_int_equal(check_exact(b.base, n, &limits, &count, &blob_len),
                         RQ_MALFORMED);
    }
    rq_buf_close(&b);
}

static void test_produce_body_rejects_trailing_bytes(void **state)
{
    (void)state;
    struct rq_buf b;
    uint32_t count;
    size_t blob_len;

    sample(&b);
    for (int extra = 1; extra <= RQ_RECORD_HEADER + 1; extra++) {
        rq_buf_put_u8(&b, 'x');
        assert_int_equal(check_exact(b.base, b.len, &limits, &count, &blob_len),
                         RQ_MALFORMED);
    }
    rq_buf_close(&b);
}

static void test_produce_body_limits(void **state)
{
    (void)state;
    struct rq_buf b;
    uint32_t count;
    size_t blob_len;
    struct produce_body_limits lim = {
        .max_records = 3, .max_value = 4, .max_blob = 3 * (RECORDS_HEADER + 4)};

    /* No records at all: malformed, as an empty JSON list is. */
    rq_buf_init(&b);
    rq_record_body_put_count(&b, 0);
    assert_int_equal(check_exact(b.base, b.len, &lim, &count, &blob_len),
                     RQ_MALFORMED);
    rq_buf_close(&b);

    /* Too many: refused from the count alone, before any record. */
    rq_buf_init(&b);
    rq_record_body_put_count(&b, 4);
    assert_int_equal(check_exact(b.base, b.len, &lim, &count, &blob_len),
                     RQ_TOOBIG);
    rq_wire_put_u32_at(b.base, UINT32_MAX);
    assert_int_equal(check_exact(b.base, b.len, &lim, &count, &blob_len),
                     RQ_TOOBIG);
    rq_buf_close(&b);

    /* At every limit: accepted. */
    rq_buf_init(&b);
    rq_record_body_put_count(&b, 3);
    for (int i = 0; i < 3; i++) {
        rq_record_body_put(&b, NULL, 0, false, "abcd", 4);
    }
    assert_int_equal(check_exact(b.base, b.len, &lim, &count, &blob_len), 0);
    assert_int_equal(count, 3);
    assert_int_equal(blob_len, lim.max_blob);
    rq_buf_close(&b);

    /* A value one byte over: too big, even when the body is shorter than
     * the length it announces. */
    rq_buf_init(&b);
    rq_record_body_put_count(&b, 1);
    rq_record_body_put(&b, NULL, 0, false, "abcde", 5);
    assert_int_equal(check_exact(b.base, b.len, &lim, &count, &blob_len),
                     RQ_TOOBIG);
    rq_wire_put_u32_at(b.base + RQ_RECORD_BODY_COUNT + 4, UINT32_MAX);
    assert_int_equal(check_exact(b.base, b.len, &lim, &count, &blob_len),
                     RQ_TOOBIG);
    rq_buf_close(&b);

    /* Keys count towards the blob: one key byte too many. */
    rq_buf_init(&b);
    rq_record_body_put_count(&b, 3);
    rq_record_body_put(&b, "k", 1, true, "abcd", 4);
    rq_record_body_put(&b, NULL, 0, false, "abcd", 4);
    rq_record_body_put(&b, NULL, 0, false, "abcd", 4);
    assert_int_equal(check_exact(b.base, b.len, &lim, &count, &blob_len),
                     RQ_TOOBIG);
    rq_buf_close(&b);
}

static void test_produce_body_rejects_bad_key_lengths(void **state)
{
    (void)state;
    struct rq_buf b;
    uint32_t count;
    size_t blob_len;
    const uint32_t bad[] = {0xfffffffe, 0x80000000, 0x80000001, INT32_MAX,
                            0x10};

    rq_buf_init(&b);
    rq_record_body_put_count(&b, 1);
    rq_record_body_put(&b, "ab", 2, true, "cd", 2);
    assert_int_equal(check_exact(b.base, b.len, &limits, &count, &blob_len), 0);
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        rq_wire_put_u32_at(b.base + RQ_RECORD_BODY_COUNT, bad[i]);
        assert_int_equal(check_exact(b.base, b.len, &limits, &count, &blob_len),
                         RQ_MALFORMED);
    }
    /* -1: no key, so the four bytes "abcd" follow the 2-byte value. */
    rq_wire_put_u32_at(b.base + RQ_RECORD_BODY_COUNT, UINT32_MAX);
    assert_int_equal(check_exact(b.base, b.len, &limits, &count, &blob_len),
                     RQ_MALFORMED);
    rq_wire_put_u32_at(b.base + RQ_RECORD_BODY_COUNT + 4, 4);
    assert_int_equal(check_exact(b.base, b.len, &limits, &count, &blob_len), 0);
    rq_buf_close(&b);
}

/* One record whose key or value is @text (@n bytes) after @pad ASCII
 * bytes, so the text starts on and off the 8-byte fast path. */
static int check_text(const char *text, size_t n, bool as_key, size_t pad)
{
    char buf[64];
    struct rq_buf b;
    uint32_t count;
    size_t blob_len;

    assert_true(pad + n <= sizeof buf);
    memset(buf, 'a', pad);
    memcpy(buf + pad, text, n);
    rq_buf_init(&b);
    rq_record_body_put_count(&b, 1);
    if (as_key) {
        rq_record_body_put(&b, buf, pad + n, true, "v", 1);
    } else {
        rq_record_body_put(&b, NULL, 0, false, buf, pad + n);
    }
    int rv = check_exact(b.base, b.len, &limits, &count, &blob_len);
    rq_buf_close(&b);
    return rv;
}

static void test_produce_body_utf8(void **state)
{
    (void)state;
    static const char *good[] = {
        "plain",
        "\xc3\xa9",                 /* U+00E9 */
        "\xdf\xbf",                 /* U+07FF */
        "\xe0\xa0\x80",             /* U+0800 */
        "\xe2\x82\xac",             /* U+20AC */
        "\xed\x9f\xbf",             /* U+D7FF, below the surrogates */
        "\xee\x80\x80",             /* U+E000, above them */
        "\xef\xbf\xbf",             /* U+FFFF */
        "\xf0\x90\x80\x80",         /* U+10000 */
        "\xf4\x8f\xbf\xbf",         /* U+10FFFF */
        "\x7f\x01",                 /* DEL and SOH are text to JSON too. */
        "a\xc3\xa9z\xe2\x82\xac!!", /* Mixed. */
    };
    static const struct {
        const char *s;
        size_t n;
    } bad[] = {
        {"\x00", 1}, /* NUL, which JSON bodies cannot carry */
        {"ab\x00"
         "cd",
         5},                     /* NUL inside */
        {"\x80", 1},             /* A lone continuation byte */
        {"\xbf", 1},             /* Another */
        {"\xc0\x80", 2},         /* Overlong NUL */
        {"\xc1\xbf", 2},         /* Overlong */
        {"\xe0\x9f\xbf", 3},     /* Overlong below U+0800 */
        {"\xed\xa0\x80", 3},     /* U+D800, a surrogate */
        {"\xed\xbf\xbf", 3},     /* U+DFFF */
        {"\xf0\x8f\xbf\xbf", 4}, /* Overlong below U+10000 */
        {"\xf4\x90\x80\x80", 4}, /* U+110000 */
        {"\xf5\x80\x80\x80", 4}, /* No such lead byte */
        {"\xff", 1},
        {"\xc3", 1}, /* Truncated sequences */
        {"\xe2\x82", 2},
        {"\xf0\x9d\x84", 3},
        {"\xc3\x28", 2}, /* Bad continuation */
        {"\xe2\x28\xa1", 3},
        {"\xf0\x90\x28\xbc", 4},
    };
    for (size_t pad = 0; pad <= 9; pad++) {
        for (int as_key = 0; as_key <= 1; as_key++) {
            for (size_t i = 0; i < sizeof good / sizeof good[0]; i++) {
                assert_int_equal(
                    check_text(good[i], strlen(good[i]), as_key, pad), 0);
            }
            for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
                assert_int_equal(check_text(bad[i].s, bad[i].n, as_key, pad),
                                 RQ_MALFORMED);
            }
        }
    }
}

/* Our text check agrees with jansson's string check (less NUL bytes) on
 * random byte strings biased towards the interesting lead bytes. */
static void test_produce_body_utf8_agrees_with_jansson(void **state)
{
    (void)state;
    static const uint8_t interesting[] = {
        0x00, 0x41, 0x7f, 0x80, 0x8f, 0x90, 0x9f, 0xa0, 0xbf, 0xc0,
        0xc1, 0xc2, 0xdf, 0xe0, 0xed, 0xef, 0xf0, 0xf4, 0xf5, 0xff};
    uint8_t s[12];
    int accepted = 0;
    for (int round = 0; round < 200000; round++) {
        size_t n = 1 + rng() % sizeof s;
        bool has_nul = false;
        for (size_t i = 0; i < n; i++) {
            uint64_t x = rng();
            s[i] = x % 3 == 0 ? (uint8_t)(x >> 8)
                              : interesting[(x >> 8) % sizeof interesting];
            has_nul = has_nul || s[i] == 0;
        }
        json_t *j = json_stringn((const char *)s, n);
        bool want = j != NULL && !has_nul;
        json_decref(j);
        bool got = check_text((const char *)s, n, round % 2 == 0, 0) == 0;
        if (want != got) {
            print_error("round %d: jansson says %d, we say %d for %zu bytes\n",
                        round, want, got, n);
            fail();
        }
        accepted += got;
    }
    /* The generator reaches both answers often. */
    assert_true(accepted > 1000 && accepted < 199000);
}

/* Noise and mutations of a good body: never a crash or an overread, and a
 * body that is accepted writes a blob that validates at the size given. */
static void test_produce_body_hostile_bytes_never_crash(void **state)
{
    (void)state;
    struct rq_buf good;
    int accepted = 0;
    struct produce_body_limits lim = {
        .max_records = 64, .max_value = 64, .max_blob = 4096};

    rq_buf_init(&good);
    rq_record_body_put_count(&good, 5);
    for (int i = 0; i < 5; i++) {
        rq_record_body_put(&good, "k", 1, i % 2 == 0, "0123456789", 10);
    }
    assert_int_equal(good.err, 0);
    for (int round = 0; round < 50000; round++) {
        uint8_t buf[128];
        size_t len;
        if (round % 2 == 0) {
            /* Noise with small counts and lengths, so some of it parses. */
            len = rng() % sizeof buf;
            for (size_t i = 0; i < len; i++) {
                uint64_t x = rng();
                buf[i] = x % 4 == 0 ? (uint8_t)(x >> 8) : (uint8_t)(x % 6);
                if (x % 7 == 0) {
                    buf[i] = 'a' + (uint8_t)(x % 26);
                }
            }
        } else {
            /* A good body with a few bytes changed and maybe cut short. */
            len = good.len;
            memcpy(buf, good.base, len);
            int flips = 1 + (int)(rng() % 3);
            for (int k = 0; k < flips; k++) {
                uint64_t x = rng();
                buf[x % len] = (uint8_t)(x >> 16);
            }
            if (rng() % 4 == 0) {
                len = rng() % len;
            }
        }
        uint32_t count = 0;
        size_t blob_len = 0;
        int rv = check_exact(buf, len, &lim, &count, &blob_len);
        assert_true(rv == 0 || rv == RQ_MALFORMED || rv == RQ_TOOBIG);
        if (rv == 0) {
            accepted++;
            uint8_t *blob = malloc(blob_len + 1);
            assert_non_null(blob);
            produce_body_write(buf, len, 42, blob);
            assert_int_equal(records_validate(blob, blob_len, count), 0);
            free(blob);
        }
    }
    assert_true(accepted > 100);
    rq_buf_close(&good);
}

/* ---- The JSON form ---- */

/* A JSON body's records make the same blob as the same records sent in
 * the binary form. */
static void test_produce_body_json_matches_binary(void **state)
{
    (void)state;
    char why[WHY] = "";
    uint32_t count = 0;
    size_t blob_len = 0;
    json_t *records =
        json_pack("[{s:s,s:s},{s:s,s:n},{s:s}]", "value", "hello", "key", "k",
                  "value", "", "key", "value", "\u00e9t\u00e9");
    assert_non_null(records);
    assert_int_equal(produce_body_json_check(records, &limits, &count,
                                             &blob_len, why, sizeof why),
                     0);
    assert_int_equal(count, 3);
    uint8_t *json_blob = malloc(blob_len);
    assert_non_null(json_blob);
    produce_body_json_write(records, 7, json_blob);

    struct rq_buf body;
    rq_buf_init(&body);
    rq_record_body_put_count(&body, 3);
    rq_record_body_put(&body, "k", 1, true, "hello", 5);
    rq_record_body_put(&body, NULL, 0, false, "", 0);
    rq_record_body_put(&body, NULL, 0, false, "\xc3\xa9t\xc3\xa9", 5);
    uint32_t bcount;
    size_t bblob_len;
    assert_int_equal(
        check_exact(body.base, body.len, &limits, &bcount, &bblob_len), 0);
    assert_int_equal(bblob_len, blob_len);
    uint8_t *bin_blob = malloc(bblob_len);
    assert_non_null(bin_blob);
    produce_body_write(body.base, body.len, 7, bin_blob);
    assert_memory_equal(json_blob, bin_blob, blob_len);
    free(bin_blob);
    free(json_blob);
    rq_buf_close(&body);
    json_decref(records);
}

/* Each refusal of the JSON form, with its class: 400 for the shape, 413
 * over a limit. */
static void test_produce_body_json_refusals(void **state)
{
    (void)state;
    static const struct produce_body_limits small = {
        .max_records = 2,
        .max_value = 4,
        .max_blob = 64,
    };
    static const struct {
        const char *json;
        int rv;
    } cases[] = {
        {"null", RQ_MALFORMED},
        {"{}", RQ_MALFORMED},
        {"[]", RQ_MALFORMED},
        {"[1]", RQ_MALFORMED},
        {"[{}]", RQ_MALFORMED},
        {"[{\"value\": 5}]", RQ_MALFORMED},
        {"[{\"value\": \"a\", \"key\": 5}]", RQ_MALFORMED},
        {"[{\"value\": \"a\"}, {\"value\": \"b\"}, {\"value\": \"c\"}]",
         RQ_TOOBIG},
        {"[{\"value\": \"abcde\"}]", RQ_TOOBIG},
        {"[{\"value\": \"a\", \"key\": "
         "\"0123456789012345678901234567890123456789012345678\"}]",
         RQ_TOOBIG},
        {"[{\"value\": \"abcd\", \"key\": null}]", 0},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        char why[WHY] = "";
        uint32_t count = 0;
        size_t blob_len = 0;
        json_t *v = json_loads(cases[i].json, JSON_DECODE_ANY, NULL);
        assert_non_null(v);
        int rv = produce_body_json_check(v, &small, &count, &blob_len, why,
                                         sizeof why);
        assert_int_equal(rv, cases[i].rv);
        if (rv != 0) {
            assert_true(strlen(why) > 10);
        }
        json_decref(v);
    }
    char why[WHY] = "";
    uint32_t count;
    size_t blob_len;
    assert_int_equal(produce_body_json_check(NULL, &small, &count, &blob_len,
                                             why, sizeof why),
                     RQ_MALFORMED);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_produce_body_roundtrip),
        cmocka_unit_test(test_produce_body_rejects_every_truncation),
        cmocka_unit_test(test_produce_body_rejects_trailing_bytes),
        cmocka_unit_test(test_produce_body_limits),
        cmocka_unit_test(test_produce_body_rejects_bad_key_lengths),
        cmocka_unit_test(test_produce_body_utf8),
        cmocka_unit_test(test_produce_body_utf8_agrees_with_jansson),
        cmocka_unit_test(test_produce_body_hostile_bytes_never_crash),
        cmocka_unit_test(test_produce_body_json_matches_binary),
        cmocka_unit_test(test_produce_body_json_refusals),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}

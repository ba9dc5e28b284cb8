/*
 * Unit tests of the record codec (shared/rq_record.h): the record header
 * both the produce body and the records blob carry, and the binary
 * produce body's encoders, the manager's from a JSON list included.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>
#include <jansson.h>

#include "rq_err.h"
#include "rq_record.h"
#include "rq_wire.h"

static void test_rq_record_header_roundtrip(void **state)
{
    (void)state;
    static const struct {
        bool has_key;
        uint32_t key_len;
        uint32_t value_len;
    } cases[] = {
        {false, 0, 0}, {false, 0, UINT32_MAX},        {true, 0, 0},
        {true, 3, 5},  {true, INT32_MAX, UINT32_MAX},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        uint8_t p[RQ_RECORD_HEADER];
        struct rq_record_header h;
        rq_record_header_put_at(p, cases[i].has_key, cases[i].key_len,
                                cases[i].value_len);
        assert_int_equal(rq_record_header_at(p, &h), 0);
        assert_int_equal(h.has_key, cases[i].has_key);
        assert_int_equal(h.key_len, cases[i].key_len);
        assert_int_equal(h.value_len, cases[i].value_len);
        assert_int_equal(rq_record_header_data(&h),
                         (size_t)cases[i].key_len + cases[i].value_len);
    }
}

/* key_len:i32 | value_len:u32, little-endian, -1 for no key. */
static void test_rq_record_header_bytes(void **state)
{
    (void)state;
    uint8_t p[RQ_RECORD_HEADER];
    static const uint8_t keyed[] = {3, 0, 0, 0, 5, 0, 0, 0};
    static const uint8_t unkeyed[] = {0xff, 0xff, 0xff, 0xff, 1, 2, 0, 0};
    rq_record_header_put_at(p, true, 3, 5);
    assert_memory_equal(p, keyed, sizeof keyed);
    rq_record_header_put_at(p, false, 99, 0x201);
    assert_memory_equal(p, unkeyed, sizeof unkeyed);
}

static void test_rq_record_header_refuses_negative_key(void **state)
{
    (void)state;
    static const uint32_t bad[] = {UINT32_MAX - 1, (uint32_t)INT32_MAX + 1,
                                   0x80000001u};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        uint8_t p[RQ_RECORD_HEADER];
        struct rq_record_header h;
        rq_wire_put_u32_at(p, bad[i]);
        rq_wire_put_u32_at(p + 4, 1);
        assert_int_equal(rq_record_header_at(p, &h), RQ_MALFORMED);
    }
}

static void test_rq_record_body_is_binary(void **state)
{
    (void)state;
    assert_true(rq_record_body_is_binary("application/vnd.raftq.records"));
    assert_true(rq_record_body_is_binary("Application/VND.raftq.Records"));
    assert_true(rq_record_body_is_binary("application/vnd.raftq.records; v=1"));
    assert_true(rq_record_body_is_binary(" application/vnd.raftq.records "));
    assert_false(rq_record_body_is_binary(NULL));
    assert_false(rq_record_body_is_binary(""));
    assert_false(rq_record_body_is_binary("application/json"));
    assert_false(rq_record_body_is_binary("application/vnd.raftq.recordsx"));
    assert_false(rq_record_body_is_binary("application/vnd.raftq.record"));
}

static void test_rq_record_body_put_refuses_oversized(void **state)
{
    (void)state;
    struct rq_buf b;
    uint8_t one = 'a';
    rq_buf_init(&b);
    rq_record_body_put(&b, NULL, 0, false, &one, (size_t)UINT32_MAX + 1);
    assert_int_equal(b.err, RQ_TOOBIG);
    rq_buf_close(&b);
    rq_buf_init(&b);
    rq_record_body_put(&b, &one, (size_t)INT32_MAX + 1, true, &one, 1);
    assert_int_equal(b.err, RQ_TOOBIG);
    rq_buf_close(&b);
}

/* The exact bytes of a small body: count, then each record's header, key
 * and value. */
static void test_rq_record_body_bytes(void **state)
{
    (void)state;
    static const uint8_t want[] = {
        2,    0,    0,    0,                               /* count */
        1,    0,    0,    0,    2, 0, 0, 0, 'k', 'v', 'w', /* "k": "vw" */
        0xff, 0xff, 0xff, 0xff, 0, 0, 0, 0,                /* no key, "" */
    };
    struct rq_buf b;
    rq_buf_init(&b);
    rq_record_body_put_count(&b, 2);
    rq_record_body_put(&b, "k", 1, true, "vw", 2);
    rq_record_body_put(&b, NULL, 0, false, "", 0);
    assert_int_equal(b.err, 0);
    assert_int_equal(b.len, sizeof want);
    assert_memory_equal(b.base, want, sizeof want);
    rq_buf_close(&b);
}

/* A JSON list encodes to the bytes of the same records put one by one: a
 * string key is a key, null, absent or any other key none. */
static void test_rq_record_body_put_json(void **state)
{
    (void)state;
    json_error_t err;
    json_t *records = json_loads(
        "[{\"key\": \"k1\", \"value\": \"v1\"}, {\"value\": \"no key\"},"
        " {\"key\": null, \"value\": \"\"}, {\"key\": \"\", \"value\": \"x\"},"
        " {\"key\": \"cl\\u00e9\", \"value\": \"\\u20ac\"},"
        " {\"key\": 7, \"value\": \"n\"}]",
        0, &err);
    assert_non_null(records);
    struct rq_buf a;
    struct rq_buf b;
    rq_buf_init(&a);
    rq_buf_init(&b);
    rq_record_body_put_json(&a, records);
    rq_record_body_put_count(&b, 6);
    rq_record_body_put(&b, "k1", 2, true, "v1", 2);
    rq_record_body_put(&b, NULL, 0, false, "no key", 6);
    rq_record_body_put(&b, NULL, 0, false, "", 0);
    rq_record_body_put(&b, "", 0, true, "x", 1);
    rq_record_body_put(&b, "cl\xc3\xa9", 4, true, "\xe2\x82\xac", 3);
    rq_record_body_put(&b, NULL, 0, false, "n", 1);
    assert_int_equal(a.err, 0);
    assert_int_equal(b.err, 0);
    assert_int_equal(a.len, b.len);
    assert_memory_equal(a.base, b.base, a.len);
    rq_buf_close(&a);
    rq_buf_close(&b);
    json_decref(records);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_rq_record_header_roundtrip),
        cmocka_unit_test(test_rq_record_header_bytes),
        cmocka_unit_test(test_rq_record_header_refuses_negative_key),
        cmocka_unit_test(test_rq_record_body_is_binary),
        cmocka_unit_test(test_rq_record_body_put_refuses_oversized),
        cmocka_unit_test(test_rq_record_body_bytes),
        cmocka_unit_test(test_rq_record_body_put_json),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}

/*
 * Unit tests of a record read's answer (shared/rq_reads.h): the binary
 * form's head and records, the check that refuses a truncated or
 * malformed answer, the Accept header's choice, and the JSON text
 * written from the same records (read back with jansson).
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
#include "rq_reads.h"
#include "rq_record.h"
#include "rq_wire.h"

struct rec {
    int64_t ts;
    const char *key; /* NULL: no key. */
    const char *value;
    size_t value_len; /* 0: strlen(value). */
};

/* Appends one record of the binary form. */
static void put_record(struct rq_buf *b, const struct rec *r)
{
    size_t vlen = r->value_len != 0 ? r->value_len : strlen(r->value);
    size_t klen = r->key != NULL ? strlen(r->key) : 0;
    rq_buf_put_u64(b, (uint64_t)r->ts);
    assert_int_equal(rq_buf_reserve(b, RQ_RECORD_HEADER), 0);
    rq_record_header_put_at(b->base + b->len, r->key != NULL, klen, vlen);
    b->len += RQ_RECORD_HEADER;
    rq_buf_put_bytes(b, r->key, klen);
    rq_buf_put_bytes(b, r->value, vlen);
}

/* A whole answer: the head, then @n records. */
static void put_answer(struct rq_buf *b, uint64_t next, uint64_t hw,
                       const struct rec *recs, uint32_t n)
{
    struct rq_reads_head h = {n, next, hw};
    assert_int_equal(rq_buf_reserve(b, RQ_READS_HEAD), 0);
    rq_reads_head_put_at(b->base + b->len, &h);
    b->len += RQ_READS_HEAD;
    for (uint32_t i = 0; i < n; i++) {
        put_record(b, &recs[i]);
    }
    assert_int_equal(b->err, 0);
}

static const struct rec sample[] = {
    {1700000000001, "k", "hi", 0},
    {1700000000002, NULL, "", 0},
    {-5, "", "quote \" back \\ nl \n tab \t ctl \x01 del \x7f", 0},
    {1700000000004, "k\xc3\xa9", "\xe2\x82\xac \xf0\x9f\x98\x80 /", 0},
};
#define NSAMPLE (sizeof sample / sizeof sample[0])

static void test_rq_reads_head_bytes(void **state)
{
    (void)state;
    uint8_t p[RQ_READS_HEAD];
    static const uint8_t want[RQ_READS_HEAD] = {
        2, 0, 0, 0, 9, 0, 0, 0, 0, 0, 0, 0, 0x0a, 1, 0, 0, 0, 0, 0, 0};
    struct rq_reads_head h = {2, 9, 0x10a};
    rq_reads_head_put_at(p, &h);
    assert_memory_equal(p, want, sizeof want);
}

static void test_rq_reads_roundtrip(void **state)
{
    (void)state;
    struct rq_buf b;
    struct rq_reads_head h;
    struct rq_reads_iter it;
    struct rq_reads_record r;
    char why[128];

    rq_buf_init(&b);
    put_answer(&b, 104, 110, sample, NSAMPLE);
    assert_int_equal(rq_reads_check(b.base, b.len, &h, why, sizeof why), 0);
    assert_int_equal(h.count, NSAMPLE);
    assert_int_equal(h.next_offset, 104);
    assert_int_equal(h.high_watermark, 110);
    rq_reads_iter_init(&it, b.base, b.len, &h);
    for (size_t i = 0; i < NSAMPLE; i++) {
        assert_int_equal(rq_reads_next(&it, &r), 1);
        assert_int_equal(r.offset, 100 + i);
        assert_int_equal(r.timestamp_ms, sample[i].ts);
        assert_int_equal(r.has_key, sample[i].key != NULL);
        if (sample[i].key != NULL) {
            assert_int_equal(r.key_len, strlen(sample[i].key));
            assert_memory_equal(r.key, sample[i].key, r.key_len);
        } else {
            assert_null(r.key);
        }
        assert_int_equal(r.value_len, strlen(sample[i].value));
        assert_memory_equal(r.value, sample[i].value, r.value_len);
    }
    assert_int_equal(rq_reads_next(&it, &r), 0);
    rq_buf_close(&b);
}

static void test_rq_reads_empty_answer(void **state)
{
    (void)state;
    uint8_t p[RQ_READS_HEAD];
    struct rq_reads_head h = {0, 7, 7};
    struct rq_reads_head got;
    struct rq_reads_iter it;
    struct rq_reads_record r;
    rq_reads_head_put_at(p, &h);
    assert_int_equal(rq_reads_check(p, sizeof p, &got, NULL, 0), 0);
    assert_int_equal(got.count, 0);
    assert_int_equal(got.next_offset, 7);
    rq_reads_iter_init(&it, p, sizeof p, &got);
    assert_int_equal(rq_reads_next(&it, &r), 0);
}

/* Every prefix of an answer is refused, and so is a byte more. */
static void test_rq_reads_check_refuses_truncated(void **state)
{
    (void)state;
    struct rq_buf b;
    struct rq_reads_head h;
    char why[128];

    rq_buf_init(&b);
    put_answer(&b, 4, 4, sample, NSAMPLE);
    for (size_t n = 0; n < b.len; n++) {
        why[0] = '\0';
        assert_int_equal(rq_reads_check(b.base, n, &h, why, sizeof why),
                         RQ_MALFORMED);
        assert_true(strstr(why, "ends") != NULL);
    }
    rq_buf_put_u8(&b, 0);
    assert_int_equal(rq_reads_check(b.base, b.len, &h, why, sizeof why),
                     RQ_MALFORMED);
    assert_string_equal(why, "1 bytes follow the last record");
    rq_buf_close(&b);
}

static void test_rq_reads_check_refuses_malformed(void **state)
{
    (void)state;
    /* Each case: the answer's next offset and records, a u32 written at
     * @at, and what the check says. */
    static const struct {
        uint64_t next;
        uint32_t n;
        size_t at;
        uint32_t put;
        const char *why;
    } cases[] = {
        {4, NSAMPLE, RQ_READS_HEAD + 8, 0xfffffffe,
         "record 0 has a negative key length"},
        {5, NSAMPLE, 0, NSAMPLE + 1, "the answer ends in record 4's header"},
        {3, NSAMPLE, 0, NSAMPLE, "next_offset 3 is below the count 4"},
        {1, 1, RQ_READS_HEAD + 12, 1000, "the answer ends in record 0"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        struct rq_buf b;
        struct rq_reads_head h;
        char why[128];
        rq_buf_init(&b);
        put_answer(&b, cases[i].next, 4, sample, cases[i].n);
        rq_wire_put_u32_at(b.base + cases[i].at, cases[i].put);
        assert_int_equal(rq_reads_check(b.base, b.len, &h, why, sizeof why),
                         RQ_MALFORMED);
        assert_string_equal(why, cases[i].why);
        rq_buf_close(&b);
    }
}

static void test_rq_reads_accepts_binary(void **state)
{
    (void)state;
    assert_true(rq_reads_accepts_binary("application/vnd.raftq.records"));
    assert_true(rq_reads_accepts_binary("Application/VND.raftq.Records"));
    assert_true(
        rq_reads_accepts_binary(" application/vnd.raftq.records ; q=1"));
    assert_true(rq_reads_accepts_binary(
        "application/json;q=0.5, application/vnd.raftq.records"));
    assert_false(rq_reads_accepts_binary(NULL));
    assert_false(rq_reads_accepts_binary(""));
    assert_false(rq_reads_accepts_binary("*/*"));
    assert_false(rq_reads_accepts_binary("application/json"));
    assert_false(rq_reads_accepts_binary("application/vnd.raftq.recordsx"));
    assert_false(rq_reads_accepts_binary("application/vnd.raftq.record"));
    assert_false(
        rq_reads_accepts_binary("text/plain; x=application/vnd.raftq.records"));
}

/* The JSON text reads back, with jansson, as the same records. */
static void test_rq_reads_json_matches_binary(void **state)
{
    (void)state;
    struct rq_buf b;
    struct rq_buf out;
    struct rq_reads_head h = {NSAMPLE, 14, 20};
    json_error_t err;

    rq_buf_init(&b);
    rq_buf_init(&out);
    for (size_t i = 0; i < NSAMPLE; i++) {
        put_record(&b, &sample[i]);
    }
    assert_int_equal(rq_reads_json_put(&out, &h, b.base, b.len), 0);
    rq_buf_put_bytes(&out, "}", 1);
    assert_int_equal(out.err, 0);
    json_t *o = json_loadb((const char *)out.base, out.len, 0, &err);
    assert_non_null(o);
    assert_string_equal(json_string_value(json_object_get(o, "status")),
                        "success");
    assert_int_equal(json_integer_value(json_object_get(o, "next_offset")), 14);
    assert_int_equal(json_integer_value(json_object_get(o, "high_watermark")),
                     20);
    json_t *list = json_object_get(o, "records");
    assert_int_equal(json_array_size(list), NSAMPLE);
    for (size_t i = 0; i < NSAMPLE; i++) {
        json_t *r = json_array_get(list, i);
        json_t *key = json_object_get(r, "key");
        assert_int_equal(json_integer_value(json_object_get(r, "offset")),
                         10 + i);
        assert_int_equal(json_integer_value(json_object_get(r, "timestamp_ms")),
                         sample[i].ts);
        assert_string_equal(json_string_value(json_object_get(r, "value")),
                            sample[i].value);
        if (sample[i].key == NULL) {
            assert_true(json_is_null(key));
        } else {
            assert_string_equal(json_string_value(key), sample[i].key);
        }
    }
    json_decref(o);
    rq_buf_close(&out);
    rq_buf_close(&b);
}

static void test_rq_reads_json_escapes(void **state)
{
    (void)state;
    static const struct {
        const char *in;
        size_t n;
        const char *want;
    } cases[] = {
        {"", 0, "\"\""},
        {"a\"b\\c", 5, "\"a\\\"b\\\\c\""},
        {"\b\f\n\r\t\x01\x1f", 7, "\"\\b\\f\\n\\r\\t\\u0001\\u001f\""},
        {"/\x7f\xc3\xa9", 4, "\"/\x7f\xc3\xa9\""},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        struct rq_buf out;
        rq_buf_init(&out);
        assert_int_equal(rq_reads_json_string(
                             &out, (const uint8_t *)cases[i].in, cases[i].n),
                         0);
        assert_int_equal(out.len, strlen(cases[i].want));
        assert_memory_equal(out.base, cases[i].want, out.len);
        rq_buf_close(&out);
    }
}

/* Every ASCII byte and a two-byte character at every place of a string
 * longer than the eight bytes the writer scans at once reads back as it
 * was, and each control character, quote and backslash is escaped. */
static void test_rq_reads_json_every_byte_everywhere(void **state)
{
    (void)state;
    for (unsigned c = 1; c <= 128; c++) {
        for (size_t at = 0; at < 19; at++) {
            char in[21];
            size_t n = 19;
            memset(in, 'a', sizeof in);
            if (c == 128) {
                memcpy(in + at, "\xc3\xa9", 2); /* é */
                n = 20;
            } else {
                in[at] = (char)c;
            }
            struct rq_buf out;
            rq_buf_init(&out);
            assert_int_equal(rq_reads_json_string(&out, (const uint8_t *)in, n),
                             0);
            json_t *v = json_loadb((const char *)out.base, out.len,
                                   JSON_DECODE_ANY, NULL);
            assert_non_null(v);
            assert_int_equal(json_string_length(v), n);
            assert_memory_equal(json_string_value(v), in, n);
            json_decref(v);
            /* \u00XX adds five bytes, \n and the like one. */
            size_t extra = 0;
            if (c < 0x20) {
                extra = strchr("\b\f\n\r\t", (int)c) != NULL ? 1 : 5;
            } else if (c == '"' || c == '\\') {
                extra = 1;
            }
            assert_int_equal(out.len, n + 2 + extra);
            rq_buf_close(&out);
        }
    }
}

/* Bytes that are not UTF-8 text without NUL never become JSON. */
static void test_rq_reads_json_refuses_bad_text(void **state)
{
    (void)state;
    static const struct {
        const char *in;
        size_t n;
    } bad[] = {
        {"a\0b", 3},             /* NUL */
        {"\x80", 1},             /* a continuation byte alone */
        {"\xc3", 1},             /* cut short */
        {"\xc0\xaf", 2},         /* overlong */
        {"\xe0\x80\xaf", 3},     /* overlong */
        {"\xed\xa0\x80", 3},     /* a surrogate */
        {"\xf4\x90\x80\x80", 4}, /* past U+10FFFF */
        {"ok\xff", 3},
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        struct rq_buf out;
        rq_buf_init(&out);
        assert_int_equal(
            rq_reads_json_string(&out, (const uint8_t *)bad[i].in, bad[i].n),
            RQ_MALFORMED);
        rq_buf_close(&out);
    }
    /* A record running past its bytes. */
    struct rq_buf b;
    struct rq_buf out;
    struct rq_reads_head h = {2, 2, 2};
    rq_buf_init(&b);
    rq_buf_init(&out);
    put_record(&b, &sample[0]);
    assert_int_equal(rq_reads_json_put(&out, &h, b.base, b.len), RQ_MALFORMED);
    rq_buf_close(&out);
    rq_buf_close(&b);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_rq_reads_head_bytes),
        cmocka_unit_test(test_rq_reads_roundtrip),
        cmocka_unit_test(test_rq_reads_empty_answer),
        cmocka_unit_test(test_rq_reads_check_refuses_truncated),
        cmocka_unit_test(test_rq_reads_check_refuses_malformed),
        cmocka_unit_test(test_rq_reads_accepts_binary),
        cmocka_unit_test(test_rq_reads_json_matches_binary),
        cmocka_unit_test(test_rq_reads_json_escapes),
        cmocka_unit_test(test_rq_reads_json_every_byte_everywhere),
        cmocka_unit_test(test_rq_reads_json_refuses_bad_text),
    };
    return cmocka_run_group_tests_name("rq_reads", tests, NULL, NULL);
}

/*
 * Unit tests of the little-endian codecs, the entry framing, the
 * configuration parsers and the error texts.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "rq_config.h"
#include "rq_entry.h"
#include "rq_err.h"
#include "rq_wire.h"

static void test_wire_roundtrip(void **state)
{
    (void)state;
    struct rq_buf b;
    struct rq_cursor c;
    uint8_t u8;
    uint16_t u16;
    uint32_t u32;
    uint64_t u64;
    const uint8_t *blob;
    size_t blen;

    rq_buf_init(&b);
    rq_buf_put_u8(&b, 0xab);
    rq_buf_put_u16(&b, 0xbeef);
    rq_buf_put_u32(&b, 0xdeadbeef);
    rq_buf_put_u64(&b, 0x0123456789abcdefull);
    rq_buf_put_blob(&b, "hello", 5);
    assert_int_equal(b.err, 0);
    assert_int_equal(b.len, 1 + 2 + 4 + 8 + 4 + 5);
    /* Little-endian on the wire whatever the host. */
    assert_int_equal(b.base[1], 0xef);
    assert_int_equal(b.base[2], 0xbe);

    rq_cursor_init(&c, b.base, b.len);
    assert_int_equal(rq_wire_get_u8(&c, &u8), 0);
    assert_int_equal(rq_wire_get_u16(&c, &u16), 0);
    assert_int_equal(rq_wire_get_u32(&c, &u32), 0);
    assert_int_equal(rq_wire_get_u64(&c, &u64), 0);
    assert_int_equal(rq_wire_get_blob(&c, 16, &blob, &blen), 0);
    assert_int_equal(u8, 0xab);
    assert_int_equal(u16, 0xbeef);
    assert_int_equal(u32, 0xdeadbeef);
    assert_true(u64 == 0x0123456789abcdefull);
    assert_int_equal(blen, 5);
    assert_memory_equal(blob, "hello", 5);
    assert_int_equal(c.left, 0);
    assert_int_equal(rq_wire_get_u8(&c, &u8), RQ_MALFORMED);
    rq_buf_close(&b);
}

static void test_wire_truncated_input_never_overreads(void **state)
{
    (void)state;
    struct rq_buf b;
    rq_buf_init(&b);
    rq_buf_put_u64(&b, 7);
    rq_buf_put_blob(&b, "abcdef", 6);
    /* Every prefix of the encoding must fail cleanly, never read past it. */
    for (size_t n = 0; n < b.len; n++) {
        struct rq_cursor c;
        uint64_t v;
        const uint8_t *p;
        size_t len;
        rq_cursor_init(&c, b.base, n);
        int rv = rq_wire_get_u64(&c, &v);
        if (rv == 0) {
            rv = rq_wire_get_blob(&c, 64, &p, &len);
        }
        assert_int_equal(rv, RQ_MALFORMED);
    }
    rq_buf_close(&b);
}

static void test_wire_blob_rejects_length_over_max(void **state)
{
    (void)state;
    uint8_t bytes[8] = {0xff, 0xff, 0xff, 0xff, 'a', 'b', 'c', 'd'};
    struct rq_cursor c;
    const uint8_t *p;
    size_t len;
    rq_cursor_init(&c, bytes, sizeof bytes);
    assert_int_equal(rq_wire_get_blob(&c, 1024, &p, &len), RQ_MALFORMED);
}

static void test_entry_padded_to_8_for_every_length(void **state)
{
    (void)state;
    uint8_t payload[40];
    for (size_t i = 0; i < sizeof payload; i++) {
        payload[i] = (uint8_t)(i * 7 + 1);
    }
    for (size_t len = 0; len <= sizeof payload; len++) {
        struct raft_buffer buf;
        const uint8_t *p;
        size_t n;
        assert_int_equal(rq_entry_encode(payload, len, &buf), 0);
        assert_int_equal(buf.len % 8, 0);
        assert_true(buf.len >= len + RQ_ENTRY_HEADER);
        assert_int_equal(rq_entry_decode(&buf, &p, &n), 0);
        assert_int_equal(n, len);
        assert_memory_equal(p, payload, len);
        raft_free(buf.base);
    }
}

static void test_entry_alloc_frames_in_place(void **state)
{
    (void)state;
    for (size_t len = 0; len <= 17; len++) {
        struct raft_buffer built;
        struct raft_buffer want;
        uint8_t payload[17];
        uint8_t *dst;
        const uint8_t *p;
        size_t n;
        for (size_t i = 0; i < len; i++) {
            payload[i] = (uint8_t)(0xa0 + i);
        }
        assert_int_equal(rq_entry_alloc(len, &built, &dst), 0);
        assert_ptr_equal(dst, (uint8_t *)built.base + RQ_ENTRY_HEADER);
        memcpy(dst, payload, len);
        assert_int_equal(rq_entry_decode(&built, &p, &n), 0);
        assert_int_equal(n, len);
        assert_int_equal(rq_entry_encode(payload, len, &want), 0);
        assert_int_equal(built.len, want.len);
        assert_memory_equal(built.base, want.base, want.len);
        raft_free(want.base);
        raft_free(built.base);
    }
    struct raft_buffer none;
    uint8_t *dst;
    assert_int_equal(rq_entry_alloc((size_t)RQ_ENTRY_MAX + 1, &none, &dst),
                     RQ_TOOBIG);
}

static void test_entry_decode_rejects_bad_frames(void **state)
{
    (void)state;
    struct raft_buffer buf;
    const uint8_t *p;
    size_t n;
    assert_int_equal(rq_entry_encode("abc", 3, &buf), 0);
    uint8_t *b = buf.base;

    b[RQ_ENTRY_HEADER + 5] = 1; /* Non-zero padding. */
    assert_int_equal(rq_entry_decode(&buf, &p, &n), RQ_MALFORMED);
    b[RQ_ENTRY_HEADER + 5] = 0;
    b[0] = 200; /* Length beyond the buffer. */
    assert_int_equal(rq_entry_decode(&buf, &p, &n), RQ_MALFORMED);
    b[0] = 3;
    b[4] = 9; /* Unknown format. */
    assert_int_equal(rq_entry_decode(&buf, &p, &n), RQ_MALFORMED);
    b[4] = RQ_ENTRY_FORMAT;
    struct raft_buffer shorter = {buf.base, 12}; /* Not a multiple of 8. */
    assert_int_equal(rq_entry_decode(&shorter, &p, &n), RQ_MALFORMED);
    struct raft_buffer tiny = {buf.base, 4};
    assert_int_equal(rq_entry_decode(&tiny, &p, &n), RQ_MALFORMED);
    b[0] = 0; /* Length 0 with 8 bytes of padding: too much padding. */
    assert_int_equal(rq_entry_decode(&buf, &p, &n), RQ_MALFORMED);
    raft_free(buf.base);
}

struct cfg {
    const char *addr;
    uint64_t n;
    bool flag;
    const char *name;
};

static const struct rq_opt opts[] = {
    {"addr", "RQTEST_ADDR", RQ_OPT_STR, NULL, true, offsetof(struct cfg, addr),
     "address"},
    {"n", "RQTEST_N", RQ_OPT_U64, "5", false, offsetof(struct cfg, n), "n"},
    {"flag", NULL, RQ_OPT_BOOL, "false", false, offsetof(struct cfg, flag),
     "flag"},
    {"name", NULL, RQ_OPT_STR, "x", false, offsetof(struct cfg, name), "name"},
};

static void test_config_flags_env_and_defaults(void **state)
{
    (void)state;
    struct cfg c = {0};
    bool help;
    char why[256];
    char *argv[] = {"prog", "--addr", "h:1", "--flag", "--name=y", NULL};
    unsetenv("RQTEST_N");
    assert_int_equal(
        rq_config_parse(opts, 4, &c, 5, argv, &help, why, sizeof why), 0);
    assert_false(help);
    assert_string_equal(c.addr, "h:1");
    assert_int_equal(c.n, 5);
    assert_true(c.flag);
    assert_string_equal(c.name, "y");

    setenv("RQTEST_N", "42", 1);
    char *argv2[] = {"prog", "--addr=z:2", NULL};
    assert_int_equal(
        rq_config_parse(opts, 4, &c, 2, argv2, &help, why, sizeof why), 0);
    assert_int_equal(c.n, 42);
    unsetenv("RQTEST_N");
}

static void test_config_parse_u64_is_strict_and_bounded(void **state)
{
    (void)state;
    uint64_t v = 7;
    assert_int_equal(rq_parse_u64("0", 10, &v), 0);
    assert_int_equal(v, 0);
    assert_int_equal(rq_parse_u64("4294967295", UINT32_MAX, &v), 0);
    assert_int_equal(v, UINT32_MAX);
    assert_int_equal(rq_parse_u64("18446744073709551615", UINT64_MAX, &v), 0);
    assert_true(v == UINT64_MAX);
    v = 7;
    const char *bad[] = {NULL, "", "-1", "+1", " 1", "1 ", "0x10", "1e3", "１"};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        assert_int_equal(rq_parse_u64(bad[i], UINT64_MAX, &v), RQ_INVALID);
    }
    assert_int_equal(rq_parse_u64("4294967296", UINT32_MAX, &v), RQ_INVALID);
    assert_int_equal(rq_parse_u64("18446744073709551616", UINT64_MAX, &v),
                     RQ_INVALID);
    assert_int_equal(rq_parse_u64("11", 10, &v), RQ_INVALID);
    assert_int_equal(rq_parse_u64("9", 5, &v), RQ_INVALID);
    assert_int_equal(v, 7); /* untouched on failure */
}

static void test_config_errors_name_the_flag(void **state)
{
    (void)state;
    struct cfg c = {0};
    bool help;
    char why[256];
    char *missing[] = {"prog", NULL};
    unsetenv("RQTEST_ADDR");
    assert_int_equal(
        rq_config_parse(opts, 4, &c, 1, missing, &help, why, sizeof why),
        RQ_INVALID);
    assert_non_null(strstr(why, "--addr"));
    char *bad[] = {"prog", "--addr", "a:1", "--n", "-3", NULL};
    assert_int_equal(
        rq_config_parse(opts, 4, &c, 5, bad, &help, why, sizeof why),
        RQ_INVALID);
    assert_non_null(strstr(why, "--n"));
    char *unknown[] = {"prog", "--nope", NULL};
    assert_int_equal(
        rq_config_parse(opts, 4, &c, 2, unknown, &help, why, sizeof why),
        RQ_INVALID);
    char *h[] = {"prog", "--help", NULL};
    assert_int_equal(rq_config_parse(opts, 4, &c, 2, h, &help, why, sizeof why),
                     0);
    assert_true(help);
}

static void test_config_http_limits_at_their_bounds(void **state)
{
    char why[128];
    const uint64_t mib32 = 32u << 20;
    (void)state;
    assert_int_equal(
        rq_config_check_http(1, 1, 4, mib32, mib32, why, sizeof why), 0);
    assert_int_equal(rq_config_check_http(8u << 20, 86400, 65536, 1ull << 40,
                                          mib32, why, sizeof why),
                     0);
    assert_int_equal(
        rq_config_check_http(0, 60, 1024, 256u << 20, mib32, why, sizeof why),
        RQ_INVALID);
    assert_non_null(strstr(why, "--max-message-bytes"));
    assert_int_equal(rq_config_check_http((8u << 20) + 1, 60, 1024, 256u << 20,
                                          mib32, why, sizeof why),
                     RQ_INVALID);
    assert_int_equal(
        rq_config_check_http(1, 0, 1024, 256u << 20, mib32, why, sizeof why),
        RQ_INVALID);
    assert_non_null(strstr(why, "--http-idle-timeout-s"));
    assert_int_equal(rq_config_check_http(1, 86401, 1024, 256u << 20, mib32,
                                          why, sizeof why),
                     RQ_INVALID);
    assert_int_equal(
        rq_config_check_http(1, 60, 3, 256u << 20, mib32, why, sizeof why),
        RQ_INVALID);
    assert_non_null(strstr(why, "--http-max-connections"));
    assert_int_equal(
        rq_config_check_http(1, 60, 65537, 256u << 20, mib32, why, sizeof why),
        RQ_INVALID);
    /* Less than one largest body, or more than 1 TiB. */
    assert_int_equal(
        rq_config_check_http(1, 60, 1024, mib32 - 1, mib32, why, sizeof why),
        RQ_INVALID);
    assert_non_null(strstr(why, "--http-max-buffered-bytes"));
    assert_non_null(strstr(why, "33554432"));
    assert_int_equal(rq_config_check_http(1, 60, 1024, (1ull << 40) + 1, mib32,
                                          why, sizeof why),
                     RQ_INVALID);
}

static void test_peers_parse(void **state)
{
    (void)state;
    struct rq_peer peers[RQ_PEERS_MAX];
    size_t n;
    char why[256];
    assert_int_equal(rq_peers_parse("1=127.0.0.1:7001,2=localhost:7002,"
                                    "3=[::1]:7003",
                                    peers, RQ_PEERS_MAX, &n, why, sizeof why),
                     0);
    assert_int_equal(n, 3);
    assert_int_equal(peers[1].id, 2);
    assert_string_equal(peers[1].address, "localhost:7002");
    assert_string_equal(peers[2].address, "[::1]:7003");

    const char *bad[] = {
        "",          "1=",      "=a:1",  "1=a",         "1=a:0",
        "1=a:70000", "x=a:1",   "0=a:1", "1=a:1,1=b:2", "1=a:1,2=a:1",
        "1=a:1,",    "1=a b:1", "-1=a:1"};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        assert_int_equal(
            rq_peers_parse(bad[i], peers, RQ_PEERS_MAX, &n, why, sizeof why),
            RQ_INVALID);
        assert_true(strlen(why) > 0);
    }
}

static void test_err_texts_and_http_status(void **state)
{
    (void)state;
    assert_string_equal(rq_strerror(RQ_NOTLEADER), "not the leader");
    assert_string_equal(rq_strerror(12345), "unknown error");
    assert_int_equal(rq_err_http_status(RQ_MALFORMED), 400);
    assert_int_equal(rq_err_http_status(RQ_NOTFOUND), 404);
    assert_int_equal(rq_err_http_status(RQ_EXISTS), 409);
    assert_int_equal(rq_err_http_status(RQ_TOOBIG), 413);
    assert_int_equal(rq_err_http_status(RQ_NOQUORUM), 503);
}

static void test_err_why_formats_truncates_and_takes_null(void **state)
{
    (void)state;
    char why[8];

    rq_why(why, sizeof why, "%s %d", "segment", 42);
    assert_string_equal(why, "segment"); /* Cut to 7 bytes and the NUL. */
    rq_why(why, sizeof why, "%u", 7u);
    assert_string_equal(why, "7");

    /* No buffer, or no room: nothing is written. */
    memcpy(why, "intact", 7);
    rq_why(why, 0, "%s", "overwritten");
    assert_string_equal(why, "intact");
    rq_why(NULL, 0, "%s", "ignored");
    rq_why(NULL, sizeof why, "%s", "ignored");
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_wire_roundtrip),
        cmocka_unit_test(test_wire_truncated_input_never_overreads),
        cmocka_unit_test(test_wire_blob_rejects_length_over_max),
        cmocka_unit_test(test_entry_padded_to_8_for_every_length),
        cmocka_unit_test(test_entry_alloc_frames_in_place),
        cmocka_unit_test(test_entry_decode_rejects_bad_frames),
        cmocka_unit_test(test_config_flags_env_and_defaults),
        cmocka_unit_test(test_config_errors_name_the_flag),
        cmocka_unit_test(test_config_parse_u64_is_strict_and_bounded),
        cmocka_unit_test(test_config_http_limits_at_their_bounds),
        cmocka_unit_test(test_peers_parse),
        cmocka_unit_test(test_err_texts_and_http_status),
        cmocka_unit_test(test_err_why_formats_truncates_and_takes_null),
    };
    return cmocka_run_group_tests_name("wire", tests, NULL, NULL);
}

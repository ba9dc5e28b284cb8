/*
 * Unit tests of the load generator's response parser (cli/hresp.h): heads
 * split at every byte, the length and connection rules, the heads it
 * refuses and why, and the one JSON field it reads without parsing.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include <cmocka.h>

#include "cli/hresp.h"
#include "rq_err.h"

static const char ok_head[] =
    "HTTP/1.1 200 OK\r\n"
    "Connection: Keep-Alive\r\n"
    "Content-Length: 21\r\n"
    "Content-Type: application/json\r\n"
    "Date: Sun, 06 Dec 2026 17:00:00 GMT\r\n"
    "\r\n";

static void test_hresp_head_at_every_split(void **state)
{
    (void)state;
    char buf[512];
    const char *body = "{\"status\":\"success\"}\n";
    snprintf(buf, sizeof buf, "%s%s", ok_head, body);
    size_t hlen = strlen(ok_head);
    char why[256];
    struct hresp h;

    /* Every prefix short of the blank line asks for more bytes. */
    for (size_t n = 0; n < hlen; n++) {
        assert_int_equal(hresp_head(buf, n, &h, why, sizeof why), 0);
        assert_false(h.complete);
    }
    /* From the blank line on, the head is whole, body or not. */
    for (size_t n = hlen; n <= strlen(buf); n++) {
        assert_int_equal(hresp_head(buf, n, &h, why, sizeof why), 0);
        assert_true(h.complete);
        assert_int_equal(h.status, 200);
        assert_int_equal(h.head_len, hlen);
        assert_int_equal(h.body_len, 21);
        assert_false(h.close);
    }
}

static void test_hresp_head_statuses_and_connection(void **state)
{
    (void)state;
    static const struct {
        const char *head;
        int status;
        uint64_t body_len;
        bool close;
    } cases[] = {
        {"HTTP/1.1 503 Service Unavailable\r\nRetry-After: 1\r\n"
         "content-length: 7\r\n\r\n",
         503, 7, false},
        {"HTTP/1.1 404 Not Found\r\nContent-Length:0\r\nConnection: "
         "close\r\n\r\n",
         404, 0, true},
        {"HTTP/1.1 200 OK\r\nConnection: upgrade, CLOSE \r\n"
         "Content-Length:  5 \r\n\r\n",
         200, 5, true},
        /* HTTP/1.0 closes unless it says keep-alive. */
        {"HTTP/1.0 200 OK\r\nContent-Length: 2\r\n\r\n", 200, 2, true},
        {"HTTP/1.0 200 OK\r\nConnection: keep-alive\r\nContent-Length: "
         "2\r\n\r\n",
         200, 2, false},
        /* No reason phrase; a 204 has no body. */
        {"HTTP/1.1 204\r\n\r\n", 204, 0, false},
        /* The same length twice is one length. */
        {"HTTP/1.1 200 OK\r\nContent-Length: 3\r\nContent-Length: 3\r\n\r\n",
         200, 3, false},
        /* A header that merely starts like one is another header. */
        {"HTTP/1.1 200 OK\r\nContent-Length-X: 9\r\nContent-Length: 1\r\n\r\n",
         200, 1, false},
    };
    char why[256];
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        struct hresp h;
        why[0] = '\0';
        int rv = hresp_head(cases[i].head, strlen(cases[i].head), &h, why,
                            sizeof why);
        if (rv != 0 || !h.complete || h.status != cases[i].status ||
            h.body_len != cases[i].body_len || h.close != cases[i].close ||
            h.head_len != strlen(cases[i].head)) {
            fail_msg(
                "case %zu: rv %d complete %d status %d len %llu close %d "
                "(%s)",
                i, rv, h.complete, h.status, (unsigned long long)h.body_len,
                h.close, why);
        }
    }
}

static void test_hresp_head_refusals_say_why(void **state)
{
    (void)state;
    static const struct {
        const char *head;
        int rv;
        const char *says;
    } bad[] = {
        {"SSH-2.0-OpenSSH\r\n\r\n", RQ_MALFORMED, "not an HTTP/1.x"},
        /* Refused before the blank line comes. */
        {"\x16\x03\x01", RQ_MALFORMED, "not an HTTP/1.x"},
        {"HTTP/2 200\r\n\r\n", RQ_MALFORMED, "not an HTTP/1.x"},
        {"HTTP/1.1 2x0 OK\r\n\r\n", RQ_MALFORMED, "bad status"},
        {"HTTP/1.1 099 Low\r\n\r\n", RQ_MALFORMED, "bad status"},
        {"HTTP/1.1 2000 OK\r\n\r\n", RQ_MALFORMED, "bad status"},
        {"HTTP/1.1 200 OK\r\n\r\n", RQ_MALFORMED, "without Content-Length"},
        {"HTTP/1.1 200 OK\r\nContent-Length: -1\r\n\r\n", RQ_MALFORMED,
         "bad Content-Length"},
        {"HTTP/1.1 200 OK\r\nContent-Length: 1 2\r\n\r\n", RQ_MALFORMED,
         "bad Content-Length"},
        {"HTTP/1.1 200 OK\r\nContent-Length: \r\n\r\n", RQ_MALFORMED,
         "empty Content-Length"},
        {"HTTP/1.1 200 OK\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\n",
         RQ_MALFORMED, "two different"},
        {"HTTP/1.1 200 OK\r\nContent-Length: 99999999999999999999\r\n\r\n",
         RQ_TOOBIG, "more than"},
        {"HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip, chunked\r\n\r\n",
         RQ_MALFORMED, "chunked"},
        {"HTTP/1.1 200 OK\r\nX: a\rb\r\nContent-Length: 1\r\n\r\n",
         RQ_MALFORMED, "CRLF"},
    };
    char why[256];
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        struct hresp h;
        why[0] = '\0';
        int rv =
            hresp_head(bad[i].head, strlen(bad[i].head), &h, why, sizeof why);
        if (rv != bad[i].rv || strstr(why, bad[i].says) == NULL) {
            fail_msg("case %zu: got %d '%s', expected %d saying '%s'", i, rv,
                     why, bad[i].rv, bad[i].says);
        }
    }
}

static void test_hresp_head_too_long(void **state)
{
    (void)state;
    static char buf[HRESP_MAX_HEAD + 64];
    size_t n = (size_t)snprintf(buf, sizeof buf, "HTTP/1.1 200 OK\r\nX: ");
    memset(buf + n, 'a', sizeof buf - n);
    char why[256];
    struct hresp h;
    /* Short of the limit it waits; at the limit it gives up. */
    assert_int_equal(hresp_head(buf, HRESP_MAX_HEAD - 1, &h, why, sizeof why),
                     0);
    assert_false(h.complete);
    assert_int_equal(hresp_head(buf, sizeof buf, &h, why, sizeof why),
                     RQ_TOOBIG);
    assert_non_null(strstr(why, "over"));
}

static void test_hresp_json_u64_finds_the_member(void **state)
{
    (void)state;
    uint64_t v = 0;
    const char *body =
        "{\"records\":[{\"offset\":7,\"value\":\"\\\"next_offset\\\":1\"},"
        "{\"offset\":8,\"value\":\"next_offset\"}],"
        "\"next_offset\" : 9,\"high_watermark\":12}";
    assert_int_equal(hresp_json_u64(body, strlen(body), "next_offset", &v), 0);
    assert_int_equal(v, 9);
    assert_int_equal(hresp_json_u64(body, strlen(body), "high_watermark", &v),
                     0);
    assert_int_equal(v, 12);
    assert_int_equal(hresp_json_u64(body, strlen(body), "offset", &v), 0);
    assert_int_equal(v, 7);
    assert_int_equal(hresp_json_u64(body, strlen(body), "next", &v),
                     RQ_NOTFOUND);
    assert_int_equal(hresp_json_u64("", 0, "next", &v), RQ_NOTFOUND);

    /* A value that is not a non-negative integer. */
    static const char *const bad[] = {
        "{\"n\":-1}",  "{\"n\":1.5}", "{\"n\":\"1\"}",
        "{\"n\":1e3}", "{\"n\":}",    "{\"n\":9223372036854775808}",
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        if (hresp_json_u64(bad[i], strlen(bad[i]), "n", &v) != RQ_MALFORMED) {
            fail_msg("'%s' was taken", bad[i]);
        }
    }
    const char *max = "{\"n\":9223372036854775807}";
    assert_int_equal(hresp_json_u64(max, strlen(max), "n", &v), 0);
    assert_true(v == UINT64_C(9223372036854775807));
    /* The body need not end with a NUL: the length bounds the scan. */
    assert_int_equal(hresp_json_u64("{\"n\":12", 6, "n", &v), 0);
    assert_int_equal(v, 1);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_hresp_head_at_every_split),
        cmocka_unit_test(test_hresp_head_statuses_and_connection),
        cmocka_unit_test(test_hresp_head_refusals_say_why),
        cmocka_unit_test(test_hresp_head_too_long),
        cmocka_unit_test(test_hresp_json_u64_finds_the_member),
    };
    return cmocka_run_group_tests_name("hresp", tests, NULL, NULL);
}

/*
 * Unit tests of manager URLs and request URL building: the forms a
 * manager may be given in, the errors for the others, and percent-encoding
 * that keeps a topic name inside its path segment.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include "cli/url.h"
#include "rq_err.h"

static void test_url_base_forms(void **state)
{
    (void)state;
    static const struct {
        const char *in, *out;
    } ok[] = {
        {"127.0.0.1:9500", "http://127.0.0.1:9500"},
        {"http://127.0.0.1:9500", "http://127.0.0.1:9500"},
        {"http://127.0.0.1:9500/", "http://127.0.0.1:9500"},
        {"localhost:1", "http://localhost:1"},
        {"https://mq.example.org:443", "https://mq.example.org:443"},
        {"[::1]:9500", "http://[::1]:9500"},
        {"http://[fe80::1]:80/", "http://[fe80::1]:80"},
    };
    char out[URL_MAX], why[256];
    for (size_t i = 0; i < sizeof ok / sizeof ok[0]; i++) {
        int rv = url_base_parse(ok[i].in, out, why, sizeof why);
        if (rv != 0 || strcmp(out, ok[i].out) != 0) {
            fail_msg("'%s': got %d '%s' (%s)", ok[i].in, rv, rv == 0 ? out : "",
                     why);
        }
    }
}

static void test_url_base_errors_say_why(void **state)
{
    (void)state;
    static const struct {
        const char *in, *says;
    } bad[] = {
        {"", "not HOST:PORT"},       {"127.0.0.1", "no port"},
        {"127.0.0.1:", "no port"},   {"http://h:0", "1 to 65535"},
        {"h:65536", "1 to 65535"},   {"h:99999999999999", "port"},
        {"h:80/path", "no path"},    {"h:8x", "port"},
        {"ftp://h:21", "only http"}, {"[]:80", "IPv6"},
        {"[::1:80", "IPv6"},         {"h o:80", "no port"},
    };
    char out[URL_MAX], why[256];
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        why[0] = '\0';
        int rv = url_base_parse(bad[i].in, out, why, sizeof why);
        if (rv != RQ_INVALID || strstr(why, bad[i].says) == NULL) {
            fail_msg("'%s': got %d '%s', expected an error saying '%s'",
                     bad[i].in, rv, why, bad[i].says);
        }
    }
}

static void test_url_bases_list(void **state)
{
    (void)state;
    char bases[URL_BASES_MAX][URL_MAX], why[256];
    size_t n = 99;

    assert_int_equal(
        url_bases_parse("a:1, http://b:2/ ,c:3", bases, &n, why, sizeof why),
        0);
    assert_int_equal(n, 3);
    assert_string_equal(bases[0], "http://a:1");
    assert_string_equal(bases[1], "http://b:2");
    assert_string_equal(bases[2], "http://c:3");

    assert_int_equal(url_bases_parse("a:1,,b:2", bases, &n, why, sizeof why),
                     RQ_INVALID);
    assert_non_null(strstr(why, "empty entry"));
    assert_int_equal(url_bases_parse("a:1,b", bases, &n, why, sizeof why),
                     RQ_INVALID);
    assert_non_null(strstr(why, "'b' has no port"));

    char many[1024] = "";
    for (int i = 0; i <= URL_BASES_MAX; i++) {
        strcat(many, i > 0 ? ",h:1" : "h:1");
    }
    assert_int_equal(url_bases_parse(many, bases, &n, why, sizeof why),
                     RQ_INVALID);
    assert_non_null(strstr(why, "at most"));
}

static void test_url_build_encodes_segments_and_queries(void **state)
{
    (void)state;
    struct url u;

    url_init(&u, "http://h:1");
    url_path(&u, "/v1/topics/");
    url_segment(&u, "orders.eu_1-x~");
    url_path(&u, "/partitions/");
    url_segment(&u, "0");
    url_path(&u, "/records");
    url_query_u64(&u, "offset", 18446744073709551615ull);
    url_query(&u, "max", "10");
    assert_string_equal(url_done(&u),
                        "http://h:1/v1/topics/orders.eu_1-x~/partitions/0/"
                        "records?offset=18446744073709551615&max=10");

    /* A name cannot leave its segment, nor a value its parameter. */
    url_init(&u, "");
    url_path(&u, "/admin/topics/");
    url_segment(&u, "../a/b?c=d&e f%\xc3\xa9");
    url_query(&u, "topic", "x&y=z#");
    assert_string_equal(url_done(&u),
                        "/admin/topics/..%2Fa%2Fb%3Fc%3Dd%26e"
                        "%20f%25%C3%A9?topic=x%26y%3Dz%23");
}

static void test_url_build_overflow_is_reported(void **state)
{
    (void)state;
    struct url u;
    char big[URL_MAX];
    memset(big, 'a', sizeof big - 1);
    big[sizeof big - 1] = '\0';

    url_init(&u, "http://h:1");
    url_path(&u, "/");
    assert_non_null(url_done(&u));
    url_segment(&u, big);
    assert_null(url_done(&u));
    /* Sticky: a later short piece does not make it whole again. */
    url_path(&u, "/x");
    assert_null(url_done(&u));

    /* Exactly full still fits (URL_MAX - 1 characters and the NUL). */
    url_init(&u, "");
    big[URL_MAX - 1] = '\0';
    url_path(&u, big);
    assert_non_null(url_done(&u));
    assert_int_equal(strlen(url_done(&u)), URL_MAX - 1);
    url_path(&u, "b");
    assert_null(url_done(&u));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_url_base_forms),
        cmocka_unit_test(test_url_base_errors_say_why),
        cmocka_unit_test(test_url_bases_list),
        cmocka_unit_test(test_url_build_encodes_segments_and_queries),
        cmocka_unit_test(test_url_build_overflow_is_reported),
    };
    return cmocka_run_group_tests_name("url", tests, NULL, NULL);
}

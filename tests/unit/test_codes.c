/*
 * Unit tests of the error codes (shared/rq_codes.c): every name is
 * snake_case and listed once, every status with a specific code has a
 * generic one, and the lookups find what the table holds.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include "rq_codes.h"

static bool snake_case(const char *s)
{
    size_t n = strlen(s);
    if (n < 3 || s[0] == '_' || s[n - 1] == '_') {
        return false;
    }
    for (size_t i = 0; i < n; i++) {
        if (!((s[i] >= 'a' && s[i] <= 'z') || s[i] == '_') ||
            (s[i] == '_' && s[i + 1] == '_')) {
            return false;
        }
    }
    return true;
}

static void test_codes_named_once_in_snake_case(void **state)
{
    (void)state;
    assert_true(rq_codes_n > 20);
    for (size_t i = 0; i < rq_codes_n; i++) {
        assert_true(snake_case(rq_codes[i].name));
        assert_true(strlen(rq_codes[i].what) > 10);
        for (size_t j = 0; j < i; j++) {
            assert_string_not_equal(rq_codes[i].name, rq_codes[j].name);
        }
        assert_ptr_equal(rq_codes_find(rq_codes[i].name), &rq_codes[i]);
        /* Its status has a generic code, which comes first. */
        if (rq_codes[i].status != 0) {
            const struct rq_code *g =
                rq_codes_find(rq_codes_of_status(rq_codes[i].status));
            assert_non_null(g);
            assert_int_equal(g->status, rq_codes[i].status);
            assert_true(g <= &rq_codes[i]);
        }
    }
    assert_null(rq_codes_find("no_such_code"));
}

static void test_codes_of_status(void **state)
{
    (void)state;
    assert_string_equal(rq_codes_of_status(400), "invalid_request");
    assert_string_equal(rq_codes_of_status(404), "not_found");
    assert_string_equal(rq_codes_of_status(503), "unavailable");
    assert_string_equal(rq_codes_of_status(507), "insufficient_storage");
    assert_string_equal(rq_codes_of_status(418), "error");
    assert_non_null(rq_codes_find("error"));
    /* The ones API.md names. */
    assert_int_equal(rq_codes_find(RQ_CODE_TOPIC_NOT_FOUND)->status, 404);
    assert_int_equal(rq_codes_find(RQ_CODE_NO_NEW_MESSAGES)->status, 404);
    assert_int_equal(rq_codes_find(RQ_CODE_NOT_LEADER)->status, 421);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_codes_named_once_in_snake_case),
        cmocka_unit_test(test_codes_of_status),
    };
    return cmocka_run_group_tests_name("codes", tests, NULL, NULL);
}

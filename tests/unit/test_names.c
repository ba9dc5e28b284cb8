/*
 * Unit tests of the name rules (shared/rq_names.c): the characters and
 * lengths a topic name, a token name and a group member id may have.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include "rq_names.h"

/* The longest name @valid admits is @max characters; one more is refused. */
static void check_longest(bool (*valid)(const char *), size_t max)
{
    char longest[RQ_NAMES_TOPIC_MAX + 2];
    assert_true(max + 2 <= sizeof longest);
    memset(longest, 'a', max + 2);
    longest[max] = '\0';
    assert_true(valid(longest));
    longest[max] = 'a';
    longest[max + 1] = '\0';
    assert_false(valid(longest));
}

static void test_names_topic_valid(void **state)
{
    (void)state;
    check_longest(rq_names_topic_valid, RQ_NAMES_TOPIC_MAX);
    const char *good[] = {"a", "A.b_c-9", "...", ".a", "..a", "-", "_"};
    const char *bad[] = {"",  ".",   "..",  "a/b",         "a b",
                         "é", "a\n", "a:b", "caf\xc3\xa9", "*"};
    for (size_t i = 0; i < sizeof good / sizeof good[0]; i++) {
        assert_true(rq_names_topic_valid(good[i]));
    }
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        assert_false(rq_names_topic_valid(bad[i]));
    }
}

static void test_names_token_valid(void **state)
{
    (void)state;
    check_longest(rq_names_token_valid, RQ_NAMES_TOKEN_MAX);
    /* Unlike a topic, a token may be called "." or "..". */
    const char *good[] = {"ci", "A.b_c-9", ".", ".."};
    const char *bad[] = {"", "a/b", "a b", "é", "a\n", "a:b", "*"};
    for (size_t i = 0; i < sizeof good / sizeof good[0]; i++) {
        assert_true(rq_names_token_valid(good[i]));
    }
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        assert_false(rq_names_token_valid(bad[i]));
    }
}

static void test_names_member_valid(void **state)
{
    (void)state;
    check_longest(rq_names_member_valid, RQ_NAMES_MEMBER_MAX);
    const char *good[] = {"0f3a9c2e4b5d6e7f", "worker-1.a_b", "."};
    const char *bad[] = {"", "a/b", "a b", "\xc3\xa9", "a\n", "a:b", "?"};
    for (size_t i = 0; i < sizeof good / sizeof good[0]; i++) {
        assert_true(rq_names_member_valid(good[i]));
    }
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        assert_false(rq_names_member_valid(bad[i]));
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_names_topic_valid),
        cmocka_unit_test(test_names_token_valid),
        cmocka_unit_test(test_names_member_valid),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}

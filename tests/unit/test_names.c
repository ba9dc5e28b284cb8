/*
 * Unit tests of the name rules (manager/names.c): the characters and
 * lengths a topic name and a token name may have.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include "manager/names.h"

static void test_names_topic_valid(void **state)
{
    (void)state;
    char longest[NAMES_TOPIC_MAX + 2];
    memset(longest, 'a', sizeof longest);
    longest[NAMES_TOPIC_MAX] = '\0';
    assert_true(names_topic_valid(longest));
    longest[NAMES_TOPIC_MAX] = 'a';
    longest[NAMES_TOPIC_MAX + 1] = '\0';
    assert_false(names_topic_valid(longest));

    const char *good[] = {"a", "A.b_c-9", "...", ".a", "..a", "-", "_"};
    const char *bad[] = {"", ".", "..", "a/b", "a b", "é", "a\n", "a:b", "*"};
    for (size_t i = 0; i < sizeof good / sizeof good[0]; i++) {
        assert_true(names_topic_valid(good[i]));
    }
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        assert_false(names_topic_valid(bad[i]));
    }
}

static void test_names_token_valid(void **state)
{
    (void)state;
    char longest[NAMES_TOKEN_MAX + 2];
    memset(longest, 'a', sizeof longest);
    longest[NAMES_TOKEN_MAX] = '\0';
    assert_true(names_token_valid(longest));
    longest[NAMES_TOKEN_MAX] = 'a';
    longest[NAMES_TOKEN_MAX + 1] = '\0';
    assert_false(names_token_valid(longest));

    /* Unlike a topic, a token may be called "." or "..". */
    const char *good[] = {"ci", "A.b_c-9", ".", ".."};
    const char *bad[] = {"", "a/b", "a b", "é", "a\n", "a:b", "*"};
    for (size_t i = 0; i < sizeof good / sizeof good[0]; i++) {
        assert_true(names_token_valid(good[i]));
    }
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        assert_false(names_token_valid(bad[i]));
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_names_topic_valid),
        cmocka_unit_test(test_names_token_valid),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}

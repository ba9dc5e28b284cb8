/*
 * Unit tests of token grants (manager/grants.c): parsing of every form and
 * the reasons for refusals, canonical text, matching by name and by
 * prefix (orders.* covers orders and orders.eu, never ordersx), what each
 * action needs, and the refusal sentence.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include <cmocka.h>

#include "manager/grants.h"
#include "rq_err.h"

static struct grant parse_ok(const char *text)
{
    struct grant g;
    char why[256] = "";
    int rv = grant_parse(text, &g, why, sizeof why);
    if (rv != 0) {
        fail_msg("'%s' refused: %s", text, why);
    }
    return g;
}

/* Refused, with a reason that contains @needle. */
static void parse_refused(const char *text, const char *needle)
{
    struct grant g;
    char why[512] = "";
    assert_int_equal(grant_parse(text, &g, why, sizeof why), RQ_INVALID);
    if (strstr(why, needle) == NULL) {
        fail_msg("'%s': reason '%s' does not say '%s'", text, why, needle);
    }
}

static void test_grants_parse_forms(void **state)
{
    (void)state;
    struct grant g = parse_ok("admin");
    assert_int_equal(g.kind, GRANT_ADMIN);
    g = parse_ok("produce:orders");
    assert_int_equal(g.kind, GRANT_PRODUCE);
    assert_false(g.prefix);
    assert_string_equal(g.topic, "orders");
    g = parse_ok("consume:orders.*");
    assert_int_equal(g.kind, GRANT_CONSUME);
    assert_true(g.prefix);
    assert_string_equal(g.topic, "orders");
    g = parse_ok("consume:a.b.*");
    assert_true(g.prefix);
    assert_string_equal(g.topic, "a.b");
    g = parse_ok("produce:*");
    assert_true(g.prefix);
    assert_string_equal(g.topic, "");
    /* A name that is all dots and dashes is still a topic name. */
    g = parse_ok("produce:-_.x");
    assert_string_equal(g.topic, "-_.x");
}

static void test_grants_parse_refuses_with_reason(void **state)
{
    (void)state;
    parse_refused("", "empty grant");
    parse_refused("write:orders", "unknown grant 'write'");
    parse_refused("Produce:orders", "unknown grant 'Produce'");
    parse_refused("produce", "needs a topic");
    parse_refused("consume:", "needs a topic");
    parse_refused("admin:orders", "admin takes no topic");
    parse_refused("produce:orders*", "'*' may only end a prefix");
    parse_refused("produce:or*ders.*", "'*' may only end a prefix");
    parse_refused("produce:.*", "'*' may only end a prefix");
    parse_refused("produce:**", "'*' may only end a prefix");
    parse_refused("produce:ord ers", "not a topic name");
    parse_refused("produce:..", "not a topic name");
    parse_refused("consume:a/b", "not a topic name");
    char longname[RQ_NAMES_TOPIC_MAX + 16];
    memset(longname, 'x', sizeof longname);
    memcpy(longname, "produce:", 8);
    longname[8 + RQ_NAMES_TOPIC_MAX + 1] = '\0';
    parse_refused(longname, "at most");
    char huge[GRANT_TEXT_MAX + 8];
    memset(huge, 'x', sizeof huge);
    memcpy(huge, "consume:", 8);
    huge[sizeof huge - 1] = '\0';
    parse_refused(huge, "more than");
}

static void test_grants_prefix_matches_name_and_children_only(void **state)
{
    (void)state;
    struct grant g = parse_ok("produce:orders.*");
    assert_true(grant_covers(&g, "orders"));
    assert_true(grant_covers(&g, "orders.eu"));
    assert_true(grant_covers(&g, "orders.eu.west"));
    assert_false(grant_covers(&g, "ordersx"));
    assert_false(grant_covers(&g, "orders-eu"));
    assert_false(grant_covers(&g, "order"));
    assert_false(grant_covers(&g, "xorders.eu"));
    g = parse_ok("produce:orders");
    assert_true(grant_covers(&g, "orders"));
    assert_false(grant_covers(&g, "orders.eu"));
    assert_false(grant_covers(&g, "ordersx"));
    g = parse_ok("consume:*");
    assert_true(grant_covers(&g, "anything"));
    g = parse_ok("admin");
    assert_true(grant_covers(&g, "anything"));
}

static void test_grants_allow_by_action(void **state)
{
    (void)state;
    struct grants gs;
    char why[256];
    assert_int_equal(
        grants_parse("produce:orders.* consume:audit", &gs, why, sizeof why),
        0);
    assert_true(grants_allow(&gs, GRANT_TO_PRODUCE, "orders.eu"));
    assert_false(grants_allow(&gs, GRANT_TO_CONSUME, "orders.eu"));
    assert_true(grants_allow(&gs, GRANT_TO_SEE, "orders.eu"));
    assert_true(grants_allow(&gs, GRANT_TO_CONSUME, "audit"));
    assert_false(grants_allow(&gs, GRANT_TO_PRODUCE, "audit"));
    assert_true(grants_allow(&gs, GRANT_TO_SEE, "audit"));
    assert_false(grants_allow(&gs, GRANT_TO_SEE, "payments"));
    assert_false(grants_allow(&gs, GRANT_TO_PRODUCE, "ordersx"));
    assert_false(grants_admin(&gs));

    assert_int_equal(grants_parse("admin", &gs, why, sizeof why), 0);
    assert_true(grants_admin(&gs));
    assert_true(grants_allow(&gs, GRANT_TO_PRODUCE, "payments"));
    assert_true(grants_allow(&gs, GRANT_TO_CONSUME, "payments"));
}

static void test_grants_parse_list_canonical(void **state)
{
    (void)state;
    struct grants gs;
    char why[256] = "";
    char text[GRANTS_TEXT_MAX + 1];
    assert_int_equal(
        grants_parse("  consume:b.*   produce:a consume:b.* admin ", &gs, why,
                     sizeof why),
        0);
    assert_int_equal(gs.n, 3);
    grants_format(&gs, text, sizeof text);
    assert_string_equal(text, "consume:b.* produce:a admin");
    /* The canonical text parses back to the same grants. */
    struct grants again;
    assert_int_equal(grants_parse(text, &again, why, sizeof why), 0);
    assert_int_equal(again.n, gs.n);
    assert_memory_equal(&again, &gs, sizeof gs);
    assert_int_equal(grants_parse("produce:*", &gs, why, sizeof why), 0);
    grants_format(&gs, text, sizeof text);
    assert_string_equal(text, "produce:*");
}

static void test_grants_parse_list_refusals(void **state)
{
    (void)state;
    struct grants gs;
    char why[512] = "";
    assert_int_equal(grants_parse("", &gs, why, sizeof why), RQ_INVALID);
    assert_non_null(strstr(why, "at least one grant"));
    assert_int_equal(grants_parse("   ", &gs, why, sizeof why), RQ_INVALID);
    assert_int_equal(grants_parse("produce:a bogus", &gs, why, sizeof why),
                     RQ_INVALID);
    assert_non_null(strstr(why, "unknown grant 'bogus'"));
    /* GRANTS_MAX distinct grants fit; one more does not. */
    char text[GRANTS_TEXT_MAX + 64] = "";
    size_t len = 0;
    for (int i = 0; i <= GRANTS_MAX; i++) {
        len +=
            (size_t)snprintf(text + len, sizeof text - len, "produce:t%d ", i);
        if (i == GRANTS_MAX - 1) {
            assert_int_equal(grants_parse(text, &gs, why, sizeof why), 0);
            assert_int_equal(gs.n, GRANTS_MAX);
        }
    }
    assert_int_equal(grants_parse(text, &gs, why, sizeof why), RQ_INVALID);
    assert_non_null(strstr(why, "at most"));
    /* The longest valid grants all fit in GRANTS_TEXT_MAX. */
    char name[RQ_NAMES_TOPIC_MAX + 1];
    memset(name, 'n', RQ_NAMES_TOPIC_MAX);
    name[RQ_NAMES_TOPIC_MAX] = '\0';
    len = 0;
    for (int i = 0; i < GRANTS_MAX; i++) {
        name[0] = (char)('a' + i);
        len += (size_t)snprintf(text + len, sizeof text - len, "consume:%s.* ",
                                name);
    }
    assert_int_equal(grants_parse(text, &gs, why, sizeof why), 0);
    char out[GRANTS_TEXT_MAX + 1];
    grants_format(&gs, out, sizeof out);
    assert_int_equal(strlen(out), len - 1);
}

static void test_grants_refusal_names_the_grant(void **state)
{
    (void)state;
    char msg[512];
    grants_refusal(GRANT_TO_PRODUCE, "orders", msg, sizeof msg);
    assert_string_equal(msg,
                        "this token may not produce to topic 'orders'; it "
                        "needs the grant produce:orders or produce:orders.*");
    grants_refusal(GRANT_TO_CONSUME, "orders.eu", msg, sizeof msg);
    assert_string_equal(msg,
                        "this token may not consume from topic 'orders.eu'; "
                        "it needs the grant consume:orders.eu or "
                        "consume:orders.*");
    grants_refusal(GRANT_TO_SEE, "x", msg, sizeof msg);
    assert_non_null(strstr(msg, "no grant on topic 'x'"));
    /* Whatever the refusal names, it would be accepted. */
    struct grants gs;
    char why[256];
    assert_int_equal(grants_parse("produce:orders.*", &gs, why, sizeof why), 0);
    assert_true(grants_allow(&gs, GRANT_TO_PRODUCE, "orders.eu"));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_grants_parse_forms),
        cmocka_unit_test(test_grants_parse_refuses_with_reason),
        cmocka_unit_test(test_grants_prefix_matches_name_and_children_only),
        cmocka_unit_test(test_grants_allow_by_action),
        cmocka_unit_test(test_grants_parse_list_canonical),
        cmocka_unit_test(test_grants_parse_list_refusals),
        cmocka_unit_test(test_grants_refusal_names_the_grant),
    };
    return cmocka_run_group_tests_name("grants", tests, NULL, NULL);
}

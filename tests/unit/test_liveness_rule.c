/*
 * Unit tests of the broker liveness rule (liveness_rule.h): each edge of
 * its state table, the thresholds' edges, and the grace period a new
 * leader gives every broker.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include "manager/liveness_rule.h"

#define SUSPECT 3000
#define DEAD 10000

static enum mbroker_state next(enum mbroker_state state, uint64_t last_ms,
                               bool heard, uint64_t now)
{
    struct liveness_rule_in in = {
        .state = state, .last_ms = last_ms, .heard = heard};
    return liveness_rule_next(&in, now, SUSPECT, DEAD);
}

static void test_liveness_rule_alive_stays_until_suspect_time(void **state)
{
    (void)state;
    assert_int_equal(next(MBROKER_ALIVE, 1000, true, 1000), MBROKER_ALIVE);
    assert_int_equal(next(MBROKER_ALIVE, 1000, true, 1000 + SUSPECT - 1),
                     MBROKER_ALIVE);
}

static void test_liveness_rule_alive_to_suspect_at_suspect_time(void **state)
{
    (void)state;
    assert_int_equal(next(MBROKER_ALIVE, 1000, true, 1000 + SUSPECT),
                     MBROKER_SUSPECT);
    assert_int_equal(next(MBROKER_ALIVE, 1000, true, 1000 + DEAD - 1),
                     MBROKER_SUSPECT);
}

static void test_liveness_rule_suspect_to_dead_at_dead_time(void **state)
{
    (void)state;
    assert_int_equal(next(MBROKER_SUSPECT, 1000, true, 1000 + DEAD - 1),
                     MBROKER_SUSPECT);
    assert_int_equal(next(MBROKER_SUSPECT, 1000, true, 1000 + DEAD),
                     MBROKER_DEAD);
}

static void test_liveness_rule_alive_to_dead_at_once(void **state)
{
    (void)state;
    /* A tick that comes late sees both thresholds passed. */
    assert_int_equal(next(MBROKER_ALIVE, 1000, true, 1000 + DEAD + 5000),
                     MBROKER_DEAD);
}

static void test_liveness_rule_heard_brings_back(void **state)
{
    (void)state;
    /* A heartbeat just arrived: last_ms is now. */
    assert_int_equal(next(MBROKER_SUSPECT, 5000, true, 5000), MBROKER_ALIVE);
    assert_int_equal(next(MBROKER_DEAD, 5000, true, 5000), MBROKER_ALIVE);
    /* Heard, then silent again past the suspect time: SUSPECT. */
    assert_int_equal(next(MBROKER_DEAD, 5000, true, 5000 + SUSPECT),
                     MBROKER_SUSPECT);
}

static void test_liveness_rule_grace_after_leader_change(void **state)
{
    (void)state;
    const uint64_t led = 50000; /* This manager leads since then. */
    /* Nobody heard yet: silence counts from the leadership's start, so an
     * ALIVE or SUSPECT broker is not judged on the old leader's time. */
    assert_int_equal(next(MBROKER_ALIVE, led, false, led + SUSPECT - 1),
                     MBROKER_ALIVE);
    assert_int_equal(next(MBROKER_SUSPECT, led, false, led + 1), MBROKER_ALIVE);
    /* The grace ends like any silence. */
    assert_int_equal(next(MBROKER_ALIVE, led, false, led + SUSPECT),
                     MBROKER_SUSPECT);
    assert_int_equal(next(MBROKER_ALIVE, led, false, led + DEAD), MBROKER_DEAD);
}

static void test_liveness_rule_grace_never_revives_the_dead(void **state)
{
    (void)state;
    const uint64_t led = 50000;
    /* A DEAD broker not heard since this manager leads stays DEAD
     * throughout the grace period and after it. */
    assert_int_equal(next(MBROKER_DEAD, led, false, led), MBROKER_DEAD);
    assert_int_equal(next(MBROKER_DEAD, led, false, led + SUSPECT),
                     MBROKER_DEAD);
    assert_int_equal(next(MBROKER_DEAD, led, false, led + DEAD), MBROKER_DEAD);
}

static void test_liveness_rule_leaves_admin_states_alone(void **state)
{
    (void)state;
    static const enum mbroker_state admin[] = {
        MBROKER_DRAINING, MBROKER_REMOVING, MBROKER_REMOVED};
    for (size_t i = 0; i < sizeof admin / sizeof admin[0]; i++) {
        assert_int_equal(next(admin[i], 0, true, DEAD * 10), admin[i]);
        assert_int_equal(next(admin[i], 1000, true, 1000), admin[i]);
    }
}

static void test_liveness_rule_waits_for_a_change_in_flight(void **state)
{
    (void)state;
    struct liveness_rule_in in = {
        .state = MBROKER_ALIVE, .last_ms = 0, .heard = true, .changing = true};
    assert_int_equal(liveness_rule_next(&in, DEAD * 2, SUSPECT, DEAD),
                     MBROKER_ALIVE);
    in.changing = false;
    assert_int_equal(liveness_rule_next(&in, DEAD * 2, SUSPECT, DEAD),
                     MBROKER_DEAD);
}

static void test_liveness_rule_clock_behind_last_heard(void **state)
{
    (void)state;
    /* A heartbeat stamped after @now (no silence at all) is not an age. */
    assert_int_equal(next(MBROKER_SUSPECT, 9000, true, 8000), MBROKER_ALIVE);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_liveness_rule_alive_stays_until_suspect_time),
        cmocka_unit_test(test_liveness_rule_alive_to_suspect_at_suspect_time),
        cmocka_unit_test(test_liveness_rule_suspect_to_dead_at_dead_time),
        cmocka_unit_test(test_liveness_rule_alive_to_dead_at_once),
        cmocka_unit_test(test_liveness_rule_heard_brings_back),
        cmocka_unit_test(test_liveness_rule_grace_after_leader_change),
        cmocka_unit_test(test_liveness_rule_grace_never_revives_the_dead),
        cmocka_unit_test(test_liveness_rule_leaves_admin_states_alone),
        cmocka_unit_test(test_liveness_rule_waits_for_a_change_in_flight),
        cmocka_unit_test(test_liveness_rule_clock_behind_last_heard),
    };
    return cmocka_run_group_tests_name("liveness_rule", tests, NULL, NULL);
}

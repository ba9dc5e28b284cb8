/*
 * Unit tests of a manager's start decision with an empty Raft directory
 * (manager/mjoin_plan.h): bootstrap, join or wait.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include "manager/mjoin_plan.h"

static struct mjoin_answer said(uint64_t id, bool live)
{
    return (struct mjoin_answer){.id = id, .answered = true, .live = live};
}

static struct mjoin_answer silent(uint64_t id)
{
    return (struct mjoin_answer){.id = id};
}

static void test_mjoin_plan_live(void **state)
{
    (void)state;
    assert_false(mjoin_plan_live(0, 0));
    assert_false(mjoin_plan_live(0, 1)); /* The bootstrap entry alone. */
    assert_true(mjoin_plan_live(0, 2));
    assert_true(mjoin_plan_live(7, 0));
}

/* A new cluster: a majority of --peers, none live. */
static void test_mjoin_plan_bootstraps_a_new_cluster(void **state)
{
    (void)state;
    struct mjoin_answer a[4];
    a[0] = said(2, false);
    a[1] = said(3, false);
    assert_int_equal(mjoin_plan(true, 3, a, 2), MJOIN_BOOTSTRAP);
    a[1] = silent(3);
    assert_int_equal(mjoin_plan(true, 3, a, 2), MJOIN_BOOTSTRAP);
    a[0] = silent(2);
    assert_int_equal(mjoin_plan(true, 3, a, 2), MJOIN_WAIT);
    /* One manager alone is its own majority. */
    assert_int_equal(mjoin_plan(true, 1, a, 0), MJOIN_BOOTSTRAP);
    /* Five: itself and two others. */
    a[0] = said(2, false);
    a[1] = said(3, false);
    a[2] = silent(4);
    a[3] = silent(5);
    assert_int_equal(mjoin_plan(true, 5, a, 4), MJOIN_BOOTSTRAP);
    a[1] = silent(3);
    assert_int_equal(mjoin_plan(true, 5, a, 4), MJOIN_WAIT);
}

/* Any live peer: join, whoever else is silent or empty. */
static void test_mjoin_plan_joins_a_live_cluster(void **state)
{
    (void)state;
    struct mjoin_answer a[2] = {said(2, false), said(3, true)};
    assert_int_equal(mjoin_plan(true, 3, a, 2), MJOIN_JOIN);
    a[0] = silent(2);
    assert_int_equal(mjoin_plan(true, 3, a, 2), MJOIN_JOIN);
    /* A manager not in --peers (a new one) joins too. */
    assert_int_equal(mjoin_plan(false, 3, a, 2), MJOIN_JOIN);
}

/* A manager not in --peers never bootstraps: it waits for a live one. */
static void test_mjoin_plan_outsider_waits(void **state)
{
    (void)state;
    struct mjoin_answer a[3] = {said(1, false), said(2, false), said(3, false)};
    assert_int_equal(mjoin_plan(false, 3, a, 3), MJOIN_WAIT);
    assert_int_equal(mjoin_plan(false, 3, a, 0), MJOIN_WAIT);
}

/* A running manager without a leader joins again only if a live cluster
 * leaves it out. */
static void test_mjoin_plan_rejoin(void **state)
{
    (void)state;
    struct mjoin_answer a[2] = {said(1, true), silent(2)};
    a[0].lists_self = true;
    assert_int_equal(mjoin_plan_rejoin(a, 2), MJOIN_WAIT);
    a[0].lists_self = false;
    assert_int_equal(mjoin_plan_rejoin(a, 2), MJOIN_JOIN);
    a[0].live = false;
    assert_int_equal(mjoin_plan_rejoin(a, 2), MJOIN_WAIT);
    assert_int_equal(mjoin_plan_rejoin(a, 0), MJOIN_WAIT);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_mjoin_plan_live),
        cmocka_unit_test(test_mjoin_plan_bootstraps_a_new_cluster),
        cmocka_unit_test(test_mjoin_plan_joins_a_live_cluster),
        cmocka_unit_test(test_mjoin_plan_outsider_waits),
        cmocka_unit_test(test_mjoin_plan_rejoin),
    };
    return cmocka_run_group_tests_name("mjoin_plan", tests, NULL, NULL);
}

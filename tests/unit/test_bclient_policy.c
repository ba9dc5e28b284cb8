/*
 * Unit tests of bclient's follow/retry policy (bclient_policy.h): answers
 * in, the next step out, and the order in which brokers are asked.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include "manager/bclient_policy.h"

static const uint32_t replicas[MCMD_RF] = {4, 5, 6};

static struct bclient_policy_next answer(struct bclient_policy_answer a,
                                         bool produce, uint32_t target,
                                         unsigned redirects)
{
    struct bclient_policy_next next;
    bclient_policy_answer(&a, produce, target, redirects, &next);
    return next;
}

static void test_bclient_policy_produce_asks_cached_leader_then_rotates(
    void **state)
{
    (void)state;
    struct bclient_policy_cursor cur = {0};
    assert_int_equal(bclient_policy_produce_target(&cur, 6, replicas), 6);
    /* After the first attempt the cache is not asked again: the preferred
     * leader's turn comes next, then the others. */
    assert_int_equal(bclient_policy_produce_target(&cur, 6, replicas), 5);
    assert_int_equal(bclient_policy_produce_target(&cur, 6, replicas), 6);
    assert_int_equal(bclient_policy_produce_target(&cur, 6, replicas), 4);
    struct bclient_policy_cursor none = {0};
    assert_int_equal(bclient_policy_produce_target(&none, 0, replicas), 4);
    assert_int_equal(bclient_policy_produce_target(&none, 0, replicas), 5);
}

static void test_bclient_policy_named_leader_goes_first_once(void **state)
{
    (void)state;
    struct bclient_policy_cursor cur = {0};
    assert_int_equal(bclient_policy_produce_target(&cur, 0, replicas), 4);
    cur.redirect_to = 9;
    assert_int_equal(bclient_policy_produce_target(&cur, 0, replicas), 9);
    assert_int_equal(bclient_policy_produce_target(&cur, 0, replicas), 5);

    bclient_policy_read_order(&cur, 0, replicas);
    cur.redirect_to = 6;
    assert_int_equal(bclient_policy_read_target(&cur), 6);
    assert_int_equal(bclient_policy_read_target(&cur), 4);
}

static void test_bclient_policy_read_round(void **state)
{
    (void)state;
    struct bclient_policy_cursor cur = {.redirects = 2};
    /* The cached leader first, then the replicas without it again. */
    bclient_policy_read_order(&cur, 5, replicas);
    assert_int_equal(cur.redirects, 0);
    assert_int_equal(bclient_policy_read_target(&cur), 5);
    assert_int_equal(bclient_policy_read_target(&cur), 4);
    assert_int_equal(bclient_policy_read_target(&cur), 6);
    assert_int_equal(bclient_policy_read_target(&cur), 0); /* Round over. */
    /* A leader the cache names outside the replica set is asked too. */
    bclient_policy_read_order(&cur, 7, replicas);
    assert_int_equal(cur.n_order, 4);
    assert_int_equal(bclient_policy_read_target(&cur), 7);
    assert_int_equal(bclient_policy_read_target(&cur), 4);
    bclient_policy_read_order(&cur, 0, replicas);
    assert_int_equal(cur.n_order, 3);
    assert_int_equal(bclient_policy_read_target(&cur), 4);
}

static void test_bclient_policy_421_follows_named_leader(void **state)
{
    (void)state;
    struct bclient_policy_answer a = {.status = 421, .json = true, .named = 5};
    for (int produce = 0; produce < 2; produce++) {
        struct bclient_policy_next n = answer(a, produce, 4, 0);
        assert_int_equal(n.step, BCLIENT_FOLLOW);
        assert_int_equal(n.follow, 5);
        assert_true(n.drop_target);
        assert_false(n.target_leads);
        assert_string_equal(n.why, "broker 4 is not the leader");
    }
}

static void test_bclient_policy_421_stops_following(void **state)
{
    (void)state;
    struct bclient_policy_answer a = {.status = 421, .json = true, .named = 5};
    /* Past the redirects allowed: a produce pauses, a read asks the next
     * replica. */
    struct bclient_policy_next n = answer(a, true, 4, BCLIENT_POLICY_REDIRECTS);
    assert_int_equal(n.step, BCLIENT_PAUSE);
    assert_true(n.drop_target);
    n = answer(a, false, 4, BCLIENT_POLICY_REDIRECTS);
    assert_int_equal(n.step, BCLIENT_NEXT);
    /* A 421 naming nobody, or the broker itself, is not followed. */
    a.named = 0;
    assert_int_equal(answer(a, true, 4, 0).step, BCLIENT_PAUSE);
    a.named = 4;
    assert_int_equal(answer(a, false, 4, 0).step, BCLIENT_NEXT);
}

static void test_bclient_policy_failure_and_503_try_again(void **state)
{
    (void)state;
    struct bclient_policy_answer down = {.failed = "connection refused"};
    struct bclient_policy_next n = answer(down, true, 4, 0);
    assert_int_equal(n.step, BCLIENT_PAUSE);
    assert_true(n.drop_target);
    assert_string_equal(n.why, "broker 4: connection refused");
    assert_int_equal(answer(down, false, 4, 0).step, BCLIENT_NEXT);

    struct bclient_policy_answer busy = {
        .status = 503, .json = true, .message = "no leader"};
    n = answer(busy, true, 5, 0);
    assert_int_equal(n.step, BCLIENT_PAUSE);
    assert_false(n.drop_target);
    assert_string_equal(n.why, "broker 5: 503 no leader");
    assert_int_equal(answer(busy, false, 5, 0).step, BCLIENT_NEXT);
    busy.status = 500;
    assert_int_equal(answer(busy, true, 5, 0).step, BCLIENT_PAUSE);
}

static void test_bclient_policy_404_retention_ends_other_404_retries(
    void **state)
{
    (void)state;
    struct bclient_policy_answer gone = {.status = 404, .json = true};
    /* A replica not created yet. */
    assert_int_equal(answer(gone, false, 4, 0).step, BCLIENT_NEXT);
    assert_int_equal(answer(gone, true, 4, 0).step, BCLIENT_PAUSE);
    /* Retention removed the records: the answer as it is. */
    gone.retention = true;
    struct bclient_policy_next n = answer(gone, false, 4, 0);
    assert_int_equal(n.step, BCLIENT_FINISH);
    assert_false(n.why_set);
}

/* A refusal (4xx, or 507 for a full volume) ends the call. */
static void test_bclient_policy_refusal_ends_the_call(void **state)
{
    (void)state;
    struct bclient_policy_answer bad = {
        .status = 400, .json = true, .message = "bad offset"};
    for (int produce = 0; produce < 2; produce++) {
        struct bclient_policy_next n = answer(bad, produce, 4, 0);
        assert_int_equal(n.step, BCLIENT_FINISH);
        assert_false(n.target_leads);
        assert_false(n.drop_target);
    }
    /* A volume under its reserve: final too, not a 5xx to retry. */
    struct bclient_policy_answer full = {
        .status = 507, .json = true, .message = "disk low"};
    struct bclient_policy_next n = answer(full, true, 4, 0);
    assert_int_equal(n.step, BCLIENT_FINISH);
    assert_false(n.drop_target);
    assert_false(n.why_set);
}

static void test_bclient_policy_produce_200_finishes_and_learns(void **state)
{
    (void)state;
    struct bclient_policy_answer ok = {.status = 200, .json = true};
    struct bclient_policy_next n = answer(ok, true, 6, 0);
    assert_int_equal(n.step, BCLIENT_FINISH);
    assert_true(n.target_leads);
    /* A 200 with no JSON is no answer: 503, though the broker leads. */
    ok.json = false;
    n = answer(ok, true, 6, 0);
    assert_int_equal(n.step, BCLIENT_UNAVAILABLE);
    assert_true(n.target_leads);
    assert_string_equal(n.why, "broker 6 answered no JSON");
}

static void test_bclient_policy_read_200_must_be_final(void **state)
{
    (void)state;
    struct bclient_policy_answer a = {
        .status = 200, .json = true, .final = true};
    struct bclient_policy_next n = answer(a, false, 5, 0);
    assert_int_equal(n.step, BCLIENT_FINISH);
    assert_true(n.target_leads);
    /* Not final: follow a named leader, else the next replica. */
    a.final = false;
    a.named = 6;
    n = answer(a, false, 5, 0);
    assert_int_equal(n.step, BCLIENT_FOLLOW);
    assert_int_equal(n.follow, 6);
    assert_false(n.target_leads);
    assert_false(n.drop_target);
    assert_string_equal(n.why, "broker 5 answered without confirmed records");
    assert_int_equal(answer(a, false, 5, BCLIENT_POLICY_REDIRECTS).step,
                     BCLIENT_NEXT);
    a.named = 0;
    assert_int_equal(answer(a, false, 5, 0).step, BCLIENT_NEXT);
    /* No JSON at all: 503. */
    a.json = false;
    n = answer(a, false, 5, 0);
    assert_int_equal(n.step, BCLIENT_UNAVAILABLE);
    assert_false(n.target_leads);
}

static void test_bclient_policy_canceled_ends_with_503(void **state)
{
    (void)state;
    struct bclient_policy_answer a = {
        .canceled = true, .status = 200, .json = true, .final = true};
    struct bclient_policy_next n = answer(a, false, 5, 0);
    assert_int_equal(n.step, BCLIENT_UNAVAILABLE);
    assert_string_equal(n.why, "the manager is shutting down");
}

static void test_bclient_policy_fan_answer(void **state)
{
    (void)state;
    struct bclient_policy_next n;
    struct bclient_policy_answer a = {
        .status = 200, .json = true, .final = true};
    bclient_policy_fan_answer(&a, 4, false, &n);
    assert_int_equal(n.step, BCLIENT_FINISH);
    assert_true(n.target_leads);
    /* Only the first final answer goes to the caller, and none once the
     * manager closes. */
    bclient_policy_fan_answer(&a, 5, true, &n);
    assert_int_equal(n.step, BCLIENT_NEXT);
    a.canceled = true;
    bclient_policy_fan_answer(&a, 5, false, &n);
    assert_int_equal(n.step, BCLIENT_NEXT);
    /* A follower's answer names the leader. */
    struct bclient_policy_answer f = {
        .status = 421, .json = true, .named = 6, .message = "not leader"};
    bclient_policy_fan_answer(&f, 5, false, &n);
    assert_int_equal(n.step, BCLIENT_NEXT);
    assert_int_equal(n.follow, 6);
    assert_string_equal(n.why, "broker 5: 421 not leader");
    f.named = 5;
    bclient_policy_fan_answer(&f, 5, false, &n);
    assert_int_equal(n.follow, 0);
    /* Retention's 404 is final; a failure names nobody. */
    struct bclient_policy_answer r = {
        .status = 404, .json = true, .retention = true};
    bclient_policy_fan_answer(&r, 4, false, &n);
    assert_int_equal(n.step, BCLIENT_FINISH);
    struct bclient_policy_answer down = {.failed = "timed out", .named = 6};
    bclient_policy_fan_answer(&down, 4, false, &n);
    assert_int_equal(n.step, BCLIENT_NEXT);
    assert_int_equal(n.follow, 0);
    assert_string_equal(n.why, "broker 4: timed out");
}

static void test_bclient_policy_pauses_grow_to_a_tenth_of_a_second(void **state)
{
    (void)state;
    assert_int_equal(bclient_policy_pause_ms(0), 5);
    assert_int_equal(bclient_policy_pause_ms(1), 10);
    assert_int_equal(bclient_policy_pause_ms(2), 20);
    assert_int_equal(bclient_policy_pause_ms(4), 80);
    assert_int_equal(bclient_policy_pause_ms(5), 100);
    assert_int_equal(bclient_policy_pause_ms(6), 100);
    assert_int_equal(bclient_policy_pause_ms(100), 100);
    assert_int_equal(bclient_policy_pause_ms(~0u), 100);
    /* Ten tries take 5+10+20+40+80+5*100 ms: within the produce deadline
     * (10 s) a leader that stays away is asked about a hundred times. */
    unsigned total = 0;
    for (unsigned k = 0; k < 10; k++) {
        total += bclient_policy_pause_ms(k);
    }
    assert_int_equal(total, 655);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(
            test_bclient_policy_produce_asks_cached_leader_then_rotates),
        cmocka_unit_test(test_bclient_policy_named_leader_goes_first_once),
        cmocka_unit_test(test_bclient_policy_read_round),
        cmocka_unit_test(test_bclient_policy_421_follows_named_leader),
        cmocka_unit_test(test_bclient_policy_421_stops_following),
        cmocka_unit_test(test_bclient_policy_failure_and_503_try_again),
        cmocka_unit_test(
            test_bclient_policy_404_retention_ends_other_404_retries),
        cmocka_unit_test(test_bclient_policy_refusal_ends_the_call),
        cmocka_unit_test(test_bclient_policy_produce_200_finishes_and_learns),
        cmocka_unit_test(test_bclient_policy_read_200_must_be_final),
        cmocka_unit_test(test_bclient_policy_canceled_ends_with_503),
        cmocka_unit_test(test_bclient_policy_fan_answer),
        cmocka_unit_test(
            test_bclient_policy_pauses_grow_to_a_tenth_of_a_second),
    };
    return cmocka_run_group_tests_name("bclient_policy", tests, NULL, NULL);
}

/*
 * Unit tests of the consumer group rules: the assignment's balance and
 * stickiness for every member count from none to more members than
 * partitions, joins and leaves one at a time, random earlier states, the
 * fencing of commits, and session expiry with a new leader's grace.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "manager/cgroup_plan.h"
#include "unit_util.h"

#define MAX_P 64
#define MAX_M 80

static uint32_t count_of(const uint32_t *owner, uint32_t n, uint32_t m)
{
    uint32_t k = 0;
    for (uint32_t p = 0; p < n; p++) {
        k += owner[p] == m;
    }
    return k;
}

/* Every partition owned by a member, counts within one of each other. */
static void assert_balanced(const uint32_t *owner, uint32_t n_partitions,
                            uint32_t n_members)
{
    uint32_t lo = UINT32_MAX;
    uint32_t hi = 0;
    for (uint32_t p = 0; p < n_partitions; p++) {
        if (n_members == 0) {
            assert_int_equal(owner[p], CGROUP_PLAN_NONE);
        } else {
            assert_true(owner[p] < n_members);
        }
    }
    for (uint32_t m = 0; m < n_members; m++) {
        uint32_t k = count_of(owner, n_partitions, m);
        lo = k < lo ? k : lo;
        hi = k > hi ? k : hi;
    }
    if (n_members > 0) {
        assert_true(hi - lo <= 1);
        assert_int_equal(lo, n_partitions / n_members);
    }
}

/*
 * Sticky: a member keeps min(what it held, its share) of what it held,
 * and the members that held more got shares at least as large.
 */
static void assert_sticky(const uint32_t *prev, const uint32_t *next,
                          uint32_t n_partitions, uint32_t n_members)
{
    for (uint32_t m = 0; m < n_members; m++) {
        uint32_t held = 0;
        uint32_t kept = 0;
        for (uint32_t p = 0; p < n_partitions; p++) {
            held += prev[p] == m;
            kept += prev[p] == m && next[p] == m;
        }
        uint32_t share = count_of(next, n_partitions, m);
        assert_int_equal(kept, held < share ? held : share);
        for (uint32_t o = 0; o < n_members; o++) {
            if (held > count_of(prev, n_partitions, o)) {
                assert_true(share >= count_of(next, n_partitions, o));
            }
        }
    }
}

static void test_cgroup_plan_assign_every_member_count(void **state)
{
    (void)state;
    static const uint32_t sizes[] = {1, 2, 3, 12, 13, 64};
    uint32_t prev[MAX_P];
    uint32_t next[MAX_P];
    for (size_t i = 0; i < sizeof sizes / sizeof sizes[0]; i++) {
        uint32_t n = sizes[i];
        for (uint32_t m = 0; m <= n + 3 && m < MAX_M; m++) {
            for (uint32_t p = 0; p < n; p++) {
                prev[p] = CGROUP_PLAN_NONE;
            }
            assert_int_equal(cgroup_plan_assign(m, prev, n, next), 0);
            assert_balanced(next, n, m);
            /* Applying it again changes nothing. */
            uint32_t again[MAX_P];
            assert_int_equal(cgroup_plan_assign(m, next, n, again), 0);
            assert_memory_equal(again, next, n * sizeof *next);
        }
    }
}

static void test_cgroup_plan_assign_three_members_twelve(void **state)
{
    (void)state;
    uint32_t owner[12];
    for (uint32_t p = 0; p < 12; p++) {
        owner[p] = CGROUP_PLAN_NONE;
    }
    assert_int_equal(cgroup_plan_assign(3, owner, 12, owner), 0);
    for (uint32_t m = 0; m < 3; m++) {
        assert_int_equal(count_of(owner, 12, m), 4);
    }
}

/* Members join one at a time up to more than the partitions: each join
 * moves exactly the newcomer's share, taken from the others. */
static void test_cgroup_plan_join_moves_only_the_share(void **state)
{
    (void)state;
    uint32_t n = 12;
    uint32_t owner[MAX_P];
    uint32_t next[MAX_P];
    for (uint32_t p = 0; p < n; p++) {
        owner[p] = CGROUP_PLAN_NONE;
    }
    for (uint32_t m = 1; m <= n + 2; m++) {
        /* The newcomer is index m - 1: it held nothing. */
        assert_int_equal(cgroup_plan_assign(m, owner, n, next), 0);
        assert_balanced(next, n, m);
        assert_sticky(owner, next, n, m);
        uint32_t moved = 0;
        for (uint32_t p = 0; p < n; p++) {
            moved += next[p] != owner[p];
        }
        assert_int_equal(moved, count_of(next, n, m - 1));
        memcpy(owner, next, n * sizeof *owner);
    }
}

/* Members leave one at a time, from the middle of the order: only the
 * leaver's partitions move. */
static void test_cgroup_plan_leave_moves_only_the_leavers(void **state)
{
    (void)state;
    for (uint32_t n = 1; n <= 13; n++) {
        uint32_t members = n + 2;
        uint32_t owner[MAX_P];
        uint32_t next[MAX_P];
        for (uint32_t p = 0; p < n; p++) {
            owner[p] = CGROUP_PLAN_NONE;
        }
        assert_int_equal(cgroup_plan_assign(members, owner, n, owner), 0);
        while (members > 1) {
            uint32_t gone = members / 2;
            /* The caller's view after the leave: the leaver's partitions
             * have no owner, later members' indices shift down. */
            uint32_t prev[MAX_P];
            for (uint32_t p = 0; p < n; p++) {
                prev[p] = owner[p] == gone  ? CGROUP_PLAN_NONE
                          : owner[p] > gone ? owner[p] - 1
                                            : owner[p];
            }
            members--;
            assert_int_equal(cgroup_plan_assign(members, prev, n, next), 0);
            assert_balanced(next, n, members);
            for (uint32_t p = 0; p < n; p++) {
                if (prev[p] != CGROUP_PLAN_NONE) {
                    assert_int_equal(next[p], prev[p]);
                }
            }
            memcpy(owner, next, n * sizeof *owner);
        }
    }
}

/* Any earlier state, however unbalanced or stale: balanced and sticky. */
static void test_cgroup_plan_assign_random_states(void **state)
{
    (void)state;
    uint64_t seed = 0x9e3779b97f4a7c15ULL;
    uint32_t prev[MAX_P];
    uint32_t next[MAX_P];
    for (int round = 0; round < 5000; round++) {
        uint32_t n = 1 + (uint32_t)(xorshift64star(&seed) % MAX_P);
        uint32_t m = (uint32_t)(xorshift64star(&seed) % (MAX_M + 1));
        for (uint32_t p = 0; p < n; p++) {
            uint64_t r = xorshift64star(&seed) % (m + 3);
            /* Owners, none, and indices past the members (stale). */
            prev[p] = r == m ? CGROUP_PLAN_NONE : (uint32_t)r;
        }
        assert_int_equal(cgroup_plan_assign(m, prev, n, next), 0);
        assert_balanced(next, n, m);
        assert_sticky(prev, next, n, m);
        /* In place gives the same. */
        assert_int_equal(cgroup_plan_assign(m, prev, n, prev), 0);
        assert_memory_equal(prev, next, n * sizeof *next);
    }
}

static void test_cgroup_plan_commit_fencing(void **state)
{
    (void)state;
    const uint32_t owner[4] = {0, 1, 0, CGROUP_PLAN_NONE};
    char why[128];
    const uint32_t mine[2] = {0, 2};
    const uint32_t theirs[2] = {0, 1};
    const uint32_t unowned[1] = {3};
    const uint32_t beyond[1] = {4};

    assert_int_equal(
        cgroup_plan_commit_check(0, 7, 7, owner, 4, mine, 2, why, sizeof why),
        0);
    assert_int_equal(
        cgroup_plan_commit_check(0, 7, 7, owner, 4, NULL, 0, why, sizeof why),
        0);
    assert_int_equal(cgroup_plan_commit_check(CGROUP_PLAN_NONE, 7, 7, owner, 4,
                                              mine, 2, why, sizeof why),
                     CGROUP_PLAN_FENCED);
    assert_string_equal(why, "the member is not in the group");
    assert_int_equal(
        cgroup_plan_commit_check(0, 6, 7, owner, 4, mine, 2, why, sizeof why),
        CGROUP_PLAN_FENCED);
    assert_string_equal(why,
                        "generation 6 is not the group's current generation 7");
    assert_int_equal(
        cgroup_plan_commit_check(0, 7, 7, owner, 4, theirs, 2, why, sizeof why),
        CGROUP_PLAN_FENCED);
    assert_string_equal(why, "partition 1 is not assigned to the member");
    assert_int_equal(cgroup_plan_commit_check(0, 7, 7, owner, 4, unowned, 1,
                                              why, sizeof why),
                     CGROUP_PLAN_FENCED);
    assert_int_equal(
        cgroup_plan_commit_check(0, 7, 7, owner, 4, beyond, 1, why, sizeof why),
        CGROUP_PLAN_FENCED);
    assert_string_equal(why, "partition 4 is not in the topic");
}

static void test_cgroup_plan_expiry(void **state)
{
    (void)state;
    const struct cgroup_plan_session s[4] = {
        {.last_ms = 1000, .session_ms = 500},  /* Due at 1500. */
        {.last_ms = 1400, .session_ms = 500},  /* Due at 1900. */
        {.last_ms = 0, .session_ms = 10000},   /* Due at since + 10000. */
        {.last_ms = 2000, .session_ms = 1000}, /* Heard after now. */
    };
    uint32_t out[4];

    assert_int_equal(cgroup_plan_expired(s, 4, 1499, 0, out), 0);
    assert_int_equal(cgroup_plan_expired(s, 4, 1500, 0, out), 1);
    assert_int_equal(out[0], 0);
    assert_int_equal(cgroup_plan_expired(s, 4, 9999, 0, out), 3);
    assert_int_equal(out[0], 0);
    assert_int_equal(out[1], 1);
    assert_int_equal(out[2], 3);
    assert_int_equal(cgroup_plan_expired(s, 4, 10000, 0, out), 4);
    /* A leader since 1800 gives every session a full length from then. */
    assert_int_equal(cgroup_plan_expired(s, 4, 2299, 1800, out), 0);
    assert_int_equal(cgroup_plan_expired(s, 4, 2300, 1800, out), 2);
    assert_int_equal(out[0], 0);
    assert_int_equal(out[1], 1);
    assert_int_equal(cgroup_plan_expired(s, 4, 11799, 1800, out), 3);
    assert_int_equal(cgroup_plan_expired(s, 4, 11800, 1800, out), 4);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_cgroup_plan_assign_every_member_count),
        cmocka_unit_test(test_cgroup_plan_assign_three_members_twelve),
        cmocka_unit_test(test_cgroup_plan_join_moves_only_the_share),
        cmocka_unit_test(test_cgroup_plan_leave_moves_only_the_leavers),
        cmocka_unit_test(test_cgroup_plan_assign_random_states),
        cmocka_unit_test(test_cgroup_plan_commit_fencing),
        cmocka_unit_test(test_cgroup_plan_expiry),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}

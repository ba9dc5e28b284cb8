/*
 * Unit tests of the broker's Raft log memory budget: how it is shared
 * among replicas (floor, caps, the trailing part), which replica is
 * compacted and how (idle or not, leader or follower, over its share or
 * not, anything to gain or not), and that no replica is compacted again
 * and again, whatever its compactions achieve.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include "broker/logbudget.h"

#define MIB (UINT64_C(1) << 20)
#define CAP_MEMORY (32 * MIB)
#define CAP_TRAILING (4 * MIB)
#define CHECK_MS 2000

static void test_logbudget_share_divides_with_floor_and_caps(void **state)
{
    (void)state;
    struct logbudget_share s;

    /* 512 MiB over 100 replicas: 5 MiB each, an eighth trailing. */
    s = logbudget_share(512 * MIB, 100, CAP_MEMORY, CAP_TRAILING);
    assert_int_equal(s.trailing_bytes, 512 * MIB / 100 / 8);
    assert_int_equal(s.memory_bytes, 512 * MIB / 100 - 512 * MIB / 100 / 8);
    /* Over 12: the per-replica caps. */
    s = logbudget_share(512 * MIB, 12, CAP_MEMORY, CAP_TRAILING);
    assert_int_equal(s.memory_bytes, CAP_MEMORY);
    assert_int_equal(s.trailing_bytes, CAP_TRAILING);
    /* Over 1,000: the floor. */
    s = logbudget_share(512 * MIB, 1000, CAP_MEMORY, CAP_TRAILING);
    assert_int_equal(s.memory_bytes + s.trailing_bytes, LOGBUDGET_FLOOR);
    assert_int_equal(s.trailing_bytes, LOGBUDGET_FLOOR / 8);
    /* No replica yet: the whole budget (capped). */
    s = logbudget_share(2 * MIB, 0, CAP_MEMORY, CAP_TRAILING);
    assert_int_equal(s.memory_bytes + s.trailing_bytes, 2 * MIB);
    /* Off: the caps, whatever the count. */
    s = logbudget_share(0, 100, CAP_MEMORY, CAP_TRAILING);
    assert_int_equal(s.memory_bytes, CAP_MEMORY);
    assert_int_equal(s.trailing_bytes, CAP_TRAILING);
}

static void test_logbudget_shares_add_up_to_the_budget(void **state)
{
    (void)state;
    const uint64_t total = 64 * MIB;
    for (size_t n = 1; n <= 2000; n++) {
        struct logbudget_share s =
            logbudget_share(total, n, CAP_MEMORY, CAP_TRAILING);
        uint64_t each = s.memory_bytes + s.trailing_bytes;
        /* Within the budget in all, or at the floor. */
        assert_true(each * n <= total || each == LOGBUDGET_FLOOR);
        assert_true(each >= LOGBUDGET_FLOOR);
        assert_true(s.memory_bytes <= CAP_MEMORY);
        assert_true(s.trailing_bytes <= CAP_TRAILING);
        /* Nothing wasted but rounding, below the caps. */
        assert_true(each * n + n > total || each == LOGBUDGET_FLOOR ||
                    s.memory_bytes == CAP_MEMORY);
    }
}

/* A replica holding 40 entries of 1 MiB, 4 of them trailing, that has
 * applied everything. */
static struct logbudget_view holding(bool leader)
{
    struct logbudget_view v = {
        .bytes = 40 * MIB,
        .entries = 40,
        .trailing = 4,
        .last_index = 100,
        .applied = 100,
        .leader = leader,
    };
    return v;
}

static void test_logbudget_decide_cases(void **state)
{
    (void)state;
    struct logbudget_view v;
    struct logbudget_state s;

    /* The first check only learns the last index: not known to be idle. */
    v = holding(true);
    s = (struct logbudget_state){0};
    assert_int_equal(logbudget_decide(&v, &s, 8 * MIB, 0), LOGBUDGET_NONE);
    assert_int_equal(s.last_index, 100);
    /* Idle leader over its share: a barrier. */
    assert_int_equal(logbudget_decide(&v, &s, 8 * MIB, CHECK_MS),
                     LOGBUDGET_BARRIER);
    /* Idle follower over its share: lower the threshold only. */
    v = holding(false);
    s = (struct logbudget_state){.last_index = 100};
    assert_int_equal(logbudget_decide(&v, &s, 8 * MIB, 0), LOGBUDGET_LOWER);

    /* Within its share. */
    v = holding(true);
    s = (struct logbudget_state){.last_index = 100};
    assert_int_equal(logbudget_decide(&v, &s, 40 * MIB, 0), LOGBUDGET_NONE);
    /* Busy: the last index moved, or entries wait to be applied. */
    v.last_index = 101;
    v.applied = 101;
    assert_int_equal(logbudget_decide(&v, &s, 8 * MIB, 0), LOGBUDGET_NONE);
    assert_int_equal(s.last_index, 101);
    v.last_index = 101;
    v.applied = 99;
    assert_int_equal(logbudget_decide(&v, &s, 8 * MIB, 0), LOGBUDGET_NONE);
    /* A compaction under way. */
    v = holding(true);
    v.compacting = true;
    s = (struct logbudget_state){.last_index = 100};
    assert_int_equal(logbudget_decide(&v, &s, 8 * MIB, 0), LOGBUDGET_NONE);
    /* Nothing to gain: only the trailing entries and one more. */
    v = holding(false);
    v.entries = 5;
    v.bytes = 80 * MIB; /* Huge entries. */
    s = (struct logbudget_state){.last_index = 100};
    assert_int_equal(logbudget_decide(&v, &s, 8 * MIB, 0), LOGBUDGET_NONE);
    v.entries = 6;
    assert_int_equal(logbudget_decide(&v, &s, 8 * MIB, 0), LOGBUDGET_LOWER);
    /* A leader within the interval of its last barrier. */
    v = holding(true);
    s = (struct logbudget_state){.last_index = 100};
    logbudget_barrier_sent(&s, 1000);
    assert_int_equal(logbudget_decide(&v, &s, 8 * MIB, 1000), LOGBUDGET_NONE);
    assert_int_equal(
        logbudget_decide(&v, &s, 8 * MIB, 1000 + LOGBUDGET_INTERVAL_MS - 1),
        LOGBUDGET_NONE);
    assert_int_equal(
        logbudget_decide(&v, &s, 8 * MIB, 1000 + LOGBUDGET_INTERVAL_MS),
        LOGBUDGET_BARRIER);
}

/*
 * Ten minutes of checks every 2 s on an idle leader over its share,
 * carrying every decision out, with three outcomes of a barrier: it works
 * (the log keeps its trailing entries), it frees nothing (the snapshot
 * could not start), or it is at the floor from the start. Returns how
 * many barriers were sent.
 */
enum outcome { WORKS, FREES_NOTHING, AT_FLOOR };

static unsigned simulate(enum outcome how)
{
    struct logbudget_view v = holding(true);
    struct logbudget_state s = {0};
    const uint64_t budget = 8 * MIB;
    unsigned barriers = 0;
    if (how == AT_FLOOR) {
        v.entries = v.trailing + 1;
        v.bytes = v.entries * 16 * MIB;
    }
    for (uint64_t now = 0; now < 600000; now += CHECK_MS) {
        enum logbudget_action a = logbudget_decide(&v, &s, budget, now);
        assert_int_not_equal(a, LOGBUDGET_LOWER); /* It leads. */
        if (a != LOGBUDGET_BARRIER) {
            continue;
        }
        barriers++;
        logbudget_barrier_sent(&s, now);
        /* The barrier is an entry: the log moves on by one. */
        v.last_index++;
        v.applied++;
        if (how == WORKS) {
            v.entries = v.trailing;
            v.bytes = v.entries * MIB;
        } else {
            v.entries++;
            v.bytes += 64;
        }
    }
    return barriers;
}

static void test_logbudget_never_compacts_again_and_again(void **state)
{
    (void)state;
    assert_int_equal(simulate(WORKS), 1);
    assert_int_equal(simulate(AT_FLOOR), 0);
    /* A barrier that frees nothing is tried again, once an interval. */
    unsigned n = simulate(FREES_NOTHING);
    assert_true(n >= 2);
    assert_true(n <= 600000 / LOGBUDGET_INTERVAL_MS);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_logbudget_share_divides_with_floor_and_caps),
        cmocka_unit_test(test_logbudget_shares_add_up_to_the_budget),
        cmocka_unit_test(test_logbudget_decide_cases),
        cmocka_unit_test(test_logbudget_never_compacts_again_and_again),
    };
    return cmocka_run_group_tests_name("logbudget", tests, NULL, NULL);
}

/*
 * Unit tests of the byte-based sizing of libraft's snapshot threshold and
 * trailing count: the sizing rule and its clamps, the moving average, and
 * that the memory the counts allow stays near the budgets whatever the
 * entry size.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include "rq_logmem.h"

#define MIB (UINT64_C(1) << 20)

static const struct rq_logmem_config broker_like = {
    .memory_bytes = 32 * MIB,
    .trailing_bytes = 4 * MIB,
    .max_threshold = 4096,
    .max_trailing = 128,
};

static void test_logmem_entries_rule_and_clamps(void **state)
{
    (void)state;
    /* Nothing known yet: the entry-count bound. */
    assert_int_equal(rq_logmem_entries(32 * MIB, 0, 8, 4096), 4096);
    /* In range: how many fit. */
    assert_int_equal(rq_logmem_entries(32 * MIB, MIB, 8, 4096), 32);
    assert_int_equal(rq_logmem_entries(32 * MIB, MIB + 1, 8, 4096), 31);
    assert_int_equal(rq_logmem_entries(1000, 10, 1, 4096), 100);
    /* Clamped below and above. */
    assert_int_equal(rq_logmem_entries(32 * MIB, 16 * MIB, 8, 4096), 8);
    assert_int_equal(rq_logmem_entries(32 * MIB, 1, 8, 4096), 4096);
    assert_int_equal(rq_logmem_entries(0, 100, 8, 4096), 8);
    /* The upper bound wins over the lower one. */
    assert_int_equal(rq_logmem_entries(32 * MIB, 16 * MIB, 8, 4), 4);
    assert_int_equal(rq_logmem_entries(32 * MIB, 0, 8, 4), 4);
    /* Huge budgets do not wrap. */
    assert_int_equal(rq_logmem_entries(UINT64_MAX, 1, 8, UINT32_MAX),
                     UINT32_MAX);
}

static void test_logmem_starts_at_the_entry_bounds(void **state)
{
    (void)state;
    struct rq_logmem m;
    rq_logmem_init(&m, &broker_like);
    assert_int_equal(m.threshold, 4096);
    assert_int_equal(m.trailing, 128);
    assert_int_equal(rq_logmem_average(&m), 0);
}

static void test_logmem_uniform_entries(void **state)
{
    (void)state;
    struct rq_logmem m;

    /* Batches of a thousand 1 KiB records: about 1 MiB each. */
    rq_logmem_init(&m, &broker_like);
    size_t big = MIB - RQ_LOGMEM_ENTRY_OVERHEAD;
    assert_true(rq_logmem_add(&m, big));
    assert_int_equal(rq_logmem_average(&m), MIB);
    assert_int_equal(m.threshold, 32);
    assert_int_equal(m.trailing, 4);
    assert_false(rq_logmem_add(&m, big)); /* Nothing moved. */

    /* Single small records: the entry-count bounds hold. */
    rq_logmem_init(&m, &broker_like);
    for (int i = 0; i < 100; i++) {
        rq_logmem_add(&m, 1100);
    }
    assert_int_equal(m.threshold, 4096);
    assert_int_equal(m.trailing, 128);

    /* Middling entries: in between, both from the budgets. */
    rq_logmem_init(&m, &broker_like);
    for (int i = 0; i < 100; i++) {
        rq_logmem_add(&m, 64 * 1024 - RQ_LOGMEM_ENTRY_OVERHEAD);
    }
    assert_int_equal(m.threshold, 512);
    assert_int_equal(m.trailing, 64);

    /* Batches of 16 MiB: the minimums. */
    rq_logmem_init(&m, &broker_like);
    rq_logmem_add(&m, 16 * MIB);
    assert_int_equal(m.threshold, RQ_LOGMEM_MIN_THRESHOLD);
    assert_int_equal(m.trailing, RQ_LOGMEM_MIN_TRAILING);
}

static void test_logmem_follows_a_change_of_size(void **state)
{
    (void)state;
    struct rq_logmem m;
    rq_logmem_init(&m, &broker_like);
    for (int i = 0; i < 50; i++) {
        rq_logmem_add(&m, 1000);
    }
    assert_int_equal(m.threshold, 4096);
    /* The producer switches to 1 MiB batches: the threshold falls below
     * the number of entries seen since at once, so the next apply takes a
     * snapshot, and reaches the budget's count within a few dozen. */
    rq_logmem_add(&m, MIB - RQ_LOGMEM_ENTRY_OVERHEAD);
    assert_true(m.threshold < 300);
    int n = 1;
    while (m.threshold != 32) {
        rq_logmem_add(&m, MIB - RQ_LOGMEM_ENTRY_OVERHEAD);
        n++;
        assert_true(n < 100);
    }
    /* And back to small entries: the threshold climbs back to its bound. */
    n = 0;
    while (m.threshold != 4096) {
        rq_logmem_add(&m, 1000);
        n++;
        assert_true(n < 200);
    }
    assert_int_equal(m.trailing, 128);
}

static void test_logmem_bounds_memory_for_any_size(void **state)
{
    (void)state;
    /* For entry sizes from 8 bytes to 64 MiB, what the counts let libraft
     * hold since the last snapshot, and behind it, is within each budget,
     * or the minimum count of entries when that alone exceeds it. */
    for (uint64_t size = 8; size <= 64 * MIB; size *= 2) {
        struct rq_logmem m;
        rq_logmem_init(&m, &broker_like);
        for (int i = 0; i < 64; i++) {
            rq_logmem_add(&m, (size_t)size);
        }
        uint64_t each = size + RQ_LOGMEM_ENTRY_OVERHEAD;
        uint64_t min_since = RQ_LOGMEM_MIN_THRESHOLD * each;
        uint64_t min_behind = RQ_LOGMEM_MIN_TRAILING * each;
        uint64_t since = m.threshold * each;
        uint64_t behind = m.trailing * each;
        uint64_t both = broker_like.memory_bytes + broker_like.trailing_bytes;
        assert_true(since <= broker_like.memory_bytes || since == min_since);
        assert_true(behind <= broker_like.trailing_bytes ||
                    behind == min_behind);
        /* Both together fit both budgets, unless the minimums alone do
         * not. */
        assert_true(since + behind <= both || since == min_since);
        /* And the budgets are used: no more than one entry short, unless
         * the entry-count bound holds first. */
        assert_true(since + each > broker_like.memory_bytes ||
                    since + behind + each > both ||
                    m.threshold == broker_like.max_threshold);
        assert_true(behind + each > broker_like.trailing_bytes ||
                    m.trailing == broker_like.max_trailing);
    }
}

static void test_logmem_trailing_minimum_takes_room_from_threshold(void **state)
{
    (void)state;
    struct rq_logmem m;
    rq_logmem_init(&m, &broker_like);
    /* 4 MiB entries: one would fill the trailing budget, but two are kept,
     * so the threshold gives up one of its eight. */
    rq_logmem_add(&m, 4 * MIB - RQ_LOGMEM_ENTRY_OVERHEAD);
    assert_int_equal(m.trailing, RQ_LOGMEM_MIN_TRAILING);
    assert_int_equal(m.threshold, 7);
}

static void test_logmem_budget_moves(void **state)
{
    (void)state;
    struct rq_logmem m;
    rq_logmem_init(&m, &broker_like);
    /* Before any entry the counts stay at their bounds. */
    assert_false(rq_logmem_set_budget(&m, MIB, 128 * 1024));
    assert_int_equal(m.threshold, 4096);
    assert_int_equal(m.trailing, 128);
    assert_false(rq_logmem_set_budget(&m, 32 * MIB, 4 * MIB));

    /* 1 MiB entries under the broker's per-replica budget. */
    for (int i = 0; i < 16; i++) {
        rq_logmem_add(&m, MIB - RQ_LOGMEM_ENTRY_OVERHEAD);
    }
    assert_int_equal(m.threshold, 32);
    assert_int_equal(m.trailing, 4);
    /* The share shrinks to 4 MiB (an eighth trailing): two entries behind
     * (the minimum) leave room for two since the snapshot. */
    assert_true(rq_logmem_set_budget(&m, 4 * MIB - 512 * 1024, 512 * 1024));
    assert_int_equal(m.threshold, 2);
    assert_int_equal(m.trailing, 2);
    assert_false(rq_logmem_set_budget(&m, 4 * MIB - 512 * 1024, 512 * 1024));
    /* No budget at all: the minimums. */
    rq_logmem_set_budget(&m, 0, 0);
    assert_int_equal(m.threshold, RQ_LOGMEM_MIN_THRESHOLD);
    assert_int_equal(m.trailing, RQ_LOGMEM_MIN_TRAILING);
    /* And back. */
    assert_true(rq_logmem_set_budget(&m, 32 * MIB, 4 * MIB));
    assert_int_equal(m.threshold, 32);
    assert_int_equal(m.trailing, 4);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_logmem_entries_rule_and_clamps),
        cmocka_unit_test(test_logmem_starts_at_the_entry_bounds),
        cmocka_unit_test(test_logmem_uniform_entries),
        cmocka_unit_test(test_logmem_follows_a_change_of_size),
        cmocka_unit_test(test_logmem_bounds_memory_for_any_size),
        cmocka_unit_test(
            test_logmem_trailing_minimum_takes_room_from_threshold),
        cmocka_unit_test(test_logmem_budget_moves),
    };
    return cmocka_run_group_tests_name("logmem", tests, NULL, NULL);
}

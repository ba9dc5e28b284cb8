/*
 * Unit tests of the broker's Raft log memory budget: how it is shared
 * among replicas (floor, caps, the trailing part).
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

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_logbudget_share_divides_with_floor_and_caps),
        cmocka_unit_test(test_logbudget_shares_add_up_to_the_budget),
    };
    return cmocka_run_group_tests_name("logbudget", tests, NULL, NULL);
}

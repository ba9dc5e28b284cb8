/*
 * Unit tests of a broker's data-volume rules (broker/disk.h): the reserve,
 * when a volume is low, and the retention each replica's share allows.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include "broker/disk.h"

#define MIB (1ull << 20)
#define GIB (1ull << 30)

static void test_disk_reserve(void **state)
{
    (void)state;
    assert_true(disk_reserve(123, 10 * GIB) == 123); /* Configured. */
    assert_true(disk_reserve(0, 20 * GIB) == GIB);   /* 5%. */
    assert_true(disk_reserve(0, 4 * GIB) == 4 * GIB / 20);
    assert_true(disk_reserve(0, 100 * GIB) == DISK_RESERVE_MAX);
    assert_true(disk_reserve(0, GIB) == DISK_RESERVE_MIN);
    /* A small volume keeps most of itself usable. */
    assert_true(disk_reserve(0, 128 * MIB) == 32 * MIB);
    assert_true(disk_reserve(0, 0) == 0);
}

/* Low under the reserve; back only a quarter of it above. */
static void test_disk_low_has_hysteresis(void **state)
{
    (void)state;
    struct disk_state s = {0};
    const uint64_t r = 100 * MIB;
    assert_false(disk_update(&s, r, 10 * GIB, 5 * GIB));
    assert_false(s.low);
    assert_true(s.reserve == r);
    assert_true(disk_update(&s, r, 10 * GIB, r - 1));
    assert_true(s.low);
    assert_false(disk_update(&s, r, 10 * GIB, r));
    assert_false(disk_update(&s, r, 10 * GIB, r + r / 4 - 1));
    assert_true(s.low);
    assert_true(disk_update(&s, r, 10 * GIB, r + r / 4));
    assert_false(s.low);
    assert_false(disk_update(&s, r, 10 * GIB, r));
    assert_false(s.low);
}

static void test_disk_retention_share(void **state)
{
    (void)state;
    struct disk_state s = {0};
    /* Not read yet: the configured value. */
    assert_true(disk_retention_share(GIB, &s, 10, 0) == GIB);
    disk_update(&s, 0, 20 * GIB, 20 * GIB);
    assert_true(disk_retention_share(GIB, &s, 10, 0) == GIB);
    assert_true(disk_retention_share(GIB, &s, 40, 0) == 18 * GIB / 40);
    assert_true(disk_retention_share(GIB, &s, 0, 0) == GIB);
    /* Never under the floor, never over the configured value. */
    assert_true(disk_retention_share(GIB, &s, 100000, 0) == DISK_SHARE_MIN);
    assert_true(disk_retention_share(MIB, &s, 100000, 0) == MIB);
    /* What a replica's Raft log may hold comes off its share. */
    assert_true(disk_retention_share(GIB, &s, 40, 20 * MIB) ==
                18 * GIB / 40 - 20 * MIB);
    assert_true(disk_retention_share(GIB, &s, 40, GIB) == DISK_SHARE_MIN);
    /* Retention every tick once under twice the reserve. */
    assert_false(disk_tight(&s));
    disk_update(&s, 0, 20 * GIB, 2 * GIB);
    assert_false(disk_tight(&s));
    disk_update(&s, 0, 20 * GIB, 2 * GIB - 1);
    assert_true(disk_tight(&s));
    struct disk_state unread = {0};
    assert_false(disk_tight(&unread));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_disk_reserve),
        cmocka_unit_test(test_disk_low_has_hysteresis),
        cmocka_unit_test(test_disk_retention_share),
    };
    return cmocka_run_group_tests_name("disk", tests, NULL, NULL);
}

/*
 * Unit tests of rq_raftcrc (rq_raftcrc.h): the checksum libraft writes
 * into its segments, computed eight bytes at a time, equals libraft's own
 * byte-at-a-time function (reached as __real_byteCrc32 because every
 * binary is linked with --wrap=byteCrc32) for every length up to past a
 * few blocks, every alignment of the start, and chained calls; and it has
 * the published check value of its parameters (CRC-32/MPEG-2).
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "shared/rq_raftcrc.h"

/* libraft's own function, which the link renames. */
unsigned __real_byteCrc32(const void *buf, size_t size, unsigned init);

static uint8_t data[4096 + 8];

static int setup(void **state)
{
    (void)state;
    uint64_t x = 0x9e3779b97f4a7c15u;
    for (size_t i = 0; i < sizeof data; i++) {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        data[i] = (uint8_t)x;
    }
    return 0;
}

static void test_raftcrc_check_value(void **state)
{
    (void)state;
    /* CRC-32/MPEG-2: init 0xffffffff, no reflection, no final xor. */
    assert_int_equal(rq_raftcrc("123456789", 9, 0xffffffffu), 0x0376e6e7u);
    assert_int_equal(rq_raftcrc("", 0, 0x12345678u), 0x12345678u);
}

static void test_raftcrc_equals_libraft_every_length_and_alignment(void **state)
{
    (void)state;
    for (size_t align = 0; align < 8; align++) {
        for (size_t len = 0; len <= 300; len++) {
            const uint8_t *p = data + align;
            unsigned init = (unsigned)(len * 2654435761u);
            assert_int_equal(rq_raftcrc(p, len, init),
                             __real_byteCrc32(p, len, init));
            assert_int_equal(rq_raftcrc(p, len, 0),
                             __real_byteCrc32(p, len, 0));
        }
    }
    assert_int_equal(rq_raftcrc(data, 4096, 0),
                     __real_byteCrc32(data, 4096, 0));
}

static void test_raftcrc_chains_like_libraft(void **state)
{
    (void)state;
    /* libraft checksums a batch's entries one after another, each call
     * continuing from the last: any split gives the whole's value. */
    uint32_t whole = __real_byteCrc32(data, 1000, 0);
    for (size_t cut = 0; cut <= 1000; cut += 37) {
        uint32_t crc = rq_raftcrc(data, cut, 0);
        assert_int_equal(rq_raftcrc(data + cut, 1000 - cut, crc), whole);
    }
}

static void test_raftcrc_wrap_equals_libraft(void **state)
{
    (void)state;
    assert_int_equal(__wrap_byteCrc32(data, 777, 5),
                     __real_byteCrc32(data, 777, 5));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_raftcrc_check_value),
        cmocka_unit_test(
            test_raftcrc_equals_libraft_every_length_and_alignment),
        cmocka_unit_test(test_raftcrc_chains_like_libraft),
        cmocka_unit_test(test_raftcrc_wrap_equals_libraft),
    };
    return cmocka_run_group_tests_name("raftcrc", tests, setup, NULL);
}

/*
 * Unit tests of the id map: basic operations, and a long random sequence of
 * inserts and removals checked against a plain array. Also pins the id hash
 * the map (and the ledger and partition tables) place ids with.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "rq_err.h"
#include "rq_hash.h"
#include "rq_idmap.h"

#include "unit_util.h"

static void test_idmap_put_get_del(void **state)
{
    (void)state;
    struct rq_idmap m;
    int a, b;

    rq_idmap_init(&m);
    assert_null(rq_idmap_get(&m, 7));
    assert_null(rq_idmap_del(&m, 7));
    assert_int_equal(rq_idmap_put(&m, 7, &a), 0);
    assert_int_equal(rq_idmap_put(&m, 0, &b), 0);
    assert_int_equal(rq_idmap_put(&m, 7, &b), RQ_EXISTS);
    assert_ptr_equal(rq_idmap_get(&m, 7), &a);
    assert_ptr_equal(rq_idmap_get(&m, 0), &b);
    assert_int_equal(m.count, 2);
    assert_ptr_equal(rq_idmap_del(&m, 7), &a);
    assert_null(rq_idmap_get(&m, 7));
    assert_int_equal(m.count, 1);
    rq_idmap_close(&m);
    rq_idmap_close(&m); /* Closing twice is harmless. */
}

static void test_idmap_random_ops_match_reference(void **state)
{
    (void)state;
    enum { KEYS = 3000, OPS = 200000 };
    static char present[KEYS];
    static char values[KEYS];
    struct rq_idmap m;
    uint64_t seed = 12345;
    size_t count = 0;

    memset(present, 0, sizeof present);
    rq_idmap_init(&m);
    for (int op = 0; op < OPS; op++) {
        /* Keys far apart and close together, so runs collide and wrap. */
        uint64_t r = xorshift64(&seed);
        size_t k = (size_t)(r % KEYS);
        uint64_t key = (k % 2 == 0) ? k : k * 0x100000001ull;
        if ((r >> 32) % 3 != 0) {
            int rv = rq_idmap_put(&m, key, &values[k]);
            assert_int_equal(rv, present[k] ? RQ_EXISTS : 0);
            if (!present[k]) {
                present[k] = 1;
                count++;
            }
        } else {
            void *v = rq_idmap_del(&m, key);
            assert_ptr_equal(v, present[k] ? &values[k] : NULL);
            if (present[k]) {
                present[k] = 0;
                count--;
            }
        }
        assert_int_equal(m.count, count);
    }
    for (size_t k = 0; k < KEYS; k++) {
        uint64_t key = (k % 2 == 0) ? k : k * 0x100000001ull;
        assert_ptr_equal(rq_idmap_get(&m, key), present[k] ? &values[k] : NULL);
    }
    rq_idmap_close(&m);
}

/* Replicas must place ids alike (it shows in snapshot bytes), so the hash
 * is pinned: these are the splitmix64 finaliser's values. */
static void test_hash_u64_is_fixed(void **state)
{
    (void)state;
    assert_true(rq_hash_u64(0) == 0);
    assert_true(rq_hash_u64(1) == 0x5692161d100b05e5ull);
    assert_true(rq_hash_u64(2) == 0xdbd238973a2b148aull);
    assert_true(rq_hash_u64(UINT64_MAX) == 0xb4d055fcf2cbbd7bull);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_idmap_put_get_del),
        cmocka_unit_test(test_idmap_random_ops_match_reference),
        cmocka_unit_test(test_hash_u64_is_fixed),
    };
    return cmocka_run_group_tests_name("idmap", tests, NULL, NULL);
}

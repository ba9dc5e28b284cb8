/*
 * Unit tests of the deduplication table (shared/rq_dedupe.h): lookups,
 * eviction of the least recently used against a plain model, values kept
 * beside entries, snapshots walked by id and loaded back with their clock
 * values checked.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "rq_dedupe.h"
#include "rq_err.h"

#include "unit_util.h"

#define MAX 64

struct value {
    uint64_t base;
    uint32_t count;
};

static int setup(void **state)
{
    struct rq_dedupe *t = malloc(sizeof *t);
    assert_non_null(t);
    rq_dedupe_init(t, MAX, sizeof(struct value));
    *state = t;
    return 0;
}

static int teardown(void **state)
{
    rq_dedupe_close(*state);
    free(*state);
    return 0;
}

static struct rq_dedupe_entry *put(struct rq_dedupe *t, uint64_t id,
                                   uint64_t seq)
{
    assert_int_equal(rq_dedupe_reserve(t, rq_dedupe_count(t) + 1), 0);
    return rq_dedupe_put(t, id, seq);
}

static void test_rq_dedupe_find_and_put(void **state)
{
    struct rq_dedupe *t = *state;
    assert_null(rq_dedupe_find(t, 7));
    struct rq_dedupe_entry *e = put(t, 7, 3);
    struct value *v = rq_dedupe_value(e);
    assert_int_equal(v->base, 0); /* A new entry's value is zeroed. */
    v->base = 100;
    v->count = 2;
    e = rq_dedupe_find(t, 7);
    assert_non_null(e);
    assert_int_equal(e->id, 7);
    assert_int_equal(e->seq, 3);
    assert_int_equal(e->last_used, 1);
    assert_int_equal(((struct value *)rq_dedupe_value(e))->base, 100);
    /* A later seq of the same id keeps its value for the caller to set. */
    e = put(t, 7, 4);
    assert_int_equal(e->seq, 4);
    assert_int_equal(e->last_used, 2);
    assert_int_equal(((struct value *)rq_dedupe_value(e))->count, 2);
    assert_int_equal(rq_dedupe_count(t), 1);
    assert_int_equal(rq_dedupe_ops(t), 2);
    /* Id 0 is an id like any other. */
    put(t, 0, 1);
    assert_non_null(rq_dedupe_find(t, 0));
    assert_int_equal(rq_dedupe_count(t), 2);
}

/* A full table forgets the least recently put id, not the oldest one. */
static void test_rq_dedupe_evicts_least_recently_used(void **state)
{
    struct rq_dedupe *t = *state;
    for (uint64_t id = 1; id <= MAX; id++) {
        put(t, id, 1);
    }
    put(t, 1, 2); /* 1 is now the most recently used; 2 the least. */
    struct value *v = rq_dedupe_value(put(t, 1000, 1));
    assert_int_equal(v->base, 0); /* The evicted entry's value is gone. */
    assert_int_equal(rq_dedupe_count(t), MAX);
    assert_null(rq_dedupe_find(t, 2));
    assert_non_null(rq_dedupe_find(t, 1));
    assert_non_null(rq_dedupe_find(t, 3));
    assert_non_null(rq_dedupe_find(t, 1000));
    put(t, 1001, 1);
    assert_null(rq_dedupe_find(t, 3));
}

/* Random puts against a model that evicts the smallest last_used by a
 * scan (what the ATM ledger did before it shared this table). */
static void test_rq_dedupe_agrees_with_model(void **state)
{
    struct rq_dedupe *t = *state;
    uint64_t model_id[MAX];
    uint64_t model_seq[MAX];
    uint64_t model_used[MAX];
    size_t n = 0;
    uint64_t clock = 0;
    uint64_t rng_state = 0x9e3779b97f4a7c15ull;

    for (int step = 0; step < 20000; step++) {
        uint64_t id = xorshift64(&rng_state) % (3 * MAX);
        uint64_t seq = (uint64_t)step;
        size_t k = 0;
        while (k < n && model_id[k] != id) {
            k++;
        }
        if (k == n && n == MAX) {
            size_t old = 0;
            for (size_t i = 1; i < n; i++) {
                old = model_used[i] < model_used[old] ? i : old;
            }
            k = old;
        } else if (k == n) {
            n++;
        }
        model_id[k] = id;
        model_seq[k] = seq;
        model_used[k] = ++clock;
        put(t, id, seq);
        assert_int_equal(rq_dedupe_count(t), n);
        if (step % 1000 == 0) {
            for (size_t i = 0; i < n; i++) {
                struct rq_dedupe_entry *e = rq_dedupe_find(t, model_id[i]);
                assert_non_null(e);
                assert_int_equal(e->seq, model_seq[i]);
                assert_int_equal(e->last_used, model_used[i]);
            }
        }
    }
}

/* Snapshot support: entries by id, loaded back into a table that then
 * evicts exactly as the original does. */
static void test_rq_dedupe_sorted_and_loaded(void **state)
{
    struct rq_dedupe *t = *state;
    struct rq_dedupe u;
    const struct rq_dedupe_entry **v;
    uint64_t rng_state = 0x2545f4914f6cdd1dull;

    for (int i = 0; i < 500; i++) {
        uint64_t id = xorshift64(&rng_state) % 200;
        struct value *val = rq_dedupe_value(put(t, id, (uint64_t)i));
        val->base = id * 10;
        val->count = (uint32_t)i;
    }
    assert_int_equal(rq_dedupe_sorted(t, &v), 0);
    rq_dedupe_init(&u, MAX, sizeof(struct value));
    assert_int_equal(
        rq_dedupe_load_begin(&u, rq_dedupe_ops(t), rq_dedupe_count(t)), 0);
    for (uint32_t i = 0; i < rq_dedupe_count(t); i++) {
        if (i > 0) {
            assert_true(v[i - 1]->id < v[i]->id);
        }
        struct value *val =
            rq_dedupe_load(&u, v[i]->id, v[i]->seq, v[i]->last_used);
        assert_non_null(val);
        *val = *(const struct value *)rq_dedupe_value(v[i]);
    }
    free(v);
    assert_int_equal(rq_dedupe_load_end(&u), 0);
    for (uint64_t id = 1000; id < 1000 + MAX / 2; id++) {
        put(t, id, 1);
        put(&u, id, 1);
    }
    for (uint64_t id = 0; id < 200; id++) {
        struct rq_dedupe_entry *a = rq_dedupe_find(t, id);
        struct rq_dedupe_entry *b = rq_dedupe_find(&u, id);
        assert_int_equal(a == NULL, b == NULL);
        if (a != NULL) {
            assert_int_equal(a->seq, b->seq);
            assert_int_equal(a->last_used, b->last_used);
            assert_memory_equal(rq_dedupe_value(a), rq_dedupe_value(b),
                                sizeof(struct value));
        }
    }
    rq_dedupe_close(&u);
}

static void test_rq_dedupe_load_checks_clock(void **state)
{
    (void)state;
    static const struct {
        uint64_t ops;
        uint64_t used[2];
    } bad[] = {
        {5, {0, 1}}, /* last_used 0 */
        {5, {2, 6}}, /* past the clock */
        {5, {3, 3}}, /* twice */
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        struct rq_dedupe u;
        rq_dedupe_init(&u, MAX, sizeof(struct value));
        assert_int_equal(rq_dedupe_load_begin(&u, bad[i].ops, 2), 0);
        rq_dedupe_load(&u, 1, 1, bad[i].used[0]);
        rq_dedupe_load(&u, 2, 1, bad[i].used[1]);
        assert_int_equal(rq_dedupe_load_end(&u), RQ_MALFORMED);
        rq_dedupe_close(&u);
    }
    struct rq_dedupe u;
    rq_dedupe_init(&u, MAX, sizeof(struct value));
    assert_int_equal(rq_dedupe_load_begin(&u, 100, MAX + 1), RQ_MALFORMED);
    assert_int_equal(rq_dedupe_load_begin(&u, 5, 2), 0);
    assert_non_null(rq_dedupe_load(&u, 1, 1, 5));
    /* Ids come in ascending order: the same id again, or a lower one, is a
     * malformed snapshot and loads nothing. */
    assert_null(rq_dedupe_load(&u, 1, 1, 3));
    assert_null(rq_dedupe_load(&u, 0, 1, 3));
    assert_non_null(rq_dedupe_load(&u, 2, 1, 4));
    assert_int_equal(rq_dedupe_count(&u), 2);
    assert_int_equal(rq_dedupe_load_end(&u), 0);
    /* 2 (last_used 4) is the least recently used: filling the table keeps
     * it, one more id evicts it. */
    for (uint64_t id = 10; id < 10 + MAX - 2; id++) {
        put(&u, id, 1);
    }
    assert_non_null(rq_dedupe_find(&u, 2));
    put(&u, 999, 1);
    assert_null(rq_dedupe_find(&u, 2));
    assert_non_null(rq_dedupe_find(&u, 1));
    rq_dedupe_close(&u);
}

/* A closed table is empty and can be used again. */
static void test_rq_dedupe_close_empties(void **state)
{
    struct rq_dedupe *t = *state;
    put(t, 1, 1);
    rq_dedupe_close(t);
    assert_int_equal(rq_dedupe_count(t), 0);
    assert_int_equal(rq_dedupe_ops(t), 0);
    assert_null(rq_dedupe_find(t, 1));
    put(t, 2, 1);
    assert_non_null(rq_dedupe_find(t, 2));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_rq_dedupe_find_and_put, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(
            test_rq_dedupe_evicts_least_recently_used, setup, teardown),
        cmocka_unit_test_setup_teardown(test_rq_dedupe_agrees_with_model, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_rq_dedupe_sorted_and_loaded, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_rq_dedupe_load_checks_clock, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_rq_dedupe_close_empties, setup,
                                        teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}

/*
 * Unit tests of the produce merging queue (pmerge.h): the first produce
 * goes out at once, the ones that come while a call is out wait and go
 * out together in arrival order, a call never passes its limits but takes
 * at least one item, and every call is numbered one past the last.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>

#include <cmocka.h>

#include "manager/pmerge.h"

#define PID 77

static struct pmerge_item *item(size_t len)
{
    struct pmerge_item *it = calloc(1, sizeof *it + len);
    assert_non_null(it);
    it->len = len;
    return it;
}

static void free_list(struct pmerge_item *it)
{
    while (it != NULL) {
        struct pmerge_item *next = it->next;
        free(it);
        it = next;
    }
}

static void test_pmerge_first_goes_at_once_the_rest_wait(void **state)
{
    (void)state;
    struct pmerge q;
    size_t n;
    uint64_t seq;

    pmerge_init(&q, PID);
    struct pmerge_item *a = item(10);
    assert_true(pmerge_add(&q, a));
    struct pmerge_item *call = pmerge_take(&q, 100, 1000, &n, &seq);
    assert_ptr_equal(call, a);
    assert_int_equal(n, 1);
    assert_int_equal(seq, 1);
    assert_null(a->next);
    assert_true(q.in_flight);

    /* While the call is out, produces wait. */
    struct pmerge_item *b = item(10), *c = item(10), *d = item(10);
    assert_false(pmerge_add(&q, b));
    assert_false(pmerge_add(&q, c));
    assert_false(pmerge_add(&q, d));
    assert_int_equal(q.n, 3);
    free_list(call);

    /* The call ends: the three go out together, oldest first. */
    assert_true(pmerge_done(&q));
    call = pmerge_take(&q, 100, 1000, &n, &seq);
    assert_int_equal(n, 3);
    assert_int_equal(seq, 2);
    assert_ptr_equal(call, b);
    assert_ptr_equal(b->next, c);
    assert_ptr_equal(c->next, d);
    assert_null(d->next);
    assert_int_equal(q.n, 0);
    free_list(call);

    /* Nothing waits: the next produce goes at once again. */
    assert_false(pmerge_done(&q));
    assert_false(q.in_flight);
    assert_null(pmerge_take(&q, 100, 1000, &n, &seq));
    assert_false(q.in_flight);
    assert_int_equal(n, 0);
    struct pmerge_item *e = item(1);
    assert_true(pmerge_add(&q, e));
    call = pmerge_take(&q, 100, 1000, &n, &seq);
    assert_ptr_equal(call, e);
    assert_int_equal(seq, 3);
    free_list(call);
    assert_false(pmerge_done(&q));
}

static void test_pmerge_calls_keep_to_their_limits(void **state)
{
    (void)state;
    struct pmerge q;
    size_t n;
    uint64_t seq;
    struct pmerge_item *items[6];

    pmerge_init(&q, PID);
    q.in_flight = true; /* As if a call were out while these arrive. */
    for (int i = 0; i < 6; i++) {
        items[i] = item(i == 4 ? 500 : 100);
        assert_false(pmerge_add(&q, items[i]));
    }
    assert_true(pmerge_done(&q));

    /* At most 2 records. */
    struct pmerge_item *call = pmerge_take(&q, 2, 10000, &n, &seq);
    assert_int_equal(n, 2);
    assert_ptr_equal(call, items[0]);
    assert_null(items[1]->next);
    free_list(call);
    assert_true(pmerge_done(&q));

    /* At most 250 bytes: items 2 and 3 (200), not 4 (500 more). */
    call = pmerge_take(&q, 100, 250, &n, &seq);
    assert_int_equal(n, 2);
    assert_ptr_equal(call, items[2]);
    free_list(call);
    assert_true(pmerge_done(&q));

    /* An item over the byte limit alone still goes, alone. */
    call = pmerge_take(&q, 100, 250, &n, &seq);
    assert_int_equal(n, 1);
    assert_ptr_equal(call, items[4]);
    free_list(call);
    assert_true(pmerge_done(&q));

    call = pmerge_take(&q, 100, 250, &n, &seq);
    assert_int_equal(n, 1);
    assert_ptr_equal(call, items[5]);
    assert_int_equal(seq, 4);
    assert_int_equal(q.producer_id, PID);
    free_list(call);
    assert_false(pmerge_done(&q));
    assert_null(q.head);
    assert_int_equal(q.n, 0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_pmerge_first_goes_at_once_the_rest_wait),
        cmocka_unit_test(test_pmerge_calls_keep_to_their_limits),
    };
    return cmocka_run_group_tests_name("pmerge", tests, NULL, NULL);
}

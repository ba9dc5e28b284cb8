/* The peer brokers' answers table (broker/peerwatch.h). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include <cmocka.h>

#include "broker/peerwatch.h"
#include "rq_err.h"

struct downs {
    uint64_t ids[8];
    size_t n;
};

static void on_down(void *data, const struct peerwatch_peer *p)
{
    struct downs *d = data;
    if (d->n < 8) {
        d->ids[d->n++] = p->id;
    }
}

static void round_of(struct peerwatch *w, const uint64_t *ids, size_t n,
                     uint64_t now)
{
    char addr[32];
    peerwatch_round_begin(w, now);
    for (size_t i = 0; i < n; i++) {
        snprintf(addr, sizeof addr, "127.0.0.1:%u", (unsigned)(9000 + ids[i]));
        assert_int_equal(peerwatch_track(w, ids[i], addr, now), 0);
    }
    peerwatch_round_end(w);
}

/* Down after dead_after_ms of silence, reported once; an answer brings it
 * back and starts the count again; a failed ping changes nothing. */
static void test_peerwatch_down_once_and_back(void **state)
{
    (void)state;
    struct peerwatch w;
    struct downs d = {0};
    const uint64_t ids[] = {2, 3};
    peerwatch_init(&w, 2500);

    round_of(&w, ids, 2, 1000);
    assert_int_equal(w.n, 2);
    assert_string_equal(peerwatch_get(&w, 3)->addr, "127.0.0.1:9003");
    assert_false(peerwatch_answer(&w, 2, true, 1200));
    assert_int_equal(peerwatch_check(&w, 3499, on_down, &d), 0);
    /* 3 never answered since it was tracked at 1000; 2 answered at 1200. */
    assert_int_equal(peerwatch_check(&w, 3500, on_down, &d), 1);
    assert_int_equal(d.ids[0], 3);
    assert_int_equal(peerwatch_check(&w, 3600, on_down, &d), 0);
    assert_false(peerwatch_answer(&w, 2, false, 3650)); /* A failure. */
    assert_int_equal(peerwatch_check(&w, 3700, on_down, &d), 1);
    assert_int_equal(d.ids[1], 2);
    assert_int_equal(peerwatch_check(&w, 9000, on_down, &d), 0);

    /* Back, then silent again: reported again. */
    assert_true(peerwatch_answer(&w, 3, true, 9000));
    assert_false(peerwatch_get(&w, 3)->down);
    assert_false(peerwatch_answer(&w, 3, true, 9100)); /* Already back. */
    assert_int_equal(peerwatch_check(&w, 11599, on_down, &d), 0);
    assert_int_equal(peerwatch_check(&w, 11600, on_down, &d), 1);
    assert_int_equal(d.ids[2], 3);
    peerwatch_close(&w);
}

/* A peer no group names is forgotten, its late answer ignored; one that
 * moved keeps its state under the new address; tracking it again later
 * starts it afresh. */
static void test_peerwatch_rounds_forget_and_move(void **state)
{
    (void)state;
    struct peerwatch w;
    struct downs d = {0};
    peerwatch_init(&w, 100);
    const uint64_t all[] = {2, 3, 4, 5, 6, 7, 8, 9, 10};
    round_of(&w, all, 9, 0); /* Past the first allocation. */
    assert_int_equal(w.n, 9);
    peerwatch_get(&w, 4)->in_flight = true;

    const uint64_t some[] = {10, 2};
    round_of(&w, some, 2, 50);
    assert_int_equal(w.n, 2);
    assert_null(peerwatch_get(&w, 4));
    assert_false(peerwatch_answer(&w, 4, true, 60));
    assert_non_null(peerwatch_get(&w, 10));

    peerwatch_round_begin(&w, 70);
    assert_int_equal(peerwatch_track(&w, 2, "10.0.0.2:1", 70), 0);
    assert_int_equal(peerwatch_track(&w, 10, "127.0.0.1:9010", 70), 0);
    peerwatch_round_end(&w);
    assert_string_equal(peerwatch_get(&w, 2)->addr, "10.0.0.2:1");
    assert_int_equal(peerwatch_get(&w, 2)->last_ok_ms, 0); /* Kept. */
    assert_int_equal(peerwatch_check(&w, 100, on_down, &d), 2);

    const uint64_t back[] = {4};
    round_of(&w, back, 1, 500);
    assert_int_equal(w.n, 1);
    assert_int_equal(peerwatch_get(&w, 4)->last_ok_ms, 500);
    assert_false(peerwatch_get(&w, 4)->in_flight);
    assert_int_equal(peerwatch_check(&w, 599, on_down, &d), 0);
    peerwatch_close(&w);
    assert_int_equal(w.n, 0);
}

/* Rounds that come late (this process stopped, its loop blocked) do not
 * count the time between as anyone's silence. */
static void test_peerwatch_own_absence_forgiven(void **state)
{
    (void)state;
    struct peerwatch w;
    struct downs d = {0};
    const uint64_t ids[] = {2, 3};
    peerwatch_init(&w, 2500);
    round_of(&w, ids, 2, 1000);
    round_of(&w, ids, 2, 1250);
    assert_true(peerwatch_answer(&w, 2, true, 1300) == false);
    /* Stopped for 5 s: the next round is late, every count restarts. */
    round_of(&w, ids, 2, 6300);
    assert_int_equal(peerwatch_check(&w, 6300, on_down, &d), 0);
    assert_int_equal(peerwatch_get(&w, 3)->last_ok_ms, 6300);
    /* Rounds on time again: silence counts from there. */
    round_of(&w, ids, 2, 6550);
    assert_int_equal(peerwatch_check(&w, 8799, on_down, &d), 0);
    assert_int_equal(peerwatch_check(&w, 8800, on_down, &d), 2);
    /* A peer already down stays down through a late round. */
    round_of(&w, ids, 2, 20000);
    assert_true(peerwatch_get(&w, 2)->down);
    assert_int_equal(peerwatch_check(&w, 20000, on_down, &d), 0);
    peerwatch_close(&w);
}

/* What a ping's answer says the peer reads: nothing until it answers;
 * the bits of a features body; nothing from an older broker's empty
 * answer or refusal of the method; a failure to reach it changes nothing;
 * and a peer no longer tracked reads nothing. */
static void test_peerwatch_features(void **state)
{
    (void)state;
    struct peerwatch w;
    const uint64_t ids[] = {2, 3};
    const uint8_t merges[4] = {PEERWATCH_MERGES, 0, 0, 0};
    const uint8_t none[4] = {0};

    peerwatch_init(&w, 1000);
    round_of(&w, ids, 2, 100);
    assert_false(peerwatch_has(&w, 2, PEERWATCH_MERGES));
    peerwatch_features(&w, 2, 0, merges, sizeof merges);
    peerwatch_features(&w, 3, 0, none, sizeof none);
    assert_true(peerwatch_has(&w, 2, PEERWATCH_MERGES));
    assert_false(peerwatch_has(&w, 3, PEERWATCH_MERGES));
    assert_false(peerwatch_has(&w, 2, 2u));
    peerwatch_features(&w, 2, RQ_TIMEOUT, NULL, 0);
    peerwatch_features(&w, 2, RQ_CONNECT, NULL, 0);
    assert_true(peerwatch_has(&w, 2, PEERWATCH_MERGES));
    peerwatch_features(&w, 2, 0, NULL, 0); /* Answers, with no body. */
    assert_false(peerwatch_has(&w, 2, PEERWATCH_MERGES));
    peerwatch_features(&w, 3, 0, merges, sizeof merges);
    peerwatch_features(&w, 3, RQ_INVALID, NULL, 0); /* Method refused. */
    assert_false(peerwatch_has(&w, 3, PEERWATCH_MERGES));
    peerwatch_features(&w, 3, 0, merges, 3); /* Too short to say. */
    assert_false(peerwatch_has(&w, 3, PEERWATCH_MERGES));
    peerwatch_features(&w, 3, 0, merges, sizeof merges);
    round_of(&w, ids, 1, 200);
    assert_false(peerwatch_has(&w, 3, PEERWATCH_MERGES));
    peerwatch_features(&w, 3, 0, merges, sizeof merges);
    assert_false(peerwatch_has(&w, 3, PEERWATCH_MERGES));
    assert_false(peerwatch_has(&w, 9, PEERWATCH_MERGES));
    peerwatch_close(&w);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_peerwatch_down_once_and_back),
        cmocka_unit_test(test_peerwatch_rounds_forget_and_move),
        cmocka_unit_test(test_peerwatch_own_absence_forgiven),
        cmocka_unit_test(test_peerwatch_features),
    };
    return cmocka_run_group_tests_name("peerwatch", tests, NULL, NULL);
}

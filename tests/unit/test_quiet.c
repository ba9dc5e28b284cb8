/*
 * Unit tests of the quiescence rule of idle Raft groups (rq_quiet.h): when
 * a follower and a leader go quiet, what wakes them, that a leader never
 * goes quiet before its followers can have, and the ticks a quiet group
 * passes on to Raft.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include "rq_err.h"
#include "rq_quiet.h"

static const struct rq_quiet_config cfg = {
    .after_ms = 5000,
    .election_ms = 1000,
    .heartbeat_ms = 100,
    .quiet_election_ms = 5000,
    .quiet_heartbeat_ms = 1000,
};

static struct rq_quiet_view follower(uint64_t last, uint64_t commit)
{
    return (struct rq_quiet_view){.role = RQ_QUIET_FOLLOWER,
                                  .term = 3,
                                  .leader_id = 2,
                                  .last_index = last,
                                  .commit = commit};
}

static struct rq_quiet_view leader(uint64_t last, uint64_t commit,
                                   bool caught_up)
{
    return (struct rq_quiet_view){.role = RQ_QUIET_LEADER,
                                  .term = 3,
                                  .leader_id = 1,
                                  .last_index = last,
                                  .commit = commit,
                                  .all_caught_up = caught_up};
}

static void test_quiet_config_check(void **state)
{
    (void)state;
    char why[160];
    struct rq_quiet_config c = cfg;
    assert_int_equal(rq_quiet_config_check(&c, why, sizeof why), 0);
    c.quiet_heartbeat_ms = 50;
    assert_int_equal(rq_quiet_config_check(&c, why, sizeof why), RQ_INVALID);
    c = cfg;
    c.quiet_election_ms = 900;
    assert_int_equal(rq_quiet_config_check(&c, why, sizeof why), RQ_INVALID);
    c = cfg;
    c.quiet_election_ms = 2999; /* Under three quiet heartbeats. */
    assert_int_equal(rq_quiet_config_check(&c, why, sizeof why), RQ_INVALID);
    c = cfg;
    c.after_ms = 0; /* Off: nothing else matters. */
    assert_int_equal(rq_quiet_config_check(&c, why, sizeof why), 0);
}

static void test_quiet_config_fit(void **state)
{
    (void)state;
    char why[160];
    struct rq_quiet_config c = cfg;
    rq_quiet_config_fit(&c); /* Valid already: unchanged. */
    assert_int_equal(c.quiet_heartbeat_ms, 1000);
    assert_int_equal(c.quiet_election_ms, 5000);
    c.election_ms = 10000; /* Slower ordinary timing than the quiet one. */
    c.heartbeat_ms = 2000;
    assert_int_equal(rq_quiet_config_check(&c, why, sizeof why), RQ_INVALID);
    rq_quiet_config_fit(&c);
    assert_int_equal(c.quiet_heartbeat_ms, 2000);
    assert_int_equal(c.quiet_election_ms, 10000);
    assert_int_equal(rq_quiet_config_check(&c, why, sizeof why), 0);
    c = cfg;
    c.quiet_heartbeat_ms = 4000;
    rq_quiet_config_fit(&c);
    assert_int_equal(c.quiet_election_ms, 12000); /* Three heartbeats. */
    assert_int_equal(rq_quiet_config_check(&c, why, sizeof why), 0);
}

static void test_quiet_follower_after_the_wait(void **state)
{
    (void)state;
    struct rq_quiet q;
    struct rq_quiet_view v = follower(10, 10);
    rq_quiet_init(&q, 1000);
    assert_false(rq_quiet_step(&q, &cfg, &v, 1000));
    assert_false(rq_quiet_step(&q, &cfg, &v, 5999));
    assert_true(rq_quiet_step(&q, &cfg, &v, 6000));
    assert_int_equal(rq_quiet_heartbeat_ms(&q, &cfg), 500);
    assert_int_equal(rq_quiet_election_ms(&q, &cfg, 0), 5000);
    assert_true(rq_quiet_step(&q, &cfg, &v, 60000));
}

static void test_quiet_follower_wakes_on_any_move(void **state)
{
    (void)state;
    const struct rq_quiet_view base = follower(10, 10);
    struct rq_quiet_view moves[5];
    for (int i = 0; i < 5; i++) {
        moves[i] = base;
    }
    moves[0].last_index = 11;
    moves[1].commit = 9; /* Any change, not only upwards. */
    moves[2].term = 4;
    moves[3].leader_id = 3;
    moves[4].role = RQ_QUIET_OTHER;
    for (int i = 0; i < 5; i++) {
        struct rq_quiet q;
        rq_quiet_init(&q, 0);
        assert_false(rq_quiet_step(&q, &cfg, &base, 0));
        assert_true(rq_quiet_step(&q, &cfg, &base, 5000));
        assert_false(rq_quiet_step(&q, &cfg, &moves[i], 5050));
        assert_int_equal(rq_quiet_election_ms(&q, &cfg, 0), 1000);
        assert_int_equal(rq_quiet_heartbeat_ms(&q, &cfg), 50);
        /* The wait starts again from the move. */
        assert_false(rq_quiet_step(&q, &cfg, &moves[i], 10049));
        bool follows = moves[i].role == RQ_QUIET_FOLLOWER;
        assert_int_equal(rq_quiet_step(&q, &cfg, &moves[i], 10050), follows);
    }
}

static void test_quiet_follower_without_leader_stays_awake(void **state)
{
    (void)state;
    struct rq_quiet q;
    struct rq_quiet_view v = follower(10, 10);
    v.leader_id = 0;
    rq_quiet_init(&q, 0);
    assert_false(rq_quiet_step(&q, &cfg, &v, 0));
    assert_false(rq_quiet_step(&q, &cfg, &v, 100000));
    v.role = RQ_QUIET_OTHER; /* A candidate never is. */
    assert_false(rq_quiet_step(&q, &cfg, &v, 200000));
    assert_false(rq_quiet_step(&q, &cfg, &v, 300000));
}

static void test_quiet_leader_waits_longer(void **state)
{
    (void)state;
    struct rq_quiet q;
    struct rq_quiet_view v = leader(10, 10, true);
    rq_quiet_init(&q, 0);
    assert_false(rq_quiet_step(&q, &cfg, &v, 0));
    assert_false(rq_quiet_step(&q, &cfg, &v, 5000));
    assert_false(rq_quiet_step(&q, &cfg, &v, 6199));
    assert_true(rq_quiet_step(&q, &cfg, &v, 6200));
    assert_int_equal(rq_quiet_heartbeat_ms(&q, &cfg), 500);
}

/* Whatever the last commit a follower hears of, it hears it with the next
 * ordinary heartbeat: it is quiet before its leader starts heartbeating
 * slower, with most of an election timeout to spare. */
static void test_quiet_follower_always_before_leader(void **state)
{
    (void)state;
    for (uint64_t lag = 0; lag <= cfg.heartbeat_ms; lag += 10) {
        struct rq_quiet l, f;
        rq_quiet_init(&l, 0);
        rq_quiet_init(&f, 0);
        struct rq_quiet_view lv = leader(10, 10, true);
        struct rq_quiet_view fv = follower(10, 10);
        rq_quiet_step(&l, &cfg, &lv, 0);
        rq_quiet_step(&f, &cfg, &fv, lag); /* Learns the commit late. */
        uint64_t leader_at = 0;
        uint64_t follower_at = 0;
        for (uint64_t t = lag; t < 20000; t += 50) {
            if (leader_at == 0 && rq_quiet_step(&l, &cfg, &lv, t)) {
                leader_at = t;
            }
            if (follower_at == 0 && rq_quiet_step(&f, &cfg, &fv, t)) {
                follower_at = t;
            }
        }
        assert_true(follower_at != 0 && leader_at != 0);
        assert_true(leader_at >= follower_at + cfg.election_ms);
    }
}

static void test_quiet_leader_stays_awake_while_behind(void **state)
{
    (void)state;
    struct rq_quiet q;
    rq_quiet_init(&q, 0);
    struct rq_quiet_view behind = leader(10, 10, false);
    struct rq_quiet_view uncommitted = leader(10, 9, true);
    struct rq_quiet_view done = leader(10, 10, true);
    assert_false(rq_quiet_step(&q, &cfg, &behind, 0));
    assert_false(rq_quiet_step(&q, &cfg, &behind, 100000));
    assert_false(rq_quiet_step(&q, &cfg, &uncommitted, 200000));
    assert_false(rq_quiet_step(&q, &cfg, &uncommitted, 300000));
    /* The wait runs from when all caught up. */
    assert_false(rq_quiet_step(&q, &cfg, &done, 400000));
    assert_false(rq_quiet_step(&q, &cfg, &done, 406199));
    assert_true(rq_quiet_step(&q, &cfg, &done, 406200));
    /* A follower falling behind again wakes it. */
    assert_false(rq_quiet_step(&q, &cfg, &behind, 406250));
}

static void test_quiet_wake(void **state)
{
    (void)state;
    struct rq_quiet q;
    struct rq_quiet_view v = leader(10, 10, true);
    rq_quiet_init(&q, 0);
    assert_false(rq_quiet_step(&q, &cfg, &v, 0));
    assert_true(rq_quiet_step(&q, &cfg, &v, 6200));
    assert_true(rq_quiet_wake(&q, &cfg, 7000));
    assert_false(q.quiet);
    assert_int_equal(rq_quiet_heartbeat_ms(&q, &cfg), 50);
    /* The grace of a woken leader (see below). */
    assert_int_equal(rq_quiet_election_ms(&q, &cfg, 7999), 5000);
    assert_int_equal(rq_quiet_election_ms(&q, &cfg, 8000), 1000);
    assert_false(rq_quiet_wake(&q, &cfg, 7001));
    /* Nothing moved since, yet the wait starts again from the wake. */
    assert_false(rq_quiet_step(&q, &cfg, &v, 13200));
    assert_true(rq_quiet_step(&q, &cfg, &v, 13201));
}

/* A leader that wakes heartbeats at the ordinary rate at once, but keeps
 * the quiet election timeout for one ordinary election timeout, so that
 * the silence of its followers while it was quiet cannot depose it. */
static void test_quiet_leader_grace_after_waking(void **state)
{
    (void)state;
    struct rq_quiet q;
    struct rq_quiet_view v = leader(10, 10, true);
    rq_quiet_init(&q, 1000);
    assert_false(rq_quiet_step(&q, &cfg, &v, 7001));
    /* Woken by a move (an entry appended; by a request: test_quiet_wake). */
    assert_true(rq_quiet_step(&q, &cfg, &v, 13201));
    assert_int_equal(rq_quiet_election_ms(&q, &cfg, 13201), 5000);
    struct rq_quiet_view more = leader(11, 10, true);
    assert_false(rq_quiet_step(&q, &cfg, &more, 14000));
    assert_int_equal(rq_quiet_heartbeat_ms(&q, &cfg), 50);
    assert_int_equal(rq_quiet_election_ms(&q, &cfg, 14999), 5000);
    assert_int_equal(rq_quiet_election_ms(&q, &cfg, 15000), 1000);
    /* No grace for a leader that was never quiet, nor a follower. */
    struct rq_quiet a;
    rq_quiet_init(&a, 0);
    assert_false(rq_quiet_step(&a, &cfg, &v, 0));
    assert_false(rq_quiet_wake(&a, &cfg, 100));
    assert_int_equal(rq_quiet_election_ms(&a, &cfg, 100), 1000);
    struct rq_quiet f;
    struct rq_quiet_view fv = follower(10, 10);
    rq_quiet_init(&f, 0);
    assert_false(rq_quiet_step(&f, &cfg, &fv, 0));
    assert_true(rq_quiet_step(&f, &cfg, &fv, 5000));
    fv.last_index = 11;
    assert_false(rq_quiet_step(&f, &cfg, &fv, 5100));
    assert_int_equal(rq_quiet_election_ms(&f, &cfg, 5100), 1000);
}

static void test_quiet_off(void **state)
{
    (void)state;
    struct rq_quiet_config off = cfg;
    off.after_ms = 0;
    struct rq_quiet q;
    struct rq_quiet_view v = follower(10, 10);
    rq_quiet_init(&q, 0);
    assert_false(rq_quiet_step(&q, &off, &v, 0));
    assert_false(rq_quiet_step(&q, &off, &v, UINT64_MAX / 2));
    assert_true(rq_quiet_tick_due(&q, &off, 0, 100));
}

static void test_quiet_clock_going_back_wakes(void **state)
{
    (void)state;
    struct rq_quiet q;
    struct rq_quiet_view v = follower(10, 10);
    rq_quiet_init(&q, 10000);
    assert_false(rq_quiet_step(&q, &cfg, &v, 10000));
    assert_true(rq_quiet_step(&q, &cfg, &v, 15000));
    assert_false(rq_quiet_step(&q, &cfg, &v, 9000));
    assert_true(rq_quiet_tick_due(&q, &cfg, 9000, 8000));
}

static void test_quiet_ticks(void **state)
{
    (void)state;
    struct rq_quiet q;
    struct rq_quiet_view v = follower(10, 10);
    rq_quiet_init(&q, 0);
    /* Awake: once the clock passes a multiple of the heartbeat. */
    assert_false(rq_quiet_tick_due(&q, &cfg, 1000, 1050));
    assert_false(rq_quiet_tick_due(&q, &cfg, 1000, 1099));
    assert_true(rq_quiet_tick_due(&q, &cfg, 1000, 1100));
    assert_true(rq_quiet_tick_due(&q, &cfg, 1000, 1101));
    /* A tick given off the grid: the next comes on it. */
    assert_false(rq_quiet_tick_due(&q, &cfg, 1037, 1099));
    assert_true(rq_quiet_tick_due(&q, &cfg, 1037, 1100));
    assert_false(rq_quiet_step(&q, &cfg, &v, 0));
    assert_true(rq_quiet_step(&q, &cfg, &v, 5000));
    /* Quiet: one every quiet heartbeat. */
    assert_false(rq_quiet_tick_due(&q, &cfg, 5000, 5500));
    assert_false(rq_quiet_tick_due(&q, &cfg, 5000, 5999));
    assert_true(rq_quiet_tick_due(&q, &cfg, 5000, 6000));
    assert_true(rq_quiet_tick_due(&q, &cfg, 5250, 6000));
}

/* libraft sends a heartbeat at a tick only if the last went a heartbeat
 * timeout before: on the shared grid a tick that came late (the loop busy)
 * is followed by one that comes early relative to it, and that one must
 * send a heartbeat too, or the leader's next contact check fails and its
 * followers drop to probe mode. Ticks late by up to a third of the
 * interval, awake and quiet. */
static void test_quiet_every_tick_heartbeats(void **state)
{
    (void)state;
    static const uint64_t lags[] = {0, 30, 0, 33, 1, 20, 25, 0, 10, 33};
    struct rq_quiet q;
    struct rq_quiet_view v = follower(10, 10);
    for (int quiet = 0; quiet <= 1; quiet++) {
        rq_quiet_init(&q, 0);
        rq_quiet_step(&q, &cfg, &v, 0);
        if (quiet) {
            assert_true(rq_quiet_step(&q, &cfg, &v, 5000));
        }
        uint64_t every = quiet ? cfg.quiet_heartbeat_ms : cfg.heartbeat_ms;
        uint64_t base = 10 * every;
        uint64_t last = base;
        int ticks = 0;
        for (uint64_t t = base + 1; t < base + 10 * every; t++) {
            uint64_t k = (t - base) / every;
            if (t != base + k * every + lags[k] * every / 100) {
                continue; /* The loop looks only at its (late) grid slot. */
            }
            assert_true(rq_quiet_tick_due(&q, &cfg, last, t));
            assert_true(t - last >= rq_quiet_heartbeat_ms(&q, &cfg));
            last = t;
            ticks++;
        }
        assert_int_equal(ticks, 9);
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_quiet_config_check),
        cmocka_unit_test(test_quiet_config_fit),
        cmocka_unit_test(test_quiet_follower_after_the_wait),
        cmocka_unit_test(test_quiet_follower_wakes_on_any_move),
        cmocka_unit_test(test_quiet_follower_without_leader_stays_awake),
        cmocka_unit_test(test_quiet_leader_waits_longer),
        cmocka_unit_test(test_quiet_follower_always_before_leader),
        cmocka_unit_test(test_quiet_leader_stays_awake_while_behind),
        cmocka_unit_test(test_quiet_wake),
        cmocka_unit_test(test_quiet_leader_grace_after_waking),
        cmocka_unit_test(test_quiet_off),
        cmocka_unit_test(test_quiet_clock_going_back_wakes),
        cmocka_unit_test(test_quiet_ticks),
        cmocka_unit_test(test_quiet_every_tick_heartbeats),
    };
    return cmocka_run_group_tests_name("quiet", tests, NULL, NULL);
}

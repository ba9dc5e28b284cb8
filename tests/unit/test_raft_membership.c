/*
 * Membership changes in quick succession on libraft's in-memory fixture:
 * what a follower believes its group to be after it received two
 * configuration changes before applying the first, and then lost the second
 * to a new leader.
 *
 * raftq changes a replica group's membership in steps that follow each other
 * as fast as the leader allows (add a spare, promote it, remove the broker it
 * replaces: broker/replica.c), so a follower that was slow or cut off
 * receives several configuration entries in one batch. libraft keeps only
 * the newest of them as "uncommitted"; what it did with the others decided
 * whether the follower's view of its group, and every snapshot it later
 * writes, named the right members (DESIGN.md section 3.2, patch 0007).
 *
 * The state machine is a counter: membership is all these tests look at.
 */
#define _XOPEN_SOURCE 700
#include <setjmp.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>
#include <raft.h>
#include <raft/fixture.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "fixture_util.h"

#define N_VOTERS 5
#define SPARE_ID (N_VOTERS + 1) /* The server the changes are about. */
#define MAX_MS 10000

struct counter {
    uint64_t applied;
};

static int counter_apply(struct raft_fsm *fsm, const struct raft_buffer *buf,
                         void **result)
{
    struct counter *c = fsm->data;
    (void)buf;
    c->applied++;
    *result = NULL;
    return 0;
}

static int counter_snapshot(struct raft_fsm *fsm, struct raft_buffer *bufs[],
                            unsigned *n_bufs)
{
    struct counter *c = fsm->data;
    *bufs = raft_malloc(sizeof **bufs);
    if (*bufs == NULL) {
        return RAFT_NOMEM; /* UNTESTED */
    }
    (*bufs)[0].len = sizeof c->applied;
    (*bufs)[0].base = raft_malloc(sizeof c->applied);
    if ((*bufs)[0].base == NULL) {
        raft_free(*bufs); /* UNTESTED */
        return RAFT_NOMEM;
    }
    memcpy((*bufs)[0].base, &c->applied, sizeof c->applied);
    *n_bufs = 1;
    return 0;
}

static int counter_restore(struct raft_fsm *fsm, struct raft_buffer *buf)
{
    struct counter *c = fsm->data;
    if (buf->len != sizeof c->applied) {
        return RAFT_MALFORMED; /* UNTESTED */
    }
    memcpy(&c->applied, buf->base, sizeof c->applied);
    raft_free(buf->base);
    return 0;
}

struct cluster {
    struct raft_fixture f;
    struct raft_fsm fsms[SPARE_ID];
    struct counter counters[SPARE_ID];
    struct fx_barrier barrier;
    struct raft_change change;
    bool change_pending;
    int change_status;
};

static int setup(void **state)
{
    struct cluster *c = calloc(1, sizeof *c);
    assert_non_null(c);
    assert_int_equal(raft_fixture_init(&c->f), 0);
    for (unsigned i = 0; i < SPARE_ID; i++) {
        c->fsms[i].version = 1;
        c->fsms[i].data = &c->counters[i];
        c->fsms[i].apply = counter_apply;
        c->fsms[i].snapshot = counter_snapshot;
        c->fsms[i].restore = counter_restore;
        assert_int_equal(raft_fixture_grow(&c->f, &c->fsms[i]), 0);
    }
    /* The five voters only: the spare starts with an empty log and learns
     * the group from the leader once it is added. */
    struct raft_configuration conf;
    raft_configuration_init(&conf);
    for (unsigned i = 0; i < N_VOTERS; i++) {
        char address[8];
        snprintf(address, sizeof address, "%u", i + 1);
        assert_int_equal(
            raft_configuration_add(&conf, i + 1, address, RAFT_VOTER), 0);
    }
    assert_int_equal(raft_fixture_bootstrap(&c->f, &conf), 0);
    raft_configuration_close(&conf);
    assert_int_equal(raft_fixture_start(&c->f), 0);
    *state = c;
    return 0;
}

static int teardown(void **state)
{
    struct cluster *c = *state;
    raft_fixture_close(&c->f);
    free(c);
    return 0;
}

static void on_change(struct raft_change *req, int status)
{
    struct cluster *c = req->data;
    c->change_pending = false;
    c->change_status = status;
}

static bool change_done(struct raft_fixture *f, void *arg)
{
    (void)f;
    return !((struct cluster *)arg)->change_pending;
}

/* @id's role in @conf, or -1 if @id is not a member. */
static int role_in(const struct raft_configuration *conf, raft_id id)
{
    for (unsigned k = 0; k < conf->n; k++) {
        if (conf->servers[k].id == id) {
            return conf->servers[k].role;
        }
    }
    return -1;
}

/* Every voter not in @cut sees the spare with @role, in its current
 * configuration and in the one it would write into a snapshot. */
static void assert_everyone_sees(struct cluster *c, unsigned cut, int role)
{
    for (unsigned i = 0; i < N_VOTERS; i++) {
        struct raft *r = raft_fixture_get(&c->f, i);
        if (cut & (1u << i)) {
            continue;
        }
        if (role_in(&r->configuration, SPARE_ID) != role ||
            role_in(&r->configuration_committed, SPARE_ID) != role) {
            fail_msg(
                "server %u: spare's role %d, committed %d (index %llu), "
                "expected %d",
                i + 1, role_in(&r->configuration, SPARE_ID),
                role_in(&r->configuration_committed, SPARE_ID),
                (unsigned long long)r->configuration_committed_index, role);
        }
    }
}

struct applied {
    raft_index index;
    unsigned cut; /* Bit i: server i is cut off, not waited for. */
};

static bool voters_applied(struct raft_fixture *f, void *arg)
{
    const struct applied *a = arg;
    for (unsigned i = 0; i < N_VOTERS; i++) {
        if (!(a->cut & (1u << i)) &&
            raft_last_applied(raft_fixture_get(f, i)) < a->index) {
            return false;
        }
    }
    return true;
}

/* A barrier through leader @l, then every voter not in @cut applies it. */
static void settle(struct cluster *c, unsigned l, unsigned cut)
{
    struct raft *leader = raft_fixture_get(&c->f, l);
    c->barrier.req.data = &c->barrier;
    c->barrier.pending = true;
    assert_int_equal(raft_barrier(leader, &c->barrier.req, fx_on_barrier), 0);
    raft_time start = raft_fixture_time(&c->f);
    while (c->barrier.pending) {
        assert_true(raft_fixture_time(&c->f) - start < MAX_MS);
        raft_fixture_step(&c->f);
    }
    assert_int_equal(c->barrier.status, 0);
    struct applied a = {raft_last_applied(leader), cut};
    assert_true(raft_fixture_step_until(&c->f, voters_applied, &a, MAX_MS));
}

/* Proposes @role for the spare on leader @l (RAFT_SPARE: adds it). */
static void change(struct cluster *c, unsigned l, int role)
{
    struct raft *leader = raft_fixture_get(&c->f, l);
    c->change.data = c;
    c->change_pending = true;
    int rv = role == RAFT_SPARE
                 ? raft_add(leader, &c->change, SPARE_ID, "6", on_change)
                 : raft_assign(leader, &c->change, SPARE_ID, role, on_change);
    assert_int_equal(rv, 0);
}

/*
 * Schedule (servers 1-5 voters, 6 not yet a member, 1 leads):
 *  1. 4 is cut off. 1 adds 6 as a spare (C1), committed by 1, 2, 3, 5.
 *  2. 1 is cut off from 2, 3 and 5, and 4 from them too; 1 assigns 6 the
 *     standby role (C2). 4 comes back to 1 only and receives C1 and C2 in
 *     one batch, with a commit index that covers C1: it applies C1 while
 *     C2, the newest configuration it holds, is still uncommitted. C1 is
 *     now its committed configuration, the one it writes into a snapshot.
 *  3. 1 and 4 are cut off while 2 is elected by 2, 3, 5 and appends its
 *     barrier at C2's index in its new term.
 *  4. 1 and 4 come back: 4 drops C2 and must return to C1, not to the
 *     configuration it had before C1 (libraft 0.22.1 recorded a configuration
 *     as committed only when it was the newest one the server held, so 4 went
 *     back to the five voters alone, with 6 unknown to it for good).
 * Then every voter sees 6 as a spare, both as its current configuration and
 * as the committed one its snapshots record.
 */
static void test_rollback_after_changes_in_one_batch(void **state)
{
    struct cluster *c = *state;
    struct raft_fixture *f = &c->f;
    raft_fixture_elect(f, 0);
    settle(c, 0, 0);

    /* 1. C1 without 4. */
    fx_cut(f, 3, true);
    change(c, 0, RAFT_SPARE);
    assert_true(raft_fixture_step_until(f, change_done, c, MAX_MS));
    assert_int_equal(c->change_status, 0);
    struct raft *leader = raft_fixture_get(f, 0);
    raft_index c1 = raft_last_index(leader);

    /* 2. C2; 4 hears from 1 alone. */
    for (unsigned j = 1; j < N_VOTERS; j++) {
        if (j != 3) {
            raft_fixture_disconnect(f, 0, j);
            raft_fixture_disconnect(f, j, 0);
        }
    }
    raft_fixture_reconnect(f, 0, 3);
    raft_fixture_reconnect(f, 3, 0);
    change(c, 0, RAFT_STANDBY);
    raft_index c2 = raft_last_index(leader);
    assert_int_equal(c2, c1 + 1);
    struct raft *four = raft_fixture_get(f, 3);
    raft_time start = raft_fixture_time(f);
    while (raft_last_index(four) < c2 || raft_last_applied(four) < c1) {
        assert_true(raft_fixture_time(f) - start < MAX_MS);
        raft_fixture_step(f);
    }
    assert_int_equal(role_in(&four->configuration, SPARE_ID), RAFT_STANDBY);
    assert_int_equal(role_in(&four->configuration_committed, SPARE_ID),
                     RAFT_SPARE);

    /* 3. 2 leads without 1 and 4 and overwrites C2's index. */
    fx_cut(f, 0, true);
    fx_cut(f, 3, true);
    start = raft_fixture_time(f);
    while (raft_state(leader) == RAFT_LEADER) {
        assert_true(raft_fixture_time(f) - start < MAX_MS);
        raft_fixture_step(f);
    }
    raft_fixture_start_elect(f, 1);
    struct raft *two = raft_fixture_get(f, 1);
    while (raft_state(two) != RAFT_LEADER) {
        assert_true(raft_fixture_time(f) - start < MAX_MS);
        raft_fixture_step(f);
    }
    settle(c, 1, 1u << 0 | 1u << 3);
    assert_true(raft_last_index(raft_fixture_get(f, 1)) >= c2);
    assert_everyone_sees(c, 1u << 0 | 1u << 3, RAFT_SPARE);

    /* 4. 4 comes back and catches up, and so does 1. */
    fx_cut(f, 3, false);
    fx_cut(f, 0, false);
    settle(c, 1, 0);
    assert_everyone_sees(c, 0, RAFT_SPARE);
}

/*
 * Schedule (servers 1-5 voters, 6 not yet a member, 1 leads): 4 is cut off
 * while 1 commits a barrier and then adds 6 as a spare (C1); 4 comes back
 * and receives both entries in one batch, C1 second. libraft 0.22.1 noted C1
 * as uncommitted at the batch's first index, so applying C1 never marked it
 * committed: 4's snapshots would have kept naming the five voters alone.
 */
static void test_change_second_in_a_batch(void **state)
{
    struct cluster *c = *state;
    struct raft_fixture *f = &c->f;
    raft_fixture_elect(f, 0);
    settle(c, 0, 0);

    fx_cut(f, 3, true);
    settle(c, 0, 1u << 3);
    change(c, 0, RAFT_SPARE);
    assert_true(raft_fixture_step_until(f, change_done, c, MAX_MS));
    assert_int_equal(c->change_status, 0);

    fx_cut(f, 3, false);
    settle(c, 0, 0);
    assert_everyone_sees(c, 0, RAFT_SPARE);
    struct raft *four = raft_fixture_get(f, 3);
    assert_int_equal(four->configuration_committed_index,
                     raft_fixture_get(f, 0)->configuration_committed_index);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(
            test_rollback_after_changes_in_one_batch, setup, teardown),
        cmocka_unit_test_setup_teardown(test_change_second_in_a_batch, setup,
                                        teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}

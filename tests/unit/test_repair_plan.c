/*
 * Unit tests of the repair plan (repair_plan.h): the store, the groups'
 * voters and the brokers' reports in, the moves to start out; whom a step
 * asks; what an answer to a step means; when a REMOVING broker is done.
 * The questions the plan asks are answered by the fixture's tables.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include <cmocka.h>

#include "manager/repair_plan.h"

#define NB 6
#define NOW 100000

struct fix {
    struct mstore_broker brokers[NB];
    struct liveness_broker lb[NB];
    struct liveness_replica reps[NB][4];
    bool reported[NB];
    struct mstore_partition parts[4];
    size_t np;
    uint64_t busy; /* A busy group; 0: none. */
    uint64_t vgid; /* The group the voters table is for; 0: every group's
                    * voters are its replicas in the store. */
    uint32_t voters[LIVENESS_VOTERS_MAX];
    unsigned nv;
    struct repair_plan_move out[8];
    struct repair_view v;
};

static bool fake_busy(void *data, uint64_t gid)
{
    struct fix *f = data;
    return gid == f->busy;
}

static unsigned fake_voters(void *data, uint64_t gid,
                            uint32_t out[LIVENESS_VOTERS_MAX])
{
    struct fix *f = data;
    if (f->vgid == 0) {
        for (size_t j = 0; j < f->np; j++) {
            if (f->parts[j].group_id == gid) {
                memcpy(out, f->parts[j].replicas, MCMD_RF * sizeof out[0]);
                return MCMD_RF;
            }
        }
        return 0;
    }
    if (gid != f->vgid) {
        return 0;
    }
    memcpy(out, f->voters, f->nv * sizeof out[0]);
    return f->nv;
}

static const struct liveness_broker *fake_report(void *data, uint32_t id)
{
    struct fix *f = data;
    return id >= 1 && id <= NB && f->reported[id - 1] ? &f->lb[id - 1] : NULL;
}

/* Brokers 1..6 ALIVE, heard, reporting nothing; no partitions. */
static int setup(void **state)
{
    static struct fix f;
    memset(&f, 0, sizeof f);
    for (unsigned i = 0; i < NB; i++) {
        f.brokers[i] =
            (struct mstore_broker){.id = i + 1, .state = MBROKER_ALIVE};
        f.lb[i] = (struct liveness_broker){
            .id = i + 1, .heard = true, .replicas = f.reps[i]};
        f.reported[i] = true;
    }
    f.v = (struct repair_view){
        .brokers = f.brokers,
        .n_brokers = NB,
        .parts = f.parts,
        .busy = fake_busy,
        .voters = fake_voters,
        .report = fake_report,
        .data = &f,
    };
    *state = &f;
    return 0;
}

static void set_state(struct fix *f, uint32_t id, enum mbroker_state s)
{
    f->brokers[id - 1].state = s;
}

/* Group @gid on brokers a, b, c, whose leader reports the same voters. */
static void add_part(struct fix *f, uint64_t gid, uint32_t a, uint32_t b,
                     uint32_t c)
{
    struct mstore_partition *p = &f->parts[f->np++];
    *p = (struct mstore_partition){
        .group_id = gid, .epoch = 1, .replicas = {a, b, c}};
    snprintf(p->topic, sizeof p->topic, "t");
    f->v.n_parts = f->np;
    f->vgid = gid;
    f->voters[0] = a;
    f->voters[1] = b;
    f->voters[2] = c;
    f->nv = 3;
    for (unsigned k = 0; k < MCMD_RF; k++) {
        struct liveness_broker *lb = &f->lb[p->replicas[k] - 1];
        size_t i = lb->n_replicas++;
        /* Sorted by group id, as liveness.c keeps reports. */
        for (; i > 0 && lb->replicas[i - 1].group_id > gid; i--) {
            lb->replicas[i] = lb->replicas[i - 1];
        }
        lb->replicas[i] = (struct liveness_replica){.group_id = gid};
    }
}

static void set_voters(struct fix *f, unsigned n, const uint32_t *ids)
{
    memcpy(f->voters, ids, n * sizeof ids[0]);
    f->nv = n;
}

static size_t plan(struct fix *f, size_t room)
{
    return repair_plan(&f->v, NOW, room, f->out);
}

static void assert_move(const struct repair_plan_move *m, uint64_t gid,
                        uint32_t from, uint32_t to, enum repair_step first)
{
    assert_int_equal(m->part->group_id, gid);
    assert_int_equal(m->from, from);
    assert_int_equal(m->to, to);
    assert_int_equal(m->first, first);
}

static void test_repair_plan_nothing_when_all_alive(void **state)
{
    struct fix *f = *state;
    add_part(f, 7, 1, 2, 3);
    assert_int_equal(plan(f, 4), 0);
}

static void test_repair_plan_replaces_a_dead_broker(void **state)
{
    struct fix *f = *state;
    add_part(f, 7, 1, 2, 3);
    set_state(f, 2, MBROKER_DEAD);
    assert_int_equal(plan(f, 4), 1);
    assert_int_equal(f->out[0].from, 2);
    assert_true(f->out[0].to >= 4); /* An ALIVE broker not holding it. */
    assert_int_equal(f->out[0].first, REPAIR_CREATE);
    /* Nor while the group is busy, nor with no room. */
    f->busy = 7;
    assert_int_equal(plan(f, 4), 0);
    f->busy = 0;
    assert_int_equal(plan(f, 0), 0);
}

static void test_repair_plan_waits_for_the_leaders_voters(void **state)
{
    struct fix *f = *state;
    add_part(f, 7, 1, 2, 3);
    set_state(f, 2, MBROKER_DEAD);
    f->nv = 0; /* The group's leader has not reported. */
    assert_int_equal(plan(f, 4), 0);
}

/* A move that looks done but for its COMMIT (4 added, 3 removed, the
 * replica set not committed) is resumed from its first step, whose steps
 * each find their change made: COMMIT alone would change the store on the
 * word of a report. */
static void test_repair_plan_resumes_a_commit_from_the_start(void **state)
{
    struct fix *f = *state;
    add_part(f, 7, 1, 2, 3);
    set_state(f, 3, MBROKER_DEAD);
    set_voters(f, 3, (uint32_t[]){1, 2, 4});
    assert_int_equal(plan(f, 4), 1);
    assert_move(&f->out[0], 7, 3, 4, REPAIR_CREATE);
}

/* A report from before the last change (the group moved from 1 to 2; the
 * leader's report still shows 1) while 2 drains, is removed, is late with
 * its heartbeats or is dead reads like a move from 2 to 1 left at its last
 * step, and so does a real one: it is resumed from its first step, never
 * at COMMIT, which would change the store alone. */
static void test_repair_plan_no_commit_from_a_stale_report(void **state)
{
    struct fix *f = *state;
    add_part(f, 7, 2, 3, 4);
    set_voters(f, 3, (uint32_t[]){1, 3, 4});
    const enum mbroker_state states[] = {MBROKER_DRAINING, MBROKER_REMOVING,
                                         MBROKER_SUSPECT, MBROKER_DEAD,
                                         MBROKER_REMOVED};
    for (size_t k = 0; k < sizeof states / sizeof states[0]; k++) {
        set_state(f, 2, states[k]);
        assert_int_equal(plan(f, 5), 1);
        assert_move(&f->out[0], 7, 2, 1, REPAIR_CREATE);
    }
}

static void test_repair_plan_resumes_a_remove(void **state)
{
    struct fix *f = *state;
    add_part(f, 7, 1, 2, 3);
    set_state(f, 3, MBROKER_DRAINING);
    /* 4 was added; 3 is still a voter. */
    set_voters(f, 4, (uint32_t[]){1, 2, 3, 4});
    assert_int_equal(plan(f, 4), 1);
    assert_move(&f->out[0], 7, 3, 4, REPAIR_REMOVE);
}

static void test_repair_plan_old_report_is_not_a_move_back(void **state)
{
    struct fix *f = *state;
    add_part(f, 7, 1, 2, 4);
    /* Voters from before the commit of 3 -> 4: the extra (3) is not
     * ALIVE, so nothing is resumed, and the group is left alone until its
     * leader reports the store's replicas. */
    set_state(f, 3, MBROKER_DEAD);
    set_voters(f, 3, (uint32_t[]){1, 2, 3});
    assert_int_equal(plan(f, 4), 0);
    /* From before the REMOVE of 3, with 1 down meanwhile: not a move of
     * 1's replica to 3, a broker that is not ALIVE. */
    set_voters(f, 4, (uint32_t[]){1, 2, 3, 4});
    set_state(f, 1, MBROKER_DEAD);
    assert_int_equal(plan(f, 4), 0);
}

static void test_repair_plan_resumes_a_rebuild_after_its_remove(void **state)
{
    struct fix *f = *state;
    add_part(f, 7, 1, 2, 3);
    set_voters(f, 2, (uint32_t[]){1, 2});
    assert_int_equal(plan(f, 4), 1);
    assert_move(&f->out[0], 7, 3, 3, REPAIR_REBUILD);
    /* Not for a member whose broker is down: that is a move. */
    set_state(f, 3, MBROKER_DEAD);
    assert_int_equal(plan(f, 4), 0);
}

static void test_repair_plan_rebuilds_a_replica_failed_long_enough(void **state)
{
    struct fix *f = *state;
    add_part(f, 7, 1, 2, 3);
    f->lb[1].replicas[0].failed_since = NOW - REPAIR_PLAN_REBUILD_AFTER_MS;
    assert_int_equal(plan(f, 4), 1);
    assert_move(&f->out[0], 7, 2, 2, REPAIR_REMOVE);
    /* Not yet. */
    f->lb[1].replicas[0].failed_since = NOW - REPAIR_PLAN_REBUILD_AFTER_MS + 1;
    assert_int_equal(plan(f, 4), 0);
    /* Two failed: the group cannot lose one. */
    f->lb[1].replicas[0].failed_since = 1;
    f->lb[2].replicas[0].failed_since = 1;
    assert_int_equal(plan(f, 4), 0);
    /* A peer not reporting the group: no rebuild. */
    f->lb[2].replicas[0].failed_since = 0;
    f->reported[0] = false;
    assert_int_equal(plan(f, 4), 0);
}

static void test_repair_plan_room_limits_moves(void **state)
{
    struct fix *f = *state;
    add_part(f, 7, 1, 2, 3);
    add_part(f, 8, 1, 2, 3);
    add_part(f, 9, 1, 2, 3);
    f->vgid = 0; /* Every group's leader reports the store's replicas. */
    set_state(f, 3, MBROKER_DEAD);
    assert_int_equal(plan(f, 4), 3);
    assert_int_equal(plan(f, 2), 2);
    assert_int_equal(f->out[0].part->group_id, 7);
    assert_int_equal(f->out[1].part->group_id, 8);
    /* A busy group is skipped and leaves its room to the others. */
    f->busy = 7;
    assert_int_equal(plan(f, 1), 1);
    assert_int_equal(f->out[0].part->group_id, 8);
}

static void test_repair_plan_removal(void **state)
{
    struct fix *f = *state;
    const uint64_t dead = 10000;
    set_state(f, 5, MBROKER_REMOVING);
    /* Heard, hosting nothing, nothing placed: done. */
    assert_int_equal(repair_plan_removal(&f->v, NOW, dead), 5);
    /* Still placed on it, or still hosting something: not yet. */
    f->brokers[4].n_replicas = 1;
    assert_int_equal(repair_plan_removal(&f->v, NOW, dead), 0);
    f->brokers[4].n_replicas = 0;
    f->lb[4].n_replicas = 1;
    assert_int_equal(repair_plan_removal(&f->v, NOW, dead), 0);
    /* Not heard since this manager leads: after the dead time only. */
    f->lb[4].heard = false;
    f->lb[4].last_ms = NOW - dead + 1;
    assert_int_equal(repair_plan_removal(&f->v, NOW, dead), 0);
    f->lb[4].last_ms = NOW - dead;
    assert_int_equal(repair_plan_removal(&f->v, NOW, dead), 5);
    /* No record at all (this manager does not lead). */
    f->reported[4] = false;
    assert_int_equal(repair_plan_removal(&f->v, NOW, dead), 0);
}

static void test_repair_plan_ask(void **state)
{
    (void)state;
    struct mstore_partition p = {.group_id = 7, .replicas = {1, 2, 3}};
    assert_int_equal(repair_plan_ask(2, &p, 3, 4), 2);
    /* The leader the cache names is the member leaving, or none: a member
     * staying, which names the leader. */
    assert_int_equal(repair_plan_ask(1, &p, 1, 4), 2);
    assert_int_equal(repair_plan_ask(0, &p, 3, 4), 1);
}

static struct repair_next answer(struct repair_answer a, enum repair_step s,
                                 bool rebuild, unsigned redirects,
                                 unsigned retries)
{
    struct repair_next n;
    repair_plan_answer(&a, s, rebuild, redirects, retries, &n);
    return n;
}

static void test_repair_plan_answer_steps_in_order(void **state)
{
    (void)state;
    struct repair_answer ok = {.status = 200};
    struct repair_next n = answer(ok, REPAIR_CREATE, false, 0, 0);
    assert_int_equal(n.kind, REPAIR_STEP);
    assert_int_equal(n.step, REPAIR_ADD);
    assert_int_equal(answer(ok, REPAIR_ADD, false, 0, 0).step, REPAIR_REMOVE);
    assert_int_equal(answer(ok, REPAIR_REMOVE, false, 0, 0).step,
                     REPAIR_COMMIT);
    /* A rebuild: REMOVE, REBUILD, ADD, done. */
    assert_int_equal(answer(ok, REPAIR_REMOVE, true, 0, 0).step,
                     REPAIR_REBUILD);
    assert_int_equal(answer(ok, REPAIR_REBUILD, true, 0, 0).step, REPAIR_ADD);
    assert_int_equal(answer(ok, REPAIR_ADD, true, 0, 0).kind, REPAIR_DONE);
}

static void test_repair_plan_answer_follows_421(void **state)
{
    (void)state;
    struct repair_answer moved = {.status = 421, .named = 5};
    struct repair_next n = answer(moved, REPAIR_ADD, false, 0, 0);
    assert_int_equal(n.kind, REPAIR_FOLLOW);
    assert_int_equal(n.follow, 5);
    assert_int_equal(answer(moved, REPAIR_REMOVE, true, 2, 0).kind,
                     REPAIR_FOLLOW);
    /* Not past the redirects allowed, not naming nobody, and not in the
     * steps that ask the new member's broker itself. */
    assert_int_equal(
        answer(moved, REPAIR_ADD, false, REPAIR_PLAN_REDIRECTS, 0).kind,
        REPAIR_FAIL);
    assert_int_equal(answer(moved, REPAIR_CREATE, false, 0, 0).kind,
                     REPAIR_FAIL);
    assert_int_equal(answer(moved, REPAIR_REBUILD, true, 0, 0).kind,
                     REPAIR_FAIL);
    moved.named = 0;
    assert_int_equal(answer(moved, REPAIR_ADD, false, 0, 0).kind, REPAIR_FAIL);
}

static void test_repair_plan_answer_waits_out_503(void **state)
{
    (void)state;
    struct repair_answer busy = {.status = 503};
    assert_int_equal(answer(busy, REPAIR_ADD, false, 0, 0).kind, REPAIR_WAIT);
    assert_int_equal(
        answer(busy, REPAIR_ADD, false, 0, REPAIR_PLAN_RETRIES - 2).kind,
        REPAIR_WAIT);
    assert_int_equal(
        answer(busy, REPAIR_ADD, false, 0, REPAIR_PLAN_RETRIES - 1).kind,
        REPAIR_FAIL);
}

static void test_repair_plan_answer_fails_otherwise(void **state)
{
    (void)state;
    struct repair_answer down = {.failed = true, .status = 0};
    assert_int_equal(answer(down, REPAIR_ADD, false, 0, 0).kind, REPAIR_FAIL);
    struct repair_answer no = {.status = 409};
    assert_int_equal(answer(no, REPAIR_CREATE, false, 0, 0).kind, REPAIR_FAIL);
}

/* With nothing to repair, a rebalancing move when room is given for one,
 * from the most loaded broker to the least; none without room, and none
 * while a repair is to be done. */
static void test_repair_plan_rebalances_when_nothing_is_down(void **state)
{
    struct fix *f = *state;
    add_part(f, 7, 1, 2, 3);
    add_part(f, 8, 2, 3, 1);
    f->vgid = 0; /* Every group's voters are its replicas. */
    for (unsigned i = 0; i < 3; i++) {
        f->brokers[i].n_replicas = 2;
    }
    assert_int_equal(plan(f, 4), 0);
    f->v.rebalance_room = 1;
    assert_int_equal(plan(f, 4), 1);
    assert_true(f->out[0].rebalance);
    assert_int_equal(f->out[0].to, 4);
    assert_int_equal(f->out[0].first, REPAIR_CREATE);
    /* Broker 1 gives up a replica it does not lead: group 8's. */
    assert_move(&f->out[0], 8, 1, 4, REPAIR_CREATE);
    set_state(f, 6, MBROKER_DEAD);
    f->brokers[5].n_replicas = 0;
    set_state(f, 3, MBROKER_DEAD);
    assert_int_equal(plan(f, 4), 2);
    assert_false(f->out[0].rebalance);
    assert_false(f->out[1].rebalance);
}

int main(void)
{
#define T(name) cmocka_unit_test_setup(name, setup)
    const struct CMUnitTest tests[] = {
        T(test_repair_plan_rebalances_when_nothing_is_down),
        T(test_repair_plan_nothing_when_all_alive),
        T(test_repair_plan_replaces_a_dead_broker),
        T(test_repair_plan_waits_for_the_leaders_voters),
        T(test_repair_plan_resumes_a_commit_from_the_start),
        T(test_repair_plan_no_commit_from_a_stale_report),
        T(test_repair_plan_resumes_a_remove),
        T(test_repair_plan_old_report_is_not_a_move_back),
        T(test_repair_plan_resumes_a_rebuild_after_its_remove),
        T(test_repair_plan_rebuilds_a_replica_failed_long_enough),
        T(test_repair_plan_room_limits_moves),
        T(test_repair_plan_removal),
        T(test_repair_plan_ask),
        T(test_repair_plan_answer_steps_in_order),
        T(test_repair_plan_answer_follows_421),
        T(test_repair_plan_answer_waits_out_503),
        T(test_repair_plan_answer_fails_otherwise),
    };
#undef T
    return cmocka_run_group_tests_name("repair_plan", tests, NULL, NULL);
}

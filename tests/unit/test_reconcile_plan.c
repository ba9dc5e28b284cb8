/*
 * Unit tests of the reconcile plan (reconcile_plan.h): the store and the
 * brokers' reports in, creations, deletions and preferred-leader orders
 * out. The questions the plan asks (moving, voters, held) are answered by
 * the fixture's tables.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include <cmocka.h>

#include "manager/policy.h"
#include "manager/reconcile_plan.h"

#define NB 5
#define MAX_REPORTED 8

struct fix {
    struct mstore_broker brokers[NB];
    struct liveness_broker lb[NB];
    struct liveness_replica reps[NB][MAX_REPORTED];
    const struct liveness_broker *reports[NB];
    struct mstore_partition parts[4];
    size_t np;
    uint64_t moving;     /* A group being moved; 0: none. */
    uint64_t voters_gid; /* The group voters answers for. */
    uint32_t voters[LIVENESS_VOTERS_MAX];
    unsigned n_voters;
    uint32_t held_broker; /* A pair held back. */
    uint64_t held_gid;
    uint64_t next_gid;     /* The store's next group id. */
    uint64_t recorded_gid; /* One the store recorded as foreign. */
    struct reconcile_order out[64];
};

static bool fake_moving(void *data, uint64_t gid)
{
    struct fix *f = data;
    return gid == f->moving;
}

static unsigned fake_voters(void *data, uint64_t gid,
                            uint32_t out[LIVENESS_VOTERS_MAX])
{
    struct fix *f = data;
    if (gid != f->voters_gid) {
        return 0;
    }
    memcpy(out, f->voters, f->n_voters * sizeof out[0]);
    return f->n_voters;
}

static bool fake_foreign(void *data, uint64_t gid)
{
    struct fix *f = data;
    return reconcile_plan_foreign(f->next_gid, gid, gid == f->recorded_gid);
}

static bool fake_held(void *data, uint32_t broker, uint64_t gid)
{
    struct fix *f = data;
    return broker == f->held_broker && gid == f->held_gid;
}

/* Brokers 1..5 ALIVE and heard, reporting nothing; no partitions. */
static int setup(void **state)
{
    static struct fix f;
    memset(&f, 0, sizeof f);
    f.next_gid = 1000;
    for (unsigned i = 0; i < NB; i++) {
        f.brokers[i] =
            (struct mstore_broker){.id = i + 1, .state = MBROKER_ALIVE};
        snprintf(f.brokers[i].http_addr, sizeof f.brokers[i].http_addr,
                 "127.0.0.1:%u", 9000 + i);
        f.lb[i] = (struct liveness_broker){
            .id = i + 1, .heard = true, .replicas = f.reps[i]};
        f.reports[i] = &f.lb[i];
    }
    *state = &f;
    return 0;
}

static void add_part(struct fix *f, uint64_t gid, uint32_t a, uint32_t b,
                     uint32_t c)
{
    struct mstore_partition *p = &f->parts[f->np++];
    *p = (struct mstore_partition){
        .group_id = gid, .partition_id = (uint32_t)gid, .replicas = {a, b, c}};
    snprintf(p->topic, sizeof p->topic, "t");
}

/* Broker @id reports hosting @gid, preferring @preferred (0: not said). */
static void report(struct fix *f, uint32_t id, uint64_t gid, uint32_t preferred)
{
    struct liveness_broker *lb = &f->lb[id - 1];
    size_t i = lb->n_replicas++;
    /* Sorted by group id, as liveness.c keeps reports. */
    for (; i > 0 && lb->replicas[i - 1].group_id > gid; i--) {
        lb->replicas[i] = lb->replicas[i - 1];
    }
    lb->replicas[i] =
        (struct liveness_replica){.group_id = gid, .preferred = preferred};
}

static size_t plan(struct fix *f, size_t max)
{
    reconcile_plan_sort(f->parts, f->np);
    struct reconcile_view v = {
        .brokers = f->brokers,
        .n_brokers = NB,
        .parts = f->parts,
        .n_parts = f->np,
        .reports = f->reports,
        .moving = fake_moving,
        .voters = fake_voters,
        .held = fake_held,
        .data = f,
        .foreign = fake_foreign,
    };
    return reconcile_plan(&v, max, sizeof f->out / sizeof f->out[0], f->out);
}

/* Every replica of every partition reported where the store places it. */
static void report_all(struct fix *f)
{
    for (size_t j = 0; j < f->np; j++) {
        for (unsigned k = 0; k < MCMD_RF; k++) {
            report(f, f->parts[j].replicas[k], f->parts[j].group_id, 0);
        }
    }
}

static void test_reconcile_plan_creates_what_is_placed_and_not_reported(
    void **state)
{
    struct fix *f = *state;
    uint32_t order[MCMD_RF];
    add_part(f, 7, 2, 3, 4);
    report(f, 2, 7, 0);
    report(f, 4, 7, 0);
    assert_int_equal(plan(f, 32), 1);
    assert_int_equal(f->out[0].kind, RECONCILE_CREATE);
    assert_int_equal(f->out[0].broker->id, 3);
    assert_int_equal(f->out[0].group_id, 7);
    assert_ptr_equal(f->out[0].part, &f->parts[0]);
    /* Members in the order every broker of the group is given them. */
    policy_member_order(7, f->parts[0].replicas, order);
    for (unsigned k = 0; k < MCMD_RF; k++) {
        assert_int_equal(f->out[0].members[k]->id, order[k]);
    }
}

static void test_reconcile_plan_nothing_when_all_match(void **state)
{
    struct fix *f = *state;
    add_part(f, 7, 2, 3, 4);
    add_part(f, 8, 1, 5, 3);
    report_all(f);
    assert_int_equal(plan(f, 32), 0);
}

static void test_reconcile_plan_only_eligible_brokers(void **state)
{
    struct fix *f = *state;
    add_part(f, 7, 1, 2, 3);
    f->brokers[0].state = MBROKER_SUSPECT; /* 1 */
    f->brokers[1].state = MBROKER_DEAD;    /* 2 */
    f->lb[2].heard = false;                /* 3: only the grace so far */
    assert_int_equal(plan(f, 32), 0);
    f->lb[2].heard = true;
    f->reports[2] = NULL; /* No report at all. */
    assert_int_equal(plan(f, 32), 0);
    /* Draining and removing brokers still get what is placed on them. */
    f->reports[2] = &f->lb[2];
    f->brokers[2].state = MBROKER_DRAINING;
    f->brokers[0].state = MBROKER_REMOVING;
    assert_int_equal(plan(f, 32), 2);
    assert_int_equal(f->out[0].broker->id, 1);
    assert_int_equal(f->out[1].broker->id, 3);
}

static void test_reconcile_plan_leaves_moving_and_held_groups(void **state)
{
    struct fix *f = *state;
    add_part(f, 7, 1, 2, 3);
    report(f, 1, 7, 0);
    report(f, 2, 7, 0);
    f->moving = 7;
    assert_int_equal(plan(f, 32), 0);
    f->moving = 0;
    f->held_broker = 3;
    f->held_gid = 7;
    assert_int_equal(plan(f, 32), 0);
    f->held_broker = 0;
    assert_int_equal(plan(f, 32), 1);
}

static void test_reconcile_plan_no_creation_outside_the_voters(void **state)
{
    struct fix *f = *state;
    /* A rebuild half done: the leader reports voters without broker 3. */
    add_part(f, 7, 1, 2, 3);
    report(f, 1, 7, 0);
    report(f, 2, 7, 0);
    f->voters_gid = 7;
    f->voters[0] = 1;
    f->voters[1] = 2;
    f->n_voters = 2;
    assert_int_equal(plan(f, 32), 0);
    /* With it among the voters the replica is created. */
    f->voters[2] = 3;
    f->n_voters = 3;
    assert_int_equal(plan(f, 32), 1);
    assert_int_equal(f->out[0].kind, RECONCILE_CREATE);
}

static void test_reconcile_plan_names_the_preferred_leader(void **state)
{
    struct fix *f = *state;
    add_part(f, 7, 1, 2, 3);
    report(f, 1, 7, 1);
    report(f, 2, 7, 3); /* Prefers 3, the store says 1. */
    report(f, 3, 7, 0); /* Did not say. */
    assert_int_equal(plan(f, 32), 1);
    assert_int_equal(f->out[0].kind, RECONCILE_PREFER);
    assert_int_equal(f->out[0].broker->id, 2);
    assert_int_equal(f->out[0].other, 3);
    assert_ptr_equal(f->out[0].part, &f->parts[0]);
    f->moving = 7;
    assert_int_equal(plan(f, 32), 0);
}

static void test_reconcile_plan_deletes_groups_not_in_the_store(void **state)
{
    struct fix *f = *state;
    report(f, 4, 99, 0);
    assert_int_equal(plan(f, 32), 1);
    assert_int_equal(f->out[0].kind, RECONCILE_DELETE);
    assert_int_equal(f->out[0].broker->id, 4);
    assert_int_equal(f->out[0].group_id, 99);
    assert_null(f->out[0].part);
    /* Even while a move of that group id runs: the store has no such
     * group. */
    f->moving = 99;
    assert_int_equal(plan(f, 32), 1);
}

static void test_reconcile_plan_deletes_a_former_member_once_not_a_voter(
    void **state)
{
    struct fix *f = *state;
    add_part(f, 7, 1, 2, 3);
    report_all(f);
    report(f, 5, 7, 0); /* The replica a move left behind. */
    /* No voters reported: never deleted. */
    assert_int_equal(plan(f, 32), 0);
    /* Still a voter: kept. */
    f->voters_gid = 7;
    uint32_t with5[] = {1, 2, 3, 5};
    memcpy(f->voters, with5, sizeof with5);
    f->n_voters = 4;
    assert_int_equal(plan(f, 32), 0);
    /* Removed from the group: deleted, but not while a move runs. */
    f->n_voters = 3;
    f->moving = 7;
    assert_int_equal(plan(f, 32), 0);
    f->moving = 0;
    assert_int_equal(plan(f, 32), 1);
    assert_int_equal(f->out[0].kind, RECONCILE_DELETE);
    assert_int_equal(f->out[0].broker->id, 5);
    assert_ptr_equal(f->out[0].part, &f->parts[0]);
}

static void test_reconcile_plan_stops_at_max(void **state)
{
    struct fix *f = *state;
    add_part(f, 7, 1, 2, 3);
    add_part(f, 8, 2, 3, 4);
    /* Six creations wanted. */
    assert_int_equal(plan(f, 32), 6);
    assert_int_equal(plan(f, 4), 4);
    assert_int_equal(plan(f, 0), 0);
}

static void test_reconcile_plan_unknown_member_is_noted_not_sent(void **state)
{
    struct fix *f = *state;
    add_part(f, 7, 1, 2, 9); /* Broker 9 is not in the store. */
    add_part(f, 8, 1, 2, 3);
    assert_int_equal(plan(f, 1), 2);
    assert_int_equal(f->out[0].kind, RECONCILE_UNKNOWN_MEMBER);
    assert_int_equal(f->out[0].group_id, 7);
    assert_int_equal(f->out[0].other, 9);
    /* It does not count toward max: the next creation still goes. */
    assert_int_equal(f->out[1].kind, RECONCILE_CREATE);
    assert_int_equal(f->out[1].group_id, 8);
}

static void test_reconcile_plan_one_order_per_pair(void **state)
{
    struct fix *f = *state;
    report(f, 4, 99, 0);
    report(f, 4, 99, 0); /* Reported twice. */
    assert_int_equal(plan(f, 32), 1);
}

/* A reported group at or above the store's next group id was never
 * placed by it (the store is older than the broker's data): it is noted,
 * never deleted, and not noted again while held. One below is deleted. */
static void test_reconcile_plan_quarantines_groups_never_placed(void **state)
{
    struct fix *f = *state;
    f->next_gid = 50;
    report(f, 4, 99, 0);
    report(f, 4, 99, 0);
    report(f, 4, 50, 0);
    report(f, 5, 49, 0);
    assert_int_equal(plan(f, 32), 3);
    /* A broker's reports are in group order. */
    assert_int_equal(f->out[0].kind, RECONCILE_QUARANTINE);
    assert_int_equal(f->out[0].broker->id, 4);
    assert_int_equal(f->out[0].group_id, 50);
    assert_int_equal(f->out[1].kind, RECONCILE_QUARANTINE);
    assert_int_equal(f->out[1].group_id, 99);
    assert_int_equal(f->out[2].kind, RECONCILE_DELETE);
    assert_int_equal(f->out[2].broker->id, 5);
    assert_int_equal(f->out[2].group_id, 49);
    /* Notes are not orders: one order may still be sent. */
    assert_int_equal(plan(f, 1), 3);
    f->held_broker = 4;
    f->held_gid = 99;
    assert_int_equal(plan(f, 32), 2);
    assert_int_equal(f->out[0].group_id, 50);
    /* Recorded as foreign, 49 stays too, below the counter. */
    f->recorded_gid = 49;
    assert_int_equal(plan(f, 32), 2);
    assert_int_equal(f->out[1].kind, RECONCILE_QUARANTINE);
    assert_int_equal(f->out[1].group_id, 49);
    assert_true(reconcile_plan_foreign(50, 50, false));
    assert_false(reconcile_plan_foreign(50, 49, false));
    assert_true(reconcile_plan_foreign(50, 49, true));
}

int main(void)
{
#define T(name) cmocka_unit_test_setup(name, setup)
    const struct CMUnitTest tests[] = {
        T(test_reconcile_plan_creates_what_is_placed_and_not_reported),
        T(test_reconcile_plan_nothing_when_all_match),
        T(test_reconcile_plan_only_eligible_brokers),
        T(test_reconcile_plan_leaves_moving_and_held_groups),
        T(test_reconcile_plan_no_creation_outside_the_voters),
        T(test_reconcile_plan_names_the_preferred_leader),
        T(test_reconcile_plan_deletes_groups_not_in_the_store),
        T(test_reconcile_plan_deletes_a_former_member_once_not_a_voter),
        T(test_reconcile_plan_stops_at_max),
        T(test_reconcile_plan_unknown_member_is_noted_not_sent),
        T(test_reconcile_plan_one_order_per_pair),
        T(test_reconcile_plan_quarantines_groups_never_placed),
    };
#undef T
    return cmocka_run_group_tests_name("reconcile_plan", tests, NULL, NULL);
}

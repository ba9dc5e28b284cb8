/*
 * Unit tests of replica placement and repair planning: exact balance on
 * three brokers, convergence from uneven load on four to seven, refusal
 * with too few live brokers, repair plans (targets, one move per
 * partition, the move limit, draining, urgency), and properties over
 * random inputs.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "manager/placement.h"
#include "rq_err.h"
#include "unit_util.h"

#define MAX_BROKERS 16

static uint32_t placed[2048][MCMD_RF];

static struct placement_broker *by_id(struct placement_broker *b, size_t n,
                                      uint32_t id)
{
    for (size_t i = 0; i < n; i++) {
        if (b[i].id == id) {
            return &b[i];
        }
    }
    return NULL;
}

static bool row_holds(const uint32_t *r, uint32_t id)
{
    for (int i = 0; i < MCMD_RF; i++) {
        if (r[i] == id) {
            return true;
        }
    }
    return false;
}

/* Every row: distinct ids of ALIVE brokers. */
static void assert_rows_valid(struct placement_broker *b, size_t nb,
                              uint32_t (*rows)[MCMD_RF], uint32_t n)
{
    for (uint32_t p = 0; p < n; p++) {
        for (int i = 0; i < MCMD_RF; i++) {
            struct placement_broker *x = by_id(b, nb, rows[p][i]);
            assert_non_null(x);
            assert_int_equal(x->state, MBROKER_ALIVE);
            for (int j = 0; j < i; j++) {
                assert_int_not_equal(rows[p][i], rows[p][j]);
            }
        }
    }
}

/* The spread (max - min) of replica and preferred counts over ALIVE
 * brokers. */
static void spreads(const struct placement_broker *b, size_t n, uint32_t *r,
                    uint32_t *p)
{
    uint32_t rmin = UINT32_MAX;
    uint32_t rmax = 0;
    uint32_t pmin = UINT32_MAX;
    uint32_t pmax = 0;
    for (size_t i = 0; i < n; i++) {
        if (b[i].state != MBROKER_ALIVE) {
            continue;
        }
        rmin = b[i].n_replicas < rmin ? b[i].n_replicas : rmin;
        rmax = b[i].n_replicas > rmax ? b[i].n_replicas : rmax;
        pmin = b[i].n_preferred < pmin ? b[i].n_preferred : pmin;
        pmax = b[i].n_preferred > pmax ? b[i].n_preferred : pmax;
    }
    *r = rmax - rmin;
    *p = pmax - pmin;
}

static void alive_brokers(struct placement_broker *b, size_t n)
{
    memset(b, 0, n * sizeof *b);
    for (size_t i = 0; i < n; i++) {
        b[i].id = (uint32_t)(i + 1);
        b[i].state = MBROKER_ALIVE;
    }
}

/* ---- Placement ---- */

static void test_placement_three_brokers_balance_exactly(void **state)
{
    (void)state;
    struct placement_broker b[3];
    alive_brokers(b, 3);
    assert_int_equal(placement_assign(b, 3, 1000, placed), 0);
    assert_rows_valid(b, 3, placed, 1000);

    uint32_t lead[4] = {0};
    for (uint32_t p = 0; p < 1000; p++) {
        lead[placed[p][0]]++;
    }
    for (int i = 0; i < 3; i++) {
        assert_int_equal(b[i].n_replicas, 1000);
        assert_int_equal(b[i].n_preferred, lead[b[i].id]);
        assert_true(b[i].n_preferred == 333 || b[i].n_preferred == 334);
    }
    /* The tie goes to the lowest id. */
    assert_int_equal(b[0].n_preferred, 334);
}

static void test_placement_many_brokers_from_empty(void **state)
{
    (void)state;
    for (size_t n = 4; n <= 12; n++) {
        struct placement_broker b[MAX_BROKERS];
        uint32_t r;
        uint32_t p;
        alive_brokers(b, n);
        assert_int_equal(placement_assign(b, n, 1000, placed), 0);
        assert_rows_valid(b, n, placed, 1000);
        spreads(b, n, &r, &p);
        assert_true(r <= 1);
        assert_true(p <= 1);
    }
}

/*
 * From uneven counts, one partition at a time: both spreads reach one
 * within a bound, after which replica counts stay within one and preferred
 * counts within two.
 */
static void test_placement_uneven_load_converges(void **state)
{
    (void)state;
    uint64_t rng = 0x5eed;
    for (int trial = 0; trial < 200; trial++) {
        struct placement_broker b[MAX_BROKERS];
        size_t n = 4 + (size_t)(trial % 4);
        alive_brokers(b, n);
        for (size_t i = 0; i < n; i++) {
            b[i].id =
                (uint32_t)(xorshift64star(&rng) % 1000) * 16 + (uint32_t)i;
            b[i].n_replicas = (uint32_t)(xorshift64star(&rng) % 150);
            b[i].n_preferred =
                (uint32_t)(xorshift64star(&rng) % (b[i].n_replicas + 1));
        }
        int converged = -1;
        for (int k = 0; k < 1200; k++) {
            uint32_t row[1][MCMD_RF];
            uint32_t r;
            uint32_t p;
            assert_int_equal(placement_assign(b, n, 1, row), 0);
            assert_rows_valid(b, n, row, 1);
            spreads(b, n, &r, &p);
            if (converged < 0 && r <= 1 && p <= 1) {
                converged = k;
            } else if (converged >= 0) {
                assert_true(r <= 1);
                assert_true(p <= 2);
            }
        }
        /* The slowest case is four brokers, one far behind: it gains one
         * replica per partition and the others three quarters, so a gap
         * of 150 closes in 600 partitions; the leaderships follow. */
        if (converged < 0 || converged > 1000) {
            fail_msg("trial %d (%zu brokers) converged at %d", trial, n,
                     converged);
        }
    }
}

static void test_placement_new_broker_catches_up_first(void **state)
{
    (void)state;
    struct placement_broker b[4];
    alive_brokers(b, 4);
    for (int i = 0; i < 3; i++) {
        b[i].n_replicas = 300;
        b[i].n_preferred = 100;
    }
    /* Broker 4 is new: it is in every partition until it has caught up. */
    assert_int_equal(placement_assign(b, 4, 200, placed), 0);
    for (uint32_t p = 0; p < 200; p++) {
        assert_true(row_holds(placed[p], 4));
    }
    assert_int_equal(b[3].n_replicas, 200);
    /* It led until it matched the others, then took its turn: 500 lead
     * roles over four brokers. */
    for (int i = 0; i < 4; i++) {
        assert_int_equal(b[i].n_preferred, 125);
    }
}

static void test_placement_chained_calls_equal_one_call(void **state)
{
    (void)state;
    struct placement_broker a[5];
    struct placement_broker b[5];
    static uint32_t second[600][MCMD_RF];
    alive_brokers(a, 5);
    a[2].n_replicas = 40;
    a[4].n_preferred = 7;
    memcpy(b, a, sizeof a);
    assert_int_equal(placement_assign(a, 5, 1000, placed), 0);
    assert_int_equal(placement_assign(b, 5, 400, second), 0);
    assert_int_equal(placement_assign(b, 5, 600, second), 0);
    assert_memory_equal(placed[400], second, sizeof second);
    assert_memory_equal(a, b, sizeof a);
}

static void test_placement_independent_of_broker_order(void **state)
{
    (void)state;
    struct placement_broker a[6];
    struct placement_broker b[6];
    static uint32_t other[300][MCMD_RF];
    uint32_t loads[6] = {5, 5, 3, 9, 3, 5};
    alive_brokers(a, 6);
    for (size_t i = 0; i < 6; i++) {
        a[i].id = (uint32_t)(10 + i);
        a[i].n_replicas = loads[i];
        a[i].n_preferred = loads[i] / 3;
    }
    for (size_t i = 0; i < 6; i++) {
        b[i] = a[5 - i];
    }
    assert_int_equal(placement_assign(a, 6, 300, placed), 0);
    assert_int_equal(placement_assign(b, 6, 300, other), 0);
    assert_memory_equal(placed, other, sizeof other);
}

static void test_placement_needs_three_alive_brokers(void **state)
{
    (void)state;
    struct placement_broker b[6];
    uint32_t row[1][MCMD_RF] = {{7, 7, 7}};
    alive_brokers(b, 6);
    b[0].state = MBROKER_SUSPECT;
    b[1].state = MBROKER_DEAD;
    b[2].state = MBROKER_DRAINING;
    b[3].state = MBROKER_REMOVED;
    struct placement_broker before[6];
    memcpy(before, b, sizeof b);
    assert_int_equal(placement_assign(b, 6, 1, row), PLACEMENT_NOBROKERS);
    assert_int_equal(placement_assign(b, 0, 1, row), PLACEMENT_NOBROKERS);
    assert_int_equal(placement_assign(NULL, 0, 1, row), PLACEMENT_NOBROKERS);
    assert_memory_equal(b, before, sizeof b);
    assert_int_equal(row[0][0], 7);

    /* A third ALIVE one is enough, and only the ALIVE ones are used. */
    b[0].state = MBROKER_ALIVE;
    assert_int_equal(placement_assign(b, 6, 50, placed), 0);
    assert_rows_valid(b, 6, placed, 50);
    assert_int_equal(b[1].n_replicas, 0);
    assert_int_equal(b[2].n_replicas, 0);
}

/* ---- Repair ---- */

struct repair_case {
    struct placement_broker b[MAX_BROKERS];
    size_t nb;
    struct placement_partition parts[256];
    size_t np;
    struct placement_move moves[256];
};

static void add_part(struct repair_case *c, uint32_t r0, uint32_t r1,
                     uint32_t r2)
{
    struct placement_partition *p = &c->parts[c->np];
    p->group_id = 100 + c->np;
    p->replicas[0] = r0;
    p->replicas[1] = r1;
    p->replicas[2] = r2;
    c->np++;
}

static const struct placement_partition *part_of(const struct repair_case *c,
                                                 uint64_t group)
{
    for (size_t i = 0; i < c->np; i++) {
        if (c->parts[i].group_id == group) {
            return &c->parts[i];
        }
    }
    return NULL;
}

static bool healthy(struct repair_case *c, uint32_t id)
{
    struct placement_broker *b = by_id(c->b, c->nb, id);
    return b != NULL &&
           (b->state == MBROKER_ALIVE || b->state == MBROKER_SUSPECT);
}

/*
 * What every plan must satisfy: at most @max moves, at most one per
 * partition, each from a replica that needs to move to an ALIVE broker
 * outside the partition; and if the limit was not reached, every partition
 * that needed a move and had a target got one.
 */
static void assert_plan_valid(struct repair_case *c, size_t n, size_t max)
{
    assert_true(n <= max);
    for (size_t i = 0; i < n; i++) {
        const struct placement_move *m = &c->moves[i];
        const struct placement_partition *p = part_of(c, m->group_id);
        assert_non_null(p);
        assert_true(row_holds(p->replicas, m->from));
        assert_false(healthy(c, m->from));
        assert_false(row_holds(p->replicas, m->to));
        struct placement_broker *to = by_id(c->b, c->nb, m->to);
        assert_non_null(to);
        assert_int_equal(to->state, MBROKER_ALIVE);
        for (size_t j = 0; j < i; j++) {
            assert_true(c->moves[j].group_id != m->group_id);
        }
    }
    if (n == max) {
        return;
    }
    for (size_t i = 0; i < c->np; i++) {
        const struct placement_partition *p = &c->parts[i];
        bool needs = false;
        bool target = false;
        bool moved = false;
        for (int r = 0; r < MCMD_RF; r++) {
            needs |= !healthy(c, p->replicas[r]);
        }
        for (size_t k = 0; k < c->nb; k++) {
            target |= c->b[k].state == MBROKER_ALIVE &&
                      !row_holds(p->replicas, c->b[k].id);
        }
        for (size_t j = 0; j < n; j++) {
            moved |= c->moves[j].group_id == p->group_id;
        }
        assert_true(moved == (needs && target));
    }
}

static void test_placement_repair_replaces_dead_replicas(void **state)
{
    (void)state;
    struct repair_case *c = calloc(1, sizeof *c);
    assert_non_null(c);
    c->nb = 6;
    alive_brokers(c->b, c->nb);
    c->b[5].state = MBROKER_DEAD; /* Broker 6. */
    for (uint32_t i = 0; i < 30; i++) {
        add_part(c, 6, i % 5 + 1, (i + 1) % 5 + 1);
        c->b[i % 5].n_replicas++;
        c->b[(i + 1) % 5].n_replicas++;
    }
    add_part(c, 1, 2, 3); /* Healthy: left alone. */
    c->b[5].n_replicas = 30;
    c->b[5].n_preferred = 30;

    size_t n = placement_repair(c->b, c->nb, c->parts, c->np, 100, c->moves);
    assert_int_equal(n, 30);
    assert_plan_valid(c, n, 100);
    for (size_t i = 0; i < n; i++) {
        assert_int_equal(c->moves[i].from, 6);
    }
    /* The moves spread the load: 30 + 60 replicas over 5 brokers, and the
     * preferred leaderships of broker 6 with them. */
    uint32_t r;
    uint32_t p;
    c->b[5].state = MBROKER_REMOVED; /* Leave it out of the spreads. */
    spreads(c->b, c->nb, &r, &p);
    assert_true(r <= 1);
    assert_true(p <= 1);
    assert_int_equal(c->b[5].n_replicas, 0);
    assert_int_equal(c->b[5].n_preferred, 0);
    free(c);
}

static void test_placement_repair_respects_max_moves(void **state)
{
    (void)state;
    struct repair_case *c = calloc(1, sizeof *c);
    assert_non_null(c);
    c->nb = 5;
    alive_brokers(c->b, c->nb);
    c->b[0].state = MBROKER_DEAD;
    for (int i = 0; i < 10; i++) {
        add_part(c, 2, 1, 3);
    }
    assert_int_equal(
        placement_repair(c->b, c->nb, c->parts, c->np, 0, c->moves), 0);
    size_t n = placement_repair(c->b, c->nb, c->parts, c->np, 3, c->moves);
    assert_int_equal(n, 3);
    assert_plan_valid(c, n, 3);
    /* Input order within a pass: the first three partitions. */
    for (size_t i = 0; i < n; i++) {
        assert_true(c->moves[i].group_id == 100 + i);
    }
    free(c);
}

static void test_placement_repair_drains_draining_brokers(void **state)
{
    (void)state;
    struct repair_case *c = calloc(1, sizeof *c);
    assert_non_null(c);
    c->nb = 6;
    alive_brokers(c->b, c->nb);
    c->b[1].state = MBROKER_DRAINING; /* Broker 2. */
    c->b[2].state = MBROKER_SUSPECT;  /* Broker 3: late, but stays. */
    c->b[5].state = MBROKER_REMOVING; /* Broker 6: drains, then leaves. */
    add_part(c, 1, 2, 3);
    add_part(c, 2, 3, 4);
    add_part(c, 3, 4, 5);
    add_part(c, 6, 4, 5);
    size_t n = placement_repair(c->b, c->nb, c->parts, c->np, 10, c->moves);
    assert_int_equal(n, 3);
    assert_plan_valid(c, n, 10);
    for (size_t i = 0; i < n; i++) {
        assert_int_equal(c->moves[i].from, i < 2 ? 2 : 6);
        /* Neither a draining, a removing nor the suspect broker receives. */
        assert_true(c->moves[i].to != 2 && c->moves[i].to != 3 &&
                    c->moves[i].to != 6);
    }
    free(c);
}

static void test_placement_repair_most_urgent_first(void **state)
{
    (void)state;
    struct repair_case *c = calloc(1, sizeof *c);
    assert_non_null(c);
    c->nb = 7;
    alive_brokers(c->b, c->nb);
    c->b[0].state = MBROKER_DRAINING; /* 1 */
    c->b[1].state = MBROKER_DEAD;     /* 2 */
    c->b[2].state = MBROKER_REMOVED;  /* 3 */
    add_part(c, 1, 4, 5);             /* Draining only. */
    add_part(c, 4, 2, 5);             /* One down. */
    add_part(c, 1, 5, 3);  /* One down and one draining: down moves first. */
    add_part(c, 6, 2, 99); /* Two down (99 is unknown). */
    size_t n = placement_repair(c->b, c->nb, c->parts, c->np, 1, c->moves);
    assert_int_equal(n, 1);
    assert_true(c->moves[0].group_id == 103);
    assert_int_equal(c->moves[0].from, 2);

    n = placement_repair(c->b, c->nb, c->parts, c->np, 3, c->moves);
    assert_int_equal(n, 3);
    assert_plan_valid(c, n, 3);
    assert_true(c->moves[1].group_id == 101);
    assert_true(c->moves[2].group_id == 102);
    assert_int_equal(c->moves[2].from, 3);
    free(c);
}

static void test_placement_repair_skips_partitions_without_target(void **state)
{
    (void)state;
    struct repair_case *c = calloc(1, sizeof *c);
    assert_non_null(c);
    c->nb = 4;
    alive_brokers(c->b, c->nb);
    c->b[3].state = MBROKER_DEAD;
    c->b[2].state = MBROKER_DEAD;
    add_part(c, 1, 2, 4); /* Only 1 and 2 are ALIVE, both hold it. */
    add_part(c, 3, 4, 1); /* Target: 2. */
    size_t n = placement_repair(c->b, c->nb, c->parts, c->np, 10, c->moves);
    assert_int_equal(n, 1);
    assert_plan_valid(c, n, 10);
    assert_true(c->moves[0].group_id == 101);
    assert_int_equal(c->moves[0].to, 2);
    free(c);
}

/* ---- Properties over random inputs ---- */

static void test_placement_random_inputs(void **state)
{
    (void)state;
    uint64_t rng = 0xfeedface;
    struct repair_case *c = calloc(1, sizeof *c);
    assert_non_null(c);
    for (int trial = 0; trial < 2000; trial++) {
        memset(c, 0, sizeof *c);
        c->nb = (size_t)(xorshift64star(&rng) % 11);
        size_t alive = 0;
        for (size_t i = 0; i < c->nb; i++) {
            c->b[i].id = (uint32_t)(i * 3 + 1 + xorshift64star(&rng) % 3);
            c->b[i].state =
                (enum mbroker_state)(MBROKER_ALIVE + xorshift64star(&rng) % 5);
            if (xorshift64star(&rng) % 2) {
                c->b[i].state = MBROKER_ALIVE;
            }
            c->b[i].n_replicas = (uint32_t)(xorshift64star(&rng) % 50);
            c->b[i].n_preferred = (uint32_t)(xorshift64star(&rng) % 20);
            alive += c->b[i].state == MBROKER_ALIVE;
        }

        struct placement_broker before[MAX_BROKERS];
        memcpy(before, c->b, sizeof before);
        uint32_t n_parts = (uint32_t)(xorshift64star(&rng) % 64);
        int rv = placement_assign(c->b, c->nb, n_parts, placed);
        if (alive < MCMD_RF) {
            assert_int_equal(rv, PLACEMENT_NOBROKERS);
            assert_memory_equal(before, c->b, sizeof before);
        } else {
            assert_int_equal(rv, 0);
            assert_rows_valid(c->b, c->nb, placed, n_parts);
            /* The counts moved by exactly what was placed. */
            for (size_t i = 0; i < c->nb; i++) {
                uint32_t reps = 0;
                uint32_t leads = 0;
                for (uint32_t p = 0; p < n_parts; p++) {
                    reps += row_holds(placed[p], c->b[i].id);
                    leads += placed[p][0] == c->b[i].id;
                }
                assert_int_equal(c->b[i].n_replicas,
                                 before[i].n_replicas + reps);
                assert_int_equal(c->b[i].n_preferred,
                                 before[i].n_preferred + leads);
            }
        }

        /* Partitions of distinct ids, some of them unknown (ids above
         * every broker's). */
        c->np = (size_t)(xorshift64star(&rng) % 40);
        for (size_t i = 0; i < c->np; i++) {
            struct placement_partition *p = &c->parts[i];
            p->group_id = 1 + i * 2;
            for (int r = 0; r < MCMD_RF; r++) {
                uint32_t id;
                do {
                    id = (uint32_t)(1 + xorshift64star(&rng) % 36);
                } while (row_holds(p->replicas, id));
                p->replicas[r] = id;
            }
        }
        size_t max = (size_t)(xorshift64star(&rng) % 45);
        size_t n =
            placement_repair(c->b, c->nb, c->parts, c->np, max, c->moves);
        assert_plan_valid(c, n, max);
    }
    free(c);
}

/* A fourth broker joins three that hold 6 partitions each: moves go to it
 * from the most loaded until the counts differ by one at most, each
 * partition once, never its preferred leader while another replica will
 * do, never a partition with a replica not ALIVE. */
static void test_placement_rebalance_fills_a_new_broker(void **state)
{
    (void)state;
    struct repair_case *c = calloc(1, sizeof *c);
    assert_non_null(c);
    c->nb = 4;
    alive_brokers(c->b, c->nb);
    for (uint32_t i = 0; i < 6; i++) {
        add_part(c, i % 3 + 1, (i + 1) % 3 + 1, (i + 2) % 3 + 1);
    }
    for (int k = 0; k < 3; k++) {
        c->b[k].n_replicas = 6;
        c->b[k].n_preferred = 2;
    }
    size_t n = placement_rebalance(c->b, c->nb, c->parts, c->np, 100, c->moves);
    assert_int_equal(n, 4); /* 18 replicas over 4: 5, 5, 4, 4. */
    uint32_t r;
    uint32_t p;
    spreads(c->b, c->nb, &r, &p);
    assert_true(r <= 1);
    assert_int_equal(c->b[3].n_replicas, 4);
    for (size_t i = 0; i < n; i++) {
        const struct placement_move *m = &c->moves[i];
        const struct placement_partition *pt = part_of(c, m->group_id);
        assert_int_equal(m->to, 4);
        assert_true(row_holds(pt->replicas, m->from));
        assert_true(pt->replicas[0] != m->from);
        for (size_t j = 0; j < i; j++) {
            assert_true(c->moves[j].group_id != m->group_id);
        }
    }
    /* One move at a time when asked for one. */
    alive_brokers(c->b, c->nb);
    for (int k = 0; k < 3; k++) {
        c->b[k].n_replicas = 6;
    }
    assert_int_equal(
        placement_rebalance(c->b, c->nb, c->parts, c->np, 1, c->moves), 1);
    /* Balanced already: nothing. */
    alive_brokers(c->b, c->nb);
    c->b[0].n_replicas = 5;
    c->b[1].n_replicas = 5;
    c->b[2].n_replicas = 4;
    c->b[3].n_replicas = 4;
    assert_int_equal(
        placement_rebalance(c->b, c->nb, c->parts, c->np, 100, c->moves), 0);
    /* A partition with a replica on a DEAD broker is repair's, not moved;
     * a DEAD broker is neither a source nor a target. */
    alive_brokers(c->b, c->nb);
    c->b[2].state = MBROKER_DEAD;
    c->b[0].n_replicas = 6;
    c->b[1].n_replicas = 6;
    c->b[2].n_replicas = 6;
    assert_int_equal(
        placement_rebalance(c->b, c->nb, c->parts, c->np, 100, c->moves), 0);
    free(c);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_placement_three_brokers_balance_exactly),
        cmocka_unit_test(test_placement_many_brokers_from_empty),
        cmocka_unit_test(test_placement_uneven_load_converges),
        cmocka_unit_test(test_placement_new_broker_catches_up_first),
        cmocka_unit_test(test_placement_chained_calls_equal_one_call),
        cmocka_unit_test(test_placement_independent_of_broker_order),
        cmocka_unit_test(test_placement_needs_three_alive_brokers),
        cmocka_unit_test(test_placement_repair_replaces_dead_replicas),
        cmocka_unit_test(test_placement_repair_respects_max_moves),
        cmocka_unit_test(test_placement_repair_drains_draining_brokers),
        cmocka_unit_test(test_placement_repair_most_urgent_first),
        cmocka_unit_test(test_placement_repair_skips_partitions_without_target),
        cmocka_unit_test(test_placement_random_inputs),
        cmocka_unit_test(test_placement_rebalance_fills_a_new_broker),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}

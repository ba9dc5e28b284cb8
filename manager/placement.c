/*
 * Replica placement and repair planning (see placement.h). Greedy and
 * deterministic: every choice takes the minimum of a key over the eligible
 * brokers, with the broker id as the last part of every key.
 *
 * Placement of one partition. Let the level be the replica count of the
 * MCMD_RF-th least loaded ALIVE broker: brokers below the level must be
 * taken and brokers at it may be, which is all the freedom that keeps
 * replica counts as even as they can be (once within one of each other,
 * they stay so, and a lightly loaded broker, new or back, catches up
 * first). Within that freedom, the preferred leader is the broker with the
 * fewest preferred leaderships, and the remaining places at the level go
 * to the brokers with the most, so that those with few stay free to lead
 * the next partitions. Choosing the leader only among the least loaded
 * would let two halves of six brokers alternate forever with their lead
 * counts apart; with this rule, from uneven counts, replica counts end
 * within one of each other and preferred counts within one, at times two.
 */
#include "placement.h"

#include <stdbool.h>

#include "rq_err.h"

/* The key replicas are placed by: fewer replicas, then fewer preferred
 * leaderships, then the lower id. */
static bool replica_less(const struct placement_broker *a,
                         const struct placement_broker *b)
{
    if (a->n_replicas != b->n_replicas) {
        return a->n_replicas < b->n_replicas;
    }
    if (a->n_preferred != b->n_preferred) {
        return a->n_preferred < b->n_preferred;
    }
    return a->id < b->id;
}

static bool preferred_less(const struct placement_broker *a,
                           const struct placement_broker *b)
{
    if (a->n_preferred != b->n_preferred) {
        return a->n_preferred < b->n_preferred;
    }
    if (a->n_replicas != b->n_replicas) {
        return a->n_replicas < b->n_replicas;
    }
    return a->id < b->id;
}

static bool holds(const uint32_t *replicas, size_t n, uint32_t id)
{
    for (size_t i = 0; i < n; i++) {
        if (replicas[i] == id) {
            return true;
        }
    }
    return false;
}

/*
 * The least loaded ALIVE broker whose id is not among the @n_taken ids at
 * @taken, or NULL if every ALIVE broker is taken.
 */
static struct placement_broker *least_loaded(struct placement_broker *brokers,
                                             size_t n_brokers,
                                             const uint32_t *taken,
                                             size_t n_taken)
{
    struct placement_broker *best = NULL;
    for (size_t i = 0; i < n_brokers; i++) {
        struct placement_broker *b = &brokers[i];
        if (b->state != MBROKER_ALIVE || holds(taken, n_taken, b->id)) {
            continue;
        }
        if (best == NULL || replica_less(b, best)) {
            best = b;
        }
    }
    return best;
}

/* The fill order for the replicas that will not lead: more preferred
 * leaderships first, so brokers with few stay free for the next
 * partitions, where they can lead. Only brokers of equal replica count are
 * compared this way. */
static bool follower_first(const struct placement_broker *a,
                           const struct placement_broker *b)
{
    if (a->n_preferred != b->n_preferred) {
        return a->n_preferred > b->n_preferred;
    }
    return a->id < b->id;
}

/* Places one partition into @out; at least MCMD_RF brokers are ALIVE. */
static void assign_one(struct placement_broker *brokers, size_t n_brokers,
                       uint32_t *out)
{
    uint32_t ids[MCMD_RF];
    struct placement_broker *chosen[MCMD_RF];
    uint32_t level = 0;

    /* The replica count of the MCMD_RF-th least loaded broker: brokers
     * below it must be taken, brokers at it may be. */
    for (size_t r = 0; r < MCMD_RF; r++) {
        chosen[r] = least_loaded(brokers, n_brokers, ids, r);
        ids[r] = chosen[r]->id;
        level = chosen[r]->n_replicas;
    }

    /* The preferred leader: the fewest leaderships among those that may be
     * taken. */
    struct placement_broker *lead = NULL;
    for (size_t i = 0; i < n_brokers; i++) {
        struct placement_broker *b = &brokers[i];
        if (b->state == MBROKER_ALIVE && b->n_replicas <= level &&
            (lead == NULL || preferred_less(b, lead))) {
            lead = b;
        }
    }
    size_t n = 0;
    chosen[n] = lead;
    ids[n++] = lead->id;
    /* Then every broker below the level, then brokers at it. The first
     * loop found MCMD_RF brokers at or below the level, so there are
     * enough. */
    while (n < MCMD_RF) {
        struct placement_broker *below = NULL;
        struct placement_broker *at = NULL;
        for (size_t i = 0; i < n_brokers; i++) {
            struct placement_broker *b = &brokers[i];
            if (b->state != MBROKER_ALIVE || b->n_replicas > level ||
                holds(ids, n, b->id)) {
                continue;
            }
            if (b->n_replicas < level) {
                if (below == NULL || replica_less(b, below)) {
                    below = b;
                }
            } else if (at == NULL || follower_first(b, at)) {
                at = b;
            }
        }
        chosen[n] = below != NULL ? below : at;
        ids[n] = chosen[n]->id;
        n++;
    }
    for (size_t r = 0; r < MCMD_RF; r++) {
        chosen[r]->n_replicas++;
        out[r] = ids[r];
    }
    lead->n_preferred++;
}

int placement_assign(struct placement_broker *brokers, size_t n_brokers,
                     uint32_t n_partitions, uint32_t (*out)[MCMD_RF])
{
    size_t alive = 0;
    for (size_t i = 0; i < n_brokers; i++) {
        alive += brokers[i].state == MBROKER_ALIVE;
    }
    if (alive < MCMD_RF) {
        return PLACEMENT_NOBROKERS;
    }
    for (uint32_t p = 0; p < n_partitions; p++) {
        assign_one(brokers, n_brokers, out[p]);
    }
    return 0;
}

/* The broker numbered @id among @brokers, or NULL. */
static struct placement_broker *broker_by_id(struct placement_broker *brokers,
                                             size_t n_brokers, uint32_t id)
{
    for (size_t i = 0; i < n_brokers; i++) {
        if (brokers[i].id == id) {
            return &brokers[i];
        }
    }
    return NULL;
}

/* A replica whose broker is gone: DEAD, REMOVED, or not a known broker. */
static bool down(const struct placement_broker *b)
{
    return b == NULL || b->state == MBROKER_DEAD || b->state == MBROKER_REMOVED;
}

/*
 * The replica of @p to move: the first one that is down, else the first on
 * a DRAINING broker; -1 if none needs to move. *n_down counts the replicas
 * that are down.
 */
static int replica_to_move(struct placement_broker *brokers, size_t n_brokers,
                           const struct placement_partition *p, int *n_down)
{
    int first_down = -1;
    int first_draining = -1;
    *n_down = 0;
    for (int r = 0; r < MCMD_RF; r++) {
        struct placement_broker *b =
            broker_by_id(brokers, n_brokers, p->replicas[r]);
        if (down(b)) {
            (*n_down)++;
            if (first_down < 0) {
                first_down = r;
            }
        } else if ((b->state == MBROKER_DRAINING ||
                    b->state == MBROKER_REMOVING) &&
                   first_draining < 0) {
            first_draining = r;
        }
    }
    return first_down >= 0 ? first_down : first_draining;
}

/*
 * Partitions are planned in passes, most replicas down first (a partition
 * with two of three down has lost its majority; one with one down is a
 * failure away from it), then those that only drain; within a pass in
 * input order. The passes need no scratch memory, and the counts in
 * @brokers are updated as moves are planned, as in placement_assign.
 */
size_t placement_repair(struct placement_broker *brokers, size_t n_brokers,
                        const struct placement_partition *parts, size_t n_parts,
                        size_t max_moves, struct placement_move *out)
{
    size_t n = 0;
    for (int pass = MCMD_RF; pass >= 0 && n < max_moves; pass--) {
        for (size_t i = 0; i < n_parts && n < max_moves; i++) {
            const struct placement_partition *p = &parts[i];
            int n_down;
            int r = replica_to_move(brokers, n_brokers, p, &n_down);
            if (r < 0 || n_down != pass) {
                continue;
            }
            struct placement_broker *to =
                least_loaded(brokers, n_brokers, p->replicas, MCMD_RF);
            if (to == NULL) {
                continue; /* Every ALIVE broker already holds it. */
            }
            struct placement_broker *from =
                broker_by_id(brokers, n_brokers, p->replicas[r]);
            to->n_replicas++;
            if (from != NULL && from->n_replicas > 0) {
                from->n_replicas--;
            }
            if (r == 0) {
                /* The new member takes the old one's place in the list,
                 * and with it the preferred leadership. */
                to->n_preferred++;
                if (from != NULL && from->n_preferred > 0) {
                    from->n_preferred--;
                }
            }
            out[n].group_id = p->group_id;
            out[n].from = p->replicas[r];
            out[n].to = to->id;
            n++;
        }
    }
    return n;
}

/* Whether every replica of @p is on an ALIVE broker. */
static bool all_alive(struct placement_broker *brokers, size_t n_brokers,
                      const struct placement_partition *p)
{
    for (unsigned k = 0; k < MCMD_RF; k++) {
        const struct placement_broker *b =
            broker_by_id(brokers, n_brokers, p->replicas[k]);
        if (b == NULL || b->state != MBROKER_ALIVE) {
            return false;
        }
    }
    return true;
}

static int index_of(const struct placement_partition *p, uint32_t id)
{
    for (int k = 0; k < MCMD_RF; k++) {
        if (p->replicas[k] == id) {
            return k;
        }
    }
    return -1;
}

static bool planned(const struct placement_move *out, size_t n, uint64_t gid)
{
    for (size_t i = 0; i < n; i++) {
        if (out[i].group_id == gid) {
            return true;
        }
    }
    return false;
}

size_t placement_rebalance(struct placement_broker *brokers, size_t n_brokers,
                           const struct placement_partition *parts,
                           size_t n_parts, size_t max_moves,
                           struct placement_move *out)
{
    size_t n = 0;
    while (n < max_moves) {
        struct placement_broker *hi = NULL;
        struct placement_broker *lo = NULL;
        for (size_t i = 0; i < n_brokers; i++) {
            struct placement_broker *b = &brokers[i];
            if (b->state != MBROKER_ALIVE) {
                continue;
            }
            if (hi == NULL || b->n_replicas > hi->n_replicas ||
                (b->n_replicas == hi->n_replicas && b->id < hi->id)) {
                hi = b;
            }
            if (lo == NULL || b->n_replicas < lo->n_replicas ||
                (b->n_replicas == lo->n_replicas && b->id < lo->id)) {
                lo = b;
            }
        }
        if (hi == NULL || hi->n_replicas <= lo->n_replicas + 1) {
            break; /* Balanced: counts differ by one at most. */
        }
        /* A partition of @hi's that @lo lacks, all of it ALIVE: one whose
         * preferred leader is not @hi if there is one, so preferred
         * leaderships stay where they are. */
        const struct placement_partition *best = NULL;
        int best_r = -1;
        for (size_t i = 0; i < n_parts; i++) {
            const struct placement_partition *p = &parts[i];
            int r = index_of(p, hi->id);
            if (r < 0 || index_of(p, lo->id) >= 0 ||
                planned(out, n, p->group_id) ||
                !all_alive(brokers, n_brokers, p)) {
                continue;
            }
            if (best == NULL || (best_r == 0 && r != 0)) {
                best = p;
                best_r = r;
            }
            if (r != 0) {
                break;
            }
        }
        if (best == NULL) {
            break;
        }
        hi->n_replicas--;
        lo->n_replicas++;
        if (best_r == 0) {
            hi->n_preferred = hi->n_preferred > 0 ? hi->n_preferred - 1 : 0;
            lo->n_preferred++;
        }
        out[n++] = (struct placement_move){
            .group_id = best->group_id, .from = hi->id, .to = lo->id};
    }
    return n;
}

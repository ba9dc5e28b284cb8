/*
 * Replica placement and repair planning: pure functions over plain arrays,
 * so every decision the leader manager makes about where replicas live can
 * be unit-tested without a cluster.
 *
 * A partition has MCMD_RF (3) replicas on distinct brokers; replicas[0] is
 * its preferred leader. Placement spreads both replica counts and
 * preferred-leader counts over the eligible brokers (state ALIVE), taking
 * existing load into account; ties are broken by broker id so the result
 * depends only on the inputs.
 */
#ifndef PLACEMENT_H
#define PLACEMENT_H

#include <stddef.h>
#include <stdint.h>

#include "mcmd.h"

/* The placement's own code (its number one rq_err.h keeps for it): fewer
 * than MCMD_RF brokers are ALIVE. */
enum placement_err {
    PLACEMENT_NOBROKERS = 1018,
};

struct placement_broker {
    uint32_t id;
    enum mbroker_state state;
    uint32_t n_replicas;  /* replicas it holds now */
    uint32_t n_preferred; /* partitions whose preferred leader it is now */
};

/*
 * Places @n_partitions new partitions: out[p][0..2] are distinct ALIVE
 * broker ids, out[p][0] the preferred leader. The counts in @brokers are
 * updated as partitions are placed (so calls can be chained). Returns 0, or
 * PLACEMENT_NOBROKERS when fewer than MCMD_RF brokers are ALIVE (nothing
 * placed).
 */
int placement_assign(struct placement_broker *brokers, size_t n_brokers,
                     uint32_t n_partitions, uint32_t (*out)[MCMD_RF]);

struct placement_partition {
    uint64_t group_id;
    uint32_t replicas[MCMD_RF];
};

struct placement_move {
    uint64_t group_id;
    uint32_t from; /* the broker whose replica is replaced */
    uint32_t to;   /* the broker that receives the new replica */
};

/*
 * Plans repairs: for every partition with a replica on a DEAD, DRAINING,
 * REMOVING or REMOVED broker (or on an id not in @brokers; REMOVING counts
 * as DRAINING below), one move to an ALIVE broker
 * that does not already hold it, the least loaded first. At most one move
 * per partition per plan (a membership change adds the new member, catches
 * it up, then removes the old one, so a partition never drops below a
 * majority), and at most @max_moves in all. Partitions with no eligible
 * target are left out. Partitions with more replicas down (DEAD, REMOVED,
 * unknown) come first, DRAINING-only ones last; a replica down is moved
 * before a draining one. A move replaces @from by @to at the same place in
 * the replica list (so moving replicas[0] hands over the preferred
 * leadership), and the counts in @brokers are updated as moves are planned.
 * Returns the number of moves written to @out.
 */
size_t placement_repair(struct placement_broker *brokers, size_t n_brokers,
                        const struct placement_partition *parts, size_t n_parts,
                        size_t max_moves, struct placement_move *out);

/*
 * Plans rebalancing onto brokers that hold fewer replicas, such as a new
 * one: while the most loaded ALIVE broker holds two or more replicas more
 * than the least loaded, one move of a partition it holds (every replica
 * on an ALIVE broker, not on the least loaded one, not its preferred
 * leader if another will do) to the least loaded; ties by broker id. At
 * most @max_moves, one per partition; the counts in @brokers are updated.
 * Returns the number of moves written to @out.
 */
size_t placement_rebalance(struct placement_broker *brokers, size_t n_brokers,
                           const struct placement_partition *parts,
                           size_t n_parts, size_t max_moves,
                           struct placement_move *out);

#endif /* PLACEMENT_H */

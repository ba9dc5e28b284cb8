/*
 * Replica repair on the leader manager: a partition with a replica on a
 * broker that is DEAD, DRAINING, REMOVING or REMOVED gets a new replica on
 * an ALIVE broker (placement_repair chooses it), one membership change at
 * a time:
 *
 *   CREATE  the new broker hosts an empty replica (POST /internal/replicas,
 *           bootstrap false, the new member list)
 *   ADD     the group's leader adds it and answers once it has caught up
 *           and votes (POST /internal/replicas/{g}/members)
 *   REMOVE  the leader removes the old member
 *           (DELETE /internal/replicas/{g}/members/{id})
 *   COMMIT  MCMD_PARTITION_REPLICAS records the new replica set, checked
 *           against the epoch the move was planned from
 *
 * A step that fails ends the move; the group is left alone for a few
 * seconds and planned again from the store and the brokers' reports. A
 * move cut short by a leader change is finished by the next leader from
 * what the group's leader reports: voters that already hold the new
 * member (and no longer the old one) only need the COMMIT; voters that
 * hold both need the REMOVE. Reconciliation leaves groups being moved
 * alone and never deletes a replica that is a voter of its group.
 *
 * A replica that its ALIVE broker has reported "failed" (it could not be
 * opened, say a Raft segment cut short) for a few seconds, while the other
 * two are ALIVE and not failed, is rebuilt in place from its peers as a
 * new member, the replica set unchanged:
 *
 *   REMOVE   the group's leader removes the broken member, so it never
 *            votes or counts in a quorum with state it has lost
 *   REBUILD  its broker moves the broken files aside (kept) and opens an
 *            empty replica, bootstrap false
 *            (POST /internal/replicas/{g}/rebuild)
 *   ADD      the leader adds it back; it catches up (InstallSnapshot,
 *            then the partition log from peers) before it votes
 *
 * A rebuild cut short after its REMOVE (voters: the store's other two)
 * is resumed from REBUILD by the next leader.
 *
 * The new replica is created with the new replica set's replicas[0] as its
 * preferred leader; reconciliation tells the others once the set is
 * committed. A REMOVING broker (an admin remove of a broker that held
 * replicas) is committed REMOVED by repair_tick once the store places
 * nothing on it and it reports hosting nothing.
 *
 * Rebalancing. With nothing to repair and no move under way, one replica
 * at a time moves from the most loaded ALIVE broker to the least loaded
 * (placement_rebalance) by the same steps, REBALANCE_PAUSE_MS after the
 * last ended, until the counts differ by one at most: a broker added to a
 * cluster takes its share of the existing partitions.
 *
 * The decisions (which moves to start, whom a step asks, what an answer
 * means, when a removal is done) are repair_plan.h's pure functions, with
 * unit tests; this module calls brokers and proposes as they say.
 */
#ifndef REPAIR_H
#define REPAIR_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "mcmd.h"

struct mcore;
struct repair;

/*
 * @changed(@data) runs when a move changed what the store places where or
 * what brokers should host (a replica set committed, a rebuild done, a
 * broker removed), so that reconciliation looks again soon.
 */
typedef void (*repair_changed_cb)(void *data);

int repair_new(struct mcore *core, repair_changed_cb changed, void *data,
               struct repair **out);
void repair_free(struct repair *rp);

/* Plans and drives moves; runs every second on the leader. */
void repair_tick(struct repair *rp, uint64_t now);

/* Ends the moves that wait between attempts (shutdown, lost leadership). */
void repair_stop(struct repair *rp);

/* true while a move of @group_id is under way. */
bool repair_active(const struct repair *rp, uint64_t group_id);

/* A move under way, as GET /admin/moves shows it. */
struct repair_info {
    uint64_t group_id;
    char topic[MCMD_NAME_MAX + 1];
    uint32_t partition_id;
    uint32_t from;
    uint32_t to;      /* == from: a rebuild in place. */
    const char *kind; /* "repair", "rebalance" or "rebuild" */
    const char *step; /* "create", "add", "remove", "commit", "rebuild" */
    uint64_t age_ms;
};

/* The moves under way (at most @max written to @out); how many. */
size_t repair_list(const struct repair *rp, uint64_t now,
                   struct repair_info *out, size_t max);

#endif /* REPAIR_H */

/*
 * The reconcile plan: given the store's brokers and partitions and each
 * broker's last report, the orders that make the replicas brokers host
 * match the store (the rules are reconcile.h's: create what is placed and
 * not reported, name the store's preferred leader where a replica prefers
 * another, delete what is reported and no longer placed). A pure
 * function: the few things it must ask (is a group being moved, who votes
 * in a group, is an order on a pair held back) it asks through the
 * callbacks of struct reconcile_view, so tests give it fakes. reconcile.c
 * is the adapter: it gathers the view, sends the orders to brokers and
 * holds back repeated ones.
 */
#ifndef RECONCILE_PLAN_H
#define RECONCILE_PLAN_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "liveness.h"
#include "mstore.h"

/* Everything the plan looks at; all borrowed. */
struct reconcile_view {
    const struct mstore_broker *brokers;
    size_t n_brokers;
    const struct mstore_partition *parts; /* Sorted by group id. */
    size_t n_parts;
    /* reports[i]: brokers[i]'s last report, NULL if none since this
     * manager leads. */
    const struct liveness_broker *const *reports;
    /* true while repair moves @group_id: it is left alone. */
    bool (*moving)(void *data, uint64_t group_id);
    /* The voters of @group_id as its leader last reported them (0: no
     * such report), as liveness_voters. */
    unsigned (*voters)(void *data, uint64_t group_id,
                       uint32_t out[LIVENESS_VOTERS_MAX]);
    /* true if an order on (@broker, @group_id) is running or was sent a
     * moment ago. */
    bool (*held)(void *data, uint32_t broker, uint64_t group_id);
    /* true if @group_id, which the store does not have, is one it never
     * placed (reconcile_plan_foreign). */
    bool (*foreign)(void *data, uint64_t group_id);
    void *data; /* For the callbacks. */
};

/*
 * Whether a reported @group_id that the store does not have is one it
 * never placed: at or above the store's next group id (mstore_next_group_
 * id), as after the managers' data was restored from an older copy, or
 * already recorded as such (@recorded: mstore_group_foreign). Such a
 * replica is quarantined, never deleted: the store cannot know what it
 * holds, so an admin decides (DELETE /admin/brokers/{id}/replicas/{g}).
 */
static inline bool reconcile_plan_foreign(uint64_t next_group_id,
                                          uint64_t group_id, bool recorded)
{
    return recorded || group_id >= next_group_id;
}

enum reconcile_order_kind {
    RECONCILE_CREATE,         /* POST /internal/replicas */
    RECONCILE_PREFER,         /* POST /internal/replicas/{g}/preferred */
    RECONCILE_DELETE,         /* DELETE /internal/replicas/{g} */
    RECONCILE_UNKNOWN_MEMBER, /* A creation not sent: a member unknown. */
    RECONCILE_QUARANTINE,     /* Not sent: a replica the store never placed
                                 (reconcile_plan_foreign), left alone. */
};

struct reconcile_order {
    enum reconcile_order_kind kind;
    const struct mstore_broker *broker; /* Where (in the view's brokers). */
    uint64_t group_id;
    /* The store's partition; NULL for a DELETE of a group not in it. */
    const struct mstore_partition *part;
    /* CREATE: the members in the order brokers are given them
     * (policy_member_order). */
    const struct mstore_broker *members[MCMD_RF];
    /* PREFER: the broker the replica prefers now; UNKNOWN_MEMBER: the
     * member the store does not know. */
    uint32_t other;
};

/* Sorts @parts by group id, as struct reconcile_view wants them. */
void reconcile_plan_sort(struct mstore_partition *parts, size_t n);

/*
 * Plans a round over @v: at most @max orders to send (CREATE, PREFER,
 * DELETE) and at most @cap written in all (UNKNOWN_MEMBER and QUARANTINE
 * notes count toward @cap only; a QUARANTINE pair that is held is not
 * noted again), in order: per eligible broker (ALIVE, DRAINING or
 * REMOVING, heard since this manager leads) its creations by group id,
 * then its reported replicas in report order. No pair gets two orders.
 * Returns the number written to @out.
 */
size_t reconcile_plan(const struct reconcile_view *v, size_t max, size_t cap,
                      struct reconcile_order *out);

#endif /* RECONCILE_PLAN_H */

/*
 * The repair plan: which moves repair.c starts (resume what an earlier
 * leader left half done, rebuild a replica reported failed, replace the
 * replicas of brokers that are not ALIVE), which broker a step asks, what
 * a broker's answer to a step means, and which REMOVING broker is done.
 * Pure functions of the store's lists, the brokers' reports and the time;
 * the questions they ask (is a group busy, who votes in it, what did a
 * broker report) go through struct repair_view's callbacks, so tests give
 * fakes. repair.c is the adapter: it calls brokers, proposes, keeps the
 * timers and the holds. The steps themselves are drawn in repair.h.
 */
#ifndef REPAIR_PLAN_H
#define REPAIR_PLAN_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "liveness.h"
#include "mstore.h"

#define REPAIR_PLAN_REDIRECTS 3 /* 421s followed in a row, at most. */
#define REPAIR_PLAN_RETRIES 60  /* 503s waited out in a step, at most. */
/* A replica reported failed this long, without a break, is rebuilt. */
#define REPAIR_PLAN_REBUILD_AFTER_MS 5000

enum repair_step {
    REPAIR_CREATE,
    REPAIR_ADD,
    REPAIR_REMOVE,
    REPAIR_COMMIT,
    REPAIR_REBUILD,
};

/* Everything the plan looks at; all borrowed. */
struct repair_view {
    const struct mstore_broker *brokers;
    size_t n_brokers;
    const struct mstore_partition *parts;
    size_t n_parts;
    /* true while @group_id is being moved, or held back after a move. */
    bool (*busy)(void *data, uint64_t group_id);
    /* The voters of @group_id as its leader last reported them (0: no
     * such report), as liveness_voters. */
    unsigned (*voters)(void *data, uint64_t group_id,
                       uint32_t out[LIVENESS_VOTERS_MAX]);
    /* @broker's last report, as liveness_broker (NULL: none). */
    const struct liveness_broker *(*report)(void *data, uint32_t broker);
    void *data; /* For the callbacks. */
    /* Rebalancing moves allowed this round (placement_rebalance) when
     * nothing else is to be done; 0: none. */
    size_t rebalance_room;
};

struct repair_plan_move {
    const struct mstore_partition *part; /* In the view's parts. */
    uint32_t from;
    uint32_t to; /* == from: a rebuild in place. */
    enum repair_step first;
    bool rebalance; /* Onto a less loaded broker, nothing being down. */
};

/*
 * The moves to start at @now, at most @room, in order: for each partition
 * not busy, a move an earlier leader left half done (as the group's voters
 * show it), else a rebuild of a replica reported failed for
 * REPAIR_PLAN_REBUILD_AFTER_MS; nothing for a partition whose voters are
 * not known or differ from the store's replicas; then placement_repair's
 * moves (from CREATE) for the partitions left; and if none of these is to
 * be done, at most @v->rebalance_room of placement_rebalance's moves (from
 * CREATE). Returns the number written to @out.
 */
size_t repair_plan(const struct repair_view *v, uint64_t now, size_t room,
                   struct repair_plan_move *out);

/* The REMOVING broker to commit REMOVED at @now (the store places nothing
 * on it, and it reports hosting nothing, or has not been heard from since
 * this manager leads for @dead_ms); 0: none. */
uint32_t repair_plan_removal(const struct repair_view *v, uint64_t now,
                             uint64_t dead_ms);

/* The broker a membership step (ADD, REMOVE) of a move from @from to @to
 * asks first: the group's leader as the routing cache has it
 * (@route_leader, 0: none) unless it is @from, else a member staying (it
 * names the leader in a 421), else @to. */
uint32_t repair_plan_ask(uint32_t route_leader,
                         const struct mstore_partition *part, uint32_t from,
                         uint32_t to);

/* A broker's answer to a step. */
struct repair_answer {
    bool failed;    /* No HTTP answer. */
    long status;    /* The HTTP status. */
    uint32_t named; /* The "leader_id" it names; 0: none. */
};

enum repair_next_kind {
    REPAIR_FOLLOW, /* Ask @follow the same step now. */
    REPAIR_WAIT,   /* Ask the same step again after a pause. */
    REPAIR_FAIL,   /* The move ends, not done. */
    REPAIR_STEP,   /* Go on with @step. */
    REPAIR_DONE,   /* The move is done (a rebuild's last ADD). */
};

struct repair_next {
    enum repair_next_kind kind;
    uint32_t follow;
    enum repair_step step;
};

/* What follows @a, the answer to @step of a move (@rebuild: in place)
 * after @redirects 421s followed and @retries 503s waited out. */
void repair_plan_answer(const struct repair_answer *a, enum repair_step step,
                        bool rebuild, unsigned redirects, unsigned retries,
                        struct repair_next *out);

#endif /* REPAIR_PLAN_H */

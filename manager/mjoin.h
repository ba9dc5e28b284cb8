/*
 * How a manager with an empty Raft directory starts (DESIGN.md section
 * 17): it asks the other managers of --peers what they hold over the Raft
 * port (an RPC answered by manager.c, MJOIN_RPC_INFO), every half second,
 * until mjoin_plan decides:
 *
 *     PROBING --a majority of --peers empty, none live--> done(BOOTSTRAP)
 *     PROBING --a peer holds a live cluster--> JOINING
 *     JOINING --200 to POST /internal/managers/{id}/join--> done(JOIN)
 *     JOINING --202 (its old membership removed), failure--> PROBING
 *
 * The caller then bootstraps (BOOTSTRAP) or starts its node as it is
 * (JOIN: the leader has added it as a spare and replicates to it). Until
 * then the node does not run, so it neither votes nor campaigns.
 *
 * mjoin_rejoin() asks the same question of a running node that has heard
 * no leader for a while: a live cluster whose configuration leaves it out
 * (it was removed while away) is asked to add it back (mjoin_plan_rejoin);
 * otherwise nothing happens.
 */
#ifndef MJOIN_H
#define MJOIN_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <uv.h>

#include "mjoin_plan.h"

/* The RPC method of the question "what do you hold?"; its answer is JSON:
 * {"uid": "16 hex digits" or null, "commit": N, "applied": N,
 *  "leader_id": N, "leader_http": "HOST:PORT" or null,
 *  "http": "HOST:PORT", "members": [ids of its configuration]}. */
#define MJOIN_RPC_INFO 1

struct mcore;
struct rq_peer;
struct rq_rpc;
struct mjoin;

struct mjoin_config {
    uint64_t self;
    const struct rq_peer *peers; /* --peers, borrowed */
    size_t n_peers;
    const char *raft_addr; /* This manager's, borrowed. */
    const char *http_addr;
};

typedef void (*mjoin_done_cb)(void *data, enum mjoin_decision how);

/* Starts asking at once if @start, else waits for mjoin_rejoin(). 0 or
 * RQ_NOMEM. */
int mjoin_new(uv_loop_t *loop, struct rq_rpc *rpc, struct mcore *core,
              const struct mjoin_config *cfg, bool start, mjoin_done_cb cb,
              void *data, struct mjoin **out);

/* A running node asks once whether it was left out (see the top); a no-op
 * while a question is under way. */
void mjoin_rejoin(struct mjoin *j);

/* Stops: @cb is not called any more. Calls under way end on their own. */
void mjoin_stop(struct mjoin *j);

/* Once the loop has stopped. NULL is a no-op. */
void mjoin_free(struct mjoin *j);

#endif /* MJOIN_H */

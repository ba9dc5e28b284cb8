/*
 * How a manager whose Raft directory is empty starts (DESIGN.md section
 * 17): it asks the managers of --peers what they hold, then bootstraps a
 * new cluster, joins the one they hold, or waits. A pure function, so
 * that every case is a unit test (test_mjoin_plan.c); mjoin.c asks and
 * acts.
 *
 * A manager that lost its data must not vote as if it had it: a
 * bootstrap puts it back in the configuration as a voter with an empty
 * log, and its vote could then elect a leader that lacks committed
 * entries. So it bootstraps only when no peer holds a live cluster and a
 * majority of --peers (itself included) answered that they hold none; a
 * peer holding one makes it join as a new member instead, which catches
 * up before it votes.
 */
#ifndef MJOIN_PLAN_H
#define MJOIN_PLAN_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* What one peer said (or did not). */
struct mjoin_answer {
    uint64_t id;
    bool answered;
    /* It holds a live cluster: a committed cluster uid, or entries
     * committed past the bootstrap configuration (commit index > 1). */
    bool live;
    /* Its configuration lists the asking manager. */
    bool lists_self;
};

enum mjoin_decision {
    MJOIN_WAIT,      /* Ask again later. */
    MJOIN_BOOTSTRAP, /* Bootstrap the cluster of --peers. */
    MJOIN_JOIN,      /* Ask the live cluster to add this manager. */
};

/* True if a peer's answer (its cluster uid, 0 for none, and its Raft
 * commit index) shows a live cluster. */
bool mjoin_plan_live(uint64_t uid, uint64_t commit);

/*
 * The decision for manager @self, given the @n answers of the other
 * managers of --peers (@n_peers entries in all, @self_in_peers whether
 * @self is one of them): JOIN if any answer is live; otherwise BOOTSTRAP
 * if @self is in --peers and, with the answers (none live), makes a
 * majority of --peers; otherwise WAIT.
 */
enum mjoin_decision mjoin_plan(bool self_in_peers, size_t n_peers,
                               const struct mjoin_answer *answers, size_t n);

/*
 * For a manager whose node runs but has heard no leader for a while (it
 * was removed while it was away, say a StatefulSet scaled down and up
 * again): JOIN if a peer holds a live cluster whose configuration leaves
 * it out, otherwise WAIT (it is a member: the leader is only slow to come).
 */
enum mjoin_decision mjoin_plan_rejoin(const struct mjoin_answer *answers,
                                      size_t n);

#endif /* MJOIN_PLAN_H */

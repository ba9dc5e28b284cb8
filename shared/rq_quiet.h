/*
 * When a Raft group that carries no traffic may heartbeat less
 * ("quiescence"), decided by each server of the group from what it sees.
 *
 * A group's cost at rest is its heartbeats: with 1,000 groups a broker, each
 * heartbeating every 100 ms, the messages alone take a fifth of a core. A
 * quiet group keeps Raft's rules unchanged and only stretches its timing:
 * a quiet leader heartbeats every quiet_heartbeat_ms and a quiet follower
 * waits quiet_election_ms (randomised up to twice that, as always) before it
 * stands for election. The order is what keeps it free of spurious
 * elections (DESIGN.md section 15, "Idle groups go quiet"):
 *
 * - A follower goes quiet once its log, its commit index, its leader and
 *   its term have stayed the same for after_ms.
 * - A leader goes quiet once everything is committed, every other server
 *   of its configuration holds its whole log, and that has stayed so, with
 *   no new entry, for after_ms + election_ms + 2 heartbeat_ms: a follower
 *   learns the last commit index with the leader's next heartbeat and
 *   looks at its group every heartbeat, so by then every follower has been
 *   quiet for an election timeout.
 * - Anything that moves (an entry, a commit, a term, a leader, a role) ends
 *   the quiet at once; a leader is woken also by a request made to it and by
 *   a vote request it receives (rq_quiet_wake), before the entry it appends
 *   can reach a follower. A leader that wakes heartbeats at the ordinary
 *   rate at once but keeps the quiet election timeout for one ordinary
 *   election timeout more (rq_quiet_election_ms).
 *
 *     AWAKE --[nothing moved for after_ms (more on a leader)]--> QUIET
 *           [rq_quiet_step]
 *     QUIET --[something moved, rq_quiet_wake]--> AWAKE
 *           [rq_quiet_step, rq_quiet_wake]
 *
 * Pure: times are arguments, no raft, no I/O.
 */
#ifndef RQ_QUIET_H
#define RQ_QUIET_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct rq_quiet_config {
    uint64_t after_ms;    /* Unmoved this long: quiet. 0: never. */
    uint64_t election_ms; /* The group's ordinary timing. */
    uint64_t heartbeat_ms;
    uint64_t quiet_election_ms; /* The timing while quiet. */
    uint64_t quiet_heartbeat_ms;
};

/* Checks that quiet timing is no faster than the ordinary one and leaves a
 * quiet follower at least three quiet heartbeats before it stands; @why
 * says what is wrong. 0 or RQ_INVALID. A config with after_ms 0 is always
 * valid. */
int rq_quiet_config_check(const struct rq_quiet_config *c, char *why,
                          size_t whyn);

/* Raises the quiet timing of @c, where needed, to the least that
 * rq_quiet_config_check accepts. */
void rq_quiet_config_fit(struct rq_quiet_config *c);

/* What a server sees of its group, at one look. */
enum rq_quiet_role {
    RQ_QUIET_OTHER, /* Candidate, unavailable, not started. */
    RQ_QUIET_FOLLOWER,
    RQ_QUIET_LEADER,
};

struct rq_quiet_view {
    enum rq_quiet_role role;
    uint64_t term;
    uint64_t leader_id; /* 0: none known. */
    uint64_t last_index;
    uint64_t commit;
    /* Leader only: every other server of the configuration holds
     * last_index (its match index). */
    bool all_caught_up;
};

struct rq_quiet {
    bool quiet;
    uint64_t since_ms;         /* When the group last moved, as seen. */
    struct rq_quiet_view seen; /* At the last look. */
    /* A leader that woke keeps the quiet election timeout until then (see
     * rq_quiet_election_ms). */
    uint64_t grace_until_ms;
};

/* Starts awake; the first look counts as a move, so the wait starts
 * there. */
void rq_quiet_init(struct rq_quiet *q, uint64_t now_ms);

/*
 * Looks at @v at @now_ms and returns whether the group is quiet now;
 * q->quiet says the same. Moving (any field of @v other than
 * all_caught_up differing from the last look, or a leader whose followers
 * are behind) wakes it and restarts the wait.
 */
bool rq_quiet_step(struct rq_quiet *q, const struct rq_quiet_config *c,
                   const struct rq_quiet_view *v, uint64_t now_ms);

/* Wakes the group (a request made to the leader, a vote request heard)
 * and restarts the wait. Returns whether it was quiet. */
bool rq_quiet_wake(struct rq_quiet *q, const struct rq_quiet_config *c,
                   uint64_t now_ms);

/*
 * The heartbeat timeout to give libraft now: half the interval between
 * ticks (rq_quiet_tick_due), so that every tick sends a heartbeat whatever
 * the lag of the loop. libraft's leader sends a heartbeat at a tick only if
 * its last message to that follower is a heartbeat timeout old, and counts
 * a follower in contact only if it answered since the last contact check
 * that passed (src/progress.c), which runs at every tick before the
 * heartbeats: a tick that sent none, because the previous tick came late,
 * fails the next check and drops the followers to probe mode, in which a
 * leader sends nothing more while an AppendEntries is unanswered, so a
 * follower slow to write a large entry stops answering long enough to
 * depose it.
 */
uint64_t rq_quiet_heartbeat_ms(const struct rq_quiet *q,
                               const struct rq_quiet_config *c);

/* The election timeout to run with at @now_ms: the quiet one while quiet,
 * and on a leader for one ordinary election timeout after it woke (its
 * step-down check would otherwise count its followers' silence while it
 * was quiet); else the ordinary one. */
uint64_t rq_quiet_election_ms(const struct rq_quiet *q,
                              const struct rq_quiet_config *c, uint64_t now_ms);

/*
 * Whether Raft should get a tick at @now_ms, the last one having reached it
 * at @last_tick_ms: once the clock has passed a multiple of the tick
 * interval since, so that every group of a process ticks (and heartbeats)
 * at the same moments. The interval is heartbeat_ms awake and
 * quiet_heartbeat_ms quiet, and every tick sends a heartbeat
 * (rq_quiet_heartbeat_ms); Raft's timers read the clock, so a tick not
 * given loses nothing but its slack.
 */
bool rq_quiet_tick_due(const struct rq_quiet *q,
                       const struct rq_quiet_config *c, uint64_t last_tick_ms,
                       uint64_t now_ms);

#endif /* RQ_QUIET_H */

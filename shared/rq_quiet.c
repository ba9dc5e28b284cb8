/*
 * Quiescence of an idle Raft group (contract and reasoning in rq_quiet.h).
 */
#include "rq_quiet.h"

#include <inttypes.h>
#include <stdio.h>
#include <string.h>

#include "rq_err.h"

/* A quiet heartbeat arrives a quiet heartbeat after the last plus the
 * loop's lag (rq_quiet_tick_due); a quiet
 * follower waits at least this many quiet heartbeats, so that lateness and
 * a lost heartbeat or two never make it stand. */
#define QUIET_HEARTBEATS_PER_ELECTION 3

/* RQ_INVALID, saying so in @why, if @what (@v ms) is below @floor_what
 * (@floor ms). */
static int at_least(const char *what, uint64_t v, const char *floor_what,
                    uint64_t floor, char *why, size_t whyn)
{
    if (v >= floor) {
        return 0;
    }
    snprintf(why, whyn, "%s of %" PRIu64 " ms is below %s of %" PRIu64 " ms",
             what, v, floor_what, floor);
    return RQ_INVALID;
}

int rq_quiet_config_check(const struct rq_quiet_config *c, char *why,
                          size_t whyn)
{
    if (c->after_ms == 0) {
        return 0;
    }
    int rv = at_least("the quiet heartbeat", c->quiet_heartbeat_ms,
                      "the heartbeat", c->heartbeat_ms, why, whyn);
    if (rv == 0) {
        rv = at_least("the quiet election timeout", c->quiet_election_ms,
                      "the election timeout", c->election_ms, why, whyn);
    }
    if (rv == 0) {
        rv = at_least("the quiet election timeout", c->quiet_election_ms,
                      "three quiet heartbeats",
                      QUIET_HEARTBEATS_PER_ELECTION * c->quiet_heartbeat_ms,
                      why, whyn);
    }
    return rv;
}

void rq_quiet_config_fit(struct rq_quiet_config *c)
{
    if (c->quiet_heartbeat_ms < c->heartbeat_ms) {
        c->quiet_heartbeat_ms = c->heartbeat_ms;
    }
    if (c->quiet_election_ms < c->election_ms) {
        c->quiet_election_ms = c->election_ms;
    }
    if (c->quiet_election_ms <
        QUIET_HEARTBEATS_PER_ELECTION * c->quiet_heartbeat_ms) {
        c->quiet_election_ms =
            QUIET_HEARTBEATS_PER_ELECTION * c->quiet_heartbeat_ms;
    }
}

void rq_quiet_init(struct rq_quiet *q, uint64_t now_ms)
{
    memset(q, 0, sizeof *q);
    q->since_ms = now_ms;
}

/* A leader that wakes keeps the quiet election timeout for one ordinary
 * election timeout more. libraft's leader steps down when no majority has
 * answered since its last contact check that passed (src/timeout.c) for an
 * election timeout; while quiet that check passed up to a quiet heartbeat
 * ago, so the ordinary timeout at once could depose a leader whose
 * followers are merely busy writing the entry that woke it. Once the
 * grace is over, the followers have had an election timeout of ordinary
 * heartbeats to answer. A follower needs none: it wakes on an entry or a
 * commit from its leader, which restarts its election timer. */
static void grace(struct rq_quiet *q, const struct rq_quiet_config *c,
                  uint64_t now_ms)
{
    q->grace_until_ms = now_ms + c->election_ms;
}

static bool moved(const struct rq_quiet_view *a, const struct rq_quiet_view *b)
{
    return a->role != b->role || a->term != b->term ||
           a->leader_id != b->leader_id || a->last_index != b->last_index ||
           a->commit != b->commit;
}

bool rq_quiet_step(struct rq_quiet *q, const struct rq_quiet_config *c,
                   const struct rq_quiet_view *v, uint64_t now_ms)
{
    bool was = q->quiet;
    bool behind = v->role == RQ_QUIET_LEADER &&
                  (!v->all_caught_up || v->commit != v->last_index);
    if (moved(&q->seen, v) || behind || now_ms < q->since_ms) {
        q->since_ms = now_ms;
        q->quiet = false;
    }
    q->seen = *v;
    if (c->after_ms == 0) {
        q->quiet = false;
        return false;
    }
    uint64_t unmoved = now_ms - q->since_ms;
    switch (v->role) {
        case RQ_QUIET_FOLLOWER:
            q->quiet = v->leader_id != 0 && unmoved >= c->after_ms;
            break;
        case RQ_QUIET_LEADER:
            q->quiet =
                unmoved >= c->after_ms + c->election_ms + 2 * c->heartbeat_ms;
            break;
        default:
            q->quiet = false;
            break;
    }
    if (was && !q->quiet) {
        grace(q, c, now_ms);
    }
    return q->quiet;
}

bool rq_quiet_wake(struct rq_quiet *q, const struct rq_quiet_config *c,
                   uint64_t now_ms)
{
    bool was = q->quiet;
    q->quiet = false;
    q->since_ms = now_ms;
    if (was) {
        grace(q, c, now_ms);
    }
    return was;
}

/* The interval between ticks: a tick is a heartbeat. */
static uint64_t tick_ms(const struct rq_quiet *q,
                        const struct rq_quiet_config *c)
{
    return q->quiet ? c->quiet_heartbeat_ms : c->heartbeat_ms;
}

uint64_t rq_quiet_heartbeat_ms(const struct rq_quiet *q,
                               const struct rq_quiet_config *c)
{
    uint64_t half = tick_ms(q, c) / 2;
    return half > 0 ? half : 1;
}

uint64_t rq_quiet_election_ms(const struct rq_quiet *q,
                              const struct rq_quiet_config *c, uint64_t now_ms)
{
    bool in_grace =
        q->seen.role == RQ_QUIET_LEADER && now_ms < q->grace_until_ms;
    return q->quiet || in_grace ? c->quiet_election_ms : c->election_ms;
}

bool rq_quiet_tick_due(const struct rq_quiet *q,
                       const struct rq_quiet_config *c, uint64_t last_tick_ms,
                       uint64_t now_ms)
{
    uint64_t every = tick_ms(q, c);
    if (every == 0 || now_ms < last_tick_ms) {
        return true;
    }
    return now_ms / every > last_tick_ms / every;
}

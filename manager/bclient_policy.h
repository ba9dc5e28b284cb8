/*
 * bclient's follow/retry policy: which broker a call to a partition asks
 * next, and what a broker's answer means for the call (follow the leader
 * it names, ask the next replica, pause and ask again, or end). Pure
 * functions of the call's cursor, the routing cache's leader and the
 * answer as bclient.c parsed it: no HTTP, no timers, no clock, no cache
 * (bclient.c is the adapter: it sends the calls, keeps the timers and
 * updates the routing cache as the decision says).
 *
 * A produce asks the leader the cache names, else the partition's
 * preferred leader, then the others in turn, following a 421's named
 * leader at once (BCLIENT_POLICY_REDIRECTS times a call at most) and
 * pausing after any other failure. A read asks the cached leader, then
 * every replica in order, following named leaders (as many times a
 * round); a 200 that is not final (not from the confirmed leader, or no
 * records below the high watermark) counts as a failure. Once every
 * replica of a read has been asked, the round starts again after a
 * pause.
 */
#ifndef BCLIENT_POLICY_H
#define BCLIENT_POLICY_H

#include <stdbool.h>
#include <stdint.h>

#include "mcmd.h"

#define BCLIENT_POLICY_REDIRECTS 3 /* Named leaders followed, at most. */
#define BCLIENT_POLICY_WHY 384

/* Where a call stands: who to ask next. Zeroed at the call's start. */
struct bclient_policy_cursor {
    uint32_t redirect_to;        /* A leader named; 0: none. */
    uint32_t order[MCMD_RF + 1]; /* Reads: the brokers to ask. */
    unsigned n_order;
    unsigned next;      /* Reads: index into order; produce: rotation. */
    unsigned redirects; /* Named leaders followed this round. */
};

/*
 * The broker a produce asks next: a leader named by the last answer, else
 * on the first attempt @route_leader (the cache's, 0: none), else
 * @replicas in turn from the preferred leader.
 */
uint32_t bclient_policy_produce_target(struct bclient_policy_cursor *cur,
                                       uint32_t route_leader,
                                       const uint32_t replicas[MCMD_RF]);

/* Starts a read's round: @route_leader first (if any), then @replicas in
 * their order without it again. Forgets the redirects. */
void bclient_policy_read_order(struct bclient_policy_cursor *cur,
                               uint32_t route_leader,
                               const uint32_t replicas[MCMD_RF]);

/* The broker a read asks next: a named leader, else the round's next; 0
 * once every broker of the round has been asked. */
uint32_t bclient_policy_read_target(struct bclient_policy_cursor *cur);

/* A broker's answer to one attempt, as bclient.c read it. */
struct bclient_policy_answer {
    bool canceled;       /* The call was canceled: the manager closes. */
    const char *failed;  /* No HTTP answer: why (borrowed); NULL: one came. */
    long status;         /* The HTTP status. */
    bool json;           /* The body parsed as JSON. */
    const char *message; /* Its "message", or NULL. */
    uint32_t named;      /* The "leader_id" it names; 0: none. */
    bool retention;      /* A 404 with "first_offset". */
    bool final;          /* A read's answer policy_read_final takes. */
};

enum bclient_policy_step {
    BCLIENT_FOLLOW,      /* Ask @follow now. */
    BCLIENT_NEXT,        /* Ask the next broker now (reads). */
    BCLIENT_PAUSE,       /* Ask again after a pause, or 503 past the
                          * deadline (produce). */
    BCLIENT_FINISH,      /* End with the broker's status and answer. */
    BCLIENT_UNAVAILABLE, /* End with 503. */
};

struct bclient_policy_next {
    enum bclient_policy_step step;
    uint32_t follow;   /* FOLLOW: the leader named. */
    bool drop_target;  /* The routing cache forgets the target as leader. */
    bool target_leads; /* The target answered as the leader: the cache
                        * learns it (and the high watermark). */
    bool why_set;      /* why says what went wrong (kept for the 503). */
    char why[BCLIENT_POLICY_WHY];
};

/* What follows @a, the answer of broker @target to a produce (@produce)
 * or a read after @redirects named leaders were followed. */
void bclient_policy_answer(const struct bclient_policy_answer *a, bool produce,
                           uint32_t target, unsigned redirects,
                           struct bclient_policy_next *out);

/*
 * A read with no leader known asks every replica at once. What the answer
 * @a of replica @broker means: whether it is the one to give the caller
 * (final, none given yet as @delivered says, the manager not closing),
 * else which leader it names (@out->follow, 0: none) and why it is not.
 * Once every replica has answered, the call follows a named leader or
 * pauses (bclient.c).
 */
void bclient_policy_fan_answer(const struct bclient_policy_answer *a,
                               uint32_t broker, bool delivered,
                               struct bclient_policy_next *out);

/*
 * The pause before a call tries again after @pauses earlier pauses: 5 ms,
 * doubling to 100 ms. A leader that moves (a transfer to the preferred
 * broker, an election) is usually ready again within milliseconds, and a
 * fixed 100 ms pause was a client's longest wait under steady load; a
 * leader that stays away is still asked only ten times a second.
 */
unsigned bclient_policy_pause_ms(unsigned pauses);

#endif /* BCLIENT_POLICY_H */

/*
 * The rule that moves a broker between ALIVE, SUSPECT and DEAD: a pure
 * function of what liveness.c knows of the broker and the time, with no
 * store, no proposal and no clock of its own (liveness.c is its adapter:
 * it gathers the inputs, calls the rule and commits the change).
 *
 *   ALIVE   -> SUSPECT  silent for suspect_ms
 *   SUSPECT -> DEAD     silent for dead_ms
 *   ALIVE   -> DEAD     (both at once)
 *   SUSPECT -> ALIVE    heard from within suspect_ms
 *   DEAD    -> ALIVE    heard from within suspect_ms, by a heartbeat or a
 *                       registration since this manager leads
 *   DEAD    -> SUSPECT  heard from since this manager leads, then silent
 *
 * After a leader change every broker's silence counts from the moment this
 * manager started leading (the grace period: the old leader's view of the
 * brokers is not carried over), but a DEAD broker stays DEAD until it is
 * heard from itself: the grace alone never revives it. DRAINING, REMOVING
 * and REMOVED are admin states and are left alone, as is a broker whose
 * last change is still being committed.
 */
#ifndef LIVENESS_RULE_H
#define LIVENESS_RULE_H

#include <stdbool.h>
#include <stdint.h>

#include "mcmd.h"

struct liveness_rule_in {
    enum mbroker_state state; /* The store's. */
    /* The last heartbeat or registration, or when this manager started
     * leading if none came since (the grace period). */
    uint64_t last_ms;
    bool heard;    /* Heard from since this manager leads. */
    bool changing; /* A state change is being committed. */
};

/* The state the broker should be in at @now given the thresholds
 * (suspect_ms < dead_ms); equal to in->state when nothing is to change. */
enum mbroker_state liveness_rule_next(const struct liveness_rule_in *in,
                                      uint64_t now, uint64_t suspect_ms,
                                      uint64_t dead_ms);

#endif /* LIVENESS_RULE_H */

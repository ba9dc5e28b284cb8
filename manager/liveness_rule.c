/*
 * The liveness rule (see liveness_rule.h).
 */
#include "liveness_rule.h"

enum mbroker_state liveness_rule_next(const struct liveness_rule_in *in,
                                      uint64_t now, uint64_t suspect_ms,
                                      uint64_t dead_ms)
{
    enum mbroker_state state = in->state;

    if (in->changing || (state != MBROKER_ALIVE && state != MBROKER_SUSPECT &&
                         state != MBROKER_DEAD)) {
        return state;
    }
    /* A DEAD broker comes back only on a word of its own, not on the
     * grace period a new leader gives everyone. */
    bool stays_dead = state == MBROKER_DEAD && !in->heard;
    uint64_t age = now > in->last_ms ? now - in->last_ms : 0;
    if (age >= dead_ms) {
        return MBROKER_DEAD;
    }
    if (age >= suspect_ms) {
        return stays_dead ? MBROKER_DEAD : MBROKER_SUSPECT;
    }
    return stays_dead ? MBROKER_DEAD : MBROKER_ALIVE;
}

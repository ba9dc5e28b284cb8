/*
 * The start decision of a manager with an empty Raft directory (see
 * mjoin_plan.h).
 */
#include "mjoin_plan.h"

bool mjoin_plan_live(uint64_t uid, uint64_t commit)
{
    return uid != 0 || commit > 1;
}

enum mjoin_decision mjoin_plan(bool self_in_peers, size_t n_peers,
                               const struct mjoin_answer *answers, size_t n)
{
    size_t empty = self_in_peers ? 1 : 0;
    for (size_t i = 0; i < n; i++) {
        if (answers[i].answered && answers[i].live) {
            return MJOIN_JOIN;
        }
        empty += answers[i].answered;
    }
    if (self_in_peers && 2 * empty > n_peers) {
        return MJOIN_BOOTSTRAP;
    }
    return MJOIN_WAIT;
}

enum mjoin_decision mjoin_plan_rejoin(const struct mjoin_answer *answers,
                                      size_t n)
{
    for (size_t i = 0; i < n; i++) {
        if (answers[i].answered && answers[i].live && !answers[i].lists_self) {
            return MJOIN_JOIN;
        }
    }
    return MJOIN_WAIT;
}

/*
 * The broker's Raft log memory budget: sharing and compaction decisions
 * (see logbudget.h).
 */
#include "logbudget.h"

static uint64_t min_u64(uint64_t a, uint64_t b)
{
    return a < b ? a : b;
}

struct logbudget_share logbudget_share(uint64_t total, size_t replicas,
                                       uint64_t max_memory,
                                       uint64_t max_trailing)
{
    struct logbudget_share out = {max_memory, max_trailing};
    if (total == 0) {
        return out;
    }
    uint64_t each = replicas > 0 ? total / replicas : total;
    if (each < LOGBUDGET_FLOOR) {
        each = LOGBUDGET_FLOOR;
    }
    uint64_t trailing = each / LOGBUDGET_TRAILING_PART;
    out.trailing_bytes = min_u64(trailing, max_trailing);
    out.memory_bytes = min_u64(each - trailing, max_memory);
    return out;
}

enum logbudget_action logbudget_decide(const struct logbudget_view *v,
                                       struct logbudget_state *s,
                                       uint64_t budget, uint64_t now_ms)
{
    bool idle = v->last_index == s->last_index && v->applied == v->last_index;
    s->last_index = v->last_index;
    if (v->compacting || v->bytes <= budget) {
        return LOGBUDGET_NONE;
    }
    /* After a snapshot at the barrier the log keeps the trailing entries
     * up to it: nothing to gain unless more than those are held. */
    if (v->entries <= (uint64_t)v->trailing + 1) {
        return LOGBUDGET_NONE;
    }
    /* Entries still coming get the threshold checked at every apply, and
     * the threshold follows the share already. */
    if (!idle) {
        return LOGBUDGET_NONE;
    }
    if (!v->leader) {
        return LOGBUDGET_LOWER;
    }
    return now_ms >= s->next_ms ? LOGBUDGET_BARRIER : LOGBUDGET_NONE;
}

void logbudget_barrier_sent(struct logbudget_state *s, uint64_t now_ms)
{
    s->next_ms = now_ms + LOGBUDGET_INTERVAL_MS;
}

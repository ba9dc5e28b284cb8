/*
 * The broker's Raft log memory budget: how it is shared (see logbudget.h).
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

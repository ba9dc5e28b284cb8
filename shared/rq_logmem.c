/*
 * Entry counts from byte budgets (see rq_logmem.h), in integer arithmetic
 * so the results are exact and tests can state them.
 */
#include "rq_logmem.h"

/* The moving average weighs each new entry 1/8. */
#define AVG_SHIFT 3
/* The average is kept x 16 so small steps are not lost to rounding. */
#define AVG_SCALE 16

unsigned rq_logmem_entries(uint64_t budget, uint64_t avg, unsigned lo,
                           unsigned hi)
{
    if (lo > hi) {
        lo = hi;
    }
    if (avg == 0) {
        return hi;
    }
    uint64_t n = budget / avg;
    if (n < lo) {
        return lo;
    }
    if (n > hi) {
        return hi;
    }
    return (unsigned)n;
}

void rq_logmem_init(struct rq_logmem *m, const struct rq_logmem_config *cfg)
{
    m->cfg = *cfg;
    m->avg16 = 0;
    m->threshold = cfg->max_threshold;
    m->trailing = cfg->max_trailing;
}

uint64_t rq_logmem_average(const struct rq_logmem *m)
{
    return m->avg16 / AVG_SCALE;
}

/* Sizes both counts from the current average; true if either moved. */
static bool resize(struct rq_logmem *m)
{
    uint64_t avg = rq_logmem_average(m);
    if (avg == 0) {
        return false; /* Nothing known yet: the bounds hold. */
    }
    unsigned trailing =
        rq_logmem_entries(m->cfg.trailing_bytes, avg, RQ_LOGMEM_MIN_TRAILING,
                          m->cfg.max_trailing);
    unsigned threshold =
        rq_logmem_entries(m->cfg.memory_bytes, avg, RQ_LOGMEM_MIN_THRESHOLD,
                          m->cfg.max_threshold);
    /* Trailing entries held up by their minimum take room from the
     * entries since the snapshot, so both budgets together still hold. */
    uint64_t both = m->cfg.memory_bytes + m->cfg.trailing_bytes;
    uint64_t behind = (uint64_t)trailing * avg;
    unsigned fits =
        rq_logmem_entries(both > behind ? both - behind : 0, avg,
                          RQ_LOGMEM_MIN_THRESHOLD, m->cfg.max_threshold);
    if (fits < threshold) {
        threshold = fits;
    }
    bool changed = threshold != m->threshold || trailing != m->trailing;
    m->threshold = threshold;
    m->trailing = trailing;
    return changed;
}

bool rq_logmem_add(struct rq_logmem *m, size_t entry_bytes)
{
    /* An entry is at most RQ_ENTRY_MAX (64 MiB) in practice; cap anything
     * larger so the scaled arithmetic below cannot overflow. */
    uint64_t x = entry_bytes > (UINT64_C(1) << 40) ? (UINT64_C(1) << 40)
                                                   : (uint64_t)entry_bytes;
    x = (x + RQ_LOGMEM_ENTRY_OVERHEAD) * AVG_SCALE;
    if (m->avg16 == 0) {
        m->avg16 = x;
    } else if (x >= m->avg16) {
        m->avg16 += (x - m->avg16) >> AVG_SHIFT;
    } else {
        m->avg16 -= (m->avg16 - x) >> AVG_SHIFT;
    }
    return resize(m);
}

bool rq_logmem_set_budget(struct rq_logmem *m, uint64_t memory_bytes,
                          uint64_t trailing_bytes)
{
    /* Budgets come from flags checked to be at most 1 TiB, so their sum
     * cannot overflow. */
    m->cfg.memory_bytes = memory_bytes;
    m->cfg.trailing_bytes = trailing_bytes;
    return resize(m);
}

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
    uint64_t avg = rq_logmem_average(m);
    unsigned threshold =
        rq_logmem_entries(m->cfg.memory_bytes, avg, RQ_LOGMEM_MIN_THRESHOLD,
                          m->cfg.max_threshold);
    unsigned trailing =
        rq_logmem_entries(m->cfg.trailing_bytes, avg, RQ_LOGMEM_MIN_TRAILING,
                          m->cfg.max_trailing);
    bool changed = threshold != m->threshold || trailing != m->trailing;
    m->threshold = threshold;
    m->trailing = trailing;
    return changed;
}

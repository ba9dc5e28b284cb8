/*
 * Consumer group rules (see cgroup_plan.h): assignment, fencing, expiry.
 */
#include "cgroup_plan.h"

#include <inttypes.h>
#include <stdlib.h>

#include "rq_err.h"

/* A member as the assignment ranks it for the larger shares. */
struct rank {
    uint32_t held; /* Partitions it owned before the change. */
    uint32_t index;
};

/* Most held first, then the lower index. */
static int rank_cmp(const void *a, const void *b)
{
    const struct rank *x = a;
    const struct rank *y = b;
    if (x->held != y->held) {
        return x->held > y->held ? -1 : 1;
    }
    return x->index < y->index ? -1 : x->index > y->index;
}

int cgroup_plan_assign(uint32_t n_members, const uint32_t *prev,
                       uint32_t n_partitions, uint32_t *next)
{
    if (n_members == 0) {
        for (uint32_t p = 0; p < n_partitions; p++) {
            next[p] = CGROUP_PLAN_NONE;
        }
        return 0;
    }
    struct rank *ranks = calloc(n_members, sizeof *ranks);
    uint32_t *cap = calloc(n_members, sizeof *cap);
    uint32_t *kept = calloc(n_members, sizeof *kept);
    if (ranks == NULL || cap == NULL || kept == NULL) {
        free(kept); /* UNTESTED: ENOMEM only. */
        free(cap);
        free(ranks);
        return RQ_NOMEM;
    }
    for (uint32_t m = 0; m < n_members; m++) {
        ranks[m].index = m;
    }
    for (uint32_t p = 0; p < n_partitions; p++) {
        if (prev[p] < n_members) {
            ranks[prev[p]].held++;
        }
    }
    /* The shares: n_partitions / n_members each, one more for the first
     * n_partitions % n_members in rank order. They sum to n_partitions. */
    qsort(ranks, n_members, sizeof *ranks, rank_cmp);
    uint32_t base = n_partitions / n_members;
    uint32_t extra = n_partitions % n_members;
    for (uint32_t r = 0; r < n_members; r++) {
        cap[ranks[r].index] = base + (r < extra ? 1 : 0);
    }
    /* Keep what fits in each share, lowest partition first. prev[p] is
     * read before next[p] is written, so the two may be one array. */
    for (uint32_t p = 0; p < n_partitions; p++) {
        uint32_t o = prev[p];
        if (o < n_members && kept[o] < cap[o]) {
            kept[o]++;
            next[p] = o;
        } else {
            next[p] = CGROUP_PLAN_NONE;
        }
    }
    /* The rest to whoever has room, the fewest kept first. */
    for (uint32_t p = 0; p < n_partitions; p++) {
        if (next[p] != CGROUP_PLAN_NONE) {
            continue;
        }
        uint32_t best = CGROUP_PLAN_NONE;
        for (uint32_t m = 0; m < n_members; m++) {
            if (kept[m] < cap[m] &&
                (best == CGROUP_PLAN_NONE || kept[m] < kept[best])) {
                best = m;
            }
        }
        /* The shares sum to n_partitions, so someone has room. */
        next[p] = best;
        kept[best]++;
    }
    free(kept);
    free(cap);
    free(ranks);
    return 0;
}

int cgroup_plan_commit_check(uint32_t member, uint64_t generation,
                             uint64_t current, const uint32_t *owner,
                             uint32_t n_partitions, const uint32_t *parts,
                             size_t n, char *why, size_t whyn)
{
    if (member == CGROUP_PLAN_NONE) {
        rq_why(why, whyn, "the member is not in the group");
        return CGROUP_PLAN_FENCED;
    }
    if (generation != current) {
        rq_why(why, whyn,
               "generation %" PRIu64
               " is not the group's current generation "
               "%" PRIu64,
               generation, current);
        return CGROUP_PLAN_FENCED;
    }
    for (size_t i = 0; i < n; i++) {
        if (parts[i] >= n_partitions) {
            rq_why(why, whyn, "partition %" PRIu32 " is not in the topic",
                   parts[i]);
            return CGROUP_PLAN_FENCED;
        }
        if (owner[parts[i]] != member) {
            rq_why(why, whyn,
                   "partition %" PRIu32 " is not assigned to the member",
                   parts[i]);
            return CGROUP_PLAN_FENCED;
        }
    }
    return 0;
}

size_t cgroup_plan_expired(const struct cgroup_plan_session *s, size_t n,
                           uint64_t now, uint64_t since_ms, uint32_t *out)
{
    size_t k = 0;
    for (size_t i = 0; i < n; i++) {
        uint64_t last = s[i].last_ms > since_ms ? s[i].last_ms : since_ms;
        if (now >= last && now - last >= s[i].session_ms) {
            out[k++] = (uint32_t)i;
        }
    }
    return k;
}

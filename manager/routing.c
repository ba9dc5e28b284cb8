/*
 * The routing cache: a sorted array of routes, found by binary search.
 * Groups number in the thousands at most, and reports arrive a few
 * thousand a second at most, so the array moves little and stays in cache.
 */
#include "routing.h"

#include <stdlib.h>
#include <string.h>

#include "rq_err.h"

struct routing {
    struct route *routes; /* Sorted by group_id. */
    size_t n;
    size_t cap;
    uint64_t version; /* Of the last change. */
};

/* @r changed if it differs from @was: it takes the next version. */
static void changed(struct routing *rt, struct route *r,
                    const struct route *was)
{
    if (r->leader != was->leader || r->term != was->term ||
        r->high_watermark != was->high_watermark || r->commit != was->commit) {
        r->version = ++rt->version;
    }
}

int routing_new(struct routing **out)
{
    struct routing *rt = calloc(1, sizeof *rt);
    if (rt == NULL) {
        return RQ_NOMEM; /* UNTESTED: ENOMEM only. */
    }
    *out = rt;
    return 0;
}

void routing_free(struct routing *rt)
{
    if (rt == NULL) {
        return;
    }
    free(rt->routes);
    free(rt);
}

/* The index of @gid, or where it would go (*found false). */
static size_t route_index(const struct routing *rt, uint64_t gid, bool *found)
{
    size_t lo = 0;
    size_t hi = rt->n;
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        if (rt->routes[mid].group_id < gid) {
            lo = mid + 1;
        } else {
            hi = mid;
        }
    }
    *found = lo < rt->n && rt->routes[lo].group_id == gid;
    return lo;
}

/* The route of @gid, created empty if absent; NULL on ENOMEM. */
static struct route *upsert(struct routing *rt, uint64_t gid)
{
    bool found;
    size_t i = route_index(rt, gid, &found);
    if (found) {
        return &rt->routes[i];
    }
    if (rt->n == rt->cap) {
        size_t cap = rt->cap == 0 ? 64 : rt->cap * 2;
        struct route *r = realloc(rt->routes, cap * sizeof *r);
        if (r == NULL) {
            return NULL; /* UNTESTED: ENOMEM only. */
        }
        rt->routes = r;
        rt->cap = cap;
    }
    memmove(&rt->routes[i + 1], &rt->routes[i],
            (rt->n - i) * sizeof rt->routes[0]);
    rt->n++;
    rt->routes[i] = (struct route){.group_id = gid, .version = ++rt->version};
    return &rt->routes[i];
}

int routing_report(struct routing *rt, uint64_t group_id, uint32_t reporter,
                   bool is_leader, uint32_t leader_id, uint64_t term,
                   uint64_t commit, uint64_t next_offset, uint64_t now_ms)
{
    struct route *r = upsert(rt, group_id);
    if (r == NULL) {
        return RQ_NOMEM; /* UNTESTED: ENOMEM only. */
    }
    struct route was = *r;
    uint32_t named = is_leader ? reporter : leader_id;
    if (term > r->term) {
        /* A newer term: whatever was known about the old one is stale. */
        r->term = term;
        r->leader = named;
        r->commit = 0;
        if (named != 0) {
            r->updated_ms = now_ms;
        }
    } else if (term == r->term && named != 0 && (r->leader == 0 || is_leader)) {
        r->leader = named;
        r->updated_ms = now_ms;
    }
    if (is_leader && term == r->term && commit > r->commit) {
        r->commit = commit;
    }
    if (next_offset > r->high_watermark) {
        r->high_watermark = next_offset;
    }
    changed(rt, r, &was);
    return 0;
}

int routing_set_leader(struct routing *rt, uint64_t group_id, uint32_t leader,
                       uint64_t now_ms)
{
    struct route *r = upsert(rt, group_id);
    if (r == NULL) {
        return RQ_NOMEM; /* UNTESTED: ENOMEM only. */
    }
    struct route was = *r;
    r->leader = leader;
    r->updated_ms = now_ms;
    changed(rt, r, &was);
    return 0;
}

void routing_drop_leader(struct routing *rt, uint64_t group_id, uint32_t leader)
{
    bool found;
    size_t i = route_index(rt, group_id, &found);
    if (found && rt->routes[i].leader == leader && leader != 0) {
        rt->routes[i].leader = 0;
        rt->routes[i].version = ++rt->version;
    }
}

int routing_raise(struct routing *rt, uint64_t group_id, uint64_t hw)
{
    struct route *r = upsert(rt, group_id);
    if (r == NULL) {
        return RQ_NOMEM; /* UNTESTED: ENOMEM only. */
    }
    if (hw > r->high_watermark) {
        r->high_watermark = hw;
        r->version = ++rt->version;
    }
    return 0;
}

const struct route *routing_get(const struct routing *rt, uint64_t group_id)
{
    bool found;
    size_t i = route_index(rt, group_id, &found);
    return found ? &rt->routes[i] : NULL;
}

void routing_prune(struct routing *rt, bool (*keep)(void *data, uint64_t gid),
                   void *data)
{
    size_t j = 0;
    for (size_t i = 0; i < rt->n; i++) {
        if (keep(data, rt->routes[i].group_id)) {
            rt->routes[j++] = rt->routes[i];
        }
    }
    rt->n = j;
}

size_t routing_count(const struct routing *rt)
{
    return rt->n;
}

const struct route *routing_at(const struct routing *rt, size_t i)
{
    return i < rt->n ? &rt->routes[i] : NULL;
}

int routing_merge(struct routing *rt, const struct route *from, uint64_t now_ms)
{
    struct route *r = upsert(rt, from->group_id);
    if (r == NULL) {
        return RQ_NOMEM; /* UNTESTED: ENOMEM only. */
    }
    struct route was = *r;
    if (from->leader != 0 &&
        (from->term > r->term || (from->term == r->term && r->leader == 0))) {
        r->leader = from->leader;
        r->term = from->term;
        r->updated_ms = now_ms;
    }
    if (from->high_watermark > r->high_watermark) {
        r->high_watermark = from->high_watermark;
    }
    if (from->term == r->term && from->commit > r->commit) {
        r->commit = from->commit;
    }
    changed(rt, r, &was);
    return 0;
}

uint64_t routing_version(const struct routing *rt)
{
    return rt->version;
}

/*
 * Heartbeat reports on the leader manager (see hbmerge.h).
 */
#include "hbmerge.h"

#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "rq_err.h"

static int json_u64(const json_t *o, const char *name, uint64_t *out)
{
    json_t *v = json_object_get(o, name);
    if (v == NULL || json_is_null(v)) {
        *out = 0;
        return 0;
    }
    if (!json_is_integer(v) || json_integer_value(v) < 0) {
        return RQ_INVALID;
    }
    *out = (uint64_t)json_integer_value(v);
    return 0;
}

static int cmp_gid(const void *a, const void *b)
{
    uint64_t x = ((const struct liveness_replica *)a)->group_id;
    uint64_t y = ((const struct liveness_replica *)b)->group_id;
    return x < y ? -1 : x > y;
}

static int cmp_u64(const void *a, const void *b)
{
    uint64_t x = *(const uint64_t *)a;
    uint64_t y = *(const uint64_t *)b;
    return x < y ? -1 : x > y;
}

int hbmerge_replicas(const json_t *list, struct liveness_replica **out,
                     size_t *n, char *why, size_t whyn)
{
    size_t count = json_array_size(list);
    *out = NULL;
    *n = 0;
    if (list == NULL || json_is_null(list)) {
        return 0;
    }
    if (!json_is_array(list)) {
        snprintf(why, whyn, "'replicas' must be a list");
        return RQ_INVALID;
    }
    struct liveness_replica *r = calloc(count > 0 ? count : 1, sizeof *r);
    if (r == NULL) {
        snprintf(why, whyn, "out of memory"); /* UNTESTED: ENOMEM only. */
        return RQ_NOMEM;
    }
    for (size_t i = 0; i < count; i++) {
        const json_t *o = json_array_get(list, i);
        uint64_t leader_id;
        json_t *role = json_object_get(o, "role");
        if (!json_is_object(o) || json_u64(o, "group_id", &r[i].group_id) ||
            r[i].group_id == 0 || json_u64(o, "leader_id", &leader_id) ||
            leader_id > UINT32_MAX || json_u64(o, "term", &r[i].term) ||
            json_u64(o, "commit", &r[i].commit) ||
            json_u64(o, "next_offset", &r[i].next_offset)) {
            snprintf(why, whyn,
                     "replica %zu: need a positive 'group_id' and "
                     "non-negative integers for leader_id, term, commit "
                     "and next_offset",
                     i);
            free(r);
            return RQ_INVALID;
        }
        r[i].leader_id = (uint32_t)leader_id;
        json_t *voters = json_object_get(o, "voters");
        for (size_t k = 0;
             k < json_array_size(voters) && r[i].n_voters < LIVENESS_VOTERS_MAX;
             k++) {
            json_t *v = json_array_get(voters, k);
            if (json_is_integer(v) && json_integer_value(v) > 0 &&
                json_integer_value(v) <= UINT32_MAX) {
                r[i].voters[r[i].n_voters++] = (uint32_t)json_integer_value(v);
            }
        }
        uint64_t preferred;
        if (json_u64(o, "preferred_leader", &preferred) == 0 &&
            preferred <= UINT32_MAX) {
            r[i].preferred = (uint32_t)preferred;
        }
        r[i].leader = json_is_string(role) &&
                      strcmp(json_string_value(role), "leader") == 0;
        json_t *state = json_object_get(o, "state");
        r[i].failed_since = json_is_string(state) &&
                            strcmp(json_string_value(state), "failed") == 0;
    }
    qsort(r, count, sizeof r[0], cmp_gid);
    /* A group listed twice counts once: the last wins. */
    size_t kept = 0;
    for (size_t i = 0; i < count; i++) {
        if (kept > 0 && r[kept - 1].group_id == r[i].group_id) {
            r[kept - 1] = r[i];
        } else {
            r[kept++] = r[i];
        }
    }
    *out = r;
    *n = kept;
    return 0;
}

/* A delta's "gone": the group ids removed since its base, sorted into
 * *@out (malloc'd). */
int hbmerge_gone(const json_t *list, uint64_t **out, size_t *n, char *why,
                 size_t whyn)
{
    size_t count = json_array_size(list);
    *out = NULL;
    *n = 0;
    if (list == NULL) {
        return 0;
    }
    uint64_t *g = calloc(count > 0 ? count : 1, sizeof *g);
    if (!json_is_array(list) || g == NULL) {
        free(g);
        snprintf(why, whyn, "'gone' must be a list of group ids");
        return RQ_INVALID;
    }
    for (size_t i = 0; i < count; i++) {
        const json_t *v = json_array_get(list, i);
        if (!json_is_integer(v) || json_integer_value(v) <= 0) {
            free(g);
            snprintf(why, whyn, "gone[%zu] is not a group id", i);
            return RQ_INVALID;
        }
        g[i] = (uint64_t)json_integer_value(v);
    }
    qsort(g, count, sizeof g[0], cmp_u64);
    *out = g;
    *n = count;
    return 0;
}

static bool in_sorted(const uint64_t *ids, size_t n, uint64_t id)
{
    return n > 0 && bsearch(&id, ids, n, sizeof ids[0], cmp_u64) != NULL;
}

/*
 * @b's replicas after a delta: @changed (sorted, each replacing the entry
 * of its group or added) and @gone (sorted ids, dropped); into *@out
 * (malloc'd), sorted. A changed entry is one parse_replicas made.
 */
int hbmerge_apply(const struct liveness_replica *old, size_t n_old,
                  const struct liveness_replica *changed, size_t n_changed,
                  const uint64_t *gone, size_t n_gone,
                  struct liveness_replica **out, size_t *n)
{
    size_t cap = n_old + n_changed;
    struct liveness_replica *r = calloc(cap > 0 ? cap : 1, sizeof *r);
    if (r == NULL) {
        return RQ_NOMEM; /* UNTESTED: ENOMEM only. */
    }
    size_t i = 0;
    size_t j = 0;
    size_t k = 0;
    while (i < n_old || j < n_changed) {
        if (j == n_changed ||
            (i < n_old && old[i].group_id < changed[j].group_id)) {
            if (!in_sorted(gone, n_gone, old[i].group_id)) {
                r[k++] = old[i];
            }
            i++;
            continue;
        }
        if (i < n_old && old[i].group_id == changed[j].group_id) {
            i++; /* Replaced by the changed entry. */
        }
        r[k++] = changed[j++];
    }
    *out = r;
    *n = k;
    return 0;
}

/* A heartbeat's "report" ({seq, base}; absent from brokers of an earlier
 * release, whose every report is full): 0, or RQ_INVALID. */
int hbmerge_report(const json_t *o, uint64_t *seq, uint64_t *base)
{
    *seq = 0;
    *base = 0;
    if (o == NULL) {
        return 0;
    }
    if (!json_is_object(o) || json_u64(o, "seq", seq) != 0 ||
        (json_object_get(o, "base") != NULL &&
         json_u64(o, "base", base) != 0)) {
        return RQ_INVALID;
    }
    return 0;
}

const struct liveness_replica *liveness_report_find(
    const struct liveness_broker *lb, uint64_t group_id)
{
    struct liveness_replica key = {.group_id = group_id};
    if (lb == NULL || lb->n_replicas == 0) {
        return NULL;
    }
    return bsearch(&key, lb->replicas, lb->n_replicas, sizeof key, cmp_gid);
}

bool hbmerge_may_ask_full(const struct liveness_broker *list, size_t n,
                          const struct liveness_broker *b, uint32_t size,
                          uint64_t now, uint64_t budget, uint64_t ttl_ms)
{
    uint64_t pending = 0;
    if (b->full_asked_ms != 0 && now < b->full_asked_ms + ttl_ms) {
        return true;
    }
    for (size_t i = 0; i < n; i++) {
        const struct liveness_broker *o = &list[i];
        if (o != b && o->full_asked_ms != 0 &&
            now < o->full_asked_ms + ttl_ms) {
            pending += o->full_asked_size;
        }
    }
    return pending == 0 || pending + size <= budget;
}

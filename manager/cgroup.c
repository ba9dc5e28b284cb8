/*
 * The consumer group coordinator (see cgroup.h).
 *
 * Groups are few next to requests, so they are a list searched by name;
 * a group's members and positions are arrays searched by member id and
 * indexed by partition. Everything here is dropped when leadership ends.
 */
#include "cgroup.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cgroup_plan.h"
#include "mcmd.h"
#include "mcore.h"
#include "mstore.h"
#include "rq_err.h"
#include "rq_list.h"
#include "rq_log.h"

#define LOG_TAG "cgroup"

struct member {
    char id[MCMD_MEMBER_MAX + 1];
    uint64_t last_ms;
    bool fetching;
};

struct position {
    char member[MCMD_MEMBER_MAX + 1]; /* "" : none yet. */
    uint64_t next;
};

struct group {
    struct rq_list link;
    char name[MCMD_GROUP_MAX + 1];
    struct member *members;
    size_t n_members, cap_members;
    struct position *pos; /* [n_pos], grown on demand. */
    uint32_t n_pos;
    bool leaving; /* An expiry is being committed. */
    bool seen;    /* Still in the store at the last tick. */
};

struct cgroup {
    struct mcore *core;
    struct rq_list groups;
    uint64_t since_ms; /* When this manager started leading. */
    /* Bumped by cgroup_lead/stop: an expiry committed for an earlier
     * leadership finds its group gone. */
    uint64_t era;
};

static void group_free(struct group *g)
{
    rq_list_remove(&g->link);
    free(g->members);
    free(g->pos);
    free(g);
}

static void forget_all(struct cgroup *cg)
{
    while (!rq_list_empty(&cg->groups)) {
        group_free(RQ_LIST_ENTRY(cg->groups.next, struct group, link));
    }
    cg->era++;
}

int cgroup_new(struct mcore *core, struct cgroup **out)
{
    struct cgroup *cg = calloc(1, sizeof *cg);
    if (cg == NULL) {
        return RQ_NOMEM; /* UNTESTED: ENOMEM only. */
    }
    cg->core = core;
    rq_list_init(&cg->groups);
    *out = cg;
    return 0;
}

void cgroup_free(struct cgroup *cg)
{
    if (cg == NULL) {
        return;
    }
    forget_all(cg);
    free(cg);
}

void cgroup_lead(struct cgroup *cg, uint64_t now)
{
    forget_all(cg);
    cg->since_ms = now;
}

void cgroup_stop(struct cgroup *cg)
{
    forget_all(cg);
}

static struct group *group_find(const struct cgroup *cg, const char *name)
{
    for (struct rq_list *e = cg->groups.next; e != &cg->groups; e = e->next) {
        struct group *g = RQ_LIST_ENTRY(e, struct group, link);
        if (strcmp(g->name, name) == 0) {
            return g;
        }
    }
    return NULL;
}

static struct group *group_get(struct cgroup *cg, const char *name)
{
    struct group *g = group_find(cg, name);
    if (g != NULL) {
        return g;
    }
    g = calloc(1, sizeof *g);
    if (g == NULL) {
        return NULL; /* UNTESTED: ENOMEM only. */
    }
    snprintf(g->name, sizeof g->name, "%s", name);
    g->seen = true;
    rq_list_push(&cg->groups, &g->link);
    return g;
}

static struct member *member_find(const struct group *g, const char *id)
{
    for (size_t i = 0; g != NULL && i < g->n_members; i++) {
        if (strcmp(g->members[i].id, id) == 0) {
            return &g->members[i];
        }
    }
    return NULL;
}

static struct member *member_get(struct cgroup *cg, const char *group,
                                 const char *id)
{
    struct group *g = group_get(cg, group);
    if (g == NULL) {
        return NULL; /* UNTESTED: ENOMEM only. */
    }
    struct member *m = member_find(g, id);
    if (m != NULL) {
        return m;
    }
    if (g->n_members == g->cap_members) {
        size_t cap = g->cap_members == 0 ? 4 : g->cap_members * 2;
        struct member *p = realloc(g->members, cap * sizeof *p);
        if (p == NULL) {
            return NULL; /* UNTESTED: ENOMEM only. */
        }
        g->members = p;
        g->cap_members = cap;
    }
    m = &g->members[g->n_members++];
    memset(m, 0, sizeof *m);
    snprintf(m->id, sizeof m->id, "%s", id);
    m->last_ms = cg->since_ms;
    return m;
}

int cgroup_touch(struct cgroup *cg, const char *group, const char *member,
                 uint64_t now)
{
    struct member *m = member_get(cg, group, member);
    if (m == NULL) {
        return RQ_NOMEM; /* UNTESTED: ENOMEM only. */
    }
    if (now > m->last_ms) {
        m->last_ms = now;
    }
    return 0;
}

uint64_t cgroup_last_seen(const struct cgroup *cg, const char *group,
                          const char *member)
{
    const struct member *m = member_find(group_find(cg, group), member);
    return m != NULL && m->last_ms > cg->since_ms ? m->last_ms : cg->since_ms;
}

void cgroup_forget(struct cgroup *cg, const char *group, const char *member)
{
    struct group *g = group_find(cg, group);
    struct member *m = member_find(g, member);
    if (m != NULL) {
        *m = g->members[--g->n_members];
    }
}

uint64_t cgroup_position(const struct cgroup *cg, const char *group, uint32_t p,
                         const char *member, uint64_t committed)
{
    const struct group *g = group_find(cg, group);
    if (g == NULL || p >= g->n_pos || strcmp(g->pos[p].member, member) != 0) {
        return committed;
    }
    return g->pos[p].next > committed ? g->pos[p].next : committed;
}

int cgroup_advance(struct cgroup *cg, const char *group, uint32_t p,
                   const char *member, uint64_t next)
{
    struct group *g = group_get(cg, group);
    if (g == NULL || p >= MCMD_MAX_PARTITIONS) {
        return RQ_NOMEM; /* UNTESTED: ENOMEM only. */
    }
    if (p >= g->n_pos) {
        struct position *pos = realloc(g->pos, (p + 1) * sizeof *pos);
        if (pos == NULL) {
            return RQ_NOMEM; /* UNTESTED: ENOMEM only. */
        }
        memset(pos + g->n_pos, 0, (p + 1 - g->n_pos) * sizeof *pos);
        g->pos = pos;
        g->n_pos = p + 1;
    }
    snprintf(g->pos[p].member, sizeof g->pos[p].member, "%s", member);
    g->pos[p].next = next;
    return 0;
}

bool cgroup_fetch_begin(struct cgroup *cg, const char *group,
                        const char *member)
{
    struct member *m = member_get(cg, group, member);
    if (m == NULL) {
        return true; /* UNTESTED: ENOMEM only; it runs unguarded. */
    }
    if (m->fetching) {
        return false;
    }
    m->fetching = true;
    return true;
}

void cgroup_fetch_end(struct cgroup *cg, const char *group, const char *member)
{
    struct member *m = member_find(group_find(cg, group), member);
    if (m != NULL) {
        m->fetching = false;
    }
}

/* ---- Expiry ---- */

struct expiry {
    struct cgroup *cg;
    uint64_t era;
    char group[MCMD_GROUP_MAX + 1];
    uint32_t n;
};

static void on_expired(void *data, int status, uint64_t result)
{
    struct expiry *x = data;
    struct cgroup *cg = x->cg;
    if (x->era == cg->era) {
        struct group *g = group_find(cg, x->group);
        if (g != NULL) {
            g->leaving = false;
        }
        if (status != 0) {
            rq_log(RQ_WARN,
                   "group %s: the expiry of %" PRIu32
                   " members was not committed: %s",
                   x->group, x->n, rq_strerror(status));
        } else if (!MSTORE_IS_ERR(result)) {
            rq_log(RQ_INFO,
                   "group %s: generation %" PRIu64 " after %" PRIu32
                   " members expired",
                   x->group, MSTORE_OK(result), x->n);
        }
    }
    free(x);
}

/* Forgets the members of @g the store no longer has (they left, expired
 * or joined again under a new id), so that churn does not grow the
 * memory; a member with a fetch waiting stays until the fetch ends. */
static void group_prune(struct group *g, const struct mstore_cgroup_member *ms,
                        size_t n)
{
    size_t k = 0;
    for (size_t i = 0; i < g->n_members; i++) {
        bool in = g->members[i].fetching;
        for (size_t j = 0; j < n && !in; j++) {
            in = strcmp(ms[j].member_id, g->members[i].id) == 0;
        }
        if (in) {
            g->members[k++] = g->members[i];
        }
    }
    g->n_members = k;
}

/* Proposes the leave of @g's members whose sessions lapsed at @now. */
static void group_expire(struct cgroup *cg, struct group *g, uint64_t now)
{
    struct mstore_cgroup_member *ms = NULL;
    size_t n = 0;
    if (mstore_cgroup_members(mcore_store(cg->core), g->name, &ms, &n) != 0) {
        return;
    }
    group_prune(g, ms, n);
    if (n == 0) {
        free(ms);
        return;
    }
    struct cgroup_plan_session *s = calloc(n, sizeof *s);
    uint32_t *gone = calloc(n, sizeof *gone);
    char(*ids)[MCMD_MEMBER_MAX + 1] = calloc(n, sizeof *ids);
    struct expiry *x = calloc(1, sizeof *x);
    size_t k = 0;
    if (s != NULL && gone != NULL && ids != NULL && x != NULL) {
        for (size_t i = 0; i < n; i++) {
            const struct member *m = member_find(g, ms[i].member_id);
            /* A member whose fetch waits (a long poll) is there. */
            s[i].last_ms = m == NULL     ? cg->since_ms
                           : m->fetching ? now
                                         : m->last_ms;
            s[i].session_ms = ms[i].session_ms;
        }
        k = cgroup_plan_expired(s, n, now, cg->since_ms, gone);
    }
    for (size_t i = 0; i < k; i++) {
        const struct mstore_cgroup_member *m = &ms[gone[i]];
        snprintf(ids[i], sizeof ids[i], "%s", m->member_id);
        rq_log(RQ_INFO,
               "group %s: member %s expired: no request for %" PRIu64
               " ms (its session is %" PRIu64 " ms)",
               g->name, m->member_id,
               now - cgroup_last_seen(cg, g->name, m->member_id),
               m->session_ms);
    }
    if (k > 0) {
        struct mcmd c = {.type = MCMD_GROUP_LEAVE};
        snprintf(c.u.group_leave.group, sizeof c.u.group_leave.group, "%s",
                 g->name);
        c.u.group_leave.n = (uint32_t)k;
        c.u.group_leave.members = ids;
        *x = (struct expiry){.cg = cg, .era = cg->era, .n = (uint32_t)k};
        snprintf(x->group, sizeof x->group, "%s", g->name);
        /* The command is encoded here: the list stays ours. */
        int rv = mcore_propose(cg->core, &c, on_expired, x);
        if (rv == 0) {
            g->leaving = true;
            x = NULL;
        } else {
            rq_log(RQ_WARN, "group %s: cannot propose an expiry: %s", g->name,
                   rq_strerror(rv));
        }
    }
    free(ids);
    free(x);
    free(gone);
    free(s);
    free(ms);
}

void cgroup_tick(struct cgroup *cg, uint64_t now)
{
    struct mstore_cgroup *gs = NULL;
    size_t n = 0;
    if (!mcore_leading(cg->core) ||
        mstore_cgroups(mcore_store(cg->core), &gs, &n) != 0) {
        return;
    }
    for (struct rq_list *e = cg->groups.next; e != &cg->groups; e = e->next) {
        RQ_LIST_ENTRY(e, struct group, link)->seen = false;
    }
    for (size_t i = 0; i < n; i++) {
        struct group *g = gs[i].n_members > 0 ? group_get(cg, gs[i].name)
                                              : group_find(cg, gs[i].name);
        if (g == NULL) {
            continue;
        }
        g->seen = true;
        if (!g->leaving) {
            group_expire(cg, g, now);
        }
    }
    free(gs);
    /* Groups the store no longer has (deleted, or with their topic). */
    struct rq_list *e = cg->groups.next;
    while (e != &cg->groups) {
        struct group *g = RQ_LIST_ENTRY(e, struct group, link);
        e = e->next;
        if (!g->seen && !g->leaving) {
            group_free(g);
        }
    }
}

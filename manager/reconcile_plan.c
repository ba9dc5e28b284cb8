/*
 * The reconcile plan (see reconcile_plan.h).
 */
#include "reconcile_plan.h"

#include <stdlib.h>

#include "policy.h"
#include "rq_err.h"

static int cmp_gid(const void *x, const void *y)
{
    const struct mstore_partition *a = x;
    const struct mstore_partition *b = y;
    return a->group_id < b->group_id ? -1 : a->group_id > b->group_id;
}

static const struct mstore_partition *part_of(const struct reconcile_view *v,
                                              uint64_t gid)
{
    return mstore_partition_in(v->parts, v->n_parts, gid);
}

void reconcile_plan_sort(struct mstore_partition *parts, size_t n)
{
    if (n > 0) {
        qsort(parts, n, sizeof parts[0], cmp_gid);
    }
}

static bool placed_on(const struct mstore_partition *p, uint32_t broker)
{
    return p->replicas[0] == broker || p->replicas[1] == broker ||
           p->replicas[2] == broker;
}

static bool reported(const struct liveness_broker *lb, uint64_t gid)
{
    return liveness_report_find(lb, gid) != NULL;
}

/* true if @r, reported by a broker that hosts @p, prefers another leader
 * than the store's replicas[0] (0: the broker did not say). */
static bool prefers_other(const struct liveness_replica *r,
                          const struct mstore_partition *p)
{
    return r->preferred != 0 && r->preferred != p->replicas[0];
}

/* true if @broker is a voter of @gid as its leader last reported, or if
 * no report says otherwise: such a replica is never deleted. */
static bool voter_of(const struct reconcile_view *v, uint64_t gid,
                     uint32_t broker)
{
    uint32_t voters[LIVENESS_VOTERS_MAX];
    unsigned n = v->voters(v->data, gid, voters);
    if (n == 0) {
        return true;
    }
    for (unsigned i = 0; i < n; i++) {
        if (voters[i] == broker) {
            return true;
        }
    }
    return false;
}

/* true if (@broker, @gid) is held back, or already has an order in this
 * plan. */
static bool held(const struct reconcile_view *v, uint32_t broker, uint64_t gid,
                 const struct reconcile_order *out, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        if (out[i].kind != RECONCILE_UNKNOWN_MEMBER &&
            out[i].broker->id == broker && out[i].group_id == gid) {
            return true;
        }
    }
    return v->held(v->data, broker, gid);
}

/* The creation of @p on @b, or the member the store does not know. */
static struct reconcile_order creation(const struct reconcile_view *v,
                                       const struct mstore_broker *b,
                                       const struct mstore_partition *p)
{
    uint32_t order[MCMD_RF];
    struct reconcile_order o = {.kind = RECONCILE_CREATE,
                                .broker = b,
                                .group_id = p->group_id,
                                .part = p};
    policy_member_order(p->group_id, p->replicas, order);
    for (unsigned k = 0; k < MCMD_RF; k++) {
        o.members[k] = mstore_broker_in(v->brokers, v->n_brokers, order[k]);
        if (o.members[k] == NULL) {
            o.kind = RECONCILE_UNKNOWN_MEMBER;
            o.other = order[k];
            return o;
        }
    }
    return o;
}

/*
 * The partitions placed on each broker: for brokers[i], the indices into
 * v->parts (in their order) from (*idx)[(*start)[i]] to before
 * (*start)[i + 1]. One pass over the partitions instead of one per
 * broker, which at 100 brokers and 100,000 partitions was most of a
 * round. Both malloc'd; RQ_NOMEM.
 */
static int placed_index(const struct reconcile_view *v, size_t **start,
                        size_t **idx)
{
    size_t *st = calloc(v->n_brokers + 2, sizeof *st);
    size_t *ix = calloc(v->n_parts * MCMD_RF + 1, sizeof *ix);
    if (st == NULL || ix == NULL) {
        free(st); /* UNTESTED: ENOMEM only. */
        free(ix);
        return RQ_NOMEM;
    }
    /* Counts in st[i + 2], then their running sums in st[i + 1] make
     * the fill below leave st[i] at each broker's start. */
    for (size_t j = 0; j < v->n_parts; j++) {
        for (unsigned k = 0; k < MCMD_RF; k++) {
            const struct mstore_broker *b = mstore_broker_in(
                v->brokers, v->n_brokers, v->parts[j].replicas[k]);
            if (b != NULL) {
                st[(size_t)(b - v->brokers) + 2]++;
            }
        }
    }
    for (size_t i = 2; i < v->n_brokers + 2; i++) {
        st[i] += st[i - 1];
    }
    for (size_t j = 0; j < v->n_parts; j++) {
        for (unsigned k = 0; k < MCMD_RF; k++) {
            const struct mstore_broker *b = mstore_broker_in(
                v->brokers, v->n_brokers, v->parts[j].replicas[k]);
            if (b != NULL) {
                ix[st[(size_t)(b - v->brokers) + 1]++] = j;
            }
        }
    }
    *start = st;
    *idx = ix;
    return 0;
}

size_t reconcile_plan(const struct reconcile_view *v, size_t max, size_t cap,
                      struct reconcile_order *out)
{
    size_t n = 0;
    size_t sent = 0;
    size_t *start;
    size_t *idx;

    if (placed_index(v, &start, &idx) != 0) {
        return 0; /* UNTESTED: ENOMEM only; the next round plans. */
    }

    for (size_t i = 0; i < v->n_brokers && sent < max && n < cap; i++) {
        const struct mstore_broker *b = &v->brokers[i];
        const struct liveness_broker *lb = v->reports[i];
        /* A draining broker still serves what it holds until repair has
         * moved it, and its replicas are deleted once moved. */
        if ((b->state != MBROKER_ALIVE && b->state != MBROKER_DRAINING &&
             b->state != MBROKER_REMOVING) ||
            lb == NULL || !lb->heard) {
            continue;
        }
        for (size_t t = start[i]; t < start[i + 1] && sent < max && n < cap;
             t++) {
            const struct mstore_partition *p = &v->parts[idx[t]];
            /* A member its group has removed (a rebuild half done) is
             * never created here: repair adds it back, as a new member. */
            if (!reported(lb, p->group_id) &&
                !v->moving(v->data, p->group_id) &&
                voter_of(v, p->group_id, b->id) &&
                !held(v, b->id, p->group_id, out, n)) {
                out[n] = creation(v, b, p);
                sent += out[n++].kind == RECONCILE_CREATE;
            }
        }
        for (size_t k = 0; k < lb->n_replicas && sent < max && n < cap; k++) {
            uint64_t gid = lb->replicas[k].group_id;
            const struct mstore_partition *p = part_of(v, gid);
            if (p != NULL && placed_on(p, b->id) &&
                prefers_other(&lb->replicas[k], p) &&
                !v->moving(v->data, gid) && !held(v, b->id, gid, out, n)) {
                out[n++] = (struct reconcile_order){
                    .kind = RECONCILE_PREFER,
                    .broker = b,
                    .group_id = gid,
                    .part = p,
                    .other = lb->replicas[k].preferred};
                sent++;
                continue;
            }
            if (p == NULL && v->foreign(v->data, gid)) {
                if (!held(v, b->id, gid, out, n)) {
                    out[n++] =
                        (struct reconcile_order){.kind = RECONCILE_QUARANTINE,
                                                 .broker = b,
                                                 .group_id = gid};
                }
                continue;
            }
            if ((p == NULL ||
                 (!placed_on(p, b->id) && !v->moving(v->data, gid) &&
                  !voter_of(v, gid, b->id))) &&
                !held(v, b->id, gid, out, n)) {
                out[n++] = (struct reconcile_order){.kind = RECONCILE_DELETE,
                                                    .broker = b,
                                                    .group_id = gid,
                                                    .part = p};
                sent++;
            }
        }
    }
    free(start);
    free(idx);
    return n;
}

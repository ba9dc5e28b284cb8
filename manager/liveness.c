/*
 * Broker liveness (see liveness.h). Brokers number in the tens, so they sit
 * in a small array searched linearly.
 */
#include "liveness.h"

#include <inttypes.h>
#include <stdlib.h>
#include <string.h>

#include "hbmerge.h"
#include "liveness_rule.h"
#include "mcore.h"
#include "mstore.h"
#include "routing.h"
#include "rq_err.h"
#include "rq_log.h"

#define LOG_TAG "liveness"

/* The replicas the full reports asked for and not come yet may list
 * (hbmerge_may_ask_full): about 4 MB of JSON, which the leader parses in
 * a few tens of milliseconds; a hundred brokers of 3,000 replicas each
 * are heard in about fifteen heartbeats. */
#define FULL_ASK_BUDGET 50000
/* An ask whose report has not come in this long is taken for lost: the
 * broker's answer, or the broker, went away. */
#define FULL_ASK_TTL_MS 5000

struct liveness {
    struct mcore *core;
    struct liveness_broker *brokers;
    size_t n;
    size_t cap;
    bool leading;
    uint64_t since_ms; /* When this manager started leading. */
};

struct change {
    struct liveness *lv;
    uint32_t id;
    enum mbroker_state from;
    enum mbroker_state to;
};

int liveness_new(struct mcore *core, struct liveness **out)
{
    struct liveness *lv = calloc(1, sizeof *lv);
    if (lv == NULL) {
        return RQ_NOMEM; /* UNTESTED: ENOMEM only. */
    }
    lv->core = core;
    *out = lv;
    return 0;
}

static void forget_all(struct liveness *lv)
{
    for (size_t i = 0; i < lv->n; i++) {
        free(lv->brokers[i].replicas);
    }
    lv->n = 0;
}

void liveness_free(struct liveness *lv)
{
    if (lv == NULL) {
        return;
    }
    forget_all(lv);
    free(lv->brokers);
    free(lv);
}

void liveness_lead(struct liveness *lv, uint64_t now)
{
    forget_all(lv);
    lv->leading = true;
    lv->since_ms = now;
}

void liveness_stop(struct liveness *lv)
{
    forget_all(lv);
    lv->leading = false;
}

static struct liveness_broker *liveness_find(const struct liveness *lv,
                                             uint32_t id)
{
    for (size_t i = 0; i < lv->n; i++) {
        if (lv->brokers[i].id == id) {
            return &lv->brokers[i];
        }
    }
    return NULL;
}

/* The broker's record, created with the grace period if absent. */
static struct liveness_broker *upsert(struct liveness *lv, uint32_t id)
{
    struct liveness_broker *b = liveness_find(lv, id);
    if (b != NULL) {
        return b;
    }
    if (lv->n == lv->cap) {
        size_t cap = lv->cap == 0 ? 16 : lv->cap * 2;
        struct liveness_broker *x = realloc(lv->brokers, cap * sizeof *x);
        if (x == NULL) {
            return NULL; /* UNTESTED: ENOMEM only. */
        }
        lv->brokers = x;
        lv->cap = cap;
    }
    b = &lv->brokers[lv->n++];
    *b = (struct liveness_broker){.id = id, .last_ms = lv->since_ms};
    return b;
}

const struct liveness_broker *liveness_broker(const struct liveness *lv,
                                              uint32_t id)
{
    return lv->leading ? liveness_find(lv, id) : NULL;
}

const struct liveness_replica *liveness_replica(const struct liveness *lv,
                                                uint32_t broker,
                                                uint64_t group_id)
{
    return liveness_report_find(liveness_broker(lv, broker), group_id);
}

unsigned liveness_voters(const struct liveness *lv, uint64_t group_id,
                         uint32_t out[LIVENESS_VOTERS_MAX])
{
    const struct route *r = routing_get(mcore_routing(lv->core), group_id);
    if (r == NULL || r->leader == 0) {
        return 0;
    }
    const struct liveness_replica *lr =
        liveness_replica(lv, r->leader, group_id);
    if (lr == NULL || !lr->leader) {
        return 0;
    }
    memcpy(out, lr->voters, lr->n_voters * sizeof out[0]);
    return lr->n_voters;
}

static void on_changed(void *data, int status, uint64_t result)
{
    struct change *c = data;
    struct liveness *lv = c->lv;
    struct liveness_broker *b = liveness_find(lv, c->id);
    if (b != NULL) {
        b->changing = false;
    }
    if (status == 0 && !MSTORE_IS_ERR(result)) {
        rq_log(RQ_INFO, "broker %u: %s -> %s", c->id,
               mbroker_state_name(c->from), mbroker_state_name(c->to));
    } else if (status != RQ_SHUTDOWN) {
        rq_log(RQ_WARN, "broker %u: %s -> %s not committed: %s", c->id,
               mbroker_state_name(c->from), mbroker_state_name(c->to),
               status != 0 ? rq_strerror(status)
                           : rq_strerror(MSTORE_ERR_CODE(result)));
    }
    free(c);
}

/* Commits the state liveness_rule_next gives @b, if it differs from
 * @state (the store's). */
static void judge(struct liveness *lv, struct liveness_broker *b,
                  enum mbroker_state state, uint64_t now)
{
    const struct manager_config *cfg = mcore_config(lv->core);
    struct liveness_rule_in in = {
        .state = state,
        .last_ms = b->last_ms,
        .heard = b->heard,
        .changing = b->changing,
    };
    enum mbroker_state to = liveness_rule_next(&in, now, cfg->broker_suspect_ms,
                                               cfg->broker_dead_ms);
    if (to == state) {
        return;
    }
    struct change *c = calloc(1, sizeof *c);
    if (c == NULL) {
        return; /* UNTESTED: ENOMEM only; the next tick tries again. */
    }
    *c = (struct change){.lv = lv, .id = b->id, .from = state, .to = to};
    struct mcmd cmd = {.type = MCMD_BROKER_STATE};
    cmd.u.broker_state.id = b->id;
    cmd.u.broker_state.state = to;
    if (mcore_propose(lv->core, &cmd, on_changed, c) != 0) {
        free(c);
        return;
    }
    b->changing = true;
}

/* A heartbeat's "disk" ({total, free, reserve, low}; absent from
 * brokers of an earlier release): unknown unless every field is there. */
static struct liveness_disk parse_disk(const json_t *o)
{
    struct liveness_disk d = {0};
    const json_t *t = json_object_get(o, "total");
    const json_t *f = json_object_get(o, "free");
    const json_t *r = json_object_get(o, "reserve");
    const json_t *low = json_object_get(o, "low");
    if (json_is_integer(t) && json_is_integer(f) && json_is_integer(r) &&
        json_is_boolean(low) && json_integer_value(t) >= 0 &&
        json_integer_value(f) >= 0 && json_integer_value(r) >= 0) {
        d = (struct liveness_disk){
            .known = true,
            .low = json_is_true(low),
            .total = (uint64_t)json_integer_value(t),
            .free = (uint64_t)json_integer_value(f),
            .reserve = (uint64_t)json_integer_value(r),
        };
    }
    return d;
}

int liveness_heartbeat(struct liveness *lv, uint32_t id, const json_t *body,
                       uint64_t now, bool *want_full, char *why, size_t whyn)
{
    struct liveness_replica *r;
    uint64_t *gone = NULL;
    size_t n;
    size_t n_gone = 0;
    uint64_t seq;
    uint64_t base;
    struct mstore_broker sb;

    *want_full = false;
    if (hbmerge_report(json_object_get(body, "report"), &seq, &base) != 0) {
        snprintf(why, whyn,
                 "'report' must be {\"seq\": N, \"base\": N}, both "
                 "non-negative integers");
        return RQ_INVALID;
    }
    int rv =
        hbmerge_replicas(json_object_get(body, "replicas"), &r, &n, why, whyn);
    if (rv == 0 && base != 0) {
        rv = hbmerge_gone(json_object_get(body, "gone"), &gone, &n_gone, why,
                          whyn);
    }
    if (rv != 0) {
        free(r);
        return rv;
    }
    /* What changed feeds the routing cache; what did not, fed it before. */
    for (size_t i = 0; i < n; i++) {
        routing_report(mcore_routes(lv->core), r[i].group_id, id, r[i].leader,
                       r[i].leader_id, r[i].term, r[i].commit, r[i].next_offset,
                       now);
    }
    if (!lv->leading) {
        free(r);
        free(gone);
        return 0;
    }
    struct liveness_broker *b = upsert(lv, id);
    if (b == NULL) {
        free(r); /* UNTESTED: ENOMEM only. */
        free(gone);
        snprintf(why, whyn, "out of memory");
        return RQ_NOMEM;
    }
    /* A replica failed in the last report too has been failed since then
     * (hbmerge_replicas marked a failed one with 1). */
    for (size_t i = 0; i < n; i++) {
        if (r[i].failed_since == 0) {
            continue;
        }
        const struct liveness_replica *was =
            liveness_report_find(b, r[i].group_id);
        r[i].failed_since = was != NULL && was->failed_since != 0
                                ? was->failed_since
                            : now > 0 ? now
                                      : 1;
    }
    bool known = mstore_broker(mcore_store(lv->core), id, &sb) == 0;
    bool applied = true;
    if (base != 0 &&
        (!b->heard || b->report_seq < base || b->report_seq >= seq)) {
        /* A delta against neither the report this manager holds nor an
         * earlier one whose later reports it covers (broker/hbreport.h):
         * this manager leads since, or the broker started again. The
         * broker's next report is full, if the reports asked for and
         * not come yet leave room for it; its replicas stay as last
         * reported. */
        uint32_t size = known ? sb.n_replicas : 0;
        applied = false;
        free(r);
        if (hbmerge_may_ask_full(lv->brokers, lv->n, b, size, now,
                                 FULL_ASK_BUDGET, FULL_ASK_TTL_MS)) {
            *want_full = true;
            if (b->full_asked_ms == 0 ||
                now >= b->full_asked_ms + FULL_ASK_TTL_MS) {
                b->full_asked_ms = now > 0 ? now : 1;
                b->full_asked_size = size;
            }
        }
    } else if (base != 0) {
        struct liveness_replica *merged;
        size_t n_merged;
        rv = hbmerge_apply(b->replicas, b->n_replicas, r, n, gone, n_gone,
                           &merged, &n_merged);
        free(r);
        if (rv != 0) {
            free(gone); /* UNTESTED: ENOMEM only. */
            snprintf(why, whyn, "out of memory");
            return rv;
        }
        free(b->replicas);
        b->replicas = merged;
        b->n_replicas = n_merged;
        b->report_seq = seq;
    } else {
        free(b->replicas);
        b->replicas = r;
        b->n_replicas = n;
        b->report_seq = seq;
        b->full_asked_ms = 0;
    }
    free(gone);
    b->disk = parse_disk(json_object_get(body, "disk"));
    b->last_ms = now;
    /* Heard means a report is held: the planners take a broker heard
     * from with no report for one hosting nothing (the first version
     * of deltas sent a new leader's reconciliation to create every
     * replica of every broker again). Its silence is measured all the
     * same: last_ms keeps it ALIVE until the full report comes. */
    b->heard = b->heard || applied;
    if (known && sb.state != MBROKER_ALIVE) {
        judge(lv, b, sb.state, now);
    }
    return 0;
}

void liveness_touch(struct liveness *lv, uint32_t id, uint64_t now)
{
    if (!lv->leading) {
        return;
    }
    struct liveness_broker *b = upsert(lv, id);
    if (b != NULL) {
        b->last_ms = now;
        b->heard = true;
    }
}

void liveness_tick(struct liveness *lv, uint64_t now)
{
    struct mstore_broker *list;
    size_t n;

    if (!lv->leading || mstore_brokers(mcore_store(lv->core), &list, &n) != 0) {
        return;
    }
    for (size_t i = 0; i < n; i++) {
        struct liveness_broker *b = upsert(lv, list[i].id);
        if (b != NULL) {
            judge(lv, b, list[i].state, now);
        }
    }
    free(list);
}

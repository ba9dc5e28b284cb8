/*
 * Broker liveness (see liveness.h). Brokers number in the tens, so they sit
 * in a small array searched linearly.
 */
#include "liveness.h"

#include <inttypes.h>
#include <stdlib.h>
#include <string.h>

#include "liveness_rule.h"
#include "mcore.h"
#include "mstore.h"
#include "routing.h"
#include "rq_err.h"
#include "rq_log.h"

#define LOG_TAG "liveness"

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
    const struct liveness_broker *b = liveness_broker(lv, broker);
    for (size_t i = 0; b != NULL && i < b->n_replicas; i++) {
        if (b->replicas[i].group_id == group_id) {
            return &b->replicas[i];
        }
    }
    return NULL;
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

static int parse_replicas(const json_t *list, struct liveness_replica **out,
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
    *out = r;
    *n = count;
    return 0;
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

int liveness_heartbeat(struct liveness *lv, uint32_t id, const json_t *replicas,
                       const json_t *disk, uint64_t now, char *why, size_t whyn)
{
    struct liveness_replica *r;
    size_t n;
    struct mstore_broker sb;

    int rv = parse_replicas(replicas, &r, &n, why, whyn);
    if (rv != 0) {
        return rv;
    }
    for (size_t i = 0; i < n; i++) {
        routing_report(mcore_routes(lv->core), r[i].group_id, id, r[i].leader,
                       r[i].leader_id, r[i].term, r[i].commit, r[i].next_offset,
                       now);
    }
    if (!lv->leading) {
        free(r);
        return 0;
    }
    struct liveness_broker *b = upsert(lv, id);
    if (b == NULL) {
        free(r); /* UNTESTED: ENOMEM only. */
        snprintf(why, whyn, "out of memory");
        return RQ_NOMEM;
    }
    /* A replica failed in the last report too has been failed since then
     * (parse_replicas marked a failed one with 1). */
    for (size_t i = 0; i < n; i++) {
        if (r[i].failed_since == 0) {
            continue;
        }
        r[i].failed_since = now > 0 ? now : 1;
        for (size_t k = 0; k < b->n_replicas; k++) {
            if (b->replicas[k].group_id == r[i].group_id &&
                b->replicas[k].failed_since != 0) {
                r[i].failed_since = b->replicas[k].failed_since;
                break;
            }
        }
    }
    free(b->replicas);
    b->replicas = r;
    b->n_replicas = n;
    b->disk = parse_disk(disk);
    b->last_ms = now;
    b->heard = true;
    if (mstore_broker(mcore_store(lv->core), id, &sb) == 0 &&
        sb.state != MBROKER_ALIVE) {
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

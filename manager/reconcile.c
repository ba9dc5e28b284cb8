/*
 * Reconciliation rounds (see reconcile.h). A round reads the brokers and
 * every partition from the store, indexes the partitions by group id, and
 * walks each eligible broker's last report against it. Actions are HTTP
 * calls to brokers; at most MAX_IN_FLIGHT run at once, and an action on a
 * (broker, group) pair is held back while it runs and for HOLD_MS after.
 */
#include "reconcile.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "liveness.h"
#include "mcore.h"
#include "mstore.h"
#include "policy.h"
#include "repair.h"
#include "rq_err.h"
#include "rq_log.h"

#define LOG_TAG "reconcile"

#define HOLD_MS 3000
#define MAX_IN_FLIGHT 32
#define CALL_TIMEOUT_MS 10000
/* The replica-set epoch of a partition as its topic created it: its
 * members bootstrap the group together. */
#define FIRST_EPOCH 0

struct action {
    uint32_t broker;
    uint64_t group_id;
    uint64_t until_ms; /* Held back until then (once done). */
    bool in_flight;
};

struct reconcile {
    struct mcore *core;
    const struct repair *repair;
    struct action *actions;
    size_t n;
    size_t cap;
    unsigned in_flight;
    bool kicked;
};

enum call_kind { CALL_CREATE, CALL_DELETE, CALL_PREFER };

static const char *const call_names[] = {"create", "delete",
                                         "name the preferred leader"};

struct call {
    struct reconcile *rc;
    uint32_t broker;
    uint64_t group_id;
    enum call_kind kind;
};

int reconcile_new(struct mcore *core, const struct repair *rp,
                  struct reconcile **out)
{
    struct reconcile *rc = calloc(1, sizeof *rc);
    if (rc == NULL) {
        return RQ_NOMEM; /* UNTESTED: ENOMEM only. */
    }
    rc->core = core;
    rc->repair = rp;
    *out = rc;
    return 0;
}

void reconcile_free(struct reconcile *rc)
{
    if (rc == NULL) {
        return;
    }
    free(rc->actions);
    free(rc);
}

/* Drops finished actions (in-flight ones end in their callbacks). */
void reconcile_lead(struct reconcile *rc)
{
    size_t j = 0;
    for (size_t i = 0; i < rc->n; i++) {
        if (rc->actions[i].in_flight) {
            rc->actions[j++] = rc->actions[i];
        }
    }
    rc->n = j;
    rc->kicked = true;
}

void reconcile_kick(struct reconcile *rc)
{
    rc->kicked = true;
}

static struct action *action_find(struct reconcile *rc, uint32_t broker,
                                  uint64_t gid)
{
    for (size_t i = 0; i < rc->n; i++) {
        if (rc->actions[i].broker == broker && rc->actions[i].group_id == gid) {
            return &rc->actions[i];
        }
    }
    return NULL;
}

static bool action_held(struct reconcile *rc, uint32_t broker, uint64_t gid,
                        uint64_t now)
{
    struct action *a = action_find(rc, broker, gid);
    return a != NULL && (a->in_flight || now < a->until_ms);
}

/* Records a started action; false on ENOMEM (then it is not started). */
static bool action_start(struct reconcile *rc, uint32_t broker, uint64_t gid)
{
    struct action *a = action_find(rc, broker, gid);
    if (a == NULL) {
        if (rc->n == rc->cap) {
            size_t cap = rc->cap == 0 ? 64 : rc->cap * 2;
            struct action *x = realloc(rc->actions, cap * sizeof *x);
            if (x == NULL) {
                return false; /* UNTESTED: ENOMEM only. */
            }
            rc->actions = x;
            rc->cap = cap;
        }
        a = &rc->actions[rc->n++];
    }
    *a = (struct action){.broker = broker, .group_id = gid, .in_flight = true};
    rc->in_flight++;
    return true;
}

static void expire(struct reconcile *rc, uint64_t now)
{
    size_t j = 0;
    for (size_t i = 0; i < rc->n; i++) {
        if (rc->actions[i].in_flight || now < rc->actions[i].until_ms) {
            rc->actions[j++] = rc->actions[i];
        }
    }
    rc->n = j;
}

static void on_call_done(void *data, const struct rq_httpc_resp *resp)
{
    struct call *c = data;
    struct reconcile *rc = c->rc;
    struct action *a = action_find(rc, c->broker, c->group_id);
    if (a != NULL) {
        a->in_flight = false;
        a->until_ms = mcore_now(rc->core) + HOLD_MS;
    }
    rc->in_flight--;
    const char *what = call_names[c->kind];
    if (resp->err == RQ_CANCELED) {
        /* Shutting down. */
    } else if (resp->err != 0) {
        rq_log(RQ_WARN, "g%" PRIu64 ": %s on broker %u: %s", c->group_id, what,
               c->broker, resp->why);
    } else if (resp->status == 200 ||
               (c->kind == CALL_DELETE && resp->status == 404)) {
        rq_log(RQ_INFO, "g%" PRIu64 ": %s on broker %u: done", c->group_id,
               what, c->broker);
    } else {
        rq_log(RQ_WARN, "g%" PRIu64 ": %s on broker %u: %ld %.*s", c->group_id,
               what, c->broker, resp->status,
               (int)(resp->body_len > 300 ? 300 : resp->body_len), resp->body);
    }
    free(c);
}

static const struct mstore_broker *broker_of(const struct mstore_broker *list,
                                             size_t n, uint32_t id)
{
    for (size_t i = 0; i < n; i++) {
        if (list[i].id == id) {
            return &list[i];
        }
    }
    return NULL;
}

static void send_call(struct reconcile *rc, const struct mstore_broker *b,
                      uint64_t gid, enum call_kind kind, const char *path,
                      const char *body)
{
    char url[512];
    struct call *c = calloc(1, sizeof *c);
    if (c == NULL) {
        return; /* UNTESTED: ENOMEM only. */
    }
    *c =
        (struct call){.rc = rc, .broker = b->id, .group_id = gid, .kind = kind};
    if (!action_start(rc, b->id, gid)) {
        free(c); /* UNTESTED: ENOMEM only. */
        return;
    }
    snprintf(url, sizeof url, "http://%s%s", b->http_addr, path);
    struct rq_httpc_req r = {
        .method = kind == CALL_DELETE ? "DELETE" : "POST",
        .url = url,
        .body = body,
        .body_len = body != NULL ? strlen(body) : 0,
        .timeout_ms = CALL_TIMEOUT_MS,
    };
    int rv =
        mcore_call(rc->core, MCORE_BROKER, MCORE_JSON, &r, on_call_done, c);
    if (rv != 0) {
        struct action *a = action_find(rc, b->id, gid);
        a->in_flight = false;
        a->until_ms = mcore_now(rc->core) + HOLD_MS;
        rc->in_flight--;
        free(c);
    }
}

static void create_on(struct reconcile *rc, const struct mstore_broker *b,
                      const struct mstore_partition *p,
                      const struct mstore_broker *list, size_t n)
{
    uint32_t order[3];
    policy_member_order(p->group_id, p->replicas, order);
    json_t *members = json_array();
    for (unsigned k = 0; k < 3; k++) {
        const struct mstore_broker *mb = broker_of(list, n, order[k]);
        if (mb == NULL) {
            rq_log(RQ_WARN, "g%" PRIu64 ": member broker %u is unknown",
                   p->group_id, order[k]);
            json_decref(members);
            return;
        }
        json_array_append_new(
            members,
            json_pack("{s:I,s:s,s:s}", "id", (json_int_t)mb->id, "raft_addr",
                      mb->raft_addr, "http_addr", mb->http_addr));
    }
    json_t *o = json_pack("{s:s,s:I,s:I,s:o,s:b,s:I}", "topic", p->topic,
                          "partition_id", (json_int_t)p->partition_id,
                          "group_id", (json_int_t)p->group_id, "members",
                          members, "bootstrap", p->epoch == FIRST_EPOCH,
                          "preferred_leader", (json_int_t)p->replicas[0]);
    char *body = o != NULL ? json_dumps(o, JSON_COMPACT) : NULL;
    json_decref(o);
    if (body == NULL) {
        return; /* UNTESTED: ENOMEM only. */
    }
    rq_log(RQ_DEBUG, "g%" PRIu64 ": creating on broker %u", p->group_id, b->id);
    send_call(rc, b, p->group_id, CALL_CREATE, "/internal/replicas", body);
    free(body);
}

static void prefer_on(struct reconcile *rc, const struct mstore_broker *b,
                      const struct mstore_partition *p, uint32_t reported_as)
{
    char path[96];
    char body[64];
    rq_log(RQ_INFO,
           "g%" PRIu64 ": broker %u prefers broker %u as leader; naming %u",
           p->group_id, b->id, reported_as, p->replicas[0]);
    snprintf(path, sizeof path, "/internal/replicas/%" PRIu64 "/preferred",
             p->group_id);
    snprintf(body, sizeof body, "{\"broker_id\":%u}", p->replicas[0]);
    send_call(rc, b, p->group_id, CALL_PREFER, path, body);
}

static void delete_on(struct reconcile *rc, const struct mstore_broker *b,
                      uint64_t gid, const char *why)
{
    char path[64];
    rq_log(RQ_INFO, "g%" PRIu64 ": deleting on broker %u (%s)", gid, b->id,
           why);
    snprintf(path, sizeof path, "/internal/replicas/%" PRIu64, gid);
    send_call(rc, b, gid, CALL_DELETE, path, NULL);
}

static int cmp_gid(const void *x, const void *y)
{
    const struct mstore_partition *a = x;
    const struct mstore_partition *b = y;
    return a->group_id < b->group_id ? -1 : a->group_id > b->group_id;
}

static const struct mstore_partition *part_of(
    const struct mstore_partition *parts, size_t n, uint64_t gid)
{
    struct mstore_partition key = {.group_id = gid};
    if (n == 0) {
        return NULL;
    }
    return bsearch(&key, parts, n, sizeof parts[0], cmp_gid);
}

static bool placed_on(const struct mstore_partition *p, uint32_t broker)
{
    return p->replicas[0] == broker || p->replicas[1] == broker ||
           p->replicas[2] == broker;
}

static bool reported(const struct liveness_broker *lb, uint64_t gid)
{
    for (size_t i = 0; i < lb->n_replicas; i++) {
        if (lb->replicas[i].group_id == gid) {
            return true;
        }
    }
    return false;
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
static bool voter_of(const struct mcore *core, uint64_t gid, uint32_t broker)
{
    uint32_t voters[LIVENESS_VOTERS_MAX];
    unsigned n = liveness_voters(mcore_liveness(core), gid, voters);
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

static void round_run(struct reconcile *rc, uint64_t now)
{
    const struct mstore *store = mcore_store(rc->core);
    struct mstore_broker *brokers = NULL;
    struct mstore_partition *parts = NULL;
    size_t nb = 0;
    size_t np = 0;

    if (mstore_brokers(store, &brokers, &nb) != 0) {
        return;
    }
    if (mstore_all_partitions(store, &parts, &np) != 0) {
        free(brokers);
        return;
    }
    if (np > 0) {
        qsort(parts, np, sizeof parts[0], cmp_gid);
    }
    for (size_t i = 0; i < nb && rc->in_flight < MAX_IN_FLIGHT; i++) {
        const struct mstore_broker *b = &brokers[i];
        const struct liveness_broker *lb =
            liveness_broker(mcore_liveness(rc->core), b->id);
        /* A draining broker still serves what it holds until repair has
         * moved it, and its replicas are deleted once moved. */
        if ((b->state != MBROKER_ALIVE && b->state != MBROKER_DRAINING &&
             b->state != MBROKER_REMOVING) ||
            lb == NULL || !lb->heard) {
            continue;
        }
        for (size_t j = 0; j < np && rc->in_flight < MAX_IN_FLIGHT; j++) {
            const struct mstore_partition *p = &parts[j];
            /* A member its group has removed (a rebuild half done) is
             * never created here: repair adds it back, as a new member. */
            if (placed_on(p, b->id) && !reported(lb, p->group_id) &&
                !repair_active(rc->repair, p->group_id) &&
                voter_of(rc->core, p->group_id, b->id) &&
                !action_held(rc, b->id, p->group_id, now)) {
                create_on(rc, b, p, brokers, nb);
            }
        }
        for (size_t k = 0; k < lb->n_replicas && rc->in_flight < MAX_IN_FLIGHT;
             k++) {
            uint64_t gid = lb->replicas[k].group_id;
            const struct mstore_partition *p = part_of(parts, np, gid);
            if (p != NULL && placed_on(p, b->id) &&
                prefers_other(&lb->replicas[k], p) &&
                !repair_active(rc->repair, gid) &&
                !action_held(rc, b->id, gid, now)) {
                prefer_on(rc, b, p, lb->replicas[k].preferred);
                continue;
            }
            if ((p == NULL ||
                 (!placed_on(p, b->id) && !repair_active(rc->repair, gid) &&
                  !voter_of(rc->core, gid, b->id))) &&
                !action_held(rc, b->id, gid, now)) {
                delete_on(rc, b, gid,
                          p == NULL ? "no such group in the store"
                                    : "the broker is no longer a member");
            }
        }
    }
    free(parts);
    free(brokers);
}

void reconcile_tick(struct reconcile *rc, uint64_t now, bool due)
{
    if (!due && !rc->kicked) {
        return;
    }
    rc->kicked = false;
    expire(rc, now);
    round_run(rc, now);
}

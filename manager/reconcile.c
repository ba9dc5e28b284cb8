/*
 * Reconciliation rounds (see reconcile.h). A round reads the brokers, every
 * partition and the brokers' last reports, and reconcile_plan (pure, in
 * reconcile_plan.c, unit-tested) turns them into orders; this file sends
 * them. Actions are HTTP calls to brokers; at most MAX_IN_FLIGHT run at
 * once, and an action on a (broker, group) pair is held back while it runs
 * and for HOLD_MS after.
 *
 * Rounds run once a second, and at once when asked (a topic created). A
 * round that had more to do than it could send (a new topic of thousands
 * of replicas) is followed by the next as soon as half its calls are done,
 * but after a pause of PACE times its own length, so that such a burst
 * takes at most a 1/(PACE+1) share of the leader's loop (a failed call
 * ends the burst: a broker refusing is not asked faster). Creations went
 * at about 30 a second otherwise, and a topic of 1,000 partitions took
 * 100 s.
 */
#include "reconcile.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <uv.h>

#include "liveness.h"
#include "mcore.h"
#include "mstore.h"
#include "reconcile_plan.h"
#include "repair.h"
#include "rq_err.h"
#include "rq_log.h"

#define LOG_TAG "reconcile"

#define HOLD_MS 3000
#define MAX_IN_FLIGHT 32
#define PACE 4
/* Room in a round's plan for creations not sent (a member unknown). */
#define MAX_NOTES 8
#define CALL_TIMEOUT_MS 10000
/* How often a quarantined replica is mentioned in the log. */
#define QUARANTINE_NOTE_MS (10 * 60 * 1000)
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
    bool more;              /* The last round left orders unsent. */
    uint64_t more_after_ms; /* Not before then, though. */
    uint64_t now;           /* The round's time, for view_held. */
    uint64_t next_gid;      /* The store's next group id, for view_foreign. */
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

bool reconcile_kicked(const struct reconcile *rc)
{
    return rc->kicked;
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

/* The action on (@broker, @gid), made if new; NULL on ENOMEM. */
static struct action *action_get(struct reconcile *rc, uint32_t broker,
                                 uint64_t gid)
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
        *a = (struct action){.broker = broker, .group_id = gid};
    }
    return a;
}

/* Records a started action; false on ENOMEM (then it is not started). */
static bool action_start(struct reconcile *rc, uint32_t broker, uint64_t gid)
{
    struct action *a = action_get(rc, broker, gid);
    if (a == NULL) {
        return false; /* UNTESTED: ENOMEM only. */
    }
    *a = (struct action){.broker = broker, .group_id = gid, .in_flight = true};
    rc->in_flight++;
    return true;
}

static void on_foreign_applied(void *data, int status, uint64_t result)
{
    (void)data;
    (void)status;
    (void)result; /* A failure is proposed again at the next note. */
}

/*
 * A replica the store never placed: said once per QUARANTINE_NOTE_MS, and
 * a group above the store's counter recorded (MCMD_GROUP_FOREIGN), which
 * moves the counter past it so that no new partition takes its id.
 */
static void quarantine_note(struct reconcile *rc, uint32_t broker, uint64_t gid,
                            uint64_t now)
{
    struct action *a = action_get(rc, broker, gid);
    if (a != NULL) {
        a->until_ms = now + QUARANTINE_NOTE_MS;
    }
    rq_log(RQ_WARN,
           "g%" PRIu64
           ": broker %u hosts a group this cluster never placed "
           "(the managers' data is older than the broker's); quarantined, "
           "not deleted: DELETE /admin/brokers/%u/replicas/%" PRIu64
           " deletes it if its data is not needed",
           gid, broker, broker, gid);
    /* Only a cluster with a uid proposes it: every manager runs a release
     * that knows the command (manager.c, uid_upkeep). */
    if (gid >= rc->next_gid && mstore_cluster_uid(mcore_store(rc->core)) != 0) {
        struct mcmd c = {.type = MCMD_GROUP_FOREIGN};
        c.u.group_foreign.group_id = gid;
        c.u.group_foreign.broker = broker;
        if (mcore_propose(rc->core, &c, on_foreign_applied, rc) != 0 &&
            a != NULL) {
            a->until_ms = now + HOLD_MS; /* Proposed again soon. */
        }
    }
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
        rc->more = false; /* Once a second while calls fail. */
        rq_log(RQ_WARN, "g%" PRIu64 ": %s on broker %u: %s", c->group_id, what,
               c->broker, resp->why);
    } else if (resp->status == 200 ||
               (c->kind == CALL_DELETE && resp->status == 404)) {
        rq_log(RQ_INFO, "g%" PRIu64 ": %s on broker %u: done", c->group_id,
               what, c->broker);
    } else {
        rc->more = false;
        rq_log(RQ_WARN, "g%" PRIu64 ": %s on broker %u: %ld %.*s", c->group_id,
               what, c->broker, resp->status,
               (int)(resp->body_len > 300 ? 300 : resp->body_len), resp->body);
    }
    free(c);
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

static void create_on(struct reconcile *rc, const struct reconcile_order *o)
{
    const struct mstore_partition *p = o->part;
    json_t *members = json_array();
    for (unsigned k = 0; k < MCMD_RF; k++) {
        const struct mstore_broker *mb = o->members[k];
        json_array_append_new(
            members,
            json_pack("{s:I,s:s,s:s}", "id", (json_int_t)mb->id, "raft_addr",
                      mb->raft_addr, "http_addr", mb->http_addr));
    }
    json_t *j = json_pack("{s:s,s:I,s:I,s:o,s:b,s:I}", "topic", p->topic,
                          "partition_id", (json_int_t)p->partition_id,
                          "group_id", (json_int_t)p->group_id, "members",
                          members, "bootstrap", p->epoch == FIRST_EPOCH,
                          "preferred_leader", (json_int_t)p->replicas[0]);
    char *body = j != NULL ? json_dumps(j, JSON_COMPACT) : NULL;
    json_decref(j);
    if (body == NULL) {
        return; /* UNTESTED: ENOMEM only. */
    }
    rq_log(RQ_DEBUG, "g%" PRIu64 ": creating on broker %u", p->group_id,
           o->broker->id);
    send_call(rc, o->broker, p->group_id, CALL_CREATE, "/internal/replicas",
              body);
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

static bool view_moving(void *data, uint64_t gid)
{
    struct reconcile *rc = data;
    return repair_active(rc->repair, gid);
}

static unsigned view_voters(void *data, uint64_t gid,
                            uint32_t out[LIVENESS_VOTERS_MAX])
{
    struct reconcile *rc = data;
    return liveness_voters(mcore_liveness(rc->core), gid, out);
}

static bool view_foreign(void *data, uint64_t gid)
{
    struct reconcile *rc = data;
    const struct mstore *store = mcore_store(rc->core);
    return reconcile_plan_foreign(rc->next_gid, gid,
                                  mstore_group_foreign(store, gid));
}

static bool view_held(void *data, uint32_t broker, uint64_t gid)
{
    struct reconcile *rc = data;
    return action_held(rc, broker, gid, rc->now);
}

/* Gathers the view, plans the round (reconcile_plan) and sends its
 * orders. */
static void round_run(struct reconcile *rc, uint64_t now)
{
    const struct mstore *store = mcore_store(rc->core);
    struct mstore_broker *brokers = NULL;
    const struct mstore_partition *parts = NULL;
    const struct liveness_broker **reports = NULL;
    struct reconcile_order orders[MAX_IN_FLIGHT + MAX_NOTES];
    size_t nb = 0;
    size_t np = 0;

    if (rc->in_flight >= MAX_IN_FLIGHT ||
        mstore_brokers(store, &brokers, &nb) != 0) {
        free(brokers);
        return;
    }
    if (mstore_partitions_view(store, &parts, &np) != 0) {
        free(brokers);
        return;
    }
    reports = calloc(nb + 1, sizeof *reports);
    if (reports == NULL) {
        goto out; /* UNTESTED: ENOMEM only. */
    }
    for (size_t i = 0; i < nb; i++) {
        reports[i] = liveness_broker(mcore_liveness(rc->core), brokers[i].id);
    }
    if (mstore_next_group_id(store, &rc->next_gid) != 0) {
        goto out;
    }
    rc->now = now;
    struct reconcile_view v = {
        .brokers = brokers,
        .n_brokers = nb,
        .parts = parts,
        .n_parts = np,
        .reports = reports,
        .moving = view_moving,
        .voters = view_voters,
        .held = view_held,
        .foreign = view_foreign,
        .data = rc,
    };
    size_t room = MAX_IN_FLIGHT - rc->in_flight;
    size_t n =
        reconcile_plan(&v, room, sizeof orders / sizeof orders[0], orders);
    size_t calls = 0;
    for (size_t i = 0; i < n; i++) {
        const struct reconcile_order *o = &orders[i];
        calls += o->kind == RECONCILE_CREATE || o->kind == RECONCILE_PREFER ||
                 o->kind == RECONCILE_DELETE;
        switch (o->kind) {
            case RECONCILE_CREATE:
                create_on(rc, o);
                break;
            case RECONCILE_PREFER:
                prefer_on(rc, o->broker, o->part, o->other);
                break;
            case RECONCILE_DELETE:
                delete_on(rc, o->broker, o->group_id,
                          o->part == NULL ? "no such group in the store"
                                          : "the broker is no longer a member");
                break;
            case RECONCILE_UNKNOWN_MEMBER:
                rq_log(RQ_WARN, "g%" PRIu64 ": member broker %u is unknown",
                       o->group_id, o->other);
                break;
            case RECONCILE_QUARANTINE:
                quarantine_note(rc, o->broker->id, o->group_id, now);
                break;
        }
    }
    /* As many as it could send: there may be more. */
    rc->more = calls >= room;
out:
    free(reports);
    free(brokers);
}

void reconcile_tick(struct reconcile *rc, uint64_t now, bool due)
{
    bool more = rc->more && rc->in_flight <= MAX_IN_FLIGHT / 2 &&
                now >= rc->more_after_ms;
    if (!due && !rc->kicked && !more) {
        return;
    }
    rc->kicked = false;
    rc->more = false;
    expire(rc, now);
    uint64_t t0 = uv_hrtime();
    round_run(rc, now);
    uint64_t us = (uv_hrtime() - t0) / 1000;
    rc->more_after_ms = now + PACE * us / 1000;
    struct manager_stats *st = mcore_stats(rc->core);
    st->reconcile_rounds++;
    st->reconcile_us += us;
}

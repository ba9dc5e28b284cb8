/*
 * Replica repair (see repair.h). At most MAX_MOVES moves run at once, each
 * a small state machine driven by the answers of the brokers it calls and
 * by the apply of its final command. What to start, whom to ask and what
 * an answer means are decided by repair_plan.c (pure, unit-tested); this
 * file calls brokers, proposes and keeps the timers and holds. A move checks at
 * every step that this manager still leads and is not closing, and ends quietly
 * otherwise.
 */
#include "repair.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <uv.h>

#include "liveness.h"
#include "mcore.h"
#include "mstore.h"
#include "policy.h"
#include "repair_plan.h"
#include "routing.h"
#include "rq_err.h"
#include "rq_json.h"
#include "rq_log.h"

#define LOG_TAG "repair"

#define MAX_MOVES 4
#define MAX_HOLDS 256
#define HOLD_MS 5000
#define CREATE_TIMEOUT_MS 10000
#define ADD_TIMEOUT_MS 60000 /* The new member catches up first. */
#define REMOVE_TIMEOUT_MS 15000
#define STEP_RETRY_MS 1000
/* Between two rebalancing moves (one at a time). */
#define REBALANCE_PAUSE_MS 1000

/* Indexed by enum repair_step. */
static const char *const step_names[] = {"create", "add", "remove", "commit",
                                         "rebuild"};

struct move {
    struct repair *rp;
    struct mstore_partition part; /* As planned: old replicas, epoch. */
    uint32_t from;
    uint32_t to;
    uint32_t next[MCMD_RF]; /* The new replica set. */
    bool rebuild;           /* from == to: REMOVE, REBUILD, ADD. */
    bool rebalance;         /* Onto a less loaded broker. */
    uint64_t started_ms;
    enum repair_step step;
    uint32_t asked; /* The broker called in this step. */
    unsigned redirects;
    unsigned retries;
    uv_timer_t retry; /* The move is freed from its close callback. */
};

struct hold {
    uint64_t group_id;
    uint64_t until_ms;
};

struct repair {
    struct mcore *core;
    repair_changed_cb changed; /* With changed_data. */
    void *changed_data;
    struct move *moves[MAX_MOVES];
    unsigned n_moves;
    struct hold holds[MAX_HOLDS];
    size_t n_holds;
    uint32_t removing; /* A REMOVING broker being committed REMOVED; 0: none. */
    uint64_t rebalance_after_ms; /* No rebalancing move before then. */
};

static void move_end(struct move *mv, bool ok, const char *why);

int repair_new(struct mcore *core, repair_changed_cb changed, void *data,
               struct repair **out)
{
    struct repair *rp = calloc(1, sizeof *rp);
    if (rp == NULL) {
        return RQ_NOMEM; /* UNTESTED: ENOMEM only. */
    }
    rp->core = core;
    rp->changed = changed;
    rp->changed_data = data;
    *out = rp;
    return 0;
}

void repair_free(struct repair *rp)
{
    if (rp == NULL) {
        return;
    }
    /* Every move has ended by the time the loop stops (closing ends
     * them at their next step). */
    free(rp);
}

void repair_stop(struct repair *rp)
{
    /* Moves waiting for a retry end now; the others end with their call
     * or proposal, which closing and losing leadership both end. */
    unsigned i = 0;
    while (i < rp->n_moves) {
        struct move *mv = rp->moves[i];
        if (uv_is_active((uv_handle_t *)&mv->retry)) {
            uv_timer_stop(&mv->retry);
            move_end(mv, false, "this manager no longer leads");
            continue; /* move_end moved another move into slot i. */
        }
        i++;
    }
}

bool repair_active(const struct repair *rp, uint64_t group_id)
{
    for (unsigned i = 0; i < rp->n_moves; i++) {
        if (rp->moves[i]->part.group_id == group_id) {
            return true;
        }
    }
    return false;
}

static bool held(const struct repair *rp, uint64_t gid, uint64_t now)
{
    for (size_t i = 0; i < rp->n_holds; i++) {
        if (rp->holds[i].group_id == gid && now < rp->holds[i].until_ms) {
            return true;
        }
    }
    return false;
}

static void hold(struct repair *rp, uint64_t gid)
{
    uint64_t now = mcore_now(rp->core);
    size_t j = 0;
    for (size_t i = 0; i < rp->n_holds; i++) {
        if (now < rp->holds[i].until_ms && rp->holds[i].group_id != gid) {
            rp->holds[j++] = rp->holds[i];
        }
    }
    rp->n_holds = j;
    if (rp->n_holds < MAX_HOLDS) {
        rp->holds[rp->n_holds++] =
            (struct hold){.group_id = gid, .until_ms = now + HOLD_MS};
    }
}

static void on_move_closed(uv_handle_t *h)
{
    free(h->data);
}

static void move_end(struct move *mv, bool ok, const char *why)
{
    if (mv->rebalance) {
        mv->rp->rebalance_after_ms =
            mcore_now(mv->rp->core) + REBALANCE_PAUSE_MS;
    }
    struct repair *rp = mv->rp;
    for (unsigned i = 0; i < rp->n_moves; i++) {
        if (rp->moves[i] == mv) {
            rp->moves[i] = rp->moves[--rp->n_moves];
            break;
        }
    }
    if (ok && mv->rebuild) {
        rq_log(RQ_INFO,
               "g%" PRIu64
               " (%s/%u): the replica on broker %u is rebuilt and "
               "votes again",
               mv->part.group_id, mv->part.topic, mv->part.partition_id,
               mv->from);
        /* Reports from before the ADD would look like a rebuild half done. */
        hold(rp, mv->part.group_id);
        rp->changed(rp->changed_data);
    } else if (ok) {
        rq_log(RQ_INFO,
               "g%" PRIu64 " (%s/%u): replica moved from broker %u to %u",
               mv->part.group_id, mv->part.topic, mv->part.partition_id,
               mv->from, mv->to);
        rp->changed(rp->changed_data);
    } else if (!mcore_closing(rp->core)) {
        char what[80];
        if (mv->rebuild) {
            snprintf(what, sizeof what, "rebuilding the replica on broker %u",
                     mv->from);
        } else {
            snprintf(what, sizeof what,
                     "moving the replica from broker %u to %u", mv->from,
                     mv->to);
        }
        rq_log(RQ_WARN, "g%" PRIu64 ": %s stopped at %s: %s", mv->part.group_id,
               what, step_names[mv->step], why);
        hold(rp, mv->part.group_id);
    }
    uv_close((uv_handle_t *)&mv->retry, on_move_closed);
}

/* false (after ending the move) when this manager may not go on. */
static bool may_go_on(struct move *mv)
{
    if (mcore_closing(mv->rp->core) || !mcore_leading(mv->rp->core)) {
        move_end(mv, false, "this manager no longer leads");
        return false;
    }
    return true;
}

static void step_run(struct move *mv);

static void step_next(struct move *mv, enum repair_step s)
{
    mv->step = s;
    mv->redirects = 0;
    mv->retries = 0;
    mv->asked = 0;
    step_run(mv);
}

static void on_step_retry(uv_timer_t *t)
{
    struct move *mv = t->data;
    mv->redirects = 0;
    mv->asked = 0;
    step_run(mv);
}

/* Carries out what repair_plan_answer decided for a step's answer. */
static void on_step_answer(void *data, const struct rq_httpc_resp *resp)
{
    struct move *mv = data;
    struct repair_next next;
    char why[MCORE_WHY];

    if (!may_go_on(mv)) {
        return;
    }
    json_t *o = resp->body_len > 0
                    ? json_loadb(resp->body, resp->body_len, 0, NULL)
                    : NULL;
    const char *msg = json_string_value(json_object_get(o, "message"));
    struct repair_answer a = {
        .failed = resp->err != 0,
        .status = resp->status,
        .named = rq_json_id(o, "leader_id"),
    };
    repair_plan_answer(&a, mv->step, mv->rebuild, mv->redirects, mv->retries,
                       &next);
    switch (next.kind) {
        case REPAIR_FOLLOW:
            mv->redirects++;
            mv->asked = next.follow;
            step_run(mv);
            break;
        case REPAIR_WAIT:
            mv->retries++;
            uv_timer_start(&mv->retry, on_step_retry, STEP_RETRY_MS, 0);
            break;
        case REPAIR_FAIL:
            snprintf(why, sizeof why, "broker %u: %s", mv->asked,
                     resp->err != 0 ? resp->why
                     : msg != NULL  ? msg
                                    : "refused");
            move_end(mv, false, why);
            break;
        case REPAIR_STEP:
            step_next(mv, next.step);
            break;
        case REPAIR_DONE:
            move_end(mv, true, NULL);
            break;
    }
    json_decref(o);
}

static void on_committed(void *data, int status, uint64_t result)
{
    struct move *mv = data;
    if (status != 0) {
        move_end(mv, false, rq_strerror(status));
    } else if (MSTORE_IS_ERR(result)) {
        move_end(mv, false, rq_strerror(MSTORE_ERR_CODE(result)));
    } else {
        move_end(mv, true, NULL);
    }
}

/* The broker that leads the group, as far as this manager knows
 * (repair_plan_ask). */
static uint32_t group_leader(struct move *mv)
{
    const struct route *r =
        routing_get(mcore_routing(mv->rp->core), mv->part.group_id);
    return repair_plan_ask(r != NULL ? r->leader : 0, &mv->part, mv->from,
                           mv->to);
}

static int members_json(const struct mstore *store, const struct move *mv,
                        json_t **out)
{
    uint32_t order[MCMD_RF];
    struct mstore_broker b;
    policy_member_order(mv->part.group_id, mv->next, order);
    json_t *list = json_array();
    for (unsigned k = 0; k < MCMD_RF; k++) {
        if (mstore_broker(store, order[k], &b) != 0) {
            json_decref(list);
            return RQ_NOTFOUND;
        }
        json_array_append_new(
            list,
            json_pack("{s:I,s:s,s:s}", "id", (json_int_t)b.id, "raft_addr",
                      b.raft_addr, "http_addr", b.http_addr));
    }
    *out = list;
    return 0;
}

static void step_run(struct move *mv)
{
    struct mcore *core = mv->rp->core;
    struct mstore_broker b;
    struct mstore_broker to;
    char url[512];
    char *body = NULL;
    const char *method = "POST";
    unsigned timeout = CREATE_TIMEOUT_MS;
    uint64_t gid = mv->part.group_id;

    if (!may_go_on(mv)) {
        return;
    }
    if (mv->step == REPAIR_COMMIT) {
        struct mcmd c = {.type = MCMD_PARTITION_REPLICAS};
        snprintf(c.u.partition_replicas.topic,
                 sizeof c.u.partition_replicas.topic, "%s", mv->part.topic);
        c.u.partition_replicas.partition_id = mv->part.partition_id;
        c.u.partition_replicas.expected_epoch = mv->part.epoch;
        memcpy(c.u.partition_replicas.replicas, mv->next, sizeof mv->next);
        int rv = mcore_propose(core, &c, on_committed, mv);
        if (rv != 0) {
            move_end(mv, false, rq_strerror(rv));
        }
        return;
    }
    if (mstore_broker(mcore_store(core), mv->to, &to) != 0) {
        move_end(mv, false, "the new broker is unknown");
        return;
    }
    if (mv->step == REPAIR_CREATE || mv->step == REPAIR_REBUILD) {
        json_t *members;
        if (members_json(mcore_store(core), mv, &members) != 0) {
            move_end(mv, false, "a member broker is unknown");
            return;
        }
        mv->asked = mv->to;
        json_t *o = json_pack("{s:s,s:I,s:I,s:o,s:b,s:I}", "topic",
                              mv->part.topic, "partition_id",
                              (json_int_t)mv->part.partition_id, "group_id",
                              (json_int_t)gid, "members", members, "bootstrap",
                              0, "preferred_leader", (json_int_t)mv->next[0]);
        body = o != NULL ? json_dumps(o, JSON_COMPACT) : NULL;
        json_decref(o);
        if (mv->step == REPAIR_CREATE) {
            snprintf(url, sizeof url, "http://%s/internal/replicas",
                     to.http_addr);
        } else {
            snprintf(url, sizeof url,
                     "http://%s/internal/replicas/%" PRIu64 "/rebuild",
                     to.http_addr, gid);
        }
    } else {
        if (mv->asked == 0) {
            mv->asked = group_leader(mv);
        }
        if (mstore_broker(mcore_store(core), mv->asked, &b) != 0) {
            move_end(mv, false, "the group's leader is unknown");
            return;
        }
        if (mv->step == REPAIR_ADD) {
            json_t *o =
                json_pack("{s:I,s:s,s:s}", "id", (json_int_t)to.id, "raft_addr",
                          to.raft_addr, "http_addr", to.http_addr);
            body = o != NULL ? json_dumps(o, JSON_COMPACT) : NULL;
            json_decref(o);
            timeout = ADD_TIMEOUT_MS;
            snprintf(url, sizeof url,
                     "http://%s/internal/replicas/%" PRIu64 "/members",
                     b.http_addr, gid);
        } else {
            method = "DELETE";
            timeout = REMOVE_TIMEOUT_MS;
            snprintf(url, sizeof url,
                     "http://%s/internal/replicas/%" PRIu64 "/members/%u",
                     b.http_addr, gid, mv->from);
        }
    }
    if (mv->step != REPAIR_REMOVE && body == NULL) {
        move_end(mv, false, "out of memory"); /* UNTESTED: ENOMEM only. */
        return;
    }
    rq_log(RQ_DEBUG, "g%" PRIu64 ": %s (broker %u -> %u) at broker %u", gid,
           step_names[mv->step], mv->from, mv->to, mv->asked);
    struct rq_httpc_req r = {
        .method = method,
        .url = url,
        .body = body,
        .body_len = body != NULL ? strlen(body) : 0,
        .timeout_ms = timeout,
    };
    int rv = mcore_call(core, MCORE_BROKER, MCORE_JSON, &r, on_step_answer, mv);
    free(body);
    if (rv != 0) {
        move_end(mv, false, rq_strerror(rv));
    }
}

static void move_start(struct repair *rp, const struct mstore_partition *p,
                       uint32_t from, uint32_t to, enum repair_step first,
                       bool rebalance)
{
    bool rebuild = from == to;
    struct move *mv = calloc(1, sizeof *mv);
    if (mv == NULL || rp->n_moves == MAX_MOVES) {
        free(mv); /* UNTESTED: ENOMEM only. */
        return;
    }
    mv->rp = rp;
    mv->part = *p;
    mv->rebuild = rebuild;
    uv_timer_init(mcore_loop(rp->core), &mv->retry);
    mv->retry.data = mv;
    mv->from = from;
    mv->to = to;
    mv->rebalance = rebalance;
    mv->started_ms = mcore_now(rp->core);
    for (unsigned k = 0; k < MCMD_RF; k++) {
        mv->next[k] = p->replicas[k] == from ? to : p->replicas[k];
    }
    rp->moves[rp->n_moves++] = mv;
    if (rebuild) {
        rq_log(RQ_INFO,
               "g%" PRIu64
               " (%s/%u): rebuilding the replica on broker %u from its "
               "peers, from the %s step",
               p->group_id, p->topic, p->partition_id, from, step_names[first]);
    } else {
        rq_log(RQ_INFO,
               "g%" PRIu64
               " (%s/%u): moving the replica on broker %u to broker "
               "%u%s, from the %s step",
               p->group_id, p->topic, p->partition_id, from, to,
               rebalance ? " (rebalancing)" : "", step_names[first]);
    }
    step_next(mv, first);
}

static void on_removed(void *data, int status, uint64_t result)
{
    struct repair *rp = data;
    if (status == 0 && !MSTORE_IS_ERR(result)) {
        rq_log(RQ_INFO, "broker %u holds no replicas any more: removed",
               rp->removing);
        rp->changed(rp->changed_data);
    } else if (status != RQ_SHUTDOWN) {
        rq_log(RQ_WARN, "broker %u: removing -> removed not committed: %s",
               rp->removing,
               rq_strerror(status != 0 ? status : MSTORE_ERR_CODE(result)));
    }
    rp->removing = 0;
}

/*
 * A REMOVING broker becomes REMOVED once the store places nothing on it
 * and it hosts nothing (repair_plan_removal decides).
 */
static void removals_finish(struct repair *rp, const struct repair_view *v,
                            uint64_t now)
{
    struct mcore *core = rp->core;
    if (rp->removing != 0) {
        return;
    }
    uint32_t id =
        repair_plan_removal(v, now, mcore_config(core)->broker_dead_ms);
    if (id == 0) {
        return;
    }
    struct mcmd c = {.type = MCMD_BROKER_STATE};
    c.u.broker_state.id = id;
    c.u.broker_state.state = MBROKER_REMOVED;
    if (mcore_propose(core, &c, on_removed, rp) == 0) {
        rp->removing = id;
    }
}

/* What repair_plan asks, answered from this module's moves and holds and
 * from liveness. */
struct view_ctx {
    struct repair *rp;
    uint64_t now;
};

static bool view_busy(void *data, uint64_t gid)
{
    struct view_ctx *x = data;
    return repair_active(x->rp, gid) || held(x->rp, gid, x->now);
}

static unsigned view_voters(void *data, uint64_t gid,
                            uint32_t out[LIVENESS_VOTERS_MAX])
{
    struct view_ctx *x = data;
    return liveness_voters(mcore_liveness(x->rp->core), gid, out);
}

static const struct liveness_broker *view_report(void *data, uint32_t broker)
{
    struct view_ctx *x = data;
    return liveness_broker(mcore_liveness(x->rp->core), broker);
}

/* Gathers the view, plans (repair_plan) and starts the moves. */
void repair_tick(struct repair *rp, uint64_t now)
{
    const struct mstore *store = mcore_store(rp->core);
    struct mstore_broker *brokers = NULL;
    const struct mstore_partition *parts = NULL;
    struct repair_plan_move plan[MAX_MOVES];
    size_t nb = 0;
    size_t np = 0;

    if (!mcore_leading(rp->core) || mcore_closing(rp->core) ||
        rp->n_moves == MAX_MOVES) {
        return;
    }
    if (mstore_brokers(store, &brokers, &nb) != 0) {
        return;
    }
    if (mstore_partitions_view(store, &parts, &np) != 0) {
        free(brokers);
        return;
    }
    struct view_ctx ctx = {.rp = rp, .now = now};
    struct repair_view v = {
        .brokers = brokers,
        .n_brokers = nb,
        .parts = parts,
        .n_parts = np,
        .busy = view_busy,
        .voters = view_voters,
        .report = view_report,
        .data = &ctx,
        .rebalance_room =
            rp->n_moves == 0 && now >= rp->rebalance_after_ms ? 1 : 0,
    };
    removals_finish(rp, &v, now);
    uint64_t t0 = uv_hrtime();
    size_t n = repair_plan(&v, now, MAX_MOVES - rp->n_moves, plan);
    struct manager_stats *st = mcore_stats(rp->core);
    st->repair_rounds++;
    st->repair_us += (uv_hrtime() - t0) / 1000;
    for (size_t k = 0; k < n && rp->n_moves < MAX_MOVES; k++) {
        move_start(rp, plan[k].part, plan[k].from, plan[k].to, plan[k].first,
                   plan[k].rebalance);
    }
    free(brokers);
}

size_t repair_list(const struct repair *rp, uint64_t now,
                   struct repair_info *out, size_t max)
{
    size_t n = 0;
    for (unsigned i = 0; i < rp->n_moves && n < max; i++) {
        const struct move *mv = rp->moves[i];
        struct repair_info *o = &out[n++];
        *o = (struct repair_info){
            .group_id = mv->part.group_id,
            .partition_id = mv->part.partition_id,
            .from = mv->from,
            .to = mv->to,
            .kind = mv->rebuild     ? "rebuild"
                    : mv->rebalance ? "rebalance"
                                    : "repair",
            .step = step_names[mv->step],
            .age_ms = now > mv->started_ms ? now - mv->started_ms : 0,
        };
        snprintf(o->topic, sizeof o->topic, "%s", mv->part.topic);
    }
    return n;
}

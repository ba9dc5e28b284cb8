/*
 * Replica repair (see repair.h). At most MAX_MOVES moves run at once, each
 * a small state machine driven by the answers of the brokers it calls and
 * by the apply of its final command. A move checks at every step that this
 * manager still leads and is not closing, and ends quietly otherwise.
 */
#include "repair.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "liveness.h"
#include "mcore.h"
#include "mstore.h"
#include "placement.h"
#include "policy.h"
#include "routing.h"
#include "rq_err.h"
#include "rq_log.h"

#define LOG_TAG "repair"

#define MAX_MOVES 4
#define MAX_HOLDS 256
#define HOLD_MS 5000
#define CREATE_TIMEOUT_MS 10000
#define ADD_TIMEOUT_MS 60000 /* The new member catches up first. */
#define REMOVE_TIMEOUT_MS 15000
#define MAX_REDIRECTS 3
#define STEP_RETRY_MS 1000
#define STEP_RETRIES 60 /* A 503 (a change or transfer under way) waits. */
/* A replica reported failed this long, without a break, is rebuilt. */
#define REBUILD_AFTER_MS 5000

enum step { STEP_CREATE, STEP_ADD, STEP_REMOVE, STEP_COMMIT, STEP_REBUILD };

static const char *const step_names[] = {"create", "add", "remove", "commit",
                                         "rebuild"};

struct move {
    struct repair *rp;
    struct mstore_partition part; /* As planned: old replicas, epoch. */
    uint32_t from;
    uint32_t to;
    uint32_t next[MCMD_RF]; /* The new replica set. */
    bool rebuild;           /* from == to: REMOVE, REBUILD, ADD. */
    enum step step;
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

static void step_next(struct move *mv, enum step s)
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

static void on_step_answer(void *data, const struct rq_httpc_resp *resp)
{
    struct move *mv = data;
    char why[MCORE_WHY];

    if (!may_go_on(mv)) {
        return;
    }
    json_t *o = resp->body_len > 0
                    ? json_loadb(resp->body, resp->body_len, 0, NULL)
                    : NULL;
    json_t *lid = json_object_get(o, "leader_id");
    const char *msg = json_string_value(json_object_get(o, "message"));
    if (resp->err == 0 && resp->status == 421 && mv->step != STEP_CREATE &&
        mv->step != STEP_REBUILD && json_is_integer(lid) &&
        json_integer_value(lid) > 0 && json_integer_value(lid) <= UINT32_MAX &&
        mv->redirects < MAX_REDIRECTS) {
        mv->redirects++;
        mv->asked = (uint32_t)json_integer_value(lid);
        json_decref(o);
        step_run(mv);
        return;
    }
    if (resp->err == 0 && resp->status == 503 && ++mv->retries < STEP_RETRIES) {
        /* Another change, a transfer or an election is under way; a
         * membership change that timed out goes on and is asked again. */
        json_decref(o);
        uv_timer_start(&mv->retry, on_step_retry, STEP_RETRY_MS, 0);
        return;
    }
    if (resp->err != 0 || resp->status != 200) {
        snprintf(why, sizeof why, "broker %u: %s", mv->asked,
                 resp->err != 0 ? resp->why
                 : msg != NULL  ? msg
                                : "refused");
        json_decref(o);
        move_end(mv, false, why);
        return;
    }
    json_decref(o);
    if (!mv->rebuild) {
        step_next(mv, (enum step)(mv->step + 1));
    } else if (mv->step == STEP_REMOVE) {
        step_next(mv, STEP_REBUILD);
    } else if (mv->step == STEP_REBUILD) {
        step_next(mv, STEP_ADD);
    } else {
        move_end(mv, true, NULL); /* The replica set is the store's already. */
    }
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

/* The broker that leads the group, as far as this manager knows. */
static uint32_t group_leader(struct move *mv)
{
    const struct route *r =
        routing_get(mcore_routing(mv->rp->core), mv->part.group_id);
    if (r != NULL && r->leader != 0 && r->leader != mv->from) {
        return r->leader;
    }
    for (unsigned k = 0; k < MCMD_RF; k++) {
        if (mv->part.replicas[k] != mv->from) {
            return mv->part.replicas[k]; /* It names the leader (421). */
        }
    }
    return mv->to;
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
    if (mv->step == STEP_COMMIT) {
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
    if (mv->step == STEP_CREATE || mv->step == STEP_REBUILD) {
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
        if (mv->step == STEP_CREATE) {
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
        if (mv->step == STEP_ADD) {
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
    if (mv->step != STEP_REMOVE && body == NULL) {
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
                       uint32_t from, uint32_t to, enum step first)
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
               "%u, from the %s step",
               p->group_id, p->topic, p->partition_id, from, to,
               step_names[first]);
    }
    step_next(mv, first);
}

static bool in_list(const uint32_t *ids, size_t n, uint32_t id)
{
    for (size_t i = 0; i < n; i++) {
        if (ids[i] == id) {
            return true;
        }
    }
    return false;
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

/*
 * A move an earlier leader left half done, as the group's voters show it:
 * true (and the move resumed) if @p needs only its REMOVE or COMMIT.
 * *consistent tells whether the voters match the store's replicas.
 */
static bool resume(struct repair *rp, const struct mstore_partition *p,
                   const struct mstore_broker *brokers, size_t nb,
                   bool *consistent)
{
    uint32_t voters[LIVENESS_VOTERS_MAX];
    unsigned nv =
        liveness_voters(mcore_liveness(rp->core), p->group_id, voters);
    uint32_t extra = 0;
    unsigned n_extra = 0;
    uint32_t missing = 0;
    unsigned n_missing = 0;

    *consistent = false; /* Plan nothing before the leader has reported. */
    if (nv == 0) {
        return false;
    }
    for (unsigned i = 0; i < nv; i++) {
        if (!in_list(p->replicas, MCMD_RF, voters[i])) {
            extra = voters[i];
            n_extra++;
        }
    }
    for (unsigned k = 0; k < MCMD_RF; k++) {
        if (!in_list(voters, nv, p->replicas[k])) {
            missing = p->replicas[k];
            n_missing++;
        }
    }
    *consistent = n_extra == 0 && n_missing == 0;
    const struct mstore_broker *xb = broker_of(brokers, nb, extra);
    const struct mstore_broker *mb = broker_of(brokers, nb, missing);
    /* A rebuild whose member was removed and not added back: the store's
     * other two are the voters. Its broker answers the REBUILD step again
     * whether its replica is still failed, already rebuilt, or absent. */
    if (n_extra == 0 && n_missing == 1 && nv == MCMD_RF - 1 && mb != NULL &&
        mb->state == MBROKER_ALIVE) {
        move_start(rp, p, missing, missing, STEP_REBUILD);
        return true;
    }
    /* A report from before the last change looks like a move the other
     * way: only a move away from a broker that is not ALIVE, to one that
     * is, is resumed. */
    if (n_extra != 1 || xb == NULL || xb->state != MBROKER_ALIVE) {
        return false;
    }
    if (n_missing == 1 && nv == MCMD_RF && mb != NULL &&
        mb->state != MBROKER_ALIVE) {
        move_start(rp, p, missing, extra, STEP_COMMIT);
        return true;
    }
    if (n_missing == 0 && nv == MCMD_RF + 1) {
        for (unsigned k = 0; k < MCMD_RF; k++) {
            const struct mstore_broker *b =
                broker_of(brokers, nb, p->replicas[k]);
            if (b == NULL || b->state != MBROKER_ALIVE) {
                move_start(rp, p, p->replicas[k], extra, STEP_REMOVE);
                return true;
            }
        }
    }
    return false;
}

/*
 * The broker whose replica of @p has been reported failed (it could not be
 * opened) for REBUILD_AFTER_MS, while its broker and the other two are
 * ALIVE and their replicas are not failed; 0 if none. Its group can lose
 * that member for a while: the other two are up.
 */
static uint32_t rebuild_candidate(const struct repair *rp,
                                  const struct mstore_partition *p,
                                  const struct mstore_broker *brokers,
                                  size_t nb, uint64_t now)
{
    uint32_t found = 0;
    for (unsigned k = 0; k < MCMD_RF; k++) {
        const struct mstore_broker *b = broker_of(brokers, nb, p->replicas[k]);
        const struct liveness_replica *r = liveness_replica(
            mcore_liveness(rp->core), p->replicas[k], p->group_id);
        if (b == NULL || b->state != MBROKER_ALIVE || r == NULL) {
            return 0;
        }
        if (r->failed_since != 0) {
            if (found != 0 || now < r->failed_since + REBUILD_AFTER_MS) {
                return 0;
            }
            found = p->replicas[k];
        }
    }
    return found;
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
 * and it hosts nothing (reconciliation deletes what the moves left), or,
 * if it has not been heard from since this manager leads, once it has
 * been silent for the dead time.
 */
static void removals_finish(struct repair *rp,
                            const struct mstore_broker *brokers, size_t nb,
                            uint64_t now)
{
    struct mcore *core = rp->core;
    if (rp->removing != 0) {
        return;
    }
    for (size_t i = 0; i < nb; i++) {
        const struct mstore_broker *b = &brokers[i];
        const struct liveness_broker *lb =
            liveness_broker(mcore_liveness(core), b->id);
        if (b->state != MBROKER_REMOVING || b->n_replicas > 0 || lb == NULL ||
            (lb->heard && lb->n_replicas > 0) ||
            (!lb->heard &&
             now < lb->last_ms + mcore_config(core)->broker_dead_ms)) {
            continue;
        }
        struct mcmd c = {.type = MCMD_BROKER_STATE};
        c.u.broker_state.id = b->id;
        c.u.broker_state.state = MBROKER_REMOVED;
        if (mcore_propose(core, &c, on_removed, rp) == 0) {
            rp->removing = b->id;
        }
        return;
    }
}

void repair_tick(struct repair *rp, uint64_t now)
{
    const struct mstore *store = mcore_store(rp->core);
    struct mstore_broker *brokers = NULL;
    struct mstore_partition *parts = NULL;
    size_t nb = 0;
    size_t np = 0;

    if (!mcore_leading(rp->core) || mcore_closing(rp->core) ||
        rp->n_moves == MAX_MOVES) {
        return;
    }
    if (mstore_brokers(store, &brokers, &nb) != 0) {
        return;
    }
    if (mstore_all_partitions(store, &parts, &np) != 0) {
        free(brokers);
        return;
    }
    struct placement_broker *pb = calloc(nb + 1, sizeof *pb);
    struct placement_partition *pp = calloc(np + 1, sizeof *pp);
    struct placement_move plan[MAX_MOVES];
    size_t npp = 0;
    if (pb == NULL || pp == NULL) {
        goto out; /* UNTESTED: ENOMEM only. */
    }
    removals_finish(rp, brokers, nb, now);
    for (size_t i = 0; i < nb; i++) {
        pb[i] = (struct placement_broker){
            .id = brokers[i].id,
            .state = brokers[i].state,
            .n_replicas = brokers[i].n_replicas,
            .n_preferred = brokers[i].n_preferred,
        };
    }
    for (size_t i = 0; i < np && rp->n_moves < MAX_MOVES; i++) {
        const struct mstore_partition *p = &parts[i];
        bool consistent;
        if (repair_active(rp, p->group_id) || held(rp, p->group_id, now) ||
            resume(rp, p, brokers, nb, &consistent) || !consistent) {
            continue;
        }
        uint32_t broken = rebuild_candidate(rp, p, brokers, nb, now);
        if (broken != 0) {
            move_start(rp, p, broken, broken, STEP_REMOVE);
            continue;
        }
        pp[npp].group_id = p->group_id;
        memcpy(pp[npp].replicas, p->replicas, sizeof pp[npp].replicas);
        npp++;
    }
    size_t n = placement_repair(pb, nb, pp, npp, MAX_MOVES - rp->n_moves, plan);
    for (size_t k = 0; k < n && rp->n_moves < MAX_MOVES; k++) {
        for (size_t i = 0; i < np; i++) {
            if (parts[i].group_id == plan[k].group_id) {
                move_start(rp, &parts[i], plan[k].from, plan[k].to,
                           STEP_CREATE);
                break;
            }
        }
    }
out:
    free(pb);
    free(pp);
    free(parts);
    free(brokers);
}

/*
 * Health, metrics, the admin API and the brokers' internal API (see
 * admin.h).
 *
 * Admin paths (API.md section 3):
 *   GET    /admin/managers                      managers, leader, term
 *   GET    /admin/brokers                       state, heartbeat age, counts
 *   POST   /admin/brokers/{id}/drain            state DRAINING
 *   DELETE /admin/brokers/{id}                  state REMOVED, or REMOVING
 *                                               (202) while it holds replicas
 *   DELETE /admin/brokers/{id}/replicas/{g}     delete a replica the store
 *                                               does not know (quarantined)
 *   GET    /admin/topics                        every topic, its partitions'
 *                                               health in counts
 *   GET    /admin/topics/{topic}                partitions: leader, replicas,
 *                                               commit, lag
 *   DELETE /admin/topics/{topic}                delete (replicas follow)
 *   POST   /admin/partitions/{topic}/{p}/leader {"broker_id": N}: the new
 *                                               preferred leader, then a
 *                                               transfer
 *   POST   /admin/tokens                        {"name", "grants": [...]}:
 *                                               a new public API token,
 *                                               shown once
 *   GET    /admin/tokens                        id, name, grants, created
 *   DELETE /admin/tokens/{id}                   revoke
 * Brokers add themselves by registering. Everything but /admin/managers
 * is served by the leader (a follower forwards). Every admin handler
 * authenticates first (auth_admin: 401/403 on any manager), then reads
 * and checks the request (400 on any manager), and only then forwards.
 */
#include "admin.h"

#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <raft.h>

#include "auth.h"
#include "grants.h"
#include "liveness.h"
#include "mcore.h"
#include "mstore.h"
#include "rq_codes.h"
#include "rq_names.h"
#include "qapi.h"
#include "reconcile.h"
#include "reconcile_plan.h"
#include "repair.h"
#include "routing.h"
#include "rq_config.h"
#include "rq_err.h"
#include "rq_json.h"
#include "rq_log.h"
#include "rq_metrics.h"
#include "rq_node.h"
#include "rq_preamble.h"
#include "rq_uid.h"
#include "rq_version.h"

#define LOG_TAG "admin"

#define WHY_LEN MCORE_WHY
#define TRANSFER_TIMEOUT_MS 15000
#define REPLICA_DELETE_TIMEOUT_MS 10000

/* Strict decimal up to UINT32_MAX. */
static int parse_u32(const char *s, uint32_t *out)
{
    uint64_t v;
    if (rq_parse_u64(s, UINT32_MAX, &v) != 0) {
        return RQ_INVALID;
    }
    *out = (uint32_t)v;
    return 0;
}

/* ---- Health ---- */

void admin_healthz(struct rq_http_req *req, void *data)
{
    struct mcore *core = data;
    rq_http_reply(
        req, 200,
        json_pack("{s:I,s:s}", "id", (json_int_t)mcore_config(core)->id,
                  "version", rq_version()));
}

void admin_readyz(struct rq_http_req *req, void *data)
{
    struct mcore *core = data;
    struct rq_node_info info;
    char addr[MCMD_ADDR_MAX + 1];

    if (mcore_closing(core)) {
        mcore_unavailable(req, "the manager is shutting down");
        return;
    }
    mcore_node_info(core, &info);
    if (info.ready) {
        rq_http_reply(req, 200,
                      json_pack("{s:s,s:I}", "role", "leader", "term",
                                (json_int_t)info.term));
        return;
    }
    if (info.leader_id == 0 || info.leader_id == mcore_config(core)->id) {
        mcore_unavailable(req, "no ready leader manager yet");
        return;
    }
    if (mcore_leader_http(core, addr, sizeof addr) == NULL) {
        mcore_unavailable(req,
                          "the leader manager's HTTP address is not known "
                          "here yet");
        return;
    }
    if (info.applied < info.commit) {
        mcore_unavailable(req, "catching up: applied %" PRIu64 " of %" PRIu64,
                          info.applied, info.commit);
        return;
    }
    rq_http_reply(
        req, 200,
        json_pack("{s:s,s:I,s:I}", "role", "follower", "leader",
                  (json_int_t)info.leader_id, "term", (json_int_t)info.term));
}

void admin_metrics(struct rq_http_req *req, void *data)
{
    struct mcore *core = data;
    struct rq_buf out;

    rq_buf_init(&out);
    if (rq_metrics_render(mcore_modules(core)->metrics, &out) != 0) {
        rq_buf_close(&out); /* UNTESTED: ENOMEM only. */
        rq_http_reply_error(req, 500, "out of memory");
        return;
    }
    rq_http_reply_text(req, 200, RQ_METRICS_CONTENT_TYPE,
                       (const char *)out.base, out.len);
    rq_buf_close(&out);
}

/* ---- Managers and brokers ---- */

void admin_managers(struct rq_http_req *req, void *data)
{
    struct mcore *core = data;
    struct rq_node_info info;

    if (!auth_admin(core, req)) {
        return;
    }
    mcore_node_info(core, &info);
    uint64_t conf_index;
    bool pending;
    const struct raft_configuration *conf =
        rq_node_configuration(mcore_node(core), &conf_index, &pending);
    json_t *list = json_array();
    for (unsigned i = 0; i < conf->n; i++) {
        struct mstore_manager mm;
        const struct raft_server *sv = &conf->servers[i];
        uint64_t id = sv->id;
        bool known = mstore_manager(mcore_store(core), (uint32_t)id, &mm) == 0;
        /* Voters lead or follow; spares are catching up to be voters. */
        const char *role = sv->role != RAFT_VOTER ? "spare"
                           : id == info.leader_id ? "leader"
                                                  : "follower";
        json_array_append_new(
            list, json_pack("{s:I,s:s,s:o,s:s,s:b}", "id", (json_int_t)id,
                            "raft_addr", sv->address, "http_addr",
                            known && mm.http_addr[0] != '\0'
                                ? json_string(mm.http_addr)
                                : json_null(),
                            "role", role, "voter", sv->role == RAFT_VOTER));
    }
    uint64_t uid = mstore_cluster_uid(mcore_store(core));
    char uid_text[RQ_UID_TEXT];
    rq_uid_format(uid, uid_text);
    rq_http_reply(
        req, 200,
        json_pack("{s:o,s:o,s:I,s:I,s:I,s:I,s:o}", "managers", list, "leader",
                  info.leader_id != 0 ? json_integer((json_int_t)info.leader_id)
                                      : json_null(),
                  "term", (json_int_t)info.term, "self",
                  (json_int_t)mcore_config(core)->id, "commit",
                  (json_int_t)info.commit, "applied", (json_int_t)info.applied,
                  "cluster_uid",
                  uid != 0 ? json_string(uid_text) : json_null()));
}

void admin_brokers(struct rq_http_req *req, void *data)
{
    struct mcore *core = data;
    struct mstore_broker *list;
    size_t n;

    if (!auth_admin(core, req) || mcore_forward(core, req)) {
        return;
    }
    int rv = mstore_brokers(mcore_store(core), &list, &n);
    if (rv != 0) {
        qapi_reply_store_error(req, rv);
        return;
    }
    uint64_t now = mcore_now(core);
    uint64_t next_gid = 0;
    const struct mstore_partition *parts = NULL;
    size_t np = 0;
    json_t *out = json_array();
    rv = mstore_next_group_id(mcore_store(core), &next_gid);
    if (rv == 0) {
        /* Looked up in memory: a query per hosted replica took over a
         * second at 300,000 replicas. */
        rv = mstore_partitions_view(mcore_store(core), &parts, &np);
    }
    for (size_t i = 0; rv == 0 && i < n; i++) {
        const struct liveness_broker *lb =
            liveness_broker(mcore_liveness(core), list[i].id);
        size_t leaders = 0;
        json_t *quarantined = json_array();
        for (size_t k = 0; lb != NULL && k < lb->n_replicas; k++) {
            uint64_t gid = lb->replicas[k].group_id;
            leaders += lb->replicas[k].leader;
            if (mstore_partition_in(parts, np, gid) == NULL &&
                reconcile_plan_foreign(
                    next_gid, gid,
                    mstore_group_foreign(mcore_store(core), gid))) {
                json_array_append_new(quarantined,
                                      json_integer((json_int_t)gid));
            }
        }
        json_array_append_new(
            out,
            json_pack(
                "{s:i,s:s,s:s,s:s,s:o,s:i,s:i,s:o,s:o,s:o,s:o}", "id",
                (int)list[i].id, "raft_addr", list[i].raft_addr, "http_addr",
                list[i].http_addr, "state", mbroker_state_name(list[i].state),
                "heartbeat_age_ms",
                lb != NULL && lb->heard
                    ? json_integer((json_int_t)(now - lb->last_ms))
                    : json_null(),
                "partitions", (int)list[i].n_replicas, "preferred_leader_of",
                (int)list[i].n_preferred, "leader_of",
                lb != NULL ? json_integer((json_int_t)leaders) : json_null(),
                "hosted",
                lb != NULL ? json_integer((json_int_t)lb->n_replicas)
                           : json_null(),
                "quarantined", quarantined, "disk",
                lb != NULL && lb->disk.known
                    ? json_pack("{s:I,s:I,s:I,s:b}", "total_bytes",
                                (json_int_t)lb->disk.total, "free_bytes",
                                (json_int_t)lb->disk.free, "reserve_bytes",
                                (json_int_t)lb->disk.reserve, "low",
                                lb->disk.low)
                    : json_null()));
    }
    free(list);
    if (rv != 0) {
        json_decref(out);
        qapi_reply_store_error(req, rv);
        return;
    }
    rq_http_reply(req, 200, json_pack("{s:o}", "brokers", out));
}

/* GET /admin/moves: the replica moves under way (repair.h). */
void admin_moves(struct rq_http_req *req, void *data)
{
    struct mcore *core = data;
    struct repair_info info[16];

    if (!auth_admin(core, req) || mcore_forward(core, req)) {
        return;
    }
    size_t n = repair_list(mcore_modules(core)->repair, mcore_now(core), info,
                           sizeof info / sizeof info[0]);
    json_t *list = json_array();
    for (size_t i = 0; i < n; i++) {
        const struct repair_info *m = &info[i];
        json_array_append_new(
            list, json_pack("{s:I,s:s,s:i,s:i,s:i,s:s,s:s,s:I}", "group_id",
                            (json_int_t)m->group_id, "topic", m->topic,
                            "partition_id", (int)m->partition_id, "from",
                            (int)m->from, "to", (int)m->to, "kind", m->kind,
                            "step", m->step, "age_ms", (json_int_t)m->age_ms));
    }
    rq_http_reply(req, 200, json_pack("{s:o}", "moves", list));
}

/* ---- Quarantined replicas: an admin's decision ---- */

struct replica_delete {
    struct rq_http_req *req;
    uint32_t broker;
    uint64_t gid;
};

static void on_replica_deleted(void *data, const struct rq_httpc_resp *resp)
{
    struct replica_delete *op = data;
    if (op->req == NULL) {
        free(op); /* The client left. */
        return;
    }
    if (resp->err != 0) {
        mcore_unavailable(op->req, "broker %u: %s", op->broker,
                          resp->why != NULL ? resp->why : "no answer");
    } else if (resp->status == 200) {
        rq_log(RQ_WARN, "g%" PRIu64 ": deleted on broker %u by an admin",
               op->gid, op->broker);
        rq_http_reply(op->req, 200,
                      json_pack("{s:s}", "message",
                                "the replica and its data are deleted"));
    } else if (resp->status == 404) {
        rq_http_reply_error(op->req, 404,
                            "broker %u hosts no replica of group %" PRIu64,
                            op->broker, op->gid);
    } else {
        rq_http_reply_error(op->req, 502, "broker %u answered %ld", op->broker,
                            resp->status);
    }
    free(op);
}

/*
 * DELETE /admin/brokers/{id}/replicas/{group_id}: deletes a replica the
 * store does not know, such as one reconcile quarantined (reconcile_plan_
 * foreign). A group the store places is refused: its replicas are the
 * store's to move.
 */
void admin_replica_delete(struct rq_http_req *req, void *data)
{
    struct mcore *core = data;
    uint32_t id;
    uint64_t gid;
    struct mstore_broker b;
    struct mstore_partition p;
    char url[512];

    if (!auth_admin(core, req)) {
        return;
    }
    if (parse_u32(rq_http_param(req, "id"), &id) != 0 || id == 0 ||
        rq_parse_u64(rq_http_param(req, "group_id"), UINT64_MAX, &gid) != 0 ||
        gid == 0) {
        rq_http_reply_error(req, 400,
                            "the broker id and the group id must be positive "
                            "integers");
        return;
    }
    if (mcore_forward(core, req)) {
        return;
    }
    int rv = mstore_broker(mcore_store(core), id, &b);
    if (rv == RQ_NOTFOUND) {
        rq_http_reply_fail(req, 404, RQ_CODE_BROKER_NOT_FOUND,
                           "broker %u is not registered", id);
        return;
    }
    if (rv == 0) {
        rv = mstore_partition_by_group(mcore_store(core), gid, &p);
        if (rv == 0) {
            rq_http_reply_error(req, 409,
                                "group %" PRIu64
                                " is partition %u of topic '%s': the store "
                                "moves its replicas; only a replica it does "
                                "not know can be deleted here",
                                gid, p.partition_id, p.topic);
            return;
        }
        rv = rv == RQ_NOTFOUND ? 0 : rv;
    }
    if (rv != 0) {
        qapi_reply_store_error(req, rv);
        return;
    }
    struct replica_delete *op = calloc(1, sizeof *op);
    if (op == NULL) {
        rq_http_reply_error(req, 500, "out of memory"); /* UNTESTED */
        return;
    }
    op->broker = id;
    op->gid = gid;
    snprintf(url, sizeof url, "http://%s/internal/replicas/%" PRIu64,
             b.http_addr, gid);
    struct rq_httpc_req r = {
        .method = "DELETE",
        .url = url,
        .timeout_ms = REPLICA_DELETE_TIMEOUT_MS,
    };
    rv = mcore_call(core, MCORE_BROKER, MCORE_JSON, &r, on_replica_deleted, op);
    if (rv != 0) {
        free(op);
        mcore_unavailable(req, "cannot call broker %u: %s", id,
                          rq_strerror(rv));
        return;
    }
    mcore_hold(req, &op->req);
}

/* ---- Proposals answered once applied ---- */

/* Proposes @c for @req, @cb(@op) to run once applied: 0 (the caller then
 * holds @req), or answers 503 and returns why (@cb never runs; the caller
 * frees @op). */
static int propose(struct mcore *core, struct rq_http_req *req, struct mcmd *c,
                   rq_node_done_cb cb, void *op)
{
    int rv = mcore_propose(core, c, cb, op);
    if (rv != 0) {
        mcore_unavailable(req, "this manager cannot commit now (%s); retry",
                          rq_strerror(rv));
    }
    return rv;
}

struct admin_op {
    struct rq_http_req *req;
    struct mcore *core;
    char what[320];
    bool kick;  /* Reconcile once applied. */
    int status; /* Of the answer once applied (200, or 202: under way). */
};

static void on_admin_applied(void *data, int status, uint64_t result)
{
    struct admin_op *op = data;
    if (status == 0 && !MSTORE_IS_ERR(result) && op->kick) {
        reconcile_kick(mcore_modules(op->core)->reconcile);
    }
    if (status == 0 && !MSTORE_IS_ERR(result)) {
        rq_log(RQ_INFO, "%s", op->what);
    }
    if (op->req != NULL) {
        if (status != 0) {
            mcore_unavailable(op->req, "not committed: %s; retry",
                              rq_strerror(status));
        } else if (MSTORE_IS_ERR(result)) {
            int code = MSTORE_ERR_CODE(result);
            rq_http_reply_error(op->req, rq_err_http_status(code),
                                "refused: %s", rq_strerror(code));
        } else {
            rq_http_reply(op->req, op->status,
                          json_pack("{s:s}", "message", op->what));
        }
    }
    free(op);
}

static void propose_and_answer(struct mcore *core, struct rq_http_req *req,
                               struct mcmd *c, int status, const char *what,
                               bool kick)
{
    struct admin_op *op = rq_http_calloc(req, 1, sizeof *op);
    if (op == NULL) {
        return; /* UNTESTED: ENOMEM only. */
    }
    op->core = core;
    op->kick = kick;
    op->status = status;
    snprintf(op->what, sizeof op->what, "%s", what);
    if (propose(core, req, c, on_admin_applied, op) != 0) {
        free(op);
        return;
    }
    mcore_hold(req, &op->req);
}

static void broker_state_change(struct rq_http_req *req, struct mcore *core,
                                enum mbroker_state to)
{
    struct mstore_broker b;
    uint32_t id;
    char what[320];
    int status = 200;

    if (!auth_admin(core, req)) {
        return;
    }
    if (parse_u32(rq_http_param(req, "id"), &id) != 0) {
        rq_http_reply_error(req, 400, "the broker id must be an integer");
        return;
    }
    if (mcore_forward(core, req)) {
        return;
    }
    int rv = mstore_broker(mcore_store(core), id, &b);
    if (rv == RQ_NOTFOUND) {
        rq_http_reply_fail(req, 404, RQ_CODE_BROKER_NOT_FOUND, "no broker %u",
                           id);
        return;
    }
    if (rv != 0) {
        qapi_reply_store_error(req, rv);
        return;
    }
    if (to == MBROKER_REMOVED && b.state != MBROKER_REMOVED &&
        b.state != MBROKER_DEAD) {
        /* A broker that still holds replicas is drained first: it becomes
         * REMOVED once repair has moved everything off it (repair.c). A
         * DEAD one is removed at once: its replicas are being replaced
         * already. */
        const struct liveness_broker *lb =
            liveness_broker(mcore_liveness(core), id);
        size_t hosted = lb != NULL && lb->heard ? lb->n_replicas : 0;
        if (b.n_replicas > 0 || hosted > 0) {
            to = MBROKER_REMOVING;
            status = 202;
            snprintf(what, sizeof what,
                     "broker %u is now removing: its %u replicas are being "
                     "moved to other brokers, and it becomes removed once it "
                     "holds none (see GET /admin/brokers)",
                     id,
                     b.n_replicas > hosted ? b.n_replicas : (unsigned)hosted);
        }
    }
    if ((to == MBROKER_DRAINING || to == MBROKER_REMOVING) && b.state != to &&
        b.n_replicas > 0) {
        /* Its replicas need MCMD_RF other brokers to go to; with fewer the
         * drain would wait for good. */
        struct mstore_broker *all;
        size_t n;
        unsigned others = 0;
        rv = mstore_brokers(mcore_store(core), &all, &n);
        if (rv != 0) {
            qapi_reply_store_error(req, rv);
            return;
        }
        for (size_t i = 0; i < n; i++) {
            others += all[i].id != id && all[i].state == MBROKER_ALIVE;
        }
        free(all);
        if (others < MCMD_RF) {
            rq_http_reply_error(
                req, 409,
                "broker %u holds %u replicas, which need %d other alive "
                "brokers to move to, and there are %u: add a broker first; "
                "a broker stopped for good is removed at once once it is "
                "dead",
                id, b.n_replicas, MCMD_RF, others);
            return;
        }
    }
    struct mcmd c = {.type = MCMD_BROKER_STATE};
    c.u.broker_state.id = id;
    c.u.broker_state.state = to;
    if (status == 200) {
        snprintf(what, sizeof what, "broker %u is now %s", id,
                 mbroker_state_name(to));
    }
    propose_and_answer(core, req, &c, status, what, true);
}

void admin_broker_drain(struct rq_http_req *req, void *data)
{
    broker_state_change(req, data, MBROKER_DRAINING);
}

void admin_broker_remove(struct rq_http_req *req, void *data)
{
    broker_state_change(req, data, MBROKER_REMOVED);
}

/* ---- Topics ---- */

/* A topic's partitions, in counts (admin_topics). */
struct topic_health {
    uint32_t seen;
    uint32_t leaderless;
    uint32_t lagging;
    uint64_t high_watermark; /* The partitions' next offsets, added up. */
};

/* Counts @p into @h: without a leader; lagging when a replica is behind
 * the partition's commit or has not reported (as the status page marks
 * them: admin_topic_describe gives the same per replica). @reports holds
 * the leader's report of each of @brokers (sorted by id), or NULL. */
static void count_partition(struct mcore *core,
                            const struct mstore_partition *p,
                            const struct mstore_broker *brokers, size_t nb,
                            const struct liveness_broker *const *reports,
                            struct topic_health *h)
{
    const struct route *r = routing_get(mcore_routing(core), p->group_id);
    uint64_t commit = r != NULL ? r->commit : 0;
    bool behind = false;
    for (unsigned k = 0; k < MCMD_RF && !behind; k++) {
        const struct mstore_broker *b =
            mstore_broker_in(brokers, nb, p->replicas[k]);
        const struct liveness_replica *lr =
            b != NULL ? liveness_report_find(reports[b - brokers], p->group_id)
                      : NULL;
        behind = lr == NULL || lr->commit < commit;
    }
    h->seen++;
    h->leaderless += r == NULL || r->leader == 0;
    h->lagging += behind;
    h->high_watermark += r != NULL ? r->high_watermark : 0;
}

void admin_topics(struct rq_http_req *req, void *data)
{
    struct mcore *core = data;
    const struct mstore *store = mcore_store(core);
    struct mstore_topic *topics = NULL;
    struct mstore_broker *brokers = NULL;
    const struct mstore_partition *parts;
    const struct liveness_broker **reports = NULL;
    struct topic_health *health = NULL;
    size_t nt = 0;
    size_t nb = 0;
    size_t np = 0;

    if (!auth_admin(core, req) || mcore_forward(core, req)) {
        return;
    }
    int rv = mstore_topics(store, &topics, &nt);
    if (rv == 0) {
        rv = mstore_brokers(store, &brokers, &nb);
    }
    if (rv == 0) {
        rv = mstore_partitions_view(store, &parts, &np);
    }
    if (rv == 0) {
        reports = calloc(nb + 1, sizeof *reports);
        health = calloc(nt + 1, sizeof *health);
        rv = reports == NULL || health == NULL ? RQ_NOMEM : 0;
    }
    if (rv != 0) {
        qapi_reply_store_error(req, rv);
        goto out;
    }
    for (size_t i = 0; i < nb; i++) {
        reports[i] = liveness_broker(mcore_liveness(core), brokers[i].id);
    }
    for (size_t i = 0; i < np; i++) {
        const struct mstore_topic *t =
            mstore_topic_in(topics, nt, parts[i].topic);
        if (t != NULL) {
            count_partition(core, &parts[i], brokers, nb, reports,
                            &health[t - topics]);
        }
    }
    json_t *list = json_array();
    for (size_t i = 0; i < nt; i++) {
        json_array_append_new(
            list,
            json_pack("{s:s,s:i,s:I,s:i,s:i,s:I}", "topic", topics[i].name,
                      "number_of_partitions", (int)topics[i].n_partitions,
                      "created_ms", (json_int_t)topics[i].created_ms,
                      "leaderless", (int)health[i].leaderless, "lagging",
                      (int)health[i].lagging, "high_watermark_sum",
                      (json_int_t)health[i].high_watermark));
    }
    rq_http_reply(req, 200,
                  json_pack("{s:o,s:I}", "topics", list, "number_of_partitions",
                            (json_int_t)np));
out:
    free(health);
    free(reports);
    free(brokers);
    free(topics);
}

/* The most consumer positions (a consumer on a partition) listed. */
#define CONSUMER_POSITIONS_MAX 100000

/* One consumer of GET /admin/consumers from its positions @pos (n of
 * them, all its own): its lag is null unless every partition's high
 * watermark is known. */
static json_t *consumer_row(struct mcore *core,
                            const struct mstore_position *pos, size_t n)
{
    struct mstore_client cl;
    uint64_t lag = 0;
    bool known = true;
    for (size_t i = 0; i < n; i++) {
        const struct route *r =
            routing_get(mcore_routing(core), pos[i].group_id);
        if (r == NULL) {
            known = false;
        } else if (r->high_watermark > pos[i].next_offset) {
            lag += r->high_watermark - pos[i].next_offset;
        }
    }
    bool bound =
        mstore_consumer(mcore_store(core), pos[0].consumer_id, &cl) == 0 &&
        cl.partition_id != MCMD_NO_PARTITION;
    return json_pack(
        "{s:I,s:s,s:o,s:i,s:o}", "consumer_id", (json_int_t)pos[0].consumer_id,
        "topic", pos[0].topic, "partition_id",
        bound ? json_integer(cl.partition_id) : json_null(), "partitions",
        (int)n, "lag", known ? json_integer((json_int_t)lag) : json_null());
}

void admin_consumers(struct rq_http_req *req, void *data)
{
    struct mcore *core = data;
    struct mstore_position *pos = NULL;
    struct mstore_topic t;
    size_t n = 0;
    size_t total = 0;

    if (!auth_admin(core, req)) {
        return;
    }
    const char *topic = NULL;
    if (rq_http_arg(req, "topic") != NULL) {
        topic = qapi_topic_arg(req, "topic");
        if (topic == NULL) {
            return;
        }
    }
    if (mcore_forward(core, req)) {
        return;
    }
    if (topic != NULL &&
        qapi_reply_topic_lookup(req, mstore_topic(mcore_store(core), topic, &t),
                                topic)) {
        return;
    }
    int rv = mstore_positions(mcore_store(core), CONSUMER_POSITIONS_MAX, &pos,
                              &n, &total);
    if (rv != 0) {
        qapi_reply_store_error(req, rv);
        return;
    }
    json_t *list = json_array();
    for (size_t i = 0; i < n;) {
        size_t k = i + 1;
        while (k < n && pos[k].consumer_id == pos[i].consumer_id) {
            k++;
        }
        if (topic == NULL || strcmp(pos[i].topic, topic) == 0) {
            json_array_append_new(list, consumer_row(core, &pos[i], k - i));
        }
        i = k;
    }
    free(pos);
    rq_http_reply(req, 200,
                  json_pack("{s:o,s:I}", "consumers", list, "omitted_positions",
                            (json_int_t)(total - n)));
}

void admin_topic_describe(struct rq_http_req *req, void *data)
{
    struct mcore *core = data;
    struct mstore_partition *parts;
    struct mstore_topic t;
    size_t n;

    if (!auth_admin(core, req)) {
        return;
    }
    const char *topic = qapi_topic_param(req);
    if (topic == NULL || mcore_forward(core, req)) {
        return;
    }
    int rv = mstore_topic(mcore_store(core), topic, &t);
    if (rv == 0) {
        rv = mstore_partitions(mcore_store(core), topic, &parts, &n);
    }
    if (qapi_reply_topic_lookup(req, rv, topic)) {
        return;
    }
    json_t *list = json_array();
    for (size_t i = 0; i < n; i++) {
        const struct mstore_partition *p = &parts[i];
        const struct route *r = routing_get(mcore_routing(core), p->group_id);
        uint64_t commit = r != NULL ? r->commit : 0;
        json_t *reps = json_array();
        for (unsigned k = 0; k < MCMD_RF; k++) {
            const struct liveness_replica *lr = liveness_report_find(
                liveness_broker(mcore_liveness(core), p->replicas[k]),
                p->group_id);
            json_array_append_new(
                reps,
                json_pack("{s:i,s:o,s:o,s:o,s:o}", "broker_id",
                          (int)p->replicas[k], "role",
                          lr == NULL   ? json_null()
                          : lr->leader ? json_string("leader")
                                       : json_string("follower"),
                          "commit",
                          lr != NULL ? json_integer((json_int_t)lr->commit)
                                     : json_null(),
                          "next_offset",
                          lr != NULL ? json_integer((json_int_t)lr->next_offset)
                                     : json_null(),
                          "lag",
                          lr != NULL ? json_integer((
                                           json_int_t)(commit > lr->commit
                                                           ? commit - lr->commit
                                                           : 0))
                                     : json_null()));
        }
        json_t *ids = json_array();
        for (unsigned k = 0; k < MCMD_RF; k++) {
            json_array_append_new(ids, json_integer(p->replicas[k]));
        }
        json_array_append_new(
            list,
            json_pack("{s:i,s:I,s:I,s:o,s:i,s:o,s:I,s:I,s:o}", "partition_id",
                      (int)p->partition_id, "group_id", (json_int_t)p->group_id,
                      "epoch", (json_int_t)p->epoch, "replicas", ids,
                      "preferred_leader", (int)p->replicas[0], "leader",
                      r != NULL && r->leader != 0 ? json_integer(r->leader)
                                                  : json_null(),
                      "commit", (json_int_t)commit, "high_watermark",
                      (json_int_t)(r != NULL ? r->high_watermark : 0),
                      "replica_status", reps));
    }
    free(parts);
    rq_http_reply(
        req, 200,
        json_pack("{s:s,s:i,s:I,s:o}", "topic", t.name, "number_of_partitions",
                  (int)t.n_partitions, "created_ms", (json_int_t)t.created_ms,
                  "partitions", list));
}

void admin_topic_delete(struct rq_http_req *req, void *data)
{
    struct mcore *core = data;
    struct mstore_topic t;
    char what[MCMD_NAME_MAX + 64];

    if (!auth_admin(core, req)) {
        return;
    }
    const char *topic = qapi_topic_param(req);
    if (topic == NULL || mcore_forward(core, req)) {
        return;
    }
    int rv = mstore_topic(mcore_store(core), topic, &t);
    if (qapi_reply_topic_lookup(req, rv, topic)) {
        return;
    }
    struct mcmd c = {.type = MCMD_TOPIC_DELETE};
    snprintf(c.u.topic_delete.name, sizeof c.u.topic_delete.name, "%s", topic);
    snprintf(what, sizeof what, "Topic '%s' deleted", topic);
    propose_and_answer(core, req, &c, 200, what, true);
}

/* ---- Leadership moves ----
 *
 * A move makes the target the partition's preferred leader for good and
 * then hands it the leadership:
 *
 *   COMMIT    MCMD_PARTITION_REPLICAS with the target moved to replicas[0]
 *             (checked against the epoch read), unless it is there already
 *   PREFER    every replica is told (POST .../preferred); a replica that
 *             misses it is told by reconciliation, which compares what
 *             brokers report with replicas[0]
 *   TRANSFER  the group's leader hands over (POST .../transfer); a 409
 *             (a transfer under way, perhaps the leader's own towards the
 *             new preferred leader) or a 503 is asked again until the
 *             deadline, and a 421 naming the target means it is done
 *
 * Brokers hand leadership back to their preferred leader, so without the
 * first two steps a move would last a few seconds.
 */

#define MOVE_DEADLINE_MS 15000
#define MOVE_RETRY_MS 300
#define PREFER_TIMEOUT_MS 3000

struct move_op {
    struct rq_http_req *req; /* NULL once the client has gone. */
    struct mcore *core;
    struct mstore_partition part;
    uint32_t to;
    uint32_t asked;
    unsigned pending; /* PREFER calls not answered yet. */
    uint64_t deadline;
    char why[WHY_LEN];
    uv_timer_t retry; /* The op is freed from its close callback. */
};

static void on_move_closed(uv_handle_t *h)
{
    free(h->data);
}

static void move_finish(struct move_op *op)
{
    uv_close((uv_handle_t *)&op->retry, on_move_closed);
}

static void move_fail(struct move_op *op, int status, const char *retry_after,
                      const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));

static void move_fail(struct move_op *op, int status, const char *retry_after,
                      const char *fmt, ...)
{
    char msg[WHY_LEN];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    if (op->req != NULL) {
        if (retry_after != NULL) {
            rq_http_set_header(op->req, "Retry-After", retry_after);
        }
        rq_http_reply_error(op->req, status, "%s", msg);
    }
    move_finish(op);
}

static void move_done(struct move_op *op, const char *msg)
{
    routing_set_leader(mcore_routes(op->core), op->part.group_id, op->to,
                       mcore_now(op->core));
    rq_log(RQ_INFO, "%s/%u: leadership moved to broker %u", op->part.topic,
           op->part.partition_id, op->to);
    if (op->req != NULL) {
        rq_http_reply(op->req, 200, json_pack("{s:s}", "message", msg));
    }
    move_finish(op);
}

static void transfer_send(struct move_op *op, uint32_t broker);

static void on_move_retry(uv_timer_t *t)
{
    struct move_op *op = t->data;
    const struct route *r =
        routing_get(mcore_routing(op->core), op->part.group_id);
    transfer_send(op, r != NULL && r->leader != 0 ? r->leader : op->to);
}

/* Asks again after a pause, or answers 503 past the deadline. */
static void transfer_again(struct move_op *op)
{
    if (mcore_closing(op->core) ||
        mcore_now(op->core) + MOVE_RETRY_MS > op->deadline) {
        move_fail(op, 503, "1",
                  "broker %u is the preferred leader of %s/%u now, but "
                  "leadership has not moved yet (%s); the brokers go on "
                  "handing it over",
                  op->to, op->part.topic, op->part.partition_id, op->why);
        return;
    }
    uv_timer_start(&op->retry, on_move_retry, MOVE_RETRY_MS, 0);
}

static void on_transfer(void *data, const struct rq_httpc_resp *resp)
{
    struct move_op *op = data;
    if (mcore_closing(op->core)) {
        move_finish(op);
        return;
    }
    json_t *o = resp->body_len > 0
                    ? json_loadb(resp->body, resp->body_len, 0, NULL)
                    : NULL;
    const char *msg = json_string_value(json_object_get(o, "message"));
    uint32_t leader = rq_json_id(o, "leader_id");
    if (resp->err != 0) {
        snprintf(op->why, sizeof op->why, "broker %u: %s", op->asked,
                 resp->why);
        routing_drop_leader(mcore_routes(op->core), op->part.group_id,
                            op->asked);
    } else {
        snprintf(op->why, sizeof op->why, "broker %u: %ld %s", op->asked,
                 resp->status, msg != NULL ? msg : "");
    }
    json_decref(o);
    if (resp->err == 0 && resp->status == 200) {
        move_done(op, "leadership moved");
    } else if (resp->err == 0 && resp->status == 421 && leader == op->to) {
        move_done(op, "leadership moved");
    } else if (resp->err == 0 && resp->status == 421 && leader != 0 &&
               leader != op->asked) {
        routing_set_leader(mcore_routes(op->core), op->part.group_id, leader,
                           mcore_now(op->core));
        transfer_send(op, leader);
    } else if (resp->err != 0 || resp->status == 421 || resp->status == 409 ||
               resp->status == 503) {
        transfer_again(op);
    } else {
        move_fail(op, (int)resp->status, NULL, "%s", op->why);
    }
}

static void transfer_send(struct move_op *op, uint32_t broker)
{
    struct mstore_broker b;
    char url[512];
    char body[64];
    op->asked = broker;
    if (mstore_broker(mcore_store(op->core), broker, &b) != 0) {
        snprintf(op->why, sizeof op->why, "broker %u is unknown", broker);
        transfer_again(op);
        return;
    }
    snprintf(url, sizeof url,
             "http://%s/internal/replicas/%" PRIu64 "/transfer", b.http_addr,
             op->part.group_id);
    snprintf(body, sizeof body, "{\"to\":%u}", op->to);
    struct rq_httpc_req r = {
        .method = "POST",
        .url = url,
        .body = body,
        .body_len = strlen(body),
        .timeout_ms = TRANSFER_TIMEOUT_MS,
    };
    int rv =
        mcore_call(op->core, MCORE_BROKER, MCORE_JSON, &r, on_transfer, op);
    if (rv != 0) {
        move_fail(op, 503, "1", "cannot call broker %u: %s", broker,
                  rq_strerror(rv));
    }
}

static void on_preferred(void *data, const struct rq_httpc_resp *resp)
{
    struct move_op *op = data;
    if (resp->err != 0 || resp->status != 200) {
        rq_log(RQ_DEBUG,
               "g%" PRIu64
               ": naming broker %u the preferred leader failed on a replica "
               "(%s); reconciliation will",
               op->part.group_id, op->to,
               resp->err != 0 ? resp->why : "refused");
    }
    if (--op->pending > 0) {
        return;
    }
    if (mcore_closing(op->core)) {
        move_finish(op);
        return;
    }
    on_move_retry(&op->retry);
}

static void prefer_all(struct move_op *op)
{
    struct mstore_broker b;
    char url[512];
    char body[64];
    snprintf(body, sizeof body, "{\"broker_id\":%u}", op->to);
    op->pending = 0;
    for (unsigned k = 0; k < MCMD_RF; k++) {
        if (mstore_broker(mcore_store(op->core), op->part.replicas[k], &b) !=
            0) {
            continue;
        }
        snprintf(url, sizeof url,
                 "http://%s/internal/replicas/%" PRIu64 "/preferred",
                 b.http_addr, op->part.group_id);
        struct rq_httpc_req r = {
            .method = "POST",
            .url = url,
            .body = body,
            .body_len = strlen(body),
            .timeout_ms = PREFER_TIMEOUT_MS,
        };
        if (mcore_call(op->core, MCORE_BROKER, MCORE_JSON, &r, on_preferred,
                       op) == 0) {
            op->pending++;
        }
    }
    if (op->pending == 0) {
        on_move_retry(&op->retry); /* Reconciliation will tell them. */
    }
}

static void on_order_committed(void *data, int status, uint64_t result)
{
    struct move_op *op = data;
    if (status != 0) {
        move_fail(op, 503, "1",
                  "the new preferred leader was not committed: %s; retry",
                  rq_strerror(status));
        return;
    }
    if (MSTORE_IS_ERR(result)) {
        move_fail(op, 409, NULL,
                  "the replicas of topic '%s' partition %u changed meanwhile "
                  "(%s); retry",
                  op->part.topic, op->part.partition_id,
                  rq_strerror(MSTORE_ERR_CODE(result)));
        return;
    }
    rq_log(RQ_INFO, "%s/%u: broker %u is now the preferred leader",
           op->part.topic, op->part.partition_id, op->to);
    reconcile_kick(mcore_modules(op->core)->reconcile);
    prefer_all(op);
}

void admin_partition_leader(struct rq_http_req *req, void *data)
{
    struct mcore *core = data;
    struct mstore_partition *parts;
    size_t n;
    uint32_t p;
    char why[WHY_LEN];

    if (!auth_admin(core, req)) {
        return;
    }
    const char *topic = qapi_topic_param(req);
    if (topic == NULL) {
        return;
    }
    if (parse_u32(rq_http_param(req, "partition"), &p) != 0) {
        rq_http_reply_error(req, 400, "the partition must be an integer");
        return;
    }
    json_t *body = rq_http_json(req, why, sizeof why);
    json_t *bid = json_object_get(body, "broker_id");
    if (body == NULL || !json_is_integer(bid) || json_integer_value(bid) <= 0 ||
        json_integer_value(bid) > UINT32_MAX) {
        rq_http_reply_error(req, 400, "'broker_id' must be a broker id");
        return;
    }
    if (mcore_forward(core, req)) {
        return;
    }
    uint32_t to = (uint32_t)json_integer_value(bid);
    int rv = mstore_partitions(mcore_store(core), topic, &parts, &n);
    if (qapi_reply_topic_lookup(req, rv, topic)) {
        return;
    }
    if (p >= n) {
        free(parts);
        rq_http_reply_fail(req, 404, RQ_CODE_PARTITION_NOT_FOUND,
                           "topic '%s' has no partition %u", topic, p);
        return;
    }
    struct mstore_partition part = parts[p];
    free(parts);
    unsigned at = MCMD_RF;
    for (unsigned k = 0; k < MCMD_RF; k++) {
        if (part.replicas[k] == to) {
            at = k;
        }
    }
    if (at == MCMD_RF) {
        rq_http_reply_error(req, 400,
                            "broker %u holds no replica of topic '%s' "
                            "partition %u (its replicas are on %u, %u, %u)",
                            to, topic, p, part.replicas[0], part.replicas[1],
                            part.replicas[2]);
        return;
    }
    if (repair_active(mcore_modules(core)->repair, part.group_id)) {
        mcore_unavailable(req,
                          "a replica of topic '%s' partition %u is being "
                          "moved; retry once that is done",
                          topic, p);
        return;
    }
    struct move_op *op = rq_http_calloc(req, 1, sizeof *op);
    if (op == NULL) {
        return; /* UNTESTED: ENOMEM only. */
    }
    op->core = core;
    op->part = part;
    op->to = to;
    op->deadline = mcore_now(core) + MOVE_DEADLINE_MS;
    uv_timer_init(mcore_loop(core), &op->retry);
    op->retry.data = op;
    if (at == 0) {
        mcore_hold(req, &op->req);
        prefer_all(op);
        return;
    }
    /* The target first, the others in their order. */
    struct mcmd c = {.type = MCMD_PARTITION_REPLICAS};
    snprintf(c.u.partition_replicas.topic, sizeof c.u.partition_replicas.topic,
             "%s", part.topic);
    c.u.partition_replicas.partition_id = part.partition_id;
    c.u.partition_replicas.expected_epoch = part.epoch;
    unsigned j = 0;
    c.u.partition_replicas.replicas[j++] = to;
    for (unsigned k = 0; k < MCMD_RF; k++) {
        if (k != at) {
            c.u.partition_replicas.replicas[j++] = part.replicas[k];
        }
    }
    memcpy(op->part.replicas, c.u.partition_replicas.replicas,
           sizeof op->part.replicas);
    if (propose(core, req, &c, on_order_committed, op) != 0) {
        move_finish(op);
        return;
    }
    mcore_hold(req, &op->req);
}

/* ---- Public API tokens ---- */

struct token_op {
    struct rq_http_req *req;
    char token[AUTH_TOKEN_LEN + 1]; /* Shown once, in the answer. */
    char name[MCMD_TOKEN_NAME_MAX + 1];
    char grants[MCMD_GRANTS_TEXT_MAX + 1];
    uint64_t created_ms;
};

/* The canonical grants text as a JSON list. */
static json_t *grants_json(const char *text)
{
    char one[GRANT_TEXT_MAX + 1];
    json_t *list = json_array();
    const char *p = text;
    while (*p != '\0') {
        size_t n = strcspn(p, " ");
        snprintf(one, sizeof one, "%.*s", (int)n, p);
        json_array_append_new(list, json_string(one));
        p += n;
        p += *p == ' ';
    }
    return list;
}

static void on_token_created(void *data, int status, uint64_t result)
{
    struct token_op *op = data;
    if (status == 0 && !MSTORE_IS_ERR(result)) {
        rq_log(RQ_INFO, "token %llu (%s) created with grants %s",
               (unsigned long long)MSTORE_OK(result), op->name, op->grants);
    }
    if (op->req == NULL) {
        /* The client went away: the token exists but nobody will see it;
         * an admin revokes it by its id from GET /admin/tokens. */
    } else if (status != 0) {
        mcore_unavailable(op->req, "the token was not committed: %s; retry",
                          rq_strerror(status));
    } else if (MSTORE_IS_ERR(result)) {
        int code = MSTORE_ERR_CODE(result);
        rq_http_reply_error(op->req, rq_err_http_status(code),
                            "the token was refused: %s", rq_strerror(code));
    } else {
        rq_http_reply(
            op->req, 200,
            json_pack("{s:s,s:I,s:s,s:o,s:I,s:s}", "token", op->token, "id",
                      (json_int_t)MSTORE_OK(result), "name", op->name, "grants",
                      grants_json(op->grants), "created_ms",
                      (json_int_t)op->created_ms, "message",
                      "keep the token now: it is shown only this once"));
    }
    memset(op->token, 0, sizeof op->token);
    free(op);
}

/* POST /admin/tokens {"name": N, "grants": ["produce:orders.*", ...]}: the
 * leader draws the token and proposes its hash; the answer, after the
 * commit, is the only place the token ever appears. */
void admin_tokens_create(struct rq_http_req *req, void *data)
{
    struct mcore *core = data;
    struct grants gs;
    struct grant g;
    char why[WHY_LEN];

    if (!auth_admin(core, req)) {
        return;
    }
    json_t *body = rq_http_json(req, why, sizeof why);
    if (body == NULL) {
        rq_http_reply_error(req, 400, "%s", why);
        return;
    }
    json_t *name = json_object_get(body, "name");
    json_t *list = json_object_get(body, "grants");
    if (!json_is_string(name) ||
        !rq_names_token_valid(json_string_value(name))) {
        rq_http_reply_error(req, 400,
                            "'name' must be 1-%d characters of "
                            "[A-Za-z0-9._-], saying whose token it is",
                            MCMD_TOKEN_NAME_MAX);
        return;
    }
    if (!json_is_array(list) || json_array_size(list) == 0) {
        rq_http_reply_error(req, 400,
                            "'grants' must be a list of 1 to %d grants, such "
                            "as [\"produce:orders.*\", \"consume:orders.*\"] "
                            "or [\"admin\"]",
                            GRANTS_MAX);
        return;
    }
    memset(&gs, 0, sizeof gs);
    for (size_t i = 0; i < json_array_size(list); i++) {
        json_t *v = json_array_get(list, i);
        if (!json_is_string(v)) {
            rq_http_reply_error(req, 400, "grants[%zu] must be a string", i);
            return;
        }
        if (grant_parse(json_string_value(v), &g, why, sizeof why) != 0 ||
            grants_add(&gs, &g, why, sizeof why) != 0) {
            rq_http_reply_error(req, 400, "grants[%zu]: %s", i, why);
            return;
        }
    }
    if (mcore_forward(core, req)) {
        return;
    }
    struct token_op *op = rq_http_calloc(req, 1, sizeof *op);
    if (op == NULL) {
        return; /* UNTESTED: ENOMEM only. */
    }
    struct mcmd c = {.type = MCMD_TOKEN_CREATE};
    if (auth_token_new(op->token, c.u.token_create.hash) != 0) {
        free(op); /* UNTESTED: getrandom does not fail on Linux >= 3.17. */
        rq_http_reply_error(req, 500, "no random bytes for a token");
        return;
    }
    snprintf(c.u.token_create.name, sizeof c.u.token_create.name, "%s",
             json_string_value(name));
    grants_format(&gs, c.u.token_create.grants, sizeof c.u.token_create.grants);
    snprintf(op->name, sizeof op->name, "%s", c.u.token_create.name);
    snprintf(op->grants, sizeof op->grants, "%s", c.u.token_create.grants);
    if (propose(core, req, &c, on_token_created, op) != 0) {
        memset(op->token, 0, sizeof op->token);
        free(op);
        return;
    }
    op->created_ms = c.now_ms;
    mcore_hold(req, &op->req);
}

/* GET /admin/tokens: what each token may do, never the token nor its
 * hash. */
void admin_tokens_list(struct rq_http_req *req, void *data)
{
    struct mcore *core = data;
    struct mstore_token *list;
    size_t n;

    if (!auth_admin(core, req) || mcore_forward(core, req)) {
        return;
    }
    int rv = mstore_tokens(mcore_store(core), &list, &n);
    if (rv != 0) {
        qapi_reply_store_error(req, rv);
        return;
    }
    json_t *out = json_array();
    for (size_t i = 0; i < n; i++) {
        json_array_append_new(
            out,
            json_pack("{s:I,s:s,s:o,s:I}", "id", (json_int_t)list[i].id, "name",
                      list[i].name, "grants", grants_json(list[i].grants),
                      "created_ms", (json_int_t)list[i].created_ms));
    }
    free(list);
    rq_http_reply(req, 200, json_pack("{s:o}", "tokens", out));
}

/* DELETE /admin/tokens/{id}: every manager refuses the token once it has
 * applied the revocation (the leader before it answers). */
void admin_token_revoke(struct rq_http_req *req, void *data)
{
    struct mcore *core = data;
    uint64_t id;
    char what[64];

    if (!auth_admin(core, req)) {
        return;
    }
    if (rq_parse_u64(rq_http_param(req, "id"), UINT64_C(1) << 53, &id) != 0 ||
        id == 0) {
        rq_http_reply_error(req, 400,
                            "the token id must be a positive integer (see GET "
                            "/admin/tokens)");
        return;
    }
    if (mcore_forward(core, req)) {
        return;
    }
    struct mstore_token *list;
    size_t n;
    bool known = false;
    int rv = mstore_tokens(mcore_store(core), &list, &n);
    if (rv != 0) {
        qapi_reply_store_error(req, rv);
        return;
    }
    for (size_t i = 0; i < n; i++) {
        known |= list[i].id == id;
    }
    free(list);
    if (!known) {
        rq_http_reply_fail(req, 404, RQ_CODE_TOKEN_NOT_FOUND,
                           "no token %llu (revoked already, or never "
                           "created; see GET /admin/tokens)",
                           (unsigned long long)id);
        return;
    }
    struct mcmd c = {.type = MCMD_TOKEN_REVOKE};
    c.u.token_revoke.id = id;
    snprintf(what, sizeof what, "token %llu revoked", (unsigned long long)id);
    propose_and_answer(core, req, &c, 200, what, false);
}

/* ---- Brokers' internal API ---- */

/* A HOST:PORT string of at most @max bytes (a Raft address travels in
 * every preamble, so it is held to the preamble's 63). */
static bool addr_ok(const json_t *v, size_t max)
{
    char host[MCMD_ADDR_MAX + 1];
    char why[WHY_LEN];
    uint16_t port;
    return json_is_string(v) && json_string_length(v) <= max &&
           rq_addr_split(json_string_value(v), host, sizeof host, &port, why,
                         sizeof why) == 0;
}

/* Adds the cluster uid, once there is one, to a broker's answer @o. */
static json_t *with_uid(struct mcore *core, json_t *o)
{
    char text[RQ_UID_TEXT];
    uint64_t uid = mstore_cluster_uid(mcore_store(core));
    if (o != NULL && uid != 0) {
        rq_uid_format(uid, text);
        json_object_set_new(o, "cluster_uid", json_string(text));
    }
    return o;
}

struct registration {
    struct rq_http_req *req;
    struct mcore *core;
    uint32_t id;
};

static void on_broker_registered(void *data, int status, uint64_t result)
{
    struct registration *op = data;
    struct mcore *core = op->core;
    if (status == 0 && !MSTORE_IS_ERR(result)) {
        liveness_touch(mcore_modules(core)->liveness, op->id, mcore_now(core));
        reconcile_kick(mcore_modules(core)->reconcile);
        rq_log(RQ_INFO, "broker %u registered", op->id);
    }
    if (op->req != NULL) {
        if (status != 0) {
            mcore_unavailable(op->req,
                              "the registration was not committed: %s; "
                              "retry",
                              rq_strerror(status));
        } else if (MSTORE_IS_ERR(result)) {
            int code = MSTORE_ERR_CODE(result);
            rq_http_reply_error(op->req, rq_err_http_status(code),
                                "the registration was refused: %s",
                                rq_strerror(code));
        } else {
            rq_http_reply(
                op->req, 200,
                with_uid(core, json_pack("{s:i,s:I}", "broker_id", (int)op->id,
                                         "leader_id",
                                         (json_int_t)mcore_config(core)->id)));
        }
    }
    free(op);
}

/*
 * The cluster uid a broker's registration or heartbeat names (the one it
 * is bound to), checked against ours on the leader: true to go on (none
 * named, or ours); false once answered: 400 for a malformed uid, 503 while
 * this cluster has none yet, 409 naming ours for another cluster's, so
 * that a broker of another cluster is never registered here (DESIGN.md
 * section 17).
 */
static bool broker_uid_ok(struct mcore *core, struct rq_http_req *req,
                          const json_t *body, uint32_t id)
{
    const json_t *field = json_object_get(body, "cluster_uid");
    uint64_t theirs;
    if (field == NULL) {
        return true; /* A broker not bound yet, or of an earlier release. */
    }
    if (rq_uid_parse(json_string_value(field), &theirs) != 0) {
        rq_http_reply_error(req, 400,
                            "'cluster_uid' must be 16 hexadecimal digits");
        return false;
    }
    uint64_t ours = mstore_cluster_uid(mcore_store(core));
    if (ours == 0) {
        /* A bound broker meets a cluster without a uid yet: a new one
         * (managers that lost their data) about to draw its own, which
         * will not be the broker's. It waits rather than registering. */
        mcore_unavailable(req,
                          "this cluster has no uid yet; a broker bound "
                          "to one waits for it");
        return false;
    }
    if (ours == theirs) {
        return true;
    }
    char a[RQ_UID_TEXT];
    char b[RQ_UID_TEXT];
    rq_uid_format(ours, a);
    rq_uid_format(theirs, b);
    rq_log(RQ_WARN,
           "broker %u is bound to cluster %s, not this cluster (%s): "
           "refused",
           id, b, a);
    rq_http_reply(
        req, 409,
        json_pack("{s:s,s:s}", "message",
                  "this broker is bound to another cluster; see cluster_uid",
                  "cluster_uid", a));
    return false;
}

void admin_broker_register(struct rq_http_req *req, void *data)
{
    struct mcore *core = data;
    char why[WHY_LEN];

    /* The signature was checked before this handler (routes.h); the
     * request is validated before it is forwarded. */
    json_t *body = rq_http_json(req, why, sizeof why);
    if (body == NULL) {
        rq_http_reply_error(req, 400, "%s", why);
        return;
    }
    json_t *id = json_object_get(body, "id");
    json_t *raft = json_object_get(body, "raft_addr");
    json_t *http = json_object_get(body, "http_addr");
    if (!json_is_integer(id) || json_integer_value(id) <= 0 ||
        json_integer_value(id) > UINT32_MAX ||
        !addr_ok(raft, RQ_PREAMBLE_ADDR - 1) || !addr_ok(http, MCMD_ADDR_MAX)) {
        rq_http_reply_error(req, 400,
                            "need 'id' (a positive integer), 'raft_addr' and "
                            "'http_addr' (HOST:PORT)");
        return;
    }
    if (mcore_forward(core, req)) {
        return;
    }
    /* Before the cluster has a uid (until every manager runs a release
     * that knows it) a broker registers unbound, and binds itself on the
     * first answer that names one. */
    if (!broker_uid_ok(core, req, body, (uint32_t)json_integer_value(id))) {
        return;
    }
    struct mcmd c = {.type = MCMD_BROKER_REGISTER};
    struct mstore_broker old;
    uint32_t bid = (uint32_t)json_integer_value(id);
    if (mstore_broker(mcore_store(core), bid, &old) == 0 &&
        old.state == MBROKER_REMOVED) {
        if (!json_is_true(json_object_get(body, "fresh"))) {
            rq_http_reply_error(req, 409,
                                "broker %u was removed; a broker started with "
                                "an empty data directory takes the id again",
                                bid);
            return;
        }
        /* A new broker with the removed one's id (DESIGN.md section 17). */
        rq_log(RQ_INFO,
               "broker %u, removed earlier, registers again holding nothing: "
               "the id is taken again",
               bid);
        c.type = MCMD_BROKER_REISSUE;
    }
    c.u.broker_register.id = (uint32_t)json_integer_value(id);
    snprintf(c.u.broker_register.raft_addr,
             sizeof c.u.broker_register.raft_addr, "%s",
             json_string_value(raft));
    snprintf(c.u.broker_register.http_addr,
             sizeof c.u.broker_register.http_addr, "%s",
             json_string_value(http));
    struct registration *op = rq_http_calloc(req, 1, sizeof *op);
    if (op == NULL) {
        return; /* UNTESTED: ENOMEM only. */
    }
    op->core = core;
    op->id = c.u.broker_register.id;
    if (propose(core, req, &c, on_broker_registered, op) != 0) {
        free(op);
        return;
    }
    mcore_hold(req, &op->req);
}

void admin_broker_heartbeat(struct rq_http_req *req, void *data)
{
    struct mcore *core = data;
    struct mstore_broker b;
    uint32_t id;
    char why[WHY_LEN];

    if (parse_u32(rq_http_param(req, "id"), &id) != 0 || id == 0) {
        rq_http_reply_error(req, 400,
                            "the broker id must be a positive "
                            "integer");
        return;
    }
    json_t *body = rq_http_json(req, why, sizeof why);
    if (body == NULL) {
        rq_http_reply_error(req, 400, "%s", why);
        return;
    }
    if (mcore_forward(core, req) || !broker_uid_ok(core, req, body, id)) {
        return;
    }
    int rv = mstore_broker(mcore_store(core), id, &b);
    if (rv == RQ_NOTFOUND || (rv == 0 && b.state == MBROKER_REMOVED)) {
        rq_http_reply_fail(req, 404, RQ_CODE_BROKER_NOT_FOUND,
                           "broker %u is not registered; register first", id);
        return;
    }
    if (rv != 0) {
        qapi_reply_store_error(req, rv);
        return;
    }
    bool want_full;
    rv = liveness_heartbeat(mcore_modules(core)->liveness, id, body,
                            mcore_now(core), &want_full, why, sizeof why);
    if (rv != 0) {
        rq_http_reply_error(req, rv == RQ_NOMEM ? 500 : 400, "%s", why);
        return;
    }
    json_t *answer =
        json_pack("{s:I}", "leader_id", (json_int_t)mcore_config(core)->id);
    if (want_full) {
        json_object_set_new(answer, "report", json_string("full"));
    }
    rq_http_reply(req, 200, with_uid(core, answer));
}

/*
 * Health, metrics, the admin API and the brokers' internal API (see
 * admin.h).
 *
 * Admin paths (API.md section 3):
 *   GET    /admin/managers                      managers, leader, term
 *   GET    /admin/brokers                       state, heartbeat age, counts
 *   POST   /admin/brokers/{id}/drain            state DRAINING
 *   DELETE /admin/brokers/{id}                  state REMOVED
 *   GET    /admin/topics/{topic}                partitions: leader, replicas,
 *                                               commit, lag
 *   DELETE /admin/topics/{topic}                delete (replicas follow)
 *   POST   /admin/partitions/{topic}/{p}/leader {"broker_id": N}
 * Brokers add themselves by registering. Everything but /admin/managers
 * is served by the leader (a follower forwards).
 */
#include "admin.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "liveness.h"
#include "manager.h"
#include "mstore.h"
#include "reconcile.h"
#include "routing.h"
#include "rq_err.h"
#include "rq_log.h"

#define LOG_TAG "admin"

#define WHY_LEN MANAGER_WHY
#define TRANSFER_TIMEOUT_MS 15000

/* Strict decimal up to UINT32_MAX. */
static int parse_u32(const char *s, uint32_t *out)
{
    uint64_t v = 0;
    if (s == NULL || *s == '\0') {
        return RQ_INVALID;
    }
    for (; *s != '\0'; s++) {
        if (*s < '0' || *s > '9') {
            return RQ_INVALID;
        }
        v = v * 10 + (uint64_t)(*s - '0');
        if (v > UINT32_MAX) {
            return RQ_INVALID;
        }
    }
    *out = (uint32_t)v;
    return 0;
}

static void reply_store_error(struct rq_http_req *req, int rv)
{
    rq_http_reply_error(req, 500,
                        "reading the metadata store failed: %s; see the "
                        "manager's log",
                        rq_strerror(rv));
}

/* ---- Health ---- */

void admin_healthz(struct rq_http_req *req, void *data)
{
    struct manager *m = data;
    rq_http_reply(req, 200, json_pack("{s:I}", "id", (json_int_t)m->cfg.id));
}

void admin_readyz(struct rq_http_req *req, void *data)
{
    struct manager *m = data;
    struct rq_node_info info;
    char addr[MCMD_ADDR_MAX + 1];

    if (m->closing) {
        manager_unavailable(req, "the manager is shutting down");
        return;
    }
    rq_node_info(m->node, &info);
    if (info.ready) {
        rq_http_reply(req, 200,
                      json_pack("{s:s,s:I}", "role", "leader", "term",
                                (json_int_t)info.term));
        return;
    }
    if (info.leader_id == 0 || info.leader_id == m->cfg.id) {
        manager_unavailable(req, "no ready leader manager yet");
        return;
    }
    if (manager_leader_http(m, addr, sizeof addr) == NULL) {
        manager_unavailable(req,
                            "the leader manager's HTTP address is not known "
                            "here yet");
        return;
    }
    if (info.applied < info.commit) {
        manager_unavailable(req, "catching up: applied %" PRIu64 " of %" PRIu64,
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
    struct manager *m = data;
    struct rq_node_info info;
    struct rq_http_stats hs;
    char text[4096];

    rq_node_info(m->node, &info);
    rq_http_stats(m->http, &hs);
    int n = snprintf(text, sizeof text,
                     "# TYPE raftq_manager_leader gauge\n"
                     "raftq_manager_leader %d\n"
                     "# TYPE raftq_manager_term gauge\n"
                     "raftq_manager_term %" PRIu64
                     "\n"
                     "# TYPE raftq_manager_commit_index gauge\n"
                     "raftq_manager_commit_index %" PRIu64
                     "\n"
                     "# TYPE raftq_manager_applied_index gauge\n"
                     "raftq_manager_applied_index %" PRIu64
                     "\n"
                     "# TYPE raftq_manager_proposals_total counter\n"
                     "raftq_manager_proposals_total %" PRIu64
                     "\n"
                     "# TYPE raftq_manager_proposal_errors_total counter\n"
                     "raftq_manager_proposal_errors_total %" PRIu64
                     "\n"
                     "# TYPE raftq_manager_forwarded_total counter\n"
                     "raftq_manager_forwarded_total %" PRIu64
                     "\n"
                     "# TYPE raftq_manager_produced_total counter\n"
                     "raftq_manager_produced_total %" PRIu64
                     "\n"
                     "# TYPE raftq_manager_consumed_total counter\n"
                     "raftq_manager_consumed_total %" PRIu64
                     "\n"
                     "# TYPE raftq_manager_read_barriers_total counter\n"
                     "raftq_manager_read_barriers_total %" PRIu64
                     "\n"
                     "# TYPE raftq_manager_read_index_total counter\n"
                     "raftq_manager_read_index_total %" PRIu64
                     "\n"
                     "# TYPE raftq_manager_routes gauge\n"
                     "raftq_manager_routes %zu\n"
                     "# TYPE raftq_http_requests_total counter\n"
                     "raftq_http_requests_total %" PRIu64
                     "\n"
                     "# TYPE raftq_http_rejected_total counter\n"
                     "raftq_http_rejected_total %" PRIu64
                     "\n"
                     "# TYPE raftq_http_connections gauge\n"
                     "raftq_http_connections %u\n",
                     info.ready ? 1 : 0, info.term, info.commit, info.applied,
                     m->stats.proposals, m->stats.proposal_errors,
                     m->stats.forwarded, m->stats.produced, m->stats.consumed,
                     m->stats.read_barriers, m->stats.read_index,
                     routing_count(m->routing), hs.requests, hs.rejected,
                     hs.connections);
    rq_http_reply_text(req, 200, "text/plain; version=0.0.4", text,
                       n > 0 && (size_t)n < sizeof text ? (size_t)n : 0);
}

/* ---- Managers and brokers ---- */

void admin_managers(struct rq_http_req *req, void *data)
{
    struct manager *m = data;
    struct rq_node_info info;

    if (!manager_check_admin(m, req)) {
        return;
    }
    rq_node_info(m->node, &info);
    json_t *list = json_array();
    for (size_t i = 0; i < m->n_peers; i++) {
        struct mstore_manager mm;
        uint64_t id = m->peers[i].id;
        bool known = mstore_manager(m->store, (uint32_t)id, &mm) == 0;
        json_array_append_new(
            list,
            json_pack("{s:I,s:s,s:o,s:s}", "id", (json_int_t)id, "raft_addr",
                      m->peers[i].address, "http_addr",
                      known && mm.http_addr[0] != '\0'
                          ? json_string(mm.http_addr)
                          : json_null(),
                      "role", id == info.leader_id ? "leader" : "follower"));
    }
    rq_http_reply(
        req, 200,
        json_pack("{s:o,s:o,s:I,s:I,s:I,s:I}", "managers", list, "leader",
                  info.leader_id != 0 ? json_integer((json_int_t)info.leader_id)
                                      : json_null(),
                  "term", (json_int_t)info.term, "self", (json_int_t)m->cfg.id,
                  "commit", (json_int_t)info.commit, "applied",
                  (json_int_t)info.applied));
}

void admin_brokers(struct rq_http_req *req, void *data)
{
    struct manager *m = data;
    struct mstore_broker *list;
    size_t n;

    if (!manager_check_admin(m, req) || manager_forward(m, req)) {
        return;
    }
    int rv = mstore_brokers(m->store, &list, &n);
    if (rv != 0) {
        reply_store_error(req, rv);
        return;
    }
    uint64_t now = uv_now(m->loop);
    json_t *out = json_array();
    for (size_t i = 0; i < n; i++) {
        const struct liveness_broker *lb =
            liveness_broker(m->liveness, list[i].id);
        size_t leaders = 0;
        for (size_t k = 0; lb != NULL && k < lb->n_replicas; k++) {
            leaders += lb->replicas[k].leader;
        }
        json_array_append_new(
            out,
            json_pack(
                "{s:i,s:s,s:s,s:s,s:o,s:i,s:i,s:o,s:o}", "id", (int)list[i].id,
                "raft_addr", list[i].raft_addr, "http_addr", list[i].http_addr,
                "state", mbroker_state_name(list[i].state), "heartbeat_age_ms",
                lb != NULL && lb->heard
                    ? json_integer((json_int_t)(now - lb->last_ms))
                    : json_null(),
                "partitions", (int)list[i].n_replicas, "preferred_leader_of",
                (int)list[i].n_preferred, "leader_of",
                lb != NULL ? json_integer((json_int_t)leaders) : json_null(),
                "hosted",
                lb != NULL ? json_integer((json_int_t)lb->n_replicas)
                           : json_null()));
    }
    free(list);
    rq_http_reply(req, 200, json_pack("{s:o}", "brokers", out));
}

/* ---- Proposals answered once applied ---- */

struct admin_op {
    struct rq_http_req *req;
    struct manager *m;
    char what[160];
    bool kick; /* Reconcile once applied. */
};

static void on_admin_applied(void *data, int status, uint64_t result)
{
    struct admin_op *op = data;
    if (status == 0 && !MSTORE_IS_ERR(result) && op->kick) {
        reconcile_kick(op->m->reconcile);
    }
    if (status == 0 && !MSTORE_IS_ERR(result)) {
        rq_log(RQ_INFO, "%s", op->what);
    }
    if (op->req != NULL) {
        if (status != 0) {
            manager_unavailable(op->req, "not committed: %s; retry",
                                rq_strerror(status));
        } else if (MSTORE_IS_ERR(result)) {
            int code = MSTORE_ERR_CODE(result);
            rq_http_reply_error(op->req, rq_err_http_status(code),
                                "refused: %s", rq_strerror(code));
        } else {
            rq_http_reply(op->req, 200,
                          json_pack("{s:s}", "message", op->what));
        }
    }
    free(op);
}

static void propose_and_answer(struct manager *m, struct rq_http_req *req,
                               struct mcmd *c, const char *what, bool kick)
{
    struct admin_op *op = calloc(1, sizeof *op);
    if (op == NULL) {
        rq_http_reply_error(req, 500, "out of memory"); /* UNTESTED */
        return;
    }
    op->m = m;
    op->kick = kick;
    snprintf(op->what, sizeof op->what, "%s", what);
    int rv = manager_propose(m, c, on_admin_applied, op);
    if (rv != 0) {
        free(op);
        manager_unavailable(req, "this manager cannot commit now (%s); retry",
                            rq_strerror(rv));
        return;
    }
    manager_hold(req, &op->req);
}

static void broker_state_change(struct rq_http_req *req, struct manager *m,
                                enum mbroker_state to)
{
    struct mstore_broker b;
    uint32_t id;
    char what[128];

    if (!manager_check_admin(m, req) || manager_forward(m, req)) {
        return;
    }
    if (parse_u32(rq_http_param(req, "id"), &id) != 0) {
        rq_http_reply_error(req, 400, "the broker id must be an integer");
        return;
    }
    int rv = mstore_broker(m->store, id, &b);
    if (rv == RQ_NOTFOUND) {
        rq_http_reply_error(req, 404, "no broker %u", id);
        return;
    }
    if (rv != 0) {
        reply_store_error(req, rv);
        return;
    }
    struct mcmd c = {.type = MCMD_BROKER_STATE};
    c.u.broker_state.id = id;
    c.u.broker_state.state = to;
    snprintf(what, sizeof what, "broker %u is now %s", id,
             mbroker_state_name(to));
    propose_and_answer(m, req, &c, what, true);
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

static const struct liveness_replica *reported(const struct liveness_broker *lb,
                                               uint64_t gid)
{
    for (size_t i = 0; lb != NULL && i < lb->n_replicas; i++) {
        if (lb->replicas[i].group_id == gid) {
            return &lb->replicas[i];
        }
    }
    return NULL;
}

void admin_topic_describe(struct rq_http_req *req, void *data)
{
    struct manager *m = data;
    struct mstore_partition *parts;
    struct mstore_topic t;
    size_t n;

    if (!manager_check_admin(m, req) || manager_forward(m, req)) {
        return;
    }
    const char *topic = rq_http_param(req, "topic");
    int rv = mstore_topic(m->store, topic, &t);
    if (rv == 0) {
        rv = mstore_partitions(m->store, topic, &parts, &n);
    }
    if (rv == RQ_NOTFOUND) {
        rq_http_reply_error(req, 404, "no topic '%s'", topic);
        return;
    }
    if (rv != 0) {
        reply_store_error(req, rv);
        return;
    }
    json_t *list = json_array();
    for (size_t i = 0; i < n; i++) {
        const struct mstore_partition *p = &parts[i];
        const struct route *r = routing_get(m->routing, p->group_id);
        uint64_t commit = r != NULL ? r->commit : 0;
        json_t *reps = json_array();
        for (unsigned k = 0; k < MCMD_RF; k++) {
            const struct liveness_replica *lr = reported(
                liveness_broker(m->liveness, p->replicas[k]), p->group_id);
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
    struct manager *m = data;
    struct mstore_topic t;
    char what[MCMD_NAME_MAX + 64];

    if (!manager_check_admin(m, req) || manager_forward(m, req)) {
        return;
    }
    const char *topic = rq_http_param(req, "topic");
    int rv = mstore_topic(m->store, topic, &t);
    if (rv == RQ_NOTFOUND) {
        rq_http_reply_error(req, 404, "no topic '%s'", topic);
        return;
    }
    if (rv != 0) {
        reply_store_error(req, rv);
        return;
    }
    struct mcmd c = {.type = MCMD_TOPIC_DELETE};
    snprintf(c.u.topic_delete.name, sizeof c.u.topic_delete.name, "%s", topic);
    snprintf(what, sizeof what, "Topic '%s' deleted", topic);
    propose_and_answer(m, req, &c, what, true);
}

/* ---- Leadership moves ---- */

struct transfer {
    struct rq_http_req *req;
    struct manager *m;
    uint64_t group_id;
    uint32_t to;
    uint32_t asked;
    unsigned tries;
    char body[64];
};

static void transfer_send(struct transfer *t, uint32_t broker);

static void on_transfer(void *data, const struct rq_httpc_resp *resp)
{
    struct transfer *t = data;
    struct rq_http_req *req = t->req;
    if (req == NULL || t->m->closing) {
        free(t);
        return;
    }
    json_t *o = resp->body_len > 0
                    ? json_loadb(resp->body, resp->body_len, 0, NULL)
                    : NULL;
    json_t *lid = json_object_get(o, "leader_id");
    if (resp->err == 0 && resp->status == 421 && json_is_integer(lid) &&
        json_integer_value(lid) > 0 &&
        (uint32_t)json_integer_value(lid) != t->asked && t->tries < 3) {
        uint32_t leader = (uint32_t)json_integer_value(lid);
        json_decref(o);
        if (leader == t->to) {
            rq_http_reply(req, 200,
                          json_pack("{s:s}", "message",
                                    "that broker leads the partition "
                                    "already"));
            free(t);
            return;
        }
        transfer_send(t, leader);
        return;
    }
    if (resp->err != 0) {
        manager_unavailable(req, "broker %u could not be reached: %s", t->asked,
                            resp->why);
    } else if (resp->status == 200) {
        routing_set_leader(t->m->routing, t->group_id, t->to,
                           uv_now(t->m->loop));
        rq_http_reply(req, 200,
                      json_pack("{s:s}", "message", "leadership moved"));
    } else {
        const char *msg = json_string_value(json_object_get(o, "message"));
        if (resp->retry_after != NULL) {
            rq_http_set_header(req, "Retry-After", resp->retry_after);
        }
        rq_http_reply_error(req, resp->status == 421 ? 503 : (int)resp->status,
                            "broker %u: %s", t->asked,
                            msg != NULL ? msg : "the transfer failed");
    }
    json_decref(o);
    free(t);
}

static void transfer_send(struct transfer *t, uint32_t broker)
{
    struct mstore_broker b;
    char url[512];
    t->tries++;
    t->asked = broker;
    if (mstore_broker(t->m->store, broker, &b) != 0) {
        manager_unavailable(t->req, "broker %u is unknown", broker);
        free(t);
        return;
    }
    snprintf(url, sizeof url,
             "http://%s/internal/replicas/%" PRIu64 "/transfer", b.http_addr,
             t->group_id);
    struct rq_httpc_req r = {
        .method = "POST",
        .url = url,
        .headers = manager_peer_headers(t->m),
        .body = t->body,
        .body_len = strlen(t->body),
        .timeout_ms = TRANSFER_TIMEOUT_MS,
    };
    int rv = manager_call(t->m, &r, on_transfer, t);
    if (rv != 0) {
        manager_unavailable(t->req, "cannot call broker %u: %s", broker,
                            rq_strerror(rv));
        free(t);
    }
}

void admin_partition_leader(struct rq_http_req *req, void *data)
{
    struct manager *m = data;
    struct mstore_partition *parts;
    size_t n;
    uint32_t p;
    char why[WHY_LEN];

    if (!manager_check_admin(m, req) || manager_forward(m, req)) {
        return;
    }
    const char *topic = rq_http_param(req, "topic");
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
    uint32_t to = (uint32_t)json_integer_value(bid);
    int rv = mstore_partitions(m->store, topic, &parts, &n);
    if (rv == RQ_NOTFOUND) {
        rq_http_reply_error(req, 404, "no topic '%s'", topic);
        return;
    }
    if (rv != 0) {
        reply_store_error(req, rv);
        return;
    }
    if (p >= n) {
        free(parts);
        rq_http_reply_error(req, 404, "topic '%s' has no partition %u", topic,
                            p);
        return;
    }
    struct mstore_partition part = parts[p];
    free(parts);
    if (part.replicas[0] != to && part.replicas[1] != to &&
        part.replicas[2] != to) {
        rq_http_reply_error(req, 400,
                            "broker %u holds no replica of topic '%s' "
                            "partition %u (its replicas are on %u, %u, %u)",
                            to, topic, p, part.replicas[0], part.replicas[1],
                            part.replicas[2]);
        return;
    }
    struct transfer *t = calloc(1, sizeof *t);
    if (t == NULL) {
        rq_http_reply_error(req, 500, "out of memory"); /* UNTESTED */
        return;
    }
    t->m = m;
    t->group_id = part.group_id;
    t->to = to;
    snprintf(t->body, sizeof t->body, "{\"to\":%u}", to);
    const struct route *r = routing_get(m->routing, part.group_id);
    manager_hold(req, &t->req);
    /* The leader moves it; any member names the leader with a 421. */
    transfer_send(t, r != NULL && r->leader != 0 ? r->leader : to);
}

/* ---- Brokers' internal API ---- */

static bool addr_ok(const json_t *v)
{
    return json_is_string(v) && json_string_length(v) > 2 &&
           json_string_length(v) <= MCMD_ADDR_MAX &&
           strchr(json_string_value(v), ':') != NULL;
}

struct registration {
    struct rq_http_req *req;
    struct manager *m;
    uint32_t id;
};

static void on_broker_registered(void *data, int status, uint64_t result)
{
    struct registration *op = data;
    struct manager *m = op->m;
    if (status == 0 && !MSTORE_IS_ERR(result)) {
        liveness_touch(m->liveness, op->id, uv_now(m->loop));
        reconcile_kick(m->reconcile);
        rq_log(RQ_INFO, "broker %u registered", op->id);
    }
    if (op->req != NULL) {
        if (status != 0) {
            manager_unavailable(op->req,
                                "the registration was not committed: %s; "
                                "retry",
                                rq_strerror(status));
        } else if (MSTORE_IS_ERR(result)) {
            int code = MSTORE_ERR_CODE(result);
            rq_http_reply_error(op->req, rq_err_http_status(code),
                                "the registration was refused: %s",
                                rq_strerror(code));
        } else {
            rq_http_reply(op->req, 200,
                          json_pack("{s:i,s:I}", "broker_id", (int)op->id,
                                    "leader_id", (json_int_t)m->cfg.id));
        }
    }
    free(op);
}

void admin_broker_register(struct rq_http_req *req, void *data)
{
    struct manager *m = data;
    char why[WHY_LEN];

    if (!manager_check_secret(m, req) || manager_forward(m, req)) {
        return;
    }
    json_t *body = rq_http_json(req, why, sizeof why);
    if (body == NULL) {
        rq_http_reply_error(req, 400, "%s", why);
        return;
    }
    json_t *id = json_object_get(body, "id");
    json_t *raft = json_object_get(body, "raft_addr");
    json_t *http = json_object_get(body, "http_addr");
    if (!json_is_integer(id) || json_integer_value(id) <= 0 ||
        json_integer_value(id) > UINT32_MAX || !addr_ok(raft) ||
        !addr_ok(http)) {
        rq_http_reply_error(req, 400,
                            "need 'id' (a positive integer), 'raft_addr' and "
                            "'http_addr' (HOST:PORT)");
        return;
    }
    struct mcmd c = {.type = MCMD_BROKER_REGISTER};
    c.u.broker_register.id = (uint32_t)json_integer_value(id);
    snprintf(c.u.broker_register.raft_addr,
             sizeof c.u.broker_register.raft_addr, "%s",
             json_string_value(raft));
    snprintf(c.u.broker_register.http_addr,
             sizeof c.u.broker_register.http_addr, "%s",
             json_string_value(http));
    struct registration *op = calloc(1, sizeof *op);
    if (op == NULL) {
        rq_http_reply_error(req, 500, "out of memory"); /* UNTESTED */
        return;
    }
    op->m = m;
    op->id = c.u.broker_register.id;
    int rv = manager_propose(m, &c, on_broker_registered, op);
    if (rv != 0) {
        free(op);
        manager_unavailable(req, "this manager cannot commit now (%s); retry",
                            rq_strerror(rv));
        return;
    }
    manager_hold(req, &op->req);
}

void admin_broker_heartbeat(struct rq_http_req *req, void *data)
{
    struct manager *m = data;
    struct mstore_broker b;
    uint32_t id;
    char why[WHY_LEN];

    if (!manager_check_secret(m, req) || manager_forward(m, req)) {
        return;
    }
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
    int rv = mstore_broker(m->store, id, &b);
    if (rv == RQ_NOTFOUND || (rv == 0 && b.state == MBROKER_REMOVED)) {
        rq_http_reply_error(req, 404,
                            "broker %u is not registered; register first", id);
        return;
    }
    if (rv != 0) {
        reply_store_error(req, rv);
        return;
    }
    rv = liveness_heartbeat(m->liveness, id, json_object_get(body, "replicas"),
                            uv_now(m->loop), why, sizeof why);
    if (rv != 0) {
        rq_http_reply_error(req, rv == RQ_NOMEM ? 500 : 400, "%s", why);
        return;
    }
    rq_http_reply(req, 200,
                  json_pack("{s:I}", "leader_id", (json_int_t)m->cfg.id));
}

/*
 * The manager: one member of the metadata Raft group, serving the queue API
 * (API.md sections 1-3) and the internal API brokers use
 * (manager/README.md). This file holds main, the configuration, start-up
 * and shutdown, the state machine's callbacks and the wiring of the other
 * modules around the core (mcore.h), which does the proposing, reading and
 * forwarding.
 *
 * One libuv loop runs everything. rq_mux listens on the Raft address and
 * carries the metadata group; rq_http serves the HTTP address; rq_httpc
 * calls brokers and the leader manager. The state machine is the SQLite
 * store (mstore.h): every committed command is applied to it, inside a
 * transaction that a uv_check handle commits once per loop turn, so a burst
 * of entries costs one SQLite commit.
 *
 * - Addresses: the leader publishes its own HTTP address in the state
 *   (MCMD_MANAGER_ADDR) once ready, so followers can forward to it;
 *   followers send theirs to the leader, which commits them.
 * - Leader duties run from a 100 ms tick: broker liveness (liveness.c)
 *   every 500 ms, repair of replica sets (repair.c) every second,
 *   reconciliation of replicas on brokers (reconcile.c) every second, or
 *   at once when kicked (in the loop turn that kicked it, on_flush).
 *
 * Shutdown (SIGTERM, SIGINT, SIGHUP): the HTTP server closes first (every
 * request still waiting is answered 503 through its abort callback), then
 * the HTTP client (its pending calls end with RQ_CANCELED), then the Raft
 * node (pending proposals end with RQ_SHUTDOWN), the transport and the mux.
 * The store is flushed and closed once the loop has stopped, and the
 * process exits 0. A start-up failure (port in use, data directory locked,
 * bad flags) exits non-zero with a message on standard error.
 */
#include <errno.h>
#include <inttypes.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <unistd.h>

#include <nettle/sha2.h>
#include <raft.h>
#include <raft/uv.h>
#include <uv.h>

#include "admin.h"
#include "cgroup.h"
#include "liveness.h"
#include "mcmd.h"
#include "mconfig.h"
#include "mcore.h"
#include "mjoin.h"
#include "mmember.h"
#include "mmetrics.h"
#include "mtraffic.h"
#include "mstore.h"
#include "qapi.h"
#include "qapi_produce.h"
#include "reconcile.h"
#include "repair.h"
#include "routes.h"
#include "routing.h"
#include "rq_config.h"
#include "rq_err.h"
#include "rq_http.h"
#include "rq_httpc.h"
#include "rq_httpsig.h"
#include "rq_keys.h"
#include "rq_log.h"
#include "rq_main.h"
#include "rq_metrics.h"
#include "rq_node.h"
#include "rq_mux.h"
#include "rq_rpc.h"
#include "rq_tls.h"
#include "rq_uid.h"
#include "ui.h"

#define LOG_TAG "manager"

#define TICK_MS 100
#define LIVENESS_TICKS 5 /* Every 500 ms. */
#define ROUTES_TICKS 10  /* Followers copy the leader's routes every second. */
#define RECONCILE_TICKS 10 /* Every second. */
#define KICK_GAP_MS 20     /* Between kicked rounds run at once. */
#define ADDR_RETRY_MS 1000
#define PEER_TIMEOUT_MS 3000
/* Election timeouts without a leader before a manager asks whether it was
 * removed while away. */
#define ORPHAN_ELECTIONS 5
#define PATH_LEN 4096
#define URL_LEN 8192
#define MAX_BODY (32u << 20) /* 10,000 records of escaped JSON text. */
#define MANAGER_GROUP 1      /* The metadata Raft group's id on the mux. */

struct manager {
    struct manager_config cfg;
    struct rq_peer peers[RQ_PEERS_MAX];
    size_t n_peers;
    const char *self_raft; /* This manager's entry in --peers. */
    uv_loop_t *loop;
    struct rq_mux *mux;
    struct raft_uv_transport transport;
    bool transport_live;
    struct rq_node *node;
    struct mstore *store;
    struct rq_http *http;
    struct rq_httpc *httpc;
    /* The keys derived from --cluster-secret (the secret is not kept for
     * HTTP), the verifier of signed requests, and who signs our calls. */
    struct rq_keys keys;
    struct rq_httpsig *httpsig;
    char sender[32]; /* "manager-ID" */
    struct rq_httpc_signer to_brokers;
    struct rq_httpc_signer to_managers;
    struct rq_tls *tls; /* NULL without --tls-*. */
    struct routing *routing;
    struct mcore *core;
    struct liveness *liveness;
    struct cgroup *cgroups;
    struct reconcile *reconcile;
    struct repair *repair;
    struct mmember *mmember;
    struct mtraffic *traffic;
    /* The managers' RPCs over the Raft port (MJOIN_RPC_INFO), and the
     * start of a manager with an empty Raft directory (NULL otherwise). */
    struct rq_rpc *rpc;
    struct mjoin *join;
    bool node_started;
    uint64_t leaderless_ms; /* No leader known since; 0: one is. */
    uint64_t origin; /* Random per process: names our produce attempts. */

    uv_check_t flush; /* Commits the store's open transaction each turn. */
    uv_timer_t tick;  /* Leader duties, read deadlines, address upkeep. */
    uint64_t ticks;
    uint64_t kick_round_ms; /* When on_flush last ran a kicked round. */
    bool closing;

    struct rq_node_info info; /* As last reported by the node. */
    bool leading;             /* The ready leader. */

    bool uid_in_flight; /* The leader proposing the cluster uid. */
    /* The other managers' schema versions, asked before proposing the
     * uid (peers_current). */
    unsigned versions_pending, versions_asked, versions_known;
    uint64_t versions_next_ms;
    bool routes_in_flight; /* A follower copying the leader's routes. */
    /* The leader's routes as of the last copy: its manager id, its
     * epoch and version (internal_routes). */
    uint64_t routes_from;
    char routes_epoch[17];
    uint64_t routes_version;
    bool addr_in_flight; /* Publishing our addresses. */
    uint64_t addr_next_ms;

    struct rq_metrics *metrics; /* GET /metrics renders it. */
    struct mmetrics *mmetrics;
};

/* The one manager of the process. Handlers get the core as their data;
 * the routes this file serves itself reach the manager here. */
static struct manager manager;

static const struct rq_opt options[] = {
    {"id", "RAFTQ_ID", RQ_OPT_U64, NULL, true,
     offsetof(struct manager_config, id), "this manager's id, one in --peers"},
    {"raft-addr", "RAFTQ_RAFT_ADDR", RQ_OPT_STR, "", false,
     offsetof(struct manager_config, raft_addr),
     "HOST:PORT to listen on for Raft (default: this manager's --peers "
     "entry); also where the others reach a manager not in --peers"},
    {"raft-bind", "RAFTQ_RAFT_BIND", RQ_OPT_STR, "", false,
     offsetof(struct manager_config, raft_bind),
     "HOST:PORT to listen on for Raft when it differs from the address the "
     "others reach this manager at (e.g. 0.0.0.0:7000 on a pod)"},
    {"http-addr", "RAFTQ_HTTP_ADDR", RQ_OPT_STR, NULL, true,
     offsetof(struct manager_config, http_addr),
     "HOST:PORT for the HTTP API (clients, brokers and other managers)"},
    {"http-bind", "RAFTQ_HTTP_BIND", RQ_OPT_STR, "", false,
     offsetof(struct manager_config, http_bind),
     "HOST:PORT to listen on for HTTP when it differs from --http-addr, "
     "which is where the others reach this manager (e.g. 0.0.0.0:8080 "
     "behind a pod's DNS name, so kubectl port-forward reaches it too)"},
    {"peers", "RAFTQ_PEERS", RQ_OPT_STR, NULL, true,
     offsetof(struct manager_config, peers),
     "every manager's Raft address as ID=HOST:PORT,... (this one included)"},
    {"data", "RAFTQ_DATA", RQ_OPT_STR, NULL, true,
     offsetof(struct manager_config, data),
     "data directory (Raft log, snapshots, meta.db)"},
    {"cluster-secret", "RAFTQ_CLUSTER_SECRET", RQ_OPT_SECRET, NULL, false,
     offsetof(struct manager_config, secret),
     "the cluster's shared secret, 32 bytes or more of random data, the same "
     "on every manager and broker (required)"},
    {"cluster-id", "RAFTQ_CLUSTER_ID", RQ_OPT_U64, "1", false,
     offsetof(struct manager_config, cluster_id),
     "cluster id; peers must match"},
    {"admin-token", "RAFTQ_ADMIN_TOKEN", RQ_OPT_SECRET, "", false,
     offsetof(struct manager_config, admin_token),
     "bearer token the admin API requires (needed unless --admin-open)"},
    {"admin-open", "RAFTQ_ADMIN_OPEN", RQ_OPT_BOOL, "false", false,
     offsetof(struct manager_config, admin_open),
     "development only (raftq dev): the admin API needs no token"},
    {"auth", "RAFTQ_AUTH", RQ_OPT_STR, "none", false,
     offsetof(struct manager_config, auth),
     "public API access: none (open) or tokens (Authorization: Bearer, "
     "with grants)"},
    {"propose-batches", "RAFTQ_PROPOSE_BATCHES", RQ_OPT_BOOL, "true", false,
     offsetof(struct manager_config, propose_batches),
     "the leader proposes the metadata writes of one loop turn as one Raft "
     "entry; turn off while a manager of a release without batches is in "
     "the cluster"},
    {"election-timeout-ms", "RAFTQ_ELECTION_TIMEOUT_MS", RQ_OPT_U64, "1000",
     false, offsetof(struct manager_config, election_ms),
     "Raft election timeout"},
    {"heartbeat-ms", "RAFTQ_HEARTBEAT_MS", RQ_OPT_U64, "100", false,
     offsetof(struct manager_config, heartbeat_ms), "Raft heartbeat interval"},
    {"broker-suspect-ms", "RAFTQ_BROKER_SUSPECT_MS", RQ_OPT_U64, "3000", false,
     offsetof(struct manager_config, broker_suspect_ms),
     "a broker silent this long is SUSPECT"},
    {"broker-dead-ms", "RAFTQ_BROKER_DEAD_MS", RQ_OPT_U64, "60000", false,
     offsetof(struct manager_config, broker_dead_ms),
     "a broker silent this long is DEAD"},
    {"manager-gone-ms", "RAFTQ_MANAGER_GONE_MS", RQ_OPT_U64, "60000", false,
     offsetof(struct manager_config, manager_gone_ms),
     "a manager not in --peers that answers the leader for this long is "
     "removed from the managers' group (0: never); it joins again when it "
     "returns"},
    {"max-message-bytes", "RAFTQ_MAX_MESSAGE_BYTES", RQ_OPT_U64, "1048576",
     false, offsetof(struct manager_config, max_message_bytes),
     "largest message accepted (bytes of UTF-8)"},
    {"default-partitions", "RAFTQ_DEFAULT_PARTITIONS", RQ_OPT_U64, "1", false,
     offsetof(struct manager_config, default_partitions),
     "partitions of a topic created without number_of_partitions, or by "
     "POST /producer/register"},
    {"consume-deadline-ms", "RAFTQ_CONSUME_DEADLINE_MS", RQ_OPT_U64, "5000",
     false, offsetof(struct manager_config, consume_deadline_ms),
     "a consume forwarded to the leader whose offset advance is not "
     "proposed within this long of its arrival at a follower is refused "
     "(503, offset_advanced \"no\"); keep it under the clients' timeouts"},
    {"traffic-sample-ms", "RAFTQ_TRAFFIC_SAMPLE_MS", RQ_OPT_U64, "5000", false,
     offsetof(struct manager_config, traffic_sample_ms),
     "the leader samples every topic's traffic (records and bytes "
     "produced, for the status page) this often; it keeps 120 samples"},
    {"snapshot-threshold", "RAFTQ_SNAPSHOT_THRESHOLD", RQ_OPT_U64, "1024",
     false, offsetof(struct manager_config, snapshot_threshold),
     "Raft entries between snapshots of the metadata"},
    RQ_HTTP_OPTIONS(struct manager_config),
    RQ_LOG_OPTIONS(struct manager_config),
    RQ_HTTPSIG_OPTIONS(struct manager_config),
    RQ_TLS_OPTIONS(struct manager_config),
};

/* ---- Internal endpoints of the metadata group ---- */

struct addr_op {
    struct rq_http_req *req;
    struct manager *m;
    uint32_t id;
};

static void on_addr_applied(void *data, int status, uint64_t result)
{
    struct addr_op *op = data;
    struct manager *m = op->m;
    if (op->req == NULL) {
        /* Our own publication. */
        m->addr_in_flight = false;
        if (status == 0 && !MSTORE_IS_ERR(result)) {
            rq_log(RQ_INFO, "published manager %u's addresses", op->id);
        }
    } else if (status != 0) {
        mcore_unavailable(op->req, "the addresses were not committed: %s",
                          rq_strerror(status));
    } else if (MSTORE_IS_ERR(result)) {
        rq_http_reply_error(op->req,
                            rq_err_http_status(MSTORE_ERR_CODE(result)),
                            "the addresses were refused: %s",
                            rq_strerror(MSTORE_ERR_CODE(result)));
    } else {
        rq_http_reply(op->req, 200, NULL);
    }
    free(op);
}

static const struct rq_peer *peer_of(const struct manager *m, uint64_t id)
{
    for (size_t i = 0; i < m->n_peers; i++) {
        if (m->peers[i].id == id) {
            return &m->peers[i];
        }
    }
    return NULL;
}

/* Whether @id is in the Raft configuration (a voter or a spare). */
static bool member(const struct manager *m, uint64_t id)
{
    uint64_t index;
    bool pending;
    const struct raft_configuration *c =
        rq_node_configuration(m->node, &index, &pending);
    for (unsigned i = 0; i < c->n; i++) {
        if (c->servers[i].id == id) {
            return true;
        }
    }
    return false;
}

/* POST /internal/managers/{id}: a follower publishes its addresses through
 * the leader. */
static void internal_manager_addr(struct rq_http_req *req, void *data)
{
    struct manager *m = &manager;
    (void)data; /* The core. */
    char why[MCORE_WHY];
    struct mcmd c = {.type = MCMD_MANAGER_ADDR};

    /* Signed (checked before this handler), then validated, then
     * forwarded or proposed. */
    const char *ids = rq_http_param(req, "id");
    char *end;
    unsigned long long id = strtoull(ids, &end, 10);
    if (*ids == '\0' || *end != '\0' || !member(m, id)) {
        rq_http_reply_error(req, 404, "no manager %s in this cluster", ids);
        return;
    }
    json_t *body = rq_http_json(req, why, sizeof why);
    json_t *raft = json_object_get(body, "raft_addr");
    json_t *http = json_object_get(body, "http_addr");
    char host[MCMD_ADDR_MAX + 1];
    uint16_t port;
    if (body == NULL || !json_is_string(raft) || !json_is_string(http) ||
        json_string_length(raft) > MCMD_ADDR_MAX ||
        json_string_length(http) > MCMD_ADDR_MAX ||
        rq_addr_split(json_string_value(raft), host, sizeof host, &port, why,
                      sizeof why) != 0 ||
        rq_addr_split(json_string_value(http), host, sizeof host, &port, why,
                      sizeof why) != 0) {
        rq_http_reply_error(req, 400,
                            "need 'raft_addr' and 'http_addr' (HOST:PORT)");
        return;
    }
    if (mcore_forward(m->core, req)) {
        return;
    }
    c.u.manager.id = (uint32_t)id;
    snprintf(c.u.manager.raft_addr, sizeof c.u.manager.raft_addr, "%s",
             json_string_value(raft));
    snprintf(c.u.manager.http_addr, sizeof c.u.manager.http_addr, "%s",
             json_string_value(http));
    struct addr_op *op = rq_http_calloc(req, 1, sizeof *op);
    if (op == NULL) {
        return; /* UNTESTED: ENOMEM only. */
    }
    op->m = m;
    op->id = (uint32_t)id;
    int rv = mcore_propose(m->core, &c, on_addr_applied, op);
    if (rv != 0) {
        free(op);
        mcore_unavailable(req, "proposing the addresses: %s", rq_strerror(rv));
        return;
    }
    mcore_hold(req, &op->req);
}

/* ---- Address upkeep ---- */

static bool own_addr_published(struct manager *m)
{
    struct mstore_manager mm;
    return mstore_manager(m->store, (uint32_t)m->cfg.id, &mm) == 0 &&
           strcmp(mm.raft_addr, m->self_raft) == 0 &&
           strcmp(mm.http_addr, m->cfg.http_addr) == 0;
}

static void on_addr_sent(void *data, const struct rq_httpc_resp *resp)
{
    struct manager *m = data;
    m->addr_in_flight = false;
    if (resp->err == 0 && resp->status != 200) {
        rq_log(RQ_DEBUG, "publishing our addresses: the leader answered %ld",
               resp->status);
    }
}

static void addr_upkeep(struct manager *m, uint64_t now)
{
    char addr[MCMD_ADDR_MAX + 1];
    char url[URL_LEN];
    char body[2 * MCMD_ADDR_MAX + 64];

    if (m->addr_in_flight || now < m->addr_next_ms || own_addr_published(m)) {
        return;
    }
    m->addr_next_ms = now + ADDR_RETRY_MS;
    if (m->leading) {
        struct mcmd c = {.type = MCMD_MANAGER_ADDR};
        c.u.manager.id = (uint32_t)m->cfg.id;
        snprintf(c.u.manager.raft_addr, sizeof c.u.manager.raft_addr, "%s",
                 m->self_raft);
        snprintf(c.u.manager.http_addr, sizeof c.u.manager.http_addr, "%s",
                 m->cfg.http_addr);
        struct addr_op *op = calloc(1, sizeof *op);
        if (op == NULL) {
            return; /* UNTESTED: ENOMEM only; the next tick retries. */
        }
        op->m = m;
        op->id = (uint32_t)m->cfg.id;
        if (mcore_propose(m->core, &c, on_addr_applied, op) != 0) {
            free(op);
            return;
        }
        m->addr_in_flight = true;
        return;
    }
    if (m->info.leader_id == 0 || m->info.leader_id == m->cfg.id ||
        mcore_leader_http(m->core, addr, sizeof addr) == NULL) {
        return;
    }
    snprintf(url, sizeof url, "http://%s/internal/managers/%" PRIu64, addr,
             m->cfg.id);
    json_t *o = json_pack("{s:s,s:s}", "raft_addr", m->self_raft, "http_addr",
                          m->cfg.http_addr);
    size_t len = o != NULL ? json_dumpb(o, body, sizeof body, JSON_COMPACT) : 0;
    json_decref(o);
    if (len == 0 || len > sizeof body) {
        return; /* UNTESTED: ENOMEM only. */
    }
    struct rq_httpc_req r = {
        .method = "POST",
        .url = url,
        .body = body,
        .body_len = len,
        .timeout_ms = PEER_TIMEOUT_MS,
    };
    if (mcore_call(m->core, MCORE_MANAGER, MCORE_JSON, &r, on_addr_sent, m) ==
        0) {
        m->addr_in_flight = true;
    }
}

/* ---- Routes ---- */

/*
 * GET /internal/routes[?epoch=E&since=V]: the leader's routing cache,
 * which brokers' heartbeats feed, for followers to copy: every route, or
 * with the epoch and version of the copy before (this process's, named
 * by its random origin), the routes changed since.
 */
static void internal_routes(struct rq_http_req *req, void *data)
{
    struct manager *m = &manager;
    char epoch[17];
    (void)data; /* The core. */
    if (!m->leading) {
        mcore_unavailable(req, "manager %" PRIu64 " is not the leader",
                          m->cfg.id);
        return;
    }
    snprintf(epoch, sizeof epoch, "%016" PRIx64, m->origin);
    const char *their_epoch = rq_http_arg(req, "epoch");
    const char *since_arg = rq_http_arg(req, "since");
    uint64_t since = 0;
    uint64_t version = routing_version(m->routing);
    if (their_epoch != NULL && strcmp(their_epoch, epoch) == 0 &&
        since_arg != NULL) {
        since = strtoull(since_arg, NULL, 10);
        since = since <= version ? since : 0;
    }
    json_t *list = json_array();
    for (size_t i = 0; i < routing_count(m->routing); i++) {
        const struct route *r = routing_at(m->routing, i);
        if (r->version <= since) {
            continue;
        }
        json_array_append_new(
            list, json_pack("{s:I,s:i,s:I,s:I,s:I}", "group_id",
                            (json_int_t)r->group_id, "leader", (int)r->leader,
                            "term", (json_int_t)r->term, "high_watermark",
                            (json_int_t)r->high_watermark, "commit",
                            (json_int_t)r->commit));
    }
    rq_http_reply(
        req, 200,
        json_pack("{s:o,s:s,s:I,s:b}", "routes", list, "epoch", epoch,
                  "version", (json_int_t)version, "changes", since != 0));
}

/* GET /internal/state-digest: this manager's store as it has applied it,
 * answered locally (never forwarded), for comparing managers: the applied
 * index, the SHA-256 of the store's content in canonical form (equal on
 * managers that applied the same commands) and of its serialized image
 * (the snapshot bytes). */
static void internal_state_digest(struct rq_http_req *req, void *data)
{
    struct manager *m = &manager;
    (void)data; /* The core. */
    uint8_t digest[MSTORE_DIGEST_LEN];
    char content[2 * MSTORE_DIGEST_LEN + 1];
    char image[2 * SHA256_DIGEST_SIZE + 1];
    uint8_t *img = NULL;
    size_t len = 0;
    struct sha256_ctx h;

    int rv = mstore_digest(m->store, digest);
    if (rv == 0) {
        rv = mstore_snapshot(m->store, &img, &len);
    }
    if (rv != 0) {
        rq_http_reply_error(req, 503, "the store cannot be read: %s",
                            rq_strerror(rv));
        return;
    }
    rq_keys_hex(digest, sizeof digest, content);
    sha256_init(&h);
    sha256_update(&h, len, img);
    sha256_digest(&h, sizeof digest, digest);
    free(img);
    rq_keys_hex(digest, SHA256_DIGEST_SIZE, image);
    rq_http_reply(req, 200,
                  json_pack("{s:I,s:s,s:s}", "applied",
                            (json_int_t)mstore_applied_index(m->store),
                            "sha256", content, "image_sha256", image));
}

static void on_routes(void *data, const struct rq_httpc_resp *resp)
{
    struct manager *m = data;
    m->routes_in_flight = false;
    if (m->closing || resp->err != 0 || resp->status != 200) {
        return;
    }
    json_t *o = json_loadb(resp->body, resp->body_len, 0, NULL);
    json_t *list = json_object_get(o, "routes");
    const char *epoch = json_string_value(json_object_get(o, "epoch"));
    json_t *version = json_object_get(o, "version");
    uint64_t now = uv_now(m->loop);
    /* The next copy asks only for what changes after this one. */
    if (epoch != NULL && strlen(epoch) < sizeof m->routes_epoch &&
        json_is_integer(version)) {
        snprintf(m->routes_epoch, sizeof m->routes_epoch, "%s", epoch);
        m->routes_version = (uint64_t)json_integer_value(version);
        m->routes_from = m->info.leader_id;
    }
    for (size_t i = 0; i < json_array_size(list); i++) {
        json_t *x = json_array_get(list, i);
        struct route r = {
            .group_id =
                (uint64_t)json_integer_value(json_object_get(x, "group_id")),
            .leader =
                (uint32_t)json_integer_value(json_object_get(x, "leader")),
            .term = (uint64_t)json_integer_value(json_object_get(x, "term")),
            .high_watermark = (uint64_t)json_integer_value(
                json_object_get(x, "high_watermark")),
            .commit =
                (uint64_t)json_integer_value(json_object_get(x, "commit")),
        };
        if (r.group_id != 0) {
            routing_merge(m->routing, &r, now);
        }
    }
    json_decref(o);
}

static void routes_copy(struct manager *m)
{
    char addr[MCMD_ADDR_MAX + 1];
    char url[URL_LEN];
    if (m->leading || m->routes_in_flight || m->info.leader_id == m->cfg.id ||
        mcore_leader_http(m->core, addr, sizeof addr) == NULL) {
        return;
    }
    if (m->routes_from == m->info.leader_id && m->routes_epoch[0] != '\0') {
        snprintf(url, sizeof url,
                 "http://%s/internal/routes?epoch=%s&since=%" PRIu64, addr,
                 m->routes_epoch, m->routes_version);
    } else {
        snprintf(url, sizeof url, "http://%s/internal/routes", addr);
    }
    struct rq_httpc_req r = {
        .method = "GET",
        .url = url,
        .timeout_ms = PEER_TIMEOUT_MS,
    };
    if (mcore_call(m->core, MCORE_MANAGER, MCORE_JSON, &r, on_routes, m) == 0) {
        m->routes_in_flight = true;
    }
}

/* ---- Loop hooks ---- */

/* A store that cannot commit stays broken until it is reopened (mstore.h):
 * exit, and the restart replays from the Raft log what the file lacks. */
static void store_failed(const char *what, int rv)
{
    rq_log(RQ_ERROR,
           "fatal: %s: %s; exiting so that a restart replays the "
           "Raft log",
           what, rq_strerror(rv));
    fprintf(stderr, "manager: %s: %s\n", what, rq_strerror(rv));
    _exit(1);
}

static void on_flush(uv_check_t *c)
{
    struct manager *m = c->data;
    int rv = mstore_flush(m->store);
    if (rv != 0) {
        store_failed("committing the store", rv);
    }
    mcore_applied(m->core);
    /* A round asked for (a topic created or deleted) runs in the turn that
     * asked rather than at the next tick, so a new topic's replicas exist
     * sooner; a round reads every partition, so at most one such round
     * every KICK_GAP_MS. */
    if (m->leading && !m->closing && reconcile_kicked(m->reconcile)) {
        uint64_t now = uv_now(m->loop);
        if (now >= m->kick_round_ms + KICK_GAP_MS) {
            m->kick_round_ms = now;
            reconcile_tick(m->reconcile, now, false);
        }
    }
}

/* ---- The cluster uid ---- */

/* GET /internal/version: the schema version this manager runs, so that a
 * leader proposes a command type only once every manager knows it. */
static void internal_version(struct rq_http_req *req, void *data)
{
    (void)data;
    rq_http_reply(req, 200,
                  json_pack("{s:i}", "schema_version", MSTORE_SCHEMA_VERSION));
}

static void on_uid_applied(void *data, int status, uint64_t result)
{
    struct manager *m = data;
    m->uid_in_flight = false;
    if (status == 0 && !MSTORE_IS_ERR(result)) {
        rq_log(RQ_INFO, "cluster uid %016" PRIx64,
               mstore_cluster_uid(m->store));
    }
}

/* The leader of a cluster without a uid draws one (DESIGN.md section 17):
 * a new cluster's first leader, or the first after an upgrade from a
 * release without uids, once every manager runs a release with uids. The
 * first committed stays. */
static void uid_upkeep(struct manager *m)
{
    if (m->uid_in_flight || mstore_cluster_uid(m->store) != 0 ||
        !mmember_all_current(m->mmember)) {
        return;
    }
    struct mcmd c = {.type = MCMD_CLUSTER_UID};
    while (c.u.cluster_uid.uid == 0) {
        if (getrandom(&c.u.cluster_uid.uid, sizeof c.u.cluster_uid.uid, 0) !=
            sizeof c.u.cluster_uid.uid) {
            return; /* UNTESTED: getrandom fails only without entropy. */
        }
    }
    if (mcore_propose(m->core, &c, on_uid_applied, m) == 0) {
        m->uid_in_flight = true;
    }
}

/* A running node that has heard no leader for ORPHAN_ELECTIONS election
 * timeouts asks whether it was removed while away (mjoin_rejoin), and
 * again as long as that lasts. */
static void orphan_check(struct manager *m, uint64_t now)
{
    if (!m->node_started || m->info.leader_id != 0) {
        m->leaderless_ms = 0;
        return;
    }
    if (m->leaderless_ms == 0) {
        m->leaderless_ms = now;
    } else if (now - m->leaderless_ms >=
               ORPHAN_ELECTIONS * m->cfg.election_ms) {
        m->leaderless_ms = now;
        mjoin_rejoin(m->join);
    }
}

static void on_tick(uv_timer_t *t)
{
    struct manager *m = t->data;
    uint64_t now = uv_now(m->loop);
    m->ticks++;
    mcore_tick(m->core, now);
    addr_upkeep(m, now);
    orphan_check(m, now);
    if (!m->leading) {
        if (m->ticks % ROUTES_TICKS == 0) {
            routes_copy(m);
        }
        return;
    }
    uid_upkeep(m);
    mmember_tick(m->mmember, now);
    mtraffic_tick(m->traffic, now);
    if (m->ticks % LIVENESS_TICKS == 0) {
        liveness_tick(m->liveness, now);
        cgroup_tick(m->cgroups, now);
    }
    if (m->ticks % RECONCILE_TICKS == 0) {
        repair_tick(m->repair, now);
    }
    reconcile_tick(m->reconcile, now, m->ticks % RECONCILE_TICKS == 0);
}

static void on_change(void *data, const struct rq_node_info *info)
{
    struct manager *m = data;
    bool was = m->leading;
    rq_node_exit_if_stopped(info, "manager");
    m->info = *info;
    m->leading = info->ready;
    mcore_node_changed(m->core, info);
    if (m->leading && !was) {
        uint64_t now = uv_now(m->loop);
        rq_log(RQ_INFO, "leading the managers in term %" PRIu64, info->term);
        liveness_lead(m->liveness, now);
        cgroup_lead(m->cgroups, now);
        mmember_lead(m->mmember, now);
        mtraffic_lead(m->traffic, now);
        reconcile_lead(m->reconcile);
        m->addr_next_ms = 0;
        addr_upkeep(m, now);
    } else if (!m->leading && was) {
        rq_log(RQ_INFO, "no longer leading the managers (term %" PRIu64 ")",
               info->term);
        liveness_stop(m->liveness);
        cgroup_stop(m->cgroups);
        repair_stop(m->repair);
        mtraffic_stop(m->traffic);
    }
    if (!m->leading) {
        m->addr_next_ms = 0; /* A new leader: publish to it soon. */
    }
}

/* ---- State machine ---- */

/*
 * The store applied entries that its group then replaced (mstore.h): it is
 * moved aside, with its WAL, and the manager exits; the restart starts an
 * empty store that the group's snapshot and log rebuild.
 */
static void store_diverged(struct manager *m, uint64_t index)
{
    static const char *const suffixes[] = {"", "-wal", "-shm"};
    char from[PATH_MAX];
    char to[PATH_MAX];

    for (size_t i = 0; i < sizeof suffixes / sizeof suffixes[0]; i++) {
        snprintf(from, sizeof from, "%s/meta.db%s", m->cfg.data, suffixes[i]);
        snprintf(to, sizeof to, "%s/meta.db.replaced-%" PRIu64 "%s",
                 m->cfg.data, index, suffixes[i]);
        if (rename(from, to) != 0 && errno != ENOENT) {
            rq_log(RQ_ERROR, "rename %s: %s", from, strerror(errno));
        }
    }
    rq_log(RQ_ERROR,
           "fatal: the store holds entries its group replaced (at index "
           "%" PRIu64 "); moved aside as meta.db.replaced-%" PRIu64
           ", exiting so that a restart rebuilds it from the Raft log",
           index, index);
    fprintf(stderr, "manager: the store holds entries its group replaced\n");
    _exit(1);
}

static int fsm_apply(void *data, uint64_t index, const uint8_t *payload,
                     size_t len, uint64_t *result)
{
    struct manager *m = data;
    int rv = mstore_apply(m->store, index, payload, len, result);
    if (rv == 0) {
        uint64_t nonce;
        const uint64_t *results;
        size_t n = mstore_batch_results(m->store, &nonce, &results);
        if (n > 0) {
            mcore_batch_applied(m->core, nonce, results, n);
        }
    }
    if (rv == RQ_IO) {
        store_failed("applying to the store", rv);
    } else if (rv == MSTORE_DIVERGED) {
        store_diverged(m, index);
    }
    return rv;
}

static int fsm_snapshot(void *data, struct raft_buffer *out)
{
    struct manager *m = data;
    uint8_t *buf;
    size_t len;
    int rv = mstore_flush(m->store);
    if (rv == 0) {
        rv = mstore_snapshot(m->store, &buf, &len);
    }
    if (rv != 0) {
        rq_log(RQ_ERROR, "snapshot of the store: %s", rq_strerror(rv));
        return rv;
    }
    out->base = raft_malloc(len > 0 ? len : 1);
    if (out->base == NULL) {
        free(buf); /* UNTESTED: ENOMEM only. */
        return RQ_NOMEM;
    }
    memcpy(out->base, buf, len);
    out->len = len;
    free(buf);
    return 0;
}

static int fsm_restore(void *data, const uint8_t *buf, size_t len)
{
    struct manager *m = data;
    char why[MCORE_WHY];
    int rv = mstore_restore(m->store, buf, len, why, sizeof why);
    if (rv != 0) {
        rq_log(RQ_ERROR, "snapshot of %zu bytes refused: %s", len, why);
    } else {
        rq_log(RQ_INFO, "store restored from a snapshot of %zu bytes", len);
    }
    return rv;
}

static const struct rq_fsm_ops fsm_ops = {
    .apply = fsm_apply,
    .snapshot = fsm_snapshot,
    .restore = fsm_restore,
};

/* ---- Routes ---- */

static const struct rq_http_route routes[] = {
    MANAGER_SERVICE_ROUTES,
    MANAGER_PARSING_ROUTES,
    /* The managers' own: only managers call them (tests and tools that
     * compare managers' states sign as one). */
    {"GET", "/internal/read-index", mcore_read_index, RQ_HTTPSIG_M2M},
    {"GET", "/internal/routes", internal_routes, RQ_HTTPSIG_M2M},
    {"GET", "/internal/state-digest", internal_state_digest, RQ_HTTPSIG_M2M},
    {"GET", "/internal/version", internal_version, RQ_HTTPSIG_M2M},
    {"GET", "/internal/produced", mtraffic_counts, RQ_HTTPSIG_M2M},
    {"POST", "/internal/managers/{id}", internal_manager_addr, RQ_HTTPSIG_M2M},
    {"POST", "/internal/managers/{id}/join", mmember_join, RQ_HTTPSIG_M2M},
};

/* ---- Shutdown ---- */

static void on_mux_closed(void *data)
{
    (void)data;
}

static void on_rpc_closed(void *data)
{
    struct manager *m = data;
    m->rpc = NULL;
    rq_mux_close(m->mux, on_mux_closed, m);
}

static void on_node_closed(void *data)
{
    struct manager *m = data;
    m->node = NULL;
    if (m->transport_live) {
        rq_mux_transport_close(&m->transport);
        m->transport_live = false;
    }
    rq_rpc_close(m->rpc, on_rpc_closed, m);
    uv_close((uv_handle_t *)&m->flush, NULL);
    mcore_closing_node(m->core);
}

static void on_httpc_closed(void *data)
{
    struct manager *m = data;
    m->httpc = NULL;
    mcore_closing_httpc(m->core);
    rq_node_close(m->node, on_node_closed, m);
}

static void on_http_closed(void *data)
{
    struct manager *m = data;
    m->http = NULL;
    mcore_closing_http(m->core);
    rq_httpc_close(m->httpc, on_httpc_closed, m);
}

static void shutdown_begin(struct manager *m)
{
    if (m->closing) {
        return;
    }
    m->closing = true;
    mcore_closing_begin(m->core);
    rq_log(RQ_INFO, "shutting down");
    uv_close((uv_handle_t *)&m->tick, NULL);
    mjoin_stop(m->join);
    liveness_stop(m->liveness);
    repair_stop(m->repair);
    rq_http_close(m->http, on_http_closed, m);
}

/* rq_main's: a signal asks for an orderly shutdown. */
static void stop(void *self)
{
    shutdown_begin(self);
}

/* ---- Start ---- */

static const struct rq_config_spec config_spec = {
    "manager",
    "manager --id N --http-addr HOST:PORT --peers "
    "1=HOST:PORT,2=HOST:PORT,3=HOST:PORT --data DIR [options]",
    options, sizeof options / sizeof options[0]};

/* The rules of the options that their table cannot say; also fills in
 * what follows from them (this node's peer entry, --auth). */
static int check(void *self, char *why, size_t whyn)
{
    struct manager *m = self;
    struct manager_config *c = &m->cfg;
    int rv;

    if (c->id == 0 || c->id > UINT32_MAX) {
        snprintf(why, whyn, "--id must be from 1 to 2^32-1");
        return RQ_INVALID;
    }
    rv = rq_peers_parse(c->peers, m->peers, RQ_PEERS_MAX, &m->n_peers, why,
                        whyn);
    if (rv != 0) {
        return rv;
    }
    const struct rq_peer *own = peer_of(m, c->id);
    if (own == NULL && c->raft_addr[0] == '\0') {
        snprintf(why, whyn,
                 "--id %" PRIu64
                 " is not in --peers: a manager that joins an existing "
                 "cluster needs its --raft-addr",
                 c->id);
        return RQ_INVALID;
    }
    m->self_raft = own != NULL ? own->address : c->raft_addr;
    if (c->raft_addr[0] == '\0') {
        c->raft_addr = m->self_raft;
    }
    rv = rq_config_check_addr("raft-addr", c->raft_addr, MCMD_ADDR_MAX, why,
                              whyn);
    if (rv == 0 && c->raft_bind[0] != '\0') {
        rv = rq_config_check_addr("raft-bind", c->raft_bind, MCMD_ADDR_MAX, why,
                                  whyn);
    }
    if (rv == 0) {
        rv = rq_config_check_addr("http-addr", c->http_addr, MCMD_ADDR_MAX, why,
                                  whyn);
    }
    if (rv == 0 && c->http_bind[0] != '\0') {
        rv = rq_config_check_addr("http-bind", c->http_bind, MCMD_ADDR_MAX, why,
                                  whyn);
    }
    if (rv != 0) {
        return rv;
    }
    rv =
        rq_config_check_raft_timing(c->election_ms, c->heartbeat_ms, why, whyn);
    if (rv != 0) {
        return rv;
    }
    if (c->broker_suspect_ms < 100 ||
        c->broker_dead_ms <= c->broker_suspect_ms) {
        snprintf(why, whyn,
                 "need 100 <= --broker-suspect-ms < --broker-dead-ms");
        return RQ_INVALID;
    }
    if (c->consume_deadline_ms < 100 || c->consume_deadline_ms > 600000) {
        snprintf(why, whyn, "--consume-deadline-ms must be 100 to 600000");
        return RQ_INVALID;
    }
    if (c->traffic_sample_ms < 100 || c->traffic_sample_ms > 600000) {
        snprintf(why, whyn, "--traffic-sample-ms must be 100 to 600000");
        return RQ_INVALID;
    }
    rv = rq_config_check_http(c->max_message_bytes, c->http_idle_timeout_s,
                              c->http_max_connections, c->http_max_buffered,
                              MAX_BODY, why, whyn);
    if (rv != 0) {
        return rv;
    }
    rv = rq_httpsig_check_flags(c->auth_clock_skew_ms,
                                c->auth_replay_cache_entries, why, whyn);
    if (rv != 0) {
        return rv;
    }
    if (c->default_partitions < 1 ||
        c->default_partitions > MCMD_MAX_PARTITIONS) {
        snprintf(why, whyn, "need 1 <= --default-partitions <= %d",
                 MCMD_MAX_PARTITIONS);
        return RQ_INVALID;
    }
    if (c->snapshot_threshold < 4 || c->snapshot_threshold > UINT32_MAX) {
        snprintf(why, whyn, "need 4 <= --snapshot-threshold < 2^32");
        return RQ_INVALID;
    }
    if (strcmp(c->auth, "tokens") == 0) {
        c->auth_tokens = true;
    } else if (strcmp(c->auth, "none") != 0) {
        snprintf(why, whyn,
                 "--auth must be none (the public API is open) or tokens "
                 "(every public request needs a bearer token), not '%s'",
                 c->auth);
        return RQ_INVALID;
    }
    if (c->admin_token[0] == '\0' && !c->admin_open) {
        snprintf(why, whyn,
                 "the admin API needs a token: give --admin-token "
                 "(RAFTQ_ADMIN_TOKEN), or --admin-open for a development "
                 "cluster");
        return RQ_INVALID;
    }
    if (strlen(c->admin_token) > 400) {
        snprintf(why, whyn, "--admin-token is longer than 400 bytes");
        return RQ_INVALID;
    }
    bool tls;
    return rq_tls_check_flags(c->tls_cert, c->tls_key, c->tls_ca, &tls, why,
                              whyn);
}

/* Under TLS the public API serves clients without certificates; the
 * /internal routes, called by managers and brokers only, need a node
 * certificate. */
static bool client_cert_required(const char *path)
{
    return strncmp(path, "/internal/", 10) == 0;
}

/* Reconciliation looks again soon after repair changed a replica set. */
static void on_repair_changed(void *data)
{
    struct manager *m = data;
    reconcile_kick(m->reconcile);
}

/*
 * Creates the core around the handles start() opened, then the modules
 * that take it: repair before reconcile, which asks it which groups are
 * being moved; repair tells reconcile of its changes through
 * on_repair_changed. 0 or RQ_NOMEM.
 */
static int wire(struct manager *m)
{
    if (routing_new(&m->routing) != 0) {
        return RQ_NOMEM; /* UNTESTED: ENOMEM only. */
    }
    struct mcore_handles h = {
        .loop = m->loop,
        .node = m->node,
        .store = m->store,
        .httpc = m->httpc,
        .httpsig = m->httpsig,
        .to_brokers = &m->to_brokers,
        .to_managers = &m->to_managers,
        .routing = m->routing,
        .cfg = &m->cfg,
        .peers = m->peers,
        .n_peers = m->n_peers,
        .origin = m->origin,
        .says_sent = qapi_consume,
        .outcome = qapi_consume_outcome,
    };
    if (mcore_new(&h, &m->core) != 0 ||
        liveness_new(m->core, &m->liveness) != 0 ||
        cgroup_new(m->core, &m->cgroups) != 0 ||
        repair_new(m->core, on_repair_changed, m, &m->repair) != 0 ||
        reconcile_new(m->core, m->repair, &m->reconcile) != 0 ||
        qapi_init(m->core) != 0 ||
        mmetrics_new(m->core, m->metrics, &m->mmetrics) != 0 ||
        mmember_new(m->core, &m->mmember) != 0 ||
        mtraffic_new(m->core, &m->traffic) != 0) {
        return RQ_NOMEM; /* UNTESTED: ENOMEM only. */
    }
    struct mcore_modules mods = {
        .liveness = m->liveness,
        .cgroups = m->cgroups,
        .reconcile = m->reconcile,
        .repair = m->repair,
        .mmetrics = m->mmetrics,
        .mmember = m->mmember,
        .traffic = m->traffic,
        .metrics = m->metrics,
    };
    mcore_set_modules(m->core, &mods);
    return 0;
}

/* Starts the node, after bootstrapping it (@bootstrap) with --peers. */
static int node_start(struct manager *m, bool bootstrap, char *why, size_t whyn)
{
    int rv = 0;
    if (bootstrap) {
        rv = rq_node_bootstrap(m->node, m->peers, m->n_peers, why, whyn);
    }
    if (rv == 0) {
        rv = rq_node_start(m->node, why, whyn);
    }
    if (rv == 0) {
        m->node_started = true;
    }
    return rv;
}

/* mjoin decided: bootstrap, or start as the spare the leader added. */
static void on_join_done(void *data, enum mjoin_decision how)
{
    struct manager *m = data;
    char why[256];
    if (m->node_started) {
        return; /* Added back while running (mjoin_rejoin). */
    }
    if (node_start(m, how == MJOIN_BOOTSTRAP, why, sizeof why) != 0) {
        rq_log(RQ_ERROR, "starting the metadata group: %s", why);
        exit(1);
    }
}

/* MJOIN_RPC_INFO: what this manager holds, for a manager that starts
 * with an empty Raft directory (mjoin.h). */
static void on_rpc(void *data, struct rq_rpc_call *call, uint32_t method,
                   const uint8_t *body, size_t len)
{
    struct manager *m = data;
    char uid[RQ_UID_TEXT];
    char lead[MCMD_ADDR_MAX + 1];
    (void)body;
    (void)len;
    if (method != MJOIN_RPC_INFO) {
        rq_rpc_reply(call, RQ_INVALID, NULL, 0);
        return;
    }
    uint64_t u = mstore_cluster_uid(m->store);
    rq_uid_format(u, uid);
    const char *leader_http = mcore_leader_http(m->core, lead, sizeof lead);
    json_t *members = json_array();
    uint64_t index;
    bool pending;
    const struct raft_configuration *conf =
        rq_node_configuration(m->node, &index, &pending);
    for (unsigned i = 0; m->node_started && i < conf->n; i++) {
        json_array_append_new(members,
                              json_integer((json_int_t)conf->servers[i].id));
    }
    json_t *o =
        json_pack("{s:o,s:I,s:I,s:I,s:o,s:s,s:o}", "uid",
                  u != 0 ? json_string(uid) : json_null(), "commit",
                  (json_int_t)(m->node_started ? m->info.commit : 0), "applied",
                  (json_int_t)mstore_applied_index(m->store), "leader_id",
                  (json_int_t)m->info.leader_id, "leader_http",
                  leader_http != NULL ? json_string(leader_http) : json_null(),
                  "http", m->cfg.http_addr, "members", members);
    char *text = o != NULL ? json_dumps(o, JSON_COMPACT) : NULL;
    json_decref(o);
    if (text == NULL) {
        rq_rpc_reply(call, RQ_NOMEM, NULL, 0); /* UNTESTED: ENOMEM only. */
        return;
    }
    rq_rpc_reply(call, 0, text, strlen(text));
    free(text);
}

static int start(void *self, uv_loop_t *loop, char *why, size_t whyn)
{
    struct manager *m = self;
    char path[PATH_LEN];
    int rv;

    m->loop = loop;
    if (openapi_init() != 0) {
        snprintf(why, whyn, "the compiled-in OpenAPI document is broken");
        return RQ_INVALID;
    }
    if (getrandom(&m->origin, sizeof m->origin, 0) != sizeof m->origin) {
        snprintf(why, whyn, "getrandom: %s", strerror(errno));
        return RQ_IO;
    }
    rv = rq_tls_open(m->cfg.tls_cert, m->cfg.tls_key, m->cfg.tls_ca, &m->tls,
                     why, whyn);
    if (rv != 0) {
        return rv;
    }
    snprintf(path, sizeof path, "%s/meta.db", m->cfg.data);
    rv = mstore_open(path, &m->store, why, whyn);
    if (rv != 0) {
        return rv;
    }
    rq_keys_derive(&m->keys, m->cfg.secret, strlen(m->cfg.secret));
    snprintf(m->sender, sizeof m->sender, "manager-%" PRIu64, m->cfg.id);
    m->to_brokers.key = rq_keys_get(&m->keys, RQ_KEY_HTTP_M2B);
    m->to_brokers.sender = m->sender;
    m->to_managers.key = rq_keys_get(&m->keys, RQ_KEY_HTTP_M2M);
    m->to_managers.sender = m->sender;
    rv = rq_httpc_new(m->loop, &m->httpc, why, whyn);
    if (rv != 0) {
        return rv;
    }
    if (m->tls != NULL) {
        rq_httpc_set_tls(m->httpc, m->tls);
    }
    struct rq_mux_config mc = {
        .cluster_id = m->cfg.cluster_id,
        .self_id = m->cfg.id,
        .bind_address =
            m->cfg.raft_bind[0] != '\0' ? m->cfg.raft_bind : m->cfg.raft_addr,
        .advertise = m->self_raft,
        .secret = m->cfg.secret,
        .tls = m->tls,
    };
    rv = rq_mux_new(m->loop, &mc, &m->mux, why, whyn);
    if (rv != 0) {
        return rv;
    }
    rv = rq_mux_transport_init(m->mux, MANAGER_GROUP, &m->transport);
    if (rv != 0) {
        snprintf(why, whyn, "transport: %s", rq_strerror(rv));
        return rv;
    }
    m->transport_live = true;
    snprintf(path, sizeof path, "%s/raft", m->cfg.data);
    struct rq_node_config nc = {
        .id = m->cfg.id,
        .address = m->self_raft,
        .dir = path,
        .election_timeout_ms = (unsigned)m->cfg.election_ms,
        .heartbeat_timeout_ms = (unsigned)m->cfg.heartbeat_ms,
        .snapshot_threshold = (unsigned)m->cfg.snapshot_threshold,
        .pre_vote = true,
        .label = "meta",
    };
    rv = rq_node_new(m->loop, &m->transport, &nc, &fsm_ops, m, &m->node, why,
                     whyn);
    if (rv != 0) {
        return rv;
    }
    rq_node_on_change(m->node, on_change, m);
    rv = rq_rpc_new(m->loop, m->mux, &m->rpc);
    if (rv != 0) {
        snprintf(why, whyn, "rpc: %s", rq_strerror(rv));
        return rv;
    }
    rq_rpc_set_handler(m->rpc, on_rpc, m);
    if (rq_metrics_new(&m->metrics) != 0 ||
        rq_mux_metrics_open(m->mux, m->metrics) != 0 ||
        (m->tls != NULL && rq_tls_metrics(m->tls, m->metrics) != 0)) {
        snprintf(why, whyn, "out of memory"); /* UNTESTED: ENOMEM only. */
        return RQ_NOMEM;
    }
    struct rq_httpsig_config sc = {
        .keys = &m->keys,
        .skew_ms = m->cfg.auth_clock_skew_ms,
        .cache_entries = (size_t)m->cfg.auth_replay_cache_entries,
        .metrics = m->metrics,
    };
    if (rq_httpsig_new(&sc, &m->httpsig) != 0 || wire(m) != 0) {
        snprintf(why, whyn, "out of memory"); /* UNTESTED: ENOMEM only. */
        return RQ_NOMEM;
    }
    bool has_state = rq_node_has_state(path);
    struct mjoin_config jc = {
        .self = m->cfg.id,
        .peers = m->peers,
        .n_peers = m->n_peers,
        .raft_addr = m->self_raft,
        .http_addr = m->cfg.http_addr,
    };
    rv = mjoin_new(m->loop, m->rpc, m->core, &jc, !has_state, on_join_done, m,
                   &m->join);
    if (rv == 0 && has_state) {
        rv = node_start(m, false, why, whyn);
    }
    if (rv != 0) {
        return rv;
    }
    struct rq_http_config hc = {
        .bind_address =
            m->cfg.http_bind[0] != '\0' ? m->cfg.http_bind : m->cfg.http_addr,
        .max_body = MAX_BODY,
        .max_connections = (unsigned)m->cfg.http_max_connections,
        .max_buffered = (size_t)m->cfg.http_max_buffered,
        .idle_timeout_s = (unsigned)m->cfg.http_idle_timeout_s,
        .metrics = m->metrics,
        .authenticate = rq_httpsig_authenticate,
        .auth_data = m->httpsig,
        .tls = m->tls,
        .client_cert_required = client_cert_required,
    };
    rv = rq_http_new(m->loop, &hc, routes, sizeof routes / sizeof routes[0],
                     m->core, &m->http, why, whyn);
    if (rv != 0) {
        return rv;
    }
    uv_check_init(m->loop, &m->flush);
    m->flush.data = m;
    uv_check_start(&m->flush, on_flush);
    uv_timer_init(m->loop, &m->tick);
    m->tick.data = m;
    uv_timer_start(&m->tick, on_tick, TICK_MS, TICK_MS);
    if (m->cfg.admin_open) {
        rq_log(RQ_WARN,
               "--admin-open: the admin API answers anyone who can reach "
               "%s, without a token; for development only",
               m->cfg.http_addr);
    }
    rq_log(RQ_INFO, "public API: %s",
           m->cfg.auth_tokens ? "every request needs a bearer token"
                              : "open (--auth none)");
    rq_log(RQ_INFO,
           "listening on %s (raft) and %s (http), %zu managers, data in %s, "
           "store at index %" PRIu64,
           m->cfg.raft_addr, m->cfg.http_addr, m->n_peers, m->cfg.data,
           mstore_applied_index(m->store));
    return 0;
}

/* The loop has stopped and every handle is closed: commits the store and
 * frees the modules. */
static int finish(void *self)
{
    struct manager *m = self;
    int rv = mstore_flush(m->store);
    if (rv != 0) {
        rq_log(RQ_ERROR, "committing the store: %s", rq_strerror(rv));
    }
    mstore_close(m->store);
    qapi_produce_close();
    qapi_close(m->core);
    repair_free(m->repair);
    reconcile_free(m->reconcile);
    mmember_free(m->mmember);
    mtraffic_free(m->traffic);
    mjoin_free(m->join);
    liveness_free(m->liveness);
    cgroup_free(m->cgroups);
    mmetrics_free(m->mmetrics); /* The HTTP server is gone. */
    mcore_free(m->core);
    routing_free(m->routing);
    rq_httpsig_free(m->httpsig);
    rq_keys_wipe(&m->keys, sizeof m->keys);
    rq_metrics_free(m->metrics);
    rq_tls_free(m->tls);
    openapi_close();
    return 0;
}

int main(int argc, char **argv)
{
    static const struct rq_main_spec spec = {&config_spec, check, start, stop,
                                             finish};
    return rq_main(&spec, &manager, &manager.cfg, argc, argv);
}

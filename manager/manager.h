/*
 * The manager process (manager.c) as its other modules see it: the
 * configuration, the handles it owns, and the few services every HTTP
 * handler needs: proposing a command to the metadata group, consistent
 * reads, forwarding a request to the leader, and holding a request across
 * asynchronous steps.
 *
 * The struct is shared by the manager's own modules only (qapi.c, admin.c,
 * liveness.c, routing.c, reconcile.c, bclient.c), which live and die with
 * the process; nothing outside manager/ includes this header.
 */
#ifndef MANAGER_H
#define MANAGER_H

#include <raft.h>
#include <raft/uv.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <uv.h>

#include "mcmd.h"
#include "rq_config.h"
#include "rq_http.h"
#include "rq_httpc.h"
#include "rq_keys.h"
#include "rq_list.h"
#include "rq_node.h"

#define MANAGER_GROUP 1 /* The metadata Raft group's id on the mux. */
#define MANAGER_WHY 256 /* Room for a reason. */
/* The header naming the manager that forwarded a request. */
#define MANAGER_FORWARDED "X-Raftq-Forwarded"

struct manager_config {
    uint64_t id;
    const char *raft_addr; /* Where to listen; "" means the --peers entry. */
    const char *http_addr;
    const char *peers;
    const char *data;
    const char *secret;
    uint64_t cluster_id;
    const char *admin_token; /* "" only with --admin-open. */
    bool admin_open;         /* raftq dev: the admin API needs no token. */
    const char *auth;        /* "none" or "tokens" (public API). */
    bool auth_tokens;        /* --auth tokens */
    uint64_t election_ms;
    uint64_t heartbeat_ms;
    uint64_t broker_dead_ms;
    uint64_t broker_suspect_ms;
    uint64_t max_message_bytes;
    uint64_t snapshot_threshold;
    uint64_t http_idle_timeout_s;
    uint64_t http_max_connections;
    uint64_t auth_clock_skew_ms;
    uint64_t http_max_buffered;
    uint64_t auth_replay_cache_entries;
    const char *log_level;
    const char *log_format;
    const char *tls_cert; /* All three or none (rq_tls_check_flags). */
    const char *tls_key;
    const char *tls_ca;
};

struct mstore;
struct rq_tls;
struct rq_mux;
struct routing;
struct liveness;
struct reconcile;
struct repair;
struct rq_metrics;
struct mmetrics;

struct manager_stats {
    uint64_t proposals;
    uint64_t proposal_errors;
    uint64_t forwarded;
    uint64_t produced;
    uint64_t consumed;
    uint64_t read_barriers;
    uint64_t read_index;
    uint64_t forwarded_internal; /* Of forwarded: /internal routes. */
};

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
    struct liveness *liveness;
    struct reconcile *reconcile;
    struct repair *repair;
    int lock_fd;
    uint64_t origin; /* Random per process: names our produce attempts. */
    uint64_t attempts;

    uv_check_t flush; /* Commits the store's open transaction each turn. */
    uv_timer_t tick;  /* Leader duties, read deadlines, address upkeep. */
    uint64_t ticks;
    uv_signal_t sigterm;
    uv_signal_t sigint;
    uv_signal_t sighup;
    bool closing;

    struct rq_node_info info; /* As last reported by the node. */
    bool leading;             /* The ready leader. */

    /* Consistent reads on the leader: one barrier serves every read that
     * arrived before it was issued. */
    struct rq_list barrier_next;    /* Wait for the next barrier. */
    struct rq_list barrier_current; /* Wait for the one in flight. */
    bool barrier_in_flight;
    /* Consistent reads on a follower: waiting to apply a read index. */
    struct rq_list applied_waiters;

    /* Reads completing on the next loop turn (refused at once). */
    struct rq_list deferred;
    uv_timer_t defer;

    bool routes_in_flight; /* A follower copying the leader's routes. */
    bool addr_in_flight;   /* Publishing our addresses. */
    uint64_t addr_next_ms;

    struct consumers *consumers; /* qapi.c: per-consumer serialization. */
    /* auth.c: the request whose handler runs again after a consistent
     * read, while it runs (its token is then judged for good). */
    struct rq_http_req *auth_rechecked;
    struct manager_stats stats;
    struct rq_metrics *metrics; /* GET /metrics renders it. */
    struct mmetrics *mmetrics;
};

/* The wall clock in milliseconds (commands carry the proposer's clock). */
uint64_t manager_wall_ms(void);

/*
 * Proposes @c (now_ms is set here). 0 and @cb runs once it is applied, with
 * the store's result (MSTORE_OK / MSTORE_ERR); RQ_NOTLEADER if this manager
 * is not the ready leader, RQ_SHUTDOWN, RQ_INVALID (encode refused),
 * RQ_NOMEM: then @cb never runs.
 */
int manager_propose(struct manager *m, struct mcmd *c, rq_node_done_cb cb,
                    void *data);

/*
 * A consistent read: @cb(data, 0) runs once the local store has applied at
 * least the leader's commit index as of this call (a barrier on the
 * leader; GET /internal/read-index and a wait on a follower). Any failure
 * (no leader, leader unreachable, deadline) is @cb(data, RQ_*) with a
 * reason in the why string passed to the callback (borrowed). The callback
 * always runs later, never inside this call.
 */
typedef void (*manager_read_cb)(void *data, int status, const char *why);
void manager_read(struct manager *m, manager_read_cb cb, void *data);

/*
 * For requests the leader must serve: false if this manager is the ready
 * leader (the caller handles @req), else true once the request has been
 * forwarded to the leader (or answered 503 when there is none, or it was
 * forwarded already).
 */
bool manager_forward(struct manager *m, struct rq_http_req *req);

/*
 * Keeps @req in *@slot while asynchronous steps run: if the client goes
 * away or the server closes first, the request is answered 503 and *@slot
 * set to NULL, so later steps see that nobody waits for the answer.
 */
void manager_hold(struct rq_http_req *req, struct rq_http_req **slot);

/* Answers 503 with Retry-After: 1 and a formatted message. */
void manager_unavailable(struct rq_http_req *req, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

/* Internal routes are checked before their handlers (rq_httpsig.h); the
 * public and admin APIs check tokens (auth.h). */

/* The headers every call to a broker or manager carries (the JSON content
 * type), NULL-terminated; static storage of the manager. */
const char *const *manager_peer_headers(struct manager *m);
/* The same for a binary produce body (application/vnd.raftq.records). */
const char *const *manager_records_headers(struct manager *m);

/* How calls to brokers (manager-to-broker key) and to other managers
 * (manager-to-manager key) are signed: the .sign of an rq_httpc_req. */
const struct rq_httpc_signer *manager_to_brokers(struct manager *m);
const struct rq_httpc_signer *manager_to_managers(struct manager *m);

/*
 * Starts an HTTP call to a broker or a manager (rq_httpc_do), or refuses
 * with RQ_SHUTDOWN once the manager is closing.
 */
int manager_call(struct manager *m, const struct rq_httpc_req *req,
                 rq_httpc_cb cb, void *data);

/* The leader manager's HTTP address, or NULL when not known. @buf holds
 * it. */
const char *manager_leader_http(struct manager *m, char *buf, size_t n);

#endif /* MANAGER_H */

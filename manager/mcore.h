/*
 * The manager core: everything liveness, reconcile, repair, bclient and
 * the API handlers may do, and the read-only views they may look at.
 * Each module calls only modules on rows below its own (or, on its own
 * row, to the right):
 *
 *   manager.c      option checks, start, finish (rq_main runs them),
 *                  wiring, FSM callbacks, address upkeep
 *     |  creates the core and every module, hands each the core
 *     v
 *   admin.c, qapi_{topics,produce,consume,read}.c   HTTP handlers (their
 *     |  -> qapi.c -> auth.c -> qapi_serve.c         data: the core)
 *     |         |
 *     v         v
 *   reconcile.c -> repair.c   mmetrics.c   bclient.c   leader duties,
 *     |              |           |            |         metrics, brokers
 *     v              v           v            |
 *   liveness.c   (repair tells of its changes |
 *     |           through a hook manager.c    |
 *     |           sets: it kicks reconcile)   |
 *     v                                       v
 *   mcore.c: propose, consistent read, forward, hold, call a peer
 *     |
 *     v
 *   liveness_rule  reconcile_plan  repair_plan  bclient_policy   decisions,
 *   pmerge                           |         pure; each called by its
 *     |                              |         adapter (liveness.c, ...,
 *     v                              v         qapi_produce.c)
 *   mstore  routing  mcmd  grants  placement  policy   state, pure logic
 *   rq_node  rq_httpc  rq_http  rq_httpsig      I/O
 *
 * The core owns no module above it: nothing here calls liveness, reconcile
 * or repair (it only holds them for the handlers, mcore_modules). Where
 * the core must tell them something (leadership won or lost, a tick),
 * manager.c does it. The store is changed only by applying committed
 * commands (mcore_propose); the views below are const.
 */
#ifndef MCORE_H
#define MCORE_H

#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "mconfig.h"
#include "rq_config.h"
#include "rq_http.h"
#include "rq_httpc.h"
#include "rq_node.h"

struct mcmd;
struct mstore;
struct routing;
struct liveness;
struct cgroup;
struct reconcile;
struct repair;
struct mmetrics;
struct mtraffic;
struct rq_metrics;
struct rq_httpsig;
struct uv_loop_s;

#define MCORE_WHY 256 /* Room for a reason. */
/* The header naming the manager that forwarded a request. */
#define MCORE_FORWARDED "X-Raftq-Forwarded"
/* The wall-clock time (Unix milliseconds) by which the leader must have
 * proposed a forwarded consume's advance, or not propose it. */
#define MCORE_CONSUME_BY "X-Raftq-Consume-By"
/* The wall-clock time (Unix milliseconds) at which the forwarding manager
 * stops waiting for the answer to any forwarded request: the leader does
 * not start one that arrives later (mcore_forward). */
#define MCORE_FORWARD_BY "X-Raftq-Forward-By"

struct mcore;

/* --- Acting on the metadata group ---------------------------------- */

/*
 * Proposes @c (its now_ms is set here). 0 and @cb runs once it is applied,
 * with the store's result (MSTORE_OK / MSTORE_ERR), or with the error
 * that kept it from being applied here (RQ_NOTLEADER, RQ_SHUTDOWN, ...);
 * RQ_NOTLEADER if this manager is not the ready leader, RQ_SHUTDOWN,
 * RQ_INVALID (encode refused), RQ_NOMEM: then @cb never runs. The command
 * goes to Raft at the loop's next idle phase, with the others of this
 * turn as one batch entry (mbatch.h) unless --propose-batches is off;
 * commands are applied in the order they were proposed.
 */
int mcore_propose(struct mcore *core, struct mcmd *c, rq_node_done_cb cb,
                  void *data);

/*
 * A consistent read: @cb(data, 0, NULL) runs once the local store has
 * applied at least the leader's commit index as of this call. Any failure
 * (no leader, leader unreachable, deadline) is @cb(data, RQ_*, why), why
 * borrowed. The callback always runs later, never inside this call.
 */
typedef void (*mcore_read_cb)(void *data, int status, const char *why);
void mcore_read(struct mcore *core, mcore_read_cb cb, void *data);

/*
 * For requests the leader must serve: false if this manager is the ready
 * leader (the caller handles @req), else true once the request has been
 * forwarded to the leader (or answered 503 when there is none). A request
 * marked as forwarded by a manager (MCORE_FORWARDED) whose signature does
 * not hold (a stranger's mark, or a forward held up past the signature
 * window) is answered 401 here, on the leader too; one that reaches the
 * leader after its forwarder stopped waiting (MCORE_FORWARD_BY), 503
 * without being carried out.
 */
bool mcore_forward(struct mcore *core, struct rq_http_req *req);

/*
 * The wall-clock time (mcore_wall_ms) past which the leader must not
 * propose the offset advance of the consume @req, or 0 for none. A
 * follower that forwards a consume waits for it until --consume-deadline-ms
 * after it arrived (and a little longer for the answer) and stamps that
 * time on it (MCORE_CONSUME_BY); past it the follower has answered that
 * the consume may have happened, and across a network partition the
 * leader cannot see the follower's cancel, so a request held up on the way
 * (TCP retransmits until the partition heals) would otherwise consume a
 * message for a client that has gone (API.md section 1). Only a request
 * with a manager's believed forwarding mark has one, and never later than
 * --consume-deadline-ms after this call: the managers' clocks may differ
 * (a leader's clock behind the follower's lengthens the time by the
 * difference, up to that bound).
 * Call it after mcore_forward() returned false for @req.
 */
uint64_t mcore_consume_deadline(struct mcore *core, struct rq_http_req *req);

/* --- Holding a request --------------------------------------------- */

/*
 * Keeps @req in *@slot while asynchronous steps run: if the client goes
 * away or the server closes first, the request is answered 503 and *@slot
 * set to NULL, so later steps see that nobody waits for the answer.
 */
void mcore_hold(struct rq_http_req *req, struct rq_http_req **slot);

/* Answers 503 with Retry-After: 1 and a formatted message. */
void mcore_unavailable(struct rq_http_req *req, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

/* --- Calling brokers and managers ---------------------------------- */

enum mcore_peer { MCORE_BROKER, MCORE_MANAGER };
/* JSON both ways; a binary produce body (rq_record.h); a JSON request
 * that accepts the binary read answer (rq_reads.h). */
enum mcore_body { MCORE_JSON, MCORE_RECORDS, MCORE_ACCEPT_RECORDS };

/*
 * Starts an HTTP call to a broker or a manager: @req's headers and signer
 * are set here for @to and @body, so
 * callers fill method, url, body and timeout only. 0, or RQ_SHUTDOWN once
 * the manager is closing (then @cb never runs).
 */
int mcore_call(struct mcore *core, enum mcore_peer to, enum mcore_body body,
               struct rq_httpc_req *req, rq_httpc_cb cb, void *data);

/* --- Views ---------------------------------------------------------- */

uint64_t mcore_now(const struct mcore *core);     /* uv_now() of the loop */
uint64_t mcore_wall_ms(void);                     /* the wall clock */
struct uv_loop_s *mcore_loop(struct mcore *core); /* for timers */
const struct manager_config *mcore_config(const struct mcore *core);
bool mcore_leading(const struct mcore *core); /* the ready leader */
bool mcore_closing(const struct mcore *core);
void mcore_node_info(const struct mcore *core, struct rq_node_info *out);
void mcore_node_counters(const struct mcore *core,
                         struct rq_node_counters *out);
/* Every manager of the cluster (--peers), @n of them; the core's. */
const struct rq_peer *mcore_peers(const struct mcore *core, size_t *n);
/* The leader manager's HTTP address as the store has it, or NULL when not
 * known. @buf holds it. */
const char *mcore_leader_http(const struct mcore *core, char *buf, size_t n);

/* A fresh producer id for a produce this manager sends on a client's
 * behalf: from this process's random origin, unlike any other drawn. */
uint64_t mcore_producer_id(struct mcore *core);

/* Read queries only: the store changes by mcore_propose. */
const struct mstore *mcore_store(const struct mcore *core);
struct rq_node *mcore_node(const struct mcore *core);
const struct routing *mcore_routing(const struct mcore *core);
const struct liveness *mcore_liveness(const struct mcore *core);

/* The routing cache is not metadata (routing.h): bclient and liveness
 * learn leaders and high watermarks from brokers' answers into it. */
struct routing *mcore_routes(struct mcore *core);

/* The counters /metrics shows (mconfig.h); handlers count into them. */
struct manager_stats *mcore_stats(struct mcore *core);

/* --- The modules the HTTP handlers drive --------------------------- */

/*
 * A handler's only argument is the core, so the core holds the modules
 * above it that handlers feed (heartbeats, registrations, new topics,
 * leader moves) for them. The core itself never calls them: it includes
 * none of their headers.
 */
struct mcore_modules {
    struct liveness *liveness;   /* Heartbeats and registrations. */
    struct cgroup *cgroups;      /* Consumer group sessions, positions. */
    struct reconcile *reconcile; /* Kicked when placement changes. */
    struct repair *repair;       /* Moves under way. */
    struct mmetrics *mmetrics;   /* Per-topic counters. */
    struct mmember *mmember;     /* The managers' membership changes. */
    struct mtraffic *traffic;    /* Bytes produced, per topic. */
    struct rq_metrics *metrics;  /* GET /metrics renders it. */
};
const struct mcore_modules *mcore_modules(const struct mcore *core);

/* --- For manager.c only: creating and driving the core -------------- */

/*
 * The handles manager.c owns and lends the core for its life; the core
 * frees none of them.
 */
struct mcore_handles {
    struct uv_loop_s *loop;
    struct rq_node *node;
    struct mstore *store;
    struct rq_httpc *httpc;
    struct rq_httpsig *httpsig; /* Believes a forwarded mark. */
    const struct rq_httpc_signer *to_brokers;
    const struct rq_httpc_signer *to_managers;
    struct routing *routing;
    const struct manager_config *cfg;
    const struct rq_peer *peers;
    size_t n_peers;
    uint64_t origin; /* Random per process: names our produce attempts. */
    /*
     * The one route whose failures say whether the leader may have
     * received the request (API.md section 1: a consume's
     * "offset_advanced"): forwarded on a kept connection, or a new one
     * after one went unanswered (policy_forward_fresh), and every 503 the
     * core gives it gets @outcome's words (@sent: it may have reached the
     * leader).
     */
    rq_http_handler says_sent;
    void (*outcome)(struct rq_http_req *req, json_t *body, bool sent);
};

/* 0 or RQ_NOMEM. The modules are set once they exist (they take the
 * core). */
int mcore_new(const struct mcore_handles *h, struct mcore **out);
void mcore_set_modules(struct mcore *core, const struct mcore_modules *mods);
/* Once the loop has stopped. NULL is a no-op. */
void mcore_free(struct mcore *core);

/* The node reported @info (rq_node_on_change): leadership, the leader. */
void mcore_node_changed(struct mcore *core, const struct rq_node_info *info);
/* Every tick: reads that waited too long fail. */
void mcore_tick(struct mcore *core, uint64_t now);
/* The store applied more entries: reads waiting for them complete. */
void mcore_applied(struct mcore *core);
/* The store applied the batch @nonce (mstore_batch_results): if this
 * manager proposed it, its proposers get @results (copied) once its
 * callback runs. Called from the state machine's apply. */
void mcore_batch_applied(struct mcore *core, uint64_t nonce,
                         const uint64_t *results, size_t n);

/* GET /internal/read-index: a route of manager.c's table, answered by the
 * ready leader after a barrier with the index a follower must apply before
 * it reads. */
void mcore_read_index(struct rq_http_req *req, void *data);

/*
 * Shutdown, in manager.c's order: mcore_closing_begin refuses everything
 * new and fails waiting reads; mcore_closing_http once the HTTP server is
 * closed completes deferred reads; mcore_closing_httpc and
 * mcore_closing_node once those are closed (the latter closes the core's
 * own timer).
 */
void mcore_closing_begin(struct mcore *core);
void mcore_closing_http(struct mcore *core);
void mcore_closing_httpc(struct mcore *core);
void mcore_closing_node(struct mcore *core);

#endif /* MCORE_H */

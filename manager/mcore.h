/*
 * The manager core: everything liveness, reconcile, repair, bclient and
 * the API handlers may do, and the read-only views they may look at.
 *
 *   manager.c (main, configure, wiring)
 *     |  creates the core and every module, hands each the core
 *     v
 *   admin.c  qapi_*.c  auth.c  mmetrics.c   (HTTP handlers)
 *     |         |
 *     v         v
 *   repair.c reconcile.c bclient.c liveness.c  (leader duties, broker calls)
 *     |
 *     v
 *   mcore.c: propose, consistent read, forward, hold, call a peer
 *     |
 *     v
 *   mstore  routing  rq_node  rq_httpc        (state and I/O)
 *
 * The core owns no module above it: nothing here calls liveness, reconcile
 * or repair. Where the core must tell them something (leadership won or
 * lost, a tick), manager.c does it. The store is changed only by applying
 * committed commands (mcore_propose); the views below are const.
 */
#ifndef MCORE_H
#define MCORE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "mconfig.h"
#include "rq_http.h"
#include "rq_httpc.h"
#include "rq_node.h"

struct mcmd;
struct mstore;
struct routing;
struct liveness;

#define MCORE_WHY 256 /* Room for a reason. */

struct mcore;

/* --- Acting on the metadata group ---------------------------------- */

/*
 * Proposes @c (its now_ms is set here). 0 and @cb runs once it is applied,
 * with the store's result (MSTORE_OK / MSTORE_ERR); RQ_NOTLEADER if this
 * manager is not the ready leader, RQ_SHUTDOWN, RQ_INVALID (encode
 * refused), RQ_NOMEM: then @cb never runs.
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
 * forwarded to the leader (or answered 503 when there is none).
 */
bool mcore_forward(struct mcore *core, struct rq_http_req *req);

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
enum mcore_body { MCORE_JSON, MCORE_RECORDS };

/*
 * Starts an HTTP call to a broker or a manager: @req's headers and signer
 * are set here for @to and @body (JSON, or the binary records format), so
 * callers fill method, url, body and timeout only. 0, or RQ_SHUTDOWN once
 * the manager is closing (then @cb never runs).
 */
int mcore_call(struct mcore *core, enum mcore_peer to, enum mcore_body body,
               struct rq_httpc_req *req, rq_httpc_cb cb, void *data);

/* --- Views ---------------------------------------------------------- */

uint64_t mcore_now(const struct mcore *core);  /* uv_now() of the loop */
uint64_t mcore_wall_ms(void);                  /* the wall clock */
struct uv_loop_s *mcore_loop(struct mcore *core); /* for timers */
const struct manager_config *mcore_config(const struct mcore *core);
bool mcore_leading(const struct mcore *core); /* the ready leader */
bool mcore_closing(const struct mcore *core);
void mcore_node_info(const struct mcore *core, struct rq_node_info *out);

/* Read queries only: the store changes by mcore_propose. */
const struct mstore *mcore_store(const struct mcore *core);
const struct routing *mcore_routing(const struct mcore *core);
const struct liveness *mcore_liveness(const struct mcore *core);

/* The routing cache is not metadata (routing.h): bclient and liveness
 * learn leaders and high watermarks from brokers' answers into it. */
struct routing *mcore_routes(struct mcore *core);

/* The counters /metrics shows (mconfig.h); handlers count into them. */
struct manager_stats *mcore_stats(struct mcore *core);

/* --- For manager.c only: creating and driving the core -------------- */

/*
 * mcore_new takes the handles manager.c owns (loop, node, store, HTTP
 * client, signers, routing, liveness, configuration); leadership changes,
 * ticks, applied entries and shutdown reach the core through calls that
 * manager.c makes. Their exact shape is the core's business.
 */

#endif /* MCORE_H */

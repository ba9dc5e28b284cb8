/*
 * One TCP listener per process, shared by every Raft group and by RPC.
 *
 * The mux owns the listening socket. Each Raft group gets its own
 * raft_uv_transport from rq_mux_transport_init(); its connect() dials the
 * peer, reads the listener's challenge, writes an rq_preamble answering it
 * and naming the group, and hands the stream to raft_uv. The shared
 * listener sends each incoming connection a fresh challenge, reads its
 * preamble and passes the stream to the accept callback of the group it
 * names (see rq_preamble.h for the exchange). Streams of kind RQ_STREAM_RPC
 * go to the RPC handler instead. A connection with a bad or replayed
 * preamble, a foreign cluster id or an unknown group is closed, counted by
 * reason and the reason logged (rate-limited). A stream handed on stays
 * bound to the cluster and the group (or RPC service) its preamble named.
 *
 * A peer that stops reading (a process stopped with SIGSTOP keeps its
 * sockets open) would let writes pile up without bound. libraft 0.15 sent
 * such a follower every entry since its match point each heartbeat; 0.22.1
 * sends it at most 32 unacknowledged entries, then heartbeats only, but RPC
 * replies and FETCH pages have no such limit. The mux looks at every TCP
 * stream of its loop each watch_ms and shuts down one whose write queue
 * stayed over write_queue_max without shrinking; its owner sees the writes
 * fail (raft_uv reconnects, and the leader falls back to probing that
 * follower).
 *
 * Addresses may be host names; they are resolved on every connect, so a
 * peer that moves (a Kubernetes pod) is found again.
 *
 * Everything runs on the loop thread.
 */
#ifndef RQ_MUX_H
#define RQ_MUX_H

#include <raft.h>
#include <raft/uv.h>
#include <stddef.h>
#include <stdint.h>
#include <uv.h>

#include "rq_preamble.h"

struct rq_mux;
struct rq_tls;

struct rq_mux_config {
    uint64_t cluster_id;
    uint64_t self_id;
    const char *bind_address; /* "HOST:PORT" to listen on (borrowed). */
    const char *advertise;    /* Address peers know us by; NULL: bind. */
    /* Cluster secret text (borrowed); the connections are keyed by its
     * RQ_KEY_RAFT key. */
    const char *secret;
    /* Outgoing connect deadline, the listener's challenge included; 0:
     * 2000. */
    unsigned connect_timeout_ms;
    unsigned preamble_timeout_ms; /* Incoming preamble deadline; 0: 5000. */
    /* Bytes a stream may hold queued for writing before it is cut; 0: 64
     * MiB. A stream over it at two looks in a row (watch_ms apart), not
     * shorter at the second, is shut down. */
    uint64_t write_queue_max;
    unsigned watch_ms; /* 0: 1000. */
    /* TLS under every connection, in and out, before any preamble byte
     * (rq_tls.h: TLS 1.3, both ends' certificates checked against the CA;
     * an outgoing connection also checks the peer's name); NULL: plain
     * TCP. Borrowed; outlives the mux. The streams handed out are then the
     * plaintext ends of TLS relays, still uv_tcp_t from raft_malloc(). */
    struct rq_tls *tls;
};

/*
 * Incoming RPC stream. @stream is a uv_tcp_t allocated with raft_malloc()
 * and now owned by the callee (close it with uv_close and raft_free it in
 * the close callback). @service is the preamble's group_id. Every stream the
 * mux hands out comes from raft_malloc() because the listener allocates it
 * before it knows whether raft_uv (which frees with raft_free) will own it.
 */
typedef void (*rq_mux_rpc_cb)(void *data, uint64_t sender_id,
                              const char *sender_address, uint64_t service,
                              uv_stream_t *stream);

/*
 * Binds and listens. Returns 0, or RQ_IO / RQ_INVALID with @why (for
 * example "127.0.0.1:7001: address already in use").
 */
int rq_mux_new(uv_loop_t *loop, const struct rq_mux_config *cfg,
               struct rq_mux **out, char *why, size_t whyn);

/* Routes RQ_STREAM_RPC connections to @cb; without one they are closed. */
void rq_mux_set_rpc_handler(struct rq_mux *m, rq_mux_rpc_cb cb, void *data);

/*
 * Initializes @t as the transport of group @gid. raft_uv calls its init,
 * listen, connect and close. After raft_uv_close() has completed (the
 * raft_close callback), free it with rq_mux_transport_close(). RQ_EXISTS if
 * @gid already has a live transport.
 */
int rq_mux_transport_init(struct rq_mux *m, uint64_t gid,
                          struct raft_uv_transport *t);
void rq_mux_transport_close(struct raft_uv_transport *t);

/*
 * Outgoing stream of @kind to @address with a preamble naming @gid.
 * On success cb gets a uv_tcp_t from raft_malloc() the caller owns
 * (uv_close, then raft_free in the close callback), with the challenge read
 * (nothing else) and the preamble written; on failure it gets NULL and
 * RQ_CONNECT (refused, closed or a malformed challenge), RQ_TIMEOUT (no
 * challenge within connect_timeout_ms either) or RQ_CANCELED. The request lives
 * in @req (caller-allocated) until the callback. Returns 0, or RQ_INVALID
 * (address not "HOST:PORT"), RQ_SHUTDOWN (mux closing) or RQ_NOMEM, and then
 * never calls @cb.
 */
struct rq_mux_connect;
typedef void (*rq_mux_connect_cb)(struct rq_mux_connect *req,
                                  uv_stream_t *stream, int status);
struct rq_mux_connect {
    void *data;
    /* Private. */
    void *impl;
};
int rq_mux_connect(struct rq_mux *m, struct rq_mux_connect *req,
                   enum rq_stream_kind kind, uint64_t gid, const char *address,
                   rq_mux_connect_cb cb);

/* Cancels a pending rq_mux_connect(): its callback still runs, later, with
 * RQ_CANCELED. A request whose callback has run is left alone. */
void rq_mux_connect_cancel(struct rq_mux_connect *req);

/*
 * Why an incoming connection was closed before it was handed on: the
 * identifier, the label value of the metric raftq_raft_port_rejected_total
 * and the phrase of the log line.
 */
#define RQ_MUX_REJECTS(X)                                          \
    X(RQ_MUX_REJECT_EOF, "closed", "closed before its preamble")   \
    X(RQ_MUX_REJECT_READ, "read_error", "read error")              \
    X(RQ_MUX_REJECT_CHALLENGE, "challenge_failed",                 \
      "could not send the challenge")                              \
    X(RQ_MUX_REJECT_MALFORMED, "malformed", "malformed preamble")  \
    X(RQ_MUX_REJECT_AUTH, "bad_mac", "authentication failed")      \
    X(RQ_MUX_REJECT_REPLAYED, "replayed", "replayed preamble")     \
    X(RQ_MUX_REJECT_CLUSTER, "foreign_cluster", "foreign cluster") \
    X(RQ_MUX_REJECT_GROUP, "unknown_group", "unknown group")       \
    X(RQ_MUX_REJECT_NO_RPC, "no_rpc_service", "no RPC service")    \
    X(RQ_MUX_REJECT_TIMEOUT, "timeout", "preamble timeout")        \
    X(RQ_MUX_REJECT_OVERLOAD, "overload", "too many pending")      \
    X(RQ_MUX_REJECT_ACCEPT, "accept_failed", "accept failed")

enum rq_mux_reject {
#define RQ_MUX_REJECT_ENUM(id, label, text) id,
    RQ_MUX_REJECTS(RQ_MUX_REJECT_ENUM)
#undef RQ_MUX_REJECT_ENUM
        RQ_MUX_REJECT_COUNT
};

/* The metric label of @r ("replayed", ...); static. */
const char *rq_mux_reject_label(enum rq_mux_reject r);

struct rq_mux_stats {
    uint64_t accepted; /* Incoming connections handed on. */
    uint64_t rejected; /* Closed before: the sum of rejected_by. */
    uint64_t rejected_by[RQ_MUX_REJECT_COUNT];
    uint64_t connects;     /* Outgoing connections established. */
    uint64_t connect_errs; /* Outgoing connections that failed. */
    uint64_t cut;          /* Streams shut down for a stuck write queue. */
    unsigned groups;       /* Live transports. */
};
void rq_mux_stats(const struct rq_mux *m, struct rq_mux_stats *out);

/*
 * Publishes the stats in @registry (borrowed; it must outlive the mux or
 * rq_mux_close() must come first), read at every rendering:
 *   raftq_raft_port_accepted_total          counter
 *   raftq_raft_port_rejected_total{reason}  counter, one series per reason
 *   raftq_raft_port_connects_total{result}  counter, "ok" and "failed"
 *   raftq_raft_port_streams_cut_total       counter
 * Returns 0 or RQ_NOMEM.
 */
struct rq_metrics;
int rq_mux_metrics_open(struct rq_mux *m, struct rq_metrics *registry);

/*
 * Stops listening, cancels pending connects (their callbacks get
 * RQ_CANCELED), leaves the metrics registry, and frees the mux once every
 * handle is closed, then calls @cb. All transports must have been closed first.
 */
void rq_mux_close(struct rq_mux *m, void (*cb)(void *data), void *data);

#endif /* RQ_MUX_H */

/*
 * One TCP listener per process, shared by every Raft group and by RPC.
 *
 * The mux owns the listening socket. Each Raft group gets its own
 * raft_uv_transport from rq_mux_transport_init(); its connect() dials the
 * peer, writes an rq_preamble naming the group and hands the stream to
 * raft_uv, and the shared listener reads the preamble of each incoming
 * connection and passes the stream to the accept callback of the group it
 * names. Streams of kind RQ_STREAM_RPC go to the RPC handler instead. A
 * connection with a bad preamble, a foreign cluster id or an unknown group
 * is closed and the reason logged (rate-limited).
 *
 * A peer that stops reading (a process stopped with SIGSTOP keeps its
 * sockets open) would let writes pile up without bound: libraft 0.15 sends
 * such a follower every entry since its match point each heartbeat. The
 * mux looks at every TCP stream of its loop each watch_ms and shuts down
 * one whose write queue stayed over write_queue_max without shrinking; its
 * owner sees the writes fail (raft_uv reconnects, and the leader falls back
 * to probing that follower).
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
    const char *bind_address;     /* "HOST:PORT" to listen on (borrowed). */
    const char *advertise;        /* Address peers know us by; NULL: bind. */
    const char *secret;           /* Cluster secret text (borrowed). */
    unsigned connect_timeout_ms;  /* 0: 2000. */
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
 * (uv_close, then raft_free in the close callback), with the preamble
 * already written; on failure it gets NULL and RQ_CONNECT, RQ_TIMEOUT or
 * RQ_CANCELED. The request lives in @req (caller-allocated) until the
 * callback. Returns 0, or RQ_INVALID (address not "HOST:PORT"),
 * RQ_SHUTDOWN (mux closing) or RQ_NOMEM, and then never calls @cb.
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

struct rq_mux_stats {
    uint64_t accepted;     /* Incoming connections handed on. */
    uint64_t rejected;     /* Closed for a bad preamble, cluster or group. */
    uint64_t connects;     /* Outgoing connections established. */
    uint64_t connect_errs; /* Outgoing connections that failed. */
    uint64_t cut;          /* Streams shut down for a stuck write queue. */
    unsigned groups;       /* Live transports. */
};
void rq_mux_stats(const struct rq_mux *m, struct rq_mux_stats *out);

/*
 * Stops listening, cancels pending connects (their callbacks get
 * RQ_CANCELED) and frees the mux once every handle is closed, then calls
 * @cb. All transports must have been closed first.
 */
void rq_mux_close(struct rq_mux *m, void (*cb)(void *data), void *data);

#endif /* RQ_MUX_H */

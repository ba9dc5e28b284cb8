/*
 * Request/response calls between raftq processes over the mux port.
 *
 * A non-leader forwards work to its leader with rq_rpc_call(); the leader's
 * handler answers with rq_rpc_reply(). Calls to one peer share one
 * connection (kind RQ_STREAM_RPC, service RQ_RPC_SERVICE), opened on first
 * use and reopened after a failure; several calls may be in flight on it and
 * replies may come in any order. Frames, little-endian:
 *
 *     len:u32 (bytes after this field) | type:u8 (1 call, 2 reply) | pad:u8[3]
 *     | call_id:u64 | method:u32 | status:u32 | body (len - 20 bytes)
 *
 * A frame longer than RQ_RPC_MAX_FRAME closes the connection. Every call
 * ends exactly once: with the reply, or with RQ_TIMEOUT, RQ_CONNECT or
 * RQ_SHUTDOWN.
 */
#ifndef RQ_RPC_H
#define RQ_RPC_H

#include <stddef.h>
#include <stdint.h>
#include <uv.h>

#include "rq_mux.h"

#define RQ_RPC_SERVICE 1
#define RQ_RPC_MAX_FRAME (16u << 20)
#define RQ_RPC_HEADER 24

struct rq_rpc;
struct rq_rpc_call; /* An incoming call waiting for its reply. */

/*
 * Serves an incoming call. @body is borrowed for the duration of the
 * handler. The handler must end @call with rq_rpc_reply(), now or later.
 */
typedef void (*rq_rpc_handler)(void *data, struct rq_rpc_call *call,
                               uint32_t method, const uint8_t *body,
                               size_t len);

/* A call's outcome: status is the handler's reply status, or RQ_TIMEOUT,
 * RQ_CONNECT, RQ_SHUTDOWN; @body is borrowed for the callback. */
typedef void (*rq_rpc_done_cb)(void *data, int status, const uint8_t *body,
                               size_t len);

/* Registers with @m as its RPC handler. */
int rq_rpc_new(uv_loop_t *loop, struct rq_mux *m, struct rq_rpc **out);

void rq_rpc_set_handler(struct rq_rpc *r, rq_rpc_handler h, void *data);

/*
 * Sends a reply and frees @call. If the caller's connection is gone the
 * reply is dropped (the caller will time out and retry).
 */
void rq_rpc_reply(struct rq_rpc_call *call, int status, const void *body,
                  size_t len);

/* The sender of an incoming call, for logs. */
uint64_t rq_rpc_call_sender(const struct rq_rpc_call *call);

/*
 * Calls @method at @address. @body is copied. @cb runs exactly once, never
 * from inside rq_rpc_call(). A @timeout_ms of 0 means 5000. Returns 0, or
 * RQ_TOOBIG / RQ_SHUTDOWN / RQ_NOMEM (then @cb is not called).
 */
int rq_rpc_call(struct rq_rpc *r, const char *address, uint32_t method,
                const void *body, size_t len, unsigned timeout_ms,
                rq_rpc_done_cb cb, void *data);

/*
 * Ends every pending outgoing call with RQ_SHUTDOWN, drops pending incoming
 * calls, closes every connection and frees @r, then calls @cb. Call it
 * before rq_mux_close(). A dropped incoming call still has to be ended with
 * rq_rpc_reply(), which then only frees it.
 */
void rq_rpc_close(struct rq_rpc *r, void (*cb)(void *data), void *data);

/* ---- Frames: the pure codec under the connections ---- */

#define RQ_RPC_FRAME_CALL 1
#define RQ_RPC_FRAME_REPLY 2

struct rq_rpc_frame {
    uint8_t type; /* RQ_RPC_FRAME_CALL, _REPLY, or anything a peer sent. */
    uint64_t id;
    uint32_t method;
    uint32_t status;
    const uint8_t *body; /* Borrowed from the bytes parsed. */
    size_t len;
};

/*
 * Parses the frame at the start of the @n bytes at @p, as a connection's
 * reader does with what it has received so far. Returns 1 with @f filled
 * and *used set to the frame's bytes; 0 if more bytes are needed; or
 * RQ_MALFORMED for a length field outside [RQ_RPC_HEADER - 4,
 * RQ_RPC_MAX_FRAME] (the connection is then closed). The type is not
 * checked here: what a frame of an unknown type means is the
 * connection's business.
 */
int rq_rpc_frame_parse(const uint8_t *p, size_t n, struct rq_rpc_frame *f,
                       size_t *used);

#endif /* RQ_RPC_H */

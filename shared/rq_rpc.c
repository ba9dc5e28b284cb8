/*
 * Request/response calls over mux RPC streams (contract in rq_rpc.h). This
 * is a libuv adapter: it frames bytes and matches replies to calls; what a
 * method means is the handler's business.
 *
 * Client side. Each peer address has one struct peer holding at most one
 * open connection. A call is queued on its peer; if the peer has no
 * connection one is dialed through rq_mux_connect() and the queued calls
 * are written once it is up. Replies are matched by call id (r->calls), so
 * they may come in any order. Each call has its own timer, which serves two
 * purposes: the call's timeout, and deferring a failure that is decided
 * inside rq_rpc_call() (the timer is restarted with 0 ms and the status
 * preset, see call_defer), so a callback never runs inside the call that
 * caused it. A connection that fails fails every call sent on it with
 * RQ_CONNECT; the next call dials again.
 *
 * Server side. Streams handed over by the mux become server connections;
 * each incoming call becomes a struct rq_rpc_call that holds a reference to
 * its connection, so rq_rpc_reply() after the connection closed (or after
 * rq_rpc_close()) is safe and just drops the reply.
 *
 * Connections are refcounted: the socket holds one reference until its
 * close callback, each write in flight one, each incoming call one. The rpc
 * object itself is freed when rq_rpc_close() has been called and r->refs
 * (connections, calls whose timer is open, connects in flight) is zero.
 */
#include "rq_rpc.h"

#include <assert.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "rq_err.h"
#include "rq_idmap.h"
#include "rq_list.h"
#include "rq_log.h"
#include "rq_wire.h"

#define LOG_TAG "rq_rpc"

#define DEFAULT_TIMEOUT_MS 5000
#define READ_CHUNK 65536
#define FRAME_CALL RQ_RPC_FRAME_CALL
#define FRAME_REPLY RQ_RPC_FRAME_REPLY
/* Bytes of a frame after its length field that are not body. */
#define FRAME_FIXED (RQ_RPC_HEADER - 4)
#define ADDRESS_MAX 64

struct conn;

struct peer {
    struct rq_rpc *r;
    struct rq_list link; /* In r->peers. */
    char address[ADDRESS_MAX];
    struct conn *conn; /* The open connection, or NULL. */
    bool connecting;
    struct rq_mux_connect creq;
    struct rq_list calls; /* Outgoing calls, queued or sent, oldest first. */
};

struct conn {
    struct rq_rpc *r;
    uv_tcp_t *tcp;       /* From the mux: raft_malloc'd. */
    struct peer *peer;   /* Client connections; NULL on the server side. */
    struct rq_list link; /* Server connections: in r->server_conns. */
    uint64_t sender;     /* Server connections: the caller's id. */
    unsigned refs;
    bool closing;
    uint8_t *rbuf; /* Bytes read and not yet parsed. */
    size_t rlen;
    size_t rcap;
};

struct out_call {
    struct rq_rpc *r;
    struct peer *peer;   /* NULL if the address was unusable. */
    struct rq_list link; /* In peer->calls or r->lost_calls. */
    uint64_t id;
    rq_rpc_done_cb cb;
    void *data;
    uv_timer_t timer;
    uint8_t *frame; /* Encoded call until it is written. */
    size_t frame_len;
    int status; /* Preset outcome of a deferred failure; 0 if none. */
};

struct rq_rpc_call {
    struct rq_rpc *r;    /* NULL once rq_rpc_close() detached the call. */
    struct conn *conn;   /* Referenced; NULL once detached. */
    struct rq_list link; /* In r->served. */
    uint64_t id;
    uint64_t sender;
};

struct wreq {
    uv_write_t w;
    struct conn *conn; /* Referenced until the write completes. */
    uint8_t *buf;
};

struct rq_rpc {
    uv_loop_t *loop;
    struct rq_mux *m;
    rq_rpc_handler handler;
    void *handler_data;
    struct rq_list peers;
    struct rq_list server_conns;
    struct rq_list served;     /* Incoming calls waiting for their reply. */
    struct rq_list lost_calls; /* Outgoing calls without a peer. */
    struct rq_idmap calls;     /* id -> struct out_call, until finished. */
    uint64_t next_id;
    unsigned refs;
    bool closing;
    void (*close_cb)(void *data);
    void *close_data;
};

/* ---- Lifetime ---- */

static void rpc_maybe_free(struct rq_rpc *r)
{
    if (!r->closing || r->refs > 0) {
        return;
    }
    while (!rq_list_empty(&r->peers)) {
        struct peer *p = RQ_LIST_ENTRY(r->peers.next, struct peer, link);
        rq_list_remove(&p->link);
        free(p);
    }
    void (*cb)(void *) = r->close_cb;
    void *data = r->close_data;
    assert(r->calls.count == 0);
    rq_idmap_close(&r->calls);
    free(r);
    if (cb != NULL) {
        cb(data);
    }
}

static void conn_unref(struct conn *c)
{
    assert(c->refs > 0);
    if (--c->refs > 0) {
        return;
    }
    struct rq_rpc *r = c->r;
    free(c->rbuf);
    free(c);
    r->refs--;
    rpc_maybe_free(r);
}

/* Close callback of a stream nobody else owns yet. */
static void free_stream(uv_handle_t *h)
{
    raft_free(h);
}

/* ---- Frames ---- */

/*
 * len:u32 | type:u8 | pad:u8[3] | call_id:u64 | method:u32 | status:u32 | body
 * where len counts every byte after itself.
 */
static uint8_t *frame_encode(uint8_t type, uint64_t id, uint32_t method,
                             uint32_t status, const void *body, size_t len,
                             size_t *out_len)
{
    uint8_t *f = malloc(RQ_RPC_HEADER + len);
    if (f == NULL) {
        return NULL; /* UNTESTED: ENOMEM only. */
    }
    rq_wire_put_u32_at(f, (uint32_t)(FRAME_FIXED + len));
    f[4] = type;
    f[5] = f[6] = f[7] = 0;
    rq_wire_put_u64_at(f + 8, id);
    rq_wire_put_u32_at(f + 16, method);
    rq_wire_put_u32_at(f + 20, status);
    if (len > 0) {
        memcpy(f + RQ_RPC_HEADER, body, len);
    }
    *out_len = RQ_RPC_HEADER + len;
    return f;
}

int rq_rpc_frame_parse(const uint8_t *p, size_t n, struct rq_rpc_frame *f,
                       size_t *used)
{
    if (n < 4) {
        return 0;
    }
    uint32_t len = rq_wire_u32_at(p);
    if (len > RQ_RPC_MAX_FRAME || len < FRAME_FIXED) {
        return RQ_MALFORMED;
    }
    if (n - 4 < (size_t)len) {
        return 0;
    }
    f->type = p[4];
    f->id = rq_wire_u64_at(p + 8);
    f->method = rq_wire_u32_at(p + 16);
    f->status = rq_wire_u32_at(p + 20);
    f->body = p + RQ_RPC_HEADER;
    f->len = len - FRAME_FIXED;
    *used = 4 + (size_t)len;
    return 1;
}

/* ---- Calls (client side) ---- */

static void on_call_timer_closed(uv_handle_t *h)
{
    struct out_call *call = h->data;
    struct rq_rpc *r = call->r;
    free(call);
    r->refs--;
    rpc_maybe_free(r);
}

/* Ends @call with its one callback. */
static void call_finish(struct out_call *call, int status, const uint8_t *body,
                        size_t len)
{
    rq_idmap_del(&call->r->calls, call->id);
    rq_list_remove(&call->link);
    free(call->frame);
    call->frame = NULL;
    uv_close((uv_handle_t *)&call->timer, on_call_timer_closed);
    call->cb(call->data, status, body, len);
}

static void on_call_timer(uv_timer_t *t)
{
    struct out_call *call = t->data;
    int status = call->status != 0 ? call->status : RQ_TIMEOUT;
    if (status == RQ_TIMEOUT) {
        rq_log(RQ_DEBUG, "call %llu to %s timed out",
               (unsigned long long)call->id,
               call->peer != NULL ? call->peer->address : "?");
    }
    call_finish(call, status, NULL, 0);
}

/* Fails @call with @status from the next loop iteration. */
static void call_defer(struct out_call *call, int status)
{
    if (call->status != 0) {
        return;
    }
    call->status = status;
    free(call->frame);
    call->frame = NULL;
    uv_timer_start(&call->timer, on_call_timer, 0, 0);
}

static void peer_fail_calls(struct peer *p, int status)
{
    struct rq_list *e;
    for (e = p->calls.next; e != &p->calls; e = e->next) {
        call_defer(RQ_LIST_ENTRY(e, struct out_call, link), status);
    }
}

/* ---- Connections ---- */

static void on_conn_closed(uv_handle_t *h)
{
    struct conn *c = h->data;
    raft_free(c->tcp);
    c->tcp = NULL;
    conn_unref(c);
}

static void conn_close(struct conn *c, const char *why)
{
    if (c->closing) {
        return;
    }
    c->closing = true;
    if (c->peer != NULL) {
        rq_log(RQ_DEBUG, "connection to %s closed: %s", c->peer->address, why);
        c->peer->conn = NULL;
        /* Their requests may or may not have been served; the caller
         * decides whether to retry. */
        peer_fail_calls(c->peer, RQ_CONNECT);
    } else {
        rq_log(RQ_DEBUG, "connection from server %llu closed: %s",
               (unsigned long long)c->sender, why);
        rq_list_remove(&c->link);
    }
    uv_close((uv_handle_t *)c->tcp, on_conn_closed);
}

static void on_written(uv_write_t *w, int status)
{
    struct wreq *req = w->data;
    struct conn *c = req->conn;
    if (status != 0) {
        conn_close(c, uv_strerror(status));
    }
    free(req->buf);
    free(req);
    conn_unref(c);
}

/* Writes a frame, taking ownership of @buf. On failure the connection is
 * closed. */
static void conn_write(struct conn *c, uint8_t *buf, size_t len)
{
    struct wreq *req;
    uv_buf_t b;
    int rv;

    if (c->closing) {
        free(buf);
        return;
    }
    req = malloc(sizeof *req);
    if (req == NULL) {
        free(buf); /* UNTESTED: ENOMEM only. */
        conn_close(c, "out of memory");
        return;
    }
    req->w.data = req;
    req->conn = c;
    req->buf = buf;
    c->refs++;
    b = uv_buf_init((char *)buf, (unsigned)len);
    rv = uv_write(&req->w, (uv_stream_t *)c->tcp, &b, 1, on_written);
    if (rv != 0) {
        free(buf);
        free(req);
        conn_close(c, uv_strerror(rv));
        conn_unref(c);
    }
}

static void call_send(struct out_call *call)
{
    uint8_t *frame = call->frame;
    call->frame = NULL;
    conn_write(call->peer->conn, frame, call->frame_len);
}

static void serve_call(struct conn *c, uint64_t id, uint32_t method,
                       const uint8_t *body, size_t len)
{
    struct rq_rpc *r = c->r;
    struct rq_rpc_call *call = malloc(sizeof *call);
    if (call == NULL) {
        conn_close(c, "out of memory"); /* UNTESTED: ENOMEM only. */
        return;
    }
    call->r = r;
    call->conn = c;
    c->refs++;
    call->id = id;
    call->sender = c->sender;
    rq_list_push(&r->served, &call->link);
    if (r->handler == NULL) {
        rq_rpc_reply(call, RQ_NOTFOUND, NULL, 0);
        return;
    }
    r->handler(r->handler_data, call, method, body, len);
}

/* Handles one whole frame. */
static void conn_frame(struct conn *c, const struct rq_rpc_frame *f)
{
    if (f->type == FRAME_CALL && c->peer == NULL) {
        serve_call(c, f->id, f->method, f->body, f->len);
    } else if (f->type == FRAME_REPLY && c->peer != NULL) {
        struct out_call *call = rq_idmap_get(&c->r->calls, f->id);
        /* No call: it timed out and this is the late reply. */
        if (call != NULL && call->peer == c->peer && call->status == 0) {
            call_finish(call, (int)f->status, f->body, f->len);
        }
    } else {
        rq_log(RQ_WARN, "%s: unexpected frame type %u, closing",
               c->peer != NULL ? c->peer->address : "server connection",
               (unsigned)f->type);
        conn_close(c, "protocol error");
    }
}

static void on_conn_alloc(uv_handle_t *h, size_t suggested, uv_buf_t *buf)
{
    struct conn *c = h->data;
    (void)suggested;
    if (c->rcap - c->rlen < READ_CHUNK) {
        size_t cap = c->rcap * 2;
        if (cap < c->rlen + READ_CHUNK) {
            cap = c->rlen + READ_CHUNK;
        }
        uint8_t *p = realloc(c->rbuf, cap);
        if (p == NULL) {
            *buf = uv_buf_init(NULL, 0); /* libuv reports UV_ENOBUFS. */
            return;
        }
        c->rbuf = p;
        c->rcap = cap;
    }
    *buf =
        uv_buf_init((char *)c->rbuf + c->rlen, (unsigned)(c->rcap - c->rlen));
}

static void on_conn_read(uv_stream_t *s, ssize_t nread, const uv_buf_t *buf)
{
    struct conn *c = s->data;
    size_t off = 0;
    (void)buf;

    if (nread == 0) {
        return;
    }
    if (nread < 0) {
        conn_close(c, uv_strerror((int)nread));
        return;
    }
    c->rlen += (size_t)nread;
    /* A handler or a reply callback may close the connection (or the whole
     * rpc); its memory stays until the socket's close callback, and parsing
     * stops. A reference keeps that true across the loop. */
    c->refs++;
    while (!c->closing) {
        struct rq_rpc_frame f;
        size_t used;
        int rv = rq_rpc_frame_parse(c->rbuf + off, c->rlen - off, &f, &used);
        if (rv == 0) {
            break;
        }
        if (rv != 1) {
            rq_log(RQ_WARN, "%s: frame of %u bytes, closing",
                   c->peer != NULL ? c->peer->address : "server connection",
                   (unsigned)rq_wire_u32_at(c->rbuf + off));
            conn_close(c, "bad frame length");
            break;
        }
        conn_frame(c, &f);
        off += used;
    }
    if (!c->closing) {
        memmove(c->rbuf, c->rbuf + off, c->rlen - off);
        c->rlen -= off;
        /* Give back the room of a large frame once it is consumed. */
        if (c->rlen == 0 && c->rcap > 4 * READ_CHUNK) {
            free(c->rbuf);
            c->rbuf = NULL;
            c->rcap = 0;
        }
    }
    conn_unref(c);
}

/* Wraps a stream from the mux; takes ownership of it. */
static struct conn *conn_new(struct rq_rpc *r, uv_stream_t *stream,
                             struct peer *p, uint64_t sender)
{
    struct conn *c = calloc(1, sizeof *c);
    int rv;
    if (c == NULL) {
        /* UNTESTED: ENOMEM only. The stream needs no owner to close. */
        uv_close((uv_handle_t *)stream, free_stream);
        return NULL;
    }
    c->r = r;
    c->tcp = (uv_tcp_t *)stream;
    c->tcp->data = c;
    c->peer = p;
    c->sender = sender;
    c->refs = 1; /* The socket's. */
    rq_list_init(&c->link);
    r->refs++;
    if (p != NULL) {
        p->conn = c;
    } else {
        rq_list_push(&r->server_conns, &c->link);
    }
    rv = uv_read_start(stream, on_conn_alloc, on_conn_read);
    if (rv != 0) {
        conn_close(c, uv_strerror(rv)); /* UNTESTED: only if closed. */
        return NULL;
    }
    return c;
}

/* ---- Peers ---- */

static struct peer *peer_get(struct rq_rpc *r, const char *address)
{
    struct rq_list *e;
    struct peer *p;

    if (strlen(address) >= ADDRESS_MAX) {
        return NULL;
    }
    for (e = r->peers.next; e != &r->peers; e = e->next) {
        p = RQ_LIST_ENTRY(e, struct peer, link);
        if (strcmp(p->address, address) == 0) {
            return p;
        }
    }
    p = calloc(1, sizeof *p);
    if (p == NULL) {
        return NULL; /* UNTESTED: ENOMEM only. */
    }
    p->r = r;
    snprintf(p->address, sizeof p->address, "%s", address);
    p->creq.data = p;
    rq_list_init(&p->calls);
    rq_list_push(&r->peers, &p->link);
    return p;
}

static void on_peer_connected(struct rq_mux_connect *req, uv_stream_t *stream,
                              int status)
{
    struct peer *p = req->data;
    struct rq_rpc *r = p->r;
    struct rq_list *e;

    p->connecting = false;
    if (r->closing) {
        if (stream != NULL) {
            uv_close((uv_handle_t *)stream, free_stream);
        }
    } else if (status != 0) {
        rq_log(RQ_DEBUG, "connect to %s: %s", p->address, rq_strerror(status));
        peer_fail_calls(p, RQ_CONNECT);
    } else if (conn_new(r, stream, p, 0) != NULL) {
        for (e = p->calls.next; e != &p->calls && p->conn != NULL;
             e = e->next) {
            struct out_call *call = RQ_LIST_ENTRY(e, struct out_call, link);
            if (call->frame != NULL) {
                call_send(call);
            }
        }
    } else {
        peer_fail_calls(p, RQ_CONNECT); /* UNTESTED: ENOMEM only. */
    }
    r->refs--;
    rpc_maybe_free(r);
}

static void peer_connect(struct peer *p)
{
    struct rq_rpc *r = p->r;
    int rv;

    if (p->connecting) {
        return;
    }
    rv = rq_mux_connect(r->m, &p->creq, RQ_STREAM_RPC, RQ_RPC_SERVICE,
                        p->address, on_peer_connected);
    if (rv != 0) {
        rq_log(RQ_DEBUG, "connect to %s: %s", p->address, rq_strerror(rv));
        peer_fail_calls(p, RQ_CONNECT);
        return;
    }
    p->connecting = true;
    r->refs++;
}

/* ---- Server side: streams from the mux ---- */

static void on_rpc_stream(void *data, uint64_t sender_id,
                          const char *sender_address, uint64_t service,
                          uv_stream_t *stream)
{
    struct rq_rpc *r = data;
    if (service != RQ_RPC_SERVICE) {
        rq_log(RQ_WARN, "server %llu at %s asked for RPC service %llu",
               (unsigned long long)sender_id, sender_address,
               (unsigned long long)service);
        uv_close((uv_handle_t *)stream, free_stream);
        return;
    }
    conn_new(r, stream, NULL, sender_id);
}

/* ---- Public ---- */

int rq_rpc_new(uv_loop_t *loop, struct rq_mux *m, struct rq_rpc **out)
{
    struct rq_rpc *r = calloc(1, sizeof *r);
    if (r == NULL) {
        return RQ_NOMEM; /* UNTESTED: ENOMEM only. */
    }
    r->loop = loop;
    r->m = m;
    rq_list_init(&r->peers);
    rq_list_init(&r->server_conns);
    rq_list_init(&r->served);
    rq_list_init(&r->lost_calls);
    rq_idmap_init(&r->calls);
    rq_mux_set_rpc_handler(m, on_rpc_stream, r);
    *out = r;
    return 0;
}

void rq_rpc_set_handler(struct rq_rpc *r, rq_rpc_handler h, void *data)
{
    r->handler = h;
    r->handler_data = data;
}

uint64_t rq_rpc_call_sender(const struct rq_rpc_call *call)
{
    return call->sender;
}

void rq_rpc_reply(struct rq_rpc_call *call, int status, const void *body,
                  size_t len)
{
    struct conn *c = call->conn;
    if (call->r != NULL) {
        rq_list_remove(&call->link);
    }
    if (c != NULL && !c->closing) {
        size_t flen;
        uint8_t *f;
        if (len > RQ_RPC_MAX_FRAME - FRAME_FIXED) {
            rq_log(RQ_WARN, "reply of %zu bytes to server %llu is too big", len,
                   (unsigned long long)call->sender);
            status = RQ_TOOBIG;
            len = 0;
        }
        f = frame_encode(FRAME_REPLY, call->id, 0, (uint32_t)status, body, len,
                         &flen);
        if (f != NULL) {
            conn_write(c, f, flen);
        }
    }
    if (c != NULL) {
        conn_unref(c);
    }
    free(call);
}

int rq_rpc_call(struct rq_rpc *r, const char *address, uint32_t method,
                const void *body, size_t len, unsigned timeout_ms,
                rq_rpc_done_cb cb, void *data)
{
    struct out_call *call;
    int rv;

    if (r->closing) {
        return RQ_SHUTDOWN;
    }
    if (len > RQ_RPC_MAX_FRAME - FRAME_FIXED) {
        return RQ_TOOBIG;
    }
    call = calloc(1, sizeof *call);
    if (call == NULL) {
        return RQ_NOMEM; /* UNTESTED: ENOMEM only. */
    }
    call->r = r;
    call->id = ++r->next_id;
    call->cb = cb;
    call->data = data;
    call->frame = frame_encode(FRAME_CALL, call->id, method, 0, body, len,
                               &call->frame_len);
    if (call->frame == NULL) {
        free(call); /* UNTESTED: ENOMEM only. */
        return RQ_NOMEM;
    }
    rv = rq_idmap_put(&r->calls, call->id, call);
    if (rv != 0) {
        free(call->frame); /* UNTESTED: ENOMEM only. */
        free(call);
        return rv;
    }
    uv_timer_init(r->loop, &call->timer);
    call->timer.data = call;
    r->refs++;
    uv_timer_start(&call->timer, on_call_timer,
                   timeout_ms != 0 ? timeout_ms : DEFAULT_TIMEOUT_MS, 0);

    call->peer = peer_get(r, address);
    if (call->peer == NULL) {
        rq_list_push(&r->lost_calls, &call->link);
        call_defer(call, RQ_CONNECT);
        return 0;
    }
    rq_list_push(&call->peer->calls, &call->link);
    if (call->peer->conn != NULL) {
        call_send(call);
    } else {
        peer_connect(call->peer);
    }
    return 0;
}

static void finish_all(struct rq_list *calls, int status)
{
    while (!rq_list_empty(calls)) {
        call_finish(RQ_LIST_ENTRY(calls->next, struct out_call, link), status,
                    NULL, 0);
    }
}

void rq_rpc_close(struct rq_rpc *r, void (*cb)(void *data), void *data)
{
    struct rq_list *e;

    assert(!r->closing);
    r->closing = true;
    r->close_cb = cb;
    r->close_data = data;
    rq_mux_set_rpc_handler(r->m, NULL, NULL);
    /* Held until the end, so nothing below frees @r under our feet. */
    r->refs++;

    /* Calls first: their callbacks may look at the rpc, which is whole. */
    for (e = r->peers.next; e != &r->peers; e = e->next) {
        finish_all(&RQ_LIST_ENTRY(e, struct peer, link)->calls, RQ_SHUTDOWN);
    }
    finish_all(&r->lost_calls, RQ_SHUTDOWN);

    /* Incoming calls stay the handler's to end; their replies go nowhere. */
    while (!rq_list_empty(&r->served)) {
        struct rq_rpc_call *call =
            RQ_LIST_ENTRY(r->served.next, struct rq_rpc_call, link);
        rq_list_remove(&call->link);
        call->r = NULL;
        conn_unref(call->conn);
        call->conn = NULL;
    }

    for (e = r->peers.next; e != &r->peers; e = e->next) {
        struct peer *p = RQ_LIST_ENTRY(e, struct peer, link);
        if (p->connecting) {
            rq_mux_connect_cancel(&p->creq);
        }
        if (p->conn != NULL) {
            conn_close(p->conn, "shutting down");
        }
    }
    while (!rq_list_empty(&r->server_conns)) {
        conn_close(RQ_LIST_ENTRY(r->server_conns.next, struct conn, link),
                   "shutting down");
    }
    r->refs--;
    rpc_maybe_free(r);
}

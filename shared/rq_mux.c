/*
 * The shared listener and the per-group raft_uv transports (contract in
 * rq_mux.h). This is the libuv adapter between raft_uv's transport
 * interface and one TCP port; it knows nothing of what the groups carry.
 *
 * Incoming side. Each accepted connection gets a struct incoming with a
 * fresh nonce from getrandom(2), and its challenge goes out at once with
 * uv_try_write: 40 bytes always fit the empty send buffer of a new socket,
 * and no write request is left in flight to outlive the struct once the
 * stream is handed on. The alloc callback then hands libuv exactly the
 * bytes still missing from the preamble, so the read that completes the
 * preamble can never swallow the first bytes of the raft (or RPC) stream
 * behind it. Once the preamble is complete the reader stops, the preamble
 * is checked against the nonce and the stream is handed on; raft_uv (or
 * rq_rpc) then starts reading it itself. Connections that fail the checks,
 * or do not finish their preamble within preamble_timeout_ms (a sweep timer
 * finds them), are closed and counted by reason; the log line for each
 * reason is rate-limited so a stranger cannot flood the log.
 *
 * Outgoing side. A struct conn dials one peer, raft's or rq_mux_connect()'s:
 *
 *     RESOLVING --getaddrinfo--> CONNECTING --connect--> CHALLENGED
 *               --challenge read--> WRITING --write--> DONE
 *
 *     RESOLVING  -> CONNECTING [on_resolved]      (skipped for numeric IPs)
 *     CONNECTING -> CHALLENGED [on_connected]     starts reading
 *     CHALLENGED -> WRITING    [on_challenge_read] stops reading
 *     WRITING    -> DONE       [on_written]       closes the timer
 *     any        -> FAILED     [conn_fail]        timeout, error or cancel
 *
 * Like the listener, the connector hands libuv exactly the bytes missing
 * from the challenge. The listener sends nothing more until it has checked
 * the preamble, so nothing of the stream is read here either way; and
 * raft_uv never reads its outgoing streams, while rq_rpc reads replies only
 * to calls it wrote after the handover.
 *
 * A conn ends (conn_finish: callback, then free) only when none of its
 * libuv handles and requests can call back any more: the timer is closed,
 * getaddrinfo has returned, and on failure the socket is closed. The connect
 * timer runs from the start, so a peer whose SYNs are dropped fails with a
 * timeout rather than after the kernel's minutes of retries.
 *
 * Lifetime of the mux: m->refs counts its own four handles, every incoming
 * connection and every conn. rq_mux_close() closes or cancels all of them;
 * the last one to go frees the mux (mux_maybe_free).
 */
#include "rq_mux.h"

#include <assert.h>
#include <errno.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/random.h>
#include <sys/socket.h>

#include "rq_err.h"
#include "rq_idmap.h"
#include "rq_list.h"
#include "rq_keys.h"
#include "rq_log.h"
#include "rq_metrics.h"
#include "rq_preamble.h"
#include "rq_tls.h"

#define LOG_TAG "rq_mux"

#define DEFAULT_CONNECT_TIMEOUT_MS 2000
#define DEFAULT_PREAMBLE_TIMEOUT_MS 5000
#define LISTEN_BACKLOG 1024
#define KEEPALIVE_S 15
/* TCP_USER_TIMEOUT of every connection: sent data unacknowledged this long
 * closes it (see tcp_tune). */
#define USER_TIMEOUT_MS 5000
/* Connections still sending their preamble; past this the oldest goes. */
#define MAX_INCOMING 1024
#define REJECT_LOG_INTERVAL_MS 1000
#define HOST_MAX 256
#define PORT_MAX 8
#define DEFAULT_WRITE_QUEUE_MAX (64ull << 20)
#define DEFAULT_WATCH_MS 1000
/* Streams over the write queue limit remembered from one look to the next. */
#define STUCK_MAX 64

static const char *const reject_labels[RQ_MUX_REJECT_COUNT] = {
#define REJECT_LABEL(id, label, text) label,
    RQ_MUX_REJECTS(REJECT_LABEL)
#undef REJECT_LABEL
};

static const char *const reject_names[RQ_MUX_REJECT_COUNT] = {
#define REJECT_TEXT(id, label, text) text,
    RQ_MUX_REJECTS(REJECT_TEXT)
#undef REJECT_TEXT
};

/* One rate limiter per reason: at most one line per interval, and the next
 * line says how many were suppressed in between. */
struct rate {
    bool logged;
    uint64_t last_ms;
    uint64_t suppressed;
};

/* A stream seen over the write queue limit. */
struct stuck {
    const uv_stream_t *stream;
    size_t queued;
};

struct rq_mux {
    uv_loop_t *loop;
    uv_tcp_t listener;
    uv_timer_t sweep; /* Closes incoming connections past their deadline. */
    uv_timer_t defer; /* Runs deferred transport close callbacks. */
    uv_timer_t watch; /* Cuts streams whose writes pile up. */
    uint64_t write_queue_max;
    unsigned watch_ms;
    struct stuck stuck[STUCK_MAX]; /* Over the limit at the last look. */
    size_t n_stuck;
    uint8_t key[RQ_KEY_SIZE]; /* RQ_KEY_RAFT of the cluster secret. */
    struct rq_tls *tls;       /* Borrowed; NULL without TLS. */
    uint64_t cluster_id;
    uint64_t self_id;
    char advertise[RQ_PREAMBLE_ADDR];
    unsigned connect_timeout_ms;
    unsigned preamble_timeout_ms;
    struct rq_idmap groups;  /* gid -> struct group, live ones only. */
    struct rq_list incoming; /* Oldest first. */
    unsigned n_incoming;
    struct rq_list rpc_connects;  /* conns of rq_mux_connect(). */
    struct rq_list closed_groups; /* Close callbacks waiting for defer. */
    rq_mux_rpc_cb rpc_cb;
    void *rpc_data;
    struct rq_mux_stats stats;
    struct rate rates[RQ_MUX_REJECT_COUNT];
    struct rate bad_challenge; /* Outgoing: a listener's bad challenge. */
    /* The published stats (rq_mux_metrics_open), set at each rendering. */
    struct rq_metrics *registry;
    struct rq_metric *m_accepted;
    struct rq_metric *m_rejected[RQ_MUX_REJECT_COUNT];
    struct rq_metric *m_connects;
    struct rq_metric *m_connect_errs;
    struct rq_metric *m_cut;
    unsigned refs;
    bool closing;
    void (*close_cb)(void *data);
    void *close_data;
};

/* The impl of one group's raft_uv_transport. */
struct group {
    struct rq_mux *m;
    struct raft_uv_transport *t;
    uint64_t gid;
    raft_id id;                     /* From init(). */
    char address[RQ_PREAMBLE_ADDR]; /* From init(). */
    raft_uv_accept_cb accept_cb;    /* From listen(). */
    bool registered;                /* In m->groups. */
    bool closing;                   /* close() was called. */
    raft_uv_transport_close_cb close_cb;
    struct rq_list connects;   /* conns not yet finished. */
    struct rq_list defer_link; /* In m->closed_groups. */
};

struct incoming {
    struct rq_mux *m;
    uv_tcp_t *tcp; /* raft_malloc'd: raft_uv may end up owning it. */
    struct rq_list link;
    uint64_t since_ms;
    size_t got;
    uint8_t nonce[RQ_NONCE_SIZE]; /* Of the challenge we sent. */
    uint8_t buf[RQ_PREAMBLE_SIZE];
};

struct conn {
    struct rq_mux *m;
    struct group *g; /* Raft connects; NULL otherwise. */
    struct raft_uv_connect *raft_req;
    struct rq_mux_connect *req; /* rq_mux_connect() requests. */
    rq_mux_connect_cb cb;
    struct rq_list link; /* In g->connects or m->rpc_connects. */
    char *target;        /* Peer address, for logs. */
    uint64_t gid;
    uv_getaddrinfo_t gai;
    struct addrinfo *ai_head; /* Lookup results, owned; NULL if numeric. */
    struct addrinfo *ai_cur;  /* The address being dialed. */
    uv_tcp_t *tcp;            /* raft_malloc'd. */
    uv_connect_t connect;
    uv_write_t write;
    uv_timer_t timer;
    bool resolving; /* getaddrinfo may still call back. */
    bool timer_open;
    bool tcp_open;        /* Initialized and not yet closed. */
    bool done;            /* Preamble written. */
    int status;           /* First failure, RQ_*; 0 if none. */
    struct rq_preamble p; /* Ours, but for the challenge to answer. */
    size_t got;           /* Bytes of the challenge read. */
    uint8_t challenge[RQ_CHALLENGE_SIZE];
    uint8_t pre[RQ_PREAMBLE_SIZE];
};

/* ---- Helpers ---- */

/* Splits "host:port" or "[v6]:port". The port must be numeric. */
static int split_address(const char *address, char host[HOST_MAX],
                         char port[PORT_MAX])
{
    const char *colon;
    const char *h = address;
    size_t hlen;

    if (address[0] == '[') {
        const char *end = strchr(address, ']');
        if (end == NULL || end[1] != ':') {
            return RQ_INVALID;
        }
        h = address + 1;
        hlen = (size_t)(end - h);
        colon = end + 1;
    } else {
        colon = strrchr(address, ':');
        if (colon == NULL) {
            return RQ_INVALID;
        }
        hlen = (size_t)(colon - address);
    }
    const char *p = colon + 1;
    size_t plen = strlen(p);
    if (hlen >= HOST_MAX || plen == 0 || plen >= PORT_MAX) {
        return RQ_INVALID;
    }
    for (size_t i = 0; i < plen; i++) {
        if (p[i] < '0' || p[i] > '9') {
            return RQ_INVALID;
        }
    }
    if (atoi(p) > 65535) {
        return RQ_INVALID;
    }
    memcpy(host, h, hlen);
    host[hlen] = '\0';
    memcpy(port, p, plen + 1);
    return 0;
}

/* Whether @s may travel in a preamble's address field. */
static bool printable(const char *s)
{
    for (; *s != '\0'; s++) {
        if (*s < 0x20 || *s > 0x7e) {
            return false;
        }
    }
    return true;
}

static void peer_name(uv_tcp_t *tcp, char *out, size_t n)
{
    struct sockaddr_storage ss;
    int len = sizeof ss;
    char ip[64] = "?";
    int port = 0;

    snprintf(out, n, "unknown peer");
    if (uv_tcp_getpeername(tcp, (struct sockaddr *)&ss, &len) != 0) {
        return;
    }
    if (ss.ss_family == AF_INET) {
        struct sockaddr_in *a = (struct sockaddr_in *)&ss;
        uv_ip4_name(a, ip, sizeof ip);
        port = ntohs(a->sin_port);
        snprintf(out, n, "%s:%d", ip, port);
    } else if (ss.ss_family == AF_INET6) {
        struct sockaddr_in6 *a = (struct sockaddr_in6 *)&ss;
        uv_ip6_name(a, ip, sizeof ip);
        port = ntohs(a->sin6_port);
        snprintf(out, n, "[%s]:%d", ip, port);
    }
}

static void mux_maybe_free(struct rq_mux *m)
{
    if (!m->closing || m->refs > 0) {
        return;
    }
    void (*cb)(void *) = m->close_cb;
    void *data = m->close_data;
    assert(m->groups.count == 0);
    rq_idmap_close(&m->groups);
    free(m);
    if (cb != NULL) {
        cb(data);
    }
}

static void on_mux_handle_closed(uv_handle_t *h)
{
    struct rq_mux *m = h->data;
    m->refs--;
    mux_maybe_free(m);
}

/* Whether a line may be logged through @r now; if so, *@suppressed says
 * how many were held back since the last one. */
static bool rate_pass(struct rate *r, uint64_t now, uint64_t *suppressed)
{
    if (r->logged && now - r->last_ms < REJECT_LOG_INTERVAL_MS) {
        r->suppressed++;
        return false;
    }
    *suppressed = r->suppressed;
    r->logged = true;
    r->last_ms = now;
    r->suppressed = 0;
    return true;
}

/* ---- Incoming connections ---- */

const char *rq_mux_reject_label(enum rq_mux_reject r)
{
    assert(r < RQ_MUX_REJECT_COUNT);
    return reject_labels[r];
}

/* Counts a refusal for @reason and logs it, rate-limited. */
static void log_reject(struct rq_mux *m, enum rq_mux_reject reason,
                       const char *peer, const char *detail)
{
    uint64_t suppressed;
    /* A peer that connects and closes without a byte is a port probe or
     * a health check, not an attack: worth a debug line at most. */
    enum rq_log_level level = reason == RQ_MUX_REJECT_EOF ? RQ_DEBUG : RQ_WARN;

    m->stats.rejected++;
    m->stats.rejected_by[reason]++;
    if (!rq_log_enabled(level) ||
        !rate_pass(&m->rates[reason], uv_now(m->loop), &suppressed)) {
        return;
    }
    if (suppressed > 0) {
        rq_log(
            level, "rejected connection from %s: %s: %s (%llu more suppressed)",
            peer, reject_names[reason], detail, (unsigned long long)suppressed);
    } else {
        rq_log(level, "rejected connection from %s: %s: %s", peer,
               reject_names[reason], detail);
    }
}

static void on_incoming_closed(uv_handle_t *h)
{
    struct incoming *in = h->data;
    struct rq_mux *m = in->m;
    raft_free(in->tcp);
    free(in);
    m->refs--;
    mux_maybe_free(m);
}

static void incoming_unlink(struct incoming *in)
{
    rq_list_remove(&in->link);
    in->m->n_incoming--;
}

/* Closes @in, counting it as rejected and logging @reason. */
static void incoming_reject(struct incoming *in, enum rq_mux_reject reason,
                            const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

static void incoming_reject(struct incoming *in, enum rq_mux_reject reason,
                            const char *fmt, ...)
{
    struct rq_mux *m = in->m;
    char detail[256];
    char peer[96];
    va_list ap;

    va_start(ap, fmt);
    vsnprintf(detail, sizeof detail, fmt, ap);
    va_end(ap);
    peer_name(in->tcp, peer, sizeof peer);
    log_reject(m, reason, peer, detail);
    incoming_unlink(in);
    uv_close((uv_handle_t *)in->tcp, on_incoming_closed);
}

/* Gives the stream of @in away. The incoming struct itself goes; the
 * stream's data pointer is cleared for its new owner. */
static uv_stream_t *incoming_release(struct incoming *in)
{
    uv_stream_t *stream = (uv_stream_t *)in->tcp;
    struct rq_mux *m = in->m;
    incoming_unlink(in);
    free(in);
    stream->data = NULL;
    m->stats.accepted++;
    return stream;
}

/*
 * The preamble is complete: check it and route the stream. Only the group
 * (or RPC service) the preamble names, in the cluster it names, ever gets
 * the stream; Raft messages carry no group id, so the stream stays bound to
 * that group for its whole life.
 */
static void incoming_dispatch(struct incoming *in)
{
    struct rq_mux *m = in->m;
    struct rq_preamble p;
    char why[128];
    uv_stream_t *stream;
    int rv;

    rv = rq_preamble_decode(in->buf, m->key, in->nonce, &p, why, sizeof why);
    if (rv != 0) {
        incoming_reject(in,
                        rv == RQ_AUTH       ? RQ_MUX_REJECT_AUTH
                        : rv == RQ_REPLAYED ? RQ_MUX_REJECT_REPLAYED
                                            : RQ_MUX_REJECT_MALFORMED,
                        "%s", why);
        return;
    }
    if (p.cluster_id != m->cluster_id) {
        incoming_reject(in, RQ_MUX_REJECT_CLUSTER,
                        "cluster id %llu from %s, ours is %llu",
                        (unsigned long long)p.cluster_id, p.address,
                        (unsigned long long)m->cluster_id);
        return;
    }

    if (p.kind == RQ_STREAM_RAFT) {
        struct group *g = rq_idmap_get(&m->groups, p.group_id);
        if (g == NULL || g->closing || g->accept_cb == NULL) {
            incoming_reject(in, RQ_MUX_REJECT_GROUP,
                            "group %llu from server %llu at %s",
                            (unsigned long long)p.group_id,
                            (unsigned long long)p.sender_id, p.address);
            return;
        }
        stream = incoming_release(in);
        g->accept_cb(g->t, p.sender_id, p.address, stream);
    } else {
        assert(p.kind == RQ_STREAM_RPC);
        if (m->rpc_cb == NULL) {
            incoming_reject(in, RQ_MUX_REJECT_NO_RPC, "from server %llu at %s",
                            (unsigned long long)p.sender_id, p.address);
            return;
        }
        stream = incoming_release(in);
        m->rpc_cb(m->rpc_data, p.sender_id, p.address, p.group_id, stream);
    }
    /* The ref goes last: the callbacks above may have called
     * rq_mux_close(). */
    m->refs--;
    mux_maybe_free(m);
}

/* Hands libuv exactly the missing part of the preamble, never more. */
static void on_incoming_alloc(uv_handle_t *h, size_t suggested, uv_buf_t *buf)
{
    struct incoming *in = h->data;
    (void)suggested;
    buf->base = (char *)in->buf + in->got;
    buf->len = RQ_PREAMBLE_SIZE - in->got;
}

static void on_incoming_read(uv_stream_t *stream, ssize_t nread,
                             const uv_buf_t *buf)
{
    struct incoming *in = stream->data;
    (void)buf;
    if (nread == 0) {
        return; /* EAGAIN. */
    }
    if (nread < 0) {
        if (nread == UV_EOF) {
            incoming_reject(
                in, in->got == 0 ? RQ_MUX_REJECT_EOF : RQ_MUX_REJECT_MALFORMED,
                "EOF after %zu of %d bytes", in->got, RQ_PREAMBLE_SIZE);
        } else if (nread == UV_ECONNRESET && in->got == 0) {
            /* A peer that closes with our challenge unread resets the
             * connection: a probe, or a connect given up (a peer shutting
             * down), no different from a close. */
            incoming_reject(in, RQ_MUX_REJECT_EOF, "reset before a byte");
        } else {
            incoming_reject(in, RQ_MUX_REJECT_READ, "%s",
                            uv_strerror((int)nread));
        }
        return;
    }
    in->got += (size_t)nread;
    assert(in->got <= RQ_PREAMBLE_SIZE);
    if (in->got < RQ_PREAMBLE_SIZE) {
        return;
    }
    /* Stopping here also ends libuv's read loop for this callback round, so
     * no byte after the preamble is consumed by us. */
    uv_read_stop(stream);
    incoming_dispatch(in);
}

static void on_sweep(uv_timer_t *timer)
{
    struct rq_mux *m = timer->data;
    uint64_t now = uv_now(m->loop);

    while (!rq_list_empty(&m->incoming)) {
        struct incoming *in =
            RQ_LIST_ENTRY(m->incoming.next, struct incoming, link);
        if (now - in->since_ms < m->preamble_timeout_ms) {
            break; /* The list is oldest first. */
        }
        incoming_reject(in, RQ_MUX_REJECT_TIMEOUT,
                        "%zu of %d bytes after %u ms", in->got,
                        RQ_PREAMBLE_SIZE, m->preamble_timeout_ms);
    }
    if (rq_list_empty(&m->incoming)) {
        uv_timer_stop(&m->sweep);
    }
}

/* ---- Streams that stopped draining ---- */

struct watch_walk {
    struct rq_mux *m;
    struct stuck next[STUCK_MAX];
    size_t n;
};

/* Shuts stream @s down in both directions: its pending writes fail and its
 * owner closes it. */
static void cut_stream(struct rq_mux *m, uv_stream_t *s, size_t queued)
{
    struct sockaddr_storage ss;
    socklen_t len = sizeof ss;
    char peer[64] = "?";
    uv_os_fd_t fd;

    if (uv_fileno((uv_handle_t *)s, &fd) != 0) {
        return;
    }
    if (getpeername(fd, (struct sockaddr *)&ss, &len) == 0) {
        int port = 0;
        if (ss.ss_family == AF_INET) {
            const struct sockaddr_in *a = (const struct sockaddr_in *)&ss;
            uv_ip4_name(a, peer, sizeof peer);
            port = ntohs(a->sin_port);
        } else if (ss.ss_family == AF_INET6) {
            const struct sockaddr_in6 *a = (const struct sockaddr_in6 *)&ss;
            uv_ip6_name(a, peer, sizeof peer);
            port = ntohs(a->sin6_port);
        }
        size_t n = strlen(peer);
        snprintf(peer + n, sizeof peer - n, ":%d", port);
    }
    if (shutdown(fd, SHUT_RDWR) != 0) {
        if (errno == ENOTCONN) {
            return; /* Cut already; its owner has not closed it yet. */
        }
        rq_log(RQ_WARN, "shutdown of a stream to %s: %s", peer,
               strerror(errno));
        return;
    }
    m->stats.cut++;
    rq_log(RQ_WARN,
           "cut the stream to %s: %zu bytes queued for writing and not "
           "draining (the peer stopped reading)",
           peer, queued);
}

static void watch_one(uv_handle_t *h, void *arg)
{
    struct watch_walk *w = arg;
    struct rq_mux *m = w->m;

    if (h->type != UV_TCP || uv_is_closing(h) ||
        h == (uv_handle_t *)&m->listener) {
        return;
    }
    uv_stream_t *s = (uv_stream_t *)h;
    size_t queued = s->write_queue_size;
    if (queued <= m->write_queue_max) {
        return;
    }
    for (size_t i = 0; i < m->n_stuck; i++) {
        if (m->stuck[i].stream == s && queued >= m->stuck[i].queued) {
            cut_stream(m, s, queued);
            return;
        }
    }
    if (w->n < STUCK_MAX) {
        w->next[w->n++] = (struct stuck){s, queued};
    }
}

static void on_watch(uv_timer_t *timer)
{
    struct rq_mux *m = timer->data;
    struct watch_walk w = {.m = m, .n = 0};

    uv_walk(m->loop, watch_one, &w);
    memcpy(m->stuck, w.next, w.n * sizeof w.next[0]);
    m->n_stuck = w.n;
}

/*
 * Draws @in's nonce and writes its challenge, whole, without a write
 * request (see the top of the file). Returns 0, or -1 after rejecting @in.
 */
static int challenge_send(struct incoming *in)
{
    uint8_t buf[RQ_CHALLENGE_SIZE];
    ssize_t n;
    int rv;

    /* Up to 256 bytes, getrandom(2) returns all or fails; it blocks only
     * before the kernel's pool is first seeded, early in boot. */
    n = getrandom(in->nonce, sizeof in->nonce, 0);
    if (n != (ssize_t)sizeof in->nonce) {
        incoming_reject(in, RQ_MUX_REJECT_CHALLENGE, "getrandom: %s",
                        n < 0 ? strerror(errno) : "short read");
        return -1; /* UNTESTED: getrandom(2) does not fail here. */
    }
    rq_challenge_encode(in->nonce, buf);
    uv_buf_t b = uv_buf_init((char *)buf, sizeof buf);
    rv = uv_try_write((uv_stream_t *)in->tcp, &b, 1);
    if (rv == RQ_CHALLENGE_SIZE) {
        return 0;
    }
    if (rv == UV_EPIPE || rv == UV_ECONNRESET) {
        /* Gone already: a port probe, like one that closes at once. */
        incoming_reject(in, RQ_MUX_REJECT_EOF, "gone before the challenge: %s",
                        uv_strerror(rv));
    } else {
        incoming_reject(in, RQ_MUX_REJECT_CHALLENGE, "%s",
                        rv < 0 ? uv_strerror(rv) : "short write");
    }
    return -1;
}

/* Puts *@tcp behind a TLS relay: *@tcp becomes the relay's plaintext
 * stream (from raft_malloc(), with the same data pointer), and the relay
 * owns and frees the TCP handle. Nothing has been read or written yet, so
 * the challenge, the preamble and everything after them travel inside
 * TLS. */
static int tls_wrap(struct rq_mux *m, uv_tcp_t **tcp, enum rq_tls_role role,
                    const char *host, char *why, size_t whyn)
{
    uv_tcp_t *plain = raft_malloc(sizeof *plain);
    void *data = (*tcp)->data;
    int rv;

    if (plain == NULL) {
        rq_why(why, whyn, "out of memory"); /* UNTESTED: ENOMEM only. */
        return RQ_NOMEM;
    }
    rv = rq_tls_wrap(m->tls, *tcp, raft_free, role, host, plain, why, whyn);
    if (rv != 0) {
        raft_free(plain); /* UNTESTED: socketpair() failing only. */
        return rv;
    }
    plain->data = data;
    *tcp = plain;
    return 0;
}

/*
 * Options of every Raft and RPC connection, either end: no Nagle delay,
 * keepalive for idle ones, and a TCP user timeout. A peer cut off (a
 * partition, a dead host) leaves a stream whose writes still succeed into
 * the kernel's buffer while TCP retransmits with growing gaps: after a cut
 * of twenty seconds the next retransmission can be a minute away, so the
 * stream stays silent long after the network heals, and with libraft 0.22
 * sending a follower at most 32 unacknowledged entries its queue never
 * grows enough for the stall watch below to see it. With the user timeout
 * the kernel closes such a connection once data has gone unacknowledged for
 * USER_TIMEOUT_MS, and the groups dial again.
 */
static void tcp_tune(uv_tcp_t *tcp)
{
    uv_os_fd_t fd;
    unsigned ms = USER_TIMEOUT_MS;
    uv_tcp_nodelay(tcp, 1);
    uv_tcp_keepalive(tcp, 1, KEEPALIVE_S);
    if (uv_fileno((uv_handle_t *)tcp, &fd) == 0 &&
        setsockopt(fd, IPPROTO_TCP, TCP_USER_TIMEOUT, &ms, sizeof ms) != 0) {
        rq_log(RQ_WARN, "TCP_USER_TIMEOUT: %s", strerror(errno));
    }
}

static void on_connection(uv_stream_t *server, int status)
{
    struct rq_mux *m = server->data;
    struct incoming *in;
    int rv;

    if (status < 0) {
        log_reject(m, RQ_MUX_REJECT_ACCEPT, "?", uv_strerror(status));
        return;
    }
    in = malloc(sizeof *in);
    if (in == NULL) {
        return; /* UNTESTED: ENOMEM only; the peer stays in the backlog. */
    }
    in->tcp = raft_malloc(sizeof *in->tcp);
    if (in->tcp == NULL) {
        free(in); /* UNTESTED: ENOMEM only. */
        return;
    }
    in->m = m;
    in->got = 0;
    in->since_ms = uv_now(m->loop);
    rv = uv_tcp_init(m->loop, in->tcp);
    assert(rv == 0); /* Without a socket yet, it cannot fail. */
    in->tcp->data = in;
    rq_list_push(&m->incoming, &in->link);
    m->n_incoming++;
    m->refs++;

    rv = uv_accept(server, (uv_stream_t *)in->tcp);
    if (rv != 0) {
        incoming_reject(in, RQ_MUX_REJECT_ACCEPT, "%s", uv_strerror(rv));
        return;
    }
    tcp_tune(in->tcp);
    if (m->tls != NULL) {
        /* The challenge below is written to the relay's plaintext end,
         * which keeps it until the handshake is done. */
        char why[128];
        rv = tls_wrap(m, &in->tcp, RQ_TLS_SERVER, NULL, why, sizeof why);
        if (rv != 0) {
            incoming_reject(in, RQ_MUX_REJECT_ACCEPT, "%s", why);
            return;
        }
    }
    rv = challenge_send(in);
    if (rv != 0) {
        return;
    }
    rv = uv_read_start((uv_stream_t *)in->tcp, on_incoming_alloc,
                       on_incoming_read);
    if (rv != 0) {
        incoming_reject(in, RQ_MUX_REJECT_READ, "%s", uv_strerror(rv));
        return;
    }
    if (m->n_incoming > MAX_INCOMING) {
        struct incoming *old =
            RQ_LIST_ENTRY(m->incoming.next, struct incoming, link);
        incoming_reject(old, RQ_MUX_REJECT_OVERLOAD,
                        "%u connections without preamble", m->n_incoming);
    }
    if (!uv_is_active((uv_handle_t *)&m->sweep)) {
        unsigned every = m->preamble_timeout_ms / 4;
        uv_timer_start(&m->sweep, on_sweep, every, every > 0 ? every : 1);
    }
}

/* ---- Outgoing connections ---- */

static void on_conn_tcp_redial(uv_handle_t *h);

static void conn_finish(struct conn *c)
{
    struct rq_mux *m = c->m;
    struct group *g = c->g;
    uv_stream_t *stream = c->status == 0 ? (uv_stream_t *)c->tcp : NULL;
    int status = c->status;

    assert(!c->resolving && !c->timer_open);
    assert(status != 0 ? !c->tcp_open : c->done);
    rq_list_remove(&c->link);
    uv_freeaddrinfo(c->ai_head);
    if (status == 0) {
        m->stats.connects++;
        stream->data = NULL;
    } else if (status != RQ_CANCELED) {
        m->stats.connect_errs++;
    }

    if (g != NULL) {
        struct raft_uv_connect *req = c->raft_req;
        free(c->target);
        free(c);
        req->cb(req, stream,
                status == 0             ? 0
                : status == RQ_CANCELED ? RAFT_CANCELED
                                        : RAFT_NOCONNECTION);
        /* The last pending connect of a closing group releases it. */
        if (g->closing && rq_list_empty(&g->connects) && g->close_cb != NULL) {
            raft_uv_transport_close_cb cb = g->close_cb;
            g->close_cb = NULL;
            cb(g->t);
        }
    } else {
        struct rq_mux_connect *req = c->req;
        rq_mux_connect_cb cb = c->cb;
        free(c->target);
        free(c);
        req->impl = NULL;
        cb(req, stream, status);
    }
    m->refs--;
    mux_maybe_free(m);
}

static void conn_maybe_finish(struct conn *c)
{
    if (c->resolving || c->timer_open) {
        return;
    }
    if (c->status != 0 ? c->tcp_open : !c->done) {
        return;
    }
    conn_finish(c);
}

static void on_conn_timer_closed(uv_handle_t *h)
{
    struct conn *c = h->data;
    c->timer_open = false;
    conn_maybe_finish(c);
}

static void on_conn_tcp_closed(uv_handle_t *h)
{
    struct conn *c = h->data;
    raft_free(c->tcp);
    c->tcp = NULL;
    c->tcp_open = false;
    conn_maybe_finish(c);
}

/* Moves @c to FAILED with @status (the first failure wins) and closes
 * whatever it holds. Never finishes @c by itself: the callbacks of the
 * handles it closes do, so it is safe to call while walking a list. */
static void conn_fail(struct conn *c, int status)
{
    if (c->status != 0) {
        return;
    }
    c->status = status;
    if (status != RQ_CANCELED) {
        rq_log(RQ_DEBUG, "connect to %s (group %llu) failed: %s", c->target,
               (unsigned long long)c->gid, rq_strerror(status));
    }
    if (c->resolving) {
        /* If the lookup already runs in the pool this fails and we wait for
         * it to return; on_resolved then sees the failure. */
        uv_cancel((uv_req_t *)&c->gai);
    }
    if (c->tcp_open && !uv_is_closing((uv_handle_t *)c->tcp)) {
        uv_close((uv_handle_t *)c->tcp, on_conn_tcp_closed);
    }
    if (c->timer_open && !uv_is_closing((uv_handle_t *)&c->timer)) {
        uv_close((uv_handle_t *)&c->timer, on_conn_timer_closed);
    }
}

static void on_conn_timeout(uv_timer_t *timer)
{
    conn_fail(timer->data, RQ_TIMEOUT);
}

static void on_written(uv_write_t *w, int status)
{
    struct conn *c = w->data;
    if (c->status != 0) {
        return; /* Failed meanwhile; the socket's close callback finishes. */
    }
    if (status != 0) {
        conn_fail(c, RQ_CONNECT);
        return;
    }
    c->done = true;
    uv_close((uv_handle_t *)&c->timer, on_conn_timer_closed);
}

/* A listener's challenge we cannot answer: worth a warning (a peer of
 * another version, or not a raftq port at all), rate-limited since raft_uv
 * redials every connect_retry_delay. */
static void log_bad_challenge(struct conn *c, const char *why)
{
    uint64_t suppressed;
    if (!rate_pass(&c->m->bad_challenge, uv_now(c->m->loop), &suppressed)) {
        return;
    }
    if (suppressed > 0) {
        rq_log(RQ_WARN, "connect to %s (group %llu): %s (%llu more suppressed)",
               c->target, (unsigned long long)c->gid, why,
               (unsigned long long)suppressed);
    } else {
        rq_log(RQ_WARN, "connect to %s (group %llu): %s", c->target,
               (unsigned long long)c->gid, why);
    }
}

/* Hands libuv exactly the missing part of the challenge, never more. */
static void on_challenge_alloc(uv_handle_t *h, size_t suggested, uv_buf_t *buf)
{
    struct conn *c = h->data;
    (void)suggested;
    buf->base = (char *)c->challenge + c->got;
    buf->len = RQ_CHALLENGE_SIZE - c->got;
}

/* CHALLENGED -> WRITING: answers the challenge with our preamble. */
static void on_challenge_read(uv_stream_t *stream, ssize_t nread,
                              const uv_buf_t *buf)
{
    struct conn *c = stream->data;
    char why[128];
    int rv;
    (void)buf;

    if (c->status != 0 || nread == 0) {
        return; /* Failed meanwhile, or EAGAIN. */
    }
    if (nread < 0) {
        /* The listener closed: a refused preamble of ours earlier, a full
         * backlog, or not a raftq port. raft_uv retries. */
        rq_log(RQ_DEBUG, "connect to %s: %s after %zu of %d challenge bytes",
               c->target, uv_strerror((int)nread), c->got, RQ_CHALLENGE_SIZE);
        conn_fail(c, RQ_CONNECT);
        return;
    }
    c->got += (size_t)nread;
    assert(c->got <= RQ_CHALLENGE_SIZE);
    if (c->got < RQ_CHALLENGE_SIZE) {
        return;
    }
    /* As on the listener: no byte after the challenge is ours to read. */
    uv_read_stop(stream);
    rv = rq_challenge_decode(c->challenge, c->p.challenge, why, sizeof why);
    if (rv != 0) {
        log_bad_challenge(c, why);
        conn_fail(c, RQ_CONNECT);
        return;
    }
    rv = rq_preamble_encode(&c->p, c->m->key, c->pre);
    assert(rv == 0); /* conn_start() encoded it once already. */
    uv_buf_t b = uv_buf_init((char *)c->pre, RQ_PREAMBLE_SIZE);
    rv = uv_write(&c->write, stream, &b, 1, on_written);
    if (rv != 0) {
        conn_fail(c, RQ_CONNECT);
    }
}

/* CONNECTING -> CHALLENGED: waits for the listener's challenge. */
static void on_connected(uv_connect_t *req, int status)
{
    struct conn *c = req->data;
    int rv;

    if (c->status != 0) {
        return;
    }
    if (status != 0) {
        /* A name may resolve to several addresses (IPv6 and IPv4, or several
         * pods): try the next one on the same deadline. */
        if (c->ai_cur != NULL && c->ai_cur->ai_next != NULL) {
            c->ai_cur = c->ai_cur->ai_next;
            uv_close((uv_handle_t *)c->tcp, on_conn_tcp_redial);
            return;
        }
        conn_fail(c, RQ_CONNECT);
        return;
    }
    if (c->m->tls != NULL) {
        /* The peer's certificate must name the host we dialed. The
         * challenge arrives through the relay once the handshake is done;
         * a failed handshake shows as the stream closing (logged by
         * rq_tls). */
        char host[HOST_MAX], port[PORT_MAX], why[128];
        rv = split_address(c->target, host, port);
        if (rv == 0) {
            rv = tls_wrap(c->m, &c->tcp, RQ_TLS_CLIENT, host, why, sizeof why);
        }
        if (rv != 0) {
            conn_fail(c, RQ_CONNECT);
            return;
        }
    }
    rv = uv_read_start((uv_stream_t *)c->tcp, on_challenge_alloc,
                       on_challenge_read);
    if (rv != 0) {
        conn_fail(c, RQ_CONNECT); /* UNTESTED: a fresh socket reads. */
    }
}

static void conn_dial(struct conn *c, const struct sockaddr *addr);

/* The socket that failed to connect is closed: dial the next address. */
static void on_conn_tcp_redial(uv_handle_t *h)
{
    struct conn *c = h->data;
    raft_free(c->tcp);
    c->tcp = NULL;
    c->tcp_open = false;
    if (c->status != 0) {
        conn_maybe_finish(c);
        return;
    }
    conn_dial(c, c->ai_cur->ai_addr);
}

static void conn_dial(struct conn *c, const struct sockaddr *addr)
{
    int rv;
    c->tcp = raft_malloc(sizeof *c->tcp);
    if (c->tcp == NULL) {
        conn_fail(c, RQ_CONNECT); /* UNTESTED: ENOMEM only. */
        return;
    }
    rv = uv_tcp_init(c->m->loop, c->tcp);
    assert(rv == 0);
    c->tcp->data = c;
    c->tcp_open = true;
    rv = uv_tcp_connect(&c->connect, c->tcp, addr, on_connected);
    if (rv == 0) {
        tcp_tune(c->tcp); /* libuv has made the socket by now. */
    }
    if (rv != 0) {
        conn_fail(c, RQ_CONNECT);
    }
}

static void on_resolved(uv_getaddrinfo_t *gai, int status, struct addrinfo *res)
{
    struct conn *c = gai->data;
    c->resolving = false;
    if (c->status != 0) {
        uv_freeaddrinfo(res);
        conn_maybe_finish(c);
        return;
    }
    if (status != 0 || res == NULL) {
        uv_freeaddrinfo(res);
        conn_fail(c, RQ_CONNECT);
        return;
    }
    c->ai_head = res;
    c->ai_cur = res;
    conn_dial(c, res->ai_addr);
}

/*
 * Starts dialing @target. Returns RQ_INVALID, RQ_NOMEM or 0; once it
 * returned 0 the outcome, even an immediate failure, comes through
 * conn_finish() from a later callback.
 */
static int conn_start(struct conn *c, struct rq_mux *m, uint64_t kind,
                      uint64_t gid, uint64_t sender_id, const char *sender,
                      const char *target)
{
    char host[HOST_MAX];
    char port[PORT_MAX];
    union {
        struct sockaddr sa;
        struct sockaddr_in in4;
        struct sockaddr_in6 in6;
    } addr;
    int rv;

    rv = split_address(target, host, port);
    if (rv != 0) {
        return rv;
    }
    /* Encoded now with a zero challenge only to refuse a bad address at
     * once; on_challenge_read() encodes it again with the real one. */
    memset(&c->p, 0, sizeof c->p);
    c->p.version = RQ_PREAMBLE_VERSION;
    c->p.kind = (uint16_t)kind;
    c->p.cluster_id = m->cluster_id;
    c->p.group_id = gid;
    c->p.sender_id = sender_id;
    snprintf(c->p.address, sizeof c->p.address, "%s", sender);
    rv = rq_preamble_encode(&c->p, m->key, c->pre);
    if (rv != 0) {
        return rv;
    }
    c->target = strdup(target);
    if (c->target == NULL) {
        return RQ_NOMEM; /* UNTESTED: ENOMEM only. */
    }

    c->m = m;
    c->gid = gid;
    c->tcp = NULL;
    c->ai_head = NULL;
    c->ai_cur = NULL;
    c->resolving = false;
    c->tcp_open = false;
    c->done = false;
    c->status = 0;
    c->got = 0;
    c->gai.data = c;
    c->connect.data = c;
    c->write.data = c;
    rv = uv_timer_init(m->loop, &c->timer);
    assert(rv == 0);
    c->timer.data = c;
    c->timer_open = true;
    uv_timer_start(&c->timer, on_conn_timeout, m->connect_timeout_ms, 0);
    m->refs++;

    /* A numeric address needs no lookup: skip the thread pool, which raft
     * also uses for disk work. */
    if (uv_ip4_addr(host, atoi(port), &addr.in4) == 0 ||
        uv_ip6_addr(host, atoi(port), &addr.in6) == 0) {
        conn_dial(c, &addr.sa);
        return 0;
    }
    struct addrinfo hints;
    memset(&hints, 0, sizeof hints);
    hints.ai_family = AF_UNSPEC;
    hints.ai_socktype = SOCK_STREAM;
    hints.ai_flags = AI_NUMERICSERV;
    c->resolving = true;
    rv = uv_getaddrinfo(m->loop, &c->gai, on_resolved, host, port, &hints);
    if (rv != 0) {
        c->resolving = false;
        conn_fail(c, RQ_CONNECT);
    }
    return 0;
}

/* ---- The raft_uv_transport of one group ---- */

static int transport_init(struct raft_uv_transport *t, raft_id id,
                          const char *address)
{
    struct group *g = t->impl;
    size_t n = strlen(address);
    /* The address travels in every preamble of the group: check it once
     * here rather than fail every connect. */
    if (n >= sizeof g->address) {
        snprintf(t->errmsg, sizeof t->errmsg,
                 "address \"%.40s...\" longer than %d characters", address,
                 RQ_PREAMBLE_ADDR - 1);
        return RAFT_INVALID;
    }
    if (!printable(address)) {
        snprintf(t->errmsg, sizeof t->errmsg,
                 "address has a non-printable byte");
        return RAFT_INVALID;
    }
    g->id = id;
    memcpy(g->address, address, n + 1);
    return 0;
}

static int transport_listen(struct raft_uv_transport *t, raft_uv_accept_cb cb)
{
    struct group *g = t->impl;
    g->accept_cb = cb;
    return 0;
}

static int transport_connect(struct raft_uv_transport *t,
                             struct raft_uv_connect *req, raft_id id,
                             const char *address, raft_uv_connect_cb cb)
{
    struct group *g = t->impl;
    struct conn *c;
    int rv;
    (void)id;

    if (g->closing || g->m->closing) {
        snprintf(t->errmsg, sizeof t->errmsg, "transport is closing");
        return RAFT_NOCONNECTION;
    }
    c = malloc(sizeof *c);
    if (c == NULL) {
        return RAFT_NOMEM; /* UNTESTED: ENOMEM only. */
    }
    c->g = g;
    c->raft_req = req;
    c->req = NULL;
    c->cb = NULL;
    req->cb = cb;
    rv =
        conn_start(c, g->m, RQ_STREAM_RAFT, g->gid, g->id, g->address, address);
    if (rv != 0) {
        free(c);
        snprintf(t->errmsg, sizeof t->errmsg, "connect to %.60s: %s", address,
                 rq_strerror(rv));
        return rv == RQ_NOMEM ? RAFT_NOMEM : RAFT_NOCONNECTION;
    }
    rq_list_push(&g->connects, &c->link);
    return 0;
}

static void group_unregister(struct group *g)
{
    if (g->registered) {
        rq_idmap_del(&g->m->groups, g->gid);
        g->registered = false;
        g->m->stats.groups = (unsigned)g->m->groups.count;
    }
}

static void on_defer(uv_timer_t *timer)
{
    struct rq_mux *m = timer->data;
    while (!rq_list_empty(&m->closed_groups)) {
        struct group *g =
            RQ_LIST_ENTRY(m->closed_groups.next, struct group, defer_link);
        raft_uv_transport_close_cb cb = g->close_cb;
        rq_list_remove(&g->defer_link);
        g->close_cb = NULL;
        cb(g->t);
    }
}

static void transport_close(struct raft_uv_transport *t,
                            raft_uv_transport_close_cb cb)
{
    struct group *g = t->impl;
    struct rq_list *e;

    assert(!g->closing);
    g->closing = true;
    g->close_cb = cb;
    g->accept_cb = NULL;
    group_unregister(g);
    for (e = g->connects.next; e != &g->connects; e = e->next) {
        conn_fail(RQ_LIST_ENTRY(e, struct conn, link), RQ_CANCELED);
    }
    /* With nothing to wait for, the callback still must not run inside
     * close(): raft_uv does not expect it to. */
    if (rq_list_empty(&g->connects)) {
        rq_list_push(&g->m->closed_groups, &g->defer_link);
        uv_timer_start(&g->m->defer, on_defer, 0, 0);
    }
}

int rq_mux_transport_init(struct rq_mux *m, uint64_t gid,
                          struct raft_uv_transport *t)
{
    struct group *g;
    int rv;

    if (m->closing) {
        return RQ_SHUTDOWN;
    }
    if (rq_idmap_get(&m->groups, gid) != NULL) {
        return RQ_EXISTS;
    }
    g = calloc(1, sizeof *g);
    if (g == NULL) {
        return RQ_NOMEM; /* UNTESTED: ENOMEM only. */
    }
    g->m = m;
    g->t = t;
    g->gid = gid;
    rq_list_init(&g->connects);
    rq_list_init(&g->defer_link);
    rv = rq_idmap_put(&m->groups, gid, g);
    if (rv != 0) {
        free(g); /* UNTESTED: ENOMEM only. */
        return rv;
    }
    g->registered = true;
    m->stats.groups = (unsigned)m->groups.count;

    memset(t, 0, sizeof *t);
    t->version = 1; /* The raft_uv_transport interface of raft/uv.h. */
    t->impl = g;
    t->init = transport_init;
    t->listen = transport_listen;
    t->connect = transport_connect;
    t->close = transport_close;
    return 0;
}

void rq_mux_transport_close(struct raft_uv_transport *t)
{
    struct group *g = t->impl;
    if (g == NULL) {
        return;
    }
    /* raft_uv closed the transport first (or never started it), so nothing
     * of the group can call back any more. */
    assert(rq_list_empty(&g->connects));
    assert(rq_list_empty(&g->defer_link));
    group_unregister(g);
    free(g);
    t->impl = NULL;
}

/* ---- The mux ---- */

int rq_mux_new(uv_loop_t *loop, const struct rq_mux_config *cfg,
               struct rq_mux **out, char *why, size_t whyn)
{
    struct rq_mux *m;
    char host[HOST_MAX];
    char port[PORT_MAX];
    uv_getaddrinfo_t gai;
    struct addrinfo hints;
    const char *advertise;
    int rv;

    if (cfg->bind_address == NULL ||
        split_address(cfg->bind_address, host, port) != 0) {
        rq_why(why, whyn, "bind address \"%s\" is not HOST:PORT",
               cfg->bind_address != NULL ? cfg->bind_address : "");
        return RQ_INVALID;
    }
    advertise = cfg->advertise != NULL ? cfg->advertise : cfg->bind_address;
    if (strlen(advertise) >= RQ_PREAMBLE_ADDR || !printable(advertise)) {
        rq_why(why, whyn,
               "address \"%.80s\" is not printable or longer than %d "
               "characters",
               advertise, RQ_PREAMBLE_ADDR - 1);
        return RQ_INVALID;
    }

    m = calloc(1, sizeof *m);
    if (m == NULL) {
        rq_why(why, whyn, "out of memory"); /* UNTESTED: ENOMEM only. */
        return RQ_NOMEM;
    }
    m->loop = loop;
    const char *secret = cfg->secret != NULL ? cfg->secret : "";
    struct rq_keys keys;
    rq_keys_derive(&keys, secret, strlen(secret));
    memcpy(m->key, rq_keys_get(&keys, RQ_KEY_RAFT), sizeof m->key);
    rq_keys_wipe(&keys, sizeof keys);
    m->cluster_id = cfg->cluster_id;
    m->tls = cfg->tls;
    m->self_id = cfg->self_id;
    snprintf(m->advertise, sizeof m->advertise, "%s", advertise);
    m->connect_timeout_ms = cfg->connect_timeout_ms != 0
                                ? cfg->connect_timeout_ms
                                : DEFAULT_CONNECT_TIMEOUT_MS;
    m->preamble_timeout_ms = cfg->preamble_timeout_ms != 0
                                 ? cfg->preamble_timeout_ms
                                 : DEFAULT_PREAMBLE_TIMEOUT_MS;
    rq_idmap_init(&m->groups);
    rq_list_init(&m->incoming);
    rq_list_init(&m->rpc_connects);
    rq_list_init(&m->closed_groups);

    memset(&hints, 0, sizeof hints);
    hints.ai_family = AF_UNSPEC;
    hints.ai_socktype = SOCK_STREAM;
    hints.ai_flags = AI_PASSIVE | AI_NUMERICSERV;
    rv = uv_getaddrinfo(loop, &gai, NULL, host[0] != '\0' ? host : NULL, port,
                        &hints);
    if (rv != 0) {
        rq_why(why, whyn, "%s: %s", cfg->bind_address, uv_strerror(rv));
        free(m);
        return RQ_INVALID;
    }

    rv = uv_tcp_init(loop, &m->listener);
    assert(rv == 0);
    m->listener.data = m;
    m->refs = 1;
    rv = uv_tcp_bind(&m->listener, gai.addrinfo->ai_addr, 0);
    if (rv == 0) {
        rv = uv_listen((uv_stream_t *)&m->listener, LISTEN_BACKLOG,
                       on_connection);
    }
    uv_freeaddrinfo(gai.addrinfo);
    if (rv != 0) {
        rq_why(why, whyn, "%s: %s", cfg->bind_address, uv_strerror(rv));
        /* The handle is freed by its close callback, which runs on the next
         * loop iteration; no callback of the caller's is involved. */
        m->closing = true;
        uv_close((uv_handle_t *)&m->listener, on_mux_handle_closed);
        return RQ_IO;
    }

    uv_timer_init(loop, &m->sweep);
    m->sweep.data = m;
    uv_timer_init(loop, &m->defer);
    m->defer.data = m;
    uv_timer_init(loop, &m->watch);
    m->watch.data = m;
    m->write_queue_max = cfg->write_queue_max != 0 ? cfg->write_queue_max
                                                   : DEFAULT_WRITE_QUEUE_MAX;
    m->watch_ms = cfg->watch_ms != 0 ? cfg->watch_ms : DEFAULT_WATCH_MS;
    uv_timer_start(&m->watch, on_watch, m->watch_ms, m->watch_ms);
    uv_unref((uv_handle_t *)&m->watch);
    m->refs += 3;
    rq_log(RQ_INFO, "listening on %s as %s", cfg->bind_address, m->advertise);
    *out = m;
    return 0;
}

void rq_mux_set_rpc_handler(struct rq_mux *m, rq_mux_rpc_cb cb, void *data)
{
    m->rpc_cb = cb;
    m->rpc_data = data;
}

int rq_mux_connect(struct rq_mux *m, struct rq_mux_connect *req,
                   enum rq_stream_kind kind, uint64_t gid, const char *address,
                   rq_mux_connect_cb cb)
{
    struct conn *c;
    int rv;

    if (m->closing) {
        return RQ_SHUTDOWN;
    }
    c = malloc(sizeof *c);
    if (c == NULL) {
        return RQ_NOMEM; /* UNTESTED: ENOMEM only. */
    }
    c->g = NULL;
    c->raft_req = NULL;
    c->req = req;
    c->cb = cb;
    rv = conn_start(c, m, kind, gid, m->self_id, m->advertise, address);
    if (rv != 0) {
        free(c);
        return rv;
    }
    req->impl = c;
    rq_list_push(&m->rpc_connects, &c->link);
    return 0;
}

void rq_mux_connect_cancel(struct rq_mux_connect *req)
{
    if (req->impl != NULL) {
        conn_fail(req->impl, RQ_CANCELED);
    }
}

void rq_mux_stats(const struct rq_mux *m, struct rq_mux_stats *out)
{
    *out = m->stats;
}

/* ---- Metrics ---- */

static void metrics_collect(void *data)
{
    struct rq_mux *m = data;
    rq_metric_set(m->m_accepted, (double)m->stats.accepted);
    for (size_t i = 0; i < RQ_MUX_REJECT_COUNT; i++) {
        rq_metric_set(m->m_rejected[i], (double)m->stats.rejected_by[i]);
    }
    rq_metric_set(m->m_connects, (double)m->stats.connects);
    rq_metric_set(m->m_connect_errs, (double)m->stats.connect_errs);
    rq_metric_set(m->m_cut, (double)m->stats.cut);
}

int rq_mux_metrics_open(struct rq_mux *m, struct rq_metrics *registry)
{
    static const struct rq_metric_def defs[] = {
        {RQ_METRIC_COUNTER,
         "raftq_raft_port_accepted_total",
         "Connections to the Raft port whose preamble answered our "
         "challenge and that were handed to a Raft group or to RPC.",
         {NULL}},
        {RQ_METRIC_COUNTER,
         "raftq_raft_port_rejected_total",
         "Connections to the Raft port closed before they were handed on, "
         "by reason: bad_mac (wrong cluster secret or forged), replayed (a "
         "valid preamble recorded from another connection), malformed, "
         "foreign_cluster, unknown_group, no_rpc_service, timeout (no "
         "preamble in time), closed (before a preamble), overload, "
         "read_error, challenge_failed, accept_failed.",
         {"reason"}},
        {RQ_METRIC_COUNTER,
         "raftq_raft_port_connects_total",
         "Connections this process opened to other Raft ports, by result "
         "(failed: refused, unreachable, no challenge in time, or a "
         "challenge that could not be answered).",
         {"result"}},
        {RQ_METRIC_COUNTER,
         "raftq_raft_port_streams_cut_total",
         "Streams shut down because their peer stopped reading and their "
         "write queue stayed over the limit.",
         {NULL}},
    };
    struct rq_metric_family *f[4];

    assert(m->registry == NULL);
    for (size_t i = 0; i < 4; i++) {
        f[i] = rq_metrics_add(registry, &defs[i]);
        if (f[i] == NULL) {
            return RQ_NOMEM; /* UNTESTED: ENOMEM only. */
        }
    }
    m->m_accepted = rq_metric_family_child(f[0]);
    /* Every reason from the start, so that a rate of zero is a series. */
    for (size_t i = 0; i < RQ_MUX_REJECT_COUNT; i++) {
        const char *v[] = {reject_labels[i]};
        m->m_rejected[i] = rq_metric_get(f[1], v);
    }
    const char *ok[] = {"ok"};
    const char *failed[] = {"failed"};
    m->m_connects = rq_metric_get(f[2], ok);
    m->m_connect_errs = rq_metric_get(f[2], failed);
    m->m_cut = rq_metric_family_child(f[3]);
    if (rq_metrics_on_collect(registry, metrics_collect, m) != 0) {
        return RQ_NOMEM; /* UNTESTED: past RQ_METRIC_HOOKS_MAX only. */
    }
    m->registry = registry;
    return 0;
}

void rq_mux_close(struct rq_mux *m, void (*cb)(void *data), void *data)
{
    struct rq_list *e;

    assert(!m->closing);
    assert(m->groups.count == 0);
    m->closing = true;
    m->close_cb = cb;
    m->close_data = data;
    m->rpc_cb = NULL;
    if (m->registry != NULL) {
        /* The children stay with the registry, their last values shown. */
        rq_metrics_off_collect(m->registry, metrics_collect, m);
        m->registry = NULL;
    }

    /* Transport close callbacks still waiting for the defer timer run now,
     * before that timer goes. */
    on_defer(&m->defer);
    uv_close((uv_handle_t *)&m->listener, on_mux_handle_closed);
    uv_close((uv_handle_t *)&m->sweep, on_mux_handle_closed);
    uv_close((uv_handle_t *)&m->defer, on_mux_handle_closed);
    uv_close((uv_handle_t *)&m->watch, on_mux_handle_closed);
    while (!rq_list_empty(&m->incoming)) {
        struct incoming *in =
            RQ_LIST_ENTRY(m->incoming.next, struct incoming, link);
        incoming_unlink(in);
        uv_close((uv_handle_t *)in->tcp, on_incoming_closed);
    }
    for (e = m->rpc_connects.next; e != &m->rpc_connects; e = e->next) {
        conn_fail(RQ_LIST_ENTRY(e, struct conn, link), RQ_CANCELED);
    }
    rq_log(RQ_INFO,
           "closing: %llu accepted, %llu rejected, %llu connects, %llu cut",
           (unsigned long long)m->stats.accepted,
           (unsigned long long)m->stats.rejected,
           (unsigned long long)m->stats.connects,
           (unsigned long long)m->stats.cut);
}

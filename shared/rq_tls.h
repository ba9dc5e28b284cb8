/*
 * TLS 1.3 for a process's ports: the node's credentials (certificate, key,
 * and the CA every peer must be signed by), and a relay that puts TLS under
 * a libuv TCP stream.
 *
 * Credentials. rq_tls_new() reads the three PEM files once at start-up.
 * The texts are kept for libmicrohttpd (rq_http) and the file names for
 * libcurl (rq_httpc); the relay uses GnuTLS credentials built from them.
 * Only TLS 1.3 is offered or accepted (RQ_TLS_PRIORITY).
 *
 * The relay. raft_uv (and rq_rpc) read and write a uv_stream_t themselves,
 * so TLS cannot sit inside them. rq_tls_wrap() takes a connected TCP
 * stream, runs a GnuTLS session over it on the loop (non-blocking, fed from
 * uv reads through GnuTLS's push and pull functions), and gives back a
 * plaintext stream: a uv_tcp_t opened on one end of a socketpair whose
 * other end the relay pumps to and from the session. The plaintext stream
 * is usable at once: what is written to it before the handshake completes
 * is kept by the relay and goes out encrypted after it. The handshake
 * verifies the peer's certificate against the CA on both sides (mutual
 * TLS: a server requires a client certificate); a client also checks the
 * server's certificate names @peer_host. A failed handshake, a peer that
 * speaks something else, or no handshake within the timeout closes the
 * connection, and the plaintext stream then reads EOF and fails writes;
 * the reason is logged (at most one line a second) and counted.
 *
 * Backpressure: the relay stops reading one side while the other side's
 * write queue holds more than RQ_TLS_QUEUE_HIGH bytes, and resumes below
 * half of it, so a peer that stops reading shows as a growing write queue
 * on the plaintext stream, where its owner (rq_mux's watch) can see it.
 *
 * Closing: when the plaintext stream's owner closes it, the relay sends a
 * TLS close_notify, shuts the TCP connection down and frees itself (at
 * once, without a word, if the handshake is not done yet). When
 * the peer closes, the plaintext stream reads what was still on its way,
 * then EOF. Everything runs on the loop thread.
 */
#ifndef RQ_TLS_H
#define RQ_TLS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <uv.h>

/* GnuTLS priorities: its defaults, with every version but TLS 1.3 off. */
#define RQ_TLS_PRIORITY "NORMAL:-VERS-ALL:+VERS-TLS1.3"

/* Bytes a side may hold queued before the relay stops feeding it. */
#define RQ_TLS_QUEUE_HIGH (1u << 20)

struct rq_tls;

struct rq_tls_config {
    const char *cert_file;         /* PEM: this node's certificate (chain). */
    const char *key_file;          /* PEM: its private key. */
    const char *ca_file;           /* PEM: the CA(s) peers must be signed by. */
    unsigned handshake_timeout_ms; /* 0: 5000. */
};

/*
 * Checks the flags' rule: all three of @cert, @key and @ca, or none (NULL
 * or ""). 0 (*on tells which), or RQ_INVALID with @why naming the flags
 * missing.
 */
int rq_tls_check_flags(const char *cert, const char *key, const char *ca,
                       bool *on, char *why, size_t whyn);

/*
 * Reads and checks the files: the key must match the certificate, the CA
 * file must hold at least one certificate, and the node's certificate must
 * be signed by it. 0, or RQ_IO / RQ_INVALID with @why naming the file.
 * Free with rq_tls_free().
 */
int rq_tls_new(const struct rq_tls_config *cfg, struct rq_tls **out, char *why,
               size_t whyn);

/*
 * rq_tls_new() for a process's flags: *@out is NULL (and 0 returned) when
 * none of the three is set. Errors as rq_tls_check_flags() and
 * rq_tls_new().
 */
int rq_tls_open(const char *cert, const char *key, const char *ca,
                struct rq_tls **out, char *why, size_t whyn);

/*
 * Releases the caller's reference; the credentials go once no relay uses
 * them. rq_tls_free(NULL) does nothing.
 */
void rq_tls_free(struct rq_tls *tls);

/* The PEM texts and the file names as configured (borrowed from @tls). */
const char *rq_tls_cert_pem(const struct rq_tls *tls);
const char *rq_tls_key_pem(const struct rq_tls *tls);
const char *rq_tls_ca_pem(const struct rq_tls *tls);
const char *rq_tls_cert_file(const struct rq_tls *tls);
const char *rq_tls_key_file(const struct rq_tls *tls);
const char *rq_tls_ca_file(const struct rq_tls *tls);

enum rq_tls_role { RQ_TLS_CLIENT, RQ_TLS_SERVER };

/*
 * Puts a TLS session under @net, a connected uv_tcp_t from which nothing
 * has been read, and initializes @plain (caller-allocated, uninitialized)
 * on the same loop as its plaintext stream. On success the relay owns
 * @net: it closes it and then calls @net_free(@net) (may be NULL); the
 * caller owns @plain and closes it like any handle. @peer_host, for
 * RQ_TLS_CLIENT, is the name or address the server's certificate must
 * carry (NULL: the chain alone is checked); borrowed for the call only,
 * the relay keeps a copy. 0, or RQ_IO / RQ_NOMEM with
 * @why, and then @net is still the caller's and @plain untouched.
 */
int rq_tls_wrap(struct rq_tls *tls, uv_tcp_t *net, void (*net_free)(void *),
                enum rq_tls_role role, const char *peer_host, uv_tcp_t *plain,
                char *why, size_t whyn);

struct rq_tls_stats {
    uint64_t handshakes; /* Completed, peer verified. */
    uint64_t failures;   /* Handshakes that failed or timed out. */
    unsigned relays;     /* Relays alive now. */
};
void rq_tls_stats(const struct rq_tls *tls, struct rq_tls_stats *out);

/*
 * Shows the stats in @m (set when scraped): the counters
 * raftq_tls_handshakes_total and raftq_tls_handshake_failures_total and
 * the gauge raftq_tls_relays, for the relays (the Raft port; HTTPS is
 * libmicrohttpd's and libcurl's). @tls must outlive @m. 0 or RQ_NOMEM.
 */
struct rq_metrics;
int rq_tls_metrics(struct rq_tls *tls, struct rq_metrics *m);

#endif /* RQ_TLS_H */

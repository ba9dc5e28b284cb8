/*
 * TLS credentials and the TLS relay on libuv (contract in rq_tls.h). This
 * module knows TLS and libuv streams, not what the streams carry.
 *
 * One relay joins three handles: net (the TCP connection to the peer,
 * carrying TLS records), inner (a uv_pipe_t on the relay's end of a
 * socketpair) and a timer. The caller's plaintext stream is the other end
 * of the socketpair. GnuTLS reads ciphertext through pull() from r->in,
 * which net's reads fill, and writes it through push(), which queues a
 * uv_write on net; push never refuses, so GnuTLS never sees EAGAIN on the
 * sending side, and the relay instead stops reading inner while net's
 * write queue is long.
 *
 *     HANDSHAKE --handshake done--> OPEN --either side ends--> CLOSING
 *
 *     HANDSHAKE -> HANDSHAKE [keep_early]    the owner's first bytes kept
 *     HANDSHAKE -> OPEN     [drive_handshake] peer verified; kept bytes sent
 *     HANDSHAKE -> CLOSING  [relay_fail] bad certificate, not TLS, EOF,
 *                                        timeout
 *                           [on_inner_read] the owner closed
 *     OPEN      -> OPEN     [on_inner_read] plaintext out: record_send
 *                           [drive_recv]    records in: to inner
 *     OPEN      -> CLOSING  [on_inner_read] inner EOF: close_notify, then
 *                                           shut net down (relay_linger)
 *                           [drive_recv]    peer EOF: inner shut down once
 *                                           written (on_inner_shutdown)
 *                           [relay_fail]    any error
 *     CLOSING   -> freed    [on_handle_closed] last of the three handles
 *
 * Memory goes only in the handles' close callbacks (relay_maybe_free);
 * each write request frees itself in its callback, which libuv runs (with
 * UV_ECANCELED) before the handle's close callback.
 */
#include "rq_tls.h"

#include <arpa/inet.h>
#include <assert.h>
#include <errno.h>
#include <stdarg.h>
#include <gnutls/gnutls.h>
#include <gnutls/x509.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "rq_err.h"
#include "rq_log.h"
#include "rq_metrics.h"

#define LOG_TAG "rq_tls"

#define DEFAULT_HANDSHAKE_TIMEOUT_MS 5000
/* How long a closing relay waits for its close_notify to be written. */
#define LINGER_MS 2000
#define FILE_MAX (1u << 20)
#define READ_CHUNK (64u * 1024)
#define RECORD_MAX 16384
#define FAIL_LOG_INTERVAL_MS 1000
/* Plaintext taken from the owner before the handshake is done, at most. */
#define EARLY_MAX (64u * 1024)

struct rq_tls {
    gnutls_certificate_credentials_t cred;
    gnutls_priority_t prio;
    char *cert_pem;
    char *key_pem;
    char *ca_pem;
    char *cert_file;
    char *key_file;
    char *ca_file;
    unsigned handshake_timeout_ms;
    unsigned refs; /* The owner's, and one per relay. */
    struct rq_tls_stats stats;
    struct rq_metric *m_handshakes; /* rq_tls_metrics(), or NULL. */
    struct rq_metric *m_failures;
    struct rq_metric *m_relays;
    uint64_t fail_logged_ms;
    uint64_t fail_suppressed;
};

enum relay_state { HANDSHAKE, OPEN, CLOSING };

struct relay {
    struct rq_tls *tls;
    uv_loop_t *loop;
    gnutls_session_t s;
    enum rq_tls_role role;
    enum relay_state state;
    uv_tcp_t *net;
    void (*net_free)(void *);
    uv_pipe_t inner;
    uv_timer_t timer; /* Handshake deadline, then the closing linger. */
    uv_shutdown_t net_shutdown;
    uv_shutdown_t inner_shutdown;
    unsigned handles; /* Still open; the relay goes at zero. */
    bool net_reading;
    bool inner_reading;
    bool net_eof;
    bool inner_shut; /* uv_shutdown(inner) issued. */
    uint8_t *early;  /* Plaintext read during the handshake, to send. */
    size_t early_len;
    uint8_t *in; /* Ciphertext read from net, not yet pulled. */
    size_t in_off;
    size_t in_len;
    size_t in_cap;
    char peer[96]; /* For logs: "1.2.3.4:5678". */
    /* The name the server's certificate must carry (a client's relay), a
     * copy: GnuTLS keeps the pointer given to
     * gnutls_session_set_verify_cert() and reads it during the handshake,
     * long after rq_tls_wrap() returned. */
    char *peer_host;
    uint8_t plain[READ_CHUNK]; /* One read from inner at a time. */
};

/* A write of @len bytes at data, freed in its callback. */
struct wreq {
    uv_write_t w;
    struct relay *r;
    size_t len;
    uint8_t data[];
};

/* ---- Credentials ---- */

int rq_tls_check_flags(const char *cert, const char *key, const char *ca,
                       bool *on, char *why, size_t whyn)
{
    bool c = cert != NULL && cert[0] != '\0';
    bool k = key != NULL && key[0] != '\0';
    bool a = ca != NULL && ca[0] != '\0';

    if (c == k && k == a) {
        *on = c;
        return 0;
    }
    rq_why(why, whyn,
           "--tls-cert, --tls-key and --tls-ca go together; missing:%s%s%s",
           c ? "" : " --tls-cert", k ? "" : " --tls-key", a ? "" : " --tls-ca");
    return RQ_INVALID;
}

static int read_file(const char *flag, const char *path, char **out, char *why,
                     size_t whyn)
{
    FILE *f = fopen(path, "rb");
    char *buf;
    size_t n;

    if (f == NULL) {
        rq_why(why, whyn, "--%s %s: %s", flag, path, strerror(errno));
        return RQ_IO;
    }
    buf = malloc(FILE_MAX + 1);
    if (buf == NULL) {
        fclose(f); /* UNTESTED: ENOMEM only. */
        rq_why(why, whyn, "out of memory");
        return RQ_NOMEM;
    }
    n = fread(buf, 1, FILE_MAX + 1, f);
    fclose(f);
    if (n == 0 || n > FILE_MAX) {
        free(buf);
        rq_why(why, whyn, "--%s %s: %s", flag, path,
               n == 0 ? "empty or unreadable" : "larger than 1 MiB");
        return RQ_INVALID;
    }
    buf[n] = '\0';
    *out = buf;
    return 0;
}

static gnutls_datum_t datum(const char *pem)
{
    gnutls_datum_t d = {(unsigned char *)pem, (unsigned)strlen(pem)};
    return d;
}

/* Checks that the first certificate of the node's chain verifies against
 * the CA file, so a node configured with the wrong CA says so at start
 * rather than failing every handshake. */
static int check_chain(struct rq_tls *tls, char *why, size_t whyn)
{
    gnutls_x509_crt_t *chain = NULL;
    gnutls_x509_crt_t *cas = NULL;
    unsigned n_chain = 0;
    unsigned n_cas = 0;
    unsigned status = 0;
    gnutls_datum_t d;
    int rv;

    d = datum(tls->ca_pem);
    rv = gnutls_x509_crt_list_import2(&cas, &n_cas, &d, GNUTLS_X509_FMT_PEM, 0);
    if (rv < 0 || n_cas == 0) {
        rq_why(why, whyn, "--tls-ca %s: no PEM certificate (%s)", tls->ca_file,
               rv < 0 ? gnutls_strerror(rv) : "none found");
        return RQ_INVALID;
    }
    d = datum(tls->cert_pem);
    rv = gnutls_x509_crt_list_import2(&chain, &n_chain, &d, GNUTLS_X509_FMT_PEM,
                                      0);
    if (rv < 0 || n_chain == 0) {
        rq_why(why, whyn, "--tls-cert %s: no PEM certificate (%s)",
               tls->cert_file, rv < 0 ? gnutls_strerror(rv) : "none found");
        rv = RQ_INVALID;
        goto out;
    }
    rv = gnutls_x509_crt_list_verify(chain, n_chain, cas, n_cas, NULL, 0, 0,
                                     &status);
    if (rv < 0 || status != 0) {
        gnutls_datum_t text = {NULL, 0};
        if (rv >= 0) {
            gnutls_certificate_verification_status_print(
                status, GNUTLS_CRT_X509, &text, 0);
        }
        rq_why(why, whyn,
               "--tls-cert %s does not verify against --tls-ca %s: %s",
               tls->cert_file, tls->ca_file,
               rv < 0      ? gnutls_strerror(rv)
               : text.data ? (const char *)text.data
                           : "rejected");
        gnutls_free(text.data);
        rv = RQ_INVALID;
        goto out;
    }
    rv = 0;
out:
    for (unsigned i = 0; i < n_chain; i++) {
        gnutls_x509_crt_deinit(chain[i]);
    }
    for (unsigned i = 0; i < n_cas; i++) {
        gnutls_x509_crt_deinit(cas[i]);
    }
    gnutls_free(chain);
    gnutls_free(cas);
    return rv;
}

static void tls_unref(struct rq_tls *tls)
{
    assert(tls->refs > 0);
    if (--tls->refs > 0) {
        return;
    }
    if (tls->cred != NULL) {
        gnutls_certificate_free_credentials(tls->cred);
    }
    if (tls->prio != NULL) {
        gnutls_priority_deinit(tls->prio);
    }
    free(tls->cert_pem);
    free(tls->key_pem);
    free(tls->ca_pem);
    free(tls->cert_file);
    free(tls->key_file);
    free(tls->ca_file);
    free(tls);
}

int rq_tls_new(const struct rq_tls_config *cfg, struct rq_tls **out, char *why,
               size_t whyn)
{
    struct rq_tls *tls = calloc(1, sizeof *tls);
    gnutls_datum_t c, k;
    int rv;

    if (tls == NULL) {
        rq_why(why, whyn, "out of memory"); /* UNTESTED: ENOMEM only. */
        return RQ_NOMEM;
    }
    tls->refs = 1;
    tls->handshake_timeout_ms = cfg->handshake_timeout_ms != 0
                                    ? cfg->handshake_timeout_ms
                                    : DEFAULT_HANDSHAKE_TIMEOUT_MS;
    tls->cert_file = strdup(cfg->cert_file);
    tls->key_file = strdup(cfg->key_file);
    tls->ca_file = strdup(cfg->ca_file);
    if (tls->cert_file == NULL || tls->key_file == NULL ||
        tls->ca_file == NULL) {
        rq_why(why, whyn, "out of memory"); /* UNTESTED: ENOMEM only. */
        rv = RQ_NOMEM;
        goto err;
    }
    if ((rv = read_file("tls-cert", cfg->cert_file, &tls->cert_pem, why,
                        whyn)) != 0 ||
        (rv = read_file("tls-key", cfg->key_file, &tls->key_pem, why, whyn)) !=
            0 ||
        (rv = read_file("tls-ca", cfg->ca_file, &tls->ca_pem, why, whyn)) !=
            0 ||
        (rv = check_chain(tls, why, whyn)) != 0) {
        goto err;
    }
    rv = gnutls_certificate_allocate_credentials(&tls->cred);
    if (rv < 0) {
        tls->cred = NULL; /* UNTESTED: ENOMEM only. */
        rq_why(why, whyn, "%s", gnutls_strerror(rv));
        rv = RQ_NOMEM;
        goto err;
    }
    c = datum(tls->cert_pem);
    k = datum(tls->key_pem);
    rv = gnutls_certificate_set_x509_key_mem(tls->cred, &c, &k,
                                             GNUTLS_X509_FMT_PEM);
    if (rv < 0) {
        rq_why(why, whyn, "--tls-cert %s with --tls-key %s: %s", cfg->cert_file,
               cfg->key_file, gnutls_strerror(rv));
        rv = RQ_INVALID;
        goto err;
    }
    c = datum(tls->ca_pem);
    rv = gnutls_certificate_set_x509_trust_mem(tls->cred, &c,
                                               GNUTLS_X509_FMT_PEM);
    if (rv <= 0) {
        /* UNTESTED: check_chain() has parsed the same text. */
        rq_why(why, whyn, "--tls-ca %s: %s", cfg->ca_file,
               rv < 0 ? gnutls_strerror(rv) : "no certificate");
        rv = RQ_INVALID;
        goto err;
    }
    rv = gnutls_priority_init(&tls->prio, RQ_TLS_PRIORITY, NULL);
    if (rv < 0) {
        tls->prio = NULL; /* UNTESTED: a GnuTLS without TLS 1.3. */
        rq_why(why, whyn, "TLS priorities: %s", gnutls_strerror(rv));
        rv = RQ_IO;
        goto err;
    }
    *out = tls;
    return 0;

err:
    tls_unref(tls);
    return rv;
}

int rq_tls_open(const char *cert, const char *key, const char *ca,
                struct rq_tls **out, char *why, size_t whyn)
{
    struct rq_tls_config cfg = {cert, key, ca, 0};
    bool on;
    int rv = rq_tls_check_flags(cert, key, ca, &on, why, whyn);
    *out = NULL;
    if (rv != 0 || !on) {
        return rv;
    }
    return rq_tls_new(&cfg, out, why, whyn);
}

void rq_tls_free(struct rq_tls *tls)
{
    if (tls != NULL) {
        tls_unref(tls);
    }
}

const char *rq_tls_cert_pem(const struct rq_tls *tls)
{
    return tls->cert_pem;
}

const char *rq_tls_key_pem(const struct rq_tls *tls)
{
    return tls->key_pem;
}

const char *rq_tls_ca_pem(const struct rq_tls *tls)
{
    return tls->ca_pem;
}

const char *rq_tls_cert_file(const struct rq_tls *tls)
{
    return tls->cert_file;
}

const char *rq_tls_key_file(const struct rq_tls *tls)
{
    return tls->key_file;
}

const char *rq_tls_ca_file(const struct rq_tls *tls)
{
    return tls->ca_file;
}

void rq_tls_stats(const struct rq_tls *tls, struct rq_tls_stats *out)
{
    *out = tls->stats;
}

static void metrics_collect(void *data)
{
    struct rq_tls *tls = data;
    rq_metric_set(tls->m_handshakes, (double)tls->stats.handshakes);
    rq_metric_set(tls->m_failures, (double)tls->stats.failures);
    rq_metric_set(tls->m_relays, (double)tls->stats.relays);
}

int rq_tls_metrics(struct rq_tls *tls, struct rq_metrics *m)
{
    static const struct rq_metric_def defs[] = {
        {RQ_METRIC_COUNTER,
         "raftq_tls_handshakes_total",
         "TLS handshakes completed on the Raft port, peer verified.",
         {NULL}},
        {RQ_METRIC_COUNTER,
         "raftq_tls_handshake_failures_total",
         "TLS handshakes on the Raft port that failed or timed out (a peer "
         "of another CA, a wrong name, a peer without TLS).",
         {NULL}},
        {RQ_METRIC_GAUGE,
         "raftq_tls_relays",
         "TLS connections open on the Raft port.",
         {NULL}},
    };
    struct rq_metric **slots[] = {&tls->m_handshakes, &tls->m_failures,
                                  &tls->m_relays};
    for (size_t i = 0; i < sizeof defs / sizeof defs[0]; i++) {
        *slots[i] = rq_metric_family_child(rq_metrics_add(m, &defs[i]));
        if (*slots[i] == NULL) {
            return RQ_NOMEM; /* UNTESTED: ENOMEM only. */
        }
    }
    return rq_metrics_on_collect(m, metrics_collect, tls);
}

/* ---- The relay: teardown ---- */

static void relay_maybe_free(struct relay *r)
{
    if (r->handles > 0) {
        return;
    }
    if (r->net_free != NULL) {
        r->net_free(r->net);
    }
    gnutls_deinit(r->s);
    free(r->peer_host);
    free(r->in);
    free(r->early);
    r->tls->stats.relays--;
    tls_unref(r->tls);
    free(r);
}

static void on_handle_closed(uv_handle_t *h)
{
    struct relay *r = h->data;
    assert(r->handles > 0);
    r->handles--;
    relay_maybe_free(r);
}

/* Closes all three handles; queued writes are canceled. */
static void relay_close(struct relay *r)
{
    r->state = CLOSING;
    if (!uv_is_closing((uv_handle_t *)r->net)) {
        uv_close((uv_handle_t *)r->net, on_handle_closed);
    }
    if (!uv_is_closing((uv_handle_t *)&r->inner)) {
        uv_close((uv_handle_t *)&r->inner, on_handle_closed);
    }
    if (!uv_is_closing((uv_handle_t *)&r->timer)) {
        uv_close((uv_handle_t *)&r->timer, on_handle_closed);
    }
}

/* A failed handshake is logged (rate-limited, since a stranger can cause
 * any number) and counted; a failure after it only logged at debug. */
static void relay_fail(struct relay *r, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

static void relay_fail(struct relay *r, const char *fmt, ...)
{
    struct rq_tls *tls = r->tls;
    char detail[256];
    va_list ap;

    if (r->state == CLOSING) {
        return;
    }
    va_start(ap, fmt);
    vsnprintf(detail, sizeof detail, fmt, ap);
    va_end(ap);
    if (r->state == HANDSHAKE) {
        uint64_t now = uv_now(r->loop);
        tls->stats.failures++;
        if (tls->fail_logged_ms == 0 ||
            now - tls->fail_logged_ms >= FAIL_LOG_INTERVAL_MS) {
            if (tls->fail_suppressed > 0) {
                rq_log(RQ_WARN,
                       "TLS handshake %s %s failed: %s (%llu more failures "
                       "not logged)",
                       r->role == RQ_TLS_SERVER ? "from" : "with", r->peer,
                       detail, (unsigned long long)tls->fail_suppressed);
            } else {
                rq_log(RQ_WARN, "TLS handshake %s %s failed: %s",
                       r->role == RQ_TLS_SERVER ? "from" : "with", r->peer,
                       detail);
            }
            tls->fail_logged_ms = now != 0 ? now : 1;
            tls->fail_suppressed = 0;
        } else {
            tls->fail_suppressed++;
        }
    } else {
        rq_log(RQ_DEBUG, "TLS connection %s %s ended: %s",
               r->role == RQ_TLS_SERVER ? "from" : "to", r->peer, detail);
    }
    relay_close(r);
}

static void on_linger(uv_timer_t *t)
{
    relay_close(t->data);
}

static void on_net_shutdown(uv_shutdown_t *req, int status)
{
    (void)status;
    relay_close(req->data);
}

/* The plaintext side ended: say close_notify, let it be written, and
 * close; a peer that does not take it gets LINGER_MS. */
static void relay_linger(struct relay *r)
{
    int rv;
    r->state = CLOSING;
    gnutls_bye(r->s, GNUTLS_SHUT_WR); /* Pushes at once; never EAGAIN. */
    if (r->inner_reading) {
        uv_read_stop((uv_stream_t *)&r->inner);
        r->inner_reading = false;
    }
    uv_timer_start(&r->timer, on_linger, LINGER_MS, 0);
    rv = uv_shutdown(&r->net_shutdown, (uv_stream_t *)r->net, on_net_shutdown);
    if (rv != 0) {
        relay_close(r);
    }
}

/* ---- The relay: GnuTLS transport ---- */

static void on_net_written(uv_write_t *w, int status);

static ssize_t push(gnutls_transport_ptr_t p, const void *data, size_t len)
{
    struct relay *r = p;
    struct wreq *q;
    uv_buf_t buf;

    if (uv_is_closing((uv_handle_t *)r->net)) {
        errno = EPIPE;
        return -1;
    }
    q = malloc(sizeof *q + len);
    if (q == NULL) {
        errno = ENOMEM; /* UNTESTED: ENOMEM only. */
        return -1;
    }
    q->r = r;
    q->len = len;
    memcpy(q->data, data, len);
    q->w.data = q;
    buf = uv_buf_init((char *)q->data, (unsigned)len);
    if (uv_write(&q->w, (uv_stream_t *)r->net, &buf, 1, on_net_written) != 0) {
        free(q);
        errno = EPIPE;
        return -1;
    }
    return (ssize_t)len;
}

static ssize_t pull(gnutls_transport_ptr_t p, void *data, size_t len)
{
    struct relay *r = p;
    size_t avail = r->in_len - r->in_off;

    if (avail == 0) {
        if (r->net_eof) {
            return 0;
        }
        gnutls_transport_set_errno(r->s, EAGAIN);
        return -1;
    }
    if (len > avail) {
        len = avail;
    }
    memcpy(data, r->in + r->in_off, len);
    r->in_off += len;
    if (r->in_off == r->in_len) {
        r->in_off = 0;
        r->in_len = 0;
    }
    return (ssize_t)len;
}

/* ---- The relay: moving bytes ---- */

static void on_net_alloc(uv_handle_t *h, size_t suggested, uv_buf_t *buf);
static void on_net_read(uv_stream_t *s, ssize_t nread, const uv_buf_t *buf);
static void on_inner_alloc(uv_handle_t *h, size_t suggested, uv_buf_t *buf);
static void on_inner_read(uv_stream_t *s, ssize_t nread, const uv_buf_t *buf);
static void drive_recv(struct relay *r);
static bool send_plain(struct relay *r, const uint8_t *data, size_t len);

static void net_read_start(struct relay *r)
{
    if (!r->net_reading && !r->net_eof && r->state != CLOSING) {
        if (uv_read_start((uv_stream_t *)r->net, on_net_alloc, on_net_read) ==
            0) {
            r->net_reading = true;
        }
    }
}

static void net_read_stop(struct relay *r)
{
    if (r->net_reading) {
        uv_read_stop((uv_stream_t *)r->net);
        r->net_reading = false;
    }
}

static void inner_read_start(struct relay *r)
{
    if (!r->inner_reading && r->state != CLOSING) {
        if (uv_read_start((uv_stream_t *)&r->inner, on_inner_alloc,
                          on_inner_read) == 0) {
            r->inner_reading = true;
        }
    }
}

static void on_inner_shutdown(uv_shutdown_t *req, int status)
{
    (void)status;
    relay_close(req->data);
}

static void on_inner_written(uv_write_t *w, int status)
{
    struct wreq *q = w->data;
    struct relay *r = q->r;
    free(q);
    if (status != 0) {
        /* The plaintext side is gone (closed by its owner). */
        if (status != UV_ECANCELED) {
            relay_fail(r, "plaintext side: %s", uv_strerror(status));
        }
        return;
    }
    if (r->state == OPEN && !r->net_reading &&
        r->inner.write_queue_size < RQ_TLS_QUEUE_HIGH / 2) {
        /* What was read before the pause is decrypted first: no read may
         * come to do it. */
        drive_recv(r);
        if (r->inner.write_queue_size < RQ_TLS_QUEUE_HIGH) {
            net_read_start(r);
        }
    }
}

/* The peer finished (close_notify or EOF): the plaintext side gets what
 * was decrypted, then EOF. */
static void peer_done(struct relay *r)
{
    r->net_eof = true;
    net_read_stop(r);
    if (!r->inner_shut) {
        r->inner_shut = true;
        if (uv_shutdown(&r->inner_shutdown, (uv_stream_t *)&r->inner,
                        on_inner_shutdown) != 0) {
            relay_close(r);
        }
    }
}

/* Decrypts what has arrived and writes it to inner, until GnuTLS wants
 * more or inner's queue is long. */
static void drive_recv(struct relay *r)
{
    while (r->state == OPEN && !r->inner_shut) {
        if (r->inner.write_queue_size >= RQ_TLS_QUEUE_HIGH) {
            net_read_stop(r); /* on_inner_written resumes. */
            return;
        }
        if (r->in_len == r->in_off && gnutls_record_check_pending(r->s) == 0 &&
            !r->net_eof) {
            return;
        }
        struct wreq *q = malloc(sizeof *q + RECORD_MAX);
        if (q == NULL) {
            relay_fail(r, "out of memory"); /* UNTESTED: ENOMEM only. */
            return;
        }
        ssize_t n = gnutls_record_recv(r->s, q->data, RECORD_MAX);
        if (n > 0) {
            uv_buf_t buf = uv_buf_init((char *)q->data, (unsigned)n);
            q->r = r;
            q->len = (size_t)n;
            q->w.data = q;
            if (uv_write(&q->w, (uv_stream_t *)&r->inner, &buf, 1,
                         on_inner_written) != 0) {
                free(q);
                relay_fail(r, "plaintext side closed");
                return;
            }
            continue;
        }
        free(q);
        if (n == GNUTLS_E_AGAIN || n == GNUTLS_E_INTERRUPTED) {
            if (r->net_eof) {
                peer_done(r); /* UNTESTED: pull returns 0 at EOF. */
            }
            return;
        }
        if (n == 0 || n == GNUTLS_E_PREMATURE_TERMINATION) {
            peer_done(r);
            return;
        }
        if (!gnutls_error_is_fatal((int)n)) {
            continue; /* UNTESTED: a warning alert. */
        }
        relay_fail(r, "%s", gnutls_strerror((int)n));
        return;
    }
}

static void drive_handshake(struct relay *r)
{
    int rv = gnutls_handshake(r->s);

    if (rv == GNUTLS_E_AGAIN || rv == GNUTLS_E_INTERRUPTED) {
        if (r->net_eof) {
            relay_fail(r, "connection closed during the handshake");
        }
        return;
    }
    if (rv < 0) {
        if (rv == GNUTLS_E_CERTIFICATE_VERIFICATION_ERROR) {
            gnutls_datum_t text = {NULL, 0};
            unsigned status = gnutls_session_get_verify_cert_status(r->s);
            gnutls_certificate_verification_status_print(
                status, gnutls_certificate_type_get(r->s), &text, 0);
            relay_fail(r, "peer certificate rejected: %s",
                       text.data != NULL ? (const char *)text.data : "?");
            gnutls_free(text.data);
        } else if (!gnutls_error_is_fatal(rv)) {
            drive_handshake(r); /* UNTESTED: a warning alert. */
        } else {
            relay_fail(r, "%s", gnutls_strerror(rv));
        }
        return;
    }
    r->state = OPEN;
    r->tls->stats.handshakes++;
    uv_timer_stop(&r->timer);
    if (r->early_len > 0) {
        bool sent = send_plain(r, r->early, r->early_len);
        free(r->early);
        r->early = NULL;
        r->early_len = 0;
        if (!sent) {
            return; /* UNTESTED: push failing right after the handshake. */
        }
    }
    inner_read_start(r);
    drive_recv(r);
}

static void on_net_alloc(uv_handle_t *h, size_t suggested, uv_buf_t *buf)
{
    struct relay *r = h->data;
    (void)suggested;
    if (r->in_off > 0 && r->in_off == r->in_len) {
        r->in_off = 0; /* UNTESTED: pull() resets an emptied buffer. */
        r->in_len = 0;
    }
    if (r->in_cap - r->in_len < READ_CHUNK) {
        size_t cap = r->in_len + READ_CHUNK;
        uint8_t *p = realloc(r->in, cap);
        if (p == NULL) {
            buf->base = NULL; /* UNTESTED: ENOMEM; libuv reports UV_ENOBUFS. */
            buf->len = 0;
            return;
        }
        r->in = p;
        r->in_cap = cap;
    }
    buf->base = (char *)r->in + r->in_len;
    buf->len = r->in_cap - r->in_len;
}

static void on_net_read(uv_stream_t *s, ssize_t nread, const uv_buf_t *buf)
{
    struct relay *r = s->data;
    (void)buf;
    if (nread == 0) {
        return;
    }
    if (r->state == CLOSING) {
        /* Lingering for our close_notify: what the peer still sends is
         * dropped, so it cannot fill the buffer meanwhile. */
        r->in_off = 0;
        r->in_len = 0;
        return;
    }
    if (nread < 0 && nread != UV_EOF) {
        relay_fail(r, "%s", uv_strerror((int)nread));
        return;
    }
    if (nread == UV_EOF) {
        r->net_eof = true;
        net_read_stop(r);
    } else {
        r->in_len += (size_t)nread;
    }
    if (r->state == HANDSHAKE) {
        drive_handshake(r);
    } else if (r->state == OPEN) {
        drive_recv(r);
    }
}

static void on_net_written(uv_write_t *w, int status)
{
    struct wreq *q = w->data;
    struct relay *r = q->r;
    free(q);
    if (status != 0) {
        if (status != UV_ECANCELED) {
            relay_fail(r, "%s", uv_strerror(status));
        }
        return;
    }
    if (r->state == OPEN && r->net->write_queue_size < RQ_TLS_QUEUE_HIGH / 2) {
        inner_read_start(r);
    }
}

static void on_inner_alloc(uv_handle_t *h, size_t suggested, uv_buf_t *buf)
{
    struct relay *r = h->data;
    (void)suggested;
    buf->base = (char *)r->plain;
    buf->len = sizeof r->plain;
}

/* Encrypts @len bytes from the owner and queues them on net. false if
 * the relay failed. */
static bool send_plain(struct relay *r, const uint8_t *data, size_t len)
{
    size_t off = 0;

    /* Corked, the records of one read leave in one write. */
    gnutls_record_cork(r->s);
    while (off < len) {
        ssize_t n = gnutls_record_send(r->s, data + off, len - off);
        if (n < 0) {
            if (!gnutls_error_is_fatal((int)n)) {
                continue; /* UNTESTED: push never says EAGAIN. */
            }
            relay_fail(r, "%s", gnutls_strerror((int)n));
            return false;
        }
        off += (size_t)n;
    }
    if (gnutls_record_uncork(r->s, 0) < 0) {
        relay_fail(r, "cannot send"); /* UNTESTED: push failed. */
        return false;
    }
    return true;
}

/* Before the handshake is done the owner's bytes are kept (a preamble, a
 * challenge: small), so that the read goes on and an owner that gives up
 * (closes) is seen at once, not at the handshake timeout. */
static void keep_early(struct relay *r, const uint8_t *data, size_t len)
{
    uint8_t *p = realloc(r->early, r->early_len + len);
    if (p == NULL) {
        relay_fail(r, "out of memory"); /* UNTESTED: ENOMEM only. */
        return;
    }
    r->early = p;
    memcpy(r->early + r->early_len, data, len);
    r->early_len += len;
    if (r->early_len >= EARLY_MAX) {
        uv_read_stop((uv_stream_t *)&r->inner); /* drive_handshake resumes. */
        r->inner_reading = false;
    }
}

static void on_inner_read(uv_stream_t *s, ssize_t nread, const uv_buf_t *buf)
{
    struct relay *r = s->data;
    (void)buf;

    if (nread == 0) {
        return;
    }
    if (nread < 0) {
        /* The owner closed (EOF) or reset the plaintext stream: during the
         * handshake there is nobody to say goodbye to yet. */
        if (r->state == HANDSHAKE) {
            relay_close(r);
        } else {
            relay_linger(r);
        }
        return;
    }
    if (r->state == HANDSHAKE) {
        keep_early(r, r->plain, (size_t)nread);
        return;
    }
    if (!send_plain(r, r->plain, (size_t)nread)) {
        return;
    }
    if (r->net->write_queue_size >= RQ_TLS_QUEUE_HIGH && r->inner_reading) {
        uv_read_stop(s); /* on_net_written resumes. */
        r->inner_reading = false;
    }
}

static void on_handshake_timeout(uv_timer_t *t)
{
    struct relay *r = t->data;
    relay_fail(r, "no handshake within %u ms", r->tls->handshake_timeout_ms);
}

/* ---- The relay: setup ---- */

static void peer_name(uv_tcp_t *tcp, char *out, size_t n)
{
    struct sockaddr_storage ss;
    int len = sizeof ss;
    char ip[64] = "?";
    int port = 0;

    snprintf(out, n, "?");
    if (uv_tcp_getpeername(tcp, (struct sockaddr *)&ss, &len) != 0) {
        return;
    }
    if (ss.ss_family == AF_INET) {
        const struct sockaddr_in *a = (const struct sockaddr_in *)&ss;
        uv_ip4_name(a, ip, sizeof ip);
        port = ntohs(a->sin_port);
        snprintf(out, n, "%s:%d", ip, port);
    } else if (ss.ss_family == AF_INET6) {
        const struct sockaddr_in6 *a = (const struct sockaddr_in6 *)&ss;
        uv_ip6_name(a, ip, sizeof ip);
        port = ntohs(a->sin6_port);
        snprintf(out, n, "[%s]:%d", ip, port);
    }
}

static int session_new(struct relay *r, const char *peer_host, char *why,
                       size_t whyn)
{
    unsigned flags = GNUTLS_NONBLOCK | GNUTLS_NO_TICKETS |
                     (r->role == RQ_TLS_SERVER ? GNUTLS_SERVER : GNUTLS_CLIENT);
    int rv = gnutls_init(&r->s, flags);
    if (rv < 0) {
        rq_why(why, whyn, "%s", gnutls_strerror(rv)); /* UNTESTED: ENOMEM. */
        return RQ_NOMEM;
    }
    if ((rv = gnutls_priority_set(r->s, r->tls->prio)) < 0 ||
        (rv = gnutls_credentials_set(r->s, GNUTLS_CRD_CERTIFICATE,
                                     r->tls->cred)) < 0) {
        gnutls_deinit(r->s); /* UNTESTED: ENOMEM only. */
        rq_why(why, whyn, "%s", gnutls_strerror(rv));
        return RQ_NOMEM;
    }
    if (r->role == RQ_TLS_SERVER) {
        gnutls_certificate_server_set_request(r->s, GNUTLS_CERT_REQUIRE);
    }
    /* The handshake fails unless the peer's chain verifies against the CA
     * (and, for a client, names @peer_host). */
    gnutls_session_set_verify_cert(r->s, peer_host, 0);
    /* The relay's own timer bounds the handshake. */
    gnutls_handshake_set_timeout(r->s, GNUTLS_INDEFINITE_TIMEOUT);
    gnutls_transport_set_ptr(r->s, r);
    gnutls_transport_set_push_function(r->s, push);
    gnutls_transport_set_pull_function(r->s, pull);
    return 0;
}

int rq_tls_wrap(struct rq_tls *tls, uv_tcp_t *net, void (*net_free)(void *),
                enum rq_tls_role role, const char *peer_host, uv_tcp_t *plain,
                char *why, size_t whyn)
{
    uv_loop_t *loop = net->loop;
    struct relay *r;
    int fds[2];
    int rv;

    r = calloc(1, sizeof *r);
    if (r == NULL) {
        rq_why(why, whyn, "out of memory"); /* UNTESTED: ENOMEM only. */
        return RQ_NOMEM;
    }
    r->tls = tls;
    r->loop = loop;
    r->role = role;
    r->net = net;
    r->net_free = net_free;
    peer_name(net, r->peer, sizeof r->peer);
    if (role == RQ_TLS_CLIENT && peer_host != NULL) {
        r->peer_host = strdup(peer_host);
        if (r->peer_host == NULL) {
            rq_why(why, whyn, "out of memory"); /* UNTESTED: ENOMEM only. */
            free(r);
            return RQ_NOMEM;
        }
    }
    rv = session_new(r, r->peer_host, why, whyn);
    if (rv != 0) {
        free(r->peer_host); /* UNTESTED: ENOMEM only. */
        free(r);
        return rv;
    }
    if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0,
                   fds) != 0) {
        rq_why(why, whyn, "socketpair: %s", strerror(errno));
        goto err_after_session;
    }
    /* Neither open can fail on descriptors this fresh (libuv refuses only
     * one it already watches, or one fcntl() cannot read). */
    uv_tcp_init(loop, plain);
    rv = uv_tcp_open(plain, fds[0]);
    assert(rv == 0);
    uv_pipe_init(loop, &r->inner, 0);
    rv = uv_pipe_open(&r->inner, fds[1]);
    assert(rv == 0);
    uv_timer_init(loop, &r->timer);
    net->data = r;
    r->inner.data = r;
    r->timer.data = r;
    r->net_shutdown.data = r;
    r->inner_shutdown.data = r;
    r->handles = 3;
    tls->refs++;
    tls->stats.relays++;
    uv_timer_start(&r->timer, on_handshake_timeout, tls->handshake_timeout_ms,
                   0);
    net_read_start(r);
    inner_read_start(r);
    if (role == RQ_TLS_CLIENT) {
        drive_handshake(r); /* Sends the ClientHello. */
    }
    return 0;

err_after_session:
    gnutls_deinit(r->s);
    free(r->peer_host);
    free(r);
    return RQ_IO;
}

/*
 * The load generator (see loadgen.h).
 *
 * A connection goes round one cycle: connect, then send a request and
 * read its answer, again and again; an error closes it and a timer opens
 * it again. One timer of the run ticks every TICK_MS and moves the run
 * through its phases:
 *
 *     WARMUP -> MEASURE [on_tick: warmup_ms passed; the window opens]
 *     MEASURE -> DRAIN  [on_tick: measure_ms passed, or the stop flag;
 *                        finish_if_idle: a counted run's last answer;
 *                        count_error: an error, with stop_on_error]
 *     DRAIN -> CLOSING  [finish_if_idle: the last answer in flight came;
 *                        on_tick: DRAIN_MS passed]
 *     CLOSING -> (uv_run returns) [every handle closed]
 *
 * Only answers read while MEASURE count, so the window's length is the
 * time between the two ticks that opened and closed it. A request is
 * built only when it is sent (next_cb), so nothing is queued behind a
 * slow answer: the load is closed-loop, one request per connection.
 */
#include "loadgen.h"

#include <assert.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>

#include "hresp.h"
#include "rq_err.h"

#define TICK_MS 20
#define PROGRESS_MS 1000
#define DRAIN_MS 5000
#define RETRY_MS 200
#define READ_CHUNK 65536
#define WHY_LEN 256

enum phase { WARMUP, MEASURE, DRAIN, CLOSING };

struct loadgen;

struct conn {
    struct loadgen *lg;
    unsigned id;
    const struct loadgen_target *target;
    uv_tcp_t tcp;
    uv_connect_t connect;
    uv_write_t write;
    uv_timer_t retry;
    bool tcp_open; /* Initialised and not yet closed. */
    bool busy;     /* A request is in flight. */
    bool writing;  /* c->write is in use. */
    char *rbuf;    /* The answer being read. */
    size_t rlen, rcap;
    struct hresp head;
    uint64_t seq;
    uint64_t sent_ns;
    struct loadgen_req req;
    char scratch[LOADGEN_SCRATCH];
};

struct loadgen {
    const struct loadgen_config *cfg;
    struct loadgen_result *out;
    uv_loop_t loop;
    uv_timer_t tick;
    struct conn *conns;
    enum phase phase;
    uint64_t t0_ns, window_ns, drain_ns, last_progress_ns;
    uint64_t progress_messages;
    uint64_t next_seq;
    uint64_t answered; /* Requests answered, errors included. */
    uint64_t in_flight;
    double cpu_at_window;
    size_t lat_cap;
    int err; /* RQ_NOMEM met while running. */
};

static double cpu_now(void)
{
    struct rusage ru;
    getrusage(RUSAGE_SELF, &ru);
    return (double)ru.ru_utime.tv_sec + (double)ru.ru_utime.tv_usec / 1e6 +
           (double)ru.ru_stime.tv_sec + (double)ru.ru_stime.tv_usec / 1e6;
}

static bool issuing(const struct loadgen *lg)
{
    return (lg->phase == WARMUP || lg->phase == MEASURE) &&
           (lg->cfg->max_requests == 0 || lg->next_seq < lg->cfg->max_requests);
}

static void end_window(struct loadgen *lg, uint64_t now);

/* ---- Errors ---- */

static void count_error(struct loadgen *lg, const char *kind,
                        const char *detail)
{
    struct loadgen_result *r = lg->out;
    if (lg->phase != MEASURE) {
        return;
    }
    r->errors++;
    size_t i;
    for (i = 0; i < r->n_kinds; i++) {
        if (strcmp(r->kinds[i].kind, kind) == 0) {
            break;
        }
    }
    if (i == r->n_kinds) {
        if (r->n_kinds == LOADGEN_ERROR_KINDS) {
            i = LOADGEN_ERROR_KINDS - 1; /* The rest go together. */
            snprintf(r->kinds[i].kind, sizeof r->kinds[i].kind, "other");
        } else {
            r->n_kinds++;
            snprintf(r->kinds[i].kind, sizeof r->kinds[i].kind, "%s", kind);
            snprintf(r->kinds[i].first, sizeof r->kinds[i].first, "%s", detail);
        }
    }
    r->kinds[i].n++;
    if (lg->cfg->stop_on_error) {
        end_window(lg, uv_hrtime()); /* The tick closes the run. */
    }
}

/* ---- One connection ---- */

static void conn_connect(struct conn *c);
static void conn_send(struct conn *c);
static void finish_if_idle(struct loadgen *lg);

static void on_retry(uv_timer_t *t)
{
    struct conn *c = t->data;
    if (issuing(c->lg)) {
        conn_connect(c);
    }
}

static void on_tcp_closed(uv_handle_t *h)
{
    struct conn *c = h->data;
    struct loadgen *lg = c->lg;
    c->tcp_open = false;
    c->rlen = 0;
    if (lg->phase == CLOSING) {
        return;
    }
    if (issuing(lg)) {
        uv_timer_start(&c->retry, on_retry, RETRY_MS, 0);
    }
}

/* Closes the connection; a request in flight is abandoned. */
static void conn_close(struct conn *c)
{
    if (c->busy) {
        c->busy = false;
        c->lg->in_flight--;
        c->lg->answered++;
    }
    if (c->tcp_open && !uv_is_closing((uv_handle_t *)&c->tcp)) {
        uv_close((uv_handle_t *)&c->tcp, on_tcp_closed);
    }
}

static void conn_fail(struct conn *c, const char *kind, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

static void conn_fail(struct conn *c, const char *kind, const char *fmt, ...)
{
    char detail[WHY_LEN];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(detail, sizeof detail, fmt, ap);
    va_end(ap);
    count_error(c->lg, kind, detail);
    conn_close(c);
    finish_if_idle(c->lg);
}

static void on_alloc(uv_handle_t *h, size_t suggested, uv_buf_t *buf)
{
    struct conn *c = h->data;
    (void)suggested;
    size_t want = READ_CHUNK;
    if (c->head.complete) {
        uint64_t total = c->head.head_len + c->head.body_len;
        if (total > c->rlen && total - c->rlen > want) {
            want = (size_t)(total - c->rlen);
        }
    }
    if (c->rcap - c->rlen < want) {
        size_t cap = c->rcap == 0 ? READ_CHUNK : c->rcap;
        while (cap - c->rlen < want) {
            cap *= 2;
        }
        char *b = realloc(c->rbuf, cap);
        if (b == NULL) {
            *buf = uv_buf_init(NULL, 0); /* UNTESTED: ENOMEM; libuv fails
                                            the read with UV_ENOBUFS. */
            return;
        }
        c->rbuf = b;
        c->rcap = cap;
    }
    *buf = uv_buf_init(c->rbuf + c->rlen, (unsigned)(c->rcap - c->rlen));
}

static void keep_latency(struct loadgen *lg, uint64_t ns)
{
    struct loadgen_result *r = lg->out;
    if (r->n_lat == lg->lat_cap) {
        size_t cap = lg->lat_cap == 0 ? 65536 : lg->lat_cap * 2;
        uint32_t *l = realloc(r->lat_us, cap * sizeof *l);
        if (l == NULL) {
            lg->err = RQ_NOMEM; /* UNTESTED: ENOMEM only. */
            return;
        }
        r->lat_us = l;
        lg->lat_cap = cap;
    }
    uint64_t us = ns / 1000;
    r->lat_us[r->n_lat++] = us > UINT32_MAX ? UINT32_MAX : (uint32_t)us;
}

/* The whole answer is in c->rbuf. */
static void conn_answered(struct conn *c)
{
    struct loadgen *lg = c->lg;
    uint64_t now = uv_hrtime();
    const char *body = c->rbuf + c->head.head_len;
    size_t len = (size_t)c->head.body_len;
    bool close = c->head.close;
    bool extra = c->rlen > c->head.head_len + c->head.body_len;

    c->busy = false;
    lg->in_flight--;
    lg->answered++;
    if (c->head.status == 200) {
        uint64_t messages = 0;
        char why[WHY_LEN] = "";
        if (lg->cfg->answer(lg->cfg->data, c->id, c->seq, body, len, &messages,
                            why, sizeof why) != 0) {
            count_error(lg, "bad answer", why);
        } else if (lg->phase == MEASURE) {
            lg->out->answers++;
            lg->out->messages += messages;
            keep_latency(lg, now - c->sent_ns);
        }
    } else {
        char kind[32];
        snprintf(kind, sizeof kind, "HTTP %d", c->head.status);
        count_error(lg, kind, "");
        struct loadgen_result *r = lg->out;
        for (size_t i = 0; i < r->n_kinds; i++) {
            if (strcmp(r->kinds[i].kind, kind) == 0 &&
                r->kinds[i].first[0] == '\0') {
                snprintf(r->kinds[i].first, sizeof r->kinds[i].first,
                         "from %s: %.*s", c->target->name,
                         (int)(len < 200 ? len : 200), body);
            }
        }
    }
    c->head = (struct hresp){0};
    c->rlen = 0;
    if (extra) {
        /* One request is in flight at a time: bytes past its answer are
         * a server's mistake. */
        conn_fail(c, "malformed", "%s sent bytes after an answer",
                  c->target->name);
        return;
    }
    if (close || c->writing) {
        /* Answered before the request was all sent (a refusal): the
         * server will not read on, and c->write is still in use. */
        conn_close(c); /* Opened again by on_tcp_closed. */
        finish_if_idle(lg);
        return;
    }
    conn_send(c);
}

static void on_read(uv_stream_t *s, ssize_t nread, const uv_buf_t *buf)
{
    struct conn *c = s->data;
    (void)buf;
    if (nread == 0) {
        return;
    }
    if (nread < 0) {
        if (c->busy || nread != UV_EOF) {
            conn_fail(c, "closed", "%s: %s while a request was in flight",
                      c->target->name,
                      nread == UV_EOF ? "connection closed"
                                      : uv_strerror((int)nread));
        } else {
            conn_close(c); /* An idle connection closed by the server. */
        }
        return;
    }
    c->rlen += (size_t)nread;
    if (!c->busy) {
        conn_fail(c, "malformed", "%s sent bytes with no request in flight",
                  c->target->name);
        return;
    }
    if (!c->head.complete) {
        char why[WHY_LEN];
        if (hresp_head(c->rbuf, c->rlen, &c->head, why, sizeof why) != 0) {
            conn_fail(c, "malformed", "%s: %s", c->target->name, why);
            return;
        }
        if (!c->head.complete) {
            return;
        }
    }
    if (c->rlen >= c->head.head_len + c->head.body_len) {
        conn_answered(c);
    }
}

static void on_written(uv_write_t *w, int status)
{
    struct conn *c = w->data;
    c->writing = false;
    if (status < 0 && status != UV_ECANCELED && c->busy) {
        conn_fail(c, "closed", "%s: sending: %s", c->target->name,
                  uv_strerror(status));
    }
}

static void conn_send(struct conn *c)
{
    struct loadgen *lg = c->lg;
    if (!issuing(lg)) {
        finish_if_idle(lg);
        return;
    }
    c->seq = lg->next_seq++;
    c->req = (struct loadgen_req){.scratch = c->scratch};
    lg->cfg->next(lg->cfg->data, c->id, c->seq, &c->req);
    assert(c->req.nbufs >= 1 && c->req.nbufs <= 2);
    c->busy = true;
    lg->in_flight++;
    c->sent_ns = uv_hrtime();
    c->write.data = c;
    c->writing = true;
    int rv = uv_write(&c->write, (uv_stream_t *)&c->tcp, c->req.bufs,
                      c->req.nbufs, on_written);
    if (rv != 0) {
        c->writing = false;
        conn_fail(c, "closed", "%s: sending: %s", c->target->name,
                  uv_strerror(rv));
    }
}

static void on_connected(uv_connect_t *req, int status)
{
    struct conn *c = req->data;
    if (status == UV_ECANCELED) {
        return;
    }
    if (status < 0) {
        conn_fail(c, "connect", "%s: %s", c->target->name, uv_strerror(status));
        return;
    }
    int rv = uv_read_start((uv_stream_t *)&c->tcp, on_alloc, on_read);
    if (rv != 0) {
        conn_fail(c, "connect", "%s: %s", c->target->name, uv_strerror(rv));
        return;
    }
    conn_send(c);
}

static void conn_connect(struct conn *c)
{
    int rv = uv_tcp_init(&c->lg->loop, &c->tcp);
    if (rv != 0) {
        count_error(c->lg, "connect", uv_strerror(rv)); /* UNTESTED */
        return;
    }
    c->tcp.data = c;
    c->tcp_open = true;
    c->head = (struct hresp){0};
    c->rlen = 0;
    uv_tcp_nodelay(&c->tcp, 1);
    c->connect.data = c;
    rv =
        uv_tcp_connect(&c->connect, &c->tcp,
                       (const struct sockaddr *)&c->target->addr, on_connected);
    if (rv != 0) {
        conn_fail(c, "connect", "%s: %s", c->target->name, uv_strerror(rv));
    }
}

/* ---- The run ---- */

static void on_handle_closed(uv_handle_t *h)
{
    (void)h;
}

static void close_all(struct loadgen *lg)
{
    if (lg->phase == CLOSING) {
        return;
    }
    if (lg->phase == MEASURE) {
        uint64_t now = uv_hrtime();
        lg->out->seconds = (double)(now - lg->window_ns) / 1e9;
        lg->out->cpu_seconds = cpu_now() - lg->cpu_at_window;
    }
    lg->phase = CLOSING;
    uv_close((uv_handle_t *)&lg->tick, on_handle_closed);
    for (unsigned i = 0; i < lg->cfg->conns; i++) {
        struct conn *c = &lg->conns[i];
        uv_close((uv_handle_t *)&c->retry, on_handle_closed);
        if (c->busy) {
            c->busy = false;
            lg->in_flight--;
        }
        if (c->tcp_open && !uv_is_closing((uv_handle_t *)&c->tcp)) {
            uv_close((uv_handle_t *)&c->tcp, on_tcp_closed);
        }
    }
}

/* Ends the window: the answers read from now on are not counted. */
static void end_window(struct loadgen *lg, uint64_t now)
{
    if (lg->phase == MEASURE) {
        lg->out->seconds = (double)(now - lg->window_ns) / 1e9;
        lg->out->cpu_seconds = cpu_now() - lg->cpu_at_window;
    }
    lg->phase = DRAIN;
    lg->drain_ns = now;
}

static void finish_if_idle(struct loadgen *lg)
{
    if (lg->cfg->max_requests != 0 && lg->phase == MEASURE &&
        lg->answered >= lg->cfg->max_requests) {
        end_window(lg, uv_hrtime());
    }
    if (lg->phase == DRAIN && lg->in_flight == 0) {
        close_all(lg);
    }
}

static void on_tick(uv_timer_t *t)
{
    struct loadgen *lg = t->data;
    const struct loadgen_config *cfg = lg->cfg;
    uint64_t now = uv_hrtime();

    if (cfg->stop != NULL && *cfg->stop) {
        lg->out->interrupted = true;
        end_window(lg, now);
        close_all(lg);
        return;
    }
    if (lg->phase == WARMUP && now - lg->t0_ns >= cfg->warmup_ms * 1000000) {
        lg->phase = MEASURE;
        lg->window_ns = now;
        lg->last_progress_ns = now;
        lg->cpu_at_window = cpu_now();
    }
    if (lg->phase == MEASURE &&
        now - lg->window_ns >= cfg->measure_ms * 1000000) {
        end_window(lg, now);
    }
    if (lg->phase == DRAIN &&
        (lg->in_flight == 0 || now - lg->drain_ns >= DRAIN_MS * 1000000ull)) {
        close_all(lg);
        return;
    }
    uint64_t since = lg->phase == MEASURE ? lg->window_ns : lg->t0_ns;
    if (cfg->progress != NULL && lg->phase != DRAIN &&
        now - lg->last_progress_ns >= PROGRESS_MS * 1000000ull) {
        double dt = (double)(now - lg->last_progress_ns) / 1e9;
        struct loadgen_progress p = {
            .warming = lg->phase == WARMUP,
            .seconds = (double)(now - since) / 1e9,
            .messages = lg->out->messages,
            .msgs_per_s =
                (double)(lg->out->messages - lg->progress_messages) / dt,
            .errors = lg->out->errors,
            .in_flight = lg->in_flight,
        };
        lg->progress_messages = lg->out->messages;
        lg->last_progress_ns = now;
        cfg->progress(cfg->data, &p);
    }
}

int loadgen_run(const struct loadgen_config *cfg, struct loadgen_result *out)
{
    memset(out, 0, sizeof *out);
    if (cfg->n_targets == 0 || cfg->conns == 0) {
        return RQ_INVALID;
    }
    struct loadgen lg = {.cfg = cfg, .out = out};
    lg.conns = calloc(cfg->conns, sizeof *lg.conns);
    if (lg.conns == NULL || uv_loop_init(&lg.loop) != 0) {
        free(lg.conns); /* UNTESTED: ENOMEM only. */
        return RQ_NOMEM;
    }
    uv_timer_init(&lg.loop, &lg.tick);
    lg.tick.data = &lg;
    lg.t0_ns = uv_hrtime();
    lg.last_progress_ns = lg.t0_ns;
    lg.phase = WARMUP;
    if (cfg->max_requests != 0 || cfg->warmup_ms == 0) {
        lg.phase = MEASURE;
        lg.window_ns = lg.t0_ns;
        lg.cpu_at_window = cpu_now();
    }
    uv_timer_start(&lg.tick, on_tick, TICK_MS, TICK_MS);
    for (unsigned i = 0; i < cfg->conns; i++) {
        struct conn *c = &lg.conns[i];
        c->lg = &lg;
        c->id = i;
        c->target = &cfg->targets[i % cfg->n_targets];
        uv_timer_init(&lg.loop, &c->retry);
        c->retry.data = c;
        conn_connect(c);
    }
    uv_run(&lg.loop, UV_RUN_DEFAULT);
    int rv = uv_loop_close(&lg.loop);
    assert(rv == 0);
    (void)rv;
    for (unsigned i = 0; i < cfg->conns; i++) {
        free(lg.conns[i].rbuf);
    }
    free(lg.conns);
    return lg.err;
}

void loadgen_result_clear(struct loadgen_result *r)
{
    free(r->lat_us);
    r->lat_us = NULL;
    r->n_lat = 0;
}

static int cmp_u32(const void *a, const void *b)
{
    uint32_t x = *(const uint32_t *)a, y = *(const uint32_t *)b;
    return x < y ? -1 : x > y;
}

double loadgen_quantile_ms(struct loadgen_result *r, double q)
{
    if (r->n_lat == 0) {
        return -1;
    }
    if (!r->lat_sorted) {
        qsort(r->lat_us, r->n_lat, sizeof *r->lat_us, cmp_u32);
        r->lat_sorted = true;
    }
    /* Nearest rank: the smallest value with at least q of them at or
     * below it. */
    double rank = q * (double)r->n_lat;
    size_t i = (size_t)rank;
    if ((double)i < rank) {
        i++;
    }
    i = i == 0 ? 0 : i - 1;
    if (i >= r->n_lat) {
        i = r->n_lat - 1;
    }
    return (double)r->lat_us[i] / 1000.0;
}

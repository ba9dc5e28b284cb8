/*
 * Registration and heartbeats towards the managers (see registrar.h), over
 * rq_httpc on the broker's loop. One request at a time: a heartbeat is not
 * sent while the one before is still out, so a slow manager delays
 * heartbeats instead of piling them up.
 *
 * Timing. Heartbeats go every heartbeat_ms to the current manager, and
 * time out after as long (a full report after FULL_REPORT_TIMEOUT_MS); when
 * one fails, the next manager is tried after RETRY_MS, until each has
 * failed once in a row, after which the regular interval applies again.
 * Registration retries back off from RETRY_MS to BACKOFF_MAX_MS, a
 * manager's Retry-After (503: no leader yet) counting as a lower bound.
 */
#include "registrar.h"

#include <assert.h>
#include <inttypes.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "hbreport.h"
#include "rq_err.h"
#include "rq_httpc.h"
#include "rq_log.h"
#include "rq_uid.h"

#define LOG_TAG "registrar"

#define DEFAULT_HEARTBEAT_MS 1000
#define RETRY_MS 100
#define BACKOFF_MAX_MS 5000
#define REGISTER_TIMEOUT_MS 5000
#define FULL_REPORT_TIMEOUT_MS 5000
/* After managers of another cluster answered: they may be restored. */
#define REFUSED_RETRY_MS 3000
#define URL_MAX 256

enum state {
    REGISTERING,
    REGISTERED,
};

struct registrar {
    uv_loop_t *loop;
    struct rq_httpc *httpc;
    uv_timer_t timer;
    uint64_t id;
    char raft_addr[URL_MAX];
    char http_addr[URL_MAX];
    char sender[32]; /* "broker-ID", who signs. */
    struct rq_httpc_signer sign;
    char managers[REGISTRAR_MANAGERS_MAX][URL_MAX];
    size_t n_managers;
    size_t current; /* Index of the manager requests go to. */
    unsigned heartbeat_ms;
    registrar_summary_cb summary;
    registrar_bind_cb bind;
    void *summary_data;

    enum state state;
    bool in_flight;
    unsigned backoff_ms;   /* Of registration attempts. */
    unsigned fails_in_row; /* Of heartbeats, or of registrations. */
    bool complained;       /* A failure streak has been logged. */
    bool registered_once;
    uint64_t uid;           /* Bound to; 0: not yet. */
    bool refused;           /* The last answer named another cluster uid. */
    char refusal[320];      /* Why, for /readyz. */
    char last_why[256];     /* The last failed registration's answer. */
    struct hbreport report; /* The replicas, as deltas (hbreport.h). */

    bool closing;
    unsigned closes_pending;
    void (*close_cb)(void *data);
    void *close_data;
};

static void on_timer(uv_timer_t *t);

/* Copies one manager URL out of @s (up to @len bytes), adding "http://"
 * when no scheme is given and dropping trailing slashes. */
static int manager_add(struct registrar *r, const char *s, size_t len,
                       char *why, size_t whyn)
{
    while (len > 0 && (*s == ' ' || *s == '\t')) {
        s++;
        len--;
    }
    while (len > 0 && (s[len - 1] == ' ' || s[len - 1] == '/')) {
        len--;
    }
    if (len == 0) {
        return 0; /* An empty item, as in "a,,b" or a trailing comma. */
    }
    if (r->n_managers == REGISTRAR_MANAGERS_MAX) {
        rq_why(why, whyn, "--managers lists more than %d managers",
               REGISTRAR_MANAGERS_MAX);
        return RQ_INVALID;
    }
    bool scheme = (len > 7 && strncmp(s, "http://", 7) == 0) ||
                  (len > 8 && strncmp(s, "https://", 8) == 0);
    if (!scheme && memchr(s, '/', len) != NULL) {
        rq_why(why, whyn, "manager '%.*s' is not http://HOST:PORT", (int)len,
               s);
        return RQ_INVALID;
    }
    const char *prefix = scheme ? "" : "http://";
    if (strlen(prefix) + len >= URL_MAX) {
        rq_why(why, whyn, "manager '%.*s' is too long", (int)len, s);
        return RQ_INVALID;
    }
    snprintf(r->managers[r->n_managers++], URL_MAX, "%s%.*s", prefix, (int)len,
             s);
    return 0;
}

int registrar_new(uv_loop_t *loop, const struct registrar_config *cfg,
                  registrar_summary_cb summary, void *data,
                  struct registrar **out, char *why, size_t whyn)
{
    int rv;
    struct registrar *r = calloc(1, sizeof *r);
    if (r == NULL) {
        rq_why(why, whyn, "out of memory"); /* UNTESTED: ENOMEM only. */
        return RQ_NOMEM;
    }
    const char *s = cfg->managers != NULL ? cfg->managers : "";
    while (*s != '\0') {
        const char *comma = strchr(s, ',');
        size_t len = comma != NULL ? (size_t)(comma - s) : strlen(s);
        rv = manager_add(r, s, len, why, whyn);
        if (rv != 0) {
            goto err_after_alloc;
        }
        s += len + (comma != NULL);
    }
    if (r->n_managers == 0) {
        rq_why(why, whyn, "--managers lists no manager");
        rv = RQ_INVALID;
        goto err_after_alloc;
    }
    if (strlen(cfg->raft_addr) >= URL_MAX ||
        strlen(cfg->http_addr) >= URL_MAX) {
        rq_why(why, whyn, "an address is too long");
        rv = RQ_INVALID;
        goto err_after_alloc;
    }
    rv = rq_httpc_new(loop, &r->httpc, why, whyn);
    if (rv != 0) {
        goto err_after_alloc; /* UNTESTED: ENOMEM only. */
    }
    if (cfg->tls != NULL) {
        rq_httpc_set_tls(r->httpc, cfg->tls);
    }
    r->loop = loop;
    r->id = cfg->id;
    snprintf(r->raft_addr, sizeof r->raft_addr, "%s", cfg->raft_addr);
    snprintf(r->http_addr, sizeof r->http_addr, "%s", cfg->http_addr);
    snprintf(r->sender, sizeof r->sender, "broker-%" PRIu64, cfg->id);
    r->sign.key = cfg->b2m_key;
    r->sign.sender = r->sender;
    r->heartbeat_ms =
        cfg->heartbeat_ms != 0 ? cfg->heartbeat_ms : DEFAULT_HEARTBEAT_MS;
    r->summary = summary;
    r->bind = cfg->bind;
    r->uid = cfg->cluster_uid;
    r->summary_data = data;
    r->state = REGISTERING;
    hbreport_init(&r->report);
    uv_timer_init(loop, &r->timer);
    r->timer.data = r;
    uv_timer_start(&r->timer, on_timer, 0, 0);
    *out = r;
    return 0;

err_after_alloc:
    free(r);
    return rv;
}

/* ---- Requests ---- */

static void on_answer(void *data, const struct rq_httpc_resp *resp);

/* POSTs @body (stolen) to @path at the current manager. */
static void post(struct registrar *r, const char *path, json_t *body,
                 unsigned timeout_ms)
{
    char url[URL_MAX + 128];
    char *text = body != NULL ? json_dumps(body, JSON_COMPACT) : NULL;
    json_decref(body);
    if (text == NULL) {
        /* UNTESTED: ENOMEM only. Try again at the next tick. */
        uv_timer_start(&r->timer, on_timer, r->heartbeat_ms, 0);
        return;
    }
    snprintf(url, sizeof url, "%s%s", r->managers[r->current], path);
    struct rq_httpc_req req = {
        .method = "POST",
        .url = url,
        .body = text,
        .body_len = strlen(text),
        .timeout_ms = timeout_ms,
        .sign = &r->sign,
    };
    int rv = rq_httpc_do(r->httpc, &req, on_answer, r);
    free(text);
    if (rv != 0) {
        rq_log(RQ_WARN, "cannot send to manager %s: %s",
               r->managers[r->current], rq_strerror(rv));
        uv_timer_start(&r->timer, on_timer, r->heartbeat_ms, 0);
        return;
    }
    r->in_flight = true;
}

/* Adds the uid the broker is bound to, if any, to @body. */
static json_t *with_uid(const struct registrar *r, json_t *body)
{
    char text[RQ_UID_TEXT];
    if (body != NULL && r->uid != 0) {
        rq_uid_format(r->uid, text);
        json_object_set_new(body, "cluster_uid", json_string(text));
    }
    return body;
}

static void send_register(struct registrar *r)
{
    json_t *body =
        json_pack("{s:I,s:s,s:s}", "id", (json_int_t)r->id, "raft_addr",
                  r->raft_addr, "http_addr", r->http_addr);
    /* A process that starts holding nothing may take back the id of a
     * removed broker (manager/README.md). */
    json_t *summary = r->summary(r->summary_data);
    if (body != NULL && !r->registered_once &&
        json_array_size(json_object_get(summary, "replicas")) == 0) {
        json_object_set_new(body, "fresh", json_true());
    }
    json_decref(summary);
    post(r, "/internal/brokers/register", with_uid(r, body),
         REGISTER_TIMEOUT_MS);
}

static void send_heartbeat(struct registrar *r)
{
    char path[64];
    json_t *body = r->summary(r->summary_data);
    if (body != NULL) {
        hbreport_prepare(&r->report, body);
    }
    snprintf(path, sizeof path, "/internal/brokers/%" PRIu64 "/heartbeat",
             r->id);
    /* A heartbeat late by a whole interval is worth nothing, but a full
     * report is one the leader asked for (or the first): of thousands of
     * replicas it takes longer to read, and sent again on a timeout it
     * would cost the leader twice (manager/hbmerge.h). */
    const json_t *report = json_object_get(body, "report");
    bool full = report == NULL ||
                json_integer_value(json_object_get(report, "base")) == 0;
    post(r, path, with_uid(r, body),
         full ? FULL_REPORT_TIMEOUT_MS : r->heartbeat_ms);
}

static void on_timer(uv_timer_t *t)
{
    struct registrar *r = t->data;
    if (r->closing || r->in_flight) {
        return; /* UNTESTED: the timer is stopped while a request is out. */
    }
    if (r->state == REGISTERING) {
        send_register(r);
    } else {
        send_heartbeat(r);
    }
}

/* What went wrong, in a few words, for the log. */
static void describe(const struct rq_httpc_resp *resp, char *out, size_t n)
{
    if (resp->err != 0) {
        snprintf(out, n, "%s", resp->why != NULL ? resp->why : "");
        return;
    }
    json_t *o = json_loadb(resp->body, resp->body_len, 0, NULL);
    const char *msg = json_string_value(json_object_get(o, "message"));
    snprintf(out, n, "HTTP %ld%s%s", resp->status, msg != NULL ? ": " : "",
             msg != NULL ? msg : "");
    json_decref(o);
}

static void next_manager(struct registrar *r)
{
    r->current = (r->current + 1) % r->n_managers;
}

/*
 * Binds to the cluster uid a 200 answer names: 0 (bound, or no uid named),
 * RQ_EXISTS (another cluster's: r->refusal says so, logged the first
 * time), RQ_IO (a uid that is not one, or the binding not written; @what
 * says why).
 */
static int bind_answer(struct registrar *r, const struct rq_httpc_resp *resp,
                       char *what, size_t n)
{
    json_t *o = json_loadb(resp->body, resp->body_len, 0, NULL);
    json_t *field = json_object_get(o, "cluster_uid");
    uint64_t uid;
    int rv = 0;
    if (r->bind == NULL || field == NULL) {
        json_decref(o);
        return 0;
    }
    if (rq_uid_parse(json_string_value(field), &uid) != 0) {
        snprintf(what, n, "the answer's cluster_uid is not a cluster uid");
        json_decref(o);
        return RQ_IO;
    }
    json_decref(o);
    rv = r->bind(r->summary_data, uid, what, n);
    if (rv == 0) {
        r->uid = uid;
    }
    if (rv == RQ_EXISTS) {
        if (!r->refused) {
            rq_log(RQ_ERROR,
                   "manager %s: %s; refusing to register (asking again "
                   "every %d s)",
                   r->managers[r->current], what, REFUSED_RETRY_MS / 1000);
        }
        r->refused = true;
        snprintf(r->refusal, sizeof r->refusal, "%s", what);
    } else if (rv == 0) {
        r->refused = false;
    }
    return rv;
}

/* A manager of another cluster answered: register again (and be refused
 * again) later, from the next manager. */
static void refused(struct registrar *r)
{
    r->state = REGISTERING;
    r->complained = false;
    next_manager(r);
    uv_timer_start(&r->timer, on_timer, REFUSED_RETRY_MS, 0);
}

static void on_registered(struct registrar *r, const struct rq_httpc_resp *resp)
{
    char what[256];
    if (resp->err == 0 && (resp->status == 200 || resp->status == 409)) {
        int rv = bind_answer(r, resp, what, sizeof what);
        if (rv == RQ_EXISTS) {
            refused(r);
            return;
        }
        if (rv != 0) {
            rq_log(RQ_ERROR, "registering with manager %s: %s",
                   r->managers[r->current], what);
            next_manager(r);
            uv_timer_start(&r->timer, on_timer, BACKOFF_MAX_MS, 0);
            return;
        }
    }
    if (resp->err == 0 && resp->status == 200) {
        rq_log(RQ_INFO, "registered with manager %s as broker %" PRIu64 "%s",
               r->managers[r->current], r->id,
               r->registered_once ? " (again)" : "");
        r->last_why[0] = '\0';
        r->state = REGISTERED;
        r->registered_once = true;
        hbreport_reset(&r->report); /* The first heartbeat is full. */
        r->backoff_ms = 0;
        r->fails_in_row = 0;
        r->complained = false;
        uv_timer_start(&r->timer, on_timer, 0, 0); /* Heartbeat at once. */
        return;
    }
    describe(resp, what, sizeof what);
    snprintf(r->last_why, sizeof r->last_why, "%s", what);
    if (!r->complained) {
        rq_log(RQ_WARN,
               "cannot register with manager %s (%s); retrying over %zu "
               "manager%s",
               r->managers[r->current], what, r->n_managers,
               r->n_managers == 1 ? "" : "s");
        r->complained = true;
    } else {
        rq_log(RQ_DEBUG, "registering with %s: %s", r->managers[r->current],
               what);
    }
    unsigned ms = r->backoff_ms == 0 ? RETRY_MS : r->backoff_ms * 2;
    r->backoff_ms = ms > BACKOFF_MAX_MS ? BACKOFF_MAX_MS : ms;
    unsigned wait = r->backoff_ms;
    if (resp->retry_after != NULL) {
        unsigned long s = strtoul(resp->retry_after, NULL, 10);
        unsigned asked =
            s * 1000 > BACKOFF_MAX_MS ? BACKOFF_MAX_MS : (unsigned)s * 1000;
        wait = asked > wait ? asked : wait;
    }
    next_manager(r);
    uv_timer_start(&r->timer, on_timer, wait, 0);
}

static void on_heartbeat(struct registrar *r, const struct rq_httpc_resp *resp)
{
    char what[256];
    const char *url = r->managers[r->current];
    if (resp->err == 0 && (resp->status == 200 || resp->status == 409) &&
        bind_answer(r, resp, what, sizeof what) == RQ_EXISTS) {
        refused(r);
        return;
    }
    if (resp->err == 0 && resp->status == 200) {
        json_t *o = json_loadb(resp->body, resp->body_len, 0, NULL);
        const char *report = json_string_value(json_object_get(o, "report"));
        hbreport_answered(&r->report, true,
                          report != NULL && strcmp(report, "full") == 0);
        json_decref(o);
        if (r->complained) {
            rq_log(RQ_INFO, "heartbeats answered again, by manager %s", url);
            r->complained = false;
        }
        r->fails_in_row = 0;
        uv_timer_start(&r->timer, on_timer, r->heartbeat_ms, 0);
        return;
    }
    hbreport_answered(&r->report, false, false);
    if (resp->err == 0 && resp->status == 404) {
        rq_log(RQ_INFO,
               "manager %s does not know broker %" PRIu64 "; registering again",
               url, r->id);
        r->state = REGISTERING;
        r->complained = false;
        r->fails_in_row = 0;
        uv_timer_start(&r->timer, on_timer, 0, 0);
        return;
    }
    describe(resp, what, sizeof what);
    next_manager(r);
    if (!r->complained) {
        rq_log(RQ_WARN, "manager %s unreachable (%s); heartbeats go to %s", url,
               what, r->managers[r->current]);
        r->complained = true;
    } else {
        rq_log(RQ_DEBUG, "heartbeat to %s: %s", url, what);
    }
    r->fails_in_row++;
    /* The next manager at once, until each has failed in a row. */
    unsigned wait =
        r->fails_in_row % r->n_managers != 0 ? RETRY_MS : r->heartbeat_ms;
    uv_timer_start(&r->timer, on_timer, wait, 0);
}

static void on_answer(void *data, const struct rq_httpc_resp *resp)
{
    struct registrar *r = data;
    r->in_flight = false;
    if (r->closing) {
        return; /* Canceled by registrar_close(). */
    }
    if (r->state == REGISTERING) {
        on_registered(r, resp);
    } else {
        on_heartbeat(r, resp);
    }
}

bool registrar_ready(const struct registrar *r, char *why, size_t whyn)
{
    if (r->state == REGISTERED) {
        return true;
    }
    if (r->refused) {
        snprintf(why, whyn, "%s", r->refusal);
    } else if (r->last_why[0] != '\0') {
        snprintf(why, whyn,
                 "not registered with the managers yet (the last answer: %s)",
                 r->last_why);
    } else {
        snprintf(why, whyn, "not registered with the managers yet");
    }
    return false;
}

/* ---- Closing ---- */

static void close_step(struct registrar *r)
{
    assert(r->closes_pending > 0);
    if (--r->closes_pending > 0) {
        return;
    }
    void (*cb)(void *) = r->close_cb;
    void *data = r->close_data;
    hbreport_clear(&r->report);
    free(r);
    if (cb != NULL) {
        cb(data);
    }
}

static void on_timer_closed(uv_handle_t *h)
{
    close_step(h->data);
}

static void on_httpc_closed(void *data)
{
    close_step(data);
}

void registrar_close(struct registrar *r, void (*cb)(void *data), void *data)
{
    assert(!r->closing);
    r->closing = true;
    r->close_cb = cb;
    r->close_data = data;
    r->closes_pending = 2;
    uv_close((uv_handle_t *)&r->timer, on_timer_closed);
    rq_httpc_close(r->httpc, on_httpc_closed, r);
}

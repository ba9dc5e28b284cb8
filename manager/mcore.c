/*
 * The manager core (mcore.h): proposing to the metadata group, consistent
 * reads, forwarding to the leader, holding requests and calling peers, on
 * the handles manager.c owns. It knows no module above it; manager.c tells
 * it of leadership changes, ticks, applied entries and shutdown.
 *
 * - Writes are proposed by the ready leader only; a follower forwards a
 *   request that must be served by the leader over HTTP, marked with
 *   X-Raftq-Forwarded so it is never forwarded twice (mcore_forward).
 * - Consistent reads (mcore_read): on the leader a barrier proves the
 *   leadership and that everything committed before the read is applied;
 *   several reads share one barrier. A follower asks the leader for its
 *   read index (GET /internal/read-index) and waits until it has applied
 *   that far.
 */
#include "mcore.h"

#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <uv.h>

#include "mbatch.h"
#include "mcmd.h"
#include "mstore.h"
#include "policy.h"
#include "rq_codes.h"
#include "rq_config.h"
#include "rq_err.h"
#include "rq_hash.h"
#include "rq_httpsig.h"
#include "rq_list.h"
#include "rq_log.h"
#include "rq_record.h"
#include "rq_uid.h"
#include "rq_wire.h"

#define LOG_TAG "mcore"

#define READ_TIMEOUT_MS 5000
#define FORWARD_TIMEOUT_MS 15000
/* The longest long poll a forward waits for on top (as the group fetch's
 * own bound). */
#define FORWARD_WAIT_MAX_MS 60000
/* How much longer than its deadline a follower waits for the answer to a
 * forwarded consume. */
#define CONSUME_ANSWER_GRACE_MS 1000
#define PEER_TIMEOUT_MS 3000
#define URL_LEN 8192

struct mcore {
    struct mcore_handles h; /* node and httpc: NULL once closed. */
    uint64_t attempts;
    struct mcore_modules mods;

    bool closing;
    struct rq_node_info info; /* As last reported by the node. */
    bool leading;             /* The ready leader. */

    /* Consistent reads on the leader: one barrier serves every read that
     * arrived before it was issued. */
    struct rq_list barrier_next;    /* Wait for the next barrier. */
    struct rq_list barrier_current; /* Wait for the one in flight. */
    bool barrier_in_flight;
    /* Consistent reads on a follower: waiting to apply a read index. */
    struct rq_list applied_waiters;

    /* Reads completing on the next loop turn (refused at once). */
    struct rq_list deferred;
    uv_timer_t defer;

    /* Proposals waiting for the next idle phase, and batches in flight. */
    struct rq_list proposals;
    struct rq_list batches;
    uv_idle_t propose;
    uint64_t batch_seq;

    /* Whether forwarded consumes go on kept connections now. */
    struct policy_forward forward_policy;

    struct manager_stats stats;

    /* Calls to brokers name the cluster uid (RQ_CLUSTER_UID_HEADER), once
     * one is committed: each body kind's header lines with it. */
    uint64_t uid;
    char uid_line[64];
    const char *uid_headers[3][4];
};

/* mcore_unavailable and mcore_hold take no core: the one route whose
 * failures say more, and what they say, are the process's (one core). */
static void (*outcome)(struct rq_http_req *req, json_t *body, bool sent);

/* ---- Small services ---- */

uint64_t mcore_wall_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}

/*
 * A 503 with Retry-After. @sent says whether the leader may have received
 * the request (it was forwarded and no answer came back): then a consume
 * may have moved its consumer's offset, and its answer says so
 * (mcore_handles.outcome); every other 503 of a consume is given before
 * the consume runs.
 */
static void unavailable(struct rq_http_req *req, bool sent, const char *code,
                        const char *fmt, va_list ap)
{
    char msg[512];
    vsnprintf(msg, sizeof msg, fmt, ap);
    json_t *body = json_pack("{s:s,s:s,s:s}", "status", "failure", "code", code,
                             "message", msg);
    if (body == NULL) {
        /* UNTESTED: ENOMEM, or a message that is not UTF-8. */
        rq_http_set_header(req, "Retry-After", "1");
        rq_http_reply_error(req, 503, "%s", msg);
        return;
    }
    if (outcome != NULL) {
        outcome(req, body, sent);
    }
    rq_http_set_header(req, "Retry-After", "1");
    rq_http_reply(req, 503, body);
}

void mcore_unavailable(struct rq_http_req *req, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    unavailable(req, false, "unavailable", fmt, ap);
    va_end(ap);
}

/* The same when no leader manager is known. */
static void no_leader(struct rq_http_req *req, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

static void no_leader(struct rq_http_req *req, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    unavailable(req, false, RQ_CODE_NO_LEADER, fmt, ap);
    va_end(ap);
}

static void on_held_abort(struct rq_http_req *req, void *data)
{
    struct rq_http_req **slot = data;
    *slot = NULL;
    mcore_unavailable(req,
                      "the request was abandoned: the client went "
                      "away or the manager is shutting down");
}

void mcore_hold(struct rq_http_req *req, struct rq_http_req **slot)
{
    *slot = req;
    rq_http_on_abort(req, on_held_abort, slot);
}

static const char *const peer_headers[] = {"Content-Type: application/json",
                                           NULL};
static const char *const records_headers[] = {
    "Content-Type: " RQ_RECORD_BODY_TYPE, NULL};
static const char *const accept_records_headers[] = {
    "Content-Type: application/json", "Accept: " RQ_RECORD_BODY_TYPE, NULL};

/* Starts @req, or refuses with RQ_SHUTDOWN once the manager is closing. */
static int call(struct mcore *core, const struct rq_httpc_req *req,
                rq_httpc_cb cb, void *data)
{
    if (core->closing || core->h.httpc == NULL) {
        return RQ_SHUTDOWN;
    }
    return rq_httpc_do(core->h.httpc, req, cb, data);
}

/* The header lines of a call to a broker: @body's, and the cluster uid
 * once the store has one, so that a broker bound to another cluster
 * refuses it (DESIGN.md section 17). */
static const char *const *broker_headers(struct mcore *core,
                                         enum mcore_body body,
                                         const char *const *plain)
{
    uint64_t uid = mstore_cluster_uid(core->h.store);
    if (uid == 0) {
        return plain;
    }
    if (uid != core->uid) {
        core->uid = uid;
        snprintf(core->uid_line, sizeof core->uid_line,
                 RQ_CLUSTER_UID_HEADER ": %016" PRIx64, uid);
        static const char *const *const kinds[3] = {
            peer_headers, records_headers, accept_records_headers};
        for (size_t k = 0; k < 3; k++) {
            size_t i = 0;
            while (kinds[k][i] != NULL) {
                core->uid_headers[k][i] = kinds[k][i];
                i++;
            }
            core->uid_headers[k][i++] = core->uid_line;
            core->uid_headers[k][i] = NULL;
        }
    }
    return core->uid_headers[body];
}

int mcore_call(struct mcore *core, enum mcore_peer to, enum mcore_body body,
               struct rq_httpc_req *req, rq_httpc_cb cb, void *data)
{
    req->headers = body == MCORE_RECORDS          ? records_headers
                   : body == MCORE_ACCEPT_RECORDS ? accept_records_headers
                                                  : peer_headers;
    if (to == MCORE_BROKER) {
        req->headers = broker_headers(core, body, req->headers);
    }
    req->sign = to == MCORE_BROKER ? core->h.to_brokers : core->h.to_managers;
    return call(core, req, cb, data);
}

const char *mcore_leader_http(const struct mcore *core, char *buf, size_t n)
{
    struct mstore_manager mm;
    uint64_t leader = core->info.leader_id;
    if (leader == 0 ||
        mstore_manager(core->h.store, (uint32_t)leader, &mm) != 0 ||
        mm.http_addr[0] == '\0') {
        return NULL;
    }
    snprintf(buf, n, "%s", mm.http_addr);
    return buf;
}

uint64_t mcore_producer_id(struct mcore *core)
{
    return rq_hash_u64(core->h.origin + ++core->attempts) & INT64_MAX;
}

/* ---- Proposals ----
 *
 * A proposal waits in core->proposals until the loop's next idle phase
 * (an idle handle runs once per turn, before the loop polls, and keeps it
 * from blocking while something waits), so what one turn brought goes to
 * Raft together: a lone proposal as its own entry, as before, several as
 * one batch entry (mbatch.h) whose results are handed back by nonce
 * (mcore_batch_applied) and given out in order. Order is kept: the queue
 * is proposed in arrival order, each flush before the next.
 */

struct proposal {
    struct rq_list link;
    rq_node_done_cb cb;
    void *data;
    struct rq_buf cmd; /* Encoded. */
};

/* A batch entry in flight, until its callback. */
struct batch {
    struct rq_list link; /* core->batches */
    uint64_t nonce;
    size_t n;
    bool have_results;
    uint64_t *results;        /* n, in the same allocation. */
    struct proposal *props[]; /* n, in order. */
};

static void proposal_free(struct proposal *p)
{
    rq_buf_close(&p->cmd);
    free(p);
}

/* Ends @p with @status (not 0) and frees it. */
static void proposal_fail(struct proposal *p, int status)
{
    rq_node_done_cb cb = p->cb;
    void *data = p->data;
    proposal_free(p);
    cb(data, status, 0);
}

/* Answers every proposer of @b in order, with its result when @status is
 * 0, and frees @b. A proposer may propose again from its callback. */
static void batch_end(struct batch *b, int status)
{
    for (size_t i = 0; i < b->n; i++) {
        struct proposal *p = b->props[i];
        rq_node_done_cb cb = p->cb;
        void *data = p->data;
        proposal_free(p);
        cb(data, status, status == 0 ? b->results[i] : 0);
    }
    free(b);
}

static void on_batch_applied(void *data, int status, uint64_t result)
{
    struct batch *b = data;
    (void)result;
    rq_list_remove(&b->link);
    if (status == 0 && !b->have_results) {
        /* UNTESTED: applied here, so the store handed the results over. */
        rq_log(RQ_ERROR, "batch %016" PRIx64 " applied without its results",
               b->nonce);
        status = RQ_RAFT;
    }
    batch_end(b, status);
}

void mcore_batch_applied(struct mcore *core, uint64_t nonce,
                         const uint64_t *results, size_t n)
{
    for (struct rq_list *it = core->batches.next; it != &core->batches;
         it = it->next) {
        struct batch *b = RQ_LIST_ENTRY(it, struct batch, link);
        if (b->nonce == nonce && b->n == n && !b->have_results) {
            memcpy(b->results, results, n * sizeof *results);
            b->have_results = true;
            return;
        }
    }
}

static void propose_one(struct mcore *core);

/* Proposes the first @n queued proposals as one batch entry. */
static void propose_batch(struct mcore *core, size_t n)
{
    struct batch *b =
        malloc(sizeof *b + n * (sizeof b->props[0] + sizeof b->results[0]));
    if (b == NULL) {
        propose_one(core); /* UNTESTED: ENOMEM only; one at a time. */
        return;
    }
    *b = (struct batch){
        .nonce = rq_hash_u64(rq_hash_u64(core->h.origin) + ++core->batch_seq),
        .n = n,
        .results = (uint64_t *)(void *)&b->props[n],
    };
    struct rq_buf buf;
    rq_buf_init(&buf);
    mbatch_begin(&buf, mcore_wall_ms(), b->nonce);
    for (size_t i = 0; i < n; i++) {
        struct proposal *p =
            RQ_LIST_ENTRY(core->proposals.next, struct proposal, link);
        rq_list_remove(&p->link);
        b->props[i] = p;
        mbatch_add(&buf, p->cmd.base, p->cmd.len);
    }
    int rv = buf.err;
    if (rv == 0) {
        rv =
            rq_node_apply(core->h.node, buf.base, buf.len, on_batch_applied, b);
    }
    rq_buf_close(&buf);
    if (rv != 0) {
        core->stats.proposal_errors += n;
        rq_log(RQ_DEBUG, "proposing a batch of %zu: %s", n, rq_strerror(rv));
        batch_end(b, rv);
        return;
    }
    rq_list_push(&core->batches, &b->link);
    core->stats.proposal_batches++;
    core->stats.batched_proposals += n;
}

static void propose_one(struct mcore *core)
{
    struct proposal *p =
        RQ_LIST_ENTRY(core->proposals.next, struct proposal, link);
    rq_list_remove(&p->link);
    int rv =
        rq_node_apply(core->h.node, p->cmd.base, p->cmd.len, p->cb, p->data);
    if (rv != 0) {
        core->stats.proposal_errors++;
        rq_log(RQ_DEBUG, "proposing: %s", rq_strerror(rv));
        proposal_fail(p, rv);
        return;
    }
    proposal_free(p);
}

/* Proposes everything queued, in order: batches of up to MBATCH_MAX_N
 * commands and MBATCH_MAX_BYTES, a lone command as its own entry. */
static void proposals_flush(uv_idle_t *idle)
{
    struct mcore *core = idle->data;
    uv_idle_stop(&core->propose);
    while (!rq_list_empty(&core->proposals)) {
        size_t n = 0, bytes = 0;
        for (struct rq_list *it = core->proposals.next; it != &core->proposals;
             it = it->next) {
            struct proposal *p = RQ_LIST_ENTRY(it, struct proposal, link);
            if (n == MBATCH_MAX_N ||
                (n > 0 && bytes + p->cmd.len > MBATCH_MAX_BYTES)) {
                break;
            }
            n++;
            bytes += p->cmd.len;
        }
        if (n == 1 || !core->h.cfg->propose_batches) {
            propose_one(core);
        } else {
            propose_batch(core, n);
        }
    }
}

int mcore_propose(struct mcore *core, struct mcmd *c, rq_node_done_cb cb,
                  void *data)
{
    if (core->closing) {
        return RQ_SHUTDOWN;
    }
    if (!rq_node_ready(core->h.node)) {
        return RQ_NOTLEADER;
    }
    struct proposal *p = calloc(1, sizeof *p);
    if (p == NULL) {
        return RQ_NOMEM; /* UNTESTED: ENOMEM only. */
    }
    c->now_ms = mcore_wall_ms();
    rq_buf_init(&p->cmd);
    int rv = mcmd_encode(c, &p->cmd);
    if (rv == 0 && p->cmd.err != 0) {
        rv = p->cmd.err; /* UNTESTED: ENOMEM only. */
    }
    core->stats.proposals++;
    if (rv != 0) {
        core->stats.proposal_errors++;
        rq_log(RQ_DEBUG, "proposing %s: %s", mcmd_type_name(c->type),
               rq_strerror(rv));
        proposal_free(p);
        return rv;
    }
    p->cb = cb;
    p->data = data;
    rq_list_push(&core->proposals, &p->link);
    uv_idle_start(&core->propose, proposals_flush);
    return 0;
}

/* ---- Consistent reads ---- */

struct read_op {
    struct rq_list link;
    struct mcore *core;
    mcore_read_cb cb;
    void *data;
    uint64_t index;    /* Follower: the leader's read index. */
    uint64_t deadline; /* uv_now() value. */
    int status;        /* For deferred completions. */
    char why[MCORE_WHY];
};

static void read_finish(struct read_op *op, int status, const char *why)
{
    rq_list_remove(&op->link);
    op->cb(op->data, status, why != NULL ? why : "");
    free(op);
}

static void on_defer(uv_timer_t *t)
{
    struct mcore *core = t->data;
    while (!rq_list_empty(&core->deferred)) {
        struct read_op *op =
            RQ_LIST_ENTRY(core->deferred.next, struct read_op, link);
        read_finish(op, op->status, op->why);
    }
}

/* Completes @op with @status on the next loop turn (never inside
 * mcore_read itself). */
static void read_defer(struct read_op *op, int status, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

static void read_defer(struct read_op *op, int status, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(op->why, sizeof op->why, fmt, ap);
    va_end(ap);
    op->status = status;
    rq_list_remove(&op->link);
    rq_list_push(&op->core->deferred, &op->link);
    if (!uv_is_closing((uv_handle_t *)&op->core->defer)) {
        uv_timer_start(&op->core->defer, on_defer, 0, 0);
    }
}

static void barrier_start(struct mcore *core);

static void on_read_barrier(void *data, int status, uint64_t result)
{
    struct mcore *core = data;
    (void)result;
    core->barrier_in_flight = false;
    while (!rq_list_empty(&core->barrier_current)) {
        struct read_op *op =
            RQ_LIST_ENTRY(core->barrier_current.next, struct read_op, link);
        read_finish(op, status,
                    status == 0 ? NULL
                    : status == RQ_SHUTDOWN
                        ? "the manager is shutting down"
                        : "leadership was lost before the read was "
                          "confirmed; retry");
    }
    if (!core->closing) {
        barrier_start(core);
    }
}

static void barrier_start(struct mcore *core)
{
    if (core->barrier_in_flight || rq_list_empty(&core->barrier_next)) {
        return;
    }
    while (!rq_list_empty(&core->barrier_next)) {
        struct rq_list *l = core->barrier_next.next;
        rq_list_remove(l);
        rq_list_push(&core->barrier_current, l);
    }
    int rv = rq_node_barrier(core->h.node, on_read_barrier, core);
    if (rv != 0) {
        while (!rq_list_empty(&core->barrier_current)) {
            struct read_op *op =
                RQ_LIST_ENTRY(core->barrier_current.next, struct read_op, link);
            read_defer(op, rv,
                       "this manager cannot confirm its leadership "
                       "now; retry");
        }
        return;
    }
    core->stats.read_barriers++;
    core->barrier_in_flight = true;
}

static void on_read_index(void *data, const struct rq_httpc_resp *resp)
{
    struct read_op *op = data;
    struct mcore *core = op->core;
    char why[MCORE_WHY];

    if (core->closing) {
        read_finish(op, RQ_SHUTDOWN, "the manager is shutting down");
        return;
    }
    if (resp->err != 0 || resp->status != 200) {
        snprintf(why, sizeof why,
                 "the leader manager did not give a read index: %s",
                 resp->err != 0 ? resp->why : "it answered an error");
        read_finish(op, RQ_NOTLEADER, why);
        return;
    }
    json_error_t jerr;
    json_t *o = json_loadb(resp->body, resp->body_len, 0, &jerr);
    json_t *v = json_object_get(o, "index");
    if (!json_is_integer(v) || json_integer_value(v) < 0) {
        json_decref(o);
        read_finish(op, RQ_NOTLEADER,
                    "the leader manager's read index does not parse");
        return;
    }
    op->index = (uint64_t)json_integer_value(v);
    json_decref(o);
    struct rq_node_info info;
    rq_node_info(core->h.node, &info);
    if (info.applied >= op->index) {
        read_finish(op, 0, NULL);
        return;
    }
    rq_list_push(&core->applied_waiters, &op->link);
}

/* Wakes follower reads whose index has been applied. */
void mcore_applied(struct mcore *core)
{
    if (rq_list_empty(&core->applied_waiters)) {
        return;
    }
    struct rq_node_info info;
    rq_node_info(core->h.node, &info);
    struct rq_list *l = core->applied_waiters.next;
    while (l != &core->applied_waiters) {
        struct read_op *op = RQ_LIST_ENTRY(l, struct read_op, link);
        l = l->next;
        if (info.applied >= op->index) {
            read_finish(op, 0, NULL);
        }
    }
}

static void expire_reads(struct mcore *core, uint64_t now)
{
    struct rq_list *l = core->applied_waiters.next;
    while (l != &core->applied_waiters) {
        struct read_op *op = RQ_LIST_ENTRY(l, struct read_op, link);
        l = l->next;
        if (now >= op->deadline) {
            read_finish(op, RQ_TIMEOUT,
                        "this manager did not catch up with the leader in "
                        "time");
        }
    }
}

void mcore_tick(struct mcore *core, uint64_t now)
{
    expire_reads(core, now);
    mcore_applied(core);
}

void mcore_read(struct mcore *core, mcore_read_cb cb, void *data)
{
    char addr[MCMD_ADDR_MAX + 1];
    char url[URL_LEN];
    struct read_op *op = calloc(1, sizeof *op);
    if (op == NULL) {
        abort(); /* UNTESTED: ENOMEM only; the callback must run. */
    }
    op->core = core;
    op->cb = cb;
    op->data = data;
    op->deadline = uv_now(core->h.loop) + READ_TIMEOUT_MS;
    rq_list_init(&op->link);
    if (core->closing) {
        read_defer(op, RQ_SHUTDOWN, "the manager is shutting down");
        return;
    }
    if (rq_node_ready(core->h.node)) {
        rq_list_push(&core->barrier_next, &op->link);
        barrier_start(core);
        return;
    }
    if (mcore_leader_http(core, addr, sizeof addr) == NULL ||
        core->info.leader_id == core->h.cfg->id) {
        read_defer(op, RQ_NOTLEADER,
                   "no leader manager is known yet (an election may be "
                   "under way); retry");
        return;
    }
    core->stats.read_index++;
    snprintf(url, sizeof url, "http://%s/internal/read-index", addr);
    struct rq_httpc_req r = {
        .method = "GET",
        .url = url,
        .timeout_ms = PEER_TIMEOUT_MS,
    };
    int rv = mcore_call(core, MCORE_MANAGER, MCORE_JSON, &r, on_read_index, op);
    if (rv != 0) {
        read_defer(op, rv, "asking the leader manager for its read index: %s",
                   rq_strerror(rv));
    }
}

/* ---- Forwarding ---- */

struct forward {
    struct rq_http_req *req;
    struct mcore *core;
    char leader[MCMD_ADDR_MAX + 1];
    bool says_sent; /* A consume: its failure says whether it was sent. */
    bool fresh;     /* Sent on a new connection. */
};

/* A 503 for a request forwarded to the leader (@sent true) or not. */
static void forward_unavailable(struct rq_http_req *req, bool sent,
                                const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

static void forward_unavailable(struct rq_http_req *req, bool sent,
                                const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    unavailable(req, sent, "unavailable", fmt, ap);
    va_end(ap);
}

static void on_forwarded(void *data, const struct rq_httpc_resp *resp)
{
    struct forward *f = data;
    struct rq_http_req *req = f->req;
    if (req == NULL) {
        free(f);
        return;
    }
    bool answered = resp->err == 0 && resp->status != 0;
    bool sent = resp->err != RQ_CONNECT;
    if (f->says_sent) {
        sent = policy_forward_end(&f->core->forward_policy, f->fresh, answered,
                                  resp->err == RQ_CONNECT);
    }
    if (!answered) {
        /* Only a refused connection surely kept the request from the
         * leader, and for a consume only a new one (policy_forward_end). */
        forward_unavailable(req, sent,
                            "the leader manager at %s could not be reached: "
                            "%s; retry",
                            f->leader, resp->why != NULL ? resp->why : "");
    } else {
        if (resp->retry_after != NULL) {
            rq_http_set_header(req, "Retry-After", resp->retry_after);
        }
        rq_http_reply_text(req, (int)resp->status, "application/json",
                           resp->body, resp->body_len);
    }
    free(f);
}

/* What a request's X-Raftq-Forwarded mark is worth (forward_mark). */
enum mark { MARK_NONE, MARK_VALID, MARK_BAD, MARK_BUSY };

/*
 * Whether @req bears a manager's X-Raftq-Forwarded mark, and whether it can
 * be believed: on an internal route the signature was checked before the
 * handler; on a public route, which anyone may call, only a valid
 * manager-to-manager signature makes it so, checked here once (its nonce
 * is then spent; rq_http_signed remembers). MARK_BAD, with the reason in
 * @why, for a mark that fails the check: a stranger's, or a manager's
 * request held up past the signature window (or replayed). Such a request
 * is refused, not served as a client's own: its forwarder stopped waiting
 * for it long ago, and a consume carried out now would move the offset for
 * nobody. MARK_BUSY when the replay cache is full and the mark cannot be
 * checked now (the request is answered 503, to be sent again).
 */
static enum mark forward_mark(struct mcore *core, struct rq_http_req *req,
                              char *why, size_t whyn)
{
    if (rq_http_header(req, MCORE_FORWARDED) == NULL) {
        return MARK_NONE;
    }
    if (rq_http_signed(req)) {
        return MARK_VALID;
    }
    enum rq_sig_result rv =
        rq_httpsig_verify(core->h.httpsig, req, RQ_HTTPSIG_M2M, why, whyn);
    if (rv != RQ_SIG_OK) {
        return rv == RQ_SIG_BUSY ? MARK_BUSY : MARK_BAD;
    }
    rq_http_set_signed(req);
    return MARK_VALID;
}

/*
 * Whether @req, forwarded by a manager, reached this leader after its
 * forwarder stopped waiting for the answer (MCORE_FORWARD_BY, stamped by
 * a manager that has it; without it, as from an older one, never). The
 * forwarder has answered its client that the request may or may not have
 * been carried out, and the client has likely sent it again: carried out
 * now, an offset commit held up this long would set the offsets back
 * under the retry's. The managers' clocks are trusted to agree, as the
 * signatures already trust them.
 */
static bool forward_late(struct rq_http_req *req)
{
    const char *by = rq_http_header(req, MCORE_FORWARD_BY);
    uint64_t v;
    if (by == NULL || rq_parse_u64(by, UINT64_MAX, &v) != 0) {
        return false;
    }
    uint64_t now = mcore_wall_ms();
    if (now < v) {
        return false;
    }
    rq_log(RQ_INFO,
           "a forwarded %s %s arrived %" PRIu64
           " ms after its forwarder stopped waiting; not carried out",
           rq_http_method(req), rq_http_path(req), now - v);
    return true;
}

/* The client left (or this manager is closing): the forwarded request is
 * canceled, which closes its connection, so the leader sees its client
 * leave too and a consume there does not propose its advance if it has
 * not yet (API.md section 1). */
static void on_forward_abort(struct rq_http_req *req, void *data)
{
    struct forward *f = data;
    f->req = NULL;
    forward_unavailable(req, true,
                        "the request was abandoned: the client went away or "
                        "the manager is shutting down");
    if (f->core->h.httpc != NULL) {
        rq_httpc_cancel(f->core->h.httpc, f); /* on_forwarded() frees f. */
    }
}

bool mcore_forward(struct mcore *core, struct rq_http_req *req)
{
    char url[URL_LEN];
    char fwd_line[64];
    char by_line[64];
    char until_line[64];
    char ct_line[256];
    char auth_line[1024];
    const char *headers[8];
    size_t nh = 0;

    if (core->closing) {
        mcore_unavailable(req, "the manager is shutting down");
        return true;
    }
    char why[MCORE_WHY];
    enum mark mark = forward_mark(core, req, why, sizeof why);
    if (mark == MARK_BAD) {
        rq_http_reply_error(
            req, 401,
            "%s claims a manager forwarded the request, but %s; "
            "a request held up past the signature window is "
            "refused, not carried out",
            MCORE_FORWARDED, why);
        return true;
    }
    if (mark == MARK_BUSY) {
        mcore_unavailable(req, "%s", why); /* UNTESTED: a full cache. */
        return true;
    }
    if (rq_node_ready(core->h.node)) {
        if (mark == MARK_VALID && forward_late(req)) {
            mcore_unavailable(req,
                              "the request reached the leader after the "
                              "manager that forwarded it had stopped waiting "
                              "for it, so it was not carried out; retry");
            return true;
        }
        return false;
    }
    if (mark == MARK_VALID) {
        mcore_unavailable(req,
                          "manager %" PRIu64
                          " is not the leader either (leadership is "
                          "moving); retry",
                          core->h.cfg->id);
        return true;
    }
    struct forward *f = rq_http_calloc(req, 1, sizeof *f);
    if (f == NULL) {
        return true; /* UNTESTED: ENOMEM only. */
    }
    f->core = core;
    if (core->info.leader_id == core->h.cfg->id ||
        mcore_leader_http(core, f->leader, sizeof f->leader) == NULL) {
        free(f);
        if (core->info.leader_id == 0) {
            no_leader(req,
                      "no leader manager yet (an election is under "
                      "way); retry");
        } else {
            mcore_unavailable(req,
                              "the leader manager is not ready yet; "
                              "retry");
        }
        return true;
    }
    f->says_sent = core->h.says_sent != NULL &&
                   rq_http_route_handler(req) == core->h.says_sent;
    f->fresh = f->says_sent && policy_forward_fresh(&core->forward_policy);
    const char *qs = rq_http_query_string(req);
    snprintf(url, sizeof url, "http://%s%s%s%s", f->leader, rq_http_path(req),
             qs[0] != '\0' ? "?" : "", qs);
    snprintf(fwd_line, sizeof fwd_line, MCORE_FORWARDED ": %" PRIu64,
             core->h.cfg->id);
    headers[nh++] = fwd_line;
    uint64_t timeout_ms = FORWARD_TIMEOUT_MS;
    /* A long poll (a consumer group's fetch) may wait its wait_ms at the
     * leader before it answers. */
    const char *wait = rq_http_query(req, "wait_ms");
    uint64_t wait_ms;
    if (wait != NULL && rq_parse_u64(wait, UINT64_MAX, &wait_ms) == 0) {
        timeout_ms +=
            wait_ms < FORWARD_WAIT_MAX_MS ? wait_ms : FORWARD_WAIT_MAX_MS;
    }
    if (f->says_sent) {
        uint64_t budget = core->h.cfg->consume_deadline_ms;
        snprintf(by_line, sizeof by_line, MCORE_CONSUME_BY ": %" PRIu64,
                 mcore_wall_ms() + budget);
        headers[nh++] = by_line;
        timeout_ms = budget + CONSUME_ANSWER_GRACE_MS;
    }
    snprintf(until_line, sizeof until_line, MCORE_FORWARD_BY ": %" PRIu64,
             mcore_wall_ms() + timeout_ms);
    headers[nh++] = until_line;
    const char *ct = rq_http_header(req, "Content-Type");
    snprintf(ct_line, sizeof ct_line, "Content-Type: %s",
             ct != NULL ? ct : "application/json");
    headers[nh++] = ct_line;
    const char *auth = rq_http_header(req, "Authorization");
    if (auth != NULL) {
        snprintf(auth_line, sizeof auth_line, "Authorization: %s", auth);
        headers[nh++] = auth_line;
    }
    headers[nh] = NULL;
    size_t len;
    const uint8_t *body = rq_http_body(req, &len);
    struct rq_httpc_req r = {
        .method = rq_http_method(req),
        .url = url,
        .headers = headers,
        .body = len > 0 ? body : NULL,
        .body_len = len,
        .timeout_ms = timeout_ms,
        /* Signed afresh as this manager: the caller's signature, if any,
         * was spent here. */
        .sign = core->h.to_managers,
        /* A consume goes on a kept connection unless the last one got
         * no answer (policy_forward_fresh). */
        .fresh = f->fresh,
    };
    int rv = call(core, &r, on_forwarded, f);
    if (rv != 0) {
        free(f);
        mcore_unavailable(req, "forwarding to the leader manager: %s",
                          rq_strerror(rv));
        return true;
    }
    core->stats.forwarded++;
    if (strncmp(rq_http_path(req), "/internal/", 10) == 0) {
        core->stats.forwarded_internal++;
    }
    f->req = req;
    rq_http_on_abort(req, on_forward_abort, f);
    return true;
}

uint64_t mcore_consume_deadline(struct mcore *core, struct rq_http_req *req)
{
    char why[MCORE_WHY];
    const char *by = rq_http_header(req, MCORE_CONSUME_BY);
    /* mcore_forward() has refused a mark that is not believed. */
    if (by == NULL || forward_mark(core, req, why, sizeof why) != MARK_VALID) {
        return 0;
    }
    uint64_t now = mcore_wall_ms();
    uint64_t latest = now + core->h.cfg->consume_deadline_ms;
    uint64_t v;
    if (rq_parse_u64(by, UINT64_MAX, &v) != 0) {
        rq_log(RQ_WARN, "ignoring %s: %s is not a time", MCORE_CONSUME_BY, by);
        return latest; /* UNTESTED: managers send a number. */
    }
    if (v <= now) {
        rq_log(RQ_INFO,
               "a forwarded consume arrived %" PRIu64
               " ms after its deadline (held up on the way, or the managers' "
               "clocks differ)",
               now - v);
    }
    return v < latest ? v : latest;
}

/* ---- GET /internal/read-index ---- */

struct read_index {
    struct rq_http_req *req;
    struct mcore *core;
};

static void on_read_index_barrier(void *data, int status, const char *why)
{
    struct read_index *ri = data;
    if (ri->req != NULL) {
        if (status != 0) {
            mcore_unavailable(ri->req, "%s", why);
        } else {
            struct rq_node_info info;
            rq_node_info(ri->core->h.node, &info);
            rq_http_reply(
                ri->req, 200,
                json_pack("{s:I}", "index", (json_int_t)info.applied));
        }
    }
    free(ri);
}

void mcore_read_index(struct rq_http_req *req, void *data)
{
    struct mcore *core = data;
    if (!rq_node_ready(core->h.node)) {
        mcore_unavailable(req, "manager %" PRIu64 " is not the leader",
                          core->h.cfg->id);
        return;
    }
    struct read_index *ri = rq_http_calloc(req, 1, sizeof *ri);
    if (ri == NULL) {
        return; /* UNTESTED: ENOMEM only. */
    }
    ri->core = core;
    mcore_hold(req, &ri->req);
    mcore_read(core, on_read_index_barrier, ri);
}

/* ---- Views ---- */

uint64_t mcore_now(const struct mcore *core)
{
    return uv_now(core->h.loop);
}

struct uv_loop_s *mcore_loop(struct mcore *core)
{
    return core->h.loop;
}

const struct manager_config *mcore_config(const struct mcore *core)
{
    return core->h.cfg;
}

bool mcore_leading(const struct mcore *core)
{
    return core->leading;
}

bool mcore_closing(const struct mcore *core)
{
    return core->closing;
}

void mcore_node_info(const struct mcore *core, struct rq_node_info *out)
{
    rq_node_info(core->h.node, out);
}

void mcore_node_counters(const struct mcore *core, struct rq_node_counters *out)
{
    rq_node_counters(core->h.node, out);
}

const struct rq_peer *mcore_peers(const struct mcore *core, size_t *n)
{
    *n = core->h.n_peers;
    return core->h.peers;
}

struct rq_node *mcore_node(const struct mcore *core)
{
    return core->h.node;
}

const struct mstore *mcore_store(const struct mcore *core)
{
    return core->h.store;
}

const struct routing *mcore_routing(const struct mcore *core)
{
    return core->h.routing;
}

const struct liveness *mcore_liveness(const struct mcore *core)
{
    return core->mods.liveness;
}

struct routing *mcore_routes(struct mcore *core)
{
    return core->h.routing;
}

struct manager_stats *mcore_stats(struct mcore *core)
{
    return &core->stats;
}

const struct mcore_modules *mcore_modules(const struct mcore *core)
{
    return &core->mods;
}

/* ---- Created and driven by manager.c ---- */

int mcore_new(const struct mcore_handles *h, struct mcore **out)
{
    struct mcore *core = calloc(1, sizeof *core);
    if (core == NULL) {
        return RQ_NOMEM; /* UNTESTED: ENOMEM only. */
    }
    core->h = *h;
    outcome = h->outcome;
    rq_list_init(&core->barrier_next);
    rq_list_init(&core->barrier_current);
    rq_list_init(&core->applied_waiters);
    rq_list_init(&core->deferred);
    uv_timer_init(core->h.loop, &core->defer);
    core->defer.data = core;
    rq_list_init(&core->proposals);
    rq_list_init(&core->batches);
    uv_idle_init(core->h.loop, &core->propose);
    core->propose.data = core;
    *out = core;
    return 0;
}

void mcore_set_modules(struct mcore *core, const struct mcore_modules *mods)
{
    core->mods = *mods;
}

void mcore_free(struct mcore *core)
{
    free(core);
}

void mcore_node_changed(struct mcore *core, const struct rq_node_info *info)
{
    core->info = *info;
    core->leading = info->ready;
}

void mcore_closing_begin(struct mcore *core)
{
    core->closing = true;
    uv_idle_stop(&core->propose);
    while (!rq_list_empty(&core->proposals)) {
        struct proposal *p =
            RQ_LIST_ENTRY(core->proposals.next, struct proposal, link);
        rq_list_remove(&p->link);
        proposal_fail(p, RQ_SHUTDOWN);
    }
    while (!rq_list_empty(&core->barrier_next)) {
        struct read_op *op =
            RQ_LIST_ENTRY(core->barrier_next.next, struct read_op, link);
        read_finish(op, RQ_SHUTDOWN, "the manager is shutting down");
    }
    while (!rq_list_empty(&core->applied_waiters)) {
        struct read_op *op =
            RQ_LIST_ENTRY(core->applied_waiters.next, struct read_op, link);
        read_finish(op, RQ_SHUTDOWN, "the manager is shutting down");
    }
}

void mcore_closing_http(struct mcore *core)
{
    /* Deferred completions first, while their owners still exist. */
    on_defer(&core->defer);
}

void mcore_closing_httpc(struct mcore *core)
{
    core->h.httpc = NULL;
}

void mcore_closing_node(struct mcore *core)
{
    core->h.node = NULL;
    uv_close((uv_handle_t *)&core->defer, NULL);
    uv_close((uv_handle_t *)&core->propose, NULL);
}

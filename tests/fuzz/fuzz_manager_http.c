/*
 * Fuzzes the request parsing of every HTTP handler of manager/qapi_*.c and
 * manager/admin.c by calling the handlers themselves with fake requests.
 *
 * The handlers need a manager: this harness builds one around a real
 * metadata store (a SQLite file in a temporary directory, holding a few
 * brokers, a topic of two partitions, a producer and a consumer) and real
 * routing, liveness, reconcile and repair objects, on a libuv loop that is
 * only ever run without waiting. The core the handlers get (mcore.h:
 * proposals, consistent reads, forwarding, calls to brokers) is a fake
 * here, each stub's outcome drawn from the input: a proposal is refused,
 * fails later, or is applied to the store for real; a call to a broker
 * fails at once, cannot connect, or gets an answer whose status and body
 * come from the input. The store is restored from a snapshot after any
 * input that changed it, so every input runs on the same state.
 *
 * The request side of shared/rq_http.h is replaced too (fake_http.h: a
 * request never touches a socket, its body is parsed by the server's own
 * rules). Input layout:
 *
 *     route:u8 | flags:u8 | choices:u8[8] | query NUL param1 NUL param2
 *     NUL content-type NUL broker-answer NUL | body (the rest)
 *
 * Checks (besides fake_http.h's on every reply): a handler answers every
 * request, after its abort callback at the latest; whatever it proposes
 * decodes; once the manager has shut down nothing is left running.
 */
#include <jansson.h>
#include <stdarg.h>
#include <stdbool.h>
#include <strings.h>
#include <uv.h>

#include "fake_http.h"
#include "fuzz.h"
#include "fuzz_tmpdir.h"
#include "manager/admin.h"
#include "manager/auth.h"
#include "manager/liveness.h"
#include "manager/mcmd.h"
#include "manager/mcore.h"
#include "manager/mstore.h"
#include "manager/qapi.h"
#include "manager/reconcile.h"
#include "manager/repair.h"
#include "manager/routes.h"
#include "manager/routing.h"
#include "rq_err.h"
#include "rq_hash.h"
#include "rq_http.h"
#include "rq_httpc.h"
#include "rq_json.h"
#include "rq_log.h"

/* ---- The routes (manager/routes.h: manager.c's table, less what parses
 * nothing and needs a Raft node: /healthz, /readyz, /metrics, /ui,
 * /admin/managers, and the /internal routes manager.c serves itself) ---- */

static const struct rq_http_route routes[] = {MANAGER_PARSING_ROUTES};
#define N_ROUTES (sizeof routes / sizeof routes[0])

#define FLAG_FORWARD 1  /* mcore_forward() takes the request. */
#define FLAG_UNSIGNED 2 /* A route needing a signature is refused. */
#define FLAG_NO_ADMIN                                                     \
    4                     /* The bearer token is a stored one without the \
                             admin grant (else the admin token). */
#define FLAG_TOKENS 8     /* The manager runs with --auth tokens. */
#define FLAG_FORWARDED 16 /* The request carries X-Raftq-Forwarded. */
#define FLAG_NO_LEADER 32 /* Not the ready leader. */
#define FLAG_NO_TOKEN 64  /* No Authorization header at all. */
#define FLAG_UNKNOWN                                   \
    128 /* A well-formed token the store does not hold \
           (a follower waits for a read, then refuses). */

/* The tokens a request may carry (manager/auth.c checks them for real
 * against the store, which holds the stored one's hash). */
#define ADMIN_TOKEN "fuzz-admin-token"
#define STORED_TOKEN "rqt_AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA"
#define STORED_GRANTS "produce:t consume:t.*"
#define UNKNOWN_TOKEN "rqt_BBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBB"

/* ---- The core (mcore.h), faked ---- */

struct mcore {
    struct manager_config cfg;
    uv_loop_t *loop;
    struct mstore *store;
    struct routing *routing;
    struct mcore_modules mods;
    struct manager_stats stats;
    struct rq_node_info info;
    bool leading;
    bool closing;
    uint64_t attempts;
};

static struct mcore mgr;
static struct fuzz_in choices; /* Outcomes the stubs draw. */
static uint8_t flags;
static const char *broker_answer;
static uint64_t applied_index;
static bool store_dirty;

/* Callbacks that must run later, never inside the call that asked. */
enum later_kind { LATER_PROPOSED, LATER_READ, LATER_CALL };
struct later {
    enum later_kind kind;
    void *cb;
    void *data;
    int status;
    uint64_t result;
    struct rq_httpc_resp resp;
};
static struct later queue[256];
static size_t queue_n;

static void later_push(struct later l)
{
    FUZZ_CHECK(queue_n < sizeof queue / sizeof queue[0]);
    queue[queue_n++] = l;
}

/* Runs what is queued, in order, including what those callbacks queue. */
static bool later_run(void)
{
    bool ran = false;
    for (size_t i = 0; i < queue_n; i++) {
        struct later l = queue[i];
        ran = true;
        switch (l.kind) {
            case LATER_PROPOSED:
                ((rq_node_done_cb)l.cb)(l.data, l.status, l.result);
                break;
            case LATER_READ:
                ((mcore_read_cb)l.cb)(l.data, l.status,
                                      l.status != 0 ? "no leader" : NULL);
                break;
            case LATER_CALL:
                ((rq_httpc_cb)l.cb)(l.data, &l.resp);
                break;
        }
    }
    queue_n = 0;
    return ran;
}

/* Makes every pending timer of the loop due now, as if its time had
 * passed (retries wait 100 ms and more): the next uv_run() runs it. This
 * reads the timer's callback from a field libuv does not document. */
static void timer_expire(uv_handle_t *h, void *arg)
{
    bool *any = arg;
    if (h->type == UV_TIMER && uv_is_active(h) && !uv_is_closing(h)) {
        uv_timer_t *t = (uv_timer_t *)h;
        uv_timer_start(t, t->timer_cb, 0, 0);
        *any = true;
    }
}

/* Runs callbacks and timers until nothing is left to run, at most @rounds
 * times, or until the request has its answer (@until_replied). */
static void settle(struct rq_http_req *req, bool until_replied, int rounds)
{
    for (int i = 0; i < rounds; i++) {
        if (until_replied && req->replied) {
            return;
        }
        bool ran = later_run();
        bool timers = false;
        uv_walk(mgr.loop, timer_expire, &timers);
        uv_run(mgr.loop, UV_RUN_NOWAIT);
        if (!ran && !timers && queue_n == 0 && !uv_loop_alive(mgr.loop)) {
            return;
        }
    }
}

uint64_t mcore_wall_ms(void)
{
    return 1700000000000ull;
}

void mcore_unavailable(struct rq_http_req *req, const char *fmt, ...)
{
    char msg[512];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    rq_http_set_header(req, "Retry-After", "1");
    rq_http_reply_error(req, 503, "%s", msg);
}

static void on_held_abort(struct rq_http_req *req, void *data)
{
    struct rq_http_req **slot = data;
    *slot = NULL;
    mcore_unavailable(req, "abandoned");
}

void mcore_hold(struct rq_http_req *req, struct rq_http_req **slot)
{
    *slot = req;
    rq_http_on_abort(req, on_held_abort, slot);
}

const char *mcore_leader_http(const struct mcore *m, char *buf, size_t n)
{
    (void)m;
    snprintf(buf, n, "127.0.0.1:1");
    return (flags & FLAG_NO_LEADER) ? NULL : buf;
}

bool mcore_forward(struct mcore *m, struct rq_http_req *req)
{
    (void)m;
    if (flags & FLAG_FORWARD) {
        rq_http_reply_error(req, 503, "forwarded to the leader");
        return true;
    }
    return false;
}

/* A consume's deadline is what its header says, so that inputs reach both
 * sides of it (the fake wall clock stands still). */
uint64_t mcore_consume_deadline(struct mcore *m, struct rq_http_req *req)
{
    (void)m;
    const char *by = rq_http_header(req, MCORE_CONSUME_BY);
    return by != NULL ? strtoull(by, NULL, 10) : 0;
}

int mcore_propose(struct mcore *m, struct mcmd *c, rq_node_done_cb cb,
                  void *data)
{
    struct rq_buf b;
    struct mcmd d;
    char why[256];

    if (m->closing) {
        return RQ_SHUTDOWN;
    }
    c->now_ms = mcore_wall_ms();
    rq_buf_init(&b);
    int rv = mcmd_encode(c, &b);
    if (rv != 0) {
        rq_buf_close(&b);
        return rv == RQ_NOMEM ? RQ_NOMEM : RQ_INVALID;
    }
    /* What a handler proposes, every manager must be able to apply. */
    FUZZ_CHECK(mcmd_decode(b.base, b.len, &d, why, sizeof why) == 0);
    mcmd_clear(&d);
    uint8_t pick = fuzz_u8(&choices);
    switch (pick % 4) {
        case 0:
            rv = RQ_NOTLEADER;
            break;
        case 1:
            later_push((struct later){LATER_PROPOSED, (void *)cb, data,
                                      pick & 4 ? RQ_TIMEOUT : RQ_NOTLEADER});
            break;
        default: {
            uint64_t result = 0;
            FUZZ_CHECK(mstore_apply(m->store, ++applied_index, b.base, b.len,
                                    &result) == 0);
            store_dirty = true;
            later_push(
                (struct later){LATER_PROPOSED, (void *)cb, data, 0, result});
            break;
        }
    }
    rq_buf_close(&b);
    return rv;
}

void mcore_read(struct mcore *m, mcore_read_cb cb, void *data)
{
    (void)m;
    uint8_t pick = fuzz_u8(&choices);
    later_push((struct later){LATER_READ, (void *)cb, data,
                              pick % 8 == 1 ? RQ_NOTLEADER : 0});
}

int mcore_call(struct mcore *m, enum mcore_peer to, enum mcore_body body,
               struct rq_httpc_req *req, rq_httpc_cb cb, void *data)
{
    (void)to;
    (void)body;
    FUZZ_CHECK(req->method != NULL && req->url != NULL);
    if (m->closing) {
        return RQ_SHUTDOWN;
    }
    uint8_t pick = fuzz_u8(&choices);
    struct later l = {LATER_CALL, (void *)cb, data};
    switch (pick % 4) {
        case 0:
            l.resp.err = RQ_CONNECT;
            l.resp.why = "connect: refused";
            break;
        case 1:
            l.resp.status = 503;
            l.resp.body = "{\"status\":\"failure\",\"message\":\"no leader\"}";
            l.resp.retry_after = "1";
            break;
        default:
            /* An answer from the input: broker answers are parsed too. */
            l.resp.status = pick & 4 ? 200 : 400 + (pick >> 4);
            l.resp.body = broker_answer;
            break;
    }
    if (l.resp.body != NULL) {
        l.resp.body_len = strlen(l.resp.body);
    }
    later_push(l);
    return 0;
}

uint64_t mcore_now(const struct mcore *m)
{
    return uv_now(m->loop);
}

struct uv_loop_s *mcore_loop(struct mcore *m)
{
    return m->loop;
}

const struct manager_config *mcore_config(const struct mcore *m)
{
    return &m->cfg;
}

bool mcore_leading(const struct mcore *m)
{
    return m->leading;
}

bool mcore_closing(const struct mcore *m)
{
    return m->closing;
}

void mcore_node_info(const struct mcore *m, struct rq_node_info *out)
{
    *out = m->info;
}

void mcore_node_counters(const struct mcore *m, struct rq_node_counters *out)
{
    (void)m;
    memset(out, 0, sizeof *out);
}

const struct rq_peer *mcore_peers(const struct mcore *m, size_t *n)
{
    (void)m;
    *n = 0;
    return NULL;
}

uint64_t mcore_producer_id(struct mcore *m)
{
    return rq_hash_u64(++m->attempts) & INT64_MAX;
}

const struct mstore *mcore_store(const struct mcore *m)
{
    return m->store;
}

/* No Raft node here: no fuzzed route reads it (GET /admin/managers and
 * the membership routes are manager.c's). */
struct rq_node *mcore_node(const struct mcore *m)
{
    (void)m;
    return NULL;
}

const struct routing *mcore_routing(const struct mcore *m)
{
    return m->routing;
}

const struct liveness *mcore_liveness(const struct mcore *m)
{
    return m->mods.liveness;
}

struct routing *mcore_routes(struct mcore *m)
{
    return m->routing;
}

struct manager_stats *mcore_stats(struct mcore *m)
{
    return &m->stats;
}

const struct mcore_modules *mcore_modules(const struct mcore *m)
{
    return &m->mods;
}

/* ---- Setup, once ---- */

static uint8_t *snapshot;
static size_t snapshot_len;

static void apply(struct mcmd *c)
{
    struct rq_buf b;
    uint64_t result;
    rq_buf_init(&b);
    c->now_ms = mcore_wall_ms();
    FUZZ_CHECK(mcmd_encode(c, &b) == 0);
    FUZZ_CHECK(
        mstore_apply(mgr.store, ++applied_index, b.base, b.len, &result) == 0);
    rq_buf_close(&b);
}

static void setup(void)
{
    static char dir[256];
    static char path[300];
    char why[256];

    rq_log_init("fuzz", RQ_ERROR, RQ_LOG_TEXT);
    fuzz_tmpdir(dir, sizeof dir);
    snprintf(path, sizeof path, "%s/meta.db", dir);
    mgr.cfg.id = 1;
    mgr.cfg.secret = "";
    mgr.cfg.admin_token = ADMIN_TOKEN;
    mgr.cfg.max_message_bytes = 1u << 20;
    mgr.cfg.broker_dead_ms = 10000;
    mgr.cfg.broker_suspect_ms = 3000;
    mgr.loop = malloc(sizeof *mgr.loop);
    FUZZ_CHECK(mgr.loop != NULL && uv_loop_init(mgr.loop) == 0);
    FUZZ_CHECK(mstore_open(path, &mgr.store, why, sizeof why) == 0);
    mgr.leading = true;
    mgr.info.leader_id = 1;

    struct mcmd c = {.type = MCMD_MANAGER_ADDR};
    c.u.manager.id = 1;
    snprintf(c.u.manager.raft_addr, sizeof c.u.manager.raft_addr, "h:1");
    snprintf(c.u.manager.http_addr, sizeof c.u.manager.http_addr, "h:2");
    apply(&c);
    for (uint32_t id = 1; id <= 4; id++) {
        c = (struct mcmd){.type = MCMD_BROKER_REGISTER};
        c.u.broker_register.id = id;
        snprintf(c.u.broker_register.raft_addr,
                 sizeof c.u.broker_register.raft_addr, "b%u:1", id);
        snprintf(c.u.broker_register.http_addr,
                 sizeof c.u.broker_register.http_addr, "b%u:2", id);
        apply(&c);
    }
    uint32_t replicas[2][MCMD_RF] = {{1, 2, 3}, {2, 3, 4}};
    c = (struct mcmd){.type = MCMD_TOPIC_CREATE};
    snprintf(c.u.topic_create.name, sizeof c.u.topic_create.name, "t");
    c.u.topic_create.n_partitions = 2;
    c.u.topic_create.replicas = replicas;
    apply(&c);
    c = (struct mcmd){.type = MCMD_PRODUCER_REGISTER};
    snprintf(c.u.client_register.topic, sizeof c.u.client_register.topic, "t");
    c.u.client_register.partition_id = MCMD_NO_PARTITION;
    apply(&c);
    c.type = MCMD_CONSUMER_REGISTER;
    apply(&c);
    c = (struct mcmd){.type = MCMD_TOKEN_CREATE};
    FUZZ_CHECK(strlen(STORED_TOKEN) == AUTH_TOKEN_LEN);
    snprintf(c.u.token_create.name, sizeof c.u.token_create.name, "fuzz");
    auth_token_hash(STORED_TOKEN, c.u.token_create.hash);
    snprintf(c.u.token_create.grants, sizeof c.u.token_create.grants, "%s",
             STORED_GRANTS);
    apply(&c);
    FUZZ_CHECK(mstore_flush(mgr.store) == 0);
    FUZZ_CHECK(mstore_snapshot(mgr.store, &snapshot, &snapshot_len) == 0);
}

/* ---- One input ---- */

/* The manager's in-memory state, fresh for each input so that inputs
 * replay alike (the store is restored from its snapshot instead). */
static void on_repair_changed(void *data)
{
    (void)data;
    reconcile_kick(mgr.mods.reconcile);
}

static void state_new(void)
{
    FUZZ_CHECK(routing_new(&mgr.routing) == 0);
    FUZZ_CHECK(liveness_new(&mgr, &mgr.mods.liveness) == 0);
    FUZZ_CHECK(repair_new(&mgr, on_repair_changed, NULL, &mgr.mods.repair) ==
               0);
    FUZZ_CHECK(reconcile_new(&mgr, mgr.mods.repair, &mgr.mods.reconcile) == 0);
    FUZZ_CHECK(qapi_init(&mgr) == 0);
}

static void state_free(void)
{
    qapi_close(&mgr);
    reconcile_free(mgr.mods.reconcile);
    repair_free(mgr.mods.repair);
    liveness_free(mgr.mods.liveness);
    routing_free(mgr.routing);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static bool ready;
    struct rq_http_req req;
    struct fuzz_in in = {data, size};
    char why[256];

    if (!ready) {
        setup();
        ready = true;
    }
    if (size < 10) {
        return 0;
    }
    const struct rq_http_route *route = &routes[fuzz_u8(&in) % N_ROUTES];
    flags = fuzz_u8(&in);
    choices = (struct fuzz_in){in.p, 8};
    in.p += 8;
    in.left -= 8;
    bool routed = fake_req_read(&req, route, &in);
    char *answer = fuzz_str(&in);
    broker_answer = answer;
    req.header_names[1] = MCORE_FORWARDED;
    req.header_values[1] = (flags & FLAG_FORWARDED) ? "2" : NULL;
    req.header_names[2] = "Authorization";
    req.header_values[2] = (flags & FLAG_NO_TOKEN)   ? NULL
                           : (flags & FLAG_UNKNOWN)  ? "Bearer " UNKNOWN_TOKEN
                           : (flags & FLAG_NO_ADMIN) ? "Bearer " STORED_TOKEN
                                                     : "Bearer " ADMIN_TOKEN;
    mgr.cfg.auth_tokens = (flags & FLAG_TOKENS) != 0;
    req.body = in.p;
    req.body_len = in.left;

    state_new();
    if (routed) {
        /* A closing manager's server refuses requests before any handler
         * runs, so handlers never see m->closing set. */
        mgr.closing = false;
        mgr.leading = (flags & FLAG_NO_LEADER) == 0;
        if ((flags & FLAG_UNSIGNED) && req.route->auth != 0) {
            /* rq_http answers before the handler (rq_httpsig.h). */
            rq_http_reply_error(&req, 401, "missing signature");
        } else {
            req.route->handler(&req, &mgr);
        }
        mgr.closing = false;
        /* The later steps: callbacks, and the loop's timers (calls to
         * brokers start on the next turn; retries after a pause). */
        settle(&req, true, 32);
        /* Still waiting: the manager shuts down, as manager.c does it.
         * The server aborts the request first (its abort callback must
         * answer it), then whatever is under way ends. */
        if (!req.replied && req.abort_cb != NULL) {
            req.abort_cb(&req, req.abort_data);
        }
        FUZZ_CHECK(req.replied);
        mgr.closing = true;
        settle(&req, false, 64);
        FUZZ_CHECK(queue_n == 0 && !uv_loop_alive(mgr.loop));
        mgr.closing = false;
        if (getenv("FUZZ_VERBOSE") != NULL) {
            fprintf(stderr, "%s %s -> %d\n", req.route->method, req.path,
                    req.status);
        }
    }
    state_free();
    fake_req_free(&req);
    free(answer);
    if (store_dirty) {
        FUZZ_CHECK(mstore_restore(mgr.store, snapshot, snapshot_len, why,
                                  sizeof why) == 0);
        store_dirty = false;
    }
    return 0;
}

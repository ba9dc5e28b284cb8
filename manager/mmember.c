/*
 * The managers' membership changes, on the leader (see mmember.h).
 */
#include "mmember.h"

#include <inttypes.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <raft.h>

#include "auth.h"
#include "mcmd.h"
#include "mcore.h"
#include "mstore.h"
#include "mconfig.h"
#include "rq_codes.h"
#include "rq_config.h"
#include "rq_err.h"
#include "rq_http.h"
#include "rq_httpc.h"
#include "rq_log.h"
#include "rq_node.h"
#include "rq_preamble.h"

#define LOG_TAG "mmember"

/* After a failed promotion, before the next. */
#define PROMOTE_PAUSE_MS 2000
/* Between the leader's questions to each member. */
#define ASK_EVERY_MS 1000
#define ASK_TIMEOUT_MS 3000
#define MEMBERS_MAX 32
/* Fewer voters than this cannot lose one; a removal below it needs
 * ?force=true. */
#define MIN_VOTERS 3
#define MSG_LEN 256

enum step { IDLE, ADD, PROMOTE, REMOVE };

static const char *const step_names[] = {"idle", "add", "promotion", "removal"};

/* What the leader heard from one member lately. */
struct seen {
    uint64_t id;
    uint64_t last_ms; /* Its last answer (or when this leader began). */
    int schema;       /* The schema version it answered; 0: none yet. */
    bool asking;
};

struct mmember {
    struct mcore *core;
    struct seen seen[MEMBERS_MAX];
    size_t n_seen;
    uint64_t asked_ms; /* The last round of questions. */
    uint64_t lead_ms;  /* Leading since. */
    enum step step;
    struct raft_change change;
    struct raft_transfer transfer;
    bool transferring;
    uint64_t id;             /* The manager the change is about. */
    struct rq_http_req *req; /* Waiting for the change; NULL if none. */
    int ok_status;           /* Its answer once committed. */
    char ok_msg[MSG_LEN];
    uint64_t promote_after_ms; /* No promotion before then. */
};

int mmember_new(struct mcore *core, struct mmember **out)
{
    struct mmember *mm = calloc(1, sizeof *mm);
    if (mm == NULL) {
        return RQ_NOMEM; /* UNTESTED: ENOMEM only. */
    }
    mm->core = core;
    *out = mm;
    return 0;
}

void mmember_free(struct mmember *mm)
{
    free(mm);
}

void mmember_lead(struct mmember *mm, uint64_t now)
{
    for (size_t i = 0; i < mm->n_seen; i++) {
        mm->seen[i].last_ms = now;
    }
    mm->lead_ms = now;
}

static struct seen *seen_of(struct mmember *mm, uint64_t id)
{
    for (size_t i = 0; i < mm->n_seen; i++) {
        if (mm->seen[i].id == id) {
            return &mm->seen[i];
        }
    }
    if (mm->n_seen == MEMBERS_MAX) {
        return NULL;
    }
    struct seen *s = &mm->seen[mm->n_seen++];
    *s = (struct seen){.id = id, .last_ms = mcore_now(mm->core)};
    return s;
}

struct ask {
    struct mmember *mm;
    uint64_t id;
};

static void on_answer(void *data, const struct rq_httpc_resp *resp)
{
    struct ask *a = data;
    struct seen *s = seen_of(a->mm, a->id);
    if (s != NULL) {
        s->asking = false;
        if (resp->err == 0 && resp->status == 200) {
            json_t *o = json_loadb(resp->body, resp->body_len, 0, NULL);
            s->schema =
                (int)json_integer_value(json_object_get(o, "schema_version"));
            s->last_ms = mcore_now(a->mm->core);
            json_decref(o);
        }
    }
    free(a);
}

/* Asks every other member of @c its schema version (GET /internal/version);
 * the answers keep its seen entry fresh. */
static void ask_members(struct mmember *mm, const struct raft_configuration *c)
{
    char url[MCMD_ADDR_MAX + 64];
    uint64_t self = mcore_config(mm->core)->id;
    size_t kept = 0;
    for (size_t k = 0; k < mm->n_seen; k++) {
        for (unsigned i = 0; i < c->n; i++) {
            if (c->servers[i].id == mm->seen[k].id) {
                mm->seen[kept++] = mm->seen[k]; /* Still a member. */
                break;
            }
        }
    }
    mm->n_seen = kept;
    for (unsigned i = 0; i < c->n; i++) {
        struct mstore_manager m;
        struct seen *s = seen_of(mm, c->servers[i].id);
        if (c->servers[i].id == self || s == NULL || s->asking ||
            mstore_manager(mcore_store(mm->core), (uint32_t)s->id, &m) != 0 ||
            m.http_addr[0] == '\0') {
            continue; /* Ourselves, or not reachable yet. */
        }
        struct ask *a = calloc(1, sizeof *a);
        if (a == NULL) {
            continue; /* UNTESTED: ENOMEM only. */
        }
        a->mm = mm;
        a->id = s->id;
        snprintf(url, sizeof url, "http://%s/internal/version", m.http_addr);
        struct rq_httpc_req r = {
            .method = "GET",
            .url = url,
            .timeout_ms = ASK_TIMEOUT_MS,
        };
        if (mcore_call(mm->core, MCORE_MANAGER, MCORE_JSON, &r, on_answer, a) !=
            0) {
            free(a);
            continue;
        }
        s->asking = true;
    }
}

bool mmember_all_current(const struct mmember *mm)
{
    uint64_t index;
    bool pending;
    const struct raft_configuration *c =
        rq_node_configuration(mcore_node(mm->core), &index, &pending);
    uint64_t self = mcore_config(mm->core)->id;
    for (unsigned i = 0; i < c->n; i++) {
        const struct seen *s = NULL;
        for (size_t k = 0; k < mm->n_seen; k++) {
            s = mm->seen[k].id == c->servers[i].id ? &mm->seen[k] : s;
        }
        if (c->servers[i].id != self &&
            (s == NULL || s->schema < MSTORE_SCHEMA_VERSION)) {
            return false;
        }
    }
    return c->n > 0;
}

/* Whether @id is one of this manager's --peers (a StatefulSet's first
 * managers, never scaled away). */
static bool seed(const struct mmember *mm, uint64_t id)
{
    size_t n;
    const struct rq_peer *p = mcore_peers(mm->core, &n);
    for (size_t i = 0; i < n; i++) {
        if (p[i].id == id) {
            return true;
        }
    }
    return false;
}

static struct raft *raft_of(const struct mmember *mm)
{
    return rq_node_raft(mcore_node(mm->core));
}

/* The committed configuration; NULL (and an answer on @req, if any) while
 * a newer one is pending. */
static const struct raft_configuration *committed(struct mmember *mm,
                                                  struct rq_http_req *req)
{
    uint64_t index;
    bool pending;
    const struct raft_configuration *c =
        rq_node_configuration(mcore_node(mm->core), &index, &pending);
    if (pending) {
        if (req != NULL) {
            mcore_unavailable(req,
                              "a membership change is being committed; "
                              "retry");
        }
        return NULL;
    }
    return c;
}

static const struct raft_server *server_of(const struct raft_configuration *c,
                                           uint64_t id)
{
    for (unsigned i = 0; i < c->n; i++) {
        if (c->servers[i].id == id) {
            return &c->servers[i];
        }
    }
    return NULL;
}

static unsigned voters(const struct raft_configuration *c)
{
    unsigned n = 0;
    for (unsigned i = 0; i < c->n; i++) {
        n += c->servers[i].role == RAFT_VOTER;
    }
    return n;
}

static const char *role_name(int role)
{
    return role == RAFT_VOTER     ? "voter"
           : role == RAFT_STANDBY ? "standby"
                                  : "spare";
}

static void on_raft_change(struct raft_change *req, int status)
{
    struct mmember *mm = req->data;
    enum step step = mm->step;
    mm->step = IDLE;
    if (status != 0) {
        rq_log(RQ_WARN, "the %s of manager %" PRIu64 " failed: %s",
               step_names[step], mm->id, raft_strerror(status));
        if (step == PROMOTE) {
            mm->promote_after_ms = mcore_now(mm->core) + PROMOTE_PAUSE_MS;
        }
        if (mm->req != NULL) {
            mcore_unavailable(
                mm->req, "the %s of manager %" PRIu64 " failed (%s); retry",
                step_names[step], mm->id, raft_strerror(status));
        }
        mm->req = NULL;
        return;
    }
    switch (step) {
        case ADD:
            rq_log(RQ_INFO,
                   "manager %" PRIu64
                   " added as a spare; promoting it once it has caught up",
                   mm->id);
            break;
        case PROMOTE:
            rq_log(RQ_INFO, "manager %" PRIu64 " is a voter", mm->id);
            break;
        case REMOVE:
            rq_log(RQ_INFO, "manager %" PRIu64 " removed", mm->id);
            break;
        case IDLE:
            break;
    }
    if (mm->req != NULL) {
        rq_http_reply(mm->req, mm->ok_status,
                      json_pack("{s:s}", "message", mm->ok_msg));
    }
    mm->req = NULL;
}

/*
 * Starts a change (@step for manager @id, at @address for an add); @req,
 * if not NULL, is answered @ok_status with @ok_msg once committed, or 503
 * if it fails. Answers @req itself when it cannot start.
 */
static void change(struct mmember *mm, struct rq_http_req *req, enum step step,
                   uint64_t id, const char *address, int ok_status,
                   const char *ok_msg)
{
    struct raft *raft = raft_of(mm);
    int rv;
    memset(&mm->change, 0, sizeof mm->change);
    mm->change.data = mm;
    rq_node_wake(mcore_node(mm->core));
    switch (step) {
        case ADD:
            rv = raft_add(raft, &mm->change, id, address, on_raft_change);
            break;
        case PROMOTE:
            rv = raft_assign(raft, &mm->change, id, RAFT_VOTER, on_raft_change);
            break;
        default:
            rv = raft_remove(raft, &mm->change, id, on_raft_change);
            break;
    }
    if (rv != 0) {
        if (req != NULL) {
            int status = rv == RAFT_DUPLICATEID || rv == RAFT_DUPLICATEADDRESS
                             ? 409
                             : 503;
            if (status == 503) {
                rq_http_set_header(req, "Retry-After", "1");
            }
            rq_http_reply_error(
                req, status, "the %s of manager %" PRIu64 " cannot start: %s",
                step_names[step], id, raft_errmsg(raft));
        }
        if (step == PROMOTE) {
            mm->promote_after_ms = mcore_now(mm->core) + PROMOTE_PAUSE_MS;
        }
        return;
    }
    mm->step = step;
    mm->id = id;
    mm->ok_status = ok_status;
    snprintf(mm->ok_msg, sizeof mm->ok_msg, "%s", ok_msg);
    rq_log(RQ_INFO, "manager %" PRIu64 ": %s started", id, step_names[step]);
    if (req != NULL) {
        mcore_hold(req, &mm->req);
    }
}

/* true if a change may start now; otherwise @req is answered 503. */
static bool idle(struct mmember *mm, struct rq_http_req *req)
{
    if (mm->step == IDLE && !mm->transferring) {
        return true;
    }
    mcore_unavailable(req, "the %s of manager %" PRIu64 " is under way; retry",
                      step_names[mm->step], mm->id);
    return false;
}

/*
 * A change request, checked, goes on on the leader: the committed
 * configuration to decide on, or NULL once @req is forwarded or answered
 * (503 while a change is under way or being committed).
 */
static const struct raft_configuration *on_leader(struct mmember *mm,
                                                  struct rq_http_req *req)
{
    if (mcore_forward(mm->core, req) || !idle(mm, req)) {
        return NULL;
    }
    return committed(mm, req);
}

void mmember_tick(struct mmember *mm, uint64_t now)
{
    const struct raft_configuration *c = committed(mm, NULL);
    if (c == NULL) {
        return;
    }
    if (now >= mm->asked_ms + ASK_EVERY_MS) {
        mm->asked_ms = now;
        ask_members(mm, c);
    }
    if (mm->step != IDLE || mm->transferring) {
        return;
    }
    uint64_t gone_ms = mcore_config(mm->core)->manager_gone_ms;
    unsigned n_voters = voters(c);
    for (unsigned i = 0; i < c->n && gone_ms > 0; i++) {
        const struct raft_server *sv = &c->servers[i];
        struct seen *s = seen_of(mm, sv->id);
        if (sv->id == mcore_config(mm->core)->id || s == NULL ||
            seed(mm, sv->id) || now < s->last_ms + gone_ms ||
            (sv->role == RAFT_VOTER && n_voters <= MIN_VOTERS)) {
            continue;
        }
        rq_log(RQ_WARN,
               "manager %" PRIu64
               " (not in --peers) has not answered for %" PRIu64
               " s: removing it; started again, it joins again",
               (uint64_t)sv->id, (now - s->last_ms) / 1000);
        change(mm, NULL, REMOVE, sv->id, NULL, 200, "");
        return;
    }
    if (now < mm->promote_after_ms) {
        return;
    }
    for (unsigned i = 0; i < c->n; i++) {
        if (c->servers[i].role != RAFT_VOTER) {
            change(mm, NULL, PROMOTE, c->servers[i].id, NULL, 200, "");
            return;
        }
    }
}

/* The id in the path: 1 to 2^32-1; 0 once answered 400. */
static uint64_t path_id(struct rq_http_req *req)
{
    uint64_t id;
    if (rq_parse_u64(rq_http_param(req, "id"), UINT32_MAX, &id) != 0 ||
        id == 0) {
        rq_http_reply_error(req, 400,
                            "the manager id must be an integer from 1 to "
                            "2^32-1");
        return 0;
    }
    return id;
}

static bool addr_valid(const json_t *v)
{
    char host[MCMD_ADDR_MAX + 1];
    char why[128];
    uint16_t port;
    return json_is_string(v) && json_string_length(v) < RQ_PREAMBLE_ADDR &&
           rq_addr_split(json_string_value(v), host, sizeof host, &port, why,
                         sizeof why) == 0;
}

void mmember_join(struct rq_http_req *req, void *data)
{
    struct mcore *core = data;
    struct mmember *mm = mcore_modules(core)->mmember;
    char why[128];
    char msg[MSG_LEN];

    uint64_t id = path_id(req);
    if (id == 0) {
        return;
    }
    json_t *body = rq_http_json(req, why, sizeof why);
    if (body == NULL) {
        rq_http_reply_error(req, 400, "%s", why);
        return;
    }
    const json_t *raft_addr = json_object_get(body, "raft_addr");
    if (!addr_valid(raft_addr)) {
        rq_http_reply_error(req, 400, "need 'raft_addr' (HOST:PORT)");
        return;
    }
    const struct raft_configuration *c = on_leader(mm, req);
    if (c == NULL) {
        return;
    }
    const char *address = json_string_value(raft_addr);
    const struct raft_server *s = server_of(c, id);
    if (s == NULL) {
        snprintf(msg, sizeof msg,
                 "manager %" PRIu64
                 " added as a spare; it becomes a voter once it has caught up",
                 id);
        change(mm, req, ADD, id, address, 200, msg);
        return;
    }
    if (id == mcore_config(core)->id) {
        rq_http_reply_error(req, 409, "manager %" PRIu64 " leads", id);
        return;
    }
    if (s->role == RAFT_VOTER || strcmp(s->address, address) != 0) {
        /* A voter asking to join has lost its data: it must not vote until
         * it has caught up again, as a new member. */
        rq_log(RQ_WARN,
               "manager %" PRIu64
               " (%s at %s) asks to join with no data: "
               "removing its old membership first",
               id, role_name(s->role), s->address);
        snprintf(msg, sizeof msg,
                 "manager %" PRIu64 "'s old membership is removed; join again",
                 id);
        change(mm, req, REMOVE, id, NULL, 202, msg);
        return;
    }
    rq_http_reply(req, 200,
                  json_pack("{s:s}", "message",
                            "a spare already; it becomes a voter once it has "
                            "caught up"));
}

void mmember_add(struct rq_http_req *req, void *data)
{
    struct mcore *core = data;
    struct mmember *mm = mcore_modules(core)->mmember;
    char why[128];
    char msg[MSG_LEN];
    uint64_t id;

    if (!auth_admin(core, req)) {
        return;
    }
    json_t *body = rq_http_json(req, why, sizeof why);
    if (body == NULL) {
        rq_http_reply_error(req, 400, "%s", why);
        return;
    }
    const json_t *jid = json_object_get(body, "id");
    const json_t *raft_addr = json_object_get(body, "raft_addr");
    if (!json_is_integer(jid) || json_integer_value(jid) <= 0 ||
        json_integer_value(jid) > UINT32_MAX || !addr_valid(raft_addr)) {
        rq_http_reply_error(req, 400,
                            "need 'id' (1 to 2^32-1) and 'raft_addr' "
                            "(HOST:PORT)");
        return;
    }
    id = (uint64_t)json_integer_value(jid);
    const struct raft_configuration *c = on_leader(mm, req);
    if (c == NULL) {
        return;
    }
    const struct raft_server *s = server_of(c, id);
    if (s != NULL) {
        rq_http_reply_error(req, 409, "manager %" PRIu64 " is a %s already", id,
                            role_name(s->role));
        return;
    }
    snprintf(msg, sizeof msg,
             "manager %" PRIu64
             " added as a spare; start it (an empty data directory) and it "
             "becomes a voter once it has caught up",
             id);
    change(mm, req, ADD, id, json_string_value(raft_addr), 200, msg);
}

static void on_transfer(struct raft_transfer *req)
{
    struct mmember *mm = req->data;
    mm->transferring = false;
}

void mmember_remove(struct rq_http_req *req, void *data)
{
    struct mcore *core = data;
    struct mmember *mm = mcore_modules(core)->mmember;
    char msg[MSG_LEN];

    if (!auth_admin(core, req)) {
        return;
    }
    uint64_t id = path_id(req);
    if (id == 0) {
        return;
    }
    const char *force = rq_http_query(req, "force");
    if (force != NULL && strcmp(force, "true") != 0 &&
        strcmp(force, "false") != 0) {
        rq_http_reply_error(req, 400, "force must be true or false");
        return;
    }
    const struct raft_configuration *c = on_leader(mm, req);
    if (c == NULL) {
        return;
    }
    const struct raft_server *s = server_of(c, id);
    if (s == NULL) {
        rq_http_reply_fail(req, 404, RQ_CODE_MANAGER_NOT_FOUND,
                           "manager %" PRIu64 " is not a member", id);
        return;
    }
    unsigned left = voters(c) - (s->role == RAFT_VOTER);
    if (s->role == RAFT_VOTER && left < MIN_VOTERS &&
        (force == NULL || strcmp(force, "true") != 0)) {
        rq_http_reply_error(req, 409,
                            "removing manager %" PRIu64
                            " would leave %u voters, which cannot lose one; "
                            "add a manager first, or pass force=true",
                            id, left);
        return;
    }
    if (left == 0) {
        rq_http_reply_error(req, 409, "manager %" PRIu64 " is the last voter",
                            id);
        return;
    }
    if (id == mcore_config(core)->id) {
        /* The leader hands over first; the next leader removes it. */
        memset(&mm->transfer, 0, sizeof mm->transfer);
        mm->transfer.data = mm;
        if (raft_transfer(raft_of(mm), &mm->transfer, 0, on_transfer) == 0) {
            mm->transferring = true;
            rq_log(RQ_INFO, "handing leadership over before leaving");
        }
        mcore_unavailable(req,
                          "manager %" PRIu64
                          " leads; leadership is moving to another manager; "
                          "retry",
                          id);
        return;
    }
    snprintf(msg, sizeof msg, "manager %" PRIu64 " removed; stop it", id);
    change(mm, req, REMOVE, id, NULL, 200, msg);
}

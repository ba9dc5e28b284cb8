/*
 * Consumer groups (see qapi_groups.h).
 *
 * Membership, commits and the operator's changes are commands
 * (mcmd.h, applied in mstore.c with cgroup_plan's rules); heartbeats and
 * fetches write nothing: they touch the coordinator's memory (cgroup.h).
 * A fetch reads every partition the member owns from its position, each
 * up to an equal share of max, all at once from the partitions' leader
 * brokers; when none has a record and the fetch may wait, it asks them
 * all again with the wait (the brokers' long poll, woken by produces) and
 * answers with the first that has records. Positions move when the answer
 * is sent, and not at all for a client that has gone by then, so what a
 * member is told it fetched is what it may commit.
 */
#include "qapi_groups.h"

#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>

#include "bclient.h"
#include "cgroup.h"
#include "cgroup_plan.h"
#include "qapi.h"
#include "qapi_read.h"
#include "rq_codes.h"
#include "rq_err.h"
#include "rq_log.h"
#include "rq_names.h"
#include "rq_reads.h"

#define LOG_TAG "qapi"

#define SESSION_DEFAULT_MS 10000
#define FETCH_DEFAULT_MAX 100
#define FETCH_MAX 10000
#define FETCH_WAIT_MAX_MS 60000

static struct cgroup *coordinator(const struct mcore *core)
{
    return mcore_modules(core)->cgroups;
}

/* ---- Arguments ---- */

/* The {group} path segment, checked; NULL after answering 400. */
static const char *group_param(struct rq_http_req *req)
{
    const char *g = rq_http_param(req, "group");
    if (g == NULL || !rq_names_topic_valid(g)) {
        rq_http_reply_error(req, 400,
                            "the group name must be 1-%d characters of "
                            "[A-Za-z0-9._-], not . or ..",
                            MCMD_GROUP_MAX);
        return NULL;
    }
    return g;
}

/* The member_id argument; NULL after answering 400. */
static const char *member_arg(struct rq_http_req *req)
{
    json_t *v = qapi_body_value(req, "member_id");
    const char *m = rq_http_arg(req, "member_id");
    if ((v != NULL && !json_is_string(v)) || m == NULL) {
        rq_http_reply_error(req, 400,
                            "'member_id' is required: the string a join "
                            "answered");
        return NULL;
    }
    if (!rq_names_member_valid(m)) {
        rq_http_reply_error(req, 400,
                            "'member_id' must be 1-%d characters of "
                            "[A-Za-z0-9._-]",
                            MCMD_MEMBER_MAX);
        return NULL;
    }
    return m;
}

/*
 * The first steps of every route served on the leader: the token, the
 * group name, a JSON object body if any, and the forward to the leader.
 * true when this manager serves the request now.
 */
static bool group_route(struct mcore *core, struct rq_http_req *req,
                        rq_http_handler again, struct auth *who,
                        const char **group)
{
    if (!auth_public(core, req, who, again) || !qapi_body_ok(req)) {
        return false;
    }
    *group = group_param(req);
    return *group != NULL && !mcore_forward(core, req);
}

/*
 * On the leader: group @name, and the consume grant on its topic. false
 * after answering: 404 for an unknown group, or with @as_member 409 (the
 * member must join again), 403 without the grant.
 */
static bool group_load(struct mcore *core, struct rq_http_req *req,
                       const struct auth *who, const char *name,
                       const char *as_member, struct mstore_cgroup *g)
{
    int rv = mstore_cgroup(mcore_store(core), name, g);
    if (rv == RQ_NOTFOUND && as_member != NULL) {
        rq_http_reply_fail(req, 409, RQ_CODE_MEMBER_UNKNOWN,
                           "member %s is not in group %s (the group does "
                           "not exist); join again",
                           as_member, name);
        return false;
    }
    if (rv == RQ_NOTFOUND) {
        rq_http_reply_fail(req, 404, RQ_CODE_GROUP_NOT_FOUND, "no group %s",
                           name);
        return false;
    }
    if (rv != 0) {
        qapi_reply_store_error(req, rv);
        return false;
    }
    return auth_allow(req, who, GRANT_TO_CONSUME, g->topic);
}

/*
 * The partitions @member owns in @group, in order, into *@out (malloc'd,
 * *n of them). 0; RQ_NOTFOUND after answering 409 when @member is not in
 * the group; another code after answering 500.
 */
static int member_partitions(struct mcore *core, struct rq_http_req *req,
                             const char *group, const char *member,
                             uint32_t **out, size_t *n)
{
    const struct mstore *s = mcore_store(core);
    struct mstore_cgroup_member *ms = NULL;
    struct mstore_cgroup_owner *os = NULL;
    size_t n_ms = 0;
    size_t n_os = 0;
    bool in = false;
    int rv = mstore_cgroup_members(s, group, &ms, &n_ms);
    for (size_t i = 0; rv == 0 && i < n_ms && !in; i++) {
        in = strcmp(ms[i].member_id, member) == 0;
    }
    free(ms);
    if (rv == 0 && !in) {
        rq_http_reply_fail(req, 409, RQ_CODE_MEMBER_UNKNOWN,
                           "member %s is not in group %s (it left, or its "
                           "session expired); join again",
                           member, group);
        return RQ_NOTFOUND;
    }
    if (rv == 0) {
        rv = mstore_cgroup_owners(s, group, &os, &n_os);
    }
    uint32_t *parts = rv == 0 ? calloc(n_os + 1, sizeof *parts) : NULL;
    if (rv == 0 && parts == NULL) {
        rv = RQ_NOMEM; /* UNTESTED: ENOMEM only. */
    }
    if (rv != 0) {
        free(os);
        qapi_reply_store_error(req, rv);
        return rv;
    }
    size_t k = 0;
    for (size_t i = 0; i < n_os; i++) {
        if (strcmp(os[i].member_id, member) == 0) {
            parts[k++] = os[i].partition_id;
        }
    }
    free(os);
    *out = parts;
    *n = k;
    return 0;
}

static json_t *partitions_json(const uint32_t *parts, size_t n)
{
    json_t *a = json_array();
    for (size_t i = 0; i < n; i++) {
        json_array_append_new(a, json_integer(parts[i]));
    }
    return a;
}

/* Answers with the member's generation and partitions as the store has
 * them now (a join, a heartbeat), plus @extra's members (stolen). false
 * after answering 409 (the member is not in the group) or 500. */
static bool reply_assignment(struct mcore *core, struct rq_http_req *req,
                             const char *group, const char *member,
                             json_t *extra)
{
    struct mstore_cgroup g;
    uint32_t *parts;
    size_t n;
    int rv = mstore_cgroup(mcore_store(core), group, &g);
    if (rv != 0) {
        json_decref(extra);
        qapi_reply_store_error(req, rv);
        return false;
    }
    if (member_partitions(core, req, group, member, &parts, &n) != 0) {
        json_decref(extra);
        return false;
    }
    json_t *body = extra != NULL ? extra : json_object();
    json_object_set_new(body, "generation", json_integer(g.generation));
    json_object_set_new(body, "partitions", partitions_json(parts, n));
    free(parts);
    rq_http_reply(req, 200, body);
    return true;
}

/* ---- Join ---- */

struct join {
    struct rq_http_req *req; /* First: the held request. */
    struct mcore *core;
    char group[MCMD_GROUP_MAX + 1];
    char topic[MCMD_NAME_MAX + 1];
    char member[MCMD_MEMBER_MAX + 1];
    uint32_t session_ms;
};

static void on_joined(void *data, int status, uint64_t result)
{
    struct join *op = data;
    struct rq_http_req *req = op->req;
    if (req != NULL) {
        rq_http_on_abort(req, NULL, NULL);
    }
    if (status == 0 && !MSTORE_IS_ERR(result)) {
        /* Heard from now, whether or not its client is still there: a
         * member nobody hears from again expires like any other. */
        cgroup_touch(coordinator(op->core), op->group, op->member,
                     mcore_now(op->core));
        rq_log(RQ_INFO,
               "group %s: member %s joined (topic %s, session %" PRIu32
               " ms): generation %" PRIu64,
               op->group, op->member, op->topic, op->session_ms,
               MSTORE_OK(result));
    }
    if (req == NULL) {
        free(op);
        return;
    }
    int code = MSTORE_IS_ERR(result) ? MSTORE_ERR_CODE(result) : 0;
    if (status != 0) {
        mcore_unavailable(req, "the join was not committed: %s; retry",
                          rq_strerror(status));
    } else if (code == RQ_NOTFOUND) {
        rq_http_reply_fail(req, 404, RQ_CODE_TOPIC_NOT_FOUND,
                           "topic %s not found", op->topic);
    } else if (code == RQ_INVALID) {
        rq_http_reply_error(req, 409, "group %s consumes another topic than %s",
                            op->group, op->topic);
    } else if (code == RQ_TOOBIG) {
        rq_http_reply_error(req, 409, "group %s has %d members already",
                            op->group, MCMD_MAX_MEMBERS);
    } else if (code != 0) {
        mcore_unavailable(req, "the join was refused: %s; retry",
                          rq_strerror(code));
    } else {
        json_t *extra = json_pack("{s:s,s:I}", "member_id", op->member,
                                  "heartbeat_interval_ms",
                                  (json_int_t)(op->session_ms / 3));
        reply_assignment(op->core, req, op->group, op->member, extra);
    }
    free(op);
}

/* A member id no one has: 16 hex digits of the kernel's randomness. */
static int member_id_new(char *out, size_t n)
{
    uint8_t r[8];
    if (getrandom(r, sizeof r, 0) != (ssize_t)sizeof r) {
        return RQ_IO; /* UNTESTED: getrandom does not fail on Linux. */
    }
    snprintf(out, n, "%02x%02x%02x%02x%02x%02x%02x%02x", r[0], r[1], r[2], r[3],
             r[4], r[5], r[6], r[7]);
    return 0;
}

void qapi_group_join(struct rq_http_req *req, void *data)
{
    struct mcore *core = data;
    struct auth who;
    bool present;
    uint64_t session = SESSION_DEFAULT_MS;

    if (!auth_public(core, req, &who, qapi_group_join) || !qapi_body_ok(req)) {
        return;
    }
    const char *group = group_param(req);
    const char *topic = group != NULL ? qapi_topic_arg(req, "topic") : NULL;
    if (topic == NULL) {
        return;
    }
    if (qapi_arg_u64(req, "session_timeout_ms", &present, &session) != 0 ||
        session < MCMD_SESSION_MIN_MS || session > MCMD_SESSION_MAX_MS) {
        rq_http_reply_error(req, 400,
                            "'session_timeout_ms' must be an integer from "
                            "%d to %d",
                            MCMD_SESSION_MIN_MS, MCMD_SESSION_MAX_MS);
        return;
    }
    if (!qapi_admit(core, req, &who, GRANT_TO_CONSUME, topic, QAPI_AT_LEADER)) {
        return;
    }
    struct mstore_topic t;
    struct mstore_cgroup g;
    int rv = mstore_topic(mcore_store(core), topic, &t);
    if (qapi_reply_topic_lookup(req, rv, topic)) {
        return;
    }
    rv = mstore_cgroup(mcore_store(core), group, &g);
    if (rv == 0 && strcmp(g.topic, topic) != 0) {
        rq_http_reply_error(req, 409,
                            "group %s consumes topic %s, not %s: a group "
                            "consumes one topic",
                            group, g.topic, topic);
        return;
    }
    struct join *op = rq_http_calloc(req, 1, sizeof *op);
    if (op == NULL) {
        return; /* UNTESTED: ENOMEM only. */
    }
    op->core = core;
    op->session_ms = (uint32_t)session;
    snprintf(op->group, sizeof op->group, "%s", group);
    snprintf(op->topic, sizeof op->topic, "%s", topic);
    if (member_id_new(op->member, sizeof op->member) != 0) {
        free(op); /* UNTESTED: getrandom does not fail on Linux. */
        mcore_unavailable(req, "no random member id now");
        return;
    }
    struct mcmd c = {.type = MCMD_GROUP_JOIN};
    snprintf(c.u.group_join.group, sizeof c.u.group_join.group, "%s", group);
    snprintf(c.u.group_join.topic, sizeof c.u.group_join.topic, "%s", topic);
    snprintf(c.u.group_join.member, sizeof c.u.group_join.member, "%s",
             op->member);
    c.u.group_join.session_ms = op->session_ms;
    qapi_propose(core, req, &c, on_joined, op, &op->req);
}

/* ---- Heartbeat ---- */

void qapi_group_heartbeat(struct rq_http_req *req, void *data)
{
    struct mcore *core = data;
    struct auth who;
    struct mstore_cgroup g;
    const char *group;
    if (!group_route(core, req, qapi_group_heartbeat, &who, &group)) {
        return;
    }
    const char *member = member_arg(req);
    if (member == NULL || !group_load(core, req, &who, group, member, &g)) {
        return;
    }
    /* Only a member's heartbeat keeps its session: reply_assignment
     * answers 409 to anyone else. */
    if (reply_assignment(core, req, group, member, NULL)) {
        cgroup_touch(coordinator(core), group, member, mcore_now(core));
    }
}

/* ---- Leave ---- */

struct leave {
    struct rq_http_req *req; /* First: the held request. */
    struct mcore *core;
    char group[MCMD_GROUP_MAX + 1];
    char members[1][MCMD_MEMBER_MAX + 1];
};

static void on_left(void *data, int status, uint64_t result)
{
    struct leave *op = data;
    struct rq_http_req *req = op->req;
    if (status == 0 && !MSTORE_IS_ERR(result)) {
        cgroup_forget(coordinator(op->core), op->group, op->members[0]);
        rq_log(RQ_INFO, "group %s: member %s left: generation %" PRIu64,
               op->group, op->members[0], MSTORE_OK(result));
    }
    if (req != NULL) {
        rq_http_on_abort(req, NULL, NULL);
        if (status != 0) {
            mcore_unavailable(req, "the leave was not committed: %s; retry",
                              rq_strerror(status));
        } else if (MSTORE_IS_ERR(result)) {
            rq_http_reply_fail(req, 409, RQ_CODE_MEMBER_UNKNOWN,
                               "member %s is not in group %s (it left "
                               "already, or its session expired); join "
                               "again to consume",
                               op->members[0], op->group);
        } else {
            rq_http_reply(req, 200, NULL);
        }
    }
    free(op);
}

void qapi_group_leave(struct rq_http_req *req, void *data)
{
    struct mcore *core = data;
    struct auth who;
    struct mstore_cgroup g;
    const char *group;
    if (!group_route(core, req, qapi_group_leave, &who, &group)) {
        return;
    }
    const char *member = member_arg(req);
    if (member == NULL || !group_load(core, req, &who, group, member, &g)) {
        return;
    }
    struct leave *op = rq_http_calloc(req, 1, sizeof *op);
    if (op == NULL) {
        return; /* UNTESTED: ENOMEM only. */
    }
    op->core = core;
    snprintf(op->group, sizeof op->group, "%s", group);
    snprintf(op->members[0], sizeof op->members[0], "%s", member);
    struct mcmd c = {.type = MCMD_GROUP_LEAVE};
    snprintf(c.u.group_leave.group, sizeof c.u.group_leave.group, "%s", group);
    /* qapi_propose clears the command, freeing this copy of the list. */
    c.u.group_leave.members = malloc(sizeof op->members);
    if (c.u.group_leave.members == NULL) {
        free(op); /* UNTESTED: ENOMEM only. */
        rq_http_reply_error(req, 500, "out of memory");
        return;
    }
    memcpy(c.u.group_leave.members, op->members, sizeof op->members);
    c.u.group_leave.n = 1;
    qapi_propose(core, req, &c, on_left, op, &op->req);
}

/* ---- Commit ---- */

struct gcommit {
    struct rq_http_req *req; /* First: the held request. */
    char group[MCMD_GROUP_MAX + 1];
    char member[MCMD_MEMBER_MAX + 1];
};

static void on_group_committed(void *data, int status, uint64_t result)
{
    struct gcommit *op = data;
    struct rq_http_req *req = op->req;
    if (req != NULL) {
        rq_http_on_abort(req, NULL, NULL);
        int code = MSTORE_IS_ERR(result) ? MSTORE_ERR_CODE(result) : 0;
        if (status != 0) {
            mcore_unavailable(req, "the offsets were not committed: %s; retry",
                              rq_strerror(status));
        } else if (code == CGROUP_PLAN_FENCED) {
            rq_http_reply_fail(req, 409, RQ_CODE_FENCED,
                               "the commit of member %s was fenced off: "
                               "group %s changed while it was proposed; "
                               "join again",
                               op->member, op->group);
        } else if (code != 0) {
            rq_http_reply_error(req, rq_err_http_status(code),
                                "the offsets were refused: %s",
                                rq_strerror(code));
        } else {
            rq_http_reply(req, 200, NULL);
        }
    }
    free(op);
}

void qapi_group_commit(struct rq_http_req *req, void *data)
{
    struct mcore *core = data;
    struct auth who;
    struct mstore_cgroup g;
    const char *group;
    bool present;
    uint64_t generation;
    if (!group_route(core, req, qapi_group_commit, &who, &group)) {
        return;
    }
    const char *member = member_arg(req);
    if (member == NULL) {
        return;
    }
    if (qapi_arg_u64(req, "generation", &present, &generation) != 0 ||
        !present) {
        rq_http_reply_error(req, 400,
                            "'generation' is required: the integer the "
                            "last join, heartbeat or fetch answered");
        return;
    }
    json_t *list = json_object_get(rq_http_json(req, NULL, 0), "offsets");
    size_t n = json_array_size(list);
    if (!json_is_array(list) || n > MCMD_MAX_OFFSETS) {
        rq_http_reply_error(req, 400,
                            "'offsets' must be a list of at most %d "
                            "{partition_id, offset} objects (the next "
                            "offset to read)",
                            MCMD_MAX_OFFSETS);
        return;
    }
    struct mcmd c = {.type = MCMD_GROUP_COMMIT};
    c.u.group_offsets.offsets =
        rq_http_calloc(req, n + 1, sizeof *c.u.group_offsets.offsets);
    if (c.u.group_offsets.offsets == NULL) {
        return; /* UNTESTED: ENOMEM only. */
    }
    uint32_t parts[MCMD_MAX_OFFSETS];
    for (size_t i = 0; i < n; i++) {
        json_t *o = json_array_get(list, i);
        json_t *p = json_object_get(o, "partition_id");
        json_t *off = json_object_get(o, "offset");
        if (!json_is_integer(p) || !json_is_integer(off) ||
            json_integer_value(p) < 0 ||
            json_integer_value(p) >= MCMD_MAX_PARTITIONS ||
            json_integer_value(off) < 0) {
            mcmd_clear(&c);
            rq_http_reply_error(req, 400,
                                "offsets[%zu] needs integer 'partition_id' "
                                "and 'offset', neither negative",
                                i);
            return;
        }
        parts[i] = (uint32_t)json_integer_value(p);
        for (size_t j = 0; j < i; j++) {
            if (parts[j] == parts[i]) {
                mcmd_clear(&c);
                rq_http_reply_error(
                    req, 400, "partition %" PRIu32 " appears twice", parts[i]);
                return;
            }
        }
        c.u.group_offsets.offsets[i] = (struct mcmd_offset){
            .partition_id = parts[i],
            .offset = (uint64_t)json_integer_value(off),
            .expected = MCMD_ANY,
        };
    }
    c.u.group_offsets.n = (uint32_t)n;
    if (!group_load(core, req, &who, group, member, &g)) {
        mcmd_clear(&c);
        return;
    }
    /* Fenced here with the reason; the apply checks again, against the
     * state the commit lands on. */
    uint32_t *owned;
    size_t n_owned;
    if (member_partitions(core, req, group, member, &owned, &n_owned) != 0) {
        mcmd_clear(&c);
        return;
    }
    uint32_t *owner = calloc(MCMD_MAX_PARTITIONS, sizeof *owner);
    char why[160];
    if (owner == NULL) {
        free(owned); /* UNTESTED: ENOMEM only. */
        mcmd_clear(&c);
        qapi_reply_store_error(req, RQ_NOMEM);
        return;
    }
    /* The rule knows members by index: this one is 0. */
    for (uint32_t p = 0; p < MCMD_MAX_PARTITIONS; p++) {
        owner[p] = CGROUP_PLAN_NONE;
    }
    for (size_t i = 0; i < n_owned; i++) {
        owner[owned[i]] = 0;
    }
    free(owned);
    int fenced = cgroup_plan_commit_check(0, generation, g.generation, owner,
                                          MCMD_MAX_PARTITIONS, parts, n, why,
                                          sizeof why);
    free(owner);
    if (fenced != 0) {
        mcmd_clear(&c);
        rq_http_reply_fail(req, 409, RQ_CODE_FENCED,
                           "the commit of member %s in group %s is fenced "
                           "off: %s; join again",
                           member, group, why);
        return;
    }
    cgroup_touch(coordinator(core), group, member, mcore_now(core));
    if (n == 0) {
        mcmd_clear(&c);
        rq_http_reply(req, 200, NULL);
        return;
    }
    struct gcommit *op = rq_http_calloc(req, 1, sizeof *op);
    if (op == NULL) {
        mcmd_clear(&c); /* UNTESTED: ENOMEM only. */
        return;
    }
    snprintf(op->group, sizeof op->group, "%s", group);
    snprintf(op->member, sizeof op->member, "%s", member);
    snprintf(c.u.group_offsets.group, sizeof c.u.group_offsets.group, "%s",
             group);
    snprintf(c.u.group_offsets.member, sizeof c.u.group_offsets.member, "%s",
             member);
    c.u.group_offsets.generation = generation;
    qapi_propose(core, req, &c, on_group_committed, op, &op->req);
}

/* ---- Fetch ---- */

struct fetch;

/* One partition's read of a fetch. */
struct fetch_part {
    struct fetch *f;
    struct mstore_partition p;
    uint64_t committed; /* The group's committed offset, 0 for none. */
    uint32_t max;
    uint8_t *body; /* The binary answer with records, or NULL. */
    size_t len;
    struct rq_reads_head head;
    int failed;    /* The broker's status when it could not be read. */
    uint32_t take; /* Of its records, how many the answer gives. */
};

struct fetch {
    struct rq_http_req *req; /* First: the held request. */
    struct mcore *core;
    char group[MCMD_GROUP_MAX + 1];
    char member[MCMD_MEMBER_MAX + 1];
    uint64_t generation;
    uint32_t max;
    uint32_t wait_ms;
    bool waiting; /* The second round: with the wait. */
    bool done;    /* Answered (or the client went): later reads are dropped. */
    size_t turn;  /* The partition that is first to get a record. */
    size_t pending;
    struct fetch_part *parts;
    size_t n;
};

static void fetch_free(struct fetch *f)
{
    for (size_t i = 0; i < f->n; i++) {
        free(f->parts[i].body);
    }
    free(f->parts);
    free(f);
}

/* The fetch is over for the member: its next one may start. */
static void fetch_end(struct fetch *f)
{
    if (!f->done) {
        f->done = true;
        cgroup_fetch_end(coordinator(f->core), f->group, f->member);
    }
}

static void on_fetch_abort(struct rq_http_req *req, void *data)
{
    struct fetch *f = data;
    f->req = NULL;
    fetch_end(f);
    mcore_unavailable(req,
                      "the fetch was abandoned: the client went away "
                      "or the manager is shutting down");
}

/* Writes one record of partition @p as JSON into @out. */
static int record_json(struct rq_buf *out, uint32_t p,
                       const struct rq_reads_record *r, bool first)
{
    char num[96];
    snprintf(num, sizeof num,
             "%s{\"partition_id\":%" PRIu32 ",\"offset\":%" PRIu64
             ",\"value\":",
             first ? "" : ",", p, r->offset);
    rq_buf_put_bytes(out, num, strlen(num));
    int rv = rq_reads_json_string(out, r->value, r->value_len);
    rq_buf_put_bytes(out, ",\"key\":", 7);
    if (rv == 0 && r->has_key) {
        rv = rq_reads_json_string(out, r->key, r->key_len);
    } else {
        rq_buf_put_bytes(out, "null", 4);
    }
    snprintf(num, sizeof num, ",\"timestamp_ms\":%" PRId64 "}",
             r->timestamp_ms);
    rq_buf_put_bytes(out, num, strlen(num));
    return rv;
}

/*
 * How many of each partition's records the answer gives: one a partition
 * in turn, from f->turn, until max are given or none is left, so
 * partitions with records share max equally and what one lacks goes to
 * the others.
 */
static void fetch_shares(struct fetch *f)
{
    uint32_t left = f->max;
    bool more = true;
    for (size_t i = 0; i < f->n; i++) {
        f->parts[i].take = 0;
    }
    while (left > 0 && more) {
        more = false;
        for (size_t k = 0; k < f->n && left > 0; k++) {
            struct fetch_part *fp = &f->parts[(f->turn + k) % f->n];
            if (fp->body != NULL && fp->take < fp->head.count) {
                fp->take++;
                left--;
                more = true;
            }
        }
    }
}

/*
 * The group may have moved on while the reads waited (a long poll outlasts
 * a rebalance): the answer gives only what the member owns now, under the
 * generation it owns it in, so that what it commits is not fenced off for
 * nothing; a partition that moved keeps its position for its new owner.
 * false after answering 409 (the member is gone) or 500.
 */
static bool fetch_still_owned(struct fetch *f, struct rq_http_req *req)
{
    struct mstore_cgroup g;
    uint32_t *owned;
    size_t n;
    int rv = mstore_cgroup(mcore_store(f->core), f->group, &g);
    if (rv == RQ_NOTFOUND) {
        rq_http_reply_fail(req, 409, RQ_CODE_MEMBER_UNKNOWN,
                           "member %s is not in group %s (the group is gone); "
                           "join again",
                           f->member, f->group);
        return false;
    }
    if (rv != 0) {
        qapi_reply_store_error(req, rv);
        return false;
    }
    if (member_partitions(f->core, req, f->group, f->member, &owned, &n) != 0) {
        return false;
    }
    for (size_t i = 0; i < f->n; i++) {
        struct fetch_part *fp = &f->parts[i];
        bool mine = false;
        for (size_t k = 0; k < n && !mine; k++) {
            mine = owned[k] == fp->p.partition_id;
        }
        if (!mine && fp->body != NULL) {
            free(fp->body);
            fp->body = NULL;
        }
    }
    free(owned);
    f->generation = g.generation;
    return true;
}

/*
 * Answers with the records every partition's read brought (their shares of
 * max), in partition order, and moves the member's positions past them;
 * nothing moves for a client that has gone.
 */
static void fetch_answer(struct fetch *f)
{
    struct rq_http_req *req = f->req;
    fetch_end(f);
    if (req == NULL || rq_http_client_gone(req)) {
        return; /* The abort callback answered; nothing was given out. */
    }
    rq_http_on_abort(req, NULL, NULL);
    if (!fetch_still_owned(f, req)) {
        return;
    }
    size_t records = 0;
    int failed = 0;
    for (size_t i = 0; i < f->n; i++) {
        records += f->parts[i].body != NULL ? f->parts[i].head.count : 0;
        failed = failed != 0 ? failed : f->parts[i].failed;
    }
    if (records == 0 && failed != 0) {
        mcore_unavailable(req,
                          "the partitions of member %s could not be read "
                          "(a broker answered %d); retry",
                          f->member, failed);
        return;
    }
    fetch_shares(f);
    struct rq_buf out;
    rq_buf_init(&out);
    rq_buf_put_bytes(&out, "{\"status\":\"success\",\"records\":[", 31);
    bool first = true;
    int rv = 0;
    for (size_t i = 0; i < f->n && rv == 0; i++) {
        struct fetch_part *fp = &f->parts[i];
        if (fp->take == 0) {
            continue;
        }
        struct rq_reads_iter it;
        struct rq_reads_record r;
        uint32_t given = 0;
        rq_reads_iter_init(&it, fp->body, fp->len, &fp->head);
        while (rv == 0 && given++ < fp->take && rq_reads_next(&it, &r) == 1) {
            rv = record_json(&out, fp->p.partition_id, &r, first);
            first = false;
        }
    }
    char tail[64];
    snprintf(tail, sizeof tail, "],\"generation\":%" PRIu64 "}", f->generation);
    rq_buf_put_bytes(&out, tail, strlen(tail));
    if (rv != 0 || out.err != 0) {
        rq_buf_close(&out);
        rq_http_reply_error(req, 500, "the brokers' records are not text: %s",
                            rq_strerror(rv != 0 ? rv : out.err));
        return;
    }
    for (size_t i = 0; i < f->n; i++) {
        struct fetch_part *fp = &f->parts[i];
        if (fp->take > 0) {
            uint64_t from = fp->head.next_offset - fp->head.count;
            cgroup_advance(coordinator(f->core), f->group, fp->p.partition_id,
                           f->member, from + fp->take);
        }
    }
    cgroup_touch(coordinator(f->core), f->group, f->member, mcore_now(f->core));
    /* The buffer goes to the reply, which frees it. */
    rq_http_reply_owned(req, 200, "application/json", out.base, out.len);
}

static void fetch_round(struct fetch *f, bool waiting);

/* Every read of the round is back: answer, or wait in a second round. */
static void fetch_settle(struct fetch *f)
{
    if (!f->done) {
        size_t records = 0;
        for (size_t i = 0; i < f->n; i++) {
            records += f->parts[i].body != NULL ? f->parts[i].head.count : 0;
        }
        if (records == 0 && !f->waiting && f->wait_ms > 0) {
            fetch_round(f, true);
            return;
        }
        fetch_answer(f);
    }
    fetch_free(f);
}

static void on_fetch_read(void *data, const struct bclient_result *r)
{
    struct fetch_part *fp = data;
    struct fetch *f = fp->f;
    if (!f->done) {
        json_t *first = r->status == 404
                            ? json_object_get(r->answer, "first_offset")
                            : NULL;
        if (r->head != NULL && r->body != NULL) {
            fp->body = malloc(r->body_len > 0 ? r->body_len : 1);
            if (fp->body != NULL) {
                memcpy(fp->body, r->body, r->body_len);
                fp->len = r->body_len;
                fp->head = *r->head;
            }
        } else if (json_is_integer(first)) {
            /* Retention removed the records at the position: go on from
             * the first one kept. */
            cgroup_advance(coordinator(f->core), f->group, fp->p.partition_id,
                           f->member, (uint64_t)json_integer_value(first));
        } else {
            fp->failed = r->status;
        }
        if (f->waiting && fp->body != NULL && fp->head.count > 0) {
            fetch_answer(f);
        }
    }
    if (--f->pending == 0) {
        fetch_settle(f);
    }
}

/*
 * Reads every partition from the member's position: the first round each
 * up to its share of max without waiting, the second (@waiting, when the
 * first found nothing) each up to max with the wait.
 */
static void fetch_round(struct fetch *f, bool waiting)
{
    f->waiting = waiting;
    f->pending = 1; /* Until every read is started. */
    for (size_t i = 0; i < f->n; i++) {
        struct fetch_part *fp = &f->parts[i];
        free(fp->body);
        fp->body = NULL;
        fp->failed = 0;
        uint64_t at =
            cgroup_position(coordinator(f->core), f->group, fp->p.partition_id,
                            f->member, fp->committed);
        f->pending++;
        if (bclient_read_binary(f->core, &fp->p, at, waiting ? f->max : fp->max,
                                waiting ? f->wait_ms : 0, on_fetch_read,
                                fp) != 0) {
            f->pending--;
            fp->failed = 503;
        }
    }
    if (--f->pending == 0) {
        fetch_settle(f);
    }
}

/* A fetch's arguments while its consistent read is under way (the
 * strings are borrowed from the request). */
struct fetch_args {
    const char *group;
    const char *member;
    uint64_t max;
    uint64_t wait_ms;
};

/*
 * The fetch proper, once a barrier has proved this manager the leader and
 * applied everything committed before it: a leader that was paused or cut
 * off, not deposed yet, would otherwise read the committed offsets and
 * the assignment of an older state and hand out records a member of a
 * later generation has already processed and committed.
 */
static bool records_after_read(struct mcore *core, struct rq_http_req *req,
                               void *arg, bool last_try)
{
    const struct fetch_args *a = arg;
    const char *group = a->group;
    const char *member = a->member;
    uint64_t max = a->max;
    uint64_t wait_ms = a->wait_ms;
    struct auth who;
    struct mstore_cgroup g;
    (void)last_try;
    if (!auth_public(core, req, &who, NULL) ||
        !group_load(core, req, &who, group, member, &g)) {
        return true;
    }
    uint32_t *owned;
    size_t n;
    if (member_partitions(core, req, group, member, &owned, &n) != 0) {
        return true;
    }
    struct mstore_partition *all = NULL;
    struct mstore_offset *committed = NULL;
    size_t n_all = 0;
    size_t n_committed = 0;
    int rv = mstore_partitions(mcore_store(core), g.topic, &all, &n_all);
    if (rv == 0) {
        rv = mstore_cgroup_offsets(mcore_store(core), group, &committed,
                                   &n_committed);
    }
    if (rv != 0) {
        free(all);
        free(owned);
        qapi_reply_store_error(req, rv);
        return true;
    }
    cgroup_touch(coordinator(core), group, member, mcore_now(core));
    if (n == 0) {
        /* More members than partitions: nothing for this one now. */
        free(owned);
        free(all);
        free(committed);
        rq_http_reply(req, 200,
                      json_pack("{s:[],s:I}", "records", "generation",
                                (json_int_t)g.generation));
        return true;
    }
    if (!cgroup_fetch_begin(coordinator(core), group, member)) {
        free(owned);
        free(all);
        free(committed);
        rq_http_reply_error(req, 409,
                            "member %s has a fetch waiting already; fetch "
                            "again once it is answered",
                            member);
        return true;
    }
    struct fetch *f = calloc(1, sizeof *f);
    struct fetch_part *parts = calloc(n, sizeof *parts);
    if (f == NULL || parts == NULL) {
        free(f); /* UNTESTED: ENOMEM only. */
        free(parts);
        free(owned);
        free(all);
        free(committed);
        cgroup_fetch_end(coordinator(core), group, member);
        rq_http_reply_error(req, 500, "out of memory");
        return true;
    }
    *f = (struct fetch){
        .core = core,
        .generation = g.generation,
        .max = (uint32_t)max,
        .wait_ms = (uint32_t)(wait_ms > FETCH_WAIT_MAX_MS ? FETCH_WAIT_MAX_MS
                                                          : wait_ms),
        .parts = parts,
        .n = n,
    };
    snprintf(f->group, sizeof f->group, "%s", group);
    snprintf(f->member, sizeof f->member, "%s", member);
    /* Each partition is asked for up to twice an equal share of max, so
     * that what some lack others can make up (fetch_shares). */
    uint32_t share = (uint32_t)((max + n - 1) / n);
    f->turn = (size_t)(mcore_now(core) % n);
    for (size_t i = 0; i < n; i++) {
        parts[i].f = f;
        parts[i].p = all[owned[i] < n_all ? owned[i] : 0];
        parts[i].max = share * 2 < max ? share * 2 : (uint32_t)max;
        for (size_t k = 0; k < n_committed; k++) {
            if (committed[k].partition_id == owned[i]) {
                parts[i].committed = committed[k].next_offset;
            }
        }
    }
    free(owned);
    free(all);
    free(committed);
    f->req = req;
    rq_http_on_abort(req, on_fetch_abort, f);
    fetch_round(f, false);
    return true;
}

void qapi_group_records(struct rq_http_req *req, void *data)
{
    struct mcore *core = data;
    struct auth who;
    struct fetch_args a = {.max = FETCH_DEFAULT_MAX};
    bool present;
    if (!group_route(core, req, qapi_group_records, &who, &a.group)) {
        return;
    }
    a.member = member_arg(req);
    if (a.member == NULL) {
        return;
    }
    if (qapi_arg_u64(req, "max", &present, &a.max) != 0 || a.max == 0 ||
        a.max > FETCH_MAX) {
        rq_http_reply_error(req, 400, "'max' must be an integer from 1 to %d",
                            FETCH_MAX);
        return;
    }
    if (qapi_arg_u64(req, "wait_ms", &present, &a.wait_ms) != 0) {
        rq_http_reply_error(req, 400,
                            "'wait_ms' must be an integer from 0 to 2^53");
        return;
    }
    qapi_serve_read(core, req, records_after_read, &a, sizeof a);
}

/* ---- The operator's views and changes ---- */

static bool groups_list(struct mcore *core, struct rq_http_req *req, void *arg,
                        bool last_try)
{
    struct mstore_cgroup *gs;
    struct auth who;
    size_t n;
    (void)arg;
    (void)last_try;
    if (!auth_public(core, req, &who, NULL)) {
        return true;
    }
    int rv = mstore_cgroups(mcore_store(core), &gs, &n);
    if (rv != 0) {
        qapi_reply_store_error(req, rv);
        return true;
    }
    json_t *list = json_array();
    for (size_t i = 0; i < n; i++) {
        if (auth_sees(&who, gs[i].topic)) {
            json_array_append_new(
                list, json_pack("{s:s,s:s,s:I,s:I}", "group", gs[i].name,
                                "topic", gs[i].topic, "generation",
                                (json_int_t)gs[i].generation, "members",
                                (json_int_t)gs[i].n_members));
        }
    }
    free(gs);
    rq_http_reply(req, 200, json_pack("{s:o}", "groups", list));
    return true;
}

void qapi_groups_list(struct rq_http_req *req, void *data)
{
    struct auth who;
    if (auth_public(data, req, &who, qapi_groups_list)) {
        qapi_serve_read(data, req, groups_list, NULL, 0);
    }
}

/* What describe and a reset to "latest" keep while the high watermarks
 * are fetched. */
struct hw_wait {
    struct mcore *core;
    char group[MCMD_GROUP_MAX + 1];
};

static void describe_done(struct rq_http_req *req, void *arg,
                          const struct mstore_partition *parts,
                          const uint64_t *committed, const uint64_t *hw,
                          size_t n)
{
    struct hw_wait *w = arg;
    struct mcore *core = w->core;
    struct mstore_cgroup g;
    struct mstore_cgroup_member *ms = NULL;
    struct mstore_cgroup_owner *os = NULL;
    size_t n_ms = 0;
    size_t n_os = 0;
    int rv = mstore_cgroup(mcore_store(core), w->group, &g);
    if (rv == 0) {
        rv = mstore_cgroup_members(mcore_store(core), w->group, &ms, &n_ms);
    }
    if (rv == 0) {
        rv = mstore_cgroup_owners(mcore_store(core), w->group, &os, &n_os);
    }
    if (rv != 0) {
        free(ms);
        rq_http_reply_error(
            req, rv == RQ_NOTFOUND ? 404 : 500, "group %s: %s", w->group,
            rv == RQ_NOTFOUND ? "deleted meanwhile" : rq_strerror(rv));
        return;
    }
    uint64_t now = mcore_now(core);
    json_t *members = json_array();
    for (size_t i = 0; i < n_ms; i++) {
        json_t *mine = json_array();
        for (size_t k = 0; k < n_os; k++) {
            if (strcmp(os[k].member_id, ms[i].member_id) == 0) {
                json_array_append_new(mine, json_integer(os[k].partition_id));
            }
        }
        uint64_t seen =
            cgroup_last_seen(coordinator(core), w->group, ms[i].member_id);
        json_array_append_new(
            members,
            json_pack("{s:s,s:o,s:I,s:I}", "member_id", ms[i].member_id,
                      "partitions", mine, "last_heartbeat_ms_ago",
                      (json_int_t)(now > seen ? now - seen : 0),
                      "session_timeout_ms", (json_int_t)ms[i].session_ms));
    }
    free(ms);
    free(os);
    json_t *offsets = json_array();
    for (size_t i = 0; i < n; i++) {
        uint64_t lag = hw[i] > committed[i] ? hw[i] - committed[i] : 0;
        json_array_append_new(
            offsets, json_pack("{s:i,s:I,s:I,s:I}", "partition_id",
                               (int)parts[i].partition_id, "committed",
                               (json_int_t)committed[i], "high_watermark",
                               (json_int_t)hw[i], "lag", (json_int_t)lag));
    }
    rq_http_reply(req, 200,
                  json_pack("{s:s,s:s,s:I,s:o,s:o}", "group", w->group, "topic",
                            g.topic, "generation", (json_int_t)g.generation,
                            "members", members, "offsets", offsets));
}

/*
 * The group's committed offset for each of its topic's partitions (0 for
 * none) with the partitions (both malloc'd); 0 or an RQ_ code after
 * answering.
 */
static int group_committed(struct mcore *core, struct rq_http_req *req,
                           const struct mstore_cgroup *g,
                           struct mstore_partition **parts, uint64_t **c,
                           size_t *n)
{
    struct mstore_offset *offs = NULL;
    size_t n_offs = 0;
    int rv = mstore_partitions(mcore_store(core), g->topic, parts, n);
    if (rv == 0) {
        rv = mstore_cgroup_offsets(mcore_store(core), g->name, &offs, &n_offs);
    }
    *c = rv == 0 ? calloc(*n + 1, sizeof **c) : NULL;
    if (rv == 0 && *c == NULL) {
        rv = RQ_NOMEM; /* UNTESTED: ENOMEM only. */
    }
    if (rv != 0) {
        free(offs);
        if (*parts != NULL) {
            free(*parts);
            *parts = NULL;
        }
        qapi_reply_store_error(req, rv);
        return rv;
    }
    for (size_t i = 0; i < n_offs; i++) {
        if (offs[i].partition_id < *n) {
            (*c)[offs[i].partition_id] = offs[i].next_offset;
        }
    }
    free(offs);
    return 0;
}

/* Describe once this manager has applied everything committed before the
 * request came (qapi_serve_read): on the leader too, so that a leader cut
 * off from the others and not yet deposed cannot describe a state older
 * than one already described. @arg: the group name (borrowed from the
 * request). */
static bool describe_after_read(struct mcore *core, struct rq_http_req *req,
                                void *arg, bool last_try)
{
    const char *group = *(const char *const *)arg;
    struct auth who;
    struct mstore_cgroup g;
    (void)last_try;
    if (!auth_public(core, req, &who, NULL) ||
        !group_load(core, req, &who, group, NULL, &g)) {
        return true;
    }
    struct hw_wait *w = calloc(1, sizeof *w);
    struct mstore_partition *parts = NULL;
    uint64_t *committed = NULL;
    size_t n = 0;
    if (w == NULL) {
        rq_http_reply_error(req, 500, "out of memory");
        return true; /* UNTESTED: ENOMEM only. */
    }
    w->core = core;
    snprintf(w->group, sizeof w->group, "%s", group);
    if (group_committed(core, req, &g, &parts, &committed, &n) != 0) {
        free(w);
        return true;
    }
    qapi_hw_fetch(core, req, parts, committed, n, describe_done, w);
    return true;
}

void qapi_group_describe(struct rq_http_req *req, void *data)
{
    struct mcore *core = data;
    struct auth who;
    const char *group;
    if (group_route(core, req, qapi_group_describe, &who, &group)) {
        qapi_serve_read(core, req, describe_after_read, &group, sizeof group);
    }
}

/* An operator's change (offsets, delete), once proposed. */
struct group_admin {
    struct rq_http_req *req; /* First: the held request. */
    char group[MCMD_GROUP_MAX + 1];
    bool del;
};

static void on_group_admin(void *data, int status, uint64_t result)
{
    struct group_admin *op = data;
    struct rq_http_req *req = op->req;
    if (status == 0 && !MSTORE_IS_ERR(result)) {
        rq_log(RQ_INFO, "group %s: %s", op->group,
               op->del ? "deleted" : "offsets set");
    }
    if (req != NULL) {
        rq_http_on_abort(req, NULL, NULL);
        int code = MSTORE_IS_ERR(result) ? MSTORE_ERR_CODE(result) : 0;
        if (status != 0) {
            mcore_unavailable(req, "the change was not committed: %s; retry",
                              rq_strerror(status));
        } else if (code == RQ_EXISTS) {
            rq_http_reply_fail(req, 409, RQ_CODE_GROUP_ACTIVE,
                               "group %s has live members: stop them (or "
                               "wait for their sessions to expire) first",
                               op->group);
        } else if (code == RQ_NOTFOUND) {
            rq_http_reply_fail(req, 404, RQ_CODE_GROUP_NOT_FOUND, "no group %s",
                               op->group);
        } else if (code != 0) {
            rq_http_reply_error(req, 400, "the change was refused: %s",
                                rq_strerror(code));
        } else {
            rq_http_reply(req, 200, NULL);
        }
    }
    free(op);
}

static void group_admin_propose(struct mcore *core, struct rq_http_req *req,
                                const char *group, struct mcmd *c)
{
    struct group_admin *op = rq_http_calloc(req, 1, sizeof *op);
    if (op == NULL) {
        mcmd_clear(c); /* UNTESTED: ENOMEM only. */
        return;
    }
    snprintf(op->group, sizeof op->group, "%s", group);
    op->del = c->type == MCMD_GROUP_DELETE;
    qapi_propose(core, req, c, on_group_admin, op, &op->req);
}

static bool no_members(struct rq_http_req *req, const struct mstore_cgroup *g)
{
    if (g->n_members > 0) {
        rq_http_reply_fail(req, 409, RQ_CODE_GROUP_ACTIVE,
                           "group %s has %" PRIu32
                           " live members: stop them (or wait for their "
                           "sessions to expire) first",
                           g->name, g->n_members);
        return false;
    }
    return true;
}

/* The offsets of "latest": each partition's high watermark, proposed. */
static void latest_done(struct rq_http_req *req, void *arg,
                        const struct mstore_partition *parts,
                        const uint64_t *committed, const uint64_t *hw, size_t n)
{
    struct hw_wait *w = arg;
    struct mcmd c = {.type = MCMD_GROUP_OFFSETS};
    (void)committed;
    snprintf(c.u.group_offsets.group, sizeof c.u.group_offsets.group, "%s",
             w->group);
    c.u.group_offsets.offsets =
        calloc(n + 1, sizeof *c.u.group_offsets.offsets);
    if (c.u.group_offsets.offsets == NULL) {
        rq_http_reply_error(req, 500, "out of memory");
        return; /* UNTESTED: ENOMEM only. */
    }
    for (size_t i = 0; i < n; i++) {
        c.u.group_offsets.offsets[i] = (struct mcmd_offset){
            .partition_id = parts[i].partition_id,
            .offset = hw[i],
            .expected = MCMD_ANY,
        };
    }
    c.u.group_offsets.n = (uint32_t)n;
    /* @req is held by the watermark fetch until this returns: the
     * proposal holds it anew. */
    rq_http_on_abort(req, NULL, NULL);
    group_admin_propose(w->core, req, w->group, &c);
}

void qapi_group_offsets(struct rq_http_req *req, void *data)
{
    struct mcore *core = data;
    struct auth who;
    struct mstore_cgroup g;
    const char *group;
    if (!group_route(core, req, qapi_group_offsets, &who, &group)) {
        return;
    }
    json_t *to = qapi_body_value(req, "to");
    const char *word = rq_http_arg(req, "to");
    if (to == NULL && word == NULL) {
        rq_http_reply_error(req, 400,
                            "'to' is required: \"earliest\", \"latest\" or "
                            "an object of partition ids to offsets");
        return;
    }
    if (!group_load(core, req, &who, group, NULL, &g) || !no_members(req, &g)) {
        return;
    }
    struct mstore_partition *parts = NULL;
    uint64_t *committed = NULL;
    size_t n = 0;
    if (group_committed(core, req, &g, &parts, &committed, &n) != 0) {
        return;
    }
    struct mcmd c = {.type = MCMD_GROUP_OFFSETS};
    snprintf(c.u.group_offsets.group, sizeof c.u.group_offsets.group, "%s",
             group);
    if (word != NULL && strcmp(word, "latest") == 0) {
        struct hw_wait *w = calloc(1, sizeof *w);
        if (w == NULL) {
            free(parts); /* UNTESTED: ENOMEM only. */
            free(committed);
            rq_http_reply_error(req, 500, "out of memory");
            return;
        }
        w->core = core;
        snprintf(w->group, sizeof w->group, "%s", group);
        qapi_hw_fetch(core, req, parts, committed, n, latest_done, w);
        return;
    }
    c.u.group_offsets.offsets =
        calloc(n + 1, sizeof *c.u.group_offsets.offsets);
    if (c.u.group_offsets.offsets == NULL) {
        free(parts); /* UNTESTED: ENOMEM only. */
        free(committed);
        rq_http_reply_error(req, 500, "out of memory");
        return;
    }
    if (word != NULL && strcmp(word, "earliest") == 0) {
        /* Every partition from its first record: a read at 0 goes on from
         * the first record retention kept. */
        for (size_t i = 0; i < n; i++) {
            c.u.group_offsets.offsets[i] = (struct mcmd_offset){
                .partition_id = parts[i].partition_id, .expected = MCMD_ANY};
        }
        c.u.group_offsets.n = (uint32_t)n;
    } else if (json_is_object(to)) {
        const char *key;
        json_t *v;
        uint32_t k = 0;
        json_object_foreach(to, key, v)
        {
            uint64_t p;
            if (qapi_parse_u64(key, &p) != 0 || p >= n || !json_is_integer(v) ||
                json_integer_value(v) < 0 || k >= MCMD_MAX_OFFSETS) {
                free(parts);
                free(committed);
                mcmd_clear(&c);
                rq_http_reply_error(
                    req, 400,
                    "'to' maps partition ids of topic %s (0 to %zu) to "
                    "offsets, integers from 0; \"%s\" is not one",
                    g.topic, n - 1, key);
                return;
            }
            c.u.group_offsets.offsets[k++] =
                (struct mcmd_offset){.partition_id = (uint32_t)p,
                                     .offset = (uint64_t)json_integer_value(v),
                                     .expected = MCMD_ANY};
        }
        c.u.group_offsets.n = k;
    } else {
        free(parts);
        free(committed);
        mcmd_clear(&c);
        rq_http_reply_error(req, 400,
                            "'to' must be \"earliest\", \"latest\" or an "
                            "object of partition ids to offsets");
        return;
    }
    free(parts);
    free(committed);
    group_admin_propose(core, req, group, &c);
}

void qapi_group_delete(struct rq_http_req *req, void *data)
{
    struct mcore *core = data;
    struct auth who;
    struct mstore_cgroup g;
    const char *group;
    if (!group_route(core, req, qapi_group_delete, &who, &group) ||
        !group_load(core, req, &who, group, NULL, &g) || !no_members(req, &g)) {
        return;
    }
    struct mcmd c = {.type = MCMD_GROUP_DELETE};
    snprintf(c.u.group_delete.group, sizeof c.u.group_delete.group, "%s",
             group);
    group_admin_propose(core, req, group, &c);
}

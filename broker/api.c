/*
 * The broker's HTTP handlers (see api.h and broker/README.md).
 *
 * Produce. The leader checks the request, stamps every record with its own
 * clock, encodes the records once (records.h) into one partition entry and
 * proposes it; the reply comes from the apply callback with the batch's
 * first offset, so a success always means committed on a majority and
 * applied. Several requests may be in flight on one partition at once;
 * libraft writes their entries to disk together. A retry that carries a
 * (producer_id, sequence) already applied is answered from the partition's
 * deduplication table without proposing anything.
 *
 * Read. Only the group's ready leader answers, and only after a barrier
 * issued once the read arrived has been applied (replica_read): the answer
 * then holds everything acknowledged before the read, by this leader or an
 * earlier one, and nothing that the group may still replace (a replica just
 * restarted has applied only what its snapshot holds until a leader tells it
 * the commit index, and libraft 0.15 could apply an earlier term's entry that
 * a later leader overwrote, which 0.22.1 no longer does). Another replica
 * answers 421 naming the leader, or 503. A read at the end with wait_ms > 0
 * is parked on the leader and confirmed when records arrive or the wait ends;
 * the client leaving drops it. A leader still fetching the gap a snapshot
 * left answers 503 for offsets in that gap. With local=1 any open replica
 * answers from its own log at once, for comparing replicas. A confirmed
 * read answers in the binary form (shared/rq_reads.h) when the caller's
 * Accept asks for it: the head, then the log read's records as they are.
 * JSON is written from the same records by rq_reads, with no jansson tree.
 */
#include "api.h"

#include <errno.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "bmetrics.h"
#include "broker.h"
#include "partition.h"
#include "peerwatch.h"
#include "produce_body.h"
#include "records.h"
#include "replica.h"
#include "rq_codes.h"
#include "rq_config.h"
#include "rq_err.h"
#include "rq_httpsig.h"
#include "rq_log.h"
#include "rq_metrics.h"
#include "rq_names.h"
#include "rq_reads.h"
#include "rq_record.h"
#include "rq_rpc.h"
#include "rq_version.h"
#include "rq_wire.h"

#define LOG_TAG "api"

#define WHY_LEN 256
#define READ_DEFAULT_MAX 100
#define READ_MAX_RECORDS 10000
#define READ_MAX_BYTES (8u << 20) /* Of values per read (at least one). */
#define WAIT_MAX_MS 60000
#define MEMBER_TIMEOUT_MS 30000
/* How long an add waits for the new member's broker to say what it reads. */
#define ADD_PROBE_TIMEOUT_MS 3000
#define MEMBER_TIMEOUT_MAX_MS 300000
/* A batch must fit in one FETCH reply so that a peer can catch up. */
#define BATCH_MAX_BYTES (RQ_RPC_MAX_FRAME - (64u << 10))

/* ---- Replies ---- */

static void reply_unavailable(struct rq_http_req *req, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

static void reply_unavailable(struct rq_http_req *req, const char *fmt, ...)
{
    char msg[WHY_LEN];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    rq_http_set_header(req, "Retry-After", "1");
    rq_http_reply_error(req, 503, "%s", msg);
}

/* 421 naming the leader when one is known, else 503. @why prefixes. */
static void reply_not_leader(struct rq_http_req *req, struct replica *r,
                             struct broker *b, const char *why)
{
    const struct replica_member *leader = replica_leader(r);
    const struct replica_desc *d = replica_desc(r);
    if (leader == NULL) {
        reply_unavailable(req,
                          "%sgroup %" PRIu64 " (topic %s partition %" PRIu64
                          ") has no leader yet; retry shortly",
                          why, d->group_id, d->topic, d->partition_id);
        return;
    }
    char msg[WHY_LEN];
    snprintf(msg, sizeof msg,
             "%sbroker %" PRIu64
             " is not the leader of topic %s partition %" PRIu64
             "; broker %" PRIu64 " at %s is",
             why, broker_config(b)->id, d->topic, d->partition_id, leader->id,
             leader->http_addr);
    rq_http_reply(
        req, 421,
        json_pack("{s:s,s:s,s:s,s:I,s:s}", "status", "failure", "code",
                  RQ_CODE_NOT_LEADER, "message", msg, "leader_id",
                  (json_int_t)leader->id, "leader_http", leader->http_addr));
}

/* Answers 503 and returns true if the broker is shutting down. */
static bool refuse_closing(struct rq_http_req *req, struct broker *b)
{
    if (broker_closing(b)) {
        reply_unavailable(req, "the broker is shutting down");
        return true;
    }
    return false;
}

/* Strict decimal: digits only, no sign, no blanks, at most INT64_MAX. */
static int parse_uint(const char *s, uint64_t *out)
{
    return rq_parse_u64(s, INT64_MAX, out);
}

/* A query or body argument as a non-negative integer, or @def if absent. */
static int arg_uint(struct rq_http_req *req, const char *name, uint64_t def,
                    uint64_t *out)
{
    const char *s = rq_http_arg(req, name);
    if (s == NULL) {
        *out = def;
        return 0;
    }
    return parse_uint(s, out);
}

/* The group id {group_id} names; false after answering 400. */
static bool group_id_param(struct rq_http_req *req, uint64_t *gid)
{
    const char *s = rq_http_param(req, "group_id");
    if (parse_uint(s, gid) != 0 || *gid == 0) {
        rq_http_reply_error(req, 400, "group id '%s' is not a positive integer",
                            s != NULL ? s : "");
        return false;
    }
    return true;
}

/* The replica named by {group_id}, or NULL after answering 400/404. */
static struct replica *group_param(struct rq_http_req *req, struct broker *b)
{
    uint64_t gid;
    if (!group_id_param(req, &gid)) {
        return NULL;
    }
    struct replica *r = broker_find(b, gid);
    if (r == NULL) {
        rq_http_reply_error(
            req, 404, "this broker hosts no replica of group %" PRIu64, gid);
    }
    return r;
}

/* The request's JSON body (owned by @req), or NULL after answering 400. */
static json_t *json_body(struct rq_http_req *req)
{
    char why[WHY_LEN];
    json_t *body = rq_http_json(req, why, sizeof why);
    if (body == NULL) {
        rq_http_reply_error(req, 400, "%s", why);
    }
    return body;
}

/* The replica named by {group_id} on a broker that is not shutting down,
 * and with @body its JSON body (owned by @req); NULL after answering 503,
 * 400 or 404: how every request about one group starts. */
static struct replica *group_request(struct rq_http_req *req, struct broker *b,
                                     json_t **body)
{
    if (refuse_closing(req, b)) {
        return NULL;
    }
    struct replica *r = group_param(req, b);
    if (r != NULL && body != NULL && (*body = json_body(req)) == NULL) {
        return NULL;
    }
    return r;
}

/* The open replica named by {topic} and {partition}, or NULL after
 * answering 400, 404 or 503. */
static struct replica *partition_param(struct rq_http_req *req,
                                       struct broker *b)
{
    const char *topic = rq_http_param(req, "topic");
    const char *ps = rq_http_param(req, "partition");
    uint64_t p;
    if (topic == NULL || !rq_names_topic_valid(topic)) {
        rq_http_reply_error(req, 400,
                            "topic names are 1-%d characters of [A-Za-z0-9._-]",
                            REPLICA_TOPIC_MAX);
        return NULL;
    }
    if (parse_uint(ps, &p) != 0) {
        rq_http_reply_error(req, 400,
                            "partition '%s' is not a non-negative integer",
                            ps != NULL ? ps : "");
        return NULL;
    }
    struct replica *r = broker_find_partition(b, topic, p);
    if (r == NULL) {
        rq_http_reply_error(req, 404,
                            "this broker hosts no replica of topic %s "
                            "partition %" PRIu64,
                            topic, p);
        return NULL;
    }
    switch (replica_state(r)) {
        case REPLICA_OPEN:
            return r;
        case REPLICA_NEW:
            reply_unavailable(req,
                              "the replica of topic %s partition %" PRIu64
                              " is still opening",
                              topic, p);
            return NULL;
        case REPLICA_FAILED:
            rq_http_reply_error(req, 500,
                                "the replica of topic %s partition %" PRIu64
                                " failed to open; see the broker's log",
                                topic, p);
            return NULL;
        case REPLICA_CLOSING:
            reply_unavailable(
                req, "the replica of topic %s partition %" PRIu64 " is closing",
                topic, p);
            return NULL;
    }
    return NULL;
}

/* ---- Health ---- */

static void api_healthz(struct rq_http_req *req, void *data)
{
    struct broker *b = data;
    rq_http_reply(req, 200,
                  json_pack("{s:I,s:s}", "id", (json_int_t)broker_config(b)->id,
                            "version", rq_version()));
}

static void api_readyz(struct rq_http_req *req, void *data)
{
    struct broker *b = data;
    char why[WHY_LEN];
    if (refuse_closing(req, b)) {
        return;
    }
    if (!broker_ready(b, why, sizeof why)) {
        reply_unavailable(req, "%s", why);
        return;
    }
    rq_http_reply(req, 200, NULL);
}

static void api_metrics(struct rq_http_req *req, void *data)
{
    struct broker *b = data;
    struct rq_buf out;

    rq_buf_init(&out);
    if (rq_metrics_render(broker_metrics(b), &out) != 0) {
        rq_buf_close(&out); /* UNTESTED: ENOMEM only. */
        rq_http_reply_error(req, 500, "out of memory");
        return;
    }
    rq_http_reply_text(req, 200, RQ_METRICS_CONTENT_TYPE,
                       (const char *)out.base, out.len);
    rq_buf_close(&out);
}

/* ---- Internal API ---- */

/* A replica descriptor from the body; false after answering 400. */
static bool desc_body(struct rq_http_req *req, struct replica_desc *d)
{
    char why[WHY_LEN];
    json_t *body = rq_http_json(req, why, sizeof why);
    if (body == NULL || replica_desc_parse(body, d, why, sizeof why) != 0) {
        rq_http_reply_error(req, 400, "%s", why);
        return false;
    }
    return true;
}

static void api_replicas_create(struct rq_http_req *req, void *data)
{
    struct broker *b = data;
    struct replica_desc d;
    char why[WHY_LEN];
    bool existed = false;

    if (refuse_closing(req, b) || !desc_body(req, &d)) {
        return;
    }
    int rv = broker_add(b, &d, &existed, why, sizeof why);
    if (rv == RQ_SHUTDOWN) {
        reply_unavailable(req, "%s", why);
        return;
    }
    if (rv != 0) {
        rq_http_reply_error(req, rq_err_http_status(rv), "%s", why);
        return;
    }
    rq_http_reply(req, 200,
                  json_pack("{s:I,s:b}", "group_id", (json_int_t)d.group_id,
                            "created", !existed));
}

/* The voters of @r's committed configuration, as a JSON list. */
static json_t *voters_json(const struct replica *r)
{
    uint64_t ids[REPLICA_MEMBERS_MAX];
    size_t n = replica_voters(r, ids, REPLICA_MEMBERS_MAX);
    json_t *list = json_array();
    for (size_t i = 0; i < n; i++) {
        json_array_append_new(list, json_integer((json_int_t)ids[i]));
    }
    return list;
}

static void api_replicas_list(struct rq_http_req *req, void *data)
{
    struct broker *b = data;
    json_t *list = json_array();
    for (size_t i = 0; i < broker_count(b); i++) {
        struct replica *r = broker_at(b, i);
        struct replica_status st;
        replica_status(r, &st);
        json_t *o = replica_desc_json(replica_desc(r), true);
        json_object_set_new(o, "role", json_string(rq_role_name(st.node.role)));
        json_object_set_new(o, "term", json_integer((json_int_t)st.node.term));
        json_object_set_new(o, "leader_id",
                            json_integer((json_int_t)st.node.leader_id));
        json_object_set_new(o, "ready", json_boolean(st.node.ready));
        json_object_set_new(o, "quiet", json_boolean(st.node.quiet));
        json_object_set_new(o, "commit",
                            json_integer((json_int_t)st.node.commit));
        json_object_set_new(o, "applied",
                            json_integer((json_int_t)st.node.applied));
        json_object_set_new(o, "first_offset",
                            json_integer((json_int_t)st.first_offset));
        json_object_set_new(o, "next_offset",
                            json_integer((json_int_t)st.next_offset));
        json_object_set_new(o, "preferred_leader",
                            json_integer((json_int_t)replica_preferred(r)));
        json_object_set_new(o, "state", json_string(st.state));
        json_object_set_new(o, "voters", voters_json(r));
        json_object_set_new(o, "waiters", json_integer(st.waiters));
        struct rq_node_log_memory m;
        replica_log_memory(r, &m);
        json_object_set_new(o, "raft_log_entries",
                            json_integer((json_int_t)m.entries));
        json_object_set_new(o, "raft_log_bytes",
                            json_integer((json_int_t)m.bytes));
        json_object_set_new(o, "snapshot_index",
                            json_integer((json_int_t)m.snapshot_index));
        json_array_append_new(list, o);
    }
    rq_http_reply(req, 200, json_pack("{s:o}", "replicas", list));
}

static void on_removed(void *data, int status)
{
    struct rq_http_req *req = data;
    if (status != 0) {
        rq_http_reply_error(req, 500,
                            "the replica is closed but its data could not be "
                            "deleted: %s; see the broker's log",
                            rq_strerror(status));
        return;
    }
    rq_http_reply(req, 200, NULL);
}

static void api_replicas_delete(struct rq_http_req *req, void *data)
{
    struct broker *b = data;
    struct replica *r = group_request(req, b, NULL);
    if (r == NULL) {
        return;
    }
    uint64_t gid = replica_desc(r)->group_id;
    int rv = broker_remove(b, gid, on_removed, req);
    if (rv == RQ_SHUTDOWN) {
        rq_http_reply_error(req, 409,
                            "group %" PRIu64 " is being removed already", gid);
    } else if (rv != 0) {
        rq_http_reply_error(req, rq_err_http_status(rv),
                            "removing group %" PRIu64 ": %s", gid,
                            rq_strerror(rv));
    }
}

static void on_rebuilt(void *data, int status, const char *moved_to,
                       const char *why)
{
    struct rq_http_req *req = data;
    if (status == RQ_SHUTDOWN) {
        reply_unavailable(req, "%s", why);
        return;
    }
    if (status != 0) {
        rq_http_reply_error(req, rq_err_http_status(status),
                            "rebuilding the replica: %s", why);
        return;
    }
    rq_http_reply(
        req, 200,
        json_pack("{s:b,s:o}", "rebuilt", 1, "moved_to",
                  moved_to[0] != '\0' ? json_string(moved_to) : json_null()));
}

/* POST /internal/replicas/{group_id}/rebuild, with a creation's body: the
 * replica of a group that has removed this broker joins it again empty
 * (broker_rebuild). */
static void api_replicas_rebuild(struct rq_http_req *req, void *data)
{
    struct broker *b = data;
    struct replica_desc d;
    char why[WHY_LEN];
    uint64_t gid;
    bool open = false;
    bool existed = false;
    bool created = false;

    if (refuse_closing(req, b) || !group_id_param(req, &gid) ||
        !desc_body(req, &d)) {
        return;
    }
    if (d.group_id != gid) {
        rq_http_reply_error(
            req, 400, "the body names group %" PRIu64 ", the path %" PRIu64,
            d.group_id, gid);
        return;
    }
    d.bootstrap = false;
    int rv = broker_rebuild(b, &d, &open, on_rebuilt, req, why, sizeof why);
    if (rv == RQ_NOTFOUND) {
        /* Nothing here to rebuild (say a crash came between moving the
         * files aside and writing the new descriptor): a new member. */
        rv = broker_add(b, &d, &existed, why, sizeof why);
        created = rv == 0 && !existed;
        open = rv == 0;
    }
    if (rv == RQ_SHUTDOWN) {
        reply_unavailable(req, "%s", why);
    } else if (rv != 0) {
        rq_http_reply_error(req, rq_err_http_status(rv), "%s", why);
    } else if (open) {
        rq_http_reply(req, 200,
                      json_pack("{s:b,s:n}", "rebuilt", created, "moved_to"));
    }
    /* Otherwise on_rebuilt answers once the new replica is open. */
}

static void on_transferred(void *data, int status)
{
    struct rq_http_req *req = data;
    if (status == 0) {
        rq_http_reply(req, 200, NULL);
    } else if (status == RQ_TIMEOUT) {
        reply_unavailable(req,
                          "leadership did not move within an election "
                          "timeout (is the target up and caught up?)");
    } else {
        reply_unavailable(req, "leadership transfer ended: %s",
                          rq_strerror(status));
    }
}

static void api_replicas_transfer(struct rq_http_req *req, void *data)
{
    struct broker *b = data;
    uint64_t to = 0;

    json_t *body;
    struct replica *r = group_request(req, b, &body);
    if (r == NULL) {
        return;
    }
    json_t *v = json_object_get(body, "to");
    if (v != NULL) {
        if (!json_is_integer(v) || json_integer_value(v) < 0) {
            rq_http_reply_error(req, 400,
                                "'to' must be a member id, or 0 for any");
            return;
        }
        to = (uint64_t)json_integer_value(v);
    }
    if (to == broker_config(b)->id && replica_ready_leader(r)) {
        rq_http_reply(req, 200, NULL); /* Already there. */
        return;
    }
    int rv = replica_transfer(r, to, on_transferred, req);
    switch (rv) {
        case 0:
            return; /* on_transferred replies. */
        case RQ_NOTLEADER:
            reply_not_leader(req, r, b, "");
            return;
        case RQ_EXISTS:
            rq_http_reply_error(req, 409,
                                "a leadership transfer of this group is under "
                                "way or just ended; retry in a second");
            return;
        case RQ_INVALID:
            rq_http_reply_error(req, 400,
                                "broker %" PRIu64
                                " is not another member of "
                                "this group",
                                to);
            return;
        case RQ_NOTFOUND:
            rq_http_reply_error(req, 409, "the group has no other voter");
            return;
        default:
            rq_http_reply_error(req, 500, "leadership transfer: %s",
                                rq_strerror(rv));
            return;
    }
}

static void api_replicas_preferred(struct rq_http_req *req, void *data)
{
    struct broker *b = data;
    char why[WHY_LEN];

    json_t *body;
    struct replica *r = group_request(req, b, &body);
    if (r == NULL) {
        return;
    }
    json_t *v = json_object_get(body, "broker_id");
    if (!json_is_integer(v) || json_integer_value(v) <= 0) {
        rq_http_reply_error(req, 400, "'broker_id' must be a broker id");
        return;
    }
    int rv = replica_set_preferred(r, (uint64_t)json_integer_value(v), why,
                                   sizeof why);
    if (rv == RQ_SHUTDOWN) {
        reply_unavailable(req, "%s", why);
        return;
    }
    if (rv != 0) {
        rq_http_reply_error(req, 500, "%s", why);
        return;
    }
    rq_http_reply(req, 200,
                  json_pack("{s:I}", "preferred_leader",
                            (json_int_t)replica_preferred(r)));
}

/* ---- Membership ---- */

/* A membership change whose caller waits. */
struct member_change {
    struct rq_http_req *req;
    struct broker *broker;
    struct replica *replica;
    uint64_t id;
    unsigned timeout_ms;
};

static void reply_voters(struct rq_http_req *req, const struct replica *r)
{
    rq_http_reply(req, 200, json_pack("{s:o}", "voters", voters_json(r)));
}

static void on_member_changed(void *data, int status)
{
    struct member_change *mc = data;
    struct rq_http_req *req = mc->req;
    switch (status) {
        case 0:
            reply_voters(req, mc->replica);
            break;
        case RQ_TIMEOUT:
            reply_unavailable(req,
                              "the change of broker %" PRIu64
                              " is not committed after %u ms; it goes on: "
                              "ask again to learn when it is",
                              mc->id, mc->timeout_ms);
            break;
        case RQ_CONNECT:
            reply_unavailable(req,
                              "broker %" PRIu64
                              " did not catch up with the leader (is its "
                              "replica created with bootstrap false, and is "
                              "it reachable?); ask again",
                              mc->id);
            break;
        case RQ_NOTLEADER:
            reply_not_leader(req, mc->replica, mc->broker,
                             "leadership moved before the change was "
                             "committed (ask the new leader): ");
            break;
        case RQ_SHUTDOWN:
            reply_unavailable(req, "the replica is closing");
            break;
        default:
            reply_unavailable(req, "the membership change failed: %s",
                              rq_strerror(status));
            break;
    }
    free(mc);
}

static void on_member_aborted(struct rq_http_req *req, void *data)
{
    struct member_change *mc = data;
    replica_member_forget(mc->replica); /* The change goes on. */
    free(mc);
    rq_http_reply_error(req, 503, "the client went away"); /* Dropped. */
}

/* The optional 'timeout_ms' of a membership change, or 0 after 400. */
static unsigned member_timeout(struct rq_http_req *req)
{
    uint64_t ms;
    if (arg_uint(req, "timeout_ms", MEMBER_TIMEOUT_MS, &ms) != 0 || ms == 0 ||
        ms > MEMBER_TIMEOUT_MAX_MS) {
        rq_http_reply_error(req, 400,
                            "'timeout_ms' must be an integer from 1 to %d",
                            MEMBER_TIMEOUT_MAX_MS);
        return 0;
    }
    return (unsigned)ms;
}

/* Answers a membership change that did not start (@rv != 0), or that had
 * nothing to do (@done). */
static void reply_change_refused(struct rq_http_req *req, struct replica *r,
                                 struct broker *b, int rv, const char *why)
{
    switch (rv) {
        case RQ_NOTLEADER:
            reply_not_leader(req, r, b, "");
            return;
        case RQ_EXISTS:
            reply_unavailable(req,
                              "another membership change or a leadership "
                              "transfer of group %" PRIu64
                              " is under way; retry shortly",
                              replica_desc(r)->group_id);
            return;
        case RQ_INVALID:
            rq_http_reply_error(req, 409, "%s", why);
            return;
        default:
            rq_http_reply_error(req, 500, "membership change: %s (%s)",
                                rq_strerror(rv), why);
            return;
    }
}

/* Starts one membership change of @r: adds @add, or removes member @id when
 * @add is NULL. Replies now when the change does not start or has nothing to
 * do (a voter already, or not a member any more); else holds @req until
 * on_member_changed replies. */
static void member_change_start(struct rq_http_req *req, struct broker *b,
                                struct replica *r,
                                const struct replica_member *add, uint64_t id,
                                unsigned timeout)
{
    char why[WHY_LEN] = "";
    bool done;
    int rv;

    struct member_change *mc = rq_http_calloc(req, 1, sizeof *mc);
    if (mc == NULL) {
        return; /* UNTESTED: ENOMEM only. */
    }
    *mc = (struct member_change){req, b, r, id, timeout};
    if (add != NULL) {
        rv = replica_member_add(r, add, timeout, on_member_changed, mc, &done,
                                why, sizeof why);
    } else {
        rv = replica_member_remove(r, id, timeout, on_member_changed, mc, &done,
                                   why, sizeof why);
    }
    if (rv == 0 && !done) {
        rq_http_on_abort(req, on_member_aborted, mc);
        return; /* on_member_changed replies. */
    }
    free(mc);
    if (rv == 0) {
        reply_voters(req, r);
    } else {
        reply_change_refused(req, r, b, rv, why);
    }
}

/*
 * An add to a group whose log holds merged produce entries past its last
 * snapshot asks the new member's broker first whether it reads them (the
 * peer watch's ping): a broker of an earlier release would be sent them
 * while it catches up, skip them as malformed and lose their records.
 */
struct add_probe {
    struct rq_http_req *req;
    struct broker *b;
    uint64_t group_id;
    struct replica_member m;
    unsigned timeout;
};

static void on_add_probe_abort(struct rq_http_req *req, void *data)
{
    struct add_probe *pr = data;
    pr->req = NULL;
    reply_unavailable(req, "the request was abandoned");
}

static void on_add_probe(void *data, int status, const uint8_t *body,
                         size_t len)
{
    struct add_probe *pr = data;
    struct rq_http_req *req = pr->req;
    uint32_t features;

    if (req == NULL) {
        free(pr);
        return;
    }
    rq_http_on_abort(req, NULL, NULL);
    struct replica *r = broker_find(pr->b, pr->group_id);
    if (r == NULL || broker_closing(pr->b)) {
        reply_unavailable(req, "group %" PRIu64 " is closing here",
                          pr->group_id);
    } else if (!peerwatch_decode_features(status, body, len, &features)) {
        reply_unavailable(req,
                          "broker %" PRIu64
                          " at %s did not answer (%s); "
                          "retry",
                          pr->m.id, pr->m.raft_addr, rq_strerror(status));
    } else if ((features & PEERWATCH_MERGES) == 0 && replica_holds_merged(r)) {
        rq_http_reply_error(
            req, 409,
            "broker %" PRIu64
            " cannot read the merged produce entries this group's log holds "
            "(a broker of an earlier release): upgrade it, or add it once "
            "the group has taken a snapshot past them",
            pr->m.id);
    } else {
        member_change_start(req, pr->b, r, &pr->m, pr->m.id, pr->timeout);
    }
    free(pr);
}

static void api_members_add(struct rq_http_req *req, void *data)
{
    struct broker *b = data;
    struct replica_member m;
    char why[WHY_LEN] = "";

    json_t *body;
    struct replica *r = group_request(req, b, &body);
    if (r == NULL) {
        return;
    }
    if (replica_member_parse(body, &m, why, sizeof why) != 0) {
        rq_http_reply_error(req, 400, "%s", why);
        return;
    }
    unsigned timeout = member_timeout(req);
    if (timeout == 0) {
        return;
    }
    if (replica_ready_leader(r) && replica_holds_merged(r)) {
        struct add_probe *pr = rq_http_calloc(req, 1, sizeof *pr);
        if (pr == NULL) {
            return; /* UNTESTED: ENOMEM only. */
        }
        *pr = (struct add_probe){req, b, replica_desc(r)->group_id, m, timeout};
        if (rq_rpc_call(broker_rpc(b), m.raft_addr, REPLICA_RPC_PING, NULL, 0,
                        ADD_PROBE_TIMEOUT_MS, on_add_probe, pr) != 0) {
            free(pr); /* UNTESTED: shutting down or ENOMEM. */
            reply_unavailable(req, "cannot ask broker %" PRIu64 "; retry",
                              m.id);
            return;
        }
        rq_http_on_abort(req, on_add_probe_abort, pr);
        return;
    }
    member_change_start(req, b, r, &m, m.id, timeout);
}

static void api_members_remove(struct rq_http_req *req, void *data)
{
    struct broker *b = data;
    uint64_t id;

    struct replica *r = group_request(req, b, NULL);
    if (r == NULL) {
        return;
    }
    const char *s = rq_http_param(req, "id");
    if (parse_uint(s, &id) != 0 || id == 0) {
        rq_http_reply_error(req, 400,
                            "member id '%s' is not a positive integer",
                            s != NULL ? s : "");
        return;
    }
    unsigned timeout = member_timeout(req);
    if (timeout == 0) {
        return;
    }
    member_change_start(req, b, r, NULL, id, timeout);
}

/* ---- Produce ---- */

/* A produce proposed and held until its entry commits. */
struct produce_pending {
    struct rq_http_req *req;
    struct broker *broker;
    struct replica *replica;
    uint32_t count;
    size_t bytes; /* Of keys and values, for the metrics. */
};

/* What a produce request asks, whichever form its body takes. */
struct produce_args {
    bool has_producer;
    uint64_t producer_id;
    uint64_t sequence;
    uint32_t count;
    size_t bytes; /* Of keys and values. */
};

static void reply_offsets(struct rq_http_req *req, uint64_t base,
                          uint32_t count)
{
    rq_http_reply(req, 200,
                  json_pack("{s:I,s:I}", "base_offset", (json_int_t)base,
                            "count", (json_int_t)count));
}

static void reply_stale(struct rq_http_req *req)
{
    rq_http_reply_error(req, 409,
                        "this sequence is older than the producer's last "
                        "one; nothing was appended");
}

static void on_produced(void *data, int status, uint64_t result)
{
    struct produce_pending *p = data;
    switch (status) {
        case 0:
            if (result == PARTITION_STALE) {
                reply_stale(p->req);
            } else {
                struct bmetrics_replica *m = replica_metrics(p->replica);
                rq_metric_add(m->produce_records, p->count);
                rq_metric_add(m->produce_bytes, (double)p->bytes);
                reply_offsets(p->req, result, p->count);
            }
            break;
        case RQ_NOTLEADER:
            /* The replica is open: a closing node reports RQ_SHUTDOWN. */
            reply_not_leader(p->req, p->replica, p->broker,
                             "leadership changed before the records were "
                             "committed (they may still be; retry with the "
                             "same producer_id and sequence to be sure): ");
            break;
        case RQ_SHUTDOWN:
            reply_unavailable(p->req, "the replica is closing");
            break;
        default:
            reply_unavailable(p->req, "the records were not committed: %s",
                              rq_strerror(status));
            break;
    }
    free(p);
}

static int64_t wall_clock_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/*
 * The open replica a produce goes to, if this broker is its ready leader
 * and the request is not a retry already applied; NULL after answering
 * (404, 421, 503, or the retry's original offsets, or 409 when stale).
 */
static struct replica *produce_replica(struct rq_http_req *req,
                                       struct broker *b,
                                       const struct produce_args *pa)
{
    uint64_t base;
    struct replica *r = partition_param(req, b);
    if (r == NULL) {
        return NULL;
    }
    if (!replica_ready_leader(r)) {
        reply_not_leader(req, r, b, "");
        return NULL;
    }
    if (pa->has_producer) {
        int rv = partition_dedupe_lookup(replica_partition(r), pa->producer_id,
                                         pa->sequence, &base);
        if (rv == 0) {
            reply_offsets(req, base, pa->count); /* A retry, applied. */
            return NULL;
        }
        if (rv == RQ_INVALID) {
            reply_stale(req);
            return NULL;
        }
    }
    char why[WHY_LEN];
    if (broker_disk_refuses(b, r, why, sizeof why)) {
        broker_disk_refused(b);
        rq_http_reply_error(req, 507, "%s", why);
        return NULL;
    }
    return r;
}

/*
 * Allocates the partition entry of @pa for @blob_len bytes of records,
 * stamped @now, and points *blob at them; false after answering 500.
 */
static bool produce_entry(struct rq_http_req *req,
                          const struct produce_args *pa, int64_t now,
                          size_t blob_len, struct raft_buffer *entry,
                          uint8_t **blob)
{
    struct partition_append a = {
        .count = pa->count,
        .max_timestamp_ms = now,
        .producer_id = pa->has_producer ? pa->producer_id : 0,
        .sequence = pa->sequence,
        .len = blob_len,
    };
    int rv = partition_entry_alloc(&a, entry, blob);
    if (rv != 0) {
        /* UNTESTED: ENOMEM only (blob_len is at most BATCH_MAX_BYTES). */
        rq_http_reply_error(req, 500, "building the batch: %s",
                            rq_strerror(rv));
        return false;
    }
    return true;
}

/*
 * Routes a produce whose body was checked (produce_replica), allocates its
 * entry for @blob_len bytes of records stamped *now, points *blob at them
 * and counts pa->bytes; the replica, or NULL after answering.
 */
static struct replica *produce_begin(struct rq_http_req *req, struct broker *b,
                                     struct produce_args *pa, size_t blob_len,
                                     int64_t *now, struct raft_buffer *entry,
                                     uint8_t **blob)
{
    struct replica *r = produce_replica(req, b, pa);
    if (r == NULL) {
        return NULL;
    }
    *now = wall_clock_ms();
    if (!produce_entry(req, pa, *now, blob_len, entry, blob)) {
        return NULL;
    }
    pa->bytes = blob_len - (size_t)pa->count * RECORDS_HEADER;
    return r;
}

/* The limits of a produce body on broker @b, whichever its form. */
static struct produce_body_limits produce_limits(struct broker *b)
{
    return (struct produce_body_limits){
        .max_records = API_MAX_RECORDS,
        .max_value = broker_config(b)->max_message_bytes,
        .max_blob = BATCH_MAX_BYTES,
    };
}

/* Proposes @entry (filled) and answers from the apply callback, or at
 * once on failure; the entry is raft's or freed either way. */
static void produce_propose(struct rq_http_req *req, struct broker *b,
                            struct replica *r, const struct produce_args *pa,
                            struct raft_buffer *entry)
{
    struct produce_pending *p = rq_http_calloc(req, 1, sizeof *p);
    if (p == NULL) {
        raft_free(entry->base); /* UNTESTED: ENOMEM only. */
        return;
    }
    p->req = req;
    p->broker = b;
    p->replica = r;
    p->count = pa->count;
    p->bytes = pa->bytes;
    int rv = replica_produce(r, entry, on_produced, p);
    if (rv == 0) {
        return; /* on_produced replies. */
    }
    raft_free(entry->base);
    free(p);
    switch (rv) {
        case RQ_NOTLEADER:
            reply_not_leader(req, r, b, "");
            break;
        case RQ_TOOBIG:
            rq_http_reply_error(req, 413, "the batch is too large");
            break;
        case RQ_SHUTDOWN:
            reply_unavailable(req, "the replica is closing");
            break;
        default:
            rq_http_reply_error(req, 500, "proposing the batch: %s",
                                rq_strerror(rv));
            break;
    }
}

/* ---- Produce: JSON body ---- */

/* Optional non-negative integer field; RQ_INVALID if present and not. */
static int opt_uint(const json_t *o, const char *name, bool *present,
                    uint64_t *out)
{
    json_t *v = json_object_get(o, name);
    *present = v != NULL && !json_is_null(v);
    if (!*present) {
        return 0;
    }
    if (!json_is_integer(v) || json_integer_value(v) < 0) {
        return RQ_INVALID;
    }
    *out = (uint64_t)json_integer_value(v);
    return 0;
}

/*
 * The producer fields of a produce, each absent or present (@has_*) and
 * parsed (@*_rv 0) or not, into @pa: true, or false once 400 answers the
 * first fault.
 */
static bool producer_fields(struct rq_http_req *req, struct produce_args *pa,
                            int producer_rv, bool has_sequence, int sequence_rv)
{
    if (producer_rv != 0 || (pa->has_producer && pa->producer_id == 0)) {
        rq_http_reply_error(req, 400,
                            "'producer_id' must be a positive integer");
        return false;
    }
    if (sequence_rv != 0) {
        rq_http_reply_error(req, 400,
                            "'sequence' must be a non-negative integer");
        return false;
    }
    if (pa->has_producer != has_sequence) {
        rq_http_reply_error(req, 400,
                            "'producer_id' and 'sequence' go together");
        return false;
    }
    return true;
}

/*
 * The records of a produce, in one of the two bodies: @records (JSON's
 * "records", maybe NULL) or, when @binary, the @len bytes at @body
 * (produce_body.h).
 */
struct produce_records {
    bool binary;
    const json_t *records;
    const uint8_t *body;
    size_t len;
};

/* Checks the records, then (on the leader) makes their entry and proposes
 * it; every failure is answered. */
static void produce_run(struct rq_http_req *req, struct broker *b,
                        struct produce_args *pa,
                        const struct produce_records *in)
{
    char why[WHY_LEN];
    size_t blob_len;
    struct raft_buffer entry;
    uint8_t *blob;
    int64_t now;
    struct produce_body_limits lim = produce_limits(b);

    /* The whole request is checked before where it goes is decided: an
     * invalid body is 400 on every replica, never a 421 that depends on
     * who leads at the moment (authenticate, validate, then route). */
    int rv = in->binary
                 ? produce_body_check(in->body, in->len, &lim, &pa->count,
                                      &blob_len, why, sizeof why)
                 : produce_body_json_check(in->records, &lim, &pa->count,
                                           &blob_len, why, sizeof why);
    if (rv != 0) {
        rq_http_reply_error(req, rq_err_http_status(rv), "%s", why);
        return;
    }
    struct replica *r =
        produce_begin(req, b, pa, blob_len, &now, &entry, &blob);
    if (r == NULL) {
        return;
    }
    if (in->binary) {
        produce_body_write(in->body, in->len, now, blob);
    } else {
        produce_body_json_write(in->records, now, blob);
    }
    produce_propose(req, b, r, pa, &entry);
}

static void produce_json(struct rq_http_req *req, struct broker *b)
{
    struct produce_args pa = {0};
    bool has_sequence;

    json_t *body = json_body(req);
    if (body == NULL) {
        return;
    }
    int producer_rv =
        opt_uint(body, "producer_id", &pa.has_producer, &pa.producer_id);
    int sequence_rv = opt_uint(body, "sequence", &has_sequence, &pa.sequence);
    if (!producer_fields(req, &pa, producer_rv, has_sequence, sequence_rv)) {
        return;
    }
    struct produce_records in = {false, json_object_get(body, "records"), NULL,
                                 0};
    produce_run(req, b, &pa, &in);
}

/* ---- Produce: binary body (produce_body.h) ---- */

static void produce_binary(struct rq_http_req *req, struct broker *b)
{
    struct produce_args pa = {0};
    struct produce_records in = {true, NULL, NULL, 0};

    const char *ps = rq_http_query(req, "producer_id");
    const char *ss = rq_http_query(req, "sequence");
    pa.has_producer = ps != NULL;
    int producer_rv = ps != NULL ? parse_uint(ps, &pa.producer_id) : 0;
    int sequence_rv = ss != NULL ? parse_uint(ss, &pa.sequence) : 0;
    if (!producer_fields(req, &pa, producer_rv, ss != NULL, sequence_rv)) {
        return;
    }
    in.body = rq_http_body(req, &in.len);
    produce_run(req, b, &pa, &in);
}

static void api_records_produce(struct rq_http_req *req, void *data)
{
    struct broker *b = data;
    if (refuse_closing(req, b)) {
        return;
    }
    if (rq_record_body_is_binary(rq_http_header(req, "Content-Type"))) {
        produce_binary(req, b);
    } else {
        produce_json(req, b);
    }
}

/* ---- Read ---- */

struct read {
    struct rq_http_req *req;
    struct broker *broker;
    struct replica *replica;
    struct replica_waiter *waiter;
    uint64_t offset;
    uint32_t max;
    bool binary; /* The client accepts the binary form. */
};

/*
 * Answers a read from what the partition holds now, below @end (maybe
 * nothing). @leader says whether this is the confirmed leader, whose
 * answer is final: an empty one means nothing was acknowledged there.
 * @binary: the binary form (shared/rq_reads.h), the log read's records
 * blob as it is after a head, else JSON written from the same blob.
 */
static void reply_records(struct rq_http_req *req, struct replica *r,
                          uint64_t offset, uint32_t max, uint64_t end,
                          bool leader, bool binary)
{
    struct partition *p = replica_partition(r);
    struct replica_status st;
    struct rq_buf scratch;
    struct rq_buf out;
    uint32_t n = 0;
    size_t blob_len = 0;
    int rv = 0;

    rq_buf_init(&scratch);
    rq_buf_init(&out);
    if (offset < partition_local_next(p) && offset < end) {
        struct record *recs = calloc(max, sizeof *recs);
        rv = recs == NULL ? RQ_NOMEM
                          : partition_read(p, offset, max, READ_MAX_BYTES,
                                           &scratch, recs, NULL, &n);
        /* Offsets are consecutive from @offset. */
        if (n > end - offset) {
            n = (uint32_t)(end - offset);
        }
        size_t bytes = 0;
        for (uint32_t i = 0; i < n; i++) {
            bytes += recs[i].key_len + recs[i].value_len;
        }
        if (n > 0) {
            blob_len = (size_t)(recs[n - 1].value + recs[n - 1].value_len -
                                scratch.base);
        }
        struct bmetrics_replica *m = replica_metrics(r);
        rq_metric_add(m->read_records, n);
        rq_metric_add(m->read_bytes, (double)bytes);
        free(recs);
        if (rv != 0 && n == 0) {
            goto fail;
        }
    }
    struct rq_reads_head h = {n, offset + n, partition_next_offset(p)};
    if (binary) {
        /* The head, then the log read's buffer itself, which the reply
         * takes. */
        uint8_t head[RQ_READS_HEAD];
        rq_reads_head_put_at(head, &h);
        rq_http_reply_parts(req, 200, RQ_RECORD_BODY_TYPE, head, sizeof head,
                            scratch.base, blob_len);
        return;
    }
    replica_status(r, &st);
    rv = rq_reads_json_put(&out, &h, scratch.base, blob_len);
    if (rv != 0) {
        /* Values arrive as checked text, so this means damage. */
        rq_log(RQ_ERROR,
               "group %" PRIu64 ": records from offset %" PRIu64
               " are not text",
               replica_desc(r)->group_id, offset);
        goto fail;
    }
    char tail[96];
    int k =
        snprintf(tail, sizeof tail, ",\"leader\":%s,\"leader_id\":%" PRIu64 "}",
                 leader ? "true" : "false", st.node.leader_id);
    rq_buf_put_bytes(&out, tail, (size_t)k);
    rq_buf_close(&scratch);
    if (out.err != 0) {
        rq_buf_close(&out); /* UNTESTED: ENOMEM only. */
        rq_http_reply_error(req, 500, "out of memory");
        return;
    }
    /* The buffer goes to the reply, which frees it. */
    rq_http_reply_owned(req, 200, "application/json", out.base, out.len);
    return;

fail:
    rq_buf_close(&scratch);
    rq_buf_close(&out);
    rq_http_reply_error(req, 500,
                        "reading offset %" PRIu64
                        ": %s; see the "
                        "broker's log",
                        offset, rq_strerror(rv));
}

/* Answers 404 and returns true if retention removed @offset. */
static bool refuse_retained(struct rq_http_req *req, struct replica *r,
                            uint64_t offset)
{
    struct partition *p = replica_partition(r);
    uint64_t first = partition_first_offset(p);
    if (offset >= first) {
        return false;
    }
    rq_http_reply(
        req, 404,
        json_pack("{s:s,s:s,s:s,s:I,s:I}", "status", "failure", "code",
                  RQ_CODE_OFFSET_NOT_HELD, "message",
                  "that offset is no longer held (retention); read from "
                  "first_offset",
                  "first_offset", (json_int_t)first, "high_watermark",
                  (json_int_t)partition_next_offset(p)));
    return true;
}

/* Answers a confirmed read (replica_read): the records from @offset up to
 * the high watermark, or 503 while @offset lies in a gap this replica is
 * still fetching (restored from a snapshot past its own log): an empty
 * answer there would say that nothing was acknowledged. */
static void reply_confirmed(struct rq_http_req *req, struct replica *r,
                            uint64_t offset, uint32_t max, bool binary)
{
    struct partition *p = replica_partition(r);
    uint64_t from;
    uint64_t to;
    switch (partition_read_check(p, offset)) {
        case PARTITION_READ_RETAINED:
            refuse_retained(req, r, offset);
            return;
        case PARTITION_READ_FETCHING:
            (void)partition_fetch_range(p, &from, &to);
            reply_unavailable(req,
                              "this leader is still fetching offsets %" PRIu64
                              " to %" PRIu64
                              " from its peers (it was restored from a "
                              "snapshot); retry shortly",
                              from, to);
            return;
        case PARTITION_READ_RECORDS:
            break;
    }
    reply_records(req, r, offset, max, partition_next_offset(p), true, binary);
}

static void on_read_confirmed(void *data, int status)
{
    struct read *rd = data;
    rq_http_on_abort(rd->req, NULL, NULL);
    if (status == 0) {
        reply_confirmed(rd->req, rd->replica, rd->offset, rd->max, rd->binary);
    } else if (status == RQ_SHUTDOWN) {
        reply_unavailable(rd->req, "the replica is closing");
    } else if (status == RQ_NOTLEADER) {
        reply_not_leader(rd->req, rd->replica, rd->broker,
                         "leadership moved before the read was confirmed: ");
    } else {
        reply_unavailable(rd->req, "the read could not be confirmed (%s)",
                          rq_strerror(status));
    }
    free(rd);
}

static void on_read_aborted(struct rq_http_req *req, void *data)
{
    struct read *rd = data;
    replica_wait_cancel(rd->waiter);
    free(rd);
    rq_http_reply_error(req, 503, "the client went away"); /* Dropped. */
}

static void api_records_read(struct rq_http_req *req, void *data)
{
    struct broker *b = data;
    uint64_t offset;
    uint64_t max;
    uint64_t wait_ms;
    uint64_t local;

    if (refuse_closing(req, b)) {
        return;
    }
    if (arg_uint(req, "offset", 0, &offset) != 0) {
        rq_http_reply_error(req, 400,
                            "'offset' must be a non-negative integer");
        return;
    }
    if (arg_uint(req, "max", READ_DEFAULT_MAX, &max) != 0 || max == 0 ||
        max > READ_MAX_RECORDS) {
        rq_http_reply_error(req, 400, "'max' must be an integer from 1 to %d",
                            READ_MAX_RECORDS);
        return;
    }
    if (arg_uint(req, "wait_ms", 0, &wait_ms) != 0) {
        rq_http_reply_error(req, 400,
                            "'wait_ms' must be a non-negative integer");
        return;
    }
    if (arg_uint(req, "local", 0, &local) != 0 || local > 1) {
        rq_http_reply_error(req, 400, "'local' must be 0 or 1");
        return;
    }
    if (wait_ms > WAIT_MAX_MS) {
        wait_ms = WAIT_MAX_MS;
    }
    struct replica *r = partition_param(req, b);
    if (r == NULL) {
        return;
    }
    if (local != 0) {
        /* This replica's own log as it stands, whatever its role: for
         * comparing replicas, never for clients (it may be behind its
         * group, or hold what the group has not confirmed yet). */
        if (!refuse_retained(req, r, offset)) {
            reply_records(req, r, offset, (uint32_t)max, UINT64_MAX,
                          replica_ready_leader(r), false);
        }
        return;
    }
    struct read *rd = rq_http_calloc(req, 1, sizeof *rd);
    if (rd == NULL) {
        return; /* UNTESTED: ENOMEM only. */
    }
    rd->req = req;
    rd->broker = b;
    rd->replica = r;
    rd->offset = offset;
    rd->max = (uint32_t)max;
    rd->binary = rq_reads_accepts_binary(rq_http_header(req, "Accept"));
    int rv = replica_read(r, offset, (unsigned)wait_ms, on_read_confirmed, rd,
                          &rd->waiter);
    if (rv != 0) {
        free(rd);
        if (rv == RQ_NOTLEADER) {
            reply_not_leader(req, r, b, "reads are served by the leader: ");
        } else {
            rq_http_reply_error(req, 500, "out of memory"); /* UNTESTED */
        }
        return;
    }
    rq_http_on_abort(req, on_read_aborted, rd);
}

/* ---- Routes ---- */

/* Only managers call a broker (broker/README.md): every route but health,
 * readiness and metrics needs a manager-to-broker signature, checked by
 * rq_http before the handler sees anything. */
#define M2B RQ_HTTPSIG_M2B

const struct rq_http_route api_route_table[] = {
    {"GET", "/healthz", api_healthz, 0},
    {"GET", "/readyz", api_readyz, 0},
    {"GET", "/metrics", api_metrics, 0},
    {"POST", "/internal/replicas", api_replicas_create, M2B},
    {"GET", "/internal/replicas", api_replicas_list, M2B},
    {"DELETE", "/internal/replicas/{group_id}", api_replicas_delete, M2B},
    {"POST", "/internal/replicas/{group_id}/rebuild", api_replicas_rebuild,
     M2B},
    {"POST", "/internal/replicas/{group_id}/transfer", api_replicas_transfer,
     M2B},
    {"POST", "/internal/replicas/{group_id}/preferred", api_replicas_preferred,
     M2B},
    {"POST", "/internal/replicas/{group_id}/members", api_members_add, M2B},
    {"DELETE", "/internal/replicas/{group_id}/members/{id}", api_members_remove,
     M2B},
    {"POST", "/v1/topics/{topic}/partitions/{partition}/records",
     api_records_produce, M2B},
    {"GET", "/v1/topics/{topic}/partitions/{partition}/records",
     api_records_read, M2B},
};

const size_t api_route_count =
    sizeof api_route_table / sizeof api_route_table[0];

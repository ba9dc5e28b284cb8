/*
 * What the queue API's handler files share (see qapi.h): its state, the
 * parsing of arguments, shared answers and admission.
 */
#include "qapi.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "rq_names.h"
#include "rq_codes.h"
#include "rq_config.h"
#include "rq_err.h"
#include "rq_log.h"

#define LOG_TAG "qapi"

/* One manager runs in a process: its queue API's state is this one. */
static struct qapi_state state;

int qapi_init(struct mcore *core)
{
    (void)core;
    rq_idmap_init(&state.queues);
    rq_idmap_init(&state.rr);
    state.batch_rr = 0;
    readahead_init(&state.ahead);
    return 0;
}

void qapi_close(struct mcore *core)
{
    (void)core;
    /* Every request has ended with the loop; queues are empty. */
    rq_idmap_close(&state.queues);
    rq_idmap_close(&state.rr);
    readahead_close(&state.ahead);
}

struct qapi_state *qapi_state(void)
{
    return &state;
}

/* ---- Arguments ---- */

int qapi_parse_u64(const char *s, uint64_t *out)
{
    return rq_parse_u64(s, UINT64_C(1) << 53, out);
}

int qapi_arg_u64(struct rq_http_req *req, const char *name, bool *present,
                 uint64_t *out)
{
    const char *s = rq_http_arg(req, name);
    *present = s != NULL;
    if (s == NULL) {
        json_t *body = rq_http_json(req, NULL, 0);
        json_t *v = body != NULL ? json_object_get(body, name) : NULL;
        if (v != NULL && !json_is_null(v)) {
            *present = true;
            return RQ_INVALID; /* A boolean, real, list or object. */
        }
        return 0;
    }
    return qapi_parse_u64(s, out);
}

bool qapi_body_ok(struct rq_http_req *req)
{
    char why[QAPI_WHY];
    if (rq_http_json(req, why, sizeof why) == NULL) {
        rq_http_reply_error(req, 400, "%s", why);
        return false;
    }
    return true;
}

json_t *qapi_body_value(struct rq_http_req *req, const char *name)
{
    if (rq_http_query(req, name) != NULL) {
        return NULL;
    }
    json_t *body = rq_http_json(req, NULL, 0);
    json_t *v = body != NULL ? json_object_get(body, name) : NULL;
    return json_is_null(v) ? NULL : v;
}

/* A name must be a string: a number where a topic belongs is a mistake,
 * not a name. */
const char *qapi_topic_arg(struct rq_http_req *req, const char *name)
{
    json_t *v = qapi_body_value(req, name);
    if (v != NULL && !json_is_string(v)) {
        rq_http_reply_error(req, 400, "'%s' must be a string (a topic name)",
                            name);
        return NULL;
    }
    const char *t = rq_http_arg(req, name);
    if (t == NULL) {
        rq_http_reply_error(req, 400, "'%s' is required", name);
        return NULL;
    }
    if (!rq_names_topic_valid(t)) {
        rq_http_reply_error(req, 400,
                            "'%s' must be 1-%d characters of [A-Za-z0-9._-], "
                            "and not '.' or '..'",
                            name, MCMD_NAME_MAX);
        return NULL;
    }
    return t;
}

const char *qapi_topic_param(struct rq_http_req *req)
{
    const char *topic = rq_http_param(req, "topic");
    if (topic == NULL || !rq_names_topic_valid(topic)) {
        rq_http_reply_error(req, 400,
                            "topic names are 1-%d characters of "
                            "[A-Za-z0-9._-], not '.' or '..'",
                            MCMD_NAME_MAX);
        return NULL;
    }
    return topic;
}

bool qapi_consumer_param(struct rq_http_req *req, uint64_t *id)
{
    if (qapi_parse_u64(rq_http_param(req, "consumer"), id) != 0) {
        rq_http_reply_error(req, 400, "the consumer id must be an integer");
        return false;
    }
    return true;
}

bool qapi_id_arg(struct rq_http_req *req, const char *name, uint64_t *out)
{
    bool present;
    if (qapi_arg_u64(req, name, &present, out) != 0 || !present) {
        rq_http_reply_error(req, 400, "'%s' must be given as an integer", name);
        return false;
    }
    return true;
}

bool qapi_partition_arg(struct rq_http_req *req, uint32_t *p)
{
    bool present;
    uint64_t v;
    const char *name = "partition_id";
    int rv = qapi_arg_u64(req, name, &present, &v);
    if (rv == 0 && !present) {
        name = "partition";
        rv = qapi_arg_u64(req, name, &present, &v);
    }
    if (rv != 0 || (present && v >= MCMD_MAX_PARTITIONS)) {
        rq_http_reply_error(req, 400, "'%s' must be an integer from 0 to %d",
                            name, MCMD_MAX_PARTITIONS - 1);
        return false;
    }
    *p = present ? (uint32_t)v : MCMD_NO_PARTITION;
    return true;
}

/* ---- Answers ---- */

void qapi_reply_store_error(struct rq_http_req *req, int rv)
{
    rq_http_reply_error(req, 500,
                        "reading the metadata store failed: %s; see the "
                        "manager's log",
                        rq_strerror(rv));
}

bool qapi_reply_topic_lookup(struct rq_http_req *req, int rv, const char *topic)
{
    if (rv == RQ_NOTFOUND) {
        rq_http_reply_fail(req, 404, RQ_CODE_TOPIC_NOT_FOUND, "no topic '%s'",
                           topic);
    } else if (rv != 0) {
        qapi_reply_store_error(req, rv);
    }
    return rv != 0;
}

void qapi_reply_partition_unknown(struct rq_http_req *req, const char *topic,
                                  uint32_t p, size_t n)
{
    rq_http_reply_fail(req, 404, RQ_CODE_PARTITION_NOT_FOUND,
                       "topic '%s' has no partition %u (it has %zu, "
                       "numbered from 0)",
                       topic, p, n);
}

/* ---- Proposals ---- */

/* Answers a proposal that could not start. */
static void reply_not_proposed(struct rq_http_req *req, int rv)
{
    if (rv == RQ_NOTLEADER || rv == RQ_SHUTDOWN || rv == RQ_NOMEM) {
        mcore_unavailable(req, "this manager cannot commit now (%s); retry",
                          rq_strerror(rv));
    } else {
        rq_http_reply_error(req, 400, "the request was refused: %s",
                            rq_strerror(rv));
    }
}

void qapi_propose(struct mcore *core, struct rq_http_req *req, struct mcmd *c,
                  rq_node_done_cb cb, void *op, struct rq_http_req **slot)
{
    /* A client that gave up while a network partition held its request
     * back (a follower whose own client left, and so canceled its
     * forward) may have its close arrive with the request: then nothing
     * is proposed. The client was told the outcome is unknown and has
     * likely sent the request again; an offset commit carried out now
     * would set the offsets back under the retry's. */
    if (rq_http_client_gone(req)) {
        mcmd_clear(c);
        free(op);
        rq_log(RQ_INFO,
               "%s %s: the client left before it was proposed; not carried "
               "out",
               rq_http_method(req), rq_http_path(req));
        mcore_unavailable(req, "the client went away; not carried out");
        return;
    }
    int rv = mcore_propose(core, c, cb, op);
    mcmd_clear(c);
    if (rv != 0) {
        free(op);
        reply_not_proposed(req, rv);
        return;
    }
    mcore_hold(req, slot);
    /* The command commits whether or not its client stays to hear it, so
     * its socket need not be watched meanwhile (rq_http_unwatched: two
     * epoll_ctl and a poll handle fewer a write). */
    rq_http_unwatched(req);
}

/* ---- Admission and lookups ---- */

bool qapi_admit(struct mcore *core, struct rq_http_req *req,
                const struct auth *who, enum grant_action action,
                const char *topic, bool at_leader)
{
    if (!auth_allow(req, who, action, topic)) {
        return false;
    }
    return !at_leader || !mcore_forward(core, req);
}

int qapi_client_for_topic(struct mcore *core, struct rq_http_req *req,
                          bool producer, uint64_t id, const char *topic,
                          struct mstore_client *out)
{
    int rv = producer ? mstore_producer(mcore_store(core), id, out)
                      : mstore_consumer(mcore_store(core), id, out);
    return qapi_client_check(req, producer, id, topic, rv, out);
}

/* The check of qapi_client_for_topic() on a lookup already made (@rv, @c,
 * for a caller that keeps what it looked up). */
int qapi_client_check(struct rq_http_req *req, bool producer, uint64_t id,
                      const char *topic, int rv,
                      const struct mstore_client *out)
{
    const char *what = producer ? "producer" : "consumer";
    if (rv == RQ_NOTFOUND) {
        rq_http_reply_fail(
            req, 404,
            producer ? RQ_CODE_PRODUCER_NOT_FOUND : RQ_CODE_CONSUMER_NOT_FOUND,
            "no %s %" PRIu64 "; register first", what, id);
        return rv;
    }
    if (rv != 0) {
        qapi_reply_store_error(req, rv);
        return rv;
    }
    if (strcmp(out->topic, topic) != 0) {
        rq_http_reply_fail(req, 400, RQ_CODE_WRONG_TOPIC,
                           "%s %" PRIu64
                           " is registered for topic '%s', not '%s'",
                           what, id, out->topic, topic);
        return RQ_INVALID;
    }
    return 0;
}

const char *qapi_consumer_args(struct mcore *core, struct rq_http_req *req,
                               uint64_t *id, uint32_t *partition,
                               struct mstore_client *cc, rq_http_handler again)
{
    struct auth who;
    if (!auth_public(core, req, &who, again) || !qapi_body_ok(req)) {
        return NULL;
    }
    const char *topic = qapi_topic_arg(req, "topic");
    if (topic == NULL || !qapi_id_arg(req, "consumer_id", id) ||
        !qapi_partition_arg(req, partition) ||
        !qapi_admit(core, req, &who, GRANT_TO_CONSUME, topic, QAPI_AT_LEADER) ||
        qapi_client_for_topic(core, req, false, *id, topic, cc) != 0) {
        return NULL;
    }
    return topic;
}

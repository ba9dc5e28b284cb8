/*
 * The queue API's handlers (see qapi.h): API.md sections 1 and 2.
 *
 * Each asynchronous request is a small struct whose first member is the
 * held request (mcore_hold): when the client goes away, or the server
 * closes, the slot becomes NULL and the steps still running finish their
 * work without answering.
 *
 * Errors follow API.md: 400 bad input or a client used with another
 * topic, 404 unknown topic, producer, consumer or partition, 409 a topic
 * that exists, 413 a message over --max-message-bytes, 503 with
 * Retry-After when no leader (manager or broker) can serve the request;
 * with --auth tokens, 401 without a valid token and 403 without the grant.
 *
 * Every handler checks in the order auth.h draws: auth_public first (401
 * on any manager, before anything is read), then its own parsing (400 on
 * any manager), then admit() (403, then forward to the leader or 503).
 * The grant each route needs:
 *
 *   POST /topics, POST /producer/register,
 *   POST /producer/produce, POST /v1/topics/{t}/records   produce:T
 *   POST /consumer/register, GET /consumer/consume,
 *   GET /size, GET /v1/topics/{t}/partitions/{p}/records   consume:T
 *   GET /topics/partitions                                 produce:T or
 *                                                          consume:T
 *   POST and GET /v1/consumers/{id}/offsets                consume on the
 *                                                          consumer's topic
 *   GET /topics                                            any token; lists
 *                                                          the topics it has
 *                                                          a grant on
 *
 * (admin covers everything). GET /topics answers every valid token but
 * lists only what the token may use: topic names say whose data a cluster
 * holds, and a client has no use for names it may not touch.
 */
#include "qapi.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "auth.h"
#include "bclient.h"
#include "mcore.h"
#include "mmetrics.h"
#include "mstore.h"
#include "placement.h"
#include "policy.h"
#include "reconcile.h"
#include "routing.h"
#include "rq_config.h"
#include "rq_err.h"
#include "rq_idmap.h"
#include "rq_list.h"
#include "rq_log.h"

#define LOG_TAG "qapi"

#define DEFAULT_PARTITIONS 3
#define MAX_RECORDS 10000
#define READ_DEFAULT_MAX 100
#define READ_MAX 10000
#define WAIT_MAX_MS 60000
#define CAS_RETRIES 5
#define WHY_LEN MCORE_WHY

/* Per-consumer queues of consume requests, and per-producer round-robin
 * positions. */
struct consumers {
    struct rq_idmap queues; /* consumer id -> struct cqueue */
    struct rq_idmap rr;     /* producer id -> position + 1 (as a pointer) */
    uint64_t batch_rr;      /* Batch records with neither key nor partition. */
};

struct cqueue {
    uint64_t consumer_id;
    struct rq_list ops; /* struct consume; the head runs. */
    bool pumping;
};

/* Per-consumer serialization (qapi_init): one manager per process. */
static struct consumers *consumers;

int qapi_init(struct mcore *m)
{
    (void)m;
    struct consumers *c = calloc(1, sizeof *c);
    if (c == NULL) {
        return RQ_NOMEM; /* UNTESTED: ENOMEM only. */
    }
    rq_idmap_init(&c->queues);
    rq_idmap_init(&c->rr);
    consumers = c;
    return 0;
}

/* ---- Input ---- */

/* Strict decimal: digits only, at most 2^53 (JSON-safe integers). */
static int parse_u64(const char *s, uint64_t *out)
{
    return rq_parse_u64(s, UINT64_C(1) << 53, out);
}

/* An optional integer argument (query string, else JSON body). 0 with
 * *present false when absent; RQ_INVALID when present and not a
 * non-negative integer (the caller answers 400 naming it). */
static int arg_u64(struct rq_http_req *req, const char *name, bool *present,
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
    return parse_u64(s, out);
}

/* The body must be a JSON object when there is one: answers 400 and
 * returns false otherwise. */
static bool body_ok(struct rq_http_req *req)
{
    char why[WHY_LEN];
    if (rq_http_json(req, why, sizeof why) == NULL) {
        rq_http_reply_error(req, 400, "%s", why);
        return false;
    }
    return true;
}

/* The JSON body's @name, unless the query string has it; NULL if absent
 * (or null). */
static json_t *body_value(struct rq_http_req *req, const char *name)
{
    if (rq_http_query(req, name) != NULL) {
        return NULL;
    }
    json_t *body = rq_http_json(req, NULL, 0);
    json_t *v = body != NULL ? json_object_get(body, name) : NULL;
    return json_is_null(v) ? NULL : v;
}

/* The topic argument, checked; NULL after answering 400. A name must be a
 * string: a number where a topic belongs is a mistake, not a name. */
static const char *topic_arg(struct rq_http_req *req, const char *name)
{
    json_t *v = body_value(req, name);
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
    if (!mcmd_topic_valid(t)) {
        rq_http_reply_error(req, 400,
                            "'%s' must be 1-%d characters of [A-Za-z0-9._-], "
                            "and not '.' or '..'",
                            name, MCMD_NAME_MAX);
        return NULL;
    }
    return t;
}

/* A required id argument; false after answering 400. */
static bool id_arg(struct rq_http_req *req, const char *name, uint64_t *out)
{
    bool present;
    if (arg_u64(req, name, &present, out) != 0 || !present) {
        rq_http_reply_error(req, 400, "'%s' must be given as an integer", name);
        return false;
    }
    return true;
}

/* The optional partition argument (partition_id, also partition): false
 * after answering 400. *p is MCMD_NO_PARTITION when absent. */
static bool partition_arg(struct rq_http_req *req, uint32_t *p)
{
    bool present;
    uint64_t v;
    const char *name = "partition_id";
    int rv = arg_u64(req, name, &present, &v);
    if (rv == 0 && !present) {
        name = "partition";
        rv = arg_u64(req, name, &present, &v);
    }
    if (rv != 0 || (present && v >= MCMD_MAX_PARTITIONS)) {
        rq_http_reply_error(req, 400, "'%s' must be an integer from 0 to %d",
                            name, MCMD_MAX_PARTITIONS - 1);
        return false;
    }
    *p = present ? (uint32_t)v : MCMD_NO_PARTITION;
    return true;
}

/* Answers the failure of a store query. */
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
        rq_http_reply_error(req, 404, "no topic '%s'", topic);
    } else if (rv != 0) {
        qapi_reply_store_error(req, rv);
    }
    return rv != 0;
}

/*
 * Steps 3 and 4 of every handler (auth.h): @who may do @action on @topic
 * (else 403), and a request the leader must serve (@at_leader) is
 * forwarded to it (or answered 503). true when this manager serves the
 * request now; false once it is answered or forwarded.
 */
static bool admit(struct mcore *m, struct rq_http_req *req,
                  const struct auth *who, enum grant_action action,
                  const char *topic, bool at_leader)
{
    if (!auth_allow(req, who, action, topic)) {
        return false;
    }
    return !at_leader || !mcore_forward(m, req);
}

#define AT_LEADER true
#define ANY_MANAGER false

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

static void reply_partition_unknown(struct rq_http_req *req, const char *topic,
                                    uint32_t p, size_t n)
{
    rq_http_reply_error(req, 404,
                        "topic '%s' has no partition %u (it has %zu, "
                        "numbered from 0)",
                        topic, p, n);
}

/* ---- Topics ---- */

/* Places @n new partitions over the ALIVE brokers. 0, RQ_NOBROKERS with
 * @why, or RQ_IO / RQ_NOMEM. *out is malloc'd. */
static int place(struct mcore *m, uint32_t n, uint32_t (**out)[MCMD_RF],
                 char *why, size_t whyn)
{
    struct mstore_broker *list;
    size_t nb;
    int rv = mstore_brokers(mcore_store(m), &list, &nb);
    if (rv != 0) {
        snprintf(why, whyn, "reading the brokers: %s", rq_strerror(rv));
        return rv;
    }
    struct placement_broker *pb = calloc(nb + 1, sizeof *pb);
    uint32_t(*r)[MCMD_RF] = calloc(n, sizeof *r);
    size_t alive = 0;
    if (pb == NULL || r == NULL) {
        free(list); /* UNTESTED: ENOMEM only. */
        free(pb);
        free(r);
        snprintf(why, whyn, "out of memory");
        return RQ_NOMEM;
    }
    for (size_t i = 0; i < nb; i++) {
        pb[i] = (struct placement_broker){
            .id = list[i].id,
            .state = list[i].state,
            .n_replicas = list[i].n_replicas,
            .n_preferred = list[i].n_preferred,
        };
        alive += list[i].state == MBROKER_ALIVE;
    }
    free(list);
    rv = placement_assign(pb, nb, n, r);
    free(pb);
    if (rv != 0) {
        free(r);
        if (rv == RQ_NOBROKERS) {
            snprintf(why, whyn,
                     "a topic needs %d live brokers for its replicas and %zu "
                     "%s live now; start more brokers or wait for them to "
                     "register",
                     MCMD_RF, alive, alive == 1 ? "is" : "are");
        } else {
            snprintf(why, whyn, "placing the partitions: %s", rq_strerror(rv));
        }
        return rv;
    }
    *out = r;
    return 0;
}

struct create {
    struct rq_http_req *req;
    struct mcore *m;
    char topic[MCMD_NAME_MAX + 1];
    uint32_t n_partitions;
    bool then_register; /* POST /producer/register of an absent topic. */
    uint32_t partition; /* The producer's, when registering. */
};

static void register_client(struct mcore *m, struct rq_http_req *req,
                            enum mcmd_type type, const char *topic,
                            uint32_t partition);

static void on_topic_created(void *data, int status, uint64_t result)
{
    struct create *op = data;
    struct rq_http_req *req = op->req;
    int code = MSTORE_IS_ERR(result) ? MSTORE_ERR_CODE(result) : 0;

    if (status == 0 && code == 0) {
        rq_log(RQ_INFO, "topic %s created with %u partitions", op->topic,
               op->n_partitions);
        reconcile_kick(mcore_modules(op->m)->reconcile);
    }
    if (req == NULL) {
        free(op);
        return;
    }
    rq_http_on_abort(req, NULL, NULL);
    if (status != 0) {
        mcore_unavailable(req, "the topic was not committed: %s; retry",
                          rq_strerror(status));
    } else if (op->then_register && (code == 0 || code == RQ_EXISTS)) {
        register_client(op->m, req, MCMD_PRODUCER_REGISTER, op->topic,
                        op->partition);
    } else if (code == RQ_EXISTS) {
        rq_http_reply_error(req, 409, "Topic '%s' already exists", op->topic);
    } else if (code != 0) {
        rq_http_reply_error(req, rq_err_http_status(code),
                            "the topic was refused: %s", rq_strerror(code));
    } else {
        char msg[MCMD_NAME_MAX + 64];
        snprintf(msg, sizeof msg, "Topic '%s' created successfully", op->topic);
        rq_http_reply(
            req, 200,
            json_pack("{s:s,s:s,s:i}", "message", msg, "topic", op->topic,
                      "number_of_partitions", (int)op->n_partitions));
    }
    free(op);
}

/* Proposes the creation of @topic; answers @req itself. */
static void create_topic(struct mcore *m, struct rq_http_req *req,
                         const char *topic, uint32_t n, bool then_register,
                         uint32_t partition)
{
    char why[WHY_LEN];
    struct mcmd c = {.type = MCMD_TOPIC_CREATE};
    uint32_t(*replicas)[MCMD_RF];

    int rv = place(m, n, &replicas, why, sizeof why);
    if (rv == RQ_NOBROKERS) {
        mcore_unavailable(req, "%s", why);
        return;
    }
    if (rv != 0) {
        rq_http_reply_error(req, 500, "%s", why);
        return;
    }
    snprintf(c.u.topic_create.name, sizeof c.u.topic_create.name, "%s", topic);
    c.u.topic_create.n_partitions = n;
    c.u.topic_create.replicas = replicas;
    struct create *op = calloc(1, sizeof *op);
    if (op == NULL) {
        mcmd_clear(&c); /* UNTESTED: ENOMEM only. */
        rq_http_reply_error(req, 500, "out of memory");
        return;
    }
    op->m = m;
    snprintf(op->topic, sizeof op->topic, "%s", topic);
    op->n_partitions = n;
    op->then_register = then_register;
    op->partition = partition;
    rv = mcore_propose(m, &c, on_topic_created, op);
    mcmd_clear(&c);
    if (rv != 0) {
        free(op);
        reply_not_proposed(req, rv);
        return;
    }
    mcore_hold(req, &op->req);
}

void qapi_topics_create(struct rq_http_req *req, void *data)
{
    struct mcore *m = data;
    struct mstore_topic t;
    struct auth who;
    bool present;
    uint64_t n = DEFAULT_PARTITIONS;

    if (!auth_public(m, req, &who, qapi_topics_create) || !body_ok(req)) {
        return;
    }
    bool given = rq_http_query(req, "topic_name") != NULL ||
                 body_value(req, "topic_name") != NULL;
    bool alias =
        rq_http_query(req, "name") != NULL || body_value(req, "name") != NULL;
    const char *topic = topic_arg(req, given || !alias ? "topic_name" : "name");
    if (topic == NULL) {
        return;
    }
    if (arg_u64(req, "number_of_partitions", &present, &n) != 0 ||
        (present && (n < 1 || n > MCMD_MAX_PARTITIONS))) {
        rq_http_reply_error(req, 400,
                            "'number_of_partitions' must be an integer from "
                            "1 to %d",
                            MCMD_MAX_PARTITIONS);
        return;
    }
    if (!admit(m, req, &who, GRANT_TO_PRODUCE, topic, AT_LEADER)) {
        return;
    }
    int rv = mstore_topic(mcore_store(m), topic, &t);
    if (rv == 0) {
        rq_http_reply_error(req, 409, "Topic '%s' already exists", topic);
        return;
    }
    if (rv != RQ_NOTFOUND) {
        qapi_reply_store_error(req, rv);
        return;
    }
    create_topic(m, req, topic, (uint32_t)n, false, MCMD_NO_PARTITION);
}

struct read_req {
    struct rq_http_req *req;
    struct mcore *m;
    void (*then)(struct read_req *rr);
    char topic[MCMD_NAME_MAX + 1];
    uint64_t id;
    uint32_t partition;
};

static void on_read_done(void *data, int status, const char *why)
{
    struct read_req *rr = data;
    if (rr->req != NULL && status != 0) {
        mcore_unavailable(rr->req, "%s", why);
    } else if (rr->req != NULL) {
        rq_http_on_abort(rr->req, NULL, NULL);
        rr->then(rr);
    }
    free(rr);
}

/* Runs @then once a consistent read may be served (see mcore_read);
 * answers 503 itself on failure. */
static void after_read(struct mcore *m, struct rq_http_req *req,
                       void (*then)(struct read_req *rr), const char *topic,
                       uint64_t id, uint32_t partition)
{
    struct read_req *rr = calloc(1, sizeof *rr);
    if (rr == NULL) {
        rq_http_reply_error(req, 500, "out of memory"); /* UNTESTED */
        return;
    }
    rr->m = m;
    rr->then = then;
    rr->id = id;
    rr->partition = partition;
    if (topic != NULL) {
        snprintf(rr->topic, sizeof rr->topic, "%s", topic);
    }
    mcore_hold(req, &rr->req);
    mcore_read(m, on_read_done, rr);
}

static void topics_list(struct read_req *rr)
{
    struct mstore_topic *list;
    struct auth who;
    size_t n;
    /* Authenticated on arrival; again now, for the grants as of the
     * read (a revocation applied meanwhile counts). */
    if (!auth_public(rr->m, rr->req, &who, NULL)) {
        return;
    }
    int rv = mstore_topics(mcore_store(rr->m), &list, &n);
    if (rv != 0) {
        qapi_reply_store_error(rr->req, rv);
        return;
    }
    json_t *names = json_array();
    for (size_t i = 0; i < n; i++) {
        if (auth_sees(&who, list[i].name)) {
            json_array_append_new(names, json_string(list[i].name));
        }
    }
    free(list);
    rq_http_reply(rr->req, 200, json_pack("{s:o}", "topics", names));
}

void qapi_topics_list(struct rq_http_req *req, void *data)
{
    struct auth who;
    if (auth_public(data, req, &who, qapi_topics_list)) {
        after_read(data, req, topics_list, NULL, 0, MCMD_NO_PARTITION);
    }
}

static json_t *replicas_json(const uint32_t r[MCMD_RF])
{
    json_t *a = json_array();
    for (unsigned k = 0; k < MCMD_RF; k++) {
        json_array_append_new(a, json_integer(r[k]));
    }
    return a;
}

static void topics_partitions(struct read_req *rr)
{
    struct mstore_partition *parts;
    size_t n;
    int rv = mstore_partitions(mcore_store(rr->m), rr->topic, &parts, &n);
    if (rv == RQ_NOTFOUND) {
        rq_http_reply_error(rr->req, 404, "no topic '%s'", rr->topic);
        return;
    }
    if (rv != 0) {
        qapi_reply_store_error(rr->req, rv);
        return;
    }
    json_t *list = json_array();
    for (size_t i = 0; i < n; i++) {
        const struct route *r =
            routing_get(mcore_routing(rr->m), parts[i].group_id);
        json_array_append_new(
            list,
            json_pack("{s:i,s:o,s:o,s:I}", "partition_id",
                      (int)parts[i].partition_id, "leader",
                      r != NULL && r->leader != 0 ? json_integer(r->leader)
                                                  : json_null(),
                      "replicas", replicas_json(parts[i].replicas),
                      "high_watermark",
                      (json_int_t)(r != NULL ? r->high_watermark : 0)));
    }
    free(parts);
    rq_http_reply(
        rr->req, 200,
        json_pack("{s:s,s:o}", "topic", rr->topic, "partitions", list));
}

void qapi_topics_partitions(struct rq_http_req *req, void *data)
{
    struct mcore *m = data;
    struct auth who;
    if (!auth_public(m, req, &who, qapi_topics_partitions) || !body_ok(req)) {
        return;
    }
    const char *topic = topic_arg(req, "topic");
    if (topic != NULL && admit(m, req, &who, GRANT_TO_SEE, topic, AT_LEADER)) {
        after_read(m, req, topics_partitions, topic, 0, MCMD_NO_PARTITION);
    }
}

/* ---- Registration ---- */

struct reg {
    struct rq_http_req *req;
    enum mcmd_type type;
};

static void on_registered(void *data, int status, uint64_t result)
{
    struct reg *op = data;
    struct rq_http_req *req = op->req;
    const char *what =
        op->type == MCMD_PRODUCER_REGISTER ? "producer_id" : "consumer_id";
    free(op);
    if (req == NULL) {
        return;
    }
    rq_http_on_abort(req, NULL, NULL);
    if (status != 0) {
        mcore_unavailable(req,
                          "the registration was not committed: %s; "
                          "retry",
                          rq_strerror(status));
    } else if (MSTORE_IS_ERR(result)) {
        int code = MSTORE_ERR_CODE(result);
        rq_http_reply_error(
            req, code == RQ_INVALID ? 404 : rq_err_http_status(code),
            code == RQ_NOTFOUND  ? "the topic does not exist"
            : code == RQ_INVALID ? "the topic has no such partition"
                                 : "the registration was refused: %s",
            rq_strerror(code));
    } else {
        rq_http_reply(req, 200,
                      json_pack("{s:I}", what, (json_int_t)MSTORE_OK(result)));
    }
}

static void register_client(struct mcore *m, struct rq_http_req *req,
                            enum mcmd_type type, const char *topic,
                            uint32_t partition)
{
    struct mcmd c = {.type = type};
    snprintf(c.u.client_register.topic, sizeof c.u.client_register.topic, "%s",
             topic);
    c.u.client_register.partition_id = partition;
    struct reg *op = calloc(1, sizeof *op);
    if (op == NULL) {
        rq_http_reply_error(req, 500, "out of memory"); /* UNTESTED */
        return;
    }
    op->type = type;
    int rv = mcore_propose(m, &c, on_registered, op);
    if (rv != 0) {
        free(op);
        reply_not_proposed(req, rv);
        return;
    }
    mcore_hold(req, &op->req);
}

static void client_register(struct rq_http_req *req, struct mcore *m,
                            enum mcmd_type type, rq_http_handler again)
{
    struct mstore_topic t;
    struct auth who;
    uint32_t partition;

    if (!auth_public(m, req, &who, again) || !body_ok(req)) {
        return;
    }
    const char *topic = topic_arg(req, "topic");
    if (topic == NULL || !partition_arg(req, &partition) ||
        !admit(m, req, &who,
               type == MCMD_PRODUCER_REGISTER ? GRANT_TO_PRODUCE
                                              : GRANT_TO_CONSUME,
               topic, AT_LEADER)) {
        return;
    }
    int rv = mstore_topic(mcore_store(m), topic, &t);
    if (rv == RQ_NOTFOUND && type == MCMD_PRODUCER_REGISTER) {
        if (partition != MCMD_NO_PARTITION && partition >= DEFAULT_PARTITIONS) {
            reply_partition_unknown(req, topic, partition, DEFAULT_PARTITIONS);
            return;
        }
        create_topic(m, req, topic, DEFAULT_PARTITIONS, true, partition);
        return;
    }
    if (rv == RQ_NOTFOUND) {
        rq_http_reply_error(
            req, 404, "no topic '%s'; create it first (POST /topics)", topic);
        return;
    }
    if (rv != 0) {
        qapi_reply_store_error(req, rv);
        return;
    }
    if (partition != MCMD_NO_PARTITION && partition >= t.n_partitions) {
        reply_partition_unknown(req, topic, partition, t.n_partitions);
        return;
    }
    register_client(m, req, type, topic, partition);
}

void qapi_producer_register(struct rq_http_req *req, void *data)
{
    client_register(req, data, MCMD_PRODUCER_REGISTER, qapi_producer_register);
}

void qapi_consumer_register(struct rq_http_req *req, void *data)
{
    client_register(req, data, MCMD_CONSUMER_REGISTER, qapi_consumer_register);
}

/*
 * Looks up a producer or consumer registered for @topic: 0, or answers
 * 404 (unknown) / 400 (another topic) / 500 and returns that code.
 */
static int client_for_topic(struct mcore *m, struct rq_http_req *req,
                            bool producer, uint64_t id, const char *topic,
                            struct mstore_client *out)
{
    const char *what = producer ? "producer" : "consumer";
    int rv = producer ? mstore_producer(mcore_store(m), id, out)
                      : mstore_consumer(mcore_store(m), id, out);
    if (rv == RQ_NOTFOUND) {
        rq_http_reply_error(req, 404, "no %s %" PRIu64 "; register first", what,
                            id);
        return rv;
    }
    if (rv != 0) {
        qapi_reply_store_error(req, rv);
        return rv;
    }
    if (strcmp(out->topic, topic) != 0) {
        rq_http_reply_error(
            req, 400, "%s %" PRIu64 " is registered for topic '%s', not '%s'",
            what, id, out->topic, topic);
        return RQ_INVALID;
    }
    return 0;
}

/* ---- Produce ---- */

struct produce {
    struct rq_http_req *req;
    struct mcore *m;
    char topic[MCMD_NAME_MAX + 1];
    uint64_t producer_id;
    uint32_t partition; /* Chosen. */
};

static void on_produced(void *data, const struct bclient_result *r)
{
    struct produce *op = data;
    struct rq_http_req *req = op->req;
    if (req != NULL) {
        rq_http_on_abort(req, NULL, NULL);
        json_t *base = json_object_get(r->answer, "base_offset");
        if (r->status == 200 && json_is_integer(base)) {
            mcore_stats(op->m)->produced++;
            rq_http_reply(req, 200,
                          json_pack("{s:i,s:O}", "partition_id",
                                    (int)op->partition, "offset", base));
        } else {
            if (r->retry_after != NULL) {
                rq_http_set_header(req, "Retry-After", r->retry_after);
            }
            rq_http_reply_error(req, r->status == 200 ? 503 : r->status, "%s",
                                r->why);
        }
    }
    free(op);
}

/* The next round-robin position of @producer_id among @n partitions. */
static uint32_t producer_rr(struct mcore *m, uint64_t producer_id, uint32_t n)
{
    (void)m;
    struct consumers *c = consumers;
    uintptr_t v = (uintptr_t)rq_idmap_del(&c->rr, producer_id);
    uint64_t pos = v != 0 ? (uint64_t)v - 1 : producer_id;
    if (rq_idmap_put(&c->rr, producer_id, (void *)(uintptr_t)(pos + 2)) != 0) {
        /* UNTESTED: ENOMEM only; the position restarts next time. */
    }
    return (uint32_t)(pos % n);
}

struct produce_args {
    uint64_t producer_id;
    uint32_t partition;
    const char *message;
    size_t message_len;
    const char *key;
};

/* Produces once the producer is known here; false if it is not (yet). */
static bool produce_now(struct mcore *m, struct rq_http_req *req,
                        const char *topic, const struct produce_args *a,
                        bool last_try)
{
    struct mstore_client pc;
    struct mstore_partition *parts;
    size_t n;

    int rv = mstore_producer(mcore_store(m), a->producer_id, &pc);
    if (rv == RQ_NOTFOUND && !last_try) {
        return false;
    }
    if (client_for_topic(m, req, true, a->producer_id, topic, &pc) != 0) {
        return true;
    }
    rv = mstore_partitions(mcore_store(m), topic, &parts, &n);
    if (rv == RQ_NOTFOUND || (rv == 0 && n == 0)) {
        if (rv == 0) {
            free(parts);
        }
        rq_http_reply_error(req, 404, "no topic '%s'", topic);
        return true;
    }
    if (rv != 0) {
        qapi_reply_store_error(req, rv);
        return true;
    }
    bool rr = pc.partition_id == MCMD_NO_PARTITION &&
              a->partition == MCMD_NO_PARTITION && a->key == NULL;
    uint32_t p = policy_partition(
        pc.partition_id, a->partition, a->key,
        a->key != NULL ? strlen(a->key) : 0,
        rr ? producer_rr(m, a->producer_id, (uint32_t)n) : 0, (uint32_t)n);
    if (p >= n) {
        reply_partition_unknown(req, topic, p, n);
        free(parts);
        return true;
    }
    json_t *rec = json_pack("{s:s%}", "value", a->message, a->message_len);
    if (rec != NULL && a->key != NULL) {
        json_object_set_new(rec, "key", json_string(a->key));
    }
    json_t *records = json_array();
    json_array_append_new(records, rec);
    struct produce *op = calloc(1, sizeof *op);
    if (op == NULL || rec == NULL) {
        free(op); /* UNTESTED: ENOMEM only. */
        json_decref(records);
        free(parts);
        rq_http_reply_error(req, 500, "out of memory");
        return true;
    }
    op->m = m;
    snprintf(op->topic, sizeof op->topic, "%s", topic);
    op->producer_id = a->producer_id;
    op->partition = p;
    rv = bclient_produce(m, &parts[p], records, 0, 0, on_produced, op);
    json_decref(records);
    free(parts);
    if (rv != 0) {
        free(op);
        mcore_unavailable(req, "cannot produce now: %s", rq_strerror(rv));
        return true;
    }
    mcore_hold(req, &op->req);
    return true;
}

/* A produce whose producer this manager did not know: after a consistent
 * read it may. */
struct produce_retry {
    struct rq_http_req *req;
    struct mcore *m;
    char topic[MCMD_NAME_MAX + 1];
    struct produce_args args;
    char *message; /* Owned copies. */
    char *key;
};

static void on_produce_read(void *data, int status, const char *why)
{
    struct produce_retry *pr = data;
    if (pr->req != NULL) {
        rq_http_on_abort(pr->req, NULL, NULL);
        if (status != 0) {
            mcore_unavailable(pr->req, "%s", why);
        } else {
            produce_now(pr->m, pr->req, pr->topic, &pr->args, true);
        }
    }
    free(pr->message);
    free(pr->key);
    free(pr);
}

void qapi_produce(struct rq_http_req *req, void *data)
{
    struct mcore *m = data;
    struct produce_args a = {0};
    struct auth who;

    if (!auth_public(m, req, &who, qapi_produce) || !body_ok(req)) {
        return;
    }
    const char *topic = topic_arg(req, "topic");
    if (topic == NULL || !id_arg(req, "producer_id", &a.producer_id) ||
        !partition_arg(req, &a.partition)) {
        return;
    }
    /* The message: a JSON string in the body, else the query string. */
    json_t *body = rq_http_json(req, NULL, 0);
    json_t *msg = json_object_get(body, "message");
    const char *q = rq_http_query(req, "message");
    if (q != NULL) {
        a.message = q;
        a.message_len = strlen(q);
    } else if (json_is_string(msg)) {
        a.message = json_string_value(msg);
        a.message_len = json_string_length(msg);
    } else {
        rq_http_reply_error(req, 400, "'message' must be given as a string");
        return;
    }
    if (a.message_len > mcore_config(m)->max_message_bytes) {
        rq_http_reply_error(req, 413,
                            "a message of %zu bytes is over the limit of "
                            "%" PRIu64 " bytes",
                            a.message_len, mcore_config(m)->max_message_bytes);
        return;
    }
    if (!policy_utf8_valid(a.message, a.message_len) ||
        memchr(a.message, '\0', a.message_len) != NULL) {
        rq_http_reply_error(req, 400,
                            "'message' must be UTF-8 text without NUL");
        return;
    }
    json_t *key = json_object_get(body, "key");
    a.key = rq_http_query(req, "key");
    if (a.key == NULL && key != NULL && !json_is_null(key)) {
        if (!json_is_string(key)) {
            rq_http_reply_error(req, 400, "'key' must be a string");
            return;
        }
        a.key = json_string_value(key);
    }
    if (a.key != NULL && !policy_utf8_valid(a.key, strlen(a.key))) {
        rq_http_reply_error(req, 400, "'key' must be UTF-8 text");
        return;
    }
    if (!admit(m, req, &who, GRANT_TO_PRODUCE, topic, ANY_MANAGER) ||
        produce_now(m, req, topic, &a, false)) {
        return;
    }
    struct produce_retry *pr = calloc(1, sizeof *pr);
    char *mcopy = malloc(a.message_len + 1);
    char *kcopy = a.key != NULL ? strdup(a.key) : NULL;
    if (pr == NULL || mcopy == NULL || (a.key != NULL && kcopy == NULL)) {
        free(pr); /* UNTESTED: ENOMEM only. */
        free(mcopy);
        free(kcopy);
        rq_http_reply_error(req, 500, "out of memory");
        return;
    }
    memcpy(mcopy, a.message, a.message_len);
    mcopy[a.message_len] = '\0';
    pr->m = m;
    snprintf(pr->topic, sizeof pr->topic, "%s", topic);
    pr->args = a;
    pr->args.message = pr->message = mcopy;
    pr->args.key = pr->key = kcopy;
    mcore_hold(req, &pr->req);
    mcore_read(m, on_produce_read, pr);
}

/* ---- Consume ---- */

struct consume {
    struct rq_http_req *req; /* First: the held request. */
    struct mcore *m;
    struct rq_list link; /* In its consumer's queue. */
    bool running;
    uint64_t consumer_id;
    char topic[MCMD_NAME_MAX + 1];
    uint32_t given; /* Partition asked for, or MCMD_NO_PARTITION. */

    struct mstore_partition *parts;
    size_t n_parts;
    uint64_t *offsets; /* Committed next offset, by partition. */
    uint32_t *order;   /* Partitions to visit, in order. */
    size_t n_order;
    size_t idx;
    bool bound;
    uint32_t cursor;
    uint64_t offset; /* Committed next offset of order[idx]. */
    bool reread;     /* Retention moved the start once already. */
    unsigned cas_lost;
    bool had_error;
    char why[WHY_LEN];

    uint64_t msg_offset;
    char *message;
    /* The advance is proposed and not known to have committed or lost (in
     * flight, or failed with leadership lost): a failure answer then says
     * the offset may have moved. */
    bool in_doubt;
};

static void consume_start(struct consume *op);

static struct cqueue *cqueue_get(struct consumers *cs, uint64_t id, bool make)
{
    struct cqueue *q = rq_idmap_get(&cs->queues, id);
    if (q != NULL || !make) {
        return q;
    }
    q = calloc(1, sizeof *q);
    if (q == NULL) {
        return NULL; /* UNTESTED: ENOMEM only. */
    }
    q->consumer_id = id;
    rq_list_init(&q->ops);
    if (rq_idmap_put(&cs->queues, id, q) != 0) {
        free(q); /* UNTESTED: ENOMEM only. */
        return NULL;
    }
    return q;
}

/* Starts the consumer's next request, until one is left running. */
static void pump(struct consumers *cs, uint64_t id)
{
    struct cqueue *q = cqueue_get(cs, id, false);
    if (q == NULL || q->pumping) {
        return;
    }
    q->pumping = true;
    while (!rq_list_empty(&q->ops)) {
        struct consume *op = RQ_LIST_ENTRY(q->ops.next, struct consume, link);
        if (op->running) {
            break;
        }
        op->running = true;
        consume_start(op);
    }
    q->pumping = false;
    if (rq_list_empty(&q->ops)) {
        rq_idmap_del(&cs->queues, id);
        free(q);
    }
}

static void consume_free(struct consume *op)
{
    free(op->parts);
    free(op->offsets);
    free(op->order);
    free(op->message);
    free(op);
}

/* The records retention removed that @op's advance skips, as its answers
 * name them (manager/README.md, "Consume"). */
static json_t *skipped_range(const struct consume *op)
{
    return json_pack("{s:i,s:I,s:I}", "partition_id", (int)op->order[op->idx],
                     "first_offset", (json_int_t)op->offset, "last_offset",
                     (json_int_t)(op->msg_offset - 1));
}

/*
 * The failure answer of a consume: @status with @msg, and "offset_advanced"
 * for a 5xx (API.md section 1): "no" when this consume cannot have moved the
 * consumer's offset, "unknown" when its advance was proposed and its outcome
 * is not known (it may still commit). A proposal that would have skipped
 * records removed by retention names them in "skipped" as a success would.
 */
static void consume_fail(struct consume *op, int status, const char *msg)
{
    json_t *body = json_pack("{s:s,s:s}", "status", "failure", "message", msg);
    if (body == NULL) {
        body = json_object(); /* UNTESTED: ENOMEM only. */
    }
    if (status >= 500) {
        bool maybe = op->in_doubt;
        json_object_set_new(body, "offset_advanced",
                            json_string(maybe ? "unknown" : "no"));
        if (maybe && op->msg_offset > op->offset) {
            json_object_set_new(body, "skipped", skipped_range(op));
        }
    }
    if (status == 503) {
        rq_http_set_header(op->req, "Retry-After", "1");
    }
    rq_http_reply(op->req, status, body);
}

/* Ends @op (its answer already given, or @status/@fmt now) and starts the
 * consumer's next request. */
static void consume_end(struct consume *op, int status, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

static void consume_end(struct consume *op, int status, const char *fmt, ...)
{
    uint64_t id = op->consumer_id;
    if (op->req != NULL && status != 0) {
        char msg[WHY_LEN * 2];
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(msg, sizeof msg, fmt, ap);
        va_end(ap);
        rq_http_on_abort(op->req, NULL, NULL);
        consume_fail(op, status, msg);
    }
    rq_list_remove(&op->link);
    consume_free(op);
    pump(consumers, id);
}

/* The client left (or the manager is closing): answer now, as
 * consume_fail() says, and drop the request; the consume itself ends at its
 * next step, without proposing an advance it has not proposed yet. */
static void on_consume_abort(struct rq_http_req *req, void *data)
{
    struct consume *op = data;
    consume_fail(op, 503,
                 "the request was abandoned: the client went away or the "
                 "manager is shutting down");
    (void)req;
    op->req = NULL;
}

/*
 * Whether @op's client has gone; then it ends @op without an answer. A
 * consume asks this before each read and before it proposes the advance
 * (API.md section 1: the advance is not proposed for a client that has
 * already gone). Once proposed, nothing can call the advance back.
 */
static bool consume_abandoned(struct consume *op, bool record_read)
{
    if (op->req != NULL) {
        return false;
    }
    if (record_read) {
        rq_log(RQ_INFO,
               "consumer %" PRIu64
               ": the client left before %s/%u offset %" PRIu64
               " was delivered; the offset stays",
               op->consumer_id, op->topic, op->order[op->idx], op->msg_offset);
    }
    consume_end(op, 0, "%s", "");
    return true;
}

static void consume_next(struct consume *op);

static void on_offset_committed(void *data, int status, uint64_t result)
{
    struct consume *op = data;
    uint32_t p = op->order[op->idx];
    if (status != 0) {
        /* Proposed and then leadership was lost (or the manager closed):
         * the entry may still commit under the next leader (in_doubt
         * stays). */
        consume_end(op, 503,
                    "this manager lost leadership before the offset advance "
                    "was known to commit (%s): the message may have been "
                    "consumed and not delivered; retry",
                    rq_strerror(status));
        return;
    }
    op->in_doubt = false; /* Applied: committed, or refused by its check. */
    if (MSTORE_IS_ERR(result)) {
        int code = MSTORE_ERR_CODE(result);
        if (code == RQ_INVALID && ++op->cas_lost < CAS_RETRIES &&
            !mcore_closing(op->m)) {
            /* The offset moved (an offset commit, or an older leader):
             * read the state again and start over. */
            free(op->parts);
            op->parts = NULL;
            free(op->offsets);
            op->offsets = NULL;
            free(op->order);
            op->order = NULL;
            free(op->message);
            op->message = NULL;
            op->msg_offset = 0;
            op->offset = 0;
            consume_start(op);
            return;
        }
        consume_end(op, code == RQ_NOTFOUND ? 404 : 503,
                    code == RQ_NOTFOUND
                        ? "the consumer or its topic no longer exists"
                        : "the consumer's offset kept moving; retry");
        return;
    }
    mcore_stats(op->m)->consumed++;
    json_t *skipped = NULL;
    if (op->msg_offset > op->offset) {
        /* Retention removed what this consumer had not read. */
        mmetrics_consume_skipped(mcore_modules(op->m)->mmetrics, op->topic,
                                 op->msg_offset - op->offset);
        rq_log(RQ_INFO,
               "consumer %" PRIu64 " skipped %s/%u offsets %" PRIu64
               " to %" PRIu64 ", removed by retention",
               op->consumer_id, op->topic, p, op->offset, op->msg_offset - 1);
        skipped = skipped_range(op);
    }
    if (op->req != NULL) {
        rq_http_on_abort(op->req, NULL, NULL);
        json_t *body =
            json_pack("{s:s,s:i,s:I}", "message", op->message, "partition_id",
                      (int)p, "offset", (json_int_t)op->msg_offset);
        if (body != NULL && skipped != NULL) {
            json_object_set(body, "skipped", skipped);
        }
        rq_http_reply(op->req, 200, body);
    }
    json_decref(skipped);
    consume_end(op, 0, "%s", "");
}

static void commit_offset(struct consume *op)
{
    if (consume_abandoned(op, true)) {
        return;
    }
    uint32_t p = op->order[op->idx];
    struct mcmd c = {.type = MCMD_OFFSET_COMMIT};
    c.u.offset_commit.consumer_id = op->consumer_id;
    c.u.offset_commit.cursor =
        op->bound ? op->cursor : (uint32_t)((p + 1) % op->n_parts);
    c.u.offset_commit.n = 1;
    c.u.offset_commit.offsets = calloc(1, sizeof *c.u.offset_commit.offsets);
    if (c.u.offset_commit.offsets == NULL) {
        consume_end(op, 503, "out of memory"); /* UNTESTED: ENOMEM only. */
        return;
    }
    c.u.offset_commit.offsets[0] = (struct mcmd_offset){
        .partition_id = p,
        .offset = op->msg_offset + 1,
        .expected = op->offset,
    };
    int rv = mcore_propose(op->m, &c, on_offset_committed, op);
    mcmd_clear(&c);
    if (rv != 0) {
        consume_end(op, 503,
                    "this manager cannot commit the offset now (%s), so no "
                    "message was consumed; retry",
                    rq_strerror(rv));
        return;
    }
    op->in_doubt = true;
}

static void on_consume_read(void *data, const struct bclient_result *r)
{
    struct consume *op = data;
    uint32_t p = op->order[op->idx];
    if (mcore_closing(op->m)) {
        consume_end(op, 503, "the manager is shutting down");
        return;
    }
    json_t *first = json_object_get(r->answer, "first_offset");
    if (r->status == 404 && json_is_integer(first) && !op->reread &&
        (uint64_t)json_integer_value(first) > op->offset) {
        /* Retention deleted what this consumer had not read: go on from
         * the first offset still held. The commit still expects the
         * consumer's offset as it was. */
        op->reread = true;
        int rv = bclient_read(op->m, &op->parts[p],
                              (uint64_t)json_integer_value(first), 1, 0,
                              on_consume_read, op);
        if (rv != 0) {
            consume_end(op, 503, "cannot read now: %s", rq_strerror(rv));
        }
        return;
    }
    json_t *recs = json_object_get(r->answer, "records");
    json_t *rec = json_array_get(recs, 0);
    json_t *off = json_object_get(rec, "offset");
    json_t *val = json_object_get(rec, "value");
    if (r->status == 200 && json_is_integer(off) && json_is_string(val)) {
        op->msg_offset = (uint64_t)json_integer_value(off);
        op->message = strdup(json_string_value(val));
        if (op->message == NULL) {
            consume_end(op, 503, "out of memory"); /* UNTESTED */
            return;
        }
        commit_offset(op);
        return;
    }
    json_t *hw = json_object_get(r->answer, "high_watermark");
    json_t *at = json_object_get(r->answer, "next_offset");
    if (r->status != 200) {
        op->had_error = true;
        snprintf(op->why, sizeof op->why, "partition %u: %s", p, r->why);
    } else if (!json_is_integer(hw) || !json_is_integer(at) ||
               json_integer_value(hw) > json_integer_value(at)) {
        /* No record where the partition holds some (next_offset is the
         * offset read when no record came): never "no new messages";
         * bclient passes on no such answer. */
        op->had_error = true;
        snprintf(op->why, sizeof op->why,
                 "partition %u answered no record below its high watermark", p);
    }
    op->idx++;
    consume_next(op);
}

static void consume_next(struct consume *op)
{
    if (consume_abandoned(op, false)) {
        return;
    }
    if (op->idx >= op->n_order) {
        if (op->had_error) {
            consume_end(op, 503,
                        "no message could be read, and some partitions "
                        "could not be reached (%s); retry",
                        op->why);
        } else {
            consume_end(op, 404,
                        "no new messages in topic '%s' for "
                        "consumer %" PRIu64,
                        op->topic, op->consumer_id);
        }
        return;
    }
    uint32_t p = op->order[op->idx];
    op->reread = false;
    op->offset = op->offsets[p];
    int rv = bclient_read(op->m, &op->parts[p], op->offset, 1, 0,
                          on_consume_read, op);
    if (rv != 0) {
        consume_end(op, 503, "cannot read now: %s", rq_strerror(rv));
    }
}

static void consume_start(struct consume *op)
{
    struct mcore *m = op->m;
    struct mstore_client cc;
    struct mstore_offset *offs;
    size_t n_offs;

    if (mcore_closing(m)) {
        consume_end(op, 503, "the manager is shutting down");
        return;
    }
    if (consume_abandoned(op, false)) {
        return;
    }
    if (!mcore_leading(m)) {
        consume_end(op, 503,
                    "this manager stopped leading before the consume ran; "
                    "retry");
        return;
    }
    int rv = mstore_consumer(mcore_store(m), op->consumer_id, &cc);
    if (rv == 0) {
        rv = mstore_partitions(mcore_store(m), op->topic, &op->parts,
                               &op->n_parts);
    }
    if (rv == RQ_NOTFOUND || (rv == 0 && op->n_parts == 0)) {
        consume_end(op, 404, "the consumer or its topic no longer exists");
        return;
    }
    if (rv != 0) {
        consume_end(op, 500, "reading the metadata store: %s", rq_strerror(rv));
        return;
    }
    rv = mstore_offsets(mcore_store(m), op->consumer_id, &offs, &n_offs);
    if (rv != 0) {
        consume_end(op, 500, "reading the consumer's offsets: %s",
                    rq_strerror(rv));
        return;
    }
    op->offsets = calloc(op->n_parts, sizeof *op->offsets);
    op->order = calloc(op->n_parts, sizeof *op->order);
    if (op->offsets == NULL || op->order == NULL) {
        free(offs); /* UNTESTED: ENOMEM only. */
        consume_end(op, 503, "out of memory");
        return;
    }
    for (size_t i = 0; i < n_offs; i++) {
        if (offs[i].partition_id < op->n_parts) {
            op->offsets[offs[i].partition_id] = offs[i].next_offset;
        }
    }
    free(offs);
    uint32_t bound =
        cc.partition_id != MCMD_NO_PARTITION ? cc.partition_id : op->given;
    op->cursor = cc.rr_cursor;
    op->bound = bound != MCMD_NO_PARTITION;
    op->idx = 0;
    op->had_error = false;
    if (op->bound) {
        if (bound >= op->n_parts) {
            consume_end(op, 404, "topic '%s' has no partition %u", op->topic,
                        bound);
            return;
        }
        op->order[0] = bound;
        op->n_order = 1;
    } else {
        for (size_t i = 0; i < op->n_parts; i++) {
            op->order[i] = (uint32_t)((cc.rr_cursor + i) % op->n_parts);
        }
        op->n_order = op->n_parts;
    }
    consume_next(op);
}

/*
 * The arguments of GET /consumer/consume and GET /size: @topic, the
 * consumer registered for it, and an optional partition, after the token
 * and its consume grant. Answers the request (forwarded, or 4xx) and
 * returns NULL when it cannot go on;
 * otherwise returns the topic.
 */
static const char *consumer_args(struct mcore *m, struct rq_http_req *req,
                                 uint64_t *id, uint32_t *partition,
                                 struct mstore_client *cc,
                                 rq_http_handler again)
{
    struct auth who;
    if (!auth_public(m, req, &who, again) || !body_ok(req)) {
        return NULL;
    }
    const char *topic = topic_arg(req, "topic");
    if (topic == NULL || !id_arg(req, "consumer_id", id) ||
        !partition_arg(req, partition) ||
        !admit(m, req, &who, GRANT_TO_CONSUME, topic, AT_LEADER) ||
        client_for_topic(m, req, false, *id, topic, cc) != 0) {
        return NULL;
    }
    return topic;
}

void qapi_consume(struct rq_http_req *req, void *data)
{
    struct mcore *m = data;
    struct mstore_client cc;
    struct mstore_topic t;
    uint64_t id;
    uint32_t partition;

    const char *topic =
        consumer_args(m, req, &id, &partition, &cc, qapi_consume);
    if (topic == NULL) {
        return;
    }
    int rv = mstore_topic(mcore_store(m), topic, &t);
    if (qapi_reply_topic_lookup(req, rv, topic)) {
        return;
    }
    if (partition != MCMD_NO_PARTITION && partition >= t.n_partitions) {
        reply_partition_unknown(req, topic, partition, t.n_partitions);
        return;
    }
    struct consume *op = calloc(1, sizeof *op);
    struct cqueue *q = cqueue_get(consumers, id, true);
    if (op == NULL || q == NULL) {
        free(op); /* UNTESTED: ENOMEM only. */
        rq_http_reply_error(req, 500, "out of memory");
        return;
    }
    op->m = m;
    op->consumer_id = id;
    op->given = partition;
    snprintf(op->topic, sizeof op->topic, "%s", topic);
    rq_list_push(&q->ops, &op->link);
    op->req = req;
    rq_http_on_abort(req, on_consume_abort, op);
    pump(consumers, id);
}

void qapi_consume_outcome(struct rq_http_req *req, json_t *body, bool sent)
{
    if (rq_http_route_handler(req) == qapi_consume) {
        json_object_set_new(body, "offset_advanced",
                            json_string(sent ? "unknown" : "no"));
    }
}

/* ---- High watermarks of several partitions at once ---- */

struct hw_fetch;
typedef void (*hw_done_cb)(struct hw_fetch *f);

struct hw_slot {
    struct hw_fetch *f;
    size_t i;
};

/* Asks a replica of each partition for its high watermark (a read of one
 * record at the consumer's offset answers it); a partition no broker
 * answers for keeps the routing cache's value. */
struct hw_fetch {
    struct rq_http_req *req; /* First: the held request. */
    struct mcore *m;
    struct mstore_partition *parts;
    uint64_t *committed; /* By index into parts. */
    uint64_t *hw;
    struct hw_slot *slots;
    size_t n;
    size_t pending;
    hw_done_cb done;
};

static void hw_free(struct hw_fetch *f)
{
    free(f->parts);
    free(f->committed);
    free(f->hw);
    free(f->slots);
    free(f);
}

static void hw_finish(struct hw_fetch *f)
{
    if (f->req != NULL) {
        rq_http_on_abort(f->req, NULL, NULL);
        f->done(f);
    }
    hw_free(f);
}

static void on_hw(void *data, const struct bclient_result *r)
{
    struct hw_slot *s = data;
    struct hw_fetch *f = s->f;
    json_t *hw = json_object_get(r->answer, "high_watermark");
    if (json_is_integer(hw) && (uint64_t)json_integer_value(hw) > f->hw[s->i]) {
        f->hw[s->i] = (uint64_t)json_integer_value(hw);
    }
    if (--f->pending == 0) {
        hw_finish(f);
    }
}

/*
 * Takes @parts and @committed (n entries, malloc'd; owned from here),
 * fetches the watermarks and calls @done with the request still waiting;
 * answers itself on ENOMEM.
 */
static void hw_fetch_start(struct mcore *m, struct rq_http_req *req,
                           struct mstore_partition *parts, uint64_t *committed,
                           size_t n, hw_done_cb done)
{
    struct hw_fetch *f = calloc(1, sizeof *f);
    uint64_t *hw = calloc(n + 1, sizeof *hw);
    struct hw_slot *slots = calloc(n + 1, sizeof *slots);
    if (f == NULL || hw == NULL || slots == NULL) {
        free(f); /* UNTESTED: ENOMEM only. */
        free(hw);
        free(slots);
        free(parts);
        free(committed);
        rq_http_reply_error(req, 500, "out of memory");
        return;
    }
    *f = (struct hw_fetch){
        .m = m,
        .parts = parts,
        .committed = committed,
        .hw = hw,
        .slots = slots,
        .n = n,
        .pending = 1, /* Until every read is started. */
        .done = done,
    };
    mcore_hold(req, &f->req);
    for (size_t i = 0; i < n; i++) {
        const struct route *r =
            routing_get(mcore_routing(m), parts[i].group_id);
        f->hw[i] = r != NULL ? r->high_watermark : 0;
        f->slots[i] = (struct hw_slot){.f = f, .i = i};
        f->pending++;
        if (bclient_read(m, &parts[i], committed[i], 1, 0, on_hw,
                         &f->slots[i]) != 0) {
            f->pending--;
        }
    }
    if (--f->pending == 0) {
        hw_finish(f);
    }
}

/* ---- Size ---- */

static void size_done(struct hw_fetch *f)
{
    uint64_t size = 0;
    for (size_t i = 0; i < f->n; i++) {
        if (f->hw[i] > f->committed[i]) {
            size += f->hw[i] - f->committed[i];
        }
    }
    rq_http_reply(f->req, 200, json_pack("{s:I}", "size", (json_int_t)size));
}

/* The partitions of @topic (only @only unless MCMD_NO_PARTITION) with the
 * consumer's committed offsets; answers itself and returns an error code
 * on failure. */
static int consumer_positions(struct mcore *m, struct rq_http_req *req,
                              uint64_t consumer_id, const char *topic,
                              uint32_t only, struct mstore_partition **parts,
                              uint64_t **committed, size_t *n)
{
    struct mstore_offset *offs;
    size_t n_offs;
    size_t np;
    struct mstore_partition *all;

    int rv = mstore_partitions(mcore_store(m), topic, &all, &np);
    if (qapi_reply_topic_lookup(req, rv, topic)) {
        return rv;
    }
    if (only != MCMD_NO_PARTITION && only >= np) {
        reply_partition_unknown(req, topic, only, np);
        free(all);
        return RQ_NOTFOUND;
    }
    rv = mstore_offsets(mcore_store(m), consumer_id, &offs, &n_offs);
    if (rv != 0) {
        free(all);
        qapi_reply_store_error(req, rv);
        return rv;
    }
    uint64_t *c = calloc(np + 1, sizeof *c);
    if (c == NULL) {
        free(all); /* UNTESTED: ENOMEM only. */
        free(offs);
        rq_http_reply_error(req, 500, "out of memory");
        return RQ_NOMEM;
    }
    for (size_t i = 0; i < n_offs; i++) {
        if (offs[i].partition_id < np) {
            c[offs[i].partition_id] = offs[i].next_offset;
        }
    }
    free(offs);
    if (only != MCMD_NO_PARTITION) {
        all[0] = all[only];
        c[0] = c[only];
        np = 1;
    }
    *parts = all;
    *committed = c;
    *n = np;
    return 0;
}

static void size_after_read(struct read_req *rr)
{
    struct mstore_client cc;
    struct mstore_partition *parts;
    uint64_t *committed;
    size_t n;
    if (client_for_topic(rr->m, rr->req, false, rr->id, rr->topic, &cc) != 0) {
        return;
    }
    /* A consumer bound to a partition reads only that one. */
    uint32_t only =
        cc.partition_id != MCMD_NO_PARTITION ? cc.partition_id : rr->partition;
    if (consumer_positions(rr->m, rr->req, rr->id, rr->topic, only, &parts,
                           &committed, &n) != 0) {
        return;
    }
    hw_fetch_start(rr->m, rr->req, parts, committed, n, size_done);
}

void qapi_size(struct rq_http_req *req, void *data)
{
    struct mcore *m = data;
    struct mstore_client cc;
    uint64_t id;
    uint32_t partition;

    const char *topic = consumer_args(m, req, &id, &partition, &cc, qapi_size);
    if (topic == NULL) {
        return;
    }
    after_read(m, req, size_after_read, topic, id, partition);
}

/* ---- Batches ---- */

struct batch;

struct batch_part {
    struct batch *b;
    uint32_t partition;
    json_t *records; /* Owned until sent. */
    size_t count;
    int status;
    uint64_t base;
    char why[WHY_LEN];
    char retry_after[16];
};

struct batch {
    struct rq_http_req *req; /* First: the held request. */
    struct mcore *m;
    char topic[MCMD_NAME_MAX + 1];
    uint32_t *assign; /* Partition of each record, in request order. */
    size_t n_records;
    struct batch_part *parts; /* One per partition of the topic. */
    size_t n_parts;
    size_t pending;
};

static void batch_free(struct batch *b)
{
    for (size_t i = 0; i < b->n_parts; i++) {
        json_decref(b->parts[i].records);
    }
    free(b->parts);
    free(b->assign);
    free(b);
}

static void batch_finish(struct batch *b)
{
    struct rq_http_req *req = b->req;
    if (req == NULL) {
        batch_free(b);
        return;
    }
    rq_http_on_abort(req, NULL, NULL);
    struct batch_part *failed = NULL;
    json_t *committed = json_array();
    for (size_t p = 0; p < b->n_parts; p++) {
        struct batch_part *bp = &b->parts[p];
        if (bp->count == 0) {
            continue;
        }
        if (bp->status == 200) {
            json_array_append_new(committed, json_integer(p));
        } else if (failed == NULL ||
                   (failed->status >= 500 && bp->status < 500)) {
            failed = bp;
        }
    }
    if (failed != NULL) {
        char list[256] = "";
        size_t used = 0;
        for (size_t i = 0; i < json_array_size(committed) && used < 200; i++) {
            used += (size_t)snprintf(
                list + used, sizeof list - used, "%s%lld", i > 0 ? ", " : "",
                (long long)json_integer_value(json_array_get(committed, i)));
        }
        if (failed->retry_after[0] != '\0') {
            rq_http_set_header(req, "Retry-After", failed->retry_after);
        }
        char msg[WHY_LEN + 400];
        snprintf(msg, sizeof msg, "%s; %s%s", failed->why,
                 json_array_size(committed) > 0
                     ? "the records of these partitions were committed: "
                     : "no partition's records were committed",
                 list);
        rq_http_reply(req, failed->status,
                      json_pack("{s:s,s:s,s:o}", "status", "failure", "message",
                                msg, "committed_partitions", committed));
        batch_free(b);
        return;
    }
    json_decref(committed);
    json_t *offsets = json_array();
    uint64_t *next = calloc(b->n_parts, sizeof *next);
    if (next == NULL) {
        json_decref(offsets); /* UNTESTED: ENOMEM only. */
        rq_http_reply_error(req, 500, "out of memory");
        batch_free(b);
        return;
    }
    for (size_t p = 0; p < b->n_parts; p++) {
        next[p] = b->parts[p].base;
    }
    for (size_t i = 0; i < b->n_records; i++) {
        uint32_t p = b->assign[i];
        json_array_append_new(
            offsets, json_pack("{s:i,s:I}", "partition_id", (int)p, "offset",
                               (json_int_t)next[p]++));
    }
    free(next);
    mcore_stats(b->m)->produced += b->n_records;
    rq_http_reply(req, 200, json_pack("{s:o}", "offsets", offsets));
    batch_free(b);
}

static void on_batch_part(void *data, const struct bclient_result *r)
{
    struct batch_part *bp = data;
    struct batch *b = bp->b;
    json_t *base = json_object_get(r->answer, "base_offset");
    if (r->status == 200 && json_is_integer(base)) {
        bp->status = 200;
        bp->base = (uint64_t)json_integer_value(base);
    } else {
        bp->status = r->status == 200 ? 503 : r->status;
        snprintf(bp->why, sizeof bp->why, "partition %u: %s", bp->partition,
                 r->why);
        if (r->retry_after != NULL) {
            snprintf(bp->retry_after, sizeof bp->retry_after, "%s",
                     r->retry_after);
        }
    }
    if (--b->pending == 0) {
        batch_finish(b);
    }
}

struct batch_args {
    bool has_producer;
    uint64_t producer_id;
    bool has_sequence;
    uint64_t sequence;
};

/* Checks a batch against the store and sends it; false if the topic or
 * the producer is not known here (yet). */
static bool batch_now(struct mcore *m, struct rq_http_req *req,
                      const char *topic, bool last_try)
{
    struct mstore_partition *parts;
    struct mstore_client pc;
    size_t np;
    char why[WHY_LEN];
    struct batch_args a = {0};

    json_t *body = rq_http_json(req, why, sizeof why);
    json_t *records = json_object_get(body, "records");
    json_t *pid = json_object_get(body, "producer_id");
    json_t *seq = json_object_get(body, "sequence");
    int rv = mstore_partitions(mcore_store(m), topic, &parts, &np);
    if ((rv == RQ_NOTFOUND || (rv == 0 && np == 0)) && !last_try) {
        if (rv == 0) {
            free(parts);
        }
        return false;
    }
    if (rv == RQ_NOTFOUND || (rv == 0 && np == 0)) {
        if (rv == 0) {
            free(parts);
        }
        rq_http_reply_error(req, 404, "no topic '%s'", topic);
        return true;
    }
    if (rv != 0) {
        qapi_reply_store_error(req, rv);
        return true;
    }
    a.has_producer = pid != NULL && !json_is_null(pid);
    a.has_sequence = seq != NULL && !json_is_null(seq);
    if (a.has_producer) {
        a.producer_id = (uint64_t)json_integer_value(pid);
        rv = mstore_producer(mcore_store(m), a.producer_id, &pc);
        if (rv == RQ_NOTFOUND && !last_try) {
            free(parts);
            return false;
        }
        if (client_for_topic(m, req, true, a.producer_id, topic, &pc) != 0) {
            free(parts);
            return true;
        }
    }
    if (a.has_sequence) {
        a.sequence = (uint64_t)json_integer_value(seq);
    }
    struct batch *b = calloc(1, sizeof *b);
    size_t n = json_array_size(records);
    if (b != NULL) {
        b->assign = calloc(n + 1, sizeof *b->assign);
        b->parts = calloc(np, sizeof *b->parts);
    }
    if (b == NULL || b->assign == NULL || b->parts == NULL) {
        if (b != NULL) {
            free(b->assign); /* UNTESTED: ENOMEM only. */
            free(b->parts);
            free(b);
        }
        free(parts);
        rq_http_reply_error(req, 500, "out of memory");
        return true;
    }
    b->m = m;
    snprintf(b->topic, sizeof b->topic, "%s", topic);
    b->n_records = n;
    b->n_parts = np;
    for (size_t p = 0; p < np; p++) {
        b->parts[p] = (struct batch_part){
            .b = b, .partition = (uint32_t)p, .records = json_array()};
    }
    int status = 0;
    for (size_t i = 0; i < n && status == 0; i++) {
        json_t *rec = json_array_get(records, i);
        json_t *value = json_object_get(rec, "value");
        json_t *key = json_object_get(rec, "key");
        json_t *rp = json_object_get(rec, "partition_id");
        uint32_t p;
        if (!json_is_object(rec) || !json_is_string(value)) {
            status = 400;
            snprintf(why, sizeof why, "record %zu: 'value' must be a string",
                     i);
        } else if (key != NULL && !json_is_null(key) && !json_is_string(key)) {
            status = 400;
            snprintf(why, sizeof why, "record %zu: 'key' must be a string", i);
        } else if (json_string_length(value) >
                   mcore_config(m)->max_message_bytes) {
            status = 413;
            snprintf(why, sizeof why,
                     "record %zu: a value of %zu bytes is over the limit of "
                     "%" PRIu64 " bytes",
                     i, json_string_length(value),
                     mcore_config(m)->max_message_bytes);
        } else if (memchr(json_string_value(value), '\0',
                          json_string_length(value)) != NULL) {
            status = 400;
            snprintf(why, sizeof why, "record %zu: 'value' holds a NUL", i);
        } else if (rp != NULL && !json_is_null(rp) &&
                   (!json_is_integer(rp) || json_integer_value(rp) < 0 ||
                    (size_t)json_integer_value(rp) >= np)) {
            status =
                json_is_integer(rp) && json_integer_value(rp) >= 0 ? 404 : 400;
            snprintf(why, sizeof why,
                     "record %zu: topic '%s' has no partition %s (it has "
                     "%zu)",
                     i, topic, status == 404 ? "so numbered" : "like that", np);
        } else {
            if (rp != NULL && !json_is_null(rp)) {
                p = (uint32_t)json_integer_value(rp);
            } else if (json_is_string(key)) {
                p = policy_key_partition(json_string_value(key),
                                         json_string_length(key), (uint32_t)np);
            } else {
                p = (uint32_t)(consumers->batch_rr++ % np);
            }
            b->assign[i] = p;
            json_t *r = json_pack("{s:O}", "value", value);
            if (json_is_string(key)) {
                json_object_set(r, "key", key);
            }
            json_array_append_new(b->parts[p].records, r);
            b->parts[p].count++;
        }
    }
    if (status != 0) {
        batch_free(b);
        free(parts);
        rq_http_reply_error(req, status, "%s", why);
        return true;
    }
    b->pending = 1;
    mcore_hold(req, &b->req);
    for (size_t p = 0; p < np; p++) {
        struct batch_part *bp = &b->parts[p];
        if (bp->count == 0) {
            continue;
        }
        b->pending++;
        rv = bclient_produce(
            m, &parts[p], bp->records,
            a.has_producer && a.has_sequence ? a.producer_id : 0, a.sequence,
            on_batch_part, bp);
        if (rv != 0) {
            bp->status = 503;
            snprintf(bp->why, sizeof bp->why, "partition %zu: %s", p,
                     rq_strerror(rv));
            b->pending--;
        }
    }
    free(parts);
    if (--b->pending == 0) {
        batch_finish(b);
    }
    return true;
}

static void on_batch_read(void *data, int status, const char *why)
{
    struct read_req *rr = data;
    if (rr->req != NULL) {
        rq_http_on_abort(rr->req, NULL, NULL);
        if (status != 0) {
            mcore_unavailable(rr->req, "%s", why);
        } else {
            batch_now(rr->m, rr->req, rr->topic, true);
        }
    }
    free(rr);
}

void qapi_records_produce(struct rq_http_req *req, void *data)
{
    struct mcore *m = data;
    struct auth who;
    char why[WHY_LEN];

    if (!auth_public(m, req, &who, qapi_records_produce)) {
        return;
    }
    const char *topic = rq_http_param(req, "topic");
    if (topic == NULL || !mcmd_topic_valid(topic)) {
        rq_http_reply_error(req, 400,
                            "topic names are 1-%d characters of "
                            "[A-Za-z0-9._-]",
                            MCMD_NAME_MAX);
        return;
    }
    json_t *body = rq_http_json(req, why, sizeof why);
    if (body == NULL) {
        rq_http_reply_error(req, 400, "%s", why);
        return;
    }
    json_t *records = json_object_get(body, "records");
    json_t *pid = json_object_get(body, "producer_id");
    json_t *seq = json_object_get(body, "sequence");
    if (!json_is_array(records) || json_array_size(records) == 0) {
        rq_http_reply_error(req, 400,
                            "'records' must be a list of 1 to %d "
                            "{value, key?, partition_id?} objects",
                            MAX_RECORDS);
        return;
    }
    if (json_array_size(records) > MAX_RECORDS) {
        rq_http_reply_error(req, 413,
                            "%zu records is over the limit of %d per request",
                            json_array_size(records), MAX_RECORDS);
        return;
    }
    if ((pid != NULL && !json_is_null(pid) &&
         (!json_is_integer(pid) || json_integer_value(pid) <= 0)) ||
        (seq != NULL && !json_is_null(seq) &&
         (!json_is_integer(seq) || json_integer_value(seq) < 0))) {
        rq_http_reply_error(req, 400,
                            "'producer_id' must be a producer id and "
                            "'sequence' a non-negative integer");
        return;
    }
    if (seq != NULL && !json_is_null(seq) &&
        (pid == NULL || json_is_null(pid))) {
        rq_http_reply_error(req, 400, "'sequence' needs a 'producer_id'");
        return;
    }
    if (!admit(m, req, &who, GRANT_TO_PRODUCE, topic, ANY_MANAGER) ||
        batch_now(m, req, topic, false)) {
        return;
    }
    struct read_req *rr = calloc(1, sizeof *rr);
    if (rr == NULL) {
        rq_http_reply_error(req, 500, "out of memory"); /* UNTESTED */
        return;
    }
    rr->m = m;
    snprintf(rr->topic, sizeof rr->topic, "%s", topic);
    mcore_hold(req, &rr->req);
    mcore_read(m, on_batch_read, rr);
}

/* ---- Record reads ---- */

struct records_read {
    struct rq_http_req *req; /* First: the held request. */
    struct mcore *m;
    char topic[MCMD_NAME_MAX + 1];
    uint32_t partition;
    uint64_t offset;
    uint32_t max;
    uint32_t wait_ms;
};

static void on_records(void *data, const struct bclient_result *r)
{
    struct records_read *op = data;
    if (op->req != NULL) {
        rq_http_on_abort(op->req, NULL, NULL);
        if (r->answer != NULL && json_is_object(r->answer)) {
            if (r->retry_after != NULL) {
                rq_http_set_header(op->req, "Retry-After", r->retry_after);
            }
            rq_http_reply(op->req, r->status, json_deep_copy(r->answer));
        } else {
            if (r->retry_after != NULL) {
                rq_http_set_header(op->req, "Retry-After", r->retry_after);
            }
            rq_http_reply_error(op->req, r->status, "%s", r->why);
        }
    }
    free(op);
}

/* Sends the read once the topic is known here; false if it is not. */
static bool records_now(struct records_read *op, struct rq_http_req *req,
                        bool last_try)
{
    struct mstore_partition *parts;
    size_t n;
    int rv = mstore_partitions(mcore_store(op->m), op->topic, &parts, &n);
    if (rv == RQ_NOTFOUND && !last_try) {
        return false;
    }
    if (rv == RQ_NOTFOUND) {
        rq_http_reply_error(req, 404, "no topic '%s'", op->topic);
        free(op);
        return true;
    }
    if (rv != 0) {
        qapi_reply_store_error(req, rv);
        free(op);
        return true;
    }
    if (op->partition >= n) {
        reply_partition_unknown(req, op->topic, op->partition, n);
        free(parts);
        free(op);
        return true;
    }
    rv = bclient_read(op->m, &parts[op->partition], op->offset, op->max,
                      op->wait_ms, on_records, op);
    free(parts);
    if (rv != 0) {
        mcore_unavailable(req, "cannot read now: %s", rq_strerror(rv));
        free(op);
        return true;
    }
    mcore_hold(req, &op->req);
    return true;
}

static void on_records_read(void *data, int status, const char *why)
{
    struct records_read *op = data;
    struct rq_http_req *req = op->req;
    if (req == NULL) {
        free(op);
        return;
    }
    rq_http_on_abort(req, NULL, NULL);
    op->req = NULL;
    if (status != 0) {
        mcore_unavailable(req, "%s", why);
        free(op);
        return;
    }
    records_now(op, req, true);
}

void qapi_records_read(struct rq_http_req *req, void *data)
{
    struct mcore *m = data;
    bool present;
    uint64_t offset = 0;
    uint64_t max = READ_DEFAULT_MAX;
    uint64_t wait_ms = 0;
    uint64_t p;
    struct auth who;

    if (!auth_public(m, req, &who, qapi_records_read) || !body_ok(req)) {
        return;
    }
    const char *topic = rq_http_param(req, "topic");
    if (topic == NULL || !mcmd_topic_valid(topic)) {
        rq_http_reply_error(req, 400,
                            "topic names are 1-%d characters of "
                            "[A-Za-z0-9._-]",
                            MCMD_NAME_MAX);
        return;
    }
    if (parse_u64(rq_http_param(req, "partition"), &p) != 0 ||
        p >= MCMD_MAX_PARTITIONS) {
        rq_http_reply_error(req, 400,
                            "the partition must be an integer from "
                            "0 to %d",
                            MCMD_MAX_PARTITIONS - 1);
        return;
    }
    if (arg_u64(req, "offset", &present, &offset) != 0) {
        rq_http_reply_error(req, 400,
                            "'offset' must be an integer from 0 to 2^53");
        return;
    }
    if (arg_u64(req, "max", &present, &max) != 0 || max == 0 ||
        max > READ_MAX) {
        rq_http_reply_error(req, 400, "'max' must be an integer from 1 to %d",
                            READ_MAX);
        return;
    }
    if (arg_u64(req, "wait_ms", &present, &wait_ms) != 0) {
        rq_http_reply_error(req, 400,
                            "'wait_ms' must be an integer from 0 to 2^53");
        return;
    }
    if (!admit(m, req, &who, GRANT_TO_CONSUME, topic, ANY_MANAGER)) {
        return;
    }
    struct records_read *op = calloc(1, sizeof *op);
    if (op == NULL) {
        rq_http_reply_error(req, 500, "out of memory"); /* UNTESTED */
        return;
    }
    op->m = m;
    snprintf(op->topic, sizeof op->topic, "%s", topic);
    op->partition = (uint32_t)p;
    op->offset = offset;
    op->max = (uint32_t)max;
    op->wait_ms = (uint32_t)(wait_ms > WAIT_MAX_MS ? WAIT_MAX_MS : wait_ms);
    if (records_now(op, req, false)) {
        return;
    }
    mcore_hold(req, &op->req);
    mcore_read(m, on_records_read, op);
}

/* ---- Consumer offsets ---- */

/* The {consumer} path segment; false after answering 400. */
static bool consumer_param(struct rq_http_req *req, uint64_t *id)
{
    if (parse_u64(rq_http_param(req, "consumer"), id) != 0) {
        rq_http_reply_error(req, 400, "the consumer id must be an integer");
        return false;
    }
    return true;
}

struct commit {
    struct rq_http_req *req;
};

static void on_offsets_committed(void *data, int status, uint64_t result)
{
    struct commit *op = data;
    struct rq_http_req *req = op->req;
    free(op);
    if (req == NULL) {
        return;
    }
    rq_http_on_abort(req, NULL, NULL);
    if (status != 0) {
        mcore_unavailable(req, "the offsets were not committed: %s; retry",
                          rq_strerror(status));
    } else if (MSTORE_IS_ERR(result)) {
        int code = MSTORE_ERR_CODE(result);
        rq_http_reply_error(req,
                            code == RQ_INVALID ? 404 : rq_err_http_status(code),
                            "the offsets were refused: %s", rq_strerror(code));
    } else {
        rq_http_reply(req, 200, NULL);
    }
}

void qapi_offsets_commit(struct rq_http_req *req, void *data)
{
    struct mcore *m = data;
    struct mstore_client cc;
    struct mstore_topic t;
    struct auth who;
    uint64_t id;
    char why[WHY_LEN];

    if (!auth_public(m, req, &who, qapi_offsets_commit) ||
        !consumer_param(req, &id)) {
        return;
    }
    json_t *body = rq_http_json(req, why, sizeof why);
    if (body == NULL) {
        rq_http_reply_error(req, 400, "%s", why);
        return;
    }
    json_t *list = json_object_get(body, "offsets");
    size_t n = json_array_size(list);
    if (!json_is_array(list) || n == 0 || n > MCMD_MAX_OFFSETS) {
        rq_http_reply_error(req, 400,
                            "'offsets' must be a list of 1 to %d "
                            "{partition_id, offset} objects",
                            MCMD_MAX_OFFSETS);
        return;
    }
    for (size_t i = 0; i < n; i++) {
        json_t *o = json_array_get(list, i);
        json_t *p = json_object_get(o, "partition_id");
        json_t *off = json_object_get(o, "offset");
        if (!json_is_integer(p) || !json_is_integer(off) ||
            json_integer_value(p) < 0 || json_integer_value(off) < 0) {
            rq_http_reply_error(req, 400,
                                "offsets[%zu] needs integer 'partition_id' "
                                "and 'offset'",
                                i);
            return;
        }
    }
    if (mcore_forward(m, req)) {
        return;
    }
    /* The consumer's topic, and so the grant, is known from the store
     * only: checked here, on the leader. */
    int rv = mstore_consumer(mcore_store(m), id, &cc);
    if (rv == RQ_NOTFOUND) {
        rq_http_reply_error(req, 404, "no consumer %" PRIu64, id);
        return;
    }
    if (rv == 0 && !auth_allow(req, &who, GRANT_TO_CONSUME, cc.topic)) {
        return;
    }
    if (rv == 0) {
        rv = mstore_topic(mcore_store(m), cc.topic, &t);
    }
    if (rv != 0) {
        qapi_reply_store_error(req, rv);
        return;
    }
    struct mcmd c = {.type = MCMD_OFFSET_COMMIT};
    c.u.offset_commit.consumer_id = id;
    c.u.offset_commit.cursor = cc.rr_cursor;
    c.u.offset_commit.n = (uint32_t)n;
    c.u.offset_commit.offsets = calloc(n, sizeof *c.u.offset_commit.offsets);
    if (c.u.offset_commit.offsets == NULL) {
        rq_http_reply_error(req, 500, "out of memory"); /* UNTESTED */
        return;
    }
    for (size_t i = 0; i < n; i++) {
        json_t *o = json_array_get(list, i);
        json_t *p = json_object_get(o, "partition_id");
        json_t *off = json_object_get(o, "offset");
        if ((uint64_t)json_integer_value(p) >= t.n_partitions) {
            mcmd_clear(&c);
            reply_partition_unknown(
                req, cc.topic, (uint32_t)json_integer_value(p), t.n_partitions);
            return;
        }
        c.u.offset_commit.offsets[i] = (struct mcmd_offset){
            .partition_id = (uint32_t)json_integer_value(p),
            .offset = (uint64_t)json_integer_value(off),
            .expected = MCMD_ANY,
        };
    }
    struct commit *op = calloc(1, sizeof *op);
    if (op == NULL) {
        mcmd_clear(&c); /* UNTESTED: ENOMEM only. */
        rq_http_reply_error(req, 500, "out of memory");
        return;
    }
    rv = mcore_propose(m, &c, on_offsets_committed, op);
    mcmd_clear(&c);
    if (rv != 0) {
        free(op);
        reply_not_proposed(req, rv);
        return;
    }
    mcore_hold(req, &op->req);
}

static void offsets_done(struct hw_fetch *f)
{
    json_t *list = json_array();
    for (size_t i = 0; i < f->n; i++) {
        uint64_t lag =
            f->hw[i] > f->committed[i] ? f->hw[i] - f->committed[i] : 0;
        json_array_append_new(
            list,
            json_pack("{s:i,s:I,s:I}", "partition_id",
                      (int)f->parts[i].partition_id, "offset",
                      (json_int_t)f->committed[i], "lag", (json_int_t)lag));
    }
    rq_http_reply(f->req, 200, json_pack("{s:o}", "offsets", list));
}

static void offsets_after_read(struct read_req *rr)
{
    struct mstore_client cc;
    struct mstore_partition *parts;
    uint64_t *committed;
    size_t n;
    struct auth who;
    int rv = mstore_consumer(mcore_store(rr->m), rr->id, &cc);
    if (rv == RQ_NOTFOUND) {
        rq_http_reply_error(rr->req, 404, "no consumer %" PRIu64, rr->id);
        return;
    }
    if (rv != 0) {
        qapi_reply_store_error(rr->req, rv);
        return;
    }
    /* The consumer's topic is known only now: its grant is checked here,
     * on the leader, with the token authenticated again as of the read. */
    if (!auth_public(rr->m, rr->req, &who, NULL) ||
        !auth_allow(rr->req, &who, GRANT_TO_CONSUME, cc.topic)) {
        return;
    }
    if (consumer_positions(rr->m, rr->req, rr->id, cc.topic, MCMD_NO_PARTITION,
                           &parts, &committed, &n) != 0) {
        return;
    }
    hw_fetch_start(rr->m, rr->req, parts, committed, n, offsets_done);
}

void qapi_offsets_list(struct rq_http_req *req, void *data)
{
    struct mcore *m = data;
    struct auth who;
    uint64_t id;
    if (!auth_public(m, req, &who, qapi_offsets_list) ||
        !consumer_param(req, &id) || mcore_forward(m, req)) {
        return;
    }
    after_read(m, req, offsets_after_read, NULL, id, MCMD_NO_PARTITION);
}

/* ---- Shutdown ---- */

void qapi_close(struct mcore *m)
{
    (void)m;
    struct consumers *cs = consumers;
    if (cs == NULL) {
        return;
    }
    /* Every request has ended with the loop; queues are empty. */
    rq_idmap_close(&cs->queues);
    rq_idmap_close(&cs->rr);
    free(cs);
    consumers = NULL;
}

/*
 * Topics and registration (see qapi_topics.h). A topic is created by a
 * proposal of its name and its partitions' replicas, placed over the live
 * brokers here on the leader (placement.h); reconcile then has the brokers
 * create the replicas. A producer that registers for a topic that does not
 * exist creates it first, then registers.
 */
#include "qapi_topics.h"

#include <stdio.h>
#include <stdlib.h>

#include "placement.h"
#include "qapi.h"
#include "reconcile.h"
#include "routing.h"
#include "rq_codes.h"
#include "rq_err.h"
#include "rq_log.h"

#define LOG_TAG "qapi"

/* ---- Creating a topic ---- */

/* Places @n new partitions over the ALIVE brokers. 0, PLACEMENT_NOBROKERS with
 * @why, or RQ_IO / RQ_NOMEM. *out is malloc'd. */
static int place(struct mcore *core, uint32_t n, uint32_t (**out)[MCMD_RF],
                 char *why, size_t whyn)
{
    struct mstore_broker *list;
    size_t nb;
    int rv = mstore_brokers(mcore_store(core), &list, &nb);
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
        if (rv == PLACEMENT_NOBROKERS) {
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
    struct rq_http_req *req; /* First: the held request. */
    struct mcore *core;
    char topic[MCMD_NAME_MAX + 1];
    uint32_t n_partitions;
    bool then_register; /* POST /producer/register of an absent topic. */
    uint32_t partition; /* The producer's, when registering. */
};

static void register_client(struct mcore *core, struct rq_http_req *req,
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
        reconcile_kick(mcore_modules(op->core)->reconcile);
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
        register_client(op->core, req, MCMD_PRODUCER_REGISTER, op->topic,
                        op->partition);
    } else if (code == RQ_EXISTS) {
        rq_http_reply_fail(req, 409, RQ_CODE_TOPIC_EXISTS,
                           "Topic '%s' already exists", op->topic);
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
static void create_topic(struct mcore *core, struct rq_http_req *req,
                         const char *topic, uint32_t n, bool then_register,
                         uint32_t partition)
{
    char why[QAPI_WHY];
    struct mcmd c = {.type = MCMD_TOPIC_CREATE};
    uint32_t(*replicas)[MCMD_RF];

    int rv = place(core, n, &replicas, why, sizeof why);
    if (rv == PLACEMENT_NOBROKERS) {
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
    struct create *op = rq_http_calloc(req, 1, sizeof *op);
    if (op == NULL) {
        mcmd_clear(&c); /* UNTESTED: ENOMEM only. */
        return;
    }
    op->core = core;
    snprintf(op->topic, sizeof op->topic, "%s", topic);
    op->n_partitions = n;
    op->then_register = then_register;
    op->partition = partition;
    qapi_propose(core, req, &c, on_topic_created, op, &op->req);
}

void qapi_topics_create(struct rq_http_req *req, void *data)
{
    struct mcore *core = data;
    struct mstore_topic t;
    struct auth who;
    bool present;
    uint64_t n = mcore_config(core)->default_partitions;

    if (!auth_public(core, req, &who, qapi_topics_create) ||
        !qapi_body_ok(req)) {
        return;
    }
    bool given = rq_http_query(req, "topic_name") != NULL ||
                 qapi_body_value(req, "topic_name") != NULL;
    bool alias = rq_http_query(req, "name") != NULL ||
                 qapi_body_value(req, "name") != NULL;
    const char *topic =
        qapi_topic_arg(req, given || !alias ? "topic_name" : "name");
    if (topic == NULL) {
        return;
    }
    if (qapi_arg_u64(req, "number_of_partitions", &present, &n) != 0 ||
        (present && (n < 1 || n > MCMD_MAX_PARTITIONS))) {
        rq_http_reply_error(req, 400,
                            "'number_of_partitions' must be an integer from "
                            "1 to %d",
                            MCMD_MAX_PARTITIONS);
        return;
    }
    if (!qapi_admit(core, req, &who, GRANT_TO_PRODUCE, topic, QAPI_AT_LEADER)) {
        return;
    }
    int rv = mstore_topic(mcore_store(core), topic, &t);
    if (rv == 0) {
        rq_http_reply_fail(req, 409, RQ_CODE_TOPIC_EXISTS,
                           "Topic '%s' already exists", topic);
        return;
    }
    if (rv != RQ_NOTFOUND) {
        qapi_reply_store_error(req, rv);
        return;
    }
    create_topic(core, req, topic, (uint32_t)n, false, MCMD_NO_PARTITION);
}

/* ---- Listing topics and partitions ---- */

static bool topics_list(struct mcore *core, struct rq_http_req *req, void *arg,
                        bool last_try)
{
    struct mstore_topic *list;
    struct auth who;
    size_t n;
    (void)arg;
    (void)last_try;
    /* Authenticated on arrival; again now, for the grants as of the
     * read (a revocation applied meanwhile counts). */
    if (!auth_public(core, req, &who, NULL)) {
        return true;
    }
    int rv = mstore_topics(mcore_store(core), &list, &n);
    if (rv != 0) {
        qapi_reply_store_error(req, rv);
        return true;
    }
    json_t *names = json_array();
    for (size_t i = 0; i < n; i++) {
        if (auth_sees(&who, list[i].name)) {
            json_array_append_new(names, json_string(list[i].name));
        }
    }
    free(list);
    rq_http_reply(req, 200, json_pack("{s:o}", "topics", names));
    return true;
}

void qapi_topics_list(struct rq_http_req *req, void *data)
{
    struct auth who;
    if (auth_public(data, req, &who, qapi_topics_list)) {
        qapi_serve_read(data, req, topics_list, NULL, 0);
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

/* @arg: the topic's name (const char *), borrowed from @req. */
static bool topics_partitions(struct mcore *core, struct rq_http_req *req,
                              void *arg, bool last_try)
{
    const char *topic = *(const char **)arg;
    struct mstore_partition *parts;
    size_t n;
    (void)last_try;
    int rv = mstore_partitions(mcore_store(core), topic, &parts, &n);
    if (qapi_reply_topic_lookup(req, rv, topic)) {
        return true;
    }
    json_t *list = json_array();
    for (size_t i = 0; i < n; i++) {
        const struct route *r =
            routing_get(mcore_routing(core), parts[i].group_id);
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
    rq_http_reply(req, 200,
                  json_pack("{s:s,s:o}", "topic", topic, "partitions", list));
    return true;
}

void qapi_topics_partitions(struct rq_http_req *req, void *data)
{
    struct mcore *core = data;
    struct auth who;
    if (!auth_public(core, req, &who, qapi_topics_partitions) ||
        !qapi_body_ok(req)) {
        return;
    }
    const char *topic = qapi_topic_arg(req, "topic");
    if (topic != NULL &&
        qapi_admit(core, req, &who, GRANT_TO_SEE, topic, QAPI_AT_LEADER)) {
        qapi_serve_read(core, req, topics_partitions, &topic, sizeof topic);
    }
}

/* ---- Registration ---- */

struct reg {
    struct rq_http_req *req; /* First: the held request. */
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
        int http = code == RQ_INVALID ? 404 : rq_err_http_status(code);
        rq_http_reply_fail(req, http,
                           code == RQ_NOTFOUND  ? RQ_CODE_TOPIC_NOT_FOUND
                           : code == RQ_INVALID ? RQ_CODE_PARTITION_NOT_FOUND
                                                : rq_codes_of_status(http),
                           code == RQ_NOTFOUND ? "the topic does not exist"
                           : code == RQ_INVALID
                               ? "the topic has no such partition"
                               : "the registration was refused: %s",
                           rq_strerror(code));
    } else {
        rq_http_reply(req, 200,
                      json_pack("{s:I}", what, (json_int_t)MSTORE_OK(result)));
    }
}

static void register_client(struct mcore *core, struct rq_http_req *req,
                            enum mcmd_type type, const char *topic,
                            uint32_t partition)
{
    struct mcmd c = {.type = type};
    snprintf(c.u.client_register.topic, sizeof c.u.client_register.topic, "%s",
             topic);
    c.u.client_register.partition_id = partition;
    struct reg *op = rq_http_calloc(req, 1, sizeof *op);
    if (op == NULL) {
        return; /* UNTESTED: ENOMEM only. */
    }
    op->type = type;
    qapi_propose(core, req, &c, on_registered, op, &op->req);
}

static void client_register(struct rq_http_req *req, struct mcore *core,
                            enum mcmd_type type, rq_http_handler again)
{
    struct mstore_topic t;
    struct auth who;
    uint32_t partition;

    if (!auth_public(core, req, &who, again) || !qapi_body_ok(req)) {
        return;
    }
    const char *topic = qapi_topic_arg(req, "topic");
    if (topic == NULL || !qapi_partition_arg(req, &partition) ||
        !qapi_admit(core, req, &who,
                    type == MCMD_PRODUCER_REGISTER ? GRANT_TO_PRODUCE
                                                   : GRANT_TO_CONSUME,
                    topic, QAPI_AT_LEADER)) {
        return;
    }
    int rv = mstore_topic(mcore_store(core), topic, &t);
    if (rv == RQ_NOTFOUND && type == MCMD_PRODUCER_REGISTER) {
        uint32_t n = (uint32_t)mcore_config(core)->default_partitions;
        if (partition != MCMD_NO_PARTITION && partition >= n) {
            qapi_reply_partition_unknown(req, topic, partition, n);
            return;
        }
        create_topic(core, req, topic, n, true, partition);
        return;
    }
    if (rv == RQ_NOTFOUND) {
        rq_http_reply_fail(req, 404, RQ_CODE_TOPIC_NOT_FOUND,
                           "no topic '%s'; create it first (POST /topics)",
                           topic);
        return;
    }
    if (rv != 0) {
        qapi_reply_store_error(req, rv);
        return;
    }
    if (partition != MCMD_NO_PARTITION && partition >= t.n_partitions) {
        qapi_reply_partition_unknown(req, topic, partition, t.n_partitions);
        return;
    }
    register_client(core, req, type, topic, partition);
}

void qapi_producer_register(struct rq_http_req *req, void *data)
{
    client_register(req, data, MCMD_PRODUCER_REGISTER, qapi_producer_register);
}

void qapi_consumer_register(struct rq_http_req *req, void *data)
{
    client_register(req, data, MCMD_CONSUMER_REGISTER, qapi_consumer_register);
}

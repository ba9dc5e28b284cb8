/*
 * Size, record reads and reading offsets (see qapi_read.h).
 *
 * GET /size and GET /v1/consumers/{id}/offsets both need each partition's
 * high watermark as of now: a hw_fetch asks a replica of every partition
 * at once (a read of one record at the consumer's offset answers it),
 * keeping the routing cache's value where no broker answers. A record read
 * is passed to the partition's leader broker, which answers in the binary
 * form (shared/rq_reads.h); that goes back as it came to a client that
 * accepts it, and as JSON written from it to any other, so the manager
 * never parses the records.
 */
#include "qapi_read.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>

#include "bclient.h"
#include "qapi.h"
#include "routing.h"
#include "rq_codes.h"
#include "rq_err.h"
#include "rq_reads.h"
#include "rq_record.h"

#define READ_DEFAULT_MAX 100
#define READ_MAX 10000
#define WAIT_MAX_MS 60000

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
    struct mcore *core;
    struct mstore_partition *parts;
    uint64_t *committed; /* By index into parts. */
    uint64_t *hw;
    struct hw_slot *slots;
    size_t n;
    size_t pending;
    hw_done_cb done;
    /* qapi_hw_fetch's caller: its callback and argument (freed here). */
    qapi_hw_cb public_done;
    void *arg;
};

static void hw_free(struct hw_fetch *f)
{
    free(f->parts);
    free(f->committed);
    free(f->hw);
    free(f->slots);
    free(f->arg);
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
static void hw_fetch_start(struct mcore *core, struct rq_http_req *req,
                           struct mstore_partition *parts, uint64_t *committed,
                           size_t n, hw_done_cb done, qapi_hw_cb public_done,
                           void *arg)
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
        free(arg);
        rq_http_reply_error(req, 500, "out of memory");
        return;
    }
    *f = (struct hw_fetch){
        .public_done = public_done,
        .arg = arg,
        .core = core,
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
            routing_get(mcore_routing(core), parts[i].group_id);
        f->hw[i] = r != NULL ? r->high_watermark : 0;
        f->slots[i] = (struct hw_slot){.f = f, .i = i};
        f->pending++;
        if (bclient_read(core, &parts[i], committed[i], 1, 0, on_hw,
                         &f->slots[i]) != 0) {
            f->pending--;
        }
    }
    if (--f->pending == 0) {
        hw_finish(f);
    }
}

static void hw_public_done(struct hw_fetch *f)
{
    f->public_done(f->req, f->arg, f->parts, f->committed, f->hw, f->n);
}

void qapi_hw_fetch(struct mcore *core, struct rq_http_req *req,
                   struct mstore_partition *parts, uint64_t *committed,
                   size_t n, qapi_hw_cb done, void *arg)
{
    hw_fetch_start(core, req, parts, committed, n, hw_public_done, done, arg);
}

/* Fetches the high watermarks of @topic's partitions (only @only unless
 * MCMD_NO_PARTITION) with the consumer's committed offsets, then @done
 * answers; answers itself on failure. */
static void positions_fetch(struct mcore *core, struct rq_http_req *req,
                            uint64_t consumer_id, const char *topic,
                            uint32_t only, hw_done_cb done)
{
    struct mstore_offset *offs;
    size_t n_offs;
    size_t np;
    struct mstore_partition *all;

    int rv = mstore_partitions(mcore_store(core), topic, &all, &np);
    if (qapi_reply_topic_lookup(req, rv, topic)) {
        return;
    }
    if (only != MCMD_NO_PARTITION && only >= np) {
        qapi_reply_partition_unknown(req, topic, only, np);
        free(all);
        return;
    }
    rv = mstore_offsets(mcore_store(core), consumer_id, &offs, &n_offs);
    if (rv != 0) {
        free(all);
        qapi_reply_store_error(req, rv);
        return;
    }
    uint64_t *c = calloc(np + 1, sizeof *c);
    if (c == NULL) {
        free(all); /* UNTESTED: ENOMEM only. */
        free(offs);
        rq_http_reply_error(req, 500, "out of memory");
        return;
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
    hw_fetch_start(core, req, all, c, np, done, NULL, NULL);
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

/* GET /size's arguments; the topic is borrowed from the request. */
struct size_args {
    const char *topic;
    uint64_t consumer_id;
    uint32_t partition;
};

static bool size_after_read(struct mcore *core, struct rq_http_req *req,
                            void *arg, bool last_try)
{
    const struct size_args *a = arg;
    struct mstore_client cc;
    (void)last_try;
    if (qapi_client_for_topic(core, req, false, a->consumer_id, a->topic,
                              &cc) != 0) {
        return true;
    }
    /* A consumer bound to a partition reads only that one. */
    uint32_t only =
        cc.partition_id != MCMD_NO_PARTITION ? cc.partition_id : a->partition;
    positions_fetch(core, req, a->consumer_id, a->topic, only, size_done);
    return true;
}

void qapi_size(struct rq_http_req *req, void *data)
{
    struct mcore *core = data;
    struct mstore_client cc;
    struct size_args a;

    a.topic = qapi_consumer_args(core, req, &a.consumer_id, &a.partition, &cc,
                                 qapi_size);
    if (a.topic != NULL) {
        qapi_serve_read(core, req, size_after_read, &a, sizeof a);
    }
}

/* ---- Record reads ---- */

struct records_op {
    struct rq_http_req *req; /* First: the held request. */
    bool binary;             /* The client accepts the binary form. */
};

/* Answers a binary read answer (checked by bclient) in the form the
 * client asked for: as it came, or as JSON written from its records. */
static void reply_head(struct rq_http_req *req, bool binary,
                       const struct bclient_result *r)
{
    if (binary) {
        /* The very bytes libcurl received, handed to the reply. */
        char *own = r->resp != NULL ? rq_httpc_take_body(r->resp) : NULL;
        if (own != NULL) {
            rq_http_reply_owned(req, 200, RQ_RECORD_BODY_TYPE, own,
                                r->body_len);
        } else {
            /* UNTESTED: a checked binary answer always has its body. */
            rq_http_reply_text(req, 200, RQ_RECORD_BODY_TYPE, r->body,
                               r->body_len);
        }
        return;
    }
    struct rq_buf out;
    rq_buf_init(&out);
    int rv = rq_reads_json_put(&out, r->head,
                               (const uint8_t *)r->body + RQ_READS_HEAD,
                               r->body_len - RQ_READS_HEAD);
    rq_buf_put_bytes(&out, "}", 1);
    if (rv != 0 || out.err != 0) {
        rq_buf_close(&out);
        rq_http_reply_error(req, 500, "the broker's records are not text: %s",
                            rq_strerror(rv != 0 ? rv : out.err));
        return;
    }
    /* The buffer goes to the reply, which frees it. */
    rq_http_reply_owned(req, 200, "application/json", out.base, out.len);
}

static void on_records(void *data, const struct bclient_result *r)
{
    struct records_op *op = data;
    if (op->req != NULL) {
        rq_http_on_abort(op->req, NULL, NULL);
        if (r->retry_after != NULL) {
            rq_http_set_header(op->req, "Retry-After", r->retry_after);
        }
        if (r->head != NULL) {
            reply_head(op->req, op->binary, r);
        } else if (r->answer != NULL && json_is_object(r->answer) &&
                   json_is_string(json_object_get(r->answer, "status"))) {
            /* The broker's answer as it came: a copy and a new encoding of
             * up to 10,000 records would give the same bytes. */
            rq_http_reply_text(op->req, r->status, "application/json", r->body,
                               r->body_len);
        } else if (r->answer != NULL && json_is_object(r->answer)) {
            rq_http_reply(op->req, r->status, json_deep_copy(r->answer));
        } else {
            rq_http_reply_error(op->req, r->status, "%s", r->why);
        }
    }
    free(op);
}

/* A record read's arguments; the topic is borrowed from the request. */
struct records_args {
    const char *topic;
    uint32_t partition;
    uint64_t offset;
    uint32_t max;
    uint32_t wait_ms;
};

/* Sends the read once the topic is known here (qapi_serve_fn); false if
 * it is not. */
static bool records_now(struct mcore *core, struct rq_http_req *req, void *arg,
                        bool last_try)
{
    const struct records_args *a = arg;
    struct mstore_partition *parts;
    size_t n;
    int rv = mstore_partitions(mcore_store(core), a->topic, &parts, &n);
    if (rv == RQ_NOTFOUND && !last_try) {
        return false;
    }
    if (qapi_reply_topic_lookup(req, rv, a->topic)) {
        return true;
    }
    if (a->partition >= n) {
        qapi_reply_partition_unknown(req, a->topic, a->partition, n);
        free(parts);
        return true;
    }
    struct records_op *op = rq_http_calloc(req, 1, sizeof *op);
    if (op == NULL) {
        free(parts); /* UNTESTED: ENOMEM only. */
        return true;
    }
    /* The broker's binary answer whatever the client's form: the
     * manager then parses nothing, and writes JSON itself for a JSON
     * client. */
    op->binary = rq_reads_accepts_binary(rq_http_header(req, "Accept"));
    rv = bclient_read_binary(core, &parts[a->partition], a->offset, a->max,
                             a->wait_ms, on_records, op);
    free(parts);
    if (rv != 0) {
        mcore_unavailable(req, "cannot read now: %s", rq_strerror(rv));
        free(op);
        return true;
    }
    mcore_hold(req, &op->req);
    return true;
}

void qapi_records_read(struct rq_http_req *req, void *data)
{
    struct mcore *core = data;
    bool present;
    uint64_t offset = 0;
    uint64_t max = READ_DEFAULT_MAX;
    uint64_t wait_ms = 0;
    uint64_t p;
    struct auth who;

    if (!auth_public(core, req, &who, qapi_records_read) ||
        !qapi_body_ok(req)) {
        return;
    }
    const char *topic = qapi_topic_param(req);
    if (topic == NULL) {
        return;
    }
    if (qapi_parse_u64(rq_http_param(req, "partition"), &p) != 0 ||
        p >= MCMD_MAX_PARTITIONS) {
        rq_http_reply_error(req, 400,
                            "the partition must be an integer from "
                            "0 to %d",
                            MCMD_MAX_PARTITIONS - 1);
        return;
    }
    if (qapi_arg_u64(req, "offset", &present, &offset) != 0) {
        rq_http_reply_error(req, 400,
                            "'offset' must be an integer from 0 to 2^53");
        return;
    }
    if (qapi_arg_u64(req, "max", &present, &max) != 0 || max == 0 ||
        max > READ_MAX) {
        rq_http_reply_error(req, 400, "'max' must be an integer from 1 to %d",
                            READ_MAX);
        return;
    }
    if (qapi_arg_u64(req, "wait_ms", &present, &wait_ms) != 0) {
        rq_http_reply_error(req, 400,
                            "'wait_ms' must be an integer from 0 to 2^53");
        return;
    }
    if (!qapi_admit(core, req, &who, GRANT_TO_CONSUME, topic,
                    QAPI_ANY_MANAGER)) {
        return;
    }
    struct records_args a = {
        .topic = topic,
        .partition = (uint32_t)p,
        .offset = offset,
        .max = (uint32_t)max,
        .wait_ms = (uint32_t)(wait_ms > WAIT_MAX_MS ? WAIT_MAX_MS : wait_ms),
    };
    qapi_serve(core, req, records_now, &a, sizeof a);
}

/* ---- Reading offsets ---- */

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
    json_t *body = json_pack("{s:o}", "offsets", list);
    if (f->n > 0) {
        json_object_set_new(body, "topic", json_string(f->parts[0].topic));
    }
    rq_http_reply(f->req, 200, body);
}

/* @arg: the consumer's id (uint64_t). */
static bool offsets_after_read(struct mcore *core, struct rq_http_req *req,
                               void *arg, bool last_try)
{
    uint64_t id = *(const uint64_t *)arg;
    struct mstore_client cc;
    struct auth who;
    (void)last_try;
    int rv = mstore_consumer(mcore_store(core), id, &cc);
    if (rv == RQ_NOTFOUND) {
        rq_http_reply_fail(req, 404, RQ_CODE_CONSUMER_NOT_FOUND,
                           "no consumer %" PRIu64, id);
        return true;
    }
    if (rv != 0) {
        qapi_reply_store_error(req, rv);
        return true;
    }
    /* The consumer's topic is known only now: its grant is checked here,
     * on the leader, with the token authenticated again as of the read. */
    if (!auth_public(core, req, &who, NULL) ||
        !auth_allow(req, &who, GRANT_TO_CONSUME, cc.topic)) {
        return true;
    }
    positions_fetch(core, req, id, cc.topic, MCMD_NO_PARTITION, offsets_done);
    return true;
}

void qapi_offsets_list(struct rq_http_req *req, void *data)
{
    struct mcore *core = data;
    struct auth who;
    uint64_t id;
    if (auth_public(core, req, &who, qapi_offsets_list) &&
        qapi_consumer_param(req, &id) && !mcore_forward(core, req)) {
        qapi_serve_read(core, req, offsets_after_read, &id, sizeof id);
    }
}

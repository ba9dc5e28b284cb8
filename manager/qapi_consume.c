/*
 * Consume and committing offsets (see qapi_consume.h), both on the leader.
 *
 * A consume reads the committed offset of each partition it may visit (a
 * bound consumer visits one, any other starts at its round-robin cursor),
 * asks the partition's leader broker for one record there, and proposes
 * the offset's advance as a compare-and-set on the offset it read: the
 * answer is given once the advance is applied. Consumes of one consumer
 * run one at a time, in arrival order (a queue per consumer), so each
 * reads the offset the previous committed; a stale leader's advance fails
 * its check, so no message is delivered twice. A lost check reads the
 * state again, up to CAS_RETRIES times.
 *
 * Consumes that wait behind the running one for the same partition (a
 * bound consumer, or a topic of one partition) ride along with it: the
 * running one reads as many records as there are consumes (up to
 * CONSUME_BATCH), gives one to itself and one to each rider in queue
 * order, and proposes one advance past all of them; each is answered once
 * that advance is applied, as it would have been alone. A rider whose
 * client has gone by then ends the ride (it and those behind it wait for
 * their own turn), so no advance is proposed for a client that has gone.
 *
 * A consume of one partition reads a batch ahead (readahead.h): what the
 * read brought beyond the consumes it served is kept for the consumer,
 * and the next consumes at those offsets take their records from there
 * and propose their advances without a broker call.
 */
#include "qapi_consume.h"

#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "bclient.h"
#include "mmetrics.h"
#include "qapi.h"
#include "rq_codes.h"
#include "rq_err.h"
#include "rq_list.h"
#include "rq_log.h"

#define LOG_TAG "qapi"

#define CAS_RETRIES 5
/* Consumes served by one read and one advance, at most. */
#define CONSUME_BATCH 64
/* Advances of one consumer in flight at once, at most (a pipeline). */
#define CONSUME_PIPELINE 8

/* ---- Consume ---- */

struct consume {
    struct rq_http_req *req; /* First: the held request. */
    struct mcore *core;
    struct rq_list link; /* In its consumer's queue. */
    bool running;
    bool proposed;    /* Its advance (or its head's) is in flight. */
    const char *code; /* Of its failure, when not its status's (rq_codes.h). */
    uint64_t consumer_id;
    char topic[MCMD_NAME_MAX + 1];
    uint32_t given; /* Partition asked for, or MCMD_NO_PARTITION. */
    /* The wall-clock time past which its advance is not proposed, or 0
     * (mcore_consume_deadline). */
    uint64_t deadline;

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
    char why[QAPI_WHY];

    uint64_t msg_offset;
    char *message;
    /* The advance is proposed and not known to have committed or lost (in
     * flight, or failed with leadership lost): a failure answer then says
     * the offset may have moved. */
    bool in_doubt;
    /* The consumes riding with this one (the running one), in queue
     * order, each with its message and msg_offset. */
    struct consume *riders[CONSUME_BATCH - 1];
    size_t n_riders;
};

static void consume_start(struct consume *op);

/* A consumer's consume requests, in arrival order (qapi.h's queues). */
struct cqueue {
    uint64_t consumer_id;
    struct rq_list ops; /* struct consume; the head runs. */
    bool pumping;
    /* The advances proposed and not yet applied, and where the last of
     * them takes the offset: a consume that starts meanwhile reads from
     * there, and its advance checks against it. */
    unsigned in_flight;
    uint32_t flight_partition;
    uint64_t flight_next;
    bool chain_broken; /* One of them failed: read the store again. */
    bool serial;       /* Its consumes visit several partitions. */
};

/* Consumer @id's queue; with @make, a new one if it has none. */
static struct cqueue *cqueue_get(uint64_t id, bool make)
{
    struct rq_idmap *queues = &qapi_state()->queues;
    struct cqueue *q = rq_idmap_get(queues, id);
    if (q != NULL || !make) {
        return q;
    }
    q = calloc(1, sizeof *q);
    if (q == NULL) {
        return NULL; /* UNTESTED: ENOMEM only. */
    }
    q->consumer_id = id;
    rq_list_init(&q->ops);
    if (rq_idmap_put(queues, id, q) != 0) {
        free(q); /* UNTESTED: ENOMEM only. */
        return NULL;
    }
    return q;
}

/* Whether the next consume may start now, @q having advances in flight. */
static bool may_start(const struct cqueue *q)
{
    return q->in_flight == 0 ||
           (q->in_flight < CONSUME_PIPELINE && !q->chain_broken && !q->serial);
}

/*
 * Starts the consumer's next requests: in arrival order, each once those
 * ahead of it have proposed their advances (a consume that has not stops
 * the walk), as long as the pipeline has room.
 */
static void pump(uint64_t id)
{
    struct cqueue *q = cqueue_get(id, false);
    if (q == NULL || q->pumping) {
        return;
    }
    q->pumping = true;
    bool again = true;
    while (again) {
        again = false;
        for (struct rq_list *l = q->ops.next; l != &q->ops; l = l->next) {
            struct consume *op = RQ_LIST_ENTRY(l, struct consume, link);
            if (op->running) {
                if (op->proposed) {
                    continue;
                }
                break;
            }
            if (!may_start(q)) {
                break;
            }
            op->running = true;
            /* It may end at once, and others with it: walk again. */
            consume_start(op);
            again = true;
            break;
        }
    }
    q->pumping = false;
    if (rq_list_empty(&q->ops)) {
        rq_idmap_del(&qapi_state()->queues, id);
        free(q);
    }
}

/* Drops what @op's start read and found, so it waits to start again. */
static void consume_unstart(struct consume *op)
{
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
    op->running = false;
}

static void consume_free(struct consume *op)
{
    consume_unstart(op);
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
    if (op->code != NULL) {
        json_object_set_new(body, "code", json_string(op->code));
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

/* The consume after @op in its consumer's queue, or NULL. */
static struct consume *after(const struct consume *op)
{
    struct cqueue *q = cqueue_get(op->consumer_id, false);
    if (q == NULL || op->link.next == &q->ops) {
        return NULL;
    }
    return RQ_LIST_ENTRY(op->link.next, struct consume, link);
}

/* Whether @next, waiting behind @op, may ride with it: the same target,
 * a client still waiting, one partition to visit. */
static bool may_ride(const struct consume *op, const struct consume *next)
{
    return next != NULL && !next->running && next->req != NULL &&
           op->n_order == 1 && next->given == op->given &&
           strcmp(next->topic, op->topic) == 0;
}

/* How many consumes may ride with @op now. */
static size_t rider_room(const struct consume *op)
{
    size_t n = 0;
    for (const struct consume *c = after(op);
         n < CONSUME_BATCH - 1 && may_ride(op, c); c = after(c)) {
        n++;
    }
    return n;
}

/* Ends the ride of @op's riders from the @from-th on: they wait for their
 * own turn again. */
static void riders_release_from(struct consume *op, size_t from)
{
    for (size_t i = from; i < op->n_riders; i++) {
        struct consume *r = op->riders[i];
        consume_unstart(r);
        r->proposed = false;
        r->in_doubt = false;
    }
    op->n_riders = from;
}

static void riders_release(struct consume *op)
{
    riders_release_from(op, 0);
}

/* Ends @op's riders with @status and @msg (a failure of the advance they
 * share), each as consume_fail() says. */
static void riders_fail(struct consume *op, int status, const char *msg)
{
    for (size_t i = 0; i < op->n_riders; i++) {
        struct consume *r = op->riders[i];
        if (r->req != NULL) {
            rq_http_on_abort(r->req, NULL, NULL);
            consume_fail(r, status, msg);
        }
        rq_list_remove(&r->link);
        consume_free(r);
    }
    op->n_riders = 0;
}

/* Ends @op (its answer already given, or @status/@fmt now) and starts the
 * consumer's next request. */
static void consume_end(struct consume *op, int status, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

static void consume_end(struct consume *op, int status, const char *fmt, ...)
{
    uint64_t id = op->consumer_id;
    riders_release(op); /* Those not answered wait for their own turn. */
    if (op->req != NULL && status != 0) {
        char msg[QAPI_WHY * 2];
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(msg, sizeof msg, fmt, ap);
        va_end(ap);
        rq_http_on_abort(op->req, NULL, NULL);
        consume_fail(op, status, msg);
    }
    rq_list_remove(&op->link);
    consume_free(op);
    pump(id);
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

/* Whether @op's deadline (mcore_consume_deadline) has passed. */
static bool consume_late(const struct consume *op)
{
    return op->deadline != 0 && mcore_wall_ms() >= op->deadline;
}

/*
 * Whether @op's client has gone, or its deadline has passed; then it ends
 * @op, without an answer or with a 503 that says no message was consumed.
 * A consume asks this before each read and before it proposes the advance
 * (API.md section 1: the advance is not proposed for a client that has
 * already gone). Once proposed, nothing can call the advance back.
 */
static bool consume_abandoned(struct consume *op, bool record_read)
{
    /* Before the advance, the socket itself is asked: a client that gave
     * up while its request was held back may have its close arrive with
     * the request, and a record read ahead is proposed in that very turn
     * (rq_http_client_gone runs on_consume_abort, which drops op->req). */
    if (op->req != NULL && record_read) {
        rq_http_client_gone(op->req);
    }
    if (op->req != NULL && !consume_late(op)) {
        return false;
    }
    if (record_read) {
        rq_log(RQ_INFO,
               "consumer %" PRIu64 ": %s before %s/%u offset %" PRIu64
               " was delivered; the offset stays",
               op->consumer_id,
               op->req == NULL ? "the client left"
                               : "the forwarding manager's deadline passed",
               op->topic, op->order[op->idx], op->msg_offset);
    }
    consume_end(op, 503, "%s",
                "the consume reached the leader too late: the manager that "
                "forwarded it has stopped waiting for it, so no message was "
                "consumed; retry");
    return true;
}

static void consume_next(struct consume *op);

/* @op's advance has applied, or failed (@ok false): the pipeline has
 * room again, and after a failure later consumes read the store. */
static void flight_end(struct consume *op, bool ok)
{
    struct cqueue *q = cqueue_get(op->consumer_id, false);
    if (!op->proposed || q == NULL) {
        return; /* Not counted: a consume over several partitions. */
    }
    op->proposed = false;
    q->in_flight--;
    q->chain_broken = q->in_flight > 0 && (q->chain_broken || !ok);
    if (q->in_flight == 0) {
        q->serial = false; /* Found out again by the next consume. */
    }
}

static void on_advanced(void *data, int status, uint64_t result)
{
    struct consume *op = data;
    uint32_t p = op->order[op->idx];
    flight_end(op, status == 0 && !MSTORE_IS_ERR(result));
    if (status != 0) {
        /* Proposed and then leadership was lost (or the manager closed):
         * the entry may still commit under the next leader (in_doubt
         * stays). */
        riders_fail(op, 503,
                    "this manager lost leadership before the offset advance "
                    "was known to commit: the message may have been "
                    "consumed and not delivered; retry");
        consume_end(op, 503,
                    "this manager lost leadership before the offset advance "
                    "was known to commit (%s): the message may have been "
                    "consumed and not delivered; retry",
                    rq_strerror(status));
        return;
    }
    op->in_doubt = false; /* Applied: committed, or refused by its check. */
    if (MSTORE_IS_ERR(result)) {
        riders_release(op);
        int code = MSTORE_ERR_CODE(result);
        if (code == RQ_INVALID && ++op->cas_lost < CAS_RETRIES &&
            !mcore_closing(op->core)) {
            /* The offset moved (an offset commit, or an older leader):
             * read the state again and start over, in turn: once the
             * advances in flight behind it (which fail their checks too)
             * have ended, so that the consumes starting over do not race
             * each other for the same offset. */
            consume_unstart(op);
            pump(op->consumer_id);
            return;
        }
        consume_end(op, code == RQ_NOTFOUND ? 404 : 503,
                    code == RQ_NOTFOUND
                        ? "the consumer or its topic no longer exists"
                        : "the consumer's offset kept moving; retry");
        return;
    }
    mcore_stats(op->core)->consumed += 1 + op->n_riders;
    json_t *skipped = NULL;
    if (op->msg_offset > op->offset) {
        /* Retention removed what this consumer had not read. */
        mmetrics_consume_skipped(mcore_modules(op->core)->mmetrics, op->topic,
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
    for (size_t i = 0; i < op->n_riders; i++) {
        struct consume *r = op->riders[i];
        if (r->req != NULL) {
            rq_http_on_abort(r->req, NULL, NULL);
            rq_http_reply(r->req, 200,
                          json_pack("{s:s,s:i,s:I}", "message", r->message,
                                    "partition_id", (int)p, "offset",
                                    (json_int_t)r->msg_offset));
        }
        rq_list_remove(&r->link);
        consume_free(r);
    }
    op->n_riders = 0;
    consume_end(op, 0, "%s", "");
}

static void propose_advance(struct consume *op)
{
    if (consume_abandoned(op, true)) {
        return;
    }
    uint32_t p = op->order[op->idx];
    /* A rider whose client has gone, or whose deadline has passed, ends
     * the ride there. */
    for (size_t i = 0; i < op->n_riders; i++) {
        struct consume *r = op->riders[i];
        if (r->req == NULL || rq_http_client_gone(r->req) || consume_late(r)) {
            riders_release_from(op, i);
            break;
        }
    }
    uint64_t last = op->n_riders > 0 ? op->riders[op->n_riders - 1]->msg_offset
                                     : op->msg_offset;
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
        .offset = last + 1,
        .expected = op->offset,
    };
    int rv = mcore_propose(op->core, &c, on_advanced, op);
    mcmd_clear(&c);
    if (rv != 0) {
        riders_release(op);
        consume_end(op, 503,
                    "this manager cannot commit the offset now (%s), so no "
                    "message was consumed; retry",
                    rq_strerror(rv));
        return;
    }
    op->in_doubt = true;
    mcore_stats(op->core)->consume_advances++;
    for (size_t i = 0; i < op->n_riders; i++) {
        op->riders[i]->in_doubt = true;
        op->riders[i]->proposed = true;
    }
    struct cqueue *q = cqueue_get(op->consumer_id, false);
    if (q != NULL && op->n_order == 1) {
        /* The next consumes may start: they read from where this advance
         * takes the offset, and check against it. */
        op->proposed = true;
        q->in_flight++;
        q->flight_partition = p;
        q->flight_next = last + 1;
        pump(op->consumer_id);
    }
}

/* Hands the records after the first of @recs (read for @op) to the
 * consumes waiting behind it that may ride, one each, in order. */
static void riders_take(struct consume *op, const json_t *recs)
{
    struct consume *next = after(op);
    uint64_t expect = op->msg_offset + 1;
    for (size_t i = 1; i < json_array_size(recs) &&
                       op->n_riders < CONSUME_BATCH - 1 && may_ride(op, next);
         i++) {
        const json_t *rec = json_array_get(recs, i);
        const json_t *off = json_object_get(rec, "offset");
        const json_t *val = json_object_get(rec, "value");
        if (!json_is_integer(off) || !json_is_string(val) ||
            (uint64_t)json_integer_value(off) != expect) {
            break; /* Only records that follow on without a gap. */
        }
        expect++;
        next->message = strdup(json_string_value(val));
        if (next->message == NULL) {
            break; /* UNTESTED: ENOMEM only. */
        }
        next->msg_offset = (uint64_t)json_integer_value(off);
        /* Its answer names no skipped range: only the first record can
         * follow one. */
        next->offset = next->msg_offset;
        next->running = true;
        op->riders[op->n_riders++] = next;
        next = after(next);
    }
}

/* What take_records() did. */
enum take { TAKE_NONE, TAKE_OK, TAKE_ENDED };

/* Gives @op the first of @recs (its offset and value) and the consumes
 * that may ride with it the next ones. TAKE_NONE if @recs has no record
 * first; TAKE_ENDED when it ended @op (no memory). */
static enum take take_records(struct consume *op, const json_t *recs)
{
    json_t *rec = json_array_get(recs, 0);
    json_t *off = json_object_get(rec, "offset");
    json_t *val = json_object_get(rec, "value");
    if (!json_is_integer(off) || !json_is_string(val)) {
        return TAKE_NONE;
    }
    op->msg_offset = (uint64_t)json_integer_value(off);
    op->message = strdup(json_string_value(val));
    if (op->message == NULL) {
        consume_end(op, 503, "out of memory"); /* UNTESTED */
        return TAKE_ENDED;
    }
    riders_take(op, recs);
    return TAKE_OK;
}

/* How many records @op asks a broker for: one for itself and each
 * consume that may ride with it, and, for a consume of one partition,
 * those the cache keeps for the next ones. */
static uint32_t read_max(const struct consume *op)
{
    uint32_t need = (uint32_t)(1 + rider_room(op));
    return op->n_order == 1
               ? readahead_want(&qapi_state()->ahead, op->consumer_id, need)
               : need;
}

static void on_consume_read(void *data, const struct bclient_result *r);

/* Asks partition @p's brokers for @op's records from @offset. */
static void consume_read(struct consume *op, uint32_t p, uint64_t offset)
{
    int rv = bclient_read(op->core, &op->parts[p], offset, read_max(op), 0,
                          on_consume_read, op);
    if (rv != 0) {
        consume_end(op, 503, "cannot read now: %s", rq_strerror(rv));
        return;
    }
    mcore_stats(op->core)->consume_reads++;
}

static void on_consume_read(void *data, const struct bclient_result *r)
{
    struct consume *op = data;
    uint32_t p = op->order[op->idx];
    if (mcore_closing(op->core)) {
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
        consume_read(op, p, (uint64_t)json_integer_value(first));
        return;
    }
    json_t *recs = json_object_get(r->answer, "records");
    enum take took = r->status == 200 ? take_records(op, recs) : TAKE_NONE;
    if (took == TAKE_ENDED) {
        return;
    }
    if (took == TAKE_OK) {
        if (op->n_order == 1) {
            /* What this read brought beyond the consumes it served. */
            readahead_put(&qapi_state()->ahead, op->consumer_id,
                          op->parts[p].group_id, recs, 1 + op->n_riders);
        }
        propose_advance(op);
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
            op->code = RQ_CODE_NO_NEW_MESSAGES;
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
    json_t *cached =
        readahead_get(&qapi_state()->ahead, op->consumer_id,
                      op->parts[p].group_id, op->offset, 1 + rider_room(op));
    if (cached != NULL) {
        /* Read ahead by an earlier consume: no broker call. */
        enum take took = take_records(op, cached);
        json_decref(cached);
        if (took == TAKE_OK) {
            propose_advance(op);
        }
        if (took != TAKE_NONE) {
            return;
        }
    }
    consume_read(op, p, op->offset);
}

static void consume_start(struct consume *op)
{
    struct mcore *core = op->core;
    struct mstore_client cc;
    struct mstore_offset *offs;
    size_t n_offs;

    if (mcore_closing(core)) {
        consume_end(op, 503, "the manager is shutting down");
        return;
    }
    if (consume_abandoned(op, false)) {
        return;
    }
    if (!mcore_leading(core)) {
        consume_end(op, 503,
                    "this manager stopped leading before the consume ran; "
                    "retry");
        return;
    }
    int rv = mstore_consumer(mcore_store(core), op->consumer_id, &cc);
    if (rv == 0) {
        rv = mstore_partitions(mcore_store(core), op->topic, &op->parts,
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
    rv = mstore_offsets(mcore_store(core), op->consumer_id, &offs, &n_offs);
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
            op->code = RQ_CODE_PARTITION_NOT_FOUND;
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
    struct cqueue *q = cqueue_get(op->consumer_id, false);
    if (q != NULL && q->in_flight > 0) {
        if (op->n_order != 1) {
            /* Several partitions to visit: it waits until the advances in
             * flight have applied, and so do the consumes after it. */
            q->serial = true;
            consume_unstart(op);
            return;
        }
        if (op->order[0] == q->flight_partition && !q->chain_broken) {
            op->offsets[op->order[0]] = q->flight_next;
        }
    }
    consume_next(op);
}

void qapi_consume(struct rq_http_req *req, void *data)
{
    struct mcore *core = data;
    struct mstore_client cc;
    struct mstore_topic t;
    uint64_t id;
    uint32_t partition;

    const char *topic =
        qapi_consumer_args(core, req, &id, &partition, &cc, qapi_consume);
    if (topic == NULL) {
        return;
    }
    int rv = mstore_topic(mcore_store(core), topic, &t);
    if (qapi_reply_topic_lookup(req, rv, topic)) {
        return;
    }
    if (partition != MCMD_NO_PARTITION && partition >= t.n_partitions) {
        qapi_reply_partition_unknown(req, topic, partition, t.n_partitions);
        return;
    }
    struct consume *op = calloc(1, sizeof *op);
    struct cqueue *q = cqueue_get(id, true);
    if (op == NULL || q == NULL) {
        free(op); /* UNTESTED: ENOMEM only. */
        rq_http_reply_error(req, 500, "out of memory");
        return;
    }
    op->core = core;
    op->consumer_id = id;
    op->given = partition;
    op->deadline = mcore_consume_deadline(core, req);
    snprintf(op->topic, sizeof op->topic, "%s", topic);
    rq_list_push(&q->ops, &op->link);
    op->req = req;
    rq_http_on_abort(req, on_consume_abort, op);
    pump(id);
}

void qapi_consume_outcome(struct rq_http_req *req, json_t *body, bool sent)
{
    if (rq_http_route_handler(req) == qapi_consume) {
        json_object_set_new(body, "offset_advanced",
                            json_string(sent ? "unknown" : "no"));
    }
}

/* ---- Committing offsets ---- */

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
    struct mcore *core = data;
    struct mstore_client cc;
    struct mstore_topic t;
    struct auth who;
    uint64_t id;

    if (!auth_public(core, req, &who, qapi_offsets_commit) ||
        !qapi_consumer_param(req, &id) || !qapi_body_ok(req)) {
        return;
    }
    json_t *body = rq_http_json(req, NULL, 0);
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
    if (mcore_forward(core, req)) {
        return;
    }
    /* The consumer's topic, and so the grant, is known from the store
     * only: checked here, on the leader. */
    int rv = mstore_consumer(mcore_store(core), id, &cc);
    if (rv == RQ_NOTFOUND) {
        rq_http_reply_fail(req, 404, RQ_CODE_CONSUMER_NOT_FOUND,
                           "no consumer %" PRIu64, id);
        return;
    }
    if (rv == 0 && !auth_allow(req, &who, GRANT_TO_CONSUME, cc.topic)) {
        return;
    }
    if (rv == 0) {
        rv = mstore_topic(mcore_store(core), cc.topic, &t);
    }
    if (rv != 0) {
        qapi_reply_store_error(req, rv);
        return;
    }
    struct mcmd c = {.type = MCMD_OFFSET_COMMIT};
    c.u.offset_commit.consumer_id = id;
    c.u.offset_commit.cursor = cc.rr_cursor;
    c.u.offset_commit.n = (uint32_t)n;
    c.u.offset_commit.offsets =
        rq_http_calloc(req, n, sizeof *c.u.offset_commit.offsets);
    if (c.u.offset_commit.offsets == NULL) {
        return; /* UNTESTED: ENOMEM only. */
    }
    for (size_t i = 0; i < n; i++) {
        json_t *o = json_array_get(list, i);
        json_t *p = json_object_get(o, "partition_id");
        json_t *off = json_object_get(o, "offset");
        if ((uint64_t)json_integer_value(p) >= t.n_partitions) {
            mcmd_clear(&c);
            qapi_reply_partition_unknown(
                req, cc.topic, (uint32_t)json_integer_value(p), t.n_partitions);
            return;
        }
        c.u.offset_commit.offsets[i] = (struct mcmd_offset){
            .partition_id = (uint32_t)json_integer_value(p),
            .offset = (uint64_t)json_integer_value(off),
            .expected = MCMD_ANY,
        };
    }
    struct commit *op = rq_http_calloc(req, 1, sizeof *op);
    if (op == NULL) {
        mcmd_clear(&c); /* UNTESTED: ENOMEM only. */
        return;
    }
    qapi_propose(core, req, &c, on_offsets_committed, op, &op->req);
}

/*
 * Produce and batch produce (see qapi_produce.h). A produce picks one
 * partition (policy_partition: the producer's, the request's, the key's,
 * else the producer's round robin) and sends one record; a batch sorts
 * its records by partition (the record's, the key's, else a round robin
 * of batches) and sends one call per partition at once. A batch answers
 * when every call has: the offsets of all records, or a failure naming the
 * partitions whose records were committed.
 */
#include "qapi_produce.h"

#include <assert.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "bclient.h"
#include "mtraffic.h"
#include "pmerge.h"
#include "policy.h"
#include "qapi.h"
#include "rq_codes.h"
#include "rq_err.h"
#include "rq_record.h"
#include "rq_wire.h"

#define MAX_RECORDS 10000

/* ---- Produce ---- */

/* ---- What a produce reads of the store, kept between produces ---- */

/* Topics whose partitions are kept, and producers at most. */
#define LOOKUP_TOPICS 16
#define LOOKUP_PRODUCERS 65536

/*
 * A produce needs its producer and its topic's partitions: four queries
 * of the store. Producers never change once registered, and partitions
 * only with the store's layout (mstore_layout_generation()), so both are
 * kept here, and dropped together when the layout changes.
 */
struct topic_parts {
    char topic[MCMD_NAME_MAX + 1];
    struct mstore_partition *parts; /* Owned; NULL: an empty slot. */
    size_t n;
    uint64_t used; /* For replacing the least recently used. */
};

static struct {
    uint64_t gen;
    uint64_t clock;
    struct topic_parts topics[LOOKUP_TOPICS];
    struct rq_idmap producers; /* id -> struct mstore_client (owned) */
} kept;

/* The producers kept, for dropping them (an id map has no walk). */
static struct mstore_client **kept_list;
static size_t kept_n, kept_cap;

/* Drops the producers kept (the partitions, which a caller may hold,
 * stay). */
static void kept_drop_producers(void)
{
    for (size_t i = 0; i < kept_n; i++) {
        rq_idmap_del(&kept.producers, kept_list[i]->id);
        free(kept_list[i]);
    }
    kept_n = 0;
}

static void kept_drop(void)
{
    for (size_t i = 0; i < LOOKUP_TOPICS; i++) {
        free(kept.topics[i].parts);
        kept.topics[i].parts = NULL;
    }
    kept_drop_producers();
}

/* Drops what was kept if the store's layout has changed since. */
static void kept_check(struct mcore *core)
{
    uint64_t gen = mstore_layout_generation(mcore_store(core));
    if (gen != kept.gen) {
        kept_drop();
        kept.gen = gen;
    }
}

/* Producer @id as mstore_producer() reads it. */
static int kept_producer(struct mcore *core, uint64_t id,
                         struct mstore_client *out)
{
    const struct mstore_client *c = rq_idmap_get(&kept.producers, id);
    if (c != NULL) {
        *out = *c;
        return 0;
    }
    int rv = mstore_producer(mcore_store(core), id, out);
    if (rv != 0) {
        return rv;
    }
    if (kept_n == LOOKUP_PRODUCERS) {
        kept_drop_producers(); /* Start again rather than grow. */
    }
    struct mstore_client *copy = malloc(sizeof *copy);
    if (copy == NULL) {
        return 0; /* UNTESTED: ENOMEM only; not kept. */
    }
    if (kept_n == kept_cap) {
        size_t cap = kept_cap > 0 ? kept_cap * 2 : 64;
        struct mstore_client **list = realloc(kept_list, cap * sizeof *list);
        if (list == NULL) {
            free(copy); /* UNTESTED: ENOMEM only; not kept. */
            return 0;
        }
        kept_list = list;
        kept_cap = cap;
    }
    *copy = *out;
    if (rq_idmap_put(&kept.producers, id, copy) != 0) {
        free(copy); /* UNTESTED: ENOMEM only; not kept. */
        return 0;
    }
    kept_list[kept_n++] = copy;
    return 0;
}

/* The partitions of @topic as mstore_partitions() reads them, borrowed
 * until the next call. */
static int kept_partitions(struct mcore *core, const char *topic,
                           const struct mstore_partition **parts, size_t *n)
{
    struct topic_parts *slot = &kept.topics[0];
    for (size_t i = 0; i < LOOKUP_TOPICS; i++) {
        struct topic_parts *t = &kept.topics[i];
        if (t->parts != NULL && strcmp(t->topic, topic) == 0) {
            t->used = ++kept.clock;
            *parts = t->parts;
            *n = t->n;
            return 0;
        }
        if (t->parts == NULL || (slot->parts != NULL && t->used < slot->used)) {
            slot = t;
        }
    }
    struct mstore_partition *got;
    size_t count;
    int rv = mstore_partitions(mcore_store(core), topic, &got, &count);
    if (rv != 0) {
        return rv;
    }
    free(slot->parts);
    snprintf(slot->topic, sizeof slot->topic, "%s", topic);
    slot->parts = got;
    slot->n = count;
    slot->used = ++kept.clock;
    *parts = got;
    *n = count;
    return 0;
}

/* ---- Merged calls to a partition (pmerge.h) ---- */

/* What one call takes at most: the broker's limits are far above. */
#define MERGE_MAX_RECORDS 1000
#define MERGE_MAX_BYTES (1u << 20)

/* A partition's queue at this manager. It lives as long as the process:
 * its producer id stays the partition's one entry for this manager in the
 * brokers' deduplication table. */
struct merge {
    struct pmerge q;
    struct mcore *core;
    struct mstore_partition part; /* The newest view a produce brought. */
    struct merge *next;           /* In the state's list, for closing. */
};

/* One call of a queue: its items, in the order of their records. */
struct merge_call {
    struct merge *m;
    struct pmerge_item *items;
    uint32_t partition;
};

/* Every queue: by group id, and in a list for closing. One manager runs in
 * a process, so there is one set. */
static struct rq_idmap merges;
static struct merge *merge_list;

static void merge_send(struct merge *m);

/* Answers the items of a call to a partition of @topic that ended (@r)
 * and frees them. */
static void merge_answer(struct mcore *core, struct pmerge_item *items,
                         const char *topic, uint32_t partition,
                         const struct bclient_result *r)
{
    json_t *base =
        r->answer != NULL ? json_object_get(r->answer, "base_offset") : NULL;
    bool ok = r->status == 200 && json_is_integer(base);
    json_int_t offset = ok ? json_integer_value(base) : 0;
    uint64_t bytes = 0;
    while (items != NULL) {
        struct pmerge_item *it = items;
        items = it->next;
        bytes += it->len - RQ_RECORD_HEADER;
        struct rq_http_req *req = it->req;
        if (req != NULL) {
            rq_http_on_abort(req, NULL, NULL);
            if (ok) {
                mcore_stats(core)->produced++;
                /* Written here rather than built and dumped by jansson:
                 * this answer is most of what a manager sends. */
                char text[96];
                int n =
                    snprintf(text, sizeof text,
                             "{\"partition_id\":%" PRIu32 ",\"offset\":%" PRId64
                             ",\"status\":\"success\"}",
                             partition, (int64_t)offset);
                rq_http_reply_text(req, 200, "application/json", text,
                                   (size_t)n);
            } else {
                if (r->retry_after != NULL) {
                    rq_http_set_header(req, "Retry-After", r->retry_after);
                }
                rq_http_reply_error(req, r->status == 200 ? 503 : r->status,
                                    "%s", r->why);
            }
        }
        offset++;
        free(it);
    }
    /* Appended whether or not the clients still wait. */
    if (ok) {
        mtraffic_produced(mcore_modules(core)->traffic, topic, bytes);
    }
}

static void on_merged(void *data, const struct bclient_result *r)
{
    struct merge_call *call = data;
    struct merge *m = call->m;
    merge_answer(m->core, call->items, m->part.topic, call->partition, r);
    free(call);
    if (pmerge_done(&m->q)) {
        merge_send(m);
    }
}

/* Sends the queue's next call; a call that cannot start answers its items
 * and the next one is tried, until one starts or none waits. */
static void merge_send(struct merge *m)
{
    size_t n;
    uint64_t seq;
    struct pmerge_item *items;

    while ((items = pmerge_take(&m->q, MERGE_MAX_RECORDS, MERGE_MAX_BYTES, &n,
                                &seq)) != NULL) {
        struct rq_buf body;
        rq_buf_init(&body);
        rq_record_body_put_count(&body, (uint32_t)n);
        for (const struct pmerge_item *it = items; it != NULL; it = it->next) {
            rq_buf_put_bytes(&body, it->rec, it->len);
        }
        struct merge_call *call = malloc(sizeof *call);
        int rv = body.err != 0 || call == NULL ? RQ_NOMEM : 0;
        if (rv == 0) {
            *call = (struct merge_call){m, items, m->part.partition_id};
            rv = bclient_produce_body(m->core, &m->part, body.base, body.len,
                                      m->q.producer_id, seq, on_merged, call);
            rq_buf_init(&body); /* The call took it. */
            if (rv == 0) {
                mcore_stats(m->core)->produce_calls++;
                return;
            }
        }
        rq_buf_close(&body);
        free(call);
        char why[64];
        snprintf(why, sizeof why, "cannot produce now: %s", rq_strerror(rv));
        struct bclient_result r = {
            .status = 503, .why = why, .retry_after = "1"};
        merge_answer(m->core, items, m->part.topic, m->part.partition_id, &r);
        if (!pmerge_done(&m->q)) {
            return;
        }
    }
}

/* The queue of partition @p, made on first use, with @p as its view. */
static struct merge *merge_of(struct mcore *core,
                              const struct mstore_partition *p)
{
    struct merge *m = rq_idmap_get(&merges, p->group_id);
    if (m == NULL) {
        m = calloc(1, sizeof *m);
        if (m == NULL || rq_idmap_put(&merges, p->group_id, m) != 0) {
            free(m); /* UNTESTED: ENOMEM only. */
            return NULL;
        }
        uint64_t pid = mcore_producer_id(core);
        pmerge_init(&m->q, pid != 0 ? pid : 1);
        m->core = core;
        m->next = merge_list;
        merge_list = m;
    }
    m->part = *p;
    return m;
}

/* Queues one record for partition @p, holding @req until its call ends:
 * false (answering nothing) if there is no memory for it. */
static bool merge_produce(struct mcore *core, struct rq_http_req *req,
                          const struct mstore_partition *p, const char *key,
                          const char *value, size_t value_len)
{
    size_t key_len = key != NULL ? strlen(key) : 0;
    size_t len = RQ_RECORD_HEADER + key_len + value_len;
    struct merge *m = merge_of(core, p);
    struct pmerge_item *it = m != NULL ? malloc(sizeof *it + len) : NULL;
    if (it == NULL) {
        return false; /* UNTESTED: ENOMEM only. */
    }
    it->len = len;
    rq_record_header_put_at(it->rec, key != NULL, key_len, value_len);
    memcpy(it->rec + RQ_RECORD_HEADER, key != NULL ? key : "", key_len);
    memcpy(it->rec + RQ_RECORD_HEADER + key_len, value, value_len);
    mcore_hold(req, &it->req);
    /* A produce goes out whether or not its client waits (its offset may
     * be taken either way): its socket need not be watched. */
    rq_http_unwatched(req);
    if (pmerge_add(&m->q, it)) {
        merge_send(m);
    }
    return true;
}

void qapi_produce_close(void)
{
    while (merge_list != NULL) {
        struct merge *m = merge_list;
        merge_list = m->next;
        /* Every call has ended with the loop, and its waiting items were
         * answered when the next call could not start. */
        assert(m->q.head == NULL && !m->q.in_flight);
        free(m);
    }
    rq_idmap_close(&merges);
    kept_drop();
    rq_idmap_close(&kept.producers);
    free(kept_list);
    kept_list = NULL;
    kept_cap = 0;
}

/* The next round-robin position of @producer_id among @n partitions. */
static uint32_t producer_rr(uint64_t producer_id, uint32_t n)
{
    struct qapi_state *c = qapi_state();
    uintptr_t v = (uintptr_t)rq_idmap_del(&c->rr, producer_id);
    uint64_t pos = v != 0 ? (uint64_t)v - 1 : producer_id;
    if (rq_idmap_put(&c->rr, producer_id, (void *)(uintptr_t)(pos + 2)) != 0) {
        /* UNTESTED: ENOMEM only; the position restarts next time. */
    }
    return (uint32_t)(pos % n);
}

/* A produce's arguments; the strings are borrowed from the request. */
struct produce_msg {
    const char *topic;
    uint64_t producer_id;
    uint32_t partition;
    const char *message;
    size_t message_len;
    const char *key;
};

/* Produces once the producer is known here (qapi_serve_fn); false if it
 * is not (yet). */
static bool produce_now(struct mcore *core, struct rq_http_req *req, void *arg,
                        bool last_try)
{
    const struct produce_msg *a = arg;
    struct mstore_client pc;
    const struct mstore_partition *parts = NULL;
    size_t n = 0;

    kept_check(core);
    int rv = kept_producer(core, a->producer_id, &pc);
    if (rv == RQ_NOTFOUND && !last_try) {
        return false;
    }
    if (qapi_client_check(req, true, a->producer_id, a->topic, rv, &pc) != 0) {
        return true;
    }
    rv = kept_partitions(core, a->topic, &parts, &n);
    if (rv == 0 && n == 0) {
        rv = RQ_NOTFOUND;
    }
    if (qapi_reply_topic_lookup(req, rv, a->topic)) {
        return true;
    }
    bool rr = pc.partition_id == MCMD_NO_PARTITION &&
              a->partition == MCMD_NO_PARTITION && a->key == NULL;
    uint32_t p = policy_partition(
        pc.partition_id, a->partition, a->key,
        a->key != NULL ? strlen(a->key) : 0,
        rr ? producer_rr(a->producer_id, (uint32_t)n) : 0, (uint32_t)n);
    if (p >= n) {
        qapi_reply_partition_unknown(req, a->topic, p, n);
        return true;
    }
    bool queued =
        merge_produce(core, req, &parts[p], a->key, a->message, a->message_len);
    if (!queued) {
        rq_http_reply_error(req, 500, "out of memory"); /* UNTESTED */
    }
    return true;
}

void qapi_produce(struct rq_http_req *req, void *data)
{
    struct mcore *core = data;
    struct produce_msg a = {0};
    struct auth who;

    if (!auth_public(core, req, &who, qapi_produce) || !qapi_body_ok(req)) {
        return;
    }
    a.topic = qapi_topic_arg(req, "topic");
    if (a.topic == NULL || !qapi_id_arg(req, "producer_id", &a.producer_id) ||
        !qapi_partition_arg(req, &a.partition)) {
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
    if (a.message_len > mcore_config(core)->max_message_bytes) {
        rq_http_reply_fail(req, 413, RQ_CODE_MESSAGE_TOO_LARGE,
                           "a message of %zu bytes is over the limit of "
                           "%" PRIu64 " bytes",
                           a.message_len,
                           mcore_config(core)->max_message_bytes);
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
    if (qapi_admit(core, req, &who, GRANT_TO_PRODUCE, a.topic,
                   QAPI_ANY_MANAGER)) {
        qapi_serve(core, req, produce_now, &a, sizeof a);
    }
}

/* ---- Batches ---- */

struct batch;

struct batch_part {
    struct batch *b;
    uint32_t partition;
    json_t *records; /* Owned until sent. */
    size_t count;
    uint64_t bytes; /* Of its records' keys and values. */
    int status;
    uint64_t base;
    char why[QAPI_WHY];
    char retry_after[16];
};

struct batch {
    struct rq_http_req *req; /* First: the held request. */
    struct mcore *core;
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

/* Answers a batch of which some partition's call failed: the most telling
 * failure (a 4xx before a 5xx), and the partitions that committed. */
static void batch_fail(struct batch *b, const struct batch_part *failed,
                       json_t *committed)
{
    char list[256] = "";
    size_t used = 0;
    for (size_t i = 0; i < json_array_size(committed) && used < 200; i++) {
        used += (size_t)snprintf(
            list + used, sizeof list - used, "%s%lld", i > 0 ? ", " : "",
            (long long)json_integer_value(json_array_get(committed, i)));
    }
    if (failed->retry_after[0] != '\0') {
        rq_http_set_header(b->req, "Retry-After", failed->retry_after);
    }
    char msg[QAPI_WHY + 400];
    snprintf(msg, sizeof msg, "%s; %s%s", failed->why,
             json_array_size(committed) > 0
                 ? "the records of these partitions were committed: "
                 : "no partition's records were committed",
             list);
    rq_http_reply(b->req, failed->status,
                  json_pack("{s:s,s:s,s:o}", "status", "failure", "message",
                            msg, "committed_partitions", committed));
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
        batch_fail(b, failed, committed);
        batch_free(b);
        return;
    }
    json_decref(committed);
    json_t *offsets = json_array();
    uint64_t *next = rq_http_calloc(req, b->n_parts, sizeof *next);
    if (next == NULL) {
        json_decref(offsets); /* UNTESTED: ENOMEM only. */
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
    mcore_stats(b->core)->produced += b->n_records;
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
        mtraffic_produced(mcore_modules(b->core)->traffic, b->topic, bp->bytes);
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

/* A new batch of @n records over @np partitions, each with an empty list;
 * NULL on ENOMEM. */
static struct batch *batch_new(struct mcore *core, size_t n, size_t np)
{
    struct batch *b = calloc(1, sizeof *b);
    if (b == NULL) {
        return NULL; /* UNTESTED: ENOMEM only. */
    }
    b->assign = calloc(n + 1, sizeof *b->assign);
    b->parts = calloc(np, sizeof *b->parts);
    if (b->assign == NULL || b->parts == NULL) {
        free(b->assign); /* UNTESTED: ENOMEM only. */
        free(b->parts);
        free(b);
        return NULL;
    }
    b->core = core;
    b->n_records = n;
    b->n_parts = np;
    for (size_t p = 0; p < np; p++) {
        b->parts[p] = (struct batch_part){
            .b = b, .partition = (uint32_t)p, .records = json_array()};
    }
    return b;
}

/*
 * Sorts the records of @records into @b's partitions, checking each
 * (value, key, partition_id, size): 0, or the status (400, 404, 413) with
 * @why naming the record.
 */
static int batch_sort(struct batch *b, const json_t *records, const char *topic,
                      char *why, size_t whyn)
{
    size_t np = b->n_parts;
    uint64_t max_bytes = mcore_config(b->core)->max_message_bytes;
    for (size_t i = 0; i < b->n_records; i++) {
        json_t *rec = json_array_get(records, i);
        json_t *value = json_object_get(rec, "value");
        json_t *key = json_object_get(rec, "key");
        json_t *rp = json_object_get(rec, "partition_id");
        uint32_t p;
        if (!json_is_object(rec) || !json_is_string(value)) {
            snprintf(why, whyn, "record %zu: 'value' must be a string", i);
            return 400;
        }
        if (key != NULL && !json_is_null(key) && !json_is_string(key)) {
            snprintf(why, whyn, "record %zu: 'key' must be a string", i);
            return 400;
        }
        if (json_string_length(value) > max_bytes) {
            snprintf(why, whyn,
                     "record %zu: a value of %zu bytes is over the limit of "
                     "%" PRIu64 " bytes",
                     i, json_string_length(value), max_bytes);
            return 413;
        }
        if (memchr(json_string_value(value), '\0', json_string_length(value)) !=
            NULL) {
            snprintf(why, whyn, "record %zu: 'value' holds a NUL", i);
            return 400;
        }
        if (rp != NULL && !json_is_null(rp) &&
            (!json_is_integer(rp) || json_integer_value(rp) < 0 ||
             (size_t)json_integer_value(rp) >= np)) {
            int status =
                json_is_integer(rp) && json_integer_value(rp) >= 0 ? 404 : 400;
            snprintf(why, whyn,
                     "record %zu: topic '%s' has no partition %s (it has "
                     "%zu)",
                     i, topic, status == 404 ? "so numbered" : "like that", np);
            return status;
        }
        if (rp != NULL && !json_is_null(rp)) {
            p = (uint32_t)json_integer_value(rp);
        } else if (json_is_string(key)) {
            p = policy_key_partition(json_string_value(key),
                                     json_string_length(key), (uint32_t)np);
        } else {
            p = (uint32_t)(qapi_state()->batch_rr++ % np);
        }
        b->assign[i] = p;
        json_t *r = json_pack("{s:O}", "value", value);
        if (json_is_string(key)) {
            json_object_set(r, "key", key);
        }
        json_array_append_new(b->parts[p].records, r);
        b->parts[p].count++;
        b->parts[p].bytes +=
            json_string_length(value) +
            (json_is_string(key) ? json_string_length(key) : 0);
    }
    return 0;
}

/* Checks a batch against the store and sends it (qapi_serve_fn; @arg: the
 * topic's name, const char *, borrowed from @req); false if the topic or
 * the producer is not known here (yet). */
static bool batch_now(struct mcore *core, struct rq_http_req *req, void *arg,
                      bool last_try)
{
    const char *topic = *(const char **)arg;
    struct mstore_partition *parts;
    struct mstore_client pc;
    size_t np;
    char why[QAPI_WHY];

    json_t *body = rq_http_json(req, why, sizeof why);
    json_t *records = json_object_get(body, "records");
    json_t *pid = json_object_get(body, "producer_id");
    json_t *seq = json_object_get(body, "sequence");
    int rv = mstore_partitions(mcore_store(core), topic, &parts, &np);
    if (rv == 0 && np == 0) {
        free(parts);
        rv = RQ_NOTFOUND;
    }
    if (rv == RQ_NOTFOUND && !last_try) {
        return false;
    }
    if (qapi_reply_topic_lookup(req, rv, topic)) {
        return true;
    }
    bool has_producer = pid != NULL && !json_is_null(pid);
    bool has_sequence = seq != NULL && !json_is_null(seq);
    uint64_t producer_id = 0;
    if (has_producer) {
        producer_id = (uint64_t)json_integer_value(pid);
        rv = mstore_producer(mcore_store(core), producer_id, &pc);
        if (rv == RQ_NOTFOUND && !last_try) {
            free(parts);
            return false;
        }
        if (qapi_client_for_topic(core, req, true, producer_id, topic, &pc) !=
            0) {
            free(parts);
            return true;
        }
    }
    uint64_t sequence = has_sequence ? (uint64_t)json_integer_value(seq) : 0;
    struct batch *b = batch_new(core, json_array_size(records), np);
    if (b == NULL) {
        free(parts); /* UNTESTED: ENOMEM only. */
        rq_http_reply_error(req, 500, "out of memory");
        return true;
    }
    snprintf(b->topic, sizeof b->topic, "%s", topic);
    int status = batch_sort(b, records, topic, why, sizeof why);
    if (status != 0) {
        batch_free(b);
        free(parts);
        /* The specific codes of its failures; a 400 keeps the generic. */
        rq_http_reply_fail(req, status,
                           status == 404   ? RQ_CODE_PARTITION_NOT_FOUND
                           : status == 413 ? RQ_CODE_MESSAGE_TOO_LARGE
                                           : NULL,
                           "%s", why);
        return true;
    }
    b->pending = 1; /* Until every call is started. */
    mcore_hold(req, &b->req);
    for (size_t p = 0; p < np; p++) {
        struct batch_part *bp = &b->parts[p];
        if (bp->count == 0) {
            continue;
        }
        b->pending++;
        rv = bclient_produce(core, &parts[p], bp->records,
                             has_producer && has_sequence ? producer_id : 0,
                             sequence, on_batch_part, bp);
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

/* ---- Batches in the binary body (rq_record.h) ---- */

/*
 * A batch sent in the binary body goes to one partition, named in the
 * query string (the body's records carry none), and is relayed to its
 * broker as it came: the broker checks it (limits, UTF-8) as it checks
 * the calls of managers, so the records are neither parsed nor encoded
 * here.
 */
struct binary_args {
    const char *topic; /* Borrowed from the request. */
    uint32_t partition;
    uint64_t producer_id; /* 0: none. */
    uint64_t sequence;
    bool has_sequence; /* Only a pair makes retries safe. */
};

struct binary_op {
    struct rq_http_req *req; /* First: the held request. */
    struct mcore *core;
    uint32_t partition;
    size_t len; /* Of the body. */
    char topic[MCMD_NAME_MAX + 1];
};

static void on_binary_produced(void *data, const struct bclient_result *r)
{
    struct binary_op *op = data;
    struct rq_http_req *req = op->req;
    json_t *base = json_object_get(r->answer, "base_offset");
    json_t *count = json_object_get(r->answer, "count");
    if (r->status == 200 && json_is_integer(count)) {
        /* The body less its count and a header per record: what the
         * records' keys and values hold. */
        uint64_t n = (uint64_t)json_integer_value(count);
        uint64_t framing = RQ_RECORD_BODY_COUNT + n * RQ_RECORD_HEADER;
        mtraffic_produced(mcore_modules(op->core)->traffic, op->topic,
                          op->len > framing ? op->len - framing : 0);
    }
    if (req != NULL) {
        rq_http_on_abort(req, NULL, NULL);
        if (r->status == 200 && json_is_integer(base) &&
            json_is_integer(count)) {
            json_t *offsets = json_array();
            for (json_int_t i = 0; i < json_integer_value(count); i++) {
                json_array_append_new(
                    offsets,
                    json_pack("{s:i,s:I}", "partition_id", (int)op->partition,
                              "offset", json_integer_value(base) + i));
            }
            mcore_stats(op->core)->produced +=
                (uint64_t)json_integer_value(count);
            rq_http_reply(req, 200, json_pack("{s:o}", "offsets", offsets));
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

static bool binary_now(struct mcore *core, struct rq_http_req *req, void *arg,
                       bool last_try)
{
    const struct binary_args *a = arg;
    const struct mstore_partition *parts = NULL;
    struct mstore_client pc;
    size_t np = 0;
    size_t len;

    kept_check(core);
    int rv = kept_partitions(core, a->topic, &parts, &np);
    if (rv == 0 && np == 0) {
        rv = RQ_NOTFOUND;
    }
    if (rv == RQ_NOTFOUND && !last_try) {
        return false;
    }
    if (qapi_reply_topic_lookup(req, rv, a->topic)) {
        return true;
    }
    if (a->partition >= np) {
        qapi_reply_partition_unknown(req, a->topic, a->partition, np);
        return true;
    }
    if (a->producer_id != 0) {
        rv = kept_producer(core, a->producer_id, &pc);
        if (rv == RQ_NOTFOUND && !last_try) {
            return false;
        }
        if (qapi_client_check(req, true, a->producer_id, a->topic, rv, &pc) !=
            0) {
            return true;
        }
    }
    const uint8_t *body = rq_http_body(req, &len);
    uint8_t *copy = malloc(len > 0 ? len : 1);
    struct binary_op *op = rq_http_calloc(req, 1, sizeof *op);
    if (copy == NULL || op == NULL) {
        free(copy); /* UNTESTED: ENOMEM only. */
        free(op);
        return true;
    }
    memcpy(copy, body, len);
    op->core = core;
    op->partition = a->partition;
    op->len = len;
    snprintf(op->topic, sizeof op->topic, "%s", a->topic);
    rv = bclient_produce_body(core, &parts[a->partition], copy, len,
                              a->has_sequence ? a->producer_id : 0, a->sequence,
                              on_binary_produced, op);
    if (rv != 0) {
        free(op);
        mcore_unavailable(req, "cannot produce now: %s", rq_strerror(rv));
        return true;
    }
    mcore_hold(req, &op->req);
    return true;
}

/* The query string's @name as a strict integer up to @max; 0 with
 * *present false when absent, RQ_INVALID when not such an integer. */
static int query_u64(struct rq_http_req *req, const char *name, bool *present,
                     uint64_t max, uint64_t *out)
{
    const char *v = rq_http_query(req, name);
    *present = v != NULL;
    return v == NULL ? 0 : rq_parse_u64(v, max, out);
}

static void produce_binary(struct mcore *core, struct rq_http_req *req,
                           const struct auth *who, const char *topic)
{
    struct binary_args a = {.topic = topic};
    bool has_partition, has_producer, has_sequence;
    uint64_t partition = 0;

    int rv = query_u64(req, "partition_id", &has_partition,
                       MCMD_MAX_PARTITIONS - 1, &partition);
    if (rv != 0 || !has_partition) {
        rq_http_reply_error(req, 400,
                            "a binary body needs 'partition_id' in the query "
                            "string, an integer from 0 to %d",
                            MCMD_MAX_PARTITIONS - 1);
        return;
    }
    a.partition = (uint32_t)partition;
    if (query_u64(req, "producer_id", &has_producer, UINT64_C(1) << 53,
                  &a.producer_id) != 0 ||
        (has_producer && a.producer_id == 0) ||
        query_u64(req, "sequence", &has_sequence, UINT64_MAX, &a.sequence) !=
            0) {
        rq_http_reply_error(req, 400,
                            "'producer_id' must be a producer id and "
                            "'sequence' a non-negative integer");
        return;
    }
    if (has_sequence && !has_producer) {
        rq_http_reply_error(req, 400, "'sequence' needs a 'producer_id'");
        return;
    }
    a.has_sequence = has_sequence;
    if (qapi_admit(core, req, who, GRANT_TO_PRODUCE, topic, QAPI_ANY_MANAGER)) {
        qapi_serve(core, req, binary_now, &a, sizeof a);
    }
}

void qapi_records_produce(struct rq_http_req *req, void *data)
{
    struct mcore *core = data;
    struct auth who;

    if (!auth_public(core, req, &who, qapi_records_produce)) {
        return;
    }
    const char *topic = qapi_topic_param(req);
    if (topic == NULL) {
        return;
    }
    if (rq_record_body_is_binary(rq_http_header(req, "Content-Type"))) {
        produce_binary(core, req, &who, topic);
        return;
    }
    if (!qapi_body_ok(req)) {
        return;
    }
    json_t *body = rq_http_json(req, NULL, 0);
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
    if (qapi_admit(core, req, &who, GRANT_TO_PRODUCE, topic,
                   QAPI_ANY_MANAGER)) {
        qapi_serve(core, req, batch_now, &topic, sizeof topic);
    }
}

/*
 * `raftq consume` (see consume.h).
 *
 * As a consumer, each message is one GET /consumer/consume: the cluster
 * advances the consumer's offset in the same step, so every message is
 * delivered once however many copies of raftq consume as that consumer.
 * Nothing left is a 404 saying there are no new messages; with --follow
 * the client then waits with a long poll: it lists the consumer's offsets
 * (GET /v1/consumers/{id}/offsets), and if no partition has a lag, waits
 * on one partition's read at the consumer's offset (wait_ms, taking the
 * partitions in turn), then asks again.
 */
#include "consume.h"

#include <inttypes.h>
#include <stdbool.h>
#include <stdio.h>
#include <string.h>

#include "commands.h"
#include "consumers.h"
#include "position.h"
#include "render.h"
#include "rq_err.h"
#include "url.h"

#define WHY_LEN 1024
#define READ_MAX 1000
#define FOLLOW_WAIT_MS 1000
#define OFFSET_WAIT_MS 5000

/* The 404 of a consume with nothing left, as API.md section 1 words it. */
#define NOTHING_LEFT "no new messages"

/* A consume's 404 for nothing left to read, not for a missing topic or
 * consumer: its code says (its message, from a manager of an earlier
 * release). */
static bool nothing_left(const struct mclient_resp *r)
{
    const char *code = json_string_value(json_object_get(r->body, "code"));
    return code != NULL ? strcmp(code, "no_new_messages") == 0
                        : strstr(r->message, NOTHING_LEFT) != NULL;
}

/* An interrupted --follow is how it normally ends. */
static int follow_end(const struct cmdline *cl, int code)
{
    return code == CLI_INTERRUPTED && cl->follow ? CLI_OK : code;
}

/* ---- From an offset ---- */
static int from_offset(const struct cmdline *cl, struct mclient *c)
{
    char why[WHY_LEN];
    uint64_t offset = cl->offset, count = 0;
    int code = CLI_OK;

    if (cl->from.kind != CMDLINE_POS_NONE) {
        code =
            position_resolve(c, cl->topic, cl->partition, &cl->from, &offset);
        if (code != CLI_OK) {
            return code;
        }
    }
    for (;;) {
        uint64_t want = READ_MAX;
        if (cl->has_max && cl->max - count < want) {
            want = cl->max - count;
        }
        struct url u;
        position_records_url(&u, cl->topic, cl->partition, offset, want);
        if (cl->follow) {
            url_query_u64(&u, "wait_ms", OFFSET_WAIT_MS);
        }
        if (url_done(&u) == NULL) {
            fprintf(stderr, "raftq: the topic name is too long\n");
            return CLI_USAGE;
        }
        struct mclient_resp r;
        int rv =
            mclient_call(c, "GET", url_done(&u), NULL,
                         cl->follow ? OFFSET_WAIT_MS : 0, &r, why, sizeof why);
        code = commands_outcome(rv, &r, why);
        if (code != CLI_OK) {
            if (rv == 0) {
                mclient_resp_clear(&r);
            }
            return follow_end(cl, code);
        }
        uint64_t n = 0;
        json_t *next = json_object_get(r.body, "next_offset");
        if (cl->json) {
            commands_print_json(r.body);
            n = json_array_size(json_object_get(r.body, "records"));
        } else if (render_records_as(r.body, cl->format, cl->partition, stdout,
                                     &n) != 0) {
            fprintf(stderr, "raftq: %s answered something unexpected\n",
                    r.base);
            mclient_resp_clear(&r);
            return CLI_REFUSED;
        }
        fflush(stdout);
        if (!json_is_integer(next) || json_integer_value(next) < 0) {
            fprintf(stderr, "raftq: %s answered no next_offset\n", r.base);
            mclient_resp_clear(&r);
            return CLI_REFUSED;
        }
        offset = (uint64_t)json_integer_value(next);
        mclient_resp_clear(&r);
        count += n;
        if ((cl->has_max && count >= cl->max) || (n == 0 && !cl->follow)) {
            return CLI_OK;
        }
    }
}

/* ---- As a consumer ---- */

static int register_consumer(const struct cmdline *cl, struct mclient *c,
                             uint64_t *id)
{
    struct mclient_resp r;
    char why[WHY_LEN];
    json_t *body = json_pack("{s:s}", "topic", cl->topic);
    if (cl->has_partition) {
        json_object_set_new(body, "partition_id", json_integer(cl->partition));
    }
    int rv = mclient_call(c, "POST", "/consumer/register", body, 0, &r, why,
                          sizeof why);
    json_decref(body);
    int code = commands_outcome(rv, &r, why);
    if (code == CLI_OK) {
        json_t *v = json_object_get(r.body, "consumer_id");
        if (!json_is_integer(v) || json_integer_value(v) <= 0) {
            fprintf(stderr, "raftq: %s answered no consumer_id\n", r.base);
            code = CLI_REFUSED;
        } else {
            *id = (uint64_t)json_integer_value(v);
            fprintf(stderr,
                    "consumer %" PRIu64 " (continue with --consumer %" PRIu64
                    ")\n",
                    *id, *id);
        }
    }
    if (rv == 0) {
        mclient_resp_clear(&r);
    }
    return code;
}

/* Waits until a partition of the consumer may have a message for it, or
 * FOLLOW_WAIT_MS. @turn picks the partition waited on. */
static int wait_for_more(const struct cmdline *cl, struct mclient *c,
                         uint64_t id, uint64_t *turn)
{
    struct mclient_resp r;
    struct url u;
    char cid[24], why[WHY_LEN];

    snprintf(cid, sizeof cid, "%" PRIu64, id);
    url_init(&u, "");
    url_path(&u, "/v1/consumers/");
    url_segment(&u, cid);
    url_path(&u, "/offsets");
    int rv = mclient_call(c, "GET", url_done(&u), NULL, 0, &r, why, sizeof why);
    int code = commands_outcome(rv, &r, why);
    if (code != CLI_OK) {
        if (rv == 0) {
            mclient_resp_clear(&r);
        }
        return code;
    }
    /* The partitions this consumer reads, and its offset in each. */
    json_t *list = json_object_get(r.body, "offsets");
    json_t *o;
    size_t i, n = 0;
    uint32_t parts[1024];
    uint64_t offsets[1024];
    bool lag = false;
    json_array_foreach(list, i, o)
    {
        json_t *p = json_object_get(o, "partition_id");
        json_t *off = json_object_get(o, "offset");
        json_t *l = json_object_get(o, "lag");
        if (!json_is_integer(p) || !json_is_integer(off) ||
            (cl->has_partition && json_integer_value(p) != cl->partition)) {
            continue;
        }
        lag |= json_is_integer(l) && json_integer_value(l) > 0;
        if (n < sizeof parts / sizeof parts[0]) {
            parts[n] = (uint32_t)json_integer_value(p);
            offsets[n] = (uint64_t)json_integer_value(off);
            n++;
        }
    }
    mclient_resp_clear(&r);
    if (lag || n == 0) {
        return CLI_OK; /* Something to read (or nothing to wait on). */
    }
    size_t k = (size_t)((*turn)++ % n);
    position_records_url(&u, cl->topic, parts[k], offsets[k], 1);
    url_query_u64(&u, "wait_ms", FOLLOW_WAIT_MS);
    rv = mclient_call(c, "GET", url_done(&u), NULL, FOLLOW_WAIT_MS, &r, why,
                      sizeof why);
    code = commands_outcome(rv, &r, why);
    if (rv == 0) {
        mclient_resp_clear(&r);
    }
    return code;
}

static int as_consumer(const struct cmdline *cl, struct mclient *c)
{
    uint64_t id = cl->consumer, count = 0, turn = 0;
    char cid[24], part[16], why[WHY_LEN];
    struct url u;
    int code = CLI_OK;

    if (!cl->has_consumer) {
        code = register_consumer(cl, c, &id);
        if (code != CLI_OK) {
            return code;
        }
    }
    if (cl->from.kind != CMDLINE_POS_NONE) {
        /* Where the consumer starts: its offsets moved there first. */
        code = consumers_move(c, id, &cl->from, cl->has_partition,
                              cl->partition, NULL);
        if (code != CLI_OK) {
            return code;
        }
    }
    snprintf(cid, sizeof cid, "%" PRIu64, id);
    url_init(&u, "");
    url_path(&u, "/consumer/consume");
    url_query(&u, "topic", cl->topic);
    url_query(&u, "consumer_id", cid);
    if (cl->has_partition) {
        snprintf(part, sizeof part, "%" PRIu32, cl->partition);
        url_query(&u, "partition_id", part);
    }
    if (url_done(&u) == NULL) {
        fprintf(stderr, "raftq: the topic name is too long\n");
        return CLI_USAGE;
    }
    while (!cl->has_max || count < cl->max) {
        struct mclient_resp r;
        int rv =
            mclient_call(c, "GET", url_done(&u), NULL, 0, &r, why, sizeof why);
        if (rv == 0 && r.status == 404 && nothing_left(&r)) {
            mclient_resp_clear(&r);
            if (!cl->follow) {
                return CLI_OK;
            }
            code = wait_for_more(cl, c, id, &turn);
            if (code != CLI_OK) {
                return follow_end(cl, code);
            }
            continue;
        }
        code = commands_outcome(rv, &r, why);
        if (code == CLI_OK) {
            if (cl->json) {
                commands_print_json(r.body);
            } else if (!json_is_string(json_object_get(r.body, "message"))) {
                fprintf(stderr, "raftq: %s answered no message\n", r.base);
                code = CLI_REFUSED;
            } else {
                /* As a record read's record: what a consume answers. */
                json_t *rec = json_pack(
                    "{s:O,s:O?}", "value", json_object_get(r.body, "message"),
                    "offset", json_object_get(r.body, "offset"));
                render_record_as(rec, cl->format,
                                 (uint64_t)json_integer_value(
                                     json_object_get(r.body, "partition_id")),
                                 stdout);
                json_decref(rec);
                fflush(stdout);
            }
            count++;
        }
        if (rv == 0) {
            mclient_resp_clear(&r);
        }
        if (code != CLI_OK) {
            return follow_end(cl, code);
        }
    }
    return CLI_OK;
}

int consume_run(const struct cmdline *cl, struct mclient *c)
{
    /* --from with --partition alone reads that partition, as --offset. */
    bool read_partition =
        cl->has_offset || (cl->from.kind != CMDLINE_POS_NONE &&
                           cl->has_partition && !cl->has_consumer);
    return read_partition ? from_offset(cl, c) : as_consumer(cl, c);
}

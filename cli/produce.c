/*
 * `raftq produce` (see produce.h).
 *
 * Before the first batch the topic's existence is checked (registering a
 * producer would otherwise create it) and a producer is registered; each
 * batch then carries that producer id and the next sequence number. A
 * batch is sent when it holds --batch records or BATCH_BYTES of keys and
 * values, whichever comes first, so a batch stays far below the brokers'
 * limit whatever the input.
 */
#include "produce.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "commands.h"
#include "render.h"
#include "rq_err.h"
#include "url.h"

#define WHY_LEN 1024
#define BATCH_BYTES (4u << 20)
#define PROGRESS_EVERY_MS 200

struct producer {
    const struct cmdline *cl;
    struct mclient *c;
    char path[URL_MAX]; /* /v1/topics/{t}/records */
    uint64_t producer_id;
    uint64_t sequence;
    json_t *records; /* The batch being filled. */
    size_t bytes;
    uint64_t sent; /* Records acknowledged. */
    bool progress;
    bool progress_shown;
    uint64_t batches;
    struct timespec t0, last_shown;
};

static double seconds_since(const struct timespec *t)
{
    struct timespec now;
    clock_gettime(CLOCK_MONOTONIC, &now);
    return (double)(now.tv_sec - t->tv_sec) +
           (double)(now.tv_nsec - t->tv_nsec) / 1e9;
}

/* GET /topics/partitions refuses an unknown topic with 404; then the
 * producer registration (which would create the topic) is not made. */
static int register_producer(struct producer *p)
{
    struct mclient_resp r;
    struct url u;
    char why[WHY_LEN];

    url_init(&u, "");
    url_path(&u, "/topics/partitions");
    url_query(&u, "topic", p->cl->topic);
    if (url_done(&u) == NULL) {
        fprintf(stderr, "raftq: the topic name is too long\n");
        return CLI_USAGE;
    }
    int rv =
        mclient_call(p->c, "GET", url_done(&u), NULL, 0, &r, why, sizeof why);
    int code = commands_outcome(rv, &r, why);
    if (rv == 0) {
        mclient_resp_clear(&r);
    }
    if (code != CLI_OK) {
        return code;
    }
    json_t *body = json_pack("{s:s}", "topic", p->cl->topic);
    rv = mclient_call(p->c, "POST", "/producer/register", body, 0, &r, why,
                      sizeof why);
    json_decref(body);
    code = commands_outcome(rv, &r, why);
    if (code == CLI_OK) {
        json_t *id = json_object_get(r.body, "producer_id");
        if (!json_is_integer(id) || json_integer_value(id) <= 0) {
            fprintf(stderr, "raftq: %s answered no producer_id\n", r.base);
            code = CLI_REFUSED;
        } else {
            p->producer_id = (uint64_t)json_integer_value(id);
        }
    }
    if (rv == 0) {
        mclient_resp_clear(&r);
    }
    return code;
}

static void show_progress(struct producer *p, bool last)
{
    if (!p->progress || (p->batches < 2 && !p->progress_shown)) {
        return; /* Input that fits one batch is not "large". */
    }
    if (!last && p->progress_shown &&
        seconds_since(&p->last_shown) * 1000 < PROGRESS_EVERY_MS) {
        return;
    }
    double secs = seconds_since(&p->t0);
    fprintf(stderr, "\rproduced %" PRIu64 " records (%.0f/s)%s", p->sent,
            secs > 0 ? (double)p->sent / secs : 0.0, last ? "\n" : "");
    fflush(stderr);
    p->progress_shown = true;
    clock_gettime(CLOCK_MONOTONIC, &p->last_shown);
}

/* Sends the batch being filled. */
static int flush_batch(struct producer *p)
{
    struct mclient_resp r;
    char why[WHY_LEN];
    size_t n = json_array_size(p->records);

    if (n == 0) {
        return CLI_OK;
    }
    json_t *body = json_pack("{s:O,s:I,s:I}", "records", p->records,
                             "producer_id", (json_int_t)p->producer_id,
                             "sequence", (json_int_t)p->sequence);
    int rv = mclient_call(p->c, "POST", p->path, body, 0, &r, why, sizeof why);
    json_decref(body);
    int code = commands_outcome(rv, &r, why);
    if (code == CLI_OK) {
        p->sequence++;
        p->batches++;
        p->sent += n;
        if (p->cl->json) {
            commands_print_json(r.body);
        } else if (p->cl->n_values > 0 && render_offsets(r.body, stdout) != 0) {
            fprintf(stderr, "raftq: %s answered something unexpected\n",
                    r.base);
            code = CLI_REFUSED;
        }
        show_progress(p, false);
    } else if (p->sent > 0) {
        fprintf(stderr,
                "raftq: %" PRIu64
                " records were produced before "
                "that\n",
                p->sent);
    }
    if (rv == 0) {
        mclient_resp_clear(&r);
    }
    json_array_clear(p->records);
    p->bytes = 0;
    return code;
}

/* Adds one value to the batch, sending the batch first when full. */
static int add_value(struct producer *p, const char *value, size_t len,
                     uint64_t line)
{
    size_t key_len = p->cl->key != NULL ? strlen(p->cl->key) : 0;
    if (json_array_size(p->records) > 0 &&
        (json_array_size(p->records) >= p->cl->batch ||
         p->bytes + len + key_len > BATCH_BYTES)) {
        int code = flush_batch(p);
        if (code != CLI_OK) {
            return code;
        }
    }
    json_t *v = json_stringn(value, len);
    if (v == NULL) {
        if (p->cl->n_values > 0) {
            fprintf(stderr, "raftq: value %" PRIu64 " is not UTF-8 text\n",
                    line);
        } else {
            fprintf(stderr, "raftq: line %" PRIu64 " is not UTF-8 text\n",
                    line);
        }
        return CLI_REFUSED;
    }
    json_t *rec = json_pack("{s:o}", "value", v);
    if (p->cl->key != NULL) {
        json_object_set_new(rec, "key", json_string(p->cl->key));
    }
    if (p->cl->has_partition) {
        json_object_set_new(rec, "partition_id",
                            json_integer(p->cl->partition));
    }
    json_array_append_new(p->records, rec);
    p->bytes += len + key_len;
    return CLI_OK;
}

static int from_stdin(struct producer *p, FILE *in)
{
    char *line = NULL;
    size_t cap = 0;
    ssize_t len;
    uint64_t n = 0;
    int code = CLI_OK;

    while (code == CLI_OK && (len = getline(&line, &cap, in)) >= 0) {
        n++;
        if (len > 0 && line[len - 1] == '\n') {
            len--;
        }
        if (len > 0 && line[len - 1] == '\r') {
            len--;
        }
        code = add_value(p, line, (size_t)len, n);
    }
    free(line);
    if (code == CLI_OK) {
        code = flush_batch(p);
    }
    show_progress(p, true);
    if (code == CLI_OK && !p->cl->json) {
        printf("produced %" PRIu64 " record%s to topic '%s'\n", p->sent,
               p->sent == 1 ? "" : "s", p->cl->topic);
    }
    return code;
}

int produce_run(const struct cmdline *cl, struct mclient *c, FILE *in,
                bool progress)
{
    struct producer p = {.cl = cl, .c = c, .progress = progress};
    struct url u;
    int code;

    url_init(&u, "");
    url_path(&u, "/v1/topics/");
    url_segment(&u, cl->topic);
    url_path(&u, "/records");
    if (url_done(&u) == NULL) {
        fprintf(stderr, "raftq: the topic name is too long\n");
        return CLI_USAGE;
    }
    snprintf(p.path, sizeof p.path, "%s", url_done(&u));
    code = register_producer(&p);
    if (code != CLI_OK) {
        return code;
    }
    p.records = json_array();
    clock_gettime(CLOCK_MONOTONIC, &p.t0);
    if (cl->n_values == 0) {
        code = from_stdin(&p, in);
    } else {
        for (size_t i = 0; i < cl->n_values && code == CLI_OK; i++) {
            code = add_value(&p, cl->values[i], strlen(cl->values[i]), i + 1);
        }
        if (code == CLI_OK) {
            code = flush_batch(&p);
        }
    }
    json_decref(p.records);
    return code;
}

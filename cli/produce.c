/*
 * `raftq produce` (see produce.h), on libraftq's producer (raftq.h).
 *
 * Before the first message the topic's existence is checked (registering a
 * producer would otherwise create it). Each value then goes to
 * raftq_produce() as it is read; the library batches them per partition
 * (--batch records or BATCH_BYTES of keys and values a batch, whichever
 * comes first), sends each batch under its producer id and a sequence
 * number, so a batch sent again after a lost answer is not appended twice,
 * and reports each value's offset. Values given as arguments are printed
 * with their offsets, in order, once all are delivered.
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
/* How long the last deliveries may take once the input has ended. */
#define FLUSH_MS 120000

/* What the delivery callbacks (on the producer's thread) leave for the
 * command: counts, the first failure, and for values given as arguments
 * each one's place. */
struct outcome {
    uint64_t delivered;       /* Atomic: read by the progress line. */
    uint64_t failed;          /* Atomic. */
    struct raftq_error first; /* Set once by the first failure. */
    uint32_t *partition;      /* n_values of them, or NULL. */
    uint64_t *offset;
};

struct producer {
    const struct cmdline *cl;
    struct raftq_producer *rp;
    struct outcome out;
    bool progress;
    bool progress_shown;
    struct timespec t0, last_shown;
};

static double seconds_since(const struct timespec *t)
{
    struct timespec now;
    clock_gettime(CLOCK_MONOTONIC, &now);
    return (double)(now.tv_sec - t->tv_sec) +
           (double)(now.tv_nsec - t->tv_nsec) / 1e9;
}

/* A message's place, for its callback: @i is its argument's index, or
 * SIZE_MAX for a line of standard input. */
struct slot {
    struct outcome *o;
    size_t i;
};

static void on_delivery(const struct raftq_delivery *d, void *opaque)
{
    const struct slot *s = opaque;
    struct outcome *o = s->o;
    if (d->err != RAFTQ_OK) {
        if (__atomic_fetch_add(&o->failed, 1, __ATOMIC_SEQ_CST) == 0) {
            o->first = *d->e;
        }
        return;
    }
    if (s->i != SIZE_MAX) {
        o->partition[s->i] = d->partition;
        o->offset[s->i] = d->offset;
    }
    __atomic_fetch_add(&o->delivered, 1, __ATOMIC_SEQ_CST);
}

static void show_progress(struct producer *p, bool last)
{
    if (!p->progress) {
        return;
    }
    uint64_t n = __atomic_load_n(&p->out.delivered, __ATOMIC_SEQ_CST);
    if (!last && p->progress_shown &&
        seconds_since(&p->last_shown) * 1000 < PROGRESS_EVERY_MS) {
        return;
    }
    if (!p->progress_shown &&
        (last || seconds_since(&p->t0) * 1000 < PROGRESS_EVERY_MS)) {
        /* Input that took less than a progress interval is not "large". */
        if (!last || n <= p->cl->batch) {
            return;
        }
    }
    double secs = seconds_since(&p->t0);
    fprintf(stderr, "\rproduced %" PRIu64 " records (%.0f/s)%s", n,
            secs > 0 ? (double)n / secs : 0.0, last ? "\n" : "");
    fflush(stderr);
    p->progress_shown = true;
    clock_gettime(CLOCK_MONOTONIC, &p->last_shown);
}

/* GET /topics/partitions refuses an unknown topic with 404; then no
 * producer is registered (which would create the topic). */
static int check_topic(const struct cmdline *cl, struct mclient *c)
{
    struct mclient_resp r;
    struct url u;
    char why[WHY_LEN];

    url_init(&u, "");
    url_path(&u, "/topics/partitions");
    url_query(&u, "topic", cl->topic);
    if (url_done(&u) == NULL) {
        fprintf(stderr, "raftq: the topic name is too long\n");
        return CLI_USAGE;
    }
    int rv = mclient_call(c, "GET", url_done(&u), NULL, 0, &r, why, sizeof why);
    int code = commands_outcome(rv, &r, why);
    if (rv == 0) {
        mclient_resp_clear(&r);
    }
    return code;
}

/* Hands one value to the producer. */
static int add_value(struct producer *p, const char *value, size_t len,
                     uint64_t line, struct slot *slot)
{
    const struct cmdline *cl = p->cl;
    struct raftq_message m = {
        .topic = cl->topic,
        .partition = cl->has_partition ? cl->partition : RAFTQ_PARTITION_ANY,
        .key = cl->key,
        .key_len = cl->key != NULL ? strlen(cl->key) : 0,
        .value = value,
        .value_len = len,
    };
    struct raftq_error e;
    int rv = raftq_produce(p->rp, &m, on_delivery, slot, &e);
    if (rv == RAFTQ_OK) {
        show_progress(p, false);
        return CLI_OK;
    }
    if (rv == RAFTQ_ERR_INVALID && e.http_status == 0) {
        fprintf(stderr, "raftq: %s %" PRIu64 " is not UTF-8 text\n",
                cl->n_values > 0 ? "value" : "line", line);
    } else {
        fprintf(stderr, "raftq: %s\n", e.message);
    }
    return rv == RAFTQ_ERR_CONNECT || rv == RAFTQ_ERR_UNAVAILABLE
               ? CLI_UNREACHABLE
               : CLI_REFUSED;
}

static int from_stdin(struct producer *p, FILE *in,
                      const volatile sig_atomic_t *stop)
{
    static struct slot line_slot;
    char *line = NULL;
    size_t cap = 0;
    ssize_t len;
    uint64_t n = 0;
    int code = CLI_OK;

    line_slot.o = &p->out;
    line_slot.i = SIZE_MAX;
    while (code == CLI_OK && !*stop && (len = getline(&line, &cap, in)) >= 0) {
        n++;
        if (len > 0 && line[len - 1] == '\n') {
            len--;
        }
        if (len > 0 && line[len - 1] == '\r') {
            len--;
        }
        code = add_value(p, line, (size_t)len, n, &line_slot);
    }
    free(line);
    return code;
}

/* The offsets of the values given as arguments, as the batch API's
 * answer lists them (for render_offsets and --json). */
static json_t *offsets_answer(const struct producer *p)
{
    json_t *list = json_array();
    for (size_t i = 0; i < p->cl->n_values; i++) {
        json_array_append_new(
            list, json_pack("{s:I, s:I}", "partition_id",
                            (json_int_t)p->out.partition[i], "offset",
                            (json_int_t)p->out.offset[i]));
    }
    return json_pack("{s:s, s:o}", "status", "success", "offsets", list);
}

int produce_open(const struct cmdline *cl,
                 const struct raftq_producer_config *pc,
                 struct raftq_client **rc, struct raftq_producer **rp)
{
    char bases[URL_BASES_MAX][URL_MAX];
    char why[WHY_LEN];
    size_t n;
    if (url_bases_parse(cl->managers, bases, &n, why, sizeof why) != 0) {
        fprintf(stderr, "raftq: --managers: %s\n", why);
        return CLI_USAGE;
    }
    char list[URL_BASES_MAX * (URL_MAX + 1)];
    size_t len = 0;
    for (size_t i = 0; i < n; i++) {
        len += (size_t)snprintf(list + len, sizeof list - len, "%s%s",
                                i > 0 ? "," : "", bases[i]);
    }
    struct raftq_config cfg = {
        .managers = list,
        .token = cl->token,
        .ca_file = cl->cacert,
        .timeout_ms = (uint32_t)cl->timeout_ms,
    };
    struct raftq_error e;
    if (raftq_client_new(&cfg, rc, &e) != RAFTQ_OK) {
        fprintf(stderr, "raftq: %s\n", e.message);
        return CLI_USAGE;
    }
    if (raftq_producer_new(*rc, pc, rp, &e) != RAFTQ_OK) {
        fprintf(stderr, "raftq: %s\n", e.message); /* UNTESTED: ENOMEM. */
        raftq_client_free(*rc);
        return CLI_REFUSED;
    }
    return CLI_OK;
}

int produce_run(const struct cmdline *cl, struct mclient *c, FILE *in,
                bool progress, const volatile sig_atomic_t *stop)
{
    struct producer p = {.cl = cl, .progress = progress};
    struct raftq_client *rc;
    int code = check_topic(cl, c);
    if (code != CLI_OK) {
        return code;
    }
    struct raftq_producer_config pc;
    raftq_producer_config_init(&pc);
    pc.batch_bytes = BATCH_BYTES;
    pc.buffer_bytes = 4 * BATCH_BYTES;
    pc.batch_records = cl->batch;
    /* Values without key or partition spread over the partitions one by
     * one, as a batch to the managers' API does (a consumer group shares
     * them out). */
    pc.partitioner = RAFTQ_PARTITIONER_ROUND_ROBIN;
    code = produce_open(cl, &pc, &rc, &p.rp);
    if (code != CLI_OK) {
        return code;
    }
    struct slot *slots = NULL;
    if (cl->n_values > 0) {
        slots = calloc(cl->n_values, sizeof *slots);
        p.out.partition = calloc(cl->n_values, sizeof *p.out.partition);
        p.out.offset = calloc(cl->n_values, sizeof *p.out.offset);
        if (slots == NULL || p.out.partition == NULL || p.out.offset == NULL) {
            code = CLI_REFUSED; /* UNTESTED: ENOMEM only. */
        }
    }
    clock_gettime(CLOCK_MONOTONIC, &p.t0);
    if (code == CLI_OK && cl->n_values == 0) {
        code = from_stdin(&p, in, stop);
    } else {
        for (size_t i = 0; i < cl->n_values && code == CLI_OK; i++) {
            slots[i] = (struct slot){&p.out, i};
            code = add_value(&p, cl->values[i], strlen(cl->values[i]), i + 1,
                             &slots[i]);
        }
    }
    /* What was handed over is delivered (or fails) whatever came after. */
    while (raftq_producer_flush(p.rp, PROGRESS_EVERY_MS) == RAFTQ_ERR_TIMEOUT) {
        show_progress(&p, false);
    }
    struct raftq_producer_stats st;
    raftq_producer_stats(p.rp, &st);
    if (st.retries > 0) {
        /* Worth knowing: a manager or the network failed under the run. */
        fprintf(stderr,
                "raftq: %" PRIu64
                " batch%s sent again after a lost or "
                "failed answer (each appended once)\n",
                st.retries, st.retries == 1 ? " was" : "es were");
    }
    raftq_producer_free(p.rp);
    raftq_client_free(rc);
    show_progress(&p, true);
    uint64_t failed = p.out.failed;
    if (failed > 0) {
        fprintf(stderr, "raftq: %" PRIu64 " record%s not produced: %s\n",
                failed, failed == 1 ? " was" : "s were", p.out.first.message);
        code = p.out.first.err == RAFTQ_ERR_CONNECT ||
                       p.out.first.err == RAFTQ_ERR_UNAVAILABLE ||
                       p.out.first.err == RAFTQ_ERR_TIMEOUT
                   ? CLI_UNREACHABLE
                   : CLI_REFUSED;
    }
    if (code == CLI_OK && *stop) {
        code = CLI_INTERRUPTED;
    }
    if (code == CLI_OK && cl->n_values > 0) {
        json_t *answer = offsets_answer(&p);
        if (cl->json) {
            commands_print_json(answer);
        } else {
            render_offsets(answer, stdout);
        }
        json_decref(answer);
    } else if (code == CLI_OK && !cl->json) {
        printf("produced %" PRIu64 " record%s to topic '%s'\n", p.out.delivered,
               p.out.delivered == 1 ? "" : "s", cl->topic);
    } else if (code != CLI_OK && p.out.delivered > 0) {
        fprintf(stderr, "raftq: %" PRIu64 " record%s produced\n",
                p.out.delivered, p.out.delivered == 1 ? " was" : "s were");
    }
    free(slots);
    free(p.out.partition);
    free(p.out.offset);
    return code;
}

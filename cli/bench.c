/*
 * `raftq bench` (see bench.h).
 *
 * A case is a kind of request with its defaults (size, requests in flight,
 * partitions). Running one has three steps:
 *
 *   1. Set up, with blocking calls that retry like every other command:
 *      create the case's topic (or take it as it is), wait until each of
 *      its partitions is led by its preferred replica, register the producers
 * or consumers the requests name, and for the reading cases fill the topic
 * through the batch API (a counted loadgen run).
 *   2. Build the requests: every byte that does not change from one
 *      request to the next is built here, once (whole produce requests a
 *      connection, batch bodies a partition); what changes (a read's
 *      offset, a commit's) is printed into the connection's scratch
 *      buffer at each send.
 *   3. Run the load (loadgen.h) and print the figures.
 *
 * lib_produce_100b is the exception: it measures the client library
 * (bench_lib.h), one raftq_produce() call a message, so it only has step 1
 * and its "in-flight" is the library's limit of requests in flight.
 *
 * Messages per second count messages, not requests: a batch of 1000
 * records is 1000, a read counts the records it returned (its
 * next_offset less the offset asked, read from the answer without
 * parsing it; with --binary the binary answer's count, its records'
 * lengths checked), an offset commit is one. MB/s is values' bytes (10^6 a MB).
 */
#include "bench.h"

#include <inttypes.h>
#include <netdb.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "bench_lib.h"
#include "commands.h"
#include "group.h"
#include "hresp.h"
#include "loadgen.h"
#include "rq_err.h"
#include "rq_reads.h"
#include "rq_record.h"
#include "rq_wire.h"
#include "url.h"

#define WHY_LEN 1024
#define TOPIC_MAX 128
#define WARMUP_MS 1000
#define LEADERS_TIMEOUT_MS 30000
#define SETTLE_MS 15000 /* For preferred leaders, once there are leaders. */
#define READ_ROUNDS 5   /* Batches filled in each partition for reads. */
/* Messages a second a consume case is filled for, per request in flight,
 * and at most: enough for today's figures and the aims of issue 14. */
#define CONSUME_FILL_PER_FLIGHT 2500
#define CONSUME_FILL_MAX 10000
#define FILL_IN_FLIGHT 12
/* Records group_3x12 is filled with, a second of its window and at most:
 * its members read them until the window ends or none is left. */
#define GROUP_FILL_PER_S 60000
#define GROUP_FILL_MAX 600000
/* The largest batch body built (one a partition), as a manager takes by
 * default. */
#define BATCH_BODY_MAX (32u << 20)
#define RECORD_JSON 48 /* The bytes of a batch record besides its value. */
#define FILL_LIMIT_MS 120000

enum kind { PRODUCE, BATCH, READ, CONSUME, COMMIT, HEALTHZ, GROUP, LIBPRODUCE };

struct bench_case {
    const char *id;
    enum kind kind;
    uint32_t size; /* Bytes of a value; 0: no values. */
    uint32_t in_flight;
    uint32_t partitions;
    bool in_all; /* Run when no case is named. */
};

static const struct bench_case cases[] = {
    {"produce_100b_many", PRODUCE, 100, 64, 1, true},
    {"produce_1k_many", PRODUCE, 1024, 64, 1, true},
    {"produce_1_inflight", PRODUCE, 100, 1, 1, true},
    {"lib_produce_100b", LIBPRODUCE, 100, BENCH_LIB_IN_FLIGHT, 1, true},
    {"batch_1k_x1000", BATCH, 1024, 12, 12, true},
    {"read_batch_1000_100b", READ, 100, 12, 12, true},
    {"read_batch_1000_1k", READ, 1024, 12, 12, true},
    {"consume_1", CONSUME, 100, 1, 1, true},
    {"consume_8", CONSUME, 100, 8, 1, true},
    {"offset_commit_32", COMMIT, 0, 32, 1, true},
    {"group_3x12", GROUP, 100, 3, 12, true},
    {"healthz", HEALTHZ, 0, 64, 1, false},
};

#define N_CASES (sizeof cases / sizeof cases[0])

/* A request made once: its bytes and length. */
struct prebuilt {
    char *s;
    size_t len;
};

/* One case being run. */
struct run {
    const struct cmdline *cl;
    struct mclient *c;
    const struct bench_case *bc;
    enum kind kind; /* bc->kind, or BATCH while filling. */
    const struct loadgen_target *targets;
    size_t n_targets;
    const char *auth; /* "Authorization: Bearer T\r\n", or "". */
    char topic[TOPIC_MAX + 1];
    uint32_t size, in_flight, partitions, batch;
    uint64_t read_rounds;  /* READ: batches filled in each partition. */
    struct prebuilt *conn; /* [in_flight]: PRODUCE, CONSUME, HEALTHZ. */
    uint64_t *ids;         /* [in_flight]: COMMIT's consumers. */
    uint64_t consumer_id;  /* CONSUME's one consumer. */
    struct prebuilt *body; /* [partitions]: BATCH. */
    struct prebuilt *head; /* [n_targets * partitions]: BATCH. */
    bool progress_tty;
    bool progress_open; /* A \r line is on the terminal. */
    const char *doing;  /* "filling", or NULL while measuring. */
};

static void prebuilt_free(struct prebuilt *p, size_t n)
{
    if (p == NULL) {
        return;
    }
    for (size_t i = 0; i < n; i++) {
        free(p[i].s);
    }
    free(p);
}

/* ---- Set-up calls ---- */

/* mclient_call() with a JSON body (stolen); the exit code, having printed
 * why on stderr when it is not CLI_OK (a 409 is CLI_OK when @exists_ok).
 * Clear @out after a CLI_OK. */
static int api_call(struct run *r, const char *method, const char *path,
                    json_t *body, bool exists_ok, struct mclient_resp *out)
{
    char why[WHY_LEN];
    int rv = mclient_call(r->c, method, path, body, 0, out, why, sizeof why);
    json_decref(body);
    if (rv != 0) {
        return commands_outcome(rv, out, why);
    }
    if ((out->status >= 200 && out->status < 300) ||
        (exists_ok && out->status == 409)) {
        return CLI_OK;
    }
    fprintf(stderr, "raftq bench: %s: %s %s: %s%s\n", r->bc->id, method, path,
            out->message,
            out->status == 401 ? " (give a token with --token, RAFTQ_TOKEN "
                                 "or RAFTQ_ADMIN_TOKEN)"
                               : "");
    mclient_resp_clear(out);
    return CLI_REFUSED;
}

static int create_topic(struct run *r)
{
    struct mclient_resp resp;
    json_t *body = json_pack("{s:s,s:i}", "topic_name", r->topic,
                             "number_of_partitions", (int)r->partitions);
    int code = api_call(r, "POST", "/topics", body, true, &resp);
    if (code == CLI_OK) {
        mclient_resp_clear(&resp);
    }
    return code;
}

/*
 * Waits until every partition of the topic is led by its preferred
 * replica, the first of its list: a new partition elects any member first
 * and hands leadership to the preferred one within seconds (DESIGN.md
 * section 7), and a case should not measure that hand-over. After
 * SETTLE_MS with a leader everywhere it goes on with the leaders there are
 * (a preferred broker may be down). Takes the partition count from the
 * answer (a topic that existed keeps its own).
 */
static int wait_leaders(struct run *r, const volatile sig_atomic_t *stop)
{
    struct url u;
    url_init(&u, "");
    url_path(&u, "/topics/partitions");
    url_query(&u, "topic", r->topic);
    struct timespec t0, now;
    clock_gettime(CLOCK_MONOTONIC, &t0);
    for (;;) {
        struct mclient_resp resp;
        int code = api_call(r, "GET", url_done(&u), NULL, false, &resp);
        if (code != CLI_OK) {
            return code;
        }
        json_t *parts = json_object_get(resp.body, "partitions");
        size_t n = json_array_size(parts), led = 0, settled = 0;
        for (size_t i = 0; i < n; i++) {
            json_t *p = json_array_get(parts, i);
            json_t *l = json_object_get(p, "leader");
            json_t *first = json_array_get(json_object_get(p, "replicas"), 0);
            if (json_is_integer(l) && json_integer_value(l) > 0) {
                led++;
                settled += json_equal(l, first);
            }
        }
        mclient_resp_clear(&resp);
        clock_gettime(CLOCK_MONOTONIC, &now);
        int64_t ms = (int64_t)(now.tv_sec - t0.tv_sec) * 1000 +
                     (now.tv_nsec - t0.tv_nsec) / 1000000;
        if (n > 0 && (settled == n || (led == n && ms > SETTLE_MS))) {
            r->partitions = (uint32_t)n;
            return CLI_OK;
        }
        if (ms > LEADERS_TIMEOUT_MS) {
            fprintf(stderr,
                    "raftq bench: %s: topic %s: %zu of %zu partitions have "
                    "a leader after %d s\n",
                    r->bc->id, r->topic, led, n, LEADERS_TIMEOUT_MS / 1000);
            return CLI_UNREACHABLE;
        }
        if (stop != NULL && *stop) {
            return CLI_INTERRUPTED;
        }
        struct timespec ts = {0, 100 * 1000000L};
        nanosleep(&ts, NULL);
    }
}

/* POST @path {"topic": T}; the integer @field of the answer. */
static int register_one(struct run *r, const char *path, const char *field,
                        uint64_t *id)
{
    struct mclient_resp resp;
    json_t *body = json_pack("{s:s}", "topic", r->topic);
    int code = api_call(r, "POST", path, body, false, &resp);
    if (code != CLI_OK) {
        return code;
    }
    json_t *v = json_object_get(resp.body, field);
    if (!json_is_integer(v) || json_integer_value(v) <= 0) {
        fprintf(stderr, "raftq bench: %s answered no %s\n", resp.base, field);
        code = CLI_REFUSED;
    } else {
        *id = (uint64_t)json_integer_value(v);
    }
    mclient_resp_clear(&resp);
    return code;
}

/* ---- Requests ---- */

/* A value of @size printable bytes that JSON carries as they are. */
static char *value_text(uint32_t size)
{
    static const char alphabet[] =
        "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789";
    char *v = malloc((size_t)size + 1);
    if (v == NULL) {
        return NULL; /* UNTESTED: ENOMEM only. */
    }
    for (uint32_t i = 0; i < size; i++) {
        v[i] = alphabet[(i * 7 + i / 61) % (sizeof alphabet - 1)];
    }
    v[size] = '\0';
    return v;
}

/* A request's head and body in one allocation. */
static int request_text(struct prebuilt *out, const struct run *r,
                        const struct loadgen_target *t, const char *method,
                        const char *target, const char *body, size_t body_len)
{
    char *s = NULL;
    int n;
    if (body != NULL) {
        n = asprintf(&s,
                     "%s %s HTTP/1.1\r\nHost: %s\r\n%s"
                     "Content-Type: application/json\r\n"
                     "Content-Length: %zu\r\n\r\n%.*s",
                     method, target, t->name, r->auth, body_len, (int)body_len,
                     body);
    } else {
        n = asprintf(&s, "%s %s HTTP/1.1\r\nHost: %s\r\n%s\r\n", method, target,
                     t->name, r->auth);
    }
    if (n < 0) {
        return CLI_REFUSED; /* UNTESTED: ENOMEM only. */
    }
    out->s = s;
    out->len = (size_t)n;
    return CLI_OK;
}

static const struct loadgen_target *target_of(const struct run *r,
                                              unsigned conn)
{
    return &r->targets[conn % r->n_targets];
}

/* Whole requests, one a connection: produce, consume, healthz. */
static int build_per_conn(struct run *r, const uint64_t *producers)
{
    r->conn = calloc(r->in_flight, sizeof *r->conn);
    char *value = value_text(r->size);
    int code = r->conn != NULL && value != NULL ? CLI_OK : CLI_REFUSED;
    for (unsigned i = 0; i < r->in_flight && code == CLI_OK; i++) {
        const struct loadgen_target *t = target_of(r, i);
        char target[URL_MAX];
        char *body = NULL;
        int n = 0;
        switch (r->kind) {
            case PRODUCE:
                n = asprintf(&body,
                             "{\"topic\":\"%s\",\"producer_id\":%" PRIu64
                             ",\"message\":\"%s\"}",
                             r->topic, producers[i], value);
                if (n < 0) {
                    code = CLI_REFUSED; /* UNTESTED: ENOMEM only. */
                    break;
                }
                code = request_text(&r->conn[i], r, t, "POST",
                                    "/producer/produce", body, (size_t)n);
                break;
            case CONSUME:
                snprintf(target, sizeof target,
                         "/consumer/consume?topic=%s&consumer_id=%" PRIu64,
                         r->topic, r->consumer_id);
                code = request_text(&r->conn[i], r, t, "GET", target, NULL, 0);
                break;
            default:
                code =
                    request_text(&r->conn[i], r, t, "GET", "/healthz", NULL, 0);
                break;
        }
        free(body);
    }
    free(value);
    return code;
}

/* A batch body in the binary form (rq_record.h): the count, then each
 * record without a key. */
static char *binary_batch(uint32_t count, const char *value, size_t *len)
{
    struct rq_buf b;
    rq_buf_init(&b);
    rq_record_body_put_count(&b, count);
    for (uint32_t i = 0; i < count; i++) {
        rq_record_body_put(&b, NULL, 0, false, value, strlen(value));
    }
    if (b.err != 0) {
        rq_buf_close(&b); /* UNTESTED: ENOMEM only. */
        return NULL;
    }
    *len = b.len;
    return (char *)b.base; /* Freed with free(), as the JSON bodies. */
}

/* Batch bodies, one a partition ({"records": [{"value", "partition_id"}
 * x batch]}, or with --binary the binary form, the partition in the
 * query string), and their heads for each manager. */
static int build_batches(struct run *r)
{
    char *value = value_text(r->size);
    uint32_t np = r->partitions;
    r->body = calloc(np, sizeof *r->body);
    r->head = calloc(r->n_targets * np, sizeof *r->head);
    if (value == NULL || r->body == NULL || r->head == NULL) {
        free(value); /* UNTESTED: ENOMEM only. */
        return CLI_REFUSED;
    }
    size_t one = (size_t)r->size + RECORD_JSON;
    for (uint32_t p = 0; p < np; p++) {
        size_t cap = 16 + (size_t)r->batch * one;
        size_t len = 0;
        char *b =
            r->cl->binary ? binary_batch(r->batch, value, &len) : malloc(cap);
        if (b == NULL) {
            free(value); /* UNTESTED: ENOMEM only. */
            return CLI_REFUSED;
        }
        if (!r->cl->binary) {
            len = (size_t)snprintf(b, cap, "{\"records\":[");
            for (uint32_t i = 0; i < r->batch; i++) {
                len +=
                    (size_t)snprintf(b + len, cap - len,
                                     "%s{\"value\":\"%s\",\"partition_id\":%u}",
                                     i == 0 ? "" : ",", value, p);
            }
            len += (size_t)snprintf(b + len, cap - len, "]}");
        }
        r->body[p] = (struct prebuilt){b, len};
        char query[32] = "";
        if (r->cl->binary) {
            snprintf(query, sizeof query, "?partition_id=%u", p);
        }
        for (size_t t = 0; t < r->n_targets; t++) {
            struct prebuilt *h = &r->head[t * np + p];
            int n = asprintf(
                &h->s,
                "POST /v1/topics/%s/records%s HTTP/1.1\r\n"
                "Host: %s\r\n%s"
                "Content-Type: %s\r\n"
                "Content-Length: %zu\r\n\r\n",
                r->topic, query, r->targets[t].name, r->auth,
                r->cl->binary ? RQ_RECORD_BODY_TYPE : "application/json", len);
            if (n < 0) {
                h->s = NULL; /* UNTESTED: ENOMEM only. */
                free(value);
                return CLI_REFUSED;
            }
            h->len = (size_t)n;
        }
    }
    free(value);
    return CLI_OK;
}

/* A read's offset: the partitions in turn, each from its first batch to
 * its last and round again. */
static uint64_t read_offset(const struct run *r, uint64_t seq)
{
    return (seq / r->partitions) % r->read_rounds * r->batch;
}

static void next_request(void *data, unsigned conn, uint64_t seq,
                         struct loadgen_req *req)
{
    struct run *r = data;
    const struct loadgen_target *t = target_of(r, conn);
    uint32_t p = (uint32_t)(seq % r->partitions);
    int n;

    req->nbufs = 1;
    switch (r->kind) {
        case BATCH: {
            const struct prebuilt *h =
                &r->head[(conn % r->n_targets) * r->partitions + p];
            req->bufs[0] = uv_buf_init(h->s, (unsigned)h->len);
            req->bufs[1] = uv_buf_init(r->body[p].s, (unsigned)r->body[p].len);
            req->nbufs = 2;
            return;
        }
        case READ:
            n = snprintf(
                req->scratch, LOADGEN_SCRATCH,
                "GET /v1/topics/%s/partitions/%u/records?offset=%" PRIu64
                "&max=%u HTTP/1.1\r\nHost: %s\r\n%s%s\r\n",
                r->topic, p, read_offset(r, seq), r->batch, t->name, r->auth,
                r->cl->binary ? "Accept: " RQ_RECORD_BODY_TYPE "\r\n" : "");
            req->bufs[0] = uv_buf_init(req->scratch, (unsigned)n);
            return;
        case COMMIT: {
            /* The body after the head's room; the offsets only grow. */
            char *body = req->scratch + LOADGEN_SCRATCH / 2;
            int bn = snprintf(body, LOADGEN_SCRATCH / 2,
                              "{\"offsets\":[{\"partition_id\":0,"
                              "\"offset\":%" PRIu64 "}]}",
                              seq);
            n = snprintf(req->scratch, LOADGEN_SCRATCH / 2,
                         "POST /v1/consumers/%" PRIu64
                         "/offsets HTTP/1.1\r\nHost: %s\r\n%s"
                         "Content-Type: application/json\r\n"
                         "Content-Length: %d\r\n\r\n",
                         r->ids[conn], t->name, r->auth, bn);
            req->bufs[0] = uv_buf_init(req->scratch, (unsigned)n);
            req->bufs[1] = uv_buf_init(body, (unsigned)bn);
            req->nbufs = 2;
            return;
        }
        default:
            req->bufs[0] =
                uv_buf_init(r->conn[conn].s, (unsigned)r->conn[conn].len);
            return;
    }
}

static int on_answer(void *data, unsigned conn, uint64_t seq, const char *body,
                     size_t len, uint64_t *messages, char *why, size_t whyn)
{
    struct run *r = data;
    (void)conn;
    switch (r->kind) {
        case BATCH:
            *messages = r->batch;
            return 0;
        case READ: {
            uint64_t next, off = read_offset(r, seq);
            struct rq_reads_head h;
            if (r->cl->binary) {
                /* Checked whole: each record's lengths, nothing after. */
                char bad[128];
                if (rq_reads_check((const uint8_t *)body, len, &h, bad,
                                   sizeof bad) != 0) {
                    rq_why(why, whyn, "a binary read answer: %s", bad);
                    return RQ_MALFORMED;
                }
                next = h.next_offset;
                if (next - h.count != off) {
                    rq_why(why, whyn,
                           "a read at %" PRIu64
                           " answered records from %" PRIu64,
                           off, next - h.count);
                    return RQ_MALFORMED;
                }
            } else if (hresp_json_u64(body, len, "next_offset", &next) != 0) {
                rq_why(why, whyn, "a read answered no next_offset");
                return RQ_MALFORMED;
            }
            if (next <= off) {
                rq_why(why, whyn,
                       "a read of partition %" PRIu64 " at %" PRIu64
                       " returned no records",
                       seq % r->partitions, off);
                return RQ_MALFORMED;
            }
            *messages = next - off;
            return 0;
        }
        default:
            *messages = 1;
            return 0;
    }
}

/* ---- Progress and figures ---- */

static void on_progress(void *data, const struct loadgen_progress *p)
{
    struct run *r = data;
    char line[256];
    if (r->doing != NULL) {
        snprintf(line, sizeof line, "%-22s %s: %" PRIu64 " records, %.0f/s",
                 r->bc->id, r->doing, p->messages, p->msgs_per_s);
    } else if (p->warming) {
        snprintf(line, sizeof line, "%-22s warming up", r->bc->id);
    } else {
        snprintf(line, sizeof line,
                 "%-22s %4.0f s %10.0f msgs/s %10" PRIu64 " msgs %6" PRIu64
                 " errors",
                 r->bc->id, p->seconds, p->msgs_per_s, p->messages, p->errors);
    }
    if (r->progress_tty) {
        fprintf(stderr, "\r%s\033[K", line);
        r->progress_open = true;
    } else {
        fprintf(stderr, "%s\n", line);
    }
    fflush(stderr);
}

static void progress_end(struct run *r)
{
    if (r->progress_open) {
        fputs("\r\033[K", stderr);
        r->progress_open = false;
    }
}

/* "%.3f" or "null" (negative). */
static const char *num(char *buf, size_t n, double v)
{
    if (v < 0) {
        snprintf(buf, n, "null");
    } else {
        snprintf(buf, n, "%.3f", v);
    }
    return buf;
}

/* The same for the table: "-" for none. */
static const char *cell(char *buf, size_t n, double v, int decimals)
{
    if (v < 0) {
        snprintf(buf, n, "-");
    } else {
        snprintf(buf, n, "%.*f", decimals, v);
    }
    return buf;
}

static void print_header(void)
{
    printf("%-22s %10s %8s %8s %8s %8s %8s %9s %6s %7s %10s\n", "case",
           "msgs/s", "MB/s", "p50 ms", "p99 ms", "p999 ms", "max ms",
           "in-flight", "size", "errors", "cpu us/req");
}

static void print_figures(const struct run *r, struct loadgen_result *res)
{
    double secs = res->seconds > 0 ? res->seconds : 1e-9;
    double rate = (double)res->messages / secs;
    double mb = r->size > 0 ? rate * r->size / 1e6 : -1;
    double p50 = loadgen_quantile_ms(res, 0.50);
    double p99 = loadgen_quantile_ms(res, 0.99);
    double p999 = loadgen_quantile_ms(res, 0.999);
    double max = loadgen_quantile_ms(res, 1.0);
    uint64_t requests = res->answers + res->errors;
    double cpu_us =
        requests > 0 ? res->cpu_seconds * 1e6 / (double)requests : -1;
    char a[32], b[32], c[32], d[32], e[32], f[32];

    if (r->cl->json) {
        printf("{\"system\": \"raftq\", \"case\": \"%s\", \"n\": %" PRIu64
               ", \"seconds\": %.3f, \"msgs_per_s\": %.3f, \"mb_per_s\": %s, "
               "\"p50_ms\": %s, \"p99_ms\": %s, \"p999_ms\": %s, "
               "\"max_ms\": %s, \"in_flight\": %u, \"size\": %u}\n",
               r->bc->id, res->messages, res->seconds, rate,
               num(a, sizeof a, mb), num(b, sizeof b, p50),
               num(c, sizeof c, p99), num(d, sizeof d, p999),
               num(e, sizeof e, max), r->in_flight, r->size);
    } else {
        printf("%-22s %10.0f %8s %8s %8s %8s %8s %9u %6u %7" PRIu64 " %10s\n",
               r->bc->id, rate, cell(a, sizeof a, mb, 2),
               cell(b, sizeof b, p50, 2), cell(c, sizeof c, p99, 2),
               cell(d, sizeof d, p999, 2), cell(e, sizeof e, max, 2),
               r->in_flight, r->size, res->errors,
               cell(f, sizeof f, cpu_us, 1));
    }
    fflush(stdout);
    fprintf(stderr,
            "raftq bench: %s: %" PRIu64
            " requests in %.1f s; this client "
            "used %.1f us of CPU a request (%.0f%% of a core)\n",
            r->bc->id, requests, res->seconds, cpu_us < 0 ? 0 : cpu_us,
            res->cpu_seconds * 100 / secs);
}

static void print_errors(const char *what, const struct loadgen_result *res)
{
    if (res->errors == 0) {
        return;
    }
    fprintf(stderr, "raftq bench: %s: %" PRIu64 " errors:\n", what,
            res->errors);
    for (size_t i = 0; i < res->n_kinds; i++) {
        const struct loadgen_error_kind *k = &res->kinds[i];
        fprintf(stderr, "  %s x%" PRIu64 "%s%s\n", k->kind, k->n,
                k->first[0] != '\0' ? ": " : "", k->first);
    }
}

/* ---- One case ---- */

/* Runs the loadgen with @r as it stands. */
static int load(struct run *r, const volatile sig_atomic_t *stop,
                uint32_t conns, uint64_t warmup_ms, uint64_t measure_ms,
                uint64_t max_requests, struct loadgen_result *res)
{
    struct loadgen_config cfg = {
        .targets = r->targets,
        .n_targets = r->n_targets,
        .conns = conns,
        .warmup_ms = warmup_ms,
        .measure_ms = measure_ms,
        .max_requests = max_requests,
        .next = next_request,
        .answer = on_answer,
        .progress = on_progress,
        .data = r,
        .stop = stop,
        .stop_on_error = max_requests != 0, /* A fill. */
    };
    int rv = loadgen_run(&cfg, res);
    progress_end(r);
    if (rv != 0) {
        fprintf(stderr, "raftq bench: %s: %s\n", r->bc->id, rq_strerror(rv));
        return CLI_REFUSED; /* UNTESTED: ENOMEM only. */
    }
    return res->interrupted ? CLI_INTERRUPTED : CLI_OK;
}

/* Fills the topic with @batches batch requests, partitions in turn. */
static int fill(struct run *r, const volatile sig_atomic_t *stop,
                uint64_t batches)
{
    struct loadgen_result res;
    int code = build_batches(r);
    if (code != CLI_OK) {
        return code;
    }
    enum kind kind = r->kind;
    r->kind = BATCH;
    r->doing = "filling";
    uint32_t conns =
        batches < FILL_IN_FLIGHT ? (uint32_t)batches : FILL_IN_FLIGHT;
    code = load(r, stop, conns, 0, FILL_LIMIT_MS, batches, &res);
    r->kind = kind;
    r->doing = NULL;
    if (code == CLI_OK && res.errors > 0) {
        print_errors("filling the topic", &res);
        code = CLI_REFUSED;
    }
    loadgen_result_clear(&res);
    prebuilt_free(r->body, r->partitions);
    prebuilt_free(r->head, r->n_targets * r->partitions);
    r->body = r->head = NULL;
    return code;
}

static int setup(struct run *r, const volatile sig_atomic_t *stop)
{
    if (r->kind == HEALTHZ) {
        return build_per_conn(r, NULL); /* No topic. */
    }
    int code = create_topic(r);
    if (code == CLI_OK) {
        code = wait_leaders(r, stop);
    }
    if (code != CLI_OK) {
        return code;
    }
    uint64_t *producers = NULL;
    switch (r->kind) {
        case PRODUCE:
            producers = calloc(r->in_flight, sizeof *producers);
            if (producers == NULL) {
                return CLI_REFUSED; /* UNTESTED: ENOMEM only. */
            }
            for (uint32_t i = 0; i < r->in_flight && code == CLI_OK; i++) {
                code = register_one(r, "/producer/register", "producer_id",
                                    &producers[i]);
            }
            if (code == CLI_OK) {
                code = build_per_conn(r, producers);
            }
            free(producers);
            return code;
        case BATCH:
            return build_batches(r);
        case READ:
            r->read_rounds = READ_ROUNDS;
            return fill(r, stop, (uint64_t)r->partitions * READ_ROUNDS);
        case CONSUME: {
            uint64_t rate = (uint64_t)r->in_flight * CONSUME_FILL_PER_FLIGHT;
            rate = rate < CONSUME_FILL_MAX ? rate : CONSUME_FILL_MAX;
            uint64_t records =
                rate * (r->cl->seconds_ms + WARMUP_MS) / 1000 + 1;
            code = fill(r, stop, (records + r->batch - 1) / r->batch);
            if (code == CLI_OK) {
                code = register_one(r, "/consumer/register", "consumer_id",
                                    &r->consumer_id);
            }
            if (code == CLI_OK) {
                code = build_per_conn(r, NULL);
            }
            return code;
        }
        case COMMIT:
            r->ids = calloc(r->in_flight, sizeof *r->ids);
            if (r->ids == NULL) {
                return CLI_REFUSED; /* UNTESTED: ENOMEM only. */
            }
            for (uint32_t i = 0; i < r->in_flight && code == CLI_OK; i++) {
                code = register_one(r, "/consumer/register", "consumer_id",
                                    &r->ids[i]);
            }
            return code;
        case GROUP: {
            uint64_t records = GROUP_FILL_PER_S * r->cl->seconds_ms / 1000;
            records = records < GROUP_FILL_MAX ? records : GROUP_FILL_MAX;
            return fill(r, stop, (records + r->batch - 1) / r->batch);
        }
        case HEALTHZ:
        case LIBPRODUCE:
            break;
    }
    return CLI_OK;
}

/* ---- A consumer group (group_3x12) ---- */

/* One member of the group: a thread with a client of its own. */
struct gmember {
    struct run *r;
    const volatile sig_atomic_t *stop;
    uint64_t deadline_ns;
    struct mclient *c;
    char id[72];
    uint64_t records;
    uint64_t cycles;
    uint32_t *lat_us;
    size_t n_lat, cap_lat;
    uint64_t errors;
    char first_error[160];
    uint64_t done_ns; /* When it stopped. */
};

static void gmember_error(struct gmember *m, const char *what, long status,
                          const char *message)
{
    if (m->errors++ == 0) {
        snprintf(m->first_error, sizeof m->first_error, "%s: %ld %s", what,
                 status, message);
    }
}

/* One fetch of up to a batch and the commit of what it brought; false when
 * nothing was left or it failed. */
static bool gmember_cycle(struct gmember *m, char *path, size_t n)
{
    struct mclient_resp resp;
    char why[WHY_LEN];
    uint64_t t0 = bench_lib_now_ns();
    snprintf(path, n, "/v1/groups/%s/records?member_id=%s&max=%u", m->r->topic,
             m->id, m->r->batch);
    if (mclient_call(m->c, "GET", path, NULL, 0, &resp, why, sizeof why) != 0) {
        gmember_error(m, "fetch", 0, why);
        return false;
    }
    json_t *recs = json_object_get(resp.body, "records");
    json_t *gen = json_object_get(resp.body, "generation");
    if (resp.status != 200 || !json_is_array(recs) || !json_is_integer(gen)) {
        gmember_error(m, "fetch", resp.status, resp.message);
        mclient_resp_clear(&resp);
        return false;
    }
    size_t count = json_array_size(recs);
    if (count == 0) {
        mclient_resp_clear(&resp);
        return false;
    }
    json_t *offsets = group_commit_offsets(recs);
    if (offsets == NULL) {
        gmember_error(m, "fetch", resp.status,
                      "records not as a fetch answers them");
        mclient_resp_clear(&resp);
        return false;
    }
    json_t *body = json_pack("{s:s,s:O,s:o}", "member_id", m->id, "generation",
                             gen, "offsets", offsets);
    mclient_resp_clear(&resp);
    snprintf(path, n, "/v1/groups/%s/commit", m->r->topic);
    int rv = mclient_call(m->c, "POST", path, body, 0, &resp, why, sizeof why);
    json_decref(body);
    if (rv != 0 || resp.status != 200) {
        gmember_error(m, "commit", rv != 0 ? 0 : resp.status,
                      rv != 0 ? why : resp.message);
        if (rv == 0) {
            mclient_resp_clear(&resp);
        }
        return false;
    }
    mclient_resp_clear(&resp);
    m->records += count;
    m->cycles++;
    if (m->n_lat == m->cap_lat) {
        size_t cap = m->cap_lat == 0 ? 1024 : m->cap_lat * 2;
        uint32_t *p = realloc(m->lat_us, cap * sizeof *p);
        if (p == NULL) {
            return true; /* UNTESTED: ENOMEM only; the latency goes. */
        }
        m->lat_us = p;
        m->cap_lat = cap;
    }
    m->done_ns = bench_lib_now_ns();
    m->lat_us[m->n_lat++] = (uint32_t)((m->done_ns - t0) / 1000);
    return true;
}

static void *gmember_run(void *arg)
{
    struct gmember *m = arg;
    char path[512];
    unsigned empty = 0;
    /* The end is the last cycle's that brought records, not the empty
     * fetches' after it. */
    while (!*m->stop && bench_lib_now_ns() < m->deadline_ns && empty < 3) {
        empty = gmember_cycle(m, path, sizeof path) ? 0 : empty + 1;
    }
    return NULL;
}

/*
 * group_3x12: as many members as requests in flight join a group named
 * for the topic, then each fetches up to --batch records and commits
 * them, over and over, until the window ends or nothing is left (the
 * topic was filled first). Messages are the records committed; a request
 * is a fetch and its commit, whose latency is the pair's.
 */
static int group_load(struct run *r, const volatile sig_atomic_t *stop,
                      struct loadgen_result *res)
{
    struct gmember *ms = calloc(r->in_flight, sizeof *ms);
    pthread_t *th = calloc(r->in_flight, sizeof *th);
    char path[256];
    int code = ms != NULL && th != NULL ? CLI_OK : CLI_REFUSED;
    memset(res, 0, sizeof *res);
    snprintf(path, sizeof path, "/v1/groups/%s/join", r->topic);
    for (uint32_t i = 0; i < r->in_flight && code == CLI_OK; i++) {
        struct mclient_resp resp;
        ms[i].r = r;
        ms[i].stop = stop;
        code = api_call(r, "POST", path, json_pack("{s:s}", "topic", r->topic),
                        false, &resp);
        if (code == CLI_OK) {
            snprintf(
                ms[i].id, sizeof ms[i].id, "%s",
                json_string_value(json_object_get(resp.body, "member_id")));
            mclient_resp_clear(&resp);
            if (mclient_clone(r->c, stop, &ms[i].c) != 0) {
                code = CLI_REFUSED; /* UNTESTED: ENOMEM only. */
            }
        }
    }
    uint32_t started = 0;
    uint64_t t0 = bench_lib_now_ns();
    double cpu0 = bench_lib_cpu_seconds();
    for (uint32_t i = 0; i < r->in_flight && code == CLI_OK; i++) {
        ms[i].deadline_ns = t0 + r->cl->seconds_ms * 1000000u;
        ms[i].done_ns = t0;
        if (pthread_create(&th[i], NULL, gmember_run, &ms[i]) != 0) {
            code = CLI_REFUSED; /* UNTESTED: no threads left. */
            break;
        }
        started++;
    }
    uint64_t end = t0;
    for (uint32_t i = 0; i < started; i++) {
        pthread_join(th[i], NULL);
        end = ms[i].done_ns > end ? ms[i].done_ns : end;
    }
    res->cpu_seconds = bench_lib_cpu_seconds() - cpu0;
    res->seconds = (double)(end - t0) / 1e9;
    res->interrupted = *stop != 0;
    snprintf(path, sizeof path, "/v1/groups/%s/leave", r->topic);
    for (uint32_t i = 0; ms != NULL && i < r->in_flight; i++) {
        struct mclient_resp resp;
        res->messages += ms[i].records;
        res->answers += ms[i].cycles;
        res->errors += ms[i].errors;
        if (ms[i].errors > 0 && res->n_kinds < LOADGEN_ERROR_KINDS) {
            struct loadgen_error_kind *k = &res->kinds[res->n_kinds++];
            snprintf(k->kind, sizeof k->kind, "member %u", i);
            k->n = ms[i].errors;
            snprintf(k->first, sizeof k->first, "%s", ms[i].first_error);
        }
        uint32_t *lat =
            realloc(res->lat_us, (res->n_lat + ms[i].n_lat + 1) * sizeof *lat);
        if (lat != NULL) {
            res->lat_us = lat;
            if (ms[i].n_lat > 0) {
                memcpy(lat + res->n_lat, ms[i].lat_us,
                       ms[i].n_lat * sizeof *lat);
            }
            res->n_lat += ms[i].n_lat;
        }
        free(ms[i].lat_us);
        if (ms[i].id[0] != '\0' &&
            api_call(r, "POST", path, json_pack("{s:s}", "member_id", ms[i].id),
                     false, &resp) == CLI_OK) {
            mclient_resp_clear(&resp);
        }
        mclient_free(ms[i].c);
    }
    free(ms);
    free(th);
    if (code == CLI_OK && res->interrupted) {
        code = CLI_INTERRUPTED;
    }
    return code;
}

static int run_case(struct run *r, const volatile sig_atomic_t *stop,
                    bool *header_printed)
{
    struct loadgen_result res;
    int code = setup(r, stop);
    if (code == CLI_OK) {
        if (r->kind == GROUP) {
            code = group_load(r, stop, &res);
        } else if (r->kind == LIBPRODUCE) {
            code = bench_lib_produce(r->cl, r->topic, r->size, r->in_flight,
                                     WARMUP_MS, r->cl->seconds_ms, stop, &res);
        } else {
            code = load(r, stop, r->in_flight, WARMUP_MS, r->cl->seconds_ms, 0,
                        &res);
        }
        if (code == CLI_OK) {
            if (!r->cl->json && !*header_printed) {
                print_header();
                *header_printed = true;
            }
            print_figures(r, &res);
            print_errors(r->bc->id, &res);
        }
        loadgen_result_clear(&res);
    }
    prebuilt_free(r->conn, r->in_flight);
    prebuilt_free(r->body, r->partitions);
    prebuilt_free(r->head, r->n_targets * r->partitions);
    free(r->ids);
    r->conn = r->body = r->head = NULL;
    r->ids = NULL;
    return code;
}

/* ---- The command ---- */

/* The managers as loadgen targets; refuses https:// (no TLS here). */
static int resolve_targets(const struct cmdline *cl, struct loadgen_target *out,
                           size_t *n)
{
    char bases[URL_BASES_MAX][URL_MAX];
    char why[WHY_LEN];
    if (url_bases_parse(cl->managers, bases, n, why, sizeof why) != 0) {
        fprintf(stderr, "raftq: --managers: %s\n", why); /* Parsed before. */
        return CLI_USAGE;
    }
    for (size_t i = 0; i < *n; i++) {
        const char *b = bases[i];
        if (strncmp(b, "https://", 8) == 0) {
            fprintf(stderr,
                    "raftq bench: %s: raftq bench speaks plain HTTP only; "
                    "https:// managers are not supported yet\nTry 'raftq "
                    "bench --help'.\n",
                    b);
            return CLI_USAGE;
        }
        const char *hp = b + strlen("http://");
        char host[URL_MAX];
        const char *colon = strrchr(hp, ':');
        const char *h0 = hp, *h1 = colon;
        if (*hp == '[') {
            h0 = hp + 1;
            h1 = strchr(hp, ']');
        }
        snprintf(host, sizeof host, "%.*s", (int)(h1 - h0), h0);
        struct addrinfo hints = {.ai_family = AF_UNSPEC,
                                 .ai_socktype = SOCK_STREAM};
        struct addrinfo *ai;
        int rv = getaddrinfo(host, colon + 1, &hints, &ai);
        if (rv != 0) {
            fprintf(stderr, "raftq bench: %s: %s\n", b, gai_strerror(rv));
            return CLI_UNREACHABLE;
        }
        memcpy(&out[i].addr, ai->ai_addr, ai->ai_addrlen);
        out[i].addr_len = ai->ai_addrlen;
        snprintf(out[i].name, sizeof out[i].name, "%s", hp);
        freeaddrinfo(ai);
    }
    return CLI_OK;
}

static bool topic_chars_ok(const char *s)
{
    for (; *s != '\0'; s++) {
        if (!((*s >= 'a' && *s <= 'z') || (*s >= 'A' && *s <= 'Z') ||
              (*s >= '0' && *s <= '9') || *s == '.' || *s == '_' ||
              *s == '-')) {
            return false;
        }
    }
    return true;
}

/* The cases named, in the order given, or every case of the list. */
static int choose_cases(const struct cmdline *cl,
                        const struct bench_case **chosen, size_t *n)
{
    *n = 0;
    if (cl->n_values == 0) {
        for (size_t i = 0; i < N_CASES; i++) {
            if (cases[i].in_all) {
                chosen[(*n)++] = &cases[i];
            }
        }
        return CLI_OK;
    }
    for (size_t k = 0; k < cl->n_values; k++) {
        size_t i;
        for (i = 0; i < N_CASES; i++) {
            if (strcmp(cl->values[k], cases[i].id) == 0) {
                break;
            }
        }
        if (i == N_CASES) {
            fprintf(stderr, "raftq: unknown bench case '%s'; the cases are",
                    cl->values[k]);
            for (i = 0; i < N_CASES; i++) {
                fprintf(stderr, " %s", cases[i].id);
            }
            fprintf(stderr, "\nTry 'raftq bench --help'.\n");
            return CLI_USAGE;
        }
        if (*n == N_CASES) {
            fprintf(stderr, "raftq: at most %zu cases a run\n", N_CASES);
            return CLI_USAGE;
        }
        chosen[(*n)++] = &cases[i];
    }
    return CLI_OK;
}

int bench_run(const struct cmdline *cl, struct mclient *c,
              const volatile sig_atomic_t *stop)
{
    const struct bench_case *chosen[N_CASES];
    struct loadgen_target targets[URL_BASES_MAX];
    size_t n_cases, n_targets;
    char prefix[TOPIC_MAX + 1];
    char *auth = NULL;

    int code = choose_cases(cl, chosen, &n_cases);
    if (code != CLI_OK) {
        return code;
    }
    if (cl->topic != NULL) {
        if (strlen(cl->topic) > TOPIC_MAX - 24 || !topic_chars_ok(cl->topic)) {
            fprintf(stderr,
                    "raftq: --topic: a prefix of 1 to %d characters of "
                    "[A-Za-z0-9._-]\nTry 'raftq bench --help'.\n",
                    TOPIC_MAX - 24);
            return CLI_USAGE;
        }
        snprintf(prefix, sizeof prefix, "%s", cl->topic);
    } else {
        snprintf(prefix, sizeof prefix, "bench-%lld-%d", (long long)time(NULL),
                 (int)getpid());
    }
    if (cl->token != NULL && cl->token[0] != '\0') {
        if (strpbrk(cl->token, "\r\n") != NULL) {
            fprintf(stderr, "raftq: the token holds a line break\n");
            return CLI_USAGE;
        }
        if (asprintf(&auth, "Authorization: Bearer %s\r\n", cl->token) < 0) {
            return CLI_REFUSED; /* UNTESTED: ENOMEM only. */
        }
    }
    for (size_t i = 0; i < n_cases; i++) {
        uint64_t size = cl->size != 0 ? cl->size : chosen[i]->size;
        uint64_t batch = cl->has_batch ? cl->batch : CMDLINE_DEFAULT_BATCH;
        enum kind k = chosen[i]->kind;
        if ((k == BATCH || k == READ || k == CONSUME || k == GROUP) &&
            batch * (size + RECORD_JSON) > BATCH_BODY_MAX) {
            fprintf(stderr,
                    "raftq: %s: batches of %" PRIu64 " records of %" PRIu64
                    " bytes are over %u MiB a request; give a smaller "
                    "--batch or --size\nTry 'raftq bench --help'.\n",
                    chosen[i]->id, batch, size, BATCH_BODY_MAX >> 20);
            return CLI_USAGE;
        }
    }
    code = resolve_targets(cl, targets, &n_targets);
    bool header_printed = false;
    bool failed = false;
    for (size_t i = 0; i < n_cases && code == CLI_OK; i++) {
        const struct bench_case *bc = chosen[i];
        struct run r = {
            .cl = cl,
            .c = c,
            .bc = bc,
            .kind = bc->kind,
            .targets = targets,
            .n_targets = n_targets,
            .auth = auth != NULL ? auth : "",
            .size = cl->size != 0 && bc->size != 0 ? cl->size : bc->size,
            .in_flight = cl->in_flight != 0 ? cl->in_flight : bc->in_flight,
            .partitions = cl->has_partitions ? cl->partitions : bc->partitions,
            .batch = cl->has_batch ? cl->batch : CMDLINE_DEFAULT_BATCH,
            .progress_tty = isatty(STDERR_FILENO) == 1,
        };
        snprintf(r.topic, sizeof r.topic, "%s.%s", prefix, bc->id);
        code = run_case(&r, stop, &header_printed);
        if (code == CLI_REFUSED) {
            /* This case could not be set up; the next may. */
            fprintf(stderr, "raftq bench: %s: not run\n", bc->id);
            failed = true;
            code = CLI_OK;
        }
    }
    free(auth);
    return code == CLI_OK && failed ? CLI_REFUSED : code;
}

/*
 * Component tests of libraftq (libraftq/raftq.h) against fake managers:
 * libmicrohttpd servers on loopback ports that answer the routes the
 * library calls as API.md says, keep each partition's log, and deduplicate
 * batches by producer id and sequence as the brokers do. Each test scripts
 * a fault: answers lost after the append, 503s, a refused batch, managers
 * that never recover; and checks what every message's callback said
 * against what the fake logs hold.
 */
#include <microhttpd.h>
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>
#include <jansson.h>

#include "libraftq/batch.h"
#include "libraftq/raftq.h"

#define PARTS 3
#define LOG_MAX 20000
#define BODY_MAX (8u << 20)

/* The cluster the fake managers stand for (shared by all of them). */
struct cluster {
    pthread_mutex_t lock;
    char *log[PARTS][LOG_MAX]; /* Each partition's values, in order. */
    size_t len[PARTS];
    uint64_t last_seq[PARTS]; /* Of producer 7, the only one. */
    uint64_t last_base[PARTS];
    unsigned produce_calls;
    unsigned drop_after_append; /* Answers to lose once appended. */
    int refuse_partition;       /* Answered 400, or -1. */
    /* Group "g": its member and generation (a join makes a new one of
     * each), what the member was sent, and what it did. */
    unsigned generation;
    char member[16];
    bool expire;      /* The member's next call answers 409. */
    bool fence;       /* Commits answer 409 fenced. */
    uint64_t next[2]; /* Next offset fetched from partitions 0 and 1. */
    unsigned joins, heartbeats, leaves, commits;
    char last_commit[256]; /* The last commit's body. */
    char left[16];         /* Who left. */
};

struct fake {
    struct MHD_Daemon *d;
    uint16_t port;
    struct cluster *cl;
    bool unavailable; /* Answers 503 to everything. */
    unsigned calls;
};

struct upload {
    char *data;
    size_t len;
};

static struct cluster cluster;

/* The fake's own checks run on its threads, where cmocka's cannot. */
#define must(cond)                                                        \
    do {                                                                  \
        if (!(cond)) {                                                    \
            fprintf(stderr, "fake manager: %s does not hold (line %d)\n", \
                    #cond, __LINE__);                                     \
            abort();                                                      \
        }                                                                 \
    } while (0)

static enum MHD_Result reply(struct MHD_Connection *conn, unsigned status,
                             const char *body)
{
    struct MHD_Response *r = MHD_create_response_from_buffer(
        strlen(body), (void *)body, MHD_RESPMEM_MUST_COPY);
    MHD_add_response_header(r, "Content-Type", "application/json");
    if (status == 503) {
        MHD_add_response_header(r, "Retry-After", "0");
    }
    enum MHD_Result rv = MHD_queue_response(conn, status, r);
    MHD_destroy_response(r);
    return rv;
}

static uint32_t get_u32(const unsigned char *p)
{
    return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 |
           (uint32_t)p[3] << 24;
}

/* POST /v1/topics/t/records in the binary form: appends and answers the
 * offsets, or (drop_after_append) appends and answers nothing. */
static enum MHD_Result produce(struct fake *f, struct MHD_Connection *conn,
                               const struct upload *u)
{
    const char *ps = MHD_lookup_connection_value(conn, MHD_GET_ARGUMENT_KIND,
                                                 "partition_id");
    const char *pid =
        MHD_lookup_connection_value(conn, MHD_GET_ARGUMENT_KIND, "producer_id");
    const char *ss =
        MHD_lookup_connection_value(conn, MHD_GET_ARGUMENT_KIND, "sequence");
    if (ps == NULL || pid == NULL || ss == NULL || strcmp(pid, "7") != 0 ||
        u->len < 4) {
        return reply(conn, 400,
                     "{\"status\":\"failure\",\"code\":\"invalid_request\","
                     "\"message\":\"partition_id, producer_id=7 and "
                     "sequence wanted\"}");
    }
    unsigned p = (unsigned)atoi(ps);
    uint64_t seq = strtoull(ss, NULL, 10);
    const unsigned char *b = (const unsigned char *)u->data;
    uint32_t n = get_u32(b);
    struct cluster *cl = f->cl;
    pthread_mutex_lock(&cl->lock);
    cl->produce_calls++;
    if ((int)p == cl->refuse_partition || p >= PARTS) {
        pthread_mutex_unlock(&cl->lock);
        return reply(conn, 400,
                     "{\"status\":\"failure\",\"code\":\"invalid_request\","
                     "\"message\":\"this partition refuses batches\"}");
    }
    uint64_t base;
    if (seq == cl->last_seq[p]) {
        base = cl->last_base[p]; /* A retry: appended already. */
    } else {
        must(seq > cl->last_seq[p]); /* Sequences only grow. */
        base = cl->len[p];
        size_t at = 4;
        for (uint32_t i = 0; i < n; i++) {
            int32_t kl = (int32_t)get_u32(b + at);
            uint32_t vl = get_u32(b + at + 4);
            at += 8 + (kl > 0 ? (size_t)kl : 0);
            must(at + vl <= u->len);
            must(cl->len[p] < LOG_MAX);
            cl->log[p][cl->len[p]++] = strndup(u->data + at, vl);
            at += vl;
        }
        must(at == u->len);
        cl->last_seq[p] = seq;
        cl->last_base[p] = base;
    }
    bool drop = cl->drop_after_append > 0;
    if (drop) {
        cl->drop_after_append--;
    }
    pthread_mutex_unlock(&cl->lock);
    if (drop) {
        return MHD_NO; /* Closes the connection: the answer is lost. */
    }
    size_t cap = 64 + (size_t)n * 40;
    char *out = malloc(cap);
    size_t len =
        (size_t)snprintf(out, cap, "{\"status\":\"success\",\"offsets\":[");
    for (uint32_t i = 0; i < n; i++) {
        len += (size_t)snprintf(
            out + len, cap - len, "%s{\"partition_id\":%u,\"offset\":%llu}",
            i > 0 ? "," : "", p, (unsigned long long)(base + i));
    }
    snprintf(out + len, cap - len, "]}");
    enum MHD_Result rv = reply(conn, 200, out);
    free(out);
    return rv;
}

/* The group routes of "g", on topic "t" with partitions 0 and 1. */
static enum MHD_Result group_route(struct fake *f, struct MHD_Connection *conn,
                                   const char *what, const struct upload *u)
{
    static const char gone[] =
        "{\"status\":\"failure\",\"code\":\"member_unknown\","
        "\"message\":\"member is not in group g; join again\"}";
    struct cluster *cl = f->cl;
    char out[512];
    json_t *body = u->len > 0 ? json_loadb(u->data, u->len, 0, NULL) : NULL;
    const char *member = json_string_value(json_object_get(body, "member_id"));
    if (member == NULL) {
        member = MHD_lookup_connection_value(conn, MHD_GET_ARGUMENT_KIND,
                                             "member_id");
    }
    pthread_mutex_lock(&cl->lock);
    bool known = member != NULL && strcmp(member, cl->member) == 0;
    if (strcmp(what, "join") == 0) {
        cl->joins++;
        cl->generation++;
        snprintf(cl->member, sizeof cl->member, "m%u", cl->joins);
        cl->expire = false;
        snprintf(out, sizeof out,
                 "{\"status\":\"success\",\"member_id\":\"%s\","
                 "\"generation\":%u,\"partitions\":[0,1],"
                 "\"heartbeat_interval_ms\":100}",
                 cl->member, cl->generation);
    } else if (!known || cl->expire) {
        if (cl->expire) {
            cl->member[0] = '\0'; /* Removed from the group. */
        }
        pthread_mutex_unlock(&cl->lock);
        json_decref(body);
        return reply(conn, 409, gone);
    } else if (strcmp(what, "heartbeat") == 0) {
        cl->heartbeats++;
        snprintf(out, sizeof out,
                 "{\"status\":\"success\",\"generation\":%u,"
                 "\"partitions\":[0,1]}",
                 cl->generation);
    } else if (strcmp(what, "records") == 0) {
        /* One record of each partition a fetch, key "k" on partition 1. */
        snprintf(out, sizeof out,
                 "{\"status\":\"success\",\"generation\":%u,\"records\":["
                 "{\"partition_id\":0,\"offset\":%llu,\"value\":\"a%llu\","
                 "\"key\":null,\"timestamp_ms\":5},"
                 "{\"partition_id\":1,\"offset\":%llu,\"value\":\"b%llu\","
                 "\"key\":\"k\",\"timestamp_ms\":6}]}",
                 cl->generation, (unsigned long long)cl->next[0],
                 (unsigned long long)cl->next[0],
                 (unsigned long long)cl->next[1],
                 (unsigned long long)cl->next[1]);
        cl->next[0]++;
        cl->next[1]++;
    } else if (strcmp(what, "commit") == 0 && cl->fence) {
        pthread_mutex_unlock(&cl->lock);
        json_decref(body);
        return reply(conn, 409,
                     "{\"status\":\"failure\",\"code\":\"fenced\","
                     "\"message\":\"the commit is fenced off\"}");
    } else if (strcmp(what, "commit") == 0) {
        cl->commits++;
        snprintf(cl->last_commit, sizeof cl->last_commit, "%.*s", (int)u->len,
                 u->data);
        snprintf(out, sizeof out, "{\"status\":\"success\"}");
    } else {
        cl->leaves++;
        snprintf(cl->left, sizeof cl->left, "%s", member);
        snprintf(out, sizeof out, "{\"status\":\"success\"}");
    }
    pthread_mutex_unlock(&cl->lock);
    json_decref(body);
    return reply(conn, 200, out);
}

static enum MHD_Result handle(void *cls, struct MHD_Connection *conn,
                              const char *url, const char *method,
                              const char *version, const char *data,
                              size_t *size, void **state)
{
    struct fake *f = cls;
    (void)version;
    struct upload *u = *state;
    if (u == NULL) {
        u = calloc(1, sizeof *u);
        *state = u;
        return MHD_YES;
    }
    if (*size > 0) {
        must(u->len + *size <= BODY_MAX);
        u->data = realloc(u->data, u->len + *size + 1);
        memcpy(u->data + u->len, data, *size);
        u->len += *size;
        *size = 0;
        return MHD_YES;
    }
    __atomic_add_fetch(&f->calls, 1, __ATOMIC_SEQ_CST);
    if (f->unavailable) {
        return reply(conn, 503,
                     "{\"status\":\"failure\",\"code\":\"no_leader\","
                     "\"message\":\"no leader yet\"}");
    }
    if (strcmp(method, "POST") == 0 && strcmp(url, "/producer/register") == 0) {
        return reply(conn, 200, "{\"status\":\"success\",\"producer_id\":7}");
    }
    if (strcmp(method, "GET") == 0 && strcmp(url, "/topics/partitions") == 0) {
        return reply(conn, 200,
                     "{\"status\":\"success\",\"partitions\":[{\"partition_"
                     "id\":0},{\"partition_id\":1},{\"partition_id\":2}]}");
    }
    if (strcmp(method, "POST") == 0 &&
        strcmp(url, "/v1/topics/t/records") == 0) {
        return produce(f, conn, u);
    }
    if (strncmp(url, "/v1/groups/g/", 13) == 0) {
        return group_route(f, conn, url + 13, u);
    }
    return reply(conn, 404,
                 "{\"status\":\"failure\",\"code\":\"not_found\","
                 "\"message\":\"no such route in the fake\"}");
}

static void completed(void *cls, struct MHD_Connection *conn, void **state,
                      enum MHD_RequestTerminationCode why)
{
    (void)cls;
    (void)conn;
    (void)why;
    struct upload *u = *state;
    if (u != NULL) {
        free(u->data);
        free(u);
        *state = NULL;
    }
}

static void fake_start(struct fake *f)
{
    memset(f, 0, sizeof *f);
    f->cl = &cluster;
    f->d = MHD_start_daemon(
        MHD_USE_INTERNAL_POLLING_THREAD | MHD_USE_THREAD_PER_CONNECTION, 0,
        NULL, NULL, handle, f, MHD_OPTION_NOTIFY_COMPLETED, completed, f,
        MHD_OPTION_END);
    assert_non_null(f->d);
    const union MHD_DaemonInfo *info =
        MHD_get_daemon_info(f->d, MHD_DAEMON_INFO_BIND_PORT);
    f->port = info->port;
}

/* ---- The client's side ---- */

struct outcome {
    pthread_mutex_t lock;
    size_t n;
    int err[LOG_MAX];
    uint32_t partition[LOG_MAX];
    uint64_t offset[LOG_MAX];
    unsigned calls[LOG_MAX];
    char code[LOG_MAX][16];
};

static struct outcome out;

static void on_delivery(const struct raftq_delivery *d, void *opaque)
{
    size_t i = (size_t)(uintptr_t)opaque;
    pthread_mutex_lock(&out.lock);
    out.calls[i]++;
    out.err[i] = d->err;
    out.partition[i] = d->partition;
    out.offset[i] = d->offset;
    snprintf(out.code[i], sizeof out.code[i], "%s",
             d->err != 0 ? d->e->code : "");
    pthread_mutex_unlock(&out.lock);
}

static int setup(void **state)
{
    (void)state;
    for (int p = 0; p < PARTS; p++) {
        for (size_t i = 0; i < cluster.len[p]; i++) {
            free(cluster.log[p][i]);
        }
    }
    memset(&cluster, 0, sizeof cluster);
    pthread_mutex_init(&cluster.lock, NULL);
    cluster.refuse_partition = -1;
    memset(&out, 0, sizeof out);
    pthread_mutex_init(&out.lock, NULL);
    return 0;
}

static int teardown(void **state)
{
    (void)state;
    for (int p = 0; p < PARTS; p++) {
        for (size_t i = 0; i < cluster.len[p]; i++) {
            free(cluster.log[p][i]);
        }
        cluster.len[p] = 0;
    }
    return 0;
}

/* A client of the fake managers @fs and a producer with @pc. */
static void open_producer(struct fake *fs, size_t n, uint32_t timeout_ms,
                          const struct raftq_producer_config *pc,
                          struct raftq_client **c, struct raftq_producer **p)
{
    char managers[256] = "";
    size_t len = 0;
    for (size_t i = 0; i < n; i++) {
        len += (size_t)snprintf(managers + len, sizeof managers - len,
                                "%shttp://127.0.0.1:%u", i > 0 ? "," : "",
                                fs[i].port);
    }
    struct raftq_config cfg = {.managers = managers, .timeout_ms = timeout_ms};
    struct raftq_error e;
    assert_int_equal(raftq_client_new(&cfg, c, &e), RAFTQ_OK);
    assert_int_equal(raftq_producer_new(*c, pc, p, &e), RAFTQ_OK);
}

static void produce_n(struct raftq_producer *p, size_t n, const char *key)
{
    for (size_t i = 0; i < n; i++) {
        char value[32];
        struct raftq_message m = {
            .topic = "t",
            .partition = RAFTQ_PARTITION_ANY,
            .key = key,
            .key_len = key != NULL ? strlen(key) : 0,
            .value = value,
            .value_len = (size_t)snprintf(value, sizeof value, "m%zu", i)};
        struct raftq_error e;
        assert_int_equal(
            raftq_produce(p, &m, on_delivery, (void *)(uintptr_t)i, &e),
            RAFTQ_OK);
    }
}

/* Every message delivered once, at the offset where the fake's log holds
 * it, and each partition's log in the order of the calls, no duplicate. */
static void check_delivered_once(size_t n)
{
    size_t total = 0;
    for (int p = 0; p < PARTS; p++) {
        total += cluster.len[p];
        long last = -1;
        for (size_t i = 0; i < cluster.len[p]; i++) {
            long v = atol(cluster.log[p][i] + 1);
            assert_true(v > last);
            last = v;
        }
    }
    assert_int_equal(total, n);
    for (size_t i = 0; i < n; i++) {
        assert_int_equal(out.calls[i], 1);
        assert_int_equal(out.err[i], RAFTQ_OK);
        char want[32];
        snprintf(want, sizeof want, "m%zu", i);
        assert_true(out.offset[i] < cluster.len[out.partition[i]]);
        assert_string_equal(cluster.log[out.partition[i]][out.offset[i]], want);
    }
}

static void test_producer_batches_keep_order(void **state)
{
    (void)state;
    struct fake f;
    fake_start(&f);
    struct raftq_producer_config pc;
    raftq_producer_config_init(&pc);
    pc.linger_us = 20000;
    pc.batch_bytes = 4096;
    struct raftq_client *c;
    struct raftq_producer *p;
    open_producer(&f, 1, 5000, &pc, &c, &p);
    produce_n(p, 5000, NULL);
    assert_int_equal(raftq_producer_flush(p, 10000), RAFTQ_OK);
    check_delivered_once(5000);
    struct raftq_producer_stats st;
    raftq_producer_stats(p, &st);
    assert_int_equal(st.messages, 5000);
    assert_int_equal(st.retries, 0);
    /* About 4096 / (8 + 5 bytes) messages a batch, not one a request. */
    assert_true(st.requests < 5000 / 100);
    assert_int_equal(st.requests, cluster.produce_calls);
    /* Without a key, messages went to every partition in turn. */
    for (int i = 0; i < PARTS; i++) {
        assert_true(cluster.len[i] > 0);
    }
    raftq_producer_free(p);
    raftq_client_free(c);
    MHD_stop_daemon(f.d);
}

static void test_producer_round_robin(void **state)
{
    (void)state;
    struct fake f;
    fake_start(&f);
    struct raftq_producer_config pc;
    raftq_producer_config_init(&pc);
    pc.partitioner = RAFTQ_PARTITIONER_ROUND_ROBIN;
    pc.linger_us = 50000; /* One batch per partition. */
    struct raftq_client *c;
    struct raftq_producer *p;
    open_producer(&f, 1, 5000, &pc, &c, &p);
    produce_n(p, 30, NULL);
    assert_int_equal(raftq_producer_flush(p, 10000), RAFTQ_OK);
    check_delivered_once(30);
    /* Message i in partition (first + i) % 3, in the order of the calls. */
    uint32_t first = out.partition[0];
    for (size_t i = 0; i < 30; i++) {
        assert_int_equal(out.partition[i], (first + i) % PARTS);
        assert_int_equal(out.offset[i], i / PARTS);
    }
    raftq_producer_free(p);
    raftq_client_free(c);
    MHD_stop_daemon(f.d);
}

static void test_producer_lost_answers_appended_once(void **state)
{
    (void)state;
    struct fake f[2];
    fake_start(&f[0]);
    fake_start(&f[1]);
    cluster.drop_after_append = 5;
    struct raftq_producer_config pc;
    raftq_producer_config_init(&pc);
    pc.batch_bytes = 512;
    struct raftq_client *c;
    struct raftq_producer *p;
    open_producer(f, 2, 10000, &pc, &c, &p);
    produce_n(p, 2000, NULL);
    assert_int_equal(raftq_producer_flush(p, 20000), RAFTQ_OK);
    check_delivered_once(2000);
    struct raftq_producer_stats st;
    raftq_producer_stats(p, &st);
    assert_int_equal(st.retries, 5);
    raftq_producer_free(p);
    raftq_client_free(c);
    MHD_stop_daemon(f[0].d);
    MHD_stop_daemon(f[1].d);
}

static void test_producer_moves_past_unavailable(void **state)
{
    (void)state;
    struct fake f[2];
    fake_start(&f[0]);
    fake_start(&f[1]);
    f[0].unavailable = true;
    struct raftq_client *c;
    struct raftq_producer *p;
    open_producer(f, 2, 10000, NULL, &c, &p);
    produce_n(p, 300, NULL);
    assert_int_equal(raftq_producer_flush(p, 20000), RAFTQ_OK);
    check_delivered_once(300);
    assert_true(f[0].calls > 0); /* Asked first, answered 503. */
    raftq_producer_free(p);
    raftq_client_free(c);
    MHD_stop_daemon(f[0].d);
    MHD_stop_daemon(f[1].d);
}

static void test_producer_key_partition(void **state)
{
    (void)state;
    struct fake f;
    fake_start(&f);
    struct raftq_client *c;
    struct raftq_producer *p;
    open_producer(&f, 1, 5000, NULL, &c, &p);
    produce_n(p, 100, "customer-42");
    assert_int_equal(raftq_producer_flush(p, 10000), RAFTQ_OK);
    check_delivered_once(100);
    uint32_t want = batch_key_partition("customer-42", 11, PARTS);
    assert_int_equal(cluster.len[want], 100);
    raftq_producer_free(p);
    raftq_client_free(c);
    MHD_stop_daemon(f.d);
}

static void test_producer_refused_batch_fails(void **state)
{
    (void)state;
    struct fake f;
    fake_start(&f);
    cluster.refuse_partition = 1;
    struct raftq_client *c;
    struct raftq_producer *p;
    open_producer(&f, 1, 5000, NULL, &c, &p);
    struct raftq_error e;
    for (size_t i = 0; i < 30; i++) {
        struct raftq_message m = {.topic = "t",
                                  .partition = (uint32_t)(i % PARTS),
                                  .value = "v",
                                  .value_len = 1};
        assert_int_equal(
            raftq_produce(p, &m, on_delivery, (void *)(uintptr_t)i, &e),
            RAFTQ_OK);
    }
    struct raftq_message bad = {
        .topic = "t", .partition = 3, .value = "v", .value_len = 1};
    assert_int_equal(raftq_produce(p, &bad, on_delivery, NULL, &e),
                     RAFTQ_ERR_NOT_FOUND);
    /* Not text: refused at once, alone, never sent. */
    struct raftq_message nul = {
        .topic = "t", .partition = 0, .value = "a\0b", .value_len = 3};
    assert_int_equal(raftq_produce(p, &nul, on_delivery, NULL, &e),
                     RAFTQ_ERR_INVALID);
    assert_int_equal(raftq_producer_flush(p, 10000), RAFTQ_OK);
    for (size_t i = 0; i < 30; i++) {
        assert_int_equal(out.calls[i], 1);
        if (i % PARTS == 1) {
            assert_int_equal(out.err[i], RAFTQ_ERR_INVALID);
            assert_string_equal(out.code[i], "invalid_request");
        } else {
            assert_int_equal(out.err[i], RAFTQ_OK);
        }
    }
    assert_int_equal(cluster.len[1], 0);
    raftq_producer_free(p);
    raftq_client_free(c);
    MHD_stop_daemon(f.d);
}

static void test_producer_gives_up_in_time(void **state)
{
    (void)state;
    struct fake f;
    fake_start(&f);
    struct raftq_client *c;
    struct raftq_producer *p;
    open_producer(&f, 1, 1500, NULL, &c, &p);
    produce_n(p, 10, NULL); /* Registered while the fake answers. */
    assert_int_equal(raftq_producer_flush(p, 10000), RAFTQ_OK);
    f.unavailable = true;
    struct raftq_error e;
    struct raftq_message m = {
        .topic = "t", .partition = 0, .value = "late", .value_len = 4};
    assert_int_equal(
        raftq_produce(p, &m, on_delivery, (void *)(uintptr_t)10, &e), RAFTQ_OK);
    assert_int_equal(raftq_producer_flush(p, 10000), RAFTQ_OK);
    assert_int_equal(out.calls[10], 1);
    assert_true(out.err[10] == RAFTQ_ERR_TIMEOUT ||
                out.err[10] == RAFTQ_ERR_UNAVAILABLE);
    struct raftq_producer_stats st;
    raftq_producer_stats(p, &st);
    assert_int_equal(st.failed, 1);
    assert_true(st.retries >= 1);
    raftq_producer_free(p);
    raftq_client_free(c);
    MHD_stop_daemon(f.d);
}

/* The pure parts: the body's layout, the key's partition, a batch's
 * limits. */
static void test_batch_encoding(void **state)
{
    (void)state;
    struct batch_msg *a = batch_msg_new("k", 1, "hi", 2, NULL, NULL);
    struct batch_msg *b = batch_msg_new(NULL, 0, "", 0, NULL, NULL);
    a->next = b;
    char *body;
    size_t len;
    assert_true(batch_encode(a, 2, &body, &len));
    static const unsigned char want[] = {
        2,   0,   0,   0,    1,    0,    0,    0, 2, 0, 0, 0,
        'k', 'h', 'i', 0xff, 0xff, 0xff, 0xff, 0, 0, 0, 0};
    assert_int_equal(len, sizeof want);
    assert_memory_equal(body, want, sizeof want);
    free(body);
    /* The managers' hash (manager/policy.c): FNV-1a 64 modulo n. */
    assert_int_equal(batch_key_partition("", 0, 1000),
                     0xcbf29ce484222325ull % 1000);
    assert_int_equal(batch_key_partition("a", 1, 1000),
                     0xaf63dc4c8601ec8cull % 1000);
    assert_true(batch_text_ok("h\xc3\xa9llo \xf0\x9f\x99\x82", 11));
    assert_true(batch_text_ok("", 0));
    assert_false(batch_text_ok("a\0b", 3));
    assert_false(batch_text_ok("\xc3", 1));         /* Cut short. */
    assert_false(batch_text_ok("\xc0\xaf", 2));     /* Overlong. */
    assert_false(batch_text_ok("\xed\xa0\x80", 3)); /* A surrogate. */
    assert_false(batch_text_ok("\xf4\x90\x80\x80", 4));
    struct batch_queue q = {0};
    batch_queue_push(&q, a);
    batch_queue_push(&q, b);
    size_t n, bytes;
    struct batch_msg *first = batch_queue_take(&q, 10, 1, &n, &bytes);
    assert_ptr_equal(first, a); /* At least one, whatever the limit. */
    assert_int_equal(n, 1);
    assert_int_equal(bytes, 11);
    assert_int_equal(q.n, 1);
    first = batch_queue_take(&q, 10, 1000, &n, &bytes);
    assert_ptr_equal(first, b);
    assert_null(q.head);
    assert_null(q.tail);
    free(a);
    free(b);
}

/* A counter of the fake's, read under its lock. */
static unsigned counter(const unsigned *n)
{
    pthread_mutex_lock(&cluster.lock);
    unsigned v = *n;
    pthread_mutex_unlock(&cluster.lock);
    return v;
}

/* The commit body's offsets as "P=O,P=O", and its member and generation. */
static void check_commit(const char *member, unsigned generation,
                         const char *want)
{
    pthread_mutex_lock(&cluster.lock);
    json_t *b = json_loads(cluster.last_commit, 0, NULL);
    pthread_mutex_unlock(&cluster.lock);
    assert_non_null(b);
    assert_string_equal(json_string_value(json_object_get(b, "member_id")),
                        member);
    assert_int_equal(json_integer_value(json_object_get(b, "generation")),
                     generation);
    char got[128] = "";
    size_t len = 0, i;
    json_t *o;
    json_array_foreach(json_object_get(b, "offsets"), i, o)
    {
        len += (size_t)snprintf(
            got + len, sizeof got - len, "%s%d=%d", i > 0 ? "," : "",
            (int)json_integer_value(json_object_get(o, "partition_id")),
            (int)json_integer_value(json_object_get(o, "offset")));
    }
    assert_string_equal(got, want);
    json_decref(b);
}

static void test_consumer_polls_commits_and_rejoins(void **state)
{
    (void)state;
    struct fake f;
    fake_start(&f);
    char managers[64];
    snprintf(managers, sizeof managers, "http://127.0.0.1:%u", f.port);
    struct raftq_config cfg = {.managers = managers, .timeout_ms = 5000};
    struct raftq_consumer_config cc = {.group = "g", .topic = "t"};
    struct raftq_client *c;
    struct raftq_consumer *k;
    struct raftq_error e;
    assert_int_equal(raftq_client_new(&cfg, &c, &e), RAFTQ_OK);
    assert_int_equal(raftq_consumer_new(c, &cc, &k, &e), RAFTQ_OK);
    uint32_t parts[4];
    uint64_t gen;
    assert_int_equal(raftq_consumer_assignment(k, parts, 4, &gen), 2);
    assert_int_equal(gen, 1);

    /* Two polls, then a commit: the offsets after the last records. */
    struct raftq_records *rs;
    for (int i = 0; i < 2; i++) {
        assert_int_equal(raftq_consumer_poll(k, 10, 0, &rs, &e), RAFTQ_OK);
        assert_int_equal(rs->n, 2);
        assert_int_equal(rs->records[1].partition, 1);
        assert_int_equal(rs->records[1].offset, (uint64_t)i);
        assert_string_equal(rs->records[1].key, "k");
        assert_null(rs->records[0].key);
        assert_int_equal(rs->records[0].timestamp_ms, 5);
        raftq_records_free(rs);
    }
    assert_int_equal(raftq_consumer_commit(k, &e), RAFTQ_OK);
    check_commit("m1", 1, "0=2,1=2");

    /* Its heartbeats go on their own, every 100 ms. */
    unsigned beats = counter(&cluster.heartbeats);
    for (int i = 0; i < 200 && counter(&cluster.heartbeats) < beats + 2; i++) {
        struct timespec ts = {0, 10 * 1000000};
        nanosleep(&ts, NULL); /* Polling, up to 2 s, for two beats. */
    }
    assert_true(counter(&cluster.heartbeats) >= beats + 2);

    /* A commit fenced off (another generation): said, and no new member
     * (one would leave the old holding its partitions). */
    pthread_mutex_lock(&cluster.lock);
    cluster.fence = true;
    pthread_mutex_unlock(&cluster.lock);
    assert_int_equal(raftq_consumer_poll(k, 10, 0, &rs, &e), RAFTQ_OK);
    raftq_records_free(rs);
    assert_int_equal(raftq_consumer_commit(k, &e), RAFTQ_ERR_CONFLICT);
    assert_string_equal(e.code, "fenced");
    assert_int_equal(counter(&cluster.joins), 1);
    pthread_mutex_lock(&cluster.lock);
    cluster.fence = false;
    pthread_mutex_unlock(&cluster.lock);

    /* Removed from the group: the call says so, the member joins again
     * and forgets what it fetched; nothing is committed for it. */
    pthread_mutex_lock(&cluster.lock);
    cluster.expire = true;
    pthread_mutex_unlock(&cluster.lock);
    assert_int_equal(raftq_consumer_poll(k, 10, 0, &rs, &e),
                     RAFTQ_ERR_CONFLICT);
    assert_string_equal(e.code, "member_unknown");
    assert_int_equal(raftq_consumer_assignment(k, NULL, 0, &gen), 2);
    assert_int_equal(gen, 2);
    unsigned commits = counter(&cluster.commits);
    assert_int_equal(raftq_consumer_commit(k, &e), RAFTQ_OK);
    assert_int_equal(counter(&cluster.commits), commits);
    assert_int_equal(raftq_consumer_poll(k, 10, 0, &rs, &e), RAFTQ_OK);
    raftq_records_free(rs);
    assert_int_equal(raftq_consumer_commit(k, &e), RAFTQ_OK);
    check_commit("m2", 2, "0=4,1=4");

    assert_int_equal(raftq_consumer_poll(k, 0, 0, &rs, &e), RAFTQ_ERR_INVALID);
    raftq_consumer_free(k);
    assert_int_equal(counter(&cluster.leaves), 1);
    assert_string_equal(cluster.left, "m2");
    raftq_client_free(c);
    MHD_stop_daemon(f.d);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_batch_encoding),
        cmocka_unit_test_setup_teardown(test_producer_batches_keep_order, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_producer_round_robin, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(
            test_producer_lost_answers_appended_once, setup, teardown),
        cmocka_unit_test_setup_teardown(test_producer_moves_past_unavailable,
                                        setup, teardown),
        cmocka_unit_test_setup_teardown(test_producer_key_partition, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_producer_refused_batch_fails,
                                        setup, teardown),
        cmocka_unit_test_setup_teardown(test_producer_gives_up_in_time, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_consumer_polls_commits_and_rejoins,
                                        setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}

/*
 * The NATS JetStream driver of make bench: the cases raftq is measured on,
 * run against a JetStream cluster through libnats (Debian's libnats-dev
 * 3.4), printed as one JSON line per case (tests/bench/peer_report.h),
 * never asserted. tests/bench/peers.py starts the 3-node cluster and runs
 * this program against it; it is not a tool for anything else.
 *
 * Every case gets a fresh stream of its own, replicated on 3 servers with
 * file storage and otherwise the server's defaults (so JetStream's default
 * sync interval: an acknowledged message is in the page cache of a majority
 * and on disk within two minutes), which is deleted at the end of the case
 * to give the disk back. One connection to the first URL carries all of it.
 *
 *   produce_100b_many     js_PublishAsync of 100 B for --seconds, at most
 *                         256 unacknowledged (the context's MaxPending);
 *                         msgs/s counts acknowledgements.
 *   produce_1k_many       the same with 1 KiB.
 *   produce_100b_64, produce_1k_64
 *                         the same with at most 64 unacknowledged (a second
 *                         JetStream context on the same connection), the
 *                         concurrency of raftq's produce_*_many cases.
 *   produce_1_inflight    js_Publish of 100 B, one at a time: msgs/s and
 *                         latency from the call to its acknowledgement.
 *   read_batch_1000_100b  the stream is first filled with up to 200,000
 *                         messages of 100 B (at most --seconds of filling);
 *                         then for --seconds, ephemeral pull consumers
 *                         with no acks (raftq's record reads commit nothing
 *                         either) fetch batches of 1000 from the start, one
 *                         consumer a pass over the stream; msgs/s over the
 *                         time spent fetching.
 *   read_batch_1000_1k    the same with 100,000 messages of 1 KiB.
 *   group_3x12            the stream is first filled with up to 600,000
 *                         messages of 100 B; then three threads share one
 *                         durable pull consumer with explicit acks (the
 *                         analogue of a raftq consumer group of three),
 *                         each fetching batches of 1000 and acknowledging
 *                         every message, until --seconds pass or nothing
 *                         is left; msgs/s counts the acknowledged.
 *
 * Exit status: 0 when every case ran, 1 when one failed (the log says
 * which and why), 2 on bad arguments.
 */
#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <nats/nats.h>

#include "peer_report.h"
#include "rq_log.h"

#define LOG_TAG "js_bench"

#define MAX_PENDING 256  /* Asynchronous publishes in flight. */
#define FEW_PENDING 64   /* The same, for the *_64 cases. */
#define FETCH_BATCH 1000 /* Messages a pull request asks for. */
#define API_WAIT_MS 10000
#define STREAM_WAIT_MS 30000 /* For a stream's first leader. */
#define MAX_URLS 8

struct bench {
    natsConnection *nc;
    jsCtx *js;
    jsCtx *js_few; /* MaxPending FEW_PENDING. */
    double seconds;
    /* Asynchronous acknowledgements, counted on libnats's thread. */
    atomic_uint_fast64_t acked;
    atomic_uint_fast64_t failed;
};

/* One case: its id, payload size, and how it runs. */
struct bench_case {
    const char *name;
    int size;
    int (*run)(struct bench *b, const struct bench_case *c);
    uint64_t fill; /* Messages written before a read case. */
    int pending;   /* Asynchronous publishes in flight: MAX_PENDING or
                      FEW_PENDING. */
};

static const char *last_error(natsStatus s)
{
    const char *text = nats_GetLastError(NULL);
    return text != NULL && text[0] != '\0' ? text : natsStatus_GetText(s);
}

static void on_ack(jsCtx *js, natsMsg *msg, jsPubAck *pa, jsPubAckErr *pae,
                   void *closure)
{
    struct bench *b = closure;
    (void)js;
    if (pa != NULL) {
        atomic_fetch_add(&b->acked, 1);
    } else if (atomic_fetch_add(&b->failed, 1) == 0) {
        /* One line for the first failure; the case reports the count. */
        rq_log(RQ_WARN, "async publish failed: %s",
               pae != NULL && pae->ErrText != NULL
                   ? pae->ErrText
                   : natsStatus_GetText(pae != NULL ? pae->Err : NATS_ERR));
    }
    natsMsg_Destroy(msg);
}

/*
 * Creates the R3 file stream @name holding the subject @name. Retries
 * while the cluster has no meta leader yet or cannot place 3 replicas,
 * which happens for a few seconds after the servers start.
 */
static int stream_create(struct bench *b, const char *name)
{
    const char *subjects[1] = {name};
    jsStreamConfig cfg;
    jsStreamInfo *si = NULL;
    jsErrCode jerr = 0;
    natsStatus s;
    uint64_t deadline = peer_now_ns() + STREAM_WAIT_MS * 1000000ull;
    bool logged = false;

    jsStreamConfig_Init(&cfg);
    cfg.Name = name;
    cfg.Subjects = subjects;
    cfg.SubjectsLen = 1;
    cfg.Storage = js_FileStorage;
    cfg.Replicas = 3;
    for (;;) {
        s = js_AddStream(&si, b->js, &cfg, NULL, &jerr);
        if (s == NATS_OK) {
            break;
        }
        if (peer_now_ns() > deadline) {
            rq_log(RQ_ERROR, "stream %s: not created: %s (jetstream error %d)",
                   name, last_error(s), (int)jerr);
            return -1;
        }
        if (!logged) {
            rq_log(RQ_INFO, "stream %s: not created yet, retrying: %s", name,
                   last_error(s));
            logged = true;
        }
        nats_Sleep(250);
    }
    rq_log(RQ_INFO, "stream %s: created, leader %s", name,
           si->Cluster != NULL && si->Cluster->Leader != NULL
               ? si->Cluster->Leader
               : "unknown");
    jsStreamInfo_Destroy(si);
    return 0;
}

static void stream_delete(struct bench *b, const char *name)
{
    jsErrCode jerr = 0;
    natsStatus s = js_DeleteStream(b->js, name, NULL, &jerr);
    if (s != NATS_OK) {
        rq_log(RQ_WARN, "stream %s: not deleted: %s", name, last_error(s));
    }
}

/*
 * Publishes @size-byte messages asynchronously to @subj until @max are sent
 * or @seconds pass, then waits for every acknowledgement. Fills @n with the
 * acknowledged count and @secs with the time from the first publish to the
 * last acknowledgement; 0, or -1 when a publish or acknowledgement failed.
 */
static int publish_async(struct bench *b, jsCtx *js, const char *subj, int size,
                         uint64_t max, double seconds, uint64_t *n,
                         double *secs)
{
    char *buf = malloc((size_t)size);
    jsPubOptions po;
    natsStatus s = NATS_OK;
    uint64_t sent = 0;
    uint64_t t0, deadline;
    int rv = 0;

    if (buf == NULL) {
        return -1; /* UNTESTED: ENOMEM only. */
    }
    memset(buf, 'x', (size_t)size);
    atomic_store(&b->acked, 0);
    atomic_store(&b->failed, 0);
    t0 = peer_now_ns();
    deadline = t0 + (uint64_t)(seconds * 1e9);
    while (sent < max) {
        /* The clock is read once per 64 publishes: it costs as much. */
        if (sent % 64 == 0 && peer_now_ns() >= deadline) {
            break;
        }
        s = js_PublishAsync(js, subj, buf, size, NULL);
        if (s != NATS_OK) {
            rq_log(RQ_ERROR, "%s: publish %llu failed: %s", subj,
                   (unsigned long long)sent, last_error(s));
            rv = -1;
            break;
        }
        sent++;
    }
    jsPubOptions_Init(&po);
    po.MaxWait = 60000;
    s = js_PublishAsyncComplete(js, &po);
    if (s != NATS_OK) {
        rq_log(RQ_ERROR, "%s: %llu of %llu never acknowledged: %s", subj,
               (unsigned long long)(sent - atomic_load(&b->acked)),
               (unsigned long long)sent, last_error(s));
        rv = -1;
    }
    *secs = (double)(peer_now_ns() - t0) / 1e9;
    *n = atomic_load(&b->acked);
    if (atomic_load(&b->failed) != 0) {
        rq_log(RQ_ERROR, "%s: %llu publishes failed", subj,
               (unsigned long long)atomic_load(&b->failed));
        rv = -1;
    }
    free(buf);
    return rv;
}

static int run_produce_many(struct bench *b, const struct bench_case *c)
{
    struct peer_result r = {.system = "jetstream",
                            .name = c->name,
                            .in_flight = c->pending,
                            .size = c->size};
    int rv;

    if (stream_create(b, c->name) != 0) {
        return -1;
    }
    jsCtx *js = c->pending == FEW_PENDING ? b->js_few : b->js;
    rv = publish_async(b, js, c->name, c->size, UINT64_MAX, b->seconds, &r.n,
                       &r.seconds);
    if (rv == 0) {
        peer_result_print(&r);
    }
    stream_delete(b, c->name);
    return rv;
}

static int run_produce_one(struct bench *b, const struct bench_case *c)
{
    struct peer_lat lat = {0};
    struct peer_result r = {.system = "jetstream",
                            .name = c->name,
                            .in_flight = 1,
                            .size = c->size,
                            .lat = &lat};
    char *buf = malloc((size_t)c->size);
    uint64_t t0, deadline, now;
    int rv = 0;

    if (buf == NULL) {
        return -1; /* UNTESTED: ENOMEM only. */
    }
    memset(buf, 'x', (size_t)c->size);
    if (stream_create(b, c->name) != 0) {
        free(buf);
        return -1;
    }
    t0 = now = peer_now_ns();
    deadline = t0 + (uint64_t)(b->seconds * 1e9);
    while (now < deadline) {
        jsErrCode jerr = 0;
        uint64_t start = now;
        natsStatus s =
            js_Publish(NULL, b->js, c->name, buf, c->size, NULL, &jerr);
        if (s != NATS_OK) {
            rq_log(RQ_ERROR, "%s: publish %llu failed: %s", c->name,
                   (unsigned long long)r.n, last_error(s));
            rv = -1;
            break;
        }
        now = peer_now_ns();
        if (peer_lat_add(&lat, now - start) != 0) {
            rv = -1; /* UNTESTED: ENOMEM only. */
            break;
        }
        r.n++;
    }
    r.seconds = (double)(now - t0) / 1e9;
    if (rv == 0) {
        peer_result_print(&r);
    }
    stream_delete(b, c->name);
    peer_lat_close(&lat);
    free(buf);
    return rv;
}

/*
 * One pass: reads the stream @c->name from the start with a fresh ephemeral
 * pull consumer without acknowledgements, @FETCH_BATCH a request, until
 * @filled are read or @deadline passes. Adds the messages to @r->n and the
 * time spent fetching (not creating the consumer) to @r->seconds.
 */
static int fetch_pass(struct bench *b, const struct bench_case *c,
                      uint64_t filled, uint64_t deadline, struct peer_result *r)
{
    natsSubscription *sub = NULL;
    jsSubOptions so;
    jsErrCode jerr = 0;
    natsStatus s;
    uint64_t got = 0, t0, now;
    int rv = 0;

    jsSubOptions_Init(&so);
    so.Stream = c->name;
    so.Config.AckPolicy = js_AckNone;
    so.Config.DeliverPolicy = js_DeliverAll;
    s = js_PullSubscribe(&sub, b->js, c->name, NULL, NULL, &so, &jerr);
    if (s != NATS_OK) {
        rq_log(RQ_ERROR, "%s: pull consumer not created: %s", c->name,
               last_error(s));
        return -1;
    }
    t0 = now = peer_now_ns();
    while (got < filled && now < deadline) {
        natsMsgList list = {0};
        s = natsSubscription_Fetch(&list, sub, FETCH_BATCH, 5000, &jerr);
        if (s != NATS_OK) {
            rq_log(RQ_ERROR, "%s: fetch after %llu messages failed: %s",
                   c->name, (unsigned long long)got, last_error(s));
            natsMsgList_Destroy(&list);
            rv = -1;
            break;
        }
        for (int i = 0; i < list.Count; i++) {
            if (natsMsg_GetDataLength(list.Msgs[i]) != c->size) {
                rq_log(RQ_ERROR, "%s: read a message of %d bytes", c->name,
                       natsMsg_GetDataLength(list.Msgs[i]));
                rv = -1;
            }
        }
        got += (uint64_t)list.Count;
        natsMsgList_Destroy(&list);
        now = peer_now_ns();
        if (rv != 0) {
            break;
        }
    }
    r->n += got;
    r->seconds += (double)(now - t0) / 1e9;
    natsSubscription_Unsubscribe(sub);
    natsSubscription_Destroy(sub);
    return rv;
}

/* Creates the case's stream and fills it with up to c->fill messages
 * (at most --seconds of filling); 0 and *@filled, or -1. */
static int stream_fill(struct bench *b, const struct bench_case *c,
                       uint64_t *filled)
{
    double fill_secs = 0;
    if (stream_create(b, c->name) != 0) {
        return -1;
    }
    int rv = publish_async(b, b->js, c->name, c->size, c->fill, b->seconds,
                           filled, &fill_secs);
    if (rv == 0) {
        rq_log(RQ_INFO, "%s: filled with %llu messages in %.1f s", c->name,
               (unsigned long long)*filled, fill_secs);
    }
    return rv;
}

/*
 * Fills the stream, then reads it whole again and again (a consumer a
 * pass) for --seconds, so that the figure spans more than one short pass.
 */
static int run_read_batch(struct bench *b, const struct bench_case *c)
{
    struct peer_result r = {.system = "jetstream",
                            .name = c->name,
                            .in_flight = 1,
                            .size = c->size};
    uint64_t filled = 0;
    int rv = stream_fill(b, c, &filled);
    if (rv == 0) {
        uint64_t deadline = peer_now_ns() + (uint64_t)(b->seconds * 1e9);
        int passes = 0;
        while (rv == 0 && peer_now_ns() < deadline) {
            rv = fetch_pass(b, c, filled, deadline, &r);
            passes++;
        }
        rq_log(RQ_INFO, "%s: read %llu messages in %d passes", c->name,
               (unsigned long long)r.n, passes);
    }
    if (rv == 0) {
        peer_result_print(&r);
    }
    stream_delete(b, c->name);
    return rv;
}

/* One of group_3x12's workers. */
struct group_worker {
    struct bench *b;
    const struct bench_case *c;
    uint64_t deadline;
    uint64_t acked;
    uint64_t done_ns;
    int rv;
};

static void *group_worker_run(void *arg)
{
    struct group_worker *w = arg;
    natsSubscription *sub = NULL;
    jsSubOptions so;
    jsErrCode jerr = 0;
    int empty = 0;

    jsSubOptions_Init(&so);
    so.Stream = w->c->name;
    so.Config.AckPolicy = js_AckExplicit;
    so.Config.DeliverPolicy = js_DeliverAll;
    so.Config.MaxAckPending = 3 * 2 * FETCH_BATCH;
    natsStatus s =
        js_PullSubscribe(&sub, w->b->js, w->c->name, "group", NULL, &so, &jerr);
    if (s != NATS_OK) {
        rq_log(RQ_ERROR, "%s: pull consumer not bound: %s", w->c->name,
               last_error(s));
        w->rv = -1;
        return NULL;
    }
    while (peer_now_ns() < w->deadline && empty < 3) {
        natsMsgList list = {0};
        s = natsSubscription_Fetch(&list, sub, FETCH_BATCH, 500, &jerr);
        if (s == NATS_TIMEOUT) {
            empty++;
            continue;
        }
        if (s != NATS_OK) {
            rq_log(RQ_ERROR, "%s: fetch failed: %s", w->c->name, last_error(s));
            natsMsgList_Destroy(&list);
            w->rv = -1;
            break;
        }
        empty = 0;
        for (int i = 0; i < list.Count; i++) {
            if (natsMsg_Ack(list.Msgs[i], NULL) == NATS_OK) {
                w->acked++;
            }
        }
        natsMsgList_Destroy(&list);
        /* The end is the last batch's, not the empty fetches' after it. */
        w->done_ns = peer_now_ns();
    }
    natsSubscription_Destroy(sub);
    return NULL;
}

/*
 * Fills the stream, then three workers on one durable pull consumer
 * fetch and acknowledge until --seconds pass or the stream is drained.
 */
static int run_group(struct bench *b, const struct bench_case *c)
{
    struct peer_result r = {.system = "jetstream",
                            .name = c->name,
                            .in_flight = 3,
                            .size = c->size};
    struct group_worker w[3];
    pthread_t th[3];
    uint64_t filled = 0;
    int rv = stream_fill(b, c, &filled);
    if (rv == 0) {
        uint64_t t0 = peer_now_ns();
        int started = 0;
        for (int i = 0; i < 3; i++) {
            w[i] = (struct group_worker){
                .b = b,
                .c = c,
                .deadline = t0 + (uint64_t)(b->seconds * 1e9),
                .done_ns = t0,
            };
            if (pthread_create(&th[i], NULL, group_worker_run, &w[i]) != 0) {
                rv = -1;
                break;
            }
            started++;
        }
        uint64_t end = t0;
        for (int i = 0; i < started; i++) {
            pthread_join(th[i], NULL);
            rv = rv != 0 ? rv : w[i].rv;
            r.n += w[i].acked;
            end = w[i].done_ns > end ? w[i].done_ns : end;
        }
        r.seconds = (double)(end - t0) / 1e9;
        rq_log(RQ_INFO, "%s: %llu messages acknowledged by 3 workers", c->name,
               (unsigned long long)r.n);
    }
    if (rv == 0) {
        peer_result_print(&r);
    }
    stream_delete(b, c->name);
    return rv;
}

/* A case's stream and its subject are both named by the case's id. */
static const struct bench_case CASES[] = {
    {"produce_100b_many", 100, run_produce_many, 0, MAX_PENDING},
    {"produce_1k_many", 1024, run_produce_many, 0, MAX_PENDING},
    {"produce_100b_64", 100, run_produce_many, 0, FEW_PENDING},
    {"produce_1k_64", 1024, run_produce_many, 0, FEW_PENDING},
    {"produce_1_inflight", 100, run_produce_one, 0, 1},
    {"read_batch_1000_100b", 100, run_read_batch, 200000, MAX_PENDING},
    {"read_batch_1000_1k", 1024, run_read_batch, 100000, MAX_PENDING},
    {"group_3x12", 100, run_group, 600000, MAX_PENDING},
};
#define N_CASES (sizeof CASES / sizeof CASES[0])

/* Splits @urls (modified) into @out; the count, or -1 when too many. */
static int split_urls(char *urls, const char **out)
{
    int n = 0;
    for (char *save = NULL, *u = strtok_r(urls, ",", &save); u != NULL;
         u = strtok_r(NULL, ",", &save)) {
        if (n == MAX_URLS) {
            return -1;
        }
        out[n++] = u;
    }
    return n;
}

static int connect_all(struct bench *b, const char **urls, int n_urls)
{
    natsOptions *opts = NULL;
    jsOptions jo;
    natsStatus s;

    s = natsOptions_Create(&opts);
    if (s == NATS_OK) {
        s = natsOptions_SetServers(opts, urls, n_urls);
    }
    if (s == NATS_OK) {
        s = natsOptions_SetNoRandomize(opts, true);
    }
    if (s == NATS_OK) {
        s = natsOptions_SetTimeout(opts, 5000);
    }
    if (s == NATS_OK) {
        s = natsConnection_Connect(&b->nc, opts);
    }
    natsOptions_Destroy(opts);
    if (s != NATS_OK) {
        rq_log(RQ_ERROR, "cannot connect to %s: %s", urls[0], last_error(s));
        return -1;
    }
    jsOptions_Init(&jo);
    jo.Wait = API_WAIT_MS;
    jo.PublishAsync.MaxPending = MAX_PENDING;
    jo.PublishAsync.AckHandler = on_ack;
    jo.PublishAsync.AckHandlerClosure = b;
    /* A full window waits for acknowledgements, never fails the publish. */
    jo.PublishAsync.StallWait = 60000;
    s = natsConnection_JetStream(&b->js, b->nc, &jo);
    if (s == NATS_OK) {
        jo.PublishAsync.MaxPending = FEW_PENDING;
        s = natsConnection_JetStream(&b->js_few, b->nc, &jo);
    }
    if (s != NATS_OK) {
        rq_log(RQ_ERROR, "no JetStream context: %s", last_error(s));
        return -1; /* UNTESTED: ENOMEM only. */
    }
    return 0;
}

int main(int argc, char **argv)
{
    struct bench b = {0};
    struct peer_args args;
    const char *names[N_CASES];
    const char *urls[MAX_URLS];
    int n_urls, rv = 0;

    for (size_t i = 0; i < N_CASES; i++) {
        names[i] = CASES[i].name;
    }
    rv = peer_args_parse(argc, argv, "js_bench", "nats://HOST:PORT", names,
                         N_CASES, &args);
    if (rv >= 0) {
        return rv;
    }
    rv = 0;
    b.seconds = args.seconds;
    rq_log_init("js_bench", RQ_INFO, RQ_LOG_TEXT);
    n_urls = split_urls(args.url, urls);
    if (n_urls <= 0) {
        fprintf(stderr, "js_bench: --url: 1 to %d URLs\n", MAX_URLS);
        return 2;
    }
    if (connect_all(&b, urls, n_urls) != 0) {
        rv = 1;
        goto out;
    }
    for (size_t i = 0; i < N_CASES; i++) {
        if (!peer_list_has(args.only, CASES[i].name)) {
            continue;
        }
        rq_log(RQ_INFO, "%s: running for %.1f s", CASES[i].name, b.seconds);
        if (CASES[i].run(&b, &CASES[i]) != 0) {
            rq_log(RQ_ERROR, "%s: failed", CASES[i].name);
            rv = 1;
            break;
        }
    }
out:
    jsCtx_Destroy(b.js);
    jsCtx_Destroy(b.js_few);
    natsConnection_Destroy(b.nc);
    /* Waits for libnats's threads, so that nothing of it outlives main. */
    nats_CloseAndWait(5000);
    return rv;
}

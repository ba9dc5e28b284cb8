/*
 * The partition state machine on libraft's in-memory fixture (simulated
 * network, disk and time): three servers, each with its own partition log
 * in a temporary directory behind the production rq_fsm_adapter and
 * partition_fsm_ops, fed through raft_apply with entries framed by
 * rq_entry_encode.
 *
 * A few clients play producers: each has a producer id and one request in
 * flight at a time, sends it to the current leader and sends the same
 * (producer, sequence) again when the attempt fails or times out. Before
 * proposing, the leader looks the request up in its deduplication table,
 * as the broker will. A request is done when an apply callback reports its
 * base offset. The test also plays the broker's catching-up role: a
 * replica with a gap fetches it from a peer that holds it.
 *
 * Every scenario ends by checking that the done requests tile the log
 * exactly once from offset 0, that every replica holds each request's
 * records at its offsets, that the replicas' batches are byte-identical
 * wherever they overlap, and that their logical states agree.
 */
#define _XOPEN_SOURCE 700
#include <setjmp.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>
#include <inttypes.h>
#include <raft.h>
#include <raft/fixture.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "broker/partition.h"
#include "broker/records.h"
#include "rq_entry.h"
#include "rq_err.h"
#include "rq_fsm.h"
#include "rq_wire.h"

#include "fixture_util.h"
#include "unit_util.h"

#define N_SERVERS 3
#define N_CLIENTS 3
#define MAX_DONE 1024
#define RETRY_MS 1500      /* Simulated time before a client tries again. */
#define PHASE_MAX_MS 60000 /* Simulated time any phase may take. */
#define SNAPSHOT_THRESHOLD 16
#define SNAPSHOT_TRAILING 4
#define SEGMENT_BYTES 2048
#define FETCH_CHUNK 1500
#define READ_MAX 64

struct cluster;

struct client {
    struct cluster *c;
    uint64_t producer;
    uint64_t seq;   /* Of the request in flight, or the last one. */
    uint32_t count; /* Its records. */
    bool busy;      /* Not done yet. */
    bool resend;    /* The last attempt failed: send again now. */
    raft_time sent_at;
};

/* One raft_apply of a client's request; freed by its callback. */
struct attempt {
    struct raft_apply req;
    struct client *cl;
    uint64_t seq;
};

/* A request that is done, and the base offset it got. */
struct done {
    uint64_t producer;
    uint64_t seq;
    uint32_t count;
    uint64_t base;
};

struct cluster {
    struct raft_fixture f;
    char dirs[N_SERVERS][64];
    struct rq_fsm_adapter fsms[N_SERVERS];
    struct partition *parts[N_SERVERS];
    bool cut[N_SERVERS]; /* Cut off: no fetching from or for it. */
    bool gap_seen[N_SERVERS];
    unsigned fetches[N_SERVERS]; /* Fetched ranges appended. */
    struct client clients[N_CLIENTS];
    struct done done[MAX_DONE];
    uint64_t rng;
    unsigned limit;                /* Requests that may be started in all. */
    unsigned issued;               /* Requests started. */
    unsigned completed;            /* Requests done. */
    unsigned attempts;             /* raft_apply calls accepted. */
    unsigned failed;               /* Attempt callbacks with an error. */
    unsigned deduped;              /* Requests the leader's table answered. */
    unsigned callbacks;            /* Successful attempt callbacks. */
    struct fx_anomalies anomalies; /* Things a callback could not assert. */
    struct fx_barrier barrier;     /* The settling barrier. */
    raft_index watch;              /* An entry follower_has() waits for. */
};

static struct raft *srv(struct cluster *c, unsigned i)
{
    return raft_fixture_get(&c->f, i);
}

static raft_time now(struct cluster *c)
{
    return raft_fixture_time(&c->f);
}

/* The leader (see fx_leader()), or N_SERVERS. */
static unsigned leader_of(struct cluster *c)
{
    return fx_leader(&c->f);
}

static void wait_leader(struct cluster *c)
{
    fx_wait_leader(&c->f, PHASE_MAX_MS);
}

/* ---- Records ---- */

static uint64_t tag_of(uint64_t producer, uint64_t seq)
{
    return producer * 1000000 + seq;
}

/* Record @i of request @tag: every byte follows from the two. */
static void put_record(struct rq_buf *b, uint64_t tag, uint32_t i)
{
    uint8_t v[160];
    size_t vlen = (size_t)((tag * 7 + i * 13) % sizeof v);
    for (size_t j = 0; j < vlen; j++) {
        v[j] = (uint8_t)(tag * 31 + i * 17 + j);
    }
    records_put(b, (int64_t)(tag % 1000000) * 10 + i, &tag, sizeof tag, true, v,
                vlen);
}

static void check_record(const struct record *r, uint64_t tag, uint32_t i)
{
    struct rq_buf want;
    struct records_iter it;
    struct record w;

    rq_buf_init(&want);
    put_record(&want, tag, i);
    records_iter_init(&it, want.base, want.len);
    assert_int_equal(records_next(&it, &w), 1);
    assert_true(r->timestamp_ms == w.timestamp_ms);
    assert_int_equal(r->key_len, w.key_len);
    assert_memory_equal(r->key, w.key, w.key_len);
    assert_int_equal(r->value_len, w.value_len);
    if (w.value_len > 0) {
        assert_memory_equal(r->value, w.value, w.value_len);
    }
    rq_buf_close(&want);
}

/* ---- Clients ---- */

static struct done *done_find(struct cluster *c, uint64_t producer,
                              uint64_t seq)
{
    for (unsigned k = 0; k < c->completed; k++) {
        if (c->done[k].producer == producer && c->done[k].seq == seq) {
            return &c->done[k];
        }
    }
    return NULL;
}

static void complete(struct cluster *c, struct client *cl, uint64_t base)
{
    assert_true(c->completed < MAX_DONE);
    c->done[c->completed++] =
        (struct done){cl->producer, cl->seq, cl->count, base};
    cl->busy = false;
}

static void on_applied(struct raft_apply *req, int status, void *result)
{
    struct attempt *a = req->data;
    struct client *cl = a->cl;
    struct cluster *c = cl->c;
    uint64_t base = (uint64_t)(uintptr_t)result;

    if (status != 0) {
        c->failed++;
        if (cl->busy && a->seq == cl->seq) {
            cl->resend = true;
        }
        free(a);
        return;
    }
    c->callbacks++;
    if (cl->busy && a->seq == cl->seq) {
        if (base == PARTITION_STALE) {
            fx_anomaly(&c->anomalies,
                       "the request in flight was refused as stale",
                       cl->producer, a->seq);
        } else {
            complete(c, cl, base);
        }
    } else if (base != PARTITION_STALE) {
        /* A late attempt of a request already done: the same offset. */
        struct done *d = done_find(c, cl->producer, a->seq);
        if (d == NULL || d->base != base) {
            fx_anomaly(&c->anomalies, "a retry got another offset", a->seq,
                       base);
        }
    }
    free(a);
}

/* Proposes request @seq of @cl on server @i; 0 or the raft_apply error. */
static int propose(struct cluster *c, unsigned i, struct client *cl)
{
    struct rq_buf blob, e;
    struct raft_buffer entry;
    uint64_t tag = tag_of(cl->producer, cl->seq);
    int rv;

    rq_buf_init(&blob);
    for (uint32_t k = 0; k < cl->count; k++) {
        put_record(&blob, tag, k);
    }
    struct partition_append pa = {
        cl->count,    (int64_t)(tag % 1000000) * 10 + cl->count,
        cl->producer, cl->seq,
        blob.base,    blob.len};
    rq_buf_init(&e);
    assert_int_equal(partition_entry_encode(&pa, &e), 0);
    assert_int_equal(rq_entry_encode(e.base, e.len, &entry), 0);
    rq_buf_close(&blob);
    rq_buf_close(&e);

    struct attempt *a = calloc(1, sizeof *a);
    assert_non_null(a);
    a->cl = cl;
    a->seq = cl->seq;
    a->req.data = a;
    rv = raft_apply(srv(c, i), &a->req, &entry, 1, on_applied);
    if (rv != 0) {
        raft_free(entry.base);
        free(a);
        return rv;
    }
    c->attempts++;
    return 0;
}

static void next_request(struct cluster *c, struct client *cl)
{
    cl->seq++;
    cl->count = 1 + (uint32_t)(xorshift64star(&c->rng) % 4);
    cl->busy = true;
    cl->resend = true;
    c->issued++;
}

static void client_tick(struct cluster *c, struct client *cl)
{
    if (!cl->busy) {
        if (c->issued >= c->limit) {
            return;
        }
        next_request(c, cl);
    }
    if (!cl->resend && now(c) - cl->sent_at < RETRY_MS) {
        return;
    }
    unsigned l = leader_of(c);
    if (l == N_SERVERS) {
        return;
    }
    /* The broker's look-up before proposing (a retry may be done). */
    uint64_t base;
    int rv = partition_dedupe_lookup(c->parts[l], cl->producer, cl->seq, &base);
    if (rv == 0) {
        c->deduped++;
        complete(c, cl, base);
        return;
    }
    if (rv != RQ_NOTFOUND) {
        fx_anomaly(&c->anomalies, "dedupe lookup refused the request in flight",
                   cl->producer, cl->seq);
    }
    if (propose(c, l, cl) != 0) {
        return; /* Not a leader after all: try again at the next step. */
    }
    cl->resend = false;
    cl->sent_at = now(c);
}

/* ---- The broker's catching-up role ---- */

/* Fetches one chunk of each gap from a live, connected peer holding it. */
static void broker_tick(struct cluster *c)
{
    struct rq_buf buf;
    uint64_t from, to;

    rq_buf_init(&buf);
    for (unsigned i = 0; i < N_SERVERS; i++) {
        if (!raft_fixture_alive(&c->f, i) || c->cut[i] ||
            !partition_fetch_range(c->parts[i], &from, &to)) {
            continue;
        }
        c->gap_seen[i] = true;
        for (unsigned j = 0; j < N_SERVERS; j++) {
            struct partition *peer = c->parts[j];
            if (j == i || !raft_fixture_alive(&c->f, j) || c->cut[j] ||
                partition_first_offset(peer) > from ||
                partition_local_next(peer) <= from) {
                continue;
            }
            buf.len = 0;
            assert_int_equal(
                partition_read_batches(peer, from, FETCH_CHUNK, &buf), 0);
            assert_int_equal(partition_fetched(c->parts[i], buf.base, buf.len),
                             0);
            assert_true(partition_local_next(c->parts[i]) > from);
            c->fetches[i]++;
            break;
        }
    }
    rq_buf_close(&buf);
}

/* One fixture event, then every client and the broker act. */
static void pump(void *arg)
{
    struct cluster *c = arg;
    raft_fixture_step(&c->f);
    for (unsigned i = 0; i < N_CLIENTS; i++) {
        client_tick(c, &c->clients[i]);
    }
    broker_tick(c);
}

static void run_until(struct cluster *c, unsigned limit, unsigned target)
{
    raft_time start = now(c);
    c->limit = limit;
    while (c->completed < target) {
        if (now(c) - start > PHASE_MAX_MS) {
            fail_msg("only %u of %u requests done in %u ms (leader %u)",
                     c->completed, target, PHASE_MAX_MS, leader_of(c));
        }
        pump(c);
    }
}

/* Cuts server @i off (or reconnects it), for raft and for fetching. */
static void cut(struct cluster *c, unsigned i, bool off)
{
    fx_cut(&c->f, i, off);
    c->cut[i] = off;
}

/* ---- Settling and the end-of-scenario checks ---- */

static bool gaps_left(struct cluster *c)
{
    uint64_t from, to;
    for (unsigned i = 0; i < N_SERVERS; i++) {
        if (partition_fetch_range(c->parts[i], &from, &to)) {
            return true;
        }
    }
    return false;
}

/*
 * Finishes every started request, proves a leader in its own term with a
 * barrier, steps until all three servers have applied everything up to
 * it, then lets the broker fetch every gap.
 */
static void settle(struct cluster *c)
{
    run_until(c, c->issued, c->issued);
    fx_settle(&c->f, &c->barrier, pump, c, PHASE_MAX_MS);
    raft_time start = now(c);
    while (gaps_left(c)) {
        assert_true(now(c) - start < PHASE_MAX_MS);
        pump(c);
    }
}

static int done_cmp(const void *a, const void *b)
{
    const struct done *x = a;
    const struct done *y = b;
    return x->base < y->base ? -1 : x->base > y->base;
}

/* The batches of @p from @from to its end, as stored. */
static void all_batches(struct partition *p, uint64_t from, struct rq_buf *out)
{
    rq_buf_init(out);
    uint64_t at = from;
    while (at < partition_local_next(p)) {
        size_t before = out->len;
        assert_int_equal(partition_read_batches(p, at, 1 << 16, out), 0);
        assert_true(out->len > before);
        /* Walk the headers to learn where the copy ended. */
        for (size_t r = before; r < out->len;) {
            uint32_t count = rq_wire_u32_at(out->base + r + 12);
            assert_true(rq_wire_u64_at(out->base + r + 16) == at);
            at += count;
            r += 8 + (size_t)rq_wire_u32_at(out->base + r + 4);
        }
    }
}

static void check_logs(struct cluster *c)
{
    struct done *sorted;
    uint64_t next = partition_next_offset(c->parts[0]);
    uint64_t common = 0; /* The first offset every replica holds. */

    fx_assert_no_anomalies(&c->anomalies);
    assert_int_equal(c->completed, c->issued);

    /* Every done request got its own batch: they tile [0, next). */
    sorted = malloc(c->completed * sizeof *sorted);
    assert_non_null(sorted);
    memcpy(sorted, c->done, c->completed * sizeof *sorted);
    qsort(sorted, c->completed, sizeof *sorted, done_cmp);
    uint64_t at = 0;
    for (unsigned k = 0; k < c->completed; k++) {
        if (sorted[k].base != at) {
            fail_msg("request %" PRIu64 "/%" PRIu64 " at offset %" PRIu64
                     ", expected %" PRIu64,
                     sorted[k].producer, sorted[k].seq, sorted[k].base, at);
        }
        at += sorted[k].count;
    }
    assert_true(at == next);

    for (unsigned i = 0; i < N_SERVERS; i++) {
        struct partition *p = c->parts[i];
        assert_true(partition_next_offset(p) == next);
        assert_true(partition_local_next(p) == next);
        assert_true(partition_last_index(p) ==
                    partition_last_index(c->parts[0]));
        if (partition_first_offset(p) > common) {
            common = partition_first_offset(p);
        }
    }

    /* Each replica holds each request's records at its offsets. */
    struct rq_buf scratch;
    struct record recs[READ_MAX];
    rq_buf_init(&scratch);
    for (unsigned i = 0; i < N_SERVERS; i++) {
        struct partition *p = c->parts[i];
        uint64_t first = partition_first_offset(p);
        for (unsigned k = 0; k < c->completed; k++) {
            const struct done *d = &sorted[k];
            uint32_t n;
            if (d->base < first) {
                continue; /* Deleted by retention, or never fetched. */
            }
            assert_int_equal(partition_read(p, d->base, d->count, SIZE_MAX,
                                            &scratch, recs, NULL, &n),
                             0);
            assert_int_equal(n, d->count);
            for (uint32_t r = 0; r < n; r++) {
                check_record(&recs[r], tag_of(d->producer, d->seq), r);
            }
        }
    }
    rq_buf_close(&scratch);

    /* Byte-identical batches wherever the replicas overlap, and the same
     * manifest after its first offset (which is each replica's own). */
    struct rq_buf b0, m0;
    struct raft_buffer rb;
    all_batches(c->parts[0], common, &b0);
    assert_int_equal(partition_fsm_ops.snapshot(c->parts[0], &rb), 0);
    rq_buf_init(&m0);
    rq_buf_put_bytes(&m0, rb.base, rb.len);
    raft_free(rb.base);
    for (unsigned i = 1; i < N_SERVERS; i++) {
        struct rq_buf b;
        all_batches(c->parts[i], common, &b);
        assert_int_equal(b.len, b0.len);
        assert_memory_equal(b.base, b0.base, b.len);
        rq_buf_close(&b);
        assert_int_equal(partition_fsm_ops.snapshot(c->parts[i], &rb), 0);
        assert_int_equal(rb.len, m0.len);
        assert_memory_equal((uint8_t *)rb.base + 16, m0.base + 16, m0.len - 16);
        raft_free(rb.base);
    }
    rq_buf_close(&b0);
    rq_buf_close(&m0);
    free(sorted);
    assert_true(c->completed >= 40);
}

/* ---- Setup ---- */

static int teardown(void **state)
{
    struct cluster *c = *state;
    /* Pending attempts are failed (and freed) by their callbacks here. */
    raft_fixture_close(&c->f);
    for (unsigned i = 0; i < N_SERVERS; i++) {
        partition_close(c->parts[i]);
        if (c->dirs[i][0] != '\0') {
            rm_tree(c->dirs[i]);
        }
    }
    free(c);
    return 0;
}

static int setup(void **state)
{
    struct cluster *c = calloc(1, sizeof *c);
    char why[256];

    if (c == NULL || raft_fixture_initialize(&c->f) != 0) {
        free(c);
        return -1;
    }
    *state = c;
    c->rng = 0x243f6a8885a308d3ull;
    for (unsigned i = 0; i < N_SERVERS; i++) {
        snprintf(c->dirs[i], sizeof c->dirs[i], "/tmp/partition-fx-XXXXXX");
        if (mkdtemp(c->dirs[i]) == NULL) {
            c->dirs[i][0] = '\0';
            goto err_after_fixture;
        }
        struct partition_config cfg = {c->dirs[i], SEGMENT_BYTES, 100 + i};
        if (partition_open(&cfg, &c->parts[i], why, sizeof why) != 0) {
            goto err_after_fixture;
        }
        if (fx_grow(&c->f, &c->fsms[i], &partition_fsm_ops, c->parts[i],
                    SNAPSHOT_THRESHOLD, SNAPSHOT_TRAILING) != 0) {
            goto err_after_fixture; /* UNTESTED: ENOMEM only. */
        }
    }
    for (unsigned i = 0; i < N_CLIENTS; i++) {
        c->clients[i].c = c;
        c->clients[i].producer = 0x100 + i;
    }
    if (fx_start(&c->f) != 0) {
        goto err_after_fixture; /* UNTESTED */
    }
    return 0;

err_after_fixture:
    teardown(state);
    return -1;
}

/* ---- Scenarios ---- */

static void test_partition_fixture_steady_appends(void **state)
{
    struct cluster *c = *state;

    wait_leader(c);
    run_until(c, 80, 80);
    settle(c);
    /* No faults: each request took one attempt, and its callback's offset
     * is where its records are (check_logs reads them there). */
    assert_int_equal(c->attempts, 80);
    assert_int_equal(c->failed, 0);
    assert_int_equal(c->deduped, 0);
    check_logs(c);
    for (unsigned i = 0; i < N_SERVERS; i++) {
        assert_int_equal(c->fetches[i], 0);
        assert_true(partition_first_offset(c->parts[i]) == 0);
    }
}

static void test_partition_fixture_leader_killed_and_revived(void **state)
{
    struct cluster *c = *state;

    wait_leader(c);
    run_until(c, 150, 30); /* Requests are in flight when it dies. */
    unsigned old = leader_of(c);
    raft_fixture_kill(&c->f, old);
    run_until(c, 150, 90);
    unsigned fresh = leader_of(c);
    assert_true(fresh != old && fresh < N_SERVERS);

    raft_fixture_revive(&c->f, old);
    run_until(c, 150, 150);
    settle(c);
    assert_int_equal(raft_state(srv(c, old)), RAFT_FOLLOWER);
    assert_true(c->attempts > c->completed - c->deduped); /* Retries. */
    check_logs(c);
}

static void test_partition_fixture_follower_restores_with_a_gap(void **state)
{
    struct cluster *c = *state;

    wait_leader(c);
    run_until(c, 20, 20);
    unsigned l = leader_of(c);
    unsigned f = (l + 1) % N_SERVERS;
    uint64_t held = partition_local_next(c->parts[f]);
    raft_index lagging = raft_last_applied(srv(c, f));
    cut(c, f, true);
    run_until(c, 140, 140);
    /* Several snapshots later (one every SNAPSHOT_THRESHOLD entries,
     * SNAPSHOT_TRAILING kept), the leader's log no longer reaches back to
     * what the follower lacks. */
    struct raft *lr = srv(c, leader_of(c));
    assert_true(raft_last_applied(lr) >
                lagging + 4 * SNAPSHOT_THRESHOLD + SNAPSHOT_TRAILING);
    assert_true(partition_local_next(c->parts[f]) == held);
    assert_int_equal(raft_fixture_n_recv(&c->f, f, RAFT_INSTALL_SNAPSHOT), 0);

    cut(c, f, false);
    run_until(c, 180, 180);
    settle(c);
    assert_true(raft_fixture_n_recv(&c->f, f, RAFT_INSTALL_SNAPSHOT) >= 1);
    assert_true(c->gap_seen[f]);
    assert_true(c->fetches[f] > 1);
    assert_true(partition_first_offset(c->parts[f]) == 0); /* Not reset. */
    check_logs(c);
}

static void test_partition_fixture_follower_restores_past_retention(
    void **state)
{
    struct cluster *c = *state;
    unsigned deleted;

    wait_leader(c);
    run_until(c, 20, 20);
    unsigned l = leader_of(c);
    unsigned f = (l + 2) % N_SERVERS;
    uint64_t held = partition_local_next(c->parts[f]);
    cut(c, f, true);
    run_until(c, 100, 100);
    /* The others' retention drops what the follower would need next;
     * snapshots taken after it carry the new first offset. */
    for (unsigned i = 0; i < N_SERVERS; i++) {
        if (i != f) {
            assert_int_equal(partition_retain(c->parts[i], 4 * SEGMENT_BYTES, 0,
                                              0, &deleted),
                             0);
            assert_true(deleted > 0);
            assert_true(partition_first_offset(c->parts[i]) > held);
        }
    }
    run_until(c, 140, 140);
    cut(c, f, false);
    run_until(c, 170, 170);
    settle(c);
    assert_true(c->gap_seen[f]);
    assert_true(c->fetches[f] > 0);
    /* It was reset past what it held, to a first offset a peer keeps. */
    uint64_t first = partition_first_offset(c->parts[f]);
    assert_true(first > held);
    check_logs(c);
}

static bool follower_has(struct raft_fixture *fx, void *arg)
{
    struct cluster *c = arg;
    (void)fx;
    unsigned n = 0;
    for (unsigned i = 0; i < N_SERVERS; i++) {
        n += raft_last_index(srv(c, i)) >= c->watch;
    }
    return n == N_SERVERS;
}

static void test_partition_fixture_retry_across_leader_change_appended_once(
    void **state)
{
    struct cluster *c = *state;
    struct client *cl = &c->clients[0];

    wait_leader(c);
    run_until(c, 30, 30);
    settle(c);
    unsigned old = leader_of(c);
    uint64_t next = partition_next_offset(c->parts[old]);

    /* One request, replicated to every log but not yet known committed by
     * the leader, which then dies. */
    next_request(c, cl);
    cl->count = 3;
    assert_int_equal(propose(c, old, cl), 0);
    cl->resend = false;
    cl->sent_at = now(c);
    c->watch = raft_last_index(srv(c, old)); /* The entry's index. */
    assert_true(raft_fixture_step_until(&c->f, follower_has, c, 5000));
    assert_true(raft_last_applied(srv(c, old)) < c->watch);
    raft_fixture_kill(&c->f, old);

    /* The producer retries on the new leader; the entry of the old term
     * commits with the retry's, and the retry is a duplicate. */
    wait_leader(c);
    cl->resend = true;
    unsigned attempts = c->attempts;
    run_until(c, c->issued, c->issued);
    assert_int_equal(c->attempts, attempts + 1);
    const struct done *d = &c->done[c->completed - 1];
    assert_true(d->producer == cl->producer && d->seq == cl->seq);
    assert_true(d->base == next);
    unsigned fresh = leader_of(c);
    assert_true(partition_next_offset(c->parts[fresh]) == next + 3);

    raft_fixture_revive(&c->f, old);
    run_until(c, c->issued + 20, c->issued + 20);
    settle(c);
    /* Its offsets hold it once: the done requests tile the log. */
    check_logs(c);
}

#define T(name) cmocka_unit_test_setup_teardown(name, setup, teardown)

int main(void)
{
    const struct CMUnitTest tests[] = {
        T(test_partition_fixture_steady_appends),
        T(test_partition_fixture_leader_killed_and_revived),
        T(test_partition_fixture_follower_restores_with_a_gap),
        T(test_partition_fixture_follower_restores_past_retention),
        T(test_partition_fixture_retry_across_leader_change_appended_once),
    };
    return cmocka_run_group_tests_name("partition_fixture", tests, NULL, NULL);
}

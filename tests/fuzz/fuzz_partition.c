/*
 * Fuzzes what a partition replica decodes from Raft (broker/partition.h):
 * log entries and snapshot manifests. The first byte picks.
 *
 * Entry: partition_entry_decode() on the rest; what decodes must
 * re-encode to the same bytes. Then the bytes are applied through the
 * state machine (partition_fsm_ops.apply) of a partition opened in a fresh
 * directory, twice at two Raft indexes (a malformed entry is skipped, a
 * repeated producer sequence deduplicated), and the partition must read
 * back everything it holds. Bytes that start like a merged entry are
 * applied twice too: skipped whole, or applied with a result per records
 * entry, each an offset below the new next one or PARTITION_STALE, and the
 * second time nothing new but what carries no producer.
 *
 * Manifest: partition_fsm_ops.restore() of the rest on a partition that
 * holds a batch. A refused manifest changes nothing; an accepted one must
 * give a snapshot that restores again, and leave a partition that still
 * applies entries.
 */
#include <raft.h>

#include "broker/partition.h"
#include "fuzz.h"
#include "fuzz_tmpdir.h"
#include "rq_err.h"

/* An entry of one record, producer @producer (0: none), sequence 1. */
static void put_entry(struct rq_buf *e, uint64_t producer)
{
    struct rq_buf blob;
    rq_buf_init(&blob);
    records_put(&blob, 9, NULL, 0, false, "v", 1);
    struct partition_append a = {1, 9, producer, 1, blob.base, blob.len};
    FUZZ_CHECK(partition_entry_encode(&a, e) == 0);
    rq_buf_close(&blob);
}

static void read_everything(struct partition *p)
{
    struct rq_buf scratch;
    struct record recs[32];
    uint64_t offsets[32];
    uint64_t at = partition_first_offset(p);
    rq_buf_init(&scratch);
    while (at < partition_local_next(p)) {
        uint32_t n = 0;
        int rv =
            partition_read(p, at, 32, 1u << 20, &scratch, recs, offsets, &n);
        if (rv != 0 || n == 0) {
            break;
        }
        at = offsets[n - 1] + 1;
    }
    rq_buf_close(&scratch);
}

static void fuzz_merged(struct partition *p, const uint8_t *data, size_t len)
{
    uint64_t result = 0;
    const uint64_t *results;
    size_t n;

    for (uint64_t index = 1; index <= 2; index++) {
        uint64_t next = partition_next_offset(p);
        FUZZ_CHECK(partition_fsm_ops.apply(p, index, data, len, &result) == 0);
        FUZZ_CHECK(partition_last_index(p) == index);
        if (result == PARTITION_STALE) {
            FUZZ_CHECK(partition_next_offset(p) == next);
            FUZZ_CHECK(partition_merged_results(p, index, &results, &n) ==
                       RQ_NOTFOUND);
            continue;
        }
        FUZZ_CHECK(result == index);
        FUZZ_CHECK(partition_merged_results(p, index, &results, &n) == 0);
        FUZZ_CHECK(n >= 1 && n <= PARTITION_MERGED_MAX);
        FUZZ_CHECK(partition_next_offset(p) >= next);
        for (size_t i = 0; i < n; i++) {
            FUZZ_CHECK(results[i] == PARTITION_STALE ||
                       results[i] < partition_next_offset(p) ||
                       partition_next_offset(p) == next);
        }
    }
    read_everything(p);
}

static void fuzz_entry(struct partition *p, const uint8_t *data, size_t len)
{
    struct partition_append a;
    uint64_t result = 0;

    if (len > 0 && data[0] == PARTITION_ENTRY_MERGED) {
        fuzz_merged(p, data, len);
        return;
    }

    int rv = partition_entry_decode(data, len, &a);
    FUZZ_CHECK(rv == 0 || rv == RQ_MALFORMED);
    if (rv == 0) {
        struct rq_buf out;
        rq_buf_init(&out);
        FUZZ_CHECK(partition_entry_encode(&a, &out) == 0);
        FUZZ_CHECK(out.len == len && memcmp(out.base, data, len) == 0);
        rq_buf_close(&out);
        FUZZ_CHECK(records_validate(a.blob, a.len, a.count) == 0);
    }
    uint64_t next = partition_next_offset(p);
    FUZZ_CHECK(partition_fsm_ops.apply(p, 1, data, len, &result) == 0);
    if (rv != 0) {
        FUZZ_CHECK(result == PARTITION_STALE);
        FUZZ_CHECK(partition_next_offset(p) == next);
    } else {
        FUZZ_CHECK(result == next);
        FUZZ_CHECK(partition_next_offset(p) == next + a.count);
        /* Again at a later index: a producer's retry is deduplicated. */
        FUZZ_CHECK(partition_fsm_ops.apply(p, 2, data, len, &result) == 0);
        if (a.producer_id != 0) {
            FUZZ_CHECK(result == next);
            FUZZ_CHECK(partition_next_offset(p) == next + a.count);
        } else {
            FUZZ_CHECK(result == next + a.count);
        }
    }
    read_everything(p);
}

static void fuzz_manifest(struct partition *p, const uint8_t *data, size_t len)
{
    struct rq_buf e;
    struct raft_buffer snap;
    uint64_t result;

    /* Something to restore over: one batch at index 1. */
    rq_buf_init(&e);
    put_entry(&e, 7);
    FUZZ_CHECK(partition_fsm_ops.apply(p, 1, e.base, e.len, &result) == 0);
    uint64_t next = partition_next_offset(p);
    uint64_t index = partition_last_index(p);

    int rv = partition_fsm_ops.restore(p, data, len);
    if (rv != 0) {
        FUZZ_CHECK(rv == RQ_MALFORMED);
        FUZZ_CHECK(partition_next_offset(p) == next);
        FUZZ_CHECK(partition_last_index(p) == index);
    } else {
        FUZZ_CHECK(partition_fsm_ops.snapshot(p, &snap) == 0);
        FUZZ_CHECK(partition_fsm_ops.restore(p, snap.base, snap.len) == 0);
        raft_free(snap.base);
        uint64_t from;
        uint64_t to;
        if (partition_fetch_range(p, &from, &to)) {
            FUZZ_CHECK(from < to && to == partition_next_offset(p));
        }
        /* It keeps applying: after the manifest's index, and a producer
         * the manifest may know already. */
        next = partition_next_offset(p);
        index = partition_last_index(p);
        if (index < UINT64_MAX) {
            FUZZ_CHECK(partition_fsm_ops.apply(p, index + 1, e.base, e.len,
                                               &result) == 0);
            FUZZ_CHECK(partition_last_index(p) == index + 1);
        }
    }
    read_everything(p);
    rq_buf_close(&e);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    char dir[256];
    char why[256];
    struct partition *p;

    if (size == 0) {
        return 0;
    }
    fuzz_tmpdir(dir, sizeof dir);
    struct partition_config cfg = {dir, 1u << 20, 1, NULL};
    FUZZ_CHECK(partition_open(&cfg, &p, why, sizeof why) == 0);
    if (data[0] & 1) {
        fuzz_manifest(p, data + 1, size - 1);
    } else {
        fuzz_entry(p, data + 1, size - 1);
    }
    partition_close(p);
    rm_tree(dir);
    return 0;
}

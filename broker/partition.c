/*
 * A partition replica's state machine: entries decoded and applied to the
 * partition log, the producer deduplication table, snapshot manifests, and
 * the gap a replica fetches from a peer after restoring a manifest its log
 * does not reach. Blocking file I/O through plog.c on the caller's thread;
 * no event loop, no clock.
 *
 * Design notes:
 *
 *   1. Two states live side by side. The logical state (next offset,
 *      producers, last Raft index applied, the eviction clock) is a pure
 *      function of the manifest restored last and the entries applied
 *      since, identical on every replica. The local log is what this
 *      replica holds on disk. An entry always moves the logical state; its
 *      batch is written only when the log ends exactly where the entry
 *      begins. The log is ahead when entries are replayed after a restart
 *      (the batch is already there: the raft index rule), behind while a
 *      gap is being fetched (the entry extends the gap).
 *   2. Replay after a restart: with no snapshot the logical state starts
 *      empty (offset 0, Raft index 0) and raft replays every entry; with
 *      one, restore() sets it from the manifest and raft replays the rest.
 *      Either way each entry computes the base offset and producer update
 *      it computed the first time, so the table comes back whole.
 *   3. An error writing the log (RQ_IO) leaves the logical state untouched
 *      and is returned to raft, which in 0.22.1 stops applying and calls
 *      apply for the same entry again the next time something commits. The
 *      plog refuses writes after a failed one, so the retry first reopens
 *      it (recovery cuts any torn tail). A disk that stays broken stalls
 *      this replica, visibly in the log, and never skips an entry.
 *   4. A replayed batch is checked, not trusted. The batch the log holds
 *      at an entry's base offset must be that entry's: same Raft index,
 *      count, timestamp and crc. libraft 0.15 could let a replica apply an
 *      entry that the group later replaced (an earlier term's entry
 *      committed by counting replicas, DESIGN.md section 3); 0.22.1 no
 *      longer does, and the check stays against a log that does not match
 *      the Raft log for any other reason (damage, a bug). Such a batch
 *      would survive a restart and the replay would skip the entry that
 *      replaced it. A batch that differs is cut off with everything after
 *      it and the entry written in its place.
 *   5. The producer table is shared/rq_dedupe.h's deduplication table (the
 *      ATM ledger's origins use the same one): at most
 *      PARTITION_PRODUCERS_MAX producers, the least recently used by its
 *      own clock evicted first, alike on every replica. It keeps each
 *      producer's batch (struct producer) beside its sequence.
 *
 * Transitions of the replica (local next L, logical next N):
 *
 *     EVEN (L == N) -> GAP (L < N)       [fsm_restore: manifest past L]
 *     GAP -> GAP (N grows)               [fsm_apply: nothing written]
 *     GAP -> EVEN                        [partition_fetched: gap filled]
 *     EVEN -> AHEAD (L > N)              [partition_open, fsm_restore: the
 *                                         log holds more than applied]
 *     AHEAD -> EVEN                      [fsm_apply: replay catches up]
 *     AHEAD -> EVEN or GAP               [fsm_apply: an entry the log has
 *                                         no batch for cuts the log back
 *                                         to its last batch below the
 *                                         entry]
 *     AHEAD -> EVEN                      [fsm_apply: a replayed entry that
 *                                         differs from the batch at its
 *                                         base cuts the log there]
 *     any -> GAP or EVEN                 [fsm_restore: manifest first past
 *                                         L resets the log to it]
 */
#include "partition.h"

#include <assert.h>
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>

#include "plog.h"
#include "rq_dedupe.h"
#include "rq_entry.h"
#include "rq_err.h"
#include "rq_log.h"

#define LOG_TAG "partition"

#define MANIFEST_VERSION 1
#define MANIFEST_HEADER 44
#define MANIFEST_PRODUCER 36

/* What a producer's entry in the deduplication table keeps. */
struct producer {
    uint64_t base;  /* Its batch's first offset. */
    uint32_t count; /* Its batch's records. */
};

struct partition {
    struct plog *log;
    char *dir; /* Owned, for reopening the log. */
    uint64_t segment_bytes;
    uint64_t group_id;
    struct rq_metric *sync_seconds; /* Borrowed; may be NULL. */
    bool broken;           /* The log refused a write: reopen it first. */
    uint64_t next;         /* Logical next offset. */
    uint64_t last_index;   /* Raft index of the last entry applied. */
    struct rq_dedupe prod; /* Values: struct producer. */
    void (*on_change)(void *data, struct partition *p);
    void *on_change_data;
    /* The sync fsm_snapshot began, until the node takes it. */
    struct plog_sync_job *sync_job;
    /* The results of the last merged entries applied, oldest overwritten
     * first (partition_merged_results). */
    struct merged_results {
        uint64_t index;
        uint64_t *results; /* Owned. */
        size_t n;
    } merged[PARTITION_MERGED_KEPT];
    unsigned merged_next;
    uint64_t last_merged; /* Raft index of the last merged entry applied. */
};

struct manifest {
    uint64_t first;
    uint64_t next;
    uint64_t last_index;
    struct rq_dedupe prod; /* Owned until handed over. */
};

#define GID(p) ((unsigned long long)(p)->group_id)

/* ---- Entries ---- */

/*
 * type:u8 (1 = records) | pad:u8[3] | count:u32 | max_timestamp_ms:i64
 * | producer_id:u64 (0: none) | sequence:u64 | records blob (records.h)
 */
int partition_entry_encode(const struct partition_append *a, struct rq_buf *out)
{
    if (a->count == 0 || records_validate(a->blob, a->len, a->count) != 0) {
        return RQ_INVALID;
    }
    rq_buf_put_u8(out, PARTITION_ENTRY_RECORDS);
    rq_buf_put_u8(out, 0);
    rq_buf_put_u16(out, 0);
    rq_buf_put_u32(out, a->count);
    rq_buf_put_u64(out, (uint64_t)a->max_timestamp_ms);
    rq_buf_put_u64(out, a->producer_id);
    rq_buf_put_u64(out, a->sequence);
    rq_buf_put_bytes(out, a->blob, a->len);
    return out->err;
}

int partition_entry_alloc(const struct partition_append *a,
                          struct raft_buffer *out, uint8_t **blob)
{
    uint8_t *p;
    if (a->len > SIZE_MAX - PARTITION_ENTRY_HEADER) {
        return RQ_TOOBIG;
    }
    int rv = rq_entry_alloc(PARTITION_ENTRY_HEADER + a->len, out, &p);
    if (rv != 0) {
        return rv;
    }
    /* The layout partition_entry_encode() writes, at fixed positions. */
    p[0] = PARTITION_ENTRY_RECORDS;
    p[1] = 0;
    rq_wire_put_u16_at(p + 2, 0);
    rq_wire_put_u32_at(p + 4, a->count);
    rq_wire_put_u64_at(p + 8, (uint64_t)a->max_timestamp_ms);
    rq_wire_put_u64_at(p + 16, a->producer_id);
    rq_wire_put_u64_at(p + 24, a->sequence);
    *blob = p + PARTITION_ENTRY_HEADER;
    return 0;
}

int partition_entry_decode(const uint8_t *p, size_t len,
                           struct partition_append *out)
{
    struct rq_cursor c;
    struct partition_append a;
    uint8_t type;
    uint8_t pad8;
    uint16_t pad16;
    uint64_t ts;

    rq_cursor_init(&c, p, len);
    if (rq_wire_get_u8(&c, &type) != 0 || type != PARTITION_ENTRY_RECORDS ||
        rq_wire_get_u8(&c, &pad8) != 0 || pad8 != 0 ||
        rq_wire_get_u16(&c, &pad16) != 0 || pad16 != 0 ||
        rq_wire_get_u32(&c, &a.count) != 0 || a.count == 0 ||
        rq_wire_get_u64(&c, &ts) != 0 ||
        rq_wire_get_u64(&c, &a.producer_id) != 0 ||
        rq_wire_get_u64(&c, &a.sequence) != 0) {
        return RQ_MALFORMED;
    }
    a.max_timestamp_ms = (int64_t)ts;
    a.blob = c.p;
    a.len = c.left;
    if (records_validate(a.blob, a.len, a.count) != 0) {
        return RQ_MALFORMED;
    }
    *out = a;
    return 0;
}

/*
 * type:u8 (2 = merged) | pad:u8[3] | n:u32 | n x (len:u32 | records entry)
 */
int partition_merged_alloc(const struct raft_buffer *entries, size_t n,
                           struct raft_buffer *out)
{
    const uint8_t *payload;
    size_t len;
    size_t total = 8;

    if (n == 0 || n > PARTITION_MERGED_MAX) {
        return RQ_INVALID;
    }
    for (size_t i = 0; i < n; i++) {
        if (rq_entry_decode(&entries[i], &payload, &len) != 0 || len == 0 ||
            payload[0] != PARTITION_ENTRY_RECORDS || len > UINT32_MAX) {
            return RQ_INVALID;
        }
        if (len > RQ_ENTRY_MAX - total - 4) {
            return RQ_TOOBIG;
        }
        total += 4 + len;
    }
    uint8_t *q;
    int rv = rq_entry_alloc(total, out, &q);
    if (rv != 0) {
        return rv;
    }
    q[0] = PARTITION_ENTRY_MERGED;
    q[1] = 0;
    rq_wire_put_u16_at(q + 2, 0);
    rq_wire_put_u32_at(q + 4, (uint32_t)n);
    q += 8;
    for (size_t i = 0; i < n; i++) {
        rq_entry_decode(&entries[i], &payload, &len);
        rq_wire_put_u32_at(q, (uint32_t)len);
        memcpy(q + 4, payload, len);
        q += 4 + len;
    }
    return 0;
}

uint64_t partition_last_merged(const struct partition *p)
{
    return p->last_merged;
}

int partition_merged_results(const struct partition *p, uint64_t index,
                             const uint64_t **results, size_t *n)
{
    for (size_t i = 0; i < PARTITION_MERGED_KEPT; i++) {
        const struct merged_results *m = &p->merged[i];
        if (m->results != NULL && m->index == index) {
            *results = m->results;
            *n = m->n;
            return 0;
        }
    }
    return RQ_NOTFOUND;
}

/* ---- Opening and closing ---- */

static void notify(struct partition *p)
{
    if (p->on_change != NULL) {
        p->on_change(p->on_change_data, p);
    }
}

static int log_open(struct partition *p, struct plog **out, char *why,
                    size_t whyn)
{
    struct plog_config cfg = {p->dir, p->segment_bytes, 0, p->sync_seconds};
    return plog_open(&cfg, out, why, whyn);
}

int partition_open(const struct partition_config *cfg, struct partition **out,
                   char *why, size_t whyn)
{
    struct partition *p = calloc(1, sizeof *p);
    int rv;

    if (p == NULL) {
        rq_why(why, whyn, "out of memory"); /* UNTESTED: ENOMEM only. */
        return RQ_NOMEM;
    }
    rq_dedupe_init(&p->prod, PARTITION_PRODUCERS_MAX, sizeof(struct producer));
    p->segment_bytes = cfg->segment_bytes;
    p->sync_seconds = cfg->sync_seconds;
    p->group_id = cfg->group_id;
    p->dir = cfg->dir != NULL ? strdup(cfg->dir) : NULL;
    if (p->dir == NULL) {
        rq_why(why, whyn, "%s",
               cfg->dir == NULL ? "no log directory" : "out of memory");
        rv = cfg->dir == NULL ? RQ_INVALID : RQ_NOMEM;
        goto err_after_alloc;
    }
    rv = log_open(p, &p->log, why, whyn);
    if (rv != 0) {
        goto err_after_dir;
    }
    /* Nothing applied yet: raft restores a manifest or replays from the
     * start (design note 2). */
    rq_log(RQ_INFO,
           "group %llu: opened log [%" PRIu64 ", %" PRIu64
           ") raft index %" PRIu64,
           GID(p), plog_first_offset(p->log), plog_next_offset(p->log),
           plog_last_raft_index(p->log));
    *out = p;
    return 0;

err_after_dir:
    free(p->dir);
err_after_alloc:
    free(p);
    return rv;
}

/* Runs here, on the loop, the sync of a snapshot that was taken but not
 * stored through rq_node (libraft's fixture in the unit tests, or a put
 * libraft gave up on), if there is one. */
static void sync_leftover(struct partition *p)
{
    if (p->sync_job != NULL) {
        plog_sync_end(p->log, p->sync_job, plog_sync_run(p->sync_job));
        p->sync_job = NULL;
    }
}

void partition_close(struct partition *p)
{
    if (p == NULL) {
        return;
    }
    sync_leftover(p);
    plog_close(p->log);
    rq_dedupe_close(&p->prod);
    for (size_t i = 0; i < PARTITION_MERGED_KEPT; i++) {
        free(p->merged[i].results);
    }
    free(p->dir);
    free(p);
}

/*
 * Makes the log writable again after a write failed: a fresh open
 * recovers it (cutting any torn tail); the broken one is closed after,
 * so a failed reopen keeps it for reads.
 */
static int log_repair(struct partition *p)
{
    struct plog *l;
    char why[256];

    if (!p->broken) {
        return 0;
    }
    int rv = log_open(p, &l, why, sizeof why);
    if (rv != 0) {
        rq_log(RQ_ERROR, "group %llu: reopening the log failed: %s", GID(p),
               why);
        return RQ_IO;
    }
    plog_close(p->log);
    p->log = l;
    p->broken = false;
    rq_log(RQ_INFO, "group %llu: log reopened at offset %" PRIu64, GID(p),
           plog_next_offset(l));
    return 0;
}

/* Notes a failed plog write: RQ_IO means the log refuses more writes. */
static int log_failed(struct partition *p, int rv, const char *what)
{
    if (rv == RQ_IO) {
        p->broken = true;
    }
    rq_log(RQ_ERROR, "group %llu: %s failed: %s", GID(p), what,
           rq_strerror(rv));
    return rv;
}

/* ---- Applying ---- */

/*
 * Design note 4: whether the log's batch at @base is entry @index's, for an
 * entry the log claims to hold already. *same is true when there is
 * nothing to compare (@base outside the log).
 */
static int replay_matches(struct partition *p, uint64_t index,
                          const struct partition_append *a, uint64_t base,
                          bool *same)
{
    struct plog_batch b;

    *same = true;
    if (base < plog_first_offset(p->log) || base >= plog_next_offset(p->log)) {
        return 0;
    }
    int rv = plog_batch_at(p->log, base, &b);
    if (rv == RQ_NOTFOUND) {
        *same = false; /* The log's batches are cut elsewhere. */
        return 0;
    }
    if (rv != 0) {
        return log_failed(p, RQ_IO, "reading a replayed batch");
    }
    *same = b.raft_index == index && b.count == a->count &&
            b.max_timestamp_ms == a->max_timestamp_ms &&
            b.crc == plog_batch_crc(base, index, a->count, a->max_timestamp_ms,
                                    a->blob, a->len);
    return 0;
}

/* Writes the batch of entry @index at the logical @base, as design note 1
 * says: only when the local log ends exactly there. */
static int write_entry(struct partition *p, uint64_t index,
                       const struct partition_append *a, uint64_t base)
{
    uint64_t local;
    uint64_t got;
    bool same;
    int rv;

    if (index <= plog_last_raft_index(p->log)) {
        rv = replay_matches(p, index, a, base, &same);
        if (rv != 0) {
            return rv;
        }
        if (same) {
            return 0; /* Already on disk. */
        }
        rq_log(RQ_ERROR,
               "group %llu: the log's batch at offset %" PRIu64
               " is not entry %" PRIu64 "'s: cutting the log back there",
               GID(p), base, index);
        rv = plog_truncate(p->log, base);
        if (rv != 0) {
            return log_failed(p, rv == RQ_NOTFOUND ? RQ_IO : rv, "log cut");
        }
    }
    local = plog_next_offset(p->log);
    if (local < base) {
        return 0; /* A gap: the entry extends it. */
    }
    if (local > base) {
        /* The log holds batches no applied entry accounts for (say its
         * Raft log was lost): they cannot be served as this partition's.
         * What lies below @base is what the manifest or the entries
         * applied account for, so only the batches from @base on go (a
         * batch that straddles @base goes too, and the entry then extends
         * a gap fetched from a peer). A log that starts past @base, or is
         * corrupt before it, has nothing to keep and starts over there. */
        rv = plog_keep_below(p->log, base);
        if (rv == RQ_NOTFOUND || rv == RQ_MALFORMED) {
            rv = plog_reset(p->log, base, 0);
        }
        if (rv != 0) {
            return log_failed(p, rv, "log cut");
        }
        rq_log(RQ_ERROR,
               "group %llu: log ended at %" PRIu64 " past the applied %" PRIu64
               " at entry %" PRIu64 ": cut back to %" PRIu64,
               GID(p), local, base, index, plog_next_offset(p->log));
        local = plog_next_offset(p->log);
        if (local < base) {
            return 0; /* A gap: the entry extends it. */
        }
    }
    rv = plog_append(p->log, index, a->blob, a->len, a->count,
                     a->max_timestamp_ms, &got);
    if (rv != 0) {
        /* Anything but a write error was ruled out by decoding. */
        return log_failed(p, rv == RQ_NOMEM ? rv : RQ_IO, "append");
    }
    assert(got == base);
    return 0;
}

/* A records entry of a merged entry, decoded, and what applying it did. */
struct merged_sub {
    struct partition_append a;
    bool fresh; /* Appended (not a retry, not stale). */
};

/* Decodes the merged entry @payload into *subs (n of them, allocated);
 * RQ_MALFORMED, RQ_NOMEM. */
static int merged_decode(const uint8_t *payload, size_t len,
                         struct merged_sub **subs, uint32_t *n)
{
    struct rq_cursor c;
    uint8_t type;
    uint8_t pad8;
    uint16_t pad16;

    rq_cursor_init(&c, payload, len);
    if (rq_wire_get_u8(&c, &type) != 0 || type != PARTITION_ENTRY_MERGED ||
        rq_wire_get_u8(&c, &pad8) != 0 || pad8 != 0 ||
        rq_wire_get_u16(&c, &pad16) != 0 || pad16 != 0 ||
        rq_wire_get_u32(&c, n) != 0 || *n == 0 || *n > PARTITION_MERGED_MAX) {
        return RQ_MALFORMED;
    }
    *subs = calloc(*n, sizeof **subs);
    if (*subs == NULL) {
        return RQ_NOMEM; /* UNTESTED: ENOMEM only. */
    }
    for (uint32_t i = 0; i < *n; i++) {
        uint32_t l;
        if (rq_wire_get_u32(&c, &l) != 0 || l > c.left ||
            partition_entry_decode(c.p, l, &(*subs)[i].a) != 0) {
            free(*subs);
            return RQ_MALFORMED;
        }
        c.p += l;
        c.left -= l;
    }
    if (c.left != 0) {
        free(*subs);
        return RQ_MALFORMED;
    }
    return 0;
}

/*
 * Applies the merged entry @index: decides each records entry as its own
 * entry would be (a retry of an earlier one, in the table or in this
 * entry, gets the original's offset; an older sequence is stale), writes
 * what is appended as one batch, and only then changes the producer table,
 * so a failed write (RQ_IO, retried by raft) has changed nothing.
 */
static int apply_merged(struct partition *p, uint64_t index,
                        const uint8_t *payload, size_t len, uint64_t *result)
{
    struct merged_sub *subs;
    uint32_t n;
    uint64_t next = p->next;
    uint32_t new_producers = 0;
    size_t blob_len = 0;
    size_t n_fresh = 0;
    size_t last_fresh = 0;
    int64_t max_ts = INT64_MIN;

    int rv = merged_decode(payload, len, &subs, &n);
    if (rv == RQ_MALFORMED) {
        rq_log(RQ_ERROR,
               "group %llu: merged entry %" PRIu64
               ": malformed (%zu bytes), skipped",
               GID(p), index, len);
        return 0;
    }
    if (rv != 0) {
        return rv; /* UNTESTED: ENOMEM only. */
    }
    uint64_t *results = malloc(n * sizeof *results);
    if (results == NULL) {
        free(subs); /* UNTESTED: ENOMEM only. */
        return RQ_NOMEM;
    }
    for (uint32_t i = 0; i < n; i++) {
        const struct partition_append *a = &subs[i].a;
        results[i] = PARTITION_STALE;
        if (a->producer_id != 0) {
            bool known = false;
            uint64_t seq = 0;
            uint64_t base = 0;
            for (uint32_t j = i; j-- > 0;) {
                if (subs[j].fresh && subs[j].a.producer_id == a->producer_id) {
                    known = true;
                    seq = subs[j].a.sequence;
                    base = results[j];
                    break;
                }
            }
            if (!known) {
                struct rq_dedupe_entry *e =
                    rq_dedupe_find(&p->prod, a->producer_id);
                if (e != NULL) {
                    known = true;
                    seq = e->seq;
                    base = ((const struct producer *)rq_dedupe_value(e))->base;
                } else {
                    new_producers++; /* At most: one may repeat. */
                }
            }
            if (known && a->sequence == seq) {
                results[i] = base; /* A retry: appended once already. */
                continue;
            }
            if (known && a->sequence < seq) {
                continue; /* Stale: a later sequence was applied. */
            }
        }
        if (a->count > UINT64_MAX - next ||
            next + a->count - p->next > UINT32_MAX) {
            rq_log(RQ_ERROR,
                   "group %llu: merged entry %" PRIu64 ": offsets overflow",
                   GID(p), index);
            free(subs);
            free(results);
            return 0; /* Skipped whole, alike on every replica. */
        }
        results[i] = next;
        next += a->count;
        subs[i].fresh = true;
        blob_len += a->len;
        max_ts = a->max_timestamp_ms > max_ts ? a->max_timestamp_ms : max_ts;
        n_fresh++;
        last_fresh = i;
    }
    if (n_fresh > 0) {
        if (new_producers > 0) {
            rv = rq_dedupe_reserve(&p->prod,
                                   rq_dedupe_count(&p->prod) + new_producers);
        }
        struct partition_append all = {
            .count = (uint32_t)(next - p->next),
            .max_timestamp_ms = max_ts,
            .blob = subs[last_fresh].a.blob,
            .len = blob_len,
        };
        uint8_t *joined = NULL;
        if (rv == 0 && n_fresh > 1) {
            joined = malloc(blob_len);
            if (joined == NULL) {
                rv = RQ_NOMEM; /* UNTESTED: ENOMEM only. */
            }
            size_t at = 0;
            for (uint32_t i = 0; joined != NULL && i < n; i++) {
                if (subs[i].fresh) {
                    memcpy(joined + at, subs[i].a.blob, subs[i].a.len);
                    at += subs[i].a.len;
                }
            }
            all.blob = joined;
        }
        if (rv == 0) {
            rv = write_entry(p, index, &all, p->next);
        }
        free(joined);
        if (rv != 0) {
            free(subs);
            free(results);
            return rv;
        }
        for (uint32_t i = 0; i < n; i++) {
            const struct partition_append *a = &subs[i].a;
            if (subs[i].fresh && a->producer_id != 0) {
                struct producer *pr = rq_dedupe_value(
                    rq_dedupe_put(&p->prod, a->producer_id, a->sequence));
                pr->base = results[i];
                pr->count = a->count;
            }
        }
        p->next = next;
    }
    free(subs);
    struct merged_results *m =
        &p->merged[p->merged_next++ % PARTITION_MERGED_KEPT];
    free(m->results);
    *m = (struct merged_results){.index = index, .results = results, .n = n};
    p->last_merged = index;
    *result = index;
    return 0;
}

static int fsm_apply(void *data, uint64_t index, const uint8_t *payload,
                     size_t len, uint64_t *result)
{
    struct partition *p = data;
    struct partition_append a;
    struct rq_dedupe_entry *e = NULL;
    int rv;

    *result = PARTITION_STALE;
    if (index <= p->last_index) {
        return 0; /* Applied already: changes nothing. */
    }
    rv = log_repair(p);
    if (rv != 0) {
        return rv;
    }
    if (len > 0 && payload[0] == PARTITION_ENTRY_MERGED) {
        rv = apply_merged(p, index, payload, len, result);
        if (rv != 0) {
            return rv;
        }
        goto done;
    }
    if (partition_entry_decode(payload, len, &a) != 0) {
        rq_log(RQ_ERROR,
               "group %llu: entry %" PRIu64 ": malformed (%zu bytes), skipped",
               GID(p), index, len);
        goto done;
    }
    if (a.count > UINT64_MAX - p->next) {
        rq_log(RQ_ERROR, "group %llu: entry %" PRIu64 ": offsets overflow",
               GID(p), index);
        goto done;
    }
    if (a.producer_id != 0) {
        e = rq_dedupe_find(&p->prod, a.producer_id);
        if (e != NULL && a.sequence == e->seq) {
            /* A retry: appended once already. */
            *result = ((const struct producer *)rq_dedupe_value(e))->base;
            goto done;
        }
        if (e != NULL && a.sequence < e->seq) {
            goto done; /* Stale: a later sequence was applied. */
        }
        if (e == NULL) {
            rv = rq_dedupe_reserve(&p->prod, rq_dedupe_count(&p->prod) + 1);
            if (rv != 0) {
                return rv; /* UNTESTED: ENOMEM only. */
            }
        }
    }
    uint64_t base = p->next;
    rv = write_entry(p, index, &a, base);
    if (rv != 0) {
        return rv;
    }
    if (a.producer_id != 0) {
        struct producer *pr =
            rq_dedupe_value(rq_dedupe_put(&p->prod, a.producer_id, a.sequence));
        pr->base = base;
        pr->count = a.count;
    }
    p->next = base + a.count;
    *result = base;

done:
    p->last_index = index;
    notify(p);
    return 0;
}

int partition_dedupe_lookup(const struct partition *p, uint64_t producer_id,
                            uint64_t sequence, uint64_t *base)
{
    const struct rq_dedupe_entry *e =
        producer_id != 0 ? rq_dedupe_find(&p->prod, producer_id) : NULL;
    if (e == NULL || sequence > e->seq) {
        return RQ_NOTFOUND;
    }
    if (sequence < e->seq) {
        return RQ_INVALID;
    }
    *base = ((const struct producer *)rq_dedupe_value(e))->base;
    return 0;
}

/* ---- Snapshot manifests ---- */

/*
 * version:u32 | pad:u32 | first_offset:u64 | next_offset:u64
 * | last_raft_index:u64 | ops:u64 | n_producers:u32
 * | n x (producer_id:u64 | sequence:u64 | base:u64 | count:u32
 *        | last_used:u64)
 *
 * Producers go out sorted by id, never in pool order, which depends on
 * the history of evictions. The first offset is the local log's, never
 * above the logical next.
 */
static int manifest_encode(const struct partition *p, uint8_t **out,
                           size_t *len)
{
    uint32_t count = rq_dedupe_count(&p->prod);
    size_t n = MANIFEST_HEADER + (size_t)count * MANIFEST_PRODUCER;
    const struct rq_dedupe_entry **sorted = NULL;
    uint8_t *b = raft_malloc(n);
    uint64_t first = plog_first_offset(p->log);

    if (b == NULL || rq_dedupe_sorted(&p->prod, &sorted) != 0) {
        raft_free(b); /* UNTESTED: ENOMEM only. */
        return RQ_NOMEM;
    }
    rq_wire_put_u32_at(b, MANIFEST_VERSION);
    rq_wire_put_u32_at(b + 4, 0);
    rq_wire_put_u64_at(b + 8, first < p->next ? first : p->next);
    rq_wire_put_u64_at(b + 16, p->next);
    rq_wire_put_u64_at(b + 24, p->last_index);
    rq_wire_put_u64_at(b + 32, rq_dedupe_ops(&p->prod));
    rq_wire_put_u32_at(b + 40, count);
    uint8_t *q = b + MANIFEST_HEADER;
    for (uint32_t i = 0; i < count; i++, q += MANIFEST_PRODUCER) {
        const struct producer *pr = rq_dedupe_value(sorted[i]);
        rq_wire_put_u64_at(q, sorted[i]->id);
        rq_wire_put_u64_at(q + 8, sorted[i]->seq);
        rq_wire_put_u64_at(q + 16, pr->base);
        rq_wire_put_u32_at(q + 24, pr->count);
        rq_wire_put_u64_at(q + 28, sorted[i]->last_used);
    }
    free(sorted);
    *out = b;
    *len = n;
    return 0;
}

/*
 * Decodes a manifest into @m (its producer table fresh) and checks all
 * the encoder guarantees: version and padding, first <= next, the
 * producer bound and exact length, ids nonzero and ascending, batches
 * within the offsets, last_used values distinct and within the clock.
 */
static int manifest_decode(const uint8_t *buf, size_t len, struct manifest *m)
{
    struct rq_cursor c;
    uint32_t version;
    uint32_t pad;
    uint32_t n;
    int rv;

    uint64_t ops;

    memset(m, 0, sizeof *m);
    rq_dedupe_init(&m->prod, PARTITION_PRODUCERS_MAX, sizeof(struct producer));
    rq_cursor_init(&c, buf, len);
    if (rq_wire_get_u32(&c, &version) != 0 || version != MANIFEST_VERSION ||
        rq_wire_get_u32(&c, &pad) != 0 || pad != 0 ||
        rq_wire_get_u64(&c, &m->first) != 0 ||
        rq_wire_get_u64(&c, &m->next) != 0 || m->first > m->next ||
        rq_wire_get_u64(&c, &m->last_index) != 0 ||
        rq_wire_get_u64(&c, &ops) != 0 || rq_wire_get_u32(&c, &n) != 0 ||
        n > PARTITION_PRODUCERS_MAX ||
        c.left != (size_t)n * MANIFEST_PRODUCER) {
        return RQ_MALFORMED;
    }
    rv = rq_dedupe_load_begin(&m->prod, ops, n);
    if (rv != 0) {
        return rv; /* UNTESTED: ENOMEM only. */
    }
    for (uint32_t k = 0; k < n; k++) {
        uint64_t id;
        uint64_t seq;
        uint64_t last_used;
        struct producer pr;
        struct producer *v;
        rq_wire_get_u64(&c, &id);
        rq_wire_get_u64(&c, &seq);
        rq_wire_get_u64(&c, &pr.base);
        rq_wire_get_u32(&c, &pr.count);
        rq_wire_get_u64(&c, &last_used);
        if (id == 0 || pr.count == 0 || pr.base > m->next ||
            pr.count > m->next - pr.base ||
            (v = rq_dedupe_load(&m->prod, id, seq, last_used)) == NULL) {
            return RQ_MALFORMED;
        }
        *v = pr;
    }
    assert(c.left == 0);
    return rq_dedupe_load_end(&m->prod);
}

static int fsm_snapshot(void *data, struct raft_buffer *out)
{
    struct partition *p = data;
    uint8_t *b;
    size_t len;

    /* Raft may drop the entries this manifest stands for once it has it,
     * so what they wrote must be on disk first: the node runs the sync
     * this leaves (fsm_sync_take) in a worker before it stores the
     * snapshot, and the loop goes on meanwhile. */
    int rv = log_repair(p);
    if (rv != 0) {
        return rv;
    }
    sync_leftover(p);
    rv = plog_sync_begin(p->log, &p->sync_job);
    if (rv != 0) {
        return log_failed(p, rv, "sync for a snapshot");
    }
    rv = manifest_encode(p, &b, &len);
    if (rv != 0) {
        return rv; /* UNTESTED: ENOMEM only. */
    }
    out->base = b;
    out->len = len;
    return 0;
}

static int fsm_restore(void *data, const uint8_t *buf, size_t len)
{
    struct partition *p = data;
    struct manifest m;

    int rv = manifest_decode(buf, len, &m);
    if (rv != 0) {
        rq_dedupe_close(&m.prod);
        rq_log(RQ_ERROR, "group %llu: manifest of %zu bytes refused: %s",
               GID(p), len, rq_strerror(rv));
        return rv;
    }
    rv = log_repair(p);
    if (rv != 0) {
        rq_dedupe_close(&m.prod);
        return rv;
    }
    uint64_t local = plog_next_offset(p->log);
    if (local < m.first) {
        /* Peers no longer hold [local, first): start over at first. The
         * Raft index is left 0, below every batch of the gap to fetch. */
        rq_log(RQ_WARN,
               "group %llu: manifest starts at %" PRIu64
               " past the log's end %" PRIu64 ": resetting the log",
               GID(p), m.first, local);
        rv = plog_reset(p->log, m.first, 0);
        if (rv != 0) {
            rq_dedupe_close(&m.prod);
            return log_failed(p, rv, "log reset");
        }
        local = m.first;
    }
    rq_dedupe_close(&p->prod);
    p->prod = m.prod;
    p->next = m.next;
    p->last_index = m.last_index;
    if (local < m.next) {
        rq_log(RQ_INFO,
               "group %llu: restored manifest at raft index %" PRIu64
               ": gap [%" PRIu64 ", %" PRIu64 ") to fetch",
               GID(p), m.last_index, local, m.next);
    } else {
        rq_log(RQ_INFO,
               "group %llu: restored manifest at raft index %" PRIu64
               ": log holds it all (to %" PRIu64 ", manifest %" PRIu64 ")",
               GID(p), m.last_index, local, m.next);
    }
    notify(p);
    return 0;
}

static void *fsm_sync_take(void *data)
{
    struct partition *p = data;
    struct plog_sync_job *j = p->sync_job;
    p->sync_job = NULL;
    return j;
}

static int fsm_sync_run(void *job)
{
    return plog_sync_run(job);
}

static void fsm_sync_done(void *data, void *job, int rv)
{
    struct partition *p = data;
    if (plog_sync_end(p->log, job, rv) != 0) {
        log_failed(p, rv, "sync for a snapshot");
    }
}

const struct rq_fsm_ops partition_fsm_ops = {
    .apply = fsm_apply,
    .snapshot = fsm_snapshot,
    .restore = fsm_restore,
    .sync_take = fsm_sync_take,
    .sync_run = fsm_sync_run,
    .sync_done = fsm_sync_done,
};

/* ---- State ---- */

uint64_t partition_first_offset(const struct partition *p)
{
    return plog_first_offset(p->log);
}

uint64_t partition_next_offset(const struct partition *p)
{
    return p->next;
}

uint64_t partition_local_next(const struct partition *p)
{
    return plog_next_offset(p->log);
}

uint64_t partition_last_index(const struct partition *p)
{
    return p->last_index;
}

uint64_t partition_bytes(const struct partition *p)
{
    return plog_bytes(p->log);
}

void partition_on_change(struct partition *p,
                         void (*cb)(void *data, struct partition *p),
                         void *data)
{
    p->on_change = cb;
    p->on_change_data = data;
}

/* ---- Reads ---- */

int partition_read(struct partition *p, uint64_t offset, uint32_t max,
                   size_t max_bytes, struct rq_buf *scratch, struct record *out,
                   uint64_t *offsets, uint32_t *n)
{
    return plog_read(p->log, offset, max, max_bytes, scratch, out, offsets, n);
}

int partition_read_batches(struct partition *p, uint64_t offset, size_t n,
                           struct rq_buf *out)
{
    return plog_read_batches(p->log, offset, n, out);
}

/* ---- Catching up from a peer ---- */

bool partition_fetch_range(const struct partition *p, uint64_t *from,
                           uint64_t *to)
{
    uint64_t local = plog_next_offset(p->log);
    if (local >= p->next) {
        return false;
    }
    *from = local;
    *to = p->next;
    return true;
}

enum partition_read_check partition_read_check(const struct partition *p,
                                               uint64_t offset)
{
    uint64_t from;
    uint64_t to;
    if (offset < partition_first_offset(p)) {
        return PARTITION_READ_RETAINED;
    }
    if (partition_fetch_range(p, &from, &to) && offset >= from && offset < to) {
        return PARTITION_READ_FETCHING;
    }
    return PARTITION_READ_RECORDS;
}

/*
 * The length of the leading batches of @bytes that fill the gap
 * [@from, @to): the walk stops at the gap's end, so batches past it are
 * left out. A batch that does not follow on from the one before, straddles
 * @to, claims a Raft index not applied yet, or runs past the bytes sets
 * *bad. plog_append_batches() checks the rest (magic, crc, records).
 */
static size_t gap_prefix(const struct partition *p, const uint8_t *bytes,
                         size_t len, uint64_t from, uint64_t to, bool *bad)
{
    uint64_t expect = from;
    size_t r = 0;

    *bad = false;
    while (r < len && expect < to) {
        if (len - r < PLOG_BATCH_HEADER) {
            *bad = true;
            break;
        }
        const uint8_t *h = bytes + r;
        uint64_t total = 8 + (uint64_t)rq_wire_u32_at(h + 4);
        uint32_t count = rq_wire_u32_at(h + 12);
        uint64_t base = rq_wire_u64_at(h + 16);
        uint64_t entry_index = rq_wire_u64_at(h + 24);
        if (base != expect || total < PLOG_BATCH_HEADER || total > len - r ||
            count == 0 || count > to - base || entry_index > p->last_index) {
            *bad = true;
            break;
        }
        r += (size_t)total;
        expect += count;
    }
    return r;
}

int partition_fetched(struct partition *p, const uint8_t *bytes, size_t len)
{
    uint64_t from;
    uint64_t to;
    bool bad;

    if (!partition_fetch_range(p, &from, &to)) {
        return 0;
    }
    int rv = log_repair(p);
    if (rv != 0) {
        return rv;
    }
    size_t keep = gap_prefix(p, bytes, len, from, to, &bad);
    rv = plog_append_batches(p->log, bytes, keep);
    if (rv == RQ_IO) {
        log_failed(p, rv, "append of fetched batches");
    }
    uint64_t local = plog_next_offset(p->log);
    if (bad && rv == 0) {
        rq_log(RQ_WARN,
               "group %llu: fetched bytes at %" PRIu64
               " do not fit the gap "
               "[%" PRIu64 ", %" PRIu64 ")",
               GID(p), local, from, to);
        rv = RQ_MALFORMED;
    }
    if (local > from) {
        if (local == p->next) {
            rq_log(RQ_INFO,
                   "group %llu: gap closed at %" PRIu64
                   ": the replica is complete",
                   GID(p), local);
        }
        notify(p);
    }
    return rv;
}

/* ---- Maintenance ---- */

int partition_sync(struct partition *p)
{
    int rv = plog_sync(p->log);
    return rv != 0 ? log_failed(p, rv, "sync") : 0;
}

int partition_retain(struct partition *p, uint64_t max_bytes,
                     uint64_t max_age_ms, uint64_t now_ms, unsigned *deleted)
{
    return plog_retain(p->log, max_bytes, max_age_ms, now_ms, deleted);
}

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
 *   5. The producer table is a dense pool (at most PARTITION_PRODUCERS_MAX
 *      records) indexed by an open-addressing hash of pool positions and
 *      threaded on a list in last_used order, so eviction of the least
 *      recently used is O(1) and the same on every replica.
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
#include "rq_entry.h"
#include "rq_err.h"
#include "rq_hash.h"
#include "rq_log.h"

#define LOG_TAG "partition"

#define MANIFEST_VERSION 1
#define MANIFEST_HEADER 44
#define MANIFEST_PRODUCER 36
#define SLOTS_MIN 16
#define NONE UINT32_MAX

struct producer {
    uint64_t id;
    uint64_t sequence;  /* The last one applied. */
    uint64_t base;      /* Its batch's first offset. */
    uint64_t last_used; /* The eviction clock when it was applied. */
    uint32_t count;     /* Its batch's records. */
    uint32_t prev;      /* Pool positions on the last_used list. */
    uint32_t next;
};

/*
 * Invariants: n <= PARTITION_PRODUCERS_MAX; each producer has a distinct
 * last_used in 1..ops; the list runs from lru to mru in last_used order.
 */
struct producers {
    struct producer *pool; /* n used of cap. */
    uint32_t n;
    uint32_t cap;
    uint32_t *slots; /* Pool position + 1; 0: empty. Power of two. */
    size_t nslots;
    uint32_t lru; /* Least recently used, first evicted; NONE if empty. */
    uint32_t mru;
    uint64_t ops; /* The eviction clock: producer updates so far. */
};

struct partition {
    struct plog *log;
    char *dir; /* Owned, for reopening the log. */
    uint64_t segment_bytes;
    uint64_t group_id;
    struct rq_metric *sync_seconds; /* Borrowed; may be NULL. */
    bool broken;         /* The log refused a write: reopen it first. */
    uint64_t next;       /* Logical next offset. */
    uint64_t last_index; /* Raft index of the last entry applied. */
    struct producers prod;
    void (*on_change)(void *data, struct partition *p);
    void *on_change_data;
};

struct manifest {
    uint64_t first;
    uint64_t next;
    uint64_t last_index;
    struct producers prod; /* Owned until handed over. */
};

#define GID(p) ((unsigned long long)(p)->group_id)

/* ---- The producer table ---- */

/* The slot holding @id, or the empty slot where it would go. */
static uint32_t *slot_of(const struct producers *t, uint64_t id)
{
    size_t mask = t->nslots - 1;
    size_t i = (size_t)rq_hash_u64(id) & mask;
    while (t->slots[i] != 0 && t->pool[t->slots[i] - 1].id != id) {
        i = (i + 1) & mask;
    }
    return &t->slots[i];
}

static struct producer *producer_find(const struct producers *t, uint64_t id)
{
    if (t->nslots == 0) {
        return NULL;
    }
    uint32_t s = *slot_of(t, id);
    return s != 0 ? &t->pool[s - 1] : NULL;
}

/* Makes room for @n producers in all (at most the maximum), slots kept at
 * most half full. Nothing changes on failure. */
static int producers_reserve(struct producers *t, uint32_t n)
{
    if (n > PARTITION_PRODUCERS_MAX) {
        n = PARTITION_PRODUCERS_MAX;
    }
    if (n > t->cap) {
        uint32_t cap = t->cap == 0 ? SLOTS_MIN / 2 : t->cap;
        while (cap < n) {
            cap *= 2;
        }
        if (cap > PARTITION_PRODUCERS_MAX) {
            cap = PARTITION_PRODUCERS_MAX;
        }
        struct producer *pool = realloc(t->pool, cap * sizeof *pool);
        if (pool == NULL) {
            return RQ_NOMEM; /* UNTESTED: ENOMEM only. */
        }
        t->pool = pool;
        t->cap = cap;
    }
    size_t nslots = t->nslots == 0 ? SLOTS_MIN : t->nslots;
    while ((size_t)n * 2 > nslots) {
        nslots *= 2;
    }
    if (nslots == t->nslots) {
        return 0;
    }
    uint32_t *old = t->slots;
    size_t old_n = t->nslots;
    t->slots = calloc(nslots, sizeof *t->slots);
    if (t->slots == NULL) {
        t->slots = old;
        return RQ_NOMEM; /* UNTESTED: ENOMEM only. */
    }
    t->nslots = nslots;
    for (size_t i = 0; i < old_n; i++) {
        if (old[i] != 0) {
            *slot_of(t, t->pool[old[i] - 1].id) = old[i];
        }
    }
    free(old);
    return 0;
}

static void producers_free(struct producers *t)
{
    free(t->pool);
    free(t->slots);
    memset(t, 0, sizeof *t);
    t->lru = t->mru = NONE;
}

static void lru_unlink(struct producers *t, uint32_t i)
{
    struct producer *pr = &t->pool[i];
    if (pr->prev != NONE) {
        t->pool[pr->prev].next = pr->next;
    } else {
        t->lru = pr->next;
    }
    if (pr->next != NONE) {
        t->pool[pr->next].prev = pr->prev;
    } else {
        t->mru = pr->prev;
    }
}

static void lru_push(struct producers *t, uint32_t i)
{
    struct producer *pr = &t->pool[i];
    pr->prev = t->mru;
    pr->next = NONE;
    if (t->mru != NONE) {
        t->pool[t->mru].next = i;
    } else {
        t->lru = i;
    }
    t->mru = i;
}

/*
 * Empties the slot @hole by backward-shift deletion: later members of the
 * same probe run move up, so every lookup still finds its producer without
 * crossing an empty slot.
 */
static void slot_remove(struct producers *t, uint32_t *hole)
{
    size_t mask = t->nslots - 1;
    size_t i = (size_t)(hole - t->slots);
    size_t j = i;
    for (;;) {
        j = (j + 1) & mask;
        if (t->slots[j] == 0) {
            break;
        }
        size_t home = (size_t)rq_hash_u64(t->pool[t->slots[j] - 1].id) & mask;
        /* Move j into i unless its home lies cyclically in (i, j]. */
        bool stays = i <= j ? (home > i && home <= j) : (home > i || home <= j);
        if (!stays) {
            t->slots[i] = t->slots[j];
            i = j;
        }
    }
    t->slots[i] = 0;
}

/*
 * A new producer @id (absent), room reserved. When the table is full the
 * least recently used producer is forgotten and its pool position reused.
 * The caller sets its fields and puts it on the list.
 */
static uint32_t producer_add(struct producers *t, uint64_t id)
{
    uint32_t i;
    if (t->n == PARTITION_PRODUCERS_MAX) {
        i = t->lru;
        assert(i != NONE);
        lru_unlink(t, i);
        slot_remove(t, slot_of(t, t->pool[i].id));
    } else {
        assert(t->n < t->cap && ((size_t)t->n + 1) * 2 <= t->nslots);
        i = t->n++;
    }
    memset(&t->pool[i], 0, sizeof t->pool[i]);
    t->pool[i].id = id;
    uint32_t *s = slot_of(t, id);
    assert(*s == 0);
    *s = i + 1;
    return i;
}

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
    p->prod.lru = p->prod.mru = NONE;
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

void partition_close(struct partition *p)
{
    if (p == NULL) {
        return;
    }
    plog_close(p->log);
    producers_free(&p->prod);
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

static int fsm_apply(void *data, uint64_t index, const uint8_t *payload,
                     size_t len, uint64_t *result)
{
    struct partition *p = data;
    struct partition_append a;
    struct producer *pr = NULL;
    int rv;

    *result = PARTITION_STALE;
    if (index <= p->last_index) {
        return 0; /* Applied already: changes nothing. */
    }
    rv = log_repair(p);
    if (rv != 0) {
        return rv;
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
        pr = producer_find(&p->prod, a.producer_id);
        if (pr != NULL && a.sequence == pr->sequence) {
            *result = pr->base; /* A retry: appended once already. */
            goto done;
        }
        if (pr != NULL && a.sequence < pr->sequence) {
            goto done; /* Stale: a later sequence was applied. */
        }
        if (pr == NULL) {
            rv = producers_reserve(&p->prod, p->prod.n + 1);
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
        uint32_t i = pr != NULL ? (uint32_t)(pr - p->prod.pool)
                                : producer_add(&p->prod, a.producer_id);
        if (pr != NULL) {
            lru_unlink(&p->prod, i);
        }
        pr = &p->prod.pool[i];
        pr->sequence = a.sequence;
        pr->base = base;
        pr->count = a.count;
        pr->last_used = ++p->prod.ops;
        lru_push(&p->prod, i);
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
    const struct producer *pr =
        producer_id != 0 ? producer_find(&p->prod, producer_id) : NULL;
    if (pr == NULL || sequence > pr->sequence) {
        return RQ_NOTFOUND;
    }
    if (sequence < pr->sequence) {
        return RQ_INVALID;
    }
    *base = pr->base;
    return 0;
}

/* ---- Snapshot manifests ---- */

static int producer_id_cmp(const void *a, const void *b)
{
    const struct producer *x = *(const struct producer *const *)a;
    const struct producer *y = *(const struct producer *const *)b;
    return x->id < y->id ? -1 : x->id > y->id;
}

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
    const struct producers *t = &p->prod;
    size_t n = MANIFEST_HEADER + (size_t)t->n * MANIFEST_PRODUCER;
    const struct producer **sorted = malloc((t->n + 1) * sizeof *sorted);
    uint8_t *b = raft_malloc(n);
    uint64_t first = plog_first_offset(p->log);

    if (sorted == NULL || b == NULL) {
        free(sorted); /* UNTESTED: ENOMEM only. */
        raft_free(b);
        return RQ_NOMEM;
    }
    for (uint32_t i = 0; i < t->n; i++) {
        sorted[i] = &t->pool[i];
    }
    qsort(sorted, t->n, sizeof *sorted, producer_id_cmp);
    rq_wire_put_u32_at(b, MANIFEST_VERSION);
    rq_wire_put_u32_at(b + 4, 0);
    rq_wire_put_u64_at(b + 8, first < p->next ? first : p->next);
    rq_wire_put_u64_at(b + 16, p->next);
    rq_wire_put_u64_at(b + 24, p->last_index);
    rq_wire_put_u64_at(b + 32, t->ops);
    rq_wire_put_u32_at(b + 40, t->n);
    uint8_t *q = b + MANIFEST_HEADER;
    for (uint32_t i = 0; i < t->n; i++, q += MANIFEST_PRODUCER) {
        rq_wire_put_u64_at(q, sorted[i]->id);
        rq_wire_put_u64_at(q + 8, sorted[i]->sequence);
        rq_wire_put_u64_at(q + 16, sorted[i]->base);
        rq_wire_put_u32_at(q + 24, sorted[i]->count);
        rq_wire_put_u64_at(q + 28, sorted[i]->last_used);
    }
    free(sorted);
    *out = b;
    *len = n;
    return 0;
}

struct lru_key {
    uint64_t last_used;
    uint32_t i;
};

static int lru_key_cmp(const void *a, const void *b)
{
    uint64_t x = ((const struct lru_key *)a)->last_used;
    uint64_t y = ((const struct lru_key *)b)->last_used;
    return x < y ? -1 : x > y;
}

/* Threads the decoded producers on the list in last_used order, checking
 * that the values are distinct and in 1..ops. */
static int lru_build(struct producers *t)
{
    struct lru_key *order = malloc(((size_t)t->n + 1) * sizeof *order);
    int rv = 0;

    if (order == NULL) {
        return RQ_NOMEM; /* UNTESTED: ENOMEM only. */
    }
    for (uint32_t i = 0; i < t->n; i++) {
        order[i] = (struct lru_key){t->pool[i].last_used, i};
    }
    qsort(order, t->n, sizeof *order, lru_key_cmp);
    for (uint32_t k = 0; k < t->n; k++) {
        uint64_t v = order[k].last_used;
        if (v == 0 || v > t->ops || (k > 0 && v == order[k - 1].last_used)) {
            rv = RQ_MALFORMED;
            break;
        }
        lru_push(t, order[k].i);
    }
    free(order);
    return rv;
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

    memset(m, 0, sizeof *m);
    m->prod.lru = m->prod.mru = NONE;
    rq_cursor_init(&c, buf, len);
    if (rq_wire_get_u32(&c, &version) != 0 || version != MANIFEST_VERSION ||
        rq_wire_get_u32(&c, &pad) != 0 || pad != 0 ||
        rq_wire_get_u64(&c, &m->first) != 0 ||
        rq_wire_get_u64(&c, &m->next) != 0 || m->first > m->next ||
        rq_wire_get_u64(&c, &m->last_index) != 0 ||
        rq_wire_get_u64(&c, &m->prod.ops) != 0 ||
        rq_wire_get_u32(&c, &n) != 0 || n > PARTITION_PRODUCERS_MAX ||
        c.left != (size_t)n * MANIFEST_PRODUCER) {
        return RQ_MALFORMED;
    }
    rv = producers_reserve(&m->prod, n);
    if (rv != 0) {
        return rv; /* UNTESTED: ENOMEM only. */
    }
    uint64_t prev = 0;
    for (uint32_t k = 0; k < n; k++) {
        struct producer pr;
        rq_wire_get_u64(&c, &pr.id);
        rq_wire_get_u64(&c, &pr.sequence);
        rq_wire_get_u64(&c, &pr.base);
        rq_wire_get_u32(&c, &pr.count);
        rq_wire_get_u64(&c, &pr.last_used);
        if (pr.id <= prev || pr.count == 0 || pr.base > m->next ||
            pr.count > m->next - pr.base) {
            return RQ_MALFORMED;
        }
        uint32_t i = producer_add(&m->prod, pr.id);
        pr.prev = pr.next = NONE;
        m->prod.pool[i] = pr;
        prev = pr.id;
    }
    assert(c.left == 0);
    return lru_build(&m->prod);
}

static int fsm_snapshot(void *data, struct raft_buffer *out)
{
    struct partition *p = data;
    uint8_t *b;
    size_t len;

    /* Raft may drop the entries this manifest stands for once it has it,
     * so what they wrote must be on disk first. */
    int rv = log_repair(p);
    if (rv != 0) {
        return rv;
    }
    rv = plog_sync(p->log);
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
        producers_free(&m.prod);
        rq_log(RQ_ERROR, "group %llu: manifest of %zu bytes refused: %s",
               GID(p), len, rq_strerror(rv));
        return rv;
    }
    rv = log_repair(p);
    if (rv != 0) {
        producers_free(&m.prod);
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
            producers_free(&m.prod);
            return log_failed(p, rv, "log reset");
        }
        local = m.first;
    }
    producers_free(&p->prod);
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

const struct rq_fsm_ops partition_fsm_ops = {
    .apply = fsm_apply,
    .snapshot = fsm_snapshot,
    .restore = fsm_restore,
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

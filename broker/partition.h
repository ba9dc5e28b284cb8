/*
 * A partition replica's state machine: the Raft entries of one partition
 * group applied to its partition log (plog.h), the producer deduplication
 * table, and the snapshot manifest. No libuv: the broker's I/O layer drives
 * it; raft drives it through partition_fsm_ops.
 *
 * Entry (the Raft payload the leader proposes), little-endian:
 *
 *     type:u8 (1 = records) | pad:u8[3] | count:u32 | max_timestamp_ms:i64
 *     | producer_id:u64 (0: none) | sequence:u64 | records blob (records.h)
 *
 * or several of them merged (produces that waited while others were in
 * flight, so that one Raft entry and one write on each replica carry
 * them all):
 *
 *     type:u8 (2 = merged) | pad:u8[3] | n:u32 | n x (len:u32 | a records
 *     entry of len bytes)
 *
 * A merged entry is applied as its records entries would be one after
 * another, each deduplicated on its own, except that what they append
 * becomes one batch in the log; its apply result is its Raft index, and
 * each records entry's own result (its first offset, a retry's original
 * one, or PARTITION_STALE) is kept for the proposer
 * (partition_merged_results). A malformed merged entry is skipped whole.
 *
 * Applying an entry whose Raft index is not above the last one applied
 * changes nothing. Otherwise, if its (producer_id, sequence) was applied
 * before, it is not appended again and the apply result is the first
 * offset the original got; if the sequence is older than the last one
 * applied for that producer, it is refused (result PARTITION_STALE).
 * Else the records become one batch at the next offset and the apply
 * result is that offset. The proposer's callback receives the result
 * (rq_node_done_cb). An entry whose index is not above the log's last
 * batch index is not written again (the batch is already on disk: replay
 * after a restart, or it came from a peer) but moves the state on exactly
 * as it did the first time, so offsets and the producer table come out
 * the same.
 *
 * Snapshot manifest (never a copy of the data; raft keeps snapshots in
 * memory and sends them whole), little-endian:
 *
 *     version:u32 | pad:u32 | first_offset:u64 | next_offset:u64
 *     | last_raft_index:u64 | ops:u64 | n_producers:u32
 *     | n x (producer_id:u64 | sequence:u64 | base:u64 | count:u32
 *            | last_used:u64)
 *
 * The log is synced to disk before the manifest is returned, since raft may
 * then drop the entries the manifest stands for. first_offset is the first
 * offset the snapshotting replica holds (at most next_offset).
 *
 * Errors. apply returns RQ_IO, with nothing changed, when writing the log
 * fails: raft then stops applying and retries the same entry later, and
 * the retry first reopens the log (a disk that stays broken stalls the
 * replica; nothing is skipped). A malformed entry is logged and skipped
 * (result PARTITION_STALE) alike on every replica. restore refuses a
 * malformed manifest (RQ_MALFORMED) with nothing changed.
 *
 * Gaps. Restoring a manifest whose next offset is past what the local log
 * holds leaves a gap [local next, next): the replica must fetch those
 * batches from a peer (partition_fetch_range(), partition_fetched()).
 * Entries applied meanwhile are not written locally; they extend the gap,
 * and their results are still their logical offsets. If the manifest's
 * first offset is past everything the log holds, the log is reset to start
 * at that first offset. Reads are served only below the local next offset.
 *
 * Invariants:
 *   1. local_next == next, except while fetching a gap (local_next < next)
 *      and while raft replays entries after a restart (local_next > next
 *      until the replay reaches the log's last batch).
 *   2. Every batch in the log was committed in this partition's group.
 *   3. At most PARTITION_PRODUCERS_MAX producers are remembered; the least
 *      recently used (by the op counter) is evicted first, identically on
 *      every replica.
 */
#ifndef PARTITION_H
#define PARTITION_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "records.h"
#include "rq_fsm.h"
#include "rq_wire.h"

#define PARTITION_ENTRY_RECORDS 1
#define PARTITION_ENTRY_MERGED 2
/* Records entries in one merged entry, at most. */
#define PARTITION_MERGED_MAX 1024
/* Merged entries whose results are kept (partition_merged_results). */
#define PARTITION_MERGED_KEPT 8
#define PARTITION_ENTRY_HEADER 32
#define PARTITION_PRODUCERS_MAX 4096
/* Apply result of a stale (producer, sequence): not a valid offset. */
#define PARTITION_STALE UINT64_MAX

struct partition;
struct rq_metric;

struct partition_config {
    const char *dir;        /* The partition log's directory (borrowed). */
    uint64_t segment_bytes; /* plog segment size; 0: plog's default. */
    uint64_t group_id;      /* For log lines. */
    /* Times the log's fdatasyncs (plog_config.sync_seconds); may be NULL. */
    struct rq_metric *sync_seconds;
};

/* Opens the partition log in cfg->dir. RQ_IO / RQ_MALFORMED with @why. */
int partition_open(const struct partition_config *cfg, struct partition **out,
                   char *why, size_t whyn);
void partition_close(struct partition *p); /* NULL is a no-op. */

/* ---- Entries ---- */

struct partition_append {
    uint32_t count;
    int64_t max_timestamp_ms;
    uint64_t producer_id; /* 0: no deduplication. */
    uint64_t sequence;
    const uint8_t *blob; /* records.h blob of @count records (borrowed). */
    size_t len;
};

int partition_entry_encode(const struct partition_append *a,
                           struct rq_buf *out);
/*
 * The same entry, framed for raft (rq_entry_alloc) and built in place: the
 * header of @a is written and *blob points at a->len bytes for the caller
 * to fill with the records (a->blob is not read). The caller owns
 * out->base until rq_node_apply_entry() takes it. RQ_TOOBIG, RQ_NOMEM.
 */
int partition_entry_alloc(const struct partition_append *a,
                          struct raft_buffer *out, uint8_t **blob);

/* RQ_MALFORMED unless the header and every record are well formed. */
int partition_entry_decode(const uint8_t *p, size_t len,
                           struct partition_append *out);

/*
 * One merged entry of the @n records entries @entries (each framed for
 * raft as partition_entry_alloc made it; they stay the caller's), framed
 * for raft: the caller owns out->base until rq_node_apply_entry() takes
 * it. RQ_INVALID for n of 0 or over PARTITION_MERGED_MAX or an entry that
 * is not one, RQ_TOOBIG, RQ_NOMEM.
 */
int partition_merged_alloc(const struct raft_buffer *entries, size_t n,
                           struct raft_buffer *out);

/*
 * The results of the merged entry applied at Raft index @index, one per
 * records entry in order, borrowed until the next apply: 0, or
 * RQ_NOTFOUND once PARTITION_MERGED_KEPT later merged entries were
 * applied (or none at @index was).
 */
int partition_merged_results(const struct partition *p, uint64_t index,
                             const uint64_t **results, size_t *n);

/* The Raft index of the last merged entry this replica applied since it
 * was opened (its log replayed), or 0. */
uint64_t partition_last_merged(const struct partition *p);

/* The state machine; the fsm data is a struct partition *. */
extern const struct rq_fsm_ops partition_fsm_ops;

/*
 * For the leader before proposing a retried request: 0 and *base if
 * (@producer_id, @sequence) was applied; RQ_INVALID if it is older than the
 * producer's last; RQ_NOTFOUND otherwise.
 */
int partition_dedupe_lookup(const struct partition *p, uint64_t producer_id,
                            uint64_t sequence, uint64_t *base);

/* ---- State ---- */

uint64_t partition_first_offset(const struct partition *p); /* On disk. */
uint64_t partition_next_offset(const struct partition *p);  /* Logical. */
uint64_t partition_local_next(const struct partition *p);   /* On disk. */
uint64_t partition_last_index(const struct partition *p);   /* Raft. */
uint64_t partition_bytes(const struct partition *p);

/*
 * Called after every apply, restore and fetched range (long polls wake on
 * it). One listener; NULL clears it.
 */
void partition_on_change(struct partition *p,
                         void (*cb)(void *data, struct partition *p),
                         void *data);

/* ---- Reads ---- */

/*
 * What a client's read from @offset may be answered with, once the
 * replica has confirmed that it leads its group (the broker's read path):
 *   PARTITION_READ_RECORDS   the records from @offset below the next
 *                            offset (none at or past it: nothing was
 *                            acknowledged there);
 *   PARTITION_READ_RETAINED  nothing: @offset is below the first offset
 *                            held (retention);
 *   PARTITION_READ_FETCHING  nothing yet: @offset lies in the gap this
 *                            replica is fetching from a peer. Records were
 *                            acknowledged there, so an empty answer would
 *                            deny them; the client must retry.
 */
enum partition_read_check {
    PARTITION_READ_RECORDS,
    PARTITION_READ_RETAINED,
    PARTITION_READ_FETCHING,
};
enum partition_read_check partition_read_check(const struct partition *p,
                                               uint64_t offset);

/* plog_read() below the local next offset; RQ_NOTFOUND past it or below
 * the first offset. */
int partition_read(struct partition *p, uint64_t offset, uint32_t max,
                   size_t max_bytes, struct rq_buf *scratch, struct record *out,
                   uint64_t *offsets, uint32_t *n);

/* Whole batches from @offset for a peer that is catching up. */
int partition_read_batches(struct partition *p, uint64_t offset, size_t n,
                           struct rq_buf *out);

/* ---- Catching up from a peer ---- */

/* true and the range [*from, *to) while the replica has a gap to fetch. */
bool partition_fetch_range(const struct partition *p, uint64_t *from,
                           uint64_t *to);

/* Appends fetched batches (plog_read_batches bytes of a peer) at the local
 * next offset; batches past the gap are ignored. RQ_MALFORMED on bad
 * bytes (nothing past the last good batch is kept). */
int partition_fetched(struct partition *p, const uint8_t *bytes, size_t len);

/* ---- Maintenance ---- */

int partition_sync(struct partition *p);
int partition_retain(struct partition *p, uint64_t max_bytes,
                     uint64_t max_age_ms, uint64_t now_ms, unsigned *deleted);

#endif /* PARTITION_H */

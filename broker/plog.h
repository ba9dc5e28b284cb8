/*
 * A partition's message log on disk: append-only segment files with a
 * sparse offset index, so a read at any offset costs a seek, not a scan.
 *
 * Files in the log directory, named by the first offset they hold:
 *
 *     00000000000000000000.seg   batches, back to back
 *     00000000000000000000.idx   (relative offset:u32 | file position:u32)
 *                                every index_interval bytes of batches
 *
 * A batch on disk:
 *
 *     magic:u32 "RQB1" | len:u32 (bytes after this field) | crc:u32 (crc32
 *     of every byte after this field) | count:u32 | base_offset:u64
 *     | raft_index:u64 | max_timestamp_ms:i64 | records (records.h)
 *
 * Offsets are contiguous from the log's first offset; a batch of n records
 * takes n offsets. Each batch remembers the Raft index of the entry that
 * produced it, so replaying the Raft log after a restart skips batches
 * already on disk (plog_last_raft_index()).
 *
 * Durability comes from the Raft log: appends are plain writes, and
 * plog_sync() (called before a Raft snapshot may drop the entries) makes
 * them durable. On open the last segment is scanned and a torn or corrupt
 * tail (a crash mid-write) is cut off at the last whole batch; an index
 * file that is missing or shorter than its segment is rebuilt.
 *
 * Memory is bounded whatever the log's size: only the active segment's
 * index is held in memory; sealed segments' indexes are read from their
 * .idx files on demand. File descriptors: the active segment and the
 * segment last read from.
 *
 * Single-threaded, blocking file I/O (small writes to the page cache);
 * callers run it on their loop thread.
 */
#ifndef PLOG_H
#define PLOG_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "records.h"
#include "rq_metrics.h"
#include "rq_wire.h"

#define PLOG_BATCH_HEADER 40

struct plog;

struct plog_config {
    const char *dir;         /* Created if missing (borrowed). */
    uint64_t segment_bytes;  /* Roll once a segment reaches this; 0: 64 MiB;
                                at most 1 GiB (index positions are u32). */
    uint32_t index_interval; /* 0: 4096 bytes between index entries. */
    /* A histogram (borrowed; may be NULL) timing, in seconds, every
     * fdatasync of a segment or an index file. */
    struct rq_metric *sync_seconds;
};

/*
 * Opens (creating or recovering) the log in cfg->dir. An empty new log
 * starts at offset 0. RQ_IO or RQ_MALFORMED with @why (e.g. a sealed
 * segment that is corrupt, or a gap between segments: that is refused, not
 * silently cut); RQ_INVALID with @why for a bad configuration.
 */
int plog_open(const struct plog_config *cfg, struct plog **out, char *why,
              size_t whyn);

/* Closes files and frees. plog_close(NULL) is a no-op. */
void plog_close(struct plog *l);

/*
 * Appends a batch of @count records (a validated records blob, copied) at
 * the next offset, produced by Raft entry @raft_index (> every earlier
 * one). Fills *base with the batch's first offset. RQ_INVALID if
 * @raft_index is not above plog_last_raft_index() or @count is 0;
 * RQ_MALFORMED if the blob does not hold exactly @count records; RQ_TOOBIG
 * past 4 GiB; nothing is written then. RQ_IO on a write error (the log is
 * then unusable until reopened).
 */
int plog_append(struct plog *l, uint64_t raft_index, const uint8_t *blob,
                size_t len, uint32_t count, int64_t max_timestamp_ms,
                uint64_t *base);

/* First offset still held, the next offset to be written, and the Raft
 * index of the last batch written (0 if none). */
uint64_t plog_first_offset(const struct plog *l);
uint64_t plog_next_offset(const struct plog *l);
uint64_t plog_last_raft_index(const struct plog *l);
uint64_t plog_bytes(const struct plog *l); /* Sum of segment sizes. */

/*
 * Reads records from @offset: at most @max records and about @max_bytes
 * of values (at least one record if any). Records are copied into
 * @scratch (reset first) and @out[i] points into it; @offsets[i] is its
 * offset (@offsets may be NULL). *n is 0 when @offset is the next offset.
 * RQ_NOTFOUND if @offset < first offset (deleted by retention) or > next
 * offset. RQ_MALFORMED if the batch at @offset is corrupt on disk (a read
 * that reaches a corrupt batch after some records returns those first).
 */
int plog_read(struct plog *l, uint64_t offset, uint32_t max, size_t max_bytes,
              struct rq_buf *scratch, struct record *out, uint64_t *offsets,
              uint32_t *n);

/* fdatasync of the active segment (and the directory after a roll). */
int plog_sync(struct plog *l);

/*
 * The same in three steps, so that the waiting happens off the loop:
 * plog_sync_begin() (on the loop) takes what plog_sync() would sync now
 * (the active segment's file, the directory if a file was created since
 * the last sync) into a job of its own; plog_sync_run() waits for the
 * disk in any thread and touches nothing of the log; plog_sync_end() (on
 * the loop) takes its outcome and frees the job: a failure breaks the log
 * as plog_sync()'s does. Appends may go on meanwhile: the job covers what
 * was written before it began. begin: 0, RQ_IO (a broken log), RQ_NOMEM.
 */
struct plog_sync_job;
int plog_sync_begin(struct plog *l, struct plog_sync_job **out);
int plog_sync_run(struct plog_sync_job *j);
int plog_sync_end(struct plog *l, struct plog_sync_job *j, int rv);

/*
 * Deletes whole sealed segments, oldest first, while the log is over
 * @max_bytes or a segment's newest record is older than @max_age_ms at
 * @now_ms (0 turns either limit off). The active segment is never deleted.
 * *deleted counts segments; plog_first_offset() then gives the new first.
 */
int plog_retain(struct plog *l, uint64_t max_bytes, uint64_t max_age_ms,
                uint64_t now_ms, unsigned *deleted);

/* ---- Segments, for snapshot manifests and catching up from a peer ---- */

struct plog_segment {
    uint64_t base_offset;
    uint64_t next_offset; /* One past its last record. */
    uint64_t bytes;
    uint64_t last_raft_index;
    bool sealed;
};

/* Fills up to @max segments, oldest first; returns how many there are. */
size_t plog_segments(const struct plog *l, struct plog_segment *out,
                     size_t max);

/*
 * Copies up to @n bytes of whole batches of the segment holding @offset,
 * starting at the batch that holds @offset, into @out (appended); always
 * at least that first batch, however large. Nothing when @offset is the
 * next offset; RQ_NOTFOUND outside the log. Used to serve a peer that is
 * catching up; the bytes are the batches as stored.
 */
int plog_read_batches(struct plog *l, uint64_t offset, size_t n,
                      struct rq_buf *out);

/*
 * Appends batches fetched from a peer (as plog_read_batches gives them):
 * each is checked (magic, crc, base offset == next offset) and written.
 * RQ_MALFORMED with nothing written past the last good batch.
 */
int plog_append_batches(struct plog *l, const uint8_t *bytes, size_t len);

/* ---- Checking and cutting back what a replay finds ---- */

/* The header of one batch as stored. */
struct plog_batch {
    uint64_t base_offset;
    uint32_t count;
    uint32_t crc; /* As plog_batch_crc() computes it. */
    uint64_t raft_index;
    int64_t max_timestamp_ms;
};

/*
 * The header of the batch that starts exactly at @offset. RQ_NOTFOUND if no
 * batch of the log starts there (outside the log, or inside a batch);
 * RQ_MALFORMED if the segment is corrupt there.
 */
int plog_batch_at(struct plog *l, uint64_t offset, struct plog_batch *out);

/* The crc plog_append() stores for a batch of these fields and records. */
uint32_t plog_batch_crc(uint64_t base_offset, uint64_t raft_index,
                        uint32_t count, int64_t max_timestamp_ms,
                        const uint8_t *blob, size_t len);

/*
 * Deletes every batch from @offset on, which must start a batch of the log,
 * so that @offset becomes the next offset; durable on return.
 * plog_last_raft_index() is then the last remaining batch's (0 if none
 * remains). For a replica whose log holds batches that
 * its group's log no longer has (partition.h, replays). RQ_NOTFOUND if no
 * batch starts at @offset; RQ_IO (the log then refuses writes).
 */
int plog_truncate(struct plog *l, uint64_t offset);

/*
 * Keeps every whole batch below @offset and deletes the rest: plog_truncate()
 * at the batch that holds @offset, so the log then ends at @offset or, when
 * @offset falls inside a batch, at that batch's first offset. Nothing
 * changes when @offset is at or past the next offset. RQ_NOTFOUND if
 * @offset is below the first offset (nothing would be kept); RQ_MALFORMED
 * if the segment is corrupt before @offset; RQ_IO.
 */
int plog_keep_below(struct plog *l, uint64_t offset);

/*
 * Discards every segment and restarts the log empty at @next_offset (a
 * snapshot from the leader starts past everything this replica holds and
 * its peers no longer have what lies between). The offset is durable on
 * return; @raft_index is held in memory until the first append carries a
 * later one, so a reset log reopened before any append reports 0.
 */
int plog_reset(struct plog *l, uint64_t next_offset, uint64_t raft_index);

#endif /* PLOG_H */

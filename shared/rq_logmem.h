/*
 * How many entries libraft may keep in memory, sized by bytes.
 *
 * libraft (0.22.1) keeps every entry since its last snapshot in memory, plus
 * `trailing` entries before it, and counts both in entries: a snapshot is
 * taken once `threshold` entries have been applied since the last one. With
 * entries of very different sizes (a single record, or a batch of a
 * thousand) no fixed count bounds the memory. This module follows the
 * average size of the entries applied (an exponentially weighted moving
 * average over about the last eight) and turns byte budgets into the entry
 * counts libraft understands, which rq_node sets on its raft instance as
 * they move (raft_set_snapshot_threshold takes effect at the next event
 * libraft handles, a tick or a message, and raft_set_snapshot_trailing at
 * the next snapshot). The configured entry counts stay the upper bounds;
 * small minimums keep a stream of huge entries from snapshotting after
 * every one. The threshold also leaves room for the trailing entries: when
 * the trailing count is held up by its minimum, the entries since the
 * snapshot get less, so the two together stay within both budgets whenever
 * the minimums allow. The budgets may change while entries flow (a broker
 * shares one budget among a varying number of replicas). Pure: no raft, no
 * I/O.
 */
#ifndef RQ_LOGMEM_H
#define RQ_LOGMEM_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* Fewest entries between snapshots: each snapshot syncs the state machine
 * and closes the open Raft segment (cheap since rq_aio takes the segment's
 * io_destroy off the loop, but not free). Small entries never come near
 * it: their counts follow from the budgets. */
#define RQ_LOGMEM_MIN_THRESHOLD 2
/* Fewest trailing entries, so a follower an entry or two behind still gets
 * entries rather than a snapshot (never 0: libraft reads 0 as "replace
 * the whole log"). */
#define RQ_LOGMEM_MIN_TRAILING 2
/* Bytes libraft spends per entry besides its buffer (struct raft_entry and
 * the log's slot), counted so tiny entries are not undercounted. */
#define RQ_LOGMEM_ENTRY_OVERHEAD 64

struct rq_logmem_config {
    uint64_t memory_bytes;   /* Snapshot after about this many bytes. */
    uint64_t trailing_bytes; /* Keep about this many bytes before it. */
    unsigned max_threshold;  /* The entry-count threshold: the bound. */
    unsigned max_trailing;   /* The entry-count trailing: the bound. */
};

struct rq_logmem {
    struct rq_logmem_config cfg;
    uint64_t avg16; /* Average entry bytes x 16; 0 before the first. */
    unsigned threshold;
    unsigned trailing;
};

/* Starts with the entry-count bounds (no average yet). */
void rq_logmem_init(struct rq_logmem *m, const struct rq_logmem_config *cfg);

/*
 * Counts one applied entry of @entry_bytes (its buffer in the log).
 * Returns true when m->threshold or m->trailing changed, for the caller to
 * hand them to libraft.
 */
bool rq_logmem_add(struct rq_logmem *m, size_t entry_bytes);

/*
 * Replaces the two byte budgets of @m's configuration and sizes the counts
 * again from the current average. Returns true when m->threshold or
 * m->trailing changed.
 */
bool rq_logmem_set_budget(struct rq_logmem *m, uint64_t memory_bytes,
                          uint64_t trailing_bytes);

/* The average entry size so far, in bytes (0 before the first entry). */
uint64_t rq_logmem_average(const struct rq_logmem *m);

/*
 * The sizing rule: how many entries of @avg bytes fit in @budget bytes,
 * at least @lo and at most @hi (@hi wins if @lo > @hi); @hi when @avg is
 * 0 (nothing known yet).
 */
unsigned rq_logmem_entries(uint64_t budget, uint64_t avg, unsigned lo,
                           unsigned hi);

#endif /* RQ_LOGMEM_H */

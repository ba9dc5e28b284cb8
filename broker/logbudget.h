/*
 * The broker's budget for Raft log memory (--raft-memory-bytes), as a pure
 * decision: how the budget is shared among the broker's replicas. No raft,
 * no I/O. broker.c hands each replica its share (rq_node_set_log_budget)
 * whenever replicas are created or deleted.
 *
 * libraft keeps every entry since a replica's last snapshot in memory,
 * plus `trailing` entries before it. Sizing each replica's snapshot
 * threshold and trailing count from its share (rq_logmem.h) bounds what it
 * holds, and libraft checks the threshold after every event it handles (a
 * tick, a message), so a replica that receives no entry still snapshots at
 * its next tick once its share shrinks.
 */
#ifndef LOGBUDGET_H
#define LOGBUDGET_H

#include <stddef.h>
#include <stdint.h>

/* The least share of a replica, however many there are. */
#define LOGBUDGET_FLOOR (UINT64_C(1) << 20)
/* A replica's share divided by this is for its trailing entries. */
#define LOGBUDGET_TRAILING_PART 8

/* One replica's share of the budget, as rq_node_set_log_budget() takes it. */
struct logbudget_share {
    uint64_t memory_bytes;   /* Entries since the last snapshot. */
    uint64_t trailing_bytes; /* Entries kept before it. */
};

/*
 * Shares @total bytes among @replicas: each gets total / replicas (all of
 * @total for none), at least LOGBUDGET_FLOOR, of which a
 * LOGBUDGET_TRAILING_PART-th is for trailing entries, at most
 * @max_trailing, and the rest for entries since the snapshot, at most
 * @max_memory. @total 0 turns the budget off: the maxima.
 */
struct logbudget_share logbudget_share(uint64_t total, size_t replicas,
                                       uint64_t max_memory,
                                       uint64_t max_trailing);

#endif /* LOGBUDGET_H */

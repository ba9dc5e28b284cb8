/*
 * The broker's budget for Raft log memory (--raft-memory-bytes), as pure
 * decisions: how the budget is shared among the broker's replicas, and
 * which replica should let go of its log now. No raft, no I/O; time is an
 * argument. broker.c gathers each replica's figures (rq_node_log_memory)
 * and carries the decisions out (rq_node_set_log_budget, rq_node_compact).
 *
 * libraft 0.15 keeps every entry since a replica's last snapshot in
 * memory, plus `trailing` entries before it. Sizing each replica's
 * snapshot threshold and trailing count from its share (rq_logmem.h)
 * bounds what it holds while entries keep coming, but libraft checks the
 * threshold only after applying an entry, so a replica that receives none
 * keeps what it has: one whose share shrank when the broker took on more
 * replicas, or whose average entry size moved. Such a replica is
 * compacted: its threshold drops to one entry and, on the leader, a
 * barrier is appended, which every member applies, so every member
 * snapshots. Per replica:
 *
 *     within share, or busy, or nothing to gain  -> LOGBUDGET_NONE
 *     over share, idle, follower                 -> LOGBUDGET_LOWER
 *     over share, idle, ready leader, not within
 *       LOGBUDGET_INTERVAL_MS of its last one    -> LOGBUDGET_BARRIER
 *
 * "Nothing to gain": a snapshot keeps the trailing entries, so a replica
 * holding no more than those plus one entry is left alone, however far
 * over its share (huge entries at the minimum counts). That, a compaction
 * under way counting as nothing to do, and the interval make sure no
 * replica is compacted again and again.
 */
#ifndef LOGBUDGET_H
#define LOGBUDGET_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* The least share of a replica, however many there are. */
#define LOGBUDGET_FLOOR (UINT64_C(1) << 20)
/* A replica's share divided by this is for its trailing entries. */
#define LOGBUDGET_TRAILING_PART 8
/* Least time between two barriers for one replica. */
#define LOGBUDGET_INTERVAL_MS 30000

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

/* One replica at a check, as its rq_node reports it. */
struct logbudget_view {
    uint64_t bytes;      /* About what its log holds in memory. */
    uint64_t entries;    /* Entries its log holds in memory. */
    unsigned trailing;   /* libraft's trailing count. */
    uint64_t last_index; /* Of its log. */
    uint64_t applied;
    bool leader;     /* The ready leader (may propose a barrier). */
    bool compacting; /* A compaction is under way. */
};

/* What the broker keeps per replica between checks; zeroed at first. */
struct logbudget_state {
    uint64_t last_index; /* At the previous check. */
    uint64_t next_ms;    /* No barrier before this time. */
};

enum logbudget_action {
    LOGBUDGET_NONE,
    LOGBUDGET_LOWER,   /* rq_node_compact(n, false). */
    LOGBUDGET_BARRIER, /* rq_node_compact(n, true). */
};

/*
 * Decides for one replica of share @budget (memory plus trailing bytes)
 * at @now_ms. A replica is idle when its last index has not moved since
 * the previous check and it has applied everything; @s remembers the last
 * index for the next check. A LOGBUDGET_BARRIER carried out is reported
 * with logbudget_barrier_sent(), which starts the interval.
 */
enum logbudget_action logbudget_decide(const struct logbudget_view *v,
                                       struct logbudget_state *s,
                                       uint64_t budget, uint64_t now_ms);

void logbudget_barrier_sent(struct logbudget_state *s, uint64_t now_ms);

#endif /* LOGBUDGET_H */

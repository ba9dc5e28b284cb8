/*
 * Merging produces to one partition into one broker call (group commit),
 * as a pure queue: no I/O, no HTTP. qapi_produce.c is its adapter.
 *
 * Every single-record produce (POST /producer/produce) that reaches this
 * manager for a partition joins that partition's queue. While no call of
 * this manager to the partition is in flight, the queue is sent at once
 * (one record: no added latency); while one is, produces wait, and when it
 * ends all that waited go out as the next call: one request to the leader
 * broker, one Raft entry, each produce still answered with its own offset
 * (the call's base offset plus its place in the call).
 *
 * One call at a time per partition keeps the calls in order, which is
 * what lets each queue keep one deduplication identity at the brokers for
 * its whole life: a producer id drawn once, and a sequence that grows by
 * one per call. A retried call (a leader change, a lost answer) carries
 * the same pair, and the broker answers it once; no fresh id per call
 * evicts the real producers' entries from the broker's table.
 *
 *   produce -> pmerge_add: true?  -> pmerge_take -> call (pid, seq)
 *                          false: waits
 *   call ends -> answer its items -> pmerge_done: true? -> pmerge_take ...
 */
#ifndef PMERGE_H
#define PMERGE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct rq_http_req;

/* One produce waiting in its partition's queue or in a call. */
struct pmerge_item {
    /* First: the held request (mcore_hold's slot), NULL once its client
     * has gone. Nothing here reads it. */
    struct rq_http_req *req;
    struct pmerge_item *next;
    size_t len;    /* Bytes of rec. */
    uint8_t rec[]; /* The record, encoded as in the binary body. */
};

/* One partition's queue (placed by the caller). */
struct pmerge {
    struct pmerge_item *head; /* Waiting, oldest first. */
    struct pmerge_item **tail;
    size_t n;       /* Waiting. */
    bool in_flight; /* A call is out. */
    uint64_t producer_id;
    uint64_t sequence; /* Of the last call taken; 0 before the first. */
};

/* An empty queue whose calls carry @producer_id (not 0). */
void pmerge_init(struct pmerge *q, uint64_t producer_id);

/* Queues @it (owned by the queue until taken). true if the caller should
 * take and send a call now: none is in flight. */
bool pmerge_add(struct pmerge *q, struct pmerge_item *it);

/*
 * The next call: takes the oldest waiting items, in order, as many as fit
 * @max_records and @max_bytes of records (always at least one), marks a
 * call in flight and numbers it (*@sequence). Returns the list (linked by
 * next, owned by the caller) and its length in *@n; NULL if nothing waits.
 */
struct pmerge_item *pmerge_take(struct pmerge *q, size_t max_records,
                                size_t max_bytes, size_t *n,
                                uint64_t *sequence);

/* The call in flight has ended (answered or failed for good). true if
 * items wait: the caller takes the next call. */
bool pmerge_done(struct pmerge *q);

#endif /* PMERGE_H */

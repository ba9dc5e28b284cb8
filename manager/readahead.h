/*
 * Records read ahead for consumers, as a pure cache: no I/O, no HTTP.
 * qapi_consume.c is its adapter.
 *
 * A consume that finds no record cached at its consumer's offset reads a
 * batch from the partition's leader broker (readahead_want records) and
 * keeps what follows the first record here; the consumes after it take
 * their records from the cache and go straight to their offset advance,
 * one broker read per batch instead of one per advance. The cache holds
 * contents only: which offset a consume delivers is still decided by the
 * store (or the advance in flight before it), so a cached record is used
 * only at exactly the offset it was read at, in the partition group it was
 * read from. Records at an offset of a group never change once committed
 * (brokers answer reads with committed records only), so an entry is never
 * wrong, only old; retention may remove records an entry still holds,
 * which a consumer then gets as it would have had it read a moment
 * earlier.
 *
 * One entry per consumer (a consume of one partition keeps one; consumes
 * over several would replace it at every step, so they read only what
 * they serve). Entries are dropped, least recently used first, past
 * READAHEAD_ENTRIES or READAHEAD_BYTES of values in all, and an entry
 * keeps at most READAHEAD_ENTRY_BYTES of values.
 */
#ifndef READAHEAD_H
#define READAHEAD_H

#include <jansson.h>
#include <stddef.h>
#include <stdint.h>

#include "rq_idmap.h"
#include "rq_list.h"

#define READAHEAD_RECORDS 64
#define READAHEAD_ENTRY_BYTES (256u << 10)
#define READAHEAD_ENTRIES 4096
#define READAHEAD_BYTES (32u << 20)

struct readahead {
    struct rq_idmap by_consumer; /* consumer id -> struct readahead_entry */
    struct rq_list lru;          /* Least recently used first. */
    size_t n;
    size_t bytes; /* Of values held, in all. */
};

void readahead_init(struct readahead *ra);
/* Frees every entry. */
void readahead_close(struct readahead *ra);

/*
 * How many records a read for @consumer should ask for, at least @need:
 * READAHEAD_RECORDS, fewer when the values it read last were large (so
 * that a read brings about READAHEAD_ENTRY_BYTES of values).
 */
uint32_t readahead_want(const struct readahead *ra, uint64_t consumer,
                        uint32_t need);

/*
 * Keeps @records (a broker's answer: a JSON array of {offset, value}),
 * read for @consumer from partition group @group, from the @skip-th on:
 * those that follow on without a gap, within READAHEAD_ENTRY_BYTES. It
 * replaces the consumer's entry (with nothing to keep, it only drops it).
 * 0 or RQ_NOMEM (the entry is dropped).
 */
int readahead_put(struct readahead *ra, uint64_t consumer, uint64_t group,
                  const json_t *records, size_t skip);

/*
 * The records cached for @consumer of group @group from @offset on,
 * without a gap, at most @max: a new array (the caller's), or NULL if
 * none is cached at @offset (or no memory).
 */
json_t *readahead_get(struct readahead *ra, uint64_t consumer, uint64_t group,
                      uint64_t offset, size_t max);

/* Drops @consumer's entry (its consumer, or its topic, is gone). */
void readahead_forget(struct readahead *ra, uint64_t consumer);

#endif /* READAHEAD_H */

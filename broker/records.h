/*
 * A batch of records as it travels in a partition's Raft log and sits in
 * its segment files. Pure: no I/O.
 *
 * The leader encodes a produce request into one records blob; the blob is
 * the Raft entry payload (after the producer header the partition state
 * machine adds) and, unchanged, the body of a batch on disk, so applying an
 * entry copies bytes and never re-encodes. Timestamps are taken by the
 * leader when it encodes, so every replica stores the same bytes.
 *
 *     record: timestamp_ms:i64 | key_len:i32 (-1: no key) | value_len:u32
 *             | key (key_len bytes) | value (value_len bytes)
 *
 * The lengths after the timestamp are the record header of
 * shared/rq_record.h, decoded and written there alone.
 *
 * A blob is a plain concatenation of records; the count travels beside it.
 */
#ifndef RECORDS_H
#define RECORDS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "rq_record.h"
#include "rq_wire.h"

#define RECORDS_HEADER 16 /* Bytes of a record before its key. */

struct record {
    int64_t timestamp_ms;
    const uint8_t *key; /* NULL when the record has no key. */
    size_t key_len;
    const uint8_t *value; /* Borrowed from the blob. */
    size_t value_len;
};

/* Appends one record to @out (check out->err once at the end). */
void records_put(struct rq_buf *out, int64_t timestamp_ms, const void *key,
                 size_t key_len, bool has_key, const void *value,
                 size_t value_len);

/* The bytes one record takes in a blob. */
size_t records_size(size_t key_len, bool has_key, size_t value_len);

/*
 * Writes one record at @p, which has room for records_size() bytes, and
 * returns that size: for callers that size a blob first and write it in
 * place (into a Raft entry) with no intermediate buffer. The caller has
 * checked key_len <= INT32_MAX and value_len <= UINT32_MAX.
 */
size_t records_put_at(uint8_t *p, int64_t timestamp_ms, const void *key,
                      size_t key_len, bool has_key, const void *value,
                      size_t value_len);

/*
 * Checks that @blob holds exactly @count well-formed records and nothing
 * else. RQ_MALFORMED otherwise.
 */
int records_validate(const uint8_t *blob, size_t len, uint32_t count);

/*
 * Decodes the RECORDS_HEADER bytes at @p (the caller has checked they are
 * there): the timestamp and the record header. 0, or RQ_MALFORMED for a
 * negative key length other than -1.
 */
int records_header_at(const uint8_t *p, int64_t *timestamp_ms,
                      struct rq_record_header *out);

struct records_iter {
    struct rq_cursor cur;
};
void records_iter_init(struct records_iter *it, const uint8_t *blob,
                       size_t len);
/* 1 and fills @out; 0 at the end; RQ_MALFORMED on bad bytes. */
int records_next(struct records_iter *it, struct record *out);

#endif /* RECORDS_H */

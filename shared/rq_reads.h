/*
 * A record read's answer: the binary form (Content-Type
 * application/vnd.raftq.records, chosen by a client's Accept header) and
 * the JSON text of the same answer, written from it. Pure: no I/O.
 * Little-endian, no padding, nothing after the last record:
 *
 *     answer: count:u32 | next_offset:u64 | high_watermark:u64
 *             | count x record
 *     record: timestamp_ms:i64 | key_len:i32 (-1: no key) | value_len:u32
 *             | key (key_len bytes) | value (value_len bytes)
 *
 * The records are consecutive: record i has offset next_offset - count + i
 * (with no records, next_offset is the offset asked for). A record is the
 * binary produce body's (rq_record.h) with the leader's timestamp before
 * it, which is exactly how a broker keeps it in its segments
 * (broker/records.h), so a broker writes the head and then the bytes its
 * log read gave, and a manager relays the answer as it came.
 *
 * Keys and values are UTF-8 text without NUL bytes (a produce refuses
 * anything else), so the JSON answer written here carries the same
 * records; the writer checks the UTF-8 again as it escapes, so damaged
 * bytes never become a JSON text that is not one.
 */
#ifndef RQ_READS_H
#define RQ_READS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "rq_wire.h"

#define RQ_READS_HEAD 20   /* Bytes before the first record. */
#define RQ_READS_RECORD 16 /* Bytes of a record before its key. */

struct rq_reads_head {
    uint32_t count;
    uint64_t next_offset;
    uint64_t high_watermark;
};

struct rq_reads_record {
    uint64_t offset;
    int64_t timestamp_ms;
    bool has_key;
    const uint8_t *key; /* Borrowed from the answer; NULL without a key. */
    size_t key_len;
    const uint8_t *value; /* Borrowed from the answer. */
    size_t value_len;
};

/* true if @accept (an Accept header, NULL when absent) lists the binary
 * form: one of its comma-separated media ranges is
 * application/vnd.raftq.records (any case, parameters ignored). */
bool rq_reads_accepts_binary(const char *accept);

/* Writes @h at @p (RQ_READS_HEAD bytes). */
void rq_reads_head_put_at(uint8_t *p, const struct rq_reads_head *h);

/*
 * Checks that @body (@len bytes, borrowed) is a whole answer: its head,
 * exactly count records, nothing after them, next_offset at least count.
 * 0 and *out, or RQ_MALFORMED with @why (where it ended early, which
 * record is bad).
 */
int rq_reads_check(const uint8_t *body, size_t len, struct rq_reads_head *out,
                   char *why, size_t whyn);

/* Walks the records of an answer rq_reads_check() accepted. */
struct rq_reads_iter {
    const uint8_t *p;
    const uint8_t *end;
    uint64_t offset;
};
void rq_reads_iter_init(struct rq_reads_iter *it, const uint8_t *body,
                        size_t len, const struct rq_reads_head *h);
/* 1 and *out; 0 after the last record. */
int rq_reads_next(struct rq_reads_iter *it, struct rq_reads_record *out);

/*
 * Appends the JSON text of an answer to @out: `{"status":"success",
 * "records":[{"offset":..,"value":"..","key":".."|null,"timestamp_ms":..},
 * ..],"next_offset":..,"high_watermark":..` without the closing brace, so
 * that the caller may add members of its own before it. @records is
 * @h->count records of the binary form (the answer after its head; a
 * broker's log read), the first at offset next_offset - count. 0, or
 * RQ_MALFORMED if a record runs past @len or its text is not UTF-8 without
 * NUL (@out then holds a part: discard it); check out->err for RQ_NOMEM.
 */
int rq_reads_json_put(struct rq_buf *out, const struct rq_reads_head *h,
                      const uint8_t *records, size_t len);

/* Appends @s (@n bytes of UTF-8 text without NUL) to @out as a JSON
 * string, quotes included. RQ_MALFORMED for anything else. */
int rq_reads_json_string(struct rq_buf *out, const uint8_t *s, size_t n);

#endif /* RQ_READS_H */

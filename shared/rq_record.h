/*
 * One record on the wire: the header every record starts with, and the
 * binary produce body (Content-Type application/vnd.raftq.records) that
 * the manager writes and the broker reads. Pure: no I/O. Little-endian.
 *
 * The record header is the pair of lengths that opens a record in the
 * produce body and, after its timestamp, in a records blob
 * (broker/records.h):
 *
 *     header: key_len:i32 (-1: no key) | value_len:u32
 *
 * The binary produce body:
 *
 *     body:   count:u32 | count x record
 *     record: header | key (key_len bytes) | value (value_len bytes)
 *
 * This module only frames bytes. What a broker accepts (limits, UTF-8
 * text, nothing after the last record) is broker/produce_body.h's.
 */
#ifndef RQ_RECORD_H
#define RQ_RECORD_H

#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "rq_wire.h"

#define RQ_RECORD_HEADER 8 /* Bytes of a record header. */
#define RQ_RECORD_BODY_TYPE "application/vnd.raftq.records"
#define RQ_RECORD_BODY_COUNT 4 /* Bytes of the body's record count. */

struct rq_record_header {
    bool has_key;
    uint32_t key_len; /* 0 when !has_key. */
    uint32_t value_len;
};

/*
 * Decodes the RQ_RECORD_HEADER bytes at @p (the caller has checked they
 * are there). 0, or RQ_MALFORMED for a negative key length other than -1.
 */
int rq_record_header_at(const uint8_t *p, struct rq_record_header *out);

/* The bytes of key and value that follow a header. */
size_t rq_record_header_data(const struct rq_record_header *h);

/* Writes a header at @p (RQ_RECORD_HEADER bytes). The caller has checked
 * key_len <= INT32_MAX and value_len <= UINT32_MAX. */
void rq_record_header_put_at(uint8_t *p, bool has_key, size_t key_len,
                             size_t value_len);

/* true if @content_type (a Content-Type header, NULL when absent) names
 * the binary produce body; parameters after ';' are allowed and ignored. */
bool rq_record_body_is_binary(const char *content_type);

/* Encoding a body: the count first, then each record (check out->err
 * once at the end; RQ_TOOBIG for a key over INT32_MAX or a value over
 * UINT32_MAX bytes). */
void rq_record_body_put_count(struct rq_buf *out, uint32_t count);
void rq_record_body_put(struct rq_buf *out, const void *key, size_t key_len,
                        bool has_key, const void *value, size_t value_len);

/*
 * The whole body of @records (borrowed), the "records" list of a JSON
 * produce body already checked: objects with a string "value" and a
 * string, null or absent "key". Check out->err once at the end.
 */
void rq_record_body_put_json(struct rq_buf *out, const json_t *records);

#endif /* RQ_RECORD_H */

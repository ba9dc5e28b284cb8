/*
 * The binary body of a produce request (Content-Type
 * application/vnd.raftq.records): a compact alternative to the JSON body
 * for clients and managers that send many records, checked as strictly as
 * the JSON form and turned into a records blob (records.h) with one copy.
 * Pure: no I/O. The format, its encoder and the record header's decoder
 * are shared/rq_record.h's; little-endian:
 *
 *     body:   count:u32 | count x record
 *     record: key_len:i32 (-1: no key) | value_len:u32 | key | value
 *
 * Keys and values are UTF-8 text without NUL bytes, exactly the strings a
 * JSON body can carry (which refuses "\u0000"), so every record reads back
 * the same through the JSON read API whichever form produced it. Nothing
 * may follow the last record. The records of the JSON form are checked
 * and written here too (produce_body_json_check), so that both forms
 * answer alike.
 *
 * A body is checked once (produce_body_check), which also gives the size
 * of its records blob, so the caller can allocate the Raft entry and have
 * produce_body_write() fill it in place.
 */
#ifndef PRODUCE_BODY_H
#define PRODUCE_BODY_H

#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "rq_record.h"

struct produce_body_limits {
    uint32_t max_records; /* At most this many records (else RQ_TOOBIG). */
    uint64_t max_value;   /* Bytes of one value (else RQ_TOOBIG). */
    size_t max_blob;      /* Bytes of the records blob (else RQ_TOOBIG). */
};

/*
 * Checks that @body (@len bytes, borrowed) is a well-formed binary body
 * within @lim and fills *count and *blob_len (the bytes of its records
 * blob). RQ_MALFORMED (answer 400) for a truncated or malformed body, no
 * records, text that is not UTF-8 or holds NUL, or bytes after the last
 * record; RQ_TOOBIG (answer 413) over a limit. @why says which record and
 * why.
 */
int produce_body_check(const uint8_t *body, size_t len,
                       const struct produce_body_limits *lim, uint32_t *count,
                       size_t *blob_len, char *why, size_t whyn);

/*
 * Writes the records blob of a body that produce_body_check() accepted
 * into @out (blob_len bytes), every record stamped @timestamp_ms.
 */
void produce_body_write(const uint8_t *body, size_t len, int64_t timestamp_ms,
                        uint8_t *out);

/*
 * The JSON form's records: @records is the "records" member of a JSON
 * produce body (borrowed; NULL when absent), a list of 1 to
 * lim->max_records objects {"value": string, "key": string or null,
 * optional}. Fills *count and *blob_len as produce_body_check() does.
 * RQ_MALFORMED (400) for anything else, RQ_TOOBIG (413) over a limit;
 * @why says which record and why.
 */
int produce_body_json_check(const json_t *records,
                            const struct produce_body_limits *lim,
                            uint32_t *count, size_t *blob_len, char *why,
                            size_t whyn);

/* Writes the records blob of @records, which produce_body_json_check()
 * accepted, into @out (blob_len bytes), every record stamped
 * @timestamp_ms. */
void produce_body_json_write(const json_t *records, int64_t timestamp_ms,
                             uint8_t *out);

#endif /* PRODUCE_BODY_H */

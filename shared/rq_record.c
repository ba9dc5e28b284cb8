/*
 * The record header and the binary produce body: the one encoder and
 * decoder of both, used by the manager that forwards produces, the broker
 * that checks them and the partition log that reads records back. See
 * rq_record.h for the formats.
 */
#include "rq_record.h"

#include <assert.h>
#include <string.h>
#include <strings.h>

#include "rq_err.h"

#define NO_KEY UINT32_MAX /* key_len -1 */

/* key_len:i32 (-1: no key) | value_len:u32 */
int rq_record_header_at(const uint8_t *p, struct rq_record_header *out)
{
    uint32_t klen = rq_wire_u32_at(p);
    if (klen != NO_KEY && klen > INT32_MAX) {
        return RQ_MALFORMED; /* A negative length other than -1. */
    }
    out->has_key = klen != NO_KEY;
    out->key_len = out->has_key ? klen : 0;
    out->value_len = rq_wire_u32_at(p + 4);
    return 0;
}

size_t rq_record_header_data(const struct rq_record_header *h)
{
    return (size_t)h->key_len + h->value_len;
}

void rq_record_header_put_at(uint8_t *p, bool has_key, size_t key_len,
                             size_t value_len)
{
    assert(!has_key || key_len <= INT32_MAX);
    assert(value_len <= UINT32_MAX);
    rq_wire_put_u32_at(p, has_key ? (uint32_t)key_len : NO_KEY);
    rq_wire_put_u32_at(p + 4, (uint32_t)value_len);
}

bool rq_record_body_is_binary(const char *content_type)
{
    size_t n = sizeof RQ_RECORD_BODY_TYPE - 1;
    if (content_type == NULL) {
        return false;
    }
    while (*content_type == ' ' || *content_type == '\t') {
        content_type++;
    }
    if (strncasecmp(content_type, RQ_RECORD_BODY_TYPE, n) != 0) {
        return false;
    }
    content_type += n;
    while (*content_type == ' ' || *content_type == '\t') {
        content_type++;
    }
    return *content_type == '\0' || *content_type == ';';
}

/* count:u32 */
void rq_record_body_put_count(struct rq_buf *out, uint32_t count)
{
    rq_buf_put_u32(out, count);
}

/* header | key | value */
void rq_record_body_put(struct rq_buf *out, const void *key, size_t key_len,
                        bool has_key, const void *value, size_t value_len)
{
    if ((has_key && key_len > INT32_MAX) || value_len > UINT32_MAX) {
        out->err = RQ_TOOBIG;
        return;
    }
    if (rq_buf_reserve(out, RQ_RECORD_HEADER) != 0) {
        return; /* UNTESTED: ENOMEM only. */
    }
    rq_record_header_put_at(out->base + out->len, has_key, key_len, value_len);
    out->len += RQ_RECORD_HEADER;
    if (has_key) {
        rq_buf_put_bytes(out, key, key_len);
    }
    rq_buf_put_bytes(out, value, value_len);
}

void rq_record_body_put_json(struct rq_buf *out, const json_t *records)
{
    size_t n = json_array_size(records);
    if (n > UINT32_MAX) {
        out->err = RQ_TOOBIG; /* UNTESTED: over any body limit. */
        return;
    }
    rq_record_body_put_count(out, (uint32_t)n);
    for (size_t i = 0; i < n; i++) {
        const json_t *rec = json_array_get(records, i);
        const json_t *key = json_object_get(rec, "key");
        const json_t *value = json_object_get(rec, "value");
        bool has_key = json_is_string(key);
        rq_record_body_put(out, has_key ? json_string_value(key) : NULL,
                           has_key ? json_string_length(key) : 0, has_key,
                           json_string_value(value), json_string_length(value));
    }
}

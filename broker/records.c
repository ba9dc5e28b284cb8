/*
 * The records codec: appends records to a blob and walks a blob back into
 * records with a bounds-checked cursor. It never allocates on the read side
 * and never reads past the blob, so hostile bytes give RQ_MALFORMED, not an
 * overrun. It knows nothing of batches, files or offsets (see plog.c).
 */
#include "records.h"

#include <assert.h>
#include <string.h>

#include "rq_err.h"

size_t records_size(size_t key_len, bool has_key, size_t value_len)
{
    return RECORDS_HEADER + (has_key ? key_len : 0) + value_len;
}

size_t records_put_at(uint8_t *p, int64_t timestamp_ms, const void *key,
                      size_t key_len, bool has_key, const void *value,
                      size_t value_len)
{
    /* timestamp_ms:i64 | key_len:i32 (-1: no key) | value_len:u32
     * | key | value */
    size_t klen = has_key ? key_len : 0;
    rq_wire_put_u64_at(p, (uint64_t)timestamp_ms);
    rq_record_header_put_at(p + 8, has_key, key_len, value_len);
    if (klen > 0) {
        memcpy(p + RECORDS_HEADER, key, klen);
    }
    if (value_len > 0) {
        memcpy(p + RECORDS_HEADER + klen, value, value_len);
    }
    return RECORDS_HEADER + klen + value_len;
}

void records_put(struct rq_buf *out, int64_t timestamp_ms, const void *key,
                 size_t key_len, bool has_key, const void *value,
                 size_t value_len)
{
    if ((has_key && key_len > INT32_MAX) || value_len > UINT32_MAX) {
        out->err = RQ_TOOBIG;
        return;
    }
    size_t n = records_size(key_len, has_key, value_len);
    if (rq_buf_reserve(out, n) != 0) {
        return;
    }
    out->len += records_put_at(out->base + out->len, timestamp_ms, key, key_len,
                               has_key, value, value_len);
}

void records_iter_init(struct records_iter *it, const uint8_t *blob, size_t len)
{
    rq_cursor_init(&it->cur, blob, len);
}

int records_header_at(const uint8_t *p, int64_t *timestamp_ms,
                      struct rq_record_header *out)
{
    *timestamp_ms = (int64_t)rq_wire_u64_at(p);
    return rq_record_header_at(p + 8, out);
}

int records_next(struct records_iter *it, struct record *out)
{
    struct rq_cursor *c = &it->cur;
    const uint8_t *p;
    struct rq_record_header h;

    if (c->left == 0) {
        return 0;
    }
    if (rq_wire_get_bytes(c, RECORDS_HEADER, &p) != 0 ||
        records_header_at(p, &out->timestamp_ms, &h) != 0 ||
        rq_wire_get_bytes(c, h.key_len, &out->key) != 0 ||
        rq_wire_get_bytes(c, h.value_len, &out->value) != 0) {
        return RQ_MALFORMED;
    }
    if (!h.has_key) {
        out->key = NULL;
    }
    out->key_len = h.key_len;
    out->value_len = h.value_len;
    return 1;
}

int records_validate(const uint8_t *blob, size_t len, uint32_t count)
{
    struct records_iter it;
    struct record r;

    /* Every record takes at least its header, so a count the blob cannot
     * hold is refused before walking it. */
    if (count > len / RECORDS_HEADER) {
        return RQ_MALFORMED;
    }
    records_iter_init(&it, blob, len);
    for (uint32_t i = 0; i < count; i++) {
        if (records_next(&it, &r) != 1) {
            return RQ_MALFORMED;
        }
    }
    return it.cur.left == 0 ? 0 : RQ_MALFORMED;
}

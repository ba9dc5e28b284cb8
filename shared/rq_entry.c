/*
 * Entry framing: see rq_entry.h for why every entry is padded to 8 bytes.
 */
#include "rq_entry.h"

#include <string.h>

#include "rq_err.h"
#include "rq_wire.h"

int rq_entry_alloc(size_t len, struct raft_buffer *out, uint8_t **payload)
{
    if (len > RQ_ENTRY_MAX) {
        return RQ_TOOBIG;
    }
    size_t total = RQ_ENTRY_HEADER + ((len + 7) & ~(size_t)7);
    uint8_t *p = raft_malloc(total);
    if (p == NULL) {
        return RQ_NOMEM; /* UNTESTED: ENOMEM only. */
    }
    rq_wire_put_u32_at(p, (uint32_t)len);
    rq_wire_put_u32_at(p + 4, RQ_ENTRY_FORMAT);
    memset(p + RQ_ENTRY_HEADER + len, 0, total - RQ_ENTRY_HEADER - len);
    out->base = p;
    out->len = total;
    *payload = p + RQ_ENTRY_HEADER;
    return 0;
}

int rq_entry_encode(const void *payload, size_t len, struct raft_buffer *out)
{
    uint8_t *p;
    int rv = rq_entry_alloc(len, out, &p);
    if (rv == 0 && len > 0) {
        memcpy(p, payload, len);
    }
    return rv;
}

int rq_entry_decode(const struct raft_buffer *buf, const uint8_t **payload,
                    size_t *len)
{
    const uint8_t *p = buf->base;
    if (buf->len < RQ_ENTRY_HEADER || buf->len % 8 != 0) {
        return RQ_MALFORMED;
    }
    uint32_t n = rq_wire_u32_at(p);
    if (rq_wire_u32_at(p + 4) != RQ_ENTRY_FORMAT ||
        n > buf->len - RQ_ENTRY_HEADER || buf->len - RQ_ENTRY_HEADER - n >= 8) {
        return RQ_MALFORMED;
    }
    for (size_t i = RQ_ENTRY_HEADER + n; i < buf->len; i++) {
        if (p[i] != 0) {
            return RQ_MALFORMED;
        }
    }
    *payload = p + RQ_ENTRY_HEADER;
    *len = n;
    return 0;
}

/*
 * Little-endian encoding, byte by byte, so the format does not depend on the
 * host's byte order or alignment.
 */
#include "rq_wire.h"

#include <stdlib.h>
#include <string.h>

#include "rq_err.h"

void rq_cursor_init(struct rq_cursor *c, const void *p, size_t n)
{
    c->p = p;
    c->left = n;
}

void rq_wire_put_u16_at(uint8_t *p, uint16_t v)
{
    p[0] = (uint8_t)v;
    p[1] = (uint8_t)(v >> 8);
}

void rq_wire_put_u32_at(uint8_t *p, uint32_t v)
{
    for (int i = 0; i < 4; i++) {
        p[i] = (uint8_t)(v >> (8 * i));
    }
}

void rq_wire_put_u64_at(uint8_t *p, uint64_t v)
{
    for (int i = 0; i < 8; i++) {
        p[i] = (uint8_t)(v >> (8 * i));
    }
}

uint16_t rq_wire_u16_at(const uint8_t *p)
{
    return (uint16_t)(p[0] | (p[1] << 8));
}

uint32_t rq_wire_u32_at(const uint8_t *p)
{
    uint32_t v = 0;
    for (int i = 3; i >= 0; i--) {
        v = (v << 8) | p[i];
    }
    return v;
}

uint64_t rq_wire_u64_at(const uint8_t *p)
{
    uint64_t v = 0;
    for (int i = 7; i >= 0; i--) {
        v = (v << 8) | p[i];
    }
    return v;
}

int rq_wire_get_bytes(struct rq_cursor *c, size_t n, const uint8_t **out)
{
    if (c->left < n) {
        return RQ_MALFORMED;
    }
    *out = c->p;
    c->p += n;
    c->left -= n;
    return 0;
}

int rq_wire_get_u8(struct rq_cursor *c, uint8_t *out)
{
    const uint8_t *p;
    if (rq_wire_get_bytes(c, 1, &p) != 0) {
        return RQ_MALFORMED;
    }
    *out = p[0];
    return 0;
}

int rq_wire_get_u16(struct rq_cursor *c, uint16_t *out)
{
    const uint8_t *p;
    if (rq_wire_get_bytes(c, 2, &p) != 0) {
        return RQ_MALFORMED;
    }
    *out = rq_wire_u16_at(p);
    return 0;
}

int rq_wire_get_u32(struct rq_cursor *c, uint32_t *out)
{
    const uint8_t *p;
    if (rq_wire_get_bytes(c, 4, &p) != 0) {
        return RQ_MALFORMED;
    }
    *out = rq_wire_u32_at(p);
    return 0;
}

int rq_wire_get_u64(struct rq_cursor *c, uint64_t *out)
{
    const uint8_t *p;
    if (rq_wire_get_bytes(c, 8, &p) != 0) {
        return RQ_MALFORMED;
    }
    *out = rq_wire_u64_at(p);
    return 0;
}

int rq_wire_get_blob(struct rq_cursor *c, size_t max, const uint8_t **out,
                     size_t *len)
{
    uint32_t n;
    if (rq_wire_get_u32(c, &n) != 0 || n > max) {
        return RQ_MALFORMED;
    }
    if (rq_wire_get_bytes(c, n, out) != 0) {
        return RQ_MALFORMED;
    }
    *len = n;
    return 0;
}

void rq_buf_init(struct rq_buf *b)
{
    b->base = NULL;
    b->len = 0;
    b->cap = 0;
    b->err = 0;
}

void rq_buf_close(struct rq_buf *b)
{
    free(b->base);
    rq_buf_init(b);
}

int rq_buf_reserve(struct rq_buf *b, size_t n)
{
    if (b->err != 0) {
        return b->err;
    }
    if (n <= b->cap - b->len) {
        return 0;
    }
    size_t cap = b->cap == 0 ? 64 : b->cap;
    while (cap - b->len < n) {
        if (cap > SIZE_MAX / 2) {
            b->err = RQ_NOMEM;
            return b->err;
        }
        cap *= 2;
    }
    uint8_t *p = realloc(b->base, cap);
    if (p == NULL) {
        b->err = RQ_NOMEM; /* UNTESTED: ENOMEM only. */
        return b->err;
    }
    b->base = p;
    b->cap = cap;
    return 0;
}

void rq_buf_put_bytes(struct rq_buf *b, const void *p, size_t n)
{
    if (n == 0 || rq_buf_reserve(b, n) != 0) {
        return;
    }
    memcpy(b->base + b->len, p, n);
    b->len += n;
}

void rq_buf_put_u8(struct rq_buf *b, uint8_t v)
{
    rq_buf_put_bytes(b, &v, 1);
}

void rq_buf_put_u16(struct rq_buf *b, uint16_t v)
{
    uint8_t p[2];
    rq_wire_put_u16_at(p, v);
    rq_buf_put_bytes(b, p, sizeof p);
}

void rq_buf_put_u32(struct rq_buf *b, uint32_t v)
{
    uint8_t p[4];
    rq_wire_put_u32_at(p, v);
    rq_buf_put_bytes(b, p, sizeof p);
}

void rq_buf_put_u64(struct rq_buf *b, uint64_t v)
{
    uint8_t p[8];
    rq_wire_put_u64_at(p, v);
    rq_buf_put_bytes(b, p, sizeof p);
}

void rq_buf_put_blob(struct rq_buf *b, const void *p, size_t n)
{
    if (n > UINT32_MAX) {
        b->err = RQ_TOOBIG;
        return;
    }
    rq_buf_put_u32(b, (uint32_t)n);
    rq_buf_put_bytes(b, p, n);
}

void rq_buf_pad(struct rq_buf *b, size_t align)
{
    static const uint8_t zeros[64];
    size_t n = (align - b->len % align) % align;
    while (n > 0) {
        size_t k = n < sizeof zeros ? n : sizeof zeros;
        rq_buf_put_bytes(b, zeros, k);
        n -= k;
    }
}

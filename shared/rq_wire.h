/*
 * Bounds-checked little-endian codecs.
 *
 * Readers use a cursor over borrowed bytes; every get checks the bytes left
 * and returns RQ_MALFORMED instead of reading past the end, so a truncated or
 * hostile buffer is an error, never an overrun:
 *
 *     struct rq_cursor cur;
 *     rq_cursor_init(&cur, buf, len);
 *     if (rq_wire_get_u64(&cur, &group) != 0) return RQ_MALFORMED;
 *
 * Writers append to a growable heap buffer. An allocation failure sticks in
 * the buffer (b->err) so a sequence of puts is checked once at the end.
 */
#ifndef RQ_WIRE_H
#define RQ_WIRE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct rq_cursor {
    const uint8_t *p; /* Next byte to read (borrowed). */
    size_t left;      /* Bytes left after p. */
};

void rq_cursor_init(struct rq_cursor *c, const void *p, size_t n);

int rq_wire_get_u8(struct rq_cursor *c, uint8_t *out);
int rq_wire_get_u16(struct rq_cursor *c, uint16_t *out);
int rq_wire_get_u32(struct rq_cursor *c, uint32_t *out);
int rq_wire_get_u64(struct rq_cursor *c, uint64_t *out);
/* Points *out at the next @n bytes inside the cursor's buffer (borrowed). */
int rq_wire_get_bytes(struct rq_cursor *c, size_t n, const uint8_t **out);
/* A u32 length followed by that many bytes, at most @max. */
int rq_wire_get_blob(struct rq_cursor *c, size_t max, const uint8_t **out,
                     size_t *len);

/* Fixed-position helpers for headers whose layout is known in advance. */
void rq_wire_put_u16_at(uint8_t *p, uint16_t v);
void rq_wire_put_u32_at(uint8_t *p, uint32_t v);
void rq_wire_put_u64_at(uint8_t *p, uint64_t v);
uint16_t rq_wire_u16_at(const uint8_t *p);
uint32_t rq_wire_u32_at(const uint8_t *p);
uint64_t rq_wire_u64_at(const uint8_t *p);

struct rq_buf {
    uint8_t *base; /* Heap, owned; NULL until the first put. */
    size_t len;
    size_t cap;
    int err; /* RQ_NOMEM once any put failed; later puts do nothing. */
};

void rq_buf_init(struct rq_buf *b);
/* Frees the bytes; the buffer may be reused after rq_buf_init(). */
void rq_buf_close(struct rq_buf *b);
/* Ensures room for @n more bytes; returns 0 or RQ_NOMEM (also sets err). */
int rq_buf_reserve(struct rq_buf *b, size_t n);
void rq_buf_put_u8(struct rq_buf *b, uint8_t v);
void rq_buf_put_u16(struct rq_buf *b, uint16_t v);
void rq_buf_put_u32(struct rq_buf *b, uint32_t v);
void rq_buf_put_u64(struct rq_buf *b, uint64_t v);
void rq_buf_put_bytes(struct rq_buf *b, const void *p, size_t n);
/* A u32 length then the bytes: the counterpart of rq_wire_get_blob(). */
void rq_buf_put_blob(struct rq_buf *b, const void *p, size_t n);
/* Appends zero bytes until len is a multiple of @align. */
void rq_buf_pad(struct rq_buf *b, size_t align);

#endif /* RQ_WIRE_H */

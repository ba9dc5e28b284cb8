/*
 * The batch entry's codec (mbatch.h). The header's n is written as 0 by
 * mbatch_begin() and counted up in place by every mbatch_add(), so a
 * batch is built in one buffer without knowing its size first.
 */
#include "mbatch.h"

#include <assert.h>

#include "mcmd.h"
#include "rq_err.h"

_Static_assert(MBATCH_TYPE == MCMD_TYPE_BATCH,
               "a batch's type byte must be the one no command takes");

#define N_AT 18 /* Offset of n in the header. */

bool mbatch_is(const uint8_t *buf, size_t len)
{
    return len >= 2 && buf[0] == MCMD_VERSION && buf[1] == MBATCH_TYPE;
}

void mbatch_begin(struct rq_buf *out, uint64_t now_ms, uint64_t nonce)
{
    rq_buf_put_u8(out, MCMD_VERSION);
    rq_buf_put_u8(out, MBATCH_TYPE);
    rq_buf_put_u64(out, now_ms);
    rq_buf_put_u64(out, nonce);
    rq_buf_put_u32(out, 0);
}

void mbatch_add(struct rq_buf *out, const uint8_t *cmd, size_t len)
{
    rq_buf_put_blob(out, cmd, len);
    if (out->err == 0) {
        assert(out->len >= MBATCH_HEADER);
        uint8_t *n = out->base + N_AT;
        rq_wire_put_u32_at(n, rq_wire_u32_at(n) + 1);
    }
}

int mbatch_decode(const uint8_t *buf, size_t len, struct mbatch *out, char *why,
                  size_t whyn)
{
    struct rq_cursor cur;

    if (!mbatch_is(buf, len)) {
        rq_why(why, whyn, "not a batch");
        return RQ_MALFORMED;
    }
    rq_cursor_init(&cur, buf + 2, len - 2);
    if (rq_wire_get_u64(&cur, &out->now_ms) != 0 ||
        rq_wire_get_u64(&cur, &out->nonce) != 0 ||
        rq_wire_get_u32(&cur, &out->n) != 0) {
        rq_why(why, whyn, "%zu bytes: shorter than a batch header", len);
        return RQ_MALFORMED;
    }
    if (out->n == 0 || out->n > MBATCH_MAX_N) {
        rq_why(why, whyn, "a batch of %u commands (1 to %d)", out->n,
               MBATCH_MAX_N);
        return RQ_MALFORMED;
    }
    out->rest = cur;
    for (uint32_t i = 0; i < out->n; i++) {
        const uint8_t *cmd;
        size_t n;
        if (rq_wire_get_blob(&cur, MBATCH_MAX_BYTES, &cmd, &n) != 0) {
            rq_why(why, whyn, "command %u of %u is cut short", i + 1, out->n);
            return RQ_MALFORMED;
        }
        if (mbatch_is(cmd, n)) {
            rq_why(why, whyn, "command %u of %u is itself a batch", i + 1,
                   out->n);
            return RQ_MALFORMED;
        }
    }
    if (cur.left != 0) {
        rq_why(why, whyn, "%zu bytes after the batch's %u commands", cur.left,
               out->n);
        return RQ_MALFORMED;
    }
    return 0;
}

bool mbatch_next(struct mbatch *b, const uint8_t **cmd, size_t *len)
{
    /* mbatch_decode() checked every length: this cannot fail while
     * commands are left. */
    return rq_wire_get_blob(&b->rest, MBATCH_MAX_BYTES, cmd, len) == 0;
}

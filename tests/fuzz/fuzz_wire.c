/*
 * Fuzzes the bounds-checked cursor and the growable buffer
 * (shared/rq_wire.h). The input is a program: each byte picks a read (u8,
 * u16, u32, u64, bytes, blob) from the rest of the input, which must never
 * read past the end, and every value read is written to an rq_buf with the
 * matching put. The bytes written must equal the bytes consumed.
 */
#include "fuzz.h"
#include "rq_err.h"
#include "rq_wire.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    struct rq_cursor cur;
    struct rq_buf out;
    size_t ops;

    if (size == 0) {
        return 0;
    }
    ops = data[0] % 32 + 1;
    rq_cursor_init(&cur, data + 1, size - 1);
    rq_buf_init(&out);
    const uint8_t *start = cur.p;
    size_t consumed = 0;
    for (size_t i = 0; i < ops && cur.left > 0; i++) {
        uint8_t op;
        uint16_t v16;
        uint32_t v32;
        uint64_t v64;
        const uint8_t *b;
        size_t n;
        size_t before = cur.left;
        size_t written = out.len;
        int rv = rq_wire_get_u8(&cur, &op);
        FUZZ_CHECK(rv == 0);
        rq_buf_put_u8(&out, op);
        switch (op % 7) {
            case 0:
                rv = rq_wire_get_u16(&cur, &v16);
                if (rv == 0) {
                    rq_buf_put_u16(&out, v16);
                    FUZZ_CHECK(rq_wire_u16_at(cur.p - 2) == v16);
                }
                break;
            case 1:
                rv = rq_wire_get_u32(&cur, &v32);
                if (rv == 0) {
                    rq_buf_put_u32(&out, v32);
                }
                break;
            case 2:
                rv = rq_wire_get_u64(&cur, &v64);
                if (rv == 0) {
                    rq_buf_put_u64(&out, v64);
                    FUZZ_CHECK(rq_wire_u64_at(cur.p - 8) == v64);
                }
                break;
            case 3:
                n = op / 7;
                rv = rq_wire_get_bytes(&cur, n, &b);
                if (rv == 0) {
                    rq_buf_put_bytes(&out, b, n);
                }
                break;
            case 4:
                rv = rq_wire_get_blob(&cur, op, &b, &n);
                if (rv == 0) {
                    FUZZ_CHECK(n <= op);
                    rq_buf_put_blob(&out, b, n);
                }
                break;
            case 5:
                rv = rq_wire_get_bytes(&cur, SIZE_MAX, &b);
                FUZZ_CHECK(rv == RQ_MALFORMED);
                break;
            default:
                rv = rq_wire_get_blob(&cur, SIZE_MAX, &b, &n);
                if (rv == 0) {
                    rq_buf_put_blob(&out, b, n);
                }
                break;
        }
        if (rv != 0) {
            /* A failed read may consume part of a blob's header only. */
            FUZZ_CHECK(rv == RQ_MALFORMED);
            out.len = written;
            break;
        }
        FUZZ_CHECK(cur.left <= before);
        consumed = (size_t)(cur.p - start);
    }
    FUZZ_CHECK(out.err == 0);
    FUZZ_CHECK(out.len == consumed);
    FUZZ_CHECK(consumed == 0 || memcmp(out.base, start, consumed) == 0);
    rq_buf_pad(&out, 8);
    FUZZ_CHECK(out.len % 8 == 0);
    rq_buf_close(&out);
    return 0;
}

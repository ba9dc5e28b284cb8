/*
 * Fuzzes the RPC framing (shared/rq_rpc.h, rq_rpc_frame_parse), the first
 * thing done with the bytes a peer sends on an RPC stream. The input is a
 * stream: frames are split off it as a connection's reader does, until it
 * runs dry or a length is refused. Each frame must lie within the input,
 * re-encode to its own bytes (pad bytes aside), and be reported as
 * incomplete when any byte of it is missing.
 */
#include "fuzz.h"
#include "rq_err.h"
#include "rq_rpc.h"
#include "rq_wire.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    size_t off = 0;

    while (off < size) {
        struct rq_rpc_frame f;
        size_t used = 0;
        int rv = rq_rpc_frame_parse(data + off, size - off, &f, &used);
        if (rv == 0) {
            /* Incomplete: a header shorter than 4 bytes, or a frame
             * longer than what is left. */
            FUZZ_CHECK(size - off < 4 ||
                       (size_t)rq_wire_u32_at(data + off) + 4 > size - off);
            break;
        }
        if (rv != 1) {
            FUZZ_CHECK(rv == RQ_MALFORMED);
            uint32_t len = rq_wire_u32_at(data + off);
            FUZZ_CHECK(len < RQ_RPC_HEADER - 4 || len > RQ_RPC_MAX_FRAME);
            break;
        }
        FUZZ_CHECK(used >= RQ_RPC_HEADER && used <= size - off);
        FUZZ_CHECK(f.body == data + off + RQ_RPC_HEADER);
        FUZZ_CHECK(f.len == used - RQ_RPC_HEADER);

        uint8_t hdr[RQ_RPC_HEADER];
        rq_wire_put_u32_at(hdr, (uint32_t)(used - 4));
        hdr[4] = f.type;
        memcpy(hdr + 5, data + off + 5, 3); /* The pad is not checked. */
        rq_wire_put_u64_at(hdr + 8, f.id);
        rq_wire_put_u32_at(hdr + 16, f.method);
        rq_wire_put_u32_at(hdr + 20, f.status);
        FUZZ_CHECK(memcmp(hdr, data + off, RQ_RPC_HEADER) == 0);

        /* One byte short, the same frame is not ready yet. */
        struct rq_rpc_frame g;
        size_t used2;
        FUZZ_CHECK(rq_rpc_frame_parse(data + off, used - 1, &g, &used2) == 0);
        off += used;
    }
    return 0;
}

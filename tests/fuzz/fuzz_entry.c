/*
 * Fuzzes the Raft entry framing (shared/rq_entry.h): a decode of hostile
 * bytes must stay inside them, and what decodes must re-encode to exactly
 * the same bytes (the frame is canonical). Also encodes the input as a
 * payload and checks that it decodes back.
 */
#include <raft.h>

#include "fuzz.h"
#include "rq_entry.h"
#include "rq_err.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    struct raft_buffer in = {.base = (void *)data, .len = size};
    struct raft_buffer out;
    const uint8_t *payload;
    size_t len;

    int rv = rq_entry_decode(&in, &payload, &len);
    if (rv == 0) {
        FUZZ_CHECK(payload >= data && payload + len <= data + size);
        FUZZ_CHECK(rq_entry_encode(payload, len, &out) == 0);
        FUZZ_CHECK(out.len == size && memcmp(out.base, data, size) == 0);
        raft_free(out.base);
    } else {
        FUZZ_CHECK(rv == RQ_MALFORMED);
    }

    FUZZ_CHECK(rq_entry_encode(data, size, &out) == 0);
    FUZZ_CHECK(out.len % 8 == 0);
    FUZZ_CHECK(rq_entry_decode(&out, &payload, &len) == 0);
    FUZZ_CHECK(len == size && (size == 0 || memcmp(payload, data, size) == 0));
    raft_free(out.base);
    return 0;
}

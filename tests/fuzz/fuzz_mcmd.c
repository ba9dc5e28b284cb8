/*
 * Fuzzes the manager's command codec (manager/mcmd.h), the bytes every
 * manager applies from the metadata Raft log. Decoding is total: any input
 * decodes or fails with RQ_MALFORMED and a reason. Whatever decodes must
 * re-encode to exactly the input (the header promises it), and that
 * encoding must decode again to the same bytes.
 */
#include "fuzz.h"
#include "manager/mcmd.h"
#include "rq_err.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    struct mcmd c;
    struct mcmd d;
    struct rq_buf out;
    struct rq_buf again;
    char why[256] = "";

    int rv = mcmd_decode(data, size, &c, why, sizeof why);
    if (rv != 0) {
        FUZZ_CHECK(rv == RQ_MALFORMED);
        FUZZ_CHECK(why[0] != '\0');
        /* A failed decode leaves nothing to free; clearing is harmless. */
        mcmd_clear(&c);
        return 0;
    }
    FUZZ_CHECK(mcmd_type_name(c.type) != NULL);
    rq_buf_init(&out);
    FUZZ_CHECK(mcmd_encode(&c, &out) == 0);
    FUZZ_CHECK(out.len == size && memcmp(out.base, data, size) == 0);
    FUZZ_CHECK(mcmd_decode(out.base, out.len, &d, why, sizeof why) == 0);
    rq_buf_init(&again);
    FUZZ_CHECK(mcmd_encode(&d, &again) == 0);
    FUZZ_CHECK(again.len == out.len &&
               memcmp(again.base, out.base, out.len) == 0);
    if (c.type == MCMD_TOPIC_CREATE) {
        FUZZ_CHECK(rq_names_topic_valid(c.u.topic_create.name));
    }
    rq_buf_close(&again);
    rq_buf_close(&out);
    mcmd_clear(&d);
    mcmd_clear(&c);
    return 0;
}

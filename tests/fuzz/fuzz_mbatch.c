/*
 * Fuzzes the batch entry's codec (manager/mbatch.h), the other kind of
 * bytes every manager applies from the metadata Raft log. Decoding is
 * total: any input is a batch or fails with RQ_MALFORMED and a reason.
 * A batch that decodes yields exactly its n commands, none of them a
 * batch, each of which decodes as a command or fails as mcmd_decode
 * says; rebuilt from its pieces, it is the input again.
 */
#include "fuzz.h"
#include "manager/mbatch.h"
#include "manager/mcmd.h"
#include "rq_err.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    struct mbatch b;
    struct rq_buf out;
    char why[256] = "";
    const uint8_t *cmd;
    size_t len;
    uint32_t n = 0;

    int rv = mbatch_decode(data, size, &b, why, sizeof why);
    if (rv != 0) {
        FUZZ_CHECK(rv == RQ_MALFORMED);
        FUZZ_CHECK(why[0] != '\0');
        return 0;
    }
    FUZZ_CHECK(mbatch_is(data, size));
    FUZZ_CHECK(b.n >= 1 && b.n <= MBATCH_MAX_N);
    rq_buf_init(&out);
    mbatch_begin(&out, b.now_ms, b.nonce);
    while (mbatch_next(&b, &cmd, &len)) {
        struct mcmd c;
        n++;
        FUZZ_CHECK(cmd >= data && cmd + len <= data + size);
        FUZZ_CHECK(!mbatch_is(cmd, len));
        rv = mcmd_decode(cmd, len, &c, why, sizeof why);
        FUZZ_CHECK(rv == 0 || rv == RQ_MALFORMED);
        if (rv == 0) {
            mcmd_clear(&c);
        }
        mbatch_add(&out, cmd, len);
    }
    FUZZ_CHECK(n == b.n);
    FUZZ_CHECK(out.err == 0 && out.len == size &&
               memcmp(out.base, data, size) == 0);
    rq_buf_close(&out);
    return 0;
}

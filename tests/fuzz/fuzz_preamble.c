/*
 * Fuzzes the connection preamble (shared/rq_preamble.h) three ways: the
 * input as it comes off the network, decoded with a known key; the same
 * bytes with a correct MAC computed over them, so that the checks after
 * the MAC (magic, version, kind, address) see hostile bytes too; and a
 * preamble encoded from fields taken from the input, which must decode to
 * the same fields. Whatever decodes must re-encode to the same bytes.
 */
#include <nettle/hmac.h>

#include "fuzz.h"
#include "rq_err.h"
#include "rq_preamble.h"

static void check_reencodes(const uint8_t in[RQ_PREAMBLE_SIZE],
                            const struct rq_cluster_key *k)
{
    struct rq_preamble p;
    uint8_t again[RQ_PREAMBLE_SIZE];
    char why[128];

    if (rq_preamble_decode(in, k, &p, why, sizeof why) != 0) {
        return;
    }
    FUZZ_CHECK(rq_preamble_encode(&p, k, again) == 0);
    FUZZ_CHECK(memcmp(in, again, RQ_PREAMBLE_SIZE) == 0);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static struct rq_cluster_key key;
    static int ready;
    uint8_t buf[RQ_PREAMBLE_SIZE] = {0};
    struct rq_preamble p;
    struct rq_preamble q;
    char why[128];
    int rv;

    if (!ready) {
        rq_cluster_key_derive(&key, "fuzz-secret");
        ready = 1;
    }
    memcpy(buf, data, size < sizeof buf ? size : sizeof buf);

    /* As received: almost always refused by the MAC. */
    rv = rq_preamble_decode(buf, &key, &p, why, sizeof why);
    FUZZ_CHECK(rv == 0 || rv == RQ_MALFORMED || rv == RQ_AUTH);
    check_reencodes(buf, &key);

    /* The same bytes with a valid MAC: the field checks are reached. */
    struct hmac_sha256_ctx ctx;
    hmac_sha256_set_key(&ctx, sizeof key.key, key.key);
    hmac_sha256_update(&ctx, RQ_PREAMBLE_SIZE - RQ_PREAMBLE_MAC, buf);
    hmac_sha256_digest(&ctx, RQ_PREAMBLE_MAC,
                       buf + RQ_PREAMBLE_SIZE - RQ_PREAMBLE_MAC);
    rv = rq_preamble_decode(buf, &key, &p, why, sizeof why);
    FUZZ_CHECK(rv == 0 || rv == RQ_MALFORMED);
    check_reencodes(buf, &key);

    /* Fields from the input, encoded: a decode must give them back. */
    struct fuzz_in in = {data, size};
    memset(&p, 0, sizeof p);
    p.version = (uint16_t)(fuzz_u8(&in) | fuzz_u8(&in) << 8);
    p.kind = (uint16_t)(fuzz_u8(&in) | fuzz_u8(&in) << 8);
    p.cluster_id = fuzz_u64(&in);
    p.group_id = fuzz_u64(&in);
    p.sender_id = fuzz_u64(&in);
    p.nonce = fuzz_u64(&in);
    char *addr = fuzz_str(&in);
    snprintf(p.address, sizeof p.address, "%s", addr);
    free(addr);
    if (rq_preamble_encode(&p, &key, buf) == 0) {
        rv = rq_preamble_decode(buf, &key, &q, why, sizeof why);
        if (rv == 0) {
            FUZZ_CHECK(q.version == p.version && q.kind == p.kind &&
                       q.cluster_id == p.cluster_id &&
                       q.group_id == p.group_id && q.sender_id == p.sender_id &&
                       q.nonce == p.nonce && strcmp(q.address, p.address) == 0);
        } else {
            /* Only the fields the encoder does not check may be refused. */
            FUZZ_CHECK(rv == RQ_MALFORMED);
            FUZZ_CHECK(p.version != RQ_PREAMBLE_VERSION ||
                       (p.kind != RQ_STREAM_RAFT && p.kind != RQ_STREAM_RPC));
        }
    }
    return 0;
}

/*
 * Fuzzes the connection challenge and preamble (shared/rq_preamble.h). The
 * input is a challenge (40 bytes) then a preamble (160 bytes), both as they
 * come off the network, then the fields of a preamble to encode:
 *
 *   1. The challenge is parsed; what parses re-encodes to the same bytes.
 *   2. The preamble is checked against the challenge's nonce (or a fixed
 *      one if the challenge did not parse), as received: almost always
 *      refused by the MAC.
 *   3. The same bytes with a valid MAC computed over them, so that the
 *      checks after the MAC (the challenge answered, kind, address) see
 *      hostile bytes too; then also answering the right nonce.
 *   4. A preamble encoded from fields taken from the input must decode to
 *      the same fields for its own nonce and count as a replay for any
 *      other.
 * Whatever decodes must re-encode to the same bytes.
 */
#include <nettle/hmac.h>

#include "fuzz.h"
#include "rq_err.h"
#include "rq_keys.h"
#include "rq_preamble.h"

#define SECRET "fuzz-secret-0123456789abcdef-0123456789"
#define AT_CHALLENGE 32 /* The preamble's challenge field. */

static void check_reencodes(const uint8_t in[RQ_PREAMBLE_SIZE],
                            const uint8_t *key,
                            const uint8_t nonce[RQ_NONCE_SIZE])
{
    struct rq_preamble p;
    uint8_t again[RQ_PREAMBLE_SIZE];
    char why[128];

    if (rq_preamble_decode(in, key, nonce, &p, why, sizeof why) != 0) {
        return;
    }
    FUZZ_CHECK(memcmp(p.challenge, nonce, RQ_NONCE_SIZE) == 0);
    FUZZ_CHECK(rq_preamble_encode(&p, key, again) == 0);
    FUZZ_CHECK(memcmp(in, again, RQ_PREAMBLE_SIZE) == 0);
}

static void remac(uint8_t buf[RQ_PREAMBLE_SIZE], const uint8_t *key)
{
    struct hmac_sha256_ctx ctx;
    hmac_sha256_set_key(&ctx, RQ_KEY_SIZE, key);
    hmac_sha256_update(&ctx, RQ_PREAMBLE_SIZE - RQ_PREAMBLE_MAC, buf);
    hmac_sha256_digest(&ctx, RQ_PREAMBLE_MAC,
                       buf + RQ_PREAMBLE_SIZE - RQ_PREAMBLE_MAC);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static struct rq_keys keys;
    static const uint8_t *key;
    uint8_t ch[RQ_CHALLENGE_SIZE] = {0};
    uint8_t again[RQ_CHALLENGE_SIZE];
    uint8_t nonce[RQ_NONCE_SIZE];
    uint8_t buf[RQ_PREAMBLE_SIZE] = {0};
    struct rq_preamble p;
    struct rq_preamble q;
    char why[128];
    int rv;

    if (key == NULL) {
        rq_keys_derive(&keys, SECRET, sizeof SECRET - 1);
        key = rq_keys_get(&keys, RQ_KEY_RAFT);
    }
    struct fuzz_in in = {data, size};
    for (size_t i = 0; i < sizeof ch; i++) {
        ch[i] = fuzz_u8(&in);
    }
    for (size_t i = 0; i < sizeof buf; i++) {
        buf[i] = fuzz_u8(&in);
    }

    /* 1. The challenge. */
    rv = rq_challenge_decode(ch, nonce, why, sizeof why);
    FUZZ_CHECK(rv == 0 || rv == RQ_MALFORMED);
    if (rv == 0) {
        rq_challenge_encode(nonce, again);
        FUZZ_CHECK(memcmp(ch, again, sizeof ch) == 0);
    } else {
        memset(nonce, 0x5a, sizeof nonce);
    }

    /* 2. As received. */
    rv = rq_preamble_decode(buf, key, nonce, &p, why, sizeof why);
    FUZZ_CHECK(rv == 0 || rv == RQ_MALFORMED || rv == RQ_AUTH ||
               rv == RQ_REPLAYED);
    check_reencodes(buf, key, nonce);

    /* 3. With a valid MAC: at most a replay, never an authentication
     * failure; then answering our nonce, not even that. */
    remac(buf, key);
    rv = rq_preamble_decode(buf, key, nonce, &p, why, sizeof why);
    FUZZ_CHECK(rv == 0 || rv == RQ_MALFORMED || rv == RQ_REPLAYED);
    FUZZ_CHECK((rv == RQ_REPLAYED) ==
               (rv != RQ_MALFORMED &&
                memcmp(buf + AT_CHALLENGE, nonce, RQ_NONCE_SIZE) != 0));
    check_reencodes(buf, key, nonce);
    memcpy(buf + AT_CHALLENGE, nonce, RQ_NONCE_SIZE);
    remac(buf, key);
    rv = rq_preamble_decode(buf, key, nonce, &p, why, sizeof why);
    FUZZ_CHECK(rv == 0 || rv == RQ_MALFORMED);
    check_reencodes(buf, key, nonce);

    /* 4. Fields from the rest of the input, answering the nonce. */
    memset(&p, 0, sizeof p);
    p.version = (uint16_t)(fuzz_u8(&in) | fuzz_u8(&in) << 8);
    p.kind = (uint16_t)(fuzz_u8(&in) | fuzz_u8(&in) << 8);
    p.cluster_id = fuzz_u64(&in);
    p.group_id = fuzz_u64(&in);
    p.sender_id = fuzz_u64(&in);
    memcpy(p.challenge, nonce, RQ_NONCE_SIZE);
    char *addr = fuzz_str(&in);
    snprintf(p.address, sizeof p.address, "%s", addr);
    free(addr);
    if (rq_preamble_encode(&p, key, buf) == 0) {
        rv = rq_preamble_decode(buf, key, nonce, &q, why, sizeof why);
        if (rv == 0) {
            FUZZ_CHECK(q.version == p.version && q.kind == p.kind &&
                       q.cluster_id == p.cluster_id &&
                       q.group_id == p.group_id && q.sender_id == p.sender_id &&
                       memcmp(q.challenge, nonce, RQ_NONCE_SIZE) == 0 &&
                       strcmp(q.address, p.address) == 0);
            /* Another connection's challenge: a replay, whichever bit. */
            uint8_t other[RQ_NONCE_SIZE];
            memcpy(other, nonce, sizeof other);
            other[(p.sender_id >> 3) % RQ_NONCE_SIZE] ^=
                (uint8_t)(1u << (p.sender_id & 7));
            rv = rq_preamble_decode(buf, key, other, &q, why, sizeof why);
            FUZZ_CHECK(rv == RQ_REPLAYED);
        } else {
            /* Only the fields the encoder does not check may be refused. */
            FUZZ_CHECK(rv == RQ_MALFORMED);
            FUZZ_CHECK(p.version != RQ_PREAMBLE_VERSION ||
                       (p.kind != RQ_STREAM_RAFT && p.kind != RQ_STREAM_RPC));
        }
    }
    return 0;
}

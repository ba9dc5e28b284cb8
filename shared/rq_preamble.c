/*
 * Encoding and checking of the connection challenge and preamble (layouts
 * in rq_preamble.h). This file is pure: no I/O, no clock. The decoders
 * treat their input as hostile: every field is checked before it is trusted
 * and the MAC is compared in constant time.
 */
#include "rq_preamble.h"

#include <nettle/hmac.h>
#include <nettle/memops.h>
#include <nettle/sha2.h>
#include <stdbool.h>
#include <string.h>

#include "rq_err.h"
#include "rq_wire.h"

/* Byte offsets of the fields; RQ_PREAMBLE_SIZE is where the MAC ends. */
#define OFF_MAGIC 0
#define OFF_VERSION 4
#define OFF_KIND 6
#define OFF_CLUSTER 8
#define OFF_GROUP 16
#define OFF_SENDER 24
#define OFF_CHALLENGE 32
#define OFF_ADDRESS (OFF_CHALLENGE + RQ_NONCE_SIZE)
#define OFF_MAC (OFF_ADDRESS + RQ_PREAMBLE_ADDR)

/* And of the challenge's. */
#define CH_OFF_FLAGS 6
#define CH_OFF_NONCE 8

_Static_assert(OFF_MAC + RQ_PREAMBLE_MAC == RQ_PREAMBLE_SIZE,
               "preamble layout must add up to RQ_PREAMBLE_SIZE");
_Static_assert(CH_OFF_NONCE + RQ_NONCE_SIZE == RQ_CHALLENGE_SIZE,
               "challenge layout must add up to RQ_CHALLENGE_SIZE");
_Static_assert(SHA256_DIGEST_SIZE == RQ_PREAMBLE_MAC,
               "the MAC is one SHA-256 digest");

static void compute_mac(const uint8_t *msg, const uint8_t *key,
                        uint8_t mac[RQ_PREAMBLE_MAC])
{
    struct hmac_sha256_ctx ctx;
    hmac_sha256_set_key(&ctx, RQ_KEY_SIZE, key);
    hmac_sha256_update(&ctx, OFF_MAC, msg);
    hmac_sha256_digest(&ctx, RQ_PREAMBLE_MAC, mac);
    rq_keys_wipe(&ctx, sizeof ctx); /* It holds the key, padded. */
}

void rq_challenge_encode(const uint8_t nonce[RQ_NONCE_SIZE],
                         uint8_t out[RQ_CHALLENGE_SIZE])
{
    rq_wire_put_u32_at(out + OFF_MAGIC, RQ_CHALLENGE_MAGIC);
    rq_wire_put_u16_at(out + OFF_VERSION, RQ_PREAMBLE_VERSION);
    rq_wire_put_u16_at(out + CH_OFF_FLAGS, 0);
    memcpy(out + CH_OFF_NONCE, nonce, RQ_NONCE_SIZE);
}

int rq_challenge_decode(const uint8_t in[RQ_CHALLENGE_SIZE],
                        uint8_t nonce[RQ_NONCE_SIZE], char *why, size_t whyn)
{
    uint32_t magic = rq_wire_u32_at(in + OFF_MAGIC);
    uint16_t version = rq_wire_u16_at(in + OFF_VERSION);
    uint16_t flags = rq_wire_u16_at(in + CH_OFF_FLAGS);

    if (magic != RQ_CHALLENGE_MAGIC) {
        rq_why(why, whyn, "bad challenge magic 0x%08x", magic);
        return RQ_MALFORMED;
    }
    if (version != RQ_PREAMBLE_VERSION) {
        rq_why(why, whyn, "unsupported challenge version %u",
               (unsigned)version);
        return RQ_MALFORMED;
    }
    /* No flag is defined: one set means a peer that expects something of
     * us we do not do. */
    if (flags != 0) {
        rq_why(why, whyn, "unknown challenge flags 0x%04x", (unsigned)flags);
        return RQ_MALFORMED;
    }
    memcpy(nonce, in + CH_OFF_NONCE, RQ_NONCE_SIZE);
    return 0;
}

static bool kind_valid(uint16_t kind)
{
    return kind == RQ_STREAM_RAFT || kind == RQ_STREAM_RPC;
}

static bool printable(uint8_t c)
{
    return c >= 0x20 && c <= 0x7e;
}

int rq_preamble_encode(const struct rq_preamble *p, const uint8_t *key,
                       uint8_t out[RQ_PREAMBLE_SIZE])
{
    size_t n = strnlen(p->address, RQ_PREAMBLE_ADDR);
    if (n >= RQ_PREAMBLE_ADDR) {
        return RQ_INVALID;
    }
    for (size_t i = 0; i < n; i++) {
        if (!printable((uint8_t)p->address[i])) {
            return RQ_INVALID;
        }
    }

    memset(out, 0, RQ_PREAMBLE_SIZE);
    rq_wire_put_u32_at(out + OFF_MAGIC, RQ_PREAMBLE_MAGIC);
    rq_wire_put_u16_at(out + OFF_VERSION, p->version);
    rq_wire_put_u16_at(out + OFF_KIND, p->kind);
    rq_wire_put_u64_at(out + OFF_CLUSTER, p->cluster_id);
    rq_wire_put_u64_at(out + OFF_GROUP, p->group_id);
    rq_wire_put_u64_at(out + OFF_SENDER, p->sender_id);
    memcpy(out + OFF_CHALLENGE, p->challenge, RQ_NONCE_SIZE);
    memcpy(out + OFF_ADDRESS, p->address, n);
    compute_mac(out, key, out + OFF_MAC);
    return 0;
}

/* The address field must be printable ASCII, then at least one NUL, then
 * nothing but NULs, so two encodings of one address are byte-identical. */
static int check_address(const uint8_t *a, char *why, size_t whyn)
{
    size_t i = 0;
    while (i < RQ_PREAMBLE_ADDR && a[i] != 0) {
        if (!printable(a[i])) {
            rq_why(why, whyn, "address byte %zu is not printable (0x%02x)", i,
                   a[i]);
            return RQ_MALFORMED;
        }
        i++;
    }
    if (i == RQ_PREAMBLE_ADDR) {
        rq_why(why, whyn, "address is not NUL-terminated");
        return RQ_MALFORMED;
    }
    for (; i < RQ_PREAMBLE_ADDR; i++) {
        if (a[i] != 0) {
            rq_why(why, whyn, "address padding byte %zu is not NUL", i);
            return RQ_MALFORMED;
        }
    }
    return 0;
}

int rq_preamble_decode(const uint8_t in[RQ_PREAMBLE_SIZE], const uint8_t *key,
                       const uint8_t nonce[RQ_NONCE_SIZE],
                       struct rq_preamble *out, char *why, size_t whyn)
{
    uint8_t mac[RQ_PREAMBLE_MAC];
    uint32_t magic = rq_wire_u32_at(in + OFF_MAGIC);
    uint16_t version = rq_wire_u16_at(in + OFF_VERSION);
    uint16_t kind = rq_wire_u16_at(in + OFF_KIND);
    int rv;

    /* Magic and version come before the MAC so that a stranger speaking
     * another protocol, or a peer of another version, gets a precise reason
     * rather than "bad MAC". Neither check reveals anything about the key. */
    if (magic != RQ_PREAMBLE_MAGIC) {
        rq_why(why, whyn, "bad magic 0x%08x", magic);
        return RQ_MALFORMED;
    }
    if (version != RQ_PREAMBLE_VERSION) {
        rq_why(why, whyn, "unsupported version %u", (unsigned)version);
        return RQ_MALFORMED;
    }
    /* The MAC is checked over the bytes as sent, the challenge field
     * included; the field must then be our nonce. Accepting exactly when
     * both hold is accepting a MAC over our nonce, and checking in this
     * order tells a preamble made for another connection (a replay, since
     * only a holder of the key can make one) from a wrong key. The nonce is
     * public, so comparing it need not take constant time. */
    compute_mac(in, key, mac);
    if (!memeql_sec(mac, in + OFF_MAC, RQ_PREAMBLE_MAC)) {
        rq_why(why, whyn, "MAC mismatch (wrong cluster secret?)");
        return RQ_AUTH;
    }
    if (memcmp(in + OFF_CHALLENGE, nonce, RQ_NONCE_SIZE) != 0) {
        rq_why(why, whyn,
               "valid MAC for another connection's challenge (replayed)");
        return RQ_REPLAYED;
    }
    if (!kind_valid(kind)) {
        rq_why(why, whyn, "unknown stream kind %u", (unsigned)kind);
        return RQ_MALFORMED;
    }
    rv = check_address(in + OFF_ADDRESS, why, whyn);
    if (rv != 0) {
        return rv;
    }

    out->version = version;
    out->kind = kind;
    out->cluster_id = rq_wire_u64_at(in + OFF_CLUSTER);
    out->group_id = rq_wire_u64_at(in + OFF_GROUP);
    out->sender_id = rq_wire_u64_at(in + OFF_SENDER);
    memcpy(out->challenge, in + OFF_CHALLENGE, RQ_NONCE_SIZE);
    memcpy(out->address, in + OFF_ADDRESS, RQ_PREAMBLE_ADDR);
    return 0;
}

/*
 * Encoding and checking of the connection preamble (layout in
 * rq_preamble.h). This file is pure: no I/O, no clock. The decoder treats
 * its input as hostile: every field is checked before it is trusted and the
 * MAC is compared in constant time.
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
#define OFF_NONCE 32
#define OFF_ADDRESS 40
#define OFF_MAC (OFF_ADDRESS + RQ_PREAMBLE_ADDR)

_Static_assert(OFF_MAC + RQ_PREAMBLE_MAC == RQ_PREAMBLE_SIZE,
               "preamble layout must add up to RQ_PREAMBLE_SIZE");
_Static_assert(SHA256_DIGEST_SIZE == RQ_PREAMBLE_MAC,
               "the MAC is one SHA-256 digest");

static const char key_label[] = "raftq-cluster-key-v1";

void rq_cluster_key_derive(struct rq_cluster_key *k, const char *secret)
{
    struct sha256_ctx ctx;
    sha256_init(&ctx);
    sha256_update(&ctx, sizeof key_label - 1, (const uint8_t *)key_label);
    sha256_update(&ctx, strlen(secret), (const uint8_t *)secret);
    sha256_digest(&ctx, sizeof k->key, k->key);
}

static void compute_mac(const uint8_t *msg, const struct rq_cluster_key *k,
                        uint8_t mac[RQ_PREAMBLE_MAC])
{
    struct hmac_sha256_ctx ctx;
    hmac_sha256_set_key(&ctx, sizeof k->key, k->key);
    hmac_sha256_update(&ctx, OFF_MAC, msg);
    hmac_sha256_digest(&ctx, RQ_PREAMBLE_MAC, mac);
}

static bool kind_valid(uint16_t kind)
{
    return kind == RQ_STREAM_RAFT || kind == RQ_STREAM_RPC;
}

static bool printable(uint8_t c)
{
    return c >= 0x20 && c <= 0x7e;
}

int rq_preamble_encode(const struct rq_preamble *p,
                       const struct rq_cluster_key *k,
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
    rq_wire_put_u64_at(out + OFF_NONCE, p->nonce);
    memcpy(out + OFF_ADDRESS, p->address, n);
    compute_mac(out, k, out + OFF_MAC);
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

int rq_preamble_decode(const uint8_t in[RQ_PREAMBLE_SIZE],
                       const struct rq_cluster_key *k, struct rq_preamble *out,
                       char *why, size_t whyn)
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
    compute_mac(in, k, mac);
    if (!memeql_sec(mac, in + OFF_MAC, RQ_PREAMBLE_MAC)) {
        rq_why(why, whyn, "MAC mismatch (wrong cluster secret?)");
        return RQ_AUTH;
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
    out->nonce = rq_wire_u64_at(in + OFF_NONCE);
    memcpy(out->address, in + OFF_ADDRESS, RQ_PREAMBLE_ADDR);
    return 0;
}

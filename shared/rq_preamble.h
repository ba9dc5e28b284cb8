/*
 * The challenge and the preamble every raftq connection opens with.
 *
 * One TCP port per process carries every Raft group in it and the process's
 * RPC traffic. Before a byte of either flows, the two sides run a
 * challenge-response keyed by the Raft key of the cluster secret
 * (rq_keys_get(keys, RQ_KEY_RAFT)):
 *
 *     connector                               listener
 *         |  <------ challenge (40 bytes) ------  |  fresh random nonce
 *         |  ------- preamble (160 bytes) ----->  |  MAC over the nonce
 *         |  ------- Raft or RPC stream ------->  |  and every field
 *
 * The listener writes the challenge as soon as it accepts and then reads
 * exactly the preamble's bytes; the connector reads exactly the challenge's
 * bytes before it writes its preamble. Neither side sends anything else
 * until the preamble is checked, so neither read can take a byte of the
 * stream behind it. Layouts, little-endian:
 *
 *   Challenge, listener to connector:
 *     0   magic:u32 "RQCH" | version:u16 | flags:u16 (0)
 *     8   nonce:32 bytes, fresh for every connection
 *     40  (end)
 *
 *   Preamble, connector to listener:
 *     0   magic:u32 "RQMX" | version:u16 | kind:u16
 *     8   cluster_id:u64
 *     16  group_id:u64
 *     24  sender_id:u64
 *     32  challenge:32 bytes, the nonce of the challenge this answers
 *     64  address:64 bytes, printable ASCII, NUL-padded (at least one NUL)
 *     128 mac:32 bytes, HMAC-SHA256 over bytes 0..127 keyed by the Raft key
 *     160 (end)
 *
 * A valid MAC proves the connector holds the cluster secret now, for this
 * connection: a preamble recorded from another connection answers another
 * nonce and is refused (RQ_REPLAYED when its MAC is valid for the nonce it
 * names, so the refusal can be told from a wrong secret). The listener is
 * not authenticated to the connector, and nothing after the preamble is:
 * the stream is neither encrypted nor protected against a man in the
 * middle. That is TLS's job, configured separately.
 *
 * This module is pure: no I/O, no clock, no randomness (the caller draws
 * the nonce).
 */
#ifndef RQ_PREAMBLE_H
#define RQ_PREAMBLE_H

#include <stddef.h>
#include <stdint.h>

#include "rq_keys.h"

#define RQ_PREAMBLE_MAGIC 0x584d5152u  /* "RQMX" read as little-endian u32 */
#define RQ_CHALLENGE_MAGIC 0x48435152u /* "RQCH" read as little-endian u32 */
/* One version for both messages. 1 was a preamble without a challenge. */
#define RQ_PREAMBLE_VERSION 2
#define RQ_NONCE_SIZE 32
#define RQ_CHALLENGE_SIZE 40
#define RQ_PREAMBLE_ADDR 64
#define RQ_PREAMBLE_MAC 32
#define RQ_PREAMBLE_SIZE 160

enum rq_stream_kind {
    RQ_STREAM_RAFT = 1, /* group_id names a Raft group; raft_uv owns it. */
    RQ_STREAM_RPC = 2,  /* group_id names an RPC service (see rq_rpc.h). */
};

struct rq_preamble {
    uint16_t version;
    uint16_t kind;
    uint64_t cluster_id;
    uint64_t group_id;
    uint64_t sender_id;
    uint8_t challenge[RQ_NONCE_SIZE]; /* The nonce answered. */
    char address[RQ_PREAMBLE_ADDR];   /* NUL-terminated "host:port". */
};

/* Writes the challenge carrying @nonce. */
void rq_challenge_encode(const uint8_t nonce[RQ_NONCE_SIZE],
                         uint8_t out[RQ_CHALLENGE_SIZE]);

/*
 * Parses a challenge into @nonce. Returns 0 or RQ_MALFORMED (bad magic,
 * version or flags) with a reason in @why fit for a log line.
 */
int rq_challenge_decode(const uint8_t in[RQ_CHALLENGE_SIZE],
                        uint8_t nonce[RQ_NONCE_SIZE], char *why, size_t whyn);

/*
 * Writes the preamble answering @p->challenge with its MAC keyed by @key
 * (RQ_KEY_SIZE bytes, borrowed). RQ_INVALID if the address does not fit
 * (63 characters at most) or has non-printable bytes.
 */
int rq_preamble_encode(const struct rq_preamble *p, const uint8_t *key,
                       uint8_t out[RQ_PREAMBLE_SIZE]);

/*
 * Parses and verifies @in as the answer to the challenge that carried
 * @nonce. Returns 0, RQ_MALFORMED (bad magic, version, kind or address),
 * RQ_AUTH (the MAC is wrong: another secret, or forged bytes; compared in
 * constant time) or RQ_REPLAYED (a valid preamble, but made for another
 * challenge: recorded from another connection), with a reason in @why fit
 * for a log line. Cluster id and group are the caller's to check.
 */
int rq_preamble_decode(const uint8_t in[RQ_PREAMBLE_SIZE], const uint8_t *key,
                       const uint8_t nonce[RQ_NONCE_SIZE],
                       struct rq_preamble *out, char *why, size_t whyn);

#endif /* RQ_PREAMBLE_H */

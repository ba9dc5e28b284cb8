/*
 * The preamble every raftq connection opens with.
 *
 * One TCP port per process carries every Raft group in it and the process's
 * RPC traffic. The connecting side writes a fixed-size preamble first; the
 * listener reads exactly that many bytes, checks them, and hands the rest of
 * the stream to the group (or RPC service) it names. Layout, little-endian:
 *
 *     0   magic:u32 "RQMX" | version:u16 | kind:u16
 *     8   cluster_id:u64
 *     16  group_id:u64
 *     24  sender_id:u64
 *     32  nonce:u64
 *     40  address:64 bytes, printable ASCII, NUL-padded (at least one NUL)
 *     104 mac:32 bytes, HMAC-SHA256 over bytes 0..103 keyed by the cluster key
 *     136 (end)
 *
 * The MAC proves the sender knows the cluster secret; it does not encrypt
 * the stream nor stop a replay by someone who can read the network.
 */
#ifndef RQ_PREAMBLE_H
#define RQ_PREAMBLE_H

#include <stddef.h>
#include <stdint.h>

#define RQ_PREAMBLE_MAGIC 0x584d5152u /* "RQMX" read as little-endian u32 */
#define RQ_PREAMBLE_VERSION 1
#define RQ_PREAMBLE_ADDR 64
#define RQ_PREAMBLE_MAC 32
#define RQ_PREAMBLE_SIZE 136

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
    uint64_t nonce;
    char address[RQ_PREAMBLE_ADDR]; /* NUL-terminated "host:port". */
};

/* The HMAC key, derived once from the cluster secret text. */
struct rq_cluster_key {
    uint8_t key[32];
};

/* key = SHA-256("raftq-cluster-key-v1" || secret). */
void rq_cluster_key_derive(struct rq_cluster_key *k, const char *secret);

/*
 * Writes the preamble with its MAC. RQ_INVALID if the address does not fit
 * (63 characters at most) or has non-printable bytes.
 */
int rq_preamble_encode(const struct rq_preamble *p,
                       const struct rq_cluster_key *k,
                       uint8_t out[RQ_PREAMBLE_SIZE]);

/*
 * Parses and verifies @in. Returns 0, RQ_MALFORMED (bad magic, version,
 * kind or address) or RQ_AUTH (MAC mismatch, compared in constant time), with
 * a reason in @why fit for a log line. Cluster id and group are the caller's
 * to check.
 */
int rq_preamble_decode(const uint8_t in[RQ_PREAMBLE_SIZE],
                       const struct rq_cluster_key *k, struct rq_preamble *out,
                       char *why, size_t whyn);

#endif /* RQ_PREAMBLE_H */

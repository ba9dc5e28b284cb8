/*
 * The bodies of the broker-to-broker RPC methods (replica.h names the
 * methods and says what they are for): their encoding and decoding,
 * pure, so that what a peer sends is parsed in one place that tests and
 * fuzzing reach without a network. Little-endian:
 *
 *     FETCH request:    group_id:u64 | offset:u64 | max_bytes:u32 | pad:u32
 *     FETCH reply:      whole batches (plog_append_batches checks them)
 *     MEMBERS request:  group_id:u64
 *     MEMBERS reply:    JSON {"conf_index": N, "servers": [{"id",
 *                       "raft_addr", "http_addr" (null if unknown),
 *                       "voter"}]}
 *     COMMITS request:  n:u32 | n x group_id:u64
 *     COMMITS reply:    n:u32 | n x (group_id:u64 | commit:u64), commit 0
 *                       where the answering broker does not lead the group
 */
#ifndef BRPC_H
#define BRPC_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "replica_desc.h"

#define BRPC_FETCH_REQUEST 24
#define BRPC_MEMBERS_REQUEST 8

struct brpc_fetch {
    uint64_t group_id;
    uint64_t offset;
    uint32_t max_bytes; /* 0 or over the server's limit: its limit. */
};

void brpc_fetch_encode(const struct brpc_fetch *f,
                       uint8_t out[BRPC_FETCH_REQUEST]);
/* RQ_MALFORMED unless @len is exactly BRPC_FETCH_REQUEST. */
int brpc_fetch_decode(const uint8_t *p, size_t len, struct brpc_fetch *out);

void brpc_members_encode(uint64_t group_id, uint8_t out[BRPC_MEMBERS_REQUEST]);
/* RQ_MALFORMED unless @len is exactly BRPC_MEMBERS_REQUEST. */
int brpc_members_decode(const uint8_t *p, size_t len, uint64_t *group_id);

struct brpc_members {
    uint64_t conf_index;
    bool lists_self; /* A server's id is the @self_id given to the parse. */
};

/*
 * Reads a MEMBERS reply of @len bytes (borrowed). Calls @member once for
 * each server that is a valid member (replica_member_parse; others are
 * skipped), in order. 0, or RQ_MALFORMED when the reply is not an object
 * with an integer "conf_index" and a "servers" list (then @member was
 * not called).
 */
int brpc_members_parse(
    const uint8_t *body, size_t len, uint64_t self_id, struct brpc_members *out,
    void (*member)(void *data, const struct replica_member *m), void *data);

/* At most this many groups in one COMMITS request. */
#define BRPC_COMMITS_MAX 4096

/* A group and its leader's commit index (0: not led there). */
struct brpc_commit {
    uint64_t group_id;
    uint64_t commit;
};

/* The bytes of a COMMITS request of @n groups, and of a reply of @n. */
size_t brpc_commits_request_size(uint32_t n);
size_t brpc_commits_reply_size(uint32_t n);
void brpc_commits_request_encode(const uint64_t *gids, uint32_t n,
                                 uint8_t *out);
/* The group ids of a request into @out, which has room for what @len can
 * hold ((len - 4) / 8; a reply's, (len - 4) / 16): RQ_MALFORMED unless
 * @len is exactly what its count says, before anything is written. */
int brpc_commits_request_decode(const uint8_t *p, size_t len, uint64_t *out,
                                uint32_t *n);
void brpc_commits_reply_encode(const struct brpc_commit *c, uint32_t n,
                               uint8_t *out);
int brpc_commits_reply_decode(const uint8_t *p, size_t len,
                              struct brpc_commit *out, uint32_t *n);

#endif /* BRPC_H */

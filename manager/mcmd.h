/*
 * The typed commands of the manager state machine and their binary codec.
 *
 * Clients never send SQL: the leader turns each admitted request into one
 * of these commands, encodes it as a Raft entry payload, and every manager
 * decodes and applies it to its SQLite store (mstore.h). Everything an
 * apply needs is in the command (times, placements, expected values), so
 * applying is deterministic on every manager; ids are allocated by the
 * store from counters inside the state.
 *
 * Encoding (little-endian, shared/rq_wire.h): u8 version (1), u8 type,
 * then the type's fields in the order declared below; strings are u32
 * length + bytes (no NUL), lists are u32 count + items (mcmd.c draws the
 * layout of each type). Decoding is total:
 * any byte string either decodes to a valid command or fails with
 * RQ_MALFORMED and a reason, never reading out of bounds.
 */
#ifndef MCMD_H
#define MCMD_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "rq_names.h"
#include "rq_wire.h"

#define MCMD_VERSION 1
#define MCMD_RF 3                              /* replicas per partition */
#define MCMD_MAX_PARTITIONS 1024               /* per topic */
#define MCMD_MAX_OFFSETS 1024                  /* per offset commit */
#define MCMD_NAME_MAX RQ_NAMES_TOPIC_MAX       /* topic names (rq_names.h) */
#define MCMD_ADDR_MAX 255                      /* HOST:PORT */
#define MCMD_TOKEN_NAME_MAX RQ_NAMES_TOKEN_MAX /* token names (rq_names.h) */
#define MCMD_TOKEN_HASH 32                     /* SHA-256 of a token */
/* A token's grants as canonical text (grants.h: GRANTS_TEXT_MAX). */
#define MCMD_GRANTS_TEXT_MAX 2224
#define MCMD_GROUP_MAX RQ_NAMES_TOPIC_MAX   /* group names: as topic names */
#define MCMD_MEMBER_MAX RQ_NAMES_MEMBER_MAX /* member ids */
#define MCMD_MAX_MEMBERS 1024 /* members a group, and a leave's list */
/* A member's session_timeout_ms (API.md section 2b). */
#define MCMD_SESSION_MIN_MS 1000
#define MCMD_SESSION_MAX_MS 300000

enum mcmd_type {
    MCMD_MANAGER_ADDR =
        1, /* a manager's addresses (leaders publish their own) */
    MCMD_BROKER_REGISTER, /* a broker joins or re-registers */
    MCMD_BROKER_STATE,    /* liveness or admin state change */
    MCMD_TOPIC_CREATE,
    MCMD_TOPIC_DELETE,
    MCMD_PRODUCER_REGISTER,
    MCMD_CONSUMER_REGISTER,
    MCMD_OFFSET_COMMIT,      /* consumer offsets, optionally compare-and-set */
    MCMD_PARTITION_REPLICAS, /* a partition's members after a membership change
                              */
    MCMD_TOKEN_CREATE,       /* a public API token: its hash, never itself */
    MCMD_TOKEN_REVOKE,
    /* 12 is taken: a batch entry has that type byte (mbatch.h). */
    MCMD_GROUP_JOIN = 13, /* a member joins a consumer group (made if new) */
    MCMD_GROUP_LEAVE,     /* members leave, or their sessions expired */
    MCMD_GROUP_COMMIT,    /* a member's offsets, fenced by its generation */
    MCMD_GROUP_OFFSETS,   /* an operator sets a group's offsets */
    MCMD_GROUP_DELETE,
    MCMD_CLUSTER_UID,    /* the cluster's identity, drawn once (first wins) */
    MCMD_GROUP_FOREIGN,  /* a hosted group this store never placed */
    MCMD_BROKER_REISSUE, /* a removed broker's id, registered again empty */
};

enum mbroker_state {
    MBROKER_ALIVE = 1,
    MBROKER_SUSPECT, /* heartbeats late; still a member everywhere */
    MBROKER_DEAD, /* dead past the repair time: its replicas are being replaced
                   */
    MBROKER_DRAINING, /* admin drain: replicas move off, takes no new ones */
    MBROKER_REMOVED,  /* gone; the id comes back only for a broker that
                         starts empty (MCMD_BROKER_REISSUE) */
    MBROKER_REMOVING, /* admin remove: drains like DRAINING, then REMOVED
                         once it holds no replicas */
};

struct mcmd_offset {
    uint32_t partition_id;
    uint64_t offset;   /* the next offset to read */
    uint64_t expected; /* compare-and-set: the offset the proposer read, or
                          MCMD_ANY */
};

/* The type byte of a batch entry (mbatch.h's MBATCH_TYPE), which no
 * command takes. */
#define MCMD_TYPE_BATCH 12

#define MCMD_ANY UINT64_MAX
#define MCMD_NO_PARTITION UINT32_MAX

struct mcmd {
    enum mcmd_type type;
    uint64_t now_ms; /* the leader's wall clock when it proposed */
    union {
        struct {
            uint32_t id;
            char raft_addr[MCMD_ADDR_MAX + 1];
            char http_addr[MCMD_ADDR_MAX + 1];
        } manager;
        struct {
            uint32_t id;
            char raft_addr[MCMD_ADDR_MAX + 1];
            char http_addr[MCMD_ADDR_MAX + 1];
        } broker_register;
        struct {
            uint32_t id;
            enum mbroker_state state;
        } broker_state;
        struct {
            char name[MCMD_NAME_MAX + 1];
            uint32_t n_partitions;
            uint64_t retention_bytes; /* 0: the default */
            uint64_t retention_ms;    /* 0: the default */
            /* replicas[p][0..2]: broker ids; replicas[p][0] is the preferred
             * leader. */
            uint32_t (
                *replicas)[MCMD_RF]; /* malloc'd by decode; mcmd_clear frees */
        } topic_create;
        struct {
            char name[MCMD_NAME_MAX + 1];
        } topic_delete;
        struct {
            char topic[MCMD_NAME_MAX + 1];
            uint32_t partition_id; /* MCMD_NO_PARTITION: not bound */
        } client_register;         /* producers and consumers */
        struct {
            uint64_t consumer_id;
            uint32_t cursor; /* the consumer's round-robin position after this
                                step */
            uint32_t n;
            struct mcmd_offset
                *offsets; /* malloc'd by decode; mcmd_clear frees */
        } offset_commit;
        struct {
            char topic[MCMD_NAME_MAX + 1];
            uint32_t partition_id;
            uint64_t expected_epoch; /* the replica-set epoch the plan was made
                                        from */
            uint32_t replicas[MCMD_RF];
        } partition_replicas;
        struct {
            char name[MCMD_TOKEN_NAME_MAX + 1];
            uint8_t hash[MCMD_TOKEN_HASH]; /* SHA-256 of the token text */
            /* Canonical grants text (grants_format): checked by the codec. */
            char grants[MCMD_GRANTS_TEXT_MAX + 1];
        } token_create;
        struct {
            uint64_t id;
        } token_revoke;
        struct {
            char group[MCMD_GROUP_MAX + 1];
            char topic[MCMD_NAME_MAX + 1];
            char member[MCMD_MEMBER_MAX + 1]; /* drawn by the leader */
            uint32_t session_ms;
        } group_join;
        struct {
            char group[MCMD_GROUP_MAX + 1];
            uint32_t n;
            /* malloc'd by decode; mcmd_clear frees */
            char (*members)[MCMD_MEMBER_MAX + 1];
        } group_leave;
        /* GROUP_COMMIT and GROUP_OFFSETS (which has no member and no
         * generation); each offset's expected is MCMD_ANY. */
        struct {
            char group[MCMD_GROUP_MAX + 1];
            char member[MCMD_MEMBER_MAX + 1];
            uint64_t generation;
            uint32_t n;
            struct mcmd_offset
                *offsets; /* malloc'd by decode; mcmd_clear frees */
        } group_offsets;
        struct {
            char group[MCMD_GROUP_MAX + 1];
        } group_delete;
        struct {
            uint64_t uid; /* non-zero */
        } cluster_uid;
        struct {
            uint64_t group_id; /* non-zero */
            uint32_t broker;   /* who reported it (non-zero) */
        } group_foreign;
    } u;
};

/*
 * Encodes @c into @out (rq_buf_init'd by the caller). Returns 0, or
 * RQ_INVALID when a field is out of range (names, counts), RQ_NOMEM.
 */
int mcmd_encode(const struct mcmd *c, struct rq_buf *out);

/*
 * Decodes @len bytes at @buf into @c (its lists malloc'd; release with
 * mcmd_clear). Returns 0, or RQ_MALFORMED with @why, or RQ_NOMEM; on
 * failure @c is left zeroed with nothing to release. Addresses must be
 * 1-MCMD_ADDR_MAX bytes and server ids non-zero. Whatever decodes
 * re-encodes to the same bytes.
 */
int mcmd_decode(const uint8_t *buf, size_t len, struct mcmd *c, char *why,
                size_t whyn);

/* Frees the lists a decode (or the caller) attached to @c. */
void mcmd_clear(struct mcmd *c);

const char *mcmd_type_name(enum mcmd_type t);
const char *mbroker_state_name(enum mbroker_state s);

#endif /* MCMD_H */

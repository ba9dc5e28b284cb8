/*
 * The manager's metadata in SQLite, changed only by applying committed
 * commands (mcmd.h).
 *
 * One database file per manager (DATA/meta.db) in WAL mode. Each apply
 * runs inside a transaction that stays open across the entries libraft
 * applies in one burst and is committed by mstore_flush (the manager calls
 * it once per loop turn, before answering anyone), so a burst of entries
 * costs one commit. The index of the last applied entry is stored in the
 * same transaction, so after a crash the entries replayed from the Raft log
 * that the file already holds are skipped (mstore_apply returns without
 * change for index <= mstore_applied_index). With it goes the crc32 of that
 * entry (meta.applied_crc): libraft 0.15 could let a manager apply entries
 * that its group later replaced (DESIGN.md section 3), and the replayed
 * entry at the applied index then differs from the one the file applied;
 * 0.22.1 no longer does, and the check stays against a store that does not
 * match its Raft log for any other reason.
 *
 * Snapshots are the serialized database (sqlite3_serialize); restoring
 * replaces the whole content (sqlite3_deserialize into a scratch handle,
 * then the backup API into the file), so a snapshot is an exact copy.
 * Metadata is small (a topic is a few hundred bytes), so this is cheap.
 *
 * Schema versions. The database records the version of its schema
 * (MSTORE_SCHEMA_VERSION, in PRAGMA user_version). Opening a database of
 * an earlier version, or restoring a snapshot of one, migrates it first:
 * an ordered list of steps in mstore.c, all applied in one transaction
 * that is committed only if the result has exactly this version's schema
 * and valid content. A database or snapshot of a later version is
 * refused, naming both versions. Databases of versions 1 and 2 were
 * written before the version was recorded; they are recognized by their
 * schema.
 *
 * Schema (every table, and nothing else, is in a snapshot):
 *   meta(key TEXT PRIMARY KEY, value INTEGER)   -- applied_index,
 *     applied_crc, next ids, cluster_uid (since version 4: the
 *     cluster's identity, 0 until the first leader commits one)
 *   managers(id, raft_addr, http_addr)
 *   brokers(id, raft_addr, http_addr, state, registered_ms, state_ms)
 *     -- registered_ms: the last registration; state_ms: the last change
 *   topics(name, created_ms, retention_bytes, retention_ms, n_partitions)
 *   partitions(topic, partition_id, group_id UNIQUE, epoch, r0, r1, r2)
 *   producers(id, topic, partition_id NULL, rr_cursor)
 *   consumers(id, topic, partition_id NULL, rr_cursor)
 *   offsets(consumer_id, partition_id, next_offset)
 *   tokens(id, name, lookup, hash, grants, created_ms) -- public API
 *     tokens (since version 2): the SHA-256 of each (never the token),
 *     its first 8 bytes as an indexed integer (lookup) to find the row,
 *     canonical grants text
 *   cgroups(name, topic, generation, created_ms) -- consumer groups
 *     (since version 3); a group is made by its first join and goes with
 *     its topic or by GROUP_DELETE
 *   cgroup_members(grp, member_id, session_ms, joined_ms)
 *   cgroup_owners(grp, partition_id, member_id) -- the assignment of the
 *     current generation (cgroup_plan_assign); no row: no owner
 *   cgroup_offsets(grp, partition_id, next_offset) -- committed offsets
 *   foreign_groups(group_id, broker, seen_ms) -- since version 4: groups a
 *     broker hosted that this store never placed (its data restored from
 *     an older copy); next_group_id is kept above every one
 * Ids (producers, consumers, group ids) come from counters in meta and are
 * never reused, even after a topic is deleted. Producers, consumers and
 * tokens have a counter each; all start at 1. A new partition's epoch is 0.
 *
 * Apply results (the uint64 that reaches the proposer through rq_fsm):
 * MSTORE_OK(v) for success with a value (a new id, a topic's first group
 * id, or 0), MSTORE_ERR(code) for a refusal decided by the state (code an
 * RQ_* error: RQ_EXISTS for a topic that exists, RQ_NOTFOUND for an unknown
 * topic/consumer/broker, RQ_INVALID for a partition out of range or a
 * compare-and-set that lost). A refusal changes nothing. Consumer
 * groups: GROUP_JOIN and GROUP_LEAVE answer MSTORE_OK(the new generation);
 * JOIN is RQ_NOTFOUND for an unknown topic, RQ_INVALID when the group
 * consumes another topic, RQ_EXISTS for a member id already in it and
 * RQ_TOOBIG past MCMD_MAX_MEMBERS; LEAVE is RQ_NOTFOUND when none of its
 * members is in the group. GROUP_COMMIT is CGROUP_PLAN_FENCED from an
 * unknown member, another generation or a partition the member does not
 * own, and never moves an offset back. GROUP_OFFSETS and GROUP_DELETE
 * are RQ_EXISTS while the group has members; GROUP_OFFSETS is RQ_INVALID
 * for a partition out of range. Every group command on an unknown group
 * (but JOIN) is RQ_NOTFOUND. Beyond those:
 * TOPIC_CREATE and PARTITION_REPLICAS with a replica set that is not
 * MCMD_RF distinct non-zero ids are RQ_INVALID; BROKER_REGISTER answers
 * MSTORE_OK(broker id), leaves a DRAINING or REMOVING broker so, and is
 * RQ_INVALID for a REMOVED one, as is any BROKER_STATE that would leave
 * REMOVED, or go from DRAINING or REMOVING to ALIVE, SUSPECT or DEAD (the
 * admin states are left only for one another or REMOVED); a BROKER_STATE
 * to the current state changes nothing. TOKEN_CREATE answers MSTORE_OK(token
 * id), or RQ_EXISTS for a hash some token has; TOKEN_REVOKE deletes the
 * row (RQ_NOTFOUND for an unknown id), so the token is unknown from the
 * apply on.
 */
#ifndef MSTORE_H
#define MSTORE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "mcmd.h"

/* The store's own code (its number one rq_err.h keeps for it): the file
 * holds a history its group replaced (mstore_apply). */
enum mstore_err {
    MSTORE_DIVERGED = 1019,
};

#define MSTORE_ERR_BIT (UINT64_C(1) << 63)
#define MSTORE_OK(v) ((uint64_t)(v) & ~MSTORE_ERR_BIT)
#define MSTORE_ERR(code) (MSTORE_ERR_BIT | (uint64_t)(uint32_t)(code))
#define MSTORE_IS_ERR(r) (((r)&MSTORE_ERR_BIT) != 0)
#define MSTORE_ERR_CODE(r) ((int)(uint32_t)(r))

struct mstore;

/* The schema version this code reads and writes; see the top. Version 1
 * is the first release's, 2 added tokens, 3 consumer groups, 4 the
 * cluster uid. */
#define MSTORE_SCHEMA_VERSION 4

/* Opens (creating if needed) the database at @path, migrating one of an
 * earlier schema version. 0, or RQ_IO/RQ_NOMEM with @why (RQ_IO for a
 * database that is not a manager database this binary can use, among
 * them one of a later schema version; the file is then left unchanged). */
int mstore_open(const char *path, struct mstore **out, char *why, size_t whyn);
/* Flushes and closes; NULL is a no-op. */
void mstore_close(struct mstore *s);

/*
 * Applies the committed command at @index (encoded by mcmd_encode) and
 * sets *result. Undecodable payloads are logged and skipped (result
 * MSTORE_ERR(RQ_MALFORMED)), like every other deterministic refusal.
 * Returns 0, or RQ_IO/RQ_NOMEM when SQLite failed (nothing applied; the
 * caller retries the same entry). If SQLite rolled back the whole open
 * transaction (entries since the last flush lost), every later apply and
 * flush is RQ_IO until mstore_restore or a reopen: the manager must
 * restart, and the Raft log replays what the file lacks. MSTORE_DIVERGED, with
 * nothing changed, when the entry at the applied index is not the one the
 * file applied: the file holds a history its group replaced and must be
 * rebuilt from the group's snapshot and log.
 */
int mstore_apply(struct mstore *s, uint64_t index, const uint8_t *payload,
                 size_t len, uint64_t *result);

/*
 * A batch entry (mbatch.h) is applied command by command, each refused or
 * applied on its own as if it were an entry of its own; its *result is
 * MSTORE_OK(number of commands). Their results, in order, until the next
 * mstore_apply(): the count (0 unless the last entry applied was a batch),
 * its nonce in *@nonce, the results in *@results (borrowed).
 */
size_t mstore_batch_results(const struct mstore *s, uint64_t *nonce,
                            const uint64_t **results);
/* Commits the open transaction, if any. 0 or RQ_IO. */
int mstore_flush(struct mstore *s);
uint64_t mstore_applied_index(const struct mstore *s);

/* The whole database as one malloc'd buffer (*out, *len). 0, RQ_IO, RQ_NOMEM.
 */
int mstore_snapshot(struct mstore *s, uint8_t **out, size_t *len);
/* MSTORE_DIGEST_LEN bytes of SHA-256 over the store's content in a
 * canonical form (every table by name, its rows ordered by every column,
 * each value typed), into @out: two stores with the same rows have the
 * same digest whatever their page layout. Flushes first. 0, RQ_IO, RQ_NOMEM.
 */
#define MSTORE_DIGEST_LEN 32
int mstore_digest(struct mstore *s, uint8_t out[MSTORE_DIGEST_LEN]);
/* Replaces the whole database with a snapshot's bytes (borrowed). A
 * snapshot of an earlier schema version is migrated first. A snapshot that
 * is not a valid database of a schema version this binary knows (among
 * them one of a later version) is RQ_MALFORMED and changes nothing. */
int mstore_restore(struct mstore *s, const uint8_t *buf, size_t len, char *why,
                   size_t whyn);

/* Queries: read the applied state (including the open transaction). Each
 * returns 0, RQ_NOTFOUND, or RQ_IO/RQ_NOMEM. Lists are malloc'd arrays the
 * caller frees with free(). */

struct mstore_manager {
    uint32_t id;
    char raft_addr[MCMD_ADDR_MAX + 1];
    char http_addr[MCMD_ADDR_MAX + 1];
};

struct mstore_broker {
    uint32_t id;
    char raft_addr[MCMD_ADDR_MAX + 1];
    char http_addr[MCMD_ADDR_MAX + 1];
    enum mbroker_state state;
    uint64_t registered_ms;
    uint64_t state_ms;
    uint32_t n_replicas;  /* partitions placed on it */
    uint32_t n_preferred; /* partitions whose preferred leader it is */
};

struct mstore_partition {
    char topic[MCMD_NAME_MAX + 1];
    uint32_t partition_id;
    uint64_t group_id;
    uint64_t epoch; /* bumped by every MCMD_PARTITION_REPLICAS */
    uint32_t replicas[MCMD_RF];
};

struct mstore_topic {
    char name[MCMD_NAME_MAX + 1];
    uint64_t created_ms;
    uint64_t retention_bytes;
    uint64_t retention_ms;
    uint32_t n_partitions;
};

struct mstore_client {
    uint64_t id;
    char topic[MCMD_NAME_MAX + 1];
    uint32_t partition_id; /* MCMD_NO_PARTITION when not bound */
    uint32_t rr_cursor;
};

struct mstore_offset {
    uint32_t partition_id;
    uint64_t next_offset; /* 0 when never committed */
};

int mstore_managers(const struct mstore *s, struct mstore_manager **out,
                    size_t *n);
int mstore_manager(const struct mstore *s, uint32_t id,
                   struct mstore_manager *out);
int mstore_brokers(const struct mstore *s, struct mstore_broker **out,
                   size_t *n);
int mstore_broker(const struct mstore *s, uint32_t id,
                  struct mstore_broker *out);
/* The broker numbered @id among the @n of @list, sorted by id as
 * mstore_brokers() returns them, or NULL. */
const struct mstore_broker *mstore_broker_in(const struct mstore_broker *list,
                                             size_t n, uint32_t id);
/* Topic names in name order. */
int mstore_topics(const struct mstore *s, struct mstore_topic **out, size_t *n);
/* The topic named @name among the @n of @list, sorted by name as
 * mstore_topics() returns them, or NULL. */
const struct mstore_topic *mstore_topic_in(const struct mstore_topic *list,
                                           size_t n, const char *name);
int mstore_topic(const struct mstore *s, const char *name,
                 struct mstore_topic *out);
/* A topic's partitions in partition order (RQ_NOTFOUND for an unknown topic).
 */
int mstore_partitions(const struct mstore *s, const char *topic,
                      struct mstore_partition **out, size_t *n);
/* Every partition sorted by group id, borrowed: read again only when the
 * layout generation has moved (mstore_layout_generation), and valid until
 * the next entry applied or snapshot restored, so that the leader's
 * rounds over every partition each second do not read the table each
 * time. */
int mstore_partitions_view(const struct mstore *s,
                           const struct mstore_partition **out, size_t *n);
/* The partition of @group_id among the @n of @parts, sorted by group id
 * as mstore_partitions_view() gives them, or NULL. */
const struct mstore_partition *mstore_partition_in(
    const struct mstore_partition *parts, size_t n, uint64_t group_id);
/* Every partition of every topic (for reconciliation and placement). */
int mstore_all_partitions(const struct mstore *s, struct mstore_partition **out,
                          size_t *n);
int mstore_partition_by_group(const struct mstore *s, uint64_t group_id,
                              struct mstore_partition *out);
/*
 * The cluster's identity (MCMD_CLUSTER_UID): drawn by the first leader,
 * committed once and never changed; 0 until then. Brokers bind themselves
 * to it (DESIGN.md section 17).
 */
uint64_t mstore_cluster_uid(const struct mstore *s);
/* The group id the next partition will get: every group at or above it
 * was never placed by this store. 0 or RQ_IO. */
int mstore_next_group_id(const struct mstore *s, uint64_t *out);
/* Whether @group_id was recorded as hosted by a broker and never placed
 * by this store (MCMD_GROUP_FOREIGN); false also on a read failure. */
bool mstore_group_foreign(const struct mstore *s, uint64_t group_id);
/*
 * A number that changes whenever applying an entry (or restoring a
 * snapshot) may have changed topics, partitions or brokers, so that a
 * reader may keep what it read of them while the number holds.
 * Registrations, offsets and tokens leave it.
 */
uint64_t mstore_layout_generation(const struct mstore *s);

int mstore_producer(const struct mstore *s, uint64_t id,
                    struct mstore_client *out);
int mstore_consumer(const struct mstore *s, uint64_t id,
                    struct mstore_client *out);
/* A consumer's committed offsets for every partition of its topic, in
 * partition order (partitions never committed have next_offset 0). */
int mstore_offsets(const struct mstore *s, uint64_t consumer_id,
                   struct mstore_offset **out, size_t *n);

/* A consumer's committed offset on one partition it reads. */
struct mstore_position {
    uint64_t consumer_id;
    char topic[MCMD_NAME_MAX + 1];
    uint32_t partition_id;
    uint64_t group_id;
    uint64_t next_offset; /* 0 when never committed */
};

/*
 * Every consumer's position on each partition it reads (the one it is
 * bound to, else every partition of its topic), newest consumer first and
 * in partition order, at most @max of them (for metrics); *@total says how
 * many there are in all.
 */
int mstore_positions(const struct mstore *s, size_t max,
                     struct mstore_position **out, size_t *n, size_t *total);

/* A consumer group (API.md section 2b). */
struct mstore_cgroup {
    char name[MCMD_GROUP_MAX + 1];
    char topic[MCMD_NAME_MAX + 1];
    uint64_t generation; /* moved by every change of membership */
    uint64_t created_ms;
    uint32_t n_members;
};

struct mstore_cgroup_member {
    char member_id[MCMD_MEMBER_MAX + 1];
    uint64_t session_ms;
    uint64_t joined_ms;
};

struct mstore_cgroup_owner {
    uint32_t partition_id;
    char member_id[MCMD_MEMBER_MAX + 1];
};

int mstore_cgroup(const struct mstore *s, const char *name,
                  struct mstore_cgroup *out);
/* Every group, by name. */
int mstore_cgroups(const struct mstore *s, struct mstore_cgroup **out,
                   size_t *n);
/* A group's members by member id (empty for an unknown group). */
int mstore_cgroup_members(const struct mstore *s, const char *name,
                          struct mstore_cgroup_member **out, size_t *n);
/* A group's owned partitions, in partition order. */
int mstore_cgroup_owners(const struct mstore *s, const char *name,
                         struct mstore_cgroup_owner **out, size_t *n);
/* A group's committed offsets, in partition order: partitions never
 * committed have no entry. */
int mstore_cgroup_offsets(const struct mstore *s, const char *name,
                          struct mstore_offset **out, size_t *n);

/* A public API token as the store keeps it: never the token nor its hash
 * in answers. */
struct mstore_token {
    uint64_t id;
    char name[MCMD_TOKEN_NAME_MAX + 1];
    char grants[MCMD_GRANTS_TEXT_MAX + 1]; /* canonical (grants.h) */
    uint64_t created_ms;
};

/* Every token, by id. */
int mstore_tokens(const struct mstore *s, struct mstore_token **out, size_t *n);

/*
 * The token whose SHA-256 is @hash: 0, or RQ_NOTFOUND (never created, or
 * revoked). The hash is compared in constant time (nettle memeql_sec).
 */
int mstore_token_find(const struct mstore *s,
                      const uint8_t hash[MCMD_TOKEN_HASH],
                      struct mstore_token *out);

#endif /* MSTORE_H */

/*
 * The manager's metadata store on SQLite (see mstore.h): the schema, the
 * apply of each command type, snapshots and the read queries.
 *
 * Transactions. The first apply after a flush opens a transaction (BEGIN)
 * that mstore_flush commits. Each apply runs inside a savepoint of its own,
 * so a refusal or an SQLite error undoes exactly that command and leaves
 * the earlier ones of the burst in place:
 *
 *   IDLE --apply--> OPEN [txn_begin]         OPEN --flush--> IDLE
 * [mstore_flush] OPEN --apply--> OPEN (savepoint released, or rolled back on
 * refusal) OPEN --SQLite rolled the transaction back--> BROKEN [note_failure]
 *
 * BROKEN means the entries applied since the last flush are gone from the
 * database while libraft believes them applied; applying more on top would
 * diverge from the other managers, so every apply and flush fails with
 * RQ_IO until a restore replaces the whole state or the store is reopened
 * (the Raft log then replays what the file lacks).
 *
 * Determinism. Apply reads no clock and draws no random number: times are
 * the command's now_ms, ids come from counters in meta. Unsigned 64-bit
 * values are stored as SQLite's signed integers bit for bit and read back
 * the same way, so MCMD_ANY-sized values survive.
 */
#include "mstore.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <nettle/memops.h>
#include <nettle/sha2.h>
#include <sqlite3.h>
#include <zlib.h>

#include "cgroup_plan.h"
#include "mbatch.h"
#include "rq_err.h"
#include "rq_log.h"

#define LOG_TAG "mstore"

/*
 * Schema versions. A database records its version in PRAGMA user_version,
 * a field of the database header: it is in every snapshot image (and the
 * backup that restores one copies it), it can be read before anything
 * about the tables is known, it is written in the same transaction as the
 * statements of a migration, and it is not a row, so mstore_digest, which
 * compares rows, sees only the data.
 *
 *   version  what it added
 *   1        the first release: meta, managers, brokers, topics,
 *            partitions, producers, consumers, offsets
 *   2        tokens, meta.next_token_id (issue 11)
 *   3        cgroups, cgroup_members, cgroup_owners, cgroup_offsets:
 *            consumer groups (API.md section 2b)
 *   4        meta.cluster_uid: the cluster's identity; foreign_groups:
 *            groups hosted that the store never placed (issue 16)
 *
 * meta.applied_crc came between 1 and 2 without a version: it is optional
 * (see APPLIED_CRC), so a database of version 1 without it is still of
 * version 1.
 *
 * Versions up to SCHEMA_UNVERSIONED_MAX were written before the version
 * was recorded, so their user_version is 0; schema_identify tells them
 * apart by comparing their schema with each version's in turn. Every
 * database this code writes records its version.
 *
 * There is one way to build a schema: version 1's statements, then every
 * migration in order. New databases and reference schemas are built that
 * way too, so a migrated database cannot differ from a new one in a
 * table's text or its column order (SELECT * in mstore_digest depends on
 * it). Columns are declared NOT NULL except partition_id of clients (NULL:
 * not bound).
 */
#define SCHEMA_UNVERSIONED_MAX 2

/* Version 1 as the first release created it. Never edit it: a database of
 * that release is recognized by this exact text. */
static const char schema_v1_sql[] =
    "CREATE TABLE meta(key TEXT PRIMARY KEY, value INTEGER NOT NULL) "
    "WITHOUT ROWID;"
    "CREATE TABLE managers(id INTEGER PRIMARY KEY, raft_addr TEXT NOT NULL, "
    "http_addr TEXT NOT NULL);"
    "CREATE TABLE brokers(id INTEGER PRIMARY KEY, raft_addr TEXT NOT NULL, "
    "http_addr TEXT NOT NULL, state INTEGER NOT NULL, "
    "registered_ms INTEGER NOT NULL, state_ms INTEGER NOT NULL);"
    "CREATE TABLE topics(name TEXT PRIMARY KEY, created_ms INTEGER NOT NULL, "
    "retention_bytes INTEGER NOT NULL, retention_ms INTEGER NOT NULL, "
    "n_partitions INTEGER NOT NULL) WITHOUT ROWID;"
    "CREATE TABLE partitions(topic TEXT NOT NULL, "
    "partition_id INTEGER NOT NULL, group_id INTEGER NOT NULL UNIQUE, "
    "epoch INTEGER NOT NULL, r0 INTEGER NOT NULL, r1 INTEGER NOT NULL, "
    "r2 INTEGER NOT NULL, PRIMARY KEY(topic, partition_id)) WITHOUT ROWID;"
    "CREATE TABLE producers(id INTEGER PRIMARY KEY, topic TEXT NOT NULL, "
    "partition_id INTEGER, rr_cursor INTEGER NOT NULL);"
    "CREATE INDEX producers_by_topic ON producers(topic);"
    "CREATE TABLE consumers(id INTEGER PRIMARY KEY, topic TEXT NOT NULL, "
    "partition_id INTEGER, rr_cursor INTEGER NOT NULL);"
    "CREATE INDEX consumers_by_topic ON consumers(topic);"
    "CREATE TABLE offsets(consumer_id INTEGER NOT NULL, "
    "partition_id INTEGER NOT NULL, next_offset INTEGER NOT NULL, "
    "PRIMARY KEY(consumer_id, partition_id)) WITHOUT ROWID;"
    "INSERT INTO meta(key, value) VALUES ('applied_index', 0), "
    "('next_group_id', 1), ('next_producer_id', 1), "
    "('next_consumer_id', 1);";

/*
 * migrations[k] takes a database from version k + 1 to k + 2. A step is
 * SQL alone: it reads no clock and nothing outside the database, and gives
 * every new meta key a constant default, so every manager that migrates
 * the same content ends with the same content, and the same as a manager
 * that created its database at the new version and applied the same
 * entries. Steps run inside the transaction of the whole upgrade. Never
 * edit a step once released; add one.
 */
static const char *const migrations[] = {
    /* 1 -> 2: access tokens, as hashes (DESIGN.md section 8). */
    "CREATE TABLE tokens(id INTEGER PRIMARY KEY, name TEXT NOT NULL, "
    "lookup INTEGER NOT NULL, hash BLOB NOT NULL, grants TEXT NOT NULL, "
    "created_ms INTEGER NOT NULL);"
    "CREATE INDEX tokens_by_lookup ON tokens(lookup);"
    "INSERT INTO meta(key, value) VALUES ('next_token_id', 1);",
    /* 2 -> 3: consumer groups (API.md section 2b; cgroup_plan.h). */
    "CREATE TABLE cgroups(name TEXT PRIMARY KEY, topic TEXT NOT NULL, "
    "generation INTEGER NOT NULL, created_ms INTEGER NOT NULL) "
    "WITHOUT ROWID;"
    "CREATE INDEX cgroups_by_topic ON cgroups(topic);"
    "CREATE TABLE cgroup_members(grp TEXT NOT NULL, member_id TEXT NOT NULL, "
    "session_ms INTEGER NOT NULL, joined_ms INTEGER NOT NULL, "
    "PRIMARY KEY(grp, member_id)) WITHOUT ROWID;"
    "CREATE TABLE cgroup_owners(grp TEXT NOT NULL, "
    "partition_id INTEGER NOT NULL, member_id TEXT NOT NULL, "
    "PRIMARY KEY(grp, partition_id)) WITHOUT ROWID;"
    "CREATE TABLE cgroup_offsets(grp TEXT NOT NULL, "
    "partition_id INTEGER NOT NULL, next_offset INTEGER NOT NULL, "
    "PRIMARY KEY(grp, partition_id)) WITHOUT ROWID;",
    /* 3 -> 4: the cluster's identity (MCMD_CLUSTER_UID), 0 until the first
     * leader commits one; groups brokers host that this store never placed
     * (MCMD_GROUP_FOREIGN). */
    "INSERT INTO meta(key, value) VALUES ('cluster_uid', 0);"
    "CREATE TABLE foreign_groups(group_id INTEGER PRIMARY KEY, "
    "broker INTEGER NOT NULL, seen_ms INTEGER NOT NULL);",
};

_Static_assert(sizeof migrations / sizeof migrations[0] ==
                   MSTORE_SCHEMA_VERSION - 1,
               "one migration per schema version after the first");

/* The meta keys every valid database holds. */
static const char *const meta_keys[] = {
    "applied_index",    "next_group_id", "next_producer_id",
    "next_consumer_id", "next_token_id", "cluster_uid",
};

/* A broker's replica counts come from struct counts, not from SQL: a
 * count over the partitions per broker read was two scans of the whole
 * table each time. */
#define BROKER_COLS \
    "b.id, b.raft_addr, b.http_addr, b.state, b.registered_ms, b.state_ms"
#define TOPIC_COLS \
    "name, created_ms, retention_bytes, retention_ms, n_partitions"
#define PARTITION_COLS "topic, partition_id, group_id, epoch, r0, r1, r2"
#define CGROUP_COLS                                 \
    "g.name, g.topic, g.generation, g.created_ms, " \
    "(SELECT count(*) FROM cgroup_members m WHERE m.grp = g.name)"
/* Each consumer with the partitions it reads: its bound one, else every
 * partition of its topic. */
#define POSITIONS_FROM                                         \
    "FROM consumers c JOIN partitions p ON p.topic = c.topic " \
    "AND (c.partition_id IS NULL OR p.partition_id = c.partition_id)"

/* Every statement the store runs, prepared once at open. */
#define STATEMENTS(X)                                                         \
    X(BEGIN, "BEGIN")                                                         \
    X(COMMIT, "COMMIT")                                                       \
    X(SAVEPOINT, "SAVEPOINT cmd")                                             \
    X(RELEASE, "RELEASE cmd")                                                 \
    X(ROLLBACK_TO, "ROLLBACK TO cmd")                                         \
    X(META_GET, "SELECT value FROM meta WHERE key = ?1")                      \
    X(META_SET, "UPDATE meta SET value = ?2 WHERE key = ?1")                  \
    X(META_PUT, "INSERT OR REPLACE INTO meta(key, value) VALUES (?1, ?2)")    \
    X(MANAGER_UPSERT,                                                         \
      "INSERT INTO managers(id, raft_addr, http_addr) VALUES (?1, ?2, ?3) "   \
      "ON CONFLICT(id) DO UPDATE SET raft_addr = excluded.raft_addr, "        \
      "http_addr = excluded.http_addr")                                       \
    X(MANAGER_GET,                                                            \
      "SELECT id, raft_addr, http_addr FROM managers WHERE id = ?1")          \
    X(MANAGERS, "SELECT id, raft_addr, http_addr FROM managers ORDER BY id")  \
    X(BROKER_STATE_GET, "SELECT state FROM brokers WHERE id = ?1")            \
    X(BROKER_INSERT,                                                          \
      "INSERT INTO brokers(id, raft_addr, http_addr, state, registered_ms, "  \
      "state_ms) VALUES (?1, ?2, ?3, ?4, ?5, ?5)")                            \
    X(BROKER_UPDATE,                                                          \
      "UPDATE brokers SET raft_addr = ?2, http_addr = ?3, "                   \
      "registered_ms = ?5, state_ms = CASE WHEN state = ?4 THEN state_ms "    \
      "ELSE ?5 END, state = ?4 WHERE id = ?1")                                \
    X(BROKER_SET_STATE,                                                       \
      "UPDATE brokers SET state = ?2, state_ms = ?3 WHERE id = ?1")           \
    X(BROKER_GET, "SELECT " BROKER_COLS " FROM brokers b WHERE b.id = ?1")    \
    X(BROKERS, "SELECT " BROKER_COLS " FROM brokers b ORDER BY b.id")         \
    X(PARTITION_PLACEMENT, "SELECT r0, r1, r2 FROM partitions")               \
    X(TOPIC_GET, "SELECT " TOPIC_COLS " FROM topics WHERE name = ?1")         \
    X(TOPICS, "SELECT " TOPIC_COLS " FROM topics ORDER BY name")              \
    X(TOPIC_INSERT,                                                           \
      "INSERT INTO topics(" TOPIC_COLS ") VALUES (?1, ?2, ?3, ?4, ?5)")       \
    X(TOPIC_DELETE, "DELETE FROM topics WHERE name = ?1")                     \
    X(PARTITION_INSERT, "INSERT INTO partitions(" PARTITION_COLS              \
                        ") VALUES (?1, ?2, ?3, 0, ?4, ?5, ?6)")               \
    X(PARTITION_GET,                                                          \
      "SELECT " PARTITION_COLS                                                \
      " FROM partitions WHERE topic = ?1 AND partition_id = ?2")              \
    X(PARTITION_SET,                                                          \
      "UPDATE partitions SET r0 = ?3, r1 = ?4, r2 = ?5, epoch = epoch + 1 "   \
      "WHERE topic = ?1 AND partition_id = ?2")                               \
    X(PARTITIONS_OF,                                                          \
      "SELECT " PARTITION_COLS                                                \
      " FROM partitions WHERE topic = ?1 ORDER BY partition_id")              \
    X(PARTITIONS_ALL, "SELECT " PARTITION_COLS                                \
                      " FROM partitions ORDER BY topic, partition_id")        \
    X(PARTITION_BY_GROUP,                                                     \
      "SELECT " PARTITION_COLS " FROM partitions WHERE group_id = ?1")        \
    X(PARTITIONS_DELETE, "DELETE FROM partitions WHERE topic = ?1")           \
    X(PRODUCER_INSERT,                                                        \
      "INSERT INTO producers(id, topic, partition_id, rr_cursor) "            \
      "VALUES (?1, ?2, ?3, 0)")                                               \
    X(PRODUCER_GET,                                                           \
      "SELECT id, topic, partition_id, rr_cursor FROM producers "             \
      "WHERE id = ?1")                                                        \
    X(PRODUCERS_DELETE, "DELETE FROM producers WHERE topic = ?1")             \
    X(CONSUMER_INSERT,                                                        \
      "INSERT INTO consumers(id, topic, partition_id, rr_cursor) "            \
      "VALUES (?1, ?2, ?3, 0)")                                               \
    X(CONSUMER_GET,                                                           \
      "SELECT id, topic, partition_id, rr_cursor FROM consumers "             \
      "WHERE id = ?1")                                                        \
    X(CONSUMER_SET_CURSOR,                                                    \
      "UPDATE consumers SET rr_cursor = ?2 WHERE id = ?1")                    \
    X(CONSUMERS_DELETE, "DELETE FROM consumers WHERE topic = ?1")             \
    X(OFFSET_GET,                                                             \
      "SELECT next_offset FROM offsets WHERE consumer_id = ?1 "               \
      "AND partition_id = ?2")                                                \
    X(OFFSET_SET,                                                             \
      "INSERT INTO offsets(consumer_id, partition_id, next_offset) "          \
      "VALUES (?1, ?2, ?3) ON CONFLICT(consumer_id, partition_id) "           \
      "DO UPDATE SET next_offset = excluded.next_offset")                     \
    X(OFFSETS_OF,                                                             \
      "SELECT partition_id, next_offset FROM offsets WHERE consumer_id = ?1 " \
      "ORDER BY partition_id")                                                \
    X(OFFSETS_DELETE,                                                         \
      "DELETE FROM offsets WHERE consumer_id IN "                             \
      "(SELECT id FROM consumers WHERE topic = ?1)")                          \
    X(POSITIONS,                                                              \
      "SELECT c.id, c.topic, p.partition_id, p.group_id, "                    \
      "coalesce(o.next_offset, 0) " POSITIONS_FROM                            \
      " LEFT JOIN offsets o ON o.consumer_id = c.id "                         \
      "AND o.partition_id = p.partition_id "                                  \
      "ORDER BY c.id DESC, p.partition_id LIMIT ?1")                          \
    X(POSITIONS_COUNT, "SELECT count(*) " POSITIONS_FROM)                     \
    X(TOKEN_INSERT,                                                           \
      "INSERT INTO tokens(id, name, lookup, hash, grants, created_ms) "       \
      "VALUES (?1, ?2, ?3, ?4, ?5, ?6)")                                      \
    X(TOKEN_DELETE, "DELETE FROM tokens WHERE id = ?1")                       \
    X(FOREIGN_INSERT,                                                         \
      "INSERT OR IGNORE INTO foreign_groups(group_id, broker, seen_ms) "      \
      "VALUES (?1, ?2, ?3)")                                                  \
    X(FOREIGN_GET, "SELECT 1 FROM foreign_groups WHERE group_id = ?1")        \
    X(TOKEN_EXISTS, "SELECT 1 FROM tokens WHERE id = ?1")                     \
    X(TOKENS_BY_LOOKUP,                                                       \
      "SELECT id, name, grants, created_ms, hash FROM tokens "                \
      "WHERE lookup = ?1")                                                    \
    X(TOKENS, "SELECT id, name, grants, created_ms FROM tokens ORDER BY id")  \
    X(CGROUP_GET, "SELECT " CGROUP_COLS " FROM cgroups g WHERE g.name = ?1")  \
    X(CGROUPS, "SELECT " CGROUP_COLS " FROM cgroups g ORDER BY g.name")       \
    X(CGROUP_INSERT,                                                          \
      "INSERT INTO cgroups(name, topic, generation, created_ms) "             \
      "VALUES (?1, ?2, 0, ?3)")                                               \
    X(CGROUP_NEXT_GENERATION,                                                 \
      "UPDATE cgroups SET generation = generation + 1 WHERE name = ?1")       \
    X(CGROUP_DELETE, "DELETE FROM cgroups WHERE name = ?1")                   \
    X(CGROUP_MEMBER_INSERT,                                                   \
      "INSERT INTO cgroup_members(grp, member_id, session_ms, joined_ms) "    \
      "VALUES (?1, ?2, ?3, ?4)")                                              \
    X(CGROUP_MEMBER_DELETE,                                                   \
      "DELETE FROM cgroup_members WHERE grp = ?1 AND member_id = ?2")         \
    X(CGROUP_MEMBERS,                                                         \
      "SELECT member_id, session_ms, joined_ms FROM cgroup_members "          \
      "WHERE grp = ?1 ORDER BY member_id")                                    \
    X(CGROUP_OWNERS,                                                          \
      "SELECT partition_id, member_id FROM cgroup_owners WHERE grp = ?1 "     \
      "ORDER BY partition_id")                                                \
    X(CGROUP_OWNERS_DELETE, "DELETE FROM cgroup_owners WHERE grp = ?1")       \
    X(CGROUP_OWNER_INSERT,                                                    \
      "INSERT INTO cgroup_owners(grp, partition_id, member_id) "              \
      "VALUES (?1, ?2, ?3)")                                                  \
    X(CGROUP_OFFSET_SET,                                                      \
      "INSERT INTO cgroup_offsets(grp, partition_id, next_offset) "           \
      "VALUES (?1, ?2, ?3) ON CONFLICT(grp, partition_id) "                   \
      "DO UPDATE SET next_offset = excluded.next_offset")                     \
    X(CGROUP_OFFSET_RAISE,                                                    \
      "INSERT INTO cgroup_offsets(grp, partition_id, next_offset) "           \
      "VALUES (?1, ?2, ?3) ON CONFLICT(grp, partition_id) "                   \
      "DO UPDATE SET next_offset = max(next_offset, excluded.next_offset)")   \
    X(CGROUP_OFFSETS,                                                         \
      "SELECT partition_id, next_offset FROM cgroup_offsets WHERE grp = ?1 "  \
      "ORDER BY partition_id")                                                \
    X(CGROUP_OFFSETS_DELETE, "DELETE FROM cgroup_offsets WHERE grp = ?1")     \
    X(CGROUP_MEMBERS_OF_TOPIC_DELETE,                                         \
      "DELETE FROM cgroup_members WHERE grp IN "                              \
      "(SELECT name FROM cgroups WHERE topic = ?1)")                          \
    X(CGROUP_OWNERS_OF_TOPIC_DELETE,                                          \
      "DELETE FROM cgroup_owners WHERE grp IN "                               \
      "(SELECT name FROM cgroups WHERE topic = ?1)")                          \
    X(CGROUP_OFFSETS_OF_TOPIC_DELETE,                                         \
      "DELETE FROM cgroup_offsets WHERE grp IN "                              \
      "(SELECT name FROM cgroups WHERE topic = ?1)")                          \
    X(CGROUPS_OF_TOPIC_DELETE, "DELETE FROM cgroups WHERE topic = ?1")

enum stmt_id {
#define STMT_ENUM(name, sql) ST_##name,
    STATEMENTS(STMT_ENUM)
#undef STMT_ENUM
        ST_COUNT_
};

static const char *const stmt_sql[] = {
#define STMT_SQL(name, sql) sql,
    STATEMENTS(STMT_SQL)
#undef STMT_SQL
};

struct mstore {
    sqlite3 *db;
    sqlite3_stmt *st[ST_COUNT_];
    bool in_txn;           /* BEGIN ran and no COMMIT since. */
    bool broken;           /* The open transaction was lost; see the top. */
    uint64_t applied;      /* meta.applied_index, including the open txn. */
    uint64_t applied_crc;  /* meta.applied_crc; 0: not known. */
    uint64_t cluster_uid;  /* meta.cluster_uid; 0: none committed yet. */
    uint64_t layout_gen;   /* mstore_layout_generation(). */
    struct counts *counts; /* Replicas per broker, as of a layout_gen. */
    /* The results of the last entry applied, if it was a batch. */
    uint64_t *batch_results;
    size_t batch_n, batch_cap;
    uint64_t batch_nonce;
};

/*
 * How many replicas each broker is placed, and how many it is the
 * preferred leader of (replicas[0]), counted in one scan of the
 * partitions whenever the layout generation has moved since the last
 * count. Pointed to from the store, so that reads through a const store
 * can refresh it.
 */
struct count {
    uint32_t id;
    uint32_t n_replicas;
    uint32_t n_preferred;
};

struct counts {
    bool valid;
    uint64_t gen;    /* The layout generation counted. */
    struct count *c; /* Sorted by id. */
    size_t n, cap;
    /* Every partition, sorted by group id, as of parts_gen
     * (mstore_partitions_view). */
    bool parts_valid;
    uint64_t parts_gen;
    struct mstore_partition *parts;
    size_t n_parts;
};

/* ---- Small SQLite helpers ---- */

/* Logs an SQLite failure and maps it to an RQ_* code. */
static int sql_fail(sqlite3 *db, int rc, const char *what)
{
    rq_log(RQ_ERROR, "%s: %s (sqlite %d)", what, sqlite3_errmsg(db), rc);
    return rc == SQLITE_NOMEM ? RQ_NOMEM : RQ_IO;
}

/* Unsigned values go in and out as SQLite's signed 64-bit integers. */
static void bind_u64(sqlite3_stmt *st, int i, uint64_t v)
{
    sqlite3_bind_int64(st, i, (sqlite3_int64)v);
}

static void bind_text(sqlite3_stmt *st, int i, const char *v)
{
    sqlite3_bind_text(st, i, v, -1, SQLITE_STATIC);
}

/* A client's partition: NULL when not bound. */
static void bind_partition(sqlite3_stmt *st, int i, uint32_t partition_id)
{
    if (partition_id == MCMD_NO_PARTITION) {
        sqlite3_bind_null(st, i);
    } else {
        bind_u64(st, i, partition_id);
    }
}

static uint64_t col_u64(sqlite3_stmt *st, int i)
{
    return (uint64_t)sqlite3_column_int64(st, i);
}

static void col_text(sqlite3_stmt *st, int i, char *dst, size_t n)
{
    const unsigned char *t = sqlite3_column_text(st, i);
    snprintf(dst, n, "%s", t != NULL ? (const char *)t : "");
}

/*
 * Steps a statement that returns no rows and resets it, so it never holds
 * the database between calls.
 */
static int run(struct mstore *s, enum stmt_id id)
{
    sqlite3_stmt *st = s->st[id];
    int rc = sqlite3_step(st);
    int rv = rc == SQLITE_DONE ? 0 : sql_fail(s->db, rc, stmt_sql[id]);
    sqlite3_reset(st);
    sqlite3_clear_bindings(st);
    return rv;
}

/*
 * Steps a statement expected to return at most one row. Returns 0 with the
 * row current (the caller reads columns then calls done()), RQ_NOTFOUND
 * (already reset), or an error (already reset).
 */
static int row(const struct mstore *s, enum stmt_id id)
{
    sqlite3_stmt *st = s->st[id];
    int rc = sqlite3_step(st);
    if (rc == SQLITE_ROW) {
        return 0;
    }
    int rv =
        rc == SQLITE_DONE ? RQ_NOTFOUND : sql_fail(s->db, rc, stmt_sql[id]);
    sqlite3_reset(st);
    sqlite3_clear_bindings(st);
    return rv;
}

static void done(const struct mstore *s, enum stmt_id id)
{
    sqlite3_reset(s->st[id]);
    sqlite3_clear_bindings(s->st[id]);
}

static int meta_get(const struct mstore *s, const char *key, uint64_t *out)
{
    bind_text(s->st[ST_META_GET], 1, key);
    int rv = row(s, ST_META_GET);
    if (rv == 0) {
        *out = col_u64(s->st[ST_META_GET], 0);
        done(s, ST_META_GET);
    } else if (rv == RQ_NOTFOUND) {
        /* The schema check guarantees every key; a missing one is damage. */
        rq_log(RQ_ERROR, "meta key %s is missing", key);
        rv = RQ_IO;
    }
    return rv;
}

static int meta_set(struct mstore *s, const char *key, uint64_t v)
{
    bind_text(s->st[ST_META_SET], 1, key);
    bind_u64(s->st[ST_META_SET], 2, v);
    return run(s, ST_META_SET);
}

/*
 * The check of a replayed entry (mstore.h): meta.applied_crc is the crc32
 * of the entry at applied_index with bit 32 set, so 0 means "not known"
 * (a database from before the key existed, until its next apply).
 */
#define APPLIED_CRC "applied_crc"

static uint64_t entry_crc(const uint8_t *payload, size_t len)
{
    return (UINT64_C(1) << 32) | (uint64_t)crc32_z(0, payload, len);
}

/* Reads meta.applied_crc into s->applied_crc, 0 if the key is absent,
 * and meta.cluster_uid into s->cluster_uid. */
static int applied_crc_load(struct mstore *s)
{
    int rv = meta_get(s, "cluster_uid", &s->cluster_uid);
    if (rv != 0) {
        return rv;
    }
    bind_text(s->st[ST_META_GET], 1, APPLIED_CRC);
    rv = row(s, ST_META_GET);
    s->applied_crc = 0;
    if (rv == 0) {
        s->applied_crc = col_u64(s->st[ST_META_GET], 0);
        done(s, ST_META_GET);
    }
    return rv == RQ_NOTFOUND ? 0 : rv;
}

/* Takes the next id from the counter @key (ids start at 1). */
static int meta_take(struct mstore *s, const char *key, uint64_t n,
                     uint64_t *first)
{
    int rv = meta_get(s, key, first);
    if (rv == 0) {
        rv = meta_set(s, key, *first + n);
    }
    return rv;
}

/* ---- Schema ---- */

/*
 * Compares the schema of @b's main database with @a's (the expected one):
 * the same tables, indexes and CREATE statements. *same is set on success.
 */
static int schema_same(sqlite3 *a, sqlite3 *b, bool *same, char *why,
                       size_t whyn)
{
    static const char q[] =
        "SELECT type, name, tbl_name, coalesce(sql, '') FROM sqlite_schema "
        "ORDER BY type, name";
    sqlite3_stmt *sa = NULL;
    sqlite3_stmt *sb = NULL;
    int rv = 0;
    int ra;
    int rb;

    *same = false;
    if (sqlite3_prepare_v2(a, q, -1, &sa, NULL) != SQLITE_OK) {
        rq_why(why, whyn, "cannot read the schema: %s", sqlite3_errmsg(a));
        rv = RQ_MALFORMED;
        goto err;
    }
    if (sqlite3_prepare_v2(b, q, -1, &sb, NULL) != SQLITE_OK) {
        rq_why(why, whyn, "cannot read the schema: %s", sqlite3_errmsg(b));
        rv = RQ_MALFORMED;
        goto err;
    }
    for (;;) {
        ra = sqlite3_step(sa);
        rb = sqlite3_step(sb);
        if (ra != SQLITE_ROW || rb != SQLITE_ROW) {
            break;
        }
        for (int i = 0; i < 4; i++) {
            const char *x = (const char *)sqlite3_column_text(sa, i);
            const char *y = (const char *)sqlite3_column_text(sb, i);
            if (x == NULL || y == NULL || strcmp(x, y) != 0) {
                rq_why(why, whyn, "schema differs: %s %s where %s %s was due",
                       sqlite3_column_text(sb, 0), sqlite3_column_text(sb, 1),
                       sqlite3_column_text(sa, 0), sqlite3_column_text(sa, 1));
                goto err;
            }
        }
    }
    if (ra == SQLITE_DONE && rb == SQLITE_DONE) {
        *same = true;
    } else if (ra == SQLITE_DONE || rb == SQLITE_DONE) {
        rq_why(why, whyn, "schema has %s tables or indexes than due",
               ra == SQLITE_DONE ? "more" : "fewer");
    } else {
        rq_why(why, whyn, "cannot read the schema: %s",
               sqlite3_errmsg(ra != SQLITE_ROW ? a : b));
        rv = RQ_MALFORMED;
    }
err:
    sqlite3_finalize(sb);
    sqlite3_finalize(sa);
    return rv;
}

/* Runs @sql on @db; on failure says why, naming @what. */
static int exec_sql(sqlite3 *db, const char *sql, const char *what, char *why,
                    size_t whyn)
{
    char *msg = NULL;
    int rc = sqlite3_exec(db, sql, NULL, NULL, &msg);
    if (rc == SQLITE_OK) {
        return 0;
    }
    rq_why(why, whyn, "%s: %s", what, msg != NULL ? msg : sqlite3_errstr(rc));
    sqlite3_free(msg);
    return rc == SQLITE_NOMEM ? RQ_NOMEM : RQ_IO;
}

/* Runs the migrations that take @db from version @from (1 or more) to @to. */
static int schema_migrate(sqlite3 *db, int from, int to, char *why, size_t whyn)
{
    for (int v = from; v < to; v++) {
        char what[64];
        snprintf(what, sizeof what, "migrating to schema version %d", v + 1);
        int rv = exec_sql(db, migrations[v - 1], what, why, whyn);
        if (rv != 0) {
            return rv;
        }
    }
    return 0;
}

/* Reads an integer PRAGMA or count (the first column of @sql's one row). */
static int read_int(sqlite3 *db, const char *sql, int *out, char *why,
                    size_t whyn)
{
    sqlite3_stmt *st = NULL;
    int rc = sqlite3_prepare_v2(db, sql, -1, &st, NULL);
    if (rc == SQLITE_OK) {
        rc = sqlite3_step(st);
    }
    if (rc != SQLITE_ROW) {
        rq_why(why, whyn, "cannot read the schema: %s", sqlite3_errmsg(db));
        sqlite3_finalize(st);
        return rc == SQLITE_NOMEM ? RQ_NOMEM : RQ_IO;
    }
    *out = sqlite3_column_int(st, 0);
    sqlite3_finalize(st);
    return 0;
}

/* A connection to a private in-memory database holding the schema of
 * @version and nothing else. */
static int reference_open(int version, sqlite3 **out, char *why, size_t whyn)
{
    sqlite3 *ref = NULL;
    int rc = sqlite3_open_v2(":memory:", &ref,
                             SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE, NULL);
    if (rc != SQLITE_OK) {
        /* UNTESTED: ENOMEM only. */
        rq_why(why, whyn, "in-memory database: %s", sqlite3_errstr(rc));
        sqlite3_close(ref);
        return RQ_NOMEM;
    }
    int rv = exec_sql(ref, schema_v1_sql, "reference schema", why, whyn);
    if (rv == 0) {
        rv = schema_migrate(ref, 1, version, why, whyn);
    }
    if (rv != 0) {
        sqlite3_close(ref); /* UNTESTED: ENOMEM only. */
        return rv;
    }
    *out = ref;
    return 0;
}

/* Checks a database's content beyond its schema: page-level integrity and
 * every meta key. */
static int content_valid(sqlite3 *db, char *why, size_t whyn)
{
    sqlite3_stmt *st = NULL;
    int rv = RQ_MALFORMED;
    if (sqlite3_prepare_v2(db, "PRAGMA integrity_check(1)", -1, &st, NULL) !=
            SQLITE_OK ||
        sqlite3_step(st) != SQLITE_ROW) {
        rq_why(why, whyn, "integrity check failed: %s", sqlite3_errmsg(db));
        goto err;
    }
    const char *res = (const char *)sqlite3_column_text(st, 0);
    if (res == NULL || strcmp(res, "ok") != 0) {
        rq_why(why, whyn, "integrity check: %s", res != NULL ? res : "?");
        goto err;
    }
    sqlite3_finalize(st);
    st = NULL;
    if (sqlite3_prepare_v2(db, "SELECT count(*) FROM meta WHERE key = ?1", -1,
                           &st, NULL) != SQLITE_OK) {
        rq_why(why, whyn, "cannot read meta: %s", sqlite3_errmsg(db));
        goto err;
    }
    for (size_t i = 0; i < sizeof meta_keys / sizeof meta_keys[0]; i++) {
        bind_text(st, 1, meta_keys[i]);
        if (sqlite3_step(st) != SQLITE_ROW || sqlite3_column_int(st, 0) != 1) {
            rq_why(why, whyn, "meta key %s is missing", meta_keys[i]);
            goto err;
        }
        sqlite3_reset(st);
    }
    rv = 0;
err:
    sqlite3_finalize(st);
    return rv;
}

/*
 * The version of a database that records none (user_version 0): the first
 * version up to SCHEMA_UNVERSIONED_MAX whose schema it has exactly, else
 * RQ_MALFORMED with the difference from the last one in @why.
 */
static int schema_identify(sqlite3 *db, int *version, char *why, size_t whyn)
{
    sqlite3 *ref = NULL;
    bool same = false;
    int rv = reference_open(1, &ref, why, whyn);
    for (int v = 1; rv == 0 && v <= SCHEMA_UNVERSIONED_MAX; v++) {
        if (v > 1) {
            rv = schema_migrate(ref, v - 1, v, why, whyn);
        }
        if (rv == 0) {
            rv = schema_same(ref, db, &same, why, whyn);
        }
        if (rv == 0 && same) {
            *version = v;
            break;
        }
    }
    sqlite3_close(ref);
    return rv == 0 && !same ? RQ_MALFORMED : rv;
}

/* 0 if @db's schema is that of @version, else RQ_MALFORMED with the
 * difference in @why (or RQ_IO/RQ_NOMEM). */
static int schema_is(sqlite3 *db, int version, char *why, size_t whyn)
{
    sqlite3 *ref = NULL;
    bool same = false;
    int rv = reference_open(version, &ref, why, whyn);
    if (rv == 0) {
        rv = schema_same(ref, db, &same, why, whyn);
        sqlite3_close(ref);
    }
    return rv == 0 && !same ? RQ_MALFORMED : rv;
}

/*
 * Brings @db to MSTORE_SCHEMA_VERSION and checks it, all in one
 * transaction that is committed only if every check passes, so a refused
 * database is left as it was (an operator can still start the release
 * that wrote it). An empty database gets the schema when @create, else is
 * refused. The steps:
 *
 *   no tables, user_version 0  --> version 1's statements (@create only)
 *   tables, user_version 0     --> the version schema_identify finds
 *   user_version 1 .. current  --> that version, if the schema is its own
 *   user_version > current     --> refused, naming both versions
 *
 * then the migrations from that version on run, user_version is set to
 * the current version, and the schema must equal the reference
 * (reference_open) and the content pass content_valid.
 * *@from is the version the database had (0: it was empty). Returns 0,
 * RQ_MALFORMED (not a manager database this binary can use; @why says
 * why), or RQ_IO/RQ_NOMEM from SQLite.
 */
static int schema_upgrade(sqlite3 *db, bool create, int *from, char *why,
                          size_t whyn)
{
    int recorded; /* user_version as found */
    int version;  /* the version the database has */
    int n;
    char reason[256] = "";
    int rv = exec_sql(db, "BEGIN IMMEDIATE", "begin", why, whyn);
    if (rv != 0) {
        return rv;
    }
    rv = read_int(db, "SELECT count(*) FROM sqlite_schema", &n, why, whyn);
    if (rv == 0) {
        rv = read_int(db, "PRAGMA user_version", &recorded, why, whyn);
    }
    if (rv != 0) {
        goto err_after_begin;
    }
    version = recorded;
    if (n == 0 && version == 0) {
        if (!create) {
            rq_why(why, whyn, "an empty database");
            rv = RQ_MALFORMED;
            goto err_after_begin;
        }
        rv = exec_sql(db, schema_v1_sql, "creating the schema", why, whyn);
        version = 1;
    } else if (version == 0) {
        rv = schema_identify(db, &version, reason, sizeof reason);
        if (rv == RQ_MALFORMED) {
            rq_why(why, whyn,
                   "not a manager database: its schema is that of no "
                   "version from 1 to %d (%s)",
                   SCHEMA_UNVERSIONED_MAX, reason);
        } else if (rv != 0) {
            rq_why(why, whyn, "%s", reason);
        }
    } else if (version > MSTORE_SCHEMA_VERSION) {
        rq_why(why, whyn,
               "schema version %d is newer than this binary's version %d: "
               "written by a later release, which this one cannot read",
               version, MSTORE_SCHEMA_VERSION);
        rv = RQ_MALFORMED;
    } else if (version < 0) {
        rq_why(why, whyn,
               "not a manager database: schema version %d (this binary "
               "knows 1 to %d)",
               version, MSTORE_SCHEMA_VERSION);
        rv = RQ_MALFORMED;
    } else {
        /* Migrations assume the schema they start from. */
        rv = schema_is(db, version, reason, sizeof reason);
        if (rv == RQ_MALFORMED) {
            rq_why(why, whyn,
                   "not a manager database of schema version %d (%s)", version,
                   reason);
        } else if (rv != 0) {
            rq_why(why, whyn, "%s", reason);
        }
    }
    if (rv != 0) {
        goto err_after_begin;
    }
    *from = n == 0 ? 0 : version;
    rv = schema_migrate(db, version, MSTORE_SCHEMA_VERSION, why, whyn);
    if (rv == 0 && recorded != MSTORE_SCHEMA_VERSION) {
        char sql[64];
        snprintf(sql, sizeof sql, "PRAGMA user_version = %d",
                 MSTORE_SCHEMA_VERSION);
        rv = exec_sql(db, sql, "recording the schema version", why, whyn);
    }
    if (rv != 0) {
        goto err_after_begin;
    }
    rv = schema_is(db, MSTORE_SCHEMA_VERSION, reason, sizeof reason);
    if (rv == 0) {
        rv = content_valid(db, reason, sizeof reason);
    }
    if (rv != 0) {
        rq_why(why, whyn, "not a manager database of schema version %d (%s)",
               version, reason);
        goto err_after_begin;
    }
    rv = exec_sql(db, "COMMIT", "commit", why, whyn);
    if (rv == 0) {
        return 0;
    }
err_after_begin:
    sqlite3_exec(db, "ROLLBACK", NULL, NULL, NULL);
    return rv;
}

/* ---- Open and close ---- */

static void statements_finalize(struct mstore *s)
{
    for (int i = 0; i < ST_COUNT_; i++) {
        sqlite3_finalize(s->st[i]);
        s->st[i] = NULL;
    }
}

/* Reads the answer of PRAGMA journal_mode: a file system without shared
 * memory support keeps the rollback journal, which is slower but correct. */
static int wal_check(void *data, int n, char **values, char **names)
{
    (void)data;
    if (n == 1 && strcmp(names[0], "journal_mode") == 0 && values[0] != NULL &&
        strcmp(values[0], "wal") != 0) {
        rq_log(RQ_WARN, "journal mode is %s, not wal", values[0]);
    }
    return 0;
}

int mstore_open(const char *path, struct mstore **out, char *why, size_t whyn)
{
    struct mstore *s = calloc(1, sizeof *s);
    char *msg = NULL;
    int from;
    int rv;
    int rc;

    if (s != NULL) {
        s->counts = calloc(1, sizeof *s->counts);
    }
    if (s == NULL || s->counts == NULL) {
        free(s);                            /* UNTESTED: ENOMEM only. */
        rq_why(why, whyn, "out of memory"); /* UNTESTED: ENOMEM only. */
        return RQ_NOMEM;
    }
    rc = sqlite3_open_v2(path, &s->db,
                         SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE, NULL);
    if (rc != SQLITE_OK) {
        rq_why(why, whyn, "%s: %s", path,
               s->db != NULL ? sqlite3_errmsg(s->db) : sqlite3_errstr(rc));
        rv = rc == SQLITE_NOMEM ? RQ_NOMEM : RQ_IO;
        goto err_after_open;
    }
    /* WAL with synchronous=NORMAL: a commit is an append to the WAL without
     * an fsync. A power loss may lose the last commits, never consistency;
     * the Raft log holds every entry past applied_index and replays it.
     * Exclusive locking: the file is this process's alone (the data
     * directory is locked), so SQLite takes its lock once and keeps it,
     * instead of fcntl() calls around every read (an eighth of a
     * manager's time under produce load, measured with perf), and keeps
     * the WAL index in its own memory (set before WAL mode, no -shm file). */
    rc = sqlite3_exec(s->db,
                      "PRAGMA locking_mode=EXCLUSIVE; PRAGMA journal_mode=WAL; "
                      "PRAGMA synchronous=NORMAL;",
                      wal_check, NULL, &msg);
    if (rc != SQLITE_OK) {
        rq_why(why, whyn, "%s: %s", path,
               msg != NULL ? msg : sqlite3_errstr(rc));
        sqlite3_free(msg);
        rv = RQ_IO;
        goto err_after_open;
    }
    rv = schema_upgrade(s->db, true, &from, why, whyn);
    if (rv != 0) {
        char reason[256];
        snprintf(reason, sizeof reason, "%s", why != NULL ? why : "");
        rq_why(why, whyn, "%s: %s", path, reason);
        rv = rv == RQ_MALFORMED ? RQ_IO : rv;
        goto err_after_open;
    }
    if (from != 0 && from != MSTORE_SCHEMA_VERSION) {
        rq_log(RQ_INFO, "%s: schema version %d migrated to %d", path, from,
               MSTORE_SCHEMA_VERSION);
    }
    for (int i = 0; i < ST_COUNT_; i++) {
        rc = sqlite3_prepare_v3(s->db, stmt_sql[i], -1,
                                SQLITE_PREPARE_PERSISTENT, &s->st[i], NULL);
        if (rc != SQLITE_OK) {
            /* UNTESTED: ENOMEM only (the schema was checked). */
            rq_why(why, whyn, "preparing \"%s\": %s", stmt_sql[i],
                   sqlite3_errmsg(s->db));
            rv = rc == SQLITE_NOMEM ? RQ_NOMEM : RQ_IO;
            goto err_after_prepare;
        }
    }
    rv = meta_get(s, "applied_index", &s->applied);
    if (rv == 0) {
        rv = applied_crc_load(s);
    }
    if (rv != 0) {
        rq_why(why, whyn, "%s: cannot read the applied index", path);
        goto err_after_prepare;
    }
    rq_log(RQ_INFO, "opened %s applied_index=%" PRIu64, path, s->applied);
    *out = s;
    return 0;

err_after_prepare:
    statements_finalize(s);
err_after_open:
    sqlite3_close(s->db);
    free(s->counts);
    free(s);
    return rv;
}

void mstore_close(struct mstore *s)
{
    if (s == NULL) {
        return;
    }
    if (!s->broken) {
        mstore_flush(s); /* Logs its own failure. */
    }
    statements_finalize(s);
    sqlite3_close(s->db);
    free(s->batch_results);
    free(s->counts->c);
    free(s->counts->parts);
    free(s->counts);
    free(s);
}

/* ---- Transactions ---- */

/*
 * After an SQLite error: if the connection has left its transaction, SQLite
 * rolled all of it back, with the entries applied since the last flush.
 */
static void note_failure(struct mstore *s)
{
    if (s->in_txn && sqlite3_get_autocommit(s->db)) {
        s->in_txn = false;
        s->broken = true;
        rq_log(RQ_ERROR,
               "the open transaction was rolled back; applies stop until a "
               "restore or a restart replays the log");
    }
}

int mstore_flush(struct mstore *s)
{
    if (s->broken) {
        return RQ_IO;
    }
    if (!s->in_txn) {
        return 0;
    }
    int rv = run(s, ST_COMMIT);
    if (rv != 0) {
        note_failure(s);
        return rv;
    }
    s->in_txn = false;
    return 0;
}

uint64_t mstore_applied_index(const struct mstore *s)
{
    return s->applied;
}

/* ---- Apply, one function per command type ---- */

/* Each apply_* returns 0 with *result set (MSTORE_OK or a refusal), or an
 * RQ_IO/RQ_NOMEM from SQLite. A refusal writes nothing before deciding. */

static bool replicas_valid(const uint32_t *r)
{
    for (int i = 0; i < MCMD_RF; i++) {
        if (r[i] == 0) {
            return false;
        }
        for (int j = 0; j < i; j++) {
            if (r[i] == r[j]) {
                return false;
            }
        }
    }
    return true;
}

/* Looks up a topic's partition count; RQ_NOTFOUND when there is no such
 * topic. */
static int topic_partitions(const struct mstore *s, const char *name,
                            uint32_t *n)
{
    bind_text(s->st[ST_TOPIC_GET], 1, name);
    int rv = row(s, ST_TOPIC_GET);
    if (rv == 0) {
        *n = (uint32_t)col_u64(s->st[ST_TOPIC_GET], 4);
        done(s, ST_TOPIC_GET);
    }
    return rv;
}

static int apply_manager(struct mstore *s, const struct mcmd *c,
                         uint64_t *result)
{
    sqlite3_stmt *st = s->st[ST_MANAGER_UPSERT];
    bind_u64(st, 1, c->u.manager.id);
    bind_text(st, 2, c->u.manager.raft_addr);
    bind_text(st, 3, c->u.manager.http_addr);
    *result = MSTORE_OK(0);
    return run(s, ST_MANAGER_UPSERT);
}

static int broker_state_get(struct mstore *s, uint32_t id,
                            enum mbroker_state *state)
{
    bind_u64(s->st[ST_BROKER_STATE_GET], 1, id);
    int rv = row(s, ST_BROKER_STATE_GET);
    if (rv == 0) {
        *state = (enum mbroker_state)sqlite3_column_int(
            s->st[ST_BROKER_STATE_GET], 0);
        done(s, ST_BROKER_STATE_GET);
    }
    return rv;
}

/* DRAINING and REMOVING: decided by an admin, left only by an admin. */
static bool admin_state(enum mbroker_state s)
{
    return s == MBROKER_DRAINING || s == MBROKER_REMOVING;
}

/* The states liveness decides. */
static bool liveness_state(enum mbroker_state s)
{
    return s == MBROKER_ALIVE || s == MBROKER_SUSPECT || s == MBROKER_DEAD;
}

/*
 * A registration sets ALIVE, except that it does not undo an admin
 * decision: a DRAINING or REMOVING broker that restarts stays so, and a
 * REMOVED id is refused, since removal is for good; BROKER_REISSUE (a
 * broker that starts holding nothing, with a removed broker's id) makes a
 * REMOVED id ALIVE again, as a new broker.
 */
static int apply_broker_register(struct mstore *s, const struct mcmd *c,
                                 uint64_t *result)
{
    enum mbroker_state old;
    enum mbroker_state state = MBROKER_ALIVE;
    enum stmt_id id = ST_BROKER_UPDATE;
    int rv = broker_state_get(s, c->u.broker_register.id, &old);
    if (rv == RQ_NOTFOUND) {
        id = ST_BROKER_INSERT;
    } else if (rv != 0) {
        return rv;
    } else if (old == MBROKER_REMOVED && c->type != MCMD_BROKER_REISSUE) {
        *result = MSTORE_ERR(RQ_INVALID);
        return 0;
    } else if (admin_state(old)) {
        state = old;
    }
    sqlite3_stmt *st = s->st[id];
    bind_u64(st, 1, c->u.broker_register.id);
    bind_text(st, 2, c->u.broker_register.raft_addr);
    bind_text(st, 3, c->u.broker_register.http_addr);
    bind_u64(st, 4, (uint64_t)state);
    bind_u64(st, 5, c->now_ms);
    *result = MSTORE_OK(c->u.broker_register.id);
    return run(s, id);
}

static int apply_broker_state(struct mstore *s, const struct mcmd *c,
                              uint64_t *result)
{
    enum mbroker_state old;
    int rv = broker_state_get(s, c->u.broker_state.id, &old);
    if (rv == RQ_NOTFOUND) {
        *result = MSTORE_ERR(RQ_NOTFOUND);
        return 0;
    }
    if (rv != 0) {
        return rv;
    }
    *result = MSTORE_OK(0);
    if (old == c->u.broker_state.state) {
        return 0; /* Nothing changes, state_ms included. */
    }
    /* Liveness judged from an older state must not undo a drain or a
     * removal committed meanwhile. */
    if (old == MBROKER_REMOVED ||
        (admin_state(old) && liveness_state(c->u.broker_state.state))) {
        *result = MSTORE_ERR(RQ_INVALID);
        return 0;
    }
    sqlite3_stmt *st = s->st[ST_BROKER_SET_STATE];
    bind_u64(st, 1, c->u.broker_state.id);
    bind_u64(st, 2, (uint64_t)c->u.broker_state.state);
    bind_u64(st, 3, c->now_ms);
    return run(s, ST_BROKER_SET_STATE);
}

static int apply_topic_create(struct mstore *s, const struct mcmd *c,
                              uint64_t *result)
{
    const char *name = c->u.topic_create.name;
    uint32_t n = c->u.topic_create.n_partitions;
    uint32_t existing;
    uint64_t first;
    int rv = topic_partitions(s, name, &existing);
    if (rv == 0) {
        *result = MSTORE_ERR(RQ_EXISTS);
        return 0;
    }
    if (rv != RQ_NOTFOUND) {
        return rv;
    }
    for (uint32_t p = 0; p < n; p++) {
        if (!replicas_valid(c->u.topic_create.replicas[p])) {
            *result = MSTORE_ERR(RQ_INVALID);
            return 0;
        }
    }
    rv = meta_take(s, "next_group_id", n, &first);
    if (rv != 0) {
        return rv;
    }
    sqlite3_stmt *st = s->st[ST_TOPIC_INSERT];
    bind_text(st, 1, name);
    bind_u64(st, 2, c->now_ms);
    bind_u64(st, 3, c->u.topic_create.retention_bytes);
    bind_u64(st, 4, c->u.topic_create.retention_ms);
    bind_u64(st, 5, n);
    rv = run(s, ST_TOPIC_INSERT);
    st = s->st[ST_PARTITION_INSERT];
    for (uint32_t p = 0; p < n && rv == 0; p++) {
        const uint32_t *r = c->u.topic_create.replicas[p];
        bind_text(st, 1, name);
        bind_u64(st, 2, p);
        bind_u64(st, 3, first + p);
        bind_u64(st, 4, r[0]);
        bind_u64(st, 5, r[1]);
        bind_u64(st, 6, r[2]);
        rv = run(s, ST_PARTITION_INSERT);
    }
    *result = MSTORE_OK(first);
    return rv;
}

static int apply_topic_delete(struct mstore *s, const struct mcmd *c,
                              uint64_t *result)
{
    /* Offsets first: they find their rows through the consumers; the
     * groups' rows through their groups. A group goes with its topic. */
    static const enum stmt_id order[] = {
        ST_OFFSETS_DELETE,
        ST_CONSUMERS_DELETE,
        ST_PRODUCERS_DELETE,
        ST_CGROUP_MEMBERS_OF_TOPIC_DELETE,
        ST_CGROUP_OWNERS_OF_TOPIC_DELETE,
        ST_CGROUP_OFFSETS_OF_TOPIC_DELETE,
        ST_CGROUPS_OF_TOPIC_DELETE,
        ST_PARTITIONS_DELETE,
        ST_TOPIC_DELETE,
    };
    const char *name = c->u.topic_delete.name;
    uint32_t n;
    int rv = topic_partitions(s, name, &n);
    if (rv == RQ_NOTFOUND) {
        *result = MSTORE_ERR(RQ_NOTFOUND);
        return 0;
    }
    for (size_t i = 0; i < sizeof order / sizeof order[0] && rv == 0; i++) {
        bind_text(s->st[order[i]], 1, name);
        rv = run(s, order[i]);
    }
    *result = MSTORE_OK(0);
    return rv;
}

static int apply_client_register(struct mstore *s, const struct mcmd *c,
                                 uint64_t *result)
{
    bool producer = c->type == MCMD_PRODUCER_REGISTER;
    const char *topic = c->u.client_register.topic;
    uint32_t partition_id = c->u.client_register.partition_id;
    enum stmt_id ins = producer ? ST_PRODUCER_INSERT : ST_CONSUMER_INSERT;
    uint32_t n;
    uint64_t id;
    int rv = topic_partitions(s, topic, &n);
    if (rv == RQ_NOTFOUND) {
        *result = MSTORE_ERR(RQ_NOTFOUND);
        return 0;
    }
    if (rv != 0) {
        return rv;
    }
    if (partition_id != MCMD_NO_PARTITION && partition_id >= n) {
        *result = MSTORE_ERR(RQ_INVALID);
        return 0;
    }
    rv = meta_take(s, producer ? "next_producer_id" : "next_consumer_id", 1,
                   &id);
    if (rv != 0) {
        return rv;
    }
    bind_u64(s->st[ins], 1, id);
    bind_text(s->st[ins], 2, topic);
    bind_partition(s->st[ins], 3, partition_id);
    *result = MSTORE_OK(id);
    return run(s, ins);
}

/* Reads a consumer's topic; RQ_NOTFOUND for an unknown consumer. */
static int consumer_topic(const struct mstore *s, uint64_t id, char *topic)
{
    bind_u64(s->st[ST_CONSUMER_GET], 1, id);
    int rv = row(s, ST_CONSUMER_GET);
    if (rv == 0) {
        col_text(s->st[ST_CONSUMER_GET], 1, topic, MCMD_NAME_MAX + 1);
        done(s, ST_CONSUMER_GET);
    }
    return rv;
}

static int offset_get(struct mstore *s, uint64_t consumer, uint32_t p,
                      uint64_t *out)
{
    bind_u64(s->st[ST_OFFSET_GET], 1, consumer);
    bind_u64(s->st[ST_OFFSET_GET], 2, p);
    int rv = row(s, ST_OFFSET_GET);
    if (rv == 0) {
        *out = col_u64(s->st[ST_OFFSET_GET], 0);
        done(s, ST_OFFSET_GET);
    } else if (rv == RQ_NOTFOUND) {
        *out = 0; /* Never committed: the partition is read from 0. */
        rv = 0;
    }
    return rv;
}

/*
 * All or nothing: every partition and every compare-and-set is checked
 * before the first write, so a refusal leaves every offset as it was.
 */
static int apply_offset_commit(struct mstore *s, const struct mcmd *c,
                               uint64_t *result)
{
    uint64_t consumer = c->u.offset_commit.consumer_id;
    char topic[MCMD_NAME_MAX + 1];
    uint32_t n;
    int rv = consumer_topic(s, consumer, topic);
    if (rv == 0) {
        rv = topic_partitions(s, topic, &n);
    }
    if (rv == RQ_NOTFOUND) {
        *result = MSTORE_ERR(RQ_NOTFOUND);
        return 0;
    }
    if (rv != 0) {
        return rv;
    }
    for (uint32_t i = 0; i < c->u.offset_commit.n; i++) {
        const struct mcmd_offset *o = &c->u.offset_commit.offsets[i];
        uint64_t cur;
        if (o->partition_id >= n) {
            *result = MSTORE_ERR(RQ_INVALID);
            return 0;
        }
        if (o->expected == MCMD_ANY) {
            continue;
        }
        rv = offset_get(s, consumer, o->partition_id, &cur);
        if (rv != 0) {
            return rv;
        }
        if (cur != o->expected) {
            *result = MSTORE_ERR(RQ_INVALID);
            return 0;
        }
    }
    sqlite3_stmt *st = s->st[ST_OFFSET_SET];
    for (uint32_t i = 0; i < c->u.offset_commit.n && rv == 0; i++) {
        const struct mcmd_offset *o = &c->u.offset_commit.offsets[i];
        bind_u64(st, 1, consumer);
        bind_u64(st, 2, o->partition_id);
        bind_u64(st, 3, o->offset);
        rv = run(s, ST_OFFSET_SET);
    }
    if (rv == 0) {
        bind_u64(s->st[ST_CONSUMER_SET_CURSOR], 1, consumer);
        bind_u64(s->st[ST_CONSUMER_SET_CURSOR], 2, c->u.offset_commit.cursor);
        rv = run(s, ST_CONSUMER_SET_CURSOR);
    }
    *result = MSTORE_OK(0);
    return rv;
}

static int apply_partition_replicas(struct mstore *s, const struct mcmd *c,
                                    uint64_t *result)
{
    const char *topic = c->u.partition_replicas.topic;
    uint32_t p = c->u.partition_replicas.partition_id;
    const uint32_t *r = c->u.partition_replicas.replicas;
    uint32_t n;
    int rv = topic_partitions(s, topic, &n);
    if (rv == RQ_NOTFOUND) {
        *result = MSTORE_ERR(RQ_NOTFOUND);
        return 0;
    }
    if (rv != 0) {
        return rv;
    }
    if (p >= n || !replicas_valid(r)) {
        *result = MSTORE_ERR(RQ_INVALID);
        return 0;
    }
    sqlite3_stmt *st = s->st[ST_PARTITION_GET];
    bind_text(st, 1, topic);
    bind_u64(st, 2, p);
    rv = row(s, ST_PARTITION_GET);
    if (rv != 0) {
        /* The topic has n partitions, so the row exists; NOTFOUND would be
         * damage. */
        return rv == RQ_NOTFOUND ? RQ_IO : rv;
    }
    uint64_t epoch = col_u64(st, 3);
    done(s, ST_PARTITION_GET);
    if (epoch != c->u.partition_replicas.expected_epoch) {
        *result = MSTORE_ERR(RQ_INVALID);
        return 0;
    }
    st = s->st[ST_PARTITION_SET];
    bind_text(st, 1, topic);
    bind_u64(st, 2, p);
    bind_u64(st, 3, r[0]);
    bind_u64(st, 4, r[1]);
    bind_u64(st, 5, r[2]);
    *result = MSTORE_OK(0);
    return run(s, ST_PARTITION_SET);
}

/* The first 8 bytes of a token's hash, as the index key that finds its
 * row; the whole hash is then compared in constant time. */
static uint64_t token_lookup_key(const uint8_t *hash)
{
    uint64_t k = 0;
    for (int i = 0; i < 8; i++) {
        k = (k << 8) | hash[i];
    }
    return k;
}

/* A hash that some token has already is refused (RQ_EXISTS): tokens are
 * 256 random bits, so that is a replayed or forged command, and two rows
 * must never answer to one token. */
static int apply_token_create(struct mstore *s, const struct mcmd *c,
                              uint64_t *result)
{
    struct mstore_token t;
    uint64_t id;
    int rv = mstore_token_find(s, c->u.token_create.hash, &t);
    if (rv == 0) {
        *result = MSTORE_ERR(RQ_EXISTS);
        return 0;
    }
    if (rv != RQ_NOTFOUND) {
        return rv;
    }
    rv = meta_take(s, "next_token_id", 1, &id);
    if (rv != 0) {
        return rv;
    }
    sqlite3_stmt *st = s->st[ST_TOKEN_INSERT];
    bind_u64(st, 1, id);
    bind_text(st, 2, c->u.token_create.name);
    bind_u64(st, 3, token_lookup_key(c->u.token_create.hash));
    sqlite3_bind_blob(st, 4, c->u.token_create.hash, MCMD_TOKEN_HASH,
                      SQLITE_STATIC);
    bind_text(st, 5, c->u.token_create.grants);
    bind_u64(st, 6, c->now_ms);
    *result = MSTORE_OK(id);
    return run(s, ST_TOKEN_INSERT);
}

static int apply_token_revoke(struct mstore *s, const struct mcmd *c,
                              uint64_t *result)
{
    bind_u64(s->st[ST_TOKEN_EXISTS], 1, c->u.token_revoke.id);
    int rv = row(s, ST_TOKEN_EXISTS);
    if (rv == RQ_NOTFOUND) {
        *result = MSTORE_ERR(RQ_NOTFOUND);
        return 0;
    }
    if (rv != 0) {
        return rv;
    }
    done(s, ST_TOKEN_EXISTS);
    bind_u64(s->st[ST_TOKEN_DELETE], 1, c->u.token_revoke.id);
    *result = MSTORE_OK(0);
    return run(s, ST_TOKEN_DELETE);
}

/* The first uid committed stays: every leader that finds none proposes
 * one, and all but the first are no-ops. */
static int apply_cluster_uid(struct mstore *s, const struct mcmd *c,
                             uint64_t *result)
{
    uint64_t uid;
    int rv = meta_get(s, "cluster_uid", &uid);
    if (rv != 0) {
        return rv;
    }
    *result = MSTORE_OK(0);
    if (uid != 0) {
        return 0;
    }
    rv = meta_set(s, "cluster_uid", c->u.cluster_uid.uid);
    if (rv == 0) {
        s->cluster_uid = c->u.cluster_uid.uid;
    }
    return rv;
}

/* A group a broker hosts that this store never placed: recorded, and the
 * group counter moved past it so that no partition ever takes its id. */
static int apply_group_foreign(struct mstore *s, const struct mcmd *c,
                               uint64_t *result)
{
    uint64_t gid = c->u.group_foreign.group_id;
    uint64_t next;
    bind_u64(s->st[ST_PARTITION_BY_GROUP], 1, gid);
    int rv = row(s, ST_PARTITION_BY_GROUP);
    if (rv == 0) {
        done(s, ST_PARTITION_BY_GROUP);
        *result = MSTORE_ERR(RQ_EXISTS); /* Placed since it was seen. */
        return 0;
    }
    if (rv != RQ_NOTFOUND) {
        return rv;
    }
    *result = MSTORE_OK(0);
    sqlite3_stmt *st = s->st[ST_FOREIGN_INSERT];
    bind_u64(st, 1, gid);
    bind_u64(st, 2, c->u.group_foreign.broker);
    bind_u64(st, 3, c->now_ms);
    rv = run(s, ST_FOREIGN_INSERT);
    if (rv == 0) {
        rv = meta_get(s, "next_group_id", &next);
    }
    if (rv == 0 && next <= gid) {
        rv = meta_set(s, "next_group_id", gid + 1);
    }
    return rv;
}

bool mstore_group_foreign(const struct mstore *s, uint64_t group_id)
{
    bind_u64(s->st[ST_FOREIGN_GET], 1, group_id);
    if (row(s, ST_FOREIGN_GET) != 0) {
        return false;
    }
    done(s, ST_FOREIGN_GET);
    return true;
}

uint64_t mstore_cluster_uid(const struct mstore *s)
{
    return s->cluster_uid;
}

int mstore_next_group_id(const struct mstore *s, uint64_t *out)
{
    return meta_get(s, "next_group_id", out);
}

uint64_t mstore_layout_generation(const struct mstore *s)
{
    return s->layout_gen;
}

/* The consumer groups' applies, with their queries further down. */
static int apply_group_join(struct mstore *s, const struct mcmd *c,
                            uint64_t *result);
static int apply_group_leave(struct mstore *s, const struct mcmd *c,
                             uint64_t *result);
static int apply_group_commit(struct mstore *s, const struct mcmd *c,
                              uint64_t *result);
static int apply_group_admin(struct mstore *s, const struct mcmd *c,
                             uint64_t *result);

/* Whether a command may change topics, partitions or brokers
 * (mstore_layout_generation). */
static bool changes_layout(enum mcmd_type t)
{
    switch (t) {
        case MCMD_PRODUCER_REGISTER:
        case MCMD_CONSUMER_REGISTER:
        case MCMD_OFFSET_COMMIT:
        case MCMD_TOKEN_CREATE:
        case MCMD_TOKEN_REVOKE:
        case MCMD_GROUP_JOIN:
        case MCMD_GROUP_LEAVE:
        case MCMD_GROUP_COMMIT:
        case MCMD_GROUP_OFFSETS:
        case MCMD_GROUP_DELETE:
        case MCMD_CLUSTER_UID:
        case MCMD_GROUP_FOREIGN:
            return false;
        default:
            return true;
    }
}

static int apply_cmd(struct mstore *s, const struct mcmd *c, uint64_t *result)
{
    if (changes_layout(c->type)) {
        s->layout_gen++; /* Whether or not it applies, or is rolled back. */
    }
    switch (c->type) {
        case MCMD_MANAGER_ADDR:
            return apply_manager(s, c, result);
        case MCMD_BROKER_REGISTER:
        case MCMD_BROKER_REISSUE:
            return apply_broker_register(s, c, result);
        case MCMD_BROKER_STATE:
            return apply_broker_state(s, c, result);
        case MCMD_TOPIC_CREATE:
            return apply_topic_create(s, c, result);
        case MCMD_TOPIC_DELETE:
            return apply_topic_delete(s, c, result);
        case MCMD_PRODUCER_REGISTER:
        case MCMD_CONSUMER_REGISTER:
            return apply_client_register(s, c, result);
        case MCMD_OFFSET_COMMIT:
            return apply_offset_commit(s, c, result);
        case MCMD_PARTITION_REPLICAS:
            return apply_partition_replicas(s, c, result);
        case MCMD_TOKEN_CREATE:
            return apply_token_create(s, c, result);
        case MCMD_TOKEN_REVOKE:
            return apply_token_revoke(s, c, result);
        case MCMD_GROUP_JOIN:
            return apply_group_join(s, c, result);
        case MCMD_GROUP_LEAVE:
            return apply_group_leave(s, c, result);
        case MCMD_GROUP_COMMIT:
            return apply_group_commit(s, c, result);
        case MCMD_GROUP_OFFSETS:
        case MCMD_GROUP_DELETE:
            return apply_group_admin(s, c, result);
        case MCMD_CLUSTER_UID:
            return apply_cluster_uid(s, c, result);
        case MCMD_GROUP_FOREIGN:
            return apply_group_foreign(s, c, result);
    }
    /* mcmd_decode returns only known types. */
    *result = MSTORE_ERR(RQ_MALFORMED);
    return 0;
}

/* Decodes and applies one command: 0 with *@res set (a refusal, or a
 * command that does not decode, is a result), or the SQLite failure. */
static int apply_one(struct mstore *s, uint64_t index, const uint8_t *payload,
                     size_t len, uint64_t *res)
{
    struct mcmd c;
    char why[256];
    *res = MSTORE_OK(0);
    int rv = mcmd_decode(payload, len, &c, why, sizeof why);
    if (rv == RQ_MALFORMED) {
        rq_log(RQ_WARN, "entry %" PRIu64 " skipped: %s", index, why);
        *res = MSTORE_ERR(RQ_MALFORMED);
        return 0;
    }
    if (rv == 0) {
        rv = apply_cmd(s, &c, res);
        mcmd_clear(&c);
    }
    return rv;
}

/* Applies every command of the batch at @payload, each in a savepoint of
 * its own inside the entry's, so that a refusal undoes that command alone,
 * and keeps their results for mstore_batch_results(). */
static int apply_batch(struct mstore *s, uint64_t index, const uint8_t *payload,
                       size_t len)
{
    struct mbatch b;
    char why[256];
    const uint8_t *cmd;
    size_t n;

    if (mbatch_decode(payload, len, &b, why, sizeof why) != 0) {
        rq_log(RQ_WARN, "entry %" PRIu64 " skipped: %s", index, why);
        return 0;
    }
    if (b.n > s->batch_cap) {
        uint64_t *r = realloc(s->batch_results, b.n * sizeof *r);
        if (r == NULL) {
            return RQ_NOMEM; /* UNTESTED: ENOMEM only. */
        }
        s->batch_results = r;
        s->batch_cap = b.n;
    }
    for (uint32_t i = 0; mbatch_next(&b, &cmd, &n); i++) {
        uint64_t *res = &s->batch_results[i];
        int rv = run(s, ST_SAVEPOINT);
        if (rv == 0) {
            rv = apply_one(s, index, cmd, n, res);
            if (rv == 0 && MSTORE_IS_ERR(*res)) {
                rv = run(s, ST_ROLLBACK_TO);
            }
            int rl = run(s, ST_RELEASE);
            rv = rv != 0 ? rv : rl;
        }
        if (rv != 0) {
            return rv; /* The entry's savepoint undoes the rest. */
        }
    }
    s->batch_n = b.n;
    s->batch_nonce = b.nonce;
    return 0;
}

int mstore_apply(struct mstore *s, uint64_t index, const uint8_t *payload,
                 size_t len, uint64_t *result)
{
    uint64_t res = MSTORE_OK(0);
    int rv;

    s->batch_n = 0;
    if (index <= s->applied) {
        /* Replayed from the Raft log after a crash: the file has it, unless
         * the group replaced the entries it applied last. */
        if (index == s->applied && s->applied_crc != 0 &&
            entry_crc(payload, len) != s->applied_crc) {
            rq_log(RQ_ERROR,
                   "entry %" PRIu64
                   " is not the one the store applied at that index: the "
                   "store holds entries its group replaced",
                   index);
            return MSTORE_DIVERGED;
        }
        *result = MSTORE_OK(0);
        return 0;
    }
    if (s->broken) {
        return RQ_IO;
    }
    if (!s->in_txn) {
        rv = run(s, ST_BEGIN);
        if (rv != 0) {
            return rv;
        }
        s->in_txn = true;
    }
    /* The entry's savepoint: its commands and the applied index go in
     * together or not at all, so a retried entry is never applied twice. */
    rv = run(s, ST_SAVEPOINT);
    if (rv != 0) {
        note_failure(s);
        return rv;
    }
    if (mbatch_is(payload, len)) {
        rv = apply_batch(s, index, payload, len);
        res = MSTORE_OK(s->batch_n);
    } else {
        rv = apply_one(s, index, payload, len, &res);
        if (rv == 0 && MSTORE_IS_ERR(res)) {
            /* Every apply_* decides a refusal before its first write; the
             * rollback makes that hold even if one is changed to write
             * first. */
            rv = run(s, ST_ROLLBACK_TO);
        }
    }
    uint64_t crc = entry_crc(payload, len);
    if (rv == 0) {
        rv = meta_set(s, "applied_index", index);
    }
    if (rv == 0) {
        bind_text(s->st[ST_META_PUT], 1, APPLIED_CRC);
        bind_u64(s->st[ST_META_PUT], 2, crc);
        rv = run(s, ST_META_PUT);
    }
    if (rv != 0) {
        /* Undo this entry only; the burst before it stays. */
        s->batch_n = 0;
        run(s, ST_ROLLBACK_TO);
        run(s, ST_RELEASE);
        note_failure(s);
        return rv;
    }
    rv = run(s, ST_RELEASE);
    if (rv != 0) {
        s->batch_n = 0;
        note_failure(s); /* UNTESTED: RELEASE of a savepoint does no I/O. */
        return rv;
    }
    s->applied = index;
    s->applied_crc = crc;
    *result = res;
    return 0;
}

size_t mstore_batch_results(const struct mstore *s, uint64_t *nonce,
                            const uint64_t **results)
{
    *nonce = s->batch_nonce;
    *results = s->batch_results;
    return s->batch_n;
}

/* ---- Snapshots ---- */

int mstore_snapshot(struct mstore *s, uint8_t **out, size_t *len)
{
    sqlite3_int64 size = 0;
    int rv = mstore_flush(s);
    if (rv != 0) {
        return rv;
    }
    unsigned char *img = sqlite3_serialize(s->db, "main", &size, 0);
    if (img == NULL) {
        /* UNTESTED: ENOMEM or a read error. */
        return sql_fail(s->db, sqlite3_errcode(s->db), "serialize");
    }
    uint8_t *copy = malloc(size > 0 ? (size_t)size : 1);
    if (copy == NULL) {
        sqlite3_free(img); /* UNTESTED: ENOMEM only. */
        return RQ_NOMEM;
    }
    memcpy(copy, img, (size_t)size);
    sqlite3_free(img);
    *out = copy;
    *len = (size_t)size;
    return 0;
}

/* ---- Digest ---- */

/* Hashes a length and its bytes, so that no two sequences of fields run
 * into the same byte string. */
static void digest_bytes(struct sha256_ctx *h, const void *p, size_t n)
{
    uint8_t len[4] = {(uint8_t)n, (uint8_t)(n >> 8), (uint8_t)(n >> 16),
                      (uint8_t)(n >> 24)};
    sha256_update(h, sizeof len, len);
    sha256_update(h, n, p);
}

/* Hashes every row of @table, ordered by all its columns:
 * per row 'R', then per column a type tag and the value (integers and
 * floats as 8 bytes little-endian, text and blobs length-prefixed). */
static int digest_table(sqlite3 *db, const char *table, struct sha256_ctx *h)
{
    char sql[512];
    sqlite3_stmt *st = NULL;
    int rc;

    snprintf(sql, sizeof sql, "SELECT * FROM \"%s\"", table);
    if (sqlite3_prepare_v2(db, sql, -1, &st, NULL) != SQLITE_OK) {
        return sql_fail(db, sqlite3_errcode(db), "digest");
    }
    int n = sqlite3_column_count(st);
    sqlite3_finalize(st);
    size_t len = strlen(sql);
    for (int i = 0; i < n && len + 16 < sizeof sql; i++) {
        len += (size_t)snprintf(sql + len, sizeof sql - len, "%s%d",
                                i == 0 ? " ORDER BY " : ", ", i + 1);
    }
    if (sqlite3_prepare_v2(db, sql, -1, &st, NULL) != SQLITE_OK) {
        return sql_fail(db, sqlite3_errcode(db), "digest");
    }
    digest_bytes(h, table, strlen(table));
    while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
        sha256_update(h, 1, (const uint8_t *)"R");
        for (int i = 0; i < n; i++) {
            int type = sqlite3_column_type(st, i);
            uint8_t tag = (uint8_t)type;
            uint8_t v[8];
            uint64_t x = 0;
            sha256_update(h, 1, &tag);
            if (type == SQLITE_INTEGER) {
                x = (uint64_t)sqlite3_column_int64(st, i);
            } else if (type == SQLITE_FLOAT) {
                double d = sqlite3_column_double(st, i);
                memcpy(&x, &d, sizeof x);
            } else if (type == SQLITE_TEXT || type == SQLITE_BLOB) {
                const void *p = sqlite3_column_blob(st, i);
                digest_bytes(h, p != NULL ? p : "",
                             (size_t)sqlite3_column_bytes(st, i));
                continue;
            } else {
                continue; /* NULL: the tag alone. */
            }
            for (int k = 0; k < 8; k++) {
                v[k] = (uint8_t)(x >> (8 * k));
            }
            sha256_update(h, sizeof v, v);
        }
    }
    sqlite3_finalize(st);
    return rc == SQLITE_DONE ? 0 : sql_fail(db, rc, "digest");
}

int mstore_digest(struct mstore *s, uint8_t out[MSTORE_DIGEST_LEN])
{
    static const char q[] =
        "SELECT name FROM sqlite_schema WHERE type = 'table' ORDER BY name";
    sqlite3_stmt *st = NULL;
    struct sha256_ctx h;
    int rc;
    int rv = mstore_flush(s);
    if (rv != 0) {
        return rv;
    }
    if (sqlite3_prepare_v2(s->db, q, -1, &st, NULL) != SQLITE_OK) {
        return sql_fail(s->db, sqlite3_errcode(s->db), "digest");
    }
    sha256_init(&h);
    while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
        const char *name = (const char *)sqlite3_column_text(st, 0);
        rv = digest_table(s->db, name != NULL ? name : "", &h);
        if (rv != 0) {
            sqlite3_finalize(st);
            return rv;
        }
    }
    sqlite3_finalize(st);
    if (rc != SQLITE_DONE) {
        return sql_fail(s->db, rc, "digest");
    }
    sha256_digest(&h, MSTORE_DIGEST_LEN, out);
    return 0;
}

/*
 * Opens @buf as a private in-memory database. Bytes 18 and 19 of the header
 * say WAL (2) in a snapshot of our WAL-mode file; an in-memory database has
 * no WAL, so the copy says rollback journal (1) instead. The backup into
 * the file sets them back.
 */
static int scratch_open(const uint8_t *buf, size_t len, sqlite3 **out,
                        char *why, size_t whyn)
{
    sqlite3 *db = NULL;
    int rc = sqlite3_open_v2(":memory:", &db, SQLITE_OPEN_READWRITE, NULL);
    if (rc != SQLITE_OK) {
        /* UNTESTED: ENOMEM only. */
        rq_why(why, whyn, "in-memory database: %s", sqlite3_errstr(rc));
        sqlite3_close(db);
        return RQ_NOMEM;
    }
    unsigned char *copy = sqlite3_malloc64(len > 0 ? len : 1);
    if (copy == NULL) {
        sqlite3_close(db); /* UNTESTED: ENOMEM only. */
        return RQ_NOMEM;
    }
    memcpy(copy, buf, len);
    if (len >= 20 && copy[18] == 2 && copy[19] == 2) {
        copy[18] = 1;
        copy[19] = 1;
    }
    /* On failure too, SQLite frees the copy (FREEONCLOSE). */
    rc = sqlite3_deserialize(
        db, "main", copy, (sqlite3_int64)len, (sqlite3_int64)len,
        SQLITE_DESERIALIZE_FREEONCLOSE | SQLITE_DESERIALIZE_RESIZEABLE);
    if (rc != SQLITE_OK) {
        rq_why(why, whyn, "not a database: %s", sqlite3_errmsg(db));
        sqlite3_close(db);
        return RQ_MALFORMED;
    }
    *out = db;
    return 0;
}

int mstore_restore(struct mstore *s, const uint8_t *buf, size_t len, char *why,
                   size_t whyn)
{
    s->layout_gen++;
    sqlite3 *scratch = NULL;
    int from;
    int rv;

    /* A broken store has nothing worth keeping: the restore replaces it. */
    if (!s->broken) {
        rv = mstore_flush(s);
        if (rv != 0) {
            rq_why(why, whyn, "cannot commit before restoring");
            return rv;
        }
    }
    rv = scratch_open(buf, len, &scratch, why, whyn);
    if (rv != 0) {
        return rv;
    }
    /* A snapshot from a manager of an earlier release (a rolling upgrade
     * installs them) is migrated in the scratch copy, as a file would be
     * on open; the store is untouched until the copy has passed. */
    rv = schema_upgrade(scratch, false, &from, why, whyn);
    if (rv != 0) {
        char reason[256];
        snprintf(reason, sizeof reason, "%s", why != NULL ? why : "");
        rq_why(why, whyn, "snapshot: %s", reason);
        /* The copy is in memory: whatever failed there, the image is at
         * fault. */
        rv = rv == RQ_NOMEM ? RQ_NOMEM : RQ_MALFORMED;
        goto err_after_scratch;
    }
    sqlite3_backup *b = sqlite3_backup_init(s->db, "main", scratch, "main");
    if (b == NULL) {
        rq_why(why, whyn, "backup: %s", sqlite3_errmsg(s->db));
        rv = sql_fail(s->db, sqlite3_errcode(s->db), "backup init");
        goto err_after_scratch;
    }
    int rc = sqlite3_backup_step(b, -1);
    sqlite3_backup_finish(b);
    if (rc != SQLITE_DONE) {
        rq_why(why, whyn, "backup: %s", sqlite3_errstr(rc));
        rv = sql_fail(s->db, rc, "backup step");
        goto err_after_scratch;
    }
    rv = meta_get(s, "applied_index", &s->applied);
    if (rv == 0) {
        rv = applied_crc_load(s);
    }
    if (rv != 0) {
        rq_why(why, whyn, "cannot read the restored applied index");
        goto err_after_scratch;
    }
    s->broken = false;
    rq_log(RQ_INFO,
           "restored a snapshot of %zu bytes applied_index=%" PRIu64
           " of schema version %d",
           len, s->applied, from);

err_after_scratch:
    sqlite3_close(scratch);
    return rv;
}

/* ---- Queries ---- */

/* Each read_* fills one item (a struct mstore_*) from the current row. */
typedef void (*read_fn)(sqlite3_stmt *st, void *item);

static void read_broker(sqlite3_stmt *st, void *item)
{
    struct mstore_broker *b = item;
    b->id = (uint32_t)col_u64(st, 0);
    col_text(st, 1, b->raft_addr, sizeof b->raft_addr);
    col_text(st, 2, b->http_addr, sizeof b->http_addr);
    b->state = (enum mbroker_state)sqlite3_column_int(st, 3);
    b->registered_ms = col_u64(st, 4);
    b->state_ms = col_u64(st, 5);
}

static void read_manager(sqlite3_stmt *st, void *item)
{
    struct mstore_manager *m = item;
    m->id = (uint32_t)col_u64(st, 0);
    col_text(st, 1, m->raft_addr, sizeof m->raft_addr);
    col_text(st, 2, m->http_addr, sizeof m->http_addr);
}

static void read_topic(sqlite3_stmt *st, void *item)
{
    struct mstore_topic *t = item;
    col_text(st, 0, t->name, sizeof t->name);
    t->created_ms = col_u64(st, 1);
    t->retention_bytes = col_u64(st, 2);
    t->retention_ms = col_u64(st, 3);
    t->n_partitions = (uint32_t)col_u64(st, 4);
}

static void read_partition(sqlite3_stmt *st, void *item)
{
    struct mstore_partition *p = item;
    col_text(st, 0, p->topic, sizeof p->topic);
    p->partition_id = (uint32_t)col_u64(st, 1);
    p->group_id = col_u64(st, 2);
    p->epoch = col_u64(st, 3);
    for (int i = 0; i < MCMD_RF; i++) {
        p->replicas[i] = (uint32_t)col_u64(st, 4 + i);
    }
}

static void read_client(sqlite3_stmt *st, void *item)
{
    struct mstore_client *c = item;
    c->id = col_u64(st, 0);
    col_text(st, 1, c->topic, sizeof c->topic);
    c->partition_id = sqlite3_column_type(st, 2) == SQLITE_NULL
                          ? MCMD_NO_PARTITION
                          : (uint32_t)col_u64(st, 2);
    c->rr_cursor = (uint32_t)col_u64(st, 3);
}

/*
 * Runs a bound statement and collects every row into a malloc'd array of
 * @size-byte items filled by @read. Resets the statement in every case.
 */
static int collect(const struct mstore *s, enum stmt_id id, size_t size,
                   read_fn read, void **out, size_t *n)
{
    sqlite3_stmt *st = s->st[id];
    uint8_t *items = NULL;
    size_t count = 0;
    size_t cap = 0;
    int rv = 0;
    int rc;

    while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
        if (count == cap) {
            size_t ncap = cap == 0 ? 16 : cap * 2;
            uint8_t *p = realloc(items, ncap * size);
            if (p == NULL) {
                rv = RQ_NOMEM; /* UNTESTED: ENOMEM only. */
                goto err;
            }
            items = p;
            cap = ncap;
        }
        /* Zeroed first: string tails and padding are then defined, so
         * results compare with memcmp. */
        memset(items + count * size, 0, size);
        read(st, items + count * size);
        count++;
    }
    if (rc != SQLITE_DONE) {
        rv = sql_fail(s->db, rc, stmt_sql[id]);
        goto err;
    }
    done(s, id);
    *out = items;
    *n = count;
    return 0;

err:
    done(s, id);
    free(items);
    return rv;
}

/* Runs a bound single-row statement into @item; 0 or RQ_NOTFOUND. */
static int lookup(const struct mstore *s, enum stmt_id id, read_fn read,
                  void *item, size_t size)
{
    int rv = row(s, id);
    if (rv == 0) {
        memset(item, 0, size);
        read(s->st[id], item);
        done(s, id);
    }
    return rv;
}

int mstore_managers(const struct mstore *s, struct mstore_manager **out,
                    size_t *n)
{
    return collect(s, ST_MANAGERS, sizeof **out, read_manager, (void **)out, n);
}

int mstore_manager(const struct mstore *s, uint32_t id,
                   struct mstore_manager *out)
{
    bind_u64(s->st[ST_MANAGER_GET], 1, id);
    return lookup(s, ST_MANAGER_GET, read_manager, out, sizeof *out);
}

static int cmp_count(const void *a, const void *b)
{
    uint32_t x = ((const struct count *)a)->id;
    uint32_t y = ((const struct count *)b)->id;
    return x < y ? -1 : x > y;
}

static struct count *count_of(struct counts *k, uint32_t id)
{
    struct count key = {.id = id};
    return k->n > 0 ? bsearch(&key, k->c, k->n, sizeof key, cmp_count) : NULL;
}

static int cmp_partition_gid(const void *a, const void *b)
{
    uint64_t x = ((const struct mstore_partition *)a)->group_id;
    uint64_t y = ((const struct mstore_partition *)b)->group_id;
    return x < y ? -1 : x > y;
}

static int cmp_broker_id(const void *a, const void *b)
{
    uint32_t x = ((const struct mstore_broker *)a)->id;
    uint32_t y = ((const struct mstore_broker *)b)->id;
    return x < y ? -1 : x > y;
}

/* The counts of the brokers the partitions name, recounted if the
 * layout moved since. */
static int counts_fresh(const struct mstore *s)
{
    struct counts *k = s->counts;
    if (k->valid && k->gen == s->layout_gen) {
        return 0;
    }
    k->valid = false;
    k->n = 0;
    sqlite3_stmt *st = s->st[ST_PARTITION_PLACEMENT];
    int rc;
    while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
        for (int j = 0; j < MCMD_RF; j++) {
            uint32_t id = (uint32_t)col_u64(st, j);
            struct count *c = count_of(k, id);
            if (c == NULL) {
                if (k->n == k->cap) {
                    size_t cap = k->cap == 0 ? 64 : k->cap * 2;
                    struct count *x = realloc(k->c, cap * sizeof *x);
                    if (x == NULL) {
                        done(s, ST_PARTITION_PLACEMENT); /* UNTESTED */
                        return RQ_NOMEM;
                    }
                    k->c = x;
                    k->cap = cap;
                }
                k->c[k->n++] = (struct count){.id = id};
                qsort(k->c, k->n, sizeof k->c[0], cmp_count);
                c = count_of(k, id);
            }
            c->n_replicas++;
            c->n_preferred += j == 0;
        }
    }
    done(s, ST_PARTITION_PLACEMENT);
    if (rc != SQLITE_DONE) {
        return sql_fail(s->db, rc, stmt_sql[ST_PARTITION_PLACEMENT]);
    }
    k->gen = s->layout_gen;
    k->valid = true;
    return 0;
}

/* Fills in the counts of @b (@n of them). */
static int counts_fill(const struct mstore *s, struct mstore_broker *b,
                       size_t n)
{
    int rv = counts_fresh(s);
    for (size_t i = 0; i < n && rv == 0; i++) {
        const struct count *c = count_of(s->counts, b[i].id);
        b[i].n_replicas = c != NULL ? c->n_replicas : 0;
        b[i].n_preferred = c != NULL ? c->n_preferred : 0;
    }
    return rv;
}

int mstore_brokers(const struct mstore *s, struct mstore_broker **out,
                   size_t *n)
{
    int rv = collect(s, ST_BROKERS, sizeof **out, read_broker, (void **)out, n);
    if (rv == 0) {
        rv = counts_fill(s, *out, *n);
        if (rv != 0) {
            free(*out); /* UNTESTED: ENOMEM only. */
            *out = NULL;
            *n = 0;
        }
    }
    return rv;
}

const struct mstore_partition *mstore_partition_in(
    const struct mstore_partition *parts, size_t n, uint64_t group_id)
{
    struct mstore_partition key = {.group_id = group_id};
    return n > 0 ? bsearch(&key, parts, n, sizeof key, cmp_partition_gid)
                 : NULL;
}

static int cmp_topic_name(const void *key, const void *elem)
{
    return strcmp(key, ((const struct mstore_topic *)elem)->name);
}

const struct mstore_topic *mstore_topic_in(const struct mstore_topic *list,
                                           size_t n, const char *name)
{
    return n > 0 ? bsearch(name, list, n, sizeof *list, cmp_topic_name) : NULL;
}

const struct mstore_broker *mstore_broker_in(const struct mstore_broker *list,
                                             size_t n, uint32_t id)
{
    struct mstore_broker key = {.id = id};
    return n > 0 ? bsearch(&key, list, n, sizeof key, cmp_broker_id) : NULL;
}

int mstore_broker(const struct mstore *s, uint32_t id,
                  struct mstore_broker *out)
{
    bind_u64(s->st[ST_BROKER_GET], 1, id);
    int rv = lookup(s, ST_BROKER_GET, read_broker, out, sizeof *out);
    return rv == 0 ? counts_fill(s, out, 1) : rv;
}

int mstore_topics(const struct mstore *s, struct mstore_topic **out, size_t *n)
{
    return collect(s, ST_TOPICS, sizeof **out, read_topic, (void **)out, n);
}

int mstore_topic(const struct mstore *s, const char *name,
                 struct mstore_topic *out)
{
    bind_text(s->st[ST_TOPIC_GET], 1, name);
    return lookup(s, ST_TOPIC_GET, read_topic, out, sizeof *out);
}

int mstore_partitions(const struct mstore *s, const char *topic,
                      struct mstore_partition **out, size_t *n)
{
    uint32_t count;
    int rv = topic_partitions(s, topic, &count);
    if (rv != 0) {
        return rv;
    }
    bind_text(s->st[ST_PARTITIONS_OF], 1, topic);
    return collect(s, ST_PARTITIONS_OF, sizeof **out, read_partition,
                   (void **)out, n);
}

int mstore_all_partitions(const struct mstore *s, struct mstore_partition **out,
                          size_t *n)
{
    return collect(s, ST_PARTITIONS_ALL, sizeof **out, read_partition,
                   (void **)out, n);
}

int mstore_partitions_view(const struct mstore *s,
                           const struct mstore_partition **out, size_t *n)
{
    struct counts *k = s->counts;
    if (!k->parts_valid || k->parts_gen != s->layout_gen) {
        struct mstore_partition *p = NULL;
        size_t np = 0;
        int rv = mstore_all_partitions(s, &p, &np);
        if (rv != 0) {
            return rv;
        }
        if (np > 0) {
            qsort(p, np, sizeof p[0], cmp_partition_gid);
        }
        free(k->parts);
        k->parts = p;
        k->n_parts = np;
        k->parts_gen = s->layout_gen;
        k->parts_valid = true;
    }
    *out = k->parts;
    *n = k->n_parts;
    return 0;
}

int mstore_partition_by_group(const struct mstore *s, uint64_t group_id,
                              struct mstore_partition *out)
{
    bind_u64(s->st[ST_PARTITION_BY_GROUP], 1, group_id);
    return lookup(s, ST_PARTITION_BY_GROUP, read_partition, out, sizeof *out);
}

int mstore_producer(const struct mstore *s, uint64_t id,
                    struct mstore_client *out)
{
    bind_u64(s->st[ST_PRODUCER_GET], 1, id);
    return lookup(s, ST_PRODUCER_GET, read_client, out, sizeof *out);
}

int mstore_consumer(const struct mstore *s, uint64_t id,
                    struct mstore_client *out)
{
    bind_u64(s->st[ST_CONSUMER_GET], 1, id);
    return lookup(s, ST_CONSUMER_GET, read_client, out, sizeof *out);
}

static void read_position(sqlite3_stmt *st, void *item)
{
    struct mstore_position *p = item;
    p->consumer_id = col_u64(st, 0);
    col_text(st, 1, p->topic, sizeof p->topic);
    p->partition_id = (uint32_t)col_u64(st, 2);
    p->group_id = col_u64(st, 3);
    p->next_offset = col_u64(st, 4);
}

int mstore_positions(const struct mstore *s, size_t max,
                     struct mstore_position **out, size_t *n, size_t *total)
{
    sqlite3_stmt *st = s->st[ST_POSITIONS_COUNT];
    int rc = sqlite3_step(st);
    if (rc != SQLITE_ROW) {
        int rv = sql_fail(s->db, rc, stmt_sql[ST_POSITIONS_COUNT]);
        done(s, ST_POSITIONS_COUNT);
        return rv;
    }
    *total = (size_t)col_u64(st, 0);
    done(s, ST_POSITIONS_COUNT);
    bind_u64(s->st[ST_POSITIONS], 1, max);
    return collect(s, ST_POSITIONS, sizeof **out, read_position, (void **)out,
                   n);
}

int mstore_offsets(const struct mstore *s, uint64_t consumer_id,
                   struct mstore_offset **out, size_t *n)
{
    char topic[MCMD_NAME_MAX + 1];
    uint32_t count;
    int rv = consumer_topic(s, consumer_id, topic);
    if (rv == 0) {
        rv = topic_partitions(s, topic, &count);
    }
    if (rv != 0) {
        return rv;
    }
    struct mstore_offset *offs = calloc(count > 0 ? count : 1, sizeof *offs);
    if (offs == NULL) {
        return RQ_NOMEM; /* UNTESTED: ENOMEM only. */
    }
    for (uint32_t p = 0; p < count; p++) {
        offs[p].partition_id = p;
    }
    sqlite3_stmt *st = s->st[ST_OFFSETS_OF];
    int rc;
    bind_u64(st, 1, consumer_id);
    while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
        uint64_t p = col_u64(st, 0);
        if (p < count) {
            offs[p].next_offset = col_u64(st, 1);
        }
    }
    if (rc != SQLITE_DONE) {
        rv = sql_fail(s->db, rc, stmt_sql[ST_OFFSETS_OF]);
        done(s, ST_OFFSETS_OF);
        free(offs);
        return rv;
    }
    done(s, ST_OFFSETS_OF);
    *out = offs;
    *n = count;
    return 0;
}

/* ---- Consumer groups ---- */

static void read_cgroup(sqlite3_stmt *st, void *item)
{
    struct mstore_cgroup *g = item;
    col_text(st, 0, g->name, sizeof g->name);
    col_text(st, 1, g->topic, sizeof g->topic);
    g->generation = col_u64(st, 2);
    g->created_ms = col_u64(st, 3);
    g->n_members = (uint32_t)col_u64(st, 4);
}

static void read_cgroup_member(sqlite3_stmt *st, void *item)
{
    struct mstore_cgroup_member *m = item;
    col_text(st, 0, m->member_id, sizeof m->member_id);
    m->session_ms = col_u64(st, 1);
    m->joined_ms = col_u64(st, 2);
}

static void read_cgroup_owner(sqlite3_stmt *st, void *item)
{
    struct mstore_cgroup_owner *o = item;
    o->partition_id = (uint32_t)col_u64(st, 0);
    col_text(st, 1, o->member_id, sizeof o->member_id);
}

static void read_offset(sqlite3_stmt *st, void *item)
{
    struct mstore_offset *o = item;
    o->partition_id = (uint32_t)col_u64(st, 0);
    o->next_offset = col_u64(st, 1);
}

int mstore_cgroup(const struct mstore *s, const char *name,
                  struct mstore_cgroup *out)
{
    bind_text(s->st[ST_CGROUP_GET], 1, name);
    return lookup(s, ST_CGROUP_GET, read_cgroup, out, sizeof *out);
}

int mstore_cgroups(const struct mstore *s, struct mstore_cgroup **out,
                   size_t *n)
{
    return collect(s, ST_CGROUPS, sizeof **out, read_cgroup, (void **)out, n);
}

int mstore_cgroup_members(const struct mstore *s, const char *name,
                          struct mstore_cgroup_member **out, size_t *n)
{
    bind_text(s->st[ST_CGROUP_MEMBERS], 1, name);
    return collect(s, ST_CGROUP_MEMBERS, sizeof **out, read_cgroup_member,
                   (void **)out, n);
}

int mstore_cgroup_owners(const struct mstore *s, const char *name,
                         struct mstore_cgroup_owner **out, size_t *n)
{
    bind_text(s->st[ST_CGROUP_OWNERS], 1, name);
    return collect(s, ST_CGROUP_OWNERS, sizeof **out, read_cgroup_owner,
                   (void **)out, n);
}

int mstore_cgroup_offsets(const struct mstore *s, const char *name,
                          struct mstore_offset **out, size_t *n)
{
    bind_text(s->st[ST_CGROUP_OFFSETS], 1, name);
    return collect(s, ST_CGROUP_OFFSETS, sizeof **out, read_offset,
                   (void **)out, n);
}

/*
 * A group as an apply sees it: its row, its topic's partition count, its
 * members in member id order (the order cgroup_plan indexes them by), and
 * each partition's owner as an index among them.
 */
struct group_view {
    struct mstore_cgroup g;
    uint32_t n_partitions;
    struct mstore_cgroup_member *members;
    size_t n_members;
    uint32_t *owner; /* [n_partitions] */
};

static void group_view_clear(struct group_view *v)
{
    free(v->owner);
    free(v->members);
    memset(v, 0, sizeof *v);
}

static int member_cmp(const void *key, const void *item)
{
    const struct mstore_cgroup_member *m = item;
    return strcmp(key, m->member_id);
}

/* @id's index among @v's members, or CGROUP_PLAN_NONE. */
static uint32_t group_member_index(const struct group_view *v, const char *id)
{
    if (v->n_members == 0) {
        return CGROUP_PLAN_NONE; /* collect() leaves NULL for no rows. */
    }
    const struct mstore_cgroup_member *m =
        bsearch(id, v->members, v->n_members, sizeof *v->members, member_cmp);
    return m == NULL ? CGROUP_PLAN_NONE : (uint32_t)(m - v->members);
}

/* Loads group @name into @v (group_view_clear releases it): 0, RQ_NOTFOUND
 * for an unknown group, or an SQLite failure. */
static int group_view_load(const struct mstore *s, const char *name,
                           struct group_view *v)
{
    struct mstore_cgroup_owner *owners = NULL;
    size_t n_owners = 0;
    memset(v, 0, sizeof *v);
    int rv = mstore_cgroup(s, name, &v->g);
    if (rv == 0) {
        rv = topic_partitions(s, v->g.topic, &v->n_partitions);
    }
    if (rv == 0) {
        rv = mstore_cgroup_members(s, name, &v->members, &v->n_members);
    }
    if (rv == 0) {
        rv = mstore_cgroup_owners(s, name, &owners, &n_owners);
    }
    if (rv == 0) {
        v->owner =
            calloc(v->n_partitions > 0 ? v->n_partitions : 1, sizeof *v->owner);
        rv = v->owner == NULL ? RQ_NOMEM : 0;
    }
    if (rv != 0) {
        free(owners);
        group_view_clear(v);
        return rv;
    }
    for (uint32_t p = 0; p < v->n_partitions; p++) {
        v->owner[p] = CGROUP_PLAN_NONE;
    }
    for (size_t i = 0; i < n_owners; i++) {
        if (owners[i].partition_id < v->n_partitions) {
            v->owner[owners[i].partition_id] =
                group_member_index(v, owners[i].member_id);
        }
    }
    free(owners);
    return 0;
}

/*
 * A change of membership: the next generation, and the assignment
 * recomputed from the one before it (cgroup_plan_assign) over the members
 * the store holds now. *@generation gets the new generation.
 */
static int group_rebalance(struct mstore *s, const char *name,
                           uint64_t *generation)
{
    struct group_view v;
    bind_text(s->st[ST_CGROUP_NEXT_GENERATION], 1, name);
    int rv = run(s, ST_CGROUP_NEXT_GENERATION);
    if (rv == 0) {
        rv = group_view_load(s, name, &v);
    }
    if (rv != 0) {
        return rv;
    }
    rv = cgroup_plan_assign((uint32_t)v.n_members, v.owner, v.n_partitions,
                            v.owner);
    if (rv == 0) {
        bind_text(s->st[ST_CGROUP_OWNERS_DELETE], 1, name);
        rv = run(s, ST_CGROUP_OWNERS_DELETE);
    }
    sqlite3_stmt *st = s->st[ST_CGROUP_OWNER_INSERT];
    for (uint32_t p = 0; p < v.n_partitions && rv == 0; p++) {
        if (v.owner[p] == CGROUP_PLAN_NONE) {
            continue;
        }
        bind_text(st, 1, name);
        bind_u64(st, 2, p);
        bind_text(st, 3, v.members[v.owner[p]].member_id);
        rv = run(s, ST_CGROUP_OWNER_INSERT);
    }
    *generation = v.g.generation;
    group_view_clear(&v);
    return rv;
}

/* Writes the offsets of GROUP_COMMIT or GROUP_OFFSETS @c with @id (set or
 * raise). */
static int group_offsets_write(struct mstore *s, const struct mcmd *c,
                               enum stmt_id id)
{
    sqlite3_stmt *st = s->st[id];
    int rv = 0;
    for (uint32_t i = 0; i < c->u.group_offsets.n && rv == 0; i++) {
        bind_text(st, 1, c->u.group_offsets.group);
        bind_u64(st, 2, c->u.group_offsets.offsets[i].partition_id);
        bind_u64(st, 3, c->u.group_offsets.offsets[i].offset);
        rv = run(s, id);
    }
    return rv;
}

static int apply_group_join(struct mstore *s, const struct mcmd *c,
                            uint64_t *result)
{
    const char *name = c->u.group_join.group;
    struct mstore_cgroup g;
    uint32_t n;
    int rv = topic_partitions(s, c->u.group_join.topic, &n);
    if (rv == RQ_NOTFOUND) {
        *result = MSTORE_ERR(RQ_NOTFOUND);
        return 0;
    }
    if (rv == 0) {
        rv = mstore_cgroup(s, name, &g);
    }
    if (rv == RQ_NOTFOUND) {
        sqlite3_stmt *st = s->st[ST_CGROUP_INSERT];
        bind_text(st, 1, name);
        bind_text(st, 2, c->u.group_join.topic);
        bind_u64(st, 3, c->now_ms);
        rv = run(s, ST_CGROUP_INSERT);
    } else if (rv == 0 && strcmp(g.topic, c->u.group_join.topic) != 0) {
        *result = MSTORE_ERR(RQ_INVALID);
        return 0;
    } else if (rv == 0 && g.n_members >= MCMD_MAX_MEMBERS) {
        *result = MSTORE_ERR(RQ_TOOBIG);
        return 0;
    }
    if (rv != 0) {
        return rv;
    }
    sqlite3_stmt *st = s->st[ST_CGROUP_MEMBER_INSERT];
    bind_text(st, 1, name);
    bind_text(st, 2, c->u.group_join.member);
    bind_u64(st, 3, c->u.group_join.session_ms);
    bind_u64(st, 4, c->now_ms);
    int rc = sqlite3_step(st);
    done(s, ST_CGROUP_MEMBER_INSERT);
    if (rc == SQLITE_CONSTRAINT) {
        /* The group may be new: the command's savepoint undoes it. */
        *result = MSTORE_ERR(RQ_EXISTS);
        return 0;
    }
    if (rc != SQLITE_DONE) {
        return sql_fail(s->db, rc, stmt_sql[ST_CGROUP_MEMBER_INSERT]);
    }
    uint64_t generation = 0;
    rv = group_rebalance(s, name, &generation);
    *result = MSTORE_OK(generation);
    return rv;
}

static int apply_group_leave(struct mstore *s, const struct mcmd *c,
                             uint64_t *result)
{
    const char *name = c->u.group_leave.group;
    struct mstore_cgroup g;
    int rv = mstore_cgroup(s, name, &g);
    if (rv == RQ_NOTFOUND) {
        *result = MSTORE_ERR(RQ_NOTFOUND);
        return 0;
    }
    int gone = 0;
    sqlite3_stmt *st = s->st[ST_CGROUP_MEMBER_DELETE];
    for (uint32_t i = 0; i < c->u.group_leave.n && rv == 0; i++) {
        bind_text(st, 1, name);
        bind_text(st, 2, c->u.group_leave.members[i]);
        rv = run(s, ST_CGROUP_MEMBER_DELETE);
        gone += sqlite3_changes(s->db);
    }
    if (rv != 0) {
        return rv;
    }
    if (gone == 0) {
        *result = MSTORE_ERR(RQ_NOTFOUND);
        return 0;
    }
    uint64_t generation = 0;
    rv = group_rebalance(s, name, &generation);
    *result = MSTORE_OK(generation);
    return rv;
}

static int apply_group_commit(struct mstore *s, const struct mcmd *c,
                              uint64_t *result)
{
    const char *name = c->u.group_offsets.group;
    struct group_view v;
    uint32_t parts[MCMD_MAX_OFFSETS];
    char why[128];
    int rv = group_view_load(s, name, &v);
    if (rv == RQ_NOTFOUND) {
        *result = MSTORE_ERR(CGROUP_PLAN_FENCED);
        return 0;
    }
    if (rv != 0) {
        return rv;
    }
    for (uint32_t i = 0; i < c->u.group_offsets.n; i++) {
        parts[i] = c->u.group_offsets.offsets[i].partition_id;
    }
    int fenced = cgroup_plan_commit_check(
        group_member_index(&v, c->u.group_offsets.member),
        c->u.group_offsets.generation, v.g.generation, v.owner, v.n_partitions,
        parts, c->u.group_offsets.n, why, sizeof why);
    group_view_clear(&v);
    if (fenced != 0) {
        *result = MSTORE_ERR(fenced);
        return 0;
    }
    /* Never back: a commit that arrives after a later one of the same
     * member (a retry, a reordering) leaves the later offset. */
    *result = MSTORE_OK(0);
    return group_offsets_write(s, c, ST_CGROUP_OFFSET_RAISE);
}

/* GROUP_OFFSETS and GROUP_DELETE: an operator's, on a group with no
 * member. */
static int apply_group_admin(struct mstore *s, const struct mcmd *c,
                             uint64_t *result)
{
    bool del = c->type == MCMD_GROUP_DELETE;
    const char *name = del ? c->u.group_delete.group : c->u.group_offsets.group;
    struct mstore_cgroup g;
    uint32_t n;
    int rv = mstore_cgroup(s, name, &g);
    if (rv == 0) {
        rv = topic_partitions(s, g.topic, &n);
    }
    if (rv == RQ_NOTFOUND) {
        *result = MSTORE_ERR(RQ_NOTFOUND);
        return 0;
    }
    if (rv != 0) {
        return rv;
    }
    if (g.n_members > 0) {
        *result = MSTORE_ERR(RQ_EXISTS);
        return 0;
    }
    *result = MSTORE_OK(0);
    if (del) {
        static const enum stmt_id order[] = {ST_CGROUP_OWNERS_DELETE,
                                             ST_CGROUP_OFFSETS_DELETE,
                                             ST_CGROUP_DELETE};
        for (size_t i = 0; i < sizeof order / sizeof order[0] && rv == 0; i++) {
            bind_text(s->st[order[i]], 1, name);
            rv = run(s, order[i]);
        }
        return rv;
    }
    for (uint32_t i = 0; i < c->u.group_offsets.n; i++) {
        if (c->u.group_offsets.offsets[i].partition_id >= n) {
            *result = MSTORE_ERR(RQ_INVALID);
            return 0;
        }
    }
    return group_offsets_write(s, c, ST_CGROUP_OFFSET_SET);
}

/* ---- Tokens ---- */

static void read_token(sqlite3_stmt *st, void *item)
{
    struct mstore_token *t = item;
    t->id = col_u64(st, 0);
    col_text(st, 1, t->name, sizeof t->name);
    col_text(st, 2, t->grants, sizeof t->grants);
    t->created_ms = col_u64(st, 3);
}

int mstore_tokens(const struct mstore *s, struct mstore_token **out, size_t *n)
{
    return collect(s, ST_TOKENS, sizeof **out, read_token, (void **)out, n);
}

int mstore_token_find(const struct mstore *s,
                      const uint8_t hash[MCMD_TOKEN_HASH],
                      struct mstore_token *out)
{
    sqlite3_stmt *st = s->st[ST_TOKENS_BY_LOOKUP];
    int rv = RQ_NOTFOUND;
    int rc;
    bind_u64(st, 1, token_lookup_key(hash));
    /* Rows sharing the first 8 bytes of their hash are as rare as a 64-bit
     * collision; every candidate is compared whole, in constant time, so
     * the time taken says nothing about how much of a hash matched. */
    while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
        const void *h = sqlite3_column_blob(st, 4);
        if (h != NULL && sqlite3_column_bytes(st, 4) == MCMD_TOKEN_HASH &&
            memeql_sec(h, hash, MCMD_TOKEN_HASH) && rv == RQ_NOTFOUND) {
            memset(out, 0, sizeof *out);
            read_token(st, out);
            rv = 0;
        }
    }
    if (rc != SQLITE_DONE) {
        rv = sql_fail(s->db, rc, stmt_sql[ST_TOKENS_BY_LOOKUP]);
    }
    done(s, ST_TOKENS_BY_LOOKUP);
    return rv;
}

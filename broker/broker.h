/*
 * The broker process (broker.c) as its HTTP handlers (api.c) see it: the
 * configuration and the registry of the replicas it hosts. The process owns
 * the registry; handlers look replicas up, add and remove them through it.
 */
#ifndef BROKER_H
#define BROKER_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "replica.h"

struct broker_config {
    uint64_t id;
    const char *raft_addr;
    const char *raft_bind; /* Where to listen if not raft_addr; "": it. */
    const char *http_addr;
    const char *http_bind; /* Where to listen; "" means http_addr. */
    const char *data;
    const char *secret;
    uint64_t cluster_id;
    const char *managers; /* Accepted; unused until managers exist. */
    uint64_t election_ms;
    uint64_t heartbeat_ms;
    uint64_t quiet_ms;
    uint64_t quiet_heartbeat_ms;
    uint64_t quiet_election_ms;
    bool merge_produces;
    uint64_t snapshot_threshold;
    uint64_t raft_memory_bytes;
    uint64_t raft_log_memory_bytes;
    uint64_t raft_log_trailing_bytes;
    uint64_t raft_segment_size;
    uint64_t segment_bytes;
    uint64_t retention_bytes;
    uint64_t retention_ms;
    uint64_t retention_check_ms;
    uint64_t disk_reserve_bytes; /* 0: sized from the volume (disk.h). */
    uint64_t shutdown_grace_ms;  /* Leadership handover before closing. */
    uint64_t max_message_bytes;
    uint64_t http_idle_timeout_s;
    uint64_t http_max_connections;
    uint64_t auth_clock_skew_ms;
    uint64_t http_max_buffered;
    uint64_t auth_replay_cache_entries;
    const char *log_level;
    const char *log_format;
    const char *tls_cert; /* All three or none (rq_tls_check_flags). */
    const char *tls_key;
    const char *tls_ca;
};

struct broker;

const struct broker_config *broker_config(const struct broker *b);

/* The broker's metrics registry (bmetrics.h), for GET /metrics. */
struct rq_metrics *broker_metrics(struct broker *b);

/* true once shutdown has begun: handlers answer 503. */
bool broker_closing(const struct broker *b);

/* true when every replica found at start is open; else false with the
 * reason in @why. */
bool broker_ready(const struct broker *b, char *why, size_t whyn);

/*
 * Whether a produce to @r must be refused (507) because a data volume is
 * under its reserve (disk.h): this broker's, or that of another member of
 * the group as its pings said. true with the message in @why.
 */
bool broker_disk_refuses(struct broker *b, const struct replica *r, char *why,
                         size_t whyn);

/* Counts a produce refused so. */
void broker_disk_refused(struct broker *b);

/* Replicas by group, or by topic and partition; NULL if none. */
struct replica *broker_find(struct broker *b, uint64_t group_id);
/* The RPC endpoint on the Raft port (rq_rpc.h), for calls to peers. */
struct rq_rpc *broker_rpc(struct broker *b);
struct replica *broker_find_partition(struct broker *b, const char *topic,
                                      uint64_t partition_id);

/* The hosted replicas, for listing: index 0 .. broker_count() - 1. */
size_t broker_count(const struct broker *b);
struct replica *broker_at(struct broker *b, size_t i);

/*
 * Creates, saves and opens a replica for @d. 0 when created (or *existed
 * when one with the same descriptor is there already: idempotent, and a
 * preferred leader in @d replaces the one it had);
 * RQ_EXISTS if the group or the partition is hosted with another
 * descriptor, RQ_INVALID if this broker is not among the members or its
 * address differs, RQ_SHUTDOWN while that group is being removed or the
 * broker is closing, RQ_IO / RQ_RAFT when opening fails; @why says more.
 */
int broker_add(struct broker *b, const struct replica_desc *d, bool *existed,
               char *why, size_t whyn);

/*
 * Rebuilds the replica of @d's group empty, to join its group again as a
 * new member: only once the group's leader has removed this broker from
 * the group (the manager's repair does that first). A replica that failed
 * to open is closed, its files are moved aside (replica_set_aside: kept,
 * never deleted) and an empty one with @d (bootstrap false) is created and
 * opened in its place; with no replica of the group here, one is created
 * as by broker_add(). @cb runs once with 0 (@moved_to names the quarantine
 * directory, "" if nothing was moved) or an error with @why.
 *
 * Returns 0 with *@open set (and @cb not called) if the replica is open
 * already: nothing to rebuild. Errors (@cb not called): RQ_INVALID as for
 * broker_add, RQ_EXISTS if the group is hosted with another topic or
 * partition, RQ_SHUTDOWN while the replica is opening or closing or the
 * broker is closing.
 */
typedef void (*broker_rebuild_cb)(void *data, int status, const char *moved_to,
                                  const char *why);
int broker_rebuild(struct broker *b, const struct replica_desc *d, bool *open,
                   broker_rebuild_cb cb, void *data, char *why, size_t whyn);

/*
 * Closes replica @group_id and deletes its data; @cb runs once it is gone
 * (status 0 or RQ_IO). RQ_NOTFOUND if there is none, RQ_SHUTDOWN if it is
 * already closing; @cb is not called then.
 */
int broker_remove(struct broker *b, uint64_t group_id,
                  void (*cb)(void *data, int status), void *data);

#endif /* BROKER_H */

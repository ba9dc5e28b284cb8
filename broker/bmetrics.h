/*
 * The broker's metrics (broker/README.md, "Metrics"): its families in the
 * process's registry (rq_metrics.h) and each replica's children.
 *
 * Per replica, labelled {topic, partition, group}: produce and read
 * counters, bumped by the HTTP handlers as requests are answered, and the
 * Raft group's and partition log's figures, set from the replica when the
 * registry is rendered (replica_metrics_collect). Per broker: the
 * partition logs' fdatasync latency, replicas by state, the io_destroy
 * pool (rq_aio.h) and the process (rq_proc.h). HTTP requests are counted
 * by rq_http itself.
 */
#ifndef BMETRICS_H
#define BMETRICS_H

#include <stddef.h>
#include <stdint.h>

#include "rq_metrics.h"
#include "rq_proc.h"

/* A replica's children; all NULL when the broker has no metrics. */
struct bmetrics_replica {
    /* Counted as requests are answered. */
    struct rq_metric *produce_records;
    struct rq_metric *produce_bytes;
    struct rq_metric *read_records;
    struct rq_metric *read_bytes;
    /* Set when scraped. */
    struct rq_metric *term;
    struct rq_metric *commit;
    struct rq_metric *applied;
    struct rq_metric *is_leader;
    struct rq_metric *leader_changes;
    struct rq_metric *snapshots;
    struct rq_metric *raft_log_bytes;
    struct rq_metric *first_offset;
    struct rq_metric *next_offset;
    struct rq_metric *log_bytes;
    struct rq_metric *messages_sent;
    struct rq_metric *quiet;
};

/* The states raftq_broker_replicas counts, as replica_status() names
 * them. */
#define BMETRICS_STATES 6
extern const char *const bmetrics_state_names[BMETRICS_STATES];

enum bmetrics_family {
    BM_PRODUCE_RECORDS,
    BM_PRODUCE_BYTES,
    BM_READ_RECORDS,
    BM_READ_BYTES,
    BM_TERM,
    BM_COMMIT,
    BM_APPLIED,
    BM_IS_LEADER,
    BM_LEADER_CHANGES,
    BM_SNAPSHOTS,
    BM_RAFT_LOG_BYTES,
    BM_FIRST_OFFSET,
    BM_NEXT_OFFSET,
    BM_LOG_BYTES,
    BM_MESSAGES_SENT,
    BM_QUIET,
    BM_N_REPLICA_FAMILIES,
};

/* Placed by the broker; lives as long as the registry. */
struct bmetrics {
    struct rq_metrics *registry; /* Borrowed. */
    struct rq_metric_family *replica[BM_N_REPLICA_FAMILIES];
    struct rq_metric *fsync;                     /* Histogram, seconds. */
    struct rq_metric *replicas[BMETRICS_STATES]; /* By state. */
    struct rq_metric *aio_deferred;
    struct rq_metric *aio_inline;
    struct rq_metric *peers_down; /* The peer watch's reports (peerwatch.h). */
    struct rq_metric *merged_entries;  /* Merged produce entries proposed. */
    struct rq_metric *merged_produces; /* The produces in them. */
    /* The data volume (disk.h), set when scraped. */
    struct rq_metric *disk_total;
    struct rq_metric *disk_free;
    struct rq_metric *disk_reserve;
    struct rq_metric *disk_low;
    struct rq_metric *disk_refused; /* Produces refused 507. */
    struct rq_proc_metrics proc;
};

/* Registers the broker's families in @registry. 0 or RQ_NOMEM. */
int bmetrics_init(struct bmetrics *bm, struct rq_metrics *registry);

/* Takes the children of one replica (@bm may be NULL: then all NULL). */
void bmetrics_replica_open(const struct bmetrics *bm,
                           struct bmetrics_replica *rm, const char *topic,
                           uint64_t partition_id, uint64_t group_id);
/* Gives them back: the replica's series leave the renderings. */
void bmetrics_replica_close(struct bmetrics_replica *rm);

/* Counts one merged entry of @n produces proposed (replica_produce). @bm
 * may be NULL. */
void bmetrics_merged(const struct bmetrics *bm, size_t n);

#endif /* BMETRICS_H */

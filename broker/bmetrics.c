/*
 * The broker's metric families (see bmetrics.h). Names, types and help
 * texts are the table below; broker/README.md lists them for operators.
 */
#include "bmetrics.h"

#include <inttypes.h>
#include <stdio.h>
#include <string.h>

#include "rq_err.h"

#define REPLICA_LABELS                \
    {                                 \
        "topic", "partition", "group" \
    }

const char *const bmetrics_state_names[BMETRICS_STATES] = {
    "opening", "ready", "fetching", "removed", "failed", "closing",
};

/* Indexed by enum bmetrics_family. */
static const struct rq_metric_def replica_defs[BM_N_REPLICA_FAMILIES] = {
    {RQ_METRIC_COUNTER, "raftq_produce_records_total",
     "Records appended by produce requests this broker led, once committed "
     "and applied (retries answered from the deduplication table not "
     "counted).",
     REPLICA_LABELS},
    {RQ_METRIC_COUNTER, "raftq_produce_bytes_total",
     "Key and value bytes of the records counted in "
     "raftq_produce_records_total.",
     REPLICA_LABELS},
    {RQ_METRIC_COUNTER, "raftq_read_records_total",
     "Records served by record reads on this replica.", REPLICA_LABELS},
    {RQ_METRIC_COUNTER, "raftq_read_bytes_total",
     "Key and value bytes of the records counted in raftq_read_records_total.",
     REPLICA_LABELS},
    {RQ_METRIC_GAUGE, "raftq_raft_term", "Current Raft term of the replica.",
     REPLICA_LABELS},
    {RQ_METRIC_GAUGE, "raftq_raft_commit_index",
     "Highest Raft log index known committed on the replica.", REPLICA_LABELS},
    {RQ_METRIC_GAUGE, "raftq_raft_applied_index",
     "Highest Raft log index applied to the replica's partition.",
     REPLICA_LABELS},
    {RQ_METRIC_GAUGE, "raftq_raft_is_leader",
     "1 if the replica is its group's Raft leader, else 0.", REPLICA_LABELS},
    {RQ_METRIC_COUNTER, "raftq_raft_leader_changes_total",
     "Times the replica saw a new leader (another one, or one in a later "
     "term), since it was opened.",
     REPLICA_LABELS},
    {RQ_METRIC_COUNTER, "raftq_raft_snapshots_total",
     "Raft snapshots (partition manifests) the replica took since it was "
     "opened.",
     REPLICA_LABELS},
    {RQ_METRIC_GAUGE, "raftq_raft_log_bytes",
     "Estimated bytes of Raft log the replica holds in memory (entries "
     "times their recent average size).",
     REPLICA_LABELS},
    {RQ_METRIC_GAUGE, "raftq_partition_first_offset",
     "First offset the replica's partition log still holds.", REPLICA_LABELS},
    {RQ_METRIC_GAUGE, "raftq_partition_next_offset",
     "Next offset of the partition as applied on the replica (its high "
     "watermark).",
     REPLICA_LABELS},
    {RQ_METRIC_GAUGE, "raftq_partition_log_bytes",
     "Bytes of the replica's partition log segments on disk.", REPLICA_LABELS},
    {RQ_METRIC_COUNTER, "raftq_raft_messages_sent_total",
     "Raft messages (entries, heartbeats, votes and their answers) the "
     "replica handed to its transport since it was opened.",
     REPLICA_LABELS},
    {RQ_METRIC_GAUGE, "raftq_raft_quiet",
     "1 if the replica's group is idle and runs at the quiet timing "
     "(--raft-quiet-ms), else 0.",
     REPLICA_LABELS},
};

/* fdatasync of a partition segment: from a tenth of a millisecond (a
 * write-back cache) to seconds (a disk in trouble). */
static const double fsync_buckets[] = {
    0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01,
    0.025,  0.05,    0.1,    0.25,  0.5,    1,     2.5,
};

static const struct rq_metric_def fsync_def = {
    RQ_METRIC_HISTOGRAM,
    "raftq_partition_fsync_duration_seconds",
    "Time of each fdatasync of a partition log segment or index on this "
    "broker. The Raft log's own writes (libraft's, O_DIRECT and O_DSYNC "
    "through Linux AIO) cannot be seen from outside the library and are "
    "not included.",
    {NULL},
    fsync_buckets,
    sizeof fsync_buckets / sizeof fsync_buckets[0],
};

static const struct rq_metric_def replicas_def = {
    RQ_METRIC_GAUGE,
    "raftq_broker_replicas",
    "Replicas hosted by this broker, by state.",
    {"state"},
};

static const struct rq_metric_def aio_def = {
    RQ_METRIC_COUNTER,
    "raftq_aio_destroys_total",
    "Linux AIO contexts of closed Raft segments destroyed, by where: in the "
    "background pool, or in place on the loop (pool full or off).",
    {"where"},
};

static const struct rq_metric_def peers_down_def = {
    RQ_METRIC_COUNTER,
    "raftq_broker_peers_down_total",
    "Times a peer broker answered no ping for an election timeout, after "
    "which the groups it led stood for election here at once.",
    {NULL},
};

static const struct rq_metric_def disk_defs[] = {
    {RQ_METRIC_GAUGE,
     "raftq_broker_disk_total_bytes",
     "Size of the volume holding the data directory.",
     {NULL}},
    {RQ_METRIC_GAUGE,
     "raftq_broker_disk_free_bytes",
     "Bytes of that volume the broker may still write.",
     {NULL}},
    {RQ_METRIC_GAUGE,
     "raftq_broker_disk_reserve_bytes",
     "Free space kept in reserve: below it produces are refused (507).",
     {NULL}},
    {RQ_METRIC_GAUGE,
     "raftq_broker_disk_low",
     "1 while the volume is under its reserve and produces are refused.",
     {NULL}},
    {RQ_METRIC_COUNTER,
     "raftq_broker_disk_refused_total",
     "Produces refused with 507 because a replica's volume was under its "
     "reserve.",
     {NULL}},
};

static const struct rq_metric_def merged_entries_def = {
    RQ_METRIC_COUNTER,
    "raftq_broker_merged_entries_total",
    "Raft entries proposed here that carry several produce requests, which "
    "arrived while others to the same partition were in flight.",
    {NULL},
};

static const struct rq_metric_def merged_produces_def = {
    RQ_METRIC_COUNTER,
    "raftq_broker_merged_produces_total",
    "Produce requests proposed in the entries counted in "
    "raftq_broker_merged_entries_total.",
    {NULL},
};

int bmetrics_init(struct bmetrics *bm, struct rq_metrics *registry)
{
    memset(bm, 0, sizeof *bm);
    bm->registry = registry;
    for (size_t i = 0; i < BM_N_REPLICA_FAMILIES; i++) {
        bm->replica[i] = rq_metrics_add(registry, &replica_defs[i]);
        if (bm->replica[i] == NULL) {
            return RQ_NOMEM; /* UNTESTED: ENOMEM only. */
        }
    }
    bm->fsync = rq_metric_family_child(rq_metrics_add(registry, &fsync_def));
    struct rq_metric_family *states = rq_metrics_add(registry, &replicas_def);
    for (size_t i = 0; i < BMETRICS_STATES; i++) {
        const char *v[] = {bmetrics_state_names[i]};
        bm->replicas[i] = rq_metric_get(states, v);
    }
    struct rq_metric_family *aio = rq_metrics_add(registry, &aio_def);
    const char *pool[] = {"pool"};
    const char *inline_[] = {"inline"};
    bm->aio_deferred = rq_metric_get(aio, pool);
    bm->aio_inline = rq_metric_get(aio, inline_);
    bm->peers_down =
        rq_metric_family_child(rq_metrics_add(registry, &peers_down_def));
    bm->merged_entries =
        rq_metric_family_child(rq_metrics_add(registry, &merged_entries_def));
    bm->merged_produces =
        rq_metric_family_child(rq_metrics_add(registry, &merged_produces_def));
    struct rq_metric **disk[] = {&bm->disk_total, &bm->disk_free,
                                 &bm->disk_reserve, &bm->disk_low,
                                 &bm->disk_refused};
    for (size_t i = 0; i < sizeof disk / sizeof disk[0]; i++) {
        *disk[i] =
            rq_metric_family_child(rq_metrics_add(registry, &disk_defs[i]));
        if (*disk[i] == NULL) {
            return RQ_NOMEM; /* UNTESTED: ENOMEM only. */
        }
    }
    if (bm->fsync == NULL || bm->replicas[BMETRICS_STATES - 1] == NULL ||
        bm->aio_inline == NULL || bm->peers_down == NULL ||
        bm->merged_entries == NULL || bm->merged_produces == NULL) {
        return RQ_NOMEM; /* UNTESTED: ENOMEM only. */
    }
    return rq_proc_metrics_init(&bm->proc, registry);
}

/* @rm's children in the order of enum bmetrics_family. */
static void slots_of(struct bmetrics_replica *rm,
                     struct rq_metric **slots[BM_N_REPLICA_FAMILIES])
{
    struct rq_metric **all[BM_N_REPLICA_FAMILIES] = {
        &rm->produce_records, &rm->produce_bytes,  &rm->read_records,
        &rm->read_bytes,      &rm->term,           &rm->commit,
        &rm->applied,         &rm->is_leader,      &rm->leader_changes,
        &rm->snapshots,       &rm->raft_log_bytes, &rm->first_offset,
        &rm->next_offset,     &rm->log_bytes,      &rm->messages_sent,
        &rm->quiet,
    };
    memcpy(slots, all, sizeof all);
}

void bmetrics_replica_open(const struct bmetrics *bm,
                           struct bmetrics_replica *rm, const char *topic,
                           uint64_t partition_id, uint64_t group_id)
{
    char partition[24];
    char group[24];
    struct rq_metric **slots[BM_N_REPLICA_FAMILIES];

    memset(rm, 0, sizeof *rm);
    if (bm == NULL) {
        return;
    }
    slots_of(rm, slots);
    snprintf(partition, sizeof partition, "%" PRIu64, partition_id);
    snprintf(group, sizeof group, "%" PRIu64, group_id);
    const char *values[] = {topic, partition, group};
    for (size_t i = 0; i < BM_N_REPLICA_FAMILIES; i++) {
        *slots[i] = rq_metric_get(bm->replica[i], values);
    }
}

void bmetrics_replica_close(struct bmetrics_replica *rm)
{
    struct rq_metric **slots[BM_N_REPLICA_FAMILIES];
    slots_of(rm, slots);
    for (size_t i = 0; i < BM_N_REPLICA_FAMILIES; i++) {
        rq_metric_put(*slots[i]);
        *slots[i] = NULL;
    }
}

void bmetrics_merged(const struct bmetrics *bm, size_t n)
{
    if (bm != NULL) {
        rq_metric_add(bm->merged_entries, 1);
        rq_metric_add(bm->merged_produces, (double)n);
    }
}

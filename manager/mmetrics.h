/*
 * The manager's metrics (manager/README.md, "Metrics"): its families in
 * the process's registry (rq_metrics.h), set when scraped.
 *
 * Every manager reports its own Raft group (group="meta"), its request
 * counters, its routing cache's size and, from its own copy of the store,
 * topics, partitions and each broker's state. What only the leader knows
 * (heartbeats) or computes from its fresh routing cache is reported by the
 * ready leader alone, so that summing over managers counts each once:
 * heartbeat ages, partitions' high watermarks, consumer lag and consumer
 * group lag. Consumer lag covers at most MMETRICS_LAG_MAX (consumer,
 * partition) pairs, the newest consumers first; raftq_consumer_lag_omitted
 * counts the rest. Group lag has the same cap over (group, partition)
 * pairs, groups in name order, and raftq_group_lag_omitted. High
 * watermarks come per topic (their sum) and per partition for at most
 * MMETRICS_PARTITIONS_MAX partitions, the oldest first (at 100,000
 * partitions the page was 6.7 MB); raftq_partition_high_watermark_omitted
 * counts the rest.
 * HTTP requests are counted by rq_http itself.
 */
#ifndef MMETRICS_H
#define MMETRICS_H

#include <stdint.h>

#include "rq_metrics.h"

#define MMETRICS_LAG_MAX 1000
#define MMETRICS_PARTITIONS_MAX 10000

struct mcore;
struct mmetrics;

/* Registers the families in @registry (borrowed; outlives @out). 0 or
 * RQ_NOMEM. */
int mmetrics_new(struct mcore *core, struct rq_metrics *registry,
                 struct mmetrics **out);
/* Counts @n messages of @topic that a consume skipped because retention
 * had removed them (raftq_manager_consume_skipped_total). NULL is a no-op. */
void mmetrics_consume_skipped(struct mmetrics *mm, const char *topic,
                              uint64_t n);
/* Before the registry is freed. NULL is a no-op. */
void mmetrics_free(struct mmetrics *mm);

#endif /* MMETRICS_H */

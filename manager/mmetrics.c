/*
 * The manager's metric families and their collect callback (see
 * mmetrics.h). Families filled afresh at every scrape (brokers, the
 * leader's views) are cleared and refilled; the rest hold one child each.
 */
#include "mmetrics.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "liveness.h"
#include "mcore.h"
#include "mstore.h"
#include "routing.h"
#include "rq_err.h"
#include "rq_log.h"
#include "rq_proc.h"

#define LOG_TAG "mmetrics"

/* The label value naming the manager's own Raft group. */
#define META_GROUP "meta"

enum {
    F_TERM,
    F_COMMIT,
    F_APPLIED,
    F_IS_LEADER,
    F_LEADER_CHANGES,
    F_SNAPSHOTS,
    F_PROPOSALS,
    F_PROPOSAL_ERRORS,
    F_FORWARDED,
    F_PRODUCED,
    F_CONSUMED,
    F_READ_BARRIERS,
    F_READ_INDEX,
    F_FORWARDED_INTERNAL,
    F_PRODUCE_CALLS,
    F_CONSUME_ADVANCES,
    F_CONSUME_READS,
    F_PROPOSAL_BATCHES,
    F_BATCHED_PROPOSALS,
    F_BROKER_RETRIES,
    F_RECONCILE_ROUNDS,
    F_REPAIR_ROUNDS,
    F_TRAFFIC_ROUNDS,
    F_RECONCILE_SECONDS,
    F_REPAIR_SECONDS,
    F_TRAFFIC_SECONDS,
    F_ROUTES,
    F_TOPICS,
    F_PARTITIONS,
    F_BROKER_STATE,
    F_HEARTBEAT_AGE,
    F_HIGH_WATERMARK,
    F_HIGH_WATERMARK_OMITTED,
    F_TOPIC_HIGH_WATERMARK,
    F_LAG,
    F_LAG_OMITTED,
    F_GROUP_LAG,
    F_GROUP_LAG_OMITTED,
    F_CONSUME_SKIPPED,
    F_COUNT,
};

#define GROUP_LABEL \
    {               \
        "group"     \
    }

static const struct rq_metric_def defs[F_COUNT] = {
    [F_TERM] = {RQ_METRIC_GAUGE, "raftq_raft_term",
                "Current Raft term of the managers' group on this manager.",
                GROUP_LABEL},
    [F_COMMIT] = {RQ_METRIC_GAUGE, "raftq_raft_commit_index",
                  "Highest Raft log index known committed on this manager.",
                  GROUP_LABEL},
    [F_APPLIED] = {RQ_METRIC_GAUGE, "raftq_raft_applied_index",
                   "Highest Raft log index applied to this manager's store.",
                   GROUP_LABEL},
    [F_IS_LEADER] = {RQ_METRIC_GAUGE, "raftq_raft_is_leader",
                     "1 if this manager is the Raft leader, else 0.",
                     GROUP_LABEL},
    [F_LEADER_CHANGES] = {RQ_METRIC_COUNTER, "raftq_raft_leader_changes_total",
                          "Times this manager saw a new leader (another one, "
                          "or one in a later term) since it started.",
                          GROUP_LABEL},
    [F_SNAPSHOTS] = {RQ_METRIC_COUNTER, "raftq_raft_snapshots_total",
                     "Raft snapshots of the store this manager took since it "
                     "started.",
                     GROUP_LABEL},
    [F_PROPOSALS] = {RQ_METRIC_COUNTER,
                     "raftq_manager_proposals_total",
                     "Commands this manager proposed to the managers' group.",
                     {NULL}},
    [F_PROPOSAL_ERRORS] = {RQ_METRIC_COUNTER,
                           "raftq_manager_proposal_errors_total",
                           "Proposals refused or failed before being applied.",
                           {NULL}},
    [F_FORWARDED] = {RQ_METRIC_COUNTER,
                     "raftq_manager_forwarded_total",
                     "Requests this manager forwarded to the leader manager.",
                     {NULL}},
    [F_PRODUCED] = {RQ_METRIC_COUNTER,
                    "raftq_manager_produced_total",
                    "Messages produced through this manager (single and "
                    "batch), once acknowledged by their brokers.",
                    {NULL}},
    [F_CONSUMED] = {RQ_METRIC_COUNTER,
                    "raftq_manager_consumed_total",
                    "Messages delivered by GET /consumer/consume on this "
                    "manager.",
                    {NULL}},
    [F_READ_BARRIERS] = {RQ_METRIC_COUNTER,
                         "raftq_manager_read_barriers_total",
                         "Barriers this manager issued as leader for "
                         "consistent reads.",
                         {NULL}},
    [F_READ_INDEX] = {RQ_METRIC_COUNTER,
                      "raftq_manager_read_index_total",
                      "Read indexes this manager served as leader.",
                      {NULL}},
    [F_FORWARDED_INTERNAL] = {RQ_METRIC_COUNTER,
                              "raftq_manager_forwarded_internal_total",
                              "Of the requests forwarded to the leader "
                              "manager, those to /internal routes (a "
                              "broker's registration and heartbeats sent "
                              "to this follower).",
                              {NULL}},
    [F_PRODUCE_CALLS] = {RQ_METRIC_COUNTER,
                         "raftq_manager_produce_calls_total",
                         "Calls to brokers that carried single-record "
                         "produces: the produces that arrive for a "
                         "partition while its call is out go together in "
                         "the next.",
                         {NULL}},
    [F_CONSUME_ADVANCES] = {RQ_METRIC_COUNTER,
                            "raftq_manager_consume_advances_total",
                            "Offset advances GET /consumer/consume proposed "
                            "as leader: the consumes waiting behind one for "
                            "the same partition share its read and its "
                            "advance.",
                            {NULL}},
    [F_CONSUME_READS] = {RQ_METRIC_COUNTER,
                         "raftq_manager_consume_reads_total",
                         "Broker reads GET /consumer/consume made as leader: "
                         "one brings a batch, and the consumer's next "
                         "consumes take their records from it.",
                         {NULL}},
    [F_PROPOSAL_BATCHES] = {RQ_METRIC_COUNTER,
                            "raftq_manager_proposal_batches_total",
                            "Raft entries that carried several metadata "
                            "writes proposed in one loop turn (a lone write "
                            "is an entry of its own).",
                            {NULL}},
    [F_BATCHED_PROPOSALS] = {RQ_METRIC_COUNTER,
                             "raftq_manager_batched_proposals_total",
                             "Metadata writes proposed inside those batch "
                             "entries.",
                             {NULL}},
    [F_BROKER_RETRIES] = {RQ_METRIC_COUNTER,
                          "raftq_manager_broker_call_retries_total",
                          "Pauses of 100 ms before a call to the brokers "
                          "(a produce or a read) is tried again: no leader "
                          "yet, a broker unreachable, every replica asked.",
                          {NULL}},
    [F_RECONCILE_ROUNDS] = {RQ_METRIC_COUNTER,
                            "raftq_manager_reconcile_rounds_total",
                            "Reconcile rounds this manager ran as leader "
                            "(every partition against the brokers' reports).",
                            {NULL}},
    [F_REPAIR_ROUNDS] = {RQ_METRIC_COUNTER,
                         "raftq_manager_repair_rounds_total",
                         "Repair rounds this manager ran as leader (every "
                         "partition against the brokers' states).",
                         {NULL}},
    [F_TRAFFIC_ROUNDS] = {RQ_METRIC_COUNTER,
                          "raftq_manager_traffic_rounds_total",
                          "Samples of every topic's traffic this manager "
                          "took as leader (every partition's high "
                          "watermark, for the status page).",
                          {NULL}},
    [F_RECONCILE_SECONDS] = {RQ_METRIC_COUNTER,
                             "raftq_manager_reconcile_round_seconds_total",
                             "Time the reconcile rounds took (the loop "
                             "serves nothing else meanwhile).",
                             {NULL}},
    [F_REPAIR_SECONDS] = {RQ_METRIC_COUNTER,
                          "raftq_manager_repair_round_seconds_total",
                          "Time the repair rounds took.",
                          {NULL}},
    [F_TRAFFIC_SECONDS] = {RQ_METRIC_COUNTER,
                           "raftq_manager_traffic_round_seconds_total",
                           "Time the traffic samples took.",
                           {NULL}},
    [F_ROUTES] = {RQ_METRIC_GAUGE,
                  "raftq_manager_routes",
                  "Partition groups in this manager's routing cache.",
                  {NULL}},
    [F_TOPICS] = {RQ_METRIC_GAUGE,
                  "raftq_topics",
                  "Topics in the cluster.",
                  {NULL}},
    [F_PARTITIONS] = {RQ_METRIC_GAUGE,
                      "raftq_partitions",
                      "Partitions of every topic in the cluster.",
                      {NULL}},
    [F_BROKER_STATE] = {RQ_METRIC_GAUGE,
                        "raftq_broker_state",
                        "1 for each registered broker's state in the "
                        "managers' store, 0 for its other states.",
                        {"broker", "state"}},
    [F_HEARTBEAT_AGE] = {RQ_METRIC_GAUGE,
                         "raftq_broker_heartbeat_age_seconds",
                         "Time since each broker's last heartbeat (leader "
                         "manager only; brokers heard from since it leads).",
                         {"broker"}},
    [F_HIGH_WATERMARK] = {RQ_METRIC_GAUGE,
                          "raftq_partition_high_watermark",
                          "Next offset of each partition as its brokers last "
                          "reported it (leader manager only; at most 10000 "
                          "series, the oldest partitions first).",
                          {"topic", "partition"}},
    [F_HIGH_WATERMARK_OMITTED] = {RQ_METRIC_GAUGE,
                                  "raftq_partition_high_watermark_omitted",
                                  "Partitions left out of "
                                  "raftq_partition_high_watermark by its cap "
                                  "(leader manager only).",
                                  {NULL}},
    [F_TOPIC_HIGH_WATERMARK] = {RQ_METRIC_GAUGE,
                                "raftq_topic_high_watermark_sum",
                                "The next offsets of a topic's partitions "
                                "added up: records appended to it since it "
                                "was created, whose rate() is its produce rate "
                                "(leader manager only).",
                                {"topic"}},
    [F_LAG] = {RQ_METRIC_GAUGE,
               "raftq_consumer_lag",
               "Messages a consumer has not read yet on a partition: the "
               "partition's high watermark minus the consumer's committed "
               "offset (leader manager only; at most 1000 series, newest "
               "consumers first).",
               {"topic", "consumer", "partition"}},
    [F_LAG_OMITTED] = {RQ_METRIC_GAUGE,
                       "raftq_consumer_lag_omitted",
                       "Consumer and partition pairs left out of "
                       "raftq_consumer_lag by its cap (leader manager only).",
                       {NULL}},
    [F_GROUP_LAG] = {RQ_METRIC_GAUGE,
                     "raftq_group_lag",
                     "Records a consumer group has not committed yet on a "
                     "partition: the partition's high watermark minus the "
                     "group's committed offset (leader manager only; at most "
                     "1000 series, groups in name order).",
                     {"group", "topic", "partition"}},
    [F_GROUP_LAG_OMITTED] = {RQ_METRIC_GAUGE,
                             "raftq_group_lag_omitted",
                             "Group and partition pairs left out of "
                             "raftq_group_lag by its cap (leader manager "
                             "only).",
                             {NULL}},
    [F_CONSUME_SKIPPED] = {RQ_METRIC_COUNTER,
                           "raftq_manager_consume_skipped_total",
                           "Messages removed by retention before a consumer "
                           "read them, skipped by GET /consumer/consume on "
                           "this manager.",
                           {"topic"}},
};

/* Every state a broker may be in, for raftq_broker_state. */
static const enum mbroker_state broker_states[] = {
    MBROKER_ALIVE,    MBROKER_SUSPECT,  MBROKER_DEAD,
    MBROKER_DRAINING, MBROKER_REMOVING, MBROKER_REMOVED,
};

struct mmetrics {
    struct mcore *core;
    struct rq_metrics *registry;
    struct rq_metric_family *f[F_COUNT];
    struct rq_metric *raft[F_SNAPSHOTS + 1]; /* F_TERM .. F_SNAPSHOTS. */
    struct rq_proc_metrics proc;
};

static struct rq_metric *child(struct rq_metric_family *f, const char *a,
                               const char *b, const char *c)
{
    const char *v[] = {a, b, c};
    return rq_metric_get(f, v);
}

static void set_u64(struct rq_metric *c, uint64_t v)
{
    rq_metric_set(c, (double)v);
}

static void collect_brokers(struct mmetrics *mm, bool leading)
{
    struct mcore *core = mm->core;
    struct mstore_broker *list;
    size_t n;
    char id[16];

    if (mstore_brokers(mcore_store(core), &list, &n) != 0) {
        return; /* The store logged why. */
    }
    uint64_t now = mcore_now(core);
    for (size_t i = 0; i < n; i++) {
        snprintf(id, sizeof id, "%" PRIu32, list[i].id);
        for (size_t s = 0; s < sizeof broker_states / sizeof broker_states[0];
             s++) {
            rq_metric_set(child(mm->f[F_BROKER_STATE], id,
                                mbroker_state_name(broker_states[s]), NULL),
                          list[i].state == broker_states[s] ? 1 : 0);
        }
        const struct liveness_broker *lb =
            leading ? liveness_broker(mcore_liveness(core), list[i].id) : NULL;
        if (lb != NULL && lb->heard) {
            rq_metric_set(child(mm->f[F_HEARTBEAT_AGE], id, NULL, NULL),
                          (double)(now - lb->last_ms) / 1000.0);
        }
    }
    free(list);
}

static void collect_partitions(struct mmetrics *mm, bool leading)
{
    struct mcore *core = mm->core;
    struct mstore_topic *topics;
    const struct mstore_partition *parts;
    size_t nt;
    size_t n;
    size_t shown = 0;
    char pid[16];

    if (mstore_topics(mcore_store(core), &topics, &nt) != 0) {
        return;
    }
    rq_metric_set(rq_metric_family_child(mm->f[F_TOPICS]), (double)nt);
    uint64_t *sums = calloc(nt + 1, sizeof *sums);
    if (sums == NULL ||
        mstore_partitions_view(mcore_store(core), &parts, &n) != 0) {
        free(sums);
        free(topics);
        return;
    }
    rq_metric_set(rq_metric_family_child(mm->f[F_PARTITIONS]), (double)n);
    /* The view is in group id order: the oldest partitions first. */
    for (size_t i = 0; leading && i < n; i++) {
        const struct route *r =
            routing_get(mcore_routing(core), parts[i].group_id);
        if (r == NULL) {
            continue; /* No broker has reported it yet. */
        }
        const struct mstore_topic *t =
            mstore_topic_in(topics, nt, parts[i].topic);
        if (t != NULL) {
            sums[t - topics] += r->high_watermark;
        }
        if (shown++ < MMETRICS_PARTITIONS_MAX) {
            snprintf(pid, sizeof pid, "%" PRIu32, parts[i].partition_id);
            set_u64(child(mm->f[F_HIGH_WATERMARK], parts[i].topic, pid, NULL),
                    r->high_watermark);
        }
    }
    if (leading) {
        for (size_t i = 0; i < nt; i++) {
            set_u64(child(mm->f[F_TOPIC_HIGH_WATERMARK], topics[i].name, NULL,
                          NULL),
                    sums[i]);
        }
        set_u64(rq_metric_get(mm->f[F_HIGH_WATERMARK_OMITTED], NULL),
                shown > MMETRICS_PARTITIONS_MAX
                    ? shown - MMETRICS_PARTITIONS_MAX
                    : 0);
    }
    free(sums);
    free(topics);
}

static void collect_lag(struct mmetrics *mm)
{
    struct mcore *core = mm->core;
    struct mstore_position *pos;
    size_t n;
    size_t total;
    char consumer[24];
    char pid[16];

    if (mstore_positions(mcore_store(core), MMETRICS_LAG_MAX, &pos, &n,
                         &total) != 0) {
        return;
    }
    for (size_t i = 0; i < n; i++) {
        const struct route *r =
            routing_get(mcore_routing(core), pos[i].group_id);
        if (r == NULL) {
            continue; /* High watermark unknown: no figure beats a wrong one. */
        }
        snprintf(consumer, sizeof consumer, "%" PRIu64, pos[i].consumer_id);
        snprintf(pid, sizeof pid, "%" PRIu32, pos[i].partition_id);
        uint64_t hw = r->high_watermark;
        set_u64(child(mm->f[F_LAG], pos[i].topic, consumer, pid),
                hw > pos[i].next_offset ? hw - pos[i].next_offset : 0);
    }
    set_u64(rq_metric_get(mm->f[F_LAG_OMITTED], NULL), total - n);
    free(pos);
}

/* The committed offset of @p among @offs (n of them, by partition), 0 for
 * none. */
static uint64_t committed_of(const struct mstore_offset *offs, size_t n,
                             uint32_t p)
{
    for (size_t i = 0; i < n; i++) {
        if (offs[i].partition_id == p) {
            return offs[i].next_offset;
        }
    }
    return 0;
}

static void collect_group_lag(struct mmetrics *mm)
{
    const struct mstore *s = mcore_store(mm->core);
    struct mstore_cgroup *gs;
    size_t n_groups;
    size_t shown = 0;
    size_t omitted = 0;
    char pid[16];

    if (mstore_cgroups(s, &gs, &n_groups) != 0) {
        return;
    }
    for (size_t g = 0; g < n_groups; g++) {
        struct mstore_partition *parts = NULL;
        struct mstore_offset *offs = NULL;
        size_t n_parts = 0;
        size_t n_offs = 0;
        if (mstore_partitions(s, gs[g].topic, &parts, &n_parts) != 0 ||
            mstore_cgroup_offsets(s, gs[g].name, &offs, &n_offs) != 0) {
            free(parts);
            continue;
        }
        for (size_t i = 0; i < n_parts; i++) {
            const struct route *r =
                routing_get(mcore_routing(mm->core), parts[i].group_id);
            if (r == NULL) {
                continue; /* High watermark unknown. */
            }
            if (shown == MMETRICS_LAG_MAX) {
                omitted++;
                continue;
            }
            uint64_t c = committed_of(offs, n_offs, parts[i].partition_id);
            snprintf(pid, sizeof pid, "%" PRIu32, parts[i].partition_id);
            set_u64(child(mm->f[F_GROUP_LAG], gs[g].name, gs[g].topic, pid),
                    r->high_watermark > c ? r->high_watermark - c : 0);
            shown++;
        }
        free(offs);
        free(parts);
    }
    set_u64(rq_metric_get(mm->f[F_GROUP_LAG_OMITTED], NULL), omitted);
    free(gs);
}

static void on_collect(void *data)
{
    struct mmetrics *mm = data;
    struct mcore *core = mm->core;
    struct rq_node_info info;
    struct rq_node_counters counters;

    mcore_node_info(core, &info);
    mcore_node_counters(core, &counters);
    set_u64(mm->raft[F_TERM], info.term);
    set_u64(mm->raft[F_COMMIT], info.commit);
    set_u64(mm->raft[F_APPLIED], info.applied);
    rq_metric_set(mm->raft[F_IS_LEADER], info.role == RQ_ROLE_LEADER ? 1 : 0);
    set_u64(mm->raft[F_LEADER_CHANGES], counters.leader_changes);
    set_u64(mm->raft[F_SNAPSHOTS], counters.snapshots);

    const struct manager_stats *st = mcore_stats(core);
    const uint64_t stats[] = {
        st->proposals,         st->proposal_errors,    st->forwarded,
        st->produced,          st->consumed,           st->read_barriers,
        st->read_index,        st->forwarded_internal, st->produce_calls,
        st->consume_advances,  st->consume_reads,      st->proposal_batches,
        st->batched_proposals, st->broker_retries,     st->reconcile_rounds,
        st->repair_rounds,     st->traffic_rounds,
    };
    for (size_t i = 0; i < sizeof stats / sizeof stats[0]; i++) {
        set_u64(rq_metric_family_child(mm->f[F_PROPOSALS + i]), stats[i]);
    }
    rq_metric_set(rq_metric_family_child(mm->f[F_RECONCILE_SECONDS]),
                  (double)st->reconcile_us / 1e6);
    rq_metric_set(rq_metric_family_child(mm->f[F_REPAIR_SECONDS]),
                  (double)st->repair_us / 1e6);
    rq_metric_set(rq_metric_family_child(mm->f[F_TRAFFIC_SECONDS]),
                  (double)st->traffic_us / 1e6);
    set_u64(rq_metric_family_child(mm->f[F_ROUTES]),
            routing_count(mcore_routing(core)));

    /* The families filled afresh. */
    static const int fresh[] = {
        F_BROKER_STATE,         F_HEARTBEAT_AGE,
        F_HIGH_WATERMARK,       F_HIGH_WATERMARK_OMITTED,
        F_TOPIC_HIGH_WATERMARK, F_LAG,
        F_LAG_OMITTED,          F_GROUP_LAG,
        F_GROUP_LAG_OMITTED};
    for (size_t i = 0; i < sizeof fresh / sizeof fresh[0]; i++) {
        rq_metric_family_clear(mm->f[fresh[i]]);
    }
    bool leading = info.ready && !mcore_closing(core);
    collect_brokers(mm, leading);
    collect_partitions(mm, leading);
    if (leading) {
        collect_lag(mm);
        collect_group_lag(mm);
    }
}

int mmetrics_new(struct mcore *core, struct rq_metrics *registry,
                 struct mmetrics **out)
{
    struct mmetrics *mm = calloc(1, sizeof *mm);
    if (mm == NULL) {
        return RQ_NOMEM; /* UNTESTED: ENOMEM only. */
    }
    mm->core = core;
    mm->registry = registry;
    for (size_t i = 0; i < F_COUNT; i++) {
        mm->f[i] = rq_metrics_add(registry, &defs[i]);
        if (mm->f[i] == NULL) {
            free(mm); /* UNTESTED: ENOMEM only. */
            return RQ_NOMEM;
        }
    }
    for (size_t i = 0; i <= F_SNAPSHOTS; i++) {
        mm->raft[i] = child(mm->f[i], META_GROUP, NULL, NULL);
    }
    int rv = rq_proc_metrics_init(&mm->proc, registry);
    if (rv == 0) {
        rv = rq_metrics_on_collect(registry, on_collect, mm);
    }
    if (rv != 0) {
        rq_proc_metrics_close(&mm->proc, registry); /* UNTESTED: ENOMEM. */
        free(mm);
        return rv;
    }
    *out = mm;
    return 0;
}

void mmetrics_consume_skipped(struct mmetrics *mm, const char *topic,
                              uint64_t n)
{
    struct rq_metric *c =
        mm != NULL ? child(mm->f[F_CONSUME_SKIPPED], topic, NULL, NULL) : NULL;
    if (c == NULL || n == 0) {
        rq_metric_put(c);
        return;
    }
    /* A topic's first count keeps its reference, so the series lives as
     * long as the registry; later counts give theirs back. */
    bool known = rq_metric_value(c) > 0;
    rq_metric_add(c, (double)n);
    if (known) {
        rq_metric_put(c);
    }
}

void mmetrics_free(struct mmetrics *mm)
{
    if (mm == NULL) {
        return;
    }
    rq_metrics_off_collect(mm->registry, on_collect, mm);
    rq_proc_metrics_close(&mm->proc, mm->registry);
    free(mm);
}

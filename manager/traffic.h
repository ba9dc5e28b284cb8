/*
 * Each topic's traffic over the last minutes, as the status page draws it
 * (DESIGN.md section 18): a ring of TRAFFIC_SAMPLES samples, taken by the
 * leader manager every --traffic-sample-ms, of the records appended to
 * each topic and the bytes produced to it, and their rates per second.
 *
 * Records come from the partitions' high watermarks as the leader's
 * routing cache holds them (the brokers' heartbeats, about a second old):
 * a sample walks every partition once, in group id order, and keeps each
 * partition's mark for the next. Bytes come from the managers' own counts
 * of what passed through their produce paths (traffic_counted): each
 * manager's counts are cumulative since its process started, and this
 * module turns two of them into what was produced in between.
 *
 * A series starts empty: the first sample after traffic_new() or
 * traffic_reset() is a baseline and has no rate, so that a new leader, or
 * one that restarted, shows nothing rather than a leap. Rates are never
 * negative: a partition counts only what its high watermark passes beyond
 * the highest this series saw of it. A partition whose high watermark is
 * not vouched for yet (a new leader holds only the routes a follower
 * copied, up to a second old, until the brokers' reports arrive) has no
 * mark: it is counted from its first vouched sample on, and what was
 * appended before is not (traffic_uncounted() says how many such
 * partitions a topic has). One created since the last sample counts from
 * offset 0. A manager first heard by this series is a baseline too; one
 * whose process changed (another origin) counts from 0. Topics not in a
 * sample's list are dropped with their series (deleted).
 *
 * Memory: a name and a few counters per topic, a ring (16 bytes a sample)
 * only for a topic that had traffic within the window, and two marks (24
 * bytes each) per partition. Pure: times come as arguments; no I/O.
 */
#ifndef TRAFFIC_H
#define TRAFFIC_H

#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "mstore.h"

/* Samples kept: ten minutes at the default interval of 5 s. */
#define TRAFFIC_SAMPLES 120

struct traffic;

/* 0 or RQ_NOMEM. */
int traffic_new(struct traffic **out);
/* NULL is a no-op. */
void traffic_free(struct traffic *t);

/* Forgets every sample, mark and topic: the next sample is a baseline. */
void traffic_reset(struct traffic *t);

/*
 * A sample is traffic_begin(), then traffic_counted() for the managers'
 * counts and traffic_partition() for every partition in increasing group
 * id order, then traffic_end().
 *
 * traffic_begin: the topics now are @topics (@nt, in name order as
 * mstore_topics() gives them); the sample will see at most @np partitions.
 * @now_ms is a monotonic clock (the intervals), @wall_ms the wall clock
 * (the times answered). 0, or RQ_NOMEM (the sample is not taken and
 * nothing changed).
 */
int traffic_begin(struct traffic *t, uint64_t now_ms, uint64_t wall_ms,
                  const struct mstore_topic *topics, size_t nt, size_t np);

/*
 * Partition group @group_id of topic number @topic (its index among
 * traffic_begin()'s @topics): @reported when @hw is its high watermark as
 * of a report this leader received (else @hw is ignored).
 */
void traffic_partition(struct traffic *t, size_t topic, uint64_t group_id,
                       bool reported, uint64_t hw);

/*
 * A manager's counts of what it produced: @after is its answer now,
 * @before the one last applied (NULL: none in this series). Both are
 * {"origin": TEXT, "topics": {TOPIC: BYTES, ...}} (borrowed); bytes
 * counted since @before go into the sample under way, for the topics it
 * knows. True when it counted (@before was of the same series), false for
 * a baseline or a malformed answer.
 */
bool traffic_counted(struct traffic *t, const json_t *before,
                     const json_t *after);

/* Ends the sample: @bytes_from managers' counts went into it, of
 * @managers in the cluster. */
void traffic_end(struct traffic *t, unsigned bytes_from, unsigned managers);

/* Samples taken since the reset (the baseline included). */
uint64_t traffic_samples(const struct traffic *t);
/* The wall clock of the baseline sample, 0 before it. */
uint64_t traffic_started_ms(const struct traffic *t);
/* Partitions of @topic that the last sample could not count (no high
 * watermark vouched for since the series began). */
size_t traffic_uncounted(const struct traffic *t, const char *topic);

/*
 * The series of @topic: a new array of the samples with a rate taken at a
 * wall time after @since_ms, oldest first, each {time_ms, interval_ms,
 * records, bytes, messages_per_s, bytes_per_s, bytes_from, managers}.
 * An empty array for a topic the last sample did not know; NULL on
 * ENOMEM.
 */
json_t *traffic_series(const struct traffic *t, const char *topic,
                       uint64_t since_ms);

#endif /* TRAFFIC_H */

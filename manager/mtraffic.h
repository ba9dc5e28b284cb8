/*
 * Topic traffic for the status page (DESIGN.md section 18): the adapter
 * around traffic.h. Every manager counts, per topic, the key and value
 * bytes of the records its produce paths got committed (mtraffic_produced)
 * and answers them to the leader (GET /internal/produced). The leader, every
 * --traffic-sample-ms, asks every other manager for its counts and then
 * takes a sample: the partitions' high watermarks from its routing cache,
 * and the bytes each manager produced since the last. It serves the series
 * at GET /admin/topics/{topic}/traffic. A manager that wins leadership
 * starts an empty series; one that loses it forgets its series.
 *
 * Its cost on the leader per sample: one pass over the partition view
 * (as one GET /admin/topics) and one small call per other manager; a
 * request for a series reads memory only, whatever the partitions.
 */
#ifndef MTRAFFIC_H
#define MTRAFFIC_H

#include <stdint.h>

#include "rq_http.h"

struct mcore;
struct mtraffic;

/* 0 or RQ_NOMEM (RQ_IO when the random origin cannot be drawn). */
int mtraffic_new(struct mcore *core, struct mtraffic **out);
/* Once the loop has stopped (calls under way hold it). NULL is a no-op. */
void mtraffic_free(struct mtraffic *mt);

/* Leadership won at @now: a new series, whose first sample is taken at
 * once. */
void mtraffic_lead(struct mtraffic *mt, uint64_t now);
/* Leadership lost: the series is forgotten. */
void mtraffic_stop(struct mtraffic *mt);
/* The leader's tick: asks the managers and samples when due. */
void mtraffic_tick(struct mtraffic *mt, uint64_t now);

/* @bytes of keys and values of records produced to @topic through this
 * manager were committed. NULL is a no-op. */
void mtraffic_produced(struct mtraffic *mt, const char *topic, uint64_t bytes);

/* GET /admin/topics/{topic}/traffic[?since=MS] (manager/README.md). Its
 * data is the core. */
void mtraffic_topic(struct rq_http_req *req, void *data);

/* GET /internal/produced: this manager's counts, {"origin", "topics":
 * {TOPIC: BYTES}}, cumulative since its process started. */
void mtraffic_counts(struct rq_http_req *req, void *data);

#endif /* MTRAFFIC_H */

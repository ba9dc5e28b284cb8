/*
 * Brokers' heartbeat reports on the leader manager (broker/hbreport.h has
 * the broker's side): parsing a report's replicas into a sorted array, and
 * applying a delta (what changed, what is gone) to the last one. Pure, for
 * liveness.c and its unit tests.
 */
#ifndef HBMERGE_H
#define HBMERGE_H

#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "liveness.h"

/*
 * A report's "replicas" (a JSON list; NULL or null: none) into *@out
 * (malloc'd), sorted by group id, a group listed twice counting once (the
 * last). A replica said "failed" gets failed_since 1. 0, or RQ_INVALID
 * with @why, RQ_NOMEM.
 */
int hbmerge_replicas(const json_t *list, struct liveness_replica **out,
                     size_t *n, char *why, size_t whyn);

/* A delta's "gone" (a JSON list of group ids; NULL: none) into *@out
 * (malloc'd), sorted. 0, or RQ_INVALID with @why. */
int hbmerge_gone(const json_t *list, uint64_t **out, size_t *n, char *why,
                 size_t whyn);

/*
 * @old (sorted) after a delta: each of @changed (sorted) replaces the
 * entry of its group or is added, the groups in @gone (sorted) are
 * dropped. Into *@out (malloc'd), sorted. 0 or RQ_NOMEM.
 */
int hbmerge_apply(const struct liveness_replica *old, size_t n_old,
                  const struct liveness_replica *changed, size_t n_changed,
                  const uint64_t *gone, size_t n_gone,
                  struct liveness_replica **out, size_t *n);

/* A heartbeat's "report" ({seq, base}; NULL for a broker of an earlier
 * release, whose every report is full: both 0). 0 or RQ_INVALID. */
int hbmerge_report(const json_t *o, uint64_t *seq, uint64_t *base);

/*
 * Whether the leader asks broker @b for a full report at @now (it sent a
 * delta the leader cannot apply), @size the replicas the store places on
 * it. A new leader holds no report, and every broker's next heartbeat is
 * such a delta: asked all at once, a hundred brokers of 3,000 replicas
 * would send 60 MB of JSON in the same second, answered later than their
 * timeout and sent again. So the reports asked for and not come yet
 * (@list, the leader's @n brokers; an ask older than @ttl_ms is taken for
 * lost) may list at most @budget replicas, and the others' deltas are
 * answered without asking: their next heartbeat asks again. One report is
 * always allowed, whatever its size; a broker asked already is asked
 * again (its answer may have been lost).
 */
bool hbmerge_may_ask_full(const struct liveness_broker *list, size_t n,
                          const struct liveness_broker *b, uint32_t size,
                          uint64_t now, uint64_t budget, uint64_t ttl_ms);

#endif /* HBMERGE_H */

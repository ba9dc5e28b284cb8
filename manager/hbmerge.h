/*
 * Brokers' heartbeat reports on the leader manager (broker/hbreport.h has
 * the broker's side): parsing a report's replicas into a sorted array, and
 * applying a delta (what changed, what is gone) to the last one. Pure, for
 * liveness.c and its unit tests.
 */
#ifndef HBMERGE_H
#define HBMERGE_H

#include <jansson.h>
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

#endif /* HBMERGE_H */

/*
 * Metrics: a registry of counters, gauges and histograms, rendered in the
 * Prometheus text exposition format, version 0.0.4.
 *
 * A family has a name, a help text, a type and fixed label names; each
 * set of label values is a child of it, the thing that holds a value.
 * Updating a child is a few arithmetic operations: code on a hot path
 * looks its children up once (rq_metric_get) and keeps the handles, so no
 * update allocates or hashes. A family without labels has its one child
 * from the start (rq_metric_family_child).
 *
 * Values that are cheaper to read when scraped than to track (a Raft
 * group's term, a file's size) are set by collect callbacks, which run at
 * the start of every rendering; a callback may set values, take and drop
 * children, and clear families whose children nobody else holds.
 *
 * Every update function takes a NULL child and does nothing, and every
 * lookup on a NULL family returns NULL, so a process that failed to
 * register a family (out of memory) or a module given no registry keeps
 * working without its metrics.
 *
 * Rendering: families in registration order, each with its # HELP and
 * # TYPE lines and its children in the order they were created; a family
 * without children is left out. Label values are escaped (\\, \" and \n),
 * as are help texts (\\ and \n). Histograms give cumulative _bucket lines
 * with le="+Inf" last, then _sum and _count. Values print as integers
 * when they are whole and below 2^53, else in the shortest form that
 * reads back exactly; NaN, +Inf and -Inf as Prometheus spells them.
 *
 * Not thread-safe: one registry per loop thread.
 */
#ifndef RQ_METRICS_H
#define RQ_METRICS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "rq_wire.h"

#define RQ_METRIC_LABELS_MAX 4
#define RQ_METRIC_BUCKETS_MAX 32
#define RQ_METRIC_HOOKS_MAX 8

/* The content type of a rendering, for the HTTP reply. */
#define RQ_METRICS_CONTENT_TYPE "text/plain; version=0.0.4; charset=utf-8"

enum rq_metric_type {
    RQ_METRIC_COUNTER,
    RQ_METRIC_GAUGE,
    RQ_METRIC_HISTOGRAM,
};

struct rq_metric_def {
    enum rq_metric_type type;
    const char *name; /* [a-zA-Z_:][a-zA-Z0-9_:]* */
    const char *help;
    /* Label names, [a-zA-Z_][a-zA-Z0-9_]* not starting with "__" (and
     * not "le" for a histogram); the unused ones NULL. */
    const char *labels[RQ_METRIC_LABELS_MAX];
    /* Histograms: the buckets' upper bounds, strictly increasing and
     * finite, without +Inf (always added); 1 to RQ_METRIC_BUCKETS_MAX. */
    const double *buckets;
    size_t n_buckets;
};

struct rq_metrics;
struct rq_metric_family;
struct rq_metric;

/* 0 or RQ_NOMEM. */
int rq_metrics_new(struct rq_metrics **out);
/* Frees every family and child; handles die with it. NULL is a no-op. */
void rq_metrics_free(struct rq_metrics *m);

/*
 * Registers a family (@def's strings and buckets are copied). Registering
 * a name again with the same type, labels and buckets returns the same
 * family. NULL on RQ_NOMEM, or (a bug in the caller) an invalid name or
 * label name, bad buckets, or a name taken by another kind of family.
 */
struct rq_metric_family *rq_metrics_add(struct rq_metrics *m,
                                        const struct rq_metric_def *def);

/*
 * Calls @cb at the start of every rendering, in the order added. 0, or
 * RQ_NOMEM past RQ_METRIC_HOOKS_MAX.
 */
int rq_metrics_on_collect(struct rq_metrics *m, void (*cb)(void *data),
                          void *data);
/* Removes the callback added with these arguments, if any. */
void rq_metrics_off_collect(struct rq_metrics *m, void (*cb)(void *data),
                            void *data);

/*
 * Appends the exposition text of every family to @out (after running the
 * collect callbacks). 0 or RQ_NOMEM (@out->err set).
 */
int rq_metrics_render(struct rq_metrics *m, struct rq_buf *out);

/* ---- Children ---- */

/*
 * The child of @f with label @values (one per label name, copied; NULL
 * counts as ""), created with value 0 if new. Children are shared: each
 * rq_metric_get() takes a reference that rq_metric_put() gives back, and
 * the child goes away (out of renderings too) with the last one. NULL on
 * RQ_NOMEM or a NULL family.
 */
struct rq_metric *rq_metric_get(struct rq_metric_family *f,
                                const char *const *values);
void rq_metric_put(struct rq_metric *c);

/* The one child of a family without labels (held by the family from
 * registration until a clear), or NULL. */
struct rq_metric *rq_metric_family_child(struct rq_metric_family *f);

/*
 * Drops every child of @f, for families a collect callback fills afresh
 * each time (with rq_metric_get() and no put: the next clear drops them).
 * Only for families whose children nobody else holds. A family without
 * labels loses its one child too, and leaves the renderings until
 * rq_metric_get(@f, NULL) brings it back.
 */
void rq_metric_family_clear(struct rq_metric_family *f);
size_t rq_metric_family_size(const struct rq_metric_family *f);

/* Counters: add (@v >= 0) and increment. */
void rq_metric_add(struct rq_metric *c, double v);
void rq_metric_inc(struct rq_metric *c);
/* Gauges, and counters that mirror a count kept elsewhere. */
void rq_metric_set(struct rq_metric *c, double v);
/* Histograms: one observation (NaN is ignored). */
void rq_metric_observe(struct rq_metric *c, double v);

/* The value of a counter or gauge; a histogram's sum. 0 for NULL. */
double rq_metric_value(const struct rq_metric *c);
/* A histogram's observation count; 0 for NULL or another type. */
uint64_t rq_metric_count(const struct rq_metric *c);

/* ---- Formatting, shared with other writers of the format ---- */

/* A value as the renderer writes it (see the top); @buf of at least 32. */
void rq_metrics_format_value(double v, char *buf, size_t n);

/* Appends @s escaped as a label value (\\, \", \n). */
void rq_metrics_escape_label(struct rq_buf *out, const char *s);

#endif /* RQ_METRICS_H */

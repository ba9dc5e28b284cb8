/*
 * What the drivers of the peer systems (js_bench.c, etcd_bench.c) share:
 * the clock, latency percentiles and the one JSON line each case prints on
 * standard output, which tests/bench/peers.py passes on for the table that
 * sets raftq's figures beside the peers'. Header-only, since every .c under
 * tests/bench is a program of its own.
 *
 * The line has exactly these fields, null where a figure does not apply:
 *
 *   {"system": "jetstream", "case": "produce_1_inflight", "n": 1234,
 *    "seconds": 2.001, "msgs_per_s": 616.7, "mb_per_s": 0.062,
 *    "p50_ms": 1.5, "p99_ms": 2.9, "p999_ms": 4.1, "max_ms": 5.0,
 *    "in_flight": 1, "size": 100}
 *
 * MB are 10^6 bytes of message payload.
 */
#ifndef PEER_REPORT_H
#define PEER_REPORT_H

#include <inttypes.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

/* Latencies of one case, in nanoseconds; grown as needed. */
struct peer_lat {
    uint64_t *ns;
    size_t n;
    size_t cap;
};

struct peer_result {
    const char *system; /* Borrowed. */
    const char *name;   /* The case's id; borrowed. */
    uint64_t n;         /* Messages acknowledged (or read). */
    double seconds;
    int in_flight;
    int size;             /* Payload bytes per message. */
    struct peer_lat *lat; /* Percentiles from these, or null; borrowed. */
};

static inline uint64_t peer_now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

/* Records one latency; 0, or -1 when memory ran out. */
static inline int peer_lat_add(struct peer_lat *l, uint64_t ns)
{
    if (l->n == l->cap) {
        size_t cap = l->cap != 0 ? 2 * l->cap : 4096;
        uint64_t *ns_new = realloc(l->ns, cap * sizeof *ns_new);
        if (ns_new == NULL) {
            return -1; /* UNTESTED: ENOMEM only. */
        }
        l->ns = ns_new;
        l->cap = cap;
    }
    l->ns[l->n++] = ns;
    return 0;
}

static inline void peer_lat_close(struct peer_lat *l)
{
    free(l->ns);
    *l = (struct peer_lat){0};
}

static inline int peer_lat_cmp(const void *a, const void *b)
{
    uint64_t x = *(const uint64_t *)a;
    uint64_t y = *(const uint64_t *)b;
    return x < y ? -1 : x > y;
}

/* The @q quantile (nearest rank) in ms of sorted @l, which holds some. */
static inline double peer_lat_ms(const struct peer_lat *l, double q)
{
    size_t rank = (size_t)(q * (double)l->n + 0.999999);
    size_t i = rank == 0 ? 0 : rank - 1;
    if (i >= l->n) {
        i = l->n - 1;
    }
    return (double)l->ns[i] / 1e6;
}

/* Prints "null" or the figure into @buf. */
static inline const char *peer_fig(char *buf, size_t n, int have, double v)
{
    if (!have) {
        return "null";
    }
    snprintf(buf, n, "%.3f", v);
    return buf;
}

/* Prints @r as one JSON line on standard output (and sorts its latencies). */
static inline void peer_result_print(const struct peer_result *r)
{
    char mb[32], p50[32], p99[32], p999[32], max[32];
    int lat = r->lat != NULL && r->lat->n > 0;
    double rate = r->seconds > 0 ? (double)r->n / r->seconds : 0;
    if (lat) {
        qsort(r->lat->ns, r->lat->n, sizeof r->lat->ns[0], peer_lat_cmp);
    }
    printf("{\"system\": \"%s\", \"case\": \"%s\", \"n\": %" PRIu64
           ", \"seconds\": %.3f, \"msgs_per_s\": %.1f, \"mb_per_s\": %s"
           ", \"p50_ms\": %s, \"p99_ms\": %s, \"p999_ms\": %s"
           ", \"max_ms\": %s, \"in_flight\": %d, \"size\": %d}\n",
           r->system, r->name, r->n, r->seconds, rate,
           peer_fig(mb, sizeof mb, 1, rate * r->size / 1e6),
           peer_fig(p50, sizeof p50, lat, lat ? peer_lat_ms(r->lat, 0.5) : 0),
           peer_fig(p99, sizeof p99, lat, lat ? peer_lat_ms(r->lat, 0.99) : 0),
           peer_fig(p999, sizeof p999, lat,
                    lat ? peer_lat_ms(r->lat, 0.999) : 0),
           peer_fig(max, sizeof max, lat, lat ? peer_lat_ms(r->lat, 1.0) : 0),
           r->in_flight, r->size);
    fflush(stdout);
}

/* Whether the comma-separated @list names @name (every name when NULL). */
static inline bool peer_list_has(const char *list, const char *name)
{
    size_t len = strlen(name);
    if (list == NULL) {
        return true;
    }
    for (const char *p = list; *p != '\0';) {
        const char *end = strchr(p, ',');
        size_t n = end != NULL ? (size_t)(end - p) : strlen(p);
        if (n == len && strncmp(p, name, n) == 0) {
            return true;
        }
        p += n + (end != NULL);
    }
    return false;
}

/*
 * Whether every name in the comma-separated @list is one of @names (which
 * are distinct): @list names as many of them as it has items.
 */
static inline bool peer_list_known(const char *list, const char *const *names,
                                   size_t n)
{
    size_t items = 1, found = 0;
    for (const char *p = list; *p != '\0'; p++) {
        items += *p == ',';
    }
    for (size_t i = 0; i < n; i++) {
        found += peer_list_has(list, names[i]);
    }
    return found == items;
}

#endif /* PEER_REPORT_H */

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

#include <getopt.h>
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
    printf(
        "{\"system\": \"%s\", \"case\": \"%s\", \"n\": %" PRIu64
        ", \"seconds\": %.3f, \"msgs_per_s\": %.1f, \"mb_per_s\": %s"
        ", \"p50_ms\": %s, \"p99_ms\": %s, \"p999_ms\": %s"
        ", \"max_ms\": %s, \"in_flight\": %d, \"size\": %d}\n",
        r->system, r->name, r->n, r->seconds, rate,
        peer_fig(mb, sizeof mb, 1, rate * r->size / 1e6),
        peer_fig(p50, sizeof p50, lat, lat ? peer_lat_ms(r->lat, 0.5) : 0),
        peer_fig(p99, sizeof p99, lat, lat ? peer_lat_ms(r->lat, 0.99) : 0),
        peer_fig(p999, sizeof p999, lat, lat ? peer_lat_ms(r->lat, 0.999) : 0),
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

/* The options every driver takes. */
struct peer_args {
    char *url;        /* --url: one or more, comma-separated; from argv. */
    double seconds;   /* --seconds each case runs (default 10). */
    const char *only; /* --case: the cases to run, comma-separated; NULL
                         for all. */
};

static inline void peer_usage(FILE *f, const char *prog, const char *url_form,
                              const char *const *names, size_t n)
{
    fprintf(f,
            "usage: %s --url %s[,...] [--seconds N] [--case ID[,ID...]]\n"
            "cases:",
            prog, url_form);
    for (size_t i = 0; i < n; i++) {
        fprintf(f, " %s", names[i]);
    }
    fprintf(f, "\n");
}

/*
 * Parses the options into @out for the driver @prog, whose cases are
 * @names. Returns -1 when the driver goes on, or the exit status it ends
 * with: 0 after --help, 2 for bad arguments (with the reason printed).
 */
static inline int peer_args_parse(int argc, char **argv, const char *prog,
                                  const char *url_form,
                                  const char *const *names, size_t n,
                                  struct peer_args *out)
{
    static const struct option longopts[] = {
        {"url", required_argument, NULL, 'u'},
        {"seconds", required_argument, NULL, 's'},
        {"case", required_argument, NULL, 'c'},
        {"help", no_argument, NULL, 'h'},
        {NULL, 0, NULL, 0},
    };
    int opt;

    *out = (struct peer_args){.seconds = 10};
    while ((opt = getopt_long(argc, argv, "", longopts, NULL)) != -1) {
        char *end;
        switch (opt) {
            case 'u':
                out->url = optarg;
                break;
            case 's':
                out->seconds = strtod(optarg, &end);
                if (*end != '\0' ||
                    !(out->seconds > 0 && out->seconds <= 3600)) {
                    fprintf(stderr, "%s: --seconds: not in (0, 3600]\n", prog);
                    return 2;
                }
                break;
            case 'c':
                out->only = optarg;
                break;
            case 'h':
                peer_usage(stdout, prog, url_form, names, n);
                return 0;
            default:
                peer_usage(stderr, prog, url_form, names, n);
                return 2;
        }
    }
    if (out->url == NULL || optind != argc) {
        peer_usage(stderr, prog, url_form, names, n);
        return 2;
    }
    if (out->only != NULL && !peer_list_known(out->only, names, n)) {
        fprintf(stderr, "%s: --case: unknown case in '%s'\n", prog, out->only);
        return 2;
    }
    return -1;
}

#endif /* PEER_REPORT_H */

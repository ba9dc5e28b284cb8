/*
 * The client library's bench case (see bench_lib.h).
 *
 * Each message's opaque is its call time, so the delivery callback (on
 * the producer's thread, the only writer of the tally until the flush
 * returns) can tell a message of the window from one of the warm-up and
 * note its latency. The producer's buffer is kept to 1 MiB: a program
 * that only produces fills whatever buffer it has, and its latency is then
 * the time a message waits there (with 4 MiB, 0.5 s at the median for the
 * same throughput; with 512 KiB, a tenth less throughput).
 */
#include "bench_lib.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "commands.h"
#include "libraftq/raftq.h"
#include "produce.h"

#define BUFFER_BYTES (1u << 20)
#define FLUSH_MS 60000

/* The run's tally: one case runs at a time, and the callback has only
 * each message's opaque (its call time) of its own. */
struct tally {
    uint64_t from_ns, to_ns; /* The window. */
    uint64_t delivered, failed;
    uint32_t *lat_us;
    size_t n_lat, cap_lat;
    char first_error[160];
};

uint64_t bench_lib_now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

double bench_lib_cpu_seconds(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static struct tally tally;

static void on_delivery(const struct raftq_delivery *d, void *opaque)
{
    uint64_t at = (uint64_t)(uintptr_t)opaque;
    if (d->err != RAFTQ_OK) {
        if (tally.failed++ == 0) {
            snprintf(tally.first_error, sizeof tally.first_error, "%s",
                     d->e->message);
        }
        return;
    }
    if (at < tally.from_ns || at >= tally.to_ns) {
        return;
    }
    tally.delivered++;
    if (tally.n_lat == tally.cap_lat) {
        size_t cap = tally.cap_lat != 0 ? tally.cap_lat * 2 : 1u << 16;
        uint32_t *lat = realloc(tally.lat_us, cap * sizeof *lat);
        if (lat == NULL) {
            return; /* UNTESTED: ENOMEM only; the count stands. */
        }
        tally.lat_us = lat;
        tally.cap_lat = cap;
    }
    uint64_t us = (bench_lib_now_ns() - at) / 1000;
    tally.lat_us[tally.n_lat++] = us > UINT32_MAX ? UINT32_MAX : (uint32_t)us;
}

int bench_lib_produce(const struct cmdline *cl, const char *topic,
                      uint32_t size, uint32_t in_flight, uint64_t warmup_ms,
                      uint64_t window_ms, const volatile sig_atomic_t *stop,
                      struct loadgen_result *res)
{
    struct raftq_producer_config pc;
    raftq_producer_config_init(&pc);
    pc.buffer_bytes = BUFFER_BYTES;
    pc.max_in_flight = in_flight;
    struct raftq_client *c;
    struct raftq_producer *p;
    int code = produce_open(cl, &pc, &c, &p);
    if (code != CLI_OK) {
        return code;
    }
    char *value = malloc(size + 1);
    if (value == NULL) {
        raftq_producer_free(p); /* UNTESTED: ENOMEM only. */
        raftq_client_free(c);
        return CLI_REFUSED;
    }
    memset(value, 'x', size);
    memset(&tally, 0, sizeof tally);
    memset(res, 0, sizeof *res);
    uint64_t t0 = bench_lib_now_ns();
    tally.from_ns = t0 + warmup_ms * 1000000u;
    tally.to_ns = tally.from_ns + window_ms * 1000000u;
    struct raftq_message m = {.topic = topic,
                              .partition = RAFTQ_PARTITION_ANY,
                              .value = value,
                              .value_len = size};
    double cpu0 = 0;
    bool in_window = false;
    while (!*stop) {
        uint64_t now = bench_lib_now_ns();
        if (now >= tally.to_ns) {
            break;
        }
        if (!in_window && now >= tally.from_ns) {
            in_window = true;
            cpu0 = bench_lib_cpu_seconds();
        }
        struct raftq_error e;
        if (raftq_produce(p, &m, on_delivery, (void *)(uintptr_t)now, &e) !=
            RAFTQ_OK) {
            fprintf(stderr, "raftq bench: %s\n", e.message);
            code = CLI_REFUSED;
            break;
        }
    }
    if (raftq_producer_flush(p, FLUSH_MS) != RAFTQ_OK && code == CLI_OK) {
        fprintf(stderr,
                "raftq bench: the last messages were not delivered "
                "within a minute\n");
        code = CLI_REFUSED;
    }
    res->cpu_seconds = bench_lib_cpu_seconds() - cpu0;
    res->seconds = (double)window_ms / 1000.0;
    struct raftq_producer_stats st;
    raftq_producer_stats(p, &st);
    raftq_producer_free(p);
    raftq_client_free(c);
    free(value);
    res->messages = tally.delivered;
    res->answers = st.requests - st.retries;
    res->lat_us = tally.lat_us;
    res->n_lat = tally.n_lat;
    res->errors = tally.failed;
    if (tally.failed > 0) {
        struct loadgen_error_kind *k = &res->kinds[res->n_kinds++];
        snprintf(k->kind, sizeof k->kind, "undelivered");
        k->n = tally.failed;
        snprintf(k->first, sizeof k->first, "%s", tally.first_error);
    }
    res->interrupted = *stop != 0;
    return code == CLI_OK && res->interrupted ? CLI_INTERRUPTED : code;
}

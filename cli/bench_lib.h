/*
 * raftq bench's case of the client library (bench.h): one message a call
 * of raftq_produce(), as an application written one message at a time
 * would, with libraftq batching behind the calls. Set apart from bench.c's
 * load generator, which measures the servers with requests it builds
 * itself; this measures what a program on libraftq gets.
 */
#ifndef BENCH_LIB_H
#define BENCH_LIB_H

#include <signal.h>
#include <stdint.h>

#include "cmdline.h"
#include "loadgen.h"

/* The library's requests in flight at most, shown as the case's. */
#define BENCH_LIB_IN_FLIGHT 16

/* CLOCK_MONOTONIC in nanoseconds, and this process's CPU time (user and
 * system) in seconds: the clocks of every bench case. */
uint64_t bench_lib_now_ns(void);
double bench_lib_cpu_seconds(void);

/*
 * Produces @size-byte values to @topic one call a message, with at most
 * @in_flight requests in flight, for @warmup_ms
 * and then @window_ms, and fills @res: the messages produced in the window
 * and delivered, each one's latency from its call to its delivery report,
 * the client's CPU time. Returns a CLI_* code.
 */
int bench_lib_produce(const struct cmdline *cl, const char *topic,
                      uint32_t size, uint32_t in_flight, uint64_t warmup_ms,
                      uint64_t window_ms, const volatile sig_atomic_t *stop,
                      struct loadgen_result *res);

#endif /* BENCH_LIB_H */

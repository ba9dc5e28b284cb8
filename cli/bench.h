/*
 * `raftq bench [CASE...]`: the throughput and latency of a running
 * cluster as a client sees them, through the managers' public API (API.md
 * sections 1 and 2), in the manner of `nats bench`.
 *
 * Each case sets up what it needs with ordinary blocking calls (mclient.h:
 * its topic, producers or consumers, records to read), then drives its
 * load with loadgen.h, a lean HTTP/1.1 client on libuv whose requests are
 * built before the run, and prints one row (or one JSON line) of figures.
 */
#ifndef BENCH_H
#define BENCH_H

#include <signal.h>

#include "cmdline.h"
#include "mclient.h"

/* Runs the cases @cl names (every case when none) and returns the exit
 * code; @stop (borrowed) ends the run early. */
int bench_run(const struct cmdline *cl, struct mclient *c,
              const volatile sig_atomic_t *stop);

#endif /* BENCH_H */

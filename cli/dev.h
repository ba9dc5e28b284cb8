/*
 * `raftq dev`: a local cluster for development, supervised in the
 * foreground.
 *
 * It starts the managers and brokers of a devplan.h layout as child
 * processes (each in its own process group, so a Ctrl-C reaches only
 * raftq, which then stops them in order), waits until every manager is
 * ready and every broker is ALIVE, and prints where the cluster is and how
 * to use it. Then it waits:
 *
 *     starting --ready--> running --SIGINT/SIGTERM/SIGHUP--> stopping -> exit 0
 *        |                   |
 *        +---a child exits---+--> report it, stopping -> exit 1
 *
 * Stopping sends SIGTERM to every child, waits up to 10 s (a second
 * Ctrl-C cuts that short) and SIGKILLs what is left. Before starting
 * anything it takes a lock on DIR/dev (one raftq dev per data directory)
 * and checks that every port is free, so both mistakes give a clear error
 * and exit 1 without a half-started cluster.
 */
#ifndef DEV_H
#define DEV_H

#include "cmdline.h"

/* Runs the cluster until it is stopped; returns the exit code. @argv0 is
 * how raftq was invoked (for the examples it prints). */
int dev_run(const struct cmdline *cl, const char *argv0);

#endif /* DEV_H */

/*
 * `raftq produce TOPIC [VALUE...]`: values from the arguments or one per
 * line of standard input, produced through libraftq's producer: batched
 * per partition, each batch under a producer id registered for the run and
 * a sequence number, so a batch retried on another manager is not
 * appended twice.
 */
#ifndef PRODUCE_H
#define PRODUCE_H

#include <signal.h>
#include <stdio.h>

#include "cmdline.h"
#include "libraftq/raftq.h"
#include "mclient.h"

/* Produces and returns the exit code. @in is standard input; @progress
 * says whether to show a progress line on stderr for large input; @stop
 * (borrowed) set ends the reading of standard input, and what was read is
 * still delivered. */
int produce_run(const struct cmdline *cl, struct mclient *c, FILE *in,
                bool progress, const volatile sig_atomic_t *stop);

/* A libraftq client of the managers, token and CA of @cl, and a producer
 * of it with @pc; a CLI_* code, with a message on stderr when not CLI_OK.
 * The caller frees both. */
int produce_open(const struct cmdline *cl,
                 const struct raftq_producer_config *pc,
                 struct raftq_client **rc, struct raftq_producer **rp);

#endif /* PRODUCE_H */

/*
 * `raftq produce TOPIC [VALUE...]`: values from the arguments or one per
 * line of standard input, sent in batches through the batch API
 * (POST /v1/topics/{t}/records) under a producer id registered for the
 * run and a sequence number per batch, so a batch retried on another
 * manager is not appended twice.
 */
#ifndef PRODUCE_H
#define PRODUCE_H

#include <stdio.h>

#include "cmdline.h"
#include "mclient.h"

/* Produces and returns the exit code. @in is standard input; @progress
 * says whether to show a progress line on stderr for large input. */
int produce_run(const struct cmdline *cl, struct mclient *c, FILE *in,
                bool progress);

#endif /* PRODUCE_H */

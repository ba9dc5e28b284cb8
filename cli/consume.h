/*
 * `raftq consume TOPIC`: as a consumer (GET /consumer/consume, each
 * message once, the consumer's offsets advancing on the cluster; a new
 * consumer is registered when none is given), or from an offset of one
 * partition (GET /v1/topics/{t}/partitions/{p}/records, nothing
 * committed). --follow keeps waiting with long polls until --max or a
 * signal.
 */
#ifndef CONSUME_H
#define CONSUME_H

#include "cmdline.h"
#include "mclient.h"

/* Consumes and returns the exit code. */
int consume_run(const struct cmdline *cl, struct mclient *c);

#endif /* CONSUME_H */

/*
 * `raftq consumer list|describe|offsets|reset`: the consumers of API.md
 * section 1 (registered ids, each with offsets on the cluster), as
 * `raftq group` shows consumer groups: GET /admin/consumers for the list,
 * GET and POST /v1/consumers/{id}/offsets for a consumer's offsets.
 */
#ifndef CONSUMERS_H
#define CONSUMERS_H

#include <jansson.h>

#include "cmdline.h"
#include "mclient.h"

/*
 * Moves consumer @id's offsets to where @to says, on every partition it
 * reads or on @partition alone (@has_partition): a CLI_* code, with a
 * message on stderr when not CLI_OK. @moved (may be NULL) gets the moves,
 * [{partition_id, offset, was}], for the caller to decref.
 */
int consumers_move(struct mclient *c, uint64_t id, const struct cmdline_pos *to,
                   bool has_partition, uint32_t partition, json_t **moved);

/* Runs a consumer command and returns the exit code. */
int consumers_run(const struct cmdline *cl, struct mclient *c);

#endif /* CONSUMERS_H */

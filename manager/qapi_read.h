/*
 * The queue API's reads: GET /size (API.md section 1), record reads and a
 * consumer's offsets with their lag (section 2). GET /size and the
 * offsets run on the leader (a follower forwards them), after a
 * consistent read; a record read on any manager, straight from the
 * partition's leader broker. Handlers take the core (mcore.h) as their
 * data.
 */
#ifndef QAPI_READ_H
#define QAPI_READ_H

#include <stddef.h>
#include <stdint.h>

#include "rq_http.h"

struct mcore;
struct mstore_partition;

/*
 * What qapi_hw_fetch found: each of the @n partitions' high watermark as a
 * replica answered it (the routing cache's where none did), beside the
 * @committed offsets it was given. @req waits still; @arg is the caller's.
 */
typedef void (*qapi_hw_cb)(struct rq_http_req *req, void *arg,
                           const struct mstore_partition *parts,
                           const uint64_t *committed, const uint64_t *hw,
                           size_t n);

/*
 * Asks a replica of each of @parts (@n, malloc'd) for its high watermark,
 * reading one record at @committed[i] (malloc'd), holding @req meanwhile;
 * then @done runs unless the client has gone. Takes @parts, @committed and
 * @arg (malloc'd or NULL), freeing them after @done. Answers 500 itself
 * when out of memory.
 */
void qapi_hw_fetch(struct mcore *core, struct rq_http_req *req,
                   struct mstore_partition *parts, uint64_t *committed,
                   size_t n, qapi_hw_cb done, void *arg);

void qapi_size(struct rq_http_req *req, void *data);
void qapi_records_read(struct rq_http_req *req, void *data);
void qapi_offsets_list(struct rq_http_req *req, void *data);

#endif /* QAPI_READ_H */

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

#include "rq_http.h"

void qapi_size(struct rq_http_req *req, void *data);
void qapi_records_read(struct rq_http_req *req, void *data);
void qapi_offsets_list(struct rq_http_req *req, void *data);

#endif /* QAPI_READ_H */

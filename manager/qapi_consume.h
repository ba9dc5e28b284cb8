/*
 * The queue API's consume (API.md section 1) and consumer offset commits
 * (section 2), both served on the leader (a follower forwards them).
 *
 * Consumes of one consumer run one at a time, in arrival order, so the
 * offset each reads is the one the previous committed; the commit is a
 * compare-and-set on that offset, so a stale leader can never deliver a
 * message twice. Handlers take the core (mcore.h) as their data.
 */
#ifndef QAPI_CONSUME_H
#define QAPI_CONSUME_H

#include <stdbool.h>

#include "rq_http.h"

void qapi_consume(struct rq_http_req *req, void *data);
void qapi_offsets_commit(struct rq_http_req *req, void *data);

/*
 * Adds to @body (a 5xx failure answer built outside the consume handler,
 * e.g. by forwarding) what a consume's failure must say (API.md section 1):
 * "offset_advanced": "unknown" if the leader may have received @req
 * (@sent), else "no". Does nothing for any other route.
 */
void qapi_consume_outcome(struct rq_http_req *req, json_t *body, bool sent);

#endif /* QAPI_CONSUME_H */

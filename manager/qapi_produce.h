/*
 * The queue API's produce (API.md section 1) and batch produce (section
 * 2). Both run on any manager: the records go straight to the partition's
 * leader broker (bclient.h). A follower that does not know the producer or
 * the topic yet reads consistently and tries once more (qapi_serve).
 * Handlers take the core (mcore.h) as their data.
 */
#ifndef QAPI_PRODUCE_H
#define QAPI_PRODUCE_H

#include "rq_http.h"

void qapi_produce(struct rq_http_req *req, void *data);
void qapi_records_produce(struct rq_http_req *req, void *data);

/* Frees the produce queues once the loop has stopped (every call has
 * ended). */
void qapi_produce_close(void);

#endif /* QAPI_PRODUCE_H */

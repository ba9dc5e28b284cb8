/*
 * The queue API's topics and registration (API.md section 1): creating and
 * listing topics, a topic's partitions, and registering producers and
 * consumers. Creating and registering run on the leader; GET /topics on
 * any manager, after a consistent read. Handlers take the core (mcore.h) as
 * their data.
 */
#ifndef QAPI_TOPICS_H
#define QAPI_TOPICS_H

#include "rq_http.h"

void qapi_topics_create(struct rq_http_req *req, void *data);
void qapi_topics_list(struct rq_http_req *req, void *data);
void qapi_topics_partitions(struct rq_http_req *req, void *data);

/* A producer registered for a topic that does not exist yet creates it
 * with --default-partitions partitions. */
void qapi_producer_register(struct rq_http_req *req, void *data);
void qapi_consumer_register(struct rq_http_req *req, void *data);

#endif /* QAPI_TOPICS_H */

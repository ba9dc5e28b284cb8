/*
 * The queue API's HTTP handlers: API.md section 1 (topics, registration,
 * produce, consume, size) and section 2 (batches, reads, consumer
 * offsets). Handlers take the core (mcore.h) as their data.
 *
 * Where each request is served:
 * - on the leader (a follower forwards): creating topics, registering
 *   producers and consumers, consume, committing offsets, and the reads
 *   that need the leader's broker reports or the latest offsets
 *   (GET /topics/partitions, GET /size, GET /v1/consumers/{id}/offsets);
 * - on any manager: GET /topics (a consistent read), produce and batch
 *   produce (straight to the partition's leader broker), record reads.
 *
 * Consumes of one consumer run one at a time, in arrival order, so the
 * offset each reads is the one the previous committed; the commit is a
 * compare-and-set on that offset, so a stale leader can never deliver a
 * message twice.
 */
#ifndef QAPI_H
#define QAPI_H

#include "rq_http.h"

struct mcore;

/* 0 or RQ_NOMEM. */
int qapi_init(struct mcore *m);
/* Frees what is left once the loop has stopped. */
void qapi_close(struct mcore *m);

void qapi_topics_create(struct rq_http_req *req, void *data);
void qapi_topics_list(struct rq_http_req *req, void *data);
void qapi_topics_partitions(struct rq_http_req *req, void *data);
void qapi_producer_register(struct rq_http_req *req, void *data);
void qapi_consumer_register(struct rq_http_req *req, void *data);
void qapi_produce(struct rq_http_req *req, void *data);
void qapi_consume(struct rq_http_req *req, void *data);
/*
 * Adds to @body (a 5xx failure answer built outside the consume handler,
 * e.g. by forwarding) what a consume's failure must say (API.md section 1):
 * "offset_advanced": "unknown" if the leader may have received @req
 * (@sent), else "no". Does nothing for any other route.
 */
void qapi_consume_outcome(struct rq_http_req *req, json_t *body, bool sent);
void qapi_size(struct rq_http_req *req, void *data);
void qapi_records_produce(struct rq_http_req *req, void *data);
void qapi_records_read(struct rq_http_req *req, void *data);
void qapi_offsets_commit(struct rq_http_req *req, void *data);
void qapi_offsets_list(struct rq_http_req *req, void *data);

/* Replies shared with admin.c. */

/* Answers 500 for a metadata store read that failed with @rv. */
void qapi_reply_store_error(struct rq_http_req *req, int rv);

/*
 * Answers a failed lookup of @topic in the store: 404 when it does not
 * exist (RQ_NOTFOUND), 500 for anything else. Returns false, answering
 * nothing, when @rv is 0.
 */
bool qapi_reply_topic_lookup(struct rq_http_req *req, int rv,
                             const char *topic);

#endif /* QAPI_H */

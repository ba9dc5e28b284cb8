/*
 * The manager's cluster, admin and internal HTTP handlers: health and
 * metrics, API.md section 3 under /admin/ (the admin token, or a token with
 * the admin grant, unless --admin-open; auth.h) and public API tokens, and the
 * broker side of the internal API (registration and heartbeats,
 * manager/README.md). Handlers take the core (mcore.h) as their data.
 */
#ifndef ADMIN_H
#define ADMIN_H

#include "rq_http.h"

void admin_healthz(struct rq_http_req *req, void *data);
void admin_readyz(struct rq_http_req *req, void *data);
void admin_metrics(struct rq_http_req *req, void *data);

void admin_managers(struct rq_http_req *req, void *data);
void admin_brokers(struct rq_http_req *req, void *data);
void admin_broker_drain(struct rq_http_req *req, void *data);
void admin_broker_remove(struct rq_http_req *req, void *data);
void admin_replica_delete(struct rq_http_req *req, void *data);
void admin_moves(struct rq_http_req *req, void *data);
void admin_topics(struct rq_http_req *req, void *data);
/* GET /admin/consumers[?topic=T]: every consumer registered through API.md
 * section 1 (newest first), with its topic, the partition it is bound to
 * (or null), how many partitions it reads and its lag over them (null
 * while a high watermark is unknown). */
void admin_consumers(struct rq_http_req *req, void *data);
void admin_topic_describe(struct rq_http_req *req, void *data);
void admin_topic_delete(struct rq_http_req *req, void *data);
void admin_partition_leader(struct rq_http_req *req, void *data);
void admin_tokens_create(struct rq_http_req *req, void *data);
void admin_tokens_list(struct rq_http_req *req, void *data);
void admin_token_revoke(struct rq_http_req *req, void *data);

void admin_broker_register(struct rq_http_req *req, void *data);
void admin_broker_heartbeat(struct rq_http_req *req, void *data);

#endif /* ADMIN_H */

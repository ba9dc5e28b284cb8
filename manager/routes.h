/*
 * The manager's routes that parse a request, for rq_http_new(): API.md
 * sections 1 to 3 (2b's consumer groups among them) and the brokers'
 * registration and heartbeats. manager.c serves these and its own (health,
 * metrics, the status page, the managers' /internal routes); the fuzz harness
 * of the handlers (tests/fuzz/fuzz_manager_http.c) drives these through a fake
 * request. A macro, so that both build their tables from one list at compile
 * time.
 *
 * The brokers' routes need a signature (rq_httpsig.h) made with the
 * broker-to-manager key, or the manager-to-manager key when a follower
 * forwards them to its leader; the public routes need none here.
 */
#ifndef MANAGER_ROUTES_H
#define MANAGER_ROUTES_H

#include "admin.h"
#include "mmember.h"
#include "mtraffic.h"
#include "openapi.h"
#include "qapi.h"
#include "qapi_consume.h"
#include "qapi_groups.h"
#include "qapi_produce.h"
#include "qapi_read.h"
#include "qapi_topics.h"
#include "rq_httpsig.h"
#include "ui.h"

/* clang-format off */
#define MANAGER_PARSING_ROUTES                                               \
    /* API.md section 1. */                                                  \
    {"POST", "/topics", qapi_topics_create},                                 \
    {"GET", "/topics", qapi_topics_list},                                    \
    {"GET", "/topics/partitions", qapi_topics_partitions},                   \
    {"POST", "/producer/register", qapi_producer_register},                  \
    {"POST", "/consumer/register", qapi_consumer_register},                  \
    {"POST", "/producer/produce", qapi_produce},                             \
    {"GET", "/consumer/consume", qapi_consume},                              \
    {"GET", "/size", qapi_size},                                             \
    /* Section 2. */                                                         \
    {"POST", "/v1/topics/{topic}/records", qapi_records_produce},            \
    {"GET", "/v1/topics/{topic}/partitions/{partition}/records",             \
     qapi_records_read},                                                     \
    {"POST", "/v1/consumers/{consumer}/offsets", qapi_offsets_commit},       \
    {"GET", "/v1/consumers/{consumer}/offsets", qapi_offsets_list},          \
    /* Section 2b. */                                                        \
    {"POST", "/v1/groups/{group}/join", qapi_group_join},                    \
    {"POST", "/v1/groups/{group}/heartbeat", qapi_group_heartbeat},          \
    {"POST", "/v1/groups/{group}/leave", qapi_group_leave},                  \
    {"GET", "/v1/groups/{group}/records", qapi_group_records},               \
    {"POST", "/v1/groups/{group}/commit", qapi_group_commit},                \
    {"GET", "/v1/groups", qapi_groups_list},                                 \
    {"GET", "/v1/groups/{group}", qapi_group_describe},                      \
    {"POST", "/v1/groups/{group}/offsets", qapi_group_offsets},              \
    {"DELETE", "/v1/groups/{group}", qapi_group_delete},                     \
    /* Section 3. */                                                         \
    {"GET", "/admin/brokers", admin_brokers},                                \
    {"POST", "/admin/brokers/{id}/drain", admin_broker_drain},               \
    {"DELETE", "/admin/brokers/{id}", admin_broker_remove},                  \
    {"DELETE", "/admin/brokers/{id}/replicas/{group_id}",                    \
     admin_replica_delete},                                                  \
    {"GET", "/admin/moves", admin_moves},                                    \
    {"GET", "/admin/topics", admin_topics},                                  \
    {"GET", "/admin/consumers", admin_consumers},                            \
    {"GET", "/admin/topics/{topic}", admin_topic_describe},                  \
    {"GET", "/admin/topics/{topic}/traffic", mtraffic_topic},                \
    {"DELETE", "/admin/topics/{topic}", admin_topic_delete},                 \
    {"POST", "/admin/partitions/{topic}/{partition}/leader",                 \
     admin_partition_leader},                                                \
    {"POST", "/admin/tokens", admin_tokens_create},                          \
    {"GET", "/admin/tokens", admin_tokens_list},                             \
    {"DELETE", "/admin/tokens/{id}", admin_token_revoke},                    \
    /* Brokers. */                                                           \
    {"POST", "/internal/brokers/register", admin_broker_register,            \
     RQ_HTTPSIG_B2M | RQ_HTTPSIG_M2M},                                       \
    {"POST", "/internal/brokers/{id}/heartbeat", admin_broker_heartbeat,     \
     RQ_HTTPSIG_B2M | RQ_HTTPSIG_M2M}

/* What manager.c serves beside them that a user or an operator calls: the
 * health and metrics routes, the status page, this API's OpenAPI document
 * and the managers' membership. With the routes above, exactly what
 * manager/openapi.json documents (tests/unit/test_openapi.c). */
#define MANAGER_SERVICE_ROUTES                                               \
    {"GET", "/healthz", admin_healthz},                                      \
    {"GET", "/readyz", admin_readyz},                                        \
    {"GET", "/metrics", admin_metrics},                                      \
    {"GET", "/openapi.json", openapi_page},                                  \
    {"GET", "/ui", ui_page},                                                 \
    {"GET", "/ui/", ui_page},                                                \
    {"GET", "/admin/managers", admin_managers},                              \
    {"POST", "/admin/managers", mmember_add},                                \
    {"DELETE", "/admin/managers/{id}", mmember_remove}
/* clang-format on */

#endif /* MANAGER_ROUTES_H */

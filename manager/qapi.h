/*
 * The queue API (API.md sections 1 and 2): what its handler files share.
 * The handlers themselves live by what a request does:
 *
 *   qapi_topics.c    topics (create, list, partitions) and the
 *                    registration of producers and consumers
 *   qapi_produce.c   produce and batch produce
 *   qapi_consume.c   consume and committing offsets
 *   qapi_read.c      size, record reads and reading offsets
 *
 * and this file holds what every one of them needs: the queue API's state,
 * the parsing of arguments, the answers they share and the admission of a
 * request (auth.h's steps 3 and 4). qapi_serve.h holds "serve now, else
 * read consistently and serve again". Handlers take the core (mcore.h) as their
 * data.
 *
 * Where each request is served:
 * - on the leader (a follower forwards): creating topics, registering
 *   producers and consumers, consume, committing offsets, and the reads
 *   that need the leader's broker reports or the latest offsets
 *   (GET /topics/partitions, GET /size, GET /v1/consumers/{id}/offsets);
 * - on any manager: GET /topics (a consistent read), produce and batch
 *   produce (straight to the partition's leader broker), record reads.
 *
 * Errors follow API.md: 400 bad input or a client used with another
 * topic, 404 unknown topic, producer, consumer or partition, 409 a topic
 * that exists, 413 a message over --max-message-bytes, 503 with
 * Retry-After when no leader (manager or broker) can serve the request;
 * with --auth tokens, 401 without a valid token and 403 without the grant.
 *
 * Every handler checks in the order auth.h draws: auth_public first (401
 * on any manager, before anything is read), then its own parsing (400 on
 * any manager), then qapi_admit() (403, then forward to the leader or
 * 503). The grant each route needs:
 *
 *   POST /topics, POST /producer/register,
 *   POST /producer/produce, POST /v1/topics/{t}/records   produce:T
 *   POST /consumer/register, GET /consumer/consume,
 *   GET /size, GET /v1/topics/{t}/partitions/{p}/records   consume:T
 *   GET /topics/partitions                                 produce:T or
 *                                                          consume:T
 *   POST and GET /v1/consumers/{id}/offsets                consume on the
 *                                                          consumer's topic
 *   GET /topics                                            any token; lists
 *                                                          the topics it has
 *                                                          a grant on
 *
 * (admin covers everything). GET /topics answers every valid token but
 * lists only what the token may use: topic names say whose data a cluster
 * holds, and a client has no use for names it may not touch.
 *
 * Each asynchronous request is a small struct whose first member is the
 * held request (mcore_hold): when the client goes away, or the server
 * closes, the slot becomes NULL and the steps still running finish their
 * work without answering.
 */
#ifndef QAPI_H
#define QAPI_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "auth.h"
#include "mcore.h"
#include "mstore.h"
#include "qapi_serve.h"
#include "readahead.h"
#include "rq_http.h"
#include "rq_idmap.h"

#define QAPI_WHY MCORE_WHY /* Room for a reason. */
#define QAPI_DEFAULT_PARTITIONS 3

/*
 * The queue API's own state: the queues of consume requests, one per
 * consumer (qapi_consume.c), and where each producer's round robin stands
 * (qapi_produce.c). One manager runs in a process, so there is one.
 */
struct qapi_state {
    struct rq_idmap queues; /* consumer id -> its queue of consumes */
    struct rq_idmap rr;     /* producer id -> position + 1 (as a pointer) */
    uint64_t batch_rr;      /* Batch records with neither key nor partition. */
    struct readahead ahead; /* Records consumes read ahead. */
};

/* Sets the state up, empty; returns 0 (it allocates nothing). */
int qapi_init(struct mcore *core);
/* Frees what is left once the loop has stopped. */
void qapi_close(struct mcore *core);
/* The state (borrowed). */
struct qapi_state *qapi_state(void);

/* ---- Arguments: each answers 400 naming the problem when it fails ---- */

/* Strict decimal: digits only, at most 2^53 (JSON-safe integers). 0 or
 * RQ_INVALID; answers nothing. */
int qapi_parse_u64(const char *s, uint64_t *out);

/*
 * An optional integer argument (query string, else JSON body). 0 with
 * *present false when absent; RQ_INVALID when present and not a
 * non-negative integer (the caller answers 400 naming it).
 */
int qapi_arg_u64(struct rq_http_req *req, const char *name, bool *present,
                 uint64_t *out);

/* The body must be a JSON object when there is one: answers 400 and
 * returns false otherwise. */
bool qapi_body_ok(struct rq_http_req *req);

/* The JSON body's @name, unless the query string has it; NULL if absent
 * (or null). Borrowed from the request. */
json_t *qapi_body_value(struct rq_http_req *req, const char *name);

/* The topic argument @name, checked; NULL after answering 400. Borrowed
 * from the request until it is answered. */
const char *qapi_topic_arg(struct rq_http_req *req, const char *name);

/* The {topic} path segment, checked; NULL after answering 400. */
const char *qapi_topic_param(struct rq_http_req *req);

/* The {consumer} path segment; false after answering 400. */
bool qapi_consumer_param(struct rq_http_req *req, uint64_t *id);

/* A required id argument; false after answering 400. */
bool qapi_id_arg(struct rq_http_req *req, const char *name, uint64_t *out);

/* The optional partition argument (partition_id, also partition): false
 * after answering 400. *p is MCMD_NO_PARTITION when absent. */
bool qapi_partition_arg(struct rq_http_req *req, uint32_t *p);

/* ---- Answers ---- */

/* Answers 500 for a metadata store read that failed with @rv. */
void qapi_reply_store_error(struct rq_http_req *req, int rv);

/*
 * Answers a failed lookup of @topic in the store: 404 when it does not
 * exist (RQ_NOTFOUND), 500 for anything else. Returns false, answering
 * nothing, when @rv is 0.
 */
bool qapi_reply_topic_lookup(struct rq_http_req *req, int rv,
                             const char *topic);

/* Answers 404: @topic has @n partitions and none numbered @p. */
void qapi_reply_partition_unknown(struct rq_http_req *req, const char *topic,
                                  uint32_t p, size_t n);

/* ---- Proposals ---- */

/*
 * Proposes @c (cleared here) for @req: @cb(@op, ...) runs once it is
 * applied, and @req waits meanwhile in *@slot (a member of @op). When the
 * proposal cannot start, answers @req (503, or 400 for a command refused)
 * and frees @op (malloc'd); @cb never runs then.
 */
void qapi_propose(struct mcore *core, struct rq_http_req *req, struct mcmd *c,
                  rq_node_done_cb cb, void *op, struct rq_http_req **slot);

/* ---- Admission and lookups ---- */

#define QAPI_AT_LEADER true
#define QAPI_ANY_MANAGER false

/*
 * Steps 3 and 4 of every handler (auth.h): @who may do @action on @topic
 * (else 403), and a request the leader must serve (@at_leader) is
 * forwarded to it (or answered 503). true when this manager serves the
 * request now; false once it is answered or forwarded.
 */
bool qapi_admit(struct mcore *core, struct rq_http_req *req,
                const struct auth *who, enum grant_action action,
                const char *topic, bool at_leader);

/*
 * Looks up a producer (@producer) or consumer registered for @topic: 0, or
 * answers 404 (unknown) / 400 (another topic) / 500 and returns that code.
 */
int qapi_client_check(struct rq_http_req *req, bool producer, uint64_t id,
                      const char *topic, int rv, const struct mstore_client *c);
int qapi_client_for_topic(struct mcore *core, struct rq_http_req *req,
                          bool producer, uint64_t id, const char *topic,
                          struct mstore_client *out);

/*
 * The arguments of GET /consumer/consume and GET /size: @topic, the
 * consumer registered for it, and an optional partition, after the token
 * and its consume grant. Answers the request (forwarded, or 4xx) and
 * returns NULL when it cannot go on; otherwise returns the topic
 * (borrowed from the request). @again is the route's handler (auth.h).
 */
const char *qapi_consumer_args(struct mcore *core, struct rq_http_req *req,
                               uint64_t *id, uint32_t *partition,
                               struct mstore_client *cc, rq_http_handler again);

#endif /* QAPI_H */

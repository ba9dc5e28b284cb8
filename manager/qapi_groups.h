/*
 * Consumer groups (API.md section 2b): joining, heartbeats, leaving,
 * fetching records, committing offsets, and the operator's list, describe,
 * offsets and delete. Every route but the list runs on the leader (a
 * follower forwards): the coordinator's memory (cgroup.h) is there. The
 * grant each needs is consume on the group's topic (the list shows only
 * the groups of topics the token may consume). Handlers take the core
 * (mcore.h) as their data.
 *
 * Errors: 400 bad input, 404 an unknown group or topic, 409 a request from
 * a member that is not in the group's current generation (join again), a
 * commit fenced off, a second fetch of a member while one waits, or an
 * operator's change to a group with members; 503 with Retry-After when no
 * leader can serve it.
 */
#ifndef QAPI_GROUPS_H
#define QAPI_GROUPS_H

#include "rq_http.h"

void qapi_group_join(struct rq_http_req *req, void *data);
void qapi_group_heartbeat(struct rq_http_req *req, void *data);
void qapi_group_leave(struct rq_http_req *req, void *data);
void qapi_group_records(struct rq_http_req *req, void *data);
void qapi_group_commit(struct rq_http_req *req, void *data);
void qapi_groups_list(struct rq_http_req *req, void *data);
void qapi_group_describe(struct rq_http_req *req, void *data);
void qapi_group_offsets(struct rq_http_req *req, void *data);
void qapi_group_delete(struct rq_http_req *req, void *data);

#endif /* QAPI_GROUPS_H */

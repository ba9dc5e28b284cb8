/*
 * The error codes (see rq_codes.h).
 */
#include "rq_codes.h"

#include <string.h>

const struct rq_code rq_codes[] = {
    /* Generic: one per status. */
    {"invalid_request", 400, "The request is malformed or a value is invalid."},
    {"unauthorized", 401, "No credentials, or credentials not accepted."},
    {"forbidden", 403, "The credentials do not allow this."},
    {"not_found", 404, "No such path or resource."},
    {"method_not_allowed", 405, "The path does not take this method."},
    {"not_acceptable", 406, "No answer in a type the Accept header allows."},
    {"conflict", 409, "The request conflicts with the resource's state."},
    {"too_large", 413, "The body is larger than the limit."},
    {"unsupported_media_type", 415, "The body's Content-Type is not taken."},
    {"misdirected", 421, "Sent to a node that does not serve it."},
    {"too_many_requests", 429, "Too many requests at once; retry later."},
    {"internal_error", 500, "A fault of the server's, not of the request."},
    {"bad_gateway", 502, "A node behind this one answered wrongly."},
    {"unavailable", 503,
     "Not available now (no quorum, no live leader, "
     "starting or stopping); retry after Retry-After."},
    {"timeout", 504, "A node behind this one did not answer in time."},
    {"insufficient_storage", 507, "A data volume is too full to take it."},
    {"error", 0, "A failure of a status with no code of its own."},
    /* Specific. */
    {RQ_CODE_TOPIC_NOT_FOUND, 404, "No topic of that name."},
    {RQ_CODE_PARTITION_NOT_FOUND, 404,
     "The topic has no partition of that id."},
    {RQ_CODE_PRODUCER_NOT_FOUND, 404, "No producer of that id."},
    {RQ_CODE_CONSUMER_NOT_FOUND, 404, "No consumer of that id."},
    {RQ_CODE_GROUP_NOT_FOUND, 404, "No consumer group of that name."},
    {RQ_CODE_BROKER_NOT_FOUND, 404, "No broker of that id."},
    {RQ_CODE_NO_NEW_MESSAGES, 404,
     "The consumer has read every message there is; try again later."},
    {RQ_CODE_OFFSET_NOT_HELD, 404,
     "Retention removed the records at that offset; read from first_offset."},
    {RQ_CODE_TOPIC_EXISTS, 409, "A topic of that name exists."},
    {RQ_CODE_WRONG_TOPIC, 400,
     "The producer or consumer was registered for another topic."},
    {RQ_CODE_MESSAGE_TOO_LARGE, 413, "A message is larger than the limit."},
    {RQ_CODE_MEMBER_UNKNOWN, 409,
     "The member is not in the group (it left, its session expired or the "
     "group is gone); join again."},
    {RQ_CODE_FENCED, 409,
     "The commit's generation is not the group's, or it names a partition "
     "the member does not own; its records go to their new owner."},
    {RQ_CODE_GROUP_ACTIVE, 409,
     "The group has live members; stop them, or wait for their sessions to "
     "expire, first."},
    {RQ_CODE_MANAGER_NOT_FOUND, 404, "No manager of that id."},
    {RQ_CODE_TOKEN_NOT_FOUND, 404, "No token of that id (or revoked)."},
    {RQ_CODE_NOT_LEADER, 421,
     "This broker does not lead the partition; leader_http names the one "
     "that does."},
    {RQ_CODE_NO_LEADER, 503,
     "The managers have no leader now (no quorum); retry after "
     "Retry-After."},
};

const size_t rq_codes_n = sizeof rq_codes / sizeof rq_codes[0];

const char *rq_codes_of_status(int status)
{
    /* The generic ones come first, one per status. */
    for (size_t i = 0; i < rq_codes_n; i++) {
        if (rq_codes[i].status == status) {
            return rq_codes[i].name;
        }
    }
    return "error";
}

const struct rq_code *rq_codes_find(const char *name)
{
    for (size_t i = 0; i < rq_codes_n; i++) {
        if (strcmp(rq_codes[i].name, name) == 0) {
            return &rq_codes[i];
        }
    }
    return NULL;
}

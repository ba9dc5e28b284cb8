/*
 * The stable names of the errors a failure answer carries in "code"
 * (API.md, top): snake_case, never renamed once released, so that a client
 * branches on them instead of parsing "message". Each has the HTTP status
 * it comes with. A failure answered without a code of its own gets the
 * one of its status (rq_codes_of_status), so every failure has one; the
 * specific ones below name what a client may want to tell apart (an
 * unknown topic from no new messages, both 404). Pure: no I/O.
 */
#ifndef RQ_CODES_H
#define RQ_CODES_H

#include <stddef.h>

/* Specific codes. */
#define RQ_CODE_TOPIC_NOT_FOUND "topic_not_found"
#define RQ_CODE_PARTITION_NOT_FOUND "partition_not_found"
#define RQ_CODE_PRODUCER_NOT_FOUND "producer_not_found"
#define RQ_CODE_CONSUMER_NOT_FOUND "consumer_not_found"
#define RQ_CODE_GROUP_NOT_FOUND "group_not_found"
#define RQ_CODE_BROKER_NOT_FOUND "broker_not_found"
#define RQ_CODE_NO_NEW_MESSAGES "no_new_messages"
#define RQ_CODE_OFFSET_NOT_HELD "offset_not_held"
#define RQ_CODE_TOPIC_EXISTS "topic_exists"
#define RQ_CODE_WRONG_TOPIC "wrong_topic"
#define RQ_CODE_MESSAGE_TOO_LARGE "message_too_large"
#define RQ_CODE_MEMBER_UNKNOWN "member_unknown"
#define RQ_CODE_FENCED "fenced"
#define RQ_CODE_GROUP_ACTIVE "group_active"
#define RQ_CODE_MANAGER_NOT_FOUND "manager_not_found"
#define RQ_CODE_TOKEN_NOT_FOUND "token_not_found"
#define RQ_CODE_NOT_LEADER "not_leader"
#define RQ_CODE_NO_LEADER "no_leader"

struct rq_code {
    const char *name;
    int status; /* The HTTP status it comes with. */
    const char *what;
};

/* Every code, the generic ones (one per status) first. */
extern const struct rq_code rq_codes[];
extern const size_t rq_codes_n;

/* The generic code of HTTP @status ("invalid_request" for 400, ...);
 * "error" for a status with none. */
const char *rq_codes_of_status(int status);

/* The entry of code @name, or NULL. */
const struct rq_code *rq_codes_find(const char *name);

#endif /* RQ_CODES_H */

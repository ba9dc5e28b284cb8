/*
 * Error codes shared by every raftq module.
 *
 * Functions return 0 on success or one RQ_* code. The text of each code is a
 * short phrase; callers that know more put it in a "why" buffer of their own,
 * with rq_why(). rq_err_http_status() is the one place that maps a code to an
 * HTTP status.
 */
#ifndef RQ_ERR_H
#define RQ_ERR_H

#include <stddef.h>

#define RQ_ERRORS(X)                                         \
    X(RQ_NOMEM, "out of memory")                             \
    X(RQ_MALFORMED, "malformed input")                       \
    X(RQ_INVALID, "invalid argument")                        \
    X(RQ_TOOBIG, "too large")                                \
    X(RQ_NOTFOUND, "not found")                              \
    X(RQ_EXISTS, "already exists")                           \
    X(RQ_NOTLEADER, "not the leader")                        \
    X(RQ_NOQUORUM, "no quorum")                              \
    X(RQ_TIMEOUT, "timed out")                               \
    X(RQ_CANCELED, "canceled")                               \
    X(RQ_SHUTDOWN, "shutting down")                          \
    X(RQ_IO, "input/output error")                           \
    X(RQ_AUTH, "authentication failed")                      \
    X(RQ_UNKNOWNGROUP, "unknown group")                      \
    X(RQ_INSUFFICIENT, "insufficient funds")                 \
    X(RQ_OVERFLOW, "amount overflows")                       \
    X(RQ_RAFT, "raft library error")                         \
    X(RQ_CONNECT, "cannot connect")                          \
    X(RQ_NOBROKERS, "not enough live brokers")               \
    X(RQ_DIVERGED, "state holds entries its group replaced") \
    X(RQ_REPLAYED, "credential replayed")

enum rq_err {
    RQ_OK = 0,
#define RQ_ERR_ENUM(code, text) code,
    RQ_FIRST_ERR_ = 1000 - 1,
    RQ_ERRORS(RQ_ERR_ENUM)
#undef RQ_ERR_ENUM
        RQ_LAST_ERR_
};

/* Returns a static phrase for @code; "unknown error" for anything else. */
const char *rq_strerror(int code);

/* Maps a code to the HTTP status the API answers with (200 for 0). */
int rq_err_http_status(int code);

/* Formats a reason into @why, truncating to @whyn bytes (NUL included). Does
 * nothing when @why is NULL or @whyn is 0, so callers may pass either. */
void rq_why(char *why, size_t whyn, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

#endif /* RQ_ERR_H */

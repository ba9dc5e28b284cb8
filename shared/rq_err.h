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

/*
 * The numbers are part of formats: an RPC answer carries its status, and the
 * ATM's snapshots hold the results they remember. So a code keeps its number
 * for ever, and a number is never given to another code. Codes only one
 * module returns live in that module, with numbers no code here has: 1014
 * and 1015 are the ATM's (atm/atm_err.h), 1018 the manager's placement
 * (placement.h) and 1019 its store (mstore.h); a new one takes a number
 * from RQ_ERR_MODULE_FIRST up.
 */
#define RQ_ERRORS(X)                          \
    X(RQ_NOMEM, 1000, "out of memory")        \
    X(RQ_MALFORMED, 1001, "malformed input")  \
    X(RQ_INVALID, 1002, "invalid argument")   \
    X(RQ_TOOBIG, 1003, "too large")           \
    X(RQ_NOTFOUND, 1004, "not found")         \
    X(RQ_EXISTS, 1005, "already exists")      \
    X(RQ_NOTLEADER, 1006, "not the leader")   \
    X(RQ_NOQUORUM, 1007, "no quorum")         \
    X(RQ_TIMEOUT, 1008, "timed out")          \
    X(RQ_CANCELED, 1009, "canceled")          \
    X(RQ_SHUTDOWN, 1010, "shutting down")     \
    X(RQ_IO, 1011, "input/output error")      \
    X(RQ_AUTH, 1012, "authentication failed") \
    X(RQ_UNKNOWNGROUP, 1013, "unknown group") \
    X(RQ_RAFT, 1016, "raft library error")    \
    X(RQ_CONNECT, 1017, "cannot connect")     \
    X(RQ_REPLAYED, 1020, "credential replayed")

enum rq_err {
    RQ_OK = 0,
#define RQ_ERR_ENUM(code, number, text) code = number,
    RQ_ERRORS(RQ_ERR_ENUM)
#undef RQ_ERR_ENUM
};

/* The first number a module's own codes may take. */
#define RQ_ERR_MODULE_FIRST 1021

/* Returns a static phrase for @code; "unknown error" for anything else (a
 * module with codes of its own has its strerror, which falls back to this). */
const char *rq_strerror(int code);

/* Maps a code to the HTTP status the API answers with (200 for 0, 500 for a
 * code not listed here). */
int rq_err_http_status(int code);

/* Formats a reason into @why, truncating to @whyn bytes (NUL included). Does
 * nothing when @why is NULL or @whyn is 0, so callers may pass either. */
void rq_why(char *why, size_t whyn, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

#endif /* RQ_ERR_H */

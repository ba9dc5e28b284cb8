/*
 * Text and HTTP status of each error code, and the one formatter of "why"
 * buffers. The X-macro in rq_err.h is the single list; this file only
 * derives tables from it.
 */
#include "rq_err.h"

#include <stdarg.h>
#include <stdio.h>

const char *rq_strerror(int code)
{
    switch (code) {
        case RQ_OK:
            return "ok";
#define RQ_ERR_TEXT(code, number, text) \
    case code:                          \
        return text;
            RQ_ERRORS(RQ_ERR_TEXT)
#undef RQ_ERR_TEXT
        default:
            return "unknown error";
    }
}

int rq_err_http_status(int code)
{
    switch (code) {
        case RQ_OK:
            return 200;
        case RQ_MALFORMED:
        case RQ_INVALID:
            return 400;
        case RQ_AUTH:
        case RQ_REPLAYED:
            return 401;
        case RQ_NOTFOUND:
        case RQ_UNKNOWNGROUP:
            return 404;
        case RQ_EXISTS:
            return 409;
        case RQ_TOOBIG:
            return 413;
        case RQ_NOTLEADER:
        case RQ_NOQUORUM:
        case RQ_TIMEOUT:
        case RQ_SHUTDOWN:
        case RQ_CONNECT:
            return 503;
        default:
            return 500;
    }
}

void rq_why(char *why, size_t whyn, const char *fmt, ...)
{
    va_list ap;
    if (why == NULL || whyn == 0) {
        return;
    }
    va_start(ap, fmt);
    vsnprintf(why, whyn, fmt, ap);
    va_end(ap);
}

/*
 * Topic, token and member name rules (rq_names.h). All allow the same
 * characters, which need no escaping in a URL path, a file name or a log line.
 */
#include "rq_names.h"

#include <stddef.h>
#include <string.h>

/* 1-@max characters of [A-Za-z0-9._-], NUL-terminated within @max + 1. */
static bool name_valid(const char *name, size_t max)
{
    size_t n = strnlen(name, max + 1);
    if (n == 0 || n > max) {
        return false;
    }
    for (size_t i = 0; i < n; i++) {
        char c = name[i];
        if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
              (c >= '0' && c <= '9') || c == '.' || c == '_' || c == '-')) {
            return false;
        }
    }
    return true;
}

bool rq_names_topic_valid(const char *name)
{
    return name_valid(name, RQ_NAMES_TOPIC_MAX) && strcmp(name, ".") != 0 &&
           strcmp(name, "..") != 0;
}

bool rq_names_token_valid(const char *name)
{
    return name_valid(name, RQ_NAMES_TOKEN_MAX);
}

bool rq_names_member_valid(const char *id)
{
    return name_valid(id, RQ_NAMES_MEMBER_MAX);
}

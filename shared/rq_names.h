/*
 * The rules for the names clients choose: topic names (consumer group
 * names follow the same rule), public API token names, and consumer group
 * member ids. Managers (the command codec, token grants, the API handlers) and
 * brokers (replica descriptors, their API) check names here, so one rule
 * holds wherever a name enters. Pure logic: no I/O.
 */
#ifndef RQ_NAMES_H
#define RQ_NAMES_H

#include <stdbool.h>

#define RQ_NAMES_TOPIC_MAX 128 /* topic names */
#define RQ_NAMES_TOKEN_MAX 64  /* public API token names */
#define RQ_NAMES_MEMBER_MAX 64 /* consumer group member ids */

/* Topic names: 1-RQ_NAMES_TOPIC_MAX characters of [A-Za-z0-9._-], not "."
 * or "..". @name must be NUL-terminated within RQ_NAMES_TOPIC_MAX + 1 bytes
 * to be valid. */
bool rq_names_topic_valid(const char *name);

/* Token names: 1-RQ_NAMES_TOKEN_MAX characters of [A-Za-z0-9._-]. */
bool rq_names_token_valid(const char *name);

/* Member ids: 1-RQ_NAMES_MEMBER_MAX characters of [A-Za-z0-9._-]. */
bool rq_names_member_valid(const char *id);

#endif /* RQ_NAMES_H */

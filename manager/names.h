/*
 * The rules for the names clients choose: topic names and public API token
 * names. The command codec (mcmd.c), token grants (grants.c) and the API
 * handlers all check names here, so one rule holds wherever a name enters.
 * Pure logic: no I/O.
 */
#ifndef NAMES_H
#define NAMES_H

#include <stdbool.h>

#define NAMES_TOPIC_MAX 128 /* topic names */
#define NAMES_TOKEN_MAX 64  /* public API token names */

/* Topic names: 1-NAMES_TOPIC_MAX characters of [A-Za-z0-9._-], not "." or
 * "..". @name must be NUL-terminated within NAMES_TOPIC_MAX + 1 bytes to be
 * valid. */
bool names_topic_valid(const char *name);

/* Token names: 1-NAMES_TOKEN_MAX characters of [A-Za-z0-9._-]. */
bool names_token_valid(const char *name);

#endif /* NAMES_H */

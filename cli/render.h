/*
 * What the client prints for people: the server's JSON answers turned into
 * lines and tables (table.h). Each function checks the shape of the body
 * it is given and returns RQ_MALFORMED, writing nothing, when it is not
 * what the API promises (the caller then says so). Pure: writes to the
 * FILE it is given.
 */
#ifndef RENDER_H
#define RENDER_H

#include <jansson.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>

/* GET /topics: one name a line. */
int render_topics(const json_t *body, FILE *f);

/* GET /admin/topics/{t}: a summary line, then a partition table. */
int render_topic(const json_t *body, FILE *f);

/* GET /admin/brokers: a broker table. */
int render_brokers(const json_t *body, FILE *f);
/* GET /admin/moves: one row a move, "no moves under way" for none. */
int render_moves(const json_t *body, FILE *f);

/* What one manager says of itself for `cluster status`: its own
 * GET /admin/managers answer (NULL when it could not be reached) and
 * whether GET /readyz answered 200. Borrowed. */
struct render_manager {
    const json_t *self;
    bool ready;
};

/*
 * `cluster status`, managers part: @list is a GET /admin/managers answer
 * (the roster), @views[i] what the manager of list entry i said itself
 * (n entries, in the roster's order). A "leader:" line, then a table.
 */
int render_managers(const json_t *list, const struct render_manager *views,
                    size_t n, FILE *f);

/* GET /admin/tokens: a token table (id, name, grants, created in UTC). */
int render_tokens(const json_t *body, FILE *f);

/* GET /v1/groups: one row a group. */
int render_groups(const json_t *body, FILE *f);

/* GET /v1/groups/{group}: its members, then its partitions' offsets. */
int render_group(const json_t *body, FILE *f);

/* A batch produce answer: "partition P offset O" a line. */
int render_offsets(const json_t *body, FILE *f);

/* A record read answer: each record's value on a line; *n counts them. */
int render_records(const json_t *body, FILE *f, uint64_t *n);

/*
 * raftq consume --format: "json" (a JSON object a line: partition_id,
 * offset, key, timestamp_ms, value; null where unknown) or a template
 * where %v is the value, %k the key, %o the offset, %p the partition,
 * %t the timestamp in milliseconds (empty where unknown), %% a '%', and
 * \n, \t, \\ a newline, a tab, a backslash. 0, or RQ_INVALID with @why.
 */
int render_format_check(const char *fmt, char *why, size_t whyn);

/* @rec (an object with "value", and "offset", "key", "timestamp_ms" where
 * known) of partition @partition (or of its "partition_id") as @fmt
 * (checked) says; NULL: the value and a newline. */
void render_record_as(const json_t *rec, const char *fmt, uint64_t partition,
                      FILE *f);

/* render_records() with a --format: every record of @body (a read of
 * @partition) as render_record_as() prints it. */
int render_records_as(const json_t *body, const char *fmt, uint64_t partition,
                      FILE *f, uint64_t *n);

/* "1.2s", "340ms": an age in milliseconds for people. */
void render_age(uint64_t ms, char *out, size_t n);

#endif /* RENDER_H */

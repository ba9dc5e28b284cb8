/*
 * What a public API token may do: its grants, parsed from text, matched
 * against a request, and the sentence that says which grant a refused
 * request lacks. Pure logic: no I/O, no clock.
 *
 * A grant is one of
 *
 *   admin              everything, the admin API included
 *   produce:NAME       produce to the topic NAME (and create it)
 *   consume:NAME       consume from the topic NAME
 *   produce:PREFIX.*   the same on PREFIX itself and on every topic whose
 *   consume:PREFIX.*   name starts with "PREFIX." (orders.* covers orders
 *                      and orders.eu, never ordersx)
 *   produce:*          every topic
 *   consume:*
 *
 * NAME and PREFIX are topic names (rq_names_topic_valid). A token's grants
 * are kept as one text, the grants in canonical form separated by single
 * spaces, duplicates dropped (grants_format), which is what the Raft log
 * and the store hold.
 */
#ifndef GRANTS_H
#define GRANTS_H

#include <stdbool.h>
#include <stddef.h>

#include "rq_names.h"

#define GRANTS_MAX 16 /* grants per token */
/* The longest grant: "consume:" NAME ".*". */
#define GRANT_TEXT_MAX (8 + RQ_NAMES_TOPIC_MAX + 2)
/* A token's grants as text: each grant and a separator. */
#define GRANTS_TEXT_MAX (GRANTS_MAX * (GRANT_TEXT_MAX + 1))

enum grant_kind {
    GRANT_ADMIN = 1,
    GRANT_PRODUCE,
    GRANT_CONSUME,
};

/* What a request wants to do with a topic. */
enum grant_action {
    GRANT_TO_PRODUCE = 1, /* needs produce (or admin) */
    GRANT_TO_CONSUME,     /* needs consume (or admin) */
    GRANT_TO_SEE,         /* needs produce or consume (or admin) */
};

struct grant {
    enum grant_kind kind;
    bool prefix; /* "PREFIX.*", or "*" with an empty topic */
    char topic[RQ_NAMES_TOPIC_MAX +
               1]; /* NAME or PREFIX; "" for admin and "*" */
};

struct grants {
    size_t n;
    struct grant g[GRANTS_MAX];
};

/*
 * Parses one grant (@text, NUL-terminated). 0, or RQ_INVALID with a
 * sentence in @why saying what is wrong and what a grant looks like.
 */
int grant_parse(const char *text, struct grant *out, char *why, size_t whyn);

/*
 * Parses grants separated by blanks (the stored form; any run of spaces),
 * into @out, dropping duplicates. An empty list is refused: a token that
 * may do nothing is a mistake. 0 or RQ_INVALID with @why.
 */
int grants_parse(const char *text, struct grants *out, char *why, size_t whyn);

/* Adds @g to @gs unless it is there already. 0, or RQ_INVALID (with @why)
 * when @gs holds GRANTS_MAX already. */
int grants_add(struct grants *gs, const struct grant *g, char *why,
               size_t whyn);

/* One grant in canonical form into @out (GRANT_TEXT_MAX + 1 bytes). */
void grant_format(const struct grant *g, char *out, size_t n);

/* Every grant of @gs, canonical, separated by single spaces, into @out
 * (GRANTS_TEXT_MAX + 1 bytes). */
void grants_format(const struct grants *gs, char *out, size_t n);

/* Does @g cover the topic @topic (a valid topic name)? Admin covers all. */
bool grant_covers(const struct grant *g, const char *topic);

/* May a holder of @gs do @action on @topic? */
bool grants_allow(const struct grants *gs, enum grant_action action,
                  const char *topic);

/* Does @gs hold the admin grant? */
bool grants_admin(const struct grants *gs);

/*
 * The 403 sentence for @action on @topic: "this token may not produce to
 * topic 'orders.eu'; it needs the grant produce:orders.eu or
 * produce:orders.*" (the prefix named is the topic's first dot-separated
 * part). Into @out.
 */
void grants_refusal(enum grant_action action, const char *topic, char *out,
                    size_t n);

#endif /* GRANTS_H */

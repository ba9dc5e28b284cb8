/*
 * Grants of public API tokens (see grants.h): parsing with a reason for
 * every refusal, canonical text, and matching a topic by name or prefix.
 *
 * A prefix grant "P.*" is kept as the topic P with the prefix flag; it
 * covers P and every name that continues P with a dot, so the match looks
 * at the character after P and "orders.*" never covers "ordersx". Since
 * topic names cannot hold '*', "P.*" cannot be mistaken for a name.
 */
#include "grants.h"

#include <stdio.h>
#include <string.h>

#include "rq_names.h"
#include "rq_err.h"

#define GRANT_FORMS                                                     \
    "a grant is admin, produce:TOPIC, consume:TOPIC, produce:PREFIX.* " \
    "or consume:PREFIX.* (produce:* and consume:* for every topic)"

static const char *kind_name(enum grant_kind k)
{
    switch (k) {
        case GRANT_ADMIN:
            return "admin";
        case GRANT_PRODUCE:
            return "produce";
        case GRANT_CONSUME:
            return "consume";
    }
    return "?";
}

int grant_parse(const char *text, struct grant *out, char *why, size_t whyn)
{
    memset(out, 0, sizeof *out);
    size_t len = strnlen(text, GRANT_TEXT_MAX + 1);
    if (len == 0) {
        rq_why(why, whyn, "an empty grant; %s", GRANT_FORMS);
        return RQ_INVALID;
    }
    if (len > GRANT_TEXT_MAX) {
        rq_why(why, whyn, "a grant of more than %d characters; %s",
               GRANT_TEXT_MAX, GRANT_FORMS);
        return RQ_INVALID;
    }
    if (strcmp(text, "admin") == 0) {
        out->kind = GRANT_ADMIN;
        return 0;
    }
    const char *colon = strchr(text, ':');
    size_t klen = colon != NULL ? (size_t)(colon - text) : len;
    if (klen == 5 && strncmp(text, "admin", 5) == 0) {
        rq_why(why, whyn, "'%s': admin takes no topic (it grants everything)",
               text);
        return RQ_INVALID;
    }
    if (klen == 7 && strncmp(text, "produce", 7) == 0) {
        out->kind = GRANT_PRODUCE;
    } else if (klen == 7 && strncmp(text, "consume", 7) == 0) {
        out->kind = GRANT_CONSUME;
    } else {
        rq_why(why, whyn, "'%s': unknown grant '%.*s'; %s", text, (int)klen,
               text, GRANT_FORMS);
        return RQ_INVALID;
    }
    if (colon == NULL || colon[1] == '\0') {
        rq_why(why, whyn,
               "'%s' needs a topic: %s:TOPIC or %s:PREFIX.* (or %s:* for "
               "every topic)",
               text, kind_name(out->kind), kind_name(out->kind),
               kind_name(out->kind));
        return RQ_INVALID;
    }
    const char *t = colon + 1;
    size_t tlen = strlen(t);
    if (strcmp(t, "*") == 0) {
        out->prefix = true;
        return 0;
    }
    if (tlen > 2 && strcmp(t + tlen - 2, ".*") == 0) {
        out->prefix = true;
        tlen -= 2;
    }
    if (memchr(t, '*', tlen) != NULL) {
        rq_why(why, whyn,
               "'%s': '*' may only end a prefix, as in %s:orders.*, or "
               "stand alone (%s:*)",
               text, kind_name(out->kind), kind_name(out->kind));
        return RQ_INVALID;
    }
    if (tlen > RQ_NAMES_TOPIC_MAX) {
        rq_why(why, whyn, "'%s': a topic name has at most %d characters", text,
               RQ_NAMES_TOPIC_MAX);
        return RQ_INVALID;
    }
    memcpy(out->topic, t, tlen);
    out->topic[tlen] = '\0';
    if (!rq_names_topic_valid(out->topic)) {
        rq_why(why, whyn,
               "'%s': '%s' is not a topic name (1-%d characters of "
               "[A-Za-z0-9._-], not . or ..)",
               text, out->topic, RQ_NAMES_TOPIC_MAX);
        return RQ_INVALID;
    }
    return 0;
}

static bool grant_same(const struct grant *a, const struct grant *b)
{
    return a->kind == b->kind && a->prefix == b->prefix &&
           strcmp(a->topic, b->topic) == 0;
}

int grants_add(struct grants *gs, const struct grant *g, char *why, size_t whyn)
{
    for (size_t i = 0; i < gs->n; i++) {
        if (grant_same(&gs->g[i], g)) {
            return 0;
        }
    }
    if (gs->n == GRANTS_MAX) {
        rq_why(why, whyn, "a token holds at most %d grants", GRANTS_MAX);
        return RQ_INVALID;
    }
    gs->g[gs->n++] = *g;
    return 0;
}

int grants_parse(const char *text, struct grants *out, char *why, size_t whyn)
{
    char one[GRANT_TEXT_MAX + 2];
    struct grant g;

    memset(out, 0, sizeof *out);
    const char *p = text;
    for (;;) {
        while (*p == ' ') {
            p++;
        }
        if (*p == '\0') {
            break;
        }
        size_t n = strcspn(p, " ");
        /* One character over the limit is enough for grant_parse to
         * refuse it by its length. */
        size_t keep = n < sizeof one - 1 ? n : sizeof one - 1;
        memcpy(one, p, keep);
        one[keep] = '\0';
        int rv = grant_parse(one, &g, why, whyn);
        if (rv == 0) {
            rv = grants_add(out, &g, why, whyn);
        }
        if (rv != 0) {
            return rv;
        }
        p += n;
    }
    if (out->n == 0) {
        rq_why(why, whyn, "a token needs at least one grant; %s", GRANT_FORMS);
        return RQ_INVALID;
    }
    return 0;
}

void grant_format(const struct grant *g, char *out, size_t n)
{
    if (g->kind == GRANT_ADMIN) {
        snprintf(out, n, "admin");
    } else if (g->prefix && g->topic[0] == '\0') {
        snprintf(out, n, "%s:*", kind_name(g->kind));
    } else {
        snprintf(out, n, "%s:%s%s", kind_name(g->kind), g->topic,
                 g->prefix ? ".*" : "");
    }
}

void grants_format(const struct grants *gs, char *out, size_t n)
{
    char one[GRANT_TEXT_MAX + 1];
    size_t len = 0;
    if (n == 0) {
        return;
    }
    out[0] = '\0';
    for (size_t i = 0; i < gs->n && len < n; i++) {
        grant_format(&gs->g[i], one, sizeof one);
        int w = snprintf(out + len, n - len, "%s%s", i > 0 ? " " : "", one);
        len += w > 0 ? (size_t)w : 0;
    }
}

bool grant_covers(const struct grant *g, const char *topic)
{
    if (g->kind == GRANT_ADMIN) {
        return true;
    }
    if (!g->prefix) {
        return strcmp(g->topic, topic) == 0;
    }
    size_t n = strlen(g->topic);
    if (n == 0) {
        return true; /* "*" */
    }
    return strncmp(topic, g->topic, n) == 0 &&
           (topic[n] == '\0' || topic[n] == '.');
}

bool grants_allow(const struct grants *gs, enum grant_action action,
                  const char *topic)
{
    for (size_t i = 0; i < gs->n; i++) {
        const struct grant *g = &gs->g[i];
        bool kind_ok =
            g->kind == GRANT_ADMIN ||
            (action == GRANT_TO_PRODUCE && g->kind == GRANT_PRODUCE) ||
            (action == GRANT_TO_CONSUME && g->kind == GRANT_CONSUME) ||
            action == GRANT_TO_SEE;
        if (kind_ok && grant_covers(g, topic)) {
            return true;
        }
    }
    return false;
}

bool grants_admin(const struct grants *gs)
{
    for (size_t i = 0; i < gs->n; i++) {
        if (gs->g[i].kind == GRANT_ADMIN) {
            return true;
        }
    }
    return false;
}

void grants_refusal(enum grant_action action, const char *topic, char *out,
                    size_t n)
{
    /* The first dot-separated part of the name: the broadest prefix that
     * still names this topic's family. */
    int first = (int)strcspn(topic, ".");
    switch (action) {
        case GRANT_TO_PRODUCE:
            snprintf(out, n,
                     "this token may not produce to topic '%s'; it needs the "
                     "grant produce:%s or produce:%.*s.*",
                     topic, topic, first, topic);
            return;
        case GRANT_TO_CONSUME:
            snprintf(out, n,
                     "this token may not consume from topic '%s'; it needs "
                     "the grant consume:%s or consume:%.*s.*",
                     topic, topic, first, topic);
            return;
        case GRANT_TO_SEE:
            snprintf(out, n,
                     "this token has no grant on topic '%s'; it needs a "
                     "produce or consume grant on it, such as consume:%s or "
                     "consume:%.*s.*",
                     topic, topic, first, topic);
            return;
    }
    snprintf(out, n, "this token may not use topic '%s'", topic);
}

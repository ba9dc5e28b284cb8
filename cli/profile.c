/*
 * Profiles (see profile.h): the file's JSON, read with jansson and checked
 * whole before anything is used, so that a file edited by hand is either
 * taken as it is or refused with the member at fault named, never half
 * used.
 *
 * The set is kept sorted by name, so that the file, profile list and the
 * completion of names come out in the same order whatever order the
 * profiles were made in.
 */
#include "profile.h"

#include <jansson.h>
#include <stdlib.h>
#include <string.h>

#include "rq_err.h"
#include "rq_json.h"

#define PROFILE_VERSION 1

int profile_name_check(const char *name, char *why, size_t whyn)
{
    size_t len = strlen(name);
    if (len == 0 || len > PROFILE_NAME_MAX) {
        rq_why(why, whyn,
               "a profile name is 1 to %d characters of [A-Za-z0-9._-], not "
               "'%.80s'",
               PROFILE_NAME_MAX, name);
        return RQ_INVALID;
    }
    for (size_t i = 0; i < len; i++) {
        char c = name[i];
        if (!((c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') ||
              (c >= '0' && c <= '9') || c == '.' || c == '_' || c == '-')) {
            rq_why(why, whyn,
                   "a profile name is 1 to %d characters of [A-Za-z0-9._-], "
                   "not '%.80s'",
                   PROFILE_NAME_MAX, name);
            return RQ_INVALID;
        }
    }
    return 0;
}

static bool set(const char *s)
{
    return s != NULL && s[0] != '\0';
}

int profile_path(const struct profile_env *env, char *out, size_t n, char *why,
                 size_t whyn)
{
    int len;
    if (set(env->config)) {
        len = snprintf(out, n, "%s", env->config);
    } else if (set(env->xdg_config_home) && env->xdg_config_home[0] == '/') {
        /* A relative XDG_CONFIG_HOME is invalid and to be ignored (the XDG
         * Base Directory Specification). */
        len = snprintf(out, n, "%s/raftq/profiles.json", env->xdg_config_home);
    } else if (set(env->home)) {
        len = snprintf(out, n, "%s/.config/raftq/profiles.json", env->home);
    } else {
        rq_why(why, whyn,
               "no place for the profiles file: HOME, XDG_CONFIG_HOME and "
               "RAFTQ_CONFIG are all unset");
        return RQ_INVALID;
    }
    if (len < 0 || (size_t)len >= n) {
        rq_why(why, whyn, "the profiles file's path is too long");
        return RQ_INVALID;
    }
    return 0;
}

struct profiles *profile_new(void)
{
    return calloc(1, sizeof(struct profiles));
}

static void wipe_free(char *s)
{
    if (s != NULL) {
        explicit_bzero(s, strlen(s));
        free(s);
    }
}

static void entry_clear(struct profile *p)
{
    free(p->managers);
    wipe_free(p->token);
    free(p->cacert);
    memset(p, 0, sizeof *p);
}

void profile_free(struct profiles *ps)
{
    if (ps == NULL) {
        return;
    }
    for (size_t i = 0; i < ps->n; i++) {
        entry_clear(&ps->v[i]);
    }
    free(ps->v);
    free(ps);
}

/* Where @name is, or would go, in the sorted array; *@found says which. */
static size_t slot(const struct profiles *ps, const char *name, bool *found)
{
    size_t lo = 0, hi = ps->n;
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        int c = strcmp(ps->v[mid].name, name);
        if (c == 0) {
            *found = true;
            return mid;
        }
        if (c < 0) {
            lo = mid + 1;
        } else {
            hi = mid;
        }
    }
    *found = false;
    return lo;
}

const struct profile *profile_find(const struct profiles *ps, const char *name)
{
    bool found;
    size_t i = slot(ps, name, &found);
    return found ? &ps->v[i] : NULL;
}

/* A copy of @s, or NULL for NULL; *@nomem is set when a copy failed. */
static char *dup_or_null(const char *s, bool *nomem)
{
    if (s == NULL) {
        return NULL;
    }
    char *d = strdup(s);
    *nomem = *nomem || d == NULL;
    return d;
}

int profile_put(struct profiles *ps, const struct profile *p, bool replace)
{
    bool found, nomem = false;
    if (profile_name_check(p->name, NULL, 0) != 0) {
        return RQ_INVALID;
    }
    size_t i = slot(ps, p->name, &found);
    if (found && !replace) {
        return RQ_EXISTS;
    }
    if (!found && ps->n == PROFILE_MAX) {
        return RQ_INVALID;
    }
    struct profile copy = {0};
    memcpy(copy.name, p->name, strlen(p->name) + 1);
    copy.managers = dup_or_null(p->managers, &nomem);
    copy.token = dup_or_null(p->token, &nomem);
    copy.cacert = dup_or_null(p->cacert, &nomem);
    if (nomem) {
        entry_clear(&copy); /* UNTESTED: ENOMEM only. */
        return RQ_NOMEM;
    }
    if (found) {
        entry_clear(&ps->v[i]);
        ps->v[i] = copy;
        return 0;
    }
    struct profile *v = realloc(ps->v, (ps->n + 1) * sizeof *v);
    if (v == NULL) {
        entry_clear(&copy); /* UNTESTED: ENOMEM only. */
        return RQ_NOMEM;
    }
    ps->v = v;
    memmove(&v[i + 1], &v[i], (ps->n - i) * sizeof *v);
    v[i] = copy;
    ps->n++;
    return 0;
}

int profile_delete(struct profiles *ps, const char *name)
{
    bool found;
    size_t i = slot(ps, name, &found);
    if (!found) {
        return RQ_NOTFOUND;
    }
    if (strcmp(ps->current, name) == 0) {
        ps->current[0] = '\0';
    }
    entry_clear(&ps->v[i]);
    memmove(&ps->v[i], &ps->v[i + 1], (ps->n - i - 1) * sizeof ps->v[0]);
    ps->n--;
    return 0;
}

int profile_use(struct profiles *ps, const char *name)
{
    if (profile_find(ps, name) == NULL) {
        return RQ_NOTFOUND;
    }
    memcpy(ps->current, name, strlen(name) + 1);
    return 0;
}

int profile_choose(const struct profiles *ps, const char *name,
                   const struct profile **out, char *why, size_t whyn)
{
    *out = NULL;
    if (name != NULL) {
        *out = profile_find(ps, name);
        if (*out == NULL) {
            rq_why(why, whyn, "no profile '%s'", name);
            return RQ_NOTFOUND;
        }
        return 0;
    }
    if (ps->current[0] != '\0') {
        *out = profile_find(ps, ps->current);
    }
    return 0;
}

void profile_apply(struct cmdline *cl, const struct profile *p)
{
    if (p == NULL) {
        return;
    }
    if (cl->managers_default && p->managers != NULL) {
        cl->managers = p->managers;
        cl->managers_default = false;
    }
    if (cl->token == NULL && p->token != NULL) {
        cl->token = p->token;
    }
    if (cl->cacert == NULL && p->cacert != NULL) {
        cl->cacert = p->cacert;
    }
}

void profile_token_mask(const char *token, char *out, size_t n)
{
    size_t len = strlen(token);
    if (len >= 16) {
        snprintf(out, n, "%.4s... (%zu characters)", token, len);
    } else {
        snprintf(out, n, "(%zu characters)", len);
    }
}

/* ---- The file's JSON ---- */

/* One setting of profile @name: absent (NULL), or a non-empty string
 * (without NUL bytes: jansson refuses \u0000 unless told otherwise). */
static int setting(json_t *obj, const char *name, const char *key, char **out,
                   char *why, size_t whyn)
{
    json_t *v = json_object_get(obj, key);
    *out = NULL;
    if (v == NULL) {
        return 0;
    }
    const char *s = json_string_value(v);
    size_t len = json_string_length(v);
    if (s == NULL || len == 0 || len > PROFILE_VALUE_MAX) {
        rq_why(why, whyn,
               "profile '%s': %s must be a non-empty string of at most %d "
               "bytes",
               name, key, PROFILE_VALUE_MAX);
        return RQ_MALFORMED;
    }
    *out = strdup(s);
    return *out != NULL ? 0 : RQ_NOMEM;
}

static int parse_profile(struct profiles *ps, const char *name, json_t *obj,
                         char *why, size_t whyn)
{
    char reason[160];
    const char *key;
    json_t *v;
    struct profile p = {0};
    int rv;

    if (profile_name_check(name, reason, sizeof reason) != 0) {
        rq_why(why, whyn, "profiles: %s", reason);
        return RQ_MALFORMED;
    }
    if (!json_is_object(obj)) {
        rq_why(why, whyn, "profile '%s' is not an object", name);
        return RQ_MALFORMED;
    }
    json_object_foreach(obj, key, v)
    {
        if (strcmp(key, "managers") != 0 && strcmp(key, "token") != 0 &&
            strcmp(key, "cacert") != 0) {
            rq_why(why, whyn,
                   "profile '%s': unknown member '%.80s' (managers, token and "
                   "cacert are known)",
                   name, key);
            return RQ_MALFORMED;
        }
    }
    memcpy(p.name, name, strlen(name) + 1);
    if ((rv = setting(obj, name, "managers", &p.managers, why, whyn)) != 0 ||
        (rv = setting(obj, name, "token", &p.token, why, whyn)) != 0 ||
        (rv = setting(obj, name, "cacert", &p.cacert, why, whyn)) != 0) {
        goto err_after_settings;
    }
    if (p.cacert != NULL && p.cacert[0] != '/') {
        rq_why(why, whyn, "profile '%s': cacert must be an absolute path",
               name);
        rv = RQ_MALFORMED;
        goto err_after_settings;
    }
    rv = profile_put(ps, &p, false);
    if (rv == RQ_INVALID) {
        rq_why(why, whyn, "more than %d profiles", PROFILE_MAX);
        rv = RQ_MALFORMED;
    }
err_after_settings:
    entry_clear(&p);
    return rv;
}

static int parse_root(struct profiles *ps, json_t *root, char *why, size_t whyn)
{
    const char *key;
    json_t *v;
    int rv;

    if (!json_is_object(root)) {
        rq_why(why, whyn, "not a JSON object");
        return RQ_MALFORMED;
    }
    json_object_foreach(root, key, v)
    {
        if (strcmp(key, "version") != 0 && strcmp(key, "current") != 0 &&
            strcmp(key, "profiles") != 0) {
            rq_why(why, whyn,
                   "unknown member '%.80s' (version, current and profiles "
                   "are known)",
                   key);
            return RQ_MALFORMED;
        }
    }
    v = json_object_get(root, "version");
    if (v != NULL &&
        (!json_is_integer(v) || json_integer_value(v) != PROFILE_VERSION)) {
        rq_why(why, whyn,
               "version must be %d (a file of another raftq release?)",
               PROFILE_VERSION);
        return RQ_MALFORMED;
    }
    json_t *profiles = json_object_get(root, "profiles");
    if (profiles != NULL && !json_is_object(profiles)) {
        rq_why(why, whyn, "profiles must be an object of profiles by name");
        return RQ_MALFORMED;
    }
    json_object_foreach(profiles, key, v)
    {
        if ((rv = parse_profile(ps, key, v, why, whyn)) != 0) {
            return rv;
        }
    }
    v = json_object_get(root, "current");
    if (v == NULL) {
        return 0;
    }
    const char *current = json_string_value(v);
    if (current == NULL || profile_use(ps, current) != 0) {
        rq_why(why, whyn, "current must name one of the profiles");
        return RQ_MALFORMED;
    }
    return 0;
}

int profile_parse(const char *text, size_t len, struct profiles **out,
                  char *why, size_t whyn)
{
    json_error_t jerr;
    size_t i = 0;

    *out = profile_new();
    if (*out == NULL) {
        return RQ_NOMEM; /* UNTESTED: ENOMEM only. */
    }
    while (i < len && (text[i] == ' ' || text[i] == '\t' || text[i] == '\n' ||
                       text[i] == '\r')) {
        i++;
    }
    if (i == len) {
        return 0; /* An empty file holds no profile. */
    }
    /* The scan keeps a file of 100000 '[' from jansson's recursion, as for
     * request bodies (rq_json.h). */
    json_t *root = NULL;
    if (rq_json_too_deep((const uint8_t *)text, len, RQ_JSON_MAX_DEPTH)) {
        rq_why(why, whyn, "nested deeper than %d levels", RQ_JSON_MAX_DEPTH);
    } else {
        root = json_loadb(text, len, JSON_REJECT_DUPLICATES, &jerr);
        if (root == NULL) {
            rq_why(why, whyn, "not JSON: %s (line %d, column %d)",
                   json_error_code(&jerr) == json_error_null_character
                       ? "a string holds \\u0000"
                       : jerr.text,
                   jerr.line, jerr.column);
        }
    }
    if (root == NULL) {
        profile_free(*out);
        *out = NULL;
        return RQ_MALFORMED;
    }
    int rv = parse_root(*out, root, why, whyn);
    json_decref(root);
    if (rv != 0) {
        profile_free(*out);
        *out = NULL;
    }
    return rv;
}

/* Sets @key of @obj to a string copy of @s, when @s is not NULL. */
static int put_string(json_t *obj, const char *key, const char *s)
{
    if (s == NULL) {
        return 0;
    }
    return json_object_set_new(obj, key, json_string(s)) == 0 ? 0 : RQ_NOMEM;
}

char *profile_dump(const struct profiles *ps)
{
    json_t *root = json_object();
    json_t *profiles = json_object();
    char *text = NULL;
    int rv = 0;

    if (root == NULL || profiles == NULL) {
        goto err; /* UNTESTED: ENOMEM only. */
    }
    rv |= json_object_set_new(root, "version", json_integer(PROFILE_VERSION));
    if (ps->current[0] != '\0') {
        rv |= put_string(root, "current", ps->current);
    }
    for (size_t i = 0; i < ps->n; i++) {
        const struct profile *p = &ps->v[i];
        json_t *obj = json_object();
        if (obj == NULL) {
            goto err; /* UNTESTED: ENOMEM only. */
        }
        rv |= json_object_set_new(profiles, p->name, obj);
        rv |= put_string(obj, "managers", p->managers);
        rv |= put_string(obj, "token", p->token);
        rv |= put_string(obj, "cacert", p->cacert);
    }
    /* Set last: json_object_set_new steals @profiles whatever it returns. */
    rv |= json_object_set_new(root, "profiles", profiles);
    profiles = NULL;
    if (rv != 0) {
        goto err; /* UNTESTED: ENOMEM only. */
    }
    char *s = json_dumps(root, JSON_INDENT(2) | JSON_PRESERVE_ORDER);
    if (s == NULL) {
        goto err; /* UNTESTED: ENOMEM only. */
    }
    size_t len = strlen(s);
    text = malloc(len + 2);
    if (text != NULL) {
        memcpy(text, s, len);
        text[len] = '\n';
        text[len + 1] = '\0';
    }
    explicit_bzero(s, len);
    free(s);
err:
    json_decref(profiles);
    json_decref(root);
    return text;
}

/*
 * Profiles: named sets of the client's settings for one cluster (its
 * managers, a token, the CA that verifies https:// managers), one of them
 * current, as rpk's profiles or nats's contexts. They live in one JSON
 * file, drawn here as jansson writes it:
 *
 *   {"version": 1, "current": "dev",
 *    "profiles": {"dev": {"managers": "http://127.0.0.1:9500,...",
 *                         "token": "...", "cacert": "/abs/ca.pem"}}}
 *
 * ("current" and each profile's three members are optional.)
 *
 * This module is the pure part: the file's text to structs and back, the
 * names, where the file is, and where a profile ranks among the line, the
 * environment and the defaults. It reads no environment and touches no
 * file; profile_cmd.h does both.
 */
#ifndef PROFILE_H
#define PROFILE_H

#include <stdbool.h>
#include <stddef.h>

#include "cmdline.h"

#define PROFILE_NAME_MAX 64     /* Characters of a name. */
#define PROFILE_MAX 1000        /* Profiles a file may hold. */
#define PROFILE_VALUE_MAX 16384 /* Bytes of a setting. */
#define PROFILE_PATH_MAX 4096

struct profile {
    char name[PROFILE_NAME_MAX + 1];
    char *managers; /* URL,... or NULL: not set. */
    char *token;    /* Bearer token or NULL. */
    char *cacert;   /* Absolute path of a PEM CA, or NULL. */
};

/* The whole file: its profiles sorted by name, and the current one. */
struct profiles {
    struct profile *v;
    size_t n;
    char current[PROFILE_NAME_MAX + 1]; /* "" when none is. */
};

/* Where the file is: what the caller read from the environment (NULL when
 * unset). Borrowed. */
struct profile_env {
    const char *config;          /* RAFTQ_CONFIG: the file itself. */
    const char *xdg_config_home; /* XDG_CONFIG_HOME */
    const char *home;            /* HOME */
};

/* 0 when @name is 1 to PROFILE_NAME_MAX characters of [A-Za-z0-9._-], else
 * RQ_INVALID with @why saying so. */
int profile_name_check(const char *name, char *why, size_t whyn);

/*
 * The file's path into @out (@n bytes): @env->config if set, else
 * $XDG_CONFIG_HOME/raftq/profiles.json, else
 * $HOME/.config/raftq/profiles.json (empty variables count as unset, and
 * XDG_CONFIG_HOME must be absolute, as the XDG specification says).
 * RQ_INVALID with @why when none is set or the path does not fit.
 */
int profile_path(const struct profile_env *env, char *out, size_t n, char *why,
                 size_t whyn);

/* An empty set, or NULL on ENOMEM. Caller frees with profile_free(). */
struct profiles *profile_new(void);

/* No-op on NULL. Wipes the tokens before freeing them. */
void profile_free(struct profiles *ps);

/*
 * Parses the file's @len bytes of @text into a new set in *@out (caller
 * frees with profile_free()). RQ_MALFORMED with @why (the place in the
 * text, or the member at fault) for anything but the format above:
 * another version, an unknown member, a bad name, a setting that is not a
 * non-empty string, a relative CA path, a current
 * profile the file does not hold. RQ_NOMEM on ENOMEM.
 */
int profile_parse(const char *text, size_t len, struct profiles **out,
                  char *why, size_t whyn);

/* The file's text for @ps (two-space indents, a newline at the end), or
 * NULL on ENOMEM. Caller frees with free(). */
char *profile_dump(const struct profiles *ps);

/* The profile named @name, or NULL. Borrowed from @ps until it changes. */
const struct profile *profile_find(const struct profiles *ps, const char *name);

/*
 * Adds @p (its strings copied) to @ps; with @replace, a profile of the same
 * name is replaced whole, else that is RQ_EXISTS. 0, RQ_EXISTS, RQ_INVALID
 * (a bad name, or a set already holding PROFILE_MAX) or RQ_NOMEM.
 */
int profile_put(struct profiles *ps, const struct profile *p, bool replace);

/* Removes profile @name (and clears the current one if it was). 0 or
 * RQ_NOTFOUND. */
int profile_delete(struct profiles *ps, const char *name);

/* Makes @name current. 0 or RQ_NOTFOUND. */
int profile_use(struct profiles *ps, const char *name);

/*
 * The profile a command takes its settings from: @name (--profile or
 * RAFTQ_PROFILE) if not NULL, else the current one, else none (*@out NULL,
 * returns 0). RQ_NOTFOUND with @why when @name is not in @ps.
 */
int profile_choose(const struct profiles *ps, const char *name,
                   const struct profile **out, char *why, size_t whyn);

/*
 * Fills in @cl what neither its options nor the environment gave, from
 * @p (which may be NULL): so a setting comes from its option, else its
 * environment variable, else the profile, else the default. @cl borrows
 * @p's strings, so @p must outlive its use.
 */
void profile_apply(struct cmdline *cl, const struct profile *p);

/* @token as it may be shown: its first 4 characters and its length
 * ("abcd... (64 characters)"), or only its length when it is shorter than
 * 16 characters. Into @out (@n bytes). */
void profile_token_mask(const char *token, char *out, size_t n);

#endif /* PROFILE_H */

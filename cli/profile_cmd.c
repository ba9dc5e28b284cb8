/*
 * The profiles file and the profile commands (see profile_cmd.h).
 *
 * Two raftq profile commands run at the same time may lose one's change
 * (each reads, changes and renames the whole file); the file itself stays
 * whole either way, which is what a command that only reads it needs.
 */
#include "profile_cmd.h"

#include <errno.h>
#include <fcntl.h>
#include <jansson.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "commands.h"
#include "rq_err.h"
#include "rq_fs.h"
#include "table.h"
#include "url.h"

#define WHY_LEN 512
#define FILE_MAX (1u << 20) /* Bytes of a profiles file. */

/* ---- The file ---- */

/*
 * Reads @path into a new set in *@out (a file that does not exist holds no
 * profile). CLI_OK, or CLI_USAGE having printed what is wrong with the
 * file, named.
 */
static int load(const char *path, struct profiles **out)
{
    char why[WHY_LEN];
    struct stat st;
    char *text = NULL;
    size_t len = 0;

    *out = NULL;
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0 && errno == ENOENT) {
        *out = profile_new();
        if (*out == NULL) {
            fprintf(stderr, "raftq: out of memory\n"); /* UNTESTED */
            return CLI_REFUSED;
        }
        return CLI_OK;
    }
    if (fd < 0) {
        fprintf(stderr, "raftq: cannot read the profiles file %s: %s\n", path,
                strerror(errno));
        return CLI_USAGE;
    }
    if (fstat(fd, &st) != 0 || !S_ISREG(st.st_mode) ||
        (uint64_t)st.st_size > FILE_MAX) {
        fprintf(stderr,
                "raftq: the profiles file %s is not a regular file of at most "
                "%u bytes\n",
                path, FILE_MAX);
        goto err_after_open;
    }
    text = malloc((size_t)st.st_size + 1);
    if (text == NULL) {
        fprintf(stderr, "raftq: out of memory\n"); /* UNTESTED */
        goto err_after_open;
    }
    while (len < (size_t)st.st_size) {
        ssize_t got = read(fd, text + len, (size_t)st.st_size - len);
        if (got < 0 && errno == EINTR) {
            continue;
        }
        if (got <= 0) {
            fprintf(stderr, "raftq: cannot read the profiles file %s: %s\n",
                    path, got < 0 ? strerror(errno) : "it shrank");
            goto err_after_alloc;
        }
        len += (size_t)got;
    }
    close(fd);
    text[len] = '\0';
    int rv = profile_parse(text, len, out, why, sizeof why);
    explicit_bzero(text, len);
    free(text);
    if (rv != 0) {
        fprintf(stderr,
                "raftq: the profiles file %s is malformed: %s (fix it, or "
                "remove it and create the profiles again)\n",
                path, rv == RQ_NOMEM ? "out of memory" : why);
        return CLI_USAGE;
    }
    return CLI_OK;

err_after_alloc:
    explicit_bzero(text, len);
    free(text);
err_after_open:
    close(fd);
    return CLI_USAGE;
}

/* Creates the directories leading to @path that are missing, with mode
 * 0700 (mkdir -p for the file's directory). 0, or -1 with errno. */
static int make_parents(const char *path, char *failed, size_t failedn)
{
    char dir[PROFILE_PATH_MAX];
    snprintf(dir, sizeof dir, "%s", path);
    char *slash = strrchr(dir, '/');
    if (slash == NULL || slash == dir) {
        return 0; /* The current or the root directory. */
    }
    *slash = '\0';
    for (char *p = dir + 1;; p++) {
        if (*p != '/' && *p != '\0') {
            continue;
        }
        char c = *p;
        *p = '\0';
        if (mkdir(dir, 0700) != 0 && errno != EEXIST) {
            snprintf(failed, failedn, "%s", dir);
            return -1;
        }
        *p = c;
        if (c == '\0') {
            return 0;
        }
    }
}

/* Writes @ps to @path (see profile_cmd.h for how). CLI_OK, or CLI_REFUSED
 * having printed why. */
static int save(const char *path, const struct profiles *ps)
{
    char tmp[PROFILE_PATH_MAX + 16];
    char failed[PROFILE_PATH_MAX];

    char *text = profile_dump(ps);
    if (text == NULL) {
        fprintf(stderr, "raftq: out of memory\n"); /* UNTESTED */
        return CLI_REFUSED;
    }
    size_t len = strlen(text);
    if (make_parents(path, failed, sizeof failed) != 0) {
        fprintf(stderr, "raftq: cannot create the directory %s: %s\n", failed,
                strerror(errno));
        goto err;
    }
    snprintf(tmp, sizeof tmp, "%s.XXXXXX", path);
    int fd = mkstemp(tmp); /* Mode 0600, whatever the umask. */
    if (fd < 0) {
        fprintf(stderr, "raftq: cannot write the profiles file %s: %s\n", path,
                strerror(errno));
        goto err;
    }
    int failure = 0;
    for (size_t done = 0; done < len && failure == 0;) {
        ssize_t n = write(fd, text + done, len - done);
        if (n < 0 && errno != EINTR) {
            failure = errno;
        } else if (n > 0) {
            done += (size_t)n;
        }
    }
    /* fsync before rename: a crash leaves the old file or the whole new
     * one, never an empty file under the old name. */
    if (failure == 0 && fsync(fd) != 0) {
        failure = errno;
    }
    if (close(fd) != 0 && failure == 0) {
        failure = errno;
    }
    if (failure != 0) {
        fprintf(stderr, "raftq: cannot write %s: %s\n", tmp, strerror(failure));
        unlink(tmp);
        goto err;
    }
    if (rename(tmp, path) != 0) {
        fprintf(stderr, "raftq: cannot rename %s to %s: %s\n", tmp, path,
                strerror(errno));
        unlink(tmp);
        goto err;
    }
    /* The rename survives a power cut once the directory is synced. A
     * failure there is not reported: the new file is in place either way. */
    char *slash = strrchr(tmp, '/');
    if (slash != NULL && slash != tmp) {
        *slash = '\0';
        (void)rq_fsync_dir(tmp);
    } else if (slash == NULL) {
        (void)rq_fsync_dir(".");
    }
    explicit_bzero(text, len);
    free(text);
    return CLI_OK;

err:
    explicit_bzero(text, len);
    free(text);
    return CLI_REFUSED;
}

/* The file's path and its profiles. CLI_OK or an exit code, printed. */
static int open_profiles(const struct profile_env *env, char *path,
                         size_t pathn, struct profiles **ps)
{
    char why[WHY_LEN];
    if (profile_path(env, path, pathn, why, sizeof why) != 0) {
        fprintf(stderr, "raftq: %s\n", why);
        return CLI_USAGE;
    }
    return load(path, ps);
}

/* ---- The commands ---- */

static int create(const struct cmdline *cl, const char *path,
                  struct profiles *ps)
{
    char bases[URL_BASES_MAX][URL_MAX];
    char why[WHY_LEN];
    size_t nb;
    struct profile p = {0};
    char *cacert = NULL;

    if (cl->managers != NULL &&
        url_bases_parse(cl->managers, bases, &nb, why, sizeof why) != 0) {
        fprintf(stderr, "raftq: --managers: %s\n", why);
        return CLI_USAGE;
    }
    if (cl->token != NULL && cl->token[0] == '\0') {
        fprintf(stderr, "raftq: --token is empty\n");
        return CLI_USAGE;
    }
    if (cl->cacert != NULL) {
        /* Kept absolute, so that the profile works from any directory. */
        struct stat st;
        cacert = realpath(cl->cacert, NULL);
        if (cacert == NULL || stat(cacert, &st) != 0 || !S_ISREG(st.st_mode)) {
            fprintf(stderr, "raftq: --cacert %s: %s\n", cl->cacert,
                    cacert == NULL ? strerror(errno) : "not a file");
            free(cacert);
            return CLI_USAGE;
        }
    }
    memcpy(p.name, cl->profile_name, strlen(cl->profile_name) + 1);
    p.managers = (char *)cl->managers;
    p.token = (char *)cl->token;
    p.cacert = cacert;
    int rv = profile_put(ps, &p, cl->force);
    free(cacert);
    if (rv == RQ_EXISTS) {
        fprintf(stderr,
                "raftq: profile '%s' exists already in %s (--force replaces "
                "it)\n",
                p.name, path);
        return CLI_REFUSED;
    }
    if (rv != 0) {
        fprintf(stderr, "raftq: %s\n",
                rv == RQ_NOMEM ? "out of memory"
                               : "too many profiles"); /* UNTESTED */
        return CLI_REFUSED;
    }
    int code = save(path, ps);
    if (code != CLI_OK) {
        return code;
    }
    if (strcmp(ps->current, p.name) == 0) {
        printf("profile '%s' saved in %s (it is the current one)\n", p.name,
               path);
    } else {
        printf(
            "profile '%s' saved in %s; 'raftq profile use %s' makes it "
            "current\n",
            p.name, path, p.name);
    }
    return CLI_OK;
}

static int not_found(const char *name, const char *path)
{
    fprintf(stderr,
            "raftq: no profile '%s' in %s (raftq profile list shows them)\n",
            name, path);
    return CLI_REFUSED;
}

static int use(const struct cmdline *cl, const char *path, struct profiles *ps)
{
    if (profile_use(ps, cl->profile_name) != 0) {
        return not_found(cl->profile_name, path);
    }
    int code = save(path, ps);
    if (code == CLI_OK) {
        printf("profile '%s' is the current one\n", cl->profile_name);
    }
    return code;
}

static int drop(const struct cmdline *cl, const char *path, struct profiles *ps)
{
    bool was_current = strcmp(ps->current, cl->profile_name) == 0;
    if (profile_delete(ps, cl->profile_name) != 0) {
        return not_found(cl->profile_name, path);
    }
    int code = save(path, ps);
    if (code == CLI_OK) {
        printf("profile '%s' deleted%s\n", cl->profile_name,
               was_current ? "; no profile is current now" : "");
    }
    return code;
}

/* A string or JSON null. */
static json_t *string_or_null(const char *s)
{
    return s != NULL ? json_string(s) : json_null();
}

/* A profile as --json shows it: never the token, only its mask. */
static json_t *profile_json(const struct profiles *ps, const struct profile *p)
{
    char mask[64];
    if (p->token != NULL) {
        profile_token_mask(p->token, mask, sizeof mask);
    }
    return json_pack("{s:s, s:b, s:o, s:o, s:o}", "name", p->name, "current",
                     strcmp(ps->current, p->name) == 0, "managers",
                     string_or_null(p->managers), "token",
                     string_or_null(p->token != NULL ? mask : NULL), "cacert",
                     string_or_null(p->cacert));
}

static int list(const struct cmdline *cl, const char *path,
                const struct profiles *ps)
{
    if (cl->names) {
        for (size_t i = 0; i < ps->n; i++) {
            printf("%s\n", ps->v[i].name);
        }
        return CLI_OK;
    }
    if (cl->json) {
        json_t *arr = json_array();
        for (size_t i = 0; i < ps->n; i++) {
            json_array_append_new(arr, profile_json(ps, &ps->v[i]));
        }
        json_t *body = json_pack(
            "{s:o, s:o}", "current",
            string_or_null(ps->current[0] != '\0' ? ps->current : NULL),
            "profiles", arr);
        if (body == NULL) {
            fprintf(stderr, "raftq: out of memory\n"); /* UNTESTED */
            return CLI_REFUSED;
        }
        commands_print_json(body);
        json_decref(body);
        return CLI_OK;
    }
    if (ps->n == 0) {
        fprintf(stderr,
                "raftq: no profiles in %s (raftq profile create NAME "
                "--managers URL,...)\n",
                path);
        return CLI_OK;
    }
    static const char *const headers[] = {"", "NAME", "MANAGERS"};
    struct table *t = table_new(3, headers);
    if (t == NULL) {
        fprintf(stderr, "raftq: out of memory\n"); /* UNTESTED */
        return CLI_REFUSED;
    }
    for (size_t i = 0; i < ps->n; i++) {
        const struct profile *p = &ps->v[i];
        const char *cells[] = {strcmp(ps->current, p->name) == 0 ? "*" : "",
                               p->name, p->managers};
        if (table_add(t, cells) != 0) {
            table_free(t); /* UNTESTED: ENOMEM only. */
            fprintf(stderr, "raftq: out of memory\n");
            return CLI_REFUSED;
        }
    }
    table_write(t, stdout);
    table_free(t);
    return CLI_OK;
}

static int show(const struct cmdline *cl, const char *path,
                const struct profiles *ps)
{
    char why[WHY_LEN];
    const struct profile *p;
    const char *name =
        cl->profile_name != NULL ? cl->profile_name : cl->profile;

    if (profile_choose(ps, name, &p, why, sizeof why) != 0) {
        return not_found(name, path);
    }
    if (p == NULL) {
        fprintf(stderr,
                "raftq: no profile is current in %s (raftq profile use NAME, "
                "or name one)\n",
                path);
        return CLI_REFUSED;
    }
    bool current = strcmp(ps->current, p->name) == 0;
    if (cl->json) {
        json_t *body = profile_json(ps, p);
        if (body == NULL ||
            json_object_set_new(body, "file", json_string(path)) != 0) {
            json_decref(body); /* UNTESTED: ENOMEM only. */
            fprintf(stderr, "raftq: out of memory\n");
            return CLI_REFUSED;
        }
        commands_print_json(body);
        json_decref(body);
        return CLI_OK;
    }
    char mask[64] = "-";
    if (p->token != NULL) {
        profile_token_mask(p->token, mask, sizeof mask);
    }
    printf("name      %s%s\n", p->name, current ? " (current)" : "");
    printf("managers  %s\n", p->managers != NULL ? p->managers : "-");
    printf("token     %s\n", mask);
    printf("cacert    %s\n", p->cacert != NULL ? p->cacert : "-");
    printf("file      %s\n", path);
    return CLI_OK;
}

int profile_cmd_run(const struct cmdline *cl, const struct profile_env *env)
{
    char path[PROFILE_PATH_MAX];
    struct profiles *ps;

    int code = open_profiles(env, path, sizeof path, &ps);
    if (code != CLI_OK) {
        return code;
    }
    switch (cl->cmd) {
        case CMD_PROFILE_CREATE:
            code = create(cl, path, ps);
            break;
        case CMD_PROFILE_USE:
            code = use(cl, path, ps);
            break;
        case CMD_PROFILE_DELETE:
            code = drop(cl, path, ps);
            break;
        case CMD_PROFILE_LIST:
            code = list(cl, path, ps);
            break;
        case CMD_PROFILE_SHOW:
            code = show(cl, path, ps);
            break;
        default:
            code = CLI_USAGE; /* UNTESTED: the parser allows no other. */
            break;
    }
    profile_free(ps);
    return code;
}

int profile_cmd_apply(struct cmdline *cl, const struct profile_env *env,
                      struct profiles **held)
{
    char path[PROFILE_PATH_MAX];
    char why[WHY_LEN];
    const struct profile *p;

    *held = NULL;
    if (profile_path(env, path, sizeof path, why, sizeof why) != 0) {
        if (cl->profile == NULL) {
            return CLI_OK; /* No HOME, say in a container: no profiles. */
        }
        fprintf(stderr, "raftq: --profile %s: %s\n", cl->profile, why);
        return CLI_USAGE;
    }
    int code = load(path, held);
    if (code != CLI_OK) {
        return code;
    }
    if (profile_choose(*held, cl->profile, &p, why, sizeof why) != 0) {
        fprintf(stderr,
                "raftq: no profile '%s' in %s (named by --profile or "
                "RAFTQ_PROFILE; raftq profile list shows them)\n",
                cl->profile, path);
        profile_free(*held);
        *held = NULL;
        return CLI_USAGE;
    }
    profile_apply(cl, p);
    return CLI_OK;
}

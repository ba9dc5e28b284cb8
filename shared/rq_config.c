/*
 * Option tables and address parsing. This is the one module that reads the
 * environment; everything else receives a filled config struct.
 */
#include "rq_config.h"

#include <assert.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "rq_err.h"
#include "rq_keys.h"
#include "rq_log.h"

#define MAX_OPTS 64
#define ENV_NAME_MAX 96

int rq_parse_u64(const char *s, uint64_t max, uint64_t *out)
{
    uint64_t v = 0;
    if (s == NULL || *s == '\0') {
        return RQ_INVALID;
    }
    for (; *s != '\0'; s++) {
        if (*s < '0' || *s > '9') {
            return RQ_INVALID;
        }
        uint64_t d = (uint64_t)(*s - '0');
        if (d > max || v > (max - d) / 10) { /* v * 10 + d > max */
            return RQ_INVALID;
        }
        v = v * 10 + d;
    }
    *out = v;
    return 0;
}

static int parse_u64(const char *s, uint64_t *out)
{
    return rq_parse_u64(s, UINT64_MAX, out);
}

static int parse_bool(const char *s, bool *out)
{
    if (strcmp(s, "true") == 0 || strcmp(s, "1") == 0 ||
        strcmp(s, "yes") == 0) {
        *out = true;
        return 0;
    }
    if (strcmp(s, "false") == 0 || strcmp(s, "0") == 0 ||
        strcmp(s, "no") == 0) {
        *out = false;
        return 0;
    }
    return RQ_INVALID;
}

static int store(const struct rq_opt *o, void *cfg, const char *value,
                 const char *source, char *why, size_t whyn)
{
    char *field = (char *)cfg + o->offset;
    switch (o->type) {
        case RQ_OPT_STR:
            memcpy(field, &value, sizeof value);
            return 0;
        case RQ_OPT_U64: {
            uint64_t v;
            if (parse_u64(value, &v) != 0) {
                snprintf(why, whyn,
                         "--%s (from %s): '%s' is not a non-negative integer",
                         o->name, source, value);
                return RQ_INVALID;
            }
            memcpy(field, &v, sizeof v);
            return 0;
        }
        case RQ_OPT_BOOL: {
            bool v;
            if (parse_bool(value, &v) != 0) {
                snprintf(why, whyn, "--%s (from %s): '%s' is not true or false",
                         o->name, source, value);
                return RQ_INVALID;
            }
            memcpy(field, &v, sizeof v);
            return 0;
        }
        case RQ_OPT_SECRET:
            break; /* Stored by store_secret(). */
    }
    return RQ_INVALID; /* UNTESTED: unreachable with a valid table. */
}

/* Where a secret option's value was found: the value itself, or the path
 * of a file holding it; @source names the flag or variable for messages. */
struct secret_src {
    const char *text; /* NULL: not given. */
    bool file;
    const char *source;
};

/* "RAFTQ_CLUSTER_SECRET" -> "RAFTQ_CLUSTER_SECRET_FILE". */
static void file_env(const struct rq_opt *o, char *out, size_t n)
{
    snprintf(out, n, "%s_FILE", o->env);
}

/*
 * Reads a secret file into a new NUL-terminated string, without its
 * trailing line ends (what `echo` and editors add). The caller frees
 * *out. 0, or RQ_INVALID with @why naming the flag and the file.
 */
static int read_secret_file(const struct rq_opt *o, const char *path,
                            const char *source, char **out, char *why,
                            size_t whyn)
{
    const size_t cap = RQ_CONFIG_SECRET_FILE_MAX;
    char *buf;
    size_t len = 0;
    int fd = open(path, O_RDONLY | O_CLOEXEC);

    if (fd < 0) {
        rq_why(why, whyn, "--%s-file %s (from %s): cannot open: %s", o->name,
               path, source, strerror(errno));
        return RQ_INVALID;
    }
    buf = malloc(cap + 1);
    if (buf == NULL) {
        close(fd); /* UNTESTED: ENOMEM only. */
        rq_why(why, whyn, "out of memory reading --%s-file", o->name);
        return RQ_INVALID;
    }
    while (len <= cap) {
        ssize_t got = read(fd, buf + len, cap + 1 - len);
        if (got < 0 && errno == EINTR) {
            continue; /* UNTESTED: no signal handlers at start-up. */
        }
        if (got < 0) {
            rq_why(why, whyn, "--%s-file %s (from %s): cannot read: %s",
                   o->name, path, source, strerror(errno));
            goto err;
        }
        if (got == 0) {
            break;
        }
        len += (size_t)got;
    }
    if (len > cap) {
        rq_why(why, whyn, "--%s-file %s (from %s) is longer than %zu bytes",
               o->name, path, source, cap);
        goto err;
    }
    while (len > 0 && (buf[len - 1] == '\n' || buf[len - 1] == '\r')) {
        len--;
    }
    if (len == 0) {
        rq_why(why, whyn, "--%s-file %s (from %s) is empty", o->name, path,
               source);
        goto err;
    }
    if (memchr(buf, '\0', len) != NULL) {
        rq_why(why, whyn, "--%s-file %s (from %s) holds a NUL byte", o->name,
               path, source);
        goto err;
    }
    buf[len] = '\0';
    close(fd);
    *out = buf;
    return 0;

err:
    rq_keys_wipe(buf, cap + 1);
    free(buf);
    close(fd);
    return RQ_INVALID;
}

/* Stores a copy of the secret @src describes (its value, or the content of
 * its file) at the option's offset. */
static int store_secret(const struct rq_opt *o, void *cfg,
                        const struct secret_src *src, char *why, size_t whyn)
{
    char *copy = NULL;
    if (src->file) {
        int rv = read_secret_file(o, src->text, src->source, &copy, why, whyn);
        if (rv != 0) {
            return rv;
        }
    } else {
        copy = strdup(src->text);
        if (copy == NULL) {
            rq_why(why, whyn, "out of memory"); /* UNTESTED: ENOMEM only. */
            return RQ_INVALID;
        }
    }
    memcpy((char *)cfg + o->offset, &copy, sizeof copy);
    return 0;
}

/* The value or file of secret option @o from the environment. */
static int secret_from_env(const struct rq_opt *o, struct secret_src *src,
                           char *env_file, size_t env_filen, char *why,
                           size_t whyn)
{
    const char *v = NULL, *f = NULL;
    if (o->env != NULL) {
        file_env(o, env_file, env_filen);
        v = getenv(o->env);
        f = getenv(env_file);
    }
    v = v != NULL && v[0] != '\0' ? v : NULL;
    f = f != NULL && f[0] != '\0' ? f : NULL;
    if (v != NULL && f != NULL) {
        rq_why(why, whyn, "set %s or %s, not both", o->env, env_file);
        return RQ_INVALID;
    }
    *src = (struct secret_src){.text = v != NULL ? v : f,
                               .file = f != NULL,
                               .source = f != NULL ? env_file : o->env};
    return 0;
}

/* The option called @name (@len bytes, not NUL-terminated), or NULL. */
static const struct rq_opt *opt_named(const struct rq_opt *opts, size_t n,
                                      const char *name, size_t len)
{
    for (size_t i = 0; i < n; i++) {
        if (strlen(opts[i].name) == len &&
            strncmp(opts[i].name, name, len) == 0) {
            return &opts[i];
        }
    }
    return NULL;
}

/* The secret option whose file form is "NAME-file", or NULL. */
static const struct rq_opt *opt_file_form(const struct rq_opt *opts, size_t n,
                                          const char *name, size_t len)
{
    static const char suffix[] = "-file";
    const size_t sl = sizeof suffix - 1;
    if (len <= sl || strncmp(name + len - sl, suffix, sl) != 0) {
        return NULL;
    }
    const struct rq_opt *o = opt_named(opts, n, name, len - sl);
    return o != NULL && o->type == RQ_OPT_SECRET ? o : NULL;
}

int rq_config_parse(const struct rq_opt *opts, size_t n, void *cfg, int argc,
                    char **argv, bool *help, char *why, size_t whyn)
{
    bool seen[MAX_OPTS] = {false};
    struct secret_src secrets[MAX_OPTS] = {{NULL, false, NULL}};
    char env_file[ENV_NAME_MAX];
    int rv;

    *help = false;
    if (n > MAX_OPTS) {
        snprintf(why, whyn, "too many options in the table");
        return RQ_INVALID;
    }
    for (int i = 1; i < argc; i++) {
        const char *arg = argv[i];
        if (strcmp(arg, "--help") == 0 || strcmp(arg, "-h") == 0) {
            *help = true;
            return 0;
        }
        if (strncmp(arg, "--", 2) != 0) {
            snprintf(why, whyn,
                     "unexpected argument '%s' (flags start with --)", arg);
            return RQ_INVALID;
        }
        const char *name = arg + 2;
        const char *eq = strchr(name, '=');
        size_t len = eq != NULL ? (size_t)(eq - name) : strlen(name);
        const struct rq_opt *o = opt_named(opts, n, name, len);
        bool file_form = false;
        if (o == NULL) {
            o = opt_file_form(opts, n, name, len);
            file_form = o != NULL;
        }
        if (o == NULL) {
            snprintf(why, whyn, "unknown flag '--%.*s' (see --help)", (int)len,
                     name);
            return RQ_INVALID;
        }
        const char *value;
        if (eq != NULL) {
            value = eq + 1;
        } else if (o->type == RQ_OPT_BOOL) {
            value = "true";
        } else if (i + 1 < argc) {
            value = argv[++i];
        } else {
            snprintf(why, whyn, "flag --%.*s needs a value", (int)len, name);
            return RQ_INVALID;
        }
        if (o->type == RQ_OPT_SECRET) {
            /* Read once the command line is known: a later repeat wins. */
            struct secret_src *src = &secrets[o - opts];
            if (src->text != NULL && src->file != file_form) {
                snprintf(why, whyn, "give --%s or --%s-file, not both", o->name,
                         o->name);
                return RQ_INVALID;
            }
            *src = (struct secret_src){value, file_form, "the command line"};
        } else {
            rv = store(o, cfg, value, "the command line", why, whyn);
            if (rv != 0) {
                return rv;
            }
        }
        seen[o - opts] = true;
    }
    for (size_t i = 0; i < n; i++) {
        const struct rq_opt *o = &opts[i];
        if (o->type == RQ_OPT_SECRET) {
            struct secret_src *src = &secrets[i];
            if (!seen[i]) {
                rv = secret_from_env(o, src, env_file, sizeof env_file, why,
                                     whyn);
                if (rv != 0) {
                    return rv;
                }
            }
            if (src->text == NULL && o->def != NULL) {
                *src = (struct secret_src){o->def, false, "the default"};
            }
            if (src->text == NULL) {
                if (o->required) {
                    snprintf(why, whyn, "--%s or --%s-file is required",
                             o->name, o->name);
                    return RQ_INVALID;
                }
                continue;
            }
            rv = store_secret(o, cfg, src, why, whyn);
            if (rv != 0) {
                return rv;
            }
            continue;
        }
        if (seen[i]) {
            continue;
        }
        const char *value = o->env != NULL ? getenv(o->env) : NULL;
        const char *source = o->env;
        if (value == NULL || value[0] == '\0') {
            value = o->def;
            source = "the default";
        }
        if (value == NULL) {
            if (o->required) {
                snprintf(why, whyn, "--%s is required%s%s", o->name,
                         o->env != NULL ? " (or set " : "",
                         o->env != NULL ? o->env : "");
                if (o->env != NULL) {
                    size_t l = strlen(why);
                    snprintf(why + l, whyn - l, ")");
                }
                return RQ_INVALID;
            }
            continue;
        }
        rv = store(o, cfg, value, source, why, whyn);
        if (rv != 0) {
            return rv;
        }
    }
    return 0;
}

void rq_config_free(const struct rq_opt *opts, size_t n, void *cfg)
{
    for (size_t i = 0; i < n; i++) {
        char *v;
        if (opts[i].type != RQ_OPT_SECRET) {
            continue;
        }
        memcpy(&v, (char *)cfg + opts[i].offset, sizeof v);
        if (v != NULL) {
            rq_keys_wipe(v, strlen(v));
            free(v);
        }
        v = NULL;
        memcpy((char *)cfg + opts[i].offset, &v, sizeof v);
    }
}

int rq_config_check_secret(const char *name, const char *secret, char *why,
                           size_t whyn)
{
    char flag[96];
    snprintf(flag, sizeof flag, "--%s (or --%s-file)", name, name);
    return rq_secret_check(secret, flag, why, whyn);
}

void rq_config_usage(FILE *f, const char *usage, const struct rq_opt *opts,
                     size_t n)
{
    fprintf(f,
            "usage: %s\n\noptions (each also read from its environment "
            "variable):\n",
            usage);
    for (size_t i = 0; i < n; i++) {
        const struct rq_opt *o = &opts[i];
        fprintf(f, "  --%-22s %s", o->name, o->help);
        if (o->env != NULL) {
            fprintf(f, " [%s]", o->env);
        }
        if (o->def != NULL && o->type != RQ_OPT_SECRET) {
            fprintf(f, " (default: %s)", o->def);
        } else if (o->required) {
            fprintf(f, " (required)");
        }
        fputc('\n', f);
        if (o->type == RQ_OPT_SECRET) {
            char name[64], env_file[ENV_NAME_MAX];
            snprintf(name, sizeof name, "%s-file", o->name);
            fprintf(f,
                    "  --%-22s read --%s from this file (trailing newline "
                    "stripped)",
                    name, o->name);
            if (o->env != NULL) {
                file_env(o, env_file, sizeof env_file);
                fprintf(f, " [%s]", env_file);
            }
            fputc('\n', f);
        }
    }
    fprintf(f, "  --%-22s %s\n", "help", "print this help and exit");
}

static int split(const char *addr, char *host, size_t hostn, uint16_t *port,
                 uint64_t min_port, char *why, size_t whyn)
{
    const char *colon;
    const char *h = addr;
    size_t hlen;

    if (addr[0] == '[') {
        const char *close = strchr(addr, ']');
        if (close == NULL || close[1] != ':') {
            snprintf(why, whyn, "address '%s': expected [IPV6]:PORT", addr);
            return RQ_INVALID;
        }
        h = addr + 1;
        hlen = (size_t)(close - h);
        colon = close + 1;
    } else {
        colon = strrchr(addr, ':');
        if (colon == NULL) {
            snprintf(why, whyn, "address '%s': expected HOST:PORT", addr);
            return RQ_INVALID;
        }
        hlen = (size_t)(colon - addr);
    }
    if (hlen == 0 || hlen >= hostn) {
        snprintf(why, whyn, "address '%s': host is empty or too long", addr);
        return RQ_INVALID;
    }
    for (size_t i = 0; i < hlen; i++) {
        char c = h[i];
        if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
              (c >= '0' && c <= '9') || c == '.' || c == '-' || c == ':' ||
              c == '_')) {
            snprintf(why, whyn, "address '%s': bad character in host", addr);
            return RQ_INVALID;
        }
    }
    uint64_t p;
    if (parse_u64(colon + 1, &p) != 0 || p < min_port || p > 65535) {
        snprintf(why, whyn, "address '%s': port must be %llu-65535", addr,
                 (unsigned long long)min_port);
        return RQ_INVALID;
    }
    memcpy(host, h, hlen);
    host[hlen] = '\0';
    *port = (uint16_t)p;
    return 0;
}

int rq_addr_split(const char *addr, char *host, size_t hostn, uint16_t *port,
                  char *why, size_t whyn)
{
    return split(addr, host, hostn, port, 1, why, whyn);
}

int rq_listen_addr_split(const char *addr, char *host, size_t hostn,
                         uint16_t *port, char *why, size_t whyn)
{
    return split(addr, host, hostn, port, 0, why, whyn);
}

int rq_peers_parse(const char *s, struct rq_peer *out, size_t max, size_t *n,
                   char *why, size_t whyn)
{
    char host[RQ_ADDR_MAX];
    uint16_t port;
    size_t count = 0;
    const char *p = s;

    while (*p != '\0') {
        const char *end = strchr(p, ',');
        size_t len = end != NULL ? (size_t)(end - p) : strlen(p);
        const char *eq = memchr(p, '=', len);
        char idtext[24];
        uint64_t id;

        if (count == max) {
            snprintf(why, whyn, "peers: at most %zu entries", max);
            return RQ_INVALID;
        }
        if (eq == NULL || eq == p || (size_t)(eq - p) >= sizeof idtext) {
            snprintf(why, whyn, "peers: expected ID=HOST:PORT in '%.*s'",
                     (int)len, p);
            return RQ_INVALID;
        }
        memcpy(idtext, p, (size_t)(eq - p));
        idtext[eq - p] = '\0';
        if (parse_u64(idtext, &id) != 0 || id == 0 || id > INT64_MAX) {
            snprintf(why, whyn, "peers: id '%s' must be a positive integer",
                     idtext);
            return RQ_INVALID;
        }
        size_t alen = len - (size_t)(eq - p) - 1;
        if (alen == 0 || alen >= RQ_ADDR_MAX) {
            snprintf(why, whyn, "peers: address of %s is empty or too long",
                     idtext);
            return RQ_INVALID;
        }
        memcpy(out[count].address, eq + 1, alen);
        out[count].address[alen] = '\0';
        if (rq_addr_split(out[count].address, host, sizeof host, &port, why,
                          whyn) != 0) {
            return RQ_INVALID;
        }
        for (size_t i = 0; i < count; i++) {
            if (out[i].id == id) {
                snprintf(why, whyn, "peers: id %s appears twice", idtext);
                return RQ_INVALID;
            }
            if (strcmp(out[i].address, out[count].address) == 0) {
                snprintf(why, whyn, "peers: address %s appears twice",
                         out[count].address);
                return RQ_INVALID;
            }
        }
        out[count].id = id;
        count++;
        if (end == NULL) {
            break;
        }
        p = end + 1;
        if (*p == '\0') {
            snprintf(why, whyn, "peers: trailing comma");
            return RQ_INVALID;
        }
    }
    if (count == 0) {
        snprintf(why, whyn, "peers: the list is empty");
        return RQ_INVALID;
    }
    *n = count;
    return 0;
}

int rq_config_check_addr(const char *flag, const char *addr, size_t max_len,
                         char *why, size_t whyn)
{
    char host[RQ_ADDR_MAX];
    char reason[128];
    uint16_t port;
    if (strlen(addr) >= RQ_ADDR_MAX || strlen(addr) > max_len ||
        rq_addr_split(addr, host, sizeof host, &port, reason, sizeof reason) !=
            0) {
        snprintf(why, whyn, "--%s %s is not HOST:PORT", flag, addr);
        return RQ_INVALID;
    }
    return 0;
}

/* Parses --log-level and --log-format and starts logging as "@kind-@id". */
static int start_log(const char *kind, uint64_t id, const char *level,
                     const char *format, char *why, size_t whyn)
{
    enum rq_log_level lv;
    enum rq_log_format fmt;
    if (rq_log_level_parse(level, &lv) != 0 ||
        rq_log_format_parse(format, &fmt) != 0) {
        snprintf(why, whyn,
                 "--log-level must be debug|info|warn|error and "
                 "--log-format text|json");
        return RQ_INVALID;
    }
    char proc[48];
    snprintf(proc, sizeof proc, "%s-%" PRIu64, kind, id);
    rq_log_init(proc, lv, fmt);
    return 0;
}

const void *rq_config_field(const struct rq_config_spec *spec, const void *cfg,
                            const char *name, enum rq_opt_type type)
{
    for (size_t i = 0; i < spec->n; i++) {
        if (strcmp(spec->opts[i].name, name) == 0) {
            assert(spec->opts[i].type == type);
            return (const char *)cfg + spec->opts[i].offset;
        }
    }
    assert(0); /* Every server binary's table has the option. */
    return NULL;
}

int rq_config_load(const struct rq_config_spec *spec, void *cfg, int argc,
                   char **argv, char *why, size_t whyn)
{
    bool help;
    int rv =
        rq_config_parse(spec->opts, spec->n, cfg, argc, argv, &help, why, whyn);
    if (rv != 0) {
        return rv;
    }
    if (help) {
        rq_config_usage(stdout, spec->usage, spec->opts, spec->n);
        exit(0);
    }
    const uint64_t *id = rq_config_field(spec, cfg, "id", RQ_OPT_U64);
    const char *const *level =
        rq_config_field(spec, cfg, "log-level", RQ_OPT_STR);
    const char *const *format =
        rq_config_field(spec, cfg, "log-format", RQ_OPT_STR);
    const char *const *secret =
        rq_config_field(spec, cfg, "cluster-secret", RQ_OPT_SECRET);
    rv = start_log(spec->kind, *id, *level, *format, why, whyn);
    if (rv != 0) {
        return rv;
    }
    return rq_config_check_secret("cluster-secret", *secret, why, whyn);
}

int rq_config_check_raft_timing(uint64_t election_ms, uint64_t heartbeat_ms,
                                char *why, size_t whyn)
{
    if (election_ms < 50 || election_ms > 60000 || heartbeat_ms == 0 ||
        heartbeat_ms >= election_ms) {
        snprintf(why, whyn,
                 "need 50 <= --election-timeout-ms <= 60000 and "
                 "0 < --heartbeat-ms < --election-timeout-ms");
        return RQ_INVALID;
    }
    return 0;
}

int rq_config_check_http(uint64_t max_message_bytes, uint64_t idle_timeout_s,
                         uint64_t max_connections, uint64_t max_buffered_bytes,
                         uint64_t max_body, char *why, size_t whyn)
{
    if (max_message_bytes == 0 || max_message_bytes > (8u << 20)) {
        snprintf(why, whyn, "need 1 <= --max-message-bytes <= 8 MiB");
        return RQ_INVALID;
    }
    if (idle_timeout_s == 0 || idle_timeout_s > 86400) {
        snprintf(why, whyn, "need 1 <= --http-idle-timeout-s <= 86400");
        return RQ_INVALID;
    }
    if (max_connections < 4 || max_connections > 65536) {
        snprintf(why, whyn, "need 4 <= --http-max-connections <= 65536");
        return RQ_INVALID;
    }
    /* Below the largest body, a body that size could never be taken. */
    if (max_buffered_bytes < max_body || max_buffered_bytes > (1ull << 40)) {
        snprintf(why, whyn,
                 "need %llu (the largest request body) <= "
                 "--http-max-buffered-bytes <= 1 TiB",
                 (unsigned long long)max_body);
        return RQ_INVALID;
    }
    return 0;
}

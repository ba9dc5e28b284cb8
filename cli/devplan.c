/*
 * The layout of a `raftq dev` cluster (see devplan.h).
 */
#include "devplan.h"

#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include "rq_err.h"
#include "rq_keys.h"

#define MANAGER_RAFT_OFFSET 10
#define BROKER_HTTP_OFFSET 20
#define BROKER_RAFT_OFFSET 40

static bool recorded_uint(const json_t *rec, const char *key, unsigned *out)
{
    const json_t *v = json_object_get(rec, key);
    if (!json_is_integer(v) || json_integer_value(v) <= 0 ||
        json_integer_value(v) > 65535) {
        return false;
    }
    *out = (unsigned)json_integer_value(v);
    return true;
}

int devplan_merge(struct devplan *p, const struct devplan_request *req,
                  const json_t *recorded, char *why, size_t whyn)
{
    unsigned rec_managers = 0, rec_brokers = 0, rec_port = 0;

    if (recorded != NULL &&
        (!recorded_uint(recorded, "managers", &rec_managers) ||
         !recorded_uint(recorded, "brokers", &rec_brokers) ||
         !recorded_uint(recorded, "base_port", &rec_port))) {
        rq_why(why, whyn,
               "the recorded layout is not {\"managers\": N, "
               "\"brokers\": N, \"base_port\": P}");
        return RQ_INVALID;
    }
    p->managers = req->has_managers  ? req->managers
                  : recorded != NULL ? rec_managers
                                     : 3;
    p->brokers = req->has_brokers   ? req->brokers
                 : recorded != NULL ? rec_brokers
                                    : 3;
    p->base_port = req->has_base_port ? req->base_port
                   : recorded != NULL ? (uint16_t)rec_port
                                      : req->base_port;
    if (recorded != NULL && p->managers != rec_managers) {
        rq_why(why, whyn,
               "this data directory holds a cluster of %u managers, which "
               "cannot become %u (remove %s/dev to start afresh)",
               rec_managers, p->managers, p->data);
        return RQ_INVALID;
    }
    if (recorded != NULL && p->base_port != rec_port) {
        rq_why(why, whyn,
               "this data directory holds a cluster on ports from %u (the "
               "managers store their Raft addresses); give --base-port %u, "
               "or remove %s/dev to start afresh",
               rec_port, rec_port, p->data);
        return RQ_INVALID;
    }
    if (p->managers != 3 && p->managers != 5) {
        rq_why(why, whyn, "a cluster has 3 or 5 managers, not %u", p->managers);
        return RQ_INVALID;
    }
    if (p->brokers < 3 || p->brokers > DEVPLAN_MAX_BROKERS) {
        rq_why(why, whyn, "a cluster has 3 to %d brokers, not %u",
               DEVPLAN_MAX_BROKERS, p->brokers);
        return RQ_INVALID;
    }
    if (p->base_port < 1024 ||
        (unsigned)p->base_port + DEVPLAN_PORT_SPAN - 1 > 65535) {
        rq_why(why, whyn,
               "the base port must be 1024 to %d (the cluster uses %d ports "
               "from it), not %u",
               65535 - DEVPLAN_PORT_SPAN + 1, DEVPLAN_PORT_SPAN, p->base_port);
        return RQ_INVALID;
    }
    return 0;
}

/* The recorded string @key into @out, or a new one from @random. */
static int recorded_or_new(const json_t *rec, const char *key,
                           const uint8_t *random, char *out, char *why,
                           size_t whyn)
{
    const json_t *v = json_object_get(rec, key);
    if (v == NULL) {
        rq_keys_hex(random, DEVPLAN_RANDOM_BYTES, out);
        return 0;
    }
    const char *s = json_string_value(v);
    if (s == NULL || s[0] == '\0' || strlen(s) >= DEVPLAN_SECRET_MAX) {
        rq_why(why, whyn, "the recorded %s is not a string of 1 to %d bytes",
               key, DEVPLAN_SECRET_MAX - 1);
        return RQ_INVALID;
    }
    snprintf(out, DEVPLAN_SECRET_MAX, "%s", s);
    return 0;
}

int devplan_secrets(struct devplan *p, const json_t *recorded,
                    const uint8_t *random, const char *token_override,
                    char *why, size_t whyn)
{
    char reason[256];
    int rv = recorded_or_new(recorded, "cluster_secret", random, p->secret, why,
                             whyn);
    if (rv == 0) {
        rv = recorded_or_new(recorded, "admin_token",
                             random + DEVPLAN_RANDOM_BYTES, p->admin_token, why,
                             whyn);
    }
    if (rv != 0) {
        return rv;
    }
    if (rq_secret_check(p->secret, "the recorded cluster_secret", reason,
                        sizeof reason) != 0) {
        rq_why(why, whyn, "%s", reason);
        return RQ_INVALID;
    }
    p->token = token_override != NULL && token_override[0] != '\0'
                   ? token_override
                   : p->admin_token;
    return 0;
}

json_t *devplan_record(const struct devplan *p)
{
    return json_pack("{s:i,s:i,s:i,s:s,s:s}", "managers", (int)p->managers,
                     "brokers", (int)p->brokers, "base_port", (int)p->base_port,
                     "cluster_secret", p->secret, "admin_token",
                     p->admin_token);
}

uint16_t devplan_http_port(const struct devplan *p, enum devplan_role r,
                           unsigned id)
{
    unsigned off = r == DEVPLAN_MANAGER ? 0 : BROKER_HTTP_OFFSET;
    return (uint16_t)(p->base_port + off + id - 1);
}

uint16_t devplan_raft_port(const struct devplan *p, enum devplan_role r,
                           unsigned id)
{
    unsigned off =
        r == DEVPLAN_MANAGER ? MANAGER_RAFT_OFFSET : BROKER_RAFT_OFFSET;
    return (uint16_t)(p->base_port + off + id - 1);
}

const char *devplan_role_name(enum devplan_role r)
{
    return r == DEVPLAN_MANAGER ? "manager" : "broker";
}

void devplan_root(const struct devplan *p, char *out, size_t n)
{
    size_t len = strlen(p->data);
    /* "./data/" and "./data" give the same paths. */
    while (len > 1 && p->data[len - 1] == '/') {
        len--;
    }
    snprintf(out, n, "%.*s/dev", (int)len, p->data);
}

void devplan_dir(const struct devplan *p, enum devplan_role r, unsigned id,
                 char *out, size_t n)
{
    char root[DEVPLAN_PATH_MAX];
    devplan_root(p, root, sizeof root);
    snprintf(out, n, "%s/%s-%u", root, devplan_role_name(r), id);
}

void devplan_log(const struct devplan *p, enum devplan_role r, unsigned id,
                 char *out, size_t n)
{
    char root[DEVPLAN_PATH_MAX];
    devplan_root(p, root, sizeof root);
    snprintf(out, n, "%s/%s-%u.log", root, devplan_role_name(r), id);
}

void devplan_manager_url(const struct devplan *p, unsigned id, char *out,
                         size_t n)
{
    snprintf(out, n, "%s://%s:%u", p->tls_dir != NULL ? "https" : "http",
             DEVPLAN_HOST, devplan_http_port(p, DEVPLAN_MANAGER, id));
}

/* Appends one formatted string to buf and to @list (argv or env), which
 * has room for @cap pointers and stays NULL-terminated. */
static int vappend(struct devplan_argv *a, char **list, int *count, size_t cap,
                   const char *fmt, va_list ap)
{
    size_t room = sizeof a->buf - a->used;
    if ((size_t)*count + 1 >= cap) {
        return RQ_TOOBIG;
    }
    int n = vsnprintf(a->buf + a->used, room, fmt, ap);
    if (n < 0 || (size_t)n >= room) {
        return RQ_TOOBIG;
    }
    list[(*count)++] = a->buf + a->used;
    list[*count] = NULL;
    a->used += (size_t)n + 1;
    return 0;
}

__attribute__((format(printf, 5, 6))) static int append(struct devplan_argv *a,
                                                        char **list, int *count,
                                                        size_t cap,
                                                        const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    int rv = vappend(a, list, count, cap, fmt, ap);
    va_end(ap);
    return rv;
}

/* Appends one formatted word to the command line. */
__attribute__((format(printf, 2, 3))) static int add(struct devplan_argv *a,
                                                     const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    int rv = vappend(a, a->argv, &a->argc, sizeof a->argv / sizeof a->argv[0],
                     fmt, ap);
    va_end(ap);
    return rv;
}

/* Appends one environment variable, "@name=@value". */
static int add_env(struct devplan_argv *a, const char *name, const char *value)
{
    return append(a, a->env, &a->envc, sizeof a->env / sizeof a->env[0],
                  "%s=%s", name, value);
}

bool devplan_env_replaced(const char *entry)
{
    static const char *const names[] = {
        "RAFTQ_CLUSTER_SECRET", "RAFTQ_CLUSTER_SECRET_FILE",
        "RAFTQ_ADMIN_TOKEN", "RAFTQ_ADMIN_TOKEN_FILE", "RAFTQ_ADMIN_OPEN"};
    for (size_t i = 0; i < sizeof names / sizeof names[0]; i++) {
        size_t n = strlen(names[i]);
        if (strncmp(entry, names[i], n) == 0 && entry[n] == '=') {
            return true;
        }
    }
    return false;
}

/* "1=127.0.0.1:9510,2=..." or "http://127.0.0.1:9500,..." into one
 * word. */
static int add_list(struct devplan_argv *a, const struct devplan *p, bool urls)
{
    char list[1024];
    size_t len = 0;
    for (unsigned i = 1; i <= p->managers; i++) {
        int n =
            urls ? snprintf(list + len, sizeof list - len, "%s%s://%s:%u",
                            i > 1 ? "," : "",
                            p->tls_dir != NULL ? "https" : "http", DEVPLAN_HOST,
                            devplan_http_port(p, DEVPLAN_MANAGER, i))
                 : snprintf(list + len, sizeof list - len, "%s%u=%s:%u",
                            i > 1 ? "," : "", i, DEVPLAN_HOST,
                            devplan_raft_port(p, DEVPLAN_MANAGER, i));
        if (n < 0 || (size_t)n >= sizeof list - len) {
            return RQ_TOOBIG; /* UNTESTED: five managers fit. */
        }
        len += (size_t)n;
    }
    return add(a, "%s", list);
}

int devplan_argv(const struct devplan *p, enum devplan_role r, unsigned id,
                 struct devplan_argv *out)
{
    char dir[DEVPLAN_PATH_MAX];
    int rv = 0;

    out->argc = 0;
    out->envc = 0;
    out->used = 0;
    out->argv[0] = NULL;
    out->env[0] = NULL;
    devplan_dir(p, r, id, dir, sizeof dir);
    rv |= add(out, "%s/%s", p->bin_dir, devplan_role_name(r));
    rv |= add(out, "--id");
    rv |= add(out, "%u", id);
    if (r == DEVPLAN_MANAGER) {
        rv |= add(out, "--http-addr");
        rv |= add(out, "%s:%u", DEVPLAN_HOST, devplan_http_port(p, r, id));
        rv |= add(out, "--peers");
        rv |= add_list(out, p, false);
        rv |= add(out, "--data");
        rv |= add(out, "%s", dir);
        /* API.md section 6: under raftq dev alone the admin API is open. */
        rv |= add(out, "--admin-open");
        if (p->token != NULL && p->token[0] != '\0') {
            rv |= add_env(out, "RAFTQ_ADMIN_TOKEN", p->token);
        }
    } else {
        rv |= add(out, "--raft-addr");
        rv |= add(out, "%s:%u", DEVPLAN_HOST, devplan_raft_port(p, r, id));
        rv |= add(out, "--http-addr");
        rv |= add(out, "%s:%u", DEVPLAN_HOST, devplan_http_port(p, r, id));
        rv |= add(out, "--data");
        rv |= add(out, "%s", dir);
        rv |= add(out, "--managers");
        rv |= add_list(out, p, true);
    }
    rv |= add_env(out, "RAFTQ_CLUSTER_SECRET", p->secret);
    if (p->tls_dir != NULL) {
        /* The files of devtls.h. */
        const char *role = devplan_role_name(r);
        rv |= add(out, "--tls-cert");
        rv |= add(out, "%s/%s-%u.crt", p->tls_dir, role, id);
        rv |= add(out, "--tls-key");
        rv |= add(out, "%s/%s-%u.key", p->tls_dir, role, id);
        rv |= add(out, "--tls-ca");
        rv |= add(out, "%s/ca.crt", p->tls_dir);
    }
    return rv != 0 ? RQ_TOOBIG : 0;
}

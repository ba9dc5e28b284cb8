/*
 * The layout of a `raftq dev` cluster: how many managers and brokers, the
 * port of each, where each keeps its data and log, and the command line
 * each is started with. Ports are fixed offsets from one base port P:
 *
 *     manager i (1..5)   HTTP P+i-1      Raft P+10+i-1
 *     broker i (1..20)   HTTP P+20+i-1   Raft P+40+i-1
 *
 * so a cluster uses ports P to P+59 at most, and the same base port gives
 * the same addresses on every run. The managers' Raft addresses are part
 * of their stored configuration, so the number of managers and the base
 * port are recorded in DIR/dev/cluster.json on the first run and may not
 * change afterwards (devplan_merge); brokers may be added.
 *
 * The same file keeps the cluster secret and the admin token, made at
 * random on the first run and reused afterwards (devplan_secrets), which
 * is why raftq dev writes it with mode 0600. The children get them in
 * their environment (RAFTQ_CLUSTER_SECRET, RAFTQ_ADMIN_TOKEN) rather than
 * on the command line, which any local user can read in the process list.
 * Pure: builds strings and JSON, touches no file and draws no random
 * bytes (the caller passes them).
 */
#ifndef DEVPLAN_H
#define DEVPLAN_H

#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define DEVPLAN_PORT_SPAN 60
#define DEVPLAN_MAX_MANAGERS 5
#define DEVPLAN_MAX_BROKERS 20
#define DEVPLAN_PATH_MAX 1024
#define DEVPLAN_HOST "127.0.0.1"
/* Random bytes behind a generated secret or token, written as hex. */
#define DEVPLAN_RANDOM_BYTES 32
/* Room for a recorded secret or token (RQ_SECRET_MAX and a NUL). */
#define DEVPLAN_SECRET_MAX 1025

enum devplan_role { DEVPLAN_MANAGER, DEVPLAN_BROKER };

struct devplan {
    unsigned managers;
    unsigned brokers;
    uint16_t base_port;
    char data[DEVPLAN_PATH_MAX];          /* DIR as given. */
    char bin_dir[DEVPLAN_PATH_MAX];       /* Where manager and broker are. */
    char secret[DEVPLAN_SECRET_MAX];      /* The cluster secret. */
    char admin_token[DEVPLAN_SECRET_MAX]; /* The recorded admin token. */
    /* The admin token the managers get this run: --token, else
     * admin_token. Borrowed. */
    const char *token;
    /* With TLS: the directory of devtls.h's files, else NULL. Borrowed. */
    const char *tls_dir;
};

/* What the command line asked for; has_* false means "not given". */
struct devplan_request {
    unsigned managers;
    bool has_managers;
    unsigned brokers;
    bool has_brokers;
    uint16_t base_port;
    bool has_base_port;
};

/*
 * Fills the counts and base port of @p from @req and the layout recorded
 * by an earlier run (@recorded, NULL on a first run): what was recorded
 * wins where nothing was asked, and asking for another number of managers
 * or another base port than recorded is RQ_INVALID with @why. Checks the
 * result (counts, ports within 1024..65535). 0 or RQ_INVALID.
 */
int devplan_merge(struct devplan *p, const struct devplan_request *req,
                  const json_t *recorded, char *why, size_t whyn);

/*
 * Fills the secret, admin_token and token of @p: the secret and token
 * recorded by an earlier run (@recorded, NULL on a first run), else new
 * ones written from @random (2 * DEVPLAN_RANDOM_BYTES bytes the caller drew
 * with getrandom: the first half makes the secret, the second the token)
 * as lowercase hex. @token_override (raftq dev --token, or NULL) is the
 * token the managers get this run; the recorded one stays recorded. A
 * recorded secret that rq_secret_check() refuses, or a recorded token that
 * is not a non-empty string, is RQ_INVALID with @why.
 */
int devplan_secrets(struct devplan *p, const json_t *recorded,
                    const uint8_t *random, const char *token_override,
                    char *why, size_t whyn);

/* What to record: {"managers": N, "brokers": N, "base_port": P,
 * "cluster_secret": S, "admin_token": T}. */
json_t *devplan_record(const struct devplan *p);

uint16_t devplan_http_port(const struct devplan *p, enum devplan_role r,
                           unsigned id);
uint16_t devplan_raft_port(const struct devplan *p, enum devplan_role r,
                           unsigned id);

/* "manager" or "broker". */
const char *devplan_role_name(enum devplan_role r);

/* DIR/dev, DIR/dev/manager-2 (data) and DIR/dev/manager-2.log. */
void devplan_root(const struct devplan *p, char *out, size_t n);
void devplan_dir(const struct devplan *p, enum devplan_role r, unsigned id,
                 char *out, size_t n);
void devplan_log(const struct devplan *p, enum devplan_role r, unsigned id,
                 char *out, size_t n);

/* "http://127.0.0.1:9501" for manager @id ("https://" with tls_dir). */
void devplan_manager_url(const struct devplan *p, unsigned id, char *out,
                         size_t n);

/* A child's command line, argv[0..argc-1] and a NULL, and the variables
 * to add to its environment, env[0..envc-1] as "NAME=value" and a NULL;
 * all pointing into buf. */
struct devplan_argv {
    char *argv[32];
    int argc;
    char *env[4];
    int envc;
    char buf[8192];
    size_t used;
};

/* Whether the environment variable @entry ("NAME=value") is one that
 * devplan_argv() sets or that would contradict it (the _FILE forms), so
 * must not be passed on from raftq's own environment. */
bool devplan_env_replaced(const char *entry);

/* The command line and environment of manager or broker @id: managers get
 * --admin-open, the admin token and the secret, brokers the secret. 0 or
 * RQ_TOOBIG. */
int devplan_argv(const struct devplan *p, enum devplan_role r, unsigned id,
                 struct devplan_argv *out);

#endif /* DEVPLAN_H */

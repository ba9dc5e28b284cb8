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
 * change afterwards (devplan_merge); brokers may be added. Pure: builds
 * strings and JSON, touches no file.
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

enum devplan_role { DEVPLAN_MANAGER, DEVPLAN_BROKER };

struct devplan {
    unsigned managers;
    unsigned brokers;
    uint16_t base_port;
    char data[DEVPLAN_PATH_MAX];    /* DIR as given. */
    char bin_dir[DEVPLAN_PATH_MAX]; /* Where manager and broker are. */
    const char *token; /* Admin token for the managers, or NULL. Borrowed. */
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

/* The layout to record: {"managers": N, "brokers": N, "base_port": P}. */
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

/* A child's command line: argv[0..argc-1] and a NULL, pointing into buf. */
struct devplan_argv {
    char *argv[32];
    int argc;
    char buf[8192];
    size_t used;
};

/* The command line of manager or broker @id. 0 or RQ_TOOBIG. */
int devplan_argv(const struct devplan *p, enum devplan_role r, unsigned id,
                 struct devplan_argv *out);

#endif /* DEVPLAN_H */

/*
 * Command-line configuration, parsed and checked once at start-up.
 *
 * Each binary describes its options in one table; a value comes from the
 * flag (--raft-addr X or --raft-addr=X), else from the environment variable
 * (RAFTQ_RAFT_ADDR), else from the table's default. Parsed values are
 * stored into the caller's config struct at each option's offset. String
 * values are borrowed from argv, the environment or the table.
 *
 * A secret (RQ_OPT_SECRET, say "cluster-secret") may instead be read from
 * a file: --cluster-secret-file PATH or RAFTQ_CLUSTER_SECRET_FILE, the way
 * Kubernetes and Compose mount secrets, which also keeps the value out of
 * the process list. At most one of the value and the file may be given:
 * both on the command line, or both in the environment, is an error, and
 * the command line (either form) hides the environment (either form).
 * Secret values are copies owned by the config; rq_config_free() wipes and
 * frees them.
 *
 * Also here: the pure parsers for the address forms every binary takes.
 */
#ifndef RQ_CONFIG_H
#define RQ_CONFIG_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

enum rq_opt_type {
    RQ_OPT_STR,    /* const char * */
    RQ_OPT_U64,    /* uint64_t, decimal */
    RQ_OPT_BOOL,   /* bool: a bare flag, or =true/false/1/0 */
    RQ_OPT_SECRET, /* const char *, owned; also --NAME-file, ENV_FILE */
};

/* The longest secret file read; longer is refused. */
#define RQ_CONFIG_SECRET_FILE_MAX 4096

struct rq_opt {
    const char *name; /* Flag without the dashes: "raft-addr". */
    const char *env;  /* Environment variable, or NULL. */
    enum rq_opt_type type;
    const char *def; /* Default as text; NULL means no default. */
    bool required;   /* Missing (no flag, env or default) is an error. */
    size_t offset;   /* offsetof(struct my_config, field). */
    const char *help;
};

/*
 * Fills @cfg from @argv, the environment and the defaults. Returns 0, or
 * RQ_INVALID with a sentence in @why naming the flag and the problem (a
 * secret file that cannot be read, is empty, holds a NUL byte or is longer
 * than RQ_CONFIG_SECRET_FILE_MAX is one). "--help" or "-h" sets *help and
 * returns 0 without checking the rest. The RQ_OPT_SECRET fields of @cfg
 * must be NULL on entry; whatever the result, release them with
 * rq_config_free().
 */
int rq_config_parse(const struct rq_opt *opts, size_t n, void *cfg, int argc,
                    char **argv, bool *help, char *why, size_t whyn);

/* Wipes and frees the RQ_OPT_SECRET values of @cfg and sets them to NULL.
 * The other fields are borrowed and left alone. */
void rq_config_free(const struct rq_opt *opts, size_t n, void *cfg);

/*
 * Checks the cluster secret read for option --@name (rq_secret_check of
 * rq_keys.h, naming both --@name and --@name-file). 0, or RQ_INVALID with
 * @why.
 */
int rq_config_check_secret(const char *name, const char *secret, char *why,
                           size_t whyn);

/* Prints "usage: @usage" then one line per option with env and default. */
void rq_config_usage(FILE *f, const char *usage, const struct rq_opt *opts,
                     size_t n);

/*
 * The TLS flags every server binary takes, as entries of its options
 * table; @type is its config struct, with const char * fields tls_cert,
 * tls_key and tls_ca. rq_tls_check_flags() checks them.
 */
/* One table entry a flag reads better than what clang-format makes. */
/* clang-format off */
#define RQ_TLS_OPTIONS(type)                                                 \
    {"tls-cert", "RAFTQ_TLS_CERT", RQ_OPT_STR, NULL, false,                  \
     offsetof(type, tls_cert),                                               \
     "PEM certificate of this node (with --tls-key and --tls-ca, every "     \
     "port speaks TLS 1.3 only)"},                                           \
    {"tls-key", "RAFTQ_TLS_KEY", RQ_OPT_STR, NULL, false,                    \
     offsetof(type, tls_key), "PEM private key of --tls-cert"},              \
    {"tls-ca", "RAFTQ_TLS_CA", RQ_OPT_STR, NULL, false,                      \
     offsetof(type, tls_ca),                                                 \
     "PEM CA certificate(s) every peer's certificate must verify against"}
/* clang-format on */

#define RQ_ADDR_MAX 64 /* "host:port" including the NUL. */
#define RQ_PEERS_MAX 16

struct rq_peer {
    uint64_t id;
    char address[RQ_ADDR_MAX];
};

/*
 * Splits "HOST:PORT" or "[V6]:PORT". HOST may be a name. Returns 0 or
 * RQ_INVALID with the reason in @why.
 */
int rq_addr_split(const char *addr, char *host, size_t hostn, uint16_t *port,
                  char *why, size_t whyn);

/* The same for an address to listen on, where port 0 asks for any free
 * port. */
int rq_listen_addr_split(const char *addr, char *host, size_t hostn,
                         uint16_t *port, char *why, size_t whyn);

/*
 * Strict decimal: digits only (no sign, blank or base prefix), at most
 * @max. Returns 0, or RQ_INVALID for anything else, NULL and "" included.
 */
int rq_parse_u64(const char *s, uint64_t max, uint64_t *out);

/*
 * The limits every HTTP server process checks alike: 1 <= @max_message_bytes
 * <= 8 MiB, 1 <= @idle_timeout_s <= 86400, 4 <= @max_connections <= 65536,
 * and @max_body (the process's largest request body) <= @max_buffered_bytes
 * <= 1 TiB. 0, or RQ_INVALID with the flag's rule in @why.
 */
int rq_config_check_http(uint64_t max_message_bytes, uint64_t idle_timeout_s,
                         uint64_t max_connections, uint64_t max_buffered_bytes,
                         uint64_t max_body, char *why, size_t whyn);

/*
 * Checks that the value of option --@flag is a HOST:PORT of at most @max_len
 * characters. 0, or RQ_INVALID with "--FLAG VALUE is not HOST:PORT".
 */
int rq_config_check_addr(const char *flag, const char *addr, size_t max_len,
                         char *why, size_t whyn);

/*
 * A server binary's start-up (manager, broker, atm): what its options are
 * and what it calls itself.
 */
struct rq_config_spec {
    const char *kind;          /* "manager": logs name the process kind-ID. */
    const char *usage;         /* The usage line, after "usage: ". */
    const struct rq_opt *opts; /* Its options table (borrowed). */
    size_t n;
};

/*
 * What every server binary does first with its command line: fills @cfg
 * from @argv, the environment and the defaults (rq_config_parse); on
 * --help prints the usage to stdout and exits 0; starts logging as
 * "KIND-ID" from the options "id", "log-level" (debug|info|warn|error) and
 * "log-format" (text|json); and checks the cluster secret of option
 * "cluster-secret" (rq_config_check_secret). The table must have those
 * four options. 0, or RQ_INVALID with @why; whatever the result, release
 * @cfg's secrets with rq_config_free().
 */
int rq_config_load(const struct rq_config_spec *spec, void *cfg, int argc,
                   char **argv, char *why, size_t whyn);

/* The field of @cfg that option @name, of @type, fills; the table has it. */
const void *rq_config_field(const struct rq_config_spec *spec, const void *cfg,
                            const char *name, enum rq_opt_type type);

/*
 * The Raft timing every server binary checks alike: 50 <=
 * @election_ms <= 60000 and 0 < @heartbeat_ms < @election_ms. 0, or
 * RQ_INVALID with the rule in @why.
 */
int rq_config_check_raft_timing(uint64_t election_ms, uint64_t heartbeat_ms,
                                char *why, size_t whyn);

/*
 * Parses "1=HOST:PORT,2=HOST:PORT,...": ids 1..2^63, each id and address
 * once, at most @max entries. Returns 0 or RQ_INVALID with @why.
 */
int rq_peers_parse(const char *s, struct rq_peer *out, size_t max, size_t *n,
                   char *why, size_t whyn);

#endif /* RQ_CONFIG_H */

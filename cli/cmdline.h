/*
 * The raftq command line: which command, its arguments and options, parsed
 * and checked once, before anything touches the network.
 *
 * Global options (--managers, --json, --token, --timeout) may come before
 * or after the command words; "--" ends the options, so a value that
 * starts with "--" can still be produced. Option values are given as
 * "--name value" or "--name=value". `raftq dev` reads --managers as the
 * number of managers to start rather than their URLs.
 *
 * The environment (RAFTQ_MANAGERS, RAFTQ_TOKEN, RAFTQ_ADMIN_TOKEN,
 * RAFTQ_BASE_PORT, RAFTQ_PROFILE) is
 * passed in by the caller, so this module reads no environment and does
 * no I/O; the usage texts are written to the FILE the caller gives. A
 * profile's values (profile.h) rank below the environment's: the caller
 * applies them after parsing, to what the line and the environment left
 * open.
 */
#ifndef CMDLINE_H
#define CMDLINE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

/* Exit codes of every raftq command. */
enum {
    CLI_OK = 0,
    CLI_REFUSED = 1,     /* The server refused (4xx), or the command failed. */
    CLI_USAGE = 2,       /* Bad command line. */
    CLI_UNREACHABLE = 3, /* No manager answered, or no quorum. */
};

enum cmd {
    CMD_NONE, /* No command: only valid with --help. */
    CMD_DEV,
    CMD_TOPIC, /* "topic" alone: only valid with --help. */
    CMD_TOPIC_CREATE,
    CMD_TOPIC_LIST,
    CMD_TOPIC_DESCRIBE,
    CMD_TOPIC_DELETE,
    CMD_PRODUCE,
    CMD_CONSUME,
    CMD_CLUSTER, /* "cluster" alone: only valid with --help. */
    CMD_CLUSTER_STATUS,
    CMD_CLUSTER_ADD_MANAGER,
    CMD_CLUSTER_REMOVE_MANAGER,
    CMD_BROKER, /* "broker" alone: only valid with --help. */
    CMD_BROKER_LIST,
    CMD_BROKER_DRAIN,
    CMD_BROKER_REMOVE,
    CMD_BROKER_DELETE_REPLICA,
    CMD_PARTITION, /* "partition" alone: only valid with --help. */
    CMD_PARTITION_MOVE_LEADER,
    CMD_PARTITION_MOVES,
    CMD_TOKEN, /* "token" alone: only valid with --help. */
    CMD_TOKEN_CREATE,
    CMD_TOKEN_LIST,
    CMD_TOKEN_REVOKE,
    CMD_BENCH,
    CMD_PROFILE, /* "profile" alone: only valid with --help. */
    CMD_PROFILE_CREATE,
    CMD_PROFILE_USE,
    CMD_PROFILE_LIST,
    CMD_PROFILE_SHOW,
    CMD_PROFILE_DELETE,
    CMD_COMPLETION,
    CMD_GROUP, /* "group" alone: only valid with --help. */
    CMD_GROUP_LIST,
    CMD_GROUP_DESCRIBE,
    CMD_GROUP_RESET,
    CMD_GROUP_DELETE,
    CMD_CONSUMER, /* "consumer" alone: only valid with --help. */
    CMD_CONSUMER_LIST,
    CMD_CONSUMER_DESCRIBE,
    CMD_CONSUMER_OFFSETS,
    CMD_CONSUMER_RESET,
};

/* Where reading starts (consume --from) or is set to (consumer reset
 * --to): a partition's first record, past its last, its first record
 * stamped at or after a time, or an offset. */
enum cmdline_pos_kind {
    CMDLINE_POS_NONE,
    CMDLINE_POS_EARLIEST,
    CMDLINE_POS_LATEST,
    CMDLINE_POS_TIME,
    CMDLINE_POS_OFFSET,
};

struct cmdline_pos {
    enum cmdline_pos_kind kind;
    int64_t time_ms; /* CMDLINE_POS_TIME: Unix milliseconds. */
    uint64_t offset; /* CMDLINE_POS_OFFSET. */
};

#define CMDLINE_DEFAULT_TIMEOUT_MS 10000
#define CMDLINE_DEFAULT_BATCH 1000
#define CMDLINE_MAX_BATCH 10000
#define CMDLINE_DEFAULT_DATA "./data"
#define CMDLINE_DEFAULT_BASE_PORT 9500
#define CMDLINE_MAX_BROKERS 20
#define CMDLINE_MAX_GRANTS 16 /* token create --grant, as a token holds */
#define CMDLINE_DEFAULT_SECONDS_MS 10000 /* bench --seconds */
#define CMDLINE_MAX_IN_FLIGHT 1024       /* bench --in-flight */
#define CMDLINE_MAX_SIZE (1u << 20)      /* bench --size: a message's limit */
#define CMDLINE_MAX_PARTITIONS 1024      /* bench --partitions */

/* The environment variables the command line falls back on (NULL when
 * unset). Borrowed. */
struct cmdline_env {
    const char *managers;     /* RAFTQ_MANAGERS */
    const char *token;        /* RAFTQ_ADMIN_TOKEN */
    const char *client_token; /* RAFTQ_TOKEN: wins over RAFTQ_ADMIN_TOKEN */
    const char *base_port;    /* RAFTQ_BASE_PORT */
    const char *cacert;       /* RAFTQ_CACERT */
    const char *profile;      /* RAFTQ_PROFILE */
};

/*
 * A parsed command line. Strings are borrowed from argv or the
 * environment; @values points into argv. A has_* flag says whether the
 * option was given.
 */
struct cmdline {
    enum cmd cmd;
    bool help;    /* --help or -h: print cmdline_usage(cmd) and exit 0. */
    bool version; /* --version: print the release and exit 0. */

    /* Global. */
    const char *managers;  /* URL,... (flag, else RAFTQ_MANAGERS, else the
                              default of a raftq dev); NULL for raftq dev;
                              profile create takes the flag alone. */
    bool managers_default; /* managers is the default: neither the flag nor
                              RAFTQ_MANAGERS gave them, so a profile may. */
    const char *token;     /* Bearer token (admin or public), or NULL. */
    const char *cacert;    /* PEM CA for https:// managers, or NULL. */
    bool json;
    uint64_t timeout_ms;

    /* Command arguments. */
    const char *topic;
    uint32_t partitions; /* topic create --partitions */
    bool has_partitions;
    const char *key; /* produce --key, or NULL */
    uint32_t partition;
    bool has_partition;
    uint64_t offset;
    bool has_offset;
    uint64_t consumer;
    bool has_consumer;
    uint64_t max;
    bool has_max;
    bool follow;
    uint32_t batch; /* produce, bench --batch: records per request. */
    bool has_batch;
    uint32_t broker_id;
    uint64_t group_id;      /* broker delete-replica BROKER GROUP */
    uint32_t manager_id;    /* cluster add-manager|remove-manager ID */
    const char *raft_addr;  /* cluster add-manager ID RAFT_ADDR */
    bool force;             /* cluster remove-manager --force */
    uint64_t wait_ms;       /* broker drain|remove --wait; 0: do not wait */
    const char *token_name; /* token create NAME */
    const char *grants[CMDLINE_MAX_GRANTS]; /* token create --grant G... */
    size_t n_grants;
    uint64_t token_id;    /* token revoke ID */
    const char *group;    /* consume --group G; group describe|reset|delete G */
    const char *format;   /* consume --format F (render_format_check) */
    const char *reset_to; /* group reset-offsets --to: earliest, latest or
                             P=OFFSET,... */
    struct cmdline_pos from; /* consume --from, consumer reset --to. */
    char **values;           /* produce VALUE... (n_values 0 means standard
                                input); bench CASE... (0: every case). */
    size_t n_values;

    /* raftq dev. */
    unsigned dev_managers;
    bool has_dev_managers;
    unsigned dev_brokers;
    bool has_dev_brokers;
    const char *data;
    uint16_t base_port;
    bool has_base_port;
    bool dev_tls; /* raftq dev --tls */

    /* raftq bench (also topic, via --topic, partitions and batch). */
    uint64_t seconds_ms; /* --seconds: each case's window. */
    uint32_t in_flight;  /* --in-flight, or 0: each case's own. */
    uint32_t size;       /* --size in bytes, or 0: each case's own. */
    bool binary;         /* --binary: batches in the binary body. */

    /* raftq profile and raftq completion. */
    const char *profile;      /* --profile NAME, else RAFTQ_PROFILE; NULL:
                                 the current profile, if any. */
    const char *profile_name; /* profile create|use|delete NAME, profile show
                                 [NAME] (NULL: the one in use). */
    bool names;               /* profile list --names */
    const char *shell;        /* completion bash|zsh */
};

/*
 * Parses argv[1..argc-1] into @out. Reorders argv's pointers so that the
 * positional words come first, in order (as getopt does); @out borrows
 * from argv. Returns 0 or RQ_INVALID with a
 * sentence in @why naming the word or option at fault. With --help, only
 * the command words are checked; out->cmd is as far as they go.
 */
int cmdline_parse(int argc, char **argv, const struct cmdline_env *env,
                  struct cmdline *out, char *why, size_t whyn);

/* Writes the help text of @cmd (the overview for CMD_NONE, the group's
 * commands for CMD_TOPIC and the like). */
void cmdline_usage(enum cmd cmd, FILE *f);

/* "topic create", "produce", "" for CMD_NONE: the words naming @cmd. */
const char *cmdline_name(enum cmd cmd);

/* Strict decimal in [@min, @max]: digits only, no sign, no blanks.
 * 0 or RQ_INVALID. */
int cmdline_u64(const char *s, uint64_t min, uint64_t max, uint64_t *out);

/* Seconds as "S" or "S.F" (up to three decimals, so "10.0" too) into
 * milliseconds in [@min_ms, @max_ms]. 0 or RQ_INVALID. */
/*
 * @s as a position: "earliest", "latest", a time (Unix milliseconds, a UTC
 * time as 2026-12-08T10:00:00Z with optional .mmm, or a time before @now_ms
 * as -30s, -15m, -2h, -1d), or with @integer_is_offset a plain integer as
 * an offset (a time then needs one of the other forms, or @ before its
 * milliseconds). 0 or RQ_INVALID. Pure.
 */
int cmdline_position(const char *s, bool integer_is_offset, int64_t now_ms,
                     struct cmdline_pos *out);

int cmdline_seconds_ms(const char *s, uint64_t min_ms, uint64_t max_ms,
                       uint64_t *out);

/* The tables the parser reads, for raftq completion (completion.h), so
 * that the completion scripts never drift from what is parsed. */

/* A command: its group word and subcommand ("topic", "create"), or a word
 * alone ("produce", NULL). Borrowed from static tables. */
struct cmdline_command {
    const char *group;
    const char *sub;
    enum cmd cmd;
};

/* An option, its name without the leading "--". */
struct cmdline_option {
    const char *name;
    bool has_value;
    bool global; /* Taken by every command that talks to a cluster. */
};

/* The @i-th command (from 0) into @out; false past the last. */
bool cmdline_command_at(size_t i, struct cmdline_command *out);

/* The @i-th option (from 0) into @out; false past the last. */
bool cmdline_option_at(size_t i, struct cmdline_option *out);

/* Whether option @name (without "--") applies to @cmd. */
bool cmdline_option_applies(const char *name, enum cmd cmd);

#endif /* CMDLINE_H */

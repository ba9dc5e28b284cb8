/*
 * The raftq command line (see cmdline.h).
 *
 * One pass splits argv into positional words and options, looking each
 * option up in one table that says whether it takes a value and which
 * commands accept it; the command is then read from the first words, and
 * only then are the options checked against it and their values parsed.
 * So global options may sit anywhere, and an option given to the wrong
 * command is named in the error rather than taken for a value.
 */
#include "cmdline.h"

#include <string.h>
#include <time.h>

#include "completion.h"
#include "profile.h"
#include "render.h"
#include "rq_config.h"
#include "rq_err.h"

#define BIT(c) (UINT64_C(1) << (c))
#define CLIENT_CMDS                                                           \
    (BIT(CMD_TOPIC_CREATE) | BIT(CMD_TOPIC_LIST) | BIT(CMD_TOPIC_DESCRIBE) |  \
     BIT(CMD_TOPIC_DELETE) | BIT(CMD_PRODUCE) | BIT(CMD_CONSUME) |            \
     BIT(CMD_CLUSTER_STATUS) | BIT(CMD_BROKER_LIST) | BIT(CMD_BROKER_DRAIN) | \
     BIT(CMD_BROKER_REMOVE) | BIT(CMD_PARTITION_MOVE_LEADER) |                \
     BIT(CMD_TOKEN_CREATE) | BIT(CMD_TOKEN_LIST) | BIT(CMD_TOKEN_REVOKE) |    \
     BIT(CMD_BENCH) | BIT(CMD_GROUP_LIST) | BIT(CMD_GROUP_DESCRIBE) |         \
     BIT(CMD_GROUP_RESET) | BIT(CMD_GROUP_DELETE) |                           \
     BIT(CMD_CLUSTER_ADD_MANAGER) | BIT(CMD_CLUSTER_REMOVE_MANAGER) |         \
     BIT(CMD_BROKER_DELETE_REPLICA) | BIT(CMD_PARTITION_MOVES) |              \
     BIT(CMD_CONSUMER_LIST) | BIT(CMD_CONSUMER_DESCRIBE) |                    \
     BIT(CMD_CONSUMER_OFFSETS) | BIT(CMD_CONSUMER_RESET))
#define ALL_CMDS (~UINT64_C(0))
#define JSON_SAFE_MAX ((uint64_t)1 << 53)
#define MAX_OPTS 64

/* The commands that talk to no cluster. */
#define LOCAL_CMDS                                                          \
    (BIT(CMD_DEV) | BIT(CMD_PROFILE) | BIT(CMD_PROFILE_CREATE) |            \
     BIT(CMD_PROFILE_USE) | BIT(CMD_PROFILE_LIST) | BIT(CMD_PROFILE_SHOW) | \
     BIT(CMD_PROFILE_DELETE) | BIT(CMD_COMPLETION))
/* The commands a profile's values apply to (and --profile with them):
 * those that talk to a cluster, and profile show, which shows the one they
 * would use. */
#define PROFILE_CMDS (CLIENT_CMDS | BIT(CMD_PROFILE_SHOW))

/* The managers of a default `raftq dev`: what the client talks to when
 * neither --managers nor RAFTQ_MANAGERS says otherwise. */
#define DEFAULT_MANAGERS \
    "http://127.0.0.1:9500,http://127.0.0.1:9501,http://127.0.0.1:9502"

enum opt_id {
    OPT_MANAGERS,
    OPT_JSON,
    OPT_TOKEN,
    OPT_TIMEOUT,
    OPT_HELP,
    OPT_VERSION,
    OPT_PARTITIONS,
    OPT_KEY,
    OPT_PARTITION,
    OPT_BATCH,
    OPT_CONSUMER,
    OPT_OFFSET,
    OPT_MAX,
    OPT_FOLLOW,
    OPT_BROKERS,
    OPT_DATA,
    OPT_BASE_PORT,
    OPT_GRANT,
    OPT_CACERT,
    OPT_TLS,
    OPT_PROFILE,
    OPT_NAMES,
    OPT_SECONDS,
    OPT_IN_FLIGHT,
    OPT_SIZE,
    OPT_TOPIC,
    OPT_BINARY,
    OPT_GROUP,
    OPT_TO,
    OPT_FORCE,
    OPT_WAIT,
    OPT_FORMAT,
    OPT_FROM,
};

struct opt {
    const char *name;
    enum opt_id id;
    bool has_value;
    uint64_t cmds; /* BIT(cmd) for every command that takes it. */
};

static const struct opt opts[] = {
    {"managers", OPT_MANAGERS, true,
     CLIENT_CMDS | BIT(CMD_DEV) | BIT(CMD_PROFILE_CREATE)},
    {"json", OPT_JSON, false,
     CLIENT_CMDS | BIT(CMD_PROFILE_LIST) | BIT(CMD_PROFILE_SHOW)},
    {"token", OPT_TOKEN, true,
     CLIENT_CMDS | BIT(CMD_DEV) | BIT(CMD_PROFILE_CREATE)},
    {"timeout", OPT_TIMEOUT, true, CLIENT_CMDS},
    {"help", OPT_HELP, false, ALL_CMDS},
    {"version", OPT_VERSION, false, ALL_CMDS},
    {"partitions", OPT_PARTITIONS, true,
     BIT(CMD_TOPIC_CREATE) | BIT(CMD_BENCH)},
    {"key", OPT_KEY, true, BIT(CMD_PRODUCE)},
    {"partition", OPT_PARTITION, true,
     BIT(CMD_PRODUCE) | BIT(CMD_CONSUME) | BIT(CMD_CONSUMER_RESET)},
    {"batch", OPT_BATCH, true, BIT(CMD_PRODUCE) | BIT(CMD_BENCH)},
    {"consumer", OPT_CONSUMER, true, BIT(CMD_CONSUME)},
    {"offset", OPT_OFFSET, true, BIT(CMD_CONSUME)},
    {"max", OPT_MAX, true, BIT(CMD_CONSUME)},
    {"follow", OPT_FOLLOW, false, BIT(CMD_CONSUME)},
    {"brokers", OPT_BROKERS, true, BIT(CMD_DEV)},
    {"data", OPT_DATA, true, BIT(CMD_DEV)},
    {"base-port", OPT_BASE_PORT, true, BIT(CMD_DEV)},
    {"grant", OPT_GRANT, true, BIT(CMD_TOKEN_CREATE)},
    {"cacert", OPT_CACERT, true, CLIENT_CMDS | BIT(CMD_PROFILE_CREATE)},
    {"tls", OPT_TLS, false, BIT(CMD_DEV)},
    {"profile", OPT_PROFILE, true, PROFILE_CMDS},
    {"names", OPT_NAMES, false, BIT(CMD_PROFILE_LIST)},
    {"seconds", OPT_SECONDS, true, BIT(CMD_BENCH)},
    {"in-flight", OPT_IN_FLIGHT, true, BIT(CMD_BENCH)},
    {"size", OPT_SIZE, true, BIT(CMD_BENCH)},
    {"topic", OPT_TOPIC, true, BIT(CMD_BENCH) | BIT(CMD_CONSUMER_LIST)},
    {"binary", OPT_BINARY, false, BIT(CMD_BENCH)},
    {"group", OPT_GROUP, true, BIT(CMD_CONSUME)},
    {"to", OPT_TO, true, BIT(CMD_GROUP_RESET) | BIT(CMD_CONSUMER_RESET)},
    {"force", OPT_FORCE, false,
     BIT(CMD_CLUSTER_REMOVE_MANAGER) | BIT(CMD_PROFILE_CREATE)},
    {"wait", OPT_WAIT, true, BIT(CMD_BROKER_DRAIN) | BIT(CMD_BROKER_REMOVE)},
    {"format", OPT_FORMAT, true, BIT(CMD_CONSUME)},
    {"from", OPT_FROM, true, BIT(CMD_CONSUME)},
};

/* An option as found on the command line. */
struct found {
    const struct opt *opt;
    const char *value; /* NULL for a flag. */
};

/* Command words: a group word and its subcommands. */
struct word {
    const char *group;
    const char *sub; /* NULL: the group word alone is the command. */
    enum cmd cmd;
    const char *name; /* Both words, for messages. */
};

static const struct word words[] = {
    {"dev", NULL, CMD_DEV, "dev"},
    {"bench", NULL, CMD_BENCH, "bench"},
    {"produce", NULL, CMD_PRODUCE, "produce"},
    {"consume", NULL, CMD_CONSUME, "consume"},
    {"completion", NULL, CMD_COMPLETION, "completion"},
    {"topic", "create", CMD_TOPIC_CREATE, "topic create"},
    {"topic", "list", CMD_TOPIC_LIST, "topic list"},
    {"topic", "describe", CMD_TOPIC_DESCRIBE, "topic describe"},
    {"topic", "delete", CMD_TOPIC_DELETE, "topic delete"},
    {"cluster", "status", CMD_CLUSTER_STATUS, "cluster status"},
    {"cluster", "add-manager", CMD_CLUSTER_ADD_MANAGER, "cluster add-manager"},
    {"cluster", "remove-manager", CMD_CLUSTER_REMOVE_MANAGER,
     "cluster remove-manager"},
    {"broker", "list", CMD_BROKER_LIST, "broker list"},
    {"broker", "drain", CMD_BROKER_DRAIN, "broker drain"},
    {"broker", "remove", CMD_BROKER_REMOVE, "broker remove"},
    {"broker", "delete-replica", CMD_BROKER_DELETE_REPLICA,
     "broker delete-replica"},
    {"partition", "move-leader", CMD_PARTITION_MOVE_LEADER,
     "partition move-leader"},
    {"partition", "moves", CMD_PARTITION_MOVES, "partition moves"},
    {"token", "create", CMD_TOKEN_CREATE, "token create"},
    {"token", "list", CMD_TOKEN_LIST, "token list"},
    {"token", "revoke", CMD_TOKEN_REVOKE, "token revoke"},
    {"profile", "create", CMD_PROFILE_CREATE, "profile create"},
    {"profile", "use", CMD_PROFILE_USE, "profile use"},
    {"profile", "list", CMD_PROFILE_LIST, "profile list"},
    {"profile", "show", CMD_PROFILE_SHOW, "profile show"},
    {"profile", "delete", CMD_PROFILE_DELETE, "profile delete"},
    {"group", "list", CMD_GROUP_LIST, "group list"},
    {"group", "describe", CMD_GROUP_DESCRIBE, "group describe"},
    {"group", "reset-offsets", CMD_GROUP_RESET, "group reset-offsets"},
    {"group", "delete", CMD_GROUP_DELETE, "group delete"},
    {"consumer", "list", CMD_CONSUMER_LIST, "consumer list"},
    {"consumer", "describe", CMD_CONSUMER_DESCRIBE, "consumer describe"},
    {"consumer", "offsets", CMD_CONSUMER_OFFSETS, "consumer offsets"},
    {"consumer", "reset", CMD_CONSUMER_RESET, "consumer reset"},
};

static const struct {
    const char *group;
    enum cmd cmd;
} groups[] = {
    {"topic", CMD_TOPIC},       {"cluster", CMD_CLUSTER},
    {"broker", CMD_BROKER},     {"partition", CMD_PARTITION},
    {"token", CMD_TOKEN},       {"group", CMD_GROUP},
    {"consumer", CMD_CONSUMER}, {"profile", CMD_PROFILE},
};

int cmdline_u64(const char *s, uint64_t min, uint64_t max, uint64_t *out)
{
    uint64_t v;
    if (rq_parse_u64(s, max, &v) != 0 || v < min) {
        return RQ_INVALID;
    }
    *out = v;
    return 0;
}

int cmdline_seconds_ms(const char *s, uint64_t min_ms, uint64_t max_ms,
                       uint64_t *out)
{
    char whole[32];
    const char *dot = strchr(s, '.');
    size_t n = dot != NULL ? (size_t)(dot - s) : strlen(s);
    uint64_t secs, ms = 0;
    if (n == 0 || n >= sizeof whole) {
        return RQ_INVALID;
    }
    memcpy(whole, s, n);
    whole[n] = '\0';
    if (cmdline_u64(whole, 0, max_ms / 1000, &secs) != 0) {
        return RQ_INVALID;
    }
    if (dot != NULL) {
        const char *f = dot + 1;
        size_t digits = strlen(f);
        if (digits == 0 || digits > 3) {
            return RQ_INVALID;
        }
        for (size_t i = 0; i < 3; i++) {
            char c = i < digits ? f[i] : '0';
            if (c < '0' || c > '9') {
                return RQ_INVALID;
            }
            ms = ms * 10 + (uint64_t)(c - '0');
        }
    }
    ms += secs * 1000;
    if (ms < min_ms || ms > max_ms) {
        return RQ_INVALID;
    }
    *out = ms;
    return 0;
}

/* "2026-12-08T10:00:00Z" or with ".mmm" before the Z, as Unix ms. */
static int utc_time_ms(const char *s, int64_t *out)
{
    struct tm tm;
    memset(&tm, 0, sizeof tm);
    const char *rest = strptime(s, "%Y-%m-%dT%H:%M:%S", &tm);
    if (rest == NULL) {
        return RQ_INVALID;
    }
    int64_t ms = 0;
    if (*rest == '.') {
        int digits = 0;
        for (rest++; *rest >= '0' && *rest <= '9'; rest++, digits++) {
            if (digits < 3) {
                ms = ms * 10 + (*rest - '0');
            }
        }
        if (digits == 0) {
            return RQ_INVALID;
        }
        for (; digits < 3; digits++) {
            ms *= 10;
        }
    }
    if (strcmp(rest, "Z") != 0) {
        return RQ_INVALID;
    }
    time_t t = timegm(&tm);
    if (t < 0) {
        return RQ_INVALID;
    }
    *out = (int64_t)t * 1000 + ms;
    return 0;
}

int cmdline_position(const char *s, bool integer_is_offset, int64_t now_ms,
                     struct cmdline_pos *out)
{
    uint64_t v;
    memset(out, 0, sizeof *out);
    if (strcmp(s, "earliest") == 0) {
        out->kind = CMDLINE_POS_EARLIEST;
        return 0;
    }
    if (strcmp(s, "latest") == 0) {
        out->kind = CMDLINE_POS_LATEST;
        return 0;
    }
    out->kind = CMDLINE_POS_TIME;
    if (s[0] == '-' && s[1] != '\0') {
        /* A time before now: -30s, -15m, -2h, -1d. */
        static const struct {
            char unit;
            uint64_t ms;
        } units[] = {
            {'s', 1000}, {'m', 60000}, {'h', 3600000}, {'d', 86400000}};
        size_t n = strlen(s);
        char num[24];
        if (n - 2 >= sizeof num) {
            return RQ_INVALID;
        }
        memcpy(num, s + 1, n - 2);
        num[n - 2] = '\0';
        for (size_t i = 0; i < sizeof units / sizeof units[0]; i++) {
            if (s[n - 1] == units[i].unit &&
                cmdline_u64(num, 1, JSON_SAFE_MAX / units[i].ms, &v) == 0 &&
                (int64_t)(v * units[i].ms) <= now_ms) {
                out->time_ms = now_ms - (int64_t)(v * units[i].ms);
                return 0;
            }
        }
        return RQ_INVALID;
    }
    if (s[0] == '@' && cmdline_u64(s + 1, 0, JSON_SAFE_MAX, &v) == 0) {
        out->time_ms = (int64_t)v;
        return 0;
    }
    if (cmdline_u64(s, 0, JSON_SAFE_MAX, &v) == 0) {
        if (integer_is_offset) {
            out->kind = CMDLINE_POS_OFFSET;
            out->offset = v;
        } else {
            out->time_ms = (int64_t)v;
        }
        return 0;
    }
    return utc_time_ms(s, &out->time_ms);
}

const char *cmdline_name(enum cmd cmd)
{
    for (size_t i = 0; i < sizeof words / sizeof words[0]; i++) {
        if (words[i].cmd == cmd) {
            return words[i].name;
        }
    }
    for (size_t i = 0; i < sizeof groups / sizeof groups[0]; i++) {
        if (groups[i].cmd == cmd) {
            return groups[i].group;
        }
    }
    return "";
}

static const struct opt *opt_find(const char *name, size_t len)
{
    for (size_t i = 0; i < sizeof opts / sizeof opts[0]; i++) {
        if (strlen(opts[i].name) == len &&
            strncmp(opts[i].name, name, len) == 0) {
            return &opts[i];
        }
    }
    return NULL;
}

bool cmdline_command_at(size_t i, struct cmdline_command *out)
{
    if (i >= sizeof words / sizeof words[0]) {
        return false;
    }
    *out = (struct cmdline_command){words[i].group, words[i].sub, words[i].cmd};
    return true;
}

bool cmdline_option_at(size_t i, struct cmdline_option *out)
{
    if (i >= sizeof opts / sizeof opts[0]) {
        return false;
    }
    *out = (struct cmdline_option){
        .name = opts[i].name,
        .has_value = opts[i].has_value,
        .global = (opts[i].cmds & CLIENT_CMDS) == CLIENT_CMDS,
    };
    return true;
}

bool cmdline_option_applies(const char *name, enum cmd cmd)
{
    const struct opt *o = opt_find(name, strlen(name));
    return o != NULL && (o->cmds & BIT(cmd)) != 0;
}

/* Reads the command from the leading words; returns how many it took, or
 * -1 with @why. */
static int command_words(char **pos, size_t n, bool help, enum cmd *cmd,
                         char *why, size_t whyn)
{
    *cmd = CMD_NONE;
    if (n == 0) {
        if (!help) {
            rq_why(why, whyn, "no command given");
            return -1;
        }
        return 0;
    }
    bool group = false;
    for (size_t i = 0; i < sizeof words / sizeof words[0]; i++) {
        if (strcmp(pos[0], words[i].group) != 0) {
            continue;
        }
        group = true;
        if (words[i].sub == NULL) {
            *cmd = words[i].cmd;
            return 1;
        }
        if (n >= 2 && strcmp(pos[1], words[i].sub) == 0) {
            *cmd = words[i].cmd;
            return 2;
        }
    }
    if (!group) {
        rq_why(why, whyn, "unknown command '%s'", pos[0]);
        return -1;
    }
    for (size_t i = 0; i < sizeof groups / sizeof groups[0]; i++) {
        if (strcmp(pos[0], groups[i].group) == 0) {
            *cmd = groups[i].cmd;
        }
    }
    if (n >= 2) {
        rq_why(why, whyn, "unknown %s command '%s'", pos[0], pos[1]);
        return -1;
    }
    if (!help) {
        rq_why(why, whyn, "'%s' needs a command", pos[0]);
        return -1;
    }
    return 1;
}

/* Checks the positional arguments after the command words. */
static int command_args(struct cmdline *out, char **args, size_t n, char *why,
                        size_t whyn)
{
    const char *name = cmdline_name(out->cmd);
    uint64_t v;

    switch (out->cmd) {
        case CMD_DEV:
        case CMD_TOPIC_LIST:
        case CMD_CLUSTER_STATUS:
        case CMD_BROKER_LIST:
        case CMD_TOKEN_LIST:
        case CMD_GROUP_LIST:
        case CMD_PARTITION_MOVES:
            if (n != 0) {
                rq_why(why, whyn, "'%s' takes no arguments (got '%s')", name,
                       args[0]);
                return RQ_INVALID;
            }
            return 0;
        case CMD_TOPIC_CREATE:
        case CMD_TOPIC_DESCRIBE:
        case CMD_TOPIC_DELETE:
        case CMD_CONSUME:
            if (n != 1) {
                rq_why(why, whyn, "'%s' takes one topic name (got %zu words)",
                       name, n);
                return RQ_INVALID;
            }
            out->topic = args[0];
            return 0;
        case CMD_PRODUCE:
            if (n == 0) {
                rq_why(why, whyn, "'produce' needs a topic name");
                return RQ_INVALID;
            }
            out->topic = args[0];
            out->values = args + 1;
            out->n_values = n - 1;
            return 0;
        case CMD_BENCH:
            /* Case names, checked by bench.c, which knows them. */
            out->values = args;
            out->n_values = n;
            return 0;
        case CMD_BROKER_DRAIN:
        case CMD_BROKER_REMOVE:
            if (n != 1) {
                rq_why(why, whyn, "'%s' takes one broker id (got %zu words)",
                       name, n);
                return RQ_INVALID;
            }
            if (cmdline_u64(args[0], 1, UINT32_MAX, &v) != 0) {
                rq_why(why, whyn,
                       "the broker id must be a positive integer, "
                       "not '%s'",
                       args[0]);
                return RQ_INVALID;
            }
            out->broker_id = (uint32_t)v;
            return 0;
        case CMD_BROKER_DELETE_REPLICA:
            if (n != 2 || cmdline_u64(args[0], 1, UINT32_MAX, &v) != 0) {
                rq_why(why, whyn,
                       "'%s' takes BROKER GROUP: a broker id and the group id "
                       "of a replica it hosts (see raftq broker list)",
                       name);
                return RQ_INVALID;
            }
            out->broker_id = (uint32_t)v;
            if (cmdline_u64(args[1], 1, UINT64_MAX, &out->group_id) != 0) {
                rq_why(why, whyn,
                       "the group id must be a positive integer, "
                       "not '%s'",
                       args[1]);
                return RQ_INVALID;
            }
            return 0;
        case CMD_CLUSTER_ADD_MANAGER:
        case CMD_CLUSTER_REMOVE_MANAGER: {
            size_t want = out->cmd == CMD_CLUSTER_ADD_MANAGER ? 2 : 1;
            if (n != want) {
                rq_why(why, whyn, "'%s' takes %s (got %zu words)", name,
                       want == 2 ? "ID RAFT_ADDR" : "one manager id", n);
                return RQ_INVALID;
            }
            if (cmdline_u64(args[0], 1, UINT32_MAX, &v) != 0) {
                rq_why(why, whyn,
                       "the manager id must be a positive integer, not '%s'",
                       args[0]);
                return RQ_INVALID;
            }
            out->manager_id = (uint32_t)v;
            out->raft_addr = want == 2 ? args[1] : NULL;
            return 0;
        }
        case CMD_CONSUMER_LIST:
            if (n != 0) {
                rq_why(why, whyn,
                       "'%s' takes no arguments (got '%s'; --topic T lists "
                       "one topic's)",
                       name, args[0]);
                return RQ_INVALID;
            }
            return 0;
        case CMD_CONSUMER_DESCRIBE:
        case CMD_CONSUMER_OFFSETS:
        case CMD_CONSUMER_RESET:
            if (n != 1 || cmdline_u64(args[0], 1, JSON_SAFE_MAX, &v) != 0) {
                rq_why(why, whyn,
                       "'%s' takes one consumer id (a positive integer; see "
                       "raftq consumer list)",
                       name);
                return RQ_INVALID;
            }
            out->consumer = v;
            out->has_consumer = true;
            return 0;
        case CMD_GROUP_DESCRIBE:
        case CMD_GROUP_RESET:
        case CMD_GROUP_DELETE:
            if (n != 1) {
                rq_why(why, whyn, "'%s' takes one group name (got %zu words)",
                       name, n);
                return RQ_INVALID;
            }
            out->group = args[0];
            return 0;
        case CMD_TOKEN_CREATE:
            if (n != 1) {
                rq_why(why, whyn,
                       "'token create' takes one name, saying whose token it "
                       "is (got %zu words)",
                       n);
                return RQ_INVALID;
            }
            out->token_name = args[0];
            return 0;
        case CMD_TOKEN_REVOKE:
            if (n != 1) {
                rq_why(why, whyn,
                       "'token revoke' takes one token id (got %zu words)", n);
                return RQ_INVALID;
            }
            if (cmdline_u64(args[0], 1, JSON_SAFE_MAX, &v) != 0) {
                rq_why(why, whyn,
                       "the token id must be a positive integer (see raftq "
                       "token list), not '%s'",
                       args[0]);
                return RQ_INVALID;
            }
            out->token_id = v;
            return 0;
        case CMD_PARTITION_MOVE_LEADER:
            if (n != 3) {
                rq_why(why, whyn,
                       "'%s' takes TOPIC PARTITION BROKER (got %zu words)",
                       name, n);
                return RQ_INVALID;
            }
            out->topic = args[0];
            if (cmdline_u64(args[1], 0, UINT32_MAX, &v) != 0) {
                rq_why(why, whyn, "the partition must be an integer, not '%s'",
                       args[1]);
                return RQ_INVALID;
            }
            out->partition = (uint32_t)v;
            out->has_partition = true;
            if (cmdline_u64(args[2], 1, UINT32_MAX, &v) != 0) {
                rq_why(why, whyn,
                       "the broker id must be a positive integer, "
                       "not '%s'",
                       args[2]);
                return RQ_INVALID;
            }
            out->broker_id = (uint32_t)v;
            return 0;
        case CMD_PROFILE_LIST:
            if (n != 0) {
                rq_why(why, whyn, "'%s' takes no arguments (got '%s')", name,
                       args[0]);
                return RQ_INVALID;
            }
            return 0;
        case CMD_PROFILE_CREATE:
        case CMD_PROFILE_USE:
        case CMD_PROFILE_SHOW:
        case CMD_PROFILE_DELETE:
            if (n > 1 || (n == 0 && out->cmd != CMD_PROFILE_SHOW)) {
                rq_why(why, whyn, "'%s' takes one profile name (got %zu words)",
                       name, n);
                return RQ_INVALID;
            }
            if (n == 1 && profile_name_check(args[0], why, whyn) != 0) {
                return RQ_INVALID;
            }
            out->profile_name = n == 1 ? args[0] : NULL;
            return 0;
        case CMD_COMPLETION:
            if (n != 1 || !completion_shell_known(args[0])) {
                rq_why(why, whyn, "'completion' takes the shell: %s",
                       COMPLETION_SHELLS);
                return RQ_INVALID;
            }
            out->shell = args[0];
            return 0;
        default:
            /* Group words alone were refused without --help. */
            return 0;
    }
}

/* Parses one option's value into @out. */
static int opt_value(struct cmdline *out, const struct found *f, char *why,
                     size_t whyn)
{
    const char *s = f->value;
    uint64_t v;

    switch (f->opt->id) {
        case OPT_MANAGERS:
            if (out->cmd == CMD_DEV) {
                if (cmdline_u64(s, 1, 9, &v) != 0 || (v != 3 && v != 5)) {
                    rq_why(why, whyn,
                           "'dev --managers' is the number of managers, 3 or "
                           "5, not '%s'",
                           s);
                    return RQ_INVALID;
                }
                out->dev_managers = (unsigned)v;
                out->has_dev_managers = true;
                return 0;
            }
            if (*s == '\0') {
                rq_why(why, whyn,
                       "--managers needs URL,... (e.g. "
                       "http://127.0.0.1:9500)");
                return RQ_INVALID;
            }
            out->managers = s;
            return 0;
        case OPT_TOKEN:
            out->token = s;
            return 0;
        case OPT_CACERT:
            if (*s == '\0') {
                rq_why(why, whyn, "--cacert needs a PEM file");
                return RQ_INVALID;
            }
            out->cacert = s;
            return 0;
        case OPT_TLS:
            out->dev_tls = true;
            return 0;
        case OPT_JSON:
            out->json = true;
            return 0;
        case OPT_FOLLOW:
            out->follow = true;
            return 0;
        case OPT_FORCE:
            out->force = true;
            return 0;
        case OPT_WAIT:
            if (cmdline_u64(s, 1, 86400, &v) != 0) {
                rq_why(why, whyn,
                       "--wait is whole seconds from 1 to 86400, not '%s'", s);
                return RQ_INVALID;
            }
            out->wait_ms = v * 1000;
            return 0;
        case OPT_BINARY:
            out->binary = true;
            return 0;
        case OPT_PROFILE:
            if (profile_name_check(s, why, whyn) != 0) {
                return RQ_INVALID;
            }
            out->profile = s;
            return 0;
        case OPT_NAMES:
            out->names = true;
            return 0;
        case OPT_HELP:
        case OPT_VERSION:
            return 0;
        case OPT_TIMEOUT:
            if (cmdline_u64(s, 1, 3600, &v) != 0) {
                rq_why(why, whyn,
                       "--timeout is whole seconds from 1 to 3600, "
                       "not '%s'",
                       s);
                return RQ_INVALID;
            }
            out->timeout_ms = v * 1000;
            return 0;
        case OPT_PARTITIONS:
            if (cmdline_u64(s, 0, UINT32_MAX, &v) != 0) {
                rq_why(why, whyn, "--partitions must be an integer, not '%s'",
                       s);
                return RQ_INVALID;
            }
            out->partitions = (uint32_t)v;
            out->has_partitions = true;
            return 0;
        case OPT_KEY:
            out->key = s;
            return 0;
        case OPT_PARTITION:
            if (cmdline_u64(s, 0, UINT32_MAX, &v) != 0) {
                rq_why(why, whyn, "--partition must be an integer, not '%s'",
                       s);
                return RQ_INVALID;
            }
            out->partition = (uint32_t)v;
            out->has_partition = true;
            return 0;
        case OPT_BATCH:
            if (cmdline_u64(s, 1, CMDLINE_MAX_BATCH, &v) != 0) {
                rq_why(why, whyn, "--batch is 1 to %d records, not '%s'",
                       CMDLINE_MAX_BATCH, s);
                return RQ_INVALID;
            }
            out->batch = (uint32_t)v;
            out->has_batch = true;
            return 0;
        case OPT_SECONDS:
            if (cmdline_seconds_ms(s, 100, 3600000, &v) != 0) {
                rq_why(why, whyn,
                       "--seconds is 0.1 to 3600 (at most three decimals), "
                       "not '%s'",
                       s);
                return RQ_INVALID;
            }
            out->seconds_ms = v;
            return 0;
        case OPT_IN_FLIGHT:
            if (cmdline_u64(s, 1, CMDLINE_MAX_IN_FLIGHT, &v) != 0) {
                rq_why(why, whyn, "--in-flight is 1 to %d requests, not '%s'",
                       CMDLINE_MAX_IN_FLIGHT, s);
                return RQ_INVALID;
            }
            out->in_flight = (uint32_t)v;
            return 0;
        case OPT_SIZE:
            if (cmdline_u64(s, 1, CMDLINE_MAX_SIZE, &v) != 0) {
                rq_why(why, whyn, "--size is 1 to %u bytes, not '%s'",
                       CMDLINE_MAX_SIZE, s);
                return RQ_INVALID;
            }
            out->size = (uint32_t)v;
            return 0;
        case OPT_TOPIC:
            if (*s == '\0') {
                rq_why(why, whyn, "--topic needs a topic name");
                return RQ_INVALID;
            }
            out->topic = s;
            return 0;
        case OPT_CONSUMER:
            if (cmdline_u64(s, 1, JSON_SAFE_MAX, &v) != 0) {
                rq_why(why, whyn,
                       "--consumer must be a consumer id (a positive "
                       "integer), not '%s'",
                       s);
                return RQ_INVALID;
            }
            out->consumer = v;
            out->has_consumer = true;
            return 0;
        case OPT_OFFSET:
            if (cmdline_u64(s, 0, JSON_SAFE_MAX, &v) != 0) {
                rq_why(why, whyn, "--offset must be an integer, not '%s'", s);
                return RQ_INVALID;
            }
            out->offset = v;
            out->has_offset = true;
            return 0;
        case OPT_MAX:
            if (cmdline_u64(s, 1, JSON_SAFE_MAX, &v) != 0) {
                rq_why(why, whyn, "--max must be a positive integer, not '%s'",
                       s);
                return RQ_INVALID;
            }
            out->max = v;
            out->has_max = true;
            return 0;
        case OPT_BROKERS:
            if (cmdline_u64(s, 3, CMDLINE_MAX_BROKERS, &v) != 0) {
                rq_why(why, whyn, "--brokers is 3 to %d, not '%s'",
                       CMDLINE_MAX_BROKERS, s);
                return RQ_INVALID;
            }
            out->dev_brokers = (unsigned)v;
            out->has_dev_brokers = true;
            return 0;
        case OPT_DATA:
            if (*s == '\0') {
                rq_why(why, whyn, "--data needs a directory");
                return RQ_INVALID;
            }
            out->data = s;
            return 0;
        case OPT_GRANT:
            if (out->n_grants == CMDLINE_MAX_GRANTS) {
                rq_why(why, whyn,
                       "at most %d --grant options (a token holds "
                       "at most %d grants)",
                       CMDLINE_MAX_GRANTS, CMDLINE_MAX_GRANTS);
                return RQ_INVALID;
            }
            if (*s == '\0') {
                rq_why(why, whyn,
                       "--grant needs a grant: admin, produce:TOPIC, "
                       "consume:TOPIC, or a prefix such as produce:orders.*");
                return RQ_INVALID;
            }
            out->grants[out->n_grants++] = s;
            return 0;
        case OPT_FORMAT:
            if (render_format_check(s, why, whyn) != 0) {
                return RQ_INVALID;
            }
            out->format = s;
            return 0;
        case OPT_GROUP:
            if (*s == '\0') {
                rq_why(why, whyn, "--group needs a group name");
                return RQ_INVALID;
            }
            out->group = s;
            return 0;
        case OPT_TO:
            if (out->cmd == CMD_CONSUMER_RESET) {
                if (cmdline_position(s, true, (int64_t)time(NULL) * 1000,
                                     &out->from) != 0) {
                    rq_why(why, whyn,
                           "--to is earliest, latest, an offset, or a time "
                           "(2026-12-08T10:00:00Z, -15m, @UNIX_MS), not '%s'",
                           s);
                    return RQ_INVALID;
                }
                return 0;
            }
            if (*s == '\0') {
                rq_why(why, whyn,
                       "--to is earliest, latest or PARTITION=OFFSET,...");
                return RQ_INVALID;
            }
            out->reset_to = s;
            return 0;
        case OPT_FROM:
            if (cmdline_position(s, false, (int64_t)time(NULL) * 1000,
                                 &out->from) != 0) {
                rq_why(why, whyn,
                       "--from is earliest, latest or a time (Unix "
                       "milliseconds, 2026-12-08T10:00:00Z, -15m), not '%s'",
                       s);
                return RQ_INVALID;
            }
            return 0;
        case OPT_BASE_PORT:
            if (cmdline_u64(s, 1, 65535, &v) != 0) {
                rq_why(why, whyn, "--base-port must be a port number, not '%s'",
                       s);
                return RQ_INVALID;
            }
            out->base_port = (uint16_t)v;
            out->has_base_port = true;
            return 0;
    }
    return 0;
}

/* The combinations no single option can judge. */
static int check_combinations(struct cmdline *out, char *why, size_t whyn)
{
    if (out->cmd == CMD_PROFILE_CREATE && out->managers == NULL &&
        out->token == NULL && out->cacert == NULL) {
        rq_why(why, whyn,
               "'profile create' needs --managers, --token or --cacert: a "
               "profile of nothing changes nothing");
        return RQ_INVALID;
    }
    if (out->names && out->json) {
        rq_why(why, whyn,
               "--names and --json exclude each other: --names prints the "
               "names alone");
        return RQ_INVALID;
    }
    if (out->cmd == CMD_TOKEN_CREATE && out->n_grants == 0) {
        rq_why(why, whyn,
               "'token create' needs at least one --grant (e.g. --grant "
               "produce:orders.* --grant consume:orders.*, or --grant admin)");
        return RQ_INVALID;
    }
    if (out->cmd == CMD_BENCH && out->has_partitions &&
        (out->partitions == 0 || out->partitions > CMDLINE_MAX_PARTITIONS)) {
        rq_why(why, whyn, "'bench --partitions' is 1 to %d, not %u",
               CMDLINE_MAX_PARTITIONS, out->partitions);
        return RQ_INVALID;
    }
    if (out->cmd == CMD_GROUP_RESET && out->reset_to == NULL) {
        rq_why(why, whyn,
               "'group reset-offsets' needs --to earliest, latest or "
               "PARTITION=OFFSET,...");
        return RQ_INVALID;
    }
    if (out->cmd == CMD_CONSUMER_RESET && out->from.kind == CMDLINE_POS_NONE) {
        rq_why(why, whyn,
               "'consumer reset' needs --to earliest, latest, an offset or a "
               "time");
        return RQ_INVALID;
    }
    if (out->cmd != CMD_CONSUME) {
        return 0;
    }
    if (out->from.kind != CMDLINE_POS_NONE &&
        (out->group != NULL || out->has_offset)) {
        rq_why(why, whyn, "--from excludes %s",
               out->group != NULL
                   ? "--group: a group reads from its committed offsets (see "
                     "raftq group reset-offsets)"
                   : "--offset: both say where to start");
        return RQ_INVALID;
    }
    if (out->group != NULL &&
        (out->has_consumer || out->has_offset || out->has_partition)) {
        rq_why(why, whyn,
               "--group excludes --consumer, --offset and --partition: the "
               "group assigns partitions and keeps the offsets");
        return RQ_INVALID;
    }
    if (out->format != NULL && out->json) {
        rq_why(why, whyn,
               "--json and --format exclude each other: --json prints the "
               "server's answers");
        return RQ_INVALID;
    }
    if (out->has_offset && out->has_consumer) {
        rq_why(why, whyn,
               "--consumer and --offset exclude each other: a "
               "consumer reads from its own offsets");
        return RQ_INVALID;
    }
    if (out->has_offset && !out->has_partition) {
        rq_why(why, whyn,
               "--offset needs --partition: offsets are per "
               "partition");
        return RQ_INVALID;
    }
    return 0;
}

int cmdline_parse(int argc, char **argv, const struct cmdline_env *env,
                  struct cmdline *out, char *why, size_t whyn)
{
    char *pos[argc > 0 ? argc : 1];
    struct found found[MAX_OPTS];
    size_t n_pos = 0, n_found = 0;
    bool dashdash = false;

    memset(out, 0, sizeof *out);
    out->timeout_ms = CMDLINE_DEFAULT_TIMEOUT_MS;
    out->batch = CMDLINE_DEFAULT_BATCH;
    out->data = CMDLINE_DEFAULT_DATA;
    out->base_port = CMDLINE_DEFAULT_BASE_PORT;
    out->dev_managers = 3;
    out->dev_brokers = 3;
    out->seconds_ms = CMDLINE_DEFAULT_SECONDS_MS;

    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        if (dashdash || a[0] != '-' || a[1] == '\0' ||
            (a[1] != '-' && strcmp(a, "-h") != 0)) {
            /* Words, "-", and "-5" are positional. */
            pos[n_pos++] = argv[i];
            continue;
        }
        if (strcmp(a, "--") == 0) {
            dashdash = true;
            continue;
        }
        if (strcmp(a, "-h") == 0) {
            a = "--help";
        }
        const char *name = a + 2;
        const char *eq = strchr(name, '=');
        size_t len = eq != NULL ? (size_t)(eq - name) : strlen(name);
        const struct opt *o = opt_find(name, len);
        if (o == NULL) {
            rq_why(why, whyn, "unknown option --%.*s", (int)len, name);
            return RQ_INVALID;
        }
        if (n_found == MAX_OPTS) {
            rq_why(why, whyn, "too many options (at most %d)", MAX_OPTS);
            return RQ_INVALID;
        }
        const char *value = NULL;
        if (o->has_value && eq != NULL) {
            value = eq + 1;
        } else if (o->has_value) {
            if (i + 1 >= argc) {
                rq_why(why, whyn, "--%s needs a value", o->name);
                return RQ_INVALID;
            }
            value = argv[++i];
        } else if (eq != NULL) {
            rq_why(why, whyn, "--%s takes no value", o->name);
            return RQ_INVALID;
        }
        if (o->id == OPT_HELP) {
            out->help = true;
        }
        out->version = out->version || o->id == OPT_VERSION;
        found[n_found++] = (struct found){o, value};
    }
    if (out->version && !out->help) {
        return 0; /* Whatever else the line says. */
    }

    /* The positional words move to the front of argv, in order, so that
     * out->values can point into argv (getopt permutes argv the same way;
     * the strings themselves stay where they are). */
    memcpy(argv + 1, pos, n_pos * sizeof *pos);
    size_t skip = 0;
    if (n_pos > 0 && strcmp(argv[1], "help") == 0) {
        /* "raftq help topic create" is "raftq topic create --help". */
        out->help = true;
        skip = 1;
    }
    int took = command_words(argv + 1 + skip, n_pos - skip, out->help,
                             &out->cmd, why, whyn);
    if (took < 0) {
        return RQ_INVALID;
    }
    if (out->help) {
        return 0;
    }
    for (size_t i = 0; i < n_found; i++) {
        if ((found[i].opt->cmds & BIT(out->cmd)) == 0) {
            rq_why(why, whyn, "--%s does not apply to '%s'", found[i].opt->name,
                   cmdline_name(out->cmd));
            return RQ_INVALID;
        }
        int rv = opt_value(out, &found[i], why, whyn);
        if (rv != 0) {
            return rv;
        }
    }
    int rv = command_args(out, argv + 1 + skip + took,
                          n_pos - skip - (size_t)took, why, whyn);
    if (rv != 0) {
        return rv;
    }

    if ((PROFILE_CMDS & BIT(out->cmd)) != 0 && out->profile == NULL &&
        env != NULL && env->profile != NULL && env->profile[0] != '\0') {
        if (profile_name_check(env->profile, why, whyn) != 0) {
            rq_why(why, whyn, "RAFTQ_PROFILE is not a profile name: '%s'",
                   env->profile);
            return RQ_INVALID;
        }
        out->profile = env->profile;
    }
    /* raftq profile and completion take nothing from the environment: a
     * profile keeps what its command line says. */
    if ((CLIENT_CMDS & BIT(out->cmd)) == 0 && out->cmd != CMD_DEV) {
        return check_combinations(out, why, whyn);
    }

    /* The environment fills what the flags left open. */
    if (out->cmd != CMD_DEV && out->managers == NULL) {
        if (env != NULL && env->managers != NULL && env->managers[0] != '\0') {
            out->managers = env->managers;
        } else {
            out->managers = DEFAULT_MANAGERS;
            out->managers_default = true;
        }
    }
    if (out->cmd != CMD_DEV && out->token == NULL && env != NULL &&
        env->client_token != NULL && env->client_token[0] != '\0') {
        out->token = env->client_token;
    }
    if (out->token == NULL && env != NULL && env->token != NULL &&
        env->token[0] != '\0') {
        out->token = env->token;
    }
    if (out->cmd != CMD_DEV && out->cacert == NULL && env != NULL &&
        env->cacert != NULL && env->cacert[0] != '\0') {
        out->cacert = env->cacert;
    }
    if (out->cmd == CMD_DEV && !out->has_base_port && env != NULL &&
        env->base_port != NULL && env->base_port[0] != '\0') {
        uint64_t v;
        if (cmdline_u64(env->base_port, 1, 65535, &v) != 0) {
            rq_why(why, whyn,
                   "RAFTQ_BASE_PORT must be a port number, not "
                   "'%s'",
                   env->base_port);
            return RQ_INVALID;
        }
        out->base_port = (uint16_t)v;
        out->has_base_port = true;
    }
    return check_combinations(out, why, whyn);
}

/* ---- Help texts ---- */

static const char overview[] =
    "usage: raftq [--managers URL,...] [--json] [--token T] [--timeout S] "
    "COMMAND ...\n"
    "\n"
    "The raftq client: talks to any manager of a cluster (trying the next "
    "one\n"
    "when a manager cannot be reached or has no quorum).\n"
    "\n"
    "Commands:\n"
    "  dev                          start a local cluster (3 managers, 3 "
    "brokers)\n"
    "  topic create NAME            create a topic\n"
    "  topic list                   list topics\n"
    "  topic describe NAME          partitions, leaders, replicas, lag\n"
    "  topic delete NAME            delete a topic\n"
    "  produce TOPIC [VALUE...]     produce values (or stdin lines)\n"
    "  consume TOPIC                consume, from a consumer or an offset\n"
    "  cluster status               managers, leader, brokers\n"
    "  broker list                  brokers with state and partitions\n"
    "  broker drain ID              move replicas off a broker\n"
    "  broker remove ID             remove a broker for good\n"
    "  broker delete-replica B G    delete a quarantined replica\n"
    "  partition moves              replica moves under way\n"
    "  cluster add-manager ID ADDR  add a manager (non-voter until caught "
    "up)\n"
    "  cluster remove-manager ID    remove a manager from the Raft group\n"
    "  partition move-leader TOPIC P BROKER\n"
    "                               move a partition's leadership\n"
    "  token create NAME --grant G...  a public API token (shown once)\n"
    "  token list                   tokens: id, name, grants\n"
    "  token revoke ID              revoke a token on every manager\n"
    "  profile create NAME          save managers, token and CA as a "
    "profile\n"
    "  profile use NAME             make a profile the current one\n"
    "  profile list                 profiles, the current one marked\n"
    "  profile show [NAME]          a profile's settings (token masked)\n"
    "  profile delete NAME          delete a profile\n"
    "  completion bash|zsh          print a shell completion script\n"
    "  group list                   consumer groups: topic, generation, "
    "members\n"
    "  group describe GROUP         members, their partitions, offsets and "
    "lag\n"
    "  group reset-offsets GROUP --to earliest|latest|P=N,...\n"
    "                               set a group's offsets (no live "
    "members)\n"
    "  group delete GROUP           delete a group (no live members)\n"
    "  consumer list [--topic T]    consumers: topic, partition, lag\n"
    "  consumer describe ID         a consumer and its offsets\n"
    "  consumer offsets ID          a consumer's offset and lag per "
    "partition\n"
    "  consumer reset ID --to earliest|latest|OFFSET|TIME\n"
    "                               move a consumer's offsets\n"
    "  bench [CASE...]              measure the cluster: msgs/s, MB/s, "
    "latency\n"
    "\n"
    "Global options (anywhere on the line):\n"
    "  --managers URL,...  managers to talk to [RAFTQ_MANAGERS]\n"
    "                      (default " DEFAULT_MANAGERS
    ")\n"
    "  --json              print the server's JSON instead of tables\n"
    "  --token T           bearer token: the admin token, or one from 'raftq\n"
    "                      token create' [RAFTQ_TOKEN, else "
    "RAFTQ_ADMIN_TOKEN]\n"
    "  --cacert FILE       PEM CA to verify https:// managers against\n"
    "                      [RAFTQ_CACERT] (default: the system's CAs)\n"
    "  --profile NAME      what the options and variables above leave "
    "open comes\n"
    "                      from profile NAME [RAFTQ_PROFILE] (default: the "
    "current\n"
    "                      one, if any; see raftq profile --help)\n"
    "  --timeout S         retry unavailable managers for S seconds "
    "(default 10)\n"
    "  --help, -h          help; 'raftq COMMAND --help' for a command\n"
    "  --version           print the release (raftq 0.17.0, say) and exit\n"
    "\n"
    "Exit codes: 0 ok, 1 refused by the server (message on stderr), 2 bad "
    "usage,\n"
    "3 no manager reachable or no quorum.\n";

static const char *const helps[] = {
    [CMD_DEV] =
        "usage: raftq dev [--managers 3|5] [--brokers N] [--data DIR] "
        "[--base-port P] [--tls]\n"
        "\n"
        "Starts a local cluster on 127.0.0.1 from the manager and broker "
        "binaries\n"
        "next to raftq, waits until it is ready, prints the manager URLs and "
        "how to\n"
        "use them, and stops every process cleanly on Ctrl-C or SIGTERM. "
        "Running it\n"
        "again on the same DIR resumes the same data (and the same layout: "
        "the\n"
        "number of managers and the ports are recorded in DIR/dev/"
        "cluster.json).\n"
        "The first run also makes a random cluster secret and admin token "
        "and keeps\n"
        "them in DIR/dev/cluster.json (mode 0600); later runs reuse them. "
        "The admin\n"
        "token is printed once the cluster is ready.\n"
        "\n"
        "  --managers N    3 or 5 managers (default 3)\n"
        "  --brokers N     3 to 20 brokers (default 3)\n"
        "  --data DIR      data and logs under DIR/dev (default ./data)\n"
        "  --base-port P   ports P.. : manager HTTP P+i-1, manager Raft "
        "P+10+i-1,\n"
        "                  broker HTTP P+20+i-1, broker Raft P+40+i-1\n"
        "                  [RAFTQ_BASE_PORT] (default 9500)\n"
        "  --token T       give the managers this admin token instead of "
        "the kept one\n"
        "                  [RAFTQ_ADMIN_TOKEN]\n"
        "  --tls           TLS 1.3 on every port: a throwaway CA and a "
        "certificate\n"
        "                  per process under DIR/dev/tls (made once), https "
        "URLs\n"
        "\n"
        "Exits 1 when a port is in use, another raftq dev holds DIR, the "
        "cluster\n"
        "is not ready within 60 s, or a process dies.\n",
    [CMD_TOPIC] =
        "usage: raftq topic create|list|describe|delete ...\n"
        "\n"
        "  topic create NAME [--partitions N]\n"
        "  topic list\n"
        "  topic describe NAME\n"
        "  topic delete NAME\n",
    [CMD_TOPIC_CREATE] =
        "usage: raftq topic create NAME [--partitions N]\n"
        "\n"
        "Creates a topic of N partitions (default 3), each replicated on 3 "
        "brokers.\n"
        "Names are 1-128 characters of [A-Za-z0-9._-].\n",
    [CMD_TOPIC_LIST] =
        "usage: raftq topic list\n"
        "\n"
        "Lists the topics, one name a line.\n",
    [CMD_TOPIC_DESCRIBE] =
        "usage: raftq topic describe NAME\n"
        "\n"
        "Shows each partition's leader, replicas, high watermark, commit "
        "index and\n"
        "the largest lag of its replicas (admin API).\n",
    [CMD_TOPIC_DELETE] =
        "usage: raftq topic delete NAME\n"
        "\n"
        "Deletes a topic and its messages (admin API).\n",
    [CMD_PRODUCE] =
        "usage: raftq produce TOPIC [VALUE...] [--key K] [--partition P] "
        "[--batch N]\n"
        "\n"
        "Produces each VALUE as one message; with no VALUE, each line of "
        "standard\n"
        "input is one message, sent in batches of N (default 1000). Prints "
        "each\n"
        "message's partition and offset (values given as arguments) or a "
        "count.\n"
        "A progress line goes to stderr when stdout is a terminal and the "
        "input\n"
        "fills more than one batch. The topic must exist. Retried requests "
        "are\n"
        "not appended twice (the producer id and a sequence go with each "
        "batch).\n"
        "\n"
        "  --key K         key of every message (chooses the partition by "
        "hash)\n"
        "  --partition P   send every message to partition P\n"
        "  --batch N       messages per request, 1 to 10000 (default "
        "1000)\n"
        "  --              the words after it are values, even '--x'\n",
    [CMD_CONSUME] =
        "usage: raftq consume TOPIC [--consumer ID | --offset N --partition "
        "P]\n"
        "                     [--partition P] [--from WHERE] [--max N] "
        "[--follow]\n"
        "       raftq consume TOPIC --group G [--max N] [--follow]\n"
        "\n"
        "Prints messages, one value a line. With --consumer, reads as that "
        "consumer:\n"
        "each message once, its offset advancing on the cluster. Without "
        "--consumer\n"
        "or --offset, registers a new consumer first and prints its id on "
        "stderr.\n"
        "With --offset and --partition, reads that partition from offset N "
        "and\n"
        "moves no consumer. Stops when nothing is left, after --max "
        "messages, or\n"
        "with --follow only on --max or Ctrl-C (which exits 0), waiting for "
        "new\n"
        "messages with long polls.\n"
        "\n"
        "  --consumer ID   consume as this consumer\n"
        "  --offset N      first offset to read (needs --partition)\n"
        "  --from WHERE    where to start: earliest, latest (only what comes "
        "next),\n"
        "                  or the first message stamped at or after a time:\n"
        "                  Unix ms, 2026-12-08T10:00:00Z, or -30s, -15m, -2h, "
        "-1d\n"
        "                  ago. With --partition and no --consumer, reads "
        "that\n"
        "                  partition from there and moves no consumer; "
        "otherwise\n"
        "                  sets the consumer's offsets there first\n"
        "  --partition P   the partition (a new consumer is bound to it)\n"
        "  --max N         stop after N messages\n"
        "  --follow        wait for new messages\n"
        "  --format F      print each message as F says: json (a JSON object "
        "a line:\n"
        "                  partition_id, offset, key, timestamp_ms, value) or "
        "a template\n"
        "                  with %v value, %k key, %o offset, %p partition, "
        "%t timestamp\n"
        "                  (ms; empty where a consumer's read has none), "
        "%%, \\n, \\t\n"
        "                  ('%p:%o %v\\n', say)\n"
        "  --group G       consume as a member of consumer group G: the "
        "group's\n"
        "                  members share the topic's partitions; each "
        "message is\n"
        "                  committed once printed, and one printed by a "
        "member\n"
        "                  that dies before its commit is printed again by "
        "another\n"
        "                  (at least once). Heartbeats go in the "
        "background;\n"
        "                  Ctrl-C leaves the group.\n",
    [CMD_CONSUMER] =
        "usage: raftq consumer list|describe|offsets|reset ...\n"
        "\n"
        "  consumer list [--topic T]\n"
        "  consumer describe ID\n"
        "  consumer offsets ID\n"
        "  consumer reset ID --to earliest|latest|OFFSET|TIME "
        "[--partition P]\n",
    [CMD_CONSUMER_LIST] =
        "usage: raftq consumer list [--topic T]\n"
        "\n"
        "Lists the consumers (API.md section 1; groups are raftq group list), "
        "newest\n"
        "first: id, topic, the partition it is bound to (all: every "
        "partition) and\n"
        "its lag, the messages it has not read yet (admin API).\n",
    [CMD_CONSUMER_DESCRIBE] =
        "usage: raftq consumer describe ID\n"
        "\n"
        "Shows consumer ID's topic, the partition it is bound to, its lag, "
        "and per\n"
        "partition its next offset and lag (admin API).\n",
    [CMD_CONSUMER_OFFSETS] =
        "usage: raftq consumer offsets ID\n"
        "\n"
        "Per partition consumer ID reads: the next offset it reads and its "
        "lag.\n",
    [CMD_CONSUMER_RESET] =
        "usage: raftq consumer reset ID --to earliest|latest|OFFSET|TIME "
        "[--partition P]\n"
        "\n"
        "Moves consumer ID's offsets, on every partition it reads or on "
        "--partition P\n"
        "only: to the first record (earliest), past the last (latest), to "
        "OFFSET, or\n"
        "to the first record stamped at or after TIME (2026-12-08T10:00:00Z, "
        "-15m,\n"
        "@UNIX_MS). It reads from there next.\n",
    [CMD_CLUSTER] =
        "usage: raftq cluster status|add-manager|remove-manager "
        "...\n"
        "\n"
        "  cluster status\n"
        "  cluster add-manager ID RAFT_ADDR\n"
        "  cluster remove-manager ID [--force]\n",
    [CMD_CLUSTER_ADD_MANAGER] =
        "usage: raftq cluster add-manager ID RAFT_ADDR\n"
        "\n"
        "Adds manager ID, reached for Raft at RAFT_ADDR, as a non-voter. Start "
        "it\n"
        "with an empty data directory: it catches up and then becomes a "
        "voter.\n"
        "A manager started with an empty data directory asks to be added by "
        "itself,\n"
        "so this is needed only to add one before it starts.\n",
    [CMD_CLUSTER_REMOVE_MANAGER] =
        "usage: raftq cluster remove-manager ID [--force]\n"
        "\n"
        "Removes manager ID from the managers' Raft group; stop it "
        "afterwards.\n"
        "Refused when fewer than 3 voters would remain, unless --force. A "
        "leader\n"
        "hands leadership over first (the command asks again until it is "
        "done).\n",
    [CMD_CLUSTER_STATUS] =
        "usage: raftq cluster status\n"
        "\n"
        "Shows every manager (role, term, commit and applied index, ready "
        "or not),\n"
        "the leader, and the brokers. Exits 3 when no manager answers or "
        "there is\n"
        "no leader to list the brokers.\n",
    [CMD_BROKER] =
        "usage: raftq broker list|drain|remove ...\n"
        "\n"
        "  broker list\n"
        "  broker drain ID [--wait S]\n"
        "  broker remove ID [--wait S]\n"
        "  broker delete-replica BROKER GROUP\n",
    [CMD_BROKER_DELETE_REPLICA] =
        "usage: raftq broker delete-replica BROKER GROUP\n"
        "\n"
        "Deletes, with its data, a replica that broker BROKER hosts and "
        "the\n"
        "managers never placed (listed as quarantined by raftq broker "
        "list).\n",
    [CMD_BROKER_LIST] =
        "usage: raftq broker list\n"
        "\n"
        "Lists the brokers: state (alive, suspect, dead, draining, removed), "
        "the\n"
        "age of the last heartbeat, replicas placed and leaderships held.\n",
    [CMD_BROKER_DRAIN] =
        "usage: raftq broker drain ID [--wait S]\n"
        "\n"
        "Marks a broker DRAINING: it takes no new replicas and its replicas "
        "move\n"
        "to other brokers, a few partitions at a time. With --wait, returns "
        "once\n"
        "it holds none, or exits 1 after S seconds saying how many are "
        "left.\n",
    [CMD_BROKER_REMOVE] =
        "usage: raftq broker remove ID [--wait S]\n"
        "\n"
        "Marks a broker REMOVED: its replicas move away first (REMOVING). "
        "Its id\n"
        "comes back only for a broker process that starts holding no "
        "replica.\n"
        "With --wait, returns once it is REMOVED, or exits 1 after S seconds "
        "saying\n"
        "how many replicas are left (the removal goes on).\n",
    [CMD_PARTITION] =
        "usage: raftq partition move-leader TOPIC PARTITION BROKER\n"
        "       raftq partition moves\n",
    [CMD_PARTITION_MOVES] =
        "usage: raftq partition moves\n"
        "\n"
        "Lists the replica moves under way: repairs (off a dead, draining "
        "or\n"
        "removed broker), rebalancing onto less loaded brokers, and "
        "rebuilds,\n"
        "with the step each is at.\n",
    [CMD_PARTITION_MOVE_LEADER] =
        "usage: raftq partition move-leader TOPIC PARTITION BROKER\n"
        "\n"
        "Hands the partition's leadership to BROKER (one of its replicas); "
        "answers\n"
        "once it has moved. Brokers hand it back to the preferred leader "
        "within\n"
        "seconds.\n",
    [CMD_TOKEN] =
        "usage: raftq token create|list|revoke ...\n"
        "\n"
        "  token create NAME --grant G [--grant G...]\n"
        "  token list\n"
        "  token revoke ID\n",
    [CMD_TOKEN_CREATE] =
        "usage: raftq token create NAME --grant G [--grant G...]\n"
        "\n"
        "Creates a token for the public API of managers started with --auth "
        "tokens\n"
        "(admin API). Prints the token alone on stdout, so that "
        "TOKEN=$(raftq token\n"
        "create ...) keeps it; it is shown only this once (the cluster keeps "
        "its\n"
        "SHA-256). Clients send it as 'Authorization: Bearer TOKEN' (raftq "
        "--token).\n"
        "\n"
        "  --grant admin             everything, the admin API included\n"
        "  --grant produce:TOPIC     produce to TOPIC (and create it)\n"
        "  --grant consume:TOPIC     consume from TOPIC\n"
        "  --grant produce:PREFIX.*  the same on PREFIX and every topic "
        "named\n"
        "                            PREFIX.something (consume:PREFIX.* "
        "too);\n"
        "                            produce:* and consume:* for every "
        "topic\n",
    [CMD_TOKEN_LIST] =
        "usage: raftq token list\n"
        "\n"
        "Lists the tokens: id, name, grants and when each was created (never "
        "the\n"
        "tokens themselves; admin API).\n",
    [CMD_BENCH] =
        "usage: raftq bench [CASE...] [--seconds S] [--in-flight N] "
        "[--size B]\n"
        "                   [--batch N] [--partitions N] [--topic T] "
        "[--binary] [--json]\n"
        "\n"
        "Measures a running cluster through the managers' public API, as a "
        "client\n"
        "sees it: each case runs for S seconds after a one-second warm-up, "
        "with a\n"
        "fixed number of requests in flight (one a keep-alive connection, "
        "the\n"
        "connections spread over every manager), and prints messages per "
        "second,\n"
        "MB/s (10^6 bytes of values) and the latency of each request (p50, "
        "p99,\n"
        "p99.9, max). A progress line goes to stderr about once a second. "
        "With no\n"
        "CASE every case runs, in this order:\n"
        "\n"
        "  produce_100b_many     POST /producer/produce, one 100 B message "
        "each,\n"
        "                        64 in flight, a producer per connection, 1 "
        "partition\n"
        "  produce_1k_many       the same with 1 KiB messages\n"
        "  produce_1_inflight    the same, 100 B, one in flight (latency)\n"
        "  lib_produce_100b      100 B messages one raftq_produce() call "
        "each:\n"
        "                        libraftq batches them (16 requests in "
        "flight), 1 partition\n"
        "  batch_1k_x1000        POST /v1/topics/T/records, 1000 records "
        "of 1 KiB,\n"
        "                        12 partitions, 12 in flight, a partition a "
        "request\n"
        "  read_batch_1000_100b  GET .../partitions/P/records?max=1000 over "
        "12\n"
        "                        partitions filled first, 12 in flight\n"
        "  read_batch_1000_1k    the same with 1 KiB records\n"
        "  consume_1             GET /consumer/consume, one consumer, one in "
        "flight,\n"
        "                        on a topic filled first\n"
        "  consume_8             the same with 8 in flight\n"
        "  offset_commit_32      POST /v1/consumers/ID/offsets, 32 in "
        "flight\n"
        "  group_3x12            a consumer group of 3 on 12 partitions "
        "filled with\n"
        "                        60,000 records of 100 B a second of S (at "
        "most\n"
        "                        600,000): each member fetches --batch\n"
        "                        records and commits them, until the "
        "window ends or\n"
        "                        nothing is left\n"
        "\n"
        "'healthz' (GET /healthz, 64 in flight) is not in the list: it "
        "measures the\n"
        "managers' HTTP front end and this client's own ceiling.\n"
        "\n"
        "Each case uses its own topic, T.CASE, created with the case's "
        "partitions (or\n"
        "used as it is if it exists), and starts once each partition is led "
        "by its\n"
        "preferred broker; T is a fresh name a run (bench-TIME-PID)\n"
        "unless --topic gives it. With --auth tokens clusters, the token "
        "needs\n"
        "produce:T.* and consume:T.*. Errors (a 5xx, a refused connection) "
        "are\n"
        "counted, not fatal: a case with errors says so on stderr. So does "
        "the\n"
        "client's own CPU time a request, so a client that is the "
        "bottleneck shows.\n"
        "The topics stay (raftq topic delete removes them): batch_1k_x1000 "
        "alone\n"
        "writes its MB/s times S on each of 3 replicas (0.5 GB or more "
        "each at 10 s).\n"
        "Only http:// managers for now: https:// is refused.\n"
        "\n"
        "  --seconds S       each case's measured time (default 10, decimals "
        "allowed)\n"
        "  --in-flight N     requests in flight in every case (default: the "
        "case's)\n"
        "  --size B          bytes of each message's value (default: the "
        "case's)\n"
        "  --batch N         records a batch request and a read (default "
        "1000)\n"
        "  --partitions N    partitions of every case's topic (default: the "
        "case's)\n"
        "  --topic T         the prefix of the topics' names\n"
        "  --binary          batches (and the fills of the read and consume "
        "cases)\n"
        "                    in the binary body (application/"
        "vnd.raftq.records), a\n"
        "                    partition a request named in the query "
        "string,\n"
        "                    and reads that accept the binary answer "
        "(Accept:\n"
        "                    application/vnd.raftq.records) and count its "
        "records\n"
        "  --json            one JSON object a case on stdout instead of "
        "the table:\n"
        "                    system, case, n, seconds, msgs_per_s, mb_per_s, "
        "p50_ms,\n"
        "                    p99_ms, p999_ms, max_ms (null when none), "
        "in_flight, size\n"
        "\n"
        "Exits 0 when every case ran (errors or not), 1 when a case could "
        "not be set\n"
        "up, 2 for bad usage, 3 when no manager answers.\n",
    [CMD_GROUP] =
        "usage: raftq group list|describe|reset-offsets|delete ...\n"
        "\n"
        "  group list\n"
        "  group describe GROUP\n"
        "  group reset-offsets GROUP --to earliest|latest|P=N,...\n"
        "  group delete GROUP\n",
    [CMD_GROUP_LIST] =
        "usage: raftq group list\n"
        "\n"
        "Lists the consumer groups (those of topics the token may consume): "
        "topic,\n"
        "generation and number of members.\n",
    [CMD_GROUP_DESCRIBE] =
        "usage: raftq group describe GROUP\n"
        "\n"
        "Shows the group's members with their partitions and when each was "
        "last\n"
        "heard from, and each partition's committed offset, high watermark "
        "and lag.\n",
    [CMD_GROUP_RESET] =
        "usage: raftq group reset-offsets GROUP --to earliest|latest|"
        "P=N,...\n"
        "\n"
        "Sets the group's committed offsets: every partition to its first "
        "record\n"
        "(earliest) or past its last (latest), or the partitions named to "
        "the\n"
        "offsets given (0=120,3=7). Only while the group has no live "
        "member.\n",
    [CMD_GROUP_DELETE] =
        "usage: raftq group delete GROUP\n"
        "\n"
        "Deletes the group and its committed offsets. Only while it has no "
        "live\n"
        "member.\n",
    [CMD_TOKEN_REVOKE] =
        "usage: raftq token revoke ID\n"
        "\n"
        "Revokes token ID (see raftq token list): every manager refuses it "
        "once the\n"
        "revocation is committed (admin API).\n",
    [CMD_PROFILE] =
        "usage: raftq profile create|use|list|show|delete ...\n"
        "\n"
        "  profile create NAME [--managers URL,...] [--token T] [--cacert "
        "FILE] [--force]\n"
        "  profile use NAME\n"
        "  profile list [--names]\n"
        "  profile show [NAME]\n"
        "  profile delete NAME\n"
        "\n"
        "A profile names a cluster's settings: its managers, a token and the "
        "CA that\n"
        "verifies https:// managers; one profile may be current. A command "
        "takes\n"
        "each setting from its option, else from its environment variable\n"
        "(RAFTQ_MANAGERS, RAFTQ_TOKEN or RAFTQ_ADMIN_TOKEN, RAFTQ_CACERT), "
        "else from\n"
        "the profile --profile or RAFTQ_PROFILE names, else from the current "
        "one,\n"
        "else the default. Names are 1-64 characters of [A-Za-z0-9._-].\n"
        "\n"
        "The profiles are kept in one file: RAFTQ_CONFIG if set, else\n"
        "$XDG_CONFIG_HOME/raftq/profiles.json, else "
        "~/.config/raftq/profiles.json,\n"
        "of mode 0600 since it holds tokens (a directory made for it gets "
        "0700), and\n"
        "rewritten whole through a temporary file.\n",
    [CMD_PROFILE_CREATE] =
        "usage: raftq profile create NAME [--managers URL,...] [--token T] "
        "[--cacert FILE]\n"
        "                            [--force]\n"
        "\n"
        "Saves profile NAME with the settings given; a setting left out "
        "comes from\n"
        "the environment or the default when the profile is used. The CA "
        "file must\n"
        "exist and is kept as an absolute path. An existing profile of that "
        "name is\n"
        "refused unless --force, which replaces it whole. The profile does "
        "not\n"
        "become current: raftq profile use NAME does that.\n"
        "\n"
        "  --managers URL,...  the cluster's managers\n"
        "  --token T           bearer token: the admin token, or one from "
        "'raftq token\n"
        "                      create'\n"
        "  --cacert FILE       PEM CA to verify https:// managers against\n"
        "  --force             replace a profile of that name\n",
    [CMD_PROFILE_USE] =
        "usage: raftq profile use NAME\n"
        "\n"
        "Makes profile NAME the current one: commands take their settings "
        "from it\n"
        "when neither --profile nor RAFTQ_PROFILE names another.\n",
    [CMD_PROFILE_LIST] =
        "usage: raftq profile list [--names] [--json]\n"
        "\n"
        "Lists the profiles with their managers, the current one marked "
        "with *.\n"
        "\n"
        "  --names   the names alone, one a line (for scripts and "
        "completion)\n"
        "  --json    {\"current\": NAME or null, \"profiles\": [{\"name\", "
        "\"managers\",\n"
        "            \"token\", \"cacert\"}]}, each token masked\n",
    [CMD_PROFILE_SHOW] =
        "usage: raftq profile show [NAME] [--json]\n"
        "\n"
        "Shows profile NAME, or without NAME the one a command would use "
        "(--profile,\n"
        "RAFTQ_PROFILE, else the current one): its managers, its token "
        "masked (the\n"
        "first 4 characters and the length), its CA file, and the file it is "
        "kept in.\n",
    [CMD_PROFILE_DELETE] =
        "usage: raftq profile delete NAME\n"
        "\n"
        "Deletes profile NAME. When it was the current one, none is current "
        "after.\n",
    [CMD_COMPLETION] =
        "usage: raftq completion bash|zsh\n"
        "\n"
        "Prints a completion script for bash or zsh, made from the tables "
        "this\n"
        "raftq parses its command line with: commands, subcommands, each "
        "command's\n"
        "options, and the profile names (from 'raftq profile list --names' "
        "as you\n"
        "type) for profile use, show and delete and for --profile.\n"
        "\n"
        "  bash  source <(raftq completion bash) in ~/.bashrc, or save it as\n"
        "        ~/.local/share/bash-completion/completions/raftq\n"
        "  zsh   source <(raftq completion zsh) in ~/.zshrc after compinit, "
        "or save\n"
        "        it as _raftq in a directory of $fpath\n",
};

void cmdline_usage(enum cmd cmd, FILE *f)
{
    if (cmd == CMD_NONE || (size_t)cmd >= sizeof helps / sizeof helps[0] ||
        helps[cmd] == NULL) {
        fputs(overview, f);
        return;
    }
    fputs(helps[cmd], f);
    if ((LOCAL_CMDS & BIT(cmd)) == 0) {
        fputs(
            "\nGlobal options: --managers URL,... --json --token T "
            "--timeout S\n"
            "--cacert FILE --profile NAME (see raftq --help).\n",
            f);
    }
}

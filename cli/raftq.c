/*
 * raftq: the command-line client of a raftq cluster, and `raftq dev`, a
 * local cluster for development.
 *
 * main() parses the command line once (cmdline.h), reading the
 * environment only here, fills what the line and the environment left open
 * from a profile (profile_cmd.h), and hands over to the command: dev.h for
 * `raftq dev`, produce.h and consume.h for the data, bench.h for
 * `raftq bench`, profile_cmd.h and completion.h for `raftq profile` and
 * `raftq completion`, commands.h for the rest. Exit codes: 0 ok, 1 refused by
 * the server, 2 bad usage, 3 no manager reachable or no quorum, 130
 * interrupted.
 */
#include <curl/curl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "bench.h"
#include "cmdline.h"
#include "commands.h"
#include "completion.h"
#include "consume.h"
#include "consumers.h"
#include "group.h"
#include "dev.h"
#include "mclient.h"
#include "produce.h"
#include "profile_cmd.h"
#include "rq_err.h"
#include "rq_version.h"
#include "url.h"

#define WHY_LEN 512

static volatile sig_atomic_t stop_requested;

static void on_stop(int signum)
{
    (void)signum;
    stop_requested = 1;
}

/* SIGINT and SIGTERM end a long command (a --follow, a large produce)
 * between or during requests rather than killing the process mid-line. */
static void catch_stops(void)
{
    struct sigaction sa = {.sa_handler = on_stop};
    sigemptyset(&sa.sa_mask);
    sigaction(SIGINT, &sa, NULL);
    sigaction(SIGTERM, &sa, NULL);
    signal(SIGPIPE, SIG_IGN);
}

static int run_client(const struct cmdline *cl)
{
    char bases[URL_BASES_MAX][URL_MAX];
    char why[WHY_LEN];
    size_t n;
    struct mclient *c;

    if (url_bases_parse(cl->managers, bases, &n, why, sizeof why) != 0) {
        fprintf(stderr, "raftq: --managers: %s\nTry 'raftq --help'.\n", why);
        return CLI_USAGE;
    }
    struct mclient_config cfg = {
        .bases = (const char(*)[URL_MAX])bases,
        .n_bases = n,
        .token = cl->token,
        .cacert = cl->cacert,
        .timeout_ms = cl->timeout_ms,
        .stop = &stop_requested,
    };
    if (mclient_new(&cfg, &c) != 0) {
        fprintf(stderr, "raftq: out of memory\n"); /* UNTESTED */
        return CLI_REFUSED;
    }
    catch_stops();
    int code;
    switch (cl->cmd) {
        case CMD_PRODUCE:
            code = produce_run(cl, c, stdin, isatty(STDOUT_FILENO) == 1,
                               &stop_requested);
            break;
        case CMD_CONSUME:
            code = cl->group != NULL ? group_consume(cl, c, &stop_requested)
                                     : consume_run(cl, c);
            break;
        case CMD_GROUP_LIST:
        case CMD_GROUP_DESCRIBE:
        case CMD_GROUP_RESET:
        case CMD_GROUP_DELETE:
            code = group_run(cl, c);
            break;
        case CMD_BENCH:
            code = bench_run(cl, c, &stop_requested);
            break;
        case CMD_CONSUMER_LIST:
        case CMD_CONSUMER_DESCRIBE:
        case CMD_CONSUMER_OFFSETS:
        case CMD_CONSUMER_RESET:
            code = consumers_run(cl, c);
            break;
        default:
            code = commands_run(cl, c);
            break;
    }
    mclient_free(c);
    return code;
}

int main(int argc, char **argv)
{
    struct cmdline cl;
    char why[WHY_LEN];
    const struct cmdline_env env = {
        .managers = getenv("RAFTQ_MANAGERS"),
        .token = getenv("RAFTQ_ADMIN_TOKEN"),
        .client_token = getenv("RAFTQ_TOKEN"),
        .base_port = getenv("RAFTQ_BASE_PORT"),
        .cacert = getenv("RAFTQ_CACERT"),
        .profile = getenv("RAFTQ_PROFILE"),
    };
    const struct profile_env penv = {
        .config = getenv("RAFTQ_CONFIG"),
        .xdg_config_home = getenv("XDG_CONFIG_HOME"),
        .home = getenv("HOME"),
    };
    struct profiles *held = NULL;

    if (cmdline_parse(argc, argv, &env, &cl, why, sizeof why) != 0) {
        const char *name = cmdline_name(cl.cmd);
        fprintf(stderr, "raftq: %s\nTry 'raftq%s%s --help'.\n", why,
                name[0] != '\0' ? " " : "", name);
        return CLI_USAGE;
    }
    if (cl.help) {
        cmdline_usage(cl.cmd, stdout);
        return CLI_OK;
    }
    if (cl.version) {
        printf("raftq %s\n", rq_version());
        return CLI_OK;
    }
    int code;
    switch (cl.cmd) {
        case CMD_COMPLETION:
            code = completion_write(cl.shell, stdout) == 0 ? CLI_OK : CLI_USAGE;
            break;
        case CMD_PROFILE_CREATE:
        case CMD_PROFILE_USE:
        case CMD_PROFILE_LIST:
        case CMD_PROFILE_SHOW:
        case CMD_PROFILE_DELETE:
            code = profile_cmd_run(&cl, &penv);
            break;
        default:
            /* @cl borrows from @held until the command is done. */
            if (cl.cmd != CMD_DEV) {
                code = profile_cmd_apply(&cl, &penv, &held);
                if (code != CLI_OK) {
                    return code;
                }
            }
            if (curl_global_init(CURL_GLOBAL_DEFAULT) != 0) {
                fprintf(stderr, "raftq: libcurl cannot start\n"); /* UNTESTED */
                profile_free(held);
                return CLI_REFUSED;
            }
            code = cl.cmd == CMD_DEV ? dev_run(&cl, argv[0]) : run_client(&cl);
            curl_global_cleanup();
            profile_free(held);
            break;
    }
    fflush(stdout);
    if (ferror(stdout) && code == CLI_OK) {
        code = CLI_REFUSED; /* Output lost: a full disk, a closed pipe. */
    }
    return code;
}

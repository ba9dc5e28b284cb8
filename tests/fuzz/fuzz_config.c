/*
 * Fuzzes the start-up parsers of shared/rq_config.h: rq_parse_u64,
 * rq_addr_split and rq_listen_addr_split, rq_config_check_addr,
 * rq_peers_parse, and rq_config_parse over an argv carved from the input
 * (NUL-separated words) against a table with one option of each type (a
 * secret's file form is left out: it would read whatever path the input
 * names, /dev/stdin included; tests/unit/test_config.c covers it). The
 * first byte picks the parser. What a parser accepts is checked against
 * its contract (ranges, sizes, NUL-terminated results).
 */
#include <stdbool.h>
#include <stddef.h>

#include "fuzz.h"
#include "rq_config.h"
#include "rq_err.h"

struct fuzz_cfg {
    const char *addr;
    uint64_t count;
    bool flag;
    const char *name;
    const char *secret;
};

static const struct rq_opt opts[] = {
    {"raft-addr", NULL, RQ_OPT_STR, "127.0.0.1:1", false,
     offsetof(struct fuzz_cfg, addr), "address"},
    {"count", NULL, RQ_OPT_U64, "3", false, offsetof(struct fuzz_cfg, count),
     "a number"},
    {"flag", NULL, RQ_OPT_BOOL, "false", false, offsetof(struct fuzz_cfg, flag),
     "a switch"},
    {"name", NULL, RQ_OPT_STR, NULL, true, offsetof(struct fuzz_cfg, name),
     "required"},
    {"secret", NULL, RQ_OPT_SECRET, NULL, false,
     offsetof(struct fuzz_cfg, secret), "a secret"},
};

static void fuzz_u64_parse(const char *s, uint64_t max)
{
    uint64_t v = 12345;
    int rv = rq_parse_u64(s, max, &v);
    if (rv == 0) {
        FUZZ_CHECK(v <= max);
        FUZZ_CHECK(s[0] >= '0' && s[0] <= '9');
        char back[32];
        snprintf(back, sizeof back, "%llu", (unsigned long long)v);
        /* Leading zeros are the only other spelling of the same value. */
        const char *digits = s;
        while (digits[0] == '0' && digits[1] != '\0') {
            digits++;
        }
        FUZZ_CHECK(strcmp(back, digits) == 0);
    } else {
        FUZZ_CHECK(rv == RQ_INVALID);
    }
}

static void fuzz_addr(const char *s)
{
    char host[RQ_ADDR_MAX];
    char why[128];
    uint16_t port;

    if (rq_addr_split(s, host, sizeof host, &port, why, sizeof why) == 0) {
        FUZZ_CHECK(port != 0);
        FUZZ_CHECK(strlen(host) < sizeof host);
    }
    if (rq_listen_addr_split(s, host, sizeof host, &port, why, sizeof why) ==
        0) {
        FUZZ_CHECK(strlen(host) < sizeof host);
    }
    /* A tiny host buffer must be refused, never overrun. */
    char small[4];
    (void)rq_addr_split(s, small, sizeof small, &port, why, sizeof why);
    int rv =
        rq_config_check_addr("raft-addr", s, RQ_ADDR_MAX - 1, why, sizeof why);
    FUZZ_CHECK(rv == 0 || rv == RQ_INVALID);
}

static void fuzz_peers(const char *s, size_t max)
{
    struct rq_peer peers[RQ_PEERS_MAX];
    size_t n = 99;
    char why[128];

    if (rq_peers_parse(s, peers, max, &n, why, sizeof why) != 0) {
        return;
    }
    FUZZ_CHECK(n <= max);
    for (size_t i = 0; i < n; i++) {
        FUZZ_CHECK(peers[i].id >= 1);
        FUZZ_CHECK(strlen(peers[i].address) < RQ_ADDR_MAX);
        for (size_t j = 0; j < i; j++) {
            FUZZ_CHECK(peers[i].id != peers[j].id);
            FUZZ_CHECK(strcmp(peers[i].address, peers[j].address) != 0);
        }
    }
}

static void fuzz_options(struct fuzz_in *in)
{
    char *words[16];
    char *argv[17];
    int argc = 0;
    struct fuzz_cfg cfg;
    bool help = false;
    char why[256];

    argv[argc++] = "fuzz";
    while (in->left > 0 && argc < 16) {
        words[argc - 1] = fuzz_str(in);
        argv[argc] = words[argc - 1];
        argc++;
    }
    argv[argc] = NULL;
    bool reads_file = false;
    for (int i = 1; i < argc; i++) {
        reads_file |= strncmp(argv[i], "--secret-file", 13) == 0;
    }
    memset(&cfg, 0, sizeof cfg);
    int rv = reads_file
                 ? 0
                 : rq_config_parse(opts, sizeof opts / sizeof opts[0], &cfg,
                                   argc, argv, &help, why, sizeof why);
    if (reads_file) {
        /* Not parsed: see the top of the file. */
    } else if (rv == 0 && !help) {
        FUZZ_CHECK(cfg.addr != NULL && cfg.name != NULL);
    } else if (rv != 0) {
        FUZZ_CHECK(rv == RQ_INVALID && why[0] != '\0');
    }
    rq_config_free(opts, sizeof opts / sizeof opts[0], &cfg);
    FUZZ_CHECK(cfg.secret == NULL);
    for (int i = 1; i < argc; i++) {
        free(words[i - 1]);
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    struct fuzz_in in = {data, size};
    uint8_t pick = fuzz_u8(&in);
    char *s;

    switch (pick % 4) {
        case 0:
            s = fuzz_text(in.p, in.left);
            fuzz_u64_parse(s, UINT64_MAX);
            fuzz_u64_parse(s, (uint64_t)1 << 53);
            fuzz_u64_parse(s, pick);
            free(s);
            break;
        case 1:
            s = fuzz_text(in.p, in.left);
            fuzz_addr(s);
            free(s);
            break;
        case 2:
            s = fuzz_text(in.p, in.left);
            fuzz_peers(s, RQ_PEERS_MAX);
            fuzz_peers(s, pick % RQ_PEERS_MAX);
            free(s);
            break;
        default:
            fuzz_options(&in);
            break;
    }
    return 0;
}

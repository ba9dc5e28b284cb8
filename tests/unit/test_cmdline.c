/*
 * Unit tests of the raftq command line: commands and their arguments,
 * options anywhere on the line, the environment as fallback, and the
 * usage errors (exit code 2) with a message naming what is wrong.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "cli/cmdline.h"
#include "tests/unit/cmdline_words.h"
#include "rq_err.h"

static void test_cmdline_commands_and_arguments(void **state)
{
    (void)state;
    struct cmdline cl;
    char why[256];

    assert_int_equal(
        parse("topic create orders --partitions 6", NULL, &cl, why, sizeof why),
        0);
    assert_int_equal(cl.cmd, CMD_TOPIC_CREATE);
    assert_string_equal(cl.topic, "orders");
    assert_true(cl.has_partitions);
    assert_int_equal(cl.partitions, 6);
    assert_string_equal(cmdline_name(cl.cmd), "topic create");

    assert_int_equal(parse("topic list", NULL, &cl, why, sizeof why), 0);
    assert_int_equal(cl.cmd, CMD_TOPIC_LIST);
    assert_int_equal(parse("topic describe t", NULL, &cl, why, sizeof why), 0);
    assert_int_equal(cl.cmd, CMD_TOPIC_DESCRIBE);
    assert_int_equal(parse("topic delete t", NULL, &cl, why, sizeof why), 0);
    assert_int_equal(cl.cmd, CMD_TOPIC_DELETE);
    assert_int_equal(parse("cluster status", NULL, &cl, why, sizeof why), 0);
    assert_int_equal(cl.cmd, CMD_CLUSTER_STATUS);
    assert_int_equal(parse("broker list", NULL, &cl, why, sizeof why), 0);
    assert_int_equal(cl.cmd, CMD_BROKER_LIST);
    assert_int_equal(parse("broker drain 4", NULL, &cl, why, sizeof why), 0);
    assert_int_equal(cl.cmd, CMD_BROKER_DRAIN);
    assert_int_equal(cl.broker_id, 4);
    assert_int_equal(parse("broker remove 5", NULL, &cl, why, sizeof why), 0);
    assert_int_equal(cl.cmd, CMD_BROKER_REMOVE);
    assert_int_equal(cl.broker_id, 5);
    assert_int_equal(cl.wait_ms, 0);
    assert_int_equal(
        parse("broker remove 5 --wait 540", NULL, &cl, why, sizeof why), 0);
    assert_int_equal(cl.wait_ms, 540000);
    assert_int_equal(
        parse("broker drain 4 --wait 1", NULL, &cl, why, sizeof why), 0);
    assert_int_equal(cl.wait_ms, 1000);

    assert_int_equal(
        parse("partition move-leader orders 2 3", NULL, &cl, why, sizeof why),
        0);
    assert_int_equal(cl.cmd, CMD_PARTITION_MOVE_LEADER);
    assert_string_equal(cl.topic, "orders");
    assert_int_equal(cl.partition, 2);
    assert_int_equal(cl.broker_id, 3);

    /* Produce: values after the topic, options between them. */
    assert_int_equal(parse("produce orders a --key k b --partition 1 c", NULL,
                           &cl, why, sizeof why),
                     0);
    assert_int_equal(cl.cmd, CMD_PRODUCE);
    assert_string_equal(cl.topic, "orders");
    assert_int_equal(cl.n_values, 3);
    assert_string_equal(cl.values[0], "a");
    assert_string_equal(cl.values[1], "b");
    assert_string_equal(cl.values[2], "c");
    assert_string_equal(cl.key, "k");
    assert_true(cl.has_partition);
    assert_int_equal(cl.partition, 1);
    assert_int_equal(cl.batch, CMDLINE_DEFAULT_BATCH);

    /* No values: standard input. "--" makes "--x" and "-5" values. */
    assert_int_equal(parse("produce orders", NULL, &cl, why, sizeof why), 0);
    assert_int_equal(cl.n_values, 0);
    assert_int_equal(
        parse("produce orders -5 -- --x --json", NULL, &cl, why, sizeof why),
        0);
    assert_int_equal(cl.n_values, 3);
    assert_string_equal(cl.values[0], "-5");
    assert_string_equal(cl.values[1], "--x");
    assert_string_equal(cl.values[2], "--json");
    assert_false(cl.json);

    assert_int_equal(parse("consume orders --consumer 7 --max 10 --follow",
                           NULL, &cl, why, sizeof why),
                     0);
    assert_int_equal(cl.cmd, CMD_CONSUME);
    assert_true(cl.has_consumer);
    assert_int_equal(cl.consumer, 7);
    assert_true(cl.has_max);
    assert_int_equal(cl.max, 10);
    assert_true(cl.follow);
    assert_false(cl.has_offset);

    assert_int_equal(parse("token create billing --grant produce:orders.* "
                           "--grant=consume:orders.*",
                           NULL, &cl, why, sizeof why),
                     0);
    assert_int_equal(cl.cmd, CMD_TOKEN_CREATE);
    assert_string_equal(cl.token_name, "billing");
    assert_int_equal(cl.n_grants, 2);
    assert_string_equal(cl.grants[0], "produce:orders.*");
    assert_string_equal(cl.grants[1], "consume:orders.*");
    assert_int_equal(parse("token list", NULL, &cl, why, sizeof why), 0);
    assert_int_equal(cl.cmd, CMD_TOKEN_LIST);
    assert_int_equal(parse("token revoke 12", NULL, &cl, why, sizeof why), 0);
    assert_int_equal(cl.cmd, CMD_TOKEN_REVOKE);
    assert_true(cl.token_id == 12);

    assert_int_equal(parse("consume orders --offset=0 --partition=2", NULL, &cl,
                           why, sizeof why),
                     0);
    assert_true(cl.has_offset);
    assert_int_equal(cl.offset, 0);
    assert_int_equal(cl.partition, 2);
}

static void test_cmdline_groups(void **state)
{
    (void)state;
    struct cmdline cl;
    char why[256];

    assert_int_equal(parse("consume jobs --group workers --follow --max 5",
                           NULL, &cl, why, sizeof why),
                     0);
    assert_int_equal(cl.cmd, CMD_CONSUME);
    assert_string_equal(cl.topic, "jobs");
    assert_string_equal(cl.group, "workers");
    assert_true(cl.follow && cl.has_max && cl.max == 5);
    assert_int_equal(parse("group list", NULL, &cl, why, sizeof why), 0);
    assert_int_equal(cl.cmd, CMD_GROUP_LIST);
    assert_null(cl.group);
    assert_int_equal(
        parse("group describe workers", NULL, &cl, why, sizeof why), 0);
    assert_int_equal(cl.cmd, CMD_GROUP_DESCRIBE);
    assert_string_equal(cl.group, "workers");
    assert_int_equal(parse("group reset-offsets workers --to 0=5,3=7", NULL,
                           &cl, why, sizeof why),
                     0);
    assert_int_equal(cl.cmd, CMD_GROUP_RESET);
    assert_string_equal(cl.reset_to, "0=5,3=7");
    assert_string_equal(cmdline_name(cl.cmd), "group reset-offsets");
    assert_int_equal(
        parse("--json group delete workers", NULL, &cl, why, sizeof why), 0);
    assert_int_equal(cl.cmd, CMD_GROUP_DELETE);
    assert_true(cl.json);
}

static void test_cmdline_bench_cases_and_options(void **state)
{
    (void)state;
    struct cmdline cl;
    char why[256];

    /* No case: every case, with each case's own settings. */
    assert_int_equal(parse("bench", NULL, &cl, why, sizeof why), 0);
    assert_int_equal(cl.cmd, CMD_BENCH);
    assert_int_equal(cl.n_values, 0);
    assert_int_equal(cl.seconds_ms, CMDLINE_DEFAULT_SECONDS_MS);
    assert_int_equal(cl.in_flight, 0);
    assert_int_equal(cl.size, 0);
    assert_false(cl.has_batch);
    assert_false(cl.has_partitions);
    assert_null(cl.topic);
    assert_non_null(cl.managers);

    /* Cases in the order given (bench.c knows which exist), and every
     * option, global ones included. */
    assert_int_equal(parse("bench consume_8 --seconds 3 --in-flight 16 "
                           "produce_1k_many --size 512 --batch 100 "
                           "--partitions 4 --topic t1 --json --token s",
                           NULL, &cl, why, sizeof why),
                     0);
    assert_int_equal(cl.n_values, 2);
    assert_string_equal(cl.values[0], "consume_8");
    assert_string_equal(cl.values[1], "produce_1k_many");
    assert_int_equal(cl.seconds_ms, 3000);
    assert_int_equal(cl.in_flight, 16);
    assert_int_equal(cl.size, 512);
    assert_true(cl.has_batch);
    assert_int_equal(cl.batch, 100);
    assert_true(cl.has_partitions);
    assert_int_equal(cl.partitions, 4);
    assert_string_equal(cl.topic, "t1");
    assert_true(cl.json);
    assert_string_equal(cl.token, "s");

    /* Seconds may have decimals ("10.0" as a script writes a float). */
    static const struct {
        const char *arg;
        uint64_t ms;
    } secs[] = {{"10.0", 10000},   {"0.25", 250}, {"1.5", 1500},
                {"3600", 3600000}, {"0.1", 100},  {"2.125", 2125}};
    for (size_t i = 0; i < sizeof secs / sizeof secs[0]; i++) {
        char line[64];
        snprintf(line, sizeof line, "bench --seconds %s", secs[i].arg);
        assert_int_equal(parse(line, NULL, &cl, why, sizeof why), 0);
        assert_int_equal(cl.seconds_ms, secs[i].ms);
    }
}

static void test_cmdline_global_options_anywhere(void **state)
{
    (void)state;
    struct cmdline cl;
    char why[256];

    assert_int_equal(parse("--json topic list --managers a:1,b:2 --token s "
                           "--timeout 3",
                           NULL, &cl, why, sizeof why),
                     0);
    assert_int_equal(cl.cmd, CMD_TOPIC_LIST);
    assert_true(cl.json);
    assert_string_equal(cl.managers, "a:1,b:2");
    assert_string_equal(cl.token, "s");
    assert_int_equal(cl.timeout_ms, 3000);

    /* Defaults. */
    assert_int_equal(parse("topic list", NULL, &cl, why, sizeof why), 0);
    assert_false(cl.json);
    assert_null(cl.token);
    assert_int_equal(cl.timeout_ms, CMDLINE_DEFAULT_TIMEOUT_MS);
    assert_non_null(strstr(cl.managers, "127.0.0.1:9500"));
}

static void test_cmdline_environment_fills_what_flags_leave(void **state)
{
    (void)state;
    struct cmdline cl;
    char why[256];
    struct cmdline_env env = {
        .managers = "m:1", .token = "envtok", .base_port = "20000"};

    assert_int_equal(parse("broker list", &env, &cl, why, sizeof why), 0);
    assert_string_equal(cl.managers, "m:1");
    assert_string_equal(cl.token, "envtok");

    /* The flag wins over the environment. */
    assert_int_equal(parse("broker list --managers f:2 --token t", &env, &cl,
                           why, sizeof why),
                     0);
    assert_string_equal(cl.managers, "f:2");
    assert_string_equal(cl.token, "t");

    /* Empty variables count as unset. */
    struct cmdline_env empty = {.managers = "", .token = ""};
    assert_int_equal(parse("broker list", &empty, &cl, why, sizeof why), 0);
    assert_non_null(strstr(cl.managers, "9500"));
    assert_null(cl.token);

    /* dev: RAFTQ_BASE_PORT; --managers is a count there. */
    assert_int_equal(parse("dev", &env, &cl, why, sizeof why), 0);
    assert_int_equal(cl.cmd, CMD_DEV);
    assert_true(cl.has_base_port);
    assert_int_equal(cl.base_port, 20000);
    assert_false(cl.has_dev_managers);
    assert_int_equal(cl.dev_managers, 3);
    assert_int_equal(cl.dev_brokers, 3);
    assert_string_equal(cl.data, CMDLINE_DEFAULT_DATA);
    assert_int_equal(parse("dev --managers 5 --brokers 4 --data /tmp/x "
                           "--base-port 21000",
                           &env, &cl, why, sizeof why),
                     0);
    assert_true(cl.has_dev_managers);
    assert_int_equal(cl.dev_managers, 5);
    assert_true(cl.has_dev_brokers);
    assert_int_equal(cl.dev_brokers, 4);
    assert_string_equal(cl.data, "/tmp/x");
    assert_int_equal(cl.base_port, 21000);
    assert_string_equal(cl.token, "envtok");

    /* RAFTQ_TOKEN wins over RAFTQ_ADMIN_TOKEN; the flag over both. */
    struct cmdline_env both = {.token = "admintok", .client_token = "usertok"};
    assert_int_equal(parse("topic list", &both, &cl, why, sizeof why), 0);
    assert_string_equal(cl.token, "usertok");
    assert_int_equal(parse("topic list --token f", &both, &cl, why, sizeof why),
                     0);
    assert_string_equal(cl.token, "f");

    struct cmdline_env bad = {.base_port = "seventy"};
    assert_int_equal(parse("dev", &bad, &cl, why, sizeof why), RQ_INVALID);
    assert_non_null(strstr(why, "RAFTQ_BASE_PORT"));
}

/* Each line is a usage error whose message contains the given words. */
static void test_cmdline_usage_errors_say_why(void **state)
{
    (void)state;
    static const struct {
        const char *line;
        const char *says;
    } cases[] = {
        {"", "no command"},
        {"frobnicate", "unknown command 'frobnicate'"},
        {"topic", "'topic' needs a command"},
        {"topic rename a b", "unknown topic command 'rename'"},
        {"topic create", "one topic name"},
        {"topic create a b", "one topic name"},
        {"topic list extra", "takes no arguments"},
        {"topic create t --partitions many", "--partitions"},
        {"topic create t --partitions", "--partitions needs a value"},
        {"topic list --follow", "--follow does not apply to 'topic list'"},
        {"topic list --bogus", "unknown option --bogus"},
        {"topic list --json=yes", "--json takes no value"},
        {"produce", "needs a topic"},
        {"consume t --offset 3", "--offset needs --partition"},
        {"consume t --consumer 1 --offset 3 --partition 0",
         "exclude each other"},
        {"consume t --consumer 0", "--consumer"},
        {"consume t --max 0", "--max"},
        {"consume t --group g --consumer 1", "--group excludes"},
        {"consume t --group g --partition 1", "--group excludes"},
        {"consume t --group", "--group needs a value"},
        {"group describe", "one group name"},
        {"group list g", "takes no arguments"},
        {"group reset-offsets g", "needs --to"},
        {"group delete g --to earliest", "--to does not apply"},
        {"topic list --group g", "--group does not apply"},
        {"topic list --format json", "--format does not apply"},
        {"consume t --format %q", "'%q' is not one of"},
        {"consume t --format json --json", "--json and --format exclude"},
        {"produce t --batch 10001", "--batch"},
        {"broker drain x", "broker id"},
        {"broker drain 0", "broker id"},
        {"broker remove 4 --wait 0", "--wait is whole seconds"},
        {"broker remove 4 --wait 1.5", "--wait is whole seconds"},
        {"broker list --wait 5", "--wait does not apply"},
        {"partition move-leader t 1", "TOPIC PARTITION BROKER"},
        {"token create billing", "at least one --grant"},
        {"token create --grant admin", "one name"},
        {"token create a b --grant admin", "one name"},
        {"token revoke abc", "token id"},
        {"token revoke 0", "token id"},
        {"token list x", "takes no arguments"},
        {"token create a --grant", "--grant needs a value"},
        {"topic list --grant admin", "--grant does not apply"},
        {"partition move-leader t p 1", "partition must be an integer"},
        {"dev --managers 4", "3 or"},
        {"dev --managers http://a:1", "3 or"},
        {"dev --brokers 2", "--brokers"},
        {"dev --json", "--json does not apply to 'dev'"},
        {"dev --base-port 70000", "--base-port"},
        {"--timeout 0 topic list", "--timeout"},
        {"broker list --managers=", "--managers needs"},
        {"bench --seconds 0", "--seconds"},
        {"bench --seconds 0.05", "--seconds"},
        {"bench --seconds 1.2345", "--seconds"},
        {"bench --seconds 1.", "--seconds"},
        {"bench --seconds .5", "--seconds"},
        {"bench --seconds 1.x", "--seconds"},
        {"bench --seconds 3600.001", "--seconds"},
        {"bench --seconds -1", "--seconds"},
        {"bench --seconds 1e3", "--seconds"},
        {"bench --in-flight 0", "--in-flight"},
        {"bench --in-flight 1025", "--in-flight"},
        {"bench --size 0", "--size"},
        {"bench --size 1048577", "--size"},
        {"bench --partitions 0", "'bench --partitions' is 1 to"},
        {"bench --topic=", "--topic needs"},
        {"topic list --seconds 3", "--seconds does not apply"},
        {"produce t --size 3", "--size does not apply"},
    };
    struct cmdline cl;
    char why[256];
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        why[0] = '\0';
        int rv = parse(cases[i].line, NULL, &cl, why, sizeof why);
        if (rv != RQ_INVALID || strstr(why, cases[i].says) == NULL) {
            fail_msg("'%s': got %d '%s', expected an error saying '%s'",
                     cases[i].line, rv, why, cases[i].says);
        }
    }
}

static void test_cmdline_consume_format(void **state)
{
    (void)state;
    struct cmdline cl;
    char why[256];
    assert_int_equal(parse("consume t", NULL, &cl, why, sizeof why), 0);
    assert_null(cl.format);
    assert_int_equal(
        parse("consume t --format json --group g", NULL, &cl, why, sizeof why),
        0);
    assert_string_equal(cl.format, "json");
    assert_int_equal(parse("consume t --offset 0 --partition 1 --format=%o:%v",
                           NULL, &cl, why, sizeof why),
                     0);
    assert_string_equal(cl.format, "%o:%v");
}

/* Positions: names, times in three forms, offsets only where asked. */
static void test_cmdline_position(void **state)
{
    (void)state;
    const int64_t now = 1796700000000; /* 2026-12-08T03:20:00Z */
    struct cmdline_pos p;
    assert_int_equal(cmdline_position("earliest", false, now, &p), 0);
    assert_int_equal(p.kind, CMDLINE_POS_EARLIEST);
    assert_int_equal(cmdline_position("latest", true, now, &p), 0);
    assert_int_equal(p.kind, CMDLINE_POS_LATEST);
    assert_int_equal(cmdline_position("1796690000123", false, now, &p), 0);
    assert_int_equal(p.kind, CMDLINE_POS_TIME);
    assert_int_equal(p.time_ms, 1796690000123);
    assert_int_equal(cmdline_position("42", true, now, &p), 0);
    assert_int_equal(p.kind, CMDLINE_POS_OFFSET);
    assert_int_equal(p.offset, 42);
    assert_int_equal(cmdline_position("@42", true, now, &p), 0);
    assert_int_equal(p.kind, CMDLINE_POS_TIME);
    assert_int_equal(p.time_ms, 42);
    assert_int_equal(cmdline_position("2026-12-08T03:20:00Z", true, now, &p),
                     0);
    assert_int_equal(p.time_ms, now);
    assert_int_equal(cmdline_position("2026-12-08T03:20:00.5Z", false, now, &p),
                     0);
    assert_int_equal(p.time_ms, now + 500);
    assert_int_equal(
        cmdline_position("2026-12-08T03:20:00.123Z", false, now, &p), 0);
    assert_int_equal(p.time_ms, now + 123);
    static const struct {
        const char *s;
        int64_t ago_ms;
    } ago[] = {
        {"-30s", 30000}, {"-15m", 900000}, {"-2h", 7200000}, {"-1d", 86400000}};
    for (size_t i = 0; i < sizeof ago / sizeof ago[0]; i++) {
        assert_int_equal(cmdline_position(ago[i].s, false, now, &p), 0);
        assert_int_equal(p.kind, CMDLINE_POS_TIME);
        assert_int_equal(p.time_ms, now - ago[i].ago_ms);
    }
    static const char *const bad[] = {"",
                                      "soon",
                                      "-",
                                      "-5",
                                      "-5x",
                                      "-s",
                                      "@",
                                      "@x",
                                      "2026-12-08T03:20:00",
                                      "2026-12-08T03:20:00+01:00",
                                      "2026-12-08T03:20:00.Z",
                                      "12a",
                                      "-99999999999999d",
                                      "-1.5h",
                                      "Earliest"};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        if (cmdline_position(bad[i], true, now, &p) == 0) {
            fail_msg("'%s' was taken as a position", bad[i]);
        }
    }
}

static void test_cmdline_version(void **state)
{
    (void)state;
    struct cmdline cl;
    char why[256];
    /* Alone, or with a command (its arguments then go unchecked). */
    static const char *const lines[] = {"--version", "topic list --version",
                                        "consume --version", "--version x"};
    for (size_t i = 0; i < sizeof lines / sizeof lines[0]; i++) {
        int rv = parse(lines[i], NULL, &cl, why, sizeof why);
        if (rv != 0 || !cl.version || cl.help) {
            fail_msg("'%s': got %d '%s', version %d", lines[i], rv, why,
                     cl.version);
        }
    }
    /* Help wins; an unknown option is still refused. */
    assert_int_equal(parse("--version --help", NULL, &cl, why, sizeof why), 0);
    assert_true(cl.help);
    assert_int_equal(parse("--version --bogus", NULL, &cl, why, sizeof why),
                     RQ_INVALID);
    assert_non_null(strstr(why, "--bogus"));
    assert_int_equal(parse("--version=1", NULL, &cl, why, sizeof why),
                     RQ_INVALID);
    assert_int_equal(parse("topic list", NULL, &cl, why, sizeof why), 0);
    assert_false(cl.version);
}

static void test_cmdline_help_on_every_command(void **state)
{
    (void)state;
    static const char *const lines[] = {
        "--help",
        "-h",
        "help",
        "dev --help",
        "topic --help",
        "topic create --help",
        "topic list -h",
        "topic describe --help",
        "topic delete --help",
        "produce --help",
        "consume --help",
        "cluster --help",
        "cluster status --help",
        "broker --help",
        "broker list --help",
        "broker drain --help",
        "broker remove --help",
        "partition --help",
        "partition move-leader --help",
        "token --help",
        "token create --help",
        "token list --help",
        "token revoke --help",
        "bench --help",
        "group --help",
        "group list --help",
        "group describe --help",
        "group reset-offsets --help",
        "group delete --help",
        "help topic create",
        /* Help wins over arguments that would be wrong. */
        "consume --offset 3 --help",
    };
    struct cmdline cl;
    char why[256];
    for (size_t i = 0; i < sizeof lines / sizeof lines[0]; i++) {
        int rv = parse(lines[i], NULL, &cl, why, sizeof why);
        if (rv != 0 || !cl.help) {
            fail_msg("'%s': got %d '%s', help %d", lines[i], rv, why, cl.help);
        }
        /* Every command's help names its usage. */
        char *text = NULL;
        size_t len = 0;
        FILE *f = open_memstream(&text, &len);
        cmdline_usage(cl.cmd, f);
        fclose(f);
        assert_non_null(strstr(text, "usage: raftq"));
        if (cl.cmd != CMD_NONE) {
            char want[64];
            snprintf(want, sizeof want, "raftq %s", cmdline_name(cl.cmd));
            if (strstr(text, want) == NULL) {
                fail_msg("help of '%s' does not name '%s'", lines[i], want);
            }
        }
        free(text);
    }
    assert_int_equal(parse("help topic create", NULL, &cl, why, sizeof why), 0);
    assert_int_equal(cl.cmd, CMD_TOPIC_CREATE);
    assert_int_equal(parse("broker --help", NULL, &cl, why, sizeof why), 0);
    assert_int_equal(cl.cmd, CMD_BROKER);
}

static void test_cmdline_u64_is_strict(void **state)
{
    (void)state;
    uint64_t v = 42;
    assert_int_equal(cmdline_u64("0", 0, 10, &v), 0);
    assert_int_equal(v, 0);
    assert_int_equal(cmdline_u64("18446744073709551615", 0, UINT64_MAX, &v), 0);
    assert_true(v == UINT64_MAX);
    assert_int_equal(cmdline_u64("18446744073709551616", 0, UINT64_MAX, &v),
                     RQ_INVALID);
    assert_int_equal(cmdline_u64("", 0, 10, &v), RQ_INVALID);
    assert_int_equal(cmdline_u64("-1", 0, 10, &v), RQ_INVALID);
    assert_int_equal(cmdline_u64("+1", 0, 10, &v), RQ_INVALID);
    assert_int_equal(cmdline_u64(" 1", 0, 10, &v), RQ_INVALID);
    assert_int_equal(cmdline_u64("1x", 0, 10, &v), RQ_INVALID);
    assert_int_equal(cmdline_u64("11", 0, 10, &v), RQ_INVALID);
    assert_int_equal(cmdline_u64("2", 3, 10, &v), RQ_INVALID);
    assert_int_equal(cmdline_u64(NULL, 0, 10, &v), RQ_INVALID);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_cmdline_commands_and_arguments),
        cmocka_unit_test(test_cmdline_bench_cases_and_options),
        cmocka_unit_test(test_cmdline_groups),
        cmocka_unit_test(test_cmdline_global_options_anywhere),
        cmocka_unit_test(test_cmdline_environment_fills_what_flags_leave),
        cmocka_unit_test(test_cmdline_usage_errors_say_why),
        cmocka_unit_test(test_cmdline_consume_format),
        cmocka_unit_test(test_cmdline_version),
        cmocka_unit_test(test_cmdline_position),
        cmocka_unit_test(test_cmdline_help_on_every_command),
        cmocka_unit_test(test_cmdline_u64_is_strict),
    };
    return cmocka_run_group_tests_name("cmdline", tests, NULL, NULL);
}

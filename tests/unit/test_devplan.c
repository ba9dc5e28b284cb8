/*
 * Unit tests of the raftq dev layout: ports from the base port, paths
 * under the data directory, the command line of each child, and the
 * recorded layout that a later run must keep.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include <cmocka.h>

#include "cli/devplan.h"
#include "rq_err.h"

static void plan_init(struct devplan *p)
{
    memset(p, 0, sizeof *p);
    snprintf(p->data, sizeof p->data, "./data/");
    snprintf(p->bin_dir, sizeof p->bin_dir, "/opt/raftq/build");
}

static void test_devplan_ports_and_paths(void **state)
{
    (void)state;
    struct devplan p;
    struct devplan_request req = {.base_port = 9500};
    char s[DEVPLAN_PATH_MAX];

    plan_init(&p);
    assert_int_equal(devplan_merge(&p, &req, NULL, s, sizeof s), 0);
    assert_int_equal(p.managers, 3);
    assert_int_equal(p.brokers, 3);
    assert_int_equal(devplan_http_port(&p, DEVPLAN_MANAGER, 1), 9500);
    assert_int_equal(devplan_http_port(&p, DEVPLAN_MANAGER, 3), 9502);
    assert_int_equal(devplan_raft_port(&p, DEVPLAN_MANAGER, 1), 9510);
    assert_int_equal(devplan_http_port(&p, DEVPLAN_BROKER, 1), 9520);
    assert_int_equal(devplan_raft_port(&p, DEVPLAN_BROKER, 2), 9541);
    /* The last port of the largest cluster is within the span. */
    assert_int_equal(devplan_raft_port(&p, DEVPLAN_BROKER, DEVPLAN_MAX_BROKERS),
                     9500 + DEVPLAN_PORT_SPAN - 1);

    devplan_root(&p, s, sizeof s);
    assert_string_equal(s, "./data/dev");
    devplan_dir(&p, DEVPLAN_BROKER, 2, s, sizeof s);
    assert_string_equal(s, "./data/dev/broker-2");
    devplan_log(&p, DEVPLAN_MANAGER, 1, s, sizeof s);
    assert_string_equal(s, "./data/dev/manager-1.log");
    devplan_manager_url(&p, 2, s, sizeof s);
    assert_string_equal(s, "http://127.0.0.1:9501");
}

static void assert_argv(const struct devplan_argv *a, const char *const *want)
{
    int n = 0;
    while (want[n] != NULL) {
        n++;
    }
    assert_int_equal(a->argc, n);
    for (int i = 0; i < n; i++) {
        assert_string_equal(a->argv[i], want[i]);
    }
    assert_null(a->argv[n]);
}

static void test_devplan_child_command_lines(void **state)
{
    (void)state;
    struct devplan p;
    struct devplan_request req = {.base_port = 20000};
    struct devplan_argv a;
    char why[256];

    plan_init(&p);
    assert_int_equal(devplan_merge(&p, &req, NULL, why, sizeof why), 0);
    assert_int_equal(devplan_argv(&p, DEVPLAN_MANAGER, 2, &a), 0);
    static const char *const manager[] = {
        "/opt/raftq/build/manager",
        "--id",
        "2",
        "--http-addr",
        "127.0.0.1:20001",
        "--peers",
        "1=127.0.0.1:20010,2=127.0.0.1:20011,3=127.0.0.1:20012",
        "--data",
        "./data/dev/manager-2",
        "--admin-open",
        NULL};
    assert_argv(&a, manager);

    assert_int_equal(devplan_argv(&p, DEVPLAN_BROKER, 3, &a), 0);
    static const char *const broker[] = {
        "/opt/raftq/build/broker",
        "--id",
        "3",
        "--raft-addr",
        "127.0.0.1:20042",
        "--http-addr",
        "127.0.0.1:20022",
        "--data",
        "./data/dev/broker-3",
        "--managers",
        "http://127.0.0.1:20000,http://127.0.0.1:20001,http://127.0.0.1:20002",
        NULL};
    assert_argv(&a, broker);

    /* An admin token goes to the managers only. */
    p.token = "s3cret";
    assert_int_equal(devplan_argv(&p, DEVPLAN_MANAGER, 1, &a), 0);
    assert_string_equal(a.argv[a.argc - 2], "--admin-token");
    assert_string_equal(a.argv[a.argc - 1], "s3cret");
    assert_int_equal(devplan_argv(&p, DEVPLAN_BROKER, 1, &a), 0);
    for (int i = 0; i < a.argc; i++) {
        assert_string_not_equal(a.argv[i], "--admin-token");
    }

    /* Five managers: five peers. */
    struct devplan_request five = {
        .managers = 5, .has_managers = true, .base_port = 20000};
    assert_int_equal(devplan_merge(&p, &five, NULL, why, sizeof why), 0);
    assert_int_equal(devplan_argv(&p, DEVPLAN_BROKER, 1, &a), 0);
    assert_string_equal(a.argv[a.argc - 1],
                        "http://127.0.0.1:20000,http://127.0.0.1:20001,"
                        "http://127.0.0.1:20002,http://127.0.0.1:20003,"
                        "http://127.0.0.1:20004");
}

static void test_devplan_recorded_layout_is_kept(void **state)
{
    (void)state;
    struct devplan p, q;
    char why[256];
    struct devplan_request first = {.managers = 5,
                                    .has_managers = true,
                                    .brokers = 4,
                                    .has_brokers = true,
                                    .base_port = 21000,
                                    .has_base_port = true};

    plan_init(&p);
    assert_int_equal(devplan_merge(&p, &first, NULL, why, sizeof why), 0);
    json_t *rec = devplan_record(&p);
    assert_non_null(rec);

    /* A later run without options resumes the recorded layout. */
    struct devplan_request none = {.base_port = 9500};
    plan_init(&q);
    assert_int_equal(devplan_merge(&q, &none, rec, why, sizeof why), 0);
    assert_int_equal(q.managers, 5);
    assert_int_equal(q.brokers, 4);
    assert_int_equal(q.base_port, 21000);

    /* Brokers may be added. */
    struct devplan_request more = {
        .brokers = 6, .has_brokers = true, .base_port = 9500};
    assert_int_equal(devplan_merge(&q, &more, rec, why, sizeof why), 0);
    assert_int_equal(q.brokers, 6);

    /* Managers and ports may not change. */
    struct devplan_request three = {
        .managers = 3, .has_managers = true, .base_port = 9500};
    assert_int_equal(devplan_merge(&q, &three, rec, why, sizeof why),
                     RQ_INVALID);
    assert_non_null(strstr(why, "5 managers"));
    struct devplan_request moved = {.base_port = 22000, .has_base_port = true};
    assert_int_equal(devplan_merge(&q, &moved, rec, why, sizeof why),
                     RQ_INVALID);
    assert_non_null(strstr(why, "--base-port 21000"));
    json_decref(rec);

    /* A record that is not a layout is refused, not guessed at. */
    rec = json_pack("{s:i,s:s}", "managers", 3, "brokers", "many");
    assert_int_equal(devplan_merge(&q, &none, rec, why, sizeof why),
                     RQ_INVALID);
    assert_non_null(strstr(why, "recorded layout"));
    json_decref(rec);
}

static void test_devplan_limits(void **state)
{
    (void)state;
    struct devplan p;
    char why[256];
    plan_init(&p);

    struct devplan_request low = {.base_port = 80, .has_base_port = true};
    assert_int_equal(devplan_merge(&p, &low, NULL, why, sizeof why),
                     RQ_INVALID);
    assert_non_null(strstr(why, "base port"));
    struct devplan_request high = {.base_port = 65535 - DEVPLAN_PORT_SPAN + 2,
                                   .has_base_port = true};
    assert_int_equal(devplan_merge(&p, &high, NULL, why, sizeof why),
                     RQ_INVALID);
    struct devplan_request top = {.base_port = 65535 - DEVPLAN_PORT_SPAN + 1,
                                  .has_base_port = true};
    assert_int_equal(devplan_merge(&p, &top, NULL, why, sizeof why), 0);
    struct devplan_request four = {
        .managers = 4, .has_managers = true, .base_port = 9500};
    assert_int_equal(devplan_merge(&p, &four, NULL, why, sizeof why),
                     RQ_INVALID);
    assert_non_null(strstr(why, "3 or 5"));
    struct devplan_request brokers = {.brokers = DEVPLAN_MAX_BROKERS + 1,
                                      .has_brokers = true,
                                      .base_port = 9500};
    assert_int_equal(devplan_merge(&p, &brokers, NULL, why, sizeof why),
                     RQ_INVALID);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_devplan_ports_and_paths),
        cmocka_unit_test(test_devplan_child_command_lines),
        cmocka_unit_test(test_devplan_recorded_layout_is_kept),
        cmocka_unit_test(test_devplan_limits),
    };
    return cmocka_run_group_tests_name("devplan", tests, NULL, NULL);
}

/*
 * Unit tests of the process metrics: parsing /proc/PID/stat, and the
 * figures this very process reports.
 */
#include <fcntl.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <cmocka.h>

#include "rq_err.h"
#include "rq_metrics.h"
#include "rq_proc.h"

static void test_proc_stat_start_ticks(void **state)
{
    (void)state;
    uint64_t ticks = 0;
    /* Fields 3..21, then the start time (22), then more. */
    const char *plain =
        "1234 (broker) S 1 2 3 4 5 6 7 8 9 10 11 12 13 14 15 "
        "16 17 18 987654 19 20\n";
    assert_int_equal(rq_proc_stat_start_ticks(plain, &ticks), 0);
    assert_true(ticks == 987654);
    /* A command may hold spaces and parentheses: the last ')' ends it. */
    const char *odd =
        "77 (a) b (c) d) R 1 2 3 4 5 6 7 8 9 10 11 12 13 14 15 "
        "16 17 18 42 19";
    assert_int_equal(rq_proc_stat_start_ticks(odd, &ticks), 0);
    assert_true(ticks == 42);

    const char *bad[] = {
        "no parenthesis at all",
        "1 (x) S 1 2 3", /* Short. */
        "1 (x) S 1 2 3 4 5 6 7 8 9 10 11 12 13 14 15 16 17 18 x9 19", /* NaN. */
        "",
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        assert_int_equal(rq_proc_stat_start_ticks(bad[i], &ticks),
                         RQ_MALFORMED);
    }
}

static void test_proc_metrics_report_this_process(void **state)
{
    (void)state;
    struct rq_metrics *m;
    struct rq_proc_metrics p;
    struct rq_buf b;

    assert_int_equal(rq_metrics_new(&m), 0);
    assert_int_equal(rq_proc_metrics_init(&p, m), 0);
    rq_buf_init(&b);
    assert_int_equal(rq_metrics_render(m, &b), 0);
    rq_buf_close(&b);
    double fds = rq_metric_value(p.open_fds);
    assert_true(fds >= 3); /* stdin, stdout, stderr at least. */
    assert_true(rq_metric_value(p.resident) > 1 << 20);
    assert_true(rq_metric_value(p.virtual_bytes) >=
                rq_metric_value(p.resident));
    assert_true(rq_metric_value(p.cpu) > 0);
    assert_true(rq_metric_value(p.max_fds) >= fds ||
                rq_metric_value(p.max_fds) == -1);
    double now = (double)time(NULL);
    double start = rq_metric_value(p.start_time);
    assert_true(start <= now + 1 && start > now - 24 * 3600);

    /* Files opened show at the next rendering. */
    int opened[5];
    for (int i = 0; i < 5; i++) {
        opened[i] = open("/dev/null", O_RDONLY | O_CLOEXEC);
        assert_true(opened[i] >= 0);
    }
    rq_buf_init(&b);
    assert_int_equal(rq_metrics_render(m, &b), 0);
    rq_buf_put_u8(&b, '\0');
    assert_true(rq_metric_value(p.open_fds) == fds + 5);
    assert_non_null(strstr((const char *)b.base,
                           "# TYPE raftq_process_cpu_seconds_total counter\n"
                           "raftq_process_cpu_seconds_total "));
    rq_buf_close(&b);
    for (int i = 0; i < 5; i++) {
        close(opened[i]);
    }
    /* Closed, the figures are no longer read. */
    rq_proc_metrics_close(&p, m);
    rq_buf_init(&b);
    assert_int_equal(rq_metrics_render(m, &b), 0);
    rq_buf_close(&b);
    assert_true(rq_metric_value(p.open_fds) == fds + 5);
    rq_metrics_free(m);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_proc_stat_start_ticks),
        cmocka_unit_test(test_proc_metrics_report_this_process),
    };
    return cmocka_run_group_tests_name("proc", tests, NULL, NULL);
}

/*
 * Unit tests of the metrics registry: the exact exposition text, escaping,
 * histogram buckets, shared and dropped children, many label sets, the
 * definitions refused, and the collect callbacks.
 */
#include <math.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "rq_err.h"
#include "rq_metrics.h"

static int setup(void **state)
{
    struct rq_metrics *m;
    if (rq_metrics_new(&m) != 0) {
        return -1;
    }
    *state = m;
    return 0;
}

static int teardown(void **state)
{
    rq_metrics_free(*state);
    return 0;
}

/* The whole rendering as a NUL-terminated string (freed by the caller). */
static char *render(struct rq_metrics *m)
{
    struct rq_buf b;
    rq_buf_init(&b);
    assert_int_equal(rq_metrics_render(m, &b), 0);
    rq_buf_put_u8(&b, '\0');
    assert_int_equal(b.err, 0);
    return (char *)b.base;
}

static size_t count_lines(const char *text, const char *prefix)
{
    size_t n = 0;
    size_t len = strlen(prefix);
    for (const char *p = text; *p != '\0';) {
        if (strncmp(p, prefix, len) == 0) {
            n++;
        }
        const char *nl = strchr(p, '\n');
        if (nl == NULL) {
            break;
        }
        p = nl + 1;
    }
    return n;
}

static void test_metrics_renders_exact_text(void **state)
{
    struct rq_metrics *m = *state;
    static const double bounds[] = {0.001, 0.01, 0.1};
    struct rq_metric_def counter = {
        .type = RQ_METRIC_COUNTER,
        .name = "raftq_test_requests_total",
        .help = "Requests served.",
        .labels = {"route", "code"},
    };
    struct rq_metric_def gauge = {
        .type = RQ_METRIC_GAUGE,
        .name = "raftq_test_temperature",
        .help = "A gauge without labels.",
    };
    struct rq_metric_def hist = {
        .type = RQ_METRIC_HISTOGRAM,
        .name = "raftq_test_duration_seconds",
        .help = "Latency.",
        .labels = {"route"},
        .buckets = bounds,
        .n_buckets = 3,
    };
    struct rq_metric_family *fc = rq_metrics_add(m, &counter);
    struct rq_metric_family *fg = rq_metrics_add(m, &gauge);
    struct rq_metric_family *fh = rq_metrics_add(m, &hist);
    assert_non_null(fc);
    assert_non_null(fg);
    assert_non_null(fh);

    const char *ok[] = {"/topics", "200"};
    const char *bad[] = {"/topics", "404"};
    const char *r1[] = {"/topics"};
    struct rq_metric *c1 = rq_metric_get(fc, ok);
    struct rq_metric *c2 = rq_metric_get(fc, bad);
    struct rq_metric *h = rq_metric_get(fh, r1);
    rq_metric_add(c1, 41);
    rq_metric_inc(c1);
    rq_metric_inc(c2);
    rq_metric_set(rq_metric_family_child(fg), -2.5);
    rq_metric_observe(h, 0.0005);
    rq_metric_observe(h, 0.05);
    rq_metric_observe(h, 3);

    char *text = render(m);
    assert_string_equal(
        text,
        "# HELP raftq_test_requests_total Requests served.\n"
        "# TYPE raftq_test_requests_total counter\n"
        "raftq_test_requests_total{route=\"/topics\",code=\"200\"} 42\n"
        "raftq_test_requests_total{route=\"/topics\",code=\"404\"} 1\n"
        "# HELP raftq_test_temperature A gauge without labels.\n"
        "# TYPE raftq_test_temperature gauge\n"
        "raftq_test_temperature -2.5\n"
        "# HELP raftq_test_duration_seconds Latency.\n"
        "# TYPE raftq_test_duration_seconds histogram\n"
        "raftq_test_duration_seconds_bucket{route=\"/topics\",le=\"0.001\"} 1\n"
        "raftq_test_duration_seconds_bucket{route=\"/topics\",le=\"0.01\"} 1\n"
        "raftq_test_duration_seconds_bucket{route=\"/topics\",le=\"0.1\"} 2\n"
        "raftq_test_duration_seconds_bucket{route=\"/topics\",le=\"+Inf\"} 3\n"
        "raftq_test_duration_seconds_sum{route=\"/topics\"} 3.0505\n"
        "raftq_test_duration_seconds_count{route=\"/topics\"} 3\n");
    free(text);
    rq_metric_put(c1);
    rq_metric_put(c2);
    rq_metric_put(h);
}

static void test_metrics_escapes_label_values_and_help(void **state)
{
    struct rq_metrics *m = *state;
    struct rq_metric_def def = {
        .type = RQ_METRIC_GAUGE,
        .name = "raftq_test_escapes",
        .help = "Back\\slash and\nnewline; \"quotes\" stay.",
        .labels = {"a", "b"},
    };
    struct rq_metric_family *f = rq_metrics_add(m, &def);
    const char *values[] = {"q\"uote\\back\nline", NULL};
    struct rq_metric *c = rq_metric_get(f, values);
    rq_metric_set(c, 1);

    char *text = render(m);
    assert_string_equal(
        text,
        "# HELP raftq_test_escapes Back\\\\slash and\\nnewline; "
        "\"quotes\" stay.\n"
        "# TYPE raftq_test_escapes gauge\n"
        "raftq_test_escapes{a=\"q\\\"uote\\\\back\\nline\",b=\"\"} 1\n");
    free(text);

    /* NULL and "" are the same label value, hence the same child. */
    const char *empty[] = {"q\"uote\\back\nline", ""};
    struct rq_metric *same = rq_metric_get(f, empty);
    assert_ptr_equal(same, c);
    rq_metric_put(same);
    rq_metric_put(c);
}

static void test_metrics_histogram_bucket_math(void **state)
{
    struct rq_metrics *m = *state;
    static const double bounds[] = {1, 2, 4, 8};
    struct rq_metric_def def = {
        .type = RQ_METRIC_HISTOGRAM,
        .name = "raftq_test_sizes",
        .help = "h",
        .buckets = bounds,
        .n_buckets = 4,
    };
    struct rq_metric *h = rq_metric_family_child(rq_metrics_add(m, &def));
    assert_non_null(h);
    /* A bound is inclusive (le): 1 falls in le=1, 1.5 in le=2. */
    const double obs[] = {-3, 0, 1, 1.5, 2, 4, 4.000001, 8, 9, 1e300};
    for (size_t i = 0; i < sizeof obs / sizeof obs[0]; i++) {
        rq_metric_observe(h, obs[i]);
    }
    rq_metric_observe(h, NAN); /* Ignored. */
    assert_int_equal(rq_metric_count(h), 10);
    assert_true(rq_metric_value(h) ==
                -3 + 0 + 1 + 1.5 + 2 + 4 + 4.000001 + 8 + 9 + 1e300);

    char *text = render(m);
    assert_non_null(strstr(text,
                           "raftq_test_sizes_bucket{le=\"1\"} 3\n"
                           "raftq_test_sizes_bucket{le=\"2\"} 5\n"
                           "raftq_test_sizes_bucket{le=\"4\"} 6\n"
                           "raftq_test_sizes_bucket{le=\"8\"} 8\n"
                           "raftq_test_sizes_bucket{le=\"+Inf\"} 10\n"
                           "raftq_test_sizes_sum 1e+300\n"
                           "raftq_test_sizes_count 10\n"));
    free(text);

    /* Observing into a counter or gauge changes nothing. */
    struct rq_metric_def g = {.type = RQ_METRIC_GAUGE, .name = "raftq_g"};
    struct rq_metric *gc = rq_metric_family_child(rq_metrics_add(m, &g));
    rq_metric_observe(gc, 5);
    assert_true(rq_metric_value(gc) == 0);
    assert_int_equal(rq_metric_count(gc), 0);
}

static void test_metrics_many_label_sets(void **state)
{
    struct rq_metrics *m = *state;
    enum { N = 5000 };
    struct rq_metric_def def = {
        .type = RQ_METRIC_COUNTER,
        .name = "raftq_test_partition_records_total",
        .help = "Per partition.",
        .labels = {"topic", "partition"},
    };
    struct rq_metric_family *f = rq_metrics_add(m, &def);
    static struct rq_metric *handles[N];
    char part[16];
    char topic[16];

    for (int i = 0; i < N; i++) {
        snprintf(topic, sizeof topic, "t%d", i % 7);
        snprintf(part, sizeof part, "%d", i);
        const char *v[] = {topic, part};
        handles[i] = rq_metric_get(f, v);
        assert_non_null(handles[i]);
        rq_metric_add(handles[i], i);
    }
    assert_int_equal(rq_metric_family_size(f), N);
    /* Looking a label set up again finds the same child. */
    for (int i = 0; i < N; i += 97) {
        snprintf(topic, sizeof topic, "t%d", i % 7);
        snprintf(part, sizeof part, "%d", i);
        const char *v[] = {topic, part};
        struct rq_metric *again = rq_metric_get(f, v);
        assert_ptr_equal(again, handles[i]);
        assert_true(rq_metric_value(again) == i);
        rq_metric_put(again);
    }
    char *text = render(m);
    assert_int_equal(count_lines(text, "raftq_test_partition_records_total{"),
                     N);
    assert_non_null(
        strstr(text,
               "\nraftq_test_partition_records_total{topic=\"t1\",partition="
               "\"4999\"} 4999\n"));
    free(text);

    /* Dropping every other one leaves the rest, in creation order. */
    for (int i = 0; i < N; i += 2) {
        rq_metric_put(handles[i]);
    }
    assert_int_equal(rq_metric_family_size(f), N / 2);
    text = render(m);
    assert_int_equal(count_lines(text, "raftq_test_partition_records_total{"),
                     N / 2);
    assert_null(strstr(text, "partition=\"4998\""));
    char *p1 = strstr(text, "partition=\"1\"}");
    char *p3 = strstr(text, "partition=\"3\"}");
    assert_non_null(p1);
    assert_true(p3 > p1);
    free(text);
    for (int i = 1; i < N; i += 2) {
        rq_metric_put(handles[i]);
    }
    assert_int_equal(rq_metric_family_size(f), 0);
    text = render(m);
    assert_string_equal(text, ""); /* No child: no HELP or TYPE either. */
    free(text);
}

static void test_metrics_children_shared_until_last_put(void **state)
{
    struct rq_metrics *m = *state;
    struct rq_metric_def def = {
        .type = RQ_METRIC_GAUGE,
        .name = "raftq_test_shared",
        .labels = {"k"},
    };
    struct rq_metric_family *f = rq_metrics_add(m, &def);
    const char *v[] = {"x"};
    struct rq_metric *a = rq_metric_get(f, v);
    struct rq_metric *b = rq_metric_get(f, v);
    assert_ptr_equal(a, b);
    rq_metric_set(a, 7);
    rq_metric_put(a);
    assert_int_equal(rq_metric_family_size(f), 1);
    assert_true(rq_metric_value(b) == 7);
    rq_metric_put(b);
    assert_int_equal(rq_metric_family_size(f), 0);

    /* A new child with the same values starts at 0. */
    a = rq_metric_get(f, v);
    assert_true(rq_metric_value(a) == 0);
    rq_metric_put(a);

    /* Clearing drops every child at once. */
    for (int i = 0; i < 50; i++) {
        char k[8];
        snprintf(k, sizeof k, "%d", i);
        const char *kv[] = {k};
        (void)rq_metric_get(f, kv);
    }
    assert_int_equal(rq_metric_family_size(f), 50);
    rq_metric_family_clear(f);
    assert_int_equal(rq_metric_family_size(f), 0);

    /* A family without labels loses its one child in a clear, and gets
     * it back, from 0, with a get. */
    struct rq_metric_def one = {.type = RQ_METRIC_COUNTER,
                                .name = "raftq_test_one_total"};
    struct rq_metric_family *fo = rq_metrics_add(m, &one);
    rq_metric_inc(rq_metric_family_child(fo));
    rq_metric_family_clear(fo);
    assert_int_equal(rq_metric_family_size(fo), 0);
    assert_null(rq_metric_family_child(fo));
    char *text = render(m);
    assert_null(strstr(text, "raftq_test_one_total"));
    free(text);
    struct rq_metric *back = rq_metric_get(fo, NULL);
    assert_ptr_equal(rq_metric_family_child(fo), back);
    assert_int_equal(rq_metric_family_size(fo), 1);
    assert_true(rq_metric_value(back) == 0);
    text = render(m);
    assert_non_null(strstr(text, "\nraftq_test_one_total 0\n"));
    free(text);
}

static void test_metrics_rejects_bad_definitions(void **state)
{
    struct rq_metrics *m = *state;
    static const double up[] = {1, 2};
    static const double down[] = {2, 1};
    static const double inf[] = {1, INFINITY};
    struct rq_metric_def bad[] = {
        {.type = RQ_METRIC_GAUGE, .name = "9starts_with_digit"},
        {.type = RQ_METRIC_GAUGE, .name = "has-dash"},
        {.type = RQ_METRIC_GAUGE, .name = ""},
        {.type = RQ_METRIC_GAUGE, .name = "g", .labels = {"a:b"}},
        {.type = RQ_METRIC_GAUGE, .name = "g", .labels = {"__reserved"}},
        {.type = RQ_METRIC_GAUGE, .name = "g", .labels = {"a", "a"}},
        {.type = RQ_METRIC_GAUGE, .name = "g", .labels = {NULL, "a"}},
        {.type = RQ_METRIC_GAUGE, .name = "g", .buckets = up, .n_buckets = 2},
        {.type = RQ_METRIC_HISTOGRAM, .name = "h"},
        {.type = RQ_METRIC_HISTOGRAM,
         .name = "h",
         .labels = {"le"},
         .buckets = up,
         .n_buckets = 2},
        {.type = RQ_METRIC_HISTOGRAM,
         .name = "h",
         .buckets = down,
         .n_buckets = 2},
        {.type = RQ_METRIC_HISTOGRAM,
         .name = "h",
         .buckets = inf,
         .n_buckets = 2},
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        assert_null(rq_metrics_add(m, &bad[i]));
    }
    /* Colons are allowed in metric names, and "le" on other types. */
    struct rq_metric_def ok = {
        .type = RQ_METRIC_GAUGE, .name = "ns:g", .labels = {"le"}};
    struct rq_metric_family *f = rq_metrics_add(m, &ok);
    assert_non_null(f);
    /* The same definition again is the same family; another is refused. */
    assert_ptr_equal(rq_metrics_add(m, &ok), f);
    struct rq_metric_def other = {.type = RQ_METRIC_COUNTER, .name = "ns:g"};
    assert_null(rq_metrics_add(m, &other));
    char *text = render(m);
    assert_string_equal(text, ""); /* Nothing valid has a child yet. */
    free(text);
}

static void test_metrics_formats_values(void **state)
{
    (void)state;
    static const struct {
        double v;
        const char *text;
    } cases[] = {
        {0, "0"},
        {-0.0, "0"},
        {3, "3"},
        {-42, "-42"},
        {0.1, "0.1"},
        {1.5e-7, "1.5e-07"},
        {9007199254740991.0, "9007199254740991"},
        {9007199254740992.0, "9007199254740992"},
        {1e20, "1e+20"},
        {1.0 / 3, "0.3333333333333333"},
        {INFINITY, "+Inf"},
        {-INFINITY, "-Inf"},
        {NAN, "NaN"},
    };
    char buf[40];
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        rq_metrics_format_value(cases[i].v, buf, sizeof buf);
        assert_string_equal(buf, cases[i].text);
        if (!isnan(cases[i].v)) {
            /* Every finite value reads back exactly. */
            assert_true(strtod(buf[0] == '+' ? buf + 1 : buf, NULL) ==
                        cases[i].v);
        }
    }
}

struct collected {
    struct rq_metric *gauge;
    int calls;
};

static void on_collect(void *data)
{
    struct collected *c = data;
    c->calls++;
    rq_metric_set(c->gauge, c->calls * 10);
}

static void test_metrics_collect_runs_before_rendering(void **state)
{
    struct rq_metrics *m = *state;
    struct rq_metric_def def = {.type = RQ_METRIC_GAUGE,
                                .name = "raftq_test_collected",
                                .help = "Set when scraped."};
    struct collected c = {.gauge =
                              rq_metric_family_child(rq_metrics_add(m, &def))};
    assert_int_equal(rq_metrics_on_collect(m, on_collect, &c), 0);
    char *text = render(m);
    assert_non_null(strstr(text, "\nraftq_test_collected 10\n"));
    free(text);
    text = render(m);
    assert_non_null(strstr(text, "\nraftq_test_collected 20\n"));
    free(text);
    for (int i = 1; i < RQ_METRIC_HOOKS_MAX; i++) {
        assert_int_equal(rq_metrics_on_collect(m, on_collect, &c), 0);
    }
    assert_int_equal(rq_metrics_on_collect(m, on_collect, &c), RQ_NOMEM);
    /* Removing one makes room again; the others still run. */
    rq_metrics_off_collect(m, on_collect, &c);
    assert_int_equal(rq_metrics_on_collect(m, on_collect, &c), 0);
    for (int i = 0; i < RQ_METRIC_HOOKS_MAX; i++) {
        rq_metrics_off_collect(m, on_collect, &c);
    }
    c.calls = 0;
    text = render(m);
    assert_int_equal(c.calls, 0);
    free(text);
}

static void test_metrics_null_is_a_no_op(void **state)
{
    (void)state;
    const char *v[] = {"x"};
    assert_null(rq_metric_get(NULL, v));
    assert_null(rq_metric_family_child(NULL));
    assert_int_equal(rq_metric_family_size(NULL), 0);
    rq_metric_family_clear(NULL);
    rq_metric_put(NULL);
    rq_metric_inc(NULL);
    rq_metric_add(NULL, 1);
    rq_metric_set(NULL, 1);
    rq_metric_observe(NULL, 1);
    assert_true(rq_metric_value(NULL) == 0);
    assert_int_equal(rq_metric_count(NULL), 0);
    rq_metrics_free(NULL);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_metrics_renders_exact_text, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(
            test_metrics_escapes_label_values_and_help, setup, teardown),
        cmocka_unit_test_setup_teardown(test_metrics_histogram_bucket_math,
                                        setup, teardown),
        cmocka_unit_test_setup_teardown(test_metrics_many_label_sets, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(
            test_metrics_children_shared_until_last_put, setup, teardown),
        cmocka_unit_test_setup_teardown(test_metrics_rejects_bad_definitions,
                                        setup, teardown),
        cmocka_unit_test(test_metrics_formats_values),
        cmocka_unit_test_setup_teardown(
            test_metrics_collect_runs_before_rendering, setup, teardown),
        cmocka_unit_test(test_metrics_null_is_a_no_op),
    };
    return cmocka_run_group_tests_name("metrics", tests, NULL, NULL);
}

/*
 * Unit tests of the status page's traffic series (manager/traffic.h): a
 * series starts with a baseline and no rate; records are what the high
 * watermarks pass beyond the highest counted, so a rate is never negative;
 * a partition not vouched for counts from its first vouched sample, one
 * created since the last sample from offset 0; bytes are the difference
 * of a manager's counts, from 0 for a restarted one; topics come and go
 * with the store's list; the window keeps TRAFFIC_SAMPLES samples, and
 * `since` cuts it.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "manager/traffic.h"

#define WALL0 1700000000000ull

struct fixture {
    struct traffic *t;
    struct mstore_topic topics[4];
    size_t nt;
    uint64_t now; /* Monotonic milliseconds. */
};

static int setup(void **state)
{
    struct fixture *f = calloc(1, sizeof *f);
    assert_non_null(f);
    assert_int_equal(traffic_new(&f->t), 0);
    f->now = 1000;
    *state = f;
    return 0;
}

static int teardown(void **state)
{
    struct fixture *f = *state;
    traffic_free(f->t);
    free(f);
    return 0;
}

/* The topics of the next samples, in name order. */
static void topics(struct fixture *f, const char *a, const char *b)
{
    memset(f->topics, 0, sizeof f->topics);
    f->nt = 0;
    if (a != NULL) {
        snprintf(f->topics[f->nt++].name, sizeof f->topics[0].name, "%s", a);
    }
    if (b != NULL) {
        snprintf(f->topics[f->nt++].name, sizeof f->topics[0].name, "%s", b);
    }
}

/* One partition as a sample sees it. */
struct part {
    size_t topic;
    uint64_t group_id;
    bool reported;
    uint64_t hw;
};

/* A sample @ms after the last, of @n partitions. */
static void sample(struct fixture *f, uint64_t ms, const struct part *p,
                   size_t n)
{
    f->now += ms;
    assert_int_equal(
        traffic_begin(f->t, f->now, WALL0 + f->now, f->topics, f->nt, n), 0);
    for (size_t i = 0; i < n; i++) {
        traffic_partition(f->t, p[i].topic, p[i].group_id, p[i].reported,
                          p[i].hw);
    }
    traffic_end(f->t, 1, 3);
}

static json_int_t field(const json_t *s, const char *name)
{
    const json_t *v = json_object_get(s, name);
    assert_true(json_is_integer(v));
    return json_integer_value(v);
}

static double rate(const json_t *s, const char *name)
{
    const json_t *v = json_object_get(s, name);
    assert_true(json_is_number(v));
    return json_number_value(v);
}

/* The records of each sample of @topic's series, as a string "a,b,c". */
static void records_of(struct fixture *f, const char *topic, char *out,
                       size_t n)
{
    json_t *list = traffic_series(f->t, topic, 0);
    assert_non_null(list);
    size_t used = 0;
    out[0] = '\0';
    for (size_t i = 0; i < json_array_size(list); i++) {
        json_t *s = json_array_get(list, i);
        assert_true(rate(s, "messages_per_s") >= 0);
        assert_true(rate(s, "bytes_per_s") >= 0);
        used += (size_t)snprintf(out + used, n - used, "%s%lld", i ? "," : "",
                                 (long long)field(s, "records"));
    }
    json_decref(list);
}

static void test_traffic_baseline_then_rates(void **state)
{
    struct fixture *f = *state;
    char got[256];
    topics(f, "orders", NULL);
    struct part p[] = {{0, 1, true, 500}, {0, 2, true, 70}};

    json_t *list = traffic_series(f->t, "orders", 0);
    assert_int_equal(json_array_size(list), 0);
    json_decref(list);
    assert_int_equal(traffic_started_ms(f->t), 0);

    /* The baseline: what was appended before it is not a rate. */
    sample(f, 0, p, 2);
    records_of(f, "orders", got, sizeof got);
    assert_string_equal(got, "");
    assert_int_equal(traffic_started_ms(f->t), WALL0 + 1000);

    p[0].hw = 520;
    p[1].hw = 75;
    sample(f, 5000, p, 2);
    list = traffic_series(f->t, "orders", 0);
    assert_int_equal(json_array_size(list), 1);
    json_t *s = json_array_get(list, 0);
    assert_int_equal(field(s, "records"), 25);
    assert_int_equal(field(s, "interval_ms"), 5000);
    assert_int_equal(field(s, "time_ms"), WALL0 + 6000);
    assert_int_equal(field(s, "bytes_from"), 1);
    assert_int_equal(field(s, "managers"), 3);
    assert_true(rate(s, "messages_per_s") == 5.0);
    json_decref(list);

    /* Rates are per the interval measured, to two decimals. */
    p[0].hw = 521;
    sample(f, 3000, p, 2);
    list = traffic_series(f->t, "orders", 0);
    s = json_array_get(list, 1);
    assert_int_equal(field(s, "records"), 1);
    assert_true(rate(s, "messages_per_s") == 0.33);
    json_decref(list);
    assert_int_equal(traffic_samples(f->t), 3);
}

static void test_traffic_never_negative(void **state)
{
    struct fixture *f = *state;
    char got[256];
    topics(f, "orders", NULL);
    struct part p[] = {{0, 1, true, 100}};
    sample(f, 0, p, 1);
    p[0].hw = 90; /* A new leader broker reporting less for a while. */
    sample(f, 1000, p, 1);
    p[0].hw = 100; /* Back where it was: nothing new. */
    sample(f, 1000, p, 1);
    p[0].hw = 104;
    sample(f, 1000, p, 1);
    p[0].reported = false; /* Its route gone: the mark stays. */
    p[0].hw = 0;
    sample(f, 1000, p, 1);
    p[0].reported = true;
    p[0].hw = 110;
    sample(f, 1000, p, 1);
    records_of(f, "orders", got, sizeof got);
    assert_string_equal(got, "0,0,4,0,6");
}

static void test_traffic_unvouched_partitions_count_from_their_report(
    void **state)
{
    struct fixture *f = *state;
    char got[256];
    topics(f, "orders", NULL);
    /* A new leader: group 2's route is a copy, not vouched for. */
    struct part p[] = {{0, 1, true, 10}, {0, 2, false, 0}};
    sample(f, 0, p, 2);
    assert_int_equal(traffic_uncounted(f->t, "orders"), 1);
    p[0].hw = 12;
    sample(f, 1000, p, 2);
    assert_int_equal(traffic_uncounted(f->t, "orders"), 1);
    /* Its first report is where it starts: the 40 before are not new. */
    p[1].reported = true;
    p[1].hw = 40;
    sample(f, 1000, p, 2);
    assert_int_equal(traffic_uncounted(f->t, "orders"), 0);
    p[1].hw = 45;
    sample(f, 1000, p, 2);
    records_of(f, "orders", got, sizeof got);
    assert_string_equal(got, "2,0,5");
}

static void test_traffic_new_partitions_and_topics(void **state)
{
    struct fixture *f = *state;
    char got[256];
    topics(f, "orders", NULL);
    struct part p1[] = {{0, 1, true, 10}};
    sample(f, 0, p1, 1);
    /* A topic created since: its partitions count from offset 0, and its
     * first sample has a rate; one not reported yet counts from 0 too. */
    topics(f, "clicks", "orders");
    struct part p2[] = {{1, 1, true, 10}, {0, 7, true, 30}, {0, 8, false, 0}};
    sample(f, 1000, p2, 3);
    records_of(f, "clicks", got, sizeof got);
    assert_string_equal(got, "30");
    assert_int_equal(traffic_uncounted(f->t, "clicks"), 0);
    p2[2].reported = true;
    p2[2].hw = 3;
    sample(f, 1000, p2, 3);
    records_of(f, "clicks", got, sizeof got);
    assert_string_equal(got, "30,3");
    records_of(f, "orders", got, sizeof got);
    assert_string_equal(got, "0,0");
    /* Deleted: its series goes; made again, a new one (new groups). */
    topics(f, "orders", NULL);
    struct part p3[] = {{0, 1, true, 10}};
    sample(f, 1000, p3, 1);
    records_of(f, "clicks", got, sizeof got);
    assert_string_equal(got, "");
    topics(f, "clicks", "orders");
    struct part p4[] = {{1, 1, true, 10}, {0, 9, true, 2}};
    sample(f, 1000, p4, 2);
    records_of(f, "clicks", got, sizeof got);
    assert_string_equal(got, "2");
    records_of(f, "nope", got, sizeof got);
    assert_string_equal(got, "");
}

static json_t *counts(const char *origin, const char *topic, json_int_t n)
{
    return json_pack("{s:s,s:{s:I}}", "origin", origin, "topics", topic, n);
}

static json_int_t bytes_of_last(struct fixture *f, const char *topic)
{
    json_t *list = traffic_series(f->t, topic, 0);
    size_t n = json_array_size(list);
    assert_true(n > 0);
    json_int_t v = field(json_array_get(list, n - 1), "bytes");
    json_decref(list);
    return v;
}

/* A sample of no partition in which @before and @after are counted;
 * whether they were. */
static bool sample_counts(struct fixture *f, const json_t *before,
                          const json_t *after)
{
    f->now += 1000;
    assert_int_equal(
        traffic_begin(f->t, f->now, WALL0 + f->now, f->topics, f->nt, 0), 0);
    bool counted = traffic_counted(f->t, before, after);
    traffic_end(f->t, counted, 3);
    return counted;
}

static void test_traffic_bytes_from_counts(void **state)
{
    struct fixture *f = *state;
    topics(f, "orders", NULL);
    json_t *a = counts("aa", "orders", 1000);
    json_t *b = counts("aa", "orders", 1600);
    json_t *c = counts("bb", "orders", 50);   /* Restarted. */
    json_t *d = counts("bb", "orders", 20);   /* Deleted and made again. */
    json_t *e = counts("bb", "elsewhere", 9); /* A topic gone. */
    json_t *bad = json_pack("{s:i}", "origin", 3);

    assert_false(sample_counts(f, NULL, a)); /* The baseline. */
    assert_false(sample_counts(f, NULL, a)); /* First heard: a baseline. */
    assert_int_equal(bytes_of_last(f, "orders"), 0);
    assert_true(sample_counts(f, a, b));
    assert_int_equal(bytes_of_last(f, "orders"), 600);
    json_t *list = traffic_series(f->t, "orders", 0);
    json_t *s = json_array_get(list, json_array_size(list) - 1);
    assert_true(rate(s, "bytes_per_s") == 600.0);
    assert_int_equal(field(s, "bytes_from"), 1);
    json_decref(list);
    assert_true(sample_counts(f, b, c));
    assert_int_equal(bytes_of_last(f, "orders"), 50);
    assert_true(sample_counts(f, c, d));
    assert_int_equal(bytes_of_last(f, "orders"), 20);
    assert_true(sample_counts(f, d, e));
    assert_int_equal(bytes_of_last(f, "orders"), 0);
    assert_false(sample_counts(f, e, bad));
    json_decref(a);
    json_decref(b);
    json_decref(c);
    json_decref(d);
    json_decref(e);
    json_decref(bad);
}

static void test_traffic_window_and_since(void **state)
{
    struct fixture *f = *state;
    topics(f, "orders", "quiet");
    struct part p[] = {{0, 1, true, 0}, {1, 2, true, 0}};
    sample(f, 0, p, 2);
    for (int k = 1; k <= TRAFFIC_SAMPLES + 30; k++) {
        p[0].hw += (uint64_t)k;
        sample(f, 1000, p, 2);
    }
    json_t *list = traffic_series(f->t, "orders", 0);
    assert_int_equal(json_array_size(list), TRAFFIC_SAMPLES);
    /* The oldest kept is sample 31, the newest 150. */
    assert_int_equal(field(json_array_get(list, 0), "records"), 31);
    assert_int_equal(
        field(json_array_get(list, TRAFFIC_SAMPLES - 1), "records"),
        TRAFFIC_SAMPLES + 30);
    json_int_t cut =
        field(json_array_get(list, TRAFFIC_SAMPLES - 3), "time_ms");
    json_decref(list);
    list = traffic_series(f->t, "orders", (uint64_t)cut);
    assert_int_equal(json_array_size(list), 2);
    assert_int_equal(field(json_array_get(list, 0), "records"),
                     TRAFFIC_SAMPLES + 29);
    json_decref(list);
    /* A topic idle for the whole window: a full series of zeros. */
    list = traffic_series(f->t, "quiet", 0);
    assert_int_equal(json_array_size(list), TRAFFIC_SAMPLES);
    for (size_t i = 0; i < json_array_size(list); i++) {
        assert_int_equal(field(json_array_get(list, i), "records"), 0);
    }
    json_decref(list);
    /* Idle long enough, a busy topic's ring goes, and its zeros remain. */
    for (int k = 0; k < TRAFFIC_SAMPLES + 1; k++) {
        sample(f, 1000, p, 2);
    }
    list = traffic_series(f->t, "orders", 0);
    assert_int_equal(json_array_size(list), TRAFFIC_SAMPLES);
    for (size_t i = 0; i < json_array_size(list); i++) {
        assert_int_equal(field(json_array_get(list, i), "records"), 0);
    }
    json_decref(list);
    p[0].hw += 5;
    sample(f, 1000, p, 2);
    list = traffic_series(f->t, "orders", 0);
    assert_int_equal(
        field(json_array_get(list, json_array_size(list) - 1), "records"), 5);
    assert_int_equal(field(json_array_get(list, 0), "records"), 0);
    json_decref(list);
}

static void test_traffic_reset_starts_empty(void **state)
{
    struct fixture *f = *state;
    char got[256];
    topics(f, "orders", NULL);
    struct part p[] = {{0, 1, true, 10}};
    sample(f, 0, p, 1);
    p[0].hw = 20;
    sample(f, 1000, p, 1);
    traffic_reset(f->t);
    assert_int_equal(traffic_samples(f->t), 0);
    assert_int_equal(traffic_started_ms(f->t), 0);
    records_of(f, "orders", got, sizeof got);
    assert_string_equal(got, "");
    p[0].hw = 50; /* Appended before the new series: a baseline. */
    sample(f, 1000, p, 1);
    p[0].hw = 51;
    sample(f, 1000, p, 1);
    records_of(f, "orders", got, sizeof got);
    assert_string_equal(got, "1");
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_traffic_baseline_then_rates, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_traffic_never_negative, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(
            test_traffic_unvouched_partitions_count_from_their_report, setup,
            teardown),
        cmocka_unit_test_setup_teardown(test_traffic_new_partitions_and_topics,
                                        setup, teardown),
        cmocka_unit_test_setup_teardown(test_traffic_bytes_from_counts, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_traffic_window_and_since, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_traffic_reset_starts_empty, setup,
                                        teardown),
    };
    return cmocka_run_group_tests_name("traffic", tests, NULL, NULL);
}

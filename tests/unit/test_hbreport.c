/*
 * Unit tests of heartbeat reports as deltas: the broker's side
 * (broker/hbreport.h) against the leader manager's (manager/hbmerge.h),
 * over the wire's JSON text, with heartbeats and answers lost and leaders
 * changing.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "manager/hbmerge.h"
#include "broker/hbreport.h"
#include "rq_err.h"

#define GROUPS 64

/* The broker's replicas as they are: commit per group, 0 for not hosted. */
struct truth {
    uint64_t commit[GROUPS + 1];
    bool failed[GROUPS + 1];
};

/* The leader manager's view of the broker, as liveness.c keeps it. */
struct view {
    struct liveness_replica *r;
    size_t n;
    uint64_t seq;
    bool heard;
};

static json_t *full_body(const struct truth *t)
{
    json_t *list = json_array();
    for (uint64_t g = 1; g <= GROUPS; g++) {
        if (t->commit[g] != 0) {
            json_array_append_new(
                list,
                json_pack("{s:I,s:s,s:i,s:i,s:I,s:I,s:[i,i,i],s:s}", "group_id",
                          (json_int_t)g, "role",
                          g % 3 == 0 ? "leader" : "follower", "leader_id", 1,
                          "term", 2, "commit", (json_int_t)t->commit[g],
                          "next_offset", (json_int_t)t->commit[g], "voters", 1,
                          2, 3, "state", t->failed[g] ? "failed" : "open"));
        }
    }
    return json_pack("{s:o,s:{s:i}}", "replicas", list, "disk", "free", 1);
}

/* The body as the manager reads it: through its text. */
static json_t *wire(const json_t *body)
{
    char *text = json_dumps(body, JSON_COMPACT);
    json_t *o = json_loads(text, 0, NULL);
    free(text);
    assert_non_null(o);
    return o;
}

/* What liveness_heartbeat does with a report: true if applied, false if
 * it asks for a full one. */
static bool receive(struct view *v, const json_t *body)
{
    uint64_t seq;
    uint64_t base;
    char why[128];
    struct liveness_replica *r;
    size_t n;
    uint64_t *gone = NULL;
    size_t n_gone = 0;
    assert_int_equal(
        hbmerge_report(json_object_get(body, "report"), &seq, &base), 0);
    assert_int_equal(hbmerge_replicas(json_object_get(body, "replicas"), &r, &n,
                                      why, sizeof why),
                     0);
    if (base != 0 && (!v->heard || v->seq < base || v->seq >= seq)) {
        free(r);
        return false;
    }
    if (base != 0) {
        struct liveness_replica *m;
        size_t nm;
        assert_int_equal(hbmerge_gone(json_object_get(body, "gone"), &gone,
                                      &n_gone, why, sizeof why),
                         0);
        assert_int_equal(hbmerge_apply(v->r, v->n, r, n, gone, n_gone, &m, &nm),
                         0);
        free(r);
        free(gone);
        r = m;
        n = nm;
    }
    free(v->r);
    v->r = r;
    v->n = n;
    v->seq = seq;
    v->heard = true;
    return true;
}

static void assert_view_is(const struct view *v, const struct truth *t)
{
    size_t k = 0;
    for (uint64_t g = 1; g <= GROUPS; g++) {
        if (t->commit[g] == 0) {
            continue;
        }
        assert_true(k < v->n);
        assert_int_equal(v->r[k].group_id, g);
        assert_int_equal(v->r[k].commit, t->commit[g]);
        assert_int_equal(v->r[k].failed_since != 0, t->failed[g]);
        assert_int_equal(v->r[k].leader, g % 3 == 0);
        assert_int_equal(v->r[k].n_voters, 3);
        k++;
    }
    assert_int_equal(k, v->n);
}

/* One heartbeat and its answer; returns the number of replicas sent. */
static size_t beat(struct hbreport *h, struct view *v, const struct truth *t,
                   bool lose_request, bool lose_answer, bool *applied)
{
    json_t *body = full_body(t);
    assert_int_equal(hbreport_prepare(h, body), 0);
    size_t sent = json_array_size(json_object_get(body, "replicas"));
    json_t *got = wire(body);
    json_decref(body);
    *applied = false;
    bool full = false;
    if (!lose_request) {
        *applied = receive(v, got);
        full = !*applied;
    }
    json_decref(got);
    hbreport_answered(h, !lose_request && !lose_answer, full);
    return sent;
}

static void test_hbreport_first_full_then_deltas(void **state)
{
    (void)state;
    struct hbreport h;
    struct view v = {0};
    struct truth t = {0};
    bool applied;
    hbreport_init(&h);
    for (uint64_t g = 1; g <= 40; g++) {
        t.commit[g] = 10;
    }
    /* The first report is full and numbered, with no base. */
    json_t *body = full_body(&t);
    assert_int_equal(hbreport_prepare(&h, body), 0);
    assert_int_equal(json_integer_value(json_object_get(
                         json_object_get(body, "report"), "base")),
                     0);
    assert_int_equal(json_array_size(json_object_get(body, "replicas")), 40);
    assert_true(receive(&v, body));
    hbreport_answered(&h, true, false);
    json_decref(body);
    assert_view_is(&v, &t);

    /* Nothing changed: an empty delta. */
    assert_int_equal(beat(&h, &v, &t, false, false, &applied), 0);
    assert_true(applied);
    assert_view_is(&v, &t);

    /* One commit moved, one group added, one removed. */
    t.commit[7] = 11;
    t.commit[50] = 1;
    t.commit[3] = 0;
    body = full_body(&t);
    assert_int_equal(hbreport_prepare(&h, body), 0);
    assert_int_equal(json_array_size(json_object_get(body, "replicas")), 2);
    assert_int_equal(json_array_size(json_object_get(body, "gone")), 1);
    assert_int_equal(
        json_integer_value(json_array_get(json_object_get(body, "gone"), 0)),
        3);
    assert_true(receive(&v, body));
    hbreport_answered(&h, true, false);
    json_decref(body);
    assert_view_is(&v, &t);

    /* A lost answer: the next delta is against the old base, and names
     * again what the lost one named, so the manager, which holds the lost
     * one, applies it. A group added and removed while unanswered is gone
     * for it either way. */
    t.commit[8] = 12;
    t.commit[60] = 1;
    assert_int_equal(beat(&h, &v, &t, false, true, &applied), 2);
    assert_true(applied);
    t.commit[9] = 12;
    t.commit[60] = 0;
    body = full_body(&t);
    assert_int_equal(hbreport_prepare(&h, body), 0);
    assert_int_equal(json_array_size(json_object_get(body, "replicas")), 2);
    assert_int_equal(json_array_size(json_object_get(body, "gone")), 1);
    assert_true(receive(&v, body));
    hbreport_answered(&h, true, false);
    json_decref(body);
    assert_view_is(&v, &t);
    /* The same when the request itself was lost. */
    t.commit[11] = 14;
    assert_int_equal(beat(&h, &v, &t, true, false, &applied), 1);
    assert_false(applied);
    assert_int_equal(beat(&h, &v, &t, false, false, &applied), 1);
    assert_true(applied);
    assert_view_is(&v, &t);

    /* A new leader manager holds nothing: it asks for a full report. */
    free(v.r);
    v = (struct view){0};
    t.commit[10] = 13;
    assert_int_equal(beat(&h, &v, &t, false, false, &applied), 1);
    assert_false(applied);
    assert_int_equal(beat(&h, &v, &t, false, false, &applied), 40);
    assert_true(applied);
    assert_view_is(&v, &t);

    /* A registration: full again. */
    hbreport_reset(&h);
    assert_int_equal(beat(&h, &v, &t, false, false, &applied), 40);
    assert_true(applied);
    free(v.r);
    hbreport_clear(&h);
}

/* Random changes, heartbeats and answers lost, leaders changing: every
 * report the manager applies leaves its view equal to the broker's
 * replicas, and most are small. */
static void test_hbreport_random_histories_converge(void **state)
{
    (void)state;
    unsigned seed = 7;
    for (int run = 0; run < 20; run++) {
        struct hbreport h;
        struct view v = {0};
        struct truth t = {0};
        size_t applied_n = 0;
        size_t sent_total = 0;
        size_t hosted_total = 0;
        hbreport_init(&h);
        for (int step = 0; step < 300; step++) {
            for (int c = 0; c < 3; c++) {
                uint64_t g = 1 + (uint64_t)rand_r(&seed) % GROUPS;
                switch (rand_r(&seed) % 4) {
                    case 0: /* Added or removed. */
                        t.commit[g] = t.commit[g] == 0 ? 1 : 0;
                        t.failed[g] = false;
                        break;
                    case 1: /* Failed or recovered. */
                        t.failed[g] = t.commit[g] != 0 && !t.failed[g];
                        break;
                    default:
                        t.commit[g] += t.commit[g] != 0;
                }
            }
            if (rand_r(&seed) % 30 == 0) {
                free(v.r); /* Another leader manager. */
                v = (struct view){0};
            }
            unsigned fate = (unsigned)rand_r(&seed) % 10;
            bool applied;
            sent_total += beat(&h, &v, &t, fate == 0, fate == 1, &applied);
            for (uint64_t g = 1; g <= GROUPS; g++) {
                hosted_total += t.commit[g] != 0;
            }
            if (applied) {
                applied_n++;
                assert_view_is(&v, &t);
            }
        }
        /* Lost heartbeats cost no full report: only new leaders do. */
        assert_true(applied_n > 200);
        /* About three changes a beat against about 32 hosted. */
        assert_true(sent_total * 3 < hosted_total);
        free(v.r);
        hbreport_clear(&h);
    }
}

static void test_hbmerge_refuses_bad_input(void **state)
{
    (void)state;
    char why[128];
    struct liveness_replica *r;
    uint64_t *g;
    size_t n;
    uint64_t seq;
    uint64_t base;
    json_t *o = json_loads("[{\"group_id\": 0}]", 0, NULL);
    assert_int_equal(hbmerge_replicas(o, &r, &n, why, sizeof why), RQ_INVALID);
    assert_non_null(strstr(why, "group_id"));
    json_decref(o);
    o = json_loads("[1, -2]", 0, NULL);
    assert_int_equal(hbmerge_gone(o, &g, &n, why, sizeof why), RQ_INVALID);
    assert_non_null(strstr(why, "gone[1]"));
    json_decref(o);
    o = json_loads("{\"gone\": 1}", 0, NULL);
    assert_int_equal(
        hbmerge_gone(json_object_get(o, "gone"), &g, &n, why, sizeof why),
        RQ_INVALID);
    json_decref(o);
    o = json_loads("{\"seq\": \"x\"}", 0, NULL);
    assert_int_equal(hbmerge_report(o, &seq, &base), RQ_INVALID);
    json_decref(o);
    assert_int_equal(hbmerge_report(NULL, &seq, &base), 0);
    assert_int_equal(seq, 0);
    assert_int_equal(base, 0);
    /* A group listed twice counts once: the last. */
    o = json_loads(
        "[{\"group_id\": 5, \"commit\": 1}, {\"group_id\": 2},"
        " {\"group_id\": 5, \"commit\": 9}]",
        0, NULL);
    assert_int_equal(hbmerge_replicas(o, &r, &n, why, sizeof why), 0);
    assert_int_equal(n, 2);
    assert_int_equal(r[0].group_id, 2);
    assert_int_equal(r[1].commit, 9);
    struct liveness_broker lb = {.replicas = r, .n_replicas = n};
    assert_ptr_equal(liveness_report_find(&lb, 5), &r[1]);
    assert_null(liveness_report_find(&lb, 3));
    assert_null(liveness_report_find(NULL, 5));
    free(r);
    json_decref(o);
}

/* Marks @b asked at @now as liveness.c does. */
static void ask(struct liveness_broker *b, uint32_t size, uint64_t now)
{
    b->full_asked_ms = now;
    b->full_asked_size = size;
}

static void test_full_asks_stay_within_budget(void **state)
{
    (void)state;
    struct liveness_broker b[4] = {{.id = 1}, {.id = 2}, {.id = 3}, {.id = 4}};
    /* Nothing outstanding: one report is allowed whatever its size. */
    assert_true(hbmerge_may_ask_full(b, 4, &b[0], 50000, 1000, 10000, 5000));
    ask(&b[0], 50000, 1000);
    assert_false(hbmerge_may_ask_full(b, 4, &b[1], 1, 1100, 10000, 5000));
    /* The one asked is asked again (its answer may have been lost). */
    assert_true(hbmerge_may_ask_full(b, 4, &b[0], 50000, 1200, 10000, 5000));
    /* An ask older than the ttl is taken for lost. */
    assert_true(hbmerge_may_ask_full(b, 4, &b[1], 6000, 6000, 10000, 5000));
    ask(&b[1], 6000, 6000);
    assert_true(hbmerge_may_ask_full(b, 4, &b[2], 4000, 6000, 10000, 5000));
    ask(&b[2], 4000, 6000);
    assert_false(hbmerge_may_ask_full(b, 4, &b[3], 1, 6000, 10000, 5000));
    /* A report that came frees its share. */
    b[1].full_asked_ms = 0;
    assert_true(hbmerge_may_ask_full(b, 4, &b[3], 6000, 6100, 10000, 5000));
}

/* A new leader and a hundred brokers of 3,000 replicas, every one
 * heartbeating a delta it cannot apply, a tenth of the answers lost: the
 * full reports under way never list more than the budget, and every
 * broker is heard. */
static void test_new_leader_hears_every_broker_paced(void **state)
{
    (void)state;
    enum { N = 100, SIZE = 3000, BUDGET = 20000, TTL = 5000, BEAT = 1000 };
    struct liveness_broker b[N];
    bool full_next[N] = {false};
    bool heard[N] = {false};
    size_t n_heard = 0;
    uint64_t now = 1;
    srand(7);
    memset(b, 0, sizeof b);
    for (size_t i = 0; i < N; i++) {
        b[i].id = (uint32_t)i + 1;
    }
    int beats = 0;
    for (; n_heard < N && beats < 200; beats++, now += BEAT) {
        uint64_t in_flight = 0;
        for (size_t i = 0; i < N; i++) {
            in_flight += full_next[i] ? SIZE : 0;
        }
        assert_true(in_flight <= BUDGET);
        for (size_t i = 0; i < N; i++) {
            if (heard[i]) {
                continue;
            }
            if (full_next[i]) {
                heard[i] = true; /* Applied; liveness.c clears the ask. */
                full_next[i] = false;
                b[i].full_asked_ms = 0;
                n_heard++;
                continue;
            }
            if (hbmerge_may_ask_full(b, N, &b[i], SIZE, now, BUDGET, TTL)) {
                if (b[i].full_asked_ms == 0 ||
                    now >= b[i].full_asked_ms + TTL) {
                    ask(&b[i], SIZE, now);
                }
                full_next[i] = rand() % 10 != 0; /* else the answer was lost */
            }
        }
    }
    assert_int_equal(n_heard, N);
    /* About six reports a beat. */
    assert_true(beats < 40);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_hbreport_first_full_then_deltas),
        cmocka_unit_test(test_hbreport_random_histories_converge),
        cmocka_unit_test(test_hbmerge_refuses_bad_input),
        cmocka_unit_test(test_full_asks_stay_within_budget),
        cmocka_unit_test(test_new_leader_hears_every_broker_paced),
    };
    return cmocka_run_group_tests_name("hbreport", tests, NULL, NULL);
}

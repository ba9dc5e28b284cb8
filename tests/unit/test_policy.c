/*
 * Unit tests of the manager's pure decisions (policy.h), among them which
 * read answers from brokers are final, and of its routing cache
 * (routing.h).
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "manager/policy.h"
#include "manager/routing.h"

static void test_policy_utf8(void **state)
{
    (void)state;
    static const struct {
        const char *s;
        size_t len;
        bool ok;
    } cases[] = {
        {"plain ascii", 11, true},
        {"\xc3\xa9", 2, true},          /* U+00E9 */
        {"\xe2\x82\xac", 3, true},      /* U+20AC */
        {"\xf0\x9f\x98\x80", 4, true},  /* U+1F600 */
        {"\xf4\x8f\xbf\xbf", 4, true},  /* U+10FFFF */
        {"a\0b", 3, true},              /* NUL is UTF-8 */
        {"\xc3", 1, false},             /* cut short */
        {"\xe2\x82", 2, false},         /* cut short */
        {"\x80", 1, false},             /* lone continuation */
        {"\xc0\xaf", 2, false},         /* overlong '/' */
        {"\xe0\x80\xaf", 3, false},     /* overlong */
        {"\xf0\x80\x80\xaf", 4, false}, /* overlong */
        {"\xed\xa0\x80", 3, false},     /* surrogate U+D800 */
        {"\xf4\x90\x80\x80", 4, false}, /* past U+10FFFF */
        {"\xff", 1, false},
        {"\xc3\x28", 2, false}, /* bad continuation */
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        assert_int_equal(policy_utf8_valid(cases[i].s, cases[i].len),
                         cases[i].ok);
    }
}

static void test_policy_partition_order_of_precedence(void **state)
{
    (void)state;
    const uint32_t none = POLICY_NO_PARTITION;
    /* Bound wins over given, given over key, key over round robin. */
    assert_int_equal(policy_partition(2, 1, "k", 1, 7, 4), 2);
    assert_int_equal(policy_partition(none, 1, "k", 1, 7, 4), 1);
    assert_int_equal(policy_partition(none, none, "k", 1, 7, 4),
                     policy_key_partition("k", 1, 4));
    assert_int_equal(policy_partition(none, none, NULL, 0, 7, 4), 3);
    /* Out of range stays out of range, for the caller to refuse. */
    assert_int_equal(policy_partition(9, none, NULL, 0, 0, 4), 9);
}

static void test_policy_key_partition_is_stable_and_spread(void **state)
{
    (void)state;
    unsigned hits[8] = {0};
    char key[16];
    /* FNV-1a of "a" is 0xaf63dc4c8601ec8c. */
    assert_int_equal(policy_key_partition("a", 1, 1000),
                     (uint32_t)(0xaf63dc4c8601ec8cull % 1000));
    for (int i = 0; i < 800; i++) {
        int len = snprintf(key, sizeof key, "user-%d", i);
        uint32_t p = policy_key_partition(key, (size_t)len, 8);
        assert_true(p < 8);
        assert_int_equal(p, policy_key_partition(key, (size_t)len, 8));
        hits[p]++;
    }
    for (int p = 0; p < 8; p++) {
        assert_in_range(hits[p], 60, 140);
    }
}

static void test_policy_member_order_puts_preferred_first_in_turn(void **state)
{
    (void)state;
    const uint32_t replicas[3] = {7, 8, 9};
    for (uint64_t gid = 1; gid <= 6; gid++) {
        uint32_t out[3];
        policy_member_order(gid, replicas, out);
        /* Brokers prefer members[gid % 3]: that is replicas[0]. */
        assert_int_equal(out[gid % 3], 7);
        assert_int_equal(out[(gid + 1) % 3], 8);
        assert_int_equal(out[(gid + 2) % 3], 9);
    }
}

static void test_routing_newer_term_wins(void **state)
{
    (void)state;
    struct routing *rt;
    assert_int_equal(routing_new(&rt), 0);
    assert_null(routing_get(rt, 5));
    /* A follower names leader 2 in term 3; the leader's own report of
     * the same term agrees; an old term's report changes nothing. */
    assert_int_equal(routing_report(rt, 5, 1, false, 2, 3, 10, 40, 100), 0);
    assert_int_equal(routing_get(rt, 5)->leader, 2);
    assert_int_equal(routing_report(rt, 5, 3, true, 0, 2, 12, 41, 110), 0);
    assert_int_equal(routing_get(rt, 5)->leader, 2);
    assert_int_equal(routing_get(rt, 5)->term, 3);
    /* The high watermark only rises, whoever reports it. */
    assert_int_equal(routing_get(rt, 5)->high_watermark, 41);
    assert_int_equal(routing_report(rt, 5, 2, true, 0, 3, 11, 39, 120), 0);
    assert_int_equal(routing_get(rt, 5)->high_watermark, 41);
    assert_int_equal(routing_get(rt, 5)->commit, 11);
    /* A new term with no leader yet forgets the old leader. */
    assert_int_equal(routing_report(rt, 5, 1, false, 0, 4, 11, 41, 130), 0);
    assert_int_equal(routing_get(rt, 5)->leader, 0);
    assert_int_equal(routing_report(rt, 5, 3, false, 1, 4, 11, 41, 140), 0);
    assert_int_equal(routing_get(rt, 5)->leader, 1);
    /* A 421 or a success overrides; a failure forgets that leader only. */
    assert_int_equal(routing_set_leader(rt, 5, 3, 150), 0);
    routing_drop_leader(rt, 5, 2);
    assert_int_equal(routing_get(rt, 5)->leader, 3);
    routing_drop_leader(rt, 5, 3);
    assert_int_equal(routing_get(rt, 5)->leader, 0);
    routing_free(rt);
}

/* A route takes a new version when it changes, and only then, so that a
 * follower copies what changed since its last copy. */
static void test_routing_versions_mark_changes(void **state)
{
    (void)state;
    struct routing *rt;
    assert_int_equal(routing_new(&rt), 0);
    assert_int_equal(routing_version(rt), 0);
    assert_int_equal(routing_report(rt, 5, 1, true, 0, 3, 10, 40, 100), 0);
    assert_int_equal(routing_report(rt, 6, 1, true, 0, 3, 10, 40, 100), 0);
    uint64_t v5 = routing_get(rt, 5)->version;
    uint64_t v6 = routing_get(rt, 6)->version;
    assert_true(v5 > 0 && v6 > v5);
    assert_int_equal(routing_version(rt), v6);
    /* The same report again, a lower watermark, an older term: nothing. */
    assert_int_equal(routing_report(rt, 5, 1, true, 0, 3, 10, 40, 200), 0);
    assert_int_equal(routing_raise(rt, 5, 39), 0);
    assert_int_equal(routing_report(rt, 5, 2, false, 2, 2, 9, 30, 210), 0);
    routing_drop_leader(rt, 5, 2);
    struct route same = {.group_id = 5,
                         .leader = 1,
                         .term = 3,
                         .high_watermark = 40,
                         .commit = 10};
    assert_int_equal(routing_merge(rt, &same, 220), 0);
    assert_int_equal(routing_get(rt, 5)->version, v5);
    assert_int_equal(routing_version(rt), v6);
    /* Each kind of change. */
    assert_int_equal(routing_raise(rt, 5, 41), 0);
    assert_int_equal(routing_get(rt, 5)->version, v6 + 1);
    assert_int_equal(routing_report(rt, 5, 1, true, 0, 3, 11, 41, 230), 0);
    assert_int_equal(routing_get(rt, 5)->version, v6 + 2);
    assert_int_equal(routing_set_leader(rt, 5, 2, 240), 0);
    assert_int_equal(routing_get(rt, 5)->version, v6 + 3);
    routing_drop_leader(rt, 5, 2);
    assert_int_equal(routing_get(rt, 5)->version, v6 + 4);
    struct route newer = {.group_id = 6, .leader = 3, .term = 4};
    assert_int_equal(routing_merge(rt, &newer, 250), 0);
    assert_int_equal(routing_get(rt, 6)->version, v6 + 5);
    assert_int_equal(routing_version(rt), v6 + 5);
    routing_free(rt);
}

static bool keep_even(void *data, uint64_t gid)
{
    (void)data;
    return gid % 2 == 0;
}

static void test_routing_sorted_merge_and_prune(void **state)
{
    (void)state;
    struct routing *rt;
    assert_int_equal(routing_new(&rt), 0);
    /* Inserted out of order, listed in group order. */
    for (uint64_t gid = 200; gid >= 1; gid--) {
        assert_int_equal(routing_raise(rt, gid * 7 % 201, gid), 0);
    }
    assert_int_equal(routing_count(rt), 200);
    for (size_t i = 1; i < routing_count(rt); i++) {
        assert_true(routing_at(rt, i - 1)->group_id <
                    routing_at(rt, i)->group_id);
    }
    assert_null(routing_at(rt, 200));
    /* A merged route of an older term does not replace the leader. */
    struct route r = {.group_id = 14,
                      .leader = 2,
                      .term = 5,
                      .high_watermark = 1000,
                      .commit = 9};
    assert_int_equal(routing_merge(rt, &r, 1), 0);
    assert_int_equal(routing_get(rt, 14)->leader, 2);
    r.leader = 3;
    r.term = 4;
    r.high_watermark = 10;
    assert_int_equal(routing_merge(rt, &r, 2), 0);
    assert_int_equal(routing_get(rt, 14)->leader, 2);
    assert_int_equal(routing_get(rt, 14)->high_watermark, 1000);
    routing_prune(rt, keep_even, NULL);
    assert_int_equal(routing_count(rt), 100);
    assert_non_null(routing_get(rt, 14));
    assert_null(routing_get(rt, 15));
    routing_free(rt);
    routing_free(NULL);
}

/* A broker's read answer: @n records up to @next, the given high
 * watermark and leader flag. */
static json_t *read_answer(unsigned n, uint64_t next, uint64_t hw, bool leader)
{
    json_t *recs = json_array();
    for (unsigned i = 0; i < n; i++) {
        json_array_append_new(
            recs, json_pack("{s:I,s:s}", "offset", (json_int_t)(next - n + i),
                            "value", "v"));
    }
    return json_pack("{s:o,s:I,s:I,s:b,s:I}", "records", recs, "next_offset",
                     (json_int_t)next, "high_watermark", (json_int_t)hw,
                     "leader", leader, "leader_id", (json_int_t)2);
}

/* Final: the confirmed leader's answer ("leader" true) with records, or
 * with none at or past the high watermark. Never final: a follower's
 * answer (an older broker's), one without a high watermark, and no
 * records below the high watermark (an older broker's leader with a gap)
 * whoever says it, since records were acknowledged there. */
static void test_policy_read_final(void **state)
{
    (void)state;
    static const struct {
        unsigned n;
        uint64_t next, hw;
        bool leader;
        uint64_t offset;
        bool final;
    } cases[] = {
        {3, 8, 10, true, 5, true},     /* records from the leader */
        {3, 8, 10, false, 5, false},   /* records from a follower */
        {0, 10, 10, true, 10, true},   /* the end of the partition */
        {0, 12, 10, true, 12, true},   /* past the end */
        {0, 5, 10, true, 5, false},    /* a gap at the offset */
        {0, 9, 10, true, 9, false},    /* the last record missing */
        {0, 10, 10, false, 10, false}, /* the end, says a follower */
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        json_t *a = read_answer(cases[i].n, cases[i].next, cases[i].hw,
                                cases[i].leader);
        assert_int_equal(policy_read_final(a, cases[i].offset), cases[i].final);
        json_decref(a);
    }
    json_t *a = json_pack("{s:[],s:b}", "records", "leader", 1);
    assert_false(policy_read_final(a, 0)); /* No high watermark. */
    json_decref(a);
    assert_false(policy_read_final(NULL, 0));
}

/* Forwarded consumes go on kept connections; a failure there says the
 * consume may have been sent, even a refused connect (libcurl's resend on
 * a new connection), and the forwards after it go on new connections until
 * one is answered; on a new connection a refused connect says not sent. */
static void test_policy_forward_kept_until_unanswered(void **state)
{
    (void)state;
    struct policy_forward pf = {0};
    assert_false(policy_forward_fresh(&pf));
    assert_false(policy_forward_end(&pf, false, true, false));
    assert_false(policy_forward_fresh(&pf));
    /* A kept connection that dies: sent, whatever libcurl reports. */
    assert_true(policy_forward_end(&pf, false, false, true));
    assert_true(policy_forward_fresh(&pf));
    assert_true(policy_forward_end(&pf, false, false, false));
    assert_true(policy_forward_fresh(&pf));
    /* New connections: a refused connect proves nothing was sent; any
     * other failure does not. */
    assert_false(policy_forward_end(&pf, true, false, true));
    assert_true(policy_forward_fresh(&pf));
    assert_true(policy_forward_end(&pf, true, false, false));
    assert_true(policy_forward_fresh(&pf));
    /* An answer, on either kind: kept connections again. */
    assert_false(policy_forward_end(&pf, true, true, false));
    assert_false(policy_forward_fresh(&pf));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_policy_utf8),
        cmocka_unit_test(test_policy_partition_order_of_precedence),
        cmocka_unit_test(test_policy_key_partition_is_stable_and_spread),
        cmocka_unit_test(test_policy_member_order_puts_preferred_first_in_turn),
        cmocka_unit_test(test_policy_read_final),
        cmocka_unit_test(test_policy_forward_kept_until_unanswered),
        cmocka_unit_test(test_routing_newer_term_wins),
        cmocka_unit_test(test_routing_versions_mark_changes),
        cmocka_unit_test(test_routing_sorted_merge_and_prune),
    };
    return cmocka_run_group_tests_name("policy", tests, NULL, NULL);
}

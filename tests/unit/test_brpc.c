/*
 * Unit tests of the broker-to-broker RPC bodies (broker/brpc.h): the FETCH
 * and MEMBERS requests round trip and refuse any other length, and a
 * MEMBERS reply gives its valid members in order, skips the others, and
 * says whether it lists this broker.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include "broker/brpc.h"
#include "rq_err.h"
#include "rq_wire.h"

static void test_brpc_fetch_round_trip(void **state)
{
    (void)state;
    uint8_t body[BRPC_FETCH_REQUEST + 1];
    struct brpc_fetch in = {UINT64_MAX - 1, 12345, 4u << 20};
    struct brpc_fetch out;
    brpc_fetch_encode(&in, body);
    assert_int_equal(brpc_fetch_decode(body, BRPC_FETCH_REQUEST, &out), 0);
    assert_true(out.group_id == in.group_id && out.offset == in.offset &&
                out.max_bytes == in.max_bytes);
    assert_int_equal(brpc_fetch_decode(body, BRPC_FETCH_REQUEST - 1, &out),
                     RQ_MALFORMED);
    assert_int_equal(brpc_fetch_decode(body, BRPC_FETCH_REQUEST + 1, &out),
                     RQ_MALFORMED);
}

static void test_brpc_members_round_trip(void **state)
{
    (void)state;
    uint8_t body[BRPC_MEMBERS_REQUEST];
    uint64_t gid = 0;
    brpc_members_encode(77, body);
    assert_int_equal(brpc_members_decode(body, sizeof body, &gid), 0);
    assert_true(gid == 77);
    assert_int_equal(brpc_members_decode(body, 0, &gid), RQ_MALFORMED);
    assert_int_equal(brpc_members_decode(body, 7, &gid), RQ_MALFORMED);
}

struct seen {
    uint64_t ids[8];
    size_t n;
};

static void on_member(void *data, const struct replica_member *m)
{
    struct seen *s = data;
    assert_true(s->n < 8);
    s->ids[s->n++] = m->id;
}

static int parse(const char *text, uint64_t self, struct brpc_members *out,
                 struct seen *s)
{
    memset(s, 0, sizeof *s);
    return brpc_members_parse((const uint8_t *)text, strlen(text), self, out,
                              on_member, s);
}

static void test_brpc_members_reply(void **state)
{
    (void)state;
    struct brpc_members r;
    struct seen s;
    const char *reply =
        "{\"conf_index\": 9, \"servers\": ["
        "{\"id\": 1, \"raft_addr\": \"h:1\", \"http_addr\": \"h:2\"},"
        "{\"id\": 2, \"raft_addr\": \"h:3\", \"http_addr\": null},"
        "{\"id\": 3, \"raft_addr\": \"h:5\", \"http_addr\": \"h:6\"}]}";

    assert_int_equal(parse(reply, 2, &r, &s), 0);
    assert_true(r.conf_index == 9);
    assert_true(r.lists_self); /* Listed, though not a valid member. */
    assert_int_equal(s.n, 2);
    assert_true(s.ids[0] == 1 && s.ids[1] == 3);
    assert_int_equal(parse(reply, 4, &r, &s), 0);
    assert_false(r.lists_self);
}

static void test_brpc_members_reply_malformed(void **state)
{
    (void)state;
    struct brpc_members r;
    struct seen s;
    static const char *const bad[] = {
        "",
        "[]",
        "{\"servers\": []}",
        "{\"conf_index\": \"9\", \"servers\": []}",
        "{\"conf_index\": 9, \"servers\": {}}",
        "{\"conf_index\": 9, \"servers\": [",
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        assert_int_equal(parse(bad[i], 1, &r, &s), RQ_MALFORMED);
        assert_int_equal(s.n, 0);
    }
    assert_int_equal(parse("{\"conf_index\": 0, \"servers\": []}", 1, &r, &s),
                     0);
    assert_false(r.lists_self);
}

/* COMMITS: requests and replies round-trip; a count that is not the
 * body's, or over the maximum, is malformed. */
static void test_brpc_commits(void **state)
{
    (void)state;
    uint64_t gids[3] = {1, 1ull << 40, 7};
    uint8_t buf[64];
    uint64_t got[BRPC_COMMITS_MAX];
    uint32_t n = 99;
    assert_int_equal(brpc_commits_request_size(3), 28);
    brpc_commits_request_encode(gids, 3, buf);
    assert_int_equal(brpc_commits_request_decode(buf, 28, got, &n), 0);
    assert_int_equal(n, 3);
    assert_memory_equal(got, gids, sizeof gids);
    assert_int_equal(brpc_commits_request_decode(buf, 27, got, &n),
                     RQ_MALFORMED);
    assert_int_equal(brpc_commits_request_decode(buf, 3, got, &n),
                     RQ_MALFORMED);
    brpc_commits_request_encode(gids, 0, buf);
    assert_int_equal(brpc_commits_request_decode(buf, 4, got, &n), 0);
    assert_int_equal(n, 0);
    uint8_t big[4];
    rq_wire_put_u32_at(big, BRPC_COMMITS_MAX + 1);
    assert_int_equal(brpc_commits_request_decode(big, 4, got, &n),
                     RQ_MALFORMED);

    struct brpc_commit c[2] = {{5, 1000}, {6, 0}};
    struct brpc_commit back[BRPC_COMMITS_MAX];
    assert_int_equal(brpc_commits_reply_size(2), 36);
    brpc_commits_reply_encode(c, 2, buf);
    assert_int_equal(brpc_commits_reply_decode(buf, 36, back, &n), 0);
    assert_int_equal(n, 2);
    assert_true(back[0].group_id == 5 && back[0].commit == 1000);
    assert_true(back[1].group_id == 6 && back[1].commit == 0);
    assert_int_equal(brpc_commits_reply_decode(buf, 35, back, &n),
                     RQ_MALFORMED);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_brpc_fetch_round_trip),
        cmocka_unit_test(test_brpc_members_round_trip),
        cmocka_unit_test(test_brpc_members_reply),
        cmocka_unit_test(test_brpc_members_reply_malformed),
        cmocka_unit_test(test_brpc_commits),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}

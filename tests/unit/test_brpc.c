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

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_brpc_fetch_round_trip),
        cmocka_unit_test(test_brpc_members_round_trip),
        cmocka_unit_test(test_brpc_members_reply),
        cmocka_unit_test(test_brpc_members_reply_malformed),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}

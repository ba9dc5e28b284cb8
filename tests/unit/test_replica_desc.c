/*
 * Unit tests of replica descriptors: what POST /internal/replicas accepts,
 * the reason it gives for what it refuses, the JSON written to
 * replica.json, and the preferred leader.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "broker/replica_desc.h"
#include "rq_err.h"

#define MEMBERS                                                            \
    "[{\"id\":1,\"raft_addr\":\"10.0.0.1:7001\",\"http_addr\":\"10.0.0.1:" \
    "8001\"},"                                                             \
    "{\"id\":2,\"raft_addr\":\"broker-2:7001\",\"http_addr\":\"broker-2:"  \
    "8001\"},"                                                             \
    "{\"id\":3,\"raft_addr\":\"[::1]:7003\",\"http_addr\":\"[::1]:8003\"}]"

static int parse_text(const char *text, struct replica_desc *d, char *why,
                      size_t whyn)
{
    json_error_t err;
    json_t *o = json_loads(text, 0, &err);
    assert_non_null(o);
    int rv = replica_desc_parse(o, d, why, whyn);
    json_decref(o);
    return rv;
}

static void test_replica_desc_parse_accepts_a_full_descriptor(void **state)
{
    (void)state;
    struct replica_desc d;
    char why[256] = "";

    assert_int_equal(
        parse_text("{\"topic\":\"orders.v2_x-y\",\"partition_id\":0,"
                   "\"group_id\":7,\"members\":" MEMBERS ",\"bootstrap\":true}",
                   &d, why, sizeof why),
        0);
    assert_string_equal(d.topic, "orders.v2_x-y");
    assert_int_equal(d.partition_id, 0);
    assert_int_equal(d.group_id, 7);
    assert_int_equal(d.n_members, 3);
    assert_int_equal(d.members[1].id, 2);
    assert_string_equal(d.members[1].raft_addr, "broker-2:7001");
    assert_string_equal(d.members[2].http_addr, "[::1]:8003");
    assert_true(d.bootstrap);
    assert_non_null(replica_desc_member(&d, 3));
    assert_null(replica_desc_member(&d, 4));

    /* bootstrap defaults to false: joining is the safe default. */
    assert_int_equal(parse_text("{\"topic\":\"t\",\"partition_id\":4,"
                                "\"group_id\":1,\"members\":" MEMBERS "}",
                                &d, why, sizeof why),
                     0);
    assert_false(d.bootstrap);
}

static void test_replica_desc_parse_rejects_with_a_reason(void **state)
{
    (void)state;
    static const struct {
        const char *json;
        const char *why;
    } cases[] = {
        {"[]", "must be a JSON object"},
        {"{\"partition_id\":0,\"group_id\":1,\"members\":" MEMBERS "}",
         "'topic'"},
        {"{\"topic\":\"a/"
         "b\",\"partition_id\":0,\"group_id\":1,\"members\":" MEMBERS "}",
         "'topic'"},
        {"{\"topic\":\"..\",\"partition_id\":0,\"group_id\":1,"
         "\"members\":" MEMBERS "}",
         "'topic'"},
        {"{\"topic\":\"t\",\"group_id\":1,\"members\":" MEMBERS "}",
         "'partition_id' is missing"},
        {"{\"topic\":\"t\",\"partition_id\":-1,\"group_id\":1,"
         "\"members\":" MEMBERS "}",
         "'partition_id' must be a non-negative integer"},
        {"{\"topic\":\"t\",\"partition_id\":1.5,\"group_id\":1,"
         "\"members\":" MEMBERS "}",
         "'partition_id' must be a non-negative integer"},
        {"{\"topic\":\"t\",\"partition_id\":0,\"group_id\":0,"
         "\"members\":" MEMBERS "}",
         "'group_id' must be a positive integer"},
        {"{\"topic\":\"t\",\"partition_id\":0,\"group_id\":\"1\","
         "\"members\":" MEMBERS "}",
         "'group_id' must be a positive integer"},
        {"{\"topic\":\"t\",\"partition_id\":0,\"group_id\":1,\"members\":[]}",
         "'members' must be a list of 1 to 5"},
        {"{\"topic\":\"t\",\"partition_id\":0,\"group_id\":1,\"members\":[1]}",
         "each member must be an object"},
        {"{\"topic\":\"t\",\"partition_id\":0,\"group_id\":1,\"members\":"
         "[{\"id\":1,\"raft_addr\":\"h:1\",\"http_addr\":\"h:2\"},"
         "{\"id\":1,\"raft_addr\":\"h:3\",\"http_addr\":\"h:4\"}]}",
         "member id 1 appears twice"},
        {"{\"topic\":\"t\",\"partition_id\":0,\"group_id\":1,\"members\":"
         "[{\"id\":1,\"raft_addr\":\"nohost\",\"http_addr\":\"h:2\"}]}",
         "'raft_addr' nohost is not a HOST:PORT"},
        {"{\"topic\":\"t\",\"partition_id\":0,\"group_id\":1,\"members\":"
         "[{\"id\":1,\"raft_addr\":\"h:1\"}]}",
         "'http_addr' must be"},
        {"{\"topic\":\"t\",\"partition_id\":0,\"group_id\":1,"
         "\"members\":" MEMBERS ",\"bootstrap\":1}",
         "'bootstrap' must be true or false"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        struct replica_desc d;
        char why[256] = "";
        json_error_t err;
        json_t *o = json_loads(cases[i].json, 0, &err);
        assert_non_null(o);
        assert_int_equal(replica_desc_parse(o, &d, why, sizeof why),
                         RQ_INVALID);
        json_decref(o);
        if (strstr(why, cases[i].why) == NULL) {
            fail_msg("case %zu: reason '%s' lacks '%s'", i, why, cases[i].why);
        }
    }
}

static void test_replica_desc_json_round_trips(void **state)
{
    (void)state;
    struct replica_desc a;
    struct replica_desc b;
    char why[256];

    assert_int_equal(
        parse_text("{\"topic\":\"t\",\"partition_id\":3,\"group_id\":12,"
                   "\"members\":" MEMBERS ",\"bootstrap\":true}",
                   &a, why, sizeof why),
        0);
    json_t *full = replica_desc_json(&a, false);
    assert_int_equal(replica_desc_parse(full, &b, why, sizeof why), 0);
    assert_true(replica_desc_same(&a, &b));
    assert_true(b.bootstrap);
    json_decref(full);

    /* The brief form, for listings, leaves bootstrap out. */
    json_t *brief = replica_desc_json(&a, true);
    assert_null(json_object_get(brief, "bootstrap"));
    assert_int_equal(replica_desc_parse(brief, &b, why, sizeof why), 0);
    assert_true(replica_desc_same(&a, &b));
    assert_false(b.bootstrap);
    json_decref(brief);
}

static void test_replica_desc_same_compares_members_in_order(void **state)
{
    (void)state;
    struct replica_desc a;
    struct replica_desc b;
    char why[256];
    assert_int_equal(parse_text("{\"topic\":\"t\",\"partition_id\":0,"
                                "\"group_id\":1,\"members\":" MEMBERS "}",
                                &a, why, sizeof why),
                     0);
    b = a;
    assert_true(replica_desc_same(&a, &b));
    b.bootstrap = !a.bootstrap; /* Not part of what the replica is. */
    assert_true(replica_desc_same(&a, &b));
    b.members[0] = a.members[1];
    b.members[1] = a.members[0];
    assert_false(replica_desc_same(&a, &b)); /* Order picks the leader. */
    b = a;
    strcpy(b.members[2].http_addr, "[::1]:9999");
    assert_false(replica_desc_same(&a, &b));
    b = a;
    b.partition_id = 1;
    assert_false(replica_desc_same(&a, &b));
}

static void test_replica_desc_preferred_rotates_over_members(void **state)
{
    (void)state;
    struct replica_desc d;
    char why[256];
    assert_int_equal(parse_text("{\"topic\":\"t\",\"partition_id\":0,"
                                "\"group_id\":1,\"members\":" MEMBERS "}",
                                &d, why, sizeof why),
                     0);
    uint64_t seen[4] = {0};
    for (uint64_t g = 30; g < 36; g++) {
        d.group_id = g;
        uint64_t p = replica_desc_preferred(&d);
        assert_int_equal(p, d.members[g % 3].id);
        seen[p]++;
    }
    assert_int_equal(seen[1], 2);
    assert_int_equal(seen[2], 2);
    assert_int_equal(seen[3], 2);
}

static void test_replica_desc_preferred_leader_given_wins(void **state)
{
    (void)state;
    struct replica_desc a;
    struct replica_desc b;
    char why[256] = "";

    /* Group 1 would rotate to members[1] (broker 2); broker 3 is given. */
    assert_int_equal(parse_text("{\"topic\":\"t\",\"partition_id\":0,"
                                "\"group_id\":1,\"members\":" MEMBERS
                                ",\"preferred_leader\":3}",
                                &a, why, sizeof why),
                     0);
    assert_int_equal(a.preferred_leader, 3);
    assert_int_equal(replica_desc_preferred(&a), 3);

    /* It survives replica.json, and is not what makes two descriptors
     * the same replica. */
    json_t *full = replica_desc_json(&a, false);
    assert_int_equal(
        json_integer_value(json_object_get(full, "preferred_leader")), 3);
    assert_int_equal(replica_desc_parse(full, &b, why, sizeof why), 0);
    json_decref(full);
    assert_int_equal(b.preferred_leader, 3);
    b.preferred_leader = 1;
    assert_true(replica_desc_same(&a, &b));
    b.preferred_leader = 0;
    assert_int_equal(replica_desc_preferred(&b), 2);
    full = replica_desc_json(&b, false);
    assert_null(json_object_get(full, "preferred_leader"));
    json_decref(full);

    /* Only a positive id. */
    for (int i = 0; i < 3; i++) {
        static const char *const bad[] = {"0", "-2", "\"3\""};
        char text[1024];
        snprintf(text, sizeof text,
                 "{\"topic\":\"t\",\"partition_id\":0,\"group_id\":1,"
                 "\"members\":" MEMBERS ",\"preferred_leader\":%s}",
                 bad[i]);
        why[0] = '\0';
        assert_int_equal(parse_text(text, &a, why, sizeof why), RQ_INVALID);
        assert_non_null(strstr(why, "'preferred_leader'"));
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_replica_desc_parse_accepts_a_full_descriptor),
        cmocka_unit_test(test_replica_desc_parse_rejects_with_a_reason),
        cmocka_unit_test(test_replica_desc_json_round_trips),
        cmocka_unit_test(test_replica_desc_same_compares_members_in_order),
        cmocka_unit_test(test_replica_desc_preferred_rotates_over_members),
        cmocka_unit_test(test_replica_desc_preferred_leader_given_wins),
    };
    return cmocka_run_group_tests_name("replica_desc", tests, NULL, NULL);
}

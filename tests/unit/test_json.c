/*
 * Unit tests of shared/rq_json.h: reading a node id out of a JSON answer.
 * (The body rules are fuzzed: tests/fuzz/fuzz_json.c.)
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>
#include <jansson.h>

#include "rq_json.h"

static uint32_t id_of(const char *text)
{
    json_error_t err;
    json_t *o = json_loads(text, JSON_DECODE_ANY, &err);
    assert_non_null(o);
    uint32_t id = rq_json_id(o, "leader_id");
    json_decref(o);
    return id;
}

static void test_rq_json_id_reads_valid_ids(void **state)
{
    (void)state;
    assert_int_equal(id_of("{\"leader_id\": 1}"), 1);
    assert_int_equal(id_of("{\"leader_id\": 3, \"message\": \"x\"}"), 3);
    assert_int_equal(id_of("{\"leader_id\": 4294967295}"), UINT32_MAX);
}

static void test_rq_json_id_refuses_the_rest(void **state)
{
    (void)state;
    assert_int_equal(id_of("{}"), 0);
    assert_int_equal(id_of("{\"leader_id\": 0}"), 0);
    assert_int_equal(id_of("{\"leader_id\": -1}"), 0);
    assert_int_equal(id_of("{\"leader_id\": 4294967296}"), 0);
    assert_int_equal(id_of("{\"leader_id\": null}"), 0);
    assert_int_equal(id_of("{\"leader_id\": \"2\"}"), 0);
    assert_int_equal(id_of("{\"leader_id\": 2.0}"), 0);
    assert_int_equal(id_of("[2]"), 0);
    assert_int_equal(rq_json_id(NULL, "leader_id"), 0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_rq_json_id_reads_valid_ids),
        cmocka_unit_test(test_rq_json_id_refuses_the_rest),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}

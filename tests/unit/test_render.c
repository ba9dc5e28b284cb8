/*
 * Unit tests of what the client prints for people: the server's answers
 * (bodies as the managers send them) turned into lines and tables, and
 * malformed answers refused without printing half a table.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "cli/render.h"
#include "rq_err.h"

struct out {
    char *text;
    size_t len;
    FILE *f;
};

static void out_open(struct out *o)
{
    o->text = NULL;
    o->len = 0;
    o->f = open_memstream(&o->text, &o->len);
    assert_non_null(o->f);
}

/* Closes the stream; the text stays until out_free(). */
static const char *out_done(struct out *o)
{
    fclose(o->f);
    return o->text;
}

static json_t *parse(const char *text)
{
    json_error_t e;
    json_t *j = json_loads(text, 0, &e);
    if (j == NULL) {
        fail_msg("bad test JSON: %s", e.text);
    }
    return j;
}

static void test_render_topics_one_per_line(void **state)
{
    (void)state;
    struct out o;
    json_t *b = parse("{\"status\":\"success\",\"topics\":[\"a\",\"b.c\"]}");
    out_open(&o);
    assert_int_equal(render_topics(b, o.f), 0);
    assert_string_equal(out_done(&o), "a\nb.c\n");
    free(o.text);
    json_decref(b);

    b = parse("{\"topics\":[\"a\",3]}");
    out_open(&o);
    assert_int_equal(render_topics(b, o.f), RQ_MALFORMED);
    assert_string_equal(out_done(&o), "");
    free(o.text);
    json_decref(b);
}

static void test_render_topic_partitions(void **state)
{
    (void)state;
    struct out o;
    json_t *b = parse(
        "{\"topic\":\"demo\",\"number_of_partitions\":2,\"created_ms\":1,"
        "\"partitions\":["
        "{\"partition_id\":0,\"group_id\":1,\"epoch\":0,\"replicas\":[1,2,3],"
        "\"preferred_leader\":1,\"leader\":2,\"commit\":14,"
        "\"high_watermark\":1203,\"replica_status\":["
        "{\"broker_id\":1,\"role\":\"follower\",\"commit\":12,"
        "\"next_offset\":3,\"lag\":2},"
        "{\"broker_id\":2,\"role\":\"leader\",\"commit\":14,"
        "\"next_offset\":3,\"lag\":0},"
        "{\"broker_id\":3,\"role\":null,\"commit\":null,"
        "\"next_offset\":null,\"lag\":null}]},"
        "{\"partition_id\":1,\"group_id\":2,\"epoch\":0,\"replicas\":[2,3,1],"
        "\"preferred_leader\":2,\"leader\":null,\"commit\":0,"
        "\"high_watermark\":0,\"replica_status\":["
        "{\"broker_id\":2,\"role\":null,\"commit\":null,"
        "\"next_offset\":null,\"lag\":null}]}],"
        "\"status\":\"success\"}");
    out_open(&o);
    assert_int_equal(render_topic(b, o.f), 0);
    assert_string_equal(
        out_done(&o),
        "topic demo: 2 partitions\n"
        "PARTITION  LEADER  REPLICAS  IN-SYNC  HIGH-WATERMARK  COMMIT  "
        "MAX-LAG\n"
        "        0       2  1,2,3     1/3                1203      14        "
        "2\n"
        "        1       -  2,3,1     0/1                   0       0        "
        "-\n");
    free(o.text);
    json_decref(b);

    /* A replica list that is not integers: refused, nothing printed. */
    b = parse(
        "{\"topic\":\"t\",\"partitions\":[{\"partition_id\":0,"
        "\"leader\":1,\"replicas\":[1,\"x\"],\"high_watermark\":0,"
        "\"commit\":0,\"replica_status\":[]}]}");
    out_open(&o);
    assert_int_equal(render_topic(b, o.f), RQ_MALFORMED);
    assert_string_equal(out_done(&o), "");
    free(o.text);
    json_decref(b);
}

static void test_render_moves_table(void **state)
{
    (void)state;
    struct out o;
    json_t *b = parse(
        "{\"moves\":[{\"group_id\":12,\"topic\":\"orders\","
        "\"partition_id\":3,\"from\":1,\"to\":4,\"kind\":\"rebalance\","
        "\"step\":\"add\",\"age_ms\":1500}],\"status\":\"success\"}");
    out_open(&o);
    assert_int_equal(render_moves(b, o.f), 0);
    assert_string_equal(out_done(&o),
                        "GROUP  TOPIC   PARTITION  KIND       FROM  TO  STEP  "
                        " AGE\n"
                        "   12  orders          3  rebalance     1   4  add   "
                        "1.5s\n");
    free(o.text);
    json_decref(b);
    b = parse("{\"moves\":[],\"status\":\"success\"}");
    out_open(&o);
    assert_int_equal(render_moves(b, o.f), 0);
    assert_string_equal(out_done(&o), "no moves under way\n");
    free(o.text);
    json_decref(b);
    b = parse("{\"moves\":[{\"group_id\":1}]}");
    out_open(&o);
    assert_int_equal(render_moves(b, o.f), RQ_MALFORMED);
    assert_string_equal(out_done(&o), "");
    free(o.text);
    json_decref(b);
}

static void test_render_brokers_table(void **state)
{
    (void)state;
    struct out o;
    json_t *b = parse(
        "{\"brokers\":["
        "{\"id\":1,\"raft_addr\":\"127.0.0.1:9540\",\"http_addr\":"
        "\"127.0.0.1:9520\",\"state\":\"alive\",\"heartbeat_age_ms\":412,"
        "\"partitions\":3,\"preferred_leader_of\":1,\"leader_of\":1,"
        "\"hosted\":3,\"quarantined\":[40,41]},"
        "{\"id\":12,\"raft_addr\":\"127.0.0.1:9551\",\"http_addr\":"
        "\"127.0.0.1:9531\",\"state\":\"dead\",\"heartbeat_age_ms\":null,"
        "\"partitions\":0,\"preferred_leader_of\":0,\"leader_of\":null,"
        "\"hosted\":null}],\"status\":\"success\"}");
    out_open(&o);
    assert_int_equal(render_brokers(b, o.f), 0);
    assert_string_equal(
        out_done(&o),
        "ID  STATE  HTTP            RAFT            HEARTBEAT  PARTITIONS  "
        "LEADER-OF  QUARANTINED\n"
        " 1  alive  127.0.0.1:9520  127.0.0.1:9540      412ms           3  "
        "        1  40,41\n"
        "12  dead   127.0.0.1:9531  127.0.0.1:9551          -           0  "
        "        -  -\n");
    free(o.text);
    json_decref(b);

    b = parse("{\"brokers\":[{\"id\":1}]}");
    out_open(&o);
    assert_int_equal(render_brokers(b, o.f), RQ_MALFORMED);
    assert_string_equal(out_done(&o), "");
    free(o.text);
    json_decref(b);
}

static void test_render_tokens_table(void **state)
{
    (void)state;
    struct out o;
    json_t *b = parse(
        "{\"tokens\":["
        "{\"id\":1,\"name\":\"billing\",\"grants\":[\"produce:orders.*\","
        "\"consume:orders.*\"],\"created_ms\":1780000000123},"
        "{\"id\":12,\"name\":\"ops\",\"grants\":[\"admin\"],"
        "\"created_ms\":0}],\"status\":\"success\"}");
    out_open(&o);
    assert_int_equal(render_tokens(b, o.f), 0);
    assert_string_equal(
        out_done(&o),
        "ID  NAME     GRANTS                             CREATED\n"
        " 1  billing  produce:orders.*,consume:orders.*  2026-05-28T20:26:40Z\n"
        "12  ops      admin                              "
        "1970-01-01T00:00:00Z\n");
    free(o.text);
    json_decref(b);

    /* Never a token or hash to print, and a bad shape prints nothing. */
    b = parse(
        "{\"tokens\":[{\"id\":1,\"name\":\"x\",\"grants\":\"admin\","
        "\"created_ms\":0}]}");
    out_open(&o);
    assert_int_equal(render_tokens(b, o.f), RQ_MALFORMED);
    assert_string_equal(out_done(&o), "");
    free(o.text);
    json_decref(b);
}

static void test_render_managers_with_unreachable_one(void **state)
{
    (void)state;
    struct out o;
    json_t *list = parse(
        "{\"managers\":["
        "{\"id\":1,\"raft_addr\":\"h:9510\",\"http_addr\":\"h:9500\","
        "\"role\":\"follower\"},"
        "{\"id\":2,\"raft_addr\":\"h:9511\",\"http_addr\":\"h:9501\","
        "\"role\":\"leader\"},"
        "{\"id\":3,\"raft_addr\":\"h:9512\",\"http_addr\":null,"
        "\"role\":\"follower\"}],"
        "\"leader\":2,\"term\":4,\"self\":1,\"commit\":40,\"applied\":40}");
    json_t *s1 = parse(
        "{\"managers\":[],\"leader\":2,\"term\":4,\"self\":1,"
        "\"commit\":40,\"applied\":39}");
    json_t *s2 = parse(
        "{\"managers\":[],\"leader\":2,\"term\":4,\"self\":2,"
        "\"commit\":41,\"applied\":41}");
    struct render_manager views[] = {{s1, true}, {s2, false}, {NULL, false}};
    out_open(&o);
    assert_int_equal(render_managers(list, views, 3, o.f), 0);
    assert_string_equal(
        out_done(&o),
        "leader: manager 2 (term 4)\n"
        "ID  ROLE         HTTP    RAFT    TERM  COMMIT  APPLIED  READY\n"
        " 1  follower     h:9500  h:9510     4      40       39  yes\n"
        " 2  leader       h:9501  h:9511     4      41       41  no\n"
        " 3  unreachable  -       h:9512     -       -        -  -\n");
    free(o.text);

    /* The roster and the views must agree in number. */
    out_open(&o);
    assert_int_equal(render_managers(list, views, 2, o.f), RQ_MALFORMED);
    assert_string_equal(out_done(&o), "");
    free(o.text);
    json_decref(list);
    json_decref(s1);
    json_decref(s2);

    list = parse("{\"managers\":[],\"leader\":null,\"term\":7}");
    out_open(&o);
    assert_int_equal(render_managers(list, NULL, 0, o.f), 0);
    assert_non_null(strstr(out_done(&o), "leader: none known (term 7)\n"));
    free(o.text);
    json_decref(list);
}

static void test_render_offsets_and_records(void **state)
{
    (void)state;
    struct out o;
    uint64_t n = 99;
    json_t *b = parse(
        "{\"offsets\":[{\"partition_id\":0,\"offset\":4},"
        "{\"partition_id\":2,\"offset\":0}]}");
    out_open(&o);
    assert_int_equal(render_offsets(b, o.f), 0);
    assert_string_equal(out_done(&o),
                        "partition 0 offset 4\npartition 2 offset 0\n");
    free(o.text);
    json_decref(b);

    /* Values are written whole: an embedded NUL is kept, not cut. */
    b = json_pack("{s:[{s:I,s:s},{s:I,s:s%}],s:I}", "records", "offset",
                  (json_int_t)0, "value", "hello", "offset", (json_int_t)1,
                  "value", "a\0b", (size_t)3, "next_offset", (json_int_t)2);
    out_open(&o);
    assert_int_equal(render_records(b, o.f, &n), 0);
    out_done(&o);
    assert_int_equal(n, 2);
    assert_int_equal(o.len, 10);
    assert_memory_equal(o.text, "hello\na\0b\n", 10);
    free(o.text);
    json_decref(b);

    b = parse("{\"records\":[{\"offset\":0,\"value\":null}]}");
    out_open(&o);
    assert_int_equal(render_records(b, o.f, &n), RQ_MALFORMED);
    assert_string_equal(out_done(&o), "");
    assert_int_equal(n, 0);
    free(o.text);
    json_decref(b);
}

static void test_render_formats(void **state)
{
    (void)state;
    char why[128];
    struct out o;
    uint64_t n = 0;
    /* Templates and their mistakes. */
    assert_int_equal(render_format_check("json", why, sizeof why), 0);
    assert_int_equal(
        render_format_check("%p:%o %k=%v @%t %%\\n\\t\\\\", why, sizeof why),
        0);
    assert_int_equal(render_format_check("%x", why, sizeof why), RQ_INVALID);
    assert_non_null(strstr(why, "'%x'"));
    assert_int_equal(render_format_check("value %", why, sizeof why),
                     RQ_INVALID);
    assert_int_equal(render_format_check("\\q", why, sizeof why), RQ_INVALID);
    assert_non_null(strstr(why, "\\q"));

    json_t *b = parse(
        "{\"records\":[{\"offset\":7,\"value\":\"hi\",\"key\":\"k1\","
        "\"timestamp_ms\":1700000000000},"
        "{\"offset\":8,\"value\":\"a%b\",\"key\":null,"
        "\"timestamp_ms\":1700000000001}]}");
    out_open(&o);
    assert_int_equal(
        render_records_as(b, "%p:%o [%k] %v %t%%\\t|\\n", 3, o.f, &n), 0);
    assert_int_equal(n, 2);
    assert_string_equal(out_done(&o),
                        "3:7 [k1] hi 1700000000000%\t|\n"
                        "3:8 [] a%b 1700000000001%\t|\n");
    free(o.text);
    out_open(&o);
    assert_int_equal(render_records_as(b, "json", 3, o.f, &n), 0);
    assert_string_equal(out_done(&o),
                        "{\"partition_id\":3,\"offset\":7,\"key\":\"k1\","
                        "\"timestamp_ms\":1700000000000,\"value\":\"hi\"}\n"
                        "{\"partition_id\":3,\"offset\":8,\"key\":null,"
                        "\"timestamp_ms\":1700000000001,\"value\":\"a%b\"}\n");
    free(o.text);
    /* No format: the values, as render_records(). */
    out_open(&o);
    assert_int_equal(render_records_as(b, NULL, 3, o.f, &n), 0);
    assert_string_equal(out_done(&o), "hi\na%b\n");
    free(o.text);
    json_decref(b);

    /* A group's record names its partition; a consume's has no key. */
    b = parse("{\"partition_id\":5,\"offset\":1,\"value\":\"v\"}");
    out_open(&o);
    render_record_as(b, "%p/%o/%k/%t/%v\\n", 0, o.f);
    render_record_as(b, "json", 0, o.f);
    assert_string_equal(out_done(&o),
                        "5/1///v\n"
                        "{\"partition_id\":5,\"offset\":1,\"key\":null,"
                        "\"timestamp_ms\":null,\"value\":\"v\"}\n");
    free(o.text);
    json_decref(b);
}

static void test_render_age(void **state)
{
    (void)state;
    char s[32];
    render_age(0, s, sizeof s);
    assert_string_equal(s, "0ms");
    render_age(999, s, sizeof s);
    assert_string_equal(s, "999ms");
    render_age(1000, s, sizeof s);
    assert_string_equal(s, "1.0s");
    render_age(61234, s, sizeof s);
    assert_string_equal(s, "61.2s");
    render_age(3600000, s, sizeof s);
    assert_string_equal(s, "3600s");
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_render_topics_one_per_line),
        cmocka_unit_test(test_render_topic_partitions),
        cmocka_unit_test(test_render_brokers_table),
        cmocka_unit_test(test_render_moves_table),
        cmocka_unit_test(test_render_tokens_table),
        cmocka_unit_test(test_render_managers_with_unreachable_one),
        cmocka_unit_test(test_render_offsets_and_records),
        cmocka_unit_test(test_render_formats),
        cmocka_unit_test(test_render_age),
    };
    return cmocka_run_group_tests_name("render", tests, NULL, NULL);
}

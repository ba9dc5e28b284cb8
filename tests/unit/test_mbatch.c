/*
 * Unit tests of the batch entry's codec (mbatch.h): what is added comes
 * back in order and counted, and every malformed batch (cut short, empty,
 * too many commands, bytes after the last, a batch inside a batch, a
 * count that does not match) is refused with a reason, never read out of
 * bounds.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include "manager/mbatch.h"
#include "manager/mcmd.h"
#include "rq_err.h"

static void build(struct rq_buf *b, size_t n)
{
    rq_buf_init(b);
    mbatch_begin(b, 123, 0xabcdef);
    for (size_t i = 0; i < n; i++) {
        uint8_t cmd[8] = {MCMD_VERSION, MCMD_TOPIC_DELETE, (uint8_t)i};
        mbatch_add(b, cmd, 3 + i % 5);
    }
    assert_int_equal(b->err, 0);
}

static void test_mbatch_round_trip(void **state)
{
    (void)state;
    struct rq_buf b;
    struct mbatch d;
    char why[128];
    const uint8_t *cmd;
    size_t len, i = 0;

    build(&b, 5);
    assert_true(mbatch_is(b.base, b.len));
    assert_int_equal(mbatch_decode(b.base, b.len, &d, why, sizeof why), 0);
    assert_int_equal(d.n, 5);
    assert_true(d.nonce == 0xabcdef);
    while (mbatch_next(&d, &cmd, &len)) {
        assert_int_equal(len, 3 + i % 5);
        assert_int_equal(cmd[0], MCMD_VERSION);
        assert_int_equal(cmd[2], i);
        i++;
    }
    assert_int_equal(i, 5);
    rq_buf_close(&b);
}

static void assert_malformed(const uint8_t *p, size_t len, const char *why_has)
{
    struct mbatch d;
    char why[128] = "";
    assert_int_equal(mbatch_decode(p, len, &d, why, sizeof why), RQ_MALFORMED);
    assert_non_null(strstr(why, why_has));
}

static void test_mbatch_refuses_what_is_not_one(void **state)
{
    (void)state;
    struct rq_buf b;
    uint8_t cmd[4] = {MCMD_VERSION, MCMD_TOPIC_DELETE, 0, 0};

    /* An ordinary command is not a batch. */
    assert_false(mbatch_is(cmd, sizeof cmd));
    assert_malformed(cmd, sizeof cmd, "not a batch");

    /* Every cut of a good batch is refused. */
    build(&b, 3);
    for (size_t len = 0; len < b.len; len++) {
        struct mbatch d;
        char why[128];
        assert_int_equal(mbatch_decode(b.base, len, &d, why, sizeof why),
                         RQ_MALFORMED);
    }
    assert_malformed(b.base, b.len - 1, "cut short");

    /* Bytes after the last command. */
    rq_buf_put_u8(&b, 0);
    assert_malformed(b.base, b.len, "after the batch");
    rq_buf_close(&b);

    /* No commands. */
    rq_buf_init(&b);
    mbatch_begin(&b, 0, 1);
    assert_malformed(b.base, b.len, "a batch of 0");
    rq_buf_close(&b);

    /* More than MBATCH_MAX_N. */
    build(&b, MBATCH_MAX_N + 1);
    assert_malformed(b.base, b.len, "a batch of 257");
    rq_buf_close(&b);

    /* A batch inside a batch. */
    struct rq_buf inner;
    build(&inner, 1);
    rq_buf_init(&b);
    mbatch_begin(&b, 0, 1);
    mbatch_add(&b, cmd, sizeof cmd);
    mbatch_add(&b, inner.base, inner.len);
    assert_malformed(b.base, b.len, "command 2 of 2 is itself a batch");
    rq_buf_close(&b);
    rq_buf_close(&inner);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_mbatch_round_trip),
        cmocka_unit_test(test_mbatch_refuses_what_is_not_one),
    };
    return cmocka_run_group_tests_name("mbatch", tests, NULL, NULL);
}

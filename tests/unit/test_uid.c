/*
 * Unit tests of the cluster uid's text and file (rq_uid.h).
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cmocka.h>

#include "rq_err.h"
#include "rq_uid.h"
#include "unit_util.h"

static int setup(void **state)
{
    char *dir = strdup("/tmp/rq-test-uid-XXXXXX");
    if (dir == NULL || mkdtemp(dir) == NULL) {
        free(dir);
        return -1;
    }
    *state = dir;
    return 0;
}

static int teardown(void **state)
{
    rm_tree(*state);
    free(*state);
    return 0;
}

static void write_file(const char *path, const char *text)
{
    FILE *f = fopen(path, "w");
    assert_non_null(f);
    assert_int_equal(fputs(text, f) >= 0, 1);
    fclose(f);
}

static void test_uid_text_round_trips(void **state)
{
    (void)state;
    char text[RQ_UID_TEXT];
    uint64_t v = 0;
    rq_uid_format(0x00000000000000abull, text);
    assert_string_equal(text, "00000000000000ab");
    assert_int_equal(rq_uid_parse(text, &v), 0);
    assert_true(v == 0xab);
    rq_uid_format(UINT64_MAX, text);
    assert_string_equal(text, "ffffffffffffffff");
    assert_int_equal(rq_uid_parse("FFFFFFFFFFFFFFFF", &v), 0);
    assert_true(v == UINT64_MAX);

    /* Exactly 16 hexadecimal digits, never 0. */
    static const char *const bad[] = {
        "",
        "abc",
        "00000000000000ab0",
        "0000000000000ab",
        "000000000000000g",
        "0000000000000000",
        " 00000000000000a",
        "-000000000000001",
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        v = 7;
        assert_int_equal(rq_uid_parse(bad[i], &v), RQ_INVALID);
        assert_true(v == 7);
    }
    assert_int_equal(rq_uid_parse(NULL, &v), RQ_INVALID);
}

static void test_uid_file_saves_and_loads(void **state)
{
    char path[512];
    char tmp[600];
    char why[256] = "";
    uint64_t v = 0;
    struct stat st;
    snprintf(path, sizeof path, "%s/cluster_uid", (char *)*state);

    assert_int_equal(rq_uid_load(path, &v, why, sizeof why), RQ_NOTFOUND);
    assert_int_equal(rq_uid_save(path, 0x1234abcd5678ef90ull, why, sizeof why),
                     0);
    assert_int_equal(rq_uid_load(path, &v, why, sizeof why), 0);
    assert_true(v == 0x1234abcd5678ef90ull);
    /* No temporary file is left behind. */
    snprintf(tmp, sizeof tmp, "%s.tmp", path);
    assert_int_equal(stat(tmp, &st), -1);

    /* Without its newline it still reads. */
    write_file(path, "1234abcd5678ef90");
    assert_int_equal(rq_uid_load(path, &v, why, sizeof why), 0);

    /* A damaged file is an error, never taken for a missing one. */
    static const char *const damaged[] = {"", "1234", "1234abcd5678ef90\n\n",
                                          "zzzzabcd5678ef90\n"};
    for (size_t i = 0; i < sizeof damaged / sizeof damaged[0]; i++) {
        write_file(path, damaged[i]);
        why[0] = '\0';
        assert_int_equal(rq_uid_load(path, &v, why, sizeof why), RQ_IO);
        assert_non_null(strstr(why, "damaged"));
    }

    /* A directory that is not there: the save says why. */
    snprintf(path, sizeof path, "%s/missing/cluster_uid", (char *)*state);
    why[0] = '\0';
    assert_int_equal(rq_uid_save(path, 1, why, sizeof why), RQ_IO);
    assert_true(strlen(why) > 0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_uid_text_round_trips),
        cmocka_unit_test_setup_teardown(test_uid_file_saves_and_loads, setup,
                                        teardown),
    };
    return cmocka_run_group_tests_name("uid", tests, NULL, NULL);
}

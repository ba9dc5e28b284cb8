/*
 * Unit tests of the file-system helpers: nested directory creation and the
 * data-directory lock.
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
#include "rq_fs.h"
#include "unit_util.h"

static int setup(void **state)
{
    char *dir = strdup("/tmp/rq-test-fs-XXXXXX");
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

static void test_fs_mkdir_p_creates_parents(void **state)
{
    char path[512];
    char why[256] = "";
    struct stat st;
    snprintf(path, sizeof path, "%s/a/b/c", (char *)*state);
    assert_int_equal(rq_mkdir_p(path, why, sizeof why), 0);
    assert_int_equal(stat(path, &st), 0);
    assert_true(S_ISDIR(st.st_mode));
    /* Again: already there is fine. */
    assert_int_equal(rq_mkdir_p(path, why, sizeof why), 0);

    /* A file in the way is refused with a reason. */
    char file[600];
    snprintf(file, sizeof file, "%s/f", (char *)*state);
    FILE *f = fopen(file, "w");
    assert_non_null(f);
    fclose(f);
    snprintf(path, sizeof path, "%s/f/x", (char *)*state);
    assert_int_equal(rq_mkdir_p(path, why, sizeof why), RQ_IO);
    assert_true(strlen(why) > 0);
    assert_int_equal(rq_mkdir_p("", why, sizeof why), RQ_INVALID);
}

static void test_fs_lock_dir_refuses_a_second_holder(void **state)
{
    char dir[512];
    char why[256] = "";
    int fd1 = -1;
    int fd2 = -1;
    snprintf(dir, sizeof dir, "%s/data/node-1", (char *)*state);
    assert_int_equal(rq_lock_dir(dir, &fd1, why, sizeof why), 0);
    assert_true(fd1 >= 0);
    /* flock belongs to the open file, so a second open in the same process
     * conflicts just as another process would. */
    assert_int_equal(rq_lock_dir(dir, &fd2, why, sizeof why), RQ_IO);
    assert_int_equal(fd2, -1);
    assert_non_null(strstr(why, "in use"));
    close(fd1);
    assert_int_equal(rq_lock_dir(dir, &fd2, why, sizeof why), 0);
    close(fd2);
    assert_int_equal(rq_fsync_dir(dir), 0);
    assert_int_equal(rq_fsync_dir("/nonexistent/rq"), RQ_IO);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_fs_mkdir_p_creates_parents, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(
            test_fs_lock_dir_refuses_a_second_holder, setup, teardown),
    };
    return cmocka_run_group_tests_name("fs", tests, NULL, NULL);
}

/*
 * Tests of rq_aio: the executable's syscall(3) passes every system call
 * through unchanged (arguments, results, errno), and io_destroy is handed
 * to the pool, which really destroys the context.
 */
#include <errno.h>
#include <linux/aio_abi.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <cmocka.h>

#include "rq_aio.h"

static int setup(void **state)
{
    (void)state;
    char why[256] = "";
    return rq_aio_init(why, sizeof why) == 0 ? 0 : -1;
}

static int teardown(void **state)
{
    (void)state;
    rq_aio_close();
    return 0;
}

static void test_aio_passes_calls_through(void **state)
{
    (void)state;
    /* No arguments. */
    assert_int_equal(syscall(SYS_getpid), getpid());

    /* Failure: -1 and errno, like the C library's. */
    errno = 0;
    assert_int_equal(syscall(SYS_close, -1), -1);
    assert_int_equal(errno, EBADF);

    /* Six arguments, the last one on the stack: map page 1 of a file. */
    int fd = (int)syscall(SYS_memfd_create, "rq_aio_test", 0);
    assert_true(fd >= 0);
    long page = sysconf(_SC_PAGESIZE);
    assert_int_equal(ftruncate(fd, 2 * page), 0);
    char mark = 'x';
    assert_int_equal(pwrite(fd, &mark, 1, page), 1);
    void *p = (void *)syscall(SYS_mmap, NULL, (size_t)page, PROT_READ,
                              MAP_SHARED, fd, page);
    assert_true(p != MAP_FAILED);
    assert_int_equal(((const char *)p)[0], 'x');
    assert_int_equal(munmap(p, (size_t)page), 0);
    close(fd);
}

static void test_aio_defers_io_destroy(void **state)
{
    (void)state;
    if (!rq_aio_active()) {
        skip(); /* no shim on this architecture */
    }
    aio_context_t ctx = 0;
    assert_int_equal(syscall(SYS_io_setup, 1, &ctx), 0);
    unsigned long long before = rq_aio_deferred();

    assert_int_equal(syscall(SYS_io_destroy, ctx), 0);
    assert_int_equal(rq_aio_deferred(), before + 1);

    /* Closing the pool drains the queue, so the context is gone by now and
     * destroying it again in place fails. */
    rq_aio_close();
    assert_false(rq_aio_active());
    unsigned long long inline_before = rq_aio_inline();
    errno = 0;
    assert_int_equal(syscall(SYS_io_destroy, ctx), -1);
    assert_int_equal(errno, EINVAL);
    assert_int_equal(rq_aio_inline(), inline_before + 1);

    /* The pool can start again. */
    char why[256] = "";
    assert_int_equal(rq_aio_init(why, sizeof why), 0);
    assert_true(rq_aio_active());
}

static void test_aio_many_contexts(void **state)
{
    (void)state;
    if (!rq_aio_active()) {
        skip();
    }
    enum { N = 64 };
    aio_context_t ctxs[N];
    unsigned long long before = rq_aio_deferred();
    for (int i = 0; i < N; i++) {
        ctxs[i] = 0;
        assert_int_equal(syscall(SYS_io_setup, 1, &ctxs[i]), 0);
    }
    for (int i = 0; i < N; i++) {
        assert_int_equal(syscall(SYS_io_destroy, ctxs[i]), 0);
    }
    assert_int_equal(rq_aio_deferred(), before + N);
    rq_aio_close();
    for (int i = 0; i < N; i++) {
        errno = 0;
        assert_int_equal(syscall(SYS_io_destroy, ctxs[i]), -1);
        assert_int_equal(errno, EINVAL);
    }
    char why[256] = "";
    assert_int_equal(rq_aio_init(why, sizeof why), 0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_aio_passes_calls_through),
        cmocka_unit_test(test_aio_defers_io_destroy),
        cmocka_unit_test(test_aio_many_contexts),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}

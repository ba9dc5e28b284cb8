/*
 * The io_destroy pool behind rq_aio.h: a bounded queue of AIO contexts and
 * a few threads that destroy them. Each io_destroy sleeps for a kernel RCU
 * grace period, and concurrent ones share grace periods, so the pool's
 * throughput grows with its thread count while the loop never waits.
 */
#include "rq_aio.h"

#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <string.h>
#include <sys/syscall.h>

#include "rq_err.h"

#define LOG_TAG "aio"
#include "rq_log.h"

#if defined(__x86_64__) && defined(__linux__)
#define HAVE_SHIM 1
#else
#define HAVE_SHIM 0
#endif

enum {
    N_THREADS = 8,    /* io_destroy calls that may sleep at once */
    QUEUE_CAP = 4096, /* contexts waiting; each holds kernel AIO slots */
};

static struct {
    pthread_mutex_t mu;
    pthread_cond_t cond;
    unsigned long ctxs[QUEUE_CAP]; /* ring of aio_context_t values */
    unsigned head;
    unsigned len;
    bool running;
    bool stopping;
    unsigned n_threads;
    pthread_t threads[N_THREADS];
    unsigned long long deferred;
    unsigned long long inline_;
} pool = {
    .mu = PTHREAD_MUTEX_INITIALIZER,
    .cond = PTHREAD_COND_INITIALIZER,
};

#if HAVE_SHIM

/* In rq_aio_syscall.S: the system call without the io_destroy check. */
long rq_aio_raw_syscall(long number, ...) __attribute__((visibility("hidden")));
long rq_aio_defer_destroy(long number, unsigned long ctx)
    __attribute__((visibility("hidden")));

static void destroy_now(unsigned long ctx)
{
    /* Nothing to do on failure: the library ignores the result too, and the
     * kernel releases the context at exit. */
    (void)rq_aio_raw_syscall(SYS_io_destroy, ctx);
}

/* Called by the syscall shim for io_destroy, on whatever thread made it. */
long rq_aio_defer_destroy(long number, unsigned long ctx)
{
    bool queued = false;

    pthread_mutex_lock(&pool.mu);
    if (pool.running && !pool.stopping && pool.len < QUEUE_CAP) {
        pool.ctxs[(pool.head + pool.len) % QUEUE_CAP] = ctx;
        pool.len++;
        pool.deferred++;
        queued = true;
        pthread_cond_signal(&pool.cond);
    } else {
        pool.inline_++;
    }
    pthread_mutex_unlock(&pool.mu);
    if (queued) {
        return 0;
    }
    return rq_aio_raw_syscall(number, ctx);
}

static void *worker(void *arg)
{
    (void)arg;
    pthread_mutex_lock(&pool.mu);
    for (;;) {
        while (pool.len == 0 && !pool.stopping) {
            pthread_cond_wait(&pool.cond, &pool.mu);
        }
        if (pool.len == 0) {
            break; /* stopping, and the queue is drained */
        }
        unsigned long ctx = pool.ctxs[pool.head];
        pool.head = (pool.head + 1) % QUEUE_CAP;
        pool.len--;
        pthread_mutex_unlock(&pool.mu);
        destroy_now(ctx);
        pthread_mutex_lock(&pool.mu);
    }
    pthread_mutex_unlock(&pool.mu);
    return NULL;
}

int rq_aio_init(char *why, size_t whyn)
{
    int rv = 0;

    pthread_mutex_lock(&pool.mu);
    if (pool.running) {
        goto out;
    }
    pool.stopping = false;
    for (unsigned i = 0; i < N_THREADS; i++) {
        int err = pthread_create(&pool.threads[i], NULL, worker, NULL);
        if (err != 0) {
            snprintf(why, whyn, "io_destroy pool: pthread_create: %s",
                     strerror(err));
            rv = err == EAGAIN ? RQ_NOMEM : RQ_IO;
            break;
        }
        pool.n_threads++;
    }
    /* Even a partial pool helps; only none at all leaves the calls in place. */
    pool.running = pool.n_threads > 0;
out:
    pthread_mutex_unlock(&pool.mu);
    if (rv == 0) {
        rq_log(RQ_DEBUG, "io_destroy deferred to %u threads", N_THREADS);
    }
    return rv;
}

#else /* !HAVE_SHIM */

int rq_aio_init(char *why, size_t whyn)
{
    (void)why;
    (void)whyn;
    rq_log(
        RQ_INFO,
        "io_destroy runs on the loop thread (no shim for this architecture)");
    return 0;
}

#endif

bool rq_aio_active(void)
{
    pthread_mutex_lock(&pool.mu);
    bool active = pool.running && !pool.stopping;
    pthread_mutex_unlock(&pool.mu);
    return active;
}

unsigned long long rq_aio_deferred(void)
{
    pthread_mutex_lock(&pool.mu);
    unsigned long long n = pool.deferred;
    pthread_mutex_unlock(&pool.mu);
    return n;
}

unsigned long long rq_aio_inline(void)
{
    pthread_mutex_lock(&pool.mu);
    unsigned long long n = pool.inline_;
    pthread_mutex_unlock(&pool.mu);
    return n;
}

void rq_aio_close(void)
{
    pthread_mutex_lock(&pool.mu);
    if (!pool.running) {
        pthread_mutex_unlock(&pool.mu);
        return;
    }
    pool.stopping = true;
    pthread_cond_broadcast(&pool.cond);
    unsigned n = pool.n_threads;
    pthread_mutex_unlock(&pool.mu);

    for (unsigned i = 0; i < n; i++) {
        pthread_join(pool.threads[i], NULL);
    }

    pthread_mutex_lock(&pool.mu);
    pool.n_threads = 0;
    pool.running = false;
    pthread_mutex_unlock(&pool.mu);
}

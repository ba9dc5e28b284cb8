/*
 * Takes libraft's io_destroy off the event loop.
 *
 * libraft (0.22.1) gives every open segment writer (and every start-up
 * probe of a data directory) its own Linux AIO context and tears it down
 * with io_destroy(2) on the loop thread. The kernel makes io_destroy wait
 * for an RCU grace period, about 36 ms here, so a broker that fills a
 * 256 KiB Raft segment every few milliseconds spends most of its loop
 * blocked there, and starting 1,000 groups takes 35 s.
 *
 * The library reaches the kernel through the C library's syscall(3). This
 * module defines syscall itself in the executable (rq_aio_syscall.S), and
 * the static link binds libraft's calls to it ahead of the C library's:
 * every call is passed through unchanged, except io_destroy, whose context
 * is queued for a small pool of threads that destroy it off the loop. A
 * context whose writer has closed has no requests in flight, is never used
 * again by the library, and is released by the kernel at exit in any case,
 * so destroying it later is safe. When the queue is full, or the pool is
 * not running, the call is made in place as before.
 *
 * On architectures without the assembly shim nothing is interposed and
 * rq_aio_init reports that; libraft then behaves as shipped.
 */
#ifndef RQ_AIO_H
#define RQ_AIO_H

#include <stdbool.h>
#include <stddef.h>

/*
 * Starts the destroy threads. Call once, early in main, before any Raft
 * group starts. Returns 0, or RQ_NOMEM/RQ_IO with a reason in @why; a
 * process can run without it (slower), so callers may log and go on.
 */
int rq_aio_init(char *why, size_t whyn);

/* Whether io_destroy calls are being deferred (the shim is built in and the
 * pool runs). */
bool rq_aio_active(void);

/* Counters for /metrics and benches: contexts handed to the pool, and
 * destroys made in place because the queue was full or the pool stopped. */
unsigned long long rq_aio_deferred(void);
unsigned long long rq_aio_inline(void);

/*
 * Stops the pool after destroying every queued context. Call at exit, after
 * the loop has stopped; later io_destroy calls run in place.
 */
void rq_aio_close(void);

#endif /* RQ_AIO_H */

/*
 * Helpers shared by the component tests: driving one uv loop until a
 * condition holds or a deadline passes, and temporary directories.
 */
#ifndef TESTS_COMPONENT_HARNESS_H
#define TESTS_COMPONENT_HARNESS_H

#include <arpa/inet.h>
#include <ftw.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>
#include <uv.h>

typedef bool (*harness_cond)(void *arg);

static inline void harness_wake(uv_timer_t *t)
{
    (void)t; /* Only there to make uv_run() return by the deadline. */
}

/*
 * Runs @loop one iteration at a time until @cond(@arg) holds (true) or
 * @ms milliseconds have passed (false). @wake is an initialized timer of
 * the caller's that bounds each blocking iteration.
 */
static inline bool harness_run_until(uv_loop_t *loop, uv_timer_t *wake,
                                     harness_cond cond, void *arg, unsigned ms)
{
    uv_update_time(loop);
    uint64_t deadline = uv_now(loop) + ms;
    bool ok;
    while (!(ok = cond(arg))) {
        uv_update_time(loop);
        uint64_t now = uv_now(loop);
        if (now >= deadline) {
            break;
        }
        uv_timer_start(wake, harness_wake, deadline - now, 0);
        uv_run(loop, UV_RUN_ONCE);
    }
    uv_timer_stop(wake);
    return ok;
}

static inline void harness_drain_deadline(uv_timer_t *t)
{
    *(bool *)t->data = true;
}

static inline void harness_close_leftover(uv_handle_t *h, void *arg)
{
    if (!uv_is_closing(h)) {
        (*(unsigned *)arg)++;
        uv_close(h, NULL);
    }
}

/*
 * The end of a teardown: runs @loop until every handle has closed, for up
 * to @ms milliseconds; then closes the handles still open and runs it
 * until they are gone. Returns how many it had to close: 0 unless
 * something was left open, by the code under test or by a test that
 * failed half-way (whose handles would otherwise hang the teardown, and
 * with it the whole suite; their memory leaks, which the sanitizer
 * reports).
 */
static inline unsigned harness_drain(uv_loop_t *loop, unsigned ms)
{
    uv_timer_t deadline;
    bool late = false;
    unsigned left = 0;

    uv_timer_init(loop, &deadline);
    deadline.data = &late;
    uv_timer_start(&deadline, harness_drain_deadline, ms, 0);
    uv_unref((uv_handle_t *)&deadline); /* It keeps nothing alive. */
    while (uv_loop_alive(loop) && !late) {
        uv_run(loop, UV_RUN_ONCE);
    }
    uv_close((uv_handle_t *)&deadline, NULL);
    uv_walk(loop, harness_close_leftover, &left);
    uv_run(loop, UV_RUN_DEFAULT);
    return left;
}

static inline int harness_rm_entry(const char *path, const struct stat *st,
                                   int flag, struct FTW *ftw)
{
    (void)st;
    (void)flag;
    (void)ftw;
    return remove(path);
}

/* Removes @dir and everything under it. */
static inline void harness_rm_tree(const char *dir)
{
    nftw(dir, harness_rm_entry, 16, FTW_DEPTH | FTW_PHYS);
}

/* True if @port on 127.0.0.1 can be bound and listened on now. */
static inline bool harness_port_free(int port)
{
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    if (fd < 0) {
        return false;
    }
    int one = 1;
    setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
    struct sockaddr_in a = {.sin_family = AF_INET,
                            .sin_port = htons((uint16_t)port)};
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    bool ok =
        bind(fd, (struct sockaddr *)&a, sizeof a) == 0 && listen(fd, 1) == 0;
    close(fd);
    return ok;
}

/* Ports the component tests listen on: below the kernel's ephemeral range. */
#define HARNESS_PORT_LO 20000
#define HARNESS_PORT_HI 32000

/*
 * The first block of @span free ports on 127.0.0.1, searched from a place
 * set by the process id, so that two runs on one machine (two checkouts,
 * or a cluster someone left running) do not take the same ports. Returns
 * its first port, or 0 after saying on stderr that none is free.
 */
static inline int harness_pick_ports(const char *suite, int span)
{
    int blocks = (HARNESS_PORT_HI - HARNESS_PORT_LO) / span;
    int first = (int)(getpid() % blocks);
    for (int k = 0; k < blocks; k++) {
        int base = HARNESS_PORT_LO + ((first + k) % blocks) * span;
        int p = base;
        while (p < base + span && harness_port_free(p)) {
            p++;
        }
        if (p == base + span) {
            return base;
        }
    }
    fprintf(stderr, "%s: no %d free ports in %d-%d\n", suite, span,
            HARNESS_PORT_LO, HARNESS_PORT_HI);
    return 0;
}

#endif /* TESTS_COMPONENT_HARNESS_H */

/*
 * Component tests of raftq bench's load generator (cli/loadgen.h) on real
 * sockets: a scripted HTTP server in a thread of the test (loadgen_run()
 * owns the test's thread until the run ends) answers each request as the
 * test says: a 200 sent in pieces, a 503, a connection closed before the
 * answer, bytes that are not HTTP, a Connection: close. Covered: a counted
 * run answers exactly its requests with their messages and latencies; each
 * error is counted by kind with its first detail and the run goes on on a
 * new connection; a refused connection is an error, not the end; the stop
 * flag ends a timed run.
 */
#include <arpa/inet.h>
#include <netinet/in.h>
#include <pthread.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cmocka.h>

#include "cli/loadgen.h"
#include "rq_err.h"

/* What the server does with request k (counted from 0 over the run). */
enum act { ANSWER, ANSWER_503, HANG_UP, GARBAGE, ANSWER_CLOSE };

struct server {
    int listen_fd;
    uint16_t port;
    pthread_t thread;
    enum act (*script)(unsigned k);
    unsigned requests; /* Seen so far. */
    unsigned accepted; /* Connections. */
    volatile int quit;
};

static void send_all(int fd, const char *s, size_t n)
{
    while (n > 0) {
        ssize_t w = send(fd, s, n, MSG_NOSIGNAL);
        if (w <= 0) {
            return;
        }
        s += w;
        n -= (size_t)w;
    }
}

/* Serves one connection until the client or the script closes it. */
static void serve(struct server *s, int fd)
{
    char buf[4096];
    size_t len = 0;
    for (;;) {
        ssize_t n = recv(fd, buf + len, sizeof buf - 1 - len, 0);
        if (n <= 0) {
            return;
        }
        len += (size_t)n;
        buf[len] = '\0';
        if (strstr(buf, "\r\n\r\n") == NULL) {
            continue;
        }
        len = 0; /* One request in flight: the buffer held just it. */
        unsigned k = s->requests++;
        static const char body[] = "{\"status\":\"success\",\"n\":3}";
        char head[256];
        switch (s->script(k)) {
            case ANSWER:
                /* In two pieces, the body's first bytes with the head. */
                snprintf(head, sizeof head,
                         "HTTP/1.1 200 OK\r\nContent-Length: %zu\r\n\r\n%.5s",
                         sizeof body - 1, body);
                send_all(fd, head, strlen(head));
                usleep(1000);
                send_all(fd, body + 5, sizeof body - 1 - 5);
                break;
            case ANSWER_503: {
                static const char a[] =
                    "HTTP/1.1 503 Service Unavailable\r\nRetry-After: 1\r\n"
                    "Content-Length: 15\r\n\r\n{\"why\":\"busy\"}\n";
                send_all(fd, a, sizeof a - 1);
                break;
            }
            case HANG_UP:
                return;
            case GARBAGE: {
                static const char a[] = "SSH-2.0-x\r\n\r\n";
                send_all(fd, a, sizeof a - 1);
                break;
            }
            case ANSWER_CLOSE:
                snprintf(head, sizeof head,
                         "HTTP/1.1 200 OK\r\nConnection: close\r\n"
                         "Content-Length: %zu\r\n\r\n%s",
                         sizeof body - 1, body);
                send_all(fd, head, strlen(head));
                return;
        }
    }
}

static void *server_main(void *arg)
{
    struct server *s = arg;
    while (!s->quit) {
        int fd = accept(s->listen_fd, NULL, NULL);
        if (fd < 0) {
            continue;
        }
        s->accepted++;
        serve(s, fd);
        close(fd);
    }
    return NULL;
}

static void server_start(struct server *s, enum act (*script)(unsigned))
{
    memset(s, 0, sizeof *s);
    s->script = script;
    s->listen_fd = socket(AF_INET, SOCK_STREAM, 0);
    assert_true(s->listen_fd >= 0);
    struct sockaddr_in sa = {.sin_family = AF_INET};
    sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    assert_int_equal(bind(s->listen_fd, (struct sockaddr *)&sa, sizeof sa), 0);
    socklen_t sl = sizeof sa;
    getsockname(s->listen_fd, (struct sockaddr *)&sa, &sl);
    s->port = ntohs(sa.sin_port);
    assert_int_equal(listen(s->listen_fd, 16), 0);
    /* accept() wakes every 100 ms to see quit. */
    struct timeval tv = {0, 100000};
    setsockopt(s->listen_fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
    assert_int_equal(pthread_create(&s->thread, NULL, server_main, s), 0);
}

static void server_stop(struct server *s)
{
    s->quit = 1;
    pthread_join(s->thread, NULL);
    close(s->listen_fd);
}

static void target_at(struct loadgen_target *t, uint16_t port)
{
    memset(t, 0, sizeof *t);
    struct sockaddr_in *sa = (struct sockaddr_in *)&t->addr;
    sa->sin_family = AF_INET;
    sa->sin_port = htons(port);
    sa->sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    t->addr_len = sizeof *sa;
    snprintf(t->name, sizeof t->name, "127.0.0.1:%u", (unsigned)port);
}

/* The request: one GET, the same each time. */
static void next_get(void *data, unsigned conn, uint64_t seq,
                     struct loadgen_req *req)
{
    (void)data;
    (void)conn;
    int n = snprintf(req->scratch, LOADGEN_SCRATCH,
                     "GET /r/%llu HTTP/1.1\r\nHost: x\r\n\r\n",
                     (unsigned long long)seq);
    req->bufs[0] = uv_buf_init(req->scratch, (unsigned)n);
    req->nbufs = 1;
}

/* Reads "n" from the answer, as bench's reads take next_offset. */
static int answer_n(void *data, unsigned conn, uint64_t seq, const char *body,
                    size_t len, uint64_t *messages, char *why, size_t whyn)
{
    (void)data;
    (void)conn;
    (void)seq;
    (void)why;
    (void)whyn;
    if (memmem(body, len, "\"n\":3}", 6) == NULL) {
        return RQ_MALFORMED;
    }
    *messages = 3;
    return 0;
}

static enum act all_answered(unsigned k)
{
    (void)k;
    return ANSWER;
}

static const struct loadgen_error_kind *kind_of(const struct loadgen_result *r,
                                                const char *kind)
{
    for (size_t i = 0; i < r->n_kinds; i++) {
        if (strcmp(r->kinds[i].kind, kind) == 0) {
            return &r->kinds[i];
        }
    }
    return NULL;
}

/* Runs one connection against a server following @script: @max_requests
 * of them (a counted run), or with 0 a timed run that @stop ends. */
static void run_scripted(struct server *s, enum act (*script)(unsigned),
                         uint64_t max_requests, loadgen_progress_cb progress,
                         const volatile sig_atomic_t *stop,
                         struct loadgen_result *r)
{
    struct loadgen_target t;
    server_start(s, script);
    target_at(&t, s->port);
    struct loadgen_config cfg = {
        .targets = &t,
        .n_targets = 1,
        .conns = 1,
        .measure_ms = max_requests != 0 ? 10000 : 60000,
        .max_requests = max_requests,
        .next = next_get,
        .answer = answer_n,
        .progress = progress,
        .stop = stop,
    };
    assert_int_equal(loadgen_run(&cfg, r), 0);
    server_stop(s);
}

static void test_loadgen_counted_run_answers_each_request(void **state)
{
    (void)state;
    struct server s;
    struct loadgen_result r;
    run_scripted(&s, all_answered, 20, NULL, NULL, &r);
    assert_int_equal(r.errors, 0);
    assert_int_equal(r.answers, 20);
    assert_int_equal(r.messages, 60);
    assert_int_equal(r.n_lat, 20);
    assert_int_equal(s.requests, 20);
    assert_int_equal(s.accepted, 1); /* Keep-alive. */
    assert_false(r.interrupted);
    assert_true(r.seconds > 0);
    /* Each answer came in two pieces a millisecond apart. */
    assert_true(loadgen_quantile_ms(&r, 0.5) >= 0.9);
    assert_true(loadgen_quantile_ms(&r, 1.0) >= loadgen_quantile_ms(&r, 0.5));
    loadgen_result_clear(&r);
}

static enum act mixed(unsigned k)
{
    switch (k) {
        case 2:
            return ANSWER_503;
        case 4:
            return HANG_UP;
        case 6:
            return GARBAGE;
        case 8:
            return ANSWER_CLOSE;
        default:
            return ANSWER;
    }
}

static void test_loadgen_errors_are_counted_and_the_run_goes_on(void **state)
{
    (void)state;
    struct server s;
    struct loadgen_result r;
    run_scripted(&s, mixed, 12, NULL, NULL, &r);
    assert_int_equal(s.requests, 12);
    assert_int_equal(r.errors, 3);
    assert_int_equal(r.answers, 9); /* The close-after-answer is one. */
    assert_int_equal(r.messages, 27);
    const struct loadgen_error_kind *k = kind_of(&r, "HTTP 503");
    assert_non_null(k);
    assert_int_equal(k->n, 1);
    assert_non_null(strstr(k->first, "busy"));
    k = kind_of(&r, "closed");
    assert_non_null(k);
    assert_int_equal(k->n, 1);
    k = kind_of(&r, "malformed");
    assert_non_null(k);
    assert_non_null(strstr(k->first, "not an HTTP/1.x response"));
    /* A new connection after the hang-up, the garbage and the close. */
    assert_int_equal(s.accepted, 4);
    loadgen_result_clear(&r);
}

static void test_loadgen_refused_connections_are_errors(void **state)
{
    (void)state;
    /* A port that is bound but not listening refuses connections. */
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in sa = {.sin_family = AF_INET};
    sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    assert_int_equal(bind(fd, (struct sockaddr *)&sa, sizeof sa), 0);
    socklen_t sl = sizeof sa;
    getsockname(fd, (struct sockaddr *)&sa, &sl);
    struct loadgen_target t;
    struct loadgen_result r;
    target_at(&t, ntohs(sa.sin_port));
    struct loadgen_config cfg = {
        .targets = &t,
        .n_targets = 1,
        .conns = 2,
        .measure_ms = 500,
        .next = next_get,
        .answer = answer_n,
    };
    assert_int_equal(loadgen_run(&cfg, &r), 0);
    close(fd);
    assert_int_equal(r.answers, 0);
    assert_true(r.errors >= 2);
    const struct loadgen_error_kind *k = kind_of(&r, "connect");
    assert_non_null(k);
    assert_non_null(strstr(k->first, "refused"));
    assert_true(r.seconds >= 0.45 && r.seconds < 2);
    assert_true(loadgen_quantile_ms(&r, 0.5) < 0);
    loadgen_result_clear(&r);
}

static volatile sig_atomic_t stop_flag;

static void stop_soon(void *data, const struct loadgen_progress *p)
{
    (void)data;
    (void)p;
    stop_flag = 1; /* At the first progress report, a second in. */
}

static void test_loadgen_stop_flag_ends_a_run(void **state)
{
    (void)state;
    struct server s;
    struct loadgen_result r;
    stop_flag = 0;
    run_scripted(&s, all_answered, 0, stop_soon, &stop_flag, &r);
    assert_true(r.interrupted);
    assert_true(r.answers > 0);
    assert_true(r.seconds >= 0.9 && r.seconds < 10);
    loadgen_result_clear(&r);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_loadgen_counted_run_answers_each_request),
        cmocka_unit_test(test_loadgen_errors_are_counted_and_the_run_goes_on),
        cmocka_unit_test(test_loadgen_refused_connections_are_errors),
        cmocka_unit_test(test_loadgen_stop_flag_ends_a_run),
    };
    return cmocka_run_group_tests_name("loadgen", tests, NULL, NULL);
}

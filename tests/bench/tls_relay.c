/*
 * The cost of rq_tls's relay, printed (make bench): bulk throughput one way
 * and the round trip of small messages, over plain loopback TCP and through
 * two relays (one at each end, as between two nodes), both ends on one loop
 * and one thread. On a machine whose cores the two ends would otherwise
 * have to themselves, this is a floor for throughput and a ceiling for
 * latency. Certificates are made on the spot in a temporary directory.
 */
#include <arpa/inet.h>
#include <signal.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <uv.h>

#include "rq_certs.h"
#include "rq_tls.h"

#define BULK (256u << 20)
#define CHUNK (256u << 10)
#define MSG 128
#define ROUND_TRIPS 20000

struct end {
    uv_tcp_t s;
    size_t got;
    size_t queued;
    size_t want; /* Ping-pong: bytes of the current message. */
    bool echo;   /* Answers every message it reads. */
    struct run *run;
};

struct run {
    uv_loop_t *loop;
    uv_tcp_t listener;
    uv_connect_t connect;
    struct rq_tls *tls; /* NULL: plain TCP. */
    struct end srv, cli;
    bool ready[2];
    bool done;
    unsigned trips;
    uint8_t rbuf[64 * 1024];
    uint8_t msg[MSG];
};

static void on_alloc(uv_handle_t *h, size_t n, uv_buf_t *buf)
{
    struct end *e = h->data;
    (void)n;
    buf->base = (char *)e->run->rbuf;
    buf->len = sizeof e->run->rbuf;
}

static void on_written(uv_write_t *w, int status)
{
    (void)status;
    free(w);
}

static void send_msg(struct end *e)
{
    uv_write_t *w = malloc(sizeof *w);
    uv_buf_t buf = uv_buf_init((char *)e->run->msg, MSG);
    uv_write(w, (uv_stream_t *)&e->s, &buf, 1, on_written);
}

static void on_read(uv_stream_t *s, ssize_t n, const uv_buf_t *buf)
{
    struct end *e = s->data;
    struct run *r = e->run;
    (void)buf;
    if (n <= 0) {
        return;
    }
    e->got += (size_t)n;
    if (e->want == 0) {
        return; /* Bulk: only counted. */
    }
    while (e->got >= e->want) {
        e->got -= e->want;
        if (e->echo) {
            send_msg(e);
        } else if (++r->trips < ROUND_TRIPS) {
            send_msg(e);
        } else {
            r->done = true;
        }
    }
}

static void start_end(struct end *e)
{
    e->s.data = e;
    uv_read_start((uv_stream_t *)&e->s, on_alloc, on_read);
}

static void on_connection(uv_stream_t *server, int status)
{
    struct run *r = server->data;
    char why[256];
    (void)status;
    if (r->tls == NULL) {
        uv_tcp_init(r->loop, &r->srv.s);
        uv_accept(server, (uv_stream_t *)&r->srv.s);
    } else {
        uv_tcp_t *net = malloc(sizeof *net);
        uv_tcp_init(r->loop, net);
        uv_accept(server, (uv_stream_t *)net);
        uv_tcp_nodelay(net, 1);
        if (rq_tls_wrap(r->tls, net, free, RQ_TLS_SERVER, NULL, &r->srv.s, why,
                        sizeof why) != 0) {
            fprintf(stderr, "wrap: %s\n", why);
            exit(1);
        }
    }
    start_end(&r->srv);
    r->ready[0] = true;
}

static void on_connect(uv_connect_t *req, int status)
{
    struct run *r = req->data;
    char why[256];
    (void)status;
    if (r->tls != NULL) {
        if (rq_tls_wrap(r->tls, (uv_tcp_t *)req->handle, free, RQ_TLS_CLIENT,
                        "127.0.0.1", &r->cli.s, why, sizeof why) != 0) {
            fprintf(stderr, "wrap: %s\n", why);
            exit(1);
        }
    }
    start_end(&r->cli);
    r->ready[1] = true;
}

static void setup(struct run *r, uv_loop_t *loop, struct rq_tls *tls)
{
    struct sockaddr_in addr;
    struct sockaddr_storage ss;
    int len = sizeof ss;
    memset(r, 0, sizeof *r);
    r->loop = loop;
    r->tls = tls;
    r->srv.run = r->cli.run = r;
    uv_tcp_init(loop, &r->listener);
    r->listener.data = r;
    uv_ip4_addr("127.0.0.1", 0, &addr);
    uv_tcp_bind(&r->listener, (struct sockaddr *)&addr, 0);
    uv_listen((uv_stream_t *)&r->listener, 4, on_connection);
    uv_tcp_getsockname(&r->listener, (struct sockaddr *)&ss, &len);
    addr.sin_port = ((struct sockaddr_in *)&ss)->sin_port;
    uv_tcp_t *tcp = tls != NULL ? malloc(sizeof *tcp) : &r->cli.s;
    uv_tcp_init(loop, tcp);
    uv_tcp_nodelay(tcp, 1);
    r->connect.data = r;
    uv_tcp_connect(&r->connect, tcp, (struct sockaddr *)&addr, on_connect);
    while (!r->ready[0] || !r->ready[1]) {
        uv_run(loop, UV_RUN_ONCE);
    }
}

static void teardown(struct run *r)
{
    uv_close((uv_handle_t *)&r->srv.s, NULL);
    uv_close((uv_handle_t *)&r->cli.s, NULL);
    uv_close((uv_handle_t *)&r->listener, NULL);
    uv_run(r->loop, UV_RUN_DEFAULT);
}

static void on_bulk_check(uv_check_t *c)
{
    struct run *r = c->data;
    if (r->srv.got >= BULK) {
        r->done = true;
        return;
    }
    /* Keep a few chunks in flight. */
    while (r->cli.queued < BULK &&
           r->cli.s.write_queue_size < 4 * (size_t)CHUNK) {
        uv_write_t *w = malloc(sizeof *w);
        static uint8_t chunk[CHUNK];
        uv_buf_t buf = uv_buf_init((char *)chunk, CHUNK);
        uv_write(w, (uv_stream_t *)&r->cli.s, &buf, 1, on_written);
        r->cli.queued += CHUNK;
    }
}

static double bulk(uv_loop_t *loop, struct rq_tls *tls)
{
    struct run r;
    uv_check_t check;
    setup(&r, loop, tls);
    uv_check_init(loop, &check);
    check.data = &r;
    uv_check_start(&check, on_bulk_check);
    uint64_t t0 = uv_hrtime();
    /* The check runs after each poll; the first writes wake the loop. */
    on_bulk_check(&check);
    while (!r.done) {
        uv_run(loop, UV_RUN_ONCE);
    }
    double s = (double)(uv_hrtime() - t0) / 1e9;
    uv_close((uv_handle_t *)&check, NULL);
    teardown(&r);
    return (double)BULK / (1 << 20) / s;
}

static double ping_pong(uv_loop_t *loop, struct rq_tls *tls)
{
    struct run r;
    setup(&r, loop, tls);
    r.srv.want = r.cli.want = MSG;
    r.srv.echo = true;
    uint64_t t0 = uv_hrtime();
    send_msg(&r.cli);
    while (!r.done) {
        uv_run(loop, UV_RUN_ONCE);
    }
    double us = (double)(uv_hrtime() - t0) / 1e3 / ROUND_TRIPS;
    teardown(&r);
    return us;
}

int main(void)
{
    char dir[] = "/tmp/raftq-tlsbench-XXXXXX";
    char cert[64], key[64], ca[64], why[256];
    struct rq_ca *c;
    char *cp, *kp;
    const char *sans[] = {"127.0.0.1"};
    struct rq_tls *tls;
    uv_loop_t *loop = uv_default_loop();

    signal(SIGPIPE, SIG_IGN);
    if (mkdtemp(dir) == NULL || rq_ca_new("bench", &c, why, sizeof why) != 0 ||
        rq_ca_issue(c, "node", sans, 1, &cp, &kp, why, sizeof why) != 0) {
        fprintf(stderr, "tls_relay: cannot make certificates\n");
        return 1;
    }
    snprintf(cert, sizeof cert, "%s/n.crt", dir);
    snprintf(key, sizeof key, "%s/n.key", dir);
    snprintf(ca, sizeof ca, "%s/ca.crt", dir);
    rq_pem_write(cert, cp, 0644, why, sizeof why);
    rq_pem_write(key, kp, 0600, why, sizeof why);
    rq_pem_write(ca, rq_ca_pem(c), 0644, why, sizeof why);
    struct rq_tls_config cfg = {cert, key, ca, 0};
    if (rq_tls_new(&cfg, &tls, why, sizeof why) != 0) {
        fprintf(stderr, "tls_relay: %s\n", why);
        return 1;
    }
    printf("TLS relay (both ends on one loop, one thread):\n");
    printf(
        "  bulk, %u MiB one way:   plain TCP %7.0f MiB/s   TLS relays %7.0f "
        "MiB/s\n",
        BULK >> 20, bulk(loop, NULL), bulk(loop, tls));
    printf(
        "  round trip, %d bytes:  plain TCP %7.1f us      TLS relays %7.1f "
        "us\n",
        MSG, ping_pong(loop, NULL), ping_pong(loop, tls));
    rq_tls_free(tls);
    rq_ca_free(c);
    free(cp);
    free(kp);
    unlink(cert);
    unlink(key);
    unlink(ca);
    rmdir(dir);
    return 0;
}

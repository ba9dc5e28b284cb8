/*
 * The life of a server binary (see rq_main.h).
 */
#include "rq_main.h"

#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "rq_aio.h"
#include "rq_fs.h"
#include "rq_log.h"
#include "rq_node.h"

/* Lines are the binary's own ("broker: stopped"): every rq_log() below has
 * its spec in `config`. */
#define LOG_TAG config->kind

/* The signals that ask for a shutdown; SIGHUP: the terminal went away (a
 * closed ssh session, tmux kill-session). */
static const int stop_signals[] = {SIGTERM, SIGINT, SIGHUP};
#define N_STOP_SIGNALS (sizeof stop_signals / sizeof stop_signals[0])

struct process {
    const struct rq_main_spec *spec;
    void *self;
    uv_signal_t signals[N_STOP_SIGNALS];
};

static void signals_close(struct process *p)
{
    for (size_t i = 0; i < N_STOP_SIGNALS; i++) {
        if (!uv_is_closing((uv_handle_t *)&p->signals[i])) {
            uv_close((uv_handle_t *)&p->signals[i], NULL);
        }
    }
}

static void on_signal(uv_signal_t *s, int signum)
{
    struct process *p = s->data;
    const struct rq_config_spec *config = p->spec->config;
    rq_log(RQ_INFO, "received %s", strsignal(signum));
    signals_close(p);
    p->spec->stop(p->self);
}

static void signals_start(struct process *p, uv_loop_t *loop)
{
    for (size_t i = 0; i < N_STOP_SIGNALS; i++) {
        uv_signal_t *s = &p->signals[i];
        uv_signal_init(loop, s);
        s->data = p;
        uv_signal_start(s, on_signal, stop_signals[i]);
        uv_unref((uv_handle_t *)s);
    }
}

int rq_main(const struct rq_main_spec *spec, void *self, void *cfg, int argc,
            char **argv)
{
    const struct rq_config_spec *config = spec->config;
    static struct process p;
    char why[512] = "";
    int lock_fd = -1;

    /* A peer or client that goes away must not kill us with SIGPIPE. */
    signal(SIGPIPE, SIG_IGN);
    /* A file size limit (RLIMIT_FSIZE) makes a write fail with EFBIG, an
     * error like a full disk, rather than kill the process. */
    signal(SIGXFSZ, SIG_IGN);
    int rv = rq_config_load(config, cfg, argc, argv, why, sizeof why);
    if (rv == 0) {
        rv = spec->check(self, why, sizeof why);
    }
    if (rv != 0) {
        fprintf(stderr, "%s: %s\n", config->kind, why);
        return 2;
    }
    if (rq_aio_init(why, sizeof why) != 0) {
        rq_log(RQ_WARN, "%s; segment closes will block the loop", why);
    }
    uv_loop_t *loop = uv_default_loop();
    const char *const *data = rq_config_field(config, cfg, "data", RQ_OPT_STR);
    rv = rq_lock_dir(*data, &lock_fd, why, sizeof why);
    if (rv == 0) {
        rv = spec->start(self, loop, why, sizeof why);
    }
    if (rv != 0) {
        rq_log(RQ_ERROR, "fatal: %s", why);
        fprintf(stderr, "%s: %s\n", config->kind, why);
        _exit(1);
    }
    p.spec = spec;
    p.self = self;
    signals_start(&p, loop);
    uv_run(loop, UV_RUN_DEFAULT);
    signals_close(&p);
    uv_run(loop, UV_RUN_DEFAULT); /* Their close callbacks. */
    int code = spec->finish(self);
    rq_node_release_closed();
    if (uv_loop_close(loop) != 0) {
        rq_log(RQ_WARN, "loop closed with handles still open");
    }
    close(lock_fd);
    rq_aio_close();
    rq_config_free(config->opts, config->n, cfg);
    rq_log(RQ_INFO, "stopped");
    return code;
}

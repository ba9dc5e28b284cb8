/*
 * The life of a server binary (see rq_main.h).
 */
#include "rq_main.h"

#include <signal.h>
#include <stdio.h>
#include <unistd.h>

#include "rq_aio.h"
#include "rq_fs.h"
#include "rq_log.h"
#include "rq_node.h"

/* Lines are the binary's own ("broker: stopped"): every rq_log() below has
 * its spec in `config`. */
#define LOG_TAG config->kind

int rq_main(const struct rq_main_spec *spec, void *self, void *cfg, int argc,
            char **argv)
{
    const struct rq_config_spec *config = spec->config;
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
    uv_run(loop, UV_RUN_DEFAULT);
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

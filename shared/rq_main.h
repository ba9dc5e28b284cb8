/*
 * The life of a server binary (manager, broker, atm), alike for the three:
 *
 *   ignore SIGPIPE and SIGXFSZ
 *   read the options (rq_config_load), then the binary's own checks
 *                                             fails: "KIND: why", exit 2
 *   start the segment-closing thread (rq_aio) fails: a warning, go on
 *   lock DATA/LOCK for the process's lifetime
 *   the binary's start                        fails: "fatal: why", exit 1
 *   SIGTERM, SIGINT, SIGHUP: "received ...", the binary's stop
 *   run the loop until the binary has closed every handle
 *   the binary's finish: frees what start made, gives the exit code
 *   release closed Raft nodes, close the loop, unlock, "stopped"
 *
 * A failed start exits at once with _exit(): nothing that could lose data
 * is running yet, and the kernel reclaims the half-built state. The
 * signal handles do not keep the loop alive; the first signal closes
 * them, so a second one has its default effect (an impatient operator's
 * second Ctrl-C ends the process), and a shutdown the binary began itself
 * leaves them to rq_main once the loop has stopped.
 */
#ifndef RQ_MAIN_H
#define RQ_MAIN_H

#include <stddef.h>

#include <uv.h>

#include "rq_config.h"

struct rq_main_spec {
    /* The options; the table has "data" (the directory locked) besides
     * the four rq_config_load() reads. */
    const struct rq_config_spec *config;
    /* What the options' own rules cannot say (ranges, addresses, peers):
     * 0, or RQ_INVALID with the flag and the rule in @why. */
    int (*check)(void *self, char *why, size_t whyn);
    /* Starts serving on @loop: 0, or an error with @why. */
    int (*start)(void *self, uv_loop_t *loop, char *why, size_t whyn);
    /* Begins an orderly shutdown: closes every handle of the binary's, so
     * the loop stops. Also runs after a shutdown the binary began. */
    void (*stop)(void *self);
    /* The loop has stopped: frees what start made; the exit code. */
    int (*finish)(void *self);
};

/*
 * Runs the binary @spec describes over @self, whose options fill @cfg;
 * returns main's exit code (a failed start never returns).
 */
int rq_main(const struct rq_main_spec *spec, void *self, void *cfg, int argc,
            char **argv);

#endif /* RQ_MAIN_H */

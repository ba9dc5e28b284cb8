/*
 * The process's own figures as metrics: resident and virtual memory, CPU
 * time, open and allowed file descriptors, and start time, read from
 * /proc/self (Linux) and getrusage(2) each time the registry is rendered.
 *
 * Families (all without labels):
 *   raftq_process_resident_memory_bytes      gauge
 *   raftq_process_virtual_memory_bytes       gauge
 *   raftq_process_cpu_seconds_total          counter (user + system)
 *   raftq_process_open_fds                   gauge
 *   raftq_process_max_fds                    gauge (RLIMIT_NOFILE)
 *   raftq_process_start_time_seconds         gauge (Unix time)
 * A figure that cannot be read keeps its last value.
 */
#ifndef RQ_PROC_H
#define RQ_PROC_H

#include <stdint.h>

#include "rq_metrics.h"

/* Placed by the caller; it must live as long as the registry. */
struct rq_proc_metrics {
    struct rq_metric *resident;
    struct rq_metric *virtual_bytes;
    struct rq_metric *cpu;
    struct rq_metric *open_fds;
    struct rq_metric *max_fds;
    struct rq_metric *start_time;
};

/* Registers the families in @m and a collect callback. 0 or RQ_NOMEM. */
int rq_proc_metrics_init(struct rq_proc_metrics *p, struct rq_metrics *m);
/* Removes the collect callback, for a @p that goes before @m does. */
void rq_proc_metrics_close(struct rq_proc_metrics *p, struct rq_metrics *m);

/*
 * Reads the start time (clock ticks after boot, field 22) out of the text
 * of /proc/PID/stat, whose second field (the command in parentheses) may
 * hold spaces and parentheses itself. 0, or RQ_MALFORMED.
 */
int rq_proc_stat_start_ticks(const char *stat, uint64_t *ticks);

#endif /* RQ_PROC_H */

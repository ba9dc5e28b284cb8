/*
 * Process metrics (see rq_proc.h). Each rendering reads /proc/self/statm
 * and counts /proc/self/fd; CPU time comes from getrusage(2), which is
 * finer than the clock ticks of /proc/self/stat. The start time is read
 * once, at registration: /proc/self/stat's start (ticks after boot) plus
 * the boot time from /proc/stat.
 */
#include "rq_proc.h"

#include <dirent.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <unistd.h>

#include "rq_err.h"
#include "rq_version.h"

int rq_proc_stat_start_ticks(const char *stat, uint64_t *ticks)
{
    /* The command ends at the last ')'; field 3 (state) follows. */
    const char *p = strrchr(stat, ')');
    if (p == NULL) {
        return RQ_MALFORMED;
    }
    p++;
    for (int field = 3; field <= 22; field++) {
        while (*p == ' ') {
            p++;
        }
        if (*p == '\0' || *p == '\n') {
            return RQ_MALFORMED;
        }
        if (field == 22) {
            char *end;
            unsigned long long v = strtoull(p, &end, 10);
            if (end == p || (*end != ' ' && *end != '\n' && *end != '\0')) {
                return RQ_MALFORMED;
            }
            *ticks = v;
            return 0;
        }
        while (*p != ' ' && *p != '\0' && *p != '\n') {
            p++;
        }
    }
    return RQ_MALFORMED; /* Not reached. */
}

/* The whole of a small file as text in @buf; false if unreadable. */
static bool read_text(const char *path, char *buf, size_t n)
{
    FILE *f = fopen(path, "re");
    if (f == NULL) {
        return false;
    }
    size_t len = fread(buf, 1, n - 1, f);
    fclose(f);
    buf[len] = '\0';
    return len > 0;
}

/* Unix time at which the process started, or 0 if unknown. */
static double start_time(void)
{
    char text[4096];
    uint64_t ticks;
    long hz = sysconf(_SC_CLK_TCK);

    if (hz <= 0 || !read_text("/proc/self/stat", text, sizeof text) ||
        rq_proc_stat_start_ticks(text, &ticks) != 0 ||
        !read_text("/proc/stat", text, sizeof text)) {
        return 0;
    }
    const char *b = strstr(text, "\nbtime ");
    if (b == NULL) {
        return 0;
    }
    return (double)strtoull(b + 7, NULL, 10) + (double)ticks / (double)hz;
}

static void collect(void *data)
{
    struct rq_proc_metrics *p = data;
    char text[256];
    unsigned long long size;
    unsigned long long resident;
    struct rusage ru;
    struct rlimit rl;
    long page = sysconf(_SC_PAGESIZE);

    if (page > 0 && read_text("/proc/self/statm", text, sizeof text) &&
        sscanf(text, "%llu %llu", &size, &resident) == 2) {
        rq_metric_set(p->virtual_bytes, (double)size * (double)page);
        rq_metric_set(p->resident, (double)resident * (double)page);
    }
    if (getrusage(RUSAGE_SELF, &ru) == 0) {
        rq_metric_set(p->cpu, (double)ru.ru_utime.tv_sec +
                                  (double)ru.ru_utime.tv_usec / 1e6 +
                                  (double)ru.ru_stime.tv_sec +
                                  (double)ru.ru_stime.tv_usec / 1e6);
    }
    DIR *d = opendir("/proc/self/fd");
    if (d != NULL) {
        unsigned long n = 0;
        struct dirent *e;
        while ((e = readdir(d)) != NULL) {
            if (e->d_name[0] != '.') {
                n++;
            }
        }
        closedir(d);
        rq_metric_set(p->open_fds, (double)(n - 1)); /* Not the DIR's own. */
    }
    if (getrlimit(RLIMIT_NOFILE, &rl) == 0) {
        rq_metric_set(p->max_fds,
                      rl.rlim_cur == RLIM_INFINITY ? -1 : (double)rl.rlim_cur);
    }
}

void rq_proc_metrics_close(struct rq_proc_metrics *p, struct rq_metrics *m)
{
    rq_metrics_off_collect(m, collect, p);
}

int rq_proc_metrics_init(struct rq_proc_metrics *p, struct rq_metrics *m)
{
    static const struct rq_metric_def defs[] = {
        {RQ_METRIC_GAUGE,
         "raftq_process_resident_memory_bytes",
         "Resident memory of the process.",
         {NULL}},
        {RQ_METRIC_GAUGE,
         "raftq_process_virtual_memory_bytes",
         "Virtual memory of the process.",
         {NULL}},
        {RQ_METRIC_COUNTER,
         "raftq_process_cpu_seconds_total",
         "CPU time used by the process, user and system.",
         {NULL}},
        {RQ_METRIC_GAUGE,
         "raftq_process_open_fds",
         "File descriptors open in the process.",
         {NULL}},
        {RQ_METRIC_GAUGE,
         "raftq_process_max_fds",
         "The process's limit on open file descriptors (-1: none).",
         {NULL}},
        {RQ_METRIC_GAUGE,
         "raftq_process_start_time_seconds",
         "When the process started, in seconds since the Unix epoch.",
         {NULL}},
    };
    struct rq_metric **slots[] = {&p->resident, &p->virtual_bytes,
                                  &p->cpu,      &p->open_fds,
                                  &p->max_fds,  &p->start_time};
    for (size_t i = 0; i < sizeof defs / sizeof defs[0]; i++) {
        *slots[i] = rq_metric_family_child(rq_metrics_add(m, &defs[i]));
        if (*slots[i] == NULL) {
            return RQ_NOMEM; /* UNTESTED: ENOMEM only. */
        }
    }
    rq_metric_set(p->start_time, start_time());
    static const struct rq_metric_def build = {
        RQ_METRIC_GAUGE,
        "raftq_build_info",
        "1, labelled with the release this process was built as.",
        {"version"}};
    const char *version[] = {rq_version()};
    struct rq_metric *info = rq_metric_get(rq_metrics_add(m, &build), version);
    if (info == NULL) {
        return RQ_NOMEM; /* UNTESTED: ENOMEM only. */
    }
    rq_metric_set(info, 1);
    return rq_metrics_on_collect(m, collect, p);
}

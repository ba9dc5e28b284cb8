/*
 * How long this machine keeps a ready thread from running, printed, never
 * asserted: make bench runs it beside raftq's minute-long one-in-flight
 * run, so that the maximum latency of that run can be read against what
 * the machine itself did meanwhile.
 *
 * One thread sleeps 1 ms at a time (clock_nanosleep on CLOCK_MONOTONIC)
 * for the seconds given and notes by how much each sleep overran. On an
 * idle machine the overrun is tens of microseconds; a virtual machine
 * whose host takes its CPUs away, or a machine too busy to run the
 * thread, shows milliseconds. One JSON line, the form raftq bench --json
 * prints: {"system": "machine", "case": "stalls", "seconds", "sleeps",
 * "max_ms", "over_5ms", "over_10ms"}.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

static double now_ms(void)
{
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (double)t.tv_sec * 1e3 + (double)t.tv_nsec / 1e6;
}

int main(int argc, char **argv)
{
    char *end = NULL;
    double seconds = argc == 2 ? strtod(argv[1], &end) : 0;
    if (argc != 2 || end == argv[1] || *end != '\0' || seconds <= 0 ||
        seconds > 3600) {
        fprintf(stderr, "usage: stalls SECONDS (at most 3600)\n");
        return 2;
    }
    const struct timespec ms = {0, 1000000};
    double stop = now_ms() + seconds * 1e3;
    double max = 0;
    long sleeps = 0, over5 = 0, over10 = 0;
    for (double t = now_ms(); t < stop;) {
        int rv = clock_nanosleep(CLOCK_MONOTONIC, 0, &ms, NULL);
        if (rv != 0 && rv != EINTR) {
            fprintf(stderr, "stalls: clock_nanosleep: %s\n", strerror(rv));
            return 1;
        }
        double after = now_ms();
        double over = after - t - 1.0;
        max = over > max ? over : max;
        over5 += over > 5.0;
        over10 += over > 10.0;
        sleeps++;
        t = after;
    }
    printf(
        "{\"system\": \"machine\", \"case\": \"stalls\", \"seconds\": %.3f, "
        "\"sleeps\": %ld, \"max_ms\": %.3f, \"over_5ms\": %ld, "
        "\"over_10ms\": %ld}\n",
        seconds, sleeps, max, over5, over10);
    return 0;
}

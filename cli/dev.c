/*
 * `raftq dev` (see dev.h): the supervisor of a local cluster.
 *
 * Signals are blocked for the whole run and taken with sigtimedwait(), so
 * the supervisor is one plain loop: wait a little for a signal, reap the
 * children that exited, and (while starting) check readiness over HTTP.
 * Children get an empty signal mask, their own process group, and
 * PR_SET_PDEATHSIG, so they stop even if raftq itself is SIGKILLed.
 */
#include "dev.h"

#include <arpa/inet.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/prctl.h>
#include <sys/random.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "devplan.h"
#include "devtls.h"
#include "mclient.h"
#include "rq_err.h"
#include "rq_fs.h"
#include "rq_keys.h"

extern char **environ;

#define READY_TIMEOUT_MS 60000
#define STOP_TIMEOUT_MS 10000
/* A run's children outlive a supervisor killed with SIGKILL for up to
 * their own STOP_TIMEOUT_MS. */
#define LEFTOVER_WAIT_MS 15000
#define TICK_MS 200
#define PROBE_TIMEOUT_MS 1000
#define MAX_CHILDREN (DEVPLAN_MAX_MANAGERS + DEVPLAN_MAX_BROKERS)
#define WHY_LEN 512

struct child {
    enum devplan_role role;
    unsigned id;
    pid_t pid; /* 0 once reaped. */
    int status;
    char log[DEVPLAN_PATH_MAX];
};

struct dev {
    struct devplan plan;
    char root[DEVPLAN_PATH_MAX];
    struct child children[MAX_CHILDREN];
    size_t n_children;
    sigset_t signals; /* Blocked, taken by sigtimedwait(). */
    int lock_fd;
    struct mclient *mc;
    char missing[WHY_LEN];          /* What the last readiness check lacked. */
    char tls_dir[DEVPLAN_PATH_MAX]; /* With --tls: DIR/dev/tls. */
    char ca[DEVPLAN_PATH_MAX + 16]; /* With --tls: its ca.crt. */
};

static uint64_t now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}

static void on_sigchld(int signum)
{
    /* Only there so that SIGCHLD is never discarded while blocked. */
    (void)signum;
}

/* ---- Before starting: binaries, lock, layout, ports ---- */

static int find_binaries(struct dev *d)
{
    char self[PATH_MAX];
    ssize_t n = readlink("/proc/self/exe", self, sizeof self - 1);
    if (n <= 0) {
        fprintf(stderr, "raftq dev: cannot find where raftq is: %s\n",
                strerror(errno));
        return RQ_IO;
    }
    self[n] = '\0';
    char *slash = strrchr(self, '/');
    *slash = '\0';
    snprintf(d->plan.bin_dir, sizeof d->plan.bin_dir, "%s", self);
    for (int r = DEVPLAN_MANAGER; r <= DEVPLAN_BROKER; r++) {
        char path[DEVPLAN_PATH_MAX + 16];
        snprintf(path, sizeof path, "%s/%s", d->plan.bin_dir,
                 devplan_role_name(r));
        if (access(path, X_OK) != 0) {
            fprintf(stderr,
                    "raftq dev: no %s binary at %s (make all builds it "
                    "next to raftq)\n",
                    devplan_role_name(r), path);
            return RQ_IO;
        }
    }
    return 0;
}

/* One raftq dev per data directory: a lock on DIR/dev/raftq-dev.lock,
 * which holds the owner's pid for the error message. The descriptor is
 * close-on-exec, so children never hold the lock. */
static int take_lock(struct dev *d)
{
    char path[DEVPLAN_PATH_MAX + 32], why[WHY_LEN];
    if (rq_mkdir_p(d->root, why, sizeof why) != 0) {
        fprintf(stderr, "raftq dev: %s\n", why);
        return RQ_IO;
    }
    snprintf(path, sizeof path, "%s/raftq-dev.lock", d->root);
    d->lock_fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC, 0644);
    if (d->lock_fd < 0) {
        fprintf(stderr, "raftq dev: cannot open %s: %s\n", path,
                strerror(errno));
        return RQ_IO;
    }
    if (flock(d->lock_fd, LOCK_EX | LOCK_NB) != 0) {
        char pid[32] = "";
        ssize_t n = pread(d->lock_fd, pid, sizeof pid - 1, 0);
        pid[n > 0 ? n : 0] = '\0';
        pid[strcspn(pid, "\n")] = '\0';
        fprintf(stderr,
                "raftq dev: %s is in use by another raftq dev%s%s%s; stop "
                "it first, or give another --data\n",
                d->plan.data, pid[0] != '\0' ? " (pid " : "", pid,
                pid[0] != '\0' ? ")" : "");
        close(d->lock_fd);
        d->lock_fd = -1;
        return RQ_EXISTS;
    }
    char pid[32];
    int len = snprintf(pid, sizeof pid, "%ld\n", (long)getpid());
    if (ftruncate(d->lock_fd, 0) != 0 ||
        pwrite(d->lock_fd, pid, (size_t)len, 0) != len) {
        /* The pid is only for messages; the lock is what counts. */
    }
    return 0;
}

/* Writes @rec to @path through a temporary file of mode 0600, since it
 * holds the cluster secret and the admin token. */
static int write_private_json(const json_t *rec, const char *path)
{
    char tmp[DEVPLAN_PATH_MAX + 40];
    snprintf(tmp, sizeof tmp, "%s.tmp", path);
    int fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
    if (fd < 0) {
        return RQ_IO;
    }
    /* A temporary file left by an older raftq may have a wider mode. */
    int rv = fchmod(fd, 0600) == 0 && json_dumpfd(rec, fd, JSON_INDENT(2)) == 0
                 ? 0
                 : RQ_IO;
    if (close(fd) != 0 || rv != 0 || rename(tmp, path) != 0) {
        unlink(tmp);
        return RQ_IO;
    }
    return 0;
}

/* Reads the layout, secret and token recorded by an earlier run, merges
 * them with what was asked (making a secret and token on the first run),
 * and records the result. */
static int settle_layout(struct dev *d, const struct cmdline *cl)
{
    char path[DEVPLAN_PATH_MAX + 32];
    char why[WHY_LEN];
    uint8_t rnd[2 * DEVPLAN_RANDOM_BYTES];
    json_t *recorded = NULL;
    json_error_t jerr;
    struct stat st;

    snprintf(path, sizeof path, "%s/cluster.json", d->root);
    if (stat(path, &st) == 0) {
        recorded = json_load_file(path, 0, &jerr);
        if (recorded == NULL) {
            fprintf(stderr, "raftq dev: %s: %s (remove it to start afresh)\n",
                    path, jerr.text);
            return RQ_MALFORMED;
        }
        /* Written below with mode 0600; say so if others could read the
         * secret until now. */
        if ((st.st_mode & 077) != 0 &&
            json_object_get(recorded, "cluster_secret") != NULL) {
            fprintf(stderr,
                    "raftq dev: %s was readable by other users (mode %03o); "
                    "its mode is now 0600\n",
                    path, (unsigned)(st.st_mode & 0777));
        }
    }
    if (getrandom(rnd, sizeof rnd, 0) != (ssize_t)sizeof rnd) {
        fprintf(stderr, "raftq dev: getrandom: %s\n", strerror(errno));
        json_decref(recorded); /* UNTESTED: Linux 3.17 and later have it. */
        return RQ_IO;
    }
    struct devplan_request req = {
        .managers = cl->dev_managers,
        .has_managers = cl->has_dev_managers,
        .brokers = cl->dev_brokers,
        .has_brokers = cl->has_dev_brokers,
        .base_port = cl->base_port,
        .has_base_port = cl->has_base_port,
    };
    int rv = devplan_merge(&d->plan, &req, recorded, why, sizeof why);
    if (rv != 0) {
        fprintf(stderr, "raftq dev: %s\n", why);
    } else {
        rv = devplan_secrets(&d->plan, recorded, rnd, cl->token, why,
                             sizeof why);
        if (rv != 0) {
            fprintf(stderr, "raftq dev: %s: %s (remove it to start afresh)\n",
                    path, why);
        }
    }
    rq_keys_wipe(rnd, sizeof rnd);
    json_decref(recorded);
    if (rv != 0) {
        return rv;
    }
    json_t *rec = devplan_record(&d->plan);
    rv = rec != NULL ? write_private_json(rec, path) : RQ_NOMEM;
    json_decref(rec);
    if (rv != 0) {
        fprintf(stderr, "raftq dev: cannot write %s: %s\n", path,
                strerror(errno));
    }
    return rv;
}

/* Whether @port on 127.0.0.1 can be bound now. SO_REUSEADDR, as the
 * children use, so a port in TIME_WAIT from the last run counts as
 * free and only a listener counts as in use. */
static bool port_free(uint16_t port)
{
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0) {
        return true; /* UNTESTED: no sockets at all; the child will say. */
    }
    int one = 1;
    setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons(port)};
    inet_pton(AF_INET, DEVPLAN_HOST, &a.sin_addr);
    bool ok = bind(fd, (struct sockaddr *)&a, sizeof a) == 0;
    close(fd);
    return ok;
}

/* The start time of process @pid (field 22 of /proc/PID/stat, in clock
 * ticks since boot), or 0 when there is no such process. A process that is
 * exiting, or exited and not yet reaped, still has it. */
static unsigned long long started(long pid)
{
    char path[64];
    char text[1024];
    unsigned long long t = 0;
    snprintf(path, sizeof path, "/proc/%ld/stat", pid);
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) {
        return 0;
    }
    ssize_t n = read(fd, text, sizeof text - 1);
    close(fd);
    text[n > 0 ? n : 0] = '\0';
    /* After the command name in parentheses, which may hold anything:
     * state is field 3, start time field 22. */
    const char *p = strrchr(text, ')');
    if (p == NULL || sscanf(p + 1,
                            " %*c %*d %*d %*d %*d %*d %*u %*u %*u %*u %*u "
                            "%*u %*u %*d %*d %*d %*d %*d %*d %llu",
                            &t) != 1) {
        return 0;
    }
    return t;
}

/* Notes child @pid in DIR/dev/children, "PID START" a line, so that the
 * next run can tell whether the processes of this one are gone. */
static void note_child(const struct dev *d, pid_t pid)
{
    char path[DEVPLAN_PATH_MAX + 16];
    snprintf(path, sizeof path, "%s/children", d->root);
    FILE *f = fopen(path, d->n_children == 1 ? "w" : "a");
    if (f != NULL) {
        fprintf(f, "%ld %llu\n", (long)pid, started(pid));
        fclose(f);
    }
}

/* Children of the last run (DIR/dev/children) that still exist, exiting
 * ones and those not yet reaped included: until its last process is gone,
 * one may hold a port (an exiting process keeps its sockets open after its
 * command line is gone from /proc). */
static size_t noted_leftovers(const char *root)
{
    char path[DEVPLAN_PATH_MAX + 16];
    long pid;
    unsigned long long t;
    size_t n = 0;
    snprintf(path, sizeof path, "%s/children", root);
    FILE *f = fopen(path, "r");
    if (f == NULL) {
        return 0;
    }
    while (fscanf(f, "%ld %llu", &pid, &t) == 2) {
        n += pid > 0 && pid != (long)getpid() && t != 0 && started(pid) == t;
    }
    fclose(f);
    return n;
}

/* Processes of an earlier run still alive: those noted, and those with an
 * argument under @root (each child's --data, its TLS files), for a run
 * that noted none. A supervisor killed with SIGKILL leaves its children
 * shutting down for a few seconds. */
static size_t leftovers(const char *root)
{
    size_t noted = noted_leftovers(root);
    if (noted > 0) {
        return noted;
    }
    char want[DEVPLAN_PATH_MAX + 2];
    char path[64];
    char args[4096];
    size_t n = 0;
    int len = snprintf(want, sizeof want, "%s/", root);
    DIR *proc = opendir("/proc");
    if (proc == NULL || len <= 0 || (size_t)len >= sizeof want) {
        if (proc != NULL) {
            closedir(proc);
        }
        return 0; /* UNTESTED: no /proc; the port check alone decides. */
    }
    struct dirent *e;
    while ((e = readdir(proc)) != NULL) {
        char *end;
        long pid = strtol(e->d_name, &end, 10);
        if (*end != '\0' || pid <= 0 || pid == (long)getpid()) {
            continue;
        }
        snprintf(path, sizeof path, "/proc/%ld/cmdline", pid);
        int fd = open(path, O_RDONLY | O_CLOEXEC);
        if (fd < 0) {
            continue;
        }
        ssize_t got = read(fd, args, sizeof args - 1);
        close(fd);
        args[got > 0 ? got : 0] = '\0';
        for (ssize_t i = 0; i < got; i += (ssize_t)strlen(args + i) + 1) {
            if (strncmp(args + i, want, (size_t)len) == 0) {
                n++;
                break;
            }
        }
    }
    closedir(proc);
    return n;
}

/* The first port of the layout something listens on, or 0. */
static uint16_t port_in_use(const struct dev *d, int *role, unsigned *id,
                            int *which)
{
    for (int r = DEVPLAN_MANAGER; r <= DEVPLAN_BROKER; r++) {
        unsigned n = r == DEVPLAN_MANAGER ? d->plan.managers : d->plan.brokers;
        for (unsigned i = 1; i <= n; i++) {
            uint16_t ports[2] = {devplan_http_port(&d->plan, r, i),
                                 devplan_raft_port(&d->plan, r, i)};
            for (int k = 0; k < 2; k++) {
                if (!port_free(ports[k])) {
                    *role = r;
                    *id = i;
                    *which = k;
                    return ports[k];
                }
            }
        }
    }
    return 0;
}

/* Every port of the layout free, after waiting up to LEFTOVER_WAIT_MS for
 * the processes of an earlier run that hold them to exit. */
static int check_ports(const struct dev *d)
{
    uint64_t deadline = 0;
    int role;
    unsigned id;
    int which;
    uint16_t port;
    while ((port = port_in_use(d, &role, &id, &which)) != 0) {
        size_t left = leftovers(d->root);
        if (deadline == 0 && left > 0) {
            fprintf(stderr,
                    "raftq dev: %zu process%s of the last run on %s still "
                    "running (port %u in use); waiting up to %d s for them "
                    "to exit\n",
                    left, left == 1 ? "" : "es", d->plan.data, port,
                    LEFTOVER_WAIT_MS / 1000);
            deadline = now_ms() + LEFTOVER_WAIT_MS;
        }
        if (deadline == 0 || now_ms() >= deadline) {
            fprintf(stderr,
                    "raftq dev: port %u (%s %u %s) on %s is in use; stop "
                    "what listens there, or give another --base-port\n",
                    port, devplan_role_name(role), id,
                    which == 0 ? "HTTP" : "Raft", DEVPLAN_HOST);
            return RQ_EXISTS;
        }
        struct timespec pause = {.tv_nsec = 100 * 1000 * 1000};
        nanosleep(&pause, NULL);
    }
    return 0;
}

/* ---- Children ---- */

/* In the child: never returns. */
static void spawn_child(const struct devplan_argv *a, char **envp,
                        const char *log, pid_t parent)
{
    sigset_t none;
    sigemptyset(&none);
    sigprocmask(SIG_SETMASK, &none, NULL);
    setpgid(0, 0);
    prctl(PR_SET_PDEATHSIG, SIGTERM);
    if (getppid() != parent) {
        _exit(1); /* raftq died before the line above took effect. */
    }
    int in = open("/dev/null", O_RDONLY);
    int out = open(log, O_WRONLY | O_CREAT | O_APPEND, 0644);
    if (in < 0 || out < 0) {
        dprintf(2, "raftq dev: cannot open %s: %s\n", log, strerror(errno));
        _exit(127);
    }
    dup2(in, 0);
    dup2(out, 1);
    dup2(out, 2);
    execve(a->argv[0], a->argv, envp);
    dprintf(2, "raftq dev: cannot run %s: %s\n", a->argv[0], strerror(errno));
    _exit(127);
}

static int start_child(struct dev *d, enum devplan_role r, unsigned id)
{
    struct devplan_argv a;
    struct child *c = &d->children[d->n_children];
    char dir[DEVPLAN_PATH_MAX], why[WHY_LEN];

    c->role = r;
    c->id = id;
    c->pid = 0;
    devplan_log(&d->plan, r, id, c->log, sizeof c->log);
    devplan_dir(&d->plan, r, id, dir, sizeof dir);
    if (devplan_argv(&d->plan, r, id, &a) != 0) {
        fprintf(stderr, "raftq dev: the %s command line is too long\n",
                devplan_role_name(r)); /* UNTESTED: paths under 1 KiB. */
        return RQ_TOOBIG;
    }
    if (rq_mkdir_p(dir, why, sizeof why) != 0) {
        fprintf(stderr, "raftq dev: %s\n", why);
        return RQ_IO;
    }
    FILE *f = fopen(c->log, "a");
    if (f == NULL) {
        fprintf(stderr, "raftq dev: cannot open %s: %s\n", c->log,
                strerror(errno));
        return RQ_IO;
    }
    time_t t = time(NULL);
    char when[64];
    strftime(when, sizeof when, "%Y-%m-%dT%H:%M:%S", localtime(&t));
    fprintf(f, "==== raftq dev %s:", when);
    for (int i = 0; i < a.argc; i++) {
        fprintf(f, " %s", a.argv[i]);
    }
    fprintf(f, "\n");
    fclose(f);
    /* raftq's environment, less what the plan sets (the secret and token
     * travel there, out of the process list), plus the plan's. */
    size_t n_env = 0, k = 0;
    while (environ[n_env] != NULL) {
        n_env++;
    }
    char **envp = malloc((n_env + (size_t)a.envc + 1) * sizeof *envp);
    if (envp == NULL) {
        fprintf(stderr, "raftq dev: out of memory\n"); /* UNTESTED */
        return RQ_NOMEM;
    }
    for (size_t i = 0; i < n_env; i++) {
        if (!devplan_env_replaced(environ[i])) {
            envp[k++] = environ[i];
        }
    }
    for (int i = 0; i < a.envc; i++) {
        envp[k++] = a.env[i];
    }
    envp[k] = NULL;
    fflush(stdout);
    fflush(stderr);
    pid_t parent = getpid();
    pid_t pid = fork();
    if (pid < 0) {
        fprintf(stderr, "raftq dev: fork: %s\n", strerror(errno));
        free(envp);
        return RQ_IO;
    }
    if (pid == 0) {
        spawn_child(&a, envp, c->log, parent);
    }
    free(envp);
    c->pid = pid;
    d->n_children++;
    note_child(d, pid);
    return 0;
}

static const char *child_name(const struct child *c, char *out, size_t n)
{
    snprintf(out, n, "%s %u", devplan_role_name(c->role), c->id);
    return out;
}

/* "status 1", "signal 11 (Segmentation fault)". */
static void describe_status(int status, char *out, size_t n)
{
    if (WIFEXITED(status)) {
        snprintf(out, n, "status %d", WEXITSTATUS(status));
    } else if (WIFSIGNALED(status)) {
        snprintf(out, n, "signal %d (%s)", WTERMSIG(status),
                 strsignal(WTERMSIG(status)));
    } else {
        snprintf(out, n, "wait status %d", status); /* UNTESTED */
    }
}

/* The last non-empty line of a log, cut to fit @out. */
static void last_line(const char *path, char *out, size_t n)
{
    char buf[4096];
    out[0] = '\0';
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) {
        return;
    }
    off_t size = lseek(fd, 0, SEEK_END);
    off_t from =
        size > (off_t)sizeof buf - 1 ? size - (off_t)sizeof buf + 1 : 0;
    ssize_t got = pread(fd, buf, sizeof buf - 1, from);
    close(fd);
    if (got <= 0) {
        return;
    }
    buf[got] = '\0';
    while (got > 0 && (buf[got - 1] == '\n' || buf[got - 1] == '\r')) {
        buf[--got] = '\0';
    }
    char *nl = strrchr(buf, '\n');
    snprintf(out, n, "%s", nl != NULL ? nl + 1 : buf);
}

/* Reaps every child that has exited; returns the first one found that
 * was not expected to exit, or NULL. */
static struct child *reap(struct dev *d)
{
    struct child *first = NULL;
    for (size_t i = 0; i < d->n_children; i++) {
        struct child *c = &d->children[i];
        if (c->pid == 0) {
            continue;
        }
        int status;
        pid_t r = waitpid(c->pid, &status, WNOHANG);
        if (r == c->pid) {
            c->pid = 0;
            c->status = status;
            if (first == NULL) {
                first = c;
            }
        }
    }
    return first;
}

static void report_death(const struct child *c)
{
    char name[32], st[96], line[240];
    describe_status(c->status, st, sizeof st);
    last_line(c->log, line, sizeof line);
    fprintf(stderr, "raftq dev: %s exited unexpectedly (%s); log %s%s%s\n",
            child_name(c, name, sizeof name), st, c->log,
            line[0] != '\0' ? ": " : "", line);
}

static size_t running(const struct dev *d)
{
    size_t n = 0;
    for (size_t i = 0; i < d->n_children; i++) {
        n += d->children[i].pid != 0;
    }
    return n;
}

/* SIGTERM to every child, up to STOP_TIMEOUT_MS for them to exit (a
 * second SIGINT or SIGTERM ends the wait), then SIGKILL. Returns 0 if
 * every child stopped cleanly (exit status 0) after the SIGTERM. */
static int stop_all(struct dev *d)
{
    int rv = 0;
    bool exited[MAX_CHILDREN] = {false};

    for (size_t i = 0; i < d->n_children; i++) {
        if (d->children[i].pid != 0) {
            kill(d->children[i].pid, SIGTERM);
            exited[i] = true; /* Judged below, once reaped. */
        }
    }
    uint64_t deadline = now_ms() + STOP_TIMEOUT_MS;
    while (running(d) > 0 && now_ms() < deadline) {
        struct timespec ts = {0, 100 * 1000000L};
        int sig = sigtimedwait(&d->signals, NULL, &ts);
        reap(d);
        if (sig == SIGINT || sig == SIGTERM) {
            fprintf(stderr, "raftq dev: stopping at once\n");
            break;
        }
    }
    for (size_t i = 0; i < d->n_children; i++) {
        struct child *c = &d->children[i];
        char name[32], st[96];
        if (c->pid != 0) {
            fprintf(stderr, "raftq dev: %s did not stop in time; killed\n",
                    child_name(c, name, sizeof name));
            kill(c->pid, SIGKILL);
            waitpid(c->pid, &c->status, 0);
            c->pid = 0;
            rv = RQ_TIMEOUT;
        } else if (exited[i] &&
                   !(WIFEXITED(c->status) && WEXITSTATUS(c->status) == 0)) {
            describe_status(c->status, st, sizeof st);
            fprintf(stderr, "raftq dev: %s stopped with %s; log %s\n",
                    child_name(c, name, sizeof name), st, c->log);
            rv = RQ_IO;
        }
    }
    return rv;
}

/* ---- Readiness ---- */

/* Every manager answers /readyz with 200 and the managers list every
 * broker started as alive (or draining) and heartbeating, or removed.
 * Fills d->missing otherwise. */
static bool cluster_ready(struct dev *d)
{
    struct mclient_resp r;
    char url[URL_MAX], why[WHY_LEN];

    for (unsigned i = 1; i <= d->plan.managers; i++) {
        devplan_manager_url(&d->plan, i, url, sizeof url);
        int rv = mclient_call_at(d->mc, url, "GET", "/readyz", NULL,
                                 PROBE_TIMEOUT_MS, &r, why, sizeof why);
        bool ok = rv == 0 && r.status == 200;
        mclient_resp_clear(&r);
        if (!ok) {
            snprintf(d->missing, sizeof d->missing, "manager %u is not ready",
                     i);
            return false;
        }
    }
    devplan_manager_url(&d->plan, 1, url, sizeof url);
    int rv = mclient_call_at(d->mc, url, "GET", "/admin/brokers", NULL,
                             PROBE_TIMEOUT_MS * 2, &r, why, sizeof why);
    if (rv != 0 || r.status != 200) {
        snprintf(d->missing, sizeof d->missing,
                 "the brokers cannot be listed (%s)",
                 rv != 0 ? why : r.message);
        mclient_resp_clear(&r);
        return false;
    }
    bool alive[DEVPLAN_MAX_BROKERS + 1] = {false};
    size_t k;
    json_t *b;
    json_array_foreach(json_object_get(r.body, "brokers"), k, b)
    {
        json_int_t id = json_integer_value(json_object_get(b, "id"));
        const char *st = json_string_value(json_object_get(b, "state"));
        bool heard = json_is_integer(json_object_get(b, "heartbeat_age_ms"));
        if (id < 1 || id > DEVPLAN_MAX_BROKERS || st == NULL) {
            continue;
        }
        /* Heard from since this leader took over: a state restored from
         * the store says nothing about the process just started. A broker
         * removed by an operator stays out of the cluster for good, so it
         * is not waited for. */
        alive[id] =
            ((strcmp(st, "alive") == 0 || strcmp(st, "draining") == 0) &&
             heard) ||
            strcmp(st, "removed") == 0;
    }
    mclient_resp_clear(&r);
    for (unsigned i = 1; i <= d->plan.brokers; i++) {
        if (!alive[i]) {
            snprintf(d->missing, sizeof d->missing,
                     "broker %u is not registered and heard from", i);
            return false;
        }
    }
    return true;
}

/* ---- What to print ---- */

static void print_banner(const struct dev *d, const char *argv0)
{
    char url[URL_MAX], first[URL_MAX], list[URL_MAX * DEVPLAN_MAX_MANAGERS];
    size_t len = 0;
    const char *raftq = strchr(argv0, '/') != NULL ? argv0 : "raftq";

    devplan_manager_url(&d->plan, 1, first, sizeof first);
    list[0] = '\0';
    printf(
        "raftq dev: ready: %u managers, %u brokers (data and logs in "
        "%s)\n\n",
        d->plan.managers, d->plan.brokers, d->root);
    printf("  managers     ");
    for (unsigned i = 1; i <= d->plan.managers; i++) {
        devplan_manager_url(&d->plan, i, url, sizeof url);
        printf("%s%s", i > 1 ? " " : "", url);
        len += (size_t)snprintf(list + len, sizeof list - len, "%s%s",
                                i > 1 ? "," : "", url);
    }
    printf("\n  status page  %s/ui\n", first);
    if (d->plan.token == d->plan.admin_token) {
        printf("  admin token  %s   (kept in %s/cluster.json)\n\n",
               d->plan.token, d->root);
    } else {
        printf("  admin token  %s   (given with --token)\n\n", d->plan.token);
    }
    const char *ca = d->plan.tls_dir != NULL ? d->ca : NULL;
    char curl[DEVPLAN_PATH_MAX + 32] = "curl";
    if (ca != NULL) {
        printf("  TLS 1.3 on every port; CA %s\n\n", ca);
        snprintf(curl, sizeof curl, "curl --cacert %s", ca);
    }
    printf("Try it with curl (any manager works):\n");
    printf(
        "  %s -s -XPOST %s/topics -d "
        "'{\"topic_name\":\"demo\",\"number_of_partitions\":3}'\n",
        curl, first);
    printf(
        "  %s -s -XPOST %s/v1/topics/demo/records -d "
        "'{\"records\":[{\"value\":\"hello\",\"partition_id\":0},"
        "{\"value\":\"world\",\"partition_id\":0}]}'\n",
        curl, first);
    printf("  %s -s '%s/v1/topics/demo/partitions/0/records?offset=0'\n\n",
           curl, first);
    printf("or with the client:\n");
    printf("  export RAFTQ_MANAGERS=%s\n", list);
    if (ca != NULL) {
        printf("  export RAFTQ_CACERT=%s\n", ca);
    }
    printf("  export RAFTQ_ADMIN_TOKEN=%s\n", d->plan.token);
    printf("  %s topic list\n", raftq);
    printf("  echo hi | %s produce demo\n", raftq);
    printf("  %s consume demo\n\n", raftq);
    printf("Ctrl-C stops the cluster; running raftq dev again resumes it.\n");
    fflush(stdout);
}

/* ---- The run ---- */

/* Waits for a signal or a child's exit; returns the exit code, or -1
 * when @until_ready and the cluster became ready. */
static int supervise(struct dev *d, bool until_ready)
{
    uint64_t deadline = now_ms() + READY_TIMEOUT_MS;
    for (;;) {
        struct timespec ts = {0, TICK_MS * 1000000L};
        int sig = sigtimedwait(&d->signals, NULL, &ts);
        if (sig == SIGINT || sig == SIGTERM || sig == SIGHUP) {
            fprintf(stderr, "raftq dev: %s: stopping the cluster\n",
                    strsignal(sig));
            int rv = stop_all(d);
            if (rv == 0) {
                fprintf(stderr, "raftq dev: stopped\n");
            }
            return rv == 0 ? CLI_OK : CLI_REFUSED;
        }
        struct child *dead = reap(d);
        if (dead != NULL) {
            report_death(dead);
            stop_all(d);
            return CLI_REFUSED;
        }
        if (!until_ready) {
            continue;
        }
        if (cluster_ready(d)) {
            return -1;
        }
        if (now_ms() >= deadline) {
            fprintf(stderr,
                    "raftq dev: the cluster is not ready after %d s (%s); "
                    "see the logs in %s\n",
                    READY_TIMEOUT_MS / 1000, d->missing, d->root);
            stop_all(d);
            return CLI_REFUSED;
        }
    }
}

static int start_all(struct dev *d)
{
    for (unsigned i = 1; i <= d->plan.managers; i++) {
        if (start_child(d, DEVPLAN_MANAGER, i) != 0) {
            return RQ_IO;
        }
    }
    for (unsigned i = 1; i <= d->plan.brokers; i++) {
        if (start_child(d, DEVPLAN_BROKER, i) != 0) {
            return RQ_IO;
        }
    }
    return 0;
}

int dev_run(const struct cmdline *cl, const char *argv0)
{
    struct dev *d = calloc(1, sizeof *d);
    char urls[DEVPLAN_MAX_MANAGERS][URL_MAX];
    int code = CLI_REFUSED;

    if (d == NULL) {
        fprintf(stderr, "raftq dev: out of memory\n"); /* UNTESTED */
        return CLI_REFUSED;
    }
    d->lock_fd = -1;
    snprintf(d->plan.data, sizeof d->plan.data, "%s", cl->data);
    devplan_root(&d->plan, d->root, sizeof d->root);
    if (find_binaries(d) != 0 || take_lock(d) != 0 ||
        settle_layout(d, cl) != 0 || check_ports(d) != 0) {
        goto out_after_lock;
    }
    if (cl->dev_tls) {
        char why[WHY_LEN];
        snprintf(d->tls_dir, sizeof d->tls_dir, "%s/tls", d->root);
        snprintf(d->ca, sizeof d->ca, "%s/ca.crt", d->tls_dir);
        d->plan.tls_dir = d->tls_dir;
        if (devtls_prepare(&d->plan, d->tls_dir, why, sizeof why) != 0) {
            fprintf(stderr, "raftq dev: %s\n", why);
            goto out_after_lock;
        }
    }
    for (unsigned i = 1; i <= d->plan.managers; i++) {
        devplan_manager_url(&d->plan, i, urls[i - 1], URL_MAX);
    }
    struct mclient_config mcfg = {
        .bases = (const char(*)[URL_MAX])urls,
        .n_bases = d->plan.managers,
        .token = d->plan.token,
        .cacert = cl->dev_tls ? d->ca : NULL,
        .timeout_ms = PROBE_TIMEOUT_MS,
    };
    if (mclient_new(&mcfg, &d->mc) != 0) {
        fprintf(stderr, "raftq dev: out of memory\n"); /* UNTESTED */
        goto out_after_lock;
    }

    struct sigaction sa = {.sa_handler = on_sigchld};
    sigemptyset(&sa.sa_mask);
    sigaction(SIGCHLD, &sa, NULL);
    sigemptyset(&d->signals);
    sigaddset(&d->signals, SIGINT);
    sigaddset(&d->signals, SIGTERM);
    sigaddset(&d->signals, SIGHUP);
    sigaddset(&d->signals, SIGCHLD);
    sigprocmask(SIG_BLOCK, &d->signals, NULL);

    fprintf(stderr,
            "raftq dev: starting %u managers and %u brokers on %s (ports "
            "%u-%u, data and logs in %s)\n",
            d->plan.managers, d->plan.brokers, DEVPLAN_HOST, d->plan.base_port,
            devplan_raft_port(&d->plan, DEVPLAN_BROKER, d->plan.brokers),
            d->root);
    if (start_all(d) != 0) {
        stop_all(d);
        goto out_after_client;
    }
    code = supervise(d, true);
    if (code < 0) {
        print_banner(d, argv0);
        code = supervise(d, false);
    }
out_after_client:
    mclient_free(d->mc);
out_after_lock:
    if (d->lock_fd >= 0) {
        close(d->lock_fd);
    }
    free(d);
    return code;
}

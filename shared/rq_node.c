/*
 * One Raft server: a struct raft over raft_uv disk I/O and a caller's
 * transport, with the guards libraft 0.22.1 needs (see rq_node.h). It is an
 * I/O adapter only; what the log means is the state machine's business.
 *
 * Readiness. A node is ready when it leads and a barrier it issued in its
 * current term has been applied. In one node's lifetime leadership of a term
 * is won at most once (a candidate always opens a new term; a sole voter
 * elects itself without one, but only inside raft_start()), so remembering
 * the term whose barrier completed is enough:
 *
 *     not leader --[raft elects us]--> leader, barrier not issued
 *         --[poll_cb: raft_barrier]--> leader, barrier in flight
 *         --[ready_barrier_cb, status 0]--> leader, ready
 *     any leader state --[new term or step-down]--> not leader
 *
 * Snapshot counts. libraft 0.22 checks the snapshot threshold after every
 * event it handles (a tick, a message: src/legacy.c legacyShouldTakeSnapshot
 * at the end of every step), so counts lowered by rq_node_set_log_budget()
 * take effect at the next tick, also on a node that receives no entry.
 *
 * Close sequence (libraft 0.22.1, src/raft.c and src/uv.c): raft_close()
 * fails the pending requests synchronously, then closes raft_uv, which
 * closes the transport and its own handles; its callback frees raft's own
 * memory and calls our raft close callback. raft_uv_close() merely frees
 * the raft_uv object; it is due once nothing in libraft can touch that
 * object again, which the library does not say (see the graveyard below).
 * The node also waits for its poll timer's close callback before it
 * reports itself closed.
 */
#include "rq_node.h"

#include <assert.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <limits.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <sys/stat.h>
#include <unistd.h>

#include "rq_entry.h"
#include "rq_err.h"
#include "rq_fs.h"
#include "rq_log.h"
#include "rq_logmem.h"
#include "rq_quiet.h"

#define LOG_TAG "rq_node"

#define DEFAULT_ELECTION_TIMEOUT_MS 1000
#define DEFAULT_HEARTBEAT_TIMEOUT_MS 100
#define DEFAULT_SNAPSHOT_THRESHOLD 1024
#define DEFAULT_SNAPSHOT_TRAILING 128
#define DEFAULT_SEGMENT_SIZE (1u << 20)
#define DEFAULT_POLL_MS 50
#define DEFAULT_INSTALL_SNAPSHOT_TIMEOUT_MS 5000
#define LABEL_MAX 64
/* raft_uv's own tick timer runs this slowly; the change poll gives libraft
 * its ticks (see "Idle groups go quiet"). */
#define RAFT_UV_TICK_MS 3600000u

/* The election timeout of a campaigning node (rq_node_campaign), which
 * ticks at every poll meanwhile: it stands within a poll or two of opening,
 * and a round that brought no leader starts again 40-80 ms later. */
#define CAMPAIGN_ELECTION_MS 40u

/* A client request (an entry or a barrier) in flight inside raft. */
struct request {
    union {
        struct raft_apply apply;
        struct raft_barrier barrier;
    } req;
    struct rq_node *node;
    rq_node_done_cb cb;
    void *data;
    struct request *prev;
    struct request *next;
};

struct rq_node {
    uv_loop_t *loop;
    struct raft_uv_transport *transport; /* Borrowed. */
    struct raft_io io;
    struct raft raft;
    struct rq_fsm_adapter fsm;
    /* The adapter calls node_ops, which pass everything on to the
     * owner's state machine, counting snapshots and, with byte-sized
     * snapshots, each entry in logmem. */
    const struct rq_fsm_ops *ops;
    void *fsm_data;
    struct rq_logmem logmem;
    bool sized;         /* Snapshots sized by bytes (logmem in use). */
    unsigned threshold; /* The configured threshold, when not sized. */
    uv_timer_t poll;    /* Polls raft for changes; see poll_cb. */
    unsigned poll_ms;
    char label[LABEL_MAX]; /* Names the node in log lines. */
    char *dir;             /* raft_uv's directory (owned). */
    size_t segment_size;   /* What raft_uv preallocates an open segment to. */

    /* The readiness barrier, issued once per term of leadership. */
    struct raft_barrier ready_barrier;
    bool barrier_inflight;
    raft_term barrier_term; /* Term it was issued in; 0: none. */
    raft_term ready_term;   /* Term whose barrier was applied; 0: none. */

    struct rq_node_info last; /* As last reported to the change callback. */
    struct rq_node_counters counters;
    uint64_t counted_leader; /* The leader and term last counted as a */
    uint64_t counted_term;   /* change (counters.leader_changes). */
    rq_node_change_cb change_cb;
    void *change_data;

    struct request *requests; /* Pending client requests, for close. */

    unsigned cur_threshold; /* The counts libraft was last given. */
    unsigned cur_trailing;

    /* What raft_uv is asked to store, seen from in between (see
     * "Snapshots, seen on their way to disk" below). */
    struct {
        int (*load)(struct raft_io *io, raft_term *term, raft_id *voted_for,
                    struct raft_snapshot **snapshot, raft_index *start_index,
                    struct raft_entry *entries[], size_t *n_entries);
        int (*snapshot_put)(struct raft_io *io, unsigned trailing,
                            struct raft_io_snapshot_put *req,
                            const struct raft_snapshot *snapshot,
                            raft_io_snapshot_put_cb cb);
        struct snap_put {
            struct rq_node *node;
            struct raft_io_snapshot_put *req; /* NULL: slot free. */
            void *req_data; /* libraft's req->data, given back. */
            raft_io_snapshot_put_cb cb;
            raft_index index;
            unsigned trailing;
            /* The owner's sync before the put goes on to raft_uv (see
             * "The sync a snapshot needs, off the loop"). */
            const struct raft_snapshot *snapshot;
            void *job; /* In a worker thread while not NULL. */
            int (*run)(void *job);
            int job_rv;
            bool stuck; /* The sync or the put failed: never stored. */
            uv_work_t work;
        } inflight[2];
        void (*close)(struct raft_io *io, raft_io_close_cb cb);
        raft_io_close_cb close_cb; /* raft_close waits for a sync. */
        bool close_deferred;
        raft_index index;     /* Of the last snapshot stored; 0: none. */
        raft_index log_first; /* First entry libraft holds in memory. */
    } snap;

    /* libraft's diagnostics, as debug lines naming the node; unused (no
     * tracer at all) unless the log level is debug: libraft formats every
     * line before it calls the tracer. */
    struct raft_tracer tracer;

    /* The writes raft_uv failed (see "Writes that fail" below). */
    struct {
        int (*set_term)(struct raft_io *io, raft_term term);
        int (*set_vote)(struct raft_io *io, raft_id server_id);
        int (*append)(struct raft_io *io, struct raft_io_append *req,
                      const struct raft_entry entries[], unsigned n,
                      raft_io_append_cb cb);
        int (*truncate)(struct raft_io *io, raft_index index);
        int status;     /* The first failure's RAFT_* code; 0: none. */
        char what[160]; /* What failed, for the log line. */
        bool reported;
    } io_fail;

    /* Quiescence of an idle group (see "Idle groups go quiet" below). */
    struct {
        struct rq_quiet_config cfg;
        struct rq_quiet state;
        int (*start)(struct raft_io *io, unsigned msecs, raft_io_tick_cb tick,
                     raft_io_recv_cb recv);
        int (*send)(struct raft_io *io, struct raft_io_send *req,
                    const struct raft_message *message, raft_io_send_cb cb);
        raft_io_tick_cb tick; /* libraft's, passed on as due. */
        raft_io_recv_cb recv;
        uint64_t last_tick_ms; /* When a tick last reached libraft. */
        unsigned heartbeat_ms; /* The timing libraft was last given. */
        unsigned election_ms;
    } quiet;
    /* Campaigning at a short election timeout until a leader is known
     * (rq_node_campaign). */
    bool campaign;
    uint64_t campaign_past;  /* The lost leader it disregards; 0: none. */
    uint64_t campaign_until; /* now_ms() when it gives up. */

    bool started;
    bool closing;
    unsigned closes_pending;
    struct rq_node *grave_next; /* in the graveyard after close */
    void (*close_cb)(void *data);
    void *close_data;
};

/* libraft's getters take a non-const pointer but only read. */
static struct raft *raft_of(const struct rq_node *n)
{
    return (struct raft *)&n->raft;
}

/*
 * The membership configuration libraft holds. libraft 0.22 has no call
 * for it, so these read struct raft's documented configuration fields
 * (raft.h: "At any given moment the current configuration can be committed
 * or uncommitted"): `configuration` is the newest one, committed at
 * configuration_committed_index unless configuration_uncommitted_index
 * names a newer one still pending. Nothing else reads struct raft.
 */
static uint64_t conf_index(const struct raft *r, bool *pending)
{
    *pending = r->configuration_uncommitted_index != 0;
    return r->configuration_committed_index;
}

const struct raft_configuration *rq_node_configuration(const struct rq_node *n,
                                                       uint64_t *index,
                                                       bool *pending)
{
    bool p;
    uint64_t i = conf_index(&n->raft, &p);
    if (index != NULL) {
        *index = i;
    }
    if (pending != NULL) {
        *pending = p;
    }
    return &n->raft.configuration;
}

/* Maps a raft status from an apply or barrier callback to an RQ_* code. */
static int status_from_raft(const struct rq_node *n, int status)
{
    switch (status) {
        case 0:
            return 0;
        case RAFT_NOTLEADER:
        case RAFT_LEADERSHIPLOST:
            /* raft_close() fails pending requests as "leadership lost". */
            return n->closing ? RQ_SHUTDOWN : RQ_NOTLEADER;
        case RAFT_SHUTDOWN:
        case RAFT_CANCELED:
            return RQ_SHUTDOWN;
        default:
            return RQ_RAFT;
    }
}

/* Maps an error returned synchronously by raft_apply or raft_barrier. */
static int error_from_raft(int rv)
{
    switch (rv) {
        case RAFT_NOTLEADER:
        case RAFT_LEADERSHIPLOST:
            return RQ_NOTLEADER;
        case RAFT_NOMEM:
            return RQ_NOMEM;
        case RAFT_SHUTDOWN:
        case RAFT_CANCELED:
            return RQ_SHUTDOWN;
        default:
            return RQ_RAFT;
    }
}

static enum rq_role role_from_raft(int state)
{
    switch (state) {
        case RAFT_FOLLOWER:
            return RQ_ROLE_FOLLOWER;
        case RAFT_CANDIDATE:
            return RQ_ROLE_CANDIDATE;
        case RAFT_LEADER:
            return RQ_ROLE_LEADER;
        default:
            return RQ_ROLE_UNAVAILABLE;
    }
}

const char *rq_role_name(enum rq_role role)
{
    switch (role) {
        case RQ_ROLE_FOLLOWER:
            return "follower";
        case RQ_ROLE_CANDIDATE:
            return "candidate";
        case RQ_ROLE_LEADER:
            return "leader";
        default:
            return "unavailable";
    }
}

/* The last component of @dir, which names the group in log lines. */
static void label_from_dir(const char *dir, char *out, size_t n)
{
    size_t len = strlen(dir);
    while (len > 1 && dir[len - 1] == '/') {
        len--;
    }
    size_t start = len;
    while (start > 0 && dir[start - 1] != '/') {
        start--;
    }
    snprintf(out, n, "%.*s", (int)(len - start), dir + start);
}

void rq_node_exit_if_stopped(const struct rq_node_info *info, const char *prog)
{
    if (info->role != RQ_ROLE_UNAVAILABLE) {
        return;
    }
    rq_log(RQ_ERROR,
           "fatal: the Raft group stopped (term %" PRIu64
           "); exiting so that a restart reloads it",
           info->term);
    fprintf(stderr, "%s: the Raft group stopped\n", prog);
    _exit(1);
}

/* The fields of rq_node_info that the change poll compares (cheap: no
 * copy of the leader's address, no look into the log). */
static void info_compared(const struct rq_node *n, struct rq_node_info *out)
{
    struct raft *r = raft_of(n);
    raft_id leader_id = 0;
    const char *leader_address = NULL;

    memset(out, 0, sizeof *out);
    out->role = n->io_fail.status != 0 ? RQ_ROLE_UNAVAILABLE
                                       : role_from_raft(raft_state(r));
    out->id = r->id;
    raft_leader(r, &leader_id, &leader_address);
    out->leader_id = leader_id;
    out->term = raft_current_term(r);
    out->ready = rq_node_ready(n);
    out->conf_index = conf_index(r, &out->conf_pending);
}

static bool info_same(const struct rq_node_info *a,
                      const struct rq_node_info *b)
{
    return a->role == b->role && a->leader_id == b->leader_id &&
           a->term == b->term && a->ready == b->ready &&
           a->conf_index == b->conf_index && a->conf_pending == b->conf_pending;
}

void rq_node_info(const struct rq_node *n, struct rq_node_info *out)
{
    struct raft *r = raft_of(n);
    raft_id leader_id = 0;
    const char *leader_address = NULL;

    info_compared(n, out);
    raft_leader(r, &leader_id, &leader_address);
    if (leader_address != NULL) {
        snprintf(out->leader_address, sizeof out->leader_address, "%s",
                 leader_address);
    }
    out->commit = raft_commit_index(r);
    out->applied = raft_last_applied(r);
    out->last_index = raft_last_index(r);
    out->quiet = n->quiet.state.quiet;
}

bool rq_node_ready(const struct rq_node *n)
{
    return !n->closing && n->io_fail.status == 0 &&
           raft_state(raft_of(n)) == RAFT_LEADER && n->ready_term != 0 &&
           n->ready_term == raft_current_term(raft_of(n));
}

/* Logs one line describing what moved between @old and @now. */
static void log_change(const struct rq_node *n, const struct rq_node_info *old,
                       const struct rq_node_info *now)
{
    unsigned long long term = (unsigned long long)now->term;
    if (now->role == old->role && now->leader_id == old->leader_id &&
        now->term == old->term && now->ready == old->ready) {
        if (!now->conf_pending && now->conf_index != old->conf_index) {
            rq_log(RQ_INFO,
                   "%s: configuration of index %llu committed (%u "
                   "servers)",
                   n->label, (unsigned long long)now->conf_index,
                   rq_node_configuration(n, NULL, NULL)->n);
        }
        return; /* Only the configuration moved. */
    }
    if (now->ready && !old->ready) {
        rq_log(RQ_INFO, "%s: ready term=%llu", n->label, term);
    } else if (now->role == RQ_ROLE_LEADER) {
        rq_log(RQ_INFO, "%s: became leader term=%llu", n->label, term);
    } else if (now->leader_id != 0) {
        rq_log(RQ_INFO, "%s: leader is %llu (%s) term=%llu", n->label,
               (unsigned long long)now->leader_id, now->leader_address, term);
    } else {
        rq_log(RQ_INFO, "%s: %s, no known leader term=%llu", n->label,
               rq_role_name(now->role), term);
    }
}

static void poll_cb(uv_timer_t *timer);
static void poll_arm(struct rq_node *n, uint64_t now);
static uint64_t now_ms(const struct rq_node *n);
static void node_tick_now(struct rq_node *n, uint64_t now);

/* Hands libraft the snapshot counts: the sized ones, or the configured
 * threshold. */
static void set_counts(struct rq_node *n)
{
    n->cur_threshold = n->sized ? n->logmem.threshold : n->threshold;
    raft_set_snapshot_threshold(&n->raft, n->cur_threshold);
    if (n->sized) {
        n->cur_trailing = n->logmem.trailing;
        raft_set_snapshot_trailing(&n->raft, n->cur_trailing);
    }
}

static void ready_barrier_cb(struct raft_barrier *req, int status)
{
    struct rq_node *n = req->data;
    n->barrier_inflight = false;
    if (n->closing) {
        return;
    }
    if (status == 0) {
        /* A request succeeds only while its leader still leads in the term
         * it was made in (stepping down fails them all). */
        n->ready_term = n->barrier_term;
    } else {
        if (status != RAFT_LEADERSHIPLOST) {
            /* Losing leadership is logged as a change; this is not. */
            rq_log(RQ_WARN, "%s: readiness barrier of term %llu failed: %s",
                   n->label, (unsigned long long)n->barrier_term,
                   raft_strerror(status));
        }
        n->barrier_term = 0; /* Issue it again if still leader. */
    }
    /* Report on the next loop iteration, outside raft's apply loop (the
     * poll then returns to its grid). */
    uv_timer_start(&n->poll, poll_cb, 0, 0);
}

/* Issues the readiness barrier if we lead in a term that has none. */
static void maybe_issue_barrier(struct rq_node *n)
{
    struct raft *r = &n->raft;
    raft_term term = raft_current_term(r);
    if (raft_state(r) != RAFT_LEADER || n->barrier_inflight ||
        n->barrier_term == term) {
        return;
    }
    n->ready_barrier.data = n;
    n->barrier_term = term;
    int rv = raft_barrier(r, &n->ready_barrier, ready_barrier_cb);
    if (rv != 0) {
        rq_log(RQ_WARN, "%s: readiness barrier in term %llu: %s", n->label,
               (unsigned long long)term, raft_strerror(rv));
        n->barrier_term = 0;
        return;
    }
    n->barrier_inflight = true;
}

/*
 * Arms the poll for the next multiple of its interval on the loop's clock,
 * at least half an interval away. Every node of the loop polls (and ticks)
 * on the same grid, so the loop wakes once an interval for all of them
 * rather than once for each: with a thousand groups, every wake-up also
 * runs each raft_uv's prepare and check callbacks, which was a fifth of an
 * idle broker's CPU once its groups had gone quiet. A quiet node polls
 * every half quiet heartbeat and looks at its group at its ticks (every
 * quiet heartbeat): what moves it comes from its peers, and it waking late
 * only keeps its longer election timeout a little longer (DESIGN.md
 * section 15); a leader asked for something is woken at once
 * (rq_node_wake), which re-arms the poll.
 */
static void poll_arm(struct rq_node *n, uint64_t now)
{
    uint64_t every = n->poll_ms;
    if (n->quiet.state.quiet && n->quiet.cfg.quiet_heartbeat_ms / 2 > every) {
        every = n->quiet.cfg.quiet_heartbeat_ms / 2;
    }
    uint64_t wait = every - now % every;
    if (wait < every / 2) {
        wait += every;
    }
    uv_timer_start(&n->poll, poll_cb, wait, 0);
}

/*
 * libraft's callback API (0.22.1) has no state-change callback, so this
 * timer compares role, leader, term, readiness and the configuration with
 * what was last reported. It also gives libraft its ticks (see "Idle groups
 * go quiet").
 */
static void poll_cb(uv_timer_t *timer)
{
    struct rq_node *n = timer->data;
    struct rq_node_info now;

    if (n->closing) {
        return;
    }
    uint64_t t = now_ms(n);
    poll_arm(n, t);
    if (n->io_fail.status != 0 && !n->io_fail.reported) {
        n->io_fail.reported = true;
        rq_log(RQ_ERROR, "%s: stopped: %s", n->label, n->io_fail.what);
    }
    if (n->campaign || rq_quiet_tick_due(&n->quiet.state, &n->quiet.cfg,
                                         n->quiet.last_tick_ms, t)) {
        node_tick_now(n, t);
        if (n->closing) {
            return; /* A callback of the tick closed the node. */
        }
    }
    maybe_issue_barrier(n);
    info_compared(n, &now);
    if (info_same(&now, &n->last)) {
        return;
    }
    rq_node_info(n, &now);
    log_change(n, &n->last, &now);
    if (now.leader_id != 0 &&
        (now.leader_id != n->counted_leader || now.term != n->counted_term)) {
        n->counters.leader_changes++;
        n->counted_leader = now.leader_id;
        n->counted_term = now.term;
    }
    n->last = now;
    if (n->change_cb != NULL) {
        /* Last: the callback may close the node. */
        n->change_cb(n->change_data, &now);
    }
}

/* ---- The state machine as the adapter sees it ---- */

/*
 * The adapter calls node_ops, which pass everything on to the owner's
 * state machine and count snapshots taken and restored
 * (rq_node_counters). When snapshots are sized by bytes, each entry
 * applied is also counted (its framed size, as libraft holds it) and the
 * entry counts libraft snapshots by follow the average. A new threshold
 * takes effect after this apply; a new trailing count at the next
 * snapshot (one already being written keeps the count it started with on
 * disk and may trim memory by the new one: both only decide how many
 * committed entries stay behind the snapshot).
 */
static int node_apply(void *data, uint64_t index, const uint8_t *payload,
                      size_t len, uint64_t *result)
{
    struct rq_node *n = data;
    int rv = n->ops->apply(n->fsm_data, index, payload, len, result);
    if (rv == 0 && n->sized &&
        rq_logmem_add(&n->logmem, RQ_ENTRY_HEADER + ((len + 7) & ~(size_t)7))) {
        set_counts(n);
    }
    return rv;
}

static int node_snapshot(void *data, struct raft_buffer *out)
{
    struct rq_node *n = data;
    int rv = n->ops->snapshot(n->fsm_data, out);
    if (rv == 0) {
        n->counters.snapshots++;
    }
    return rv;
}

static int node_restore(void *data, const uint8_t *buf, size_t len)
{
    struct rq_node *n = data;
    int rv = n->ops->restore(n->fsm_data, buf, len);
    if (rv == 0) {
        n->counters.restores++;
    }
    return rv;
}

static const struct rq_fsm_ops node_ops = {
    .apply = node_apply,
    .snapshot = node_snapshot,
    .restore = node_restore,
};

/* ---- Snapshots, seen on their way to disk ----
 *
 * libraft 0.22 tells nothing of its snapshots through its API, and its log
 * is an opaque type. raft_io, the interface it stores through, is public,
 * so the node puts itself between libraft and raft_uv for two calls:
 *
 * - load (raft_start): the snapshot on disk and the first entry loaded;
 * - snapshot_put: a snapshot taken (trailing > 0: libraft keeps `trailing`
 *   entries before its index in memory) or installed from the leader
 *   (trailing 0: the log restarts after it). Its completion moves the
 *   snapshot index and the first entry libraft still holds.
 *
 * From those and raft_last_index(), rq_node_log_memory() counts the entries
 * in memory. raft_uv is untouched: every call goes on to it unchanged.
 */
/* libraft 0.22 emits only info (3) and trace (5) diagnostics, both detail
 * of the algorithm: debug lines here, with the node's label. */
static void node_trace(struct raft_tracer *t, int type, const void *data)
{
    const struct rq_node *n = t->impl;
    const struct raft_tracer_info *info = data;
    if (type != RAFT_TRACER_DIAGNOSTIC || info == NULL || info->version < 1) {
        return;
    }
    rq_log_emit(RQ_DEBUG, "raft", "%s: %s:%d L%d %s", n->label,
                info->diagnostic.file, info->diagnostic.line,
                info->diagnostic.level, info->diagnostic.message);
}

static void node_tracer_init(struct rq_node *n)
{
    memset(&n->tracer, 0, sizeof n->tracer);
    if (rq_log_enabled(RQ_DEBUG)) {
        n->tracer.impl = n;
        n->tracer.version = 2;
        n->tracer.emit = node_trace;
    }
}

static struct rq_node *node_of_io(struct raft_io *io)
{
    return (struct rq_node *)(void *)((char *)io -
                                      offsetof(struct rq_node, io));
}

/* ---- Writes that fail ----
 *
 * libraft 0.15 stopped a group for good (RAFT_UNAVAILABLE) when it could not
 * persist a term, a vote or entries, and the owner brought it back
 * (rq_node_exit_if_stopped, the broker's reopen). 0.22's callback layer
 * has no such state: it asserts that the write worked (src/legacy.c tickCb,
 * recvCb, legacyPersistEntriesCb), which a release build compiles out, so
 * the group would go on with a term or vote it never stored, or wait for
 * ever for entries whose write failed, and never say so. The node watches
 * raft_uv's answers for those writes instead: the first failure marks the
 * node stopped (role RQ_ROLE_UNAVAILABLE, never ready), logged once, and
 * its owner closes it as before. A failure while closing is the close's
 * doing (RAFT_CANCELED) and not counted.
 */
static void io_failed(struct rq_node *n, int status, const char *what)
{
    if (n->io_fail.status != 0) {
        return;
    }
    n->io_fail.status = status;
    snprintf(n->io_fail.what, sizeof n->io_fail.what, "%s: %s (%s)", what,
             raft_strerror(status), n->io.errmsg);
}

/* Returns @rv, a synchronous write's answer, after marking the node stopped
 * when it failed. */
static int io_watched(struct rq_node *n, int rv, const char *what)
{
    if (rv != 0) {
        io_failed(n, rv, what);
    }
    return rv;
}

static int io_set_term(struct raft_io *io, raft_term term)
{
    struct rq_node *n = node_of_io(io);
    return io_watched(n, n->io_fail.set_term(io, term), "storing the term");
}

static int io_set_vote(struct raft_io *io, raft_id server_id)
{
    struct rq_node *n = node_of_io(io);
    return io_watched(n, n->io_fail.set_vote(io, server_id),
                      "storing the vote");
}

static int io_truncate(struct raft_io *io, raft_index index)
{
    struct rq_node *n = node_of_io(io);
    return io_watched(n, n->io_fail.truncate(io, index), "truncating the log");
}

/* One append in raft_uv: libraft's req->data and callback, given back. */
struct append_wrap {
    struct rq_node *node;
    void *req_data;
    raft_io_append_cb cb;
};

static void io_append_cb(struct raft_io_append *req, int status)
{
    struct append_wrap w = *(struct append_wrap *)req->data;
    free(req->data);
    req->data = w.req_data;
    if (status != 0 && status != RAFT_CANCELED && !w.node->closing) {
        io_failed(w.node, status, "appending entries");
    }
    w.cb(req, status);
}

static int io_append(struct raft_io *io, struct raft_io_append *req,
                     const struct raft_entry entries[], unsigned n_entries,
                     raft_io_append_cb cb)
{
    struct rq_node *n = node_of_io(io);
    struct append_wrap *w = malloc(sizeof *w);
    if (w == NULL) {
        return RAFT_NOMEM; /* UNTESTED: ENOMEM only. */
    }
    *w = (struct append_wrap){.node = n, .req_data = req->data, .cb = cb};
    req->data = w;
    int rv = n->io_fail.append(io, req, entries, n_entries, io_append_cb);
    if (rv != 0) {
        req->data = w->req_data;
        free(w);
        io_failed(n, rv, "appending entries");
    }
    return rv;
}

static int io_load(struct raft_io *io, raft_term *term, raft_id *voted_for,
                   struct raft_snapshot **snapshot, raft_index *start_index,
                   struct raft_entry *entries[], size_t *n_entries)
{
    struct rq_node *n = node_of_io(io);
    int rv = n->snap.load(io, term, voted_for, snapshot, start_index, entries,
                          n_entries);
    if (rv == 0) {
        n->snap.index = *snapshot != NULL ? (*snapshot)->index : 0;
        n->snap.log_first = *n_entries > 0 ? *start_index : n->snap.index + 1;
    }
    return rv;
}

static void io_snapshot_put_cb(struct raft_io_snapshot_put *req, int status)
{
    /* While the put is in raft_uv, req->data (libraft's, which raft_uv
     * never reads) points at the node's slot; it is given back here. */
    struct snap_put *slot = req->data;
    struct snap_put put = *slot;
    struct rq_node *n = put.node;
    assert(put.req == req);
    slot->req = NULL;
    req->data = put.req_data;
    if (status != 0 && status != RAFT_CANCELED && !n->closing) {
        io_failed(n, status, "writing the snapshot");
    }
    if (status == 0 && put.index > n->snap.index) {
        n->snap.index = put.index;
        raft_index keep_from = put.trailing == 0 ? put.index + 1
                               : put.index > put.trailing
                                   ? put.index - put.trailing + 1
                                   : 1;
        if (put.trailing == 0 || keep_from > n->snap.log_first) {
            n->snap.log_first = keep_from;
        }
    }
    put.cb(req, status);
}

/* ---- The sync a snapshot needs, off the loop ----
 *
 * A snapshot lets libraft drop the entries it stands for, so whatever the
 * owner wrote for them must be durable first (a broker's partition log:
 * an fdatasync that took 1 to 8 ms on the loop before every snapshot).
 * An owner with sync_take (rq_fsm.h) leaves that sync as a job when it
 * takes the snapshot; the put of a snapshot taken then waits here while
 * a worker thread runs the job, and goes on to raft_uv after it. libraft
 * takes no other snapshot meanwhile (it puts one at a time) and an
 * installed one waits behind it (legacy.c: snapshot_pending). A failed
 * sync or put stops the node (io_failed) and the snapshot is never
 * stored. raft_close() waits for a sync in flight: the close of raft_uv
 * is deferred until the job is back, and the put is then canceled, which
 * libraft expects while closing.
 */

/* Gives @slot's put back to libraft as canceled. */
static void put_cancel(struct snap_put *slot)
{
    struct raft_io_snapshot_put *req = slot->req;
    raft_io_snapshot_put_cb cb = slot->cb;
    req->data = slot->req_data;
    slot->req = NULL;
    slot->stuck = false;
    cb(req, RAFT_CANCELED);
}

static bool syncing(const struct rq_node *n)
{
    for (size_t i = 0; i < sizeof n->snap.inflight / sizeof n->snap.inflight[0];
         i++) {
        if (n->snap.inflight[i].req != NULL &&
            n->snap.inflight[i].job != NULL) {
            return true;
        }
    }
    return false;
}

static void sync_work(uv_work_t *w)
{
    struct snap_put *slot = w->data;
    slot->job_rv = slot->run(slot->job);
}

static void sync_after(uv_work_t *w, int status)
{
    struct snap_put *slot = w->data;
    struct rq_node *n = slot->node;
    int rv = status == 0 ? slot->job_rv : RQ_IO; /* UNTESTED: never canceled. */
    n->ops->sync_done(n->fsm_data, slot->job, rv);
    slot->job = NULL;
    if (n->snap.close_deferred) {
        put_cancel(slot);
        if (!syncing(n)) {
            n->snap.close_deferred = false;
            n->snap.close(&n->io, n->snap.close_cb);
        }
        return;
    }
    if (rv != 0) {
        io_failed(n, RAFT_IOERR, "syncing the state for a snapshot");
        slot->stuck = true;
        return;
    }
    rv = n->snap.snapshot_put(&n->io, slot->trailing, slot->req, slot->snapshot,
                              io_snapshot_put_cb);
    if (rv != 0) {
        /* UNTESTED: raft_uv refuses a put only while closing or on ENOMEM. */
        io_failed(n, rv, "storing a snapshot");
        slot->stuck = true;
    }
}

static void io_close(struct raft_io *io, raft_io_close_cb cb)
{
    struct rq_node *n = node_of_io(io);
    for (size_t i = 0; i < sizeof n->snap.inflight / sizeof n->snap.inflight[0];
         i++) {
        if (n->snap.inflight[i].req != NULL && n->snap.inflight[i].stuck) {
            put_cancel(&n->snap.inflight[i]);
        }
    }
    if (syncing(n)) {
        n->snap.close_cb = cb;
        n->snap.close_deferred = true;
        return;
    }
    n->snap.close(io, cb);
}

static int io_snapshot_put(struct raft_io *io, unsigned trailing,
                           struct raft_io_snapshot_put *req,
                           const struct raft_snapshot *snapshot,
                           raft_io_snapshot_put_cb cb)
{
    struct rq_node *n = node_of_io(io);
    struct snap_put *slot = NULL;
    for (size_t i = 0; i < sizeof n->snap.inflight / sizeof n->snap.inflight[0];
         i++) {
        if (n->snap.inflight[i].req == NULL) {
            slot = &n->snap.inflight[i];
            break;
        }
    }
    if (slot == NULL) {
        return RAFT_BUSY; /* UNTESTED: libraft puts one at a time. */
    }
    /* A snapshot this node just took leaves its sync behind; one installed
     * from the leader leaves none. */
    void *job =
        n->ops->sync_take != NULL ? n->ops->sync_take(n->fsm_data) : NULL;
    *slot = (struct snap_put){.node = n,
                              .req = req,
                              .req_data = req->data,
                              .cb = cb,
                              .index = snapshot->index,
                              .trailing = trailing};
    req->data = slot;
    if (job != NULL) {
        slot->snapshot = snapshot;
        slot->job = job;
        slot->run = n->ops->sync_run;
        slot->work.data = slot;
        /* uv_queue_work fails only without a work callback. */
        int qrv = uv_queue_work(n->loop, &slot->work, sync_work, sync_after);
        assert(qrv == 0);
        (void)qrv;
        return 0;
    }
    int rv =
        n->snap.snapshot_put(io, trailing, req, snapshot, io_snapshot_put_cb);
    if (rv != 0) {
        req->data = slot->req_data;
        slot->req = NULL;
    }
    return rv;
}

/* ---- Idle groups go quiet ----
 *
 * A group that carries nothing still heartbeats, and with a thousand groups
 * a broker the heartbeats are most of its idle CPU. rq_quiet.h decides,
 * from what this server sees, when its group may run at the quiet timing
 * (a longer heartbeat and election timeout; DESIGN.md section 15 says why
 * no spurious election follows); this section looks (at every tick), sets
 * libraft's timing on each transition, and stands between raft_uv and
 * libraft for three things:
 *
 * - ticks: raft_uv's tick timer would run at the heartbeat interval given
 *   at start, for ever, one timer a group at its own phase. It is slowed to
 *   RAFT_UV_TICK_MS and the change poll, which runs on a grid shared by
 *   every node of the loop (poll_arm), ticks libraft instead, as often as
 *   rq_quiet_tick_due() says: every heartbeat, or every quiet heartbeat
 *   while quiet, and libraft's heartbeat timeout is half that, so that
 *   every tick sends a heartbeat (rq_quiet_heartbeat_ms says why);
 * - received messages: a leader that is asked for a vote wakes, so that a
 *   follower that restarted while its group was quiet hears from it within
 *   an ordinary heartbeat (its own election, under pre-vote, is refused by
 *   the leader and by every follower that knows the leader);
 * - sent messages, counted for rq_node_counters.
 */

/*
 * The clock the nodes' grid runs on: the loop's, shifted by a phase drawn
 * once per process. Every node of a process ticks at the same moments,
 * which is the point; the nodes of one group live in different processes,
 * and if their grids coincided (the loop clock is the machine's monotonic
 * clock) and their randomised election timeouts did too, they would stand
 * for election at the same tick round after round and split every vote.
 * Their timeouts can coincide: raft_uv seeds libraft's generator from the
 * node id, which is still 0 then, xor the monotonic and the wall clock in
 * milliseconds, equal in processes that open a group a few milliseconds
 * apart (`raftq dev` elected no leader for a partition that way, its three
 * members standing together every round), so rq_node_new also seeds each
 * node from getrandom(2).
 */
static uint64_t grid_phase(void)
{
    static uint64_t phase;
    static bool drawn;
    if (!drawn) {
        uint16_t r = 0;
        if (getrandom(&r, sizeof r, 0) != (ssize_t)sizeof r) {
            r = (uint16_t)getpid(); /* UNTESTED: before boot entropy. */
        }
        phase = r;
        drawn = true;
    }
    return phase;
}

static uint64_t now_ms(const struct rq_node *n)
{
    return (uint64_t)uv_now(n->loop) + grid_phase();
}

/* Gives libraft the timing the quiet state asks for, when it differs from
 * what it runs with. raft_set_election_timeout draws a new randomised
 * timeout for a follower or candidate, counted from its last heartbeat, so
 * it is called on changes only. */
static void quiet_set_timing(struct rq_node *n)
{
    const struct rq_quiet_config *c = &n->quiet.cfg;
    const struct rq_quiet *q = &n->quiet.state;
    uint64_t now = now_ms(n);
    unsigned heartbeat = (unsigned)rq_quiet_heartbeat_ms(q, c);
    unsigned election = n->campaign ? CAMPAIGN_ELECTION_MS
                                    : (unsigned)rq_quiet_election_ms(q, c, now);
    bool rearm = false;
    if (heartbeat != n->quiet.heartbeat_ms) {
        n->quiet.heartbeat_ms = heartbeat;
        raft_set_heartbeat_timeout(&n->raft, heartbeat);
        rearm = true;
    }
    if (election != n->quiet.election_ms) {
        n->quiet.election_ms = election;
        raft_set_election_timeout(&n->raft, election);
    }
    if (rearm && n->started && !n->closing) {
        poll_arm(n, now); /* At the interval of the new state. */
    }
}

static enum rq_quiet_role quiet_role(const struct rq_node *n)
{
    if (n->io_fail.status != 0) {
        return RQ_QUIET_OTHER;
    }
    switch (raft_state(raft_of(n))) {
        case RAFT_FOLLOWER:
            return RQ_QUIET_FOLLOWER;
        case RAFT_LEADER:
            return RQ_QUIET_LEADER;
        default:
            return RQ_QUIET_OTHER;
    }
}

/* Whether every other server of the configuration holds the leader's whole
 * log (libraft's match index of each). */
static bool all_caught_up(const struct rq_node *n, raft_index last)
{
    const struct raft *r = &n->raft;
    for (unsigned i = 0; i < r->configuration.n; i++) {
        raft_id id = r->configuration.servers[i].id;
        raft_index match = 0;
        if (id == r->id) {
            continue;
        }
        if (raft_match_index(r, id, &match) != 0 || match < last) {
            return false;
        }
    }
    return true;
}

static void quiet_look(struct rq_node *n)
{
    struct raft *r = &n->raft;
    raft_id leader = 0;
    const char *address = NULL;

    if (n->quiet.cfg.after_ms == 0) {
        return;
    }
    raft_leader(r, &leader, &address);
    struct rq_quiet_view v = {
        .role = quiet_role(n),
        .term = raft_current_term(r),
        .leader_id = leader,
        .last_index = raft_last_index(r),
        .commit = raft_commit_index(r),
    };
    if (v.role == RQ_QUIET_LEADER) {
        v.all_caught_up = all_caught_up(n, v.last_index);
    }
    rq_quiet_step(&n->quiet.state, &n->quiet.cfg, &v, now_ms(n));
    quiet_set_timing(n);
}

void rq_node_wake(struct rq_node *n)
{
    if (rq_quiet_wake(&n->quiet.state, &n->quiet.cfg, now_ms(n))) {
        quiet_set_timing(n);
    }
}

/* Whether the node leads, or follows a leader it knows other than the one
 * a campaign disregards (rq_node_leader_lost). */
static bool knows_leader(struct rq_node *n)
{
    raft_id leader = 0;
    const char *address = NULL;
    raft_leader(&n->raft, &leader, &address);
    if (raft_state(&n->raft) == RAFT_LEADER) {
        return true;
    }
    return leader != 0 && leader != n->campaign_past;
}

static void campaign_start(struct rq_node *n, uint64_t past)
{
    n->campaign_past = past;
    n->campaign = true;
    n->campaign_until = now_ms(n) + n->quiet.cfg.election_ms;
    /* Awake: polls (and so ticks) at the ordinary interval again. */
    rq_quiet_wake(&n->quiet.state, &n->quiet.cfg, now_ms(n));
    quiet_set_timing(n);
}

void rq_node_campaign(struct rq_node *n)
{
    if (!n->started || n->closing || n->campaign || knows_leader(n)) {
        return;
    }
    campaign_start(n, 0);
}

void rq_node_leader_lost(struct rq_node *n, uint64_t leader_id)
{
    raft_id leader = 0;
    const char *address = NULL;
    if (!n->started || n->closing || n->campaign || leader_id == 0 ||
        raft_state(&n->raft) != RAFT_FOLLOWER) {
        return;
    }
    raft_leader(&n->raft, &leader, &address);
    if (leader != leader_id) {
        return;
    }
    campaign_start(n, leader_id);
}

/* Ends a campaign once there is a leader, before libraft's next tick: a
 * leader checks its contact with the followers every election timeout,
 * and the short one would depose it between two heartbeats. A campaign
 * against a lost leader disregards that leader only until the node has
 * stood (a candidate forgets its leader): the leader heard again after
 * that was not lost. A campaign that has brought no leader within an
 * election timeout ends too: the others refuse (a stale log, a leader
 * they still hear across a partition that cuts this node off), and a
 * round every poll would cost a thousand groups tens of thousands of
 * messages a second for as long as that lasts. */
static void campaign_look(struct rq_node *n)
{
    if (!n->campaign) {
        return;
    }
    if (n->campaign_past != 0 && raft_state(&n->raft) == RAFT_CANDIDATE) {
        n->campaign_past = 0;
    }
    if (knows_leader(n) || now_ms(n) >= n->campaign_until) {
        n->campaign = false;
        n->campaign_past = 0;
        quiet_set_timing(n);
    }
}

/* Looks at the group (quiet or not), then ticks libraft. */
static void node_tick_now(struct rq_node *n, uint64_t now)
{
    if (n->quiet.tick == NULL) {
        return; /* Not started. */
    }
    campaign_look(n);
    quiet_look(n);
    n->quiet.last_tick_ms = now;
    n->quiet.tick(&n->io);
}

/* raft_uv's own tick timer, slowed to RAFT_UV_TICK_MS: the poll ticks. */
static void node_tick(struct raft_io *io)
{
    struct rq_node *n = node_of_io(io);
    uint64_t now = now_ms(n);
    if (rq_quiet_tick_due(&n->quiet.state, &n->quiet.cfg, n->quiet.last_tick_ms,
                          now)) {
        node_tick_now(n, now);
    }
}

static void node_recv(struct raft_io *io, struct raft_message *msg)
{
    struct rq_node *n = node_of_io(io);
    if (msg->type == RAFT_REQUEST_VOTE && n->quiet.state.quiet &&
        raft_state(&n->raft) == RAFT_LEADER) {
        rq_node_wake(n);
    }
    n->quiet.recv(io, msg);
}

static int io_start(struct raft_io *io, unsigned msecs, raft_io_tick_cb tick,
                    raft_io_recv_cb recv)
{
    struct rq_node *n = node_of_io(io);
    n->quiet.tick = tick;
    n->quiet.recv = recv;
    n->quiet.last_tick_ms = now_ms(n);
    (void)msecs; /* The heartbeat timeout: the poll ticks at that rate. */
    return n->quiet.start(io, RAFT_UV_TICK_MS, node_tick, node_recv);
}

static int io_send(struct raft_io *io, struct raft_io_send *req,
                   const struct raft_message *message, raft_io_send_cb cb)
{
    struct rq_node *n = node_of_io(io);
    n->counters.messages_sent++;
    return n->quiet.send(io, req, message, cb);
}

static void io_interpose(struct rq_node *n)
{
    n->snap.load = n->io.load;
    n->io.load = io_load;
    n->snap.snapshot_put = n->io.snapshot_put;
    n->io.snapshot_put = io_snapshot_put;
    n->snap.close = n->io.close;
    n->io.close = io_close;
    n->io_fail.set_term = n->io.set_term;
    n->io.set_term = io_set_term;
    n->io_fail.set_vote = n->io.set_vote;
    n->io.set_vote = io_set_vote;
    n->io_fail.truncate = n->io.truncate;
    n->io.truncate = io_truncate;
    n->io_fail.append = n->io.append;
    n->io.append = io_append;
    n->quiet.start = n->io.start;
    n->io.start = io_start;
    n->quiet.send = n->io.send;
    n->io.send = io_send;
}

/* Closed nodes held back from release (see bury()). */
static void sweep_graveyard(void);

int rq_node_new(uv_loop_t *loop, struct raft_uv_transport *t,
                const struct rq_node_config *cfg, const struct rq_fsm_ops *ops,
                void *fsm_data, struct rq_node **out, char *why, size_t whyn)
{
    struct rq_node *n;
    int rv;

    sweep_graveyard();
    if (cfg->id == 0 || cfg->address == NULL || cfg->dir == NULL) {
        snprintf(why, whyn, "node needs a non-zero id, an address and a dir");
        return RQ_INVALID;
    }
    unsigned election = cfg->election_timeout_ms != 0
                            ? cfg->election_timeout_ms
                            : DEFAULT_ELECTION_TIMEOUT_MS;
    unsigned heartbeat = cfg->heartbeat_timeout_ms != 0
                             ? cfg->heartbeat_timeout_ms
                             : DEFAULT_HEARTBEAT_TIMEOUT_MS;
    unsigned threshold = cfg->snapshot_threshold != 0
                             ? cfg->snapshot_threshold
                             : DEFAULT_SNAPSHOT_THRESHOLD;
    unsigned trailing = cfg->snapshot_trailing != 0 ? cfg->snapshot_trailing
                                                    : DEFAULT_SNAPSHOT_TRAILING;
    if (heartbeat >= election) {
        /* raft_start() asserts this. */
        snprintf(why, whyn,
                 "heartbeat timeout %u ms must be below election timeout %u ms",
                 heartbeat, election);
        return RQ_INVALID;
    }
    struct rq_quiet_config quiet = {
        .after_ms = cfg->quiet_after_ms,
        .election_ms = election,
        .heartbeat_ms = heartbeat,
        .quiet_election_ms = cfg->quiet_election_ms,
        .quiet_heartbeat_ms = cfg->quiet_heartbeat_ms,
    };
    rv = rq_quiet_config_check(&quiet, why, whyn);
    if (rv != 0) {
        return rv;
    }
    rv = rq_mkdir_p(cfg->dir, why, whyn);
    if (rv != 0) {
        return rv;
    }

    n = calloc(1, sizeof *n);
    if (n == NULL) {
        snprintf(why, whyn, "out of memory"); /* UNTESTED: ENOMEM only. */
        return RQ_NOMEM;
    }
    n->loop = loop;
    n->transport = t;
    n->dir = strdup(cfg->dir);
    if (n->dir == NULL) {
        snprintf(why, whyn, "out of memory"); /* UNTESTED: ENOMEM only. */
        rv = RQ_NOMEM;
        goto err_after_alloc;
    }
    n->poll_ms = cfg->poll_ms != 0 ? cfg->poll_ms : DEFAULT_POLL_MS;
    if (n->poll_ms > heartbeat) {
        n->poll_ms = heartbeat; /* The poll gives libraft its ticks. */
    }
    n->quiet.cfg = quiet;
    rq_quiet_init(&n->quiet.state, now_ms(n));
    if (cfg->label != NULL) {
        snprintf(n->label, sizeof n->label, "%s", cfg->label);
    } else {
        label_from_dir(cfg->dir, n->label, sizeof n->label);
    }

    rv = raft_uv_init(&n->io, loop, cfg->dir, t);
    if (rv != 0) {
        snprintf(why, whyn, "raft_uv_init %s: %s", cfg->dir, n->io.errmsg);
        rv = rv == RAFT_NOMEM ? RQ_NOMEM : RQ_IO;
        goto err_after_alloc;
    }
    n->segment_size =
        cfg->segment_size != 0 ? cfg->segment_size : DEFAULT_SEGMENT_SIZE;
    raft_uv_set_segment_size(&n->io, n->segment_size);
    node_tracer_init(n);
    raft_uv_set_tracer(&n->io, n->tracer.emit != NULL ? &n->tracer : NULL);
    /* 0.22's raft_uv, finding the last closed segment or an open one
     * corrupt, moves it and every later one aside and loads again without
     * them: the server would go on without entries it may have acknowledged
     * and count as a voter all the same. A log that does not load fails
     * the start instead (a broker's replica is then rebuilt from its
     * peers as a new member). */
    raft_uv_set_auto_recovery(&n->io, false);
    io_interpose(n);

    n->ops = ops;
    n->fsm_data = fsm_data;
    n->threshold = threshold;
    n->sized = cfg->log_memory_bytes != 0;
    if (n->sized) {
        struct rq_logmem_config lc = {
            .memory_bytes = cfg->log_memory_bytes,
            .trailing_bytes = cfg->trailing_bytes,
            .max_threshold = threshold,
            .max_trailing = trailing,
        };
        rq_logmem_init(&n->logmem, &lc);
    }
    rq_fsm_adapter_init(&n->fsm, &node_ops, n);
    rv = raft_init(&n->raft, &n->io, &n->fsm.fsm, cfg->id, cfg->address);
    if (rv != 0) {
        snprintf(why, whyn, "raft_init %s: %s", cfg->dir,
                 raft_errmsg(&n->raft));
        rv = rv == RAFT_NOMEM ? RQ_NOMEM : RQ_IO;
        goto err_after_uv_init;
    }
    rq_fsm_adapter_bind(&n->fsm, &n->raft);
    unsigned seed = 0;
    if (getrandom(&seed, sizeof seed, 0) == (ssize_t)sizeof seed) {
        raft_seed(&n->raft, seed); /* See grid_phase(). */
    }
    n->raft.data = n;
    n->raft.tracer = n->tracer.emit != NULL ? &n->tracer : NULL;
    /* Awake timing; libraft's heartbeat timeout is half the tick interval
     * (rq_quiet_heartbeat_ms), also for nodes that never go quiet. */
    n->quiet.election_ms = election;
    n->quiet.heartbeat_ms =
        (unsigned)rq_quiet_heartbeat_ms(&n->quiet.state, &n->quiet.cfg);
    raft_set_election_timeout(&n->raft, n->quiet.election_ms);
    raft_set_heartbeat_timeout(&n->raft, n->quiet.heartbeat_ms);
    n->cur_threshold = threshold;
    n->cur_trailing = trailing;
    raft_set_snapshot_threshold(&n->raft, threshold);
    raft_set_snapshot_trailing(&n->raft, trailing);
    raft_set_pre_vote(&n->raft, cfg->pre_vote);
    /* libraft 0.22 refuses new entries (RAFT_NOSPACE) unless a majority
     * reports 4 MiB of prepared segment space, the size of one of its
     * default 8 MiB segments' worth; raftq's segments are 256 KiB to
     * 1 MiB, so that reserve is never there. The check is off: a full disk
     * fails the write itself, which the groups already handle. */
    raft_set_capacity_threshold(&n->raft, 0);
    raft_set_install_snapshot_timeout(
        &n->raft, cfg->install_snapshot_timeout_ms != 0
                      ? cfg->install_snapshot_timeout_ms
                      : DEFAULT_INSTALL_SNAPSHOT_TIMEOUT_MS);

    /* From here on only rq_node_close() can undo raft_init(), so the timer,
     * which cannot fail to initialize, comes last. */
    uv_timer_init(loop, &n->poll);
    n->poll.data = n;
    *out = n;
    return 0;

err_after_uv_init:
    /* raft_init() failed before raft_uv started anything asynchronous. */
    raft_uv_close(&n->io);
err_after_alloc:
    free(n->dir);
    free(n);
    return rv;
}

int rq_node_bootstrap(struct rq_node *n, const struct rq_peer *peers,
                      size_t n_peers, char *why, size_t whyn)
{
    struct raft_configuration conf;
    int rv;

    if (n_peers == 0) {
        snprintf(why, whyn, "bootstrap needs at least one voter");
        return RQ_INVALID;
    }
    raft_configuration_init(&conf);
    for (size_t i = 0; i < n_peers; i++) {
        rv = raft_configuration_add(&conf, peers[i].id, peers[i].address,
                                    RAFT_VOTER);
        if (rv != 0) {
            snprintf(why, whyn, "bootstrap peer %llu (%s): %s",
                     (unsigned long long)peers[i].id, peers[i].address,
                     raft_strerror(rv));
            rv = rv == RAFT_NOMEM ? RQ_NOMEM : RQ_INVALID;
            goto err_after_conf_init;
        }
    }
    rv = raft_bootstrap(&n->raft, &conf);
    if (rv == RAFT_CANTBOOTSTRAP) {
        rq_log(RQ_INFO, "%s: already bootstrapped", n->label);
        rv = 0;
    } else if (rv != 0) {
        snprintf(why, whyn, "bootstrap: %s (%s)", raft_strerror(rv),
                 n->io.errmsg);
        rv = RQ_RAFT;
    }

err_after_conf_init:
    raft_configuration_close(&conf);
    return rv;
}

/*
 * raft_uv preallocates every open segment to the segment size and reads a
 * zeroed tail as never written, so a crash in the middle of a write leaves
 * a tail it cuts off. An open segment file that is shorter than that, and
 * ends inside a batch, is no crash's doing but damage: libraft 0.15 freed a
 * buffer twice in raft_start then (uvSegmentLoadOpen's error path) and
 * aborted at every start, and 0.22.1 fails raft_start every time (its
 * recovery, which would drop the segment, is off). Padding such a file
 * back with zeros turns it into the torn write that libraft handles.
 */
static void pad_open_segments(struct rq_node *n)
{
    DIR *d = opendir(n->dir);
    struct dirent *e;

    if (d == NULL) {
        return; /* raft_start reports it. */
    }
    while ((e = readdir(d)) != NULL) {
        char path[PATH_MAX];
        struct stat st;
        if (strncmp(e->d_name, "open-", 5) != 0) {
            continue;
        }
        snprintf(path, sizeof path, "%s/%s", n->dir, e->d_name);
        if (stat(path, &st) != 0 || !S_ISREG(st.st_mode) ||
            (uint64_t)st.st_size >= n->segment_size) {
            continue;
        }
        int fd = open(path, O_WRONLY | O_CLOEXEC);
        if (fd < 0 || ftruncate(fd, (off_t)n->segment_size) != 0 ||
            fsync(fd) != 0) {
            rq_log(RQ_ERROR, "%s: padding %s: %s", n->label, path,
                   strerror(errno));
        } else {
            rq_log(RQ_WARN,
                   "%s: open segment %s was %lld bytes, short of its %zu: "
                   "padded with zeros, so that its tail reads as unwritten",
                   n->label, e->d_name, (long long)st.st_size, n->segment_size);
        }
        if (fd >= 0) {
            close(fd);
        }
    }
    closedir(d);
}

bool rq_node_has_state(const char *dir)
{
    static const char *const names[] = {"metadata1", "metadata2"};
    char path[4096];
    for (size_t i = 0; i < 2; i++) {
        snprintf(path, sizeof path, "%s/%s", dir, names[i]);
        if (access(path, F_OK) == 0) {
            return true;
        }
    }
    return false;
}

int rq_node_start(struct rq_node *n, char *why, size_t whyn)
{
    if (n->started || n->closing) {
        snprintf(why, whyn, "node already started or closing");
        return RQ_INVALID;
    }
    pad_open_segments(n);
    int rv = raft_start(&n->raft);
    if (rv != 0) {
        /* The detail is in whichever layer failed. */
        const char *detail = raft_errmsg(&n->raft);
        if (detail[0] == '\0') {
            detail = n->io.errmsg;
        }
        if (detail[0] == '\0') {
            detail = n->transport->errmsg;
        }
        if (detail[0] == '\0') {
            /* raft_uv reports a failed listen() with no message. */
            detail = "no detail; could the transport not listen?";
        }
        snprintf(why, whyn, "start %s at %s: %s (%s)", n->label,
                 n->raft.address, raft_strerror(rv), detail);
        return RQ_RAFT;
    }
    n->started = true;
    poll_arm(n, now_ms(n));
    return 0;
}

void rq_node_on_change(struct rq_node *n, rq_node_change_cb cb, void *data)
{
    n->change_cb = cb;
    n->change_data = data;
}

struct raft *rq_node_raft(struct rq_node *n)
{
    return &n->raft;
}

static struct request *request_new(struct rq_node *n, rq_node_done_cb cb,
                                   void *data)
{
    struct request *req = calloc(1, sizeof *req);
    if (req == NULL) {
        return NULL; /* UNTESTED: ENOMEM only. */
    }
    req->node = n;
    req->cb = cb;
    req->data = data;
    req->next = n->requests;
    if (n->requests != NULL) {
        n->requests->prev = req;
    }
    n->requests = req;
    return req;
}

static void request_unlink(struct request *req)
{
    struct rq_node *n = req->node;
    if (req->prev != NULL) {
        req->prev->next = req->next;
    } else {
        n->requests = req->next;
    }
    if (req->next != NULL) {
        req->next->prev = req->prev;
    }
}

/* Unlinks and frees @req, then runs its callback with @status. */
static void request_done(struct request *req, int status, uint64_t result)
{
    rq_node_done_cb cb = req->cb;
    void *data = req->data;
    request_unlink(req);
    free(req);
    cb(data, status, result);
}

static void apply_cb(struct raft_apply *r, int status, void *result)
{
    struct request *req = r->data;
    int rv = status_from_raft(req->node, status);
    request_done(req, rv, rv == 0 ? (uint64_t)(uintptr_t)result : 0);
}

static void barrier_cb(struct raft_barrier *r, int status)
{
    struct request *req = r->data;
    request_done(req, status_from_raft(req->node, status), 0);
}

/* Why the node cannot take a proposal or barrier now: RQ_SHUTDOWN while it
 * closes, RQ_NOTLEADER when it is not a ready leader; else 0. */
static int refuse_proposal(const struct rq_node *n)
{
    if (n->closing) {
        return RQ_SHUTDOWN;
    }
    if (!rq_node_ready(n)) {
        return RQ_NOTLEADER;
    }
    return 0;
}

/* Undoes request_new() after libraft refused @req (@call answered @rv) and
 * returns the matching RQ_* code. Frees @req. */
static int request_refused(struct request *req, const char *call, int rv)
{
    struct rq_node *n = req->node;
    rq_log(RQ_WARN, "%s: %s: %s", n->label, call, raft_strerror(rv));
    request_unlink(req);
    free(req);
    return error_from_raft(rv);
}

int rq_node_apply_entry(struct rq_node *n, const struct raft_buffer *entry,
                        rq_node_done_cb cb, void *data)
{
    struct raft_buffer buf = *entry;
    struct request *req;
    int rv;

    rv = refuse_proposal(n);
    if (rv != 0) {
        return rv;
    }
    assert(buf.len % 8 == 0 && buf.len >= RQ_ENTRY_HEADER);
    req = request_new(n, cb, data);
    if (req == NULL) {
        return RQ_NOMEM; /* UNTESTED: ENOMEM only. */
    }
    req->req.apply.data = req;
    rq_node_wake(n);
    rv = raft_apply(&n->raft, &req->req.apply, &buf, 1, apply_cb);
    if (rv != 0) {
        /* raft_apply() leaves the buffer to the caller when it fails. */
        return request_refused(req, "raft_apply", rv);
    }
    /* raft owns buf.base now. */
    return 0;
}

int rq_node_apply(struct rq_node *n, const void *payload, size_t len,
                  rq_node_done_cb cb, void *data)
{
    struct raft_buffer buf;
    int rv;

    rv = refuse_proposal(n);
    if (rv != 0) {
        return rv;
    }
    rv = rq_entry_encode(payload, len, &buf);
    if (rv != 0) {
        return rv;
    }
    rv = rq_node_apply_entry(n, &buf, cb, data);
    if (rv != 0) {
        raft_free(buf.base);
    }
    return rv;
}

int rq_node_barrier(struct rq_node *n, rq_node_done_cb cb, void *data)
{
    struct request *req;
    int rv;

    rv = refuse_proposal(n);
    if (rv != 0) {
        return rv;
    }
    req = request_new(n, cb, data);
    if (req == NULL) {
        return RQ_NOMEM; /* UNTESTED: ENOMEM only. */
    }
    req->req.barrier.data = req;
    rq_node_wake(n);
    rv = raft_barrier(&n->raft, &req->req.barrier, barrier_cb);
    if (rv != 0) {
        return request_refused(req, "raft_barrier", rv);
    }
    return 0;
}

void rq_node_counters(const struct rq_node *n, struct rq_node_counters *out)
{
    *out = n->counters;
}

/* ---- Raft log memory ---- */

void rq_node_log_memory(const struct rq_node *n, struct rq_node_log_memory *out)
{
    uint64_t last = raft_last_index(raft_of(n));
    uint64_t entries = last >= n->snap.log_first && n->snap.log_first != 0
                           ? last - n->snap.log_first + 1
                           : 0;
    memset(out, 0, sizeof *out);
    out->entries = entries;
    out->average = n->sized ? rq_logmem_average(&n->logmem) : 0;
    out->bytes = entries * out->average;
    out->snapshot_index = n->snap.index;
    out->threshold = n->cur_threshold;
    out->trailing = n->cur_trailing;
}

int rq_node_set_log_budget(struct rq_node *n, uint64_t memory_bytes,
                           uint64_t trailing_bytes)
{
    if (!n->sized) {
        return RQ_INVALID;
    }
    if (rq_logmem_set_budget(&n->logmem, memory_bytes, trailing_bytes)) {
        set_counts(n);
    }
    return 0;
}

/*
 * Closed nodes wait here until the next rq_node_new() or rq_node_close(), or
 * rq_node_release_closed() at exit, releases them: the last close callback
 * may be libraft's, running inside raft_uv's own code, which must not have
 * its object freed under it. (0.15 could also fire that callback a second
 * time, later, so nodes were kept for a minute; 0.22 fires it once, and the
 * sanitizer build of the library would report a second run as a double
 * free.)
 */
static struct rq_node *graveyard;

static void release(struct rq_node *n)
{
    raft_uv_close(&n->io);
    free(n->dir);
    free(n);
}

static void sweep_graveyard(void)
{
    while (graveyard != NULL) {
        struct rq_node *n = graveyard;
        graveyard = n->grave_next;
        release(n);
    }
}

static void bury(struct rq_node *n)
{
    n->grave_next = graveyard;
    graveyard = n;
}

void rq_node_release_closed(void)
{
    sweep_graveyard();
}

/* Finishes closing once raft and the poll timer have both closed. */
static void maybe_finish_close(struct rq_node *n)
{
    assert(n->closes_pending > 0);
    if (--n->closes_pending > 0) {
        return;
    }
    /* raft_close() fails every request raft holds, so none should remain;
     * any that did is answered here, raft having let go of it. */
    while (n->requests != NULL) {
        request_done(n->requests, RQ_SHUTDOWN, 0);
    }
    void (*cb)(void *) = n->close_cb;
    void *data = n->close_data;
    bury(n);
    if (cb != NULL) {
        cb(data);
    }
}

static void on_raft_closed(struct raft *r)
{
    maybe_finish_close(r->data);
}

static void on_poll_closed(uv_handle_t *handle)
{
    maybe_finish_close(handle->data);
}

void rq_node_close(struct rq_node *n, void (*cb)(void *data), void *data)
{
    sweep_graveyard();
    assert(!n->closing);
    n->closing = true;
    n->close_cb = cb;
    n->close_data = data;
    n->closes_pending = 2;
    uv_close((uv_handle_t *)&n->poll, on_poll_closed);
    rq_log(RQ_DEBUG, "%s: closing", n->label);
    raft_close(&n->raft, on_raft_closed);
}

/*
 * One partition replica: the I/O around a struct partition (see replica.h
 * for the files and the lifecycle). The replica owns its rq_node, its mux
 * transport, its partition, the long polls parked on it, its catch-up
 * fetches and its leadership transfers; it knows nothing of HTTP, which is
 * api.c's business.
 *
 * Catching up. A replica restored from a snapshot manifest beyond its own
 * log has a gap (partition_fetch_range). It asks a peer for the missing
 * batches with a FETCH call (the leader first, then the other members in
 * turn after a failure), appends what comes back with partition_fetched()
 * and asks again until the gap is closed. Failures back off from 100 ms to
 * 2 s. A call in flight when the replica closes is orphaned: its callback
 * only frees it.
 *
 * Leadership. The preferred leader of a group is the one the manager named
 * (descriptor field preferred_leader, changed by replica_set_preferred),
 * else voters[group_id % n] in the committed configuration's order, which
 * spreads leaders evenly when groups are numbered consecutively. The
 * preferred leader campaigns as the replica opens (rq_node_campaign), so a
 * new group, or one whose members all restarted, has its leader within a
 * tick or two instead of after an election timeout. A ready
 * leader that is not the preferred one, while the preferred one votes,
 * hands over with raft_transfer() from replica_tick();
 * libraft sends TimeoutNow once the target has caught up, or gives up after
 * an election timeout, after which the next attempt backs off (5 s to 60 s)
 * so a member that is down costs one log line a minute, not one a tick.
 *
 * Membership changes, on the leader, one at a time (libraft allows no
 * more):
 *
 *     NONE --replica_member_add, new id--> ADD          (raft_add: spare)
 *     NONE --replica_member_add, spare--> PROMOTE       (raft_assign)
 *     ADD --on_raft_change, 0--> PROMOTE --on_change_next--> raft_assign
 *     PROMOTE --on_raft_change--> NONE                  (voter committed)
 *     NONE --replica_member_remove--> REMOVE --on_raft_change--> NONE
 *     any --on_raft_change, error / close--> NONE
 *
 * raft_assign() runs from a zero timer, not from inside the callback of the
 * add, which libraft calls from its apply loop. libraft 0.22.1 promotes a
 * spare only once it has caught up (rounds of replication, each faster than
 * an election timeout) and gives up with RAFT_NOCONNECTION if a round takes
 * over 5 s. The caller's deadline only ends its wait: the change itself goes
 * on, and asking again finds it done or under way. No automatic leadership
 * transfer starts while a change is under way (a transfer makes libraft
 * refuse changes, and a change fails when leadership moves).
 *
 * Following the configuration. Every replica compares the committed
 * configuration's index with the one its descriptor follows (after each
 * node change, each change of its own and each tick) and rewrites the
 * descriptor when the servers differ (see replica.h). A removed member
 * hears nothing more from its leader: with no leader for two election
 * timeouts, it asks a peer for its committed configuration, and one newer
 * than its own that leaves it out means it was removed.
 */
#include "replica.h"

#include <assert.h>
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "bmetrics.h"
#include "brpc.h"
#include "rq_entry.h"
#include "rq_err.h"
#include "rq_fs.h"
#include "rq_list.h"
#include "rq_log.h"
#include "rq_wire.h"

#define LOG_TAG "replica"

#define PATH_LEN 4096
#define DESC_FILE "replica.json"
#define FETCH_MAX_BYTES (4u << 20)
#define FETCH_TIMEOUT_MS 5000
#define FETCH_BACKOFF_MIN_MS 100
#define FETCH_BACKOFF_MAX_MS 2000
#define TRANSFER_BACKOFF_MIN_MS 5000
#define TRANSFER_BACKOFF_MAX_MS 60000
/* How often a replica that misses something asks a peer (MEMBERS). */
#define MEMBERS_QUERY_MS 1000
#define MEMBERS_TIMEOUT_MS 2000
/* HTTP addresses learned of members outside the descriptor. */
#define KNOWN_MAX 8
#define QUERY_PEERS_MAX 16
/* A transfer request embeds the TimeoutNow send libraft may still have in
 * flight when the transfer's callback runs; the request is reused only
 * after this pause, long enough for a loopback or LAN write to finish. */
#define TRANSFER_GAP_MS 1000

struct replica_waiter {
    struct replica *replica;
    struct rq_list link;
    uint64_t offset;
    uv_timer_t timer;
    replica_wait_cb cb;
    void *data;
};

/* A FETCH call in flight; replica is NULL once the replica has closed. */
struct fetch {
    struct replica *replica;
    uint64_t peer;
    uint64_t from;
};

/* A MEMBERS call in flight; replica is NULL once the replica has closed. */
struct members_query {
    struct replica *replica;
    char peer[RQ_ADDR_MAX];
};

enum change_step {
    CHANGE_NONE,
    CHANGE_ADD,
    CHANGE_PROMOTE,
    CHANGE_REMOVE,
};

struct replica {
    struct replica_desc desc;
    const struct replica_env *env; /* Borrowed. */
    enum replica_state state;
    char dir[PATH_LEN];
    char label[32]; /* "g<group_id>" in log lines. */
    struct partition *partition;
    struct raft_uv_transport transport;
    bool transport_live;
    struct rq_node *node;
    struct bmetrics_replica metrics;

    /* Reads (replica_read): parked until their offset is readable, then
     * queued for the next barrier, then covered by the one in flight. */
    struct rq_list waiters;
    struct rq_list confirm_queue;
    struct rq_list confirm_batch;
    bool confirm_inflight;
    uv_timer_t confirm_timer; /* Issues the next barrier from the loop. */
    uv_timer_t wake_timer;    /* Wakes waiters on the loop after a change. */

    /* Catching up. */
    struct fetch *fetch;
    uv_timer_t fetch_timer; /* Backoff before the next FETCH. */
    unsigned fetch_backoff_ms;
    unsigned fetch_turn; /* Rotates through members after failures. */
    bool fetch_logged;   /* "fetching" was logged; "caught up" is due. */

    /* Leadership transfer. */
    struct raft_transfer transfer;
    bool transfer_inflight;
    bool transfer_auto;
    uint64_t transfer_to;
    void (*transfer_cb)(void *data, int status);
    void *transfer_data;
    uint64_t transfer_ended; /* uv_now() when the last one ended. */
    uint64_t transfer_next;  /* Earliest automatic attempt, uv_now(). */
    unsigned transfer_fails;

    /* Membership changes (on the leader). */
    struct raft_change change;
    enum change_step change_step;
    uint64_t change_id;
    uv_timer_t change_deadline; /* Ends the caller's wait. */
    uv_timer_t change_next;     /* Runs the promotion after the add. */
    replica_change_cb change_cb;
    void *change_data;

    /* Following the configuration. */
    uint64_t conf_followed; /* Configuration index the descriptor follows. */
    uint64_t voters[REPLICA_MEMBERS_MAX]; /* Of the committed one. */
    size_t n_voters;
    bool voters_known;
    struct replica_member known[KNOWN_MAX]; /* HTTP addresses learned. */
    size_t n_known;
    bool members_missing; /* A server's HTTP address is unknown. */
    bool was_member;      /* A committed configuration named this broker. */
    bool removed;
    uint64_t removed_conf;     /* The configuration index that said so. */
    uint64_t leaderless_since; /* uv_now(); 0 while a leader is known. */
    struct members_query *query;
    uint64_t query_next; /* Earliest next MEMBERS call, uv_now(). */
    unsigned query_turn;

    /* Produces (replica_produce): proposed while none is in flight, else
     * queued and proposed together once the ones in flight have applied. */
    unsigned produce_inflight;
    struct rq_list produce_queue; /* struct produce_op */
    /* Of the produces the last entry answered, how many have not come
     * back with their next one: the queue waits for them (up to
     * PRODUCE_LINGER_MS) so that they go in one entry. */
    unsigned produce_expect;
    uv_timer_t linger_timer;

    /* Closing. */
    bool remove;
    unsigned closes_pending;
    void (*close_cb)(void *data, uint64_t group_id, int status);
    void *close_data;
};

static void fetch_maybe(struct replica *r);
static void members_follow(struct replica *r);
static void produce_flush(struct replica *r);
static void change_end(struct replica *r, int status);

/* ---- Lifecycle ---- */

int replica_new(const struct replica_env *env, const struct replica_desc *d,
                struct replica **out)
{
    struct replica *r = calloc(1, sizeof *r);
    if (r == NULL) {
        return RQ_NOMEM; /* UNTESTED: ENOMEM only. */
    }
    r->desc = *d;
    r->env = env;
    r->state = REPLICA_NEW;
    snprintf(r->dir, sizeof r->dir, "%s/replicas/%" PRIu64, env->data_dir,
             d->group_id);
    snprintf(r->label, sizeof r->label, "g%" PRIu64, d->group_id);
    rq_list_init(&r->waiters);
    rq_list_init(&r->produce_queue);
    rq_list_init(&r->confirm_queue);
    rq_list_init(&r->confirm_batch);
    uv_timer_init(env->loop, &r->wake_timer);
    uv_timer_init(env->loop, &r->confirm_timer);
    r->confirm_timer.data = r;
    uv_timer_init(env->loop, &r->fetch_timer);
    uv_timer_init(env->loop, &r->change_deadline);
    uv_timer_init(env->loop, &r->change_next);
    uv_timer_init(env->loop, &r->linger_timer);
    r->linger_timer.data = r;
    r->wake_timer.data = r;
    r->fetch_timer.data = r;
    r->change_deadline.data = r;
    r->change_next.data = r;
    *out = r;
    return 0;
}

/* Writes @d as the replica's descriptor (see replica_save()). */
static int desc_write(struct replica *r, const struct replica_desc *d,
                      char *why, size_t whyn)
{
    char parent[PATH_LEN];
    char tmp[PATH_LEN + 16];
    char path[PATH_LEN + 16];
    int rv;

    snprintf(parent, sizeof parent, "%s/replicas", r->env->data_dir);
    rv = rq_mkdir_p(parent, why, whyn);
    if (rv == 0) {
        rv = rq_mkdir_p(r->dir, why, whyn);
    }
    if (rv != 0) {
        return rv;
    }
    json_t *o = replica_desc_json(d, false);
    char *text = o != NULL ? json_dumps(o, JSON_INDENT(2)) : NULL;
    json_decref(o);
    if (text == NULL) {
        snprintf(why, whyn, "out of memory"); /* UNTESTED: ENOMEM only. */
        return RQ_NOMEM;
    }
    snprintf(tmp, sizeof tmp, "%s/%s.tmp", r->dir, DESC_FILE);
    snprintf(path, sizeof path, "%s/%s", r->dir, DESC_FILE);
    rv = RQ_IO;
    int fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
    if (fd < 0) {
        snprintf(why, whyn, "cannot create %s: %s", tmp, strerror(errno));
        goto err_after_text;
    }
    size_t len = strlen(text);
    text[len] = '\n'; /* json_dumps' NUL becomes the final newline. */
    if (write(fd, text, len + 1) != (ssize_t)(len + 1) || fsync(fd) != 0) {
        snprintf(why, whyn, "cannot write %s: %s", tmp, strerror(errno));
        close(fd);
        goto err_after_text;
    }
    close(fd);
    if (rename(tmp, path) != 0) {
        snprintf(why, whyn, "cannot rename %s: %s", tmp, strerror(errno));
        goto err_after_text;
    }
    /* The rename is durable once the directory is synced; so is the new
     * directory's entry in its parent. */
    if (rq_fsync_dir(r->dir) != 0 || rq_fsync_dir(parent) != 0) {
        snprintf(why, whyn, "cannot sync %s: %s", r->dir, strerror(errno));
        goto err_after_text;
    }
    rv = 0;
err_after_text:
    free(text);
    return rv;
}

int replica_save(struct replica *r, char *why, size_t whyn)
{
    return desc_write(r, &r->desc, why, whyn);
}

/* Moves @name of the replica's directory into @to, if it is there; with
 * @second_name, gives it a second name there instead (a link). */
static int move_into(struct replica *r, const char *to, const char *name,
                     bool second_name, char *why, size_t whyn)
{
    char from[PATH_LEN + 32];
    char dest[PATH_LEN + 96];
    snprintf(from, sizeof from, "%s/%s", r->dir, name);
    snprintf(dest, sizeof dest, "%s/%s", to, name);
    int rv = second_name ? link(from, dest) : rename(from, dest);
    if (rv != 0 && errno != ENOENT) {
        snprintf(why, whyn, "cannot %s %s to %s: %s",
                 second_name ? "link" : "move", from, dest, strerror(errno));
        return RQ_IO;
    }
    return 0;
}

/* replica_set_aside() but for the state it leaves. */
static int set_aside(struct replica *r, char *moved_to, size_t moved_ton,
                     char *why, size_t whyn)
{
    char parent[PATH_LEN];
    char to[PATH_LEN + 64];
    uint64_t gid = r->desc.group_id;
    int rv;

    snprintf(parent, sizeof parent, "%s/quarantine", r->env->data_dir);
    rv = rq_mkdir_p(parent, why, whyn);
    if (rv != 0) {
        return rv;
    }
    /* A name of its own, even for two rebuilds within a second. */
    long long now = (long long)time(NULL);
    snprintf(to, sizeof to, "%s/%" PRIu64 "-%lld", parent, gid, now);
    for (unsigned n = 1; mkdir(to, 0755) != 0; n++) {
        if (errno != EEXIST || n > 1000) {
            snprintf(why, whyn, "cannot create %s: %s", to, strerror(errno));
            return RQ_IO;
        }
        snprintf(to, sizeof to, "%s/%" PRIu64 "-%lld-%u", parent, gid, now, n);
    }
    /* The old descriptor stays readable there: a second name for it,
     * which the rename of the new one leaves alone. */
    rv = move_into(r, to, DESC_FILE, true, why, whyn);
    if (rv == 0) {
        rv = desc_write(r, &r->desc, why, whyn);
    }
    if (rv == 0) {
        rv = move_into(r, to, "raft", false, why, whyn);
    }
    if (rv == 0) {
        rv = move_into(r, to, "log", false, why, whyn);
    }
    if (rv != 0) {
        return rv;
    }
    if (rq_fsync_dir(to) != 0 || rq_fsync_dir(parent) != 0 ||
        rq_fsync_dir(r->dir) != 0) {
        snprintf(why, whyn, "cannot sync %s: %s", to, strerror(errno));
        return RQ_IO;
    }
    snprintf(moved_to, moved_ton, "%s", to);
    return 0;
}

int replica_set_aside(struct replica *r, char *moved_to, size_t moved_ton,
                      char *why, size_t whyn)
{
    assert(r->state == REPLICA_NEW);
    int rv = set_aside(r, moved_to, moved_ton, why, whyn);
    if (rv != 0) {
        r->state = REPLICA_FAILED; /* Never opened over half-moved files. */
    }
    return rv;
}

static void on_partition_change(void *data, struct partition *p);
static void on_node_change(void *data, const struct rq_node_info *info);

int replica_open(struct replica *r, char *why, size_t whyn)
{
    const struct replica_env *env = r->env;
    char log_dir[PATH_LEN + 8];
    char raft_dir[PATH_LEN + 8];
    int rv;

    assert(r->state == REPLICA_NEW);
    r->state = REPLICA_FAILED; /* Until everything below has worked. */
    snprintf(log_dir, sizeof log_dir, "%s/log", r->dir);
    snprintf(raft_dir, sizeof raft_dir, "%s/raft", r->dir);

    struct partition_config pc = {
        .dir = log_dir,
        .segment_bytes = env->segment_bytes,
        .group_id = r->desc.group_id,
        .sync_seconds = env->metrics != NULL ? env->metrics->fsync : NULL,
    };
    rv = partition_open(&pc, &r->partition, why, whyn);
    if (rv != 0) {
        return rv;
    }
    partition_on_change(r->partition, on_partition_change, r);

    rv = rq_mux_transport_init(env->mux, r->desc.group_id, &r->transport);
    if (rv != 0) {
        snprintf(why, whyn, "transport of group %" PRIu64 ": %s",
                 r->desc.group_id, rq_strerror(rv));
        return rv;
    }
    r->transport_live = true;

    struct rq_node_config nc = {
        .id = env->self_id,
        .address = env->raft_addr,
        .dir = raft_dir,
        .label = r->label,
        .election_timeout_ms = env->election_timeout_ms,
        .heartbeat_timeout_ms = env->heartbeat_ms,
        .snapshot_threshold = env->snapshot_threshold,
        .log_memory_bytes = env->raft_log_memory_bytes,
        .trailing_bytes = env->raft_log_trailing_bytes,
        .segment_size = env->raft_segment_size,
        .pre_vote = true,
        .quiet_after_ms = env->quiet_ms,
        .quiet_heartbeat_ms = env->quiet_heartbeat_ms,
        .quiet_election_ms = env->quiet_election_ms,
    };
    rv = rq_node_new(env->loop, &r->transport, &nc, &partition_fsm_ops,
                     r->partition, &r->node, why, whyn);
    if (rv != 0) {
        return rv;
    }
    rq_node_on_change(r->node, on_node_change, r);
    if (r->desc.bootstrap) {
        struct rq_peer peers[REPLICA_MEMBERS_MAX];
        for (size_t i = 0; i < r->desc.n_members; i++) {
            peers[i].id = r->desc.members[i].id;
            snprintf(peers[i].address, sizeof peers[i].address, "%s",
                     r->desc.members[i].raft_addr);
        }
        rv = rq_node_bootstrap(r->node, peers, r->desc.n_members, why, whyn);
        if (rv != 0) {
            return rv;
        }
    }
    rv = rq_node_start(r->node, why, whyn);
    if (rv != 0) {
        return rv;
    }
    r->state = REPLICA_OPEN;
    if (replica_preferred(r) == env->self_id) {
        rq_node_campaign(r->node); /* No election timeout's wait. */
    }
    bmetrics_replica_open(env->metrics, &r->metrics, r->desc.topic,
                          r->desc.partition_id, r->desc.group_id);
    rq_log(RQ_INFO,
           "%s: open, topic %s partition %" PRIu64 ", offsets %" PRIu64
           "..%" PRIu64 ", preferred leader %" PRIu64,
           r->label, r->desc.topic, r->desc.partition_id,
           partition_first_offset(r->partition),
           partition_next_offset(r->partition), replica_preferred(r));
    r->leaderless_since = uv_now(env->loop);
    members_follow(r);
    fetch_maybe(r);
    return 0;
}

static int rm_entry(const char *path, const struct stat *st, int flag,
                    struct FTW *ftw)
{
    (void)st;
    (void)ftw;
    return flag == FTW_DP ? rmdir(path) : unlink(path);
}

static void close_step(struct replica *r)
{
    assert(r->closes_pending > 0);
    if (--r->closes_pending > 0) {
        return;
    }
    /* raft_uv has let go of the transport (rq_node_close has completed). */
    if (r->transport_live) {
        rq_mux_transport_close(&r->transport);
    }
    partition_close(r->partition);
    int status = 0;
    if (r->remove) {
        if (nftw(r->dir, rm_entry, 16, FTW_DEPTH | FTW_PHYS) != 0 &&
            errno != ENOENT) {
            rq_log(RQ_ERROR, "%s: cannot delete %s: %s", r->label, r->dir,
                   strerror(errno));
            status = RQ_IO;
        } else {
            rq_log(RQ_INFO, "%s: removed", r->label);
        }
    } else {
        rq_log(RQ_DEBUG, "%s: closed", r->label);
    }
    void (*cb)(void *, uint64_t, int) = r->close_cb;
    void *data = r->close_data;
    uint64_t gid = r->desc.group_id;
    bmetrics_replica_close(&r->metrics);
    free(r);
    if (cb != NULL) {
        cb(data, gid, status);
    }
}

static void on_handle_closed(uv_handle_t *h)
{
    close_step(h->data);
}

static void on_node_closed(void *data)
{
    struct replica *r = data;
    r->node = NULL;
    close_step(r);
}

static void waiters_end(struct rq_list *list, int status);

void replica_close(struct replica *r, bool remove,
                   void (*cb)(void *data, uint64_t group_id, int status),
                   void *data)
{
    assert(r->state != REPLICA_CLOSING);
    r->state = REPLICA_CLOSING;
    r->remove = remove;
    r->close_cb = cb;
    r->close_data = data;
    waiters_end(&r->waiters, RQ_SHUTDOWN);
    waiters_end(&r->confirm_queue, RQ_SHUTDOWN);
    waiters_end(&r->confirm_batch, RQ_SHUTDOWN);
    if (r->fetch != NULL) {
        r->fetch->replica = NULL;
        r->fetch = NULL;
    }
    if (r->query != NULL) {
        r->query->replica = NULL;
        r->query = NULL;
    }
    produce_flush(r); /* Queued produces end: the replica is closing. */
    r->closes_pending = 6;
    uv_close((uv_handle_t *)&r->linger_timer, on_handle_closed);
    uv_close((uv_handle_t *)&r->wake_timer, on_handle_closed);
    uv_close((uv_handle_t *)&r->confirm_timer, on_handle_closed);
    uv_close((uv_handle_t *)&r->fetch_timer, on_handle_closed);
    uv_close((uv_handle_t *)&r->change_deadline, on_handle_closed);
    uv_close((uv_handle_t *)&r->change_next, on_handle_closed);
    if (r->node != NULL) {
        /* Pending produces, a pending transfer and a membership change
         * in raft's hands end in here. */
        r->closes_pending++;
        rq_node_close(r->node, on_node_closed, r);
    }
    if (r->change_step != CHANGE_NONE) {
        change_end(r, RQ_SHUTDOWN); /* Between the add and the promotion. */
    }
}

/* ---- State ---- */

const struct replica_desc *replica_desc(const struct replica *r)
{
    return &r->desc;
}

enum replica_state replica_state(const struct replica *r)
{
    return r->state;
}

struct partition *replica_partition(struct replica *r)
{
    return r->state == REPLICA_OPEN ? r->partition : NULL;
}

void replica_status(const struct replica *r, struct replica_status *out)
{
    uint64_t from;
    uint64_t to;

    memset(out, 0, sizeof *out);
    switch (r->state) {
        case REPLICA_NEW:
            out->state = "opening";
            break;
        case REPLICA_OPEN:
            out->state = r->removed ? "removed"
                         : partition_fetch_range(r->partition, &from, &to)
                             ? "fetching"
                             : "ready";
            break;
        case REPLICA_FAILED:
            out->state = "failed";
            break;
        case REPLICA_CLOSING:
            out->state = "closing";
            break;
    }
    if (r->state == REPLICA_OPEN) {
        rq_node_info(r->node, &out->node);
        out->first_offset = partition_first_offset(r->partition);
        out->next_offset = partition_next_offset(r->partition);
    }
    const struct rq_list *lists[] = {&r->waiters, &r->confirm_queue,
                                     &r->confirm_batch};
    for (size_t i = 0; i < sizeof lists / sizeof lists[0]; i++) {
        for (const struct rq_list *e = lists[i]->next; e != lists[i];
             e = e->next) {
            out->waiters++;
        }
    }
}

/* ---- Metrics ---- */

struct bmetrics_replica *replica_metrics(struct replica *r)
{
    return &r->metrics;
}

void replica_metrics_collect(struct replica *r)
{
    struct bmetrics_replica *m = &r->metrics;
    struct rq_node_info info;
    struct rq_node_counters counters;
    struct rq_node_log_memory mem;

    if (r->state != REPLICA_OPEN || m->term == NULL) {
        return;
    }
    rq_node_info(r->node, &info);
    rq_node_counters(r->node, &counters);
    rq_node_log_memory(r->node, &mem);
    rq_metric_set(m->term, (double)info.term);
    rq_metric_set(m->commit, (double)info.commit);
    rq_metric_set(m->applied, (double)info.applied);
    rq_metric_set(m->is_leader, info.role == RQ_ROLE_LEADER ? 1 : 0);
    rq_metric_set(m->leader_changes, (double)counters.leader_changes);
    rq_metric_set(m->snapshots, (double)counters.snapshots);
    rq_metric_set(m->messages_sent, (double)counters.messages_sent);
    rq_metric_set(m->quiet, info.quiet ? 1 : 0);
    rq_metric_set(m->raft_log_bytes, (double)mem.bytes);
    rq_metric_set(m->first_offset,
                  (double)partition_first_offset(r->partition));
    rq_metric_set(m->next_offset, (double)partition_next_offset(r->partition));
    rq_metric_set(m->log_bytes, (double)partition_bytes(r->partition));
}

/* ---- Raft log memory ---- */

bool replica_log_memory(const struct replica *r, struct rq_node_log_memory *out)
{
    if (r->state != REPLICA_OPEN) {
        memset(out, 0, sizeof *out);
        return false;
    }
    rq_node_log_memory(r->node, out);
    return true;
}

void replica_set_log_budget(struct replica *r, uint64_t memory_bytes,
                            uint64_t trailing_bytes)
{
    if (r->state == REPLICA_OPEN) {
        /* RQ_INVALID when snapshots are counted in entries only. */
        (void)rq_node_set_log_budget(r->node, memory_bytes, trailing_bytes);
    }
}

bool replica_ready_leader(const struct replica *r)
{
    return r->state == REPLICA_OPEN && rq_node_ready(r->node);
}

const struct replica_member *replica_leader(const struct replica *r)
{
    struct rq_node_info info;
    if (r->state != REPLICA_OPEN) {
        return NULL;
    }
    rq_node_info(r->node, &info);
    if (info.leader_id == 0 || info.leader_id == r->env->self_id) {
        return NULL;
    }
    return replica_desc_member(&r->desc, info.leader_id);
}

bool replica_leader_lost(struct replica *r, uint64_t broker_id)
{
    const struct replica_member *l = replica_leader(r);
    if (r->state != REPLICA_OPEN || l == NULL || l->id != broker_id) {
        return false;
    }
    rq_node_leader_lost(r->node, broker_id);
    return true;
}

uint64_t replica_preferred(const struct replica *r)
{
    uint64_t voters[REPLICA_MEMBERS_MAX];
    if (r->desc.preferred_leader != 0) {
        return r->desc.preferred_leader;
    }
    size_t n = replica_voters(r, voters, REPLICA_MEMBERS_MAX);
    if (n == 0) {
        return replica_desc_preferred(&r->desc);
    }
    return voters[r->desc.group_id % n];
}

int replica_set_preferred(struct replica *r, uint64_t id, char *why,
                          size_t whyn)
{
    if (r->desc.preferred_leader == id) {
        return 0;
    }
    if (r->state == REPLICA_CLOSING) {
        snprintf(why, whyn, "the replica is closing");
        return RQ_SHUTDOWN;
    }
    struct replica_desc d = r->desc;
    d.preferred_leader = id;
    int rv = desc_write(r, &d, why, whyn);
    if (rv != 0) {
        return rv;
    }
    rq_log(RQ_INFO, "%s: preferred leader now broker %" PRIu64, r->label, id);
    r->desc = d;
    /* A new preferred leader is worth trying at once, whatever the
     * attempts to the old one cost. */
    r->transfer_fails = 0;
    r->transfer_next = 0;
    return 0;
}

bool replica_holds_merged(const struct replica *r)
{
    struct rq_node_log_memory mem;
    if (r->state != REPLICA_OPEN) {
        return false;
    }
    rq_node_log_memory(r->node, &mem);
    return partition_last_merged(r->partition) > mem.snapshot_index;
}

/* ---- Produce ---- */

/* Produces merged into one entry, at most, and their entries' bytes (a
 * lone larger one goes alone). */
#define PRODUCE_MERGE_MAX 256
#define PRODUCE_MERGE_BYTES (4u << 20)
/* How long queued produces wait for the ones the last entry answered. */
#define PRODUCE_LINGER_MS 1
/* A produce this large is its own entry (merging it would only copy it)
 * unless others wait before it. */
#define PRODUCE_MERGE_SMALL (64u << 10)

struct produce_op {
    struct replica *r;
    struct rq_list link; /* In r->produce_queue while it waits. */
    struct raft_buffer entry;
    rq_node_done_cb cb;
    void *data;
};

/* Whether produces to @r may be merged: on, and every other server of its
 * configuration (non-voters too: they apply the entries alike) on a
 * broker known to read merged entries. A broker of an earlier release
 * would skip one as malformed and lose its records. */
static bool produce_merging(struct replica *r)
{
    if (!r->env->merge_produces || r->env->peer_merges == NULL) {
        return false;
    }
    const struct raft_configuration *c =
        rq_node_configuration(r->node, NULL, NULL);
    for (unsigned i = 0; i < c->n; i++) {
        uint64_t id = c->servers[i].id;
        if (id != r->env->self_id &&
            !r->env->peer_merges(r->env->peer_data, id)) {
            return false;
        }
    }
    return c->n > 0;
}

/* The last entry applied answered @n produces: the queue is proposed once
 * as many have come back, or after PRODUCE_LINGER_MS. */
static void produce_settle(struct replica *r, size_t n);

static void on_produce_applied(void *data, int status, uint64_t result)
{
    struct produce_op *op = data;
    struct replica *r = op->r;
    rq_node_done_cb cb = op->cb;
    void *cb_data = op->data;
    free(op);
    r->produce_inflight--;
    cb(cb_data, status, result);
    produce_settle(r, 1);
}

/* Proposes @op's entry alone: 0, or the error with the entry still
 * @op's. */
static int produce_propose(struct replica *r, struct produce_op *op)
{
    int rv = RQ_NOTLEADER;
    if (r->state == REPLICA_CLOSING) {
        rv = RQ_SHUTDOWN;
    } else if (r->state == REPLICA_OPEN && !r->transfer_inflight) {
        rv = rq_node_apply_entry(r->node, &op->entry, on_produce_applied, op);
    }
    if (rv == 0) {
        r->produce_inflight++;
    }
    return rv;
}

/* Ends @op with @status (its entry freed if it still has it). */
static void produce_fail(struct produce_op *op, int status)
{
    raft_free(op->entry.base);
    rq_node_done_cb cb = op->cb;
    void *cb_data = op->data;
    free(op);
    cb(cb_data, status, 0);
}

/* Produces proposed together as one merged entry. */
struct merged_op {
    struct replica *r;
    size_t n;
    struct produce_op *ops[PRODUCE_MERGE_MAX]; /* Their entries freed. */
};

static void on_merged_applied(void *data, int status, uint64_t result)
{
    struct merged_op *m = data;
    struct replica *r = m->r;
    const uint64_t *results = NULL;
    size_t n = 0;

    r->produce_inflight--;
    if (status == 0 &&
        (partition_merged_results(r->partition, result, &results, &n) != 0 ||
         n != m->n)) {
        /* UNTESTED: one merged entry of ours is in flight at a time, and
         * the partition keeps the results of several. The records may be
         * committed: the proposers retry under the same producer id and
         * sequence, which the table answers. */
        rq_log(RQ_ERROR, "%s: the results of merged entry %" PRIu64 " are gone",
               r->label, result);
        status = RQ_NOTLEADER;
    }
    for (size_t i = 0; i < m->n; i++) {
        struct produce_op *op = m->ops[i];
        op->cb(op->data, status, status == 0 ? results[i] : 0);
        free(op);
    }
    size_t answered = m->n;
    free(m);
    produce_settle(r, answered);
}

/*
 * Proposes the first @n queued produces (2 or more, taken off the queue)
 * as one merged entry; false if it could not be built (they stay queued).
 */
static bool produce_merge(struct replica *r, size_t n)
{
    struct raft_buffer entries[PRODUCE_MERGE_MAX] = {{0}};
    struct raft_buffer entry;
    struct merged_op *m = calloc(1, sizeof *m);
    if (m == NULL) {
        return false; /* UNTESTED: ENOMEM only. */
    }
    struct rq_list *l = r->produce_queue.next;
    for (size_t i = 0; i < n; i++, l = l->next) {
        m->ops[i] = RQ_LIST_ENTRY(l, struct produce_op, link);
        entries[i] = m->ops[i]->entry;
    }
    m->r = r;
    m->n = n;
    if (partition_merged_alloc(entries, n, &entry) != 0) {
        free(m); /* UNTESTED: ENOMEM only (the sizes were checked). */
        return false;
    }
    for (size_t i = 0; i < n; i++) {
        rq_list_remove(&m->ops[i]->link);
        raft_free(m->ops[i]->entry.base);
        m->ops[i]->entry.base = NULL;
    }
    int rv = RQ_NOTLEADER;
    if (r->state == REPLICA_CLOSING) {
        rv = RQ_SHUTDOWN;
    } else if (r->state == REPLICA_OPEN && !r->transfer_inflight) {
        rv = rq_node_apply_entry(r->node, &entry, on_merged_applied, m);
    }
    if (rv == 0) {
        r->produce_inflight++;
        bmetrics_merged(r->env->metrics, n);
        return true;
    }
    raft_free(entry.base);
    for (size_t i = 0; i < n; i++) {
        produce_fail(m->ops[i], rv);
    }
    free(m);
    return true;
}

/* Proposes the queued produces, in arrival order: those that fit one
 * merged entry together (PRODUCE_MERGE_MAX of them, PRODUCE_MERGE_BYTES),
 * a lone one as it is; the rest wait for that entry to apply. Ends them
 * all while the replica closes. */
static void produce_flush(struct replica *r)
{
    while (!rq_list_empty(&r->produce_queue)) {
        struct produce_op *first =
            RQ_LIST_ENTRY(r->produce_queue.next, struct produce_op, link);
        if (r->state == REPLICA_CLOSING) {
            rq_list_remove(&first->link);
            produce_fail(first, RQ_SHUTDOWN);
            continue;
        }
        size_t n = 0;
        size_t bytes = 0;
        for (struct rq_list *l = r->produce_queue.next;
             l != &r->produce_queue && n < PRODUCE_MERGE_MAX; l = l->next) {
            struct produce_op *op = RQ_LIST_ENTRY(l, struct produce_op, link);
            if (n > 0 && bytes + op->entry.len > PRODUCE_MERGE_BYTES) {
                break;
            }
            bytes += op->entry.len;
            n++;
        }
        if (n >= 2 && produce_merging(r) && produce_merge(r, n)) {
            if (r->produce_inflight > 0) {
                return;
            }
            continue; /* Refused, and ended: the next ones fare alike. */
        }
        rq_list_remove(&first->link);
        int rv = produce_propose(r, first);
        if (rv != 0) {
            produce_fail(first, rv);
        }
    }
}

static void on_linger(uv_timer_t *t)
{
    struct replica *r = t->data;
    r->produce_expect = 0;
    if (r->produce_inflight == 0 && r->state != REPLICA_CLOSING) {
        produce_flush(r);
    }
}

/* Proposes the queue if nothing is in flight and nobody is awaited, else
 * lets the linger timer do it. */
static void produce_maybe_flush(struct replica *r)
{
    if (r->produce_inflight > 0 || rq_list_empty(&r->produce_queue)) {
        return;
    }
    if (r->state == REPLICA_CLOSING) {
        produce_flush(r); /* UNTESTED: the close ends the queue first. */
        return;
    }
    if (r->produce_expect == 0) {
        uv_timer_stop(&r->linger_timer);
        produce_flush(r);
        return;
    }
    if (!uv_is_active((uv_handle_t *)&r->linger_timer)) {
        uv_timer_start(&r->linger_timer, on_linger, PRODUCE_LINGER_MS, 0);
    }
}

static void produce_settle(struct replica *r, size_t n)
{
    if (r->env->merge_produces && r->produce_inflight == 0) {
        /* The wait starts now, so that producers that do not come back
         * delay nobody later. */
        r->produce_expect = n > 1 ? (unsigned)n : 0;
        if (r->produce_expect > 0 && r->state != REPLICA_CLOSING) {
            uv_timer_start(&r->linger_timer, on_linger, PRODUCE_LINGER_MS, 0);
        }
    }
    if (r->state == REPLICA_CLOSING) {
        return; /* The close has ended the queue. */
    }
    produce_maybe_flush(r);
}

int replica_produce(struct replica *r, const struct raft_buffer *entry,
                    rq_node_done_cb cb, void *data)
{
    if (r->state == REPLICA_CLOSING) {
        return RQ_SHUTDOWN;
    }
    /* libraft refuses entries while leadership is being handed over; so
     * do we, before it would log each refusal. */
    if (r->state != REPLICA_OPEN || r->transfer_inflight) {
        return RQ_NOTLEADER;
    }
#ifndef NDEBUG
    /* The records were written in place by our own code: a malformed entry
     * here is a bug, and every replica would skip it. */
    const uint8_t *payload;
    size_t len;
    struct partition_append a;
    assert(rq_entry_decode(entry, &payload, &len) == 0 &&
           partition_entry_decode(payload, len, &a) == 0);
#endif
    struct produce_op *op = calloc(1, sizeof *op);
    if (op == NULL) {
        return RQ_NOMEM; /* UNTESTED: ENOMEM only. */
    }
    *op = (struct produce_op){.r = r, .entry = *entry, .cb = cb, .data = data};
    /* Never ahead of one that waits: a producer's order is the queue's. */
    if (!rq_list_empty(&r->produce_queue) ||
        (entry->len <= PRODUCE_MERGE_SMALL &&
         (r->produce_inflight > 0 || r->produce_expect > 0) &&
         produce_merging(r))) {
        rq_list_push(&r->produce_queue, &op->link);
        if (r->produce_expect > 0) {
            r->produce_expect--;
        }
        produce_maybe_flush(r);
        return 0;
    }
    int rv = produce_propose(r, op);
    if (rv != 0) {
        free(op);
    }
    return rv;
}

/* ---- Waiters (long polls) ---- */

static void on_waiter_closed(uv_handle_t *h)
{
    free(h->data);
}

/* Unlinks @w, releases its timer and calls its callback. */
static void waiter_end(struct replica_waiter *w, int status)
{
    rq_list_remove(&w->link);
    w->replica = NULL;
    uv_timer_stop(&w->timer);
    uv_close((uv_handle_t *)&w->timer, on_waiter_closed);
    w->cb(w->data, status);
}

/* Ends every waiter in @list with @status. The list is emptied first, so
 * a callback may add waiters to the replica's lists. */
static void waiters_end(struct rq_list *list, int status)
{
    struct rq_list taken;
    rq_list_init(&taken);
    while (!rq_list_empty(list)) {
        struct rq_list *e = list->next;
        rq_list_remove(e);
        rq_list_push(&taken, e);
    }
    while (!rq_list_empty(&taken)) {
        waiter_end(RQ_LIST_ENTRY(taken.next, struct replica_waiter, link),
                   status);
    }
}

static void on_confirm_timer(uv_timer_t *t);

/* Moves @w to the reads waiting for the next barrier and makes sure one
 * will be issued (from the loop: never inside the caller). */
static void waiter_confirm(struct replica_waiter *w)
{
    struct replica *r = w->replica;
    uv_timer_stop(&w->timer);
    rq_list_remove(&w->link);
    rq_list_push(&r->confirm_queue, &w->link);
    if (!r->confirm_inflight &&
        !uv_is_active((uv_handle_t *)&r->confirm_timer)) {
        uv_timer_start(&r->confirm_timer, on_confirm_timer, 0, 0);
    }
}

static void on_confirmed(void *data, int status, uint64_t result)
{
    struct replica *r = data;
    (void)result;
    r->confirm_inflight = false;
    /* 0: every entry before the barrier is applied here, and a majority
     * took an entry of this leader's term after these reads arrived. */
    waiters_end(&r->confirm_batch, status);
    if (r->state == REPLICA_OPEN && !rq_list_empty(&r->confirm_queue) &&
        !uv_is_active((uv_handle_t *)&r->confirm_timer)) {
        uv_timer_start(&r->confirm_timer, on_confirm_timer, 0, 0);
    }
}

/* Issues one barrier for every read queued since the last one was
 * issued. */
static void on_confirm_timer(uv_timer_t *t)
{
    struct replica *r = t->data;
    if (r->state != REPLICA_OPEN || r->confirm_inflight ||
        rq_list_empty(&r->confirm_queue)) {
        return;
    }
    while (!rq_list_empty(&r->confirm_queue)) {
        struct rq_list *e = r->confirm_queue.next;
        rq_list_remove(e);
        rq_list_push(&r->confirm_batch, e);
    }
    /* libraft refuses entries while leadership is being handed over. */
    int rv = r->transfer_inflight ? RQ_NOTLEADER
                                  : rq_node_barrier(r->node, on_confirmed, r);
    if (rv != 0) {
        waiters_end(&r->confirm_batch, rv);
        return;
    }
    r->confirm_inflight = true;
}

static void on_waiter_timeout(uv_timer_t *t)
{
    waiter_confirm(t->data);
}

int replica_read(struct replica *r, uint64_t offset, unsigned ms,
                 replica_wait_cb cb, void *data, struct replica_waiter **out)
{
    if (r->state != REPLICA_OPEN || !rq_node_ready(r->node) ||
        r->transfer_inflight) {
        return RQ_NOTLEADER;
    }
    struct replica_waiter *w = calloc(1, sizeof *w);
    if (w == NULL) {
        return RQ_NOMEM; /* UNTESTED: ENOMEM only. */
    }
    w->replica = r;
    w->offset = offset;
    w->cb = cb;
    w->data = data;
    uv_timer_init(r->env->loop, &w->timer);
    w->timer.data = w;
    rq_list_push(&r->waiters, &w->link);
    if (ms == 0 || offset < partition_local_next(r->partition)) {
        waiter_confirm(w);
    } else {
        uv_timer_start(&w->timer, on_waiter_timeout, ms, 0);
    }
    *out = w;
    return 0;
}

void replica_wait_cancel(struct replica_waiter *w)
{
    rq_list_remove(&w->link);
    w->replica = NULL;
    uv_timer_stop(&w->timer);
    uv_close((uv_handle_t *)&w->timer, on_waiter_closed);
}

/* Runs on the loop after a change, outside raft's apply: sends every
 * waiter whose offset is now readable on to its confirmation and
 * continues a catch-up. */
static void on_wake(uv_timer_t *t)
{
    struct replica *r = t->data;
    if (r->state != REPLICA_OPEN) {
        return;
    }
    uint64_t next = partition_local_next(r->partition);
    struct rq_list *e = r->waiters.next;
    while (e != &r->waiters) {
        struct rq_list *following = e->next;
        struct replica_waiter *w =
            RQ_LIST_ENTRY(e, struct replica_waiter, link);
        if (w->offset < next) {
            waiter_confirm(w);
        }
        e = following;
    }
    fetch_maybe(r);
    members_follow(r);
}

static void on_partition_change(void *data, struct partition *p)
{
    struct replica *r = data;
    (void)p;
    if (r->state == REPLICA_OPEN &&
        !uv_is_active((uv_handle_t *)&r->wake_timer)) {
        uv_timer_start(&r->wake_timer, on_wake, 0, 0);
    }
}

static void on_node_change(void *data, const struct rq_node_info *info)
{
    struct replica *r = data;
    if (info->leader_id != 0) {
        r->leaderless_since = 0;
    } else if (r->leaderless_since == 0) {
        r->leaderless_since = uv_now(r->env->loop);
    }
    if (!info->ready && info->leader_id != 0 &&
        info->leader_id != r->env->self_id) {
        /* Reads parked here are the leader's alone: once another leads,
         * their clients go there now, not at their deadline. */
        waiters_end(&r->waiters, RQ_NOTLEADER);
    }
    members_follow(r);
    /* A leader may have become known: a stalled catch-up can go on. */
    fetch_maybe(r);
}

/* ---- Catching up ---- */

static void on_fetch_timer(uv_timer_t *t)
{
    fetch_maybe(t->data);
}

static void fetch_backoff(struct replica *r)
{
    unsigned ms = r->fetch_backoff_ms == 0 ? FETCH_BACKOFF_MIN_MS
                                           : r->fetch_backoff_ms * 2;
    r->fetch_backoff_ms = ms > FETCH_BACKOFF_MAX_MS ? FETCH_BACKOFF_MAX_MS : ms;
    r->fetch_turn++;
    uv_timer_start(&r->fetch_timer, on_fetch_timer, r->fetch_backoff_ms, 0);
}

/* The member to fetch from: the leader while fetching goes well, else the
 * other members in turn. NULL if there is no other member. */
static const struct replica_member *fetch_peer(struct replica *r)
{
    const struct replica_member *leader = replica_leader(r);
    if (leader != NULL && r->fetch_backoff_ms == 0) {
        return leader;
    }
    for (size_t i = 0; i < r->desc.n_members; i++) {
        const struct replica_member *m =
            &r->desc.members[(r->fetch_turn + i) % r->desc.n_members];
        if (m->id != r->env->self_id) {
            return m;
        }
    }
    return NULL;
}

static void on_fetched(void *data, int status, const uint8_t *body, size_t len)
{
    struct fetch *f = data;
    struct replica *r = f->replica;
    uint64_t peer = f->peer;
    uint64_t from = f->from;
    free(f);
    if (r == NULL) {
        return; /* The replica closed meanwhile. */
    }
    r->fetch = NULL;
    if (status != 0) {
        rq_log(RQ_DEBUG, "%s: fetch at %" PRIu64 " from broker %" PRIu64 ": %s",
               r->label, from, peer, rq_strerror(status));
        fetch_backoff(r);
        return;
    }
    if (len == 0) {
        /* The peer does not hold that offset yet. */
        fetch_backoff(r);
        return;
    }
    int rv = partition_fetched(r->partition, body, len);
    if (rv != 0) {
        rq_log(RQ_WARN,
               "%s: %zu bytes fetched at offset %" PRIu64
               " from broker %" PRIu64 " were refused: %s",
               r->label, len, from, peer, rq_strerror(rv));
        fetch_backoff(r);
        return;
    }
    rq_log(RQ_DEBUG,
           "%s: fetched %zu bytes at %" PRIu64 " from broker %" PRIu64,
           r->label, len, from, peer);
    r->fetch_backoff_ms = 0;
    fetch_maybe(r);
}

/* Asks a peer for the next missing batches if there is a gap and no call
 * or backoff is under way. */
static void fetch_maybe(struct replica *r)
{
    uint64_t from;
    uint64_t to;
    uint8_t body[REPLICA_FETCH_REQUEST];

    if (r->state != REPLICA_OPEN || r->fetch != NULL ||
        uv_is_active((uv_handle_t *)&r->fetch_timer)) {
        return;
    }
    if (!partition_fetch_range(r->partition, &from, &to)) {
        if (r->fetch_logged) {
            rq_log(RQ_INFO, "%s: caught up, log complete to offset %" PRIu64,
                   r->label, partition_local_next(r->partition));
            r->fetch_logged = false;
        }
        r->fetch_backoff_ms = 0;
        return;
    }
    const struct replica_member *peer = fetch_peer(r);
    if (peer == NULL) {
        return; /* UNTESTED: a one-member group has no gap to fill. */
    }
    if (!r->fetch_logged) {
        rq_log(RQ_INFO,
               "%s: fetching offsets %" PRIu64 "..%" PRIu64
               " from broker %" PRIu64,
               r->label, from, to, peer->id);
        r->fetch_logged = true;
    }
    struct fetch *f = calloc(1, sizeof *f);
    if (f == NULL) {
        fetch_backoff(r); /* UNTESTED: ENOMEM only. */
        return;
    }
    f->replica = r;
    f->peer = peer->id;
    f->from = from;
    brpc_fetch_encode(
        &(struct brpc_fetch){r->desc.group_id, from, FETCH_MAX_BYTES}, body);
    int rv = rq_rpc_call(r->env->rpc, peer->raft_addr, REPLICA_RPC_FETCH, body,
                         sizeof body, FETCH_TIMEOUT_MS, on_fetched, f);
    if (rv != 0) {
        free(f);
        fetch_backoff(r);
        return;
    }
    r->fetch = f;
}

int replica_serve_fetch(struct replica *r, uint64_t offset, uint32_t max_bytes,
                        struct rq_buf *out)
{
    if (r->state != REPLICA_OPEN) {
        return RQ_NOTFOUND;
    }
    if (offset < partition_first_offset(r->partition)) {
        return RQ_NOTFOUND;
    }
    if (offset >= partition_local_next(r->partition)) {
        return 0; /* Nothing here yet: an empty reply. */
    }
    if (max_bytes == 0 || max_bytes > FETCH_MAX_BYTES) {
        max_bytes = FETCH_MAX_BYTES;
    }
    return partition_read_batches(r->partition, offset, max_bytes, out);
}

/* ---- Leadership transfer ---- */

static void on_transfer_done(struct raft_transfer *req)
{
    struct replica *r = req->data;
    raft_id leader = 0;
    const char *address = NULL;
    int status;

    r->transfer_inflight = false;
    r->transfer_ended = uv_now(r->env->loop);
    raft_leader(rq_node_raft(r->node), &leader, &address);
    if (r->state == REPLICA_CLOSING) {
        status = RQ_SHUTDOWN;
    } else if (leader == r->transfer_to) {
        status = 0;
        rq_log(RQ_INFO, "%s: leadership moved to broker %" PRIu64, r->label,
               r->transfer_to);
    } else {
        status = RQ_TIMEOUT;
        rq_log(RQ_INFO,
               "%s: leadership transfer to broker %" PRIu64
               " did not complete (leader now %llu)",
               r->label, r->transfer_to, (unsigned long long)leader);
    }
    if (r->transfer_auto) {
        if (status == 0) {
            r->transfer_fails = 0;
        } else if (status == RQ_TIMEOUT) {
            unsigned shift = r->transfer_fails < 4 ? r->transfer_fails : 4;
            uint64_t ms = (uint64_t)TRANSFER_BACKOFF_MIN_MS << shift;
            if (ms > TRANSFER_BACKOFF_MAX_MS) {
                ms = TRANSFER_BACKOFF_MAX_MS;
            }
            r->transfer_fails++;
            r->transfer_next = r->transfer_ended + ms;
        }
    }
    void (*cb)(void *, int) = r->transfer_cb;
    void *data = r->transfer_data;
    r->transfer_cb = NULL;
    r->transfer_data = NULL;
    if (cb != NULL) {
        cb(data, status);
    }
}

static int transfer_start(struct replica *r, uint64_t to, bool automatic,
                          void (*cb)(void *data, int status), void *data)
{
    memset(&r->transfer, 0, sizeof r->transfer);
    r->transfer.data = r;
    rq_node_wake(r->node);
    int rv = raft_transfer(rq_node_raft(r->node), &r->transfer, to,
                           on_transfer_done);
    switch (rv) {
        case 0:
            break;
        case RAFT_NOTLEADER:
            return RQ_NOTLEADER;
        case RAFT_BADID:
            return RQ_INVALID;
        case RAFT_NOTFOUND:
            return RQ_NOTFOUND;
        default:
            rq_log(RQ_WARN, "%s: raft_transfer to %" PRIu64 ": %s", r->label,
                   to, raft_strerror(rv));
            return RQ_RAFT;
    }
    r->transfer_inflight = true;
    r->transfer_auto = automatic;
    r->transfer_to = r->transfer.id; /* raft chose one if @to was 0. */
    r->transfer_cb = cb;
    r->transfer_data = data;
    rq_log(RQ_INFO, "%s: handing leadership to broker %" PRIu64 " (%s)",
           r->label, r->transfer_to,
           automatic ? "its preferred leader" : "asked");
    return 0;
}

int replica_transfer(struct replica *r, uint64_t to,
                     void (*cb)(void *data, int status), void *data)
{
    if (!replica_ready_leader(r)) {
        return RQ_NOTLEADER;
    }
    if (r->transfer_inflight || r->change_step != CHANGE_NONE ||
        uv_now(r->env->loop) < r->transfer_ended + TRANSFER_GAP_MS) {
        return RQ_EXISTS;
    }
    if (to != 0 &&
        (to == r->env->self_id || replica_desc_member(&r->desc, to) == NULL)) {
        return RQ_INVALID;
    }
    return transfer_start(r, to, false, cb, data);
}

/* ---- Membership ---- */

static const struct raft_server *conf_get(const struct raft_configuration *c,
                                          uint64_t id)
{
    for (unsigned i = 0; i < c->n; i++) {
        if (c->servers[i].id == id) {
            return &c->servers[i];
        }
    }
    return NULL;
}

/* Whether a configuration change is appended and not yet committed. */
static bool conf_pending(const struct replica *r)
{
    bool pending;
    rq_node_configuration(r->node, NULL, &pending);
    return pending;
}

/* The committed configuration, or NULL (not open, none yet, or a newer
 * one still uncommitted: libraft keeps only the newest in memory). */
static const struct raft_configuration *committed_conf(const struct replica *r)
{
    if (r->state != REPLICA_OPEN) {
        return NULL;
    }
    bool pending;
    const struct raft_configuration *c =
        rq_node_configuration(r->node, NULL, &pending);
    return c->n == 0 || pending ? NULL : c;
}

size_t replica_voters(const struct replica *r, uint64_t *out, size_t max)
{
    size_t n = 0;
    const struct raft_configuration *c = committed_conf(r);
    if (c != NULL) {
        for (unsigned i = 0; i < c->n && n < max; i++) {
            if (c->servers[i].role == RAFT_VOTER) {
                out[n++] = c->servers[i].id;
            }
        }
        return n;
    }
    if (r->voters_known) {
        for (size_t i = 0; i < r->n_voters && n < max; i++) {
            out[n++] = r->voters[i];
        }
        return n;
    }
    for (size_t i = 0; i < r->desc.n_members && n < max; i++) {
        out[n++] = r->desc.members[i].id;
    }
    return n;
}

/* Remembers @m's HTTP address for when a configuration names it. */
static void remember_known(struct replica *r, const struct replica_member *m)
{
    size_t i;
    for (i = 0; i < r->n_known; i++) {
        if (r->known[i].id == m->id) {
            break;
        }
    }
    if (i == r->n_known) {
        if (r->n_known == KNOWN_MAX) {
            /* Forget the oldest. */
            memmove(&r->known[0], &r->known[1],
                    (KNOWN_MAX - 1) * sizeof r->known[0]);
            i = KNOWN_MAX - 1;
        } else {
            r->n_known++;
        }
    }
    r->known[i] = *m;
}

/* The HTTP address of server @id at @raft_addr, or NULL if unknown. */
static const char *http_of(const struct replica *r, uint64_t id,
                           const char *raft_addr)
{
    const struct replica_member *m = replica_desc_member(&r->desc, id);
    if (m != NULL && strcmp(m->raft_addr, raft_addr) == 0) {
        return m->http_addr;
    }
    for (size_t i = 0; i < r->n_known; i++) {
        if (r->known[i].id == id &&
            strcmp(r->known[i].raft_addr, raft_addr) == 0) {
            return r->known[i].http_addr;
        }
    }
    return NULL;
}

/* Brings the descriptor (and the voters reported) up to the committed
 * configuration, if it moved; see replica.h. */
static void members_follow(struct replica *r)
{
    char why[256];
    const struct raft_configuration *c = committed_conf(r);
    if (c == NULL) {
        return;
    }
    uint64_t index;
    rq_node_configuration(r->node, &index, NULL);
    r->n_voters = 0;
    for (unsigned i = 0; i < c->n && r->n_voters < REPLICA_MEMBERS_MAX; i++) {
        if (c->servers[i].role == RAFT_VOTER) {
            r->voters[r->n_voters++] = c->servers[i].id;
        }
    }
    r->voters_known = true;
    if (index == r->conf_followed) {
        return;
    }
    if (conf_get(c, r->env->self_id) == NULL) {
        /* A replica that joins sees the configurations from before it was
         * added. Else only a leader that removed itself sees this: libraft
         * sends a removed member nothing more. */
        if (r->was_member && !r->removed) {
            rq_log(RQ_INFO,
                   "%s: removed from the group by the configuration of "
                   "index %" PRIu64,
                   r->label, index);
            r->removed = true;
            r->removed_conf = index;
        }
        r->conf_followed = index;
        return;
    }
    r->was_member = true;
    if (r->removed && index > r->removed_conf) {
        rq_log(RQ_INFO,
               "%s: a member again (configuration of index %" PRIu64 ")",
               r->label, index);
        r->removed = false;
    }
    if (c->n > REPLICA_MEMBERS_MAX) {
        rq_log(RQ_WARN,
               "%s: the configuration of index %" PRIu64
               " has %u servers; the descriptor holds at most %d",
               r->label, index, c->n, REPLICA_MEMBERS_MAX);
        r->conf_followed = index;
        return;
    }
    struct replica_desc d = r->desc;
    d.n_members = c->n;
    for (unsigned i = 0; i < c->n; i++) {
        const struct raft_server *s = &c->servers[i];
        const char *http = http_of(r, s->id, s->address);
        if (http == NULL || strlen(s->address) >= RQ_ADDR_MAX) {
            /* Asked of a peer by members_query(); followed after that. */
            r->members_missing = true;
            return;
        }
        d.members[i].id = s->id;
        snprintf(d.members[i].raft_addr, sizeof d.members[i].raft_addr, "%s",
                 s->address);
        snprintf(d.members[i].http_addr, sizeof d.members[i].http_addr, "%s",
                 http);
    }
    r->members_missing = false;
    if (!replica_desc_same(&d, &r->desc)) {
        if (desc_write(r, &d, why, sizeof why) != 0) {
            rq_log(RQ_WARN, "%s: cannot record the new members: %s", r->label,
                   why); /* Tried again on the next tick. */
            return;
        }
        char list[128] = "";
        size_t used = 0;
        for (size_t i = 0; i < d.n_members && used < sizeof list; i++) {
            used +=
                (size_t)snprintf(list + used, sizeof list - used, "%s%" PRIu64,
                                 i > 0 ? "," : "", d.members[i].id);
        }
        r->desc = d;
        rq_log(RQ_INFO,
               "%s: members now %s (configuration of index %" PRIu64 ")",
               r->label, list, index);
    }
    r->conf_followed = index;
}

static int change_status_from_raft(int status)
{
    switch (status) {
        case 0:
            return 0;
        case RAFT_NOTLEADER:
        case RAFT_LEADERSHIPLOST:
            return RQ_NOTLEADER;
        case RAFT_NOCONNECTION:
            return RQ_CONNECT;
        case RAFT_SHUTDOWN:
        case RAFT_CANCELED:
            return RQ_SHUTDOWN;
        default:
            return RQ_RAFT;
    }
}

/* Maps an error returned at once by raft_add/assign/remove. */
static int change_error_from_raft(struct replica *r, int rv, char *why,
                                  size_t whyn)
{
    switch (rv) {
        case RAFT_NOTLEADER:
            return RQ_NOTLEADER;
        case RAFT_CANTCHANGE:
            return RQ_EXISTS;
        case RAFT_DUPLICATEID:
        case RAFT_DUPLICATEADDRESS:
            snprintf(why, whyn, "%s", raft_errmsg(rq_node_raft(r->node)));
            return RQ_INVALID;
        default:
            snprintf(why, whyn, "%s", raft_strerror(rv));
            return RQ_RAFT;
    }
}

/* Ends the change under way: its caller, if still waiting, gets @status. */
static void change_end(struct replica *r, int status)
{
    replica_change_cb cb = r->change_cb;
    void *data = r->change_data;
    r->change_step = CHANGE_NONE;
    r->change_cb = NULL;
    r->change_data = NULL;
    uv_timer_stop(&r->change_deadline);
    uv_timer_stop(&r->change_next);
    if (r->state == REPLICA_OPEN &&
        !uv_is_active((uv_handle_t *)&r->wake_timer)) {
        /* Follow the new configuration from the loop, outside raft. */
        uv_timer_start(&r->wake_timer, on_wake, 0, 0);
    }
    if (cb != NULL) {
        cb(data, status);
    }
}

static void on_change_deadline(uv_timer_t *t)
{
    struct replica *r = t->data;
    replica_change_cb cb = r->change_cb;
    void *data = r->change_data;
    r->change_cb = NULL;
    r->change_data = NULL;
    rq_log(RQ_INFO,
           "%s: the membership change of broker %" PRIu64
           " is not committed yet; it goes on",
           r->label, r->change_id);
    if (cb != NULL) {
        cb(data, RQ_TIMEOUT);
    }
}

static void on_raft_change(struct raft_change *req, int status);

/* Promotes the member added by the step before, from the loop. */
static void on_change_next(uv_timer_t *t)
{
    struct replica *r = t->data;
    char why[128];
    if (r->state != REPLICA_OPEN || r->change_step != CHANGE_PROMOTE) {
        return; /* UNTESTED: a close stops this timer first. */
    }
    if (!replica_ready_leader(r)) {
        change_end(r, RQ_NOTLEADER);
        return;
    }
    memset(&r->change, 0, sizeof r->change);
    r->change.data = r;
    rq_node_wake(r->node);
    int rv = raft_assign(rq_node_raft(r->node), &r->change, r->change_id,
                         RAFT_VOTER, on_raft_change);
    if (rv != 0) {
        rv = change_error_from_raft(r, rv, why, sizeof why);
        rq_log(RQ_WARN, "%s: promoting broker %" PRIu64 ": %s", r->label,
               r->change_id, rq_strerror(rv));
        change_end(r, rv);
        return;
    }
}

static void on_raft_change(struct raft_change *req, int status)
{
    struct replica *r = req->data;
    if (r->state == REPLICA_CLOSING) {
        change_end(r, RQ_SHUTDOWN);
        return;
    }
    if (status != 0) {
        rq_log(RQ_WARN, "%s: membership change of broker %" PRIu64 ": %s",
               r->label, r->change_id, raft_strerror(status));
        change_end(r, change_status_from_raft(status));
        return;
    }
    switch (r->change_step) {
        case CHANGE_ADD:
            rq_log(RQ_INFO,
                   "%s: broker %" PRIu64
                   " added as a non-voter; promoting it once it has caught up",
                   r->label, r->change_id);
            r->change_step = CHANGE_PROMOTE;
            /* Not from inside libraft's apply loop. */
            uv_timer_start(&r->change_next, on_change_next, 0, 0);
            return;
        case CHANGE_PROMOTE:
            rq_log(RQ_INFO, "%s: broker %" PRIu64 " is a voter", r->label,
                   r->change_id);
            break;
        default:
            rq_log(RQ_INFO, "%s: broker %" PRIu64 " removed from the group",
                   r->label, r->change_id);
            break;
    }
    change_end(r, 0);
}

/* Checks shared by both changes; 0 if one may start. */
static int change_can_start(struct replica *r)
{
    if (!replica_ready_leader(r)) {
        return RQ_NOTLEADER;
    }
    if (r->change_step != CHANGE_NONE || r->transfer_inflight ||
        conf_pending(r)) {
        return RQ_EXISTS;
    }
    return 0;
}

static void change_started(struct replica *r, enum change_step step,
                           uint64_t id, unsigned timeout_ms,
                           replica_change_cb cb, void *data)
{
    r->change_step = step;
    r->change_id = id;
    r->change_cb = cb;
    r->change_data = data;
    uv_timer_start(&r->change_deadline, on_change_deadline, timeout_ms, 0);
}

/* What every membership change starts from: clears *@done, checks that a
 * change may start now (change_can_start) and gives the group's latest
 * configuration in *@c (borrowed). */
static int change_prepare(struct replica *r, bool *done,
                          const struct raft_configuration **c)
{
    *done = false;
    int rv = change_can_start(r);
    if (rv != 0) {
        return rv;
    }
    *c = rq_node_configuration(r->node, NULL, NULL);
    return 0;
}

int replica_member_add(struct replica *r, const struct replica_member *m,
                       unsigned timeout_ms, replica_change_cb cb, void *data,
                       bool *done, char *why, size_t whyn)
{
    const struct raft_configuration *c;
    int rv = change_prepare(r, done, &c);
    if (rv != 0) {
        return rv;
    }
    struct raft *raft = rq_node_raft(r->node);
    const struct raft_server *s = conf_get(c, m->id);
    enum change_step step = CHANGE_ADD;
    if (s != NULL) {
        if (strcmp(s->address, m->raft_addr) != 0) {
            snprintf(why, whyn, "broker %" PRIu64 " is a member at %s, not %s",
                     m->id, s->address, m->raft_addr);
            return RQ_INVALID;
        }
        remember_known(r, m);
        if (s->role == RAFT_VOTER) {
            *done = true;
            return 0;
        }
        step = CHANGE_PROMOTE;
    } else if (c->n >= REPLICA_MEMBERS_MAX) {
        snprintf(why, whyn, "the group has %u members, the most it may have",
                 c->n);
        return RQ_INVALID;
    }
    memset(&r->change, 0, sizeof r->change);
    r->change.data = r;
    rq_node_wake(r->node);
    if (step == CHANGE_ADD) {
        rv = raft_add(raft, &r->change, m->id, m->raft_addr, on_raft_change);
    } else {
        rv = raft_assign(raft, &r->change, m->id, RAFT_VOTER, on_raft_change);
    }
    if (rv != 0) {
        return change_error_from_raft(r, rv, why, whyn);
    }
    remember_known(r, m);
    change_started(r, step, m->id, timeout_ms, cb, data);
    rq_log(RQ_INFO, "%s: %s broker %" PRIu64 " (%s)", r->label,
           step == CHANGE_ADD ? "adding" : "promoting", m->id, m->raft_addr);
    return 0;
}

int replica_member_remove(struct replica *r, uint64_t id, unsigned timeout_ms,
                          replica_change_cb cb, void *data, bool *done,
                          char *why, size_t whyn)
{
    const struct raft_configuration *c;
    int rv = change_prepare(r, done, &c);
    if (rv != 0) {
        return rv;
    }
    struct raft *raft = rq_node_raft(r->node);
    if (conf_get(c, id) == NULL) {
        *done = true;
        return 0;
    }
    unsigned left = 0;
    for (unsigned i = 0; i < c->n; i++) {
        left += c->servers[i].role == RAFT_VOTER && c->servers[i].id != id;
    }
    if (left < 2) {
        snprintf(why, whyn,
                 "removing broker %" PRIu64
                 " would leave %u voter%s; a group keeps at least 2",
                 id, left, left == 1 ? "" : "s");
        return RQ_INVALID;
    }
    memset(&r->change, 0, sizeof r->change);
    r->change.data = r;
    rq_node_wake(r->node);
    rv = raft_remove(raft, &r->change, id, on_raft_change);
    if (rv != 0) {
        return change_error_from_raft(r, rv, why, whyn);
    }
    change_started(r, CHANGE_REMOVE, id, timeout_ms, cb, data);
    rq_log(RQ_INFO, "%s: removing broker %" PRIu64, r->label, id);
    return 0;
}

void replica_member_forget(struct replica *r)
{
    r->change_cb = NULL;
    r->change_data = NULL;
}

int replica_serve_members(struct replica *r, struct rq_buf *out)
{
    if (r->state != REPLICA_OPEN) {
        return RQ_NOTFOUND;
    }
    const struct raft_configuration *c = committed_conf(r);
    if (c == NULL) {
        /* Nothing committed to tell, or a newer one under way. */
        return rq_node_configuration(r->node, NULL, NULL)->n == 0 ? RQ_NOTFOUND
                                                                  : RQ_NOQUORUM;
    }
    json_t *servers = json_array();
    for (unsigned i = 0; i < c->n; i++) {
        const struct raft_server *s = &c->servers[i];
        const char *http = http_of(r, s->id, s->address);
        json_array_append_new(
            servers, json_pack("{s:I,s:s,s:o,s:b}", "id", (json_int_t)s->id,
                               "raft_addr", s->address, "http_addr",
                               http != NULL ? json_string(http) : json_null(),
                               "voter", s->role == RAFT_VOTER));
    }
    uint64_t index;
    rq_node_configuration(r->node, &index, NULL);
    json_t *o = json_pack("{s:I,s:o}", "conf_index", (json_int_t)index,
                          "servers", servers);
    char *text = o != NULL ? json_dumps(o, JSON_COMPACT) : NULL;
    json_decref(o);
    if (text == NULL) {
        return RQ_NOMEM; /* UNTESTED: ENOMEM only. */
    }
    rq_buf_put_bytes(out, text, strlen(text));
    free(text);
    return out->err;
}

/* brpc_members_parse's callback: a member the peer knows. */
static void member_learned(void *data, const struct replica_member *m)
{
    remember_known(data, m);
}

/* Reads a peer's MEMBERS reply: HTTP addresses, and whether a newer
 * committed configuration leaves this broker out. */
static void members_learn(struct replica *r, const char *peer,
                          const uint8_t *body, size_t len)
{
    struct brpc_members reply;
    if (brpc_members_parse(body, len, r->env->self_id, &reply, member_learned,
                           r) != 0) {
        rq_log(RQ_WARN, "%s: a malformed MEMBERS reply from %s", r->label,
               peer);
        return;
    }
    uint64_t index = reply.conf_index;
    uint64_t own;
    const struct raft_configuration *conf =
        rq_node_configuration(r->node, &own, NULL);
    if (!reply.lists_self && !r->removed && index > own &&
        conf_get(conf, r->env->self_id) != NULL) {
        rq_log(RQ_INFO,
               "%s: removed from the group: the configuration of index "
               "%" PRIu64 " at %s leaves broker %" PRIu64 " out",
               r->label, index, peer, r->env->self_id);
        r->removed = true;
        r->removed_conf = index;
    }
    members_follow(r);
}

static void on_members_reply(void *data, int status, const uint8_t *body,
                             size_t len)
{
    struct members_query *q = data;
    struct replica *r = q->replica;
    if (r == NULL) {
        free(q); /* The replica closed meanwhile. */
        return;
    }
    r->query = NULL;
    if (status != 0) {
        rq_log(RQ_DEBUG, "%s: MEMBERS at %s: %s", r->label, q->peer,
               rq_strerror(status));
        r->query_turn++;
    } else {
        members_learn(r, q->peer, body, len);
        if (r->members_missing || r->leaderless_since != 0) {
            /* The peer did not know either: ask the next one next time.
             * Two followers that both missed a new leader's address once
             * asked each other, and only each other, for good. */
            r->query_turn++;
        }
    }
    free(q);
}

/* The raft address of the next peer to ask: the leader first, then every
 * other server of the configuration and of the descriptor in turn. */
static const char *query_peer(struct replica *r)
{
    const char *cand[QUERY_PEERS_MAX];
    size_t n = 0;
    const struct raft_configuration *c =
        rq_node_configuration(r->node, NULL, NULL);
    const struct replica_member *leader = replica_leader(r);
    if (leader != NULL) {
        cand[n++] = leader->raft_addr;
    }
    for (unsigned i = 0; i < c->n && n < QUERY_PEERS_MAX; i++) {
        if (c->servers[i].id != r->env->self_id) {
            cand[n++] = c->servers[i].address;
        }
    }
    for (size_t i = 0; i < r->desc.n_members && n < QUERY_PEERS_MAX; i++) {
        const struct replica_member *m = &r->desc.members[i];
        if (m->id != r->env->self_id && conf_get(c, m->id) == NULL) {
            cand[n++] = m->raft_addr;
        }
    }
    return n == 0 ? NULL : cand[r->query_turn % n];
}

/* Asks a peer for its configuration when this replica misses an HTTP
 * address, or has had no leader for two election timeouts while its own
 * configuration still names it. */
static void members_query(struct replica *r)
{
    uint8_t body[REPLICA_MEMBERS_REQUEST];
    if (r->state != REPLICA_OPEN || r->query != NULL) {
        return;
    }
    uint64_t now = uv_now(r->env->loop);
    bool orphaned =
        !r->removed && r->leaderless_since != 0 &&
        now - r->leaderless_since > 2 * (uint64_t)r->env->election_timeout_ms &&
        conf_get(rq_node_configuration(r->node, NULL, NULL), r->env->self_id) !=
            NULL;
    if ((!r->members_missing && !orphaned) || now < r->query_next) {
        return;
    }
    const char *peer = query_peer(r);
    if (peer == NULL) {
        return; /* UNTESTED: a group of one asks nobody. */
    }
    struct members_query *q = calloc(1, sizeof *q);
    if (q == NULL) {
        return; /* UNTESTED: ENOMEM only. */
    }
    q->replica = r;
    snprintf(q->peer, sizeof q->peer, "%s", peer);
    brpc_members_encode(r->desc.group_id, body);
    r->query_next = now + MEMBERS_QUERY_MS;
    if (rq_rpc_call(r->env->rpc, q->peer, REPLICA_RPC_MEMBERS, body,
                    sizeof body, MEMBERS_TIMEOUT_MS, on_members_reply,
                    q) != 0) {
        free(q);
        r->query_turn++;
        return;
    }
    r->query = q;
}

/* ---- Maintenance ---- */

static void members_query(struct replica *r);

void replica_tick(struct replica *r, bool balance)
{
    if (r->state != REPLICA_OPEN) {
        return;
    }
    fetch_maybe(r);
    members_follow(r);
    members_query(r);
    uint64_t now = uv_now(r->env->loop);
    uint64_t preferred = replica_preferred(r);
    uint64_t voters[REPLICA_MEMBERS_MAX];
    size_t n = replica_voters(r, voters, REPLICA_MEMBERS_MAX);
    bool votes = false;
    for (size_t i = 0; i < n; i++) {
        votes = votes || voters[i] == preferred;
    }
    if (!balance || !votes || preferred == r->env->self_id ||
        !replica_ready_leader(r) || r->transfer_inflight ||
        now < r->transfer_next || now < r->transfer_ended + TRANSFER_GAP_MS ||
        r->change_step != CHANGE_NONE || conf_pending(r)) {
        return;
    }
    transfer_start(r, preferred, true, NULL, NULL);
}

void replica_retain(struct replica *r, uint64_t max_bytes, uint64_t max_age_ms,
                    uint64_t now_ms)
{
    unsigned deleted = 0;
    if (r->state != REPLICA_OPEN) {
        return;
    }
    int rv =
        partition_retain(r->partition, max_bytes, max_age_ms, now_ms, &deleted);
    if (rv != 0) {
        rq_log(RQ_WARN, "%s: retention: %s", r->label, rq_strerror(rv));
    } else if (deleted > 0) {
        rq_log(RQ_INFO,
               "%s: retention deleted %u segments, first offset now %" PRIu64,
               r->label, deleted, partition_first_offset(r->partition));
    }
}

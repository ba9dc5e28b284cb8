/*
 * The broker: hosts partition replicas, each a member of its partition's
 * Raft group, and serves their data over HTTP (broker/README.md).
 *
 * One libuv loop runs everything. rq_mux listens on --raft-addr and carries
 * every replica's Raft group and the broker-to-broker RPCs (a replica
 * catching up fetches batches from a peer); rq_http serves --http-addr.
 * The broker owns the registry of replicas (replica.c owns each one) and
 * the process-wide timers:
 *
 * - Opening. Replicas found in DATA/replicas at start are opened one per
 *   loop iteration from an idle handle, because opening one blocks the loop
 *   (about 4 ms with libraft 0.22.1, DESIGN.md section 3.4) and the replicas
 *   already open must keep their heartbeats going. /readyz answers 503 until
 *   all are open.
 * - A one-second tick lets each replica continue a catch-up and, every few
 *   seconds, hand leadership to its preferred member; another timer applies
 *   the retention limits (every 30 s by default).
 * - Raft log memory. --raft-memory-bytes is shared among the replicas
 *   hosted (logbudget.h): each replica's snapshot counts are sized from
 *   its share, which moves as replicas come and go; libraft checks them at
 *   every tick, so an idle replica whose share shrank snapshots by itself.
 * - With --managers, the registrar (registrar.h) registers the broker with
 *   the manager cluster and heartbeats every second with a summary of its
 *   replicas.
 *
 * Shutdown (SIGTERM, SIGINT, SIGHUP): heartbeats stop, every replica closes
 * (their pending requests are answered 503), then the HTTP server, the RPC
 * layer and the mux, in that order: rq_http_close answers whatever is still
 * suspended, and nothing of ours may be holding a request by then. The process
 * exits 0. A start-up failure (port in use, data directory locked) exits 1 with
 * a message on standard error.
 */
#include "broker.h"

#include <assert.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <inttypes.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <sys/statvfs.h>
#include <time.h>
#include <unistd.h>
#include <uv.h>

#include "api.h"
#include "bmetrics.h"
#include "brpc.h"
#include "disk.h"
#include "logbudget.h"
#include "peerwatch.h"
#include "registrar.h"
#include "replica.h"
#include "rq_aio.h"
#include "rq_config.h"
#include "rq_err.h"
#include "rq_http.h"
#include "rq_httpsig.h"
#include "rq_keys.h"
#include "rq_log.h"
#include "rq_main.h"
#include "rq_metrics.h"
#include "rq_node.h"
#include "rq_mux.h"
#include "rq_quiet.h"
#include "rq_rpc.h"
#include "rq_tls.h"
#include "rq_uid.h"
#include "rq_wire.h"

#define LOG_TAG "broker"

#define TICK_MS 1000
#define BALANCE_TICKS 3     /* Leadership balance every 3 s. */
#define REOPEN_GAP_MS 10000 /* Between reopens of one stopped group. */
#define PATH_LEN 4096
/* A follower replica within this many entries of its leader's commit
 * index counts as caught up (readiness). */
#define READY_LAG 64
#define COMMITS_TIMEOUT_MS 2000

static const struct rq_opt options[] = {
    {"id", "RAFTQ_ID", RQ_OPT_U64, NULL, true,
     offsetof(struct broker_config, id),
     "this broker's id (1 or more), unique in the cluster"},
    {"raft-addr", "RAFTQ_RAFT_ADDR", RQ_OPT_STR, NULL, true,
     offsetof(struct broker_config, raft_addr),
     "HOST:PORT for Raft and broker RPCs (peers know us by it)"},
    {"raft-bind", "RAFTQ_RAFT_BIND", RQ_OPT_STR, "", false,
     offsetof(struct broker_config, raft_bind),
     "HOST:PORT to listen on for Raft when it differs from --raft-addr "
     "(e.g. 0.0.0.0:7100 on a pod)"},
    {"http-addr", "RAFTQ_HTTP_ADDR", RQ_OPT_STR, NULL, true,
     offsetof(struct broker_config, http_addr), "HOST:PORT for the HTTP API"},
    {"http-bind", "RAFTQ_HTTP_BIND", RQ_OPT_STR, "", false,
     offsetof(struct broker_config, http_bind),
     "HOST:PORT to listen on for HTTP when it differs from --http-addr, "
     "which is where managers reach this broker (e.g. 0.0.0.0:8180)"},
    {"data", "RAFTQ_DATA", RQ_OPT_STR, NULL, true,
     offsetof(struct broker_config, data),
     "data directory (replicas, their Raft logs and partition logs)"},
    {"cluster-secret", "RAFTQ_CLUSTER_SECRET", RQ_OPT_SECRET, NULL, false,
     offsetof(struct broker_config, secret),
     "the cluster's shared secret, 32 bytes or more of random data, the same "
     "on every manager and broker (required)"},
    {"cluster-id", "RAFTQ_CLUSTER_ID", RQ_OPT_U64, "1", false,
     offsetof(struct broker_config, cluster_id),
     "cluster id; peers must match"},
    {"managers", "RAFTQ_MANAGERS", RQ_OPT_STR, "", false,
     offsetof(struct broker_config, managers),
     "manager URLs, comma-separated: register and heartbeat there"},
    {"election-timeout-ms", "RAFTQ_ELECTION_TIMEOUT_MS", RQ_OPT_U64, "2500",
     false, offsetof(struct broker_config, election_ms),
     "Raft election timeout"},
    {"heartbeat-ms", "RAFTQ_HEARTBEAT_MS", RQ_OPT_U64, "250", false,
     offsetof(struct broker_config, heartbeat_ms), "Raft heartbeat interval"},
    {"merge-produces", "RAFTQ_MERGE_PRODUCES", RQ_OPT_BOOL, "true", false,
     offsetof(struct broker_config, merge_produces),
     "produces to a partition that arrive while others are in flight wait "
     "and are proposed together once those have applied"},
    {"raft-quiet-ms", "RAFTQ_RAFT_QUIET_MS", RQ_OPT_U64, "5000", false,
     offsetof(struct broker_config, quiet_ms),
     "a replica group with no new entry for this long goes quiet: it "
     "heartbeats and times out at the quiet timing below (0: never)"},
    {"raft-quiet-heartbeat-ms", "RAFTQ_RAFT_QUIET_HEARTBEAT_MS", RQ_OPT_U64,
     "1000", false, offsetof(struct broker_config, quiet_heartbeat_ms),
     "Raft heartbeat interval of a quiet group (at least --heartbeat-ms)"},
    {"raft-quiet-election-timeout-ms", "RAFTQ_RAFT_QUIET_ELECTION_TIMEOUT_MS",
     RQ_OPT_U64, "5000", false,
     offsetof(struct broker_config, quiet_election_ms),
     "Raft election timeout of a quiet group, so how soon an idle "
     "partition fails over (at least --election-timeout-ms and three quiet "
     "heartbeats)"},
    {"snapshot-threshold", "RAFTQ_SNAPSHOT_THRESHOLD", RQ_OPT_U64, "4096",
     false, offsetof(struct broker_config, snapshot_threshold),
     "Raft entries between partition snapshots (manifests), at most"},
    {"raft-memory-bytes", "RAFTQ_RAFT_MEMORY_BYTES", RQ_OPT_U64, "536870912",
     false, offsetof(struct broker_config, raft_memory_bytes),
     "Raft log bytes all replicas may hold in memory together, shared "
     "among them, at least 1 MiB each (0: each replica its own limits)"},
    {"raft-log-memory-bytes", "RAFTQ_RAFT_LOG_MEMORY_BYTES", RQ_OPT_U64,
     "33554432", false, offsetof(struct broker_config, raft_log_memory_bytes),
     "snapshot a replica once about this many bytes of Raft entries are "
     "held since its last snapshot (0: by --snapshot-threshold only)"},
    {"raft-log-trailing-bytes", "RAFTQ_RAFT_LOG_TRAILING_BYTES", RQ_OPT_U64,
     "4194304", false, offsetof(struct broker_config, raft_log_trailing_bytes),
     "about this many bytes of Raft entries stay behind a snapshot"},
    {"raft-segment-size", "RAFTQ_RAFT_SEGMENT_SIZE", RQ_OPT_U64, "262144",
     false, offsetof(struct broker_config, raft_segment_size),
     "Raft log segment bytes (three are preallocated per replica)"},
    {"segment-bytes", "RAFTQ_SEGMENT_BYTES", RQ_OPT_U64, "67108864", false,
     offsetof(struct broker_config, segment_bytes),
     "partition log segment bytes"},
    {"retention-bytes", "RAFTQ_RETENTION_BYTES", RQ_OPT_U64, "1073741824",
     false, offsetof(struct broker_config, retention_bytes),
     "keep at most this many bytes per partition (0: no limit)"},
    {"retention-ms", "RAFTQ_RETENTION_MS", RQ_OPT_U64, "604800000", false,
     offsetof(struct broker_config, retention_ms),
     "delete segments older than this (0: no limit)"},
    {"shutdown-grace-ms", "RAFTQ_SHUTDOWN_GRACE_MS", RQ_OPT_U64, "5000", false,
     offsetof(struct broker_config, shutdown_grace_ms),
     "on SIGTERM, how long to hand the groups this broker leads over to "
     "other members before closing (0: close at once); a second signal "
     "closes at once"},
    {"disk-reserve-bytes", "RAFTQ_DISK_RESERVE_BYTES", RQ_OPT_U64, "0", false,
     offsetof(struct broker_config, disk_reserve_bytes),
     "free space kept on the data volume: below it produces are refused "
     "(507) until retention or a larger volume frees space (0: 5% of the "
     "volume, 64 MiB to 1 GiB)"},
    {"retention-check-ms", "RAFTQ_RETENTION_CHECK_MS", RQ_OPT_U64, "30000",
     false, offsetof(struct broker_config, retention_check_ms),
     "how often the retention limits are applied"},
    {"max-message-bytes", "RAFTQ_MAX_MESSAGE_BYTES", RQ_OPT_U64, "1048576",
     false, offsetof(struct broker_config, max_message_bytes),
     "largest record value accepted"},
    RQ_HTTP_OPTIONS(struct broker_config),
    RQ_LOG_OPTIONS(struct broker_config),
    RQ_HTTPSIG_OPTIONS(struct broker_config),
    RQ_TLS_OPTIONS(struct broker_config),
};

/* A hosted replica. The group id outlives the replica's memory, so the
 * close callback can find its slot. */
struct slot {
    uint64_t group_id;
    struct replica *replica;
    bool from_start;       /* Found in the data directory at start. */
    uint64_t reopen_after; /* uv_now() before which no reopen starts. */
    bool reopening;        /* Its group stopped; set until it opens again. */
    /* Its leader's commit index when last asked (REPLICA_RPC_COMMITS),
     * for readiness; known once an answer came (0: cannot tell). */
    uint64_t leader_commit;
    bool leader_commit_known;
};

/* A replica whose Raft group stopped, closed to be opened again. */
struct reopen {
    struct broker *broker;
    struct replica_desc desc;
};

/* A replica being removed on request. */
struct removal {
    struct broker *broker;
    void (*cb)(void *data, int status);
    void *data;
};

struct broker {
    struct broker_config cfg;
    struct replica_env env;
    uv_loop_t *loop;
    struct rq_mux *mux;
    struct rq_rpc *rpc;
    struct rq_http *http;
    /* The keys derived from --cluster-secret, and the verifier of signed
     * requests (every route but health, readiness and metrics). */
    struct rq_keys keys;
    struct rq_httpsig *httpsig;
    struct rq_tls *tls;          /* NULL without --tls-*. */
    struct registrar *registrar; /* NULL without --managers. */
    struct rq_metrics *metrics;
    struct bmetrics bm;

    struct slot *slots;
    size_t n_slots;
    size_t cap_slots;

    uv_idle_t opener; /* Opens replicas found at start, one per turn. */
    size_t to_open;   /* Of those, still NEW. */
    size_t found;     /* How many were found. */
    uv_timer_t tick;
    uint64_t ticks;
    uv_timer_t retention;
    /* The peer watch (peerwatch.h): a ping to each peer broker every
     * heartbeat; the groups a silent one led stand for election. */
    struct peerwatch peers;
    uv_timer_t ping;

    /* The cluster uid this broker is bound to (rq_uid.h), 0 before its
     * first registration; kept in DATA/cluster_uid. */
    uint64_t cluster_uid;
    struct disk_state disk;   /* The data volume, read every tick. */
    unsigned commits_pending; /* REPLICA_RPC_COMMITS calls out. */
    /* SIGTERM: leaderships being handed over before closing. */
    bool leaving;
    unsigned handovers; /* Transfers not ended yet. */
    uv_timer_t grace;

    bool closing;
    bool http_closing;
};

static void shutdown_continue(struct broker *b);
static void budget_share(struct broker *b);
static void retain(struct broker *b);
static struct slot *slot_find(struct broker *b, uint64_t gid);

/* ---- Registry ---- */

const struct broker_config *broker_config(const struct broker *b)
{
    return &b->cfg;
}

struct rq_metrics *broker_metrics(struct broker *b)
{
    return b->metrics;
}

bool broker_closing(const struct broker *b)
{
    return b->closing;
}

/* Whether @s's replica has caught up with its group's leader: it leads,
 * or it follows a known leader whose commit index, as last asked, it is
 * within READY_LAG entries of; false with why not. */
static bool caught_up(const struct slot *s, char *why, size_t whyn)
{
    struct replica_status st;
    replica_status(s->replica, &st);
    if (st.node.role == RQ_ROLE_LEADER) {
        return true;
    }
    if (st.node.leader_id == 0) {
        snprintf(why, whyn, "the replica of group %" PRIu64 " knows no leader",
                 s->group_id);
        return false;
    }
    if (!s->leader_commit_known) {
        snprintf(why, whyn,
                 "the replica of group %" PRIu64
                 " has not heard its leader's commit index yet",
                 s->group_id);
        return false;
    }
    if (st.node.commit + READY_LAG < s->leader_commit) {
        snprintf(why, whyn,
                 "the replica of group %" PRIu64 " is %" PRIu64
                 " entries behind its leader",
                 s->group_id, s->leader_commit - st.node.commit);
        return false;
    }
    return true;
}

bool broker_ready(const struct broker *b, char *why, size_t whyn)
{
    if (b->registrar != NULL && !registrar_ready(b->registrar, why, whyn)) {
        return false;
    }
    if (b->to_open > 0) {
        snprintf(why, whyn, "%zu of %zu replicas are still opening", b->to_open,
                 b->found);
        return false;
    }
    for (size_t i = 0; i < b->n_slots; i++) {
        if (replica_state(b->slots[i].replica) == REPLICA_FAILED) {
            snprintf(why, whyn,
                     "the replica of group %" PRIu64
                     " failed to open; see the log",
                     b->slots[i].group_id);
            return false;
        }
    }
    for (size_t i = 0; i < b->n_slots; i++) {
        if (replica_state(b->slots[i].replica) == REPLICA_OPEN &&
            !caught_up(&b->slots[i], why, whyn)) {
            return false;
        }
    }
    return true;
}

/* ---- Readiness: how far behind their leaders the replicas are ---- */

struct commits_ask {
    struct broker *b;
    uint32_t n;
    uint64_t gids[];
};

static void on_commits(void *data, int status, const uint8_t *body, size_t len)
{
    struct commits_ask *a = data;
    struct broker *b = a->b;
    /* Room for what the body can hold (the decoder checks its count). */
    size_t room = len >= 4 ? (len - 4) / 16 : 0;
    struct brpc_commit *c =
        room <= BRPC_COMMITS_MAX ? calloc(room + 1, sizeof *c) : NULL;
    uint32_t n = 0;
    b->commits_pending--;
    if (c != NULL && status == 0 &&
        brpc_commits_reply_decode(body, len, c, &n) == 0) {
        for (uint32_t i = 0; i < n; i++) {
            struct slot *s = slot_find(b, c[i].group_id);
            if (s != NULL && c[i].commit != 0) {
                s->leader_commit = c[i].commit;
                s->leader_commit_known = true;
            }
        }
    } else if (status == RQ_INVALID || status == RQ_MALFORMED) {
        /* A broker of an earlier release: nothing to compare with. */
        for (uint32_t i = 0; i < a->n; i++) {
            struct slot *s = slot_find(b, a->gids[i]);
            if (s != NULL) {
                s->leader_commit = 0;
                s->leader_commit_known = true;
            }
        }
    }
    free(c);
    free(a);
}

/* Asks each leader broker of this broker's follower replicas their
 * groups' commit index, one call per leader, a round at a time. */
static void commits_ask(struct broker *b)
{
    if (b->commits_pending > 0 || b->n_slots == 0) {
        return;
    }
    bool *asked = calloc(b->n_slots, sizeof *asked);
    if (asked == NULL) {
        return; /* UNTESTED: ENOMEM only. */
    }
    for (size_t i = 0; i < b->n_slots; i++) {
        struct replica_status st;
        if (asked[i] || replica_state(b->slots[i].replica) != REPLICA_OPEN) {
            continue;
        }
        replica_status(b->slots[i].replica, &st);
        uint64_t leader = st.node.leader_id;
        const char *addr = NULL;
        const struct replica_desc *d = replica_desc(b->slots[i].replica);
        for (size_t k = 0; k < d->n_members; k++) {
            addr = d->members[k].id == leader ? d->members[k].raft_addr : addr;
        }
        if (leader == 0 || leader == b->cfg.id || addr == NULL) {
            continue;
        }
        struct commits_ask *a =
            malloc(sizeof *a + b->n_slots * sizeof a->gids[0]);
        if (a == NULL) {
            break; /* UNTESTED: ENOMEM only. */
        }
        a->b = b;
        a->n = 0;
        /* Every follower replica of the same leader, in one call. */
        for (size_t j = i; j < b->n_slots && a->n < BRPC_COMMITS_MAX; j++) {
            struct replica_status sj;
            if (asked[j] ||
                replica_state(b->slots[j].replica) != REPLICA_OPEN) {
                continue;
            }
            replica_status(b->slots[j].replica, &sj);
            if (sj.node.leader_id == leader && sj.node.role != RQ_ROLE_LEADER) {
                asked[j] = true;
                a->gids[a->n++] = b->slots[j].group_id;
            }
        }
        size_t len = brpc_commits_request_size(a->n);
        uint8_t *body = malloc(len);
        if (body == NULL) {
            free(a); /* UNTESTED: ENOMEM only. */
            break;
        }
        brpc_commits_request_encode(a->gids, a->n, body);
        if (rq_rpc_call(b->rpc, addr, REPLICA_RPC_COMMITS, body, len,
                        COMMITS_TIMEOUT_MS, on_commits, a) == 0) {
            b->commits_pending++;
        } else {
            free(a);
        }
        free(body);
    }
    free(asked);
}

/* REPLICA_RPC_COMMITS: the commit index of each group named that this
 * broker leads (0 for the others). */
static void serve_commits(struct broker *b, struct rq_rpc_call *call,
                          const uint8_t *body, size_t len)
{
    /* Room for what the body can hold (the decoder checks its count). */
    size_t room = len >= 4 ? (len - 4) / 8 : 0;
    room = room <= BRPC_COMMITS_MAX ? room : 0;
    uint64_t *gids = calloc(room + 1, sizeof *gids);
    struct brpc_commit *c = calloc(room + 1, sizeof *c);
    uint8_t *out = NULL;
    uint32_t n = 0;
    if (gids == NULL || c == NULL) {
        rq_rpc_reply(call, RQ_NOMEM, NULL, 0); /* UNTESTED: ENOMEM only. */
    } else if (brpc_commits_request_decode(body, len, gids, &n) != 0) {
        rq_rpc_reply(call, RQ_MALFORMED, NULL, 0);
    } else {
        for (uint32_t i = 0; i < n; i++) {
            struct replica *r = broker_find(b, gids[i]);
            struct replica_status st;
            c[i].group_id = gids[i];
            c[i].commit = 0;
            if (r != NULL && replica_ready_leader(r)) {
                replica_status(r, &st);
                c[i].commit = st.node.commit;
            }
        }
        size_t olen = brpc_commits_reply_size(n);
        out = malloc(olen);
        if (out == NULL) {
            rq_rpc_reply(call, RQ_NOMEM, NULL, 0); /* UNTESTED */
        } else {
            brpc_commits_reply_encode(c, n, out);
            rq_rpc_reply(call, 0, out, olen);
        }
    }
    free(out);
    free(c);
    free(gids);
}

static struct slot *slot_find(struct broker *b, uint64_t gid)
{
    for (size_t i = 0; i < b->n_slots; i++) {
        if (b->slots[i].group_id == gid) {
            return &b->slots[i];
        }
    }
    return NULL;
}

struct replica *broker_find(struct broker *b, uint64_t group_id)
{
    struct slot *s = slot_find(b, group_id);
    return s != NULL ? s->replica : NULL;
}

struct replica *broker_find_partition(struct broker *b, const char *topic,
                                      uint64_t partition_id)
{
    for (size_t i = 0; i < b->n_slots; i++) {
        const struct replica_desc *d = replica_desc(b->slots[i].replica);
        if (d->partition_id == partition_id && strcmp(d->topic, topic) == 0) {
            return b->slots[i].replica;
        }
    }
    return NULL;
}

size_t broker_count(const struct broker *b)
{
    return b->n_slots;
}

struct replica *broker_at(struct broker *b, size_t i)
{
    assert(i < b->n_slots);
    return b->slots[i].replica;
}

static int slot_add(struct broker *b, struct replica *r, bool from_start)
{
    if (b->n_slots == b->cap_slots) {
        size_t cap = b->cap_slots == 0 ? 16 : b->cap_slots * 2;
        struct slot *s = realloc(b->slots, cap * sizeof *s);
        if (s == NULL) {
            return RQ_NOMEM; /* UNTESTED: ENOMEM only. */
        }
        b->slots = s;
        b->cap_slots = cap;
    }
    b->slots[b->n_slots++] = (struct slot){
        .group_id = replica_desc(r)->group_id,
        .replica = r,
        .from_start = from_start,
    };
    budget_share(b);
    return 0;
}

static void slot_remove(struct broker *b, uint64_t gid)
{
    for (size_t i = 0; i < b->n_slots; i++) {
        if (b->slots[i].group_id == gid) {
            memmove(&b->slots[i], &b->slots[i + 1],
                    (b->n_slots - i - 1) * sizeof b->slots[0]);
            b->n_slots--;
            budget_share(b);
            return;
        }
    }
}

static int rm_entry(const char *path, const struct stat *st, int flag,
                    struct FTW *ftw)
{
    (void)st;
    (void)ftw;
    return flag == FTW_DP ? rmdir(path) : unlink(path);
}

/* A replica closed at shutdown, or after it failed to be created. */
static void on_replica_closed(void *data, uint64_t gid, int status)
{
    struct broker *b = data;
    (void)status;
    slot_remove(b, gid);
    shutdown_continue(b);
}

/* Whether this broker may host @d: not closing, among its members at its
 * own address. RQ_SHUTDOWN or RQ_INVALID with @why. */
static int check_desc(const struct broker *b, const struct replica_desc *d,
                      char *why, size_t whyn)
{
    if (b->closing) {
        snprintf(why, whyn, "the broker is shutting down");
        return RQ_SHUTDOWN;
    }
    const struct replica_member *self = replica_desc_member(d, b->cfg.id);
    if (self == NULL) {
        snprintf(why, whyn, "broker %" PRIu64 " is not among the members",
                 b->cfg.id);
        return RQ_INVALID;
    }
    if (strcmp(self->raft_addr, b->cfg.raft_addr) != 0) {
        snprintf(why, whyn,
                 "member %" PRIu64 " has raft_addr %s but this broker is at %s",
                 b->cfg.id, self->raft_addr, b->cfg.raft_addr);
        return RQ_INVALID;
    }
    return 0;
}

int broker_add(struct broker *b, const struct replica_desc *d, bool *existed,
               char *why, size_t whyn)
{
    struct replica *r;
    char dir[PATH_LEN];
    int rv;

    *existed = false;
    rv = check_desc(b, d, why, whyn);
    if (rv != 0) {
        return rv;
    }
    struct slot *s = slot_find(b, d->group_id);
    if (s != NULL) {
        if (replica_state(s->replica) == REPLICA_CLOSING) {
            snprintf(why, whyn,
                     "group %" PRIu64 " is being removed; retry shortly",
                     d->group_id);
            return RQ_SHUTDOWN;
        }
        if (!replica_desc_same(replica_desc(s->replica), d)) {
            snprintf(why, whyn,
                     "group %" PRIu64
                     " is hosted here already with another topic, "
                     "partition or members",
                     d->group_id);
            return RQ_EXISTS;
        }
        *existed = true;
        /* Asking again with a preferred leader names it. */
        if (d->preferred_leader != 0) {
            return replica_set_preferred(s->replica, d->preferred_leader, why,
                                         whyn);
        }
        return 0;
    }
    if (broker_find_partition(b, d->topic, d->partition_id) != NULL) {
        snprintf(why, whyn,
                 "topic %s partition %" PRIu64
                 " is hosted here already by another group",
                 d->topic, d->partition_id);
        return RQ_EXISTS;
    }
    /* Leftovers of a replica that was never completely created or removed
     * must not be mistaken for this one's state. */
    snprintf(dir, sizeof dir, "%s/replicas/%" PRIu64, b->cfg.data, d->group_id);
    if (access(dir, F_OK) == 0) {
        rq_log(RQ_WARN, "g%" PRIu64 ": deleting leftover directory %s",
               d->group_id, dir);
        if (nftw(dir, rm_entry, 16, FTW_DEPTH | FTW_PHYS) != 0) {
            snprintf(why, whyn, "cannot delete leftover %s: %s", dir,
                     strerror(errno));
            return RQ_IO;
        }
    }
    rv = replica_new(&b->env, d, &r);
    if (rv != 0) {
        snprintf(why, whyn, "out of memory"); /* UNTESTED: ENOMEM only. */
        return rv;
    }
    rv = slot_add(b, r, false);
    if (rv != 0) {
        replica_close(r, false, NULL, NULL); /* UNTESTED: ENOMEM only. */
        snprintf(why, whyn, "out of memory");
        return rv;
    }
    rv = replica_save(r, why, whyn);
    if (rv == 0) {
        rv = replica_open(r, why, whyn);
    }
    if (rv != 0) {
        rq_log(RQ_ERROR, "g%" PRIu64 ": cannot create: %s", d->group_id, why);
        replica_close(r, true, on_replica_closed, b);
        return rv;
    }
    rq_log(RQ_INFO,
           "g%" PRIu64 ": created for topic %s partition %" PRIu64 "%s",
           d->group_id, d->topic, d->partition_id,
           d->bootstrap ? ", bootstrapped" : ", joining");
    return 0;
}

static void on_removed(void *data, uint64_t gid, int status)
{
    struct removal *rm = data;
    struct broker *b = rm->broker;
    void (*cb)(void *, int) = rm->cb;
    void *cb_data = rm->data;
    free(rm);
    slot_remove(b, gid);
    cb(cb_data, status);
    shutdown_continue(b);
}

int broker_remove(struct broker *b, uint64_t group_id,
                  void (*cb)(void *data, int status), void *data)
{
    struct slot *s = slot_find(b, group_id);
    if (s == NULL) {
        return RQ_NOTFOUND;
    }
    if (replica_state(s->replica) == REPLICA_CLOSING) {
        return RQ_SHUTDOWN;
    }
    struct removal *rm = calloc(1, sizeof *rm);
    if (rm == NULL) {
        return RQ_NOMEM; /* UNTESTED: ENOMEM only. */
    }
    rm->broker = b;
    rm->cb = cb;
    rm->data = data;
    if (s->from_start && replica_state(s->replica) == REPLICA_NEW) {
        b->to_open--;
    }
    rq_log(RQ_INFO, "g%" PRIu64 ": removing", group_id);
    replica_close(s->replica, true, on_removed, rm);
    return 0;
}

/* ---- Rebuilding a replica that cannot be opened ---- */

/* A rebuild under way: the failed replica is closing. */
struct rebuild {
    struct broker *broker;
    struct replica_desc desc; /* The new replica's (bootstrap false). */
    broker_rebuild_cb cb;
    void *data;
};

static void on_rebuild_closed(void *data, uint64_t gid, int status)
{
    struct rebuild *rb = data;
    struct broker *b = rb->broker;
    struct slot *s = slot_find(b, gid);
    struct replica *r;
    char moved_to[PATH_LEN + 64] = "";
    char why[512] = "";
    int rv;

    (void)status;
    assert(s != NULL);
    if (b->closing) {
        slot_remove(b, gid);
        rb->cb(rb->data, RQ_SHUTDOWN, "", "the broker is shutting down");
        free(rb);
        shutdown_continue(b);
        return;
    }
    rv = replica_new(&b->env, &rb->desc, &r);
    if (rv != 0) {
        slot_remove(b, gid); /* UNTESTED: ENOMEM only. */
        rb->cb(rb->data, rv, "", "out of memory");
        free(rb);
        return;
    }
    s->replica = r;
    s->reopening = false;
    s->reopen_after = 0;
    rv = replica_set_aside(r, moved_to, sizeof moved_to, why, sizeof why);
    if (rv == 0) {
        rq_log(RQ_WARN,
               "g%" PRIu64
               ": moved the replica's files aside to %s; "
               "rebuilding it empty to join its group as a new member",
               gid, moved_to);
        rv = replica_open(r, why, sizeof why);
    }
    if (rv != 0) {
        rq_log(RQ_ERROR, "g%" PRIu64 ": cannot rebuild: %s", gid, why);
    } else {
        rq_log(RQ_INFO,
               "g%" PRIu64
               ": rebuilt empty for topic %s partition "
               "%" PRIu64 ", joining",
               gid, rb->desc.topic, rb->desc.partition_id);
    }
    rb->cb(rb->data, rv, moved_to, why);
    free(rb);
}

int broker_rebuild(struct broker *b, const struct replica_desc *d, bool *open,
                   broker_rebuild_cb cb, void *data, char *why, size_t whyn)
{
    *open = false;
    int rv = check_desc(b, d, why, whyn);
    if (rv != 0) {
        return rv;
    }
    struct slot *s = slot_find(b, d->group_id);
    if (s == NULL) {
        snprintf(why, whyn, "no replica of group %" PRIu64 " here",
                 d->group_id);
        return RQ_NOTFOUND;
    }
    const struct replica_desc *had = replica_desc(s->replica);
    if (strcmp(had->topic, d->topic) != 0 ||
        had->partition_id != d->partition_id) {
        snprintf(why, whyn,
                 "group %" PRIu64
                 " is hosted here for topic %s partition "
                 "%" PRIu64,
                 d->group_id, had->topic, had->partition_id);
        return RQ_EXISTS;
    }
    switch (replica_state(s->replica)) {
        case REPLICA_OPEN:
            *open = true;
            return 0;
        case REPLICA_FAILED:
            break;
        default:
            snprintf(why, whyn,
                     "the replica of group %" PRIu64
                     " is opening or closing; retry shortly",
                     d->group_id);
            return RQ_SHUTDOWN;
    }
    struct rebuild *rb = calloc(1, sizeof *rb);
    if (rb == NULL) {
        snprintf(why, whyn, "out of memory"); /* UNTESTED: ENOMEM only. */
        return RQ_NOMEM;
    }
    rb->broker = b;
    rb->desc = *d;
    rb->desc.bootstrap = false;
    rb->cb = cb;
    rb->data = data;
    rq_log(RQ_WARN,
           "g%" PRIu64
           ": rebuilding the replica that failed to open, "
           "from its peers",
           d->group_id);
    replica_close(s->replica, false, on_rebuild_closed, rb);
    return 0;
}

/* ---- Opening the replicas found at start ---- */

static void on_open_turn(uv_idle_t *idle)
{
    struct broker *b = idle->data;
    char why[512];

    for (size_t i = 0; i < b->n_slots; i++) {
        struct slot *s = &b->slots[i];
        if (!s->from_start || replica_state(s->replica) != REPLICA_NEW) {
            continue;
        }
        b->to_open--;
        if (replica_open(s->replica, why, sizeof why) != 0) {
            rq_log(RQ_ERROR, "g%" PRIu64 ": cannot open: %s", s->group_id, why);
        }
        if (b->to_open > 0) {
            return; /* One per loop iteration. */
        }
        break;
    }
    uv_idle_stop(idle);
    b->to_open = 0;
    size_t failed = 0;
    for (size_t i = 0; i < b->n_slots; i++) {
        failed += replica_state(b->slots[i].replica) == REPLICA_FAILED;
    }
    if (failed > 0) {
        rq_log(RQ_ERROR,
               "%zu of the %zu replicas found at start failed to open; "
               "not ready",
               failed, b->found);
    } else {
        rq_log(RQ_INFO, "all %zu replicas found at start are open; ready",
               b->found);
    }
}

static int cmp_slot(const void *x, const void *y)
{
    const struct slot *a = x;
    const struct slot *c = y;
    return a->group_id < c->group_id ? -1 : a->group_id > c->group_id;
}

/* Reads DATA/replicas/<gid>/replica.json of every replica. A directory
 * that cannot be read is skipped with a warning: it does not stop the
 * others. */
static int scan_replicas(struct broker *b, char *why, size_t whyn)
{
    char dir[PATH_LEN];
    char path[PATH_LEN + 300];
    struct dirent *e;

    snprintf(dir, sizeof dir, "%s/replicas", b->cfg.data);
    DIR *d = opendir(dir);
    if (d == NULL) {
        if (errno == ENOENT) {
            return 0;
        }
        snprintf(why, whyn, "cannot read %s: %s", dir, strerror(errno));
        return RQ_IO;
    }
    while ((e = readdir(d)) != NULL) {
        struct replica_desc desc;
        char reason[256];
        json_error_t jerr;
        char *end;
        if (e->d_name[0] < '0' || e->d_name[0] > '9') {
            continue;
        }
        unsigned long long gid = strtoull(e->d_name, &end, 10);
        if (*end != '\0' || gid == 0) {
            continue;
        }
        snprintf(path, sizeof path, "%s/%s/replica.json", dir, e->d_name);
        json_t *o = json_load_file(path, 0, &jerr);
        if (o == NULL) {
            rq_log(RQ_WARN, "skipping %s/%s: %s", dir, e->d_name, jerr.text);
            continue;
        }
        int rv = replica_desc_parse(o, &desc, reason, sizeof reason);
        json_decref(o);
        if (rv == 0 && desc.group_id != gid) {
            snprintf(reason, sizeof reason, "it names group %" PRIu64,
                     desc.group_id);
            rv = RQ_INVALID;
        }
        if (rv == 0 && replica_desc_member(&desc, b->cfg.id) == NULL) {
            snprintf(reason, sizeof reason, "broker %" PRIu64 " is no member",
                     b->cfg.id);
            rv = RQ_INVALID;
        }
        if (rv == 0 && slot_find(b, gid) != NULL) {
            snprintf(reason, sizeof reason, "duplicate group"); /* UNTESTED */
            rv = RQ_INVALID;
        }
        if (rv != 0) {
            rq_log(RQ_WARN, "skipping %s: %s", path, reason);
            continue;
        }
        struct replica *r;
        if (replica_new(&b->env, &desc, &r) != 0 || slot_add(b, r, true) != 0) {
            closedir(d); /* UNTESTED: ENOMEM only. */
            snprintf(why, whyn, "out of memory");
            return RQ_NOMEM;
        }
        b->found++;
    }
    closedir(d);
    if (b->n_slots > 1) { /* slots is NULL while empty */
        qsort(b->slots, b->n_slots, sizeof b->slots[0], cmp_slot);
    }
    b->to_open = b->found;
    return 0;
}

/* ---- Raft log memory ---- */

static double mib(uint64_t bytes)
{
    return (double)bytes / (1024.0 * 1024.0);
}

/* Shares --raft-memory-bytes among the replicas hosted now: the replicas
 * open already take their new share, those still to open find it in the
 * env. Nothing to share with snapshots counted in entries only. */
static void budget_share(struct broker *b)
{
    if (b->closing || b->cfg.raft_log_memory_bytes == 0) {
        return;
    }
    struct logbudget_share s = logbudget_share(
        b->cfg.raft_memory_bytes, b->n_slots, b->cfg.raft_log_memory_bytes,
        b->cfg.raft_log_trailing_bytes);
    if (s.memory_bytes == b->env.raft_log_memory_bytes &&
        s.trailing_bytes == b->env.raft_log_trailing_bytes) {
        return;
    }
    b->env.raft_log_memory_bytes = s.memory_bytes;
    b->env.raft_log_trailing_bytes = s.trailing_bytes;
    for (size_t i = 0; i < b->n_slots; i++) {
        replica_set_log_budget(b->slots[i].replica, s.memory_bytes,
                               s.trailing_bytes);
    }
    rq_log(RQ_DEBUG,
           "Raft log memory: %.2f MiB per replica (%.2f MiB trailing) over "
           "%zu replicas",
           mib(s.memory_bytes + s.trailing_bytes), mib(s.trailing_bytes),
           b->n_slots);
}

/* ---- Timers ---- */

/* ---- Groups that libraft stopped ---- */

static void on_reopen_closed(void *data, uint64_t gid, int status)
{
    struct reopen *ro = data;
    struct broker *b = ro->broker;
    struct slot *s = slot_find(b, gid);
    struct replica *r;
    char why[512];

    (void)status;
    assert(s != NULL);
    if (b->closing || replica_new(&b->env, &ro->desc, &r) != 0) {
        slot_remove(b, gid);
        free(ro);
        shutdown_continue(b);
        return;
    }
    free(ro);
    s->replica = r;
    if (replica_open(r, why, sizeof why) != 0) {
        rq_log(RQ_ERROR,
               "g%" PRIu64 ": cannot reopen: %s; trying again in %d s", gid,
               why, REOPEN_GAP_MS / 1000);
        return;
    }
    s->reopening = false;
    rq_log(RQ_INFO, "g%" PRIu64 ": reopened", gid);
}

/*
 * rq_node stops a group for good (RQ_ROLE_UNAVAILABLE) when raft_uv fails a
 * write, a term or vote it cannot persist say, which libraft 0.22.1 would go
 * on without (0.15 stopped the group itself; DESIGN.md section 3). The
 * replica is closed and opened again from its directory, which replays its
 * log and checks its partition log against it; a reopen that fails (the
 * disk still full) is tried again. At most once per REOPEN_GAP_MS, so a
 * group that stops again at once does not spin.
 */
static void reopen_if_stopped(struct broker *b, struct slot *s, uint64_t now)
{
    struct replica_status st;
    enum replica_state state = replica_state(s->replica);

    if (now < s->reopen_after) {
        return;
    }
    if (state == REPLICA_OPEN) {
        replica_status(s->replica, &st);
        if (st.node.role != RQ_ROLE_UNAVAILABLE) {
            return;
        }
        rq_log(RQ_ERROR,
               "g%" PRIu64 ": the Raft group stopped (term %" PRIu64
               "); closing and reopening it",
               s->group_id, st.node.term);
    } else if (state != REPLICA_FAILED || !s->reopening) {
        return;
    }
    struct reopen *ro = malloc(sizeof *ro);
    if (ro == NULL) {
        return; /* UNTESTED: ENOMEM only; the next tick tries again. */
    }
    ro->broker = b;
    ro->desc = *replica_desc(s->replica);
    s->reopen_after = now + REOPEN_GAP_MS;
    s->reopening = true;
    replica_close(s->replica, false, on_reopen_closed, ro);
}

/* Reads the data volume's figures (disk.h) and says when it goes under
 * its reserve or back. */
static void disk_read(struct broker *b)
{
    struct statvfs v;
    if (statvfs(b->cfg.data, &v) != 0) {
        return; /* UNTESTED: the data directory is ours and exists. */
    }
    uint64_t total = (uint64_t)v.f_blocks * v.f_frsize;
    uint64_t free = (uint64_t)v.f_bavail * v.f_frsize;
    if (!disk_update(&b->disk, b->cfg.disk_reserve_bytes, total, free)) {
        return;
    }
    if (b->disk.low) {
        rq_log(RQ_WARN,
               "the data volume has %" PRIu64
               " MiB free, under its reserve "
               "of %" PRIu64
               " MiB: produces to this broker's groups are "
               "refused (507) until space returns",
               free >> 20, b->disk.reserve >> 20);
    } else {
        rq_log(RQ_INFO,
               "the data volume has %" PRIu64
               " MiB free again: produces "
               "are taken",
               free >> 20);
    }
}

bool broker_disk_refuses(struct broker *b, const struct replica *r, char *why,
                         size_t whyn)
{
    if (b->disk.low) {
        snprintf(why, whyn,
                 "broker %" PRIu64 "'s data volume has %" PRIu64
                 " MiB free, under its reserve of %" PRIu64
                 " MiB; produces are refused until retention or a larger "
                 "volume frees space",
                 b->cfg.id, b->disk.free >> 20, b->disk.reserve >> 20);
        return true;
    }
    const struct replica_desc *d = replica_desc(r);
    for (size_t i = 0; i < d->n_members; i++) {
        uint64_t id = d->members[i].id;
        if (id != b->cfg.id &&
            peerwatch_has(&b->peers, id, PEERWATCH_DISK_LOW)) {
            snprintf(why, whyn,
                     "broker %" PRIu64
                     ", a replica of this partition, is under its disk "
                     "reserve; produces are refused until it has space again",
                     id);
            return true;
        }
    }
    return false;
}

void broker_disk_refused(struct broker *b)
{
    rq_metric_add(b->bm.disk_refused, 1);
}

static void on_tick(uv_timer_t *t)
{
    struct broker *b = t->data;
    uint64_t now = uv_now(b->loop);
    b->ticks++;
    disk_read(b);
    commits_ask(b);
    if (disk_tight(&b->disk)) {
        retain(b); /* Near the reserve: every tick, not every period. */
    }
    bool balance = b->ticks % BALANCE_TICKS == 0;
    for (size_t i = 0; i < b->n_slots; i++) {
        /* No transfer to a preferred leader that answers no ping: it would
         * hold the group's produces for an election timeout, then fail. */
        const struct peerwatch_peer *p =
            peerwatch_get(&b->peers, replica_preferred(b->slots[i].replica));
        replica_tick(b->slots[i].replica,
                     balance && !b->leaving &&
                         (p == NULL ||
                          (!p->down && !(p->features_known &&
                                         (p->features & PEERWATCH_LEAVING)))));
        reopen_if_stopped(b, &b->slots[i], now);
    }
}

static void retain(struct broker *b)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    uint64_t now_ms =
        (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
    /* No replica keeps more than its share of the volume (disk.h), less
     * what its Raft log may hold: entries up to its memory share (or the
     * per-replica limit), the trailing entries, three segments. */
    size_t n = b->n_slots > 0 ? b->n_slots : 1;
    uint64_t raft = b->cfg.raft_log_memory_bytes;
    if (b->cfg.raft_memory_bytes != 0 &&
        (raft == 0 || b->cfg.raft_memory_bytes / n < raft)) {
        raft = b->cfg.raft_memory_bytes / n;
    }
    raft += b->cfg.raft_log_trailing_bytes + 3 * b->cfg.raft_segment_size;
    uint64_t bytes = disk_retention_share(b->cfg.retention_bytes, &b->disk,
                                          b->n_slots, raft);
    for (size_t i = 0; i < b->n_slots; i++) {
        replica_retain(b->slots[i].replica, bytes, b->cfg.retention_ms, now_ms);
    }
}

static void on_retention(uv_timer_t *t)
{
    retain(t->data);
}

/* ---- Heartbeats ---- */

/* The replicas summary a heartbeat carries (manager/README.md). */
static json_t *heartbeat_summary(void *data)
{
    struct broker *b = data;
    json_t *list = json_array();
    for (size_t i = 0; i < b->n_slots; i++) {
        struct replica *r = b->slots[i].replica;
        struct replica_status st;
        uint64_t ids[REPLICA_MEMBERS_MAX];
        replica_status(r, &st);
        size_t n = replica_voters(r, ids, REPLICA_MEMBERS_MAX);
        json_t *voters = json_array();
        for (size_t j = 0; j < n; j++) {
            json_array_append_new(voters, json_integer((json_int_t)ids[j]));
        }
        json_array_append_new(
            list, json_pack("{s:I,s:s,s:I,s:I,s:I,s:I,s:o,s:s,s:I}", "group_id",
                            (json_int_t)b->slots[i].group_id, "role",
                            rq_role_name(st.node.role), "leader_id",
                            (json_int_t)st.node.leader_id, "term",
                            (json_int_t)st.node.term, "commit",
                            (json_int_t)st.node.commit, "next_offset",
                            (json_int_t)st.next_offset, "voters", voters,
                            "state", st.state, "preferred_leader",
                            (json_int_t)replica_preferred(r)));
    }
    /* The data volume, for GET /admin/brokers (disk.h). */
    return json_pack("{s:o,s:{s:I,s:I,s:I,s:b}}", "replicas", list, "disk",
                     "total", (json_int_t)b->disk.total, "free",
                     (json_int_t)b->disk.free, "reserve",
                     (json_int_t)b->disk.reserve, "low", b->disk.low);
}

static void on_registrar_closed(void *data)
{
    (void)data;
}

/* ---- RPC ---- */

static void serve_members(struct broker *b, struct rq_rpc_call *call,
                          const uint8_t *body, size_t len)
{
    struct rq_buf out;
    uint64_t gid;
    if (brpc_members_decode(body, len, &gid) != 0) {
        rq_rpc_reply(call, RQ_MALFORMED, NULL, 0);
        return;
    }
    struct replica *r = broker_find(b, gid);
    if (r == NULL) {
        rq_rpc_reply(call, RQ_UNKNOWNGROUP, NULL, 0);
        return;
    }
    rq_buf_init(&out);
    int rv = replica_serve_members(r, &out);
    if (rv != 0) {
        rq_rpc_reply(call, rv, NULL, 0);
    } else {
        rq_rpc_reply(call, 0, out.base, out.len);
    }
    rq_buf_close(&out);
}

static void on_rpc(void *data, struct rq_rpc_call *call, uint32_t method,
                   const uint8_t *body, size_t len)
{
    struct broker *b = data;
    struct rq_buf out;

    if (b->closing) {
        rq_rpc_reply(call, RQ_SHUTDOWN, NULL, 0);
        return;
    }
    if (method == REPLICA_RPC_PING) {
        /* What this broker reads (peerwatch.h): merged produce entries,
         * unless it is told not to make them either. */
        uint8_t features[4];
        rq_wire_put_u32_at(features,
                           (b->cfg.merge_produces ? PEERWATCH_MERGES : 0) |
                               (b->disk.low ? PEERWATCH_DISK_LOW : 0) |
                               (b->leaving ? PEERWATCH_LEAVING : 0));
        rq_rpc_reply(call, 0, features, sizeof features);
        return;
    }
    if (method == REPLICA_RPC_MEMBERS) {
        serve_members(b, call, body, len);
        return;
    }
    if (method == REPLICA_RPC_COMMITS) {
        serve_commits(b, call, body, len);
        return;
    }
    if (method != REPLICA_RPC_FETCH) {
        rq_rpc_reply(call, RQ_INVALID, NULL, 0);
        return;
    }
    struct brpc_fetch req;
    if (brpc_fetch_decode(body, len, &req) != 0) {
        rq_rpc_reply(call, RQ_MALFORMED, NULL, 0);
        return;
    }
    struct replica *r = broker_find(b, req.group_id);
    if (r == NULL) {
        rq_rpc_reply(call, RQ_UNKNOWNGROUP, NULL, 0);
        return;
    }
    rq_buf_init(&out);
    int rv = replica_serve_fetch(r, req.offset, req.max_bytes, &out);
    if (rv == 0 && out.err != 0) {
        rv = out.err; /* UNTESTED: ENOMEM only. */
    }
    if (rv != 0) {
        rq_rpc_reply(call, rv, NULL, 0);
    } else {
        rq_rpc_reply(call, 0, out.base, out.len);
    }
    rq_buf_close(&out);
}

/* ---- Peer watch ----
 *
 * A follower learns that its leader is gone only when the leader's
 * heartbeats stop for an election timeout, and a quiet group's leader
 * heartbeats once a second and its followers wait 5 to 10 s (DESIGN.md
 * section 15, "Idle groups go quiet"). One ping a heartbeat to each peer
 * broker tells this broker, for all its groups at once, when a peer's
 * process stops answering: after --election-timeout-ms of silence, every
 * group that follows it stands for election at once (replica_leader_lost),
 * and the surviving members of each elect a leader within a few polls.
 * Pings ride the Raft port's RPC connection to the peer (one a peer, kept).
 */

struct ping {
    struct broker *b;
    uint64_t id;
};

static void on_pong(void *data, int status, const uint8_t *body, size_t len)
{
    struct ping *pg = data;
    struct broker *b = pg->b;
    if (!b->closing) {
        peerwatch_features(&b->peers, pg->id, status, body, len);
    }
    bool ok =
        status != RQ_TIMEOUT && status != RQ_CONNECT && status != RQ_SHUTDOWN;
    if (!b->closing &&
        peerwatch_answer(&b->peers, pg->id, ok, uv_now(b->loop))) {
        struct peerwatch_peer *p = peerwatch_get(&b->peers, pg->id);
        rq_log(RQ_INFO, "broker %" PRIu64 " at %s answers again", pg->id,
               p != NULL ? p->addr : "?");
    }
    free(pg);
}

static void on_peer_down(void *data, const struct peerwatch_peer *p)
{
    struct broker *b = data;
    size_t n = 0;
    for (size_t i = 0; i < b->n_slots; i++) {
        n += replica_leader_lost(b->slots[i].replica, p->id) ? 1 : 0;
    }
    rq_metric_add(b->bm.peers_down, 1);
    rq_log(RQ_WARN,
           "broker %" PRIu64 " at %s has answered no ping for %" PRIu64
           " ms; %zu groups it led stand for election here",
           p->id, p->addr, b->peers.dead_after_ms, n);
}

static void on_ping_tick(uv_timer_t *t)
{
    struct broker *b = t->data;
    uint64_t now = uv_now(b->loop);

    peerwatch_round_begin(&b->peers, now);
    for (size_t i = 0; i < b->n_slots; i++) {
        const struct replica_desc *d = replica_desc(b->slots[i].replica);
        for (size_t k = 0; k < d->n_members; k++) {
            const struct replica_member *m = &d->members[k];
            if (m->id != b->cfg.id && m->raft_addr[0] != '\0') {
                (void)peerwatch_track(&b->peers, m->id, m->raft_addr, now);
            }
        }
    }
    peerwatch_round_end(&b->peers);
    for (size_t i = 0; i < b->peers.n; i++) {
        struct peerwatch_peer *p = &b->peers.peers[i];
        struct ping *pg = p->in_flight ? NULL : malloc(sizeof *pg);
        if (pg == NULL) {
            continue;
        }
        *pg = (struct ping){b, p->id};
        if (rq_rpc_call(b->rpc, p->addr, REPLICA_RPC_PING, NULL, 0,
                        (unsigned)b->peers.dead_after_ms, on_pong, pg) != 0) {
            free(pg); /* UNTESTED: shutting down or ENOMEM. */
            continue;
        }
        p->in_flight = true;
    }
    peerwatch_check(&b->peers, now, on_peer_down, b);
}

struct rq_rpc *broker_rpc(struct broker *b)
{
    return b->rpc;
}

/* Whether peer broker @id reads merged produce entries (replica_env). */
static bool peer_merges(void *data, uint64_t id)
{
    struct broker *b = data;
    return peerwatch_has(&b->peers, id, PEERWATCH_MERGES);
}

/* ---- Metrics ---- */

/* Before every rendering: each replica's Raft and partition figures, the
 * replicas by state, the io_destroy pool. */
static void on_collect(void *data)
{
    struct broker *b = data;
    double states[BMETRICS_STATES] = {0};

    for (size_t i = 0; i < b->n_slots; i++) {
        struct replica *r = b->slots[i].replica;
        struct replica_status st;
        replica_metrics_collect(r);
        replica_status(r, &st);
        for (size_t j = 0; j < BMETRICS_STATES; j++) {
            if (strcmp(st.state, bmetrics_state_names[j]) == 0) {
                states[j]++;
            }
        }
    }
    for (size_t j = 0; j < BMETRICS_STATES; j++) {
        rq_metric_set(b->bm.replicas[j], states[j]);
    }
    rq_metric_set(b->bm.disk_total, (double)b->disk.total);
    rq_metric_set(b->bm.disk_free, (double)b->disk.free);
    rq_metric_set(b->bm.disk_reserve, (double)b->disk.reserve);
    rq_metric_set(b->bm.disk_low, b->disk.low ? 1 : 0);
    rq_metric_set(b->bm.aio_deferred, (double)rq_aio_deferred());
    rq_metric_set(b->bm.aio_inline, (double)rq_aio_inline());
}

static int metrics_start(struct broker *b, char *why, size_t whyn)
{
    int rv = rq_metrics_new(&b->metrics);
    if (rv == 0) {
        rv = bmetrics_init(&b->bm, b->metrics);
    }
    if (rv == 0) {
        rv = rq_metrics_on_collect(b->metrics, on_collect, b);
    }
    if (rv == 0) {
        rv = rq_mux_metrics_open(b->mux, b->metrics);
    }
    if (rv != 0) {
        snprintf(why, whyn, "metrics: %s", rq_strerror(rv)); /* UNTESTED */
    }
    return rv;
}

/* ---- Shutdown ---- */

static void on_mux_closed(void *data)
{
    (void)data;
}

static void on_rpc_closed(void *data)
{
    struct broker *b = data;
    rq_mux_close(b->mux, on_mux_closed, b);
}

static void on_http_closed(void *data)
{
    struct broker *b = data;
    b->http = NULL;
    rq_rpc_close(b->rpc, on_rpc_closed, b);
}

/* Once every replica has closed: HTTP, then RPC, then the mux. */
static void shutdown_continue(struct broker *b)
{
    if (!b->closing || b->n_slots > 0 || b->http_closing) {
        return;
    }
    b->http_closing = true;
    rq_http_close(b->http, on_http_closed, b);
}

static void shutdown_begin(struct broker *b)
{
    if (b->closing) {
        return;
    }
    b->closing = true;
    rq_log(RQ_INFO, "shutting down, closing %zu replicas", b->n_slots);
    if (b->registrar != NULL) {
        registrar_close(b->registrar, on_registrar_closed, b);
        b->registrar = NULL;
    }
    uv_close((uv_handle_t *)&b->opener, NULL);
    uv_close((uv_handle_t *)&b->tick, NULL);
    uv_close((uv_handle_t *)&b->retention, NULL);
    uv_close((uv_handle_t *)&b->ping, NULL);
    uv_close((uv_handle_t *)&b->grace, NULL);
    /* A close callback removes a slot: walk a snapshot of the replicas. */
    size_t n = b->n_slots;
    struct replica **list = calloc(n + 1, sizeof *list);
    if (list == NULL) {
        abort(); /* UNTESTED: ENOMEM only; nothing sane is left to do. */
    }
    for (size_t i = 0; i < n; i++) {
        list[i] = b->slots[i].replica;
    }
    for (size_t i = 0; i < n; i++) {
        if (replica_state(list[i]) != REPLICA_CLOSING) {
            replica_close(list[i], false, on_replica_closed, b);
        }
    }
    free(list);
    shutdown_continue(b);
}

/* ---- Leaving: leaderships handed over before closing ---- */

static void on_grace(uv_timer_t *t)
{
    struct broker *b = t->data;
    rq_log(RQ_INFO,
           "%u leadership handovers not done within --shutdown-grace-ms; "
           "closing",
           b->handovers);
    shutdown_begin(b);
}

static void on_handed_over(void *data, int status)
{
    struct broker *b = data;
    (void)status; /* Done or not, the group elects once this one closes. */
    if (b->handovers > 0 && --b->handovers == 0 && !b->closing) {
        rq_log(RQ_INFO, "every leadership handed over; closing");
        uv_timer_stop(&b->grace);
        shutdown_begin(b);
    }
}

/*
 * Hands every group this broker leads to another member (replica_transfer
 * to any up-to-date voter), then closes; within --shutdown-grace-ms, after
 * which it closes anyway. Its pings say it is leaving, so no peer hands a
 * leadership back meanwhile. A rolling restart then costs each group a
 * transfer rather than an election timeout. true if handovers started.
 */
static bool leave(struct broker *b)
{
    b->leaving = true;
    for (size_t i = 0; i < b->n_slots; i++) {
        struct replica *r = b->slots[i].replica;
        if (replica_ready_leader(r) &&
            replica_transfer(r, 0, on_handed_over, b) == 0) {
            b->handovers++;
        }
    }
    if (b->handovers == 0) {
        return false;
    }
    rq_log(RQ_INFO, "handing %u leaderships over before closing", b->handovers);
    uv_timer_start(&b->grace, on_grace, b->cfg.shutdown_grace_ms, 0);
    return true;
}

/* rq_main's: a signal asks for an orderly shutdown; the first hands the
 * leaderships over first, a second closes at once. */
static void stop(void *self)
{
    struct broker *b = self;
    if (!b->leaving && !b->closing && b->cfg.shutdown_grace_ms > 0 &&
        leave(b)) {
        return;
    }
    uv_timer_stop(&b->grace);
    shutdown_begin(b);
}

/* ---- Start ---- */

static const struct rq_config_spec config_spec = {
    "broker",
    "broker --id N --raft-addr HOST:PORT --http-addr HOST:PORT --data DIR "
    "[options]",
    options, sizeof options / sizeof options[0]};

/* The rules of the options that their table cannot say. */
static int check(void *self, char *why, size_t whyn)
{
    struct broker *b = self;
    const struct broker_config *c = &b->cfg;
    int rv;

    if (c->id == 0 || c->id > INT64_MAX) {
        snprintf(why, whyn, "--id must be from 1 to 2^63-1");
        return RQ_INVALID;
    }
    rv =
        rq_config_check_addr("raft-addr", c->raft_addr, RQ_ADDR_MAX, why, whyn);
    if (rv == 0 && c->raft_bind[0] != '\0') {
        rv = rq_config_check_addr("raft-bind", c->raft_bind, RQ_ADDR_MAX, why,
                                  whyn);
    }
    if (rv == 0) {
        rv = rq_config_check_addr("http-addr", c->http_addr, RQ_ADDR_MAX, why,
                                  whyn);
    }
    if (rv == 0 && c->http_bind[0] != '\0') {
        rv = rq_config_check_addr("http-bind", c->http_bind, RQ_ADDR_MAX, why,
                                  whyn);
    }
    if (rv != 0) {
        return rv;
    }
    rv =
        rq_config_check_raft_timing(c->election_ms, c->heartbeat_ms, why, whyn);
    if (rv != 0) {
        return rv;
    }
    if (c->quiet_ms > 3600000 || c->quiet_heartbeat_ms > 600000 ||
        c->quiet_election_ms > 3600000) {
        snprintf(why, whyn,
                 "need --raft-quiet-ms <= 3600000, --raft-quiet-heartbeat-ms "
                 "<= 600000 and --raft-quiet-election-timeout-ms <= 3600000");
        return RQ_INVALID;
    }
    if (c->snapshot_threshold < 4 || c->snapshot_threshold > UINT32_MAX) {
        snprintf(why, whyn, "need 4 <= --snapshot-threshold < 2^32");
        return RQ_INVALID;
    }
    if ((c->raft_memory_bytes != 0 && c->raft_memory_bytes < LOGBUDGET_FLOOR) ||
        c->raft_memory_bytes > (UINT64_C(1) << 40)) {
        snprintf(why, whyn,
                 "need --raft-memory-bytes 0 (off) or 1 MiB to 1 TiB");
        return RQ_INVALID;
    }
    if ((c->raft_log_memory_bytes != 0 &&
         c->raft_log_memory_bytes < (64u << 10)) ||
        c->raft_log_memory_bytes > (UINT64_C(1) << 40) ||
        c->raft_log_trailing_bytes > (UINT64_C(1) << 40)) {
        snprintf(why, whyn,
                 "need --raft-log-memory-bytes 0 (off) or 64 KiB to 1 TiB, "
                 "and --raft-log-trailing-bytes <= 1 TiB");
        return RQ_INVALID;
    }
    if (c->raft_segment_size < 8192 || c->raft_segment_size > (1u << 30)) {
        snprintf(why, whyn, "need 8192 <= --raft-segment-size <= 1 GiB");
        return RQ_INVALID;
    }
    if (c->segment_bytes < 4096 || c->segment_bytes > (1u << 30)) {
        snprintf(why, whyn, "need 4096 <= --segment-bytes <= 1 GiB");
        return RQ_INVALID;
    }
    if (c->retention_check_ms < 100) {
        snprintf(why, whyn, "need --retention-check-ms >= 100");
        return RQ_INVALID;
    }
    rv = rq_httpsig_check_flags(c->auth_clock_skew_ms,
                                c->auth_replay_cache_entries, why, whyn);
    if (rv != 0) {
        return rv;
    }
    bool tls;
    rv =
        rq_tls_check_flags(c->tls_cert, c->tls_key, c->tls_ca, &tls, why, whyn);
    if (rv != 0) {
        return rv;
    }
    return rq_config_check_http(c->max_message_bytes, c->http_idle_timeout_s,
                                c->http_max_connections, c->http_max_buffered,
                                API_MAX_BODY, why, whyn);
}

/* Under TLS a broker's HTTP is for managers only, and they present the
 * node certificate: every path needs one but the probes and the metrics,
 * which Kubernetes and Prometheus fetch without. */
static bool client_cert_required(const char *path)
{
    return strcmp(path, "/healthz") != 0 && strcmp(path, "/readyz") != 0 &&
           strcmp(path, "/metrics") != 0;
}

/* ---- The cluster uid ---- */

static void uid_path(const struct broker *b, char *out, size_t n)
{
    snprintf(out, n, "%s/cluster_uid", b->cfg.data);
}

/* registrar_bind_cb: the first uid is kept, any other refused. */
static int bind_uid(void *data, uint64_t uid, char *why, size_t whyn)
{
    struct broker *b = data;
    char path[PATH_MAX];
    char mine[RQ_UID_TEXT];
    char theirs[RQ_UID_TEXT];
    if (b->cluster_uid == uid) {
        return 0;
    }
    uid_path(b, path, sizeof path);
    if (b->cluster_uid != 0) {
        rq_uid_format(b->cluster_uid, mine);
        rq_uid_format(uid, theirs);
        rq_why(why, whyn,
               "the managers are of cluster %s, this broker is of cluster %s "
               "(%s). If the managers lost their data, restore it; to give "
               "this broker to the new cluster, stop it and move its data "
               "directory away",
               theirs, mine, path);
        return RQ_EXISTS;
    }
    int rv = rq_uid_save(path, uid, why, whyn);
    if (rv == 0) {
        b->cluster_uid = uid;
        rq_uid_format(uid, theirs);
        rq_log(RQ_INFO, "bound to cluster %s (%s)", theirs, path);
    }
    return rv;
}

/*
 * rq_http's authenticate callback: the signature (rq_httpsig), then the
 * cluster uid a manager names: a call from managers of another cluster is
 * refused 409, so that they neither delete nor write this broker's data.
 */
static bool authenticate(struct rq_http_req *req, unsigned auth, void *data)
{
    struct broker *b = data;
    if (!rq_httpsig_authenticate(req, auth, b->httpsig)) {
        return false;
    }
    const char *text = rq_http_header(req, RQ_CLUSTER_UID_HEADER);
    uint64_t uid;
    if (text == NULL || b->cluster_uid == 0) {
        return true; /* A manager of an earlier release; not bound yet. */
    }
    if (rq_uid_parse(text, &uid) != 0) {
        rq_http_reply_error(req, 400, "%s is not a cluster uid",
                            RQ_CLUSTER_UID_HEADER);
        return false;
    }
    if (uid != b->cluster_uid) {
        char mine[RQ_UID_TEXT];
        rq_uid_format(b->cluster_uid, mine);
        rq_http_reply_error(req, 409,
                            "this broker belongs to cluster %s, not to the "
                            "caller's cluster %s",
                            mine, text);
        return false;
    }
    return true;
}

static int start(void *self, uv_loop_t *loop, char *why, size_t whyn)
{
    struct broker *b = self;
    int rv;

    b->loop = loop;
    char path[PATH_MAX];
    uid_path(b, path, sizeof path);
    rv = rq_uid_load(path, &b->cluster_uid, why, whyn);
    if (rv == RQ_NOTFOUND) {
        b->cluster_uid = 0;
    } else if (rv != 0) {
        return rv;
    }
    rq_keys_derive(&b->keys, b->cfg.secret, strlen(b->cfg.secret));
    rv = rq_tls_open(b->cfg.tls_cert, b->cfg.tls_key, b->cfg.tls_ca, &b->tls,
                     why, whyn);
    if (rv != 0) {
        return rv;
    }
    struct rq_mux_config mc = {
        .cluster_id = b->cfg.cluster_id,
        .self_id = b->cfg.id,
        .bind_address =
            b->cfg.raft_bind[0] != '\0' ? b->cfg.raft_bind : b->cfg.raft_addr,
        .advertise = b->cfg.raft_addr,
        .secret = b->cfg.secret,
        .tls = b->tls,
    };
    rv = rq_mux_new(b->loop, &mc, &b->mux, why, whyn);
    if (rv != 0) {
        return rv;
    }
    rv = rq_rpc_new(b->loop, b->mux, &b->rpc);
    if (rv != 0) {
        snprintf(why, whyn, "rpc: %s", rq_strerror(rv));
        return rv;
    }
    rq_rpc_set_handler(b->rpc, on_rpc, b);
    rv = metrics_start(b, why, whyn);
    if (rv == 0 && b->tls != NULL) {
        rv = rq_tls_metrics(b->tls, b->metrics);
    }
    if (rv != 0) {
        return rv;
    }
    struct rq_httpsig_config sc = {
        .keys = &b->keys,
        .skew_ms = b->cfg.auth_clock_skew_ms,
        .cache_entries = (size_t)b->cfg.auth_replay_cache_entries,
        .metrics = b->metrics,
    };
    rv = rq_httpsig_new(&sc, &b->httpsig);
    if (rv != 0) {
        snprintf(why, whyn, "out of memory"); /* UNTESTED: ENOMEM only. */
        return rv;
    }
    struct rq_http_config hc = {
        .bind_address =
            b->cfg.http_bind[0] != '\0' ? b->cfg.http_bind : b->cfg.http_addr,
        .max_body = API_MAX_BODY,
        .max_connections = (unsigned)b->cfg.http_max_connections,
        .max_buffered = (size_t)b->cfg.http_max_buffered,
        .idle_timeout_s = (unsigned)b->cfg.http_idle_timeout_s,
        .metrics = b->metrics,
        .authenticate = authenticate,
        .auth_data = b,
        .tls = b->tls,
        .client_cert_required = client_cert_required,
    };
    rv = rq_http_new(b->loop, &hc, api_route_table, api_route_count, b,
                     &b->http, why, whyn);
    if (rv != 0) {
        return rv;
    }
    struct rq_quiet_config quiet = {
        .after_ms = b->cfg.quiet_ms,
        .election_ms = b->cfg.election_ms,
        .heartbeat_ms = b->cfg.heartbeat_ms,
        .quiet_election_ms = b->cfg.quiet_election_ms,
        .quiet_heartbeat_ms = b->cfg.quiet_heartbeat_ms,
    };
    rq_quiet_config_fit(&quiet);
    b->env = (struct replica_env){
        .loop = b->loop,
        .mux = b->mux,
        .rpc = b->rpc,
        .self_id = b->cfg.id,
        .raft_addr = b->cfg.raft_addr,
        .data_dir = b->cfg.data,
        .election_timeout_ms = (unsigned)b->cfg.election_ms,
        .heartbeat_ms = (unsigned)b->cfg.heartbeat_ms,
        .quiet_ms = (unsigned)quiet.after_ms,
        .quiet_heartbeat_ms = (unsigned)quiet.quiet_heartbeat_ms,
        .quiet_election_ms = (unsigned)quiet.quiet_election_ms,
        .snapshot_threshold = (unsigned)b->cfg.snapshot_threshold,
        .raft_log_memory_bytes = b->cfg.raft_log_memory_bytes,
        .raft_log_trailing_bytes = b->cfg.raft_log_trailing_bytes,
        .raft_segment_size = (size_t)b->cfg.raft_segment_size,
        .segment_bytes = b->cfg.segment_bytes,
        .metrics = &b->bm,
        .merge_produces = b->cfg.merge_produces,
        .peer_merges = peer_merges,
        .peer_data = b,
    };
    rv = scan_replicas(b, why, whyn);
    if (rv != 0) {
        return rv;
    }
    if (b->cfg.managers[0] != '\0') {
        struct registrar_config rc = {
            .id = b->cfg.id,
            .raft_addr = b->cfg.raft_addr,
            .http_addr = b->cfg.http_addr,
            .managers = b->cfg.managers,
            .b2m_key = rq_keys_get(&b->keys, RQ_KEY_HTTP_B2M),
            .tls = b->tls,
            .bind = bind_uid,
            .cluster_uid = b->cluster_uid,
        };
        rv = registrar_new(b->loop, &rc, heartbeat_summary, b, &b->registrar,
                           why, whyn);
        if (rv != 0) {
            return rv;
        }
    }
    uv_idle_init(b->loop, &b->opener);
    b->opener.data = b;
    if (b->to_open > 0) {
        uv_idle_start(&b->opener, on_open_turn);
    }
    uv_timer_init(b->loop, &b->tick);
    b->tick.data = b;
    uv_timer_start(&b->tick, on_tick, TICK_MS, TICK_MS);
    uv_timer_init(b->loop, &b->grace);
    b->grace.data = b;
    uv_timer_init(b->loop, &b->retention);
    b->retention.data = b;
    uv_timer_start(&b->retention, on_retention, b->cfg.retention_check_ms,
                   b->cfg.retention_check_ms);
    peerwatch_init(&b->peers, b->cfg.election_ms);
    uv_timer_init(b->loop, &b->ping);
    b->ping.data = b;
    uv_timer_start(&b->ping, on_ping_tick, b->cfg.heartbeat_ms,
                   b->cfg.heartbeat_ms);
    rq_log(RQ_INFO,
           "listening on %s (raft) and %s (http), data in %s, %zu replicas "
           "to open",
           b->cfg.raft_addr, b->cfg.http_addr, b->cfg.data, b->found);
    if (b->cfg.raft_memory_bytes != 0 && b->cfg.raft_log_memory_bytes != 0) {
        rq_log(
            RQ_INFO,
            "Raft log memory: %.0f MiB shared among the replicas, %.2f MiB "
            "each now",
            mib(b->cfg.raft_memory_bytes),
            mib(b->env.raft_log_memory_bytes + b->env.raft_log_trailing_bytes));
    }
    return 0;
}

/* The loop has stopped: every replica and the server are gone. */
static int finish(void *self)
{
    struct broker *b = self;
    free(b->slots);
    peerwatch_close(&b->peers);
    rq_httpsig_free(b->httpsig);
    rq_keys_wipe(&b->keys, sizeof b->keys);
    rq_metrics_free(b->metrics);
    rq_tls_free(b->tls);
    return 0;
}

int main(int argc, char **argv)
{
    static const struct rq_main_spec spec = {&config_spec, check, start, stop,
                                             finish};
    static struct broker b;
    return rq_main(&spec, &b, &b.cfg, argc, argv);
}

/*
 * One partition replica hosted by a broker: its Raft node
 * (rq_node over its own raft_uv directory and mux transport), its partition
 * log (partition.h), the requests waiting on it (long polls), catching up
 * from a peer over rq_rpc, and leadership transfer. What the replica is
 * (topic, partition, group, members) is its descriptor (replica_desc.h).
 *
 * On disk, under the broker's data directory:
 *
 *     replicas/<group_id>/replica.json   the descriptor (topic, partition,
 *                                        group, members, bootstrap,
 *                                        preferred leader),
 *                                        written atomically
 *     replicas/<group_id>/raft/          the rq_node directory
 *     replicas/<group_id>/log/           the partition log
 *
 * Lifecycle (each edge names the function that moves it):
 *
 *     NEW --replica_open--> OPEN           (blocks the loop ~4 ms)
 *     NEW --replica_open fails--> FAILED
 *     NEW --replica_set_aside fails--> FAILED
 *     NEW, OPEN, FAILED --replica_close--> CLOSING --(closed)--> freed
 *
 * An OPEN replica reports state "ready", or "fetching" while its log has a
 * gap that it is fetching from a peer (partition_fetch_range), or "removed"
 * once a peer's committed configuration, newer than its own, leaves it out
 * (libraft stops sending a removed member anything, so it learns that from
 * its peers: see REPLICA_RPC_MEMBERS). Everything runs on the loop thread.
 *
 * Membership. The descriptor's members follow the group's committed Raft
 * configuration: when it changes, the replica rewrites replica.json with
 * the configuration's servers in its order (the same on every replica),
 * once it knows each one's HTTP address (from the old descriptor, from the
 * request that added it, or from a peer). A configuration that leaves this
 * broker out is never written, so a restart still opens the replica.
 */
#ifndef REPLICA_H
#define REPLICA_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <uv.h>

#include "brpc.h"
#include "partition.h"
#include "rq_config.h"
#include "rq_mux.h"
#include "rq_node.h"
#include "replica_desc.h"
#include "rq_rpc.h"

/* The broker-to-broker RPC methods (bodies coded in brpc.h). FETCH body,
 * little-endian:
 *     group_id:u64 | offset:u64 | max_bytes:u32 | pad:u32
 * reply: whole batches from @offset (partition_read_batches bytes), empty
 * when the peer holds nothing at @offset yet.
 * MEMBERS body: group_id:u64; reply: JSON text
 *     {"conf_index": N, "servers": [{"id", "raft_addr", "http_addr" (null
 *      if unknown), "voter"}]}
 * the peer's committed configuration (RQ_NOQUORUM while a newer one is
 * uncommitted there). A replica asks its peers for the HTTP addresses of
 * members it learned from the configuration alone, and whether it has been
 * removed from its group. */
#define REPLICA_RPC_FETCH 1
#define REPLICA_FETCH_REQUEST BRPC_FETCH_REQUEST
#define REPLICA_RPC_MEMBERS 2
#define REPLICA_MEMBERS_REQUEST BRPC_MEMBERS_REQUEST
/* PING body: empty; reply: empty, status 0. Any answer shows the peer
 * broker's process and loop alive (broker.c's peer watch, peerwatch.h);
 * an older broker refuses the method, which shows as much. */
#define REPLICA_RPC_PING 3
/* COMMITS (brpc.h): the commit index of each group named that the
 * answering broker leads, so that a follower's broker knows whether its
 * replicas have caught up (readiness, broker.c). */
#define REPLICA_RPC_COMMITS 4

struct bmetrics;
struct bmetrics_replica;

/* What every replica of a broker shares (all borrowed; outlive replicas). */
struct replica_env {
    uv_loop_t *loop;
    struct rq_mux *mux;
    struct rq_rpc *rpc;
    uint64_t self_id;
    const char *raft_addr;
    const char *data_dir;
    unsigned election_timeout_ms;
    unsigned heartbeat_ms;
    /* Quiescence of idle groups (rq_node_config's quiet_*): fitted to the
     * timing above already. */
    unsigned quiet_ms;
    unsigned quiet_heartbeat_ms;
    unsigned quiet_election_ms;
    unsigned snapshot_threshold;
    /* Byte budgets a replica opens with (0: snapshots by entry count
     * only); the broker moves them as its share of --raft-memory-bytes
     * moves. */
    uint64_t raft_log_memory_bytes;
    uint64_t raft_log_trailing_bytes;
    size_t raft_segment_size;
    uint64_t segment_bytes;
    const struct bmetrics *metrics; /* NULL: no metrics. */
    /* Produces that arrive while others are in flight wait and go
     * together (replica_produce), in groups whose every other member's
     * broker is known to read such entries (@peer_merges, with
     * @peer_data). */
    bool merge_produces;
    bool (*peer_merges)(void *data, uint64_t broker_id);
    void *peer_data;
};

enum replica_state {
    REPLICA_NEW,     /* Described, not open yet ("opening"). */
    REPLICA_OPEN,    /* "ready" or "fetching". */
    REPLICA_FAILED,  /* Could not open; see the log. */
    REPLICA_CLOSING, /* Being closed or removed. */
};

struct replica;

/*
 * Allocates a replica in state NEW for @d (copied). Touches no disk.
 * RQ_NOMEM only.
 */
int replica_new(const struct replica_env *env, const struct replica_desc *d,
                struct replica **out);

/* Writes the descriptor (creating the directory): tmp file, fsync, rename,
 * fsync of the directory. RQ_IO with @why. */
int replica_save(struct replica *r, char *why, size_t whyn);

/*
 * For a NEW replica about to be rebuilt empty in the directory of one that
 * could not be opened: moves the old replica's files aside, under
 *
 *     DATA/quarantine/<group_id>-<unix seconds>[-n]/   raft/, log/ and the
 *                                                      old replica.json
 *
 * and writes this replica's descriptor in their place. Nothing is deleted.
 * The descriptor is written before the Raft directory moves, so a crash
 * part way leaves either the old files (which fail again) or an empty
 * replica with this descriptor. Fills @moved_to with the quarantine
 * directory. RQ_IO with @why, and the replica is FAILED (never opened
 * over files half moved).
 */
int replica_set_aside(struct replica *r, char *moved_to, size_t moved_ton,
                      char *why, size_t whyn);

/*
 * Opens the partition log and the Raft node, bootstraps the group if the
 * descriptor says so (a no-op on existing data) and starts the node. Blocks
 * the loop (~4 ms with libraft 0.22.1). On failure the replica is FAILED and
 * must still be closed.
 */
int replica_open(struct replica *r, char *why, size_t whyn);

/*
 * Closes everything: waiters end with RQ_SHUTDOWN, pending produces with
 * RQ_SHUTDOWN (from rq_node_close), a pending transfer with RQ_SHUTDOWN.
 * If @remove, deletes the replica's directory afterwards. Frees @r, then
 * calls @cb.
 */
void replica_close(struct replica *r, bool remove,
                   void (*cb)(void *data, uint64_t group_id, int status),
                   void *data);

const struct replica_desc *replica_desc(const struct replica *r);
enum replica_state replica_state(const struct replica *r);
/* The partition of an OPEN replica (borrowed), else NULL. */
struct partition *replica_partition(struct replica *r);

struct replica_status {
    const char *state;        /* "opening", "ready", "fetching", "removed",
                                 "failed" or "closing". */
    struct rq_node_info node; /* Zeroed unless open. */
    uint64_t first_offset;
    uint64_t next_offset;
    unsigned waiters; /* Reads parked or confirming here. */
};
void replica_status(const struct replica *r, struct replica_status *out);

/* true if this replica is the ready leader of its group. */
bool replica_ready_leader(const struct replica *r);
/* The leader's member entry if one is known and it is not this broker. */
const struct replica_member *replica_leader(const struct replica *r);
/* Broker @broker_id, which this replica follows as its leader, answers
 * nothing: stand for election now (rq_node_leader_lost) rather than after
 * the election timeout. true if this replica followed it. */
bool replica_leader_lost(struct replica *r, uint64_t broker_id);

/* Whether the group's log here still holds a merged produce entry past
 * the last snapshot: a member added now could be sent one while it
 * catches up. */
bool replica_holds_merged(const struct replica *r);

/* ---- Data plane ---- */

/*
 * Proposes one batch: @entry is a partition entry built in place
 * (partition_entry_alloc) with its records written. RQ_NOTLEADER (not the
 * ready leader), RQ_SHUTDOWN, RQ_NOMEM, and the caller still owns
 * entry->base; otherwise 0, the entry is raft's, and @cb runs once after
 * apply with the batch's first offset (or PARTITION_STALE), or with an
 * error.
 */
int replica_produce(struct replica *r, const struct raft_buffer *entry,
                    rq_node_done_cb cb, void *data);

/*
 * A read of the group's committed records, on its ready leader alone. It
 * waits until @offset is readable here (below the local next offset) or
 * @ms pass (none when @ms is 0), then confirms the leadership with a
 * barrier issued after that moment (one for every read waiting then), and
 * calls @cb with 0 once the barrier is applied: everything acknowledged
 * anywhere in the group before the read arrived is then applied here, and
 * nothing applied here can be replaced, so the caller answers from the
 * partition as it stands. @cb gets RQ_NOTLEADER if leadership was lost (or
 * a transfer began) first, RQ_SHUTDOWN on close, another RQ_* code if the
 * barrier failed. Errors (@cb never called): RQ_NOTLEADER (not the ready
 * leader, or a transfer is under way), RQ_NOMEM.
 */
struct replica_waiter;
typedef void (*replica_wait_cb)(void *data, int status);
int replica_read(struct replica *r, uint64_t offset, unsigned ms,
                 replica_wait_cb cb, void *data, struct replica_waiter **out);
/* Stops waiting; @cb will not be called. */
void replica_wait_cancel(struct replica_waiter *w);

/* ---- Leadership ---- */

/* The preferred leader: the descriptor's preferred_leader when one was
 * given, else voters[group_id % n_voters] (replica_voters()). A leader
 * hands over to it only while it is a voter. */
uint64_t replica_preferred(const struct replica *r);

/*
 * Names broker @id (positive; need not be a member yet) the preferred
 * leader and records it in replica.json. 0, or RQ_IO or RQ_SHUTDOWN (the
 * replica is closing) with @why; nothing changed then.
 */
int replica_set_preferred(struct replica *r, uint64_t id, char *why,
                          size_t whyn);

/*
 * Hands leadership to member @to (0: any up-to-date voter). RQ_NOTLEADER
 * if not the ready leader, RQ_EXISTS if a transfer is under way, RQ_INVALID
 * if @to is not another member, RQ_NOTFOUND if there is no other voter.
 * Otherwise 0 and @cb runs once: 0 if leadership moved as asked,
 * RQ_TIMEOUT if it did not, RQ_SHUTDOWN on close.
 */
int replica_transfer(struct replica *r, uint64_t to,
                     void (*cb)(void *data, int status), void *data);

/* ---- Membership ---- */

/*
 * The voters of the group's committed configuration, in its order (the
 * descriptor's members while the replica is not open or has no
 * configuration yet); at most @max of them. Returns how many.
 */
size_t replica_voters(const struct replica *r, uint64_t *out, size_t max);

/*
 * On the group's ready leader: makes broker @m a voter. Unless it is in the
 * configuration already, it is added as a non-voter (raft_add); then it is
 * promoted (raft_assign), which libraft 0.22.1 submits only once the member
 * has caught up with the leader's log. @cb runs once: 0 when the
 * configuration with @m voting is committed; RQ_TIMEOUT after @timeout_ms
 * (the change goes on); RQ_CONNECT if libraft gave up catching the member
 * up (unreachable, or too slow); RQ_NOTLEADER if leadership was lost;
 * RQ_SHUTDOWN on close; RQ_RAFT otherwise.
 *
 * Returns 0 with *@done set (and @cb not called) if @m votes already in the
 * committed configuration. Errors (@cb not called): RQ_NOTLEADER (not the
 * ready leader), RQ_EXISTS (another membership change or a leadership
 * transfer is under way), RQ_INVALID with @why (@m's id or address is a
 * member's with another address or id, or the group has
 * REPLICA_MEMBERS_MAX members), RQ_RAFT.
 */
typedef void (*replica_change_cb)(void *data, int status);
int replica_member_add(struct replica *r, const struct replica_member *m,
                       unsigned timeout_ms, replica_change_cb cb, void *data,
                       bool *done, char *why, size_t whyn);

/*
 * On the group's ready leader: removes member @id (raft_remove); @cb runs
 * once the configuration without it is committed, with the same statuses
 * as above. Returns 0 with *@done set if @id is not in the committed
 * configuration. Errors: RQ_NOTLEADER, RQ_EXISTS, RQ_INVALID with @why if
 * fewer than 2 voters would be left, RQ_RAFT.
 */
int replica_member_remove(struct replica *r, uint64_t id, unsigned timeout_ms,
                          replica_change_cb cb, void *data, bool *done,
                          char *why, size_t whyn);

/* The caller of a membership change under way no longer wants its
 * callback (its client went away); the change itself goes on. */
void replica_member_forget(struct replica *r);

/* Serves a peer's MEMBERS call (see REPLICA_RPC_MEMBERS): fills @out;
 * returns the RPC status (0, RQ_NOTFOUND, RQ_NOQUORUM). */
int replica_serve_members(struct replica *r, struct rq_buf *out);

/* ---- Raft log memory (logbudget.h) ---- */

/* What the replica's Raft log holds in memory; false (and @out zeroed)
 * unless the replica is open. */
bool replica_log_memory(const struct replica *r,
                        struct rq_node_log_memory *out);

/* Gives an open replica new byte budgets (rq_node_set_log_budget); a
 * replica opened later takes them from its env. No-op otherwise. */
void replica_set_log_budget(struct replica *r, uint64_t memory_bytes,
                            uint64_t trailing_bytes);

/* ---- Metrics (bmetrics.h) ---- */

/* The replica's children: taken when it opens, given back when it is
 * freed (all NULL before it opens or without metrics). */
struct bmetrics_replica *replica_metrics(struct replica *r);

/* Sets an open replica's Raft and partition gauges and mirrored counters
 * from its node and log; for the broker's collect callback. */
void replica_metrics_collect(struct replica *r);

/* ---- Maintenance, from the broker's timers ---- */

/* Starts catching up if there is a gap, follows the configuration (asking
 * peers what it cannot know alone), and hands leadership to the preferred
 * member when @balance and this is a ready leader that is not. */
void replica_tick(struct replica *r, bool balance);

/* Applies the retention limits (0 turns one off). */
void replica_retain(struct replica *r, uint64_t max_bytes, uint64_t max_age_ms,
                    uint64_t now_ms);

/* Serves a peer's FETCH (body as drawn above): fills @out; returns the RPC
 * status (0, RQ_MALFORMED, RQ_NOTFOUND). */
int replica_serve_fetch(struct replica *r, uint64_t offset, uint32_t max_bytes,
                        struct rq_buf *out);

#endif /* REPLICA_H */

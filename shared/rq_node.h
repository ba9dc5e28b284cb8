/*
 * A Raft server: one struct raft with its raft_uv disk I/O, a transport and
 * a state machine, and the guards libraft 0.22.1 needs:
 *
 * - Entries are framed and padded to 8 bytes (rq_entry.h) by rq_node_apply()
 *   and unframed before the state machine sees them.
 * - A new leader appends a no-op of its own in 0.22.1 only when its log
 *   holds entries past its commit index, and tells no caller when it is
 *   applied, so after every election the node issues a barrier and reports
 *   itself ready only once that barrier has been applied in the current
 *   term. rq_node_apply() and rq_node_barrier() refuse with RQ_NOTLEADER
 *   until then.
 * - There is no state-change callback in libraft's callback API: a timer
 *   polls role, leader, term, readiness and the committed configuration's
 *   index and calls the change callback when any moved.
 * - Segments are small (rq_node_config.segment_size) so many groups do not
 *   preallocate gigabytes.
 * - raft_bootstrap() on existing data (RAFT_CANTBOOTSTRAP) is "already done".
 * - A write raft_uv fails (a term, a vote, entries, a truncation, a snapshot)
 *   marks the node stopped (RQ_ROLE_UNAVAILABLE): 0.22.1's callback layer
 *   would go on without it. The disk reserve check and raft_uv's recovery by
 *   dropping a corrupt segment are off, and an open segment cut short is
 *   padded back before the start (rq_node.c).
 *
 * One node per Raft group; a process may run many on one loop.
 */
#ifndef RQ_NODE_H
#define RQ_NODE_H

#include <raft.h>
#include <raft/uv.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <uv.h>

#include "rq_config.h"
#include "rq_fsm.h"

struct rq_node_config {
    uint64_t id;
    const char *address;           /* This server's Raft address (borrowed). */
    const char *dir;               /* Data directory, created if missing. */
    unsigned election_timeout_ms;  /* 0: 1000. */
    unsigned heartbeat_timeout_ms; /* 0: 100. */
    unsigned snapshot_threshold;   /* 0: 1024. */
    unsigned snapshot_trailing;    /* 0: 128. */
    /* How long a leader waits for an InstallSnapshot to be acknowledged
     * before sending it again; 0: 5000 (libraft's own default is 30 s). A
     * follower taking a snapshot of its own holds the leader's until its
     * own is written (0.15 dropped it unanswered, so the follower stayed
     * behind that long), so this now matters only for an InstallSnapshot
     * lost with its connection. */
    unsigned install_snapshot_timeout_ms;
    /* Snapshots by bytes as well (rq_logmem.h): once about
     * log_memory_bytes of entries are in the log since the last snapshot,
     * keeping about trailing_bytes of entries before it; the two entry
     * counts above stay the upper bounds. 0: by entry counts only. */
    uint64_t log_memory_bytes;
    uint64_t trailing_bytes;
    size_t segment_size; /* 0: 1 MiB. */
    unsigned poll_ms;    /* 0: 50. */
    bool pre_vote;
    /* Quiescence of an idle group (rq_quiet.h): once nothing has moved for
     * quiet_after_ms, heartbeats every quiet_heartbeat_ms and an election
     * timeout of quiet_election_ms (both checked by rq_quiet_config_check
     * against the ordinary timing). quiet_after_ms 0: never quiet. */
    unsigned quiet_after_ms;
    unsigned quiet_heartbeat_ms;
    unsigned quiet_election_ms;
    /* Names the node in log lines (copied); NULL: dir's last component. */
    const char *label;
};

enum rq_role {
    RQ_ROLE_UNAVAILABLE,
    RQ_ROLE_FOLLOWER,
    RQ_ROLE_CANDIDATE,
    RQ_ROLE_LEADER,
};

struct rq_node_info {
    enum rq_role role;
    uint64_t id;
    uint64_t leader_id; /* 0 if unknown. */
    char leader_address[RQ_ADDR_MAX];
    uint64_t term;
    uint64_t commit;
    uint64_t applied;
    uint64_t last_index;
    bool ready; /* Leader with its current-term barrier applied. */
    /* The membership configuration: the index of the last committed one
     * (rq_node_configuration() returns it unless @conf_pending), and
     * whether a newer one is appended but not committed yet. */
    uint64_t conf_index;
    bool conf_pending;
    /* Running at the quiet timing of an idle group (rq_quiet.h), as of the
     * last change poll. */
    bool quiet;
};

struct rq_node;
typedef void (*rq_node_change_cb)(void *data, const struct rq_node_info *info);
/* 0 when the entry (or barrier) is committed and applied, with the state
 * machine's result for an entry (0 for a barrier); RQ_NOTLEADER if
 * leadership was lost first; RQ_SHUTDOWN on close (called from inside
 * rq_node_close()); RQ_RAFT otherwise. */
typedef void (*rq_node_done_cb)(void *data, int status, uint64_t result);

/*
 * Creates the node: raft_uv on cfg->dir over transport @t (borrowed; it
 * must outlive the node), raft_init and tuning. Returns 0 or an RQ_* code
 * with @why.
 */
int rq_node_new(uv_loop_t *loop, struct raft_uv_transport *t,
                const struct rq_node_config *cfg, const struct rq_fsm_ops *ops,
                void *fsm_data, struct rq_node **out, char *why, size_t whyn);

/* Bootstraps a fresh log with @peers as voters; 0 if already bootstrapped. */
int rq_node_bootstrap(struct rq_node *n, const struct rq_peer *peers,
                      size_t n_peers, char *why, size_t whyn);

/* Loads the log (synchronously) and starts ticking. On failure (RQ_RAFT
 * with @why, or RQ_INVALID if already started) the node must still be
 * closed with rq_node_close(). */
int rq_node_start(struct rq_node *n, char *why, size_t whyn);

/* Whether the Raft directory @dir holds a node's state (raft_uv's
 * metadata files): false for a new or wiped one. */
bool rq_node_has_state(const char *dir);

void rq_node_on_change(struct rq_node *n, rq_node_change_cb cb, void *data);

bool rq_node_ready(const struct rq_node *n);
void rq_node_info(const struct rq_node *n, struct rq_node_info *out);

/* Counts since the node was created, for metrics. */
struct rq_node_counters {
    /* A leader became known in a term after the last one counted, or
     * another leader did (as the change poll sees it: changes quicker
     * than a poll are missed). */
    uint64_t leader_changes;
    uint64_t snapshots;     /* Taken by this node's state machine. */
    uint64_t restores;      /* Installed from a leader or loaded at start. */
    uint64_t messages_sent; /* Raft messages handed to the transport. */
};
void rq_node_counters(const struct rq_node *n, struct rq_node_counters *out);
const char *rq_role_name(enum rq_role role);

/*
 * A node whose write raft_uv failed (a term, a vote, entries, a truncation, a
 * snapshot) is stopped for good (role RQ_ROLE_UNAVAILABLE), as libraft 0.15
 * stopped a group itself; 0.22.1 would go on without the write. For a process
 * with one group, only a restart reloads it: if @info says the group stopped,
 * this logs a fatal line, tells standard error that @prog stops, and exits
 * with status 1.
 */
void rq_node_exit_if_stopped(const struct rq_node_info *info, const char *prog);

/*
 * Proposes @payload (copied). Returns RQ_NOTLEADER if not ready, RQ_SHUTDOWN
 * once closing, RQ_TOOBIG, RQ_NOMEM, RQ_RAFT; otherwise 0 and @cb runs
 * exactly once, after apply.
 */
int rq_node_apply(struct rq_node *n, const void *payload, size_t len,
                  rq_node_done_cb cb, void *data);

/*
 * Proposes @entry, a framed buffer from rq_entry_alloc() with its payload
 * written, without copying it. Same returns as rq_node_apply(); on 0 raft
 * owns entry->base, on an error the caller still does.
 */
int rq_node_apply_entry(struct rq_node *n, const struct raft_buffer *entry,
                        rq_node_done_cb cb, void *data);

/* A barrier: @cb runs once every entry before it is applied, which also
 * proves leadership in this term (linearizable reads). Same returns. */
int rq_node_barrier(struct rq_node *n, rq_node_done_cb cb, void *data);

/* Returns a quiet group to its ordinary timing at once, before the caller
 * asks raft for something that sends messages (a transfer, a membership
 * change); proposals and barriers made here wake it themselves. */
void rq_node_wake(struct rq_node *n);

/* Stands for election at the next tick, and at every tick after it, until
 * a leader is known or an election timeout has passed (the election
 * timeout is short meanwhile; a leader's is always the configured one). For a
 * group's preferred leader as it opens: a new group has a leader within a tick
 * or two rather than after an election timeout, and a group that restarted as a
 * whole elects the leader it is meant to have. Under pre-vote it disturbs no
 * one: a follower that knows a leader refuses the vote, and the node follows
 * the leader that answers. No effect on a node that is not started, closing, or
 * already knows a leader. */
void rq_node_campaign(struct rq_node *n);

/* The same for a follower whose leader @leader_id is known to be gone (its
 * process unreachable, as the broker's peer watch finds), which would
 * otherwise wait out its election timeout, the quiet one of an idle group
 * included. A no-op unless the node follows @leader_id. Harmless if the
 * leader is in fact alive: under pre-vote the members that hear it refuse,
 * and the node follows it again at its next heartbeat. */
void rq_node_leader_lost(struct rq_node *n, uint64_t leader_id);

/* ---- Raft log memory ---- */

/* What libraft holds in memory of a node's log. */
struct rq_node_log_memory {
    uint64_t entries;        /* Entries in memory (applied or not). */
    uint64_t average;        /* Average bytes an entry takes, framing and
                                libraft's own overhead included; 0 unless
                                snapshots are sized by bytes and an entry
                                has been applied. */
    uint64_t bytes;          /* About entries x average. */
    uint64_t snapshot_index; /* Last index of the last snapshot; 0: none. */
    unsigned threshold;      /* libraft's snapshot threshold now. */
    unsigned trailing;       /* libraft's trailing count now. */
};

void rq_node_log_memory(const struct rq_node *n,
                        struct rq_node_log_memory *out);

/*
 * Replaces the byte budgets of a node whose snapshots are sized by bytes
 * (cfg->log_memory_bytes non-zero; RQ_INVALID otherwise): the counts follow
 * at once, and libraft checks them at its next tick even when no entry
 * comes, so a node idle over its new budget snapshots by itself. 0 or
 * RQ_INVALID.
 */
int rq_node_set_log_budget(struct rq_node *n, uint64_t memory_bytes,
                           uint64_t trailing_bytes);

/* The raft instance, for membership changes and leadership transfer. */
struct raft *rq_node_raft(struct rq_node *n);

/*
 * The newest membership configuration libraft holds (never NULL; no
 * servers before the first one is known). @index (optional) gets the index
 * of the last committed configuration, @pending (optional) whether the one
 * returned is newer and not committed yet. Valid until the next turn of the
 * loop.
 */
const struct raft_configuration *rq_node_configuration(const struct rq_node *n,
                                                       uint64_t *index,
                                                       bool *pending);

/*
 * Closes raft and raft_uv; pending callbacks get RQ_SHUTDOWN. Frees the
 * node, then calls @cb; the transport may be freed from @cb on.
 */
void rq_node_close(struct rq_node *n, void (*cb)(void *data), void *data);

/*
 * Releases the memory of every closed node not yet released (a closed node
 * is released at the next rq_node_new() or rq_node_close(), outside
 * libraft's close callback; rq_node.c explains); call this at exit, once
 * the loop has stopped.
 */
void rq_node_release_closed(void);

#endif /* RQ_NODE_H */

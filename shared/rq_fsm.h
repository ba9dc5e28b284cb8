/*
 * A state machine over unframed entry payloads, and the raft_fsm adapter
 * that feeds it from the log. rq_node uses the adapter internally; tests on
 * raft_fixture use it directly so they run the exact production path.
 */
#ifndef RQ_FSM_H
#define RQ_FSM_H

#include <raft.h>
#include <stddef.h>
#include <stdint.h>

struct rq_fsm_ops {
    /* Applies the committed entry at @index; deterministic. *result (0
     * unless set) reaches the proposer's callback on the leader: the
     * broker returns a batch's first offset through it. Every outcome
     * the state machine decides (a refusal, a malformed entry) returns 0.
     * Only a transient failure (RQ_NOMEM, or RQ_IO writing local state)
     * may be returned, with nothing changed: libraft (0.22.1) then stops
     * applying and retries the same entry the next time something
     * commits, so nothing is skipped. */
    int (*apply)(void *data, uint64_t index, const uint8_t *payload,
                 size_t len, uint64_t *result);
    /* The whole state as one raft_malloc'd buffer (raft frees it). */
    int (*snapshot)(void *data, struct raft_buffer *out);
    /* Replaces the whole state from a snapshot (bytes borrowed). */
    int (*restore)(void *data, const uint8_t *buf, size_t len);
    /*
     * Optional, all three or none: durability work a snapshot needs before
     * Raft may store it and drop the entries it stands for, done off the
     * loop. Right after snapshot() succeeds, the node takes the job that
     * snapshot() left (sync_take, on the loop; NULL: none, the snapshot is
     * stored at once), runs it in a worker thread (sync_run: it must touch
     * nothing the loop uses; 0 or an RQ_* code) and hands its outcome back
     * on the loop (sync_done, which frees the job). Only then is the
     * snapshot stored; if the job failed it never is, and the node stops
     * as after any failed write of its log.
     */
    void *(*sync_take)(void *data);
    int (*sync_run)(void *job);
    void (*sync_done)(void *data, void *job, int rv);
};

/*
 * A raft_fsm (version 1) that unframes entries (rq_entry.h) and calls @ops.
 * Bind it to its raft instance after raft_init so apply knows the index of
 * the entry (raft's last_applied + 1 while an entry is being applied).
 */
struct rq_fsm_adapter {
    struct raft_fsm fsm; /* First member: raft hands back &fsm. */
    const struct rq_fsm_ops *ops;
    void *data;
    struct raft *raft; /* Borrowed. */
};

void rq_fsm_adapter_init(struct rq_fsm_adapter *a, const struct rq_fsm_ops *ops,
                         void *data);
void rq_fsm_adapter_bind(struct rq_fsm_adapter *a, struct raft *r);

#endif /* RQ_FSM_H */

/*
 * The raft_fsm adapter. Version 1 of the interface: raft owns the snapshot
 * buffers it is given and passes restore() a buffer we must free.
 */
#include "rq_fsm.h"

#include <stdlib.h>

#include "rq_entry.h"
#include "rq_err.h"
#include "rq_log.h"

#define LOG_TAG "rq_fsm"

static int adapter_apply(struct raft_fsm *fsm, const struct raft_buffer *buf,
                         void **result)
{
    struct rq_fsm_adapter *a = (struct rq_fsm_adapter *)fsm;
    const uint8_t *payload;
    size_t len;
    uint64_t index = a->raft != NULL ? raft_last_applied(a->raft) + 1 : 0;

    *result = NULL;
    if (rq_entry_decode(buf, &payload, &len) != 0) {
        /* Every replica sees the same bytes and skips them alike. */
        rq_log(RQ_ERROR, "entry %llu: bad framing (%zu bytes), skipped",
               (unsigned long long)index, buf->len);
        return 0;
    }
    uint64_t value = 0;
    int rv = a->ops->apply(a->data, index, payload, len, &value);
    if (rv != 0) {
        rq_log(RQ_WARN, "entry %llu: apply failed (%s), will retry",
               (unsigned long long)index, rq_strerror(rv));
        return RAFT_NOMEM;
    }
    /* The result travels as a pointer-sized word, never dereferenced, so
     * followers (whose results nobody reads) allocate nothing. */
    *result = (void *)(uintptr_t)value;
    return 0;
}

static int adapter_snapshot(struct raft_fsm *fsm, struct raft_buffer *bufs[],
                            unsigned *n_bufs)
{
    struct rq_fsm_adapter *a = (struct rq_fsm_adapter *)fsm;
    struct raft_buffer *b = raft_malloc(sizeof *b);
    if (b == NULL) {
        return RAFT_NOMEM; /* UNTESTED: ENOMEM only. */
    }
    if (a->ops->snapshot(a->data, b) != 0) {
        raft_free(b);
        return RAFT_NOMEM;
    }
    *bufs = b;
    *n_bufs = 1;
    return 0;
}

static int adapter_restore(struct raft_fsm *fsm, struct raft_buffer *buf)
{
    struct rq_fsm_adapter *a = (struct rq_fsm_adapter *)fsm;
    int rv = a->ops->restore(a->data, buf->base, buf->len);
    if (rv != 0) {
        rq_log(RQ_ERROR, "snapshot restore failed: %s", rq_strerror(rv));
        return RAFT_CORRUPT;
    }
    raft_free(buf->base);
    return 0;
}

void rq_fsm_adapter_init(struct rq_fsm_adapter *a, const struct rq_fsm_ops *ops,
                         void *data)
{
    a->fsm.version = 1;
    a->fsm.data = a;
    a->fsm.apply = adapter_apply;
    a->fsm.snapshot = adapter_snapshot;
    a->fsm.restore = adapter_restore;
    a->ops = ops;
    a->data = data;
    a->raft = NULL;
}

void rq_fsm_adapter_bind(struct rq_fsm_adapter *a, struct raft *r)
{
    a->raft = r;
}

/*
 * The ledger behind Raft: the rq_fsm_ops that rq_fsm_adapter calls with
 * unframed entry payloads. Every replica runs the same code on the same
 * bytes, so whatever it decides (including skipping a malformed entry) it
 * decides alike everywhere. The callers learn each write's outcome from
 * atm_ledger_result() once their entry has been applied.
 */
#include "atm_fsm.h"

#include <string.h>

#include "rq_err.h"
#include "rq_log.h"
#include "rq_wire.h"

#define LOG_TAG "atm_fsm"

static int fsm_apply(void *data, uint64_t index, const uint8_t *payload,
                     size_t len, uint64_t *result)
{
    (void)result; /* The proposer reads the outcome from the ledger. */
    struct atm_ledger *l = data;
    struct atm_write w;
    struct atm_result r;

    if (atm_write_decode(payload, len, &w) != 0) {
        rq_log(RQ_ERROR, "entry %llu: malformed atm write (%zu bytes), skipped",
               (unsigned long long)index, len);
        return 0;
    }
    /* 0 whatever the outcome, or RQ_NOMEM with nothing changed. */
    return atm_ledger_apply(l, &w, &r);
}

static int fsm_snapshot(void *data, struct raft_buffer *out)
{
    const struct atm_ledger *l = data;
    struct rq_buf b;
    int rv;

    rq_buf_init(&b);
    rv = atm_ledger_encode(l, &b);
    if (rv != 0) {
        goto err_after_buf; /* UNTESTED: ENOMEM only. */
    }
    out->base = raft_malloc(b.len);
    if (out->base == NULL) {
        rv = RQ_NOMEM; /* UNTESTED: ENOMEM only. */
        goto err_after_buf;
    }
    memcpy(out->base, b.base, b.len);
    out->len = b.len;
    rq_buf_close(&b);
    return 0;

err_after_buf:
    rq_buf_close(&b);
    return rv;
}

static int fsm_restore(void *data, const uint8_t *buf, size_t len)
{
    struct atm_ledger *l = data;
    int rv = atm_ledger_decode(l, buf, len);
    if (rv != 0) {
        rq_log(RQ_ERROR, "snapshot of %zu bytes refused: %s", len,
               rq_strerror(rv));
    }
    return rv;
}

const struct rq_fsm_ops atm_fsm_ops = {
    .apply = fsm_apply,
    .snapshot = fsm_snapshot,
    .restore = fsm_restore,
};

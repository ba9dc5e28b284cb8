/*
 * Fuzzes what the ATM's Raft group decodes (atm/atm_ledger.h,
 * atm/atm_fsm.h). The first byte picks: a write entry (atm_write_decode,
 * and the state machine's apply), a result (atm_result_decode), or a
 * ledger snapshot (atm_ledger_decode, and the state machine's restore).
 * Whatever decodes must re-encode to the same bytes (all three encodings
 * are canonical), and a restored ledger must survive applying writes.
 */
#include "atm/atm_fsm.h"
#include "atm/atm_ledger.h"
#include "fuzz.h"
#include "rq_err.h"

static void fuzz_write(struct atm_ledger *l, const uint8_t *p, size_t len)
{
    struct atm_write w;
    struct atm_result r;
    struct rq_buf out;
    uint64_t result = 0;

    int rv = atm_write_decode(p, len, &w);
    FUZZ_CHECK(rv == 0 || rv == RQ_MALFORMED);
    if (rv == 0) {
        FUZZ_CHECK(w.amount > 0 && atm_account_valid(w.account));
        rq_buf_init(&out);
        FUZZ_CHECK(atm_write_encode(&w, &out) == 0);
        FUZZ_CHECK(out.len == len && memcmp(out.base, p, len) == 0);
        rq_buf_close(&out);
        FUZZ_CHECK(atm_ledger_apply(l, &w, &r) == 0);
        FUZZ_CHECK(r.balance >= 0 && r.to_balance >= 0);
    }
    FUZZ_CHECK(atm_fsm_ops.apply(l, 1, p, len, &result) == 0);
    FUZZ_CHECK(atm_ledger_total(l) >= 0);
}

static void fuzz_result(const uint8_t *p, size_t len)
{
    struct atm_result r;
    struct rq_buf out;
    int rv = atm_result_decode(p, len, &r);
    FUZZ_CHECK(rv == 0 || rv == RQ_MALFORMED);
    if (rv == 0) {
        rq_buf_init(&out);
        FUZZ_CHECK(atm_result_encode(&r, &out) == 0);
        FUZZ_CHECK(out.len == len && memcmp(out.base, p, len) == 0);
        rq_buf_close(&out);
    }
}

static void fuzz_snapshot(struct atm_ledger *l, const uint8_t *p, size_t len)
{
    struct rq_buf out;
    struct raft_buffer snap;

    int rv = atm_ledger_decode(l, p, len);
    FUZZ_CHECK(rv == 0 || rv == RQ_MALFORMED);
    if (rv != 0) {
        FUZZ_CHECK(atm_ledger_accounts(l) == 0); /* Unchanged: empty. */
        return;
    }
    rq_buf_init(&out);
    FUZZ_CHECK(atm_ledger_encode(l, &out) == 0);
    FUZZ_CHECK(out.len == len && memcmp(out.base, p, len) == 0);
    rq_buf_close(&out);
    FUZZ_CHECK(atm_ledger_total(l) >= 0);

    /* The same through the state machine's restore and snapshot. */
    FUZZ_CHECK(atm_fsm_ops.restore(l, p, len) == 0);
    FUZZ_CHECK(atm_fsm_ops.snapshot(l, &snap) == 0);
    FUZZ_CHECK(snap.len == len && memcmp(snap.base, p, len) == 0);
    raft_free(snap.base);

    /* A restored ledger keeps working. */
    struct atm_write w = {.rid = {1, 1}, .op = ATM_DEPOSIT, .amount = 100};
    struct atm_result r;
    snprintf(w.account, sizeof w.account, "a");
    FUZZ_CHECK(atm_ledger_apply(l, &w, &r) == 0);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    struct atm_ledger *l;
    if (size == 0) {
        return 0;
    }
    FUZZ_CHECK(atm_ledger_new(&l) == 0);
    switch (data[0] % 3) {
        case 0:
            fuzz_write(l, data + 1, size - 1);
            break;
        case 1:
            fuzz_result(data + 1, size - 1);
            break;
        default:
            fuzz_snapshot(l, data + 1, size - 1);
            break;
    }
    atm_ledger_free(l);
    return 0;
}

/*
 * The replicated ledger: accounts and balances, and the memory of which
 * requests were applied. Pure and deterministic: every replica applying the
 * same operations in the same order holds the same bytes.
 *
 * Each write carries a request id (origin, seq). An origin is one ATM
 * process incarnation (a random 64-bit value drawn at start); it submits
 * one write at a time with increasing seq. The ledger remembers, per
 * origin, the last seq applied and its result, so a retry of that request
 * (after a leader change or a lost reply) returns the same result without
 * applying twice, and an older seq is refused as stale. At most
 * ATM_ORIGINS_MAX origins are remembered; the one least recently used (by
 * the ledger's own operation counter, so eviction is deterministic) goes
 * first.
 *
 * Balances are int64 cents, never negative. A withdrawal or transfer beyond
 * the balance, or a deposit that would overflow, is refused and changes
 * nothing (except that the refusal is remembered for the request id).
 */
#ifndef ATM_LEDGER_H
#define ATM_LEDGER_H

#include <stddef.h>
#include <stdint.h>

#include "atm_cmd.h"
#include "atm_err.h"
#include "rq_wire.h"

#define ATM_ORIGINS_MAX 4096

struct atm_rid {
    uint64_t origin;
    uint64_t seq;
};

/* A write as it travels in the Raft log and in forwarding RPCs. */
struct atm_write {
    struct atm_rid rid;
    enum atm_op op; /* ATM_DEPOSIT, ATM_WITHDRAW or ATM_TRANSFER. */
    char account[ATM_ACCOUNT_MAX];
    char to[ATM_ACCOUNT_MAX];
    int64_t amount;
};

struct atm_result {
    int status; /* 0, ATM_INSUFFICIENT, ATM_OVERFLOW, RQ_INVALID (stale). */
    int64_t balance;    /* account's balance after (or at refusal). */
    int64_t to_balance; /* transfer: destination's balance after. */
};

/*
 * Encoding of a write (and of a result), little-endian:
 *   write:  origin:u64 | seq:u64 | op:u8 | amount:u64 | account:blob | to:blob
 *   result: status:u32 | balance:u64 | to_balance:u64
 */
int atm_write_encode(const struct atm_write *w, struct rq_buf *out);
/* RQ_MALFORMED on any bad byte: unknown op, bad names, amount <= 0, ... */
int atm_write_decode(const uint8_t *p, size_t len, struct atm_write *out);
int atm_result_encode(const struct atm_result *r, struct rq_buf *out);
int atm_result_decode(const uint8_t *p, size_t len, struct atm_result *out);

struct atm_ledger;

int atm_ledger_new(struct atm_ledger **out);
void atm_ledger_free(struct atm_ledger *l);

/*
 * Applies @w, or returns the remembered result of its request id. Fills
 * @out and returns 0 (the entry is consumed, whatever its outcome): a stale
 * seq or an invalid write is answered RQ_INVALID, changes nothing and is not
 * remembered. Returns RQ_NOMEM only if memory ran out before anything
 * changed, so the same write may be applied again later.
 */
int atm_ledger_apply(struct atm_ledger *l, const struct atm_write *w,
                     struct atm_result *out);

/* The remembered result of @rid: 0, or RQ_NOTFOUND if it is not the last
 * applied request of its origin. */
int atm_ledger_result(const struct atm_ledger *l, struct atm_rid rid,
                      struct atm_result *out);

/* 0 for an account never seen. */
int64_t atm_ledger_balance(const struct atm_ledger *l, const char *account);

/* Sum of all balances (INT64_MAX if the sum is larger), and the number of
 * accounts. */
int64_t atm_ledger_total(const struct atm_ledger *l);
size_t atm_ledger_accounts(const struct atm_ledger *l);

/*
 * Snapshot: the whole ledger, canonical (accounts sorted by name, origins
 * by id) so equal ledgers encode to equal bytes:
 *   version:u32 | ops:u64 | n_accounts:u32 | n x (name:blob | cents:u64)
 *   | n_origins:u32 | n x (origin:u64 | seq:u64 | last_used:u64 | result)
 */
int atm_ledger_encode(const struct atm_ledger *l, struct rq_buf *out);

/* Replaces @l's contents; on error @l is unchanged. RQ_MALFORMED. */
int atm_ledger_decode(struct atm_ledger *l, const uint8_t *p, size_t len);

#endif /* ATM_LEDGER_H */

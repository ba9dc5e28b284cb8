/*
 * Several manager commands proposed as one Raft entry, and its codec.
 *
 * Under load a leader takes many metadata writes in one turn of its loop
 * (offset commits, consume advances, registrations). Each as its own entry
 * costs an AppendEntries message to every follower, a disk write on each
 * and an answer back; mcore therefore proposes what one turn brought as
 * one batch entry, and every manager applies its commands one after
 * another, in order, as if they had been separate entries: each is
 * refused or applied on its own (a refusal undoes that command alone),
 * and each has its own result, which reaches its own proposer.
 *
 * The entry shares the command header (mcmd.h), so that a manager that
 * does not know batches skips one as an unknown command type rather than
 * misreading it. Little-endian:
 *
 *     version:u8 (MCMD_VERSION) | type:u8 (MBATCH_TYPE) | now_ms:u64
 *     | nonce:u64 | n:u32 | n x (len:u32 | an encoded command)
 *
 * The nonce names the batch to the manager that proposed it (mcore): the
 * results of an applied batch are handed to it by nonce, and a manager
 * that proposed no batch with that nonce ignores them. A command inside a
 * batch is never itself a batch. Pure: no I/O.
 */
#ifndef MBATCH_H
#define MBATCH_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "rq_wire.h"

/* The command type byte of a batch (after every type of mcmd.h). */
#define MBATCH_TYPE 12              /* mcmd.h keeps it free: MCMD_TYPE_BATCH */
#define MBATCH_HEADER 22            /* version, type, now_ms, nonce, n */
#define MBATCH_MAX_N 256            /* commands in one batch */
#define MBATCH_MAX_BYTES (1u << 20) /* of commands in one batch */

/* Whether @len bytes at @buf start like a batch (its header's two bytes);
 * mbatch_decode() says whether the rest is one. */
bool mbatch_is(const uint8_t *buf, size_t len);

/* Starts a batch in @out (rq_buf_init'd by the caller): the header with
 * n = 0. */
void mbatch_begin(struct rq_buf *out, uint64_t now_ms, uint64_t nonce);

/* Appends one encoded command (@len bytes, not a batch) and counts it in
 * the header. */
void mbatch_add(struct rq_buf *out, const uint8_t *cmd, size_t len);

/* A decoded batch: the commands point into the decoded buffer. */
struct mbatch {
    uint64_t now_ms;
    uint64_t nonce;
    uint32_t n;
    struct rq_cursor rest; /* The n commands, each len:u32 | bytes. */
};

/*
 * Reads the header of the batch at @buf (@len bytes, borrowed). Returns 0
 * or RQ_MALFORMED with @why: not a batch, no commands, more than
 * MBATCH_MAX_N, or commands that do not fill the entry exactly (each is
 * checked here for its length and that it is not a batch, not for what it
 * says: that is mcmd_decode's).
 */
int mbatch_decode(const uint8_t *buf, size_t len, struct mbatch *out, char *why,
                  size_t whyn);

/* The next command of @b (borrowed from the decoded buffer). false once
 * all n have been read. */
bool mbatch_next(struct mbatch *b, const uint8_t **cmd, size_t *len);

#endif /* MBATCH_H */

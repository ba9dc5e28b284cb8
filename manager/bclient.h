/*
 * Calls from a manager to the brokers' data plane (broker/README.md): a
 * produce sent to a partition's leader, and a read from its leader.
 *
 * A produce goes to the leader the routing cache names, else to the
 * partition's preferred leader. A 421 names the leader: the call goes
 * there at once. A 503 (no leader yet, a transfer under way) or a broker
 * that cannot be reached is retried, on the next replica, with a short
 * pause, until PRODUCE_DEADLINE_MS have passed; then the call ends with
 * 503. Each produce carries a producer id and sequence of its own, the
 * same on every retry, so the broker appends it once whatever the retries.
 * Every other answer (200, 4xx) ends the call with the broker's status.
 *
 * A read asks the leader the routing cache names. Brokers answer reads on
 * a group's confirmed leader alone (broker/README.md); another replica
 * answers 421 naming the leader, or 503. A 421 is followed; a 503, a
 * failure, or a 200 that is not final (policy_read_final: not from the
 * confirmed leader, or no records below the high watermark) passes on to
 * the next replica; once every replica has been asked, all of them again
 * after a short pause, until 5 s (plus the read's own wait)
 * have passed, then 503. A read is never answered from anything but the
 * confirmed leader, so it holds every record acknowledged before it and
 * never says "nothing there" where records were acknowledged. With no
 * leader known, a read asks every replica at once and takes the first
 * final answer; a long poll waits on one replica at a time, the leader
 * first.
 */
#ifndef BCLIENT_H
#define BCLIENT_H

#include <jansson.h>
#include <stddef.h>
#include <stdint.h>

#include "mstore.h"
#include "rq_httpc.h"
#include "rq_reads.h"

struct mcore;

/*
 * The outcome of a call: @status is the broker's HTTP status (200 on
 * success), or 503 when none could serve it; @answer the broker's JSON
 * answer (borrowed; NULL when none) and @body its bytes, or @head the head
 * of a binary read answer (bclient_read_binary: @answer is NULL and @body
 * the whole binary answer, checked); @why a sentence for a failure;
 * @retry_after the broker's Retry-After or NULL.
 */
struct bclient_result {
    int status;
    const json_t *answer;
    const struct rq_reads_head *head;
    /* The answer as the broker sent it (@answer parsed), for relaying it
     * unchanged; NULL when there is no answer. Borrowed like @answer. */
    const char *body;
    size_t body_len;
    /* The broker's response, so that a caller passing @body on may take
     * it with rq_httpc_take_body() instead of copying it; NULL with no
     * body. */
    const struct rq_httpc_resp *resp;
    const char *why;
    const char *retry_after;
};

typedef void (*bclient_cb)(void *data, const struct bclient_result *r);

/*
 * Appends the records in @records (a JSON array of {value, key?} with
 * string values and keys; borrowed, sent in the brokers' binary form) to
 * partition @p as one batch. @producer_id and
 * @sequence (0, 0: a fresh pair is drawn) make retries safe. 0 and @cb
 * runs later (answer holds base_offset and count), or RQ_NOMEM /
 * RQ_SHUTDOWN and it never runs.
 */
int bclient_produce(struct mcore *core, const struct mstore_partition *p,
                    const json_t *records, uint64_t producer_id,
                    uint64_t sequence, bclient_cb cb, void *data);

/* The same for a body already in the binary form (rq_record.h, count
 * first), which the call takes whatever the result (freed with free()). */
int bclient_produce_body(struct mcore *core, const struct mstore_partition *p,
                         uint8_t *body, size_t len, uint64_t producer_id,
                         uint64_t sequence, bclient_cb cb, void *data);

/*
 * Reads up to @max records from @offset of partition @p, waiting up to
 * @wait_ms at the end. 0 and @cb runs later, or RQ_NOMEM / RQ_SHUTDOWN.
 * A 404 answer with first_offset (retention) ends the call as it is.
 */
int bclient_read(struct mcore *core, const struct mstore_partition *p,
                 uint64_t offset, uint32_t max, uint32_t wait_ms, bclient_cb cb,
                 void *data);

/* The same asking for the binary answer (shared/rq_reads.h): a 200 comes
 * with @head and @body, not parsed; any other answer is JSON as above. */
int bclient_read_binary(struct mcore *core, const struct mstore_partition *p,
                        uint64_t offset, uint32_t max, uint32_t wait_ms,
                        bclient_cb cb, void *data);

#endif /* BCLIENT_H */

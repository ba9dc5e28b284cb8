/*
 * The producer's messages and batches, without I/O (see producer.c): a
 * queued message, the partition a key hashes to, the binary body a batch
 * is sent as (broker/README.md, "application/vnd.raftq.records"), and the
 * reading of a produce answer's offsets. Not part of the public API.
 */
#ifndef BATCH_H
#define BATCH_H

#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "raftq.h"

/* A message queued: its key (key_len -1: none) and value follow the
 * struct, each NUL-terminated. */
struct batch_msg {
    struct batch_msg *next;
    raftq_delivery_cb cb;
    void *opaque;
    int32_t key_len;
    uint32_t value_len;
    char data[];
};

/* A copy of the key and value of a message, or NULL on ENOMEM. */
struct batch_msg *batch_msg_new(const char *key, size_t key_len,
                                const char *value, size_t value_len,
                                raftq_delivery_cb cb, void *opaque);
const char *batch_msg_key(const struct batch_msg *m);
const char *batch_msg_value(const struct batch_msg *m);
/* The bytes a message counts for against batch and buffer limits. */
size_t batch_msg_size(const struct batch_msg *m);

/* Whether @s (@len bytes) is text a record may hold: UTF-8 (no overlong
 * forms, surrogates or code points past U+10FFFF) without NUL bytes, as the
 * managers and brokers check; a message that is not fails alone, in
 * raftq_produce(), instead of failing its batch. */
bool batch_text_ok(const char *s, size_t len);

/* The partition of @key among @n: FNV-1a of its bytes modulo @n, as the
 * managers compute it (manager/policy.c), so a key lands where a plain
 * HTTP producer's would. */
uint32_t batch_key_partition(const char *key, size_t len, uint32_t n);

/* A FIFO of messages. */
struct batch_queue {
    struct batch_msg *head, *tail;
    size_t n;
    size_t bytes;
};

void batch_queue_push(struct batch_queue *q, struct batch_msg *m);

/* Takes from the front of @q at most @max_count messages whose sizes add
 * up to at most @max_bytes, but always at least one; returns the list
 * (NULL-terminated) and sets @n and @bytes. */
struct batch_msg *batch_queue_take(struct batch_queue *q, size_t max_count,
                                   size_t max_bytes, size_t *n, size_t *bytes);

/*
 * The binary body of @n messages from @list (little-endian, no padding):
 *   count:u32 | count x (key_len:i32 | value_len:u32 | key | value)
 * malloc'd into @out (@len bytes); false on ENOMEM.
 */
bool batch_encode(const struct batch_msg *list, size_t n, char **out,
                  size_t *len);

/* The offsets a produce answered for @n records sent to one partition:
 * "offsets" must hold @n entries {partition_id, offset} of @partition,
 * consecutive from the first. The first offset in @base; false if the
 * answer says otherwise. */
bool batch_offsets(const json_t *answer, size_t n, uint32_t partition,
                   uint64_t *base);

#endif /* BATCH_H */

/*
 * The framing of every raftq Raft log entry.
 *
 * libraft 0.15 reserved 8-byte-aligned room for each entry in a segment but
 * copied and later summed only the unpadded lengths, so an entry whose
 * length was not a multiple of 8 made the log unreadable after a restart
 * ("entries count ... in preamble is too high"). 0.22.1's raft_uv refuses
 * such an entry (RAFT_INVALID), and not cleanly: raft_apply has freed the
 * buffer all the same and the next append dereferences NULL
 * (tests/component/test_node.c). Every entry raftq hands to raft_apply is
 * therefore framed and padded here:
 *
 *     len:u32 | format:u32 (=1) | payload (len bytes) | zero pad to 8
 *
 * The decoder checks the header, the length and that the padding is zero.
 */
#ifndef RQ_ENTRY_H
#define RQ_ENTRY_H

#include <raft.h>
#include <stddef.h>
#include <stdint.h>

#define RQ_ENTRY_HEADER 8
#define RQ_ENTRY_FORMAT 1
#define RQ_ENTRY_MAX (64u << 20)

/* Fills @out with a raft_malloc'd, padded copy of @payload; the caller owns
 * it (raft_apply takes it on success). RQ_TOOBIG over RQ_ENTRY_MAX. */
int rq_entry_encode(const void *payload, size_t len, struct raft_buffer *out);

/*
 * Allocates (raft_malloc) a framed entry for a payload of @len bytes that
 * the caller writes in place at *payload, so a payload built piece by piece
 * reaches raft without an intermediate copy; the header and the padding
 * are written here. The caller owns out->base until raft takes it.
 * RQ_TOOBIG over RQ_ENTRY_MAX, RQ_NOMEM.
 */
int rq_entry_alloc(size_t len, struct raft_buffer *out, uint8_t **payload);

/* Points *payload into @buf (borrowed). RQ_MALFORMED on a bad frame. */
int rq_entry_decode(const struct raft_buffer *buf, const uint8_t **payload,
                    size_t *len);

#endif /* RQ_ENTRY_H */

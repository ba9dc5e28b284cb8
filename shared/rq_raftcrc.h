/*
 * The checksum libraft writes into its log segments and snapshots, eight
 * bytes at a time.
 *
 * libraft checks every batch of entries it writes or loads with a CRC-32
 * (polynomial 0x04c11db7, most significant bit first, no reflection, no
 * final xor: libiberty's xcrc32) computed a byte at a time, one table look
 * up and one dependent shift a byte. Under batches of 1 KiB records that
 * loop is a third of a broker's CPU. Every binary is linked with
 * `-Wl,--wrap=byteCrc32`, so libraft's own calls land in
 * __wrap_byteCrc32() below, which computes the same function with eight
 * tables (slicing by 8): the same bytes on disk, read or written by either.
 * tests/unit/test_raftcrc.c checks it against libraft's own function
 * (__real_byteCrc32) on every length and alignment it covers.
 */
#ifndef RQ_RAFTCRC_H
#define RQ_RAFTCRC_H

#include <stddef.h>
#include <stdint.h>

/* xcrc32 of @len bytes at @buf, continuing from @init (0 to start). */
uint32_t rq_raftcrc(const void *buf, size_t len, uint32_t init);

/* libraft's byteCrc32(), replaced at link time (see above). */
unsigned __wrap_byteCrc32(const void *buf, size_t size, unsigned init);

#endif /* RQ_RAFTCRC_H */

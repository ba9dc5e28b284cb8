/*
 * Where a read starts (consume --from, consumer reset --to): the offset of
 * one partition that a struct cmdline_pos names. "earliest" is offset 0
 * (a read there skips what retention removed), "latest" the partition's
 * high watermark as its leader answers it, a time the first record stamped
 * at or after it, found by a binary search over single-record reads (the
 * leader stamps records as it accepts them, so stamps rise with offsets;
 * a clock stepped back makes the search land on one of the candidates).
 */
#ifndef POSITION_H
#define POSITION_H

#include <stdint.h>

#include "cmdline.h"
#include "mclient.h"
#include "url.h"

/* The record read of @topic's partition @partition from @offset, at most
 * @max records, into @u; the caller adds what else it asks. */
void position_records_url(struct url *u, const char *topic, uint32_t partition,
                          uint64_t offset, uint64_t max);

/* The offset of partition @p of @topic that @pos names, in @out; a CLI_*
 * code, with a message on stderr when not CLI_OK. */
int position_resolve(struct mclient *c, const char *topic, uint32_t p,
                     const struct cmdline_pos *pos, uint64_t *out);

#endif /* POSITION_H */

/*
 * The data volume's rules (see disk.h).
 */
#include "disk.h"

uint64_t disk_reserve(uint64_t configured, uint64_t total)
{
    if (configured != 0) {
        return configured;
    }
    uint64_t r = total / 20;
    r = r < DISK_RESERVE_MIN ? DISK_RESERVE_MIN : r;
    r = r > DISK_RESERVE_MAX ? DISK_RESERVE_MAX : r;
    return r > total / 4 ? total / 4 : r;
}

bool disk_update(struct disk_state *s, uint64_t configured_reserve,
                 uint64_t total, uint64_t free)
{
    bool was = s->low;
    s->total = total;
    s->free = free;
    s->reserve = disk_reserve(configured_reserve, total);
    if (s->low) {
        s->low = free < s->reserve + s->reserve / 4;
    } else {
        s->low = free < s->reserve;
    }
    return s->low != was;
}

uint64_t disk_retention_share(uint64_t configured, const struct disk_state *s,
                              size_t n_replicas, uint64_t raft_bytes)
{
    if (s->total == 0) {
        return configured; /* Not read yet. */
    }
    uint64_t room = s->total > 2 * s->reserve ? s->total - 2 * s->reserve : 0;
    uint64_t share = room / (n_replicas > 0 ? n_replicas : 1);
    share = share > raft_bytes ? share - raft_bytes : 0;
    share = share < DISK_SHARE_MIN ? DISK_SHARE_MIN : share;
    return share < configured ? share : configured;
}

bool disk_tight(const struct disk_state *s)
{
    return s->total != 0 && s->free < 2 * s->reserve;
}

/*
 * A broker's data volume: how full it may get before produces are refused
 * (DESIGN.md section 17). Pure rules over statvfs figures, so that tests
 * reach every case; broker.c reads the volume every second.
 *
 * The reserve is room kept free for what is already under way when the
 * volume fills: the Raft segments of entries appended, replicas catching
 * up, a snapshot. While less than the reserve is free the broker is low:
 * it refuses produces it leads (507 naming the volume), and its pings tell
 * its peers, which refuse produces for the groups it is a member of. Once
 * low it stays low until a quarter of the reserve more is free again, so
 * produces do not come and go with every segment written and deleted.
 * Nothing else stops: replication, reads and retention go on, and
 * retention is what frees space by itself.
 */
#ifndef DISK_H
#define DISK_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define DISK_RESERVE_MIN (64ull << 20)
#define DISK_RESERVE_MAX (1ull << 30)
/* The smallest retention the volume's share leaves a replica. */
#define DISK_SHARE_MIN (16ull << 20)

struct disk_state {
    uint64_t total; /* Bytes of the volume. */
    uint64_t free;  /* Bytes an unprivileged writer may still use. */
    uint64_t reserve;
    bool low;
};

/* The reserve of a volume of @total bytes: @configured if not 0, else 5%
 * of the volume between DISK_RESERVE_MIN and DISK_RESERVE_MAX, and never
 * more than a quarter of it. */
uint64_t disk_reserve(uint64_t configured, uint64_t total);

/* Takes new figures; true when @s->low changed. */
bool disk_update(struct disk_state *s, uint64_t configured_reserve,
                 uint64_t total, uint64_t free);

/*
 * The retention of a replica's partition log: @configured (the broker's
 * --retention-bytes), but no more than an equal share among @n_replicas of
 * the volume less twice its reserve (one reserve for what is under way,
 * one for what is written between two retention passes), less the
 * @raft_bytes a replica's Raft log may hold on disk, and no less than
 * DISK_SHARE_MIN: with the defaults a 20 GiB volume holding 40 replicas
 * keeps about 440 MiB of records each instead of filling up at twenty.
 */
uint64_t disk_retention_share(uint64_t configured, const struct disk_state *s,
                              size_t n_replicas, uint64_t raft_bytes);

/* Whether the volume is near its reserve (under twice it), when retention
 * should run at every tick rather than wait for its period. */
bool disk_tight(const struct disk_state *s);

#endif /* DISK_H */

/*
 * The 64-bit hash every open-addressing table in raftq uses to place an id.
 *
 * It is fixed, not seeded: replicas must place ids alike, because the order
 * a table is walked in shows in eviction order and in snapshot bytes, which
 * must be identical on every server. Changing it changes those bytes. It is
 * header-only so the probe loops of the pure modules can inline it.
 */
#ifndef RQ_HASH_H
#define RQ_HASH_H

#include <stdint.h>

/* The splitmix64 finaliser: consecutive ids land far apart. */
static inline uint64_t rq_hash_u64(uint64_t x)
{
    x ^= x >> 30;
    x *= 0xbf58476d1ce4e5b9ull;
    x ^= x >> 27;
    x *= 0x94d049bb133111ebull;
    x ^= x >> 31;
    return x;
}

#endif /* RQ_HASH_H */

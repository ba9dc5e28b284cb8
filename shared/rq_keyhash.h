/*
 * The partition a record's key picks: FNV-1a (64 bits) over the key's
 * bytes, modulo the topic's partition count. Header only, so that the
 * managers (manager/policy.c) and the client library (libraftq/batch.c),
 * built without the servers' code, place a key alike. Pure.
 */
#ifndef RQ_KEYHASH_H
#define RQ_KEYHASH_H

#include <stddef.h>
#include <stdint.h>

/* The partition of @key (@len bytes) among @n (n > 0). */
static inline uint32_t rq_key_partition(const char *key, size_t len, uint32_t n)
{
    uint64_t h = 0xcbf29ce484222325ull;
    for (size_t i = 0; i < len; i++) {
        h ^= (unsigned char)key[i];
        h *= 0x100000001b3ull;
    }
    return (uint32_t)(h % n);
}

#endif /* RQ_KEYHASH_H */

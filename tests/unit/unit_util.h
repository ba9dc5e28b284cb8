/*
 * Small helpers several unit tests share: two fixed-seed generators, so a
 * failure replays exactly, and removal of a temporary directory tree.
 *
 * Each test file is its own binary, so the helpers are static inline here
 * rather than a library.
 */
#ifndef UNIT_UTIL_H
#define UNIT_UTIL_H

#include <ftw.h>
#include <stdint.h>
#include <stdio.h>
#include <sys/stat.h>

/* Marsaglia's xorshift64 (13, 7, 17). @state must not be 0. */
static inline uint64_t xorshift64(uint64_t *state)
{
    *state ^= *state << 13;
    *state ^= *state >> 7;
    *state ^= *state << 17;
    return *state;
}

/* xorshift64* (12, 25, 27, then a multiply): better low bits, for picking
 * among a few choices with %. @state must not be 0. */
static inline uint64_t xorshift64star(uint64_t *state)
{
    uint64_t x = *state;
    x ^= x >> 12;
    x ^= x << 25;
    x ^= x >> 27;
    *state = x;
    return x * 0x2545f4914f6cdd1dull;
}

static inline int rm_tree_entry(const char *path, const struct stat *st,
                                int flag, struct FTW *ftw)
{
    (void)st;
    (void)flag;
    (void)ftw;
    return remove(path);
}

/* Removes @dir and everything under it, without following links. */
static inline void rm_tree(const char *dir)
{
    nftw(dir, rm_tree_entry, 8, FTW_DEPTH | FTW_PHYS);
}

#endif /* UNIT_UTIL_H */

/*
 * A fresh temporary directory per fuzz input, for the harnesses that give
 * hostile bytes to code that works on files (the partition log). Under
 * $TMPDIR (else /dev/shm when it exists, else /tmp); removed whole after
 * the input.
 */
#ifndef FUZZ_TMPDIR_H
#define FUZZ_TMPDIR_H

#include <stdio.h>
#include <stdlib.h>
#include <sys/stat.h>
#include <unistd.h>

#include "fuzz.h"
#include "tests/unit/unit_util.h"

static inline void fuzz_tmpdir(char *dir, size_t n)
{
    const char *base = getenv("TMPDIR");
    struct stat st;
    if (base == NULL || base[0] == '\0') {
        base = stat("/dev/shm", &st) == 0 ? "/dev/shm" : "/tmp";
    }
    snprintf(dir, n, "%s/raftq-fuzz-XXXXXX", base);
    FUZZ_CHECK(mkdtemp(dir) != NULL);
}

/* Writes @len bytes at @path, replacing it. */
static inline void fuzz_write_file(const char *path, const uint8_t *p,
                                   size_t len)
{
    FILE *f = fopen(path, "wb");
    FUZZ_CHECK(f != NULL);
    FUZZ_CHECK(len == 0 || fwrite(p, 1, len, f) == len);
    FUZZ_CHECK(fclose(f) == 0);
}

#endif /* FUZZ_TMPDIR_H */

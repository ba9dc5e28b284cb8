/*
 * What every fuzz harness in tests/fuzz/ shares: the libFuzzer entry point
 * each defines, and small helpers for carving a fuzz input into parts.
 *
 * A harness is linked two ways: with libFuzzer (make fuzz, clang), and
 * with replay.c (make test, any compiler), whose main() feeds it the files
 * of its corpus and of its regressions. It must therefore not rely on
 * anything libFuzzer-specific, must free all it allocates (leaks fail the
 * replays under LeakSanitizer) and must abort() on a broken invariant
 * (a round trip that differs, say), never just return.
 */
#ifndef FUZZ_H
#define FUZZ_H

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* Stops the run with a message: libFuzzer then saves the input. */
#define FUZZ_CHECK(cond)                                                     \
    do {                                                                     \
        if (!(cond)) {                                                       \
            fprintf(stderr, "%s:%d: check failed: %s\n", __FILE__, __LINE__, \
                    #cond);                                                  \
            abort();                                                         \
        }                                                                    \
    } while (0)

/* Reads bytes off the front of an input; past the end it reads zeros. */
struct fuzz_in {
    const uint8_t *p;
    size_t left;
};

static inline uint8_t fuzz_u8(struct fuzz_in *in)
{
    if (in->left == 0) {
        return 0;
    }
    in->left--;
    return *in->p++;
}

static inline uint64_t fuzz_u64(struct fuzz_in *in)
{
    uint64_t v = 0;
    for (int i = 0; i < 8; i++) {
        v |= (uint64_t)fuzz_u8(in) << (8 * i);
    }
    return v;
}

/* A NUL-terminated malloc'd copy of the next text up to a 0x00 byte (or the
 * rest of the input), so one input can carry several strings. */
static inline char *fuzz_str(struct fuzz_in *in)
{
    const uint8_t *end = in->left > 0 ? memchr(in->p, 0, in->left) : NULL;
    size_t n = end != NULL ? (size_t)(end - in->p) : in->left;
    char *s = malloc(n + 1);
    if (s == NULL) {
        abort();
    }
    memcpy(s, in->p, n);
    s[n] = '\0';
    in->p += n;
    in->left -= n;
    if (in->left > 0) {
        in->p++;
        in->left--;
    }
    return s;
}

/* A malloc'd copy of the whole input with a NUL after it. */
static inline char *fuzz_text(const uint8_t *data, size_t size)
{
    char *s = malloc(size + 1);
    if (s == NULL) {
        abort();
    }
    if (size > 0) {
        memcpy(s, data, size);
    }
    s[size] = '\0';
    return s;
}

#endif /* FUZZ_H */

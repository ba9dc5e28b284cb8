/*
 * The check of UTF-8 that the managers make of every message and the
 * client library of every message it queues (libraftq/batch.c): header
 * only, so that libraftq, built without the servers' code, makes exactly
 * the managers' check. Pure.
 */
#ifndef RQ_UTF8_H
#define RQ_UTF8_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* true if @str (@len bytes) is well-formed UTF-8 (no overlong forms, no
 * surrogates, nothing past U+10FFFF). */
static inline bool rq_utf8_valid(const char *str, size_t len)
{
    const unsigned char *s = (const unsigned char *)str;
    size_t i = 0;
    while (i < len) {
        unsigned char c = s[i];
        size_t need;
        uint32_t cp;
        if (c < 0x80) {
            i++;
            continue;
        } else if (c >= 0xc2 && c <= 0xdf) {
            need = 1;
            cp = c & 0x1f;
        } else if (c >= 0xe0 && c <= 0xef) {
            need = 2;
            cp = c & 0x0f;
        } else if (c >= 0xf0 && c <= 0xf4) {
            need = 3;
            cp = c & 0x07;
        } else {
            return false; /* A continuation byte, 0xc0, 0xc1 or past 0xf4. */
        }
        if (len - i - 1 < need) {
            return false;
        }
        for (size_t k = 1; k <= need; k++) {
            if ((s[i + k] & 0xc0) != 0x80) {
                return false;
            }
            cp = (cp << 6) | (s[i + k] & 0x3f);
        }
        if ((need == 2 && cp < 0x800) || (need == 3 && cp < 0x10000) ||
            (cp >= 0xd800 && cp <= 0xdfff) || cp > 0x10ffff) {
            return false;
        }
        i += need + 1;
    }
    return true;
}

#endif /* RQ_UTF8_H */

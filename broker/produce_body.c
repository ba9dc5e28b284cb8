/*
 * The binary produce body: a checker that walks hostile bytes with a
 * bounds-checked cursor and never reads past the body, and a writer that
 * turns a checked body into a records blob in place. The format and its
 * encoder are shared/rq_record.h's.
 */
#include "produce_body.h"

#include <assert.h>
#include <inttypes.h>
#include <stdio.h>
#include <string.h>

#include "records.h"
#include "rq_err.h"

/* true if the 8 bytes at @p are all ASCII and none is NUL. */
static bool ascii8(const uint8_t *p)
{
    uint64_t w;
    memcpy(&w, p, sizeof w);
    const uint64_t ones = 0x0101010101010101ull;
    const uint64_t highs = 0x8080808080808080ull;
    /* A byte with its high bit set, or a zero byte ((w - 1) borrows into
     * the high bit of a byte that was 0 and is not already high). */
    return (w & highs) == 0 && ((w - ones) & ~w & highs) == 0;
}

/*
 * true if @p holds well-formed UTF-8 (RFC 3629: no overlong forms, no
 * surrogates, nothing above U+10FFFF) without NUL bytes: what a JSON string
 * without "\u0000" can hold. ASCII, the common case, goes 8 bytes a step.
 */
static bool text_valid(const uint8_t *p, size_t n)
{
    size_t i = 0;
    while (i < n) {
        if (n - i >= 8 && ascii8(p + i)) {
            i += 8;
            continue;
        }
        uint8_t c = p[i];
        if (c == 0) {
            return false;
        }
        if (c < 0x80) {
            i++;
            continue;
        }
        size_t more;
        uint8_t lo = 0x80; /* Bounds of the second byte. */
        uint8_t hi = 0xBF;
        if (c >= 0xC2 && c <= 0xDF) {
            more = 1;
        } else if (c >= 0xE0 && c <= 0xEF) {
            more = 2;
            if (c == 0xE0) {
                lo = 0xA0; /* Overlong below U+0800. */
            } else if (c == 0xED) {
                hi = 0x9F; /* Surrogates U+D800..U+DFFF. */
            }
        } else if (c >= 0xF0 && c <= 0xF4) {
            more = 3;
            if (c == 0xF0) {
                lo = 0x90; /* Overlong below U+10000. */
            } else if (c == 0xF4) {
                hi = 0x8F; /* Above U+10FFFF. */
            }
        } else {
            return false; /* A continuation byte, C0, C1 or F5..FF. */
        }
        if (n - i - 1 < more || p[i + 1] < lo || p[i + 1] > hi) {
            return false;
        }
        for (size_t k = 2; k <= more; k++) {
            if (p[i + k] < 0x80 || p[i + k] > 0xBF) {
                return false;
            }
        }
        i += more + 1;
    }
    return true;
}

/* The @len bytes of record @i's @what ("key", "value"), which starts at
 * byte @at, into *@p: 0, or RQ_MALFORMED when the body ends inside it or it
 * is not UTF-8 text without NUL bytes. */
static int get_text(struct rq_cursor *c, uint32_t len, const uint8_t **p,
                    uint32_t i, size_t at, const char *what, char *why,
                    size_t whyn)
{
    if (rq_wire_get_bytes(c, len, p) != 0) {
        rq_why(why, whyn,
               "record %" PRIu32
               " (at byte %zu): the body ends inside its %s (%" PRIu32
               " bytes announced, %zu left)",
               i, at, what, len, c->left);
        return RQ_MALFORMED;
    }
    if (!text_valid(*p, len)) {
        rq_why(why, whyn,
               "record %" PRIu32 ": the %s is not UTF-8 text without NUL bytes",
               i, what);
        return RQ_MALFORMED;
    }
    return 0;
}

int produce_body_check(const uint8_t *body, size_t len,
                       const struct produce_body_limits *lim, uint32_t *count,
                       size_t *blob_len, char *why, size_t whyn)
{
    struct rq_cursor c;
    uint32_t n;
    size_t blob = 0;

    rq_cursor_init(&c, body, len);
    if (rq_wire_get_u32(&c, &n) != 0) {
        rq_why(why, whyn,
               "the body ends before its record count (%d bytes, "
               "little-endian) in a %zu-byte body",
               RQ_RECORD_BODY_COUNT, len);
        return RQ_MALFORMED;
    }
    if (n == 0) {
        rq_why(why, whyn, "the record count is 0; send 1 to %" PRIu32,
               lim->max_records);
        return RQ_MALFORMED;
    }
    if (n > lim->max_records) {
        rq_why(why, whyn,
               "%" PRIu32 " records is over the limit of %" PRIu32
               " per request",
               n, lim->max_records);
        return RQ_TOOBIG;
    }
    for (uint32_t i = 0; i < n; i++) {
        size_t at = len - c.left;
        const uint8_t *hdr;
        struct rq_record_header h;
        const uint8_t *key = NULL;
        const uint8_t *value;

        if (rq_wire_get_bytes(&c, RQ_RECORD_HEADER, &hdr) != 0) {
            rq_why(why, whyn,
                   "record %" PRIu32 " of %" PRIu32
                   ": the body ends inside its %d-byte header (at byte %zu "
                   "of %zu)",
                   i, n, RQ_RECORD_HEADER, at, len);
            return RQ_MALFORMED;
        }
        if (rq_record_header_at(hdr, &h) != 0) {
            rq_why(why, whyn,
                   "record %" PRIu32 " (at byte %zu): key length %" PRId32
                   " is negative; -1 means no key",
                   i, at, (int32_t)rq_wire_u32_at(hdr));
            return RQ_MALFORMED;
        }
        bool has_key = h.has_key;
        uint32_t klen = h.key_len;
        uint32_t vlen = h.value_len;
        if (vlen > lim->max_value) {
            rq_why(why, whyn,
                   "record %" PRIu32 ": a value of %" PRIu32
                   " bytes is over the limit of %" PRIu64 " bytes",
                   i, vlen, lim->max_value);
            return RQ_TOOBIG;
        }
        int rv =
            has_key ? get_text(&c, klen, &key, i, at, "key", why, whyn) : 0;
        if (rv == 0) {
            rv = get_text(&c, vlen, &value, i, at, "value", why, whyn);
        }
        if (rv != 0) {
            return rv;
        }
        blob += records_size(klen, has_key, vlen);
        if (blob > lim->max_blob) {
            rq_why(why, whyn,
                   "the records take more than %zu bytes; send fewer per "
                   "request",
                   lim->max_blob);
            return RQ_TOOBIG;
        }
    }
    if (c.left != 0) {
        rq_why(why, whyn,
               "%zu bytes follow the last of the %" PRIu32
               " records the body announces",
               c.left, n);
        return RQ_MALFORMED;
    }
    *count = n;
    *blob_len = blob;
    return 0;
}

void produce_body_write(const uint8_t *body, size_t len, int64_t timestamp_ms,
                        uint8_t *out)
{
    uint32_t n = rq_wire_u32_at(body);
    const uint8_t *p = body + RQ_RECORD_BODY_COUNT;

    (void)len;
    for (uint32_t i = 0; i < n; i++) {
        struct rq_record_header h;
        int rv = rq_record_header_at(p, &h);
        assert(rv == 0); /* produce_body_check() accepted the body. */
        (void)rv;
        p += RQ_RECORD_HEADER;
        out += records_put_at(out, timestamp_ms, p, h.key_len, h.has_key,
                              p + h.key_len, h.value_len);
        p += rq_record_header_data(&h);
    }
    assert(p == body + len);
}

/* ---- The JSON form ---- */

int produce_body_json_check(const json_t *records,
                            const struct produce_body_limits *lim,
                            uint32_t *count, size_t *blob_len, char *why,
                            size_t whyn)
{
    size_t n = json_array_size(records);
    size_t total = 0;

    if (!json_is_array(records) || n == 0) {
        rq_why(why, whyn,
               "'records' must be a list of 1 to %" PRIu32
               " {value, key?} objects",
               lim->max_records);
        return RQ_MALFORMED;
    }
    if (n > lim->max_records) {
        rq_why(why, whyn,
               "%zu records is over the limit of %" PRIu32 " per request", n,
               lim->max_records);
        return RQ_TOOBIG;
    }
    for (size_t i = 0; i < n; i++) {
        json_t *rec = json_array_get(records, i);
        json_t *value = json_object_get(rec, "value");
        json_t *key = json_object_get(rec, "key");
        if (!json_is_object(rec) || !json_is_string(value)) {
            rq_why(why, whyn, "record %zu: 'value' must be a string", i);
            return RQ_MALFORMED;
        }
        if (key != NULL && !json_is_null(key) && !json_is_string(key)) {
            rq_why(why, whyn, "record %zu: 'key' must be a string", i);
            return RQ_MALFORMED;
        }
        size_t vlen = json_string_length(value);
        if (vlen > lim->max_value) {
            rq_why(why, whyn,
                   "record %zu: a value of %zu bytes is over the limit of "
                   "%" PRIu64 " bytes",
                   i, vlen, lim->max_value);
            return RQ_TOOBIG;
        }
        bool has_key = json_is_string(key);
        size_t klen = has_key ? json_string_length(key) : 0;
        /* A key or value is at most the body's size, so neither the sum
         * nor a record's lengths can overflow; a key too long for the
         * blob's i32 length is over any blob limit anyway. */
        total += records_size(klen, has_key, vlen);
        if (total > lim->max_blob || klen > INT32_MAX || vlen > UINT32_MAX) {
            rq_why(why, whyn,
                   "the records take more than %zu bytes; send fewer per "
                   "request",
                   lim->max_blob);
            return RQ_TOOBIG;
        }
    }
    *count = (uint32_t)n;
    *blob_len = total;
    return 0;
}

void produce_body_json_write(const json_t *records, int64_t timestamp_ms,
                             uint8_t *out)
{
    size_t n = json_array_size(records);
    for (size_t i = 0; i < n; i++) {
        json_t *rec = json_array_get(records, i);
        json_t *value = json_object_get(rec, "value");
        json_t *key = json_object_get(rec, "key");
        bool has_key = json_is_string(key);
        out += records_put_at(
            out, timestamp_ms, has_key ? json_string_value(key) : NULL,
            has_key ? json_string_length(key) : 0, has_key,
            json_string_value(value), json_string_length(value));
    }
}

/*
 * A record read's answer, binary and JSON (see rq_reads.h). The JSON
 * writer escapes by hand instead of building a jansson tree: a read of
 * 1,000 records of 1 KiB was most of a broker's time in json_dumps and
 * json_stringn, for text that needs only its quotes, backslashes and
 * control characters escaped.
 */
#include "rq_reads.h"

#include <inttypes.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>

#include "rq_err.h"
#include "rq_record.h"

#define NO_KEY UINT32_MAX /* key_len -1 */

bool rq_reads_accepts_binary(const char *accept)
{
    size_t n = sizeof RQ_RECORD_BODY_TYPE - 1;
    const char *p = accept;
    while (p != NULL && *p != '\0') {
        while (*p == ' ' || *p == '\t' || *p == ',') {
            p++;
        }
        const char *end = p;
        while (*end != '\0' && *end != ',' && *end != ';' && *end != ' ' &&
               *end != '\t') {
            end++;
        }
        if ((size_t)(end - p) == n &&
            strncasecmp(p, RQ_RECORD_BODY_TYPE, n) == 0) {
            return true;
        }
        p = strchr(end, ',');
    }
    return false;
}

/* count:u32 | next_offset:u64 | high_watermark:u64 */
void rq_reads_head_put_at(uint8_t *p, const struct rq_reads_head *h)
{
    rq_wire_put_u32_at(p, h->count);
    rq_wire_put_u64_at(p + 4, h->next_offset);
    rq_wire_put_u64_at(p + 12, h->high_watermark);
}

int rq_reads_check(const uint8_t *body, size_t len, struct rq_reads_head *out,
                   char *why, size_t whyn)
{
    if (len < RQ_READS_HEAD) {
        rq_why(why, whyn, "the answer ends in its head (%zu of %d bytes)", len,
               RQ_READS_HEAD);
        return RQ_MALFORMED;
    }
    out->count = rq_wire_u32_at(body);
    out->next_offset = rq_wire_u64_at(body + 4);
    out->high_watermark = rq_wire_u64_at(body + 12);
    if (out->next_offset < out->count) {
        rq_why(why, whyn, "next_offset %" PRIu64 " is below the count %" PRIu32,
               out->next_offset, out->count);
        return RQ_MALFORMED;
    }
    size_t at = RQ_READS_HEAD;
    for (uint32_t i = 0; i < out->count; i++) {
        struct rq_record_header rh;
        if (len - at < RQ_READS_RECORD) {
            rq_why(why, whyn, "the answer ends in record %" PRIu32 "'s header",
                   i);
            return RQ_MALFORMED;
        }
        if (rq_record_header_at(body + at + 8, &rh) != 0) {
            rq_why(why, whyn, "record %" PRIu32 " has a negative key length",
                   i);
            return RQ_MALFORMED;
        }
        at += RQ_READS_RECORD;
        if (rq_record_header_data(&rh) > len - at) {
            rq_why(why, whyn, "the answer ends in record %" PRIu32, i);
            return RQ_MALFORMED;
        }
        at += rq_record_header_data(&rh);
    }
    if (at != len) {
        rq_why(why, whyn, "%zu bytes follow the last record", len - at);
        return RQ_MALFORMED;
    }
    return 0;
}

void rq_reads_iter_init(struct rq_reads_iter *it, const uint8_t *body,
                        size_t len, const struct rq_reads_head *h)
{
    it->p = body + RQ_READS_HEAD;
    it->end = body + len;
    it->offset = h->next_offset - h->count;
}

/* One record at it->p, which may be damaged (rq_reads_json_put walks a
 * log read that no one checked): 1, 0 at the end, RQ_MALFORMED. */
static int next_record(struct rq_reads_iter *it, struct rq_reads_record *out)
{
    struct rq_record_header rh;
    size_t left = (size_t)(it->end - it->p);
    if (left == 0) {
        return 0;
    }
    if (left < RQ_READS_RECORD || rq_record_header_at(it->p + 8, &rh) != 0 ||
        rq_record_header_data(&rh) > left - RQ_READS_RECORD) {
        return RQ_MALFORMED;
    }
    out->offset = it->offset++;
    out->timestamp_ms = (int64_t)rq_wire_u64_at(it->p);
    out->has_key = rh.has_key;
    out->key = rh.has_key ? it->p + RQ_READS_RECORD : NULL;
    out->key_len = rh.key_len;
    out->value = it->p + RQ_READS_RECORD + rh.key_len;
    out->value_len = rh.value_len;
    it->p += RQ_READS_RECORD + rq_record_header_data(&rh);
    return 1;
}

int rq_reads_next(struct rq_reads_iter *it, struct rq_reads_record *out)
{
    int rv = next_record(it, out);
    return rv < 0 ? 0 : rv; /* Checked already: never malformed. */
}

/* ---- JSON ---- */

/* What each byte below 0x80 becomes inside a JSON string: 0 as it is,
 * 'u' as \u00XX, else the letter after a backslash. */
static const char escape_as[128] = {
    ['\0'] = 'u', [1] = 'u',  [2] = 'u',    [3] = 'u',     [4] = 'u',
    [5] = 'u',    [6] = 'u',  [7] = 'u',    ['\b'] = 'b',  ['\t'] = 't',
    ['\n'] = 'n', [11] = 'u', ['\f'] = 'f', ['\r'] = 'r',  [14] = 'u',
    [15] = 'u',   [16] = 'u', [17] = 'u',   [18] = 'u',    [19] = 'u',
    [20] = 'u',   [21] = 'u', [22] = 'u',   [23] = 'u',    [24] = 'u',
    [25] = 'u',   [26] = 'u', [27] = 'u',   [28] = 'u',    [29] = 'u',
    [30] = 'u',   [31] = 'u', ['"'] = '"',  ['\\'] = '\\',
};

/* The length of the UTF-8 sequence at @s (@n bytes left) that starts
 * with a byte >= 0x80, or 0 if it is not one (RFC 3629: no overlong
 * forms, no surrogates, nothing past U+10FFFF). */
static size_t utf8_len(const uint8_t *s, size_t n)
{
    uint8_t c = s[0];
    uint8_t lo = 0x80;
    uint8_t hi = 0xBF;
    size_t k;
    if (c >= 0xC2 && c <= 0xDF) {
        k = 2;
    } else if (c >= 0xE0 && c <= 0xEF) {
        k = 3;
        lo = c == 0xE0 ? 0xA0 : 0x80;
        hi = c == 0xED ? 0x9F : 0xBF;
    } else if (c >= 0xF0 && c <= 0xF4) {
        k = 4;
        lo = c == 0xF0 ? 0x90 : 0x80;
        hi = c == 0xF4 ? 0x8F : 0xBF;
    } else {
        return 0;
    }
    if (n < k || s[1] < lo || s[1] > hi) {
        return 0;
    }
    for (size_t i = 2; i < k; i++) {
        if (s[i] < 0x80 || s[i] > 0xBF) {
            return 0;
        }
    }
    return k;
}

#define ONES 0x0101010101010101ull
#define HIGHS 0x8080808080808080ull

/* Non-zero if a byte of @v is below 0x20, '"', '\\' or 0x80 and above:
 * the eight bytes are not all plain ASCII that goes as it is (each test
 * is the "has a byte less than n" trick of Bit Twiddling Hacks; a false
 * alarm only sends the bytes to the byte loop, which decides; none is
 * missed). */
static uint64_t special8(uint64_t v)
{
    uint64_t q = v ^ (ONES * '"');
    uint64_t b = v ^ (ONES * '\\');
    uint64_t low = (v - ONES * 0x20) & ~v;
    uint64_t quote = (q - ONES) & ~q;
    uint64_t back = (b - ONES) & ~b;
    return (low | quote | back | v) & HIGHS;
}

/* The end of the leading run of @s (@n bytes) that goes as it is. */
static size_t plain_run(const uint8_t *s, size_t n)
{
    size_t i = 0;
    uint64_t v;
    while (n - i >= 8) {
        memcpy(&v, s + i, 8);
        if (special8(v) != 0) {
            break;
        }
        i += 8;
    }
    while (i < n && s[i] < 0x80 && escape_as[s[i]] == 0) {
        i++;
    }
    return i;
}

int rq_reads_json_string(struct rq_buf *out, const uint8_t *s, size_t n)
{
    static const char hex[] = "0123456789abcdef";
    /* At most 6 bytes a byte (\u00XX), and the quotes. */
    if (n > (SIZE_MAX - 2) / 6 || rq_buf_reserve(out, n * 6 + 2) != 0) {
        out->err = out->err != 0 ? out->err : RQ_NOMEM;
        return 0;
    }
    uint8_t *w = out->base + out->len;
    *w++ = '"';
    size_t i = 0;
    while (i < n) {
        /* A run of bytes that go as they are, copied at once. */
        size_t run = i + plain_run(s + i, n - i);
        while (run < n && s[run] >= 0x80) {
            size_t k = utf8_len(s + run, n - run);
            if (k == 0) {
                return RQ_MALFORMED;
            }
            run += k;
            while (run < n && s[run] < 0x80 && escape_as[s[run]] == 0) {
                run++;
            }
        }
        memcpy(w, s + i, run - i);
        w += run - i;
        i = run;
        if (i == n) {
            break;
        }
        char e = escape_as[s[i]];
        if (s[i] == 0) {
            return RQ_MALFORMED;
        }
        *w++ = '\\';
        if (e == 'u') {
            memcpy(w, "u00", 3);
            w[3] = hex[s[i] >> 4];
            w[4] = hex[s[i] & 15];
            w += 5;
        } else {
            *w++ = (uint8_t)e;
        }
        i++;
    }
    *w++ = '"';
    out->len = (size_t)(w - out->base);
    return 0;
}

/* Appends @text then the decimal @v. */
static void put_num(struct rq_buf *out, const char *text, int64_t v,
                    bool is_signed, uint64_t u)
{
    char b[64];
    int k = is_signed ? snprintf(b, sizeof b, "%s%" PRId64, text, v)
                      : snprintf(b, sizeof b, "%s%" PRIu64, text, u);
    rq_buf_put_bytes(out, b, (size_t)k);
}

int rq_reads_json_put(struct rq_buf *out, const struct rq_reads_head *h,
                      const uint8_t *records, size_t len)
{
    static const char open[] = "{\"status\":\"success\",\"records\":[";
    struct rq_reads_iter it = {
        .p = records,
        .end = len > 0 ? records + len : records, /* NULL + 0 is not C. */
        .offset = h->next_offset - h->count,
    };
    struct rq_reads_record r;
    int rv;

    rq_buf_put_bytes(out, open, sizeof open - 1);
    for (uint32_t i = 0; i < h->count; i++) {
        if (next_record(&it, &r) != 1) {
            return RQ_MALFORMED;
        }
        put_num(out, i == 0 ? "{\"offset\":" : ",{\"offset\":", 0, false,
                r.offset);
        rq_buf_put_bytes(out, ",\"value\":", 9);
        rv = rq_reads_json_string(out, r.value, r.value_len);
        if (rv != 0) {
            return rv;
        }
        rq_buf_put_bytes(out, ",\"key\":", 7);
        if (r.has_key) {
            rv = rq_reads_json_string(out, r.key, r.key_len);
            if (rv != 0) {
                return rv;
            }
        } else {
            rq_buf_put_bytes(out, "null", 4);
        }
        put_num(out, ",\"timestamp_ms\":", r.timestamp_ms, true, 0);
        rq_buf_put_bytes(out, "}", 1);
    }
    put_num(out, "],\"next_offset\":", 0, false, h->next_offset);
    put_num(out, ",\"high_watermark\":", 0, false, h->high_watermark);
    return 0;
}

/*
 * The head of an HTTP/1.1 response (see hresp.h).
 *
 * The head is parsed afresh from the first byte each time more arrives
 * until the blank line is there; heads are a few hundred bytes, so that
 * costs less than keeping a state machine between reads.
 */
#include "hresp.h"

#include <string.h>
#include <strings.h>

#include "rq_err.h"

/* Finds the blank line ending the head; its end offset, or 0. */
static size_t head_end(const char *buf, size_t len)
{
    const char *p = buf;
    size_t left = len;
    while (left >= 4) {
        const char *cr = memchr(p, '\r', left - 3);
        if (cr == NULL) {
            return 0;
        }
        if (memcmp(cr, "\r\n\r\n", 4) == 0) {
            return (size_t)(cr - buf) + 4;
        }
        left -= (size_t)(cr - p) + 1;
        p = cr + 1;
    }
    return 0;
}

/* true if the header line [@p, @end) is named @name; *value is set to its
 * value with the blanks around it trimmed. */
static bool header_is(const char *p, const char *end, const char *name,
                      const char **value, const char **vend)
{
    size_t n = strlen(name);
    if ((size_t)(end - p) <= n || p[n] != ':' || strncasecmp(p, name, n) != 0) {
        return false;
    }
    p += n + 1;
    while (p < end && (*p == ' ' || *p == '\t')) {
        p++;
    }
    while (end > p && (end[-1] == ' ' || end[-1] == '\t')) {
        end--;
    }
    *value = p;
    *vend = end;
    return true;
}

/* true if the comma-separated list [@p, @end) holds the token @tok. */
static bool has_token(const char *p, const char *end, const char *tok)
{
    size_t n = strlen(tok);
    while (p < end) {
        while (p < end && (*p == ' ' || *p == '\t' || *p == ',')) {
            p++;
        }
        const char *t = p;
        while (p < end && *p != ',') {
            p++;
        }
        const char *te = p;
        while (te > t && (te[-1] == ' ' || te[-1] == '\t')) {
            te--;
        }
        if ((size_t)(te - t) == n && strncasecmp(t, tok, n) == 0) {
            return true;
        }
    }
    return false;
}

/* "HTTP/1.x NNN reason": the minor version and the status. */
static int status_line(const char *p, const char *end, int *minor, int *status,
                       char *why, size_t whyn)
{
    if (end - p < 12 || memcmp(p, "HTTP/1.", 7) != 0 || p[7] < '0' ||
        p[7] > '9' || p[8] != ' ') {
        rq_why(why, whyn, "not an HTTP/1.x response: '%.*s'",
               (int)(end - p < 40 ? end - p : 40), p);
        return RQ_MALFORMED;
    }
    int s = 0;
    for (int i = 9; i < 12; i++) {
        if (p[i] < '0' || p[i] > '9') {
            rq_why(why, whyn, "bad status in '%.*s'",
                   (int)(end - p < 40 ? end - p : 40), p);
            return RQ_MALFORMED;
        }
        s = s * 10 + (p[i] - '0');
    }
    if (s < 100 || s > 599 || (end - p > 12 && p[12] != ' ')) {
        rq_why(why, whyn, "bad status in '%.*s'",
               (int)(end - p < 40 ? end - p : 40), p);
        return RQ_MALFORMED;
    }
    *minor = p[7] - '0';
    *status = s;
    return 0;
}

static int content_length(const char *v, const char *vend, uint64_t *out,
                          char *why, size_t whyn)
{
    uint64_t n = 0;
    if (v == vend) {
        rq_why(why, whyn, "an empty Content-Length");
        return RQ_MALFORMED;
    }
    for (const char *p = v; p < vend; p++) {
        if (*p < '0' || *p > '9') {
            rq_why(why, whyn, "a bad Content-Length '%.*s'", (int)(vend - v),
                   v);
            return RQ_MALFORMED;
        }
        n = n * 10 + (uint64_t)(*p - '0');
        if (n > HRESP_MAX_BODY) {
            rq_why(why, whyn, "a body of more than %llu bytes",
                   (unsigned long long)HRESP_MAX_BODY);
            return RQ_TOOBIG;
        }
    }
    *out = n;
    return 0;
}

int hresp_head(const char *buf, size_t len, struct hresp *out, char *why,
               size_t whyn)
{
    memset(out, 0, sizeof *out);
    size_t hlen = head_end(buf, len < HRESP_MAX_HEAD ? len : HRESP_MAX_HEAD);
    if (hlen == 0) {
        if (len >= HRESP_MAX_HEAD) {
            rq_why(why, whyn, "a response head over %d bytes", HRESP_MAX_HEAD);
            return RQ_TOOBIG;
        }
        /* A status line that cannot become one is refused at once. */
        size_t n = len < 7 ? len : 7;
        if (memcmp(buf, "HTTP/1.", n) != 0) {
            rq_why(why, whyn, "not an HTTP/1.x response: '%.*s'",
                   (int)(len < 40 ? len : 40), buf);
            return RQ_MALFORMED;
        }
        return 0;
    }
    const char *end = buf + hlen - 2; /* The blank line's CRLF. */
    const char *eol = memchr(buf, '\r', (size_t)(end - buf));
    int minor, status, rv;
    rv = status_line(buf, eol, &minor, &status, why, whyn);
    if (rv != 0) {
        return rv;
    }
    bool has_length = false, close = minor == 0, chunked = false;
    uint64_t length = 0;
    for (const char *p = eol + 2; p < end;) {
        const char *le = memchr(p, '\r', (size_t)(end - p));
        if (le == NULL || le[1] != '\n') {
            rq_why(why, whyn, "a header line not ended by CRLF");
            return RQ_MALFORMED;
        }
        const char *v, *vend;
        if (header_is(p, le, "Content-Length", &v, &vend)) {
            uint64_t n;
            rv = content_length(v, vend, &n, why, whyn);
            if (rv != 0) {
                return rv;
            }
            if (has_length && n != length) {
                rq_why(why, whyn, "two different Content-Length headers");
                return RQ_MALFORMED;
            }
            has_length = true;
            length = n;
        } else if (header_is(p, le, "Transfer-Encoding", &v, &vend)) {
            chunked = chunked || has_token(v, vend, "chunked");
        } else if (header_is(p, le, "Connection", &v, &vend)) {
            if (has_token(v, vend, "close")) {
                close = true;
            } else if (has_token(v, vend, "keep-alive")) {
                close = false;
            }
        }
        p = le + 2;
    }
    if (chunked) {
        rq_why(why, whyn, "a chunked body (only Content-Length is read)");
        return RQ_MALFORMED;
    }
    bool bodiless = status < 200 || status == 204 || status == 304;
    if (!has_length && !bodiless) {
        rq_why(why, whyn, "a %d response without Content-Length", status);
        return RQ_MALFORMED;
    }
    out->complete = true;
    out->status = status;
    out->head_len = hlen;
    out->body_len = bodiless ? 0 : length;
    out->close = close;
    return 0;
}

int hresp_json_u64(const char *body, size_t len, const char *name,
                   uint64_t *out)
{
    size_t n = strlen(name);
    const char *p = body;
    const char *end = body + len;
    while ((size_t)(end - p) >= n + 2) {
        const char *q = memchr(p, '"', (size_t)(end - p) - n - 1);
        if (q == NULL) {
            break;
        }
        p = q + 1;
        /* A quote inside a string is escaped; a member's name opens with
         * one that is not. */
        if ((q > body && q[-1] == '\\') || memcmp(q + 1, name, n) != 0 ||
            q[n + 1] != '"') {
            continue;
        }
        const char *v = q + n + 2;
        while (v < end &&
               (*v == ' ' || *v == '\t' || *v == '\r' || *v == '\n')) {
            v++;
        }
        if (v == end || *v != ':') {
            continue; /* A string value equal to the name. */
        }
        v++;
        while (v < end &&
               (*v == ' ' || *v == '\t' || *v == '\r' || *v == '\n')) {
            v++;
        }
        uint64_t x = 0;
        const char *d = v;
        while (v < end && *v >= '0' && *v <= '9') {
            if (x > (UINT64_C(1) << 62) / 5) {
                return RQ_MALFORMED; /* Past 2^63. */
            }
            x = x * 10 + (uint64_t)(*v - '0');
            v++;
        }
        if (v == d || (v < end && (*v == '.' || *v == 'e' || *v == 'E')) ||
            x >= (UINT64_C(1) << 63)) {
            return RQ_MALFORMED;
        }
        *out = x;
        return 0;
    }
    return RQ_NOTFOUND;
}

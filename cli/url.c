/*
 * Manager URLs and request URLs (see url.h).
 */
#include "url.h"

#include <curl/curl.h>
#include <inttypes.h>
#include <stdio.h>
#include <string.h>

#include "rq_err.h"

static bool host_char(char c)
{
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
           (c >= '0' && c <= '9') || c == '.' || c == '-' || c == '_';
}

int url_base_parse(const char *in, char *out, char *why, size_t whyn)
{
    const char *scheme = "http://";
    const char *p = in;

    if (strncmp(p, "http://", 7) == 0) {
        p += 7;
    } else if (strncmp(p, "https://", 8) == 0) {
        scheme = "https://";
        p += 8;
    } else if (strstr(p, "://") != NULL) {
        rq_why(why, whyn, "'%s': only http:// and https:// are spoken", in);
        return RQ_INVALID;
    }
    size_t len = strlen(p);
    if (len > 0 && p[len - 1] == '/') {
        len--;
    }
    /* HOST:PORT, where HOST is a name or "[V6]". */
    size_t host_end;
    if (len > 0 && p[0] == '[') {
        const char *close = memchr(p, ']', len);
        if (close == NULL || close == p + 1) {
            rq_why(why, whyn, "'%s': an IPv6 host is written [ADDR]:PORT", in);
            return RQ_INVALID;
        }
        for (const char *c = p + 1; c < close; c++) {
            if (!(host_char(*c) || *c == ':')) {
                rq_why(why, whyn, "'%s': bad character in the host", in);
                return RQ_INVALID;
            }
        }
        host_end = (size_t)(close - p) + 1;
    } else {
        host_end = 0;
        while (host_end < len && host_char(p[host_end])) {
            host_end++;
        }
        if (host_end == 0) {
            rq_why(why, whyn, "'%s' is not HOST:PORT or http://HOST:PORT", in);
            return RQ_INVALID;
        }
    }
    if (host_end >= len || p[host_end] != ':') {
        rq_why(why, whyn, "'%s' has no port (HOST:PORT)", in);
        return RQ_INVALID;
    }
    unsigned port = 0;
    size_t i = host_end + 1;
    if (i == len) {
        rq_why(why, whyn, "'%s' has no port (HOST:PORT)", in);
        return RQ_INVALID;
    }
    for (; i < len; i++) {
        if (p[i] < '0' || p[i] > '9' || port > 65535) {
            rq_why(why, whyn,
                   "'%s': the port must be a number (and no path "
                   "may follow it)",
                   in);
            return RQ_INVALID;
        }
        port = port * 10 + (unsigned)(p[i] - '0');
    }
    if (port == 0 || port > 65535) {
        rq_why(why, whyn, "'%s': the port must be 1 to 65535", in);
        return RQ_INVALID;
    }
    int n = snprintf(out, URL_MAX, "%s%.*s", scheme, (int)len, p);
    if (n < 0 || n >= URL_MAX) {
        rq_why(why, whyn, "'%.40s...' is too long", in);
        return RQ_INVALID;
    }
    return 0;
}

int url_bases_parse(const char *list, char (*out)[URL_MAX], size_t *n,
                    char *why, size_t whyn)
{
    char one[URL_MAX];
    const char *p = list;

    *n = 0;
    for (;;) {
        while (*p == ' ' || *p == '\t') {
            p++;
        }
        const char *end = strchr(p, ',');
        size_t len = end != NULL ? (size_t)(end - p) : strlen(p);
        while (len > 0 && (p[len - 1] == ' ' || p[len - 1] == '\t')) {
            len--;
        }
        if (len == 0) {
            rq_why(why, whyn, "'%s': an empty entry in the manager list", list);
            return RQ_INVALID;
        }
        if (len >= sizeof one) {
            rq_why(why, whyn, "a manager URL is too long");
            return RQ_INVALID;
        }
        if (*n == URL_BASES_MAX) {
            rq_why(why, whyn, "at most %d managers", URL_BASES_MAX);
            return RQ_INVALID;
        }
        memcpy(one, p, len);
        one[len] = '\0';
        int rv = url_base_parse(one, out[*n], why, whyn);
        if (rv != 0) {
            return rv;
        }
        (*n)++;
        if (end == NULL) {
            return 0;
        }
        p = end + 1;
    }
}

void url_init(struct url *u, const char *base)
{
    u->len = 0;
    u->overflow = false;
    u->has_query = false;
    u->s[0] = '\0';
    url_path(u, base);
}

static void put(struct url *u, const char *s, size_t n)
{
    if (u->overflow || u->len + n >= sizeof u->s) {
        u->overflow = true;
        return;
    }
    memcpy(u->s + u->len, s, n);
    u->len += n;
    u->s[u->len] = '\0';
}

void url_path(struct url *u, const char *text)
{
    put(u, text, strlen(text));
}

/* @s percent-encoded by libcurl: every byte but [A-Za-z0-9._~-]. */
static void put_encoded(struct url *u, const char *s)
{
    char *e = curl_easy_escape(NULL, s, 0);
    if (e == NULL) {
        u->overflow = true; /* UNTESTED: ENOMEM only; url_done() says. */
        return;
    }
    put(u, e, strlen(e));
    curl_free(e);
}

void url_segment(struct url *u, const char *seg)
{
    put_encoded(u, seg);
}

void url_query(struct url *u, const char *name, const char *value)
{
    put(u, u->has_query ? "&" : "?", 1);
    u->has_query = true;
    put_encoded(u, name);
    put(u, "=", 1);
    put_encoded(u, value);
}

void url_query_u64(struct url *u, const char *name, uint64_t value)
{
    char v[24];
    snprintf(v, sizeof v, "%" PRIu64, value);
    url_query(u, name, v);
}

const char *url_done(const struct url *u)
{
    return u->overflow ? NULL : u->s;
}

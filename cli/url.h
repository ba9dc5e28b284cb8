/*
 * Manager URLs and the request URLs built on them.
 *
 * A manager is given as "HOST:PORT" or "http://HOST:PORT" (a trailing
 * slash is dropped); url_base_parse() turns either into the canonical
 * "http://HOST:PORT". A request URL is built on a base with a bounded
 * builder: literal path pieces, path segments that are percent-encoded
 * (libcurl's curl_easy_escape: a topic name never breaks out of its
 * segment), and query parameters with encoded values. No I/O.
 */
#ifndef URL_H
#define URL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define URL_MAX 2048
#define URL_BASES_MAX 16

/*
 * Canonical base URL of one manager into @out (URL_MAX bytes). Accepts
 * "HOST:PORT", "http://HOST:PORT" and "https://HOST:PORT", each with an
 * optional trailing "/"; HOST may be a name, an IPv4 address or "[V6]".
 * Returns 0 or RQ_INVALID with @why.
 */
int url_base_parse(const char *in, char *out, char *why, size_t whyn);

/*
 * Splits "URL,URL,..." (blanks around commas allowed) into at most
 * URL_BASES_MAX canonical bases. Returns 0 or RQ_INVALID with @why naming
 * the entry at fault.
 */
int url_bases_parse(const char *list, char (*out)[URL_MAX], size_t *n,
                    char *why, size_t whyn);

/* A URL being built; overflow is sticky and reported by url_done(). */
struct url {
    char s[URL_MAX];
    size_t len;
    bool overflow;
    bool has_query;
};

/* Starts @u with @base (a canonical base). */
void url_init(struct url *u, const char *base);

/* Appends @text as is ("/v1/topics/"). */
void url_path(struct url *u, const char *text);

/* Appends @seg percent-encoded: every byte but [A-Za-z0-9._~-]. */
void url_segment(struct url *u, const char *seg);

/* Appends "?name=value" or "&name=value", the value encoded. */
void url_query(struct url *u, const char *name, const char *value);
void url_query_u64(struct url *u, const char *name, uint64_t value);

/* The URL, or NULL if it did not fit in URL_MAX bytes. */
const char *url_done(const struct url *u);

#endif /* URL_H */

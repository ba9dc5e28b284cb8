/*
 * The head of an HTTP/1.1 response, parsed just enough for a load
 * generator (loadgen.h): the status, the length of the body and whether
 * the server closes the connection after it; and one integer field of a
 * JSON body found without parsing the body. Pure: no I/O.
 *
 * Only what raftq's servers send is understood: a status line, header
 * lines ending in CRLF, a blank line, and a body of Content-Length bytes.
 * A chunked body, or a body with no length that ends with the
 * connection, is refused as malformed (with a sentence saying so), as is
 * anything that is not HTTP/1.x. It is not a general HTTP client: no
 * 1xx interim answers (the requests never ask for 100-continue), no
 * trailers, no folded header lines.
 */
#ifndef HRESP_H
#define HRESP_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* The longest head accepted (status line and headers). */
#define HRESP_MAX_HEAD 16384

/* The largest Content-Length accepted (1 GiB). */
#define HRESP_MAX_BODY ((uint64_t)1 << 30)

struct hresp {
    bool complete;     /* The whole head is there; the rest is valid. */
    int status;        /* 100 to 599. */
    size_t head_len;   /* Bytes from the status line to the blank line. */
    uint64_t body_len; /* Bytes of body after the head. */
    bool close;        /* The server closes the connection after this. */
};

/*
 * Parses the head at the start of @buf, the @len bytes of the response
 * received so far (borrowed). Returns 0 with out->complete false when
 * more bytes are needed, or true and the rest of @out filled; RQ_MALFORMED
 * (not an HTTP/1.x response, a bad or missing Content-Length, a chunked
 * body) or RQ_TOOBIG (a head over HRESP_MAX_HEAD, a body over
 * HRESP_MAX_BODY) with @why.
 */
int hresp_head(const char *buf, size_t len, struct hresp *out, char *why,
               size_t whyn);

/*
 * The non-negative integer value of the member "@name" anywhere in the
 * JSON text @body (@len bytes, borrowed): the first `"name":` (blanks
 * allowed around the colon) that is not inside an escaped string, so a
 * value cannot fake it. 0 with *out, or RQ_NOTFOUND (no such member)
 * or RQ_MALFORMED (its value is not a non-negative integer that fits in
 * 63 bits). Meant for a member of the top-level object of an answer
 * whose other members are known not to hold one of that name.
 */
int hresp_json_u64(const char *body, size_t len, const char *name,
                   uint64_t *out);

#endif /* HRESP_H */

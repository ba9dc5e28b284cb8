/*
 * GET /openapi.json: the OpenAPI 3.1 document of every public and admin
 * route a manager serves (API.md sections 1 to 3 and 6, and the health,
 * metrics and status-page routes). manager/openapi.json is its source,
 * compiled in at build time; at start the manager fills in what lives in
 * the code, so the two cannot drift: the release (info.version) and the
 * error codes with their statuses (components.schemas.Code, from
 * rq_codes.h). tests/unit/test_openapi.c checks that the document names
 * exactly the routes the manager serves; tests/integration/test_openapi.py
 * sends its examples to a live cluster and validates every answer.
 */
#ifndef OPENAPI_H
#define OPENAPI_H

#include <stddef.h>

#include "rq_http.h"

/* The document @doc (@len bytes of JSON) with the release @version and
 * the error codes filled in, as a NUL-terminated string the caller frees;
 * NULL with @why set when @doc is not an OpenAPI 3.1 document. Pure. */
char *openapi_render(const char *doc, size_t len, const char *version,
                     char *why, size_t why_len);

/* The compiled-in document, unrendered, and its length. */
const char *openapi_source(size_t *len);

/* Renders the compiled-in document once for openapi_page(): 0, or -1
 * with an error logged. */
int openapi_init(void);
void openapi_close(void);

/* GET /openapi.json. The handler ignores its data. */
void openapi_page(struct rq_http_req *req, void *data);

#endif /* OPENAPI_H */

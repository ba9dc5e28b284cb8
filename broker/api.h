/*
 * The broker's HTTP interface (broker/README.md): the internal API that
 * managers use to place replicas, and the data plane (produce and read
 * records). Handlers take the struct broker as their data; they check and
 * parse input, call the broker and its replicas, and turn outcomes into
 * status codes and JSON bodies.
 */
#ifndef API_H
#define API_H

#include <stddef.h>

#include "rq_http.h"

/* The largest request body: 10,000 records of escaped JSON text. */
#define API_MAX_BODY (32u << 20)
/* A produce is refused with 413 past 10,000 records. */
#define API_MAX_RECORDS 10000

extern const struct rq_http_route api_route_table[];
extern const size_t api_route_count;

#endif /* API_H */

/*
 * The rules every JSON request body is parsed by, shared by the HTTP
 * server (rq_http_json) and whatever else reads a client's JSON. Pure: no
 * I/O.
 *
 * A body is refused, with a reason fit for a 400 answer, when it nests
 * arrays and objects deeper than RQ_JSON_MAX_DEPTH (checked by a scan
 * before the recursive parser runs, so a body of 100000 '[' never reaches
 * it), is not valid JSON or not UTF-8, repeats a key in an object (parsers
 * disagree about which copy wins), holds "\u0000" (no C string can carry
 * it), or is not an object. An empty body is an empty object.
 *
 * Also here: reading a node id out of a JSON answer, the way every caller
 * of a broker reads the "leader_id" of a 421 or of a read's answer.
 */
#ifndef RQ_JSON_H
#define RQ_JSON_H

#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define RQ_JSON_MAX_DEPTH 32

/*
 * Whether the JSON text nests arrays and objects deeper than @max. Only
 * brackets outside strings count; the text need not be valid JSON.
 */
bool rq_json_too_deep(const uint8_t *p, size_t n, unsigned max);

/* The body as a JSON object (new reference), or NULL with the reason in
 * @why. */
json_t *rq_json_parse_object(const uint8_t *p, size_t n, char *why,
                             size_t whyn);

/*
 * The member @key of @o (borrowed; NULL or not an object is allowed) as a
 * node id: its value if it is an integer from 1 to UINT32_MAX, else 0 (no
 * id: absent, null, not an integer, or out of range).
 */
uint32_t rq_json_id(const json_t *o, const char *key);

#endif /* RQ_JSON_H */

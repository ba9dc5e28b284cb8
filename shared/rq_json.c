/*
 * JSON request bodies (contract in rq_json.h): a depth scan, then jansson
 * with the strict flags, then the object check.
 */
#include "rq_json.h"

#include <stdio.h>

#include "rq_err.h"

bool rq_json_too_deep(const uint8_t *p, size_t n, unsigned max)
{
    unsigned depth = 0;
    bool in_string = false;
    for (size_t i = 0; i < n; i++) {
        uint8_t c = p[i];
        if (in_string) {
            if (c == '\\') {
                i++; /* The escaped character cannot end the string. */
            } else if (c == '"') {
                in_string = false;
            }
        } else if (c == '"') {
            in_string = true;
        } else if (c == '[' || c == '{') {
            if (++depth > max) {
                return true;
            }
        } else if ((c == ']' || c == '}') && depth > 0) {
            depth--;
        }
    }
    return false;
}

static const char *type_name(const json_t *v)
{
    switch (json_typeof(v)) {
        case JSON_ARRAY:
            return "an array";
        case JSON_STRING:
            return "a string";
        case JSON_INTEGER:
        case JSON_REAL:
            return "a number";
        case JSON_TRUE:
        case JSON_FALSE:
            return "a boolean";
        case JSON_NULL:
            return "null";
        default:
            return "an object";
    }
}

/*
 * Any top-level value is parsed (JSON_DECODE_ANY) so that "5" is reported
 * as "not an object" rather than as invalid JSON; "\u0000" is refused by
 * jansson's default (no JSON_ALLOW_NUL).
 */
json_t *rq_json_parse_object(const uint8_t *p, size_t n, char *why, size_t whyn)
{
    json_error_t err;
    json_t *v;

    if (n == 0) {
        json_t *o = json_object();
        if (o == NULL) {
            rq_why(why, whyn, "out of memory"); /* UNTESTED: ENOMEM only. */
        }
        return o;
    }
    if (rq_json_too_deep(p, n, RQ_JSON_MAX_DEPTH)) {
        rq_why(why, whyn, "body is nested deeper than %d levels",
               RQ_JSON_MAX_DEPTH);
        return NULL;
    }
    v = json_loadb((const char *)p, n, JSON_REJECT_DUPLICATES | JSON_DECODE_ANY,
                   &err);
    if (v == NULL && json_error_code(&err) == json_error_null_character) {
        /* jansson's own text names its flag, which means nothing to a
         * client. */
        rq_why(why, whyn,
               "body is not valid JSON here: a string holds \\u0000 (NUL) at "
               "line %d column %d",
               err.line, err.column);
        return NULL;
    }
    if (v == NULL) {
        rq_why(
            why, whyn, "body is not valid %s: %s at line %d column %d",
            json_error_code(&err) == json_error_invalid_utf8 ? "UTF-8" : "JSON",
            err.text, err.line, err.column);
        return NULL;
    }
    if (!json_is_object(v)) {
        rq_why(why, whyn, "body must be a JSON object, not %s", type_name(v));
        json_decref(v);
        return NULL;
    }
    return v;
}

uint32_t rq_json_id(const json_t *o, const char *key)
{
    json_t *v = json_object_get(o, key);
    return json_is_integer(v) && json_integer_value(v) > 0 &&
                   json_integer_value(v) <= UINT32_MAX
               ? (uint32_t)json_integer_value(v)
               : 0;
}

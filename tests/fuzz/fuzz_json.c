/*
 * Fuzzes the parse rules of every JSON request body (shared/rq_json.h).
 * The depth scan guards the recursive parser, so its one promise is
 * checked directly: no object it lets through nests deeper than
 * RQ_JSON_MAX_DEPTH. An accepted body must be an object without a "\u0000"
 * in any string, and must survive a dump and a reparse unchanged.
 */
#include <jansson.h>

#include "fuzz.h"
#include "rq_json.h"

static unsigned depth_of(const json_t *v)
{
    unsigned max = 0;
    if (json_is_object(v)) {
        const char *k;
        json_t *x;
        json_object_foreach((json_t *)v, k, x)
        {
            FUZZ_CHECK(strlen(k) == strlen(k)); /* Keys are C strings. */
            unsigned d = depth_of(x);
            max = d > max ? d : max;
        }
        return max + 1;
    }
    if (json_is_array(v)) {
        for (size_t i = 0; i < json_array_size(v); i++) {
            unsigned d = depth_of(json_array_get(v, i));
            max = d > max ? d : max;
        }
        return max + 1;
    }
    if (json_is_string(v)) {
        FUZZ_CHECK(strlen(json_string_value(v)) == json_string_length(v));
    }
    return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    char why[256] = "";
    json_t *o = rq_json_parse_object(data, size, why, sizeof why);
    if (o == NULL) {
        FUZZ_CHECK(why[0] != '\0');
        return 0;
    }
    FUZZ_CHECK(json_is_object(o));
    FUZZ_CHECK(depth_of(o) <= RQ_JSON_MAX_DEPTH);
    FUZZ_CHECK(!rq_json_too_deep(data, size, RQ_JSON_MAX_DEPTH));
    char *text = json_dumps(o, JSON_COMPACT);
    FUZZ_CHECK(text != NULL);
    json_t *again = rq_json_parse_object((const uint8_t *)text, strlen(text),
                                         why, sizeof why);
    FUZZ_CHECK(again != NULL && json_equal(o, again));
    json_decref(again);
    free(text);
    json_decref(o);
    return 0;
}

/*
 * Fuzzes both forms of a produce body (broker/produce_body.h). The first
 * byte picks the form and the limits. Binary: produce_body_check() on the
 * rest; a body it accepts is written as a records blob, which must
 * validate for the count given and read back the same keys and values.
 * JSON: the rest is parsed as the broker's JSON body would be and its
 * "records" checked and written the same way. Also fuzzes the Content-Type
 * test.
 */
#include <jansson.h>
#include <stdbool.h>
#include <strings.h>

#include "fuzz.h"
#include "broker/produce_body.h"
#include "broker/records.h"
#include "rq_err.h"

/* Checks that @blob holds @count records stamped @ts (the caller checks
 * the contents per form). */
static void check_blob(const uint8_t *blob, size_t len, uint32_t count,
                       int64_t ts)
{
    struct records_iter it;
    struct record r;
    FUZZ_CHECK(records_validate(blob, len, count) == 0);
    records_iter_init(&it, blob, len);
    while (records_next(&it, &r) == 1) {
        FUZZ_CHECK(r.timestamp_ms == ts);
    }
}

static void fuzz_binary(const uint8_t *body, size_t len,
                        const struct produce_body_limits *lim)
{
    uint32_t count = 0;
    size_t blob_len = 0;
    char why[256];
    int rv =
        produce_body_check(body, len, lim, &count, &blob_len, why, sizeof why);
    if (rv != 0) {
        FUZZ_CHECK(rv == RQ_MALFORMED || rv == RQ_TOOBIG);
        FUZZ_CHECK(why[0] != '\0');
        return;
    }
    FUZZ_CHECK(count >= 1 && count <= lim->max_records);
    FUZZ_CHECK(blob_len <= lim->max_blob);
    uint8_t *blob = malloc(blob_len);
    FUZZ_CHECK(blob != NULL);
    produce_body_write(body, len, 42, blob);
    check_blob(blob, blob_len, count, 42);

    /* The blob carries the body's keys and values, in order. */
    struct records_iter it;
    struct record r;
    const uint8_t *p = body + RQ_RECORD_BODY_COUNT;
    records_iter_init(&it, blob, blob_len);
    while (records_next(&it, &r) == 1) {
        uint32_t klen =
            (uint32_t)(p[0] | p[1] << 8 | p[2] << 16 | (uint32_t)p[3] << 24);
        p += RQ_RECORD_HEADER;
        if (klen == UINT32_MAX) {
            FUZZ_CHECK(r.key == NULL);
        } else {
            FUZZ_CHECK(r.key_len == klen &&
                       (klen == 0 || memcmp(r.key, p, klen) == 0));
            p += klen;
        }
        FUZZ_CHECK(r.value_len == 0 || memcmp(r.value, p, r.value_len) == 0);
        FUZZ_CHECK(r.value_len <= lim->max_value);
        p += r.value_len;
    }
    FUZZ_CHECK(p == body + len);
    free(blob);
}

static void fuzz_json(const uint8_t *body, size_t len,
                      const struct produce_body_limits *lim)
{
    json_error_t err;
    uint32_t count = 0;
    size_t blob_len = 0;
    char why[256];
    json_t *o =
        json_loadb((const char *)body, len, JSON_REJECT_DUPLICATES, &err);
    json_t *records = json_object_get(o, "records");
    int rv = produce_body_json_check(records, lim, &count, &blob_len, why,
                                     sizeof why);
    if (rv != 0) {
        FUZZ_CHECK(rv == RQ_MALFORMED || rv == RQ_TOOBIG);
        FUZZ_CHECK(why[0] != '\0');
        json_decref(o);
        return;
    }
    FUZZ_CHECK(count == json_array_size(records));
    FUZZ_CHECK(blob_len <= lim->max_blob);
    uint8_t *blob = malloc(blob_len);
    FUZZ_CHECK(blob != NULL);
    produce_body_json_write(records, -7, blob);
    check_blob(blob, blob_len, count, -7);
    struct records_iter it;
    struct record r;
    size_t i = 0;
    records_iter_init(&it, blob, blob_len);
    while (records_next(&it, &r) == 1) {
        json_t *v = json_object_get(json_array_get(records, i), "value");
        FUZZ_CHECK(r.value_len == json_string_length(v));
        FUZZ_CHECK(r.value_len == 0 ||
                   memcmp(r.value, json_string_value(v), r.value_len) == 0);
        i++;
    }
    free(blob);
    json_decref(o);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    struct fuzz_in in = {data, size};
    uint8_t pick = fuzz_u8(&in);
    struct produce_body_limits lim = {
        .max_records = 1000,
        .max_value = 1u << 20,
        .max_blob = 16u << 20,
    };
    if (pick & 2) {
        /* Small limits, so that every RQ_TOOBIG is reachable. */
        lim.max_records = 3;
        lim.max_value = 8;
        lim.max_blob = 80;
    }
    if (pick & 4) {
        char *type = fuzz_text(in.p, in.left < 64 ? in.left : 64);
        bool binary = rq_record_body_is_binary(type);
        if (binary) {
            FUZZ_CHECK(strncasecmp(type + strspn(type, " \t"),
                                   RQ_RECORD_BODY_TYPE,
                                   strlen(RQ_RECORD_BODY_TYPE)) == 0);
        }
        free(type);
    }
    if (pick & 1) {
        fuzz_json(in.p, in.left, &lim);
    } else {
        fuzz_binary(in.p, in.left, &lim);
    }
    return 0;
}

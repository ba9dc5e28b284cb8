/*
 * Fuzzes the records blob (broker/records.h), the bytes every batch holds
 * on disk and in the Raft log. The first four bytes are the record count
 * that travels beside the blob. records_validate() and the iterator must
 * agree: a blob validates for @count exactly when iterating it yields
 * @count records and then the end, with no error. Each record iterated is
 * re-encoded, and the re-encoding must reproduce the blob.
 */
#include "fuzz.h"
#include "broker/records.h"
#include "rq_err.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    struct fuzz_in in = {data, size};
    uint32_t count = (uint32_t)(fuzz_u8(&in) | fuzz_u8(&in) << 8);
    const uint8_t *blob = in.p;
    size_t len = in.left;
    struct records_iter it;
    struct record r;
    struct rq_buf again;
    uint32_t n = 0;
    int rv;

    rq_buf_init(&again);
    records_iter_init(&it, blob, len);
    while ((rv = records_next(&it, &r)) == 1) {
        FUZZ_CHECK(r.value >= blob && r.value + r.value_len <= blob + len);
        FUZZ_CHECK(r.key == NULL ||
                   (r.key >= blob && r.key + r.key_len <= blob + len));
        records_put(&again, r.timestamp_ms, r.key, r.key_len, r.key != NULL,
                    r.value, r.value_len);
        n++;
    }
    FUZZ_CHECK(rv == 0 || rv == RQ_MALFORMED);
    int valid = records_validate(blob, len, count);
    FUZZ_CHECK(valid == 0 || valid == RQ_MALFORMED);
    FUZZ_CHECK((valid == 0) == (rv == 0 && n == count));
    if (rv == 0) {
        FUZZ_CHECK(again.err == 0 && again.len == len);
        FUZZ_CHECK(len == 0 || memcmp(again.base, blob, len) == 0);
    }
    rq_buf_close(&again);
    return 0;
}

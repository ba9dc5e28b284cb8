/*
 * Unit tests of the consumers' read-ahead cache (readahead.h): what a read
 * brought beyond the consumes it served is kept and handed out only at
 * exactly its offsets in its group, never across a gap; a new read
 * replaces the entry; large values make reads ask for fewer records; and
 * entries are dropped least recently used first past the limits.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "manager/readahead.h"

/* Records @first.. @first + @n - 1, values "v<offset>" padded to @size
 * bytes (0: unpadded). */
static json_t *records(uint64_t first, size_t n, size_t size)
{
    json_t *a = json_array();
    for (size_t i = 0; i < n; i++) {
        char v[64];
        snprintf(v, sizeof v, "v%llu", (unsigned long long)(first + i));
        json_t *val;
        if (size > 0) {
            char *big = malloc(size + 1);
            assert_non_null(big);
            memset(big, 'x', size);
            memcpy(big, v, strlen(v) < size ? strlen(v) : size);
            big[size] = '\0';
            val = json_string(big);
            free(big);
        } else {
            val = json_string(v);
        }
        json_array_append_new(
            a, json_pack("{s:I,s:o}", "offset", (json_int_t)(first + i),
                         "value", val));
    }
    return a;
}

static uint64_t offset_at(const json_t *a, size_t i)
{
    return (uint64_t)json_integer_value(
        json_object_get(json_array_get(a, i), "offset"));
}

/* A read of 10 records from offset 100 served 3 consumes: 103..109 are
 * kept, handed out from any offset among them, at most as many as asked,
 * and only for the same consumer and group. */
static void test_readahead_keeps_what_a_read_brought(void **state)
{
    (void)state;
    struct readahead ra;
    readahead_init(&ra);
    json_t *recs = records(100, 10, 0);
    assert_int_equal(readahead_put(&ra, 7, 42, recs, 3), 0);
    json_decref(recs);

    assert_null(readahead_get(&ra, 7, 42, 102, 5)); /* Served already. */
    assert_null(readahead_get(&ra, 7, 42, 110, 5)); /* Not read. */
    assert_null(readahead_get(&ra, 8, 42, 103, 5)); /* Another consumer. */
    assert_null(readahead_get(&ra, 7, 43, 103, 5)); /* Another group. */
    assert_null(readahead_get(&ra, 7, 42, 105, 0));

    json_t *got = readahead_get(&ra, 7, 42, 103, 4);
    assert_non_null(got);
    assert_int_equal(json_array_size(got), 4);
    for (size_t i = 0; i < 4; i++) {
        assert_int_equal(offset_at(got, i), 103 + i);
    }
    json_decref(got);
    got = readahead_get(&ra, 7, 42, 107, 64);
    assert_non_null(got);
    assert_int_equal(json_array_size(got), 3); /* 107, 108, 109 */
    assert_int_equal(offset_at(got, 2), 109);
    json_decref(got);
    assert_int_equal(ra.n, 1);
    readahead_close(&ra);
}

/* Only records that follow on without a gap are kept; a record that is
 * not one ends what is kept too; a read with nothing beyond what it
 * served leaves nothing cached; a new read replaces the entry. */
static void test_readahead_gaps_and_replacement(void **state)
{
    (void)state;
    struct readahead ra;
    readahead_init(&ra);
    json_t *recs = records(0, 5, 0);
    json_t *more = records(9, 3, 0); /* 9, 10, 11: a gap after 4. */
    json_array_extend(recs, more);
    json_decref(more);
    assert_int_equal(readahead_put(&ra, 1, 5, recs, 1), 0);
    json_decref(recs);
    json_t *got = readahead_get(&ra, 1, 5, 1, 64);
    assert_int_equal(json_array_size(got), 4); /* 1..4 */
    json_decref(got);
    assert_null(readahead_get(&ra, 1, 5, 9, 64));

    recs = records(20, 3, 0);
    json_array_set_new(recs, 2, json_pack("{s:I}", "offset", (json_int_t)22));
    assert_int_equal(readahead_put(&ra, 1, 5, recs, 0), 0);
    assert_null(readahead_get(&ra, 1, 5, 1, 64)); /* Replaced. */
    got = readahead_get(&ra, 1, 5, 20, 64);
    assert_int_equal(json_array_size(got), 2); /* 22 has no value. */
    json_decref(got);

    assert_int_equal(readahead_put(&ra, 1, 5, recs, 3), 0);
    json_decref(recs);
    assert_null(readahead_get(&ra, 1, 5, 20, 64));
    assert_int_equal(ra.bytes, 0);
    readahead_close(&ra);
}

/* A read asks for READAHEAD_RECORDS, or fewer after large values (about
 * READAHEAD_ENTRY_BYTES a read), never fewer than the consumes need; an
 * entry keeps at most READAHEAD_ENTRY_BYTES of values. */
static void test_readahead_want_and_entry_bytes(void **state)
{
    (void)state;
    struct readahead ra;
    readahead_init(&ra);
    assert_int_equal(readahead_want(&ra, 3, 1), READAHEAD_RECORDS);
    assert_int_equal(readahead_want(&ra, 3, 100), 100);

    size_t size = READAHEAD_ENTRY_BYTES / 4;
    json_t *recs = records(0, 8, size);
    assert_int_equal(readahead_put(&ra, 3, 9, recs, 1), 0);
    json_decref(recs);
    assert_int_equal(readahead_want(&ra, 3, 1), 4);
    assert_int_equal(readahead_want(&ra, 3, 6), 6);
    json_t *got = readahead_get(&ra, 3, 9, 1, 64);
    assert_int_equal(json_array_size(got), 4);
    json_decref(got);
    assert_int_equal(ra.bytes, 4 * size);

    recs = records(0, 2, READAHEAD_ENTRY_BYTES * 2);
    assert_int_equal(readahead_put(&ra, 3, 9, recs, 1), 0);
    json_decref(recs);
    assert_int_equal(readahead_want(&ra, 3, 1), 1);
    assert_null(readahead_get(&ra, 3, 9, 1, 64)); /* Too large to keep. */
    readahead_close(&ra);
}

/* Past READAHEAD_BYTES in all, the least recently used entries go first
 * (a get counts as a use); past READAHEAD_ENTRIES likewise; forget drops
 * one. */
static void test_readahead_drops_least_recently_used(void **state)
{
    (void)state;
    struct readahead ra;
    readahead_init(&ra);
    size_t size = 1024;
    size_t per = READAHEAD_ENTRY_BYTES / size; /* Records an entry keeps. */
    size_t fit = READAHEAD_BYTES / READAHEAD_ENTRY_BYTES;
    for (uint64_t id = 1; id <= fit; id++) {
        json_t *recs = records(0, per + 1, size);
        assert_int_equal(readahead_put(&ra, id, 1, recs, 1), 0);
        json_decref(recs);
    }
    assert_int_equal(ra.n, fit);
    assert_int_equal(ra.bytes, READAHEAD_BYTES);
    json_t *got = readahead_get(&ra, 1, 1, 1, 1); /* 1 is used again. */
    assert_non_null(got);
    json_decref(got);
    json_t *recs = records(0, per + 1, size);
    assert_int_equal(readahead_put(&ra, fit + 1, 1, recs, 1), 0);
    json_decref(recs);
    assert_int_equal(ra.n, fit);
    got = readahead_get(&ra, 1, 1, 1, 1);
    assert_non_null(got);
    json_decref(got);
    assert_null(readahead_get(&ra, 2, 1, 1, 1)); /* The oldest, dropped. */
    got = readahead_get(&ra, 3, 1, 1, 1);
    assert_non_null(got);
    json_decref(got);

    readahead_forget(&ra, 3);
    assert_null(readahead_get(&ra, 3, 1, 1, 1));
    assert_int_equal(ra.n, fit - 1);
    readahead_close(&ra);

    readahead_init(&ra);
    for (uint64_t id = 1; id <= READAHEAD_ENTRIES + 10; id++) {
        recs = records(0, 2, 0);
        assert_int_equal(readahead_put(&ra, id, 1, recs, 1), 0);
        json_decref(recs);
    }
    assert_int_equal(ra.n, READAHEAD_ENTRIES);
    assert_null(readahead_get(&ra, 10, 1, 1, 1));
    got = readahead_get(&ra, 11, 1, 1, 1);
    assert_non_null(got);
    json_decref(got);
    readahead_close(&ra);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_readahead_keeps_what_a_read_brought),
        cmocka_unit_test(test_readahead_gaps_and_replacement),
        cmocka_unit_test(test_readahead_want_and_entry_bytes),
        cmocka_unit_test(test_readahead_drops_least_recently_used),
    };
    return cmocka_run_group_tests_name("readahead", tests, NULL, NULL);
}

/*
 * Unit tests of the partition log on real files in a temporary directory:
 * reads at every offset across many small segments, recovery from torn and
 * corrupt tails, index rebuilds, refusals of broken directories,
 * retention, the raw batch copy between logs, reset, and the bound on open
 * files.
 */
#define _XOPEN_SOURCE 700
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>
#include <dirent.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include <zlib.h>

#include "broker/plog.h"
#include "broker/records.h"
#include "rq_err.h"
#include "rq_metrics.h"
#include "rq_wire.h"

#include "unit_util.h"

#define SMALL_SEGMENT 4096
#define SMALL_INTERVAL 256
#define READ_MAX 4096

struct fixture {
    char dir[64];
    char path[128]; /* Scratch for file names. */
    struct plog *log;
    uint64_t raft; /* Raft index of the last batch appended. */
};

/* ---- Helpers ---- */

/* The value of the record at @off: its size and bytes follow from it. */
static size_t value_size(uint64_t off)
{
    return (size_t)((off * 37) % 301);
}

static uint8_t value_byte(uint64_t off, size_t j)
{
    return (uint8_t)(off * 131 + j * 7);
}

static void put_record(struct rq_buf *b, uint64_t off, size_t vsize)
{
    uint8_t v[8192];
    char key[32];
    assert_true(vsize <= sizeof v);
    for (size_t j = 0; j < vsize; j++) {
        v[j] = value_byte(off, j);
    }
    int klen = snprintf(key, sizeof key, "k%" PRIu64, off);
    records_put(b, (int64_t)off * 10, key, (size_t)klen, off % 3 != 0, v,
                vsize);
}

static void check_record(const struct record *r, uint64_t off, size_t vsize)
{
    char key[32];
    int klen = snprintf(key, sizeof key, "k%" PRIu64, off);
    assert_true(r->timestamp_ms == (int64_t)off * 10);
    if (off % 3 == 0) {
        assert_null(r->key);
    } else {
        assert_int_equal(r->key_len, klen);
        assert_memory_equal(r->key, key, (size_t)klen);
    }
    assert_int_equal(r->value_len, vsize);
    for (size_t j = 0; j < vsize; j++) {
        if (r->value[j] != value_byte(off, j)) {
            fail_msg("offset %" PRIu64 " byte %zu differs", off, j);
        }
    }
}

/* Appends a batch of @count records at the log's next offset, each with a
 * value of @vsize bytes (or value_size() when @vsize is SIZE_MAX). */
static uint64_t append_sized(struct fixture *f, uint32_t count, size_t vsize)
{
    struct rq_buf b;
    uint64_t first = plog_next_offset(f->log);
    uint64_t base = UINT64_MAX;
    rq_buf_init(&b);
    for (uint32_t i = 0; i < count; i++) {
        uint64_t off = first + i;
        put_record(&b, off, vsize == SIZE_MAX ? value_size(off) : vsize);
    }
    assert_int_equal(b.err, 0);
    f->raft += 1 + f->raft % 2; /* Raft indexes rise, with holes. */
    assert_int_equal(plog_append(f->log, f->raft, b.base, b.len, count,
                                 (int64_t)(first + count - 1) * 10, &base),
                     0);
    assert_true(base == first);
    rq_buf_close(&b);
    return base;
}

static uint64_t append(struct fixture *f, uint32_t count)
{
    return append_sized(f, count, SIZE_MAX);
}

/* Appends batches of 1 to 7 records until there are @nsegs segments. */
static void fill(struct fixture *f, size_t nsegs)
{
    while (plog_segments(f->log, NULL, 0) < nsegs) {
        append(f, (uint32_t)(1 + f->raft % 7));
    }
}

static int open_log(struct fixture *f, uint64_t segment_bytes)
{
    char why[256];
    struct plog_config cfg = {f->dir, segment_bytes, SMALL_INTERVAL};
    int rv = plog_open(&cfg, &f->log, why, sizeof why);
    if (rv != 0) {
        f->log = NULL;
    }
    return rv;
}

static void reopen(struct fixture *f)
{
    plog_close(f->log);
    assert_int_equal(open_log(f, SMALL_SEGMENT), 0);
}

/* Reads [from, to) in reads of @max records and checks every record. */
static void check_range(struct plog *l, uint64_t from, uint64_t to,
                        uint32_t max)
{
    struct rq_buf scratch;
    struct record *out = calloc(max, sizeof *out);
    uint64_t *offsets = calloc(max, sizeof *offsets);
    uint32_t n;
    assert_non_null(out);
    assert_non_null(offsets);
    rq_buf_init(&scratch);
    for (uint64_t off = from; off < to; off += n) {
        assert_int_equal(
            plog_read(l, off, max, SIZE_MAX, &scratch, out, offsets, &n), 0);
        uint64_t left = to - off;
        assert_int_equal(n, left < max ? left : max);
        for (uint32_t i = 0; i < n; i++) {
            assert_true(offsets[i] == off + i);
            check_record(&out[i], off + i, value_size(off + i));
        }
    }
    rq_buf_close(&scratch);
    free(out);
    free(offsets);
}

static const char *seg_file(struct fixture *f, uint64_t base, const char *ext)
{
    snprintf(f->path, sizeof f->path, "%s/%020" PRIu64 ".%s", f->dir, base,
             ext);
    return f->path;
}

static uint8_t *read_whole(const char *path, size_t *len)
{
    struct stat st;
    int fd = open(path, O_RDONLY);
    assert_true(fd >= 0);
    assert_int_equal(fstat(fd, &st), 0);
    uint8_t *p = malloc((size_t)st.st_size + 1);
    assert_non_null(p);
    assert_int_equal(pread(fd, p, (size_t)st.st_size, 0), st.st_size);
    close(fd);
    *len = (size_t)st.st_size;
    return p;
}

static void write_whole(const char *path, const uint8_t *p, size_t len)
{
    int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0644);
    assert_true(fd >= 0);
    assert_int_equal(write(fd, p, len), (ssize_t)len);
    close(fd);
}

static size_t count_dir(const char *dir, const char *suffix)
{
    size_t n = 0;
    DIR *d = opendir(dir);
    struct dirent *e;
    assert_non_null(d);
    while ((e = readdir(d)) != NULL) {
        size_t len = strlen(e->d_name);
        if (e->d_name[0] == '.') {
            continue;
        }
        if (suffix == NULL ||
            (len > strlen(suffix) &&
             strcmp(e->d_name + len - strlen(suffix), suffix) == 0)) {
            n++;
        }
    }
    closedir(d);
    return n;
}

static size_t open_fds(void)
{
    return count_dir("/proc/self/fd", NULL);
}

static int setup(void **state)
{
    struct fixture *f = calloc(1, sizeof *f);
    assert_non_null(f);
    snprintf(f->dir, sizeof f->dir, "/tmp/plog-test-XXXXXX");
    assert_non_null(mkdtemp(f->dir));
    assert_int_equal(open_log(f, SMALL_SEGMENT), 0);
    *state = f;
    return 0;
}

static int teardown(void **state)
{
    struct fixture *f = *state;
    plog_close(f->log);
    rm_tree(f->dir);
    free(f);
    return 0;
}

/* ---- Appending and reading ---- */

static void test_plog_empty_log_starts_at_zero(void **state)
{
    struct fixture *f = *state;
    struct plog_segment segs[2];
    struct rq_buf scratch;
    struct record out[4];
    uint32_t n = 99;

    assert_true(plog_first_offset(f->log) == 0);
    assert_true(plog_next_offset(f->log) == 0);
    assert_true(plog_last_raft_index(f->log) == 0);
    assert_true(plog_bytes(f->log) == 0);
    assert_int_equal(plog_segments(f->log, segs, 2), 1);
    assert_false(segs[0].sealed);
    rq_buf_init(&scratch);
    assert_int_equal(plog_read(f->log, 0, 4, 100, &scratch, out, NULL, &n), 0);
    assert_int_equal(n, 0);
    assert_int_equal(plog_read(f->log, 1, 4, 100, &scratch, out, NULL, &n),
                     RQ_NOTFOUND);
    rq_buf_close(&scratch);
    assert_int_equal(plog_sync(f->log), 0);

    /* A directory that does not exist yet is created, parents too. */
    plog_close(f->log);
    char dir[96];
    snprintf(dir, sizeof dir, "%s/a/b", f->dir);
    char why[128];
    struct plog_config cfg = {dir, 0, 0};
    assert_int_equal(plog_open(&cfg, &f->log, why, sizeof why), 0);
    assert_true(plog_next_offset(f->log) == 0);
}

static void test_plog_read_every_offset_across_segments(void **state)
{
    struct fixture *f = *state;
    struct plog_segment segs[256];

    fill(f, 12);
    uint64_t next = plog_next_offset(f->log);
    size_t nsegs = plog_segments(f->log, segs, 256);
    assert_true(nsegs >= 12);
    uint64_t bytes = 0;
    for (size_t i = 0; i < nsegs; i++) {
        assert_true(segs[i].base_offset ==
                    (i == 0 ? 0 : segs[i - 1].next_offset));
        assert_int_equal(segs[i].sealed, i + 1 < nsegs);
        /* A segment rolls once it has reached segment_bytes. */
        if (i + 1 < nsegs) {
            assert_true(segs[i].bytes >= SMALL_SEGMENT);
        }
        bytes += segs[i].bytes;
    }
    assert_true(segs[nsegs - 1].next_offset == next);
    assert_true(plog_bytes(f->log) == bytes);
    assert_true(plog_last_raft_index(f->log) == f->raft);

    /* From every offset, a few records (crossing segment ends too). */
    struct rq_buf scratch;
    struct record out[5];
    uint64_t offsets[5];
    uint32_t n;
    rq_buf_init(&scratch);
    for (uint64_t off = 0; off <= next; off++) {
        assert_int_equal(
            plog_read(f->log, off, 5, SIZE_MAX, &scratch, out, offsets, &n), 0);
        assert_int_equal(n, next - off < 5 ? next - off : 5);
        for (uint32_t i = 0; i < n; i++) {
            assert_true(offsets[i] == off + i);
            check_record(&out[i], off + i, value_size(off + i));
        }
    }
    assert_int_equal(
        plog_read(f->log, next + 1, 5, SIZE_MAX, &scratch, out, offsets, &n),
        RQ_NOTFOUND);
    rq_buf_close(&scratch);

    /* A consumer reading on from where it stopped, in several sizes. */
    check_range(f->log, 0, next, 1);
    check_range(f->log, 0, next, 3);
    check_range(f->log, 7, next, READ_MAX);
}

static void test_plog_read_limits(void **state)
{
    struct fixture *f = *state;
    struct rq_buf scratch;
    struct record out[10];
    uint32_t n;

    append_sized(f, 10, 100);
    rq_buf_init(&scratch);
    assert_int_equal(plog_read(f->log, 0, 10, 250, &scratch, out, NULL, &n), 0);
    assert_int_equal(n, 2);
    assert_int_equal(plog_read(f->log, 0, 10, 300, &scratch, out, NULL, &n), 0);
    assert_int_equal(n, 3);
    /* At least one record, however small the budget. */
    assert_int_equal(plog_read(f->log, 4, 10, 0, &scratch, out, NULL, &n), 0);
    assert_int_equal(n, 1);
    check_record(&out[0], 4, 100);
    assert_int_equal(plog_read(f->log, 1, 3, SIZE_MAX, &scratch, out, NULL, &n),
                     0);
    assert_int_equal(n, 3);
    check_record(&out[2], 3, 100);
    assert_int_equal(plog_read(f->log, 0, 0, SIZE_MAX, &scratch, out, NULL, &n),
                     0);
    assert_int_equal(n, 0);
    rq_buf_close(&scratch);
}

/* A batch larger than a read chunk is read record by record. */
static void test_plog_read_inside_a_large_batch(void **state)
{
    struct fixture *f = *state;
    struct rq_buf scratch;
    struct record out[8];
    uint64_t offsets[8];
    uint32_t n;

    append_sized(f, 3, 10);
    append_sized(f, 400, 4000); /* About 1.6 MB. */
    append_sized(f, 5, 10);
    rq_buf_init(&scratch);
    const uint64_t starts[] = {0, 3, 4, 200, 401, 402, 403, 407};
    for (size_t i = 0; i < sizeof starts / sizeof starts[0]; i++) {
        assert_int_equal(plog_read(f->log, starts[i], 2, SIZE_MAX, &scratch,
                                   out, offsets, &n),
                         0);
        assert_int_equal(n, starts[i] == 407 ? 1 : 2);
        for (uint32_t k = 0; k < n; k++) {
            uint64_t off = starts[i] + k;
            check_record(&out[k], off, off >= 3 && off < 403 ? 4000 : 10);
        }
    }
    /* Reading on from each stop, then at random offsets. */
    for (uint64_t off = 0; off < 408; off += n) {
        assert_int_equal(
            plog_read(f->log, off, 7, 20000, &scratch, out, offsets, &n), 0);
        assert_true(n >= 1);
        for (uint32_t k = 0; k < n; k++) {
            uint64_t o = off + k;
            check_record(&out[k], o, o >= 3 && o < 403 ? 4000 : 10);
        }
    }
    for (int i = 0; i < 50; i++) {
        uint64_t off = (uint64_t)(i * 7919) % 408;
        assert_int_equal(
            plog_read(f->log, off, 1, 0, &scratch, out, offsets, &n), 0);
        assert_int_equal(n, 1);
        check_record(&out[0], off, off >= 3 && off < 403 ? 4000 : 10);
    }
    rq_buf_close(&scratch);
}

static void test_plog_reopen_preserves_everything(void **state)
{
    struct fixture *f = *state;
    struct plog_segment before[64];
    struct plog_segment after[64];

    fill(f, 6);
    append(f, 3); /* Something in the active segment. */
    size_t n = plog_segments(f->log, before, 64);
    uint64_t bytes = plog_bytes(f->log);
    reopen(f);
    assert_int_equal(plog_segments(f->log, after, 64), n);
    for (size_t i = 0; i < n; i++) {
        assert_true(after[i].base_offset == before[i].base_offset);
        assert_true(after[i].next_offset == before[i].next_offset);
        assert_true(after[i].bytes == before[i].bytes);
        assert_true(after[i].last_raft_index == before[i].last_raft_index);
        assert_int_equal(after[i].sealed, before[i].sealed);
    }
    assert_true(plog_bytes(f->log) == bytes);
    assert_true(plog_last_raft_index(f->log) == f->raft);
    check_range(f->log, 0, plog_next_offset(f->log), 11);

    /* Appends continue after the reopen, and so does rolling. */
    uint64_t next = plog_next_offset(f->log);
    assert_true(append(f, 2) == next);
    fill(f, n + 2);
    check_range(f->log, 0, plog_next_offset(f->log), 64);
}

/*
 * Reads of thousands of records in one call, through batches that straddle
 * read chunks (read again whole, to check their crc) and a batch too large
 * for a chunk (read record by record), and lookups in the active segment's
 * index.
 */
static void test_plog_reads_span_chunks(void **state)
{
    struct fixture *f = *state;

    reopen(f);
    plog_close(f->log);
    assert_int_equal(open_log(f, 8u << 20), 0);
    for (int i = 0; i < 12; i++) {
        append(f, 300 + (uint32_t)i * 40);
    }
    append(f, 20000); /* Over 3 MB. */
    for (int i = 0; i < 3000; i++) {
        append(f, 1 + (uint32_t)i % 3);
    }
    uint64_t next = plog_next_offset(f->log);
    assert_int_equal(plog_segments(f->log, NULL, 0), 1);
    check_range(f->log, 0, next, READ_MAX);
    for (uint64_t from = 1; from < next; from += next / 9) {
        check_range(f->log, from, next, 1000 + (uint32_t)from % 3000);
    }
    check_range(f->log, next - 26000, next, 13);

    struct rq_buf scratch;
    struct record out[3];
    uint64_t offsets[3];
    uint32_t n;
    rq_buf_init(&scratch);
    for (uint64_t k = 0; k < 400; k++) {
        uint64_t off = (k * 104729) % next;
        assert_int_equal(
            plog_read(f->log, off, 3, SIZE_MAX, &scratch, out, offsets, &n), 0);
        assert_int_equal(n, next - off < 3 ? next - off : 3);
        check_record(&out[0], off, value_size(off));
    }

    /* With a sparse index, reads step over many batches by their headers;
     * the index is rebuilt for the new interval. */
    plog_close(f->log);
    char why[128];
    struct plog_config cfg = {f->dir, 8u << 20, 1u << 20};
    assert_int_equal(plog_open(&cfg, &f->log, why, sizeof why), 0);
    for (uint64_t k = 0; k < 100; k++) {
        uint64_t off = next - 1 - (k * 7919) % 9000;
        assert_int_equal(
            plog_read(f->log, off, 3, SIZE_MAX, &scratch, out, offsets, &n), 0);
        assert_int_equal(n, next - off < 3 ? next - off : 3);
        check_record(&out[0], off, value_size(off));
    }
    rq_buf_close(&scratch);
}

/* A sealed segment is not scanned on open; a bad batch in it is found
 * when read, and reads elsewhere go on. */
static void test_plog_corrupt_sealed_batch_fails_its_read(void **state)
{
    struct fixture *f = *state;
    struct plog_segment segs[16];
    struct rq_buf scratch;
    struct record out[READ_MAX];
    uint32_t n;

    fill(f, 4);
    plog_segments(f->log, segs, 16);
    plog_close(f->log);
    f->log = NULL;
    char path[128];
    snprintf(path, sizeof path, "%s", seg_file(f, segs[1].base_offset, "seg"));
    size_t len;
    uint8_t *bytes = read_whole(path, &len);
    uint32_t first_count = rq_wire_u32_at(bytes + 12);
    uint64_t second = 8 + rq_wire_u32_at(bytes + 4);
    uint64_t second_end = second + 8 + rq_wire_u32_at(bytes + second + 4);
    assert_true(second_end < len);
    bytes[second_end - 1] ^= 0x01; /* The last value byte of batch two. */
    write_whole(path, bytes, len);
    free(bytes);

    assert_int_equal(open_log(f, SMALL_SEGMENT), 0);
    rq_buf_init(&scratch);
    /* The good records before the bad batch come back, then it fails. */
    uint64_t base = segs[1].base_offset;
    assert_int_equal(
        plog_read(f->log, base, READ_MAX, SIZE_MAX, &scratch, out, NULL, &n),
        0);
    assert_int_equal(n, first_count);
    assert_int_equal(plog_read(f->log, base + first_count, READ_MAX, SIZE_MAX,
                               &scratch, out, NULL, &n),
                     RQ_MALFORMED);
    assert_int_equal(n, 0);
    rq_buf_close(&scratch);
    check_range(f->log, 0, base, 1); /* One by one: never reaching it. */
    check_range(f->log, segs[2].base_offset, plog_next_offset(f->log), 5);
}

static void test_plog_raft_index_must_increase(void **state)
{
    struct fixture *f = *state;
    struct rq_buf b;
    uint64_t base;

    rq_buf_init(&b);
    put_record(&b, 0, 5);
    assert_int_equal(plog_append(f->log, 5, b.base, b.len, 1, 0, &base), 0);
    assert_int_equal(plog_append(f->log, 5, b.base, b.len, 1, 0, &base),
                     RQ_INVALID);
    assert_int_equal(plog_append(f->log, 4, b.base, b.len, 1, 0, &base),
                     RQ_INVALID);
    assert_int_equal(plog_append(f->log, 0, b.base, b.len, 1, 0, &base),
                     RQ_INVALID);
    /* A header that would lie about its records is never written. */
    uint64_t bytes = plog_bytes(f->log);
    assert_int_equal(plog_append(f->log, 6, b.base, b.len, 2, 0, &base),
                     RQ_MALFORMED);
    assert_int_equal(plog_append(f->log, 6, b.base, b.len - 1, 1, 0, &base),
                     RQ_MALFORMED);
    assert_int_equal(plog_append(f->log, 6, b.base, b.len, 0, 0, &base),
                     RQ_INVALID);
    assert_true(plog_bytes(f->log) == bytes);
    assert_true(plog_next_offset(f->log) == 1);
    assert_int_equal(plog_append(f->log, 6, b.base, b.len, 1, 0, &base), 0);
    assert_true(base == 1);
    rq_buf_close(&b);
    f->raft = 6;
    reopen(f);
    assert_true(plog_last_raft_index(f->log) == 6);
    assert_true(plog_next_offset(f->log) == 2);
}

static void test_plog_config_limits(void **state)
{
    struct fixture *f = *state;
    char why[256] = "";
    struct plog *l = NULL;
    struct plog_config cfg = {f->dir, (1ull << 30) + 1, 0};
    assert_int_equal(plog_open(&cfg, &l, why, sizeof why), RQ_INVALID);
    assert_non_null(strstr(why, "segment_bytes"));
    assert_null(l);
}

/* ---- Recovery ---- */

/*
 * Cuts the active segment at every byte of its last batch, and flips each
 * of those bytes: every time the log reopens ending at the batch before,
 * and appends carry on from there.
 */
static void test_plog_torn_tail_is_cut(void **state)
{
    struct fixture *f = *state;
    struct plog_segment segs[64];

    fill(f, 3);
    append(f, 2);
    size_t n = plog_segments(f->log, segs, 64);
    uint64_t last_pos = segs[n - 1].bytes;
    uint64_t last_base = plog_next_offset(f->log);
    uint64_t prev_raft = f->raft;
    append(f, 3);
    assert_int_equal(plog_segments(f->log, NULL, 0), n);
    uint64_t raft = f->raft;
    uint64_t active_base = segs[n - 1].base_offset;
    plog_close(f->log);
    f->log = NULL;

    char path[128];
    snprintf(path, sizeof path, "%s", seg_file(f, active_base, "seg"));
    size_t len;
    uint8_t *orig = read_whole(path, &len);
    uint8_t *bad = malloc(len);
    assert_non_null(bad);
    assert_true(len > last_pos);

    for (int mode = 0; mode < 2; mode++) {
        for (size_t at = (size_t)last_pos; at < len; at++) {
            memcpy(bad, orig, len);
            if (mode == 0) {
                write_whole(path, bad, at);
            } else {
                bad[at] ^= 0x5a;
                write_whole(path, bad, len);
            }
            assert_int_equal(open_log(f, SMALL_SEGMENT), 0);
            assert_true(plog_next_offset(f->log) == last_base);
            assert_true(plog_last_raft_index(f->log) == prev_raft);
            struct stat st;
            assert_int_equal(stat(path, &st), 0);
            assert_true((uint64_t)st.st_size == last_pos);
            check_range(f->log, last_base - 2, last_base, 5);
            f->raft = prev_raft;
            assert_true(append(f, 3) == last_base);
            plog_close(f->log);
            f->log = NULL;
        }
    }
    /* The untouched file reopens whole. */
    write_whole(path, orig, len);
    assert_int_equal(open_log(f, SMALL_SEGMENT), 0);
    assert_true(plog_next_offset(f->log) == last_base + 3);
    assert_true(plog_last_raft_index(f->log) == raft);
    check_range(f->log, 0, last_base + 3, READ_MAX);
    free(orig);
    free(bad);
}

/* A batch in the last segment whose crc holds but which plog_append could
 * not have written (records that do not add up to its count, a Raft index
 * that does not rise) is cut like a torn tail: kept, it could be neither
 * read nor copied to a peer. */
static void test_plog_recovery_cuts_batch_no_append_wrote(void **state)
{
    struct fixture *f = *state;

    append(f, 2);
    uint64_t prev_raft = f->raft;
    uint64_t end = plog_next_offset(f->log);
    struct plog_segment seg;
    plog_segments(f->log, &seg, 1);
    uint64_t pos = seg.bytes;
    append(f, 3);
    plog_close(f->log);
    f->log = NULL;

    char path[128];
    snprintf(path, sizeof path, "%s", seg_file(f, 0, "seg"));
    size_t len;
    uint8_t *orig = read_whole(path, &len);
    uint8_t *bad = malloc(len);
    assert_non_null(bad);
    for (int mode = 0; mode < 3; mode++) {
        uint8_t *b = bad + pos;
        memcpy(bad, orig, len);
        if (mode == 0) {
            /* The first record's value length runs past the batch. */
            rq_wire_put_u32_at(b + PLOG_BATCH_HEADER + 12, 1u << 20);
        } else if (mode == 1) {
            rq_wire_put_u64_at(b + 24, prev_raft); /* Not after it. */
        } else {
            rq_wire_put_u64_at(b + 24, 0);
        }
        uint32_t blen = rq_wire_u32_at(b + 4);
        rq_wire_put_u32_at(b + 8, (uint32_t)crc32(0, b + 12, blen - 4));
        write_whole(path, bad, len);
        assert_int_equal(open_log(f, SMALL_SEGMENT), 0);
        assert_true(plog_next_offset(f->log) == end);
        assert_true(plog_last_raft_index(f->log) == prev_raft);
        check_range(f->log, 0, end, READ_MAX);
        plog_close(f->log);
        f->log = NULL;
    }
    write_whole(path, orig, len);
    assert_int_equal(open_log(f, SMALL_SEGMENT), 0);
    assert_true(plog_next_offset(f->log) == end + 3);
    free(orig);
    free(bad);
}

static void test_plog_missing_index_is_rebuilt(void **state)
{
    struct fixture *f = *state;
    struct plog_segment segs[64];
    uint8_t *saved[64];
    size_t lens[64];

    fill(f, 5);
    append(f, 4);
    size_t n = plog_segments(f->log, segs, 64);
    plog_close(f->log);
    f->log = NULL;
    for (size_t i = 0; i < n; i++) {
        saved[i] =
            read_whole(seg_file(f, segs[i].base_offset, "idx"), &lens[i]);
    }
    /* Sealed segments have index entries at this interval. */
    assert_true(lens[0] >= 8);

    /* Missing (a sealed one and the active one), garbage, and short. */
    assert_int_equal(unlink(seg_file(f, segs[0].base_offset, "idx")), 0);
    assert_int_equal(unlink(seg_file(f, segs[n - 1].base_offset, "idx")), 0);
    write_whole(seg_file(f, segs[1].base_offset, "idx"),
                (const uint8_t *)"garbage!garbage!", 16);
    write_whole(seg_file(f, segs[2].base_offset, "idx"), saved[2],
                lens[2] / 2 + 3);
    assert_int_equal(open_log(f, SMALL_SEGMENT), 0);
    check_range(f->log, 0, plog_next_offset(f->log), 2);
    for (size_t i = 0; i < n; i++) {
        size_t len;
        uint8_t *now =
            read_whole(seg_file(f, segs[i].base_offset, "idx"), &len);
        assert_int_equal(len, lens[i]);
        assert_memory_equal(now, saved[i], len);
        free(now);
        free(saved[i]);
    }
}

static void test_plog_gap_or_overlap_is_refused(void **state)
{
    struct fixture *f = *state;
    struct plog_segment segs[64];
    char why[256];
    struct plog_config cfg = {f->dir, SMALL_SEGMENT, SMALL_INTERVAL};
    char from[128];

    fill(f, 4);
    size_t n = plog_segments(f->log, segs, 64);
    plog_close(f->log);
    f->log = NULL;

    /* A middle segment moved aside: a gap. */
    snprintf(from, sizeof from, "%s", seg_file(f, segs[1].base_offset, "seg"));
    char aside[160];
    snprintf(aside, sizeof aside, "%s.aside", from);
    assert_int_equal(rename(from, aside), 0);
    assert_int_equal(plog_open(&cfg, &f->log, why, sizeof why), RQ_MALFORMED);
    assert_non_null(strstr(why, "gap"));

    /* Back, but named one offset early: an overlap. */
    assert_int_equal(rename(aside, seg_file(f, segs[1].base_offset - 1, "seg")),
                     0);
    assert_int_equal(plog_open(&cfg, &f->log, why, sizeof why), RQ_MALFORMED);
    assert_non_null(strstr(why, "overlap"));
    snprintf(from, sizeof from, "%s",
             seg_file(f, segs[1].base_offset - 1, "seg"));
    assert_int_equal(rename(from, seg_file(f, segs[1].base_offset, "seg")), 0);
    assert_int_equal(plog_open(&cfg, &f->log, why, sizeof why), 0);
    plog_close(f->log);
    f->log = NULL;

    /* A sealed segment with a torn end is refused, not cut. */
    assert_int_equal(truncate(seg_file(f, segs[1].base_offset, "seg"),
                              (off_t)segs[1].bytes - 1),
                     0);
    assert_int_equal(plog_open(&cfg, &f->log, why, sizeof why), RQ_MALFORMED);
    assert_non_null(strstr(why, "sealed"));
    assert_int_equal(n, 4);
}

static void test_plog_stray_files_are_ignored(void **state)
{
    struct fixture *f = *state;
    char path[128];

    append(f, 3);
    plog_close(f->log);
    f->log = NULL;
    snprintf(path, sizeof path, "%s/notes.txt", f->dir);
    write_whole(path, (const uint8_t *)"hi", 2);
    snprintf(path, sizeof path, "%s/00000000000000000000.seg.tmp", f->dir);
    write_whole(path, (const uint8_t *)"junk", 4);
    snprintf(path, sizeof path, "%s/000000000000000000001.seg", f->dir);
    write_whole(path, (const uint8_t *)"junk", 4);
    /* An index whose segment is gone is removed. */
    write_whole(seg_file(f, 77, "idx"), (const uint8_t *)"12345678", 8);
    assert_int_equal(open_log(f, SMALL_SEGMENT), 0);
    assert_true(plog_next_offset(f->log) == 3);
    check_range(f->log, 0, 3, 3);
    assert_int_equal(count_dir(f->dir, ".idx"), 1);
    assert_int_equal(count_dir(f->dir, NULL), 5);
}

/* ---- Retention ---- */

static void test_plog_retain_by_bytes(void **state)
{
    struct fixture *f = *state;
    struct plog_segment segs[64];
    unsigned deleted;
    struct rq_buf scratch;
    struct record out[1];
    uint32_t n;

    fill(f, 10);
    append(f, 2);
    size_t nsegs = plog_segments(f->log, segs, 64);
    uint64_t total = plog_bytes(f->log);
    uint64_t next = plog_next_offset(f->log);

    assert_int_equal(plog_retain(f->log, 0, 0, 0, &deleted), 0);
    assert_int_equal(deleted, 0);
    assert_int_equal(plog_retain(f->log, total, 0, 0, &deleted), 0);
    assert_int_equal(deleted, 0);

    /* Oldest first, until the log fits. */
    uint64_t limit = total / 2;
    size_t expect = 0;
    uint64_t left = total;
    while (left > limit) {
        left -= segs[expect++].bytes;
    }
    assert_int_equal(plog_retain(f->log, limit, 0, 0, &deleted), 0);
    assert_int_equal(deleted, expect);
    assert_true(plog_bytes(f->log) == left);
    uint64_t first = segs[expect].base_offset;
    assert_true(plog_first_offset(f->log) == first);
    assert_int_equal(count_dir(f->dir, ".seg"), nsegs - expect);
    for (size_t i = 0; i < expect; i++) {
        assert_int_not_equal(
            access(seg_file(f, segs[i].base_offset, "idx"), F_OK), 0);
    }
    rq_buf_init(&scratch);
    assert_int_equal(
        plog_read(f->log, first - 1, 1, SIZE_MAX, &scratch, out, NULL, &n),
        RQ_NOTFOUND);
    assert_int_equal(plog_read(f->log, 0, 1, SIZE_MAX, &scratch, out, NULL, &n),
                     RQ_NOTFOUND);
    rq_buf_close(&scratch);
    check_range(f->log, first, next, 9);

    /* The active segment stays whatever the limit. */
    assert_int_equal(plog_retain(f->log, 1, 0, 0, &deleted), 0);
    assert_int_equal(deleted, nsegs - expect - 1);
    assert_true(plog_first_offset(f->log) == segs[nsegs - 1].base_offset);
    assert_int_equal(plog_segments(f->log, segs, 64), 1);
    reopen(f);
    assert_true(plog_first_offset(f->log) == segs[0].base_offset);
    assert_true(plog_next_offset(f->log) == next);
    check_range(f->log, segs[0].base_offset, next, 9);
}

static void test_plog_retain_by_age(void **state)
{
    struct fixture *f = *state;
    struct plog_segment segs[64];
    unsigned deleted;

    /* Record timestamps are 10 ms per offset, so a segment's newest
     * record is 10 * (next_offset - 1). */
    fill(f, 9);
    size_t nsegs = plog_segments(f->log, segs, 64);
    uint64_t now = 10 * plog_next_offset(f->log);
    uint64_t age = now - 10 * (segs[4].next_offset - 1) - 1;
    /* Segments 0..3 are older than age; segment 4's newest is just not. */
    reopen(f); /* Newest timestamps as derived on open. */
    assert_int_equal(plog_retain(f->log, 0, age + 1, now, &deleted), 0);
    assert_int_equal(deleted, 4);
    assert_true(plog_first_offset(f->log) == segs[4].base_offset);
    assert_int_equal(plog_retain(f->log, 0, age, now, &deleted), 0);
    assert_int_equal(deleted, 1);
    assert_true(plog_first_offset(f->log) == segs[5].base_offset);
    /* Everything old: all but the active segment go. */
    assert_int_equal(plog_retain(f->log, 0, 1, now * 10, &deleted), 0);
    assert_int_equal(deleted, nsegs - 6);
    assert_int_equal(plog_segments(f->log, segs, 64), 1);
}

/* ---- Copying batches between logs, reset ---- */

static void copy_log(struct plog *from, struct plog *to, size_t n)
{
    struct rq_buf buf;
    rq_buf_init(&buf);
    while (plog_next_offset(to) < plog_next_offset(from)) {
        buf.len = 0;
        assert_int_equal(plog_read_batches(from, plog_next_offset(to), n, &buf),
                         0);
        assert_true(buf.len > 0);
        assert_int_equal(plog_append_batches(to, buf.base, buf.len), 0);
    }
    rq_buf_close(&buf);
}

/* Checks each regular file of @a against @b; returns how many. */
static size_t compare_dirs(const char *a, const char *b)
{
    DIR *d = opendir(a);
    struct dirent *e;
    size_t n = 0;
    assert_non_null(d);
    while ((e = readdir(d)) != NULL) {
        char pa[256];
        char pb[256];
        size_t la;
        size_t lb;
        struct stat st;
        snprintf(pa, sizeof pa, "%s/%s", a, e->d_name);
        assert_int_equal(stat(pa, &st), 0);
        if (!S_ISREG(st.st_mode)) {
            continue;
        }
        snprintf(pb, sizeof pb, "%s/%s", b, e->d_name);
        uint8_t *ca = read_whole(pa, &la);
        uint8_t *cb = read_whole(pb, &lb);
        assert_int_equal(la, lb);
        assert_memory_equal(ca, cb, la);
        free(ca);
        free(cb);
        n++;
    }
    closedir(d);
    return n;
}

static void test_plog_batches_copy_byte_identical(void **state)
{
    struct fixture *f = *state;
    struct fixture g = {0};

    fill(f, 8);
    append(f, 5);
    snprintf(g.dir, sizeof g.dir, "%s/copy", f->dir);
    assert_int_equal(open_log(&g, SMALL_SEGMENT), 0);
    copy_log(f->log, g.log, 3000);
    assert_true(plog_next_offset(g.log) == plog_next_offset(f->log));
    assert_true(plog_last_raft_index(g.log) == plog_last_raft_index(f->log));
    assert_true(plog_bytes(g.log) == plog_bytes(f->log));
    check_range(g.log, 0, plog_next_offset(g.log), 13);

    /* A batch is given whole even when asked for fewer bytes, and one
     * asked for from the middle of a batch starts at that batch. */
    struct rq_buf buf;
    struct rq_buf again;
    rq_buf_init(&buf);
    rq_buf_init(&again);
    assert_int_equal(plog_read_batches(f->log, 0, 1, &buf), 0);
    assert_int_equal(buf.len, 8 + rq_wire_u32_at(buf.base + 4));
    uint64_t second = rq_wire_u32_at(buf.base + 12); /* The first's count. */
    buf.len = 0;
    assert_int_equal(plog_read_batches(f->log, second, 1, &buf), 0);
    assert_int_equal(buf.len, 8 + rq_wire_u32_at(buf.base + 4));
    assert_true(rq_wire_u64_at(buf.base + 16) == second);
    uint32_t count = rq_wire_u32_at(buf.base + 12);
    assert_true(count > 1);
    assert_int_equal(plog_read_batches(f->log, second + count - 1, 1, &again),
                     0);
    assert_int_equal(again.len, buf.len);
    assert_memory_equal(again.base, buf.base, buf.len);
    rq_buf_close(&again);
    buf.len = 0;
    assert_int_equal(
        plog_read_batches(f->log, plog_next_offset(f->log), 100, &buf), 0);
    assert_int_equal(buf.len, 0);
    assert_int_equal(
        plog_read_batches(f->log, plog_next_offset(f->log) + 1, 100, &buf),
        RQ_NOTFOUND);
    rq_buf_close(&buf);

    /* Closed, both hold the same files with the same bytes. */
    plog_close(g.log);
    plog_close(f->log);
    f->log = NULL;
    assert_int_equal(compare_dirs(f->dir, g.dir), compare_dirs(g.dir, f->dir));
    assert_true(count_dir(g.dir, ".seg") >= 8);
    assert_true(compare_dirs(f->dir, g.dir) >= 16);
}

static void test_plog_append_batches_refuses_bad_bytes(void **state)
{
    struct fixture *f = *state;
    struct fixture g = {0};
    struct rq_buf buf;

    append(f, 2);
    append(f, 3);
    append(f, 4);
    rq_buf_init(&buf);
    assert_int_equal(plog_read_batches(f->log, 0, 1 << 20, &buf), 0);
    snprintf(g.dir, sizeof g.dir, "%s/copy", f->dir);
    assert_int_equal(open_log(&g, SMALL_SEGMENT), 0);
    size_t first_two = 0;
    for (int i = 0; i < 2; i++) {
        first_two += 8 + rq_wire_u32_at(buf.base + first_two + 4);
    }

    /* A flipped byte in the third batch: the first two are kept. */
    buf.base[buf.len - 1] ^= 1;
    assert_int_equal(plog_append_batches(g.log, buf.base, buf.len),
                     RQ_MALFORMED);
    assert_true(plog_next_offset(g.log) == 5);
    assert_true(plog_bytes(g.log) == first_two);
    buf.base[buf.len - 1] ^= 1;

    /* The first two again: their base offsets are not the next one. */
    assert_int_equal(plog_append_batches(g.log, buf.base, first_two),
                     RQ_MALFORMED);
    assert_true(plog_bytes(g.log) == first_two);
    /* Cut short, at a header and inside the body. */
    assert_int_equal(plog_append_batches(g.log, buf.base + first_two, 20),
                     RQ_MALFORMED);
    assert_int_equal(plog_append_batches(g.log, buf.base + first_two,
                                         buf.len - first_two - 1),
                     RQ_MALFORMED);
    assert_true(plog_bytes(g.log) == first_two);
    assert_int_equal(
        plog_append_batches(g.log, buf.base + first_two, buf.len - first_two),
        0);
    assert_true(plog_next_offset(g.log) == 9);
    check_range(g.log, 0, 9, 4);

    /* After a reopen the file ends at the last good batch as well. */
    plog_close(g.log);
    assert_int_equal(open_log(&g, SMALL_SEGMENT), 0);
    assert_true(plog_bytes(g.log) == buf.len);
    plog_close(g.log);
    rq_buf_close(&buf);
}

/*
 * Batches with random bytes changed or cut: whatever is accepted is a
 * prefix of whole good batches, byte for byte.
 */
static void test_plog_append_batches_random_damage(void **state)
{
    struct fixture *f = *state;
    struct fixture g = {0};
    struct rq_buf buf;
    uint64_t seed = 88172645463325252ull;

    plog_close(f->log);
    assert_int_equal(open_log(f, 1u << 20), 0);
    for (int i = 0; i < 12; i++) {
        append(f, 1 + (uint32_t)i % 4);
    }
    assert_int_equal(plog_segments(f->log, NULL, 0), 1);
    rq_buf_init(&buf);
    assert_int_equal(plog_read_batches(f->log, 0, 1 << 20, &buf), 0);
    assert_true(plog_bytes(f->log) == buf.len);
    snprintf(g.dir, sizeof g.dir, "%s/copy", f->dir);
    assert_int_equal(open_log(&g, 0), 0);
    plog_close(g.log);
    struct plog_config cfg = {g.dir, 0, 64};
    char why[128];
    assert_int_equal(plog_open(&cfg, &g.log, why, sizeof why), 0);
    uint8_t *bad = malloc(buf.len);
    assert_non_null(bad);
    char path[128];
    snprintf(path, sizeof path, "%s/%020d.seg", g.dir, 0);

    for (int round = 0; round < 300; round++) {
        memcpy(bad, buf.base, buf.len);
        size_t len = buf.len;
        for (int k = 0; k < 1 + round % 3; k++) {
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            if (k == 0 && round % 5 == 0) {
                len = (size_t)(seed % buf.len);
            } else {
                bad[seed % buf.len] ^= (uint8_t)(1 + (seed >> 32) % 255);
            }
        }
        int rv = plog_append_batches(g.log, bad, len);
        assert_true(rv == 0 || rv == RQ_MALFORMED);
        size_t kept = (size_t)plog_bytes(g.log);
        assert_true(kept <= len);
        /* Whole batches only, and the same bytes as the source's. */
        size_t at = 0;
        while (at < kept) {
            at += 8 + rq_wire_u32_at(buf.base + at + 4);
        }
        assert_int_equal(at, kept);
        assert_memory_equal(bad, buf.base, kept);
        size_t flen;
        uint8_t *file = read_whole(path, &flen);
        assert_int_equal(flen, kept);
        assert_memory_equal(file, buf.base, kept);
        free(file);
        check_range(g.log, 0, plog_next_offset(g.log), 7);
        assert_int_equal(plog_reset(g.log, 0, 0), 0);
    }
    free(bad);
    rq_buf_close(&buf);
    plog_close(g.log);
}

static void test_plog_reset_restarts_at_offset(void **state)
{
    struct fixture *f = *state;
    struct plog_segment segs[4];
    struct rq_buf scratch;
    struct record out[4];
    uint32_t n;

    fill(f, 3);
    assert_int_equal(plog_reset(f->log, 1000, 50), 0);
    assert_true(plog_first_offset(f->log) == 1000);
    assert_true(plog_next_offset(f->log) == 1000);
    assert_true(plog_last_raft_index(f->log) == 50);
    assert_true(plog_bytes(f->log) == 0);
    assert_int_equal(count_dir(f->dir, ".seg"), 1);
    assert_int_equal(count_dir(f->dir, ".idx"), 0);
    rq_buf_init(&scratch);
    assert_int_equal(
        plog_read(f->log, 999, 4, SIZE_MAX, &scratch, out, NULL, &n),
        RQ_NOTFOUND);
    assert_int_equal(
        plog_read(f->log, 1000, 4, SIZE_MAX, &scratch, out, NULL, &n), 0);
    assert_int_equal(n, 0);
    rq_buf_close(&scratch);

    struct rq_buf b;
    uint64_t base;
    rq_buf_init(&b);
    put_record(&b, 1000, 8);
    assert_int_equal(plog_append(f->log, 50, b.base, b.len, 1, 0, &base),
                     RQ_INVALID);
    rq_buf_close(&b);
    f->raft = 50;
    assert_true(append(f, 4) == 1000);
    fill(f, 2);
    uint64_t next = plog_next_offset(f->log);
    reopen(f);
    assert_true(plog_first_offset(f->log) == 1000);
    assert_true(plog_next_offset(f->log) == next);
    assert_true(plog_last_raft_index(f->log) == f->raft);
    assert_int_equal(plog_segments(f->log, segs, 4), 2);
    check_range(f->log, 1000, next, 6);

    /* A reset log reopened before any append keeps its offset. */
    assert_int_equal(plog_reset(f->log, 5000, 90), 0);
    reopen(f);
    assert_true(plog_first_offset(f->log) == 5000);
    assert_true(plog_next_offset(f->log) == 5000);
}

/* ---- Cutting back ---- */

#define BATCHES_MAX 512

struct batches {
    uint64_t base[BATCHES_MAX];
    uint64_t raft[BATCHES_MAX];
    size_t n;
};

/* Appends batches of 1 to 7 records until there are @nsegs segments,
 * noting each batch's base and Raft index. */
static void fill_noted(struct fixture *f, size_t nsegs, struct batches *b)
{
    while (plog_segments(f->log, NULL, 0) < nsegs) {
        assert_true(b->n < BATCHES_MAX);
        b->base[b->n] = append(f, (uint32_t)(1 + f->raft % 7));
        b->raft[b->n] = f->raft;
        b->n++;
    }
}

/* Cuts at batch @i of @b, checks the log and its reopening, appends again. */
static void cut_and_check(struct fixture *f, struct batches *b, size_t i)
{
    uint64_t first = plog_first_offset(f->log);
    uint64_t cut = b->base[i];

    assert_int_equal(plog_truncate(f->log, cut), 0);
    assert_true(plog_next_offset(f->log) == cut);
    assert_true(plog_last_raft_index(f->log) == (i > 0 ? b->raft[i - 1] : 0));
    if (cut > first) {
        check_range(f->log, first, cut, 5);
    }
    reopen(f);
    assert_true(plog_first_offset(f->log) == first);
    assert_true(plog_next_offset(f->log) == cut);
    assert_true(plog_last_raft_index(f->log) == (i > 0 ? b->raft[i - 1] : 0));
    b->n = i;
    /* The log goes on from the cut, with Raft indexes above the cut's. */
    f->raft = i > 0 ? b->raft[i - 1] : 0;
    fill_noted(f, plog_segments(f->log, NULL, 0) + 1, b);
    check_range(f->log, first, plog_next_offset(f->log), 7);
    reopen(f);
    check_range(f->log, first, plog_next_offset(f->log), 7);
}

static void test_plog_truncate_cuts_back_to_a_batch(void **state)
{
    struct fixture *f = *state;
    struct plog_segment segs[16];
    struct batches b = {.n = 0};

    fill_noted(f, 4, &b);
    size_t nseg = plog_segments(f->log, segs, 16);
    assert_true(nseg == 4);

    /* Not at a batch's start, past the end, below the start: refused. */
    size_t wide = 0;
    while (b.base[wide + 1] - b.base[wide] < 2) {
        wide++;
    }
    uint64_t next = plog_next_offset(f->log);
    assert_int_equal(plog_truncate(f->log, b.base[wide] + 1), RQ_NOTFOUND);
    assert_int_equal(plog_truncate(f->log, next + 1), RQ_NOTFOUND);
    assert_true(plog_next_offset(f->log) == next);
    assert_int_equal(plog_truncate(f->log, next), 0);
    assert_true(plog_next_offset(f->log) == next);

    /* Headers as stored, with the crc plog_batch_crc() gives. */
    struct plog_batch h;
    struct rq_buf blob;
    assert_int_equal(plog_batch_at(f->log, b.base[wide], &h), 0);
    assert_true(h.base_offset == b.base[wide]);
    assert_true(h.raft_index == b.raft[wide]);
    assert_int_equal(h.count, b.base[wide + 1] - b.base[wide]);
    rq_buf_init(&blob);
    for (uint64_t off = h.base_offset; off < h.base_offset + h.count; off++) {
        put_record(&blob, off, value_size(off));
    }
    assert_int_equal(h.crc,
                     plog_batch_crc(h.base_offset, h.raft_index, h.count,
                                    h.max_timestamp_ms, blob.base, blob.len));
    assert_true(h.crc != plog_batch_crc(h.base_offset, h.raft_index + 1,
                                        h.count, h.max_timestamp_ms, blob.base,
                                        blob.len));
    rq_buf_close(&blob);
    assert_int_equal(plog_batch_at(f->log, b.base[wide] + 1, &h), RQ_NOTFOUND);

    /* Inside the active segment. */
    cut_and_check(f, &b, b.n - 2);
    /* Inside a sealed segment: the later segments go. */
    nseg = plog_segments(f->log, segs, 16);
    size_t in_second = 0;
    while (b.base[in_second] <= segs[1].base_offset) {
        in_second++;
    }
    cut_and_check(f, &b, in_second);
    assert_int_equal(plog_segments(f->log, segs, 16), 3);
    /* At a segment's first batch: that segment goes whole. */
    plog_segments(f->log, segs, 16);
    size_t at_third = 0;
    while (b.base[at_third] != segs[2].base_offset) {
        at_third++;
    }
    cut_and_check(f, &b, at_third);
    assert_int_equal(count_dir(f->dir, ".seg"), 4);
    /* At the very first batch: an empty log at the same offset. */
    cut_and_check(f, &b, 0);
}

/* plog_keep_below() keeps the whole batches below an offset: at a batch's
 * start it is plog_truncate(); inside a batch that batch goes too. */
static void test_plog_keep_below_keeps_whole_batches(void **state)
{
    struct fixture *f = *state;
    struct batches b = {.n = 0};

    fill_noted(f, 3, &b);
    uint64_t first = plog_first_offset(f->log);
    uint64_t next = plog_next_offset(f->log);
    size_t wide = b.n / 2;
    while (b.base[wide + 1] - b.base[wide] < 2) {
        wide++;
    }
    /* At or past the end: nothing changes. */
    assert_int_equal(plog_keep_below(f->log, next), 0);
    assert_int_equal(plog_keep_below(f->log, next + 5), 0);
    assert_true(plog_next_offset(f->log) == next);

    /* Inside batch @wide: it goes with everything after it. */
    assert_int_equal(plog_keep_below(f->log, b.base[wide] + 1), 0);
    assert_true(plog_first_offset(f->log) == first);
    assert_true(plog_next_offset(f->log) == b.base[wide]);
    assert_true(plog_last_raft_index(f->log) == b.raft[wide - 1]);
    check_range(f->log, first, b.base[wide], 5);

    /* At a batch's start: that batch goes, the one before stays. */
    assert_int_equal(plog_keep_below(f->log, b.base[wide - 1]), 0);
    assert_true(plog_next_offset(f->log) == b.base[wide - 1]);
    reopen(f);
    assert_true(plog_first_offset(f->log) == first);
    assert_true(plog_next_offset(f->log) == b.base[wide - 1]);
    check_range(f->log, first, b.base[wide - 1], 5);

    /* Below the first offset there is nothing to keep: refused. */
    assert_int_equal(plog_reset(f->log, 1000, 0), 0);
    assert_int_equal(plog_keep_below(f->log, 999), RQ_NOTFOUND);
    assert_true(plog_next_offset(f->log) == 1000);
}

/* ---- Bounds ---- */

static void test_plog_holds_two_files_open_whatever_its_size(void **state)
{
    struct fixture *f = *state;
    struct plog_segment segs[256];

    fill(f, 201);
    size_t nsegs = plog_segments(f->log, segs, 256);
    uint64_t next = plog_next_offset(f->log);
    plog_close(f->log);
    f->log = NULL;

    size_t before = open_fds();
    assert_int_equal(open_log(f, SMALL_SEGMENT), 0);
    assert_true(open_fds() <= before + 2);
    struct rq_buf scratch;
    struct record out[3];
    uint32_t n;
    rq_buf_init(&scratch);
    for (size_t i = 0; i < nsegs; i++) {
        uint64_t off = (segs[i].base_offset + segs[i].next_offset) / 2;
        if (off == next) {
            continue;
        }
        assert_int_equal(
            plog_read(f->log, off, 3, SIZE_MAX, &scratch, out, NULL, &n), 0);
        assert_true(n > 0);
        check_record(&out[0], off, value_size(off));
        assert_true(open_fds() <= before + 2);
    }
    rq_buf_close(&scratch);
    fill(f, nsegs + 3);
    assert_true(open_fds() <= before + 2);
    plog_close(f->log);
    f->log = NULL;
    assert_int_equal(open_fds(), before);
}

/* Every fdatasync is timed into the histogram the log is given: one for
 * plog_sync(), two for each roll (the segment and its index). */
static void test_plog_syncs_are_timed(void **state)
{
    struct fixture *f = *state;
    struct rq_metrics *m;
    static const double bounds[] = {0.001, 1};
    struct rq_metric_def def = {
        .type = RQ_METRIC_HISTOGRAM,
        .name = "raftq_test_fsync_seconds",
        .buckets = bounds,
        .n_buckets = 2,
    };
    char why[256];

    plog_close(f->log);
    assert_int_equal(rq_metrics_new(&m), 0);
    struct rq_metric *h = rq_metric_family_child(rq_metrics_add(m, &def));
    struct plog_config cfg = {f->dir, SMALL_SEGMENT, SMALL_INTERVAL, h};
    assert_int_equal(plog_open(&cfg, &f->log, why, sizeof why), 0);
    uint64_t at_open = rq_metric_count(h);

    append(f, 3);
    assert_int_equal(rq_metric_count(h), at_open); /* Plain writes. */
    assert_int_equal(plog_sync(f->log), 0);
    assert_int_equal(rq_metric_count(h), at_open + 1);
    assert_true(rq_metric_value(h) > 0);

    size_t segs = plog_segments(f->log, NULL, 0);
    fill(f, segs + 2);
    assert_int_equal(rq_metric_count(h), at_open + 1 + 2 * 2);
    plog_close(f->log);
    f->log = NULL;
    rq_metrics_free(m);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_plog_syncs_are_timed, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_plog_empty_log_starts_at_zero,
                                        setup, teardown),
        cmocka_unit_test_setup_teardown(
            test_plog_read_every_offset_across_segments, setup, teardown),
        cmocka_unit_test_setup_teardown(test_plog_read_limits, setup, teardown),
        cmocka_unit_test_setup_teardown(test_plog_read_inside_a_large_batch,
                                        setup, teardown),
        cmocka_unit_test_setup_teardown(test_plog_reopen_preserves_everything,
                                        setup, teardown),
        cmocka_unit_test_setup_teardown(test_plog_reads_span_chunks, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(
            test_plog_corrupt_sealed_batch_fails_its_read, setup, teardown),
        cmocka_unit_test_setup_teardown(test_plog_raft_index_must_increase,
                                        setup, teardown),
        cmocka_unit_test_setup_teardown(test_plog_config_limits, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(
            test_plog_recovery_cuts_batch_no_append_wrote, setup, teardown),
        cmocka_unit_test_setup_teardown(test_plog_torn_tail_is_cut, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_plog_missing_index_is_rebuilt,
                                        setup, teardown),
        cmocka_unit_test_setup_teardown(test_plog_gap_or_overlap_is_refused,
                                        setup, teardown),
        cmocka_unit_test_setup_teardown(test_plog_stray_files_are_ignored,
                                        setup, teardown),
        cmocka_unit_test_setup_teardown(test_plog_retain_by_bytes, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_plog_retain_by_age, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_plog_batches_copy_byte_identical,
                                        setup, teardown),
        cmocka_unit_test_setup_teardown(
            test_plog_append_batches_refuses_bad_bytes, setup, teardown),
        cmocka_unit_test_setup_teardown(test_plog_append_batches_random_damage,
                                        setup, teardown),
        cmocka_unit_test_setup_teardown(test_plog_truncate_cuts_back_to_a_batch,
                                        setup, teardown),
        cmocka_unit_test_setup_teardown(
            test_plog_keep_below_keeps_whole_batches, setup, teardown),
        cmocka_unit_test_setup_teardown(test_plog_reset_restarts_at_offset,
                                        setup, teardown),
        cmocka_unit_test_setup_teardown(
            test_plog_holds_two_files_open_whatever_its_size, setup, teardown),
    };
    return cmocka_run_group_tests_name("plog", tests, NULL, NULL);
}

/*
 * Fuzzes the partition log's recovery and its batch parsing
 * (broker/plog.h) with hostile files and bytes. The first byte holds flags:
 *
 *   bit 0  recompute the crc of every batch the input holds, so that the
 *          checks after the crc (lengths, counts, offsets, records) see
 *          hostile bytes instead of stopping at a crc mismatch;
 *   bit 1  name the segment by a base offset other than 0;
 *   bit 2  after the first open, seal the segment behind a new empty one
 *          and give it an .idx file made of the input's head, so that the
 *          sealed-segment paths (strict checks, index read from disk) run;
 *   bit 3  instead of a segment file, hand the bytes to
 *          plog_append_batches() (a FETCH reply from a peer).
 *
 * Every open must end in a usable log or an error; a usable log is read
 * from its first offset to its end, served as batches, appended to,
 * closed, and reopened, and must hold the same offsets again.
 */
#include <inttypes.h>
#include <zlib.h>

#include "broker/plog.h"
#include "fuzz.h"
#include "fuzz_tmpdir.h"
#include "rq_err.h"

#define BATCH_MAGIC 0x31425152u

/* Recomputes each batch's crc where the input's lengths allow. */
static void fix_crcs(uint8_t *p, size_t len)
{
    size_t pos = 0;
    while (len - pos >= PLOG_BATCH_HEADER) {
        uint32_t blen = rq_wire_u32_at(p + pos + 4);
        if (blen < PLOG_BATCH_HEADER - 8 || blen > len - pos - 8) {
            return;
        }
        rq_wire_put_u32_at(p + pos, BATCH_MAGIC);
        uint32_t crc = (uint32_t)crc32_z(0, p + pos + 12, (size_t)blen - 4);
        rq_wire_put_u32_at(p + pos + 8, crc);
        pos += 8 + (size_t)blen;
    }
}

/* Reads the whole log every way there is, and copies it to @peer (NULL:
 * not) as a catching-up replica would; returns its next offset. */
static uint64_t read_all(struct plog *l, struct plog *peer)
{
    struct rq_buf scratch;
    struct rq_buf batches;
    struct record recs[64];
    uint64_t offsets[64];
    uint64_t first = plog_first_offset(l);
    uint64_t next = plog_next_offset(l);
    uint64_t at = first;

    FUZZ_CHECK(first <= next);
    rq_buf_init(&scratch);
    while (at < next) {
        uint32_t n = 0;
        int rv = plog_read(l, at, 64, 1u << 20, &scratch, recs, offsets, &n);
        if (rv != 0) {
            /* Corrupt batches in a sealed segment are reported, not
             * served. */
            FUZZ_CHECK(rv == RQ_MALFORMED || rv == RQ_IO);
            break;
        }
        FUZZ_CHECK(n > 0);
        for (uint32_t i = 0; i < n; i++) {
            FUZZ_CHECK(offsets[i] == at + i);
        }
        at += n;
    }
    rq_buf_close(&scratch);
    uint32_t n = 7;
    FUZZ_CHECK(plog_read(l, next, 64, 1u << 20, &scratch, recs, NULL, &n) == 0);
    FUZZ_CHECK(n == 0);
    rq_buf_close(&scratch);
    if (next > 0) {
        FUZZ_CHECK(plog_read(l, next + 1, 1, 1, &scratch, recs, NULL, &n) ==
                   RQ_NOTFOUND);
        rq_buf_close(&scratch);
    }

    /* Served as batches to a peer, everything must append to a log that
     * starts at the same offset. */
    rq_buf_init(&batches);
    at = first;
    while (at < next) {
        size_t before = batches.len;
        int rv = plog_read_batches(l, at, 1u << 16, &batches);
        if (rv != 0 || batches.len == before) {
            break;
        }
        for (size_t pos = before; pos + PLOG_BATCH_HEADER <= batches.len;) {
            at = rq_wire_u64_at(batches.base + pos + 16) +
                 rq_wire_u32_at(batches.base + pos + 12);
            pos += 8 + (size_t)rq_wire_u32_at(batches.base + pos + 4);
        }
    }
    if (peer != NULL && batches.err == 0) {
        FUZZ_CHECK(plog_reset(peer, first, 0) == 0);
        if (batches.len > 0) {
            FUZZ_CHECK(plog_append_batches(peer, batches.base, batches.len) ==
                       0);
        }
        FUZZ_CHECK(plog_next_offset(peer) == at);
    }
    rq_buf_close(&batches);

    struct plog_segment segs[8];
    size_t nseg = plog_segments(l, segs, 8);
    for (size_t i = 0; i < nseg && i < 8; i++) {
        FUZZ_CHECK(segs[i].base_offset <= segs[i].next_offset);
    }
    return next;
}

/* Appends one batch, closes, reopens: the log must come back the same. */
static void append_and_reopen(struct plog **l, const struct plog_config *cfg)
{
    struct rq_buf blob;
    uint64_t base;
    char why[256];

    rq_buf_init(&blob);
    records_put(&blob, 5, "k", 1, true, "value", 5);
    int rv = plog_append(*l, plog_last_raft_index(*l) + 1, blob.base, blob.len,
                         1, 5, &base);
    rq_buf_close(&blob);
    if (rv != 0) {
        FUZZ_CHECK(rv == RQ_TOOBIG || rv == RQ_IO || rv == RQ_INVALID);
        return;
    }
    uint64_t next = plog_next_offset(*l);
    uint64_t first = plog_first_offset(*l);
    plog_close(*l);
    *l = NULL;
    rv = plog_open(cfg, l, why, sizeof why);
    FUZZ_CHECK(rv == 0);
    FUZZ_CHECK(plog_next_offset(*l) == next);
    FUZZ_CHECK(plog_first_offset(*l) == first);
    read_all(*l, NULL);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    char dir[256];
    char path[512];
    char why[256];
    struct plog *l = NULL;
    struct fuzz_in in = {data, size};
    uint8_t flags = fuzz_u8(&in);
    uint64_t base = (flags & 2) ? 1000 : 0;
    size_t len = in.left;
    uint8_t *bytes = malloc(len > 0 ? len : 1);

    FUZZ_CHECK(bytes != NULL);
    if (len > 0) {
        memcpy(bytes, in.p, len);
    }
    if (flags & 1) {
        fix_crcs(bytes, len);
    }
    fuzz_tmpdir(dir, sizeof dir);
    struct plog_config cfg = {dir, 1u << 20, 256, NULL};

    if (flags & 8) {
        /* A FETCH reply from a peer, appended to an empty log. */
        FUZZ_CHECK(plog_open(&cfg, &l, why, sizeof why) == 0);
        int rv = plog_append_batches(l, bytes, len);
        FUZZ_CHECK(rv == 0 || rv == RQ_MALFORMED || rv == RQ_TOOBIG);
        read_all(l, NULL);
        append_and_reopen(&l, &cfg);
        goto done;
    }

    snprintf(path, sizeof path, "%s/%020" PRIu64 ".seg", dir, base);
    fuzz_write_file(path, bytes, len);
    if (plog_open(&cfg, &l, why, sizeof why) != 0) {
        goto done;
    }
    /* A second log, where a peer's copy of this one is made. */
    char peer_dir[300];
    struct plog *peer = NULL;
    snprintf(peer_dir, sizeof peer_dir, "%s/peer", dir);
    struct plog_config peer_cfg = {peer_dir, 1u << 20, 256, NULL};
    FUZZ_CHECK(plog_open(&peer_cfg, &peer, why, sizeof why) == 0);
    uint64_t next = read_all(l, peer);
    plog_close(peer);
    if (flags & 4) {
        /* Seal it: an empty segment after it, and a hostile index. */
        plog_close(l);
        l = NULL;
        snprintf(path, sizeof path, "%s/%020" PRIu64 ".seg", dir, next);
        if (next != base) {
            fuzz_write_file(path, NULL, 0);
        }
        snprintf(path, sizeof path, "%s/%020" PRIu64 ".idx", dir, base);
        fuzz_write_file(path, bytes, len < 64 ? len : 64);
        if (plog_open(&cfg, &l, why, sizeof why) != 0) {
            goto done;
        }
        read_all(l, NULL);
    }
    append_and_reopen(&l, &cfg);

done:
    plog_close(l);
    rm_tree(dir);
    free(bytes);
    return 0;
}

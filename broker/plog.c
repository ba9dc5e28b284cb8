/*
 * The partition log: segment files of batches, a sparse offset index per
 * segment, recovery on open, retention, and the raw batch copy used to
 * catch a replica up. Plain POSIX file I/O on the caller's thread; no
 * event loop.
 *
 * Design notes:
 *
 *   1. Segments are contiguous: each one's base offset is the previous
 *      one's next offset. Only base offsets and a few figures per segment
 *      are held in memory (struct seg); the last segment is the active one.
 *   2. The active segment's index lives in memory (l->idx, encoded as on
 *      disk) and is written to its .idx file when the segment is sealed by
 *      a roll and when the log is closed. An entry is added for a batch at
 *      position p when p is at least index_interval past the last entry
 *      (position 0 needs none); idx_due() is the one rule, used alike when
 *      appending, recovering and rebuilding, so a rebuilt index equals the
 *      one written while appending.
 *   3. A roll makes the old segment and its index durable (fdatasync)
 *      before the next segment exists, so only the last segment can have a
 *      torn tail. Recovery therefore crc-scans the last segment alone; a
 *      sealed segment is checked by walking batch headers from its last
 *      index entry to its end, and anything wrong there is refused.
 *   4. One append is one pwritev() of header and records. Reads pread
 *      whole ranges into the caller's scratch buffer and compact the wanted
 *      records in place. A read remembers where it stopped (l->hint), so a
 *      consumer reading on from there skips the index lookup, even in the
 *      middle of a large batch.
 *   5. Open files: the active segment and the sealed segment last read.
 *      Index files of sealed segments are opened for one lookup and closed.
 *   6. Retention keeps each segment's newest timestamp. For a segment
 *      sealed before the log was opened it is the newest among the batches
 *      after its last index entry: timestamps come from the leader's clock
 *      and rise along the log, so the tail holds the newest.
 */
#include "plog.h"

#include <assert.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/uio.h>
#include <time.h>
#include <unistd.h>
#include <zlib.h>

#include "rq_err.h"
#include "rq_fs.h"
#include "rq_log.h"

#define LOG_TAG "plog"

#define BATCH_MAGIC 0x31425152u /* "RQB1" as a little-endian u32. */
#define BATCH_LEN_MIN (PLOG_BATCH_HEADER - 8)
#define BLOB_MAX ((size_t)UINT32_MAX - BATCH_LEN_MIN)
#define SEGMENT_BYTES_DEFAULT (64ull << 20)
#define SEGMENT_BYTES_MAX (1ull << 30) /* Index positions are u32. */
#define INDEX_INTERVAL_DEFAULT 4096
#define INDEX_ENTRY 8
#define NAME_DIGITS 20
#define SCAN_CHUNK (1u << 20)
#define READ_CHUNK_MIN (64u << 10)
#define READ_CHUNK_MAX (1u << 20)
#define HEADER_CHUNK 4096

struct seg {
    uint64_t base;
    uint64_t next; /* One past its last record. */
    uint64_t bytes;
    uint64_t last_raft_index; /* 0 while empty. */
    int64_t max_timestamp_ms; /* INT64_MIN while empty. */
};

/* Where a read stopped, so the next read from there needs no lookup. */
struct spot {
    bool valid;
    uint64_t seg_base;
    uint64_t offset;     /* The next record's offset. */
    uint64_t pos;        /* Its file position. */
    bool in_batch;       /* pos is a record inside a batch, not a header. */
    uint64_t batch_end;  /* File position past that batch. */
    uint64_t batch_next; /* Offset past that batch. */
};

struct plog {
    char *dir;
    uint64_t segment_bytes;
    uint32_t index_interval;
    struct seg *segs; /* Oldest first; the last is active. */
    size_t nsegs;
    size_t segs_cap;
    uint64_t total_bytes;
    uint64_t last_raft_index;
    int active_fd;
    uint8_t *idx; /* Active segment's index, encoded as in its file. */
    size_t idx_n;
    size_t idx_cap;
    uint64_t idx_last_pos; /* Position of the last entry; 0 if none. */
    int read_fd;           /* The sealed segment last read, or -1. */
    uint64_t read_base;
    struct spot hint;
    bool dir_dirty; /* A file was created since the last plog_sync(). */
    bool broken;    /* A write failed: refuse more until reopened. */
    struct rq_metric *sync_seconds; /* Borrowed; may be NULL. */
};

/* magic:u32 | len:u32 | crc:u32 | count:u32 | base_offset:u64
 * | raft_index:u64 | max_timestamp_ms:i64 */
struct batch_hdr {
    uint32_t magic;
    uint32_t len;
    uint32_t crc;
    uint32_t count;
    uint64_t base;
    uint64_t raft_index;
    int64_t max_ts;
};

/* ---- Small helpers ---- */

static void hdr_decode(const uint8_t *p, struct batch_hdr *h)
{
    h->magic = rq_wire_u32_at(p);
    h->len = rq_wire_u32_at(p + 4);
    h->crc = rq_wire_u32_at(p + 8);
    h->count = rq_wire_u32_at(p + 12);
    h->base = rq_wire_u64_at(p + 16);
    h->raft_index = rq_wire_u64_at(p + 24);
    h->max_ts = (int64_t)rq_wire_u64_at(p + 32);
}

static void hdr_encode(uint8_t *p, const struct batch_hdr *h)
{
    rq_wire_put_u32_at(p, h->magic);
    rq_wire_put_u32_at(p + 4, h->len);
    rq_wire_put_u32_at(p + 8, h->crc);
    rq_wire_put_u32_at(p + 12, h->count);
    rq_wire_put_u64_at(p + 16, h->base);
    rq_wire_put_u64_at(p + 24, h->raft_index);
    rq_wire_put_u64_at(p + 32, (uint64_t)h->max_ts);
}

/* The bytes of the whole batch, header included. */
static uint64_t hdr_total(const struct batch_hdr *h)
{
    return 8 + (uint64_t)h->len;
}

/*
 * Checks what a header alone can tell: its magic, that its length holds
 * the header and @count record headers and fits in the @room bytes left,
 * and that it starts at offset @expect. Fills @why and returns false if not.
 */
static bool hdr_check(const struct batch_hdr *h, uint64_t expect, uint64_t room,
                      char *why, size_t whyn)
{
    if (h->magic != BATCH_MAGIC) {
        rq_why(why, whyn, "bad magic 0x%08" PRIx32, h->magic);
        return false;
    }
    if (h->len < BATCH_LEN_MIN) {
        rq_why(why, whyn, "length %" PRIu32 " shorter than a header", h->len);
        return false;
    }
    if (hdr_total(h) > room) {
        rq_why(why, whyn,
               "batch of %" PRIu64 " bytes runs past the end (%" PRIu64
               " left)",
               hdr_total(h), room);
        return false;
    }
    if (h->count == 0 || h->count > (h->len - BATCH_LEN_MIN) / RECORDS_HEADER) {
        rq_why(why, whyn, "count %" PRIu32 " does not fit %" PRIu32 " bytes",
               h->count, h->len);
        return false;
    }
    if (h->base != expect) {
        rq_why(why, whyn, "base offset %" PRIu64 ", expected %" PRIu64, h->base,
               expect);
        return false;
    }
    if (h->count > UINT64_MAX - h->base) {
        rq_why(why, whyn, "offsets overflow");
        return false;
    }
    return true;
}

/* crc32 of every byte of a contiguous batch after its crc field. */
static uint32_t batch_crc(const uint8_t *batch, uint64_t total)
{
    return (uint32_t)crc32_z(0, batch + 12, (size_t)total - 12);
}

static bool idx_due(uint64_t pos, uint64_t last_pos, uint32_t interval)
{
    return pos - last_pos >= interval && pos <= UINT32_MAX;
}

static void seg_path(const char *dir, uint64_t base, const char *ext, char *buf,
                     size_t n)
{
    snprintf(buf, n, "%s/%020" PRIu64 ".%s", dir, base, ext);
}

/* Parses "<20 digits>.seg" or ".idx"; false for any other name. */
static bool parse_name(const char *name, uint64_t *base, bool *is_seg)
{
    uint64_t v = 0;
    for (int i = 0; i < NAME_DIGITS; i++) {
        char c = name[i];
        if (c < '0' || c > '9') {
            return false;
        }
        unsigned d = (unsigned)(c - '0');
        if (v > (UINT64_MAX - d) / 10) {
            return false;
        }
        v = v * 10 + d;
    }
    if (strcmp(name + NAME_DIGITS, ".seg") == 0) {
        *is_seg = true;
    } else if (strcmp(name + NAME_DIGITS, ".idx") == 0) {
        *is_seg = false;
    } else {
        return false;
    }
    *base = v;
    return true;
}

static int cmp_u64(const void *a, const void *b)
{
    uint64_t x = *(const uint64_t *)a;
    uint64_t y = *(const uint64_t *)b;
    return x < y ? -1 : x > y;
}

/* ---- File I/O ---- */

/* RQ_IO on an error, RQ_MALFORMED if the file ends first. */
static int pread_full(int fd, void *buf, size_t n, uint64_t off)
{
    uint8_t *p = buf;
    while (n > 0) {
        ssize_t k = pread(fd, p, n, (off_t)off);
        if (k < 0) {
            if (errno == EINTR) {
                continue;
            }
            return RQ_IO;
        }
        if (k == 0) {
            return RQ_MALFORMED;
        }
        p += k;
        n -= (size_t)k;
        off += (uint64_t)k;
    }
    return 0;
}

static int pwritev_full(int fd, struct iovec *iov, int cnt, uint64_t off)
{
    while (cnt > 0) {
        ssize_t k = pwritev(fd, iov, cnt, (off_t)off);
        if (k < 0) {
            if (errno == EINTR) {
                continue;
            }
            return RQ_IO;
        }
        off += (uint64_t)k;
        /* A short write: step over what went out and write the rest. */
        while (cnt > 0 && (size_t)k >= iov->iov_len) {
            k -= (ssize_t)iov->iov_len;
            iov++;
            cnt--;
        }
        if (cnt > 0) {
            iov->iov_base = (uint8_t *)iov->iov_base + k;
            iov->iov_len -= (size_t)k;
        }
    }
    return 0;
}

/* fdatasync(2) of @fd, timed into @timer (a histogram, or NULL). */
static int timed_fdatasync(int fd, struct rq_metric *timer)
{
    struct timespec t0;
    struct timespec t1;

    if (timer == NULL) {
        return fdatasync(fd);
    }
    clock_gettime(CLOCK_MONOTONIC, &t0);
    int rv = fdatasync(fd);
    clock_gettime(CLOCK_MONOTONIC, &t1);
    rq_metric_observe(timer, (double)(t1.tv_sec - t0.tv_sec) +
                                 (double)(t1.tv_nsec - t0.tv_nsec) / 1e9);
    return rv;
}

/* Writes @n bytes as the whole content of @path; with @sync, made durable
 * (timed into @timer). */
static int write_file(const char *path, const void *data, size_t n, bool sync,
                      struct rq_metric *timer)
{
    int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
    if (fd < 0) {
        return RQ_IO;
    }
    struct iovec iov = {(void *)data, n};
    int rv = pwritev_full(fd, &iov, 1, 0);
    if (rv == 0 && sync && timed_fdatasync(fd, timer) != 0) {
        rv = RQ_IO;
    }
    close(fd);
    return rv;
}

/* ---- Segments and the active index ---- */

static struct seg *active(struct plog *l)
{
    assert(l->nsegs > 0);
    return &l->segs[l->nsegs - 1];
}

static int segs_push(struct plog *l, uint64_t base)
{
    if (l->nsegs == l->segs_cap) {
        size_t cap = l->segs_cap == 0 ? 16 : l->segs_cap * 2;
        struct seg *s = realloc(l->segs, cap * sizeof *s);
        if (s == NULL) {
            return RQ_NOMEM; /* UNTESTED: ENOMEM only. */
        }
        l->segs = s;
        l->segs_cap = cap;
    }
    l->segs[l->nsegs++] = (struct seg){base, base, 0, 0, INT64_MIN};
    return 0;
}

/* The segment holding @offset, which is in [first offset, next offset). */
static size_t seg_find(const struct plog *l, uint64_t offset)
{
    size_t lo = 0;
    size_t hi = l->nsegs;
    while (hi - lo > 1) {
        size_t mid = lo + (hi - lo) / 2;
        if (l->segs[mid].base <= offset) {
            lo = mid;
        } else {
            hi = mid;
        }
    }
    return lo;
}

static int idx_reserve(struct plog *l)
{
    if (l->idx_n < l->idx_cap) {
        return 0;
    }
    size_t cap = l->idx_cap == 0 ? 64 : l->idx_cap * 2;
    uint8_t *p = realloc(l->idx, cap * INDEX_ENTRY);
    if (p == NULL) {
        return RQ_NOMEM; /* UNTESTED: ENOMEM only. */
    }
    l->idx = p;
    l->idx_cap = cap;
    return 0;
}

/* Notes a batch at @pos of the active segment (room already reserved). */
static void idx_note(struct plog *l, uint64_t rel, uint64_t pos)
{
    if (!idx_due(pos, l->idx_last_pos, l->index_interval) || rel > UINT32_MAX) {
        return;
    }
    assert(l->idx_n < l->idx_cap);
    uint8_t *e = l->idx + l->idx_n * INDEX_ENTRY;
    rq_wire_put_u32_at(e, (uint32_t)rel);
    rq_wire_put_u32_at(e + 4, (uint32_t)pos);
    l->idx_n++;
    l->idx_last_pos = pos;
}

static int idx_write(struct plog *l, bool sync)
{
    char path[PATH_MAX];
    seg_path(l->dir, active(l)->base, "idx", path, sizeof path);
    return write_file(path, l->idx, l->idx_n * INDEX_ENTRY, sync,
                      l->sync_seconds);
}

static void seg_account(struct plog *l, struct seg *s,
                        const struct batch_hdr *h)
{
    s->bytes += hdr_total(h);
    s->next = h->base + h->count;
    s->last_raft_index = h->raft_index;
    if (h->max_ts > s->max_timestamp_ms) {
        s->max_timestamp_ms = h->max_ts;
    }
    l->total_bytes += hdr_total(h);
    l->last_raft_index = h->raft_index;
}

/* Creates an empty active segment at @base. */
static int seg_create(struct plog *l, uint64_t base)
{
    char path[PATH_MAX];
    seg_path(l->dir, base, "idx", path, sizeof path);
    unlink(path); /* A stale index of an earlier life of this name. */
    seg_path(l->dir, base, "seg", path, sizeof path);
    int fd = open(path, O_RDWR | O_CREAT | O_EXCL | O_CLOEXEC, 0644);
    if (fd < 0) {
        rq_log(RQ_ERROR, "create %s: %s", path, strerror(errno));
        return RQ_IO;
    }
    int rv = segs_push(l, base);
    if (rv != 0) {
        close(fd); /* UNTESTED: ENOMEM only. */
        unlink(path);
        return rv;
    }
    l->active_fd = fd;
    l->idx_n = 0;
    l->idx_last_pos = 0;
    l->dir_dirty = true;
    return 0;
}

/* The descriptor to read segment @si from. */
static int seg_fd(struct plog *l, size_t si, int *fd)
{
    if (si == l->nsegs - 1) {
        *fd = l->active_fd;
        return 0;
    }
    if (l->read_fd >= 0 && l->read_base == l->segs[si].base) {
        *fd = l->read_fd;
        return 0;
    }
    if (l->read_fd >= 0) {
        close(l->read_fd);
        l->read_fd = -1;
    }
    char path[PATH_MAX];
    seg_path(l->dir, l->segs[si].base, "seg", path, sizeof path);
    int f = open(path, O_RDONLY | O_CLOEXEC);
    if (f < 0) {
        rq_log(RQ_ERROR, "open %s: %s", path, strerror(errno));
        return RQ_IO;
    }
    l->read_fd = f;
    l->read_base = l->segs[si].base;
    *fd = f;
    return 0;
}

/*
 * Seals the active segment (its data and index made durable) and starts
 * the next one. The sealed segment's descriptor becomes the read one, as
 * readers are likely to be just behind the writer.
 */
static int roll(struct plog *l)
{
    struct seg *s = active(l);
    if (timed_fdatasync(l->active_fd, l->sync_seconds) != 0) {
        rq_log(RQ_ERROR, "fdatasync segment %020" PRIu64 ": %s", s->base,
               strerror(errno));
        return RQ_IO;
    }
    int rv = idx_write(l, true);
    if (rv != 0) {
        rq_log(RQ_ERROR, "write index of segment %020" PRIu64 ": %s", s->base,
               strerror(errno));
        return rv;
    }
    int old = l->active_fd;
    uint64_t old_base = s->base;
    rv = seg_create(l, s->next);
    if (rv != 0) {
        return rv;
    }
    if (l->read_fd >= 0) {
        close(l->read_fd);
    }
    l->read_fd = old;
    l->read_base = old_base;
    return 0;
}

/*
 * Finds the index entry at or before @offset in segment @si: *pos is the
 * position of a batch starting at offset *at <= @offset (0 and the base
 * when there is none).
 */
static int idx_lookup(struct plog *l, size_t si, uint64_t offset, uint64_t *pos,
                      uint64_t *at)
{
    const struct seg *s = &l->segs[si];
    uint64_t rel = offset - s->base;
    uint32_t best_rel = 0;
    uint32_t best_pos = 0;

    *pos = 0;
    *at = s->base;
    if (si == l->nsegs - 1) {
        size_t lo = 0;
        size_t hi = l->idx_n;
        while (lo < hi) {
            size_t mid = lo + (hi - lo) / 2;
            const uint8_t *e = l->idx + mid * INDEX_ENTRY;
            if (rq_wire_u32_at(e) <= rel) {
                best_rel = rq_wire_u32_at(e);
                best_pos = rq_wire_u32_at(e + 4);
                lo = mid + 1;
            } else {
                hi = mid;
            }
        }
    } else {
        char path[PATH_MAX];
        struct stat st;
        seg_path(l->dir, s->base, "idx", path, sizeof path);
        int fd = open(path, O_RDONLY | O_CLOEXEC);
        if (fd < 0) {
            /* Lost since open: reading from the start is slow, not wrong. */
            return 0;
        }
        if (fstat(fd, &st) != 0) {
            close(fd);
            return RQ_IO;
        }
        size_t lo = 0;
        size_t hi = (size_t)st.st_size / INDEX_ENTRY;
        while (lo < hi) {
            size_t mid = lo + (hi - lo) / 2;
            uint8_t e[INDEX_ENTRY];
            int rv = pread_full(fd, e, sizeof e, (uint64_t)mid * INDEX_ENTRY);
            if (rv != 0) {
                close(fd);
                return RQ_IO;
            }
            if (rq_wire_u32_at(e) <= rel) {
                best_rel = rq_wire_u32_at(e);
                best_pos = rq_wire_u32_at(e + 4);
                lo = mid + 1;
            } else {
                hi = mid;
            }
        }
        close(fd);
    }
    if (best_pos < s->bytes) {
        *pos = best_pos;
        *at = s->base + best_rel;
    }
    return 0;
}

/*
 * Walks batch headers of segment @si from the batch at @pos (offset
 * @expect) to the one holding @offset, reading a few KiB at a time.
 */
static int locate_batch(struct plog *l, size_t si, int fd, uint64_t offset,
                        uint64_t *pos, uint64_t expect, struct batch_hdr *h)
{
    const struct seg *s = &l->segs[si];
    uint8_t buf[HEADER_CHUNK];
    uint64_t at = *pos;
    char why[128];

    for (;;) {
        if (s->bytes - at < PLOG_BATCH_HEADER) {
            rq_log(RQ_ERROR,
                   "segment %020" PRIu64 " ends mid-batch at %" PRIu64, s->base,
                   at);
            return RQ_MALFORMED;
        }
        size_t n =
            s->bytes - at < sizeof buf ? (size_t)(s->bytes - at) : sizeof buf;
        int rv = pread_full(fd, buf, n, at);
        if (rv != 0) {
            return rv;
        }
        size_t r = 0;
        while (n - r >= PLOG_BATCH_HEADER) {
            hdr_decode(buf + r, h);
            if (!hdr_check(h, expect, s->bytes - at - r, why, sizeof why)) {
                rq_log(RQ_ERROR, "segment %020" PRIu64 " at %" PRIu64 ": %s",
                       s->base, at + r, why);
                return RQ_MALFORMED;
            }
            if (h->base + h->count > offset) {
                *pos = at + r;
                return 0;
            }
            expect = h->base + h->count;
            r += hdr_total(h);
        }
        at += r;
    }
}

/* ---- Recovery ---- */

/*
 * Opens the file of segment @s with @flags, names it and its index in @path
 * and @ipath, and sets *size from the file. Returns the descriptor, or -1
 * with @why filled.
 */
static int seg_open(const struct plog *l, const struct seg *s, int flags,
                    char path[PATH_MAX], char ipath[PATH_MAX], uint64_t *size,
                    char *why, size_t whyn)
{
    struct stat st;

    seg_path(l->dir, s->base, "seg", path, PATH_MAX);
    seg_path(l->dir, s->base, "idx", ipath, PATH_MAX);
    int fd = open(path, flags | O_CLOEXEC);
    if (fd < 0 || fstat(fd, &st) != 0) {
        rq_why(why, whyn, "open %s: %s", path, strerror(errno));
        if (fd >= 0) {
            close(fd);
        }
        return -1;
    }
    *size = (uint64_t)st.st_size;
    return fd;
}

/*
 * Opens sealed segment @s: its size from the file, its next offset, last
 * Raft index and newest timestamp from the batches after its last index
 * entry. The index is rebuilt when missing or invalid and completed when
 * short. Nothing else of the segment is read.
 */
static int open_sealed(struct plog *l, struct seg *s, char *why, size_t whyn)
{
    char path[PATH_MAX];
    char ipath[PATH_MAX];
    char reason[128];
    struct rq_buf add;
    int rv = 0;

    rq_buf_init(&add);
    int fd = seg_open(l, s, O_RDONLY, path, ipath, &s->bytes, why, whyn);
    if (fd < 0) {
        rv = RQ_IO;
        goto err_after_open;
    }
    if (s->bytes == 0) {
        rq_why(why, whyn, "segment %s is empty but is not the last", path);
        rv = RQ_MALFORMED;
        goto err_after_open;
    }

    /* Start from the last index entry if it points at the batch it names. */
    uint64_t pos = 0;
    uint64_t expect = s->base;
    size_t keep = 0;
    bool rewrite = false;
    int ifd = open(ipath, O_RDONLY | O_CLOEXEC);
    if (ifd < 0) {
        rq_log(RQ_WARN, "index %s missing: rebuilding it", ipath);
        rewrite = true;
    } else {
        struct stat ist;
        uint8_t e[INDEX_ENTRY];
        uint8_t hb[PLOG_BATCH_HEADER];
        struct batch_hdr h;
        if (fstat(ifd, &ist) != 0) {
            close(ifd);
            rq_why(why, whyn, "stat %s: %s", ipath, strerror(errno));
            rv = RQ_IO;
            goto err_after_open;
        }
        size_t n = (size_t)ist.st_size / INDEX_ENTRY;
        rewrite = (uint64_t)ist.st_size != (uint64_t)n * INDEX_ENTRY;
        if (n > 0) {
            if (pread_full(ifd, e, sizeof e, (n - 1) * INDEX_ENTRY) == 0 &&
                rq_wire_u32_at(e + 4) + (uint64_t)PLOG_BATCH_HEADER <=
                    s->bytes &&
                pread_full(fd, hb, sizeof hb, rq_wire_u32_at(e + 4)) == 0) {
                hdr_decode(hb, &h);
                if (h.magic == BATCH_MAGIC &&
                    h.base == s->base + rq_wire_u32_at(e)) {
                    pos = rq_wire_u32_at(e + 4);
                    expect = h.base;
                    keep = n;
                }
            }
            if (keep == 0) {
                rq_log(RQ_WARN, "index %s is invalid: rebuilding it", ipath);
                rewrite = true;
            }
        }
        close(ifd);
    }

    uint64_t last_pos = pos;
    while (pos < s->bytes) {
        uint8_t hb[PLOG_BATCH_HEADER];
        struct batch_hdr h;
        if (s->bytes - pos < PLOG_BATCH_HEADER) {
            rq_why(why, whyn, "sealed segment %s ends mid-batch at %" PRIu64,
                   path, pos);
            rv = RQ_MALFORMED;
            goto err_after_open;
        }
        rv = pread_full(fd, hb, sizeof hb, pos);
        if (rv != 0) {
            rq_why(why, whyn, "read %s: %s", path, strerror(errno));
            rv = RQ_IO;
            goto err_after_open;
        }
        hdr_decode(hb, &h);
        if (!hdr_check(&h, expect, s->bytes - pos, reason, sizeof reason)) {
            rq_why(why, whyn, "sealed segment %s is corrupt at %" PRIu64 ": %s",
                   path, pos, reason);
            rv = RQ_MALFORMED;
            goto err_after_open;
        }
        if (idx_due(pos, last_pos, l->index_interval) &&
            h.base - s->base <= UINT32_MAX) {
            rq_buf_put_u32(&add, (uint32_t)(h.base - s->base));
            rq_buf_put_u32(&add, (uint32_t)pos);
            last_pos = pos;
        }
        if (h.max_ts > s->max_timestamp_ms) {
            s->max_timestamp_ms = h.max_ts;
        }
        s->last_raft_index = h.raft_index;
        expect = h.base + h.count;
        pos += hdr_total(&h);
    }
    s->next = expect;
    if (add.err != 0) {
        rv = add.err; /* UNTESTED: ENOMEM only. */
        goto err_after_open;
    }

    if (rewrite || add.len > 0) {
        int wfd = open(ipath, O_WRONLY | O_CREAT | O_CLOEXEC, 0644);
        struct iovec iov = {add.base, add.len};
        if (wfd < 0 || ftruncate(wfd, (off_t)(keep * INDEX_ENTRY)) != 0 ||
            pwritev_full(wfd, &iov, 1, keep * INDEX_ENTRY) != 0) {
            rq_why(why, whyn, "write %s: %s", ipath, strerror(errno));
            rv = RQ_IO;
        }
        if (wfd >= 0) {
            close(wfd);
        }
        if (rv != 0) {
            goto err_after_open;
        }
        rq_log(RQ_INFO, "index %s: %zu entries kept, %zu added", ipath, keep,
               add.len / INDEX_ENTRY);
        l->dir_dirty = true;
    }

err_after_open:
    if (fd >= 0) {
        close(fd);
    }
    rq_buf_close(&add);
    return rv;
}

/* Ensures @buf holds the file's bytes [pos, pos + need). When it does not,
 * reads from @pos at least SCAN_CHUNK bytes (or up to @size) and sets *off,
 * the file position of buf->base, to @pos. */
static int scan_fill(int fd, struct rq_buf *buf, uint64_t size, uint64_t pos,
                     uint64_t need, uint64_t *off)
{
    if (pos >= *off && pos + need <= *off + buf->len) {
        return 0;
    }
    uint64_t n = need > SCAN_CHUNK ? need : SCAN_CHUNK;
    if (n > size - pos) {
        n = size - pos;
    }
    buf->len = 0;
    if (rq_buf_reserve(buf, (size_t)n) != 0) {
        return RQ_NOMEM; /* UNTESTED: ENOMEM only. */
    }
    int rv = pread_full(fd, buf->base, (size_t)n, pos);
    if (rv != 0) {
        return rv;
    }
    buf->len = (size_t)n;
    *off = pos;
    return 0;
}

/*
 * Opens the last segment for appending: checks every batch (header, Raft
 * index, crc and records), cuts a torn or corrupt tail, and rebuilds the
 * in-memory index, writing the .idx file if it does not match.
 */
static int recover_active(struct plog *l, char *why, size_t whyn)
{
    struct seg *s = active(l);
    char path[PATH_MAX];
    char ipath[PATH_MAX];
    char reason[128] = "";
    struct rq_buf buf;
    uint64_t buf_off = 0;
    uint64_t size;
    int rv = 0;

    rq_buf_init(&buf);
    int fd = seg_open(l, s, O_RDWR, path, ipath, &size, why, whyn);
    if (fd < 0) {
        rv = RQ_IO;
        goto err_after_open;
    }
    uint64_t pos = 0;
    while (pos < size) {
        struct batch_hdr h;
        if (size - pos < PLOG_BATCH_HEADER) {
            snprintf(reason, sizeof reason, "torn header");
            break;
        }
        rv = scan_fill(fd, &buf, size, pos, PLOG_BATCH_HEADER, &buf_off);
        if (rv != 0) {
            rq_why(why, whyn, "read %s: %s", path, strerror(errno));
            goto err_after_open;
        }
        hdr_decode(buf.base + (pos - buf_off), &h);
        if (!hdr_check(&h, s->next, size - pos, reason, sizeof reason)) {
            break;
        }
        rv = scan_fill(fd, &buf, size, pos, hdr_total(&h), &buf_off);
        if (rv != 0) {
            rq_why(why, whyn, "read %s: %s", path, strerror(errno));
            goto err_after_open;
        }
        /* plog_append only writes Raft indexes that increase from 1. */
        if (h.raft_index <= l->last_raft_index) {
            snprintf(reason, sizeof reason,
                     "raft index %" PRIu64 " not after %" PRIu64, h.raft_index,
                     l->last_raft_index);
            break;
        }
        const uint8_t *batch = buf.base + (pos - buf_off);
        if (batch_crc(batch, hdr_total(&h)) != h.crc) {
            snprintf(reason, sizeof reason, "crc mismatch");
            break;
        }
        /* A batch whose crc holds but whose records do not add up was
         * never written by plog_append: serving it would give readers an
         * error and peers bytes they refuse (plog_append_batches checks
         * the same), so it is cut like a torn one. */
        if (records_validate(batch + PLOG_BATCH_HEADER,
                             (size_t)hdr_total(&h) - PLOG_BATCH_HEADER,
                             h.count) != 0) {
            snprintf(reason, sizeof reason, "records do not match the header");
            break;
        }
        if (idx_reserve(l) != 0) {
            rv = RQ_NOMEM; /* UNTESTED: ENOMEM only. */
            goto err_after_open;
        }
        idx_note(l, h.base - s->base, pos);
        /* seg_account() adds to the totals; the segment started at 0. */
        seg_account(l, s, &h);
        pos += hdr_total(&h);
    }
    if (pos < size) {
        if (ftruncate(fd, (off_t)pos) != 0 || fsync(fd) != 0) {
            rq_why(why, whyn, "truncate %s: %s", path, strerror(errno));
            rv = RQ_IO;
            goto err_after_open;
        }
        rq_log(RQ_WARN,
               "segment %s: cut %" PRIu64 " bytes of torn tail at %" PRIu64
               " (%s); log ends at offset %" PRIu64,
               path, size - pos, pos, reason, s->next);
    }
    l->active_fd = fd;
    fd = -1;

    /* The index on disk must say what the scan found. */
    size_t want = l->idx_n * INDEX_ENTRY;
    bool same = false;
    int ifd = open(ipath, O_RDONLY | O_CLOEXEC);
    if (ifd >= 0) {
        struct stat ist;
        if (fstat(ifd, &ist) == 0 && (uint64_t)ist.st_size == want) {
            buf.len = 0;
            same = rq_buf_reserve(&buf, want + 1) == 0 &&
                   pread_full(ifd, buf.base, want, 0) == 0 &&
                   (want == 0 || memcmp(buf.base, l->idx, want) == 0);
        }
        close(ifd);
    }
    if (!same) {
        rv = idx_write(l, false);
        if (rv != 0) {
            rq_why(why, whyn, "write %s: %s", ipath, strerror(errno));
            goto err_after_open;
        }
        rq_log(RQ_INFO, "index %s rebuilt: %zu entries", ipath, l->idx_n);
        l->dir_dirty = true;
    }

err_after_open:
    if (fd >= 0) {
        close(fd);
    }
    rq_buf_close(&buf);
    return rv;
}

/* Lists the directory: segment bases, sorted, into *bases. Removes index
 * files whose segment is gone; logs and leaves any other file. */
static int list_dir(struct plog *l, uint64_t **bases, size_t *n, char *why,
                    size_t whyn)
{
    uint64_t *segs = NULL;
    uint64_t *idxs = NULL;
    size_t nseg = 0;
    size_t nidx = 0;
    size_t cap = 0;
    size_t icap = 0;
    int rv = 0;

    DIR *d = opendir(l->dir);
    if (d == NULL) {
        rq_why(why, whyn, "open directory %s: %s", l->dir, strerror(errno));
        return RQ_IO;
    }
    struct dirent *e;
    while ((e = readdir(d)) != NULL) {
        uint64_t base;
        bool is_seg;
        if (strcmp(e->d_name, ".") == 0 || strcmp(e->d_name, "..") == 0) {
            continue;
        }
        if (!parse_name(e->d_name, &base, &is_seg)) {
            rq_log(RQ_WARN, "%s: ignoring stray file %s", l->dir, e->d_name);
            continue;
        }
        uint64_t **arr = is_seg ? &segs : &idxs;
        size_t *len = is_seg ? &nseg : &nidx;
        size_t *c = is_seg ? &cap : &icap;
        if (*len == *c) {
            size_t nc = *c == 0 ? 64 : *c * 2;
            uint64_t *p = realloc(*arr, nc * sizeof *p);
            if (p == NULL) {
                rq_why(why, whyn, "out of memory"); /* UNTESTED: ENOMEM only. */
                rv = RQ_NOMEM;
                goto err_after_opendir;
            }
            *arr = p;
            *c = nc;
        }
        (*arr)[(*len)++] = base;
    }
    if (nseg > 0) {
        qsort(segs, nseg, sizeof *segs, cmp_u64);
    }
    for (size_t i = 0; i < nidx; i++) {
        if (nseg > 0 &&
            bsearch(&idxs[i], segs, nseg, sizeof *segs, cmp_u64) != NULL) {
            continue;
        }
        char path[PATH_MAX];
        seg_path(l->dir, idxs[i], "idx", path, sizeof path);
        rq_log(RQ_WARN, "removing index %s of a missing segment", path);
        unlink(path);
    }
    *bases = segs;
    *n = nseg;
    segs = NULL;

err_after_opendir:
    closedir(d);
    free(segs);
    free(idxs);
    return rv;
}

/* ---- Opening and closing ---- */

static void plog_free(struct plog *l)
{
    if (l->active_fd >= 0) {
        close(l->active_fd);
    }
    if (l->read_fd >= 0) {
        close(l->read_fd);
    }
    free(l->segs);
    free(l->idx);
    free(l->dir);
    free(l);
}

int plog_open(const struct plog_config *cfg, struct plog **out, char *why,
              size_t whyn)
{
    uint64_t *bases = NULL;
    size_t nb = 0;
    int rv;

    rq_why(why, whyn, "%s", "");
    uint64_t segment_bytes =
        cfg->segment_bytes == 0 ? SEGMENT_BYTES_DEFAULT : cfg->segment_bytes;
    if (segment_bytes > SEGMENT_BYTES_MAX) {
        rq_why(why, whyn, "segment_bytes %" PRIu64 " is over the limit of %llu",
               segment_bytes, SEGMENT_BYTES_MAX);
        return RQ_INVALID;
    }
    if (cfg->dir == NULL || cfg->dir[0] == '\0' ||
        strlen(cfg->dir) + NAME_DIGITS + 16 >= PATH_MAX) {
        rq_why(why, whyn, "the log directory name is empty or too long");
        return RQ_INVALID;
    }
    struct plog *l = calloc(1, sizeof *l);
    if (l == NULL) {
        rq_why(why, whyn, "out of memory"); /* UNTESTED: ENOMEM only. */
        return RQ_NOMEM;
    }
    l->active_fd = -1;
    l->read_fd = -1;
    l->segment_bytes = segment_bytes;
    l->sync_seconds = cfg->sync_seconds;
    l->index_interval =
        cfg->index_interval == 0 ? INDEX_INTERVAL_DEFAULT : cfg->index_interval;
    l->dir = strdup(cfg->dir);
    if (l->dir == NULL) {
        rq_why(why, whyn, "out of memory"); /* UNTESTED: ENOMEM only. */
        rv = RQ_NOMEM;
        goto err_after_alloc;
    }
    if (rq_mkdir_p(l->dir, NULL, 0) != 0) {
        rq_why(why, whyn, "create %s: %s", l->dir, strerror(errno));
        rv = RQ_IO;
        goto err_after_alloc;
    }
    rv = list_dir(l, &bases, &nb, why, whyn);
    if (rv != 0) {
        goto err_after_alloc;
    }
    if (nb == 0) {
        rv = seg_create(l, 0);
        if (rv != 0) {
            rq_why(why, whyn, "create the first segment in %s", l->dir);
            goto err_after_list;
        }
    }
    for (size_t i = 0; i < nb; i++) {
        rv = segs_push(l, bases[i]);
        if (rv != 0) {
            rq_why(why, whyn, "out of memory"); /* UNTESTED: ENOMEM only. */
            goto err_after_list;
        }
        if (i > 0 && l->segs[i - 1].next != bases[i]) {
            rq_why(why, whyn,
                   "%s: segment %020" PRIu64 " starts at %" PRIu64
                   " but the one before ends at %" PRIu64 " (%s)",
                   l->dir, bases[i], bases[i], l->segs[i - 1].next,
                   bases[i] > l->segs[i - 1].next ? "a gap" : "an overlap");
            rv = RQ_MALFORMED;
            goto err_after_list;
        }
        if (i + 1 < nb) {
            rv = open_sealed(l, &l->segs[i], why, whyn);
            l->total_bytes += l->segs[i].bytes;
        } else {
            rv = recover_active(l, why, whyn);
        }
        if (rv != 0) {
            goto err_after_list;
        }
    }
    for (size_t i = l->nsegs; i > 0; i--) {
        if (l->segs[i - 1].last_raft_index != 0) {
            l->last_raft_index = l->segs[i - 1].last_raft_index;
            break;
        }
    }
    l->hint.valid = false;
    free(bases);
    *out = l;
    return 0;

err_after_list:
    free(bases);
err_after_alloc:
    plog_free(l);
    return rv;
}

void plog_close(struct plog *l)
{
    if (l == NULL) {
        return;
    }
    /* Saves a rebuild on the next open; losing it costs only that. */
    if (!l->broken && l->active_fd >= 0 && idx_write(l, false) != 0) {
        rq_log(RQ_WARN, "%s: could not write the active index: %s", l->dir,
               strerror(errno));
    }
    plog_free(l);
}

/* ---- Appending ---- */

/*
 * Writes one batch (header @hb, then @body) at the end of the log, rolling
 * first if the active segment is full. One pwritev(); on failure the
 * partial write is cut back and the log refuses further writes.
 */
static int write_batch(struct plog *l, const struct batch_hdr *h,
                       const uint8_t *hb, const uint8_t *body, size_t body_len)
{
    struct seg *s = active(l);
    int rv;

    if (s->bytes > 0 && s->bytes >= l->segment_bytes) {
        rv = roll(l);
        if (rv != 0) {
            l->broken = true;
            return RQ_IO;
        }
        s = active(l);
    }
    if (idx_reserve(l) != 0) {
        return RQ_NOMEM; /* UNTESTED: ENOMEM only. */
    }
    uint64_t pos = s->bytes;
    struct iovec iov[2] = {{(void *)hb, PLOG_BATCH_HEADER},
                           {(void *)body, body_len}};
    rv = pwritev_full(l->active_fd, iov, body_len > 0 ? 2 : 1, pos);
    if (rv != 0) {
        rq_log(RQ_ERROR, "write segment %020" PRIu64 " at %" PRIu64 ": %s",
               s->base, pos, strerror(errno));
        if (ftruncate(l->active_fd, (off_t)pos) != 0) {
            rq_log(RQ_ERROR, "cut segment %020" PRIu64 " back: %s", s->base,
                   strerror(errno));
        }
        l->broken = true;
        return RQ_IO;
    }
    idx_note(l, h->base - s->base, pos);
    seg_account(l, s, h);
    return 0;
}

int plog_append(struct plog *l, uint64_t raft_index, const uint8_t *blob,
                size_t len, uint32_t count, int64_t max_timestamp_ms,
                uint64_t *base)
{
    if (l->broken) {
        return RQ_IO;
    }
    if (raft_index <= l->last_raft_index || count == 0) {
        return RQ_INVALID;
    }
    if (len > BLOB_MAX) {
        return RQ_TOOBIG;
    }
    uint64_t next = active(l)->next;
    if (count > UINT64_MAX - next) {
        return RQ_INVALID;
    }
    /* Walks record headers only, so the batch's count cannot lie. */
    if (records_validate(blob, len, count) != 0) {
        return RQ_MALFORMED;
    }
    struct batch_hdr h = {
        BATCH_MAGIC,
        (uint32_t)(len + BATCH_LEN_MIN),
        plog_batch_crc(next, raft_index, count, max_timestamp_ms, blob, len),
        count,
        next,
        raft_index,
        max_timestamp_ms};
    uint8_t hb[PLOG_BATCH_HEADER];
    hdr_encode(hb, &h);
    int rv = write_batch(l, &h, hb, blob, len);
    if (rv != 0) {
        return rv;
    }
    *base = next;
    return 0;
}

int plog_append_batches(struct plog *l, const uint8_t *bytes, size_t len)
{
    char why[128];
    size_t r = 0;

    if (l->broken) {
        return RQ_IO;
    }
    while (r < len) {
        struct batch_hdr h;
        uint64_t next = active(l)->next;
        if (len - r < PLOG_BATCH_HEADER) {
            snprintf(why, sizeof why, "truncated header");
            goto refuse;
        }
        hdr_decode(bytes + r, &h);
        if (!hdr_check(&h, next, len - r, why, sizeof why)) {
            goto refuse;
        }
        if (h.raft_index <= l->last_raft_index) {
            snprintf(why, sizeof why,
                     "raft index %" PRIu64 " not after %" PRIu64, h.raft_index,
                     l->last_raft_index);
            goto refuse;
        }
        uint64_t total = hdr_total(&h);
        if (batch_crc(bytes + r, total) != h.crc) {
            snprintf(why, sizeof why, "crc mismatch");
            goto refuse;
        }
        if (records_validate(bytes + r + PLOG_BATCH_HEADER,
                             (size_t)total - PLOG_BATCH_HEADER, h.count) != 0) {
            snprintf(why, sizeof why, "records do not match the header");
            goto refuse;
        }
        int rv = write_batch(l, &h, bytes + r, bytes + r + PLOG_BATCH_HEADER,
                             (size_t)total - PLOG_BATCH_HEADER);
        if (rv != 0) {
            return rv;
        }
        r += (size_t)total;
    }
    return 0;

refuse:
    rq_log(RQ_WARN, "%s: refusing batch at offset %" PRIu64 ": %s", l->dir,
           active(l)->next, why);
    return RQ_MALFORMED;
}

/* ---- Reading ---- */

/* A log whose reset failed has no segment left; it reads as empty. */
uint64_t plog_first_offset(const struct plog *l)
{
    return l->nsegs == 0 ? 0 : l->segs[0].base;
}

uint64_t plog_next_offset(const struct plog *l)
{
    return l->nsegs == 0 ? 0 : l->segs[l->nsegs - 1].next;
}

uint64_t plog_last_raft_index(const struct plog *l)
{
    return l->last_raft_index;
}

uint64_t plog_bytes(const struct plog *l)
{
    return l->total_bytes;
}

/*
 * A read walks the byte stream of one segment after another from a batch
 * header (found by the index) or from where the last read stopped. Each
 * step preads a chunk into @scratch past the records kept so far; wanted
 * records are moved down onto the kept ones, so headers and skipped
 * records vanish and the kept ones form one records blob. Batches wholly
 * before @offset are stepped over by their header without reading them.
 * A batch that fits in a chunk is crc-checked; one that does not is read
 * record by record, so a large batch never has to be read whole.
 */
int plog_read(struct plog *l, uint64_t offset, uint32_t max, size_t max_bytes,
              struct rq_buf *scratch, struct record *out, uint64_t *offsets,
              uint32_t *n)
{
    char why[128];
    int rv = 0;

    *n = 0;
    scratch->len = 0;
    scratch->err = 0;
    if (offset < plog_first_offset(l) || offset > plog_next_offset(l)) {
        return RQ_NOTFOUND;
    }
    if (offset == plog_next_offset(l) || max == 0) {
        return 0;
    }

    size_t si = seg_find(l, offset);
    struct spot sp = l->hint;
    if (!sp.valid || sp.offset != offset || sp.seg_base != l->segs[si].base) {
        uint64_t pos;
        uint64_t at;
        rv = idx_lookup(l, si, offset, &pos, &at);
        if (rv != 0) {
            return rv;
        }
        sp = (struct spot){true, l->segs[si].base, at, pos, false, 0, 0};
    }
    l->hint.valid = false;

    uint64_t cur = sp.offset; /* Offset of the next record or batch. */
    uint64_t fpos = sp.pos;   /* File position of the same. */
    bool in_batch = sp.in_batch;
    uint64_t batch_end = sp.batch_end;
    uint64_t batch_next = sp.batch_next;
    size_t chunk = READ_CHUNK_MIN; /* Doubles while a read needs more. */
    size_t w = 0;                  /* Bytes of records kept in scratch. */
    uint32_t got = 0;
    size_t vbytes = 0;
    bool full = false;

    while (got < max && !full) {
        const struct seg *s = &l->segs[si];
        if (!in_batch && fpos == s->bytes) {
            if (si + 1 == l->nsegs) {
                break;
            }
            si++;
            fpos = 0;
            continue;
        }
        int fd;
        rv = seg_fd(l, si, &fd);
        if (rv != 0) {
            break;
        }
        size_t want =
            s->bytes - fpos < chunk ? (size_t)(s->bytes - fpos) : chunk;
        scratch->len = w;
        if (rq_buf_reserve(scratch, want) != 0) {
            rv = RQ_NOMEM; /* UNTESTED: ENOMEM only. */
            break;
        }
        uint8_t *raw = scratch->base + w;
        rv = pread_full(fd, raw, want, fpos);
        if (rv != 0) {
            snprintf(why, sizeof why, "read failed: %s", strerror(errno));
            goto malformed;
        }
        uint64_t r = 0;
        size_t need = 0;
        while (got < max) {
            uint64_t at = fpos + r;
            if (!in_batch) {
                struct batch_hdr h;
                if (at == s->bytes) {
                    break;
                }
                if (s->bytes - at < PLOG_BATCH_HEADER) {
                    snprintf(why, sizeof why, "segment ends mid-header");
                    goto malformed;
                }
                if (want - r < PLOG_BATCH_HEADER) {
                    need = PLOG_BATCH_HEADER;
                    break;
                }
                hdr_decode(raw + r, &h);
                if (!hdr_check(&h, cur, s->bytes - at, why, sizeof why)) {
                    goto malformed;
                }
                uint64_t total = hdr_total(&h);
                if (h.base + h.count <= offset) {
                    cur = h.base + h.count;
                    r += total; /* May step past the chunk: read on there. */
                    if (r >= want) {
                        need = PLOG_BATCH_HEADER;
                        break;
                    }
                    continue;
                }
                if (total <= want - r) {
                    if (batch_crc(raw + r, total) != h.crc) {
                        snprintf(why, sizeof why, "crc mismatch");
                        goto malformed;
                    }
                } else if (total <= READ_CHUNK_MAX) {
                    need = (size_t)total; /* Read it whole, to check it. */
                    break;
                }
                in_batch = true;
                batch_end = at + total;
                batch_next = h.base + h.count;
                r += PLOG_BATCH_HEADER;
                continue;
            }
            /* A record inside a batch: timestamp | key_len | value_len. */
            uint64_t left = batch_end - at;
            if (cur == batch_next || left < RECORDS_HEADER) {
                snprintf(why, sizeof why, "records disagree with the count");
                goto malformed;
            }
            if (want - r < RECORDS_HEADER) {
                need = RECORDS_HEADER;
                break;
            }
            int64_t ts;
            struct rq_record_header rh;
            if (records_header_at(raw + r, &ts, &rh) != 0) {
                snprintf(why, sizeof why, "negative key length");
                goto malformed;
            }
            uint32_t vlen = rh.value_len;
            uint64_t rec =
                RECORDS_HEADER + (uint64_t)rq_record_header_data(&rh);
            if (rec > left) {
                snprintf(why, sizeof why, "record runs past its batch");
                goto malformed;
            }
            if (rec > want - r) {
                need = (size_t)rec;
                break;
            }
            if (cur >= offset) {
                if (got > 0 && vbytes + vlen > max_bytes) {
                    full = true;
                    break;
                }
                memmove(scratch->base + w, raw + r, (size_t)rec);
                w += (size_t)rec;
                vbytes += vlen;
                got++;
            }
            cur++;
            r += rec;
            if (fpos + r == batch_end) {
                if (cur != batch_next) {
                    snprintf(why, sizeof why,
                             "records disagree with the count");
                    goto malformed;
                }
                in_batch = false;
            }
        }
        fpos += r;
        if (need > chunk) {
            chunk = need;
        } else if (need == 0 && chunk < READ_CHUNK_MAX) {
            chunk *= 2;
        }
    }
    if (rv != 0) {
        goto done;
    }
    assert(cur == offset + got);
    l->hint = (struct spot){true,     l->segs[si].base, cur,       fpos,
                            in_batch, batch_end,        batch_next};
    goto done;

malformed:
    rq_log(RQ_ERROR, "%s: segment %020" PRIu64 " near %" PRIu64 ": %s", l->dir,
           l->segs[si].base, fpos, why);
    rv = RQ_MALFORMED;
done:
    scratch->len = w;
    if (rv != 0 && got == 0) {
        return rv;
    }
    /* Records before a bad spot are good: give them; the next read fails. */
    struct records_iter it;
    records_iter_init(&it, scratch->base, w);
    for (uint32_t i = 0; i < got; i++) {
        int k = records_next(&it, &out[i]);
        assert(k == 1);
        (void)k;
        if (offsets != NULL) {
            offsets[i] = offset + i;
        }
    }
    *n = got;
    return 0;
}

int plog_read_batches(struct plog *l, uint64_t offset, size_t n,
                      struct rq_buf *out)
{
    struct batch_hdr h;
    char why[128];
    uint64_t pos;
    uint64_t at;
    int fd;

    if (offset < plog_first_offset(l) || offset > plog_next_offset(l)) {
        return RQ_NOTFOUND;
    }
    if (offset == plog_next_offset(l)) {
        return 0;
    }
    size_t si = seg_find(l, offset);
    const struct seg *s = &l->segs[si];
    int rv = seg_fd(l, si, &fd);
    if (rv == 0) {
        rv = idx_lookup(l, si, offset, &pos, &at);
    }
    if (rv == 0) {
        rv = locate_batch(l, si, fd, offset, &pos, at, &h);
    }
    if (rv != 0) {
        return rv;
    }
    /* Whole batches within @n bytes, but always the first one. */
    uint64_t want = s->bytes - pos < n ? s->bytes - pos : n;
    if (want < hdr_total(&h)) {
        want = hdr_total(&h);
    }
    if (rq_buf_reserve(out, (size_t)want) != 0) {
        return RQ_NOMEM; /* UNTESTED: ENOMEM only. */
    }
    uint8_t *p = out->base + out->len;
    rv = pread_full(fd, p, (size_t)want, pos);
    if (rv != 0) {
        return rv;
    }
    uint64_t q = 0;
    uint64_t expect = h.base;
    while (want - q >= PLOG_BATCH_HEADER) {
        hdr_decode(p + q, &h);
        if (!hdr_check(&h, expect, s->bytes - pos - q, why, sizeof why)) {
            rq_log(RQ_ERROR, "segment %020" PRIu64 " at %" PRIu64 ": %s",
                   s->base, pos + q, why);
            return RQ_MALFORMED;
        }
        if (hdr_total(&h) > want - q) {
            break;
        }
        q += hdr_total(&h);
        expect = h.base + h.count;
    }
    out->len += (size_t)q;
    return 0;
}

/* ---- Checking and cutting back ---- */

/* Finds the batch that starts exactly at @offset: its segment, position
 * and header. */
static int batch_locate(struct plog *l, uint64_t offset, size_t *si,
                        uint64_t *pos, struct batch_hdr *h)
{
    uint64_t at;
    int fd;

    if (offset < plog_first_offset(l) || offset >= plog_next_offset(l)) {
        return RQ_NOTFOUND;
    }
    *si = seg_find(l, offset);
    int rv = seg_fd(l, *si, &fd);
    if (rv == 0) {
        rv = idx_lookup(l, *si, offset, pos, &at);
    }
    if (rv == 0) {
        rv = locate_batch(l, *si, fd, offset, pos, at, h);
    }
    if (rv != 0) {
        return rv;
    }
    return h->base == offset ? 0 : RQ_NOTFOUND;
}

int plog_batch_at(struct plog *l, uint64_t offset, struct plog_batch *out)
{
    struct batch_hdr h;
    uint64_t pos;
    size_t si;

    int rv = batch_locate(l, offset, &si, &pos, &h);
    if (rv != 0) {
        return rv;
    }
    *out = (struct plog_batch){h.base, h.count, h.crc, h.raft_index, h.max_ts};
    return 0;
}

uint32_t plog_batch_crc(uint64_t base_offset, uint64_t raft_index,
                        uint32_t count, int64_t max_timestamp_ms,
                        const uint8_t *blob, size_t len)
{
    struct batch_hdr h = {BATCH_MAGIC,
                          (uint32_t)(len + BATCH_LEN_MIN),
                          0,
                          count,
                          base_offset,
                          raft_index,
                          max_timestamp_ms};
    uint8_t hb[PLOG_BATCH_HEADER];
    hdr_encode(hb, &h);
    uLong crc = crc32_z(0, hb + 12, PLOG_BATCH_HEADER - 12);
    return (uint32_t)crc32_z(crc, blob, len);
}

/* Closes every descriptor before segments are deleted or cut. */
static void close_files(struct plog *l)
{
    if (l->read_fd >= 0) {
        close(l->read_fd);
        l->read_fd = -1;
    }
    close(l->active_fd);
    l->active_fd = -1;
    l->hint.valid = false;
}

/* Deletes the newest segment's files and forgets it (its descriptor is
 * closed already). */
static int drop_newest(struct plog *l)
{
    const struct seg *s = active(l);
    char path[PATH_MAX];

    seg_path(l->dir, s->base, "idx", path, sizeof path);
    unlink(path);
    seg_path(l->dir, s->base, "seg", path, sizeof path);
    if (unlink(path) != 0 && errno != ENOENT) {
        rq_log(RQ_ERROR, "delete %s: %s", path, strerror(errno));
        return RQ_IO;
    }
    l->total_bytes -= s->bytes;
    l->nsegs--;
    return 0;
}

int plog_truncate(struct plog *l, uint64_t offset)
{
    struct batch_hdr h;
    char path[PATH_MAX];
    char why[256];
    uint64_t pos;
    size_t si;
    int rv;

    if (l->broken) {
        return RQ_IO;
    }
    if (offset == plog_next_offset(l)) {
        return 0;
    }
    rv = batch_locate(l, offset, &si, &pos, &h);
    if (rv != 0) {
        return rv == RQ_MALFORMED ? RQ_NOTFOUND : rv;
    }
    uint64_t old_next = plog_next_offset(l);
    close_files(l);
    /* Newest first, so a crash part way leaves a shorter, whole log. */
    rv = 0;
    while (rv == 0 && l->nsegs - 1 > si) {
        rv = drop_newest(l);
    }
    if (rv == 0 && pos == 0 && si > 0) {
        /* The whole segment goes; the one before ends at @offset. */
        rv = drop_newest(l);
        if (rv == 0) {
            rv = seg_create(l, offset);
        }
    } else if (rv == 0) {
        /* Cut the file at the batch and read it again, as on open. */
        struct seg *s = active(l);
        seg_path(l->dir, s->base, "seg", path, sizeof path);
        int fd = open(path, O_WRONLY | O_CLOEXEC);
        if (fd < 0 || ftruncate(fd, (off_t)pos) != 0 || fsync(fd) != 0) {
            rq_log(RQ_ERROR, "cut %s at %" PRIu64 ": %s", path, pos,
                   strerror(errno));
            rv = RQ_IO;
        }
        if (fd >= 0) {
            close(fd);
        }
        if (rv == 0) {
            l->total_bytes -= s->bytes;
            *s = (struct seg){s->base, s->base, 0, 0, INT64_MIN};
            l->idx_n = 0;
            l->idx_last_pos = 0;
            /* The scan checks Raft indexes against the segments before. */
            l->last_raft_index = 0;
            for (size_t i = l->nsegs - 1; i > 0; i--) {
                if (l->segs[i - 1].last_raft_index != 0) {
                    l->last_raft_index = l->segs[i - 1].last_raft_index;
                    break;
                }
            }
            rv = recover_active(l, why, sizeof why);
            if (rv != 0) {
                rq_log(RQ_ERROR, "%s: reopen after a cut: %s", l->dir, why);
            }
        }
    }
    if (rv == 0 && rq_fsync_dir(l->dir) != 0) {
        rv = RQ_IO;
    }
    if (rv != 0) {
        l->broken = true;
        return RQ_IO;
    }
    l->dir_dirty = false;
    l->last_raft_index = 0;
    for (size_t i = l->nsegs; i > 0; i--) {
        if (l->segs[i - 1].last_raft_index != 0) {
            l->last_raft_index = l->segs[i - 1].last_raft_index;
            break;
        }
    }
    rq_log(RQ_WARN,
           "%s: cut back from offset %" PRIu64 " to %" PRIu64
           " (raft index %" PRIu64 ")",
           l->dir, old_next, offset, l->last_raft_index);
    return 0;
}

int plog_keep_below(struct plog *l, uint64_t offset)
{
    struct batch_hdr h;
    uint64_t pos;
    size_t si;

    if (l->broken) {
        return RQ_IO;
    }
    if (offset >= plog_next_offset(l)) {
        return 0;
    }
    if (offset < plog_first_offset(l)) {
        return RQ_NOTFOUND;
    }
    /* The batch holding @offset starts at or before it (RQ_NOTFOUND from
     * batch_locate says only that it does not start there). */
    int rv = batch_locate(l, offset, &si, &pos, &h);
    if (rv != 0 && rv != RQ_NOTFOUND) {
        return rv;
    }
    return plog_truncate(l, h.base);
}

/* ---- Durability, retention, reset ---- */

struct plog_sync_job {
    int fd;          /* A duplicate of the active segment's. */
    int dir_fd;      /* The directory's, or -1: nothing created since. */
    int err;         /* errno of the failed call. */
    bool dir_failed; /* The directory's fsync failed, not the segment's. */
    double seconds;  /* The fdatasync's. */
};

int plog_sync(struct plog *l)
{
    struct plog_sync_job *j;
    int rv = plog_sync_begin(l, &j);
    return rv != 0 ? rv : plog_sync_end(l, j, plog_sync_run(j));
}

int plog_sync_begin(struct plog *l, struct plog_sync_job **out)
{
    if (l->broken) {
        return RQ_IO;
    }
    struct plog_sync_job *j = calloc(1, sizeof *j);
    if (j == NULL) {
        return RQ_NOMEM; /* UNTESTED: ENOMEM only. */
    }
    j->dir_fd = -1;
    j->fd = fcntl(l->active_fd, F_DUPFD_CLOEXEC, 0);
    if (j->fd < 0) {
        rq_log(RQ_ERROR, "%s: dup: %s", l->dir, strerror(errno));
        free(j);
        return RQ_IO; /* UNTESTED: out of descriptors. */
    }
    if (l->dir_dirty) {
        j->dir_fd = open(l->dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
        if (j->dir_fd < 0) {
            rq_log(RQ_ERROR, "%s: open: %s", l->dir, strerror(errno));
            close(j->fd);
            free(j);
            return RQ_IO; /* UNTESTED: out of descriptors. */
        }
        l->dir_dirty = false; /* Back to true if the job fails. */
    }
    *out = j;
    return 0;
}

int plog_sync_run(struct plog_sync_job *j)
{
    struct timespec t0;
    struct timespec t1;
    clock_gettime(CLOCK_MONOTONIC, &t0);
    int rv = fdatasync(j->fd);
    clock_gettime(CLOCK_MONOTONIC, &t1);
    j->seconds = (double)(t1.tv_sec - t0.tv_sec) +
                 (double)(t1.tv_nsec - t0.tv_nsec) / 1e9;
    if (rv != 0) {
        j->err = errno;
        return RQ_IO;
    }
    if (j->dir_fd >= 0 && fsync(j->dir_fd) != 0) {
        j->err = errno;
        j->dir_failed = true;
        return RQ_IO;
    }
    return 0;
}

int plog_sync_end(struct plog *l, struct plog_sync_job *j, int rv)
{
    if (rv == 0 && l->sync_seconds != NULL) {
        rq_metric_observe(l->sync_seconds, j->seconds);
    }
    if (rv != 0) {
        rq_log(RQ_ERROR, "%s: %s: %s", l->dir,
               j->dir_failed ? "fsync directory" : "fdatasync",
               j->err != 0 ? strerror(j->err) : rq_strerror(rv));
        if (!j->dir_failed) {
            /* Pages that failed to write may be dropped: do not trust
             * later. */
            l->broken = true;
        }
        if (j->dir_fd >= 0) {
            l->dir_dirty = true;
        }
    }
    close(j->fd);
    if (j->dir_fd >= 0) {
        close(j->dir_fd);
    }
    free(j);
    return rv;
}

/* Deletes the oldest segment's files and forgets it. */
static int drop_oldest(struct plog *l)
{
    struct seg *s = &l->segs[0];
    char path[PATH_MAX];

    assert(l->nsegs > 1);
    if (l->read_fd >= 0 && l->read_base == s->base) {
        close(l->read_fd);
        l->read_fd = -1;
    }
    if (l->hint.seg_base == s->base) {
        l->hint.valid = false;
    }
    seg_path(l->dir, s->base, "seg", path, sizeof path);
    if (unlink(path) != 0 && errno != ENOENT) {
        rq_log(RQ_ERROR, "delete %s: %s", path, strerror(errno));
        return RQ_IO;
    }
    /* The segment goes first: an index left alone is removed on open. */
    seg_path(l->dir, s->base, "idx", path, sizeof path);
    unlink(path);
    l->total_bytes -= s->bytes;
    memmove(l->segs, l->segs + 1, (l->nsegs - 1) * sizeof *l->segs);
    l->nsegs--;
    l->dir_dirty = true;
    return 0;
}

int plog_retain(struct plog *l, uint64_t max_bytes, uint64_t max_age_ms,
                uint64_t now_ms, unsigned *deleted)
{
    *deleted = 0;
    while (l->nsegs > 1) {
        const struct seg *s = &l->segs[0];
        bool over = max_bytes > 0 && l->total_bytes > max_bytes;
        bool old = max_age_ms > 0 && s->max_timestamp_ms >= 0 &&
                   now_ms > (uint64_t)s->max_timestamp_ms &&
                   now_ms - (uint64_t)s->max_timestamp_ms > max_age_ms;
        if (!over && !old) {
            break;
        }
        uint64_t base = s->base;
        uint64_t next = s->next;
        int rv = drop_oldest(l);
        if (rv != 0) {
            return rv;
        }
        rq_log(RQ_INFO,
               "%s: deleted segment %020" PRIu64 " (offsets to %" PRIu64
               ", %s)",
               l->dir, base, next, over ? "size" : "age");
        (*deleted)++;
    }
    return 0;
}

int plog_reset(struct plog *l, uint64_t next_offset, uint64_t raft_index)
{
    if (l->broken) {
        return RQ_IO;
    }
    close_files(l);
    /* Newest first, so a crash part way leaves a shorter, whole log. */
    while (l->nsegs > 0) {
        if (drop_newest(l) != 0) {
            l->broken = true;
            return RQ_IO;
        }
    }
    l->total_bytes = 0;
    int rv = seg_create(l, next_offset);
    if (rv == 0) {
        rv = rq_fsync_dir(l->dir);
    }
    if (rv != 0) {
        l->broken = true;
        return RQ_IO;
    }
    l->dir_dirty = false;
    l->last_raft_index = raft_index;
    rq_log(RQ_INFO, "%s: reset to offset %" PRIu64 " (raft index %" PRIu64 ")",
           l->dir, next_offset, raft_index);
    return 0;
}

size_t plog_segments(const struct plog *l, struct plog_segment *out, size_t max)
{
    for (size_t i = 0; i < l->nsegs && i < max; i++) {
        const struct seg *s = &l->segs[i];
        out[i] = (struct plog_segment){s->base, s->next, s->bytes,
                                       s->last_raft_index, i + 1 < l->nsegs};
    }
    return l->nsegs;
}

/* Records read ahead for consumers (see readahead.h). */
#include "readahead.h"

#include <stdlib.h>
#include <string.h>

#include "rq_err.h"

struct readahead_entry {
    struct rq_list link; /* In lru, least recently used first. */
    uint64_t consumer;
    uint64_t group;
    uint64_t first; /* Offset of recs[0]. */
    json_t *recs;   /* Of {offset, value}, following on; NULL: none. */
    size_t bytes;   /* Of values in recs. */
    size_t avg;     /* Bytes of a value in the last read, on average. */
};

void readahead_init(struct readahead *ra)
{
    memset(ra, 0, sizeof *ra);
    rq_idmap_init(&ra->by_consumer);
    rq_list_init(&ra->lru);
}

static void entry_drop(struct readahead *ra, struct readahead_entry *e)
{
    rq_idmap_del(&ra->by_consumer, e->consumer);
    rq_list_remove(&e->link);
    ra->n--;
    ra->bytes -= e->bytes;
    json_decref(e->recs);
    free(e);
}

void readahead_close(struct readahead *ra)
{
    while (!rq_list_empty(&ra->lru)) {
        entry_drop(ra,
                   RQ_LIST_ENTRY(ra->lru.next, struct readahead_entry, link));
    }
    rq_idmap_close(&ra->by_consumer);
}

uint32_t readahead_want(const struct readahead *ra, uint64_t consumer,
                        uint32_t need)
{
    const struct readahead_entry *e = rq_idmap_get(&ra->by_consumer, consumer);
    size_t want = READAHEAD_RECORDS;
    if (e != NULL && e->avg > 0) {
        want = READAHEAD_ENTRY_BYTES / e->avg;
        want = want < 1                   ? 1
               : want > READAHEAD_RECORDS ? READAHEAD_RECORDS
                                          : want;
    }
    return want > need ? (uint32_t)want : need;
}

/* The record's offset and value length, or false if it is not one. */
static bool record_of(const json_t *rec, uint64_t *offset, size_t *len)
{
    const json_t *off = json_object_get(rec, "offset");
    const json_t *val = json_object_get(rec, "value");
    if (!json_is_integer(off) || json_integer_value(off) < 0 ||
        !json_is_string(val)) {
        return false;
    }
    *offset = (uint64_t)json_integer_value(off);
    *len = json_string_length(val);
    return true;
}

/* Makes @e the most recently used (the tail) and drops the least
 * recently used (from the head) past the limits, never @e itself. */
static void touch(struct readahead *ra, struct readahead_entry *e)
{
    rq_list_remove(&e->link);
    rq_list_push(&ra->lru, &e->link);
    while ((ra->n > READAHEAD_ENTRIES || ra->bytes > READAHEAD_BYTES) &&
           ra->lru.next != &e->link) {
        entry_drop(ra,
                   RQ_LIST_ENTRY(ra->lru.next, struct readahead_entry, link));
    }
}

int readahead_put(struct readahead *ra, uint64_t consumer, uint64_t group,
                  const json_t *records, size_t skip)
{
    struct readahead_entry *e = rq_idmap_get(&ra->by_consumer, consumer);
    if (e == NULL) {
        e = calloc(1, sizeof *e);
        if (e == NULL) {
            return RQ_NOMEM; /* UNTESTED: ENOMEM only. */
        }
        e->consumer = consumer;
        rq_list_init(&e->link);
        if (rq_idmap_put(&ra->by_consumer, consumer, e) != 0) {
            free(e); /* UNTESTED: ENOMEM only. */
            return RQ_NOMEM;
        }
        rq_list_push(&ra->lru, &e->link);
        ra->n++;
    }
    ra->bytes -= e->bytes;
    e->bytes = 0;
    json_decref(e->recs);
    e->recs = NULL;
    e->group = group;

    size_t n = json_array_size(records);
    size_t total = 0;
    for (size_t i = 0; i < n; i++) {
        uint64_t off;
        size_t len;
        if (record_of(json_array_get(records, i), &off, &len)) {
            total += len;
        }
    }
    e->avg = n > 0 ? (total + n - 1) / n : 0;
    if (e->avg == 0 && n > 0) {
        e->avg = 1;
    }
    json_t *keep = json_array();
    if (keep == NULL) {
        entry_drop(ra, e); /* UNTESTED: ENOMEM only. */
        return RQ_NOMEM;
    }
    uint64_t next = 0;
    size_t bytes = 0;
    for (size_t i = skip; i < n; i++) {
        json_t *rec = json_array_get(records, i);
        uint64_t off;
        size_t len;
        if (!record_of(rec, &off, &len) ||
            (json_array_size(keep) > 0 && off != next) ||
            bytes + len > READAHEAD_ENTRY_BYTES) {
            break;
        }
        if (json_array_size(keep) == 0) {
            e->first = off;
        }
        if (json_array_append(keep, rec) != 0) {
            json_decref(keep); /* UNTESTED: ENOMEM only. */
            entry_drop(ra, e);
            return RQ_NOMEM;
        }
        bytes += len;
        next = off + 1;
    }
    if (json_array_size(keep) == 0) {
        json_decref(keep); /* Nothing held; its sizes stay known. */
    } else {
        e->recs = keep;
        e->bytes = bytes;
        ra->bytes += bytes;
    }
    touch(ra, e);
    return 0;
}

json_t *readahead_get(struct readahead *ra, uint64_t consumer, uint64_t group,
                      uint64_t offset, size_t max)
{
    struct readahead_entry *e = rq_idmap_get(&ra->by_consumer, consumer);
    if (e == NULL || e->recs == NULL || e->group != group ||
        offset < e->first || offset - e->first >= json_array_size(e->recs) ||
        max == 0) {
        return NULL;
    }
    json_t *out = json_array();
    if (out == NULL) {
        return NULL; /* UNTESTED: ENOMEM only. */
    }
    size_t n = json_array_size(e->recs);
    for (size_t i = (size_t)(offset - e->first); i < n && max > 0; i++, max--) {
        if (json_array_append(out, json_array_get(e->recs, i)) != 0) {
            json_decref(out); /* UNTESTED: ENOMEM only. */
            return NULL;
        }
    }
    touch(ra, e);
    return out;
}

void readahead_forget(struct readahead *ra, uint64_t consumer)
{
    struct readahead_entry *e = rq_idmap_get(&ra->by_consumer, consumer);
    if (e != NULL) {
        entry_drop(ra, e);
    }
}

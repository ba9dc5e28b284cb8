/*
 * The deduplication table (see rq_dedupe.h): the one implementation of
 * the producer table of a partition and the origin table of the ATM
 * ledger. Pool positions are stable while an entry lives; the pool grows
 * by doubling up to max and never shrinks.
 */
#include "rq_dedupe.h"

#include <assert.h>
#include <stdalign.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

#include "rq_err.h"
#include "rq_hash.h"

#define SLOTS_MIN 16
#define NONE UINT32_MAX

/* Where a position's value starts: after the entry, aligned for any type. */
#define VALUE_AT                                                   \
    ((sizeof(struct rq_dedupe_entry) + alignof(max_align_t) - 1) / \
     alignof(max_align_t) * alignof(max_align_t))

static struct rq_dedupe_entry *at(const struct rq_dedupe *t, uint32_t i)
{
    return (struct rq_dedupe_entry *)(void *)(t->pool + (size_t)i * t->stride);
}

static uint32_t position(const struct rq_dedupe *t,
                         const struct rq_dedupe_entry *e)
{
    return (uint32_t)(((const unsigned char *)e - t->pool) / t->stride);
}

void rq_dedupe_init(struct rq_dedupe *t, uint32_t max, size_t value_size)
{
    assert(max >= 1 && max < NONE);
    memset(t, 0, sizeof *t);
    t->max = max;
    t->stride = VALUE_AT + (value_size + alignof(max_align_t) - 1) /
                               alignof(max_align_t) * alignof(max_align_t);
    t->lru = t->mru = NONE;
}

void rq_dedupe_close(struct rq_dedupe *t)
{
    uint32_t max = t->max;
    size_t stride = t->stride;
    free(t->pool);
    free(t->slots);
    memset(t, 0, sizeof *t);
    t->max = max;
    t->stride = stride;
    t->lru = t->mru = NONE;
}

/* The slot holding @id, or the empty slot where it would go. */
static uint32_t *slot_of(const struct rq_dedupe *t, uint64_t id)
{
    size_t mask = t->nslots - 1;
    size_t i = (size_t)rq_hash_u64(id) & mask;
    while (t->slots[i] != 0 && at(t, t->slots[i] - 1)->id != id) {
        i = (i + 1) & mask;
    }
    return &t->slots[i];
}

struct rq_dedupe_entry *rq_dedupe_find(const struct rq_dedupe *t, uint64_t id)
{
    if (t->nslots == 0) {
        return NULL;
    }
    uint32_t s = *slot_of(t, id);
    return s != 0 ? at(t, s - 1) : NULL;
}

void *rq_dedupe_value(const struct rq_dedupe_entry *e)
{
    return (unsigned char *)(uintptr_t)e + VALUE_AT;
}

uint32_t rq_dedupe_count(const struct rq_dedupe *t)
{
    return t->n;
}

uint64_t rq_dedupe_ops(const struct rq_dedupe *t)
{
    return t->ops;
}

int rq_dedupe_reserve(struct rq_dedupe *t, uint32_t n)
{
    if (n > t->max) {
        n = t->max;
    }
    if (n > t->cap) {
        uint32_t cap = t->cap == 0 ? SLOTS_MIN / 2 : t->cap;
        while (cap < n) {
            cap *= 2;
        }
        if (cap > t->max) {
            cap = t->max;
        }
        unsigned char *pool = realloc(t->pool, (size_t)cap * t->stride);
        if (pool == NULL) {
            return RQ_NOMEM; /* UNTESTED: ENOMEM only. */
        }
        t->pool = pool;
        t->cap = cap;
    }
    size_t nslots = t->nslots == 0 ? SLOTS_MIN : t->nslots;
    while ((size_t)n * 2 > nslots) {
        nslots *= 2;
    }
    if (nslots == t->nslots) {
        return 0;
    }
    uint32_t *old = t->slots;
    size_t old_n = t->nslots;
    t->slots = calloc(nslots, sizeof *t->slots);
    if (t->slots == NULL) {
        t->slots = old;
        return RQ_NOMEM; /* UNTESTED: ENOMEM only. */
    }
    t->nslots = nslots;
    for (size_t i = 0; i < old_n; i++) {
        if (old[i] != 0) {
            *slot_of(t, at(t, old[i] - 1)->id) = old[i];
        }
    }
    free(old);
    return 0;
}

static void lru_unlink(struct rq_dedupe *t, uint32_t i)
{
    struct rq_dedupe_entry *e = at(t, i);
    if (e->prev != NONE) {
        at(t, e->prev)->next = e->next;
    } else {
        t->lru = e->next;
    }
    if (e->next != NONE) {
        at(t, e->next)->prev = e->prev;
    } else {
        t->mru = e->prev;
    }
}

static void lru_push(struct rq_dedupe *t, uint32_t i)
{
    struct rq_dedupe_entry *e = at(t, i);
    e->prev = t->mru;
    e->next = NONE;
    if (t->mru != NONE) {
        at(t, t->mru)->next = i;
    } else {
        t->lru = i;
    }
    t->mru = i;
}

/*
 * Empties the slot @hole by backward-shift deletion: later members of the
 * same probe run move up, so every lookup still finds its entry without
 * crossing an empty slot.
 */
static void slot_remove(struct rq_dedupe *t, uint32_t *hole)
{
    size_t mask = t->nslots - 1;
    size_t i = (size_t)(hole - t->slots);
    size_t j = i;
    for (;;) {
        j = (j + 1) & mask;
        if (t->slots[j] == 0) {
            break;
        }
        size_t home = (size_t)rq_hash_u64(at(t, t->slots[j] - 1)->id) & mask;
        /* Move j into i unless its home lies cyclically in (i, j]. */
        bool stays = i <= j ? (home > i && home <= j) : (home > i || home <= j);
        if (!stays) {
            t->slots[i] = t->slots[j];
            i = j;
        }
    }
    t->slots[i] = 0;
}

/*
 * A new entry @id (absent), room reserved, not on the list yet. When the
 * table is full the least recently used entry is forgotten and its pool
 * position reused.
 */
static uint32_t add(struct rq_dedupe *t, uint64_t id)
{
    uint32_t i;
    if (t->n == t->max) {
        i = t->lru;
        assert(i != NONE);
        lru_unlink(t, i);
        slot_remove(t, slot_of(t, at(t, i)->id));
    } else {
        assert(t->n < t->cap && ((size_t)t->n + 1) * 2 <= t->nslots);
        i = t->n++;
    }
    memset(at(t, i), 0, t->stride);
    at(t, i)->id = id;
    uint32_t *s = slot_of(t, id);
    assert(*s == 0);
    *s = i + 1;
    return i;
}

struct rq_dedupe_entry *rq_dedupe_put(struct rq_dedupe *t, uint64_t id,
                                      uint64_t seq)
{
    struct rq_dedupe_entry *e = rq_dedupe_find(t, id);
    uint32_t i;
    if (e != NULL) {
        i = position(t, e);
        lru_unlink(t, i);
    } else {
        i = add(t, id);
        e = at(t, i);
    }
    e->seq = seq;
    e->last_used = ++t->ops;
    lru_push(t, i);
    return e;
}

static int id_cmp(const void *a, const void *b)
{
    const struct rq_dedupe_entry *x = *(const struct rq_dedupe_entry *const *)a;
    const struct rq_dedupe_entry *y = *(const struct rq_dedupe_entry *const *)b;
    return x->id < y->id ? -1 : x->id > y->id;
}

int rq_dedupe_sorted(const struct rq_dedupe *t,
                     const struct rq_dedupe_entry ***out)
{
    const struct rq_dedupe_entry **v = malloc(((size_t)t->n + 1) * sizeof *v);
    if (v == NULL) {
        return RQ_NOMEM; /* UNTESTED: ENOMEM only. */
    }
    for (uint32_t i = 0; i < t->n; i++) {
        v[i] = at(t, i);
    }
    qsort(v, t->n, sizeof *v, id_cmp);
    *out = v;
    return 0;
}

int rq_dedupe_load_begin(struct rq_dedupe *t, uint64_t ops, uint32_t n)
{
    assert(t->n == 0);
    if (n > t->max) {
        return RQ_MALFORMED;
    }
    t->ops = ops;
    return rq_dedupe_reserve(t, n);
}

void *rq_dedupe_load(struct rq_dedupe *t, uint64_t id, uint64_t seq,
                     uint64_t last_used)
{
    assert(t->n < t->max);
    /* Loads fill the pool in order: the last position is the last load. */
    if (t->n > 0 && id <= at(t, t->n - 1)->id) {
        return NULL;
    }
    struct rq_dedupe_entry *e = at(t, add(t, id));
    e->seq = seq;
    e->last_used = last_used;
    e->prev = e->next = NONE;
    return rq_dedupe_value(e);
}

struct lru_key {
    uint64_t last_used;
    uint32_t i;
};

static int lru_key_cmp(const void *a, const void *b)
{
    uint64_t x = ((const struct lru_key *)a)->last_used;
    uint64_t y = ((const struct lru_key *)b)->last_used;
    return x < y ? -1 : x > y;
}

/* Threads the loaded entries on the list in last_used order, checking
 * that the values are distinct and in 1..ops. */
int rq_dedupe_load_end(struct rq_dedupe *t)
{
    struct lru_key *order = malloc(((size_t)t->n + 1) * sizeof *order);
    int rv = 0;

    if (order == NULL) {
        return RQ_NOMEM; /* UNTESTED: ENOMEM only. */
    }
    for (uint32_t i = 0; i < t->n; i++) {
        order[i] = (struct lru_key){at(t, i)->last_used, i};
    }
    qsort(order, t->n, sizeof *order, lru_key_cmp);
    for (uint32_t k = 0; k < t->n; k++) {
        uint64_t v = order[k].last_used;
        if (v == 0 || v > t->ops || (k > 0 && v == order[k - 1].last_used)) {
            rv = RQ_MALFORMED;
            break;
        }
        lru_push(t, order[k].i);
    }
    free(order);
    return rv;
}

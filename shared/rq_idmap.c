/*
 * Open addressing with linear probing. A slot is empty when its value is
 * NULL. Removal shifts later members of the probe run back into the hole
 * instead of leaving a tombstone, so a table that sees many inserts and
 * removals (groups coming and going, calls completing) never fills up with
 * dead slots. The table doubles when it would become more than half full.
 */
#include "rq_idmap.h"

#include <assert.h>
#include <stdlib.h>

#include "rq_err.h"
#include "rq_hash.h"

#define MIN_CAP 16

struct rq_idmap_slot {
    uint64_t key;
    void *value;
};

/* The home slot of @key in a table of @cap slots (a power of two). */
static size_t hash(uint64_t key, size_t cap)
{
    return (size_t)rq_hash_u64(key) & (cap - 1);
}

void rq_idmap_init(struct rq_idmap *m)
{
    m->slots = NULL;
    m->cap = 0;
    m->count = 0;
}

void rq_idmap_close(struct rq_idmap *m)
{
    free(m->slots);
    rq_idmap_init(m);
}

/* The slot holding @key, or NULL (linear probing from its hash). */
static struct rq_idmap_slot *slot_of(const struct rq_idmap *m, uint64_t key)
{
    if (m->cap == 0) {
        return NULL;
    }
    for (size_t i = hash(key, m->cap);; i = (i + 1) & (m->cap - 1)) {
        struct rq_idmap_slot *s = &m->slots[i];
        if (s->value == NULL) {
            return NULL;
        }
        if (s->key == key) {
            return s;
        }
    }
}

void *rq_idmap_get(const struct rq_idmap *m, uint64_t key)
{
    struct rq_idmap_slot *s = slot_of(m, key);
    return s != NULL ? s->value : NULL;
}

/* Places an entry known to be absent into a table with room. */
static void insert(struct rq_idmap_slot *slots, size_t cap, uint64_t key,
                   void *value)
{
    size_t i = hash(key, cap);
    while (slots[i].value != NULL) {
        i = (i + 1) & (cap - 1);
    }
    slots[i].key = key;
    slots[i].value = value;
}

static int grow(struct rq_idmap *m)
{
    size_t cap = m->cap == 0 ? MIN_CAP : m->cap * 2;
    struct rq_idmap_slot *slots = calloc(cap, sizeof *slots);
    if (slots == NULL) {
        return RQ_NOMEM; /* UNTESTED: ENOMEM only. */
    }
    for (size_t i = 0; i < m->cap; i++) {
        if (m->slots[i].value != NULL) {
            insert(slots, cap, m->slots[i].key, m->slots[i].value);
        }
    }
    free(m->slots);
    m->slots = slots;
    m->cap = cap;
    return 0;
}

int rq_idmap_put(struct rq_idmap *m, uint64_t key, void *value)
{
    assert(value != NULL);
    if (slot_of(m, key) != NULL) {
        return RQ_EXISTS;
    }
    if ((m->count + 1) * 2 > m->cap) {
        int rv = grow(m);
        if (rv != 0) {
            return rv;
        }
    }
    insert(m->slots, m->cap, key, value);
    m->count++;
    return 0;
}

void *rq_idmap_del(struct rq_idmap *m, uint64_t key)
{
    struct rq_idmap_slot *s = slot_of(m, key);
    if (s == NULL) {
        return NULL;
    }
    void *value = s->value;
    size_t mask = m->cap - 1;
    size_t hole = (size_t)(s - m->slots);

    /* Walk the rest of the run; an entry may move into the hole if its home
     * slot does not lie cyclically in (hole, j], otherwise a probe from its
     * home would stop at the hole and miss it. */
    for (size_t j = (hole + 1) & mask; m->slots[j].value != NULL;
         j = (j + 1) & mask) {
        size_t home = hash(m->slots[j].key, m->cap);
        if (((j - home) & mask) >= ((j - hole) & mask)) {
            m->slots[hole] = m->slots[j];
            hole = j;
        }
    }
    m->slots[hole].value = NULL;
    m->count--;
    return value;
}

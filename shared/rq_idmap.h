/*
 * A map from 64-bit ids to pointers: an open-addressing hash table with
 * linear probing, for the mux's group table and the RPC module's pending
 * calls. Lookups, inserts and removals take constant expected time whatever
 * the number of entries. It stores pointers and owns none of them.
 */
#ifndef RQ_IDMAP_H
#define RQ_IDMAP_H

#include <stddef.h>
#include <stdint.h>

struct rq_idmap_slot;

struct rq_idmap {
    struct rq_idmap_slot *slots; /* Heap, owned; NULL while empty. */
    size_t cap;                  /* A power of two, or 0. */
    size_t count;
};

void rq_idmap_init(struct rq_idmap *m);
/* Frees the table, not the values. */
void rq_idmap_close(struct rq_idmap *m);

/* The value stored under @key, or NULL. */
void *rq_idmap_get(const struct rq_idmap *m, uint64_t key);

/* Stores @value (not NULL) under @key: 0, RQ_EXISTS or RQ_NOMEM. */
int rq_idmap_put(struct rq_idmap *m, uint64_t key, void *value);

/* Removes @key and returns its value, or NULL if it was absent. */
void *rq_idmap_del(struct rq_idmap *m, uint64_t key);

#endif /* RQ_IDMAP_H */

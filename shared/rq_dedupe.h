/*
 * A deduplication table: for each writer (a producer of a partition, an
 * ATM origin), the last sequence number it applied, when, and the result
 * to answer a retry of it with. Pure and deterministic: no I/O, no clock,
 * no randomness.
 *
 * Time is the table's own operation clock, which every rq_dedupe_put()
 * advances by one; an entry remembers the clock's value when it was last
 * put (last_used). At most @max writers are remembered; when one more
 * comes, the least recently used is forgotten first. last_used values are
 * distinct, so every replica that puts the same writers in the same order
 * forgets the same ones and holds the same table.
 *
 * The caller keeps its result beside each entry (rq_dedupe_value(), a
 * fixed size given at init) and encodes snapshots itself: rq_dedupe_sorted()
 * walks the entries by id, never in table order (which depends on the
 * history of evictions), and rq_dedupe_load_*() rebuilds a table from
 * decoded entries and checks the clock values.
 *
 * Implementation: a dense pool of entries, an open-addressing hash of pool
 * positions (linear probing, at most half full, backward-shift deletion)
 * and a list through the pool in last_used order, so finding, putting and
 * evicting are O(1).
 *
 * Invariants: n <= max; each entry has a distinct last_used in 1..ops;
 * the list runs from lru to mru in last_used order.
 */
#ifndef RQ_DEDUPE_H
#define RQ_DEDUPE_H

#include <stddef.h>
#include <stdint.h>

/* One writer. The caller reads id, seq and last_used and changes none. */
struct rq_dedupe_entry {
    uint64_t id;
    uint64_t seq;       /* The last one applied. */
    uint64_t last_used; /* The clock when it was applied. */
    uint32_t prev;      /* The table's: pool positions on the list. */
    uint32_t next;
};

/* Placed by the caller (rq_dedupe_init/rq_dedupe_close); the fields are
 * the table's. A table may be moved by assignment. */
struct rq_dedupe {
    uint32_t max;
    size_t stride;       /* Bytes of a pool position: entry and value. */
    unsigned char *pool; /* n used of cap positions. */
    uint32_t n;
    uint32_t cap;
    uint32_t *slots; /* Pool position + 1; 0: empty. Power of two. */
    size_t nslots;
    uint32_t lru; /* Least recently used, first evicted. */
    uint32_t mru;
    uint64_t ops; /* The clock: puts so far. */
};

/* An empty table of at most @max (>= 1) entries, each with @value_size
 * bytes of the caller's beside it. Allocates nothing. */
void rq_dedupe_init(struct rq_dedupe *t, uint32_t max, size_t value_size);

/* Frees everything; @t is then empty, as after init, and usable again. */
void rq_dedupe_close(struct rq_dedupe *t);

/* The entry of @id, or NULL. Valid until the next put, reserve or load. */
struct rq_dedupe_entry *rq_dedupe_find(const struct rq_dedupe *t, uint64_t id);

/* The value_size bytes beside @e, aligned for any type. */
void *rq_dedupe_value(const struct rq_dedupe_entry *e);

/* Entries remembered, and the clock. */
uint32_t rq_dedupe_count(const struct rq_dedupe *t);
uint64_t rq_dedupe_ops(const struct rq_dedupe *t);

/*
 * Makes room for @n entries in all (at most max), so that the puts up to
 * there cannot fail: 0, or RQ_NOMEM with nothing changed. Callers reserve
 * count + 1 before applying anything of a write, so that running out of
 * memory changes nothing and the write can be applied again.
 */
int rq_dedupe_reserve(struct rq_dedupe *t, uint32_t n);

/*
 * Notes that @id applied @seq: the clock advances and becomes the entry's
 * last_used, and the entry becomes the most recently used. A new @id, when
 * the table is full, takes the place of the least recently used entry,
 * which is forgotten; its value is zeroed. The caller has reserved room
 * for a new id. Returns the entry (for rq_dedupe_value()).
 */
struct rq_dedupe_entry *rq_dedupe_put(struct rq_dedupe *t, uint64_t id,
                                      uint64_t seq);

/*
 * The entries ordered by id, in a new array of rq_dedupe_count() pointers
 * (the caller frees it with free(); the entries are borrowed). RQ_NOMEM.
 */
int rq_dedupe_sorted(const struct rq_dedupe *t,
                     const struct rq_dedupe_entry ***out);

/*
 * Rebuilding a table from a decoded snapshot: begin on an empty table
 * with the clock and the number of entries to come (RQ_MALFORMED over
 * max, RQ_NOMEM), then one load per entry, at most that many, in
 * ascending id order as rq_dedupe_sorted() gives them: each returns the
 * entry's value for the caller to fill, or NULL if @id is not above the
 * id loaded before it (the snapshot is malformed). Then end, which checks
 * that the last_used values are distinct and in 1..ops (RQ_MALFORMED,
 * RQ_NOMEM) and makes the table usable. On an error the caller closes the
 * table.
 */
int rq_dedupe_load_begin(struct rq_dedupe *t, uint64_t ops, uint32_t n);
void *rq_dedupe_load(struct rq_dedupe *t, uint64_t id, uint64_t seq,
                     uint64_t last_used);
int rq_dedupe_load_end(struct rq_dedupe *t);

#endif /* RQ_DEDUPE_H */

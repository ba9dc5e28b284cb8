/*
 * Merging produces to one partition into one broker call (see pmerge.h).
 */
#include "pmerge.h"

#include <assert.h>

void pmerge_init(struct pmerge *q, uint64_t producer_id)
{
    assert(producer_id != 0);
    q->head = NULL;
    q->tail = &q->head;
    q->n = 0;
    q->in_flight = false;
    q->producer_id = producer_id;
    q->sequence = 0;
}

bool pmerge_add(struct pmerge *q, struct pmerge_item *it)
{
    it->next = NULL;
    *q->tail = it;
    q->tail = &it->next;
    q->n++;
    return !q->in_flight;
}

struct pmerge_item *pmerge_take(struct pmerge *q, size_t max_records,
                                size_t max_bytes, size_t *n, uint64_t *sequence)
{
    assert(!q->in_flight);
    *n = 0;
    if (q->head == NULL) {
        return NULL;
    }
    struct pmerge_item *first = q->head;
    struct pmerge_item *last = first;
    size_t count = 1;
    size_t bytes = first->len;
    while (last->next != NULL && count < max_records &&
           bytes + last->next->len <= max_bytes) {
        last = last->next;
        bytes += last->len;
        count++;
    }
    q->head = last->next;
    if (q->head == NULL) {
        q->tail = &q->head;
    }
    last->next = NULL;
    q->n -= count;
    q->in_flight = true;
    *n = count;
    *sequence = ++q->sequence;
    return first;
}

bool pmerge_done(struct pmerge *q)
{
    assert(q->in_flight);
    q->in_flight = false;
    return q->head != NULL;
}

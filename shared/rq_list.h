/*
 * An intrusive doubly-linked list: a struct rq_list member inside each
 * element, and a head of the same type. The head is a sentinel, so insert
 * and remove never branch on emptiness. Header-only: the functions are a few
 * pointer moves each.
 *
 *     struct conn { ...; struct rq_list link; };
 *     rq_list_push(&owner->conns, &c->link);
 *     struct conn *c = RQ_LIST_ENTRY(owner->conns.next, struct conn, link);
 */
#ifndef RQ_LIST_H
#define RQ_LIST_H

#include <stdbool.h>
#include <stddef.h>

struct rq_list {
    struct rq_list *prev;
    struct rq_list *next;
};

#define RQ_LIST_ENTRY(ptr, type, member) \
    ((type *)(void *)((char *)(ptr)-offsetof(type, member)))

/* Makes @l an empty list (or an unlinked element). */
static inline void rq_list_init(struct rq_list *l)
{
    l->prev = l;
    l->next = l;
}

static inline bool rq_list_empty(const struct rq_list *l)
{
    return l->next == l;
}

/* Appends @e at the tail of @head. */
static inline void rq_list_push(struct rq_list *head, struct rq_list *e)
{
    e->prev = head->prev;
    e->next = head;
    head->prev->next = e;
    head->prev = e;
}

/* Unlinks @e and leaves it as an empty list, so removing twice is safe. */
static inline void rq_list_remove(struct rq_list *e)
{
    e->prev->next = e->next;
    e->next->prev = e->prev;
    rq_list_init(e);
}

#endif /* RQ_LIST_H */

/* The table of peer brokers' answers (peerwatch.h). */
#include "peerwatch.h"

#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "rq_err.h"
#include "rq_wire.h"

void peerwatch_init(struct peerwatch *w, uint64_t dead_after_ms)
{
    memset(w, 0, sizeof *w);
    w->dead_after_ms = dead_after_ms;
}

void peerwatch_close(struct peerwatch *w)
{
    free(w->peers);
    memset(w, 0, sizeof *w);
}

void peerwatch_round_begin(struct peerwatch *w, uint64_t now_ms)
{
    bool absent = w->last_round_ms != 0 &&
                  now_ms > w->last_round_ms + w->dead_after_ms / 2;
    w->last_round_ms = now_ms;
    for (size_t i = 0; i < w->n; i++) {
        w->peers[i].seen = false;
        if (absent && !w->peers[i].down) {
            w->peers[i].last_ok_ms = now_ms;
        }
    }
}

struct peerwatch_peer *peerwatch_get(struct peerwatch *w, uint64_t id)
{
    for (size_t i = 0; i < w->n; i++) {
        if (w->peers[i].id == id) {
            return &w->peers[i];
        }
    }
    return NULL;
}

int peerwatch_track(struct peerwatch *w, uint64_t id, const char *addr,
                    uint64_t now_ms)
{
    struct peerwatch_peer *p = peerwatch_get(w, id);
    if (p == NULL) {
        if (w->n == w->cap) {
            size_t cap = w->cap == 0 ? 8 : w->cap * 2;
            struct peerwatch_peer *x = realloc(w->peers, cap * sizeof *x);
            if (x == NULL) {
                return RQ_NOMEM; /* UNTESTED: ENOMEM only. */
            }
            w->peers = x;
            w->cap = cap;
        }
        p = &w->peers[w->n++];
        *p = (struct peerwatch_peer){.id = id, .last_ok_ms = now_ms};
    }
    if (strcmp(p->addr, addr) != 0) { /* New, or moved. */
        snprintf(p->addr, sizeof p->addr, "%s", addr);
    }
    p->seen = true;
    return 0;
}

void peerwatch_round_end(struct peerwatch *w)
{
    size_t j = 0;
    for (size_t i = 0; i < w->n; i++) {
        if (w->peers[i].seen) {
            w->peers[j++] = w->peers[i];
        }
    }
    w->n = j;
}

bool peerwatch_answer(struct peerwatch *w, uint64_t id, bool ok,
                      uint64_t now_ms)
{
    struct peerwatch_peer *p = peerwatch_get(w, id);
    if (p == NULL) {
        return false;
    }
    p->in_flight = false;
    if (!ok) {
        return false;
    }
    p->last_ok_ms = now_ms;
    bool back = p->down;
    p->down = false;
    return back;
}

bool peerwatch_decode_features(int status, const uint8_t *body, size_t len,
                               uint32_t *features)
{
    if (status != 0 && status != RQ_INVALID && status != RQ_MALFORMED) {
        return false; /* Not reached: nothing learned. */
    }
    *features = status == 0 && len >= 4 ? rq_wire_u32_at(body) : 0;
    return true;
}

void peerwatch_features(struct peerwatch *w, uint64_t id, int status,
                        const uint8_t *body, size_t len)
{
    struct peerwatch_peer *p = peerwatch_get(w, id);
    uint32_t f;
    if (p != NULL && peerwatch_decode_features(status, body, len, &f)) {
        p->features = f;
        p->features_known = true;
    }
}

bool peerwatch_has(struct peerwatch *w, uint64_t id, uint32_t feature)
{
    const struct peerwatch_peer *p = peerwatch_get(w, id);
    return p != NULL && p->features_known && (p->features & feature) != 0;
}

size_t peerwatch_check(struct peerwatch *w, uint64_t now_ms,
                       void (*down)(void *data, const struct peerwatch_peer *p),
                       void *data)
{
    size_t n = 0;
    for (size_t i = 0; i < w->n; i++) {
        struct peerwatch_peer *p = &w->peers[i];
        if (p->down || now_ms < p->last_ok_ms + w->dead_after_ms) {
            continue;
        }
        p->down = true;
        n++;
        down(data, p);
    }
    return n;
}

/*
 * Which peer brokers answer, as the broker's pings find (broker.c sends
 * one to each broker that shares a group with it, every heartbeat, over
 * the Raft port's RPC; any answer, even a refusal of the method by an
 * older broker, shows its process and loop alive). A pure table, no I/O,
 * so that what counts as down is decided in one place that tests reach.
 *
 * A peer is down once nothing has answered for @dead_after_ms since its
 * last answer (or since it was first tracked); peerwatch_check reports
 * each such peer once, and an answer afterwards brings it back. A peer
 * that no group names any more is forgotten at the end of the round that
 * no longer tracked it.
 *
 * A ping's answer also says what the peer can read (features:u32, little-
 * endian; PEERWATCH_MERGES: merged produce entries, partition.h). A peer
 * that answers with no body, or refuses the method, is an older broker
 * that can read none of them; one that has not answered yet is not known
 * to read any either.
 */
#ifndef PEERWATCH_H
#define PEERWATCH_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "rq_config.h"

/* Feature bits of a ping's answer. */
#define PEERWATCH_MERGES 1u
/* Not a feature but a state: the peer's data volume is under its reserve
 * (disk.h), so groups it is a member of take no produces. */
#define PEERWATCH_DISK_LOW 2u
/* A state too: the peer is shutting down, handing its leaderships over;
 * no leadership is handed to it. */
#define PEERWATCH_LEAVING 4u

struct peerwatch_peer {
    uint64_t id;
    uint32_t features;   /* From its last answer that said (see above). */
    bool features_known; /* It has answered so. */
    char addr[RQ_ADDR_MAX];
    uint64_t last_ok_ms; /* Its last answer, or when first tracked. */
    bool in_flight;      /* A ping is out. */
    bool down;           /* Reported down, not heard since. */
    bool seen;           /* Tracked in the current round. */
};

struct peerwatch {
    struct peerwatch_peer *peers;
    size_t n;
    size_t cap;
    uint64_t dead_after_ms;
    uint64_t last_round_ms; /* 0: none yet. */
};

void peerwatch_init(struct peerwatch *w, uint64_t dead_after_ms);
void peerwatch_close(struct peerwatch *w);

/* A round: begin, track every peer a group names, end. A round that
 * begins over half @dead_after_ms after the one before finds this process
 * itself was not running (stopped, or its loop blocked): nobody's silence
 * meanwhile counts, and every peer's count starts again. */
void peerwatch_round_begin(struct peerwatch *w, uint64_t now_ms);
/* Tracks @id at @addr (updated if it moved). 0 or RQ_NOMEM. */
int peerwatch_track(struct peerwatch *w, uint64_t id, const char *addr,
                    uint64_t now_ms);
/* Forgets the peers this round did not track. */
void peerwatch_round_end(struct peerwatch *w);

/* The peer @id, or NULL. The pointer lasts until the next track or end. */
struct peerwatch_peer *peerwatch_get(struct peerwatch *w, uint64_t id);

/* The ping to @id has ended: @ok if it was answered. true when the peer
 * was down and is back. A peer no longer tracked is ignored. */
bool peerwatch_answer(struct peerwatch *w, uint64_t id, bool ok,
                      uint64_t now_ms);

/* What a ping's answer (@status, @body of @len bytes) says its broker
 * reads: true and *features, or false when it says nothing (the broker
 * was not reached). */
bool peerwatch_decode_features(int status, const uint8_t *body, size_t len,
                               uint32_t *features);

/* Records what the ping to @id answered (@status, @body of @len bytes)
 * says it can read; a failure to reach it says nothing. */
void peerwatch_features(struct peerwatch *w, uint64_t id, int status,
                        const uint8_t *body, size_t len);

/* Whether peer @id is known to read @feature. */
bool peerwatch_has(struct peerwatch *w, uint64_t id, uint32_t feature);

/* Reports (@down) each peer that has gone down since the last check, once;
 * returns how many. */
size_t peerwatch_check(struct peerwatch *w, uint64_t now_ms,
                       void (*down)(void *data, const struct peerwatch_peer *p),
                       void *data);

#endif /* PEERWATCH_H */

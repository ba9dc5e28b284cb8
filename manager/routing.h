/*
 * Where each partition group can be reached: its leader broker, as last
 * reported, and its high watermark. Every manager keeps one. The leader
 * manager feeds it from brokers' heartbeats (each lists the groups the
 * broker hosts with their role, leader, term, commit and next offset);
 * every manager also feeds it from what brokers answer (a 421 names the
 * leader, a produce's success proves it). It is a cache: a wrong entry
 * costs a redirect, never a wrong answer. Pure: no I/O, time comes in as
 * an argument.
 */
#ifndef ROUTING_H
#define ROUTING_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct route {
    uint64_t group_id;
    uint32_t leader;         /* Broker id; 0 when not known. */
    uint64_t term;           /* Of the report that named the leader. */
    uint64_t high_watermark; /* The largest next offset reported. */
    uint64_t commit;         /* The leader's Raft commit index. */
    uint64_t updated_ms;     /* When the leader was last confirmed. */
    /* routing_version() when any field above but updated_ms last changed,
     * so that a follower copies only what changed since its last copy. */
    uint64_t version;
};

struct routing;

/* 0 or RQ_NOMEM. */
int routing_new(struct routing **out);
void routing_free(struct routing *rt);

/*
 * One broker's report on one group: @reporter says it is the leader
 * (@is_leader) or names @leader_id (0: none known) in @term. A report of a
 * newer term replaces the leader; of the same term it fills in an unknown
 * one. @next_offset raises the high watermark. 0 or RQ_NOMEM.
 */
int routing_report(struct routing *rt, uint64_t group_id, uint32_t reporter,
                   bool is_leader, uint32_t leader_id, uint64_t term,
                   uint64_t commit, uint64_t next_offset, uint64_t now_ms);

/* A broker answered as (or named) the leader of @group_id. */
int routing_set_leader(struct routing *rt, uint64_t group_id, uint32_t leader,
                       uint64_t now_ms);
/* A broker said @leader is not the leader (or could not be reached). */
void routing_drop_leader(struct routing *rt, uint64_t group_id,
                         uint32_t leader);
/* Raises the high watermark (a produce's last offset + 1, a read's). */
int routing_raise(struct routing *rt, uint64_t group_id, uint64_t hw);

/* The group's route, or NULL; valid until the next routing_ call. */
const struct route *routing_get(const struct routing *rt, uint64_t group_id);

/* Drops groups for which @keep(data, gid) is false (deleted topics). */
void routing_prune(struct routing *rt, bool (*keep)(void *data, uint64_t gid),
                   void *data);

size_t routing_count(const struct routing *rt);
/* The @i-th route in group order, for listing (i < routing_count()). */
const struct route *routing_at(const struct routing *rt, size_t i);

/*
 * Merges a route another manager knows (a follower copies the leader's):
 * a newer term replaces the leader, the same term fills in an unknown one,
 * and the high watermark and commit only rise. 0 or RQ_NOMEM.
 */
int routing_merge(struct routing *rt, const struct route *from,
                  uint64_t now_ms);

/* The version of the last change to any route (0: none yet). */
uint64_t routing_version(const struct routing *rt);

#endif /* ROUTING_H */

/*
 * A replica's descriptor: what partition replica a broker hosts (topic,
 * partition, Raft group, the group's members in the order the manager gave
 * them, and whether this replica bootstraps the group). It arrives as the
 * body of POST /internal/replicas and is kept as replica.json beside the
 * replica's data, so a restart knows what to reopen. Pure: JSON in and
 * out, no I/O.
 */
#ifndef REPLICA_DESC_H
#define REPLICA_DESC_H

#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "rq_config.h"
#include "rq_names.h"

#define REPLICA_TOPIC_MAX RQ_NAMES_TOPIC_MAX
#define REPLICA_MEMBERS_MAX 5

struct replica_member {
    uint64_t id;
    char raft_addr[RQ_ADDR_MAX];
    char http_addr[RQ_ADDR_MAX];
};

/* What a replica is. Fixed when it is created, except the members, which
 * follow the group's committed Raft configuration (in its order), and the
 * preferred leader, which the manager may change. */
struct replica_desc {
    char topic[REPLICA_TOPIC_MAX + 1];
    uint64_t partition_id;
    uint64_t group_id;
    struct replica_member members[REPLICA_MEMBERS_MAX];
    size_t n_members;
    bool bootstrap; /* Bootstrap the group's first configuration. */
    /* The broker that should lead the group (0: none given, then the
     * rotation of replica_desc_preferred). It need not be a member yet. */
    uint64_t preferred_leader;
};

/*
 * Reads a descriptor from JSON (a POST /internal/replicas body or
 * replica.json); "preferred_leader" is optional (a positive broker id).
 * 0, or RQ_INVALID with a sentence in @why.
 */
int replica_desc_parse(const json_t *in, struct replica_desc *out, char *why,
                       size_t whyn);
/* Reads one member, {id, raft_addr, http_addr}. 0, or RQ_INVALID with a
 * sentence in @why. */
int replica_member_parse(const json_t *in, struct replica_member *out,
                         char *why, size_t whyn);
/* The descriptor as JSON (new reference); without "bootstrap" if @brief;
 * with "preferred_leader" when one was given. */
json_t *replica_desc_json(const struct replica_desc *d, bool brief);
/* Same topic, partition, group and members (in order); the preferred
 * leader is not compared. */
bool replica_desc_same(const struct replica_desc *a,
                       const struct replica_desc *b);
/* The member with @id, or NULL. */
const struct replica_member *replica_desc_member(const struct replica_desc *d,
                                                 uint64_t id);
/* The preferred leader: the one given, else members[group_id % n_members],
 * so that groups numbered consecutively rotate their leaders over the
 * members. */
uint64_t replica_desc_preferred(const struct replica_desc *d);

#endif /* REPLICA_DESC_H */

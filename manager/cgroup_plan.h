/*
 * The rules of consumer groups (API.md section 2b) as pure functions: who
 * owns which partition after a change of membership, whether a commit is
 * fenced off, and which members have let their session lapse. No store, no
 * clock, no I/O: mstore.c applies the assignment inside the commands that
 * change a group, and the coordinator on the leader (cgroup.c) feeds the
 * expiry rule its in-memory last-seen times.
 *
 * Members are named by their index in a list the caller keeps in one
 * deterministic order (mstore sorts them by member id), so that every
 * manager applying the same command computes the same assignment.
 */
#ifndef CGROUP_PLAN_H
#define CGROUP_PLAN_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* No owner: an index that is no member's. */
#define CGROUP_PLAN_NONE UINT32_MAX

/* A refusal of a request from a member that is not, or no longer, in the
 * group's current generation with that partition (API.md: 409, join
 * again). Numbered after rq_err.h's RQ_ERR_MODULE_FIRST. */
#define CGROUP_PLAN_FENCED 1021

/* Members a group may have at once. */
#define CGROUP_PLAN_MAX_MEMBERS 1024

/*
 * The assignment after a change: @prev[p] is partition p's owner before it
 * (an index below @n_members, or CGROUP_PLAN_NONE when it had none or its
 * owner has left; any other value counts as none), for each of
 * @n_partitions partitions; @next receives each partition's new owner.
 *
 * Balanced: owned counts differ by at most one, and with no member every
 * partition is CGROUP_PLAN_NONE. Sticky: a partition keeps its owner
 * unless the owner holds more than its share; the members that already
 * hold the most get the larger shares (ties to the lower index), and a
 * member over its share keeps its lowest-numbered partitions. The
 * partitions set free go, lowest first, to the members below their share,
 * the member with the fewest first (ties to the lower index). So a join
 * takes from each member only what the newcomer's share needs, and a leave
 * moves only the leaver's partitions.
 *
 * @prev and @next may be the same array. Returns 0, or RQ_NOMEM.
 */
int cgroup_plan_assign(uint32_t n_members, const uint32_t *prev,
                       uint32_t n_partitions, uint32_t *next);

/*
 * Whether member @member (an index, or CGROUP_PLAN_NONE for one not in the
 * group) at @generation may commit offsets of @parts (n of them) while the
 * group is at @current with @owner[p] for each of @n_partitions: 0, or
 * CGROUP_PLAN_FENCED with the reason in @why (an unknown member, another
 * generation, a partition it does not own, or one out of range).
 */
int cgroup_plan_commit_check(uint32_t member, uint64_t generation,
                             uint64_t current, const uint32_t *owner,
                             uint32_t n_partitions, const uint32_t *parts,
                             size_t n, char *why, size_t whyn);

/* What the coordinator knows of one member's session. */
struct cgroup_plan_session {
    uint64_t last_ms;    /* Last heartbeat, fetch or commit it made. */
    uint64_t session_ms; /* Its session_timeout_ms. */
};

/*
 * The session rule: a member is expired at @now when it has not been heard
 * from for its session_ms, counting from @since_ms (when this manager
 * started leading) if that is later than its last_ms, so that a new leader
 * gives everyone a full session. Returns how many of the @n sessions are
 * expired and writes their indices, in order, to @out (room for @n).
 */
size_t cgroup_plan_expired(const struct cgroup_plan_session *s, size_t n,
                           uint64_t now, uint64_t since_ms, uint32_t *out);

#endif /* CGROUP_PLAN_H */

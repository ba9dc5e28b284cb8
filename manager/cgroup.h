/*
 * The consumer group coordinator on the leader manager (API.md section
 * 2b): what the store does not keep, in memory only.
 *
 * - When each member was last heard from (a join, heartbeat, fetch or
 *   commit). Heartbeats are not written to the log; the expiry of a
 *   member that went silent is (MCMD_GROUP_LEAVE, proposed by
 *   cgroup_tick). A new leader knows no last-seen time and counts every
 *   member's session from the moment it started leading, so a change of
 *   leader never expires anyone early.
 * - Each partition's position: where the member that owns it reads next.
 *   Fetches advance it without committing it; it starts at the group's
 *   committed offset whenever the partition has a new owner, and on a new
 *   leader (so records fetched and not committed are fetched again: at
 *   least once, never a gap).
 * - Which members have a fetch waiting, so that a member's fetches run one
 *   at a time and two never read the same records.
 *
 * The rules themselves (who expired, the assignment, fencing) are
 * cgroup_plan's; this module gathers their inputs and proposes.
 */
#ifndef CGROUP_H
#define CGROUP_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct mcore;
struct cgroup;

int cgroup_new(struct mcore *core, struct cgroup **out);
/* NULL is a no-op. */
void cgroup_free(struct cgroup *cg);

/* This manager became the leader at @now: forget everything, and count
 * every member's session from @now. */
void cgroup_lead(struct cgroup *cg, uint64_t now);
/* Leadership ended: forget everything. */
void cgroup_stop(struct cgroup *cg);

/* @member of @group was heard from at @now. 0 or RQ_NOMEM. */
int cgroup_touch(struct cgroup *cg, const char *group, const char *member,
                 uint64_t now);
/* When @member was last heard from, or when this manager started leading
 * if it has not been heard from since. */
uint64_t cgroup_last_seen(const struct cgroup *cg, const char *group,
                          const char *member);
/* @member left (a leave this manager proposed): forget it. */
void cgroup_forget(struct cgroup *cg, const char *group, const char *member);

/*
 * Where @member reads partition @p of @group next: its position if it
 * owned the partition when it last read it, else @committed (the group's
 * committed offset, 0 for none), and never below @committed.
 */
uint64_t cgroup_position(const struct cgroup *cg, const char *group, uint32_t p,
                         const char *member, uint64_t committed);
/* @member read @p up to @next (the offset after its last record). 0 or
 * RQ_NOMEM. */
int cgroup_advance(struct cgroup *cg, const char *group, uint32_t p,
                   const char *member, uint64_t next);

/* A fetch of @member starts: false if one is already waiting (the caller
 * refuses the new one). */
bool cgroup_fetch_begin(struct cgroup *cg, const char *group,
                        const char *member);
void cgroup_fetch_end(struct cgroup *cg, const char *group, const char *member);

/* Proposes the leave of every member whose session has lapsed, one
 * proposal a group at a time. */
void cgroup_tick(struct cgroup *cg, uint64_t now);

#endif /* CGROUP_H */

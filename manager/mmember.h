/*
 * The managers' own membership (DESIGN.md section 17): managers join and
 * leave the metadata group by Raft membership changes, driven on the
 * leader, one at a time (libraft allows no more).
 *
 *   POST   /internal/managers/{id}/join   a manager with an empty Raft
 *          directory asks to be added (mjoin.h): not in the configuration,
 *          it is added as a spare (200, once committed) and then promoted;
 *          still in it as a voter (it lost its data), its old membership is
 *          removed first (202: join again), so it never votes with an empty
 *          log; a spare is answered 200 at once.
 *   POST   /admin/managers {"id", "raft_addr"}   add a spare (raftq cluster
 *          add-manager): it is promoted once it runs and has caught up.
 *   DELETE /admin/managers/{id}   remove (raftq cluster remove-manager);
 *          refused (409) if fewer than 3 voters would remain, unless
 *          ?force=true; the leader itself hands leadership over first (503
 *          with Retry-After: ask again).
 *
 * Every leader tick, a spare in the configuration is promoted (raft_assign
 * to voter: libraft catches it up first, in rounds, and gives up if a
 * round takes over 5 s; a failed promotion is tried again after a pause).
 *
 *     IDLE --join/add of a new id--> ADD --committed--> IDLE
 *     IDLE --join of a voter, remove--> REMOVE --committed--> IDLE
 *     IDLE --tick, a spare--> PROMOTE --committed or failed--> IDLE
 */
#ifndef MMEMBER_H
#define MMEMBER_H

#include <stdbool.h>
#include <stdint.h>

struct mcore;
struct mmember;
struct rq_http_req;

int mmember_new(struct mcore *core, struct mmember **out);
/* The loop has stopped; nothing is pending. NULL is a no-op. */
void mmember_free(struct mmember *mm);

/* Leader duties: ask the members, promote a spare, remove one gone. */
void mmember_tick(struct mmember *mm, uint64_t now);

/* This manager leads from @now: every member gets a full --manager-gone-ms
 * again. */
void mmember_lead(struct mmember *mm, uint64_t now);

/* true once every other member of the configuration answered, in the last
 * round, a schema version at least this release's. */
bool mmember_all_current(const struct mmember *mm);

void mmember_join(struct rq_http_req *req, void *data);
void mmember_add(struct rq_http_req *req, void *data);
void mmember_remove(struct rq_http_req *req, void *data);

#endif /* MMEMBER_H */

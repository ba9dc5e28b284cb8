/*
 * The repair plan (see repair_plan.h).
 */
#include "repair_plan.h"

#include <stdlib.h>
#include <string.h>

#include "placement.h"

static bool in_list(const uint32_t *ids, size_t n, uint32_t id)
{
    for (size_t i = 0; i < n; i++) {
        if (ids[i] == id) {
            return true;
        }
    }
    return false;
}

static struct repair_plan_move move_of(const struct mstore_partition *p,
                                       uint32_t from, uint32_t to,
                                       enum repair_step first)
{
    return (struct repair_plan_move){
        .part = p, .from = from, .to = to, .first = first};
}

/*
 * A move an earlier leader left half done, as the group's voters show it:
 * true (and *@out set) if @p needs only its REBUILD, REMOVE or COMMIT.
 * *consistent tells whether the voters match the store's replicas.
 */
static bool resume(const struct repair_view *v,
                   const struct mstore_partition *p, bool *consistent,
                   struct repair_plan_move *out)
{
    uint32_t voters[LIVENESS_VOTERS_MAX];
    unsigned nv = v->voters(v->data, p->group_id, voters);
    uint32_t extra = 0;
    unsigned n_extra = 0;
    uint32_t missing = 0;
    unsigned n_missing = 0;

    *consistent = false; /* Plan nothing before the leader has reported. */
    if (nv == 0) {
        return false;
    }
    for (unsigned i = 0; i < nv; i++) {
        if (!in_list(p->replicas, MCMD_RF, voters[i])) {
            extra = voters[i];
            n_extra++;
        }
    }
    for (unsigned k = 0; k < MCMD_RF; k++) {
        if (!in_list(voters, nv, p->replicas[k])) {
            missing = p->replicas[k];
            n_missing++;
        }
    }
    *consistent = n_extra == 0 && n_missing == 0;
    const struct mstore_broker *xb =
        mstore_broker_in(v->brokers, v->n_brokers, extra);
    const struct mstore_broker *mb =
        mstore_broker_in(v->brokers, v->n_brokers, missing);
    /* A rebuild whose member was removed and not added back: the store's
     * other two are the voters. Its broker answers the REBUILD step again
     * whether its replica is still failed, already rebuilt, or absent. */
    if (n_extra == 0 && n_missing == 1 && nv == MCMD_RF - 1 && mb != NULL &&
        mb->state == MBROKER_ALIVE) {
        *out = move_of(p, missing, missing, REPAIR_REBUILD);
        return true;
    }
    /* A report from before the last change looks like a move the other
     * way: only a move away from a broker that is not ALIVE, to one that
     * is, is resumed. */
    if (n_extra != 1 || xb == NULL || xb->state != MBROKER_ALIVE) {
        return false;
    }
    /* A move off a broker not ALIVE that looks done but for COMMIT is
     * resumed from its first step, never at COMMIT, which changes the
     * store alone: the voters may come from a stale report (a leader's
     * heartbeats held up, or a report from before the group's last change)
     * that looks like a move off that broker left at its last step, and
     * committing it put a partition on a broker its group had just removed
     * (DESIGN.md section 13, findings). From the first step both readings
     * end right: each step finds a change already made done (the replica
     * exists, the new member votes, the old one is gone) and makes one not
     * made yet, asking the group's leader, not a report. */
    if (n_missing == 1 && nv == MCMD_RF && mb != NULL &&
        mb->state != MBROKER_ALIVE) {
        *out = move_of(p, missing, extra, REPAIR_CREATE);
        return true;
    }
    if (n_missing == 0 && nv == MCMD_RF + 1) {
        for (unsigned k = 0; k < MCMD_RF; k++) {
            const struct mstore_broker *b =
                mstore_broker_in(v->brokers, v->n_brokers, p->replicas[k]);
            if (b == NULL || b->state != MBROKER_ALIVE) {
                *out = move_of(p, p->replicas[k], extra, REPAIR_REMOVE);
                return true;
            }
        }
    }
    return false;
}

/* @broker's report on @gid, or NULL. */
static const struct liveness_replica *replica_of(const struct repair_view *v,
                                                 uint32_t broker, uint64_t gid)
{
    return liveness_report_find(v->report(v->data, broker), gid);
}

/*
 * The broker whose replica of @p has been reported failed (it could not be
 * opened) for REPAIR_PLAN_REBUILD_AFTER_MS, while its broker and the other
 * two are ALIVE and their replicas are not failed; 0 if none. Its group
 * can lose that member for a while: the other two are up.
 */
static uint32_t rebuild_candidate(const struct repair_view *v,
                                  const struct mstore_partition *p,
                                  uint64_t now)
{
    uint32_t found = 0;
    for (unsigned k = 0; k < MCMD_RF; k++) {
        const struct mstore_broker *b =
            mstore_broker_in(v->brokers, v->n_brokers, p->replicas[k]);
        const struct liveness_replica *r =
            replica_of(v, p->replicas[k], p->group_id);
        if (b == NULL || b->state != MBROKER_ALIVE || r == NULL) {
            return 0;
        }
        if (r->failed_since != 0) {
            if (found != 0 ||
                now < r->failed_since + REPAIR_PLAN_REBUILD_AFTER_MS) {
                return 0;
            }
            found = p->replicas[k];
        }
    }
    return found;
}

size_t repair_plan(const struct repair_view *v, uint64_t now, size_t room,
                   struct repair_plan_move *out)
{
    size_t n = 0;
    size_t npp = 0;
    bool to_move = false;
    struct placement_broker *pb = calloc(v->n_brokers + 1, sizeof *pb);
    struct placement_partition *pp = calloc(v->n_parts + 1, sizeof *pp);
    struct placement_move *moves = calloc(room + 1, sizeof *moves);

    if (pb == NULL || pp == NULL || moves == NULL) {
        goto out; /* UNTESTED: ENOMEM only. */
    }
    for (size_t i = 0; i < v->n_brokers; i++) {
        pb[i] = (struct placement_broker){
            .id = v->brokers[i].id,
            .state = v->brokers[i].state,
            .n_replicas = v->brokers[i].n_replicas,
            .n_preferred = v->brokers[i].n_preferred,
        };
    }
    for (size_t i = 0; i < v->n_parts && n < room; i++) {
        const struct mstore_partition *p = &v->parts[i];
        bool consistent;
        if (v->busy(v->data, p->group_id)) {
            continue;
        }
        if (resume(v, p, &consistent, &out[n])) {
            n++;
            continue;
        }
        if (!consistent) {
            continue;
        }
        uint32_t broken = rebuild_candidate(v, p, now);
        if (broken != 0) {
            out[n++] = move_of(p, broken, broken, REPAIR_REMOVE);
            continue;
        }
        pp[npp].group_id = p->group_id;
        memcpy(pp[npp].replicas, p->replicas, sizeof pp[npp].replicas);
        npp++;
        for (unsigned k = 0; k < MCMD_RF && !to_move; k++) {
            const struct mstore_broker *b =
                mstore_broker_in(v->brokers, v->n_brokers, p->replicas[k]);
            to_move = b == NULL || (b->state != MBROKER_ALIVE &&
                                    b->state != MBROKER_SUSPECT);
        }
    }
    /* With every replica on an ALIVE or SUSPECT broker there is nothing
     * for placement_repair to move (down, draining or removing): its
     * passes over every partition are skipped. */
    size_t nm =
        to_move ? placement_repair(pb, v->n_brokers, pp, npp, room - n, moves)
                : 0;
    bool rebalance = false;
    if (n == 0 && nm == 0 && v->rebalance_room > 0) {
        /* A broker still hosting replicas it is not placed (stale ones
         * reconciliation has yet to delete, as after it came back) takes
         * none now: a new replica of such a group would meet the old one.
         * One not heard from since this manager leads neither. */
        for (size_t i = 0; i < v->n_brokers; i++) {
            const struct liveness_broker *lb =
                v->report(v->data, v->brokers[i].id);
            if (lb == NULL || !lb->heard ||
                lb->n_replicas != v->brokers[i].n_replicas) {
                pb[i].state = MBROKER_SUSPECT;
            }
        }
        size_t r = v->rebalance_room < room ? v->rebalance_room : room;
        nm = placement_rebalance(pb, v->n_brokers, pp, npp, r, moves);
        rebalance = true;
    }
    for (size_t k = 0; k < nm && n < room; k++) {
        for (size_t i = 0; i < v->n_parts; i++) {
            if (v->parts[i].group_id == moves[k].group_id) {
                out[n] = move_of(&v->parts[i], moves[k].from, moves[k].to,
                                 REPAIR_CREATE);
                out[n++].rebalance = rebalance;
                break;
            }
        }
    }
out:
    free(moves);
    free(pp);
    free(pb);
    return n;
}

uint32_t repair_plan_removal(const struct repair_view *v, uint64_t now,
                             uint64_t dead_ms)
{
    for (size_t i = 0; i < v->n_brokers; i++) {
        const struct mstore_broker *b = &v->brokers[i];
        const struct liveness_broker *lb = v->report(v->data, b->id);
        if (b->state != MBROKER_REMOVING || b->n_replicas > 0 || lb == NULL ||
            (lb->heard && lb->n_replicas > 0) ||
            (!lb->heard && now < lb->last_ms + dead_ms)) {
            continue;
        }
        return b->id;
    }
    return 0;
}

uint32_t repair_plan_ask(uint32_t route_leader,
                         const struct mstore_partition *part, uint32_t from,
                         uint32_t to)
{
    if (route_leader != 0 && route_leader != from) {
        return route_leader;
    }
    for (unsigned k = 0; k < MCMD_RF; k++) {
        if (part->replicas[k] != from) {
            return part->replicas[k]; /* It names the leader (421). */
        }
    }
    return to;
}

void repair_plan_answer(const struct repair_answer *a, enum repair_step step,
                        bool rebuild, unsigned redirects, unsigned retries,
                        struct repair_next *out)
{
    *out = (struct repair_next){.kind = REPAIR_FAIL, .step = step};
    if (a->failed) {
        return;
    }
    /* CREATE and REBUILD ask the new member's broker itself: no 421. */
    if (a->status == 421 && step != REPAIR_CREATE && step != REPAIR_REBUILD &&
        a->named != 0 && redirects < REPAIR_PLAN_REDIRECTS) {
        out->kind = REPAIR_FOLLOW;
        out->follow = a->named;
        return;
    }
    if (a->status == 503 && retries + 1 < REPAIR_PLAN_RETRIES) {
        /* Another change, a transfer or an election is under way; a
         * membership change that timed out goes on and is asked again. */
        out->kind = REPAIR_WAIT;
        return;
    }
    if (a->status != 200) {
        return;
    }
    out->kind = REPAIR_STEP;
    if (!rebuild) {
        out->step = (enum repair_step)(step + 1); /* CREATE .. COMMIT */
    } else if (step == REPAIR_REMOVE) {
        out->step = REPAIR_REBUILD;
    } else if (step == REPAIR_REBUILD) {
        out->step = REPAIR_ADD;
    } else {
        out->kind = REPAIR_DONE; /* The replica set is the store's already. */
    }
}

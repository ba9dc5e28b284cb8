/*
 * Reconciliation on the leader manager: makes the replicas brokers host
 * match the partitions in the store. Each round compares, for every ALIVE,
 * DRAINING or REMOVING broker that has sent a heartbeat since this manager
 * leads, the groups
 * the store places on it with the groups it reported:
 *
 * - a group placed on it and not reported is created there, unless the
 *   group's leader reports voters without it (a rebuild half done, which
 *   repair.c finishes) (POST /internal/replicas; the initial members of a
 *   new topic all get
 *   bootstrap:true with the same member list, which brokers accept again
 *   idempotently, and every creation names replicas[0] the preferred
 *   leader);
 * - a group placed on it whose reported preferred leader is not the
 *   store's replicas[0] gets it (POST /internal/replicas/{g}/preferred);
 * - a group reported and not in the store (a deleted topic), or no longer
 *   placed on that broker and not a voter of its group as the group's
 *   leader reports it, is deleted there (DELETE /internal/replicas).
 *
 * Groups that repair.c is moving are left alone. These rules are
 * reconcile_plan (reconcile_plan.h), a pure function with unit tests;
 * this module gathers its inputs and sends the orders.
 *
 * Everything is derived from the store and the latest reports, so a round
 * can be repeated, interrupted, or run by the next leader after a change.
 * An action sent to a broker is not repeated for a few seconds (the
 * broker's next heartbeat shows its effect).
 */
#ifndef RECONCILE_H
#define RECONCILE_H

#include <stdbool.h>
#include <stdint.h>

struct mcore;
struct reconcile;
struct repair;

/* @rp (borrowed, outlives the result) says which groups are being moved:
 * they are left alone. */
int reconcile_new(struct mcore *core, const struct repair *rp,
                  struct reconcile **out);
void reconcile_free(struct reconcile *rc);

/* This manager became the leader: forget actions of an earlier term. */
void reconcile_lead(struct reconcile *rc);
/* Asks for a round on the next tick (a topic was created or deleted). */
void reconcile_kick(struct reconcile *rc);
/* Whether a round was asked for and has not run yet. */
bool reconcile_kicked(const struct reconcile *rc);
/* Runs a round if @due or kicked. */
void reconcile_tick(struct reconcile *rc, uint64_t now, bool due);

#endif /* RECONCILE_H */

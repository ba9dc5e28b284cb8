/*
 * Broker liveness on the leader manager: the time of each broker's last
 * heartbeat and the replicas it last reported, kept in memory only (a new
 * leader starts afresh and gives every broker a full grace period), and
 * the state changes they imply, committed to the store.
 *
 *   ALIVE   -> SUSPECT  [liveness_tick]      silent for --broker-suspect-ms
 *   SUSPECT -> DEAD     [liveness_tick]      silent for --broker-dead-ms
 *   ALIVE   -> DEAD     [liveness_tick]      (both at once)
 *   SUSPECT -> ALIVE    [liveness_heartbeat] a heartbeat arrived
 *   DEAD    -> ALIVE    [liveness_heartbeat]
 *
 * DRAINING and REMOVED are admin states and are left alone. Only changes
 * are committed, one proposal in flight per broker. Which state a broker
 * should be in is decided by the pure liveness_rule_next (liveness_rule.h,
 * with its unit tests); this module gathers its inputs and commits.
 */
#ifndef LIVENESS_H
#define LIVENESS_H

#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct mcore;
struct liveness;

#define LIVENESS_VOTERS_MAX 8

/* One replica as its broker reported it. */
struct liveness_replica {
    uint64_t group_id;
    bool leader; /* The reporting broker leads the group. */
    uint32_t leader_id;
    uint64_t term;
    uint64_t commit;
    uint64_t next_offset;
    uint32_t voters[LIVENESS_VOTERS_MAX]; /* Its configuration's voters. */
    unsigned n_voters;                    /* 0: not reported. */
    uint32_t preferred; /* The broker it prefers as leader; 0: not said. */
    /* uv_now() of the first of the reports in a row, up to this one, that
     * said the replica "failed" (could not be opened); 0: this one did not.
     * repair.c rebuilds a replica that stays failed. */
    uint64_t failed_since;
};

/* A broker's data volume as its last heartbeat said (broker/disk.h). */
struct liveness_disk {
    bool known;
    bool low; /* Under its reserve: its groups take no produces. */
    uint64_t total, free, reserve;
};

struct liveness_broker {
    uint32_t id;
    struct liveness_disk disk;
    uint64_t last_ms; /* uv_now() of the last heartbeat (or the grace). */
    bool heard;       /* A report arrived since this manager leads: its replicas
                       * are known (a delta against a report it does not hold is
                       * not one). */
    bool changing;    /* A state change is being committed. */
    /* As last reported, sorted by group id; owned. */
    struct liveness_replica *replicas;
    size_t n_replicas;
    uint64_t report_seq; /* The broker's number for that report; 0: none. */
    /* A full report asked for and not come yet (hbmerge_may_ask_full):
     * when (0: none outstanding), and the replicas it should list. */
    uint64_t full_asked_ms;
    uint32_t full_asked_size;
};

int liveness_new(struct mcore *core, struct liveness **out);
void liveness_free(struct liveness *lv);

/* This manager became the leader at @now: forget every report and start
 * every broker's grace period. */
void liveness_lead(struct liveness *lv, uint64_t now);
/* Leadership ended: stop acting (reports are dropped). */
void liveness_stop(struct liveness *lv);

/*
 * A heartbeat from broker @id (known to the store), @body as it sent it
 * (borrowed): "replicas", "disk", and "report": {"seq", "base"}. With base
 * 0 (or no "report") the list is full; otherwise it holds only what
 * changed since the report numbered base, and "gone" the group ids
 * removed since (manager/README.md). A delta is applied if this leader
 * holds report base or a later one of the broker's (the delta covers
 * those, broker/hbreport.h); otherwise it is not, and *@want_full asks the
 * broker for a full report next. 0, or RQ_INVALID with @why for a body
 * that does not parse, RQ_NOMEM. Feeds the routing cache and brings a
 * SUSPECT or DEAD broker back to ALIVE.
 */
int liveness_heartbeat(struct liveness *lv, uint32_t id, const json_t *body,
                       uint64_t now, bool *want_full, char *why, size_t whyn);

/* A broker (re-)registered: it counts as heard from now. */
void liveness_touch(struct liveness *lv, uint32_t id, uint64_t now);

/* Commits the state changes silence implies. */
void liveness_tick(struct liveness *lv, uint64_t now);

/* The broker's record, or NULL if none (never heard, or not leading).
 * Valid until the next liveness_ call. */
const struct liveness_broker *liveness_broker(const struct liveness *lv,
                                              uint32_t id);

/* @lb's report on @group_id (its replicas are sorted), or NULL; @lb may
 * be NULL. Pure, for the planners too (in hbmerge.c, which keeps reports
 * sorted). */
const struct liveness_replica *liveness_report_find(
    const struct liveness_broker *lb, uint64_t group_id);

/* @broker's report on @group_id, or NULL. */
const struct liveness_replica *liveness_replica(const struct liveness *lv,
                                                uint32_t broker,
                                                uint64_t group_id);

/* The voters of @group_id as its leader (per the routing cache) last
 * reported them: their count (0 when no such report), ids in @out. */
unsigned liveness_voters(const struct liveness *lv, uint64_t group_id,
                         uint32_t out[LIVENESS_VOTERS_MAX]);

#endif /* LIVENESS_H */

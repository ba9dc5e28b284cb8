/*
 * The replicas a broker's heartbeats report, sent as deltas (DESIGN.md
 * section 17, "A hundred brokers"). A broker hosting thousands of
 * replicas would otherwise send every one of them every second, and the
 * leader manager parse them all, for the few that changed.
 *
 * Each report is numbered (seq). The first, and any after the leader
 * manager asks for one, is full; the others name as base the last report
 * the manager answered 200 and hold only the replicas added or changed
 * since ("replicas") and the group ids removed since ("gone"). A heartbeat
 * not answered 200 may or may not have been applied: the next delta is
 * again against the base the manager acknowledged, and also names every
 * group the unanswered ones named (as it is now, or as gone), so that it
 * leaves the manager right whichever of those reports it holds; a manager
 * holding the base or a later report of the broker's applies it. One that
 * holds another (a new leader holds none) applies nothing and answers
 * "report": "full". A heartbeat answered late thus costs a delta a little
 * larger, not a full report, which at thousands of replicas would make the
 * next answers later still.
 *
 * Pure: JSON in, JSON out; registrar.c keeps one per broker.
 */
#ifndef HBREPORT_H
#define HBREPORT_H

#include <jansson.h>
#include <stdbool.h>
#include <stdint.h>

struct hbreport {
    json_t *acked;      /* group id (text) -> entry, of report acked_seq. */
    uint64_t acked_seq; /* 0: none, the next report is full. */
    json_t *sent;       /* The same for the report in flight; NULL: none. */
    json_t *since;      /* Group ids (text -> id) named by reports after
                         * acked_seq; NULL: none. */
    uint64_t sent_seq;
    uint64_t next_seq;
};

void hbreport_init(struct hbreport *h);
void hbreport_clear(struct hbreport *h);

/* The next report is full (a registration, a new leader). */
void hbreport_reset(struct hbreport *h);

/*
 * Turns @body, a heartbeat whose "replicas" is the full list (entries
 * with a "group_id"), into the one to send: the list cut down to a delta
 * when a base is acknowledged, with "gone" and "report": {seq, base}
 * added. 0, or RQ_NOMEM (@body is then sent full, unnumbered).
 */
int hbreport_prepare(struct hbreport *h, json_t *body);

/* The answer to the heartbeat last prepared: @ok (200), and @full when
 * the manager asked for a full report. */
void hbreport_answered(struct hbreport *h, bool ok, bool full);

#endif /* HBREPORT_H */

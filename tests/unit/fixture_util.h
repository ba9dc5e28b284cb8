/*
 * What the unit tests that run a cluster on libraft's in-memory fixture
 * (raft/fixture.h) drive alike: a record of the anomalies callbacks see,
 * finding and waiting for a leader, cutting a server off, growing the fixture
 * by servers behind the production rq_fsm_adapter, and settling the cluster
 * with a barrier. What a test's clients do, and what it checks at the end,
 * stays in the test.
 *
 * Each test file is its own binary, so the helpers are static inline here
 * rather than a library. They assert with cmocka: include <cmocka.h> (and
 * the headers it needs) before this one.
 */
#ifndef FIXTURE_UTIL_H
#define FIXTURE_UTIL_H

#include <inttypes.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>

#include <raft.h>
#include <raft/fixture.h>

#include "rq_fsm.h"

/* ---- Anomalies ---- */

/* What callbacks saw go wrong but could not assert: they run inside
 * raft_fixture_step(), so the scenario fails on them at its end. */
struct fx_anomalies {
    unsigned n;
    char first[160];
};

static inline void fx_anomaly(struct fx_anomalies *an, const char *what,
                              uint64_t a, uint64_t b)
{
    if (an->n++ == 0) {
        snprintf(an->first, sizeof an->first, "%s (%" PRIu64 ", %" PRIu64 ")",
                 what, a, b);
    }
}

static inline void fx_assert_no_anomalies(const struct fx_anomalies *an)
{
    if (an->n != 0) {
        fail_msg("%u anomalies, first: %s", an->n, an->first);
    }
}

/* ---- Leaders and partitions ---- */

/* The live server in leader state with the highest term, or
 * raft_fixture_n(). Unlike raft_fixture_leader_index() this also sees a
 * leader while some server is cut off by raft_fixture_disconnect(). */
static inline unsigned fx_leader(struct raft_fixture *f)
{
    unsigned n = raft_fixture_n(f);
    unsigned best = n;
    raft_term term = 0;
    for (unsigned i = 0; i < n; i++) {
        struct raft *r = raft_fixture_get(f, i);
        if (raft_fixture_alive(f, i) && raft_state(r) == RAFT_LEADER &&
            r->current_term > term) {
            best = i;
            term = r->current_term;
        }
    }
    return best;
}

static inline bool fx_has_leader(struct raft_fixture *f, void *arg)
{
    (void)arg;
    return fx_leader(f) < raft_fixture_n(f);
}

/* Steps until some server leads; fails the test after @max_ms. */
static inline void fx_wait_leader(struct raft_fixture *f, unsigned max_ms)
{
    assert_true(raft_fixture_step_until(f, fx_has_leader, NULL, max_ms));
}

/* Cuts server @i off from every other server, both ways, or (@off false)
 * reconnects it. */
static inline void fx_cut(struct raft_fixture *f, unsigned i, bool off)
{
    for (unsigned j = 0; j < raft_fixture_n(f); j++) {
        if (j == i) {
            continue;
        }
        if (off) {
            raft_fixture_disconnect(f, i, j);
            raft_fixture_disconnect(f, j, i);
        } else {
            raft_fixture_reconnect(f, i, j);
            raft_fixture_reconnect(f, j, i);
        }
    }
}

/* ---- Setup ---- */

/* Adds a server whose state machine is @ops over @data, fed through @a
 * (which must outlive the fixture), with the given snapshot threshold and
 * trailing. 0 or the raft_fixture_grow() error. */
static inline int fx_grow(struct raft_fixture *f, struct rq_fsm_adapter *a,
                          const struct rq_fsm_ops *ops, void *data,
                          unsigned threshold, unsigned trailing)
{
    rq_fsm_adapter_init(a, ops, data);
    int rv = raft_fixture_grow(f, &a->fsm);
    if (rv != 0) {
        return rv; /* UNTESTED: ENOMEM only. */
    }
    struct raft *r = raft_fixture_get(f, raft_fixture_n(f) - 1);
    rq_fsm_adapter_bind(a, r);
    raft_set_snapshot_threshold(r, threshold);
    raft_set_snapshot_trailing(r, trailing);
    return 0;
}

/* Bootstraps every server as a voter and starts them all. */
static inline int fx_start(struct raft_fixture *f)
{
    struct raft_configuration conf;
    int rv = raft_fixture_configuration(f, raft_fixture_n(f), &conf);
    if (rv != 0) {
        return rv; /* UNTESTED: ENOMEM only. */
    }
    rv = raft_fixture_bootstrap(f, &conf);
    raft_configuration_close(&conf);
    if (rv != 0) {
        return rv; /* UNTESTED */
    }
    return raft_fixture_start(f);
}

/* ---- Settling ---- */

/* A barrier request and its outcome. It lives in the test's cluster, not
 * on the stack, because raft_fixture_close() still calls back a barrier
 * that a failed assertion left pending. */
struct fx_barrier {
    struct raft_barrier req;
    bool pending;
    int status;
};

static inline void fx_on_barrier(struct raft_barrier *req, int status)
{
    struct fx_barrier *b = req->data;
    b->pending = false;
    b->status = status;
}

/*
 * Proves a leader in its own term with a barrier (a 0.22.1 leader appends a
 * no-op at election only when its log holds entries past its commit index)
 * and steps until every server has applied everything up to it.
 * @step(@arg) moves the cluster one event: raft_fixture_step() plus
 * whatever the test's own parts do each step. Each wait fails the test
 * after @max_ms.
 */
static inline void fx_settle(struct raft_fixture *f, struct fx_barrier *b,
                             void (*step)(void *arg), void *arg,
                             unsigned max_ms)
{
    for (int tries = 0;; tries++) {
        assert_true(tries < 10);
        fx_wait_leader(f, max_ms);
        struct raft *leader = raft_fixture_get(f, fx_leader(f));
        b->req.data = b;
        b->pending = true;
        if (raft_barrier(leader, &b->req, fx_on_barrier) != 0) {
            b->pending = false;
            step(arg);
            continue;
        }
        raft_time start = raft_fixture_time(f);
        while (b->pending) {
            assert_true(raft_fixture_time(f) - start < max_ms);
            step(arg);
        }
        if (b->status != 0) {
            continue;
        }
        raft_index index = raft_last_applied(leader);
        assert_true(raft_fixture_step_until_applied(f, raft_fixture_n(f), index,
                                                    max_ms));
        return;
    }
}

#endif /* FIXTURE_UTIL_H */

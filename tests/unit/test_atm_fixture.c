/*
 * The replicated ledger on libraft's in-memory fixture (simulated network,
 * disk and time): three servers, each with its own atm_ledger behind the
 * production rq_fsm_adapter and atm_fsm_ops, fed through raft_apply with
 * entries framed by rq_entry_encode.
 *
 * A few clients play ATMs: each has an origin and one write in flight at a
 * time, sends it to the current leader, and sends the same request id
 * again when the attempt fails or times out, exactly as a terminal must.
 * A write counts as committed only when an apply callback reports status 0;
 * its outcome is then read back from that server's ledger. Every scenario
 * ends by checking that all three ledgers encode to identical bytes, that
 * the money in them equals committed deposits minus committed withdrawals,
 * and that no balance is negative.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>
#include <raft.h>
#include <raft/fixture.h>

#include "atm/atm_fsm.h"
#include "atm/atm_ledger.h"
#include "rq_entry.h"
#include "rq_err.h"
#include "rq_fsm.h"
#include "rq_wire.h"

#include "fixture_util.h"
#include "unit_util.h"

#define N_SERVERS 3
#define N_CLIENTS 3
#define N_ACCOUNTS 6
#define RETRY_MS 1500      /* Simulated time before a client tries again. */
#define PHASE_MAX_MS 60000 /* Simulated time any phase may take. */
#define SNAPSHOT_THRESHOLD 16
#define SNAPSHOT_TRAILING 4
#define ORPHAN_ORIGIN 0xdead0000ull

struct cluster;

struct client {
    struct cluster *c;
    struct atm_write w; /* The write in flight, or the last one. */
    bool busy;          /* Its outcome is not known yet. */
    bool resend;        /* The last attempt failed: send again now. */
    raft_time sent_at;
    struct atm_result last; /* Outcome of the last completed write. */
};

/* One raft_apply of a client's write; freed by its callback. */
struct attempt {
    struct raft_apply req;
    struct client *cl;
    uint64_t seq;
    unsigned server;
};

struct cluster {
    struct raft_fixture f;
    struct rq_fsm_adapter fsms[N_SERVERS];
    struct atm_ledger *ledgers[N_SERVERS];
    struct client clients[N_CLIENTS];
    uint64_t rng;
    unsigned limit;     /* Writes that may be started in all. */
    unsigned issued;    /* Writes started. */
    unsigned completed; /* Writes whose outcome is known. */
    unsigned attempts;  /* raft_apply calls accepted. */
    unsigned failed;    /* Attempt callbacks with an error. */
    unsigned refused;   /* Completed writes refused by the ledger rules. */
    int64_t expected;   /* Committed deposits minus committed withdrawals. */
    struct fx_anomalies anomalies; /* Things a callback could not assert. */
    /* Writes sent to an isolated leader, which must never commit. */
    unsigned orphan_ok;
    unsigned orphan_failed;
    int garbage_status;        /* Of the malformed entry; -1 while pending. */
    struct fx_barrier barrier; /* The settling barrier. */
};

static const char *const accounts[N_ACCOUNTS] = {"acct0", "acct1", "acct2",
                                                 "acct3", "acct4", "acct5"};

static struct raft *srv(struct cluster *c, unsigned i)
{
    return raft_fixture_get(&c->f, i);
}

static raft_time now(struct cluster *c)
{
    return raft_fixture_time(&c->f);
}

/* The leader (see fx_leader()), or N_SERVERS. */
static unsigned leader_of(struct cluster *c)
{
    return fx_leader(&c->f);
}

static void wait_leader(struct cluster *c)
{
    fx_wait_leader(&c->f, PHASE_MAX_MS);
}

/* ---- Clients ---- */

static void record(struct cluster *c, struct client *cl,
                   const struct atm_result *r)
{
    cl->last = *r;
    if (r->status == ATM_INSUFFICIENT) {
        c->refused++;
        return;
    }
    if (r->status != 0) {
        fx_anomaly(&c->anomalies, "unexpected write status",
                   (uint64_t)r->status, cl->w.rid.seq);
        return;
    }
    if (cl->w.op == ATM_DEPOSIT) {
        c->expected += cl->w.amount;
    } else if (cl->w.op == ATM_WITHDRAW) {
        c->expected -= cl->w.amount;
    }
}

static void on_applied(struct raft_apply *req, int status, void *result)
{
    struct attempt *a = req->data;
    struct client *cl = a->cl;
    struct cluster *c = cl->c;
    (void)result;

    if (status != 0) {
        c->failed++;
    }
    if (cl->busy && a->seq == cl->w.rid.seq) {
        if (status == 0) {
            /* The server that accepted the attempt has applied it. */
            struct atm_result r;
            if (atm_ledger_result(c->ledgers[a->server], cl->w.rid, &r) != 0) {
                fx_anomaly(&c->anomalies, "applied write has no result",
                           a->server, a->seq);
            } else {
                record(c, cl, &r);
            }
            cl->busy = false;
            c->completed++;
        } else {
            cl->resend = true;
        }
    }
    free(a);
}

/* Proposes @w on server @i; 0 or the raft_apply error. */
static int propose(struct cluster *c, unsigned i, const struct atm_write *w,
                   struct attempt *a, raft_apply_cb cb)
{
    struct rq_buf b;
    struct raft_buffer entry;
    int rv;

    rq_buf_init(&b);
    assert_int_equal(atm_write_encode(w, &b), 0);
    assert_int_equal(rq_entry_encode(b.base, b.len, &entry), 0);
    rq_buf_close(&b);
    a->req.data = a;
    rv = raft_apply(srv(c, i), &a->req, &entry, 1, cb);
    if (rv != 0) {
        raft_free(entry.base);
    }
    return rv;
}

static void next_write(struct cluster *c, struct client *cl)
{
    unsigned from = (unsigned)(xorshift64star(&c->rng) % N_ACCOUNTS);
    unsigned to =
        (from + 1 + (unsigned)(xorshift64star(&c->rng) % (N_ACCOUNTS - 1))) %
        N_ACCOUNTS;
    unsigned pick = (unsigned)(xorshift64star(&c->rng) % 100);
    enum atm_op op = pick < 45   ? ATM_DEPOSIT
                     : pick < 70 ? ATM_WITHDRAW
                                 : ATM_TRANSFER;
    uint64_t seq = cl->w.rid.seq + 1;
    uint64_t origin = cl->w.rid.origin;

    memset(&cl->w, 0, sizeof cl->w);
    cl->w.rid.origin = origin;
    cl->w.rid.seq = seq;
    cl->w.op = op;
    strcpy(cl->w.account, accounts[from]);
    if (op == ATM_TRANSFER) {
        strcpy(cl->w.to, accounts[to]);
    }
    cl->w.amount = 1 + (int64_t)(xorshift64star(&c->rng) % 100000);
}

static void client_tick(struct cluster *c, struct client *cl)
{
    if (!cl->busy) {
        if (c->issued >= c->limit) {
            return;
        }
        next_write(c, cl);
        c->issued++;
        cl->busy = true;
        cl->resend = true;
    }
    if (!cl->resend && now(c) - cl->sent_at < RETRY_MS) {
        return;
    }
    unsigned l = leader_of(c);
    if (l == N_SERVERS) {
        return;
    }
    struct attempt *a = calloc(1, sizeof *a);
    assert_non_null(a);
    a->cl = cl;
    a->seq = cl->w.rid.seq;
    a->server = l;
    if (propose(c, l, &cl->w, a, on_applied) != 0) {
        free(a); /* Not a leader after all: try again at the next step. */
        return;
    }
    c->attempts++;
    cl->resend = false;
    cl->sent_at = now(c);
}

/* One fixture event, then every client acts. */
static void pump(void *arg)
{
    struct cluster *c = arg;
    raft_fixture_step(&c->f);
    for (unsigned i = 0; i < N_CLIENTS; i++) {
        client_tick(c, &c->clients[i]);
    }
}

/* Lets at most @limit writes start in all, and steps until @target have
 * completed. */
static void run_until(struct cluster *c, unsigned limit, unsigned target)
{
    raft_time start = now(c);
    c->limit = limit;
    while (c->completed < target) {
        if (now(c) - start > PHASE_MAX_MS) {
            fail_msg("only %u of %u writes completed in %u ms (leader %u)",
                     c->completed, target, PHASE_MAX_MS, leader_of(c));
        }
        pump(c);
    }
}

/* Keeps writes flowing for @ms of simulated time. */
static void run_for(struct cluster *c, unsigned ms)
{
    raft_time start = now(c);
    c->limit = UINT32_MAX;
    while (now(c) - start < ms) {
        pump(c);
    }
    c->limit = c->issued;
}

/* ---- Settling and the end-of-scenario checks ---- */

/*
 * Finishes every started write, then proves a leader with a barrier and
 * steps until all three servers have applied everything up to it. With no
 * write left to start, pump() is just a fixture step.
 */
static void settle(struct cluster *c)
{
    run_until(c, c->issued, c->issued);
    fx_settle(&c->f, &c->barrier, pump, c, PHASE_MAX_MS);
}

static void check_ledgers(struct cluster *c)
{
    struct rq_buf first;

    fx_assert_no_anomalies(&c->anomalies);
    assert_int_equal(c->completed, c->issued);

    rq_buf_init(&first);
    assert_int_equal(atm_ledger_encode(c->ledgers[0], &first), 0);
    for (unsigned i = 0; i < N_SERVERS; i++) {
        const struct atm_ledger *l = c->ledgers[i];
        struct rq_buf b;
        rq_buf_init(&b);
        assert_int_equal(atm_ledger_encode(l, &b), 0);
        if (b.len != first.len || memcmp(b.base, first.base, b.len) != 0) {
            fail_msg("server %u's ledger differs from server 0's", i);
        }
        rq_buf_close(&b);

        int64_t sum = 0;
        for (unsigned k = 0; k < N_ACCOUNTS; k++) {
            int64_t v = atm_ledger_balance(l, accounts[k]);
            assert_true(v >= 0);
            sum += v;
        }
        assert_true(atm_ledger_accounts(l) <= N_ACCOUNTS);
        assert_true(sum == atm_ledger_total(l));
        if (sum != c->expected) {
            fail_msg("server %u holds %lld cents, committed writes say %lld", i,
                     (long long)sum, (long long)c->expected);
        }
        /* Every ATM's last answer is what every replica remembers. */
        for (unsigned k = 0; k < N_CLIENTS; k++) {
            const struct client *cl = &c->clients[k];
            struct atm_result r;
            if (cl->w.rid.seq == 0) {
                continue;
            }
            assert_int_equal(atm_ledger_result(l, cl->w.rid, &r), 0);
            assert_int_equal(r.status, cl->last.status);
            assert_true(r.balance == cl->last.balance);
            assert_true(r.to_balance == cl->last.to_balance);
        }
    }
    rq_buf_close(&first);
    /* The stream was not trivial: money moved and the rules refused some. */
    assert_true(c->completed >= 60);
    assert_true(c->refused > 0);
    assert_true(c->refused < c->completed);
}

/* ---- Setup ---- */

static int teardown(void **state)
{
    struct cluster *c = *state;
    /* Pending attempts are failed (and freed) by their callbacks here. */
    raft_fixture_close(&c->f);
    for (unsigned i = 0; i < N_SERVERS; i++) {
        atm_ledger_free(c->ledgers[i]);
    }
    free(c);
    return 0;
}

static int setup(void **state)
{
    struct cluster *c = calloc(1, sizeof *c);

    if (c == NULL || raft_fixture_initialize(&c->f) != 0) {
        free(c);
        return -1;
    }
    c->rng = 0x243f6a8885a308d3ull;
    for (unsigned i = 0; i < N_SERVERS; i++) {
        if (atm_ledger_new(&c->ledgers[i]) != 0) {
            goto err_after_fixture; /* UNTESTED: ENOMEM only. */
        }
        if (fx_grow(&c->f, &c->fsms[i], &atm_fsm_ops, c->ledgers[i],
                    SNAPSHOT_THRESHOLD, SNAPSHOT_TRAILING) != 0) {
            goto err_after_fixture; /* UNTESTED: ENOMEM only. */
        }
    }
    for (unsigned i = 0; i < N_CLIENTS; i++) {
        c->clients[i].c = c;
        c->clients[i].w.rid.origin = 0x1000 + i;
    }
    if (fx_start(&c->f) != 0) {
        goto err_after_fixture; /* UNTESTED */
    }
    *state = c;
    return 0;

err_after_fixture:
    *state = c;
    teardown(state);
    return -1;
}

/* ---- Scenarios ---- */

static void on_garbage_applied(struct raft_apply *req, int status, void *result)
{
    struct cluster *c = req->data;
    (void)result;
    c->garbage_status = status;
    free(req);
}

/* No faults, plus one entry no ATM could have written: every replica skips
 * it alike and the stream goes on. */
static void test_atm_fixture_steady_stream_and_malformed_entry(void **state)
{
    struct cluster *c = *state;
    struct raft_apply *req = calloc(1, sizeof *req);
    struct raft_buffer entry;
    struct rq_buf before, after;
    const char junk[] = "not an atm write";

    assert_non_null(req);
    wait_leader(c);
    run_until(c, 30, 30); /* Then no client is busy. */
    unsigned l = leader_of(c);
    raft_index applied = raft_last_applied(srv(c, l));
    rq_buf_init(&before);
    assert_int_equal(atm_ledger_encode(c->ledgers[l], &before), 0);

    assert_int_equal(rq_entry_encode(junk, sizeof junk, &entry), 0);
    req->data = c;
    c->garbage_status = -1;
    assert_int_equal(raft_apply(srv(c, l), req, &entry, 1, on_garbage_applied),
                     0);
    raft_time start = now(c);
    while (c->garbage_status == -1) {
        assert_true(now(c) - start < PHASE_MAX_MS);
        raft_fixture_step(&c->f);
    }
    assert_int_equal(c->garbage_status, 0);
    assert_true(raft_last_applied(srv(c, l)) > applied);
    rq_buf_init(&after);
    assert_int_equal(atm_ledger_encode(c->ledgers[l], &after), 0);
    assert_int_equal(after.len, before.len);
    assert_memory_equal(after.base, before.base, before.len);
    rq_buf_close(&before);
    rq_buf_close(&after);

    run_until(c, 80, 80);
    settle(c);
    check_ledgers(c);
}

static void test_atm_fixture_leader_killed_mid_stream(void **state)
{
    struct cluster *c = *state;

    wait_leader(c);
    run_until(c, 120, 30); /* Writes are in flight when it dies. */
    unsigned old = leader_of(c);
    raft_fixture_kill(&c->f, old);
    run_until(c, 120, 70);
    unsigned fresh = leader_of(c);
    assert_true(fresh != old && fresh < N_SERVERS);
    assert_true(srv(c, fresh)->current_term > srv(c, old)->current_term);

    raft_fixture_revive(&c->f, old);
    run_until(c, 120, 120);
    settle(c);
    /* The old leader learnt it had lost, and failed what it still held. */
    assert_int_equal(raft_state(srv(c, old)), RAFT_FOLLOWER);
    assert_true(c->failed > 0);
    assert_true(c->attempts > c->completed); /* Some writes were retried. */
    check_ledgers(c);
}

static void test_atm_fixture_follower_partitioned_then_healed(void **state)
{
    struct cluster *c = *state;

    wait_leader(c);
    run_until(c, 20, 20);
    unsigned l = leader_of(c);
    unsigned f = (l + 1) % N_SERVERS;
    fx_cut(&c->f, f, true);
    raft_index lagging = raft_last_applied(srv(c, f));
    raft_term term = srv(c, f)->current_term;
    /* Long enough for the cut-off follower to stand for election, in vain. */
    run_for(c, 4000);
    assert_int_equal(raft_state(srv(c, f)), RAFT_CANDIDATE);
    assert_true(srv(c, f)->current_term > term);
    /* The majority went on without it. */
    assert_int_equal(raft_last_applied(srv(c, f)), lagging);
    assert_true(raft_last_applied(srv(c, leader_of(c))) > lagging + 30);

    fx_cut(&c->f, f, false);
    /* Its higher term unseats the leader; the stream goes on. */
    run_until(c, c->issued + 40, c->issued + 40);
    settle(c);
    check_ledgers(c);
}

static void on_orphan_applied(struct raft_apply *req, int status, void *result)
{
    struct cluster *c = req->data;
    (void)result;
    if (status == 0) {
        c->orphan_ok++;
    } else {
        c->orphan_failed++;
    }
    free(req);
}

static void test_atm_fixture_isolated_leader_loses_uncommitted(void **state)
{
    struct cluster *c = *state;
    enum { ORPHANS = 3 };

    wait_leader(c);
    run_until(c, 30, 30);
    unsigned old = leader_of(c);
    fx_cut(&c->f, old, true);
    /* Writes the isolated leader accepts but can never commit. */
    for (unsigned k = 0; k < ORPHANS; k++) {
        struct atm_write w;
        memset(&w, 0, sizeof w);
        w.rid.origin = ORPHAN_ORIGIN;
        w.rid.seq = k + 1;
        w.op = ATM_DEPOSIT;
        strcpy(w.account, "orphan");
        w.amount = 777777;
        struct raft_apply *req = calloc(1, sizeof *req);
        assert_non_null(req);
        struct rq_buf b;
        struct raft_buffer entry;
        rq_buf_init(&b);
        assert_int_equal(atm_write_encode(&w, &b), 0);
        assert_int_equal(rq_entry_encode(b.base, b.len, &entry), 0);
        rq_buf_close(&b);
        req->data = c;
        assert_int_equal(
            raft_apply(srv(c, old), req, &entry, 1, on_orphan_applied), 0);
    }
    raft_term old_term = srv(c, old)->current_term;

    /* The majority elects a leader of its own and carries on. */
    run_until(c, 90, 60);
    unsigned fresh = leader_of(c);
    assert_true(fresh != old && fresh < N_SERVERS);
    assert_true(srv(c, fresh)->current_term > old_term);
    /* Cut off, the old leader stepped down and failed its writes. */
    assert_int_equal(c->orphan_failed, ORPHANS);
    assert_true(raft_last_index(srv(c, old)) >=
                raft_last_applied(srv(c, old)) + ORPHANS);

    fx_cut(&c->f, old, false);
    run_until(c, 90, 90);
    settle(c);
    check_ledgers(c);
    assert_int_equal(c->orphan_ok, 0);
    for (unsigned i = 0; i < N_SERVERS; i++) {
        struct atm_result r;
        struct atm_rid rid = {ORPHAN_ORIGIN, ORPHANS};
        assert_int_equal(atm_ledger_result(c->ledgers[i], rid, &r),
                         RQ_NOTFOUND);
        assert_int_equal(atm_ledger_balance(c->ledgers[i], "orphan"), 0);
    }
}

static void test_atm_fixture_lagging_follower_installs_snapshot(void **state)
{
    struct cluster *c = *state;

    wait_leader(c);
    run_until(c, 10, 10);
    unsigned l = leader_of(c);
    unsigned f = (l + 2) % N_SERVERS;
    assert_int_equal(raft_fixture_n_recv(&c->f, f, RAFT_INSTALL_SNAPSHOT), 0);
    raft_fixture_kill(&c->f, f);
    raft_index down_at = raft_last_applied(srv(c, f));
    run_until(c, 130, 130);
    /* The leader has applied four snapshot thresholds past what the
     * follower holds, so its snapshots (every SNAPSHOT_THRESHOLD entries,
     * SNAPSHOT_TRAILING kept) have let go of what the follower lacks. */
    struct raft *lr = srv(c, leader_of(c));
    assert_true(raft_last_applied(lr) >
                down_at + 4 * SNAPSHOT_THRESHOLD + SNAPSHOT_TRAILING);

    raft_fixture_revive(&c->f, f);
    run_until(c, 150, 150);
    settle(c);
    assert_true(raft_fixture_n_recv(&c->f, f, RAFT_INSTALL_SNAPSHOT) >= 1);
    check_ledgers(c);
}

#define T(name) cmocka_unit_test_setup_teardown(name, setup, teardown)

int main(void)
{
    const struct CMUnitTest tests[] = {
        T(test_atm_fixture_steady_stream_and_malformed_entry),
        T(test_atm_fixture_leader_killed_mid_stream),
        T(test_atm_fixture_follower_partitioned_then_healed),
        T(test_atm_fixture_isolated_leader_loses_uncommitted),
        T(test_atm_fixture_lagging_follower_installs_snapshot),
    };
    return cmocka_run_group_tests_name("atm_fixture", tests, NULL, NULL);
}

"""Unit tests of the ATM history checkers (linearize.py) on synthetic
histories: valid concurrent histories, with writes of unknown outcome that
took effect late or never, are accepted; stale reads, lost updates,
negative balances, money created or lost, and a transfer seen half done are
caught. Also the size the search must handle: a random valid history of
2,000 operations from three concurrent clients decided in seconds, and the
same history with one answer changed rejected.

Pure Python, no processes. Prints "atm_check: N passed, N failed, N
skipped" at the end. Run: python3 tests/chaos/test_atm_check.py [-k NAME].
"""

import argparse
import os
import random
import sys
import time
import traceback

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import linearize  # noqa: E402


class History:
    """Builds a history op by op: times in seconds, amounts in cents."""

    def __init__(self):
        self.ops = []

    def add(self, atm, f, account, inv, comp, typ="ok", bal=None, to=None, amount=None,
            to_bal=None, error=None, proc=None, seq=None, final=False):
        op = {"id": len(self.ops), "atm": atm, "proc": proc or "atm%d#1" % atm, "seq": seq,
              "f": f, "account": account, "invoke": inv, "complete": comp, "type": typ}
        if to is not None:
            op["to"] = to
        if amount is not None:
            op["amount"] = amount
        if bal is not None:
            op["balance"] = bal
        if to_bal is not None:
            op["to_balance"] = to_bal
        if error is not None:
            op["error"] = error
        if final:
            op["final"] = True
        self.ops.append(op)
        return op

    def dep(self, atm, x, amt, inv, comp, bal, **kw):
        return self.add(atm, "deposit", x, inv, comp, bal=bal, amount=amt, **kw)

    def wd(self, atm, x, amt, inv, comp, bal, **kw):
        return self.add(atm, "withdraw", x, inv, comp, bal=bal, amount=amt, **kw)

    def tr(self, atm, x, y, amt, inv, comp, bal, to_bal, **kw):
        return self.add(atm, "transfer", x, inv, comp, bal=bal, to=y, amount=amt, to_bal=to_bal,
                        **kw)

    def rd(self, atm, x, inv, comp, bal, **kw):
        return self.add(atm, "balance", x, inv, comp, bal=bal, **kw)

    def info(self, atm, f, x, amt, inv, to=None, **kw):
        return self.add(atm, f, x, inv, None, typ="info", amount=amt, to=to,
                        error="timeout", **kw)


def lin(h, **kw):
    verdict, detail, _ = linearize.check_linearizable(h.ops, **kw)
    return verdict, detail


def expect(cond, msg):
    if not cond:
        raise AssertionError(msg)


def accepted(h):
    v, d = lin(h)
    expect(v == "ok", "expected linearizable, got %s: %s" % (v, d))


def rejected(h):
    v, d = lin(h)
    expect(v == "violation", "expected a violation, got %s: %s" % (v, d))
    return d


def opened(h, x="a", amt=10000):
    """An account opened at time 0-1."""
    h.dep(1, x, amt, 0.0, 1.0, amt)


# ---- Accepted --------------------------------------------------------------


def test_sequential_history_accepted():
    h = History()
    opened(h, "a")
    opened(h, "b")
    h.tr(2, "a", "b", 300, 2.0, 3.0, 9700, 10300)
    h.wd(3, "b", 300, 4.0, 5.0, 10000)
    h.rd(1, "a", 6.0, 7.0, 9700)
    h.rd(2, "b", 6.0, 7.0, 10000)
    h.rd(3, "c", 8.0, 9.0, 0)  # An unknown account reads 0.
    accepted(h)


def test_concurrent_ops_may_order_either_way():
    # The second deposit is invoked later but its answer shows it went
    # first; both overlap, so that is allowed.
    h = History()
    opened(h)
    h.dep(1, "a", 100, 2.0, 5.0, 10200)
    h.dep(2, "a", 100, 2.5, 4.0, 10100)
    h.rd(3, "a", 3.0, 3.5, 10000)  # Before either.
    h.rd(3, "a", 6.0, 6.5, 10200)
    accepted(h)


def test_concurrent_read_sees_write_in_flight():
    h = History()
    opened(h)
    h.wd(1, "a", 500, 2.0, 6.0, 9500)
    h.rd(2, "a", 3.0, 4.0, 9500)  # Saw the withdrawal before its answer.
    h.rd(3, "a", 4.5, 5.0, 9500)
    accepted(h)


def test_unknown_write_taking_effect_late_accepted():
    # A deposit timed out at 2.0; it shows up at 9.0, long after.
    h = History()
    opened(h)
    h.info(1, "deposit", "a", 700, 2.0)
    h.rd(2, "a", 3.0, 4.0, 10000)
    h.rd(2, "a", 5.0, 6.0, 10000)
    h.rd(3, "a", 9.0, 10.0, 10700)
    h.rd(3, "a", 11.0, 12.0, 10700, final=True)
    accepted(h)


def test_unknown_write_never_taking_effect_accepted():
    h = History()
    opened(h)
    opened(h, "b")
    h.info(1, "transfer", "a", 700, 2.0, to="b")
    h.info(2, "withdraw", "b", 50, 2.5)
    h.rd(3, "a", 9.0, 10.0, 10000, final=True)
    h.rd(3, "b", 9.0, 10.0, 10000, final=True)
    accepted(h)


def test_insufficient_funds_consistent_accepted():
    h = History()
    opened(h, "a", 1000)
    h.add(2, "withdraw", "a", 2.0, 3.0, typ="fail", error="insufficient", bal=1000, amount=5000)
    h.rd(1, "a", 4.0, 5.0, 1000)
    accepted(h)


def test_definite_failure_ignored():
    h = History()
    opened(h)
    h.add(1, "deposit", "a", 2.0, 3.0, typ="fail", error="no quorum (not proposed)", amount=5)
    h.rd(2, "a", 4.0, 5.0, 10000)
    accepted(h)


# ---- Rejected --------------------------------------------------------------


def test_stale_read_caught():
    h = History()
    opened(h)
    h.dep(1, "a", 100, 2.0, 3.0, 10100)
    h.rd(2, "a", 4.0, 5.0, 10000)  # Misses a deposit completed before it began.
    d = rejected(h)
    expect("balance a" in d and ">>" in d, "the detail should show the read: %s" % d)


def test_lost_update_caught():
    h = History()
    opened(h)
    h.dep(1, "a", 50, 2.0, 4.0, 10050)
    h.dep(2, "a", 50, 2.5, 3.5, 10050)  # Both built on 100.00.
    rejected(h)


def test_read_going_back_in_time_caught():
    h = History()
    opened(h)
    h.dep(1, "a", 100, 2.0, 10.0, 10100)
    h.rd(2, "a", 3.0, 4.0, 10100)
    h.rd(3, "a", 5.0, 6.0, 10000)  # Saw it, then did not.
    rejected(h)


def test_half_transfer_caught():
    # A read sees the transfer's debit, a later read misses its credit.
    h = History()
    opened(h, "a")
    opened(h, "b")
    h.tr(1, "a", "b", 400, 2.0, 8.0, 9600, 10400)
    h.rd(2, "a", 3.0, 4.0, 9600)
    h.rd(3, "b", 5.0, 6.0, 10000)
    rejected(h)


def test_wrong_transfer_answer_caught():
    h = History()
    opened(h, "a")
    opened(h, "b")
    h.tr(1, "a", "b", 400, 2.0, 3.0, 9600, 10000)  # Credit not in the answer.
    rejected(h)


def test_insufficient_refusal_with_enough_caught():
    h = History()
    opened(h, "a", 1000)
    h.add(2, "withdraw", "a", 2.0, 3.0, typ="fail", error="insufficient", bal=1000, amount=500)
    rejected(h)


def test_overdraft_caught():
    h = History()
    opened(h, "a", 1000)
    h.wd(1, "a", 1500, 2.0, 3.0, -500)
    rejected(h)
    name, ok, detail = linearize.check_no_negative(h.ops)
    expect(name == "atm_no_negative" and not ok, "no_negative should fail: %s" % detail)


def test_negative_final_read_caught():
    h = History()
    opened(h, "a", 1000)
    _, ok, detail = linearize.check_no_negative(h.ops, {1: {"a": 1000}, 2: {"a": -1}})
    expect(not ok, "a negative final read should fail: %s" % detail)
    _, ok, detail = linearize.check_no_negative(h.ops, {1: {"a": 1000}})
    expect(ok, "no negative here: %s" % detail)


def test_unknown_write_bounded_by_later_write_of_its_process():
    # The deposit of unknown outcome (seq 1) is followed by an applied
    # write of the same process (seq 2, completed at 4.0): it can take
    # effect only before 4.0, so appearing at 9.0 is a violation.
    h = History()
    opened(h)
    opened(h, "b")
    h.info(1, "deposit", "a", 700, 2.0, proc="atm1#9", seq=1)
    h.dep(1, "b", 1, 3.0, 4.0, 10001, proc="atm1#9", seq=2)
    h.rd(2, "a", 5.0, 6.0, 10000)
    h.rd(2, "a", 9.0, 10.0, 10700)
    rejected(h)
    # Another process's later write does not bound it.
    h.ops[3]["proc"] = "atm1#10"
    h.ops[3]["seq"] = 1
    accepted(h)


def test_unknown_write_applied_twice_caught():
    h = History()
    opened(h)
    h.info(1, "deposit", "a", 700, 2.0)
    h.rd(2, "a", 5.0, 6.0, 11400)
    rejected(h)


# ---- Conservation and agreement ---------------------------------------------


def test_conservation_holds_and_allows_unknown():
    h = History()
    opened(h, "a")
    opened(h, "b")
    h.tr(1, "a", "b", 100, 2.0, 3.0, 9900, 10100)
    h.wd(2, "b", 100, 2.0, 3.0, 10000)
    h.info(3, "deposit", "a", 250, 4.0)
    h.info(3, "withdraw", "b", 30, 4.0)
    for final, want in (({"a": 9900, "b": 10000}, True), ({"a": 10150, "b": 10000}, True),
                        ({"a": 10150, "b": 9970}, True), ({"a": 9900, "b": 9970}, True),
                        ({"a": 9901, "b": 10000}, False), ({"a": 10150, "b": 10050}, False)):
        name, ok, detail = linearize.check_conservation(h.ops, {1: final, 2: final})
        expect(name == "atm_conservation" and ok == want,
               "final %s: expected %s, got %s (%s)" % (final, want, ok, detail))


def test_conservation_catches_money_created():
    h = History()
    opened(h, "a")
    opened(h, "b")
    h.tr(1, "a", "b", 100, 2.0, 3.0, 9900, 10200)  # Credit more than debit.
    _, ok, detail = linearize.check_conservation(h.ops, {1: {"a": 9900, "b": 10200}})
    expect(not ok and "201.00" in detail, "should fail naming the total: %s" % detail)
    rejected(h)


def test_replicas_disagree_caught():
    _, ok, _ = linearize.check_replicas_agree({1: {"a": 5}, 2: {"a": 5}, 3: {"a": 5}})
    expect(ok, "identical reads agree")
    _, ok, detail = linearize.check_replicas_agree({1: {"a": 5}, 2: {"a": 5}, 3: {"a": 6}})
    expect(not ok and "atm3" in detail, "atm3 differs: %s" % detail)


def test_check_all_names_every_invariant():
    h = History()
    opened(h)
    h.rd(1, "a", 2.0, 3.0, 10000, final=True)
    h.rd(2, "a", 2.0, 3.0, 10000, final=True)
    res = linearize.check_all(h.ops, {1: {"a": 10000}, 2: {"a": 10000}})
    names = [r[0] for r in res]
    expect(names == ["atm_conservation", "atm_no_negative", "atm_replicas_agree",
                     "atm_linearizable"], names)
    expect(all(r[1] for r in res), res)


# ---- Scale -----------------------------------------------------------------


def random_history(rng, n_ops=2000, n_clients=3, accounts=("a", "b", "c", "d", "e"),
                   p_info=0.01, opening=50000, think=0.004, p_apply=0.5):
    """A valid history: each client's ops one after another with random
    durations and pauses of up to @think seconds, each op taking effect at
    a random point inside its interval (unknown ones: with probability
    @p_apply, up to half a second later), answers from a model applied in
    the order of those points."""
    h = History()
    t = 0.0
    bal = {}
    for x in accounts:
        h.dep(1, x, opening, t, t + 0.01, opening)
        bal[x] = opening
        t += 0.02
    events = []  # (effect time, op, kind)
    clocks = [t] * n_clients
    for _ in range(n_ops):
        c = min(range(n_clients), key=lambda k: clocks[k])
        inv = clocks[c] + rng.uniform(0.0, think)
        comp = inv + rng.uniform(0.001, 0.03)
        clocks[c] = comp
        r = rng.random()
        x = rng.choice(accounts)
        op = {"atm": c + 1, "inv": inv, "comp": comp, "x": x}
        if r < 0.6:
            op["f"], op["y"] = "transfer", rng.choice([y for y in accounts if y != x])
        elif r < 0.72:
            op["f"] = "deposit"
        elif r < 0.84:
            op["f"] = "withdraw"
        else:
            op["f"] = "balance"
        op["amt"] = rng.randint(1, 30000)
        op["info"] = op["f"] != "balance" and rng.random() < p_info
        if op["info"]:
            op["comp"] = None
            if rng.random() >= p_apply:
                h.info(op["atm"], op["f"], x, op["amt"], inv, to=op.get("y"))
                continue  # Never took effect.
            eff = inv + rng.uniform(0.0, 0.5)
        else:
            eff = rng.uniform(inv, comp)
        events.append((eff, len(events), op))
    events.sort()
    for eff, _, op in events:
        x, f, amt = op["x"], op["f"], op["amt"]
        typ, error, b1, b2 = "ok", None, None, None
        if f == "deposit":
            bal[x] += amt
            b1 = bal[x]
        elif f == "balance":
            b1 = bal[x]
        elif bal[x] < amt:
            typ, error, b1 = "fail", "insufficient", bal[x]
        else:
            bal[x] -= amt
            b1 = bal[x]
            if f == "transfer":
                bal[op["y"]] += amt
                b2 = bal[op["y"]]
        if op["info"]:
            h.info(op["atm"], f, x, amt, op["inv"], to=op.get("y"))
        else:
            h.add(op["atm"], f, x, op["inv"], op["comp"], typ=typ, bal=b1, to=op.get("y"),
                  amount=amt if f != "balance" else None, to_bal=b2, error=error)
    end = max([max(clocks)] + [e for e, _, _ in events]) + 1.0
    for x in accounts:
        h.rd(1, x, end, end + 0.01, bal[x], final=True)
    h.ops.sort(key=lambda o: o["invoke"])
    for i, o in enumerate(h.ops):
        o["id"] = i
    return h, bal


def test_random_2000_op_history_decided_fast():
    rng = random.Random(7)
    h, _ = random_history(rng)
    t0 = time.monotonic()
    v, d = lin(h)
    secs = time.monotonic() - t0
    expect(v == "ok", "a generated valid history must pass: %s" % d)
    expect(secs < 20, "took %.1fs" % secs)
    print("    2000 ops (%d unknown) decided in %.2fs" %
          (sum(1 for o in h.ops if o["type"] == "info"), secs))


def test_random_history_with_one_wrong_answer_rejected():
    rng = random.Random(11)
    h, _ = random_history(rng, n_ops=1000)
    reads = [o for o in h.ops if o["f"] == "balance" and o["type"] == "ok" and not o.get("final")]
    victim = reads[len(reads) // 2]
    victim["balance"] += 1
    t0 = time.monotonic()
    d = rejected(h)
    expect("#%d" % victim["id"] in d, "the detail should name the bad read: %s" % d[:600])
    print("    violation found in %.2fs" % (time.monotonic() - t0))


def test_many_seeds_valid_histories_accepted():
    for seed in range(20):
        h, _ = random_history(random.Random(seed), n_ops=200, p_info=0.05)
        v, d = lin(h)
        expect(v == "ok", "seed %d: %s" % (seed, d))


def test_unknown_writes_pending_through_many_segments_decided_fast():
    # Pauses between commands cut the history into many short segments;
    # a dozen unknown writes that never took effect stay pending in all of
    # them (as after a dozen SIGKILLs), and must not make the search blow up.
    rng = random.Random(1)
    h, _ = random_history(rng, n_ops=3000, p_info=0.006, think=0.01, p_apply=0.0)
    n_info = sum(1 for o in h.ops if o["type"] == "info")
    expect(n_info >= 8, "only %d unknown writes" % n_info)
    t0 = time.monotonic()
    v, d = lin(h)
    secs = time.monotonic() - t0
    expect(v == "ok", "a generated valid history must pass: %s" % d)
    expect(secs < 20, "took %.1fs" % secs)
    reads = [o for o in h.ops if o["f"] == "balance" and o["type"] == "ok" and not o.get("final")]
    reads[len(reads) // 2]["balance"] -= 1
    rejected(h)
    print("    3000 ops, %d unknown writes pending: decided in %.2fs, violation found in %.2fs" %
          (n_info, secs, time.monotonic() - t0 - secs))


def brute_force(history):
    """Whether @history is linearizable, by trying every order that
    respects real time (memoised on the ops placed and the balances), an
    unknown write either applied or dropped at each place: the plain
    definition, to check the search against on small histories."""
    ops, index = linearize._prepare(history)
    n = len(ops)
    seen = set()

    def rec(placed, state):
        if (placed, state) in seen:
            return False
        seen.add((placed, state))
        if all(placed >> i & 1 or ops[i].ret == linearize.INF for i in range(n)):
            return True
        for i in range(n):
            if placed >> i & 1:
                continue
            if any(not placed >> j & 1 and ops[j].ret < ops[i].call for j in range(n)):
                continue  # An op that returned before i was called comes first.
            s2 = linearize._step(state, ops[i])
            if s2 is not None and rec(placed | 1 << i, s2):
                return True
            if ops[i].kind == linearize.K_INFO and rec(placed | 1 << i, state):
                return True
        return False

    return rec(0, tuple(0 for _ in index))


def test_search_agrees_with_brute_force_on_small_histories():
    disagree = []
    verdicts = {"ok": 0, "violation": 0}
    for seed in range(600):
        rng = random.Random(seed)
        h, _ = random_history(rng, n_ops=rng.randint(3, 9), accounts=("a", "b", "c"), p_info=0.4,
                              think=rng.choice([0.0, 0.004, 0.02]), opening=rng.choice([500, 50000]))
        if seed % 2:  # Sequence numbers: later writes of a process bound unknown ones.
            seqs = {}
            for o in sorted(h.ops, key=lambda o: o["invoke"]):
                if o["f"] != "balance" and not o.get("final"):
                    seqs[o["atm"]] = seqs.get(o["atm"], 0) + 1
                    o["seq"] = seqs[o["atm"]]
        if rng.random() < 0.5:
            o = rng.choice([o for o in h.ops if o["type"] == "ok"])
            o["balance"] += rng.choice([-1, 1]) * rng.randint(1, 300)
        v, _ = lin(h)
        verdicts[v] = verdicts.get(v, 0) + 1
        if (v == "ok") != brute_force(h.ops):
            disagree.append(seed)
    expect(not disagree, "the search and brute force disagree on seeds %s" % disagree[:10])
    expect(verdicts["ok"] > 100 and verdicts["violation"] > 100, verdicts)


def test_budget_exhausted_is_unknown():
    h, _ = random_history(random.Random(3), n_ops=300)
    v, d = lin(h, max_steps=50)
    expect(v == "unknown" and "search budget exhausted" in d, "%s: %s" % (v, d))


def main():
    ap = argparse.ArgumentParser(description="ATM history checker tests")
    ap.add_argument("-k", dest="only", default=None)
    opts = ap.parse_args()
    tests = [(n[5:], f) for n, f in sorted(globals().items(), key=lambda kv: kv[0])
             if n.startswith("test_") and callable(f)]
    passed = failed = 0
    for name, fn in tests:
        if opts.only and opts.only not in name:
            continue
        t0 = time.monotonic()
        try:
            fn()
        except Exception as e:
            failed += 1
            tb = traceback.extract_tb(e.__traceback__)[-1]
            print("FAIL %s: %s (at line %d)" % (name, " ".join(str(e).split())[:2000], tb.lineno),
                  flush=True)
            continue
        passed += 1
        print("PASS %s (%.2fs)" % (name, time.monotonic() - t0), flush=True)
    print("atm_check: %d passed, %d failed, 0 skipped" % (passed, failed), flush=True)
    sys.exit(1 if failed else 0)


if __name__ == "__main__":
    main()

"""Integration tests of the ATM network (API.md section 5) on 127.0.0.1.

Each test starts its own network of three atm processes with fresh data
directories and drives them through their standard input: the command
language and its errors, linearizable reads, a leader killed in the middle
of a stream of operations, snapshots and log segments across restarts, a
stopped leader, the end of standard input, and strangers on the Raft port.
Needs no root. Run: python3 tests/integration/test_atm.py [--build DIR] [-k NAME].
"""

import os
import random
import socket
import sys
import threading
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from harness import (  # noqa: E402
    CMD_TIMEOUT, NoAnswer, ProcessGone, TestFailure, check, compare_snapshots, is_no_quorum,
    money, parse_balance, parse_transfer, run_suite, snapshot_files, wait_until,
)
import rqpreamble  # noqa: E402

# ---- Helpers ---------------------------------------------------------------


def expect_error(atm, line):
    """@line must be answered by an 'error:' line with a reason."""
    a = atm.cmd(line)
    check(a.startswith("error: ") and len(a) > len("error: "),
          "%r: %r should be an error, got %r" % (atm, line, a))
    return a


def in_threads(fns):
    """Runs each callable in its own thread; re-raises the first failure."""
    errors = []

    def wrap(fn):
        try:
            fn()
        except BaseException as e:  # Re-raised below in the main thread.
            errors.append(e)

    ts = [threading.Thread(target=wrap, args=(fn,)) for fn in fns]
    for t in ts:
        t.start()
    for t in ts:
        t.join()
    if errors:
        raise errors[0]


class OwnedOps:
    """A random stream of deposits, withdrawals and transfers on accounts
    only this stream touches, so every answer is known in advance.

    Runs pipelined in batches at one ATM and checks every answer exactly.
    """

    def __init__(self, rng, prefix, n_accounts=8):
        self.rng = rng
        self.accounts = ["%s_%d" % (prefix, i) for i in range(n_accounts)]
        self.model = {x: 0 for x in self.accounts}

    def _next(self):
        rng, m = self.rng, self.model
        funded = [x for x in self.accounts if m[x] > 0]
        kind = rng.choice(["deposit", "deposit", "withdraw", "transfer"]) if funded else "deposit"
        if kind == "deposit":
            x, amt = rng.choice(self.accounts), rng.randint(1, 50000)
            m[x] += amt
            return "deposit %s %s" % (x, money(amt)), "ok %s %s" % (x, money(m[x]))
        x = rng.choice(funded)
        amt = rng.randint(1, m[x])
        if kind == "withdraw":
            m[x] -= amt
            return "withdraw %s %s" % (x, money(amt)), "ok %s %s" % (x, money(m[x]))
        y = rng.choice([a for a in self.accounts if a != x])
        m[x] -= amt
        m[y] += amt
        return ("transfer %s %s %s" % (x, y, money(amt)),
                "ok %s %s %s %s" % (x, money(m[x]), y, money(m[y])))

    def run(self, atm, n, batch=40):
        done = 0
        while done < n:
            k = min(batch, n - done)
            pairs = [self._next() for _ in range(k)]
            answers = atm.cmds([p[0] for p in pairs])
            for (line, want), got in zip(pairs, answers):
                check(got == want, "%r: %r answered %r, expected %r" % (atm, line, got, want))
            done += k


def stop_and_compare(c):
    """SIGTERMs every ATM (each must exit 0), then compares their snapshots."""
    for a in c:
        if a.running():
            rc = a.terminate()
            check(rc == 0, "%r exited with status %d on SIGTERM" % (a, rc))
    n = compare_snapshots(list(c))
    print("    %d snapshot index(es) held by several ATMs, byte-identical" % n)


def lead_with(c, target, rounds=6):
    """Best effort: makes @target the leader by stopping whoever leads
    instead until an election picks it. Returns True if it leads."""
    for _ in range(rounds):
        lid = c.wait_leader()
        if lid == target:
            return True
        others = [a for a in c if a.id != lid]
        c[lid].pause()
        try:
            new = c.wait_leader(among=others, exclude=(lid,))
        finally:
            c[lid].resume()
        wait_until(lambda: (c[lid].try_status() or {}).get("leader") == new,
                   30, "atm%d to follow atm%d" % (lid, new))
    return c.wait_leader() == target


# ---- a) Basic --------------------------------------------------------------


def test_basic(ctx):
    c = ctx.cluster().start()
    lid = c.wait_leader()
    atms = list(c)

    # status: fields parse, one leader that everyone names, same term.
    sts = {a.id: a.status() for a in atms}
    check([i for i, s in sts.items() if s["role"] == "leader"] == [lid],
          "exactly atm%d should say role=leader: %s" % (lid, sts))
    for i, s in sts.items():
        check(s["leader"] == lid and s["term"] == sts[lid]["term"],
              "atm%d names leader %d term %d" % (i, s["leader"], s["term"]))
        check(s["applied"] <= s["commit"], "atm%d applied > commit: %s" % (i, s))
        check(s["term"] >= 1, "atm%d term %d" % (i, s["term"]))

    # help: usage lines, then ok.
    for a in atms:
        lines = a.cmd_lines("help")
        check(lines[-1] == "ok" and len(lines) >= 2, "%r: help answered %r" % (a, lines))
        check(any("deposit" in x for x in lines[:-1]), "%r: help does not mention deposit" % a)

    # A blank line is answered with nothing: the next answer is status's.
    with atms[1].lock:
        atms[1].proc.stdin.write(b"\n   \n")
        atms[1].proc.stdin.flush()
    atms[1].status()

    # Writes at each ATM, read at every other ATM right after the ok:
    # the read must reflect the write (linearizability).
    model = {}
    step = 0
    for a in atms:
        for b in atms:
            if a is b:
                continue
            step += 1
            x = "acct%d" % a.id
            amt = 1000 + step
            model[x] = model.get(x, 0) + amt
            got = parse_balance(a.cmd("deposit %s %s" % (x, money(amt))), x)
            check(got == model[x], "%r: deposit answered %s, expected %s" % (a, money(got), money(model[x])))
            check(b.balance(x) == model[x], "%r reads a stale %s right after %r's deposit" % (b, x, a))

            w = 1 + step
            model[x] -= w
            got = parse_balance(a.cmd("withdraw %s %s" % (x, money(w))), x)
            check(got == model[x], "%r: withdraw answered %s, expected %s" % (a, money(got), money(model[x])))
            check(b.balance(x) == model[x], "%r reads a stale %s right after %r's withdraw" % (b, x, a))

            y = "acct%d" % b.id
            t = 100 + step
            model[x] -= t
            model[y] = model.get(y, 0) + t
            fx, fy = parse_transfer(a.cmd("transfer %s %s %s" % (x, y, money(t))), x, y)
            check((fx, fy) == (model[x], model[y]),
                  "%r: transfer answered %s %s, expected %s %s" %
                  (a, money(fx), money(fy), money(model[x]), money(model[y])))
            check(b.balance(y) == model[y], "%r reads a stale %s right after %r's transfer" % (b, y, a))
            check(b.balance(x) == model[x], "%r reads a stale %s right after %r's transfer" % (b, x, a))

    # The three input forms of an amount; answers always have two decimals.
    for form, add in (("12", 1200), ("12.5", 1250), ("12.50", 1250), ("0.01", 1)):
        model["forms"] = model.get("forms", 0) + add
        check(atms[0].cmd("deposit forms " + form) == "ok forms " + money(model["forms"]),
              "deposit forms %s answered wrongly" % form)

    # An unknown account reads 0.00.
    check(atms[2].cmd("balance never_seen") == "ok never_seen 0.00", "unknown account is not 0.00")

    # The largest amount there is, then one cent more overflows the balance.
    big = "9223372036854775807"
    bigtext = big[:-2] + "." + big[-2:]
    model["big"] = int(big)
    check(atms[1].cmd("deposit big " + bigtext) == "ok big " + bigtext, "deposit of the maximum failed")

    # Every error class: answered error:, changes nothing.
    model["funded"] = 100000
    check(atms[0].cmd("deposit funded 1000") == "ok funded 1000.00", "deposit funded failed")
    bad = [
        "frobnicate", "deposit", "deposit funded", "balance", "transfer funded x",
        "deposit funded 10 extra", "balance bad!name", "deposit bad!name 10",
        "deposit " + "x" * 64 + " 10", "deposit e 0", "deposit e 0.00", "deposit e -1",
        "deposit e 1.234", "deposit e 99999999999999999999", "deposit e 92233720368547758.08",
        "deposit e abc", "deposit e 1e3", "deposit e 1,5", "withdraw funded -5",
        "transfer funded e 0", "withdraw funded 1000.01", "withdraw nobody 0.01",
        "transfer funded e 1000.01", "transfer nobody e 1", "deposit big 0.01",
    ]
    for i, line in enumerate(bad):
        expect_error(atms[i % 3], line)
    model["e"] = 0
    model["nobody"] = 0
    c.assert_agree(model)

    # Pipelined commands (a script piped in) are answered in order.
    lines = ["deposit pipe %d" % (i + 1) for i in range(20)]
    answers = atms[2].cmds(lines)
    total = 0
    for i, a in enumerate(answers):
        total += (i + 1) * 100
        check(a == "ok pipe " + money(total), "pipelined answer %d is %r" % (i, a))
    model["pipe"] = total
    c.assert_agree(model)

    # quit: usage-free ok, exit status 0; the other two still serve.
    q = atms[2]
    lines = q.cmd_lines("quit")
    check(lines[-1].startswith("ok"), "quit answered %r" % lines)
    q.expect_clean_exit = False
    try:
        rc = q.proc.wait(timeout=15)
    except Exception:
        raise TestFailure("atm3 did not exit after quit") from None
    check(rc == 0, "atm3 exited with status %d after quit" % rc)
    model["after_quit"] = 500
    check(atms[0].cmd("deposit after_quit 5") == "ok after_quit 5.00", "write after quit failed")
    c.assert_agree(model, atms[:2])


# ---- b) Kill the leader mid-stream -------------------------------------------


class Stream:
    """Operations from several ATMs at once, each on accounts only its
    stream touches, with their outcomes.

    An account's balance is known exactly until an operation on it is
    ambiguous ("error: no quorum", or its ATM killed before answering);
    that account is then never used again, so its final balance tells
    whether the ambiguous operation took effect. Deposits go to fresh
    accounts; withdrawals and transfers draw on accounts of known balance,
    and a transfer's destination is fresh too.
    """

    def __init__(self):
        self.lock = threading.Lock()
        self.records = []
        self.reads = []  # (atm, account, sent, answered, cents)
        self.violations = []
        self.ok = {}  # ATM id -> answered ok count.

    def add(self, r):
        with self.lock:
            self.records.append(r)
            if r["outcome"] == "ok":
                self.ok[r["atm"]] = self.ok.get(r["atm"], 0) + 1

    def violation(self, text):
        with self.lock:
            self.violations.append(text)

    def ok_count(self, atm_id=None):
        with self.lock:
            return sum(self.ok.values()) if atm_id is None else self.ok.get(atm_id, 0)

    def accounts(self):
        out = set()
        for r in self.records:
            out.add(r["acct"])
            if r["to"]:
                out.add(r["to"])
        return out

    def worker(self, atm, stop, rng):
        pool = []  # (account, cents): known balance, no operation ambiguous.
        i = 0
        while not stop.is_set():
            if not atm.running():
                time.sleep(0.02)  # Waiting for the main thread to restart it.
                continue
            gen = atm.generation
            i += 1
            if i % 4 == 0:
                self._read(atm, rng)
                continue
            r = {"atm": atm.id, "to": None, "before": 0, "amount": 0}
            # Withdrawals and transfers take an account holding 0.02 or more.
            rich = [j for j, (_, b) in enumerate(pool) if b >= 2]
            if i % 11 == 0 and pool:
                x, b = pool.pop(rng.randrange(len(pool)))
                r.update(kind="overdraft", acct=x, before=b, amount=b + 1)
                r["line"] = "withdraw %s %s" % (x, money(b + 1))
            elif i % 3 == 1 or not rich:
                amt = rng.randint(100, 100000)
                r.update(kind="deposit", acct="s%dd%d_%d" % (atm.id, gen, i), amount=amt)
                r["line"] = "deposit %s %s" % (r["acct"], money(amt))
            elif i % 3 == 2:
                x, b = pool.pop(rng.choice(rich))
                amt = rng.randint(1, b - 1)
                r.update(kind="withdraw", acct=x, before=b, amount=amt)
                r["line"] = "withdraw %s %s" % (x, money(amt))
            else:
                x, b = pool.pop(rng.choice(rich))
                amt = rng.randint(1, b - 1)
                to = "s%dt%d_%d" % (atm.id, gen, i)
                r.update(kind="transfer", acct=x, to=to, before=b, amount=amt)
                r["line"] = "transfer %s %s %s" % (x, to, money(amt))
            r["t0"] = time.monotonic()
            try:
                ans = atm.cmd(r["line"])
            except ProcessGone:
                ans = None
                r["outcome"] = "ambiguous"
                r["answer"] = "(killed before answering)"
            except NoAnswer:
                ans = None
                r["outcome"] = "ambiguous"
                r["answer"] = "(no answer)"
                self.violation("%r: no answer to %r within %.0fs" % (atm, r["line"], CMD_TIMEOUT))
            r["t1"] = time.monotonic() if ans is not None else float("inf")
            r["secs"] = time.monotonic() - r["t0"]
            if ans is not None:
                r["answer"] = ans
                self._judge(r, ans, pool)
            self.add(r)

    def _read(self, atm, rng):
        """Reads an account some stream (perhaps at another ATM) uses."""
        with self.lock:
            if not self.records:
                return
            r = self.records[rng.randrange(len(self.records))]
        x = r["to"] if r["to"] and rng.random() < 0.5 else r["acct"]
        t0 = time.monotonic()
        try:
            ans = atm.cmd("balance " + x)
        except (ProcessGone, NoAnswer):
            return  # A read changes nothing; the writes' checks cover these.
        t1 = time.monotonic()
        if ans.startswith("ok"):
            try:
                v = parse_balance(ans, x)
            except TestFailure as e:
                self.violation(str(e))
                return
            with self.lock:
                self.reads.append((atm.id, x, t0, t1, v))
        elif not is_no_quorum(ans):
            self.violation("atm%d: 'balance %s' answered %r" % (atm.id, x, ans))

    @staticmethod
    def _effects(r):
        """{account: balance after} for an operation that may change any."""
        k, x, b, amt = r["kind"], r["acct"], r["before"], r["amount"]
        if r["outcome"] not in ("ok", "ambiguous") or k == "overdraft":
            return {}
        if k == "deposit":
            return {x: amt}
        if k == "withdraw":
            return {x: b - amt}
        return {x: b - amt, r["to"]: amt}

    def check_reads(self):
        """Each read returned a value its account held at some moment
        between the read's sending and its answer: the value after an
        operation sent before the answer, and not one that a later
        operation, finished before the read was sent, had replaced. An
        ambiguous operation never finishes (it may take effect late or
        never), so both its before and after values stay allowed."""
        hist = {}
        for r in self.records:
            for x in self._effects(r):
                hist.setdefault(x, []).append(r)
        for ops in hist.values():
            ops.sort(key=lambda r: r["t0"])
        bad = []
        for atm_id, x, s, e, v in self.reads:
            ops = hist.get(x, [])
            vals = [0] + [self._effects(r)[x] for r in ops]
            allowed = set()
            for j, val in enumerate(vals):
                started = j == 0 or ops[j - 1]["t0"] < e
                replaced = j < len(ops) and ops[j]["outcome"] == "ok" and ops[j]["t1"] < s
                if started and not replaced:
                    allowed.add(val)
            if v not in allowed:
                bad.append("atm%d read %s=%s, allowed %s" % (atm_id, x, money(v),
                                                            sorted(money(a) for a in allowed)))
        check(not bad, "reads not linearizable: %s" % "; ".join(bad[:4]))
        return len(self.reads)

    def _judge(self, r, ans, pool):
        k, x, b, amt = r["kind"], r["acct"], r["before"], r["amount"]
        if ans.startswith("ok"):
            r["outcome"] = "ok"
            try:
                if k == "deposit":
                    check(parse_balance(ans, x) == amt, "wrong balance")
                    pool.append((x, amt))
                elif k == "withdraw":
                    check(parse_balance(ans, x) == b - amt, "wrong balance")
                    pool.append((x, b - amt))
                elif k == "transfer":
                    check(parse_transfer(ans, x, r["to"]) == (b - amt, amt), "wrong balances")
                    pool.append((x, b - amt))
                    pool.append((r["to"], amt))
                else:
                    self.violation("atm%d: overdraft %r answered %r" % (r["atm"], r["line"], ans))
            except TestFailure:
                self.violation("atm%d: %r answered %r" % (r["atm"], r["line"], ans))
        elif is_no_quorum(ans):
            r["outcome"] = "ambiguous"
            if r["secs"] > 6.0:
                self.violation("atm%d: 'no quorum' for %r after %.1fs" % (r["atm"], r["line"], r["secs"]))
        elif ans.startswith("error:") and k == "overdraft":
            r["outcome"] = "refused"
            pool.append((x, b))
        else:
            # No other refusal is possible for these operations; count it
            # as ambiguous so the rest of the check still holds.
            r["outcome"] = "ambiguous"
            self.violation("atm%d: %r answered %r" % (r["atm"], r["line"], ans))

    def resolve(self, final):
        """Checks every account's final balance against the operations and
        returns (deposited, withdrawn) in cents, ambiguities settled."""
        expect = {}  # account -> cents, for accounts whose last op is definite.
        amb = []
        for r in self.records:
            k, x, b, amt = r["kind"], r["acct"], r["before"], r["amount"]
            if r["outcome"] == "ambiguous":
                amb.append(r)
                expect.pop(x, None)
                continue
            if r["outcome"] == "refused":
                expect[x] = b
            elif k == "deposit":
                expect[x] = amt
            elif k == "withdraw":
                expect[x] = b - amt
            elif k == "transfer":
                expect[x] = b - amt
                expect[r["to"]] = amt
        deposited = sum(r["amount"] for r in self.records if r["kind"] == "deposit" and r["outcome"] == "ok")
        withdrawn = sum(r["amount"] for r in self.records if r["kind"] == "withdraw" and r["outcome"] == "ok")
        bad = []
        for x, want in expect.items():
            if final[x] != want:
                bad.append("%s=%s (expected %s)" % (x, money(final[x]), money(want)))
        for r in amb:
            k, x, b, amt = r["kind"], r["acct"], r["before"], r["amount"]
            f = final[x]
            if k == "deposit":
                check(f in (0, amt), "ambiguous %r left %s at %s" % (r["line"], x, money(f)))
                deposited += amt if f == amt else 0
            elif k == "withdraw":
                check(f in (b, b - amt), "ambiguous %r left %s at %s" % (r["line"], x, money(f)))
                withdrawn += amt if f == b - amt else 0
            elif k == "transfer":
                ft = final[r["to"]]
                check((f, ft) in ((b, 0), (b - amt, amt)),
                      "ambiguous %r left %s=%s %s=%s" % (r["line"], x, money(f), r["to"], money(ft)))
            else:
                check(f == b, "ambiguous overdraft %r left %s at %s" % (r["line"], x, money(f)))
        check(not bad, "balances differ from the operations: %s" % ", ".join(bad[:6]))
        return deposited, withdrawn


def test_kill_leader(ctx):
    c = ctx.cluster().start()
    lid = c.wait_leader()
    s = Stream()
    stop = threading.Event()
    threads = [threading.Thread(target=s.worker, args=(a, stop, random.Random(ctx.rng.random())))
               for a in c]
    for t in threads:
        t.start()
    try:
        wait_until(lambda: s.ok_count() >= 30, 30, "30 operations before the kill")
        c[lid].kill()
        others = [a for a in c if a.id != lid]
        base = {a.id: s.ok_count(a.id) for a in others}
        new = c.wait_leader(among=others, exclude=(lid,))
        wait_until(lambda: all(s.ok_count(a.id) >= base[a.id] + 10 for a in others), 30,
                   "operations at both survivors after the kill")
        c[lid].start()
        base_l = s.ok_count(lid)
        wait_until(lambda: s.ok_count(lid) >= base_l + 10, 30, "operations at the restarted atm%d" % lid)
    finally:
        stop.set()
        for t in threads:
            t.join(timeout=30)
    check(not s.violations, "; ".join(s.violations[:5]))
    c.wait_leader()
    c.wait_caught_up()
    final = c.assert_identical(s.accounts())
    deposited, withdrawn = s.resolve(final)
    total = sum(final.values())
    check(total == deposited - withdrawn, "total %s != deposits %s - withdrawals %s" %
          (money(total), money(deposited), money(withdrawn)))
    nreads = s.check_reads()
    amb = sum(1 for r in s.records if r["outcome"] == "ambiguous")
    print("    %d writes (%d ambiguous), %d reads; old leader atm%d, new atm%d" %
          (len(s.records), amb, nreads, lid, new))


def test_no_quorum(ctx):
    c = ctx.cluster().start()
    lid = c.wait_leader()
    ld = c[lid]
    check(ld.cmd("deposit nq 50") == "ok nq 50.00", "deposit failed")
    c.wait_caught_up()
    followers = [a for a in c if a.id != lid]
    for a in followers:
        a.kill()
    # The leader alone: every command that needs the network says so in
    # time. The write and transfer are ambiguous; each has its own account.
    for line in ("deposit nq_dep 7", "withdraw nq 1", "transfer nq nq_to 2", "balance nq"):
        t0 = time.monotonic()
        ans = ld.cmd(line)
        secs = time.monotonic() - t0
        check(is_no_quorum(ans), "alone, %r answered %r" % (line, ans))
        check(secs <= 6.0, "alone, %r took %.1fs to say no quorum" % (line, secs))
    check(ld.status()["role"] in ("leader", "follower", "candidate"), "status fails without quorum")
    followers[0].start()
    c.wait_leader(among=[ld, followers[0]])
    got = c.read_all(["nq", "nq_dep", "nq_to"], [ld, followers[0]])
    check(got[ld.id] == got[followers[0].id], "the two disagree: %s" % got)
    g = got[ld.id]
    check(g["nq_dep"] in (0, 700), "nq_dep is %s" % money(g["nq_dep"]))
    # withdraw 1 and transfer 2 may each have happened, in that order.
    check((g["nq"], g["nq_to"]) in ((5000, 0), (4900, 0), (4800, 200), (4700, 200)),
          "nq=%s nq_to=%s fits no outcome" % (money(g["nq"]), money(g["nq_to"])))
    check(followers[0].cmd("deposit nq 1").startswith("ok"), "deposit after recovery failed")


def test_five(ctx):
    c = ctx.cluster(n=5).start()
    lid = c.wait_leader()
    model = {"five": 0}
    for a in c:
        model["five"] += a.id * 100
        check(parse_balance(a.cmd("deposit five %d" % a.id), "five") == model["five"], "%r: deposit failed" % a)
        for b in c:
            check(b.balance("five") == model["five"], "%r reads a stale balance after %r's deposit" % (b, a))
    # Two down, the leader among them: three still make a majority.
    down = [lid, [a.id for a in c if a.id != lid][0]]
    for i in down:
        c[i].kill()
    up = [a for a in c if a.id not in down]
    c.wait_leader(among=up, exclude=(lid,))
    for a in up:
        model["five"] += 1000
        check(parse_balance(a.cmd("deposit five 10"), "five") == model["five"], "%r: deposit failed" % a)
    # A third down: no majority of five.
    up[0].kill()
    t0 = time.monotonic()
    ans = up[1].cmd("deposit five_nq 1")
    check(is_no_quorum(ans) and time.monotonic() - t0 <= 6.0,
          "two of five answered %r after %.1fs" % (ans, time.monotonic() - t0))
    for i in down:
        c[i].start()
    c.wait_leader()
    c.wait_caught_up()
    got = c.assert_identical(["five", "five_nq"])
    check(got["five"] == model["five"], "five is %s, expected %s" % (money(got["five"]), money(model["five"])))
    check(got["five_nq"] in (0, 100), "five_nq is %s" % money(got["five_nq"]))


# ---- c) Snapshots and segments -----------------------------------------------

SNAP_ARGS = ["--snapshot-threshold", "32", "--snapshot-trailing", "16", "--segment-size", "65536"]


def test_snapshots_restart_all(ctx):
    c = ctx.cluster(args=SNAP_ARGS).start()
    c.wait_leader()
    streams = [OwnedOps(random.Random(ctx.rng.random()), "r%d" % a.id) for a in c]
    in_threads([lambda a=a, o=o: o.run(a, 340) for a, o in zip(c, streams)])
    model = {}
    for o in streams:
        model.update(o.model)
    idx = c.wait_caught_up()
    check(idx >= 1000, "only %d entries applied after 1020 writes" % idx)
    for a in c:
        a.kill()
    for a in c:
        check(snapshot_files(a.data_dir), "%r took no snapshot in %d entries" % (a, idx))
    compare_snapshots(list(c))
    c.start()
    c.wait_leader()
    c.assert_agree(model)
    after = c.wait_caught_up()
    check(after >= idx, "applied index went back from %d to %d" % (idx, after))
    # And the network still takes writes.
    OwnedOps(random.Random(1), "again").run(c[1], 10)
    stop_and_compare(c)


def test_snapshot_catch_up(ctx):
    c = ctx.cluster(args=SNAP_ARGS).start()
    lid = c.wait_leader()
    fid = [a.id for a in c if a.id != lid][0]
    ops = OwnedOps(random.Random(ctx.rng.random()), "cu")
    ops.run(c[lid], 20)
    c.wait_caught_up()
    c[fid].kill()
    live = [a for a in c if a.id != fid]
    streams = [OwnedOps(random.Random(ctx.rng.random()), "cu%d" % a.id) for a in live]
    in_threads([lambda a=a, o=o: o.run(a, 150) for a, o in zip(live, streams)])
    model = dict(ops.model)
    for o in streams:
        model.update(o.model)
    c[fid].start()
    idx = c.wait_caught_up(timeout=40)
    check(idx >= 320, "only %d entries applied" % idx)
    c.assert_agree(model)
    check(snapshot_files(c[fid].data_dir), "atm%d caught up without a snapshot" % fid)
    # Reads at a follower may be served by the leader; make the caught-up
    # ATM the leader (best effort) so its own ledger answers.
    if lead_with(c, fid):
        c.assert_agree(model)
        ops.run(c[fid], 10)
        model.update(ops.model)
        c.wait_caught_up()
        c.assert_agree(model)
    else:
        print("    note: atm%d never won an election; its ledger was read through the leader" % fid)
    stop_and_compare(c)


# ---- d) A stopped leader -----------------------------------------------------


def test_sigstop_leader(ctx):
    c = ctx.cluster().start()
    lid = c.wait_leader()
    old = c[lid]
    term0 = old.status()["term"]
    model = {"stp": 0}
    model["stp"] += 10000
    check(old.cmd("deposit stp 100") == "ok stp 100.00", "first deposit failed")
    c.wait_caught_up()
    old.pause()
    others = [a for a in c if a.id != lid]
    new = c.wait_leader(among=others, exclude=(lid,))
    check(c[new].status()["term"] > term0, "the new leader's term did not grow")
    for a in others:
        model["stp"] += 2500
        check(parse_balance(a.cmd("deposit stp 25"), "stp") == model["stp"], "%r: deposit failed" % a)
    c.assert_agree(model, others)
    # The old leader reads this line the moment it runs again, when it may
    # still believe it leads: it must not answer with the old balance.
    with old.lock:
        old._note("> balance stp (sent while stopped)")
        old.send("balance stp")
    old.resume()
    with old.lock:
        ans = old._recv(time.monotonic() + CMD_TIMEOUT)[-1]
        old._note("< " + ans)
    check(ans.startswith("error:") or ans == "ok stp " + money(model["stp"]),
          "the resumed old leader answered %r, the balance is %s" % (ans, money(model["stp"])))
    wait_until(lambda: (old.try_status() or {}).get("leader") == new, 30,
               "atm%d to follow atm%d" % (lid, new))
    model["stp"] += 100
    check(parse_balance(old.cmd("deposit stp 1"), "stp") == model["stp"], "deposit at the old leader failed")
    c.wait_caught_up()
    c.assert_agree(model)


# ---- e) End of standard input ------------------------------------------------


def test_stdin_eof(ctx):
    c = ctx.cluster().start()
    lid = c.wait_leader()
    x = c[lid]  # The ATM whose input ends: the leader, to make it matter.
    check(x.cmd("deposit eof 10") == "ok eof 10.00", "deposit failed")
    x.close_stdin()
    y, z = [a for a in c if a.id != lid]
    check(z.cmd("deposit eof 1") == "ok eof 11.00", "deposit with all three up failed")
    # With y gone, z can only reach a majority through x.
    y.kill()
    check(x.running(), "atm%d exited at the end of its input" % x.id)
    check(z.cmd("deposit eof 2") == "ok eof 13.00", "deposit through the input-less atm%d failed" % x.id)
    check(z.balance("eof") == 1300, "balance after deposit is wrong")
    y.start()
    c.wait_caught_up([y, z])
    check(y.balance("eof") == 1300, "restarted atm%d reads a wrong balance" % y.id)
    rc = x.terminate()
    check(rc == 0, "atm%d exited with status %d on SIGTERM" % (x.id, rc))
    # The two left still form a majority.
    check(y.cmd("deposit eof 3") == "ok eof 16.00", "deposit after the SIGTERM failed")


# ---- f) Strangers --------------------------------------------------------------


WRONG_SECRET = "not-the-cluster-secret-but-long-enough-0123"


def preamble(secret, nonce, address):
    """A well-formed preamble (shared/rq_preamble.h) answering @nonce."""
    return rqpreamble.preamble(secret, nonce, group=1, cluster=1, sender=2, address=address)


def test_strangers(ctx):
    c = ctx.cluster().start()
    lid = c.wait_leader()
    held = []
    try:
        for a in c:
            host, port = c.addrs[a.id].rsplit(":", 1)
            addr = (host, int(port))
            payloads = [
                os.urandom(4096),
                b"GET / HTTP/1.0\r\n\r\n",
                preamble(WRONG_SECRET, os.urandom(32), "127.0.0.1:1") + os.urandom(512),
                preamble(c.secret, os.urandom(32), "127.0.0.1:1"),
                b"RQMX" + b"\xff" * 156,
                b"\0" * 160 + os.urandom(64),
            ]
            for p in payloads:
                s = socket.create_connection(addr, timeout=5)
                try:
                    s.sendall(p)
                except OSError:
                    pass  # The ATM may hang up early: that is fine.
                s.close()
            # A preamble with the wrong MAC, answering the challenge: the
            # ATM hangs up at once.
            s = socket.create_connection(addr, timeout=5)
            try:
                nonce = rqpreamble.read_challenge(s)
                s.sendall(preamble(WRONG_SECRET, nonce, "127.0.0.1:1"))
                check(s.recv(1) == b"", "%r answered a stranger's preamble" % a)
            except socket.timeout:
                raise TestFailure("%r kept a connection with a wrong MAC open" % a) from None
            except ConnectionResetError:
                pass
            finally:
                s.close()
            for _ in range(20):
                socket.create_connection(addr, timeout=5).close()
            # Half a preamble, left open: must not hold anything up.
            s = socket.create_connection(addr, timeout=5)
            s.sendall(preamble(c.secret, rqpreamble.read_challenge(s), "127.0.0.1:1")[:60])
            held.append(s)
        for a in c:
            check(a.running(), "%r died after a stranger's bytes" % a)
        for i, a in enumerate(c):
            check(a.cmd("deposit strange %d" % (i + 1)).startswith("ok"), "%r: deposit failed" % a)
        # An ATM with the wrong secret claiming id 3 gets nowhere.
        rport = ctx.ports.take()
        peers = ",".join("%d=%s" % (i, c.addrs[i] if i != 3 else "127.0.0.1:%d" % rport) for i in (1, 2, 3))
        data = os.path.join(ctx.dir, "rogue")
        os.makedirs(data)
        rogue = ctx.atm(3, [ctx.binary, "--id", "3", "--peers", peers, "--data", data,
                            "--election-timeout-ms", "600", "--cluster-secret", WRONG_SECRET])
        rogue.start()
        t0 = time.monotonic()
        ans = rogue.cmd("deposit strange 100")
        secs = time.monotonic() - t0
        check(is_no_quorum(ans), "the rogue ATM answered %r" % ans)
        check(secs <= 6.0, "the rogue ATM took %.1fs to say no quorum" % secs)
        for i, a in enumerate(c):
            check(a.cmd("deposit strange %d" % (i + 1)).startswith("ok"), "%r: deposit failed" % a)
        c.assert_agree({"strange": 1200})
        check(c.current_leader() is not None, "no leader after the strangers")
        rc = rogue.terminate()
        check(rc == 0, "the rogue ATM exited with %d" % rc)
        # DESIGN.md: an unfinished preamble is dropped after 5 s.
        for s in held:
            s.settimeout(12)
            try:
                check(s.recv(1) == b"", "an ATM answered half a preamble")
            except socket.timeout:
                raise TestFailure("an ATM kept a half-sent preamble open for 12s") from None
            except ConnectionResetError:
                pass
    finally:
        for s in held:
            s.close()
    print("    leader atm%d before, atm%d after" % (lid, c.current_leader() or 0))


TESTS = [
    test_basic,
    test_kill_leader,
    test_no_quorum,
    test_five,
    test_snapshots_restart_all,
    test_snapshot_catch_up,
    test_sigstop_leader,
    test_stdin_eof,
    test_strangers,
]

if __name__ == "__main__":
    run_suite("atm", TESTS)

"""The bank workload of the fault-injection suite: clients on every ATM and
the checks of what they saw.

AtmWorkload drives started harness.Atm objects that the fault framework
owns (it kills, restarts, stops and partitions them at any time; an Atm
object stays the same across a restart). One client thread per ATM types a
random mix of transfers, deposits, withdrawals and balance reads, one at a
time, and records each operation with its invocation and completion times
on one monotonic clock and its outcome:

- ok: answered with balances;
- fail: a definite error that changed nothing: insufficient funds (which
  reports the balance it saw), "no quorum: no leader with a majority is
  reachable" (the ATM proposed nothing), a refusal, or a command that never
  reached the process (its standard input was gone);
- info: unknown. "no quorum ...; it may still take effect" (the write was
  proposed or forwarded and may commit later), a client timeout, or the
  process killed after the command reached it.

A command whose answer does not come within the client's short timeout
stays outstanding: the client sends nothing more to that ATM (a stopped ATM
holds up only its own client) and collects the late answer when it comes,
by its position in the ATM's answer stream (Atm.late_answers), which
resolves the operation with the later completion time. If the process is
killed first, the operation stays info.

Times in the history are seconds since the workload was made (its t0, a
time.monotonic() value, so a fault log can be laid beside it). The checks
are in linearize.py. The history is written to OUT_DIR/atm_history.jsonl,
one operation per line.

Typical use by a fault framework: w = AtmWorkload(atms, rng, out_dir);
w.setup(); w.start(); ...faults...; w.stop(); ...heal, wait for a leader...;
w.final_reads(); w.check() -> [(invariant, passed, detail)]; w.stats().
"""

import json
import os
import random
import re
import sys
import threading
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "integration"))
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from harness import NoAnswer, NotDelivered, ProcessGone  # noqa: E402
import linearize  # noqa: E402

AMOUNT = r"(-?\d+\.\d\d)"
ONE_RE = re.compile(r"^ok ([A-Za-z0-9_-]+) " + AMOUNT + "$")
TWO_RE = re.compile(r"^ok ([A-Za-z0-9_-]+) " + AMOUNT + " ([A-Za-z0-9_-]+) " + AMOUNT + "$")
INSUFFICIENT_RE = re.compile(r"^error: insufficient funds: ([A-Za-z0-9_-]+) has " + AMOUNT)
NO_QUORUM_SENT = "error: no quorum: not confirmed"
NO_QUORUM_UNSENT = "error: no quorum: no leader"

# The mix of commands (weights).
MIX = (("transfer", 60), ("deposit", 12), ("withdraw", 12), ("balance", 16))


def cents(text):
    neg = text.startswith("-")
    whole, _, frac = text.lstrip("-").partition(".")
    c = int(whole) * 100 + int((frac + "00")[:2])
    return -c if neg else c


def classify(op, answer):
    """Fills @op's outcome from its answer line."""
    f = op["f"]
    op["answer"] = answer
    if answer.startswith("ok"):
        m = TWO_RE.match(answer) if f == "transfer" else ONE_RE.match(answer)
        if m and m.group(1) == op["account"] and (f != "transfer" or m.group(3) == op["to"]):
            op["type"] = "ok"
            op["balance"] = cents(m.group(2))
            if f == "transfer":
                op["to_balance"] = cents(m.group(4))
            return
        op["type"] = "info" if f != "balance" else "fail"
        op["error"] = "garbled"
        return
    m = INSUFFICIENT_RE.match(answer)
    if m and f in ("withdraw", "transfer") and m.group(1) == op["account"]:
        op["type"] = "fail"
        op["error"] = "insufficient"
        op["balance"] = cents(m.group(2))
    elif answer.startswith(NO_QUORUM_SENT):
        # Proposed (or forwarded) before the deadline: may commit later.
        op["type"] = "info" if f != "balance" else "fail"
        op["error"] = "no quorum (may take effect)"
    elif answer.startswith(NO_QUORUM_UNSENT):
        op["type"] = "fail"
        op["error"] = "no quorum (not proposed)"
    elif answer.startswith("error: request refused") or "would overflow" in answer:
        op["type"] = "fail"
        op["error"] = "refused"
    else:
        # "shutting down" or anything unforeseen: a write may have been sent.
        op["type"] = "info" if f != "balance" else "fail"
        op["error"] = answer[len("error: "):] if answer.startswith("error: ") else "unexpected"


def command_line(op):
    f = op["f"]
    if f == "balance":
        return "balance %s" % op["account"]
    if f == "transfer":
        return "transfer %s %s %s" % (op["account"], op["to"], linearize.money(op["amount"]))
    return "%s %s %s" % (f, op["account"], linearize.money(op["amount"]))


class AtmWorkload:
    """The bank workload over @atms (started harness.Atm objects)."""

    def __init__(self, atms, rng, out_dir, n_accounts=5, opening=50000, max_amount=30000,
                 cmd_timeout=1.0, think=(0.0, 0.01), check_seconds=60.0):
        self.atms = list(atms)
        self.rng = rng
        self.out_dir = out_dir
        self.accounts = ["bank%d" % i for i in range(n_accounts)]
        self.opening = opening  # Cents deposited into each account by setup().
        self.max_amount = max_amount
        self.cmd_timeout = cmd_timeout
        self.think = think  # Seconds (low, high) a client waits between commands.
        self.check_seconds = check_seconds
        self.t0 = time.monotonic()
        self.history = []
        self.lock = threading.Lock()  # Guards history, next_id and seqs.
        self.next_id = 0
        self.seqs = {}  # Process key -> writes delivered to that process.
        self.outstanding = {}  # Atm id -> (op, process key, answer number).
        self.dead = set()  # Keys of processes a command found gone.
        self.final = None  # {atm id: {account: cents}} after final_reads().
        self.threads = []
        self.stopping = threading.Event()
        self.late_resolved = 0

    # -- one command --

    def _now(self):
        return time.monotonic() - self.t0

    def _record(self, op):
        with self.lock:
            op["id"] = self.next_id
            self.next_id += 1
            self.history.append(op)

    def _run(self, atm, op, timeout):
        """Sends @op's command to @atm and fills in its outcome. A command
        left unanswered is remembered in self.outstanding."""
        line = command_line(op)
        with atm.lock:
            if atm.proc is None:
                return None
            key = "atm%d#%d" % (atm.id, atm.proc.pid)
            op["proc"] = key
            op["invoke"] = self._now()
            try:
                answer = atm.cmd(line, timeout)
            except NotDelivered:
                op["complete"] = self._now()
                op["type"] = "fail"
                op["error"] = "not delivered"
                return op  # Not recorded: it reached no ATM.
            except (NoAnswer, ProcessGone) as e:
                gone = isinstance(e, ProcessGone)
                op["complete"] = None
                op["type"] = "info"
                op["error"] = "process gone" if gone else "timeout"
                if op["f"] != "balance":
                    op["seq"] = self._next_seq(key)
                self._record(op)
                if gone:
                    self.dead.add(key)
                else:
                    self.outstanding[atm.id] = (op, key, atm.sent)
                return op
            op["complete"] = self._now()
            if op["f"] != "balance":
                op["seq"] = self._next_seq(key)
        classify(op, answer)
        self._record(op)
        return op

    def _next_seq(self, key):
        with self.lock:
            self.seqs[key] = self.seqs.get(key, 0) + 1
            return self.seqs[key]

    def _collect(self, atm, timeout):
        """Waits up to @timeout for the answer owed to @atm's outstanding
        operation; returns True once nothing is outstanding."""
        op, key, number = self.outstanding[atm.id]
        with atm.lock:
            if atm.proc is None or "atm%d#%d" % (atm.id, atm.proc.pid) != key:
                del self.outstanding[atm.id]  # Restarted: stays info.
                return True
            try:
                got = atm.late_answers(timeout)
            except ProcessGone:
                del self.outstanding[atm.id]
                op["error"] = "process gone"
                return True
            for k, line in got:
                if k == number:
                    with self.lock:
                        op["complete"] = self._now()
                        op["late"] = True
                        del op["error"]
                        classify(op, line)
                        self.late_resolved += 1
            if atm.answered >= number:  # Answered (maybe read by another caller).
                del self.outstanding[atm.id]
                return True
        return False

    # -- the workload --

    def setup(self, timeout=60.0):
        """Opens the accounts: deposits the opening amount into each, at
        the ATMs in turn, until each deposit is acknowledged."""
        deadline = time.monotonic() + timeout
        for i, x in enumerate(self.accounts):
            k = i
            while True:
                if time.monotonic() > deadline:
                    raise RuntimeError("could not open account %s within %.0fs" % (x, timeout))
                atm = self.atms[k % len(self.atms)]
                k += 1
                if atm.id in self.outstanding:
                    self._collect(atm, 0.5)
                    continue
                if not self._usable(atm):
                    time.sleep(0.05)
                    continue
                op = {"atm": atm.id, "f": "deposit", "account": x, "amount": self.opening}
                op = self._run(atm, op, 6.0)
                if op is not None and op["type"] == "ok":
                    break
        self._save()

    def _choose(self, rng):
        total = sum(w for _, w in MIX)
        r = rng.randrange(total)
        for f, w in MIX:
            if r < w:
                break
            r -= w
        x = rng.choice(self.accounts)
        op = {"f": f, "account": x}
        if f == "transfer":
            op["to"] = rng.choice([y for y in self.accounts if y != x])
        if f != "balance":
            op["amount"] = rng.randint(1, self.max_amount)
        return op

    def _client(self, atm, rng):
        while not self.stopping.is_set():
            if atm.id in self.outstanding:
                self._collect(atm, 0.3)
                continue
            if not self._usable(atm):
                self.stopping.wait(0.05)
                continue
            op = self._choose(rng)
            op["atm"] = atm.id
            self._run(atm, op, self.cmd_timeout)
            # A pause between commands leaves moments when no command is in
            # flight anywhere, where the checker can cut the history.
            self.stopping.wait(rng.uniform(*self.think))

    def _usable(self, atm):
        """Whether @atm looks able to take a command: running, not stopped,
        and not the process a command already found gone (while the
        framework reaps a killed process, Popen.poll() may still say it
        runs)."""
        proc = atm.proc
        return (proc is not None and atm.running() and not atm.paused and not atm.stdin_closed
                and "atm%d#%d" % (atm.id, proc.pid) not in self.dead)

    def start(self):
        """One client thread per ATM."""
        self.stopping.clear()
        for atm in self.atms:
            rng = random.Random(self.rng.getrandbits(64))
            t = threading.Thread(target=self._client, args=(atm, rng), daemon=True,
                                 name="atm-client-%d" % atm.id)
            t.start()
            self.threads.append(t)

    def stop(self):
        """Stops and joins the client threads."""
        self.stopping.set()
        for t in self.threads:
            t.join()
        self.threads = []
        self._save()

    def final_reads(self, timeout=60.0):
        """Collects late answers still owed, then reads every account at
        every running ATM (retrying until answered). Returns {atm id:
        {account: cents}}; the reads join the history as final ops."""
        deadline = time.monotonic() + timeout
        for atm in self.atms:
            while atm.id in self.outstanding and time.monotonic() < deadline - timeout / 2:
                if not atm.running() or self._collect(atm, 0.5):
                    break
            self.outstanding.pop(atm.id, None)
        out = {}
        for atm in self.atms:
            if not atm.running() or atm.paused:
                continue
            bals = {}
            for x in self.accounts:
                while x not in bals:
                    if time.monotonic() > deadline:
                        raise RuntimeError("atm%d: no answer to balance %s within %.0fs" %
                                           (atm.id, x, timeout))
                    op = {"atm": atm.id, "f": "balance", "account": x, "final": True}
                    op = self._run(atm, op, 6.0)
                    if atm.id in self.outstanding:
                        self._collect(atm, 6.0)
                        self.outstanding.pop(atm.id, None)
                    if op is not None and op["type"] == "ok":
                        bals[x] = op["balance"]
                    else:
                        time.sleep(0.1)
            out[atm.id] = bals
        self.final = out
        self._save()
        return out

    # -- results --

    def check(self):
        """[(invariant name, passed, detail)]."""
        with self.lock:
            history = [dict(o) for o in self.history]
        out = linearize.check_all(history, self.final, max_seconds=self.check_seconds)
        garbled = [o for o in history if o.get("error") == "garbled"]
        out.append(("atm_answers_wellformed", not garbled,
                    "%d answers did not parse%s" % (
                        len(garbled), (": " + linearize.describe(garbled[0])) if garbled else "")))
        return out

    def stats(self):
        """Counts: ops, ok, fail, info, and each per command."""
        with self.lock:
            history = list(self.history)
        s = {"ops": len(history), "ok": 0, "fail": 0, "info": 0, "late_resolved": self.late_resolved,
             "by_command": {}}
        for o in history:
            s[o["type"]] += 1
            c = s["by_command"].setdefault(o["f"], {"ok": 0, "fail": 0, "info": 0})
            c[o["type"]] += 1
        return s

    def _save(self):
        if self.out_dir is None:
            return
        os.makedirs(self.out_dir, exist_ok=True)
        with self.lock:
            lines = [json.dumps(o, sort_keys=True) for o in self.history]
        path = os.path.join(self.out_dir, "atm_history.jsonl")
        with open(path + ".tmp", "w") as f:
            f.write("\n".join(lines) + ("\n" if lines else ""))
        os.replace(path + ".tmp", path)

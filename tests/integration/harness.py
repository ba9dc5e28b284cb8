"""Harness for the process-level integration tests (ATM network, brokers).

It starts real binaries: atm processes with pipes on their standard input
and output, to which it sends one command at a time and waits for its
answer line with a deadline, and daemons (brokers) that tests drive over
HTTP. It can SIGKILL, SIGSTOP, SIGCONT, SIGTERM and restart them. Each process
writes its standard error to a log file in the test's temporary directory,
and every command with its answer goes to a transcript beside it; both are
printed (their tails) when a test fails, and the directory is kept then.
Synchronisation is by polling with a deadline (wait_until), never by
sleeping for a guessed time.

A tiny runner runs the test functions of a suite in order and prints
"PASS name (secs)", "FAIL name: reason" or "SKIP name: reason" for each,
then the line "<suite>: N passed, N failed, N skipped" that tests/run.sh
reads. Standard library only.
"""

import argparse
import atexit
import ctypes
import os
import queue
import random
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import traceback
import zlib

from rqkeys import TEST_SECRET

# An answer line starts with "ok" (alone or followed by a blank) or "error:".
ANSWER_RE = re.compile(r"^(ok( |$)|error:)")
STATUS_RE = re.compile(
    r"^ok id=(\d+) role=(leader|follower|candidate) leader=(\d+) "
    r"term=(\d+) commit=(\d+) applied=(\d+)$"
)
BALANCE_RE = re.compile(r"^ok ([A-Za-z0-9_-]+) (\d+\.\d\d)$")
TRANSFER_RE = re.compile(r"^ok ([A-Za-z0-9_-]+) (\d+\.\d\d) ([A-Za-z0-9_-]+) (\d+\.\d\d)$")
SANITIZER_RE = re.compile(
    r"(ERROR: AddressSanitizer|ERROR: LeakSanitizer|runtime error:|"
    r"WARNING: ThreadSanitizer|SUMMARY: UndefinedBehaviorSanitizer)"
)

# How long a command may take before the harness calls it unanswered. The
# contract's bound is 5 s for "no quorum"; this leaves room for ASan on
# busy shared cores.
CMD_TIMEOUT = 10.0


class TestFailure(Exception):
    """A test's assertion did not hold."""


class Skip(Exception):
    """The test cannot run here; the reason says why."""


class NoAnswer(TestFailure):
    """A command got no answer line before its deadline."""


class ProcessGone(TestFailure):
    """The process ended (or was killed) before it answered."""


class NotDelivered(ProcessGone):
    """The process had no standard input left to write to: the command never
    reached it, so it cannot take effect."""


def check(cond, msg):
    """Raises TestFailure(msg) unless cond holds."""
    if not cond:
        raise TestFailure(msg)


def wait_until(pred, timeout_s, what="the condition", interval=0.05):
    """Polls pred() until it returns a true value, which it returns.

    Raises TestFailure naming @what after @timeout_s seconds. The last
    TestFailure pred raised, if any, is quoted in the message.
    """
    deadline = time.monotonic() + timeout_s
    last = None
    while True:
        try:
            v = pred()
            if v:
                return v
        except TestFailure as e:
            last = e
        if time.monotonic() >= deadline:
            tail = "" if last is None else " (last: %s)" % last
            raise TestFailure("timed out after %.1fs waiting for %s%s" % (timeout_s, what, tail))
        time.sleep(interval)


# ---- Amounts ---------------------------------------------------------------


def cents(text):
    """'12.50' -> 1250."""
    whole, _, frac = text.partition(".")
    return int(whole) * 100 + int((frac + "00")[:2])


def money(c):
    """1250 -> '12.50'."""
    return "%d.%02d" % (c // 100, c % 100)


def parse_balance(answer, account):
    """The cents in "ok ACCOUNT BALANCE", or TestFailure."""
    m = BALANCE_RE.match(answer)
    check(m is not None and m.group(1) == account,
          "expected 'ok %s BALANCE', got %r" % (account, answer))
    return cents(m.group(2))


def parse_transfer(answer, src, dst):
    """(from_cents, to_cents) from "ok FROM BAL TO BAL", or TestFailure."""
    m = TRANSFER_RE.match(answer)
    check(m is not None and m.group(1) == src and m.group(3) == dst,
          "expected 'ok %s BAL %s BAL', got %r" % (src, dst, answer))
    return cents(m.group(2)), cents(m.group(4))


def is_no_quorum(answer):
    return answer.startswith("error: no quorum")


# ---- Ports -----------------------------------------------------------------


def ephemeral_start():
    """The first port the kernel gives connections as their local port."""
    try:
        with open("/proc/sys/net/ipv4/ip_local_port_range") as f:
            return int(f.read().split()[0])
    except (OSError, ValueError, IndexError):
        return 65536


class PortPool:
    """Hands out TCP ports from a range, each once per run, that were free
    when handed out (the ATM binds them a moment later). The range must lie
    below the kernel's ephemeral ports: a process restarted on its port
    would otherwise find it taken, now and then, as the local port of some
    client's connection (test_groups' restarted manager did)."""

    def __init__(self, lo=23000, hi=23999):
        if hi >= ephemeral_start():
            raise ValueError("ports %d-%d reach into the kernel's ephemeral ports (from %d)"
                             % (lo, hi, ephemeral_start()))
        self.lo, self.hi = lo, hi
        self.next = lo + (os.getpid() * 7919) % (hi - lo + 1)
        self.given = set()
        self.lock = threading.Lock()

    def _free(self, port, host):
        s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        try:
            s.bind((host, port))
            return True
        except OSError:
            return False
        finally:
            s.close()

    def take(self, host="127.0.0.1"):
        with self.lock:
            for _ in range(self.hi - self.lo + 1):
                p = self.next
                self.next = self.lo if p >= self.hi else p + 1
                if p not in self.given and self._free(p, host):
                    self.given.add(p)
                    return p
        raise TestFailure("no free port in %d-%d" % (self.lo, self.hi))


# ---- Processes -------------------------------------------------------------

_live_procs = set()  # Every process started and not yet reaped.
_live_lock = threading.Lock()


def _kill_leftovers():
    with _live_lock:
        procs = list(_live_procs)
    for p in procs:
        try:
            p.kill()
            p.wait(timeout=5)
        except Exception:
            pass


atexit.register(_kill_leftovers)

_PR_SET_PDEATHSIG = 1
try:
    _libc = ctypes.CDLL(None, use_errno=True)
except OSError:
    _libc = None


def _die_with_parent():
    # Runs in the child before exec: it gets SIGKILL when the harness dies,
    # so no ATM outlives a crashed or killed run.
    if _libc is not None:
        _libc.prctl(_PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)


class Process:
    """One process the harness started: its arguments, data directory, log
    and transcript (the harness's notes on what it did to the process), and
    the signals a test sends it. Subclasses choose its standard streams."""

    kind = "proc"  # Names the process in messages: "atm1", "broker2".

    def __init__(self, ctx, proc_id, argv, log_path, wrap=()):
        self.ctx = ctx
        self.id = proc_id
        self.argv = list(argv)
        self.wrap = list(wrap)  # Prefix, e.g. ["ip", "netns", "exec", NS].
        self.log_path = log_path
        self.transcript_path = log_path[:-4] + ".transcript" if log_path.endswith(".log") \
            else log_path + ".transcript"
        self.proc = None
        self.data_dir = None
        self.generation = 0  # Incremented by each start.
        self.paused = False
        self.expect_clean_exit = False
        self.lock = threading.RLock()

    def __repr__(self):
        return "%s%d" % (self.kind, self.id)

    # -- lifecycle --

    def _popen(self, log):
        """Starts the process with its stderr on @log (an open file)."""
        return subprocess.Popen(
            self.wrap + self.argv, stdin=subprocess.DEVNULL, stdout=log, stderr=log,
            env=self.ctx.env, preexec_fn=_die_with_parent)

    def _started(self, proc):
        """Called with self.lock held once @proc runs."""

    def start(self):
        # PR_SET_PDEATHSIG fires when the creating thread exits, so only the
        # main thread starts processes.
        assert threading.current_thread() is threading.main_thread(), \
            "start processes from the main thread"
        assert not self.running(), "%r already running" % self
        self.generation += 1
        with open(self.log_path, "ab") as f:
            f.write(("==== start %d: %s\n" % (self.generation, " ".join(self.wrap + self.argv))).encode())
        log = open(self.log_path, "ab")
        try:
            proc = self._popen(log)
        finally:
            log.close()
        with _live_lock:
            _live_procs.add(proc)
        with self.lock:
            self.proc = proc
            self.paused = False
            self.expect_clean_exit = True
            self._started(proc)
        self._note("---- start %d (pid %d)" % (self.generation, proc.pid))
        return self

    def running(self):
        return self.proc is not None and self.proc.poll() is None

    def pid(self):
        return self.proc.pid

    def _reap(self, timeout):
        rc = self.proc.wait(timeout=timeout)
        with _live_lock:
            _live_procs.discard(self.proc)
        return rc

    def kill(self):
        """SIGKILL, then reap."""
        if not self.running():
            return
        self.expect_clean_exit = False
        self.proc.send_signal(signal.SIGKILL)
        self._reap(10)
        self.paused = False
        self._note("---- SIGKILL")

    def pause(self):
        """SIGSTOP."""
        self.proc.send_signal(signal.SIGSTOP)
        self.paused = True
        self._note("---- SIGSTOP")

    def resume(self):
        """SIGCONT."""
        self.proc.send_signal(signal.SIGCONT)
        self.paused = False
        self._note("---- SIGCONT")

    def terminate(self, timeout=15.0):
        """SIGTERM (after SIGCONT if stopped); returns the exit status, or
        raises TestFailure (after a SIGKILL) if it does not exit in time."""
        if self.proc is None:
            return None
        if self.proc.poll() is not None:
            return self._reap(1)
        self.expect_clean_exit = False  # The caller judges this exit.
        if self.paused:
            self.resume()
        self.proc.send_signal(signal.SIGTERM)
        self._note("---- SIGTERM")
        try:
            rc = self._reap(timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self._reap(10)
            raise TestFailure("%r did not exit within %.0fs of SIGTERM" % (self, timeout))
        self._note("---- exit status %d" % rc)
        return rc

    def _note(self, text):
        with open(self.transcript_path, "a") as f:
            f.write("%.3f %s\n" % (time.monotonic() - self.ctx.t0, text))

    def log_tail(self, n=40):
        try:
            with open(self.log_path, "rb") as f:
                lines = f.read().decode("utf-8", "replace").splitlines()
        except OSError:
            return []
        return lines[-n:]


class Daemon(Process):
    """A process driven from outside (HTTP, signals), not by standard
    input: standard input is /dev/null, standard output goes to its log."""

    def __init__(self, ctx, kind, proc_id, argv, log_path, wrap=()):
        super().__init__(ctx, proc_id, argv, log_path, wrap)
        self.kind = kind


class Atm(Process):
    """One atm process with pipes on its standard input and output.

    Commands are serialised by a lock, so a worker thread and the main
    thread may both talk to it. An answer that arrives after its command
    timed out is consumed and dropped by the next command (pending counts
    the commands still owed an answer), or collected by late_answers().
    Answers come in the order of the commands, one each, so the k-th answer
    line read from a process answers the k-th line written to it (sent and
    answered count both since the process started). A SIGKILL answers the
    pending command (if any) with ProcessGone in the thread waiting for it.
    """

    kind = "atm"

    def __init__(self, ctx, atm_id, argv, log_path, wrap=()):
        super().__init__(ctx, atm_id, argv, log_path, wrap)
        self.stdin_closed = False
        self._q = None
        self._eof = False
        self.pending = 0
        self.sent = 0
        self.answered = 0

    # -- lifecycle --

    def _popen(self, log):
        return subprocess.Popen(
            self.wrap + self.argv, stdin=subprocess.PIPE, stdout=subprocess.PIPE,
            stderr=log, env=self.ctx.env, preexec_fn=_die_with_parent)

    def _started(self, proc):
        q = queue.Queue()
        t = threading.Thread(target=self._reader, args=(proc, q), daemon=True)
        t.start()
        self._q = q
        self._eof = False
        self.pending = 0
        self.sent = 0
        self.answered = 0
        self.stdin_closed = False

    @staticmethod
    def _reader(proc, q):
        for raw in proc.stdout:
            q.put(raw.decode("utf-8", "replace").rstrip("\r\n"))
        q.put(None)

    def close_stdin(self):
        with self.lock:
            self.stdin_closed = True
            try:
                self.proc.stdin.close()
            except OSError:
                pass
        self._note("---- stdin closed")

    # -- commands --

    def _next_line(self, deadline):
        if self._eof:
            raise ProcessGone("%r has exited" % self)
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            raise NoAnswer("%r gave no answer in time" % self)
        try:
            line = self._q.get(timeout=remaining)
        except queue.Empty:
            raise NoAnswer("%r gave no answer in time" % self) from None
        if line is None:
            self._eof = True
            raise ProcessGone("%r has exited" % self)
        return line

    def _recv(self, deadline):
        """The lines up to and including the next answer line."""
        lines = []
        while True:
            line = self._next_line(deadline)
            lines.append(line)
            if ANSWER_RE.match(line):
                self.pending -= 1
                self.answered += 1
                return lines

    def send(self, text):
        """Writes @text (one or more lines, without the last newline)."""
        if self.proc is None or self.stdin_closed:
            raise NotDelivered("%r has no standard input" % self)
        n = text.count("\n") + 1
        try:
            self.proc.stdin.write((text + "\n").encode())
            self.proc.stdin.flush()
        except (BrokenPipeError, ValueError, OSError):
            raise NotDelivered("%r has exited (stdin broken)" % self) from None
        self.pending += n
        self.sent += n

    def cmd_lines(self, line, timeout=CMD_TIMEOUT):
        """Sends one command; returns every line up to its answer line."""
        with self.lock:
            deadline = time.monotonic() + timeout
            stale = self.pending
            self._note("> " + line)
            self.send(line)
            try:
                for _ in range(stale):
                    dropped = self._recv(deadline)
                    self._note("< (late answer dropped) " + dropped[-1])
                lines = self._recv(deadline)
            except NoAnswer:
                self._note("< (no answer after %.1fs)" % timeout)
                raise NoAnswer("%r: no answer to %r within %.1fs" % (self, line, timeout)) from None
            except ProcessGone:
                self._note("< (process gone)")
                raise ProcessGone("%r exited before answering %r" % (self, line)) from None
            for extra in lines[:-1]:
                self._note("<+ " + extra)
            self._note("< " + lines[-1])
            return lines

    def late_answers(self, timeout):
        """Waits up to @timeout for the answers still owed to commands that
        timed out; returns those that came, oldest first, each as (k, line):
        the answer to the k-th line sent. ProcessGone if the process ended."""
        with self.lock:
            deadline = time.monotonic() + timeout
            got = []
            while self.pending > 0:
                try:
                    line = self._recv(deadline)[-1]
                except NoAnswer:
                    break
                self._note("< (late answer %d) %s" % (self.answered, line))
                got.append((self.answered, line))
            return got

    def cmd(self, line, timeout=CMD_TIMEOUT):
        """Sends one command; returns its answer line."""
        return self.cmd_lines(line, timeout)[-1]

    def cmds(self, lines, timeout=CMD_TIMEOUT):
        """Pipelines @lines (all written at once, as a script piped into the
        ATM would be) and returns their answer lines in order. @timeout
        bounds each answer after the previous one."""
        with self.lock:
            stale = self.pending
            for line in lines:
                self._note("> " + line)
            self.send("\n".join(lines))
            answers = []
            try:
                deadline = time.monotonic() + timeout
                for _ in range(stale):
                    self._recv(deadline)
                for _ in lines:
                    deadline = time.monotonic() + timeout
                    got = self._recv(deadline)[-1]
                    self._note("< " + got)
                    answers.append(got)
            except NoAnswer:
                raise NoAnswer("%r: no answer to %r (command %d of %d) within %.1fs" %
                               (self, lines[len(answers)], len(answers) + 1, len(lines),
                                timeout)) from None
            except ProcessGone:
                raise ProcessGone("%r exited after %d of %d answers" %
                                  (self, len(answers), len(lines))) from None
            return answers

    def status(self, timeout=CMD_TIMEOUT):
        """The parsed status line as a dict, or TestFailure."""
        a = self.cmd("status", timeout)
        m = STATUS_RE.match(a)
        check(m is not None, "%r: status answer does not parse: %r" % (self, a))
        st = {
            "id": int(m.group(1)), "role": m.group(2), "leader": int(m.group(3)),
            "term": int(m.group(4)), "commit": int(m.group(5)), "applied": int(m.group(6)),
        }
        check(st["id"] == self.id, "%r: status says id=%d" % (self, st["id"]))
        return st

    def try_status(self, timeout=3.0):
        """status(), or None when it cannot answer (gone, stopped, slow)."""
        if not self.running() or self.paused or self.stdin_closed:
            return None
        try:
            return self.status(timeout)
        except (NoAnswer, ProcessGone):
            return None

    def balance(self, account, timeout=CMD_TIMEOUT):
        """Cents in @account, read at this ATM; TestFailure on an error."""
        return parse_balance(self.cmd("balance " + account, timeout), account)

class Cluster:
    """N ATMs that know one another: ids 1..N, one data directory each."""

    def __init__(self, ctx, n=3, args=(), hosts=None, ports=None, wraps=None,
                 secret=TEST_SECRET):
        self.ctx = ctx
        self.n = n
        hosts = hosts or ["127.0.0.1"] * n
        ports = ports or [ctx.ports.take(h) for h in hosts]
        self.addrs = {i + 1: "%s:%d" % (hosts[i], ports[i]) for i in range(n)}
        self.peers = ",".join("%d=%s" % (i, a) for i, a in sorted(self.addrs.items()))
        self.secret = secret
        self.args = [
            "--election-timeout-ms", "600", "--heartbeat-ms", "100",
            "--cluster-secret", secret, "--log-level", ctx.opts.log_level,
        ] + list(args)
        self.atms = {}
        for i in range(1, n + 1):
            data = os.path.join(ctx.dir, "atm%d" % i)
            os.makedirs(data, exist_ok=True)
            argv = [ctx.binary, "--id", str(i), "--peers", self.peers, "--data", data] + self.args
            wrap = wraps[i - 1] if wraps else ()
            self.atms[i] = ctx.atm(i, argv, wrap=wrap)
            self.atms[i].data_dir = data

    def __getitem__(self, i):
        return self.atms[i]

    def __iter__(self):
        return iter(self.atms[i] for i in sorted(self.atms))

    def start(self):
        for a in self:
            a.start()
        return self

    def reachable(self):
        """ATMs that can take commands now."""
        return [a for a in self if a.running() and not a.paused and not a.stdin_closed]

    def statuses(self, among=None):
        out = {}
        for a in among if among is not None else self.reachable():
            st = a.try_status()
            if st is not None:
                out[a.id] = st
        return out

    def current_leader(self, among=None, exclude=()):
        """The leader a majority of the network agrees on, or None.

        Among the ATMs asked, one must say role=leader at term T, and at
        least a majority of the whole network (counting the leader) must
        say leader=it at that same term.
        """
        sts = self.statuses(among)
        for i, st in sts.items():
            if st["role"] != "leader" or i in exclude:
                continue
            agree = [j for j, s in sts.items() if s["leader"] == i and s["term"] == st["term"]]
            if len(agree) >= self.n // 2 + 1:
                return i
        return None

    def wait_leader(self, among=None, exclude=(), timeout=30.0):
        """Polls current_leader(); returns its id."""
        return wait_until(lambda: self.current_leader(among, exclude), timeout,
                          "a leader%s" % (" other than %s" % list(exclude) if exclude else ""))

    def wait_caught_up(self, atms=None, timeout=30.0):
        """Waits until every ATM asked has applied everything the leader has
        committed, with the same commit index all round; returns it."""
        atms = atms if atms is not None else self.reachable()

        def caught_up():
            sts = [a.try_status() for a in atms]
            if any(s is None for s in sts):
                return None
            commits = {s["commit"] for s in sts}
            applied = {s["applied"] for s in sts}
            if len(commits) == 1 and applied == commits:
                return sts[0]["applied"]
            return None

        return wait_until(caught_up, timeout, "%s to apply the same index" % atms)

    def read_all(self, accounts, atms=None, timeout=CMD_TIMEOUT):
        """{atm id: {account: cents}} read at each ATM (pipelined)."""
        out = {}
        accounts = sorted(accounts)
        for a in atms if atms is not None else self.reachable():
            answers = a.cmds(["balance " + x for x in accounts], timeout) if accounts else []
            out[a.id] = {x: parse_balance(ans, x) for x, ans in zip(accounts, answers)}
        return out

    def assert_agree(self, expected, atms=None):
        """Every ATM reads the balances in @expected ({account: cents})."""
        got = self.read_all(expected.keys(), atms)
        for i, bal in got.items():
            wrong = {x: (money(bal[x]), money(c)) for x, c in expected.items() if bal[x] != c}
            check(not wrong, "atm%d disagrees (got, expected): %s" % (i, _short(wrong)))
        return got

    def assert_identical(self, accounts, atms=None):
        """Every ATM reads the same balance for each account; returns them."""
        got = self.read_all(accounts, atms)
        ids = sorted(got)
        first = got[ids[0]]
        for i in ids[1:]:
            diff = {x: (money(first[x]), money(got[i][x])) for x in accounts if first[x] != got[i][x]}
            check(not diff, "atm%d and atm%d disagree: %s" % (ids[0], i, _short(diff)))
        return first


SNAPSHOT_RE = re.compile(r"^snapshot-(\d+)-(\d+)-(\d+)$")


def snapshot_files(data_dir):
    """{index: path} of the Raft snapshots under @data_dir (libraft's
    raft_uv names them snapshot-TERM-INDEX-TIMESTAMP)."""
    out = {}
    for root, _, files in os.walk(data_dir):
        for f in files:
            m = SNAPSHOT_RE.match(f)
            if m:
                out[int(m.group(2))] = os.path.join(root, f)
    return out


def compare_snapshots(atms):
    """The ledger snapshot is canonical, so snapshots of the same index must
    be byte-identical on every ATM that holds one. Compares them (run it
    with the ATMs stopped, so no file is half written) and returns how many
    indexes were held by two ATMs or more."""
    held = {}
    for a in atms:
        for idx, path in snapshot_files(a.data_dir).items():
            with open(path, "rb") as f:
                held.setdefault(idx, []).append((a, f.read()))
    common = 0
    for idx, copies in sorted(held.items()):
        if len(copies) < 2:
            continue
        common += 1
        a0, b0 = copies[0]
        for a, b in copies[1:]:
            check(b == b0, "snapshots at index %d differ between %r and %r" % (idx, a0, a))
    return common


def _short(d, n=6):
    items = sorted(d.items())
    s = ", ".join("%s=%s" % kv for kv in items[:n])
    return s + (" ... (%d in all)" % len(items) if len(items) > n else "")


# ---- Runner ----------------------------------------------------------------


class Context:
    """What one test gets: a directory, the binary, ports, and the
    processes it started (all stopped at the end, whatever happens)."""

    def __init__(self, opts, name, ports):
        self.opts = opts
        self.name = name
        self.binary = opts.binary
        self.ports = ports
        self.dir = tempfile.mkdtemp(prefix="itest-%s-" % name)
        self.t0 = time.monotonic()
        self.procs = []
        self.cleanups = []  # Callables run (last first) after the processes stop.
        self.env = dict(os.environ)
        self.env.setdefault("ASAN_OPTIONS", "detect_leaks=1:abort_on_error=0")
        self.env.setdefault("UBSAN_OPTIONS", "print_stacktrace=1:halt_on_error=1")
        self.rng = random.Random(opts.seed ^ zlib.crc32(name.encode()))

    @property
    def atms(self):
        return self.procs

    def _log_path(self, kind, proc_id):
        """kindN.log, or kindN-2.log and so on for a second process with
        the same name (a replacement with a fresh data directory)."""
        base = "%s%d" % (kind, proc_id)
        n = sum(1 for p in self.procs
                if os.path.basename(p.log_path) == base + ".log"
                or os.path.basename(p.log_path).startswith(base + "-"))
        name = base + (".log" if n == 0 else "-%d.log" % (n + 1))
        return os.path.join(self.dir, name)

    def atm(self, atm_id, argv, wrap=()):
        a = Atm(self, atm_id, argv, self._log_path("atm", atm_id), wrap)
        self.procs.append(a)
        return a

    def daemon(self, kind, proc_id, argv, wrap=()):
        """A process without standard-input commands, e.g. a broker."""
        d = Daemon(self, kind, proc_id, argv, self._log_path(kind, proc_id), wrap)
        self.procs.append(d)
        return d

    def cluster(self, n=3, **kw):
        return Cluster(self, n, **kw)

    def stop_all(self):
        """SIGTERMs every process still running; returns problems found
        (exit status of processes that should have exited cleanly,
        sanitizer reports)."""
        problems = []
        for a in self.procs:
            if a.proc is None:
                continue
            try:
                expected = a.expect_clean_exit
                was_running = a.running()
                rc = a.terminate()
                if expected and not was_running:
                    problems.append("%r exited on its own with status %s" % (a, rc))
                elif expected and rc != 0:
                    problems.append("%r exited with status %s after SIGTERM" % (a, rc))
            except TestFailure as e:
                problems.append(str(e))
            except Exception as e:  # Never leave a process behind.
                problems.append("%r: %s" % (a, e))
                try:
                    a.proc.kill()
                except Exception:
                    pass
        for a in self.procs:
            for line in a.log_tail(100000):
                if SANITIZER_RE.search(line):
                    problems.append("%r: sanitizer report: %s" % (a, line.strip()))
                    break
        for fn in reversed(self.cleanups):
            try:
                fn()
            except Exception as e:
                problems.append("cleanup: %s" % e)
        return problems

    def dump(self, out):
        out.write("    logs kept in %s\n" % self.dir)
        for a in self.procs:
            out.write("    ---- %s (tail)\n" % a.log_path)
            for line in a.log_tail(25):
                out.write("    | %s\n" % line)
            try:
                with open(a.transcript_path) as f:
                    tr = f.read().splitlines()[-15:]
            except OSError:
                tr = []
            out.write("    ---- %s (tail)\n" % a.transcript_path)
            for line in tr:
                out.write("    | %s\n" % line)


def run_suite(suite, tests, requires=None, setup=None, teardown=None, binary="atm",
              ports=(23000, 23999)):
    """Runs the test functions in order and exits with the result.

    @requires() returns None or a reason to skip every test; @setup(opts)
    runs once before the first test that runs, @teardown() once at the end.
    @binary names the program under test in the build directory (None for
    a suite of pure checks that runs none), @ports the range the suite's
    processes listen in. A missing binary fails every test: a suite that
    skipped would let a broken build pass.
    """
    assert re.match(r"^[a-z_]+$", suite)
    ap = argparse.ArgumentParser(description="%s integration tests" % suite)
    ap.add_argument("--build", default="build/asan", help="build directory (default build/asan)")
    ap.add_argument("-k", dest="only", default=None, help="run only tests whose name contains this")
    ap.add_argument("--keep", action="store_true", help="keep every test's directory")
    ap.add_argument("--seed", type=int, default=None, help="random seed (default: time)")
    ap.add_argument("--log-level", default=os.environ.get("ITEST_LOG_LEVEL", "info"),
                    help="the processes' --log-level (default $ITEST_LOG_LEVEL, else info)")
    ap.add_argument("--ports", default=None, metavar="LO-HI",
                    help="listen in this port range (default %d-%d)" % ports)
    opts = ap.parse_args()
    if opts.ports is not None:
        m = re.match(r"^(\d+)-(\d+)$", opts.ports)
        if m is None or not 1024 <= int(m.group(1)) < int(m.group(2)) <= 65535:
            ap.error("--ports wants LO-HI, e.g. 28000-28999")
        ports = (int(m.group(1)), int(m.group(2)))
    opts.binary = None if binary is None else os.path.abspath(os.path.join(opts.build, binary))
    if opts.seed is None:
        opts.seed = int(time.time()) & 0xFFFFFF

    def on_signal(signum, frame):
        raise KeyboardInterrupt("signal %d" % signum)

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGHUP, on_signal)

    chosen = [t for t in tests if opts.only is None or opts.only in t.__name__]
    reason = missing = None
    if opts.binary is not None and not os.access(opts.binary, os.X_OK):
        missing = "no %s binary at %s (build it: make -j2 BUILD=%s SAN=1 test-bins, or " \
            "give --build)" % (binary, opts.binary, opts.build)
    elif requires is not None:
        reason = requires()
    print("%s: seed %d" % (suite, opts.seed), flush=True)
    passed = failed = skipped = 0
    ports = PortPool(*ports)
    set_up = False
    try:
        for t in chosen:
            name = t.__name__[5:] if t.__name__.startswith("test_") else t.__name__
            if missing is not None:
                print("FAIL %s: %s" % (name, missing), flush=True)
                failed += 1
                continue
            if reason is not None:
                print("SKIP %s: %s" % (name, reason), flush=True)
                skipped += 1
                continue
            if not set_up and setup is not None:
                setup(opts)
                set_up = True
            ctx = Context(opts, name, ports)
            t0 = time.monotonic()
            verdict, why = "PASS", None
            try:
                t(ctx)
            except Skip as e:
                verdict, why = "SKIP", str(e)
            except TestFailure as e:
                verdict, why = "FAIL", str(e)
            except KeyboardInterrupt:
                ctx.stop_all()
                raise
            except Exception as e:
                tb = traceback.extract_tb(e.__traceback__)[-1]
                verdict, why = "FAIL", "%s: %s (at %s:%d)" % (
                    type(e).__name__, e, os.path.basename(tb.filename), tb.lineno)
            problems = ctx.stop_all()
            if problems and verdict != "FAIL":
                verdict, why = "FAIL", "; ".join(problems)
            elif problems:
                why += "; also: " + "; ".join(problems)
            secs = time.monotonic() - t0
            if verdict == "PASS":
                passed += 1
                print("PASS %s (%.1fs)" % (name, secs), flush=True)
            elif verdict == "SKIP":
                skipped += 1
                print("SKIP %s: %s" % (name, why), flush=True)
            else:
                failed += 1
                print("FAIL %s: %s" % (name, " ".join(why.split())), flush=True)
                ctx.dump(sys.stdout)
            if verdict != "FAIL" and not opts.keep:
                shutil.rmtree(ctx.dir, ignore_errors=True)
    except KeyboardInterrupt:
        print("%s: interrupted" % suite, flush=True)
        failed += 1
    finally:
        _kill_leftovers()
        if set_up and teardown is not None:
            teardown()
    print("%s: %d passed, %d failed, %d skipped" % (suite, passed, failed, skipped), flush=True)
    sys.exit(1 if failed else 0)

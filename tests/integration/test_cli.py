"""Integration tests of raftq, the command-line client, and raftq dev.

One test starts `raftq dev` (three managers, four brokers, ports from a
block of this suite's range, a fresh data directory), reads what it
prints, runs the printed curl examples, and drives every CLI command
against it: topics, produce from arguments and standard input (with the
progress line on a terminal), consume as a consumer and from an offset,
--follow ended by --max and by SIGINT, cluster status, broker list, drain
and remove of the fourth broker, and a leadership move; a second raftq dev
on the same data is refused. The cluster file holds a random secret and
admin token, mode 0600; the token is printed, and neither is on any
child's command line. Then SIGINT: every child is gone and raftq dev
exits 0. Started again on the same data (the cluster file's mode widened
meanwhile, and --token given), the secret and token are reused, the mode
is put back to 0600, the topics and messages are there; a broker killed
behind its back is reported in one line and raftq dev exits non-zero with
no child left. Another drives `raftq bench` for two cases against a
small raftq dev and checks its JSON lines and its table (no figure is
judged). The others need no cluster: exit
codes for bad usage (2), unreachable managers (3), --help on every command;
and a port in use refused before anything starts.

Needs no root. Run: python3 tests/integration/test_cli.py [--build DIR]
[-k NAME] [--ports LO-HI].
"""

import json
import os
import pty
import queue
import re
import shlex
import signal
import socket
import subprocess
import sys
import threading
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from harness import SANITIZER_RE, TestFailure, check, run_suite, wait_until  # noqa: E402

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
SPAN = 60  # Ports a raftq dev cluster uses from its base port.
READY_TIMEOUT = 120.0  # raftq dev under ASan on two shared cores.
CLI_TIMEOUT = 60.0

MANAGERS_RE = re.compile(r"^\s+managers\s+(https?://\S+(?: https?://\S+)*)\s*$")
STATUS_PAGE_RE = re.compile(r"^\s+status page\s+(https?://\S+/ui)\s*$")
CURL_RE = re.compile(r"^\s+(curl .*)$")
TOKEN_RE = re.compile(r"^\s+admin token\s+(\S+)\s")


# ---- Ports and processes -----------------------------------------------------


def port_free(port):
    s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        s.bind(("127.0.0.1", port))
        return True
    except OSError:
        return False
    finally:
        s.close()


def port_block(ctx):
    """A base port whose SPAN ports are all free, taken from the pool."""
    pool = ctx.ports
    with pool.lock:
        n = (pool.hi - pool.lo + 1) // SPAN
        first = (os.getpid() * 7) % n
        for k in range(n):
            base = pool.lo + ((first + k) % n) * SPAN
            ports = range(base, base + SPAN)
            if all(p not in pool.given and port_free(p) for p in ports):
                pool.given.update(ports)
                return base
    raise TestFailure("no block of %d free ports in %d-%d" % (SPAN, pool.lo, pool.hi))


def children_of(data_dir):
    """Pids of processes whose command line names @data_dir/dev (the
    managers and brokers of that raftq dev)."""
    want = (os.path.join(data_dir, "dev") + "/").encode()
    pids = []
    for name in os.listdir("/proc"):
        if not name.isdigit():
            continue
        try:
            with open("/proc/%s/cmdline" % name, "rb") as f:
                args = f.read().split(b"\0")
        except OSError:
            continue
        if args and not args[0].endswith(b"raftq") and any(a.startswith(want) for a in args):
            pids.append(int(name))
    return pids


def child_pid(data_dir, role, i):
    want = os.path.join(data_dir, "dev", "%s-%d" % (role, i)).encode()
    for pid in children_of(data_dir):
        try:
            with open("/proc/%d/cmdline" % pid, "rb") as f:
                if want in f.read().split(b"\0"):
                    return pid
        except OSError:
            pass
    return None


def check_child_logs(data_dir):
    """No sanitizer report in any manager or broker log."""
    root = os.path.join(data_dir, "dev")
    for name in sorted(os.listdir(root)):
        if name.endswith(".log"):
            with open(os.path.join(root, name), "rb") as f:
                for line in f.read().decode("utf-8", "replace").splitlines():
                    check(not SANITIZER_RE.search(line),
                          "%s: sanitizer report: %s" % (name, line.strip()))


class Dev:
    """One `raftq dev` run: the daemon, its data directory, and what it
    printed."""

    def __init__(self, ctx, data, base, args=()):
        self.ctx = ctx
        self.data = data
        self.base = base
        argv = [ctx.binary, "dev", "--base-port", str(base), "--data", data] + list(args)
        self.proc = ctx.daemon("raftq", len(ctx.procs) + 1, argv)
        self.urls = []
        self.lines = []

    def start(self):
        self.proc.start()
        self.lines = wait_until(self._banner, READY_TIMEOUT, "raftq dev to print it is ready",
                                interval=0.2)
        for line in self.lines:
            m = MANAGERS_RE.match(line)
            if m:
                self.urls = m.group(1).split()
        check(len(self.urls) == 3, "expected 3 manager URLs, got %r" % self.lines)
        return self

    def _banner(self):
        check(self.proc.running(), "raftq dev exited: %s" % self.proc.log_tail(5))
        lines = self.proc.log_tail(200)
        for i, line in enumerate(lines):
            if line.startswith("Ctrl-C stops the cluster"):
                start = max(k for k in range(i + 1) if lines[k].startswith("raftq dev: ready"))
                return lines[start:i + 1]
        return None

    def stop(self, sig=signal.SIGINT, timeout=30.0):
        """Sends @sig and returns the exit status."""
        p = self.proc.proc
        self.proc.expect_clean_exit = False
        p.send_signal(sig)
        try:
            return self.proc._reap(timeout)
        except subprocess.TimeoutExpired:
            raise TestFailure("raftq dev did not exit within %.0fs of %s" % (timeout, sig))


# ---- Running the client ------------------------------------------------------


class Cli:
    """Runs build/raftq with RAFTQ_MANAGERS set; each run is noted in
    cli.transcript in the test's directory."""

    def __init__(self, ctx, urls):
        self.ctx = ctx
        self.env = dict(ctx.env)
        self.env.pop("RAFTQ_ADMIN_TOKEN", None)
        self.env["RAFTQ_MANAGERS"] = ",".join(urls)
        self.transcript = os.path.join(ctx.dir, "cli.transcript")

    def _note(self, args, rc, out, err):
        with open(self.transcript, "a") as f:
            f.write("$ raftq %s\n-> %s\n" % (" ".join(args), rc))
            for line in (out or "").splitlines()[:20]:
                f.write("  | %s\n" % line)
            for line in (err or "").splitlines()[:20]:
                f.write("  ! %s\n" % line)

    def run(self, *args, stdin=None, timeout=CLI_TIMEOUT, env=None):
        """(exit status, stdout, stderr)."""
        p = subprocess.run([self.ctx.binary] + list(args), input=stdin, capture_output=True,
                           env=env or self.env, timeout=timeout)
        out = p.stdout.decode("utf-8", "replace")
        err = p.stderr.decode("utf-8", "replace")
        self._note(args, p.returncode, out, err)
        check(not SANITIZER_RE.search(err), "raftq %s: sanitizer report: %s" % (args, err))
        return p.returncode, out, err

    def ok(self, *args, **kw):
        rc, out, err = self.run(*args, **kw)
        check(rc == 0, "raftq %s: exit %d, stderr %r" % (" ".join(args), rc, err))
        return out

    def json(self, *args, **kw):
        return json.loads(self.ok("--json", *args, **kw))

    def fails(self, code, *args, says=None, **kw):
        rc, out, err = self.run(*args, **kw)
        check(rc == code, "raftq %s: expected exit %d, got %d (stderr %r)" %
              (" ".join(args), code, rc, err))
        if says is not None:
            check(says in err, "raftq %s: stderr %r does not say %r" % (" ".join(args), err, says))
        return err

    def popen(self, *args, stdout=subprocess.PIPE):
        return subprocess.Popen([self.ctx.binary] + list(args), stdout=stdout,
                                stderr=subprocess.PIPE, env=self.env)


def line_reader(stream):
    """A queue that gets each line of @stream, then None."""
    q = queue.Queue()

    def pump():
        for raw in stream:
            q.put(raw.decode("utf-8", "replace").rstrip("\n"))
        q.put(None)

    threading.Thread(target=pump, daemon=True).start()
    return q


def read_lines(q, n, timeout, what):
    lines = []
    deadline = time.monotonic() + timeout
    while len(lines) < n:
        left = deadline - time.monotonic()
        check(left > 0, "timed out waiting for %s (got %r)" % (what, lines))
        try:
            line = q.get(timeout=left)
        except queue.Empty:
            continue
        check(line is not None, "%s: output ended after %r" % (what, lines))
        lines.append(line)
    return lines


def offsets_of(out):
    """[(partition, offset)] from "partition P offset O" lines."""
    got = []
    for line in out.splitlines():
        m = re.match(r"^partition (\d+) offset (\d+)$", line)
        check(m is not None, "not a 'partition P offset O' line: %r" % line)
        got.append((int(m.group(1)), int(m.group(2))))
    return got


# ---- The tests -----------------------------------------------------------------


def check_banner(dev):
    """The printed URLs and curl examples work as printed."""
    text = "\n".join(dev.lines)
    ui = [STATUS_PAGE_RE.match(line) for line in dev.lines]
    ui = [m.group(1) for m in ui if m]
    check(ui == [dev.urls[0] + "/ui"], "status page line: %r" % text)
    check("export RAFTQ_MANAGERS=" + ",".join(dev.urls) in text,
          "no RAFTQ_MANAGERS line: %r" % text)
    curls = [CURL_RE.match(line).group(1) for line in dev.lines if CURL_RE.match(line)]
    check(len(curls) == 3, "expected three curl examples, got %r" % curls)
    answers = []
    for c in curls:
        argv = shlex.split(c)
        p = subprocess.run(argv, capture_output=True, timeout=30)
        check(p.returncode == 0, "%s: exit %d %r" % (c, p.returncode, p.stderr))
        try:
            body = json.loads(p.stdout)
        except ValueError:
            raise TestFailure("%s: not JSON: %r" % (c, p.stdout))
        check(body.get("status") == "success", "%s: %r" % (c, body))
        answers.append(body)
    values = [r["value"] for r in answers[2]["records"]]
    check(values == ["hello", "world"], "the read example read %r" % values)


def cluster_file(data):
    """(mode, content) of raftq dev's cluster file."""
    path = os.path.join(data, "dev", "cluster.json")
    with open(path) as f:
        return os.stat(path).st_mode & 0o777, json.load(f)


def check_secrets(dev, data):
    """The cluster file is private and holds a fresh secret and token; the
    banner prints the token; no child has either on its command line.
    Returns the cluster file's content."""
    mode, rec = cluster_file(data)
    check(mode == 0o600, "cluster.json has mode %o, not 600" % mode)
    secret, token = rec.get("cluster_secret"), rec.get("admin_token")
    check(isinstance(secret, str) and len(secret) >= 64 and int(secret, 16) > 0,
          "cluster_secret: %r" % secret)
    check(isinstance(token, str) and len(token) >= 64 and token != secret,
          "admin_token: %r" % token)
    printed = [TOKEN_RE.match(line).group(1) for line in dev.lines if TOKEN_RE.match(line)]
    check(printed == [token], "admin token line: %r" % dev.lines)
    check("export RAFTQ_ADMIN_TOKEN=" + token in "\n".join(dev.lines),
          "no RAFTQ_ADMIN_TOKEN line: %r" % dev.lines)
    for pid in children_of(data):
        with open("/proc/%d/cmdline" % pid, "rb") as f:
            args = f.read().decode()
        check(secret not in args and token not in args,
              "a secret on the command line of %r" % args.replace("\0", " "))
        if "manager" in args.split("\0")[0]:
            check("--admin-open" in args.split("\0"), "manager without --admin-open")
    return rec


def drive_topics(cli):
    out = cli.ok("topic", "create", "orders", "--partitions", "2")
    check("created" in out, "topic create said %r" % out)
    cli.fails(1, "topic", "create", "orders", says="orders")  # 409: exists
    cli.fails(1, "topic", "create", "bad/name")  # 400: a bad name
    check(set(cli.ok("topic", "list").split()) == {"demo", "orders"}, "topic list")
    check(set(cli.json("topic", "list")["topics"]) == {"demo", "orders"}, "topic list --json")
    desc = cli.ok("topic", "describe", "orders")
    rows = desc.splitlines()
    check(rows[0] == "topic orders: 2 partitions" and rows[1].startswith("PARTITION")
          and len(rows) == 4, "topic describe: %r" % desc)
    d = cli.json("topic", "describe", "orders")
    check(d["topic"] == "orders" and len(d["partitions"]) == 2, "describe --json: %r" % d)
    cli.fails(1, "topic", "describe", "nope", says="no topic 'nope'")


def drive_produce_consume(ctx, cli):
    # Arguments: one "partition P offset O" line each, in order.
    placed = offsets_of(cli.ok("produce", "orders", "a", "b", "c"))
    check(len(placed) == 3, "produce printed %r" % placed)
    keyed = offsets_of(cli.ok("produce", "orders", "x", "--key", "k", "--partition", "1"))
    check(len(keyed) == 1 and keyed[0][0] == 1, "--partition 1 went to %r" % keyed)
    for value, (p, o) in zip(["a", "b", "c", "x"], placed + keyed):
        got = cli.ok("consume", "orders", "--offset", str(o), "--partition", str(p),
                     "--max", "1")
        check(got == value + "\n", "offset %d of partition %d holds %r, not %r" % (o, p, got, value))
    # --format: a template, and JSON lines with the key and timestamp.
    p, o = keyed[0]
    got = cli.ok("consume", "orders", "--offset", str(o), "--partition", "1", "--max", "1",
                 "--format", "%p:%o %k=%v\\n")
    check(got == "1:%d k=x\n" % o, "--format template: %r" % got)
    got = cli.ok("consume", "orders", "--offset", str(o), "--partition", "1", "--max", "1",
                 "--format", "json")
    rec = json.loads(got)
    check(rec["partition_id"] == 1 and rec["offset"] == o and rec["key"] == "k" and
          rec["value"] == "x" and isinstance(rec["timestamp_ms"], int) and
          abs(rec["timestamp_ms"] / 1000.0 - time.time()) < 600, "--format json: %r" % got)
    cli.fails(2, "consume", "orders", "--format", "%z", says="'%z'")
    cli.fails(1, "produce", "nope", "v", says="no topic 'nope'")
    check("nope" not in cli.ok("topic", "list").split(), "a produce created the topic")

    # Standard input: 2500 lines in batches of 1000; no progress line
    # when stdout is not a terminal.
    cli.ok("topic", "create", "bulk", "--partitions", "3")
    lines = ["line-%04d" % i for i in range(2500)]
    rc, out, err = cli.run("produce", "bulk", "--batch", "1000",
                           stdin=("\n".join(lines) + "\n").encode())
    check(rc == 0 and out == "produced 2500 records to topic 'bulk'\n",
          "stdin produce: %d %r %r" % (rc, out, err))
    check("\r" not in err, "a progress line without a terminal: %r" % err)
    got = []
    for p in range(3):
        got += cli.ok("consume", "bulk", "--offset", "0", "--partition", str(p)).split()
    check(sorted(got) == lines, "read back %d of 2500 lines" % len(set(got) & set(lines)))

    # A terminal on stdout: the progress line on stderr.
    master, slave = pty.openpty()
    p = subprocess.Popen([ctx.binary, "produce", "bulk", "--batch", "100"],
                         stdin=subprocess.PIPE, stdout=slave, stderr=subprocess.PIPE,
                         env=cli.env)
    os.close(slave)
    _, err = p.communicate(("\n".join(lines[:500]) + "\n").encode(), timeout=CLI_TIMEOUT)
    os.close(master)
    err = err.decode()
    check(p.returncode == 0, "produce on a terminal: exit %d %r" % (p.returncode, err))
    check(re.search(r"^\rproduced \d+ records \(\d+/s\)", err) and
          re.search(r"\rproduced 500 records \(\d+/s\)\n$", err),
          "no progress line on a terminal: %r" % err)

    # As a consumer: a new one is registered and named on stderr; every
    # message once.
    rc, out, err = cli.run("consume", "orders")
    m = re.search(r"consumer (\d+)", err)
    check(rc == 0 and m is not None, "consume: %d %r" % (rc, err))
    consumer = m.group(1)
    check(sorted(out.split()) == ["a", "b", "c", "x"], "consumer read %r" % out)
    check(cli.ok("consume", "orders", "--consumer", consumer) == "", "read twice")
    cli.ok("produce", "orders", "y")
    got = cli.ok("consume", "orders", "--consumer", consumer, "--max", "1", "--format", "json")
    rec = json.loads(got)
    check(rec["value"] == "y" and rec["key"] is None and rec["timestamp_ms"] is None and
          isinstance(rec["partition_id"], int) and isinstance(rec["offset"], int),
          "the next message, as JSON: %r" % got)
    cli.fails(1, "consume", "nope", says="no topic 'nope'")
    cli.fails(1, "consume", "orders", "--consumer", "999999", says="999999")

    # --follow ends at --max: messages produced while it waits.
    f = cli.popen("consume", "orders", "--consumer", consumer, "--follow", "--max", "2")
    cli.ok("produce", "orders", "f1", "f2")
    try:
        out, err = f.communicate(timeout=30)
    except subprocess.TimeoutExpired:
        f.kill()
        f.communicate()
        raise TestFailure("consume --follow --max 2 did not end")
    check(f.returncode == 0 and sorted(out.decode().split()) == ["f1", "f2"],
          "follow: %d %r %r" % (f.returncode, out, err))

    # --follow from an offset ends with SIGINT, exit 0.
    f = cli.popen("consume", "orders", "--offset", "0", "--partition", "1", "--follow")
    q = line_reader(f.stdout)
    first = read_lines(q, 1, 20, "the first message of partition 1")
    cli.ok("produce", "orders", "late", "--partition", "1")
    more = []
    while "late" not in more:
        more += read_lines(q, 1, 20, "'late' while following")
    f.send_signal(signal.SIGINT)
    try:
        f.wait(timeout=10)
    except subprocess.TimeoutExpired:
        f.kill()
        raise TestFailure("consume --follow ignored SIGINT")
    err = f.stderr.read().decode()
    check(f.returncode == 0, "follow after SIGINT: exit %d %r" % (f.returncode, err))
    check(not SANITIZER_RE.search(err), "sanitizer report: %s" % err)
    check(first, "nothing read")


def drive_cluster(cli):
    st = cli.ok("cluster", "status")
    check(re.search(r"^leader: manager [123] \(term \d+\)$", st, re.M), "no leader line: %r" % st)
    managers = re.findall(r"^ +([123])  (leader|follower) .* yes$", st, re.M)
    check(len(managers) == 3 and sum(r == "leader" for _, r in managers) == 1,
          "cluster status managers: %r" % st)
    check(len(re.findall(r"^ +[1-4]  alive ", st, re.M)) == 4, "cluster status brokers: %r" % st)
    j = cli.json("cluster", "status")
    check(len(j["managers"]["managers"]) == 3 and len(j["brokers"]["brokers"]) == 4
          and all(r["ready"] for r in j["reports"]), "cluster status --json: %r" % j)

    bl = cli.ok("broker", "list")
    check(bl.startswith("ID  STATE") and len(re.findall(r"^ +[1-4]  alive ", bl, re.M)) == 4,
          "broker list: %r" % bl)

    # Move partition 0's leadership to a replica that does not lead it.
    def moved():
        part = cli.json("topic", "describe", "orders")["partitions"][0]
        if part["leader"] is None:
            return None
        to = [b for b in part["replicas"] if b != part["leader"]][0]
        rc, out, err = cli.run("partition", "move-leader", "orders", "0", str(to))
        check(rc in (0, 3), "move-leader: exit %d %r" % (rc, err))
        return rc == 0 and ("moved" in out or "already" in out)
    wait_until(moved, 30, "a leadership move")
    cli.fails(1, "partition", "move-leader", "orders", "0", "77", says="no replica")
    cli.fails(1, "partition", "move-leader", "orders", "9", "1", says="no partition 9")

    # Drain, then remove, the fourth broker.
    check("draining" in cli.ok("broker", "drain", "4"), "drain")
    states = {b["id"]: b["state"] for b in cli.json("broker", "list")["brokers"]}
    check(states[4] == "draining", "after drain: %r" % states)
    # Removing a broker that still holds replicas is accepted (202) and
    # moves them off first; it becomes removed once it holds none.
    out = cli.ok("broker", "remove", "4")
    check("removed" in out or "removing" in out, "remove: %r" % out)

    def removed():
        states = {b["id"]: b["state"] for b in cli.json("broker", "list")["brokers"]}
        return states == {1: "alive", 2: "alive", 3: "alive", 4: "removed"}
    wait_until(removed, 60, "broker 4 to be removed")
    cli.fails(1, "broker", "drain", "99", says="no broker 99")

    # Deleting a topic.
    check("deleted" in cli.ok("topic", "delete", "bulk"), "topic delete")
    check("bulk" not in cli.ok("topic", "list").split(), "bulk still listed")
    cli.fails(1, "topic", "delete", "bulk", says="no topic 'bulk'")


def drain_lines(q, into, until, timeout, what):
    """Appends @q's lines to @into until @until(into) holds."""
    deadline = time.monotonic() + timeout
    while not until(into):
        left = deadline - time.monotonic()
        check(left > 0, "timed out waiting for %s (got %d lines)" % (what, len(into)))
        try:
            line = q.get(timeout=min(left, 0.5))
        except queue.Empty:
            continue
        if line is not None:
            into.append(line)


def drive_groups(ctx, cli):
    """Two `consume --group` members share a topic; one is killed, the
    other takes its partitions once its session expires and prints what
    it had not committed; the group commands list, describe, reset and
    delete."""
    cli.ok("topic", "create", "jobs", "--partitions", "4")
    first = ["job-%02d" % i for i in range(40)]
    members = [cli.popen("consume", "jobs", "--group", "workers", "--follow") for _ in range(2)]
    outs = [line_reader(m.stdout) for m in members]
    errs = [line_reader(m.stderr) for m in members]
    got = [[], []]

    def shared():
        d = cli.json("group", "describe", "workers")
        return sorted(len(m["partitions"]) for m in d["members"]) == [2, 2]
    wait_until(shared, 30, "two members to share the topic 2/2")
    cli.ok("produce", "jobs", *first)
    deadline = time.monotonic() + 30
    while sum(map(len, got)) < 40:
        check(time.monotonic() < deadline, "the first 40 records: got %r" % got)
        for k in (0, 1):
            try:
                line = outs[k].get(timeout=0.05)
            except queue.Empty:
                continue
            if line is not None:
                got[k].append(line)
    check(sorted(got[0] + got[1]) == first, "the two members printed %r" % got)
    check(got[0] and got[1], "one member printed everything: %r" % got)
    listed = cli.ok("group", "list").splitlines()
    check(re.match(r"^workers\s+jobs\s+2\s+2$", listed[1]), "group list %r" % listed)

    # One killed: after its session (10 s) the other owns every partition
    # and prints the rest, and anything the dead one printed but did not
    # commit, again.
    members[1].kill()
    members[1].wait()
    cli.ok("produce", "jobs", *["late-%02d" % i for i in range(20)])
    drain_lines(outs[0], got[0], lambda g: sum(v.startswith("late-") for v in g) >= 20, 40,
                "the survivor to print every late record")
    d = cli.json("group", "describe", "workers")
    check(len(d["members"]) == 1 and len(d["members"][0]["partitions"]) == 4, "after: %r" % d)
    text = cli.ok("group", "describe", "workers")
    check("generation" in text and "LAG" in text, "describe %r" % text)

    # Ctrl-C: the member leaves the group and exits 0.
    members[0].send_signal(signal.SIGINT)
    rc = members[0].wait(timeout=30)
    err = []
    drain_lines(errs[0], err, lambda e: any("left group workers" in x for x in e), 10,
                "the member to say it left")
    check(rc == 0, "consume --group exited %d after Ctrl-C" % rc)
    check(cli.json("group", "describe", "workers")["members"] == [], "members after Ctrl-C")

    # Offsets back to the start: a new member prints every record again.
    cli.ok("group", "reset-offsets", "workers", "--to", "earliest")
    again = cli.ok("consume", "jobs", "--group", "workers").split()
    check(sorted(again) == sorted(first + ["late-%02d" % i for i in range(20)]),
          "after reset-offsets: %d records" % len(again))
    cli.ok("group", "reset-offsets", "workers", "--to", "0=1")
    check(cli.ok("consume", "jobs", "--group", "workers", "--max", "100").split() != [],
          "partition 0 from offset 1")
    cli.fails(2, "group", "reset-offsets", "workers", says="--to")
    cli.fails(2, "group", "reset-offsets", "workers", "--to", "x=1", says="PARTITION=OFFSET")
    cli.fails(2, "consume", "jobs", "--group", "workers", "--consumer", "1", says="--group")
    check(cli.ok("group", "delete", "workers").strip() == "deleted group workers", "delete")
    cli.fails(1, "group", "describe", "workers", says="no group workers")
    cli.ok("topic", "delete", "jobs")


def drive_consumers(ctx, cli):
    """consumer list, describe, offsets and reset, and consume --from: where a
    reader starts, by offset, end or time."""
    cli.ok("topic", "create", "stamps", "--partitions", "2")
    cli.ok("produce", "stamps", "e0", "e1", "--partition", "0")
    cli.ok("produce", "stamps", "o0", "--partition", "1")
    # The time between the two lots: just after the last of the first lot
    # was stamped, by the records' own stamps (the leaders' clocks, this
    # machine's), and passed before the second lot is produced.
    stamps = [json.loads(cli.ok("consume", "stamps", "--partition", p, "--offset", o,
                                "--format", "json"))["timestamp_ms"]
              for p, o in (("0", "1"), ("1", "0"))]
    cut = max(stamps) + 1
    wait_until(lambda: time.time() * 1000 > cut + 20, 5, "the clock to pass the cut")
    cli.ok("produce", "stamps", "l0", "--partition", "0")
    cli.ok("produce", "stamps", "l1", "--partition", "1")

    # A partition read from a position, no consumer moved.
    got = cli.ok("consume", "stamps", "--partition", "0", "--from", "earliest").split()
    check(got == ["e0", "e1", "l0"], "--from earliest: %r" % got)
    check(cli.ok("consume", "stamps", "--partition", "0", "--from", "latest") == "",
          "--from latest printed what was there")
    got = cli.ok("consume", "stamps", "--partition", "0", "--from", "@%d" % cut).split()
    check(got == ["l0"], "--from @%d: %r" % (cut, got))
    utc = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(cut // 1000)) + \
        ".%03dZ" % (cut % 1000)
    got = cli.ok("consume", "stamps", "--partition", "1", "--from", utc).split()
    check(got == ["l1"], "--from %s: %r" % (utc, got))
    got = cli.ok("consume", "stamps", "--partition", "1", "--from", "-1h").split()
    check(got == ["o0", "l1"], "--from -1h: %r" % got)

    # A new consumer started at a time reads what came after it, everywhere.
    rc, out, err = cli.run("consume", "stamps", "--from", str(cut))
    m = re.search(r"consumer (\d+)", err)
    check(rc == 0 and m is not None and sorted(out.split()) == ["l0", "l1"],
          "consume --from %d: %d %r %r" % (cut, rc, out, err))
    late = int(m.group(1))
    rc, out, err = cli.run("consume", "stamps", "--max", "1")
    early = int(re.search(r"consumer (\d+)", err).group(1))
    check(rc == 0 and len(out.split()) == 1, "one message as a new consumer: %r" % out)

    # The list: both, newest first, with their lag.
    rows = cli.ok("consumer", "list", "--topic", "stamps").splitlines()
    check(re.match(r"^CONSUMER\s+TOPIC\s+PARTITION\s+LAG$", rows[0]) and len(rows) == 3,
          "consumer list: %r" % rows)
    check(re.match(r"^\s*%d\s+stamps\s+all\s+4$" % early, rows[1]) and
          re.match(r"^\s*%d\s+stamps\s+all\s+0$" % late, rows[2]),
          "consumer list rows: %r" % rows)
    listed = cli.json("consumer", "list")["consumers"]
    check({c["consumer_id"] for c in listed} >= {early, late}, "--json list: %r" % listed)
    text = cli.ok("consumer", "describe", str(early))
    check(text.startswith("consumer %d: topic stamps, every partition, lag 4\n" % early),
          "describe: %r" % text)
    offs = cli.json("consumer", "offsets", str(early))
    check(offs["topic"] == "stamps" and
          sorted(o["offset"] + o["lag"] for o in offs["offsets"]) == [2, 3],
          "offsets --json: %r" % offs)

    # Reset: back to the start of partition 1, past the end everywhere, to
    # the cut, to an offset.
    out = cli.ok("consumer", "reset", str(late), "--to", "earliest", "--partition", "1")
    check(out == "consumer %d partition 1: offset 2 -> 0\n" % late, "reset earliest: %r" % out)
    got = cli.ok("consume", "stamps", "--consumer", str(late)).split()
    check(got == ["o0", "l1"], "after reset earliest: %r" % got)
    cli.ok("consumer", "reset", str(early), "--to", "latest")
    check(cli.ok("consume", "stamps", "--consumer", str(early)) == "", "after reset latest")
    cli.ok("consumer", "reset", str(early), "--to", "@%d" % cut)
    got = sorted(cli.ok("consume", "stamps", "--consumer", str(early)).split())
    check(got == ["l0", "l1"], "after reset to the cut: %r" % got)
    cli.ok("consumer", "reset", str(early), "--to", "1", "--partition", "0")
    got = cli.ok("consume", "stamps", "--consumer", str(early)).split()
    check(got == ["e1", "l0"], "after reset to offset 1: %r" % got)

    cli.fails(2, "consumer", "reset", str(early), says="--to")
    cli.fails(2, "consumer", "reset", str(early), "--to", "yesterday", says="--to")
    cli.fails(2, "consume", "stamps", "--from", "soon", says="--from")
    cli.fails(2, "consume", "stamps", "--from", "earliest", "--offset", "0",
              "--partition", "0", says="--from excludes --offset")
    cli.fails(1, "consumer", "offsets", "999999", says="no consumer 999999")
    cli.fails(1, "consumer", "list", "--topic", "nope", says="no topic 'nope'")
    cli.fails(2, "consumer", "describe", "x", says="consumer id")
    cli.ok("topic", "delete", "stamps")


def test_dev_and_every_command(ctx):
    base = port_block(ctx)
    data = os.path.join(ctx.dir, "data")
    t0 = time.monotonic()
    dev = Dev(ctx, data, base, ["--brokers", "4"]).start()
    print("    raftq dev ready in %.1fs" % (time.monotonic() - t0), flush=True)
    check(dev.urls == ["http://127.0.0.1:%d" % (base + i) for i in range(3)], "URLs %r" % dev.urls)
    check(len(children_of(data)) == 7, "expected 7 children, found %r" % children_of(data))
    check_banner(dev)
    rec = check_secrets(dev, data)
    cli = Cli(ctx, dev.urls)
    cli.env["RAFTQ_ADMIN_TOKEN"] = rec["admin_token"]

    # A second raftq dev on the same data is refused, whatever its ports.
    err = cli.fails(1, "dev", "--data", data, "--base-port", str(base), says="in use")
    check("another raftq dev" in err, "second instance: %r" % err)

    drive_topics(cli)
    drive_produce_consume(ctx, cli)
    drive_groups(ctx, cli)
    drive_consumers(ctx, cli)
    drive_cluster(cli)

    # The first manager gone: the client moves on to the next.
    one_dead = Cli(ctx, ["http://127.0.0.1:%d" % (base + 59)] + dev.urls)
    check("orders" in one_dead.ok("topic", "list").split(), "no failover to the next manager")

    # Ctrl-C: every child stops, raftq dev exits 0.
    rc = dev.stop(signal.SIGINT)
    check(rc == 0, "raftq dev exited %d after SIGINT: %s" % (rc, dev.proc.log_tail(8)))
    check(children_of(data) == [], "children left: %r" % children_of(data))
    check_child_logs(data)
    cli.fails(3, "topic", "list", says="cannot reach any manager")

    # Again on the same data: the same layout (four brokers), the same
    # secret and token, the topics and messages are there. A cluster file
    # others could read is put back to 0600, and said so; --token gives
    # the managers another admin token for this run only.
    os.chmod(os.path.join(data, "dev", "cluster.json"), 0o644)
    override = "override-token-" + "9" * 20
    dev = Dev(ctx, data, base, ["--token", override]).start()
    check(len(children_of(data)) == 7, "restart: %r children" % children_of(data))
    mode, again = cluster_file(data)
    check(mode == 0o600 and again == rec, "after a restart: mode %o, %r" % (mode, again))
    check(any("its mode is now 0600" in line for line in dev.proc.log_tail(100)),
          "no word of the widened mode: %r" % dev.proc.log_tail(20))
    printed = [TOKEN_RE.match(line).group(1) for line in dev.lines if TOKEN_RE.match(line)]
    check(printed == [override], "--token: admin token line %r" % printed)
    cli.env["RAFTQ_ADMIN_TOKEN"] = override
    check(len(cli.json("broker", "list")["brokers"]) == 4, "broker list with --token")
    check(set(cli.ok("topic", "list").split()) == {"demo", "orders"}, "topics after restart")
    got = cli.ok("consume", "orders", "--offset", "0", "--partition", "1")
    check("x" in got.split() and "late" in got.split(), "messages after restart: %r" % got)

    # A broker dying behind raftq dev's back: one line, the rest stopped,
    # exit non-zero.
    pid = child_pid(data, "broker", 3)
    check(pid is not None, "no broker 3 process")
    dev.proc.expect_clean_exit = False
    os.kill(pid, signal.SIGKILL)
    try:
        rc = dev.proc._reap(30)
    except subprocess.TimeoutExpired:
        raise TestFailure("raftq dev did not notice broker 3 dying")
    check(rc != 0, "raftq dev exited 0 after a broker died")
    reports = [l for l in dev.proc.log_tail(50) if "broker 3 exited unexpectedly" in l]
    check(len(reports) == 1 and "signal 9" in reports[0], "report: %r" % dev.proc.log_tail(8))
    check(children_of(data) == [], "children left after the death: %r" % children_of(data))

    # Again at once, while the stopped processes may still be exiting (an
    # exiting process holds its ports after it has left the process list's
    # command lines): raftq dev waits for the last run's processes.
    dev = Dev(ctx, data, base, ["--token", override]).start()
    cli = Cli(ctx, dev.urls)
    cli.env["RAFTQ_ADMIN_TOKEN"] = override
    cli.ok("produce", "orders", "before the crash", "--partition", "1")
    # Every process SIGKILLed, then raftq dev again at once.
    for pid in [dev.proc.proc.pid] + children_of(data):
        os.kill(pid, signal.SIGKILL)
    dev.proc.expect_clean_exit = False
    dev.proc._reap(10)
    dev = Dev(ctx, data, base, ["--token", override]).start()
    cli = Cli(ctx, dev.urls)
    cli.env["RAFTQ_ADMIN_TOKEN"] = override
    got = cli.ok("consume", "orders", "--offset", "0", "--partition", "1")
    check("crash" in got.split(), "messages after the crash: %r" % got)
    check(dev.stop() == 0, "raftq dev exited non-zero after the crash")


BENCH_FIELDS = {"system": str, "case": str, "n": int, "seconds": float, "msgs_per_s": float,
                "mb_per_s": (float, type(None)), "p50_ms": (float, type(None)),
                "p99_ms": (float, type(None)), "p999_ms": (float, type(None)),
                "max_ms": (float, type(None)), "in_flight": int, "size": int}


def test_bench(ctx):
    """raftq bench against a small raftq dev: one JSON line a case with
    every field, messages counted, the progress and the client's CPU on
    stderr; the table without --json. No figure is judged."""
    base = port_block(ctx)
    data = os.path.join(ctx.dir, "data")
    dev = Dev(ctx, data, base).start()
    cli = Cli(ctx, dev.urls)
    cases = ["produce_100b_many", "read_batch_1000_100b"]
    rc, out, err = cli.run("bench", "--json", "--seconds", "1", "--in-flight", "4",
                           "--batch", "100", "--topic", "itest", *cases, timeout=180)
    check(rc == 0, "raftq bench: exit %d, stderr %r" % (rc, err))
    lines = out.splitlines()
    check(len(lines) == len(cases), "expected %d JSON lines, got %r" % (len(cases), out))
    for case, line in zip(cases, lines):
        row = json.loads(line)
        check(set(row) == set(BENCH_FIELDS), "%s: fields %r" % (case, sorted(row)))
        for name, kind in BENCH_FIELDS.items():
            check(isinstance(row[name], kind), "%s: %s is %r" % (case, name, row[name]))
        check(row["system"] == "raftq" and row["case"] == case, "%s: %r" % (case, row))
        check(row["n"] > 0 and row["seconds"] > 0 and row["msgs_per_s"] > 0,
              "%s: nothing measured: %r" % (case, row))
        check(row["in_flight"] == 4 and row["size"] == 100, "%s: %r" % (case, row))
        check(row["mb_per_s"] is not None and row["p99_ms"] is not None, "%s: %r" % (case, row))
        check("%s: " % case in err and "us of CPU a request" in err,
              "%s: no summary on stderr: %r" % (case, err))
    topics = set(cli.ok("topic", "list").split())
    check({"itest." + c for c in cases} <= topics, "bench topics: %r" % topics)
    # --binary reads take the binary answer (Accept), its records counted.
    rc, out, err = cli.run("bench", "--json", "--binary", "--seconds", "1", "--in-flight", "4",
                           "--batch", "100", "--topic", "itest", "read_batch_1000_100b",
                           timeout=120)
    row = json.loads(out) if rc == 0 else {}
    check(rc == 0 and row["n"] > 0 and row["msgs_per_s"] > 0 and " errors:" not in err,
          "raftq bench --binary reads: %d %r %r" % (rc, out, err))

    # One raftq_produce() call a message through libraftq: every message
    # counted was delivered, and is in the topic.
    rc, out, err = cli.run("bench", "--json", "--seconds", "1", "--in-flight", "4",
                           "--topic", "itest", "lib_produce_100b", timeout=120)
    row = json.loads(out) if rc == 0 else {}
    check(rc == 0 and row["n"] > 0 and row["in_flight"] == 4 and row["size"] == 100 and
          row["p99_ms"] is not None and " errors:" not in err,
          "raftq bench lib_produce_100b: %d %r %r" % (rc, out, err))
    parts = cli.json("topic", "describe", "itest.lib_produce_100b")["partitions"]
    check(sum(p["high_watermark"] for p in parts) >= row["n"],
          "lib_produce_100b counted %d, the topic holds %r" % (row["n"], parts))

    # A consumer group of 2: records committed, the members gone after.
    rc, out, err = cli.run("bench", "--json", "--seconds", "1", "--in-flight", "2",
                           "--topic", "itest", "group_3x12", timeout=180)
    row = json.loads(out) if rc == 0 else {}
    check(rc == 0 and row["n"] > 0 and row["in_flight"] == 2 and " errors:" not in err,
          "raftq bench group_3x12: %d %r %r" % (rc, out, err))
    group = cli.json("group", "describe", "itest.group_3x12")
    check(group["members"] == [] and
          sum(o["committed"] for o in group["offsets"]) == row["n"],
          "the bench's group: %r, %r" % (group, row))

    # The table and a progress line a second, for a case that needs no
    # topic; then a manager that is not there is counted as errors, not a
    # crash.
    rc, out, err = cli.run("bench", "healthz", "--seconds", "2", "--in-flight", "2")
    rows = out.splitlines()
    check(rc == 0 and len(rows) == 2 and rows[0].split()[:3] == ["case", "msgs/s", "MB/s"]
          and rows[1].split()[0] == "healthz", "table: %d %r %r" % (rc, out, err))
    check(re.search(r"^healthz +1 s +\d+ msgs/s", err, re.M), "no progress line: %r" % err)
    gone = "http://127.0.0.1:%d" % (base + 59)
    rc, out, err = cli.run("bench", "healthz", "--seconds", "1", "--in-flight", "2", "--json",
                           "--managers", dev.urls[0] + "," + gone)
    check(rc == 0 and json.loads(out)["n"] > 0, "with a manager gone: %d %r %r" % (rc, out, err))
    check("connect x" in err and "connection refused" in err, "errors not said: %r" % err)
    rc = dev.stop(signal.SIGINT)
    check(rc == 0, "raftq dev exited %d" % rc)
    check_child_logs(data)


def test_usage_and_unreachable(ctx):
    port = ctx.ports.take()  # Nothing listens there.
    cli = Cli(ctx, ["http://127.0.0.1:%d" % port])
    for args in (["topic", "list"], ["cluster", "status"], ["produce", "t", "v"],
                 ["consume", "t"], ["broker", "list"], ["bench", "consume_1"]):
        t0 = time.monotonic()
        cli.fails(3, *args, says="cannot reach any manager")
        check(time.monotonic() - t0 < 5, "%s took %.1fs to give up" % (args, time.monotonic() - t0))

    for args, says in (([], "no command"),
                       (["frob"], "unknown command"),
                       (["topic"], "needs a command"),
                       (["topic", "create"], "one topic name"),
                       (["consume", "t", "--offset", "1"], "--offset needs --partition"),
                       (["broker", "drain", "x"], "broker id"),
                       (["topic", "list", "--follow"], "does not apply"),
                       (["--managers", "nohost", "topic", "list"], "no port"),
                       (["dev", "--managers", "4"], "3 or 5"),
                       (["bench", "produce_1k"], "unknown bench case"),
                       (["bench", "--seconds", "0"], "--seconds"),
                       (["bench", "--partitions", "0"], "1 to"),
                       (["bench", "--managers", "https://127.0.0.1:1"], "plain HTTP only")):
        err = cli.fails(2, *args, says=says)
        check("--help" in err, "%s: no pointer to --help in %r" % (args, err))

    for words in (["dev"], ["topic"], ["topic", "create"], ["topic", "list"],
                  ["topic", "describe"], ["topic", "delete"], ["produce"], ["consume"],
                  ["cluster", "status"], ["broker", "list"], ["broker", "drain"],
                  ["broker", "remove"], ["partition", "move-leader"], ["bench"], []):
        out = cli.ok(*(words + ["--help"]))
        check(out.startswith("usage: raftq " + " ".join(words)),
              "%s --help: %r" % (words, out[:80]))

    # The release, the Makefile's VERSION, with or without a command.
    with open(os.path.join(REPO, "Makefile")) as f:
        version = re.search(r"^VERSION := (\S+)$", f.read(), re.M).group(1)
    for words in ([], ["topic", "list"]):
        out = cli.ok(*(words + ["--version"]))
        check(out == "raftq %s\n" % version, "%s --version: %r" % (words, out))


def test_port_in_use_and_bad_layout(ctx):
    base = port_block(ctx)
    data = os.path.join(ctx.dir, "data")
    cli = Cli(ctx, [])
    held = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    held.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    held.bind(("127.0.0.1", base + 21))
    held.listen(1)
    try:
        t0 = time.monotonic()
        err = cli.fails(1, "dev", "--data", data, "--base-port", str(base), timeout=30,
                        says="port %d (broker 2 HTTP)" % (base + 21))
        check("in use" in err and time.monotonic() - t0 < 10, "port in use: %r" % err)
        check(children_of(data) == [], "children started despite the port")
    finally:
        held.close()
    # The layout is recorded: another number of managers or base port on
    # the same data is refused before anything starts.
    err = cli.fails(1, "dev", "--data", data, "--base-port", str(base), "--managers", "5",
                    says="3 managers")
    err = cli.fails(1, "dev", "--data", data, "--base-port", str(base + 1),
                    says="--base-port %d" % base)
    other = os.path.join(ctx.dir, "other")
    cli.fails(1, "dev", "--data", other, "--base-port", "80", says="base port")
    check(children_of(data) == [] and children_of(other) == [], "children started")


if __name__ == "__main__":
    run_suite("cli", [test_dev_and_every_command, test_bench, test_usage_and_unreachable,
                      test_port_in_use_and_bad_layout],
              binary="raftq", ports=(29000, 29999))

"""Network partitions of the ATM network (API.md section 5). Needs root.

Each ATM runs in its own network namespace, joined to the others through a
bridge in a further namespace by a veth pair, with an address in
10.211.0.0/24 that exists only inside these namespaces. A partition is an
nftables table in one ATM's namespace that drops everything in and out of
its veth; healing deletes the table. Every name carries the process id, so
parallel runs do not clash, and everything is removed at exit, on failure
too. Without root every test is skipped.
Run: python3 tests/integration/test_atm_partition.py [--build DIR] [-k NAME].
"""

import atexit
import contextlib
import os
import re
import shutil
import subprocess
import sys
import threading
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from harness import (  # noqa: E402
    TestFailure, check, compare_snapshots, is_no_quorum, money, parse_balance, run_suite,
)

NO_QUORUM_SECS = 6.0  # The contract's 5 s, plus room for scheduling.
SNAP_ARGS = ["--snapshot-threshold", "32", "--snapshot-trailing", "16", "--segment-size", "65536"]
PREFIX = "rqi"  # Namespace names: rqi<pid>h (the hub), rqi<pid>n<i>.


def sh(*argv, check_rc=True, stdin=None):
    r = subprocess.run(argv, input=stdin, capture_output=True, text=True)
    if check_rc and r.returncode != 0:
        raise TestFailure("%s failed: %s" % (" ".join(argv), r.stderr.strip()))
    return r


class Net:
    """The namespaces, bridge and veth pairs of one run."""

    def __init__(self, n=3):
        tag = "%s%d" % (PREFIX, os.getpid())
        self.hub = tag + "h"
        self.ns = {i: "%sn%d" % (tag, i) for i in range(1, n + 1)}
        self.ip = {i: "10.211.0.%d" % (10 + i) for i in range(1, n + 1)}
        self.cut_now = set()

    def up(self):
        sh("ip", "netns", "add", self.hub)
        sh("ip", "-n", self.hub, "link", "add", "br0", "type", "bridge")
        sh("ip", "-n", self.hub, "link", "set", "br0", "up")
        for i, ns in self.ns.items():
            sh("ip", "netns", "add", ns)
            sh("ip", "-n", ns, "link", "set", "lo", "up")
            sh("ip", "-n", self.hub, "link", "add", "p%d" % i, "type", "veth",
               "peer", "name", "eth0", "netns", ns)
            sh("ip", "-n", self.hub, "link", "set", "p%d" % i, "master", "br0", "up")
            sh("ip", "-n", ns, "addr", "add", self.ip[i] + "/24", "dev", "eth0")
            sh("ip", "-n", ns, "link", "set", "eth0", "up")

    def down(self):
        for ns in list(self.ns.values()) + [self.hub]:
            sh("ip", "netns", "del", ns, check_rc=False)

    def wrap(self, i):
        return ["ip", "netns", "exec", self.ns[i]]

    def cut(self, i):
        """Drops every packet in and out of ATM @i's veth."""
        sh("ip", "netns", "exec", self.ns[i], "nft", "-f", "-", stdin=(
            "table inet rqcut {\n"
            " chain input { type filter hook input priority -10; policy accept; iifname \"eth0\" drop; }\n"
            " chain output { type filter hook output priority -10; policy accept; oifname \"eth0\" drop; }\n"
            "}\n"))
        self.cut_now.add(i)

    def heal(self, i):
        sh("ip", "netns", "exec", self.ns[i], "nft", "delete", "table", "inet", "rqcut")
        self.cut_now.discard(i)

    def heal_all(self):
        for i in list(self.cut_now):
            sh("ip", "netns", "exec", self.ns[i], "nft", "delete", "table", "inet", "rqcut",
               check_rc=False)
        self.cut_now.clear()


NET = None


def requires():
    if os.geteuid() != 0:
        return "needs root for network namespaces"
    for tool in ("ip", "nft"):
        if shutil.which(tool) is None:
            return "needs root for network namespaces (and %s, which is missing)" % tool
    probe = "%s%dprobe" % (PREFIX, os.getpid())
    r = sh("ip", "netns", "add", probe, check_rc=False)
    if r.returncode != 0:
        return "needs root for network namespaces (ip netns add: %s)" % r.stderr.strip()
    sh("ip", "netns", "del", probe, check_rc=False)
    return None


def remove_stale():
    """Deletes namespaces left by runs whose process is gone."""
    r = sh("ip", "netns", "list", check_rc=False)
    for line in r.stdout.splitlines():
        m = re.match(r"^(%s(\d+)(h|n\d+|probe))\b" % PREFIX, line)
        if m and not os.path.exists("/proc/%s" % m.group(2)):
            sh("ip", "netns", "del", m.group(1), check_rc=False)


def setup(opts):
    global NET
    remove_stale()
    NET = Net()
    atexit.register(teardown)  # Also when the run dies between tests.
    try:
        NET.up()
    except BaseException:
        NET.down()
        raise


def teardown():
    if NET is not None:
        NET.heal_all()
        NET.down()


_port = [23500]


def cluster(ctx, args=()):
    """Three ATMs, one per namespace, on a port not used before in this run
    (so no test meets a previous test's lingering connections)."""
    _port[0] += 1
    ctx.cleanups.append(NET.heal_all)
    return ctx.cluster(args=args, hosts=[NET.ip[i] for i in (1, 2, 3)], ports=[_port[0]] * 3,
                       wraps=[NET.wrap(i) for i in (1, 2, 3)])


def timed(atm, line):
    t0 = time.monotonic()
    ans = atm.cmd(line)
    return ans, time.monotonic() - t0


def isolated_answers(atm, out):
    """A write and a read at the isolated ATM: each must say no quorum."""
    try:
        out["write"] = timed(atm, "deposit iso 7")
        out["read"] = timed(atm, "balance base")
    except TestFailure as e:
        out["error"] = e


def check_no_quorum(out, who):
    if "error" in out:
        raise out["error"]
    for what in ("write", "read"):
        ans, secs = out[what]
        check(is_no_quorum(ans), "the isolated %s answered the %s with %r" % (who, what, ans))
        check(secs <= NO_QUORUM_SECS, "the isolated %s took %.1fs to refuse the %s" % (who, secs, what))


@contextlib.contextmanager
def isolated(c, atm, who):
    """Cuts @atm off and yields the others. While the body runs, a write and
    a read at @atm must each answer no quorum in time (checked after it)."""
    NET.cut(atm.id)
    out = {}
    t = threading.Thread(target=isolated_answers, args=(atm, out))
    t.start()
    try:
        yield [a for a in c if a.id != atm.id]
    finally:
        t.join()
    check_no_quorum(out, who)


def deposit_base_everywhere(c, model):
    """10.00 into "base" at every ATM, then waits until all have caught up."""
    for a in c:
        model["base"] += 1000
        check(parse_balance(a.cmd("deposit base 10"), "base") == model["base"], "%r: deposit failed" % a)
    c.wait_caught_up()


def heal_and_check(c, atm, model):
    """Heals @atm, cut off by isolated(): the ATMs agree again, holding its
    refused write ("iso") whole or not at all, and @atm takes a write."""
    NET.heal(atm.id)
    c.wait_leader(timeout=30)
    c.wait_caught_up(timeout=30)
    got = c.assert_identical(list(model) + ["iso"])
    check(got["iso"] in (0, 700), "the isolated write left iso at %s" % money(got["iso"]))
    model["iso"] = got["iso"]
    c.assert_agree(model)
    model["base"] += 100
    check(parse_balance(atm.cmd("deposit base 1"), "base") == model["base"], "deposit at the healed atm failed")
    c.wait_caught_up()
    c.assert_agree(model)


def test_isolate_leader(ctx):
    c = cluster(ctx).start()
    lid = c.wait_leader()
    model = {"base": 0}
    deposit_base_everywhere(c, model)
    term0 = c[lid].status()["term"]

    old = c[lid]
    with isolated(c, old, "old leader atm%d" % lid) as others:
        new = c.wait_leader(among=others, exclude=(lid,))
        check(c[new].status()["term"] > term0, "the majority's term did not grow")
        for a in others:
            model["base"] += 500
            check(parse_balance(a.cmd("deposit base 5"), "base") == model["base"],
                  "%r: deposit on the majority side failed" % a)
            model["maj%d" % a.id] = 300
            check(a.cmd("deposit maj%d 3" % a.id) == "ok maj%d 3.00" % a.id, "%r: deposit failed" % a)
        c.assert_agree(model, others)

    heal_and_check(c, old, model)


def test_isolate_follower(ctx):
    c = cluster(ctx, SNAP_ARGS).start()
    lid = c.wait_leader()
    fid = [a.id for a in c if a.id != lid][0]
    f = c[fid]
    model = {"base": 0}
    deposit_base_everywhere(c, model)

    with isolated(c, f, "follower atm%d" % fid) as others:
        # Enough writes for several snapshots: the follower must catch up
        # from one after healing.
        for k in range(5):
            for a in others:
                lines = ["deposit f%d_%d %d" % (a.id, k, j + 1) for j in range(12)]
                for j, ans in enumerate(a.cmds(lines)):
                    x = "f%d_%d" % (a.id, k)
                    model[x] = model.get(x, 0) + (j + 1) * 100
                    check(ans == "ok %s %s" % (x, money(model[x])), "%r: %r answered %r" % (a, lines[j], ans))
        c.assert_agree(model, others)

    heal_and_check(c, f, model)
    for a in c:
        rc = a.terminate()
        check(rc == 0, "%r exited with status %d on SIGTERM" % (a, rc))
    print("    %d snapshot index(es) held by several ATMs, byte-identical" % compare_snapshots(list(c)))


TESTS = [
    test_isolate_leader,
    test_isolate_follower,
]

if __name__ == "__main__":
    run_suite("atm_partition", TESTS, requires=requires, setup=setup, teardown=teardown)

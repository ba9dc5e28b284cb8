"""Network partitions of the ATM network (API.md section 5). Needs root.

Each ATM runs in its own network namespace, joined to the others through a
bridge in a further namespace by a veth pair, with an address in
10.211.0.0/24 that exists only inside these namespaces. A partition is an
nftables table in one ATM's namespace that drops everything in and out of
its veth; healing deletes the table (tests/integration/netns.py). Every name carries the process id, so
parallel runs do not clash, and everything is removed at exit, on failure
too. Without root every test is skipped.
Run: python3 tests/integration/test_atm_partition.py [--build DIR] [-k NAME].
"""

import atexit
import contextlib
import os
import sys
import threading
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import netns  # noqa: E402
from harness import (  # noqa: E402
    TestFailure, check, compare_snapshots, is_no_quorum, money, parse_balance, run_suite,
)

NO_QUORUM_SECS = 6.0  # The contract's 5 s, plus room for scheduling.
SNAP_ARGS = ["--snapshot-threshold", "32", "--snapshot-trailing", "16", "--segment-size", "65536"]
PREFIX = "rqi"  # Namespace names: rqi<pid>h (the hub), rqi<pid>n<i>.


NET = None


def requires():
    return netns.requires(PREFIX)


def setup(opts):
    global NET
    netns.remove_stale(PREFIX)
    NET = netns.Net(PREFIX, "10.211.0", keys=(1, 2, 3))
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

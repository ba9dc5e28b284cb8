"""Figures for the ATM network: write and read latency at the leader and at
a follower, pipelined throughput, failover time after SIGKILL of the leader,
and each process's memory and disk. Prints; asserts nothing.

Runs the release build (build/atm) with the default Raft timing (1 s
election timeout, 100 ms heartbeat), three ATMs on 127.0.0.1.
"""

import argparse
import os
import random
import shutil
import sys
import time

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "integration"))
import harness  # noqa: E402


def pct(xs, p):
    xs = sorted(xs)
    return xs[min(len(xs) - 1, int(len(xs) * p / 100.0))]


def rss_kib(pid):
    with open("/proc/%d/status" % pid) as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    return 0


def du_kib(path):
    total = 0
    for root, _, files in os.walk(path):
        for name in files:
            try:
                total += os.stat(os.path.join(root, name)).st_blocks // 2
            except OSError:
                pass
    return total


def latencies(atm, lines):
    out = []
    for line in lines:
        t0 = time.perf_counter()
        answer = atm.cmd(line)
        out.append((time.perf_counter() - t0) * 1000.0)
        if not answer.startswith("ok"):
            raise SystemExit("bench: %r answered %r" % (line, answer))
    return out


def report(name, ms):
    print("  %-34s n=%-5d p50 %7.3f ms  p99 %7.3f ms  max %7.3f ms  (%.0f ops/s one at a time)"
          % (name, len(ms), pct(ms, 50), pct(ms, 99), max(ms), 1000.0 * len(ms) / sum(ms)))


def pipelined(atm, lines):
    t0 = time.perf_counter()
    answers = atm.cmds(lines, timeout=30)
    secs = time.perf_counter() - t0
    bad = [a for a in answers if not a.startswith("ok")]
    if bad:
        raise SystemExit("bench: pipelined answers included %r" % bad[:3])
    return len(lines) / secs


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--build", default="build")
    ap.add_argument("--n", type=int, default=2000)
    opts = ap.parse_args()
    opts.binary = os.path.abspath(os.path.join(opts.build, "atm"))
    opts.seed = 1
    opts.log_level = "warn"  # The harness reads it; the cluster args below say warn too.
    if not os.access(opts.binary, os.X_OK):
        raise SystemExit("bench: no %s (make all)" % opts.binary)
    ctx = harness.Context(opts, "bench", harness.PortPool(24000, 24999))
    n = opts.n
    rng = random.Random(1)
    try:
        c = ctx.cluster(3, args=["--election-timeout-ms", "1000", "--log-level", "warn"])
        c.start()  # Flags given last win over the harness's defaults.
        leader = c[c.wait_leader(timeout=30)]
        follower = next(a for a in c if a is not leader)
        print("ATM network: 3 ATMs on 127.0.0.1, release build, %d operations per figure" % n)
        lines = ["deposit acct%d %d.%02d" % (rng.randrange(100), rng.randrange(1, 500), rng.randrange(100))
                 for _ in range(n)]
        report("deposit at the leader", latencies(leader, lines))
        report("deposit at a follower (forwarded)", latencies(follower, lines))
        report("balance at the leader (barrier)", latencies(leader, ["balance acct%d" % (i % 100) for i in range(n)]))
        report("balance at a follower (forwarded)", latencies(follower, ["balance acct%d" % (i % 100) for i in range(n)]))
        print("  %-34s %.0f ops/s" % ("pipelined deposits at the leader", pipelined(leader, lines)))
        print("  %-34s %.0f ops/s" % ("pipelined deposits at a follower", pipelined(follower, lines)))
        for a in c:
            print("  %-34s RSS %d KiB, data %d KiB" % ("%r after %d writes" % (a, 4 * n), rss_kib(a.pid()), du_kib(a.data_dir)))
        # Failover: SIGKILL the leader, then time until a write at a survivor succeeds.
        survivors = [a for a in c if a is not leader]
        t0 = time.perf_counter()
        leader.kill()
        while True:
            answer = survivors[0].cmd("deposit failover 1")
            if answer.startswith("ok"):
                break
        print("  %-34s %.2f s (election timeout 1 s, randomized to 1-2 s)"
              % ("write available after leader SIGKILL", time.perf_counter() - t0))
        t0 = time.perf_counter()
        leader.start()
        target = survivors[0].status()["applied"]

        def caught_up():
            st = leader.try_status()
            return st is not None and st["applied"] >= target

        harness.wait_until(caught_up, 60, "the restarted ATM to catch up")
        print("  %-34s %.2f s" % ("restarted ATM caught up", time.perf_counter() - t0))
    finally:
        problems = ctx.stop_all()
        if problems:
            print("bench: " + "; ".join(problems))
        shutil.rmtree(ctx.dir, ignore_errors=True)


if __name__ == "__main__":
    main()

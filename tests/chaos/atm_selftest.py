"""A quick real-process test of the ATM workload and its checks, without
network namespaces: three ATMs on 127.0.0.1, the workload's three clients
running for about 15 seconds while one ATM is SIGKILLed and restarted and
another SIGSTOPped and resumed, then final reads from every ATM and every
invariant of AtmWorkload.check() must hold.

Needs no root. Prints "atm_selftest: N passed, N failed, N skipped".
Run: python3 tests/chaos/atm_selftest.py [--build DIR] [--ports LO-HI] [--seconds S].
"""

import os
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "integration"))
sys.path.insert(0, HERE)

from harness import check, run_suite, wait_until  # noqa: E402
from atm_workload import AtmWorkload  # noqa: E402
import linearize  # noqa: E402

SECONDS = float(os.environ.get("ATM_SELFTEST_SECONDS", "12"))


def ops_so_far(w):
    return w.stats()["ops"]


def test_workload_under_kill_and_stop(ctx):
    c = ctx.cluster().start()
    c.wait_leader()
    atms = list(c)
    w = AtmWorkload(atms, ctx.rng, ctx.dir)
    w.setup()
    w.start()
    rng = ctx.rng
    end = time.monotonic() + SECONDS
    faults = []
    try:
        while time.monotonic() < end:
            victim = rng.choice(atms)
            before = ops_so_far(w)
            # Let the clients make progress between faults.
            wait_until(lambda: ops_so_far(w) >= before + 20, 30, "20 more operations")
            if rng.random() < 0.5:
                victim.kill()
                faults.append("kill %r" % victim)
                time.sleep(rng.uniform(0.2, 1.5))  # The fault's length, not a wait for anything.
                victim.start()
            else:
                victim.pause()
                faults.append("stop %r" % victim)
                time.sleep(rng.uniform(0.5, 2.5))  # The fault's length.
                victim.resume()
    finally:
        w.stop()
    c.wait_leader()
    c.wait_caught_up(list(c))
    final = w.final_reads()
    st = w.stats()
    print("    faults: %s" % ", ".join(faults))
    print("    %d ops: %d ok, %d fail, %d info (%d answered late); by command %s" % (
        st["ops"], st["ok"], st["fail"], st["info"], st["late_resolved"],
        " ".join("%s=%d/%d/%d" % (f, d["ok"], d["fail"], d["info"])
                 for f, d in sorted(st["by_command"].items()))))
    t0 = time.monotonic()
    results = w.check()
    print("    checked in %.1fs" % (time.monotonic() - t0))
    for name, ok, detail in results:
        print("    %s %s: %s" % ("ok  " if ok else "FAIL", name, detail.splitlines()[0]))
    bad = [(n, d) for n, ok, d in results if not ok]
    check(not bad, "; ".join("%s: %s" % nd for nd in bad))
    check(st["ok"] > 50, "too few operations succeeded: %s" % st)
    check(len(final) == 3, "final reads from every ATM: %s" % final)
    check(os.path.exists(os.path.join(ctx.dir, "atm_history.jsonl")), "history written")

    # The same history with one read a cent off must be refused.
    history = [dict(o) for o in w.history]
    reads = [o for o in history if o["f"] == "balance" and o["type"] == "ok" and not o.get("final")]
    check(reads, "no balance read succeeded")
    victim = reads[len(reads) // 2]
    victim["balance"] += 1
    verdict, detail, _ = linearize.check_linearizable(history)
    check(verdict == "violation", "a read one cent off was not caught: %s" % detail)
    print("    a read one cent off is caught: %s" % detail.splitlines()[0])


TESTS = [test_workload_under_kill_and_stop]

if __name__ == "__main__":
    run_suite("atm_selftest", TESTS, ports=(26000, 26499))

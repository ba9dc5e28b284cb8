"""Integration tests of idle Raft groups going quiet (broker/README.md,
--raft-quiet-ms; DESIGN.md section 15) on 127.0.0.1.

Three brokers at the tests' usual timing (election 600 ms, heartbeat 100 ms)
with a short quiet wait (1 s), a quiet heartbeat of 500 ms and a quiet
election timeout of 2 s. A partition left alone goes quiet on every replica
(the raftq_raft_quiet gauge and GET /internal/replicas) and its leader
sends far fewer Raft messages (raftq_raft_messages_sent_total) with no term
change; a produce to it is acknowledged and wakes it; a follower killed and
restarted while its group is quiet rejoins without an election; and when
the leader of a quiet group is killed with SIGKILL, another broker leads
within the quiet failover time and every acknowledged record is there.

Needs no root. Run: python3 tests/integration/test_quiet.py [--build DIR]
[-k NAME] [--ports LO-HI].
"""

import os
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from harness import check, run_suite, wait_until  # noqa: E402
from test_broker import Brokers  # noqa: E402
from test_metrics import scrape, value  # noqa: E402

QUIET_MS = 1000
QUIET_HEARTBEAT_MS = 500
QUIET_ELECTION_MS = 2000
ARGS = ["--raft-quiet-ms", str(QUIET_MS),
        "--raft-quiet-heartbeat-ms", str(QUIET_HEARTBEAT_MS),
        "--raft-quiet-election-timeout-ms", str(QUIET_ELECTION_MS)]

P = 0  # The partition under test (group 1).
GROUP = P + 1


def replica(b, i):
    return b.replicas(i)[GROUP]


def all_quiet(b, ids=None):
    """Every running replica of the group says quiet, in both places."""
    for i in ids or b.running():
        if not replica(b, i)["quiet"]:
            return False
        if value(scrape(b.http[i]), "raftq_raft_quiet", group=GROUP) != 1:
            return False
    return True


def sent(b, i):
    return value(scrape(b.http[i]), "raftq_raft_messages_sent_total", group=GROUP)


def message_rate(b, i, window_s):
    """Raft messages a second the replica at broker @i sends over a window
    of @window_s (a measurement, not a wait for a condition)."""
    t0, m0 = time.monotonic(), sent(b, i)
    time.sleep(window_s)
    t1, m1 = time.monotonic(), sent(b, i)
    return (m1 - m0) / (t1 - t0)


def settled(b):
    """Starts the brokers, creates the partition and waits until its
    preferred broker leads (so no hand-over wakes it later)."""
    b.start()
    b.create([P])
    b.wait_preferred([P])
    return b.preferred(P)


def test_idle_group_goes_quiet_and_wakes(ctx):
    """Left alone, the group goes quiet everywhere and its leader's message
    rate drops to the quiet heartbeat's, with no term change; a produce is
    acknowledged at once and wakes the group; it goes quiet again."""
    b = Brokers(ctx, args=ARGS)
    lead = settled(b)
    base, _ = b.produce(P, [{"value": "before"}])
    wait_until(lambda: all_quiet(b), 20, "every replica of the group to go quiet")
    term = replica(b, lead)["term"]
    quiet_rate = message_rate(b, lead, 3.0)
    # Two followers, one heartbeat each per quiet heartbeat; the awake
    # rate would be 2 per 100 ms.
    expected = 2 * 1000.0 / QUIET_HEARTBEAT_MS
    check(quiet_rate <= 2 * expected,
          "quiet leader sends %.1f messages/s, expected about %.1f" % (quiet_rate, expected))
    check(all(replica(b, i)["term"] == term and replica(b, i)["leader_id"] == lead
              for i in b.ids()), "the term or leader moved while the group was quiet")

    # A produce to the quiet group: acknowledged promptly, the leader
    # awake at once, the followers soon.
    t0 = time.monotonic()
    off, by = b.produce(P, [{"value": "wake"}])
    took = time.monotonic() - t0
    check(by == lead and off == base + 1, "produce went to %r at %r" % (by, off))
    check(took < 1.0, "a produce to a quiet group took %.2f s" % took)
    check(not replica(b, lead)["quiet"], "the leader is still quiet after a produce")
    # A quiet follower looks at its group every half quiet heartbeat.
    wait_until(lambda: not any(replica(b, i)["quiet"] for i in b.ids()),
               2 * QUIET_HEARTBEAT_MS / 1000.0, "the followers to wake")

    # Kept busy, it heartbeats at the ordinary rate again.
    t0, m0 = time.monotonic(), sent(b, lead)
    n = 0
    while time.monotonic() - t0 < 2.0:
        b.produce(P, [{"value": "busy-%d" % n}])
        n += 1
        check(not any(replica(b, i)["quiet"] for i in b.ids()),
              "a replica is quiet while its group takes produces")
        time.sleep(0.2)  # Paces the produces (a rate, not a wait).
    busy_rate = (sent(b, lead) - m0) / (time.monotonic() - t0)
    check(busy_rate >= 2 * quiet_rate + 5,
          "busy leader sends %.1f messages/s, quiet %.1f" % (busy_rate, quiet_rate))
    wait_until(lambda: all_quiet(b), 20, "the group to go quiet again")
    logs = b.assert_identical([P])
    check([v for _, v, _, _ in logs[P]][:2] == ["before", "wake"] and len(logs[P]) == n + 2,
          "records: %r" % logs[P][:4])


def test_follower_restart_while_quiet(ctx):
    """A follower killed and restarted while its group is quiet rejoins the
    same leader in the same term: its elections, under pre-vote, are refused
    by the leader and the other follower, and the leader, asked for a vote,
    heartbeats at the ordinary rate until the group settles again."""
    b = Brokers(ctx, args=ARGS)
    lead = settled(b)
    b.produce(P, [{"value": "x"}])
    wait_until(lambda: all_quiet(b), 20, "every replica of the group to go quiet")
    term = replica(b, lead)["term"]
    follower = next(i for i in b.ids() if i != lead)
    b[follower].kill()
    b.start([follower])
    wait_until(lambda: replica(b, follower)["leader_id"] == lead, 20,
               "the restarted follower to hear from the leader")
    wait_until(lambda: all_quiet(b), 20, "the group to go quiet again")
    for i in b.ids():
        r = replica(b, i)
        check(r["term"] == term and r["leader_id"] == lead,
              "broker%d: term %d leader %d, expected term %d leader %d"
              % (i, r["term"], r["leader_id"], term, lead))


def test_kill_leader_of_quiet_group(ctx):
    """SIGKILL of a quiet group's leader: another broker leads within the
    quiet failover time, and every acknowledged record is there."""
    b = Brokers(ctx, args=ARGS)
    lead = settled(b)
    acked = [b.produce(P, [{"value": "r%d" % k}])[0] for k in range(5)]
    wait_until(lambda: all_quiet(b), 20, "every replica of the group to go quiet")
    b[lead].kill()
    t0 = time.monotonic()
    # A follower stands once its quiet election timeout (randomised up to
    # twice) runs out and the other no longer knows a leader; then one
    # pre-vote and one vote round at the ordinary timing.
    bound = 2 * QUIET_ELECTION_MS / 1000.0 + 4 * 0.6 + 3.0
    new = wait_until(lambda: b.leader(P), bound, "a new leader of the quiet group")
    took = time.monotonic() - t0
    check(new != lead, "the killed broker still leads")
    print("  quiet group failed over in %.1f s (bound %.1f s)" % (took, bound))
    off, _ = b.produce(P, [{"value": "after"}])
    check(off == acked[-1] + 1, "produce after failover at %d, expected %d" % (off, acked[-1] + 1))
    b.start([lead])
    b.wait_converged([P])
    logs = b.assert_identical([P])
    check([v for _, v, _, _ in logs[P]] == ["r%d" % k for k in range(5)] + ["after"],
          "records after failover: %r" % logs[P])


def test_quiet_off(ctx):
    """--raft-quiet-ms 0: the group never goes quiet."""
    b = Brokers(ctx, args=["--raft-quiet-ms", "0"])
    lead = settled(b)
    rate = message_rate(b, lead, 2.0)
    check(rate >= 10, "an idle leader with quiescence off sends %.1f messages/s" % rate)
    check(not any(replica(b, i)["quiet"] for i in b.ids()), "a replica went quiet")


if __name__ == "__main__":
    run_suite("quiet", [
        test_idle_group_goes_quiet_and_wakes,
        test_follower_restart_while_quiet,
        test_kill_leader_of_quiet_group,
        test_quiet_off,
    ], binary="broker", ports=(30000, 30499))

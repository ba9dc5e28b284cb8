#!/usr/bin/env python3
"""Consumer groups (API.md section 2b) on real processes: 3 managers and 4
brokers from the build under test, members that are processes of their own
(group_member.py).

- test_group_api: joins share a 12-partition topic 4/4/4 and a leave moves
  only the leaver's partitions; heartbeats, fetches, commits and their
  refusals (409 for a member not in the group, a stale generation or a
  partition not its own, a second fetch while one waits); the long poll
  woken by a produce; describe, list, resetting offsets and deleting,
  refused while the group has members; bad input gets 400.
- test_group_members_fail_over: three member processes consume 10,000
  records produced while they run; one is stopped past its session (its
  partitions move, its commit afterwards gets 409), the leader manager is
  killed during commits, a fourth member joins mid-stream. The checker
  (tests/chaos/checker.py, check_group) then holds every record processed at
  least once, committed offsets never going back, nothing below a
  committed offset skipped, and duplicates only from batches not committed.
- test_paused_leader_fetches_nothing_stale: a member commits through a
  leader, which is then paused (SIGSTOP) while another is elected and the
  member fetches and commits further through it; a fetch that reaches the
  paused manager before it resumes (its bytes already in the socket) must
  not hand out records below the offset the member committed since.

Run: python3 tests/integration/test_groups.py --build build/asan
"""

import http.client
import json
import os
import sys
import threading
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
sys.path.insert(1, os.path.join(os.path.dirname(HERE), "chaos"))

from harness import check, run_suite, wait_until  # noqa: E402
import checker  # noqa: E402
from test_manager import Cluster, Unreachable, check_failure, check_ok  # noqa: E402

MEMBER = os.path.join(HERE, "group_member.py")


def join(c, i, group, topic, session=None):
    body = {"topic": topic}
    if session is not None:
        body["session_timeout_ms"] = session
    st, obj = c.call(i, "POST", "/v1/groups/%s/join" % group, body)
    check_ok(st, obj, "join %s at manager%d" % (group, i))
    check(isinstance(obj["member_id"], str) and len(obj["member_id"]) >= 8,
          "member id %r" % obj)
    check(obj["heartbeat_interval_ms"] == (session or 10000) // 3, "interval %r" % obj)
    return obj


def heartbeat(c, i, group, member):
    st, obj = c.call(i, "POST", "/v1/groups/%s/heartbeat" % group, {"member_id": member})
    return check_ok(st, obj, "heartbeat of %s" % member)


def fetch(c, i, group, member, max_=100, wait_ms=0, timeout=20.0, queued=False):
    """A fetch; with @queued, one that meets another fetch of the member
    (409, as until_waiting's probes may be) is sent again."""
    while True:
        st, obj = c.call(i, "GET", "/v1/groups/%s/records" % group,
                         query={"member_id": member, "max": max_, "wait_ms": wait_ms},
                         timeout=timeout)
        if not (queued and st == 409 and "has a fetch waiting" in obj.get("message", "")):
            return check_ok(st, obj, "fetch of %s" % member)
        time.sleep(0.01)


def commit(c, i, group, member, generation, offsets):
    return c.call(i, "POST", "/v1/groups/%s/commit" % group,
                  {"member_id": member, "generation": generation,
                   "offsets": [{"partition_id": p, "offset": o} for p, o in offsets.items()]})


def until_waiting(c, i, group, member):
    """Until @member's long poll waits at the leader: a second fetch (one
    that does not wait, of a member with nothing left) is then refused
    with 409; before, it answers no records (the long poll, sent with
    queued=True, goes again if it met one of these)."""
    def waiting():
        st, obj = c.call(i, "GET", "/v1/groups/%s/records" % group,
                         query={"member_id": member})
        if st == 200:
            check(obj["records"] == [], "a fetch beside the long poll took %r" % obj)
            return False
        check("has a fetch waiting" in check_failure(st, obj, 409, "second fetch")["message"],
              "%r" % obj)
        return True
    wait_until(waiting, 10, "the long poll of %s to wait" % member, interval=0.05)


def describe(c, i, group):
    st, obj = c.call(i, "GET", "/v1/groups/%s" % group)
    return check_ok(st, obj, "describe %s" % group)


def produce(c, i, topic, values, partition=None):
    recs = [{"value": v} if partition is None else {"value": v, "partition_id": partition}
            for v in values]
    st, obj = c.call(i, "POST", "/v1/topics/%s/records" % topic, {"records": recs})
    check_ok(st, obj, "produce %d records" % len(values))
    return [(o["partition_id"], o["offset"]) for o in obj["offsets"]]


def test_group_api(ctx):
    c = Cluster(ctx).start()
    c.create_topic(1, "orders", partitions=12)
    c.create_topic(1, "audit", partitions=1)
    c.wait_topic_led("orders")

    # Three joins through three managers: 4/4/4, every partition once.
    a = join(c, 1, "billing", "orders", session=30000)
    check(a["generation"] == 1 and a["partitions"] == list(range(12)), "first join %r" % a)
    b = join(c, 2, "billing", "orders", session=30000)
    m = join(c, 3, "billing", "orders", session=30000)
    check(m["generation"] == 3, "third join %r" % m)
    owned = {x["member_id"]: heartbeat(c, 1, "billing", x["member_id"])["partitions"]
             for x in (a, b, m)}
    check(sorted(len(p) for p in owned.values()) == [4, 4, 4], "assignment %r" % owned)
    check(sorted(sum(owned.values(), [])) == list(range(12)), "assignment %r" % owned)
    d = describe(c, 2, "billing")
    check(d["topic"] == "orders" and d["generation"] == 3 and len(d["members"]) == 3,
          "describe %r" % d)
    check({x["member_id"]: x["partitions"] for x in d["members"]} == owned, "describe %r" % d)
    check(all(x["last_heartbeat_ms_ago"] < 10000 for x in d["members"]), "describe %r" % d)
    st, obj = c.call(3, "GET", "/v1/groups")
    check(check_ok(st, obj, "list")["groups"] ==
          [{"group": "billing", "topic": "orders", "generation": 3, "members": 3}],
          "list %r" % obj)

    # Records from the member's own partitions only, each at most once.
    sent = produce(c, 1, "orders", ["v%d" % k for k in range(60)])
    got = []
    for _ in range(10):
        r = fetch(c, 2, "billing", a["member_id"], max_=7)
        check(r["generation"] == 3 and len(r["records"]) <= 7, "fetch %r" % r)
        got += [(x["partition_id"], x["offset"]) for x in r["records"]]
    mine = sorted(x for x in sent if x[0] in owned[a["member_id"]])
    check(sorted(got) == mine, "member a fetched %r, its partitions hold %r" % (got, mine))

    # Commits: its own partitions at the current generation; anything else
    # is fenced off with 409 and the reason.
    upto = {}
    for p, o in got:
        upto[p] = max(upto.get(p, 0), o + 1)
    st, obj = commit(c, 3, "billing", a["member_id"], 3, upto)
    check_ok(st, obj, "commit")
    st, obj = commit(c, 1, "billing", a["member_id"], 2, upto)
    check("generation 2 is not the group's current generation 3" in
          check_failure(st, obj, 409, "stale generation")["message"], "%r" % obj)
    theirs = owned[b["member_id"]][0]
    st, obj = commit(c, 1, "billing", a["member_id"], 3, {theirs: 1})
    check("partition %d is not assigned to the member" % theirs in
          check_failure(st, obj, 409, "another's partition")["message"], "%r" % obj)
    for path, body, says in (("/heartbeat", {"member_id": "nobody"}, "join again"),
                             ("/commit", {"member_id": "nobody", "generation": 3,
                                          "offsets": []}, "join again"),
                             ("/leave", {"member_id": "nobody"}, "not in group billing")):
        st, obj = c.call(2, "POST", "/v1/groups/billing" + path, body)
        check(says in check_failure(st, obj, 409, path)["message"], "%r" % obj)
    st, obj = c.call(2, "GET", "/v1/groups/billing/records", query={"member_id": "nobody"})
    check_failure(st, obj, 409, "fetch by a stranger")
    d = describe(c, 1, "billing")
    committed = {o["partition_id"]: o["committed"] for o in d["offsets"]}
    check(all(committed[p] == upto.get(p, 0) for p in range(12)),
          "committed %r, want %r" % (committed, upto))
    check(all(o["lag"] == o["high_watermark"] - o["committed"] for o in d["offsets"]),
          "lag %r" % d["offsets"])

    # One fetch a member at a time; the long poll wakes on a produce.
    p0 = owned[a["member_id"]][0]
    fetch(c, 1, "billing", a["member_id"], max_=10000)  # Drain.
    out = {}

    def long_poll():
        out["r"] = fetch(c, 2, "billing", a["member_id"], wait_ms=10000, queued=True)
    t = threading.Thread(target=long_poll)
    t0 = time.monotonic()
    t.start()
    until_waiting(c, 3, "billing", a["member_id"])
    produce(c, 1, "orders", ["late"], partition=p0)
    t.join(15)
    check([x["value"] for x in out["r"]["records"]] == ["late"], "long poll %r" % out)
    check(time.monotonic() - t0 < 8, "the long poll waited its whole wait_ms")

    # A long poll that outlasts a rebalance gives only what its member
    # still owns, under the new generation, so its commit holds.
    x = join(c, 1, "polls", "orders")
    out2 = {}

    def poll_x():
        out2["r"] = fetch(c, 2, "polls", x["member_id"], wait_ms=10000, queued=True)
    t = threading.Thread(target=poll_x)
    fetch(c, 3, "polls", x["member_id"], max_=10000)  # Drain first.
    t.start()
    until_waiting(c, 1, "polls", x["member_id"])
    y = join(c, 3, "polls", "orders")
    xs = heartbeat(c, 1, "polls", x["member_id"])["partitions"]
    ys = heartbeat(c, 1, "polls", y["member_id"])["partitions"]
    check(len(xs) == 6 and len(ys) == 6, "after y joined: %r %r" % (xs, ys))
    produce(c, 1, "orders", ["to-y"], partition=ys[0])
    produce(c, 1, "orders", ["to-x"], partition=xs[0])
    t.join(15)
    r = out2["r"]
    check(r["generation"] == 2 and all(rec["partition_id"] in xs for rec in r["records"]),
          "a long poll across a rebalance answered %r" % r)
    got = r["records"] + fetch(c, 1, "polls", x["member_id"])["records"]
    check([rec["value"] for rec in got] == ["to-x"], "member x got %r" % got)
    st, obj = commit(c, 2, "polls", x["member_id"], r["generation"],
                     {got[0]["partition_id"]: got[0]["offset"] + 1})
    check_ok(st, obj, "commit after the rebalance")
    check([rec["value"] for rec in fetch(c, 2, "polls", y["member_id"])["records"]
           if rec["value"].startswith("to-")] == ["to-y"], "member y's record")
    for m_ in (x, y):
        check_ok(*c.call(1, "POST", "/v1/groups/polls/leave", {"member_id": m_["member_id"]}),
                 "leave")

    # A long poll through a follower outlasts the follower's usual 15 s
    # wait for the leader: the forward waits for wait_ms on top.
    lead = c.wait_leader()
    follower = next(i for i in c.managers if i != lead)
    fetch(c, follower, "billing", b["member_id"], max_=10000)  # Drain first.
    t0 = time.monotonic()
    r = fetch(c, follower, "billing", b["member_id"], wait_ms=16000, timeout=40)
    check(r["records"] == [] and time.monotonic() - t0 > 15.5,
          "a 16 s long poll through a follower: %r after %.1f s" % (r, time.monotonic() - t0))

    # A leave moves the leaver's partitions only; the member is gone.
    st, obj = c.call(1, "POST", "/v1/groups/billing/leave", {"member_id": m["member_id"]})
    check_ok(st, obj, "leave")
    after = {x: heartbeat(c, 2, "billing", x)["partitions"]
             for x in (a["member_id"], b["member_id"])}
    for x in after:
        check(set(owned[x]) <= set(after[x]) and len(after[x]) == 6, "after the leave %r" % after)
    st, obj = c.call(1, "POST", "/v1/groups/billing/heartbeat", {"member_id": m["member_id"]})
    check_failure(st, obj, 409, "heartbeat after leaving")

    # An operator's changes wait for a group with no members.
    st, obj = c.call(1, "POST", "/v1/groups/billing/offsets", {"to": "earliest"})
    check("live members" in check_failure(st, obj, 409, "reset with members")["message"], "")
    st, obj = c.call(1, "DELETE", "/v1/groups/billing")
    check_failure(st, obj, 409, "delete with members")
    for x in (a, b):
        check_ok(*c.call(3, "POST", "/v1/groups/billing/leave", {"member_id": x["member_id"]}),
                 "leave")
    check_ok(*c.call(2, "POST", "/v1/groups/billing/offsets", {"to": {"0": 1, "3": 2}}), "set")
    d = describe(c, 1, "billing")
    committed = {o["partition_id"]: o["committed"] for o in d["offsets"]}
    check(committed[0] == 1 and committed[3] == 2, "set offsets %r" % committed)
    check_ok(*c.call(2, "POST", "/v1/groups/billing/offsets", {"to": "latest"}), "latest")
    d = describe(c, 3, "billing")
    check(all(o["committed"] == o["high_watermark"] and o["lag"] == 0 for o in d["offsets"])
          and sum(o["committed"] for o in d["offsets"]) == 63, "latest %r" % d["offsets"])
    check_ok(*c.call(2, "POST", "/v1/groups/billing/offsets", {"to": "earliest"}), "earliest")
    d = describe(c, 1, "billing")
    check(all(o["committed"] == 0 for o in d["offsets"]) and d["members"] == [],
          "earliest %r" % d)
    # A new member starts from the committed offsets: every record again.
    n = join(c, 1, "billing", "orders")
    r = fetch(c, 2, "billing", n["member_id"], max_=10000)
    check(len(r["records"]) == 63, "after earliest %d records" % len(r["records"]))
    check_ok(*c.call(3, "POST", "/v1/groups/billing/leave", {"member_id": n["member_id"]}),
             "leave")
    check_ok(*c.call(1, "DELETE", "/v1/groups/billing"), "delete")
    st, obj = c.call(2, "GET", "/v1/groups/billing")
    check_failure(st, obj, 404, "describe a deleted group")
    st, obj = c.call(2, "DELETE", "/v1/groups/billing")
    check_failure(st, obj, 404, "delete again")

    # Bad input: 400 naming the problem; an unknown topic 404; a group
    # consumes one topic (409).
    for path, body, status in (
            ("/v1/groups/billing/join", {}, 400),
            ("/v1/groups/billing/join", {"topic": "orders", "session_timeout_ms": 999}, 400),
            ("/v1/groups/billing/join", {"topic": "orders", "session_timeout_ms": "x"}, 400),
            ("/v1/groups/billing/join", {"topic": 7}, 400),
            ("/v1/groups/billing/join", {"topic": "nope"}, 404),
            ("/v1/groups/a%20b/join", {"topic": "orders"}, 400),
            ("/v1/groups/billing/heartbeat", {}, 400),
            ("/v1/groups/billing/heartbeat", {"member_id": "a/b"}, 400),
            ("/v1/groups/billing/commit", {"member_id": "x"}, 400),
            ("/v1/groups/billing/commit", {"member_id": "x", "generation": 1,
                                           "offsets": [{"partition_id": -1, "offset": 0}]}, 400),
            ("/v1/groups/billing/commit", {"member_id": "x", "generation": 1,
                                           "offsets": [{"partition_id": 1, "offset": 0},
                                                       {"partition_id": 1, "offset": 2}]}, 400),
            ("/v1/groups/billing/offsets", {}, 400)):
        st, obj = c.call(1, "POST", path, body)
        check_failure(st, obj, status, "POST %s %r" % (path, body))
    st, obj = c.call(1, "GET", "/v1/groups/billing/records",
                     query={"member_id": "x", "max": 0})
    check_failure(st, obj, 400, "max 0")
    join(c, 2, "billing", "orders")
    st, obj = c.call(1, "POST", "/v1/groups/billing/join", {"topic": "audit"})
    check("consumes topic orders" in check_failure(st, obj, 409, "another topic")["message"],
          "%r" % obj)
    st, obj = c.call(1, "POST", "/v1/groups/billing/offsets", {"to": {"99": 1}})
    check_failure(st, obj, 409, "offsets of a group with a member")
    # A topic's deletion takes its groups.
    st, obj = c.call(1, "DELETE", "/admin/topics/orders")
    check_ok(st, obj, "delete the topic")
    st, obj = c.call(3, "GET", "/v1/groups")
    check(check_ok(st, obj, "list")["groups"] == [], "groups after the topic %r" % obj)


def member(ctx, c, k, group, topic, session_ms=3000):
    out = os.path.join(ctx.dir, "member%d.out" % k)
    managers = ",".join(c.m_http[i] for i in sorted(c.m_http))
    argv = [sys.executable, MEMBER, "--managers", managers, "--group", group,
            "--topic", topic, "--out", out, "--session-ms", str(session_ms), "--max", "300"]
    d = ctx.daemon("member", k, argv)
    d.out = out
    return d


def any_manager(c, method, path, body=None, query=None):
    for i in c.running_managers():
        try:
            st, obj = c.call(i, method, path, body, query=query, timeout=10)
        except Unreachable:
            continue
        if st == 200:
            return obj
    return None


def committed_now(c, group):
    d = any_manager(c, "GET", "/v1/groups/%s" % group)
    return None if d is None else {o["partition_id"]: o["committed"] for o in d["offsets"]}


def test_group_members_fail_over(ctx):
    c = Cluster(ctx).start()
    c.create_topic(1, "jobs", partitions=12)
    c.wait_topic_led("jobs")
    members = [member(ctx, c, k, "workers", "jobs") for k in (1, 2, 3)]
    for x in members:
        x.start()

    def shares():
        d = any_manager(c, "GET", "/v1/groups/workers")
        return d is not None and sorted(len(m["partitions"]) for m in d["members"]) == [4, 4, 4]
    wait_until(shares, 30, "three members to share 12 partitions 4/4/4")

    acked = {}
    series = []
    stop = threading.Event()

    def sample():
        while not stop.is_set():
            t0 = time.monotonic()
            snap = committed_now(c, "workers")
            if snap is not None:
                series.append((t0, time.monotonic(), snap))
            time.sleep(0.2)
    sampler = threading.Thread(target=sample)
    sampler.start()
    total = 10000
    try:
        k = 0
        leader_killed = False
        while k < total:
            vals = ["j%d" % n for n in range(k, k + 100)]
            for i in [1, 2, 3] * 3:
                if not c.managers[i].running():
                    continue
                try:
                    st, obj = c.call(i, "POST", "/v1/topics/jobs/records",
                                     {"records": [{"value": v} for v in vals]}, timeout=10)
                except Unreachable:
                    continue
                if st == 200:
                    for v, o in zip(vals, obj["offsets"]):
                        acked[v] = (o["partition_id"], o["offset"])
                    break
            k += 100
            if k == 2000:
                # Stopped past its session: its partitions move to the others.
                members[1].pause()
                wait_until(lambda: len((any_manager(c, "GET", "/v1/groups/workers") or
                                        {"members": []})["members"]) == 2,
                           20, "the stopped member to expire")
                members[1].resume()
            if k == 4000 and not leader_killed:
                lead = c.wait_leader()
                c.managers[lead].kill()
                leader_killed = True
                c.wait_leader(exclude=(lead,))
            if k == 5000:
                c.managers[lead].start()
            if k == 6000:
                late = member(ctx, c, 4, "workers", "jobs")
                late.start()
                members.append(late)
        check(len(acked) == total, "%d of %d records acknowledged" % (len(acked), total))

        def drained():
            snap = committed_now(c, "workers")
            d = any_manager(c, "GET", "/v1/groups/workers")
            return snap is not None and d is not None and \
                all(o["lag"] == 0 for o in d["offsets"]) and \
                sum(o["committed"] for o in d["offsets"]) == total
        wait_until(drained, 90, "the group to commit every record", interval=0.5)
    finally:
        stop.set()
        sampler.join()
    final = committed_now(c, "workers")
    for x in members:
        check(x.terminate() == 0, "member %r exit status" % x)
    recs, outcome = checker.read_member_files([x.out for x in members])
    results = checker.check_group(acked, recs, outcome, series, final)
    for r in results:
        print("    %s %s: %s" % ("ok  " if r.passed else "FAIL", r.name, r.detail))
    check(all(r.passed for r in results),
          "; ".join("%s: %s" % (r.name, r.detail) for r in results if not r.passed))
    # The stopped member was fenced or expired, and joined again.
    with open(members[1].out) as f:
        text = f.read()
    check(text.count("\nJ ") + text.startswith("J ") >= 2,
          "member 2 joined %d times" % text.count("J "))
    check(" fenced\n" in text or "\nX " in text,
          "member 2 got no 409 after its session lapsed")
    d = any_manager(c, "GET", "/v1/groups/workers")
    check(len(d["members"]) == 0, "members after they left: %s" % json.dumps(d["members"]))


def test_paused_leader_fetches_nothing_stale(ctx):
    c = Cluster(ctx).start()
    c.create_topic(1, "orders", partitions=1)
    c.wait_topic_led("orders")
    produce(c, 1, "orders", ["o%d" % k for k in range(60)])
    m = join(c, 1, "billing", "orders", session=60000)["member_id"]
    done = 0
    for rnd in range(3):
        lead = c.wait_leader()
        others = [i for i in sorted(c.managers) if i != lead]
        # Through the leader: fetch 5 and commit them.
        got = fetch(c, lead, "billing", m, max_=5)
        offs = [r["offset"] for r in got["records"]]
        check(offs == list(range(done, done + 5)), "round %d fetched %r" % (rnd, offs))
        st, obj = commit(c, lead, "billing", m, got["generation"], {0: done + 5})
        check_ok(st, obj, "commit of %d" % (done + 5))
        done += 5
        c.managers[lead].pause()
        try:
            wait_until(lambda: (lambda x: x if x is not None and x != lead else None)(
                c.leader(among=others)), 30, "a leader other than paused manager%d" % lead)

            # Through the new leader: the member goes on (409 while the
            # new leader's session view settles is retried) and commits.
            def fetched():
                st, obj = c.call(others[0], "GET", "/v1/groups/billing/records",
                                 query={"member_id": m, "max": 5})
                return obj if st == 200 and obj["records"] else None
            got = wait_until(fetched, 20, "a fetch through the new leader")
            offs = [r["offset"] for r in got["records"]]
            check(offs == list(range(done, done + 5)), "new leader fetched %r" % offs)
            st, obj = commit(c, others[0], "billing", m, got["generation"], {0: done + 5})
            check_ok(st, obj, "commit of %d through the new leader" % (done + 5))
            done += 5
            # A fetch sent to the paused manager: its bytes wait in the
            # socket while it is stopped.
            host, port = c.m_http[lead].rsplit(":", 1)
            conn = http.client.HTTPConnection(host, int(port), timeout=30)
            conn.request("GET", "/v1/groups/billing/records?member_id=%s&max=5" % m)
        finally:
            c.managers[lead].resume()
        resp = conn.getresponse()
        body = json.loads(resp.read().decode())
        conn.close()
        if resp.status == 200:
            offs = [r["offset"] for r in body["records"]]
            check(all(o >= done for o in offs),
                  "round %d: the resumed manager%d handed out %r although %d was "
                  "committed through manager%d" % (rnd, lead, offs, done, others[0]))
            done += len(offs)
            if offs:
                st, obj = commit(c, others[0], "billing", m, body["generation"], {0: done})
                check_ok(st, obj, "commit of %d" % done)
        else:
            check_failure(resp.status, body, resp.status, "fetch at the resumed manager")
            check(resp.status in (409, 503), "fetch at the resumed manager: %d %r"
                  % (resp.status, body))


if __name__ == "__main__":
    run_suite("groups", [
        test_group_api,
        test_group_members_fail_over,
        test_paused_leader_fetches_nothing_stale,
    ], binary="manager", ports=(30500, 30999))

#!/usr/bin/env python3
"""Day two: what an operator's mistakes must not cost (DESIGN.md section 17),
on real processes: 3 managers and 3 brokers from the build under test.

- test_wiped_managers_delete_nothing: a topic of 3 partitions holds 300
  records; the cluster stops, every manager's data directory is removed and
  the cluster starts again. The new managers commit a new cluster uid; every
  broker, bound to the old one, refuses to register (its /readyz says why)
  and refuses a signed call that names the new uid (409), so nothing is
  deleted: each broker still hosts its 3 replicas with their 100 records.
  With the managers' data put back, the brokers register again by
  themselves and all 300 records read back.
- test_wiped_manager_rejoins: a follower manager is SIGKILLed and its data
  directory removed. Started again, it asks the others what they hold, finds
  a live cluster, and asks to join; the leader removes its old membership
  (a voter with an empty log must not vote), then adds it as a spare and
  promotes it once caught up. It ends a voter with the others' state.
- test_managers_grow_and_shrink: 3 -> 5 -> 3 managers while a producer
  writes: managers 4 and 5 (not in --peers) start with empty directories
  and join by themselves (manager 5 listens on every address with
  --http-bind and answers at another local address); then `raftq cluster remove-manager` removes the
  leader (it hands leadership over first) and manager 5, and they are
  stopped. The chaos checkers then hold every acknowledged record at its
  offset, none twice, none refused appended, and the three managers left
  agree on their state.
- test_scaled_away_manager_leaves_and_returns: with five managers, a joined
  one (not in --peers) that stops answering for --manager-gone-ms is removed
  by the leader, while a seed gone as long is not; started again with its data, it
  finds the configuration leaves it out and joins again.
- test_new_broker_takes_its_share: a fourth broker joins three holding a
  topic of 6 partitions under writes; replicas move to it one at a time
  (GET /admin/moves shows them as "rebalance") until the counts differ by
  one at most; the chaos checkers hold every acknowledged record.
- test_removed_broker_id_comes_back: with three brokers a drain or removal
  is refused (409: it would wait for good); a fourth broker removed while
  running is refused when it registers again (its /readyz says so), and
  started again holding nothing it takes its id back and gets replicas.
- test_rolling_restart_of_every_broker: each broker in turn is stopped
  (SIGTERM: it hands the groups it leads over first), 200 writes land,
  it is started and waited for until its /readyz is 200, which now means every
  replica it follows has caught up with its leader; writes flow
  throughout, none is refused, and the chaos checkers hold every one
  acknowledged (the longest time without an acknowledgement is printed).
- test_full_disk_refuses_then_recovers (needs root: a size-limited tmpfs
  per broker): a file fills one broker's volume past its reserve; produces
  to the partition it holds get 507 naming it, through any manager, and
  nothing is lost; its /metrics and GET /admin/brokers show the volume; with
  the file gone produces go on by themselves.
- test_retention_sized_from_the_volume (root): more than a small volume's
  share is produced into one partition with the default 1 GiB retention;
  the replicas keep their share of the volume (retention trims the oldest
  segments) and no produce is refused.
- test_older_manager_data_quarantines: the managers' data is restored from
  a copy older than a topic. The brokers (same cluster) register, and the
  replicas of that topic, which the store never placed, are quarantined,
  not deleted: listed by GET /admin/brokers, kept on disk, and the store's
  group counter moves past them, so a topic created now gets new group ids.
  An admin deletes one with DELETE /admin/brokers/{id}/replicas/{g}; a
  group the store places is refused (409), an unknown one is 404.

Run: python3 tests/integration/test_operator.py --build build/asan
"""

import http.client
import os
import random
import shutil
import subprocess
import sys
import threading
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
sys.path.insert(1, os.path.join(os.path.dirname(HERE), "chaos"))

import checker  # noqa: E402
import rqkeys  # noqa: E402
from harness import Skip, check, run_suite, wait_until  # noqa: E402
from test_manager import (ADMIN_TOKEN, MAX_MESSAGE, SECRET, Cluster, Unreachable,  # noqa: E402
                          call, check_failure, check_ok, digests)


def admin_managers(c):
    """GET /admin/managers from the first running manager that answers."""
    for i in c.running_managers():
        try:
            st, obj = c.call(i, "GET", "/admin/managers", timeout=5)
        except Unreachable:
            continue
        if st == 200:
            return obj
    return None


def wait_uid(c):
    """The cluster uid, once the leader has committed one."""
    return wait_until(lambda: (admin_managers(c) or {}).get("cluster_uid"), 20,
                      "a committed cluster uid")


def broker_uid(c, b):
    with open(os.path.join(c.brokers[b].data_dir, "cluster_uid")) as f:
        return f.read().strip()


def hosted(c, b):
    """{group id: next_offset} of broker @b's replicas."""
    st, obj, _ = call(c.b_http[b], "GET", "/internal/replicas", timeout=5,
                      sign=rqkeys.HTTP_M2B)
    check(st == 200, "replicas of broker %d: %d %r" % (b, st, obj))
    return {r["group_id"]: r["next_offset"] for r in obj["replicas"]}


def produce_300(c, topic):
    """100 records into each of @topic's 3 partitions."""
    for p in range(3):
        recs = [{"value": "%s-%d-%d" % (topic, p, k), "partition_id": p} for k in range(100)]
        st, obj = c.call(1 + p % 3, "POST", "/v1/topics/%s/records" % topic, {"records": recs})
        check(len(check_ok(st, obj, "batch into %s/%d" % (topic, p))["offsets"]) == 100,
              "offsets %r" % obj)


def read_all(c, topic):
    """Every record of @topic's 3 partitions, read through the managers."""
    got = {}
    for p in range(3):
        st, obj = c.call(1 + p % 3, "GET", "/v1/topics/%s/partitions/%d/records" % (topic, p),
                         query={"offset": 0, "max": 1000})
        got[p] = [r["value"] for r in check_ok(st, obj, "read %s/%d" % (topic, p))["records"]]
    return got


def stop_all(c):
    for m in c.managers.values():
        check(m.terminate() == 0, "manager exit status")
    for b in c.brokers.values():
        check(b.terminate() == 0, "broker exit status")


def broker_refusal(c, b):
    """Broker @b's /readyz failure message, or None while it answers 200."""
    try:
        st, obj, _ = call(c.b_http[b], "GET", "/readyz", timeout=2)
    except Unreachable:
        return None
    return obj.get("message") if st == 503 and isinstance(obj, dict) else None


def test_wiped_managers_delete_nothing(ctx):
    c = Cluster(ctx, n_brokers=3).start()
    uid = wait_uid(c)
    c.create_topic(1, "keep", 3)
    c.wait_topic_led("keep")
    produce_300(c, "keep")
    want = read_all(c, "keep")
    for b in c.brokers:
        check(broker_uid(c, b) == uid, "broker %d is bound to %s, not %s"
              % (b, broker_uid(c, b), uid))
    stop_all(c)
    saved = {}
    for i, m in c.managers.items():
        saved[i] = m.data_dir + ".saved"
        shutil.move(m.data_dir, saved[i])

    # Empty managers: a new cluster, which no broker joins.
    c.start(wait=False)
    for i in c.managers:
        wait_until(lambda i=i: c.ready(i), 40, "manager%d to be ready" % i)
    new_uid = wait_uid(c)
    check(new_uid != uid, "the new cluster has the old uid %s" % uid)
    for b in c.brokers:
        msg = wait_until(lambda b=b: (lambda m: m if m and uid in m and new_uid in m else None)(
            broker_refusal(c, b)), 20, "broker %d to refuse cluster %s" % (b, new_uid))
        check("restore" in msg, "the refusal says what to do: %r" % msg)
    check(c.broker_states() == {}, "brokers registered with the new cluster: %r"
          % c.broker_states())
    # A call naming the new uid is refused; one naming the old one is not.
    gids = sorted(hosted(c, 1))
    check(len(gids) == 3, "broker 1 hosts %r" % gids)
    st, obj, _ = call(c.b_http[1], "DELETE", "/internal/replicas/%d" % gids[0],
                      sign=rqkeys.HTTP_M2B, headers={"X-Raftq-Cluster": new_uid})
    check_failure(st, obj, 409, "a delete from the new cluster")
    check(uid in obj["message"], "409 names the broker's cluster: %r" % obj)
    st, obj, _ = call(c.b_http[1], "GET", "/internal/replicas", sign=rqkeys.HTTP_M2B,
                      headers={"X-Raftq-Cluster": uid})
    check(st == 200, "a call naming the broker's own cluster: %d %r" % (st, obj))
    for b in c.brokers:
        h = hosted(c, b)
        check(sorted(h) == gids and all(v == 100 for v in h.values()),
              "broker %d hosts %r" % (b, h))
        check(broker_uid(c, b) == uid, "broker %d rebound" % b)

    # The managers' data back: the brokers register again by themselves.
    for m in c.managers.values():
        check(m.terminate() == 0, "manager exit status")
    for i, m in c.managers.items():
        shutil.rmtree(m.data_dir)
        shutil.move(saved[i], m.data_dir)
    for m in c.managers.values():
        m.start()
    c.wait_ready(timeout=60)
    check(wait_uid(c) == uid, "the restored cluster's uid")
    c.wait_topic_led("keep")
    got = read_all(c, "keep")
    check(got == want, "records after the restore differ: %r" %
          {p: len(v) for p, v in got.items()})
    for b in c.brokers:
        wait_until(lambda b=b: broker_refusal(c, b) is None, 20, "broker %d ready" % b)


def voters(c):
    """{id: role} of the members the leader's GET /admin/managers lists
    (a manager back from a stop may list an older configuration)."""
    for i in c.running_managers():
        try:
            st, obj = c.call(i, "GET", "/admin/managers", timeout=5)
        except Unreachable:
            continue
        if st == 200 and obj["leader"] is not None and obj["self"] == obj["leader"]:
            return {m["id"]: m["role"] for m in obj["managers"]}
    return {}


def wait_digests_agree(c, ids, timeout=30):
    def agree():
        d = {i: v for i, v in digests(c).items() if i in ids}
        return len(d) == len(ids) and len(set(d.values())) == 1
    wait_until(agree, timeout, "managers %s to hold the same state" % sorted(ids))


def test_wiped_manager_rejoins(ctx):
    c = Cluster(ctx, n_brokers=3).start()
    wait_uid(c)
    c.create_topic(1, "keep", 3)
    c.wait_topic_led("keep")
    produce_300(c, "keep")
    want = read_all(c, "keep")
    leader = c.wait_leader()
    f = next(i for i in c.managers if i != leader)
    c.managers[f].kill()
    shutil.rmtree(c.managers[f].data_dir)
    c.managers[f].start()
    wait_until(lambda: voters(c) == {leader: "leader", **{i: "follower" for i in c.managers
                                                         if i != leader}} and c.ready(f),
               40, "manager %d to be a voter again" % f)
    log = open(c.managers[f].log_path, errors="replace").read()
    check("lost its data" in log and "added this manager to its cluster" in log,
          "manager %d's log does not show the rejoin" % f)
    lead_log = open(c.managers[leader].log_path, errors="replace").read()
    check("asks to join with no data" in lead_log, "the leader did not remove the old membership")
    wait_digests_agree(c, set(c.managers))
    got = {}
    for p in range(3):
        st, obj = c.call(f, "GET", "/v1/topics/keep/partitions/%d/records" % p,
                         query={"offset": 0, "max": 1000})
        got[p] = [r["value"] for r in check_ok(st, obj, "read via manager %d" % f)["records"]]
    check(got == want, "records read through the rejoined manager differ")


class Producer(threading.Thread):
    """Produces "p0:N" records into @topic through random running
    managers, one at a time, and keeps the history the chaos checkers
    read (invoke, then ok, fail or info)."""

    def __init__(self, c, topic, partitions=3):
        super().__init__(daemon=True)
        self.c = c
        self.topic = topic
        self.partitions = partitions
        self.ops = []
        self.stop = threading.Event()
        self.t0 = time.monotonic()
        self.acked = 0

    def note(self, **op):
        op.update(index=len(self.ops), process=0, t=time.monotonic() - self.t0)
        self.ops.append(op)

    def run(self):
        n = 0
        while not self.stop.is_set():
            n += 1
            value = "p0:%d" % n
            ids = [i for i in list(self.c.m_http) if self.c.managers[i].running()]
            i = random.choice(ids)
            self.note(type="invoke", f="produce", topic=self.topic, value=value)
            try:
                st, obj, _ = call(self.c.m_http[i], "POST", "/v1/topics/%s/records" % self.topic,
                                  {"records": [{"value": value,
                                                "partition_id": n % self.partitions}]},
                                  timeout=10)
            except Unreachable:
                self.note(type="info", f="produce", topic=self.topic, value=value)
                continue
            if st == 200:
                o = obj["offsets"][0]
                self.acked += 1
                self.note(type="ok", f="produce", topic=self.topic, value=value,
                          partition=o["partition_id"], offset=o["offset"])
            elif 400 <= st < 500:
                self.note(type="fail", f="produce", topic=self.topic, value=value)
            else:
                self.note(type="info", f="produce", topic=self.topic, value=value)
                time.sleep(0.05)


def start_manager(c, ctx, i, extra=()):
    """Manager @i, not in --peers: it joins the cluster by itself. In
    @extra, "0.0.0.0:" stands for its HTTP port on every address and
    "0.0.0.0:raft" for its Raft port."""
    c.m_raft[i] = "127.0.0.1:%d" % ctx.ports.take()
    c.m_http[i] = "127.0.0.1:%d" % ctx.ports.take()
    ports = {"0.0.0.0:": c.m_http[i], "0.0.0.0:raft": c.m_raft[i]}
    extra = [("0.0.0.0:" + ports[a].rsplit(":", 1)[1]) if a in ports else a for a in extra]
    peers = ",".join("%d=%s" % (k, a) for k, a in sorted(c.m_raft.items()) if k <= 3)
    data = os.path.join(ctx.dir, "manager%d" % i)
    argv = [ctx.binary, "--id", str(i), "--peers", peers, "--raft-addr", c.m_raft[i],
            "--http-addr", c.m_http[i], "--data", data, "--max-message-bytes", str(MAX_MESSAGE),
            "--election-timeout-ms", "600", "--heartbeat-ms", "100", "--cluster-secret", SECRET,
            "--log-level", ctx.opts.log_level, "--admin-token", ADMIN_TOKEN] + list(extra)
    d = ctx.daemon("manager", i, argv)
    d.data_dir = data
    c.managers[i] = d
    d.start()


def raftq(c, ctx, *args):
    """The client against every running manager; (exit status, output)."""
    exe = os.path.join(os.path.dirname(ctx.binary), "raftq")
    urls = ",".join("http://%s" % c.m_http[i] for i in c.running_managers())
    env = dict(os.environ, RAFTQ_ADMIN_TOKEN=ADMIN_TOKEN)
    p = subprocess.run([exe, "--managers", urls, "--timeout", "30"] + list(args),
                       stdout=subprocess.PIPE, stderr=subprocess.STDOUT, env=env, timeout=60)
    return p.returncode, p.stdout.decode("utf-8", "replace")


def test_managers_grow_and_shrink(ctx):
    c = Cluster(ctx, n_brokers=3).start()
    wait_uid(c)
    c.create_topic(1, "flow", 3)
    c.wait_topic_led("flow")
    prod = Producer(c, "flow")
    prod.start()
    try:
        wait_until(lambda: prod.acked >= 50, 30, "the producer to get going")
        start_manager(c, ctx, 4)
        # Manager 5 listens on every address (--http-bind, --raft-bind), as
        # on a pod, and is reached at its own.
        start_manager(c, ctx, 5, ["--http-bind", "0.0.0.0:", "--raft-bind", "0.0.0.0:raft"])
        wait_until(lambda: sorted(r for r in voters(c).values()) ==
                   ["follower"] * 4 + ["leader"] and all(c.ready(i) for i in (4, 5)),
                   60, "five voting managers")
        port5 = c.m_http[5].rsplit(":", 1)[1]
        st, _, _ = call("127.0.0.2:%s" % port5, "GET", "/readyz", timeout=5)
        check(st == 200, "manager 5 through another local address: %d" % st)
        acked = prod.acked
        wait_until(lambda: prod.acked >= acked + 50, 30, "writes with five managers")
        wait_digests_agree(c, {1, 2, 3, 4, 5})
        # Refused: fewer than 3 voters would be left after two removals...
        leader = c.wait_leader()
        other = 5 if leader != 5 else 4
        rc, out = raftq(c, ctx, "cluster", "remove-manager", str(leader))
        check(rc == 0, "remove-manager %d: %d %s" % (leader, rc, out))
        c.managers[leader].terminate()
        rc, out = raftq(c, ctx, "cluster", "remove-manager", str(other))
        check(rc == 0, "remove-manager %d: %d %s" % (other, rc, out))
        c.managers[other].terminate()
        left = set(c.managers) - {leader, other}
        wait_until(lambda: set(voters(c)) == left and len(left) == 3, 30,
                   "the managers %s alone" % sorted(left))
        # ...and now a third removal is refused.
        rc, out = raftq(c, ctx, "cluster", "remove-manager", str(min(left)))
        check(rc != 0 and "would leave 2 voters" in out, "a third removal: %d %s" % (rc, out))
        acked = prod.acked
        wait_until(lambda: prod.acked >= acked + 50, 30, "writes with the three left")
    finally:
        prod.stop.set()
        prod.join()
    wait_digests_agree(c, left)
    check_history(c, min(left), prod, "flow", 3)
    check(prod.acked > 150, "only %d writes acknowledged" % prod.acked)


def check_history(c, via, prod, topic, partitions):
    """The chaos checkers over @prod's history and every record of @topic
    read back through manager @via."""
    logs = {}
    for p in range(partitions):
        recs, offset = [], 0
        while True:
            st, obj = c.call(via, "GET", "/v1/topics/%s/partitions/%d/records" % (topic, p),
                             query={"offset": offset, "max": 10000})
            got = check_ok(st, obj, "read %s/%d" % (topic, p))["records"]
            if not got:
                break
            recs += [(r["offset"], r["value"]) for r in got]
            offset = got[-1]["offset"] + 1
        logs[(topic, p)] = {0: recs}
    results = [checker.check_acked(prod.ops, logs), checker.check_unique(prod.ops, logs),
               checker.check_failed_absent(prod.ops, logs)]
    for r in results:
        print("    %s %s: %s" % ("ok  " if r.passed else "FAIL", r.name, r.detail))
    check(all(r.passed for r in results),
          "; ".join("%s: %s" % (r.name, r.detail) for r in results if not r.passed))


def test_scaled_away_manager_leaves_and_returns(ctx):
    gone = ["--manager-gone-ms", "3000"]
    c = Cluster(ctx, n_brokers=3, manager_args=gone).start()
    wait_uid(c)
    start_manager(c, ctx, 4, gone)
    start_manager(c, ctx, 5, gone)
    wait_until(lambda: voters(c).get(4) == "follower" and voters(c).get(5) == "follower",
               30, "managers 4 and 5 to be voters")
    c.create_topic(1, "kept", 1)
    # Gone for longer than --manager-gone-ms (a StatefulSet scaled down):
    # the leader removes it, not a seed (one of --peers) gone as long.
    check(c.managers[4].terminate() == 0, "manager 4 exit status")
    seed = next(i for i in (1, 2, 3) if i != c.wait_leader())
    c.managers[seed].kill()
    wait_until(lambda: 4 not in voters(c), 30, "manager 4 to be removed")
    check(seed in voters(c), "seed manager %d was removed: %r" % (seed, voters(c)))
    lead_log = "".join(open(c.managers[i].log_path, errors="replace").read() for i in (1, 2, 3))
    check("manager 4 (not in --peers) has not answered" in lead_log, "no removal logged")
    c.managers[seed].start()
    # Back with its data (scaled up again): it finds itself left out and
    # joins again.
    c.managers[4].start()
    wait_until(lambda: voters(c).get(4) == "follower" and c.ready(4), 40,
               "manager 4 to be a voter again")
    log = open(c.managers[4].log_path, errors="replace").read()
    check("leaves this manager out" in log, "manager 4 did not say why it joins again")
    wait_digests_agree(c, {1, 2, 3, 4, 5})


class Tmpfs:
    """A size-limited tmpfs on each broker's data directory (needs root)."""

    def __init__(self, c, size_mib):
        if os.geteuid() != 0:
            raise Skip("needs root to mount a size-limited tmpfs for the brokers' data")
        self.dirs = []
        for b in c.brokers.values():
            os.makedirs(b.data_dir, exist_ok=True)
            subprocess.run(["mount", "-t", "tmpfs", "-o", "size=%dm" % size_mib, "tmpfs",
                            b.data_dir], check=True)
            self.dirs.append(b.data_dir)

    def close(self, c):
        for b in c.brokers.values():
            b.terminate()
        for d in self.dirs:
            subprocess.run(["umount", "-l", d], check=False)


def metric(addr, name):
    """The value of @name (no labels) in @addr's /metrics, or None."""
    host, port = addr.rsplit(":", 1)
    conn = http.client.HTTPConnection(host, int(port), timeout=5)
    try:
        conn.request("GET", "/metrics")
        text = conn.getresponse().read().decode()
    finally:
        conn.close()
    for line in text.splitlines():
        if line.startswith(name + " "):
            return float(line.split()[1])
    return None


def batch(c, i, topic, n, tag):
    recs = [{"value": "%s-%05d-" % (tag, k) + "x" * 980, "partition_id": 0} for k in range(n)]
    return c.call(i, "POST", "/v1/topics/%s/records" % topic, {"records": recs})


def test_full_disk_refuses_then_recovers(ctx):
    c = Cluster(ctx, n_brokers=3, broker_args=[
        "--disk-reserve-bytes", str(24 << 20), "--segment-bytes", str(2 << 20)])
    fs = Tmpfs(c, 96)
    try:
        c.start()
        c.create_topic(1, "full", 1)
        c.wait_topic_led("full")
        acked = 0
        for k in range(5):
            st, obj = batch(c, 1 + k % 3, "full", 100, "a%d" % k)
            acked += len(check_ok(st, obj, "produce before")["offsets"])
        # An operator's file takes one broker's volume past its reserve.
        victim = 2
        ballast = os.path.join(c.brokers[victim].data_dir, "ballast")
        free = os.statvfs(ballast.rsplit("/", 1)[0])
        size = free.f_bavail * free.f_frsize - (12 << 20)
        with open(ballast, "wb") as f:
            os.posix_fallocate(f.fileno(), 0, size)
        wait_until(lambda: metric(c.b_http[victim], "raftq_broker_disk_low") == 1, 10,
                   "broker %d to see its volume under its reserve" % victim)
        wait_until(lambda: (c.broker_states()[victim].get("disk") or {}).get("low"), 10,
                   "GET /admin/brokers to show broker %d low on disk" % victim)
        d = c.broker_states()[victim]["disk"]
        check(d["reserve_bytes"] == 24 << 20 and d["free_bytes"] < d["reserve_bytes"]
              and d["total_bytes"] == 96 << 20, "disk figures %r" % d)

        refused = []

        def refused_507():
            st, obj = batch(c, 1 + len(refused) % 3, "full", 10, "b%d" % len(refused))
            if st == 200:
                return False
            refused.append((st, obj))
            return st == 507
        wait_until(refused_507, 15, "a produce refused with 507")
        st, obj = refused[-1]
        check_failure(st, obj, 507, "a produce onto a full volume")
        check("broker %d" % victim in obj["message"] and "reserve" in obj["message"],
              "the 507 does not name the broker and its reserve: %r" % obj)
        check(all(s in (200, 507) for s, _ in refused), "other failures: %r" % refused)
        lead = c.group_leader(c.describe("full")["partitions"][0]["group_id"], [1, 2, 3])
        check(metric(c.b_http[lead], "raftq_broker_disk_refused_total") >= 1,
              "broker %d counted no refusal" % lead)
        # Space returns: produces go on by themselves.
        os.unlink(ballast)

        def taken():
            st, obj = batch(c, 2, "full", 10, "c")
            return st == 200
        wait_until(taken, 15, "a produce taken once space returned")
        check(metric(c.b_http[victim], "raftq_broker_disk_low") == 0, "still low")
        wait_until(lambda: not c.broker_states()[victim]["disk"]["low"], 10,
                   "GET /admin/brokers to show broker %d's space back" % victim)
        st, obj = c.call(1, "GET", "/v1/topics/full/partitions/0/records",
                         query={"offset": 0, "max": 10000})
        got = check_ok(st, obj, "read back")["records"]
        check(len(got) >= acked + 10, "%d records read, %d acknowledged" % (len(got), acked + 10))
        check(all(p.running() for p in c.brokers.values()), "a broker exited")
    finally:
        fs.close(c)


def test_retention_sized_from_the_volume(ctx):
    c = Cluster(ctx, n_brokers=3, broker_args=[
        "--disk-reserve-bytes", str(8 << 20), "--segment-bytes", str(2 << 20),
        "--retention-check-ms", "1000", "--raft-log-memory-bytes", str(4 << 20)])
    fs = Tmpfs(c, 48)
    try:
        c.start()
        c.create_topic(1, "keep", 1)
        c.wait_topic_led("keep")
        n = 0
        # 200 KB each, 40 MB in all: past the replica's share of the 48 MiB
        # volume (48 - 2 x 8 MiB of reserve - 8.75 MiB for its Raft log).
        for k in range(200):
            st, obj = batch(c, 1 + k % 3, "keep", 200, "r%d" % k)
            check_ok(st, obj, "produce %d (%d MB in)" % (k, n // 1000))
            n += 200
        gid = c.describe("keep")["partitions"][0]["group_id"]
        for b in c.brokers:
            wait_until(lambda b=b: c.broker_replica(b, gid).get("next_offset") == n, 20,
                       "broker %d to hold all %d records" % (b, n))
            r = c.broker_replica(b, gid)
            check(r.get("first_offset", 0) > 0, "broker %d kept everything: %r" % (b, r))
            check(metric(c.b_http[b], "raftq_broker_disk_low") == 0, "broker %d low" % b)
    finally:
        fs.close(c)


def test_new_broker_takes_its_share(ctx):
    c = Cluster(ctx, n_brokers=4).start(brokers={1, 2, 3})
    c.create_topic(1, "spread", 6)
    c.wait_topic_led("spread")
    prod = Producer(c, "spread", partitions=6)
    prod.start()
    kinds = set()
    try:
        wait_until(lambda: prod.acked >= 50, 30, "the producer to get going")
        c.brokers[4].start()

        def balanced():
            st, obj = c.call(1, "GET", "/admin/moves")
            if st == 200:
                kinds.update(m["kind"] for m in obj["moves"])
            states = c.broker_states()
            counts = [b["partitions"] for b in states.values() if b["state"] == "alive"]
            return (len(counts) == 4 and max(counts) - min(counts) <= 1 and
                    st == 200 and not obj["moves"])
        wait_until(balanced, 120, "the 18 replicas spread over 4 brokers", interval=0.3)
        acked = prod.acked
        wait_until(lambda: prod.acked >= acked + 50, 30, "writes after the moves")
    finally:
        prod.stop.set()
        prod.join()
    # Every move GET /admin/moves showed (a move can come and go between
    # two looks) was a rebalancing one: nothing needed repair.
    check(kinds <= {"rebalance"}, "moves seen: %r" % kinds)
    states = c.broker_states()
    check(states[4]["partitions"] >= 4, "broker 4 holds %r" % states[4])
    wait_until(lambda: c.groups_match_store("spread"), 30,
               "every group's voters to be its replicas in the store")
    check_history(c, 2, prod, "spread", 6)
    rc, out = raftq(c, ctx, "partition", "moves")
    check(rc == 0 and "no moves under way" in out, "partition moves: %d %s" % (rc, out))
    log = "".join(open(c.managers[i].log_path, errors="replace").read() for i in c.managers)
    check(log.count("(rebalancing)") >= 4, "fewer than 4 rebalancing moves logged")


def test_removed_broker_id_comes_back(ctx):
    c = Cluster(ctx, n_brokers=4).start(brokers={1, 2, 3})
    c.create_topic(1, "ids", 3)
    c.wait_topic_led("ids")
    # With three brokers a drain or a removal would wait for good.
    for method, path in (("POST", "/admin/brokers/1/drain"), ("DELETE", "/admin/brokers/1")):
        obj = check_failure(*c.call(1, method, path), 409, "%s %s with three brokers"
                            % (method, path))
        check("add a broker first" in obj["message"], "the 409 says what to do: %r" % obj)
    c.brokers[4].start()
    c.wait_ready()
    # Removed while it runs: it holds nothing then, but its process
    # registered already, so its registration is refused (not ready, and
    # /readyz says why).
    st, obj = c.call(1, "DELETE", "/admin/brokers/4")
    check(st in (200, 202), "remove broker 4: %d %r" % (st, obj))
    wait_until(lambda: c.broker_states()[4]["state"] == "removed", 60, "broker 4 REMOVED",
               interval=0.3)

    def refused():
        try:
            st, obj, _ = call(c.b_http[4], "GET", "/readyz", timeout=2)
        except Unreachable:
            return None
        return st == 503 and "was removed" in obj.get("message", "")
    wait_until(refused, 20, "broker 4's /readyz to say it was removed")
    check(c.broker_states()[4]["state"] == "removed", "broker 4 came back by itself")
    # Started again holding nothing (a pod scaled down and up): a new
    # broker with the same id, which rebalancing gives replicas.
    check(c.brokers[4].terminate() == 0, "broker 4 exit status")
    c.brokers[4].start()
    wait_until(lambda: c.broker_states()[4]["state"] == "alive", 30, "broker 4 ALIVE again")
    wait_until(lambda: c.broker_states()[4]["partitions"] >= 2, 60,
               "broker 4 to take replicas again", interval=0.3)
    log = "".join(open(c.managers[i].log_path, errors="replace").read() for i in c.managers)
    check("registers again holding nothing" in log, "the leader did not say the id came back")


def test_scaled_down_broker_moves_its_data_first(ctx):
    """A StatefulSet scaled down runs the pod's preStop hook, which runs
    `raftq broker remove ID --wait S` (deploy/k8s/30-broker.yaml): it
    returns once every replica the broker held is on the others, under
    writes, and a later scale-up starts the broker on its (now empty)
    volume, which takes the id back and its share."""
    c = Cluster(ctx, n_brokers=4).start()
    c.create_topic(1, "shrink", 4)
    c.wait_topic_led("shrink")
    wait_until(lambda: c.broker_states()[4]["partitions"] >= 2, 60,
               "broker 4 to hold replicas", interval=0.3)
    held = c.broker_states()[4]["partitions"]
    prod = Producer(c, "shrink", partitions=4)
    prod.start()
    try:
        wait_until(lambda: prod.acked >= 50, 30, "the producer to get going")
        t0 = time.monotonic()
        rc, out = raftq(c, ctx, "broker", "remove", "4", "--wait", "50")
        check(rc == 0 and "broker 4 is removed" in out, "remove --wait: %d %r" % (rc, out))
        print("    broker 4 removed, its %d replicas moved, in %.1f s under writes"
              % (held, time.monotonic() - t0))
        b = c.broker_states()[4]
        check(b["state"] == "removed" and b["partitions"] == 0 and b["hosted"] == 0,
              "broker 4 after the removal: %r" % b)
        st, obj, _ = call(c.b_http[4], "GET", "/internal/replicas", timeout=5,
                          sign=rqkeys.HTTP_M2B)
        check(st == 200 and obj["replicas"] == [], "broker 4 still hosts %d %r" % (st, obj))
        # Three left: the next scale-down's removal is refused at once (the
        # hook then leaves the broker to the repair), and does not wait.
        t0 = time.monotonic()
        rc, out = raftq(c, ctx, "broker", "remove", "3", "--wait", "50")
        check(rc == 1 and "add a broker first" in out and time.monotonic() - t0 < 20,
              "remove with three brokers: %d %r" % (rc, out))
        base = prod.acked
        wait_until(lambda: prod.acked >= base + 50, 30, "writes after the removal")
        # The pod goes; the volume stays; the StatefulSet grows again.
        check(c.brokers[4].terminate() == 0, "broker 4 exit status")
        base = prod.acked
        wait_until(lambda: prod.acked >= base + 50, 30, "writes with broker 4 gone")
        c.brokers[4].start()
        wait_until(lambda: c.broker_states()[4]["state"] == "alive", 30, "broker 4 ALIVE again")
        wait_until(lambda: c.broker_states()[4]["partitions"] >= 2, 60,
                   "broker 4 to take its share again", interval=0.3)
    finally:
        prod.stop.set()
        prod.join(15)
    check_history(c, 1, prod, "shrink", 4)


def test_rolling_restart_of_every_broker(ctx):
    c = Cluster(ctx, n_brokers=3, broker_args=["--shutdown-grace-ms", "5000"])
    c.start()
    c.create_topic(1, "roll", 3)
    c.wait_topic_led("roll")
    prod = Producer(c, "roll")
    prod.start()
    gaps = []
    try:
        wait_until(lambda: prod.acked >= 50, 30, "the producer to get going")
        for b in (1, 2, 3):
            check(c.brokers[b].terminate() == 0, "broker %d exit status" % b)
            # While it is down its groups go on: 200 more writes, then the
            # commit index of each group's leader, which it must reach
            # before it is ready.
            base = prod.acked
            wait_until(lambda: prod.acked >= base + 200, 60, "writes while broker %d is down" % b)
            behind = {}
            for g in sorted({p["group_id"] for p in c.describe("roll")["partitions"]}):
                for o in (set(c.brokers) - {b}):
                    r = c.broker_replica(o, g)
                    if r.get("role") == "leader":
                        behind[g] = r["commit"]
            c.brokers[b].start()
            unready = set()

            def ready():
                try:
                    st, obj, _ = call(c.b_http[b], "GET", "/readyz", timeout=2)
                except Unreachable:
                    return False
                if st != 200:
                    unready.add(obj.get("message", "") if isinstance(obj, dict) else "")
                return st == 200
            wait_until(ready, 60, "broker %d ready after its restart" % b, interval=0.05)
            for g, commit in behind.items():
                r = c.broker_replica(b, g)
                check(r.get("commit", 0) + 64 >= commit,
                      "broker %d was ready with group %d at commit %r, its leader at %d before"
                      % (b, g, r.get("commit"), commit))
            print("    broker %d: ready; unready on the way: %s" % (b, sorted(unready)[:3]))
    finally:
        prod.stop.set()
        prod.join()
    times = [op["t"] for op in prod.ops if op["type"] == "ok"]
    gaps = [b - a for a, b in zip(times, times[1:])]
    print("    longest time without an acknowledged write: %.2f s" % max(gaps))
    failed = [op for op in prod.ops if op["type"] == "fail"]
    check(not failed, "refused writes: %r" % failed[:3])
    check_history(c, 1, prod, "roll", 3)
    # Each broker that led a group on SIGTERM handed it over first.
    handed = [b for b in c.brokers
              if "every leadership handed over; closing" in
              open(c.brokers[b].log_path, errors="replace").read()]
    check(handed, "no broker handed its leaderships over on SIGTERM")


def test_older_manager_data_quarantines(ctx):
    c = Cluster(ctx, n_brokers=3).start()
    wait_uid(c)
    c.create_topic(1, "first", 1)
    c.wait_topic_led("first")
    for m in c.managers.values():
        check(m.terminate() == 0, "manager exit status")
    old = {i: m.data_dir + ".old" for i, m in c.managers.items()}
    for i, m in c.managers.items():
        shutil.copytree(m.data_dir, old[i])
    for m in c.managers.values():
        m.start()
    c.wait_ready()
    c.create_topic(2, "later", 3)
    c.wait_topic_led("later")
    produce_300(c, "later")
    later = sorted(p["group_id"] for p in c.describe("later")["partitions"])
    first = c.describe("first")["partitions"][0]["group_id"]

    # The managers go back to the copy from before "later".
    for m in c.managers.values():
        check(m.terminate() == 0, "manager exit status")
    for i, m in c.managers.items():
        shutil.rmtree(m.data_dir)
        shutil.move(old[i], m.data_dir)
    for m in c.managers.values():
        m.start()
    c.wait_ready(timeout=60)

    def quarantined():
        states = c.broker_states()
        q = {b: sorted(s.get("quarantined", [])) for b, s in states.items()}
        return q if len(q) == 3 and all(v == later for v in q.values()) else None
    wait_until(quarantined, 30, "every broker to show %r quarantined" % later)
    for b in c.brokers:
        h = hosted(c, b)
        check(all(h.get(g) == 100 for g in later), "broker %d hosts %r" % (b, h))

    def noted():
        log = "".join(open(m.log_path, errors="replace").read() for m in c.managers.values())
        return all("g%d: broker %d hosts a group this cluster never placed" % (g, b) in log
                   for g in later for b in c.brokers)
    wait_until(noted, 10, "the leader to log every quarantined replica")

    # New topics take group ids past the quarantined ones: the leader
    # recorded them (proposed as it logged them, so before this creation).
    c.create_topic(3, "newer", 1)
    g = c.describe("newer")["partitions"][0]["group_id"]
    check(g > max(later), "new topic got group %d, quarantined %r" % (g, later))
    c.wait_topic_led("newer")

    # An admin's decisions.
    check_failure(*c.call(1, "DELETE", "/admin/brokers/1/replicas/%d" % first), 409,
                  "deleting a placed group")
    check_failure(*c.call(1, "DELETE", "/admin/brokers/1/replicas/999"), 404,
                  "deleting a group the broker does not host")
    check_failure(*c.call(1, "DELETE", "/admin/brokers/9/replicas/%d" % later[0]), 404,
                  "deleting on an unknown broker")
    check_failure(*c.call(1, "DELETE", "/admin/brokers/1/replicas/x"), 400, "a bad group id")
    check_failure(*c.call(2, "DELETE", "/admin/brokers/1/replicas/%d" % later[0],
                          headers={}), 401, "no admin token")
    st, obj = c.call(2, "DELETE", "/admin/brokers/1/replicas/%d" % later[0])
    check_ok(st, obj, "deleting a quarantined replica")
    check(later[0] not in hosted(c, 1), "broker 1 still hosts %d" % later[0])
    check(all(later[0] in hosted(c, b) for b in (2, 3)), "another broker lost the group")
    wait_until(lambda: sorted(c.broker_states()[1]["quarantined"]) == later[1:], 10,
               "broker 1's quarantine to shrink")
    # Broker 1 is ready again once its replicas have heard their leaders'
    # commit indexes (asked every second), and the others' replicas stay
    # quarantined.
    wait_until(lambda: call(c.b_http[1], "GET", "/readyz", timeout=2)[0] == 200, 20,
               "broker 1 to be ready")
    for b in (2, 3):
        check(sorted(c.broker_states()[b]["quarantined"]) == later,
              "broker %d quarantine %r" % (b, c.broker_states()[b]))


if __name__ == "__main__":
    run_suite("operator", [
        test_wiped_managers_delete_nothing,
        test_wiped_manager_rejoins,
        test_managers_grow_and_shrink,
        test_scaled_away_manager_leaves_and_returns,
        test_older_manager_data_quarantines,
        test_new_broker_takes_its_share,
        test_removed_broker_id_comes_back,
        test_scaled_down_broker_moves_its_data_first,
        test_rolling_restart_of_every_broker,
        test_full_disk_refuses_then_recovers,
        test_retention_sized_from_the_volume,
    ], binary="manager", ports=(32300, 32699))

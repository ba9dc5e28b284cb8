#!/usr/bin/env python3
"""raftq's fault-injection suite (make chaos; a short profile in make test).

A whole cluster (3 managers, 4 brokers, 3 ATMs), every process in its own
network namespace with its own address on one bridge (netns.Net, prefix
rqc<pid>, 10.213.0.0/24, or 10.213.N.0/24 while another run holds it; the
driver reaches them from the root namespace through .1), runs under load while nemeses chosen from the seed kill,
pause, partition and reconfigure it. After the run everything is healed,
the cluster is left to settle, and checkers judge the history and what
every replica holds (checker.py, DESIGN.md section 13). With --tls every
port of every process speaks TLS 1.3, with certificates from a throwaway CA
made for the run (rqcerts.py), and so does the driver.

  chaos.py --seed N --duration S --build DIR --out DIR [--profile test|full] [--keep] [--tls]

Prints one line per invariant ("PASS name: ..." or "FAIL name: ...") and
closes with "chaos: N passed, N failed, N skipped"; exits 1 if any failed.
Writes history.jsonl, schedule.json and report.txt in --out, and the
processes' logs under --out/nodes (their data directories are removed
after a run that passed, unless --keep). Without root every check is
skipped, visibly; without the binaries in --build the run fails. Standard
library only.
"""

import argparse
import json
import os
import random
import shutil
import signal
import ssl
import sys
import threading
import time
import types

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
sys.path.insert(0, os.path.join(os.path.dirname(HERE), "integration"))

import checker  # noqa: E402
import harness  # noqa: E402
import netns  # noqa: E402
import rqcerts  # noqa: E402
import rqkeys  # noqa: E402
import rqsign  # noqa: E402
from workload import (  # noqa: E402
    BatchConsumer, GroupMember, History, Producer, QueueConsumer, Unreachable, call, register,
)

if os.path.exists(os.path.join(HERE, "atm_workload.py")):
    from atm_workload import AtmWorkload  # noqa: E402
else:
    AtmWorkload = None

PREFIX = "rqc"
SUBNET = "10.213.0"  # The bridge's /24 (10.213.N when another run holds it).
SECRET = rqkeys.TEST_SECRET
ADMIN_TOKEN = "chaos-admin-token"  # the managers' --admin-token
RAFT_PORT = 7000
HTTP_PORT = 8000
ATM_PORT = 7100
ELECTION_MS = 1000
HEARTBEAT_MS = 100
ATM_ELECTION_MS = 600
DEAD_MS = 10000
TOPICS = {"orders": 4, "events": 3, "audit": 2}
RECOVERY_LIMIT = 120.0
SETTLE_LIMIT = 150.0

KINDS = [
    "kill", "pause", "isolate", "isolate_leaders", "split", "bridge", "one_way",
    "kill_partition_majority", "wipe", "truncate", "membership", "transfer",
    "create_during_leader_kill", "figure8", "unpersisted",
]


def log(msg):
    print(msg, flush=True)


# ---- The cluster -------------------------------------------------------------


class Cluster:
    """The processes, their namespaces and how to reach them."""

    def __init__(self, ctx, net, build, tls=False):
        self.ctx = ctx
        self.net = net
        self.build = os.path.abspath(build)
        # With @tls every process gets a certificate for its address from a
        # throwaway CA and runs every port with TLS; the driver verifies the
        # servers against that CA and presents a certificate of its own where
        # a node's would be needed (a broker's routes, a manager's
        # /internal/ ones), while the clients of the public API present none.
        self.ca = None
        self.tls_public = self.tls_node = None
        if tls:
            self.ca = rqcerts.CA(self._data("tls"), "chaos CA")
            self.tls_public = ssl.create_default_context(cafile=self.ca.cert)
            self.tls_node = ssl.create_default_context(cafile=self.ca.cert)
            self.tls_node.load_cert_chain(*self.ca.issue("driver", [net.host_ip]))
        scheme = "https" if tls else "http"
        self.managers = {}
        self.brokers = {}
        self.atms = {}
        self.removed = set()  # Broker ids removed from the cluster (stopped).
        self.down = set()  # Node keys a nemesis stopped on purpose.
        self.crashes = []  # (node key, time, status, log tail) of unexpected exits.
        self.restarts = []  # The same, of exits that asked for a restart.
        for i in (1, 2, 3):
            net.add("m%d" % i)
        self.m_peers = ",".join("%d=%s:%d" % (i, net.ip["m%d" % i], RAFT_PORT) for i in (1, 2, 3))
        self.m_urls = ",".join("%s://%s:%d" % (scheme, net.ip["m%d" % i], HTTP_PORT)
                               for i in (1, 2, 3))
        for i in (1, 2, 3):
            self._make_manager(i)
        for i in (1, 2, 3, 4):
            self.add_broker(i)
        for i in (1, 2, 3):
            net.add("a%d" % i)
        a_peers = ",".join("%d=%s:%d" % (i, net.ip["a%d" % i], ATM_PORT) for i in (1, 2, 3))
        for i in (1, 2, 3):
            data = self._data("atm%d" % i)
            argv = [os.path.join(self.build, "atm"), "--id", str(i), "--peers", a_peers,
                    "--data", data, "--election-timeout-ms", str(ATM_ELECTION_MS),
                    "--heartbeat-ms", str(HEARTBEAT_MS), "--cluster-secret", SECRET,
                    "--log-level", ctx.opts.log_level] + self._tls_args("a%d" % i)
            a = ctx.atm(i, argv, wrap=net.wrap("a%d" % i))
            a.data_dir = data
            self.atms[i] = a

    def _data(self, name):
        d = os.path.join(self.ctx.dir, "data", name)
        os.makedirs(d, exist_ok=True)
        return d

    def _tls_args(self, key):
        """The TLS flags of node @key: a certificate naming the one address
        every other process and the driver dial it at; none without TLS."""
        if self.ca is None:
            return []
        cert, key_file = self.ca.issue(key, [self.net.ip[key]])
        return ["--tls-cert", cert, "--tls-key", key_file, "--tls-ca", self.ca.cert]

    def _make_manager(self, i):
        ip = self.net.ip["m%d" % i]
        data = self._data("manager%d" % i)
        argv = [os.path.join(self.build, "manager"), "--id", str(i), "--peers", self.m_peers,
                "--http-addr", "%s:%d" % (ip, HTTP_PORT), "--data", data,
                "--election-timeout-ms", str(ELECTION_MS), "--heartbeat-ms", str(HEARTBEAT_MS),
                "--broker-suspect-ms", "2000", "--broker-dead-ms", str(DEAD_MS),
                "--cluster-secret", SECRET, "--admin-token", ADMIN_TOKEN,
                "--log-level", self.ctx.opts.log_level] + self._tls_args("m%d" % i)
        d = self.ctx.daemon("manager", i, argv, wrap=self.net.wrap("m%d" % i))
        d.data_dir = data
        self.managers[i] = d

    def add_broker(self, i):
        """Broker @i in a namespace of its own (not started)."""
        key = "b%d" % i
        if key not in self.net.ns:
            self.net.add(key)
        ip = self.net.ip[key]
        data = self._data("broker%d" % i)
        argv = [os.path.join(self.build, "broker"), "--id", str(i),
                "--raft-addr", "%s:%d" % (ip, RAFT_PORT), "--http-addr", "%s:%d" % (ip, HTTP_PORT),
                "--data", data, "--managers", self.m_urls,
                "--election-timeout-ms", str(ELECTION_MS), "--heartbeat-ms", str(HEARTBEAT_MS),
                "--snapshot-threshold", "128", "--raft-segment-size", "65536",
                "--cluster-secret", SECRET, "--log-level", self.ctx.opts.log_level]
        argv += self._tls_args(key)
        d = self.ctx.daemon("broker", i, argv, wrap=self.net.wrap(key))
        d.data_dir = data
        self.brokers[i] = d
        return d

    # -- nodes --

    def node(self, key):
        kind, i = key[0], int(key[1:])
        return {"m": self.managers, "b": self.brokers, "a": self.atms}[kind][i]

    def keys(self, kinds="mba"):
        out = []
        if "m" in kinds:
            out += ["m%d" % i for i in sorted(self.managers)]
        if "b" in kinds:
            out += ["b%d" % i for i in sorted(self.brokers) if i not in self.removed]
        if "a" in kinds:
            out += ["a%d" % i for i in sorted(self.atms)]
        return out

    def ip(self, key):
        return self.net.ip[key]

    def start_all(self):
        for k in self.keys():
            self.node(k).start()

    def kill(self, *keys):
        """SIGKILLs every node in @keys at the same instant, then reaps."""
        procs = [self.node(k) for k in keys]
        for k in keys:
            self.down.add(k)
        for p in procs:
            if p.running():
                p.expect_clean_exit = False
                os.kill(p.pid(), signal.SIGKILL)
        for p in procs:
            p.kill()

    def restart(self, *keys):
        for k in keys:
            p = self.node(k)
            if not p.running():
                p.start()
            elif p.paused:
                p.resume()
            self.down.discard(k)

    def check_crashes(self, history):
        """Nodes that exited without being told to: restarted, as a
        supervisor would, and recorded. A process that exits with status 1
        saying why and asking for the restart (its Raft group stopped, or a
        manager's store diverged from its group: DESIGN.md section 3) is a
        supervised restart, reported; anything else is a crash."""
        for k in self.keys():
            p = self.node(k)
            if k in self.down or p.proc is None or p.running():
                continue
            rc = p.proc.poll()
            tail = p.log_tail(20)
            asked = rc == 1 and any("exiting so that a restart" in ln for ln in tail)
            what = "restart" if asked else "crash"
            (self.restarts if asked else self.crashes).append((k, history.now(), rc, tail))
            history.add("nemesis", "info", what, value={"node": k, "status": rc})
            log("  %s exited on its own (status %s%s); restarted" % (
                k, rc, ", asking for it" if asked else ""))
            p.expect_clean_exit = False
            p.start()

    # -- HTTP --

    def manager_ids(self):
        return sorted(self.managers)

    def m_addr(self, i):
        return "%s:%d" % (self.net.ip["m%d" % i], HTTP_PORT)

    def b_addr(self, i):
        return "%s:%d" % (self.net.ip["b%d" % i], HTTP_PORT)

    # Internal routes need a signature (rqsign.py): managers' as a manager
    # (public routes ignore it), brokers' as a manager calling a broker.
    @staticmethod
    def _m2m(method, target, body):
        return rqsign.headers(method, target, body, secret=SECRET, label=rqkeys.HTTP_M2M)

    @staticmethod
    def _m2b(method, target, body):
        return rqsign.headers(method, target, body, secret=SECRET, label=rqkeys.HTTP_M2B)

    def m_call(self, i, method, path, body=None, query=None, timeout=8.0):
        headers = {"Authorization": "Bearer " + ADMIN_TOKEN}
        tls = self.tls_node if path.startswith("/internal/") else self.tls_public
        return call(self.m_addr(i), method, path, body, timeout=timeout, query=query,
                    sign=self._m2m, headers=headers, tls=tls)

    def b_call(self, i, method, path, body=None, query=None, timeout=5.0):
        return call(self.b_addr(i), method, path, body, timeout=timeout, query=query,
                    sign=self._m2b, tls=self.tls_node)

    def any_manager(self, method, path, body=None, query=None, timeout=5.0, ok=(200,)):
        """The first answer with a status in @ok from any manager, else None."""
        for i in self.manager_ids():
            if self.node("m%d" % i).paused:
                continue
            try:
                st, obj = self.m_call(i, method, path, body, query, timeout)
            except Unreachable:
                continue
            if st in ok:
                return st, obj
        return None

    def manager_leader(self):
        """The manager every reachable manager names as leader, or None."""
        seen = []
        for i in self.manager_ids():
            if self.node("m%d" % i).paused:
                continue
            try:
                st, obj = self.m_call(i, "GET", "/admin/managers", timeout=2)
            except Unreachable:
                continue
            if st == 200 and obj.get("leader"):
                seen.append(obj["leader"])
        if len(seen) >= 2 and len(set(seen)) == 1:
            return seen[0]
        return None

    def describe(self, topic):
        r = self.any_manager("GET", "/admin/topics/%s" % topic)
        return None if r is None else r[1]

    def replicas_of(self, b):
        """GET /internal/replicas of broker @b: {group_id: replica}, or None."""
        if b in self.removed or not self.brokers[b].running() or self.brokers[b].paused:
            return None
        try:
            st, obj = self.b_call(b, "GET", "/internal/replicas", timeout=3)
        except Unreachable:
            return None
        if st != 200:
            return None
        return {r["group_id"]: r for r in obj["replicas"]}

    def group_leader(self, gid, members):
        """The member that leads group @gid (ready, the highest term), or None."""
        best = None
        for b in members:
            r = (self.replicas_of(b) or {}).get(gid)
            if r and r.get("role") == "leader" and r.get("ready"):
                if best is None or r["term"] > best[1]:
                    best = (b, r["term"])
        return None if best is None else best[0]

    def partition(self, topic, p):
        """(group id, replica brokers) of @topic's partition @p, or None."""
        d = self.describe(topic)
        if d is None:
            return None
        for x in d["partitions"]:
            if x["partition_id"] == p:
                return x["group_id"], list(x["replicas"])
        return None


# ---- A stand-in ATM workload (until tests/chaos/atm_workload.py exists) -----


class BasicAtmWorkload:
    """Transfers among five accounts at random ATMs, and at the end every
    ATM's balances: the total is conserved, none is negative, all ATMs
    agree. The interface is AtmWorkload's."""

    ACCOUNTS = ["acct%d" % i for i in range(5)]

    def __init__(self, atms, rng, out_dir):
        self.atms = atms
        self.rng = rng
        self.out_dir = out_dir
        self.stop_ev = threading.Event()
        self.thread = None
        self.counts = {"ok": 0, "error": 0, "unknown": 0}
        self.final = {}
        self.final_error = None

    def _cmd(self, line, timeout=harness.CMD_TIMEOUT):
        a = self.rng.choice([x for x in self.atms if x.running() and not x.paused] or self.atms)
        try:
            return a.cmd(line, timeout)
        except (harness.NoAnswer, harness.ProcessGone, harness.TestFailure):
            return None

    def setup(self):
        deadline = time.monotonic() + 60
        for acct in self.ACCOUNTS:
            while True:
                ans = self._cmd("deposit %s 100" % acct)
                if ans is not None and ans.startswith("ok"):
                    break
                if time.monotonic() > deadline:
                    raise harness.TestFailure("ATM setup: deposit into %s failed: %r" % (acct, ans))
                time.sleep(0.3)

    def _run(self):
        while not self.stop_ev.is_set():
            a, b = self.rng.sample(self.ACCOUNTS, 2)
            ans = self._cmd("transfer %s %s %d" % (a, b, self.rng.randint(1, 30)))
            key = "unknown" if ans is None else ("ok" if ans.startswith("ok") else "error")
            self.counts[key] += 1
            self.stop_ev.wait(0.05)

    def start(self):
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()

    def stop(self):
        self.stop_ev.set()
        if self.thread is not None:
            self.thread.join(30)

    def final_reads(self):
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            try:
                self.final = {}
                for a in self.atms:
                    self.final[a.id] = {x: harness.parse_balance(a.cmd("balance " + x), x)
                                        for x in self.ACCOUNTS}
                self.final_error = None
                return
            except (harness.TestFailure, harness.NoAnswer, harness.ProcessGone) as e:
                self.final_error = str(e)
                time.sleep(0.5)

    def check(self):
        if self.final_error is not None or not self.final:
            return [("atm_balances", False, "no final balances: %s" % self.final_error)]
        total = 100 * 100 * len(self.ACCOUNTS)
        sums = {i: sum(b.values()) for i, b in self.final.items()}
        neg = {i: [x for x, c in b.items() if c < 0] for i, b in self.final.items()}
        views = {json.dumps(b, sort_keys=True) for b in self.final.values()}
        return [
            ("atm_total_conserved", all(s == total for s in sums.values()),
             "totals %s, expected %s" % ({i: harness.money(s) for i, s in sums.items()},
                                         harness.money(total))),
            ("atm_no_negative_balance", not any(neg.values()), "negative: %s" % neg),
            ("atm_replicas_agree", len(views) == 1, "%d distinct views" % len(views)),
        ]

    def stats(self):
        return dict(self.counts)


# ---- The run -----------------------------------------------------------------


class Chaos:
    """One run: setup, the fault schedule, healing, checks and the report."""

    def __init__(self, opts):
        self.opts = opts
        self.rng = random.Random(opts.seed)
        self.history = History()
        self.schedule = []
        self.topics = dict(TOPICS)
        self.extra_topics = {}  # Created by nemeses: {name: partitions}.
        self.next_broker = 5
        self.probe_n = 0
        self.probe_pids = {}
        self.results = []
        self.net = None
        self.ctx = None
        self.cluster = None
        self.workers = []
        self.atm_wl = None
        self.test = opts.profile == "test"

    # -- timing --

    def hold(self, lo=None, hi=None):
        """A hold time drawn from the seed: the profile's, or [@lo, @hi]."""
        if lo is None:
            lo, hi = (2.5, 5.0) if self.test else (3.0, 15.0)
        return self.rng.uniform(lo, hi)

    # -- setup --

    def setup(self):
        netns.remove_stale(PREFIX)
        self.net = netns.Net(PREFIX, free_subnet(), host=True)
        self.net.up()
        hopts = types.SimpleNamespace(binary=os.path.join(self.opts.build, "atm"),
                                      seed=self.opts.seed, log_level=self.opts.log_level)
        self.ctx = harness.Context(hopts, "chaos", None)
        shutil.rmtree(self.ctx.dir, ignore_errors=True)
        self.ctx.dir = os.path.join(self.opts.out, "nodes")
        shutil.rmtree(self.ctx.dir, ignore_errors=True)
        os.makedirs(self.ctx.dir)
        self.ctx.t0 = self.history.t0
        c = self.cluster = Cluster(self.ctx, self.net, self.opts.build, tls=self.opts.tls)
        c.start_all()
        harness.wait_until(lambda: c.manager_leader(), 60, "a manager leader")
        harness.wait_until(self.brokers_alive, 60, "every broker ALIVE")
        for t, n in self.topics.items():
            harness.wait_until(lambda t=t, n=n: c.any_manager(
                "POST", "/topics", {"topic_name": t, "number_of_partitions": n}, timeout=20,
                ok=(200, 409)), 60, "topic %s created" % t)
        self.settle(60, what="the new topics")
        for t in self.topics:
            self.probe_pids[t] = register(c, "producer", t)
        # Workloads: producers and consumers through different managers.
        rng = lambda: random.Random(self.rng.getrandbits(64))  # noqa: E731
        for k in range(4):
            self.workers.append(Producer("p%d" % k, c, self.history, rng(), self.topics, k))
        names = sorted(self.topics)
        for k in range(2):
            t = names[k % len(names)]
            self.workers.append(QueueConsumer("qc%d" % k, c, self.history, rng(), t, k + 1))
        for k in range(2):
            t = names[(k + 1) % len(names)]
            self.workers.append(BatchConsumer("bc%d" % k, c, self.history, rng(), t,
                                              self.topics[t], k + 2))
        # A consumer group of three on the topic with the most partitions.
        gt = max(sorted(self.topics), key=lambda t: self.topics[t])
        for k in range(3):
            self.workers.append(GroupMember("gm%d" % k, c, self.history, rng(), gt, "cg", k))
        for w in self.workers:
            w.setup()
        atms = [c.atms[i] for i in sorted(c.atms)]
        harness.wait_until(lambda: self.atm_leader(), 60, "an ATM leader")
        cls = AtmWorkload if AtmWorkload is not None else BasicAtmWorkload
        self.atm_wl = cls(atms, random.Random(self.rng.getrandbits(64)), self.opts.out)
        self.atm_wl.setup()

    def atm_leader(self):
        for a in self.cluster.atms.values():
            st = a.try_status()
            if st and st["role"] == "leader":
                return a.id
        return None

    def brokers_alive(self):
        r = self.cluster.any_manager("GET", "/admin/brokers")
        if r is None:
            return False
        states = {b["id"]: b["state"] for b in r[1]["brokers"]}
        want = [i for i in self.cluster.brokers if i not in self.cluster.removed]
        return all(states.get(i) in ("alive", "draining") for i in want)

    # -- nemesis bookkeeping --

    def nemesis(self, kind, fn):
        c = self.cluster
        c.check_crashes(self.history)
        entry = {"kind": kind, "start": self.history.now()}
        self.history.add("nemesis", "invoke", kind)
        log("nemesis %s at %.1fs" % (kind, entry["start"]))
        try:
            entry.update(fn() or {})
        except (harness.TestFailure, netns.NetError) as e:
            entry["error"] = str(e)
            log("  %s: %s" % (kind, e))
        except Exception as e:  # A bug here: reported, the run goes on.
            import traceback
            entry["error"] = "harness: %s: %s" % (type(e).__name__, e)
            log("  %s: %s" % (kind, traceback.format_exc()))
        finally:
            self.heal_all()
        entry["end"] = self.history.now()
        self.history.add("nemesis", "ok", kind, value={k: v for k, v in entry.items()
                                                       if k not in ("start",)})
        entry["recovery_s"] = self.recover()
        log("  %s healed at %.1fs, %s" % (
            kind, entry["end"], "recovered in %.1fs" % entry["recovery_s"]
            if entry["recovery_s"] is not None else "NOT recovered in %.0fs" % RECOVERY_LIMIT))
        self.schedule.append(entry)

    def heal_all(self):
        """Deletes every nftables rule, resumes the stopped and restarts the
        killed; a node that died without a nemesis is recorded first."""
        self.net.heal_all()
        c = self.cluster
        for k in c.keys():
            p = c.node(k)
            if p.paused:
                p.resume()
        c.check_crashes(self.history)
        c.restart(*[k for k in c.keys() if not c.node(k).running()])
        c.down.clear()

    def recover(self):
        """Seconds from healing until a produce to every partition of the
        main topics and a balance at every ATM succeed, or None."""
        t0 = time.monotonic()
        deadline = t0 + RECOVERY_LIMIT
        c = self.cluster
        pending = [(t, p) for t in sorted(self.topics) for p in range(self.topics[t])]
        k = 0
        while pending and time.monotonic() < deadline:
            t, p = pending[0]
            self.probe_n += 1
            v = "probe:%d" % self.probe_n
            i = c.manager_ids()[k % 3]
            body = {"topic": t, "producer_id": self.probe_pids[t], "message": v, "partition_id": p}
            self.history.add("probe", "invoke", "produce", topic=t, value=v, partition=p)
            try:
                st, obj = c.m_call(i, "POST", "/producer/produce", body, timeout=5)
            except Unreachable as e:
                st, obj = None, {"message": str(e)}
            if st == 200:
                self.history.add("probe", "ok", "produce", topic=t, value=v,
                                 partition=obj["partition_id"], offset=obj["offset"])
                pending.pop(0)
                continue
            self.history.add("probe", "info" if st is None or st >= 500 else "fail", "produce",
                             topic=t, value=v, error="%s %s" % (st, (obj or {}).get("message")))
            k += 1
            time.sleep(0.2)
        if pending:
            return None
        for a in c.atms.values():
            while True:
                # Never behind a command of the ATM workload still owed its
                # answer: that answer is the workload's to collect.
                with a.lock:
                    try:
                        if a.pending == 0 and \
                                a.cmd("balance chaosprobe", timeout=5).startswith("ok"):
                            break
                    except (harness.NoAnswer, harness.ProcessGone, harness.TestFailure):
                        pass
                if time.monotonic() >= deadline:
                    return None
                time.sleep(0.2)
        return round(time.monotonic() - t0, 2)

    # -- partitions --

    def isolate(self, key):
        c = self.cluster
        others = [c.ip(k) for k in c.keys() if k != key]
        self.net.drop(key, others, others)

    def sides(self, a, b):
        """Nodes in @a and @b stop seeing one another."""
        c = self.cluster
        ia = [c.ip(k) for k in a]
        ib = [c.ip(k) for k in b]
        for k in a:
            self.net.drop(k, ib, ib)
        for k in b:
            self.net.drop(k, ia, ia)

    def random_partition_of(self, topics=None):
        """(topic, p, group id, replicas, leader) of a random partition whose
        leader is known (waiting up to 20 s for one)."""
        topics = topics or self.topics
        t = self.rng.choice(sorted(topics))
        p = self.rng.randrange(topics[t])
        c = self.cluster

        def found():
            x = c.partition(t, p)
            if x is None:
                return None
            lead = c.group_leader(x[0], x[1])
            return None if lead is None else (x[0], x[1], lead)
        gid, reps, lead = harness.wait_until(found, 20, "a leader of %s/%d" % (t, p), interval=0.2)
        return t, p, gid, reps, lead

    # -- nemeses --

    def n_kill(self):
        c = self.cluster
        key = self.rng.choice(c.keys())
        c.kill(key)
        h = self.hold()
        if not self.test and key[0] == "b" and self.rng.random() < 0.3:
            h = DEAD_MS / 1000 + 5  # Long enough to be declared DEAD and repaired.
        time.sleep(h)
        c.restart(key)
        return {"targets": [key], "hold_s": round(h, 1)}

    def n_pause(self):
        c = self.cluster
        key = self.rng.choice(c.keys())
        c.node(key).pause()
        h = self.hold(2.5 * ELECTION_MS / 1000, 5.0 if self.test else 12.0)
        time.sleep(h)
        c.node(key).resume()
        return {"targets": [key], "hold_s": round(h, 1)}

    def n_isolate(self):
        key = self.rng.choice(self.cluster.keys())
        self.isolate(key)
        h = self.hold()
        time.sleep(h)
        return {"targets": [key], "hold_s": round(h, 1)}

    def n_isolate_leaders(self):
        c = self.cluster
        m = c.manager_leader()
        t, p, gid, reps, lead = self.random_partition_of()
        targets = ["b%d" % lead] + (["m%d" % m] if m else [])
        for k in targets:
            self.isolate(k)
        h = self.hold()
        time.sleep(h)
        return {"targets": targets, "partition": "%s/%d" % (t, p), "hold_s": round(h, 1)}

    def n_split(self):
        c = self.cluster
        minority, majority = [], []
        for kinds in ("m", "b", "a"):
            ks = c.keys(kinds)
            self.rng.shuffle(ks)
            n = self.rng.randint(1, max(1, (len(ks) - 1) // 2))
            minority += ks[:n]
            majority += ks[n:]
        self.sides(minority, majority)
        h = self.hold()
        time.sleep(h)
        return {"targets": {"minority": minority, "majority": majority}, "hold_s": round(h, 1)}

    def n_bridge(self):
        c = self.cluster
        a, b, bridge = [], [], []
        for kinds in ("m", "b", "a"):
            ks = c.keys(kinds)
            self.rng.shuffle(ks)
            bridge.append(ks[0])
            rest = ks[1:]
            half = self.rng.randint(1, len(rest) - 1)
            a += rest[:half]
            b += rest[half:]
        self.sides(a, b)
        h = self.hold()
        time.sleep(h)
        return {"targets": {"a": a, "b": b, "bridge": bridge}, "hold_s": round(h, 1)}

    def n_one_way(self):
        c = self.cluster
        if self.rng.random() < 0.5:
            m = c.manager_leader() or 1
            src = "m%d" % m
            dst = "m%d" % self.rng.choice([i for i in c.managers if i != m])
            what = "manager leader to a follower"
        else:
            t, p, gid, reps, lead = self.random_partition_of()
            src = "b%d" % lead
            dst = "b%d" % self.rng.choice([b for b in reps if b != lead])
            what = "leader of %s/%d to a follower" % (t, p)
        self.net.drop(dst, drop_in=[c.ip(src)])
        h = self.hold()
        time.sleep(h)
        return {"targets": {"from": src, "to": dst}, "what": what, "hold_s": round(h, 1)}

    def n_kill_partition_majority(self):
        t, p, gid, reps, lead = self.random_partition_of()
        two = ["b%d" % b for b in self.rng.sample(reps, 2)]
        self.cluster.kill(*two)
        h = self.hold()
        time.sleep(h)
        self.cluster.restart(*two)
        return {"targets": two, "partition": "%s/%d" % (t, p), "hold_s": round(h, 1)}

    def holding_brokers(self):
        """Brokers that host replicas now (all brokers if none answers)."""
        c = self.cluster
        keys = [k for k in c.keys("b") if c.replicas_of(int(k[1:]))]
        return keys or c.keys("b")

    def n_wipe(self):
        c = self.cluster
        key = self.rng.choice(self.holding_brokers())
        b = c.node(key)
        c.kill(key)
        shutil.rmtree(b.data_dir, ignore_errors=True)
        os.makedirs(b.data_dir)
        h = self.hold(1.0, 3.0)
        time.sleep(h)
        c.restart(key)
        return {"targets": [key], "hold_s": round(h, 1)}

    def n_truncate(self):
        """The tail of a replica's newest Raft segment damaged before its
        broker restarts: a torn write, the last bytes written to the newest
        open segment zeroed with the file keeping its preallocated size,
        which is what a crash in the middle of a write leaves. With
        --damage, also bytes cut off the end of the file, of the newest
        open segment or of the newest closed one, which no crash produces
        (segments are preallocated, closed ones written whole and synced):
        an open segment cut short is padded back by rq_node and survived; a
        closed one cut short makes the replica fail to open, and the
        managers rebuild it from its peers (DESIGN.md sections 8 and 13)."""
        c = self.cluster
        mode = "torn"
        if self.opts.damage:
            mode = self.rng.choice(["torn", "short_open", "short_closed"])
        keys = self.holding_brokers()
        which = 0 if mode == "short_closed" else 1
        ready = [k for k in keys if segments(c.node(k).data_dir)[which]]
        key = self.rng.choice(ready or keys)
        b = c.node(key)
        c.kill(key)
        cut = damage_segment(b.data_dir, self.rng, mode)
        h = self.hold(1.0, 3.0)
        time.sleep(h)
        c.restart(key)
        return {"targets": [key], "mode": mode, "segment": cut, "hold_s": round(h, 1)}

    def n_membership(self):
        """Drains a broker that holds replicas, removes it, and adds a new
        one, under load."""
        c = self.cluster
        alive = [i for i in c.brokers if i not in c.removed]
        states = c.any_manager("GET", "/admin/brokers")
        if states is None or len(alive) < 4:
            return {"skipped": "fewer than 4 brokers or no manager answered"}
        holding = [b["id"] for b in states[1]["brokers"]
                   if b["id"] in alive and b.get("partitions", 0) > 0]
        victim = self.rng.choice(holding or alive)
        out = {"targets": ["b%d" % victim]}
        r = c.any_manager("POST", "/admin/brokers/%d/drain" % victim, timeout=20)
        out["drain"] = None if r is None else r[0]

        def drained():
            r = c.any_manager("GET", "/admin/brokers")
            if r is None:
                return False
            b = next((x for x in r[1]["brokers"] if x["id"] == victim), None)
            return b is not None and b.get("partitions") == 0 and b.get("hosted") == 0
        t0 = time.monotonic()
        try:
            harness.wait_until(drained, 60 if self.test else 120, "broker %d drained" % victim,
                               interval=0.5)
            out["drained_s"] = round(time.monotonic() - t0, 1)
        except harness.TestFailure:
            out["drained_s"] = None
        r = c.any_manager("DELETE", "/admin/brokers/%d" % victim, timeout=20, ok=(200, 202))
        out["remove"] = None if r is None else r[0]

        def removed():
            r = c.any_manager("GET", "/admin/brokers")
            return r is not None and any(x["id"] == victim and x["state"] == "removed"
                                         for x in r[1]["brokers"])
        try:
            harness.wait_until(removed, 30, "broker %d removed" % victim, interval=0.5)
            out["removed"] = True
        except harness.TestFailure:
            out["removed"] = False  # Left running; the settle step waits for it.
        if out["removed"]:
            c.removed.add(victim)
            c.node("b%d" % victim).terminate()
        new = self.next_broker
        self.next_broker += 1
        c.add_broker(new).start()
        out["added"] = "b%d" % new
        return out

    def n_transfer(self):
        c = self.cluster
        moves = []
        for _ in range(self.rng.randint(1, 3)):
            t, p, gid, reps, lead = self.random_partition_of()
            to = self.rng.choice([b for b in reps if b != lead])
            r = c.any_manager("POST", "/admin/partitions/%s/%d/leader" % (t, p),
                              {"broker_id": to}, timeout=25, ok=(200, 409, 503))
            moves.append({"partition": "%s/%d" % (t, p), "from": lead, "to": to,
                          "status": None if r is None else r[0]})
        return {"targets": moves}

    def n_create_during_leader_kill(self):
        c = self.cluster
        lead = c.manager_leader()
        if lead is None:
            lead = harness.wait_until(c.manager_leader, 20, "a manager leader")
        via = self.rng.choice([i for i in c.managers if i != lead])
        name = "created%d" % (len(self.extra_topics) + 1)
        answer = {}

        def create():
            try:
                answer["status"] = c.m_call(via, "POST", "/topics", {
                    "topic_name": name, "number_of_partitions": 2}, timeout=20)[0]
            except Unreachable as e:
                answer["status"] = str(e)
        th = threading.Thread(target=create, daemon=True)
        th.start()
        time.sleep(self.rng.uniform(0.0, 0.3))
        c.kill("m%d" % lead)
        h = self.hold(1.5, 4.0)
        time.sleep(h)
        c.restart("m%d" % lead)
        th.join(30)
        # The creation's outcome: asking again gets it created, or 409 if
        # the first one went through. Either way the topic must be whole.
        r = None
        deadline = time.monotonic() + 60
        while r is None and time.monotonic() < deadline:
            r = c.any_manager("POST", "/topics", {"topic_name": name, "number_of_partitions": 2},
                              timeout=20, ok=(200, 409))
            if r is None:
                time.sleep(0.5)
        self.extra_topics[name] = 2
        return {"targets": ["m%d" % lead], "topic": name, "via": "m%d" % via,
                "first_answer": answer.get("status"), "again": None if r is None else r[0],
                "hold_s": round(h, 1)}

    def burst(self, t, p, n=3, tag="burst"):
        """Producers hammering partition @p of @t, recorded like the others."""
        ws = []
        for k in range(n):
            w = Producer("%s%d_%d" % (tag, len(self.schedule), k), self.cluster, self.history,
                         random.Random(self.rng.getrandbits(64)), {t: self.topics.get(
                             t, self.extra_topics.get(t))}, k, partition=(t, p),
                         single_only=True, pace=0)
            w.pids = {t: self.probe_pids[t]}
            w.start()
            ws.append(w)
        return ws

    def direct_produce(self, b, t, p, n, tag):
        """@n produces sent straight to broker @b's data plane (short
        timeouts: an isolated leader never answers them)."""
        def run():
            for k in range(n):
                v = "%s:%d" % (tag, k + 1)
                self.history.add(tag, "invoke", "produce", topic=t, value=v, partition=p)
                try:
                    st, obj = self.cluster.b_call(b, "POST", "/v1/topics/%s/partitions/%d/records"
                                                  % (t, p), {"records": [{"value": v}]},
                                                  timeout=3)
                except Unreachable as e:
                    self.history.add(tag, "info", "produce", topic=t, value=v, error=str(e)[:120])
                    continue
                if st == 200:
                    self.history.add(tag, "ok", "produce", topic=t, value=v, partition=p,
                                     offset=obj["base_offset"])
                else:
                    self.history.add(tag, "info" if st >= 500 or st == 421 else "fail",
                                     "produce", topic=t, value=v, error="%d" % st)
        th = threading.Thread(target=run, daemon=True)
        th.start()
        return th

    def n_figure8(self):
        """Raft's Figure 8 on one partition: an isolated leader keeps
        uncommittable entries of its term, a second leader commits and
        then loses entries of its own, the first comes back with its old
        tail and is killed just after it wins."""
        c = self.cluster
        t, p, gid, reps, l1 = self.random_partition_of(self.topics)

        def all_can_vote():
            # A member rebuilt after a wipe joins with an empty log and
            # knows no configuration until it has caught up, so it cannot
            # vote: with the leader isolated, no second leader could be
            # elected yet (a schedule right after a wipe chose one).
            for b in reps:
                r = (c.replicas_of(b) or {}).get(gid)
                if (not r or r.get("state") != "ready" or r.get("leader_id") != l1
                        or b not in r.get("voters", [])):
                    return False
            return True
        harness.wait_until(all_can_vote, 20, "every member of %s/%d to vote" % (t, p),
                           interval=0.1)
        out = {"partition": "%s/%d" % (t, p), "l1": "b%d" % l1}
        load = self.burst(t, p, 2, "f8load")
        try:
            time.sleep(0.5)
            self.isolate("b%d" % l1)
            tag = "f8a%d" % len(self.schedule)
            th1 = self.direct_produce(l1, t, p, 4, tag)
            others = [b for b in reps if b != l1]
            l2 = harness.wait_until(lambda: c.group_leader(gid, others), 20,
                                    "a second leader of %s/%d" % (t, p), interval=0.1)
            out["l2"] = "b%d" % l2
            commit0 = (c.replicas_of(l2) or {}).get(gid, {}).get("commit", 0)
            harness.wait_until(lambda: (c.replicas_of(l2) or {}).get(gid, {}).get("commit", 0)
                               > commit0 + 3, 15, "the second leader to commit", interval=0.1)
            th2 = self.direct_produce(l2, t, p, 4, "f8b%d" % len(self.schedule))
            time.sleep(self.rng.uniform(0.02, 0.15))
            if self.rng.random() < 0.5:
                self.isolate("b%d" % l2)
                out["l2_fate"] = "isolated"
            else:
                c.kill("b%d" % l2)
                out["l2_fate"] = "killed"
            self.net.heal("b%d" % l1)
            won = None
            deadline = time.monotonic() + 20
            asked = False
            while time.monotonic() < deadline:
                r = (c.replicas_of(l1) or {}).get(gid)
                if r and r.get("role") == "leader":
                    won = r["term"]
                    break
                if not asked and time.monotonic() > deadline - 14:
                    asked = True
                    threading.Thread(target=lambda: c.any_manager(
                        "POST", "/admin/partitions/%s/%d/leader" % (t, p), {"broker_id": l1},
                        timeout=20, ok=(200, 409, 503)), daemon=True).start()
                time.sleep(0.03)
            out["l1_won_term"] = won
            c.kill("b%d" % l1)
            out["targets"] = sorted({"b%d" % l1, "b%d" % l2})
            time.sleep(self.hold(1.0, 2.5))
            th1.join(10)
            th2.join(10)
        finally:
            for w in load:
                w.stop()
            for w in load:
                w.join()
        return out

    def n_unpersisted(self):
        """A partition's leader and one follower SIGKILLed at the same
        instant under heavy load (entries in flight), then restarted."""
        c = self.cluster
        t, p, gid, reps, lead = self.random_partition_of(self.topics)
        f = self.rng.choice([b for b in reps if b != lead])
        load = self.burst(t, p, 4, "unp")
        try:
            time.sleep(self.rng.uniform(1.0, 2.0))
            c.kill("b%d" % lead, "b%d" % f)
            h = self.hold(1.0, 3.0)
            time.sleep(h)
            c.restart("b%d" % lead, "b%d" % f)
            time.sleep(1.0)
        finally:
            for w in load:
                w.stop()
            for w in load:
                w.join()
        return {"targets": ["b%d" % lead, "b%d" % f], "partition": "%s/%d" % (t, p),
                "hold_s": round(h, 1)}

    # -- the schedule --

    def run_faults(self):
        kinds = list(self.opts.kinds)
        self.rng.shuffle(kinds)
        end = time.monotonic() + self.opts.duration
        k = 0
        while True:
            if k < len(kinds):
                kind = kinds[k]
            elif time.monotonic() < end:
                kind = self.rng.choice(self.opts.kinds)
            else:
                break
            k += 1
            self.nemesis(kind, getattr(self, "n_" + kind))
            time.sleep(self.rng.uniform(0.5, 2.0))

    # -- settling --

    def settle(self, timeout, what="the cluster"):
        """Waits until every manager is ready, every broker ALIVE and every
        partition of every topic has three ready replicas (those the store
        names, voters of its group) agreeing on commit and next offset."""
        c = self.cluster
        deadline = time.monotonic() + timeout

        def left():
            return max(1.0, deadline - time.monotonic())

        def ready(i):
            try:
                return c.m_call(i, "GET", "/readyz", timeout=2)[0] == 200
            except Unreachable:
                return False
        harness.wait_until(lambda: all(ready(i) for i in c.managers), left(), "managers ready")
        harness.wait_until(c.manager_leader, left(), "a manager leader")

        def removals_done():
            r = c.any_manager("GET", "/admin/brokers")
            if r is None:
                return False
            for b in r[1]["brokers"]:
                if b["state"] in ("removing",):
                    return False
                if b["state"] == "removed" and b["id"] in c.brokers and b["id"] not in c.removed:
                    c.node("b%d" % b["id"]).terminate()
                    c.removed.add(b["id"])
            return True
        harness.wait_until(removals_done, left(), "removals to finish", interval=0.5)
        harness.wait_until(self.brokers_alive, left(), "every broker ALIVE", interval=0.3)
        for t in sorted(self.all_topics()):
            self.unsettled = ""
            try:
                harness.wait_until(lambda t=t: self.converged(t), left(),
                                   "%s: partitions of %s converged" % (what, t), interval=0.5)
            except harness.TestFailure as e:
                raise harness.TestFailure("%s (last: %s)" % (e, self.unsettled))

    def all_topics(self):
        out = dict(self.topics)
        out.update(self.extra_topics)
        return out

    def converged(self, topic):
        """The topic's description once every partition has converged, else
        False; self.unsettled then says what was still apart."""
        c = self.cluster
        d = c.describe(topic)
        if d is None or not d["partitions"]:
            self.unsettled = "%s: no description" % topic
            return False
        reps = {}
        for x in d["partitions"]:
            where = "%s/%s" % (topic, x.get("partition_id", x.get("id")))
            members = x["replicas"]
            if len(set(members)) != 3:
                self.unsettled = "%s: replicas %r" % (where, members)
                return False
            rs = []
            for b in members:
                if b not in reps:
                    reps[b] = c.replicas_of(b)
                r = (reps[b] or {}).get(x["group_id"])
                if r is None or r.get("state") != "ready":
                    self.unsettled = "%s: broker %d's replica is %r" % (
                        where, b, None if r is None else r.get("state"))
                    return False
                rs.append(r)
            lead = [r for r in rs if r.get("role") == "leader" and r.get("ready")]
            if len(lead) != 1 or sorted(lead[0].get("voters", [])) != sorted(members):
                self.unsettled = "%s: ready leaders %r, voters %r" % (
                    where, [r.get("role") for r in rs],
                    [r.get("voters") for r in lead])
                return False
            if len({r["commit"] for r in rs}) != 1 or len({r["next_offset"] for r in rs}) != 1 \
                    or any(r["applied"] != r["commit"] for r in rs):
                self.unsettled = "%s: commit %r, applied %r, next offset %r on brokers %r" % (
                    where, [r["commit"] for r in rs], [r["applied"] for r in rs],
                    [r["next_offset"] for r in rs], members)
                return False
        return d

    # -- final reads and checks --

    def read_logs(self):
        """{(topic, p): {broker: [(offset, value, key, timestamp)]}} from
        every replica the store names, and {(topic, p): (gid, replicas)}."""
        c = self.cluster
        logs = {}
        groups = {}
        for t in sorted(self.all_topics()):
            d = self.converged(t) or c.describe(t)
            if d is None:
                continue
            for x in d["partitions"]:
                key = (t, x["partition_id"])
                groups[key] = (x["group_id"], list(x["replicas"]))
                logs[key] = {}
                for b in x["replicas"]:
                    r = (c.replicas_of(b) or {}).get(x["group_id"])
                    if r is None:
                        continue
                    recs = read_replica(c, b, t, x["partition_id"], r.get("first_offset", 0))
                    if recs is not None:
                        logs[key][b] = recs
        return logs, groups

    def check_disk(self, logs, groups):
        """The batch bytes in every replica's segment files are the same
        where their offset ranges overlap, and hold what is served."""
        import test_broker
        c = self.cluster
        bad = []
        for key, reps in sorted(logs.items()):
            gid, members = groups[key]
            batches = {}
            for b in members:
                d = os.path.join(c.brokers[b].data_dir, "replicas", str(gid), "log")
                try:
                    batches[b] = test_broker.disk_batches(d)
                except (harness.TestFailure, OSError) as e:
                    bad.append("%s/%d broker%d: %s" % (key[0], key[1], b, e))
            if len(batches) < 2:
                continue
            lo = max(bs[0][0] if bs else 0 for bs in batches.values())
            hi = min(bs[-1][0] + bs[-1][1] if bs else 0 for bs in batches.values())
            blobs = {}
            for b, bs in batches.items():
                inside = [x for x in bs if x[0] >= lo and x[0] + x[1] <= hi]
                blobs[b] = b"".join(x[3] for x in inside)
                served = [r for r in reps.get(b, []) if lo <= r[0] < hi]
                disk = [r for x in inside for r in test_broker.batch_records(x[3])]
                if b in reps and disk != served:
                    bad.append("%s/%d broker%d: segments hold other records than served"
                               % (key[0], key[1], b))
            ids = sorted(blobs)
            for b in ids[1:]:
                if blobs[b] != blobs[ids[0]]:
                    bad.append("%s/%d: batch bytes of broker%d and broker%d differ over %d..%d"
                               % (key[0], key[1], ids[0], b, lo, hi))
        if bad:
            return checker.Result("replica_segments_identical", False, "; ".join(bad[:5]))
        return checker.Result("replica_segments_identical", True,
                              "%d partitions, segment batch bytes identical" % len(logs))

    def check_managers(self):
        c = self.cluster
        last = {}

        def same():
            got = {}
            for i in c.managers:
                try:
                    st, obj = c.m_call(i, "GET", "/internal/state-digest", timeout=5)
                except Unreachable:
                    return False
                if st != 200:
                    return False
                got[i] = obj
            last.clear()
            last.update(got)
            return len({o["applied"] for o in got.values()}) == 1 and \
                len({o["sha256"] for o in got.values()}) == 1
        try:
            harness.wait_until(same, 30, "managers at the same applied index", interval=0.5)
        except harness.TestFailure:
            pass
        if not last:
            return checker.Result("managers_identical", False, "no digest from every manager")
        applied = {i: o["applied"] for i, o in last.items()}
        digests = {i: o["sha256"][:16] for i, o in last.items()}
        if len(set(applied.values())) != 1:
            return checker.Result("managers_identical", False,
                                  "managers stayed at different applied indexes %s (digests %s)"
                                  % (applied, digests))
        if len(set(digests.values())) != 1:
            return checker.Result("managers_identical", False,
                                  "at applied index %s the stores differ: %s"
                                  % (applied[1], digests))
        images = {o["image_sha256"] for o in last.values()}
        return checker.Result("managers_identical", True,
                              "applied index %d, content digest %s on all three%s" % (
                                  applied[min(applied)], digests[min(digests)],
                                  "" if len(images) == 1 else
                                  " (database images differ in layout)"))

    def finish(self):
        """Stops the load, heals, settles and runs every checker."""
        c = self.cluster
        res = self.results
        self.heal_all()
        c.check_crashes(self.history)
        for w in self.workers:
            w.stop()
        self.atm_wl.stop()
        for w in self.workers:
            w.join()
        self.history.add("nemesis", "info", "settle")
        t0 = time.monotonic()
        settled = None
        try:
            self.settle(SETTLE_LIMIT)
            settled = round(time.monotonic() - t0, 1)
        except harness.TestFailure as e:
            res.append(checker.Result("settled_after_heal", False, str(e)))
        if settled is not None:
            res.append(checker.Result("settled_after_heal", True,
                                      "every partition converged %.1fs after healing" % settled))
        # Final reads: the consumers drain what is left, then every replica.
        ends = {}
        logs, groups = self.read_logs()
        for (t, p), reps in logs.items():
            if reps:
                ends[(t, p)] = max(len(r) and r[-1][0] + 1 for r in reps.values())
        for w in self.workers:
            if isinstance(w, QueueConsumer):
                w.drain()
            elif isinstance(w, BatchConsumer):
                w.catch_up({p: ends.get((w.topic, p), 0) for p in range(w.n_parts)})
        group = [w for w in self.workers if isinstance(w, GroupMember)]
        for w in group:
            w.catch_up({p: ends.get((w.topic, p), 0) for p in range(self.topics[w.topic])})
        try:
            self.atm_wl.final_reads()
        except Exception as e:  # The ATM checks below say what is missing.
            res.append(checker.Result("atm_final_reads", False, "%s: %s" % (type(e).__name__, e)))
        logs, groups = self.read_logs()
        ops = self.history.snapshot()
        res.append(checker.check_acked(ops, logs))
        res.append(checker.check_unique(ops, logs))
        res.append(checker.check_failed_absent(ops, logs))
        res.append(checker.check_order(ops, logs))
        res.append(checker.check_queue_consumers(
            ops, logs, [w.name for w in self.workers if isinstance(w, QueueConsumer)]))
        res.append(checker.check_batch_consumers(
            ops, logs, {w.name: w.n_parts for w in self.workers if isinstance(w, BatchConsumer)}))
        if group:
            res.append(checker.check_group_members(ops, logs, group[0].topic,
                                                   {w.name for w in group}))
        res.append(checker.check_replicas_identical(logs))
        res.append(self.check_disk(logs, groups))
        res.append(self.check_managers())
        rec = [(e["kind"], e.get("recovery_s")) for e in self.schedule]
        slow = [k for k, s in rec if s is None]
        res.append(checker.Result(
            "recovered_after_each_fault", not slow,
            "no produce to every partition and ATM balance within %.0fs after: %s" % (
                RECOVERY_LIMIT, slow) if slow else "%d faults, recovery %.1f s at most" % (
                len(rec), max([s for _, s in rec] or [0]))))
        for name, ok, detail in self.atm_wl.check():
            res.append(checker.Result(name, ok, detail))
        errs = ["%s: %s" % (w.name, w.error.splitlines()[0]) for w in self.workers if w.error]
        acks = sum(1 for op in ops if op["type"] == "ok" and op["f"] in ("produce", "batch"))
        res.append(checker.Result("workloads_ran", not errs and acks > 0,
                                  "; ".join(errs) if errs else "%d acknowledged writes" % acks))
        nerr = ["%s at %.1fs: %s" % (e["kind"], e["start"], e["error"])
                for e in self.schedule if "error" in e]
        res.append(checker.Result("nemeses_ran", not nerr, "; ".join(nerr[:5]) if nerr else
                                  "%d nemeses, %d kinds" % (len(self.schedule), len(
                                      {e["kind"] for e in self.schedule}))))

    def stop_processes(self):
        problems = self.ctx.stop_all()
        crashes = ["%s exited on its own at %.1fs with status %s: %s" % (
            k, t, rc, " | ".join(tail[-3:])) for k, t, rc, tail in self.cluster.crashes]
        bad = crashes + problems
        self.results.append(checker.Result(
            "processes_clean", not bad,
            "; ".join(bad[:5]) if bad else "no crash, clean exits on SIGTERM, no sanitizer report"))
        if self.opts.tls:
            self.results.append(self.check_certificates())

    # Log text that says a certificate was refused: rq_tls on the Raft
    # ports; on HTTP, libcurl's messages (through rq_httpc) and the 401 of
    # a server that wanted a node certificate, where a caller logs it.
    CERT_REFUSED = ("certificate rejected", "ssl certificate problem", "subject name",
                    "certificate is not trusted", "certificate verification failed",
                    "needs a client certificate")

    def check_certificates(self):
        """With TLS every node holds a certificate of the run's CA for the
        address it is dialed at, so no handshake between nodes may fail on
        a certificate: handshakes cut by a fault (a reset, a timeout, a
        peer killed) are expected, refusals are a bug. rq_tls logs one
        failure a second and counts the rest, so this reads what the logs
        show, and says how many handshake failures they name."""
        refused, failures = [], 0
        for p in (list(self.cluster.managers.values()) + list(self.cluster.brokers.values()) +
                  list(self.cluster.atms.values())):
            try:
                with open(p.log_path, "rb") as f:
                    lines = f.read().decode("utf-8", "replace").splitlines()
            except OSError:
                continue
            for ln in lines:
                low = ln.lower()
                if "tls handshake" in low:
                    failures += 1
                if any(x in low for x in self.CERT_REFUSED):
                    refused.append("%r: %s" % (p, ln.strip()[:200]))
        return checker.Result(
            "tls_certificates_accepted", not refused,
            "%d refusals logged: %s" % (len(refused), "; ".join(refused[:3])) if refused else
            "no certificate refused; %d handshake failures logged (faults)" % failures)

    # -- the report --

    def report(self):
        out = self.opts.out
        self.history.write(os.path.join(out, "history.jsonl"))
        with open(os.path.join(out, "schedule.json"), "w") as f:
            json.dump({"seed": self.opts.seed, "profile": self.opts.profile, "tls": self.opts.tls,
                       "duration": self.opts.duration, "nemeses": self.schedule}, f, indent=1)
        ops = self.history.snapshot()
        counts = {}
        for op in ops:
            if op["process"] == "nemesis":
                continue
            key = (op["f"], op["type"])
            counts[key] = counts.get(key, 0) + 1
        tls = " --tls" if self.opts.tls else ""
        lines = ["raftq fault injection: seed %d, profile %s%s, %d s of faults" % (
            self.opts.seed, self.opts.profile, " with TLS" if tls else "", self.opts.duration),
            "reproduce: python3 tests/chaos/chaos.py --seed %d --duration %d --profile %s%s "
            "--build BUILD --out DIR" % (self.opts.seed, self.opts.duration, self.opts.profile,
                                         tls),
            "topology: 3 managers, brokers %s (removed %s), 3 ATMs; topics %s" % (
                sorted(self.cluster.brokers), sorted(self.cluster.removed), self.all_topics()),
            "", "operations (f, outcome: count):"]
        for (f_, t), n in sorted(counts.items()):
            lines.append("  %-10s %-7s %d" % (f_, t, n))
        acks = sum(n for (f_, t), n in counts.items() if t == "ok" and f_ in ("produce", "batch"))
        lines.append("acknowledged writes (produce and batch ops): %d" % acks)
        lines.append("ATM workload: %s" % self.atm_wl.stats())
        lines += ["", "faults (start-end s, recovery s after healing, targets):"]
        for e in self.schedule:
            detail = {k: v for k, v in e.items() if k not in ("kind", "start", "end", "recovery_s")}
            lines.append("  %-26s %7.1f-%-7.1f recovery %-6s %s" % (
                e["kind"], e["start"], e["end"],
                "-" if e.get("recovery_s") is None else "%.1f" % e["recovery_s"],
                json.dumps(detail, sort_keys=True)))
        if self.cluster.restarts:
            lines += ["", "restarts the processes asked for (exit status 1, DESIGN.md section 3):"]
            for k, t, rc, tail in self.cluster.restarts:
                why = [ln for ln in tail if "exiting so that a restart" in ln]
                lines.append("  %s at %.1fs: %s" % (k, t, why[-1].strip() if why else "?"))
        lines += ["", "invariants:"]
        for r in self.results:
            lines.append("  %s %s: %s" % ("PASS" if r.passed else "FAIL", r.name, r.detail))
        for r in self.results:
            if r.passed:
                continue
            lines += ["", "finding %s (seed %d; schedule in schedule.json):" % (r.name,
                                                                               self.opts.seed)]
            lines += ["  " + json.dumps(op, sort_keys=True) for op in r.excerpt]
        with open(os.path.join(out, "report.txt"), "w") as f:
            f.write("\n".join(lines) + "\n")


def free_subnet():
    """SUBNET, or 10.213.N when another run on this machine holds it (the
    host's address on the bridge would clash)."""
    used = netns.sh("ip", "-o", "-4", "addr", "show", check_rc=False).stdout
    if " %s." % SUBNET not in used:
        return SUBNET
    for n in range(1, 256):
        net = "10.213.%d" % n
        if " %s." % net not in used:
            return net
    raise harness.TestFailure("no free 10.213.N.0/24 for the bridge")


def read_replica(c, b, topic, p, first):
    """Every record of @topic/@p in broker @b's replica's own log (local=1,
    whatever its role): (offset, value, key, timestamp) from @first on;
    None if it cannot be read."""
    out = []
    offset = first
    while True:
        try:
            st, obj = c.b_call(b, "GET", "/v1/topics/%s/partitions/%d/records" % (topic, p),
                               query={"offset": offset, "max": 1000, "local": 1},
                               timeout=10)
        except Unreachable:
            return None
        if st != 200:
            return None
        recs = obj["records"]
        if not recs:
            return out
        for r in recs:
            out.append((r["offset"], r["value"], r["key"], r["timestamp_ms"]))
            offset = r["offset"] + 1


def segments(data_dir):
    """The Raft segments of a broker's replicas: ([(mtime, path)] of closed
    ones (START-END), [(mtime, path)] of open ones holding data)."""
    import re
    closed, opened = [], []
    root = os.path.join(data_dir, "replicas")
    for gid in os.listdir(root) if os.path.isdir(root) else []:
        rdir = os.path.join(root, gid, "raft")
        if not os.path.isdir(rdir):
            continue
        for name in os.listdir(rdir):
            path = os.path.join(rdir, name)
            try:  # The broker may be running: files come and go.
                if re.match(r"^\d{16}-\d{16}$", name):
                    closed.append((os.path.getmtime(path), path))
                elif re.match(r"^open-\d+$", name) and os.path.getsize(path) > 0:
                    opened.append((os.path.getmtime(path), path))
            except OSError:
                continue
    return closed, opened


def damage_segment(data_dir, rng, mode):
    """Damages the newest Raft segment of one of the broker's replicas:
    "torn" zeroes the last bytes written to the newest open segment that
    holds entries (its size unchanged), "short_open" cuts them off the
    file, "short_closed" cuts bytes off the newest closed segment (START-END).
    Returns what was done."""
    closed, opened = segments(data_dir)
    if mode == "short_closed":
        if not closed:
            return "no closed segment"
        _, path = max(closed)
        size = os.path.getsize(path)
        cut = rng.randint(1, max(1, min(512, size - 8)))
        os.truncate(path, size - cut)
        return "%s: %d of %d bytes cut off" % (os.path.relpath(path, data_dir), cut, size)
    for _, path in sorted(opened, reverse=True):
        with open(path, "rb") as f:
            data = f.read()
        used = len(data.rstrip(b"\0"))
        if used <= 16:
            continue
        cut = rng.randint(1, min(256, used - 8))
        if mode == "short_open":
            os.truncate(path, used - cut)
            return "%s: cut to %d bytes (%d written)" % (os.path.relpath(path, data_dir),
                                                          used - cut, used)
        with open(path, "r+b") as f:
            f.seek(used - cut)
            f.write(b"\0" * cut)
            f.flush()
            os.fsync(f.fileno())
        return "%s: last %d of %d written bytes zeroed" % (os.path.relpath(path, data_dir),
                                                           cut, used)
    return "no open segment with entries"


def main():
    ap = argparse.ArgumentParser(description="raftq fault-injection suite (needs root)")
    ap.add_argument("--seed", type=int, default=None, help="random seed (default: time)")
    ap.add_argument("--duration", type=float, default=300, help="seconds of faults")
    ap.add_argument("--build", default="build", help="build directory with the binaries")
    ap.add_argument("--out", default=None, help="report directory (default BUILD/chaos)")
    ap.add_argument("--profile", choices=("test", "full"), default="full")
    ap.add_argument("--keep", action="store_true", help="keep the data directories")
    ap.add_argument("--damage", action="store_true",
                    help="truncate also cuts segment files short (a replica whose closed segment "
                    "is cut is rebuilt from its peers; libraft 0.15 leaks on that path, which "
                    "the sanitizers report)")
    ap.add_argument("--kinds", default=None,
                    help="only these nemeses, comma-separated (default: all: %s)" % ",".join(KINDS))
    ap.add_argument("--tls", action="store_true",
                    help="every port with TLS 1.3, certificates from a throwaway CA")
    ap.add_argument("--log-level", default=os.environ.get("ITEST_LOG_LEVEL", "info"))
    opts = ap.parse_args()
    opts.kinds = KINDS if opts.kinds is None else opts.kinds.split(",")
    bad = [k for k in opts.kinds if k not in KINDS]
    if bad:
        ap.error("unknown nemesis %s; known: %s" % (", ".join(bad), ", ".join(KINDS)))
    if opts.seed is None:
        opts.seed = int(time.time()) & 0xFFFFFF
    opts.out = os.path.abspath(opts.out or os.path.join(opts.build, "chaos"))
    log("chaos: seed %d, profile %s%s, %.0f s of faults, report in %s" % (
        opts.seed, opts.profile, " with TLS" if opts.tls else "", opts.duration, opts.out))
    # A missing binary is a failure, root or not: a suite that skipped
    # would let a broken build pass.
    missing = [b for b in ("manager", "broker", "atm")
               if not os.access(os.path.join(opts.build, b), os.X_OK)]
    if missing:
        log("FAIL chaos: no %s in %s (make builds them)" % (", ".join(missing), opts.build))
        log("chaos: 0 passed, 1 failed, 0 skipped")
        return 1
    reason = netns.requires(PREFIX)
    if reason is None:
        if opts.tls and shutil.which("openssl") is None:
            reason = "--tls needs the openssl tool (make deps installs it)"
    elif os.geteuid() != 0:
        reason = "needs root (network namespaces)"
    if reason is not None:
        log("SKIP chaos: %s" % reason)
        log("chaos: 0 passed, 0 failed, 1 skipped")
        return 0
    os.makedirs(opts.out, exist_ok=True)

    def on_signal(signum, frame):
        raise KeyboardInterrupt("signal %d" % signum)
    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)
    signal.signal(signal.SIGHUP, on_signal)

    ch = Chaos(opts)
    interrupted = False
    try:
        try:
            ch.setup()
            for w in ch.workers:
                w.start()
            ch.atm_wl.start()
            ch.run_faults()
            ch.finish()
        except harness.TestFailure as e:
            ch.results.append(checker.Result("setup_and_run", False, str(e)))
        except Exception as e:  # A bug in the suite: reported as a failure.
            import traceback
            traceback.print_exc()
            ch.results.append(checker.Result("setup_and_run", False, "harness: %s: %s" % (
                type(e).__name__, e)))
        if ch.ctx is not None:
            ch.stop_processes()
    except KeyboardInterrupt:
        interrupted = True
        log("chaos: interrupted")
        if ch.ctx is not None:
            ch.ctx.stop_all()
    finally:
        harness._kill_leftovers()
        if ch.net is not None:
            ch.net.down()
    if ch.cluster is not None:
        ch.report()
    if interrupted:
        log("chaos: 0 passed, 1 failed, 0 skipped")
        return 1
    passed = sum(1 for r in ch.results if r.passed)
    failed = len(ch.results) - passed
    for r in ch.results:
        if r.passed:
            log("PASS %s: %s" % (r.name, r.detail))
        else:
            log("FAIL %s: %s (seed %d; excerpt in %s)" % (
                r.name, " ".join(r.detail.split()), opts.seed,
                os.path.join(opts.out, "report.txt")))
    if failed == 0 and not opts.keep and ch.ctx is not None:
        shutil.rmtree(os.path.join(ch.ctx.dir, "data"), ignore_errors=True)
    log("chaos: %d passed, %d failed, 0 skipped" % (passed, failed))
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())

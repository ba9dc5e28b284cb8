"""Integration tests of the manager cluster (manager/README.md, API.md
sections 1-3) on 127.0.0.1.

Each test starts three manager processes and four brokers with fresh data
directories and drives the public API over HTTP through every manager:
the whole section 1 table with its failure cases, the batch API of section
2, the admin API and broker liveness of section 3, the manager leader
killed with SIGKILL while producers and consumers keep going through the
other managers (no acknowledged message lost, none delivered twice), and
every process restarted to find its metadata and messages again, a
dead broker's replicas moved to the spare broker, and a rolling upgrade
from the previous release (skipped unless $RAFTQ_PREVIOUS_BUILD names its
build directory).

Brokers register and heartbeat themselves (--managers). Needs no root. Run: python3 tests/integration/test_manager.py [--build DIR] [-k NAME]
[--ports LO-HI].
"""

import collections
import concurrent.futures
import http.client
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import threading
import time
import urllib.parse

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
# The chaos suite's checkers judge this suite's consumers too.
sys.path.insert(1, os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))),
                                "chaos"))

from harness import Skip, TestFailure, check, run_suite, wait_until  # noqa: E402
import checker  # noqa: E402
import rqkeys  # noqa: E402
import rqsign  # noqa: E402

SECRET = rqkeys.TEST_SECRET
# Managers refuse to start without an admin token (or --admin-open, which
# is for raftq dev): every cluster here has this one unless a test names
# another.
ADMIN_TOKEN = "itest-admin-token"
HTTP_TIMEOUT = 20.0
MAX_MESSAGE = 1024


# ---- HTTP ------------------------------------------------------------------


class Unreachable(Exception):
    """The process could not be reached (refused, reset, timed out)."""


def call(addr, method, path, body=None, timeout=HTTP_TIMEOUT, headers=None, query=None,
         sign=None):
    """One request; returns (status, parsed JSON body or None, headers).
    With @sign (an rqkeys HTTP label) it is signed as the cluster's
    processes sign internal requests (rqsign.py)."""
    host, port = addr.rsplit(":", 1)
    if query:
        path += "?" + urllib.parse.urlencode(query)
    conn = http.client.HTTPConnection(host, int(port), timeout=timeout)
    try:
        # bytes go as they are (their Content-Type in @headers).
        data = body if body is None or isinstance(body, bytes) else json.dumps(body).encode()
        hdr = {"Content-Type": "application/json"} if isinstance(body, (dict, list)) else {}
        if sign is not None:
            hdr.update(rqsign.headers(method, path, data or b"", secret=SECRET, label=sign))
        hdr.update(headers or {})
        conn.request(method, path, body=data, headers=hdr)
        resp = conn.getresponse()
        text = resp.read()
        try:
            obj = json.loads(text.decode("utf-8"))
        except ValueError:
            obj = None
        return resp.status, obj, dict(resp.getheaders())
    except (OSError, http.client.HTTPException) as e:
        raise Unreachable("%s %s %s: %s" % (addr, method, path, e)) from None
    finally:
        conn.close()


def error_codes():
    """The error codes of shared/rq_codes.[ch]: name -> HTTP status."""
    shared = os.path.join(os.path.dirname(os.path.dirname(os.path.dirname(
        os.path.abspath(__file__)))), "shared")
    with open(os.path.join(shared, "rq_codes.h")) as f:
        names = dict(re.findall(r'#define (RQ_CODE_[A-Z_]+) "([a-z_]+)"', f.read()))
    with open(os.path.join(shared, "rq_codes.c")) as f:
        text = f.read()
    codes = {}
    for name, status in re.findall(r'\{\s*("[a-z_]+"|RQ_CODE_[A-Z_]+),\s*(\d+),', text):
        codes[names[name] if name in names else name.strip('"')] = int(status)
    return codes


ERROR_CODES = error_codes()


def check_failure(st, obj, status, what, code=None):
    """A failure answer: @status, JSON with status "failure", a message and
    a code of rq_codes.h that goes with @status (@code, if given)."""
    check(st == status, "%s: expected %d, got %d %r" % (what, status, st, obj))
    check(isinstance(obj, dict) and obj.get("status") == "failure"
          and isinstance(obj.get("message"), str) and len(obj["message"]) > 8,
          "%s: expected a JSON failure with a message, got %r" % (what, obj))
    got = obj.get("code")
    check(ERROR_CODES.get(got) in (status, 0),
          "%s: code %r is not one of rq_codes.h's for %d: %r" % (what, got, status, obj))
    check(code is None or got == code, "%s: code %r, expected %r" % (what, got, code))
    return obj


def check_ok(st, obj, what):
    check(st == 200 and isinstance(obj, dict) and obj.get("status") == "success",
          "%s: expected success, got %d %r" % (what, st, obj))
    return obj


# ---- The cluster -----------------------------------------------------------


class Cluster:
    """Managers 1..3 and brokers 1..4 on fresh ports and data directories."""

    def __init__(self, ctx, n_managers=3, n_brokers=4, manager_args=(), broker_args=(),
                 admin_token=ADMIN_TOKEN):
        self.ctx = ctx
        self.admin = {"Authorization": "Bearer " + admin_token}
        manager_args = list(manager_args) + ["--admin-token", admin_token]
        self.broker_binary = os.path.join(os.path.dirname(ctx.binary), "broker")
        self.m_raft = {i: "127.0.0.1:%d" % ctx.ports.take() for i in range(1, n_managers + 1)}
        self.m_http = {i: "127.0.0.1:%d" % ctx.ports.take() for i in range(1, n_managers + 1)}
        self.b_raft = {i: "127.0.0.1:%d" % ctx.ports.take() for i in range(1, n_brokers + 1)}
        self.b_http = {i: "127.0.0.1:%d" % ctx.ports.take() for i in range(1, n_brokers + 1)}
        peers = ",".join("%d=%s" % (i, a) for i, a in sorted(self.m_raft.items()))
        common = ["--election-timeout-ms", "600", "--heartbeat-ms", "100",
                  "--cluster-secret", SECRET, "--log-level", ctx.opts.log_level]
        self.managers = {}
        for i in self.m_raft:
            data = os.path.join(ctx.dir, "manager%d" % i)
            argv = [ctx.binary, "--id", str(i), "--peers", peers, "--http-addr", self.m_http[i],
                    "--data", data, "--max-message-bytes", str(MAX_MESSAGE)] + common
            d = ctx.daemon("manager", i, argv + list(manager_args))
            d.data_dir = data
            self.managers[i] = d
        self.brokers = {}
        urls = ",".join("http://%s" % a for _, a in sorted(self.m_http.items()))
        for i in self.b_raft:
            data = os.path.join(ctx.dir, "broker%d" % i)
            argv = [self.broker_binary, "--id", str(i), "--raft-addr", self.b_raft[i],
                    "--http-addr", self.b_http[i], "--data", data,
                    "--snapshot-threshold", "64", "--managers", urls,
                    # Closing at once on SIGTERM: the leadership handover
                    # has its own test (test_operator.py, rolling restart).
                    "--shutdown-grace-ms", "0"] + common
            d = ctx.daemon("broker", i, argv + list(broker_args))
            d.data_dir = data
            self.brokers[i] = d

    # -- processes --

    def start(self, wait=True, brokers=None):
        for i, b in self.brokers.items():
            if brokers is None or i in brokers:
                b.start()
        for m in self.managers.values():
            m.start()
        if wait:
            self.wait_ready()
        return self

    def wait_ready(self, timeout=40.0):
        """Every running manager is ready and sees every running broker ALIVE."""
        for i, m in self.managers.items():
            if m.running():
                wait_until(lambda i=i: self.ready(i), timeout, "manager%d to be ready" % i)
        want = {i for i, b in self.brokers.items() if b.running()}
        wait_until(lambda: want <= self.alive_brokers(), timeout,
                   "brokers %s to be ALIVE" % sorted(want))

    def ready(self, i):
        try:
            st, _, _ = call(self.m_http[i], "GET", "/readyz", timeout=2)
        except Unreachable:
            return False
        return st == 200

    def running_managers(self):
        return [i for i, m in self.managers.items() if m.running()]

    def alive_brokers(self):
        for i in self.running_managers():
            try:
                st, obj, _ = call(self.m_http[i], "GET", "/admin/brokers", timeout=5,
                                  headers=self.admin)
            except Unreachable:
                continue
            if st == 200:
                return {b["id"] for b in obj["brokers"] if b["state"] == "alive"}
        return set()

    def broker_states(self):
        for i in self.running_managers():
            try:
                st, obj, _ = call(self.m_http[i], "GET", "/admin/brokers", timeout=5,
                                  headers=self.admin)
            except Unreachable:
                continue
            if st == 200:
                return {b["id"]: b for b in obj["brokers"]}
        return {}

    def leader(self, among=None):
        """The manager id every running manager (or every one of @among)
        names as leader, or None."""
        seen = set()
        for i in self.running_managers() if among is None else among:
            try:
                st, obj, _ = call(self.m_http[i], "GET", "/admin/managers", timeout=3,
                                  headers=self.admin)
            except Unreachable:
                return None
            if st != 200 or obj["leader"] is None:
                return None
            seen.add(obj["leader"])
        return seen.pop() if len(seen) == 1 else None

    def wait_leader(self, timeout=20.0, exclude=()):
        return wait_until(lambda: (lambda x: x if x is not None and x not in exclude else None)(
            self.leader()), timeout, "a manager leader")

    # -- the API --

    def call(self, i, method, path, body=None, query=None, headers=None, timeout=HTTP_TIMEOUT):
        """An HTTP call to manager @i; admin paths carry the admin token
        unless @headers says otherwise."""
        if headers is None and path.startswith("/admin/"):
            headers = self.admin
        st, obj, _ = call(self.m_http[i], method, path, body, timeout=timeout, query=query,
                          headers=headers)
        return st, obj

    def create_topic(self, i, name, partitions=None):
        body = {"topic_name": name}
        if partitions is not None:
            body["number_of_partitions"] = partitions
        st, obj = self.call(i, "POST", "/topics", body)
        check_ok(st, obj, "create topic %s at manager%d" % (name, i))
        check(obj["message"] == "Topic '%s' created successfully" % name,
              "message %r" % obj["message"])

    def partitions(self, i, topic):
        st, obj = self.call(i, "GET", "/topics/partitions", query={"topic": topic})
        return check_ok(st, obj, "partitions of %s" % topic)["partitions"]

    def wait_topic_led(self, topic, timeout=30.0):
        """Every partition of @topic has a leader the managers know of."""
        def led():
            for i in self.running_managers():
                try:
                    ps = self.partitions(i, topic)
                except (Unreachable, TestFailure):
                    return False
                if not ps or any(p["leader"] is None for p in ps):
                    return False
            return True
        wait_until(led, timeout, "every partition of %s to have a leader" % topic, interval=0.2)

    def broker_replica(self, b, gid):
        """Broker @b's replica of group @gid as GET /internal/replicas shows
        it; {} when it has none or cannot be reached."""
        try:
            st, obj, _ = call(self.b_http[b], "GET", "/internal/replicas", timeout=5,
                                  sign=rqkeys.HTTP_M2B)
        except Unreachable:
            return {}
        if st != 200:
            return {}
        return next((r for r in obj["replicas"] if r["group_id"] == gid), {})

    def group_leader(self, gid, brokers):
        """The broker among @brokers that is the ready leader of @gid as
        they all agree, or None."""
        reps = {b: self.broker_replica(b, gid) for b in brokers}
        leads = [b for b, r in reps.items() if r.get("role") == "leader" and r.get("ready")]
        if len(leads) != 1:
            return None
        term = reps[leads[0]]["term"]
        if all(r.get("leader_id") == leads[0] and r.get("term") == term for r in reps.values()):
            return leads[0]
        return None

    def wait_preferred_lead(self, topic, timeout=30.0, among=None):
        """Every partition of @topic is led by its preferred leader (the
        store's replicas[0]) and every running replica prefers it."""
        def settled():
            for i in self.running_managers():
                try:
                    st, obj = self.call(i, "GET", "/admin/topics/%s" % topic,
                                        headers=self.admin, timeout=5)
                except Unreachable:
                    continue
                if st != 200:
                    return False
                for p in obj["partitions"]:
                    live = [b for b in p["replicas"] if self.brokers[b].running()]
                    if self.group_leader(p["group_id"], live) != p["preferred_leader"]:
                        return False
                    if any(self.broker_replica(b, p["group_id"]).get("preferred_leader")
                           != p["preferred_leader"] for b in live):
                        return False
                return obj["partitions"]
            return False
        return wait_until(settled, timeout, "the preferred leaders of %s to lead" % topic,
                          interval=0.3)

    def describe(self, topic):
        """GET /admin/topics/@topic at any running manager (the leader
        answers), or None."""
        for i in self.running_managers():
            try:
                st, obj = self.call(i, "GET", "/admin/topics/%s" % topic, headers=self.admin,
                                    timeout=5)
            except Unreachable:
                continue
            if st == 200:
                return obj
        return None

    def groups_match_store(self, topic, exclude=()):
        """The partitions of @topic if every one has three replicas in the
        store, none on a broker in @exclude, each hosted by its broker, and
        its group's leader reports exactly those brokers as voters; else
        False."""
        obj = self.describe(topic)
        if obj is None:
            return False
        for p in obj["partitions"]:
            reps = p["replicas"]
            if len(set(reps)) != 3 or set(reps) & set(exclude):
                return False
            lead = self.group_leader(p["group_id"], reps)
            if lead is None:
                return False
            if sorted(self.broker_replica(lead, p["group_id"]).get("voters", [])) != sorted(reps):
                return False
        return obj["partitions"]

    def hosted(self, b, topic=None):
        """The group ids broker @b hosts (of @topic), or None if it cannot
        be reached."""
        try:
            st, obj, _ = call(self.b_http[b], "GET", "/internal/replicas", timeout=5,
                                  sign=rqkeys.HTTP_M2B)
        except Unreachable:
            return None
        if st != 200:
            return None
        return {r["group_id"] for r in obj["replicas"] if topic is None or r["topic"] == topic}

    def register(self, i, kind, topic, partition=None):
        body = {"topic": topic}
        if partition is not None:
            body["partition_id"] = partition
        st, obj = self.call(i, "POST", "/%s/register" % kind, body)
        check_ok(st, obj, "register a %s for %s at manager%d" % (kind, topic, i))
        v = obj["%s_id" % kind]
        check(isinstance(v, int) and v > 0, "%s id %r" % (kind, v))
        return v

    def produce(self, i, topic, producer, message, **extra):
        body = {"topic": topic, "producer_id": producer, "message": message}
        body.update(extra)
        st, obj = self.call(i, "POST", "/producer/produce", body)
        check_ok(st, obj, "produce %r at manager%d" % (message, i))
        return obj["partition_id"], obj["offset"]

    def consume(self, i, topic, consumer, **extra):
        """(message, partition, offset), or None when there are no new ones."""
        q = {"topic": topic, "consumer_id": consumer}
        q.update(extra)
        st, obj = self.call(i, "GET", "/consumer/consume", query=q)
        if st == 404:
            check_failure(st, obj, 404, "consume", code="no_new_messages")
            check("no new messages" in obj["message"], "404 message %r" % obj["message"])
            return None
        check_ok(st, obj, "consume at manager%d" % i)
        return obj["message"], obj["partition_id"], obj["offset"]

    def size(self, i, topic, consumer, **extra):
        q = {"topic": topic, "consumer_id": consumer}
        q.update(extra)
        st, obj = self.call(i, "GET", "/size", query=q)
        return check_ok(st, obj, "size")["size"]


# ---- Tests -----------------------------------------------------------------


def test_queue_api(ctx):
    """API.md section 1 through every manager, with its failure cases."""
    c = Cluster(ctx).start()
    ms = sorted(c.managers)

    # Topics, created through each manager in turn.
    for i, (name, n) in zip(ms, (("alpha", 2), ("beta.v1", None), ("gamma_2-X", 1))):
        c.create_topic(i, name, n)
    st, obj = c.call(1, "POST", "/topics", {"name": "delta"})
    check_ok(st, obj, "create with 'name'")
    for i in ms:
        check_failure(*c.call(i, "POST", "/topics", {"topic_name": "alpha"}), 409,
                      "duplicate at manager%d" % i)
    for bad in ("", ".", "..", "x" * 129, "sp ace", "sl/ash", "caf\u00e9", "a?b"):
        check_failure(*c.call(2, "POST", "/topics", {"topic_name": bad}), 400,
                      "topic name %r" % bad)
    for bad in (0, 1025, "x", -1, 2.5):
        check_failure(*c.call(3, "POST", "/topics", {"topic_name": "pp", "number_of_partitions": bad}),
                      400, "number_of_partitions %r" % bad)
    check_failure(*c.call(1, "POST", "/topics", {}), 400, "no topic name")
    st, obj, _ = call(c.m_http[1], "POST", "/topics", None, headers={"Content-Type": "application/json"})
    check_failure(st, obj, 400, "empty body")
    for i in ms:
        st, obj = c.call(i, "GET", "/topics")
        check(check_ok(st, obj, "list")["topics"] == ["alpha", "beta.v1", "delta", "gamma_2-X"],
              "manager%d lists %r" % (i, obj["topics"]))

    # Partitions.
    c.wait_topic_led("alpha")
    for i in ms:
        ps = c.partitions(i, "alpha")
        check([p["partition_id"] for p in ps] == [0, 1], "alpha partitions %r" % ps)
        for p in ps:
            check(len(set(p["replicas"])) == 3 and set(p["replicas"]) <= set(c.brokers),
                  "replicas %r" % p)
            check(p["leader"] in p["replicas"] and p["high_watermark"] == 0, "partition %r" % p)
    check(len(c.partitions(2, "beta.v1")) == 1, "beta.v1 has the default 1 partition")
    check_failure(*c.call(1, "GET", "/topics/partitions", query={"topic": "nope"}), 404, "unknown topic")
    check_failure(*c.call(2, "GET", "/topics/partitions"), 400, "no topic")
    # GET parameters from a JSON body; the query string wins.
    st, obj, _ = call(c.m_http[3], "GET", "/topics/partitions?topic=alpha", {"topic": "nope"})
    check(check_ok(st, obj, "query wins")["topic"] == "alpha", "query string lost: %r" % obj)
    st, obj, _ = call(c.m_http[3], "GET", "/topics/partitions", {"topic": "gamma_2-X"})
    check(len(check_ok(st, obj, "body parameters")["partitions"]) == 1, "gamma: %r" % obj)

    # Registration: ids are unique; a producer creates its topic.
    ids = set()
    p_any = c.register(1, "producer", "alpha")
    p_bound = c.register(2, "producer", "alpha", partition=1)
    p_auto = c.register(3, "producer", "auto")
    c_any = c.register(3, "consumer", "alpha")
    c_bound = c.register(1, "consumer", "alpha", partition=1)
    c_beta = c.register(2, "consumer", "beta.v1")
    ids = [p_any, p_bound, p_auto]
    check(len(set(ids)) == 3 and len({c_any, c_bound, c_beta}) == 3, "ids %r" % ids)
    st, obj = c.call(2, "GET", "/topics")
    check("auto" in obj["topics"], "the producer did not create its topic: %r" % obj)
    check(len(c.partitions(1, "auto")) == 1, "auto has the default 1 partition")
    check_failure(*c.call(1, "POST", "/consumer/register", {"topic": "nope"}), 404,
                  "consumer of an unknown topic")
    check_failure(*c.call(2, "POST", "/producer/register", {"topic": "alpha", "partition_id": 2}),
                  404, "producer bound to a partition that does not exist")
    check_failure(*c.call(3, "POST", "/producer/register", {"topic": "b@d"}), 400, "bad topic")
    check_failure(*c.call(3, "POST", "/consumer/register", {}), 400, "no topic")

    # Produce through every manager; offsets are contiguous per partition.
    c.wait_topic_led("alpha")
    sent = {}
    for k in range(12):
        i = ms[k % 3]
        msg = "m%d-\u00fcber" % k
        p, off = c.produce(i, "alpha", p_any, msg)
        sent[(p, off)] = msg
    for p in (0, 1):
        offs = sorted(o for (q, o) in sent if q == p)
        check(offs == list(range(len(offs))), "partition %d offsets %r" % (p, offs))
    check({p for p, _ in sent} == {0, 1}, "round robin reached one partition only: %r" % sent)
    for k in range(4):
        p, off = c.produce(ms[k % 3], "alpha", p_bound, "bound%d" % k, partition_id=0)
        check(p == 1, "a bound producer's message went to partition %d" % p)
        sent[(p, off)] = "bound%d" % k
    p, off = c.produce(1, "alpha", p_any, "given", partition=0)
    check(p == 0, "partition given as 'partition' ignored")
    sent[(p, off)] = "given"
    keyed = set()
    for k in range(4):
        p, off = c.produce(ms[k % 3], "alpha", p_any, "key%d" % k, key="user-7")
        keyed.add(p)
        sent[(p, off)] = "key%d" % k
    check(len(keyed) == 1, "one key went to partitions %r" % keyed)
    p, off = c.produce(3, "alpha", p_any, "x" * MAX_MESSAGE)
    sent[(p, off)] = "x" * MAX_MESSAGE
    check_failure(*c.call(1, "POST", "/producer/produce",
                          {"topic": "alpha", "producer_id": p_any, "message": "x" * (MAX_MESSAGE + 1)}),
                  413, "message too large")
    check_failure(*c.call(2, "POST", "/producer/produce",
                          {"topic": "alpha", "producer_id": 999999, "message": "m"}), 404,
                  "unknown producer")
    check_failure(*c.call(3, "POST", "/producer/produce",
                          {"topic": "beta.v1", "producer_id": p_any, "message": "m"}), 400,
                  "producer used with another topic")
    check_failure(*c.call(1, "POST", "/producer/produce",
                          {"topic": "alpha", "producer_id": p_any}), 400, "no message")
    check_failure(*c.call(2, "POST", "/producer/produce",
                          {"topic": "alpha", "producer_id": p_any, "message": 5}), 400,
                  "message not a string")
    check_failure(*c.call(3, "POST", "/producer/produce",
                          {"topic": "alpha", "producer_id": "p", "message": "m"}), 400,
                  "producer id not an integer")
    check_failure(*c.call(1, "POST", "/producer/produce",
                          {"topic": "alpha", "producer_id": p_any, "message": "m",
                           "partition_id": 7}), 404, "unknown partition")

    # Size, then consume everything exactly once through every manager.
    for i in ms:
        check(c.size(i, "alpha", c_any) == len(sent), "size at manager%d" % i)
        check(c.size(i, "alpha", c_any, partition_id=1) ==
              len([k for k in sent if k[0] == 1]), "size of partition 1")
        check(c.size(i, "alpha", c_bound) == len([k for k in sent if k[0] == 1]),
              "size for a bound consumer")
    got = {}
    k = 0
    while True:
        r = c.consume(ms[k % 3], "alpha", c_any)
        k += 1
        if r is None:
            break
        msg, p, off = r
        check((p, off) not in got, "(%d, %d) delivered twice" % (p, off))
        got[(p, off)] = msg
        check(k <= len(sent) + 1, "more messages than were sent")
    check(got == sent, "consumed %d messages, sent %d; differing: %r" % (
        len(got), len(sent), sorted(set(got.items()) ^ set(sent.items()))[:5]))
    for p in (0, 1):
        offs = [o for (q, o) in got if q == p]
        check(offs == sorted(offs), "partition %d consumed out of order" % p)
    check(c.size(2, "alpha", c_any) == 0, "size after consuming everything")
    for i in ms:
        check(c.consume(i, "alpha", c_any) is None, "another message after the end")
    # A bound consumer reads its partition only; parameters from a body.
    bound = []
    while True:
        st, obj, _ = call(c.m_http[bound and 1 or 2], "GET", "/consumer/consume",
                          {"topic": "alpha", "consumer_id": c_bound})
        if st == 404:
            break
        check_ok(st, obj, "bound consume")
        bound.append((obj["partition_id"], obj["offset"]))
    check(bound == sorted(k for k in sent if k[0] == 1), "bound consumer got %r" % bound)
    check_failure(*c.call(1, "GET", "/consumer/consume", query={"topic": "alpha", "consumer_id": 424242}),
                  404, "unknown consumer")
    check_failure(*c.call(2, "GET", "/consumer/consume", query={"topic": "beta.v1", "consumer_id": c_any}),
                  400, "consumer used with another topic")
    check_failure(*c.call(3, "GET", "/consumer/consume", query={"topic": "alpha"}), 400,
                  "no consumer id")
    check_failure(*c.call(3, "GET", "/size", query={"topic": "alpha", "consumer_id": 424242}),
                  404, "size of an unknown consumer")
    check(c.consume(1, "beta.v1", c_beta) is None, "an empty topic has no messages")


def test_batch_api(ctx):
    """API.md section 2: batches per partition, reads, consumer offsets."""
    c = Cluster(ctx).start()
    c.create_topic(1, "logs", 3)
    c.wait_topic_led("logs")
    prod = c.register(2, "producer", "logs")
    cons = c.register(3, "consumer", "logs")
    recs = [{"value": "v%d" % k} for k in range(10)]
    recs += [{"value": "k%d" % k, "key": "same"} for k in range(5)]
    recs += [{"value": "p%d" % k, "partition_id": 2} for k in range(5)]
    st, obj = c.call(1, "POST", "/v1/topics/logs/records", {"records": recs})
    offsets = check_ok(st, obj, "batch")["offsets"]
    check(len(offsets) == len(recs), "%d offsets for %d records" % (len(offsets), len(recs)))
    check({o["partition_id"] for o in offsets[10:15]}.__len__() == 1, "a key spread: %r" % offsets[10:15])
    check(all(o["partition_id"] == 2 for o in offsets[15:]), "partition_id ignored")
    per = {}
    for r, o in zip(recs, offsets):
        per.setdefault(o["partition_id"], []).append((o["offset"], r["value"]))
    for p, lst in per.items():
        offs = [x[0] for x in lst]
        check(offs == list(range(offs[0], offs[0] + len(offs))), "partition %d: not contiguous %r" % (p, offs))
        st, obj = c.call(3, "GET", "/v1/topics/logs/partitions/%d/records" % p,
                         query={"offset": 0, "max": 100})
        got = [(r["offset"], r["value"]) for r in check_ok(st, obj, "read")["records"]]
        check(got == lst, "partition %d reads %r, wrote %r" % (p, got, lst))
        check(obj["high_watermark"] == len(lst) and obj["next_offset"] == len(lst), "hw %r" % obj)
    # Deduplication: the same producer and sequence again appends nothing.
    body = {"records": [{"value": "once", "partition_id": 0}], "producer_id": prod, "sequence": 7}
    st, first = c.call(2, "POST", "/v1/topics/logs/records", body)
    check_ok(st, first, "dedupe 1")
    st, again = c.call(3, "POST", "/v1/topics/logs/records", body)
    check(check_ok(st, again, "dedupe 2")["offsets"] == first["offsets"], "retry appended again")
    # A long poll at the end ends empty.
    t0 = time.monotonic()
    st, obj = c.call(1, "GET", "/v1/topics/logs/partitions/1/records",
                     query={"offset": 1000, "wait_ms": 300})
    check(check_ok(st, obj, "long poll")["records"] == [] and time.monotonic() - t0 >= 0.25,
          "long poll %r" % obj)
    # Failures.
    check_failure(*c.call(1, "POST", "/v1/topics/nope/records", {"records": [{"value": "x"}]}),
                  404, "unknown topic")
    check_failure(*c.call(2, "POST", "/v1/topics/logs/records", {"records": []}), 400, "no records")
    check_failure(*c.call(3, "POST", "/v1/topics/logs/records", {"records": [{"value": 1}]}), 400,
                  "value not a string")
    check_failure(*c.call(1, "POST", "/v1/topics/logs/records",
                          {"records": [{"value": "x" * (MAX_MESSAGE + 1)}]}), 413, "value too large")
    check_failure(*c.call(2, "POST", "/v1/topics/logs/records",
                          {"records": [{"value": "x", "partition_id": 9}]}), 404, "unknown partition")
    check_failure(*c.call(3, "POST", "/v1/topics/logs/records",
                          {"records": [{"value": "x"}], "producer_id": 999999, "sequence": 1}),
                  404, "unknown producer")
    check_failure(*c.call(1, "GET", "/v1/topics/logs/partitions/5/records"), 404, "read partition 5")
    check_failure(*c.call(2, "GET", "/v1/topics/logs/partitions/0/records", query={"max": 0}),
                  400, "max 0")
    # Consumer offsets with lag; committing moves what consume returns.
    st, obj = c.call(1, "GET", "/v1/consumers/%d/offsets" % cons)
    offs = {o["partition_id"]: o for o in check_ok(st, obj, "offsets")["offsets"]}
    hw = {p: len(per.get(p, [])) + (1 if p == 0 else 0) for p in range(3)}
    check(all(offs[p]["offset"] == 0 and offs[p]["lag"] == hw[p] for p in range(3)),
          "offsets %r, high watermarks %r" % (offs, hw))
    st, obj = c.call(2, "POST", "/v1/consumers/%d/offsets" % cons,
                     {"offsets": [{"partition_id": 2, "offset": hw[2] - 1}]})
    check_ok(st, obj, "commit offsets")
    st, obj = c.call(3, "GET", "/v1/consumers/%d/offsets" % cons)
    offs = {o["partition_id"]: o for o in check_ok(st, obj, "offsets")["offsets"]}
    check(offs[2]["offset"] == hw[2] - 1 and offs[2]["lag"] == 1, "after commit %r" % offs)
    msg = c.consume(1, "logs", cons, partition_id=2)
    check(msg == ("p4", 2, hw[2] - 1), "consume after the commit gave %r" % (msg,))
    check_failure(*c.call(1, "POST", "/v1/consumers/424242/offsets",
                          {"offsets": [{"partition_id": 0, "offset": 1}]}), 404, "unknown consumer")
    check_failure(*c.call(2, "POST", "/v1/consumers/%d/offsets" % cons,
                          {"offsets": [{"partition_id": 8, "offset": 1}]}), 404, "unknown partition")
    check_failure(*c.call(3, "POST", "/v1/consumers/%d/offsets" % cons, {"offsets": "x"}), 400,
                  "offsets not a list")
    check_failure(*c.call(3, "GET", "/v1/consumers/424242/offsets"), 404, "offsets of nobody")

    # The binary body (broker/README.md): one partition, named in the query
    # string, relayed to its broker as it came; offsets as for JSON.
    from test_broker import BINARY, binary_body  # It imports this module.
    c.create_topic(1, "bin", 2)
    c.wait_topic_led("bin")
    binary = {"Content-Type": BINARY}
    recs = [(None, "b%d" % k) for k in range(4)] + [("key", "caf\u00e9")]
    path = "/v1/topics/bin/records"
    st, obj = c.call(2, "POST", path, binary_body(recs), query={"partition_id": 1},
                     headers=binary)
    check(check_ok(st, obj, "binary batch")["offsets"]
          == [{"partition_id": 1, "offset": k} for k in range(5)], "offsets %r" % obj)
    st, obj = c.call(3, "GET", "/v1/topics/bin/partitions/1/records", query={"offset": 0})
    got = [(r["key"], r["value"]) for r in check_ok(st, obj, "read binary")["records"]]
    check(got == recs, "read back %r" % got)
    q = {"partition_id": 0, "producer_id": c.register(1, "producer", "bin"), "sequence": 1}
    st, first = c.call(1, "POST", path, binary_body([(None, "once")]), query=q, headers=binary)
    check_ok(st, first, "binary dedupe 1")
    st, again = c.call(2, "POST", path, binary_body([(None, "once")]), query=q, headers=binary)
    check(check_ok(st, again, "binary dedupe 2")["offsets"] == first["offsets"],
          "a binary retry appended again: %r %r" % (first, again))
    for query, status, what in (({}, 400, "no partition_id"),
                                ({"partition_id": "x"}, 400, "partition_id not a number"),
                                ({"partition_id": 2}, 404, "unknown partition"),
                                ({"partition_id": 0, "sequence": 1}, 400, "sequence alone"),
                                ({"partition_id": 0, "producer_id": 999999, "sequence": 1}, 404,
                                 "unknown producer")):
        check_failure(*c.call(3, "POST", path, binary_body([(None, "x")]), query=query,
                              headers=binary), status, "binary: " + what)
    # What the broker refuses comes back as it said it.
    check_failure(*c.call(1, "POST", path, binary_body([(None, "x")], count=2),
                          query={"partition_id": 0}, headers=binary), 400, "binary: short body")
    check_failure(*c.call(1, "POST", path, binary_body([(None, b"\xff")]),
                          query={"partition_id": 0}, headers=binary), 400, "binary: not UTF-8")

    # Reads in the binary form (shared/rq_reads.h), asked for with Accept:
    # the records, next_offset and high_watermark of the JSON answer
    # through every manager, values JSON must escape included; failures
    # stay JSON.
    from test_broker import AWKWARD, decode_read, read_both, read_raw
    st, obj = c.call(2, "POST", path, binary_body(AWKWARD), query={"partition_id": 0},
                     headers=binary)
    check(check_ok(st, obj, "awkward batch")["offsets"][0] == {"partition_id": 0, "offset": 1},
          "offsets %r" % obj)
    rpath = "/v1/topics/bin/partitions/0/records"
    end = 1 + len(AWKWARD)
    for i in (1, 2, 3):
        got = read_both(c.m_http[i], rpath + "?offset=0", signed=False)
        check([(r["key"], r["value"]) for r in got["records"]] == [(None, "once")] + AWKWARD
              and got["next_offset"] == end and got["high_watermark"] == end,
              "manager%d read %r" % (i, got))
        for q in ("?offset=2&max=3", "?offset=%d" % end, "?offset=%d&max=4" % (end + 9)):
            read_both(c.m_http[i], rpath + q, signed=False)
    st, raw, hdr = read_raw(c.m_http[1], rpath + "?offset=0&max=1",
                            accept="text/html;q=0.2, application/vnd.raftq.records;q=1",
                            signed=False)
    check(st == 200 and hdr.get("Content-Type") == BINARY
          and len(decode_read(raw)["records"]) == 1, "a list of types: %d %r" % (st, hdr))
    st, raw, hdr = read_raw(c.m_http[1], rpath + "?offset=0&max=1", accept="text/html",
                            signed=False)
    check(st == 200 and json.loads(raw.decode("utf-8"))["records"][0]["value"] == "once",
          "another type gets JSON: %d %r" % (st, raw))
    result = {}
    t = threading.Thread(target=lambda: result.update(
        woken=read_raw(c.m_http[2], rpath + "?offset=%d&wait_ms=8000" % end, signed=False)))
    t.start()
    check_ok(*c.call(3, "POST", path, binary_body([("k", "late")]), query={"partition_id": 0},
                     headers=binary), "late batch")
    t.join(15)
    st, raw, hdr = result["woken"]
    got = decode_read(raw)
    check(st == 200 and [(r["offset"], r["key"], r["value"]) for r in got["records"]]
          == [(end, "k", "late")] and got["next_offset"] == end + 1,
          "binary long poll: %d %r" % (st, got))
    for q, status, what in (("/v1/topics/bin/partitions/0/records?max=0", 400, "max 0"),
                            ("/v1/topics/bin/partitions/0/records?offset=x", 400, "offset x"),
                            ("/v1/topics/bin/partitions/5/records", 404, "partition 5"),
                            ("/v1/topics/nope/partitions/0/records", 404, "unknown topic")):
        st, raw, hdr = read_raw(c.m_http[3], q, signed=False)
        check_failure(st, json.loads(raw.decode("utf-8")), status, "binary read: " + what)


def test_admin_liveness(ctx):
    """Section 3 with an admin token; brokers go SUSPECT and come back; a
    deleted topic's replicas leave the brokers; too few brokers is 503."""
    c = Cluster(ctx, manager_args=["--broker-suspect-ms", "1500", "--broker-dead-ms", "4000",
                                   "--default-partitions", "2"],
                admin_token="tok")
    c.start(wait=False)
    auth = {"Authorization": "Bearer tok"}
    for i in c.managers:
        wait_until(lambda i=i: c.ready(i), 40, "manager%d ready" % i)
    check_failure(*c.call(1, "GET", "/admin/brokers", headers={}), 401, "no token")
    check_failure(*c.call(2, "GET", "/admin/managers", headers={"Authorization": "Bearer x"}), 401,
                  "wrong token")
    def all_alive():
        st, obj = c.call(1, "GET", "/admin/brokers", headers=auth)
        bs = check_ok(st, obj, "brokers")["brokers"]
        return len(bs) == 4 and all(b["state"] == "alive" for b in bs)
    wait_until(all_alive, 40, "four ALIVE brokers")
    # --default-partitions: a topic created without a count, or by a
    # producer's registration, has that many partitions.
    c.create_topic(1, "twofold", None)
    check(len(c.partitions(2, "twofold")) == 2, "twofold: %r" % c.partitions(2, "twofold"))
    st, obj = c.call(2, "POST", "/producer/register", {"topic": "onthefly", "partition_id": 2})
    check_failure(st, obj, 404, "partition 2 of a topic that would have 2")
    c.register(3, "producer", "onthefly")
    check(len(c.partitions(1, "onthefly")) == 2, "onthefly: %r" % c.partitions(1, "onthefly"))
    for name in ("twofold", "onthefly"):  # Every broker ends with no replica.
        check_ok(*c.call(1, "DELETE", "/admin/topics/" + name, headers=auth), "delete " + name)
    st, obj = c.call(3, "GET", "/admin/managers", headers=auth)
    check_ok(st, obj, "managers")
    check(obj["leader"] in c.managers and obj["term"] >= 1 and len(obj["managers"]) == 3,
          "managers %r" % obj)
    lead = obj["leader"]
    check([m["role"] for m in obj["managers"]].count("leader") == 1, "roles %r" % obj)
    check(all(m["http_addr"] == c.m_http[m["id"]] for m in obj["managers"] if m["http_addr"]),
          "addresses %r" % obj)
    c.create_topic(1, "adm", 3)
    c.wait_topic_led("adm")
    st, obj = c.call(2, "GET", "/admin/topics/adm", headers=auth)
    parts = check_ok(st, obj, "describe")["partitions"]
    check(len(parts) == 3 and all(p["leader"] in p["replicas"] and "commit" in p for p in parts),
          "describe %r" % parts)
    # Move a partition's leadership to a broker that is not its preferred
    # leader: the move makes it the preferred leader (replicas[0]) on the
    # managers and on every replica, so it sticks. An election under way
    # is 503: retry.
    c.wait_preferred_lead("adm")
    p0 = parts[0]
    target = p0["replicas"][1]
    old_order = p0["replicas"]

    def moved():
        st, obj = c.call(3, "POST", "/admin/partitions/adm/0/leader", {"broker_id": target},
                         headers=auth)
        if st == 503:
            return False
        return check_ok(st, obj, "move leadership")
    wait_until(moved, 20, "leadership of partition 0 to move to broker %d" % target,
               interval=0.3)
    st, obj = c.call(1, "GET", "/admin/topics/adm", headers=auth)
    p0 = check_ok(st, obj, "describe after the move")["partitions"][0]
    check(p0["preferred_leader"] == target and p0["replicas"][0] == target
          and sorted(p0["replicas"]) == sorted(old_order) and p0["epoch"] >= 1,
          "after the move: %r (before: %r)" % (p0, old_order))
    wait_until(lambda: all(c.broker_replica(b, p0["group_id"]).get("preferred_leader") == target
                           for b in p0["replicas"]), 10,
               "every replica to prefer broker %d" % target)
    # It sticks: the brokers balance leadership every 3 s; watch for more
    # than two rounds.
    deadline = time.monotonic() + 7
    while time.monotonic() < deadline:
        lead = c.group_leader(p0["group_id"], p0["replicas"])
        check(lead in (target, None), "leadership went back to broker %r" % lead)
        time.sleep(0.3)
    check(c.group_leader(p0["group_id"], p0["replicas"]) == target, "broker %d lost the lead" % target)
    # Moving it to where it is answers at once.
    check_ok(*c.call(2, "POST", "/admin/partitions/adm/0/leader", {"broker_id": target},
                     headers=auth), "move to the leader")
    outsider = next(b for b in c.brokers if b not in p0["replicas"])
    check_failure(*c.call(1, "POST", "/admin/partitions/adm/0/leader", {"broker_id": outsider},
                          headers=auth), 400, "move to a broker without a replica")
    # Liveness: a stopped broker goes SUSPECT, then DEAD, then back.
    victim = 4
    c.brokers[victim].kill()
    wait_until(lambda: c.broker_states().get(victim, {}).get("state") == "suspect", 15,
               "broker %d SUSPECT" % victim)
    wait_until(lambda: c.broker_states().get(victim, {}).get("state") == "dead", 15,
               "broker %d DEAD" % victim)
    c.brokers[3].kill()
    wait_until(lambda: c.broker_states().get(3, {}).get("state") in ("suspect", "dead"), 15,
               "broker 3 SUSPECT")
    obj = check_failure(*c.call(2, "POST", "/topics", {"topic_name": "few"}), 503, "two live brokers")
    check("live" in obj["message"], "503 message %r" % obj["message"])
    c.brokers[victim].start()
    c.brokers[3].start()
    wait_until(lambda: c.alive_brokers() == set(c.brokers), 40, "every broker ALIVE again")
    # Deleting a topic removes its replicas from every broker.
    st, obj = c.call(3, "DELETE", "/admin/topics/adm", headers=auth)
    check_ok(st, obj, "delete")
    check_failure(*c.call(1, "GET", "/topics/partitions", query={"topic": "adm"}), 404, "deleted")
    check_failure(*c.call(1, "DELETE", "/admin/topics/adm", headers=auth), 404, "deleted twice")

    def gone():
        for i in c.brokers:
            st, obj, _ = call(c.b_http[i], "GET", "/internal/replicas", timeout=5,
                                  sign=rqkeys.HTTP_M2B)
            if st != 200 or obj["replicas"]:
                return False
        return True
    wait_until(gone, 30, "the brokers to drop the deleted topic's replicas")
    st, obj, _ = call(c.m_http[lead], "GET", "/metrics")
    check(st == 200, "metrics %d" % st)
    st, obj, _ = call(c.m_http[1], "POST", "/internal/brokers/1/heartbeat", {"replicas": []})
    check_failure(st, obj, 401, "heartbeat without a signature")
    check("signature" in obj["message"], "401 says what is missing: %r" % obj)


class Traffic:
    """Producer and consumer threads through the given managers; records
    what was acknowledged and what was delivered."""

    def __init__(self, c, topic, producer, consumer, managers):
        self.c = c
        self.topic = topic
        self.producer = producer
        self.consumer = consumer
        self.managers = list(managers)
        self.stop = threading.Event()
        self.acked = {}        # message -> (partition, offset)
        self.attempted = set()
        self.delivered = []    # (message, partition, offset)
        self.consumes = []     # Completions in order, as checker.tie_skips takes them.
        self.uncertain_consumes = 0
        self.errors = []
        self.lock = threading.Lock()
        self.seq = 0

    def _produce(self):
        k = 0
        while not self.stop.is_set():
            i = self.managers[k % len(self.managers)]
            k += 1
            with self.lock:
                self.seq += 1
                msg = "msg-%06d" % self.seq
                self.attempted.add(msg)
            try:
                st, obj = self.c.call(i, "POST", "/producer/produce",
                                      {"topic": self.topic, "producer_id": self.producer,
                                       "message": msg}, timeout=10)
            except Unreachable:
                continue
            if st == 200:
                with self.lock:
                    self.acked[msg] = (obj["partition_id"], obj["offset"])
            elif st != 503:
                self.errors.append("produce: %d %r" % (st, obj))
            time.sleep(0.005)

    def _consume(self):
        k = 0
        while not self.stop.is_set():
            i = self.managers[k % len(self.managers)]
            k += 1
            try:
                st, obj = self.c.call(i, "GET", "/consumer/consume",
                                      query={"topic": self.topic, "consumer_id": self.consumer},
                                      timeout=10)
            except Unreachable:
                st, obj = None, None
            if st is not None and st != 503 and st not in (200, 404):
                self.errors.append("consume: %d %r" % (st, obj))
            with self.lock:
                kind = record_consume(self.consumes, st, obj)
                if kind == "ok":
                    self.delivered.append((obj["message"], obj["partition_id"], obj["offset"]))
                elif kind == "info":
                    self.uncertain_consumes += 1
            if st == 503:
                time.sleep(0.05)
            elif st == 404:
                time.sleep(0.02)

    def start(self):
        self.threads = [threading.Thread(target=self._produce, daemon=True),
                        threading.Thread(target=self._consume, daemon=True)]
        for t in self.threads:
            t.start()

    def finish(self):
        self.stop.set()
        for t in self.threads:
            t.join(30)


def record_consume(events, st, obj):
    """Appends the completion of a consume answered @st with @obj (@st None:
    no answer) to @events, as checker.tie_skips takes them, unless it found
    nothing new; returns its type ("ok", "info", "fail") or "empty"."""
    skipped = obj.get("skipped") if isinstance(obj, dict) else None
    if st == 404 and isinstance(obj, dict) and "no new messages" in obj.get("message", ""):
        return "empty"
    if st == 200:
        events.append({"type": "ok", "partition": obj["partition_id"], "offset": obj["offset"],
                       "skipped": skipped})
        return "ok"
    kind = "info" if st is None else checker.consume_outcome(st, obj)
    events.append({"type": kind, "status": st, "skipped": skipped,
                   "message": obj.get("message") if isinstance(obj, dict) else None})
    return kind


def drain(c, i, topic, consumer, into, timeout=30.0, events=None):
    """Consumes at manager @i until no new messages are left; records every
    answer in @events (record_consume) if given."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        st, obj = c.call(i, "GET", "/consumer/consume", query={"topic": topic, "consumer_id": consumer})
        if events is not None:
            record_consume(events, st, obj)
        if st == 404:
            return
        if st == 200:
            into.append((obj["message"], obj["partition_id"], obj["offset"]))
        else:
            time.sleep(0.1)
    raise TestFailure("draining %s did not end" % topic)


def check_delivery(t, extra):
    """No acked message lost unless a consume with an unknown outcome,
    made while it was its partition's next, may have taken it
    (checker.tie_skips: each such consume explains at most one, and answers
    that say the offset did not move explain none), none delivered twice,
    every delivery a message that was produced. @extra, the deliveries of
    drain(), are in t.consumes too."""
    delivered = t.delivered + extra
    msgs = [d[0] for d in delivered]
    dup = {m for m in msgs if msgs.count(m) > 1}
    check(not dup, "delivered twice: %s" % sorted(dup)[:5])
    places = [(d[1], d[2]) for d in delivered]
    check(len(set(places)) == len(places), "an offset was delivered twice")
    unknown = set(msgs) - t.attempted
    check(not unknown, "delivered what nobody produced: %s" % sorted(unknown)[:5])
    missing = set(t.acked) - set(msgs)
    present = collections.defaultdict(set)
    for p, o in t.acked.values():
        present[p].add(o)
    unexplained, _ = checker.tie_skips(t.consumes, present)
    at = {po: m for m, po in t.acked.items()}
    seen = ""
    if unexplained:
        # What the consumer saw of the first one's partition, in order.
        p = unexplained[0][0]
        seen = " ".join("%d" % e["offset"] if e["type"] == "ok" else
                        "%s:%s" % (e["type"], e["status"])
                        for e in t.consumes if e["type"] != "ok" or e["partition"] == p)
        seen += "; failures: %s" % sorted({e["message"] for e in t.consumes
                                            if e["type"] != "ok"})
    check(not unexplained,
          "%d acknowledged messages never delivered, and no consume with an unknown outcome "
          "was made while each was its partition's next (%d unknown consumes in all): %s; "
          "the consumer's answers (offsets of that partition, other failures): %s"
          % (len(unexplained), t.uncertain_consumes,
             ["%s at %d/%d" % (at[po], po[0], po[1]) for po in unexplained[:5]], seen))
    for m, d in zip(msgs, delivered):
        if m in t.acked:
            check(t.acked[m] == (d[1], d[2]), "%s acked at %r, delivered at %r"
                  % (m, t.acked[m], (d[1], d[2])))
    return missing


def test_leader_killed_under_load(ctx):
    """SIGKILL the manager leader while produces and consumes go through
    the other two: nothing acked is lost, nothing delivered twice."""
    c = Cluster(ctx).start()
    lead = c.wait_leader()
    others = [i for i in c.managers if i != lead]
    c.create_topic(others[0], "stream", 3)
    c.wait_topic_led("stream")
    prod = c.register(others[1], "producer", "stream")
    cons = c.register(others[0], "consumer", "stream")
    t = Traffic(c, "stream", prod, cons, others)
    t.start()
    wait_until(lambda: len(t.acked) >= 30 and len(t.delivered) >= 10, 30, "traffic to flow")
    c.managers[lead].kill()
    before = (len(t.acked), len(t.delivered))
    new = c.wait_leader(exclude=(lead,), timeout=30)
    check(new != lead, "the killed manager still leads")
    wait_until(lambda: len(t.acked) >= before[0] + 30 and len(t.delivered) >= before[1] + 10,
               40, "traffic to flow again after the leader died")
    t.finish()
    check(not t.errors, "errors: %s" % t.errors[:5])
    extra = []
    drain(c, others[1], "stream", cons, extra, events=t.consumes)
    missing = check_delivery(t, extra)
    c.managers[others[0]]._note(
        "traffic: %d produces acked of %d, %d delivered during and %d after, %d consumes "
        "uncertain, %d acked never delivered" % (len(t.acked), len(t.attempted),
                                                 len(t.delivered), len(extra),
                                                 t.uncertain_consumes, len(missing)))
    # The dead manager comes back, catches up and serves the same state.
    c.managers[lead].start()
    wait_until(lambda: c.ready(lead), 30, "manager%d ready again" % lead)
    check(c.size(lead, "stream", cons) == 0, "the returning manager sees messages left")
    st, obj = c.call(lead, "GET", "/topics")
    check(check_ok(st, obj, "topics")["topics"] == ["stream"], "topics %r" % obj)


def produce_calls(c, i):
    """raftq_manager_produce_calls_total of manager @i."""
    from test_metrics import scrape, value  # It imports this module.
    return value(scrape(c.m_http[i]), "raftq_manager_produce_calls_total")


def read_partition(c, i, topic, p):
    """Every record of partition @p of @topic, as {offset: value}."""
    got, offset = {}, 0
    while True:
        st, obj = c.call(i, "GET", "/v1/topics/%s/partitions/%d/records" % (topic, p),
                         query={"offset": offset, "max": 1000})
        check_ok(st, obj, "read %s/%d from %d" % (topic, p, offset))
        for r in obj["records"]:
            check(r["offset"] not in got, "offset %d twice" % r["offset"])
            got[r["offset"]] = r["value"]
        if not obj["records"]:
            return got
        offset = obj["next_offset"]


def check_produced(got, acked, sent):
    """Every acknowledged message (@acked: {message: offset}) is at its
    offset in @got ({offset: value}), and no message of @sent is there
    twice."""
    for msg, off in acked.items():
        check(got.get(off) == msg, "acked %r at offset %d, found %r" % (msg, off, got.get(off)))
    values = [v for v in got.values() if v in sent]
    check(len(values) == len(set(values)), "a message appears twice")


def held_behind_one(c, i, first, rest):
    """With every broker stopped, runs @first (a function sending one
    request to manager @i) in a thread until manager @i holds it, then each
    of @rest likewise until it holds them all, resumes the brokers and
    waits for every thread: requests that queue behind one in flight."""
    brokers = [b for b in c.brokers.values() if b.running()]
    for b in brokers:
        b.pause()
    threads = []
    try:
        wait_until(lambda: waiting_requests(c, i) == 0, 10, "manager%d to hold nothing" % i,
                   interval=0.02)
        for k, f in enumerate([first] + list(rest)):
            threads.append(threading.Thread(target=f))
            threads[-1].start()
            if k == 0:
                wait_until(lambda: waiting_requests(c, i) == 1, 10,
                           "the first request to be held", interval=0.02)
        n = len(threads)
        wait_until(lambda: waiting_requests(c, i) == n, 10, "%d requests to be held" % n,
                   interval=0.02)
    finally:
        for b in brokers:
            b.resume()
    for t in threads:
        t.join()


def test_merged_produces(ctx):
    """Single-record produces to one partition that reach a manager while
    its call to the partition is out go together in its next call (one
    broker request, one Raft entry), each answered with its own offset.
    With every broker stopped, one produce goes out and 24 more from 24
    clients are held behind it; resumed, the manager makes exactly one
    more call for the 24, and the partition holds each acknowledged
    message at the offset its answer named, once. Then 12 clients produce
    through all three managers while the partition's leader broker is
    killed: every acknowledged message is read back at its offset, and
    none twice (a call retried on the new leader carries the same
    deduplication pair)."""
    c = Cluster(ctx).start()
    c.create_topic(1, "merge", 1)
    c.wait_topic_led("merge")
    prod = c.register(1, "producer", "merge")
    c.produce(1, "merge", prod, "warm-up")
    calls = produce_calls(c, 1)
    acked, errors, lock = {}, [], threading.Lock()

    def produce(i, msg):
        try:
            st, obj = c.call(i, "POST", "/producer/produce",
                             {"topic": "merge", "producer_id": prod, "message": msg}, timeout=30)
        except Unreachable as e:
            st, obj = 0, {"message": str(e)}
        with lock:
            if st == 200:
                acked[msg] = obj["offset"]
            else:
                errors.append((msg, st, obj))

    held_behind_one(c, 1, lambda: produce(1, "first"),
                    [lambda n=n: produce(1, "held-%d" % n) for n in range(24)])
    check(not errors, "errors: %r" % errors[:3])
    check(produce_calls(c, 1) - calls == 2,
          "%d calls for 25 produces, not 2" % (produce_calls(c, 1) - calls))
    held = sorted(acked[m] for m in acked if m.startswith("held-"))
    check(held == list(range(acked["first"] + 1, acked["first"] + 25)),
          "the held produces got offsets %r after %d" % (held, acked["first"]))
    check_produced(read_partition(c, 2, "merge", 0), acked, set(acked))

    # Many clients through every manager; the leader broker dies midway.
    sent, stop = set(), threading.Event()

    def client(k):
        n = 0
        while not stop.is_set():
            msg = "c%d-%d" % (k, n)
            with lock:
                sent.add(msg)
            produce(1 + k % 3, msg)
            n += 1

    errors.clear()
    workers = [threading.Thread(target=client, args=(k,)) for k in range(12)]
    for t in workers:
        t.start()
    wait_until(lambda: len(acked) >= 25 + 300, 60, "300 more produces acknowledged")
    leader = c.partitions(1, "merge")[0]["leader"]
    c.brokers[leader].kill()
    count = len(acked)
    wait_until(lambda: len(acked) >= count + 300, 60,
               "300 more produces acknowledged after broker %d died" % leader)
    stop.set()
    for t in workers:
        t.join()
    check(all(st >= 500 or st == 0 for _, st, _ in errors), "4xx: %r" % errors[:3])
    check_produced(read_partition(c, 2, "merge", 0), acked, sent)
    c.managers[1]._note("merged produces: %d acknowledged, %d failed, %d calls of manager1"
                        % (len(acked), len(errors), produce_calls(c, 1) - calls))


def bytes_waiting(port):
    """Connections to local TCP @port with bytes not yet read
    (/proc/net/tcp rx_queue)."""
    n = 0
    with open("/proc/net/tcp") as f:
        for line in f.readlines()[1:]:
            fields = line.split()
            if int(fields[1].split(":")[1], 16) == port and \
                    int(fields[4].split(":")[1], 16) > 0:
                n += 1
    return n


def burst_at_leader(c, lead, requests):
    """Sends every (method, path, body) of @requests at once to manager
    @lead while it is paused (SIGSTOP, for as long as the requests take to
    reach its sockets, well under the election timeout), so that they are
    read in one turn of its loop once it resumes; returns [(status, body)]
    in the order of @requests."""
    answers = [None] * len(requests)

    def send(k):
        method, path, body = requests[k]
        try:
            answers[k] = c.call(lead, method, path, body, timeout=30)
        except Unreachable as e:
            answers[k] = (0, {"message": str(e)})
    threads = [threading.Thread(target=send, args=(k,)) for k in range(len(requests))]
    c.managers[lead].pause()
    try:
        for t in threads:
            t.start()
        port = int(c.m_http[lead].rsplit(":", 1)[1])
        wait_until(lambda: bytes_waiting(port) >= len(requests), 5,
                   "the requests to reach the paused leader", interval=0.005)
    finally:
        c.managers[lead].resume()
    for t in threads:
        t.join()
    return answers


def test_metadata_writes_batched(ctx):
    """Metadata writes that reach the leader in one turn of its loop are
    proposed as one Raft entry (manager/mbatch.h), each still answered
    with its own result: 30 consumer registrations get 30 different ids,
    30 offset commits each leave their own consumer's offset, and of 8
    creates of one topic exactly one succeeds (the others are refused
    inside the same entries, alone). The leader counts batch entries
    (raftq_manager_proposal_batches_total); every manager applies them to
    the same state (digests agree)."""
    c = Cluster(ctx, n_brokers=3).start()
    lead = c.wait_leader()
    c.create_topic(lead, "batched", 2)
    from test_metrics import scrape, value  # It imports this module.

    def batches():
        return value(scrape(c.m_http[lead]), "raftq_manager_proposal_batches_total")

    def batched():
        return value(scrape(c.m_http[lead]), "raftq_manager_batched_proposals_total")
    before, before_n = batches(), batched()
    ids = []
    # A burst is read in one turn all but always; a machine busy enough
    # to split every burst in three tries would fail the last check.
    for attempt in range(3):
        got = burst_at_leader(c, lead, [("POST", "/consumer/register", {"topic": "batched"})] * 30)
        for st, obj in got:
            ids.append(check_ok(st, obj, "register a consumer")["consumer_id"])
        commits = [("POST", "/v1/consumers/%d/offsets" % cid,
                    {"offsets": [{"partition_id": k % 2, "offset": 1000 + cid}]})
                   for k, cid in enumerate(ids[-30:])]
        for st, obj in burst_at_leader(c, lead, commits):
            check_ok(st, obj, "commit an offset")
        creates = burst_at_leader(c, lead, [("POST", "/topics",
                                             {"topic_name": "once%d" % attempt})] * 8)
        codes = sorted(st for st, _ in creates)
        check(codes == [200] + [409] * 7, "creates of one topic answered %r" % codes)
        if batches() > before:
            break
    check(len(set(ids)) == len(ids), "consumer ids %r" % ids)
    check(batches() > before, "no batch entry in three bursts")
    check(batched() - before_n >= 2 * (batches() - before),
          "%d commands in %d batches" % (batched() - before_n, batches() - before))
    for k, cid in enumerate(ids):
        st, obj = c.call(1 + k % 3, "GET", "/v1/consumers/%d/offsets" % cid)
        offs = {o["partition_id"]: o["offset"] for o in check_ok(st, obj, "offsets")["offsets"]}
        want = {0: 0, 1: 0}
        want[(k % 30) % 2] = 1000 + cid
        check(offs == want, "consumer %d offsets %r, want %r" % (cid, offs, want))

    wait_until(lambda: digests_agree(c), 10, "every manager's state digest to agree")


def test_consumes_ride_together(ctx):
    """Consumes of one consumer that wait behind the running one for the
    same partition ride with it: one read of as many records, one offset
    advance past all of them, each consume answered with its own message
    once the advance is applied. With every broker stopped, one consume
    is held and 19 more queue behind it; resumed, the first one's read
    (which asked for a batch ahead, readahead.h) brings the 19 their
    records too and all share one advance: one advance for 20 messages,
    offsets 0 to 19 each delivered once, and the consumer's offset is 20.
    The next consume takes its record from what that read brought: one
    broker read for 21 consumes (raftq_manager_consume_reads_total)."""
    c = Cluster(ctx).start()
    lead = c.wait_leader()
    c.create_topic(lead, "ride", 1)
    c.wait_topic_led("ride")
    prod = c.register(lead, "producer", "ride")
    cons = c.register(lead, "consumer", "ride")
    for n in range(25):
        c.produce(lead, "ride", prod, "m%d" % n)
    from test_metrics import scrape, value  # It imports this module.

    def advances():
        return value(scrape(c.m_http[lead]), "raftq_manager_consume_advances_total")

    def reads():
        return value(scrape(c.m_http[lead]), "raftq_manager_consume_reads_total")
    got, errors, lock = [], [], threading.Lock()

    def consume():
        try:
            st, obj = c.call(lead, "GET", "/consumer/consume",
                             query={"topic": "ride", "consumer_id": cons}, timeout=30)
        except Unreachable as e:
            st, obj = 0, {"message": str(e)}
        with lock:
            (got if st == 200 else errors).append(obj if st == 200 else (st, obj))

    before, reads_before = advances(), reads()
    held_behind_one(c, lead, consume, [consume] * 19)
    check(not errors, "errors: %r" % errors[:3])
    check(sorted(g["offset"] for g in got) == list(range(20)), "offsets %r" % got)
    check(all(g["message"] == "m%d" % g["offset"] for g in got), "messages %r" % got)
    check(advances() - before == 1, "%d advances for 20 consumes, not 1" % (advances() - before))
    st, obj = c.call(lead, "GET", "/v1/consumers/%d/offsets" % cons)
    check(check_ok(st, obj, "offsets")["offsets"][0]["offset"] == 20, "offsets %r" % obj)
    # And one at a time, a consume still gets the next message, from what
    # the first read brought: one broker read for 21 consumes.
    check(c.consume(lead, "ride", cons)[0] == "m20", "the next consume")
    check(reads() - reads_before == 1, "%d broker reads for 21 consumes, not 1"
          % (reads() - reads_before))


def test_consumes_in_a_pipeline(ctx):
    """Eight clients consume for one consumer at once, through every
    manager, while the advances of one consume are still committing the
    next ones start (a pipeline of advances, each checking against the one
    before it): 300 messages, every offset delivered exactly once with its
    message, and the consumer's offset ends at 300. Then, with the
    pipeline full, an offset commit moves the offset under it: the
    consumes whose checks fail read the store again, and still no offset
    is delivered twice."""
    c = Cluster(ctx).start()
    lead = c.wait_leader()
    c.create_topic(lead, "pipe", 1)
    c.wait_topic_led("pipe")
    prod = c.register(lead, "producer", "pipe")
    cons = c.register(lead, "consumer", "pipe")
    recs = [{"value": "m%d" % n} for n in range(300)]
    check_ok(*c.call(lead, "POST", "/v1/topics/pipe/records", {"records": recs}), "fill")
    got, errors, lock = [], [], threading.Lock()

    def client(k):
        while True:
            try:
                st, obj = c.call(1 + k % 3, "GET", "/consumer/consume",
                                 query={"topic": "pipe", "consumer_id": cons}, timeout=30)
            except Unreachable as e:
                st, obj = 0, {"message": str(e)}
            with lock:
                if st == 404:
                    return
                if st != 200:
                    errors.append((st, obj))
                    return
                got.append((obj["offset"], obj["message"]))

    threads = [threading.Thread(target=client, args=(k,)) for k in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    check(not errors, "errors: %r" % errors[:3])
    check(sorted(o for o, _ in got) == list(range(300)), "offsets delivered: %d, %r"
          % (len(got), sorted(o for o, _ in got)[:20]))
    check(all(m == "m%d" % o for o, m in got), "a message at the wrong offset")
    st, obj = c.call(lead, "GET", "/v1/consumers/%d/offsets" % cons)
    check(check_ok(st, obj, "offsets")["offsets"][0]["offset"] == 300, "offsets %r" % obj)

    # An offset commit under a full pipeline: no offset twice.
    check_ok(*c.call(lead, "POST", "/v1/topics/pipe/records", {"records": recs}), "fill again")
    got.clear()
    threads = [threading.Thread(target=client, args=(k,)) for k in range(8)]
    for t in threads:
        t.start()
    wait_until(lambda: len(got) >= 50, 30, "50 more consumed")
    check_ok(*c.call(lead, "POST", "/v1/consumers/%d/offsets" % cons,
                     {"offsets": [{"partition_id": 0, "offset": 500}]}), "commit under load")
    for t in threads:
        t.join()
    check(not errors, "errors: %r" % errors[:3])
    offs = [o for o, _ in got]
    check(len(offs) == len(set(offs)), "an offset delivered twice: %r" % sorted(offs))
    check(all(m == "m%d" % (o - 300) for o, m in got), "a message at the wrong offset")
    check(all(o < 500 for o in offs[:50]) and max(offs) == 599,
          "after the commit to 500 the consumes went on to the end: %r" % sorted(offs)[-5:])


def consume_clients(c, via, topic, consumer, n, stop=None, timeout=30):
    """@n client threads consuming for @consumer at once, client k through
    manager via[k % len(via)], each one request at a time until a 404 (or
    @stop is set). Returns (threads, answers): answers[k] lists client k's
    answers in order, (status, body), status None when none came."""
    answers = [[] for _ in range(n)]

    def client(k):
        while stop is None or not stop.is_set():
            try:
                st, obj = c.call(via[k % len(via)], "GET", "/consumer/consume",
                                 query={"topic": topic, "consumer_id": consumer},
                                 timeout=timeout)
            except Unreachable as e:
                st, obj = None, {"message": str(e)}
            answers[k].append((st, obj))
            if st == 404 and stop is None:
                return
            if st != 200:
                time.sleep(0.02)  # Not a race: a pause before retrying.

    threads = [threading.Thread(target=client, args=(k,), daemon=True) for k in range(n)]
    for t in threads:
        t.start()
    return threads, answers


def check_client_answers(answers):
    """Every answer is one API.md section 1 allows (200; 404 "no new
    messages"; 503 saying whether the offset may have moved; none), no
    offset is delivered twice, and each client's offsets increase. Returns
    ({offset: message} delivered, how many answers say the offset may have
    moved: a 503 with "offset_advanced" "unknown", or none at all)."""
    got, uncertain = {}, 0
    for k, mine in enumerate(answers):
        last = -1
        for st, obj in mine:
            if st == 200:
                o = obj["offset"]
                check(o not in got, "offset %d delivered twice" % o)
                check(o > last, "client %d got offset %d after %d" % (k, o, last))
                got[o], last = obj["message"], o
            elif st is None:
                uncertain += 1
            elif st == 503:
                said = obj.get("offset_advanced") if isinstance(obj, dict) else None
                check(said in ("no", "unknown"), "a 503 saying %r: %r" % (said, obj))
                uncertain += said == "unknown"
            else:
                check(st == 404 and "no new messages" in obj.get("message", ""),
                      "client %d: %r %r" % (k, st, obj))
    return got, uncertain


def filled_for_a_consumer(ctx, topic, n):
    """A cluster with @topic of one partition holding messages "m0".. up
    to @n - 1 and a consumer registered for it; returns (cluster, leader,
    the other managers, consumer id)."""
    c = Cluster(ctx).start()
    lead = c.wait_leader()
    others = [i for i in c.managers if i != lead]
    c.create_topic(others[0], topic, 1)
    c.wait_topic_led(topic)
    cons = c.register(others[0], "consumer", topic)
    recs = [{"value": "m%d" % k} for k in range(n)]
    check_ok(*c.call(others[0], "POST", "/v1/topics/%s/records" % topic, {"records": recs}),
             "fill")
    return c, lead, others, cons


def test_forwarded_consumes_keep_connections(ctx):
    """Followers forward consumes to the leader on kept connections: eight
    clients consume 400 messages for one consumer through the two
    followers, every offset delivered exactly once with its message, each
    client's in order, and the leader holds about one connection per
    request in flight from each follower, not one per consume (libcurl
    keeps up to 64 a follower, which fresh connections fill)."""
    c, lead, others, cons = filled_for_a_consumer(ctx, "kept", 400)
    from test_metrics import scrape, value  # It imports this module.
    before = value(scrape(c.m_http[lead]), "raftq_http_connections")
    threads, answers = consume_clients(c, others, "kept", cons, 8)
    for t in threads:
        t.join(120)
    got, uncertain = check_client_answers(answers)
    check(sorted(got) == list(range(400)), "offsets delivered: %d" % len(got))
    check(uncertain == 0, "%d uncertain answers in a healthy cluster" % uncertain)
    check(all(m == "m%d" % o for o, m in got.items()), "a message at the wrong offset")
    after = value(scrape(c.m_http[lead]), "raftq_http_connections")
    check(after - before <= 2 * 8 + 4,
          "the leader holds %d connections, %d before: forwards on new connections"
          % (after, before))


def test_forwarded_consumes_leader_killed(ctx):
    """SIGKILL the leader manager while eight clients consume for one
    consumer through the two followers, which forward on kept connections:
    every answer is one the API allows, no offset is delivered twice, each
    client's offsets increase, and every offset never delivered is matched
    by an answer that says the offset may have moved (or none at all)."""
    n = 3000
    c, lead, others, cons = filled_for_a_consumer(ctx, "killed", n)
    stop = threading.Event()
    threads, answers = consume_clients(c, others, "killed", cons, 8, stop=stop, timeout=10)

    def delivered():
        return sum(1 for mine in answers for st, _ in list(mine) if st == 200)
    wait_until(lambda: delivered() >= 200, 60, "200 consumed")
    c.managers[lead].kill()
    at_kill = delivered()
    c.wait_leader(exclude=(lead,), timeout=30)
    wait_until(lambda: delivered() >= at_kill + 200, 60,
               "200 more consumed after the leader died")
    stop.set()
    for t in threads:
        t.join(30)
    got, uncertain = check_client_answers(answers)
    check(all(m == "m%d" % o for o, m in got.items()), "a message at the wrong offset")
    rest, events = [], []
    drain(c, others[1], "killed", cons, rest, events=events)
    uncertain += sum(1 for e in events if e["type"] == "info")
    for m, p, o in rest:
        check(o not in got, "offset %d delivered twice (in the drain)" % o)
        got[o] = m
    missing = n - len(got)
    check(missing <= uncertain,
          "%d offsets never delivered, %d answers say the offset may have moved"
          % (missing, uncertain))
    c.managers[others[0]]._note("%d delivered, %d lost, %d uncertain answers"
                                % (len(got), missing, uncertain))


def waiting_requests(c, i):
    """raftq_http_waiting_requests of manager @i: requests held for a late
    answer."""
    from test_metrics import scrape, value  # It imports this module.
    return value(scrape(c.m_http[i]), "raftq_http_waiting_requests")


def consume_and_leave(c, via, topic, consumer, holders):
    """Sends GET /consumer/consume to manager @via with every broker
    stopped, waits until every manager in @holders holds it (the leader
    waits for the broker's answer, a follower for the leader's), closes the
    connection, waits until every holder has seen the client leave, and
    resumes the brokers: the leader's read then completes for a client that
    has gone."""
    brokers = [b for b in c.brokers.values() if b.running()]
    for b in brokers:
        b.pause()
    try:
        # With the brokers stopped nothing else is held for long (their
        # heartbeats are what managers hold most), so a request held from
        # here on is the consume.
        wait_until(lambda: all(waiting_requests(c, i) == 0 for i in holders), 10,
                   "managers %r to hold nothing" % (holders,), interval=0.02)
        host, port = c.m_http[via].rsplit(":", 1)
        conn = http.client.HTTPConnection(host, int(port), timeout=HTTP_TIMEOUT)
        conn.request("GET", "/consumer/consume?" + urllib.parse.urlencode(
            {"topic": topic, "consumer_id": consumer}))
        wait_until(lambda: all(waiting_requests(c, i) > 0 for i in holders), 10,
                   "managers %r to hold the consume" % (holders,), interval=0.02)
        conn.close()
        wait_until(lambda: all(waiting_requests(c, i) == 0 for i in holders), 10,
                   "managers %r to see the client leave" % (holders,), interval=0.02)
    finally:
        for b in brokers:
            b.resume()


def test_consume_client_gone(ctx):
    """API.md section 1: the offset advance is not proposed for a client
    that has gone. A consume is held (every broker stopped) and its client
    closes the connection, once through a follower (which cancels its
    forward, so the leader sees its client leave too) and once at the
    leader; the leader's read then returns the record, the leader logs that
    the client left, and a normal consume still gets that very message."""
    c = Cluster(ctx).start()
    lead = c.wait_leader()
    follower = min(i for i in c.managers if i != lead)
    c.create_topic(lead, "gone", 1)
    c.wait_topic_led("gone")
    prod = c.register(lead, "producer", "gone")
    cons = c.register(lead, "consumer", "gone")
    leader_log = c.managers[lead]
    for n, (via, holders) in enumerate(((follower, (follower, lead)), (lead, (lead,)))):
        # One message at a time: none is read ahead (readahead.h), so the
        # consume waits for the stopped brokers.
        c.produce(lead, "gone", prod, "m%d" % n)
        since = log_size(leader_log)
        consume_and_leave(c, via, "gone", cons, holders)
        want = "the client left before gone/0 offset %d was delivered" % n
        wait_until(lambda: log_has(leader_log, want, since), 15,
                   "manager%d to read offset %d for the client that left" % (lead, n))
        got = c.consume(via, "gone", cons)
        check(got == ("m%d" % n, 0, n),
              "after a client left, the next consume got %r, not m%d at offset %d"
              % (got, n, n))
    check(c.consume(lead, "gone", cons) is None, "a message left after both")


def test_consume_held_back(ctx):
    """A consume forwarded by a follower reaches the leader only after the
    follower has stopped waiting for it (--consume-deadline-ms and a second
    more, X-Raftq-Forward-By): here the leader is stopped; across a network
    partition TCP's retransmits hold a request up the same way, and the
    follower's cancel with it, so the leader finds the request and its
    connection's close together. The leader does not start the consume and
    logs why, and the next consume gets that very message (the deadline
    for the advance itself, X-Raftq-Consume-By, is test_strangers'). The
    message is read ahead (readahead.h), so without these deadlines the
    advance is proposed in the turn the request arrives, before the leader
    can see the follower leave. The same for a client of the leader that
    gives up while the leader is stopped."""
    c = Cluster(ctx, manager_args=["--election-timeout-ms", "5000",
                                   "--consume-deadline-ms", "500"]).start()
    lead = c.wait_leader()
    follower = min(i for i in c.managers if i != lead)
    c.create_topic(lead, "late", 1)
    c.wait_topic_led("late")
    cons = c.register(lead, "consumer", "late")
    recs = [{"value": "m%d" % k} for k in range(5)]
    check_ok(*c.call(lead, "POST", "/v1/topics/late/records", {"records": recs}), "fill")
    check(c.consume(lead, "late", cons) == ("m0", 0, 0), "the first consume")
    leader_log = c.managers[lead]
    since = log_size(leader_log)
    c.managers[lead].pause()
    try:
        # The follower forwards the consume into the stopped leader's
        # socket, gives up after the deadline and its grace (1 s) and
        # closes the connection.
        st, obj = c.call(follower, "GET", "/consumer/consume",
                         query={"topic": "late", "consumer_id": cons}, timeout=30)
        check_failure(st, obj, 503, "a consume forwarded to a stopped leader")
        check(obj.get("offset_advanced") == "unknown",
              "a forward that got no answer says %r" % obj)
    finally:
        c.managers[lead].resume()
    late = "a forwarded GET /consumer/consume arrived"
    wait_until(lambda: log_has(leader_log, late, since), 15,
               "manager%d to see the late consume" % lead)
    got = c.consume(lead, "late", cons)
    check(got == ("m1", 0, 1), "after the late consume, the next got %r, not m1" % (got,))
    # The same at the leader itself, from a client that gave up: the
    # request and its close arrive together, and the leader asks the
    # socket before it proposes the advance.
    since = log_size(leader_log)
    c.managers[lead].pause()
    try:
        try:
            st, obj = c.call(lead, "GET", "/consumer/consume",
                             query={"topic": "late", "consumer_id": cons}, timeout=1)
            check(False, "a stopped leader answered %d %r" % (st, obj))
        except Unreachable:
            pass
    finally:
        c.managers[lead].resume()
    want = "the client left before late/0 offset 2 was delivered"
    wait_until(lambda: log_has(leader_log, want, since), 15,
               "manager%d to see the client leave" % lead)
    got = c.consume(lead, "late", cons)
    check(got == ("m2", 0, 2), "after the client left, the next got %r, not m2" % (got,))


def test_offset_commit_held_back(ctx):
    """An offset commit whose client gave up while the leader could not
    hear it is not carried out: here the leader is stopped (across a
    network partition TCP's retransmits hold a request up the same way),
    the client gives up after a second, the follower it went through
    cancels its forward, and the leader finds the request and its
    connection's close together; it asks the socket before it proposes.
    Carried out, it would set the consumer's offsets back under the ones
    committed since (make chaos, seed 31337). The same for a client of the
    leader itself."""
    c = Cluster(ctx, manager_args=["--election-timeout-ms", "5000"]).start()
    lead = c.wait_leader()
    follower = min(i for i in c.managers if i != lead)
    c.create_topic(lead, "held", 1)
    c.wait_topic_led("held")
    cons = c.register(lead, "consumer", "held")
    path = "/v1/consumers/%d/offsets" % cons

    def offset0():
        st, obj = c.call(lead, "GET", path)
        return {o["partition_id"]: o["offset"] for o in check_ok(st, obj, "offsets")["offsets"]}[0]
    leader_log = c.managers[lead]
    for via in (follower, lead):
        since = log_size(leader_log)
        c.managers[lead].pause()
        try:
            try:
                st, obj = c.call(via, "POST", path,
                                 {"offsets": [{"partition_id": 0, "offset": 7}]}, timeout=1)
                check(False, "manager%d answered %d %r with the leader stopped" % (via, st, obj))
            except Unreachable:
                pass
        finally:
            c.managers[lead].resume()
        want = "POST %s: the client left before it was proposed" % path
        wait_until(lambda: log_has(leader_log, want, since) or offset0() != 0, 15,
                   "manager%d to see the client of a commit through manager%d leave" % (lead, via))
        check(offset0() == 0, "a commit nobody waited for, through manager%d, moved the offset "
              "to %r" % (via, offset0()))
    check_ok(*c.call(follower, "POST", path, {"offsets": [{"partition_id": 0, "offset": 3}]}),
             "a commit with its client there")
    check(offset0() == 3, "the commit set %r, not 3" % offset0())


def test_consume_failure_outcome(ctx):
    """A 503 from consume says whether the offset may have moved
    (API.md section 1, manager/README.md "Consume"): "no" when no manager
    leads (nothing can have been proposed), "unknown" when the leader lost
    its leadership after proposing the advance (its two peers stopped, so
    the proposal cannot commit, then the deposed leader steps down)."""
    c = Cluster(ctx).start()
    lead = c.wait_leader()
    c.create_topic(lead, "out", 1)
    c.wait_topic_led("out")
    prod = c.register(lead, "producer", "out")
    cons = c.register(lead, "consumer", "out")
    c.produce(lead, "out", prod, "m0")
    others = [i for i in c.managers if i != lead]
    for i in others:
        c.managers[i].pause()
    try:
        # The leader reads the record, proposes the advance and waits for a
        # commit that cannot come; it steps down once it has not heard from
        # a majority for an election timeout.
        st, obj = c.call(lead, "GET", "/consumer/consume",
                         query={"topic": "out", "consumer_id": cons})
        check_failure(st, obj, 503, "consume at a leader that loses its majority")
        check(obj.get("offset_advanced") == "unknown",
              "a consume proposed and then abandoned says %r" % obj)
        # Now no manager leads: nothing is proposed.
        st, obj = c.call(lead, "GET", "/consumer/consume",
                         query={"topic": "out", "consumer_id": cons})
        check_failure(st, obj, 503, "consume with no leader")
        check(obj.get("offset_advanced") == "no", "a consume with no leader says %r" % obj)
    finally:
        for i in others:
            c.managers[i].resume()
    new = c.wait_leader()
    for i in c.managers:
        wait_until(lambda i=i: c.ready(i), 30, "manager%d ready" % i)
    # The unknown advance did not commit (its leader lost its majority
    # before it could), so m0 is still there; whichever way, never twice.
    got = c.consume(new, "out", cons)
    check(got in (("m0", 0, 0), None), "after the unknown outcome: %r" % (got,))


def test_consume_skips_retention(ctx):
    """Messages removed by retention before a consumer read them are named
    in the consume answer that skips them ("skipped": partition and first
    and last offsets) and counted in raftq_manager_consume_skipped_total."""
    c = Cluster(ctx, broker_args=["--segment-bytes", "4096", "--retention-bytes", "16384",
                                  "--retention-check-ms", "300"]).start()
    lead = c.wait_leader()
    c.create_topic(lead, "ret", 1)
    c.wait_topic_led("ret")
    prod = c.register(lead, "producer", "ret")
    cons = c.register(lead, "consumer", "ret")
    for n in range(160):
        c.produce(lead, "ret", prod, "r%03d-%s" % (n, "x" * 200))
    p0 = c.describe("ret")["partitions"][0]
    gid, reps = p0["group_id"], p0["replicas"]
    from test_metrics import scrape, value  # It imports this module.

    # As in test_broker's retention case: once a replica's log is within
    # --retention-bytes no later pass moves its first offset.
    def trimmed(b):
        size = value(scrape(c.b_http[b]), "raftq_partition_log_bytes", group=gid)
        return c.broker_replica(b, gid).get("first_offset", 0) > 0 and size <= 16384
    wait_until(lambda: all(trimmed(b) for b in reps), 30, "retention to delete old segments")
    first = min(c.broker_replica(b, gid)["first_offset"] for b in reps)
    st, obj = c.call(lead, "GET", "/consumer/consume", query={"topic": "ret", "consumer_id": cons})
    check_ok(st, obj, "consume past retention")
    off = obj["offset"]
    check(off >= first > 0, "delivered offset %d, first held %d" % (off, first))
    check(obj["message"].startswith("r%03d-" % off), "message %r at %d" % (obj["message"][:8], off))
    check(obj.get("skipped") == {"partition_id": 0, "first_offset": 0, "last_offset": off - 1},
          "the answer names the skipped range: %r" % obj.get("skipped"))
    n = value(scrape(c.m_http[lead]), "raftq_manager_consume_skipped_total", topic="ret")
    check(n == off, "raftq_manager_consume_skipped_total is %r, %d skipped" % (n, off))
    got = c.consume(lead, "ret", cons)
    check(got is not None and got[2] == off + 1, "the next consume got %r" % (got,))
    st, obj = c.call(lead, "GET", "/consumer/consume", query={"topic": "ret", "consumer_id": cons})
    check_ok(st, obj, "a consume with nothing skipped")
    check("skipped" not in obj, "an answer with nothing skipped names %r" % obj.get("skipped"))


def keep_state(c, n_sent, n_consumed):
    """Topic "keep" (two partitions) with a producer and a consumer,
    @n_sent messages produced and @n_consumed consumed through the managers
    in turn. Returns (producer, consumer, [(partition, offset)] sent,
    [(message, partition, offset)] consumed)."""
    c.create_topic(2, "keep", 2)
    c.wait_topic_led("keep")
    prod = c.register(1, "producer", "keep")
    cons = c.register(3, "consumer", "keep")
    sent = [c.produce(1 + k % 3, "keep", prod, "keep-%d" % k) for k in range(n_sent)]
    first = [c.consume(1 + k % 3, "keep", cons) for k in range(n_consumed)]
    check(all(f is not None for f in first), "consumed %r" % first)
    return prod, cons, sent, first


def test_restart_all(ctx):
    """Every process stopped (managers killed) and started again: topics,
    registrations, offsets and messages are all there."""
    c = Cluster(ctx).start()
    prod, cons, sent, first = keep_state(c, 10, 4)
    for m in c.managers.values():
        m.kill()
    for b in c.brokers.values():
        check(b.terminate() == 0, "%r did not stop cleanly" % b)
    c.start()
    st, obj = c.call(1, "GET", "/topics")
    check(check_ok(st, obj, "topics")["topics"] == ["keep"], "topics after restart %r" % obj)
    c.wait_topic_led("keep")
    check(c.size(2, "keep", cons) == 6, "size after restart")
    rest = []
    drain(c, 3, "keep", cons, rest)
    got = {(p, o): m for m, p, o in [f for f in first] + rest}
    check(len(got) == 10 and sorted(got) == sorted(sent),
          "after the restart consumed %r, sent %r" % (sorted(got), sorted(sent)))
    # Ids go on from where they were.
    newp = c.register(2, "producer", "keep")
    check(newp > prod and newp != cons, "new producer id %d after %d" % (newp, prod))
    p, off = c.produce(3, "keep", prod, "after")
    check((p, off) not in sent, "an offset was reused")


def test_stopped_group_exits(ctx):
    """libraft 0.15 stops a group for good when it cannot persist a new
    term. A follower manager's file size limit is cut to one byte
    (prlimit) and the leader killed: the follower's group stops at the
    election and the manager exits with status 1. Restarted, it rejoins
    with every topic."""
    c = Cluster(ctx, n_brokers=3).start()
    c.create_topic(1, "stays", 2)
    lead = c.wait_leader()
    vid = next(i for i in sorted(c.managers) if i != lead)
    v = c.managers[vid]
    subprocess.run(["prlimit", "--pid", str(v.pid()), "--fsize=1:"], check=True)
    c.managers[lead].kill()
    wait_until(lambda: not v.running(), 60, "manager%d to exit" % vid)
    rc = v.terminate()
    check(rc == 1, "manager%d exited with status %s, not 1" % (vid, rc))
    v.start()
    c.managers[lead].start()
    c.wait_ready()
    for i in sorted(c.managers):
        st, obj = c.call(i, "GET", "/topics")
        check(check_ok(st, obj, "topics")["topics"] == ["stays"],
              "manager%d lists %r" % (i, obj))


def produce_until_acked(c, topic, producer, partition, message, managers, timeout=10.0):
    """Produces @message to @partition through @managers in turn, asking
    again after a 503 (a partition whose leader died refuses produces until
    its group has elected another); returns the offset."""
    deadline = time.monotonic() + timeout
    k = 0
    last = None
    while time.monotonic() < deadline:
        i = managers[k % len(managers)]
        k += 1
        try:
            st, obj = c.call(i, "POST", "/producer/produce",
                             {"topic": topic, "producer_id": producer, "message": message,
                              "partition_id": partition}, timeout=10)
        except Unreachable as e:
            last = str(e)
            continue
        if st == 200:
            check(obj["partition_id"] == partition, "produced to %r" % obj)
            return obj["offset"]
        check(st == 503, "produce %r: %d %r" % (message, st, obj))
        last = obj
        time.sleep(0.1)
    raise TestFailure("%r to partition %d not acknowledged within %.0f s (last: %r)"
                      % (message, partition, timeout, last))


def test_dead_broker_replaced(ctx):
    """A broker dies: every partition stays writable at once (leader
    failover), and once it is DEAD its replicas move to the spare broker
    (a membership change in each group), nothing acked is lost, leaders are
    the store's preferred ones again, and when it returns its stale
    replicas are deleted before rebalancing gives it its share again."""
    c = Cluster(ctx, manager_args=["--broker-suspect-ms", "1000", "--broker-dead-ms", "5000"])
    c.start()
    c.create_topic(1, "heal", 4)
    c.wait_preferred_lead("heal")
    prod = c.register(2, "producer", "heal")
    cons = c.register(3, "consumer", "heal")
    sent = {}
    for k in range(20):
        p, off = c.produce(1 + k % 3, "heal", prod, "before-%d" % k)
        sent[(p, off)] = "before-%d" % k
    parts = c.partitions(2, "heal")
    count = {b: sum(b in p["replicas"] for p in parts) for b in c.brokers}
    victim = max(count, key=lambda b: (count[b], b))
    moved = [p["partition_id"] for p in parts if victim in p["replicas"]]
    led = [p["partition_id"] for p in parts if p["leader"] == victim]
    c.brokers[victim].kill()
    killed = time.monotonic()
    # Every partition takes messages while the broker is only missing, the
    # ones it led once their groups have elected new leaders.
    for p in range(4):
        off = produce_until_acked(c, "heal", prod, p, "during-%d" % p, [1, 2, 3])
        sent[(p, off)] = "during-%d" % p
    took = time.monotonic() - killed
    state = c.broker_states()[victim]["state"]
    check(state in ("alive", "suspect") and took < 5.0,
          "the produces took %.1f s; broker %d is %s" % (took, victim, state))
    c.managers[1]._note("every partition written %.1f s after the kill (broker %d led %r)"
                        % (took, victim, led))

    def repaired():
        ps = c.partitions(1, "heal")
        return all(victim not in p["replicas"] and len(set(p["replicas"])) == 3
                   and p["leader"] is not None for p in ps) and ps
    ps = wait_until(repaired, 60, "the replicas on broker %d to move" % victim, interval=0.3)
    # Leadership follows the store's preferred leaders (replicas[0]), moved
    # replicas included.
    settled = c.wait_preferred_lead("heal")
    check([p["replicas"] for p in settled] == [p["replicas"] for p in ps],
          "replicas %r, then %r" % (ps, settled))
    st, obj = c.call(2, "GET", "/admin/brokers")
    states = {b["id"]: b["state"] for b in check_ok(st, obj, "brokers")["brokers"]}
    check(states[victim] == "dead", "broker %d is %s" % (victim, states[victim]))
    for k in range(20):
        p, off = c.produce(1 + k % 3, "heal", prod, "after-%d" % k)
        sent[(p, off)] = "after-%d" % k
    got = []
    drain(c, 2, "heal", cons, got)
    check(sorted((p, o) for _, p, o in got) == sorted(sent) and
          all(sent[(p, o)] == m for m, p, o in got),
          "consumed %d of %d messages after the move" % (len(got), len(sent)))
    # The new replicas hold everything, like their peers.
    for p in ps:
        if p["partition_id"] not in moved:
            continue
        for b in p["replicas"]:
            def caught_up(b=b, p=p):
                st, obj, _ = call(c.b_http[b], "GET", "/internal/replicas", timeout=5,
                                  sign=rqkeys.HTTP_M2B)
                mine = [r for r in obj["replicas"] if r["partition_id"] == p["partition_id"]]
                want = len([k for k in sent if k[0] == p["partition_id"]])
                return mine and mine[0]["next_offset"] == want and mine[0]["group_id"]
            wait_until(caught_up, 30, "broker %d to hold partition %d" % (b, p["partition_id"]))
    # The dead broker comes back: its replicas of moved groups are deleted.
    c.brokers[victim].start()

    def cleaned():
        try:
            st, obj, _ = call(c.b_http[victim], "GET", "/internal/replicas", timeout=5,
                                  sign=rqkeys.HTTP_M2B)
        except Unreachable:
            return False
        held = {r["partition_id"] for r in obj["replicas"] if r["topic"] == "heal"}
        return st == 200 and not (held & set(moved))
    wait_until(cleaned, 40, "broker %d to drop the replicas that moved away" % victim, interval=0.3)
    wait_until(lambda: victim in c.alive_brokers(), 20, "broker %d ALIVE again" % victim)
    # Back and empty, it takes its share again by rebalancing (DESIGN.md
    # section 17), once its stale replicas are gone.
    def balanced():
        counts = [b["partitions"] for b in c.broker_states().values()]
        return max(counts) - min(counts) <= 1 and c.groups_match_store("heal")
    wait_until(balanced, 60, "the replicas spread over the four brokers again", interval=0.3)


CLOSED_SEGMENT = re.compile(r"^(\d{16})-(\d{16})$")


def broker_records(c, b, topic, partition, upto):
    """Every record of @partition below offset @upto as broker @b's own
    replica holds it: [(offset, value)]."""
    got = []
    while len(got) < upto:
        st, obj, _ = call(c.b_http[b], "GET",
                          "/v1/topics/%s/partitions/%d/records" % (topic, partition),
                          query={"offset": len(got), "max": 100, "local": 1}, timeout=5,
                          sign=rqkeys.HTTP_M2B)
        check_ok(st, obj, "read at broker %d" % b)
        if not obj["records"]:
            break
        got += [(r["offset"], r["value"]) for r in obj["records"]]
    return got


def test_cut_closed_segment_rebuilt(ctx):
    """A follower broker is stopped and one of its replica's closed Raft
    segments is cut short (damage no crash leaves), so libraft cannot load
    the replica's log and the replica fails to open when the broker starts
    again. The managers rebuild it from its peers while the broker lives:
    the group's leader removes the member, the broker moves the broken
    directory aside (named in its log) and creates an empty replica, and
    the leader adds it back. It becomes ready again with every acknowledged
    message, and the broken files are kept."""
    cut_segment_and_rebuild(ctx, removed_first=False)


def test_rebuild_resumed_after_remove(ctx):
    """The same, when the member was removed already, as by a manager
    leader that died right after the first step of a rebuild: the managers
    see the group's two voters and the failed replica and resume the
    rebuild from its second step. This time the last closed segment is not
    cut but has bytes overwritten in the middle (its checksum fails): the
    library would move such a segment aside and start without its entries
    unless told not to (rq_node turns that recovery off), so the replica
    must fail to open here too."""
    c = cut_segment_and_rebuild(ctx, removed_first=True, damage="overwrite")
    check(any("from the rebuild step" in line for m in c.managers.values()
              for line in m.log_tail(100000)),
          "no manager resumed the rebuild from its rebuild step")


def cut_segment_and_rebuild(ctx, removed_first, damage="cut"):
    c = Cluster(ctx, n_brokers=3, broker_args=["--raft-segment-size", "8192"]).start()
    c.create_topic(1, "mend", 1)
    parts = c.wait_preferred_lead("mend")
    gid = parts[0]["group_id"]
    prod = c.register(2, "producer", "mend")
    sent = {}
    for k in range(60):
        _, off = c.produce(1 + k % 3, "mend", prod, "before-%d-%s" % (k, "x" * 400))
        sent[off] = "before-%d-%s" % (k, "x" * 400)
    lead = parts[0]["preferred_leader"]
    victim = next(b for b in parts[0]["replicas"] if b != lead)
    wait_until(lambda: c.broker_replica(victim, gid).get("next_offset") == len(sent), 30,
               "broker %d to hold every message" % victim)
    c.brokers[victim].terminate()
    raft_dir = os.path.join(c.brokers[victim].data_dir, "replicas", str(gid), "raft")
    closed = sorted((int(m.group(2)), name) for name in os.listdir(raft_dir)
                    for m in [CLOSED_SEGMENT.match(name)] if m)
    check(closed, "no closed segment in %s: %r" % (raft_dir, os.listdir(raft_dir)))
    cut = closed[-1][1]
    size = os.path.getsize(os.path.join(raft_dir, cut))
    check(size > 1000, "closed segment %s holds %d bytes" % (cut, size))
    if damage == "cut":
        os.truncate(os.path.join(raft_dir, cut), size - 300)
    else:
        with open(os.path.join(raft_dir, cut), "r+b") as f:
            f.seek(size // 2)
            f.write(b"\xa5" * 64)
    if removed_first:
        st, obj, _ = call(c.b_http[lead], "DELETE",
                          "/internal/replicas/%d/members/%d" % (gid, victim), timeout=20,
                          sign=rqkeys.HTTP_M2B)
        check(sorted(check_ok(st, obj, "remove broker %d at broker %d" % (victim, lead))["voters"])
              == sorted(b for b in parts[0]["replicas"] if b != victim),
              "voters after the removal: %r" % obj)
    c.brokers[victim].start()
    wait_until(lambda: any("g%d: cannot open" % gid in line
                           for line in c.brokers[victim].log_tail(100000)),
               30, "broker %d to fail to open the replica" % victim)
    for k in range(10):
        off = produce_until_acked(c, "mend", prod, 0, "during-%d" % k, [1, 2, 3])
        sent[off] = "during-%d" % k

    def rebuilt():
        r = c.broker_replica(victim, gid)
        return r.get("state") == "ready" and r.get("next_offset") == len(sent) and r
    wait_until(rebuilt, 90, "broker %d's replica of g%d to be rebuilt and caught up"
               % (victim, gid), interval=0.5)
    got = broker_records(c, victim, "mend", 0, len(sent))
    check(got == sorted(sent.items()),
          "broker %d holds %d records, %d acknowledged, first difference at %r" %
          (victim, len(got), len(sent),
           next((a for a, b in zip(got, sorted(sent.items())) if a != b), None)))
    # The broken files were moved aside, not deleted, and the log says where.
    log = "\n".join(c.brokers[victim].log_tail(100000))
    m = re.search(r"g%d: moved the replica's files aside to (\S+);" % gid, log)
    check(m is not None, "broker %d's log names no directory moved aside" % victim)
    kept = os.path.join(m.group(1), "raft", cut)
    check(os.path.exists(kept) and
          os.path.getsize(kept) == (size - 300 if damage == "cut" else size),
          "the damaged segment is not kept at %s" % kept)
    # The group has its three voters again, as the store says.
    wait_until(lambda: c.groups_match_store("mend"), 30, "the group to match the store")
    # Nothing else moved: the replica set is unchanged.
    check(c.describe("mend")["partitions"][0]["replicas"] == parts[0]["replicas"],
          "the replica set changed")
    return c


def test_remove_add_drain(ctx):
    """Brokers leave and join while a topic is written: DELETE of a broker
    that holds replicas drains it first (state removing) and removes it
    once it holds none; a broker that starts later registers and takes new
    replicas; a drained broker ends with no replica, every partition with
    three voters elsewhere matching the store, and nothing lost."""
    c = Cluster(ctx, n_brokers=5, admin_token="tok").start(brokers=(1, 2, 3, 4))
    auth = c.admin
    c.create_topic(1, "dr", 4)
    c.wait_preferred_lead("dr")
    prod = c.register(2, "producer", "dr")
    cons = c.register(3, "consumer", "dr")
    sent = {}

    def produce_all(tag):
        for p in range(4):
            off = produce_until_acked(c, "dr", prod, p, "%s-%d" % (tag, p), [1, 2, 3])
            sent[(p, off)] = "%s-%d" % (tag, p)
    produce_all("first")
    produce_all("second")
    check(c.hosted(2, "dr"), "broker 2 hosts nothing of dr")

    # Removing a broker that holds replicas drains it first.
    check_failure(*c.call(1, "DELETE", "/admin/brokers/9", headers=auth), 404, "unknown broker")
    st, obj = c.call(1, "DELETE", "/admin/brokers/2", headers=auth)
    check(st == 202 and obj["status"] == "success" and "removing" in obj["message"],
          "remove broker 2: %d %r" % (st, obj))
    state = c.broker_states()[2]["state"]
    check(state in ("removing", "removed"), "broker 2 is %s" % state)
    produce_all("during")  # Every partition stays writable meanwhile.
    wait_until(lambda: c.broker_states()[2]["state"] == "removed", 60, "broker 2 REMOVED",
               interval=0.3)
    check(c.hosted(2) == set(), "broker 2 still hosts %r" % c.hosted(2))
    check(c.groups_match_store("dr", exclude=(2,)), "groups after removing broker 2: %r"
          % c.describe("dr"))
    check_ok(*c.call(3, "DELETE", "/admin/brokers/2", headers=auth), "remove again")

    # A broker that starts later registers, and new partitions go to it
    # (it holds the fewest replicas) without any admin step.
    c.brokers[5].start()
    wait_until(lambda: 5 in c.alive_brokers(), 20, "broker 5 ALIVE")
    c.create_topic(2, "fresh", 1)
    fresh = c.partitions(1, "fresh")[0]
    check(5 in fresh["replicas"], "the new broker took no replica: %r" % fresh)
    wait_until(lambda: c.groups_match_store("fresh"), 30, "topic fresh served")

    # Draining moves everything off; the broker stays, empty.
    check_ok(*c.call(2, "POST", "/admin/brokers/3/drain", headers=auth), "drain broker 3")
    wait_until(lambda: c.hosted(3) == set() and c.groups_match_store("dr", exclude=(2, 3))
               and c.groups_match_store("fresh", exclude=(3,)), 60,
               "broker 3 to be drained", interval=0.3)
    # The managers see it too (from its next heartbeat).
    wait_until(lambda: c.broker_states()[3]["hosted"] == 0, 10, "broker 3 to report no replica")
    b3 = c.broker_states()[3]
    check(b3["state"] == "draining" and b3["partitions"] == 0,
          "broker 3 after the drain: %r" % b3)
    # Now it holds nothing: removing it is immediate.
    st, obj = c.call(1, "DELETE", "/admin/brokers/3", headers=auth)
    check_ok(st, obj, "remove the drained broker")
    check(c.broker_states()[3]["state"] == "removed", "broker 3: %r" % c.broker_states()[3])
    produce_all("after")
    got = []
    drain(c, 1, "dr", cons, got)
    check(sorted((p, o) for _, p, o in got) == sorted(sent)
          and all(sent[(p, o)] == m for m, p, o in got),
          "consumed %d of %d messages" % (len(got), len(sent)))
    # Every replica holds every record.
    for p in c.groups_match_store("dr"):
        want = len([k for k in sent if k[0] == p["partition_id"]])
        for b in p["replicas"]:
            wait_until(lambda b=b, p=p: c.broker_replica(b, p["group_id"]).get("next_offset")
                       == want, 20, "broker %d to hold partition %d" % (b, p["partition_id"]))


def test_leader_killed_mid_repair_and_create(ctx):
    """The manager leader dies in the middle of a replica move (stopped
    once the new replica exists, killed once the group has added it) and
    right after answering a topic creation: the next leader finishes the
    move (three voters matching the store, the dead broker's replica gone,
    nothing lost) and creates every replica of the new topic."""
    c = Cluster(ctx, manager_args=["--broker-suspect-ms", "1000", "--broker-dead-ms", "3000"])
    c.start()
    lead = c.wait_leader()
    c.create_topic(lead, "mid", 1)
    part = c.wait_preferred_lead("mid")[0]
    gid = part["group_id"]
    prod = c.register(lead, "producer", "mid")
    cons = c.register(lead, "consumer", "mid")
    sent = {}
    for k in range(30):
        _, off = c.produce(1 + k % 3, "mid", prod, "before-%d" % k)
        sent[off] = "before-%d" % k
    victim = part["replicas"][1]
    spare = next(b for b in c.brokers if b not in part["replicas"])
    c.brokers[victim].kill()
    # The move starts once the victim is DEAD: its first step creates the
    # new replica on the spare. Stop the leader there, so that the group
    # adds the new member with nobody left to remove the old one.
    wait_until(lambda: gid in (c.hosted(spare) or ()), 30, "the move to create its replica",
               interval=0.02)
    c.managers[lead].pause()

    def added():
        voters = {tuple(sorted(c.broker_replica(b, gid).get("voters", [])))
                  for b in part["replicas"] if b != victim}
        return any(spare in v for v in voters) and voters
    try:
        voters = wait_until(added, 30, "the group to add broker %d" % spare, interval=0.05)
    finally:
        c.managers[lead].kill()
    others = [i for i in c.managers if i != lead]
    new = c.wait_leader(exclude=(lead,), timeout=30)
    ps = wait_until(lambda: c.groups_match_store("mid", exclude=(victim,)), 40,
                    "the next leader to finish the move", interval=0.3)
    check(spare in ps[0]["replicas"], "replicas %r" % ps[0]["replicas"])
    log = "\n".join(c.managers[new].log_tail(400))
    c.managers[new]._note("voters when the leader died: %r; resumed: %s" % (
        voters, [ln for ln in log.splitlines() if "moving the replica" in ln][-1:]))

    # A topic created through the new leader, which dies as soon as it has
    # answered: the next one creates whatever replicas are missing.
    c.managers[lead].start()
    wait_until(lambda: c.ready(lead), 30, "manager%d back" % lead)
    st, obj = c.call(new, "POST", "/topics", {"topic_name": "born", "number_of_partitions": 6})
    check_ok(st, obj, "create born")
    c.managers[new].kill()
    hosted = sum(len(c.hosted(b, "born") or ()) for b in c.brokers if b != victim)
    c.managers[new]._note("replicas of born when the leader died: %d of 18" % hosted)
    c.wait_leader(exclude=(new,), timeout=30)
    wait_until(lambda: c.groups_match_store("born"), 40, "every replica of born", interval=0.3)
    others = [i for i in c.managers if i != new]
    bprod = c.register(others[0], "producer", "born")
    for p in range(6):
        produce_until_acked(c, "born", bprod, p, "born-%d" % p, others)

    # Nothing lost in the moved partition; the new replica holds it all.
    for k in range(10):
        off = produce_until_acked(c, "mid", prod, 0, "after-%d" % k, others)
        sent[off] = "after-%d" % k
    got = []
    drain(c, others[1], "mid", cons, got)
    check({o: m for m, _, o in got} == sent, "consumed %d of %d" % (len(got), len(sent)))
    wait_until(lambda: c.broker_replica(spare, gid).get("next_offset") == len(sent), 20,
               "broker %d to hold every record" % spare)


def test_reads_ask_the_leader(ctx):
    """Record reads and consumes through the managers ask the partition's
    leader, which alone answers them: a follower that has stopped
    answering (SIGSTOP) slows nothing down, and when the leader has just
    died the reads wait for the group to elect and confirm another, then
    give every record."""
    c = Cluster(ctx).start()
    c.create_topic(1, "rd", 1)
    part = c.wait_preferred_lead("rd")[0]
    lead = part["preferred_leader"]
    followers = [b for b in part["replicas"] if b != lead]
    values = []
    # Through every manager, which then knows the leader from its answer.
    for i in c.managers:
        recs = ["r%d-%d" % (i, k) for k in range(2)]
        st, obj = c.call(i, "POST", "/v1/topics/rd/records",
                         {"records": [{"value": v, "partition_id": 0} for v in recs]})
        check_ok(st, obj, "produce at manager%d" % i)
        values += recs
    cons = c.register(3, "consumer", "rd")

    def read(i, offset=0):
        t0 = time.monotonic()
        st, obj = c.call(i, "GET", "/v1/topics/rd/partitions/0/records",
                         query={"offset": offset, "max": 100})
        took = time.monotonic() - t0
        got = [r["value"] for r in check_ok(st, obj, "read at manager%d" % i)["records"]]
        check(got == values[offset:], "read %r at manager%d from %d: %r" % (got, i, offset, obj))
        return took

    c.brokers[followers[0]].pause()
    try:
        slow = [t for i in c.managers for t in (read(i), read(i, 3)) if t > 2.0]
        check(not slow, "reads took %r s with a follower stopped" % slow)
        for k in range(3):
            t0 = time.monotonic()
            got = c.consume(1 + k % 3, "rd", cons)
            took = time.monotonic() - t0
            check(got == (values[k], 0, k) and took < 2.0,
                  "consume %d: %r in %.1f s" % (k, got, took))
    finally:
        c.brokers[followers[0]].resume()
    # The leader dies: the first reads wait for the group's next leader
    # (an election timeout of 600 ms, doubled at most, then its barrier),
    # the later ones find it at once.
    c.brokers[lead].kill()
    took = [(read(i), read(i, 5)) for i in c.managers]
    check(all(a < 4.0 and b < 2.0 for a, b in took),
          "reads took %r s with the leader dead" % took)


def test_reads_after_all_killed(ctx):
    """Reads right after every process was SIGKILLed at once under load and
    started again: eight writers send batches of 20 records through all
    three managers to a six-partition topic, every manager and broker is
    killed in the same instant, and everything starts again. A partition's
    first 200 answer must already hold the last record acknowledged in it
    (with a high watermark past it) and every acknowledged record before
    it: 503 may come first, while the groups elect and confirm their
    leaders, but "no record there" never may. Before reads were served by
    the confirmed leader alone, a replica that had not yet been told its
    group's commit index after the restart answered with its replayed
    position, short of records already acknowledged."""
    c = Cluster(ctx, n_brokers=3).start()
    c.create_topic(1, "crash", 6)
    c.wait_topic_led("crash")
    acked = {}  # (partition, offset) -> value
    lock = threading.Lock()
    stop = threading.Event()
    errors = []

    def writer(w):
        k = 0
        while not stop.is_set():
            i = 1 + (w + k) % 3
            recs = [{"value": "w%d-%d-%d" % (w, k, j)} for j in range(20)]
            k += 1
            try:
                st, obj = c.call(i, "POST", "/v1/topics/crash/records", {"records": recs},
                                 timeout=10)
            except Unreachable:
                continue
            if st == 200:
                with lock:
                    for r, o in zip(recs, obj["offsets"]):
                        acked[(o["partition_id"], o["offset"])] = r["value"]
            elif st != 503:
                errors.append("produce: %d %r" % (st, obj))

    threads = [threading.Thread(target=writer, args=(w,), daemon=True) for w in range(8)]
    for t in threads:
        t.start()
    wait_until(lambda: len(acked) >= 2000, 30, "writes to flow")
    stop.wait(5)  # Load for a while: not a synchronisation.
    procs = list(c.managers.values()) + list(c.brokers.values())
    for d in procs:
        d.expect_clean_exit = False
        d.proc.send_signal(signal.SIGKILL)
    for d in procs:
        d.kill()  # Reaps.
    stop.set()
    for t in threads:
        t.join(30)
    check(not errors, "errors: %s" % errors[:3])
    with lock:
        acked = dict(acked)
    last = {}
    for p, o in acked:
        last[p] = max(last.get(p, -1), o)
    check(len(last) == 6, "records acked in partitions %r only" % sorted(last))
    c.start(wait=False)

    def first_answer(p):
        """The first answer other than a 5xx or an unreachable manager."""
        i = 1 + p % 3
        try:
            st, obj = c.call(i, "GET", "/v1/topics/crash/partitions/%d/records" % p,
                             query={"offset": last[p], "max": 1}, timeout=15)
        except Unreachable:
            return None
        return None if st >= 500 else (st, obj)

    short = []
    for p in sorted(last):
        st, obj = wait_until(lambda p=p: first_answer(p), 60,
                             "partition %d to answer a read" % p, interval=0.1)
        recs = obj.get("records", []) if isinstance(obj, dict) else []
        if (st != 200 or not recs or recs[0]["offset"] != last[p]
                or recs[0]["value"] != acked[(p, last[p])]
                or obj["high_watermark"] <= last[p]):
            short.append("partition %d (last acked %d): %d %r" % (p, last[p], st, obj))
    check(not short, "first answers after the restart miss acknowledged records: %s"
          % "; ".join(short))
    # Every acknowledged record is there, at its offset.
    for p in sorted(last):
        offset = 0
        got = {}
        while offset <= last[p]:
            st, obj = c.call(1 + p % 3, "GET", "/v1/topics/crash/partitions/%d/records" % p,
                             query={"offset": offset, "max": 10000})
            check_ok(st, obj, "read partition %d at %d" % (p, offset))
            check(obj["records"], "partition %d: no records at %d, high watermark %d, "
                  "last acked %d" % (p, offset, obj["high_watermark"], last[p]))
            for r in obj["records"]:
                got[r["offset"]] = r["value"]
            offset = obj["next_offset"]
        lost = [(p, o) for (q, o), v in acked.items() if q == p and got.get(o) != v]
        check(not lost, "partition %d: %d acknowledged records differ or are missing: %r"
              % (p, len(lost), sorted(lost)[:5]))
    c.managers[1]._note("%d records acknowledged before the kill" % len(acked))


def test_routes_copied_by_changes(ctx):
    """GET /internal/routes lists every route, or with the epoch and version
    of a copy before, only the routes changed since (followers copy the
    leader's every second); a follower's copy follows a produce."""
    c = Cluster(ctx).start()
    c.create_topic(1, "rt", 3)
    c.wait_topic_led("rt")
    lead = c.wait_leader()

    def routes(query=None):
        st, obj, _ = call(c.m_http[lead], "GET", "/internal/routes", query=query,
                          sign=rqkeys.HTTP_M2M)
        check(st == 200, "routes: %d %r" % (st, obj))
        return obj
    full = routes()
    check(not full["changes"] and len(full["routes"]) >= 3, "full copy %r" % full)
    epoch = full["epoch"]
    check(isinstance(epoch, str) and len(epoch) == 16, "epoch %r" % epoch)

    # Once the groups are idle, a copy since the last version lists nothing.
    seen = {"v": full["version"]}

    def quiet():
        obj = routes({"epoch": epoch, "since": seen["v"]})
        check(obj["changes"], "a copy since %d: %r" % (seen["v"], obj))
        empty = obj["routes"] == [] and obj["version"] == seen["v"]
        seen["v"] = obj["version"]
        return empty
    wait_until(quiet, 20, "the routes to stop changing", interval=1.0)

    # A produce raises one group's watermark: that route is listed, and
    # every route listed differs from what the copy before it said.
    before = routes({"epoch": epoch, "since": 0})
    check(not before["changes"], "since 0 is a whole copy: %r" % before)
    was = {r["group_id"]: r for r in before["routes"]}
    pid = c.register(2, "producer", "rt")
    part, off = c.produce(3, "rt", pid, "hello")
    gid = [p for p in c.describe("rt")["partitions"] if p["partition_id"] == part][0]["group_id"]

    def listed():
        obj = routes({"epoch": epoch, "since": before["version"]})
        return [r for r in obj["routes"] if r["group_id"] == gid and
                r["high_watermark"] > off] and obj
    obj = wait_until(listed, 10, "the produce's route to be listed as changed")
    check(obj["changes"] and all(r != was.get(r["group_id"]) for r in obj["routes"]),
          "a route listed as changed did not change: %r, before %r" % (obj["routes"], was))

    # Another epoch (a leader restarted, another leader) gets everything.
    other = routes({"epoch": "0" * 16, "since": seen["v"]})
    check(not other["changes"] and len(other["routes"]) == len(full["routes"]),
          "a copy from another epoch: %r" % other)
    bad = routes({"epoch": epoch, "since": obj["version"] + 1000})
    check(not bad["changes"], "a copy since a version to come: %r" % bad)

    # Every follower's copy knows the watermark the produce raised.
    for i in c.managers:
        if i == lead:
            continue
        wait_until(lambda i=i: [p for p in c.partitions(i, "rt")
                                if p["partition_id"] == part and p["leader"] is not None],
                   10, "manager%d to know partition %d's leader" % (i, part))


def test_leader_with_a_gap(ctx):
    """A replica restored from a snapshot past its own partition log has a
    gap to fetch from its peers; while it has one, even as the group's
    leader, it has no records to give there. Here every replica's log is
    deleted while the brokers are stopped, so each comes back with the
    whole partition as a gap that no peer can fill, and one of them leads.
    Reads in the gap are answered 503 (retryable), by the leader and
    through the managers, and a consume is never told "no new messages":
    before, the leader answered no records with "leader": true and a high
    watermark above the offset, and the managers took that as the end."""
    c = Cluster(ctx, n_brokers=3).start()
    c.create_topic(1, "gap", 1)
    c.wait_topic_led("gap")
    cons = c.register(2, "consumer", "gap")
    for k in range(100):  # One Raft entry each: past --snapshot-threshold.
        st, obj = c.call(1 + k % 3, "POST", "/v1/topics/gap/records",
                         {"records": [{"value": "g%d" % k}]})
        check_ok(st, obj, "produce %d" % k)
    gid = c.describe("gap")["partitions"][0]["group_id"]
    wait_until(lambda: all(c.broker_replica(b, gid).get("snapshot_index", 0) > 0
                           for b in c.brokers), 30, "every replica to take a snapshot")
    for b in c.brokers.values():
        check(b.terminate() == 0, "%r did not stop cleanly" % b)
        shutil.rmtree(os.path.join(b.data_dir, "replicas", str(gid), "log"))
    for b in c.brokers.values():
        b.start()

    def leader_fetching():
        for b in c.brokers:
            r = c.broker_replica(b, gid)
            if r.get("role") == "leader" and r.get("ready"):
                check(r.get("state") == "fetching", "the leader has no gap: %r" % r)
                return b
        return None
    lead = wait_until(leader_fetching, 30, "a ready leader with a gap")
    st, obj, _ = call(c.b_http[lead], "GET", "/v1/topics/gap/partitions/0/records",
                      query={"offset": 50}, sign=rqkeys.HTTP_M2B)
    check(st == 503 and "fetching" in obj.get("message", ""),
          "the leader answered a read in its gap with %d %r" % (st, obj))
    # Each is answered once the manager has given up waiting for the gap
    # to fill (seconds): all six at once.
    asks = [(i, path, q) for i in c.managers for path, q in (
        ("/v1/topics/gap/partitions/0/records", {"offset": 50}),
        ("/consumer/consume", {"topic": "gap", "consumer_id": cons}))]
    with concurrent.futures.ThreadPoolExecutor(len(asks)) as pool:
        answers = list(pool.map(lambda a: c.call(a[0], "GET", a[1], query=a[2]), asks))
    for (i, path, _), (st, obj) in zip(asks, answers):
        check(st == 503, "GET %s in the gap through manager%d: %d %r" % (path, i, st, obj))


def log_size(d):
    try:
        return os.path.getsize(d.log_path)
    except OSError:
        return 0


def log_has(d, text, since=0):
    """Whether @text is in the log of process @d from byte @since on."""
    try:
        with open(d.log_path, "rb") as f:
            f.seek(since)
            return text in f.read().decode("utf-8", "replace")
    except OSError:
        return False


def log_start(data_dir):
    """The first index of the Raft log on disk under @data_dir (closed
    segments are named FIRST-LAST), or None."""
    try:
        names = os.listdir(os.path.join(data_dir, "raft"))
    except OSError:
        return None
    firsts = [int(n.split("-")[0]) for n in names if re.match(r"^\d{16}-\d{16}$", n)]
    return min(firsts) if firsts else None


def digests(c):
    """{manager: (applied index, content SHA-256)} from GET
    /internal/state-digest, signed as a manager."""
    got = {}
    for i in c.running_managers():
        st, obj, _ = call(c.m_http[i], "GET", "/internal/state-digest", timeout=5,
                          sign=rqkeys.HTTP_M2M, headers=c.admin)
        check(st == 200, "state digest of manager%d: %d %r" % (i, st, obj))
        got[i] = (obj["applied"], obj["sha256"])
    return got


def digests_agree(c):
    """Whether all three managers report the same applied index and state
    digest."""
    d = digests(c)
    return len(set(d.values())) == 1 and len(d) == 3


# This build's store schema (MSTORE_SCHEMA_VERSION, manager/mstore.h).
SCHEMA_VERSION = 4


def test_rolling_upgrade(ctx):
    """Managers and brokers of the previous release ($RAFTQ_PREVIOUS_BUILD,
    its build directory: `git archive REV | tar -x -C DIR && make -C DIR
    all`, then DIR/build) with some state; the managers are then replaced
    by this build one at a time on their data directories, the leader last
    (the brokers stay on the previous release). Each migrates its store on
    start; the second follower is down while the old leader compacts its
    log past it, so it comes back to that leader's snapshot and migrates it
    on restore. The cluster serves in between, and once every manager runs
    this build their state digests agree, the state is all there, and
    tokens work. Then batch entries are turned on, a manager at a time,
    and a burst of writes applies alike everywhere. The previous release
    must speak this build's protocols:
    releases before the Raft port's challenge and signed internal requests
    cannot (they upgrade by a full restart, which migrates the same way), so
    until a release with an older schema speaks them the case is skipped,
    visibly, without $RAFTQ_PREVIOUS_BUILD."""
    prev = os.environ.get("RAFTQ_PREVIOUS_BUILD")
    if not prev:
        raise Skip("set RAFTQ_PREVIOUS_BUILD to a build directory of the previous release")
    old = {k: os.path.join(prev, k) for k in ("manager", "broker")}
    for path in old.values():
        if not os.access(path, os.X_OK):
            raise TestFailure("RAFTQ_PREVIOUS_BUILD=%s has no binary at %s" % (prev, path))
    info = ctx.opts.log_level in ("info", "debug")
    # The previous release's schema version ($RAFTQ_PREVIOUS_SCHEMA,
    # default 1): one of this build's migrates nothing.
    prev_schema = int(os.environ.get("RAFTQ_PREVIOUS_SCHEMA", "1"))
    migrates = prev_schema < SCHEMA_VERSION
    c = Cluster(ctx, manager_args=["--snapshot-threshold", "64"])
    new = {i: m.argv[0] for i, m in c.managers.items()}
    for m in c.managers.values():
        m.argv[0] = old["manager"]
    for b in c.brokers.values():
        b.argv[0] = old["broker"]
        # A flag this build's brokers have and earlier ones may not.
        k = b.argv.index("--shutdown-grace-ms")
        del b.argv[k:k + 2]
    c.start()
    prod, cons, sent, first = keep_state(c, 6, 2)

    def upgrade(i, batches=False):
        """Restarts manager @i on this build; returns where its log was.
        While a manager of the previous release may still be in the
        cluster, this build runs with --propose-batches=false (the
        previous release cannot read a batch entry, manager/README.md)."""
        m = c.managers[i]
        if m.running():
            check(m.terminate() == 0, "manager%d did not stop cleanly" % i)
        since = log_size(m)
        was_old = m.argv[0] == old["manager"]
        m.argv[0] = new[i]
        m.argv = [a for a in m.argv if a != "--propose-batches=false"]
        if not batches:
            m.argv.append("--propose-batches=false")
        m.start()
        wait_until(lambda: c.ready(i), 40, "manager%d (this build) to be ready" % i)
        check(not info or not migrates or not was_old or
              log_has(m, "schema version %d migrated to %d" % (prev_schema, SCHEMA_VERSION),
                      since),
              "manager%d did not migrate its store" % i)
        return since

    leader = c.wait_leader()
    f1, f2 = [i for i in c.managers if i != leader]
    upgrade(f1)
    sent.append(c.produce(f1, "keep", prod, "mixed"))
    # f2 misses entries the old leader no longer has: it keeps committing
    # until its log on disk starts past everything f2 can hold, by more
    # than the trailing count (128), since with less the leader was seen to
    # send f2 entries still in its memory rather than its snapshot.
    check(c.managers[f2].terminate() == 0, "manager%d did not stop cleanly" % f2)
    held = digests(c)[leader][0] + 8
    n_new = 0

    def compacted():
        nonlocal n_new
        start = log_start(c.managers[leader].data_dir)
        if start is not None and start > held + 129:
            return True
        for _ in range(20):
            c.register(leader, "producer", "keep")
        n_new += 20
        return False
    wait_until(compacted, 60, "the old leader to compact its log past index %d" % held)
    since = upgrade(f2)
    m2 = c.managers[f2]
    wait_until(lambda: log_has(m2, "store restored from a snapshot", since), 20,
               "manager%d to install the leader's snapshot" % f2)
    if info and migrates and c.leader() == leader:
        check(log_has(m2, "of schema version %d" % prev_schema, since),
              "manager%d restored a snapshot that was not the old leader's" % f2)
    upgrade(leader)
    c.wait_ready()

    st, obj = c.call(f2, "GET", "/topics")
    check(check_ok(st, obj, "topics")["topics"] == ["keep"], "topics after the upgrade %r" % obj)
    check(c.size(leader, "keep", cons) == 5, "size after the upgrade")
    rest = []
    drain(c, f1, "keep", cons, rest)
    got = sorted((p, o) for _, p, o in first + rest)
    check(got == sorted(sent),
          "after the upgrade consumed %r, sent %r" % (got, sent))
    newp = c.register(f2, "producer", "keep")
    check(newp > prod + n_new, "new producer id %d" % newp)
    st, obj = c.call(f1, "POST", "/admin/tokens", {"name": "after", "grants": ["admin"]})
    check_ok(st, obj, "create a token after the upgrade")
    check(obj["id"] == 1, "first token id %r" % obj.get("id"))

    wait_until(lambda: digests_agree(c), 10, "every manager's state digest to agree")

    # Every manager runs this build: batches back on, one at a time, the
    # leader last; then writes that come together go as batch entries and
    # every manager applies them alike.
    lead = c.wait_leader()
    for i in [i for i in c.managers if i != lead] + [lead]:
        upgrade(i, batches=True)
    c.wait_ready()
    lead = c.wait_leader()
    for st, obj in burst_at_leader(c, lead, [("POST", "/consumer/register",
                                              {"topic": "keep"})] * 20):
        check_ok(st, obj, "register a consumer with batches on")
    wait_until(lambda: digests_agree(c), 10,
               "every manager's state digest to agree with batches on")


if __name__ == "__main__":
    run_suite("manager", [
        test_queue_api,
        test_batch_api,
        test_admin_liveness,
        test_leader_killed_under_load,
        test_merged_produces,
        test_consumes_ride_together,
        test_metadata_writes_batched,
        test_consumes_in_a_pipeline,
        test_forwarded_consumes_keep_connections,
        test_forwarded_consumes_leader_killed,
        test_restart_all,
        test_stopped_group_exits,
        test_dead_broker_replaced,
        test_cut_closed_segment_rebuilt,
        test_rebuild_resumed_after_remove,
        test_remove_add_drain,
        test_leader_killed_mid_repair_and_create,
        test_reads_ask_the_leader,
        test_consume_client_gone,
        test_consume_held_back,
        test_offset_commit_held_back,
        test_consume_failure_outcome,
        test_consume_skips_retention,
        test_reads_after_all_killed,
        test_routes_copied_by_changes,
        test_leader_with_a_gap,
        test_rolling_upgrade,
    ], binary="manager", ports=(28000, 28999))

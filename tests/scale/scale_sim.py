"""The manager cluster's load at scale, with simulated brokers (make scale-sim).

What is real: three manager processes from --build, started as
tests/integration/test_manager.py starts them (one Raft group, their own
data directories, the test cluster secret, an admin token).

What is simulated: the brokers. One Python process runs all of them on
asyncio (--brokers, 100 by default): each has an HTTP/1.1 server on its own
port for the managers' calls, and a client that registers and heartbeats as
broker/registrar.c does:

- POST /internal/brokers/register (id, raft_addr, http_addr, "fresh" on the
  first registration while it holds nothing, cluster_uid once bound),
  signed as broker-ID with the broker-to-manager key (rqsign.py);
- then a heartbeat every second (the next one a second after the answer),
  POST /internal/brokers/{id}/heartbeat with broker.c's heartbeat_summary()
  body: "replicas" (group_id, role, leader_id, term, commit, next_offset,
  voters, state, preferred_leader) and "disk", plus cluster_uid;
- every broker lists the managers in the same order and sends to one until
  it fails (no answer within a second, or a status other than 200 and 404),
  then to the next; a 404 makes it register again.

A group's leader is its preferred leader (the store's replicas[0], as the
managers name it); every replica is "ready" in term 1. A fraction of the
partitions (--active) takes produces: their commit and next offset move
every second, so those brokers' reports change every second. Each broker
keeps the encoded JSON of each replica and re-encodes only what changed.

With --report delta (the default, as broker/hbreport.c reports) a heartbeat
carries "report": {"seq": S, "base": B}: base 0 is a full list, otherwise
"replicas" holds what was added or changed since report B (the last one the
manager acknowledged) and "gone" the group ids removed since. An answer
"report": "full" asks for a full list next; a heartbeat that failed keeps
its base. --report full sends every replica every time without the field,
as brokers did before delta reports (and as managers that do not know them
need: they would take a delta for the whole list).

The simulated brokers serve what the managers call: POST /internal/replicas
(create), DELETE /internal/replicas/{g}, .../preferred, .../transfer,
.../members (add, remove), .../rebuild and GET /internal/replicas. Anything
else is answered 404 and counted; the counts are printed at the end. Calls
are not verified, but one naming another cluster uid (X-Raftq-Cluster) is
refused 409 as broker.c refuses it.

Replicas come from the managers: topics of at most 1,024 partitions
(MCMD_MAX_PARTITIONS) are created through POST /topics and the leader's
reconciliation creates every replica on the simulated brokers. That is timed;
when, after --create-probe-s, it is projected to take more than
--create-budget-s, the brokers adopt the rest of the placement instead (read
from GET /admin/topics/{t}) and report those replicas as if they had been
created. The table says which way was used.

Measured, over --measure-s of steady state (every replica placed and
reported): per manager, CPU (utime+stime from /proc, as a share of one
core), RSS and peak RSS, the size of meta.db with its WAL, and the rates of
some of its own /metrics counters; the heartbeats' round trip as the brokers
see it (p50, p99, max) and the bytes they send; the status page (GET /ui)
and the JSON calls its script makes (manager/ui/index.html), each timed a
few times on the leader and on a follower. Then the leader is profiled with
perf (--perf-s, when perf is installed) and killed with SIGKILL: the time
until a new leader is elected and until every broker's heartbeat is
answered 200 again, and the remaining managers' CPU for 20 s after. The
simulator's own CPU and its event loop's lag are printed too, to show it is
not the bottleneck.

Ports come from 34000-34999, each checked free when taken. Logs, perf
reports and table.txt go to --out (by default a new temporary directory;
the managers' data directories in it are removed after a successful run,
and everything is kept after a failure).

Standard library only, like the integration tests:

    python3 tests/scale/scale_sim.py --build build [--brokers 100]
        [--partitions 100000] [--report full|delta] [--measure-s 60]
"""

import argparse
import asyncio
import collections
import concurrent.futures
import http.client
import json
import os
import random
import re
import resource
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
TESTS = os.path.dirname(HERE)
sys.path.insert(0, os.path.join(TESTS, "integration"))
# test_manager.py imports the chaos suite's checker.
sys.path.insert(1, os.path.join(TESTS, "chaos"))

import harness  # noqa: E402
import rqkeys  # noqa: E402
import rqsign  # noqa: E402
from test_manager import ADMIN_TOKEN, SECRET, Unreachable, call  # noqa: E402

PORT_LO, PORT_HI = 34000, 34999
MAX_PARTITIONS_PER_TOPIC = 1024  # MCMD_MAX_PARTITIONS in manager/mcmd.h
RF = 3  # MCMD_RF
HEARTBEAT_S = 1.0  # registrar.c DEFAULT_HEARTBEAT_MS; also a heartbeat's timeout
FULL_REPORT_S = 5.0  # registrar.c FULL_REPORT_TIMEOUT_MS: a full report's timeout
RETRY_S = 0.1  # registrar.c RETRY_MS
BACKOFF_MAX_S = 5.0  # registrar.c BACKOFF_MAX_MS
REGISTER_TIMEOUT_S = 5.0  # registrar.c REGISTER_TIMEOUT_MS
STREAM_LIMIT = 64 << 20
PAGE_SHOWN = 100  # Topics the status page shows (MAX_TOPICS), each with its traffic.
PAGE_TOPICS = 10  # Topics whose GET /admin/topics/{t} is timed one by one
TOPIC_DEADLINE_S = 180  # For one POST /topics, retries included
CLK_TCK = os.sysconf("SC_CLK_TCK")
ADMIN = {"Authorization": "Bearer " + ADMIN_TOKEN}
# A data volume of 100 GiB with 60 free, as a heartbeat's "disk" says it.
DISK = b'"disk":{"total":107374182400,"free":64424509440,"reserve":1073741824,"low":false}'


def log(fmt, *args):
    print("[%s] %s" % (time.strftime("%H:%M:%S"), fmt % args if args else fmt), flush=True)


def pct(values, p):
    """The @p-th percentile of @values (nearest rank), or None."""
    if not values:
        return None
    s = sorted(values)
    return s[min(len(s) - 1, max(0, int(round(p / 100.0 * len(s) + 0.5)) - 1))]


def member_order(group_id, replicas):
    """policy_member_order (manager/policy.c): the members' order in a
    creation call, hence in the group's configuration."""
    out = [0] * RF
    for k in range(RF):
        out[(group_id + k) % RF] = replicas[k]
    return out


# ---- HTTP/1.1 on asyncio streams ---------------------------------------------

REASONS = {100: "Continue", 200: "OK", 400: "Bad Request", 404: "Not Found",
           409: "Conflict", 421: "Misdirected Request", 500: "Internal Server Error",
           503: "Service Unavailable"}


def parse_head(head):
    """(first line, {lower-case name: value}) of a request or response head."""
    lines = head.decode("latin-1").split("\r\n")
    headers = {}
    for line in lines[1:]:
        if line:
            name, _, value = line.partition(":")
            headers[name.strip().lower()] = value.strip()
    return lines[0], headers


async def read_body(reader, headers):
    """The body after a head, by Content-Length or chunked encoding."""
    if headers.get("transfer-encoding", "").lower() == "chunked":
        parts = []
        while True:
            size = int((await reader.readuntil(b"\r\n")).split(b";")[0], 16)
            if size == 0:
                while (await reader.readuntil(b"\r\n")) != b"\r\n":
                    pass  # Trailers.
                return b"".join(parts)
            parts.append(await reader.readexactly(size))
            await reader.readexactly(2)
    n = int(headers.get("content-length", "0") or 0)
    return await reader.readexactly(n) if n > 0 else b""


class HttpConn:
    """One kept-alive client connection to HOST:PORT, one request at a time.
    A kept connection the server has closed meanwhile is opened again once,
    as libcurl does."""

    def __init__(self, addr):
        host, port = addr.rsplit(":", 1)
        self.host, self.port = host, int(port)
        self.reader = self.writer = None

    def close(self):
        if self.writer is not None:
            self.writer.close()
        self.reader = self.writer = None

    async def request(self, method, target, body=b"", headers=None, timeout=10.0):
        """(status, headers, body); raises OSError, asyncio.TimeoutError or
        asyncio.IncompleteReadError (the connection is then closed)."""
        try:
            return await asyncio.wait_for(self._request(method, target, body, headers or {}),
                                          timeout)
        except BaseException:
            self.close()
            raise

    async def _request(self, method, target, body, headers):
        head = ["%s %s HTTP/1.1" % (method, target), "Host: %s:%d" % (self.host, self.port),
                "Content-Length: %d" % len(body)]
        if body:
            head.append("Content-Type: application/json")
        head += ["%s: %s" % kv for kv in headers.items()]
        data = ("\r\n".join(head) + "\r\n\r\n").encode("latin-1") + body
        for attempt in range(2):
            fresh = self.writer is None
            if fresh:
                self.reader, self.writer = await asyncio.open_connection(
                    self.host, self.port, limit=STREAM_LIMIT)
            try:
                self.writer.write(data)
                await self.writer.drain()
                raw = await self.reader.readuntil(b"\r\n\r\n")
            except (OSError, asyncio.IncompleteReadError):
                self.close()
                if fresh:
                    raise
                continue
            line, rh = parse_head(raw)
            status = int(line.split()[1])
            rbody = await read_body(self.reader, rh)
            if rh.get("connection", "").lower() == "close":
                self.close()
            return status, rh, rbody
        raise OSError("connection closed twice")  # Not reached.


# ---- The simulated cluster of brokers ----------------------------------------


class Group:
    """A partition's Raft group as its replicas would report it."""

    __slots__ = ("gid", "topic", "partition", "voters", "leader", "term", "commit",
                 "next_offset", "hosts")

    def __init__(self, gid, topic, partition, voters, leader):
        self.gid, self.topic, self.partition = gid, topic, partition
        self.voters = list(voters)
        self.leader = leader
        self.term = 1
        self.commit = self.next_offset = 0
        self.hosts = set()  # Broker ids holding a replica.


class Broker:
    """One simulated broker: its replicas, its report (encoded per replica,
    with what changed since which report for deltas), its registrar and the
    handlers of the managers' calls."""

    def __init__(self, sim, bid, http_addr, raft_addr):
        self.sim = sim
        self.id = bid
        self.http_addr, self.raft_addr = http_addr, raft_addr
        self.sender = "broker-%d" % bid
        self.preferred = {}  # gid -> the preferred leader this replica was told
        # The report: gid -> encoded entry, in the order of their last change
        # (so a delta is the tail), with the change counter of each.
        self.entries = {}
        self.mod = {}
        self.gone = {}  # gid -> change counter of its removal
        self.changes = 0
        self.full = None  # b",".join(entries) while nothing changed
        self.last_change = 0.0  # of a replica other than the active ones
        # The registrar's state.
        self.current = 0
        self.registered = False
        self.registered_once = False
        self.uid = None
        self.seq = 0
        self.base = 0  # The report the manager acknowledged; 0: send a full one.
        self.base_changes = 0
        self.last_ok = 0.0  # monotonic time of the last heartbeat answered 200
        self.conns = {}

    # -- the report --

    def encode(self, g):
        return (b'{"group_id":%d,"role":"%s","leader_id":%d,"term":%d,"commit":%d,'
                b'"next_offset":%d,"voters":[%s],"state":"ready","preferred_leader":%d}' % (
                    g.gid, b"leader" if g.leader == self.id else b"follower", g.leader, g.term,
                    g.commit, g.next_offset, b",".join(b"%d" % v for v in g.voters),
                    self.preferred.get(g.gid, g.leader)))

    def touch(self, g):
        self.changes += 1
        self.entries.pop(g.gid, None)
        self.entries[g.gid] = self.encode(g)
        self.mod[g.gid] = self.changes
        self.gone.pop(g.gid, None)
        self.full = None
        if g.gid not in self.sim.active:
            self.last_change = time.monotonic()

    def drop(self, gid):
        if self.entries.pop(gid, None) is None:
            return
        self.changes += 1
        del self.mod[gid]
        self.preferred.pop(gid, None)
        self.gone[gid] = self.changes
        self.full = None
        self.last_change = time.monotonic()

    def heartbeat_body(self):
        """(body, seq, change counter it covers, replicas listed)."""
        self.seq += 1
        tail = [DISK]
        if self.uid is not None:
            tail.append(b'"cluster_uid":"%s"' % self.uid.encode())
        if self.sim.args.report == "delta" and self.base != 0:
            listed = []
            for gid in reversed(self.entries):
                if self.mod[gid] <= self.base_changes:
                    break
                listed.append(self.entries[gid])
            gone = [b"%d" % g for g, c in self.gone.items() if c > self.base_changes]
            tail.append(b'"gone":[%s]' % b",".join(gone))
            tail.append(b'"report":{"seq":%d,"base":%d}' % (self.seq, self.base))
            replicas = b",".join(listed)
            n = len(listed)
        else:
            if self.full is None:
                self.full = b",".join(self.entries.values())
            replicas = self.full
            n = len(self.entries)
            if self.sim.args.report == "delta":
                tail.append(b'"report":{"seq":%d,"base":0}' % self.seq)
        body = b'{"replicas":[' + replicas + b"]," + b",".join(tail) + b"}"
        return body, self.seq, self.changes, n

    def acknowledged(self, seq, changes, answer):
        """A heartbeat was answered 200: its report is the base of the next
        delta unless the manager asked for a full one."""
        if self.sim.args.report != "delta":
            return
        if answer.get("report") == "full":
            self.base = 0
            self.sim.stats["full_asked"] += 1
            return
        self.base, self.base_changes = seq, changes
        for gid in [g for g, c in self.gone.items() if c <= changes]:
            del self.gone[gid]

    # -- the registrar (broker/registrar.c) --

    def conn(self):
        addr = self.sim.manager_http[self.sim.manager_ids[self.current]]
        c = self.conns.get(addr)
        if c is None:
            c = self.conns[addr] = HttpConn(addr)
        return c

    async def post(self, path, body, timeout):
        auth = rqsign.sign("POST", path, body, secret=SECRET, label=rqkeys.HTTP_B2M,
                           sender=self.sender)
        status, headers, rbody = await self.conn().request(
            "POST", path, body, {rqsign.HEADER: auth}, timeout)
        try:
            obj = json.loads(rbody) if rbody else {}
        except ValueError:
            obj = {}
        return status, headers, obj if isinstance(obj, dict) else {}

    def bind(self, obj):
        uid = obj.get("cluster_uid")
        if isinstance(uid, str) and self.uid is None:
            self.uid = uid
        return uid is None or uid == self.uid

    def next_manager(self):
        self.current = (self.current + 1) % len(self.sim.manager_ids)

    async def register(self):
        """True once registered; else the seconds to wait (Retry-After)."""
        body = {"id": self.id, "raft_addr": self.raft_addr, "http_addr": self.http_addr}
        if not self.registered_once and not self.entries:
            body["fresh"] = True
        if self.uid is not None:
            body["cluster_uid"] = self.uid
        try:
            status, headers, obj = await self.post("/internal/brokers/register",
                                                   json.dumps(body).encode(), REGISTER_TIMEOUT_S)
        except (OSError, asyncio.TimeoutError, asyncio.IncompleteReadError) as e:
            self.sim.note("register", "%s" % (type(e).__name__))
            return 0.0
        if status == 200 and self.bind(obj):
            self.registered = self.registered_once = True
            self.base = 0  # A manager that forgot us holds no report of ours.
            self.sim.stats["registrations"] += 1
            return True
        self.sim.note("register", "HTTP %d %s" % (status, obj.get("message", "")[:80]))
        try:
            return float(headers.get("retry-after", "0"))
        except ValueError:
            return 0.0

    async def heartbeat(self):
        full = self.sim.args.report == "delta" and self.base == 0
        body, seq, changes, n = self.heartbeat_body()
        path = "/internal/brokers/%d/heartbeat" % self.id
        sim = self.sim
        t0 = time.monotonic()
        try:
            status, _, obj = await self.post(path, body, FULL_REPORT_S if full else HEARTBEAT_S)
        except asyncio.TimeoutError:
            sim.hb.append((t0, None, "timeout"))
            return None
        except (OSError, asyncio.IncompleteReadError) as e:
            sim.hb.append((t0, None, type(e).__name__))
            return None
        t1 = time.monotonic()
        sim.hb.append((t0, t1 - t0, status))
        sim.stats["hb_bytes"] += len(body)
        sim.stats["hb_listed"] += n
        if status == 200:
            if not self.bind(obj):
                sim.note("heartbeat", "answer names cluster %s, bound to %s"
                         % (obj.get("cluster_uid"), self.uid))
                return None
            self.last_ok = t1
            self.acknowledged(seq, changes, obj)
        return status

    async def run(self):
        """The registrar's loop: register (with backoff), then heartbeat."""
        await asyncio.sleep(random.uniform(0, HEARTBEAT_S))
        backoff = 0.0
        fails = 0
        n = len(self.sim.manager_ids)
        while not self.sim.stopping:
            if not self.registered:
                r = await self.register()
                if r is True:
                    backoff = 0.0
                    fails = 0
                    continue
                backoff = RETRY_S if backoff == 0 else min(BACKOFF_MAX_S, backoff * 2)
                self.next_manager()
                await asyncio.sleep(max(backoff, min(r, BACKOFF_MAX_S)))
                continue
            status = await self.heartbeat()
            if status == 200:
                fails = 0
                await asyncio.sleep(HEARTBEAT_S)
            elif status == 404:
                self.registered = False
                fails = 0
            else:
                if status is not None:
                    self.sim.note("heartbeat", "HTTP %d" % status)
                self.next_manager()
                fails += 1
                await asyncio.sleep(RETRY_S if fails % n != 0 else HEARTBEAT_S)

    # -- the managers' calls (broker/api.c) --

    def host(self, g, preferred):
        """Makes this broker hold a replica of @g."""
        g.hosts.add(self.id)
        self.preferred[g.gid] = preferred if preferred else g.leader
        self.touch(g)

    def handle(self, method, path, headers, body):
        """(status, JSON object) for one call; None for an unknown route."""
        uid = headers.get("x-raftq-cluster")
        if uid is not None and self.uid is not None and uid.lower() != self.uid.lower():
            self.sim.stats["refused_foreign"] += 1
            return 409, fail("this broker belongs to cluster %s, not to the caller's cluster %s"
                             % (self.uid, uid))
        for m, rx, name in ROUTES:
            if m == method:
                match = rx.match(path)
                if match:
                    self.sim.calls[name] += 1
                    return getattr(self, "api_" + name)(body, *[int(x) for x in match.groups()])
        return None

    def replica(self, gid):
        g = self.sim.groups.get(gid)
        return g if g is not None and self.id in g.hosts else None

    def api_create(self, body, rebuild_gid=None):
        try:
            d = json.loads(body)
            gid = int(rebuild_gid if rebuild_gid is not None else d["group_id"])
            members = [int(m["id"]) for m in d["members"]]
            topic, partition = d["topic"], int(d["partition_id"])
        except (ValueError, KeyError, TypeError) as e:
            return 400, fail("bad replica: %s" % e)
        if self.id not in members:
            return 400, fail("this broker (%d) is not among the members" % self.id)
        preferred = int(d.get("preferred_leader") or 0)
        sim = self.sim
        g = sim.groups.get(gid)
        if g is None:
            # A new group bootstraps with the members given; a replica joining
            # an existing group (bootstrap false) reports its voters.
            leader = preferred if preferred in members else members[gid % len(members)]
            g = sim.groups[gid] = Group(gid, topic, partition, members, leader)
            sim.mark_active(g)
        existed = self.id in g.hosts
        if rebuild_gid is not None:
            # An open replica is left alone; a missing one is created empty.
            if not existed:
                self.host(g, preferred)
            return 200, ok(rebuilt=not existed, moved_to=None)
        if existed and preferred == 0:
            return 200, ok(group_id=gid, created=False)
        self.host(g, preferred)
        if not existed:
            sim.created_by_managers += 1
        return 200, ok(group_id=gid, created=not existed)

    def api_rebuild(self, body, gid):
        return self.api_create(body, rebuild_gid=gid)

    def api_list(self, body):
        out = []
        for gid in self.entries:
            g = self.sim.groups[gid]
            out.append({"group_id": gid, "topic": g.topic, "partition_id": g.partition,
                        "role": "leader" if g.leader == self.id else "follower",
                        "term": g.term, "leader_id": g.leader, "ready": g.leader == self.id,
                        "commit": g.commit, "applied": g.commit, "first_offset": 0,
                        "next_offset": g.next_offset, "state": "ready", "voters": g.voters,
                        "preferred_leader": self.preferred.get(gid, g.leader)})
        return 200, ok(replicas=out)

    def api_delete(self, body, gid):
        g = self.replica(gid)
        if g is None:
            return 404, fail("no replica of group %d here" % gid)
        g.hosts.discard(self.id)
        self.drop(gid)
        if not g.hosts:
            del self.sim.groups[gid]
            self.sim.active.discard(gid)
        return 200, ok()

    def api_preferred(self, body, gid):
        g = self.replica(gid)
        if g is None:
            return 404, fail("no replica of group %d here" % gid)
        try:
            to = int(json.loads(body)["broker_id"])
        except (ValueError, KeyError, TypeError):
            return 400, fail("'broker_id' must be a broker id")
        self.preferred[gid] = to
        # The leader hands over to the broker it is told to prefer.
        if g.leader == self.id and to != self.id and to in g.voters:
            self.sim.move_leader(g, to)
        else:
            self.touch(g)
        return 200, ok(preferred_leader=to)

    def led(self, gid):
        """(the replica of @gid this broker leads, None), or (None, the
        answer refusing the call: 404 without one, 421 not leading it)."""
        g = self.replica(gid)
        if g is None:
            return None, (404, fail("no replica of group %d here" % gid))
        if g.leader != self.id:
            return None, (421, fail("broker %d does not lead group %d" % (self.id, gid)))
        return g, None

    def api_transfer(self, body, gid):
        g, refused = self.led(gid)
        if refused:
            return refused
        try:
            to = int(json.loads(body or b"{}").get("to", 0))
        except (ValueError, TypeError, AttributeError):
            return 400, fail("'to' must be a member id")
        others = [v for v in g.voters if v != self.id]
        self.sim.move_leader(g, to if to in others else others[0])
        return 200, ok()

    def api_member_add(self, body, gid):
        g, refused = self.led(gid)
        if refused:
            return refused
        try:
            new = int(json.loads(body)["id"])
        except (ValueError, KeyError, TypeError):
            return 400, fail("need 'id'")
        if new not in g.voters:
            g.voters.append(new)
            self.sim.changed(g)
        return 200, ok(voters=g.voters)

    def api_member_remove(self, body, gid, member):
        g, refused = self.led(gid)
        if refused:
            return refused
        if member in g.voters:
            if len(g.voters) <= 2:
                return 409, fail("that would leave fewer than 2 voters")
            g.voters.remove(member)
            self.sim.changed(g)
        return 200, ok(voters=g.voters)

    def api_health(self, body, *_):
        return 200, ok()


ROUTES = [(m, re.compile(rx), name) for m, rx, name in [
    ("POST", r"^/internal/replicas$", "create"),
    ("GET", r"^/internal/replicas$", "list"),
    ("DELETE", r"^/internal/replicas/(\d+)$", "delete"),
    ("POST", r"^/internal/replicas/(\d+)/preferred$", "preferred"),
    ("POST", r"^/internal/replicas/(\d+)/transfer$", "transfer"),
    ("POST", r"^/internal/replicas/(\d+)/members$", "member_add"),
    ("DELETE", r"^/internal/replicas/(\d+)/members/(\d+)$", "member_remove"),
    ("POST", r"^/internal/replicas/(\d+)/rebuild$", "rebuild"),
    ("GET", r"^/(?:healthz|readyz)$", "health"),
]]


def ok(**kw):
    return dict(status="success", **kw)


def fail(msg):
    return {"status": "failure", "message": msg}


# ---- Managers -----------------------------------------------------------------


class Manager:
    """A manager process and what /proc says of it."""

    def __init__(self, mid, argv, data, log_path):
        self.id, self.argv, self.data, self.log_path = mid, argv, data, log_path
        self.proc = None

    def start(self):
        with open(self.log_path, "ab") as f:
            f.write(("==== %s\n" % " ".join(self.argv)).encode())
            self.proc = subprocess.Popen(self.argv, stdin=subprocess.DEVNULL, stdout=f,
                                         stderr=f, preexec_fn=harness._die_with_parent)

    def running(self):
        return self.proc is not None and self.proc.poll() is None

    def cpu_s(self):
        """utime + stime in seconds."""
        with open("/proc/%d/stat" % self.proc.pid) as f:
            fields = f.read().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / CLK_TCK

    def memory_mib(self):
        """(VmRSS, VmHWM) in MiB."""
        out = {}
        with open("/proc/%d/status" % self.proc.pid) as f:
            for line in f:
                if line.startswith(("VmRSS:", "VmHWM:")):
                    out[line.split(":")[0]] = int(line.split()[1]) / 1024.0
        return out.get("VmRSS", 0.0), out.get("VmHWM", 0.0)

    def db_mib(self):
        """meta.db with its WAL (manager/mstore.c), in MiB."""
        total = 0
        for suffix in ("", "-wal"):
            try:
                total += os.path.getsize(os.path.join(self.data, "meta.db" + suffix))
            except OSError:
                pass
        return total / 1048576.0

    def kill(self):
        if self.running():
            self.proc.send_signal(signal.SIGKILL)
            self.proc.wait(10)

    def stop(self):
        if self.running():
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(15)
            except subprocess.TimeoutExpired:
                self.kill()


# Label values may hold braces: route="/internal/brokers/{id}/heartbeat".
METRIC_RE = re.compile(r"^([a-zA-Z_:][a-zA-Z0-9_:]*)(\{.*\})? (\S+)$")
# The counters whose rates the table shows: (name, label filter, row title).
RATE_METRICS = [
    ("raftq_http_requests_total", 'route="/internal/brokers/{id}/heartbeat"',
     "heartbeats handled /s"),
    ("raftq_http_request_duration_seconds_sum", 'route="/internal/brokers/{id}/heartbeat"',
     "heartbeat requests in flight (mean)"),
    ("raftq_manager_forwarded_internal_total", "", "internal requests forwarded /s"),
    ("raftq_manager_proposals_total", "", "proposals /s"),
    ("raftq_manager_read_barriers_total", "", "read barriers /s"),
    ("raftq_raft_applied_index", 'group="meta"', "Raft entries applied /s"),
]
GAUGES = [
    ("raftq_manager_routes", "", "routes in cache"),
    ("raftq_partitions", "", "partitions in store"),
    ("raftq_http_connections", "", "HTTP connections open"),
]


def metric_sums(text):
    """{(name, labels text): value} of a Prometheus text page."""
    out = {}
    for line in text.splitlines():
        m = METRIC_RE.match(line)
        if m:
            try:
                out[(m.group(1), m.group(2) or "")] = float(m.group(3))
            except ValueError:
                pass
    return out


def metric_value(sums, name, want):
    total, seen = 0.0, False
    for (n, labels), v in sums.items():
        if n == name and want in labels:
            total += v
            seen = True
    return total if seen else None


# ---- The simulation -----------------------------------------------------------


def take_ports(n):
    """@n ports of PORT_LO-PORT_HI that are free now."""
    out = []
    for p in range(PORT_LO, PORT_HI + 1):
        s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        try:
            s.bind(("127.0.0.1", p))
            out.append(p)
        except OSError:
            pass
        finally:
            s.close()
        if len(out) == n:
            return out
    raise SystemExit("scale_sim: fewer than %d free ports in %d-%d" % (n, PORT_LO, PORT_HI))


class Sim:
    def __init__(self, args):
        self.args = args
        self.stopping = False
        self.groups = {}
        self.active = set()
        self.active_every = int(round(1.0 / args.active)) if args.active > 0 else 0
        self.brokers = {}
        self.servers = []
        self.calls = collections.Counter()
        self.unknown = collections.Counter()
        self.notes = collections.Counter()
        self.stats = collections.Counter()
        self.hb = []  # (sent at, round trip or None, status or error)
        self.created_by_managers = 0
        self.lag = []  # (at, event loop lag in s)
        self.pool = concurrent.futures.ThreadPoolExecutor(max_workers=8)
        self.rows = []  # The table: (section, title, values, is a heading)
        self.topics = []  # (name, partitions)
        self.perf_reports = []
        self.metrics_cost = {}  # manager id -> (seconds, bytes) of its last GET /metrics
        self.failure = None

    # -- bookkeeping --

    def note(self, what, why):
        self.notes["%s: %s" % (what, why)] += 1

    def mark_active(self, g):
        if self.active_every and g.gid % self.active_every == 0:
            self.active.add(g.gid)

    def changed(self, g):
        for b in g.hosts:
            self.brokers[b].touch(g)

    def move_leader(self, g, to):
        g.leader = to
        g.term += 1
        self.changed(g)

    def replicas_hosted(self):
        return sum(len(b.entries) for b in self.brokers.values())

    async def blocking(self, fn, *a, **kw):
        return await asyncio.get_running_loop().run_in_executor(self.pool, lambda: fn(*a, **kw))

    async def mcall(self, mid, method, path, body=None, timeout=30.0):
        """test_manager.call to manager @mid, off the event loop; (status,
        obj) or (None, None) when unreachable."""
        headers = ADMIN if path.startswith("/admin/") else None
        try:
            st, obj, _ = await self.blocking(call, self.manager_http[mid], method, path, body,
                                             timeout=timeout, headers=headers)
            return st, obj
        except Unreachable:
            return None, None

    async def timed_get(self, mid, path, headers=None, timeout=60.0):
        """Seconds for GET @path at manager @mid, the whole body read, and
        its status and length."""
        def get():
            host, port = self.manager_http[mid].rsplit(":", 1)
            conn = http.client.HTTPConnection(host, int(port), timeout=timeout)
            try:
                t0 = time.monotonic()
                conn.request("GET", path, headers=headers or {})
                resp = conn.getresponse()
                body = resp.read()
                return time.monotonic() - t0, resp.status, body
            finally:
                conn.close()
        return await self.blocking(get)

    # -- the simulated brokers' servers --

    async def serve(self, broker, reader, writer):
        try:
            while True:
                try:
                    raw = await reader.readuntil(b"\r\n\r\n")
                except (asyncio.IncompleteReadError, ConnectionError):
                    return
                line, headers = parse_head(raw)
                method, target = line.split()[0], line.split()[1]
                if headers.get("expect", "").lower() == "100-continue":
                    writer.write(b"HTTP/1.1 100 Continue\r\n\r\n")
                body = await read_body(reader, headers)
                path = target.split("?", 1)[0]
                answer = broker.handle(method, path, headers, body)
                if answer is None:
                    self.unknown["%s %s" % (method, re.sub(r"/\d+", "/N", path))] += 1
                    log("broker %d: unknown route %s %s", broker.id, method, path)
                    answer = (404, fail("no route %s %s in the simulated broker" % (method, path)))
                status, obj = answer
                payload = json.dumps(obj).encode()
                writer.write(b"HTTP/1.1 %d %s\r\nContent-Type: application/json\r\n"
                             b"Content-Length: %d\r\n\r\n%s" % (
                                 status, REASONS.get(status, "Status").encode(), len(payload),
                                 payload))
                await writer.drain()
                if headers.get("connection", "").lower() == "close":
                    return
        except (ConnectionError, asyncio.IncompleteReadError):
            pass
        except asyncio.CancelledError:
            pass  # Shutting down: asyncio.run cancels what is left.
        finally:
            writer.close()

    # -- loops --

    async def produce_loop(self):
        """The active partitions' commit and next offset move every second."""
        while not self.stopping:
            await asyncio.sleep(1.0)
            for gid in list(self.active):
                g = self.groups.get(gid)
                if g is not None:
                    g.commit += 10
                    g.next_offset += 10
                    self.changed(g)

    async def lag_loop(self):
        while not self.stopping:
            t = time.monotonic()
            await asyncio.sleep(0.1)
            self.lag.append((t, time.monotonic() - t - 0.1))

    # -- phases --

    async def start(self):
        a = self.args
        nm, nb = a.managers, a.brokers
        ports = take_ports(2 * nm + 2 * nb)
        self.manager_ids = list(range(1, nm + 1))
        m_raft = {i: "127.0.0.1:%d" % ports[i - 1] for i in self.manager_ids}
        self.manager_http = {i: "127.0.0.1:%d" % ports[nm + i - 1] for i in self.manager_ids}
        for k in range(nb):
            bid = k + 1
            http_addr = "127.0.0.1:%d" % ports[2 * nm + k]
            raft_addr = "127.0.0.1:%d" % ports[2 * nm + nb + k]  # Never listened on.
            b = self.brokers[bid] = Broker(self, bid, http_addr, raft_addr)
            self.servers.append(await asyncio.start_server(
                lambda r, w, b=b: self.serve(b, r, w), "127.0.0.1", int(http_addr.rsplit(":")[1]),
                limit=STREAM_LIMIT, backlog=512))
        peers = ",".join("%d=%s" % (i, m_raft[i]) for i in self.manager_ids)
        binary = os.path.join(a.build, "manager")
        self.managers = {}
        for i in self.manager_ids:
            data = os.path.join(a.out, "manager%d" % i)
            argv = [binary, "--id", str(i), "--peers", peers, "--http-addr", self.manager_http[i],
                    "--data", data, "--cluster-secret", SECRET, "--log-level", "info",
                    "--admin-token", ADMIN_TOKEN] + a.manager_args.split()
            self.managers[i] = Manager(i, argv, data, os.path.join(a.out, "manager%d.log" % i))
            self.managers[i].start()
        log("managers %s on %s; %d simulated brokers on %s..%s",
            ",".join(map(str, self.manager_ids)),
            " ".join(self.manager_http[i] for i in self.manager_ids), nb,
            self.brokers[1].http_addr, self.brokers[nb].http_addr)
        self.leader = await self.wait_leader(60)
        log("manager %d leads", self.leader)
        self.tasks = [asyncio.ensure_future(b.run()) for b in self.brokers.values()]
        self.tasks.append(asyncio.ensure_future(self.produce_loop()))
        self.tasks.append(asyncio.ensure_future(self.lag_loop()))
        t0 = time.monotonic()
        await self.wait_until(self.all_alive, 120, "every broker ALIVE", 1.0)
        log("%d brokers ALIVE after %.1f s", nb, time.monotonic() - t0)

    async def wait_until(self, pred, timeout, what, interval=0.5):
        deadline = time.monotonic() + timeout
        while True:
            v = await pred()
            if v:
                return v
            if time.monotonic() > deadline:
                raise RuntimeError("timed out after %d s waiting for %s" % (timeout, what))
            await asyncio.sleep(interval)

    async def leader_now(self, among=None):
        """The manager every running one (or one of @among) names leader."""
        seen = set()
        for i in among or [i for i, m in self.managers.items() if m.running()]:
            st, obj = await self.mcall(i, "GET", "/admin/managers", timeout=3)
            if st != 200 or obj.get("leader") is None:
                return None
            seen.add(obj["leader"])
        return seen.pop() if len(seen) == 1 else None

    async def wait_leader(self, timeout, exclude=()):
        async def pred():
            lead = await self.leader_now()
            return lead if lead is not None and lead not in exclude else None
        return await self.wait_until(pred, timeout, "a manager leader", 0.1)

    async def all_alive(self):
        st, obj = await self.mcall(self.leader, "GET", "/admin/brokers", timeout=30)
        if st != 200:
            return False
        alive = {b["id"] for b in obj["brokers"] if b["state"] == "alive"}
        return alive >= set(self.brokers)

    async def create_topics(self):
        a = self.args
        per = -(-a.partitions // a.topics)
        self.topics = []
        left = a.partitions
        for t in range(a.topics):
            n = min(per, left)
            if n <= 0:
                break
            self.topics.append(("scale-%03d" % t, n))
            left -= n
        times = []
        t0 = time.monotonic()
        retries = collections.Counter()
        for k, (name, n) in enumerate(self.topics):
            t1 = time.monotonic()
            tried = False
            while True:
                st, obj = await self.mcall(self.leader, "POST", "/topics",
                                           {"topic_name": name, "number_of_partitions": n},
                                           timeout=60)
                # A retry finds the topic an earlier attempt committed.
                if st == 200 or (st == 409 and tried):
                    break
                tried = True
                retries["%s %s" % (st, (obj or {}).get("message", "")[:60])] += 1
                if time.monotonic() - t1 > TOPIC_DEADLINE_S:
                    raise RuntimeError(
                        "topic %s (%d of %d) not created within %d s; answers: %s" % (
                            name, k + 1, len(self.topics), TOPIC_DEADLINE_S, "; ".join(
                                "%s x%d" % kv for kv in retries.most_common(4))))
                await asyncio.sleep(1)
            times.append(time.monotonic() - t1)
        self.topics_s = time.monotonic() - t0
        self.row("placement", "topics created (POST /topics)", "%d topics in %.1f s; each p50 %s, "
                 "max %s%s" % (len(self.topics), self.topics_s, ms(pct(times, 50)), ms(max(times)),
                               "; retried after: " + "; ".join("%s x%d" % kv for kv in
                                                               retries.most_common(3))
                               if retries else ""))
        log("%d topics created in %.1f s", len(self.topics), self.topics_s)

    async def place(self):
        """Lets the managers create every replica, or adopts the placement
        once that is projected to take longer than --create-budget-s."""
        a = self.args
        want = a.partitions * RF
        t0 = time.monotonic()
        perf_started = False
        samples = [(t0, self.replicas_hosted())]
        adopt = a.placement == "adopt"
        while not adopt:
            await asyncio.sleep(5)
            now, have = time.monotonic(), self.replicas_hosted()
            samples.append((now, have))
            if have >= want:
                break
            window = [s for s in samples if s[0] >= now - 30]
            rate = (window[-1][1] - window[0][1]) / max(1e-9, window[-1][0] - window[0][0])
            eta = (want - have) / rate if rate > 0 else float("inf")
            log("replicas created by the managers: %d of %d (%.0f/s, %s to go)", have, want,
                rate, "%.0f s" % eta if eta != float("inf") else "no progress")
            if not perf_started and a.perf_s > 0 and now - t0 >= 10:
                perf_started = True
                await self.profile("the managers create replicas", "perf-create")
            if a.placement == "auto" and now - t0 >= a.create_probe_s and \
                    now - t0 + eta > a.create_budget_s:
                adopt = True
        created_s = time.monotonic() - t0
        by_managers = self.created_by_managers
        rate = by_managers / created_s if created_s > 0 else 0
        if not adopt:
            self.placed_by = "created by the managers' calls in %.1f s (%.0f replicas/s)" % (
                created_s, rate)
        elif a.placement == "adopt":
            t1 = time.monotonic()
            adopted = await self.adopt()
            self.placed_by = ("ADOPTED (--placement adopt): %d replicas adopted from GET "
                              "/admin/topics in %.1f s (the managers had created %d)" % (
                                  adopted, time.monotonic() - t1, by_managers))
        else:
            t1 = time.monotonic()
            adopted = await self.adopt()
            self.placed_by = ("ADOPTED: the managers created %d of %d replicas in %.0f s "
                              "(%.1f/s, all of them would take about %.0f min); the brokers "
                              "adopted the other %d from GET /admin/topics in %.1f s" % (
                                  by_managers, want, created_s, rate,
                                  want / rate / 60 if rate > 0 else float("inf"), adopted,
                                  time.monotonic() - t1))
        self.row("placement", "replicas", self.placed_by)
        log("%s", self.placed_by)

    async def adopt(self):
        adopted = 0
        for name, _ in self.topics:
            st, obj = await self.mcall(self.leader, "GET", "/admin/topics/" + name, timeout=120)
            if st != 200:
                raise RuntimeError("GET /admin/topics/%s: %s %r" % (name, st, obj))
            for p in obj["partitions"]:
                gid, reps = p["group_id"], p["replicas"]
                g = self.groups.get(gid)
                if g is None:
                    g = self.groups[gid] = Group(gid, name, p["partition_id"],
                                                 member_order(gid, reps), reps[0])
                    self.mark_active(g)
                for bid in reps:
                    if bid not in g.hosts:
                        self.brokers[bid].host(g, reps[0])
                        adopted += 1
        return adopted

    async def settle(self):
        """Until every replica is placed and every broker's last change has
        been reported in a heartbeat answered 200 (the active partitions
        change all the time and are left out)."""
        want = self.args.partitions * RF

        async def settled():
            return self.replicas_hosted() >= want and \
                all(b.last_ok > b.last_change for b in self.brokers.values())
        t0 = time.monotonic()
        await self.wait_until(settled, 600, "every replica reported", 1.0)
        await asyncio.sleep(5)
        log("steady state after %.1f s", time.monotonic() - t0)

    # -- measurements --

    def proc_sample(self):
        out = {}
        for i, m in self.managers.items():
            if m.running():
                out[i] = (time.monotonic(), m.cpu_s())
        return out

    async def metrics(self):
        out = {}
        for i, m in self.managers.items():
            if not m.running():
                continue
            try:
                dt, st, body = await self.timed_get(i, "/metrics", timeout=30)
            except OSError:
                continue
            if st == 200:
                out[i] = metric_sums(body.decode("utf-8", "replace"))
                self.metrics_cost[i] = (dt, len(body))
        return out

    def hb_stats(self, t0, t1):
        rtts = [r for t, r, s in self.hb if t0 <= t < t1 and s == 200]
        other = collections.Counter(str(s) for t, r, s in self.hb if t0 <= t < t1 and s != 200)
        return rtts, other

    async def measure(self, section, seconds, ids=None):
        """Samples the managers and the heartbeats for @seconds."""
        ids = ids or [i for i, m in self.managers.items() if m.running()]
        m0 = await self.metrics()
        p0 = self.proc_sample()
        r0 = resource.getrusage(resource.RUSAGE_SELF)
        s0 = dict(self.stats)
        t0 = time.monotonic()
        await asyncio.sleep(seconds)
        t1 = time.monotonic()
        p1 = self.proc_sample()
        r1 = resource.getrusage(resource.RUSAGE_SELF)
        m1 = await self.metrics()
        cols = [i for i in ids if i in p0 and i in p1]
        self.row(section, "manager", ["%d%s" % (i, " (leader)" if i == self.leader else "")
                                      for i in cols], head=True)
        self.row(section, "CPU (share of one core)",
                 ["%.2f" % ((p1[i][1] - p0[i][1]) / (p1[i][0] - p0[i][0])) for i in cols])
        mem = {i: self.managers[i].memory_mib() for i in cols}
        self.row(section, "RSS MiB (peak)", ["%.0f (%.0f)" % mem[i] for i in cols])
        self.row(section, "meta.db + WAL MiB", ["%.1f" % self.managers[i].db_mib() for i in cols])
        for name, want, title in RATE_METRICS:
            vals = []
            for i in cols:
                a = metric_value(m0.get(i, {}), name, want)
                b = metric_value(m1.get(i, {}), name, want)
                vals.append("-" if a is None or b is None else "%.1f" % ((b - a) / (t1 - t0)))
            self.row(section, title, vals)
        # Each round's mean time: the loop serves nothing else meanwhile.
        for kind in ("reconcile", "repair", "traffic"):
            vals = []
            for i in cols:
                d = [metric_value(m.get(i, {}), "raftq_manager_%s%s" % (kind, suffix), "")
                     for m in (m0, m1) for suffix in ("_round_seconds_total", "_rounds_total")]
                if None in d or d[3] == d[1]:
                    vals.append("-")
                else:
                    vals.append("%.1f ms x %.1f/s" % (1000.0 * (d[2] - d[0]) / (d[3] - d[1]),
                                                       (d[3] - d[1]) / (t1 - t0)))
            self.row(section, "%s round (mean)" % kind, vals)
        self.row(section, "GET /metrics: ms, KiB", ["%s, %.0f" % (
            ms(self.metrics_cost[i][0]), self.metrics_cost[i][1] / 1024.0)
            if i in self.metrics_cost else "-" for i in cols])
        for name, want, title in GAUGES:
            vals = []
            for i in cols:
                v = metric_value(m1.get(i, {}), name, want)
                vals.append("-" if v is None else "%.0f" % v)
            self.row(section, title, vals)
        rtts, other = self.hb_stats(t0, t1)
        self.row(section, "heartbeat round trip (brokers' view)",
                 "p50 %s, p99 %s, max %s; %d answered 200 (%.1f/s)%s" % (
                     ms(pct(rtts, 50)), ms(pct(rtts, 99)), ms(max(rtts) if rtts else None),
                     len(rtts), len(rtts) / (t1 - t0),
                     "; not 200: " + ", ".join("%s x%d" % kv for kv in sorted(other.items()))
                     if other else ""))
        sent = self.stats["hb_bytes"] - s0.get("hb_bytes", 0)
        listed = self.stats["hb_listed"] - s0.get("hb_listed", 0)
        self.row(section, "heartbeat bodies sent",
                 "%.1f MB/s, %.0f replica entries/s%s" % (
                     sent / (t1 - t0) / 1e6, listed / (t1 - t0),
                     "; full reports asked %d" % (self.stats["full_asked"] -
                                                  s0.get("full_asked", 0))
                     if self.args.report == "delta" else ""))
        lags = [v for t, v in self.lag if t0 <= t < t1]
        cpu = (r1.ru_utime + r1.ru_stime - r0.ru_utime - r0.ru_stime) / (t1 - t0)
        self.row(section, "simulator", "CPU %.2f of one core; event loop lag p99 %s, max %s" % (
            cpu, ms(pct(lags, 99)), ms(max(lags) if lags else None)))
        return t0, t1

    async def perf_report(self, data, *opts):
        rep = await asyncio.create_subprocess_exec(
            "perf", "report", "-i", data, "--stdio", *opts,
            stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.DEVNULL)
        out, _ = await rep.communicate()
        return out

    async def profile(self, what, name, mids=None):
        """perf record of the leader (or of managers @mids) for --perf-s. The
        report goes to OUT/@name.txt: self time by symbol, time including
        callees by symbol, and the call graph; the table gets the top of the
        first two (raftq's own functions only in the second: they say which
        step the time goes to)."""
        if self.args.perf_s <= 0 or shutil.which("perf") is None:
            return
        mids = [i for i in (mids or [self.leader]) if self.managers[i].running()]
        data = os.path.join(self.args.out, name + ".data")
        txt = os.path.join(self.args.out, name + ".txt")
        rec = await asyncio.create_subprocess_exec(
            # The release build keeps no frame pointers: unwind with DWARF.
            "perf", "record", "--call-graph", "dwarf", "-F", "199", "-p",
            ",".join(str(self.managers[i].proc.pid) for i in mids), "-o", data, "--",
            "sleep", str(self.args.perf_s),
            stdout=asyncio.subprocess.DEVNULL, stderr=asyncio.subprocess.DEVNULL)
        await rec.wait()
        sort = "pid,symbol" if len(mids) > 1 else "symbol"
        flat = await self.perf_report(data, "--no-children", "-g", "none", "--percent-limit",
                                      "0.5", "--sort", sort)
        incl = await self.perf_report(data, "--children", "-g", "none", "--percent-limit", "1",
                                      "--sort", sort)
        tree = await self.perf_report(data, "--children", "--percent-limit", "4", "--sort",
                                      sort, "-g", "graph,3,caller,function,percent",
                                      "--max-stack", "24")
        who = ", ".join("manager %d%s (pid %d)" % (i, " the leader" if i == self.leader else "",
                                                  self.managers[i].proc.pid) for i in mids)
        with open(txt, "wb") as f:
            f.write(("# %s while %s\n" % (who, what)).encode())
            f.write(flat + b"\n\n# including callees\n" + incl +
                    b"\n\n# with callers\n" + tree)
        top = ["self:"] + perf_top(flat, 12) + ["including callees (raftq's functions):"] + \
            perf_top(incl, 14, ours=True)
        self.perf_reports.append(("%s while %s" % (who, what), txt, top))
        log("perf of %s while %s: %s", who, what, txt)

    async def status_page(self):
        """GET /ui and the JSON calls of one poll of its script, a few times,
        on the leader and on a follower. Past 500 partitions a poll asks for
        the topics' counts (/admin/topics) and describes only the topics the
        reader opened (/admin/topics/{t}, timed one by one for the first
        PAGE_TOPICS topics); below, it describes every topic. Each topic shown
        (at most PAGE_SHOWN) has its traffic asked for once per sample
        interval (/admin/topics/{t}/traffic)."""
        follower = next(i for i in self.manager_ids if i != self.leader)
        paths = ["/ui", "/admin/managers", "/admin/brokers", "/admin/moves", "/admin/topics",
                 "/v1/groups"]
        every = sum(n for _, n in self.topics) <= 500
        some = [n for n, _ in self.topics][:PAGE_TOPICS]
        section = "status page"
        self.row(section, "call (ms: p50 / max of %d)" % self.args.page_repeats,
                 ["leader %d" % self.leader, "follower %d" % follower], head=True)

        async def get(mid, path):
            try:
                dt, st, _ = await self.timed_get(mid, path, ADMIN)
            except OSError as e:  # socket.timeout included
                self.note("status page", "%s: %s" % (path, type(e).__name__))
                return None
            if st != 200:
                self.note("status page", "%s answered %d" % (path, st))
            return dt

        async def poll(mid):
            t0 = time.monotonic()
            got = await asyncio.gather(*[get(mid, p) for p in paths[1:]],
                                       *[get(mid, "/admin/topics/" + n)
                                         for n, _ in (self.topics if every else [])])
            return time.monotonic() - t0 if None not in got else None

        rows = [(p, [p]) for p in paths]
        rows.append(("/admin/topics/{t}, each of %d%s" % (len(some), "" if every else
                                                         " (a topic opened)"),
                     ["/admin/topics/" + n for n in some]))
        rows.append(("/admin/topics/{t}/traffic, each of %d" % len(some),
                     ["/admin/topics/%s/traffic" % n for n in some]))
        rows.append(("one poll: the above, %s" % ("every topic described" if every
                                                  else "no topic open"), None))
        for title, targets in rows:
            vals = []
            for mid in (self.leader, follower):
                times = []
                for _ in range(self.args.page_repeats):
                    if targets is None:
                        times.append(await poll(mid))
                    else:
                        for t in targets:
                            times.append(await get(mid, t))
                done = [t for t in times if t is not None]
                vals.append("%s / %s%s" % (ms(pct(done, 50)), ms(max(done) if done else None),
                                           " (%d failed)" % (len(times) - len(done))
                                           if len(done) < len(times) else ""))
            self.row(section, title, vals)

        # The page left open on a follower, one topic opened: what it costs
        # the managers, polled as its script polls (1.5 s after each poll),
        # with the shown topics' traffic every third poll (the default
        # sample interval is 5 s).
        shown = [n for n, _ in self.topics][:PAGE_SHOWN]

        async def reader():
            k = 0
            while True:
                await poll(follower)
                if not every and some:
                    await get(follower, "/admin/topics/" + some[0])
                if k % 3 == 0:
                    await asyncio.gather(*[get(follower, "/admin/topics/%s/traffic" % n)
                                           for n in shown])
                k += 1
                await asyncio.sleep(1.5)
        task = asyncio.ensure_future(reader())
        try:
            await self.measure("status page open on manager %d, 20 s" % follower, 20)
        finally:
            task.cancel()

    async def failover(self):
        old = self.leader
        others = [i for i in self.manager_ids if i != old]
        log("SIGKILL to the leader, manager %d", old)
        t0 = time.monotonic()
        asked = self.stats["full_asked"]
        self.managers[old].kill()
        new = await self.wait_leader(120, exclude=(old,))
        elected = time.monotonic() - t0
        self.leader = new
        log("manager %d leads after %.1f s", new, elected)
        await self.wait_until(lambda: self.all_heard(t0), 300,
                              "every broker's heartbeat answered again", 0.2)
        answered = max(b.last_ok for b in self.brokers.values()) - t0
        log("every broker answered 200 again after %.1f s", answered)
        await self.wait_until(self.all_reported, 300,
                              "the new leader holding every broker's report", 0.2)
        reported = time.monotonic() - t0
        log("the new leader holds every broker's report after %.1f s", reported)
        section = "failover"
        self.row(section, "new leader elected after", "%.1f s (manager %d)" % (elected, new))
        self.row(section, "every broker's heartbeat answered 200 after", "%.1f s" % answered)
        self.row(section, "the new leader holds every broker's report after", "%.1f s%s" % (
            reported, "; full reports asked: %d" % (self.stats["full_asked"] - asked)
            if self.args.report == "delta" else ""))
        await self.measure("after failover, 20 s", 20, others)

    async def all_reported(self):
        """The leader holds a report of every broker's (GET /admin/brokers
        names a heartbeat age only for those)."""
        try:
            st, obj = await self.mcall(self.leader, "GET", "/admin/brokers", timeout=5)
        except (OSError, asyncio.TimeoutError):
            return False
        if st != 200:
            return False
        held = {b["id"] for b in obj["brokers"] if b.get("heartbeat_age_ms") is not None}
        return held >= set(self.brokers)

    async def all_heard(self, since):
        return all(b.last_ok > since for b in self.brokers.values())

    # -- the table --

    def save(self):
        """The table so far, in OUT/table.txt: a later phase may not end."""
        with open(os.path.join(self.args.out, "table.txt"), "w") as f:
            f.write(self.table())

    def row(self, section, title, values, head=False):
        self.rows.append((section, title, values if isinstance(values, list) else [values],
                          head))

    def table(self):
        a = self.args
        lines = ["raftq scale-sim: %d brokers, %d partitions (%d replicas, about %d per broker), "
                 "%d topics, report=%s, active=%g, managers from %s" % (
                     a.brokers, a.partitions, a.partitions * RF, a.partitions * RF // a.brokers,
                     len(self.topics), a.report, a.active, a.build)]
        if self.failure:
            lines.append("FAILED while " + self.failure)
        lines.append("manager elections (log lines 'leading the managers in term'): " +
                     self.elections())
        width = max([len(t) for _, t, _, _ in self.rows] + [40]) + 2
        section = None
        for sec, title, values, head in self.rows:
            if sec != section:
                lines.append("")
                lines.append("== %s" % sec)
                section = sec
            if len(values) > 1 or head:
                lines.append(title.ljust(width) + "".join(v.ljust(20) for v in values).rstrip())
            else:
                lines.append(title.ljust(width) + values[0])
        lines.append("")
        lags = [v for _, v in self.lag]
        lines.append("simulator event loop lag over the run: p99 %s, max %s" % (
            ms(pct(lags, 99)), ms(max(lags) if lags else None)))
        lines.append("manager calls to the simulated brokers: " + (", ".join(
            "%s %d" % kv for kv in sorted(self.calls.items())) or "none"))
        lines.append("unknown routes (answered 404): " + (", ".join(
            "%s x%d" % kv for kv in sorted(self.unknown.items())) or "none"))
        if self.notes:
            lines.append("failed requests of the simulated brokers: " + "; ".join(
                "%s x%d" % kv for kv in self.notes.most_common(8)))
        for what, txt, top in self.perf_reports:
            lines.append("")
            lines.append("perf, %s (%s):" % (what, txt))
            lines.extend("  " + ln.strip() for ln in top)
        lines.append("")
        lines.append("manager logs: warnings and errors, most frequent first")
        lines.extend(self.log_summary())
        return "\n".join(lines) + "\n"

    def elections(self):
        terms = []
        for m in getattr(self, "managers", {}).values():
            try:
                with open(m.log_path, errors="replace") as f:
                    terms += [int(t) for t in re.findall(r"leading the managers in term (\d+)",
                                                         f.read())]
            except OSError:
                pass
        return "%d, last term %d" % (len(terms), max(terms)) if terms else "none"

    def log_summary(self):
        counts = collections.Counter()
        for m in getattr(self, "managers", {}).values():
            try:
                with open(m.log_path, errors="replace") as f:
                    for line in f:
                        if re.search(r"\b(WARN|ERROR|warn|error)\b", line):
                            # "TIME LEVEL manager-N tag: message"; numbers
                            # vary, the kind of line is what counts.
                            text = line.strip().split(" ", 2)[-1]
                            key = re.sub(r"\d+", "N", text)[:150]
                            counts["manager%d: %s" % (m.id, key)] += 1
            except OSError:
                pass
        return ["  %6d  %s" % (n, k) for k, n in counts.most_common(12)] or ["  none"]

    # -- the run --

    async def run(self):
        a = self.args
        phase = "starting"
        try:
            await self.start()
            phase = "creating the topics"
            await self.create_topics()
            phase = "placing the replicas"
            await self.place()
            phase = "waiting for every replica to be reported"
            await self.settle()
            phase = "measuring"
            await self.measure("steady state, %d s" % a.measure_s, a.measure_s)
            self.save()
            await self.profile("in steady state", "perf-steady")
            phase = "timing the status page"
            await self.status_page()
            self.save()
            phase = "failing over"
            await self.failover()
        except Exception as e:
            self.failure = "%s: %s: %s" % (phase, type(e).__name__, e)
            log("FAILED while %s", self.failure)
            if hasattr(self, "managers"):
                await self.profile(phase + " (the run failed)", "perf-failed",
                                   [i for i, m in self.managers.items() if m.running()])
            raise
        finally:
            self.stopping = True
            for t in getattr(self, "tasks", []):
                t.cancel()
            for s in self.servers:
                s.close()
            for m in getattr(self, "managers", {}).values():
                m.stop()
        return self.table()


# Symbols of libraries and glue, left out of the summary of inclusive time.
NOT_OURS = re.compile(r"^(sqlite3|MHD|uv_|uv__|json_|curl|Curl|_|0x|rq_main$|main$|run_mhd$|"
                      r"on_access$|call_handler$|lookup$|row$|collect$|__libc|start_thread|clone)")


def perf_top(report, n, ours=False):
    """The first @n lines of a perf report sorted by symbol (and pid):
    "12.34%  [pid:manager] symbol"."""
    out = []
    for line in report.decode("utf-8", "replace").splitlines():
        m = re.match(r"^\s*([0-9.]+%)\s+(?:[0-9.]+%\s+)?(\d+:\S+\s+)?\[(.)\]\s+(\S+)", line)
        if not m or len(out) >= n or (ours and NOT_OURS.match(m.group(4))):
            continue
        out.append("%7s  %s%s%s" % (m.group(1), (m.group(2) or "").strip() + " " if m.group(2)
                                     else "", "[kernel] " if m.group(3) == "k" else "",
                                     m.group(4)))
    return out


def ms(seconds):
    return "-" if seconds is None else "%.0f ms" % (seconds * 1000) if seconds >= 0.01 \
        else "%.1f ms" % (seconds * 1000)


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--build", default="build", help="directory of the manager binary")
    ap.add_argument("--brokers", type=int, default=100)
    ap.add_argument("--partitions", type=int, default=100000)
    ap.add_argument("--topics", type=int, default=0,
                    help="default: as few as hold --partitions at %d each"
                    % MAX_PARTITIONS_PER_TOPIC)
    ap.add_argument("--managers", type=int, default=3)
    ap.add_argument("--report", choices=("full", "delta"), default="delta",
                    help="heartbeats with deltas against the last acknowledged report "
                    "(default), or full replica lists (for managers that know no deltas)")
    ap.add_argument("--active", type=float, default=0.01,
                    help="fraction of the partitions whose offsets move every second")
    ap.add_argument("--measure-s", type=float, default=60)
    ap.add_argument("--placement", choices=("auto", "create", "adopt"), default="auto",
                    help="replicas created by the managers' calls, adopted from the store, "
                    "or created until that looks too slow (auto)")
    ap.add_argument("--create-probe-s", type=float, default=60)
    ap.add_argument("--create-budget-s", type=float, default=600)
    ap.add_argument("--perf-s", type=float, default=10,
                    help="seconds of perf record on the leader (0: none)")
    ap.add_argument("--page-repeats", type=int, default=3)
    ap.add_argument("--manager-args", default="", help="more flags for every manager")
    ap.add_argument("--out", help="logs, perf reports and table.txt (default: a new temporary "
                    "directory)")
    a = ap.parse_args()
    if a.brokers < RF or a.partitions < 1:
        ap.error("need at least %d brokers and one partition" % RF)
    if a.topics <= 0:
        # As few topics as hold the partitions, or a few more that divide
        # them evenly: 100,000 partitions make 100 topics of 1,000.
        least = -(-a.partitions // MAX_PARTITIONS_PER_TOPIC)
        a.topics = next((t for t in range(least, least + least // 4 + 2)
                         if a.partitions % t == 0), least)
    if -(-a.partitions // a.topics) > MAX_PARTITIONS_PER_TOPIC:
        ap.error("--topics %d gives over %d partitions a topic" % (a.topics,
                                                                  MAX_PARTITIONS_PER_TOPIC))
    if not os.access(os.path.join(a.build, "manager"), os.X_OK):
        ap.error("no manager binary in %s (make all)" % a.build)
    a.build = os.path.abspath(a.build)
    temp = a.out is None
    a.out = os.path.abspath(a.out or tempfile.mkdtemp(prefix="raftq-scale-"))
    os.makedirs(a.out, exist_ok=True)
    log("output in %s", a.out)
    sim = Sim(a)
    try:
        text = asyncio.run(sim.run())
    except BaseException as e:
        print("scale_sim: FAILED: %s: %s (logs kept in %s)" % (type(e).__name__, e, a.out),
              file=sys.stderr)
        text = sim.table()
        print(text)
        with open(os.path.join(a.out, "table.txt"), "w") as f:
            f.write(text)
        return 1
    with open(os.path.join(a.out, "table.txt"), "w") as f:
        f.write(text)
    print()
    print(text)
    if temp:
        for i in sim.managers:
            shutil.rmtree(os.path.join(a.out, "manager%d" % i), ignore_errors=True)
    for name in os.listdir(a.out):
        if name.endswith(".data"):
            os.remove(os.path.join(a.out, name))  # perf data; the reports stay
    log("table in %s", os.path.join(a.out, "table.txt"))
    return 0


if __name__ == "__main__":
    sys.exit(main())

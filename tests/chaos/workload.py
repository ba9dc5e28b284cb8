"""The queue workloads of the fault-injection suite, and the history they write.

Every client operation is recorded in a History: an "invoke" when it is
sent, then exactly one completion: "ok" (acknowledged, with what the
answer said), "fail" (refused for certain: a 4xx that changes nothing) or
"info" (a timeout, a lost connection or a 5xx: the outcome is unknown, the
operation may or may not have taken effect). Checkers judge from the
history and the final reads alone.

Workloads (threads, until stopped):
- Producer: one producer id per topic (POST /producer/register), writing
  unique values "<process>:<n>" alternately one at a time (API.md section
  1, POST /producer/produce, never retried: a retry could legitimately
  append twice) and in batches (section 2, POST /v1/topics/{t}/records with
  producer_id and sequence, retried with the same sequence after an unknown
  outcome, so the brokers' deduplication must keep it from appending
  twice).
- QueueConsumer: GET /consumer/consume (section 1) with one consumer id. A
  5xx that says its offset cannot have moved ("offset_advanced": "no") is
  a "fail"; the answers' "skipped" ranges (retention) are recorded.
- BatchConsumer: reads records at its committed offsets (section 2) and
  commits the next offsets explicitly; after a commit with an unknown
  outcome it reads its offsets back (GET /v1/consumers/{id}/offsets).
- GroupMember: three members of one consumer group (section 2b) fetch,
  record what they processed, commit it, and join again when fenced off;
  they sample the group's committed offsets now and then.
Standard library only.
"""

import http.client
import json
import ssl
import threading
import time
import urllib.parse

from checker import consume_outcome

HTTP_TIMEOUT = 8.0


class Unreachable(Exception):
    """No answer: refused, reset or timed out."""


def call(addr, method, path, body=None, timeout=HTTP_TIMEOUT, query=None, headers=None,
         sign=None, tls=None):
    """One HTTP request; (status, parsed JSON body or None). @sign, a
    function (method, target, body) -> headers, signs it. With @tls (an
    ssl.SSLContext) it goes over HTTPS: a failed handshake or a refused
    certificate is Unreachable, like a refused connection; a server
    certificate that does not verify is the suite's own mistake and raises
    ssl.SSLCertVerificationError."""
    host, port = addr.rsplit(":", 1)
    if query:
        path += "?" + urllib.parse.urlencode(query)
    if tls is None:
        conn = http.client.HTTPConnection(host, int(port), timeout=timeout)
    else:
        conn = http.client.HTTPSConnection(host, int(port), timeout=timeout, context=tls)
    try:
        data = None if body is None else json.dumps(body).encode()
        hdr = {"Content-Type": "application/json"} if data is not None else {}
        if sign is not None:
            hdr.update(sign(method, path, data or b""))
        hdr.update(headers or {})
        conn.request(method, path, body=data, headers=hdr)
        resp = conn.getresponse()
        text = resp.read()
        try:
            obj = json.loads(text.decode("utf-8"))
        except ValueError:
            obj = None
        return resp.status, obj
    except ssl.SSLCertVerificationError:
        raise
    except (OSError, http.client.HTTPException) as e:
        raise Unreachable("%s %s %s: %s" % (addr, method, path, e)) from None
    finally:
        conn.close()


def outcome(st):
    """The completion type of an HTTP answer that is not a success."""
    return "fail" if 400 <= st < 500 else "info"


class History:
    """Every operation and nemesis event, in the order they happened."""

    def __init__(self):
        self.t0 = time.monotonic()
        self.lock = threading.Lock()
        self.ops = []

    def now(self):
        return round(time.monotonic() - self.t0, 3)

    def add(self, process, type_, f, **kw):
        op = {"t": self.now(), "process": process, "type": type_, "f": f}
        op.update(kw)
        with self.lock:
            op["index"] = len(self.ops)
            self.ops.append(op)
        return op

    def snapshot(self):
        with self.lock:
            return list(self.ops)

    def write(self, path):
        with open(path, "w") as f:
            for op in self.snapshot():
                f.write(json.dumps(op, sort_keys=True) + "\n")


class Worker:
    """A thread that runs step() until stopped; step() returns how long to
    wait before the next step (0 for none)."""

    def __init__(self, name, cluster, history, rng):
        self.name = name
        self.cluster = cluster
        self.history = history
        self.rng = rng
        self.stop_ev = threading.Event()
        self.thread = None
        self.error = None
        self.k = 0  # Index of the manager to use next.

    def manager(self):
        ids = self.cluster.manager_ids()
        return ids[self.k % len(ids)]

    def rotate(self):
        self.k += 1

    def start(self):
        self.thread = threading.Thread(target=self._run, name=self.name, daemon=True)
        self.thread.start()

    def _run(self):
        try:
            while not self.stop_ev.is_set():
                pause = self.step()
                if pause:
                    self.stop_ev.wait(pause)
        except Exception as e:  # Reported by the checker as a harness error.
            import traceback
            self.error = "%s: %s\n%s" % (type(e).__name__, e, traceback.format_exc())

    def stop(self):
        self.stop_ev.set()

    def join(self, timeout=60):
        if self.thread is not None:
            self.thread.join(timeout)

    def m_call(self, method, path, body=None, query=None, timeout=HTTP_TIMEOUT):
        """A request to this worker's current manager; rotates on no answer."""
        i = self.manager()
        try:
            return self.cluster.m_call(i, method, path, body, query=query, timeout=timeout)
        except Unreachable:
            self.rotate()
            raise


def register(cluster, kind, topic, deadline_s=60):
    """A producer or consumer id for @topic, asking every manager in turn
    until one answers (before any fault)."""
    deadline = time.monotonic() + deadline_s
    k = 0
    last = None
    while time.monotonic() < deadline:
        ids = cluster.manager_ids()
        i = ids[k % len(ids)]
        k += 1
        try:
            st, obj = cluster.m_call(i, "POST", "/%s/register" % kind, {"topic": topic})
        except Unreachable as e:
            last = str(e)
            time.sleep(0.2)
            continue
        if st == 200:
            return obj["%s_id" % kind]
        last = "%d %r" % (st, obj)
        time.sleep(0.2)
    raise RuntimeError("could not register a %s for %s: %s" % (kind, topic, last))


class Producer(Worker):
    """Unique values to random partitions of the main topics, one at a time
    and in batches, through one manager until it fails."""

    def __init__(self, name, cluster, history, rng, topics, k, partition=None, single_only=False,
                 pace=0.02):
        super().__init__(name, cluster, history, rng)
        self.topics = topics  # {name: number of partitions}
        self.k = k
        self.n = 0
        self.seq = 0
        self.pids = {}
        self.partition = partition  # (topic, p) to write to only, or None.
        self.single_only = single_only
        self.pace = pace

    def setup(self):
        for t in self.topics:
            self.pids[t] = register(self.cluster, "producer", t)

    def value(self):
        self.n += 1
        return "%s:%d" % (self.name, self.n)

    def target(self):
        if self.partition is not None:
            return self.partition
        t = self.rng.choice(sorted(self.topics))
        return t, self.rng.randrange(self.topics[t])

    def step(self):
        if self.single_only or self.rng.random() < 0.55:
            self.single()
        else:
            self.batch()
        return self.pace

    def single(self):
        t, p = self.target()
        v = self.value()
        body = {"topic": t, "producer_id": self.pids[t], "message": v}
        if self.partition is not None or self.rng.random() < 0.8:
            body["partition_id"] = p
        self.history.add(self.name, "invoke", "produce", topic=t, value=v,
                         partition=body.get("partition_id"))
        try:
            st, obj = self.m_call("POST", "/producer/produce", body)
        except Unreachable as e:
            self.history.add(self.name, "info", "produce", topic=t, value=v, error=str(e)[:200])
            return
        if st == 200:
            self.history.add(self.name, "ok", "produce", topic=t, value=v,
                             partition=obj.get("partition_id"), offset=obj.get("offset"))
        else:
            self.history.add(self.name, outcome(st), "produce", topic=t, value=v,
                             error="%d %s" % (st, (obj or {}).get("message", "")[:160]))
            self.rotate()

    def batch(self):
        t = self.rng.choice(sorted(self.topics))
        n = self.rng.randint(1, 4)
        recs = []
        for _ in range(n):
            p = self.rng.randrange(self.topics[t])
            recs.append({"value": self.value(), "partition_id": p})
        self.seq += 1
        body = {"records": recs, "producer_id": self.pids[t], "sequence": self.seq}
        values = [r["value"] for r in recs]
        parts = [r["partition_id"] for r in recs]
        self.history.add(self.name, "invoke", "batch", topic=t, values=values, partitions=parts,
                         sequence=self.seq)
        deadline = time.monotonic() + 20
        last = None
        tries = 0
        while True:
            tries += 1
            try:
                st, obj = self.m_call("POST", "/v1/topics/%s/records" % t, body)
            except Unreachable as e:
                st, obj, last = None, None, str(e)[:200]
            if st == 200:
                offs = obj.get("offsets") or []
                self.history.add(self.name, "ok", "batch", topic=t, values=values,
                                 partitions=[o.get("partition_id") for o in offs],
                                 offsets=[o.get("offset") for o in offs], tries=tries)
                return
            if st is not None:
                last = "%d %s" % (st, (obj or {}).get("message", "")[:160])
                if 400 <= st < 500 and tries == 1:
                    self.history.add(self.name, "fail", "batch", topic=t, values=values,
                                     error=last)
                    return
                self.rotate()
            if time.monotonic() >= deadline or self.stop_ev.is_set():
                self.history.add(self.name, "info", "batch", topic=t, values=values, error=last,
                                 tries=tries)
                return
            time.sleep(0.3)


class QueueConsumer(Worker):
    """GET /consumer/consume with one consumer id, through one manager
    until it fails."""

    def __init__(self, name, cluster, history, rng, topic, k):
        super().__init__(name, cluster, history, rng)
        self.topic = topic
        self.k = k
        self.cid = None

    def setup(self):
        self.cid = register(self.cluster, "consumer", self.topic)

    def consume(self, timeout=HTTP_TIMEOUT):
        """One consume; returns "ok", "empty", "fail" or "info"."""
        q = {"topic": self.topic, "consumer_id": self.cid}
        self.history.add(self.name, "invoke", "consume", topic=self.topic)
        try:
            st, obj = self.m_call("GET", "/consumer/consume", query=q, timeout=timeout)
        except Unreachable as e:
            self.history.add(self.name, "info", "consume", topic=self.topic, error=str(e)[:200])
            return "info"
        skipped = obj.get("skipped") if isinstance(obj, dict) else None
        if st == 200:
            self.history.add(self.name, "ok", "consume", topic=self.topic, value=obj.get("message"),
                             partition=obj.get("partition_id"), offset=obj.get("offset"),
                             skipped=skipped)
            return "ok"
        msg = (obj or {}).get("message", "")
        if st == 404 and "no new messages" in msg:
            self.history.add(self.name, "fail", "consume", topic=self.topic, error="empty")
            return "empty"
        kind = consume_outcome(st, obj)
        self.history.add(self.name, kind, "consume", topic=self.topic,
                         error="%d %s" % (st, msg[:160]), skipped=skipped)
        self.rotate()
        return kind

    def step(self):
        r = self.consume()
        return 0.3 if r == "empty" else (0.2 if r != "ok" else 0.01)

    def drain(self, deadline_s=90):
        """After healing: consumes until there are no new messages."""
        deadline = time.monotonic() + deadline_s
        while time.monotonic() < deadline:
            r = self.consume()
            if r == "empty":
                return True
            if r != "ok":
                time.sleep(0.3)
        return False


class BatchConsumer(Worker):
    """Reads each partition of its topic at its committed offset (section
    2) and commits the next offset explicitly: what it commits must be
    exactly the records in order, none skipped, none twice."""

    def __init__(self, name, cluster, history, rng, topic, n_parts, k):
        super().__init__(name, cluster, history, rng)
        self.topic = topic
        self.n_parts = n_parts
        self.k = k
        self.cid = None
        self.pos = None  # {partition: next offset}, as last known committed.
        self.turn = 0

    def setup(self):
        self.cid = register(self.cluster, "consumer", self.topic)

    def fetch_offsets(self):
        """Reads the committed offsets back; True once known."""
        self.history.add(self.name, "invoke", "offsets", topic=self.topic)
        try:
            st, obj = self.m_call("GET", "/v1/consumers/%d/offsets" % self.cid)
        except Unreachable as e:
            self.history.add(self.name, "info", "offsets", topic=self.topic, error=str(e)[:200])
            return False
        if st != 200:
            self.history.add(self.name, outcome(st), "offsets", topic=self.topic,
                             error="%d %s" % (st, (obj or {}).get("message", "")[:160]))
            self.rotate()
            return False
        got = {o["partition_id"]: o["offset"] for o in obj.get("offsets") or []}
        pos = {p: got.get(p, 0) for p in range(self.n_parts)}
        self.history.add(self.name, "ok", "offsets", topic=self.topic,
                         value={str(p): o for p, o in pos.items()})
        self.pos = pos
        return True

    def step_partition(self, p, max_records=20):
        """Reads and commits once on partition @p; returns the number of
        records committed, or None on a failure."""
        off = self.pos[p]
        path = "/v1/topics/%s/partitions/%d/records" % (self.topic, p)
        try:
            st, obj = self.m_call("GET", path, query={"offset": off, "max": max_records})
        except Unreachable:
            return None
        if st != 200:
            self.rotate()
            return None
        recs = obj.get("records") or []
        got = [(r.get("offset"), r.get("value")) for r in recs]
        self.history.add(self.name, "ok", "read", topic=self.topic, partition=p, offset=off,
                         records=got)
        if not recs:
            return 0
        to = off + len(recs)
        body = {"offsets": [{"partition_id": p, "offset": to}]}
        self.history.add(self.name, "invoke", "commit", topic=self.topic, partition=p,
                         offset=off, to=to)
        try:
            st, obj = self.m_call("POST", "/v1/consumers/%d/offsets" % self.cid, body)
        except Unreachable as e:
            st, obj = None, {"message": str(e)[:200]}
        if st == 200:
            self.history.add(self.name, "ok", "commit", topic=self.topic, partition=p, offset=off,
                             to=to, records=got)
            self.pos[p] = to
            return len(recs)
        t = "info" if st is None else outcome(st)
        self.history.add(self.name, t, "commit", topic=self.topic, partition=p, offset=off,
                         to=to, records=got,
                         error="%s %s" % (st, (obj or {}).get("message", "")[:160]))
        if st is not None:
            self.rotate()
        self.pos = None  # Unknown now: read back before going on.
        return None

    def step(self):
        if self.pos is None:
            return 0 if self.fetch_offsets() else 0.3
        p = self.turn % self.n_parts
        self.turn += 1
        n = self.step_partition(p)
        if n is None:
            return 0.3
        return 0.05 if n == 0 else 0.01

    def catch_up(self, ends, deadline_s=90):
        """After healing: reads and commits until every partition's
        committed offset reaches @ends ({p: high watermark})."""
        deadline = time.monotonic() + deadline_s
        while time.monotonic() < deadline:
            if self.pos is None:
                if not self.fetch_offsets():
                    time.sleep(0.3)
                continue
            behind = [p for p in range(self.n_parts) if self.pos[p] < ends.get(p, 0)]
            if not behind:
                return True
            for p in behind:
                if self.step_partition(p, 200) is None:
                    time.sleep(0.3)
                    break
        return False


class GroupMember(Worker):
    """A member of a consumer group (API.md section 2b): joins, fetches
    with short long polls, records what it processed ("gfetch", with a
    batch number), commits the offsets after it ("gcommit": ok, fail, or
    info when the outcome is unknown), and joins again after a 409. Now and
    then it samples the group's committed offsets ("gsample")."""

    def __init__(self, name, cluster, history, rng, topic, group, k):
        super().__init__(name, cluster, history, rng)
        self.topic = topic
        self.group = group
        self.k = k
        self.member = None
        self.batch = 0
        self.steps = 0

    def setup(self):
        pass

    def path(self, tail=""):
        return "/v1/groups/%s%s" % (self.group, tail)

    def join(self):
        self.history.add(self.name, "invoke", "gjoin", topic=self.topic)
        try:
            st, obj = self.m_call("POST", self.path("/join"),
                                  {"topic": self.topic, "session_timeout_ms": 3000})
        except Unreachable as e:
            self.history.add(self.name, "info", "gjoin", error=str(e)[:200])
            return False
        if st != 200:
            self.history.add(self.name, outcome(st), "gjoin",
                             error="%d %s" % (st, (obj or {}).get("message", "")[:160]))
            self.rotate()
            return False
        self.member = obj["member_id"]
        self.history.add(self.name, "ok", "gjoin", member=self.member,
                         generation=obj["generation"], partitions=obj["partitions"])
        return True

    def sample(self):
        start = self.history.now()
        try:
            st, obj = self.m_call("GET", self.path())
        except Unreachable:
            return None
        if st != 200:
            self.rotate()
            return None
        got = {str(o["partition_id"]): o["committed"] for o in obj["offsets"]}
        self.history.add(self.name, "ok", "gsample", value=got, start=start)
        return obj

    def step(self, wait_ms=300):
        """One fetch and commit; returns how long to pause."""
        self.steps += 1
        if self.steps % 20 == 0:
            self.sample()
        if self.member is None:
            return 0 if self.join() else 0.3
        try:
            st, obj = self.m_call("GET", self.path("/records"),
                                  query={"member_id": self.member, "max": 100,
                                         "wait_ms": wait_ms},
                                  timeout=HTTP_TIMEOUT + wait_ms / 1000)
        except Unreachable:
            return 0.2
        if st == 409:
            self.history.add(self.name, "fail", "gfetch", member=self.member,
                             error=(obj or {}).get("message", "")[:160])
            self.member = None
            return 0
        if st != 200:
            self.rotate()
            return 0.2
        recs = obj.get("records") or []
        if not recs:
            return 0
        self.batch += 1
        got = [[r["partition_id"], r["offset"], r["value"]] for r in recs]
        self.history.add(self.name, "ok", "gfetch", member=self.member, batch=self.batch,
                         generation=obj["generation"], records=got)
        upto = {}
        for p, o, _ in got:
            upto[p] = max(upto.get(p, 0), o + 1)
        body = {"member_id": self.member, "generation": obj["generation"],
                "offsets": [{"partition_id": p, "offset": o} for p, o in sorted(upto.items())]}
        self.history.add(self.name, "invoke", "gcommit", batch=self.batch)
        try:
            st, obj = self.m_call("POST", self.path("/commit"), body)
        except Unreachable as e:
            self.history.add(self.name, "info", "gcommit", batch=self.batch, error=str(e)[:200])
            return 0.2
        if st == 200:
            self.history.add(self.name, "ok", "gcommit", batch=self.batch)
            return 0
        self.history.add(self.name, "info" if st >= 500 else "fail", "gcommit",
                         batch=self.batch,
                         error="%d %s" % (st, (obj or {}).get("message", "")[:160]))
        if st == 409:
            self.member = None
        else:
            self.rotate()
        return 0.2

    def catch_up(self, ends, deadline_s=90):
        """After healing: steps until the group's committed offsets reach
        @ends ({partition: high watermark}); True once they do."""
        deadline = time.monotonic() + deadline_s
        while time.monotonic() < deadline:
            obj = self.sample()
            if obj is not None and all(o["committed"] >= ends.get(o["partition_id"], 0)
                                       for o in obj["offsets"]):
                return True
            for _ in range(5):
                pause = self.step(wait_ms=0)
                if pause:
                    time.sleep(pause)
        return False

    def leave(self):
        if self.member is not None:
            try:
                self.m_call("POST", self.path("/leave"), {"member_id": self.member})
            except Unreachable:
                pass
            self.member = None

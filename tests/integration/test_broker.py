"""Integration tests of the broker (broker/README.md) on 127.0.0.1.

Each test starts three broker processes with fresh data directories, places
partition replicas on them through the internal API, as a manager would,
and drives the data plane over HTTP: concurrent produces whose every
acknowledged offset is read back from every replica, producer
deduplication, redirects from followers, long polls, a broker killed with
SIGKILL while producers keep going and restarted to catch up, twenty
partitions under load through a SIGKILL and a SIGSTOP longer than several
snapshots, a replica wiped and rebuilt from its peers (InstallSnapshot plus
fetching batches), and bad input. Replicas are compared record by record
over HTTP and byte by byte in their segment files. Needs no root. Run:
python3 tests/integration/test_broker.py [--build DIR] [-k NAME] [--ports LO-HI].
"""

import http.client
import http.server
import json
import os
import re
import socket
import struct
import subprocess
import sys
import threading
import time
import zlib

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from harness import TestFailure, check, run_suite, wait_until  # noqa: E402
import rqkeys  # noqa: E402
import rqsign  # noqa: E402
from rqkeys import TEST_SECRET  # noqa: E402
from test_metrics import scrape, value  # noqa: E402

TOPIC = "orders"
HTTP_TIMEOUT = 15.0


# ---- HTTP ------------------------------------------------------------------


class Unreachable(Exception):
    """The broker could not be reached (refused, reset, timed out)."""


def call(addr, method, path, body=None, timeout=HTTP_TIMEOUT, raw=None,
         content_type="application/json", signed=True):
    """One request; returns (status, parsed JSON body or None, headers).

    @body is sent as JSON; @raw (bytes) is sent as it is instead, as
    @content_type. The request is signed as a manager signs its calls to
    brokers (rqsign.py) unless @signed is false.
    """
    host, port = addr.rsplit(":", 1)
    conn = http.client.HTTPConnection(host, int(port), timeout=timeout)
    try:
        data = raw if raw is not None else (None if body is None else json.dumps(body).encode())
        headers = {"Content-Type": content_type} if data is not None else {}
        if signed:
            headers.update(rqsign.headers(method, path, data or b"", label=rqkeys.HTTP_M2B))
        conn.request(method, path, body=data, headers=headers)
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


def records_path(topic, p):
    return "/v1/topics/%s/partitions/%d/records" % (topic, p)


def expect_failure(addr, method, path, status, body=None, raw=None, what="",
                   content_type="application/json"):
    """The request must fail with @status and a JSON failure message."""
    st, obj, hdr = call(addr, method, path, body, raw=raw, content_type=content_type)
    check(st == status, "%s: expected %d, got %d %r" % (what or path, status, st, obj))
    check(isinstance(obj, dict) and obj.get("status") == "failure"
          and isinstance(obj.get("message"), str) and len(obj["message"]) > 10,
          "%s: expected a JSON failure with a message, got %r" % (what or path, obj))
    return obj, hdr


# ---- The binary produce body (broker/produce_body.h) ------------------------

BINARY = "application/vnd.raftq.records"


def binary_body(records, count=None):
    """A binary produce body: count:u32, then per record key_len:i32 (-1:
    no key) | value_len:u32 | key | value. @records is a list of (key or
    None, value), each str (UTF-8) or bytes; @count overrides the count."""
    out = [struct.pack("<I", len(records) if count is None else count)]
    for key, value in records:
        v = value.encode("utf-8") if isinstance(value, str) else value
        k = key.encode("utf-8") if isinstance(key, str) else key
        out.append(struct.pack("<iI", -1 if k is None else len(k), len(v)))
        out.append(k or b"")
        out.append(v)
    return b"".join(out)


def read_raw(addr, path, accept=BINARY, signed=True, timeout=HTTP_TIMEOUT):
    """A GET with an Accept header; returns (status, body bytes, headers).
    Signed as a manager signs its calls to brokers unless @signed is
    false (a manager's public API then)."""
    host, port = addr.rsplit(":", 1)
    conn = http.client.HTTPConnection(host, int(port), timeout=timeout)
    try:
        headers = {"Accept": accept}
        if signed:
            headers.update(rqsign.headers("GET", path, b"", label=rqkeys.HTTP_M2B))
        conn.request("GET", path, headers=headers)
        resp = conn.getresponse()
        return resp.status, resp.read(), dict(resp.getheaders())
    finally:
        conn.close()


def decode_read(raw):
    """A binary read answer (shared/rq_reads.h): count:u32 | next_offset:u64
    | high_watermark:u64, then per record timestamp_ms:i64 | key_len:i32
    (-1: no key) | value_len:u32 | key | value, offsets consecutive up to
    next_offset. Returns the JSON answer's fields: {"records": [{offset,
    value, key, timestamp_ms}], "next_offset", "high_watermark"}; fails
    on a truncated answer or bytes after the last record."""
    check(len(raw) >= 20, "a binary answer of %d bytes" % len(raw))
    count, nxt, hw = struct.unpack_from("<IQQ", raw, 0)
    at, recs = 20, []
    for i in range(count):
        check(len(raw) - at >= 16, "record %d's header cut short" % i)
        ts, klen, vlen = struct.unpack_from("<qiI", raw, at)
        at += 16
        key = None
        if klen != -1:
            key = raw[at:at + klen].decode("utf-8")
            at += klen
        check(len(raw) - at >= vlen, "record %d cut short" % i)
        recs.append({"offset": nxt - count + i, "value": raw[at:at + vlen].decode("utf-8"),
                     "key": key, "timestamp_ms": ts})
        at += vlen
    check(at == len(raw), "%d bytes after the last record" % (len(raw) - at))
    return {"records": recs, "next_offset": nxt, "high_watermark": hw}


def read_both(addr, path, signed=True):
    """The same read as JSON and in the binary form; both must succeed
    and say the same (the JSON answer's records, next_offset and
    high_watermark). Returns the answer."""
    st, obj, hdr = read_raw(addr, path, accept="application/json", signed=signed)
    check(st == 200, "JSON read %s: %d %r" % (path, st, obj[:300]))
    check(hdr.get("Content-Type") == "application/json", "JSON read's type %r" % hdr)
    want = json.loads(obj.decode("utf-8"))
    st, raw, hdr = read_raw(addr, path, signed=signed)
    check(st == 200 and hdr.get("Content-Type") == BINARY,
          "binary read %s: %d %r %r" % (path, st, hdr, raw[:300]))
    got = decode_read(raw)
    for k in ("records", "next_offset", "high_watermark"):
        check(got[k] == want[k], "%s: binary %s %r, JSON %r" % (path, k, got[k], want[k]))
    return got


# Keys and values a JSON answer must escape, or that are empty or long.
AWKWARD = [("k", "plain"), (None, ""), ("", "quote \" back \\ slash /"),
           ("\n\t", "ctl \x01\x08\x0c\x1f del \x7f"), ("clé", "€ 𝄞 \u2028"),
           (None, "é" * 700), ("x" * 300, "\r\n")]


# ---- Partition logs on disk (broker/plog.h) --------------------------------

BATCH_MAGIC = 0x31425152  # "RQB1", little-endian like every field.
BATCH_HEADER = 40  # magic, len, crc, count: u32; base offset, Raft index: u64; max ts: i64.


def disk_batches(log_dir):
    """The batches in a partition log's segment files, in offset order: a
    list of (base_offset, count, raft_index, bytes). Checks each batch's
    magic and crc, and that batches follow on from one another within a
    segment and across segments with nothing after the last one."""
    out = []
    expect = None
    for name in sorted(n for n in os.listdir(log_dir) if n.endswith(".seg")):
        seg = int(name[:-4])
        check(expect is None or seg == expect,
              "%s: segment %s follows a segment ending at %s" % (log_dir, name, expect))
        expect = seg
        with open(os.path.join(log_dir, name), "rb") as f:
            data = f.read()
        pos = 0
        while pos < len(data):
            where = "%s/%s at byte %d" % (log_dir, name, pos)
            check(len(data) - pos >= BATCH_HEADER, "%s: a torn batch header" % where)
            magic, length, crc, count, base, raft_index = struct.unpack_from("<IIIIQQ", data, pos)
            total = 8 + length
            check(magic == BATCH_MAGIC and BATCH_HEADER <= total <= len(data) - pos,
                  "%s: bad magic %#x or length %d" % (where, magic, length))
            batch = data[pos:pos + total]
            check(zlib.crc32(batch[12:]) == crc, "%s: crc mismatch" % where)
            check(base == expect and count > 0,
                  "%s: batch of %d at offset %d where %d was due" % (where, count, base, expect))
            out.append((base, count, raft_index, batch))
            pos += total
            expect += count
    return out


def batch_records(batch):
    """A batch's records as the data plane gives them: a list of (offset,
    value, key, timestamp_ms)."""
    base = struct.unpack_from("<Q", batch, 16)[0]
    out = []
    pos = BATCH_HEADER
    while pos < len(batch):
        ts, klen, vlen = struct.unpack_from("<qiI", batch, pos)
        pos += 16
        key = None
        if klen >= 0:
            key = batch[pos:pos + klen].decode("utf-8")
            pos += klen
        value = batch[pos:pos + vlen].decode("utf-8")
        pos += vlen
        out.append((base + len(out), value, key, ts))
    return out


# ---- Brokers ---------------------------------------------------------------


class Brokers:
    """Three brokers (ids 1..3) that know one another's addresses."""

    def __init__(self, ctx, n=3, args=()):
        self.ctx = ctx
        self.raft = {}
        self.http = {}
        self.procs = {}
        for i in range(1, n + 1):
            self.raft[i] = "127.0.0.1:%d" % ctx.ports.take()
            self.http[i] = "127.0.0.1:%d" % ctx.ports.take()
        self.args = [
            "--election-timeout-ms", "600", "--heartbeat-ms", "100",
            "--cluster-secret", rqkeys.TEST_SECRET, "--log-level", ctx.opts.log_level,
            "--snapshot-threshold", "64", "--segment-bytes", "65536",
            "--shutdown-grace-ms", "0",  # The handover: test_operator.py.
        ] + list(args)
        for i in range(1, n + 1):
            self.procs[i] = self._make(i)
        self.members = [{"id": i, "raft_addr": self.raft[i], "http_addr": self.http[i]}
                        for i in sorted(self.raft)]
        self.leader_hint = {}  # partition -> broker id last seen leading
        self.lock = threading.Lock()

    def _make(self, i):
        data = os.path.join(self.ctx.dir, "broker%d" % i)
        argv = [self.ctx.binary, "--id", str(i), "--raft-addr", self.raft[i],
                "--http-addr", self.http[i], "--data", data] + self.args
        d = self.ctx.daemon("broker", i, argv)
        d.data_dir = data
        return d

    def __getitem__(self, i):
        return self.procs[i]

    def ids(self):
        return sorted(self.procs)

    def running(self):
        return [i for i in self.ids() if self.procs[i].running()]

    def start(self, ids=None, wait=True):
        for i in ids or self.ids():
            self.procs[i].start()
        for i in ids or self.ids():
            if wait:
                self.wait_ready(i)
        return self

    def wait_ready(self, i, timeout=30.0):
        def ready():
            check(self.procs[i].running(), "broker%d exited" % i)
            try:
                st, _, _ = call(self.http[i], "GET", "/readyz", timeout=2)
            except Unreachable:
                return False
            return st == 200
        wait_until(ready, timeout, "broker%d to be ready" % i)

    def create(self, partitions, topic=TOPIC, ids=None, bootstrap=True):
        """Places partition p (group p + 1) on every broker in @ids."""
        for p in partitions:
            body = {"topic": topic, "partition_id": p, "group_id": p + 1,
                    "members": self.members, "bootstrap": bootstrap}
            for i in ids or self.ids():
                st, obj, _ = call(self.http[i], "POST", "/internal/replicas", body)
                check(st == 200 and obj["group_id"] == p + 1,
                      "creating partition %d on broker%d: %d %r" % (p, i, st, obj))

    def hosts(self, i, p):
        try:
            return p + 1 in self.replicas(i)
        except (Unreachable, TestFailure):
            return False

    def replicas(self, i):
        """{group_id: replica status} at broker @i."""
        st, obj, _ = call(self.http[i], "GET", "/internal/replicas", timeout=5)
        check(st == 200, "broker%d: GET /internal/replicas gave %d" % (i, st))
        return {r["group_id"]: r for r in obj["replicas"]}

    def leader(self, p):
        """The broker id whose replica of partition @p is the ready leader,
        as every running broker agrees; None if not settled."""
        gid = p + 1
        seen = {}
        for i in self.running():
            try:
                seen[i] = self.replicas(i).get(gid)
            except (Unreachable, TestFailure):
                return None
        leaders = [i for i, r in seen.items() if r and r["role"] == "leader" and r["ready"]]
        if len(leaders) != 1:
            return None
        lead = leaders[0]
        term = seen[lead]["term"]
        if all(r is not None and r["leader_id"] == lead and r["term"] == term
               for r in seen.values()):
            return lead
        return None

    def wait_leaders(self, partitions, timeout=30.0):
        return {p: wait_until(lambda: self.leader(p), timeout, "a leader of partition %d" % p)
                for p in partitions}

    @staticmethod
    def preferred(p):
        """The preferred leader of partition @p (group p + 1): members[(p + 1)
        % 3], i.e. broker (p + 1) % 3 + 1. Leadership settles there, so a
        test that needs a stable leader waits for it."""
        return (p + 1) % 3 + 1

    def wait_preferred(self, partitions, timeout=30.0):
        wait_until(lambda: all(self.leader(p) == self.preferred(p) for p in partitions),
                   timeout, "each partition's preferred broker to lead")
        return {p: self.preferred(p) for p in partitions}

    def produce(self, p, records, producer=None, seq=None, topic=TOPIC, deadline_s=30.0,
                timeout=HTTP_TIMEOUT):
        """Produces until acknowledged, following 421 redirects and retrying
        503 and unreachable brokers with the same producer id and sequence.
        @timeout bounds each request (a stopped broker never answers).
        Returns (base_offset, broker id that acknowledged)."""
        body = {"records": records}
        if producer is not None:
            body["producer_id"] = producer
            body["sequence"] = seq
        deadline = time.monotonic() + deadline_s
        with self.lock:
            target = self.leader_hint.get(p, 1)
        last = None
        while time.monotonic() < deadline:
            try:
                st, obj, _ = call(self.http[target], "POST", records_path(topic, p), body,
                                  timeout=timeout)
            except Unreachable as e:
                last = str(e)
                target = self._elsewhere(p, target)
                time.sleep(0.05)
                continue
            if st == 200:
                check(obj["count"] == len(records), "count %r for %d records" % (obj, len(records)))
                with self.lock:
                    self.leader_hint[p] = target
                return obj["base_offset"], target
            last = "%d %r" % (st, obj)
            if st == 421:
                check(obj.get("leader_id") in self.procs and
                      obj.get("leader_http") == self.http[obj["leader_id"]],
                      "421 names a wrong leader: %r" % obj)
                target = obj["leader_id"]
                time.sleep(0.01)
            elif st == 503 or (st == 404 and not self.hosts(target, p)):
                # No leader yet, or a broker that no longer hosts @p.
                time.sleep(0.1)
                target = self._elsewhere(p, target)
            else:
                raise TestFailure("produce to partition %d: %s" % (p, last))
        raise TestFailure("produce to partition %d not acknowledged in %.0fs (last: %s)"
                          % (p, deadline_s, last))

    def _elsewhere(self, p, failed):
        """The broker to try after @failed let a produce to @p down: the
        leader another producer last saw, else the next broker in turn."""
        with self.lock:
            hint = self.leader_hint.get(p)
        if hint is not None and hint != failed:
            return hint
        ids = self.ids()
        return ids[(ids.index(failed) + 1) % len(ids)]

    def read_all(self, i, p, topic=TOPIC):
        """Every record of partition @p at broker @i, from its first offset:
        a list of (offset, value, key, timestamp_ms). The replica's own log
        (local=1), whatever its role."""
        out = []
        offset = self.replicas(i)[p + 1]["first_offset"]
        while True:
            st, obj, _ = call(self.http[i], "GET",
                              records_path(topic, p) + "?offset=%d&max=1000&local=1" % offset)
            check(st == 200, "broker%d read of partition %d at %d: %d %r" % (i, p, offset, st, obj))
            recs = obj["records"]
            if not recs:
                return out
            for r in recs:
                check(r["offset"] == offset, "broker%d partition %d: offset %d where %d was due"
                      % (i, p, r["offset"], offset))
                out.append((r["offset"], r["value"], r["key"], r["timestamp_ms"]))
                offset += 1
            check(obj["next_offset"] == offset, "next_offset %d, expected %d" % (obj["next_offset"], offset))

    def wait_converged(self, partitions, ids=None, timeout=45.0):
        """Every replica of each partition is ready (no gap) with the same
        next offset; returns {p: next offset}."""
        ids = ids or self.running()

        def converged():
            reps = {i: self.replicas(i) for i in ids}
            out = {}
            for p in partitions:
                rs = [reps[i].get(p + 1) for i in ids]
                if any(r is None or r["state"] != "ready" for r in rs):
                    return None
                nexts = {r["next_offset"] for r in rs}
                commits = {r["commit"] for r in rs}
                applied = {r["applied"] for r in rs}
                if len(nexts) != 1 or len(commits) != 1 or applied != commits:
                    return None
                out[p] = nexts.pop()
            return out

        return wait_until(converged, timeout, "replicas of %s to converge" % partitions,
                          interval=0.2)

    def assert_identical(self, partitions, ids=None):
        """Every replica returns the same records at every offset; returns
        {p: records}."""
        ids = ids or self.running()
        out = {}
        for p in partitions:
            logs = {i: self.read_all(i, p) for i in ids}
            first = logs[ids[0]]
            for i in ids[1:]:
                if logs[i] != first:
                    pad = [None] * max(len(first), len(logs[i]))
                    x, y = next((x, y) for x, y in zip(first + pad, logs[i] + pad) if x != y)
                    raise TestFailure("partition %d: broker%d and broker%d differ (%d vs %d "
                                      "records), first difference %r vs %r"
                                      % (p, ids[0], i, len(first), len(logs[i]), x, y))
            out[p] = first
        return out

    def log_dir(self, i, p):
        return os.path.join(self.procs[i].data_dir, "replicas", str(p + 1), "log")

    def assert_disk_identical(self, logs, ids=None):
        """The segment files of every replica of each partition in @logs
        ({p: records read back}) hold the same batch bytes where their
        offset ranges overlap (segment boundaries may differ: a replica
        that fetched batches rolls its own segments), and those batches
        decode to the records read back. Call once writes have stopped."""
        ids = ids or self.running()
        for p, recs in logs.items():
            batches = {i: disk_batches(self.log_dir(i, p)) for i in ids}
            lo = max(bs[0][0] if bs else 0 for bs in batches.values())
            hi = min(bs[-1][0] + bs[-1][1] if bs else 0 for bs in batches.values())
            check(recs == [] or (recs[0][0] >= lo and recs[-1][0] < hi),
                  "partition %d: the records read back (%d..%d) are not all on every "
                  "replica's disk (%d..%d)" % (p, recs[0][0], recs[-1][0], lo, hi))
            blobs = {}
            for i, bs in batches.items():
                inside = [b for b in bs if b[0] >= lo and b[0] + b[1] <= hi]
                check(not inside or (inside[0][0] == lo and inside[-1][0] + inside[-1][1] == hi),
                      "partition %d: broker%d's batches do not start at %d and end at %d"
                      % (p, i, lo, hi))
                blobs[i] = b"".join(b[3] for b in inside)
                if i == ids[0]:
                    disk = [r for b in inside for r in batch_records(b[3])]
                    check(disk == [r for r in recs if lo <= r[0] < hi],
                          "partition %d: broker%d's segments hold other records than it "
                          "serves" % (p, i))
            for i in ids[1:]:
                if blobs[i] != blobs[ids[0]]:
                    x, y = blobs[ids[0]], blobs[i]
                    at = next((k for k in range(min(len(x), len(y))) if x[k] != y[k]),
                              min(len(x), len(y)))
                    raise TestFailure("partition %d: the batch bytes of broker%d and broker%d "
                                      "differ (%d vs %d bytes over offsets %d..%d), first at "
                                      "byte %d" % (p, ids[0], i, len(x), len(y), lo, hi, at))


class Producers:
    """Threads that each produce batches as one producer (its own id and
    increasing sequence), to random partitions, until stopped; every
    acknowledgement is recorded: (partition, base offset) -> values."""

    def __init__(self, brokers, rng, n_threads, partitions, max_batch=4, timeout=HTTP_TIMEOUT):
        self.brokers = brokers
        self.partitions = list(partitions)
        self.timeout = timeout  # Of each request.
        self.hot = None  # When set, a list of partitions that get 4 batches in 5.
        self.acked = {}  # (p, offset) -> (value, key)
        self.by_partition = {p: 0 for p in self.partitions}
        self.lock = threading.Lock()
        self.stop_flag = threading.Event()
        self.errors = []
        self.threads = []
        self.rngs = [rng.random() for _ in range(n_threads)]
        self.max_batch = max_batch
        for t in range(n_threads):
            self.threads.append(threading.Thread(target=self._run, args=(t,), daemon=True))

    def start(self):
        for t in self.threads:
            t.start()
        return self

    def _run(self, t):
        import random
        rng = random.Random(self.rngs[t])
        producer = 100 + t
        seq = 0
        try:
            while not self.stop_flag.is_set():
                seq += 1
                hot = self.hot
                p = rng.choice(hot if hot and rng.random() < 0.8 else self.partitions)
                n = rng.randint(1, self.max_batch)
                recs = []
                for i in range(n):
                    value = "w%d-s%d-r%d-%s" % (t, seq, i, "é✓" * rng.randint(0, 3))
                    rec = {"value": value + "x" * rng.randint(0, 300)}
                    if rng.random() < 0.5:
                        rec["key"] = "k%d" % rng.randint(0, 9)
                    recs.append(rec)
                base, _ = self.brokers.produce(p, recs, producer, seq, timeout=self.timeout)
                with self.lock:
                    for i, rec in enumerate(recs):
                        self.acked[(p, base + i)] = (rec["value"], rec.get("key"))
                    self.by_partition[p] += 1
        except BaseException as e:  # Reported by stop().
            self.errors.append(e)

    def count(self):
        with self.lock:
            return dict(self.by_partition)

    def stop(self):
        self.stop_flag.set()
        for t in self.threads:
            t.join(60)
        if self.errors:
            raise self.errors[0]
        check(not any(t.is_alive() for t in self.threads), "a producer thread hangs")

    def check_against(self, logs):
        """Every acknowledged record is in @logs ({p: records}) at its
        offset with its value and key, and no value appears twice."""
        for (p, off), (value, key) in self.acked.items():
            recs = logs[p]
            first = recs[0][0] if recs else 0
            check(first <= off < first + len(recs),
                  "partition %d: acknowledged offset %d is not in the log (%d..%d)"
                  % (p, off, first, first + len(recs)))
            got = recs[off - first]
            check(got[1] == value and got[2] == key,
                  "partition %d offset %d: read %r/%r, acknowledged %r/%r"
                  % (p, off, got[1], got[2], value, key))
        for p, recs in logs.items():
            values = [r[1] for r in recs]
            check(len(values) == len(set(values)),
                  "partition %d holds a value twice" % p)

    def check_order(self, logs):
        """In each partition of @logs, every producer's records follow one
        another in the order it sent them (sequence, then place in the
        batch)."""
        for p, recs in logs.items():
            last = {}
            for off, value, _, _ in recs:
                m = re.match(r"^w(\d+)-s(\d+)-r(\d+)-", value)
                check(m is not None, "partition %d offset %d: value %r is no producer's"
                      % (p, off, value[:40]))
                t, order = int(m.group(1)), (int(m.group(2)), int(m.group(3)))
                prev = last.get(t, (0, -1))
                check(prev < order, "partition %d offset %d: producer %d's s%d-r%d after its "
                      "s%d-r%d" % ((p, off, t) + order + prev))
                last[t] = order


# ---- Tests -----------------------------------------------------------------


def test_produce_read_everywhere(ctx):
    """Five partitions, four concurrent producers, one broker stopped and
    restarted cleanly in the middle; every acknowledged record is read back
    from every replica (followers included), and leadership settles on
    each group's preferred member."""
    b = Brokers(ctx).start()
    parts = range(5)
    b.create(parts)
    b.wait_leaders(parts)
    prod = Producers(b, ctx.rng, 4, parts).start()
    wait_until(lambda: all(n >= 8 for n in prod.count().values()), 60,
               "8 acknowledged batches per partition")
    # A clean stop in the middle of the traffic (requests in flight on the
    # leaders it hosts are answered 503 and retried elsewhere), and back.
    rc = b[3].terminate()
    check(rc == 0, "broker3 exited with %d after SIGTERM under load" % rc)
    b.start([3])
    more = prod.count()
    wait_until(lambda: all(n >= more[p] + 3 for p, n in prod.count().items()), 60,
               "3 more acknowledged batches per partition after broker3's restart")
    prod.stop()
    b.wait_converged(parts)
    logs = b.assert_identical(parts)
    prod.check_against(logs)
    check(sum(len(r) for r in logs.values()) == len(prod.acked),
          "the logs hold records nobody acknowledged")
    b.wait_preferred(parts)


def produce_concurrently(b, lead, pids, n_each, retries_by=None):
    """Producers @pids, each with its own id, send @n_each single-record
    produces one after another to broker @lead (partition 0, sequences
    from 1), and producer @retries_by sends each of its produces twice.
    Checks every answer (a retry gets the original offset); returns {pid:
    [offset of each produce]}."""
    answers = {}
    errors = []

    def run(pid):
        mine = []
        for seq in range(1, n_each + 1):
            body = {"records": [{"value": "p%d-%d" % (pid, seq)}], "producer_id": pid,
                    "sequence": seq}
            for attempt in ((0, 1) if pid == retries_by else (0,)):
                st, obj, _ = call(b.http[lead], "POST", records_path(TOPIC, 0), body)
                if st != 200:
                    errors.append("producer %d #%d: %d %r" % (pid, seq, st, obj))
                    return
                if attempt == 0:
                    mine.append(obj["base_offset"])
                elif obj["base_offset"] != mine[-1]:
                    errors.append("producer %d's retry of #%d got offset %d, not %d"
                                  % (pid, seq, obj["base_offset"], mine[-1]))
        answers[pid] = mine

    threads = [threading.Thread(target=run, args=(pid,)) for pid in pids]
    for t in threads:
        t.start()
    for t in threads:
        t.join(120)
    check(not errors, "produce: %s" % errors[:3])
    for pid, mine in answers.items():
        check(mine == sorted(mine), "producer %d's offsets out of order: %r" % (pid, mine))
    return answers


def merged_counts(b, i):
    """(merged entries, produces in them) broker @i has proposed."""
    from test_metrics import scrape, value  # It imports this module.
    fams = scrape(b.http[i])
    return (value(fams, "raftq_broker_merged_entries_total"),
            value(fams, "raftq_broker_merged_produces_total"))


def test_produces_merged(ctx):
    """Produces that reach a partition's leader while others are in flight
    are proposed together, one Raft entry and one batch in the log: sixteen
    producers, each with its own id, send 25 single-record produces one
    after another, and one of them sends a retry of each. Every produce
    gets its own offsets, the retries the originals, each producer's in
    order; the offsets cover the log with nothing else; the leader counts
    merged entries, and every replica's log holds the same batches, fewer
    than the produces, some of several producers' records."""
    b = Brokers(ctx).start()
    b.create([0])
    lead = b.wait_preferred([0])[0]
    n_producers, n_each = 16, 25
    answers = produce_concurrently(b, lead, range(1, n_producers + 1), n_each, retries_by=1)
    total = n_producers * n_each
    offsets = sorted(o for mine in answers.values() for o in mine)
    check(offsets == list(range(total)), "offsets given: %d of %d, not 0..%d"
          % (len(offsets), total, total - 1))
    entries, merged = merged_counts(b, lead)
    check(entries > 0 and merged >= 2 * entries,
          "the leader merged %r produces into %r entries" % (merged, entries))
    b.wait_converged([0])
    logs = b.assert_identical([0])
    batches = disk_batches(b.log_dir(lead, 0))
    check(len(batches) < total, "%d batches for %d produces" % (len(batches), total))
    mixed = 0
    for base, count, _, raw in batches:
        got = batch_records(raw)
        owners = {v.split("-")[0] for _, v, _, _ in got}
        mixed += len(owners) > 1
        for off, v, _, _ in got:
            pid, seq = (int(x) for x in v[1:].split("-"))
            check(answers[pid][seq - 1] == off,
                  "offset %d holds %s, acknowledged at %d" % (off, v, answers[pid][seq - 1]))
    check(mixed > 0, "no batch holds several producers' records")
    check(sum(len(r) for r in logs.values()) == total, "the log holds other records")


def test_no_merged_entries_for_an_older_peer(ctx):
    """A leader merges produces only in a group whose every other member's
    broker says, in its answers to the peer watch's pings, that it reads
    merged entries (a broker of an earlier release would skip one as
    malformed and lose its records), and adds a member to a group whose
    log holds some only if its broker says so. Brokers 3 and 4 run with
    --merge-produces=false, which makes their pings answer as such a broker
    would: the leader, broker 1, merges nothing; restarted without the
    flag, broker 3 says it reads them, and the leader merges again; then
    adding broker 4 is refused (409) until it too runs without the flag,
    and it then catches up with the merged entries like the others."""
    # No snapshot passes the merged entries (a member added after one
    # would be sent none of them).
    b = Brokers(ctx, n=4, args=["--snapshot-threshold", "100000"])
    for i in (3, 4):
        b[i].argv.append("--merge-produces=false")
    b.start()
    members = [next(m for m in b.members if m["id"] == i) for i in (1, 2, 3)]
    for i in (1, 2, 3):
        body = {"topic": TOPIC, "partition_id": 0, "group_id": 1, "members": members,
                "bootstrap": True, "preferred_leader": 1}
        st, obj, _ = call(b.http[i], "POST", "/internal/replicas", body)
        check(st == 200, "creating the group on broker%d: %d %r" % (i, st, obj))

    def broker1_leads():  # Broker 4 hosts no replica yet.
        reps = [b.replicas(i).get(1) for i in (1, 2, 3)]
        return (all(r is not None and r["leader_id"] == 1 for r in reps)
                and reps[0]["role"] == "leader" and reps[0]["ready"])
    wait_until(broker1_leads, 30, "broker1 to lead")
    produce_concurrently(b, 1, range(1, 17), 20)
    check(merged_counts(b, 1) == (0, 0),
          "broker1 merged produces with broker3 unable to read them: %r"
          % (merged_counts(b, 1),))
    check(b[3].terminate() == 0, "broker3 did not stop cleanly")
    b[3].argv.remove("--merge-produces=false")
    b.start([3])
    wait_until(broker1_leads, 30, "broker1 to lead")
    produce_concurrently(b, 1, range(17, 33), 20)
    check(merged_counts(b, 1)[0] > 0, "broker1 merged nothing once broker3 reads them")

    four = next(m for m in b.members if m["id"] == 4)
    add = {"id": 4, "raft_addr": four["raft_addr"], "http_addr": four["http_addr"]}
    st, obj = member_change(b, "POST", "/internal/replicas/1/members", add)
    check(st == 409 and "cannot read the merged produce entries" in obj["message"],
          "adding broker4, which reads no merged entries: %d %r" % (st, obj))
    check(b[4].terminate() == 0, "broker4 did not stop cleanly")
    b[4].argv.remove("--merge-produces=false")
    b.start([4])
    body = {"topic": TOPIC, "partition_id": 0, "group_id": 1, "members": members + [four],
            "bootstrap": False}
    st, obj, _ = call(b.http[4], "POST", "/internal/replicas", body)
    check(st == 200, "creating the replica on broker4: %d %r" % (st, obj))
    st, obj = member_change(b, "POST", "/internal/replicas/1/members", add)
    check(st == 200, "adding broker4 once it reads merged entries: %d %r" % (st, obj))
    b.wait_converged([0])
    logs = b.assert_identical([0])
    check(len(logs[0]) == 32 * 20, "%d records, not %d" % (len(logs[0]), 32 * 20))


def test_followers_learn_a_leader_both_missed(ctx):
    """Two followers whose descriptors both lack the leader's addresses
    (as after a move to that broker whose add they never followed before
    a restart, the broker that added it being gone) learn them from the
    leader itself: each asks the other first (the configuration lists it
    first), and the other knows no more, so each asks the next peer after
    an answer that did not help. Then a produce at a follower is
    redirected to the leader, not refused for want of one."""
    b = Brokers(ctx).start()
    order = [2, 3, 1]
    members = [next(m for m in b.members if m["id"] == i) for i in order]
    for i in b.ids():
        body = {"topic": TOPIC, "partition_id": 0, "group_id": 1, "members": members,
                "bootstrap": True, "preferred_leader": 1}
        st, obj, _ = call(b.http[i], "POST", "/internal/replicas", body)
        check(st == 200, "creating the group on broker%d: %d %r" % (i, st, obj))
    wait_until(lambda: b.leader(0) == 1, 30, "broker1 to lead")
    b.produce(0, [{"value": "before"}])
    for i in (2, 3):
        check(b[i].terminate() == 0, "broker%d did not stop cleanly" % i)
        path = os.path.join(b[i].data_dir, "replicas", "1", "replica.json")
        with open(path) as f:
            desc = json.load(f)
        desc["members"] = [m for m in desc["members"] if m["id"] != 1]
        with open(path, "w") as f:
            json.dump(desc, f)
    b.start([2, 3])

    def learned(i):
        r = b.replicas(i).get(1)
        return r is not None and any(m["id"] == 1 and m["http_addr"] == b.http[1]
                                     for m in r["members"])
    wait_until(lambda: learned(2) and learned(3), 30,
               "brokers 2 and 3 to learn broker1's addresses")
    # A restarted follower may have won an election meanwhile (it then
    # answers 200); broker 1, the preferred leader, takes leadership back.
    wait_until(lambda: b.leader(0) == 1, 30, "broker1 to lead again")
    for i in (2, 3):
        obj, _ = expect_failure(b.http[i], "POST", records_path(TOPIC, 0), 421,
                                {"records": [{"value": "x"}]}, what="produce at a follower")
        check(obj["leader_id"] == 1 and obj["leader_http"] == b.http[1],
              "broker%d names %r" % (i, obj))


def test_dedupe_redirect_long_poll(ctx):
    """A retried produce gets its original offsets; an older sequence is
    refused; a follower redirects produces and reads with 421 and the
    leader's address, and shows its own log with local=1; a long poll on
    the leader wakes on a produce, times out empty, and ends with 421 when
    leadership moves."""
    b = Brokers(ctx).start()
    b.create([0])
    lead = b.wait_preferred([0])[0]
    follower = next(i for i in b.ids() if i != lead)
    path = records_path(TOPIC, 0)

    body = {"records": [{"value": "a"}, {"value": "b", "key": "k"}], "producer_id": 7,
            "sequence": 3}
    st, first, _ = call(b.http[lead], "POST", path, body)
    check(st == 200 and first["base_offset"] == 0 and first["count"] == 2, "first: %r" % first)
    st, again, _ = call(b.http[lead], "POST", path, body)
    check(st == 200 and again["base_offset"] == 0, "retry: %d %r" % (st, again))
    st, other, _ = call(b.http[lead], "POST", path, {"records": [{"value": "c"}]})
    check(st == 200 and other["base_offset"] == 2, "plain produce: %d %r" % (st, other))
    expect_failure(b.http[lead], "POST", path, 409,
                   {"records": [{"value": "old"}], "producer_id": 7, "sequence": 2},
                   what="older sequence")

    obj, _ = expect_failure(b.http[follower], "POST", path, 421, {"records": [{"value": "x"}]},
                            what="produce at a follower")
    check(obj["leader_id"] == lead and obj["leader_http"] == b.http[lead],
          "421 names %r, leader is broker%d at %s" % (obj, lead, b.http[lead]))

    b.wait_converged([0])
    for at, local, leader in [(lead, 0, True), (follower, 1, False)]:
        st, obj, _ = call(b.http[at], "GET", path + "?offset=0&local=%d" % local)
        check(st == 200 and [r["value"] for r in obj["records"]] == ["a", "b", "c"]
              and [r["key"] for r in obj["records"]] == [None, "k", None]
              and obj["next_offset"] == 3 and obj["high_watermark"] == 3
              and obj["leader"] is leader and obj["leader_id"] == lead,
              "read at broker%d, local=%d: %r" % (at, local, obj))
    obj, _ = expect_failure(b.http[follower], "GET", path + "?offset=0", 421,
                            what="read at a follower")
    check(obj["leader_id"] == lead and obj["leader_http"] == b.http[lead],
          "421 names %r, leader is broker%d" % (obj, lead))

    result = {}

    def poll():
        t0 = time.monotonic()
        result["answer"] = call(b.http[lead], "GET", path + "?offset=3&wait_ms=8000")
        result["secs"] = time.monotonic() - t0

    t = threading.Thread(target=poll)
    t.start()
    time.sleep(0.3)  # Let the poll park; a produce before it would pass too.
    st, obj, _ = call(b.http[lead], "POST", path, {"records": [{"value": "woken"}]})
    check(st == 200 and obj["base_offset"] == 3, "produce: %r" % obj)
    t.join(15)
    st, obj, _ = result["answer"]
    check(st == 200 and [r["value"] for r in obj["records"]] == ["woken"],
          "long poll answered %d %r" % (st, obj))
    check(result["secs"] < 5, "long poll took %.1fs to wake" % result["secs"])

    t0 = time.monotonic()
    st, obj, _ = call(b.http[lead], "GET", path + "?offset=4&wait_ms=700")
    secs = time.monotonic() - t0
    check(st == 200 and obj["records"] == [] and obj["next_offset"] == 4,
          "long poll timeout: %r" % obj)
    check(0.6 <= secs < 5, "a 700 ms long poll took %.2fs" % secs)

    # A client that leaves a parked long poll: the broker lets go of it.
    host, port = b.http[lead].rsplit(":", 1)
    s = socket.create_connection((host, int(port)), timeout=5)
    target = "%s?offset=4&wait_ms=20000" % path
    auth = rqsign.sign("GET", target, label=rqkeys.HTTP_M2B)
    s.sendall(("GET %s HTTP/1.1\r\nHost: x\r\n%s: %s\r\n\r\n"
               % (target, rqsign.HEADER, auth)).encode())
    wait_until(lambda: b.replicas(lead)[1]["waiters"] == 1, 10, "the long poll to park")
    s.close()
    wait_until(lambda: b.replicas(lead)[1]["waiters"] == 0, 10,
               "the abandoned long poll to be dropped")

    # On-demand leadership transfer: a long poll parked on the leader ends
    # with 421 naming the new one, at once.
    t = threading.Thread(target=lambda: result.update(
        moved=call(b.http[lead], "GET", path + "?offset=4&wait_ms=20000")))
    t.start()
    wait_until(lambda: b.replicas(lead)[1]["waiters"] == 1, 10, "the long poll to park")
    to = next(i for i in b.ids() if i != lead)
    t0 = time.monotonic()
    st, obj, _ = call(b.http[lead], "POST", "/internal/replicas/1/transfer", {"to": to})
    check(st == 200, "transfer: %d %r" % (st, obj))
    wait_until(lambda: b.leader(0) == to, 10, "broker%d to lead after the transfer" % to)
    t.join(15)
    st, obj, _ = result["moved"]
    check(st == 421 and obj["leader_id"] == to and time.monotonic() - t0 < 10,
          "a long poll on the old leader got %d %r" % (st, obj))
    b.wait_preferred([0])  # And the preferred leader takes it back.

    # SIGTERM with a long poll parked: it is answered 503, the exit is clean.
    t = threading.Thread(target=lambda: result.update(
        last=call(b.http[lead], "GET", path + "?offset=4&wait_ms=20000")))
    t.start()
    wait_until(lambda: b.replicas(lead)[1]["waiters"] == 1, 10, "the long poll to park")
    rc = b[lead].terminate()
    check(rc == 0, "broker%d exited with %d after SIGTERM" % (lead, rc))
    t.join(15)
    check(result["last"][0] == 503, "the parked poll got %r at shutdown" % (result["last"],))


def test_binary_read(ctx):
    """A read that accepts application/vnd.raftq.records is answered in the
    binary form with exactly the records, next_offset and high_watermark
    of the JSON answer (values JSON escapes, keys, empty values, reads
    across batches, at and past the end), long polls included; bad
    parameters, a follower and an unknown partition still get JSON
    failures, and local=1 stays JSON."""
    b = Brokers(ctx).start()
    b.create([0])
    lead = b.wait_preferred([0])[0]
    follower = next(i for i in b.ids() if i != lead)
    a = b.http[lead]
    path = records_path(TOPIC, 0)
    st, obj, _ = call(a, "POST", path, raw=binary_body(AWKWARD), content_type=BINARY)
    check(st == 200 and obj["count"] == len(AWKWARD), "produce: %d %r" % (st, obj))
    st, obj, _ = call(a, "POST", path, raw=binary_body([(None, "v%d" % i) for i in range(2000)]),
                      content_type=BINARY)
    check(st == 200, "produce: %d %r" % (st, obj))
    n = len(AWKWARD) + 2000
    got = read_both(a, path + "?offset=0&max=10000")
    check([(r["key"], r["value"]) for r in got["records"][:len(AWKWARD)]] == AWKWARD
          and len(got["records"]) == n and got["next_offset"] == n
          and got["high_watermark"] == n, "read back %r" % got["records"][:len(AWKWARD)])
    for q in ("offset=3&max=2", "offset=5&max=5", "offset=%d&max=1" % (n - 1),
              "offset=%d" % n, "offset=%d&max=7" % (n + 5)):
        got = read_both(a, path + "?" + q)
        check(got["next_offset"] == (int(q.split("&")[0][7:]) + len(got["records"])),
              "%s: %r" % (q, got["next_offset"]))

    # A long poll in the binary form wakes on a produce, and ends empty.
    result = {}
    t = threading.Thread(target=lambda: result.update(
        woken=read_raw(a, path + "?offset=%d&wait_ms=8000" % n)))
    t.start()
    wait_until(lambda: b.replicas(lead)[1]["waiters"] == 1, 10, "the long poll to park")
    st, obj, _ = call(a, "POST", path, {"records": [{"value": "wo\"ken", "key": "k"}]})
    check(st == 200 and obj["base_offset"] == n, "produce: %r" % obj)
    t.join(15)
    st, raw, hdr = result["woken"]
    got = decode_read(raw)
    check(st == 200 and [(r["offset"], r["key"], r["value"]) for r in got["records"]]
          == [(n, "k", "wo\"ken")] and got["next_offset"] == n + 1, "long poll: %r" % got)
    t0 = time.monotonic()
    st, raw, _ = read_raw(a, path + "?offset=%d&wait_ms=500" % (n + 1))
    got = decode_read(raw)
    check(st == 200 and got["records"] == [] and got["next_offset"] == n + 1
          and time.monotonic() - t0 >= 0.45, "long poll timeout: %r" % got)

    # Failures stay JSON whatever the Accept header says.
    for q, status, where in (("?max=0", 400, a), ("?offset=x", 400, a),
                             ("?wait_ms=-1", 400, a), ("?local=2", 400, a),
                             ("?offset=0", 421, b.http[follower])):
        st, raw, hdr = read_raw(where, path + q)
        obj = json.loads(raw.decode("utf-8"))
        check(st == status and hdr.get("Content-Type") == "application/json"
              and obj["status"] == "failure" and len(obj["message"]) > 10,
              "%s: %d %r" % (q, st, obj))
    st, raw, hdr = read_raw(a, records_path(TOPIC, 7) + "?offset=0")
    check(st == 404 and json.loads(raw.decode("utf-8"))["status"] == "failure",
          "unknown partition: %d %r" % (st, raw))
    # local=1 compares replicas with "leader" in its answer: JSON.
    b.wait_converged([0])
    st, raw, hdr = read_raw(b.http[follower], path + "?offset=0&max=2&local=1")
    obj = json.loads(raw.decode("utf-8"))
    check(st == 200 and obj["leader"] is False and len(obj["records"]) == 2,
          "local=1 with the binary Accept: %d %r" % (st, obj))


def test_bad_input(ctx):
    """Bad requests are answered 4xx with a JSON message, never 5xx; start-up
    errors exit non-zero with a message."""
    b = Brokers(ctx, args=["--max-message-bytes", "1024"]).start()
    b.create([0])
    lead = b.wait_preferred([0])[0]
    a = b.http[lead]
    path = records_path(TOPIC, 0)

    # Validate, then route: a broker that does not lead the partition
    # answers an invalid produce 400 as the leader does, never 421 (which
    # would depend on who leads at the moment), and a valid one 421.
    for f in b.ids():
        if f == lead:
            continue
        expect_failure(b.http[f], "POST", path, 400, {"records": [{"value": "v", "key": ["k"]}]},
                       what="an invalid produce to follower %d" % f)
        expect_failure(b.http[f], "POST", path, 400, raw=struct.pack("<I", 0),
                       content_type=BINARY, what="an empty binary produce to follower %d" % f)
        expect_failure(b.http[f], "POST", path, 421, {"records": [{"value": "v"}]},
                       what="a valid produce to follower %d" % f)

    expect_failure(a, "POST", path, 400, raw=b'{"records": [', what="malformed JSON")
    expect_failure(a, "POST", path, 400, raw=b'[1, 2]', what="a list body")
    expect_failure(a, "POST", path, 400, {"records": "x"}, what="records not a list")
    expect_failure(a, "POST", path, 400, {"records": []}, what="no records")
    expect_failure(a, "POST", path, 400, {}, what="records missing")
    expect_failure(a, "POST", path, 400, {"records": [{"value": 5}]}, what="value a number")
    expect_failure(a, "POST", path, 400, {"records": [{"key": "k"}]}, what="value missing")
    expect_failure(a, "POST", path, 400, {"records": ["v"]}, what="record not an object")
    expect_failure(a, "POST", path, 400, {"records": [{"value": "v", "key": 3}]},
                   what="key a number")
    expect_failure(a, "POST", path, 400,
                   {"records": [{"value": "v"}], "producer_id": -1, "sequence": 0},
                   what="negative producer_id")
    expect_failure(a, "POST", path, 400,
                   {"records": [{"value": "v"}], "producer_id": 4, "sequence": "1"},
                   what="sequence a string")
    expect_failure(a, "POST", path, 400, {"records": [{"value": "v"}], "producer_id": 4},
                   what="producer_id without sequence")
    expect_failure(a, "POST", path, 413, {"records": [{"value": "x" * 1025}]},
                   what="value too large")
    expect_failure(a, "POST", path, 413, {"records": [{"value": "v"}] * 10001},
                   what="10001 records")
    st, obj, _ = call(a, "POST", path, {"records": [{"value": "é" * 512}]})
    check(st == 200, "a value of exactly 1024 bytes was refused: %d %r" % (st, obj))
    st, obj, _ = call(a, "POST", path, {"records": [{"value": "v"}] * 10000})
    check(st == 200 and obj["count"] == 10000, "10000 records: %d %r" % (st, obj))

    expect_failure(a, "POST", records_path(TOPIC, 9), 404, {"records": [{"value": "v"}]},
                   what="unknown partition")
    expect_failure(a, "GET", records_path("nope", 0), 404, what="unknown topic")
    expect_failure(a, "GET", "/v1/topics/b%20d/partitions/0/records", 400, what="bad topic")
    expect_failure(a, "GET", path + "?offset=-1", 400, what="negative offset")
    expect_failure(a, "GET", path + "?max=0", 400, what="max 0")
    expect_failure(a, "GET", path + "?max=abc", 400, what="max not a number")
    expect_failure(a, "GET", path + "?wait_ms=x", 400, what="wait_ms not a number")
    expect_failure(a, "GET", path + "?local=yes", 400, what="local not 0 or 1")
    expect_failure(a, "DELETE", "/internal/replicas/999", 404, what="unknown group")
    expect_failure(a, "DELETE", "/internal/replicas/abc", 400, what="group not a number")
    expect_failure(a, "POST", "/internal/replicas/999/transfer", 404, {"to": 1},
                   what="transfer of an unknown group")
    expect_failure(a, "POST", "/internal/replicas/1/transfer", 400, {"to": 99},
                   what="transfer to a non-member")

    good = {"topic": TOPIC, "partition_id": 0, "group_id": 1, "members": b.members,
            "bootstrap": True}
    st, obj, _ = call(a, "POST", "/internal/replicas", good)
    check(st == 200 and obj["group_id"] == 1, "idempotent create: %d %r" % (st, obj))
    other = dict(good, members=list(reversed(b.members)))
    expect_failure(a, "POST", "/internal/replicas", 409, other, what="same group, other members")
    expect_failure(a, "POST", "/internal/replicas", 409, dict(good, group_id=50),
                   what="same partition, other group")
    for bad, what in [
        (dict(good, topic="a/b"), "bad topic name"),
        (dict(good, topic=""), "empty topic name"),
        (dict(good, group_id=0), "group 0"),
        (dict(good, group_id="1"), "group a string"),
        (dict(good, partition_id=-2), "negative partition"),
        (dict(good, members=[]), "no members"),
        (dict(good, members=b.members[:1] * 2), "a member twice"),
        (dict(good, members=[m for m in b.members if m["id"] != lead]), "broker not a member"),
        (dict(good, members=[dict(m, raft_addr="nohost") for m in b.members]), "bad address"),
        (dict(good, bootstrap="yes"), "bootstrap a string"),
    ]:
        expect_failure(a, "POST", "/internal/replicas", 400, bad, what=what)
    expect_failure(a, "GET", "/nowhere", 404, what="unknown path")

    # Start-up errors: the data directory is locked, the port is taken.
    for argv, what in [
        ([ctx.binary, "--id", "1", "--raft-addr", "127.0.0.1:%d" % ctx.ports.take(),
          "--http-addr", "127.0.0.1:%d" % ctx.ports.take(), "--data", b[1].data_dir],
         "in use"),
        ([ctx.binary, "--id", "4", "--raft-addr", b.raft[1], "--http-addr",
          "127.0.0.1:%d" % ctx.ports.take(), "--data", os.path.join(ctx.dir, "b4")],
         "address already in use"),
        ([ctx.binary, "--id", "4", "--raft-addr", "127.0.0.1:%d" % ctx.ports.take(),
          "--http-addr", b.http[1], "--data", os.path.join(ctx.dir, "b5")],
         b.http[1]),
        ([ctx.binary, "--id", "0", "--raft-addr", "x:1", "--http-addr", "y:2", "--data", "d"],
         "--id"),
    ]:
        r = subprocess.run(argv + ["--cluster-secret", TEST_SECRET], stdin=subprocess.DEVNULL,
                           capture_output=True, timeout=30, env=ctx.env)
        err = r.stderr.decode("utf-8", "replace")
        check(r.returncode != 0 and what in err,
              "%s: exit %d, stderr %r" % (what, r.returncode, err[-300:]))


def test_binary_produce(ctx):
    """Produces with the binary body (Content-Type
    application/vnd.raftq.records) read back like JSON ones on every
    replica, deduplicate through query parameters and redirect alike; bad
    binary bodies are answered 4xx with a JSON message."""
    b = Brokers(ctx, args=["--max-message-bytes", "1024"]).start()
    b.create([0])
    lead = b.wait_preferred([0])[0]
    follower = next(i for i in b.ids() if i != lead)
    a = b.http[lead]
    path = records_path(TOPIC, 0)

    def produce(records, query="", addr=a):
        return call(addr, "POST", path + query, raw=binary_body(records), content_type=BINARY)

    first = [("k", "a"), (None, "b"), ("", ""), ("clé", "€ 𝄞"), (None, "é" * 512)]
    st, obj, _ = produce(first)
    check(st == 200 and obj == {"status": "success", "base_offset": 0, "count": 5},
          "binary produce: %d %r" % (st, obj))
    st, obj, _ = call(a, "POST", path, {"records": [{"value": "json", "key": "j"}]})
    check(st == 200 and obj["base_offset"] == 5, "JSON produce after binary: %d %r" % (st, obj))
    many = [(None if i % 3 else "key%d" % i, "value %d" % i) for i in range(10000)]
    st, obj, _ = produce(many, addr=a)
    check(st == 200 and obj["base_offset"] == 6 and obj["count"] == 10000,
          "10000 binary records: %d %r" % (st, obj))
    st, obj, _ = call(a, "POST", path, raw=binary_body([(None, "ct")]),
                      content_type="Application/VND.raftq.records; charset=binary")
    check(st == 200 and obj["base_offset"] == 10006, "content type with a parameter: %d %r"
          % (st, obj))

    # Deduplication: producer_id and sequence in the query string.
    st, obj, _ = produce([(None, "d1"), (None, "d2")], "?producer_id=9&sequence=4")
    check(st == 200 and obj["base_offset"] == 10007, "dedupe first: %d %r" % (st, obj))
    st, obj, _ = produce([(None, "d1"), (None, "d2")], "?producer_id=9&sequence=4")
    check(st == 200 and obj["base_offset"] == 10007 and obj["count"] == 2,
          "dedupe retry: %d %r" % (st, obj))
    expect_failure(a, "POST", path + "?producer_id=9&sequence=3", 409,
                   raw=binary_body([(None, "old")]), content_type=BINARY, what="older sequence")
    obj, _ = expect_failure(b.http[follower], "POST", path, 421, raw=binary_body([(None, "x")]),
                            content_type=BINARY, what="binary produce at a follower")
    check(obj["leader_id"] == lead, "421 names %r, leader is broker%d" % (obj, lead))

    want = [(0, "a", "k"), (1, "b", None), (2, "", ""), (3, "€ 𝄞", "clé"),
            (4, "é" * 512, None), (5, "json", "j")]
    want += [(6 + i, v, k) for i, (k, v) in enumerate(many)]
    want += [(10006, "ct", None), (10007, "d1", None), (10008, "d2", None)]
    b.wait_converged([0])
    logs = b.assert_identical([0])
    check([(o, v, k) for o, v, k, _ in logs[0]] == want,
          "read back: %d records, first differing %r" % (
              len(logs[0]), next(((x, y) for x, y in zip(
                  [(o, v, k) for o, v, k, _ in logs[0]], want) if x != y), None)))
    now_ms = time.time() * 1000
    check(all(abs(ts - now_ms) < 600000 for _, _, _, ts in logs[0]),
          "timestamps are not the leader's clock: %r" % (logs[0][:2],))
    b.assert_disk_identical(logs)

    # Bad bodies: 400 for malformed ones, 413 over a limit; nothing appended.
    good = binary_body([("k", "v")])
    for raw, status, what in [
        (b"", 400, "an empty body"),
        (b"\x01\x00\x00", 400, "a body shorter than its count"),
        (binary_body([]), 400, "no records"),
        (good[:-1], 400, "a value cut short"),
        (good[:12], 400, "a key cut short"),
        (good[:6], 400, "a header cut short"),
        (good + b"x", 400, "a byte after the last record"),
        (binary_body([("k", "v")], count=2), 400, "fewer records than announced"),
        (struct.pack("<IiI", 1, -2, 1) + b"v", 400, "key length -2"),
        (binary_body([(None, b"\xc3\x28")]), 400, "a value that is not UTF-8"),
        (binary_body([(b"\xed\xa0\x80", "v")]), 400, "a key holding a surrogate"),
        (binary_body([(None, "a\x00b")]), 400, "a value holding NUL"),
        (struct.pack("<I", 0xFFFFFFFF), 413, "a count of 2^32-1"),
        (binary_body([(None, "v")] * 10001), 413, "10001 records"),
        (binary_body([(None, "x" * 1025)]), 413, "a value of 1025 bytes"),
        (struct.pack("<IiI", 1, -1, 0xFFFFFFFF), 413, "a value length of 2^32-1"),
    ]:
        expect_failure(a, "POST", path, status, raw=raw, content_type=BINARY, what=what)
    for query, what in [("?producer_id=0&sequence=1", "producer_id 0"),
                        ("?producer_id=-3&sequence=1", "negative producer_id"),
                        ("?producer_id=3&sequence=x", "sequence not a number"),
                        ("?producer_id=3", "producer_id without sequence"),
                        ("?sequence=3", "sequence without producer_id")]:
        expect_failure(a, "POST", path + query, 400, raw=good, content_type=BINARY, what=what)
    # A binary body sent as JSON is malformed JSON; a JSON body sent as
    # binary announces 1,701,978,747 records ("{\"re").
    expect_failure(a, "POST", path, 400, raw=good, what="a binary body labelled JSON")
    expect_failure(a, "POST", path, 413, raw=b'{"records": [{"value": "v"}]}',
                   content_type=BINARY, what="a JSON body labelled binary")
    st, obj, _ = call(a, "GET", path + "?offset=10009")
    check(st == 200 and obj["records"] == [] and obj["high_watermark"] == 10009,
          "bad bodies appended something: %r" % obj)


def rss_mib(pid):
    with open("/proc/%d/statm" % pid) as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 2.0 ** 20


def test_memory_bounded_by_bytes(ctx):
    """200 MiB produced into one partition in 1 MiB batches, with the
    release defaults for snapshots (threshold 4096 entries, 32 MiB of Raft
    log in memory, 4 MiB trailing): libraft would hold every batch in memory
    if snapshots were counted in entries only, but every broker's RSS stays
    far below the data, and every replica holds every record."""
    # AddressSanitizer holds up to 256 MiB of freed memory by default; a
    # small quarantine keeps its share of RSS out of the figure.
    ctx.env["ASAN_OPTIONS"] = ctx.env.get("ASAN_OPTIONS", "") + ":quarantine_size_mb=16"
    b = Brokers(ctx, args=["--snapshot-threshold", "4096", "--raft-log-memory-bytes", "33554432",
                           "--raft-log-trailing-bytes", "4194304"]).start()
    b.create([0])
    lead = b.wait_preferred([0])[0]
    path = records_path(TOPIC, 0)
    value = "".join(chr(ord("a") + i % 26) for i in range(256 * 1024))
    body = binary_body([(None, value)] * 4)  # 1 MiB a request.
    n_requests = 200
    base = {pid: rss_mib(pid) for pid in (b[i].pid() for i in b.ids())}
    peak = dict(base)
    errors = []
    todo = list(range(n_requests))
    lock = threading.Lock()

    def run():
        while not errors:
            with lock:
                if not todo:
                    return
                todo.pop()
            try:
                st, obj, _ = call(b.http[lead], "POST", path, raw=body, content_type=BINARY,
                                  timeout=60)
            except Unreachable as e:
                errors.append(str(e))
                return
            if st != 200:
                errors.append("%d %r" % (st, obj))

    threads = [threading.Thread(target=run) for _ in range(4)]
    for t in threads:
        t.start()
    while any(t.is_alive() for t in threads):
        for pid in peak:
            peak[pid] = max(peak[pid], rss_mib(pid))
        time.sleep(0.05)
    for t in threads:
        t.join()
    check(not errors, "produce: %s" % (errors[:1],))
    want = 4 * n_requests
    wait_until(lambda: all(b.replicas(i)[1]["next_offset"] == want for i in b.ids()), 60,
               "every replica to hold all %d records" % want)
    for i in b.ids():
        st, obj, _ = call(b.http[i], "GET", path + "?offset=%d&max=1&local=1" % (want - 1))
        check(st == 200 and obj["records"][0]["value"] == value,
              "broker%d's last record: %d" % (i, st))
    # Each replica may hold 36 MiB of entries at its peak, plus allocator
    # slack and the sanitizer's quarantine; the data is 200 MiB.
    for pid in peak:
        grown = peak[pid] - base[pid]
        check(grown < 120, "a broker's RSS grew by %.0f MiB (from %.0f) while 200 MiB were "
              "produced" % (grown, base[pid]))


MIB = 1 << 20


def produce_mib(b, leaders, n_each, n_threads=4):
    """Posts @n_each binary batches of four 256 KiB records (1 MiB) to
    each partition in @leaders ({p: broker id}), from @n_threads threads.
    Each batch has a producer id of its own, so a batch refused with a 421
    or 503 (an election: 1 MiB entries on a loaded machine can cost a
    leader its followers' heartbeats) or left unanswered is sent again to
    the partition's leader, as a client would, without being appended
    twice. Returns the value of every record."""
    value = "".join(chr(ord("a") + i % 26) for i in range(MIB // 4))
    body = binary_body([(None, value)] * 4)
    todo = [(p, k) for p in leaders for k in range(n_each)]
    leaders = dict(leaders)
    errors = []
    lock = threading.Lock()

    def post(p, k):
        path = records_path(TOPIC, p) + "?producer_id=%d&sequence=1" % (1 + p * n_each + k)
        deadline = time.monotonic() + 120
        while True:
            with lock:
                leader = leaders[p]
            try:
                st, obj, _ = call(b.http[leader], "POST", path, raw=body, content_type=BINARY,
                                  timeout=60)
            except Unreachable as e:
                st, obj = 0, str(e)
            if st == 200 or st not in (0, 421, 503) or time.monotonic() > deadline:
                return st, obj
            found = b.wait_leaders([p], 60)[p]
            with lock:
                leaders[p] = found

    def run():
        while not errors:
            with lock:
                if not todo:
                    return
                p, k = todo.pop()
            st, obj = post(p, k)
            if st != 200:
                errors.append("partition %d: %d %r" % (p, st, obj))

    threads = [threading.Thread(target=run) for _ in range(n_threads)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    check(not errors, "produce: %s" % (errors[:1],))
    return value


def wait_held(b, partitions, n_records, value, timeout=60):
    """Waits until every replica of @partitions holds @n_records records
    and serves the last one (@value) again."""
    def held():
        return all(b.replicas(i)[p + 1]["next_offset"] == n_records
                   for i in b.ids() for p in partitions)
    wait_until(held, timeout, "every replica to hold all %d records" % n_records)
    for i in b.ids():
        for p in partitions:
            st, obj, _ = call(b.http[i], "GET",
                              records_path(TOPIC, p) + "?offset=%d&max=1&local=1"
                              % (n_records - 1))
            check(st == 200 and obj["records"][0]["value"] == value,
                  "broker%d partition %d: last record: %d" % (i, p, st))


def set_flag(proc, flag, value):
    """Sets @flag to @value on @proc's command line for its next start."""
    i = proc.argv.index(flag)
    proc.argv[i + 1] = value


def test_memory_budget_after_restart(ctx):
    """30 partitions of 10 MiB each, held whole in memory by brokers whose
    budget is large (each replica may hold 36 MiB): every broker's RSS is
    well over 300 MiB. Restarted with --raft-memory-bytes 64 MiB, each
    replica's share is about 2 MiB, so replaying its log snapshots it: every
    broker's RSS falls below the budget plus 150 MiB (the broker itself,
    allocator slack and the sanitizer's quarantine), and every record is
    still there."""
    ctx.env["ASAN_OPTIONS"] = ctx.env.get("ASAN_OPTIONS", "") + ":quarantine_size_mb=16"
    # Each 1 MiB batch its own entry (no merged produces), so that the
    # counts of entries below follow from the batches sent.
    b = Brokers(ctx, args=["--snapshot-threshold", "4096", "--merge-produces=false",
                           "--raft-memory-bytes", str(4 << 30)]).start()
    parts = list(range(30))
    b.create(parts)
    leaders = b.wait_preferred(parts, 60)
    value = produce_mib(b, leaders, 10)
    wait_held(b, parts, 40, value)
    for i in b.ids():
        held = b.replicas(i)
        check(all(held[p + 1]["raft_log_entries"] >= 10 for p in parts),
              "broker%d snapshotted below its per-replica limit" % i)
    before = [rss_mib(b[i].pid()) for i in b.ids()]
    check(all(rss > 64 + 150 for rss in before),
          "the brokers hold 300 MiB of Raft log each, but their RSS is %s MiB"
          % ", ".join("%.0f" % rss for rss in before))
    for i in b.ids():
        check(b[i].terminate() == 0, "broker%d exited uncleanly" % i)
        set_flag(b[i], "--raft-memory-bytes", str(64 * MIB))
    b.start()
    b.wait_leaders(parts, 60)
    bound = 64 + 150

    def small():
        return all(rss_mib(b[i].pid()) < bound for i in b.ids())
    try:
        wait_until(small, 60, "every broker's RSS to fall below %d MiB" % bound)
    except TestFailure:
        raise TestFailure("RSS after the restart: %s MiB" % ", ".join(
            "%.0f" % rss_mib(b[i].pid()) for i in b.ids()))
    print("    RSS before the restart %s MiB, after %s MiB" % (
        " / ".join("%.0f" % rss for rss in before),
        " / ".join("%.0f" % rss_mib(b[i].pid()) for i in b.ids())))
    wait_held(b, parts, 40, value)


def test_memory_budget_shrinks_idle_replicas(ctx):
    """Four partitions of 8 MiB each fit a 96 MiB budget (24 MiB each), so
    every replica holds all its entries; then 28 more partitions shrink
    every share to 3 MiB. libraft counts its snapshot threshold in entries,
    and a share of 24 MiB is 21 entries of 1 MiB: the eight batches, the
    first configuration and one barrier per election all count, so the
    margin takes a dozen elections (a 16 MiB share was 13 entries, and a
    loaded machine's four elections in one group made its leader snapshot
    before the check). No entry comes to the first four and the brokers
    only hand out the new shares (no compaction, no barrier): each
    replica's snapshot counts follow its share at once, and libraft checks
    them at its next tick, so every replica snapshots by itself and keeps
    only its trailing entries."""
    # Each 1 MiB batch its own entry (no merged produces), as above.
    b = Brokers(ctx, args=["--snapshot-threshold", "4096", "--merge-produces=false",
                           "--raft-memory-bytes", str(96 * MIB)]).start()
    first = list(range(4))
    b.create(first)
    leaders = b.wait_preferred(first, 30)
    value = produce_mib(b, leaders, 8)
    wait_held(b, first, 32, value)
    for i in b.ids():
        held = b.replicas(i)
        check(all(held[p + 1]["raft_log_entries"] >= 8 for p in first),
              "broker%d: entries not held: %r" % (i, [held[p + 1] for p in first]))
    b.create(range(4, 32))

    def shrunk():
        return all(b.replicas(i)[p + 1]["raft_log_entries"] <= 3
                   for i in b.ids() for p in first)
    wait_until(shrunk, 30, "the first four partitions to let go of their entries everywhere")
    for i in b.ids():
        held = b.replicas(i)
        check(all(held[p + 1]["raft_log_bytes"] <= 4 * MIB for p in first),
              "broker%d: %r" % (i, [held[p + 1]["raft_log_bytes"] for p in first]))
    wait_held(b, first, 32, value)


def test_retention(ctx):
    """Past --retention-bytes every replica deletes its oldest segments; a
    read below the first offset is 404 naming first_offset, and reads from
    there still work."""
    b = Brokers(ctx, args=["--segment-bytes", "4096", "--retention-bytes", "16384",
                           "--retention-check-ms", "300"]).start()
    b.create([0])
    b.wait_leaders([0])
    values = []
    for n in range(80):
        recs = [{"value": "r%d-%d-%s" % (n, j, "x" * 200)} for j in range(2)]
        b.produce(0, recs)
        values += [r["value"] for r in recs]
    b.wait_converged([0])
    # Each broker's timer runs on its own schedule, and a pass that ran
    # before the last batches arrived leaves more to delete for the next
    # one. A pass deletes until the log holds at most --retention-bytes
    # (plog_retain), and nothing is written any more, so once a replica's
    # log is that small no later pass changes it: wait for that.
    def trimmed(i):
        size = value(scrape(b.http[i]), "raftq_partition_log_bytes", group=1)
        return b.replicas(i)[1]["first_offset"] > 0 and size <= 16384
    wait_until(lambda: all(trimmed(i) for i in b.ids()), 15,
               "retention to delete old segments everywhere")
    for i in b.ids():
        first = b.replicas(i)[1]["first_offset"]
        obj, _ = expect_failure(b.http[i], "GET", records_path(TOPIC, 0) + "?offset=0&local=1", 404,
                                what="read below the first offset")
        check(obj["first_offset"] == first, "404 names %r, first offset is %d" % (obj, first))
        got = b.read_all(i, 0)
        check(got[0][0] == first and [r[1] for r in got] == values[first:],
              "broker%d: records from %d do not match" % (i, first))
        check(len(got) * 220 < 16384 + 3 * 4096, "broker%d keeps %d records" % (i, len(got)))


def test_kill_restart_catch_up(ctx):
    """A broker is killed with SIGKILL while four producers keep going;
    every partition stays writable; restarted, it catches up, and every
    replica then holds identical records, each acknowledged one exactly
    once."""
    b = Brokers(ctx).start()
    parts = range(5)
    b.create(parts)
    b.wait_leaders(parts)
    prod = Producers(b, ctx.rng, 4, parts).start()
    wait_until(lambda: all(n >= 3 for n in prod.count().values()), 60,
               "3 acknowledged batches per partition")
    # Broker 2 is the preferred leader of partitions 0 and 3 (groups 1
    # and 4): once leadership has settled, killing it forces elections.
    victim = 2
    b.wait_preferred(parts)
    b[victim].kill()
    before = prod.count()
    wait_until(lambda: all(n >= before[p] + 5 for p, n in prod.count().items()), 60,
               "5 more acknowledged batches per partition without broker%d" % victim)
    check(b.leader(0) not in (None, victim) and b.leader(3) not in (None, victim),
          "partitions 0 and 3 have no new leader")
    b.start([victim])
    after = prod.count()
    wait_until(lambda: all(n >= after[p] + 3 for p, n in prod.count().items()), 60,
               "3 more acknowledged batches per partition after the restart")
    prod.stop()
    b.wait_converged(parts)
    logs = b.assert_identical(parts)
    prod.check_against(logs)
    b.wait_preferred(parts)  # The restarted broker leads its groups again.


def test_stopped_group_is_reopened(ctx):
    """libraft 0.15 stops a group for good when it cannot persist a new
    term. A follower's file size limit is cut to one byte (prlimit) and
    the leader killed: the follower's group stops at the election. With
    the limit back, the broker closes and reopens the stopped group, which
    votes, catches up and keeps every record: both replicas then hold the
    same records, each acknowledged one once, in order."""
    b = Brokers(ctx).start()
    parts = [0]
    b.create(parts)
    b.wait_preferred(parts)
    for k in range(5):
        b.produce(0, [{"value": "before-%d" % k}])
    lead = b.leader(0)
    vid = next(i for i in b.ids() if i != lead)
    victim = b[vid]
    pid = str(victim.pid())

    def stopped():
        # Its log file cannot grow either: ask over HTTP.
        r = b.replicas(vid)[1]
        return r["role"] == "unavailable" or r["state"] == "failed"

    subprocess.run(["prlimit", "--pid", pid, "--fsize=1:"], check=True)
    b[lead].kill()
    wait_until(stopped, 60, "the follower's group stopped")
    subprocess.run(["prlimit", "--pid", pid, "--fsize=unlimited:"], check=True)
    wait_until(lambda: count_lines(victim, "g1: reopened") >= 1, 60,
               "the follower's group reopened")
    for k in range(5):
        b.produce(0, [{"value": "after-%d" % k}], deadline_s=60.0)
    b.start([lead])
    b.wait_converged(parts)
    logs = b.assert_identical(parts)
    values = [r[1] for r in logs[0]]
    want = ["before-%d" % k for k in range(5)] + ["after-%d" % k for k in range(5)]
    check(values == want, "partition 0 holds %r" % values)


def fullest_open_segment(raft_dir):
    """The open segment of @raft_dir holding the most data, and the offset
    one past its last non-zero byte."""
    best, best_end = None, 0
    for name in os.listdir(raft_dir):
        if not name.startswith("open-"):
            continue
        path = os.path.join(raft_dir, name)
        with open(path, "rb") as f:
            data = f.read()
        end = len(data.rstrip(b"\0"))
        if end > best_end:
            best, best_end = path, end
    return best, best_end


def test_open_segment_cut_short(ctx):
    """A follower is killed with records in its newest open Raft segment,
    and the file is cut short inside a batch (damage no crash leaves: the
    space is preallocated). libraft 0.15 would free a buffer twice at every
    start; the broker pads the file back with zeros, starts, and catches up:
    every replica then holds the same records."""
    b = Brokers(ctx).start()
    parts = [0]
    b.create(parts)
    b.wait_preferred(parts)
    for k in range(30):
        b.produce(0, [{"value": "cut-%d-%s" % (k, "x" * 200)}])
    lead = b.leader(0)
    vid = next(i for i in b.ids() if i != lead)
    b.wait_converged(parts)
    b[vid].kill()
    raft_dir = os.path.join(b[vid].data_dir, "replicas", "1", "raft")
    path, end = fullest_open_segment(raft_dir)
    check(path is not None and end > 1000, "no open segment with data in %s" % raft_dir)
    os.truncate(path, end - 100)
    b.start([vid])
    b.wait_ready(vid)
    wait_until(lambda: count_lines(b[vid], "padded with zeros") >= 1, 30, "the padding logged")
    for k in range(5):
        b.produce(0, [{"value": "after-%d" % k}])
    b.wait_converged(parts)
    logs = b.assert_identical(parts)
    check(len(logs[0]) == 35, "partition 0 holds %d records" % len(logs[0]))


def test_twenty_partitions_kill_and_stop(ctx):
    """Three brokers, twenty partitions, six concurrent producers. Under
    load one broker is killed with SIGKILL and restarted; then another is
    stopped with SIGSTOP while the producers keep three partitions busy
    until its peers have taken several snapshots of them, and resumed: in
    the groups it led it installs a snapshot manifest and fetches the
    batches it missed. In the end
    every replica of every partition serves the same records and holds the
    same batch bytes on disk, and every acknowledged record is there once,
    at its offset, in its producer's order."""
    threads = 6
    threshold = 64  # Brokers' --snapshot-threshold.
    b = Brokers(ctx).start()
    parts = range(20)
    b.create(parts)
    b.wait_leaders(parts)
    # A stopped broker never answers: a short request timeout sends the
    # producers elsewhere soon (a retry keeps its producer id and sequence).
    prod = Producers(b, ctx.rng, threads, parts, timeout=3.0).start()

    def progress(n, what):
        before = prod.count()
        wait_until(lambda: all(c >= before[p] + n for p, c in prod.count().items()), 60,
                   "%d more acknowledged batches per partition %s" % (n, what))

    def commits(ids):
        """{group: the highest commit index among brokers @ids}."""
        out = {}
        for i in ids:
            for gid, r in b.replicas(i).items():
                out[gid] = max(out.get(gid, 0), r["commit"])
        return out

    progress(2, "at the start")
    # Broker 1 is the preferred leader of partitions 2, 5, 8 and so on:
    # once leadership has settled, killing it forces elections.
    b.wait_preferred(parts)
    killed, stopped = 1, 2
    others = [i for i in b.ids() if i != killed]
    b[killed].kill()
    progress(2, "without broker%d" % killed)
    b.start([killed])
    due = commits(others)
    wait_until(lambda: all(r["state"] == "ready" and r["applied"] >= due[gid]
                           for gid, r in b.replicas(killed).items()), 30,
               "broker%d to apply what its groups committed while it was down" % killed)
    progress(2, "after broker%d's restart" % killed)

    # A member that is stopped, not dead, keeps its connections, and the
    # kernel queues what is sent to it. Its leaders go on streaming entries
    # to it (libraft stays in pipeline mode while sends succeed): resumed, it
    # reads that backlog and needs no snapshot. The groups it led elect new
    # leaders, whose probes (one per heartbeat) carry every entry from the
    # new leader's end at election to its end now, until a snapshot
    # compacts the entry before them (128 are kept behind a snapshot, one is
    # taken every @threshold); after that they are empty. Resumed, the member
    # takes the entries of the last full probe and asks for the rest, which
    # a leader that has moved as far again has compacted too: it sends a
    # snapshot manifest, and the member fetches the batches behind it. The
    # margin covers entries in flight at the stop. The busy partitions are
    # two the stopped broker leads and one it follows.
    b.wait_preferred(parts)
    hot = [0, 3, 1]
    led = hot[:2]
    others = [i for i in b.ids() if i != stopped]
    reps = b.replicas(stopped)
    check(all(reps[p + 1]["role"] == "leader" for p in led),
          "broker%d does not lead partitions %s any more" % (stopped, led))
    b[stopped].pause()
    prod.hot = hot
    at_stop = commits(others)
    need = 2 * (128 + threshold) + 2 * threads + 16

    def moved_on():
        now = commits(others)
        return all(now[p + 1] >= at_stop[p + 1] + need for p in hot)

    wait_until(moved_on, 60, "%d entries in partitions %s while broker%d is stopped"
               % (need, hot, stopped), interval=0.2)
    b[stopped].resume()
    prod.hot = None
    progress(2, "after broker%d resumed" % stopped)
    prod.stop()

    b.wait_converged(parts, timeout=60)
    logs = b.assert_identical(parts)
    prod.check_against(logs)
    prod.check_order(logs)
    check(sum(len(r) for r in logs.values()) == len(prod.acked),
          "the logs hold records nobody acknowledged")
    b.assert_disk_identical(logs)
    log = "\n".join(b[stopped].log_tail(1000000))
    for p in led:
        check(re.search(r"group %d: restored manifest at raft index \d+: gap" % (p + 1), log)
              and "group %d: gap closed" % (p + 1) in log,
              "broker%d's log shows no snapshot installed in group %d and its gap closed"
              % (stopped, p + 1))


def test_replica_rebuilt_from_peers(ctx):
    """A follower's replica is deleted (its data with it) and created again
    with bootstrap=false while its group still lists it: it gets a
    snapshot manifest from the leader and fetches every batch from peers."""
    b = Brokers(ctx, args=["--snapshot-threshold", "16"]).start()
    b.create([0])
    lead = b.wait_preferred([0])[0]  # Stays there: the victim is no candidate.
    victim = next(i for i in b.ids() if i != lead)
    values = []
    for n in range(300):  # Past several snapshots and their trailing entries.
        recs = [{"value": "v%d-%d" % (n, j)} for j in range(1 + n % 3)]
        base, _ = b.produce(0, recs)
        check(base == len(values), "base %d after %d records" % (base, len(values)))
        values += [r["value"] for r in recs]
    st, obj, _ = call(b.http[victim], "DELETE", "/internal/replicas/1")
    check(st == 200, "delete: %d %r" % (st, obj))
    check(not os.path.exists(os.path.join(b[victim].data_dir, "replicas", "1")),
          "the replica's directory is still there")
    expect_failure(b.http[victim], "GET", records_path(TOPIC, 0), 404, what="deleted replica")
    b.produce(0, [{"value": "while-away"}])
    values.append("while-away")
    b.create([0], ids=[victim], bootstrap=False)
    b.produce(0, [{"value": "after"}])
    values.append("after")
    b.wait_converged([0])
    logs = b.assert_identical([0])
    check([r[1] for r in logs[0]] == values, "the rebuilt log holds other values")
    b.assert_disk_identical(logs)
    log = "\n".join(b[victim].log_tail(100000))
    check(re.search(r"g1: fetching offsets 0\.\.", log) is not None,
          "broker%d's log shows no fetch from offset 0" % victim)
    check("g1: caught up" in log, "broker%d's log shows no end of catching up" % victim)


def member_change(b, method, path, body=None, deadline_s=60.0):
    """A membership change sent to its group's leader: follows 421, retries
    503 (which must carry Retry-After) and brokers that cannot answer,
    until another answer comes; returns (status, body)."""
    ids = b.ids()
    target = ids[0]
    deadline = time.monotonic() + deadline_s
    last = None
    while time.monotonic() < deadline:
        try:
            st, obj, hdr = call(b.http[target], method, path, body, timeout=45)
        except Unreachable as e:
            last = str(e)
            target = ids[(ids.index(target) + 1) % len(ids)]
            time.sleep(0.1)
            continue
        last = "%d %r" % (st, obj)
        if st == 421:
            target = obj["leader_id"]
        elif st == 503:  # No leader known there, or a change under way.
            check("Retry-After" in hdr, "a 503 without Retry-After: %r" % obj)
            target = ids[(ids.index(target) + 1) % len(ids)]
            time.sleep(0.2)
        elif st == 404:  # This broker does not host the group.
            target = ids[(ids.index(target) + 1) % len(ids)]
            time.sleep(0.05)
        else:
            return st, obj
    raise TestFailure("%s %s: no answer but 421/503 in %.0fs (last: %s)"
                      % (method, path, deadline_s, last))


def test_membership_change(ctx):
    """A partition on brokers 1-3 with data; broker 4 joins with a replica
    created with bootstrap=false, added as a member; broker 3's member is
    removed, notices it and its replica is deleted; more records; broker 4
    holds every record byte for byte, and after a restart still has the new
    members. Removing down to one voter is refused."""
    b = Brokers(ctx, n=4, args=["--snapshot-threshold", "16"]).start()
    m = {i: {"id": i, "raft_addr": b.raft[i], "http_addr": b.http[i]} for i in b.ids()}
    create = {"topic": TOPIC, "partition_id": 0, "group_id": 1,
              "members": [m[1], m[2], m[3]], "bootstrap": True}
    for i in (1, 2, 3):
        st, obj, _ = call(b.http[i], "POST", "/internal/replicas", create)
        check(st == 200, "create on broker%d: %d %r" % (i, st, obj))
    values = []

    def produce(n, tag):
        b.leader_hint.pop(0, None)  # It may name a broker no longer a member.
        for k in range(n):
            recs = [{"value": "%s-%d-%d" % (tag, k, j)} for j in range(1 + k % 3)]
            base, _ = b.produce(0, recs)
            check(base == len(values), "base %d after %d records" % (base, len(values)))
            values.extend(r["value"] for r in recs)

    def members_at(i):
        rep = b.replicas(i).get(1)
        if rep is None:
            return None
        return [x["id"] for x in rep["members"]], rep["voters"], rep["state"]

    produce(60, "before")  # Past several snapshots: the newcomer gets one.

    # Broker 4 has no replica yet: it is added as a non-voter, the caller's
    # wait ends (503), and libraft gives up catching it up after 5 s.
    lead = 2  # The preferred leader (voters[1 % 3]), where leadership stays.
    wait_until(lambda: b.replicas(lead)[1]["ready"], 15, "broker2 to lead")
    st, obj, hdr = call(b.http[lead], "POST", "/internal/replicas/1/members",
                        dict(m[4], timeout_ms=1000))
    check(st == 503 and "Retry-After" in hdr and "not committed" in obj["message"],
          "adding broker4 before its replica exists: %d %r" % (st, obj))
    def logged(text):
        return any(text in "\n".join(b[i].log_tail(1000)) for i in (1, 2, 3))

    wait_until(lambda: logged("membership change of broker 4: no connection"), 15,
               "libraft to give up on broker4")
    check(members_at(lead)[1] == [1, 2, 3], "voters %r" % (members_at(lead),))
    # Now with its replica there: promoted from non-voter to voter.
    join = dict(create, members=[m[1], m[2], m[3], m[4]], bootstrap=False)
    st, obj, _ = call(b.http[4], "POST", "/internal/replicas", join)
    check(st == 200 and obj["created"], "join replica on broker4: %d %r" % (st, obj))
    st, obj = member_change(b, "POST", "/internal/replicas/1/members", m[4])
    check(st == 200 and obj["voters"] == [1, 2, 3, 4], "add broker4: %d %r" % (st, obj))
    check(logged("promoting broker 4"), "broker4 was not promoted from non-voter")
    wait_until(lambda: all(members_at(i)[:2] == ([1, 2, 3, 4], [1, 2, 3, 4])
                           for i in (1, 2, 3, 4)),
               15, "every replica to follow the configuration with broker4")
    st, obj = member_change(b, "POST", "/internal/replicas/1/members", m[4])
    check(st == 200 and obj["voters"] == [1, 2, 3, 4], "adding broker4 again: %d %r" % (st, obj))
    bad = dict(m[4], raft_addr=b.raft[3])
    st, obj = member_change(b, "POST", "/internal/replicas/1/members", bad)
    check(st == 409, "broker4 at broker3's address: %d %r" % (st, obj))

    st, obj = member_change(b, "DELETE", "/internal/replicas/1/members/3")
    check(st == 200 and obj["voters"] == [1, 2, 4], "remove broker3: %d %r" % (st, obj))
    wait_until(lambda: members_at(3)[2] == "removed", 20, "broker3's replica to see it is removed")
    check(members_at(3)[0] == [1, 2, 3, 4], "a removed replica rewrote its members: %r"
          % (members_at(3),))
    st, obj, _ = call(b.http[3], "DELETE", "/internal/replicas/1")
    check(st == 200, "delete broker3's replica: %d %r" % (st, obj))
    check(not os.path.exists(os.path.join(b[3].data_dir, "replicas", "1")),
          "broker3's replica directory is still there")
    st, obj = member_change(b, "DELETE", "/internal/replicas/1/members/3")
    check(st == 200 and obj["voters"] == [1, 2, 4], "removing broker3 again: %d %r" % (st, obj))

    produce(30, "after")
    ids = [1, 2, 4]
    wait_until(lambda: all(members_at(i)[:2] == ([1, 2, 4], [1, 2, 4]) for i in ids),
               15, "every replica to follow the configuration without broker3")
    b.wait_converged([0], ids=ids)
    logs = b.assert_identical([0], ids=ids)
    check([r[1] for r in logs[0]] == values, "the logs hold other values than produced")
    b.assert_disk_identical(logs, ids=ids)
    with open(os.path.join(b[4].data_dir, "replicas", "1", "replica.json")) as f:
        desc = json.load(f)
    check([x["id"] for x in desc["members"]] == [1, 2, 4]
          and desc["members"][2]["http_addr"] == b.http[4],
          "broker4's replica.json: %r" % desc)

    b[4].terminate()
    b.start([4])
    check(members_at(4)[:2] == ([1, 2, 4], [1, 2, 4]),
          "after a restart broker4 reports %r" % (members_at(4),))
    produce(5, "restarted")
    b.wait_converged([0], ids=ids)
    logs = b.assert_identical([0], ids=ids)
    check([r[1] for r in logs[0]] == values, "after the restart the logs differ")

    st, obj = member_change(b, "DELETE", "/internal/replicas/1/members/2")
    check(st == 200 and obj["voters"] == [1, 4], "remove broker2: %d %r" % (st, obj))
    for gone in (1, 4):
        st, obj = member_change(b, "DELETE", "/internal/replicas/1/members/%d" % gone)
        check(st == 409 and "at least 2" in obj["message"],
              "removing broker%d down to one voter: %d %r" % (gone, st, obj))
    produce(3, "two")
    b.wait_converged([0], ids=[1, 4])
    logs = b.assert_identical([0], ids=[1, 4])
    check([r[1] for r in logs[0]] == values, "with two voters the logs differ")


# ---- Registration with managers ----------------------------------------------


class FakeManagers:
    """Managers as a broker sees them (manager/README.md): HTTP servers in
    this process that share one registry, as a manager cluster shares its
    state. They record every registration and heartbeat, refuse a request
    without a valid broker-to-manager signature (rqsign.verify) with 401,
    and can be told to forget the broker (the next
    heartbeat gets 404), to answer 503 (no leader), or to die (connections
    refused, requests on open connections cut off unanswered)."""

    def __init__(self, ctx, n, secret):
        self.secret = secret
        self.lock = threading.Lock()
        self.known = {}  # broker id -> registration body
        self.seen = []  # (manager, "register" or "heartbeat", broker id, body, status, time)
        self.mode = ["ok"] * n  # per manager: "ok", "forget", "busy" or "dead"
        self.servers = []
        self.urls = []
        for k in range(n):
            port = ctx.ports.take()
            srv = http.server.ThreadingHTTPServer(("127.0.0.1", port), self._handler(k))
            srv.daemon_threads = True
            threading.Thread(target=srv.serve_forever, daemon=True).start()
            self.servers.append(srv)
            self.urls.append("http://127.0.0.1:%d" % port)
        ctx.cleanups.append(self.stop)

    def _handler(fm, k):
        class Handler(http.server.BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args):
                pass

            def do_POST(self):
                body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
                refused = rqsign.verify(self.headers.get(rqsign.HEADER), "POST", self.path,
                                        body, secret=fm.secret, label=rqkeys.HTTP_B2M)
                if self.headers.get("X-Raftq-Secret") is not None:
                    refused = "the secret itself was sent"
                answer = fm._serve(k, self.path, json.loads(body or b"{}"), refused)
                if answer is None:
                    self.close_connection = True  # Dead: no answer at all.
                    return
                status, obj = answer
                data = json.dumps(obj).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                if status == 503:
                    self.send_header("Retry-After", "1")
                self.end_headers()
                self.wfile.write(data)
        return Handler

    def _serve(self, k, path, body, refused):
        with self.lock:
            mode = self.mode[k]
            if mode == "dead":
                return None
            m = re.match(r"^/internal/brokers/(\d+)/heartbeat$", path)
            kind = "register" if path == "/internal/brokers/register" else \
                "heartbeat" if m else path
            bid = body.get("id") if m is None else int(m.group(1))
            if refused is not None:
                status, out = 401, {"status": "failure", "message": "signature: " + refused}
            elif mode == "busy":
                status, out = 503, {"status": "failure", "message": "no leader yet"}
            elif kind == "register":
                self.known[bid] = body
                status, out = 200, {"status": "success", "broker_id": bid}
            elif kind == "heartbeat":
                if mode == "forget":
                    self.known.pop(bid, None)
                    self.mode[k] = "ok"
                if bid in self.known:
                    status, out = 200, {"status": "success", "leader_id": 1}
                else:
                    status, out = 404, {"status": "failure", "message": "unknown broker"}
            else:
                status, out = 404, {"status": "failure", "message": "no such path"}
            self.seen.append((k, kind, bid, body, status, time.monotonic()))
            return status, out

    def events(self, kind, manager=None, status=None):
        with self.lock:
            return [e for e in self.seen if e[1] == kind and manager in (None, e[0])
                    and status in (None, e[4])]

    def kill(self, k):
        with self.lock:
            self.mode[k] = "dead"
        self.servers[k].shutdown()
        self.servers[k].server_close()

    def stop(self):
        for k, srv in enumerate(self.servers):
            if self.mode[k] != "dead":
                self.kill(k)


def test_preferred_leader(ctx):
    """A group created with a preferred_leader settles there rather than on
    its default member; POST .../preferred names another broker on every
    replica and leadership follows and stays; asking to create the replica
    again names one too; the choice survives a restart (replica.json)."""
    b = Brokers(ctx).start()
    # Group 1's default would be members[1 % 3], broker 2; broker 3 is named.
    body = {"topic": TOPIC, "partition_id": 0, "group_id": 1, "members": b.members,
            "bootstrap": True, "preferred_leader": 3}
    for i in b.ids():
        st, obj, _ = call(b.http[i], "POST", "/internal/replicas", body)
        check(st == 200 and obj["created"], "create on broker%d: %d %r" % (i, st, obj))
    wait_until(lambda: b.leader(0) == 3, 30, "broker3, the named preferred leader, to lead")
    check(all(b.replicas(i)[1]["preferred_leader"] == 3 for i in b.ids()),
          "preferred_leader reported %r" % [b.replicas(i)[1] for i in b.ids()])
    b.produce(0, [{"value": "one"}])

    for i in b.ids():
        st, obj, _ = call(b.http[i], "POST", "/internal/replicas/1/preferred", {"broker_id": 1})
        check(st == 200 and obj["preferred_leader"] == 1,
              "preferred on broker%d: %d %r" % (i, st, obj))
    wait_until(lambda: b.leader(0) == 1, 30, "broker1 to take the leadership")
    # It stays there over a round of the brokers' balancing (every 3 s).
    deadline = time.monotonic() + 3.5
    while time.monotonic() < deadline:
        lead = b.leader(0)
        check(lead in (1, None), "leadership moved to broker %r" % lead)
        time.sleep(0.5)
    expect_failure(b.http[1], "POST", "/internal/replicas/1/preferred", 400, {"broker_id": 0},
                   what="broker_id 0")
    expect_failure(b.http[1], "POST", "/internal/replicas/9/preferred", 404, {"broker_id": 1},
                   what="unknown group")
    bad = dict(body, preferred_leader="2")
    expect_failure(b.http[1], "POST", "/internal/replicas", 400, bad, what="preferred as a string")

    # Creating again (idempotent) with another preferred leader names it.
    again = dict(body, preferred_leader=2)
    for i in b.ids():
        st, obj, _ = call(b.http[i], "POST", "/internal/replicas", again)
        check(st == 200 and not obj["created"], "create again on broker%d: %d %r" % (i, st, obj))
    wait_until(lambda: b.leader(0) == 2, 30, "broker2 to take the leadership")
    # A restart keeps it.
    check(b[2].terminate() == 0, "broker2 did not stop cleanly")
    b.start([2])
    check(b.replicas(2)[1]["preferred_leader"] == 2, "after the restart: %r" % b.replicas(2)[1])
    wait_until(lambda: b.leader(0) == 2, 30, "broker2 to lead again after its restart")
    base, _ = b.produce(0, [{"value": "two"}])
    check(base == 1, "base offset %d" % base)


def count_lines(proc, text):
    return sum(text in line for line in proc.log_tail(1000000))


def test_registration_and_heartbeats(ctx):
    """A broker with --managers registers, heartbeats every second with its
    replicas, registers again when a heartbeat gets 404, and moves to the
    next manager when the first dies, logging each change once."""
    fm = FakeManagers(ctx, 2, rqkeys.TEST_SECRET)
    b = Brokers(ctx, n=1, args=["--managers", " %s/, %s" % tuple(fm.urls)]).start()
    wait_until(lambda: fm.events("register", 0, 200), 10, "a registration")
    reg = fm.events("register", 0)[0][3]
    # Its first registration, holding nothing, says so (a removed broker's
    # id comes back that way, manager/README.md).
    check(reg == {"id": 1, "raft_addr": b.raft[1], "http_addr": b.http[1], "fresh": True},
          "registration body %r" % reg)
    me = {"id": 1, "raft_addr": b.raft[1], "http_addr": b.http[1]}
    st, obj, _ = call(b.http[1], "POST", "/internal/replicas",
                      {"topic": TOPIC, "partition_id": 0, "group_id": 1,
                       "members": [me], "bootstrap": True})
    check(st == 200, "create: %d %r" % (st, obj))
    b.produce(0, [{"value": "x"}, {"value": "y"}])

    def reported():
        for e in fm.events("heartbeat", 0, 200):
            reps = e[3].get("replicas", [])
            if reps and reps[0].get("next_offset") == 2:
                return reps[0]
        return None

    rep = wait_until(reported, 10, "a heartbeat reporting the replica")
    disk = fm.events("heartbeat", 0, 200)[-1][3].get("disk") or {}
    check(disk.get("total", 0) > 0 and 0 < disk.get("free", 0) <= disk["total"]
          and disk.get("reserve", 0) > 0 and disk.get("low") is False,
          "heartbeat disk %r" % disk)
    check(rep["group_id"] == 1 and rep["role"] == "leader" and rep["leader_id"] == 1
          and rep["voters"] == [1] and rep["term"] >= 1 and rep["commit"] >= 1
          and rep["preferred_leader"] == 1,
          "heartbeat summary %r" % rep)
    # One a second.
    n0 = len(fm.events("heartbeat"))
    wait_until(lambda: len(fm.events("heartbeat")) >= n0 + 3, 10, "three more heartbeats")
    times = [e[5] for e in fm.events("heartbeat")[n0 - 1:]]
    gaps = [y - x for x, y in zip(times, times[1:])]
    check(all(0.8 <= g <= 1.5 for g in gaps), "heartbeats %r s apart" % gaps)

    fm.mode[0] = "forget"
    wait_until(lambda: len(fm.events("register", 0, 200)) >= 2, 10,
               "registering again after a 404")
    check("fresh" not in fm.events("register", 0, 200)[1][3],
          "a registration again says fresh: %r" % fm.events("register", 0, 200)[1][3])
    after = len(fm.events("heartbeat", 0, 200))
    wait_until(lambda: len(fm.events("heartbeat", 0, 200)) > after, 5,
               "heartbeats after registering again")

    fm.kill(0)
    wait_until(lambda: len(fm.events("heartbeat", 1, 200)) >= 2, 10,
               "heartbeats to the second manager")
    check(not fm.events("register", 1), "the second manager got a registration it did not need")
    check(count_lines(b[1], "registered with manager") == 2
          and count_lines(b[1], "does not know broker 1") == 1
          and count_lines(b[1], "unreachable") == 1,
          "expected one log line per change:\n%s" % "\n".join(b[1].log_tail(30)))
    n = len(fm.events("heartbeat", 1, 200))
    wait_until(lambda: len(fm.events("heartbeat", 1, 200)) >= n + 2, 5, "more heartbeats")
    check(count_lines(b[1], "unreachable") == 1, "a failure logged more than once")


def test_registration_rotates_over_managers(ctx):
    """The first manager is down and the second has no leader at first:
    the broker retries over both until the second takes its registration,
    and says so once, not once per attempt. Until then /readyz says it is
    not registered (503)."""
    fm = FakeManagers(ctx, 2, rqkeys.TEST_SECRET)
    fm.kill(0)
    fm.mode[1] = "busy"
    b = Brokers(ctx, n=1, args=["--managers", ",".join(fm.urls)]).start(wait=False)
    wait_until(lambda: len(fm.events("register", 1, 503)) >= 2, 15,
               "registration attempts at the second manager")
    # Not ready while not registered, and it says why.
    obj, _ = expect_failure(b.http[1], "GET", "/readyz", 503, what="readyz unregistered")
    check("not registered" in obj["message"], "readyz says %r" % obj)
    fm.mode[1] = "ok"
    wait_until(lambda: fm.events("register", 1, 200), 15, "a registration at the second manager")
    wait_until(lambda: fm.events("heartbeat", 1, 200), 5, "a heartbeat")
    b.wait_ready(1)
    check(count_lines(b[1], "cannot register") == 1
          and count_lines(b[1], "registered with manager %s" % fm.urls[1]) == 1,
          "expected one log line per change:\n%s" % "\n".join(b[1].log_tail(30)))


def test_idle_partition_fails_over_at_once(ctx):
    """An idle group gone quiet (its leader heartbeats every second, its
    followers would wait out a 20 s quiet election timeout) whose leader's
    broker is paused: the other brokers' peer watch (a ping each heartbeat
    over the Raft port, silence for an election timeout) makes its
    followers stand at once, so a new leader takes a produce within
    seconds; each survivor counts the peer down. No transfer back to the
    paused broker, its preferred leader, is tried while it answers no ping;
    resumed, it follows, then leads again as the preferred leader."""
    b = Brokers(ctx, args=["--raft-quiet-ms", "1000", "--raft-quiet-heartbeat-ms", "1000",
                           "--raft-quiet-election-timeout-ms", "20000"]).start()
    b.create([0])
    b.wait_leaders([0])
    b.wait_preferred([0])
    b.produce(0, [{"value": "one"}])
    lead = b.leader(0)
    others = [i for i in b.ids() if i != lead]
    wait_until(lambda: all(b.replicas(i)[1]["quiet"] for i in b.ids()), 30,
               "every replica to go quiet")

    def new_leader():
        for i in others:
            r = b.replicas(i)[1]
            if r["role"] == "leader" and r["ready"]:
                return i
        return None

    b[lead].pause()
    started = time.monotonic()
    # Without the peer watch nothing moves for 20-40 s.
    wait_until(lambda: new_leader() is not None, 10,
               "a new leader among brokers %r within 10 s" % others)
    took = time.monotonic() - started
    print("    new leader after %.1f s" % took)
    with b.lock:
        b.leader_hint[0] = new_leader()
    base, by = b.produce(0, [{"value": "two"}], timeout=3)
    check(base == 1 and by in others, "produced at %r by broker %r" % (base, by))
    for i in others:
        check(value(scrape(b.http[i]), "raftq_broker_peers_down_total") >= 1,
              "broker%d counted no peer down" % i)
    # Its preferred leader answers no ping: over a round of balancing
    # (every 3 s) no transfer is tried, and the leadership stays.
    now_leader = by
    deadline = time.monotonic() + 3.5
    while time.monotonic() < deadline:
        check(new_leader() == now_leader, "leadership moved from broker %d" % now_leader)
        time.sleep(0.5)
    check(count_lines(b[now_leader], "handing leadership to broker %d" % lead) == 0,
          "a transfer to the paused broker was tried")
    b[lead].resume()
    b.wait_preferred([0])
    base, _ = b.produce(0, [{"value": "three"}])
    check(base == 2, "base offset %d after the resume" % base)


if __name__ == "__main__":
    run_suite("broker", [
        test_produce_read_everywhere,
        test_produces_merged,
        test_no_merged_entries_for_an_older_peer,
        test_followers_learn_a_leader_both_missed,
        test_dedupe_redirect_long_poll,
        test_bad_input,
        test_binary_produce,
        test_binary_read,
        test_memory_bounded_by_bytes,
        test_memory_budget_after_restart,
        test_memory_budget_shrinks_idle_replicas,
        test_retention,
        test_kill_restart_catch_up,
        test_stopped_group_is_reopened,
        test_open_segment_cut_short,
        test_twenty_partitions_kill_and_stop,
        test_replica_rebuilt_from_peers,
        test_membership_change,
        test_preferred_leader,
        test_idle_partition_fails_over_at_once,
        test_registration_and_heartbeats,
        test_registration_rotates_over_managers,
    ], binary="broker", ports=(26000, 26999))

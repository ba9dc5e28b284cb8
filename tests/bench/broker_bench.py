"""Figures for the broker (issue 3), printed and never asserted.

1. Idle replicas: three brokers each hosting N partition replicas (1,000 by
   default) with nothing produced; CPU (share of one core), RSS, disk and
   open descriptors per broker, in total and per replica; then the same
   after restarting all three with other timing (the restart is timed).
2. Produce throughput: three brokers on 127.0.0.1, replication factor 3,
   1 KiB values in batches, several client processes posting to the
   partition leaders; acknowledged MB/s and records/s, how the CPU was
   split between the brokers and the clients, and the brokers' peak RSS.
   Bodies are binary (application/vnd.raftq.records), with one JSON run to
   compare. Once with the default Raft segment size and once with a larger
   one, which decides the figure.
3. Commit latency: one client, one partition, sequential single-record
   produces; p50 and p99.
4. Restart: a broker holding about 1 GiB over 100 partitions is stopped
   with SIGTERM and started again; time to /readyz and until every one of
   its replicas serves its last record again.

Runs the release build (build/broker), with a fresh temporary directory for
each figure that is removed at the end, and stops every broker it started.
Use --only to run one figure; the other options scale the figures down;
--tls runs the brokers (and the clients) with TLS on every port.
"""

import argparse
import http.client
import json
import multiprocessing
import os
import queue
import random
import shutil
import signal
import struct
import sys
import threading
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "integration"))
import harness  # noqa: E402
import rqkeys  # noqa: E402
import rqsign  # noqa: E402

TOPIC = "bench"
CLK_TCK = os.sysconf("SC_CLK_TCK")
PAGE_KIB = os.sysconf("SC_PAGE_SIZE") // 1024
VALUE_BYTES = 1024


# ---- HTTP ------------------------------------------------------------------


# With --tls: the client's TLS context (the CA and a node certificate, which
# the brokers ask for), set before any client process forks.
TLS_CONTEXT = None


class Client:
    """Keep-alive HTTP connections to the brokers, one per address (HTTPS
    with --tls); every request is signed as a manager signs its calls to
    brokers."""

    def __init__(self, timeout=30.0):
        self.conns = {}
        self.timeout = timeout

    def request(self, addr, method, path, body=None, content_type="application/json"):
        """(status, parsed JSON or None); raises OSError or HTTPException
        when the broker cannot be reached (the connection is dropped)."""
        conn = self.conns.get(addr)
        if conn is None:
            host, port = addr.rsplit(":", 1)
            if TLS_CONTEXT is not None:
                conn = http.client.HTTPSConnection(host, int(port), timeout=self.timeout,
                                                   context=TLS_CONTEXT)
            else:
                conn = http.client.HTTPConnection(host, int(port), timeout=self.timeout)
            self.conns[addr] = conn
        headers = {"Content-Type": content_type} if body is not None else {}
        data = body.encode() if isinstance(body, str) else body
        headers.update(rqsign.headers(method, path, data or b"", label=rqkeys.HTTP_M2B))
        try:
            conn.request(method, path, body=body, headers=headers)
            resp = conn.getresponse()
            text = resp.read()
        except (OSError, http.client.HTTPException):
            conn.close()
            del self.conns[addr]
            raise
        try:
            return resp.status, json.loads(text)
        except ValueError:
            return resp.status, None

    def close(self):
        for c in self.conns.values():
            c.close()
        self.conns = {}


def records_path(p):
    return "/v1/topics/%s/partitions/%d/records" % (TOPIC, p)


BINARY = "application/vnd.raftq.records"


def produce_body(n, value_bytes=VALUE_BYTES, seed=0, form="binary"):
    """A produce request of @n records of @value_bytes ASCII each, encoded
    once (the clients send the same bytes again and again): (content type,
    bytes). @form is "binary" (broker/README.md: count:u32, then per record
    key_len:i32 = -1, value_len:u32, value) or "json"."""
    rng = random.Random(seed)
    alphabet = "abcdefghijklmnopqrstuvwxyz0123456789"
    values = ["".join(rng.choice(alphabet) for _ in range(value_bytes)) for _ in range(min(n, 16))]
    if form == "json":
        return ("application/json",
                json.dumps({"records": [{"value": values[i % len(values)]}
                                        for i in range(n)]}).encode())
    enc = [struct.pack("<iI", -1, value_bytes) + v.encode() for v in values]
    return BINARY, struct.pack("<I", n) + b"".join(enc[i % len(enc)] for i in range(n))


def produce(client, addrs, leader, p, body, deadline, stop=None):
    """Posts @body ((content type, bytes)) to partition @p until
    acknowledged, following 421 and waiting out 503; @leader is a
    one-element list holding the broker address to try first (updated).
    Returns the answer, or None at @deadline or once @stop (an Event) is
    set."""
    while time.monotonic() < deadline and not (stop is not None and stop.is_set()):
        try:
            st, obj = client.request(leader[0], "POST", records_path(p), body[1],
                                     content_type=body[0])
        except (OSError, http.client.HTTPException):
            leader[0] = addrs[(addrs.index(leader[0]) + 1) % len(addrs)]
            time.sleep(0.05)
            continue
        if st == 200:
            return obj
        if st == 421 and obj and obj.get("leader_http"):
            leader[0] = obj["leader_http"]
        elif st in (421, 503):
            time.sleep(0.05)
        else:
            raise SystemExit("bench: produce to partition %d: %d %r" % (p, st, obj))
    return None


# ---- Process figures -------------------------------------------------------


def proc_ticks(pid):
    """utime + stime of @pid (all its threads), in clock ticks."""
    return sum(proc_times(pid))


def rss_kib(pid):
    with open("/proc/%d/statm" % pid) as f:
        return int(f.read().split()[1]) * PAGE_KIB


def fd_count(pid):
    return len(os.listdir("/proc/%d/fd" % pid))


def thread_count(pid):
    return len(os.listdir("/proc/%d/task" % pid))


def du_kib(path):
    """Disk blocks in use under @path (preallocated space included)."""
    total = 0
    for root, _, files in os.walk(path):
        for name in files:
            try:
                total += os.lstat(os.path.join(root, name)).st_blocks // 2
            except OSError:
                pass
    return total


def proc_times(pid):
    """(utime, stime) of @pid in clock ticks."""
    with open("/proc/%d/stat" % pid) as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return int(fields[11]), int(fields[12])


def machine_ticks():
    """(busy, total) clock ticks of every CPU since boot, from /proc/stat."""
    with open("/proc/stat") as f:
        v = [int(x) for x in f.readline().split()[1:]]
    idle = v[3] + v[4]  # idle + iowait
    return sum(v[:8]) - idle, sum(v[:8])


def pct(xs, p):
    xs = sorted(xs)
    return xs[min(len(xs) - 1, int(len(xs) * p / 100.0))]


def mib(kib):
    return kib / 1024.0


# ---- Brokers ---------------------------------------------------------------


class Cluster:
    """Three brokers (ids 1..3) in one harness context, with the release
    defaults except for the flags in @args."""

    def __init__(self, ctx, args=(), n=3, name="broker"):
        self.ctx = ctx
        self.raft = {i: "127.0.0.1:%d" % ctx.ports.take() for i in range(1, n + 1)}
        self.http = {i: "127.0.0.1:%d" % ctx.ports.take() for i in range(1, n + 1)}
        self.args = ["--cluster-secret", rqkeys.TEST_SECRET, "--log-level", ctx.opts.log_level]
        self.extra = ctx.opts.broker_args.split() + ctx.opts.tls_args
        self.procs = {}
        for i in sorted(self.raft):
            data = os.path.join(ctx.dir, "%s%d" % (name, i))
            argv = [ctx.binary, "--id", str(i), "--raft-addr", self.raft[i],
                    "--http-addr", self.http[i], "--data", data]
            argv += self.args + list(args) + self.extra
            d = ctx.daemon("broker", i, argv)
            d.data_dir = data
            self.procs[i] = d
        self.members = [{"id": i, "raft_addr": self.raft[i], "http_addr": self.http[i]}
                        for i in sorted(self.raft)]
        self.client = Client()

    def set_args(self, args):
        """The flags of the next start (after the release defaults)."""
        for i, d in self.procs.items():
            d.argv = d.argv[:d.argv.index("--cluster-secret")] + self.args + list(args) + self.extra

    def gone(self, i):
        """Says that broker @i exited unasked, with the end of its log."""
        print("  !! broker%d exited during the run (status %s); its log ends:"
              % (i, self.procs[i].proc.poll()))
        for line in self.procs[i].log_tail(5):
            print("  !!   " + line)

    def ids(self):
        return sorted(self.procs)

    def addrs(self):
        return [self.http[i] for i in self.ids()]

    def pids(self):
        return {i: self.procs[i].pid() for i in self.ids()}

    def start(self, ids=None, timeout=120.0):
        for i in ids or self.ids():
            self.procs[i].start()
        for i in ids or self.ids():
            self.wait_ready(i, timeout)

    def ready(self, i):
        try:
            st, _ = Client(timeout=2).request(self.http[i], "GET", "/readyz")
        except (OSError, http.client.HTTPException):
            return False
        return st == 200

    def wait_ready(self, i, timeout=120.0):
        def ok():
            if not self.procs[i].running():
                raise SystemExit("bench: broker%d exited; see %s" % (i, self.procs[i].log_path))
            return self.ready(i)
        harness.wait_until(ok, timeout, "broker%d to be ready" % i, interval=0.02)

    def stop(self, ids=None, timeout=300.0):
        """SIGTERMs the brokers together and reaps them; returns the
        seconds until the last one exited, or SystemExit."""
        ids = ids or [i for i in self.ids() if self.procs[i].running()]
        t0 = time.monotonic()
        for i in ids:
            self.procs[i].proc.send_signal(signal.SIGTERM)
            self.procs[i].expect_clean_exit = False
        for i in ids:
            # Not terminate(): a second SIGTERM would find the default action.
            try:
                rc = self.procs[i]._reap(max(1.0, timeout - (time.monotonic() - t0)))
            except Exception:
                self.procs[i].kill()
                raise SystemExit("bench: broker%d did not exit within %.0f s of SIGTERM"
                                 % (i, timeout))
            if rc != 0:
                print("  (broker%d exited with status %s; see %s)"
                      % (i, rc, self.procs[i].log_path))
        return time.monotonic() - t0

    def create(self, partitions, per_broker=2):
        """Places partition p (group p + 1, members 1, 2, 3) on every
        broker, @per_broker requests in flight at each; returns seconds."""
        work = {i: queue.Queue() for i in self.ids()}
        for p in partitions:
            for i in self.ids():
                work[i].put(p)
        errors = []

        def run(i):
            c = Client(timeout=120)
            try:
                while not errors:
                    try:
                        p = work[i].get_nowait()
                    except queue.Empty:
                        return
                    body = json.dumps({"topic": TOPIC, "partition_id": p, "group_id": p + 1,
                                       "members": self.members, "bootstrap": True}).encode()
                    st, obj = c.request(self.http[i], "POST", "/internal/replicas", body)
                    if st != 200:
                        errors.append("creating partition %d on broker%d: %d %r" % (p, i, st, obj))
            except Exception as e:
                errors.append("broker%d: %s" % (i, e))
            finally:
                c.close()

        t0 = time.monotonic()
        threads = [threading.Thread(target=run, args=(i,)) for i in self.ids()
                   for _ in range(per_broker)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        if errors:
            raise SystemExit("bench: " + errors[0])
        return time.monotonic() - t0

    def replicas(self, i):
        """{group_id: status} at broker @i; {} when it cannot answer."""
        try:
            st, obj = self.client.request(self.http[i], "GET", "/internal/replicas")
        except (OSError, http.client.HTTPException):
            return {}
        if st != 200:
            return {}
        return {r["group_id"]: r for r in obj["replicas"]}

    def leaders(self, groups):
        """{group: leader id} for the groups whose ready leader every
        broker agrees on (same leader, same term)."""
        reps = {i: self.replicas(i) for i in self.ids()}
        out = {}
        for g in groups:
            rs = {i: reps[i].get(g) for i in self.ids()}
            if any(r is None for r in rs.values()):
                continue
            lead = [i for i, r in rs.items() if r["role"] == "leader" and r["ready"]]
            if len(lead) != 1:
                continue
            term = rs[lead[0]]["term"]
            if all(r["leader_id"] == lead[0] and r["term"] == term for r in rs.values()):
                out[g] = lead[0]
        return out

    def wait_leaders(self, groups, timeout):
        """Waits until every group has an agreed leader; returns seconds
        (or None with a note when @timeout passed first) and the map."""
        t0 = time.monotonic()
        groups = list(groups)
        while True:
            got = self.leaders(groups)
            if len(got) == len(groups):
                return time.monotonic() - t0, got
            if time.monotonic() - t0 > timeout:
                print("  only %d of %d groups had an agreed leader after %.0f s"
                      % (len(got), len(groups), timeout))
                return None, got
            time.sleep(0.5)

    def terms(self, i):
        return {g: r["term"] for g, r in self.replicas(i).items()}


def preferred(g):
    """The preferred leader of group @g: members[g % 3], members 1, 2, 3."""
    return g % 3 + 1


def broker_line(c, i, cpu, n_replicas, split=""):
    pid = c.procs[i].pid()
    rss = rss_kib(pid)
    disk = du_kib(c.procs[i].data_dir)
    fds = fd_count(pid)
    per = ""
    if n_replicas:
        per = "; per replica %.3f%% CPU, %.1f KiB RSS, %.0f KiB disk, %.1f fds" % (
            cpu / n_replicas, rss / n_replicas, disk / n_replicas, fds / n_replicas)
    print("  broker%d: CPU %5.1f%% of one core %s, RSS %6.1f MiB, disk %7.1f MiB, %5d fds, "
          "%d threads%s" % (i, cpu, split, mib(rss), mib(disk), fds, thread_count(pid), per))
    return rss, disk, fds


# ---- Figure 1: idle replicas -----------------------------------------------


def settle(c, groups, limit_s):
    """Waits (up to @limit_s) for every group to be led by its preferred
    member, as leaders hand over every 3 s; prints the leader counts."""
    t0 = time.monotonic()
    while True:
        lead = c.leaders(groups)
        if len(lead) == len(groups) and all(lead[g] == preferred(g) for g in groups):
            break
        if time.monotonic() - t0 > limit_s:
            break
        time.sleep(1.0)
    counts = {i: sum(1 for g in lead.values() if g == i) for i in c.ids()}
    print("  leaders per broker after %.1f s of settling: %s (preferred: %s; %d groups without "
          "an agreed leader)" % (
              time.monotonic() - t0, " / ".join(str(counts[i]) for i in c.ids()),
              " / ".join(str(sum(1 for g in groups if preferred(g) == i)) for i in c.ids()),
              len(groups) - len(lead)))


def idle_sample(opts, c, groups):
    """Samples the idle brokers for opts.idle_sample_s and prints a line
    per broker and the totals."""
    pids = c.pids()
    time.sleep(2.0)
    terms0 = {i: c.terms(i) for i in c.ids()}
    t0 = time.monotonic()
    before = {p: proc_times(p) for p in pids.values()}
    time.sleep(opts.idle_sample_s)
    after = {p: proc_times(p) for p in pids.values()}
    dt = time.monotonic() - t0
    terms1 = {i: c.terms(i) for i in c.ids()}
    changed = len({g for i in c.ids() for g, t in terms1[i].items() if terms0[i].get(g) != t})
    print("  sampled for %.0f s; groups whose term changed meanwhile: %d" % (dt, changed))
    tot = [0, 0, 0, 0.0]
    n = len(groups)
    for i in c.ids():
        pid = pids[i]
        user = 100.0 * (after[pid][0] - before[pid][0]) / CLK_TCK / dt
        system = 100.0 * (after[pid][1] - before[pid][1]) / CLK_TCK / dt
        rss, disk, fds = broker_line(c, i, user + system, n,
                                     "(user %.1f, system %.1f)" % (user, system))
        tot = [tot[0] + rss, tot[1] + disk, tot[2] + fds, tot[3] + user + system]
    print("  total: CPU %.1f%% of one core, RSS %.1f MiB, disk %.1f MiB, %d fds"
          % (tot[3], mib(tot[0]), mib(tot[1]), tot[2]))


def figure_idle(opts, ctx):
    n = opts.idle_partitions
    e_ms, h_ms = opts.idle_timing[0]
    print("\n== 1. %d idle partition replicas per broker (target: < 10%% of one core, "
          "< 200 MB RSS per broker)" % n)
    print("  config: 3 brokers, %d partitions x 3 replicas (bootstrap), election timeout %d ms, "
          "heartbeat %d ms, other flags at release defaults (--raft-segment-size 256 KiB)"
          % (n, e_ms, h_ms))
    c = Cluster(ctx, ["--election-timeout-ms", str(e_ms), "--heartbeat-ms", str(h_ms)])
    c.start()
    pids = c.pids()
    print("  empty brokers: RSS %s MiB, fds %s" % (
        " / ".join("%.1f" % mib(rss_kib(pids[i])) for i in c.ids()),
        " / ".join(str(fd_count(pids[i])) for i in c.ids())))
    groups = [p + 1 for p in range(n)]
    secs = c.create(range(n))
    print("  created %d replicas (%d per broker) in %.1f s (%.1f ms per replica per broker; "
          "2 requests in flight per broker)" % (3 * n, n, secs, 1000.0 * secs / n))
    secs, _ = c.wait_leaders(groups, opts.idle_wait_s)
    if secs is not None:
        print("  every group had an agreed leader %.1f s later" % secs)
    settle(c, groups, opts.idle_wait_s)
    idle_sample(opts, c, groups)
    for e_ms, h_ms in opts.idle_timing[1:]:
        secs = c.stop()
        print("  SIGTERM of all three brokers to exit: %.1f s" % secs)
        print("  restarting all three with election timeout %d ms, heartbeat %d ms" % (e_ms, h_ms))
        c.set_args(["--election-timeout-ms", str(e_ms), "--heartbeat-ms", str(h_ms)])
        t0 = time.monotonic()
        c.start(timeout=600)
        print("  restart to /readyz 200 on all three (reopening %d replicas each): %.1f s"
              % (n, time.monotonic() - t0))
        secs, _ = c.wait_leaders(groups, opts.idle_wait_s)
        if secs is not None:
            print("  every group had an agreed leader %.1f s later" % secs)
        settle(c, groups, opts.idle_wait_s)
        idle_sample(opts, c, groups)
    for i in c.ids():  # Their clean stop was timed above; this saves half a minute.
        c.procs[i].kill()


# ---- Load generator ----------------------------------------------------------


def load_process(addrs, leaders, parts_per_thread, body, t_go, t_start, t_end, quota, stop, out):
    """One client process: a thread per entry of @parts_per_thread, each
    posting @body to its partitions in turn (one request in flight per
    thread) from @t_go until @t_end, or until each of its partitions has
    @quota acknowledged requests. Puts (requests, records acknowledged
    between @t_start and @t_end, latencies in ms, CPU seconds) on @out."""
    results = []
    lock = threading.Lock()

    def run(parts):
        client = Client(timeout=60)
        hint = {p: [leaders.get(p, addrs[0])] for p in parts}
        done = {p: 0 for p in parts}
        reqs = recs = 0
        lat = []
        k = 0
        while True:
            live = [p for p in parts if quota is None or done[p] < quota]
            if not live:
                break
            p = live[k % len(live)]
            k += 1
            if time.monotonic() >= t_end:
                break
            t0 = time.monotonic()
            obj = produce(client, addrs, hint[p], p, body, t_end + 60, stop)
            t1 = time.monotonic()
            if obj is None:
                break
            done[p] += 1
            if t1 >= t_start and t1 <= t_end:
                reqs += 1
                recs += obj["count"]
                lat.append((t1 - t0) * 1000.0)
        client.close()
        with lock:
            results.append((reqs, recs, lat))

    while time.monotonic() < t_go:
        time.sleep(0.01)
    threads = [threading.Thread(target=run, args=(parts,)) for parts in parts_per_thread]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    cpu = sum(os.times()[:2])
    out.put((sum(r[0] for r in results), sum(r[1] for r in results),
             [x for r in results for x in r[2]], cpu))


def run_load(c, partitions, batch, n_procs, n_threads, secs, warmup=1.0, quota=None,
             form="binary"):
    """Runs @n_procs client processes of @n_threads threads each over
    @partitions (threads take partitions round-robin) for @secs after
    @warmup (or until every partition got @quota requests; then @secs is
    only a bound), posting bodies of @form. Returns a dict of figures."""
    body = produce_body(batch, form=form)
    groups = [p + 1 for p in partitions]
    lead = c.leaders(groups)
    leaders = {g - 1: c.http[i] for g, i in lead.items()}
    slots = [[] for _ in range(n_procs * n_threads)]
    for k, p in enumerate(partitions):
        slots[k % len(slots)].append(p)
    slots = [s for s in slots if s]
    per_proc = [slots[k::n_procs] for k in range(n_procs)]
    per_proc = [x for x in per_proc if x]
    t_go = time.monotonic() + 0.5  # Time for the processes to start.
    t_start = t_go + warmup
    t_end = t_start + secs
    ctx = multiprocessing.get_context("fork")
    out = ctx.Queue()
    stop = ctx.Event()
    procs = [ctx.Process(target=load_process, daemon=True,
                         args=(c.addrs(), leaders, pp, body, t_go, t_start, t_end, quota, stop, out))
             for pp in per_proc]
    for p in procs:
        p.start()
    bpids = c.pids()
    cpids = [p.pid for p in procs]
    while time.monotonic() < t_start:
        time.sleep(0.01)
    before = {pid: proc_ticks(pid) for pid in list(bpids.values()) + cpids}
    m_before = machine_ticks()
    rss_peak = {i: 0 for i in c.ids()}
    t0 = time.monotonic()
    t_meas = None
    after = None
    while any(p.is_alive() for p in procs):
        gone = [i for i in c.ids() if not c.procs[i].running()]
        if gone and not stop.is_set():
            stop.set()
            for i in gone:
                c.gone(i)
        for i, pid in bpids.items():
            rss_peak[i] = max(rss_peak[i], rss_kib(pid))
        if after is None and time.monotonic() >= t_end - 0.2:
            after = {}
            for pid in list(bpids.values()) + cpids:
                try:
                    after[pid] = proc_ticks(pid)
                except OSError:
                    pass
            t_meas = time.monotonic() - t0
            m_after = machine_ticks()
        time.sleep(0.1)
    if after is None:
        after = {pid: proc_ticks(pid) for pid in bpids.values()}
        t_meas = time.monotonic() - t0
        m_after = machine_ticks()
    got = [out.get(timeout=60) for _ in procs]
    for p in procs:
        p.join()
    wall = min(secs, time.monotonic() - t_start)
    reqs = sum(g[0] for g in got)
    recs = sum(g[1] for g in got)
    lat = [x for g in got for x in g[2]]
    res = {
        "reqs": reqs, "recs": recs, "secs": wall, "lat": lat,
        "mb_s": recs * VALUE_BYTES / 1e6 / wall, "rec_s": recs / wall,
        "client_cpu": sum(g[3] for g in got) / wall * 100.0,
        "broker_cpu": {i: 100.0 * (after[pid] - before[pid]) / CLK_TCK / t_meas
                       for i, pid in bpids.items()},
        "rss_peak": rss_peak,
        # Busy share of all CPUs, in percent of one core (200 = both busy).
        "machine_cpu": 100.0 * os.cpu_count() * (m_after[0] - m_before[0])
        / max(1, m_after[1] - m_before[1]),
    }
    return res


# ---- Figure 2: throughput ----------------------------------------------------


def figure_throughput(opts, ctx):
    """Figure 2, then figure 3 measured on the same clusters."""
    n = opts.partitions
    if opts.only != "latency":
        print("\n== 2. Produce throughput (target: >= 50 MB/s committed)")
        print("  config: 3 brokers on 127.0.0.1, release defaults (election 2500 ms, heartbeat "
              "250 ms, snapshot threshold 4096) but for --raft-segment-size; RF 3, %d partitions, "
              "%d-byte values, %.0f s per run after 1 s of warm-up; %d client processes whose "
              "threads each keep one request in flight; MB/s counts acknowledged value bytes; "
              "bodies in the binary form (%s) unless a run says json"
              % (n, VALUE_BYTES, opts.secs, opts.procs, BINARY))
    latencies = []
    for seg in opts.segment_sizes:
        c = Cluster(ctx, ["--raft-segment-size", str(seg)], name="seg%d-broker" % seg)
        c.start()
        c.create(range(n))
        c.wait_leaders([p + 1 for p in range(n)], 60)
        label = "--raft-segment-size %d KiB%s" % (
            seg // 1024, " (the default)" if seg == 262144 else "")
        if opts.only != "latency":
            print("  %s:" % label)
            for batch, threads, form in opts.runs:
                throughput_run(opts, c, n, batch, threads, form)
        latencies.append((label, commit_latencies(opts, c)))
        c.stop()
    print("\n== 3. Single-record commit latency")
    print("  config: one client (Python http.client, keep-alive), one partition at its leader, "
          "%d sequential produces of one %d-byte record (binary body), after the runs above"
          % (opts.latency_n, VALUE_BYTES))
    for label, lat in latencies:
        print("  %s: p50 %.2f ms, p99 %.2f ms, max %.2f ms (%.0f produces/s one at a time)" % (
            label, pct(lat, 50), pct(lat, 99), max(lat), 1000.0 * len(lat) / sum(lat)))


def throughput_run(opts, c, n, batch, threads, form):
    r = run_load(c, list(range(n)), batch, opts.procs, threads, opts.secs, form=form)
    cpu = r["broker_cpu"]
    print("    %-6s batch %4d, %2d threads: %6.1f MB/s, %7.0f records/s, %5.0f requests/s; "
          "request p50 %.0f ms p99 %.0f ms" % (
              form, batch, opts.procs * threads, r["mb_s"], r["rec_s"], r["reqs"] / r["secs"],
              pct(r["lat"], 50) if r["lat"] else 0, pct(r["lat"], 99) if r["lat"] else 0))
    print("      CPU %% of one core: brokers %s, clients %.0f, whole machine %.0f of %d; "
          "peak RSS MiB %s" % (
        " / ".join("%.0f" % cpu[i] for i in c.ids()), r["client_cpu"], r["machine_cpu"],
        100 * os.cpu_count(),
        " / ".join("%.0f" % mib(r["rss_peak"][i]) for i in c.ids())))


def commit_latencies(opts, c):
    """Milliseconds of opts.latency_n sequential single-record produces to
    a partition of their own."""
    p = opts.partitions
    c.create([p])
    _, lead = c.wait_leaders([p + 1], 60)
    addr = [c.http[lead[p + 1]]]
    client = Client()
    body = produce_body(1)
    for _ in range(50):  # Warm-up: connection, leader settled.
        produce(client, c.addrs(), addr, p, body, time.monotonic() + 30)
    lat = []
    for _ in range(opts.latency_n):
        t0 = time.perf_counter()
        obj = produce(client, c.addrs(), addr, p, body, time.monotonic() + 30)
        lat.append((time.perf_counter() - t0) * 1000.0)
        if obj is None:
            raise SystemExit("bench: a single-record produce was not acknowledged in 30 s")
    client.close()
    return lat


# ---- Figure 4: restart -------------------------------------------------------


def readable(c, i, want):
    """The partitions in @want ({p: last offset}) whose last record broker
    @i serves now from its own log (local=1, whatever its role)."""
    out = set()
    client = Client(timeout=5)
    try:
        for p, last in want.items():
            try:
                st, obj = client.request(c.http[i], "GET",
                                         records_path(p) + "?offset=%d&max=1&local=1" % last)
            except (OSError, http.client.HTTPException):
                break
            if st == 200 and obj["records"] and obj["records"][0]["offset"] == last:
                out.add(p)
    finally:
        client.close()
    return out


def figure_restart(opts, ctx):
    n = opts.restart_partitions
    batch = opts.restart_batch
    quota = max(1, opts.restart_mib * (1 << 20) // n // (batch * VALUE_BYTES))
    print("\n== 4. Restart of a broker holding ~%d MiB over %d partitions (target: print the time "
          "to serve again)" % (opts.restart_mib, n))
    print("  config: 3 brokers, release defaults, %d partitions, %d produces of %d x %d-byte records "
          "per partition (%d client threads)" % (n, quota, batch, VALUE_BYTES,
                                                 opts.procs * opts.restart_threads))
    c = Cluster(ctx)
    c.start()
    c.create(range(n))
    groups = [p + 1 for p in range(n)]
    c.wait_leaders(groups, 120)
    r = run_load(c, list(range(n)), batch, opts.procs, opts.restart_threads, 3600.0, warmup=0.0,
                 quota=quota)
    total = r["recs"] * VALUE_BYTES
    print("  produced %.0f MiB of values (%d records) in %.1f s (%.1f MB/s)" % (
        total / 2.0 ** 20, r["recs"], r["secs"], total / 1e6 / r["secs"]))
    reps = c.replicas(1)
    want = {g - 1: reps[g]["next_offset"] - 1 for g in groups}
    harness.wait_until(lambda: all(len(readable(c, i, want)) == n for i in c.ids()), 120,
                       "every replica to hold every record")
    for i in c.ids():
        pid = c.procs[i].pid()
        print("  broker%d before: RSS %.1f MiB, disk %.1f MiB, %d fds, leads %d partitions" % (
            i, mib(rss_kib(pid)), mib(du_kib(c.procs[i].data_dir)), fd_count(pid),
            sum(1 for x in c.leaders(groups).values() if x == i)))
    victim = 1
    print("  broker%d alone: SIGTERM to exit %.2f s" % (victim, c.stop([victim])))
    t0 = time.monotonic()
    c.procs[victim].start()
    c.wait_ready(victim, 600)
    t_ready = time.monotonic() - t0
    harness.wait_until(lambda: len(readable(c, victim, want)) == n, 600,
                       "broker%d to serve every partition again" % victim, interval=0.1)
    t_read = time.monotonic() - t0
    pid = c.procs[victim].pid()
    print("    start to /readyz 200: %.2f s; to every replica serving its last record: %.2f s; "
          "RSS then %.1f MiB" % (t_ready, t_read, mib(rss_kib(pid))))
    print("  all three: SIGTERM to exit %.2f s" % c.stop())
    t0 = time.monotonic()
    for i in c.ids():
        c.procs[i].start()
    for i in c.ids():
        c.wait_ready(i, 600)
    t_ready = time.monotonic() - t0
    harness.wait_until(lambda: all(len(readable(c, i, want)) == n for i in c.ids()), 600,
                       "every broker to serve every partition again", interval=0.1)
    t_read = time.monotonic() - t0
    c.wait_leaders(groups, 600)
    t_lead = time.monotonic() - t0
    print("    start to /readyz 200 on all: %.2f s; every replica serving its last record: %.2f s; "
          "every partition with a leader: %.2f s" % (t_ready, t_read, t_lead))
    print("    RSS then %s MiB"
          % " / ".join("%.1f" % mib(rss_kib(c.procs[i].pid())) for i in c.ids()))
    c.stop()


# ---- Main --------------------------------------------------------------------


def parse_runs(text):
    """"256x4,1000x4:json" -> [(256, 4, "binary"), (1000, 4, "json")]:
    batch size x threads per client process, and the body's form."""
    out = []
    for part in text.split(","):
        part, _, form = part.partition(":")
        b, _, t = part.partition("x")
        if form not in ("", "binary", "json"):
            raise argparse.ArgumentTypeError("a run's form is binary or json, not %r" % form)
        out.append((int(b), int(t or 4), form or "binary"))
    return out


def parse_timing(text):
    """"1000/100,2500/250" -> [(1000, 100), (2500, 250)]."""
    return [tuple(int(x) for x in part.split("/")) for part in text.split(",")]


def parse_ports(text):
    """"26000-26999" -> (26000, 26999)."""
    lo, sep, hi = text.partition("-")
    if not sep or not lo.isdigit() or not hi.isdigit() or int(lo) > int(hi):
        raise argparse.ArgumentTypeError("--ports wants LO-HI, e.g. 26000-26999")
    return int(lo), int(hi)


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--build", default="build")
    ap.add_argument("--only", choices=["idle", "throughput", "latency", "restart"])
    ap.add_argument("--idle-partitions", type=int, default=1000)
    ap.add_argument("--idle-timing", type=parse_timing, default=parse_timing("2500/250,1000/100"),
                    help="election/heartbeat ms of each idle phase (the brokers restart between); "
                    "the first is the broker's default")
    ap.add_argument("--idle-sample-s", type=float, default=10.0)
    ap.add_argument("--idle-wait-s", type=float, default=120.0)
    ap.add_argument("--partitions", type=int, default=12)
    ap.add_argument("--procs", type=int, default=3, help="client processes")
    ap.add_argument("--runs", type=parse_runs,
                    default=parse_runs("256x4,1000x4,1000x8,1000x4:json"),
                    help="batch x threads per process[:binary|json], comma-separated")
    ap.add_argument("--secs", type=float, default=8.0)
    ap.add_argument("--segment-sizes", type=lambda t: [int(x) for x in t.split(",")],
                    default=[262144, 8388608], help="--raft-segment-size of each throughput cluster")
    ap.add_argument("--latency-n", type=int, default=2000)
    ap.add_argument("--keep", action="store_true", help="keep the brokers' directories and logs")
    ap.add_argument("--log-level", default="warn", help="the brokers' --log-level")
    ap.add_argument("--broker-args", default="", help="more broker flags, for every figure")
    ap.add_argument("--restart-partitions", type=int, default=100)
    ap.add_argument("--restart-mib", type=int, default=1024)
    ap.add_argument("--restart-batch", type=int, default=1000)
    ap.add_argument("--restart-threads", type=int, default=4)
    ap.add_argument("--ports", type=parse_ports, default=(27000, 27999), metavar="LO-HI",
                    help="listen in this port range (default 27000-27999)")
    ap.add_argument("--tls", action="store_true",
                    help="TLS on every port of the brokers (certificates made with openssl)")
    opts = ap.parse_args()
    opts.tls_args = []
    if opts.tls:
        global TLS_CONTEXT
        import ssl
        import tempfile
        from rqcerts import make_certs
        d = tempfile.mkdtemp(prefix="bbench-tls-")
        ca, certs = make_certs(d, ["node"], "bench CA")
        cert, key = certs["node"]
        opts.tls_args = ["--tls-cert", cert, "--tls-key", key, "--tls-ca", ca]
        TLS_CONTEXT = ssl.create_default_context(cafile=ca)
        TLS_CONTEXT.load_cert_chain(cert, key)
    opts.binary = os.path.abspath(os.path.join(opts.build, "broker"))
    opts.seed = 1
    if not os.access(opts.binary, os.X_OK):
        raise SystemExit("bench: no %s (make all)" % opts.binary)
    print("\nBroker: release build %s, nproc %d, everything on 127.0.0.1%s"
          % (opts.binary, os.cpu_count(), ", TLS 1.3 on every port" if opts.tls else ""))
    ports = harness.PortPool(*opts.ports)

    def on_signal(signum, frame):
        raise KeyboardInterrupt("signal %d" % signum)

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGHUP, on_signal)
    figures = [("idle", figure_idle), ("throughput", figure_throughput),
               ("restart", figure_restart)]
    for name, fn in figures:
        if opts.only is not None and opts.only != name and not (
                name == "throughput" and opts.only == "latency"):
            continue
        ctx = harness.Context(opts, "bbench-" + name, ports)
        try:
            fn(opts, ctx)
        except KeyboardInterrupt:
            for p in ctx.procs:  # A clean stop of 1,000 replicas takes half a minute.
                p.kill()
            print("bench: interrupted")
            raise SystemExit(130)
        finally:
            problems = ctx.stop_all()
            if problems:
                print("bench: " + "; ".join(problems))
            if opts.keep:
                print("  (kept %s)" % ctx.dir)
            else:
                shutil.rmtree(ctx.dir, ignore_errors=True)


if __name__ == "__main__":
    main()

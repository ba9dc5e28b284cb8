"""make bench's table: raftq beside NATS JetStream and etcd, measured in the
same run on this machine, everything on 127.0.0.1.

    python3 tests/bench/compare.py [--seconds N] [--build DIR] [--out DIR]

1. `raftq dev` (the release build: 3 managers, 3 brokers, data in a fresh
   temporary directory) and `raftq bench --json` against it, every case;
2. tests/bench/peers.py jetstream, then etcd (each starts its own 3-node
   cluster and stops it);
3. the idle figures: 1,000 replicas per broker at the broker's default
   timing and at 1 s / 100 ms (tests/bench/broker_bench.py --only idle);
then one table, each case with raftq's figure, the peer's and their
ratio, printed and written with the machine's description to
tests/bench/results/DATE.md. Nothing here is asserted: a case that could not
be measured says so in its row. Only what this script started is stopped.
"""

import argparse
import datetime
import json
import os
import platform
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import urllib.request

ROOT = os.path.abspath(os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", ".."))
DEV_PORT = 30500   # raftq dev: managers 30500.., brokers 30520.. and 30540..
PEER_PORT = 30000  # peers.py: 30000..30112
READY_S = 90.0

# Each row: what it measures, raftq's case, the peer's (system, case) or
# None, and which figure the two are compared by.
ROWS = [
    ("produce 100 B, one message a request, 64 in flight / JetStream async, 64 in flight",
     "produce_100b_many", ("jetstream", "produce_100b_64"), "msgs"),
    ("the same at 1 KiB",
     "produce_1k_many", ("jetstream", "produce_1k_64"), "msgs"),
    ("produce 100 B, one raftq_produce() call a message, libraftq batching behind the calls / "
     "JetStream async publish, 64 in flight",
     "lib_produce_100b", ("jetstream", "produce_100b_64"), "msgs"),
    ("produce 100 B, one message a request, 256 in flight / JetStream async, 256 in flight",
     "produce_100b_many+256", ("jetstream", "produce_100b_many"), "msgs"),
    ("the same at 1 KiB",
     "produce_1k_many+256", ("jetstream", "produce_1k_many"), "msgs"),
    ("produce, one in flight: p50 / p99 / max",
     "produce_1_inflight", ("jetstream", "produce_1_inflight"), "latency"),
    ("the same over --latency-seconds (60 s; raftq): p50 / p99 / max",
     "produce_1_inflight+long", ("jetstream", "produce_1_inflight"), "latency"),
    ("batch API, 1000 x 1 KiB a request, 12 partitions, 12 in flight / JetStream async 1 KiB",
     "batch_1k_x1000", ("jetstream", "produce_1k_many"), "msgs"),
    ("the same with the binary body (application/vnd.raftq.records)",
     "batch_1k_x1000+binary", ("jetstream", "produce_1k_many"), "msgs"),
    ("read 1000 records a request, 12 partitions, 100 B / JetStream pull consumer, batch 1000",
     "read_batch_1000_100b", ("jetstream", "read_batch_1000_100b"), "msgs"),
    ("the same at 1 KiB",
     "read_batch_1000_1k", ("jetstream", "read_batch_1000_1k"), "msgs"),
    ("the same, binary answers (Accept: application/vnd.raftq.records), 100 B",
     "read_batch_1000_100b+binary", ("jetstream", "read_batch_1000_100b"), "msgs"),
    ("the same, binary answers, 1 KiB",
     "read_batch_1000_1k+binary", ("jetstream", "read_batch_1000_1k"), "msgs"),
    ("GET /consumer/consume, one consumer, 1 in flight",
     "consume_1", None, "msgs"),
    ("GET /consumer/consume, one consumer, 8 in flight",
     "consume_8", None, "msgs"),
    ("consumer offset commits, 32 in flight / etcd put, 32 connections",
     "offset_commit_32", ("etcd", "etcd_put_32"), "msgs"),
    ("consumer group of 3, 12 partitions, fetch 1000 and commit each fetch, 100 B / "
     "JetStream: 3 workers on one durable pull consumer, batch 1000, every message acked",
     "group_3x12", ("jetstream", "group_3x12"), "msgs"),
]

# Runs of raftq bench after the first, on the same cluster: (suffix of the
# case names, seconds (None: as the first run; "latency": --latency-seconds),
# options, cases).
EXTRA_RUNS = [
    ("+binary", None, ["--binary"],
     ["batch_1k_x1000", "read_batch_1000_100b", "read_batch_1000_1k"]),
    ("+long", "latency", [], ["produce_1_inflight"]),
    ("+256", None, ["--in-flight", "256"], ["produce_100b_many", "produce_1k_many"]),
]


def log(msg):
    print("bench: %s" % msg, file=sys.stderr, flush=True)


def ready(url):
    try:
        with urllib.request.urlopen(url + "/readyz", timeout=2) as r:
            return r.status == 200
    except OSError:
        return False


def run_json(argv, timeout):
    """Runs @argv; returns its JSON lines by (system, case), and a reason
    when it failed."""
    log("running %s" % " ".join(os.path.relpath(a, ROOT) if a.startswith(ROOT) else a
                                for a in argv))
    try:
        p = subprocess.run(argv, cwd=ROOT, stdout=subprocess.PIPE, timeout=timeout)
    except subprocess.TimeoutExpired:
        return {}, "did not finish within %d s" % timeout
    rows = {}
    for line in p.stdout.decode("utf-8", "replace").splitlines():
        try:
            row = json.loads(line)
        except ValueError:
            continue
        rows[(row.get("system"), row.get("case"))] = row
    return rows, None if p.returncode == 0 else "exit %d" % p.returncode


def raftq_figures(build, seconds, latency_seconds):
    """raftq dev on fresh data, raftq bench against it, raftq dev stopped."""
    data = tempfile.mkdtemp(prefix="raftq-bench-")
    raftq = os.path.join(build, "raftq")
    dev = subprocess.Popen([raftq, "dev", "--data", data, "--base-port", str(DEV_PORT)],
                           cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                           start_new_session=True)
    urls = ["http://127.0.0.1:%d" % (DEV_PORT + i) for i in range(3)]
    try:
        deadline = time.monotonic() + READY_S
        while not all(ready(u) for u in urls):
            if dev.poll() is not None:
                return {}, "raftq dev exited %d (logs under %s)" % (dev.returncode, data)
            if time.monotonic() > deadline:
                return {}, "raftq dev was not ready within %d s" % READY_S
            time.sleep(0.5)
        log("raftq dev ready at %s" % ",".join(urls))
        base = [raftq, "bench", "--json", "--managers", ",".join(urls)]
        rows, why = run_json(base + ["--seconds", str(seconds)], timeout=60 * (seconds + 30))
        # The same cluster again for what the first run leaves out: the
        # binary bodies, and the latency case over the full minute.
        for suffix, secs, extra, cases in EXTRA_RUNS:
            long = secs == "latency"
            secs = latency_seconds if long else secs or seconds
            # Beside the minute-long latency run, what the machine itself
            # did meanwhile: how long a sleeping thread waited to run.
            probe = subprocess.Popen([os.path.join(build, "bench", "stalls"), str(secs + 1)],
                                     cwd=ROOT, stdout=subprocess.PIPE) if long else None
            got, more = run_json(base + ["--seconds", str(secs)] + extra + cases,
                                 timeout=60 * (secs + 30))
            rows.update({(s, c + suffix): r for (s, c), r in got.items()})
            why = why or more
            if probe is not None:
                out, _ = probe.communicate(timeout=60)
                try:
                    rows[("machine", "stalls")] = json.loads(out.decode())
                except ValueError:
                    why = why or "tests/bench/stalls printed no figures"
        return rows, why
    finally:
        if dev.poll() is None:
            dev.send_signal(signal.SIGINT)
            try:
                dev.wait(timeout=60)
            except subprocess.TimeoutExpired:
                os.killpg(dev.pid, signal.SIGKILL)
                dev.wait()
        shutil.rmtree(data, ignore_errors=True)


def idle_figure(build):
    """Per broker CPU and RSS with 1,000 idle replicas each: at the broker's
    default timing, then at 1 s / 100 ms (the brokers restarted between);
    [(cpu %, rss MiB) of the busiest broker, one a timing]."""
    argv = [sys.executable, os.path.join(ROOT, "tests", "bench", "broker_bench.py"),
            "--build", build, "--only", "idle", "--idle-timing", "2500/250,1000/100"]
    log("running broker_bench.py --only idle (1,000 replicas per broker)")
    try:
        p = subprocess.run(argv, cwd=ROOT, stdout=subprocess.PIPE, timeout=900)
    except subprocess.TimeoutExpired:
        return None, "did not finish within 900 s"
    out = p.stdout.decode("utf-8", "replace")
    figures = []
    for phase in out.split("restarting all three with"):
        found = re.findall(r"broker\d: CPU +([\d.]+)% of one core.*?RSS +([\d.]+) MiB", phase)
        if found:
            figures.append((max(float(c) for c, _ in found), max(float(r) for _, r in found)))
    if p.returncode != 0 or len(figures) != 2:
        return None, "broker_bench.py exit %d" % p.returncode
    return figures, None


def fmt_rate(v):
    if v is None:
        return "-"
    return "%.1fk" % (v / 1000) if v >= 1000 else "%.0f" % v


def figure(row, kind):
    if row is None:
        return "-"
    if kind == "latency":
        return "%s / %s / %s ms" % tuple(
            "-" if row.get(k) is None else "%.2f" % row[k] for k in ("p50_ms", "p99_ms", "max_ms"))
    text = "%s msg/s" % fmt_rate(row.get("msgs_per_s"))
    if row.get("mb_per_s") is not None and row.get("size", 0) >= 1024:
        text += ", %.0f MB/s" % row["mb_per_s"]
    return text


def ratio(ours, theirs, kind):
    if ours is None or theirs is None:
        return "-"
    if kind == "latency":
        a, b = ours.get("p50_ms"), theirs.get("p50_ms")
        return "-" if not a or not b else "p50 %.2fx" % (a / b)
    a, b = ours.get("msgs_per_s"), theirs.get("msgs_per_s")
    return "-" if not a or not b else "%.2fx" % (a / b)


def machine():
    model = ""
    try:
        with open("/proc/cpuinfo") as f:
            model = next((line.split(":", 1)[1].strip() for line in f
                          if line.startswith("model name")), "")
    except OSError:
        pass
    mem = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**30
    return "%s, %d cores, %.0f GiB, Linux %s" % (model or platform.machine(), os.cpu_count(),
                                                  mem, platform.release())


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--seconds", type=float, default=10.0, help="per case (default 10)")
    ap.add_argument("--latency-seconds", type=float, default=60.0,
                    help="the second one-in-flight run (default 60: max over a minute)")
    ap.add_argument("--build", default=os.path.join(ROOT, "build"))
    ap.add_argument("--out", default=os.path.join(ROOT, "tests", "bench", "results"))
    ap.add_argument("--no-idle", action="store_true", help="leave out the idle figure")
    opts = ap.parse_args()
    build = os.path.abspath(opts.build)
    started = datetime.datetime.now(datetime.timezone.utc)
    load_before = os.getloadavg()[0]
    figures, failures = {}, {}
    got, why = raftq_figures(build, opts.seconds, opts.latency_seconds)
    figures.update(got)
    failures["raftq"] = why
    for system in ("jetstream", "etcd"):
        got, why = run_json([sys.executable, os.path.join(ROOT, "tests", "bench", "peers.py"),
                             system, "--seconds", str(opts.seconds), "--build", build,
                             "--base-port", str(PEER_PORT)], timeout=60 * (opts.seconds + 30))
        figures.update(got)
        failures[system] = why
    idle, idle_why = (None, "left out") if opts.no_idle else idle_figure(build)

    lines = ["# raftq beside NATS JetStream and etcd",
             "",
             "%s; %s" % (started.strftime("%Y-%m-%d %H:%M UTC"), machine()),
             "load average (1 min) before the run: %.2f%s" % (
                 load_before, " (something else was running: the figures are rough)"
                 if load_before > 1.0 else ""),
             "raftq: raftq dev (release build, 3 managers, 3 brokers), raftq bench, %g s a case;"
             % opts.seconds,
             "JetStream: 3 nats-server, R3 file stream; etcd: 3 etcd-server, JSON gateway "
             "(tests/bench/peers.py). Ratio: raftq / peer.",
             "",
             "| case | raftq | peer | ratio |",
             "|---|---|---|---|"]
    for what, ours, peer, kind in ROWS:
        mine = figures.get(("raftq", ours))
        theirs = figures.get(peer) if peer else None
        cell = figure(mine, kind)
        lines.append("| %s | %s | %s | %s |" % (what, cell,
                                                 figure(theirs, kind) if peer else "-",
                                                 ratio(mine, theirs, kind)))
    for k, timing in enumerate(["the broker's defaults (2.5 s election timeout / 250 ms "
                                "heartbeat)", "1 s election timeout / 100 ms heartbeat"]):
        lines.append("| 1,000 idle replicas per broker, %s: CPU of one core, RSS "
                     "(the busiest broker) | %s | - | - |"
                     % (timing, "%.1f%%, %.0f MiB" % idle[k] if idle else idle_why))
    st = figures.get(("machine", "stalls"))
    lines.append("| the machine during that minute (tests/bench/stalls: a thread sleeping 1 ms at a "
                 "time): its longest wait past the 1 ms, and how many passed 10 ms | %s | - | - |"
                 % ("%.2f ms, %d" % (st["max_ms"], st["over_10ms"]) if st else "-"))
    said = [(s, w) for s, w in failures.items() if w]
    if said:
        lines.append("")
        lines += ["%s: %s" % (s, w) for s, w in said]
    text = "\n".join(lines) + "\n"
    print(text, end="")
    os.makedirs(opts.out, exist_ok=True)
    path = os.path.join(opts.out, started.strftime("%Y-%m-%d-%H%M.md"))
    with open(path, "w") as f:
        f.write(text)
    log("written to %s" % os.path.relpath(path, ROOT))


if __name__ == "__main__":
    main()

"""Integration tests of libraftq, the C client library, against a live cluster.

- The examples (examples/producer.c and examples/group_consumer.c, built by
  make into BUILD/examples): the producer's messages are all delivered, each
  key's in order in its partition; a group consumer prints every message
  once and commits them all, and members sharing a group print every
  message between them.
- `raftq produce`, which produces through the library, fed standard input
  at a steady pace while the managers' leader is SIGKILLed, and then the
  first manager the client asks while the brokers are paused (SIGSTOP)
  with its batches: it exits 0, and every line is in the topic exactly once (a batch whose answer was lost is sent again under
  the same producer id and sequence, and the partition appends it once).
- make install PREFIX=DIR: a program built with `pkg-config --cflags --libs
  raftq` against the installed shared library runs and delivers.

Needs no root. Run:
python3 tests/integration/test_libraftq.py [--build DIR] [--ports LO-HI].
"""

import os
import re
import subprocess
import sys
import threading
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from harness import SANITIZER_RE, check, run_suite, wait_until  # noqa: E402
from test_manager import Cluster, check_ok  # noqa: E402

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
RUN_TIMEOUT = 180


def managers_arg(c, order=None):
    return ",".join("http://%s" % c.m_http[i] for i in (order or sorted(c.m_http)))


def run(ctx, argv, stdin=None, env=None, timeout=RUN_TIMEOUT):
    p = subprocess.run(argv, input=stdin, capture_output=True, timeout=timeout,
                       env=env or ctx.env)
    out, err = p.stdout.decode("utf-8", "replace"), p.stderr.decode("utf-8", "replace")
    check(not SANITIZER_RE.search(err), "%s: sanitizer report: %s" % (argv[0], err[-3000:]))
    return p.returncode, out, err


def read_partition(c, i, topic, p):
    """Every record of partition @p of @topic, as (offset, value)."""
    got, offset = [], 0
    while True:
        st, obj = c.call(i, "GET", "/v1/topics/%s/partitions/%d/records" % (topic, p),
                         query={"offset": offset, "max": 10000})
        check_ok(st, obj, "read %s/%d at %d" % (topic, p, offset))
        got += [(r["offset"], r["value"]) for r in obj["records"]]
        if obj["next_offset"] >= obj["high_watermark"]:
            return got
        offset = obj["next_offset"]


def test_examples(ctx):
    c = Cluster(ctx).start()
    c.create_topic(1, "orders", 3)
    c.wait_topic_led("orders")
    producer = os.path.join(ctx.opts.build, "examples", "producer")
    rc, out, err = run(ctx, [producer, managers_arg(c), "orders", "3000"])
    check(rc == 0 and out == "delivered 3000, failed 0\n",
          "producer example: %d %r %r" % (rc, out, err[-500:]))
    # Each key's messages in the order they were produced, in one partition.
    by_key = {}
    total = 0
    for p in range(3):
        for _, value in read_partition(c, 2, "orders", p):
            i = int(value.split("-")[1])
            by_key.setdefault(i % 10, []).append((p, i))
            total += 1
    check(total == 3000, "%d records in the topic, not 3000" % total)
    for key, seen in by_key.items():
        check(len({p for p, _ in seen}) == 1, "key-%d in partitions %r" % (key, seen[:5]))
        numbers = [i for _, i in seen]
        check(numbers == sorted(numbers) and len(numbers) == 300,
              "key-%d: %d messages, out of order: %r" % (key, len(numbers), numbers[:10]))
    # A group consumer reads every message once and commits it all.
    consumer = os.path.join(ctx.opts.build, "examples", "group_consumer")
    rc, out, err = run(ctx, [consumer, managers_arg(c), "billing", "orders", "3000"])
    check(rc == 0, "group consumer: %d %r" % (rc, err[-800:]))
    values = sorted(line.split(" ", 2)[2] for line in out.splitlines())
    want = sorted("message-%d" % i for i in range(3000))
    check(values == want, "the consumer printed %d lines, %d distinct, of 3000"
          % (len(values), len(set(values) & set(want))))
    st, obj = c.call(1, "GET", "/v1/groups/billing")
    check_ok(st, obj, "describe billing")
    check(all(o["lag"] == 0 for o in obj["offsets"]) and obj["members"] == [],
          "after the consumer left: %r" % obj)
    # Two share another group, each stopping once a poll waited 2 s for
    # nothing (which a rebalance can make happen early), then a third
    # drains what is left: nothing committed went unprinted, so together
    # they print every message, at least once, and the group's lag is 0.
    procs = [subprocess.Popen([consumer, managers_arg(c), "audit", "orders"],
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=ctx.env)
             for _ in range(2)]
    outs = [p.communicate(timeout=RUN_TIMEOUT) for p in procs]
    lines = []
    for p, (out, err) in zip(procs, outs):
        err = err.decode()
        check(p.returncode == 0 and not SANITIZER_RE.search(err),
              "group consumer: %d %r" % (p.returncode, err[-800:]))
        lines += out.decode().splitlines()
    rc, out, err = run(ctx, [consumer, managers_arg(c), "audit", "orders"])
    check(rc == 0, "the third group consumer: %d %r" % (rc, err[-800:]))
    lines += out.splitlines()
    values = set(line.split(" ", 2)[2] for line in lines)
    check(values == set(want), "three consumers printed %d of the 3000" % len(values & set(want)))
    st, obj = c.call(1, "GET", "/v1/groups/audit")
    check_ok(st, obj, "describe audit")
    check(all(o["lag"] == 0 for o in obj["offsets"]), "audit after its consumers: %r" % obj)


def test_produce_through_manager_kills(ctx):
    c = Cluster(ctx).start()
    c.create_topic(1, "bulk", 3)
    c.wait_topic_led("bulk")
    n = 30000
    lines = ["line-%05d" % i for i in range(n)]
    env = dict(ctx.env)
    env["RAFTQ_MANAGERS"] = managers_arg(c)
    env.pop("RAFTQ_ADMIN_TOKEN", None)
    p = subprocess.Popen([ctx.binary.replace("manager", "raftq"), "produce", "bulk",
                          "--batch", "200"],
                         stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                         env=env)
    fed = [0]

    def feed():
        # About 6 s of input: 500 lines every 100 ms.
        for k in range(0, n, 500):
            p.stdin.write(("\n".join(lines[k:k + 500]) + "\n").encode())
            p.stdin.flush()
            fed[0] = k + 500
            time.sleep(0.1)
        p.stdin.close()
    t = threading.Thread(target=feed)
    t.start()
    wait_until(lambda: fed[0] >= n // 5, 30, "a fifth of the input fed")
    leader = c.wait_leader()
    c.managers[leader].kill()
    killed = [leader]
    wait_until(lambda: fed[0] >= 2 * n // 5, 30, "two fifths of the input fed")
    c.managers[leader].start()
    wait_until(lambda: fed[0] >= n // 2, 30, "half the input fed")
    # The batches in flight reach the brokers and wait there, paused, while
    # the manager that sent them (the first the client asks) is killed:
    # resumed, the brokers append them, and their answers are lost.
    for b in c.brokers.values():
        b.pause()
    time.sleep(0.3)  # The length of the pause, a fault, not a wait.
    c.managers[1].kill()
    killed.append(1)
    for b in c.brokers.values():
        b.resume()
    t.join(timeout=60)
    check(not t.is_alive(), "the input was not all fed in 60 s")
    p.wait(timeout=RUN_TIMEOUT)  # Its answers are one line each: no pipe fills.
    out, err = p.stdout.read().decode(), p.stderr.read().decode()
    check(not SANITIZER_RE.search(err), "raftq produce: sanitizer report: %s" % err[-3000:])
    check(p.returncode == 0 and out == "produced %d records to topic 'bulk'\n" % n,
          "raftq produce through the kills of managers %s: %d %r %r"
          % (killed, p.returncode, out, err[-600:]))
    print("  managers %s killed; %s" % (killed, err.strip() or "no batch sent again"))
    alive = [i for i in c.running_managers()]
    parts = [read_partition(c, alive[0], "bulk", part) for part in range(3)]
    got = [v for records in parts for _, v in records]
    dup = len(got) - len(set(got))
    missing = set(lines) - set(got)
    check(dup == 0 and not missing and len(got) == n,
          "%d records for %d lines: %d twice, %d missing (managers %s killed)"
          % (len(got), n, dup, len(missing), killed))
    for part, records in enumerate(parts):
        check([o for o, _ in records] == list(range(len(records))),
              "partition %d: offsets not contiguous" % part)
        values = [v for _, v in records]
        check(values == sorted(values), "partition %d out of the input's order" % part)


def test_install(ctx):
    build = os.path.abspath(ctx.opts.build)
    prefix = os.path.join(ctx.dir, "prefix")
    san = ["SAN=1"] if os.path.basename(build.rstrip("/")) == "asan" else []
    rc, out, err = run(ctx, ["make", "-s", "-C", ROOT, "install", "BUILD=" + build,
                             "PREFIX=" + prefix] + san)
    check(rc == 0, "make install: %d %s %s" % (rc, out[-500:], err[-1500:]))
    for f in ("include/raftq.h", "lib/libraftq.a", "lib/libraftq.so", "lib/libraftq.so.0",
              "lib/pkgconfig/raftq.pc"):
        check(os.path.exists(os.path.join(prefix, f)), "make install made no %s" % f)
    env = dict(ctx.env, PKG_CONFIG_PATH=os.path.join(prefix, "lib", "pkgconfig"))
    rc, flags, err = run(ctx, ["pkg-config", "--cflags", "--libs", "raftq"], env=env)
    check(rc == 0 and "-lraftq" in flags and prefix in flags, "pkg-config: %r %r" % (flags, err))
    exe = os.path.join(ctx.dir, "producer")
    extra = ["-fsanitize=address,undefined"] if san else []
    rc, out, err = run(ctx, ["cc", "-std=c11", "-Wall", "-Werror"] + extra +
                       [os.path.join(ROOT, "examples", "producer.c"), "-o", exe] +
                       flags.split(), env=env)
    check(rc == 0, "building against the installed library: %s" % err[-1500:])
    rc, out, err = run(ctx, ["ldd", exe])
    check(re.search(r"libraftq\.so\.0 => %s" % re.escape(os.path.join(prefix, "lib")), out)
          or "libraftq.so.0 => not found" in out,
          "the example does not link the shared library: %s" % out)
    c = Cluster(ctx, n_managers=1, n_brokers=3).start()
    env["LD_LIBRARY_PATH"] = os.path.join(prefix, "lib")
    rc, out, err = run(ctx, [exe, managers_arg(c), "installed", "200"], env=env)
    check(rc == 0 and out == "delivered 200, failed 0\n", "installed producer: %d %r %r"
          % (rc, out, err[-500:]))


if __name__ == "__main__":
    run_suite("libraftq", [test_examples, test_produce_through_manager_kills, test_install],
              binary="manager", ports=(20500, 20999))

"""Integration test of the status page's route (/ui) on one manager.

The page itself is judged in a browser by make test-ui (tests/ui/test_ui.py);
this suite, part of make test, needs no browser: it checks that a manager
serves the page exactly as manager/ui/index.html holds it, as HTML that is
never cached, without the admin token the data behind it needs, and that
the file loads nothing from elsewhere; and that GET /admin/topics, the
summary the page polls instead of describing every topic, counts what the
descriptions show, through a broker killed with SIGKILL; and that GET
/admin/topics/{topic}/traffic, the series the page draws its rates from,
counts exactly the records and bytes produced through every manager and
every produce path, starts empty at a new leader and counts exactly again
after a failover and a manager's restart, never a negative rate, and
answers bad input with 400 and 404 and their codes. Needs no root. Run:
python3 tests/integration/test_status_page.py [--build DIR] [--ports LO-HI].
"""

import http.client
import os
import re
import struct
import subprocess
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from harness import check, run_suite, wait_until  # noqa: E402
from test_manager import Cluster, Unreachable, call, check_failure, check_ok  # noqa: E402

PAGE = os.path.join(os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))),
                    "manager", "ui", "index.html")
TOKEN = "page-token"


def get(addr, method, path):
    host, port = addr.rsplit(":", 1)
    conn = http.client.HTTPConnection(host, int(port), timeout=10)
    try:
        conn.request(method, path)
        r = conn.getresponse()
        return r.status, {k.lower(): v for k, v in r.getheaders()}, r.read()
    finally:
        conn.close()


def test_page_served(ctx):
    with open(PAGE, "rb") as f:
        want = f.read()
    c = Cluster(ctx, n_managers=1, n_brokers=0, admin_token=TOKEN).start(wait=False)
    addr = c.m_http[1]

    def up():
        try:
            return get(addr, "GET", "/healthz")[0] == 200
        except (OSError, http.client.HTTPException):
            return False
    wait_until(up, 20, "manager1 to answer")
    for path in ("/ui", "/ui/", "/ui?refresh=1"):
        st, hdr, body = get(addr, "GET", path)
        check(st == 200, "GET %s: %d" % (path, st))
        check(hdr.get("content-type") == "text/html; charset=utf-8",
              "GET %s: Content-Type %r" % (path, hdr.get("content-type")))
        check(hdr.get("cache-control") == "no-cache",
              "GET %s: Cache-Control %r" % (path, hdr.get("cache-control")))
        check("connect-src 'self'" in hdr.get("content-security-policy", ""),
              "GET %s: Content-Security-Policy %r" % (path, hdr.get("content-security-policy")))
        check(body == want, "GET %s: %d bytes, not the %d of %s (stale build?)"
              % (path, len(body), len(want), PAGE))
    check(get(addr, "POST", "/ui")[0] == 405, "POST /ui is not 405")
    check(get(addr, "GET", "/ui/x")[0] == 404, "GET /ui/x is not 404")
    # The data behind the page keeps its token.
    try:
        st, _, _ = call(addr, "GET", "/admin/managers", timeout=5)
    except Unreachable as e:
        check(False, str(e))
    check(st == 401, "/admin/managers without the token: %d" % st)
    st, obj, _ = call(addr, "GET", "/admin/managers", timeout=5,
                      headers={"Authorization": "Bearer " + TOKEN})
    check(st == 200 and obj["self"] == 1, "/admin/managers with the token: %d %r" % (st, obj))
    # One self-contained file: no outside scripts, styles, fonts or images.
    text = want.decode("utf-8")
    for pattern in (r"<script[^>]*\bsrc=", r"<link\b", r"@import", r"url\(", r"<img\b",
                    r"<iframe\b"):
        check(re.search(pattern, text, re.I) is None, "the page has %r" % pattern)


def summary_matches(c, i, topics):
    """GET /admin/topics at manager @i agrees with GET /admin/topics/{t} of
    each of @topics (name -> partitions), read around it; the summary, or
    False."""
    before = {t: c.describe(t) for t in topics}
    st, obj = c.call(i, "GET", "/admin/topics")
    after = {t: c.describe(t) for t in topics}
    if st != 200 or None in before.values() or None in after.values():
        return False
    got = {t["topic"]: t for t in obj["topics"]}
    if sorted(got) != sorted(topics) or obj["number_of_partitions"] != sum(topics.values()):
        return False

    def counts(d):
        ps = d["partitions"]
        return {"number_of_partitions": d["number_of_partitions"], "created_ms": d["created_ms"],
                "leaderless": sum(p["leader"] is None for p in ps),
                "lagging": sum(any(r["lag"] is None or r["lag"] > 0 for r in p["replica_status"])
                               for p in ps),
                "high_watermark_sum": sum(p["high_watermark"] for p in ps)}
    for t in topics:
        want = counts(before[t])
        if want != counts(after[t]):
            return False  # It moved while read: again.
        if {k: got[t][k] for k in want} != want:
            return False
    return obj


def test_topics_summary(ctx):
    c = Cluster(ctx, n_managers=3, n_brokers=3).start()
    topics = {"orders": 3, "clicks": 2}
    for t, n in topics.items():
        c.create_topic(1, t, n)
        c.wait_topic_led(t)
    st, obj = c.call(1, "GET", "/admin/topics", headers={})
    check(st == 401, "GET /admin/topics without the token: %d %r" % (st, obj))
    producer = {t: c.register(1, "producer", t) for t in topics}
    for t, n in topics.items():
        for p in range(n):
            for k in range(p + 1):
                c.produce(1 + k % 3, t, producer[t], "%s %d/%d" % (t, p, k), partition_id=p)
    # Asked of every manager (followers forward): all led, nothing behind,
    # once the brokers' reports have brought the high watermarks.
    # (Followers report their commit a heartbeat after the leader's.)
    def settled(i):
        s = summary_matches(c, i, topics)
        return s and [t["high_watermark_sum"] for t in s["topics"]] == [3, 6] and \
            all(t["leaderless"] == 0 and t["lagging"] == 0 for t in s["topics"]) and s
    for i in c.managers:
        s = wait_until(lambda i=i: settled(i), 20,
                       "manager%d's GET /admin/topics to match the descriptions, every "
                       "partition led and none lagging" % i)
        check([t["topic"] for t in s["topics"]] == sorted(topics), "order %r" % s["topics"])
    # A broker killed: its replicas fall behind as every partition takes
    # a message (each partition has a replica on each of the 3 brokers).
    c.brokers[3].kill()
    for t, n in topics.items():
        for p in range(n):
            c.produce(1, t, producer[t], "%s %d/after" % (t, p), partition_id=p)

    def all_lagging():
        s = summary_matches(c, 2, topics)
        return s and all(t["lagging"] == topics[t["topic"]] for t in s["topics"]) and \
            [t["high_watermark_sum"] for t in s["topics"]] == [3 + 2, 6 + 3]
    wait_until(all_lagging, 30, "every partition counted lagging after broker 3 was killed")


# ---- Traffic ----------------------------------------------------------------

SAMPLE_MS = 300


def traffic(c, i, topic, since=None):
    """GET /admin/topics/{topic}/traffic at manager @i: the answer, checked
    for its shape and for rates that agree with their counts."""
    st, obj = c.call(i, "GET", "/admin/topics/%s/traffic" % topic,
                     query=None if since is None else {"since": since})
    check_ok(st, obj, "traffic of %s at manager%d" % (topic, i))
    check(obj["topic"] == topic and obj["sample_ms"] == SAMPLE_MS and
          obj["window_ms"] == 120 * SAMPLE_MS, "traffic answer %r" % {
              k: v for k, v in obj.items() if k != "samples"})
    last = since or 0
    for s in obj["samples"]:
        check(s["time_ms"] > last and s["interval_ms"] > 0, "sample times %r" % obj["samples"])
        last = s["time_ms"]
        for n, rate in (("records", "messages_per_s"), ("bytes", "bytes_per_s")):
            check(s[n] >= 0 and s[rate] >= 0, "a negative count or rate: %r" % s)
            want = round(s[n] * 1000.0 / s["interval_ms"], 2)
            check(abs(s[rate] - want) < 0.011, "%s %r for %d in %d ms" % (
                rate, s[rate], s[n], s["interval_ms"]))
    return obj


def binary_body(records):
    """The binary produce body of (key or None, value) pairs."""
    out = struct.pack("<I", len(records))
    for key, value in records:
        k = key.encode() if key is not None else b""
        v = value.encode()
        out += struct.pack("<iI", len(k) if key is not None else -1, len(v)) + k + v
    return out


def produce_every_way(c, topic, producer, tag):
    """Produces through every manager by each path (single, JSON batch,
    binary batch); returns (records, bytes of keys and values)."""
    records = n_bytes = 0
    for i in sorted(c.running_managers()):
        value = "%s-%d-single" % (tag, i)
        c.produce(i, topic, producer, value)
        records += 1
        n_bytes += len(value)
        batch = [{"value": "%s-%d-b%d" % (tag, i, k), "key": "k%d" % k} for k in range(4)]
        st, obj = c.call(i, "POST", "/v1/topics/%s/records" % topic, {"records": batch})
        check_ok(st, obj, "a batch at manager%d" % i)
        records += len(batch)
        n_bytes += sum(len(r["value"]) + len(r["key"]) for r in batch)
        pairs = [(None, "%s-%d-bin0" % (tag, i)), ("key", "%s-%d-bin1é" % (tag, i))]
        st, obj, _ = call(c.m_http[i], "POST", "/v1/topics/%s/records" % topic,
                          binary_body(pairs), query={"partition_id": 1},
                          headers={"Content-Type": "application/vnd.raftq.records"})
        check_ok(st, obj, "a binary batch at manager%d" % i)
        records += len(pairs)
        n_bytes += sum(len((k or "").encode()) + len(v.encode()) for k, v in pairs)
    return records, n_bytes


def last_time(c, i, topic):
    """The time of the latest sample of the series at manager @i."""
    obj = traffic(c, i, topic)
    return obj["samples"][-1]["time_ms"] if obj["samples"] else obj["series_start_ms"]


def wait_counted(c, i, topic, start, since, records, n_bytes, what):
    """Waits until the samples after @since of the series at manager @i,
    of the leader that began it at @start, hold exactly @records records
    and @n_bytes bytes; those samples then."""
    seen = {}

    def counted():
        obj = traffic(c, i, topic, since=since)
        check(obj["series_start_ms"] == start, "a new series began: %r" % obj["series_start_ms"])
        got = (sum(s["records"] for s in obj["samples"]), sum(s["bytes"] for s in obj["samples"]))
        seen["got"] = got
        check(got[0] <= records and got[1] <= n_bytes, "%s: counted %r, more than the %r produced"
              % (what, got, (records, n_bytes)))
        return got == (records, n_bytes) and obj["samples"]
    try:
        return wait_until(counted, 30, "%s: %d records and %d bytes counted" % (
            what, records, n_bytes))
    except Exception:
        print("  last counted: %r" % (seen.get("got"),))
        raise


def series_settled(c, i, topic, live):
    """The series at manager @i has a sample with every one of the @live
    managers' byte counts in it (each has a baseline) and counts every
    partition (the leader holds the brokers' reports): its start."""
    obj = traffic(c, i, topic)
    return obj["series_start_ms"] is not None and obj["samples"] and \
        obj["samples"][-1]["bytes_from"] == live and obj["partitions_uncounted"] == 0 and \
        obj["series_start_ms"]


def test_traffic(ctx):
    c = Cluster(ctx, n_managers=3, n_brokers=3,
                manager_args=["--traffic-sample-ms", str(SAMPLE_MS)]).start()
    # The flag and its variable are listed.
    out = subprocess.run([ctx.binary, "--help"], capture_output=True, timeout=30)
    text = out.stdout.decode() + out.stderr.decode()
    check("--traffic-sample-ms" in text and "RAFTQ_TRAFFIC_SAMPLE_MS" in text,
          "manager --help does not list --traffic-sample-ms")
    leader = c.wait_leader()
    follower = next(i for i in sorted(c.managers) if i != leader)
    topic, idle = "orders", "idle"
    c.create_topic(1, topic, 3)
    c.create_topic(1, idle, 1)
    c.wait_topic_led(topic)
    c.wait_topic_led(idle)

    # Bad input, at a follower (checked before forwarding) and the leader.
    for i in (follower, leader):
        st, obj = c.call(i, "GET", "/admin/topics/nope/traffic")
        check_failure(st, obj, 404, "traffic of an unknown topic", code="topic_not_found")
        st, obj = c.call(i, "GET", "/admin/topics/a%20b/traffic")
        check_failure(st, obj, 400, "traffic of a bad topic name", code="invalid_request")
        for since in ("x", "-1", "1.5"):
            st, obj = c.call(i, "GET", "/admin/topics/%s/traffic" % topic, query={"since": since})
            check_failure(st, obj, 400, "since=%s" % since, code="invalid_request")
        check("since" in obj["message"], "the 400 does not name 'since': %r" % obj["message"])
        st, obj = c.call(i, "GET", "/admin/topics/%s/traffic" % topic, headers={})
        check_failure(st, obj, 401, "traffic without the token", code="unauthorized")
        st, obj = c.call(i, "POST", "/admin/topics/%s/traffic" % topic, {})
        check_failure(st, obj, 405, "POST traffic")

    # Everything produced, through every manager and path, is counted once.
    producer = c.register(1, "producer", topic)
    start = wait_until(lambda: series_settled(c, follower, topic, 3), 30,
                       "every manager's counts in a sample")
    since = last_time(c, leader, topic)
    records, n_bytes = produce_every_way(c, topic, producer, "one")
    wait_counted(c, follower, topic, start, since, records, n_bytes, "first round")
    r2, b2 = produce_every_way(c, topic, producer, "two")
    samples = wait_counted(c, leader, topic, start, since, records + r2, n_bytes + b2,
                           "second round")
    busy = [s for s in samples if s["records"] > 0]
    check(len(busy) >= 2, "the two rounds fell in %d sample(s)" % len(busy))
    check(all(s["managers"] == 3 for s in samples), "managers in samples: %r"
          % sorted({s["managers"] for s in samples}))
    check(any(s["messages_per_s"] > 0 and s["bytes_per_s"] > 0 for s in samples),
          "no positive rate in %r" % samples)
    # The samples are counted in the leader's /metrics.
    host, port = c.m_http[leader].rsplit(":", 1)
    conn = http.client.HTTPConnection(host, int(port), timeout=10)
    conn.request("GET", "/metrics")
    body = conn.getresponse().read().decode()
    conn.close()
    rounds = re.search(r"^raftq_manager_traffic_rounds_total (\S+)$", body, re.M)
    took = re.search(r"^raftq_manager_traffic_round_seconds_total (\S+)$", body, re.M)
    check(rounds and float(rounds.group(1)) >= len(samples) and took and
          float(took.group(1)) > 0, "the leader's traffic rounds in /metrics: %r, %r"
          % (rounds and rounds.group(0), took and took.group(0)))
    # A topic nobody produced to: a flat series.
    obj = traffic(c, leader, idle)
    check(obj["samples"] and all(s["records"] == 0 and s["bytes"] == 0 for s in obj["samples"]),
          "the idle topic's series: %r" % obj["samples"][-3:])
    # since: only the samples after it.
    full = traffic(c, leader, topic)["samples"]
    cut = full[-2]["time_ms"]
    later = traffic(c, leader, topic, since=cut)["samples"]
    check(later and all(s["time_ms"] > cut for s in later) and
          later[0]["time_ms"] == full[-1]["time_ms"],
          "since=%d answered %r" % (cut, [s["time_ms"] for s in later][:5]))

    # The leader killed right after a round: the next one starts an empty
    # series, which counts only what is produced from then on (not that
    # round, which the routes it copied as a follower, up to a second old,
    # may not hold yet).
    produce_every_way(c, topic, producer, "late")
    c.managers[leader].kill()
    new = c.wait_leader(exclude=(leader,))
    live = [i for i in sorted(c.managers) if i != leader]
    start2 = wait_until(lambda: series_settled(c, live[0], topic, 2), 30,
                        "the new leader's series with both managers' counts")
    check(start2 > start, "series start %r after the failover, %r before" % (start2, start))
    obj = traffic(c, new, topic)
    check(obj["manager"] == new, "the series is manager %r's, not the leader's %d"
          % (obj["manager"], new))
    check(all(s["records"] == 0 and s["bytes"] == 0 for s in obj["samples"]),
          "the new series counts what was produced before it: %r" % obj["samples"])
    since = obj["series_start_ms"]
    r3, b3 = produce_every_way(c, topic, producer, "three")
    samples = wait_counted(c, live[1], topic, start2, since, r3, b3, "after the failover")
    check(all(s["managers"] == 3 for s in samples), "managers after the failover: %r"
          % sorted({s["managers"] for s in samples}))

    # The old leader back, with its counts from 0: counted from its return.
    c.managers[leader].start()
    wait_until(lambda: c.ready(leader), 30, "manager%d to be ready again" % leader)
    wait_until(lambda: series_settled(c, leader, topic, 3), 30,
               "the restarted manager's counts in a sample")
    obj = traffic(c, leader, topic)
    check(obj["series_start_ms"] == start2, "the series restarted: %r" % obj["series_start_ms"])
    since = last_time(c, leader, topic)
    r4, b4 = produce_every_way(c, topic, producer, "four")
    wait_counted(c, leader, topic, start2, since, r4, b4, "after the restart")


if __name__ == "__main__":
    run_suite("status_page", [test_page_served, test_topics_summary, test_traffic],
              binary="manager", ports=(31900, 31999))

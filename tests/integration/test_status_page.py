"""Integration test of the status page's route (/ui) on one manager.

The page itself is judged in a browser by make test-ui (tests/ui/test_ui.py);
this suite, part of make test, needs no browser: it checks that a manager
serves the page exactly as manager/ui/index.html holds it, as HTML that is
never cached, without the admin token the data behind it needs, and that
the file loads nothing from elsewhere; and that GET /admin/topics, the
summary the page polls instead of describing every topic, counts what the
descriptions show, through a broker killed with SIGKILL. Needs no root. Run:
python3 tests/integration/test_status_page.py [--build DIR] [--ports LO-HI].
"""

import http.client
import os
import re
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from harness import check, run_suite, wait_until  # noqa: E402
from test_manager import Cluster, Unreachable, call  # noqa: E402

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


if __name__ == "__main__":
    run_suite("status_page", [test_page_served, test_topics_summary], binary="manager",
              ports=(31900, 31999))

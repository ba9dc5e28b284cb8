"""Strangers on the HTTP ports (API.md section 6, DESIGN.md "Internal request
signatures"): nobody without the cluster's keys gets anything done on a
broker or on a manager's /internal routes.

Three managers and three brokers (the cluster of test_manager.py). Records
are produced first. Then every broker route (other than /healthz, /readyz
and /metrics) on every broker, and every manager /internal route on every
manager, gets requests that would change data or membership if they were
obeyed, each with a way of getting the credentials wrong: none at all, the
raw cluster secret in the old X-Raftq-Secret header, a signature made for
another body, for another path, with another direction's key (a manager's
key on a broker route is the only right one; a broker's key there, for
instance, is wrong), an expired timestamp, and a replay of a request that
was accepted once. Each must be answered 401 with a JSON failure naming
the reason, and afterwards the records read back from every replica, the
replicas' member lists and the managers' broker and manager lists must be
as they were. Correctly signed requests on the same routes are accepted,
so the refusals are not for another reason, and the refusals are counted
in /metrics. A second test checks that a manager believes the
X-Raftq-Forwarded mark on a public route only with a valid signature and
refuses a request whose mark does not hold (a stale forward), and a
third that a broker whose replay cache holds its cap in live entries answers
503 with Retry-After instead of accepting a request it cannot remember.

Needs no root. Run: python3 tests/integration/test_strangers.py
[--build DIR] [-k NAME] [--ports LO-HI].
"""

import http.client
import json
import os
import re
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from harness import check, run_suite, wait_until  # noqa: E402
import rqkeys  # noqa: E402
import rqsign  # noqa: E402
import test_manager  # noqa: E402
from test_manager import SECRET  # noqa: E402

TOPIC = "guarded"
TOKEN = "strangers-admin-token"
SKEW_MS = 30000  # The default --auth-clock-skew-ms.
N_RECORDS = 20


def send(addr, method, target, body=b"", headers=None, timeout=10.0):
    """One request with exactly @headers (and Content-Type for a body);
    (status, parsed JSON or None)."""
    host, port = addr.rsplit(":", 1)
    conn = http.client.HTTPConnection(host, int(port), timeout=timeout)
    try:
        hdr = {"Content-Type": "application/json"} if body else {}
        hdr.update(headers or {})
        conn.request(method, target, body=body or None, headers=hdr)
        resp = conn.getresponse()
        text = resp.read()
        try:
            return resp.status, json.loads(text.decode("utf-8"))
        except ValueError:
            return resp.status, None
    finally:
        conn.close()


def signed(method, target, body, label, **kw):
    return rqsign.headers(method, target, body, secret=SECRET, label=label, **kw)


# ---- The routes ----------------------------------------------------------------


def broker_routes(gid, other):
    """(method, target, harmful body, harmless body, harmless target) of
    every broker route that needs a signature: the harmful request would
    change data or membership if obeyed; the harmless one is accepted past
    the signature and changes nothing (an unknown group, a bad body, a
    read)."""
    rp = "/v1/topics/%s/partitions/0/records" % TOPIC
    member = json.dumps({"id": 9, "raft_addr": "127.0.0.1:1", "http_addr": "127.0.0.1:2"})
    return [
        ("POST", "/internal/replicas",
         json.dumps({"topic": "evil", "partition_id": 0, "group_id": 4242, "members": []}),
         "{}", None),
        ("GET", "/internal/replicas", "", "", None),
        ("DELETE", "/internal/replicas/%d" % gid, "", "", "/internal/replicas/424242"),
        ("POST", "/internal/replicas/%d/transfer" % gid, json.dumps({"to": other}),
         json.dumps({"to": other}), "/internal/replicas/424242/transfer"),
        ("POST", "/internal/replicas/%d/preferred" % gid, json.dumps({"broker_id": other}),
         json.dumps({"broker_id": other}), "/internal/replicas/424242/preferred"),
        ("POST", "/internal/replicas/%d/members" % gid, member, member,
         "/internal/replicas/424242/members"),
        ("DELETE", "/internal/replicas/%d/members/%d" % (gid, other), "", "",
         "/internal/replicas/424242/members/%d" % other),
        ("POST", "/internal/replicas/%d/rebuild" % gid,
         json.dumps({"topic": "evil", "partition_id": 0, "group_id": gid, "members": []}),
         "{}", "/internal/replicas/424242/rebuild"),
        ("POST", rp, json.dumps({"records": [{"value": "evil"}]}), "{}", None),
        ("GET", rp + "?offset=0", "", "", None),
    ]


def manager_routes(victim_id):
    """(method, target, harmful body, harmless body, harmless target, keys
    the route accepts) of every manager /internal route."""
    reg = json.dumps({"id": 9, "raft_addr": "127.0.0.1:1", "http_addr": "127.0.0.1:2"})
    both = (rqkeys.HTTP_B2M, rqkeys.HTTP_M2M)
    return [
        ("GET", "/internal/read-index", "", "", None, (rqkeys.HTTP_M2M,)),
        ("GET", "/internal/routes", "", "", None, (rqkeys.HTTP_M2M,)),
        ("GET", "/internal/state-digest", "", "", None, (rqkeys.HTTP_M2M,)),
        ("GET", "/internal/version", "", "", None, (rqkeys.HTTP_M2M,)),
        ("POST", "/internal/managers/%d/join" % victim_id,
         json.dumps({"raft_addr": "127.0.0.1:1", "http_addr": "127.0.0.1:2"}),
         "{}", None, (rqkeys.HTTP_M2M,)),
        ("POST", "/internal/managers/%d" % victim_id,
         json.dumps({"raft_addr": "127.0.0.1:1", "http_addr": "127.0.0.1:2"}),
         "{}", "/internal/managers/99", (rqkeys.HTTP_M2M,)),
        ("POST", "/internal/brokers/register", reg, "{}", None, both),
        ("POST", "/internal/brokers/%d/heartbeat" % victim_id,
         json.dumps({"replicas": []}), json.dumps({"replicas": []}),
         "/internal/brokers/424242/heartbeat", both),
    ]


def attempts(method, target, body, right, wrong):
    """(what, headers, reason word) of every wrong way to call: @right is
    a key the route accepts, @wrong one it does not."""
    other_body = body + " " if body else "x"
    other_path = target + "x" if "?" not in target else target.replace("?", "x?", 1)
    now = int(time.time() * 1000)
    return [
        ("no credentials", {}, "missing"),
        ("the raw secret in X-Raftq-Secret", {"X-Raftq-Secret": SECRET}, "missing"),
        ("a signature for another body", signed(method, target, other_body, right), "bad signature"),
        ("a signature for another path", signed(method, other_path, body, right), "bad signature"),
        ("another direction's key", signed(method, target, body, wrong), "bad signature"),
        ("a timestamp past the window", signed(method, target, body, right,
                                               ts=now - SKEW_MS - 5000), "expired"),
        ("a timestamp ahead of the window", signed(method, target, body, right,
                                                   ts=now + SKEW_MS + 5000), "expired"),
    ]


def refused(addr, method, target, body, headers, word, what):
    st, obj = send(addr, method, target, body.encode(), headers)
    check(st == 401, "%s %s at %s with %s: expected 401, got %d %r"
          % (method, target, addr, what, st, obj))
    check(isinstance(obj, dict) and obj.get("status") == "failure"
          and word in obj.get("message", ""),
          "%s %s with %s: the 401 does not say %r: %r" % (method, target, what, word, obj))


def accepted_then_replayed(addr, method, target, body, label):
    """A correctly signed harmless request passes the signature check (any
    answer but 401); the same bytes again are refused as replayed."""
    hdr = signed(method, target, body, label)
    st, obj = send(addr, method, target, body.encode(), hdr)
    check(st != 401 and st < 500 or st == 503,
          "%s %s at %s correctly signed: %d %r" % (method, target, addr, st, obj))
    refused(addr, method, target, body, hdr, "replayed", "a replayed signature")


# ---- What must not change ---------------------------------------------------------


def state(c, gid, replicas):
    """What the strangers must not change: each replica's records, voters
    and preferred leader, and the managers' broker and manager lists."""
    out = {}
    for b in replicas:
        target = "/v1/topics/%s/partitions/0/records?offset=0&max=1000&local=1" % TOPIC
        st, obj = send(c.b_http[b], "GET", target, headers=signed("GET", target, "",
                                                                   rqkeys.HTTP_M2B))
        check(st == 200, "read back from broker %d: %d %r" % (b, st, obj))
        rep = c.broker_replica(b, gid)
        check(rep, "broker %d no longer hosts group %d" % (b, gid))
        out[b] = ([r["value"] for r in obj["records"]], sorted(rep["voters"]),
                  rep.get("preferred_leader"))
    st, obj = c.call(1, "GET", "/admin/brokers", headers=c.admin)
    check(st == 200, "admin brokers: %d %r" % (st, obj))
    out["brokers"] = sorted((b["id"], b["http_addr"]) for b in obj["brokers"])
    st, obj = c.call(1, "GET", "/admin/managers", headers=c.admin)
    check(st == 200, "admin managers: %d %r" % (st, obj))
    out["managers"] = sorted((m["id"], m["http_addr"]) for m in obj["managers"])
    return out


def scrape(addr):
    """@addr's /metrics, as text."""
    host, port = addr.rsplit(":", 1)
    conn = http.client.HTTPConnection(host, int(port), timeout=10)
    try:
        conn.request("GET", "/metrics")
        return conn.getresponse().read().decode()
    finally:
        conn.close()


def refusals(addr):
    """raftq_http_auth_refused_total by reason, from @addr's /metrics."""
    return {m.group(1): float(m.group(2)) for m in re.finditer(
        r'^raftq_http_auth_refused_total\{reason="([a-z_]+)"\} (\S+)$', scrape(addr), re.M)}


# ---- Tests -----------------------------------------------------------------------


def test_strangers_change_nothing(ctx):
    """Every broker route and manager /internal route, every wrong way."""
    c = test_manager.Cluster(ctx, n_brokers=3, admin_token=TOKEN).start()
    c.create_topic(1, TOPIC, 1)
    c.wait_topic_led(TOPIC)
    st, obj = c.call(1, "POST", "/v1/topics/%s/records" % TOPIC,
                     {"records": [{"value": "r%d" % i, "partition_id": 0}
                                  for i in range(N_RECORDS)]})
    test_manager.check_ok(st, obj, "produce")
    part = c.describe(TOPIC)["partitions"][0]
    gid, replicas = part["group_id"], part["replicas"]
    wait_until(lambda: all(c.broker_replica(b, gid).get("next_offset") == N_RECORDS
                           for b in replicas), 30, "every replica to hold the records")
    before = state(c, gid, replicas)
    check(before[replicas[0]][0] == ["r%d" % i for i in range(N_RECORDS)],
          "records before: %r" % (before[replicas[0]][0],))

    n = 0
    for b in replicas:
        other = next(x for x in replicas if x != b)
        for method, target, harm, harmless, harmless_target in broker_routes(gid, other):
            for what, hdr, word in attempts(method, target, harm, rqkeys.HTTP_M2B,
                                            rqkeys.HTTP_B2M):
                refused(c.b_http[b], method, target, harm, hdr, word, what)
                n += 1
            accepted_then_replayed(c.b_http[b], method, harmless_target or target, harmless,
                                   rqkeys.HTTP_M2B)
    for i in c.managers:
        for method, target, harm, harmless, harmless_target, keys in manager_routes(i % 3 + 1):
            wrong = rqkeys.HTTP_M2B if rqkeys.HTTP_B2M in keys else rqkeys.HTTP_B2M
            for what, hdr, word in attempts(method, target, harm, keys[0], wrong):
                refused(c.m_http[i], method, target, harm, hdr, word, what)
                n += 1
            for label in keys:
                accepted_then_replayed(c.m_http[i], method, harmless_target or target, harmless,
                                       label)
    print("    %d refusals" % n)

    after = state(c, gid, replicas)
    check(after == before, "the strangers changed something:\n  before %r\n  after  %r"
          % (before, after))
    for b in replicas:
        check(after[b] == after[replicas[0]], "replicas differ: %r" % after)

    # Counted, by reason.
    for addr in [c.b_http[replicas[0]], c.m_http[1]]:
        got = refusals(addr)
        for reason in ("missing", "bad_signature", "expired", "replayed"):
            check(got.get(reason, 0) > 0, "%s: no %s refusal counted: %r" % (addr, reason, got))
        check("cache_full" in got and "malformed" in got, "%s: reasons %r" % (addr, got))
    # Everything still works for those with the keys.
    st, obj = c.call(2, "POST", "/v1/topics/%s/records" % TOPIC,
                     {"records": [{"value": "after", "partition_id": 0}]})
    test_manager.check_ok(st, obj, "produce afterwards")


def test_forwarded_mark_needs_a_signature(ctx):
    """A follower forwards a public request to its leader unless it bears
    the X-Raftq-Forwarded mark of a manager, which counts only when the
    request is signed with the manager-to-manager key. A mark whose
    signature does not hold is refused with 401, by a follower and by the
    leader: a stranger's, and a manager's forward that a network partition
    held up past the signature window (TCP retransmits it once the partition
    heals, long after the forwarder stopped waiting). Such a consume,
    carried out as if its client still waited, would move the consumer's
    offset past a message nobody receives. A forward that reaches the
    leader after its forwarder's own deadline is not carried out either."""
    c = test_manager.Cluster(ctx, n_brokers=3).start()
    c.create_topic(1, TOPIC, 1)
    lead = c.wait_leader()
    c.wait_topic_led(TOPIC)
    follower = next(i for i in c.managers if i != lead)
    target = "/producer/register"
    body = json.dumps({"topic": TOPIC})
    mark = {"X-Raftq-Forwarded": str(lead)}

    # A mark without a manager's signature: refused, on either manager.
    for i in (follower, lead):
        for what, hdr, word in [
                ("no signature", mark, "missing"),
                ("a broker's signature",
                 dict(mark, **signed("POST", target, body, rqkeys.HTTP_B2M)), "bad signature")]:
            st, obj = send(c.m_http[i], "POST", target, body.encode(), hdr)
            check(st == 401 and word in obj.get("message", "")
                  and "X-Raftq-Forwarded" in obj.get("message", ""),
                  "manager%d, mark with %s: %d %r" % (i, what, st, obj))
    # A manager's mark is believed: it is not forwarded a second time.
    hdr = dict(mark, **signed("POST", target, body, rqkeys.HTTP_M2M))
    st, obj = send(c.m_http[follower], "POST", target, body.encode(), hdr)
    check(st == 503 and "not the leader either" in obj.get("message", ""),
          "mark signed as a manager: %d %r" % (st, obj))
    # Without a mark the follower forwards as usual.
    st, obj = send(c.m_http[follower], "POST", target, body.encode())
    check(st == 200 and obj.get("producer_id"), "no mark: %d %r" % (st, obj))

    # A manager's forwarded consume, held up past the window: refused at
    # the follower (which would otherwise forward it afresh) and at the
    # leader, and the message stays for the consumer's next consume.
    cons = c.register(lead, "consumer", TOPIC)
    test_manager.check_ok(*c.call(lead, "POST", "/v1/topics/%s/records" % TOPIC,
                                  {"records": [{"value": "kept%d" % k} for k in range(2)]}),
                          "produce")
    q = "/consumer/consume?topic=%s&consumer_id=%d" % (TOPIC, cons)
    old = int(time.time() * 1000) - SKEW_MS - 25000
    for i in (follower, lead):
        hdr = dict(mark, **signed("GET", q, "", rqkeys.HTTP_M2M, ts=old))
        hdr["X-Raftq-Consume-By"] = str(old + 5000)
        st, obj = send(c.m_http[i], "GET", q, b"", hdr)
        check(st == 401 and "expired" in obj.get("message", ""),
              "manager%d, a consume forwarded 55 s ago: %d %r" % (i, st, obj))
    got = c.consume(follower, TOPIC, cons)
    check(got == ("kept0", 0, 0), "the next consume got %r, not kept0" % (got,))

    # A consume in time for its forwarder but past the deadline for its
    # advance (X-Raftq-Consume-By, --consume-deadline-ms): the leader
    # proposes nothing and says so; the message stays.
    now = int(time.time() * 1000)
    hdr = dict(mark, **signed("GET", q, "", rqkeys.HTTP_M2M))
    hdr["X-Raftq-Consume-By"] = str(now - 1000)
    hdr["X-Raftq-Forward-By"] = str(now + 15000)
    st, obj = send(c.m_http[lead], "GET", q, b"", hdr)
    check(st == 503 and obj.get("offset_advanced") == "no" and "too late" in obj["message"],
          "a consume past its advance's deadline: %d %r" % (st, obj))
    got = c.consume(lead, TOPIC, cons)
    check(got == ("kept1", 0, 1), "the next consume got %r, not kept1" % (got,))

    # A manager's forward that reaches the leader after its forwarder
    # stopped waiting (X-Raftq-Forward-By) is not carried out: an offset
    # commit held up that long would set the offsets back under the ones
    # the client committed since. One in time is.
    def offset0():
        st, obj = c.call(lead, "GET", "/v1/consumers/%d/offsets" % cons)
        return {o["partition_id"]: o["offset"] for o in obj["offsets"]}[0]
    target = "/v1/consumers/%d/offsets" % cons
    body = json.dumps({"offsets": [{"partition_id": 0, "offset": 0}]})
    now = int(time.time() * 1000)
    for by, want, after in ((now - 1000, 503, 2), (now + 15000, 200, 0)):
        hdr = dict(mark, **signed("POST", target, body, rqkeys.HTTP_M2M))
        hdr["X-Raftq-Forward-By"] = str(by)
        st, obj = send(c.m_http[lead], "POST", target, body.encode(), hdr)
        check(st == want, "an offset commit forwarded until %+d ms: %d %r" % (by - now, st, obj))
        check(offset0() == after, "after it the offset is %r, not %d" % (offset0(), after))


def metric(addr, name):
    """The value of an unlabelled family @name in @addr's /metrics, or None."""
    m = re.search(r"^%s (\S+)$" % re.escape(name), scrape(addr), re.M)
    return float(m.group(1)) if m else None


def test_replay_cache_cap(ctx):
    """A broker whose replay cache holds its cap (--auth-replay-cache-entries)
    in live entries refuses the next signed request with 503 and
    Retry-After rather than accept it unremembered, still refuses replays
    of what it holds, and shows the cache in /metrics."""
    cap = 16
    broker = os.path.join(os.path.dirname(ctx.binary), "broker")
    addr = "127.0.0.1:%d" % ctx.ports.take()
    argv = [broker, "--id", "1", "--raft-addr", "127.0.0.1:%d" % ctx.ports.take(),
            "--http-addr", addr, "--data", os.path.join(ctx.dir, "broker1"),
            "--cluster-secret", SECRET, "--log-level", ctx.opts.log_level,
            "--auth-replay-cache-entries", str(cap)]
    ctx.daemon("broker", 1, argv).start()

    def up():
        try:
            return send(addr, "GET", "/healthz")[0] == 200
        except OSError:
            return False
    wait_until(up, 30, "the broker to answer /healthz")
    check(metric(addr, "raftq_http_auth_replay_cache_max_entries") == cap,
          "max_entries gauge: %r" % metric(addr, "raftq_http_auth_replay_cache_max_entries"))
    check(metric(addr, "raftq_http_auth_replay_cache_entries") == 0,
          "entries before any request: %r" % metric(addr, "raftq_http_auth_replay_cache_entries"))

    target = "/internal/replicas"
    held = []
    for i in range(cap):
        hdr = signed("GET", target, "", rqkeys.HTTP_M2B)
        st, obj = send(addr, "GET", target, headers=hdr)
        check(st == 200, "signed request %d of %d: %d %r" % (i + 1, cap, st, obj))
        held.append(hdr)
    check(metric(addr, "raftq_http_auth_replay_cache_entries") == cap,
          "entries at the cap: %r" % metric(addr, "raftq_http_auth_replay_cache_entries"))
    check(metric(addr, "raftq_http_auth_replay_cache_capacity") == cap,
          "capacity at the cap: %r" % metric(addr, "raftq_http_auth_replay_cache_capacity"))

    # One more, correctly signed: refused, not accepted unremembered.
    host, port = addr.rsplit(":", 1)
    conn = http.client.HTTPConnection(host, int(port), timeout=10)
    try:
        conn.request("GET", target, headers=signed("GET", target, "", rqkeys.HTTP_M2B))
        resp = conn.getresponse()
        obj = json.loads(resp.read().decode())
        check(resp.status == 503 and resp.getheader("Retry-After") == "1",
              "past the cap: %d Retry-After %r %r"
              % (resp.status, resp.getheader("Retry-After"), obj))
        check(obj.get("status") == "failure" and "retry" in obj.get("message", ""),
              "the 503 body: %r" % obj)
    finally:
        conn.close()
    # What it holds is still refused as replayed while it is full.
    refused(addr, "GET", target, "", held[0], "replayed", "a replay at the cap")
    check(refusals(addr).get("cache_full", 0) >= 1, "cache_full not counted: %r"
          % refusals(addr))
    check(metric(addr, "raftq_http_auth_replay_cache_entries") == cap,
          "entries after the refusals: %r" % metric(addr, "raftq_http_auth_replay_cache_entries"))


if __name__ == "__main__":
    run_suite("strangers", [
        test_strangers_change_nothing,
        test_forwarded_mark_needs_a_signature,
        test_replay_cache_cap,
    ], binary="manager", ports=(24000, 24999))

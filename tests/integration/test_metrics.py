"""Integration tests of GET /metrics (API.md section 3; the "Metrics"
sections of broker/README.md and manager/README.md) on 127.0.0.1.

Three managers and three brokers; a topic is produced to and consumed
from through every manager, then every process's /metrics is fetched and
parsed strictly (the Prometheus text format 0.0.4: every line a valid
comment or sample, one HELP and one TYPE per family before its samples,
samples of a family together, no sample twice, histogram buckets in order
and cumulative with +Inf equal to _count) and the series are checked
against what was done: records produced and read, one leader per Raft
group, commit at or above applied, offsets, fsyncs, requests by route,
broker states, consumer lag. A broker is then killed and the leader
manager's liveness series follow it to SUSPECT and DEAD.

Needs no root. Run: python3 tests/integration/test_metrics.py [--build DIR]
[-k NAME] [--ports LO-HI].
"""

import http.client
import math
import os
import re
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from harness import TestFailure, check, run_suite, wait_until  # noqa: E402
from test_manager import SECRET, Cluster, Unreachable, call, check_ok  # noqa: E402

TOPIC = "mt"

# ---- The exposition format ---------------------------------------------------

NAME_RE = re.compile(r"[a-zA-Z_:][a-zA-Z0-9_:]*")
LABEL_NAME_RE = re.compile(r"[a-zA-Z_][a-zA-Z0-9_]*")
TYPES = ("counter", "gauge", "histogram", "summary", "untyped")


def parse_value(text, where):
    if text in ("+Inf", "Inf"):
        return math.inf
    if text == "-Inf":
        return -math.inf
    if text == "NaN":
        return math.nan
    check(re.fullmatch(r"[-+]?(\d+\.?\d*|\.\d+)([eE][-+]?\d+)?", text) is not None,
          "%s: bad value %r" % (where, text))
    return float(text)


def parse_labels(text, i, where):
    """Parses {a="x",b="y"} starting at text[i] == '{'; returns (dict,
    index after '}')."""
    labels = {}
    i += 1
    while True:
        if text[i] == "}":
            return labels, i + 1
        m = LABEL_NAME_RE.match(text, i)
        check(m is not None, "%s: bad label name at %d" % (where, i))
        name = m.group(0)
        i = m.end()
        check(text[i:i + 2] == '="', "%s: expected =\" after %s" % (where, name))
        i += 2
        value = []
        while True:
            check(i < len(text), "%s: unterminated label value" % where)
            ch = text[i]
            if ch == "\\":
                nxt = text[i + 1:i + 2]
                check(nxt in ("\\", '"', "n"), "%s: bad escape \\%s" % (where, nxt))
                value.append("\n" if nxt == "n" else nxt)
                i += 2
            elif ch == '"':
                i += 1
                break
            else:
                check(ch != "\n", "%s: newline in a label value" % where)
                value.append(ch)
                i += 1
        check(name not in labels, "%s: label %s twice" % (where, name))
        labels[name] = "".join(value)
        if text[i] == ",":
            i += 1
        else:
            check(text[i] == "}", "%s: expected , or } at %d" % (where, i))


def parse_exposition(text, where):
    """Parses @text strictly; returns {family: {"type", "help", "samples":
    [(name, labels, value)]}}. Raises TestFailure naming the line."""
    check(text.endswith("\n"), "%s: does not end with a newline" % where)
    families = {}
    current = None  # The family whose samples are being read.
    done = set()  # Families whose samples are over.
    seen = set()
    for n, line in enumerate(text[:-1].split("\n"), 1):
        at = "%s line %d %r" % (where, n, line[:120])
        check(line != "", "%s: empty line" % at)
        if line.startswith("#"):
            m = re.fullmatch(r"# (HELP|TYPE) ([^ ]+) (.*)", line)
            check(m is not None, "%s: a comment that is not HELP or TYPE" % at)
            kind, name, rest = m.groups()
            check(NAME_RE.fullmatch(name) is not None, "%s: bad family name" % at)
            check(name not in done, "%s: family %s comes back" % (at, name))
            fam = families.setdefault(name, {"type": None, "help": None, "samples": []})
            check(not fam["samples"], "%s: %s after samples" % (at, kind))
            if kind == "HELP":
                check(fam["help"] is None, "%s: second HELP" % at)
                check(re.search(r"\\[^\\n]", rest.replace("\\\\", "")) is None,
                      "%s: bad escape in HELP" % at)
                fam["help"] = rest
            else:
                check(fam["type"] is None, "%s: second TYPE" % at)
                check(rest in TYPES, "%s: unknown type" % at)
                fam["type"] = rest
            if current is not None and current != name:
                done.add(current)
            current = name
            continue
        m = NAME_RE.match(line)
        check(m is not None, "%s: no metric name" % at)
        name = m.group(0)
        i = m.end()
        labels = {}
        if i < len(line) and line[i] == "{":
            labels, i = parse_labels(line, i, at)
        check(line[i:i + 1] == " ", "%s: no space before the value" % at)
        parts = line[i + 1:].split(" ")
        check(1 <= len(parts) <= 2, "%s: value then at most a timestamp" % at)
        value = parse_value(parts[0], at)
        fam_name = name
        if current is not None and families[current]["type"] == "histogram":
            for suffix in ("_bucket", "_sum", "_count"):
                if name == current + suffix:
                    fam_name = current
        check(fam_name == current, "%s: sample outside its family's block" % at)
        fam = families[fam_name]
        check(fam["type"] is not None, "%s: no TYPE before the sample" % at)
        if fam["type"] == "histogram":
            check(name != fam_name, "%s: a histogram sample without a suffix" % at)
            check(("le" in labels) == name.endswith("_bucket"), "%s: le on a non-bucket" % at)
        key = (name, tuple(sorted(labels.items())))
        check(key not in seen, "%s: the same series twice" % at)
        seen.add(key)
        if fam["type"] == "counter" or name.endswith("_bucket") or name.endswith("_count"):
            check(value >= 0, "%s: a negative count" % at)
        fam["samples"].append((name, labels, value))
    for name, fam in families.items():
        check(fam["type"] is not None and fam["help"] is not None,
              "%s: family %s lacks TYPE or HELP" % (where, name))
        if fam["type"] == "histogram":
            check_histogram(name, fam["samples"], where)
    return families


def check_histogram(name, samples, where):
    """Per label set: buckets with increasing le, cumulative counts, the
    last one +Inf and equal to _count; a _sum."""
    series = {}
    for sname, labels, value in samples:
        rest = tuple(sorted((k, v) for k, v in labels.items() if k != "le"))
        s = series.setdefault(rest, {"buckets": [], "sum": None, "count": None})
        if sname.endswith("_bucket"):
            s["buckets"].append((parse_value(labels["le"], where), value))
        elif sname.endswith("_sum"):
            s["sum"] = value
        else:
            s["count"] = value
    for rest, s in series.items():
        at = "%s: %s%r" % (where, name, dict(rest))
        b = s["buckets"]
        check(len(b) >= 2 and s["sum"] is not None and s["count"] is not None,
              "%s: buckets, _sum and _count" % at)
        check(all(b[k][0] < b[k + 1][0] for k in range(len(b) - 1)), "%s: le not increasing" % at)
        check(all(b[k][1] <= b[k + 1][1] for k in range(len(b) - 1)),
              "%s: counts not cumulative %r" % (at, b))
        check(b[-1][0] == math.inf and b[-1][1] == s["count"],
              "%s: +Inf bucket %r, _count %r" % (at, b[-1], s["count"]))


def test_parser_is_strict(ctx):
    """The parser itself refuses what the format does not allow (so the
    checks below mean something)."""
    good = ("# HELP a_total A \\\\ help\\n.\n# TYPE a_total counter\n"
            "a_total{x=\"q\\\"\\\\\\n\"} 3\n"
            "# HELP h H\n# TYPE h histogram\nh_bucket{le=\"1\"} 1\n"
            "h_bucket{le=\"+Inf\"} 2\nh_sum 3.5\nh_count 2\n")
    fams = parse_exposition(good, "good")
    check(fams["a_total"]["samples"] == [("a_total", {"x": 'q"\\\n'}, 3.0)],
          "parsed %r" % fams["a_total"])
    bad = [
        "a 1",  # No final newline.
        "a 1\n",  # No TYPE.
        "# TYPE a gauge\n# HELP a x\na{b=\"1\"} 1\na{b=\"1\"} 2\n",  # Twice.
        "# TYPE a gauge\n# HELP a x\na 1\n# TYPE b gauge\n# HELP b x\nb 1\na 2\n",  # Split.
        "# TYPE a gauge\n# TYPE a gauge\n# HELP a x\na 1\n",  # Two TYPEs.
        "# TYPE a gauge\n# HELP a x\na{b=1} 1\n",  # Unquoted.
        "# TYPE a gauge\n# HELP a x\na{b=\"\\t\"} 1\n",  # Bad escape.
        "# TYPE a gauge\n# HELP a x\na one\n",  # Not a number.
        "# TYPE a counter\n# HELP a x\na -1\n",  # Negative count.
        "# TYPE h histogram\n# HELP h x\nh_bucket{le=\"1\"} 2\nh_bucket{le=\"+Inf\"} 1\n"
        "h_sum 1\nh_count 1\n",  # Not cumulative.
        "# TYPE h histogram\n# HELP h x\nh_bucket{le=\"1\"} 1\nh_bucket{le=\"+Inf\"} 2\n"
        "h_sum 1\nh_count 3\n",  # +Inf != _count.
        "# TYPE h histogram\n# HELP h x\nh_bucket{le=\"2\"} 1\nh_bucket{le=\"1\"} 1\n"
        "h_bucket{le=\"+Inf\"} 1\nh_sum 1\nh_count 1\n",  # le order.
        "# random comment\n",
    ]
    for text in bad:
        try:
            parse_exposition(text, "bad")
        except TestFailure:
            continue
        raise TestFailure("the parser accepted %r" % text)


# ---- Scraping ----------------------------------------------------------------


def scrape(addr):
    """GET /metrics at @addr, parsed; checks the content type."""
    host, port = addr.rsplit(":", 1)
    conn = http.client.HTTPConnection(host, int(port), timeout=10)
    try:
        conn.request("GET", "/metrics")
        resp = conn.getresponse()
        text = resp.read().decode("utf-8")
        ctype = resp.getheader("Content-Type", "")
    except (OSError, http.client.HTTPException) as e:
        raise Unreachable("%s GET /metrics: %s" % (addr, e)) from None
    finally:
        conn.close()
    check(resp.status == 200, "%s /metrics: %d" % (addr, resp.status))
    check(ctype.startswith("text/plain; version=0.0.4"), "%s content type %r" % (addr, ctype))
    return parse_exposition(text, addr + "/metrics")


def samples(fams, name, **want):
    """[(labels, value)] of series @name whose labels include @want."""
    fam_name = re.sub(r"_(bucket|sum|count)$", "", name)
    fam = fams.get(name) or fams.get(fam_name)
    if fam is None:
        return []
    return [(labels, v) for n, labels, v in fam["samples"]
            if n == name and all(labels.get(k) == str(x) for k, x in want.items())]


def value(fams, name, **want):
    """The value of the one series @name with labels @want."""
    got = samples(fams, name, **want)
    check(len(got) == 1, "one %s%r expected, found %r" % (name, want, got))
    return got[0][1]


def total(fams, name, **want):
    return sum(v for _, v in samples(fams, name, **want))


# ---- Tests -----------------------------------------------------------------


REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def release():
    """VERSION in the Makefile."""
    with open(os.path.join(REPO, "Makefile")) as f:
        return re.search(r"^VERSION := (\S+)$", f.read(), re.M).group(1)


def check_release(fams, addr, at):
    """The process at @addr says the Makefile's VERSION in raftq_build_info
    (@fams, its metrics) and in /healthz."""
    want = release()
    got = samples(fams, "raftq_build_info")
    check(got == [({"version": want}, 1.0)], "%s raftq_build_info %r, not %s" % (at, got, want))
    st, obj, _ = call(addr, "GET", "/healthz", timeout=5)
    check(st == 200 and obj.get("version") == want, "%s /healthz %d %r" % (at, st, obj))


def test_series_after_traffic(ctx):
    """Produce and consume through every manager; every process's series
    then tell what happened."""
    c = Cluster(ctx, n_brokers=3,
                manager_args=["--broker-suspect-ms", "1000", "--broker-dead-ms", "4000"]).start()
    ms = sorted(c.managers)
    c.create_topic(1, TOPIC, 3)
    c.wait_topic_led(TOPIC)

    # 30 messages round-robin, 70 bound to partition 0 (past its snapshot
    # threshold of 64 entries, so partition 0 snapshots and syncs its log),
    # then a batch of 20 with keys: 120 records.
    rr = c.register(2, "producer", TOPIC)
    bound = c.register(3, "producer", TOPIC, partition=0)
    produced_bytes = 0
    per_manager = {i: 0 for i in ms}
    for k in range(30):
        i = ms[k % 3]
        c.produce(i, TOPIC, rr, "rr-%d" % k)
        per_manager[i] += 1
        produced_bytes += len("rr-%d" % k)
    for k in range(70):
        i = ms[k % 3]
        c.produce(i, TOPIC, bound, "p0-%02d" % k)
        per_manager[i] += 1
        produced_bytes += len("p0-%02d" % k)
    records = [{"value": "batch-%d" % k, "key": "k%d" % k} for k in range(20)]
    st, obj = c.call(1, "POST", "/v1/topics/%s/records" % TOPIC, {"records": records})
    check_ok(st, obj, "batch")
    produced_bytes += sum(len(r["value"]) + len(r["key"]) for r in records)
    produced = 120

    cons = c.register(1, "consumer", TOPIC)
    consumed_at = {i: 0 for i in ms}
    for k in range(12):
        i = ms[k % 3]
        check(c.consume(i, TOPIC, cons) is not None, "consume %d" % k)
        consumed_at[i] += 1
    consumed = 12
    # A consumer group that committed 5 records of partition 0.
    st, obj = c.call(2, "POST", "/v1/groups/gm/join", {"topic": TOPIC})
    member = check_ok(st, obj, "join")["member_id"]
    st, obj = c.call(3, "POST", "/v1/groups/gm/commit",
                     {"member_id": member, "generation": obj["generation"],
                      "offsets": [{"partition_id": 0, "offset": 5}]})
    check_ok(st, obj, "group commit")
    leader = c.wait_leader()
    groups = {p["partition_id"]: p["group_id"] for p in c.describe(TOPIC)["partitions"]}
    check(sorted(groups) == [0, 1, 2], "partitions %r" % groups)

    # ---- Brokers ----
    def brokers_settled():
        """Every replica has applied every record, one leader per group,
        and partition 0 has snapshotted everywhere."""
        fams = {b: scrape(c.b_http[b]) for b in c.brokers}
        for p, g in groups.items():
            leaders = [b for b in fams
                       if value(fams[b], "raftq_raft_is_leader", group=g) == 1]
            if len(leaders) != 1:
                raise TestFailure("group %d leaders %r" % (g, leaders))
            nexts = {value(fams[b], "raftq_partition_next_offset", group=g) for b in fams}
            if len(nexts) != 1:
                raise TestFailure("group %d next offsets %r" % (g, nexts))
        if not all(value(fams[b], "raftq_raft_snapshots_total", group=groups[0]) >= 1
                   for b in fams):
            raise TestFailure("partition 0 has not snapshotted everywhere")
        return fams
    fams = wait_until(brokers_settled, 30, "the brokers to settle")
    for b, f in fams.items():
        at = "broker%d" % b
        for p, g in groups.items():
            labels = {"topic": TOPIC, "partition": p, "group": g}
            commit = value(f, "raftq_raft_commit_index", **labels)
            applied = value(f, "raftq_raft_applied_index", **labels)
            check(commit >= applied > 0, "%s group %d: commit %r applied %r" % (at, g, commit,
                                                                               applied))
            check(value(f, "raftq_raft_term", **labels) >= 1, "%s term" % at)
            check(value(f, "raftq_raft_leader_changes_total", **labels) >= 1,
                  "%s group %d saw no leader" % (at, g))
            first = value(f, "raftq_partition_first_offset", **labels)
            nxt = value(f, "raftq_partition_next_offset", **labels)
            check(first == 0 and nxt > 0, "%s group %d offsets %r..%r" % (at, g, first, nxt))
            check(value(f, "raftq_partition_log_bytes", **labels) > 16 * nxt,
                  "%s group %d log bytes" % (at, g))
            check(value(f, "raftq_raft_log_bytes", **labels) >= 0, "%s raft log bytes" % at)
        check(value(f, "raftq_broker_replicas", state="ready") == 3,
              "%s ready replicas %r" % (at, samples(f, "raftq_broker_replicas")))
        check(value(f, "raftq_partition_fsync_duration_seconds_count") >= 1,
              "%s: no fsync timed" % at)
        check(value(f, "raftq_partition_fsync_duration_seconds_sum") > 0, "%s fsync sum" % at)
        check(value(f, "raftq_process_resident_memory_bytes") > 1 << 20, "%s rss" % at)
        check_release(f, c.b_http[b], at)
        check(value(f, "raftq_process_open_fds") > 10, "%s fds" % at)
        check(value(f, "raftq_process_cpu_seconds_total") > 0, "%s cpu" % at)
    # Every partition's records, once, counted on the leader that took them.
    check(total_all(fams, "raftq_produce_records_total", topic=TOPIC) == produced,
          "produce records %r" % {b: samples(f, "raftq_produce_records_total")
                                  for b, f in fams.items()})
    check(total_all(fams, "raftq_produce_bytes_total", topic=TOPIC) == produced_bytes,
          "produce bytes")
    nexts = sum(value(fams[1], "raftq_partition_next_offset", group=g) for g in groups.values())
    check(nexts == produced, "next offsets add up to %r" % nexts)
    check(total_all(fams, "raftq_read_records_total", topic=TOPIC) >= consumed,
          "read records")
    route = "/v1/topics/{topic}/partitions/{partition}/records"
    posts = total_all(fams, "raftq_http_requests_total", method="POST", route=route, code=200)
    check(produced - 20 < posts <= produced - 17, "broker produce requests %r" % posts)
    for b, f in fams.items():
        for labels, n in samples(f, "raftq_http_requests_total"):
            count = total(f, "raftq_http_request_duration_seconds_count",
                          method=labels["method"], route=labels["route"])
            codes = total(f, "raftq_http_requests_total", method=labels["method"],
                          route=labels["route"])
            # The scrape being answered is counted after its rendering.
            check(count == codes, "broker%d %r: %r timed, %r counted" % (b, labels, count, codes))

    # ---- Managers ----
    def lag_settled():
        f = scrape(c.m_http[leader])
        lag = total(f, "raftq_consumer_lag", topic=TOPIC, consumer=cons)
        if lag != produced - consumed:
            raise TestFailure("lag %r" % samples(f, "raftq_consumer_lag"))
        return f
    wait_until(lag_settled, 15, "the consumer lag to show")

    def group_lag_settled():
        f = scrape(c.m_http[leader])
        lag = {int(lb["partition"]): v for lb, v in
               samples(f, "raftq_group_lag", group="gm", topic=TOPIC)}
        if sorted(lag) != [0, 1, 2] or sum(lag.values()) != produced - 5:
            raise TestFailure("group lag %r" % samples(f, "raftq_group_lag"))
        return f
    gf = wait_until(group_lag_settled, 15, "the group lag to show")
    check(value(gf, "raftq_group_lag_omitted") == 0, "group lag omitted")
    mf = {i: scrape(c.m_http[i]) for i in ms}
    check([i for i in ms if value(mf[i], "raftq_raft_is_leader", group="meta") == 1] == [leader],
          "manager leaders")
    check(len({value(mf[i], "raftq_raft_term", group="meta") for i in ms}) == 1,
          "managers' terms differ")
    for i in ms:
        at = "manager%d" % i
        commit = value(mf[i], "raftq_raft_commit_index", group="meta")
        applied = value(mf[i], "raftq_raft_applied_index", group="meta")
        check(commit >= applied > 0, "%s commit %r applied %r" % (at, commit, applied))
        check(value(mf[i], "raftq_topics") == 1 and value(mf[i], "raftq_partitions") == 3,
              "%s topics and partitions" % at)
        for b in c.brokers:
            states = {lb["state"]: v for lb, v in samples(mf[i], "raftq_broker_state", broker=b)}
            check(states.get("alive") == 1 and sum(states.values()) == 1 and len(states) == 6,
                  "%s broker%d states %r" % (at, b, states))
        check(value(mf[i], "raftq_http_requests_total", method="POST",
                    route="/producer/produce", code=200) == per_manager[i],
              "%s produce requests" % at)
        check(value(mf[i], "raftq_manager_produced_total")
              == per_manager[i] + (20 if i == 1 else 0), "%s produced" % at)
        served = consumed if i == leader else consumed_at[i]
        check(value(mf[i], "raftq_http_requests_total", method="GET",
                    route="/consumer/consume", code=200) == served,
              "%s consume requests" % at)
        if i != leader:
            check(value(mf[i], "raftq_manager_forwarded_total") >= consumed_at[i],
                  "%s forwarded" % at)
            for name in ("raftq_consumer_lag", "raftq_broker_heartbeat_age_seconds",
                         "raftq_partition_high_watermark", "raftq_group_lag",
                         "raftq_topic_high_watermark_sum",
                         "raftq_partition_high_watermark_omitted"):
                check(not samples(mf[i], name), "%s (a follower) reports %s" % (at, name))
        check(value(mf[i], "raftq_process_resident_memory_bytes") > 1 << 20, "%s rss" % at)
        check_release(mf[i], c.m_http[i], at)
    lf = mf[leader]
    for b in c.brokers:
        age = value(lf, "raftq_broker_heartbeat_age_seconds", broker=b)
        check(0 <= age < 3, "broker%d heartbeat age %r" % (b, age))
    check(sum(value(lf, "raftq_partition_high_watermark", topic=TOPIC, partition=p)
              for p in groups) == produced, "high watermarks")
    check(value(lf, "raftq_topic_high_watermark_sum", topic=TOPIC) == produced,
          "the topic's high watermarks added up")
    check(value(lf, "raftq_partition_high_watermark_omitted") == 0, "high watermarks omitted")
    lag = {int(lb["partition"]): v for lb, v in samples(lf, "raftq_consumer_lag", consumer=cons)}
    check(sorted(lag) == [0, 1, 2], "lag partitions %r" % lag)
    check(sum(lag.values()) == c.size(leader, TOPIC, cons), "lag against GET /size")
    check(value(lf, "raftq_consumer_lag_omitted") == 0, "lag omitted")

    # ---- A broker dies: the leader manager's liveness series follow ----
    c.brokers[3].kill()

    def state_of(b, want):
        f = scrape(c.m_http[c.wait_leader()])
        states = {lb["state"]: v for lb, v in samples(f, "raftq_broker_state", broker=b)}
        if states.get(want) != 1 or sum(states.values()) != 1:
            raise TestFailure("broker%d states %r" % (b, states))
        return f
    f = wait_until(lambda: state_of(3, "suspect"), 15, "broker3 to be SUSPECT")
    check(value(f, "raftq_broker_heartbeat_age_seconds", broker=3) >= 1.0, "broker3's age")
    f = wait_until(lambda: state_of(3, "dead"), 20, "broker3 to be DEAD")
    check(value(f, "raftq_broker_heartbeat_age_seconds", broker=3) >= 4.0, "broker3's age")
    for b in (1, 2):
        check(value(f, "raftq_broker_state", broker=b, state="alive") == 1, "broker%d alive" % b)
        check(value(f, "raftq_broker_heartbeat_age_seconds", broker=b) < 3, "broker%d age" % b)


def ready(addr):
    host, port = addr.rsplit(":", 1)
    try:
        conn = http.client.HTTPConnection(host, int(port), timeout=2)
        conn.request("GET", "/readyz")
        return conn.getresponse().status == 200
    except (OSError, http.client.HTTPException):
        return False
    finally:
        conn.close()


def total_all(fams, name, **want):
    """@name summed over every process in @fams."""
    return sum(total(f, name, **want) for f in fams.values())


def test_unmatched_paths_do_not_become_labels(ctx):
    """Requests that match no route are counted under route "unmatched",
    never under their path or an invented method."""
    addr = "127.0.0.1:%d" % ctx.ports.take()
    broker = os.path.join(os.path.dirname(ctx.binary), "broker")
    ctx.daemon("broker", 1, [broker, "--id", "1", "--raft-addr",
                             "127.0.0.1:%d" % ctx.ports.take(), "--http-addr", addr,
                             "--data", os.path.join(ctx.dir, "broker1"),
                             "--cluster-secret", SECRET,
                             "--log-level", ctx.opts.log_level]).start()
    wait_until(lambda: ready(addr), 20, "the broker to be ready")
    host, port = addr.rsplit(":", 1)
    for method, path in (("GET", "/no/such/path-1"), ("GET", "/no/such/path-2"),
                         ("FROB", "/metrics"), ("DELETE", "/metrics")):
        conn = http.client.HTTPConnection(host, int(port), timeout=10)
        conn.request(method, path)
        st = conn.getresponse().status
        conn.close()
        check(st in (404, 405), "%s %s: %d" % (method, path, st))
    f = scrape(addr)
    check(value(f, "raftq_http_requests_total", method="GET", route="unmatched", code=404) == 2,
          "unmatched GETs")
    check(value(f, "raftq_http_requests_total", method="other", route="unmatched", code=405) == 1,
          "an unknown method")
    check(value(f, "raftq_http_requests_total", method="DELETE", route="unmatched", code=405) == 1,
          "a known method on the wrong route")
    routes = {lb["route"] for lb, _ in samples(f, "raftq_http_requests_total")}
    check(not any("such" in r for r in routes), "a raw path became a label: %r" % routes)


if __name__ == "__main__":
    run_suite("metrics", [
        test_parser_is_strict,
        test_series_after_traffic,
        test_unmatched_paths_do_not_become_labels,
    ], binary="manager", ports=(27000, 27999))

"""Tests of the fault-injection suite's checkers (checker.py) on made-up
histories and logs: a consistent run passes every check, and each kind of
violation (a lost or changed acknowledged write, a duplicate, a write
nobody made, a refused write appended, producer order inverted, replicas
that differ, consumers that skip or repeat, a consumer group that loses,
skips or repeats records or moves a committed offset back) is found and
shown in the excerpt. Needs no root and no binary.
Run: python3 tests/chaos/test_checker.py
"""

import os
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
sys.path.insert(0, os.path.join(os.path.dirname(HERE), "integration"))

import checker  # noqa: E402
from harness import check, run_suite  # noqa: E402


class H:
    """A history under construction."""

    def __init__(self):
        self.ops = []

    def add(self, process, type_, f, **kw):
        op = {"index": len(self.ops), "t": float(len(self.ops)), "process": process,
              "type": type_, "f": f}
        op.update(kw)
        self.ops.append(op)
        return op

    def produce(self, who, n, p, off, type_="ok", topic="t"):
        v = "%s:%d" % (who, n)
        self.add(who, "invoke", "produce", topic=topic, value=v, partition=p)
        if type_ == "ok":
            self.add(who, "ok", "produce", topic=topic, value=v, partition=p, offset=off)
        else:
            self.add(who, type_, "produce", topic=topic, value=v, error="x")
        return v


def logs_of(recs, brokers=(1, 2, 3), topic="t"):
    """Every broker holds @recs ({p: [values]}) unless told otherwise."""
    return {(topic, p): {b: [(o, v, None, 1000 + o) for o, v in enumerate(vals)]
                         for b in brokers} for p, vals in recs.items()}


def consistent():
    h = H()
    h.add("nemesis", "invoke", "kill")
    a = h.produce("p0", 1, 0, 0)
    b = h.produce("p0", 2, 0, 1)
    c = h.produce("p1", 1, 1, 0)
    h.add("nemesis", "ok", "kill")
    h.produce("p1", 2, 1, None, type_="info")  # Never appended: allowed.
    return h, {0: [a, b], 1: [c]}


def test_consistent_history_passes(ctx):
    h, recs = consistent()
    logs = logs_of(recs)
    for fn in (checker.check_acked, checker.check_unique, checker.check_failed_absent,
               checker.check_order):
        r = fn(h.ops, logs)
        check(r.passed, "%s failed on a consistent run: %s" % (r.name, r.detail))
    check(checker.check_replicas_identical(logs).passed, "identical replicas judged different")


def test_lost_acked_write_is_found(ctx):
    h, recs = consistent()
    logs = logs_of(recs)
    logs[("t", 0)][2] = logs[("t", 0)][2][:1]  # broker2 lost offset 1 (p0:2).
    r = checker.check_acked(h.ops, logs)
    check(not r.passed and "p0:2" in r.detail and "broker2" in r.detail, r.detail)
    check(any(op.get("value") == "p0:2" for op in r.excerpt), "the excerpt lacks p0:2")
    check(any(op["process"] == "nemesis" for op in r.excerpt),
          "the excerpt lacks the nemesis under way")
    r = checker.check_replicas_identical(logs)
    check(not r.passed and "broker1 and broker2 differ" in r.detail, r.detail)


def test_duplicate_and_phantom_are_found(ctx):
    h, recs = consistent()
    recs[1].append(recs[0][0])  # p0:1 a second time, in another partition.
    recs[1].append("nobody:1")
    r = checker.check_unique(h.ops, logs_of(recs))
    check(not r.passed and "p0:1" in r.detail and "nobody:1" in r.detail, r.detail)


def test_refused_write_appended_is_found(ctx):
    h, recs = consistent()
    v = h.produce("p2", 1, 0, None, type_="fail")
    recs[0].append(v)
    r = checker.check_failed_absent(h.ops, logs_of(recs))
    check(not r.passed and v in r.detail, r.detail)
    # An unknown outcome may appear (once).
    h2, recs2 = consistent()
    recs2[1].append("p1:2")
    check(checker.check_failed_absent(h2.ops, logs_of(recs2)).passed, "an info write judged refused")
    check(checker.check_unique(h2.ops, logs_of(recs2)).passed, "an info write judged a duplicate")


def test_producer_order_inversion_is_found(ctx):
    h, recs = consistent()
    recs[0].reverse()
    r = checker.check_order(h.ops, logs_of(recs))
    check(not r.passed and "p0" in r.detail, r.detail)


def queue_history(skips_covered):
    h = H()
    h.add("qc0", "invoke", "consume", topic="t")
    h.add("qc0", "ok", "consume", topic="t", value="p0:1", partition=0, offset=0)
    if skips_covered:
        h.add("qc0", "invoke", "consume", topic="t")
        h.add("qc0", "info", "consume", topic="t", error="timed out")
    h.add("qc0", "invoke", "consume", topic="t")
    h.add("qc0", "ok", "consume", topic="t", value="p0:3", partition=0, offset=2)
    return h


def test_queue_consumer_skips_and_repeats(ctx):
    logs = logs_of({0: ["p0:1", "p0:2", "p0:3"]})
    r = checker.check_queue_consumers(queue_history(True).ops, logs, ["qc0"])
    check(r.passed, "a skip covered by an unknown consume was judged wrong: %s" % r.detail)
    r = checker.check_queue_consumers(queue_history(False).ops, logs, ["qc0"])
    check(not r.passed and "never delivered" in r.detail, r.detail)
    h = queue_history(True)
    h.add("qc0", "ok", "consume", topic="t", value="p0:3", partition=0, offset=2)
    r = checker.check_queue_consumers(h.ops, logs, ["qc0"])
    check(not r.passed and "twice" in r.detail, r.detail)


class Consumer:
    """One section 1 consumer's history under construction."""

    def __init__(self, h, name="qc0"):
        self.h = h
        self.name = name

    def ok(self, p, o, value, skipped=None):
        self.h.add(self.name, "invoke", "consume", topic="t")
        self.h.add(self.name, "ok", "consume", topic="t", value=value, partition=p, offset=o,
                   skipped=skipped)

    def failed(self, status, advanced, skipped=None):
        """A 5xx answer; @advanced is its "offset_advanced" (None: absent)."""
        body = {"status": "failure", "message": "x"}
        if advanced is not None:
            body["offset_advanced"] = advanced
        self.h.add(self.name, "invoke", "consume", topic="t")
        self.h.add(self.name, checker.consume_outcome(status, body), "consume", topic="t",
                   error="%d" % status, skipped=skipped)

    def timeout(self):
        self.h.add(self.name, "invoke", "consume", topic="t")
        self.h.add(self.name, "info", "consume", topic="t", error="timed out")


def many_503s_history(hidden):
    """Two partitions of 20 messages; the consumer gets most of them
    through hundreds of 503s that say no offset moved, and three it never
    gets are explained (a timeout while p0's offset 5 was next, a 503
    "unknown" while p1's 12 was, and an answer naming 17-18 of p1 as
    removed by retention). With @hidden, p0's offset 14 is never delivered
    either, with only "no" answers around it."""
    h = H()
    qc = Consumer(h)
    logs = {0: ["p0:%d" % o for o in range(20)], 1: ["p1:%d" % o for o in range(20)]}
    for o in range(20):
        for p in (0, 1):
            for _ in range(8):
                qc.failed(503, "no")
            if (p, o) == (0, 5):
                qc.timeout()
                continue
            if (p, o) == (1, 12):
                qc.failed(503, "unknown")
                continue
            if (p, o) in ((1, 17), (1, 18)):
                continue
            if (p, o) == (0, 14) and hidden:
                continue
            skipped = None
            if (p, o) == (1, 19):
                skipped = {"partition_id": 1, "first_offset": 17, "last_offset": 18}
            qc.ok(p, o, logs[p][o], skipped=skipped)
    return h, logs


def test_queue_consumer_skip_hidden_among_503s(ctx):
    h, recs = many_503s_history(hidden=False)
    n_no = sum(1 for op in h.ops if op["f"] == "consume" and op["type"] == "fail")
    check(n_no >= 300, "only %d answers saying no offset moved" % n_no)
    r = checker.check_queue_consumers(h.ops, logs_of(recs), ["qc0"])
    check(r.passed, "every skip is explained, yet: %s" % r.detail)
    check("1 by unknown consumes" not in r.detail and "2 by unknown consumes" in r.detail
          and "2 named by answers" in r.detail, r.detail)
    h, recs = many_503s_history(hidden=True)
    r = checker.check_queue_consumers(h.ops, logs_of(recs), ["qc0"])
    check(not r.passed and "t/0@14 'p0:14' never delivered" in r.detail, r.detail)
    check(any(op.get("offset") == 13 and op.get("partition") == 0 for op in r.excerpt) and
          any(op.get("offset") == 15 and op.get("partition") == 0 for op in r.excerpt),
          "the excerpt lacks the deliveries around the skip: %r" % r.excerpt)


def test_queue_consumer_unknown_explains_one_in_its_window(ctx):
    logs = logs_of({0: ["p0:0", "p0:1", "p0:2", "p0:3"]})
    # One unknown consume cannot explain two skips.
    h = H()
    qc = Consumer(h)
    qc.ok(0, 0, "p0:0")
    qc.timeout()
    qc.ok(0, 3, "p0:3")
    r = checker.check_queue_consumers(h.ops, logs, ["qc0"])
    check(not r.passed and "never delivered" in r.detail, r.detail)
    # An unknown consume made before the delivery that precedes the skip
    # cannot have passed over it.
    h = H()
    qc = Consumer(h)
    qc.timeout()
    qc.ok(0, 0, "p0:0")
    qc.ok(0, 2, "p0:2")
    qc.ok(0, 3, "p0:3")
    r = checker.check_queue_consumers(h.ops, logs, ["qc0"])
    check(not r.passed and "t/0@1 'p0:1' never delivered" in r.detail, r.detail)
    # A 5xx that does not say may have moved the offset; one that says
    # "no" did not.
    for advanced, passes in ((None, True), ("unknown", True), ("no", False)):
        h = H()
        qc = Consumer(h)
        qc.ok(0, 0, "p0:0")
        qc.failed(503, advanced)
        qc.ok(0, 2, "p0:2")
        qc.ok(0, 3, "p0:3")
        r = checker.check_queue_consumers(h.ops, logs, ["qc0"])
        check(r.passed == passes, "offset_advanced %r: %s" % (advanced, r.detail))
    # Skips at the end, after the last delivery, are explained by unknown
    # consumes after it.
    h = H()
    qc = Consumer(h)
    qc.ok(0, 0, "p0:0")
    qc.ok(0, 1, "p0:1")
    qc.timeout()
    qc.failed(502, "unknown")
    r = checker.check_queue_consumers(h.ops, logs, ["qc0"])
    check(r.passed, "two trailing skips, two unknown consumes after: %s" % r.detail)


def batch_history(resolve_to):
    """A section 2 consumer: commits [0, 2), a commit of [2, 3) with an
    unknown outcome, then reads back @resolve_to and commits the rest."""
    h = H()
    recs = [[0, "p0:1"], [1, "p0:2"], [2, "p0:3"]]
    h.add("bc0", "ok", "offsets", topic="t", value={"0": 0})
    h.add("bc0", "ok", "read", topic="t", partition=0, offset=0, records=recs[:2])
    h.add("bc0", "ok", "commit", topic="t", partition=0, offset=0, to=2, records=recs[:2])
    h.add("bc0", "info", "commit", topic="t", partition=0, offset=2, to=3, records=recs[2:])
    h.add("bc0", "ok", "offsets", topic="t", value={"0": resolve_to})
    if resolve_to == 2:
        h.add("bc0", "ok", "commit", topic="t", partition=0, offset=2, to=3, records=recs[2:])
    return h


def test_batch_consumer_exactly_in_order(ctx):
    logs = logs_of({0: ["p0:1", "p0:2", "p0:3"]})
    for to in (2, 3):
        r = checker.check_batch_consumers(batch_history(to).ops, logs, {"bc0": 1})
        check(r.passed, "resolved to %d: %s" % (to, r.detail))
    r = checker.check_batch_consumers(batch_history(1).ops, logs, {"bc0": 1})
    check(not r.passed and "read back is 1" in r.detail, r.detail)
    h = batch_history(3)
    h.add("bc0", "ok", "commit", topic="t", partition=0, offset=2, to=3,
          records=[[2, "p0:3"]])
    r = checker.check_batch_consumers(h.ops, logs, {"bc0": 1})
    check(not r.passed and "committed from 2 where 3 was due" in r.detail, r.detail)
    longer = logs_of({0: ["p0:1", "p0:2", "p0:3", "p0:4"]})
    r = checker.check_batch_consumers(batch_history(3).ops, longer, {"bc0": 1})
    check(not r.passed and "the log holds 4" in r.detail, r.detail)


def group_run():
    """Two members on partitions 0 and 1: m1 fetched 0/0-1 and committed
    them, m2 fetched 1/0 and was fenced, m1 then fetched 1/0 again."""
    acked = {"a": (0, 0), "b": (0, 1), "c": (1, 0)}
    recs = [("m1", 1, 0, 0, "a"), ("m1", 1, 0, 1, "b"), ("m2", 1, 1, 0, "c"),
            ("m1", 2, 1, 0, "c")]
    outcome = {("m1", 1): "ok", ("m2", 1): "fenced", ("m1", 2): "ok"}
    return acked, recs, outcome


def group_results(acked, recs, outcome, series, final):
    return {r.name: r for r in checker.check_group(acked, recs, outcome, series, final)}


def test_group_checker(ctx):
    acked, recs, outcome = group_run()
    series = [(0, 1, {0: 0, 1: 0}), (2, 3, {0: 2, 1: 0})]
    rs = group_results(acked, recs, outcome, series, {0: 2, 1: 1})
    check(all(r.passed for r in rs.values()),
          "a consistent run: %s" % [(n, r.detail) for n, r in rs.items() if not r.passed])
    # A record nobody processed, below the committed offset: lost and skipped.
    rs = group_results(dict(acked, d=(0, 2)), recs, outcome, series, {0: 3, 1: 1})
    check(not rs["group_at_least_once"].passed and "(0, 2, 'd')" in
          rs["group_at_least_once"].detail, rs["group_at_least_once"].detail)
    check(not rs["group_no_skip"].passed and "(0, 2)" in rs["group_no_skip"].detail,
          rs["group_no_skip"].detail)
    # A committed offset that went back; a sample that overlapped the one
    # that saw more may have been answered first.
    rs = group_results(acked, recs, outcome, series + [(4, 5, {0: 1, 1: 1})], {0: 2, 1: 1})
    check(not rs["group_commits_forward"].passed and "committed 1 in a sample begun at 4, "
          "after 2" in rs["group_commits_forward"].detail, rs["group_commits_forward"].detail)
    rs = group_results(acked, recs, outcome, series + [(2.5, 5, {0: 1, 1: 1})], {0: 2, 1: 1})
    check(rs["group_commits_forward"].passed, rs["group_commits_forward"].detail)
    # The same record twice, both in committed batches: not at-least-once's
    # redelivery.
    rs = group_results(acked, recs, {**outcome, ("m2", 1): "ok"}, series, {0: 2, 1: 1})
    check(not rs["group_duplicates_explained"].passed and "1/0 processed 2 times" in
          rs["group_duplicates_explained"].detail, rs["group_duplicates_explained"].detail)
    # A record processed at another offset than it was acknowledged at.
    rs = group_results(acked, recs + [("m1", 3, 1, 1, "a")], {**outcome, ("m1", 3): "ok"},
                       series, {0: 2, 1: 2})
    check(not rs["group_at_least_once"].passed and "a processed at 1/1" in
          rs["group_at_least_once"].detail, rs["group_at_least_once"].detail)


def test_group_members_from_history(ctx):
    logs = logs_of({0: ["a", "b"], 1: ["c"]})
    h = H()
    h.add("gm0", "ok", "gfetch", batch=1, records=[[0, 0, "a"], [0, 1, "b"]])
    h.add("gm0", "ok", "gcommit", batch=1)
    h.add("gm1", "ok", "gfetch", batch=1, records=[[1, 0, "c"]])
    h.add("gm1", "info", "gcommit", batch=1)
    h.add("gm0", "ok", "gfetch", batch=2, records=[[1, 0, "c"]])
    h.add("gm0", "ok", "gcommit", batch=2)
    h.add("gm0", "ok", "gsample", value={"0": 0, "1": 0}, start=0)
    h.add("gm0", "ok", "gsample", value={"0": 2, "1": 1}, start=0)
    r = checker.check_group_members(h.ops, logs, "t", {"gm0", "gm1"})
    check(r.passed, r.detail)
    # The redelivery of c needs gm1's commit not to have succeeded.
    h.ops[3]["type"] = "ok"
    r = checker.check_group_members(h.ops, logs, "t", {"gm0", "gm1"})
    check(not r.passed and "1/0 processed 2 times" in r.detail, r.detail)
    # A record of the log nobody processed.
    r = checker.check_group_members(h.ops[:2] + h.ops[6:], logs, "t", {"gm0"})
    check(not r.passed and "(1, 0, 'c')" in r.detail, r.detail)


TESTS = [
    test_consistent_history_passes,
    test_lost_acked_write_is_found,
    test_duplicate_and_phantom_are_found,
    test_refused_write_appended_is_found,
    test_producer_order_inversion_is_found,
    test_queue_consumer_skips_and_repeats,
    test_queue_consumer_skip_hidden_among_503s,
    test_queue_consumer_unknown_explains_one_in_its_window,
    test_batch_consumer_exactly_in_order,
    test_group_checker,
    test_group_members_from_history,
]

if __name__ == "__main__":
    run_suite("chaos_checker", TESTS, binary=None)

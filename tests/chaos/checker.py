"""The checkers of the fault-injection suite: pure functions of the history
(workload.History ops) and the partition logs read back from every replica
after healing. Each returns a Result: the invariant's name, whether it
held, a one-line detail and the history excerpt that shows a violation.

Definitions. A value's producer is the part of "<process>:<n>" before the
colon and n its place in that producer's order. An acknowledged write is
an "ok" produce or batch; a refused one ("fail") must have changed nothing;
one with an unknown outcome ("info") may appear at most once. The canonical
log of a partition is its first replica's (replicas are compared with one
another separately).
"""

import bisect
import collections

MAX_SHOWN = 5


class Result:
    def __init__(self, name, passed, detail, excerpt=()):
        self.name = name
        self.passed = passed
        self.detail = detail
        self.excerpt = list(excerpt)


def has_value(vals):
    """A predicate: the op wrote or read one of @vals."""
    def pred(op):
        v = op.get("value")
        if isinstance(v, str) and v in vals:
            return True
        return bool(vals & set(op.get("values") or ()))
    return pred


def excerpt(ops, pred, limit=12):
    """The ops for which pred holds (at most @limit), with the operation
    before and after each by the same process, and the nemesis events
    that were under way at each one's time."""
    hits = [op for op in ops if op["process"] != "nemesis" and pred(op)][:limit]
    if not hits:
        return []
    nem = [op for op in ops if op["process"] == "nemesis"]
    by_proc = collections.defaultdict(list)
    for op in ops:
        by_proc[op["process"]].append(op)
    out = {}
    for h in hits:
        out[h["index"]] = h
        mine = by_proc[h["process"]]
        k = mine.index(h)
        for near in mine[max(0, k - 2):k + 3]:
            out[near["index"]] = near
        start = None
        for n in nem:
            if n["t"] > h["t"]:
                break
            if n["type"] == "invoke":
                start = n
            elif n["type"] == "ok" and start is not None and n.get("f") == start.get("f"):
                start = None
        if start is not None:
            out[start["index"]] = start
    return [out[k] for k in sorted(out)]


def split_value(v):
    """("p3", 17) from "p3:17"; None for anything else."""
    if not isinstance(v, str) or ":" not in v:
        return None
    who, _, n = v.rpartition(":")
    try:
        return who, int(n)
    except ValueError:
        return None


def writes(ops):
    """Every write completion as (op, topic, value, partition, offset);
    partition and offset are None unless acknowledged."""
    out = []
    for op in ops:
        if op["f"] == "produce" and op["type"] != "invoke":
            out.append((op, op["topic"], op["value"], op.get("partition"), op.get("offset")))
        elif op["f"] == "batch" and op["type"] != "invoke":
            if op["type"] == "ok":
                for v, p, o in zip(op["values"], op["partitions"], op["offsets"]):
                    out.append((op, op["topic"], v, p, o))
            else:
                for v in op["values"]:
                    out.append((op, op["topic"], v, None, None))
    return out


def canonical(logs):
    """{(topic, p): {offset: value}} from the first replica of each."""
    out = {}
    for key, reps in logs.items():
        first = reps[min(reps)] if reps else []
        out[key] = {r[0]: r[1] for r in first}
    return out


def check_acked(ops, logs):
    """Every acknowledged write is at its acknowledged offset, with its
    value, on every replica."""
    at = {key: {b: {r[0]: r[1] for r in recs} for b, recs in reps.items()}
          for key, reps in logs.items()}
    bad = []
    n = 0
    for op, t, v, p, o in writes(ops):
        if op["type"] != "ok":
            continue
        n += 1
        reps = at.get((t, p))
        if reps is None:
            bad.append((v, "partition %s/%s was not read back" % (t, p)))
            continue
        for b, recs in sorted(reps.items()):
            if recs.get(o) != v:
                bad.append((v, "broker%d holds %r at %s/%d@%d" % (b, recs.get(o), t, p, o)))
                break
    if not bad:
        return Result("acked_writes_on_every_replica", True,
                      "%d acknowledged writes, each at its offset on every replica" % n)
    vals = {v for v, _ in bad}
    return Result("acked_writes_on_every_replica", False,
                  "%d of %d acknowledged writes missing or different: %s"
                  % (len(bad), n, "; ".join("%s: %s" % x for x in bad[:MAX_SHOWN])),
                  excerpt(ops, has_value(vals)))


def check_unique(ops, logs):
    """No value twice in a topic, and none that nobody wrote."""
    sent = {v for _, _, v, _, _ in writes(ops)}
    for op in ops:
        if op["type"] == "invoke" and op["f"] == "produce":
            sent.add(op["value"])
        elif op["type"] == "invoke" and op["f"] == "batch":
            sent.update(op["values"])
    phantom = []
    seen = collections.defaultdict(list)
    for (t, p), off_val in canonical(logs).items():
        for o, v in off_val.items():
            seen[(t, v)].append((p, o))
            if v not in sent:
                phantom.append((t, p, o, v))
    dup = [(t, v, places) for (t, v), places in seen.items() if len(places) > 1]
    if not dup and not phantom:
        return Result("no_duplicates", True, "%d values, each once in its topic" % len(seen))
    parts = []
    if dup:
        parts.append("%d values twice or more: %s" % (len(dup), "; ".join(
            "%s in %s at %s" % (v, t, sorted(pl)) for t, v, pl in sorted(dup)[:MAX_SHOWN])))
    if phantom:
        parts.append("%d values nobody wrote: %s" % (len(phantom), phantom[:MAX_SHOWN]))
    vals = {v for _, v, _ in dup} | {x[3] for x in phantom}
    return Result("no_duplicates", False, "; ".join(parts),
                  excerpt(ops, has_value(vals)))


def check_failed_absent(ops, logs):
    """A write refused for certain (4xx) appears nowhere."""
    present = set()
    for (t, _), off_val in canonical(logs).items():
        present.update((t, v) for v in off_val.values())
    bad = [(t, v) for op, t, v, _, _ in writes(ops) if op["type"] == "fail" and (t, v) in present]
    n = sum(1 for op, _, _, _, _ in writes(ops) if op["type"] == "fail")
    if not bad:
        return Result("refused_writes_absent", True, "%d refused writes, none appended" % n)
    vals = {v for _, v in bad}
    return Result("refused_writes_absent", False,
                  "%d refused writes were appended: %s" % (len(bad), sorted(vals)[:MAX_SHOWN]),
                  excerpt(ops, has_value(vals)))


def check_order(ops, logs):
    """Per partition, each producer's acknowledged values are in the order
    it sent them."""
    acked = set()
    for op, t, v, p, o in writes(ops):
        if op["type"] == "ok":
            acked.add((t, v))
    bad = []
    for (t, p), off_val in canonical(logs).items():
        last = {}
        for o in sorted(off_val):
            v = off_val[o]
            if (t, v) not in acked:
                continue
            sv = split_value(v)
            if sv is None:
                continue
            who, n = sv
            if who in last and last[who][0] > n:
                bad.append((t, p, who, last[who], (n, o)))
            last[who] = max(last.get(who, (n, o)), (n, o))
    if not bad:
        return Result("producer_order", True, "acknowledged values in send order per partition")
    vals = set()
    for t, p, who, a, b in bad:
        vals.add("%s:%d" % (who, a[0]))
        vals.add("%s:%d" % (who, b[0]))
    return Result("producer_order", False, "%d inversions: %s" % (len(bad), "; ".join(
        "%s/%d %s: #%d at offset %d before #%d at offset %d" % (t, p, who, a[0], a[1], b[0], b[1])
        for t, p, who, a, b in bad[:MAX_SHOWN])),
        excerpt(ops, has_value(vals)))


def consume_outcome(status, body):
    """The completion type of a GET /consumer/consume answer that is not a
    success: "fail" when it cannot have moved the consumer's offset (a 4xx,
    or a 5xx saying "offset_advanced": "no"), else "info" (the advance may
    have happened: "unknown", or a 5xx that does not say)."""
    if 400 <= status < 500:
        return "fail"
    said = body.get("offset_advanced") if isinstance(body, dict) else None
    return "fail" if said == "no" else "info"


def tie_skips(mine, present):
    """Ties each message one consumer never got to what explains it.

    @mine: the consumer's consume completions in the order it made them,
    each a dict with "type": "ok" (with "partition" and "offset"), "info"
    (outcome unknown: no answer, or a 5xx that says the offset may have
    moved) or anything else (cannot have moved it); any of them may carry
    "skipped" ({"partition_id", "first_offset", "last_offset"}, the range
    an answer said retention removed). @present: {partition: offsets the
    consumer should get}.

    An offset an answer named as skipped is explained by that answer. Any
    other offset o of partition p the consumer never got lies between its
    last delivery in p below o and its first above: only a consume with an
    unknown outcome made in that window can have advanced past o (the next
    offset in p was o then), and each such consume advanced at most one
    offset. Offsets are matched to consumes by earliest window end first,
    taking the earliest consume still free in the window, which explains
    as many as any matching can.

    Returns (unexplained: sorted [(p, o)], ties: {(p, o): (kind, k)}) where
    kind is "named" or "unknown" and k the index in @mine of the consume.
    """
    delivered = collections.defaultdict(list)  # p -> [(k, offset)] in order
    named = {}
    unknown = []
    for k, op in enumerate(mine):
        sk = op.get("skipped")
        if isinstance(sk, dict):
            for o in range(sk["first_offset"], sk["last_offset"] + 1):
                named.setdefault((sk["partition_id"], o), k)
        if op["type"] == "ok":
            delivered[op["partition"]].append((k, op["offset"]))
        elif op["type"] == "info":
            unknown.append(k)
    got = {(p, o) for p, lst in delivered.items() for _, o in lst}
    ties = {}
    gaps = []
    for p, offs in present.items():
        lst = delivered.get(p, [])
        ks = [k for k, _ in lst]
        os_ = [o for _, o in lst]
        for o in sorted(offs):
            if (p, o) in got:
                continue
            if (p, o) in named:
                ties[(p, o)] = ("named", named[(p, o)])
                continue
            i = bisect.bisect_left(os_, o)
            lo = ks[i - 1] if i > 0 else -1
            hi = ks[i] if i < len(ks) else len(mine)
            gaps.append((hi, lo, p, o))
    gaps.sort()
    free = sorted(unknown)
    unexplained = []
    for hi, lo, p, o in gaps:
        i = bisect.bisect_right(free, lo)
        if i < len(free) and free[i] < hi:
            ties[(p, o)] = ("unknown", free.pop(i))
        else:
            unexplained.append((p, o))
    return sorted(unexplained), ties


def check_queue_consumers(ops, logs, names):
    """Section 1 consumers (processes @names): nothing delivered twice,
    offsets increasing per partition, each message the one the log holds
    there, and every message not delivered explained (tie_skips): named as
    removed by retention in an answer, or passed over by one consume with
    an unknown outcome (the answer may have been lost after the offset
    moved: the documented at-most-once limit) made when that message was
    its consumer's next in the partition. Answers that say the offset did
    not move ("offset_advanced": "no") explain nothing."""
    canon = canonical(logs)
    problems = []
    summary = []
    around = set()
    for name in names:
        mine = [op for op in ops if op["process"] == name and op["f"] == "consume"
                and op["type"] != "invoke"]
        got = [op for op in mine if op["type"] == "ok"]
        infos = sum(1 for op in mine if op["type"] == "info")
        if not mine:
            continue
        topic = mine[0]["topic"]
        seen = set()
        values = set()
        last = {}
        for op in got:
            key = (op["partition"], op["offset"])
            if key in seen or op["value"] in values:
                problems.append((name, op, "delivered twice"))
            seen.add(key)
            values.add(op["value"])
            if last.get(op["partition"], -1) >= op["offset"]:
                problems.append((name, op, "offset went back from %d" % last[op["partition"]]))
            last[op["partition"]] = max(last.get(op["partition"], -1), op["offset"])
            want = canon.get((topic, op["partition"]), {}).get(op["offset"])
            if want != op["value"]:
                problems.append((name, op, "the log holds %r there" % want))
        present = {p: set(off_val) for (t, p), off_val in canon.items() if t == topic}
        unexplained, ties = tie_skips(mine, present)
        for p, o in unexplained[:MAX_SHOWN]:
            problems.append((name, None, "%s/%d@%d %r never delivered, and no consume with an "
                             "unknown outcome was made while it was next" %
                             (topic, p, o, canon[(topic, p)][o])))
            # The excerpt shows the deliveries on either side of it.
            near = [op for op in got if op["partition"] == p]
            below = [op for op in near if op["offset"] < o][-1:]
            above = [op for op in near if op["offset"] > o][:1]
            around.update(op["index"] for op in below + above)
        if len(unexplained) > MAX_SHOWN:
            problems.append((name, None, "%d more never delivered" %
                             (len(unexplained) - MAX_SHOWN)))
        n_named = sum(1 for kind, _ in ties.values() if kind == "named")
        summary.append("%s: %d delivered, %d unknown, %d skipped (%d by unknown consumes, "
                       "%d named by answers, %d unexplained)" %
                       (name, len(got), infos, len(ties) + len(unexplained),
                        len(ties) - n_named, n_named, len(unexplained)))
    if not problems:
        return Result("queue_consumers", True, "; ".join(summary))
    idx = {op["index"] for _, op, _ in problems if op is not None} | around
    return Result("queue_consumers", False, "; ".join(
        "%s: %s%s" % (n, why, "" if op is None else " (%s/%s@%s %r)" % (
            op["topic"], op["partition"], op["offset"], op["value"]))
        for n, op, why in problems[:MAX_SHOWN]),
        excerpt(ops, lambda op: op["index"] in idx))


def check_batch_consumers(ops, logs, consumers):
    """Section 2 consumers (@consumers: {process: partitions of its
    topic}): what they committed is each
    partition's records exactly, in order, none skipped, none twice, and
    every committed offset they read back is the last one they committed
    (or one whose commit had an unknown outcome)."""
    canon = canonical(logs)
    problems = []
    summary = []
    for name, n_parts in sorted(consumers.items()):
        mine = [op for op in ops if op["process"] == name and op["type"] != "invoke"]
        if not mine:
            continue
        topic = mine[0]["topic"]
        pos = None
        pending = {}
        delivered = collections.defaultdict(list)  # p -> [(offset, value)]

        def take(p, op):
            for o, v in op["records"]:
                delivered[p].append((o, v))
        for op in mine:
            if op["f"] == "offsets" and op["type"] == "ok":
                got = {int(p): o for p, o in op["value"].items()}
                if pos is None:
                    pos = got
                    continue
                for p, o in got.items():
                    if o == pos.get(p, 0):
                        pending.pop(p, None)
                        continue
                    pend = pending.pop(p, None)
                    if pend is not None and o == pend["to"] and pend["offset"] == pos.get(p, 0):
                        take(p, pend)
                        pos[p] = o
                        continue
                    problems.append((name, op, "partition %d: committed offset read back is %d, "
                                     "last committed %d" % (p, o, pos.get(p, 0))))
                    pos[p] = o
            elif op["f"] == "commit" and pos is not None:
                p = op["partition"]
                if op["type"] == "ok":
                    if op["offset"] != pos.get(p, 0):
                        problems.append((name, op, "partition %d: committed from %d where %d was "
                                         "due" % (p, op["offset"], pos.get(p, 0))))
                    take(p, op)
                    pos[p] = op["to"]
                    pending.pop(p, None)
                elif op["type"] == "info":
                    pending[p] = op
            elif op["f"] == "read" and pos is not None:
                recs = op["records"]
                if recs and (recs[0][0] != op["offset"] or
                             [r[0] for r in recs] != list(range(op["offset"],
                                                               op["offset"] + len(recs)))):
                    problems.append((name, op, "partition %d: a read at %d answered offsets %s"
                                     % (op["partition"], op["offset"], [r[0] for r in recs][:5])))
        total = 0
        for p in range(n_parts):
            log = canon.get((topic, p), {})
            want = [(o, log[o]) for o in sorted(log)]
            got = delivered.get(p, [])
            total += len(got)
            if got != want:
                k = next((i for i, (x, y) in enumerate(zip(got, want)) if x != y),
                         min(len(got), len(want)))
                problems.append((name, None, "partition %d: committed %d records, the log holds "
                                 "%d; first difference at #%d: %r vs %r" % (
                                     p, len(got), len(want), k,
                                     got[k] if k < len(got) else None,
                                     want[k] if k < len(want) else None)))
        summary.append("%s: %d records committed in order" % (name, total))
    if not problems:
        return Result("batch_consumers", True, "; ".join(summary))
    idx = {op["index"] for _, op, _ in problems if op is not None}
    return Result("batch_consumers", False, "; ".join(
        "%s: %s" % (n, why) for n, op, why in problems[:MAX_SHOWN]),
        excerpt(ops, lambda op: op["index"] in idx))


def check_replicas_identical(logs):
    """Every replica of a partition returns the same records (offset,
    value, key, timestamp) at every offset."""
    bad = []
    n = 0
    for (t, p), reps in sorted(logs.items()):
        n += 1
        ids = sorted(reps)
        if len(ids) < 3:
            bad.append("%s/%d: only %d replicas read back (%s)" % (t, p, len(ids), ids))
        for b in ids[1:]:
            x, y = reps[ids[0]], reps[b]
            if x != y:
                k = next((i for i, (a, c) in enumerate(zip(x, y)) if a != c), min(len(x), len(y)))
                bad.append("%s/%d: broker%d and broker%d differ (%d vs %d records), first at #%d: "
                           "%r vs %r" % (t, p, ids[0], b, len(x), len(y), k,
                                         x[k] if k < len(x) else None,
                                         y[k] if k < len(y) else None))
    if not bad:
        return Result("replicas_identical", True, "%d partitions, replicas record for record "
                      "identical" % n)
    return Result("replicas_identical", False, "; ".join(bad[:MAX_SHOWN]))


def read_member_files(paths):
    """The processings and commit outcomes that group members
    (tests/integration/group_member.py) wrote: a list of
    (member file, batch, partition, offset, value) and a dict
    (member file, batch) -> "ok", "fenced" or "failed" (absent: never
    committed, the member was stopped or killed first)."""
    recs = []
    outcome = {}
    for path in paths:
        try:
            with open(path) as f:
                lines = f.read().splitlines()
        except OSError:
            continue
        for line in lines:
            w = line.split(" ")
            if w[0] == "R" and len(w) == 5:
                recs.append((path, int(w[1]), int(w[2]), int(w[3]), w[4]))
            elif w[0] == "C" and len(w) >= 3:
                outcome[(path, int(w[1]))] = w[2]
    return recs, outcome


def check_group(acked, recs, outcome, committed_series, final_committed):
    """A consumer group's at-least-once contract (API.md section 2b), from
    the acknowledged writes (@acked: value -> (partition, offset)), what
    the members processed (@recs and @outcome as read_member_files gives
    them), the committed offsets sampled during the run (@committed_series:
    a list of (start, end, {partition: committed}), the times a sample's
    request was sent and answered) and at the end (@final_committed).

    - every acknowledged record was processed, at the offset it was
      acknowledged at (at least once);
    - a committed offset never went back;
    - no record below a committed offset was skipped: every acknowledged
      record below the final committed offset was processed;
    - a record processed more than once was, at least once, in a batch its
      member did not commit (fenced, failed, or never committed: the member
      was stopped or its session expired), since only those are fetched
      again."""
    results = []
    seen = collections.defaultdict(list)
    wrong = []
    for path, batch, p, o, v in recs:
        seen[(p, o)].append((path, batch))
        want = acked.get(v)
        if want is not None and want != (p, o):
            wrong.append("%s processed at %d/%d, acknowledged at %d/%d" % (v, p, o, want[0],
                                                                          want[1]))
    missing = sorted((p, o, v) for v, (p, o) in acked.items() if (p, o) not in seen)
    if missing or wrong:
        parts = ["%d acknowledged records never processed, first %s"
                 % (len(missing), missing[:MAX_SHOWN])] if missing else []
        results.append(Result("group_at_least_once", False, "; ".join(parts + wrong[:3])))
    else:
        results.append(Result("group_at_least_once", True,
                              "%d acknowledged records, every one processed" % len(acked)))
    # A sample may not show less than any sample that had ended before it
    # began (samples that overlap in time may be answered in either order).
    back = []
    end = float("inf")
    samples = sorted(committed_series + [(end, end, final_committed)], key=lambda x: x[0])
    ended = sorted(samples, key=lambda x: x[1])
    floor = {}
    j = 0
    for start, _, snap in samples:
        while j < len(ended) and ended[j][1] < start:
            for p, c in ended[j][2].items():
                if c > floor.get(p, (0, None))[0]:
                    floor[p] = (c, ended[j][1])
            j += 1
        for p, c in snap.items():
            if c < floor.get(p, (0, None))[0]:
                back.append("partition %d: committed %d in a sample begun at %s, after %d "
                            "in one that ended at %s" % (p, c, start, floor[p][0], floor[p][1]))
    results.append(Result("group_commits_forward", not back,
                          "; ".join(back[:MAX_SHOWN]) if back else
                          "%d samples, no committed offset went back" % len(committed_series)))
    skipped = sorted((p, o) for v, (p, o) in acked.items()
                     if o < final_committed.get(p, 0) and (p, o) not in seen)
    results.append(Result("group_no_skip", not skipped,
                          "records below a committed offset never processed: %s"
                          % skipped[:MAX_SHOWN] if skipped else
                          "every record below the committed offsets was processed"))
    unexplained = []
    dups = 0
    for (p, o), where in sorted(seen.items()):
        if len(where) < 2:
            continue
        dups += 1
        if all(outcome.get(w) == "ok" for w in where):
            unexplained.append("%d/%d processed %d times, every batch committed (%s)"
                               % (p, o, len(where), where[:3]))
    results.append(Result("group_duplicates_explained", not unexplained,
                          "; ".join(unexplained[:MAX_SHOWN]) if unexplained else
                          "%d records processed more than once, each in a batch not "
                          "committed" % dups))
    return results


def check_group_members(ops, logs, topic, members):
    """The consumer group workload (workload.GroupMember) on @topic, judged
    by check_group: every record of the topic's canonical logs is the
    acknowledged set (a record that reached the log counts, whether or not
    its produce was answered)."""
    acked = {}
    for (t, p), recs in canonical(logs).items():
        if t == topic:
            for o, v in recs.items():
                acked[v] = (p, o)
    recs = []
    outcome = {}
    series = []
    for op in ops:
        if op["process"] not in members:
            continue
        if op["f"] == "gfetch" and op["type"] == "ok":
            for p, o, v in op["records"]:
                recs.append((op["process"], op["batch"], p, o, v))
        elif op["f"] == "gcommit" and op["type"] != "invoke":
            outcome[(op["process"], op["batch"])] = "ok" if op["type"] == "ok" else op["type"]
        elif op["f"] == "gsample" and op["type"] == "ok":
            series.append((op["start"], op["t"], {int(p): c for p, c in op["value"].items()}))
    series.sort(key=lambda x: x[1])
    final = series[-1][2] if series else {}
    results = check_group(acked, recs, outcome, series[:-1], final)
    bad = [r for r in results if not r.passed]
    if bad:
        return Result("consumer_group", False, "; ".join("%s: %s" % (r.name, r.detail)
                                                         for r in bad))
    return Result("consumer_group", True, "; ".join(r.detail for r in results))

"""Checkers for histories of the ATM workload: pure functions, no processes.

A history is a list of operations (dicts, one line each of
atm_history.jsonl), each with:

  id        a number unique in the history
  atm       the ATM the command was typed at
  proc      the ATM process instance ("atm2#PID"); each
            start draws a new request origin, so request ids of one
            process are ordered by its write sequence number
  seq       the write's sequence number within its process (writes only)
  f         "deposit", "withdraw", "transfer" or "balance"
  account, to, amount   the command (amount in cents; to for transfers)
  invoke, complete      seconds on one monotonic clock; complete is None
                        when the outcome is unknown
  type      "ok"   answered with the balances (balance, to_balance)
            "fail" a definite error that changed nothing; error says which
                   ("insufficient" carries the balance the error reported)
            "info" unknown: a timeout, the process gone, or "no quorum"
                   after the write was proposed: it may take effect at any
                   time after its invocation, or never
  final     true for the reads taken after the faults were healed

check_linearizable() searches for a linearization of the history against
a sequential bank (balances start at zero; an unknown account reads 0),
in the manner of Wing and Gong with Lowe's memoisation: the calls and
returns form a time-ordered list; the search linearizes a pending call
whose model step is allowed, removes it from the list and starts again
from the head, backtracking when it meets the return of an operation it
has not linearized. Visited (set of linearized operations, balances, run)
states are remembered, so each is explored once.

Unknown writes have no return (they stay pending to the end and may be
dropped), except when a later write of the same process took effect: the
ledger refuses a request id older than the last one it applied for that
origin (while it remembers the origin: the last ATM_ORIGINS_MAX = 4096
process starts), so such a write took effect before the later one
completed or never; at that return it is applied or dropped. Applied at a
call, an unknown write is placed just before the first later operation
that touches one of its accounts (see _search), which keeps the search
from trying it at every point in between.

The history is cut at quiescent points (no operation with a return in
flight) into segments, each searched from every state the one before can
end in, depth first and then, if that runs out of its share of the
budget, breadth first. A search that exhausts the budget answers
"unknown", never "violation". Each violation names the operation that
could not be placed and the history around it.

The other checks (conservation, no negative balance, agreeing replicas)
are direct. Each check returns (name, passed, detail).
"""

import sys
import time

INF = float("inf")
WRITES = ("deposit", "withdraw", "transfer")


def money(c):
    """1250 -> '12.50', -5 -> '-0.05'."""
    sign = "-" if c < 0 else ""
    c = abs(c)
    return "%s%d.%02d" % (sign, c // 100, c % 100)


def describe(op, t0=0.0):
    """One line: times, ATM, command and outcome."""
    inv = op["invoke"] - t0
    comp = op.get("complete")
    span = "%.3f-%s" % (inv, "?" if comp is None else "%.3f" % (comp - t0))
    f = op["f"]
    if f == "transfer":
        cmd = "transfer %s %s %s" % (op["account"], op["to"], money(op["amount"]))
    elif f == "balance":
        cmd = "balance %s" % op["account"]
    else:
        cmd = "%s %s %s" % (f, op["account"], money(op["amount"]))
    if op["type"] == "ok":
        if f == "transfer":
            out = "ok %s %s" % (money(op["balance"]), money(op["to_balance"]))
        else:
            out = "ok %s" % money(op["balance"])
    elif op["type"] == "fail":
        out = "fail %s" % op.get("error", "")
        if op.get("balance") is not None:
            out += " (has %s)" % money(op["balance"])
    else:
        out = "info %s" % op.get("error", "")
    tag = " final" if op.get("final") else ""
    return "[%s] #%s atm%s%s %s -> %s" % (span, op["id"], op.get("atm"), tag, cmd, out)


def excerpt(history, focus, limit=14):
    """Lines describing the operations around @focus (one op): those whose
    interval overlaps it, then its nearest neighbours by invocation."""
    lo = focus["invoke"]
    hi = focus["complete"] if focus.get("complete") is not None else lo
    near = sorted(history, key=lambda o: abs(o["invoke"] - lo))
    chosen = []
    for o in near:
        end = o["complete"] if o.get("complete") is not None else INF
        overlaps = o["invoke"] <= hi and end >= lo
        if overlaps or len(chosen) < limit // 2:
            chosen.append(o)
        if len(chosen) >= limit:
            break
    if focus not in chosen:
        chosen.append(focus)
    chosen.sort(key=lambda o: o["invoke"])
    return "\n".join(("  >> " if o is focus else "     ") + describe(o) for o in chosen)


# ---- The sequential bank ---------------------------------------------------

# Kinds of operation in the search.
K_OK = 0  # Answered: the model must produce exactly its answer.
K_INSUFFICIENT = 1  # Refused: the account held `balance` < amount.
K_INFO = 2  # Unknown: applied if the model allows it, or a no-op.


class _Op:
    __slots__ = ("src", "f", "a", "b", "amt", "v", "w", "kind", "call", "ret")

    def __init__(self, src, index, kind, ret):
        self.src = src
        self.f = src["f"]
        self.a = index[src["account"]]
        self.b = index[src["to"]] if src["f"] == "transfer" else -1
        self.amt = src.get("amount") or 0
        self.v = src.get("balance")
        self.w = src.get("to_balance")
        self.kind = kind
        self.call = src["invoke"]
        self.ret = ret


def _step(s, op):
    """The balances after @op at balances @s (a tuple), or None if the
    bank could not have given @op's answer there."""
    f, a = op.f, op.a
    if op.kind == K_INSUFFICIENT:
        return s if s[a] == op.v and s[a] < op.amt else None
    if f == "balance":
        return s if s[a] == op.v else None
    if f == "deposit":
        n = s[a] + op.amt
        if op.kind == K_OK and n != op.v:
            return None
        return s[:a] + (n,) + s[a + 1:]
    if s[a] < op.amt:
        return None  # An unknown write refused here is the same as a no-op.
    if f == "withdraw":
        n = s[a] - op.amt
        if op.kind == K_OK and n != op.v:
            return None
        return s[:a] + (n,) + s[a + 1:]
    b = op.b
    na, nb = s[a] - op.amt, s[b] + op.amt
    if op.kind == K_OK and (na != op.v or nb != op.w):
        return None
    t = list(s)
    t[a], t[b] = na, nb
    return tuple(t)


def _effect(op):
    """{account index: change} an unknown write makes when applied."""
    if op.f == "deposit":
        return {op.a: op.amt}
    if op.f == "withdraw":
        return {op.a: -op.amt}
    return {op.a: -op.amt, op.b: op.amt}


def _needs(op):
    """{account index: balance} an answered op requires just before it."""
    if op.kind == K_INSUFFICIENT or op.f == "balance":
        return {op.a: op.v}
    if op.f == "deposit":
        return {op.a: op.v - op.amt}
    if op.f == "withdraw":
        return {op.a: op.v + op.amt}
    return {op.a: op.v + op.amt, op.b: op.w - op.amt}


def _prepare(history):
    """The search's operations: answered ones, refusals that report a
    balance, and writes of unknown outcome (with their bound, if any)."""
    names = set()
    for o in history:
        names.add(o["account"])
        if o["f"] == "transfer":
            names.add(o["to"])
    index = {n: i for i, n in enumerate(sorted(names))}

    # The earliest completion of a write that took effect, per process and
    # sequence number, to bound that process's earlier unknown writes.
    applied = {}
    for o in history:
        if o["f"] in WRITES and o.get("seq") is not None and o.get("complete") is not None and (
                o["type"] == "ok" or (o["type"] == "fail" and o.get("error") == "insufficient")):
            applied.setdefault(o["proc"], []).append((o["seq"], o["complete"]))

    ops = []
    for o in history:
        t = o["type"]
        if t == "ok":
            ops.append(_Op(o, index, K_OK, o["complete"]))
        elif t == "fail" and o.get("error") == "insufficient" and o.get("balance") is not None:
            ops.append(_Op(o, index, K_INSUFFICIENT, o["complete"]))
        elif t == "info" and o["f"] in WRITES:
            ret = INF
            if o.get("seq") is not None:
                for seq, comp in applied.get(o["proc"], ()):
                    if seq > o["seq"] and comp < ret:
                        ret = comp
            ops.append(_Op(o, index, K_INFO, ret))
    return ops, index


class _Budget(Exception):
    """The search ran out of steps or time."""


def _segments(ops):
    """Splits @ops (sorted by call) at the quiescent points: times inside
    no interval of an op with a return. Every op that returned before such
    a point precedes every op called after it, so the history is
    linearizable if and only if the segments are, in turn, each from a
    state the one before can end in. An unknown write without a bound
    belongs to the segment its call falls in (or the next one) and stays
    pending in those after it."""
    segs = []
    cur = []
    end = -INF
    for op in ops:
        if cur and op.call > end and op.ret != INF:
            segs.append(cur)
            cur = []
            end = -INF
        cur.append(op)
        if op.ret != INF and op.ret > end:
            end = op.ret
    if cur:
        segs.append(cur)
    return segs


def _search(ops, state, budget, best_out):
    """Generates the ends of the linearizations of @ops (sorted by call;
    unknown writes carried from earlier segments first) from balances
    @state: each (balances, unknown writes without a bound left unapplied),
    once, lazily, so the caller can stop at the first that leads on.
    best_out[0] is kept as (ops placed, their bitset, balances, ops) of the
    deepest partial linearization seen, for the report."""
    # An op's bit in the linearized set is 1 << its index here (the same op
    # carried into several searches has an index in each).
    ev = []
    for i, op in enumerate(ops):
        ev.append((op.call, 0, i, True))
        if op.ret != INF:
            ev.append((op.ret, 1, i, False))
    ev.sort()
    n = len(ev)
    # A doubly linked list over entries 1..n with a sentinel head 0.
    e_op = [-1] + [e[2] for e in ev]
    e_call = [False] + [e[3] for e in ev]
    nxt = list(range(1, n + 2))
    nxt[n] = -1
    prv = list(range(-1, n))
    ret_entry = [0] * len(ops)
    call_entry = [0] * len(ops)
    for k in range(1, n + 1):
        if e_call[k]:
            call_entry[e_op[k]] = k
        else:
            ret_entry[e_op[k]] = k
    mask = [(1 << op.a) | ((1 << op.b) if op.b >= 0 else 0) for op in ops]
    info = [op.kind == K_INFO for op in ops]
    open_ended = [i for i, op in enumerate(ops) if op.ret == INF]
    must = len(ops) - len(open_ended)
    # What an unknown write does to each account, what balances an
    # answered op needs just before it, and for each account the unknown
    # writes that touch it (a bitset of their indexes).
    effect = [_effect(op) if info[i] else None for i, op in enumerate(ops)]
    need = [None if info[i] else _needs(op) for i, op in enumerate(ops)]
    touching = {}
    for i, eff in enumerate(effect):
        for x in eff or ():
            touching[x] = touching.get(x, 0) | 1 << i
    sums_memo = {}
    all_info = 0
    for i in range(len(ops)):
        if info[i]:
            all_info |= 1 << i

    def sums(x, pending):
        """The changes to account x that some subset of the unknown writes
        in @pending (a bitset) can make together, funds aside."""
        key = (x, pending & touching.get(x, 0))
        got = sums_memo.get(key)
        if got is None:
            got = {0}
            rest = key[1]
            while rest:
                i = (rest & -rest).bit_length() - 1
                rest &= rest - 1
                d = effect[i][x]
                got = got | {v + d for v in got}
            sums_memo[key] = got
        return got

    def run_can_end(s, done_bits):
        """Whether a run of unknown writes at balances @s can still be
        ended: by an unknown write with a bound applied at its return, or
        by an answered op that may come next and whose every needed balance
        is within reach of the unknown writes not applied yet (no answered
        op comes between the run and the op ending it). Prunes runs that
        could never be closed."""
        pending = all_info & ~done_bits
        k = nxt[0]
        while k != -1:
            c = e_op[k]
            if not e_call[k]:
                if info[c]:
                    return True  # Applied at its return, it may end the run.
                break  # The op ending the run comes before this return.
            k = nxt[k]
            if info[c]:
                continue
            if all(v - s[x] in sums(x, pending) for x, v in need[c].items()):
                return True
        return False

    def lift(i):
        for k in (call_entry[i], ret_entry[i]):
            if k:
                nxt[prv[k]] = nxt[k]
                if nxt[k] != -1:
                    prv[nxt[k]] = prv[k]

    def unlift(i):
        for k in (ret_entry[i], call_entry[i]):
            if k:
                if nxt[k] != -1:
                    prv[nxt[k]] = k
                nxt[prv[k]] = k

    # The search state: balances, the set of linearized ops, how many ops
    # with a return are among them, and for unknown writes the run they
    # are in. An unknown write applied at its call is placed, without loss
    # of generality, just before the first later op that touches one of
    # its accounts (moving it later past ops on other accounts changes no
    # answer), so it opens or extends a run of unknown writes that a later
    # member or the answered op ending the run must touch: obl holds the
    # account masks of the members not touched yet, and an answered op may
    # end the run only if it touches all of them. Adjacent members on
    # disjoint accounts commute, so they are taken in call order only
    # (last is the previous member). An unknown write with a bound may
    # instead be applied, or dropped, at its return. One never applied in
    # this segment is carried into the next.
    #
    # The scan takes the answered ops first (phase 0) and the unknown
    # writes after (phase 1), both up to the first return not yet
    # linearized, so the first linearization found applies unknown writes
    # only where the answers need them.
    lin = 0
    done = 0
    obl = ()
    last = -1
    seen = set()
    stack = []  # (op, state, obl, last, mode): 0 at its call, 1 applied at return, 2 dropped
    if best_out[0] is None:
        best_out[0] = (0, 0, state, ops)
    ends = set()
    entry = nxt[0]
    phase = 0
    only_drop = -1  # A return entry where only dropping is left to try.
    while True:
        budget[0] -= 1
        if budget[0] <= 0 or (budget[0] & 0xFFF == 0 and time.monotonic() > budget[1]):
            raise _Budget()
        if done == must:
            if not obl:
                end = (state, frozenset(ops[i].src["id"] for i in open_ended
                                        if not lin >> i & 1))
                if end not in ends:
                    ends.add(end)
                    yield end
            entry = 0  # Backtrack for the other ends.
        elif entry == -1 or not e_call[entry]:
            if phase == 0:
                phase = 1
                entry = nxt[0]
                continue
        i = e_op[entry] if entry > 0 else -1
        if entry > 0 and e_call[entry]:
            if info[i] != (phase == 1):
                entry = nxt[entry]
                continue
            op = ops[i]
            m = mask[i]
            if info[i]:
                if last >= 0 and i < last and not mask[last] & m:
                    entry = nxt[entry]
                    continue
                obl2 = tuple(sorted([o for o in obl if not o & m] + [m]))
                last2 = i
            else:
                if obl and any(not o & m for o in obl):
                    entry = nxt[entry]
                    continue
                obl2 = ()
                last2 = -1
            s2 = _step(state, op)
            if s2 is not None and info[i] and not run_can_end(s2, lin | 1 << i):
                s2 = None
            if s2 is not None:
                key = (lin | 1 << i, s2, obl2, last2)
                if key not in seen:
                    seen.add(key)
                    stack.append((i, state, obl, last, 0))
                    state, lin, obl, last = s2, lin | 1 << i, obl2, last2
                    if op.ret != INF:
                        done += 1
                    lift(i)
                    if done > best_out[0][0]:
                        best_out[0] = (done, lin, state, ops)
                    entry = nxt[0]
                    phase = 0
                    continue
            entry = nxt[entry]
            continue
        # The return of an op not linearized yet. An unknown write may be
        # applied or dropped here; anything else means this branch failed.
        if entry > 0 and info[i]:
            op = ops[i]
            modes = (2,) if entry == only_drop else (1, 2)
            only_drop = -1
            advanced = False
            for mode in modes:
                if mode == 1:
                    s2 = _step(state, op)
                    if s2 is None:
                        continue
                    obl2 = tuple(o for o in obl if not o & mask[i])
                else:
                    s2, obl2 = state, obl
                key = (lin | 1 << i, s2, obl2, -1)
                if key in seen:
                    continue
                seen.add(key)
                stack.append((i, state, obl, last, mode))
                state, lin, obl, last = s2, lin | 1 << i, obl2, -1
                done += 1
                lift(i)
                if done > best_out[0][0]:
                    best_out[0] = (done, lin, state, ops)
                entry = nxt[0]
                phase = 0
                advanced = True
                break
            if advanced:
                continue
        # Backtrack: resume the scan after the call of the last op applied
        # at its call (in its phase); after one applied at its return, try
        # dropping it; after one dropped, fall back further.
        while stack:
            j, state, obl, last, mode = stack.pop()
            lin &= ~(1 << j)
            if ops[j].ret != INF:
                done -= 1
            unlift(j)
            if mode == 0:
                entry = nxt[call_entry[j]]
                phase = 1 if info[j] else 0
                break
            if mode == 1:
                entry = only_drop = ret_entry[j]
                phase = 1
                break
        else:
            return


def _depth_first(segs, by_id, start, budget, deepest):
    """True if a linearization exists. The first end of a segment's search
    is taken on into the next, and only if that fails is the next end
    generated; a (segment, start) pair is tried once. Quick when the
    answers pin the state down; slow when a wrong early choice about an
    unknown write shows only many segments later."""
    tried = set()

    def open_segment(k, config):
        tried.add((k, config))
        state, carried = config
        carry = sorted((by_id[c] for c in carried), key=lambda op: op.call)
        best_out = [None]
        if k > deepest[0]:
            deepest[:] = [k, best_out, config]
        return (k, _search(carry + segs[k], state, budget, best_out))

    stack = [open_segment(0, start)]
    while stack:
        k, gen = stack[-1]
        end = next(gen, None)
        if end is None:
            stack.pop()
            continue
        if k == len(segs) - 1:
            return True
        if (k + 1, end) not in tried:
            stack.append(open_segment(k + 1, end))
    return False


def _breadth_first(segs, by_id, start, budget, deepest):
    """True if a linearization exists. Every end of every segment is
    generated, from every end of the one before, so each segment is
    searched once per distinct state: slower per segment than depth first
    when many unknown writes are pending, but never lost down a wrong
    early choice."""
    configs = {start}
    for k, seg in enumerate(segs):
        nxt_configs = set()
        for config in sorted(configs):
            state, carried = config
            carry = sorted((by_id[c] for c in carried), key=lambda op: op.call)
            best_out = [None]
            if k > deepest[0]:
                deepest[:] = [k, best_out, config]
            nxt_configs.update(_search(carry + seg, state, budget, best_out))
            if k == len(segs) - 1 and nxt_configs:
                return True
        if not nxt_configs:
            return False
        configs = nxt_configs
    return True


def check_linearizable(history, max_steps=20000000, max_seconds=60.0):
    """('ok' | 'violation' | 'unknown', detail, stats).

    Tries depth first with a tenth of the budget, then breadth first
    with the rest; both are complete, so either one's verdict stands."""
    ops, index = _prepare(history)
    names = sorted(index, key=index.get)
    ops.sort(key=lambda op: op.call)
    by_id = {op.src["id"]: op for op in ops}
    segs = _segments(ops)
    t_start = time.monotonic()
    stats = {"ops": len(ops), "segments": len(segs),
             "max_segment": max([len(g) for g in segs] + [0])}
    if not segs:
        return "ok", "linearizable (no ops)", stats
    start = (tuple(0 for _ in names), frozenset())
    verdict = "unknown"
    used = 0
    deepest = [-1, None, None]  # Segment, best_out, start config.
    for strategy, share in ((_depth_first, 0.1), (_breadth_first, 1.0)):
        left = max_steps - used
        budget = [int(left * share), time.monotonic() + (max_seconds - (time.monotonic() - t_start)) * share]
        given = budget[0]
        deepest[:] = [-1, None, None]
        try:
            verdict = "ok" if strategy(segs, by_id, start, budget, deepest) else "violation"
        except _Budget:
            pass
        used += given - budget[0]
        stats["strategy"] = strategy.__name__[1:]
        if verdict != "unknown":
            break
    stats["steps"] = used
    stats["seconds"] = round(time.monotonic() - t_start, 3)
    if verdict == "ok":
        return "ok", ("linearizable (%d ops in %d segments, %d search steps, %.1fs)" %
                      (len(ops), len(segs), stats["steps"], stats["seconds"])), stats
    k, best_out, config = deepest
    if verdict == "unknown":
        return "unknown", ("unknown: search budget exhausted after %d steps, %.1fs (%d ops; "
                           "reached segment %d of %d)" %
                           (stats["steps"], stats["seconds"], len(ops), k + 1, len(segs))), stats
    placed, blin, bstate, sops = best_out[0]
    stuck = [op for i, op in enumerate(sops) if not blin >> i & 1 and op.ret != INF]
    stuck.sort(key=lambda op: op.ret)
    focus = stuck[0].src if stuck else sops[0].src
    bal = ", ".join("%s=%s" % (names[j], money(bstate[j])) for j in range(len(names)))
    begin = ", ".join("%s=%s" % (names[j], money(v)) for j, v in enumerate(config[0]))
    detail = ("not linearizable: no linearization gets past segment %d of %d (%d ops; from "
              "balances %s, the longest linearizable prefix places %d ops and ends with "
              "balances %s) and cannot place #%s:\n%s" %
              (k + 1, len(segs), len(segs[k]), begin, placed, bal, focus["id"],
               excerpt(history, focus)))
    return "violation", detail, stats


# ---- Direct checks ---------------------------------------------------------


def check_no_negative(history, final_reads=None):
    """No balance answered or read below zero."""
    bad = []
    for o in history:
        for k in ("balance", "to_balance"):
            v = o.get(k)
            if v is not None and v < 0:
                bad.append(o)
                break
    if final_reads:
        for atm, bals in sorted(final_reads.items()):
            for x, v in sorted(bals.items()):
                if v < 0:
                    bad.append({"id": "final", "atm": atm, "f": "balance", "account": x,
                                "invoke": 0.0, "complete": 0.0, "type": "ok", "balance": v})
    if bad:
        return ("atm_no_negative", False, "%d negative balance(s), first:\n%s" %
                (len(bad), excerpt(history, bad[0]) if bad[0] in history else describe(bad[0])))
    return ("atm_no_negative", True, "no negative balance in %d ops" % len(history))


def check_replicas_agree(final_reads):
    """Every ATM's final reads are the same."""
    if not final_reads:
        return ("atm_replicas_agree", False, "no final reads")
    ids = sorted(final_reads)
    first = final_reads[ids[0]]
    for i in ids[1:]:
        got = final_reads[i]
        diff = sorted(x for x in set(first) | set(got) if first.get(x) != got.get(x))
        if diff:
            return ("atm_replicas_agree", False, "atm%s and atm%s disagree: %s" % (
                ids[0], i, ", ".join("%s %s vs %s" % (
                    x, money(first[x]) if x in first else "-", money(got[x]) if x in got else "-")
                    for x in diff[:8])))
    return ("atm_replicas_agree", True, "%d ATMs read the same %d balances" % (len(ids), len(first)))


def _reachable_deltas(amounts, cap=200000):
    """The set of sums of subsets of @amounts (signed cents), or None if it
    grows past @cap."""
    sums = {0}
    for a in amounts:
        sums |= {s + a for s in sums}
        if len(sums) > cap:
            return None
    return sums


def check_conservation(history, final_reads):
    """The total of the final balances is what the acknowledged deposits and
    withdrawals make it, give or take the unknown ones; transfers move
    money and create none."""
    if not final_reads:
        return ("atm_conservation", False, "no final reads")
    base = 0
    unknown = []
    for o in history:
        if o["f"] not in ("deposit", "withdraw") or o.get("final"):
            continue
        sign = 1 if o["f"] == "deposit" else -1
        if o["type"] == "ok":
            base += sign * o["amount"]
        elif o["type"] == "info":
            unknown.append(sign * o["amount"])
    lo = base + sum(a for a in unknown if a < 0)
    hi = base + sum(a for a in unknown if a > 0)
    sums = _reachable_deltas(unknown)
    for atm, bals in sorted(final_reads.items()):
        total = sum(bals.values())
        if not lo <= total <= hi:
            return ("atm_conservation", False,
                    "atm%s: balances total %s, but acknowledged deposits minus withdrawals make "
                    "%s and the %d unknown ones allow %s..%s" %
                    (atm, money(total), money(base), len(unknown), money(lo), money(hi)))
        if sums is not None and total - base not in sums:
            return ("atm_conservation", False,
                    "atm%s: balances total %s; acknowledged deposits minus withdrawals make %s "
                    "and no subset of the %d unknown ones makes up the %s difference" %
                    (atm, money(total), money(base), len(unknown), money(total - base)))
    total = sum(next(iter(final_reads.values())).values())
    return ("atm_conservation", True, "total %s = acknowledged %s %+d cents from %d unknown ops" %
            (money(total), money(base), total - base, len(unknown)))


def check_all(history, final_reads, max_steps=20000000, max_seconds=60.0):
    """Every invariant: a list of (name, passed, detail). The final reads
    ({atm: {account: cents}}) are also part of the history given, as
    operations with final set."""
    out = [check_conservation(history, final_reads),
           check_no_negative(history, final_reads),
           check_replicas_agree(final_reads)]
    verdict, detail, _ = check_linearizable(history, max_steps, max_seconds)
    out.append(("atm_linearizable", verdict == "ok", detail))
    return out


def main(argv):
    """Checks a saved history: python3 linearize.py OUT_DIR/atm_history.jsonl."""
    import json

    if len(argv) != 2:
        print("usage: linearize.py ATM_HISTORY.jsonl", file=sys.stderr)
        return 2
    with open(argv[1]) as f:
        history = [json.loads(line) for line in f if line.strip()]
    final = {}
    for o in history:
        if o.get("final") and o["type"] == "ok":
            final.setdefault(o["atm"], {})[o["account"]] = o["balance"]
    results = check_all(history, final)
    for name, passed, detail in results:
        print("%s %s: %s" % ("ok  " if passed else "FAIL", name, detail))
    return 0 if all(passed for _, passed, _ in results) else 1


if __name__ == "__main__":
    sys.exit(main(sys.argv))

"""Bad input against real processes (DESIGN.md section 10, "Bad input").

Three managers and three brokers (the cluster of test_manager.py) get
every class of bad input on every route of API.md sections 1-3 and on the
brokers' HTTP routes: malformed and deeply nested JSON, wrong types,
missing and extra fields, empty and huge bodies, huge messages, topic names
with "../", NUL and unicode, negative, overflowing and non-numeric numbers,
unknown ids, wrong methods and content types. Each answer must be the one
DESIGN.md's table gives: its status code and a JSON failure whose message
names the problem. Then slow clients (partial requests held open, silent
connections, the connection limit reached) and strangers on the Raft port
(garbage, a wrong MAC, a preamble for another connection's challenge, a
foreign cluster id, an unknown group, half a preamble then silence). A
valid handshake to a manager's and a broker's Raft port is recorded and
replayed on a new connection: refused, and counted in /metrics as a
replay. Afterwards every process must still be running and
serving, and the messages produced before the barrage must be consumed
exactly, in order. The ATM gets bad lines on its standard input and the
same strangers on its Raft port.

Needs no root. Run: python3 tests/integration/test_bad_input.py
[--build DIR] [-k NAME] [--ports LO-HI]. With BAD_INPUT_SURVEY=1 in the
environment a wrong answer is printed and the barrage goes on, so one run
lists them all (the test still fails).
"""

import json
import os
import re
import socket
import struct
import selectors
import sys
import threading
import time
import urllib.parse

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from harness import TestFailure, check, money, parse_balance, run_suite, wait_until  # noqa: E402
import rqkeys  # noqa: E402
import rqsign  # noqa: E402
import rqpreamble  # noqa: E402
import test_manager  # noqa: E402
from test_manager import MAX_MESSAGE, SECRET  # noqa: E402
from test_metrics import samples, scrape, value  # noqa: E402

TOKEN = "bad-input-token"
IDLE_S = 3  # --http-idle-timeout-s of every manager and broker here.
LIMIT = 24  # --http-max-connections of manager 3.
RPC_SERVICE = 1  # RQ_RPC_SERVICE (shared/rq_rpc.h): brokers serve it.
MANAGER_GROUP = 1  # The managers' Raft group on their mux (manager/manager.c).
TOPIC = "bad"
RAW_TIMEOUT = 20.0

# ---- Raw HTTP ----------------------------------------------------------------


def _split(addr):
    host, port = addr.rsplit(":", 1)
    return host, int(port)


def _read_response(s):
    """Reads one response from @s (the request said Connection: close);
    returns (status, headers, body) or None if the server closed first."""
    buf = b""
    while True:
        try:
            chunk = s.recv(65536)
        except ConnectionResetError:
            chunk = b""
        if not chunk:
            break
        buf += chunk
    if not buf:
        return None
    head, _, body = buf.partition(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    m = re.match(r"^HTTP/1\.[01] (\d{3})", lines[0])
    check(m is not None, "not an HTTP response: %r" % buf[:200])
    hdrs = {}
    for line in lines[1:]:
        k, _, v = line.partition(":")
        hdrs[k.strip().lower()] = v.strip()
    if hdrs.get("transfer-encoding", "").lower() == "chunked":
        out = b""
        while body:
            size, _, rest = body.partition(b"\r\n")
            n = int(size.split(b";")[0], 16)
            if n == 0:
                break
            out += rest[:n]
            body = rest[n + 2:]
        body = out
    return int(m.group(1)), hdrs, body


# Addresses whose requests raw() signs, with the key (an rqkeys HTTP label):
# the bad input must reach the handlers past the signature check.
SIGN = {}


def raw(addr, method, path, body=b"", headers=None, timeout=RAW_TIMEOUT):
    """Sends one request exactly as given (no client-side checks) and reads
    the answer: (status, parsed JSON or None, headers, body bytes). A
    request to an address in SIGN is signed first (rqsign.py); @headers may
    replace or drop (None) that signature."""
    if isinstance(body, (dict, list)):
        body = json.dumps(body).encode()
    elif isinstance(body, str):
        body = body.encode()
    hdr = {"Host": addr, "Connection": "close"}
    if addr in SIGN:
        hdr.update(rqsign.headers(method, path, body, secret=SECRET, label=SIGN[addr]))
    if body:
        hdr["Content-Type"] = "application/json"
        hdr["Content-Length"] = str(len(body))
    for k, v in (headers or {}).items():
        if v is None:
            hdr.pop(k, None)
        else:
            hdr[k] = v
    req = "%s %s HTTP/1.1\r\n" % (method, path)
    req += "".join("%s: %s\r\n" % kv for kv in hdr.items()) + "\r\n"
    s = socket.create_connection(_split(addr), timeout=timeout)
    try:
        try:
            s.sendall(req.encode("latin-1") + body)
        except (BrokenPipeError, ConnectionResetError):
            pass  # The server answered (413) before taking the whole body.
        r = _read_response(s)
    except socket.timeout:
        raise TestFailure("%s %s at %s: no answer in %.0fs" % (method, path[:80], addr, timeout)) \
            from None
    finally:
        s.close()
    check(r is not None, "%s %s at %s: connection closed without an answer"
          % (method, path[:80], addr))
    st, hdrs, data = r
    try:
        obj = json.loads(data.decode("utf-8"))
    except ValueError:
        obj = None
    return st, obj, hdrs, data


class Tally:
    """Counts the cases tried, by status, for the summary line."""

    def __init__(self):
        self.by_status = {}

    def add(self, st):
        self.by_status[st] = self.by_status.get(st, 0) + 1

    def __str__(self):
        return ", ".join("%d x %d" % (n, st) for st, n in sorted(self.by_status.items()))


TALLY = Tally()


MISMATCHES = []  # With BAD_INPUT_SURVEY set: every wrong answer, not just the first.


def expect(addr, method, path, status, words, body=b"", headers=None, what=None, code=None):
    """The answer must be @status with a JSON failure whose message holds
    every one of @words (case-insensitive) and whose code is one of
    rq_codes.h's for @status (@code, if given); returns the parsed body."""
    if os.environ.get("BAD_INPUT_SURVEY"):
        try:
            return _expect(addr, method, path, status, words, body, headers, what, code)
        except TestFailure as e:
            MISMATCHES.append(str(e))
            print("    MISMATCH " + str(e)[:400], flush=True)
            return None
    return _expect(addr, method, path, status, words, body, headers, what, code)


def _expect(addr, method, path, status, words, body, headers, what, code):
    what = what or "%s %s" % (method, path[:100])
    words = [words] if isinstance(words, str) else words
    if isinstance(body, dict) and any(_too_big(v) for v in _leaves(body)):
        # jansson refuses integers past int64 unless the handler reads the
        # body its own way; either answer names the problem.
        words = [w + "|too big integer" for w in words]
    st, obj, hdrs, data = raw(addr, method, path, body, headers)
    TALLY.add(st)
    check(st == status, "%s: expected %d, got %d %r" % (what, status, st, data[:300]))
    check(hdrs.get("content-type", "").startswith("application/json"),
          "%s: content type %r" % (what, hdrs.get("content-type")))
    check(isinstance(obj, dict) and obj.get("status") == "failure"
          and isinstance(obj.get("message"), str),
          "%s: expected a JSON failure, got %r" % (what, data[:300]))
    msg = obj["message"].lower()
    for w in words:
        check(any(x.lower() in msg for x in w.split("|")),
              "%s: message %r does not say %r" % (what, obj["message"], w))
    if status == 503:
        check("retry-after" in hdrs, "%s: 503 without Retry-After" % what)
    got = obj.get("code")
    check(test_manager.ERROR_CODES.get(got) in (status, 0),
          "%s: code %r is not one of rq_codes.h's for %d" % (what, got, status))
    check(code is None or got == code, "%s: code %r, expected %r" % (what, got, code))
    return obj


def _leaves(v):
    if isinstance(v, dict):
        for x in v.values():
            yield from _leaves(x)
    elif isinstance(v, list):
        for x in v:
            yield from _leaves(x)
    else:
        yield v


def _too_big(v):
    return isinstance(v, int) and not isinstance(v, bool) and not -2**63 <= v < 2**63


def expect_ok(addr, method, path, body=b"", headers=None, what=None):
    st, obj, _, data = raw(addr, method, path, body, headers)
    TALLY.add(st)
    check(st == 200 and isinstance(obj, dict) and obj.get("status") == "success",
          "%s: expected success, got %d %r" % (what or path, st, data[:300]))
    return obj


def q(path, **args):
    return path + "?" + urllib.parse.urlencode(args)


# Bodies every JSON route refuses the same way (rq_http_json()).
DEEP = b"[" * 100000
BAD_BODIES = [
    (b'{"topic": ', "not valid JSON"),
    (DEEP, "nested deeper"),
    (b'{"a":' * 50000 + b"1" + b"}" * 50000, "nested deeper"),
    (b"[1, 2]", "object"),
    (b'"topic"', "object"),
    (b"42", "object"),
    (b'{"topic": "\xff\xfe"}', "UTF-8"),
    (b'{"topic": "a\\u0000b"}', "holds \\u0000 (NUL)"),
    (b'{"topic": "a", "topic": "b"}', "not valid JSON"),
    (b"topic=x&producer_id=1", "not valid JSON"),
]

BIG = str(2**64)
HUGE = "9" * 400


# ---- Any HTTP server -------------------------------------------------------------


def chunked_upload(addr, path, mib):
    """POSTs @mib MiB of chunked body (no Content-Length, so the size is
    known only as it arrives); returns the answer like raw()."""
    s = socket.create_connection(_split(addr), timeout=RAW_TIMEOUT)
    try:
        s.sendall(("POST %s HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n"
                   "Content-Type: application/json\r\nConnection: close\r\n\r\n" % path).encode())
        chunk = b"[" + b" " * ((1 << 20) - 1)
        try:
            for _ in range(mib):
                s.sendall(b"%x\r\n" % len(chunk) + chunk + b"\r\n")
            s.sendall(b"0\r\n\r\n")
        except (BrokenPipeError, ConnectionResetError):
            pass
        r = _read_response(s)
    finally:
        s.close()
    check(r is not None, "chunked upload to %s: closed without an answer" % path)
    st, hdrs, data = r
    return st, json.loads(data.decode()), hdrs, data


def barrage_http(addr, post_path):
    """What libmicrohttpd and rq_http judge before any handler: sizes of
    the request line, headers and a chunked body, HEAD, transfer codings,
    bad Content-Length values and a protocol other than HTTP/1."""
    st, obj, _, data = chunked_upload(addr, post_path, 40)
    TALLY.add(st)
    check(st == 413 and "larger than" in obj["message"], "40 MiB chunked: %d %r" % (st, data[:200]))
    # The request line and headers share a 32 KiB buffer; past it
    # libmicrohttpd answers 414 or 431 itself (its own HTML body).
    st, _, _, data = raw(addr, "GET", "/v1/topics/" + "x" * 100000 + "/records")
    TALLY.add(st)
    check(st == 414, "a 100 KB request line: %d %r" % (st, data[:100]))
    for hdrs in ({"X-Big": "y" * 100000}, {"X-H%d" % i: "v" for i in range(5000)}):
        st, _, _, data = raw(addr, "GET", "/healthz", headers=hdrs)
        TALLY.add(st)
        check(st == 431, "100 KB of headers: %d %r" % (st, data[:100]))
    st, _, hdrs, _ = raw(addr, "HEAD", "/healthz")
    TALLY.add(st)
    check(st == 405 and hdrs.get("allow") == "GET", "HEAD /healthz: %d %r" % (st, hdrs))
    expect(addr, "POST", post_path, 400, "Transfer-Encoding 'gzip' is not supported",
           headers={"Transfer-Encoding": "gzip"})
    # Framing libmicrohttpd refuses itself, with its own (empty or HTML) body.
    for hdrs, status in (({"Content-Length": "abc"}, 400), ({"Content-Length": "-1"}, 400),
                         ({"Content-Length": "9" * 30}, 413)):
        st, _, _, data = raw(addr, "POST", post_path, headers=hdrs)
        TALLY.add(st)
        check(st == status, "%r: %d %r" % (hdrs, st, data[:100]))
    s = socket.create_connection(_split(addr), timeout=RAW_TIMEOUT)
    try:
        s.sendall(b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n")
        r = _read_response(s)
    finally:
        s.close()
    check(r is not None and r[0] == 505, "an HTTP/2 preface: %r" % (r,))
    TALLY.add(r[0])


# ---- Manager routes ------------------------------------------------------------


def barrage_manager(c, addr, topic, pid, cid):
    """API.md sections 1-3 on the manager at @addr: every bad input class
    on every route. @pid and @cid are a producer and a consumer of @topic."""
    adm = {"Authorization": "Bearer " + TOKEN}
    posts = ["/topics", "/producer/register", "/consumer/register", "/producer/produce",
             "/v1/topics/%s/records" % topic, "/v1/consumers/%d/offsets" % cid]
    # Malformed, deep, wrong-shape, non-UTF-8 bodies: 400 on every POST.
    for path in posts:
        for body, word in BAD_BODIES:
            expect(addr, "POST", path, 400, word, body, what="POST %s %r" % (path, body[:30]))
    # Sizes: a Content-Length over the 32 MiB limit is 413 before the body
    # is read; a message over --max-message-bytes is 413.
    for path in posts:
        expect(addr, "POST", path, 413, "larger than", b"",
               headers={"Content-Length": str(1 << 30), "Content-Type": "application/json"})
    expect(addr, "POST", "/producer/produce", 413, ["message", "%d" % MAX_MESSAGE],
           {"topic": topic, "producer_id": pid, "message": "x" * (MAX_MESSAGE + 1)})
    expect(addr, "POST", "/v1/topics/%s/records" % topic, 413, ["%d" % MAX_MESSAGE],
           {"records": [{"value": "x" * (MAX_MESSAGE + 1)}]})
    expect(addr, "POST", "/v1/topics/%s/records" % topic, 413, "10000",
           {"records": [{"value": "v"}] * 10001})

    # POST /topics.
    for name, word in [("", "topic"), (".", "topic"), ("..", "topic"), ("../etc", "topic"),
                       ("a/../b", "topic"), ("a%00b", "topic"), ("caf\u00e9", "topic"),
                       ("\u202etxt", "topic"), ("x" * 129, "topic"), ("x" * 100000, "topic"),
                       ("a b", "topic"), ("a\nb", "topic")]:
        expect(addr, "POST", "/topics", 400, word, {"topic_name": name},
               what="topic name %r" % name[:20])
    for v in [123, None, [], {}, True, 1.5]:
        expect(addr, "POST", "/topics", 400, "topic", {"topic_name": v},
               what="topic_name %r" % (v,))
    expect(addr, "POST", "/topics", 400, "topic", {}, what="no topic name")
    expect(addr, "POST", "/topics", 400, "topic", b"", what="empty body")
    expect(addr, "POST", "/topics", 400, "topic", {"topic": "x"}, what="wrong field name")
    for v in [0, -1, 1025, 2**63, 2**64, "x", "-3", 2.5, True, [3], {}]:
        expect(addr, "POST", "/topics", 400, "number_of_partitions",
               {"topic_name": "np", "number_of_partitions": v}, what="partitions %r" % (v,))
    expect(addr, "POST", "/topics", 400, "real number overflow",
           b'{"topic_name": "np", "number_of_partitions": 1e400}')
    expect(addr, "POST", "/topics", 409, "exists", {"topic_name": topic}, code="topic_exists")
    # Content types: every body is read as JSON, whatever it says.
    for ctype in ("text/plain", "application/x-www-form-urlencoded", "application/xml",
                  "application/vnd.raftq.records"):
        expect(addr, "POST", "/topics", 400, "topic", {"topic_name": "a/b"},
               headers={"Content-Type": ctype}, what="POST /topics as %s" % ctype)
        expect(addr, "POST", "/topics", 400, "not valid JSON", b"topic_name=x",
               headers={"Content-Type": ctype}, what="a form as %s" % ctype)
    # Extra fields are ignored.
    expect_ok(addr, "POST", "/producer/register",
              {"topic": topic, "extra": {"deep": [1, 2, None]}, "partition": None},
              what="register with extra fields")
    for m in ["PUT", "DELETE", "PATCH"]:
        expect(addr, m, "/topics", 405, "not allowed")
    expect(addr, "FROB", "/topics", 405, "not allowed")

    # GET /topics/partitions.
    p = "/topics/partitions"
    expect(addr, "GET", p, 400, "topic")
    expect(addr, "GET", q(p, topic="nope"), 404, "nope", code="topic_not_found")
    for name in ["../" + topic, topic + "/..", "caf\u00e9", "x" * 129, ""]:
        expect(addr, "GET", q(p, topic=name), 400, "topic", what="partitions of %r" % name[:20])
    expect(addr, "GET", p + "?topic=" + topic + "%00x", 400, "NUL")
    expect(addr, "GET", p + "?topic=%ff", 400, "topic")
    expect(addr, "GET", p, 400, "topic", {"topic": 5}, what="topic a number in the body")
    expect(addr, "POST", p, 405, "not allowed")

    # Registration.
    for kind in ("producer", "consumer"):
        path = "/%s/register" % kind
        expect(addr, "POST", path, 400, "topic", {})
        expect(addr, "POST", path, 400, "topic", {"topic": 7})
        expect(addr, "POST", path, 400, "topic", {"topic": "../x"})
        expect(addr, "POST", path, 400, "topic", {"topic": "a\u00e9"})
        for v in [-1, BIG, "x", 1.5, HUGE, True]:
            expect(addr, "POST", path, 400, "partition",
                   {"topic": topic, "partition_id": v}, what="%s partition %r" % (kind, v))
        expect(addr, "POST", path, 404, "partition", {"topic": topic, "partition_id": 9},
               code="partition_not_found")
        expect(addr, "GET", path, 405, "not allowed")
    expect(addr, "POST", "/consumer/register", 404, "nope", {"topic": "nope"},
           code="topic_not_found")

    # POST /producer/produce.
    pp = "/producer/produce"
    good = {"topic": topic, "producer_id": pid, "message": "m"}
    for field in ("topic", "producer_id", "message"):
        body = dict(good)
        del body[field]
        expect(addr, "POST", pp, 400, field, body, what="produce without %s" % field)
    for v in [-1, BIG, "abc", 1.5, None, HUGE, 2**64]:
        expect(addr, "POST", pp, 400, "producer", dict(good, producer_id=v),
               what="producer_id %r" % (v,))
    for v in [0, 987654321]:
        expect(addr, "POST", pp, 404, "producer", dict(good, producer_id=v),
               code="producer_not_found")
    expect(addr, "POST", pp, 400, "is registered for topic 'other'", dict(good, producer_id=c.other_pid))
    for v in [5, None, ["m"], {"m": 1}, True]:
        expect(addr, "POST", pp, 400, "message", dict(good, message=v), what="message %r" % (v,))
    for v in [-1, BIG, "x", 1.5]:
        expect(addr, "POST", pp, 400, "partition", dict(good, partition_id=v),
               what="produce partition %r" % (v,))
        expect(addr, "POST", pp, 400, "partition", dict(good, partition=v),
               what="produce 'partition' %r" % (v,))
    expect(addr, "POST", pp, 404, "partition", dict(good, partition_id=99))
    expect(addr, "POST", pp, 400, "key", dict(good, key=5))
    expect(addr, "POST", pp, 400, "topic", dict(good, topic="../" + topic))
    expect(addr, "GET", pp, 405, "not allowed")

    # GET /consumer/consume and GET /size.
    for path in ("/consumer/consume", "/size"):
        expect(addr, "GET", path, 400, "topic")
        expect(addr, "GET", q(path, topic=topic), 400, "consumer_id")
        for v in ["-1", BIG, "abc", "1.5", "", " 1", "0x10", "1e3", HUGE]:
            expect(addr, "GET", q(path, topic=topic, consumer_id=v), 400, "consumer",
                   what="%s consumer_id %r" % (path, v))
        for v in ["0", "987654321"]:
            expect(addr, "GET", q(path, topic=topic, consumer_id=v), 404, "consumer",
                   code="consumer_not_found")
        expect(addr, "GET", q(path, topic=topic, consumer_id=c.other_cid), 400, "is registered for topic 'other'")
        for v in ["-1", BIG, "x"]:
            expect(addr, "GET", q(path, topic=topic, consumer_id=cid, partition_id=v), 400,
                   "partition", what="%s partition %r" % (path, v))
        expect(addr, "GET", q(path, topic="nope", consumer_id=cid), 400, "nope")
        expect(addr, "GET", path + "?topic=%s&consumer_id=%d%%00" % (topic, cid), 400, "NUL")
        expect(addr, "DELETE", path, 405, "not allowed")

    # POST /v1/topics/{topic}/records.
    rp = "/v1/topics/%s/records" % topic
    for body, word in [({}, "records"), ({"records": "x"}, "records"), ({"records": []}, "records"),
                       ({"records": [5]}, "record"), ({"records": [{"key": "k"}]}, "value"),
                       ({"records": [{"value": 5}]}, "value"),
                       ({"records": [{"value": "v", "key": 5}]}, "key"),
                       ({"records": [{"value": "v", "partition_id": -1}]}, "partition"),
                       ({"records": [{"value": "v", "partition_id": "0"}]}, "partition"),
                       ({"records": [{"value": "v"}], "producer_id": -1, "sequence": 0},
                        "producer_id"),
                       ({"records": [{"value": "v"}], "sequence": 5}, "producer_id"),
                       ({"records": [{"value": "v"}], "producer_id": 5, "sequence": -1},
                        "sequence"),
                       ({"records": [{"value": "v"}], "producer_id": 5, "sequence": 2**64},
                        "sequence")]:
        expect(addr, "POST", rp, 400, word, body, what="records %r" % (body,))
    expect(addr, "POST", rp, 404, "partition", {"records": [{"value": "v", "partition_id": 77}]})
    expect(addr, "POST", "/v1/topics/nope/records", 404, "nope", {"records": [{"value": "v"}]},
           code="topic_not_found")
    for seg in ["..%2Fetc", "a%00b", "%2e%2e", "caf%C3%A9", "x" * 300]:
        st, obj, _, _ = raw(addr, "POST", "/v1/topics/%s/records" % seg, {"records": [{"value": "v"}]})
        TALLY.add(st)
        check(st in (400, 404) and obj.get("status") == "failure" and obj.get("message"),
              "records of topic %r: %d %r" % (seg[:20], st, obj))

    # GET /v1/topics/{topic}/partitions/{p}/records.
    gp = "/v1/topics/%s/partitions/%%s/records" % topic
    for v in ["-1", BIG, "abc", "1.0", "0x1", HUGE]:
        expect(addr, "GET", gp % v, 400, "partition", what="read partition %r" % v)
    expect(addr, "GET", gp % "99", 404, "partition")
    expect(addr, "GET", "/v1/topics/nope/partitions/0/records", 404, "nope")
    for arg, vals in [("offset", ["-1", BIG, "abc", "", str(2**53 + 1)]),
                      ("max", ["0", "-1", "abc", BIG, "10001"]),
                      ("wait_ms", ["-1", "abc", BIG])]:
        for v in vals:
            expect(addr, "GET", q(gp % "0", **{arg: v}), 400, arg, what="read %s=%r" % (arg, v))

    # Consumer offsets.
    op = "/v1/consumers/%s/offsets"
    for v in ["-1", "abc", BIG, HUGE]:
        expect(addr, "GET", op % v, 400, "consumer", what="offsets of %r" % v)
        expect(addr, "POST", op % v, 400, "consumer", {"offsets": []}, what="commit of %r" % v)
    expect(addr, "GET", op % "0", 404, "consumer")
    expect(addr, "GET", op % "987654321", 404, "consumer")
    expect(addr, "POST", op % "987654321", 404, "consumer",
           {"offsets": [{"partition_id": 0, "offset": 0}]})
    for body, word in [({}, "offsets"), ({"offsets": 5}, "offsets"), ({"offsets": [5]}, "offset"),
                       ({"offsets": [{"partition_id": 0}]}, "offset"),
                       ({"offsets": [{"offset": 0}]}, "partition"),
                       ({"offsets": [{"partition_id": 0, "offset": -1}]}, "offset"),
                       ({"offsets": [{"partition_id": 0, "offset": 2**64}]}, "offset"),
                       ({"offsets": [{"partition_id": -1, "offset": 0}]}, "partition"),
                       ({"offsets": [{"partition_id": 0, "offset": "1"}]}, "offset")]:
        expect(addr, "POST", op % cid, 400, word, body, what="commit %r" % (body,))
    expect(addr, "POST", op % cid, 404, "partition",
           {"offsets": [{"partition_id": 55, "offset": 0}]})
    expect(addr, "DELETE", op % cid, 405, "not allowed")

    # Admin: the token, then ids and names.
    for h in [None, "Bearer wrong", "Basic " + TOKEN, "Bearer", "bearer " + TOKEN, ""]:
        expect(addr, "GET", "/admin/brokers", 401, "token", headers={"Authorization": h},
               what="admin with Authorization %r" % (h,))
    expect(addr, "DELETE", "/admin/topics/" + topic, 401, "token")
    for v in ["abc", "-1", BIG, HUGE]:
        expect(addr, "POST", "/admin/brokers/%s/drain" % v, 400, "broker", headers=adm,
               what="drain %r" % v)
        expect(addr, "DELETE", "/admin/brokers/%s" % v, 400, "broker", headers=adm,
               what="remove %r" % v)
    expect(addr, "POST", "/admin/brokers/0/drain", 404, "broker 0", headers=adm)
    expect(addr, "POST", "/admin/brokers/999/drain", 404, "999", headers=adm,
           code="broker_not_found")
    expect(addr, "DELETE", "/admin/brokers/999", 404, "999", headers=adm)
    lp = "/admin/partitions/%s/%s/leader"
    expect(addr, "GET", "/admin/topics/nope", 404, "nope", headers=adm, code="topic_not_found")
    expect(addr, "DELETE", "/admin/topics/nope", 404, "nope", headers=adm)
    for seg in ["caf%C3%A9", "%ff", "%2e%2e", "..", "x" * 129]:
        expect(addr, "GET", "/admin/topics/" + seg, 400, "topic names", headers=adm)
        expect(addr, "DELETE", "/admin/topics/" + seg, 400, "topic names", headers=adm)
        expect(addr, "POST", lp % (seg, 0), 400, "topic names", {"broker_id": 1}, headers=adm)
    expect(addr, "POST", lp % (topic, "0"), 400, "broker_id", {}, headers=adm)
    for v in [-1, "1", 2**64, 1.5, None]:
        expect(addr, "POST", lp % (topic, "0"), 400, "broker_id", {"broker_id": v}, headers=adm,
               what="leader broker_id %r" % (v,))
    expect(addr, "POST", lp % (topic, "0"), 400, "holds no replica", {"broker_id": 999}, headers=adm)
    for v in ["-1", "abc", BIG]:
        expect(addr, "POST", lp % (topic, v), 400, "partition", {"broker_id": 1}, headers=adm,
               what="leader of partition %r" % v)
    expect(addr, "POST", lp % (topic, "42"), 404, "partition", {"broker_id": 1}, headers=adm)
    expect(addr, "POST", lp % ("nope", "0"), 404, "nope", {"broker_id": 1}, headers=adm)
    expect(addr, "DELETE", "/admin/managers", 405, "not allowed", headers=adm)

    # Internal: the signature (tests/integration/test_strangers.py tries
    # every way of getting it wrong), then bodies.
    sec = {}  # raw() signs requests to managers as a broker (SIGN).
    reg = {"id": 9, "raft_addr": "127.0.0.1:1", "http_addr": "127.0.0.1:2"}
    for h, word in [({rqsign.HEADER: None}, "missing"),
                    ({rqsign.HEADER: None, "X-Raftq-Secret": SECRET}, "missing"),
                    ({rqsign.HEADER: "v1 " + SECRET}, "malformed"),
                    ({rqsign.HEADER: ""}, "malformed")]:
        expect(addr, "POST", "/internal/brokers/register", 401, word, reg, headers=h,
               what="register with %r" % (h,))
        expect(addr, "GET", "/internal/routes", 401, word, headers=h)
    # A broker's signature is not a manager's.
    expect(addr, "GET", "/internal/routes", 401, "bad signature")
    for body, word in [({}, "id"), ({"id": -1, "raft_addr": "a:1", "http_addr": "b:2"}, "id"),
                       ({"id": "9", "raft_addr": "a:1", "http_addr": "b:2"}, "id"),
                       ({"id": 9, "raft_addr": "nohost", "http_addr": "b:2"}, "raft_addr"),
                       ({"id": 9, "raft_addr": "a:1", "http_addr": 5}, "http_addr"),
                       ({"id": 9, "raft_addr": "a:99999", "http_addr": "b:2"}, "raft_addr"),
                       ({"id": 9, "raft_addr": "a b:1", "http_addr": "b:2"}, "raft_addr"),
                       ({"id": 9, "raft_addr": "h" * 70 + ":1", "http_addr": "b:2"}, "raft_addr"),
                       ({"id": 9, "raft_addr": "a:1", "http_addr": "b:0"}, "http_addr")]:
        expect(addr, "POST", "/internal/brokers/register", 400, word, body, headers=sec,
               what="register %r" % (body,))
    for v in ["abc", "-1", BIG]:
        expect(addr, "POST", "/internal/brokers/%s/heartbeat" % v, 400, "broker",
               {"replicas": []}, headers=sec, what="heartbeat of %r" % v)
    expect(addr, "POST", "/internal/brokers/1/heartbeat", 400, "replicas", {"replicas": 5},
           headers=sec)
    expect(addr, "POST", "/internal/brokers/1/heartbeat", 400, "replica",
           {"replicas": [{"group_id": "x"}]}, headers=sec)

    # Paths and methods.
    expect(addr, "GET", "/nowhere", 404, "no such path")
    expect(addr, "GET", "/" + "a/" * 40, 404, "no such path")
    expect(addr, "GET", "/topics/../admin/brokers", 404, "no such path")
    expect(addr, "GET", "/%2e%2e/admin", 404, "no such path")
    expect(addr, "GET", "/topics%00", 404, "no such path")
    expect(addr, "DELETE", "/healthz", 405, "not allowed")


# ---- Broker routes -------------------------------------------------------------


BINARY = "application/vnd.raftq.records"


def barrage_broker(addr, topic, gid):
    """The broker's internal and data-plane routes (broker/README.md) on the
    broker at @addr, which hosts group @gid (partition 0 of @topic). Requests
    are signed (SIGN), then validated, then routed: a produce is judged whole
    before where it goes, so a bad one gets the same 400 or 413 from a
    follower as from the leader, whoever leads at the moment (DESIGN.md
    section 10.2, "produce at a follower"; test_broker checks that a valid
    one gets 421 from a follower)."""
    rp = "/v1/topics/%s/partitions/0/records" % topic
    for path in ["/internal/replicas", rp, "/internal/replicas/%d/transfer" % gid,
                 "/internal/replicas/%d/preferred" % gid, "/internal/replicas/%d/members" % gid,
                 "/internal/replicas/%d/rebuild" % gid]:
        for body, word in BAD_BODIES:
            expect(addr, "POST", path, 400, word, body, what="POST %s %r" % (path, body[:30]))
        expect(addr, "POST", path, 413, "larger than", b"",
               headers={"Content-Length": str(1 << 30), "Content-Type": "application/json"})
    expect(addr, "POST", "/internal/replicas", 400, "topic", b"", what="empty body")
    # Data plane, JSON.
    for body, word in [({}, "records"), ({"records": [{"value": "v", "key": ["k"]}]}, "key"),
                       ({"records": [{"value": "a\u00e9" * 600}]}, "1024"),
                       ({"records": [{"value": "v"}], "producer_id": 0, "sequence": 0},
                        "producer_id"),
                       ({"records": [{"value": "v"}], "producer_id": 2**64, "sequence": 0},
                        "producer_id")]:
        # The same answer whoever leads: the body is judged before the
        # leadership (issue 11: a 421 here during a handover was a bug).
        status = 413 if word == "1024" else 400
        expect(addr, "POST", rp, status, word, body, what="produce %r" % (body,)[:60])
    # Data plane, binary (broker/README.md): each malformation, then a size.
    bad_bin = [
        (b"", "count"),
        (struct.pack("<I", 0), "count"),
        (struct.pack("<I", 1), "ends"),
        (struct.pack("<IiI", 1, -2, 1) + b"v", "key"),
        (struct.pack("<IiI", 1, -1, 2) + b"v", "ends"),
        (struct.pack("<IiI", 1, -1, 1) + b"vX", "follow"),
        (struct.pack("<IiI", 1, -1, 2) + b"\xff\xfe", "UTF-8"),
        (struct.pack("<IiI", 1, -1, 3) + b"a\0b", "NUL"),
        (struct.pack("<IiI", 1, 2**31 - 1, 1) + b"v", "ends"),
    ]
    for body, word in bad_bin:
        expect(addr, "POST", rp, 400, word, body, headers={"Content-Type": BINARY},
               what="binary %r" % body[:16])
    expect(addr, "POST", rp, 413, "10000", struct.pack("<I", 10001),
           headers={"Content-Type": BINARY})
    expect(addr, "POST", rp, 413, "1024", struct.pack("<IiI", 1, -1, 2**32 - 1) + b"v",
           headers={"Content-Type": BINARY})
    for qs, word in [("?producer_id=1", "sequence"), ("?producer_id=-1&sequence=0", "producer_id"),
                     ("?producer_id=x&sequence=0", "producer_id"),
                     ("?producer_id=1&sequence=%s" % BIG, "sequence")]:
        expect(addr, "POST", rp + qs, 400, word, struct.pack("<IiI", 1, -1, 1) + b"v",
               headers={"Content-Type": BINARY}, what="binary query %s" % qs)
    # Reads.
    for arg, vals in [("offset", ["-1", BIG, "abc", "1e3"]), ("max", ["0", "-5", "abc", "10001"]),
                      ("wait_ms", ["-1", "abc", BIG]), ("local", ["2", "-1", "yes", BIG])]:
        for v in vals:
            expect(addr, "GET", q(rp, **{arg: v}), 400, arg, what="broker read %s=%r" % (arg, v))
    expect(addr, "GET", rp + "?offset=0%00", 400, "NUL")
    # The largest offset is a read past the end: no records, at once (from
    # this replica's own log, so that every replica answers whatever its
    # role; only the leader answers a plain read).
    top = str(2**63 - 1)
    obj = expect_ok(addr, "GET", q(rp, offset=top, max=10000, local=1))
    check(obj["records"] == [] and obj["next_offset"] == 2**63 - 1, "read at 2^63-1: %r" % obj)
    for v in ["-1", "abc", BIG]:
        expect(addr, "GET", "/v1/topics/%s/partitions/%s/records" % (topic, v), 400, "partition",
               what="broker read partition %r" % v)
    expect(addr, "GET", "/v1/topics/%s/partitions/7/records" % topic, 404, "partition")
    expect(addr, "GET", "/v1/topics/..%2Fx/partitions/0/records", 404, "no such path")
    expect(addr, "GET", "/v1/topics/caf%C3%A9/partitions/0/records", 400, "topic")
    # Replicas: ids and bodies.
    for v in ["abc", "-1", "0", BIG, HUGE]:
        expect(addr, "DELETE", "/internal/replicas/%s" % v, 400, "group", what="delete %r" % v)
        expect(addr, "POST", "/internal/replicas/%s/transfer" % v, 400, "group", {"to": 0},
               what="transfer %r" % v)
        expect(addr, "POST", "/internal/replicas/%s/preferred" % v, 400, "group",
               {"broker_id": 1}, what="preferred %r" % v)
        expect(addr, "DELETE", "/internal/replicas/%d/members/%s" % (gid, v), 400, "member",
               what="member %r" % v)
        expect(addr, "POST", "/internal/replicas/%s/rebuild" % v, 400, "group", {},
               what="rebuild %r" % v)
    expect(addr, "DELETE", "/internal/replicas/424242", 404, "424242")
    expect(addr, "POST", "/internal/replicas/424242/preferred", 404, "424242", {"broker_id": 1})
    for v in [-1, "1", 2**64, None]:
        expect(addr, "POST", "/internal/replicas/%d/transfer" % gid, 400, "to", {"to": v},
               what="transfer to %r" % (v,))
        expect(addr, "POST", "/internal/replicas/%d/preferred" % gid, 400, "broker_id",
               {"broker_id": v}, what="preferred %r" % (v,))
    for body, word in [({}, "id"), ({"id": -1, "raft_addr": "a:1", "http_addr": "b:2"}, "id"),
                       ({"id": 9, "raft_addr": 5, "http_addr": "b:2"}, "raft_addr"),
                       ({"id": 9, "raft_addr": "a:1", "http_addr": "b:2", "timeout_ms": -1},
                        "timeout_ms")]:
        st, obj, _, data = raw(addr, "POST", "/internal/replicas/%d/members" % gid, body)
        TALLY.add(st)
        check(st in (400, 421) and obj.get("status") == "failure",
              "members add %r: %d %r" % (body, st, data[:200]))
        if st == 400:
            check(word in obj["message"].lower(), "members add %r: %r" % (body, obj["message"]))
    for body, word in [({"topic": "../x"}, "topic"), ({"topic": "a\u00e9"}, "topic"),
                       ({"topic": "x" * 129}, "topic"), ({"topic": 5}, "topic")]:
        expect(addr, "POST", "/internal/replicas", 400, word, body, what="create %r" % (body,)[:40])
    # A rebuild names its group in the path and in the body alike.
    rebuild = {"topic": topic, "partition_id": 0, "group_id": gid + 1,
               "members": [{"id": 1, "raft_addr": "127.0.0.1:1", "http_addr": "127.0.0.1:2"}]}
    expect(addr, "POST", "/internal/replicas/%d/rebuild" % gid, 400, "names group", rebuild)
    expect(addr, "PUT", "/internal/replicas", 405, "not allowed")
    expect(addr, "GET", "/internal/replicas/%d" % gid, 405, "not allowed")
    expect(addr, "GET", "/nowhere", 404, "no such path")


# ---- Strangers on the Raft port --------------------------------------------------


def closed_by_peer(s, within):
    """Seconds until the server closes @s (EOF or reset); TestFailure if it
    stays open @within seconds or sends anything but (part of) its
    challenge."""
    t0 = time.monotonic()
    s.settimeout(within)
    data = b""
    try:
        while True:
            chunk = s.recv(4096)
            if not chunk:
                break
            data += chunk
    except socket.timeout:
        raise TestFailure("a stranger's connection stayed open %.0fs" % within) from None
    except ConnectionResetError:
        pass
    check(rqpreamble.is_challenge_prefix(data), "the Raft port answered a stranger: %r" % data)
    return time.monotonic() - t0


# (what is sent: bytes at once, or a function of the challenge's nonce to
# answer it with; the reason the log names; whether the server hangs up at
# once)
def stranger_cases(secret):
    other = "not-the-secret-but-32-bytes-long-anyway"
    pre = rqpreamble.preamble
    return [
        ("garbage", os.urandom(4096), "malformed preamble", True),
        ("http", b"GET / HTTP/1.1\r\nHost: x\r\n\r\n" + b"x" * 200, "malformed preamble", True),
        ("wrong MAC", lambda n: pre(other, n), "authentication failed", True),
        ("another challenge", lambda n: pre(secret, os.urandom(32)), "replayed preamble", True),
        ("version 1", lambda n: pre(secret, n, version=1), "malformed preamble", True),
        ("foreign cluster", lambda n: pre(secret, n, cluster=99), "foreign cluster", True),
        ("unknown group", lambda n: pre(secret, n, group=987654), "unknown group", True),
        ("half a preamble", lambda n: pre(secret, n)[:70], "preamble timeout", False),
        ("nothing", b"", "preamble timeout", False),
    ]


class Watch:
    """Timestamps the moment the server closes each of a set of held
    connections (EOF or reset), from a thread of its own, so that a test
    can go on with other work and judge the times afterwards."""

    def __init__(self):
        self.sel = selectors.DefaultSelector()
        self.closed = {}  # socket -> (monotonic time, bytes received first)
        self.got = {}
        self.lock = threading.Lock()
        self.stop = False
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()

    def add(self, s):
        s.setblocking(False)
        with self.lock:
            self.got[s] = b""
            self.sel.register(s, selectors.EVENT_READ)

    def _run(self):
        while not self.stop:
            with self.lock:
                ready = self.sel.select(timeout=0) if self.sel.get_map() else []
            if not ready:
                time.sleep(0.02)
                continue
            for key, _ in ready:
                s = key.fileobj
                try:
                    data = s.recv(4096)
                except BlockingIOError:
                    continue
                except OSError:
                    data = b""
                with self.lock:
                    if data:
                        self.got[s] += data
                        continue
                    self.sel.unregister(s)
                    self.closed[s] = (time.monotonic(), self.got.pop(s))

    def wait_closed(self, s, deadline, what):
        """(monotonic time of the close, bytes received before it), once
        the server has closed @s; TestFailure if not by @deadline."""
        wait_until(lambda: s in self.closed, max(0.1, deadline - time.monotonic()),
                   "the server to close %s" % what, interval=0.05)
        return self.closed[s]

    def close(self):
        self.stop = True
        self.thread.join()
        for s in list(self.got) + list(self.closed):
            s.close()


def strangers(watch, addr, secret, log_path):
    """Every stranger case against the Raft port at @addr. Returns the
    silent ones, held open (in @watch), for strangers_done()."""
    held = []
    for what, data, reason, at_once in stranger_cases(secret):
        s = socket.create_connection(_split(addr), timeout=5)
        port = s.getsockname()[1]
        if callable(data):
            data = data(rqpreamble.read_challenge(s))
        if data:
            try:
                s.sendall(data)
            except (BrokenPipeError, ConnectionResetError):
                pass
        if at_once:
            try:
                closed_by_peer(s, 5)
            finally:
                s.close()
            wait_logged(log_path, port, reason, what)
        else:
            watch.add(s)
            held.append((what, s, port, reason, time.monotonic()))
    return held


def strangers_done(watch, held, log_path, timeout_s=5.0):
    """The silent strangers are dropped at their preamble deadline
    (rq_mux: 5 s, checked every 1.25 s), each with its log line."""
    for what, s, port, reason, t0 in held:
        when, data = watch.wait_closed(s, t0 + timeout_s + 5, what)
        check(rqpreamble.is_challenge_prefix(data),
              "%s: the Raft port answered %r" % (what, data[:80]))
        secs = when - t0
        check(timeout_s - 0.5 <= secs <= timeout_s + 5, "%s: dropped after %.1fs" % (what, secs))
        wait_logged(log_path, port, reason, what)


def wait_logged(log_path, port, reason, what):
    """The rejection is logged: a WARN line names the connection from
    @port and @reason, or, when another connection was rejected for the
    same reason less than a second before (rq_mux logs one line per reason
    a second), that earlier line stands for it. Never two lines for one
    connection."""
    mine = re.compile(r"rejected connection from [^ ]*:%d: %s" % (port, re.escape(reason)))
    any_ = re.compile(r"WARN .*rejected connection from [^ ]*: %s" % re.escape(reason))

    def lines():
        with open(log_path, "rb") as f:
            text = f.read().decode("utf-8", "replace").splitlines()
        own = [x for x in text if mine.search(x)]
        return (own, [x for x in text if any_.search(x)]) if own or any_.search(" ".join(text)) \
            else None
    own, same = wait_until(lines, 5, "the log line for %s (%s)" % (what, reason))
    check(len(own) <= 1, "%s: %d log lines" % (what, len(own)))
    check(own or same, "%s: not logged" % what)


# ---- Slow clients --------------------------------------------------------------


PARTIALS = [
    b"",
    b"GET /healthz HTTP/1.1\r\nHo",
    b"POST /topics HTTP/1.1\r\nHost: x\r\nContent-Length: 100\r\n\r\n{\"topic",
    b"POST /topics HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n5\r\n{\"top",
    b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03" + bytes(64),  # A TLS ClientHello.
]


def slow_clients(watch, addr, n):
    """@n connections that send part of a request (or nothing) and hold."""
    out = []
    for i in range(n):
        s = socket.create_connection(_split(addr), timeout=5)
        data = PARTIALS[i % len(PARTIALS)]
        if data:
            s.sendall(data)
        watch.add(s)
        out.append((s, time.monotonic()))
    return out


def slow_dropped(watch, held, idle_s):
    """Every held connection was closed by the server about @idle_s
    seconds after its last byte, with nothing or a 408 sent."""
    for s, t0 in held:
        when, data = watch.wait_closed(s, t0 + idle_s + 6, "a slow client")
        secs = when - t0
        check(idle_s - 1 <= secs <= idle_s + 5,
              "a slow client was dropped after %.1fs (idle timeout %ds)" % (secs, idle_s))
        check(data == b"" or data.startswith(b"HTTP/1.1 408"), "a slow client got %r" % data[:80])


# ---- The tests -----------------------------------------------------------------


def produce_some(c, topic, pid, n, tag):
    sent = []
    for k in range(n):
        part, off = c.produce(1 + k % 3, topic, pid, "%s-%d" % (tag, k))
        sent.append((part, off, "%s-%d" % (tag, k)))
    return sent


def consume_all(c, topic, cid):
    got = []
    while True:
        r = c.consume(1 + len(got) % 3, topic, cid)
        if r is None:
            return got
        got.append((r[1], r[2], r[0]))


def check_messages(sent, got):
    """Every message sent was consumed once, in offset order per partition."""
    check(sorted(got) == sorted(sent), "consumed %d of %d, or other ones: %r"
          % (len(got), len(sent), sorted(set(got) ^ set(sent))[:5]))
    for p in {x[0] for x in got}:
        offs = [x[1] for x in got if x[0] == p]
        check(offs == sorted(offs), "partition %d consumed out of order: %r" % (p, offs))


def all_alive(c):
    for name, procs, addrs in (("manager", c.managers, c.m_http), ("broker", c.brokers, c.b_http)):
        for i, proc in procs.items():
            check(proc.running(), "%s%d has exited" % (name, i))
            st, obj, _, _ = raw(addrs[i], "GET", "/healthz", timeout=5)
            check(st == 200, "%s%d /healthz: %d" % (name, i, st))


def test_cluster_bad_input(ctx):
    """Managers and brokers: the HTTP barrage, slow clients and strangers."""
    http_args = ["--http-idle-timeout-s", str(IDLE_S)]
    c = test_manager.Cluster(ctx, n_brokers=3, manager_args=http_args,
                             broker_args=http_args + ["--max-message-bytes", str(MAX_MESSAGE)],
                             admin_token=TOKEN)
    c.managers[3].argv += ["--http-max-connections", str(LIMIT)]
    c.start()
    c.create_topic(1, TOPIC, 2)
    c.wait_topic_led(TOPIC)
    pid = c.register(1, "producer", TOPIC)
    cid = c.register(2, "consumer", TOPIC)
    c.other_pid = c.register(3, "producer", "other")
    c.other_cid = c.register(3, "consumer", "other")
    sent = produce_some(c, TOPIC, pid, 10, "before")
    for i in c.brokers:
        SIGN[c.b_http[i]] = rqkeys.HTTP_M2B
    for i in c.managers:
        SIGN[c.m_http[i]] = rqkeys.HTTP_B2M

    # Strangers and slow clients first: they are held through the barrage.
    watch = Watch()
    ctx.cleanups.append(watch.close)
    held_raft = []
    for i in (1, 2):
        for proc, addr in ((c.managers[i], c.m_raft[i]), (c.brokers[i], c.b_raft[i])):
            held_raft.append((strangers(watch, addr, SECRET, proc.log_path), proc.log_path))
    slow = slow_clients(watch, c.m_http[1], 60) + slow_clients(watch, c.b_http[1], 60)
    t0 = time.monotonic()
    st, _, _, _ = raw(c.m_http[1], "GET", "/healthz", timeout=5)
    check(st == 200 and time.monotonic() - t0 < 2, "manager1 stopped serving under slow clients")

    for i in (1, 2, 3):
        barrage_manager(c, c.m_http[i], TOPIC, pid, cid)
    barrage_http(c.m_http[2], "/producer/produce")
    desc = c.describe(TOPIC)
    gid = desc["partitions"][0]["group_id"]
    lead = c.group_leader(gid, desc["partitions"][0]["replicas"])
    for b in desc["partitions"][0]["replicas"]:
        barrage_broker(c.b_http[b], TOPIC, gid)
    barrage_http(c.b_http[lead], "/v1/topics/%s/partitions/0/records" % TOPIC)
    print("    %s" % TALLY)
    check(not MISMATCHES, "%d wrong answers (listed above)" % len(MISMATCHES))

    slow_dropped(watch, slow, IDLE_S)
    for held, log in held_raft:
        strangers_done(watch, held, log)

    # The connection limit: manager 3 takes LIMIT connections; one more
    # waits in the listen queue and is served once the idle ones are gone.
    full = slow_clients(watch, c.m_http[3], LIMIT)
    t0 = time.monotonic()
    st, _, _, _ = raw(c.m_http[3], "GET", "/healthz", timeout=IDLE_S + 10)
    secs = time.monotonic() - t0
    check(st == 200, "manager3 past its connection limit: %d" % st)
    check(IDLE_S - 1.5 <= secs <= IDLE_S + 5,
          "past the connection limit, served after %.1fs (idle timeout %ds)" % (secs, IDLE_S))
    slow_dropped(watch, full, IDLE_S)

    # A consumer offset past the end is taken (as in Kafka): the consumer
    # of "other" then waits there, with no lag.
    top = 2**63 - 1
    expect_ok(c.m_http[1], "POST", "/v1/consumers/%d/offsets" % c.other_cid,
              {"offsets": [{"partition_id": 0, "offset": top}]})
    obj = expect_ok(c.m_http[2], "GET", "/v1/consumers/%d/offsets" % c.other_cid)
    check({"partition_id": 0, "offset": top, "lag": 0} in obj["offsets"], "offsets %r" % obj)
    check(c.consume(3, "other", c.other_cid, partition_id=0) is None, "consumed past 2^63-1")

    all_alive(c)
    sent += produce_some(c, TOPIC, pid, 10, "after")
    check_messages(sent, consume_all(c, TOPIC, cid))
    all_alive(c)


def replay_refused(what, raft, http, log_path, **fields):
    """A valid handshake to the Raft port at @raft is accepted (it stays
    open, and /metrics at @http counts it); the preamble it sent, replayed
    on a new connection, is refused at once, logged, and counted in
    /metrics as a replay."""
    before = scrape(http)
    accepted = value(before, "raftq_raft_port_accepted_total")
    replayed = value(before, "raftq_raft_port_rejected_total", reason="replayed")
    s, sent = rqpreamble.handshake(raft, SECRET, **fields)
    try:
        wait_until(lambda: value(scrape(http), "raftq_raft_port_accepted_total") > accepted,
                   10, "%s to accept a valid handshake" % what)
        s.settimeout(1.0)
        try:
            got = s.recv(1)
            raise TestFailure("%s closed a valid handshake's connection (%r)" % (what, got))
        except socket.timeout:
            pass  # Open, as it should be.
        r = socket.create_connection(_split(raft), timeout=5)
        port = r.getsockname()[1]
        try:
            rqpreamble.read_challenge(r)
            r.sendall(sent)
            closed_by_peer(r, 5)
        finally:
            r.close()
    finally:
        s.close()
    wait_until(lambda: value(scrape(http), "raftq_raft_port_rejected_total",
                             reason="replayed") == replayed + 1,
               10, "%s to count the replay" % what)
    wait_logged(log_path, port, "replayed preamble", what)
    for labels, n in samples(scrape(http), "raftq_raft_port_rejected_total"):
        if labels["reason"] != "replayed":
            check(n == value(before, "raftq_raft_port_rejected_total", reason=labels["reason"]),
                  "%s counted the replay as %r too" % (what, labels["reason"]))


def test_raft_port_replay(ctx):
    """A recorded handshake replayed to a manager's and a broker's Raft
    port: refused, and counted in /metrics under reason="replayed"."""
    c = test_manager.Cluster(ctx, n_managers=1, n_brokers=1).start()
    replay_refused("manager1", c.m_raft[1], c.m_http[1], c.managers[1].log_path,
                   kind=rqpreamble.RAFT, group=MANAGER_GROUP)
    replay_refused("broker1", c.b_raft[1], c.b_http[1], c.brokers[1].log_path,
                   kind=rqpreamble.RPC, group=RPC_SERVICE)
    all_alive(c)


def test_atm_bad_lines(ctx):
    """The ATM: bad lines on standard input, strangers on its Raft port."""
    ctx.binary = os.path.join(os.path.dirname(ctx.binary), "atm")
    c = ctx.cluster().start()
    c.wait_leader()
    a = c[1]
    check(a.cmd("deposit acct 10") == "ok acct 10.00", "deposit failed")
    bad = [
        ("deposit acct -1", "amount"), ("deposit acct 0", "amount"),
        ("deposit acct 0.00", "amount"), ("deposit acct 1.234", "amount"),
        ("deposit acct 1.", "amount"), ("deposit acct .5", "amount"),
        ("deposit acct 99999999999999999999", "amount"),
        ("deposit acct 92233720368547758.08", "amount"), ("deposit acct 1e3", "amount"),
        ("deposit acct +1", "amount"), ("deposit acct 0x10", "amount"),
        ("deposit acct NaN", "amount"), ("withdraw acct 10.01", "insufficient"),
        ("transfer acct acct 1", "itself"), ("withdraw acct -0.01", "amount"),
        ("deposit bad!name 1", "account"), ("deposit caf\u00e9 1", "account"),
        ("deposit ../x 1", "account"), ("balance " + "x" * 65, "account"),
        ("deposit " + "y" * 2000 + " 1", "too long"),
        ("deposit acct 1 " + "z" * 100000, "too long"),
        ("deposit acct 5\0junk", "NUL"), ("\0deposit acct 5", "NUL"),
        ("dep\0osit acct 5", "NUL"), ("\x01deposit acct 5", "unknown command"),
        ("frobnicate", "unknown command"), ("DEPOSIT acct 1", "unknown command"),
        ("deposit", "usage"), ("deposit acct", "usage"), ("deposit acct 1 2", "usage"),
        ("\x1b[2J", "unknown command"),
    ]
    for line, word in bad:
        ans = a.cmd(line)
        check(ans.startswith("error: ") and word.lower() in ans.lower(),
              "%r: expected 'error: ...%s...', got %r" % (line[:40], word, ans[:200]))
        check("\0" not in ans and len(ans) < 400, "%r: answer %r" % (line[:40], ans[:100]))
    # Blank lines are answered with nothing (atm_cmd.h); the next command
    # still gets its own answer.
    a.send("")
    a.send("   \t ")
    a.pending -= 2
    check(parse_balance(a.cmd("balance acct"), "acct") == 1000, "a bad line changed acct")

    # Strangers on every ATM's Raft port.
    watch = Watch()
    ctx.cleanups.append(watch.close)
    held = []
    for atm in c:
        held.append((strangers(watch, c.addrs[atm.id], c.secret, atm.log_path), atm.log_path))
    for h, log in held:
        strangers_done(watch, h, log)
    for i, atm in enumerate(c):
        check(atm.running(), "%r exited" % atm)
        check(atm.cmd("deposit acct 1").startswith("ok acct "), "%r: deposit failed" % atm)
    c.assert_agree({"acct": 1300})
    check(c[2].balance("acct") == 1300, "balance %s" % money(1300))


if __name__ == "__main__":
    run_suite("bad_input", [
        test_cluster_bad_input,
        test_raft_port_replay,
        test_atm_bad_lines,
    ], binary="manager", ports=(25000, 25999))

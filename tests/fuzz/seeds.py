#!/usr/bin/env python3
"""Writes the hand-made seeds of tests/fuzz/corpus/ (run from the repository
root: python3 tests/fuzz/seeds.py). Each seed is a well-formed input of its
harness, or a near miss, so that fuzzing starts past the first checks.
Files are named seed-*; inputs found by fuzzing (make fuzz-merge) sit
beside them under their hashes."""
import hashlib
import hmac
import json
import os
import struct
import sys

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)),
                                "..", "integration"))
import rqkeys  # noqa: E402

ROOT = "tests/fuzz/corpus"


def put(harness, name, data):
    d = os.path.join(ROOT, harness)
    os.makedirs(d, exist_ok=True)
    if isinstance(data, str):
        data = data.encode()
    with open(os.path.join(d, "seed-" + name), "wb") as f:
        f.write(data)


def u8(v): return struct.pack("<B", v)
def u16(v): return struct.pack("<H", v)
def u32(v): return struct.pack("<I", v)
def u64(v): return struct.pack("<Q", v)
def i32(v): return struct.pack("<i", v)
def s(b): return u32(len(b)) + b


# Preamble: a challenge then a preamble answering it under the harness's
# key (tests/integration/rqkeys.py derives it as rq_keys does), and field
# variants; the fields of a preamble to encode follow.
key = rqkeys.derive(b"fuzz-secret-0123456789abcdef-0123456789", rqkeys.RAFT)
NONCE = bytes(range(0x40, 0x60))


def challenge(nonce=NONCE, magic=0x48435152, version=2, flags=0):
    return u32(magic) + u16(version) + u16(flags) + nonce


def preamble(kind=1, version=2, addr=b"127.0.0.1:7000", magic=0x584D5152,
             nonce=NONCE):
    body = (u32(magic) + u16(version) + u16(kind) + u64(1) + u64(2) + u64(3)
            + nonce + addr.ljust(64, b"\0"))
    return body + hmac.new(key, body, hashlib.sha256).digest()


FIELDS = u16(2) + u16(1) + u64(1) + u64(2) + u64(3) + b"[::1]:9\0"
put("preamble", "raft", challenge() + preamble() + FIELDS)
put("preamble", "rpc", challenge() + preamble(kind=2, addr=b"[::1]:9"))
put("preamble", "replayed", challenge() + preamble(nonce=b"\x01" * 32))
put("preamble", "bad-kind", challenge() + preamble(kind=9))
put("preamble", "bad-version", challenge() + preamble(version=1))
put("preamble", "bad-challenge", challenge(version=1) + preamble())
put("preamble", "challenge-flags", challenge(flags=1) + preamble())

# Wire: a little program of reads.
put("wire", "ops", bytes([8, 0, 1, 2, 1, 4, 0, 0, 0, 0, 3, 0, 0, 0, 1, 2, 3,
                         4, 0, 0, 0, 0xAA, 6, 2, 0, 0, 0, 5, 5]))

# Entry: an empty and a padded frame.
put("entry", "empty", u32(0) + u32(1))
put("entry", "padded", u32(3) + u32(1) + b"abc" + b"\0" * 5)

# Config: one per parser.
put("config", "u64", b"\x00" + b"18446744073709551615")
put("config", "addr", b"\x01" + b"[::1]:7000")
put("config", "addr-name", b"\x01" + b"broker-1.example:80")
put("config", "peers", b"\x02" + b"1=127.0.0.1:7001,2=127.0.0.1:7002")
put("config", "argv", b"\x03--name\x00x\x00--count=5\x00--flag\x00"
    b"--raft-addr\x00h:1")
put("config", "help", b"\x03-h")
put("config", "secret", b"\x03--name\x00x\x00--secret\x00"
    b"0123456789abcdef0123456789abcdef\x00--secret=again")

# Records: count (u16) then the blob.


def record(ts, key, value):
    k = i32(-1) if key is None else i32(len(key))
    return u64(ts) + k + u32(len(value)) + (key or b"") + value


put("records", "two", u16(2) + record(1, b"k", b"v") + record(2, None, b""))
put("records", "none", u16(0))

# Produce bodies: binary (pick 0) and JSON (pick 1); pick 2/3 small limits.


def pbody(recs):
    out = u32(len(recs))
    for k, v in recs:
        out += (i32(-1) if k is None else i32(len(k))) + u32(len(v))
        out += (k or b"") + v
    return out


put("produce_body", "binary", b"\x00" + pbody([(b"k", b"hello"),
                                               (None, "é".encode())]))
put("produce_body", "binary-small", b"\x02" + pbody([(b"k", b"123456789")]))
put("produce_body", "json", b"\x01" + json.dumps(
    {"records": [{"value": "a", "key": "k"}, {"value": "b", "key": None}]}
).encode())
put("produce_body", "json-type", b"\x05application/vnd.raftq.records; x=y")

# Partition: an entry (pick 0) and a manifest (pick 1).
blob = record(9, None, b"v") + record(9, b"k", b"w")
entry = u8(1) + b"\0\0\0" + u32(2) + u64(9) + u64(5) + u64(1) + blob
put("partition", "entry", b"\x00" + entry)
put("partition", "entry-noproducer",
    b"\x00" + u8(1) + b"\0\0\0" + u32(2) + u64(9) + u64(0) + u64(0) + blob)
merged = u8(2) + b"\0\0\0" + u32(3) + u32(len(entry)) + entry + u32(len(entry)) + entry \
    + u32(len(entry)) + entry[:4] + u32(2) + entry[8:16] + u64(0) + entry[24:]
put("partition", "merged", b"\x00" + merged)
manifest = (u32(1) + u32(0) + u64(0) + u64(10) + u64(7) + u64(3) + u32(2)
            + u64(5) + u64(2) + u64(4) + u32(1) + u64(1)
            + u64(9) + u64(1) + u64(0) + u32(3) + u64(3))
put("partition", "manifest", b"\x01" + manifest)
put("partition", "manifest-gap", b"\x01" + u32(1) + u32(0) + u64(50) +
    u64(60) + u64(7) + u64(0) + u32(0))

# Plog: a segment of two batches (flag 1 recomputes the crcs).


def batch(base, raft_index, recs):
    body = b"".join(record(5, k, v) for k, v in recs)
    rest = u32(len(recs)) + u64(base) + u64(raft_index) + u64(5) + body
    return u32(0x31425152) + u32(4 + len(rest)) + u32(0) + rest


seg = batch(0, 1, [(b"a", b"1"), (None, b"2")]) + batch(2, 2, [(b"b", b"3")])
put("plog", "segment", b"\x01" + seg)
put("plog", "segment-sealed", b"\x05" + seg)
put("plog", "segment-base", b"\x03" + batch(1000, 4, [(None, b"x")]))
put("plog", "fetched", b"\x09" + seg)
put("plog", "torn", b"\x01" + seg[:-3])

# Replica descriptors.
members = [{"id": i, "raft_addr": "127.0.0.1:%d" % (7000 + i),
            "http_addr": "127.0.0.1:%d" % (8000 + i)} for i in (1, 2, 3)]
put("replica_desc", "full", json.dumps({
    "topic": "orders", "partition_id": 0, "group_id": 100,
    "members": members, "bootstrap": True, "preferred_leader": 2}))
put("replica_desc", "brief", json.dumps({
    "topic": "a.b-c_d", "partition_id": 3, "group_id": 7,
    "members": members[:1]}))
put("replica_desc", "member", json.dumps(members[0]))

# Broker RPC bodies.
put("brpc", "fetch", b"\x00" + u64(100) + u64(5) + u32(4 << 20) + u32(0))
put("brpc", "members", b"\x01" + u64(100))
put("brpc", "members-reply", b"\x02" + json.dumps({
    "conf_index": 12, "servers": [dict(m, voter=True) for m in members]
    + [{"id": 7, "raft_addr": "h:1", "http_addr": None, "voter": False}]
}).encode())

# RPC frames: a call and a reply back to back.


def frame(t, cid, method, status, body):
    return u32(20 + len(body)) + u8(t) + b"\0\0\0" + u64(cid) + u32(method) \
        + u32(status) + body


put("rpc_frame", "call-reply", frame(1, 1, 1, 0, u64(100) + u64(0) + u32(0)
                                     + u32(0)) + frame(2, 1, 0, 0, b""))
put("rpc_frame", "partial", frame(1, 2, 2, 0, b"abc")[:-1])

# Manager commands (layout in manager/mcmd.c).


def cmd(t, fields):
    return u8(1) + u8(t) + u64(1700000000000) + fields


put("mcmd", "manager-addr", cmd(1, u32(1) + s(b"127.0.0.1:7001")
                                + s(b"127.0.0.1:8001")))
put("mcmd", "broker-register", cmd(2, u32(4) + s(b"h:1") + s(b"h:2")))
put("mcmd", "broker-state", cmd(3, u32(4) + u8(3)))
put("mcmd", "topic-create", cmd(4, s(b"orders") + u32(2) + u64(0) + u64(0)
                                + u32(1) + u32(2) + u32(3)
                                + u32(2) + u32(3) + u32(1)))
put("mcmd", "topic-delete", cmd(5, s(b"orders")))
put("mcmd", "producer-register", cmd(6, s(b"orders") + u32(0xFFFFFFFF)))
put("mcmd", "consumer-register", cmd(7, s(b"orders") + u32(1)))
put("mcmd", "offset-commit", cmd(8, u64(3) + u32(1) + u32(2)
                                 + u32(0) + u64(10) + u64(2**64 - 1)
                                 + u32(1) + u64(4) + u64(3)))
put("mcmd", "partition-replicas", cmd(9, s(b"orders") + u32(1) + u64(2)
                                      + u32(1) + u32(2) + u32(4)))

# Batch entries (layout in manager/mbatch.h): commands of the seeds above.


def batch(cmds, nonce=7):
    return (u8(1) + u8(12) + u64(1700000000000) + u64(nonce) + u32(len(cmds))
            + b"".join(s(c) for c in cmds))


put("mbatch", "two", batch([cmd(7, s(b"orders") + u32(1)),
                            cmd(5, s(b"orders"))]))
put("mbatch", "offset-commits", batch([cmd(8, u64(k) + u32(0) + u32(1) + u32(0)
                                           + u64(10 + k) + u64(2**64 - 1))
                                       for k in range(1, 4)]))
put("mbatch", "inner-junk", batch([b"\x01\x63junk", cmd(5, s(b"x"))]))
put("mbatch", "nested", batch([batch([cmd(5, s(b"x"))])]))

# ATM lines.
for name, line in (("deposit", "deposit alice 12.50"),
                   ("withdraw", "  withdraw bob 3\n"),
                   ("transfer", "transfer alice bob 0.01"),
                   ("balance", "balance alice"),
                   ("status", "status"), ("help", "help"), ("quit", "quit"),
                   ("big", "deposit a 92233720368547758.07"),
                   ("decimals", "deposit a 1.234")):
    put("atm_cmd", name, line)

# ATM ledger: a write (pick 0), a result (1), a snapshot (2).


def write(origin, seq, op, amount, account, to=b""):
    return u64(origin) + u64(seq) + u8(op) + u64(amount) + s(account) + s(to)


put("atm_ledger", "deposit", b"\x00" + write(1, 1, 1, 500, b"alice"))
put("atm_ledger", "transfer", b"\x00" + write(2, 1, 3, 5, b"alice", b"bob"))
put("atm_ledger", "result", b"\x01" + u32(0) + u64(10) + u64(0))
put("atm_ledger", "snapshot", b"\x02" + u32(1) + u64(2) + u32(2)
    + s(b"alice") + u64(495) + s(b"bob") + u64(5) + u32(1)
    + u64(2) + u64(1) + u64(2) + u32(0) + u64(495) + u64(5))

# Manager HTTP handlers: route | flags | 8 choices | query NUL param1 NUL
# param2 NUL content-type NUL broker-answer NUL | body. Routes are indexed
# as in fuzz_manager_http.c; choice 2 applies a proposal, 0 refuses it.
ROUTES = ["create", "list", "partitions", "preg", "creg", "produce",
          "consume", "size", "batch", "read", "commit", "offsets",
          "brokers", "drain", "remove", "describe", "delete",
          "leader", "register", "heartbeat"]


def http(route, body=b"", query=b"", p1=b"", p2=b"", ctype=b"",
         answer=b"", flags=0, choices=b"\x02\x02\x02\x02\x02\x02\x02\x02"):
    if isinstance(body, (dict, list)):
        body = json.dumps(body).encode()
    return (bytes([ROUTES.index(route), flags]) + choices + query + b"\0"
            + p1 + b"\0" + p2 + b"\0" + ctype + b"\0" + answer + b"\0"
            + body)


ok_read = json.dumps({"status": "success", "records": [
    {"offset": 0, "key": "k", "value": "v"}], "high_watermark": 1,
    "leader": True}).encode()
ok_produce = json.dumps({"status": "success", "base_offset": 0,
                         "count": 1}).encode()
for name, data in (
        ("create", http("create", {"topic_name": "new",
                                   "number_of_partitions": 2})),
        ("create-query", http("create", query=b"name=x&number_of_partitions=a")),
        ("create-exists", http("create", {"topic_name": "t"})),
        ("list", http("list")),
        ("partitions", http("partitions", query=b"topic=t")),
        ("producer-register", http("preg", {"topic": "t"})),
        ("consumer-register", http("creg", {"topic": "t", "partition_id": 1})),
        ("produce", http("produce", {"topic": "t", "producer_id": 1, "message": "hi",
                                     "key": "k"}, answer=ok_produce,
                         choices=b"\x06" * 8)),
        ("produce-query", http("produce", query=b"topic=t&producer_id=1&message=a+b%21",
                               answer=ok_produce, choices=b"\x06" * 8)),
        ("consume", http("consume", query=b"topic=t&consumer_id=1&wait_ms=0",
                         answer=ok_read, choices=b"\x06\x02\x06\x02" * 2)),
        ("size", http("size", query=b"topic=t&consumer_id=1",
                      answer=b'{"high_watermark":5}', choices=b"\x06" * 8)),
        ("batch", http("batch", {"records": [{"value": "a", "key": "k",
                                              "partition_id": 0}],
                                 "producer_id": 1, "sequence": 0},
                       p1=b"t", answer=ok_produce, choices=b"\x06" * 8)),
        ("read", http("read", query=b"offset=0&max=10&wait_ms=0", p1=b"t",
                      p2=b"1", answer=ok_read, choices=b"\x06" * 8)),
        ("commit", http("commit", {"offsets": [{"topic": "t",
                                                "partition_id": 0,
                                                "offset": 3}]}, p1=b"1")),
        ("offsets", http("offsets", p1=b"1", choices=b"\x06" * 8,
                         answer=b'{"high_watermark":5}')),
        ("brokers", http("brokers")),
        ("drain", http("drain", p1=b"3")),
        ("remove", http("remove", p1=b"4")),
        ("describe", http("describe", p1=b"t")),
        ("delete", http("delete", p1=b"t")),
        ("leader", http("leader", {"broker_id": 2}, p1=b"t", p2=b"0",
                        answer=b'{"leader_id":2}', choices=b"\x06" * 8)),
        ("register", http("register", {"id": 5, "raft_addr": "b5:1",
                                       "http_addr": "b5:2"})),
        ("heartbeat", http("heartbeat", {"replicas": [
            {"group_id": 1, "leader_id": 1, "term": 2, "commit": 3,
             "high_watermark": 4, "state": "ready"}]}, p1=b"1")),
        ("forwarded", http("create", {"topic_name": "x"}, flags=1 | 16)),
        ("no-leader", http("consume", query=b"topic=t&consumer_id=1",
                           flags=32)),
):
    put("manager_http", name, data)

put("manager_http", "unsigned-register",
    http("register", {"id": 5, "raft_addr": "b5:1", "http_addr": "b5:2"}, flags=2))

# Sig: header value, method, path, query (each NUL-terminated), ts:u64,
# nonce (16 bytes), body; keys as fuzz_sig.c derives them.
import sys  # noqa: E402
sys.path.insert(0, "tests/integration")
import rqkeys  # noqa: E402
import rqsign  # noqa: E402

SIG_SECRET = "fuzz-secret-0123456789abcdef-01234567"
SIG_TS = 1700000000123
SIG_NONCE = bytes(range(16))


def sig(value, method=b"POST", path=b"/v1/topics/t/partitions/0/records",
        query=b"producer_id=1&sequence=0", ts=SIG_TS, body=b'{"records":[]}'):
    if isinstance(value, str):
        value = value.encode()
    return (value + b"\0" + method + b"\0" + path + b"\0" + query + b"\0"
            + u64(ts) + SIG_NONCE + body)


valid = rqsign.sign("POST", "/v1/topics/t/partitions/0/records?producer_id=1&sequence=0",
                    b'{"records":[]}', secret=SIG_SECRET, label=rqkeys.HTTP_M2B,
                    sender="manager-1", ts=SIG_TS, nonce=SIG_NONCE)
put("sig", "valid", sig(valid))
put("sig", "other-sender", sig(valid.replace("manager-1", "manager-2")))
put("sig", "version", sig("v2 " + valid[3:]))
put("sig", "upper-hex", sig(valid.upper().replace("V1 SENDER=", "v1 sender=")))
put("sig", "sign-me", sig("manager-2", method=b"GET", path=b"/internal/replicas", query=b"",
                          body=b""))
put("sig", "secret", sig("itest-secret-0123456789abcdef-0123456789abcdef"))

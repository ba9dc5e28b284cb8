"""Signatures of internal HTTP requests (shared/rq_sig.h), for tests and tools
that call brokers or the managers' /internal routes:

    X-Raftq-Auth: v1 sender=S ts=MS nonce=HEX32 sig=HEX64

sig = HMAC-SHA256(key, "raftq-http-v1\\n" METHOD "\\n" PATH "\\n" QUERY "\\n"
hex(SHA-256(body)) "\\n" SENDER "\\n" TS "\\n" NONCE), PATH and QUERY as sent
on the wire. The key is one of rqkeys' HTTP keys, by direction.

Standard library only, like every integration test.
"""

import functools
import hashlib
import hmac
import os
import re
import sys
import time

import rqkeys

HEADER = "X-Raftq-Auth"

# Who tests pretend to be, per direction of the key they sign with.
SENDERS = {
    rqkeys.HTTP_M2B: "manager-test",
    rqkeys.HTTP_M2M: "manager-test",
    rqkeys.HTTP_B2M: "broker-test",
}


@functools.lru_cache(maxsize=16)
def _key(secret, label):
    return rqkeys.derive(secret, label)


def canonical(method, target, body, sender, ts, nonce_hex):
    """The string the MAC covers; @target is "/path" or "/path?query"."""
    path, _, query = target.partition("?")
    if isinstance(body, str):
        body = body.encode()
    digest = hashlib.sha256(body or b"").hexdigest()
    return "\n".join(["raftq-http-v1", method, path, query, digest, sender,
                      str(ts), nonce_hex]).encode()


def sign(method, target, body=b"", secret=rqkeys.TEST_SECRET,
         label=rqkeys.HTTP_M2B, sender=None, ts=None, nonce=None):
    """The X-Raftq-Auth value for one request. @ts in Unix ms (default now),
    @nonce 16 bytes (default random)."""
    sender = sender or SENDERS[label]
    ts = int(time.time() * 1000) if ts is None else int(ts)
    nonce_hex = (nonce if nonce is not None else os.urandom(16)).hex()
    key = _key(secret, label)
    mac = hmac.new(key, canonical(method, target, body, sender, ts, nonce_hex),
                   hashlib.sha256).hexdigest()
    return "v1 sender=%s ts=%d nonce=%s sig=%s" % (sender, ts, nonce_hex, mac)


def headers(method, target, body=b"", **kw):
    """{"X-Raftq-Auth": ...} for one request (see sign())."""
    return {HEADER: sign(method, target, body, **kw)}


HEADER_RE = re.compile(r"^v1 sender=([A-Za-z0-9._-]{1,64}) ts=(0|[1-9][0-9]{0,14}) "
                       r"nonce=([0-9a-f]{32}) sig=([0-9a-f]{64})$")


def verify(value, method, target, body=b"", secret=rqkeys.TEST_SECRET,
           label=rqkeys.HTTP_B2M, skew_ms=30000):
    """Why the X-Raftq-Auth @value does not sign the request (a word of
    shared/rq_sig.h: "missing", "malformed", "expired", "bad_signature"),
    or None when it does. No replay cache: a test server that needs one
    keeps the nonces itself."""
    if value is None:
        return "missing"
    m = HEADER_RE.match(value)
    if m is None:
        return "malformed"
    sender, ts, nonce_hex, mac = m.group(1), int(m.group(2)), m.group(3), m.group(4)
    if abs(ts - int(time.time() * 1000)) > skew_ms:
        return "expired"
    key = _key(secret, label)
    want = hmac.new(key, canonical(method, target, body, sender, ts, nonce_hex),
                    hashlib.sha256).hexdigest()
    return None if hmac.compare_digest(want, mac) else "bad_signature"


def main(argv):
    """python3 rqsign.py [--key m2b|b2m|m2m] METHOD TARGET [BODY]: prints the
    X-Raftq-Auth value for one request, keyed by $RAFTQ_CLUSTER_SECRET (for
    calling a broker by hand with curl; README.md). Without arguments, the
    value tests/unit/test_sig.c expects, as a cross-check."""
    if not argv:
        print(sign("POST", "/v1/topics/t/partitions/0/records?x=%20y", b'{"a":1}',
                   secret="0123456789abcdef0123456789abcdef", label=rqkeys.HTTP_M2B,
                   sender="manager-1", ts=1700000000123, nonce=bytes(range(16))))
        return 0
    labels = {"m2b": rqkeys.HTTP_M2B, "b2m": rqkeys.HTTP_B2M, "m2m": rqkeys.HTTP_M2M}
    label = rqkeys.HTTP_M2B
    if argv[0] == "--key" and len(argv) > 1 and argv[1] in labels:
        label = labels[argv[1]]
        argv = argv[2:]
    secret = os.environ.get("RAFTQ_CLUSTER_SECRET")
    if len(argv) not in (2, 3) or not secret:
        print(main.__doc__, file=sys.stderr)
        return 2
    print(sign(argv[0], argv[1], argv[2] if len(argv) == 3 else b"", secret=secret,
               label=label))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))

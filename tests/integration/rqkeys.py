"""The keys raftq derives from a cluster secret (shared/rq_keys.h), for tests
that speak the internal protocols themselves: HKDF-SHA256 (RFC 5869) with
salt "raftq-cluster-secret-v2" and info "raftq/" + label, 32 bytes.

Standard library only, like every integration test.
"""

import hashlib
import hmac

SALT = b"raftq-cluster-secret-v2"

# The labels of shared/rq_keys.h, one per use.
RAFT = "raft"
HTTP_M2M = "http/manager-manager"
HTTP_M2B = "http/manager-broker"
HTTP_B2M = "http/broker-manager"

# A secret good enough for tests: 32 bytes or more, not a placeholder.
TEST_SECRET = "itest-secret-0123456789abcdef-0123456789abcdef"


def derive(secret, label):
    """The 32-byte key for @label (one of the constants above)."""
    if isinstance(secret, str):
        secret = secret.encode()
    prk = hmac.new(SALT, secret, hashlib.sha256).digest()
    return hmac.new(prk, b"raftq/" + label.encode() + b"\x01", hashlib.sha256).digest()


if __name__ == "__main__":
    # The value tests/unit/test_keys.c expects, as a cross-check.
    assert derive("0123456789abcdef0123456789abcdef", RAFT).hex() == (
        "59d8bec14c2aafd784f9e07d919d07a9d0475382b0236060a9680238af2717fe")
    print("rqkeys: ok")

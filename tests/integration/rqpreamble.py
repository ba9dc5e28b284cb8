"""The challenge-response that opens every connection to a Raft port
(shared/rq_preamble.h), for tests that knock on it themselves: the
listener sends a 40-byte challenge with a fresh nonce; the connector
answers with a 160-byte preamble whose HMAC-SHA256, keyed by the
cluster secret's Raft key (rqkeys.RAFT), covers the nonce and every field.

Standard library only, like every integration test.
"""

import hashlib
import hmac
import socket
import struct

import rqkeys

CHALLENGE_MAGIC = 0x48435152  # "RQCH" read as little-endian u32
PREAMBLE_MAGIC = 0x584D5152  # "RQMX"
VERSION = 2
CHALLENGE_SIZE = 40
PREAMBLE_SIZE = 160
RAFT = 1  # Stream kinds.
RPC = 2


class BadChallenge(Exception):
    pass


def parse_challenge(data):
    """The nonce of a challenge; BadChallenge if @data is not one."""
    if len(data) != CHALLENGE_SIZE:
        raise BadChallenge("%d bytes, not %d" % (len(data), CHALLENGE_SIZE))
    magic, version, flags = struct.unpack("<IHH", data[:8])
    if (magic, version, flags) != (CHALLENGE_MAGIC, VERSION, 0):
        raise BadChallenge("header %r" % data[:8])
    return data[8:]


def is_challenge_prefix(data):
    """Whether @data could be the start of a challenge: what a stranger may
    see of the Raft port before it hangs up (a reset can cut it short)."""
    head = struct.pack("<IHH", CHALLENGE_MAGIC, VERSION, 0)
    return len(data) <= CHALLENGE_SIZE and data[:8] == head[:len(data)]


def read_challenge(sock, timeout=5.0):
    """Reads exactly one challenge off @sock and returns its nonce."""
    sock.settimeout(timeout)
    data = b""
    while len(data) < CHALLENGE_SIZE:
        chunk = sock.recv(CHALLENGE_SIZE - len(data))
        if not chunk:
            raise BadChallenge("closed after %d bytes of the challenge" % len(data))
        data += chunk
    return parse_challenge(data)


def preamble(secret, nonce, kind=RAFT, group=1, cluster=1, sender=4242,
             address="203.0.113.9:1", version=VERSION):
    """A preamble answering @nonce, with a MAC keyed by @secret's Raft key."""
    body = struct.pack("<IHHQQQ", PREAMBLE_MAGIC, version, kind, cluster, group, sender)
    body += nonce + address.encode().ljust(64, b"\0")
    key = rqkeys.derive(secret, rqkeys.RAFT)
    return body + hmac.new(key, body, hashlib.sha256).digest()


def handshake(addr, secret, **fields):
    """Connects to the Raft port at @addr ("host:port"), reads its
    challenge and answers it. Returns (socket, the preamble bytes sent)."""
    host, port = addr.rsplit(":", 1)
    s = socket.create_connection((host, int(port)), timeout=5)
    try:
        sent = preamble(secret, read_challenge(s), **fields)
        s.sendall(sent)
    except BaseException:
        s.close()
        raise
    return s, sent

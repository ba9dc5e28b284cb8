"""One member of a consumer group as a process of its own, for the tests
that stop and kill members (test_groups.py) and the chaos workload.

    group_member.py --managers HOST:PORT,... --group G --topic T
                    --out FILE [--session-ms N] [--max N]

It joins, then loops: fetch (a long poll), write each record it got to
FILE as "R <batch> <partition> <offset> <value>" (flushed: this is the
processing), commit the offsets after them, and write the commit's
outcome as "C <batch> ok|fenced|failed". A 409 means its membership is
gone (fenced or expired): it writes "J" and joins again. Requests go to
the managers in turn, the next one on a failure. SIGTERM makes it leave
the group and exit 0.
"""

import argparse
import http.client
import json
import signal
import sys
import time

stopping = False


def on_term(signum, frame):
    global stopping
    stopping = True


class Managers:
    def __init__(self, addrs):
        self.addrs = addrs
        self.i = 0

    def call(self, method, path, body=None, timeout=15.0):
        """(status, JSON or None); status 0 when no manager answered."""
        addr = self.addrs[self.i % len(self.addrs)]
        host, port = addr.rsplit(":", 1)
        conn = http.client.HTTPConnection(host, int(port), timeout=timeout)
        try:
            data = json.dumps(body).encode() if body is not None else None
            hdr = {"Content-Type": "application/json"} if data else {}
            conn.request(method, path, body=data, headers=hdr)
            resp = conn.getresponse()
            text = resp.read()
            try:
                obj = json.loads(text.decode())
            except ValueError:
                obj = None
            if resp.status >= 500:
                self.i += 1
            return resp.status, obj
        except (OSError, http.client.HTTPException):
            self.i += 1
            return 0, None
        finally:
            conn.close()


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--managers", required=True)
    ap.add_argument("--group", required=True)
    ap.add_argument("--topic", required=True)
    ap.add_argument("--out", required=True)
    ap.add_argument("--session-ms", type=int, default=3000)
    ap.add_argument("--max", type=int, default=200)
    a = ap.parse_args()
    signal.signal(signal.SIGTERM, on_term)
    m = Managers(a.managers.split(","))
    base = "/v1/groups/%s" % a.group
    out = open(a.out, "a", buffering=1)
    member = None
    batch = 0
    while not stopping:
        if member is None:
            st, obj = m.call("POST", base + "/join",
                             {"topic": a.topic, "session_timeout_ms": a.session_ms})
            if st != 200:
                time.sleep(0.1)
                continue
            member = obj["member_id"]
            out.write("J %s %d %s\n" % (member, obj["generation"],
                                        ",".join(map(str, obj["partitions"]))))
            continue
        st, obj = m.call("GET", base + "/records?member_id=%s&max=%d&wait_ms=500"
                         % (member, a.max))
        if st == 409:
            out.write("X %s fetch\n" % member)
            member = None
            continue
        if st != 200:
            time.sleep(0.05)
            continue
        recs = obj["records"]
        if not recs:
            continue
        batch += 1
        upto = {}
        for r in recs:
            out.write("R %d %d %d %s\n" % (batch, r["partition_id"], r["offset"], r["value"]))
            upto[r["partition_id"]] = r["offset"] + 1
        offsets = [{"partition_id": p, "offset": o} for p, o in sorted(upto.items())]
        while True:
            st, obj2 = m.call("POST", base + "/commit",
                              {"member_id": member, "generation": obj["generation"],
                               "offsets": offsets})
            if st == 200:
                out.write("C %d ok\n" % batch)
                break
            if st == 409:
                out.write("C %d fenced\n" % batch)
                member = None
                break
            if stopping or st not in (0, 503):
                out.write("C %d failed %d\n" % (batch, st))
                break
            time.sleep(0.05)
    if member is not None:
        m.call("POST", base + "/leave", {"member_id": member}, timeout=5)
    out.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())

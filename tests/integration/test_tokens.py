"""Integration tests of public API tokens and the admin token rule.

Real managers (started with --auth tokens) and brokers. The token matrix:
no token, an unknown token, a produce-only token on another topic, a
consume-only token producing, prefix grants (orders.* covers orders and
orders.eu, never ordersx), stored admin tokens and the cluster's admin
token, on the leader and on both followers, each answer's status and
message; refusals (401, 403) and invalid requests (400) answered by the
manager reached, never forwarded; a token revoked through one manager
refused by every manager; the token itself never written to a data
directory. Then the start-up rule (no --admin-token: refused, naming the
flag; --admin-open: open, with a warning) and `raftq token
create|list|revoke` and `raftq bench` with and without a token. Needs
no root. Run:
python3 tests/integration/test_tokens.py [--build DIR] [-k NAME].
"""

import http.client
import json
import os
import re
import shutil
import subprocess
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from harness import check, run_suite, wait_until  # noqa: E402
from test_manager import ADMIN_TOKEN, Cluster, call, check_failure, check_ok  # noqa: E402
import rqkeys  # noqa: E402

TOKEN_RE = re.compile(r"^rqt_[A-Za-z0-9_-]{43}$")
UNKNOWN = "rqt_" + "A" * 43


def bearer(token):
    return {"Authorization": "Bearer " + token} if token else {}


def forwarded(c, i):
    """The requests manager @i forwarded to the leader, other than to
    /internal routes (the brokers' heartbeats, which go on meanwhile):
    raftq_manager_forwarded_total less raftq_manager_forwarded_internal_total."""
    host, port = c.m_http[i].rsplit(":", 1)
    conn = http.client.HTTPConnection(host, int(port), timeout=5)
    try:
        conn.request("GET", "/metrics")
        text = conn.getresponse().read().decode()
    finally:
        conn.close()
    m = re.search(r"^raftq_manager_forwarded_total (\d+)", text, re.M)
    check(m is not None, "no raftq_manager_forwarded_total in manager%d's metrics" % i)
    internal = re.search(r"^raftq_manager_forwarded_internal_total (\d+)", text, re.M)
    check(internal is not None,
          "no raftq_manager_forwarded_internal_total in manager%d's metrics" % i)
    return int(m.group(1)) - int(internal.group(1))


def create_token(c, i, name, grants):
    st, obj = c.call(i, "POST", "/admin/tokens", {"name": name, "grants": grants})
    check_ok(st, obj, "create token %s at manager%d" % (name, i))
    check(TOKEN_RE.match(obj.get("token", "")), "token %r" % obj.get("token"))
    check(obj["name"] == name and obj["grants"] == grants and obj["id"] >= 1
          and obj["created_ms"] > 0, "create answer %r" % obj)
    return obj["token"], obj["id"]


def expect(c, i, method, path, token, status, says=None, body=None, query=None):
    st, obj = c.call(i, method, path, body, query=query, headers=bearer(token))
    what = "%s %s with %s at manager%d" % (method, path, token and token[:8], i)
    if status == 200:
        return check_ok(st, obj, what)
    check_failure(st, obj, status, what)
    if says is not None:
        check(says in obj["message"], "%s: message %r does not say %r" % (what, obj["message"], says))
    return obj


def test_token_matrix(ctx):
    c = Cluster(ctx, n_brokers=3, manager_args=["--auth", "tokens"]).start()
    lead = c.wait_leader()
    followers = [i for i in c.managers if i != lead]
    f1 = followers[0]

    # Tokens are made through a follower (forwarded; the leader draws them).
    prod, prod_id = create_token(c, f1, "billing", ["produce:orders.*"])
    cons, _ = create_token(c, followers[1], "reader", ["consume:orders.*"])
    adm, _ = create_token(c, lead, "ops", ["admin"])
    both, _ = create_token(c, f1, "audit-svc", ["produce:audit", "consume:audit"])
    check(len({prod, cons, adm, both}) == 4, "tokens repeat")
    st, obj = c.call(f1, "POST", "/admin/tokens", {"name": "x", "grants": ["produce:orders*"]})
    check_failure(st, obj, 400, "a bad grant")
    check("'*' may only end a prefix" in obj["message"], "bad grant message %r" % obj["message"])
    check_failure(*c.call(f1, "POST", "/admin/tokens", {"name": "x", "grants": []}), 400,
                  "no grants")
    check_failure(*c.call(f1, "POST", "/admin/tokens", {"name": "a b", "grants": ["admin"]}),
                  400, "a bad name")
    check_failure(*c.call(f1, "POST", "/admin/tokens", {"name": "x", "grants": ["admin"]},
                          headers=bearer(prod)), 403, "a produce token making tokens")

    # The list shows what each may do, never a token or a hash.
    st, obj = c.call(followers[1], "GET", "/admin/tokens")
    check_ok(st, obj, "token list")
    names = {t["name"]: t for t in obj["tokens"]}
    check(set(names) == {"billing", "reader", "ops", "audit-svc"}, "tokens %r" % obj)
    check(names["audit-svc"]["grants"] == ["produce:audit", "consume:audit"], "grants %r" % obj)
    check(all(set(t) == {"id", "name", "grants", "created_ms"} for t in obj["tokens"]),
          "token list fields %r" % obj)
    text = json.dumps(obj)
    check(not any(t in text for t in (prod, cons, adm, both)), "a token in the list")

    # Topics: a produce grant on orders.* creates orders.eu and orders
    # (the prefix covers its own name), never ordersx; payments by admin.
    expect(c, f1, "POST", "/topics", prod, 200, body={"topic_name": "orders.eu"})
    expect(c, lead, "POST", "/topics", prod, 200, body={"topic_name": "orders"})
    expect(c, f1, "POST", "/topics", prod, 403,
           "this token may not produce to topic 'ordersx'; it needs the grant produce:ordersx "
           "or produce:ordersx.*", body={"topic_name": "ordersx"})
    expect(c, lead, "POST", "/topics", ADMIN_TOKEN, 200, body={"topic_name": "payments"})
    expect(c, f1, "POST", "/topics", cons, 403, "may not produce to topic 'audit'",
           body={"topic_name": "audit"})
    expect(c, f1, "POST", "/topics", both, 200, body={"topic_name": "audit"})

    for i in c.managers:
        # No token, an unknown one, a malformed header: 401, on any manager.
        for tok, says in ((None, "Authorization: Bearer"), (UNKNOWN, "revoked"),
                          ("not-a-token", "unknown")):
            obj = expect(c, i, "POST", "/producer/register", tok, 401, says,
                         body={"topic": "orders.eu"})
        st, _, hdr = call(c.m_http[i], "GET", "/topics")
        hdr = {k.lower(): v for k, v in hdr.items()}
        check(st == 401 and hdr.get("www-authenticate") == "Bearer",
              "GET /topics without a token at manager%d: %d %r" % (i, st, hdr))
        check_failure(*c.call(i, "GET", "/topics", headers={"Authorization": "Basic " + prod}),
                      401, "a Basic header")

        # Producing: the produce token on its topics; elsewhere 403.
        pid = expect(c, i, "POST", "/producer/register", prod, 200,
                     body={"topic": "orders.eu"})["producer_id"]
        expect(c, i, "POST", "/producer/produce", prod, 200,
               body={"topic": "orders.eu", "producer_id": pid, "message": "m%d" % i})
        expect(c, i, "POST", "/producer/produce", prod, 403,
               "this token may not produce to topic 'payments'; it needs the grant "
               "produce:payments or produce:payments.*",
               body={"topic": "payments", "producer_id": pid, "message": "x"})
        expect(c, i, "POST", "/producer/register", prod, 403,
               "may not produce to topic 'audit'", body={"topic": "audit"})
        expect(c, i, "POST", "/v1/topics/orders.eu/records", prod, 200,
               body={"records": [{"value": "b%d" % i}]})
        expect(c, i, "POST", "/v1/topics/ordersx/records", prod, 403,
               "produce:ordersx or produce:ordersx.*", body={"records": [{"value": "v"}]})
        # The consume-only token producing: 403 naming the grant.
        expect(c, i, "POST", "/producer/produce", cons, 403,
               "this token may not produce to topic 'orders.eu'; it needs the grant "
               "produce:orders.eu or produce:orders.*",
               body={"topic": "orders.eu", "producer_id": pid, "message": "x"})
        expect(c, i, "POST", "/v1/topics/orders.eu/records", cons, 403,
               "may not produce to topic 'orders.eu'", body={"records": [{"value": "v"}]})
        expect(c, i, "POST", "/producer/register", cons, 403, "may not produce",
               body={"topic": "orders.eu"})

        # Consuming: the consume token; the produce token may not.
        cid = expect(c, i, "POST", "/consumer/register", cons, 200,
                     body={"topic": "orders.eu"})["consumer_id"]
        expect(c, i, "GET", "/consumer/consume", cons, 200,
               query={"topic": "orders.eu", "consumer_id": cid})
        expect(c, i, "GET", "/size", cons, 200, query={"topic": "orders.eu", "consumer_id": cid})
        expect(c, i, "GET", "/consumer/consume", prod, 403,
               "this token may not consume from topic 'orders.eu'; it needs the grant "
               "consume:orders.eu or consume:orders.*",
               query={"topic": "orders.eu", "consumer_id": cid})
        expect(c, i, "GET", "/size", prod, 403, "may not consume",
               query={"topic": "orders.eu", "consumer_id": cid})
        expect(c, i, "POST", "/consumer/register", prod, 403, "may not consume",
               body={"topic": "orders.eu"})
        expect(c, i, "GET", "/v1/topics/orders.eu/partitions/0/records", cons, 200)
        expect(c, i, "GET", "/v1/topics/orders.eu/partitions/0/records", prod, 403,
               "may not consume from topic 'orders.eu'")
        expect(c, i, "GET", "/v1/topics/payments/partitions/0/records", cons, 403,
               "consume:payments or consume:payments.*")
        # Consumer offsets: the grant on the consumer's topic (the leader
        # knows it from the store).
        expect(c, i, "GET", "/v1/consumers/%d/offsets" % cid, cons, 200)
        expect(c, i, "GET", "/v1/consumers/%d/offsets" % cid, prod, 403,
               "may not consume from topic 'orders.eu'")
        expect(c, i, "POST", "/v1/consumers/%d/offsets" % cid, prod, 403,
               "may not consume from topic 'orders.eu'",
               body={"offsets": [{"partition_id": 0, "offset": 0}]})
        expect(c, i, "POST", "/v1/consumers/%d/offsets" % cid, cons, 200,
               body={"offsets": [{"partition_id": 0, "offset": 0}]})

        # Topic metadata: any grant on the topic; GET /topics lists what
        # the token has a grant on, everything for an admin.
        expect(c, i, "GET", "/topics/partitions", cons, 200, query={"topic": "orders.eu"})
        expect(c, i, "GET", "/topics/partitions", prod, 403, "no grant on topic 'payments'",
               query={"topic": "payments"})
        for tok, want in ((prod, ["orders", "orders.eu"]), (cons, ["orders", "orders.eu"]),
                          (both, ["audit"]),
                          (adm, ["audit", "orders", "orders.eu", "payments"]),
                          (ADMIN_TOKEN, ["audit", "orders", "orders.eu", "payments"])):
            got = expect(c, i, "GET", "/topics", tok, 200)["topics"]
            check(sorted(got) == want, "GET /topics at manager%d with %s: %r, want %r"
                  % (i, tok[:8], got, want))

        # The admin API: the admin token or a token with the admin grant.
        expect(c, i, "GET", "/admin/brokers", None, 401, "Authorization: Bearer")
        expect(c, i, "GET", "/admin/brokers", UNKNOWN, 401, "admin")
        expect(c, i, "GET", "/admin/brokers", prod, 403,
               "this token may not use the admin API; it needs the grant admin")
        expect(c, i, "GET", "/admin/managers", cons, 403, "grant admin")
        expect(c, i, "GET", "/admin/brokers", adm, 200)
        expect(c, i, "GET", "/admin/managers", ADMIN_TOKEN, 200)
        expect(c, i, "GET", "/admin/topics/orders.eu", adm, 200)
        # A stored admin token and the admin token may do anything public.
        expect(c, i, "POST", "/producer/register", adm, 200, body={"topic": "payments"})
        expect(c, i, "POST", "/producer/register", ADMIN_TOKEN, 200, body={"topic": "audit"})

    # Order of checks, on a follower: no token is 401 before the body is
    # read, a bad request with a token is 400, a missing grant 403; none of
    # them is forwarded to the leader.
    for i in followers:
        before = forwarded(c, i)
        expect(c, i, "POST", "/producer/register", None, 401, body={"topic": "no such name!"})
        expect(c, i, "POST", "/topics", None, 401, body={"topic_name": 7})
        expect(c, i, "GET", "/consumer/consume", None, 401)
        expect(c, i, "POST", "/producer/register", prod, 400, "'topic' must be",
               body={"topic": "no such name!"})
        expect(c, i, "POST", "/topics", prod, 400, "number_of_partitions",
               body={"topic_name": "orders.x", "number_of_partitions": 0})
        expect(c, i, "GET", "/consumer/consume", cons, 400, "consumer_id",
               query={"topic": "orders.eu"})
        expect(c, i, "POST", "/v1/consumers/x/offsets", cons, 400, "consumer id")
        expect(c, i, "POST", "/consumer/register", prod, 403, "may not consume",
               body={"topic": "orders.eu"})
        expect(c, i, "POST", "/admin/brokers/x/drain", adm, 400, "broker id")
        expect(c, i, "POST", "/admin/brokers/x/drain", prod, 403, "grant admin")
        expect(c, i, "POST", "/admin/tokens", adm, 400, "grants",
               body={"name": "n", "grants": "admin"})
        expect(c, i, "DELETE", "/admin/tokens/zero", adm, 400, "token id")
        check(forwarded(c, i) == before,
              "manager%d forwarded refused requests (%d -> %d)" % (i, before, forwarded(c, i)))

    # A token made while a follower was stopped works there at once: the
    # follower, not knowing it, catches up with the leader before judging.
    c.managers[f1].pause()
    try:
        fresh, _ = create_token(c, lead, "fresh", ["consume:orders.*"])
    finally:
        c.managers[f1].resume()
    expect(c, f1, "GET", "/topics", fresh, 200)
    expect(c, f1, "GET", "/topics", UNKNOWN, 401, "revoked")

    # Revoked through one follower: refused by every manager once applied
    # (the leader has applied it when the answer comes).
    expect(c, followers[1], "DELETE", "/admin/tokens/%d" % prod_id, adm, 200)
    expect(c, lead, "POST", "/producer/register", prod, 401, "revoked",
           body={"topic": "orders.eu"})
    for i in c.managers:
        wait_until(lambda i=i: c.call(i, "GET", "/topics", headers=bearer(prod))[0] == 401, 10,
                   "manager%d to refuse the revoked token" % i)
        expect(c, i, "POST", "/producer/produce", prod, 401, "revoked",
               body={"topic": "orders.eu", "producer_id": 1, "message": "x"})
        expect(c, i, "GET", "/admin/tokens", adm, 200)
        expect(c, i, "GET", "/topics", cons, 200)
    expect(c, f1, "DELETE", "/admin/tokens/%d" % prod_id, ADMIN_TOKEN, 404, "no token")
    st, obj = c.call(lead, "GET", "/admin/tokens")
    check(sorted(t["name"] for t in check_ok(st, obj, "tokens")["tokens"])
          == ["audit-svc", "fresh", "ops", "reader"], "tokens after the revocation %r" % obj)

    # Only hashes are kept: no token appears in any manager's files (Raft
    # log, snapshots, meta.db and its WAL).
    for i, m in c.managers.items():
        for root, _, files in os.walk(m.data_dir):
            for name in files:
                with open(os.path.join(root, name), "rb") as f:
                    data = f.read()
                for t in (prod, cons, adm, both):
                    check(t.encode() not in data,
                          "a token in %s" % os.path.join(root, name))


def run_manager(ctx, args, timeout=20):
    """Runs a manager with @args until it exits; (code, stderr)."""
    data = os.path.join(ctx.dir, "lone%d" % len(os.listdir(ctx.dir)))
    raft = "127.0.0.1:%d" % ctx.ports.take()
    http_addr = "127.0.0.1:%d" % ctx.ports.take()
    argv = [ctx.binary, "--id", "1", "--peers", "1=" + raft, "--http-addr", http_addr,
            "--data", data, "--cluster-secret", rqkeys.TEST_SECRET] + list(args)
    p = subprocess.run(argv, capture_output=True, timeout=timeout)
    return p.returncode, p.stderr.decode(errors="replace")


def test_admin_token_rule(ctx):
    # No --admin-token and no --admin-open: refused at start, naming both.
    code, err = run_manager(ctx, [])
    check(code == 2 and "--admin-token" in err and "--admin-open" in err,
          "a manager without an admin token: exit %d, %r" % (code, err))
    code, err = run_manager(ctx, ["--admin-token", ""])
    check(code == 2 and "--admin-token" in err, "an empty admin token: exit %d %r" % (code, err))
    code, err = run_manager(ctx, ["--admin-token", "t", "--auth", "passwords"])
    check(code == 2 and "--auth" in err and "tokens" in err,
          "--auth passwords: exit %d %r" % (code, err))
    code, err = run_manager(ctx, ["--admin-open", "--auth"])
    check(code == 2, "--auth without a value: exit %d %r" % (code, err))

    # --admin-open: the admin API answers without a token, with a warning
    # in the log; the public API still needs tokens with --auth tokens.
    c = Cluster(ctx, n_managers=1, n_brokers=0,
                manager_args=["--admin-open", "--auth", "tokens"]).start(wait=False)
    wait_until(lambda: c.ready(1), 30, "manager1 ready")
    check_ok(*c.call(1, "GET", "/admin/managers", headers={}), "admin without a token")
    st, obj = c.call(1, "POST", "/admin/tokens", {"name": "t", "grants": ["consume:*"]},
                     headers={})
    tok = check_ok(st, obj, "a token made without a token")["token"]
    check_failure(*c.call(1, "GET", "/topics", headers={}), 401, "public without a token")
    check_ok(*c.call(1, "GET", "/topics", headers=bearer(tok)), "public with a token")
    with open(c.managers[1].log_path, "rb") as f:
        log = f.read().decode(errors="replace")
    check(re.search(r"WARN.*--admin-open", log), "no warning about --admin-open in the log")

    # --auth none (the default): the public API is open, the admin API not.
    # (The same data directory names: the first manager goes first.)
    c.managers[1].terminate()
    shutil.rmtree(c.managers[1].data_dir)
    c2 = Cluster(ctx, n_managers=1, n_brokers=0).start(wait=False)
    wait_until(lambda: c2.ready(1), 30, "manager1 ready")
    check_ok(*c2.call(1, "GET", "/topics", headers={}), "public without a token")
    check_failure(*c2.call(1, "GET", "/admin/managers", headers={}), 401, "admin")


def raftq(ctx, c, *args, token=ADMIN_TOKEN, env_token=None):
    binary = os.path.join(os.path.dirname(ctx.binary), "raftq")
    urls = ",".join("http://%s" % a for _, a in sorted(c.m_http.items()))
    env = {k: v for k, v in os.environ.items() if not k.startswith("RAFTQ_")}
    if env_token is not None:
        env["RAFTQ_TOKEN"] = env_token
    argv = [binary, "--managers", urls] + (["--token", token] if token else []) + list(args)
    p = subprocess.run(argv, capture_output=True, timeout=60, env=env)
    return p.returncode, p.stdout.decode(), p.stderr.decode()


def test_cli_tokens(ctx):
    c = Cluster(ctx, n_brokers=3, manager_args=["--auth", "tokens"]).start()
    code, out, err = raftq(ctx, c, "token", "create", "billing", "--grant", "produce:orders.*",
                           "--grant", "consume:orders.*")
    check(code == 0 and TOKEN_RE.match(out.strip()) and "not shown again" in err,
          "token create: %d %r %r" % (code, out, err))
    tok = out.strip()
    code, out, err = raftq(ctx, c, "token", "list")
    lines = out.splitlines()
    check(code == 0 and lines[0].split() == ["ID", "NAME", "GRANTS", "CREATED"]
          and re.match(r"^\s*1\s+billing\s+produce:orders\.\*,consume:orders\.\*\s+\d{4}-", lines[1]),
          "token list: %d %r %r" % (code, out, err))
    check(tok not in out, "token list shows the token")
    code, out, _ = raftq(ctx, c, "--json", "token", "list")
    check(code == 0 and json.loads(out)["tokens"][0]["name"] == "billing", "--json %r" % out)

    # The new token works for the client, through RAFTQ_TOKEN too, and is
    # refused where it has no grant.
    code, out, err = raftq(ctx, c, "topic", "create", "orders.eu", token=tok)
    check(code == 0, "topic create with the token: %d %r" % (code, err))
    code, out, err = raftq(ctx, c, "topic", "create", "payments", token=None, env_token=tok)
    check(code == 1 and "produce:payments" in err, "a topic without the grant: %d %r" % (code, err))
    code, out, err = raftq(ctx, c, "broker", "list", token=tok)
    check(code == 1 and "grant admin" in err, "broker list with a produce token: %d %r"
          % (code, err))
    code, out, err = raftq(ctx, c, "topic", "list", token=None)
    check(code == 1 and "token" in err, "topic list without a token: %d %r" % (code, err))

    # raftq bench sends the same token on its own connections: a case on
    # orders.offset_commit_32 runs with it and is refused without it.
    bench = ["bench", "offset_commit_32", "--seconds", "1", "--in-flight", "2",
             "--topic", "orders", "--json"]
    code, out, err = raftq(ctx, c, *bench, token=tok)
    check(code == 0 and json.loads(out)["n"] > 0 and "errors" not in err,
          "bench with the token: %d %r %r" % (code, out, err))
    code, out, err = raftq(ctx, c, *bench, token=None)
    check(code == 1 and out == "" and "--token" in err and "not run" in err,
          "bench without a token: %d %r %r" % (code, out, err))

    code, out, err = raftq(ctx, c, "token", "create", "x", "--grant", "write:all")
    check(code == 1 and "unknown grant 'write'" in err, "a bad grant: %d %r" % (code, err))
    code, out, err = raftq(ctx, c, "token", "create", "x")
    check(code == 2 and "--grant" in err, "no grant: %d %r" % (code, err))
    code, out, err = raftq(ctx, c, "token", "create", "x", "--grant", "admin", token=tok)
    check(code == 1 and "grant admin" in err, "a token made by a produce token: %d %r"
          % (code, err))

    code, out, err = raftq(ctx, c, "token", "revoke", "1")
    check(code == 0 and "revoked" in out, "token revoke: %d %r %r" % (code, out, err))
    wait_until(lambda: raftq(ctx, c, "topic", "list", token=tok)[0] == 1, 10,
               "the revoked token to be refused")
    code, out, err = raftq(ctx, c, "token", "revoke", "1")
    check(code == 1 and "no token 1" in err, "revoke twice: %d %r" % (code, err))
    code, out, _ = raftq(ctx, c, "token", "list")
    check(code == 0 and out.splitlines() == ["ID  NAME  GRANTS  CREATED"],
          "token list after the revocation: %r" % out)


if __name__ == "__main__":
    run_suite("tokens", [
        test_token_matrix,
        test_admin_token_rule,
        test_cli_tokens,
    ], binary="manager", ports=(21000, 21999))

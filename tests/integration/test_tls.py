"""Integration tests of TLS on every port, with `raftq dev --tls`.

One cluster (three managers, three brokers) runs under `raftq dev --tls`.
Its banner's https URLs and curl examples (with --cacert) work as printed;
its keys are mode 0600. A client holding the CA (Python's ssl module, and
raftq with RAFTQ_CACERT) creates a topic, produces and consumes through
https; a client without the CA, a TLS 1.2 client and a plain-HTTP client are
refused. A broker's internal routes, and a manager's /internal routes, answer
401 to a client without a node certificate; the probes do not need one.
Then nodes whose certificates another CA signed (made with the openssl tool)
try to join: a broker that trusts only its own CA cannot verify the managers,
one that trusts both is refused by them for its certificate, and a fourth
manager's Raft connections are refused by TLS; each shows in the logs (and
the managers' raftq_tls_handshake_failures_total), none joins, and the
cluster keeps serving.

Needs no root. Run: python3 tests/integration/test_tls.py [--build DIR]
[-k NAME] [--ports LO-HI].
"""

import http.client
import json
import os
import shutil
import ssl
import stat
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from harness import TestFailure, check, run_suite, wait_until  # noqa: E402
from rqcerts import make_certs  # noqa: E402
from rqkeys import TEST_SECRET  # noqa: E402
from test_cli import Cli, Dev, check_banner, port_block  # noqa: E402

# The ports of a raftq dev cluster from its base port (devplan.h).
MANAGER_HTTP, BROKER_HTTP, BROKER_RAFT = 0, 20, 40


def context(ca=None, cert=None, key=None, tls12=False):
    """A client context: verifying against @ca (else the system's CAs),
    with a client certificate if given."""
    ctx = ssl.create_default_context(cafile=ca)
    if cert is not None:
        ctx.load_cert_chain(cert, key)
    if tls12:
        ctx.maximum_version = ssl.TLSVersion.TLSv1_2
    return ctx


def call(port, method, path, body=None, ctx=None, plain=False):
    """(status, JSON body or text) of one request to 127.0.0.1:@port."""
    if plain:
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
    else:
        conn = http.client.HTTPSConnection("127.0.0.1", port, context=ctx, timeout=30)
    try:
        data = json.dumps(body) if body is not None else None
        conn.request(method, path, body=data,
                     headers={"Content-Type": "application/json"} if data else {})
        resp = conn.getresponse()
        text = resp.read().decode("utf-8", "replace")
        try:
            return resp.status, json.loads(text)
        except ValueError:
            return resp.status, text
    finally:
        conn.close()


def refused(port, ctx=None, plain=False):
    """The reason a request is refused before any HTTP answer, or None if
    it got one."""
    try:
        call(port, "GET", "/healthz", ctx=ctx, plain=plain)
    except (ssl.SSLError, ConnectionError, http.client.HTTPException, OSError) as e:
        return "%s: %s" % (type(e).__name__, e)
    return None


def metric(port, name, ctx):
    """The value of metric @name in the /metrics of 127.0.0.1:@port."""
    st, text = call(port, "GET", "/metrics", ctx=ctx)
    check(st == 200, "/metrics on %d: %d" % (port, st))
    for line in text.splitlines():
        if line.startswith(name + " "):
            return float(line.split()[1])
    raise TestFailure("no %s in /metrics of %d" % (name, port))


def log_of(data, name):
    with open(os.path.join(data, "dev", name + ".log"), errors="replace") as f:
        return f.read()


def test_dev_tls(ctx):
    if shutil.which("openssl") is None or shutil.which("curl") is None:
        raise TestFailure("needs the openssl and curl tools (make deps installs them)")
    base = port_block(ctx)
    data = os.path.join(ctx.dir, "data")
    dev = Dev(ctx, data, base, ["--tls"]).start()
    tls = os.path.join(data, "dev", "tls")
    ca = os.path.join(tls, "ca.crt")
    check(dev.urls == ["https://127.0.0.1:%d" % (base + i) for i in range(3)],
          "URLs %r" % dev.urls)
    text = "\n".join(dev.lines)
    check("export RAFTQ_CACERT=%s" % ca in text, "no RAFTQ_CACERT line: %r" % text)
    check_banner(dev)  # Runs the printed curl examples, --cacert and all.
    for name in os.listdir(tls):
        mode = stat.S_IMODE(os.stat(os.path.join(tls, name)).st_mode)
        if name.endswith(".key"):
            check(mode == 0o600, "%s has mode %o" % (name, mode))

    # A client with the CA: produce and consume through https.
    good = context(ca)
    m = base + MANAGER_HTTP
    st, body = call(m, "POST", "/topics", {"topic_name": "secure", "number_of_partitions": 1},
                    ctx=good)
    check(st == 200, "create topic: %d %r" % (st, body))
    st, body = call(m + 1, "POST", "/v1/topics/secure/records",
                    {"records": [{"value": "v%d" % i, "partition_id": 0} for i in range(5)]},
                    ctx=good)
    check(st == 200, "produce: %d %r" % (st, body))
    st, body = call(m + 2, "GET", "/v1/topics/secure/partitions/0/records?offset=0", ctx=good)
    check(st == 200 and [r["value"] for r in body["records"]] == ["v%d" % i for i in range(5)],
          "consume: %d %r" % (st, body))
    # The course flow of API.md section 1, each step through another
    # manager: a producer, its messages, a consumer that reads them in order,
    # then nothing left.
    st, body = call(m, "POST", "/producer/register", {"topic": "course"}, ctx=good)
    check(st == 200, "producer/register: %d %r" % (st, body))
    pid = body["producer_id"]
    for i in range(3):
        st, body = call(m + (i % 3), "POST", "/producer/produce",
                        {"topic": "course", "producer_id": pid, "message": "m%d" % i}, ctx=good)
        check(st == 200 and body["offset"] == i, "produce m%d: %d %r" % (i, st, body))
    st, body = call(m + 1, "POST", "/consumer/register", {"topic": "course"}, ctx=good)
    check(st == 200, "consumer/register: %d %r" % (st, body))
    cid = body["consumer_id"]
    st, body = call(m + 2, "GET", "/size?topic=course&consumer_id=%d" % cid, ctx=good)
    check(st == 200 and body["size"] == 3, "size: %d %r" % (st, body))
    for i in range(3):
        st, body = call(m + (i % 3), "GET",
                        "/consumer/consume?topic=course&consumer_id=%d" % cid, ctx=good)
        check(st == 200 and body["message"] == "m%d" % i, "consume %d: %d %r" % (i, st, body))
    st, body = call(m, "GET", "/consumer/consume?topic=course&consumer_id=%d" % cid, ctx=good)
    check(st == 404 and "no new messages" in body.get("message", ""),
          "consume past the end: %d %r" % (st, body))

    cli = Cli(ctx, dev.urls)
    cli.env["RAFTQ_CACERT"] = ca
    check("secure" in cli.ok("topic", "list").split(), "raftq topic list")
    cli.ok("produce", "secure", "from-cli")
    out = cli.ok("consume", "secure", "--partition", "0", "--offset", "5", "--max", "1")
    check(out.strip() == "from-cli", "raftq consume: %r" % out)
    # cluster status asks every manager itself, over https too.
    reports = cli.json("cluster", "status")["reports"]
    check(len(reports) == 3 and all(r["ready"] for r in reports), "cluster status: %r" % reports)

    # Clients the managers refuse: no CA, TLS 1.2, plain HTTP.
    why = refused(m, ctx=context())
    check(why is not None and "CERTIFICATE_VERIFY_FAILED" in why, "no CA: %r" % why)
    check(refused(m, ctx=context(ca, tls12=True)) is not None, "TLS 1.2 was accepted")
    check(refused(m, plain=True) is not None, "plain HTTP was answered")
    env = dict(cli.env)
    env.pop("RAFTQ_CACERT")
    rc, _, err = cli.run("--timeout", "2", "topic", "list", env=env)
    check(rc == 3 and "certificate" in err, "raftq without the CA: %d %r" % (rc, err))

    # Internal routes need a node certificate; probes do not.
    b = base + BROKER_HTTP
    st, body = call(b, "GET", "/internal/replicas", ctx=good)
    check(st == 401 and "client certificate" in body.get("message", ""),
          "broker internal without a certificate: %d %r" % (st, body))
    st, _ = call(b, "GET", "/healthz", ctx=good)
    check(st == 200, "broker /healthz: %d" % st)
    st, body = call(m, "POST", "/internal/brokers/register", {"id": 99}, ctx=good)
    check(st == 401 and "client certificate" in body.get("message", ""),
          "manager /internal without a certificate: %d %r" % (st, body))
    node = context(ca, os.path.join(tls, "manager-1.crt"), os.path.join(tls, "manager-1.key"))
    st, body = call(b, "GET", "/internal/replicas", ctx=node)
    check("client certificate" not in json.dumps(body),
          "broker internal with a node certificate: %d %r" % (st, body))

    # Nodes of another CA cannot join.
    fca, certs = make_certs(os.path.join(ctx.dir, "foreign"), ["stranger"])
    fcert, fkey = certs["stranger"]
    both = os.path.join(ctx.dir, "both.crt")
    with open(both, "w") as f:
        f.write(open(ca).read() + open(fca).read())
    bin_dir = os.path.dirname(ctx.binary)
    managers = ",".join(dev.urls)
    # The cluster's own secret, so that the CA alone keeps them out.
    with open(os.path.join(data, "dev", "cluster.json")) as f:
        secret = json.load(f)["cluster_secret"]
    strangers = []
    for i, trust in ((1, fca), (2, both)):
        argv = [os.path.join(bin_dir, "broker"), "--id", str(10 + i),
                "--raft-addr", "127.0.0.1:%d" % (base + BROKER_RAFT + 10 + i),
                "--http-addr", "127.0.0.1:%d" % (base + BROKER_HTTP + 10 + i),
                "--data", os.path.join(ctx.dir, "stranger-%d" % i),
                "--managers", managers, "--cluster-secret", secret,
                "--tls-cert", fcert, "--tls-key", fkey, "--tls-ca", trust]
        strangers.append(ctx.daemon("broker", 10 + i, argv))
    peers = ",".join("%d=127.0.0.1:%d" % (i + 1, base + 10 + i) for i in range(3))
    peers += ",4=127.0.0.1:%d" % (base + 19)
    argv = [os.path.join(bin_dir, "manager"), "--id", "4", "--peers", peers,
            "--http-addr", "127.0.0.1:%d" % (base + 9),
            "--data", os.path.join(ctx.dir, "stranger-manager"),
            "--cluster-secret", secret, "--admin-open",
            "--tls-cert", fcert, "--tls-key", fkey, "--tls-ca", fca]
    strangers.append(ctx.daemon("manager", 4, argv))
    for p in strangers:
        p.start()

    def seen():
        logs = [" ".join(p.log_tail(200)) for p in strangers]
        ours = " ".join(log_of(data, "manager-%d" % i) for i in (1, 2, 3))
        return (("certificate" in logs[0] and "cannot register" in logs[0]) and
                ("client certificate" in logs[1] and "cannot register" in logs[1]) and
                "TLS handshake from" in ours and "failed" in ours) or None

    try:
        wait_until(seen, 60, "the strangers' refusals in the logs", interval=0.5)
    except TestFailure:
        for p in strangers:
            print("    %s: %s" % (p, "\n      ".join(p.log_tail(8))), flush=True)
        raise
    # The refused handshakes are counted, beside the good ones.
    check(all(metric(m + i, "raftq_tls_handshakes_total", good) > 0 for i in range(3)),
          "managers without completed handshakes")
    check(sum(metric(m + i, "raftq_tls_handshake_failures_total", good) for i in range(3)) > 0,
          "no manager counted the stranger's failed handshakes")
    check(metric(b, "raftq_tls_relays", good) > 0, "broker 1 has no TLS connection open")
    st, body = call(m, "GET", "/admin/brokers", ctx=good)
    ids = sorted(x["id"] for x in body.get("brokers", []))
    check(ids == [1, 2, 3], "brokers after the strangers: %r" % body)
    st, body = call(m, "POST", "/v1/topics/secure/records",
                    {"records": [{"value": "after", "partition_id": 0}]}, ctx=good)
    check(st == 200, "produce after the strangers: %d %r" % (st, body))
    for p in strangers:
        check(p.running(), "%s exited: %s" % (p, p.log_tail(5)))
        p.terminate()
    check(dev.stop() == 0, "raftq dev did not stop cleanly")


def test_atm_network_over_tls(ctx):
    """Three ATMs with TLS on their Raft port elect a leader, and a deposit
    at one is read at another (it went through Raft, inside TLS)."""
    if shutil.which("openssl") is None:
        raise TestFailure("needs the openssl tool (make deps installs it)")
    ca, certs = make_certs(os.path.join(ctx.dir, "certs"), ["atm1", "atm2", "atm3"], "ATM CA")
    binary = os.path.join(os.path.dirname(ctx.binary), "atm")
    ports = [ctx.ports.take() for _ in range(3)]
    peers = ",".join("%d=127.0.0.1:%d" % (i + 1, p) for i, p in enumerate(ports))
    atms = []
    for i in range(1, 4):
        cert, key = certs["atm%d" % i]
        data = os.path.join(ctx.dir, "atm%d" % i)
        os.makedirs(data)
        argv = [binary, "--id", str(i), "--peers", peers, "--data", data,
                "--election-timeout-ms", "600", "--heartbeat-ms", "100",
                "--cluster-secret", TEST_SECRET,
                "--tls-cert", cert, "--tls-key", key, "--tls-ca", ca]
        atms.append(ctx.atm(i, argv))
    for a in atms:
        a.start()

    def leader():
        for a in atms:
            st = a.try_status()
            if st is not None and st.get("role") == "leader":
                return a
        return None

    wait_until(leader, 30, "a leader among the ATMs over TLS", interval=0.2)
    check(atms[0].cmd("deposit alice 12.50") == "ok alice 12.50", "deposit over TLS")
    check(atms[2].cmd("balance alice") == "ok alice 12.50", "balance read at another ATM")
    for a in atms:
        a.terminate()


if __name__ == "__main__":
    run_suite("tls", [test_dev_tls, test_atm_network_over_tls], binary="raftq",
              ports=(22000, 22999))

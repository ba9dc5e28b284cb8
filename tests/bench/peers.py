"""The peers make bench measures raftq beside: a 3-node NATS JetStream cluster
and a 3-node etcd cluster, Debian 12's builds (make bench-deps installs
them), each started here on 127.0.0.1, driven, and stopped.

    python3 tests/bench/peers.py jetstream [--seconds N] [--case ID,...]
    python3 tests/bench/peers.py etcd [--seconds N] [--case ID,...]

Each command starts the three servers with their configuration and data in
a fresh temporary directory, waits until all three answer their health
check, runs the driver (build/bench/js_bench or build/bench/etcd_bench,
which print one JSON line per case on standard output; see
tests/bench/peer_report.h), then stops exactly the processes it started
and removes the directory. Progress goes to standard error only. A server
that does not come up is named in one line on standard error, with the
last line of its log, and the exit status is 1; the driver's own failure
gives its exit status.

Ports (--base-port B, default 30000, all on 127.0.0.1):
  JetStream  clients B..B+2, routes B+10..B+12, monitoring B+20..B+22
  etcd       clients B+100..B+102, peers B+110..B+112

Both run with their defaults otherwise: JetStream syncs its file store to
disk every 2 minutes (sync_interval), etcd fsyncs its WAL before it
acknowledges a write.
"""

import argparse
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "integration"))
import harness  # noqa: E402

HOST = "127.0.0.1"
NODES = 3
READY_S = 30.0  # How long the servers get to answer their health check.
STOP_S = 10.0  # How long a server gets to exit after SIGTERM.


class StartFailure(Exception):
    """A peer did not come up; the message names it and says why."""


def log(msg):
    print("peers: %s" % msg, file=sys.stderr, flush=True)


def port_free(port):
    s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    # As the servers bind: connections of an earlier run in TIME-WAIT do
    # not make a port busy, a listener does.
    s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        s.bind((HOST, port))
        s.listen(1)
        return True
    except OSError:
        return False
    finally:
        s.close()


def http_json(url, body=None, timeout=2.0):
    """(status, parsed JSON or None) of a GET, or of a POST when @body is
    given; raises OSError when nothing answers."""
    data = None if body is None else json.dumps(body).encode()
    req = urllib.request.Request(url, data=data, method="GET" if body is None else "POST")
    try:
        with urllib.request.urlopen(req, timeout=timeout) as resp:
            status, raw = resp.status, resp.read()
    except urllib.error.HTTPError as e:
        status, raw = e.code, e.read()
    try:
        return status, json.loads(raw)
    except ValueError:
        return status, None


class Server:
    """One server process of a peer cluster, its log in the directory."""

    def __init__(self, name, argv, log_path, ports, ready):
        self.name = name
        self.argv = argv
        self.log_path = log_path
        self.ports = ports  # Every port it binds, checked free first.
        self.ready = ready  # A function: whether it answers its health check.
        self.proc = None

    def check_ports(self):
        for p in self.ports:
            if not port_free(p):
                raise StartFailure("%s: port %d on %s is in use" % (self.name, p, HOST))

    def start(self):
        with open(self.log_path, "ab") as f:
            # SIGKILL reaches it if this script dies before stopping it.
            self.proc = subprocess.Popen(self.argv, stdin=subprocess.DEVNULL, stdout=f,
                                         stderr=f, preexec_fn=harness._die_with_parent)

    def check(self):
        """Whether it is ready; raises StartFailure if it has exited."""
        rc = self.proc.poll()
        if rc is not None:
            raise StartFailure("%s exited with status %d: %s" % (self.name, rc, self.last_line()))
        try:
            return self.ready()
        except OSError:
            return False

    def stop(self):
        """SIGTERM, then SIGKILL after STOP_S; reaps it."""
        if self.proc is None or self.proc.poll() is not None:
            return
        self.proc.send_signal(signal.SIGTERM)
        try:
            self.proc.wait(timeout=STOP_S)
        except subprocess.TimeoutExpired:
            log("%s did not exit within %.0f s of SIGTERM; killing it" % (self.name, STOP_S))
            self.proc.kill()
            self.proc.wait()

    def last_line(self):
        try:
            with open(self.log_path, "rb") as f:
                lines = f.read().decode("utf-8", "replace").strip().splitlines()
        except OSError:
            return "(no log)"
        return lines[-1].strip() if lines else "(empty log)"


def wait_ready(servers, system):
    deadline = time.monotonic() + READY_S
    pending = list(servers)
    while pending:
        pending = [s for s in pending if not s.check()]
        if pending and time.monotonic() >= deadline:
            s = pending[0]
            raise StartFailure("%s not ready after %.0f s: %s" % (s.name, READY_S, s.last_line()))
        if pending:
            time.sleep(0.1)
    log("%s: %d servers ready" % (system, len(servers)))


# ---- NATS JetStream ----------------------------------------------------------


def jetstream_servers(tmp, base):
    client = [base + i for i in range(NODES)]
    route = [base + 10 + i for i in range(NODES)]
    monitor = [base + 20 + i for i in range(NODES)]
    routes = ", ".join("nats-route://%s:%d" % (HOST, p) for p in route)
    servers = []
    for i in range(NODES):
        name = "n%d" % (i + 1)
        store = os.path.join(tmp, name)
        conf = os.path.join(tmp, name + ".conf")
        # Defaults otherwise: sync_interval (2 minutes), no fsync per write.
        with open(conf, "w") as f:
            f.write("server_name: %s\n" % name)
            f.write("listen: %s:%d\n" % (HOST, client[i]))
            f.write("http: %s:%d\n" % (HOST, monitor[i]))
            f.write("jetstream {\n  store_dir: %s\n  max_memory_store: 256MB\n"
                    "  max_file_store: 16GB\n}\n" % json.dumps(store))
            f.write("cluster {\n  name: raftq-bench\n  listen: %s:%d\n  routes: [%s]\n}\n"
                    % (HOST, route[i], routes))

        def ready(port=monitor[i]):
            # /healthz answers 200 once JetStream is up and current.
            status, body = http_json("http://%s:%d/healthz" % (HOST, port))
            return status == 200 and isinstance(body, dict) and body.get("status") == "ok"

        servers.append(Server("jetstream " + name, ["nats-server", "-c", conf],
                              os.path.join(tmp, name + ".log"),
                              [client[i], route[i], monitor[i]], ready))
    urls = ",".join("nats://%s:%d" % (HOST, p) for p in client)
    return servers, urls


# ---- etcd --------------------------------------------------------------------


def etcd_servers(tmp, base):
    client = [base + 100 + i for i in range(NODES)]
    peer = [base + 110 + i for i in range(NODES)]
    cluster = ",".join("e%d=http://%s:%d" % (i + 1, HOST, peer[i]) for i in range(NODES))
    servers = []
    for i in range(NODES):
        name = "e%d" % (i + 1)
        curl = "http://%s:%d" % (HOST, client[i])
        purl = "http://%s:%d" % (HOST, peer[i])
        argv = ["etcd", "--name", name, "--data-dir", os.path.join(tmp, name),
                "--listen-client-urls", curl, "--advertise-client-urls", curl,
                "--listen-peer-urls", purl, "--initial-advertise-peer-urls", purl,
                "--initial-cluster", cluster, "--initial-cluster-token", "raftq-bench",
                "--initial-cluster-state", "new", "--logger", "zap", "--log-outputs", "stderr"]

        def ready(url=curl):
            # /health is true once the member has a leader and serves reads.
            status, body = http_json(url + "/health")
            return status == 200 and isinstance(body, dict) and body.get("health") == "true"

        servers.append(Server("etcd " + name, argv, os.path.join(tmp, name + ".log"),
                              [client[i], peer[i]], ready))
    return servers, ["http://%s:%d" % (HOST, p) for p in client]


def etcd_leader_first(urls):
    """@urls with the leader's first: a write sent to a follower is
    forwarded to the leader, so the driver talks to the leader, as a
    clientv3 user pinned to it would, and etcd is measured at its best."""
    for url in urls:
        status, body = http_json(url + "/v3/maintenance/status", body={})
        if status == 200 and isinstance(body, dict):
            if str(body.get("header", {}).get("member_id")) == str(body.get("leader")):
                return [url] + [u for u in urls if u != url]
    raise StartFailure("etcd: no member says it is the leader")


# ---- Running -----------------------------------------------------------------


def run(args):
    driver = os.path.join(args.build, "bench", "js_bench" if args.system == "jetstream"
                          else "etcd_bench")
    if not os.access(driver, os.X_OK):
        log("%s is not built (make bench builds it)" % driver)
        return 1
    binary = "nats-server" if args.system == "jetstream" else "etcd"
    if shutil.which(binary) is None:
        log("%s is not installed (make bench-deps installs it)" % binary)
        return 1
    tmp = tempfile.mkdtemp(prefix="raftq-peers-%s-" % args.system)
    servers = []
    try:
        if args.system == "jetstream":
            servers, urls = jetstream_servers(tmp, args.base_port)
        else:
            servers, url_list = etcd_servers(tmp, args.base_port)
        for s in servers:
            s.check_ports()
        for s in servers:
            s.start()
        wait_ready(servers, args.system)
        if args.system == "etcd":
            urls = ",".join(etcd_leader_first(url_list))
        argv = [driver, "--url", urls, "--seconds", str(args.seconds)]
        if args.case:
            argv += ["--case", args.case]
        log("running %s" % " ".join(argv))
        rc = subprocess.call(argv, preexec_fn=harness._die_with_parent)
        if rc != 0:
            log("%s exited with status %d" % (os.path.basename(driver), rc))
        return rc
    except StartFailure as e:
        log("%s did not start: %s" % (args.system, e))
        return 1
    finally:
        for s in servers:
            s.stop()
        shutil.rmtree(tmp, ignore_errors=True)


def on_sigterm(signum, frame):
    # Unwinds through run()'s finally, which stops the servers.
    raise SystemExit(128 + signum)


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("system", choices=["jetstream", "etcd"])
    ap.add_argument("--seconds", type=float, default=10.0, help="per case (default 10)")
    ap.add_argument("--case", help="comma-separated case ids (default: all)")
    ap.add_argument("--build", default="build", help="the build directory (default build)")
    ap.add_argument("--base-port", type=int, default=30000,
                    help="first port (default 30000; up to B+112 are used)")
    args = ap.parse_args()
    if not 1024 <= args.base_port <= 32767 - 112:
        # Below the ephemeral range, where nothing else picks ports.
        ap.error("--base-port: the ports must lie in 1024-32767")
    signal.signal(signal.SIGTERM, on_sigterm)
    try:
        return run(args)
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    sys.exit(main())

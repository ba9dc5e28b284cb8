"""The status page (/ui) in headless Chromium against a real cluster.

Three managers (with an admin token) and three brokers on 127.0.0.1, a topic
with four partitions and some messages. The page is loaded the way a
person would load it, in Debian's Chromium started headless with its
background network services off, and judged from what the browser made of
it: the DOM after the page's script ran (--dump-dom) and a 1280x800
screenshot, decoded here with zlib and checked for its size and for the
colours the page uses for leaders and live brokers. The page must ask for
the token, then show three managers with exactly one leader, three live
brokers, every partition with its leader among its replicas, and a consumer
group with its lag; after a
broker is killed with SIGKILL it must show that broker as suspect or dead;
with two managers killed it must say there is no quorum; and served by a
stand-in whose admin API does not answer, that the manager is unreachable.
Screenshots and DOM dumps are kept under build/ui-test/ for a person to
look at.

Not part of make test (no browser there): make test-ui installs chromium
and runs this. Run: python3 tests/ui/test_ui.py [--build DIR] [-k NAME]
[--ports LO-HI].
"""

import collections
import html.parser
import json
import http.client
import http.server
import os
import shutil
import struct
import subprocess
import sys
import threading
import zlib

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(os.path.dirname(HERE))
sys.path.insert(0, os.path.join(REPO, "tests", "integration"))

from harness import check, run_suite, wait_until  # noqa: E402
from test_manager import Cluster, Unreachable, call  # noqa: E402

TOKEN = "ui-test-token"
PAGE = os.path.join(REPO, "manager", "ui", "index.html")
OUT = os.path.join(REPO, "build", "ui-test")
WIDTH, HEIGHT = 1280, 800

# Colours the page draws with (manager/ui/index.html, :root and .badge).
LEADER_RGB = (0x5B, 0x32, 0xC8)
ALIVE_RGB = (0x1A, 0x7F, 0x37)
SUSPECT_RGB = (0xD4, 0xA7, 0x2C)
DEAD_RGB = (0xCF, 0x22, 0x2E)
NOQUORUM_RGB = (0xFF, 0xF1, 0xC2)
AUTH_RGB = (0xDD, 0xF4, 0xFF)

CHROMIUM_FLAGS = [
    "--headless=new", "--no-sandbox", "--disable-gpu", "--no-first-run",
    "--disable-background-networking", "--disable-sync", "--disable-component-update",
    "--disable-default-apps", "--disable-extensions", "--disable-breakpad",
    "--disable-domain-reliability", "--no-default-browser-check", "--no-pings",
    "--disable-features=Translate,MediaRouter,OptimizationHints,AutofillServerCommunication",
    "--hide-scrollbars", "--mute-audio", "--window-size=%d,%d" % (WIDTH, HEIGHT),
]


def chromium_path():
    for name in ("chromium", "chromium-browser"):
        p = shutil.which(name)
        if p:
            return p
    return None


def requires():
    if chromium_path() is None:
        return "no chromium here (make test-ui installs Debian's chromium)"
    return None


def chromium(ctx, url, screenshot=None, budget_ms=5000):
    """Loads @url in a fresh headless profile, lets the page run for
    @budget_ms of virtual time and returns the DOM, or writes a screenshot
    to @screenshot."""
    profile = os.path.join(ctx.dir, "chromium-profile-%d" % len(os.listdir(ctx.dir)))
    argv = [chromium_path()] + CHROMIUM_FLAGS + [
        "--user-data-dir=" + profile, "--virtual-time-budget=%d" % budget_ms]
    argv += ["--screenshot=" + screenshot] if screenshot else ["--dump-dom"]
    env = dict(ctx.env, HOME=ctx.dir)
    r = subprocess.run(argv + [url], capture_output=True, timeout=90, env=env, cwd=ctx.dir)
    with open(os.path.join(ctx.dir, "chromium.log"), "ab") as f:
        f.write(b"$ " + " ".join(argv + [url]).encode() + b"\n" + r.stderr)
    check(r.returncode == 0, "chromium %s exited %d: %s" % (
        url, r.returncode, r.stderr.decode(errors="replace")[-800:]))
    if screenshot:
        check(os.path.exists(screenshot), "chromium wrote no screenshot of %s" % url)
        return None
    return r.stdout.decode("utf-8")


# ---- The DOM ---------------------------------------------------------------


class Dom(html.parser.HTMLParser):
    """Every element's tag and attributes, in document order."""

    def __init__(self, text):
        super().__init__(convert_charrefs=True)
        self.elements = []
        self.texts = []
        self.feed(text)

    def handle_starttag(self, tag, attrs):
        self.elements.append((tag, dict(attrs)))

    def handle_data(self, data):
        self.texts.append(data)

    def all(self, **want):
        """Elements whose attributes (data_x for data-x) have these values;
        a value of True means present."""
        out = []
        for tag, a in self.elements:
            ok = True
            for k, v in want.items():
                k = k.replace("_", "-")
                if k not in a or (v is not True and a[k] != v):
                    ok = False
                    break
            if ok:
                out.append(a)
        return out

    def one(self, **want):
        found = self.all(**want)
        check(len(found) == 1, "expected one element %r, found %d" % (want, len(found)))
        return found[0]

    def body(self):
        return next(a for t, a in self.elements if t == "body")

    def text(self):
        return " ".join(" ".join(self.texts).split())


def load_dom(ctx, url, name, **kw):
    text = chromium(ctx, url, **kw)
    with open(os.path.join(OUT, name + ".html"), "w") as f:
        f.write(text)
    return Dom(text)


# ---- The screenshot --------------------------------------------------------


def png_decode(path):
    """(width, height, Counter of (r, g, b) pixels) of an 8-bit RGB or RGBA
    PNG without interlacing, with the standard library only."""
    with open(path, "rb") as f:
        data = f.read()
    check(data[:8] == b"\x89PNG\r\n\x1a\n", "%s is not a PNG" % path)
    pos, idat, ihdr = 8, [], None
    while pos + 8 <= len(data):
        n, kind = struct.unpack(">I4s", data[pos:pos + 8])
        body = data[pos + 8:pos + 8 + n]
        check(zlib.crc32(kind + body) == struct.unpack(">I", data[pos + 8 + n:pos + 12 + n])[0],
              "%s: bad CRC in chunk %r" % (path, kind))
        pos += 12 + n
        if kind == b"IHDR":
            ihdr = struct.unpack(">IIBBBBB", body)
        elif kind == b"IDAT":
            idat.append(body)
        elif kind == b"IEND":
            break
    check(ihdr is not None, "%s: no IHDR" % path)
    w, h, depth, ctype, _, _, interlace = ihdr
    check(depth == 8 and ctype in (2, 6) and interlace == 0,
          "%s: unexpected PNG format depth=%d colour type=%d interlace=%d"
          % (path, depth, ctype, interlace))
    bpp = 3 if ctype == 2 else 4
    raw = zlib.decompress(b"".join(idat))
    stride = w * bpp
    check(len(raw) == h * (stride + 1), "%s: %d bytes of pixels for %dx%d" % (path, len(raw), w, h))
    prev = bytearray(stride)
    colours = collections.Counter()
    for y in range(h):
        start = y * (stride + 1)
        ftype = raw[start]
        line = bytearray(raw[start + 1:start + 1 + stride])
        if ftype == 1:
            for i in range(bpp, stride):
                line[i] = (line[i] + line[i - bpp]) & 0xFF
        elif ftype == 2:
            line = bytearray((a + b) & 0xFF for a, b in zip(line, prev))
        elif ftype == 3:
            for i in range(stride):
                left = line[i - bpp] if i >= bpp else 0
                line[i] = (line[i] + ((left + prev[i]) >> 1)) & 0xFF
        elif ftype == 4:
            for i in range(stride):
                a = line[i - bpp] if i >= bpp else 0
                b = prev[i]
                c = prev[i - bpp] if i >= bpp else 0
                p = a + b - c
                pa, pb, pc = abs(p - a), abs(p - b), abs(p - c)
                pred = a if pa <= pb and pa <= pc else (b if pb <= pc else c)
                line[i] = (line[i] + pred) & 0xFF
        else:
            check(ftype == 0, "%s: unknown filter %d on row %d" % (path, ftype, y))
        prev = line
        if bpp == 3:
            colours.update(zip(line[0::3], line[1::3], line[2::3]))
        else:
            colours.update(zip(line[0::4], line[1::4], line[2::4]))
    return w, h, colours


def near(colours, rgb, tol=4):
    """Pixels within @tol of @rgb in every channel."""
    return sum(n for c, n in colours.items()
               if all(abs(c[k] - rgb[k]) <= tol for k in range(3)))


def check_screenshot(path, must_have):
    """A real WIDTHxHEIGHT picture, not blank, showing @must_have colours
    ({name: rgb}) over at least a few hundred pixels each."""
    w, h, colours = png_decode(path)
    check((w, h) == (WIDTH, HEIGHT), "%s is %dx%d, not %dx%d" % (path, w, h, WIDTH, HEIGHT))
    total = w * h
    top = colours.most_common(1)[0][1]
    check(len(colours) >= 32, "%s has only %d colours" % (path, len(colours)))
    check(top < 0.9 * total, "%s is %.0f%% one colour" % (path, 100.0 * top / total))
    for name, rgb in must_have.items():
        n = near(colours, rgb)
        check(n >= 300, "%s: only %d pixels of the %s colour #%02x%02x%02x"
              % (path, n, name, *rgb))


# ---- The page in the real cluster -------------------------------------------


def check_page_route(c, i):
    """GET /ui and /ui/ serve the page, as built, without the token."""
    with open(PAGE, "rb") as f:
        want = f.read()
    host, port = c.m_http[i].rsplit(":", 1)
    for path in ("/ui", "/ui/"):
        conn = http.client.HTTPConnection(host, int(port), timeout=10)
        try:
            conn.request("GET", path)
            r = conn.getresponse()
            body = r.read()
            check(r.status == 200, "GET %s: %d" % (path, r.status))
            check(r.getheader("Content-Type") == "text/html; charset=utf-8",
                  "GET %s: Content-Type %r" % (path, r.getheader("Content-Type")))
            check(r.getheader("Cache-Control") == "no-cache",
                  "GET %s: Cache-Control %r" % (path, r.getheader("Cache-Control")))
            check(body == want, "GET %s: %d bytes, not the %d of %s" % (path, len(body), len(want), PAGE))
        finally:
            conn.close()
    st, _, _ = call(c.m_http[i], "GET", "/admin/managers", timeout=5)
    check(st == 401, "/admin/managers without the token: %d" % st)


def check_cluster_dom(dom, leader, brokers_alive, topic, n_parts, messages):
    body = dom.body()
    check(body.get("data-state") == "ok", "page state %r, banner %r" % (
        body.get("data-state"), dom.text()[:300]))
    check(int(dom.one(id="updated")["data-refreshes"]) >= 2,
          "the page refreshed fewer than twice in its time budget")
    managers = dom.all(data_role="manager")
    check(len(managers) == 3, "%d managers drawn" % len(managers))
    leaders = [m for m in managers if m["data-leader"] == "true"]
    check(len(leaders) == 1, "%d managers drawn as leader" % len(leaders))
    check(leaders[0]["data-id"] == str(leader), "manager %s drawn as leader, the API says %d"
          % (leaders[0]["data-id"], leader))
    brokers = {b["data-id"]: b["data-state"] for b in dom.all(data_role="broker")}
    check(brokers == {str(i): "alive" for i in brokers_alive}, "brokers drawn: %r" % brokers)
    dom.one(data_role="topic", data_topic=topic)
    parts = dom.all(data_role="partition")
    check(len(parts) == n_parts, "%d partitions drawn, want %d" % (len(parts), n_parts))
    check(sorted(int(p["data-partition"]) for p in parts) == list(range(n_parts)),
          "partition ids drawn: %r" % [p["data-partition"] for p in parts])
    check(all(p["data-leader"] != "" for p in parts), "a partition is drawn without a leader")
    check(sum(int(p["data-hw"]) for p in parts) == messages,
          "high watermarks drawn add up to %d, not %d" % (
              sum(int(p["data-hw"]) for p in parts), messages))
    # Each row: three replicas, one of them the leader the row names.
    replicas = dom.all(data_role="replica")
    check(len(replicas) == 3 * n_parts, "%d replica cells for %d partitions" % (len(replicas), n_parts))
    row_leaders = [r for r in replicas if r["data-replica-role"] == "leader"]
    check(len(row_leaders) == n_parts, "%d replica cells drawn as leader" % len(row_leaders))
    check(sorted(r["data-broker"] for r in row_leaders) == sorted(p["data-leader"] for p in parts),
          "leader cells %r and the rows' leaders %r differ"
          % ([r["data-broker"] for r in row_leaders], [p["data-leader"] for p in parts]))
    check(all(r["data-lag"].isdigit() for r in replicas), "a replica without a reported lag: %r"
          % [r["data-lag"] for r in replicas])
    banner = dom.one(id="banner")
    check("hidden" in banner, "the banner shows while all is well: %r" % banner)


def test_status_page(ctx):
    os.makedirs(OUT, exist_ok=True)
    c = Cluster(ctx, n_managers=3, n_brokers=3, admin_token=TOKEN).start()
    leader = c.wait_leader()
    topic, n_parts, messages = "orders", 4, 24
    c.create_topic(1, topic, n_parts)
    c.wait_topic_led(topic)
    producer = c.register(1, "producer", topic)
    for k in range(messages):
        c.produce(1 + k % 3, topic, producer, "message %d" % k)

    # A consumer group of one that committed 5 records of partition 0.
    st, obj, _ = call(c.m_http[2], "POST", "/v1/groups/billing/join", {"topic": topic},
                      headers=c.admin)
    check(st == 200, "join: %d %r" % (st, obj))
    st, _, _ = call(c.m_http[3], "POST", "/v1/groups/billing/commit",
                    {"member_id": obj["member_id"], "generation": obj["generation"],
                     "offsets": [{"partition_id": 0, "offset": 5}]}, headers=c.admin)
    check(st == 200, "group commit: %d" % st)

    def settled():
        st, obj, _ = call(c.m_http[1], "GET", "/admin/topics/" + topic, timeout=5,
                          headers=c.admin)
        return st == 200 and sum(p["high_watermark"] for p in obj["partitions"]) == messages and \
            all(r["lag"] == 0 for p in obj["partitions"] for r in p["replica_status"])
    wait_until(settled, 20, "the high watermarks to reach %d with no lag" % messages, interval=0.2)

    page = 1 if leader != 1 else 2  # A follower's page: its reads go through the leader.
    url = "http://%s/ui" % c.m_http[page]
    check_page_route(c, page)

    # Without the token the page asks for it.
    dom = load_dom(ctx, url, "no-token", budget_ms=2000)
    check(dom.body().get("data-state") == "auth", "without a token: state %r"
          % dom.body().get("data-state"))
    check("hidden" not in dom.one(id="token-form"), "the token field is hidden after a 401")
    check(dom.one(id="banner")["data-kind"] == "auth", "no auth banner")
    shot = os.path.join(OUT, "status-token.png")
    chromium(ctx, url, screenshot=shot, budget_ms=2000)
    check_screenshot(shot, {"token banner": AUTH_RGB})

    # With it (a link's #token= goes to sessionStorage), the whole cluster.
    turl = url + "#token=" + TOKEN
    dom = load_dom(ctx, turl, "cluster")
    check_cluster_dom(dom, leader, [1, 2, 3], topic, n_parts, messages)
    groups = dom.all(data_role="group")
    check([g["data-group"] for g in groups] == ["billing"] and
          groups[0]["data-lag"] == str(messages - 5), "groups drawn: %r" % groups)
    rows = dom.all(data_role="group-partition")
    check(len(rows) == n_parts and sum(int(r["data-lag"]) for r in rows) == messages - 5,
          "group partitions drawn: %r" % rows)
    shot = os.path.join(OUT, "status.png")
    chromium(ctx, turl, screenshot=shot)
    check_screenshot(shot, {"leader": LEADER_RGB, "alive": ALIVE_RGB})

    # A broker killed: the page shows it suspect (then dead), the others alive.
    victim = 3
    c.brokers[victim].kill()
    wait_until(lambda: c.broker_states().get(victim, {}).get("state") in ("suspect", "dead"),
               20, "broker %d to be suspect" % victim, interval=0.2)
    dom = load_dom(ctx, turl, "broker-down")
    states = {b["data-id"]: b["data-state"] for b in dom.all(data_role="broker")}
    check(states.get(str(victim)) in ("suspect", "dead") and
          all(states.get(str(i)) == "alive" for i in (1, 2)),
          "after broker %d was killed the page shows %r" % (victim, states))
    health = dom.one(data_role="health")["data-health"]
    check(health == "degraded", "overall health %r with a broker down" % health)
    shot = os.path.join(OUT, "status-broker-down.png")
    chromium(ctx, turl, screenshot=shot)
    check_screenshot(shot, {"leader": LEADER_RGB, "alive": ALIVE_RGB, "suspect": SUSPECT_RGB})

    # Two managers killed: the page's manager has no quorum and says so.
    for i in c.managers:
        if i != page:
            c.managers[i].kill()

    def leaderless():
        try:
            st, obj, _ = call(c.m_http[page], "GET", "/admin/managers", timeout=3,
                              headers=c.admin)
        except Unreachable:
            return False
        return st == 200 and obj["leader"] is None
    wait_until(leaderless, 20, "manager %d to know no leader" % page, interval=0.2)
    dom = load_dom(ctx, turl, "no-quorum")
    check(dom.body().get("data-state") == "noquorum", "with no quorum the state is %r"
          % dom.body().get("data-state"))
    banner = dom.one(id="banner")
    check(banner["data-kind"] == "noquorum" and "hidden" not in banner,
          "no visible no-quorum banner: %r" % banner)
    check("No quorum" in dom.text(), "the banner does not say 'No quorum'")
    managers = dom.all(data_role="manager")
    check(len(managers) == 3 and not any(m["data-leader"] == "true" for m in managers),
          "managers drawn with no quorum: %r" % managers)
    shot = os.path.join(OUT, "status-no-quorum.png")
    chromium(ctx, turl, screenshot=shot)
    check_screenshot(shot, {"down": DEAD_RGB, "no-quorum banner": NOQUORUM_RGB})


def serve(ctx, handler):
    port = ctx.ports.take()
    srv = http.server.ThreadingHTTPServer(("127.0.0.1", port), handler)
    threading.Thread(target=srv.serve_forever, daemon=True).start()
    ctx.cleanups.append(srv.server_close)
    ctx.cleanups.append(srv.shutdown)
    return "http://127.0.0.1:%d/ui" % port


# ---- A manager that does not answer -----------------------------------------


class DeafManager(http.server.BaseHTTPRequestHandler):
    """Serves the page, then drops every API request without an answer,
    as a manager that died after serving it would."""

    def do_GET(self):
        if self.path.split("?")[0] in ("/ui", "/ui/"):
            with open(PAGE, "rb") as f:
                body = f.read()
            self.send_response(200)
            self.send_header("Content-Type", "text/html; charset=utf-8")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)
            return
        self.close_connection = True

    def log_message(self, fmt, *args):
        pass


def test_unreachable(ctx):
    os.makedirs(OUT, exist_ok=True)
    url = serve(ctx, DeafManager)
    dom = load_dom(ctx, url, "unreachable", budget_ms=2000)
    check(dom.body().get("data-state") == "unreachable", "state %r" % dom.body().get("data-state"))
    banner = dom.one(id="banner")
    check(banner["data-kind"] == "unreachable" and "hidden" not in banner,
          "no visible unreachable banner: %r" % banner)
    check("Manager unreachable" in dom.text(), "the banner does not say 'Manager unreachable'")
    shot = os.path.join(OUT, "status-unreachable.png")
    chromium(ctx, url, screenshot=shot, budget_ms=2000)
    check_screenshot(shot, {"unreachable": DEAD_RGB})


# ---- A larger cluster, drawn from canned answers ----------------------------


def canned_cluster(sizes=(("clicks", 6), ("orders", 4), ("payments-eu", 3))):
    """Admin answers for 3 managers, 6 brokers (one dead, one removed) and
    3 topics of @sizes partitions, one partition without a leader and
    replicas behind."""
    managers = {"managers": [{"id": i, "raft_addr": "10.0.0.%d:7000" % i,
                              "http_addr": "10.0.0.%d:8000" % i,
                              "role": "leader" if i == 3 else "follower"} for i in (1, 2, 3)],
                "leader": 3, "term": 7, "self": 1, "commit": 4242, "applied": 4242}
    states = {1: "alive", 2: "alive", 3: "alive", 4: "dead", 5: "alive", 6: "removed"}
    brokers = {"brokers": [{"id": i, "raft_addr": "10.0.1.%d:7100" % i,
                            "http_addr": "10.0.1.%d:8100" % i, "state": st,
                            "heartbeat_age_ms": 400 if st == "alive" else 75000,
                            "partitions": 5, "preferred_leader_of": 2, "leader_of": 2,
                            "hosted": 5, "quarantined": [41, 42] if i == 2 else [],
                            "disk": {"total_bytes": 20 << 30,
                                     "free_bytes": (300 << 20) if i == 5 else (12 << 30),
                                     "reserve_bytes": 1 << 30, "low": i == 5}}
                           for i, st in states.items()]}
    topics = {}
    for t, n in sizes:
        parts = []
        for p in range(n):
            reps = [1 + (p + k) % 5 for k in range(3)]
            leader = None if (t, p) == ("orders", 2) else next(b for b in reps if states[b] == "alive")
            status = []
            for b in reps:
                if states[b] == "dead":
                    status.append({"broker_id": b, "role": None, "commit": None,
                                   "next_offset": None, "lag": None})
                else:
                    status.append({"broker_id": b, "role": "leader" if b == leader else "follower",
                                   "commit": 100 * p, "next_offset": 90 * p,
                                   "lag": 0 if b == leader or p % 2 == 0 else 3})
            parts.append({"partition_id": p, "group_id": 10 + p, "epoch": 1, "replicas": reps,
                          "preferred_leader": reps[0], "leader": leader, "commit": 100 * p + 5,
                          "high_watermark": 90 * p, "replica_status": status})
        topics[t] = {"topic": t, "number_of_partitions": n, "created_ms": 1700000000000,
                     "partitions": parts}
    return managers, brokers, topics


def topics_summary(topics):
    """GET /admin/topics as a manager counts @topics (name -> description)."""
    out = []
    for name in sorted(topics):
        t = topics[name]
        ps = t["partitions"]
        out.append({"topic": name, "number_of_partitions": t["number_of_partitions"],
                    "created_ms": t["created_ms"],
                    "leaderless": sum(p["leader"] is None for p in ps),
                    "lagging": sum(any(r["lag"] is None or r["lag"] > 0
                                       for r in p["replica_status"]) for p in ps),
                    "high_watermark_sum": sum(p["high_watermark"] for p in ps)})
    return {"topics": out, "number_of_partitions": sum(t["number_of_partitions"]
                                                       for t in topics.values())}


class CannedManager(http.server.BaseHTTPRequestHandler):
    """Serves the page and canned admin answers, and notes the topics it
    was asked to describe."""

    managers, brokers, topics = canned_cluster()
    described = []
    # Two groups: one with a member that owns every partition, one idle.
    groups = {
        "billing": {"group": "billing", "topic": "orders", "generation": 4,
                    "members": [{"member_id": "0f3a9c2e4b5d6e7f", "partitions": [0, 1],
                                 "last_heartbeat_ms_ago": 1200, "session_timeout_ms": 10000}],
                    "offsets": [{"partition_id": 0, "committed": 10, "high_watermark": 15,
                                 "lag": 5},
                                {"partition_id": 1, "committed": 7, "high_watermark": 7,
                                 "lag": 0}]},
        "audit": {"group": "audit", "topic": "clicks", "generation": 2, "members": [],
                  "offsets": [{"partition_id": 0, "committed": 0, "high_watermark": 3,
                               "lag": 3}]},
    }

    def reply(self, status, ctype, body):
        self.send_response(status)
        self.send_header("Content-Type", ctype)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def do_GET(self):
        path = self.path.split("?")[0]
        if path == "/ui":
            with open(PAGE, "rb") as f:
                self.reply(200, "text/html; charset=utf-8", f.read())
            return
        if path == "/admin/managers":
            obj = self.managers
        elif path == "/admin/brokers":
            obj = self.brokers
        elif path == "/admin/moves":
            obj = {"moves": [{"group_id": 9, "topic": "clicks", "partition_id": 2, "from": 1,
                              "to": 5, "kind": "rebalance", "step": "add", "age_ms": 800}]}
        elif path == "/topics":
            obj = {"topics": sorted(self.topics)}
        elif path == "/admin/topics":
            obj = topics_summary(self.topics)
        elif path.startswith("/admin/topics/") and path[14:] in self.topics:
            self.described.append(path[14:])
            obj = self.topics[path[14:]]
        elif path == "/v1/groups":
            obj = {"groups": [{"group": g["group"], "topic": g["topic"],
                               "generation": g["generation"], "members": len(g["members"])}
                              for g in self.groups.values()]}
        elif path.startswith("/v1/groups/") and path[11:] in self.groups:
            obj = self.groups[path[11:]]
        else:
            self.reply(404, "application/json", b'{"status":"failure","message":"no such path"}')
            return
        self.reply(200, "application/json", json.dumps(dict(obj, status="success")).encode())

    def log_message(self, fmt, *args):
        pass


def test_larger_cluster(ctx):
    os.makedirs(OUT, exist_ok=True)
    url = serve(ctx, CannedManager)
    dom = load_dom(ctx, url, "larger", budget_ms=2000)
    check(dom.body().get("data-state") == "ok", "state %r" % dom.body().get("data-state"))
    check(dom.one(data_role="health")["data-health"] == "degraded", "health is not degraded")
    states = {b["data-id"]: b["data-state"] for b in dom.all(data_role="broker")}
    check(states == {"1": "alive", "2": "alive", "3": "alive", "4": "dead", "5": "alive",
                     "6": "removed"}, "brokers drawn: %r" % states)
    # The data volumes (one low on space) and the quarantined replicas.
    disks = dom.all(data_role="disk")
    check(len(disks) == 5, "%d disk lines for 5 brokers drawn" % len(disks))
    text = dom.text()
    check("disk 300.0 MiB free of 20.0 GiB low" in text and "disk 12.0 GiB free" in text,
          "disk lines: %r" % text[:2000])
    check(len(dom.all(data_role="quarantined")) == 1 and "quarantined g41, g42" in text,
          "quarantine line missing")
    check("1 replica move under way (clicks/2 1→5 rebalance)" in text,
          "moves missing from the brokers' line: %r" % text[:600])
    check([t["data-topic"] for t in dom.all(data_role="topic")] == ["clicks", "orders", "payments-eu"],
          "topics drawn: %r" % [t["data-topic"] for t in dom.all(data_role="topic")])
    parts = dom.all(data_role="partition")
    check(len(parts) == 13, "%d partitions drawn" % len(parts))
    leaderless = [p for p in parts if p["data-leader"] == ""]
    check(len(leaderless) == 1 and "noleader" in leaderless[0].get("class", ""),
          "leaderless partitions drawn: %r" % leaderless)
    reps = dom.all(data_role="replica")
    check(len(reps) == 39, "%d replica cells" % len(reps))
    check(not any(r["data-broker"] == "6" for r in reps), "a replica drawn on the removed broker")
    check(all(r["data-replica-role"] == "unknown" and r["data-lag"] == ""
              for r in reps if r["data-broker"] == "4"), "the dead broker's replicas look reported")
    check(any(r["data-lag"] == "3" for r in reps), "no lagging replica drawn")
    groups = {g["data-group"]: g["data-lag"] for g in dom.all(data_role="group")}
    check(groups == {"audit": "3", "billing": "5"}, "groups drawn: %r" % groups)
    check(len(dom.all(data_role="group-partition")) == 3, "group partitions drawn")
    shot = os.path.join(OUT, "status-larger.png")
    chromium(ctx, url, screenshot=shot, budget_ms=2000)
    check_screenshot(shot, {"leader": LEADER_RGB, "alive": ALIVE_RGB, "dead": DEAD_RGB})


class CannedLargeManager(CannedManager):
    """The same with 1,300 partitions: more than the page describes."""

    managers, brokers, topics = canned_cluster((("clicks", 600), ("orders", 400),
                                                ("payments-eu", 300)))
    described = []


def test_many_partitions(ctx):
    """Past DETAIL_PARTITIONS the page draws every topic's counts and the
    grid of the topics opened only (#open=...), and describes no other."""
    os.makedirs(OUT, exist_ok=True)
    url = serve(ctx, CannedLargeManager)
    dom = load_dom(ctx, url, "many", budget_ms=2000)
    check(dom.body().get("data-state") == "ok", "state %r" % dom.body().get("data-state"))
    topics = {t["data-topic"]: t for t in dom.all(data_role="topic")}
    check(sorted(topics) == ["clicks", "orders", "payments-eu"], "topics drawn: %r" % sorted(topics))
    want = {n: (s["number_of_partitions"], s["leaderless"], s["lagging"])
            for n, s in ((s["topic"], s) for s in topics_summary(CannedLargeManager.topics)["topics"])}
    got = {n: (int(t["data-partitions"]), int(t["data-leaderless"]), int(t["data-lagging"]))
           for n, t in topics.items()}
    check(got == want, "topic counts drawn %r, the API's %r" % (got, want))
    check(want["orders"][1] == 1 and want["clicks"][2] > 0, "the canned counts changed: %r" % want)
    check(all(t["data-open"] == "false" for t in topics.values()), "a topic drawn open: %r" % topics)
    check(not dom.all(data_role="partition"), "partitions drawn with no topic open")
    check(len(dom.all(data_role="toggle")) == 3, "no button to open each topic")
    check(CannedLargeManager.described == [], "topics described: %r" % CannedLargeManager.described[:5])
    check("1,300 partitions" in dom.text() or "1300 partitions" in dom.text(),
          "the partition count is not shown: %r" % dom.text()[:600])
    check(dom.one(data_role="health")["data-health"] == "degraded", "health is not degraded")
    # One topic opened by the address: its grid, and only its description.
    dom = load_dom(ctx, url + "#open=payments-eu", "many-open", budget_ms=2000)
    topics = {t["data-topic"]: t for t in dom.all(data_role="topic")}
    check({n: t["data-open"] for n, t in topics.items()} ==
          {"clicks": "false", "orders": "false", "payments-eu": "true"},
          "topics open: %r" % {n: t["data-open"] for n, t in topics.items()})
    parts = dom.all(data_role="partition")
    check(len(parts) == 300, "%d partitions drawn for the open topic of 300" % len(parts))
    check(set(CannedLargeManager.described) == {"payments-eu"},
          "topics described: %r" % sorted(set(CannedLargeManager.described)))
    shot = os.path.join(OUT, "status-many.png")
    chromium(ctx, url + "#open=payments-eu", screenshot=shot, budget_ms=2000)
    check_screenshot(shot, {"leader": LEADER_RGB, "alive": ALIVE_RGB})


if __name__ == "__main__":
    run_suite("ui", [
        test_status_page,
        test_unreachable,
        test_larger_cluster,
        test_many_partitions,
    ], requires=requires, binary="manager", ports=(31000, 31999))

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
With managers sampling every 500 ms, after bursts produced over several
samples it must show each topic's records and bytes in the window exactly,
a positive rate for a topic being produced to, and a sparkline of both per
topic; a group's generation, member and committed offset, high watermark
and lag per partition as the API gives them; and the record browser (opened
by a link: #records=TOPIC/P, #records=TOPIC/P@OFFSET&n=N) the latest
records of a partition, three from an offset, and none past the end, with
a key and a value that hold markup shown as text.
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
import time
import zlib

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(os.path.dirname(HERE))
sys.path.insert(0, os.path.join(REPO, "tests", "integration"))

from harness import check, run_suite, wait_until  # noqa: E402
from test_manager import Cluster, Unreachable, call, check_ok  # noqa: E402

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
MESSAGES_AREA_RGB = (0xC9, 0xE8, 0xF3)  # svg.sparkline .area-messages
BYTES_AREA_RGB = (0xF6, 0xD5, 0xE8)  # svg.sparkline .area-bytes

CHROMIUM_FLAGS = [
    "--headless=new", "--no-sandbox", "--disable-gpu", "--no-first-run",
    "--disable-background-networking", "--disable-sync", "--disable-component-update",
    "--disable-default-apps", "--disable-extensions", "--disable-breakpad",
    "--disable-domain-reliability", "--no-default-browser-check", "--no-pings",
    "--disable-features=Translate,MediaRouter,OptimizationHints,AutofillServerCommunication",
    "--hide-scrollbars", "--mute-audio",
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


def chromium(ctx, url, screenshot=None, budget_ms=5000, height=HEIGHT):
    """Loads @url in a fresh headless profile, lets the page run for
    @budget_ms of virtual time and returns the DOM, or writes a screenshot
    (WIDTH x @height) to @screenshot."""
    profile = os.path.join(ctx.dir, "chromium-profile-%d" % len(os.listdir(ctx.dir)))
    argv = [chromium_path()] + CHROMIUM_FLAGS + [
        "--user-data-dir=" + profile, "--virtual-time-budget=%d" % budget_ms,
        "--window-size=%d,%d" % (WIDTH, height)]
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


VOID = {"area", "base", "br", "col", "embed", "hr", "img", "input", "link", "meta", "param",
        "source", "track", "wbr"}


class Dom(html.parser.HTMLParser):
    """Every element's tag and attributes, in document order, each with the
    text inside it (its "_text") and its child elements' tags ("_tags")."""

    def __init__(self, text):
        super().__init__(convert_charrefs=True)
        self.raw = text
        self.elements = []
        self.texts = []
        self.open = []
        self.feed(text)

    def handle_starttag(self, tag, attrs):
        a = dict(attrs)
        a["_text"] = ""
        a["_tags"] = []
        if self.open:
            self.open[-1]["_tags"].append(tag)
        self.elements.append((tag, a))
        if tag not in VOID:
            self.open.append(a)

    def handle_startendtag(self, tag, attrs):
        self.handle_starttag(tag, attrs)
        if tag not in VOID:
            self.open.pop()

    def handle_endtag(self, tag):
        if tag not in VOID and self.open:
            self.open.pop()

    def handle_data(self, data):
        self.texts.append(data)
        for a in self.open:
            a["_text"] += data

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


def check_screenshot(path, must_have, height=HEIGHT):
    """A real WIDTHx@height picture, not blank, showing @must_have colours
    ({name: rgb}) over at least a few hundred pixels each."""
    w, h, colours = png_decode(path)
    check((w, h) == (WIDTH, height), "%s is %dx%d, not %dx%d" % (path, w, h, WIDTH, height))
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


# ---- Traffic, groups and records in the real cluster ------------------------

SAMPLE_MS = 500  # --traffic-sample-ms: 120 samples are a minute.


def traffic_of(c, i, topic):
    st, obj, _ = call(c.m_http[i], "GET", "/admin/topics/%s/traffic" % topic, timeout=5,
                      headers=c.admin)
    check_ok(st, obj, "traffic of %s" % topic)
    return obj


def read_records(c, topic, p, offset, n):
    st, obj, _ = call(c.m_http[1], "GET", "/v1/topics/%s/partitions/%d/records" % (topic, p),
                      query={"offset": offset, "max": n}, timeout=10, headers=c.admin)
    check_ok(st, obj, "read %s/%d at %d" % (topic, p, offset))
    return obj


def check_records_dom(dom, want, topic, p, hw, state="ok"):
    """The record browser shows @want (records as the API reads them) of
    @topic's partition @p, its keys and values as text."""
    box = dom.one(id="records")
    check(box["data-state"] == state and box["data-topic"] == topic and
          box["data-partition"] == str(p) and box["data-hw"] == str(hw),
          "record browser %r" % {k: v for k, v in box.items() if k.startswith("data-")})
    rows = dom.all(data_role="record")
    check([int(r["data-offset"]) for r in rows] == [r["offset"] for r in want],
          "offsets shown %r, want %r" % ([r["data-offset"] for r in rows],
                                         [r["offset"] for r in want]))
    values = dom.all(data_field="value")
    keys = dom.all(data_field="key")
    times = dom.all(data_field="timestamp")
    for r, v, k, t in zip(want, values, keys, times):
        check(v["_text"] == r["value"] and not v["_tags"],
              "offset %d: value shown %r (elements %r), want %r" % (
                  r["offset"], v["_text"], v["_tags"], r["value"]))
        if r["key"] is None:
            check("data-null" in k, "offset %d: a key shown for none: %r" % (r["offset"], k))
        else:
            check(k["_text"] == r["key"] and not k["_tags"] and "data-null" not in k,
                  "offset %d: key shown %r, want %r" % (r["offset"], k["_text"], r["key"]))
        check(t["data-ms"] == str(r["timestamp_ms"]), "offset %d: time %r, want %r" % (
            r["offset"], t["data-ms"], r["timestamp_ms"]))


def test_traffic_groups_records(ctx):
    """Messages/s and bytes/s drawn from the leader's samples, a group's
    members, generation and lag per partition, and the record browser: the
    latest records, an offset search, an offset past the end, and markup in
    a key and a value shown as text."""
    os.makedirs(OUT, exist_ok=True)
    c = Cluster(ctx, n_managers=3, n_brokers=3, admin_token=TOKEN,
                manager_args=["--traffic-sample-ms", str(SAMPLE_MS)]).start()
    leader = c.wait_leader()
    topic, live, quiet = "orders", "live", "quiet"
    for t, n in ((topic, 2), (live, 1), (quiet, 1)):
        c.create_topic(1, t, n)
        c.wait_topic_led(t)
    producer = c.register(1, "producer", topic)

    # Three bursts, each counted in a sample before the next goes.
    produced = n_bytes = 0
    for burst in range(3):
        for k in range(8 + 4 * burst):
            value = "burst %d message %d" % (burst, k)
            c.produce(1 + k % 3, topic, producer, value, partition_id=k % 2)
            produced += 1
            n_bytes += len(value)
        want = produced

        def counted(want=want):
            ss = traffic_of(c, leader, topic)["samples"]
            return sum(x["records"] for x in ss) == want and \
                sum(1 for x in ss if x["records"]) >= burst + 1
        wait_until(counted, 20, "burst %d counted in its own sample" % burst, interval=0.1)
    # The last record of partition 1 holds markup, in its key and value.
    markup_key, markup_value = "<i>k</i>", "<b>x</b>"
    c.produce(2, topic, producer, markup_value, partition_id=1, key=markup_key)
    produced += 1
    n_bytes += len(markup_key) + len(markup_value)
    wait_until(lambda: sum(x["bytes"] for x in traffic_of(c, leader, topic)["samples"]) == n_bytes,
               20, "every byte counted")

    # A group of one member (a long session) that committed 3 records of
    # partition 0 and none of partition 1.
    st, joined, _ = call(c.m_http[2], "POST", "/v1/groups/billing/join",
                         {"topic": topic, "session_timeout_ms": 300000}, headers=c.admin)
    check_ok(st, joined, "join")
    st, obj, _ = call(c.m_http[3], "POST", "/v1/groups/billing/commit",
                      {"member_id": joined["member_id"], "generation": joined["generation"],
                       "offsets": [{"partition_id": 0, "offset": 3}]}, headers=c.admin)
    check_ok(st, obj, "group commit")
    hws = {}

    def group_settled():
        st, g, _ = call(c.m_http[1], "GET", "/v1/groups/billing", timeout=5, headers=c.admin)
        check_ok(st, g, "describe billing")
        hws.update({o["partition_id"]: o["high_watermark"] for o in g["offsets"]})
        return sum(hws.values()) == produced and g
    group = wait_until(group_settled, 20, "the group's high watermarks to count every record")
    check({o["partition_id"]: o["lag"] for o in group["offsets"]} == {0: hws[0] - 3, 1: hws[1]},
          "group offsets %r" % group["offsets"])

    # A consumer of the queue API that read one record of partition 0 and
    # one bound to partition 1 that read none: the consumers' table.
    reader = c.register(2, "consumer", topic)
    check(c.consume(2, topic, reader, partition_id=0) is not None, "nothing to consume")
    bound = c.register(3, "consumer", topic, partition=1)

    # A producer keeps the third topic busy while the page is open.
    stop = threading.Event()

    def keep_producing():
        k = 0
        while not stop.is_set():
            try:
                call(c.m_http[1 + k % 3], "POST", "/producer/produce",
                     {"topic": live, "producer_id": producer_live, "message": "tick %d" % k},
                     timeout=5)
            except Unreachable:
                pass
            k += 1
            time.sleep(0.02)
    producer_live = c.register(1, "producer", live)
    busy = threading.Thread(target=keep_producing, daemon=True)
    busy.start()
    ctx.cleanups.append(busy.join)
    ctx.cleanups.append(stop.set)
    wait_until(lambda: (lambda ss: ss and ss[-1]["messages_per_s"] > 0)(
        traffic_of(c, leader, live)["samples"]), 20, "the live topic's rate")

    page = 1 if leader != 1 else 2
    url = "http://%s/ui" % c.m_http[page]
    dom = load_dom(ctx, url + "#records=%s/1&token=%s" % (topic, TOKEN), "traffic")
    check(dom.body().get("data-state") == "ok", "page state %r" % dom.body().get("data-state"))

    # Traffic: every shown topic has a line; orders' window holds the three
    # bursts and the markup record, its peak a positive rate; live's
    # newest sample a positive rate; quiet is flat.
    lines = {t["data-topic"]: t for t in dom.all(data_role="traffic")}
    check(sorted(lines) == sorted([topic, live, quiet]), "traffic lines for %r" % sorted(lines))
    o = lines[topic]
    check(int(o["data-samples"]) >= 4 and int(o["data-records"]) == produced and
          int(o["data-bytes"]) == n_bytes and float(o["data-peak-messages-per-s"]) > 0 and
          float(o["data-peak-bytes-per-s"]) > 0 and o["data-uncounted"] == "0",
          "the orders line %r, produced %d records of %d bytes" % (
              {k: v for k, v in o.items() if k.startswith("data-")}, produced, n_bytes))
    check(float(lines[live]["data-messages-per-s"]) > 0 and
          float(lines[live]["data-bytes-per-s"]) > 0,
          "the live topic's rates %r" % {k: v for k, v in lines[live].items() if k.startswith("data-")})
    check("msg/s" in o["_text"] and "B/s" in o["_text"], "no rates in %r" % o["_text"])
    q = lines[quiet]
    check(int(q["data-samples"]) > 0 and q["data-records"] == "0" and
          q["data-peak-messages-per-s"] == "0", "the quiet line %r" % q)
    # Two sparklines a topic, in the topics' order, a point a sample.
    sparks = dom.all(data_role="sparkline")
    order = [t["data-topic"] for t in dom.all(data_role="topic")]
    check(len(sparks) == 2 * len(order) and
          [s["data-kind"] for s in sparks] == ["messages", "bytes"] * len(order),
          "sparklines drawn: %r" % [(s.get("data-kind"), s.get("data-points")) for s in sparks])
    for i, t in enumerate(order):
        for s in sparks[2 * i:2 * i + 2]:
            check(s["data-points"] == lines[t]["data-samples"] and s["_tags"].count("polyline") == 1,
                  "%s's %s sparkline: %r points, %r, for %s samples" % (
                      t, s["data-kind"], s["data-points"], s["_tags"], lines[t]["data-samples"]))

    # The group: its generation, member and each partition's offsets.
    g = dom.one(data_role="group", data_group="billing")
    check(g["data-generation"] == str(group["generation"]) and g["data-members"] == "1" and
          g["data-lag"] == str(hws[0] - 3 + hws[1]), "group drawn %r" % g)
    rows = {r["data-partition"]: r for r in dom.all(data_role="group-partition")}
    for off in group["offsets"]:
        r = rows[str(off["partition_id"])]
        check((r["data-committed"], r["data-hw"], r["data-lag"], r["data-member"]) ==
              (str(off["committed"]), str(off["high_watermark"]), str(off["lag"]),
               joined["member_id"]), "partition %d of the group drawn %r, the API says %r"
              % (off["partition_id"], r, off))
    check(joined["member_id"] in g["_text"] and "generation %d" % group["generation"] in g["_text"],
          "the group's text: %r" % g["_text"][:300])

    # The consumers, newest first, with their lag by the same high
    # watermarks.
    readers = dom.all(data_role="consumer")
    got = [(r["data-consumer"], r["data-topic"], r["data-lag"]) for r in readers
           if r["data-topic"] == topic]
    check(got == [(str(bound), topic, str(hws[1])), (str(reader), topic, str(produced - 1))],
          "the consumers drawn %r (produced %d, partition 1 holds %d)" % (got, produced, hws[1]))
    check("all" in readers[[r["data-consumer"] for r in readers].index(str(reader))]["_text"],
          "an unbound consumer is not shown as reading every partition")

    # The latest records of partition 1: the markup is text, not elements.
    want = read_records(c, topic, 1, max(0, hws[1] - 20), 20)["records"]
    check(want[-1]["value"] == markup_value and want[-1]["key"] == markup_key,
          "the last record read back %r" % want[-1])
    check_records_dom(dom, want, topic, 1, hws[1])
    check("&lt;b&gt;x&lt;/b&gt;" in dom.raw and "<b>x</b>" not in dom.raw and
          "<i>k</i>" not in dom.raw, "the markup was parsed as HTML")
    shot = os.path.join(OUT, "status-traffic.png")
    chromium(ctx, url + "#records=%s/1&token=%s" % (topic, TOKEN), screenshot=shot, height=2000)
    check_screenshot(shot, {"leader": LEADER_RGB, "alive": ALIVE_RGB,
                            "messages sparkline": MESSAGES_AREA_RGB,
                            "bytes sparkline": BYTES_AREA_RGB}, height=2000)

    # An offset search: three records from offset 2.
    dom = load_dom(ctx, url + "#records=%s/1@2&n=3&token=%s" % (topic, TOKEN), "records-offset")
    check_records_dom(dom, read_records(c, topic, 1, 2, 3)["records"], topic, 1, hws[1])
    check("offsets 2 to 4" in dom.one(id="records")["_text"], "the search's line: %r"
          % dom.one(id="records")["_text"][:200])
    # Past the end: none, and the high watermark said.
    dom = load_dom(ctx, url + "#records=%s/1@999&token=%s" % (topic, TOKEN), "records-end")
    check_records_dom(dom, [], topic, 1, hws[1], state="end")
    check("No record at offset 999" in dom.one(id="records")["_text"],
          "past the end: %r" % dom.one(id="records")["_text"][:200])


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


def canned_traffic(topic, now_ms, since=0):
    """A leader's series of 40 samples of @topic, 5 s apart up to @now_ms:
    clicks busy and waving, orders one burst, payments-eu idle, with two
    partitions not counted yet and a manager's bytes missing at the end."""
    samples = []
    start = now_ms - 41 * 5000
    for k in range(1, 41):
        if topic == "clicks":
            records = 200 + (k % 10) * 40
        elif topic == "orders":
            records = 600 if k in (30, 31) else 0
        else:
            records = 0
        n_bytes = records * 120
        samples.append({"time_ms": start + k * 5000, "interval_ms": 5000, "records": records,
                        "bytes": n_bytes, "messages_per_s": records / 5.0,
                        "bytes_per_s": n_bytes / 5.0,
                        "bytes_from": 2 if topic == "clicks" and k == 40 else 3, "managers": 3})
    return {"topic": topic, "sample_ms": 5000, "window_ms": 600000, "manager": 3,
            "series_start_ms": start, "partitions_uncounted": 2 if topic == "clicks" else 0,
            "samples": [x for x in samples if x["time_ms"] > since]}


class CannedManager(http.server.BaseHTTPRequestHandler):
    """Serves the page and canned admin answers, and notes the topics it
    was asked to describe and the traffic it was asked for."""

    managers, brokers, topics = canned_cluster()
    described = []
    traffic_asked = []
    now_ms = int(time.time() * 1000)
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
        elif path.startswith("/admin/topics/") and path.endswith("/traffic") and \
                path[14:-8] in self.topics:
            self.traffic_asked.append(path[14:-8])
            q = self.path.split("?", 1)[1] if "?" in self.path else ""
            since = int(q[6:]) if q.startswith("since=") else 0
            obj = canned_traffic(path[14:-8], self.now_ms, since)
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
    # Traffic: each topic's newest rates, its window's sums and peaks, and
    # what the leader could not count yet.
    lines = {t["data-topic"]: t for t in dom.all(data_role="traffic")}
    for name in ("clicks", "orders", "payments-eu"):
        want = canned_traffic(name, CannedManager.now_ms)["samples"]
        got = lines[name]
        check((int(got["data-samples"]), int(got["data-records"]), int(got["data-bytes"]),
               float(got["data-messages-per-s"]), float(got["data-peak-messages-per-s"])) ==
              (40, sum(x["records"] for x in want), sum(x["bytes"] for x in want),
               want[-1]["messages_per_s"], max(x["messages_per_s"] for x in want)),
              "%s's traffic line %r" % (name, {k: v for k, v in got.items()
                                               if k.startswith("data-")}))
    check("2 partitions not counted yet; bytes from 2 of 3 managers" in lines["clicks"]["_text"],
          "the clicks line does not say what is missing: %r" % lines["clicks"]["_text"])
    check("(" not in lines["orders"]["_text"], "notes on the orders line: %r"
          % lines["orders"]["_text"])
    check("1,200 records, 140.6 KiB in the series so far" in lines["orders"]["_text"],
          "the orders line: %r" % lines["orders"]["_text"])
    shot = os.path.join(OUT, "status-larger.png")
    chromium(ctx, url, screenshot=shot, budget_ms=2000)
    check_screenshot(shot, {"leader": LEADER_RGB, "alive": ALIVE_RGB, "dead": DEAD_RGB,
                            "messages sparkline": MESSAGES_AREA_RGB,
                            "bytes sparkline": BYTES_AREA_RGB})


class CannedLargeManager(CannedManager):
    """The same with 1,300 partitions: more than the page describes."""

    managers, brokers, topics = canned_cluster((("clicks", 600), ("orders", 400),
                                                ("payments-eu", 300)))
    described = []
    traffic_asked = []


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
    # Traffic costs no description: every topic shown has its line.
    check(set(CannedLargeManager.traffic_asked) == {"clicks", "orders", "payments-eu"} and
          len(dom.all(data_role="traffic")) == 3, "traffic asked for %r"
          % sorted(set(CannedLargeManager.traffic_asked)))
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
        test_traffic_groups_records,
        test_unreachable,
        test_larger_cluster,
        test_many_partitions,
    ], requires=requires, binary="manager", ports=(31000, 31999))

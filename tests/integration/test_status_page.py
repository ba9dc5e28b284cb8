"""Integration test of the status page's route (/ui) on one manager.

The page itself is judged in a browser by make test-ui (tests/ui/test_ui.py);
this suite, part of make test, needs no browser: it checks that a manager
serves the page exactly as manager/ui/index.html holds it, as HTML that is
never cached, without the admin token the data behind it needs, and that
the file loads nothing from elsewhere. Needs no root. Run:
python3 tests/integration/test_status_page.py [--build DIR] [--ports LO-HI].
"""

import http.client
import os
import re
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from harness import check, run_suite, wait_until  # noqa: E402
from test_manager import Cluster, Unreachable, call  # noqa: E402

PAGE = os.path.join(os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))),
                    "manager", "ui", "index.html")
TOKEN = "page-token"


def get(addr, method, path):
    host, port = addr.rsplit(":", 1)
    conn = http.client.HTTPConnection(host, int(port), timeout=10)
    try:
        conn.request(method, path)
        r = conn.getresponse()
        return r.status, {k.lower(): v for k, v in r.getheaders()}, r.read()
    finally:
        conn.close()


def test_page_served(ctx):
    with open(PAGE, "rb") as f:
        want = f.read()
    c = Cluster(ctx, n_managers=1, n_brokers=0, admin_token=TOKEN).start(wait=False)
    addr = c.m_http[1]

    def up():
        try:
            return get(addr, "GET", "/healthz")[0] == 200
        except (OSError, http.client.HTTPException):
            return False
    wait_until(up, 20, "manager1 to answer")
    for path in ("/ui", "/ui/", "/ui?refresh=1"):
        st, hdr, body = get(addr, "GET", path)
        check(st == 200, "GET %s: %d" % (path, st))
        check(hdr.get("content-type") == "text/html; charset=utf-8",
              "GET %s: Content-Type %r" % (path, hdr.get("content-type")))
        check(hdr.get("cache-control") == "no-cache",
              "GET %s: Cache-Control %r" % (path, hdr.get("cache-control")))
        check("connect-src 'self'" in hdr.get("content-security-policy", ""),
              "GET %s: Content-Security-Policy %r" % (path, hdr.get("content-security-policy")))
        check(body == want, "GET %s: %d bytes, not the %d of %s (stale build?)"
              % (path, len(body), len(want), PAGE))
    check(get(addr, "POST", "/ui")[0] == 405, "POST /ui is not 405")
    check(get(addr, "GET", "/ui/x")[0] == 404, "GET /ui/x is not 404")
    # The data behind the page keeps its token.
    try:
        st, _, _ = call(addr, "GET", "/admin/managers", timeout=5)
    except Unreachable as e:
        check(False, str(e))
    check(st == 401, "/admin/managers without the token: %d" % st)
    st, obj, _ = call(addr, "GET", "/admin/managers", timeout=5,
                      headers={"Authorization": "Bearer " + TOKEN})
    check(st == 200 and obj["self"] == 1, "/admin/managers with the token: %d %r" % (st, obj))
    # One self-contained file: no outside scripts, styles, fonts or images.
    text = want.decode("utf-8")
    for pattern in (r"<script[^>]*\bsrc=", r"<link\b", r"@import", r"url\(", r"<img\b",
                    r"<iframe\b"):
        check(re.search(pattern, text, re.I) is None, "the page has %r" % pattern)


if __name__ == "__main__":
    run_suite("status_page", [test_page_served], binary="manager", ports=(31900, 31999))

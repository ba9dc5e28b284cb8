"""Integration tests of how manager, broker and atm start with their secrets.

Each binary refuses to start with no cluster secret, one shorter than 32
bytes, the built-in value of earlier releases (raftq-dev-secret) and a
placeholder left from a template (REPLACE-ME...): exit status 2, one line
on stderr naming --cluster-secret. Each starts with
the secret read from a file (--cluster-secret-file, trailing newline
stripped, or RAFTQ_CLUSTER_SECRET_FILE), and refuses a file that cannot be
read or is empty, a short secret in a file, and the secret given twice (as
a value and as a file). The manager reads its admin token from
--admin-token-file, and the admin API then wants that token. --help shows
no default secret.

Needs no root (the unreadable-file case is skipped visibly as root, who
reads any file). Run: python3 tests/integration/test_startup.py [--build
DIR] [-k NAME] [--ports LO-HI].
"""

import http.client
import os
import subprocess
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from harness import SANITIZER_RE, check, run_suite, wait_until  # noqa: E402
from rqkeys import TEST_SECRET  # noqa: E402
from test_manager import Unreachable, call  # noqa: E402

KINDS = ("manager", "broker", "atm")
REFUSE_TIMEOUT = 30.0  # A refusal comes before anything starts, even under ASan.
BAD_SECRETS = {
    "short": "s3cret-of-31-bytes-0123456789ab",
    "built-in default": "raftq-dev-secret",
    "placeholder": "REPLACE-ME-with-32-or-more-random-bytes",
    "placeholder in lower case": "replace-me-with-32-or-more-random-bytes",
}


def binary(ctx, kind):
    return os.path.join(os.path.dirname(ctx.binary), kind)


def clean_env(ctx):
    """The test's environment without any RAFTQ_ variable, so that only
    what a case gives reaches the process."""
    return {k: v for k, v in ctx.env.items() if not k.startswith("RAFTQ_")}


def base_argv(ctx, kind, name):
    """Every flag @kind needs except the secret, on fresh ports and data."""
    data = os.path.join(ctx.dir, name)
    os.makedirs(data, exist_ok=True)
    raft = "127.0.0.1:%d" % ctx.ports.take()
    argv = [binary(ctx, kind), "--id", "1", "--data", data, "--log-level", ctx.opts.log_level]
    if kind == "manager":
        argv += ["--peers", "1=" + raft, "--http-addr", "127.0.0.1:%d" % ctx.ports.take()]
    elif kind == "broker":
        argv += ["--raft-addr", raft, "--http-addr", "127.0.0.1:%d" % ctx.ports.take()]
    else:
        argv += ["--peers", "1=" + raft]
    return argv


def refused(ctx, kind, extra, says, env=None, what=""):
    """Runs @kind with @extra flags; checks it exits 2 with one line on
    stderr that names @says."""
    argv = base_argv(ctx, kind, "%s-refused-%d" % (kind, ctx.ports.take()))
    p = subprocess.run(argv + list(extra), env=env or clean_env(ctx), capture_output=True,
                       stdin=subprocess.DEVNULL, timeout=REFUSE_TIMEOUT)
    err = p.stderr.decode("utf-8", "replace")
    lines = [line for line in err.splitlines() if line.strip()]
    label = "%s %s" % (kind, what or " ".join(extra))
    check(not SANITIZER_RE.search(err), "%s: sanitizer report: %s" % (label, err))
    check(p.returncode == 2, "%s: exit %d, not 2 (stderr %r)" % (label, p.returncode, err))
    check(len(lines) == 1 and lines[0].startswith(kind + ": "),
          "%s: not one line starting %r: %r" % (label, kind + ": ", err))
    check(says in lines[0], "%s: %r does not name %r" % (label, lines[0], says))
    return lines[0]


def write(ctx, name, text, mode=0o600):
    path = os.path.join(ctx.dir, name)
    with open(path, "w") as f:
        f.write(text)
    os.chmod(path, mode)
    return path


def get(addr, path, headers=None):
    host, port = addr.rsplit(":", 1)
    conn = http.client.HTTPConnection(host, int(port), timeout=5)
    try:
        conn.request("GET", path, headers=headers or {})
        return conn.getresponse().status
    finally:
        conn.close()


def started(ctx, kind, extra, env=None):
    """Starts @kind with @extra flags and waits until it serves (HTTP
    /healthz, or an ATM's answer to 'status'); returns the process and its
    HTTP address (None for an ATM)."""
    argv = base_argv(ctx, kind, "%s-started-%d" % (kind, ctx.ports.take())) + list(extra)
    if kind == "manager" and not any(a.startswith("--admin-") for a in extra):
        argv.append("--admin-open")  # A manager needs an admin token or this.
    if kind == "atm":
        proc = ctx.atm(len(ctx.procs) + 1, argv)
    else:
        proc = ctx.daemon(kind, len(ctx.procs) + 1, argv)
    saved = ctx.env
    ctx.env = env or clean_env(ctx)
    try:
        proc.start()
    finally:
        ctx.env = saved
    if kind == "atm":
        wait_until(lambda: proc.cmd("status").startswith("ok"), 30, "%r to answer" % proc)
        return proc, None
    addr = argv[argv.index("--http-addr") + 1]

    def up():
        check(proc.running(), "%r exited: %s" % (proc, proc.log_tail(5)))
        try:
            return get(addr, "/healthz") == 200
        except OSError:
            return False
    wait_until(up, 30, "%r to answer /healthz" % proc)
    return proc, addr


# ---- The tests -----------------------------------------------------------------


def test_refuses_unusable_secrets(ctx):
    for kind in KINDS:
        line = refused(ctx, kind, [], "--cluster-secret", what="without a secret")
        check("required" in line, "%s without a secret: %r" % (kind, line))
        for what, secret in BAD_SECRETS.items():
            refused(ctx, kind, ["--cluster-secret", secret], "--cluster-secret", what=what)
        # The same from the environment, and an empty value is no value.
        env = clean_env(ctx)
        env["RAFTQ_CLUSTER_SECRET"] = "raftq-dev-secret"
        refused(ctx, kind, [], "--cluster-secret", env=env, what="default in the environment")
        env["RAFTQ_CLUSTER_SECRET"] = ""
        refused(ctx, kind, [], "required", env=env, what="empty in the environment")
        refused(ctx, kind, ["--cluster-secret="], "required", what="--cluster-secret=")


def test_default_partitions_range(ctx):
    """A manager refuses a --default-partitions out of 1-1024."""
    secret = ["--cluster-secret", TEST_SECRET]
    for bad in ("0", "1025", "x"):
        refused(ctx, "manager", secret + ["--default-partitions", bad], "--default-partitions")


def test_secret_from_file(ctx):
    good = write(ctx, "good-secret", TEST_SECRET + "\n")
    for kind in KINDS:
        p, _ = started(ctx, kind, ["--cluster-secret-file", good])
        check(p.terminate() == 0, "%r did not stop cleanly" % p)
        env = clean_env(ctx)
        env["RAFTQ_CLUSTER_SECRET_FILE"] = good
        p, _ = started(ctx, kind, [], env=env)
        check(p.terminate() == 0, "%r did not stop cleanly" % p)


def test_secret_file_refused(ctx):
    good = write(ctx, "good-secret", TEST_SECRET)
    empty = write(ctx, "empty-secret", "\n")
    short = write(ctx, "short-secret", "only-twenty-bytes-xx\n")
    placeholder = write(ctx, "placeholder-secret", "REPLACE-ME-" + "x" * 40 + "\n")
    missing = os.path.join(ctx.dir, "no-such-file")
    for kind in KINDS:
        line = refused(ctx, kind, ["--cluster-secret-file", missing], "--cluster-secret-file")
        check(missing in line and "cannot open" in line, "%s: %r" % (kind, line))
        refused(ctx, kind, ["--cluster-secret-file", empty], "is empty")
        refused(ctx, kind, ["--cluster-secret-file", ctx.dir], "cannot read")
        refused(ctx, kind, ["--cluster-secret-file", short], "--cluster-secret")
        refused(ctx, kind, ["--cluster-secret-file", placeholder], "placeholder")
        refused(ctx, kind, ["--cluster-secret", TEST_SECRET, "--cluster-secret-file", good],
                "not both")
        env = clean_env(ctx)
        env["RAFTQ_CLUSTER_SECRET"] = TEST_SECRET
        env["RAFTQ_CLUSTER_SECRET_FILE"] = good
        refused(ctx, kind, [], "not both", env=env, what="both in the environment")
    if os.geteuid() == 0:
        print("    SKIP unreadable file: root reads a file of mode 0000", flush=True)
        return
    unreadable = write(ctx, "unreadable-secret", TEST_SECRET, mode=0)
    for kind in KINDS:
        line = refused(ctx, kind, ["--cluster-secret-file", unreadable], "--cluster-secret-file")
        check("Permission denied" in line, "%s: %r" % (kind, line))


def test_admin_token_file(ctx):
    token = "admin-token-from-a-file-0123456789"
    path = write(ctx, "admin-token", token + "\n")
    p, addr = started(ctx, "manager", ["--cluster-secret", TEST_SECRET,
                                       "--admin-token-file", path])

    def status(headers=None):
        try:
            return call(addr, "GET", "/admin/managers", timeout=5, headers=headers)[0]
        except Unreachable:
            return None
    check(status() == 401, "/admin/managers without the token: %r" % status())
    st = wait_until(lambda: status({"Authorization": "Bearer " + token}) == 200 or None, 20,
                    "the admin API to take the token from the file")
    check(st, "the token from the file was refused")
    check(status({"Authorization": "Bearer " + token + "x"}) == 401,
          "another token was taken")
    check(p.terminate() == 0, "%r did not stop cleanly" % p)
    empty = write(ctx, "empty-token", "")
    refused(ctx, "manager", ["--cluster-secret", TEST_SECRET, "--admin-token-file", empty],
            "--admin-token-file")


def test_help_shows_no_default_secret(ctx):
    for kind in KINDS:
        p = subprocess.run([binary(ctx, kind), "--help"], capture_output=True, timeout=30,
                           env=clean_env(ctx))
        out = p.stdout.decode()
        check(p.returncode == 0, "%s --help: exit %d" % (kind, p.returncode))
        check("raftq-dev-secret" not in out, "%s --help shows the old default" % kind)
        check("--cluster-secret-file" in out, "%s --help lacks --cluster-secret-file" % kind)
        if kind == "manager":
            check("--admin-token-file" in out and "--admin-open" in out,
                  "manager --help lacks --admin-token-file or --admin-open")


if __name__ == "__main__":
    run_suite("startup", [test_refuses_unusable_secrets, test_secret_from_file,
                          test_secret_file_refused, test_admin_token_file,
                          test_help_shows_no_default_secret, test_default_partitions_range],
              binary="manager", ports=(32100, 32299))

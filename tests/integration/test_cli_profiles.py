"""Integration tests of raftq's profiles and shell completion.

One test starts `raftq dev` and drives a profile end to end: with
RAFTQ_CONFIG pointing at a file under a directory that does not exist yet
and no RAFTQ_MANAGERS, `profile create` and `profile use` make `topic
list` reach the cluster; an option, an environment variable, --profile and
RAFTQ_PROFILE each win over what ranks below them; a profile name the file
does not hold and a malformed file are clear errors (exit 2, the file
named); the file has mode 0600 and the directories made for it 0700; the
token is never printed. The others need no cluster: where the file is
($XDG_CONFIG_HOME, else ~/.config), what each profile command prints and
exits with, a file of a wider mode put back to 0600, no temporary file
left; and the completion scripts run in bash (COMPREPLY for commands,
subcommands, options and profile names) and in zsh when zsh is installed
(skipped visibly when not).

Needs no root. Run: python3 tests/integration/test_cli_profiles.py
[--build DIR] [-k NAME] [--ports LO-HI].
"""

import json
import os
import shutil
import signal
import stat
import subprocess
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from harness import SANITIZER_RE, Skip, check, run_suite  # noqa: E402
from test_cli import Cli, Dev, check_child_logs, port_block  # noqa: E402

# Variables that would rank above a profile, or choose another file.
CLEARED = ("RAFTQ_MANAGERS", "RAFTQ_TOKEN", "RAFTQ_ADMIN_TOKEN", "RAFTQ_CACERT",
           "RAFTQ_PROFILE", "RAFTQ_CONFIG", "XDG_CONFIG_HOME")
TOKEN = "0123456789abcdef" * 4


def profile_cli(ctx, urls=(), config=None):
    """A Cli whose environment holds none of CLEARED but RAFTQ_CONFIG."""
    cli = Cli(ctx, list(urls))
    for name in CLEARED:
        cli.env.pop(name, None)
    if config is not None:
        cli.env["RAFTQ_CONFIG"] = config
    return cli


def with_env(cli, **kw):
    env = dict(cli.env)
    env.update(kw)
    return env


def mode(path):
    return stat.S_IMODE(os.stat(path).st_mode)


def test_profiles_end_to_end(ctx):
    base = port_block(ctx)
    data = os.path.join(ctx.dir, "data")
    dev = Dev(ctx, data, base).start()
    config = os.path.join(ctx.dir, "home", "cfg", "raftq", "profiles.json")
    cli = profile_cli(ctx, config=config)
    dead = "http://127.0.0.1:%d" % (base + 59)  # In the block; nothing listens.

    ca = os.path.join(ctx.dir, "ca.pem")
    with open(ca, "w") as f:
        f.write("not used: the managers are http://\n")
    # The CA given relative to the current directory is kept absolute.
    p = subprocess.run([ctx.binary, "profile", "create", "dev", "--managers", ",".join(dev.urls),
                        "--token", TOKEN, "--cacert", "ca.pem"], cwd=ctx.dir,
                       capture_output=True, env=cli.env, timeout=60)
    out, err = p.stdout.decode(), p.stderr.decode()
    check(p.returncode == 0 and not SANITIZER_RE.search(err),
          "profile create: %d %r" % (p.returncode, err))
    check("profile 'dev' saved in %s" % config in out, "profile create said %r" % out)
    check(mode(config) == 0o600, "profiles.json has mode %o" % mode(config))
    for d in ("home/cfg", "home/cfg/raftq"):
        path = os.path.join(ctx.dir, d)
        check(mode(path) == 0o700, "%s has mode %o, not 700" % (d, mode(path)))
    with open(config) as f:
        saved = json.load(f)
    check(saved["profiles"]["dev"] == {"managers": ",".join(dev.urls), "token": TOKEN,
                                       "cacert": ca},
          "saved: %r (the CA path absolute)" % saved)
    check("current" not in saved, "create made the profile current: %r" % saved)

    cli.ok("profile", "use", "dev")
    cli.ok("topic", "create", "profiled", "--partitions", "1")
    topics = cli.ok("topic", "list").split()
    check(topics == ["profiled"], "topic list via the profile: %r" % topics)
    check(mode(config) == 0o600, "mode after use: %o" % mode(config))

    # An option, then an environment variable, over the profile.
    cli.fails(3, "topic", "list", "--managers", dead, says="cannot reach any manager")
    cli.fails(3, "topic", "list", env=with_env(cli, RAFTQ_MANAGERS=dead),
              says="cannot reach any manager")
    check("profiled" in cli.ok("topic", "list", "--managers", dev.urls[1]).split(),
          "--managers beside the profile")
    # --profile and RAFTQ_PROFILE over the current profile; the option over
    # the variable.
    cli.ok("profile", "create", "gone", "--managers", dead)
    cli.fails(3, "--profile", "gone", "topic", "list", says="127.0.0.1:%d" % (base + 59))
    cli.fails(3, "topic", "list", env=with_env(cli, RAFTQ_PROFILE="gone"))
    cli.ok("topic", "list", "--profile", "dev", env=with_env(cli, RAFTQ_PROFILE="gone"))

    # A name the file does not hold: exit 2, named, before any request.
    for args, env in ((["--profile", "nope", "topic", "list"], None),
                      (["topic", "list"], with_env(cli, RAFTQ_PROFILE="nope"))):
        err = cli.fails(2, *args, env=env, says="no profile 'nope'")
        check(config in err, "the error does not name the file: %r" % err)
    cli.fails(2, "--profile", "../x", "topic", "list", says="[A-Za-z0-9._-]")

    # The token is never printed, only its mask.
    for args in (["profile", "show"], ["profile", "show", "dev", "--json"],
                 ["profile", "list", "--json"], ["profile", "list"]):
        out = cli.ok(*args)
        check(TOKEN not in out, "%s printed the token: %r" % (args, out))
    shown = json.loads(cli.ok("profile", "show", "--json"))
    check(shown == {"name": "dev", "current": True, "managers": ",".join(dev.urls),
                    "token": "0123... (64 characters)", "cacert": ca, "file": config},
          "profile show --json: %r" % shown)

    # A malformed file stops every command that would read it, with the
    # file named; nothing crashes.
    with open(config) as f:
        good = f.read()
    for text, says in (('{"profiles": {"dev": {"managers": ', "not JSON"),
                       ('{"profiles": {"dev": {"manager": "x"}}}', "unknown member 'manager'"),
                       ('{"current": "prod", "profiles": {}}', "current must name")):
        with open(config, "w") as f:
            f.write(text)
        for args in (["topic", "list"], ["topic", "list", "--managers", dev.urls[0]],
                     ["profile", "list"], ["profile", "use", "dev"]):
            err = cli.fails(2, *args, says=says)
            check("profiles file %s is malformed" % config in err, "%s: %r" % (args, err))
    with open(config, "w") as f:
        f.write(good)
    check("profiled" in cli.ok("topic", "list").split(), "topic list after the repair")

    out = cli.ok("profile", "delete", "dev")
    check("no profile is current now" in out, "delete of the current one: %r" % out)
    check(json.loads(cli.ok("profile", "list", "--json"))["current"] is None, "still current")

    rc = dev.stop(signal.SIGINT)
    check(rc == 0, "raftq dev exited %d" % rc)
    check_child_logs(data)


def test_profile_files_and_commands(ctx):
    home = os.path.join(ctx.dir, "home")
    os.makedirs(home, mode=0o755)
    cli = profile_cli(ctx)
    cli.env["HOME"] = home

    # ~/.config/raftq/profiles.json, or under $XDG_CONFIG_HOME.
    cli.ok("profile", "create", "a", "--managers", "127.0.0.1:1")
    in_home = os.path.join(home, ".config", "raftq", "profiles.json")
    check(os.path.exists(in_home), "no %s" % in_home)
    check(mode(home) == 0o755, "the existing home's mode changed: %o" % mode(home))
    xdg = os.path.join(ctx.dir, "xdg")
    out = cli.ok("profile", "create", "b", "--token", "t", env=with_env(cli, XDG_CONFIG_HOME=xdg))
    check(os.path.join(xdg, "raftq", "profiles.json") in out, "XDG: %r" % out)
    check(cli.ok("profile", "list", "--names") == "a\n", "profiles in ~/.config")
    check(cli.ok("profile", "list", "--names", env=with_env(cli, XDG_CONFIG_HOME=xdg)) == "b\n",
          "profiles under XDG_CONFIG_HOME")

    config = os.path.join(ctx.dir, "p.json")
    cli.env["RAFTQ_CONFIG"] = config
    rc, out, err = cli.run("profile", "list")
    check(rc == 0 and out == "" and "no profiles in %s" % config in err,
          "an empty list: %d %r %r" % (rc, out, err))
    check(json.loads(cli.ok("profile", "list", "--json")) == {"current": None, "profiles": []},
          "an empty list in JSON")
    cli.ok("profile", "create", "prod", "--managers", "https://m1:9500,https://m2:9500")
    cli.ok("profile", "create", "dev", "--managers", "127.0.0.1:9500", "--token", "short")
    cli.fails(1, "profile", "create", "dev", "--managers", "x:1", says="--force replaces it")
    cli.ok("profile", "create", "dev", "--managers", "x:1", "--force")
    cli.fails(2, "profile", "create", "bad", "--managers", "nohost", says="--managers")
    cli.fails(2, "profile", "create", "bad", "--cacert", "/nonexistent/ca.pem",
              says="No such file")
    cli.fails(2, "profile", "create", "bad", "--cacert", ctx.dir, says="not a file")
    cli.fails(1, "profile", "use", "nope", says="no profile 'nope'")
    cli.fails(1, "profile", "delete", "nope", says="no profile 'nope'")
    cli.fails(1, "profile", "show", says="no profile is current")
    cli.ok("profile", "use", "prod")

    # Replaced whole: --force dropped the token.
    shown = json.loads(cli.ok("profile", "show", "dev", "--json"))
    check(shown["managers"] == "x:1" and shown["token"] is None and not shown["current"],
          "after --force: %r" % shown)
    rows = cli.ok("profile", "list").splitlines()
    check([r.split() for r in rows] == [["NAME", "MANAGERS"], ["dev", "x:1"],
                                        ["*", "prod", "https://m1:9500,https://m2:9500"]],
          "profile list: %r" % rows)
    out = cli.ok("profile", "show")
    check(out.splitlines()[0].split() == ["name", "prod", "(current)"]
          and ("file      %s" % config) in out, "profile show: %r" % out)
    cli.fails(1, "profile", "show", "--profile", "nope", says="no profile 'nope'")
    check(cli.ok("profile", "show", "--profile", "dev").splitlines()[0].split()[1] == "dev",
          "profile show --profile")

    # A wider mode is put back at the next write; no temporary file stays.
    os.chmod(config, 0o644)
    cli.ok("profile", "use", "dev")
    check(mode(config) == 0o600, "mode after a rewrite: %o" % mode(config))
    left = [n for n in os.listdir(ctx.dir) if n.startswith("p.json.")]
    check(left == [], "temporary files left: %r" % left)

    # The file cannot be read: exit 2, named.
    os.chmod(config, 0o000)
    try:
        if os.access(config, os.R_OK):
            print("    (root reads a file of mode 000: the unreadable case is not checked)")
        else:
            cli.fails(2, "topic", "list", says=config)
    finally:
        os.chmod(config, 0o600)
    # Without HOME or RAFTQ_CONFIG there is no file, and no profile: fine
    # unless one is named.
    env = dict(cli.env)
    for name in ("HOME", "RAFTQ_CONFIG"):
        env.pop(name)
    cli.fails(3, "topic", "list", "--managers", "127.0.0.1:1", env=env,
              says="cannot reach")
    cli.fails(2, "--profile", "dev", "topic", "list", env=env, says="HOME")


# ---- Completion ----------------------------------------------------------


def bash_complete(ctx, cli, script, line):
    """COMPREPLY after _raftq completes @line (the cursor at its end)."""
    prog = 'source "$1"; COMP_LINE=$2; COMP_POINT=${#2}; _raftq; printf "%s\\n" "${COMPREPLY[@]}"'
    env = dict(cli.env)
    env["PATH"] = os.path.dirname(ctx.binary) + os.pathsep + env.get("PATH", "")
    p = subprocess.run(["bash", "--norc", "--noprofile", "-c", prog, "bash", script, line],
                       capture_output=True, env=env, timeout=30)
    err = p.stderr.decode()
    check(p.returncode == 0 and not SANITIZER_RE.search(err),
          "bash completing %r: %d %r" % (line, p.returncode, err))
    return [w for w in p.stdout.decode().split("\n") if w]


def completion_setup(ctx, shell):
    config = os.path.join(ctx.dir, "p.json")
    cli = profile_cli(ctx, config=config)
    for name in ("dev", "prod", "staging"):
        cli.ok("profile", "create", name, "--managers", "127.0.0.1:1")
    script = os.path.join(ctx.dir, "raftq." + shell)
    with open(script, "w") as f:
        f.write(cli.ok("completion", shell))
    return cli, script


COMPLETIONS = [
    ("raftq to", ["topic", "token"]),
    ("raftq pro", ["produce", "profile"]),
    ("raftq topic ", ["create", "list", "describe", "delete"]),
    ("raftq topic cr", ["create"]),
    ("raftq profile ", ["create", "use", "list", "show", "delete"]),
    ("raftq profile use ", ["dev", "prod", "staging"]),
    ("raftq profile delete st", ["staging"]),
    ("raftq --profile ", ["dev", "prod", "staging"]),
    ("raftq topic list --profile p", ["prod"]),
    ("raftq --managers http://127.0.0.1:9500 --json to", ["topic", "token"]),
    ("raftq topic create t --part", ["--partitions"]),
    ("raftq profile list --", ["--json", "--help", "--version", "--names"]),
    ("raftq completion ", ["bash", "zsh"]),
    ("raftq help topic de", ["describe", "delete"]),
    ("raftq produce t -- --", []),
]


def test_completion_bash(ctx):
    if shutil.which("bash") is None:
        raise Skip("bash is not installed")
    cli, script = completion_setup(ctx, "bash")
    for line, want in COMPLETIONS:
        got = bash_complete(ctx, cli, script, line)
        check(sorted(got) == sorted(want), "%r completes to %r, not %r" % (line, got, want))
    # Values after "=", which bash splits off as a word of its own.
    got = bash_complete(ctx, cli, script, "raftq --profile=d")
    check(got == ["dev"], "--profile=d: %r" % got)
    # Files for --cacert.
    got = bash_complete(ctx, cli, script, "raftq profile create x --cacert %s/raftq.b" % ctx.dir)
    check(got == [script], "--cacert: %r" % got)
    # Every option of topic create, and nothing else.
    got = bash_complete(ctx, cli, script, "raftq topic create t --")
    check("--partitions" in got and "--profile" in got and "--follow" not in got,
          "topic create --: %r" % got)


def test_completion_zsh(ctx):
    zsh = shutil.which("zsh")
    if zsh is None:
        raise Skip("zsh is not installed: the zsh script is neither run nor checked "
                   "with zsh -n (the unit test still checks what it holds)")
    cli, script = completion_setup(ctx, "zsh")
    p = subprocess.run([zsh, "-n", script], capture_output=True, timeout=30)
    check(p.returncode == 0, "zsh -n: %r" % p.stderr)
    # Outside a completion widget: compadd, compset and _files stand in
    # for zsh's own, collecting what _raftq offers for the word at the end.
    prog = r'''
compadd() {
    while [[ $1 == -* && $1 != -- ]]; do shift; done
    [[ $1 == -- ]] && shift
    local w
    for w in "$@"; do [[ $w == ${PREFIX}* ]] && got+=("$w"); done
}
compset() { [[ $1 == -P ]] && { IPREFIX=${PREFIX%%=*}=; PREFIX=${PREFIX#*=}; } }
_files() { got+=("<files>") }
_directories() { got+=("<dirs>") }
source "$1" 2>/dev/null
local -a got
words=(${(z)2})
[[ $2 == *' ' ]] && words+=("")
CURRENT=${#words}
PREFIX=${words[CURRENT]}
_raftq
print -rl -- $got
'''
    env = dict(cli.env)
    env["PATH"] = os.path.dirname(ctx.binary) + os.pathsep + env.get("PATH", "")
    for line, want in COMPLETIONS + [("raftq --profile=d", ["dev"]),
                                     ("raftq profile create x --cacert ", ["<files>"])]:
        p = subprocess.run([zsh, "-f", "-c", prog, "zsh", script, line], capture_output=True,
                           env=env, timeout=30)
        got = [w for w in p.stdout.decode().split("\n") if w]
        check(p.returncode == 0 and sorted(got) == sorted(want),
              "zsh: %r completes to %r, not %r (%r)" % (line, got, want, p.stderr))


if __name__ == "__main__":
    run_suite("cli_profiles", [test_profiles_end_to_end, test_profile_files_and_commands,
                               test_completion_bash, test_completion_zsh],
              binary="raftq", ports=(28000, 28499))

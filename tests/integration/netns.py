"""Network namespaces on one bridge, for tests that cut the network (root only).

Each node runs in its own network namespace, joined to the others through a
Linux bridge in a further namespace (the hub) by a veth pair, with an
address in a /24 that exists only inside these namespaces. Optionally the
host itself gets a veth onto the bridge (address .1), so a test driving the
nodes over HTTP from the root namespace reaches every one of them.

Faults are nftables tables inside a node's namespace: cut() drops every
packet in and out of its veth (the host's too); drop() drops only packets
from and to the addresses given (so the host keeps reaching the node, as a
client outside the partition would). Healing deletes the table. Every name
carries the process id, so parallel runs do not clash, and down() removes
everything (deleting the hub takes the bridge and every veth with it).
Standard library only.
"""

import os
import re
import subprocess


class NetError(Exception):
    """A command that sets up or changes the network failed."""


def sh(*argv, check_rc=True, stdin=None):
    r = subprocess.run(argv, input=stdin, capture_output=True, text=True)
    if check_rc and r.returncode != 0:
        raise NetError("%s failed: %s" % (" ".join(argv), r.stderr.strip()))
    return r


def requires(prefix):
    """None when namespaces and nftables can be used here, else why not."""
    import shutil
    if os.geteuid() != 0:
        return "needs root for network namespaces"
    for tool in ("ip", "nft"):
        if shutil.which(tool) is None:
            return "needs root for network namespaces (and %s, which is missing)" % tool
    probe = "%s%dprobe" % (prefix, os.getpid())
    r = sh("ip", "netns", "add", probe, check_rc=False)
    if r.returncode != 0:
        return "needs root for network namespaces (ip netns add: %s)" % r.stderr.strip()
    sh("ip", "netns", "del", probe, check_rc=False)
    return None


def remove_stale(prefix):
    """Deletes namespaces left by runs (with this prefix) whose process is gone."""
    r = sh("ip", "netns", "list", check_rc=False)
    for line in r.stdout.splitlines():
        m = re.match(r"^(%s(\d+)(h|n\d+|probe))\b" % prefix, line)
        if m and not os.path.exists("/proc/%s" % m.group(2)):
            sh("ip", "netns", "del", m.group(1), check_rc=False)


TABLE = "rqcut"


class Net:
    """The namespaces, bridge and veth pairs of one run.

    @prefix names everything (PREFIX<pid>h is the hub, PREFIX<pid>n<slot> a
    node), @subnet is the first three octets of the /24 ("10.211.0"). Nodes
    are added by key (any hashable: 1, "m1"); the n-th gets slot n, address
    SUBNET.(10 + n). With @host the root namespace gets SUBNET.1 on the
    bridge through PREFIX<pid>c.
    """

    def __init__(self, prefix, subnet, keys=(), host=False):
        self.tag = "%s%d" % (prefix, os.getpid())
        self.hub = self.tag + "h"
        self.subnet = subnet
        self.host = host
        self.host_ip = subnet + ".1" if host else None
        self.ns = {}
        self.ip = {}
        self.slot = {}
        self.cut_now = set()
        self.rules = {}  # key -> (drop_in, drop_out) address sets
        self._keys = list(keys)
        self._live = False

    def up(self):
        sh("ip", "netns", "add", self.hub)
        self._live = True
        sh("ip", "-n", self.hub, "link", "add", "br0", "type", "bridge")
        sh("ip", "-n", self.hub, "link", "set", "br0", "up")
        if self.host:
            link = self.tag + "c"
            sh("ip", "link", "add", link, "type", "veth", "peer", "name", "c0", "netns", self.hub)
            sh("ip", "-n", self.hub, "link", "set", "c0", "master", "br0", "up")
            sh("ip", "addr", "add", self.host_ip + "/24", "dev", link)
            sh("ip", "link", "set", link, "up")
        for k in self._keys:
            self.add(k)

    def add(self, key):
        """A new node namespace on the bridge; returns its address."""
        assert key not in self.ns
        slot = len(self.slot) + 1
        assert slot < 240, "too many nodes"
        ns = "%sn%d" % (self.tag, slot)
        self.slot[key] = slot
        self.ns[key] = ns
        self.ip[key] = "%s.%d" % (self.subnet, 10 + slot)
        sh("ip", "netns", "add", ns)
        sh("ip", "-n", ns, "link", "set", "lo", "up")
        sh("ip", "-n", self.hub, "link", "add", "p%d" % slot, "type", "veth",
           "peer", "name", "eth0", "netns", ns)
        sh("ip", "-n", self.hub, "link", "set", "p%d" % slot, "master", "br0", "up")
        sh("ip", "-n", ns, "addr", "add", self.ip[key] + "/24", "dev", "eth0")
        sh("ip", "-n", ns, "link", "set", "eth0", "up")
        return self.ip[key]

    def down(self):
        """Removes every namespace (idempotent; never raises)."""
        if not self._live:
            return
        self._live = False
        for ns in list(self.ns.values()) + [self.hub]:
            sh("ip", "netns", "del", ns, check_rc=False)
        if self.host:
            sh("ip", "link", "del", self.tag + "c", check_rc=False)

    def wrap(self, key):
        return ["ip", "netns", "exec", self.ns[key]]

    def _load(self, key, chains):
        # Declaring the table first makes the delete succeed when there is
        # none; the three lines are one atomic nft transaction.
        sh("ip", "netns", "exec", self.ns[key], "nft", "-f", "-", stdin=(
            "table inet %s {}\ndelete table inet %s\ntable inet %s {\n%s}\n"
            % (TABLE, TABLE, TABLE, chains)))

    def cut(self, key):
        """Drops every packet in and out of node @key's veth."""
        self._load(key, (
            " chain input { type filter hook input priority -10; policy accept; iifname \"eth0\" drop; }\n"
            " chain output { type filter hook output priority -10; policy accept; oifname \"eth0\" drop; }\n"))
        self.cut_now.add(key)

    def drop(self, key, drop_in=(), drop_out=()):
        """Node @key drops packets from the addresses @drop_in and to the
        addresses @drop_out (replacing what it dropped before); both empty
        heals it."""
        drop_in, drop_out = set(drop_in), set(drop_out)
        if not drop_in and not drop_out:
            self.heal(key)
            return
        chains = ""
        if drop_in:
            chains += (" chain input { type filter hook input priority -10; policy accept; "
                       "ip saddr { %s } drop; }\n" % ", ".join(sorted(drop_in)))
        if drop_out:
            chains += (" chain output { type filter hook output priority -10; policy accept; "
                       "ip daddr { %s } drop; }\n" % ", ".join(sorted(drop_out)))
        self._load(key, chains)
        self.rules[key] = (drop_in, drop_out)
        self.cut_now.add(key)

    def heal(self, key):
        sh("ip", "netns", "exec", self.ns[key], "nft", "delete", "table", "inet", TABLE,
           check_rc=False)
        self.cut_now.discard(key)
        self.rules.pop(key, None)

    def heal_all(self):
        for key in list(self.cut_now):
            self.heal(key)

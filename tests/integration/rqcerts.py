"""Throwaway certificates for tests that run raftq with TLS (--tls-cert,
--tls-key, --tls-ca; DESIGN.md section 2, "TLS on every port"), made with
the openssl tool (make deps installs it): a CA, then one certificate per
process naming the hosts it is dialed by, usable as server and as client
certificate (the nodes present theirs to each other). P-256 keys, valid
two days, written into one directory.

Standard library only, like every integration test.
"""

import os
import subprocess

from harness import check

LOCAL = ("127.0.0.1", "localhost")


def openssl(*args):
    p = subprocess.run(["openssl"] + list(args), capture_output=True, timeout=60)
    check(p.returncode == 0, "openssl %s: %r" % (args[0], p.stderr))


def _alt_names(hosts):
    """The subjectAltName value naming @hosts (IP addresses and DNS names)."""
    out = []
    for h in hosts:
        is_ip = h.replace(".", "").isdigit() or ":" in h
        out.append(("IP:" if is_ip else "DNS:") + h)
    return ",".join(out)


class CA:
    """A CA in directory @d (ca.crt, ca.key) that issues certificates."""

    EC = ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes"]

    def __init__(self, d, name="test CA"):
        os.makedirs(d, exist_ok=True)
        self.dir = d
        self.cert = os.path.join(d, "ca.crt")
        self.key = os.path.join(d, "ca.key")
        openssl("req", "-x509", *self.EC, "-days", "2", "-subj", "/CN=" + name,
                "-keyout", self.key, "-out", self.cert)

    def issue(self, name, hosts=LOCAL):
        """A certificate for @hosts with common name @name: (NAME.crt,
        NAME.key) in the CA's directory."""
        cert, key, csr, ext = (os.path.join(self.dir, name + x)
                               for x in (".crt", ".key", ".csr", ".ext"))
        with open(ext, "w") as f:
            f.write("subjectAltName=%s\n" % _alt_names(hosts) +
                    "extendedKeyUsage=serverAuth,clientAuth\nbasicConstraints=CA:FALSE\n")
        openssl("req", *self.EC, "-subj", "/CN=" + name, "-keyout", key, "-out", csr)
        openssl("x509", "-req", "-in", csr, "-CA", self.cert, "-CAkey", self.key,
                "-CAcreateserial", "-days", "2", "-extfile", ext, "-out", cert)
        return cert, key


def make_certs(d, names, ca_name="another CA"):
    """A CA and one certificate for 127.0.0.1 and localhost per name, made
    in @d: (ca.crt, {name: (NAME.crt, NAME.key)})."""
    ca = CA(d, ca_name)
    return ca.cert, {name: ca.issue(name) for name in names}

#!/usr/bin/env bash
# Builds Debian's `raft` source package (the maintained successor of
# Canonical's libraft, Debian 13 "trixie") into a static library:
#
#   deploy/deps/raft.sh OUT [CFLAGS]
#
# OUT/include/raft.h, OUT/lib/libraft.a (with raft_uv and raft_fixture) and
# OUT/stamp. The source comes from Debian's source index through apt with a
# configuration directory of its own (build/deps/apt), so the system's apt
# sources stay as they are and nothing else of Debian 13 is installed; the
# version and the SHA-256 of every file of the package are pinned here. make
# deps runs it once per flavour (release, and sanitizers for make test).
#
# After Debian's own patches come raftq's, deploy/deps/raft-patches/*.patch in
# name order: fixes of defects the sanitizers found in the library, each
# explained at its top (DESIGN.md section 3 lists them).
set -euo pipefail

RAFT_VERSION=0.22.1-1
RAFT_UPSTREAM=0.22.1
RAFT_SUITE=trixie
RAFT_MIRROR=${RAFT_MIRROR:-http://deb.debian.org/debian}
declare -A RAFT_SHA256=(
  [raft_0.22.1.orig.tar.gz]=7e45b6f24f3671c9bfd5b146814493f87cb2e560712bd469c1f5969a4b94291a
  [raft_0.22.1-1.debian.tar.xz]=570c1f241fa14d1ecbf91399c132d4e6f1027fc9d305f60be279a620f1f133ac
)

out=${1:?usage: raft.sh OUT [CFLAGS]}
cflags=${2:--O2 -g}
patches=$(cd "$(dirname "$0")/raft-patches" && pwd)
mkdir -p "$(dirname "$out")"
deps=$(cd "$(dirname "$out")" && pwd)
out=$deps/$(basename "$out")
src=$deps/src
stamp="$RAFT_VERSION $cflags $(cat "$patches"/*.patch | sha256sum | cut -c1-16)"

if [[ -f $out/stamp && $(cat "$out/stamp") == "$stamp" && -f $out/lib/libraft.a ]]; then
  exit 0
fi

die() { echo "deps: raft $RAFT_VERSION: $*" >&2; exit 1; }

verified() {
  local f
  for f in "${!RAFT_SHA256[@]}"; do
    [[ -f $src/$f ]] || return 1
    echo "${RAFT_SHA256[$f]}  $src/$f" | sha256sum --quiet -c - >/dev/null 2>&1 || return 1
  done
}

# The source package, fetched once into build/deps/src.
if ! verified; then
  echo "deps: fetching Debian's raft $RAFT_VERSION source package ($RAFT_SUITE)"
  apt=$deps/apt
  rm -rf "$apt" && mkdir -p "$apt"/etc/{apt.conf.d,preferences.d,sources.list.d,trusted.gpg.d} \
    "$apt"/state/lists/partial "$apt"/cache/archives/partial "$src"
  echo "deb-src [signed-by=/usr/share/keyrings/debian-archive-keyring.gpg] $RAFT_MIRROR $RAFT_SUITE main" \
    >"$apt/etc/sources.list"
  aptopts=(-o "Dir::Etc=$apt/etc" -o "Dir::State=$apt/state" -o "Dir::Cache=$apt/cache"
           -o Debug::NoLocking=1 -o APT::Sandbox::User="$(id -un)" -qq)
  if ! log=$(apt-get "${aptopts[@]}" update 2>&1) || grep -q '^[WE]:' <<<"$log"; then
    die "cannot read Debian's source index at $RAFT_MIRROR ($RAFT_SUITE): $(grep -m1 '^[WE]:' <<<"$log" || echo "$log" | tail -1)"
  fi
  (cd "$src" && apt-get "${aptopts[@]}" source --download-only "raft=$RAFT_VERSION" >/dev/null 2>&1) ||
    die "the source index at $RAFT_MIRROR has no raft=$RAFT_VERSION"
  verified || die "a file of the source package does not have its pinned SHA-256"
fi

# Unpack: the upstream tarball, then Debian's patches in series order.
work=$deps/raft-build.$$
trap 'rm -rf "$work"' EXIT
rm -rf "$work" && mkdir -p "$work"
tar -xzf "$src/raft_$RAFT_UPSTREAM.orig.tar.gz" -C "$work"
tar -xJf "$src/raft_$RAFT_VERSION.debian.tar.xz" -C "$work/raft-$RAFT_UPSTREAM"
cd "$work/raft-$RAFT_UPSTREAM"
if [[ -f debian/patches/series ]]; then
  while read -r p _; do
    [[ -z $p || $p == \#* ]] && continue
    patch -p1 -s <"debian/patches/$p" || die "Debian patch $p does not apply"
  done <debian/patches/series
fi
for p in "$patches"/*.patch; do
  patch -p1 -s <"$p" || die "$(basename "$p") does not apply"
done

echo "deps: building raft $RAFT_VERSION into $out ($cflags)"
{
  autoreconf -i &&
  ./configure --prefix="$out" --disable-shared --enable-static --with-pic \
    --disable-example --disable-benchmark CFLAGS="$cflags" LDFLAGS="$cflags" &&
  make -j"$(nproc)" &&
  rm -rf "$out" && make install
} >"$work/build.log" 2>&1 || { tail -20 "$work/build.log" >&2; die "build failed (log above)"; }
echo "$stamp" >"$out/stamp"

#!/usr/bin/env bash
# The deploy suite: offline validation of deploy/compose and deploy/k8s by
# tests/deploy/check.mjs. It installs the npm packages pinned in
# tests/deploy/package-lock.json into build/deploy-check once (again only
# when the lock file changes), so later runs need no network. Closes with
# "deploy: N passed, N failed, N skipped". BUILD names the build whose
# binaries' options the files are checked against (build/asan by default).
set -u
cd "$(dirname "$0")/../.."
BUILD=${BUILD:-build/asan}
CACHE=build/deploy-check

fail() {
    echo "deploy: $1" >&2
    echo "deploy: 0 passed, 1 failed, 0 skipped"
    exit 1
}

if ! command -v node >/dev/null || ! command -v npm >/dev/null; then
    echo "deploy: installing nodejs and npm"
    if [ "$(id -u)" != 0 ]; then SUDO=sudo; else SUDO=; fi
    { $SUDO apt-get update -qq &&
      DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq nodejs npm >/dev/null; } ||
        fail "apt-get install nodejs npm failed"
fi

want=$(sha256sum tests/deploy/package-lock.json | cut -d' ' -f1)
if [ "$(cat "$CACHE/.installed" 2>/dev/null)" != "$want" ] || [ ! -d "$CACHE/node_modules" ]; then
    echo "deploy: installing the pinned validators into $CACHE"
    rm -rf "$CACHE"
    mkdir -p "$CACHE"
    cp tests/deploy/package.json tests/deploy/package-lock.json "$CACHE/"
    if ! (cd "$CACHE" && npm ci --no-audit --no-fund --ignore-scripts --loglevel=error) \
        >"$CACHE/npm.log" 2>&1; then
        cat "$CACHE/npm.log" >&2
        rm -rf "$CACHE/node_modules"
        fail "npm ci failed (see above)"
    fi
    echo "$want" >"$CACHE/.installed"
fi

exec node tests/deploy/check.mjs --build "$BUILD" --modules "$CACHE/node_modules"

#!/usr/bin/env bash
# make bench: prints figures for the release build in build/. Nothing here is
# asserted; the numbers go to standard output for a person to read. Extra
# arguments go to the broker bench (e.g. --only throughput).
set -euo pipefail
cd "$(dirname "$0")/../.."
python3 tests/bench/atm_bench.py --build build
python3 tests/bench/broker_bench.py --build build "$@"

#!/usr/bin/env bash
# make bench: prints figures for the release build in build/. Nothing here is
# asserted; the numbers go to standard output for a person to read. The table
# of raftq beside NATS JetStream and etcd comes first; then the replay
# cache's figures (build/bench/sig_bench), then the TLS relay's
# (build/bench/tls_relay); the broker bench runs plain, then its throughput
# and latency figures again with TLS. Arguments
# go to the ATM bench; BROKER_BENCH_ARGS (e.g. "--only throughput") to the
# broker bench.
set -euo pipefail
cd "$(dirname "$0")/../.."
# The table first: raftq beside NATS JetStream and etcd (tests/bench/compare.py,
# which also writes it to tests/bench/results/). BENCH_SECONDS sets the length
# of each case (default 10).
python3 tests/bench/compare.py --seconds "${BENCH_SECONDS:-10}"
build/bench/sig_bench
build/bench/tls_relay
python3 tests/bench/atm_bench.py --build build "$@"
# shellcheck disable=SC2086 # BROKER_BENCH_ARGS is split on purpose.
python3 tests/bench/broker_bench.py --build build ${BROKER_BENCH_ARGS:-}
# Produce throughput (many in flight) and single-record latency (one in
# flight) again with TLS 1.3 on every port, to read beside the plain figures.
if [ -z "${BROKER_BENCH_ARGS:-}" ]; then
    python3 tests/bench/broker_bench.py --build build --tls --only throughput
fi

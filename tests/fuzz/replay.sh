#!/usr/bin/env bash
# The fuzz_replay suite of make test: every harness, built with replay.c
# under ASan and UBSan ($BUILD/fuzz-replay/fuzz_NAME), runs once over its
# committed corpus (tests/fuzz/corpus/NAME/) and its regressions
# (tests/fuzz/regressions/NAME/, the inputs that once crashed it). One
# test per harness; a crash, a sanitizer report, a leak or a broken check
# fails it. Closes with "fuzz_replay: N passed, N failed, N skipped".
set -u
cd "$(dirname "$0")/../.."
BUILD=${BUILD:-build/asan}
pass=0
fail=0
skip=0

for src in tests/fuzz/fuzz_*.c; do
    name=$(basename "$src" .c)
    name=${name#fuzz_}
    bin=$BUILD/fuzz-replay/fuzz_$name
    if [ ! -x "$bin" ]; then
        # A failure, not a skip: a replay that skipped would let a broken
        # build pass.
        echo "FAIL fuzz_replay $name: $bin not built (make -j2 BUILD=$BUILD SAN=1 test-bins)"
        fail=$((fail + 1))
        continue
    fi
    out=$("$bin" "tests/fuzz/corpus/$name" "tests/fuzz/regressions/$name" 2>&1)
    rc=$?
    if [ "$rc" -eq 0 ]; then
        echo "PASS fuzz_replay $name ($(printf '%s\n' "$out" | sed -n 's/^replay: //p' | tail -n 1))"
        pass=$((pass + 1))
    else
        printf '%s\n' "$out" | tail -n 40
        echo "FAIL fuzz_replay $name (exit $rc)"
        fail=$((fail + 1))
    fi
done
echo "fuzz_replay: $pass passed, $fail failed, $skip skipped"
[ "$fail" -eq 0 ]

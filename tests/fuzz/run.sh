#!/usr/bin/env bash
# The driver of make fuzz and make fuzz-merge (run from the Makefile, after
# it built the harnesses with clang into build/fuzz).
#
#   run.sh fuzz NAME...   runs each harness for FUZZ_SECONDS (default 30),
#                         starting from its committed corpus (and with
#                         tests/fuzz/NAME.dict if there is one); new inputs go
#                         to build/fuzz/work/NAME, never to tests/fuzz/.
#                         A crash, leak, timeout or out-of-memory input is
#                         copied to tests/fuzz/regressions/NAME/, where make
#                         test replays it from then on. One summary line per
#                         harness; exits 1 if any harness failed.
#   run.sh merge NAME...  adds to tests/fuzz/corpus/NAME the inputs of
#                         build/fuzz/work/NAME that reach new coverage,
#                         smallest first, up to FUZZ_CORPUS_MAX (48) files.
set -u
cd "$(dirname "$0")/../.."
mode=${1:-}
shift || true
BIN=build/fuzz
SECONDS_EACH=${FUZZ_SECONDS:-30}
MAX=${FUZZ_CORPUS_MAX:-48}
failed=()

for name in "$@"; do
    bin=$BIN/fuzz_$name
    corpus=tests/fuzz/corpus/$name
    work=$BIN/work/$name
    art=$BIN/artifacts/$name
    log=$BIN/logs/$name.log
    mkdir -p "$work" "$art" "$corpus" "$(dirname "$log")"
    if [ ! -x "$bin" ]; then
        echo "fuzz $name: no binary $bin"
        failed+=("$name")
        continue
    fi
    if [ "$mode" = merge ]; then
        # A minimal set covering corpus and finds, then the new files of
        # it, smallest first, until the corpus holds $MAX files.
        tmp=$BIN/merge/$name
        rm -rf "$tmp"
        mkdir -p "$tmp"
        "$bin" -merge=1 "$tmp" "$corpus" "$work" >"$log" 2>&1
        have=$(find "$corpus" -type f | wc -l)
        sums=$(find "$corpus" -type f -exec sha1sum {} + | cut -d' ' -f1)
        added=0
        while read -r f; do
            [ "$have" -lt "$MAX" ] || break
            sum=$(sha1sum <"$f" | cut -d' ' -f1)
            if printf '%s\n' "$sums" | grep -qx "$sum"; then
                continue
            fi
            cp "$f" "$corpus/$sum"
            sums=$(printf '%s\n%s' "$sums" "$sum")
            have=$((have + 1))
            added=$((added + 1))
        done < <(find "$tmp" -type f -printf '%s %p\n' | sort -n | cut -d' ' -f2-)
        rm -rf "$tmp"
        echo "fuzz-merge $name: $added new inputs, $have in $corpus"
        continue
    fi
    # Inputs from earlier runs sit in $work; the committed corpus is read
    # only (libFuzzer writes new inputs to its first directory).
    rm -f "$art"/crash-* "$art"/leak-* "$art"/timeout-* "$art"/oom-*
    dict=()
    if [ -f "tests/fuzz/$name.dict" ]; then
        dict=(-dict="tests/fuzz/$name.dict")
    fi
    "$bin" -max_total_time="$SECONDS_EACH" -print_final_stats=1 \
        -timeout=10 -rss_limit_mb=2048 -max_len=65536 "${dict[@]}" \
        -artifact_prefix="$art/" "$work" "$corpus" >"$log" 2>&1
    rc=$?
    execs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$log" | tail -n 1)
    cov=$(grep -o 'cov: [0-9]*' "$log" | tail -n 1 | sed 's/cov: //')
    ft=$(grep -o 'ft: [0-9]*' "$log" | tail -n 1 | sed 's/ft: //')
    crashes=0
    for f in "$art"/crash-* "$art"/leak-* "$art"/timeout-* "$art"/oom-*; do
        [ -f "$f" ] || continue
        crashes=$((crashes + 1))
        mkdir -p "tests/fuzz/regressions/$name"
        cp "$f" "tests/fuzz/regressions/$name/"
        echo "fuzz $name: $(basename "$f") saved as tests/fuzz/regressions/$name/$(basename "$f")"
        echo "fuzz $name: see $log; fix the bug, and make test replays the input"
    done
    if [ "$rc" -ne 0 ] && [ "$crashes" -eq 0 ]; then
        crashes=1 # Stopped without an artifact: see the log.
        echo "fuzz $name: exited with status $rc; see $log"
    fi
    printf 'fuzz %-16s execs %-10s cov %-6s ft %-6s crashes %d\n' \
        "$name" "${execs:-0}" "${cov:-0}" "${ft:-0}" "$crashes"
    [ "$crashes" -eq 0 ] || failed+=("$name")
done

if [ "$mode" = fuzz ]; then
    echo "fuzz: ${#failed[@]} of $# harnesses failed${failed[*]:+: ${failed[*]}}"
fi
[ ${#failed[@]} -eq 0 ]

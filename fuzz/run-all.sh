#!/usr/bin/env bash
# Run every cargo-fuzz target for SECS seconds (default 60), one after the other, seeded from
# the checked-in corpus (fuzz/corpus/<target>, read only) into a scratch corpus
# (${FUZZ_WORK:-/tmp/yester-fuzz}/<target>). Prints one line per target: executions, coverage,
# crashes. Needs cargo-fuzz (`cargo install cargo-fuzz`); on a stable toolchain the nightly
# flags it passes are allowed with RUSTC_BOOTSTRAP=1. See docs/RELIABILITY.md, "Fuzzing".
set -uo pipefail
cd "$(dirname "$0")"
secs=${1:-60}
work=${FUZZ_WORK:-/tmp/yester-fuzz}
export RUSTC_BOOTSTRAP=1
# The nfs target copies its fixture repository into the temp dir once per process.
export TMPDIR="$work/tmp"
mkdir -p "$TMPDIR"
cargo fuzz build || exit 1
targets=$(cargo fuzz list)
crashed=0
for t in $targets; do
    mkdir -p "$work/$t"
    log="$work/$t.log"
    # A pack entry's raw length (up to 4 GiB) is the capacity zstd reserves before it
    # decompresses: address space, not memory (see docs/RELIABILITY.md, "Fuzzing"), so the pack
    # target may reserve that much; resident memory stays capped at libFuzzer's 2 GiB.
    extra=()
    [ "$t" = pack ] && extra=(-malloc_limit_mb=4200)
    cargo fuzz run "$t" "$work/$t" "corpus/$t" -- -max_total_time="$secs" -print_final_stats=1 \
        "${extra[@]}" >"$log" 2>&1
    rc=$?
    execs=$(grep -o 'stat::number_of_executed_units: *[0-9]*' "$log" | grep -o '[0-9]*$')
    last=$(grep -E '^#[0-9]+' "$log" | tail -1)
    cov=$(grep -o 'cov: [0-9]*' <<<"$last" | grep -o '[0-9]*$')
    ft=$(grep -o 'ft: [0-9]*' <<<"$last" | grep -o '[0-9]*$')
    crash=$(ls artifacts/"$t" 2>/dev/null | wc -l)
    [ "$rc" -ne 0 ] && crashed=1
    echo "$t: ${execs:-?} executions in ${secs}s, cov ${cov:-?} edges, ft ${ft:-?}, exit $rc, artifacts $crash (log $log)"
done
exit $crashed

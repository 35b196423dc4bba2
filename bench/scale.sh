#!/usr/bin/env bash
# Cost per file of `yester backup` as the tree grows: synthetic trees of 100k / 300k / 1M small
# files (bench/gen-synthetic.py), each backed up into a fresh repository (first backup), then
# backed up again unchanged (no-change: cold page cache, then warm). Prints time and peak RSS
# per file, the marginal cost of the added files, and the index load time. See bench/README.md.
#
#   bench/scale.sh                                   # 100k 300k 1M files
#   BENCH_SCALE_FILES="20000 60000" bench/scale.sh   # quick (~1 min)
#   BENCH_SCALE_BIG_GB=20 bench/scale.sh             # plus a row for 20 GiB of big files
#
# Needs root (drop_caches), GNU time, python3.
set -euo pipefail
BENCH_SCALE_FILES=${BENCH_SCALE_FILES:-"100000 300000 1000000"}   # ascending
BENCH_SCALE_BIG_GB=${BENCH_SCALE_BIG_GB:-0}   # GiB of generated big files, its own tree and row
BENCH_DUP_PCT=${BENCH_DUP_PCT:-20}            # % duplicate files / big-file segments
BENCH_TOOLS=yester
. "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
export BENCH_DUP_PCT

[ -x /usr/bin/time ] || die "/usr/bin/time not found ($BENCH_APT)"
prev=0
for n in $BENCH_SCALE_FILES; do
    [ "$n" -gt "$prev" ] || die "BENCH_SCALE_FILES must be ascending: $BENCH_SCALE_FILES"
    prev=$n
done

bench_workdir yester-scale
bench_results scale
bench_yester
T_START=$(date +%s)
bench_meta "FILES=$BENCH_SCALE_FILES BIG_GB=$BENCH_SCALE_BIG_GB DUP_PCT=$BENCH_DUP_PCT"
TREE=$WORK/tree

# backup_step LABEL PHASE REPO DIR: one timed `yester -v backup --json` (-v: the index line).
backup_step() {
    local label=$1 phase=$2 repo=$3 dir=$4 lf
    lf=$LOGS/$label-$phase.log
    [ "$phase" = nochange_warm ] || drop_caches
    log "$label: $phase"
    timed "$lf" "$Y" -r "$repo" -v backup --source scale "$dir" --json
    rec "$label" "$phase" wall "$T_WALL" s "exit=$T_RC${T_NOTE:+ $T_NOTE} drop_caches=$([ "$phase" = nochange_warm ] && echo no || echo "$DROP_OK")"
    rec "$label" "$phase" peak_rss "$T_RSS" KiB
    rec "$label" "$phase" cpu "$T_CPU" s "user+sys"
    rec "$label" "$phase" index "$(grep -o 'index: .*' "$lf" | tail -1)" - "yester -v"
    rec "$label" "$phase" summary "$(grep -v 'INFO' "$lf" | tr -d '\n\t ' | tail -c 1000)" - "backup --json"
    [ "$T_RC" = 0 ] || log "WARNING: $label $phase exited $T_RC (see $lf): $(tail -3 "$lf")"
}

measure_tree() { # LABEL DIR
    local label=$1 dir=$2 repo=$WORK/repo-$1
    rec "$label" tree bytes "$(du -sb "$dir" | cut -f1)" bytes "du -sb"
    rec "$label" tree entries "$(find "$dir" | wc -l)" entries
    rec "$label" tree files "$(find "$dir" -type f | wc -l)" files
    "$Y" init "$repo" > "$LOGS/$label-init.log" 2>&1
    backup_step "$label" first "$repo" "$dir"
    backup_step "$label" nochange_cold "$repo" "$dir"
    backup_step "$label" nochange_warm "$repo" "$dir"
    rec "$label" repo size "$(du -sb "$repo" | cut -f1)" bytes
    rm -rf "$repo"
}

for n in $BENCH_SCALE_FILES; do
    log "growing the tree to $n files"
    t0=$(date +%s.%N)
    "$PY" "$BENCH_HOME/gen-synthetic.py" "$TREE" "$n"
    rec "files-$n" tree gen_seconds "$(elapsed "$t0")" s "gen-synthetic.py (grown from the previous size)"
    measure_tree "files-$n" "$TREE"
done

if [ "$BENCH_SCALE_BIG_GB" != 0 ]; then
    log "generating ${BENCH_SCALE_BIG_GB} GiB of big files"
    BIG=$WORK/bigtree
    t0=$(date +%s.%N)
    "$PY" "$BENCH_HOME/gen-synthetic.py" "$BIG" 0 "$BENCH_SCALE_BIG_GB"
    rec "big-${BENCH_SCALE_BIG_GB}GiB" tree gen_seconds "$(elapsed "$t0")" s
    measure_tree "big-${BENCH_SCALE_BIG_GB}GiB" "$BIG"
fi

rec meta info loadavg_end "$(cut -d' ' -f1-3 /proc/loadavg)" -
rec meta info run_seconds "$(( $(date +%s) - T_START ))" s

echo
"$PY" "$BENCH_HOME/scale-report.py" "$TSV" | tee "$TXT"
echo
log "raw numbers: $TSV"
log "tables: $TXT"

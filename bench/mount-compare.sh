#!/usr/bin/env bash
# Compare yester's FUSE mount with restic mount, borg mount and the plain source tree,
# on the same data, in one run. See bench/README.md.
#
#   bench/mount-compare.sh                      # defaults: 1500 MB tree + 1 GiB image
#   BENCH_TREE_MB=300 BENCH_BIG_MB=256 bench/mount-compare.sh   # quick run
#
# Needs root (drop_caches, FUSE), restic, borg (+ python3-llfuse), fusermount3, rsync,
# GNU time (/usr/bin/time), GNU diff/find/grep, python3.
set -euo pipefail

# ---------------------------------------------------------------- settings
BENCH_TREE_MB=${BENCH_TREE_MB:-1500}        # size of the tree part (copies from /usr)
BENCH_BIG_MB=${BENCH_BIG_MB:-1024}          # size of the VM-image-like file (MiB)
BENCH_BIG_DATA_MB=${BENCH_BIG_DATA_MB:-320} # MiB of real data inside it; the rest is zeros
BENCH_GREP=${BENCH_GREP:-SPDX-License-Identifier}   # fixed string for grep -r
BENCH_TOOLS=${BENCH_TOOLS:-"yester restic borg plain"}
BENCH_MEASURES=${BENCH_MEASURES:-"find ls cat grep diff"}
BENCH_REMOUNT=${BENCH_REMOUNT:-1}           # 1: fresh mount (cold daemon) for every measurement
BENCH_REPEAT=${BENCH_REPEAT:-2}             # rounds of all measurements; the table shows the best
BENCH_TIMEOUT=${BENCH_TIMEOUT:-1200}        # seconds before one measurement is given up
BENCH_YESTER_CACHE=${BENCH_YESTER_CACHE:-}  # e.g. 256MiB: passed as yester mount --cache-size
. "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

need restic borg fusermount3 rsync diff find grep sha256sum mountpoint timeout
[ -x /usr/bin/time ] || die "/usr/bin/time not found ($BENCH_APT)"
[ -e /dev/fuse ] || die "/dev/fuse missing"

bench_workdir yester-bench
DATA=$WORK/data                 # what is backed up
mkdir -p "$MNT"/{yester,restic,borg}

# This script's TSV has a round column: rec from lib.sh with the current $ROUND added.
bench_results mount
printf 'tool\tphase\tmetric\tround\tvalue\tunit\tnote\n' > "$TSV"
ROUND=-
rec() { # TOOL PHASE METRIC VALUE UNIT [NOTE]
    printf '%s\t%s\t%s\t%s\t%s\t%s\t%s\n' "$1" "$2" "$3" "$ROUND" "$4" "$5" "${6:-}" >> "$TSV"
}

bench_yester
bench_meta "TREE_MB=$BENCH_TREE_MB BIG_MB=$BENCH_BIG_MB BIG_DATA_MB=$BENCH_BIG_DATA_MB REMOUNT=$BENCH_REMOUNT REPEAT=$BENCH_REPEAT GREP=$BENCH_GREP YESTER_CACHE=${BENCH_YESTER_CACHE:-default}"

# ---------------------------------------------------------------- 1. the data set
make_dataset "$DATA"

TREE_BYTES=$(du -sb "$DATA/tree" | cut -f1)
TREE_FILES=$(find "$DATA/tree" -type f | wc -l)
TREE_ENTRIES=$(find "$DATA" | wc -l)
BIG_SHA=$(sha256sum "$DATA/vm/disk.img" | cut -d' ' -f1)
GREP_PLAIN_LINES=$(cd "$DATA/tree" && { grep -r -F -- "$BENCH_GREP" . || true; } | wc -l)
rec data info tree_bytes "$TREE_BYTES" bytes
rec data info total_bytes "$(du -sb "$DATA" | cut -f1)" bytes
rec data info tree_files "$TREE_FILES" files
rec data info entries "$TREE_ENTRIES" entries "find | wc -l over the whole data dir"
rec data info big_sha256 "$BIG_SHA" -
log "data: tree $((TREE_BYTES / 1000000)) MB in $TREE_FILES files; $TREE_ENTRIES entries; image sha256 ${BIG_SHA:0:16}"

case " $BENCH_TOOLS " in *" plain "*)
    case " $BENCH_MEASURES " in *" diff "*)
        log "copying the data set once more for the plain diff baseline"
        cp -a "$DATA" "$WORK/copy" ;;
    esac ;;
esac

# ---------------------------------------------------------------- 2. backups
init_repos

backup() { # TOOL CMD...
    local tool=$1
    shift
    drop_caches
    log "backup: $tool"
    timed "$LOGS/$tool-backup.log" "$@"
    rec "$tool" backup wall "$T_WALL" s "drop_caches=$DROP_OK exit=$T_RC${T_NOTE:+ $T_NOTE}"
    rec "$tool" backup peak_rss "$T_RSS" KiB
    rec "$tool" backup cpu "$T_CPU" s "user+sys"
    [ "$T_RC" = 0 ] || log "WARNING: $tool backup exited $T_RC (see $LOGS/$tool-backup.log):$(tail -3 "$LOGS/$tool-backup.log")"
}
if has "$BENCH_TOOLS" yester; then
    backup yester "$Y" -r "$REPO_Y" backup --source bench "$DATA"
    rec yester repo size "$(du -sb "$REPO_Y" | cut -f1)" bytes
fi
if has "$BENCH_TOOLS" restic; then
    backup restic restic -r "$REPO_R" backup "$DATA"
    rec restic repo size "$(du -sb "$REPO_R" | cut -f1)" bytes "plus local cache $(du -sb "$RESTIC_CACHE_DIR" 2>/dev/null | cut -f1) bytes"
fi
if has "$BENCH_TOOLS" borg; then
    backup borg borg create --compression zstd,3 "$REPO_B::bench" "$DATA"
    rec borg repo size "$(du -sb "$REPO_B" | cut -f1)" bytes "plus local cache $(du -sb "$BORG_BASE_DIR" 2>/dev/null | cut -f1) bytes"
fi

# ---------------------------------------------------------------- 3. mounts
# Where the backed-up data dir shows up in each mount.
REL=${DATA#/}
root_of() {
    case $1 in
        yester) echo "$MNT/yester/latest/bench/$REL" ;;
        restic) echo "$MNT/restic/snapshots/latest/$REL" ;;
        borg) echo "$MNT/borg/$REL" ;;
        plain) echo "$DATA" ;;
    esac
}

# Fresh daemons come from lib.sh (mount_start/mount_stop); borg mounts the one archive.
BORG_MOUNT=$REPO_B::bench
do_mount() { mount_start "$1"; }
do_unmount() { mount_stop "$1"; }

# Run one measurement for TOOL; R is the data dir as the tool shows it.
run_measure() { # TOOL MEASURE
    local tool=$1 what=$2 R pid tf rc=0 cmd c0 c1 wall rss user sys note="" hwm dcpu
    R=$(root_of "$tool")
    pid=${DAEMON_PID[$tool]:-}
    case $what in
        find) cmd='cd "$R" && find . | wc -l > "$OUT"' ;;
        ls) cmd='cd "$R" && ls -lR . > /dev/null' ;;
        cat) cmd='cat "$R/vm/disk.img" > /dev/null' ;;
        grep) cmd='cd "$R/tree" && { grep -r -F -- "$BENCH_GREP" . || [ $? = 1 ]; } | wc -l > "$OUT"' ;;
        # plain: the source against a second on-disk copy (diff skips a tree against itself).
        diff) [ "$tool" = plain ] && R=$WORK/copy
              cmd='diff -r --no-dereference "$R" "$DATA" > "$OUT" 2>&1' ;;
    esac
    tf=$(mktemp "$WORK/time.XXXXXX")
    export R DATA BENCH_GREP
    export OUT=$WORK/out.$tool.$what
    drop_caches
    c0=0; [ -n "$pid" ] && c0=$(daemon_cpu_ticks "$pid")
    log "measure: $what on $tool (round $ROUND)"
    timeout "$BENCH_TIMEOUT" /usr/bin/time -f '%e %M %U %S' -o "$tf" bash -c "$cmd" || rc=$?
    if [ -s "$tf" ] && [ "$rc" != 124 ]; then
        read -r wall rss user sys < <(tail -1 "$tf")
    else
        wall=NA; rss=NA; user=0; sys=0; note="timed out after ${BENCH_TIMEOUT}s"
    fi
    if [ -n "$pid" ]; then
        c1=$(daemon_cpu_ticks "$pid")
        hwm=$(daemon_hwm "$pid")
        dcpu=$(awk -v a="$c0" -v b="$c1" -v t="$TICKS" 'BEGIN {printf "%.2f", (b - a) / t}')
        kill -0 "$pid" 2>/dev/null || note="$note daemon died"
    fi
    # Correctness checks (untimed).
    local ok=ok
    case $what in
        find)
            local n; n=$(cat "$OUT" 2>/dev/null || echo NA)
            [ "$n" = "$TREE_ENTRIES" ] || ok="entries=$n expected=$TREE_ENTRIES"
            ;;
        grep)
            local n; n=$(cat "$OUT" 2>/dev/null || echo NA)
            [ "$n" = "$GREP_PLAIN_LINES" ] || ok="lines=$n expected=$GREP_PLAIN_LINES"
            ;;
        cat)
            local s; s=$(timeout "$BENCH_TIMEOUT" sha256sum "$R/vm/disk.img" 2>/dev/null | cut -d' ' -f1 || true)
            [ "$s" = "$BIG_SHA" ] || ok="sha256 mismatch: ${s:-read failed}"
            ;;
        diff)
            if [ "$rc" != 0 ]; then
                ok="diff exit $rc, $(wc -l < "$OUT") lines: $(head -c 300 "$OUT" | tr '\n\t' '  ')"
                cp "$OUT" "$RESULTS_DIR/mount-$STAMP.diff-$tool.txt" 2>/dev/null || true
            fi
            ;;
    esac
    if [ "$what" != diff ] && [ "$rc" != 0 ]; then ok="exit $rc; $ok"; fi
    [ "$ok" = ok ] || log "WARNING: $what on $tool: $ok"
    rec "$tool" "$what" wall "$wall" s "drop_caches=$DROP_OK check=$ok${note:+ $note}"
    rec "$tool" "$what" client_cpu "$(awk -v u="$user" -v s="$sys" 'BEGIN {printf "%.2f", u + s}')" s "user+sys of the command"
    if [ -n "$pid" ]; then
        rec "$tool" "$what" daemon_cpu "$dcpu" s "user+sys of the mount daemon during the command"
        rec "$tool" "$what" daemon_hwm "$hwm" KiB "VmHWM of the daemon after the command$([ "$BENCH_REMOUNT" = 1 ] && echo ' (fresh mount)' || echo ' (cumulative)')"
    fi
    rm -f "$tf" "$OUT"
}

for ROUND in $(seq 1 "$BENCH_REPEAT"); do
    # Odd rounds take the tools in the given order, even rounds in reverse.
    TOOLS=$BENCH_TOOLS
    [ $((ROUND % 2)) = 0 ] && TOOLS=$(echo "$BENCH_TOOLS" | tr ' ' '\n' | tac | tr '\n' ' ')
    if [ "$BENCH_REMOUNT" = 1 ]; then
        # Measurement-major: every tool gets a fresh daemon for every measurement.
        for what in $BENCH_MEASURES; do
            for tool in $TOOLS; do
                if do_mount "$tool"; then
                    [ "$tool" = plain ] || rec "$tool" mount wall "$MOUNT_WALL" s "until the tree answers (before $what)"
                    run_measure "$tool" "$what"
                else
                    rec "$tool" "$what" wall NA s "mount failed"
                fi
                do_unmount "$tool"
            done
        done
    else
        for tool in $TOOLS; do
            if do_mount "$tool"; then
                [ "$tool" = plain ] || rec "$tool" mount wall "$MOUNT_WALL" s "until the tree answers"
                for what in $BENCH_MEASURES; do run_measure "$tool" "$what"; done
            else
                for what in $BENCH_MEASURES; do rec "$tool" "$what" wall NA s "mount failed"; done
            fi
            do_unmount "$tool"
        done
    fi
done
ROUND=-

rec meta info loadavg_end "$(cut -d' ' -f1-3 /proc/loadavg)" -

# ---------------------------------------------------------------- 4. the table
report() {
    awk -F'\t' -v measures="$BENCH_MEASURES" -v drop="$DROP_OK" '
    NR == 1 { next }
    $1 == "meta" { meta[$3] = $5; next }
    $1 == "data" { data[$3] = $5; next }
    {
        key = $1 SUBSEP $2 SUBSEP $3
        if ($2 == "mount") { if (num($5)) { msum[$1] += $5; mcnt[$1]++ }; next }
        if ($3 == "wall" && $7 ~ /check=/) {
            c = $7; sub(/.*check=/, "", c); k = $1 SUBSEP $2
            if (!(k in chk)) chk[k] = c
            else if (c != "ok") chk[k] = (chk[k] == "ok") ? c : chk[k] "; " c
        }
        if (!num($5)) { if (!(key in v)) v[key] = "NA"; next }
        # Several rounds: the best (lowest) time and CPU, the highest peak RSS.
        if (!(key in v) || v[key] == "NA") v[key] = $5
        else if ($3 == "daemon_hwm" || $3 == "peak_rss") { if ($5 + 0 > v[key] + 0) v[key] = $5 }
        else if ($5 + 0 < v[key] + 0) v[key] = $5
    }
    function num(x) { return (x != "" && x != "NA" && x != "n/a") }
    function cell(x, f) { return num(x) ? sprintf(f, x) : "n/a" }
    function ratio(a, b) { return (num(a) && num(b) && b + 0 > 0) ? sprintf("%.2f", a / b) : "n/a" }
    function mib(x) { return num(x) ? x / 1024 : "" }
    function row(label, y, r, b, p, f) {
        printf "%-24s %10s %10s %10s %10s %8s %8s %8s\n", label, cell(y, f), cell(r, f), cell(b, f), cell(p, f), ratio(y, r), ratio(y, b), ratio(y, p)
    }
    function get(t, ph, m) { k = t SUBSEP ph SUBSEP m; return (k in v) ? v[k] : "" }
    END {
        printf "yester %s | %s | %s | %s\n", meta["yester_commit"], meta["restic_version"], meta["borg_version"], meta["host"]
        printf "data: tree %.0f MB in %d files, %d entries in all, %.0f MB in all; image sha256 %s\n", data["tree_bytes"] / 1e6, data["tree_files"], data["entries"], data["total_bytes"] / 1e6, substr(data["big_sha256"], 1, 16)
        printf "settings: %s\n", meta["settings"]
        printf "page cache dropped before each measurement: %s; load average at start %s, at end %s\n", drop, meta["loadavg_start"], meta["loadavg_end"]
        printf "several rounds: best time/CPU and highest peak RSS shown; ratios below 1 mean yester is faster/smaller\n\n"
        hdr = sprintf("%-24s %10s %10s %10s %10s %8s %8s %8s\n", "measurement", "yester", "restic", "borg", "plain", "y/restic", "y/borg", "y/plain")
        printf "%s", hdr
        row("backup wall (s)", get("yester", "backup", "wall"), get("restic", "backup", "wall"), get("borg", "backup", "wall"), "", "%.2f")
        row("backup peak RSS (MiB)", mib(get("yester", "backup", "peak_rss")), mib(get("restic", "backup", "peak_rss")), mib(get("borg", "backup", "peak_rss")), "", "%.0f")
        row("backup CPU (s)", get("yester", "backup", "cpu"), get("restic", "backup", "cpu"), get("borg", "backup", "cpu"), "", "%.2f")
        row("repo size (MiB)", get("yester", "repo", "size") / 1048576, get("restic", "repo", "size") / 1048576, get("borg", "repo", "size") / 1048576, data["total_bytes"] / 1048576 + 0, "%.0f")
        row("mount start (s, mean)", mcnt["yester"] ? msum["yester"] / mcnt["yester"] : "", mcnt["restic"] ? msum["restic"] / mcnt["restic"] : "", mcnt["borg"] ? msum["borg"] / mcnt["borg"] : "", "", "%.2f")
        n = split(measures, M, " ")
        printf "\nwall time (s)\n%s", hdr
        for (i = 1; i <= n; i++) row(M[i], get("yester", M[i], "wall"), get("restic", M[i], "wall"), get("borg", M[i], "wall"), get("plain", M[i], "wall"), "%.2f")
        printf "\nmount daemon CPU during the measurement (s, user+sys)\n%s", hdr
        for (i = 1; i <= n; i++) row(M[i], get("yester", M[i], "daemon_cpu"), get("restic", M[i], "daemon_cpu"), get("borg", M[i], "daemon_cpu"), "", "%.2f")
        printf "\nmount daemon peak RSS (MiB, VmHWM)\n%s", hdr
        for (i = 1; i <= n; i++) row(M[i], mib(get("yester", M[i], "daemon_hwm")), mib(get("restic", M[i], "daemon_hwm")), mib(get("borg", M[i], "daemon_hwm")), "", "%.0f")
        printf "\nchecks (find: entry count, grep: line count, cat: sha256, diff: no differences)\n"
        printf "%-10s %-14s %-14s %-14s %-14s\n", "", "yester", "restic", "borg", "plain"
        for (i = 1; i <= n; i++) {
            printf "%-10s", M[i]
            split("yester restic borg plain", T, " ")
            for (j = 1; j <= 4; j++) { c = chk[T[j] SUBSEP M[i]]; printf " %-14s", (c == "" ? "-" : c) }
            printf "\n"
        }
    }' "$TSV"
}
echo
report | tee "$TXT"
echo
log "raw numbers: $TSV"
log "table: $TXT"

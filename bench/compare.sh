#!/usr/bin/env bash
# yester against restic and borg (and the plain tree), on the same data, in one run: first,
# second-generation and no-change backups, repository size, full restore, reads through the
# FUSE mounts (find, ls -lR, cat of the image, grep -r, diff -r of the two generations; cold
# and warm), and nfs-cp of the image from `yester nfs serve` against nfs-ganesha serving the
# plain tree. Prints ratio tables and the issue-6 targets met or missed. See bench/README.md.
#
#   bench/compare.sh                                          # defaults (~20-25 min here)
#   BENCH_TREE_MB=150 BENCH_BIG_MB=128 bench/compare.sh       # quick run (~5 min)
#   YESTER_BIN=/path/to/yester YESTER_COMMIT=abc1234 bench/compare.sh
#
# Needs root (drop_caches, FUSE, ganesha), restic, borg (+ python3-llfuse), fuse3, rsync,
# GNU time, libnfs-utils (nfs-cp), nfs-ganesha + nfs-ganesha-vfs and rpcbind (optional).
set -euo pipefail

# ---------------------------------------------------------------- settings
BENCH_TREE_MB=${BENCH_TREE_MB:-1500}        # size of the tree part (copies from /usr)
BENCH_BIG_MB=${BENCH_BIG_MB:-1024}          # size of the VM-image-like file (MiB)
BENCH_BIG_DATA_MB=${BENCH_BIG_DATA_MB:-320} # MiB of real data inside it; the rest is zeros
BENCH_EDIT_PCT=${BENCH_EDIT_PCT:-1}         # % of small files edited in place for generation 2
BENCH_ADD=${BENCH_ADD:-300}                 # files added for generation 2
BENCH_DEL=${BENCH_DEL:-200}                 # files removed for generation 2
BENCH_IMG_WRITES=${BENCH_IMG_WRITES:-200}   # scattered 4 KiB writes into the image
BENCH_TOOLS=${BENCH_TOOLS:-"yester restic borg plain"}
BENCH_STEPS=${BENCH_STEPS:-"backup restore mount nfs"}   # backup always runs
BENCH_MEASURES=${BENCH_MEASURES:-"find ls cat grep diff"}
BENCH_WARM=${BENCH_WARM:-"find ls cat grep"}   # reads that get a warm round too (the targets' ones)
BENCH_WARM_RUNS=${BENCH_WARM_RUNS:-3}       # a warm round is the best of this many runs ...
BENCH_WARM_LONG=${BENCH_WARM_LONG:-5}       # ... or fewer, once one run took over this (s)
BENCH_GREP=${BENCH_GREP:-SPDX-License-Identifier}        # fixed string for grep -r
BENCH_GREP_MB=${BENCH_GREP_MB:-200}         # grep -r runs over whole subdirectories of about this
BENCH_RESTORE_CHECK=${BENCH_RESTORE_CHECK:-1}   # 1: diff -r + metadata check of every restore
BENCH_YESTER_CACHE=${BENCH_YESTER_CACHE:-}  # e.g. 256MiB: yester mount/nfs serve --cache-size
BENCH_NFS_PORT=${BENCH_NFS_PORT:-22049}     # yester nfs serve (NFS and MOUNT on one port)
BENCH_GANESHA_PORT=${BENCH_GANESHA_PORT:-22149}   # nfs-ganesha NFS port; MOUNT is one below
BENCH_NEAR=${BENCH_NEAR:-1.5}               # "near the plain tree" in the targets: ≤ this ratio
BENCH_TIMEOUT=${BENCH_TIMEOUT:-1800}        # seconds before one step is given up
. "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

BACKUP_TOOLS=$(for t in $BENCH_TOOLS; do [ "$t" = plain ] || printf '%s ' "$t"; done)
REV_TOOLS=$(echo "$BACKUP_TOOLS" | tr ' ' '\n' | tac | tr '\n' ' ')
has "$BACKUP_TOOLS" yester || die "BENCH_TOOLS must include yester"
need rsync diff find grep dd sha256sum timeout perl tar
for t in $BACKUP_TOOLS; do [ "$t" = yester ] || need "$t"; done
[ -x /usr/bin/time ] || die "/usr/bin/time not found ($BENCH_APT)"
if has "$BENCH_STEPS" mount; then
    need fusermount3 mountpoint
    [ -e /dev/fuse ] || die "/dev/fuse missing (BENCH_STEPS without mount skips the mounts)"
fi
if has "$BENCH_STEPS" nfs; then need nfs-cp; fi

bench_workdir yester-compare
DATA=$WORK/data                 # what is backed up
GEN1=$WORK/gen1                 # a copy of generation 1: the plain side of diff -r
REL=${DATA#/}                   # where DATA shows up inside a snapshot
bench_results compare
bench_yester
T_START=$(date +%s)
bench_meta "TREE_MB=$BENCH_TREE_MB BIG_MB=$BENCH_BIG_MB BIG_DATA_MB=$BENCH_BIG_DATA_MB EDIT_PCT=$BENCH_EDIT_PCT ADD=$BENCH_ADD DEL=$BENCH_DEL IMG_WRITES=$BENCH_IMG_WRITES TOOLS=$BENCH_TOOLS STEPS=$BENCH_STEPS MEASURES=$BENCH_MEASURES WARM=$BENCH_WARM GREP_MB=$BENCH_GREP_MB YESTER_CACHE=${BENCH_YESTER_CACHE:-default} NEAR=$BENCH_NEAR"
rec meta info steps "$BENCH_STEPS" -
rec meta info measures "$BENCH_MEASURES" -
rec meta info warm "$BENCH_WARM" -
rec meta info near "$BENCH_NEAR" -

phase_start() { rec meta time "$1" "$(( $(date +%s) - T_START ))" s "seconds since start when the phase began"; }

# ---------------------------------------------------------------- 1. generation 1
phase_start data
make_dataset "$DATA"
data_info() { # GEN
    rec data "$1" tree_bytes "$(du -sb "$DATA/tree" | cut -f1)" bytes
    rec data "$1" total_bytes "$(du -sb "$DATA" | cut -f1)" bytes
    rec data "$1" files "$(find "$DATA" -type f | wc -l)" files
    rec data "$1" entries "$(find "$DATA" | wc -l)" entries "find | wc -l over the whole data dir"
}
data_info gen1
log "data: $(du -sh "$DATA" | cut -f1) in $(find "$DATA" -type f | wc -l) files"
if has "$BENCH_STEPS" mount && has "$BENCH_MEASURES" diff; then
    log "keeping a copy of generation 1 for the plain diff -r"
    cp -a "$DATA" "$GEN1"
fi

# ---------------------------------------------------------------- backups
init_repos

# step TOOL PHASE CMD...: one timed step, page cache dropped first.
STEP_RC=0
step() {
    local tool=$1 phase=$2
    shift 2
    drop_caches
    log "$phase: $tool"
    timed "$LOGS/$tool-$phase.log" "$@"
    rec "$tool" "$phase" wall "$T_WALL" s "drop_caches=$DROP_OK exit=$T_RC${T_NOTE:+ $T_NOTE}"
    rec "$tool" "$phase" peak_rss "$T_RSS" KiB
    rec "$tool" "$phase" cpu "$T_CPU" s "user+sys"
    [ "$T_RC" = 0 ] || log "WARNING: $tool $phase exited $T_RC (see $LOGS/$tool-$phase.log):$(tail -3 "$LOGS/$tool-$phase.log")"
    STEP_RC=$T_RC
}

backup() { # TOOL PHASE ARCHIVE-NAME
    case $1 in
        yester) step yester "$2" "$Y" -r "$REPO_Y" -v backup --source bench "$DATA" --json
                # -v: the index load line ("index: N blobs from M files in Xs, K KiB resident")
                rec yester "$2" index "$(grep -o 'index: .*' "$LOGS/yester-$2.log" | tail -1)" - "yester -v"
                rec yester "$2" summary "$(grep -v 'INFO' "$LOGS/yester-$2.log" | tr -d '\n\t' | tail -c 800)" - "backup --json" ;;
        restic) step restic "$2" restic -r "$REPO_R" backup "$DATA" ;;
        borg) step borg "$2" borg create --stats --compression zstd,3 "$REPO_B::$3" "$DATA" ;;
    esac
}

repo_size() { # PHASE
    local t
    for t in $BACKUP_TOOLS; do
        case $t in
            yester) rec yester "$1" repo_size "$(du -sb "$REPO_Y" | cut -f1)" bytes ;;
            restic) rec restic "$1" repo_size "$(du -sb "$REPO_R" | cut -f1)" bytes "plus local cache $(du -sb "$RESTIC_CACHE_DIR" 2>/dev/null | cut -f1) bytes" ;;
            borg) rec borg "$1" repo_size "$(du -sb "$REPO_B" | cut -f1)" bytes "plus local cache $(du -sb "$BORG_BASE_DIR" 2>/dev/null | cut -f1) bytes" ;;
        esac
    done
}

# Odd phases take the tools in the given order, even ones in reverse, so that no tool is
# always first after the data was written.
#
# settle: read the whole data set once (untimed) before the first tool's backup. Right after
# gigabytes were written, this VM's host is still busy with them: the first reader saw 5-6×
# the CPU steal of the next and took about 10 % longer (2026-12-02, three pairs of yester
# runs on fresh copies: 8.96-10.11 s straight after the copy, 8.27-8.75 s after a read
# pass), which always fell on the tool listed first. Every tool now starts after a full read.
settle() {
    drop_caches
    log "settling: reading the data set once (untimed)"
    tar -cf - -C "$DATA" . | cat > /dev/null
}
phase_start backup1
settle
for t in $BACKUP_TOOLS; do backup "$t" backup1 gen1; done
repo_size after1
# Generation 1 by a name that does not move, for diff -r through the mounts.
Y_GEN1=$("$Y" -r "$REPO_Y" snapshots --json | "$PY" -c 'import json, sys; print(json.load(sys.stdin)[0]["dated_name"])')
R_GEN1=
if has "$BACKUP_TOOLS" restic; then
    R_GEN1=$(restic -r "$REPO_R" snapshots --json | "$PY" -c 'import json, sys; print(json.load(sys.stdin)[0]["short_id"])')
fi

# ---------------------------------------------------------------- 2. generation 2
phase_start gen2
log "generation 2: editing ${BENCH_EDIT_PCT}% of small files, adding $BENCH_ADD, removing $BENCH_DEL"
# shellcheck disable=SC2086
"$PY" "$BENCH_HOME/make-gen2.py" "$DATA/tree" "$BENCH_EDIT_PCT" "$BENCH_ADD" "$BENCH_DEL" $BENCH_SRC_ROOTS > "$LOGS/gen2.log"
cat "$LOGS/gen2.log" >&2
rec data gen2 changes "$(cat "$LOGS/gen2.log")" -

log "generation 2: $BENCH_IMG_WRITES scattered 4 KiB writes into the image (dd conv=notrunc)"
IMG_BLOCKS=$(( $(stat -c %s "$DATA/vm/disk.img") / 4096 ))
DD_SRC=/usr/lib/x86_64-linux-gnu/libc.so.6
[ -r "$DD_SRC" ] || DD_SRC=$(find /usr/lib -type f -size +1M -readable 2>/dev/null | head -1)
SRC_BLOCKS=$(( $(stat -c %s "$DD_SRC") / 4096 ))
RANDOM=20261122
for i in $(seq 1 "$BENCH_IMG_WRITES"); do
    blk=$(( (RANDOM * 32768 + RANDOM) % IMG_BLOCKS ))
    # Real data (a block of a library, not random bytes), as a guest writing files would.
    src=$(( (RANDOM * 32768 + RANDOM) % SRC_BLOCKS ))
    dd if="$DD_SRC" of="$DATA/vm/disk.img" bs=4096 count=1 \
        skip="$src" seek="$blk" conv=notrunc status=none 2>/dev/null \
      || dd if=/dev/urandom of="$DATA/vm/disk.img" bs=4096 count=1 seek="$blk" conv=notrunc status=none
done
sync
data_info gen2

phase_start backup2
settle
for t in $REV_TOOLS; do backup "$t" backup2 gen2; done

# ---------------------------------------------------------------- 3. no-change backup
phase_start backup3
for t in $BACKUP_TOOLS; do backup "$t" backup3 gen2b; done

# ---------------------------------------------------------------- 4. repository sizes
repo_size after3

# ---------------------------------------------------------------- 5. full restore of generation 2
# Each tool restores the newest snapshot into an empty dir; the data dir lands at
# DIR/<its absolute path>. Then, untimed: diff -r against the source, and a metadata check
# (type, mode, owner, size, mtime in seconds, symlink target) with find -printf.
meta_list() { # DIR -> sorted list on stdout
    (cd "$1" && find . -printf '%P\t%y\t%m\t%u:%g\t%s\t%T@\t%l\n' | awk -F'\t' -v OFS='\t' '{ if ($2 == "d") $5 = "-"; sub(/\..*/, "", $6); print }' | LC_ALL=C sort)
}
if has "$BENCH_STEPS" restore; then
    phase_start restore
    [ "$BENCH_RESTORE_CHECK" = 1 ] && meta_list "$DATA" > "$WORK/meta.src"
    for t in $REV_TOOLS; do
        R=$WORK/restore-$t
        rm -rf "$R"; mkdir -p "$R"
        case $t in
            yester) step yester restore "$Y" -r "$REPO_Y" restore latest/bench --target "$R" ;;
            restic) step restic restore restic -r "$REPO_R" restore latest --target "$R" ;;
            borg) step borg restore bash -c 'cd "$1" && borg extract "$2"' _ "$R" "$REPO_B::gen2b" ;;
        esac
        ok=ok
        t_check=$(date +%s)
        if [ ! -d "$R$DATA" ]; then
            ok="nothing restored at $R$DATA (exit $STEP_RC)"
        elif [ "$BENCH_RESTORE_CHECK" = 1 ]; then
            if ! diff -r --no-dereference "$R$DATA" "$DATA" > "$WORK/diff.$t" 2>&1; then
                ok="diff: $(wc -l < "$WORK/diff.$t") lines: $(head -c 300 "$WORK/diff.$t" | tr '\n\t' '  ')"
                cp "$WORK/diff.$t" "$RESULTS_DIR/compare-$STAMP.diff-$t.txt"
            fi
            meta_list "$R$DATA" > "$WORK/meta.$t"
            if ! cmp -s "$WORK/meta.src" "$WORK/meta.$t"; then
                n=$(diff "$WORK/meta.src" "$WORK/meta.$t" | grep -c '^[<>]' || true)
                ok="$ok; metadata: $n differing lines: $(diff "$WORK/meta.src" "$WORK/meta.$t" | grep '^[<>]' | head -4 | tr '\n\t' '  ')"
                diff "$WORK/meta.src" "$WORK/meta.$t" > "$RESULTS_DIR/compare-$STAMP.meta-$t.txt" || true
            fi
        else
            ok="not checked (BENCH_RESTORE_CHECK=0)"
        fi
        if [ -d "$R$DATA" ]; then
            rec "$t" restore restored_bytes "$(du -sb "$R$DATA" | cut -f1)" bytes "du -sb (apparent size)"
            rec "$t" restore restored_disk "$(du -s --block-size=1 "$R$DATA" | cut -f1)" bytes "du -s (allocated: sparse files are smaller)"
        fi
        [ "$ok" = ok ] || log "WARNING: $t restore: $ok"
        rec "$t" restore check "$ok" - "took $(( $(date +%s) - t_check )) s"
        # Deleting tens of thousands of files is slow here: left for the cleanup at the end.
        mkdir -p "$WORK/trash"
        mv "$R" "$WORK/trash/"
    done
fi

# ---------------------------------------------------------------- expected results of the reads
# From the plain generation 2, untimed: what every mount must show.
EXP_ENTRIES=$(find "$DATA" | wc -l)
EXP_SHA=$(sha256sum "$DATA/vm/disk.img" | cut -d' ' -f1)
GREP_LIST=$WORK/grep-dirs.list
"$PY" "$BENCH_HOME/pick-dirs.py" "$DATA" "$DATA/tree" "$BENCH_GREP_MB" > "$GREP_LIST" 2> "$LOGS/grep-dirs.log"
GREP_BYTES=$(cd "$DATA" && xargs -d '\n' du -scb < "$GREP_LIST" | tail -1 | cut -f1)
GREP_FILES=$(cd "$DATA" && xargs -d '\n' find < "$GREP_LIST" | wc -l)
EXP_GREP=$(cd "$DATA" && mapfile -t D < "$GREP_LIST" && { grep -r -F -- "$BENCH_GREP" "${D[@]}" || true; } | wc -l)
rec data gen2 image_sha256 "$EXP_SHA" -
rec data gen2 grep_dirs "$(tr '\n' ' ' < "$GREP_LIST")" - "grep -r runs over these (relative to the data dir)"
rec data gen2 grep_bytes "$GREP_BYTES" bytes
rec data gen2 grep_entries "$GREP_FILES" entries
rec data gen2 grep_lines "$EXP_GREP" lines "grep -r -F $BENCH_GREP"

# Where each generation of the data dir shows up for TOOL.
root_of() { # TOOL gen1|gen2
    case $1/$2 in
        yester/gen2) echo "$MNT/yester/latest/bench/$REL" ;;
        yester/gen1) echo "$MNT/yester/snapshots/bench/$Y_GEN1/$REL" ;;
        yester-nox/gen2) echo "$MNT/yester-nox/latest/bench/$REL" ;;
        yester-nox/gen1) echo "$MNT/yester-nox/snapshots/bench/$Y_GEN1/$REL" ;;
        restic/gen2) echo "$MNT/restic/snapshots/latest/$REL" ;;
        restic/gen1) echo "$MNT/restic/ids/$R_GEN1/$REL" ;;
        borg/gen2) echo "$MNT/borg/gen2b/$REL" ;;
        borg/gen1) echo "$MNT/borg/gen1/$REL" ;;
        plain/gen2) echo "$DATA" ;;
        plain/gen1) echo "$GEN1" ;;
    esac
}

# diff -r output with the two roots replaced by GEN1 and GEN2, so tools can be compared.
diff_digest() { # OUTFILE R1 R2
    R1=$2 R2=$3 perl -pe 's/\Q$ENV{R1}\E/GEN1/g; s/\Q$ENV{R2}\E/GEN2/g' "$1" | LC_ALL=C sort | sha256sum | cut -c1-16
}
EXP_DIFF=

# ---------------------------------------------------------------- 6. reads through the mounts
# rec_read TOOL PHASE TEMP CHECK PID DAEMON-CPU DAEMON-HWM: the numbers of one timed read
# (T_WALL, T_CPU, T_NOTE from `timed`); the daemon's only if it has one (PID not empty).
rec_read() {
    rec "$1" "$2" wall "$T_WALL" s "drop_caches=$([ "$3" = cold ] && echo "$DROP_OK" || echo no)${T_NOTE:+ $T_NOTE} check=$4"
    rec "$1" "$2" client_cpu "$T_CPU" s "user+sys of the command"
    if [ -n "$5" ]; then
        rec "$1" "$2" daemon_cpu "$6" s "user+sys of the daemon (mount or server) during the command"
        rec "$1" "$2" daemon_hwm "$7" KiB "VmHWM of the daemon so far (started fresh for the cold round)"
    fi
}

# measure TOOL WHAT TEMP: one read of WHAT; cold = page cache dropped first (and, as the first
# read of a fresh daemon, cold daemon caches), warm = repeated at once in the same daemon.
measure() {
    local tool=$1 what=$2 temp=$3 ph=$2.$3 pid cmd c0=0 dcpu= hwm= ok=ok n
    R=$(root_of "$tool" gen2)
    R1=$(root_of "$tool" gen1)
    pid=${DAEMON_PID[$tool]:-}
    case $what in
        find) cmd='cd "$R" && find . | wc -l > "$OUT"' ;;
        ls) cmd='cd "$R" && ls -lR . > /dev/null' ;;
        cat) cmd='cat "$R/vm/disk.img" > /dev/null' ;;
        grep) cmd='cd "$R" && mapfile -t D < "$GREP_LIST" && { grep -r -F -- "$BENCH_GREP" "${D[@]}" || [ $? = 1 ]; } | wc -l > "$OUT"' ;;
        # exit 1 = differences found, which there are: the generations differ
        diff) cmd='diff -r --no-dereference "$R1" "$R" > "$OUT" 2>&1; [ $? -le 1 ]' ;;
    esac
    export R R1 GREP_LIST BENCH_GREP
    export OUT=$WORK/out.$tool.$ph
    [ "$temp" = cold ] && drop_caches
    # warm: the best of BENCH_WARM_RUNS runs (fewer if a run takes over BENCH_WARM_LONG s)
    local runs=1 k best=NA bcpu=NA bdcpu= brc=0 bnote=
    [ "$temp" = warm ] && runs=$BENCH_WARM_RUNS
    for k in $(seq 1 "$runs"); do
        [ -n "$pid" ] && c0=$(daemon_cpu_ticks "$pid")
        log "measure: $what $temp on $tool$([ "$runs" -gt 1 ] && echo " (run $k of $runs)")"
        timed "$LOGS/$tool-$ph.log" bash -c "$cmd"
        [ -n "$pid" ] && dcpu=$(ticks_to_s "$c0" "$(daemon_cpu_ticks "$pid")")
        if [ "$T_RC" != 0 ] || [ "$best" = NA ] || awk -v a="$T_WALL" -v b="$best" 'BEGIN {exit !(a < b)}'; then
            best=$T_WALL; bcpu=$T_CPU; bdcpu=$dcpu; brc=$T_RC; bnote=$T_NOTE
        fi
        [ "$T_RC" = 0 ] || break
        awk -v a="$T_WALL" -v l="$BENCH_WARM_LONG" 'BEGIN {exit !(a > l)}' && break
    done
    T_WALL=$best; T_CPU=$bcpu; dcpu=$bdcpu; T_RC=$brc; T_NOTE=$bnote
    [ "$k" -gt 1 ] && T_NOTE="${T_NOTE:+$T_NOTE }best of $k runs"
    if [ -n "$pid" ]; then
        hwm=$(daemon_hwm "$pid")
        kill -0 "$pid" 2>/dev/null || T_NOTE="$T_NOTE daemon died"
    fi
    case $what in
        find) n=$(cat "$OUT" 2>/dev/null || echo NA); [ "$n" = "$EXP_ENTRIES" ] || ok="entries=$n expected=$EXP_ENTRIES" ;;
        grep) n=$(cat "$OUT" 2>/dev/null || echo NA); [ "$n" = "$EXP_GREP" ] || ok="lines=$n expected=$EXP_GREP" ;;
        diff)
            n=$(diff_digest "$OUT" "$R1" "$R")
            rec "$tool" "$ph" diff_lines "$(wc -l < "$OUT")" lines "digest $n"
            if [ -z "$EXP_DIFF" ]; then
                EXP_DIFF=$n     # the first diff measured (plain's, it runs first) is the reference
                rec data gen2 diff_digest "$n" - "reference: diff -r output of $tool, roots replaced, sorted"
            elif [ "$n" != "$EXP_DIFF" ]; then
                ok="output differs from plain's ($(wc -l < "$OUT") lines, digest $n)"
                cp "$OUT" "$RESULTS_DIR/compare-$STAMP.diff-$tool.txt" 2>/dev/null || true
            fi ;;
    esac
    [ "$T_RC" = 0 ] || ok="exit $T_RC; $ok"
    [ "$ok" = ok ] || log "WARNING: $what $temp on $tool: $ok"
    rec_read "$tool" "$ph" "$temp" "$ok" "$pid" "$dcpu" "$hwm"
    rm -f "$OUT"
}

# The image's content through the mount (untimed, after the timed reads).
check_cat() { # TOOL
    local s
    s=$(timeout "$BENCH_TIMEOUT" sha256sum "$(root_of "$1" gen2)/vm/disk.img" 2>/dev/null | cut -d' ' -f1 || true)
    [ "$s" = "$EXP_SHA" ] && s=ok || s="sha256 mismatch: ${s:-read failed}"
    [ "$s" = ok ] || log "WARNING: cat on $1: $s"
    rec "$1" cat.check sha256 "$s" -
}

if has "$BENCH_STEPS" mount; then
    phase_start mount
    BORG_MOUNT=$REPO_B      # the whole repository: archives gen1, gen2, gen2b
    # plain first: its diff -r output is the reference for the mounts'.
    MOUNT_TOOLS=$(has "$BENCH_TOOLS" plain && echo plain; for t in $BACKUP_TOOLS; do echo "$t"; done)
    if [ -z "$EXP_DIFF" ] && has "$BENCH_MEASURES" diff && ! has "$BENCH_TOOLS" plain; then
        log "diff -r reference from the plain generations (untimed)"
        diff -r --no-dereference "$GEN1" "$DATA" > "$WORK/diff.ref" 2>&1 || true
        EXP_DIFF=$(diff_digest "$WORK/diff.ref" "$GEN1" "$DATA")
        rec data gen2 diff_digest "$EXP_DIFF" - "reference: plain diff -r output, roots replaced, sorted"
    fi
    for what in $BENCH_MEASURES; do
        # ls -lR also through a mount without extended attributes (yester mount --no-xattrs)
        tools=$MOUNT_TOOLS
        [ "$what" = ls ] && has "$BACKUP_TOOLS" yester && tools="$MOUNT_TOOLS yester-nox"
        for tool in $tools; do
            if mount_start "$tool"; then
                [ "$tool" = plain ] || rec "$tool" mount wall "$MOUNT_WALL" s "until the tree answers (before $what)"
                measure "$tool" "$what" cold
                if has "$BENCH_WARM" "$what"; then measure "$tool" "$what" warm; fi
                [ "$what" = cat ] && check_cat "$tool"
            else
                rec "$tool" "$what.cold" wall NA s "mount failed"
            fi
            mount_stop "$tool"
        done
    done
fi

# ---------------------------------------------------------------- 7. NFS: nfs-cp of the image
# yester nfs serve (generation 2, latest) against nfs-ganesha (VFS FSAL, NFSv3 over TCP)
# exporting the plain data dir; for reference also cp through the yester FUSE mount and from
# the plain tree. cold = fresh yester server (ganesha keeps no file data of its own: the page
# cache is all) and dropped page cache; warm = the same copy again.
port_up() { # PORT: a TCP connect to 127.0.0.1:PORT succeeds
    (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null
}
wait_port() { # PORT PID: until PORT answers (≤ 30 s) or PID exits
    local i
    for i in $(seq 1 300); do
        kill -0 "$2" 2>/dev/null || return 1
        port_up "$1" && return 0
        sleep 0.1
    done
    return 1
}

GANESHA=no
GANESHA_WHY="not tried"
start_ganesha() {
    local gp=$BENCH_GANESHA_PORT mp=$((BENCH_GANESHA_PORT - 1))
    command -v ganesha.nfsd >/dev/null || { GANESHA_WHY="ganesha.nfsd not installed"; return 1; }
    compgen -G "/usr/lib/*/ganesha/libfsalvfs.so" >/dev/null || compgen -G "/usr/lib*/ganesha/libfsalvfs.so" >/dev/null \
        || { GANESHA_WHY="nfs-ganesha-vfs not installed"; return 1; }
    # ganesha registers with the portmapper even for fixed ports: start one if none runs.
    if ! rpcinfo -p >/dev/null 2>&1; then
        command -v rpcbind >/dev/null || { GANESHA_WHY="no portmapper and no rpcbind"; return 1; }
        daemon_start rpcbind -- rpcbind -f
        sleep 0.5
        rpcinfo -p >/dev/null 2>&1 || { GANESHA_WHY="rpcbind did not start"; return 1; }
    fi
    cat > "$WORK/ganesha.conf" <<EOF
NFS_CORE_PARAM {
    NFS_Port = $gp;
    MNT_Port = $mp;
    Protocols = 3;
    Enable_UDP = false;
    Enable_NLM = false;
    Enable_RQUOTA = false;
    Bind_addr = 127.0.0.1;
}
NFS_KRB5 { Active_krb5 = false; }
NFSV4 { Graceless = true; }
EXPORT {
    Export_Id = 77;
    Path = $DATA;
    Pseudo = $DATA;
    Protocols = 3;
    Transports = TCP;
    Access_Type = RO;
    Squash = No_Root_Squash;
    SecType = sys;
    FSAL { Name = VFS; }
}
EOF
    daemon_start ganesha -- ganesha.nfsd -F -f "$WORK/ganesha.conf" -L "$LOGS/ganesha.log" -p "$WORK/ganesha.pid" -N NIV_EVENT
    if ! wait_port "$gp" "${DAEMON_PID[ganesha]}" || ! wait_port "$mp" "${DAEMON_PID[ganesha]}"; then
        GANESHA_WHY="ganesha did not come up: $(grep -E 'MAJ|CRIT|FATAL' "$LOGS/ganesha.log" 2>/dev/null | grep -v DBUS | tail -1 | cut -c1-200)"
        daemon_stop ganesha
        return 1
    fi
    GANESHA=yes
}

# nfs_copy NAME TEMP DAEMON SRC...: one timed copy of the image (nfs-cp URL, or cp PATH) into
# WORK, then its sha256 checked (untimed). DAEMON: the server's name in DAEMON_PID, or -.
nfs_copy() {
    local name=$1 temp=$2 pid=${DAEMON_PID[$3]:-} c0=0 dcpu= hwm= ok=ok s
    shift 3
    rm -f "$WORK/copy.img"
    [ "$temp" = cold ] && drop_caches
    [ -n "$pid" ] && c0=$(daemon_cpu_ticks "$pid")
    log "nfs: $name $temp"
    timed "$LOGS/$name-copy.$temp.log" "$@" "$WORK/copy.img"
    if [ -n "$pid" ]; then
        dcpu=$(ticks_to_s "$c0" "$(daemon_cpu_ticks "$pid")")
        hwm=$(daemon_hwm "$pid")
    fi
    s=$(sha256sum "$WORK/copy.img" 2>/dev/null | cut -d' ' -f1 || true)
    [ "$s" = "$EXP_SHA" ] || ok="sha256 mismatch: ${s:-nothing copied}"
    [ "$T_RC" = 0 ] || ok="exit $T_RC: $(tail -1 "$LOGS/$name-copy.$temp.log" | cut -c1-200); $ok"
    [ "$ok" = ok ] || log "WARNING: nfs $name $temp: $ok"
    rec_read "$name" "copy.$temp" "$temp" "$ok" "$pid" "$dcpu" "$hwm"
    rm -f "$WORK/copy.img"
}

nfs_url() { echo "nfs://127.0.0.1$1?version=3&nfsport=$2&mountport=$3"; }   # PATH NFSPORT MOUNTPORT

if has "$BENCH_STEPS" nfs; then
    phase_start nfs
    # yester nfs serve: a fresh server (and dropped page cache) for the cold copy.
    extra=()
    [ -n "$BENCH_YESTER_CACHE" ] && extra=(--cache-size "$BENCH_YESTER_CACHE")
    drop_caches
    daemon_start yester-nfs -- "$Y" -r "$REPO_Y" nfs serve --listen "127.0.0.1:$BENCH_NFS_PORT" --handle-key "$WORK/nfs-handle.key" "${extra[@]}"
    if wait_port "$BENCH_NFS_PORT" "${DAEMON_PID[yester-nfs]}"; then
        U=$(nfs_url "/latest/bench/$REL/vm/disk.img" "$BENCH_NFS_PORT" "$BENCH_NFS_PORT")
        nfs_copy yester-nfs cold yester-nfs nfs-cp "$U"
        nfs_copy yester-nfs warm yester-nfs nfs-cp "$U"
    else
        log "WARNING: yester nfs serve did not come up (see $LOGS/yester-nfs-daemon.log)"
        rec yester-nfs copy.cold wall NA s "server did not start"
    fi
    daemon_stop yester-nfs

    if has "$BENCH_TOOLS" plain; then
        if start_ganesha; then
            U=$(nfs_url "$DATA/vm/disk.img" "$BENCH_GANESHA_PORT" "$((BENCH_GANESHA_PORT - 1))")
            nfs_copy ganesha-nfs cold ganesha nfs-cp "$U"
            nfs_copy ganesha-nfs warm ganesha nfs-cp "$U"
            daemon_stop ganesha
        else
            log "WARNING: no nfs-ganesha ($GANESHA_WHY): the NFS target is measured against the FUSE path"
        fi
        [ -n "${DAEMON_PID[rpcbind]:-}" ] && daemon_stop rpcbind
        nfs_copy plain-cp cold - cp "$DATA/vm/disk.img"
        nfs_copy plain-cp warm - cp "$DATA/vm/disk.img"
    fi
    has "$BENCH_TOOLS" plain || GANESHA_WHY="plain is not in BENCH_TOOLS"
    rec meta info ganesha "$GANESHA" - "$([ "$GANESHA" = yes ] || echo "$GANESHA_WHY")"

    # The FUSE path: cp from a fresh yester mount.
    if [ -e /dev/fuse ] && mount_start yester; then
        nfs_copy yester-fuse-cp cold yester cp "$(root_of yester gen2)/vm/disk.img"
        nfs_copy yester-fuse-cp warm yester cp "$(root_of yester gen2)/vm/disk.img"
        mount_stop yester
    fi
fi

rec meta info loadavg_end "$(cut -d' ' -f1-3 /proc/loadavg)" -
rec meta info run_seconds "$(( $(date +%s) - T_START ))" s

# ---------------------------------------------------------------- 8. the tables
echo
"$PY" "$BENCH_HOME/compare-report.py" "$TSV" | tee "$TXT"
echo
log "raw numbers: $TSV"
log "tables: $TXT"

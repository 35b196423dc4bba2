#!/usr/bin/env bash
# Backup, incremental backup, no-change backup, repository size and full restore:
# yester against restic and borg, on the same data, in one run. See bench/README.md.
#
#   bench/compare.sh                                          # defaults: 800 MB tree + 512 MiB image
#   BENCH_TREE_MB=200 BENCH_BIG_MB=128 bench/compare.sh       # quick run
#
# Needs root (drop_caches), restic, borg, rsync, GNU time (/usr/bin/time), GNU diff/find, dd,
# python3. Self-contained: it does not source the other bench scripts.
set -euo pipefail
BENCH_HOME=$(cd "$(dirname "$0")" && pwd)   # helpers shared by the bench scripts

# ---------------------------------------------------------------- settings
BENCH_TREE_MB=${BENCH_TREE_MB:-800}         # size of the tree part (copies from /usr)
BENCH_BIG_MB=${BENCH_BIG_MB:-512}           # size of the VM-image-like file (MiB)
BENCH_BIG_DATA_MB=${BENCH_BIG_DATA_MB:-320} # MiB of real data inside it; the rest is zeros
BENCH_EDIT_PCT=${BENCH_EDIT_PCT:-1}         # % of small files edited in place for generation 2
BENCH_ADD=${BENCH_ADD:-300}                 # files added for generation 2
BENCH_DEL=${BENCH_DEL:-200}                 # files removed for generation 2
BENCH_IMG_WRITES=${BENCH_IMG_WRITES:-200}   # scattered 4 KiB writes into the image
BENCH_TOOLS=${BENCH_TOOLS:-"yester restic borg"}
BENCH_TIMEOUT=${BENCH_TIMEOUT:-1800}        # seconds before one step is given up
BENCH_KEEP=${BENCH_KEEP:-0}                 # 1: keep the work dir (data, repositories)
BENCH_SRC_ROOTS=${BENCH_SRC_ROOTS:-"/usr/include /usr/share /usr/lib"}

SCRIPT_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
PROJECT_DIR=$(cd "$SCRIPT_DIR/.." && pwd)
RESULTS_DIR=${BENCH_RESULTS_DIR:-$SCRIPT_DIR/results}
STAMP=$(date -u +%Y%m%d-%H%M%S)
PY=/usr/bin/python3
[ -x "$PY" ] || PY=python3

log() { printf '[%s] %s\n' "$(date +%H:%M:%S)" "$*" >&2; }
die() { log "ERROR: $*"; exit 1; }

for t in restic borg rsync diff find dd sha256sum timeout; do
    command -v "$t" >/dev/null || die "$t not found (apt-get install -y restic borgbackup rsync time)"
done
[ -x /usr/bin/time ] || die "/usr/bin/time not found (apt-get install -y time)"

# ---------------------------------------------------------------- work dir and cleanup
if [ -n "${BENCH_DIR:-}" ]; then
    mkdir -p "$BENCH_DIR"
    WORK=$(mktemp -d "$BENCH_DIR/yester-compare.XXXXXX")
else
    WORK=$(mktemp -d /var/tmp/yester-compare.XXXXXX)
fi
WORK=$(cd "$WORK" && pwd -P)
DATA=$WORK/data                 # what is backed up
LOGS=$WORK/logs
mkdir -p "$DATA/tree" "$DATA/vm" "$LOGS"

cleanup() {
    local rc=$?
    set +e
    if [ "$BENCH_KEEP" = 1 ]; then
        log "kept work dir $WORK"
    else
        rm -rf "$WORK"
    fi
    exit $rc
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# ---------------------------------------------------------------- results
mkdir -p "$RESULTS_DIR"
TSV=$RESULTS_DIR/compare-$STAMP.tsv
TXT=$RESULTS_DIR/compare-$STAMP.txt
printf 'tool\tphase\tmetric\tvalue\tunit\tnote\n' > "$TSV"
rec() { # TOOL PHASE METRIC VALUE UNIT [NOTE]
    printf '%s\t%s\t%s\t%s\t%s\t%s\n' "$1" "$2" "$3" "$4" "$5" "${6:-}" >> "$TSV"
}

DROP_OK=unknown
drop_caches() {
    sync
    if echo 3 > /proc/sys/vm/drop_caches 2>/dev/null; then DROP_OK=yes; else DROP_OK=no; fi
}

# ---------------------------------------------------------------- tools and versions
if [ -n "${YESTER_BIN:-}" ]; then
    [ -x "$YESTER_BIN" ] || die "YESTER_BIN=$YESTER_BIN is not executable"
else
    log "building yester (cargo build --release)"
    (cd "$PROJECT_DIR" && cargo build --release --quiet) || die "cargo build failed"
    YESTER_BIN=$PROJECT_DIR/target/release/yester
fi
# A private copy: others may rebuild target/ while we run.
cp "$YESTER_BIN" "$WORK/yester"
Y=$WORK/yester
if [ -z "${YESTER_COMMIT:-}" ]; then
    YESTER_COMMIT=$(git -C "$PROJECT_DIR" rev-parse --short HEAD 2>/dev/null || echo unknown)
    if [ -n "$(git -C "$PROJECT_DIR" status --porcelain --untracked-files=no 2>/dev/null)" ]; then
        YESTER_COMMIT="$YESTER_COMMIT+dirty"
    fi
fi
RESTIC_VERSION=$(restic version | head -1)
BORG_VERSION=$(borg --version)
T_START=$(date +%s)
rec meta info date "$(date -u -Is)" -
rec meta info host "$(nproc) cores, $(awk '/MemTotal/ {printf "%.1f GiB", $2/1048576}' /proc/meminfo), kernel $(uname -r)" -
rec meta info yester_commit "$YESTER_COMMIT" -
rec meta info yester_version "$("$Y" --version)" -
rec meta info restic_version "$RESTIC_VERSION" -
rec meta info borg_version "$BORG_VERSION" -
rec meta info settings "TREE_MB=$BENCH_TREE_MB BIG_MB=$BENCH_BIG_MB BIG_DATA_MB=$BENCH_BIG_DATA_MB EDIT_PCT=$BENCH_EDIT_PCT ADD=$BENCH_ADD DEL=$BENCH_DEL IMG_WRITES=$BENCH_IMG_WRITES" -
rec meta info loadavg_start "$(cut -d' ' -f1-3 /proc/loadavg)" -
log "work dir $WORK; yester $YESTER_COMMIT; $RESTIC_VERSION; $BORG_VERSION"

# ---------------------------------------------------------------- 1. generation 1
log "selecting ~${BENCH_TREE_MB} MB of files from $BENCH_SRC_ROOTS"
"$PY" "$BENCH_HOME/select-tree.py" "$BENCH_TREE_MB" $BENCH_SRC_ROOTS > "$WORK/files.list"
log "copying $(wc -l < "$WORK/files.list") files with rsync"
rsync -aH --files-from="$WORK/files.list" / "$DATA/tree/"

log "writing a ${BENCH_BIG_MB} MiB VM-image-like file (${BENCH_BIG_DATA_MB} MiB real data, rest zeros)"
"$PY" "$BENCH_HOME/make-image.py" "$DATA/vm/disk.img" "$BENCH_BIG_MB" "$BENCH_BIG_DATA_MB"

data_info() { # GEN
    rec data "$1" tree_bytes "$(du -sb "$DATA/tree" | cut -f1)" bytes
    rec data "$1" total_bytes "$(du -sb "$DATA" | cut -f1)" bytes
    rec data "$1" files "$(find "$DATA" -type f | wc -l)" files
    rec data "$1" entries "$(find "$DATA" | wc -l)" entries "find | wc -l over the whole data dir"
}
data_info gen1
log "data: $(du -sh "$DATA" | cut -f1) in $(find "$DATA" -type f | wc -l) files"

# ---------------------------------------------------------------- repositories
export RESTIC_PASSWORD=yester-bench
export RESTIC_CACHE_DIR=$WORK/restic-cache
export BORG_BASE_DIR=$WORK/borg-base
export BORG_UNKNOWN_UNENCRYPTED_REPO_ACCESS_IS_OK=yes BORG_RELOCATED_REPO_ACCESS_IS_OK=yes
REPO_Y=$WORK/repo-yester
REPO_R=$WORK/repo-restic
REPO_B=$WORK/repo-borg
"$Y" init "$REPO_Y" > "$LOGS/yester-init.log" 2>&1
restic init -r "$REPO_R" > "$LOGS/restic-init.log" 2>&1
borg init --encryption none "$REPO_B" > "$LOGS/borg-init.log" 2>&1
rec restic repo format "$(restic -r "$REPO_R" cat config 2>/dev/null | awk -F'[:,]' '/"version"/ {gsub(/ /, "", $2); print "v" $2}')" - "restic repository version (v2 = zstd compression)"

# Run one timed step: page cache dropped first, /usr/bin/time for wall/peak RSS/CPU.
STEP_RC=0
step() { # TOOL PHASE CMD...
    local tool=$1 phase=$2 tf rc=0 wall=NA rss=NA user=0 sys=0 note=""
    shift 2
    tf=$(mktemp "$WORK/time.XXXXXX")
    drop_caches
    log "$phase: $tool"
    timeout "$BENCH_TIMEOUT" /usr/bin/time -f '%e %M %U %S' -o "$tf" "$@" > "$LOGS/$tool-$phase.log" 2>&1 || rc=$?
    if [ "$rc" = 124 ]; then
        note=" timed out after ${BENCH_TIMEOUT}s"
    elif [ -s "$tf" ]; then
        read -r wall rss user sys < <(tail -1 "$tf")
    fi
    rec "$tool" "$phase" wall "$wall" s "drop_caches=$DROP_OK exit=$rc$note"
    rec "$tool" "$phase" peak_rss "$rss" KiB
    rec "$tool" "$phase" cpu "$(awk -v u="$user" -v s="$sys" 'BEGIN {printf "%.2f", u + s}')" s "user+sys"
    [ "$rc" = 0 ] || log "WARNING: $tool $phase exited $rc (see $LOGS/$tool-$phase.log):$(tail -3 "$LOGS/$tool-$phase.log")"
    STEP_RC=$rc
    rm -f "$tf"
}

backup() { # TOOL PHASE ARCHIVE-NAME
    case $1 in
        yester) step yester "$2" "$Y" -r "$REPO_Y" backup --source bench "$DATA" --json
                rec yester "$2" summary "$(tr -d '\n\t' < "$LOGS/yester-$2.log" | tail -c 800)" - "backup --json" ;;
        restic) step restic "$2" restic -r "$REPO_R" backup "$DATA" ;;
        borg) step borg "$2" borg create --stats --compression zstd,3 "$REPO_B::$3" "$DATA" ;;
    esac
}

repo_size() { # PHASE
    local t
    for t in $BENCH_TOOLS; do
        case $t in
            yester) rec yester "$1" repo_size "$(du -sb "$REPO_Y" | cut -f1)" bytes ;;
            restic) rec restic "$1" repo_size "$(du -sb "$REPO_R" | cut -f1)" bytes "plus local cache $(du -sb "$RESTIC_CACHE_DIR" 2>/dev/null | cut -f1) bytes" ;;
            borg) rec borg "$1" repo_size "$(du -sb "$REPO_B" | cut -f1)" bytes "plus local cache $(du -sb "$BORG_BASE_DIR" 2>/dev/null | cut -f1) bytes" ;;
        esac
    done
}

# Odd phases take the tools in the given order, even ones in reverse, so that no tool is
# always first after the data was written.
REV_TOOLS=$(echo "$BENCH_TOOLS" | tr ' ' '\n' | tac | tr '\n' ' ')

for t in $BENCH_TOOLS; do backup "$t" backup1 gen1; done
repo_size after1

# ---------------------------------------------------------------- 2. generation 2
log "generation 2: editing ${BENCH_EDIT_PCT}% of small files, adding $BENCH_ADD, removing $BENCH_DEL"
"$PY" - "$DATA/tree" "$BENCH_EDIT_PCT" "$BENCH_ADD" "$BENCH_DEL" $BENCH_SRC_ROOTS > "$LOGS/gen2.log" <<'EOF'
# Realistic day-to-day changes, deterministic (seeded):
# - edit ~PCT % of the small files (< 64 KiB) in place: overwrite a short run of bytes at a
#   random offset and, for half of them, append a line (size changes);
# - remove DEL files (regular files, any size);
# - add ADD files: real files from the source roots that are not in the tree yet, copied
#   under tree/new/... (so they are new data, not renames of existing data).
import os, random, shutil, stat, sys
tree, pct, nadd, ndel = sys.argv[1], float(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4])
roots = sys.argv[5:]
rng = random.Random(20261122)
files = []
for d, dirs, fs in os.walk(tree):
    dirs.sort()
    for f in sorted(fs):
        p = os.path.join(d, f)
        st = os.lstat(p)
        if stat.S_ISREG(st.st_mode):
            files.append((p, st.st_size))
small = [p for p, s in files if 0 < s < 64 * 1024]
edit = rng.sample(small, max(1, int(len(small) * pct / 100)))
for p in edit:
    os.chmod(p, os.stat(p).st_mode | stat.S_IWUSR)
    with open(p, "r+b") as f:
        size = os.fstat(f.fileno()).st_size
        off = rng.randrange(0, size)
        f.seek(off)
        f.write(b"yester-bench edit %d\n" % rng.getrandbits(48))
        if rng.random() < 0.5:
            f.seek(0, 2)
            f.write(b"# appended by the generation 2 edit\n")
editset = set(edit)
rest = [p for p, s in files if p not in editset]
dele = rng.sample(rest, min(ndel, len(rest)))
for p in dele:
    os.unlink(p)
have = set(os.path.relpath(p, tree) for p, _ in files)
cand = []
for r in roots:
    for d, dirs, fs in os.walk(r):
        dirs.sort()
        for f in sorted(fs):
            p = os.path.join(d, f)
            rel = p.lstrip("/")
            if rel in have:
                continue
            try:
                st = os.lstat(p)
            except OSError:
                continue
            if stat.S_ISREG(st.st_mode) and 0 < st.st_size < 4 << 20 and os.access(p, os.R_OK):
                cand.append((p, st.st_size))
add = rng.sample(cand, min(nadd, len(cand)))
added = 0
for p, s in add:
    dst = os.path.join(tree, "new", p.lstrip("/"))
    os.makedirs(os.path.dirname(dst), exist_ok=True)
    shutil.copy2(p, dst)
    added += s
print(f"edited {len(edit)} of {len(small)} small files; removed {len(dele)}; added {len(add)} files, {added} bytes")
EOF
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

for t in $REV_TOOLS; do backup "$t" backup2 gen2; done

# ---------------------------------------------------------------- 3. no-change backup
for t in $BENCH_TOOLS; do backup "$t" backup3 gen2b; done

# ---------------------------------------------------------------- 4. repository sizes
repo_size after3

# ---------------------------------------------------------------- 5. full restore of generation 2
# Each tool restores the newest snapshot into an empty dir; the data dir lands at
# DIR/<its absolute path>. Then, untimed: diff -r against the source, and a metadata check
# (type, mode, owner, size, mtime in seconds, symlink target) with find -printf.
meta_list() { # DIR -> sorted list on stdout
    (cd "$1" && find . -printf '%P\t%y\t%m\t%u:%g\t%s\t%T@\t%l\n' | awk -F'\t' -v OFS='\t' '{ if ($2 == "d") $5 = "-"; sub(/\..*/, "", $6); print }' | LC_ALL=C sort)
}
meta_list "$DATA" > "$WORK/meta.src"
for t in $REV_TOOLS; do
    R=$WORK/restore-$t
    rm -rf "$R"; mkdir -p "$R"
    case $t in
        yester) step yester restore "$Y" -r "$REPO_Y" restore latest/bench --target "$R" ;;
        restic) step restic restore restic -r "$REPO_R" restore latest --target "$R" ;;
        borg) step borg restore bash -c 'cd "$1" && borg extract "$2"' _ "$R" "$REPO_B::gen2b" ;;
    esac
    ok=ok
    if [ -d "$R$DATA" ]; then
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
        rec "$t" restore restored_bytes "$(du -sb "$R$DATA" | cut -f1)" bytes "du -sb (apparent size)"
        rec "$t" restore restored_disk "$(du -s --block-size=1 "$R$DATA" | cut -f1)" bytes "du -s (allocated: sparse files are smaller)"
    else
        ok="nothing restored at $R$DATA (exit $STEP_RC)"
    fi
    [ "$ok" = ok ] || log "WARNING: $t restore: $ok"
    rec "$t" restore check "$ok" -
    rm -rf "$R"
done

rec meta info loadavg_end "$(cut -d' ' -f1-3 /proc/loadavg)" -
rec meta info run_seconds "$(( $(date +%s) - T_START ))" s

# ---------------------------------------------------------------- 6. the table
report() {
    awk -F'\t' -v drop="$DROP_OK" '
    NR == 1 { next }
    $1 == "meta" { meta[$3] = $4; next }
    $1 == "data" { data[$2 SUBSEP $3] = $4; next }
    { v[$1 SUBSEP $2 SUBSEP $3] = $4; n[$1 SUBSEP $2 SUBSEP $3] = $6 }
    function num(x) { return (x != "" && x != "NA" && x != "n/a") }
    function cell(x, f) { return num(x) ? sprintf(f, x) : "n/a" }
    function ratio(a, b) { return (num(a) && num(b) && b + 0 > 0) ? sprintf("%.2f", a / b) : "n/a" }
    function mib(x) { return num(x) ? x / 1024 : "" }
    function mb(x) { return num(x) ? x / 1048576 : "" }
    function get(t, ph, m) { k = t SUBSEP ph SUBSEP m; return (k in v) ? v[k] : "" }
    function row(label, y, r, b, f) {
        printf "%-30s %10s %10s %10s %9s %9s\n", label, cell(y, f), cell(r, f), cell(b, f), ratio(y, r), ratio(y, b)
    }
    function phase(label, ph, m, f, conv) {
        y = get("yester", ph, m); r = get("restic", ph, m); b = get("borg", ph, m)
        if (conv == "mib") { y = mib(y); r = mib(r); b = mib(b) }
        if (conv == "mb") { y = mb(y); r = mb(r); b = mb(b) }
        row(label, y, r, b, f)
    }
    END {
        printf "yester %s | %s | %s | %s\n", meta["yester_commit"], meta["restic_version"], meta["borg_version"], meta["host"]
        printf "generation 1: %.0f MB in %d files (tree %.0f MB + image); generation 2: %.0f MB in %d files\n", data["gen1" SUBSEP "total_bytes"] / 1e6, data["gen1" SUBSEP "files"], data["gen1" SUBSEP "tree_bytes"] / 1e6, data["gen2" SUBSEP "total_bytes"] / 1e6, data["gen2" SUBSEP "files"]
        printf "changes: %s\n", data["gen2" SUBSEP "changes"]
        printf "settings: %s\n", meta["settings"]
        printf "page cache dropped before each step: %s; load average at start %s, at end %s; run %d s\n", drop, meta["loadavg_start"], meta["loadavg_end"], meta["run_seconds"]
        printf "ratios below 1 mean yester is faster/smaller\n\n"
        hdr = sprintf("%-30s %10s %10s %10s %9s %9s\n", "", "yester", "restic", "borg", "y/restic", "y/borg")
        printf "wall time (s)\n%s", hdr
        phase("1. first backup (gen 1)", "backup1", "wall", "%.2f")
        phase("2. incremental (gen 2)", "backup2", "wall", "%.2f")
        phase("3. no-change (gen 2 again)", "backup3", "wall", "%.2f")
        phase("5. full restore (gen 2)", "restore", "wall", "%.2f")
        printf "\npeak RSS (MiB)\n%s", hdr
        phase("1. first backup", "backup1", "peak_rss", "%.0f", "mib")
        phase("2. incremental", "backup2", "peak_rss", "%.0f", "mib")
        phase("3. no-change", "backup3", "peak_rss", "%.0f", "mib")
        phase("5. full restore", "restore", "peak_rss", "%.0f", "mib")
        printf "\nCPU user+sys (s)\n%s", hdr
        phase("1. first backup", "backup1", "cpu", "%.2f")
        phase("2. incremental", "backup2", "cpu", "%.2f")
        phase("3. no-change", "backup3", "cpu", "%.2f")
        phase("5. full restore", "restore", "cpu", "%.2f")
        printf "\nrepository size (MiB, du -sb, without local caches)\n%s", hdr
        phase("4a. after gen 1", "after1", "repo_size", "%.1f", "mb")
        phase("4b. after gen 2 + no-change", "after3", "repo_size", "%.1f", "mb")
        y = get("yester", "after3", "repo_size") - get("yester", "after1", "repo_size")
        r = get("restic", "after3", "repo_size") - get("restic", "after1", "repo_size")
        b = get("borg", "after3", "repo_size") - get("borg", "after1", "repo_size")
        row("4c. growth for gen 2", y / 1048576, r / 1048576, b / 1048576, "%.1f")
        printf "\nrestore checks (diff -r content; type/mode/owner/size/mtime/link target)\n"
        split("yester restic borg", T, " ")
        for (j = 1; j <= 3; j++) printf "  %-7s %s\n", T[j], get(T[j], "restore", "check")
        printf "\nexit status per step (0 = success)\n"
        split("backup1 backup2 backup3 restore", P, " ")
        for (i = 1; i <= 4; i++) {
            printf "  %-8s", P[i]
            for (j = 1; j <= 3; j++) { x = n[T[j] SUBSEP P[i] SUBSEP "wall"]; sub(/.*exit=/, "", x); printf " %s=%s", T[j], x }
            printf "\n"
        }
    }' "$TSV"
}
echo
report | tee "$TXT"
echo
log "raw numbers: $TSV"
log "table: $TXT"

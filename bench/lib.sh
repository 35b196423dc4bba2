# Shell shared by the bench scripts (compare.sh, mount-compare.sh, scale.sh). Sourced, not run.
# See bench/README.md. The sourcing script sets its BENCH_* knobs first; this file reads
# BENCH_DIR, BENCH_KEEP, BENCH_TIMEOUT, BENCH_RESULTS_DIR, BENCH_SRC_ROOTS, YESTER_BIN and
# YESTER_COMMIT.

BENCH_HOME=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
PROJECT_DIR=$(cd "$BENCH_HOME/.." && pwd)
RESULTS_DIR=${BENCH_RESULTS_DIR:-$BENCH_HOME/results}
STAMP=$(date -u +%Y%m%d-%H%M%S)
BENCH_KEEP=${BENCH_KEEP:-0}
BENCH_TIMEOUT=${BENCH_TIMEOUT:-1800}
BENCH_SRC_ROOTS=${BENCH_SRC_ROOTS:-"/usr/include /usr/share /usr/lib"}
BENCH_APT="apt-get install -y restic borgbackup fuse3 python3-llfuse rsync time libnfs-utils nfs-ganesha nfs-ganesha-vfs"
PY=/usr/bin/python3
[ -x "$PY" ] || PY=python3
TICKS=$(getconf CLK_TCK)

log() { printf '[%s] %s\n' "$(date +%H:%M:%S)" "$*" >&2; }
die() { log "ERROR: $*"; exit 1; }
has() { case " $1 " in *" $2 "*) return 0 ;; esac; return 1; }   # has LIST WORD

need() { # COMMAND...
    local t
    for t in "$@"; do
        command -v "$t" >/dev/null || die "$t not found ($BENCH_APT)"
    done
}

# ---------------------------------------------------------------- work dir and cleanup
# bench_workdir PREFIX: a fresh WORK dir (in BENCH_DIR, default /var/tmp) with LOGS and MNT;
# removed at exit (after every daemon is stopped) unless BENCH_KEEP=1.
declare -A DAEMON_PID=()     # name -> pid of every daemon still running
declare -A DAEMON_MNT=()     # name -> its FUSE mount point, if it is a mount daemon
bench_workdir() {
    local base=${BENCH_DIR:-/var/tmp}
    mkdir -p "$base"
    WORK=$(mktemp -d "$base/$1.XXXXXX")
    WORK=$(cd "$WORK" && pwd -P)
    LOGS=$WORK/logs
    MNT=$WORK/mnt
    mkdir -p "$LOGS" "$MNT"
    trap bench_cleanup EXIT
    trap 'exit 130' INT TERM
}

bench_cleanup() {
    local rc=$? n
    set +e
    for n in "${!DAEMON_PID[@]}"; do daemon_stop "$n"; done
    vm_memory_restore
    if [ "$BENCH_KEEP" = 1 ]; then
        log "kept work dir $WORK"
    elif [ -n "${WORK:-}" ]; then
        rm -rf "$WORK"
    fi
    exit $rc
}

# daemon_start NAME [MOUNTPOINT] -- CMD...: start CMD in the background (it must stay in the
# foreground, so $! is the daemon itself) and remember it for daemon_stop and the cleanup.
daemon_start() {
    local name=$1 m=
    shift
    if [ "$1" != -- ]; then m=$1; shift; fi
    shift
    "$@" >> "$LOGS/$name-daemon.log" 2>&1 &
    DAEMON_PID[$name]=$!
    DAEMON_MNT[$name]=$m
}

# daemon_stop NAME: unmount (FUSE daemons), else SIGTERM; wait for the process to exit.
daemon_stop() {
    local name=$1 pid=${DAEMON_PID[$1]:-} m=${DAEMON_MNT[$1]:-} i
    if [ -n "$m" ] && mountpoint -q "$m" 2>/dev/null; then
        fusermount3 -u "$m" 2>/dev/null || { sleep 1; fusermount3 -u "$m" 2>/dev/null; } \
            || fusermount3 -uz "$m" 2>/dev/null || true
    elif [ -n "$pid" ]; then
        kill "$pid" 2>/dev/null || true
    fi
    if [ -n "$pid" ]; then
        for i in $(seq 1 300); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
        if kill -0 "$pid" 2>/dev/null; then
            log "daemon $name ($pid) did not exit: sending KILL"
            kill -9 "$pid" 2>/dev/null || true
        fi
        wait "$pid" 2>/dev/null || true
    fi
    unset "DAEMON_PID[$name]" "DAEMON_MNT[$name]"
}

daemon_hwm() { # PID -> peak RSS in KiB (VmHWM)
    awk '/^VmHWM:/ {print $2}' "/proc/$1/status" 2>/dev/null || echo NA
}
daemon_cpu_ticks() { # PID -> utime+stime in clock ticks
    # Field 2 (comm) may hold spaces: strip through the last ')'.
    sed 's/^.*) //' "/proc/$1/stat" 2>/dev/null | awk '{print $12 + $13}' || echo 0
}
ticks_to_s() { awk -v a="$1" -v b="$2" -v t="$TICKS" 'BEGIN {printf "%.2f", (b - a) / t}'; }
elapsed() { awk -v a="$1" -v b="$(date +%s.%N)" 'BEGIN {printf "%.2f", b - a}'; }   # since T0

# ---------------------------------------------------------------- results
# bench_results PREFIX: TSV and TXT in RESULTS_DIR, named PREFIX-<UTC date>.
bench_results() {
    mkdir -p "$RESULTS_DIR"
    TSV=$RESULTS_DIR/$1-$STAMP.tsv
    TXT=$RESULTS_DIR/$1-$STAMP.txt
    printf 'tool\tphase\tmetric\tvalue\tunit\tnote\n' > "$TSV"
}
rec() { # TOOL PHASE METRIC VALUE UNIT [NOTE]
    printf '%s\t%s\t%s\t%s\t%s\t%s\n' "$1" "$2" "$3" "$4" "$5" "${6:-}" >> "$TSV"
}

DROP_OK=unknown
drop_caches() {
    sync
    if echo 3 > /proc/sys/vm/drop_caches 2>/dev/null; then DROP_OK=yes; else DROP_OK=no; fi
}

# ---------------------------------------------------------------- guest memory (VMs)
# vm_memory_setup: on a VM whose balloon device reports free pages to the host (virtio
# free page reporting; this machine's Firecracker guests do), every page freed in the guest
# is soon handed back, and the next use of it costs a host page fault: writing 4 GB into
# tmpfs took 11.4 s the first time and 3.3 s the second. Which tool meets such pages depends
# on what ran before it (one warm `nfs-cp` of 1 GiB took 0.6 to 2.2 s), so for the run
# reporting is switched off (page_reporting_order above the largest order) and free memory
# is touched once, through a tmpfs file, leaving BENCH_VM_SPARE_MB (default 2048) untouched.
# The old order comes back at exit. BENCH_PAGE_REPORTING=keep leaves the machine alone.
PAGE_REPORTING_ORDER_FILE=/sys/module/page_reporting/parameters/page_reporting_order
PAGE_REPORTING_SAVED=
VM_MEMORY=untouched
vm_memory_setup() {
    local free_mb fill_mb spare=${BENCH_VM_SPARE_MB:-2048} fill
    if [ "${BENCH_PAGE_REPORTING:-}" = keep ] || [ ! -w "$PAGE_REPORTING_ORDER_FILE" ]; then
        return 0
    fi
    PAGE_REPORTING_SAVED=$(cat "$PAGE_REPORTING_ORDER_FILE")
    echo 11 > "$PAGE_REPORTING_ORDER_FILE" || { PAGE_REPORTING_SAVED=; return 0; }
    VM_MEMORY="free page reporting off for the run (order $PAGE_REPORTING_SAVED -> 11)"
    free_mb=$(awk '/MemFree/ {print int($2 / 1024)}' /proc/meminfo)
    fill_mb=$((free_mb - spare))
    fill=/dev/shm/yester-bench-fill.$$
    if [ "$fill_mb" -gt 0 ] && [ -d /dev/shm ] \
        && [ "$(df -Pm /dev/shm | awk 'NR == 2 {print $4}')" -gt "$fill_mb" ]; then
        log "touching $fill_mb MiB of free memory once (free page reporting was on)"
        dd if=/dev/zero of="$fill" bs=1M count="$fill_mb" status=none 2>/dev/null || true
        rm -f "$fill"
        VM_MEMORY="$VM_MEMORY; $fill_mb MiB of free memory touched first"
    fi
}

vm_memory_restore() {
    if [ -n "$PAGE_REPORTING_SAVED" ]; then
        echo "$PAGE_REPORTING_SAVED" > "$PAGE_REPORTING_ORDER_FILE" 2>/dev/null || true
        PAGE_REPORTING_SAVED=
    fi
}

# ---------------------------------------------------------------- yester and versions
# bench_yester: Y = a private copy of the binary (YESTER_BIN, else a fresh release build), so a
# concurrent rebuild of target/ does not change it mid-run; YESTER_COMMIT = what it was built
# from (given, else this checkout's HEAD, +dirty if modified).
bench_yester() {
    if [ -n "${YESTER_BIN:-}" ]; then
        [ -x "$YESTER_BIN" ] || die "YESTER_BIN=$YESTER_BIN is not executable"
    else
        log "building yester (cargo build --release)"
        (cd "$PROJECT_DIR" && cargo build --release --quiet) || die "cargo build failed"
        YESTER_BIN=$PROJECT_DIR/target/release/yester
    fi
    cp "$YESTER_BIN" "$WORK/yester"
    Y=$WORK/yester
    if [ -z "${YESTER_COMMIT:-}" ]; then
        YESTER_COMMIT=$(git -C "$PROJECT_DIR" rev-parse --short HEAD 2>/dev/null || echo unknown)
        if [ -n "$(git -C "$PROJECT_DIR" status --porcelain --untracked-files=no 2>/dev/null)" ]; then
            YESTER_COMMIT="$YESTER_COMMIT+dirty"
        fi
    fi
}

bench_meta() { # SETTINGS -- the machine, the versions of the tools in BENCH_TOOLS, SETTINGS
    rec meta info date "$(date -u -Is)" -
    rec meta info host "$(nproc) cores, $(awk '/MemTotal/ {printf "%.1f GiB", $2/1048576}' /proc/meminfo), kernel $(uname -r)" -
    rec meta info yester_commit "$YESTER_COMMIT" -
    rec meta info yester_version "$("$Y" --version)" -
    RESTIC_VERSION=-; BORG_VERSION=-
    if has "${BENCH_TOOLS:-}" restic; then RESTIC_VERSION=$(restic version | head -1); fi
    if has "${BENCH_TOOLS:-}" borg; then BORG_VERSION=$(borg --version); fi
    rec meta info restic_version "$RESTIC_VERSION" -
    rec meta info borg_version "$BORG_VERSION" -
    rec meta info settings "$1" -
    vm_memory_setup
    rec meta info vm_memory "$VM_MEMORY" -
    rec meta info loadavg_start "$(cut -d' ' -f1-3 /proc/loadavg)" -
    log "work dir $WORK; yester $YESTER_COMMIT; $RESTIC_VERSION; $BORG_VERSION"
}

# ---------------------------------------------------------------- timed commands
# timed LOGFILE CMD...: run CMD under timeout and /usr/bin/time; sets T_WALL (s, to the ms:
# /usr/bin/time only has 10 ms, too coarse for warm reads), T_RSS (peak RSS, KiB), T_CPU
# (user+sys, s), T_RC and T_NOTE. Output goes to LOGFILE.
timed() {
    local logf=$1 tf user=0 sys=0 wall t0
    shift
    tf=$(mktemp "$WORK/time.XXXXXX")
    T_RC=0; T_WALL=NA; T_RSS=NA; T_CPU=NA; T_NOTE=
    t0=$(date +%s.%N)
    timeout "$BENCH_TIMEOUT" /usr/bin/time -f '%e %M %U %S' -o "$tf" "$@" > "$logf" 2>&1 || T_RC=$?
    wall=$(awk -v a="$t0" -v b="$(date +%s.%N)" 'BEGIN {printf "%.3f", b - a}')
    if [ "$T_RC" = 124 ]; then
        T_NOTE="timed out after ${BENCH_TIMEOUT}s"
    elif [ -s "$tf" ]; then
        read -r _ T_RSS user sys < <(tail -1 "$tf")
        T_WALL=$wall
        T_CPU=$(awk -v u="$user" -v s="$sys" 'BEGIN {printf "%.2f", u + s}')
    fi
    rm -f "$tf"
}

# ---------------------------------------------------------------- the data set
# make_dataset DATA: DATA/tree (≈ BENCH_TREE_MB of real files from BENCH_SRC_ROOTS) and
# DATA/vm/disk.img (BENCH_BIG_MB MiB VM-image-like file with BENCH_BIG_DATA_MB of real data).
make_dataset() {
    local data=$1
    mkdir -p "$data/tree" "$data/vm"
    log "selecting ~${BENCH_TREE_MB} MB of files from $BENCH_SRC_ROOTS"
    # shellcheck disable=SC2086
    "$PY" "$BENCH_HOME/select-tree.py" "$BENCH_TREE_MB" $BENCH_SRC_ROOTS > "$WORK/files.list"
    log "copying $(wc -l < "$WORK/files.list") files with rsync"
    rsync -aH --files-from="$WORK/files.list" / "$data/tree/"
    log "writing a ${BENCH_BIG_MB} MiB VM-image-like file (${BENCH_BIG_DATA_MB} MiB real data, rest zeros)"
    "$PY" "$BENCH_HOME/make-image.py" "$data/vm/disk.img" "$BENCH_BIG_MB" "$BENCH_BIG_DATA_MB"
}

# ---------------------------------------------------------------- repositories
# init_repos: REPO_Y, REPO_R, REPO_B in WORK, one per tool of BENCH_TOOLS (restic with its
# defaults, borg unencrypted); restic's and borg's caches stay inside WORK.
init_repos() {
    export RESTIC_PASSWORD=yester-bench
    export RESTIC_CACHE_DIR=$WORK/restic-cache
    export BORG_BASE_DIR=$WORK/borg-base
    export BORG_UNKNOWN_UNENCRYPTED_REPO_ACCESS_IS_OK=yes BORG_RELOCATED_REPO_ACCESS_IS_OK=yes
    REPO_Y=$WORK/repo-yester
    REPO_R=$WORK/repo-restic
    REPO_B=$WORK/repo-borg
    if has "$BENCH_TOOLS" yester; then "$Y" init "$REPO_Y" > "$LOGS/yester-init.log" 2>&1; fi
    if has "$BENCH_TOOLS" restic; then
        restic init -r "$REPO_R" > "$LOGS/restic-init.log" 2>&1
        rec restic repo format "$(restic -r "$REPO_R" cat config 2>/dev/null | awk -F'[:,]' '/"version"/ {gsub(/ /, "", $2); print "v" $2}')" - "restic repository version (v2 = zstd compression)"
    fi
    if has "$BENCH_TOOLS" borg; then borg init --encryption none "$REPO_B" > "$LOGS/borg-init.log" 2>&1; fi
}

# ---------------------------------------------------------------- FUSE mounts
# mount_start TOOL: drop the page cache, start a fresh mount daemon of TOOL on MNT/TOOL and
# wait until its tree answers (yester: latest/bench; restic: snapshots/latest; borg: the mount
# point is up, borg loads an archive on its first access). Sets MOUNT_WALL; returns 1 if it
# did not come up. plain: nothing to mount. BORG_MOUNT is what borg mounts (REPO or
# REPO::ARCHIVE), BENCH_YESTER_CACHE an optional --cache-size.
MOUNT_WALL=
mount_start() {
    local tool=$1 m=$MNT/$1 t0 pid i ready=0
    [ "$tool" = plain ] && { MOUNT_WALL=0; return 0; }
    mkdir -p "$m"
    drop_caches
    t0=$(date +%s.%N)
    case $tool in
        yester)
            local extra=()
            [ -n "${BENCH_YESTER_CACHE:-}" ] && extra=(--cache-size "$BENCH_YESTER_CACHE")
            daemon_start yester "$m" -- "$Y" -r "$REPO_Y" mount "$m" --foreground "${extra[@]}" ;;
        yester-nox)     # the same without extended attributes (yester mount --no-xattrs)
            local extra=()
            [ -n "${BENCH_YESTER_CACHE:-}" ] && extra=(--cache-size "$BENCH_YESTER_CACHE")
            daemon_start yester-nox "$m" -- "$Y" -r "$REPO_Y" mount "$m" --foreground --no-xattrs "${extra[@]}" ;;
        restic) daemon_start restic "$m" -- restic -r "$REPO_R" mount "$m" ;;
        borg) daemon_start borg "$m" -- borg mount -f "${BORG_MOUNT:-$REPO_B}" "$m" ;;
    esac
    pid=${DAEMON_PID[$tool]}
    for i in $(seq 1 3000); do
        kill -0 "$pid" 2>/dev/null || break
        if mountpoint -q "$m"; then
            case $tool in
                yester|yester-nox) [ -d "$m/latest/bench" ] && { ready=1; break; } ;;
                restic) [ -e "$m/snapshots/latest" ] && { ready=1; break; } ;;
                borg) ready=1; break ;;
            esac
        fi
        sleep 0.05
    done
    MOUNT_WALL=$(elapsed "$t0")
    if [ "$ready" != 1 ]; then
        log "WARNING: $tool mount did not come up (see $LOGS/$tool-daemon.log)"
        daemon_stop "$tool"
        return 1
    fi
}

mount_stop() { # TOOL
    [ "$1" = plain ] && return 0
    daemon_stop "$1"
}

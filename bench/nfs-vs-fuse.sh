#!/usr/bin/env bash
# NFS server against the FUSE mount, same repository, same run:
#   nfs-cp of a big file vs cp from the FUSE mount; nfs-ls -R vs ls -lR on the FUSE mount.
# Usage: bench/nfs-vs-fuse.sh   (root; needs fuse3 and libnfs-utils)
# Env: BENCH_DIR (default /var/tmp/yester-nfs-bench), BIG_MB (1024), TREE_SRC (/usr/share/doc)
set -euo pipefail
cd "$(dirname "$0")/.."
BENCH_DIR=${BENCH_DIR:-/var/tmp/yester-nfs-bench}
BIG_MB=${BIG_MB:-1024}
TREE_SRC=${TREE_SRC:-/usr/share/doc}
Y=$PWD/target/release/yester
cargo build --release -q
rm -rf "$BENCH_DIR"; mkdir -p "$BENCH_DIR"/{data,mnt,out}
cleanup() {
    fusermount3 -u "$BENCH_DIR/mnt" 2>/dev/null || true
    [ -n "${NFS_PID:-}" ] && kill "$NFS_PID" 2>/dev/null || true
}
trap cleanup EXIT

# Data: a real tree and a VM-image-like file (real bytes with zero runs).
cp -a "$TREE_SRC" "$BENCH_DIR/data/tree"
python3 - "$BENCH_DIR/data/disk.img" "$BIG_MB" <<'PY'
import os, sys
path, mb = sys.argv[1], int(sys.argv[2])
src = []
for root, _, files in os.walk('/usr/lib'):
    for f in files:
        p = os.path.join(root, f)
        if os.path.isfile(p) and not os.path.islink(p):
            src.append(p)
        if len(src) > 4000: break
    if len(src) > 4000: break
with open(path, 'wb') as out:
    i = 0
    while out.tell() < mb << 20:
        if i % 4 == 3:
            out.write(b'\0' * (1 << 20))
        else:
            try:
                with open(src[i % len(src)], 'rb') as f:
                    out.write(f.read(1 << 20))
            except OSError:
                pass
        i += 1
    out.truncate(mb << 20)
PY
export YESTER_REPO=$BENCH_DIR/repo
$Y init -q
$Y backup -q --source bench "$BENCH_DIR/data"
INSIDE=${BENCH_DIR#/}/data
files=$(find "$BENCH_DIR/data/tree" | wc -l)

$Y mount "$BENCH_DIR/mnt"
$Y nfs serve --listen 127.0.0.1:20999 --handle-key "$BENCH_DIR/key" 2>"$BENCH_DIR/nfs.log" &
NFS_PID=$!
sleep 1
URL() { echo "nfs://127.0.0.1/$1?version=3&nfsport=20999&mountport=20999"; }

t() { local s e; s=$(date +%s.%N); "$@" >/dev/null 2>&1; e=$(date +%s.%N); echo "$e - $s" | bc; }
drop() { sync; echo 3 > /proc/sys/vm/drop_caches 2>/dev/null || true; }

drop; fuse_cp=$(t cp "$BENCH_DIR/mnt/latest/bench/$INSIDE/disk.img" "$BENCH_DIR/out/fuse.img")
drop; nfs_cp=$(t nfs-cp "$(URL "latest/bench/$INSIDE/disk.img")" "$BENCH_DIR/out/nfs.img")
cmp "$BENCH_DIR/out/fuse.img" "$BENCH_DIR/data/disk.img"
cmp "$BENCH_DIR/out/nfs.img" "$BENCH_DIR/data/disk.img"
rm -f "$BENCH_DIR/out/"*.img
drop; fuse_ls=$(t ls -lR "$BENCH_DIR/mnt/latest/bench/$INSIDE/tree")
drop; nfs_ls=$(t nfs-ls -R "$(URL "latest/bench/$INSIDE/tree")")
nfs_rss=$(awk '/VmHWM/ {print $2}' /proc/$NFS_PID/status)

mbps() { echo "scale=0; $BIG_MB / $1" | bc; }
printf '\n%-34s %10s %10s %8s\n' "measure ($BIG_MB MiB file, $files entries)" "NFS" "FUSE" "NFS/FUSE"
printf '%-34s %9.2fs %9.2fs %8.2f\n' "copy big file (time)" "$nfs_cp" "$fuse_cp" "$(echo "$nfs_cp / $fuse_cp" | bc -l)"
printf '%-34s %8s/s %8s/s\n' "copy big file (MiB/s)" "$(mbps "$nfs_cp")M" "$(mbps "$fuse_cp")M"
printf '%-34s %9.2fs %9.2fs %8.2f\n' "list tree recursively" "$nfs_ls" "$fuse_ls" "$(echo "$nfs_ls / $fuse_ls" | bc -l)"
echo "NFS server peak RSS: ${nfs_rss} KiB"
out=bench/results/nfs-vs-fuse-$(date -u +%Y%m%d-%H%M%S).tsv
printf 'measure\tnfs_s\tfuse_s\nbig_copy\t%s\t%s\nlist_recursive\t%s\t%s\nnfs_peak_rss_kib\t%s\t\n' \
    "$nfs_cp" "$fuse_cp" "$nfs_ls" "$fuse_ls" "$nfs_rss" > "$out"
echo "raw numbers: $out"

#!/usr/bin/env python3
"""Turn generation 1 of the bench data set into generation 2: TREE PCT ADD DEL ROOT... (shared by the bench scripts)."""
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

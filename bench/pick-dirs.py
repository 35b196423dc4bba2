#!/usr/bin/env python3
"""Print disjoint subdirectories of TOP, relative to BASE, of about MB megabytes in all: BASE TOP MB."""
# For `grep -r` over a part of the data set: whole directories, the biggest that still fit the
# budget first (so a few realistic subtrees, not a scattering), deterministic for given data.
import os, sys
base, top, target = sys.argv[1], sys.argv[2], int(sys.argv[3]) * 1000 * 1000
size = {}
for d, dirs, files in os.walk(top, topdown=False):
    s = 0
    for f in files:
        try:
            st = os.lstat(os.path.join(d, f))
        except OSError:
            continue
        s += st.st_size
    for x in dirs:
        s += size.get(os.path.join(d, x), 0)
    size[d] = s
picked, got = [], 0
for d in sorted(size, key=lambda d: (-size[d], d)):
    if got >= target * 0.97:
        break
    if d == top or size[d] == 0 or got + size[d] > target * 1.03:
        continue
    if any(d.startswith(p + "/") or p.startswith(d + "/") for p in picked):
        continue
    picked.append(d)
    got += size[d]
for d in sorted(picked):
    print(os.path.relpath(d, base))
print(f"{len(picked)} directories, {got / 1e6:.0f} MB", file=sys.stderr)

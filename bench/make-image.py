#!/usr/bin/env python3
"""Write a VM-image-like file: PATH SIZE_MIB DATA_MIB (shared by the bench scripts)."""
# A raw disk image as a VM leaves it: a dense "OS" area at the start, then extents of real
# file data (shared libraries, JDK modules, documentation) scattered over mostly zero blocks.
# Deterministic (seeded), 4 KiB aligned, written densely (no holes).
import os, random, sys
path, size, data = sys.argv[1], int(sys.argv[2]) << 20, int(sys.argv[3]) << 20
data = min(data, size)
rng = random.Random(20261121)
def source():
    for top in ("/usr/lib/x86_64-linux-gnu", "/usr/lib/jvm", "/usr/share/doc", "/usr/lib"):
        for d, dirs, files in os.walk(top):
            dirs.sort()
            for f in sorted(files):
                p = os.path.join(d, f)
                if os.path.islink(p) or not os.path.isfile(p):
                    continue
                try:
                    with open(p, "rb") as fh:
                        while True:
                            b = fh.read(1 << 20)
                            if not b:
                                break
                            yield b
                except OSError:
                    pass
src, buf = source(), bytearray()
def take(n):
    global buf
    while len(buf) < n:
        buf += next(src)
    out, buf = bytes(buf[:n]), buf[n:]
    return out
# Extent lengths: one big OS area (a quarter of the data), then 1-32 MiB extents.
K4 = 4096
lens, left = [], data
first = (data // 4) // K4 * K4
if first:
    lens.append(first); left -= first
while left > 0:
    n = min(left, rng.randint(1 << 8, 8 << 10) * K4)  # 1 MiB .. 32 MiB
    lens.append(n); left -= n
# Gaps between extents: random weights, 4 KiB aligned; the first gap is 1 MiB (partition table).
free = size - data
w = [rng.random() for _ in lens]
gaps = [0] * len(lens)
if lens:
    gaps[0] = min(free, 1 << 20)
    rest = free - gaps[0]
    s = sum(w[1:]) or 1
    for i in range(1, len(lens)):
        gaps[i] = int(rest * w[i] / s) // K4 * K4
zero = bytes(1 << 20)
with open(path, "wb") as f:
    def zeros(n):
        while n > 0:
            k = min(n, len(zero)); f.write(zero[:k]); n -= k
    for g, n in zip(gaps, lens):
        zeros(g)
        while n > 0:
            k = min(n, 1 << 20); f.write(take(k)); n -= k
    zeros(size - f.tell())
    f.flush(); os.fsync(f.fileno())

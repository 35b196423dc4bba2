#!/usr/bin/env python3
"""Synthetic trees for the scale benchmark: gen-synthetic.py DIR FILES [BIG_GIB].

DIR gets FILES small files in nested directories (100 files per directory, 100 directories per
top-level directory: d000/d042/f0004217.txt), and with BIG_GIB > 0, BIG_GIB GiB of generated
big files under DIR/big. Deterministic: file i is the same in every run, so a tree can be grown
from 100k to 300k files by running this again with the larger count (the count done so far is
kept in DIR.state, outside the tree).

Small files: sizes log-normal around 2 KiB (mean about 4 KiB, at most 256 KiB), content cut
from a corpus of real text (headers and docs from /usr), so it compresses like source code;
BENCH_DUP_PCT % (default 20) are exact copies of an earlier file's content (deduplicated).
Big files: 256 MiB each, made of 1-8 MiB segments of compressible pseudo-random data (64
symbols, about 3/4 of the entropy of random bytes); BENCH_DUP_PCT % of the segments repeat an
earlier segment, so they deduplicate.
"""
import os, random, sys

top, nfiles = sys.argv[1], int(sys.argv[2])
big_gib = float(sys.argv[3]) if len(sys.argv) > 3 else 0.0
dup = float(os.environ.get("BENCH_DUP_PCT", "20")) / 100
PER_DIR, SEED = 100, 20261201
state = top.rstrip("/") + ".state"


def corpus(limit=32 << 20):
    """Real text from /usr (headers, docs), at most `limit` bytes."""
    out, n = [], 0
    for root in ("/usr/include", "/usr/share/doc", "/usr/share/perl5", "/usr/lib/python3"):
        for d, dirs, files in os.walk(root):
            dirs.sort()
            for f in sorted(files):
                p = os.path.join(d, f)
                if os.path.islink(p) or not f.endswith((".h", ".py", ".pm", ".txt", ".md", "README", "copyright", ".html")):
                    continue
                try:
                    with open(p, "rb") as fh:
                        b = fh.read(256 << 10)
                except OSError:
                    continue
                out.append(b)
                n += len(b)
                if n >= limit:
                    return b"".join(out)
    b = b"".join(out)
    if len(b) < 1 << 20:  # no text on this machine: generated words
        rng = random.Random(SEED)
        words = [bytes(rng.choice(b"abcdefghijklmnopqrstuvwxyz") for _ in range(rng.randint(2, 9))) for _ in range(5000)]
        b = b" ".join(rng.choice(words) for _ in range(limit // 6))
    return b


def size_of(rng):
    return min(256 << 10, int(rng.lognormvariate(7.6, 1.2)))  # median e^7.6 ≈ 2 KiB


def base(i, text):
    """The content file i has unless it is a duplicate."""
    rng = random.Random(SEED * 1_000_003 + i)
    n = size_of(rng)
    off = rng.randrange(0, max(1, len(text) - n))
    return rng, text[off:off + n] + b"\n# %d\n" % i


done = 0
if os.path.exists(state):
    with open(state) as f:
        done = int(f.read().strip() or 0)
if done < nfiles:
    text = corpus()
    made = set()
    for i in range(done, nfiles):
        rng, data = base(i, text)
        if i > 0 and rng.random() < dup:
            data = base(rng.randrange(i), text)[1]
        dn = i // PER_DIR
        d = os.path.join(top, "d%03d" % (dn // 100), "d%03d" % (dn % 100))
        if d not in made:
            os.makedirs(d, exist_ok=True)
            made.add(d)
        with open(os.path.join(d, "f%07d.txt" % i), "wb") as f:
            f.write(data)
    with open(state, "w") as f:
        f.write(str(nfiles))

if big_gib > 0:
    TABLE = bytes((b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/"[x & 63]) for x in range(256))
    rng = random.Random(SEED + 7)
    bigdir = os.path.join(top, "big")
    os.makedirs(bigdir, exist_ok=True)
    total, FILE = int(big_gib * (1 << 30)), 256 << 20
    seeds = []  # (seed, length) of the segments written so far
    written, k = 0, 0
    while written < total:
        p = os.path.join(bigdir, "blob%04d.bin" % k)
        want = min(FILE, total - written)
        with open(p, "wb") as f:
            n = 0
            while n < want:
                if seeds and rng.random() < dup:
                    s, ln = rng.choice(seeds[-256:])
                else:
                    s, ln = rng.getrandbits(63), rng.randint(1, 8) << 20
                    seeds.append((s, ln))
                ln = min(ln, want - n)
                f.write(random.Random(s).randbytes(ln).translate(TABLE))
                n += ln
        written += want
        k += 1

#!/usr/bin/env python3
"""Print the tables of a bench/scale.sh run from its TSV: scale-report.py RESULTS.tsv"""
import re, sys

V, meta, labels = {}, {}, []
with open(sys.argv[1]) as f:
    next(f)
    for line in f:
        p = (line.rstrip("\n").split("\t") + [""] * 6)[:6]
        if p[0] == "meta":
            meta[p[2]] = p[3]
            continue
        if p[0] not in labels:
            labels.append(p[0])
        V[(p[0], p[1], p[2])] = p[3]


def num(*k):
    try:
        return float(V[k])
    except (KeyError, ValueError):
        return None


def stat(label, phase, name):
    m = re.search(r'"%s":([0-9.]+)' % name, V.get((label, phase, "summary"), ""))
    return float(m.group(1)) if m else None


def index(label, phase):
    m = re.search(r"index: (\d+) blobs from (\d+) files in ([0-9.]+)s, (\d+) KiB resident", V.get((label, phase, "index"), ""))
    return tuple(float(x) for x in m.groups()) if m else None


def c(x, f="%.2f"):
    return "n/a" if x is None else f % x


def per(a, b, scale=1.0):
    return None if a is None or not b else a * scale / b


out = []
w = out.append
w(f"yester {meta.get('yester_commit', '?')} | {meta.get('host', '?')} | settings {meta.get('settings', '')}")
w(f"load average at start {meta.get('loadavg_start', '?')}, at end {meta.get('loadavg_end', '?')}; run {meta.get('run_seconds', '?')} s")
w(f"guest memory: {meta.get('vm_memory', 'untouched')}")
w("first and no-change (cold) backups after dropping the page cache; no-change warm right after; "
  "marginal = cost of the files added since the previous row")
rows = [l for l in labels if l.startswith(("files-", "big-"))]

w("")
w("first backup")
w(f"{'tree':14} {'files':>9} {'MB':>8} {'wall s':>8} {'µs/file':>8} {'MB/s':>7} {'CPU s':>7} {'RSS MiB':>8} "
  f"{'B/file':>7} {'marg µs':>8} {'marg B':>7} {'repo MiB':>9}")
prev = None
for l in rows:
    files, mb = num(l, "tree", "files"), (num(l, "tree", "bytes") or 0) / 1e6
    t, rss = num(l, "first", "wall"), num(l, "first", "peak_rss")
    mt = mr = None
    if prev and l.startswith("files-") and prev[0] is not None and files and files > prev[0]:
        if t is not None and prev[1] is not None:
            mt = (t - prev[1]) * 1e6 / (files - prev[0])
        if rss is not None and prev[2] is not None:
            mr = (rss - prev[2]) * 1024 / (files - prev[0])
    w(f"{l:14} {c(files, '%.0f'):>9} {mb:>8.0f} {c(t):>8} {c(per(t, files, 1e6), '%.1f'):>8} {c(per(mb, t), '%.0f'):>7} "
      f"{c(num(l, 'first', 'cpu')):>7} {c(per(rss, 1024), '%.0f'):>8} {c(per(rss, files, 1024), '%.0f'):>7} "
      f"{c(mt, '%.1f'):>8} {c(mr, '%.0f'):>7} {c(per(num(l, 'repo', 'size'), 1048576), '%.1f'):>9}")
    if l.startswith("files-"):
        prev = (files, t, rss)

w("")
w("no-change backup (every file unchanged: a stat walk)")
w(f"{'tree':14} {'files':>9} {'cold s':>8} {'µs/file':>8} {'warm s':>8} {'µs/file':>8} {'CPU s':>7} {'RSS MiB':>8} "
  f"{'B/file':>7} {'marg µs':>8} {'unchanged':>10}")
prev = None
for l in rows:
    files = num(l, "tree", "files")
    tc, tw = num(l, "nochange_cold", "wall"), num(l, "nochange_warm", "wall")
    rss = max([x for x in (num(l, "nochange_cold", "peak_rss"), num(l, "nochange_warm", "peak_rss")) if x is not None], default=None)
    mt = None
    if prev and l.startswith("files-") and files and prev[0] and files > prev[0] and tw is not None and prev[1] is not None:
        mt = (tw - prev[1]) * 1e6 / (files - prev[0])
    unch = stat(l, "nochange_warm", "files_unchanged")
    w(f"{l:14} {c(files, '%.0f'):>9} {c(tc):>8} {c(per(tc, files, 1e6), '%.1f'):>8} {c(tw):>8} {c(per(tw, files, 1e6), '%.1f'):>8} "
      f"{c(num(l, 'nochange_warm', 'cpu')):>7} {c(per(rss, 1024), '%.0f'):>8} {c(per(rss, files, 1024), '%.0f'):>7} "
      f"{c(mt, '%.1f'):>8} {c(unch, '%.0f'):>10}")
    if l.startswith("files-"):
        prev = (files, tw)

w("")
w("index (loaded by the no-change backup, cold; yester -v: \"index: N blobs from M files in Xs, K KiB resident\")")
w(f"{'tree':14} {'blobs':>9} {'idx files':>9} {'load s':>8} {'ns/blob':>8} {'KiB':>8} {'B/blob':>7}")
for l in rows:
    ix = index(l, "nochange_cold")
    if not ix:
        w(f"{l:14} n/a ({V.get((l, 'nochange_cold', 'index'), '') or 'no index line'})")
        continue
    blobs, files, s, kib = ix
    w(f"{l:14} {blobs:>9.0f} {files:>9.0f} {s:>8.3f} {c(per(s, blobs, 1e9), '%.0f'):>8} {kib:>8.0f} {c(per(kib, blobs, 1024), '%.1f'):>7}")

fr = [l for l in rows if l.startswith("files-")]
if len(fr) >= 2:
    a, b = fr[0], fr[-1]
    def pf(l, ph, m):
        return per(num(l, ph, m), num(l, "tree", "files"))
    def q(x, y):
        return "n/a" if x is None or y is None or y == 0 else f"{x / y:.2f}×"
    w("")
    w(f"flatness, {b} against {a} (1.00× = cost per file flat): "
      f"first backup time/file {q(pf(b, 'first', 'wall'), pf(a, 'first', 'wall'))}, "
      f"no-change warm time/file {q(pf(b, 'nochange_warm', 'wall'), pf(a, 'nochange_warm', 'wall'))}, "
      f"no-change cold time/file {q(pf(b, 'nochange_cold', 'wall'), pf(a, 'nochange_cold', 'wall'))}, "
      f"first backup RSS/file {q(pf(b, 'first', 'peak_rss'), pf(a, 'first', 'peak_rss'))}")
    ia, ib = index(a, "nochange_cold"), index(b, "nochange_cold")
    if ia and ib and ia[0] and ib[0]:
        w(f"index load time/blob {q(ib[2] / ib[0], ia[2] / ia[0])}, resident bytes/blob {q(ib[3] / ib[0], ia[3] / ia[0])}")
bad = [f"{l} {ph}: exit {V.get((l, ph, 'wall'))}" for l in rows for ph in ("first", "nochange_cold", "nochange_warm")
       if (l, ph, "wall") in V and V[(l, ph, "wall")] == "NA"]
for l in rows:
    for ph in ("first", "nochange_cold", "nochange_warm"):
        if stat(l, ph, "files") is None:
            bad.append(f"{l} {ph}: no backup summary")
if bad:
    w("")
    w("problems: " + "; ".join(bad))
print("\n".join(out))

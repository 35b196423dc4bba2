#!/usr/bin/env python3
"""Print the tables of a bench/compare.sh run from its TSV, and append the issue-6 targets to it.

Usage: compare-report.py RESULTS.tsv [--no-append]
Ratios are yester / peer: below 1 means yester is faster (or smaller).
"""
import sys

path = sys.argv[1]
append = "--no-append" not in sys.argv[2:]
V, N = {}, {}          # (tool, phase, metric) -> value, note
meta, data = {}, {}
with open(path) as f:
    next(f)
    for line in f:
        p = line.rstrip("\n").split("\t")
        if len(p) < 6:
            p += [""] * (6 - len(p))
        tool, phase, metric, value, unit, note = p[:6]
        if tool == "target":
            continue
        if tool == "meta" and phase == "info":
            meta[metric] = value
        elif tool == "data":
            data[(phase, metric)] = value
        V[(tool, phase, metric)] = value
        N[(tool, phase, metric)] = note


def num(tool, phase, metric):
    try:
        return float(V[(tool, phase, metric)])
    except (KeyError, ValueError):
        return None


def check(tool, phase):
    """'ok', a failure text, or None if not measured."""
    note = N.get((tool, phase, "wall"))
    if note is None:
        return None
    if "check=" in note:
        return note.split("check=", 1)[1]
    x = note.split("exit=", 1)[1].split()[0] if "exit=" in note else "0"
    return "ok" if x == "0" else f"exit {x}"


def cell(x, f="%.2f"):
    return "n/a" if x is None else f % x


def ratio(a, b):
    return None if a is None or b is None or b <= 0 else a / b


def mib(x):
    return None if x is None else x / 1024


def mb(x):
    return None if x is None else x / 1048576


out = []
w = out.append
tools_b = [t for t in ("yester", "restic", "borg") if t in meta.get("settings", "yester restic borg")]
w(f"yester {meta.get('yester_commit', '?')} | {meta.get('restic_version', '-')} | {meta.get('borg_version', '-')} | {meta.get('host', '?')}")


def d(g, m):
    try:
        return float(data[(g, m)])
    except (KeyError, ValueError):
        return 0.0


w(f"generation 1: {d('gen1', 'total_bytes') / 1e6:.0f} MB in {d('gen1', 'files'):.0f} files "
  f"(tree {d('gen1', 'tree_bytes') / 1e6:.0f} MB + image); generation 2: {d('gen2', 'total_bytes') / 1e6:.0f} MB "
  f"in {d('gen2', 'files'):.0f} files, {d('gen2', 'entries'):.0f} entries")
w(f"changes: {data.get(('gen2', 'changes'), '-')}")
if ("gen2", "grep_bytes") in data:
    w(f"grep -r -F over {d('gen2', 'grep_bytes') / 1e6:.0f} MB ({d('gen2', 'grep_entries'):.0f} entries): "
      f"{data.get(('gen2', 'grep_dirs'), '')}")
w(f"settings: {meta.get('settings', '')}")
phases = sorted(((float(V[k]), k[2]) for k in V if k[0] == "meta" and k[1] == "time"))
w("page cache dropped before each cold step: %s; load average at start %s, at end %s; run %s s (%s)" % (
    "yes" if any("drop_caches=yes" in n for n in N.values()) else "NO",
    meta.get("loadavg_start", "?"), meta.get("loadavg_end", "?"), meta.get("run_seconds", "?"),
    ", ".join(f"{name} at {t:.0f} s" for t, name in phases)))
w(f"guest memory: {meta.get('vm_memory', 'untouched')}")
w("ratios are yester/peer: below 1 means yester is faster/smaller")

# ---------------------------------------------------------------- backups and restore
H3 = f"{'':32} {'yester':>10} {'restic':>10} {'borg':>10} {'y/restic':>9} {'y/borg':>9}"


def row3(label, y, r, b, f="%.2f"):
    w(f"{label:32} {cell(y, f):>10} {cell(r, f):>10} {cell(b, f):>10} {cell(ratio(y, r)):>9} {cell(ratio(y, b)):>9}")


def sec3(title, metric, conv=lambda x: x, f="%.2f"):
    w("")
    w(title)
    w(H3)
    for label, ph in (("1. first backup (gen 1)", "backup1"), ("2. second generation (gen 2)", "backup2"),
                      ("3. no-change (gen 2 again)", "backup3"), ("5. full restore (gen 2)", "restore")):
        if any((t, ph, metric) in V for t in tools_b):
            row3(label, *(conv(num(t, ph, metric)) for t in ("yester", "restic", "borg")), f=f)


sec3("wall time (s)", "wall")
sec3("peak RSS (MiB, /usr/bin/time %M)", "peak_rss", mib, "%.0f")
sec3("CPU user+sys (s)", "cpu")
w("")
w("repository size (MiB, du -sb, without restic's and borg's local caches)")
w(H3)
a1 = [mb(num(t, "after1", "repo_size")) for t in ("yester", "restic", "borg")]
a3 = [mb(num(t, "after3", "repo_size")) for t in ("yester", "restic", "borg")]
row3("4a. after gen 1", *a1, f="%.1f")
row3("4b. after gen 2 + no-change", *a3, f="%.1f")
row3("4c. growth for gen 2", *(None if x is None or y is None else y - x for x, y in zip(a1, a3)), f="%.1f")
for ph in ("backup1", "backup2", "backup3"):
    if V.get(("yester", ph, "index")):
        w(f"yester {ph}: {V[('yester', ph, 'index')]}")

# ---------------------------------------------------------------- mounts
measures = meta.get("measures", "").split()
mtools = ("yester", "restic", "borg", "plain")
H4 = (f"{'':14} {'yester':>9} {'restic':>9} {'borg':>9} {'plain':>9} {'y/restic':>9} {'y/borg':>9} {'y/plain':>9}")


def row4(label, vals, f="%.2f"):
    y, r, b, p = vals
    w(f"{label:14} {cell(y, f):>9} {cell(r, f):>9} {cell(b, f):>9} {cell(p, f):>9} "
      f"{cell(ratio(y, r)):>9} {cell(ratio(y, b)):>9} {cell(ratio(y, p)):>9}")


def section4(metric, conv, f):
    """One row per measure and round (cold, warm) that has METRIC for some tool."""
    w(H4)
    for m in measures:
        for temp in ("cold", "warm"):
            ph = f"{m}.{temp}"
            if any((t, ph, metric) in V for t in mtools):
                row4(f"{m} {temp}", [conv(num(t, ph, metric)) for t in mtools], f)


if any(k[1].endswith(".cold") and k[1].split(".")[0] in measures for k in V):
    w("")
    w("reads through the mounts, wall time (s): cold = page cache dropped + fresh daemon, "
      "warm = repeated in the same daemon")
    section4("wall", lambda x: x, "%.2f")
    for temp in ("cold", "warm"):
        x, p = num("yester-nox", f"ls.{temp}", "wall"), num("plain", f"ls.{temp}", "wall")
        if x is not None:
            w(f"{'ls ' + temp:14} {cell(x):>9}  through `yester mount --no-xattrs`, y/plain {cell(ratio(x, p))}")
    starts = {}
    # mount start: mean over the fresh daemons (several rows share one key; recount from file)
    with open(path) as f:
        next(f)
        for line in f:
            p = line.rstrip("\n").split("\t")
            if len(p) >= 4 and p[1] == "mount" and p[2] == "wall":
                try:
                    starts.setdefault(p[0], []).append(float(p[3]))
                except ValueError:
                    pass
    mean = lambda t: sum(starts[t]) / len(starts[t]) if starts.get(t) else None
    row4("mount start", [mean("yester"), mean("restic"), mean("borg"), None])
    w("")
    w("mount daemon peak RSS (MiB, VmHWM of the daemon after the round; one daemon per measure)")
    section4("daemon_hwm", mib, "%.0f")
    w("")
    w("mount daemon CPU during the read (s, user+sys)")
    section4("daemon_cpu", lambda x: x, "%.2f")

# ---------------------------------------------------------------- NFS
ntools = ("yester-nfs", "ganesha-nfs", "yester-fuse-cp", "plain-cp")
if any((t, "copy.cold", "wall") in V for t in ntools):
    ganesha = meta.get("ganesha", "no") == "yes"
    w("")
    w("NFS: copy of the image (s): yester nfs serve (nfs-cp), nfs-ganesha on the plain tree (nfs-cp), "
      "cp from the yester FUSE mount, cp from the plain tree")
    if not ganesha:
        w(f"  nfs-ganesha did not run ({N.get(('meta', 'info', 'ganesha'), '')}): the target uses the FUSE path")
    w(f"{'':14} {'yester-nfs':>11} {'ganesha':>11} {'yester-fuse':>11} {'plain cp':>11} {'nfs/ganesha':>12} {'nfs/fuse':>9}")
    for temp in ("cold", "warm"):
        vals = [num(t, f"copy.{temp}", "wall") for t in ntools]
        w(f"{temp:14} " + " ".join(f"{cell(x):>11}" for x in vals)
          + f" {cell(ratio(vals[0], vals[1])):>12} {cell(ratio(vals[0], vals[2])):>9}")
    for temp in ("cold", "warm"):
        vals = [mib(num(t, f"copy.{temp}", "daemon_hwm")) for t in ntools]
        w(f"{'RSS ' + temp:14} " + " ".join(f"{cell(x, '%.0f'):>11}" for x in vals) + "   (server VmHWM, MiB)")

# ---------------------------------------------------------------- checks
w("")
w("checks (restore: diff -r + metadata; find: entries; grep: lines; cat: sha256; diff: same output as plain; nfs: sha256)")
for t in tools_b:
    for ph in ("backup1", "backup2", "backup3"):
        c = check(t, ph)
        if c not in (None, "ok"):
            w(f"  {t} {ph}: {c}")
    if (t, "restore", "check") in V:
        w(f"  {t:7} restore: {V[(t, 'restore', 'check')]}")
for m in measures:
    line = []
    for t in mtools + ("yester-nox",):
        cs = [check(t, f"{m}.{temp}") for temp in ("cold", "warm")]
        cs = [c for c in cs if c is not None]
        if m == "cat" and (t, "cat.check", "sha256") in V:
            cs.append(V[(t, "cat.check", "sha256")])
        if cs:
            bad = [c for c in cs if c != "ok"]
            line.append(f"{t}={'ok' if not bad else '; '.join(bad)}")
    if line:
        w(f"  {m:7} " + "  ".join(line))
line = []
for t in ntools:
    cs = [check(t, f"copy.{temp}") for temp in ("cold", "warm")]
    cs = [c for c in cs if c is not None]
    if cs:
        bad = [c for c in cs if c != "ok"]
        line.append(f"{t}={'ok' if not bad else '; '.join(bad)}")
if line:
    w("  nfs     " + "  ".join(line))

# ---------------------------------------------------------------- targets
near = float(meta.get("near", "1.5") or 1.5)
ganesha = meta.get("ganesha", "no") == "yes"
nfs_peer = "ganesha-nfs" if ganesha else "yester-fuse-cp"
nfs_label = "nfs-ganesha (plain tree)" if ganesha else "the FUSE path (no ganesha)"
T = [  # key, description, (tool, phase, metric), (peer tool, phase, metric), limit
    ("backup1", "first backup ≤ 1/3 of restic's time", ("yester", "backup1", "wall"), ("restic", "backup1", "wall"), 1 / 3),
    ("backup2", "second generation ≤ 1/3 of restic's", ("yester", "backup2", "wall"), ("restic", "backup2", "wall"), 1 / 3),
    ("backup3", "no-change ≤ 1/4 of restic's", ("yester", "backup3", "wall"), ("restic", "backup3", "wall"), 1 / 4),
    ("repo_restic", "repository size ≤ restic's", ("yester", "after3", "repo_size"), ("restic", "after3", "repo_size"), 1.0),
    ("repo_borg", "repository size ≤ borg zstd,3's", ("yester", "after3", "repo_size"), ("borg", "after3", "repo_size"), 1.0),
    ("restore", "full restore ≤ 1/2 of restic's", ("yester", "restore", "wall"), ("restic", "restore", "wall"), 1 / 2),
    ("find", "mount, warm: find ≤ 2× plain", ("yester", "find.warm", "wall"), ("plain", "find.warm", "wall"), 2.0),
    ("ls", "mount, warm: ls -lR ≤ 2× plain", ("yester", "ls.warm", "wall"), ("plain", "ls.warm", "wall"), 2.0),
    ("ls_nox", "mount --no-xattrs, warm: ls -lR ≤ 2× plain", ("yester-nox", "ls.warm", "wall"), ("plain", "ls.warm", "wall"), 2.0),
    ("grep", "mount, warm: grep -r ≤ 2× plain", ("yester", "grep.warm", "wall"), ("plain", "grep.warm", "wall"), 2.0),
    ("cat_cold", "mount: cat 1 GiB ≥ 3× faster than restic mount, cold", ("yester", "cat.cold", "wall"), ("restic", "cat.cold", "wall"), 1 / 3),
    ("cat_warm", f"mount, warm: cat 1 GiB near plain (≤ {near:g}×)", ("yester", "cat.warm", "wall"), ("plain", "cat.warm", "wall"), near),
    ("nfs_cold", f"NFS nfs-cp 1 GiB ≤ 1.5× {nfs_label}, cold", ("yester-nfs", "copy.cold", "wall"), (nfs_peer, "copy.cold", "wall"), 1.5),
    ("nfs_warm", f"NFS nfs-cp 1 GiB ≤ 1.5× {nfs_label}, warm", ("yester-nfs", "copy.warm", "wall"), (nfs_peer, "copy.warm", "wall"), 1.5),
    ("rss_backup1", "backup peak RSS ≤ restic's: first", ("yester", "backup1", "peak_rss"), ("restic", "backup1", "peak_rss"), 1.0),
    ("rss_backup2", "backup peak RSS ≤ restic's: second gen.", ("yester", "backup2", "peak_rss"), ("restic", "backup2", "peak_rss"), 1.0),
    ("rss_backup3", "backup peak RSS ≤ restic's: no-change", ("yester", "backup3", "peak_rss"), ("restic", "backup3", "peak_rss"), 1.0),
]
w("")
w("issue-6 targets (ratio = yester / reference; met if ratio ≤ limit)")
w(f"{'target':58} {'yester':>9} {'ref':>9} {'ratio':>7} {'limit':>7}  result")
rows = []
met = missed = 0
for key, desc, a, b, limit in T:
    y, r = num(*a), num(*b)
    q = ratio(y, r)
    bad = [c for c in (check(a[0], a[1]), check(b[0], b[1])) if c not in (None, "ok")]
    if q is None:
        res = "n/a (not measured)"
    elif bad:
        res = "n/a (check failed: " + "; ".join(bad)[:80] + ")"
    elif q <= limit:
        res = "met"
        met += 1
    else:
        res = f"MISSED by {q / limit:.2f}×"
        missed += 1
    f = "%.1f" if a[2] in ("repo_size", "peak_rss") else "%.2f"
    conv = mb if a[2] == "repo_size" else (mib if a[2] == "peak_rss" else (lambda x: x))
    w(f"{desc:58} {cell(conv(y), f):>9} {cell(conv(r), f):>9} {cell(q):>7} {limit:>7.2f}  {res}")
    rows.append((key, q, limit, res, desc))
w(f"{met} met, {missed} missed, {len(T) - met - missed} not measured or invalid "
  "(times in s, sizes and RSS in MiB)")
print("\n".join(out))
if append:
    with open(path, "a") as f:
        for key, q, limit, res, desc in rows:
            f.write(f"target\t{key}\tratio\t{'NA' if q is None else f'{q:.4f}'}\t-\tlimit {limit:.4f}: {res}; {desc}\n")

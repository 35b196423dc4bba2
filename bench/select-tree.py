#!/usr/bin/env python3
"""Print the paths of about N MB of real files from the given roots (shared by the bench scripts)."""
# Pick whole subdirectories of each root, smallest first, so the tree is a realistic mix of
# many small files and some big ones; the last subdirectory is cut at the budget.
# /usr/include gets up to 10 %, /usr/share up to 45 %, /usr/lib the rest.
import os, stat, sys
total = int(sys.argv[1]) * 1000 * 1000
roots = sys.argv[2:]
shares = {"/usr/include": 0.10, "/usr/share": 0.45}
skip = ("/usr/share/package-lists",)

def walk(top):
    """(path, size) of regular files and symlinks under top, sorted, on one file system."""
    out = []
    try:
        dev = os.lstat(top).st_dev
    except OSError:
        return out
    for d, dirs, files in os.walk(top):
        dirs[:] = sorted(x for x in dirs
                         if os.lstat(os.path.join(d, x)).st_dev == dev
                         and not os.path.join(d, x).startswith(skip))
        for f in sorted(files):
            p = os.path.join(d, f)
            try:
                st = os.lstat(p)
            except OSError:
                continue
            if stat.S_ISREG(st.st_mode):
                if os.access(p, os.R_OK):
                    out.append((p, st.st_size))
            elif stat.S_ISLNK(st.st_mode):
                out.append((p, 0))
    return out

used = 0
for i, root in enumerate(roots):
    last = i == len(roots) - 1
    budget = (total - used) if last else min(total - used, int(total * shares.get(root, 0.3)))
    if budget <= 0:
        continue
    kids = []
    try:
        names = sorted(os.listdir(root))
    except OSError:
        continue
    for n in names:
        p = os.path.join(root, n)
        if p.startswith(skip):
            continue
        if os.path.isdir(p) and not os.path.islink(p):
            fl = walk(p)
        else:
            st = os.lstat(p)
            fl = [(p, st.st_size if stat.S_ISREG(st.st_mode) else 0)] if (stat.S_ISREG(st.st_mode) or stat.S_ISLNK(st.st_mode)) else []
        kids.append((sum(s for _, s in fl), n, fl))
    kids.sort()
    got = 0
    for size, _, fl in kids:
        if got + size <= budget:
            for p, _ in fl:
                print(p)
            got += size
            continue
        for p, s in fl:
            if got >= budget:
                break
            if got + s > budget * 1.02 and s > 0:
                continue
            print(p)
            got += s
        break
    used += got
    print(f"{root}: {got/1e6:.0f} MB", file=sys.stderr)

//! Directory trees: making them, walking them and comparing two of them (content with GNU
//! `diff`, metadata with a listing built here).

use std::collections::BTreeMap;
use std::ffi::OsString;
use std::fs;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::{FileTypeExt, MetadataExt};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use super::run::run_with_timeout;

/// Suffixes of special files that [`diff_trees`] leaves to the metadata listing.
pub const SPECIAL_SUFFIXES: [&str; 3] = ["~fifo", "~sock", "~dev"];

/// A temporary directory with its canonical path (backup records canonical parents).
pub fn temp_dir(prefix: &str) -> (tempfile::TempDir, PathBuf) {
    let d = tempfile::Builder::new().prefix(prefix).tempdir().unwrap();
    let p = fs::canonicalize(d.path()).unwrap();
    (d, p)
}

/// `diff -r --no-dereference A B`, skipping files named `*~fifo`, `*~sock`, `*~dev` (see the
/// module documentation). Panics with diff's output unless the trees are equal. Runs with
/// `LC_ALL=C` so that `-x` patterns match non-UTF-8 names byte by byte.
pub fn diff_trees(a: &Path, b: &Path) {
    let mut cmd = Command::new("diff");
    cmd.env("LC_ALL", "C").arg("-r").arg("--no-dereference");
    for s in SPECIAL_SUFFIXES {
        cmd.arg("-x").arg(format!("*{s}"));
    }
    cmd.arg(a).arg(b);
    let out = run_with_timeout(cmd, Duration::from_secs(120));
    assert_eq!(
        out.code(),
        Some(0),
        "diff -r found differences between {} and {}:\n{}\n{}",
        a.display(),
        b.display(),
        out.stdout,
        out.stderr
    );
}

/// Raw bytes shown readably (`\xff`, `\n`, ...).
pub fn esc(b: &[u8]) -> String {
    b.escape_ascii().to_string()
}

/// Metadata of one entry of a tree, as compared between source and restore.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct EntryMeta {
    /// Path relative to the listed root (`.` for the root), escaped.
    pub path: String,
    /// `ls -l` letter: `-`, `d`, `l`, `p`, `s`, `c`, `b`.
    pub kind: char,
    /// `mode & 0o7777`, in octal.
    pub mode: String,
    pub uid: u32,
    pub gid: u32,
    /// Regular files and symlinks.
    pub size: Option<u64>,
    pub mtime: (i64, i64),
    /// Non-directories.
    pub nlink: Option<u64>,
    /// Sorted (name, value), escaped.
    pub xattrs: Vec<(String, String)>,
    /// Device numbers as (major, minor).
    pub rdev: Option<(u64, u64)>,
    /// Symlink target, escaped.
    pub target: Option<String>,
    /// blake3 of a regular file's content.
    pub content: Option<String>,
}

fn kind_letter(ft: &fs::FileType) -> char {
    if ft.is_dir() {
        'd'
    } else if ft.is_symlink() {
        'l'
    } else if ft.is_fifo() {
        'p'
    } else if ft.is_socket() {
        's'
    } else if ft.is_char_device() {
        'c'
    } else if ft.is_block_device() {
        'b'
    } else {
        '-'
    }
}

/// Extended attributes of `path` itself (not following symlinks), sorted.
pub fn xattrs_of(path: &Path) -> Vec<(Vec<u8>, Vec<u8>)> {
    let names = match xattr::list(path) {
        Ok(n) => n,
        Err(e) if e.raw_os_error() == Some(nix::libc::EOPNOTSUPP) => return Vec::new(),
        Err(e) => panic!("listxattr {}: {e}", path.display()),
    };
    let mut v: Vec<(Vec<u8>, Vec<u8>)> = names
        .map(|n| {
            let val = xattr::get(path, &n)
                .unwrap_or_else(|e| panic!("getxattr {} {n:?}: {e}", path.display()))
                .unwrap_or_default();
            (n.as_bytes().to_vec(), val)
        })
        .collect();
    v.sort();
    v
}

fn hash_file(path: &Path) -> String {
    let mut f = fs::File::open(path).unwrap_or_else(|e| panic!("open {}: {e}", path.display()));
    let mut h = blake3::Hasher::new();
    std::io::copy(&mut f, &mut h).unwrap_or_else(|e| panic!("read {}: {e}", path.display()));
    h.finalize().to_hex().to_string()
}

/// Walk `root` without following symlinks and call `f(relative path, full path, metadata)`
/// for every entry, parents before children. An entry is lstat-ed before its directory is read.
pub fn walk(root: &Path, f: &mut dyn FnMut(&[u8], &Path, &fs::Metadata)) {
    fn go(rel: &[u8], full: &Path, f: &mut dyn FnMut(&[u8], &Path, &fs::Metadata)) {
        let m =
            fs::symlink_metadata(full).unwrap_or_else(|e| panic!("lstat {}: {e}", full.display()));
        f(rel, full, &m);
        if m.is_dir() {
            let mut names: Vec<OsString> = fs::read_dir(full)
                .unwrap_or_else(|e| panic!("read_dir {}: {e}", full.display()))
                .map(|e| e.unwrap().file_name())
                .collect();
            names.sort_by(|a, b| a.as_bytes().cmp(b.as_bytes()));
            for n in names {
                let mut r = if rel == b"." {
                    Vec::new()
                } else {
                    rel.to_vec()
                };
                if !r.is_empty() {
                    r.push(b'/');
                }
                r.extend_from_slice(n.as_bytes());
                go(&r, &full.join(&n), f);
            }
        }
    }
    go(b".", root, f)
}

/// The metadata listing of the tree at `root`, sorted by relative path bytes.
pub fn listing(root: &Path) -> Vec<EntryMeta> {
    let mut v: Vec<(Vec<u8>, EntryMeta)> = Vec::new();
    walk(root, &mut |rel, full, m| {
        let ft = m.file_type();
        let kind = kind_letter(&ft);
        let e = EntryMeta {
            path: esc(rel),
            kind,
            mode: format!("{:o}", m.mode() & 0o7777),
            uid: m.uid(),
            gid: m.gid(),
            size: (ft.is_file() || ft.is_symlink()).then(|| m.size()),
            mtime: (m.mtime(), m.mtime_nsec()),
            nlink: (!ft.is_dir()).then(|| m.nlink()),
            xattrs: xattrs_of(full)
                .iter()
                .map(|(k, v)| (esc(k), esc(v)))
                .collect(),
            rdev: (ft.is_char_device() || ft.is_block_device()).then(|| {
                (
                    nix::libc::major(m.rdev()) as u64,
                    nix::libc::minor(m.rdev()) as u64,
                )
            }),
            target: ft
                .is_symlink()
                .then(|| esc(fs::read_link(full).unwrap().as_os_str().as_bytes())),
            content: ft.is_file().then(|| hash_file(full)),
        };
        v.push((rel.to_vec(), e));
    });
    v.sort_by(|a, b| a.0.cmp(&b.0));
    v.into_iter().map(|(_, e)| e).collect()
}

/// Names that share an inode, as sorted groups of (escaped) relative paths; only groups of
/// two or more names.
pub fn hardlink_groups(root: &Path) -> Vec<Vec<String>> {
    let mut by_ino: BTreeMap<(u64, u64), Vec<Vec<u8>>> = BTreeMap::new();
    walk(root, &mut |rel, _full, m| {
        if !m.is_dir() {
            by_ino
                .entry((m.dev(), m.ino()))
                .or_default()
                .push(rel.to_vec());
        }
    });
    let mut groups: Vec<Vec<Vec<u8>>> = by_ino.into_values().filter(|g| g.len() > 1).collect();
    for g in &mut groups {
        g.sort();
    }
    groups.sort();
    groups
        .into_iter()
        .map(|g| g.iter().map(|p| esc(p)).collect())
        .collect()
}

/// Entries whose atime differs from their mtime (restore sets atime = mtime). Call before
/// anything reads the tree: reading a file or directory may update its atime.
pub fn atime_mismatches(root: &Path) -> Vec<String> {
    let mut bad = Vec::new();
    walk(root, &mut |rel, _full, m| {
        if (m.atime(), m.atime_nsec()) != (m.mtime(), m.mtime_nsec()) {
            bad.push(format!(
                "{}: atime {}.{:09} != mtime {}.{:09}",
                esc(rel),
                m.atime(),
                m.atime_nsec(),
                m.mtime(),
                m.mtime_nsec()
            ));
        }
    });
    bad
}

/// Bytes allocated on disk for `path` (st_blocks * 512).
pub fn allocated_bytes(path: &Path) -> u64 {
    fs::symlink_metadata(path).unwrap().blocks() * 512
}

/// Assert that `restored` equals `src`: `diff -r`, the metadata listing and the hard link
/// groups.
pub fn assert_trees_equal(src: &Path, restored: &Path) {
    diff_trees(src, restored);
    let a = listing(src);
    let b = listing(restored);
    if a != b {
        // Show only the entries that differ first, then fail on the whole listing.
        for (x, y) in a.iter().zip(b.iter()) {
            if x != y {
                eprintln!("first difference:\n  source:   {x:?}\n  restored: {y:?}");
                break;
            }
        }
    }
    assert_eq!(
        a,
        b,
        "metadata listings differ (left: source {}, right: restored {})",
        src.display(),
        restored.display()
    );
    assert_eq!(
        hardlink_groups(src),
        hardlink_groups(restored),
        "hard link groups differ (left: source, right: restored)"
    );
}

/// Set atime and mtime of `path` itself (symlinks are not followed).
pub fn set_mtime(path: &Path, secs: i64, nanos: i64) {
    let t = nix::sys::time::TimeSpec::new(secs, nanos);
    nix::sys::stat::utimensat(
        nix::fcntl::AT_FDCWD,
        path,
        &t,
        &t,
        nix::sys::stat::UtimensatFlags::NoFollowSymlink,
    )
    .unwrap_or_else(|e| panic!("utimensat {}: {e}", path.display()));
}

/// Deterministic pseudo-random bytes (xorshift), so failures reproduce.
pub fn random_bytes(seed: u64, len: usize) -> Vec<u8> {
    let mut x = seed.wrapping_mul(0x9e37_79b9_7f4a_7c15) | 1;
    let mut v = Vec::with_capacity(len + 8);
    while v.len() < len {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        v.extend_from_slice(&x.to_le_bytes());
    }
    v.truncate(len);
    v
}

/// Total bytes of all files below a directory.
pub fn du(p: &Path) -> u64 {
    fs::read_dir(p)
        .unwrap()
        .map(|e| {
            let e = e.unwrap();
            let m = e.metadata().unwrap();
            if m.is_dir() {
                du(&e.path())
            } else {
                m.len()
            }
        })
        .sum()
}

/// Every file and directory below `root` with its size and mtime, sorted: equal before and
/// after means nothing was written there.
pub fn tree_fingerprint(root: &Path) -> Vec<(String, u64, i64, i64)> {
    let mut v = Vec::new();
    walk(root, &mut |rel, _full, m| {
        let size = if m.is_dir() { 0 } else { m.size() };
        v.push((esc(rel), size, m.mtime(), m.mtime_nsec()));
    });
    v.sort();
    v
}

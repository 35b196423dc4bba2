//! Helpers shared by the integration tests: running the `yester` binary (always with a
//! timeout), making repositories, and comparing directory trees (content with GNU `diff`,
//! metadata with a listing built here).
//!
//! Naming convention for special files: `diff -r` cannot compare FIFOs, sockets and device
//! nodes (it reports "File a is a fifo while file b is a fifo" and exits 1, and it would
//! *read* a device node such as /dev/zero forever). Tests therefore give such files names
//! ending in one of [`SPECIAL_SUFFIXES`] (`~fifo`, `~sock`, `~dev`), [`diff_trees`] excludes
//! them with `diff -x`, and they are compared through [`listing`] only. Other names used by
//! the tests never contain `~`, so nothing else is excluded by accident.

#![allow(dead_code)]

pub mod cli;

use std::collections::BTreeMap;
use std::ffi::{OsStr, OsString};
use std::fs;
use std::io::Read;
use std::os::unix::ffi::{OsStrExt, OsStringExt};
use std::os::unix::fs::{FileTypeExt, MetadataExt};
use std::path::{Path, PathBuf};
use std::process::{Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

/// Suffixes of special files that [`diff_trees`] leaves to the metadata listing.
pub const SPECIAL_SUFFIXES: [&str; 3] = ["~fifo", "~sock", "~dev"];

/// Default limit for one `yester` run.
pub const YESTER_TIMEOUT: Duration = Duration::from_secs(120);

/// Average chunk size used for test repositories (min 16 KiB, max 256 KiB).
pub const CHUNK_AVG: &str = "64KiB";

pub fn is_root() -> bool {
    nix::unistd::geteuid().is_root()
}

/// The path of the `yester` binary built by cargo for these tests.
pub fn yester_bin() -> PathBuf {
    PathBuf::from(env!("CARGO_BIN_EXE_yester"))
}

/// What a finished process printed.
#[derive(Debug)]
pub struct Output {
    /// The command line, for messages.
    pub cmdline: String,
    pub status: ExitStatus,
    pub stdout: String,
    pub stderr: String,
    pub elapsed: Duration,
}

impl Output {
    pub fn code(&self) -> Option<i32> {
        self.status.code()
    }

    /// Panic with everything printed unless the exit code is `code`.
    pub fn expect_code(&self, code: i32) -> &Self {
        assert_eq!(
            self.status.code(),
            Some(code),
            "`{}` exited with {:?}, expected {code}\n--- stdout:\n{}\n--- stderr:\n{}",
            self.cmdline,
            self.status,
            self.stdout,
            self.stderr
        );
        self
    }

    pub fn expect_success(&self) -> &Self {
        self.expect_code(0)
    }
}

/// Run `cmd` with stdin closed and output captured; panic if it runs longer than `timeout`
/// (the process is killed first, so a hanging process cannot hang the test suite).
pub fn run_with_timeout(mut cmd: Command, timeout: Duration) -> Output {
    let cmdline = format!("{cmd:?}");
    cmd.stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let start = Instant::now();
    let mut child = cmd
        .spawn()
        .unwrap_or_else(|e| panic!("cannot run {cmdline}: {e}"));
    let mut out = child.stdout.take().unwrap();
    let mut err = child.stderr.take().unwrap();
    // Read both pipes concurrently so a chatty process never blocks on a full pipe.
    let t_out = std::thread::spawn(move || {
        let mut v = Vec::new();
        let _ = out.read_to_end(&mut v);
        v
    });
    let t_err = std::thread::spawn(move || {
        let mut v = Vec::new();
        let _ = err.read_to_end(&mut v);
        v
    });
    let status = loop {
        if let Some(st) = child.try_wait().expect("wait for child") {
            break st;
        }
        if start.elapsed() > timeout {
            let _ = child.kill();
            let _ = child.wait();
            let stdout = String::from_utf8_lossy(&t_out.join().unwrap()).into_owned();
            let stderr = String::from_utf8_lossy(&t_err.join().unwrap()).into_owned();
            panic!(
                "`{cmdline}` did not finish within {timeout:?} and was killed\n--- stdout:\n{stdout}\n--- stderr:\n{stderr}"
            );
        }
        std::thread::sleep(Duration::from_millis(10));
    };
    let elapsed = start.elapsed();
    let stdout = String::from_utf8_lossy(&t_out.join().unwrap()).into_owned();
    let stderr = String::from_utf8_lossy(&t_err.join().unwrap()).into_owned();
    Output {
        cmdline,
        status,
        stdout,
        stderr,
        elapsed,
    }
}

/// The `yester` binary as a command, with no repository or log level taken from the
/// environment.
pub fn yester_command() -> Command {
    let mut cmd = Command::new(yester_bin());
    cmd.env_remove("YESTER_REPO").env_remove("RUST_LOG");
    cmd
}

/// Run `yester ARGS...` with [`YESTER_TIMEOUT`].
pub fn yester<I, S>(args: I) -> Output
where
    I: IntoIterator<Item = S>,
    S: AsRef<OsStr>,
{
    yester_timeout(args, YESTER_TIMEOUT)
}

pub fn yester_timeout<I, S>(args: I, timeout: Duration) -> Output
where
    I: IntoIterator<Item = S>,
    S: AsRef<OsStr>,
{
    let mut cmd = yester_command();
    cmd.args(args);
    run_with_timeout(cmd, timeout)
}

/// A repository in its own temporary directory.
pub struct Repo {
    _dir: tempfile::TempDir,
    pub path: PathBuf,
}

/// A snapshot as printed by `yester snapshots --json`.
#[derive(Clone, Debug)]
pub struct SnapshotInfo {
    pub id: String,
    pub short_id: String,
    pub time: String,
    pub source: String,
    pub hostname: String,
    pub paths: Vec<String>,
    pub tree: String,
}

fn is_hex64(s: &str) -> bool {
    s.len() == 64 && s.bytes().all(|b| b.is_ascii_hexdigit())
}

impl Repo {
    /// `yester init --chunk-avg 64KiB` in a fresh temporary directory.
    pub fn new() -> Repo {
        let dir = tempfile::Builder::new()
            .prefix("yester-repo")
            .tempdir()
            .unwrap();
        let path = dir.path().join("repo");
        yester([
            OsStr::new("init"),
            path.as_os_str(),
            OsStr::new("--chunk-avg"),
            OsStr::new(CHUNK_AVG),
        ])
        .expect_success();
        Repo { _dir: dir, path }
    }

    /// `yester -r REPO ARGS...`
    pub fn run<I, S>(&self, args: I) -> Output
    where
        I: IntoIterator<Item = S>,
        S: AsRef<OsStr>,
    {
        self.run_timeout(args, YESTER_TIMEOUT)
    }

    pub fn run_timeout<I, S>(&self, args: I, timeout: Duration) -> Output
    where
        I: IntoIterator<Item = S>,
        S: AsRef<OsStr>,
    {
        let mut all: Vec<OsString> = vec!["-r".into(), self.path.clone().into_os_string()];
        all.extend(args.into_iter().map(|a| a.as_ref().to_owned()));
        yester_timeout(all, timeout)
    }

    /// `yester backup --source SOURCE PATHS...`; returns the output (exit code unchecked)
    /// and the snapshot id parsed from `snapshot <id> of SOURCE: ...` when there is one.
    pub fn backup_raw(
        &self,
        source: &str,
        paths: &[&Path],
        timeout: Duration,
    ) -> (Output, Option<String>) {
        let mut args: Vec<OsString> = vec!["backup".into(), "--source".into(), source.into()];
        args.extend(paths.iter().map(|p| p.as_os_str().to_owned()));
        let out = self.run_timeout(args, timeout);
        // `snapshot <64-hex-id> of SOURCE: ...` (later versions print the backup point
        // instead of `of SOURCE`, so only the id is relied on; it is cross-checked with
        // `snapshots --json` by the callers).
        let id = out.stdout.lines().find_map(|l| {
            let id = l.strip_prefix("snapshot ")?.split(' ').next()?;
            (is_hex64(id) && l.contains(source)).then(|| id.to_string())
        });
        (out, id)
    }

    /// A backup that must succeed completely (exit 0); returns the snapshot id.
    pub fn backup(&self, source: &str, paths: &[&Path]) -> String {
        let (out, id) = self.backup_raw(source, paths, YESTER_TIMEOUT);
        out.expect_success();
        id.unwrap_or_else(|| {
            panic!(
                "no `snapshot <id> ...{source}...` line in backup output:\n{}",
                out.stdout
            )
        })
    }

    /// `yester snapshots --json`, checked for shape.
    pub fn snapshots(&self) -> Vec<SnapshotInfo> {
        let out = self.run(["snapshots", "--json"]);
        out.expect_success();
        let v: serde_json::Value = serde_json::from_str(&out.stdout)
            .unwrap_or_else(|e| panic!("snapshots --json is not JSON ({e}):\n{}", out.stdout));
        let arr = v.as_array().expect("snapshots --json prints an array");
        arr.iter()
            .map(|s| {
                let field = |k: &str| -> String {
                    s.get(k)
                        .and_then(|x| x.as_str())
                        .unwrap_or_else(|| {
                            panic!("snapshot field {k:?} missing or not a string in {s}")
                        })
                        .to_string()
                };
                let info = SnapshotInfo {
                    id: field("id"),
                    short_id: field("short_id"),
                    time: field("time"),
                    source: field("source"),
                    hostname: field("hostname"),
                    paths: s
                        .get("paths")
                        .and_then(|p| p.as_array())
                        .unwrap_or_else(|| panic!("snapshot field \"paths\" missing in {s}"))
                        .iter()
                        .map(|p| p.as_str().expect("paths are strings").to_string())
                        .collect(),
                    tree: field("tree"),
                };
                assert!(
                    is_hex64(&info.id),
                    "snapshot id {:?} is not 64 hex digits",
                    info.id
                );
                assert!(
                    is_hex64(&info.tree),
                    "tree id {:?} is not 64 hex digits",
                    info.tree
                );
                assert!(
                    info.id.starts_with(&info.short_id) && !info.short_id.is_empty(),
                    "short_id {:?} is not a prefix of id {:?}",
                    info.short_id,
                    info.id
                );
                info
            })
            .collect()
    }

    /// `yester restore SPEC --target TARGET [--overwrite]` (exit code unchecked).
    pub fn restore_raw(&self, spec: &OsStr, target: &Path, overwrite: bool) -> Output {
        let mut args: Vec<OsString> = vec![
            "restore".into(),
            spec.to_owned(),
            "--target".into(),
            target.into(),
        ];
        if overwrite {
            args.push("--overwrite".into());
        }
        self.run(args)
    }

    /// A restore that must succeed.
    pub fn restore(&self, spec: &OsStr, target: &Path) {
        self.restore_raw(spec, target, false).expect_success();
    }
}

/// `SNAP:PATH` for restoring the backed-up absolute path `abs` (leading `/` dropped).
pub fn restore_spec(snap: &str, abs: &Path) -> OsString {
    let rel = abs.strip_prefix("/").expect("absolute path");
    let mut v = snap.as_bytes().to_vec();
    v.push(b':');
    v.extend_from_slice(rel.as_os_str().as_bytes());
    OsString::from_vec(v)
}

/// A temporary directory with its canonical path (backup records canonical parents).
pub fn temp_dir(prefix: &str) -> (tempfile::TempDir, PathBuf) {
    let d = tempfile::Builder::new().prefix(prefix).tempdir().unwrap();
    let p = fs::canonicalize(d.path()).unwrap();
    (d, p)
}

// ---------------------------------------------------------------------------------------
// Comparing trees
// ---------------------------------------------------------------------------------------

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

// ---------------------------------------------------------------------------------------
// Probing what the filesystem and the privileges allow
// ---------------------------------------------------------------------------------------

/// Ok if files and directories in `dir` can carry `user.*` extended attributes.
pub fn user_xattrs_supported(dir: &Path) -> Result<(), String> {
    let f = dir.join("xattr-probe");
    fs::write(&f, b"x").map_err(|e| e.to_string())?;
    let res = xattr::set(&f, "user.yester_probe", b"1")
        .and_then(|_| xattr::get(&f, "user.yester_probe"))
        .map_err(|e| format!("setting user.* xattr in {}: {e}", dir.display()))
        .and_then(|v| match v {
            Some(v) if v == b"1" => Ok(()),
            other => Err(format!("user.* xattr read back as {other:?}")),
        });
    let _ = fs::remove_file(&f);
    res
}

/// Ok if `mknod c 1 3` works in `dir` (needs root, and a container may forbid it).
pub fn mknod_supported(dir: &Path) -> Result<(), String> {
    if !is_root() {
        return Err("not running as root".into());
    }
    let p = dir.join("mknod-probe");
    let res = nix::sys::stat::mknod(
        &p,
        nix::sys::stat::SFlag::S_IFCHR,
        nix::sys::stat::Mode::from_bits_truncate(0o600),
        nix::libc::makedev(1, 3),
    )
    .map_err(|e| format!("mknod c 1 3 in {}: {e}", dir.display()));
    let _ = fs::remove_file(&p);
    res
}

/// Ok if mtimes before 1970 and after 2038 survive a round trip through the filesystem.
pub fn wide_mtimes_supported(dir: &Path) -> Result<(), String> {
    let f = dir.join("mtime-probe");
    fs::write(&f, b"x").map_err(|e| e.to_string())?;
    let mut res = Ok(());
    for (s, ns) in [
        (-1_000_000_000i64, 123_456_789i64),
        (8_000_000_000, 999_999_999),
    ] {
        set_mtime(&f, s, ns);
        let m = fs::symlink_metadata(&f).unwrap();
        if (m.mtime(), m.mtime_nsec()) != (s, ns) {
            res = Err(format!(
                "mtime {s}.{ns:09} read back as {}.{:09}",
                m.mtime(),
                m.mtime_nsec()
            ));
        }
    }
    let _ = fs::remove_file(&f);
    res
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

impl Repo {
    /// Like [`Repo::new`], with more `init` arguments, e.g. `["--levels", "hourly=1000"]` so
    /// that no snapshot is rotated out of the backup points.
    pub fn with_init_args(extra: &[&str]) -> Repo {
        let dir = tempfile::Builder::new()
            .prefix("yester-repo")
            .tempdir()
            .unwrap();
        let path = dir.path().join("repo");
        let mut args: Vec<OsString> = vec![
            "init".into(),
            path.clone().into_os_string(),
            "--chunk-avg".into(),
            CHUNK_AVG.into(),
        ];
        args.extend(extra.iter().map(OsString::from));
        yester(args).expect_success();
        Repo { _dir: dir, path }
    }

    /// The temporary directory holding the repository (the parent of `path`).
    pub fn dir(&self) -> &Path {
        self._dir.path()
    }
}

// ---------------------------------------------------------------------------------------
// Running servers: a FUSE mount and an NFS server as child processes
// ---------------------------------------------------------------------------------------

/// Whether FUSE mounts can be made here; says loudly why not.
pub fn fuse_available() -> bool {
    let fuse = Path::new("/dev/fuse").exists();
    let fusermount = Command::new("fusermount3").arg("-V").output().is_ok();
    if !fuse || !fusermount {
        eprintln!(
            "SKIPPING FUSE TEST: /dev/fuse present: {fuse}, fusermount3 present: {fusermount} \
             (install fuse3; run as root)"
        );
    }
    fuse && fusermount
}

/// Whether the NFS client tools (libnfs-utils) are installed; says loudly why not.
pub fn nfs_client_available() -> bool {
    let ok = Command::new("nfs-cat").output().is_ok();
    if !ok {
        eprintln!("SKIPPING NFS TEST: nfs-cat not found (apt-get install libnfs-utils)");
    }
    ok
}

/// Whether a file system is mounted at `p` (a canonical path).
pub fn is_mounted(p: &Path) -> bool {
    let info = fs::read_to_string("/proc/self/mountinfo").unwrap_or_default();
    let want = p.to_str().unwrap_or("");
    info.lines().any(|l| l.split(' ').nth(4) == Some(want))
}

/// Unmount a FUSE mount at `point` (`fusermount3 -u`), waiting for it to go; lazily if it
/// does not.
pub fn unmount(point: &Path) {
    let _ = Command::new("fusermount3").arg("-u").arg(point).status();
    let deadline = Instant::now() + Duration::from_secs(10);
    while is_mounted(point) && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(50));
    }
    if is_mounted(point) {
        let _ = Command::new("umount").arg("-l").arg(point).status();
    }
}

/// Unmounts the FUSE mount at its path when dropped, also when the test fails.
pub struct Unmount(pub PathBuf);

impl Drop for Unmount {
    fn drop(&mut self) {
        unmount(&self.0);
    }
}

/// A field of `/proc/PID/status` in KiB (`VmHWM` is the peak resident set).
pub fn proc_status_kib(pid: u32, field: &str) -> Option<u64> {
    fs::read_to_string(format!("/proc/{pid}/status"))
        .ok()?
        .lines()
        .find(|l| l.starts_with(field) && l[field.len()..].starts_with(':'))
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|v| v.parse().ok())
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

/// `yester -r REPO mount --foreground POINT EXTRA...` as a child process (stderr to a log
/// file); unmounted and reaped when dropped, also when the test fails.
pub struct FuseMount {
    pub child: std::process::Child,
    pub point: PathBuf,
    pub log: PathBuf,
}

impl FuseMount {
    pub fn start(repo: &Path, point: &Path, extra: &[&str]) -> FuseMount {
        fs::create_dir_all(point).unwrap();
        let point = fs::canonicalize(point).unwrap();
        let log = point.with_extension("log");
        let mut cmd = Command::new(yester_bin());
        cmd.arg("-r")
            .arg(repo)
            .arg("mount")
            .arg("--foreground")
            .arg(&point)
            .args(extra)
            .env_remove("YESTER_REPO")
            .env_remove("RUST_LOG")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(fs::File::create(&log).unwrap());
        let mut child = cmd.spawn().expect("start yester mount");
        let deadline = Instant::now() + Duration::from_secs(60);
        while !is_mounted(&point) {
            if let Some(st) = child.try_wait().unwrap() {
                panic!(
                    "yester mount exited with {st}: {}",
                    fs::read_to_string(&log).unwrap_or_default()
                );
            }
            assert!(
                Instant::now() < deadline,
                "the mount did not come up in 60 s"
            );
            std::thread::sleep(Duration::from_millis(20));
        }
        FuseMount { child, point, log }
    }

    pub fn path(&self, rel: &str) -> PathBuf {
        self.point.join(rel)
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Whether the mount process is still running.
    pub fn alive(&mut self) -> bool {
        self.child.try_wait().unwrap().is_none()
    }

    /// What the mount process logged so far.
    pub fn log_text(&self) -> String {
        fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// SIGTERM, as `systemctl stop` would: the process must unmount and exit 0.
    pub fn stop(mut self) -> ExitStatus {
        nix::sys::signal::kill(
            nix::unistd::Pid::from_raw(self.child.id() as i32),
            nix::sys::signal::Signal::SIGTERM,
        )
        .unwrap();
        self.wait_exit()
    }

    /// `fusermount3 -u`, as the systemd unit's ExecStop does: the process must exit 0.
    pub fn unmount(mut self) -> ExitStatus {
        let st = Command::new("fusermount3")
            .arg("-u")
            .arg(&self.point)
            .status()
            .unwrap();
        assert!(st.success(), "fusermount3 -u {}", self.point.display());
        self.wait_exit()
    }

    fn wait_exit(&mut self) -> ExitStatus {
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            if let Some(st) = self.child.try_wait().unwrap() {
                return st;
            }
            assert!(Instant::now() < deadline, "the mount process did not exit");
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

impl Drop for FuseMount {
    fn drop(&mut self) {
        if is_mounted(&self.point) {
            let _ = Command::new("fusermount3")
                .arg("-u")
                .arg(&self.point)
                .status();
        }
        let deadline = Instant::now() + Duration::from_secs(10);
        while self.child.try_wait().ok().flatten().is_none() && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(20));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
        if is_mounted(&self.point) {
            let _ = Command::new("umount").arg("-l").arg(&self.point).status();
        }
    }
}

/// `yester -r REPO nfs serve --listen 127.0.0.1:0 --handle-key KEY EXTRA...` (stderr after
/// the "listening" line goes to a log file); killed when dropped.
pub struct NfsServer {
    pub child: std::process::Child,
    pub port: u16,
    pub log: PathBuf,
}

impl NfsServer {
    pub fn start(repo: &Path, key: &Path, extra: &[&OsStr]) -> NfsServer {
        use std::io::{BufRead, Write};
        static N: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);
        let n = N.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let log = key.with_extension(format!("log-{n}"));
        let mut cmd = yester_command();
        // Nothing from the test run's environment: no tracing or failpoints in the server.
        for v in ["YESTER_IO_TRACE", "YESTER_FAILPOINT", "YESTER_CONFIG"] {
            cmd.env_remove(v);
        }
        cmd.arg("-r")
            .arg(repo)
            .args(["nfs", "serve", "--listen", "127.0.0.1:0", "--handle-key"])
            .arg(key)
            .args(extra)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped());
        let mut child = cmd.spawn().expect("start yester nfs serve");
        let mut err = std::io::BufReader::new(child.stderr.take().unwrap());
        // Warnings (e.g. about a damaged point catalogue) may come before the "listening"
        // line; they go to the log.
        let mut before = String::new();
        let mut line = String::new();
        loop {
            line.clear();
            if err.read_line(&mut line).unwrap_or(0) == 0 || line.contains("listening on ") {
                break;
            }
            before.push_str(&line);
        }
        let port = line
            .split("listening on ")
            .nth(1)
            .and_then(|s| s.split_whitespace().next())
            .and_then(|a| a.rsplit(':').next())
            .and_then(|p| p.parse().ok())
            .unwrap_or_else(|| panic!("no port in {line:?} (before it: {before:?})"));
        // Keep draining stderr into the log so the server never blocks on a full pipe.
        let mut out = fs::File::create(&log).unwrap();
        let _ = out.write_all(before.as_bytes());
        std::thread::spawn(move || {
            let _ = std::io::copy(&mut err, &mut out);
        });
        NfsServer { child, port, log }
    }

    /// An `nfs://` URL for libnfs tools, MOUNT and NFS on the server's one port.
    pub fn url(&self, path: &str) -> String {
        format!(
            "nfs://127.0.0.1{path}?version=3&nfsport={p}&mountport={p}",
            p = self.port
        )
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    pub fn alive(&mut self) -> bool {
        self.child.try_wait().unwrap().is_none()
    }

    pub fn log_text(&self) -> String {
        fs::read_to_string(&self.log).unwrap_or_default()
    }
}

impl Drop for NfsServer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A read-only bind mount of a directory (needs root), unmounted when dropped. Servers run on
/// it to show they never write to the repository: any write would fail with EROFS.
pub struct ReadOnlyBind {
    pub path: PathBuf,
}

impl ReadOnlyBind {
    /// `None` (with a loud message) where bind mounts cannot be made.
    pub fn new(dir: &Path, at: &Path) -> Option<ReadOnlyBind> {
        if !is_root() {
            eprintln!("SKIPPING the read-only bind mount: needs root");
            return None;
        }
        fs::create_dir_all(at).unwrap();
        let at = fs::canonicalize(at).unwrap();
        let ok = |args: &[&OsStr]| {
            Command::new("mount")
                .args(args)
                .output()
                .map(|o| o.status.success())
                .unwrap_or(false)
        };
        if !ok(&[OsStr::new("--bind"), dir.as_os_str(), at.as_os_str()]) {
            eprintln!("SKIPPING the read-only bind mount: mount --bind failed");
            return None;
        }
        let guard = ReadOnlyBind { path: at.clone() };
        if !ok(&[
            OsStr::new("-o"),
            OsStr::new("remount,bind,ro"),
            at.as_os_str(),
        ]) {
            eprintln!("SKIPPING the read-only bind mount: remount ro failed");
            return None;
        }
        // Prove it is read-only before relying on it.
        match fs::write(at.join("write-probe"), b"x") {
            Err(e) if e.raw_os_error() == Some(nix::libc::EROFS) => Some(guard),
            other => panic!("the read-only bind mount accepted a write: {other:?}"),
        }
    }
}

impl Drop for ReadOnlyBind {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg("-l").arg(&self.path).status();
    }
}

/// The raw ONC RPC client of tests/nfs_server.rs and tests/access.rs: XDR pieces and a
/// connection.
pub mod xdr {
    pub fn put_u32(b: &mut Vec<u8>, v: u32) {
        b.extend_from_slice(&v.to_be_bytes());
    }

    pub fn put_opaque(b: &mut Vec<u8>, d: &[u8]) {
        put_u32(b, d.len() as u32);
        b.extend_from_slice(d);
        b.extend(std::iter::repeat_n(0, (4 - d.len() % 4) % 4));
    }

    pub fn get_u32(b: &[u8], pos: &mut usize) -> u32 {
        let v = u32::from_be_bytes(b[*pos..*pos + 4].try_into().unwrap());
        *pos += 4;
        v
    }

    pub fn get_opaque(b: &[u8], pos: &mut usize) -> Vec<u8> {
        let n = get_u32(b, pos) as usize;
        let v = b[*pos..*pos + n].to_vec();
        *pos += n + (4 - n % 4) % 4;
        v
    }

    /// A reply: the RPC accept status (or 100 + auth_stat when denied) and the results.
    pub struct Reply {
        pub stat: u32,
        pub body: Vec<u8>,
    }

    impl Reply {
        /// The NFS or MOUNT status (the first word of the results).
        pub fn status(&self) -> u32 {
            assert_eq!(
                self.stat, 0,
                "call not accepted (accept status {})",
                self.stat
            );
            u32::from_be_bytes(self.body[..4].try_into().unwrap())
        }
    }

    /// One TCP connection of a raw ONC RPC client.
    pub struct Conn {
        s: std::net::TcpStream,
        xid: u32,
    }

    impl Conn {
        /// Connect to 127.0.0.1:`port` from 127.0.0.`host`:`local_port` (0: the kernel's
        /// choice; ports below 1024 need root).
        pub fn connect(host: u8, local_port: u16, port: u16) -> Conn {
            use nix::sys::socket::{
                bind, connect, setsockopt, socket, sockopt, AddressFamily, SockFlag, SockType,
                SockaddrIn,
            };
            use std::os::fd::{AsRawFd, FromRawFd, IntoRawFd};
            let fd = socket(
                AddressFamily::Inet,
                SockType::Stream,
                SockFlag::empty(),
                None,
            )
            .unwrap();
            if local_port != 0 {
                setsockopt(&fd, sockopt::ReuseAddr, &true).unwrap();
            }
            bind(
                fd.as_raw_fd(),
                &SockaddrIn::new(127, 0, 0, host, local_port),
            )
            .unwrap();
            connect(fd.as_raw_fd(), &SockaddrIn::new(127, 0, 0, 1, port)).unwrap();
            // SAFETY: `fd` is a connected socket we own; the stream takes it over.
            let s = unsafe { std::net::TcpStream::from_raw_fd(fd.into_raw_fd()) };
            s.set_read_timeout(Some(std::time::Duration::from_secs(20)))
                .unwrap();
            Conn { s, xid: 1 }
        }

        /// One call with AUTH_SYS credentials `uid`:`gid`; a denied call gives stat
        /// 100 + its auth_stat.
        pub fn call(&mut self, prog: u32, proc_: u32, uid: u32, gid: u32, args: &[u8]) -> Reply {
            use std::io::{Read, Write};
            self.xid += 1;
            let mut m = Vec::new();
            for v in [self.xid, 0, 2, prog, 3, proc_, 1] {
                put_u32(&mut m, v);
            }
            let mut cred = Vec::new();
            put_u32(&mut cred, 0);
            put_opaque(&mut cred, b"test");
            put_u32(&mut cred, uid);
            put_u32(&mut cred, gid);
            put_u32(&mut cred, 0);
            put_opaque(&mut m, &cred);
            put_u32(&mut m, 0);
            put_u32(&mut m, 0);
            m.extend_from_slice(args);
            let mut rec = (0x8000_0000u32 | m.len() as u32).to_be_bytes().to_vec();
            rec.extend_from_slice(&m);
            self.s.write_all(&rec).unwrap();
            let mut reply = Vec::new();
            loop {
                let mut h = [0u8; 4];
                self.s.read_exact(&mut h).unwrap();
                let w = u32::from_be_bytes(h);
                let mut frag = vec![0u8; (w & 0x7fff_ffff) as usize];
                self.s.read_exact(&mut frag).unwrap();
                reply.extend_from_slice(&frag);
                if w & 0x8000_0000 != 0 {
                    break;
                }
            }
            let mut pos = 0;
            assert_eq!(get_u32(&reply, &mut pos), self.xid);
            assert_eq!(get_u32(&reply, &mut pos), 1, "a reply");
            if get_u32(&reply, &mut pos) == 1 {
                let _rej = get_u32(&reply, &mut pos);
                let auth = get_u32(&reply, &mut pos);
                return Reply {
                    stat: 100 + auth,
                    body: Vec::new(),
                };
            }
            let _verf_flavor = get_u32(&reply, &mut pos);
            let _verf = get_opaque(&reply, &mut pos);
            let stat = get_u32(&reply, &mut pos);
            Reply {
                stat,
                body: reply[pos..].to_vec(),
            }
        }
    }
}

//! Hostile input to `yester backup`: files and directories vanishing, growing, shrinking and
//! changing type while the backup walks them, permission denied, FIFOs, sockets and device
//! nodes, hostile names, paths longer than PATH_MAX, a huge directory, symlink loops and bad
//! top-level paths.
//!
//! Every test asserts the same baseline: nothing blocks (each process runs under a timeout and
//! is killed, with its whole process group, when it overruns), nothing panics (no exit code
//! 101, no "panicked" on stderr, no death by signal), every readable file is saved with the
//! right content, problems are recorded as snapshot warnings with exit code 3, and
//! `check --read-data` finds the repository clean afterwards.
//!
//! Races are made deterministic where it matters by watching `/proc/PID/fd` of the running
//! backup: the test waits until yester has a given file open (so it has listed the directory
//! and is busy reading) and only then deletes or swaps entries behind it.
//!
//! Tests marked `#[ignore = "bug: ..."]` assert the correct behaviour where yester has a bug
//! today; run them with `cargo test --test hostile_backup -- --ignored`.
//!
//! `YESTER_HOSTILE_FULL=1` raises the huge directory from 100,000 to 1,000,000 entries.
//!
//! Longer than 600 lines on purpose: each file under `tests/` is a test binary of its own that
//! links the whole crate, so these related tests share one file rather than adding a binary
//! (and its link time) to every run of the suite.

// Tests unwrap freely: a panic is how a test fails (the crate denies it elsewhere).
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::collections::{BTreeMap, BTreeSet};
use std::ffi::{OsStr, OsString};
use std::fs;
use std::io::{Read, Write};
use std::os::fd::OwnedFd;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::{FileExt, FileTypeExt, MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use common::*;
use nix::fcntl::OFlag;
use nix::sys::stat::Mode;

/// Limit for every process these tests start.
const TIMEOUT: Duration = Duration::from_secs(120);
const KIB: usize = 1 << 10;
const MIB: usize = 1 << 20;
const NOBODY: u32 = 65534;

// ---------------------------------------------------------------------------------------
// Running processes: a timeout that kills the whole process group, raw stdout, sanity
// ---------------------------------------------------------------------------------------

/// A process started in its own process group, its output read by two threads.
struct Running {
    child: Child,
    cmdline: String,
    start: Instant,
    out: JoinHandle<Vec<u8>>,
    err: JoinHandle<Vec<u8>>,
}

/// What a finished process printed: `out` with lossy text, `raw` the exact stdout bytes.
struct Finished {
    out: Output,
    raw: Vec<u8>,
}

fn spawn(mut cmd: Yester) -> Running {
    let cmdline = cmd.cmdline();
    cmd.stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        // Own process group, so a wrapper (setpriv, /usr/bin/time) and yester die together.
        .process_group(0);
    let mut child = cmd
        .spawn()
        .unwrap_or_else(|e| panic!("cannot run {cmdline}: {e}"));
    let mut so = child.stdout.take().unwrap();
    let mut se = child.stderr.take().unwrap();
    let out = std::thread::spawn(move || {
        let mut v = Vec::new();
        let _ = so.read_to_end(&mut v);
        v
    });
    let err = std::thread::spawn(move || {
        let mut v = Vec::new();
        let _ = se.read_to_end(&mut v);
        v
    });
    Running {
        child,
        cmdline,
        start: Instant::now(),
        out,
        err,
    }
}

impl Running {
    fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Wait for the process; kill its process group and panic after `timeout`. Also panics
    /// if it panicked or died by a signal.
    fn finish(mut self, timeout: Duration) -> Finished {
        let status = loop {
            if let Some(st) = self.child.try_wait().expect("wait for child") {
                break st;
            }
            if self.start.elapsed() > timeout {
                let pgid = nix::unistd::Pid::from_raw(self.child.id() as i32);
                let _ = nix::sys::signal::killpg(pgid, nix::sys::signal::Signal::SIGKILL);
                let _ = self.child.kill();
                let _ = self.child.wait();
                let so = String::from_utf8_lossy(&self.out.join().unwrap()).into_owned();
                let se = String::from_utf8_lossy(&self.err.join().unwrap()).into_owned();
                panic!(
                    "`{}` did not finish within {timeout:?} and was killed (it blocks)\n--- stdout:\n{so}\n--- stderr:\n{se}",
                    self.cmdline
                );
            }
            std::thread::sleep(Duration::from_millis(5));
        };
        let elapsed = self.start.elapsed();
        let raw = self.out.join().unwrap();
        let stderr = String::from_utf8_lossy(&self.err.join().unwrap()).into_owned();
        let out = Output {
            cmdline: self.cmdline,
            status,
            stdout: String::from_utf8_lossy(&raw).into_owned(),
            stderr,
            elapsed,
        };
        assert_sane(&out);
        Finished { out, raw }
    }
}

/// No death by signal, no panic.
fn assert_sane(out: &Output) {
    assert!(
        out.status.code().is_some(),
        "`{}` was killed by a signal ({:?})\n--- stderr:\n{}",
        out.cmdline,
        out.status,
        out.stderr
    );
    assert_ne!(
        out.code(),
        Some(101),
        "`{}` panicked\n--- stderr:\n{}",
        out.cmdline,
        out.stderr
    );
    assert!(
        !out.stderr.contains("panicked"),
        "`{}` panicked\n--- stderr:\n{}",
        out.cmdline,
        out.stderr
    );
}

/// `yester` directly, or as `nobody` through `setpriv`.
fn yester_cmd(nobody: bool) -> Yester {
    if nobody {
        Yester::via(
            "setpriv",
            [
                format!("--reuid={NOBODY}"),
                format!("--regid={NOBODY}"),
                "--clear-groups".to_string(),
            ],
        )
    } else {
        Yester::new()
    }
}

fn repo_args(repo: &Repo) -> [OsString; 2] {
    ["-r".into(), repo.path.clone().into_os_string()]
}

/// `yester -r REPO ARGS...` with the timeout, checked for sanity (exit code not checked).
fn run<I, S>(repo: &Repo, args: I) -> Finished
where
    I: IntoIterator<Item = S>,
    S: AsRef<OsStr>,
{
    let mut c = yester_cmd(false);
    c.args(repo_args(repo)).args(args);
    spawn(c).finish(TIMEOUT)
}

fn check_clean(repo: &Repo) {
    run(repo, ["check", "--read-data"]).out.expect_success();
}

/// `SNAP:PATH` for the backed-up absolute path `abs`, as raw bytes.
fn spec(id: &str, abs: &Path) -> OsString {
    restore_spec(id, abs)
}

/// `yester ls SPEC [-l] [--recursive]`, raw stdout.
fn ls(repo: &Repo, spec: &OsStr, long: bool, recursive: bool) -> Vec<u8> {
    let mut args: Vec<OsString> = vec!["ls".into(), spec.to_owned()];
    if long {
        args.push("-l".into());
    }
    if recursive {
        args.push("--recursive".into());
    }
    let f = run(repo, args);
    f.out.expect_success();
    f.raw
}

/// `yester cat SPEC`, raw stdout.
fn cat(repo: &Repo, spec: &OsStr) -> Vec<u8> {
    let f = run(repo, [OsStr::new("cat"), spec]);
    f.out.expect_success();
    f.raw
}

/// Restore the backed-up path `abs` of snapshot `id` as `target/<name of abs>`.
fn restore(repo: &Repo, id: &str, abs: &Path, target: &Path) -> PathBuf {
    let f = run(
        repo,
        [
            OsStr::new("restore"),
            &spec(id, abs),
            OsStr::new("--target"),
            target.as_os_str(),
        ],
    );
    f.out.expect_success();
    target.join(abs.file_name().unwrap())
}

/// A backup that saved a snapshot (exit 0 or 3).
struct Backup {
    out: Output,
    id: String,
    warnings: Vec<String>,
}

impl Backup {
    /// Warnings about `path` itself or anything below it.
    fn warnings_about(&self, path: &Path) -> Vec<&String> {
        let p = path.to_string_lossy();
        self.warnings
            .iter()
            .filter(|w| w.starts_with(&format!("{p}: ")) || w.starts_with(&format!("{p}/")))
            .collect()
    }
}

fn start_backup(
    repo: &Repo,
    nobody: bool,
    source: &str,
    paths: &[&Path],
    extra: &[&str],
) -> Running {
    let mut c = yester_cmd(nobody);
    c.args(repo_args(repo))
        .args(["backup", "--source", source, "--json"])
        .args(extra)
        .args(paths);
    spawn(c)
}

/// The path a warning names (`PATH: message`; the test paths contain no ": ").
fn warning_path(w: &str) -> &str {
    w.split_once(": ").map_or(w, |(p, _)| p)
}

/// Finish a backup that must have saved a snapshot: exit 0 without warnings or exit 3 with
/// warnings; the warnings printed must be the ones recorded in `snapshots --json`.
fn finish_backup(repo: &Repo, r: Running) -> Backup {
    let f = r.finish(TIMEOUT);
    let out = f.out;
    assert!(
        matches!(out.code(), Some(0) | Some(3)),
        "`{}` exited with {:?}, expected 0 or 3\n--- stdout:\n{}\n--- stderr:\n{}",
        out.cmdline,
        out.status,
        out.stdout,
        out.stderr
    );
    let v: serde_json::Value = serde_json::from_str(&out.stdout)
        .unwrap_or_else(|e| panic!("backup --json printed no JSON ({e}):\n{}", out.stdout));
    let id = v["id"].as_str().expect("id in backup --json").to_string();
    let warnings: Vec<String> = v["warnings"]
        .as_array()
        .expect("warnings in backup --json")
        .iter()
        .map(|w| w.as_str().expect("warnings are strings").to_string())
        .collect();
    let partial = v["partial"].as_bool().expect("partial in backup --json");
    assert_eq!(
        partial,
        out.code() == Some(3),
        "\"partial\" disagrees with the exit code: {}",
        out.stdout
    );
    assert_eq!(
        partial,
        !warnings.is_empty(),
        "exit 3 must come with warnings and warnings with exit 3: {}",
        out.stdout
    );
    assert_eq!(
        snapshot_warnings(repo, &id),
        warnings,
        "the snapshot records other warnings than the backup printed"
    );
    Backup { out, id, warnings }
}

fn backup(repo: &Repo, source: &str, paths: &[&Path], extra: &[&str]) -> Backup {
    finish_backup(repo, start_backup(repo, false, source, paths, extra))
}

/// The `warnings` of snapshot `id` in `snapshots --json`.
fn snapshot_warnings(repo: &Repo, id: &str) -> Vec<String> {
    let f = run(repo, ["snapshots", "--json"]);
    f.out.expect_success();
    let v: serde_json::Value = serde_json::from_str(&f.out.stdout).unwrap();
    let s = v
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["id"].as_str() == Some(id))
        .unwrap_or_else(|| panic!("snapshot {id} not in snapshots --json"));
    s["warnings"]
        .as_array()
        .unwrap_or_else(|| panic!("no warnings array in {s}"))
        .iter()
        .map(|w| w.as_str().unwrap().to_string())
        .collect()
}

fn snapshot_count(repo: &Repo) -> usize {
    let f = run(repo, ["snapshots", "--json"]);
    f.out.expect_success();
    let v: serde_json::Value = serde_json::from_str(&f.out.stdout).unwrap();
    v.as_array().unwrap().len()
}

/// Sets the flag when dropped, so helper threads stop even when the test panics (a scoped
/// thread that never stops would hang the test instead of failing it).
struct StopOnDrop<'a>(&'a AtomicBool);
impl Drop for StopOnDrop<'_> {
    fn drop(&mut self) {
        self.0.store(true, Ordering::SeqCst);
    }
}

/// Paths process `pid` has open, from `/proc/PID/fd`.
fn open_files(pid: u32) -> Vec<PathBuf> {
    let Ok(rd) = fs::read_dir(format!("/proc/{pid}/fd")) else {
        return Vec::new();
    };
    rd.filter_map(|e| e.ok())
        .filter_map(|e| fs::read_link(e.path()).ok())
        .collect()
}

/// Wait until `pid` has a file open for which `pred` holds. False when `stop` is set or
/// `limit` passes first.
fn wait_for_open(
    pid: u32,
    stop: &AtomicBool,
    limit: Duration,
    pred: impl Fn(&Path) -> bool,
) -> bool {
    let start = Instant::now();
    while !stop.load(Ordering::SeqCst) && start.elapsed() < limit {
        if open_files(pid).iter().any(|p| pred(p)) {
            return true;
        }
        std::thread::sleep(Duration::from_micros(100));
    }
    false
}

/// Regular files below `root` (relative path -> content) and directories (relative, the
/// root as ""); other kinds panic unless `others_ok`.
fn read_tree(root: &Path, others_ok: bool) -> (BTreeMap<PathBuf, Vec<u8>>, BTreeSet<PathBuf>) {
    let mut files = BTreeMap::new();
    let mut dirs = BTreeSet::new();
    walk(root, &mut |rel, full, m| {
        let rel = if rel == b"." {
            PathBuf::new()
        } else {
            PathBuf::from(OsStr::from_bytes(rel))
        };
        if m.is_dir() {
            dirs.insert(rel);
        } else if m.is_file() {
            files.insert(rel, fs::read(full).unwrap());
        } else if !others_ok {
            panic!("unexpected {:?} at {}", m.file_type(), full.display());
        }
    });
    (files, dirs)
}

fn chmod(p: &Path, mode: u32) {
    fs::set_permissions(p, fs::Permissions::from_mode(mode))
        .unwrap_or_else(|e| panic!("chmod {mode:o} {}: {e}", p.display()));
}

/// A repository `nobody` can write to: its directories world-writable, its temp directory
/// world-searchable.
fn repo_for_nobody() -> Repo {
    let repo = Repo::with_init_args(&["--levels", "hourly=1000"]);
    chmod(repo.dir(), 0o755);
    walk(&repo.path.clone(), &mut |_, full, m| {
        chmod(full, if m.is_dir() { 0o777 } else { 0o666 });
    });
    repo
}

fn new_repo() -> Repo {
    Repo::with_init_args(&["--levels", "hourly=1000"])
}

/// Field 5 (size) of a `yester ls -l` line.
fn ls_size(line: &[u8]) -> u64 {
    let s = String::from_utf8_lossy(line);
    let f: Vec<&str> = s.split_whitespace().collect();
    f.get(4)
        .and_then(|x| x.parse().ok())
        .unwrap_or_else(|| panic!("no size in ls -l line {s:?}"))
}

// ---------------------------------------------------------------------------------------
// 1. Files and directories vanishing mid-walk
// ---------------------------------------------------------------------------------------

/// What one round of the vanishing test does.
#[derive(Clone, Copy, Debug, PartialEq)]
enum Vanish {
    /// Delete right away, racing the start of the backup.
    Immediately,
    /// Once yester reads files below src (so src is listed): delete from the end backwards.
    AfterListing,
    /// The same, slowly, interleaved with the walk.
    Paced,
    /// Once yester reads `z15/big`: remove directories z15..z29 (z15 while it is walked).
    WhileInsideDir,
}

const VANISH_FILES: usize = 3000;
const VANISH_DIRS: usize = 30;

/// Make the vanishing tree: f0000..f2999, directories z00..z29 of 20 files each, and a big
/// file z15/big; returns relative path -> content.
fn make_vanish_tree(src: &Path, round: u64) -> BTreeMap<PathBuf, Vec<u8>> {
    let mut files = BTreeMap::new();
    fs::create_dir(src).unwrap();
    for i in 0..VANISH_FILES {
        let rel = PathBuf::from(format!("f{i:04}"));
        let data = random_bytes(round * 1_000_000 + i as u64, 256 + (i * 37) % 4096);
        fs::write(src.join(&rel), &data).unwrap();
        files.insert(rel, data);
    }
    for d in 0..VANISH_DIRS {
        let dir = PathBuf::from(format!("z{d:02}"));
        fs::create_dir(src.join(&dir)).unwrap();
        for j in 0..20 {
            let rel = dir.join(format!("g{j:02}"));
            let data = random_bytes(round * 1_000_000 + 500_000 + (d * 100 + j) as u64, 2000);
            fs::write(src.join(&rel), &data).unwrap();
            files.insert(rel, data);
        }
        if d == 15 {
            // Big enough that yester is still reading it when the test removes z15.
            let rel = dir.join("big");
            let data = random_bytes(round * 1_000_000 + 900_000, 16 * MIB);
            fs::write(src.join(&rel), &data).unwrap();
            files.insert(rel, data);
        }
    }
    files
}

/// Delete entries of the vanishing tree behind a running backup; returns what was deleted.
fn vanish(src: &Path, pid: u32, mode: Vanish, stop: &AtomicBool) -> (bool, Vec<PathBuf>) {
    let mut order: Vec<PathBuf> = Vec::new();
    let synced = match mode {
        Vanish::Immediately => true,
        Vanish::AfterListing | Vanish::Paced => {
            let synced = wait_for_open(pid, stop, Duration::from_secs(60), |p| {
                p.starts_with(src) && p != src
            });
            for d in (0..VANISH_DIRS).rev() {
                order.push(PathBuf::from(format!("z{d:02}")));
            }
            for i in (0..VANISH_FILES).rev().filter(|i| !i.is_multiple_of(3)) {
                order.push(PathBuf::from(format!("f{i:04}")));
            }
            synced
        }
        Vanish::WhileInsideDir => {
            let big = src.join("z15/big");
            let synced = wait_for_open(pid, stop, Duration::from_secs(60), |p| p == big);
            for d in 15..VANISH_DIRS {
                order.push(PathBuf::from(format!("z{d:02}")));
            }
            synced
        }
    };
    if mode == Vanish::Immediately {
        for i in (0..VANISH_FILES).filter(|i| i.is_multiple_of(2)) {
            order.push(PathBuf::from(format!("f{i:04}")));
        }
        order.push(PathBuf::from("z03"));
    }
    // Frozen while z15 goes, yester cannot finish reading z15/big (or the rest of the walk)
    // before it is gone, however the threads are scheduled.
    let _paused = (mode == Vanish::WhileInsideDir && synced).then(|| Paused::new(pid));
    let mut deleted = Vec::new();
    for (n, rel) in order.into_iter().enumerate() {
        let p = src.join(&rel);
        if p.is_dir() {
            fs::remove_dir_all(&p).unwrap();
        } else {
            fs::remove_file(&p).unwrap();
        }
        deleted.push(rel);
        if mode == Vanish::Paced && n.is_multiple_of(10) {
            std::thread::sleep(Duration::from_micros(300));
        }
    }
    (synced, deleted)
}

/// A process stopped (SIGSTOP) until this is dropped (SIGCONT), also when the test fails.
struct Paused(nix::unistd::Pid);

impl Paused {
    fn new(pid: u32) -> Paused {
        let pid = nix::unistd::Pid::from_raw(pid as i32);
        // The backup may have exited already: then there is nothing to pause.
        let _ = nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGSTOP);
        Paused(pid)
    }
}

impl Drop for Paused {
    fn drop(&mut self) {
        let _ = nix::sys::signal::kill(self.0, nix::sys::signal::Signal::SIGCONT);
    }
}

#[test]
fn files_and_directories_vanishing_mid_walk() {
    let repo = new_repo();
    let (_t, root) = temp_dir("yester-vanish");
    let mut vanished_warnings = 0;
    let mut other_warnings: Vec<String> = Vec::new();
    let modes = [
        Vanish::Immediately,
        Vanish::AfterListing,
        Vanish::Paced,
        Vanish::WhileInsideDir,
    ];
    for (round, mode) in modes.into_iter().enumerate() {
        let src = root.join(format!("src{round}"));
        let expected = make_vanish_tree(&src, round as u64);
        let stop = AtomicBool::new(false);
        let (b, synced, deleted) = std::thread::scope(|s| {
            let _guard = StopOnDrop(&stop);
            let running = start_backup(&repo, false, "vanish", &[&src], &[]);
            let pid = running.pid();
            let (src, stop) = (&src, &stop);
            let deleter = s.spawn(move || vanish(src, pid, mode, stop));
            let b = finish_backup(&repo, running);
            stop.store(true, Ordering::SeqCst);
            let (synced, deleted) = deleter.join().unwrap();
            (b, synced, deleted)
        });
        let deleted: BTreeSet<PathBuf> = deleted.into_iter().collect();
        let gone = |rel: &Path| rel.ancestors().any(|a| deleted.contains(a));
        // Every warning is about something that was deleted, and says it vanished (or, for
        // a directory deleted while walked, that it is no longer there).
        for w in &b.warnings {
            let p = Path::new(warning_path(w));
            let rel = p
                .strip_prefix(&src)
                .unwrap_or_else(|_| panic!("warning about a path outside the tree: {w}"));
            assert!(
                gone(rel),
                "warning about a file that was never deleted: {w}"
            );
            if w.contains("vanished") {
                vanished_warnings += 1;
            } else if w.contains("No such file or directory")
                || w.contains("changed while being read")
            {
                // Deleted while being read: its content was read in full, but unlinking
                // changes the ctime yester compares, and a directory deleted while walked
                // has no extended attributes to read any more.
                other_warnings.push(w.clone());
            } else {
                panic!("unexpected warning for a vanished entry: {w}");
            }
        }
        // The snapshot holds only files that existed, each with the content written, and
        // every file that was never deleted.
        let (_r, rdir) = temp_dir("yester-vanish-restore");
        let restored = restore(&repo, &b.id, &src, &rdir);
        let (files, dirs) = read_tree(&restored, false);
        for (rel, data) in &files {
            let want = expected
                .get(rel)
                .unwrap_or_else(|| panic!("restored {} which never existed", rel.display()));
            assert!(data == want, "restored {} has other content", rel.display());
        }
        for dir in &dirs {
            let s = dir.to_string_lossy();
            assert!(
                s.is_empty() || s.starts_with('z'),
                "restored unknown dir {s}"
            );
        }
        let mut survivors = 0;
        for rel in expected.keys().filter(|r| !gone(r)) {
            survivors += 1;
            assert!(
                files.contains_key(rel),
                "{} was never deleted but is missing from the snapshot",
                rel.display()
            );
        }
        eprintln!(
            "vanish round {round} ({mode:?}, synced: {synced}): exit {:?}, {} deleted, {} warnings, {} files restored, {} survivors, {:.2}s",
            b.out.code(),
            deleted.len(),
            b.warnings.len(),
            files.len(),
            survivors,
            b.out.elapsed.as_secs_f64()
        );
    }
    if !other_warnings.is_empty() {
        eprintln!(
            "NOTE: {} warnings about deleted entries do not say \"vanished\", e.g. {:#?}",
            other_warnings.len(),
            &other_warnings[..other_warnings.len().min(4)]
        );
    }
    assert!(
        vanished_warnings > 0,
        "files deleted after the listing never produced a \"vanished\" warning"
    );
    check_clean(&repo);
}

/// A directory removed while yester walks it (and the big file yester is reading in it):
/// what was read is saved, and everything that disappeared is reported as vanished, not as
/// an extended-attribute error or as content that "changed while being read" (unlinking a
/// file changes its ctime, not its content).
///
/// The walk is parallel: while one thread reads z15/big, others may already have walked
/// everything after it, and then nothing is left to vanish (the backup exits 0 with a whole
/// snapshot, which is right, but tests nothing). Such a round is checked too and the test
/// tries again with a new tree; it fails unless some round hit the scenario.
#[test]
fn directory_removed_while_walked_is_reported_as_vanished() {
    let repo = new_repo();
    let (_t, root) = temp_dir("yester-vanish-dir");
    const ROUNDS: u64 = 4;
    for round in 0..ROUNDS {
        let src = root.join(format!("src{round}"));
        if vanish_dir_round(&repo, &src, 7 + round) {
            check_clean(&repo);
            return;
        }
        eprintln!("vanish-dir round {round}: the walk finished before z15 went; again");
    }
    panic!("in {ROUNDS} rounds the backup never saw a directory vanish");
}

/// One round of [`directory_removed_while_walked_is_reported_as_vanished`]; returns whether
/// something vanished under the backup (exit 3), after checking the round either way.
fn vanish_dir_round(repo: &Repo, src: &Path, seed: u64) -> bool {
    let expected = make_vanish_tree(src, seed);
    let stop = AtomicBool::new(false);
    let (b, synced) = std::thread::scope(|s| {
        let _guard = StopOnDrop(&stop);
        let running = start_backup(repo, false, "vanish-dir", &[src], &[]);
        let pid = running.pid();
        let stop = &stop;
        let deleter = s.spawn(move || vanish(src, pid, Vanish::WhileInsideDir, stop));
        let b = finish_backup(repo, running);
        stop.store(true, Ordering::SeqCst);
        (b, deleter.join().unwrap().0)
    });
    assert!(synced, "the backup was never seen reading z15/big");
    let vanished = match b.out.code() {
        Some(3) => true,
        Some(0) => false,
        _ => panic!(
            "exit {:?}: {}\n{}",
            b.out.code(),
            b.out.stdout,
            b.out.stderr
        ),
    };
    for w in &b.warnings {
        assert!(
            w.contains("vanished"),
            "a warning about a vanished entry does not say so: {w}\nall warnings: {:#?}",
            b.warnings
        );
    }
    // What was saved is what was written.
    let (_r, rdir) = temp_dir("yester-vanish-dir-restore");
    let restored = restore(repo, &b.id, src, &rdir);
    let (files, _) = read_tree(&restored, false);
    for (rel, data) in &files {
        assert!(expected.get(rel) == Some(data), "{}", rel.display());
    }
    // z15/big was open when z15 went: it is saved whole.
    assert!(files.contains_key(Path::new("z15/big")));
    // Whatever is missing was reported: a warning names it or a directory above it.
    for rel in expected.keys().filter(|r| !files.contains_key(*r)) {
        let covered = rel
            .ancestors()
            .filter(|a| !a.as_os_str().is_empty())
            .any(|a| {
                let named = format!("{}: ", src.join(a).display());
                b.warnings.iter().any(|w| w.starts_with(&named))
            });
        assert!(
            covered,
            "{} is missing with no warning: {:?}",
            rel.display(),
            b.warnings
        );
    }
    vanished
}

// ---------------------------------------------------------------------------------------
// 2. Files growing, shrinking and rewritten while read
// ---------------------------------------------------------------------------------------

const BIG: usize = 20 * MIB;
const STEP: usize = 16 * KIB;

#[test]
fn files_growing_shrinking_and_rewritten_while_read() {
    let repo = new_repo();
    let (_t, root) = temp_dir("yester-change");
    // grow: appended to (its bytes never change, so a saved copy is a prefix of grow_data);
    // shrink: truncated step by step (a saved copy is a prefix of the original, except that
    //         a read racing a truncate may see zeros, which must come with a warning);
    // rewrite: truncated and rewritten with other content and sizes;
    // inplace: overwritten in place at random offsets (size stays BIG);
    // stable: never touched (exact copy, no warning).
    let grow_data = random_bytes(1, 2 * BIG);
    let shrink_data = random_bytes(2, BIG);
    let rewrite_a = random_bytes(3, BIG);
    let rewrite_b = random_bytes(4, BIG);
    let inplace_data = random_bytes(5, BIG);
    let stable_data = random_bytes(6, 4 * MIB);
    let mut grow_changed = 0;
    let mut all_changed = 0;
    for round in 0..2 {
        let src = root.join(format!("src{round}"));
        fs::create_dir(&src).unwrap();
        let p = |n: &str| src.join(n);
        fs::write(p("grow"), &grow_data[..BIG]).unwrap();
        fs::write(p("shrink"), &shrink_data).unwrap();
        fs::write(p("rewrite"), &rewrite_a).unwrap();
        fs::write(p("inplace"), &inplace_data).unwrap();
        fs::write(p("stable"), &stable_data).unwrap();
        let stop = AtomicBool::new(false);
        let ops = AtomicUsize::new(0);
        let b = std::thread::scope(|s| {
            let _guard = StopOnDrop(&stop);
            s.spawn(|| {
                let mut f = fs::OpenOptions::new().append(true).open(p("grow")).unwrap();
                let mut pos = BIG;
                while !stop.load(Ordering::SeqCst) && pos + STEP <= grow_data.len() {
                    f.write_all(&grow_data[pos..pos + STEP]).unwrap();
                    pos += STEP;
                    ops.fetch_add(1, Ordering::Relaxed);
                    std::thread::sleep(Duration::from_millis(1));
                }
            });
            s.spawn(|| {
                let f = fs::OpenOptions::new()
                    .write(true)
                    .open(p("shrink"))
                    .unwrap();
                let mut len = BIG;
                while !stop.load(Ordering::SeqCst) && len > MIB {
                    len -= STEP;
                    f.set_len(len as u64).unwrap();
                    ops.fetch_add(1, Ordering::Relaxed);
                    std::thread::sleep(Duration::from_millis(1));
                }
            });
            s.spawn(|| {
                let mut g = 0usize;
                while !stop.load(Ordering::SeqCst) {
                    g += 1;
                    let buf = if g.is_multiple_of(2) {
                        &rewrite_a
                    } else {
                        &rewrite_b
                    };
                    let len = BIG / 2 + (g * 3 * MIB + 12345) % (BIG / 2);
                    fs::write(p("rewrite"), &buf[..len]).unwrap();
                    ops.fetch_add(1, Ordering::Relaxed);
                    std::thread::sleep(Duration::from_millis(5));
                }
            });
            s.spawn(|| {
                let f = fs::OpenOptions::new()
                    .write(true)
                    .open(p("inplace"))
                    .unwrap();
                let junk = random_bytes(99, 4 * KIB);
                let mut x: u64 = 12345;
                while !stop.load(Ordering::SeqCst) {
                    x = x
                        .wrapping_mul(6364136223846793005)
                        .wrapping_add(1442695040888963407);
                    let off = (x >> 20) % (BIG as u64 / 4096) * 4096;
                    f.write_all_at(&junk, off).unwrap();
                    ops.fetch_add(1, Ordering::Relaxed);
                    std::thread::sleep(Duration::from_millis(1));
                }
            });
            // Let the writers get going, then back up while they run.
            std::thread::sleep(Duration::from_millis(20));
            let extra: &[&str] = if round == 1 { &["--force"] } else { &[] };
            let b = backup(&repo, "change", &[&src], extra);
            stop.store(true, Ordering::SeqCst);
            b
        });
        for w in &b.warnings {
            let name = Path::new(warning_path(w))
                .strip_prefix(&src)
                .unwrap_or_else(|_| panic!("warning about a path outside the tree: {w}"));
            assert!(
                ["grow", "shrink", "rewrite", "inplace"].contains(&name.to_str().unwrap()),
                "warning about a file nobody changed: {w}"
            );
            assert!(
                w.contains("changed while being read"),
                "unexpected warning: {w}"
            );
            all_changed += 1;
            if name == Path::new("grow") {
                grow_changed += 1;
            }
        }
        // Every file: the size in `ls -l`, `cat` and the restored file agree.
        let (_r, rdir) = temp_dir("yester-change-restore");
        let restored = restore(&repo, &b.id, &src, &rdir);
        let mut sizes = Vec::new();
        for name in ["grow", "shrink", "rewrite", "inplace", "stable"] {
            let sp = spec(&b.id, &p(name));
            let line = ls(&repo, &sp, true, false);
            let size = ls_size(&line);
            let content = cat(&repo, &sp);
            let file = fs::read(restored.join(name)).unwrap();
            assert_eq!(
                content.len() as u64,
                size,
                "{name}: cat length != ls -l size"
            );
            assert_eq!(
                file.len() as u64,
                size,
                "{name}: restored length != ls -l size"
            );
            assert!(content == file, "{name}: cat and restore differ");
            match name {
                "grow" => {
                    assert!(size as usize >= BIG, "grow saved shorter than it ever was");
                    if !(size as usize - BIG).is_multiple_of(STEP) {
                        assert!(
                            !b.warnings_about(&p("grow")).is_empty(),
                            "grow: saved at a size it never had ({size}) without a warning"
                        );
                    }
                    assert!(
                        content[..] == grow_data[..content.len()],
                        "grow: saved bytes are not what was written"
                    );
                }
                "shrink" => {
                    // Linux lets a read that races a truncate return zeros for the part being
                    // cut off (seen with a plain C reader, too); such a copy must be flagged.
                    assert!(size as usize <= BIG);
                    if !(BIG - size as usize).is_multiple_of(STEP) {
                        assert!(
                            !b.warnings_about(&p("shrink")).is_empty(),
                            "shrink: saved at a size it never had ({size}) without a warning"
                        );
                    }
                    let prefix = &shrink_data[..content.len()];
                    if content[..] != prefix[..] {
                        assert!(
                            content.iter().zip(prefix).all(|(c, o)| c == o || *c == 0),
                            "shrink: saved bytes are neither the file's nor zeros"
                        );
                        assert!(
                            !b.warnings_about(&p("shrink")).is_empty(),
                            "shrink: a copy that is not a prefix of the file has no warning"
                        );
                        eprintln!("NOTE: shrink was read with zeros where it was being truncated (flagged)");
                    }
                }
                "rewrite" => assert!(size as usize <= BIG),
                "inplace" => assert_eq!(size as usize, BIG, "inplace: size never changed"),
                _ => assert!(content == stable_data, "stable file saved wrongly"),
            }
            sizes.push(format!("{name}={size}"));
        }
        eprintln!(
            "change round {round}: exit {:?}, {} warnings, {} writes during the round, sizes {}, {:.2}s",
            b.out.code(),
            b.warnings.len(),
            ops.load(Ordering::Relaxed),
            sizes.join(" "),
            b.out.elapsed.as_secs_f64()
        );
    }
    assert!(
        grow_changed > 0,
        "a file appended to every millisecond while read never got a \"changed while being read\" warning ({all_changed} such warnings in all)"
    );
    check_clean(&repo);
}

// ---------------------------------------------------------------------------------------
// 3. Entries changing type mid-walk
// ---------------------------------------------------------------------------------------

/// The states a victim entry cycles through.
const STATES: [&str; 6] = ["file", "dir", "fifo", "symlink", "socket", "dev"];

fn victim_content(v: usize) -> Vec<u8> {
    random_bytes(10_000 + v as u64, 8192 + v * 13)
}

fn inner_content(v: usize) -> Vec<u8> {
    random_bytes(20_000 + v as u64, 100 + v)
}

/// Build state `state` of victim `v` at `at` (which does not exist).
fn make_state(at: &Path, v: usize, state: &str) {
    match state {
        "file" => fs::write(at, victim_content(v)).unwrap(),
        "dir" => {
            fs::create_dir(at).unwrap();
            fs::write(at.join("inner"), inner_content(v)).unwrap();
        }
        "fifo" => nix::unistd::mkfifo(at, Mode::from_bits_truncate(0o644)).unwrap(),
        "symlink" => std::os::unix::fs::symlink("/dev/zero", at).unwrap(),
        "socket" => drop(std::os::unix::net::UnixListener::bind(at).unwrap()),
        "dev" => nix::sys::stat::mknod(
            at,
            nix::sys::stat::SFlag::S_IFCHR,
            Mode::from_bits_truncate(0o644),
            nix::libc::makedev(1, 5),
        )
        .unwrap(),
        _ => unreachable!(),
    }
}

fn remove_any(p: &Path) {
    match fs::symlink_metadata(p) {
        Ok(m) if m.is_dir() => fs::remove_dir_all(p).unwrap(),
        Ok(_) => fs::remove_file(p).unwrap(),
        Err(_) => {}
    }
}

#[test]
fn entries_changing_type_mid_walk() {
    let repo = new_repo();
    let (_t, root) = temp_dir("yester-types");
    let devices = match mknod_supported(&root) {
        Ok(()) => true,
        Err(e) => {
            eprintln!("SKIPPING device nodes among the changing types: {e}");
            false
        }
    };
    let states: Vec<&str> = STATES
        .iter()
        .copied()
        .filter(|s| devices || *s != "dev")
        .collect();
    const STABLE: usize = 200;
    const VICTIMS: usize = 100;
    let stage = root.join("stage");
    fs::create_dir(&stage).unwrap();
    let mut replaced = 0;
    let mut warnings = 0;
    for round in 0..5 {
        let src = root.join(format!("src{round}"));
        fs::create_dir(&src).unwrap();
        let stable: Vec<Vec<u8>> = (0..STABLE)
            .map(|i| random_bytes(round * 1000 + i as u64, 4096 + i))
            .collect();
        for (i, d) in stable.iter().enumerate() {
            fs::write(src.join(format!("s{i:03}")), d).unwrap();
        }
        for v in 0..VICTIMS {
            make_state(&src.join(format!("v{v:03}")), v, states[v % states.len()]);
        }
        let stop = AtomicBool::new(false);
        let flips = AtomicUsize::new(0);
        let b = std::thread::scope(|s| {
            let _guard = StopOnDrop(&stop);
            s.spawn(|| {
                // Replace victims one after another with the next type, as fast as possible:
                // build the new entry aside, remove the old one, rename the new one in.
                let mut state = vec![0usize; VICTIMS];
                for (v, st) in state.iter_mut().enumerate() {
                    *st = v % states.len();
                }
                let mut v = 0;
                while !stop.load(Ordering::SeqCst) {
                    state[v] = (state[v] + 1) % states.len();
                    let tmp = stage.join(format!("r{round}-v{v:03}"));
                    make_state(&tmp, v, states[state[v]]);
                    let at = src.join(format!("v{v:03}"));
                    remove_any(&at);
                    fs::rename(&tmp, &at).unwrap();
                    flips.fetch_add(1, Ordering::Relaxed);
                    v = (v + 1) % VICTIMS;
                }
            });
            let b = backup(&repo, "types", &[&src], &[]);
            stop.store(true, Ordering::SeqCst);
            b
        });
        // Warnings only ever name victims.
        for w in &b.warnings {
            let rel = Path::new(warning_path(w))
                .strip_prefix(&src)
                .unwrap_or_else(|_| panic!("warning about a path outside the tree: {w}"))
                .to_string_lossy()
                .into_owned();
            assert!(rel.starts_with('v'), "warning about a stable entry: {w}");
            if w.contains("replaced") {
                replaced += 1;
            }
        }
        warnings += b.warnings.len();
        // Restore: stable files exact; each victim absent or in one of its states, intact.
        let (_r, rdir) = temp_dir("yester-types-restore");
        let restored = restore(&repo, &b.id, &src, &rdir);
        for (i, d) in stable.iter().enumerate() {
            let got = fs::read(restored.join(format!("s{i:03}"))).unwrap();
            assert!(&got == d, "stable file s{i:03} restored wrongly");
        }
        let mut kinds: BTreeMap<char, usize> = BTreeMap::new();
        for v in 0..VICTIMS {
            let at = restored.join(format!("v{v:03}"));
            let Ok(m) = fs::symlink_metadata(&at) else {
                *kinds.entry('x').or_default() += 1;
                continue;
            };
            let ft = m.file_type();
            let k = if ft.is_file() {
                assert!(
                    fs::read(&at).unwrap() == victim_content(v),
                    "v{v:03}: file content"
                );
                'f'
            } else if ft.is_dir() {
                let names: Vec<OsString> = fs::read_dir(&at)
                    .unwrap()
                    .map(|e| e.unwrap().file_name())
                    .collect();
                assert!(names.len() <= 1, "v{v:03}: dir holds {names:?}");
                if !names.is_empty() {
                    assert_eq!(names[0], "inner");
                    assert!(fs::read(at.join("inner")).unwrap() == inner_content(v));
                }
                'd'
            } else if ft.is_symlink() {
                assert_eq!(fs::read_link(&at).unwrap(), Path::new("/dev/zero"));
                'l'
            } else if ft.is_fifo() {
                'p'
            } else if ft.is_socket() {
                's'
            } else if ft.is_char_device() {
                assert_eq!(
                    (nix::libc::major(m.rdev()), nix::libc::minor(m.rdev())),
                    (1, 5)
                );
                'c'
            } else {
                panic!("v{v:03}: restored as {ft:?}");
            };
            *kinds.entry(k).or_default() += 1;
        }
        eprintln!(
            "types round {round}: exit {:?}, {} flips, {} warnings, restored kinds {kinds:?} (x = absent), {:.2}s",
            b.out.code(),
            flips.load(Ordering::Relaxed),
            b.warnings.len(),
            b.out.elapsed.as_secs_f64()
        );
    }
    eprintln!("types: {warnings} warnings in all, {replaced} \"was replaced\" (caught between lstat and open)");
    check_clean(&repo);
}

/// A directory swapped for a symlink to a directory outside the backed-up tree while yester
/// walks it: the remaining names of the directory must not be looked up through the
/// symlink, so nothing from outside the tree may appear in the snapshot.
#[test]
fn directory_swapped_for_symlink_mid_walk_is_not_followed() {
    let repo = new_repo();
    let (_t, root) = temp_dir("yester-swap");
    let src = root.join("src");
    let victim = src.join("victim");
    let outside = root.join("outside");
    fs::create_dir_all(&victim).unwrap();
    fs::create_dir(&outside).unwrap();
    // victim/a-big keeps yester busy; the other names exist both in victim and outside.
    let big = random_bytes(1, 24 * MIB);
    fs::write(victim.join("a-big"), &big).unwrap();
    let mine = b"inside the backed-up tree".to_vec();
    for n in ["b-file", "c-dir", "d-fifo"] {
        fs::write(victim.join(n), &mine).unwrap();
    }
    fs::write(outside.join("b-file"), b"OUTSIDE: must never be saved").unwrap();
    fs::create_dir(outside.join("c-dir")).unwrap();
    fs::write(outside.join("c-dir/secret"), b"OUTSIDE: secret").unwrap();
    nix::unistd::mkfifo(&outside.join("d-fifo"), Mode::from_bits_truncate(0o644)).unwrap();
    let stop = AtomicBool::new(false);
    let (b, swapped) = std::thread::scope(|s| {
        let _guard = StopOnDrop(&stop);
        let running = start_backup(&repo, false, "swap", &[&src], &[]);
        let pid = running.pid();
        let (src, stop, victim, outside) = (&src, &stop, &victim, &outside);
        let swapper = s.spawn(move || {
            let big_path = victim.join("a-big");
            if !wait_for_open(pid, stop, Duration::from_secs(60), |p| p == big_path) {
                return false;
            }
            fs::rename(victim, src.join("moved-away")).unwrap();
            std::os::unix::fs::symlink(outside, victim).unwrap();
            true
        });
        let b = finish_backup(&repo, running);
        stop.store(true, Ordering::SeqCst);
        (b, swapper.join().unwrap())
    });
    assert!(swapped, "the backup was never seen reading victim/a-big");
    let listing = ls(&repo, &spec(&b.id, &victim), true, true);
    let text = String::from_utf8_lossy(&listing);
    assert!(
        !text.contains("secret"),
        "the snapshot holds a file from outside the backed-up tree:\n{text}"
    );
    let (_r, rdir) = temp_dir("yester-swap-restore");
    let restored = restore(&repo, &b.id, &victim, &rdir);
    assert!(
        restored.is_dir(),
        "victim was a directory when it was listed"
    );
    let (files, _) = read_tree(&restored, false);
    for (rel, data) in &files {
        assert!(
            !data.starts_with(b"OUTSIDE"),
            "{} was saved from outside the backed-up tree",
            rel.display()
        );
        let want = if rel == Path::new("a-big") {
            &big
        } else {
            &mine
        };
        assert!(data == want, "{}: wrong content", rel.display());
    }
    check_clean(&repo);
}

// ---------------------------------------------------------------------------------------
// 4. Permission denied (as nobody)
// ---------------------------------------------------------------------------------------

#[test]
fn permission_denied_as_nobody() {
    if !is_root() {
        eprintln!("SKIPPING permission_denied_as_nobody: needs root to switch to nobody");
        return;
    }
    let repo = repo_for_nobody();
    let (_t, root) = temp_dir("yester-perm");
    chmod(&root, 0o755);
    let src = root.join("src");
    fs::create_dir(&src).unwrap();
    let ok = random_bytes(1, 300 * KIB);
    let ok2 = random_bytes(2, 5000);
    fs::write(src.join("ok.txt"), &ok).unwrap();
    fs::write(src.join("secret.txt"), b"secret").unwrap();
    chmod(&src.join("secret.txt"), 0o000);
    fs::create_dir(src.join("locked")).unwrap();
    fs::write(src.join("locked/inner.txt"), b"inner").unwrap();
    chmod(&src.join("locked"), 0o000);
    // Searchable but not listable, and listable but not searchable.
    fs::create_dir(src.join("nolist")).unwrap();
    fs::write(src.join("nolist/f"), b"f").unwrap();
    chmod(&src.join("nolist"), 0o311);
    fs::create_dir(src.join("nosearch")).unwrap();
    fs::write(src.join("nosearch/f"), b"f").unwrap();
    chmod(&src.join("nosearch"), 0o644);
    fs::create_dir_all(src.join("sub/deep")).unwrap();
    fs::write(src.join("sub/deep/ok2.txt"), &ok2).unwrap();
    fs::write(src.join("sub/secret2"), b"root only").unwrap();
    chmod(&src.join("sub/secret2"), 0o600);
    std::os::unix::fs::symlink("secret.txt", src.join("link")).unwrap();

    let b = finish_backup(&repo, start_backup(&repo, true, "perm", &[&src], &[]));
    assert_eq!(b.out.code(), Some(3), "{}\n{}", b.out.stdout, b.out.stderr);
    let denied = [
        src.join("secret.txt"),
        src.join("locked"),
        src.join("nolist"),
        src.join("nosearch/f"),
        src.join("sub/secret2"),
    ];
    for p in &denied {
        assert_eq!(
            b.warnings_about(p).len(),
            1,
            "expected one warning naming {}: {:#?}",
            p.display(),
            b.warnings
        );
    }
    for w in &b.warnings {
        assert!(
            denied.iter().any(|p| Path::new(warning_path(w)) == p),
            "unexpected warning: {w}"
        );
        assert!(w.contains("Permission denied"), "{w}");
    }
    let (_r, rdir) = temp_dir("yester-perm-restore");
    let restored = restore(&repo, &b.id, &src, &rdir);
    let (files, dirs) = read_tree(&restored, true);
    let want_files: BTreeSet<&str> = ["ok.txt", "sub/deep/ok2.txt"].into();
    assert_eq!(
        files
            .keys()
            .map(|p| p.to_str().unwrap())
            .collect::<BTreeSet<_>>(),
        want_files
    );
    assert!(files[Path::new("ok.txt")] == ok);
    assert!(files[Path::new("sub/deep/ok2.txt")] == ok2);
    let want_dirs: BTreeSet<&str> = ["", "nosearch", "sub", "sub/deep"].into();
    assert_eq!(
        dirs.iter()
            .map(|p| p.to_str().unwrap())
            .collect::<BTreeSet<_>>(),
        want_dirs
    );
    assert_eq!(
        fs::read_link(restored.join("link")).unwrap(),
        Path::new("secret.txt")
    );
    check_clean(&repo);
}

// ---------------------------------------------------------------------------------------
// 5. FIFOs, sockets, device nodes
// ---------------------------------------------------------------------------------------

#[test]
fn fifos_sockets_and_device_nodes_are_never_opened() {
    let repo = new_repo();
    let (_t, root) = temp_dir("yester-special");
    let src = root.join("src");
    fs::create_dir(&src).unwrap();
    fs::write(src.join("plain"), b"plain file").unwrap();
    // A FIFO without a writer: a blocking open for reading would never return.
    nix::unistd::mkfifo(&src.join("p~fifo"), Mode::from_bits_truncate(0o644)).unwrap();
    nix::unistd::mkfifo(&src.join("locked~fifo"), Mode::from_bits_truncate(0o000)).unwrap();
    // A socket with a live listener and one left behind.
    let _live = std::os::unix::net::UnixListener::bind(src.join("live~sock")).unwrap();
    drop(std::os::unix::net::UnixListener::bind(src.join("dead~sock")).unwrap());
    let devices = match mknod_supported(&root) {
        Ok(()) => {
            use nix::sys::stat::SFlag;
            // /dev/zero and /dev/urandom never end, /dev/tty may block, loop0 may not exist.
            for (name, kind, maj, min) in [
                ("zero~dev", SFlag::S_IFCHR, 1, 5),
                ("urandom~dev", SFlag::S_IFCHR, 1, 9),
                ("tty~dev", SFlag::S_IFCHR, 5, 0),
                ("loop~dev", SFlag::S_IFBLK, 7, 0),
                ("nowhere~dev", SFlag::S_IFBLK, 250, 250),
            ] {
                nix::sys::stat::mknod(
                    &src.join(name),
                    kind,
                    Mode::from_bits_truncate(0o600),
                    nix::libc::makedev(maj, min),
                )
                .unwrap();
            }
            true
        }
        Err(e) => {
            eprintln!("SKIPPING device nodes: {e}");
            false
        }
    };
    let b = backup(&repo, "special", &[&src], &[]);
    assert_eq!(b.out.code(), Some(0), "{:?}", b.warnings);
    // Special files given as top-level paths, too.
    let mut tops = vec![src.join("p~fifo"), src.join("live~sock")];
    if devices {
        tops.push(src.join("zero~dev"));
    }
    let top_refs: Vec<&Path> = tops.iter().map(|p| p.as_path()).collect();
    let b2 = backup(&repo, "special-top", &top_refs, &[]);
    assert_eq!(b2.out.code(), Some(0), "{:?}", b2.warnings);

    let listing_out = ls(&repo, &spec(&b.id, &src), true, false);
    let text = String::from_utf8_lossy(&listing_out);
    let line = |name: &str| {
        text.lines()
            .find(|l| l.ends_with(&format!("/{name}")))
            .unwrap_or_else(|| panic!("{name} missing from ls -l:\n{text}"))
            .to_string()
    };
    assert!(line("p~fifo").starts_with('p'), "{text}");
    assert!(line("live~sock").starts_with('s'), "{text}");
    if devices {
        assert!(
            line("zero~dev").starts_with('c') && line("zero~dev").contains(" 1,5 "),
            "{text}"
        );
        assert!(
            line("loop~dev").starts_with('b') && line("loop~dev").contains(" 7,0 "),
            "{text}"
        );
    }
    let (_r, rdir) = temp_dir("yester-special-restore");
    let restored = restore(&repo, &b.id, &src, &rdir);
    assert_trees_equal(&src, &restored);
    for top in &tops {
        let (_r2, rdir2) = temp_dir("yester-special-top");
        let got = restore(&repo, &b2.id, top, &rdir2);
        let a = fs::symlink_metadata(top).unwrap();
        let g = fs::symlink_metadata(&got).unwrap();
        assert_eq!(a.mode(), g.mode(), "{}", top.display());
        assert_eq!(a.rdev(), g.rdev(), "{}", top.display());
    }
    check_clean(&repo);
}

// ---------------------------------------------------------------------------------------
// 6. Hostile names
// ---------------------------------------------------------------------------------------

fn hostile_names() -> Vec<Vec<u8>> {
    let mut utf8_255 = "é".repeat(127).into_bytes();
    utf8_255.push(b'x');
    vec![
        vec![b'a'; 255],
        utf8_255,
        b"\xff".to_vec(),
        b"caf\xe9".to_vec(),
        b"\xff\xfe mixed \xe9\xc3".to_vec(),
        b"line1\nline2".to_vec(),
        b"\n".to_vec(),
        b"ends with newline\n".to_vec(),
        b"tab\there".to_vec(),
        b"\t".to_vec(),
        b"back\\slash".to_vec(),
        b"\\".to_vec(),
        b"\\n".to_vec(),
        b"-leading-dash".to_vec(),
        b"--help".to_vec(),
        b"-r".to_vec(),
        b" leading space".to_vec(),
        b"trailing space ".to_vec(),
        b" ".to_vec(),
        b"a:b".to_vec(),
        b":".to_vec(),
        b"*?[glob]{a,b}".to_vec(),
        b"quote'\"`$HOME".to_vec(),
        b"\x01\x1b[31mred\x7f".to_vec(),
        b"...".to_vec(),
        b".hidden".to_vec(),
        b"..x".to_vec(),
        b"%s%n".to_vec(),
    ]
}

#[test]
fn hostile_names_round_trip() {
    let repo = new_repo();
    let (_t, root) = temp_dir("yester-names");
    let src = root.join("src");
    fs::create_dir(&src).unwrap();
    let names = hostile_names();
    let dir_name: &[u8] = b"dir\n\xff -x \\ ";
    let dir = src.join(OsStr::from_bytes(dir_name));
    fs::create_dir(&dir).unwrap();
    let mut rels: Vec<Vec<u8>> = Vec::new();
    for (i, n) in names.iter().enumerate() {
        let name = OsStr::from_bytes(n);
        fs::write(src.join(name), random_bytes(i as u64, 100 + i * 500)).unwrap();
        fs::write(dir.join(name), random_bytes(1000 + i as u64, 10 + i)).unwrap();
        rels.push(n.clone());
        let mut r = dir_name.to_vec();
        r.push(b'/');
        r.extend_from_slice(n);
        rels.push(r);
    }
    rels.push(dir_name.to_vec());
    std::os::unix::fs::symlink(OsStr::from_bytes(b"\xff\n-> target \\"), src.join("link")).unwrap();
    rels.push(b"link".to_vec());

    let b = backup(&repo, "names", &[&src], &[]);
    assert_eq!(b.out.code(), Some(0), "{:?}", b.warnings);
    let (_r, rdir) = temp_dir("yester-names-restore");
    let restored = restore(&repo, &b.id, &src, &rdir);
    assert_trees_equal(&src, &restored);

    let out = ls(&repo, &spec(&b.id, &src), false, true);
    let prefix = src.as_os_str().as_bytes();
    for r in &rels {
        let mut want = prefix.to_vec();
        want.push(b'/');
        want.extend_from_slice(r);
        want.push(b'\n');
        assert!(
            out.windows(want.len()).any(|w| w == want),
            "ls --recursive does not show {}:\n{}",
            esc(r),
            esc(&out)
        );
    }
    // cat and restore of single entries by their raw names.
    for (i, n) in names.iter().enumerate() {
        let path = src.join(OsStr::from_bytes(n));
        assert!(
            cat(&repo, &spec(&b.id, &path)) == random_bytes(i as u64, 100 + i * 500),
            "cat {}",
            esc(n)
        );
    }
    for n in [&b"\xff"[..], b"line1\nline2", b"-r", b"a:b"] {
        let path = dir.join(OsStr::from_bytes(n));
        let (_r2, rdir2) = temp_dir("yester-names-one");
        let got = restore(&repo, &b.id, &path, &rdir2);
        assert_eq!(got.file_name().unwrap().as_bytes(), n);
        assert!(
            fs::read(&got).unwrap() == fs::read(&path).unwrap(),
            "{}",
            esc(n)
        );
    }
    check_clean(&repo);
}

// ---------------------------------------------------------------------------------------
// 7. Paths longer than PATH_MAX
// ---------------------------------------------------------------------------------------

const DEEP_LEVELS: usize = 26;
/// The level holding `mid`, the first whose path passes 4096 bytes.
const MID_LEVEL: usize = 20;

fn deep_component(level: usize) -> Vec<u8> {
    vec![b'a' + (level % 26) as u8; 200]
}

fn open_dir_at(dir: &OwnedFd, name: &[u8]) -> nix::Result<OwnedFd> {
    nix::fcntl::openat(
        dir,
        OsStr::from_bytes(name),
        OFlag::O_DIRECTORY | OFlag::O_RDONLY | OFlag::O_NOFOLLOW | OFlag::O_CLOEXEC,
        Mode::empty(),
    )
}

fn open_dir(p: &Path) -> OwnedFd {
    OwnedFd::from(fs::File::open(p).unwrap())
}

/// Make `base/<26 levels of 200 bytes>` with a file `leaf` at the bottom and `mid` at
/// [`MID_LEVEL`]; returns the absolute path of the leaf (longer
/// than PATH_MAX, usable only piecewise).
fn make_deep(base: &Path, leaf: &[u8], mid: &[u8]) -> PathBuf {
    let mut fd = open_dir(base);
    let mut path = base.to_path_buf();
    for level in 0..DEEP_LEVELS {
        let c = deep_component(level);
        nix::sys::stat::mkdirat(&fd, OsStr::from_bytes(&c), Mode::from_bits_truncate(0o755))
            .unwrap();
        fd = open_dir_at(&fd, &c).unwrap();
        path.push(OsStr::from_bytes(&c));
        if level == MID_LEVEL {
            write_at(&fd, "mid", mid);
        }
    }
    write_at(&fd, "leaf", leaf);
    path.join("leaf")
}

fn write_at(dir: &OwnedFd, name: &str, data: &[u8]) {
    let f = nix::fcntl::openat(
        dir,
        name,
        OFlag::O_CREAT | OFlag::O_EXCL | OFlag::O_WRONLY | OFlag::O_CLOEXEC,
        Mode::from_bits_truncate(0o644),
    )
    .unwrap();
    fs::File::from(f).write_all(data).unwrap();
}

/// Read `base/<levels>/name` piecewise; None if some level is missing.
fn read_deep(base: &Path, levels: usize, name: &str) -> Option<Vec<u8>> {
    let mut fd = open_dir(base);
    for level in 0..levels {
        fd = open_dir_at(&fd, &deep_component(level)).ok()?;
    }
    let f = nix::fcntl::openat(
        &fd,
        name,
        OFlag::O_RDONLY | OFlag::O_NOFOLLOW | OFlag::O_CLOEXEC,
        Mode::empty(),
    )
    .ok()?;
    let mut v = Vec::new();
    fs::File::from(f).read_to_end(&mut v).unwrap();
    Some(v)
}

/// Yester must at least survive a tree deeper than PATH_MAX: no panic, no hang, a snapshot
/// with everything up to the limit, a clean repository. (Saving it completely is
/// [`paths_longer_than_path_max_round_trip`].)
#[test]
fn paths_longer_than_path_max_do_not_crash() {
    let repo = new_repo();
    let (_t, root) = temp_dir("yester-deep");
    let src = root.join("src");
    fs::create_dir(&src).unwrap();
    let leaf_path = make_deep(&src, &random_bytes(1, 100 * KIB), b"mid");
    assert!(leaf_path.as_os_str().len() > 5000);
    fs::write(src.join("shallow"), b"shallow").unwrap();
    let b = backup(&repo, "deep", &[&src], &[]);
    eprintln!(
        "deep: leaf path {} bytes, exit {:?}, warnings {:?}",
        leaf_path.as_os_str().len(),
        b.out.code(),
        b.warnings
            .iter()
            .map(|w| format!("...{}", &w[w.len().saturating_sub(60)..]))
            .collect::<Vec<_>>()
    );
    for w in &b.warnings {
        assert!(w.contains("File name too long"), "unexpected warning: {w}");
    }
    // The shallow part is there either way.
    assert_eq!(cat(&repo, &spec(&b.id, &src.join("shallow"))), b"shallow");
    check_clean(&repo);
}

#[test]

fn paths_longer_than_path_max_round_trip() {
    let repo = new_repo();
    let (_t, root) = temp_dir("yester-deep-rt");
    let src = root.join("src");
    fs::create_dir(&src).unwrap();
    let leaf = random_bytes(2, 100 * KIB);
    let leaf_path = make_deep(&src, &leaf, b"mid");
    assert!(leaf_path.as_os_str().len() > 5000);
    let b = backup(&repo, "deep", &[&src], &[]);
    assert_eq!(b.out.code(), Some(0), "warnings: {:#?}", b.warnings);
    // The deepest file is in the snapshot ...
    assert!(
        cat(&repo, &spec(&b.id, &leaf_path)) == leaf,
        "cat of the deepest file"
    );
    let out = ls(&repo, &spec(&b.id, &src), false, true);
    assert!(
        out.windows(6).any(|w| w == b"/leaf\n"),
        "ls --recursive does not list the deepest file"
    );
    // ... and restores.
    let (_r, rdir) = temp_dir("yester-deep-restore");
    let restored = restore(&repo, &b.id, &src, &rdir);
    assert!(
        read_deep(&restored, DEEP_LEVELS, "leaf").as_deref() == Some(&leaf[..]),
        "the deepest file was not restored with its content"
    );
    assert_eq!(
        read_deep(&restored, MID_LEVEL + 1, "mid").as_deref(),
        Some(&b"mid"[..])
    );
    check_clean(&repo);
}

// ---------------------------------------------------------------------------------------
// 8. A huge directory
// ---------------------------------------------------------------------------------------

/// Peak RSS of a process in KiB: from `/usr/bin/time -f %M` when there is one.
fn time_bin() -> Option<&'static str> {
    Path::new("/usr/bin/time")
        .exists()
        .then_some("/usr/bin/time")
}

/// Run `yester -r REPO ARGS` and return (output, peak RSS in KiB if measured).
fn run_measured(repo: &Repo, args: &[&OsStr], rss_file: &Path) -> (Finished, Option<u64>) {
    let mut c = match time_bin() {
        Some(t) => Yester::via(
            t,
            [
                OsStr::new("-f"),
                OsStr::new("%M"),
                OsStr::new("-o"),
                rss_file.as_os_str(),
            ],
        ),
        None => Yester::new(),
    };
    c.args(repo_args(repo)).args(args);
    let f = spawn(c).finish(Duration::from_secs(600));
    let rss = time_bin().map(|_| {
        let s = fs::read_to_string(rss_file).unwrap();
        s.lines()
            .last()
            .and_then(|l| l.trim().parse().ok())
            .unwrap_or_else(|| panic!("no RSS in {s:?}"))
    });
    (f, rss)
}

#[test]
fn directory_with_huge_number_of_entries() {
    let full = std::env::var("YESTER_HOSTILE_FULL").is_ok_and(|v| v == "1");
    let n: usize = if full { 1_000_000 } else { 100_000 };
    let limit_mib: u64 = if full { 1024 } else { 300 };
    let repo = new_repo();
    let (_t, root) = temp_dir("yester-huge");
    let src = root.join("src");
    let big = src.join("big");
    fs::create_dir_all(&big).unwrap();
    let t0 = Instant::now();
    for i in 0..n {
        let p = big.join(format!("entry-{i:07}"));
        if i.is_multiple_of(10_000) {
            fs::write(p, random_bytes(i as u64, 1000)).unwrap();
        } else {
            fs::File::create(p).unwrap();
        }
    }
    let made = t0.elapsed();
    if time_bin().is_none() {
        eprintln!(
            "NOTE: /usr/bin/time is missing (apt-get install -y time): peak RSS not measured"
        );
    }
    let rss_file = root.join("rss");
    let (f, rss) = run_measured(
        &repo,
        &[
            OsStr::new("backup"),
            OsStr::new("--source"),
            OsStr::new("huge"),
            src.as_os_str(),
        ],
        &rss_file,
    );
    f.out.expect_success();
    let id = f
        .out
        .stdout
        .split_whitespace()
        .nth(1)
        .expect("snapshot id")
        .to_string();
    let (ls_f, ls_rss) = run_measured(
        &repo,
        &[OsStr::new("ls"), &spec(&id, &big)],
        &root.join("rss-ls"),
    );
    ls_f.out.expect_success();
    let count = ls_f
        .raw
        .split(|&b| b == b'\n')
        .filter(|l| !l.is_empty())
        .count();
    assert_eq!(
        count, n,
        "ls of the huge directory lists {count} entries, not {n}"
    );
    let mut prefix = big.as_os_str().as_bytes().to_vec();
    prefix.extend_from_slice(b"/entry-0000000\n");
    assert!(ls_f.raw.starts_with(&prefix));
    let last = format!("/entry-{:07}\n", n - 1);
    assert!(ls_f.raw.ends_with(last.as_bytes()));
    let t1 = Instant::now();
    check_clean(&repo);
    eprintln!(
        "huge directory: {n} entries made in {:.1}s; backup {:.1}s, peak RSS {}; ls {:.1}s, peak RSS {}; check --read-data {:.1}s",
        made.as_secs_f64(),
        f.out.elapsed.as_secs_f64(),
        rss.map_or("not measured".into(), |k| format!("{} MiB", k / 1024)),
        ls_f.out.elapsed.as_secs_f64(),
        ls_rss.map_or("not measured".into(), |k| format!("{} MiB", k / 1024)),
        t1.elapsed().as_secs_f64()
    );
    if let Some(k) = rss {
        assert!(
            k / 1024 < limit_mib,
            "backup of {n} entries peaked at {} MiB RSS (limit {limit_mib} MiB)",
            k / 1024
        );
    }
}

/// A deep tree of directories that each hold a subdirectory (listed first) and a dozen
/// files, backed up under a limit of 128 open descriptors: every level holds its directory
/// open, and the prefetch keeps files it opened for their savers, so this only works while
/// what the prefetch holds stays bounded whatever the depth. Every file is saved, with no
/// warnings.
#[test]
fn deep_tree_backs_up_under_a_low_descriptor_limit() {
    if Command::new("prlimit").arg("--version").output().is_err() {
        eprintln!(
            "SKIPPING deep_tree_backs_up_under_a_low_descriptor_limit: no prlimit (util-linux)"
        );
        return;
    }
    const DEPTH: usize = 50;
    let repo = new_repo();
    let (_t, root) = temp_dir("yester-deep");
    let src = root.join("src");
    let mut dir = src.clone();
    for d in 0..DEPTH {
        fs::create_dir_all(&dir).unwrap();
        for f in 0..12 {
            fs::write(
                dir.join(format!("f{f:02}")),
                random_bytes((d * 100 + f) as u64, 3000),
            )
            .unwrap();
        }
        dir = dir.join("a");
    }
    let mut c = Yester::via("prlimit", ["--nofile=128:128"]);
    c.args(repo_args(&repo))
        .args(["backup", "--source", "deep", "--json"])
        .arg(&src);
    let b = finish_backup(&repo, spawn(c));
    assert!(b.warnings.is_empty(), "warnings: {:?}", b.warnings);
    let target = root.join("restored");
    let restored = restore(&repo, &b.id, &src, &target);
    assert_eq!(read_tree(&restored, false), read_tree(&src, false));
}

// ---------------------------------------------------------------------------------------
// 9. Symlink loops
// ---------------------------------------------------------------------------------------

#[test]
fn symlink_loops_are_stored_not_followed() {
    let repo = new_repo();
    let (_t, root) = temp_dir("yester-loops");
    let src = root.join("src");
    fs::create_dir_all(src.join("dir")).unwrap();
    let links: [(&str, PathBuf); 9] = [
        ("a", "b".into()),
        ("b", "a".into()),
        ("self", ".".into()),
        ("up", "..".into()),
        ("loop", "loop".into()),
        ("abs-self", src.clone()),
        ("dir/back", "../dir".into()),
        ("chain1", "chain2".into()),
        ("chain2", "chain1/x/../..".into()),
    ];
    for (name, target) in &links {
        std::os::unix::fs::symlink(target, src.join(name)).unwrap();
    }
    fs::write(src.join("dir/file"), b"file").unwrap();
    let b = backup(&repo, "loops", &[&src], &[]);
    assert_eq!(b.out.code(), Some(0), "{:?}", b.warnings);
    // Each link appears once, as a link: nothing was followed.
    let out = ls(&repo, &spec(&b.id, &src), true, true);
    let text = String::from_utf8_lossy(&out);
    assert_eq!(
        text.lines().count(),
        links.len() + 2,
        "ls --recursive shows more than the tree (a link was followed?):\n{text}"
    );
    for (name, target) in &links {
        let want = format!("/{name} -> {}", target.display());
        assert!(
            text.lines()
                .any(|l| l.starts_with('l') && l.ends_with(&want)),
            "{want} missing:\n{text}"
        );
    }
    let (_r, rdir) = temp_dir("yester-loops-restore");
    let restored = restore(&repo, &b.id, &src, &rdir);
    assert_trees_equal(&src, &restored);
    // A looping symlink as the top-level path is a symlink, too.
    let b2 = backup(&repo, "loop-top", &[&src.join("a"), &src.join("self")], &[]);
    assert_eq!(b2.out.code(), Some(0), "{:?}", b2.warnings);
    let (_r2, rdir2) = temp_dir("yester-loops-top");
    for (name, target) in [("a", "b"), ("self", ".")] {
        let got = restore(&repo, &b2.id, &src.join(name), &rdir2);
        assert_eq!(fs::read_link(&got).unwrap(), Path::new(target));
    }
    let top = ls(&repo, &spec(&b2.id, &src), false, true);
    assert_eq!(String::from_utf8_lossy(&top).lines().count(), 2);
    check_clean(&repo);
}

// ---------------------------------------------------------------------------------------
// 10. Bad top-level paths
// ---------------------------------------------------------------------------------------

/// A backup that must fail: exit 1, one line on stderr naming `names` (the path or the
/// ancestor at fault) and the reason, no snapshot.
fn assert_fails(repo: &Repo, nobody: bool, path: &Path, names: &Path, reason: &str) -> Output {
    let mut c = yester_cmd(nobody);
    c.args(repo_args(repo))
        .args(["backup", "--source", "bad"])
        .arg(path);
    let out = spawn(c).finish(TIMEOUT).out;
    out.expect_code(1);
    let err = out.stderr.trim_end();
    assert_eq!(err.lines().count(), 1, "not one line:\n{err}");
    assert!(
        err.contains(&format!("{}:", names.display())) && err.contains(reason),
        "the error does not name {} and {reason:?}: {err}",
        names.display()
    );
    out
}

#[test]
fn missing_path_fails_with_one_line_error() {
    let repo = new_repo();
    let (_t, root) = temp_dir("yester-missing");
    let missing = root.join("no-such-file");
    assert_fails(
        &repo,
        false,
        &missing,
        &missing,
        "No such file or directory",
    );
    // A missing parent: the error names the missing directory.
    let deeper = root.join("no-such-dir/file");
    assert_fails(
        &repo,
        false,
        &deeper,
        &root.join("no-such-dir"),
        "No such file or directory",
    );
    // With a good path next to it, still nothing is saved.
    fs::write(root.join("good"), b"good").unwrap();
    let mut c = yester_cmd(false);
    c.args(repo_args(&repo))
        .args(["backup", "--source", "bad"])
        .arg(root.join("good"))
        .arg(&missing);
    spawn(c).finish(TIMEOUT).out.expect_code(1);
    assert_eq!(snapshot_count(&repo), 0, "a failed backup saved a snapshot");
    check_clean(&repo);
}

#[test]
fn io_error_message_states_the_cause_once() {
    let repo = new_repo();
    let (_t, root) = temp_dir("yester-missing-once");
    let missing = root.join("no-such-file");
    let out = assert_fails(
        &repo,
        false,
        &missing,
        &missing,
        "No such file or directory",
    );
    assert_eq!(
        out.stderr.matches("No such file or directory").count(),
        1,
        "{}",
        out.stderr
    );
}

#[test]
fn unreadable_top_level_path_as_nobody_fails_clearly() {
    if !is_root() {
        eprintln!("SKIPPING unreadable_top_level_path_as_nobody_fails_clearly: needs root");
        return;
    }
    let repo = repo_for_nobody();
    let (_t, root) = temp_dir("yester-unreadable");
    chmod(&root, 0o755);
    let locked = root.join("locked");
    fs::create_dir(&locked).unwrap();
    fs::write(locked.join("inner"), b"inner").unwrap();
    chmod(&locked, 0o000);
    let secret = root.join("secret");
    fs::write(&secret, b"secret").unwrap();
    chmod(&secret, 0o000);
    // Below an unsearchable directory: the path cannot even be looked at.
    let inner = locked.join("inner");
    assert_fails(&repo, true, &inner, &inner, "Permission denied");
    assert_eq!(snapshot_count(&repo), 0);
    // An unreadable directory or file itself: not a silent success; the path and the
    // reason are named, and a snapshot (if one is saved) is marked partial.
    for p in [&locked, &secret] {
        let r = start_backup(&repo, true, "unreadable", &[p], &[]);
        let f = r.finish(TIMEOUT);
        let out = &f.out;
        let code = out.code();
        assert!(
            matches!(code, Some(1) | Some(3)),
            "{}: exit {code:?}\n{}\n{}",
            p.display(),
            out.stdout,
            out.stderr
        );
        let all = format!("{}\n{}", out.stdout, out.stderr);
        assert!(
            all.contains(&format!("{}:", p.display())) && all.contains("Permission denied"),
            "{}: the output does not name the path and the reason:\n{all}",
            p.display()
        );
        if code == Some(3) {
            let v: serde_json::Value = serde_json::from_str(&out.stdout).unwrap();
            let id = v["id"].as_str().unwrap();
            let w = snapshot_warnings(&repo, id);
            assert!(
                w.iter().any(|w| warning_path(w) == p.to_str().unwrap()),
                "{w:?}"
            );
            eprintln!(
                "NOTE: backing up only {} (unreadable) saved snapshot {} with exit 3: {w:?}",
                p.display(),
                &id[..8]
            );
        }
    }
    check_clean(&repo);
}

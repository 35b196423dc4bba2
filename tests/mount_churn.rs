//! Mounts under churn and load, for real.
//!
//! - A FUSE mount of the whole repository and an NFS server stay up and serve the right bytes
//!   while backups of a changing source, rotations, forgets and prunes run under them; both
//!   serve the repository through a read-only bind mount, so any write of theirs would fail.
//! - The FUSE mount under parallel `find` + `cat` keeps correct data in memory bounded by its
//!   chunk cache, and leaves the repository untouched.
//!
//! Bounded by time, not by counts: ~30 s and ~12 s by default, 180 s and 60 s with
//! YESTER_RELIABILITY_FULL=1 (docs/RELIABILITY.md). No assertion is about speed.
//!
//! Longer than 600 lines on purpose: each file under `tests/` is a test binary of its own that
//! links the whole crate, so these related tests share one file rather than adding a binary
//! (and its link time) to every run of the suite.

// Tests unwrap freely: a panic is how a test fails (the crate denies it elsewhere).
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;
use common::{
    fuse_available, nfs_client_available, proc_status_kib, random_bytes, temp_dir,
    tree_fingerprint, FuseMount, NfsServer, ReadOnlyBind, Repo,
};

use std::collections::BTreeMap;
use std::ffi::OsStr;
use std::fs;
use std::io::{ErrorKind, Read};
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

fn full() -> bool {
    std::env::var_os("YESTER_RELIABILITY_FULL").is_some()
}

fn inside(p: &Path) -> String {
    p.to_str().unwrap().trim_start_matches('/').to_string()
}

/// Read a whole file after dropping its pages from the kernel's cache, so the read reaches
/// the mount process (the mount keeps page caches across opens: snapshot data never changes).
fn read_uncached(p: &Path) -> std::io::Result<Vec<u8>> {
    let mut f = fs::File::open(p)?;
    nix::fcntl::posix_fadvise(
        &f,
        0,
        0,
        nix::fcntl::PosixFadviseAdvice::POSIX_FADV_DONTNEED,
    )
    .map_err(std::io::Error::from)?;
    let mut v = Vec::new();
    f.read_to_end(&mut v)?;
    Ok(v)
}

/// Content of stable file `g` of the churning source: born in generation `g`, never changed,
/// so it is live in every later snapshot while its first pack's other data dies (prune then
/// repacks it, moving it while the mount reads it).
fn stable_content(g: u64) -> Vec<u8> {
    random_bytes(0x5000 + g, (128 << 10) + (g as usize % 3) * (40 << 10))
}

/// Content of volatile file `k` in generation `g`: a header naming both, then bytes derived
/// from both, so a reader can tell a right file from a wrong one or a mix of two versions.
fn volatile_content(g: u64, k: u64) -> Vec<u8> {
    let mut v = format!("gen {g} file {k}\n").into_bytes();
    let len = (64 << 10) + ((g * 7 + k * 13) % 6) as usize * (48 << 10);
    v.extend_from_slice(&random_bytes(g * 1000 + k + 1, len));
    v
}

/// Which generation a volatile file's bytes are, or why they are wrong.
fn check_volatile(bytes: &[u8], k: u64) -> Result<u64, String> {
    let nl = bytes
        .iter()
        .position(|&b| b == b'\n')
        .ok_or("no header line")?;
    let head = String::from_utf8_lossy(&bytes[..nl]).into_owned();
    let w: Vec<&str> = head.split(' ').collect();
    let g: u64 = match (w.first(), w.get(1), w.get(2), w.get(3)) {
        (Some(&"gen"), Some(g), Some(&"file"), Some(f)) if f.parse::<u64>().ok() == Some(k) => {
            g.parse().map_err(|_| format!("bad header {head:?}"))?
        }
        _ => return Err(format!("bad header {head:?} for file {k}")),
    };
    if bytes != volatile_content(g, k).as_slice() {
        return Err(format!(
            "bytes after header {head:?} are not generation {g}'s ({} bytes)",
            bytes.len()
        ));
    }
    Ok(g)
}

/// Counts and failures shared by the threads of a run.
#[derive(Default)]
struct Tally {
    counts: Mutex<BTreeMap<&'static str, u64>>,
    failures: Mutex<Vec<String>>,
}

impl Tally {
    fn add(&self, what: &'static str) {
        *self.counts.lock().unwrap().entry(what).or_default() += 1;
    }
    fn fail(&self, msg: String) {
        let mut f = self.failures.lock().unwrap();
        if f.len() < 50 {
            f.push(msg);
        }
    }
    fn count(&self, what: &str) -> u64 {
        self.counts.lock().unwrap().get(what).copied().unwrap_or(0)
    }
}

fn errno_name(e: &std::io::Error) -> String {
    match e.raw_os_error() {
        Some(n) => format!("{} ({e})", nix::errno::Errno::from_raw(n)),
        None => e.to_string(),
    }
}

fn yester_ok(repo: &Path, args: &[&str]) -> String {
    let out = repo_run(repo, args);
    assert!(
        out.status.success(),
        "yester {args:?}: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// The writers wait for each other's locks instead of failing (so the run may take longer
/// than the harness's default limit: up to the lock wait, plus its own work).
fn repo_run(repo: &Path, args: &[&str]) -> std::process::Output {
    common::Yester::at(repo)
        .args(["--lock-wait", "120s"])
        .args(args)
        .timeout(Duration::from_secs(600))
        .output()
        .unwrap()
}

fn snapshots_json(repo: &Path) -> Vec<serde_json::Value> {
    let v: serde_json::Value =
        serde_json::from_str(&yester_ok(repo, &["snapshots", "--json"])).unwrap();
    v.as_array().unwrap().clone()
}

/// Write generation `g` of the churning source: a new stable file, new volatile files.
fn write_generation(src: &Path, g: u64) {
    fs::write(src.join(format!("stable/s{g:04}")), stable_content(g)).unwrap();
    for k in 0..3 {
        fs::write(src.join(format!("vol/v{k}")), volatile_content(g, k)).unwrap();
    }
}

#[test]
fn mount_and_nfs_stay_correct_during_backups_rotations_and_prunes() {
    if !fuse_available() {
        return;
    }
    let have_nfs = nfs_client_available();
    let secs = std::env::var("YESTER_CHURN_SECS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(if full() { 180 } else { 30 });
    let (_t, base) = temp_dir("yester-churn");
    fs::set_permissions(&base, fs::Permissions::from_mode(0o755)).unwrap();
    // Small levels, so snapshots drop out (and prune frees them) every few rounds.
    let repo = Repo::with_init_args(&["--levels", "hourly=2,daily=2"]);

    let churn = base.join("churn");
    fs::create_dir_all(churn.join("stable")).unwrap();
    fs::create_dir_all(churn.join("vol")).unwrap();
    write_generation(&churn, 0);
    yester_ok(
        &repo.path,
        &["backup", "--source", "churn", churn.to_str().unwrap()],
    );
    // The kept source: backed up once, never rotated (its hourly level never fills), so its
    // dated snapshot and its points stay. One file shares its data with the churning source's
    // first generation, which prune later repacks.
    let keep = base.join("keep");
    fs::create_dir_all(keep.join("deep/er")).unwrap();
    let mut kept: Vec<(String, Vec<u8>)> = vec![("shared-s0000".into(), stable_content(0))];
    for i in 0..6u64 {
        kept.push((
            format!("deep/k{i}"),
            random_bytes(0x9000 + i, (i as usize + 1) * (90 << 10)),
        ));
    }
    kept.push(("deep/er/empty".into(), Vec::new()));
    kept.push(("deep/er/small".into(), b"small\n".to_vec()));
    for (rel, data) in &kept {
        fs::write(keep.join(rel), data).unwrap();
    }
    yester_ok(
        &repo.path,
        &["backup", "--source", "keep", keep.to_str().unwrap()],
    );
    let keep_date = snapshots_json(&repo.path)
        .iter()
        .find(|s| s["source"] == "keep")
        .unwrap()["dated_name"]
        .as_str()
        .unwrap()
        .to_string();
    let mut kept_listing: Vec<String> = kept
        .iter()
        .map(|(rel, d)| format!("{}/{rel} {}", inside(&keep), d.len()))
        .collect();
    kept_listing.sort();

    // The servers read the repository through a read-only bind mount where possible.
    let ro = ReadOnlyBind::new(&repo.path, &base.join("repo-ro"));
    let serve_from = ro.as_ref().map_or(repo.path.clone(), |b| b.path.clone());
    // Smaller than what the readers go through, so reads keep reaching the packs prune moves.
    let cache = 2usize << 20;
    let cache_arg = format!("{}B", cache);
    let mut mount = FuseMount::start(
        &serve_from,
        &base.join("mnt"),
        &["--cache-size", &cache_arg],
    );
    let mut nfs = have_nfs.then(|| {
        NfsServer::start(
            &serve_from,
            &base.join("nfs-key"),
            &[OsStr::new("--cache-size"), OsStr::new(&cache_arg)],
        )
    });
    let mnt = mount.point.clone();

    let tally = Arc::new(Tally::default());
    let stop = Arc::new(AtomicBool::new(false));
    let generation = Arc::new(AtomicU64::new(0));
    let mut threads = Vec::new();

    // Writer 1: a new generation, its backup, a rotation; every third round a forget.
    {
        let (repo, churn, tally, stop, generation) = (
            repo.path.clone(),
            churn.clone(),
            tally.clone(),
            stop.clone(),
            generation.clone(),
        );
        threads.push(std::thread::spawn(move || {
            let mut g = 0;
            while !stop.load(Ordering::Relaxed) {
                g += 1;
                write_generation(&churn, g);
                let out = repo_run(
                    &repo,
                    &["backup", "--source", "churn", churn.to_str().unwrap()],
                );
                if !out.status.success() {
                    tally.fail(format!(
                        "backup {g}: {}",
                        String::from_utf8_lossy(&out.stderr)
                    ));
                    break;
                }
                generation.store(g, Ordering::SeqCst);
                tally.add("backups");
                let out = repo_run(&repo, &["rotate", "daily"]);
                if !out.status.success() {
                    tally.fail(format!(
                        "rotate {g}: {}",
                        String::from_utf8_lossy(&out.stderr)
                    ));
                    break;
                }
                tally.add("rotations");
                if String::from_utf8_lossy(&out.stdout).contains("dropped") {
                    tally.add("snapshots dropped by rotation");
                }
                if g % 3 == 0 {
                    let churns: Vec<String> = snapshots_json(&repo)
                        .iter()
                        .filter(|s| s["source"] == "churn")
                        .map(|s| s["id"].as_str().unwrap().to_string())
                        .collect();
                    if churns.len() >= 3 {
                        let out = repo_run(&repo, &["forget", &churns[0]]);
                        if !out.status.success() {
                            tally.fail(format!(
                                "forget {}: {}",
                                churns[0],
                                String::from_utf8_lossy(&out.stderr)
                            ));
                            break;
                        }
                        tally.add("forgets");
                    }
                }
            }
        }));
    }
    // Writer 2: prune, again and again (it waits for the backups' locks and they for its).
    {
        let (repo, tally, stop) = (repo.path.clone(), tally.clone(), stop.clone());
        threads.push(std::thread::spawn(move || {
            while !stop.load(Ordering::Relaxed) {
                let out = repo_run(&repo, &["prune"]);
                if !out.status.success() {
                    tally.fail(format!("prune: {}", String::from_utf8_lossy(&out.stderr)));
                    break;
                }
                tally.add("prunes");
                // "... N of M packs deleted, R repacked into ..."
                let text = String::from_utf8_lossy(&out.stdout).into_owned();
                let repacked = text
                    .split(" repacked")
                    .next()
                    .and_then(|s| s.rsplit(' ').next())
                    .and_then(|n| n.parse::<u64>().ok())
                    .unwrap_or(0);
                if repacked > 0 {
                    tally.add("prunes that repacked");
                }
                std::thread::sleep(Duration::from_millis(300));
            }
        }));
    }
    // Kept readers: every byte right, every time, through the dated name and both points.
    let kept = Arc::new(kept);
    for view in [
        format!("snapshots/keep/{keep_date}"),
        "latest/keep".to_string(),
        "hourly.0/keep".to_string(),
    ] {
        let (tally, stop, kept) = (tally.clone(), stop.clone(), kept.clone());
        let dir = mnt.join(&view).join(inside(&keep));
        threads.push(std::thread::spawn(move || {
            while !stop.load(Ordering::Relaxed) {
                for (rel, want) in kept.iter() {
                    match read_uncached(&dir.join(rel)) {
                        Ok(b) if b == *want => tally.add("kept files read right (FUSE)"),
                        Ok(b) => tally.fail(format!(
                            "{}/{rel}: wrong bytes ({} bytes, want {})",
                            dir.display(),
                            b.len(),
                            want.len()
                        )),
                        Err(e) => tally.fail(format!(
                            "{}/{rel}: kept file unreadable: {}",
                            dir.display(),
                            errno_name(&e)
                        )),
                    }
                }
            }
        }));
    }
    // Churn readers: through points that move, a file may vanish (ENOENT, ESTALE) but what is
    // read is right. Stable files are live in every snapshot: never EIO. A volatile file whose
    // snapshot was pruned while it was open has lost its data: EIO is counted, not failed.
    for point in ["latest", "hourly.0", "hourly.1", "daily.0", "daily.1"] {
        let (tally, stop) = (tally.clone(), stop.clone());
        let dir = mnt.join(point).join("churn").join(inside(&churn));
        threads.push(std::thread::spawn(move || {
            let gone = |e: &std::io::Error| {
                e.kind() == ErrorKind::NotFound || e.raw_os_error() == Some(nix::libc::ESTALE)
            };
            while !stop.load(Ordering::Relaxed) {
                let listed = fs::read_dir(dir.join("stable")).and_then(|rd| {
                    rd.map(|e| e.map(|e| e.file_name().to_string_lossy().into_owned()))
                        .collect::<std::io::Result<Vec<String>>>()
                });
                let names = match listed {
                    Ok(names) => names,
                    Err(e) if gone(&e) => {
                        tally.add("point directories gone (allowed)");
                        std::thread::sleep(Duration::from_millis(50));
                        continue;
                    }
                    Err(e) => {
                        tally.fail(format!("list {}/stable: {}", dir.display(), errno_name(&e)));
                        continue;
                    }
                };
                for n in &names {
                    let g: u64 = n.trim_start_matches('s').parse().unwrap_or(u64::MAX);
                    match read_uncached(&dir.join("stable").join(n)) {
                        Ok(b) if g != u64::MAX && b == stable_content(g) => {
                            tally.add("stable files read right (FUSE)")
                        }
                        Ok(b) => tally.fail(format!(
                            "{}/stable/{n}: wrong bytes ({} bytes)",
                            dir.display(),
                            b.len()
                        )),
                        Err(e) if gone(&e) => tally.add("files gone (allowed)"),
                        Err(e) => {
                            tally.fail(format!("{}/stable/{n}: {}", dir.display(), errno_name(&e)))
                        }
                    }
                }
                for k in 0..3 {
                    let p = dir.join(format!("vol/v{k}"));
                    match read_uncached(&p) {
                        Ok(b) => match check_volatile(&b, k) {
                            Ok(_) => tally.add("volatile files read right (FUSE)"),
                            Err(why) => tally.fail(format!("{}: {why}", p.display())),
                        },
                        Err(e) if gone(&e) => tally.add("files gone (allowed)"),
                        Err(e) if e.raw_os_error() == Some(nix::libc::EIO) => {
                            tally.add("volatile files pruned while open (EIO)")
                        }
                        Err(e) => tally.fail(format!("{}: {}", p.display(), errno_name(&e))),
                    }
                }
            }
        }));
    }
    // find: over the kept snapshot, exactly its files; over everything, never an I/O error.
    {
        let (tally, stop, mnt) = (tally.clone(), stop.clone(), mnt.clone());
        let (keep_date, kept_listing) = (keep_date.clone(), kept_listing.clone());
        threads.push(std::thread::spawn(move || {
            while !stop.load(Ordering::Relaxed) {
                let out = Command::new("find")
                    .arg(mnt.join(format!("snapshots/keep/{keep_date}")))
                    .args(["-type", "f", "-printf", "%P %s\\n"])
                    .output()
                    .unwrap();
                let mut got: Vec<String> = String::from_utf8_lossy(&out.stdout)
                    .lines()
                    .map(String::from)
                    .collect();
                got.sort();
                if !out.status.success() || got != kept_listing {
                    tally.fail(format!(
                        "find of the kept snapshot: {:?}, {got:?}, {}",
                        out.status,
                        String::from_utf8_lossy(&out.stderr)
                    ));
                } else {
                    tally.add("finds of the kept snapshot right");
                }
                let out = Command::new("find").arg(&mnt).output().unwrap();
                let err = String::from_utf8_lossy(&out.stderr);
                if err.contains("Input/output error") || out.stdout.is_empty() {
                    tally.fail(format!("find of the whole mount: {err}"));
                } else {
                    tally.add("finds of the whole mount");
                    if !err.is_empty() {
                        tally.add("finds of the whole mount that met vanished entries");
                    }
                }
            }
        }));
    }
    // NFS readers: the kept files and the newest stable file, through fresh clients.
    if let Some(srv) = &nfs {
        let url_kept: Vec<(String, Vec<u8>)> = kept
            .iter()
            .map(|(rel, d)| {
                (
                    srv.url(&format!(
                        "/snapshots/keep/{keep_date}/{}/{rel}",
                        inside(&keep)
                    )),
                    d.clone(),
                )
            })
            .collect();
        let latest_stable = format!("/latest/churn/{}/stable", inside(&churn));
        let port = srv.port;
        let (tally, stop, generation) = (tally.clone(), stop.clone(), generation.clone());
        threads.push(std::thread::spawn(move || {
            while !stop.load(Ordering::Relaxed) {
                for (url, want) in &url_kept {
                    let out = Command::new("nfs-cat").arg(url).output().unwrap();
                    if out.status.success() && out.stdout == *want {
                        tally.add("kept files read right (NFS)");
                    } else {
                        tally.fail(format!(
                            "nfs-cat {url}: {:?}, {} bytes, {}",
                            out.status,
                            out.stdout.len(),
                            String::from_utf8_lossy(&out.stderr)
                        ));
                    }
                }
                // A stable file that is in every snapshot latest can name from now on.
                let g = generation.load(Ordering::SeqCst).saturating_sub(1);
                let url = format!(
                    "nfs://127.0.0.1{latest_stable}/s{g:04}?version=3&nfsport={port}&mountport={port}"
                );
                let out = Command::new("nfs-cat").arg(&url).output().unwrap();
                let err = String::from_utf8_lossy(&out.stderr);
                if out.status.success() && out.stdout == stable_content(g) {
                    tally.add("stable files read right (NFS)");
                } else if !out.status.success()
                    && (err.contains("NOENT")
                        || err.contains("STALE")
                        || err.contains("No such file"))
                {
                    tally.add("files gone (allowed)");
                } else {
                    tally.fail(format!(
                        "nfs-cat {url}: {:?}, {} bytes, {err}",
                        out.status,
                        out.stdout.len()
                    ));
                }
            }
        }));
    }

    let started = Instant::now();
    let mut peak_mount = 0;
    let mut peak_nfs = 0;
    while started.elapsed() < Duration::from_secs(secs) {
        std::thread::sleep(Duration::from_millis(500));
        if !tally.failures.lock().unwrap().is_empty() {
            break;
        }
        if !mount.alive() {
            tally.fail(format!("the mount process died: {}", mount.log_text()));
            break;
        }
        if let Some(n) = nfs.as_mut() {
            if !n.alive() {
                tally.fail(format!("the NFS server died: {}", n.log_text()));
                break;
            }
        }
    }
    stop.store(true, Ordering::Relaxed);
    for t in threads {
        t.join().unwrap();
    }
    if let Some(v) = proc_status_kib(mount.pid(), "VmHWM") {
        peak_mount = v;
    }
    if let Some(n) = &nfs {
        peak_nfs = proc_status_kib(n.pid(), "VmHWM").unwrap_or(0);
    }
    let counts = tally.counts.lock().unwrap().clone();
    eprintln!(
        "churn for {:?}: {counts:#?}\npeak RSS: mount {peak_mount} KiB, NFS {peak_nfs} KiB \
         (cache {} MiB each); read-only bind mount: {}",
        started.elapsed(),
        cache >> 20,
        ro.is_some()
    );
    let failures = tally.failures.lock().unwrap().clone();
    assert!(
        failures.is_empty(),
        "{} failures under churn, first ones:\n{}\n--- mount log:\n{}\n--- NFS log:\n{}",
        failures.len(),
        failures.join("\n"),
        mount.log_text(),
        nfs.as_ref().map(|n| n.log_text()).unwrap_or_default()
    );
    // The run did what it claims: rounds of every writer, reads of every kind.
    for what in [
        "backups",
        "rotations",
        "prunes",
        "kept files read right (FUSE)",
        "stable files read right (FUSE)",
        "volatile files read right (FUSE)",
        "finds of the kept snapshot right",
    ] {
        assert!(tally.count(what) > 0, "no {what} in {secs} s: {counts:?}");
    }
    assert!(
        tally.count("snapshots dropped by rotation") + tally.count("forgets") > 0,
        "nothing was dropped, so prune had nothing to free: {counts:?}"
    );
    if nfs.is_some() {
        assert!(tally.count("kept files read right (NFS)") > 0);
    }

    // Still up and right at the end: the newest generation shows within a few refreshes.
    assert!(mount.alive(), "mount alive: {}", mount.log_text());
    let last = generation.load(Ordering::SeqCst);
    let latest = mnt.join("latest/churn").join(inside(&churn));
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let g = read_uncached(&latest.join("vol/v0"))
            .ok()
            .and_then(|b| check_volatile(&b, 0).ok());
        if g == Some(last) {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "latest/churn shows generation {g:?}, not {last}"
        );
        std::thread::sleep(Duration::from_millis(200));
    }
    for g in 0..=last {
        assert!(
            read_uncached(&latest.join(format!("stable/s{g:04}"))).unwrap() == stable_content(g),
            "stable file {g} at the end"
        );
    }
    let kept_dir = mnt.join(format!("snapshots/keep/{keep_date}/{}", inside(&keep)));
    for (rel, want) in kept.iter() {
        assert!(
            read_uncached(&kept_dir.join(rel)).unwrap() == *want,
            "{rel}"
        );
    }
    if let Some(n) = nfs.as_mut() {
        assert!(n.alive(), "NFS server alive: {}", n.log_text());
        // Like the mount, the server shows the newest generation within a few refreshes: a
        // request that finds another one refreshing goes on with the state it has.
        let url = n.url(&format!(
            "/latest/churn/{}/stable/s{last:04}",
            inside(&churn)
        ));
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            let out = Command::new("nfs-cat").arg(&url).output().unwrap();
            if out.status.success() && out.stdout == stable_content(last) {
                break;
            }
            assert!(
                Instant::now() < deadline,
                "NFS at the end: {:?}, {} bytes, stderr {}",
                out.status,
                out.stdout.len(),
                String::from_utf8_lossy(&out.stderr)
            );
            eprintln!(
                "NFS at the end, not yet: {}",
                String::from_utf8_lossy(&out.stderr).trim()
            );
            std::thread::sleep(Duration::from_millis(200));
        }
        let text = n.log_text();
        assert!(!text.contains("panicked"), "NFS log: {text}");
        assert!(!text.contains("Read-only file system"), "NFS wrote: {text}");
    }
    let log = mount.log_text();
    let status = mount.stop();
    assert!(status.success(), "mount exit {status:?}: {log}");
    assert!(!log.contains("panicked"), "mount log: {log}");
    assert!(!log.contains("Read-only file system"), "mount wrote: {log}");
    drop(nfs);
    yester_ok(&repo.path, &["check", "--read-data"]);
}

#[test]
fn fuse_under_parallel_find_and_cat_reads_right_in_bounded_memory() {
    if !fuse_available() {
        return;
    }
    let secs = std::env::var("YESTER_LOAD_SECS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(if full() { 60 } else { 12 });
    let readers = 8;
    let (_t, base) = temp_dir("yester-load");
    let repo = Repo::new();
    let src = base.join("src");
    let mut files: Vec<(String, Vec<u8>)> = Vec::new();
    for d in 0..3u64 {
        for i in 0..30u64 {
            let n = d * 100 + i;
            let len = ((n * 37) % 17) as usize * (40 << 10) + n as usize;
            files.push((
                format!("d{d}/sub{}/f{i:02}", i % 4),
                random_bytes(n + 1, len),
            ));
        }
    }
    files.push(("big".into(), random_bytes(4242, 4 << 20)));
    files.push(("empty".into(), Vec::new()));
    for (rel, data) in &files {
        let p = src.join(rel);
        fs::create_dir_all(p.parent().unwrap()).unwrap();
        fs::write(&p, data).unwrap();
    }
    let total: usize = files.iter().map(|(_, d)| d.len()).sum();
    repo.run([
        OsStr::new("backup"),
        "--source".as_ref(),
        "s".as_ref(),
        src.as_os_str(),
    ])
    .expect_success();
    let before = tree_fingerprint(&repo.path);
    let cache = 8usize << 20;
    let mount = FuseMount::start(
        &repo.path,
        &base.join("mnt"),
        &["--cache-size", &format!("{cache}B")],
    );
    let root: PathBuf = mount.path("latest/s").join(inside(&src));
    let mut want_listing: Vec<String> = files
        .iter()
        .map(|(rel, d)| format!("{rel} {}", d.len()))
        .collect();
    want_listing.sort();

    let files = Arc::new(files);
    let tally = Arc::new(Tally::default());
    let deadline = Instant::now() + Duration::from_secs(secs);
    let threads: Vec<_> = (0..readers)
        .map(|r| {
            let (files, tally, root, want_listing) = (
                files.clone(),
                tally.clone(),
                root.clone(),
                want_listing.clone(),
            );
            std::thread::spawn(move || {
                let mut round = 0;
                // At least one full round each, then until the deadline.
                while round == 0 || Instant::now() < deadline {
                    round += 1;
                    let out = Command::new("find")
                        .arg(&root)
                        .args(["-type", "f", "-printf", "%P %s\\n"])
                        .output()
                        .unwrap();
                    let mut got: Vec<String> = String::from_utf8_lossy(&out.stdout)
                        .lines()
                        .map(String::from)
                        .collect();
                    got.sort();
                    if !out.status.success() || got != want_listing {
                        tally.fail(format!(
                            "reader {r}: find gave {} lines: {}",
                            got.len(),
                            String::from_utf8_lossy(&out.stderr)
                        ));
                        return;
                    }
                    tally.add("finds");
                    // Each reader walks the files from a different place.
                    let n = files.len();
                    for j in 0..n {
                        let (rel, want) = &files[(j + r * n / readers) % n];
                        let p = root.join(rel);
                        // Out of the page cache, so `cat` reaches the mount process.
                        let dropped = fs::File::open(&p).and_then(|f| {
                            nix::fcntl::posix_fadvise(
                                &f,
                                0,
                                0,
                                nix::fcntl::PosixFadviseAdvice::POSIX_FADV_DONTNEED,
                            )
                            .map_err(std::io::Error::from)
                        });
                        if let Err(e) = dropped {
                            tally.fail(format!("reader {r}: open {rel}: {}", errno_name(&e)));
                            return;
                        }
                        let out = Command::new("cat").arg(&p).output().unwrap();
                        if !out.status.success() || out.stdout != *want {
                            tally.fail(format!(
                                "reader {r}: cat {rel}: {:?}, {} bytes (want {}): {}",
                                out.status,
                                out.stdout.len(),
                                want.len(),
                                String::from_utf8_lossy(&out.stderr)
                            ));
                            return;
                        }
                        tally.add("cats right");
                    }
                }
            })
        })
        .collect();
    for t in threads {
        t.join().unwrap();
    }
    let peak = proc_status_kib(mount.pid(), "VmHWM").unwrap_or(0);
    let counts = tally.counts.lock().unwrap().clone();
    let read_mib = (tally.count("cats right") as usize * total / files.len()) >> 20;
    eprintln!(
        "{readers} readers for {secs} s: {counts:?}, about {read_mib} MiB read through the \
         mount; mount peak RSS {peak} KiB with a {} MiB chunk cache",
        cache >> 20
    );
    let failures = tally.failures.lock().unwrap().clone();
    assert!(failures.is_empty(), "{}", failures.join("\n"));
    assert!(tally.count("cats right") >= (readers * files.len()) as u64);
    // Memory follows the cache, not the data read: a generous bound (the cache, read-ahead
    // buffers of the FUSE threads, trees, the allocator's slack), far below what was read.
    let bound_kib = (4 * cache + (96 << 20)) >> 10;
    assert!(peak > 0, "VmHWM of the mount process");
    assert!(
        (peak as usize) < bound_kib,
        "mount peak RSS {peak} KiB exceeds {bound_kib} KiB (cache {cache} bytes)"
    );
    let log = mount.log_text();
    let status = mount.stop();
    assert!(status.success(), "{status:?}: {log}");
    assert_eq!(
        before,
        tree_fingerprint(&repo.path),
        "the mount wrote to the repository"
    );
}

/// Regression: a snapshot directory reached through a point directory and through its dated
/// name was one inode, and the kernel gives a directory one parent, so `..` of an open
/// directory (or a shell's working directory) moved to whichever view was looked up last —
/// another snapshot, once the point moved on — and `find` failed ("failed to read file names
/// ... No such file or directory"). Found by the churn test above.
#[test]
fn dotdot_of_an_open_directory_stays_in_its_view() {
    if !fuse_available() {
        return;
    }
    use std::os::unix::fs::MetadataExt;
    let (_t, base) = temp_dir("yester-dotdot");
    let repo = Repo::new();
    let src = base.join("src");
    fs::create_dir_all(src.join("etc/nginx")).unwrap();
    fs::write(src.join("etc/nginx/nginx.conf"), "x\n").unwrap();
    repo.run([
        OsStr::new("backup"),
        "--source".as_ref(),
        "s".as_ref(),
        src.as_os_str(),
    ])
    .expect_success();
    let mount = FuseMount::start(&repo.path, &base.join("mnt"), &[]);
    let date = fs::read_dir(mount.path("snapshots/s"))
        .unwrap()
        .next()
        .unwrap()
        .unwrap()
        .file_name();
    let views = [
        mount.path("snapshots/s").join(&date),
        mount.path("latest/s"),
        mount.path("hourly.0/s"),
    ];
    let rel = format!("{}/etc", inside(&src));
    let ino = |p: &Path| fs::metadata(p).unwrap().ino();
    // Each view's directory open, then the same directory looked up through the others.
    let open: Vec<fs::File> = views
        .iter()
        .map(|v| fs::File::open(v.join(&rel)).unwrap())
        .collect();
    for v in views.iter().rev() {
        assert!(fs::metadata(v.join(&rel).join("nginx/nginx.conf")).is_ok());
    }
    for (v, f) in views.iter().zip(&open) {
        let dotdot = nix::sys::stat::fstatat(f, "..", nix::fcntl::AtFlags::empty()).unwrap();
        assert_eq!(
            dotdot.st_ino,
            ino(&v.join(&rel).join("..")),
            "`..` of {} is its own parent",
            v.join(&rel).display()
        );
    }
    // find (fts checks every `..` it climbs) over each view, while the others are in use.
    for v in &views {
        let out = Command::new("find").arg(v).output().unwrap();
        assert!(
            out.status.success(),
            "find {}: {}",
            v.display(),
            String::from_utf8_lossy(&out.stderr)
        );
    }
    // Files stay one inode everywhere (like hard links), as docs/LAYOUT.md says.
    let files: Vec<u64> = views
        .iter()
        .map(|v| ino(&v.join(&rel).join("nginx/nginx.conf")))
        .collect();
    assert!(files.iter().all(|&i| i == files[0]), "{files:?}");
    drop(open);
    let status = mount.stop();
    assert!(status.success());
}

/// Regression: prune moves live blobs out of mostly-garbage packs and deletes the old packs; a
/// running view still held the old index and answered EIO for kept files until its next
/// refresh (the churn test above found it: `latest/churn/stable/*` unreadable after a prune).
/// A read that finds its pack gone now reloads the index once and reads the new pack. The
/// view here never refreshes on its own (an hour's interval), so only that reload can help.
#[test]
fn reads_follow_data_that_prune_moved() {
    use yester::vfs::{Node, Vfs, VfsOptions};
    let (_t, base) = temp_dir("yester-moved");
    let repo = Repo::new();
    let a = base.join("a");
    let b = base.join("b");
    fs::create_dir_all(&a).unwrap();
    fs::create_dir_all(&b).unwrap();
    let shared = random_bytes(77, 600 << 10);
    fs::write(a.join("shared"), &shared).unwrap();
    fs::write(a.join("garbage"), random_bytes(78, 900 << 10)).unwrap();
    let backup = |source: &str, dir: &Path| {
        repo.run([
            OsStr::new("backup"),
            "--source".as_ref(),
            source.as_ref(),
            dir.as_os_str(),
        ])
        .expect_success();
    };
    backup("a", &a);
    // b's copy of the file dedups into a's pack, which prune will rewrite.
    fs::write(b.join("shared"), &shared).unwrap();
    backup("b", &b);
    let r = yester::engine::Repository::open(Arc::new(yester::engine::LocalDir::new(
        repo.path.clone(),
    )))
    .unwrap();
    let vfs = Vfs::new(
        r,
        VfsOptions {
            // Small enough that nothing read before the prune is still cached after it.
            cache_bytes: 1,
            refresh: Duration::from_secs(3600),
            ..VfsOptions::default()
        },
    )
    .unwrap();
    let mut node = Node::Root;
    let path = format!("latest/b/{}/shared", inside(&b));
    for c in path.split('/') {
        node = vfs.lookup(&node, c.as_bytes()).unwrap();
    }
    let f = vfs.open(&node).unwrap();
    let read_all = || {
        let mut out = Vec::new();
        while (out.len() as u64) < f.size {
            let d = vfs.read(&f, out.len() as u64, 1 << 20)?;
            if d.is_empty() {
                break;
            }
            out.extend_from_slice(&d);
        }
        Ok::<_, yester::vfs::VfsError>(out)
    };
    assert!(read_all().unwrap() == shared, "before the prune");
    let packs_before = tree_fingerprint(&repo.path.join("packs"));
    repo.run(["forget", "latest/a"]).expect_success();
    let out = repo.run(["prune"]);
    out.expect_success();
    assert!(
        out.stdout.contains(" 1 repacked"),
        "the shared pack was rewritten: {}",
        out.stdout
    );
    assert_ne!(packs_before, tree_fingerprint(&repo.path.join("packs")));
    match read_all() {
        Ok(d) => assert!(d == shared, "after the prune: wrong bytes"),
        Err(e) => panic!("after the prune, the kept file is unreadable: {e}"),
    }
}

/// A view whose state still names, under `latest/SRC`, a snapshot that was dropped and pruned
/// since (its state is refreshed only every so often) resolves the point again on the reloaded
/// state instead of failing with EIO: an NFS MOUNT of `latest/SRC/…` in that window answered
/// SERVERFAULT under churn.
#[test]
fn a_point_whose_snapshot_was_pruned_resolves_on_the_new_state() {
    use yester::vfs::{Node, Vfs, VfsOptions};
    let (_t, base) = temp_dir("yester-pruned-point");
    let repo = Repo::new();
    let src = base.join("p");
    fs::create_dir_all(src.join("sub")).unwrap();
    fs::write(src.join("sub/two"), random_bytes(81, 300 << 10)).unwrap();
    let backup = || {
        repo.run([
            OsStr::new("backup"),
            "--source".as_ref(),
            "p".as_ref(),
            src.as_os_str(),
        ])
        .expect_success();
    };
    backup();
    let r = yester::engine::Repository::open(Arc::new(yester::engine::LocalDir::new(
        repo.path.clone(),
    )))
    .unwrap();
    let vfs = Vfs::new(
        r,
        VfsOptions {
            cache_bytes: 1,
            // The state the view loaded now stays until a read finds it out of date.
            refresh: Duration::from_secs(3600),
            ..VfsOptions::default()
        },
    )
    .unwrap();
    // A newer snapshot without `two`; the one the view names goes, and prune removes its
    // data and trees.
    fs::remove_file(src.join("sub/two")).unwrap();
    fs::write(src.join("sub/three"), random_bytes(82, 300 << 10)).unwrap();
    backup();
    repo.run(["forget", "hourly.1/p"]).expect_success();
    repo.run(["prune"]).expect_success();
    let mut node = Node::Root;
    let path = format!("latest/p/{}/sub", inside(&src));
    for c in path.split('/') {
        node = match vfs.lookup(&node, c.as_bytes()) {
            Ok(n) => n,
            Err(e) => panic!("lookup of {c:?} in {path}: {e}"),
        };
    }
    let names: Vec<Vec<u8>> = {
        let d = vfs.readdir(&node).unwrap();
        (0..)
            .map_while(|i| d.item(i).map(|(n, _, _)| n.to_vec()))
            .collect()
    };
    assert_eq!(
        names,
        vec![b"three".to_vec()],
        "the point shows the new snapshot"
    );
}

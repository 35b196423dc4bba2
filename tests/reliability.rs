//! Reliability: full disks, concurrent writers and the lock protocol, crashes in rotation,
//! damaged repositories read through the mounts, and many NFS clients at once.
//! Heavier counts with YESTER_RELIABILITY_FULL=1 (docs/RELIABILITY.md).

// Tests unwrap freely: a panic is how a test fails (the crate denies it elsewhere).
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;
use common::cli::{ok_at as ok, run_at as run, yester_at as yester};
use common::{fuse_available, proc_status_kib, random_bytes, NfsServer};

use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

fn full() -> bool {
    std::env::var_os("YESTER_RELIABILITY_FULL").is_some()
}

fn init(repo: &Path, levels: &str) {
    common::cli::init_at(repo, Some(levels));
}

fn backup(repo: &Path, source: &str, path: &Path) -> String {
    common::cli::backup_at(repo, source, path, &[])
}

fn snapshot_count(repo: &Path) -> usize {
    let v: serde_json::Value = serde_json::from_str(&ok(repo, &["snapshots", "--json"])).unwrap();
    v.as_array().unwrap().len()
}

fn inside(p: &Path) -> String {
    p.to_str().unwrap().trim_start_matches('/').to_string()
}

fn wait_for_lock(repo: &Path) {
    let deadline = Instant::now() + Duration::from_secs(20);
    while fs::read_dir(repo.join("locks"))
        .map(|d| d.count())
        .unwrap_or(0)
        == 0
    {
        assert!(Instant::now() < deadline, "no lock appeared");
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// A small file system mounted for a test, unmounted on drop.
struct SmallFs(PathBuf);

impl Drop for SmallFs {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg("-l").arg(&self.0).status();
    }
}

/// Mount a small file system of `kind` ("tmpfs"; "ext4" on a loop device, the file system
/// where packs are written with O_DIRECT; "ext4-128", the same with 128-byte inodes, which
/// keep whole seconds only) on `at`; `Err` says why it cannot be done here.
fn mount_small(kind: &str, at: &Path, scratch: &Path) -> Result<SmallFs, String> {
    if !nix::unistd::geteuid().is_root() {
        return Err("mounting needs root".into());
    }
    fs::create_dir(at).map_err(|e| e.to_string())?;
    let st = if kind == "tmpfs" {
        Command::new("mount")
            .args(["-t", "tmpfs", "-o", "size=6m", "tmpfs"])
            .arg(at)
            .status()
    } else {
        let img = scratch.join("ext4.img");
        fs::File::create(&img)
            .and_then(|f| f.set_len(16 << 20))
            .map_err(|e| e.to_string())?;
        let mut mkfs = Command::new("mkfs.ext4");
        mkfs.args(["-q", "-F"]);
        if kind == "ext4-128" {
            mkfs.args(["-I", "128"]);
        }
        let mkfs = mkfs.arg(&img).stderr(Stdio::null()).status();
        if !mkfs.is_ok_and(|s| s.success()) {
            return Err("mkfs.ext4 failed or is missing".into());
        }
        Command::new("mount")
            .args(["-o", "loop"])
            .arg(&img)
            .arg(at)
            .status()
    };
    match st {
        Ok(s) if s.success() => Ok(SmallFs(at.to_path_buf())),
        _ => Err(format!("cannot mount a small {kind} here")),
    }
}

/// A backup that runs out of space fails with one clear line, commits nothing, leaves no temp
/// file, and once there is room again backups work and the old data is intact.
fn full_disk_fails_clearly_and_recovers_on(kind: &str) {
    let t = tempfile::tempdir().unwrap();
    let small = t.path().join("small");
    let _guard = match mount_small(kind, &small, t.path()) {
        Ok(g) => g,
        Err(why) => {
            eprintln!("SKIPPING full-disk test on {kind}: {why}");
            return;
        }
    };
    let repo = small.join("repo");
    init(&repo, "hourly=100");
    let data = t.path().join("data");
    fs::create_dir(&data).unwrap();
    fs::write(data.join("small"), "fits\n").unwrap();
    let first = backup(&repo, "s", &data);
    fs::write(data.join("big"), random_bytes(1, 20 << 20)).unwrap();
    let out = run(&repo, &["backup", "--source", "s", data.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("no space left on device"), "{err}");
    assert_eq!(err.trim_end().lines().count(), 1, "one clear line: {err}");
    assert_eq!(snapshot_count(&repo), 1, "no partial snapshot");
    assert_eq!(
        fs::read_dir(repo.join("tmp")).unwrap().count(),
        0,
        "no temp file left"
    );
    ok(&repo, &["check"]);
    // Space freed (the big file excluded): backups work again and old data is intact.
    fs::remove_file(data.join("big")).unwrap();
    ok(&repo, &["prune"]);
    fs::write(data.join("more"), "more\n").unwrap();
    let again = backup(&repo, "s", &data);
    ok(&repo, &["check", "--read-data"]);
    let out = run(&repo, &["cat", &format!("{first}:{}/small", inside(&data))]);
    assert_eq!(out.stdout, b"fits\n");
    let out = run(&repo, &["cat", &format!("{again}:{}/more", inside(&data))]);
    assert_eq!(out.stdout, b"more\n");
}

#[test]
fn full_disk_fails_clearly_and_recovers() {
    full_disk_fails_clearly_and_recovers_on("tmpfs");
}

/// The same on ext4, where packs go out with O_DIRECT: the disk fills in the middle of a
/// direct write.
#[test]
fn full_disk_fails_clearly_and_recovers_with_direct_writes() {
    full_disk_fails_clearly_and_recovers_on("ext4");
}

/// On a file system that keeps whole seconds, a file replaced by another of the same size
/// within a second keeps the old size, mtime and ctime: only the inode number tells it was
/// replaced. yester reads it again; `--ignore-inode` trusts size and times, as asked.
#[test]
fn a_replaced_file_with_the_same_size_and_times_is_read_again() {
    use std::os::unix::fs::MetadataExt;
    let t = tempfile::tempdir().unwrap();
    let src = t.path().join("src");
    let _guard = match mount_small("ext4-128", &src, t.path()) {
        Ok(g) => g,
        Err(why) => {
            eprintln!("SKIPPING replaced-file test: {why}");
            return;
        }
    };
    let repo = t.path().join("repo");
    init(&repo, "hourly=100");
    let f = src.join("f");
    // Each attempt is its own source, so its first backup has no parent and reads the file.
    let backup_json = |source: &str, extra: &[&str]| -> serde_json::Value {
        let mut args = vec!["backup", "--json", "--source", source];
        args.extend_from_slice(extra);
        args.push(src.to_str().unwrap());
        serde_json::from_str(&ok(&repo, &args)).unwrap()
    };
    let cat = |id: &serde_json::Value| -> Vec<u8> {
        let spec = format!("{}:{}", id.as_str().unwrap(), inside(&f));
        ok(&repo, &["cat", &spec]).into_bytes()
    };
    let times = |m: &fs::Metadata| {
        (
            m.len(),
            m.mtime(),
            m.mtime_nsec(),
            m.ctime(),
            m.ctime_nsec(),
        )
    };
    for (flags, expect_reread) in [(&[][..], true), (&["--ignore-inode"][..], false)] {
        // Everything below must happen within one second of the clock; retry until it did.
        let mut attempts = 0;
        let (first, second) = loop {
            attempts += 1;
            assert!(
                attempts <= 30,
                "never managed a replacement within one second"
            );
            let source = format!("s{}-{attempts}", flags.len());
            fs::write(&f, "old content\n").unwrap();
            let before = fs::metadata(&f).unwrap();
            let first = backup_json(&source, flags);
            let new = src.join("f.new");
            fs::write(&new, "new content\n").unwrap();
            common::set_mtime(&new, before.mtime(), before.mtime_nsec());
            fs::rename(&new, &f).unwrap();
            let after = fs::metadata(&f).unwrap();
            assert_ne!(after.ino(), before.ino());
            if times(&after) != times(&before) {
                continue;
            }
            break (first, backup_json(&source, flags));
        };
        assert_eq!(cat(&first["id"]), b"old content\n");
        let unchanged = second["stats"]["files_unchanged"].as_u64().unwrap();
        if expect_reread {
            assert_eq!(unchanged, 0, "{second}");
            assert_eq!(cat(&second["id"]), b"new content\n");
        } else {
            assert_eq!(unchanged, 1, "{second}");
            assert_eq!(cat(&second["id"]), b"old content\n");
        }
    }
}

#[test]
fn concurrent_backups_and_the_lock_protocol() {
    let t = tempfile::tempdir().unwrap();
    let repo = t.path().join("repo");
    init(&repo, "hourly=100,daily=10");
    let mut dirs = Vec::new();
    for s in ["a", "b"] {
        let d = t.path().join(s);
        fs::create_dir(&d).unwrap();
        for i in 0..20u64 {
            fs::write(
                d.join(format!("f{i}")),
                random_bytes(i + s.len() as u64 * 100, 256 << 10),
            )
            .unwrap();
        }
        dirs.push(d);
    }
    // Two backups of different sources at once both succeed.
    let children: Vec<Child> = ["a", "b"]
        .iter()
        .zip(&dirs)
        .map(|(s, d)| {
            yester(&repo)
                .args(["backup", "--source", s, d.to_str().unwrap()])
                .stdout(Stdio::null())
                .spawn()
                .unwrap()
        })
        .collect();
    for mut c in children {
        assert!(c.wait().unwrap().success());
    }
    assert_eq!(snapshot_count(&repo), 2);

    // Prune while a backup holds its shared lock: refused at once, or waits with --lock-wait.
    let mut slow = yester(&repo)
        .args(["backup", "--source", "a", dirs[0].to_str().unwrap()])
        .env("YESTER_FAILPOINT", "backup-before-snapshot:pause")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    wait_for_lock(&repo);
    let out = run(&repo, &["prune"]);
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("locked") && err.contains("backup"), "{err}");
    // Rotation during a backup is fine (it takes the points lock, not the data one).
    ok(&repo, &["rotate", "daily", "--source", "b"]);
    let out = run(&repo, &["--lock-wait", "30s", "prune"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(slow.wait().unwrap().success());
    assert_eq!(snapshot_count(&repo), 3);
    let points: serde_json::Value =
        serde_json::from_str(&ok(&repo, &["points", "--json", "--source", "a"])).unwrap();
    assert_eq!(
        points.as_array().unwrap().len(),
        2,
        "no point lost or duplicated"
    );
    ok(&repo, &["check", "--read-data"]);
}

#[test]
fn rotation_crash_never_names_a_missing_snapshot() {
    let t = tempfile::tempdir().unwrap();
    let repo = t.path().join("repo");
    init(&repo, "hourly=2,daily=1");
    let data = t.path().join("d");
    fs::create_dir(&data).unwrap();
    let trials = if full() { 50 } else { 10 };
    for i in 0..trials {
        fs::write(data.join("f"), format!("{i}")).unwrap();
        backup(&repo, "s", &data);
        let out = yester(&repo)
            .args(["rotate", "daily"])
            .env("YESTER_FAILPOINT", "rotate-after-catalog")
            .output()
            .unwrap();
        // Either nothing to rotate (exit 0) or a crash right after the new catalogue.
        let points: serde_json::Value =
            serde_json::from_str(&ok(&repo, &["points", "--json"])).unwrap();
        for p in points.as_array().unwrap() {
            assert!(
                p["time"].is_string(),
                "trial {i}: point {} names a missing snapshot ({:?})",
                p["point"],
                out.status
            );
        }
        ok(&repo, &["check"]);
    }
    // Snapshots orphaned by the crashes are plain snapshots; prune keeps the repository valid.
    ok(&repo, &["prune"]);
    ok(&repo, &["check", "--read-data"]);
    let out = ok(&repo, &["cat", &format!("latest/s/{}/f", inside(&data))]);
    assert_eq!(out, format!("{}", trials - 1));
}

#[test]
fn many_nfs_clients_read_correct_data_in_bounded_memory() {
    if Command::new("nfs-cat").output().is_err() {
        eprintln!("SKIPPING NFS load test: nfs-cat not found (apt-get install libnfs-utils)");
        return;
    }
    let t = tempfile::tempdir().unwrap();
    let repo = t.path().join("repo");
    init(&repo, "hourly=10");
    let data = t.path().join("data");
    fs::create_dir(&data).unwrap();
    let files = 32;
    for i in 0..files {
        fs::write(
            data.join(format!("f{i:02}")),
            random_bytes(i as u64 + 7, 3 << 20),
        )
        .unwrap();
    }
    backup(&repo, "s", &data);
    let srv = NfsServer::start(&repo, &t.path().join("key"), &[]);
    let rounds = if full() { 5 } else { 1 };
    for _ in 0..rounds {
        let children: Vec<(usize, Child)> = (0..files)
            .map(|i| {
                let url = srv.url(&format!("/latest/s/{}/f{i:02}", inside(&data)));
                (
                    i,
                    Command::new("nfs-cat")
                        .arg(url)
                        .stdout(Stdio::piped())
                        .stderr(Stdio::null())
                        .spawn()
                        .unwrap(),
                )
            })
            .collect();
        for (i, c) in children {
            let out = c.wait_with_output().unwrap();
            assert!(out.status.success(), "client {i}");
            assert!(
                out.stdout == random_bytes(i as u64 + 7, 3 << 20),
                "client {i} got the right bytes"
            );
        }
    }
    let peak = proc_status_kib(srv.pid(), "VmHWM").unwrap_or(0);
    eprintln!("NFS server peak RSS with {files} concurrent clients: {peak} KiB");
    assert!(
        peak < 512 * 1024,
        "bounded by the chunk cache, not by the data read ({peak} KiB)"
    );
}

#[test]
fn damaged_data_gives_eio_through_the_mount_and_the_rest_still_reads() {
    if !fuse_available() {
        return;
    }
    let t = tempfile::tempdir().unwrap();
    let repo = t.path().join("repo");
    init(&repo, "hourly=10");
    let data = t.path().join("data");
    fs::create_dir(&data).unwrap();
    fs::write(data.join("a_damaged"), random_bytes(3, 2 << 20)).unwrap();
    fs::write(data.join("b_fine"), "still fine\n").unwrap();
    backup(&repo, "s", &data);
    let pack = fs::read_dir(repo.join("packs"))
        .unwrap()
        .next()
        .unwrap()
        .unwrap()
        .path();
    let pack = fs::read_dir(pack).unwrap().next().unwrap().unwrap().path();
    let mut bytes = fs::read(&pack).unwrap();
    bytes[5000] ^= 0x55;
    fs::write(&pack, &bytes).unwrap();
    let mnt = t.path().join("mnt");
    fs::create_dir(&mnt).unwrap();
    ok(&repo, &["mount", mnt.to_str().unwrap()]);
    let base = mnt.join(format!("latest/s/{}", inside(&data)));
    let fine = fs::read_to_string(base.join("b_fine"));
    let damaged = fs::read(base.join("a_damaged"));
    let listing = fs::read_dir(&base).map(|d| d.count());
    let _ = Command::new("fusermount3").arg("-u").arg(&mnt).status();
    assert_eq!(fine.unwrap(), "still fine\n");
    assert_eq!(
        damaged.unwrap_err().raw_os_error(),
        Some(nix::libc::EIO),
        "EIO, never wrong bytes"
    );
    assert_eq!(listing.unwrap(), 2);
    // And a damaged config is one clear line, not a panic.
    fs::write(repo.join("config"), b"{ not json").unwrap();
    let out = run(&repo, &["snapshots"]);
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("config") && err.contains("corrupt"), "{err}");
}

//! End-to-end tests of the engine through the `yester` binary: dedup, corruption, crashes,
//! locks and clear errors on bad repositories.
//!
//! Longer than 600 lines on purpose: each file under `tests/` is a test binary of its own that
//! links the whole crate, so these related tests share one file rather than adding a binary
//! (and its link time) to every run of the suite.

// Tests unwrap freely: a panic is how a test fails (the crate denies it elsewhere).
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;
use common::cli::{ok_at as ok, run_at as run, yester_at as yester};
use common::{du, random_bytes};

use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

/// A repository that keeps every backup (the tests here are not about retention).
fn init(repo: &Path) {
    common::cli::init_at(repo, Some("hourly=1000"));
}

fn backup(repo: &Path, source: &str, path: &Path) -> String {
    common::cli::backup_at(repo, source, path, &[])
}

/// All pack files of a repository.
fn packs(repo: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    for shard in fs::read_dir(repo.join("packs")).unwrap() {
        for p in fs::read_dir(shard.unwrap().path()).unwrap() {
            out.push(p.unwrap().path());
        }
    }
    out.sort();
    out
}

/// Path of `p` inside a snapshot (absolute location without the leading slash).
fn inside(p: &Path) -> String {
    p.to_str().unwrap().trim_start_matches('/').to_string()
}

#[test]
fn dedup_same_data_and_shifted_data() {
    let t = tempfile::tempdir().unwrap();
    let repo = t.path().join("repo");
    init(&repo);
    let data = t.path().join("data");
    fs::create_dir(&data).unwrap();
    let content = random_bytes(42, 64 << 20);
    fs::write(data.join("big"), &content).unwrap();
    backup(&repo, "a", &data);
    let s1 = du(&repo);
    assert!(s1 > 64 << 20, "first backup stores the data ({s1})");

    // Same data again, from the same place and from another place and source.
    backup(&repo, "a", &data);
    let copy = t.path().join("copy");
    fs::create_dir(&copy).unwrap();
    fs::write(copy.join("big-copy"), &content).unwrap();
    backup(&repo, "b", &copy);
    let s2 = du(&repo);
    let growth = (s2 - s1) as f64 / (64u64 << 20) as f64;
    eprintln!("same data twice more: growth {:.4}%", growth * 100.0);
    assert!(growth < 0.01, "growth {growth}");

    // One byte inserted at the front.
    let mut shifted = vec![0x5a];
    shifted.extend_from_slice(&content);
    fs::write(data.join("big"), &shifted).unwrap();
    backup(&repo, "a", &data);
    let s3 = du(&repo);
    let growth = (s3 - s2) as f64 / (64u64 << 20) as f64;
    eprintln!(
        "one byte inserted at the front: growth {:.3}%",
        growth * 100.0
    );
    assert!(growth < 0.05, "growth {growth}");

    // And everything still reads back.
    let snaps: serde_json::Value =
        serde_json::from_str(&ok(&repo, &["snapshots", "--json"])).unwrap();
    let last = snaps.as_array().unwrap().last().unwrap()["id"]
        .as_str()
        .unwrap()
        .to_string();
    let out = yester(&repo)
        .args(["cat", &format!("{last}:{}/big", inside(&data))])
        .output()
        .unwrap();
    assert!(out.status.success());
    assert!(out.stdout == shifted, "cat returns the shifted file");
}

#[test]
fn flipped_byte_is_named_and_other_files_still_restore() {
    let t = tempfile::tempdir().unwrap();
    let repo = t.path().join("repo");
    init(&repo);
    let data = t.path().join("data");
    fs::create_dir(&data).unwrap();
    // Blobs are packed in walk order, so "a_big"'s first chunk starts right after the magic.
    fs::write(data.join("a_big"), random_bytes(7, 3 << 20)).unwrap();
    fs::write(data.join("b_small"), b"untouched text\n").unwrap();
    let id = backup(&repo, "web1", &data);
    ok(&repo, &["check", "--read-data"]);

    let all = packs(&repo);
    assert_eq!(all.len(), 1);
    let mut bytes = fs::read(&all[0]).unwrap();
    bytes[1000] ^= 0x01;
    fs::write(&all[0], &bytes).unwrap();

    let out = run(&repo, &["check", "--read-data"]);
    assert_eq!(out.status.code(), Some(1));
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.contains(&id[..8]), "names the snapshot: {text}");
    assert!(
        text.contains(&format!("{}/a_big", data.display())),
        "names the file: {text}"
    );
    assert!(
        !text.contains("b_small"),
        "does not blame the intact file: {text}"
    );

    // The intact file restores; the damaged one is an error, never wrong bytes.
    let target = t.path().join("r");
    ok(
        &repo,
        &[
            "restore",
            &format!("{id}:{}/b_small", inside(&data)),
            "--target",
            target.to_str().unwrap(),
        ],
    );
    assert_eq!(
        fs::read(target.join("b_small")).unwrap(),
        b"untouched text\n"
    );
    let out = run(&repo, &["cat", &format!("{id}:{}/a_big", inside(&data))]);
    assert_eq!(out.status.code(), Some(1));
    assert!(out.stdout.is_empty(), "no wrong bytes are written");
    assert!(String::from_utf8_lossy(&out.stderr).contains("damaged"));
    let out = run(
        &repo,
        &[
            "restore",
            &format!("{id}:{}/a_big", inside(&data)),
            "--target",
            target.to_str().unwrap(),
        ],
    );
    assert_eq!(out.status.code(), Some(1));
}

#[test]
fn killed_backups_leave_a_consistent_repository() {
    let t = tempfile::tempdir().unwrap();
    let repo = t.path().join("repo");
    init(&repo);
    let data = t.path().join("data");
    fs::create_dir(&data).unwrap();
    for i in 0..40u64 {
        fs::write(data.join(format!("f{i:03}")), random_bytes(i, 1 << 20)).unwrap();
    }
    let first = backup(&repo, "src", &data);
    let reference = t.path().join("reference");
    ok(
        &repo,
        &["restore", &first, "--target", reference.to_str().unwrap()],
    );

    // How long an uninterrupted backup of fresh data takes, to spread the kills over it.
    let seed = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_nanos() as u64;
    let mut rng = random_bytes(seed, 8 * 64);
    let trials = std::env::var("YESTER_KILL_TRIALS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(8usize);
    let mut snapshots_before = 1;
    for trial in 0..trials {
        // New content each trial so the backup writes packs.
        for i in 0..40u64 {
            fs::write(
                data.join(format!("f{i:03}")),
                random_bytes(seed ^ (trial as u64 * 1000 + i), 1 << 20),
            )
            .unwrap();
        }
        let r = u64::from(rng.pop().unwrap_or(0)) * 4 + u64::from(rng.pop().unwrap_or(0) % 4);
        let delay = Duration::from_millis(r % 900);
        let mut child = yester(&repo)
            .args(["backup", "--source", "src", data.to_str().unwrap()])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        std::thread::sleep(delay);
        let _ = child.kill();
        let status = child.wait().unwrap();
        eprintln!("trial {trial}: killed after {delay:?}, status {status:?}");

        let out = run(&repo, &["check"]);
        assert!(out.status.success(), "check after kill in trial {trial}");
        let snaps: serde_json::Value =
            serde_json::from_str(&ok(&repo, &["snapshots", "--json"])).unwrap();
        let n = snaps.as_array().unwrap().len();
        assert!(n == snapshots_before || n == snapshots_before + 1);
        snapshots_before = n;
        let target = t.path().join(format!("r{trial}"));
        ok(
            &repo,
            &["restore", &first, "--target", target.to_str().unwrap()],
        );
        let diff = Command::new("diff")
            .arg("-r")
            .arg(&reference)
            .arg(&target)
            .status()
            .unwrap();
        assert!(
            diff.success(),
            "first snapshot restores identical after trial {trial}"
        );
        fs::remove_dir_all(&target).unwrap();
    }
    // The next backup succeeds, reads back, and the full check is clean; no temp files stay.
    let last = backup(&repo, "src", &data);
    ok(&repo, &["check", "--read-data"]);
    let target = t.path().join("last");
    ok(
        &repo,
        &[
            "restore",
            &format!("{last}:{}", inside(&data)),
            "--target",
            target.to_str().unwrap(),
        ],
    );
    let diff = Command::new("diff")
        .arg("-r")
        .arg(&data)
        .arg(target.join("data"))
        .status()
        .unwrap();
    assert!(diff.success());
    let leftovers = fs::read_dir(repo.join("tmp")).unwrap().count();
    assert_eq!(
        leftovers, 0,
        "temp files of killed writers are cleaned by the next backup"
    );
}

fn write_lock(repo: &Path, pid: u32, exclusive: bool) {
    let host = nix::unistd::gethostname().unwrap().into_string().unwrap();
    let rec = serde_json::json!({
        "hostname": host, "pid": pid, "time": "2026-11-21T00:00:00Z",
        "exclusive": exclusive, "operation": "prune",
    });
    fs::write(
        repo.join("locks").join(format!("{pid:032x}")),
        rec.to_string(),
    )
    .unwrap();
}

#[test]
fn stale_lock_is_reported_not_waited_on() {
    let t = tempfile::tempdir().unwrap();
    let repo = t.path().join("repo");
    init(&repo);
    let data = t.path().join("data");
    fs::create_dir(&data).unwrap();
    fs::write(data.join("f"), b"x").unwrap();

    let mut dead = Command::new("true").spawn().unwrap();
    let dead_pid = dead.id();
    dead.wait().unwrap();
    write_lock(&repo, dead_pid, true);

    // The dead process's lock is reported and removed; the backup does not wait for it.
    let start = Instant::now();
    let out = run(
        &repo,
        &[
            "--lock-wait",
            "60s",
            "backup",
            "--source",
            "s",
            data.to_str().unwrap(),
        ],
    );
    assert_eq!(out.status.code(), Some(0));
    assert!(
        start.elapsed() < Duration::from_secs(30),
        "stale locks are not waited on"
    );
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("stale lock") && err.contains(&dead_pid.to_string()) && err.contains("gone"),
        "{err}"
    );
    assert_eq!(fs::read_dir(repo.join("locks")).unwrap().count(), 0);

    // `yester unlock` removes stale locks by hand too.
    write_lock(&repo, dead_pid, false);
    let out = ok(&repo, &["unlock"]);
    assert!(out.contains(&dead_pid.to_string()));
    assert_eq!(fs::read_dir(repo.join("locks")).unwrap().count(), 0);

    // A live holder: fail at once by default, or after --lock-wait.
    write_lock(&repo, std::process::id(), true);
    let out = run(&repo, &["backup", "--source", "s", data.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("locked"));
    let start = Instant::now();
    let out = run(
        &repo,
        &[
            "--lock-wait",
            "2s",
            "backup",
            "--source",
            "s",
            data.to_str().unwrap(),
        ],
    );
    assert_eq!(out.status.code(), Some(1));
    assert!(start.elapsed() >= Duration::from_secs(2));
    // `unlock` leaves live locks alone unless --all.
    ok(&repo, &["unlock"]);
    assert_eq!(fs::read_dir(repo.join("locks")).unwrap().count(), 1);
    ok(&repo, &["unlock", "--all"]);
    backup(&repo, "s", &data);
}

#[test]
fn bad_repositories_give_one_clear_line() {
    let t = tempfile::tempdir().unwrap();
    let missing = t.path().join("nope");
    let out = run(&missing, &["snapshots"]);
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("not a yester repository") && err.contains("nope"),
        "{err}"
    );

    let repo = t.path().join("repo");
    init(&repo);
    let data = t.path().join("data");
    fs::create_dir(&data).unwrap();
    fs::write(data.join("f"), random_bytes(1, 300_000)).unwrap();
    let id = backup(&repo, "s", &data);

    // init refuses to reuse a repository.
    let out = common::Yester::new()
        .arg("init")
        .arg(&repo)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));

    // A truncated pack: check names the file, cat fails cleanly.
    let pack = packs(&repo).remove(0);
    let bytes = fs::read(&pack).unwrap();
    fs::write(&pack, &bytes[..bytes.len() / 2]).unwrap();
    let out = run(&repo, &["check"]);
    assert_eq!(out.status.code(), Some(1));
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        text.contains(pack.file_name().unwrap().to_str().unwrap()),
        "{text}"
    );
    let out = run(&repo, &["cat", &format!("{id}:{}/f", inside(&data))]);
    assert_eq!(out.status.code(), Some(1));
    fs::write(&pack, &bytes).unwrap();
    ok(&repo, &["check", "--read-data"]);

    // A damaged index file: named, with a hint.
    let idx = fs::read_dir(repo.join("index"))
        .unwrap()
        .next()
        .unwrap()
        .unwrap()
        .path();
    let ibytes = fs::read(&idx).unwrap();
    let mut bad = ibytes.clone();
    bad[20] ^= 0xff;
    fs::write(&idx, &bad).unwrap();
    let out = run(&repo, &["check"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        String::from_utf8_lossy(&out.stdout).contains(idx.file_name().unwrap().to_str().unwrap())
    );
    let out = run(&repo, &["ls", &id]);
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("index"));
    fs::write(&idx, &ibytes).unwrap();

    // A damaged snapshot record is named; a prefix that matches nothing is a clear error.
    let snap = repo.join("snapshots").join(&id);
    let sbytes = fs::read(&snap).unwrap();
    fs::write(&snap, &sbytes[..sbytes.len() / 2]).unwrap();
    let out = run(&repo, &["check"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stdout).contains(&id));
    fs::write(&snap, &sbytes).unwrap();
    let out = run(&repo, &["ls", "ffffffff"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("no snapshot matches"));

    // A newer format version is refused by name.
    let cfg = repo.join("config");
    let text = fs::read_to_string(&cfg)
        .unwrap()
        .replace("\"version\": 1", "\"version\": 2");
    fs::write(&cfg, text).unwrap();
    let out = run(&repo, &["snapshots"]);
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("version 2 is not supported") && err.contains("config"),
        "{err}"
    );
    // Exactly one line.
    assert_eq!(err.trim_end().lines().count(), 1, "{err}");
}

#[test]
fn partial_backup_exits_3_and_records_warnings() {
    // An unreadable file inside the tree: saved as a warning, exit 3. As root everything is
    // readable, so the backup runs as nobody then.
    let t = tempfile::tempdir().unwrap();
    use std::os::unix::fs::PermissionsExt;
    fs::set_permissions(t.path(), fs::Permissions::from_mode(0o755)).unwrap();
    let repo = t.path().join("repo");
    init(&repo);
    let data = t.path().join("data");
    fs::create_dir(&data).unwrap();
    fs::write(data.join("readable"), b"ok").unwrap();
    fs::write(data.join("secret"), b"x").unwrap();
    fs::set_permissions(data.join("secret"), fs::Permissions::from_mode(0o0)).unwrap();
    let root = nix::unistd::geteuid().is_root();
    if root {
        assert!(Command::new("chmod")
            .args(["-R", "a+rwX"])
            .arg(&repo)
            .status()
            .unwrap()
            .success());
    }
    let mut cmd = if root {
        common::Yester::via(
            "setpriv",
            ["--reuid=65534", "--regid=65534", "--clear-groups"],
        )
    } else {
        common::Yester::new()
    };
    let out = cmd
        .arg("-r")
        .arg(&repo)
        .args(["backup", "--source", "s", data.to_str().unwrap()])
        .output()
        .unwrap();
    assert_eq!(
        out.status.code(),
        Some(3),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let snaps: serde_json::Value =
        serde_json::from_str(&ok(&repo, &["snapshots", "--json"])).unwrap();
    let w = &snaps[0]["warnings"];
    assert!(
        w.as_array().is_some_and(|a| a
            .iter()
            .any(|x| x.as_str().unwrap().contains("secret: cannot open"))),
        "{w}"
    );

    // A backed-up path that cannot be read at all makes no snapshot (it would push good ones
    // out of the points): /proc/self/mem fails to read.
    let out = run(&repo, &["backup", "--source", "s", "/proc/self/mem"]);
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("/mem: read error") && err.contains("no snapshot was made"),
        "{err}"
    );
    assert_eq!(
        err.trim_end()
            .lines()
            .filter(|l| l.starts_with("yester:"))
            .count(),
        1,
        "{err}"
    );
    let snaps: serde_json::Value =
        serde_json::from_str(&ok(&repo, &["snapshots", "--json"])).unwrap();
    assert_eq!(snaps.as_array().unwrap().len(), 1);
}

#[test]
fn backup_crashing_before_its_snapshot_leaves_no_snapshot() {
    let t = tempfile::tempdir().unwrap();
    let repo = t.path().join("repo");
    init(&repo);
    let data = t.path().join("data");
    fs::create_dir(&data).unwrap();
    fs::write(data.join("f"), random_bytes(3, 2 << 20)).unwrap();
    let first = backup(&repo, "s", &data);
    fs::write(data.join("g"), random_bytes(4, 2 << 20)).unwrap();
    let out = yester(&repo)
        .args(["backup", "--source", "s", data.to_str().unwrap()])
        .env("YESTER_FAILPOINT", "backup-before-snapshot")
        .output()
        .unwrap();
    assert!(!out.status.success());
    let snaps: serde_json::Value =
        serde_json::from_str(&ok(&repo, &["snapshots", "--json"])).unwrap();
    assert_eq!(snaps.as_array().unwrap().len(), 1);
    assert_eq!(snaps[0]["id"].as_str().unwrap(), first);
    ok(&repo, &["check", "--read-data"]);
    let second = backup(&repo, "s", &data);
    let target = t.path().join("r");
    ok(
        &repo,
        &[
            "restore",
            &format!("{second}:{}", inside(&data)),
            "--target",
            target.to_str().unwrap(),
        ],
    );
    assert!(Command::new("diff")
        .arg("-r")
        .arg(&data)
        .arg(target.join("data"))
        .status()
        .unwrap()
        .success());
    assert_eq!(
        fs::read_dir(repo.join("locks")).unwrap().count(),
        0,
        "the crashed backup's lock was cleaned"
    );
}

#[test]
fn unchanged_files_are_not_read_again() {
    let t = tempfile::tempdir().unwrap();
    let repo = t.path().join("repo");
    init(&repo);
    let data = t.path().join("data");
    fs::create_dir_all(data.join("sub")).unwrap();
    fs::write(data.join("a"), random_bytes(1, 1 << 20)).unwrap();
    fs::write(data.join("sub/b"), "bbbb").unwrap();
    backup(&repo, "s", &data);
    let stats = |extra: &[&str]| {
        let mut args = vec!["backup", "--json", "--source", "s", data.to_str().unwrap()];
        args.extend_from_slice(extra);
        let v: serde_json::Value = serde_json::from_str(&ok(&repo, &args)).unwrap();
        (
            v["id"].as_str().unwrap().to_string(),
            v["stats"]["bytes_read"].as_u64().unwrap(),
            v["stats"]["files_unchanged"].as_u64().unwrap(),
        )
    };
    let (_, read, unchanged) = stats(&[]);
    assert_eq!(
        (read, unchanged),
        (0, 2),
        "a no-change backup reads nothing"
    );

    // Same size, and the old mtime put back: the ctime still gives the change away.
    let old = fs::metadata(data.join("sub/b")).unwrap();
    std::thread::sleep(Duration::from_millis(20));
    fs::write(data.join("sub/b"), "BBBB").unwrap();
    let t0 = nix::sys::time::TimeSpec::new(
        std::os::unix::fs::MetadataExt::mtime(&old),
        std::os::unix::fs::MetadataExt::mtime_nsec(&old),
    );
    nix::sys::stat::utimensat(
        nix::fcntl::AT_FDCWD,
        &data.join("sub/b"),
        &t0,
        &t0,
        nix::sys::stat::UtimensatFlags::NoFollowSymlink,
    )
    .unwrap();
    let (id, read, unchanged) = stats(&[]);
    assert_eq!((read, unchanged), (4, 1));
    let out = yester(&repo)
        .args(["cat", &format!("{id}:{}/sub/b", inside(&data))])
        .output()
        .unwrap();
    assert_eq!(out.stdout, b"BBBB");
    let (_, read, unchanged) = stats(&["--force"]);
    assert_eq!(
        (read, unchanged),
        ((1 << 20) + 4, 0),
        "--force reads everything"
    );
}

#[test]
fn repair_index_rebuilds_it_from_the_packs() {
    let t = tempfile::tempdir().unwrap();
    let repo = t.path().join("repo");
    init(&repo);
    let data = t.path().join("data");
    fs::create_dir(&data).unwrap();
    fs::write(data.join("f"), random_bytes(11, 3 << 20)).unwrap();
    let id = backup(&repo, "s", &data);
    for e in fs::read_dir(repo.join("index")).unwrap() {
        let p = e.unwrap().path();
        let mut b = fs::read(&p).unwrap();
        let n = b.len();
        b[n / 2] ^= 0xff;
        fs::write(&p, b).unwrap();
    }
    assert_eq!(run(&repo, &["check"]).status.code(), Some(1));
    let out = ok(&repo, &["check", "--repair-index"]);
    assert!(out.contains("rebuilt the index from 1 packs"), "{out}");
    ok(&repo, &["check", "--read-data"]);
    let out = yester(&repo)
        .args(["cat", &format!("{id}:{}/f", inside(&data))])
        .output()
        .unwrap();
    assert!(out.stdout == random_bytes(11, 3 << 20));
}

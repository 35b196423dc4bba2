//! Damaged point catalogues (docs/FORMAT.md, "Point catalogues"), through the real binary, a
//! real FUSE mount and a real NFS client: a damaged generation is named by `check`, costs only
//! the points recorded since the generation before it, and never stops `points`, a mount, an
//! NFS server or the next backup, for the damaged source or any other.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;
use common::cli::{backup_at as backup, ok_at as ok, run_at as run};
use common::{
    fuse_available, nfs_client_available, run_with_timeout, FuseMount, NfsServer, YESTER_TIMEOUT,
};

use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

/// A repository with two sources: web1 backed up twice (generations 1 and 2 of its
/// catalogue), db1 once.
struct Setup {
    _t: tempfile::TempDir,
    dir: PathBuf,
    repo: PathBuf,
    web: PathBuf,
    db: PathBuf,
    /// web1's snapshots, oldest first.
    web_ids: Vec<String>,
}

fn setup() -> Setup {
    let t = tempfile::tempdir().unwrap();
    fs::set_permissions(t.path(), fs::Permissions::from_mode(0o755)).unwrap();
    let dir = t.path().to_path_buf();
    let repo = dir.join("repo");
    common::cli::init_at(&repo, Some("hourly=3,daily=2"));
    let (web, db) = (dir.join("web"), dir.join("db"));
    fs::create_dir_all(&web).unwrap();
    fs::create_dir_all(&db).unwrap();
    fs::write(db.join("f"), "db one\n").unwrap();
    fs::write(web.join("f"), "web one\n").unwrap();
    let first = backup(&repo, "web1", &web, &[]);
    fs::write(web.join("f"), "web two\n").unwrap();
    let second = backup(&repo, "web1", &web, &[]);
    backup(&repo, "db1", &db, &[]);
    Setup {
        _t: t,
        dir,
        repo,
        web,
        db,
        web_ids: vec![first, second],
    }
}

/// The generations of a source's catalogue, oldest first (names are zero-padded numbers).
fn generations(repo: &Path, source: &str) -> Vec<PathBuf> {
    let mut v: Vec<PathBuf> = match fs::read_dir(repo.join("catalogs").join(source)) {
        Ok(rd) => rd.map(|e| e.unwrap().path()).collect(),
        Err(_) => Vec::new(),
    };
    v.sort();
    v
}

fn file_name(p: &Path) -> String {
    p.file_name().unwrap().to_string_lossy().into_owned()
}

type Damage = fn(&mut Vec<u8>);

const DAMAGES: [(&str, Damage); 3] = [
    ("a flipped byte", |b| {
        let mid = b.len() / 2;
        b[mid] ^= 0x01
    }),
    ("zeroed", |b| b.iter_mut().for_each(|x| *x = 0)),
    ("truncated", |b| b.truncate(b.len() / 3)),
];

fn damage(p: &Path, how: Damage) {
    let mut bytes = fs::read(p).unwrap();
    let before = bytes.clone();
    how(&mut bytes);
    assert_ne!(bytes, before, "the damage changes the object");
    fs::write(p, bytes).unwrap();
}

/// `yester points --json` as (source, point) -> snapshot id.
fn points(repo: &Path) -> Vec<(String, String, String)> {
    let v: serde_json::Value = serde_json::from_str(&ok(repo, &["points", "--json"])).unwrap();
    let mut out: Vec<(String, String, String)> = v
        .as_array()
        .unwrap()
        .iter()
        .map(|p| {
            (
                p["source"].as_str().unwrap().to_string(),
                p["point"].as_str().unwrap().to_string(),
                p["snapshot"].as_str().unwrap().to_string(),
            )
        })
        .collect();
    out.sort();
    out
}

fn point_of(points: &[(String, String, String)], source: &str, point: &str) -> Option<String> {
    points
        .iter()
        .find(|(s, p, _)| s == source && p == point)
        .map(|(_, _, id)| id.clone())
}

/// `yester check`: its exit code and what it printed.
fn check(repo: &Path) -> (Option<i32>, String) {
    let out = run(repo, &["check"]);
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    (out.status.code(), text)
}

/// A path backed up from `p`, inside a snapshot (`/tmp/x/web` is at `tmp/x/web`).
fn inside(p: &Path) -> String {
    p.to_str().unwrap().trim_start_matches('/').to_string()
}

fn nfs_cat(srv: &NfsServer, path: &str) -> String {
    let mut cmd = Command::new("nfs-cat");
    cmd.arg(srv.url(path));
    let out = run_with_timeout(cmd, YESTER_TIMEOUT);
    assert!(
        out.status.success(),
        "nfs-cat {path}: {}\nserver log: {}",
        out.stderr,
        srv.log_text()
    );
    out.stdout
}

fn nfs_ls(srv: &NfsServer, path: &str) -> Vec<String> {
    let mut cmd = Command::new("nfs-ls");
    cmd.arg(srv.url(path));
    let out = run_with_timeout(cmd, YESTER_TIMEOUT);
    assert!(
        out.status.success(),
        "nfs-ls {path}: {}\nserver log: {}",
        out.stderr,
        srv.log_text()
    );
    let mut names: Vec<String> = out
        .stdout
        .lines()
        .filter_map(|l| l.split_whitespace().last().map(str::to_string))
        .filter(|n| n != "." && n != "..")
        .collect();
    names.sort();
    names
}

fn dir_names(p: &Path) -> Vec<String> {
    let mut v: Vec<String> = fs::read_dir(p)
        .unwrap_or_else(|e| panic!("{}: {e}", p.display()))
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    v.sort();
    v
}

/// Wait until `f` holds (a running mount refreshes its view every second).
fn eventually(what: &str, mut f: impl FnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(20);
    while !f() {
        assert!(Instant::now() < deadline, "{what}: not within 20 s");
        std::thread::sleep(Duration::from_millis(100));
    }
}

#[test]
fn a_damaged_newest_generation_costs_only_its_own_edit() {
    let fuse = fuse_available();
    let nfs = nfs_client_available();
    for (what, how) in DAMAGES {
        let s = setup();
        let repo = &s.repo;
        let gens = generations(repo, "web1");
        assert_eq!(gens.len(), 2, "{what}: one generation per backup");
        let (good, bad) = (&gens[0], &gens[1]);
        assert_eq!(check(repo).0, Some(0), "{what}: clean before the damage");
        let before = points(repo);
        damage(bad, how);

        // check names the damaged object and fails.
        let (code, text) = check(repo);
        assert_eq!(code, Some(1), "{what}: check must fail:\n{text}");
        assert!(
            text.lines()
                .any(|l| l.starts_with("damaged:") && l.contains(&file_name(bad))),
            "{what}: check names {}:\n{text}",
            bad.display()
        );
        assert!(
            !text.contains(&format!("{}:", file_name(good))),
            "{what}: the good generation is not blamed:\n{text}"
        );

        // points: db1 untouched, web1 as generation 1 had it.
        let now = points(repo);
        let db_points: Vec<_> = before.iter().filter(|p| p.0 == "db1").collect();
        assert_eq!(
            now.iter().filter(|p| p.0 == "db1").collect::<Vec<_>>(),
            db_points,
            "{what}"
        );
        assert_eq!(
            point_of(&now, "web1", "hourly.0").as_deref(),
            Some(s.web_ids[0].as_str()),
            "{what}: web1's last good points (generation 1): {now:?}"
        );
        assert_eq!(point_of(&now, "web1", "hourly.1"), None, "{what}: {now:?}");
        let web_f = format!("{}/f", inside(&s.web));
        let db_f = format!("{}/f", inside(&s.db));

        // A mount and an NFS server start and serve both sources; the snapshot only the
        // damaged generation named is still reachable by its dated name.
        let mount = fuse.then(|| FuseMount::start(repo, &s.dir.join("mnt"), &[]));
        if let Some(m) = &mount {
            let read = |rel: &str| fs::read_to_string(m.path(rel)).unwrap();
            assert_eq!(
                read(&format!("hourly.0/web1/{web_f}")),
                "web one\n",
                "{what}"
            );
            assert_eq!(read(&format!("hourly.0/db1/{db_f}")), "db one\n", "{what}");
            assert!(!m.path("hourly.1/web1").exists(), "{what}");
            let dated = dir_names(&m.path("snapshots/web1"));
            assert_eq!(dated.len(), 2, "{what}: both snapshots by date: {dated:?}");
            let newest = read(&format!("latest/web1/{web_f}"));
            assert_eq!(
                newest, "web two\n",
                "{what}: latest is by time, not by point"
            );
        }
        let key = s.dir.join("nfs-key");
        let srv = nfs.then(|| NfsServer::start(repo, &key, &[]));
        if let Some(srv) = &srv {
            assert_eq!(
                nfs_cat(srv, &format!("/hourly.0/web1/{web_f}")),
                "web one\n",
                "{what}"
            );
            assert_eq!(
                nfs_cat(srv, &format!("/hourly.0/db1/{db_f}")),
                "db one\n",
                "{what}"
            );
            assert_eq!(nfs_ls(srv, "/snapshots/web1").len(), 2, "{what}");
        }

        // The next backup of web1 records its point in a new generation above the damaged
        // one, and keeps the snapshot only the damaged generation named.
        fs::write(s.web.join("f"), "web three\n").unwrap();
        let third = backup(repo, "web1", &s.web, &[]);
        let gens_now = generations(repo, "web1");
        assert_eq!(gens_now.len(), 3, "{what}: {gens_now:?}");
        assert!(file_name(&gens_now[2]).starts_with("0000000003-"), "{what}");
        let now = points(repo);
        assert_eq!(point_of(&now, "web1", "hourly.0"), Some(third), "{what}");
        assert_eq!(
            point_of(&now, "web1", "hourly.1").as_deref(),
            Some(s.web_ids[0].as_str()),
            "{what}"
        );
        let snaps = ok(repo, &["snapshots"]);
        assert!(
            snaps.contains(&s.web_ids[1][..8]),
            "{what}: the second snapshot is kept:\n{snaps}"
        );
        if let Some(m) = &mount {
            eventually(&format!("{what}: the mount shows the new backup"), || {
                fs::read_to_string(m.path(&format!("hourly.0/web1/{web_f}"))).ok()
                    == Some("web three\n".into())
            });
            assert_eq!(
                fs::read_to_string(m.path(&format!("hourly.1/web1/{web_f}"))).unwrap(),
                "web one\n",
                "{what}"
            );
            assert_eq!(
                fs::read_to_string(m.path(&format!("hourly.0/db1/{db_f}"))).unwrap(),
                "db one\n",
                "{what}"
            );
        }
        if let Some(srv) = &srv {
            eventually(
                &format!("{what}: the NFS server shows the new backup"),
                || nfs_cat(srv, &format!("/hourly.0/web1/{web_f}")) == "web three\n",
            );
        }
        drop(srv);
        drop(mount);

        // The damaged generation is still named until prune removes it (superseded now).
        let (code, text) = check(repo);
        assert_eq!(code, Some(1), "{what}:\n{text}");
        assert!(text.contains(&file_name(bad)), "{what}:\n{text}");
        ok(repo, &["prune"]);
        assert!(
            !bad.exists(),
            "{what}: prune deletes the superseded damaged generation"
        );
        assert!(
            good.exists(),
            "{what}: prune keeps valid generations before the newest"
        );
        let (code, text) = check(repo);
        assert_eq!(code, Some(0), "{what}: clean after prune:\n{text}");
    }
}

#[test]
fn every_generation_damaged_still_serves_the_other_sources() {
    let s = setup();
    let repo = &s.repo;
    let gens = generations(repo, "web1");
    for (g, (_, how)) in gens.iter().zip(DAMAGES) {
        damage(g, how);
    }
    let (code, text) = check(repo);
    assert_eq!(code, Some(1), "{text}");
    for g in &gens {
        assert!(
            text.contains(&file_name(g)),
            "check names {}:\n{text}",
            g.display()
        );
    }
    let now = points(repo);
    assert!(
        now.iter().all(|p| p.0 != "web1"),
        "web1 has no points: {now:?}"
    );
    assert!(point_of(&now, "db1", "hourly.0").is_some(), "{now:?}");
    let db_f = format!("{}/f", inside(&s.db));
    let web_f = format!("{}/f", inside(&s.web));
    // Prune keeps generations when none verifies: they are all there is.
    ok(repo, &["prune"]);
    assert!(gens.iter().all(|g| g.exists()));

    if fuse_available() {
        let m = FuseMount::start(repo, &s.dir.join("mnt"), &[]);
        assert_eq!(
            fs::read_to_string(m.path(&format!("hourly.0/db1/{db_f}"))).unwrap(),
            "db one\n"
        );
        assert!(!m.path("hourly.0/web1").exists());
        assert_eq!(dir_names(&m.path("snapshots/web1")).len(), 2);
        assert_eq!(
            fs::read_to_string(m.path(&format!("latest/web1/{web_f}"))).unwrap(),
            "web two\n"
        );
    }
    if nfs_client_available() {
        let srv = NfsServer::start(repo, &s.dir.join("nfs-key"), &[]);
        assert_eq!(nfs_cat(&srv, &format!("/hourly.0/db1/{db_f}")), "db one\n");
        assert_eq!(nfs_ls(&srv, "/snapshots/web1").len(), 2);
    }

    // The next backup records web1's point again, above the damaged generations.
    let id = backup(repo, "web1", &s.web, &[]);
    let now = points(repo);
    assert_eq!(point_of(&now, "web1", "hourly.0"), Some(id));
    assert_eq!(point_of(&now, "web1", "hourly.1"), None);
    // Both earlier snapshots are kept: points may have named them.
    assert_eq!(
        ok(repo, &["snapshots"])
            .lines()
            .filter(|l| s.web_ids.iter().any(|i| l.contains(&i[..8])))
            .count(),
        2
    );
    ok(repo, &["prune"]);
    assert!(
        gens.iter().all(|g| !g.exists()),
        "superseded damaged ones go"
    );
    assert_eq!(check(repo).0, Some(0));
}

#[test]
fn a_legacy_catalogue_keeps_its_points_and_moves_to_generations() {
    let s = setup();
    let repo = &s.repo;
    // Turn both catalogues into the legacy layout of a repository made before catalogs/
    // existed: one version-1 object points/<source> each.
    for source in ["web1", "db1"] {
        let gens = generations(repo, source);
        let newest: serde_json::Value =
            serde_json::from_slice(&fs::read(gens.last().unwrap()).unwrap()).unwrap();
        let legacy = serde_json::json!({
            "version": 1,
            "source": source,
            "levels": newest["levels"].clone(),
        });
        fs::write(
            repo.join("points").join(source),
            serde_json::to_vec_pretty(&legacy).unwrap(),
        )
        .unwrap();
    }
    fs::remove_dir_all(repo.join("catalogs")).unwrap();
    let db_before = point_of(&points(repo), "db1", "hourly.0");
    assert!(db_before.is_some());

    let before = points(repo);
    assert_eq!(
        point_of(&before, "web1", "hourly.0").as_deref(),
        Some(s.web_ids[1].as_str())
    );
    assert_eq!(
        point_of(&before, "web1", "hourly.1").as_deref(),
        Some(s.web_ids[0].as_str())
    );
    assert_eq!(check(repo).0, Some(0));

    let id = backup(repo, "web1", &s.web, &[]);
    let gens = generations(repo, "web1");
    assert_eq!(gens.len(), 1, "the first generation: {gens:?}");
    assert!(file_name(&gens[0]).starts_with("0000000001-"));
    let now = points(repo);
    assert_eq!(point_of(&now, "web1", "hourly.0"), Some(id));
    assert_eq!(
        point_of(&now, "web1", "hourly.1").as_deref(),
        Some(s.web_ids[1].as_str())
    );
    assert_eq!(
        point_of(&now, "web1", "hourly.2").as_deref(),
        Some(s.web_ids[0].as_str())
    );
    assert!(repo.join("points/web1").exists(), "kept until prune");
    ok(repo, &["prune"]);
    assert!(
        !repo.join("points/web1").exists(),
        "prune removes the superseded legacy object"
    );
    assert_eq!(points(repo), now);
    assert!(
        repo.join("points/db1").exists(),
        "a legacy object with no newer generation stays"
    );
    assert_eq!(point_of(&now, "db1", "hourly.0"), db_before);
    assert_eq!(check(repo).0, Some(0));
}

#[test]
fn prune_keeps_the_newest_four_generations() {
    let s = setup();
    let repo = &s.repo;
    for i in 0..5 {
        fs::write(s.web.join("f"), format!("round {i}\n")).unwrap();
        backup(repo, "web1", &s.web, &[]);
    }
    let gens = generations(repo, "web1");
    assert_eq!(gens.len(), 7);
    let before = points(repo);
    ok(repo, &["prune"]);
    assert_eq!(generations(repo, "web1"), gens[3..].to_vec());
    assert_eq!(generations(repo, "db1").len(), 1);
    assert_eq!(points(repo), before);
    // Damage the newest: the one before it is there to fall back on.
    damage(&gens[6], DAMAGES[0].1);
    let now = points(repo);
    let g5: serde_json::Value = serde_json::from_slice(&fs::read(&gens[5]).unwrap()).unwrap();
    assert_eq!(
        point_of(&now, "web1", "hourly.0").as_deref(),
        g5["levels"]["hourly"][0].as_str()
    );
}

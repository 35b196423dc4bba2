//! Backup points through the `yester` binary: rotation against a model of rsnapshot's,
//! naming, diff, forget + prune (also killed), and status for monitoring.

// Tests unwrap freely: a panic is how a test fails (the crate denies it elsewhere).
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;
use common::cli::{backup_at as backup, ok_at as ok, run_at as run, yester_at as yester};
use common::{du, random_bytes};

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::fs;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, SystemTime};

use proptest::prelude::*;

fn init(repo: &Path, levels: &str) {
    common::cli::init_at(repo, Some(levels));
}

fn json(repo: &Path, args: &[&str]) -> serde_json::Value {
    serde_json::from_str(&ok(repo, args)).unwrap()
}

fn diff_r(a: &Path, b: &Path) -> bool {
    Command::new("diff")
        .arg("-r")
        .arg(a)
        .arg(b)
        .status()
        .unwrap()
        .success()
}

// ---------------------------------------------------------------------------------------------
// Model-based test of rotation.

const LEVELS: [(&str, usize); 3] = [("hourly", 3), ("daily", 2), ("weekly", 2)];
const SOURCES: [&str; 3] = ["web1", "db1", "mail"];

#[derive(Clone, Debug)]
enum Op {
    Backup(usize),
    /// Level index (1 or 2) and an optional source index.
    Rotate(usize, Option<usize>),
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        3 => (0..SOURCES.len()).prop_map(Op::Backup),
        2 => (1..LEVELS.len(), proptest::option::of(0..SOURCES.len())).prop_map(|(l, s)| Op::Rotate(l, s)),
    ]
}

/// rsnapshot's rotation, written plainly: per source, per level, backup numbers newest first.
#[derive(Default)]
struct Model {
    points: BTreeMap<String, Vec<VecDeque<usize>>>,
}

impl Model {
    fn backup(&mut self, source: &str, n: usize) {
        let levels = self
            .points
            .entry(source.to_string())
            .or_insert_with(|| vec![VecDeque::new(); LEVELS.len()]);
        levels[0].push_front(n);
        levels[0].truncate(LEVELS[0].1);
    }

    fn rotate(&mut self, level: usize, source: Option<&str>) {
        for (name, levels) in self.points.iter_mut() {
            if source.is_some_and(|s| s != name) {
                continue;
            }
            if levels[level - 1].len() < LEVELS[level - 1].1 {
                continue; // the level below is not full: nothing happens
            }
            let oldest = levels[level - 1].pop_back().unwrap();
            levels[level].push_front(oldest);
            levels[level].truncate(LEVELS[level].1);
        }
    }

    /// "source point" -> backup number.
    fn listing(&self) -> BTreeMap<String, usize> {
        let mut out = BTreeMap::new();
        for (source, levels) in &self.points {
            for (li, list) in levels.iter().enumerate() {
                for (i, n) in list.iter().enumerate() {
                    out.insert(format!("{source} {}.{i}", LEVELS[li].0), *n);
                }
            }
        }
        out
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 12, ..ProptestConfig::default() })]

    #[test]
    fn rotation_matches_rsnapshot_model(ops in proptest::collection::vec(op(), 1..30)) {
        let t = tempfile::tempdir().unwrap();
        let repo = t.path().join("repo");
        init(&repo, "hourly=3,daily=2,weekly=2");
        let data = t.path().join("data");
        fs::create_dir(&data).unwrap();
        let mut model = Model::default();
        let mut ids: HashMap<String, usize> = HashMap::new();
        for (n, op) in ops.iter().enumerate() {
            match op {
                Op::Backup(s) => {
                    fs::write(data.join("f"), format!("backup {n}")).unwrap();
                    let id = backup(&repo, SOURCES[*s], &data, &[]);
                    ids.insert(id, n);
                    model.backup(SOURCES[*s], n);
                }
                Op::Rotate(l, s) => {
                    let mut args = vec!["rotate", LEVELS[*l].0];
                    if let Some(s) = s {
                        args.extend_from_slice(&["--source", SOURCES[*s]]);
                    }
                    let out = run(&repo, &args);
                    // With no source at all yet there is nothing to rotate: an error.
                    prop_assert_eq!(out.status.success(), !model.points.is_empty() || s.is_some());
                    model.rotate(*l, s.map(|i| SOURCES[i]));
                }
            }
            let points = json(&repo, &["points", "--json"]);
            let got: BTreeMap<String, usize> = points
                .as_array()
                .unwrap()
                .iter()
                .map(|p| {
                    let key = format!("{} {}", p["source"].as_str().unwrap(), p["point"].as_str().unwrap());
                    (key, ids[p["snapshot"].as_str().unwrap()])
                })
                .collect();
            prop_assert_eq!(&got, &model.listing(), "after op {} {:?}", n, op);
            // Every snapshot is held by exactly one point: dropped ones are forgotten.
            let snaps = json(&repo, &["snapshots", "--json"]);
            let mut held: Vec<usize> = got.values().copied().collect();
            held.sort();
            let mut stored: Vec<usize> = snaps.as_array().unwrap().iter().map(|s| ids[s["id"].as_str().unwrap()]).collect();
            stored.sort();
            prop_assert_eq!(held, stored);
        }
    }
}

#[test]
fn names_resolve_everywhere_and_rotate_explains_itself() {
    let t = tempfile::tempdir().unwrap();
    let repo = t.path().join("repo");
    init(&repo, "hourly=3,daily=3");
    let data = t.path().join("data");
    fs::create_dir(&data).unwrap();
    let inside = data.to_str().unwrap().trim_start_matches('/').to_string();
    for (i, time) in ["2026-11-20T08:00:00Z", "2026-11-20T12:00:00Z"]
        .iter()
        .enumerate()
    {
        fs::write(data.join("hosts"), format!("version {i}\n")).unwrap();
        backup(&repo, "web1", &data, &["--time", time]);
    }
    let cat = |name: &str| ok(&repo, &["cat", name]);
    assert_eq!(cat(&format!("hourly.0/web1/{inside}/hosts")), "version 1\n");
    assert_eq!(cat(&format!("hourly.1/web1:{inside}/hosts")), "version 0\n");
    assert_eq!(cat(&format!("latest/web1/{inside}/hosts")), "version 1\n");
    assert_eq!(
        cat(&format!("snapshots/web1/2026-11-20-080000/{inside}/hosts")),
        "version 0\n"
    );

    // Not full yet: says why and changes nothing.
    let out = ok(&repo, &["rotate", "daily"]);
    assert!(
        out.contains("nothing to rotate: hourly has 2 of 3 points"),
        "{out}"
    );
    fs::write(data.join("hosts"), "version 2\n").unwrap();
    backup(&repo, "web1", &data, &["--time", "2026-11-20T16:00:00Z"]);
    let out = ok(&repo, &["rotate", "daily"]);
    assert!(out.contains("hourly.2") && out.contains("daily.0"), "{out}");
    assert_eq!(cat(&format!("daily.0/web1/{inside}/hosts")), "version 0\n");
    assert_eq!(cat(&format!("hourly.1/web1/{inside}/hosts")), "version 1\n");

    // Restore through a point name: the named entry lands in the target.
    let target = t.path().join("r");
    ok(
        &repo,
        &[
            "restore",
            &format!("daily.0/web1/{inside}/hosts"),
            "--target",
            target.to_str().unwrap(),
        ],
    );
    assert_eq!(
        fs::read_to_string(target.join("hosts")).unwrap(),
        "version 0\n"
    );

    // Clear errors for bad names.
    for (bad, msg) in [
        ("daily.9/web1", "no such backup point"),
        ("daily.0", "daily.0/SOURCE"),
        ("latest/nobody", "no source named"),
        ("snapshots/web1/2000-01-01-000000", "no such snapshot"),
    ] {
        let out = run(&repo, &["ls", bad]);
        assert_eq!(out.status.code(), Some(1));
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(err.contains(msg), "{bad}: {err}");
    }
    let out = run(&repo, &["rotate", "hourly"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("lowest level"));
}

#[test]
fn diff_of_10k_files_reports_exactly_the_changes() {
    let t = tempfile::tempdir().unwrap();
    let repo = t.path().join("repo");
    init(&repo, "hourly=6");
    let data = t.path().join("data");
    for d in 0..100 {
        let dir = data.join(format!("d{d:02}"));
        fs::create_dir_all(&dir).unwrap();
        for f in 0..100 {
            fs::write(dir.join(format!("f{f:02}")), format!("file {d} {f}\n")).unwrap();
        }
    }
    let a = backup(&repo, "big", &data, &[]);
    let changed = ["d03/f07", "d50/f50", "d99/f00"];
    for c in changed {
        fs::write(data.join(c), "changed\n").unwrap();
    }
    let b = backup(&repo, "big", &data, &[]);
    let d = json(&repo, &["diff", &a, &b, "--json"]);
    let mut modified: Vec<String> = d["modified"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_str().unwrap().to_string())
        .collect();
    modified.sort();
    let expected: Vec<String> = changed
        .iter()
        .map(|c| format!("{}/{c}", data.display()))
        .collect();
    assert_eq!(modified, expected);
    for k in ["added", "removed", "metadata"] {
        assert_eq!(d[k].as_array().unwrap().len(), 0, "{k}: {}", d[k]);
    }
    // Subtrees and plain output: added, removed and metadata-only changes.
    fs::remove_file(data.join("d10/f10")).unwrap();
    fs::write(data.join("d10/new"), "n").unwrap();
    use std::os::unix::fs::PermissionsExt;
    fs::set_permissions(data.join("d20/f20"), fs::Permissions::from_mode(0o600)).unwrap();
    let c = backup(&repo, "big", &data, &[]);
    let inside = data.to_str().unwrap().trim_start_matches('/');
    let out = ok(
        &repo,
        &[
            "diff",
            &format!("{b}:{inside}/d10"),
            &format!("{c}:{inside}/d10"),
        ],
    );
    assert_eq!(
        out,
        "+ /new\n- /f10\n".replace("+ /new\n- /f10\n", "- /f10\n+ /new\n")
    );
    let out = ok(&repo, &["diff", &b, &c]);
    let lines: Vec<&str> = out.lines().collect();
    assert_eq!(
        lines,
        vec![
            format!("- {}/d10/f10", data.display()),
            format!("+ {}/d10/new", data.display()),
            format!("U {}/d20/f20", data.display()),
        ]
    );
}

/// Three generations: gen0 = A+B, gen1 = A+C, gen2 = C+D, 4 MiB random files each.
fn generations(t: &Path, repo: &Path) -> (Vec<String>, Vec<std::path::PathBuf>) {
    let data = t.join("data");
    fs::create_dir_all(&data).unwrap();
    let mut ids = Vec::new();
    let mut copies = Vec::new();
    for (g, files) in [["a", "b"], ["a", "c"], ["c", "d"]].iter().enumerate() {
        for e in fs::read_dir(&data).unwrap() {
            fs::remove_file(e.unwrap().path()).unwrap();
        }
        for f in files {
            fs::write(data.join(f), random_bytes(f.as_bytes()[0] as u64, 4 << 20)).unwrap();
        }
        ids.push(backup(repo, "src", &data, &[]));
        let copy = t.join(format!("copy{g}"));
        fs::create_dir_all(&copy).unwrap();
        for f in files {
            fs::copy(data.join(f), copy.join(f)).unwrap();
        }
        copies.push(copy);
    }
    (ids, copies)
}

fn restores_identical(t: &Path, repo: &Path, id: &str, copy: &Path) -> bool {
    let target = t.join(format!("restore-{id}-{}", std::process::id()));
    let _ = fs::remove_dir_all(&target);
    let data = t.join("data");
    let inside = data.to_str().unwrap().trim_start_matches('/');
    let out = run(
        repo,
        &[
            "restore",
            &format!("{id}:{inside}"),
            "--target",
            target.to_str().unwrap(),
        ],
    );
    let same = out.status.success() && diff_r(copy, &target.join("data"));
    let _ = fs::remove_dir_all(&target);
    same
}

#[test]
fn forget_and_prune_reclaim_only_dropped_data() {
    let t = tempfile::tempdir().unwrap();
    let repo = t.path().join("repo");
    init(&repo, "hourly=10");
    let (ids, copies) = generations(t.path(), &repo);
    let before = du(&repo);
    ok(&repo, &["forget", &ids[0]]);
    let after_forget = du(&repo);
    let dry = ok(&repo, &["prune", "--dry-run"]);
    assert!(dry.contains("would be freed"), "{dry}");
    assert_eq!(du(&repo), after_forget, "a dry run changes nothing");
    let out = ok(&repo, &["prune"]);
    eprintln!("{out}");
    let after = du(&repo);
    let freed = before - after;
    // Only B was unique to gen0 (A is still in gen1): about 4 MiB must go, not more.
    eprintln!("freed {freed} bytes");
    assert!(
        freed > (4 << 20) * 9 / 10 && freed < (4 << 20) * 11 / 10,
        "freed {freed}"
    );
    for g in 1..3 {
        assert!(
            restores_identical(t.path(), &repo, &ids[g], &copies[g]),
            "gen {g}"
        );
    }
    ok(&repo, &["check", "--read-data"]);
    let snaps = json(&repo, &["snapshots", "--json"]);
    assert_eq!(snaps.as_array().unwrap().len(), 2);
    // A second prune finds nothing to do.
    let again = ok(&repo, &["prune"]);
    assert!(again.contains("0 of"), "{again}");
}

#[test]
fn killed_prune_never_breaks_a_kept_snapshot() {
    let t = tempfile::tempdir().unwrap();
    let repo = t.path().join("repo");
    init(&repo, "hourly=100");
    let trials: usize = std::env::var("YESTER_PRUNE_KILL_TRIALS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(20);
    let data = t.path().join("data");
    fs::create_dir_all(&data).unwrap();
    let seed = SystemTime::now()
        .duration_since(SystemTime::UNIX_EPOCH)
        .unwrap()
        .as_nanos() as u64;
    let mut kept: Vec<(String, std::path::PathBuf)> = Vec::new();
    for trial in 0..trials {
        // A generation sharing one file with the previous one, then forget the oldest kept.
        fs::write(
            data.join(format!("g{trial}")),
            random_bytes(seed ^ trial as u64, 2 << 20),
        )
        .unwrap();
        if trial >= 2 {
            fs::remove_file(data.join(format!("g{}", trial - 2))).unwrap();
        }
        let id = backup(&repo, "src", &data, &[]);
        let copy = t.path().join(format!("copy{trial}"));
        fs::create_dir_all(&copy).unwrap();
        for e in fs::read_dir(&data).unwrap() {
            let e = e.unwrap();
            fs::copy(e.path(), copy.join(e.file_name())).unwrap();
        }
        kept.push((id, copy));
        if kept.len() > 2 {
            let (old, copy) = kept.remove(0);
            ok(&repo, &["forget", &old]);
            fs::remove_dir_all(copy).unwrap();
        }
        let delay =
            Duration::from_micros(random_bytes(seed ^ (trial as u64 + 99), 8)[0] as u64 * 150);
        let mut child = yester(&repo)
            .args(["prune", "--max-unused", "0"])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        std::thread::sleep(delay);
        let _ = child.kill();
        let status = child.wait().unwrap();
        eprintln!("trial {trial}: prune killed after {delay:?}: {status:?}");
        ok(&repo, &["check"]);
        for (id, copy) in &kept {
            assert!(
                restores_identical(t.path(), &repo, id, copy),
                "trial {trial}: {id}"
            );
        }
    }
    // A prune that runs to the end cleans up, and the data is all there.
    ok(&repo, &["prune", "--max-unused", "0"]);
    ok(&repo, &["check", "--read-data"]);
    for (id, copy) in &kept {
        assert!(restores_identical(t.path(), &repo, id, copy));
    }
}

#[test]
fn status_gives_nagios_codes_and_prometheus_metrics() {
    let t = tempfile::tempdir().unwrap();
    let repo = t.path().join("repo");
    init(&repo, "hourly=6");
    let data = t.path().join("data");
    fs::create_dir(&data).unwrap();
    fs::write(data.join("f"), "x").unwrap();
    let now = SystemTime::now();
    for (source, hours) in [("fresh", 1u64), ("late", 5), ("dead", 9)] {
        let when =
            humantime::format_rfc3339_seconds(now - Duration::from_secs(hours * 3600)).to_string();
        backup(&repo, source, &data, &["--time", &when]);
    }
    let code = |args: &[&str]| {
        let out = yester(&repo).args(args).output().unwrap();
        (
            out.status.code(),
            String::from_utf8_lossy(&out.stdout).into_owned(),
        )
    };
    let (c, out) = code(&["status", "--max-age", "4h", "--source", "fresh"]);
    assert_eq!(c, Some(0), "{out}");
    assert!(out.starts_with("YESTER OK"), "{out}");
    let (c, out) = code(&["status", "--max-age", "4h", "--source", "late"]);
    assert_eq!(c, Some(1), "{out}");
    assert!(
        out.starts_with("YESTER WARNING") && out.contains("late"),
        "{out}"
    );
    let (c, out) = code(&["status", "--max-age", "4h", "--source", "dead"]);
    assert_eq!(c, Some(2), "{out}");
    assert!(out.starts_with("YESTER CRITICAL"), "{out}");
    let (c, out) = code(&["status", "--max-age", "4h", "--source", "never"]);
    assert_eq!(c, Some(2), "{out}");
    assert!(out.contains("never has no backup"), "{out}");
    let (c, _) = code(&["status", "--max-age", "4h"]);
    assert_eq!(c, Some(2), "the worst source decides");
    let (c, _) = code(&["status", "--max-age", "10h"]);
    assert_eq!(c, Some(0));
    let (c, out) = code(&["status"]);
    assert_eq!(c, Some(0));
    assert!(
        out.contains("fresh") && out.contains("repository size"),
        "{out}"
    );

    let prom = t.path().join("yester.prom");
    code(&["status", "--prometheus", prom.to_str().unwrap()]);
    let text = fs::read_to_string(&prom).unwrap();
    assert!(
        text.contains("yester_last_backup_timestamp_seconds{source=\"late\"}"),
        "{text}"
    );
    assert!(text.contains("yester_points{source=\"dead\"} 1"), "{text}");
    assert!(text.contains("yester_repository_size_bytes "), "{text}");
    let stamp: i64 = text
        .lines()
        .find(|l| l.starts_with("yester_last_backup_timestamp_seconds{source=\"fresh\"}"))
        .unwrap()
        .rsplit(' ')
        .next()
        .unwrap()
        .parse()
        .unwrap();
    let expect = now
        .duration_since(SystemTime::UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64
        - 3600;
    assert!((stamp - expect).abs() <= 2, "{stamp} vs {expect}");
}

#[test]
fn prune_crashing_between_its_writes_loses_nothing() {
    for point in [
        "prune-after-repack",
        "prune-after-new-index",
        "prune-after-index-delete",
    ] {
        let t = tempfile::tempdir().unwrap();
        let repo = t.path().join("repo");
        init(&repo, "hourly=10");
        let (ids, copies) = generations(t.path(), &repo);
        ok(&repo, &["forget", &ids[0]]);
        // Crash at the same point twice: the second run meets the first one's leftovers,
        // including packs and index files that it writes again under the same names.
        for _ in 0..2 {
            let out = yester(&repo)
                .args(["prune", "--max-unused", "0"])
                .env("YESTER_FAILPOINT", point)
                .output()
                .unwrap();
            assert!(
                !out.status.success(),
                "{point}: prune was expected to crash"
            );
            ok(&repo, &["check", "--read-data"]);
            for g in 1..3 {
                assert!(
                    restores_identical(t.path(), &repo, &ids[g], &copies[g]),
                    "{point}: gen {g}"
                );
            }
        }
        ok(&repo, &["prune", "--max-unused", "0"]);
        ok(&repo, &["check", "--read-data"]);
        for g in 1..3 {
            assert!(
                restores_identical(t.path(), &repo, &ids[g], &copies[g]),
                "{point}: gen {g} after a full prune"
            );
        }
        let notes = run(&repo, &["check"]);
        assert!(
            !String::from_utf8_lossy(&notes.stderr).contains("not in the index"),
            "{point}: a complete prune leaves no unindexed packs"
        );
    }
}

//! Faults: `backup`, `rotate` and `prune` killed at random moments; power loss simulated from a
//! trace of every durable step; random damage to every kind of repository object.
//!
//! CI runs reduced counts; `YESTER_RELIABILITY_FULL=1` runs the full ones (docs/RELIABILITY.md).
//! Each test prints its random seed; `YESTER_FAULTS_SEED=N` repeats that run's choices.
//!
//! Longer than 600 lines on purpose: each file under `tests/` is a test binary of its own that
//! links the whole crate, so these related tests share one file rather than adding a binary
//! (and its link time) to every run of the suite.

// Tests unwrap freely: a panic is how a test fails (the crate denies it elsewhere).
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;
use common::{
    diff_trees, fuse_available, random_bytes, restore_spec, temp_dir, NfsServer, Unmount, Yester,
    YESTER_TIMEOUT,
};

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::ffi::{OsStr, OsString};
use std::fs;
use std::os::unix::process::ExitStatusExt;
use std::path::{Path, PathBuf};
use std::process::{Command, ExitStatus, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

fn full() -> bool {
    std::env::var_os("YESTER_RELIABILITY_FULL").is_some()
}

/// Trial count: `ci` by default, `full` with YESTER_RELIABILITY_FULL.
fn trials(ci: usize, full_n: usize) -> usize {
    if full() {
        full_n
    } else {
        ci
    }
}

/// xorshift64*, seeded from the clock unless YESTER_FAULTS_SEED is set.
struct Rng(u64);

impl Rng {
    fn new(test: &str) -> Rng {
        let seed = std::env::var("YESTER_FAULTS_SEED")
            .ok()
            .and_then(|s| s.parse().ok())
            .unwrap_or_else(|| {
                std::time::SystemTime::now()
                    .duration_since(std::time::UNIX_EPOCH)
                    .unwrap()
                    .as_nanos() as u64
            });
        eprintln!("{test}: seed {seed} (YESTER_FAULTS_SEED={seed} repeats this run)");
        Rng(seed | 1)
    }

    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }

    fn below(&mut self, n: u64) -> u64 {
        self.next() % n.max(1)
    }

    fn unit(&mut self) -> f64 {
        (self.next() >> 11) as f64 / (1u64 << 53) as f64
    }

    fn pick<'a, T>(&mut self, v: &'a [T]) -> &'a T {
        &v[self.below(v.len() as u64) as usize]
    }
}

// ---------------------------------------------------------------------------------------------
// Running yester

/// What a finished process printed (stdout as bytes: `cat` output is compared exactly).
struct Out {
    what: String,
    status: ExitStatus,
    stdout: Vec<u8>,
    stderr: String,
}

impl Out {
    fn text(&self) -> String {
        String::from_utf8_lossy(&self.stdout).into_owned()
    }

    fn code(&self) -> Option<i32> {
        self.status.code()
    }

    fn expect_ok(&self) -> &Self {
        assert!(
            self.status.success(),
            "`{}` failed ({:?})\n--- stdout:\n{}\n--- stderr:\n{}",
            self.what,
            self.status,
            self.text(),
            self.stderr
        );
        self
    }
}

/// `yester -r REPO` (the harness removes the environment of the tests' own run).
fn cmd(repo: &Path) -> Yester {
    Yester::at(repo)
}

/// Run to the end (killed after YESTER_TIMEOUT, so a hang fails instead of hanging); both
/// outputs are read as they come, so a big `cat` never blocks on a pipe. Fails on any panic
/// message.
fn run_cmd(mut c: Yester) -> Out {
    let what = c.cmdline();
    let out = c
        .output()
        .unwrap_or_else(|e| panic!("cannot run {what}: {e}"));
    finished(what, out)
}

/// As [`run_cmd`] for another program (a client reading through the servers).
fn run_other(c: Command) -> Out {
    let what = format!("{c:?}");
    finished(what, common::output_with_timeout(c, YESTER_TIMEOUT))
}

fn finished(what: String, out: std::process::Output) -> Out {
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    assert!(!stderr.contains("panicked"), "`{what}` panicked:\n{stderr}");
    Out {
        what,
        status: out.status,
        stdout: out.stdout,
        stderr,
    }
}

fn run<I, S>(repo: &Path, args: I) -> Out
where
    I: IntoIterator<Item = S>,
    S: AsRef<OsStr>,
{
    let mut c = cmd(repo);
    c.args(args);
    run_cmd(c)
}

fn ok<I, S>(repo: &Path, args: I) -> String
where
    I: IntoIterator<Item = S>,
    S: AsRef<OsStr>,
{
    run(repo, args).expect_ok().text()
}

fn init(repo: &Path, levels: &str) {
    init_with(repo, levels, &[]);
}

fn init_with(repo: &Path, levels: &str, extra: &[&str]) {
    let mut c = Yester::new();
    c.args(["init", "--chunk-avg", common::CHUNK_AVG, "--levels", levels])
        .args(extra)
        .arg(repo);
    run_cmd(c).expect_ok();
}

/// `backup`; returns the snapshot id.
fn backup(repo: &Path, source: &str, path: &Path) -> String {
    let out = ok(
        repo,
        [
            OsStr::new("backup"),
            OsStr::new("--source"),
            OsStr::new(source),
            path.as_os_str(),
        ],
    );
    let id = out.split_whitespace().nth(1).unwrap_or("").to_string();
    assert_eq!(id.len(), 64, "snapshot id in backup output: {out}");
    id
}

/// Snapshot id -> source, from `snapshots --json`.
fn snapshots(repo: &Path) -> BTreeMap<String, String> {
    let v: serde_json::Value = serde_json::from_str(&ok(repo, ["snapshots", "--json"])).unwrap();
    v.as_array()
        .unwrap()
        .iter()
        .map(|s| {
            (
                s["id"].as_str().unwrap().to_string(),
                s["source"].as_str().unwrap().to_string(),
            )
        })
        .collect()
}

/// The newest snapshot of each source (`snapshots --json` lists oldest first).
fn latest_per_source(repo: &Path) -> BTreeMap<String, String> {
    let v: serde_json::Value = serde_json::from_str(&ok(repo, ["snapshots", "--json"])).unwrap();
    let mut out = BTreeMap::new();
    for s in v.as_array().unwrap() {
        out.insert(
            s["source"].as_str().unwrap().to_string(),
            s["id"].as_str().unwrap().to_string(),
        );
    }
    out
}

/// Start `c` and SIGKILL it after `delay`; true if it was still running then.
fn kill_after(mut c: Yester, delay: Duration) -> bool {
    c.stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null());
    let mut child = c.spawn().unwrap();
    std::thread::sleep(delay);
    let running = child.try_wait().unwrap().is_none();
    let _ = child.kill();
    let st = child.wait().unwrap();
    running && st.signal() == Some(9)
}

/// Start `c` with its durable steps traced to `trace` and SIGKILL it as soon as it has done
/// `step` of them; true if it was still running then.
fn kill_at_step(mut c: Yester, trace: &Path, step: usize) -> bool {
    let _ = fs::remove_file(trace);
    c.env("YESTER_IO_TRACE", trace)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null());
    let mut child = c.spawn().unwrap();
    let start = Instant::now();
    loop {
        if child.try_wait().unwrap().is_some() {
            return false;
        }
        let done = fs::read(trace)
            .map(|b| b.iter().filter(|&&x| x == b'\n').count())
            .unwrap_or(0);
        if done >= step || start.elapsed() > YESTER_TIMEOUT {
            break;
        }
        std::thread::sleep(Duration::from_micros(200));
    }
    let _ = child.kill();
    child.wait().unwrap().signal() == Some(9)
}

/// How long `c` takes to finish (it must succeed): the window the kills are spread over.
fn time_it(c: Yester) -> Duration {
    let start = Instant::now();
    run_cmd(c).expect_ok();
    start.elapsed()
}

/// A random delay in [0, 1.2 × window): kills land anywhere in the run and a few just after.
fn random_delay(rng: &mut Rng, window: Duration) -> Duration {
    Duration::from_secs_f64(window.as_secs_f64() * 1.2 * rng.unit())
}

/// Runs get faster or slower with the machine's load: a kill that came after the end narrows
/// the window, one that landed mid-run widens it a little, so kills keep landing mid-run.
fn adapt(window: Duration, killed_mid_run: bool) -> Duration {
    window.mul_f64(if killed_mid_run { 1.05 } else { 0.8 })
}

fn copy_tree(src: &Path, dst: &Path) {
    let _ = fs::remove_dir_all(dst);
    let st = Command::new("cp")
        .arg("-a")
        .arg(src)
        .arg(dst)
        .status()
        .unwrap();
    assert!(st.success(), "cp -a {} {}", src.display(), dst.display());
}

/// Restore snapshot `id` of the backed-up path `src` and compare it with `copy` (`diff -r`).
fn assert_restores(repo: &Path, id: &str, src: &Path, copy: &Path, scratch: &Path, when: &str) {
    let target = scratch.join(format!("restore-{}", &id[..16]));
    let _ = fs::remove_dir_all(&target);
    let out = run(
        repo,
        [
            OsString::from("restore"),
            restore_spec(id, src),
            "--target".into(),
            target.clone().into_os_string(),
        ],
    );
    assert!(
        out.status.success(),
        "{when}: snapshot {id} does not restore:\n{}",
        out.stderr
    );
    diff_trees(copy, &target.join(src.file_name().unwrap()));
    fs::remove_dir_all(&target).unwrap();
}

fn is_hex(s: &str, len: usize) -> bool {
    s.len() == len && s.bytes().all(|b| b.is_ascii_hexdigit())
}

/// Everything in the repository that is not a finished object of the layout: temp files in
/// `tmp/`, and anything with a name the layout does not use.
fn leftovers(repo: &Path) -> Vec<String> {
    let mut out = Vec::new();
    let names = |d: &Path| -> Vec<String> {
        match fs::read_dir(d) {
            Ok(rd) => rd
                .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
                .collect(),
            Err(_) => Vec::new(),
        }
    };
    out.extend(
        names(&repo.join("tmp"))
            .into_iter()
            .map(|n| format!("tmp/{n}")),
    );
    for shard in names(&repo.join("packs")) {
        for n in names(&repo.join("packs").join(&shard)) {
            if !is_hex(&n, 64) || !n.starts_with(&shard) {
                out.push(format!("packs/{shard}/{n}"));
            }
        }
    }
    for dir in ["index", "snapshots"] {
        for n in names(&repo.join(dir)) {
            if !is_hex(&n, 64) {
                out.push(format!("{dir}/{n}"));
            }
        }
    }
    for n in names(&repo.join("locks")) {
        if !is_hex(&n, 32) {
            out.push(format!("locks/{n}"));
        }
    }
    out
}

fn lock_count(repo: &Path) -> usize {
    fs::read_dir(repo.join("locks")).unwrap().count()
}

/// Rewrite `count` of the files `f00…` in `data` with fresh random content.
fn rewrite_files(data: &Path, rng: &mut Rng, files: usize, count: usize, size: usize) {
    let mut chosen = BTreeSet::new();
    while chosen.len() < count.min(files) {
        chosen.insert(rng.below(files as u64) as usize);
    }
    for i in chosen {
        fs::write(
            data.join(format!("f{i:02}")),
            random_bytes(rng.next(), size),
        )
        .unwrap();
    }
}

// ---------------------------------------------------------------------------------------------
// Crashes: SIGKILL at random moments

/// A backup killed at a random moment: the repository checks clean with every byte read, every
/// earlier snapshot restores byte-identical, the next backup succeeds and removes the dead
/// writer's temp files.
#[test]
fn killed_backups_leave_a_consistent_repository() {
    let mut rng = Rng::new("killed_backups");
    let (_t, t) = temp_dir("yester-faults");
    let repo = t.join("repo");
    init(&repo, "hourly=1000");
    let data = t.join("data");
    fs::create_dir(&data).unwrap();
    const FILES: usize = 48;
    const SIZE: usize = 1 << 20;
    rewrite_files(&data, &mut rng, FILES, usize::MAX, SIZE);
    // Snapshot id -> copy of what it saved (several ids may share one copy).
    let mut kept: Vec<(String, PathBuf)> = Vec::new();
    let copy0 = t.join("copy-init");
    copy_tree(&data, &copy0);
    kept.push((backup(&repo, "src", &data), copy0));

    // One uninterrupted backup of the same shape as the trials gives the kill window.
    rewrite_files(&data, &mut rng, FILES, FILES / 2, SIZE);
    let mut c = cmd(&repo);
    c.args(["backup", "--source", "src"]).arg(&data);
    let mut window = time_it(c);
    let copy1 = t.join("copy-calibration");
    copy_tree(&data, &copy1);
    kept.push((
        snapshots(&repo)
            .keys()
            .find(|k| kept[0].0 != **k)
            .unwrap()
            .clone(),
        copy1,
    ));
    eprintln!(
        "uninterrupted backup of {} MiB new data: {window:?}",
        FILES / 2
    );

    let n = trials(10, 50);
    let (mut mid_run, mut completed_snapshots, mut temp_left) = (0, 0, 0);
    for trial in 0..n {
        rewrite_files(&data, &mut rng, FILES, FILES / 2, SIZE);
        let copy = t.join(format!("copy{trial}"));
        copy_tree(&data, &copy);
        let before = snapshots(&repo);
        let delay = random_delay(&mut rng, window);
        let mut c = cmd(&repo);
        c.args(["backup", "--source", "src"]).arg(&data);
        let killed = kill_after(c, delay);
        mid_run += usize::from(killed);
        window = adapt(window, killed);
        let when = format!("trial {trial} (killed after {delay:?}, mid-run: {killed})");

        let out = run(&repo, ["check", "--read-data"]);
        assert!(
            out.status.success(),
            "{when}: check:\n{}{}",
            out.text(),
            out.stderr
        );
        let after = snapshots(&repo);
        assert!(
            before.keys().all(|k| after.contains_key(k)),
            "{when}: a snapshot vanished"
        );
        let new: Vec<&String> = after.keys().filter(|k| !before.contains_key(*k)).collect();
        assert!(new.len() <= 1, "{when}: {new:?}");
        if let Some(id) = new.first() {
            // The killed backup got as far as its snapshot record: the record is complete.
            completed_snapshots += 1;
            kept.push(((*id).clone(), copy.clone()));
        }
        for (id, c) in &kept {
            assert_restores(&repo, id, &data, c, &t, &when);
        }
        temp_left += leftovers(&repo).len();

        // The next backup succeeds and cleans up after the dead one.
        let id = backup(&repo, "src", &data);
        assert_restores(&repo, &id, &data, &copy, &t, &when);
        kept.push((id, copy.clone()));
        assert_eq!(
            leftovers(&repo),
            Vec::<String>::new(),
            "{when}: temp files stay"
        );
        assert_eq!(lock_count(&repo), 0, "{when}: the dead backup's lock stays");
        // Keep the repository small: forget all but the last three snapshots, then prune.
        while kept.len() > 3 {
            let (old, c) = kept.remove(0);
            ok(&repo, ["forget", &old]);
            if kept.iter().all(|(_, k)| *k != c) {
                fs::remove_dir_all(c).unwrap();
            }
        }
        ok(&repo, ["prune"]);
        eprintln!("{when}: ok");
    }
    ok(&repo, ["check", "--read-data"]);
    eprintln!(
        "killed backups: {n} trials, {mid_run} killed mid-run, {completed_snapshots} got their \
         snapshot out before the kill, {temp_left} temp files left by kills (all removed by the \
         next backup)"
    );
    assert!(
        mid_run > 0,
        "no kill landed while the backup ran: the kill window is wrong"
    );
}

/// The newest generation of a source's point catalogue (docs/FORMAT.md, "Point catalogues":
/// `catalogs/<source>/<seq>-<hash>`, the sequence number zero-padded, so the last name in
/// order; the legacy `points/<source>` when there is none).
fn newest_catalog(repo: &Path, source: &str) -> PathBuf {
    let dir = repo.join("catalogs").join(source);
    let mut names: Vec<PathBuf> = match fs::read_dir(&dir) {
        Ok(rd) => rd.map(|e| e.unwrap().path()).collect(),
        Err(_) => Vec::new(),
    };
    names.sort();
    names
        .pop()
        .unwrap_or_else(|| repo.join("points").join(source))
}

/// A source's point catalogue: level -> snapshot ids, newest first.
type Catalog = BTreeMap<String, Vec<String>>;

fn catalog(repo: &Path, source: &str) -> Catalog {
    let v: serde_json::Value =
        serde_json::from_slice(&fs::read(newest_catalog(repo, source)).unwrap()).unwrap();
    v["levels"]
        .as_object()
        .unwrap()
        .iter()
        .map(|(k, ids)| {
            (
                k.clone(),
                ids.as_array()
                    .unwrap()
                    .iter()
                    .map(|i| i.as_str().unwrap().to_string())
                    .collect(),
            )
        })
        .collect()
}

/// `rotate daily` with hourly=2, daily=2 (rsnapshot's rule): if hourly is full, its oldest
/// becomes daily.0 and daily's ids past 2 are dropped. Returns the new catalogue and the drops.
fn rotated(c: &Catalog) -> (Catalog, Vec<String>) {
    let mut c = c.clone();
    let hourly = c.entry("hourly".into()).or_default();
    if hourly.len() < 2 {
        return (c, Vec::new());
    }
    let oldest = hourly.pop().unwrap();
    let daily = c.entry("daily".into()).or_default();
    daily.insert(0, oldest);
    let dropped = daily.split_off(daily.len().min(2));
    (c, dropped)
}

/// A rotation of many sources killed at a random moment: every source's catalogue is either
/// the old or the rotated one, no point names a missing snapshot, only dropped snapshots
/// vanish, every other snapshot restores byte-identical, and the next rotation completes the
/// job exactly and removes the dead writer's temp files.
#[test]
fn killed_rotations_never_lose_or_break_a_point() {
    let mut rng = Rng::new("killed_rotations");
    let (_t, t) = temp_dir("yester-faults");
    let repo = t.join("repo");
    init(&repo, "hourly=2,daily=2");
    const SOURCES: usize = 24;
    let names: Vec<String> = (0..SOURCES).map(|i| format!("s{i:02}")).collect();
    let data = t.join("data");
    let mut conf = String::new();
    for s in &names {
        fs::create_dir_all(data.join(s)).unwrap();
        conf.push_str(&format!(
            "[[source]]\nname = \"{s}\"\npaths = [\"{}\"]\n",
            data.join(s).display()
        ));
    }
    let conf_path = t.join("yester.toml");
    fs::write(&conf_path, conf).unwrap();
    // Snapshot id -> copy of the source it saved.
    let mut copies: HashMap<String, PathBuf> = HashMap::new();
    let mut round = 0;
    let mut backup_all = |rng: &mut Rng, copies: &mut HashMap<String, PathBuf>| {
        for s in &names {
            fs::write(data.join(s).join("f"), random_bytes(rng.next(), 20_000)).unwrap();
            copy_tree(&data.join(s), &t.join(format!("copy-{round}-{s}")));
        }
        let before = snapshots(&repo);
        let mut c = cmd(&repo);
        c.arg("--config").arg(&conf_path).args(["run", "hourly"]);
        run_cmd(c).expect_ok();
        for (id, s) in snapshots(&repo) {
            if !before.contains_key(&id) {
                copies.insert(id, t.join(format!("copy-{round}-{s}")));
            }
        }
        round += 1;
    };
    backup_all(&mut rng, &mut copies);
    backup_all(&mut rng, &mut copies);
    let rotate = || {
        let mut c = cmd(&repo);
        c.args(["rotate", "daily"]);
        c
    };
    // A rotation is quick (catalogues and locks of a few hundred bytes), so its run time is
    // mostly the machine's load; kills are spread over its durable steps instead: the trace
    // of an uninterrupted run gives their number, and each kill waits for a random one.
    let trace = t.join("rotate-trace");
    let mut c = rotate();
    c.env("YESTER_IO_TRACE", &trace);
    let window = time_it(c);
    let steps = fs::read_to_string(&trace).unwrap().lines().count();
    eprintln!("uninterrupted rotation of {SOURCES} sources: {window:?}, {steps} durable steps");

    let n = trials(10, 50);
    let (mut mid_run, mut rotated_by_kill, mut temp_left) = (0, 0, 0);
    for trial in 0..n {
        backup_all(&mut rng, &mut copies);
        let old: BTreeMap<&String, Catalog> =
            names.iter().map(|s| (s, catalog(&repo, s))).collect();
        let before = snapshots(&repo);
        let step = 1 + rng.below(steps as u64) as usize;
        let killed = kill_at_step(rotate(), &trace, step);
        mid_run += usize::from(killed);
        let when =
            format!("trial {trial} (killed at durable step {step} of {steps}, mid-run: {killed})");

        let out = run(&repo, ["check", "--read-data"]);
        assert!(
            out.status.success(),
            "{when}: check:\n{}{}",
            out.text(),
            out.stderr
        );
        let after = snapshots(&repo);
        let mut may_vanish = BTreeSet::new();
        for s in &names {
            let now = catalog(&repo, s);
            let (new, dropped) = rotated(&old[s]);
            if now == new {
                rotated_by_kill += 1;
                may_vanish.extend(dropped);
            } else {
                assert_eq!(
                    now, old[s],
                    "{when}: {s}: neither the old nor the rotated points"
                );
            }
            for id in now.values().flatten() {
                assert!(
                    after.contains_key(id),
                    "{when}: {s}: a point names missing {id}"
                );
            }
        }
        for id in before.keys() {
            if after.contains_key(id) {
                let src = &before[id];
                assert_restores(&repo, id, &data.join(src), &copies[id], &t, &when);
            } else {
                assert!(may_vanish.contains(id), "{when}: snapshot {id} vanished");
            }
        }
        temp_left += leftovers(&repo).len();

        // The next rotation finishes the job: every source rotated exactly once.
        run_cmd(rotate()).expect_ok();
        for s in &names {
            assert_eq!(
                catalog(&repo, s),
                rotated(&old[s]).0,
                "{when}: {s} after the next run"
            );
        }
        assert_eq!(
            leftovers(&repo),
            Vec::<String>::new(),
            "{when}: temp files stay"
        );
        assert_eq!(lock_count(&repo), 0, "{when}: locks stay");
        // Snapshots the kill left unnamed (after the catalogue, before the record deletion)
        // are forgotten, so they do not pile up.
        let named: BTreeSet<String> = names
            .iter()
            .flat_map(|s| catalog(&repo, s).into_values().flatten())
            .collect();
        for id in snapshots(&repo).keys().filter(|id| !named.contains(*id)) {
            ok(&repo, ["forget", id]);
        }
        eprintln!("{when}: ok");
    }
    ok(&repo, ["prune"]);
    ok(&repo, ["check", "--read-data"]);
    eprintln!(
        "killed rotations: {n} trials, {mid_run} killed mid-run, {rotated_by_kill} of {} source \
         rotations done before the kill, {temp_left} temp files left by kills (all removed by \
         the next rotation)",
        n * SOURCES
    );
    assert!(
        mid_run > 0,
        "no kill landed while rotate ran: the kill window is wrong"
    );
}

/// Regression: a killed rotation's temp files stayed until the next backup or prune, so
/// rotations alone let them pile up; every catalogue edit now removes dead writers' temp files.
#[test]
fn rotation_and_forget_remove_dead_writers_temp_files() {
    let (_t, t) = temp_dir("yester-faults");
    let repo = t.join("repo");
    init(&repo, "hourly=1,daily=2");
    let data = t.join("data");
    fs::create_dir(&data).unwrap();
    fs::write(data.join("f"), b"x").unwrap();
    let first = backup(&repo, "s", &data);
    let host = nix::unistd::gethostname().unwrap().into_string().unwrap();
    let mut dead = Command::new("true").spawn().unwrap();
    let pid = dead.id();
    dead.wait().unwrap();
    for (i, args) in [vec!["rotate", "daily"], vec!["forget", first.as_str()]]
        .iter()
        .enumerate()
    {
        let leftover = repo.join("tmp").join(format!("{host}.{pid}.{i:016x}"));
        fs::write(&leftover, b"half a catalogue").unwrap();
        ok(&repo, args);
        assert!(
            !leftover.exists(),
            "`{}` left a dead writer's temp file",
            args[0]
        );
    }
}

/// A prune killed at a random moment: the repository checks clean with every byte read, every
/// kept snapshot restores byte-identical, and the next prune completes, leaves no unindexed
/// pack and removes the dead writer's temp files.
#[test]
fn killed_prunes_never_break_a_kept_snapshot() {
    let mut rng = Rng::new("killed_prunes");
    let (_t, t) = temp_dir("yester-faults");
    let repo = t.join("repo");
    init(&repo, "hourly=1000");
    let data = t.join("data");
    fs::create_dir(&data).unwrap();
    const FILES: usize = 64;
    const SIZE: usize = 1 << 20;
    rewrite_files(&data, &mut rng, FILES, usize::MAX, SIZE);
    let mut kept: Vec<(String, PathBuf)> = Vec::new();
    let generation = |rng: &mut Rng, kept: &mut Vec<(String, PathBuf)>, g: usize| {
        rewrite_files(&data, rng, FILES, FILES / 2, SIZE);
        let copy = t.join(format!("copy{g}"));
        copy_tree(&data, &copy);
        kept.push((backup(&repo, "src", &data), copy));
        while kept.len() > 2 {
            let (old, c) = kept.remove(0);
            ok(&repo, ["forget", &old]);
            fs::remove_dir_all(c).unwrap();
        }
    };
    let prune = || {
        let mut c = cmd(&repo);
        c.args(["prune", "--max-unused", "0"]);
        c
    };
    for g in 0..3 {
        generation(&mut rng, &mut kept, g);
    }
    let mut window = time_it(prune());
    eprintln!("uninterrupted prune: {window:?}");

    let n = trials(10, 50);
    let (mut mid_run, mut temp_left) = (0, 0);
    for trial in 0..n {
        generation(&mut rng, &mut kept, trial + 3);
        let delay = random_delay(&mut rng, window);
        let killed = kill_after(prune(), delay);
        mid_run += usize::from(killed);
        window = adapt(window, killed);
        let when = format!("trial {trial} (killed after {delay:?}, mid-run: {killed})");
        let out = run(&repo, ["check", "--read-data"]);
        assert!(
            out.status.success(),
            "{when}: check:\n{}{}",
            out.text(),
            out.stderr
        );
        for (id, c) in &kept {
            assert_restores(&repo, id, &data, c, &t, &when);
        }
        temp_left += leftovers(&repo).len();

        run_cmd(prune()).expect_ok();
        let out = run(&repo, ["check"]);
        out.expect_ok();
        assert!(
            !format!("{}{}", out.text(), out.stderr).contains("not in the index"),
            "{when}: a complete prune leaves no unindexed pack"
        );
        for (id, c) in &kept {
            assert_restores(&repo, id, &data, c, &t, &when);
        }
        assert_eq!(
            leftovers(&repo),
            Vec::<String>::new(),
            "{when}: temp files stay"
        );
        assert_eq!(lock_count(&repo), 0, "{when}: locks stay");
        eprintln!("{when}: ok");
    }
    ok(&repo, ["check", "--read-data"]);
    eprintln!(
        "killed prunes: {n} trials, {mid_run} killed mid-run, {temp_left} temp files left by \
         kills (all removed by the next prune)"
    );
    assert!(
        mid_run > 0,
        "no kill landed while prune ran: the kill window is wrong"
    );
}

// ---------------------------------------------------------------------------------------------
// Power loss: rebuild the repository as a power cut after each durable step could leave it

/// What a name in the repository holds: a file of the untraced starting state, or the inode
/// of a temp file (named by the temp file; its content is kept in `TRACE.files/`).
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
enum Content {
    Base(String),
    Inode(String),
}

/// One directory entry change, durable once its directory is fsynced.
#[derive(Clone, Debug)]
enum Change {
    Put(String, Content),
    Remove(String),
    Mkdir(String),
}

fn parent(p: &str) -> String {
    p.rsplit_once('/')
        .map(|(d, _)| d.to_string())
        .unwrap_or_default()
}

fn basename(p: &str) -> String {
    p.rsplit_once('/')
        .map(|(_, n)| n.to_string())
        .unwrap_or(p.to_string())
}

/// A repository state: names -> content, and the directories.
#[derive(Clone, Default, PartialEq, Eq)]
struct FsState {
    files: BTreeMap<String, Content>,
    dirs: BTreeSet<String>,
}

impl FsState {
    fn apply(&mut self, ch: &Change) {
        match ch {
            Change::Put(p, c) => {
                self.files.insert(p.clone(), c.clone());
            }
            Change::Remove(p) => {
                self.files.remove(p);
            }
            Change::Mkdir(d) => {
                self.dirs.insert(d.clone());
            }
        }
    }

    /// Without temp files and locks (they matter to neither check nor restore).
    fn essential(&self) -> Vec<(String, Content)> {
        self.files
            .iter()
            .filter(|(p, _)| !p.starts_with("tmp/") && !p.starts_with("locks/"))
            .filter(|(p, _)| self.dirs.contains(&parent(p)) || parent(p).is_empty())
            .map(|(p, c)| (p.clone(), c.clone()))
            .collect()
    }
}

/// Replays a trace: the state the processes saw (`volatile`) and what a power cut keeps for
/// sure (`durable`: only changes whose directory was fsynced afterwards), with the changes
/// still pending per directory, and which temp files' data was fsynced.
#[derive(Clone, Default)]
struct Replay {
    volatile: FsState,
    durable: FsState,
    pending: BTreeMap<String, Vec<Change>>,
    synced: BTreeSet<String>,
}

impl Replay {
    fn step(&mut self, line: &str) {
        let parts: Vec<&str> = line.split(' ').collect();
        let (op, a) = (parts[0], parts.get(1).copied().unwrap_or(""));
        let b = parts.get(2).copied().unwrap_or("");
        let change = |s: &mut Self, dir: String, ch: Change| {
            s.volatile.apply(&ch);
            s.pending.entry(dir).or_default().push(ch);
        };
        match op {
            "create" => change(
                self,
                parent(a),
                Change::Put(a.into(), Content::Inode(basename(a))),
            ),
            "synced" => {
                self.synced.insert(basename(a));
            }
            "rename" => {
                let c = self.volatile.files[a].clone();
                change(self, parent(a), Change::Remove(a.into()));
                change(self, parent(b), Change::Put(b.into(), c));
            }
            "link" => {
                let c = self.volatile.files[a].clone();
                change(self, parent(b), Change::Put(b.into(), c));
            }
            "unlink" | "delete" => change(self, parent(a), Change::Remove(a.into())),
            "mkdir" => change(self, parent(a), Change::Mkdir(a.into())),
            "fsyncdir" => {
                for ch in self.pending.remove(a).unwrap_or_default() {
                    self.durable.apply(&ch);
                }
            }
            _ => panic!("unknown trace line {line:?}"),
        }
    }

    /// The worst cases of a power cut now: for every subset of the directories with pending
    /// changes, those directories' changes survive and the others' are lost (temp files and
    /// locks only in the all-survive case). Unsynced file data is cut to half or nothing.
    fn power_cut_states(&self) -> Vec<FsState> {
        let dirs: Vec<&String> = self
            .pending
            .keys()
            .filter(|d| !d.starts_with("tmp") && !d.starts_with("locks"))
            .collect();
        let mut out = vec![self.volatile.clone()];
        if dirs.len() > 4 {
            out.push(self.durable.clone());
            return out;
        }
        for mask in 0..(1u32 << dirs.len()) {
            let mut s = self.durable.clone();
            for (i, d) in dirs.iter().enumerate() {
                if mask & (1 << i) != 0 {
                    for ch in &self.pending[*d] {
                        s.apply(ch);
                    }
                }
            }
            out.push(s);
        }
        out
    }
}

/// Build `state` at `dst` from the starting copy and the trace's kept contents.
fn materialize(state: &FsState, synced: &BTreeSet<String>, base: &Path, store: &Path, dst: &Path) {
    let _ = fs::remove_dir_all(dst);
    fs::create_dir_all(dst).unwrap();
    for d in &state.dirs {
        fs::create_dir_all(dst.join(d)).unwrap();
    }
    for (p, c) in &state.files {
        if !parent(p).is_empty() && !state.dirs.contains(&parent(p)) {
            continue; // its directory did not survive
        }
        let to = dst.join(p);
        match c {
            Content::Base(b) => fs::hard_link(base.join(b), &to).unwrap(),
            // Objects are never written in place, so sharing the inode is safe.
            Content::Inode(n) if synced.contains(n) => fs::hard_link(store.join(n), &to).unwrap(),
            Content::Inode(n) => {
                let full = fs::read(store.join(n)).unwrap_or_default();
                fs::write(&to, &full[..full.len() / 2]).unwrap();
            }
        }
    }
}

/// The starting state: every file and directory below `base`.
fn scan(base: &Path) -> FsState {
    let mut s = FsState::default();
    common::walk(base, &mut |rel, _full, m| {
        let rel = String::from_utf8_lossy(rel).into_owned();
        if rel == "." {
            return;
        }
        if m.is_dir() {
            s.dirs.insert(rel);
        } else {
            s.files.insert(rel.clone(), Content::Base(rel));
        }
    });
    s
}

/// Checks one power-cut state; returns what is wrong with it.
fn judge_state(
    dir: &Path,
    known: &HashMap<String, (PathBuf, PathBuf)>,
    scratch: &Path,
    next_run: Option<&Path>,
    when: &str,
) -> Result<(), String> {
    let out = run(dir, ["check", "--read-data"]);
    if !out.status.success() {
        return Err(format!("check --read-data:\n{}{}", out.text(), out.stderr));
    }
    let snaps = snapshots(dir);
    for id in snaps.keys() {
        let Some((src, copy)) = known.get(id) else {
            return Err(format!("unknown snapshot {id}"));
        };
        assert_restores(dir, id, src, copy, scratch, when);
    }
    let sources: Vec<String> = fs::read_dir(dir.join("catalogs"))
        .map(|rd| {
            rd.map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
                .collect()
        })
        .unwrap_or_default();
    for source in sources {
        let p = newest_catalog(dir, &source);
        let v: serde_json::Value = serde_json::from_slice(&fs::read(&p).unwrap())
            .map_err(|e| format!("{}: {e}", p.display()))?;
        for ids in v["levels"].as_object().unwrap().values() {
            for id in ids.as_array().unwrap() {
                let id = id.as_str().unwrap();
                if !snaps.contains_key(id) {
                    return Err(format!("{} names missing snapshot {id}", p.display()));
                }
            }
        }
    }
    if let Some(src) = next_run {
        let mut c = cmd(dir);
        c.args(["backup", "--source", "after-cut"]).arg(src);
        let out = run_cmd(c);
        if !out.status.success() {
            return Err(format!("the next backup failed:\n{}", out.stderr));
        }
        let out = run(dir, ["check"]);
        if !out.status.success() {
            return Err(format!("check after the next backup:\n{}", out.text()));
        }
    }
    Ok(())
}

/// Every distinct power-cut state of `lines` (applied to `start`), with the step it follows.
fn cut_states(start: &FsState, lines: &[String]) -> Vec<(usize, FsState, BTreeSet<String>)> {
    let mut r = Replay {
        volatile: start.clone(),
        durable: start.clone(),
        ..Replay::default()
    };
    let mut seen = BTreeSet::new();
    let mut out = Vec::new();
    for k in 0..=lines.len() {
        if k > 0 {
            r.step(&lines[k - 1]);
        }
        for s in r.power_cut_states() {
            let mut key = s.essential();
            key.retain(|(_, c)| !matches!(c, Content::Base(_)));
            // Unsynced data cut in half differs from the complete object.
            let key: Vec<_> = key
                .into_iter()
                .map(|(p, c)| {
                    let full = matches!(&c, Content::Inode(n) if r.synced.contains(n));
                    (p, c, full)
                })
                .collect();
            if seen.insert(key) {
                out.push((k, s, r.synced.clone()));
            }
        }
    }
    out
}

/// Power loss: a trace of every durable step of backups, a rotation, a forget and a prune;
/// for every step, every way a power cut could leave the repository (each directory's
/// un-fsynced changes kept or lost, unsynced data cut short) must check clean with every byte
/// read, restore each snapshot it holds byte-identical, name no missing snapshot from a point,
/// and take the next backup. Every command's effects are durable when it returns. Two
/// deliberately broken write orders prove the simulation catches what it is meant to.
#[test]
fn power_loss_at_any_step_never_breaks_a_snapshot() {
    let mut rng = Rng::new("power_loss");
    let (_t, t) = temp_dir("yester-faults");
    let repo = t.join("repo");
    // Small packs, so a backup writes several and a cut can fall between them.
    init_with(&repo, "hourly=2,daily=2", &["--pack-size", "256KiB"]);
    let base = t.join("base");
    copy_tree(&repo, &base);
    let trace = t.join("trace");
    let store = t.join("trace.files");

    let data = t.join("data");
    for s in ["a", "b"] {
        fs::create_dir_all(data.join(s).join("sub")).unwrap();
    }
    let mut known: HashMap<String, (PathBuf, PathBuf)> = HashMap::new();
    let mut boundaries = Vec::new();
    let mut gen = 0;
    let traced = |args: &[&str]| -> Out {
        let mut c = cmd(&repo);
        c.env("YESTER_IO_TRACE", &trace).args(args);
        let out = run_cmd(c);
        out.expect_ok();
        out
    };
    let lines_now = || -> usize {
        fs::read_to_string(&trace)
            .map(|s| s.lines().count())
            .unwrap_or(0)
    };
    let mut traced_backup =
        |s: &str, rng: &mut Rng, known: &mut HashMap<String, (PathBuf, PathBuf)>| {
            let d = data.join(s);
            fs::write(d.join("big"), random_bytes(rng.next(), 500_000)).unwrap();
            fs::write(d.join("sub/mid"), random_bytes(rng.next(), 200_000)).unwrap();
            fs::write(
                d.join("sub/text"),
                format!("generation {gen}\n").repeat(500),
            )
            .unwrap();
            let copy = t.join(format!("copy{gen}"));
            copy_tree(&d, &copy);
            gen += 1;
            let out = traced(&["backup", "--source", s, d.to_str().unwrap()]);
            let id = out.text().split_whitespace().nth(1).unwrap().to_string();
            known.insert(id.clone(), (d, copy));
            id
        };
    let a1 = traced_backup("a", &mut rng, &mut known);
    boundaries.push(lines_now());
    let b1 = traced_backup("b", &mut rng, &mut known);
    boundaries.push(lines_now());
    traced_backup("a", &mut rng, &mut known);
    boundaries.push(lines_now());
    traced_backup("a", &mut rng, &mut known); // hourly=2: drops a1's record
    boundaries.push(lines_now());
    traced(&["rotate", "daily"]);
    boundaries.push(lines_now());
    traced(&["forget", &b1]);
    boundaries.push(lines_now());
    traced(&["prune", "--max-unused", "0"]);
    boundaries.push(lines_now());
    traced_backup("a", &mut rng, &mut known);
    boundaries.push(lines_now());
    assert!(
        !snapshots(&repo).contains_key(&a1),
        "the scenario drops a snapshot"
    );

    let lines: Vec<String> = fs::read_to_string(&trace)
        .unwrap()
        .lines()
        .map(String::from)
        .collect();
    for op in [
        "create", "synced", "rename", "link", "unlink", "delete", "mkdir", "fsyncdir",
    ] {
        assert!(
            lines.iter().any(|l| l.starts_with(op)),
            "the trace has no {op} step"
        );
    }
    let start = scan(&base);

    // Every command's effects are durable when it returns.
    let mut r = Replay {
        volatile: start.clone(),
        durable: start.clone(),
        ..Replay::default()
    };
    for (k, l) in lines.iter().enumerate() {
        r.step(l);
        if boundaries.contains(&(k + 1)) {
            assert!(
                r.volatile.essential() == r.durable.essential(),
                "after step {} (a command's end) not everything is durable",
                k + 1
            );
        }
    }

    // Every distinct power-cut state.
    let states = cut_states(&start, &lines);
    let next_src = t.join("next");
    fs::create_dir_all(&next_src).unwrap();
    fs::write(next_src.join("f"), random_bytes(rng.next(), 100_000)).unwrap();
    let every = if full() { 1 } else { 4 };
    let cut = t.join("cut");
    let (mut next_runs, mut failures) = (0, Vec::new());
    for (i, (k, s, synced)) in states.iter().enumerate() {
        materialize(s, synced, &base, &store, &cut);
        let next = (i % every == 0).then_some(next_src.as_path());
        next_runs += usize::from(next.is_some());
        let when = format!(
            "power cut after step {k} ({:?})",
            lines.get(k.wrapping_sub(1))
        );
        if let Err(e) = judge_state(&cut, &known, &t, next, &when) {
            failures.push(format!("{when}: {e}"));
        }
    }
    eprintln!(
        "power loss: {} traced steps, {} distinct power-cut states checked ({next_runs} with a \
         next backup), {} failures",
        lines.len(),
        states.len(),
        failures.len()
    );
    assert!(failures.is_empty(), "{}", failures.join("\n\n"));

    // The simulation is not vacuous: broken write orders are caught.
    let broken_orders: Vec<(&str, Vec<String>)> = vec![
        (
            "pack folders never fsynced",
            lines
                .iter()
                .filter(|l| !(l.starts_with("fsyncdir packs/")))
                .cloned()
                .collect(),
        ),
        ("the first snapshot record before its data", {
            let snap = lines
                .iter()
                .position(|l| l.starts_with("rename") && l.contains(" snapshots/"))
                .unwrap();
            let first_pack = lines
                .iter()
                .position(|l| l.starts_with("rename") && l.contains(" packs/"))
                .unwrap();
            let mut v = lines.clone();
            // Move the record's create/synced/rename/fsyncdir before the first pack's rename.
            let moved: Vec<String> = v.drain(snap - 2..=snap + 1).collect();
            for (j, l) in moved.into_iter().enumerate() {
                v.insert(first_pack + j, l);
            }
            v
        }),
    ];
    for (what, lines) in broken_orders {
        let caught = cut_states(&start, &lines).iter().any(|(_, s, synced)| {
            materialize(s, synced, &base, &store, &cut);
            !run(&cut, ["check"]).status.success()
        });
        assert!(
            caught,
            "the simulation does not catch a broken order: {what}"
        );
    }
}

// ---------------------------------------------------------------------------------------------
// Corruption: flipped, zeroed and truncated bytes in every kind of object

use yester::engine::format::pack::BlobKind;
use yester::engine::format::tree::NodeKind;
use yester::engine::LocalDir;
use yester::engine::{BlobId, BlobReader, Repository};

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Damage {
    Flip,
    Zero,
    Truncate,
}

const DAMAGES: [Damage; 3] = [Damage::Flip, Damage::Zero, Damage::Truncate];

/// Damage `file` somewhere in [start, end); returns the byte range that changed (for a
/// truncation, from the cut to the old end).
fn damage(file: &Path, start: u64, end: u64, how: Damage, rng: &mut Rng) -> (u64, u64) {
    let mut b = fs::read(file).unwrap();
    assert!(
        start < end && end <= b.len() as u64,
        "{start}..{end} of {}",
        b.len()
    );
    let p = (start + rng.below(end - start)) as usize;
    let range = match how {
        Damage::Flip => {
            b[p] ^= 1 << rng.below(8);
            (p as u64, p as u64 + 1)
        }
        Damage::Zero => {
            // A run that holds a non-zero byte, so zeroing it changes something.
            let mut q = p;
            while b[q] == 0 {
                q = (start + rng.below(end - start)) as usize;
            }
            let len = 1 + rng.below((end as usize - q).min(64) as u64) as usize;
            b[q..q + len].fill(0);
            (q as u64, (q + len) as u64)
        }
        Damage::Truncate => {
            let old = b.len() as u64;
            b.truncate(p);
            (p as u64, old)
        }
    };
    fs::write(file, &b).unwrap();
    range
}

struct FileInfo {
    snap: String,
    /// Path inside the snapshot, without the leading `/`.
    rel: String,
    /// Its chunks, and the trees of the directories above it (root first).
    chunks: Vec<BlobId>,
    trees: Vec<BlobId>,
    content: Vec<u8>,
}

struct DirInfo {
    snap: String,
    rel: String,
    tree: BlobId,
    /// Trees above it.
    above: Vec<BlobId>,
}

struct BlobAt {
    pack: String,
    start: u64,
    end: u64,
    tree: bool,
}

/// What the undamaged repository holds, decoded once: which file and directory uses which
/// blob, and where each blob lies.
struct Oracle {
    files: Vec<FileInfo>,
    dirs: Vec<DirInfo>,
    blobs: HashMap<BlobId, BlobAt>,
    /// Snapshot id -> source.
    snaps: BTreeMap<String, String>,
}

impl Oracle {
    fn build(repo: &Path, copies: &HashMap<String, (PathBuf, PathBuf)>) -> Oracle {
        let r = Repository::open(Arc::new(LocalDir::new(repo))).unwrap();
        let reader = r.reader().unwrap();
        let (snaps, broken) = yester::engine::format::snapshot::load_all(r.backend()).unwrap();
        assert!(broken.is_empty());
        let mut o = Oracle {
            files: Vec::new(),
            dirs: Vec::new(),
            blobs: HashMap::new(),
            snaps: BTreeMap::new(),
        };
        for s in &snaps {
            let id = s.id.to_hex();
            o.snaps.insert(id.clone(), s.snapshot.source.clone());
            let (src, copy) = &copies[&id];
            o.walk(&reader, &id, s.snapshot.tree, "", &[], src, copy);
        }
        let ids: Vec<BlobId> = o
            .files
            .iter()
            .flat_map(|f| f.chunks.clone())
            .chain(o.dirs.iter().map(|d| d.tree))
            .collect();
        for id in ids {
            let loc = reader.index.get(&id).unwrap();
            let start = u64::from(loc.entry.offset);
            o.blobs.insert(
                id,
                BlobAt {
                    pack: loc.pack.to_hex(),
                    start,
                    end: start + u64::from(loc.entry.stored_len),
                    tree: loc.entry.kind == BlobKind::Tree,
                },
            );
        }
        o
    }

    #[allow(clippy::too_many_arguments)]
    fn walk(
        &mut self,
        reader: &BlobReader,
        snap: &str,
        tree: BlobId,
        rel: &str,
        above: &[BlobId],
        src: &Path,
        copy: &Path,
    ) {
        self.dirs.push(DirInfo {
            snap: snap.into(),
            rel: rel.into(),
            tree,
            above: above.to_vec(),
        });
        let mut trees = above.to_vec();
        trees.push(tree);
        for e in reader.read_tree(&tree).unwrap().entries {
            let p = if rel.is_empty() {
                e.display_name()
            } else {
                format!("{rel}/{}", e.display_name())
            };
            match e.kind {
                NodeKind::Dir => self.walk(reader, snap, e.subtree.unwrap(), &p, &trees, src, copy),
                NodeKind::File => {
                    let inside = Path::new("/").join(&p);
                    let content = fs::read(copy.join(inside.strip_prefix(src).unwrap())).unwrap();
                    self.files.push(FileInfo {
                        snap: snap.into(),
                        rel: p,
                        chunks: e.chunks.iter().map(|c| c.id).collect(),
                        trees: trees.clone(),
                        content,
                    });
                }
                _ => {}
            }
        }
    }

    /// Blobs of `pack` that overlap the byte range.
    fn blobs_in(&self, pack: &str, range: (u64, u64)) -> BTreeSet<BlobId> {
        self.blobs
            .iter()
            .filter(|(_, b)| b.pack == pack && b.start < range.1 && range.0 < b.end)
            .map(|(id, _)| *id)
            .collect()
    }

    fn file_damaged(&self, f: &FileInfo, bad: &BTreeSet<BlobId>) -> bool {
        f.chunks.iter().chain(&f.trees).any(|b| bad.contains(b))
    }
}

/// A repository of three snapshots (two sources, nested directories, files of one and many
/// chunks, text and random data, an empty file), in packs of 512 KiB; and its oracle.
fn corruption_base(t: &Path, rng: &mut Rng) -> (PathBuf, Oracle) {
    let repo = t.join("pristine");
    init_with(&repo, "hourly=100", &["--pack-size", "512KiB"]);
    let data = t.join("data");
    for d in ["a", "b/c", "d"] {
        fs::create_dir_all(data.join(d)).unwrap();
    }
    let put = |p: &str, b: Vec<u8>| fs::write(data.join(p), b).unwrap();
    put("a/f1", random_bytes(rng.next(), 200_000));
    put("a/f2", random_bytes(rng.next(), 700_000));
    put("a/t.txt", "some text\n".repeat(300).into_bytes());
    put("b/c/g", random_bytes(rng.next(), 150_000));
    put(
        "b/c/h.txt",
        "compressible line of text\n".repeat(1200).into_bytes(),
    );
    put("top.bin", random_bytes(rng.next(), 90_000));
    put("empty", Vec::new());
    let mut copies = HashMap::new();
    let copy = t.join("copy1");
    copy_tree(&data, &copy);
    copies.insert(backup(&repo, "s1", &data), (data.clone(), copy));
    put("a/f1", random_bytes(rng.next(), 200_000));
    put("d/new", random_bytes(rng.next(), 100_000));
    let copy = t.join("copy2");
    copy_tree(&data, &copy);
    copies.insert(backup(&repo, "s1", &data), (data.clone(), copy));
    let other = t.join("other");
    fs::create_dir_all(&other).unwrap();
    fs::write(other.join("x"), random_bytes(rng.next(), 300_000)).unwrap();
    fs::write(other.join("y"), "y\n".repeat(5000)).unwrap();
    let copy = t.join("copy3");
    copy_tree(&other, &copy);
    copies.insert(backup(&repo, "s2", &other), (other, copy));
    ok(&repo, ["check", "--read-data"]);
    let oracle = Oracle::build(&repo, &copies);
    assert!(oracle.blobs.values().any(|b| b.tree) && oracle.blobs.values().any(|b| !b.tree));
    (repo, oracle)
}

fn pack_path(repo: &Path, pack: &str) -> PathBuf {
    repo.join("packs").join(&pack[..2]).join(pack)
}

/// `cat` every file of every snapshot: files using a damaged blob (or below a damaged tree)
/// must fail, never printing a wrong byte; all others must print exactly their content.
fn assert_reads(work: &Path, o: &Oracle, bad: &dyn Fn(&FileInfo) -> bool, when: &str) -> usize {
    let mut failed = 0;
    for f in &o.files {
        let out = run(work, ["cat", &format!("{}:{}", f.snap, f.rel)]);
        if bad(f) {
            failed += 1;
            assert!(
                !out.status.success(),
                "{when}: cat of damaged {} succeeded",
                f.rel
            );
            assert!(
                f.content.starts_with(&out.stdout),
                "{when}: cat of damaged {} printed wrong bytes",
                f.rel
            );
        } else {
            assert!(
                out.status.success() && out.stdout == f.content,
                "{when}: intact {} in {} does not read back ({:?}): {}",
                f.rel,
                &f.snap[..8],
                out.status,
                out.stderr
            );
        }
    }
    failed
}

/// Restore each snapshot whole: intact files come back identical; a damaged file is either
/// absent or holds only a correct prefix of its content (never a wrong byte).
fn assert_restores_around_damage(
    work: &Path,
    o: &Oracle,
    bad: &dyn Fn(&FileInfo) -> bool,
    bad_blobs: &BTreeSet<BlobId>,
    scratch: &Path,
    when: &str,
) {
    for snap in o.snaps.keys() {
        let target = scratch.join("restore-damaged");
        let _ = fs::remove_dir_all(&target);
        let out = run(
            work,
            [
                OsStr::new("restore"),
                OsStr::new(snap),
                OsStr::new("--target"),
                target.as_os_str(),
            ],
        );
        let files: Vec<&FileInfo> = o.files.iter().filter(|f| f.snap == *snap).collect();
        // Also an empty directory whose tree is damaged (it has no file to fail).
        let any_bad = files.iter().any(|f| bad(f))
            || o.dirs.iter().any(|d| {
                d.snap == *snap
                    && d.above
                        .iter()
                        .chain([&d.tree])
                        .any(|b| bad_blobs.contains(b))
            });
        assert_eq!(
            out.status.success(),
            !any_bad,
            "{when}: restore of {snap}: {}",
            out.stderr
        );
        for f in files {
            let got = fs::read(target.join(&f.rel));
            if bad(f) {
                if let Ok(got) = got {
                    assert!(
                        f.content.starts_with(&got),
                        "{when}: restore left wrong bytes in damaged {} ({} bytes of {})",
                        f.rel,
                        got.len(),
                        f.content.len()
                    );
                }
            } else {
                assert!(
                    got.ok().as_ref() == Some(&f.content),
                    "{when}: intact {} not restored",
                    f.rel
                );
            }
        }
        let _ = fs::remove_dir_all(&target);
    }
}

/// The latest snapshot of each source, read through a FUSE mount: damaged files give EIO,
/// intact ones their exact bytes.
fn assert_fuse_reads(
    work: &Path,
    o: &Oracle,
    bad: &dyn Fn(&FileInfo) -> bool,
    scratch: &Path,
    when: &str,
) {
    let mnt = scratch.join("mnt");
    fs::create_dir_all(&mnt).unwrap();
    ok(work, [OsStr::new("mount"), mnt.as_os_str()]);
    let _m = Unmount(mnt.clone());
    for (source, id) in latest_per_source(work) {
        for f in o.files.iter().filter(|f| f.snap == id) {
            let got = fs::read(mnt.join("latest").join(&source).join(&f.rel));
            if bad(f) {
                let e = got.expect_err(&format!("{when}: damaged {} read through FUSE", f.rel));
                assert_eq!(
                    e.raw_os_error(),
                    Some(nix::libc::EIO),
                    "{when}: {} gives {e}",
                    f.rel
                );
            } else {
                match got {
                    Ok(b) => assert!(
                        b == f.content,
                        "{when}: wrong bytes of {} through FUSE",
                        f.rel
                    ),
                    Err(e) => panic!("{when}: intact {} through FUSE: {e}", f.rel),
                }
            }
        }
    }
}

/// As [`assert_fuse_reads`], through the NFS server and a real client (`nfs-cat`).
fn assert_nfs_reads(
    work: &Path,
    o: &Oracle,
    bad: &dyn Fn(&FileInfo) -> bool,
    scratch: &Path,
    when: &str,
) {
    let srv = NfsServer::start(work, &scratch.join("nfs-key"), &[]);
    let latest_of = latest_per_source(work);
    for (source, id) in &latest_of {
        for f in o.files.iter().filter(|f| f.snap == *id) {
            let mut c = Command::new("nfs-cat");
            c.arg(srv.url(&format!("/latest/{source}/{}", f.rel)));
            let out = run_other(c);
            if bad(f) {
                assert!(
                    !out.status.success(),
                    "{when}: damaged {} read through NFS",
                    f.rel
                );
                assert!(
                    f.content.starts_with(&out.stdout),
                    "{when}: wrong bytes of {} through NFS",
                    f.rel
                );
            } else {
                assert!(
                    out.status.success() && out.stdout == f.content,
                    "{when}: intact {} through NFS: {}",
                    f.rel,
                    out.stderr
                );
            }
        }
    }
}

/// `check --read-data` exits 1 and names `needle` in its report.
fn assert_check_names(work: &Path, needles: &[String], when: &str) {
    let out = run(work, ["check", "--read-data"]);
    let report = format!("{}{}", out.text(), out.stderr);
    assert_eq!(out.code(), Some(1), "{when}: check exit:\n{report}");
    for n in needles {
        assert!(
            report.contains(n.as_str()),
            "{when}: check does not name {n:?}:\n{report}"
        );
    }
}

/// Flipped, zeroed and truncated bytes in pack data blobs, tree blobs and pack trailers:
/// `check --read-data` names every damaged file and directory (snapshot and path) or the pack;
/// damaged files fail in `cat`, `restore`, FUSE (EIO) and NFS, never with a wrong byte; all
/// other files keep reading exactly.
#[test]
fn damaged_packs_are_named_and_never_give_a_wrong_byte() {
    let mut rng = Rng::new("damaged_packs");
    let (_t, t) = temp_dir("yester-faults");
    let (pristine, o) = corruption_base(&t, &mut rng);
    let fuse = fuse_available();
    let nfs = Command::new("nfs-cat").output().is_ok();
    if !nfs {
        eprintln!("SKIPPING the NFS part: nfs-cat not found (apt-get install libnfs-utils)");
    }
    let per = trials(2, 8);
    let (mut n, mut damaged_reads, mut mounts) = (0, 0, 0);
    for what in ["data blob", "tree blob", "pack trailer"] {
        for how in DAMAGES {
            for trial in 0..per {
                let work = t.join("work");
                copy_tree(&pristine, &work);
                let candidates: Vec<(&BlobId, &BlobAt)> = o
                    .blobs
                    .iter()
                    .filter(|(_, b)| b.tree == (what == "tree blob"))
                    .collect();
                let (pack, start, end) = if what == "pack trailer" {
                    let b = rng.pick(&candidates).1;
                    let bytes = fs::read(pack_path(&work, &b.pack)).unwrap();
                    let s = bytes.len();
                    let count =
                        u32::from_le_bytes(bytes[s - 48..s - 44].try_into().unwrap()) as usize;
                    (b.pack.clone(), (s - 48 - 48 * count) as u64, s as u64)
                } else {
                    let mut v: Vec<_> = candidates
                        .iter()
                        .map(|(id, b)| (**id, b.pack.clone(), b.start, b.end))
                        .collect();
                    v.sort();
                    let (_, p, s, e) = rng.pick(&v).clone();
                    (p, s, e)
                };
                let range = damage(&pack_path(&work, &pack), start, end, how, &mut rng);
                let mut bad = o.blobs_in(&pack, range);
                let when = format!(
                    "{how:?} in a {what} of pack {} at {range:?}, trial {trial}",
                    &pack[..8]
                );
                if what == "pack trailer" {
                    assert!(bad.is_empty() || how == Damage::Truncate);
                } else {
                    assert!(!bad.is_empty(), "{when}: the damage hits a blob");
                }
                // What check must name: the pack when its trailer is hit; else the topmost
                // damaged directory or file of each snapshot.
                let needles_for = |bad: &BTreeSet<BlobId>| {
                    let mut needles = Vec::new();
                    if what == "pack trailer" || how == Damage::Truncate {
                        needles.push(pack[..16].to_string());
                    }
                    for d in &o.dirs {
                        if bad.contains(&d.tree) && !d.above.iter().any(|b| bad.contains(b)) {
                            needles.push(format!("snapshot {}", &d.snap[..8]));
                            needles.push(format!("directory /{}", d.rel));
                        }
                    }
                    for f in &o.files {
                        if f.chunks.iter().any(|b| bad.contains(b))
                            && !f.trees.iter().any(|b| bad.contains(b))
                        {
                            needles.push(format!("snapshot {}", &f.snap[..8]));
                            needles.push(format!("file /{}", f.rel));
                        }
                    }
                    needles
                };
                let mut needles = needles_for(&bad);
                // A flipped or zeroed byte that zstd does not use (rare: seen once in a tree
                // blob) leaves every blob decoding to its content, which its id vouches for:
                // then check names only the pack (its bytes no longer match its name), and
                // every file must still read back exactly (the reads below check that).
                if how != Damage::Truncate && what != "pack trailer" {
                    let out = run(&work, ["check", "--read-data"]);
                    let report = format!("{}{}", out.text(), out.stderr);
                    if !needles.iter().all(|n| report.contains(n.as_str()))
                        && report.contains(&pack[..16])
                    {
                        eprintln!("{when}: the damaged bytes left every blob readable");
                        bad.clear();
                        needles = needles_for(&bad);
                        needles.push(pack[..16].to_string());
                    }
                }
                assert_check_names(&work, &needles, &when);
                let is_bad = |f: &FileInfo| o.file_damaged(f, &bad);
                damaged_reads += assert_reads(&work, &o, &is_bad, &when);
                assert_restores_around_damage(&work, &o, &is_bad, &bad, &t, &when);
                if trial == 0 && what != "pack trailer" {
                    if fuse {
                        assert_fuse_reads(&work, &o, &is_bad, &t, &when);
                        mounts += 1;
                    }
                    if nfs {
                        assert_nfs_reads(&work, &o, &is_bad, &t, &when);
                        mounts += 1;
                    }
                }
                n += 1;
                eprintln!("{when}: ok ({} damaged blobs)", bad.len());
            }
        }
    }
    eprintln!("damaged packs: {n} trials, {damaged_reads} damaged file reads refused, {mounts} FUSE/NFS rounds, 0 wrong bytes");
}

/// Flipped, zeroed and truncated bytes in index files, snapshot records and the config: each
/// is named by `check` (index files and snapshot records carry a hash), reads refuse instead of
/// guessing, other snapshots keep reading, and `check --repair-index` rebuilds a damaged index
/// from the pack trailers. The config has no checksum: damage there either makes every command
/// fail with one line naming it, or it hit a byte that does not change what is read.
#[test]
fn damaged_index_snapshots_and_config_are_named_and_repairable() {
    let mut rng = Rng::new("damaged_metadata");
    let (_t, t) = temp_dir("yester-faults");
    let (pristine, o) = corruption_base(&t, &mut rng);
    let per = trials(2, 8);
    let (mut n, mut config_detected, mut config_harmless) = (0, 0, 0);
    for what in ["index file", "snapshot record", "config"] {
        for how in DAMAGES {
            for trial in 0..per {
                let work = t.join("work");
                copy_tree(&pristine, &work);
                let file = match what {
                    "index file" => {
                        let mut v: Vec<PathBuf> = fs::read_dir(work.join("index"))
                            .unwrap()
                            .map(|e| e.unwrap().path())
                            .collect();
                        v.sort();
                        rng.pick(&v).clone()
                    }
                    "snapshot record" => {
                        let ids: Vec<&String> = o.snaps.keys().collect();
                        work.join("snapshots").join(rng.pick(&ids))
                    }
                    _ => work.join("config"),
                };
                let len = fs::metadata(&file).unwrap().len();
                let range = damage(&file, 0, len, how, &mut rng);
                let name = file.file_name().unwrap().to_string_lossy().into_owned();
                let when = format!("{how:?} in {what} {name} at {range:?}, trial {trial}");
                match what {
                    "index file" => {
                        assert_check_names(&work, std::slice::from_ref(&name), &when);
                        for f in &o.files {
                            let out = run(&work, ["cat", &format!("{}:{}", f.snap, f.rel)]);
                            assert!(
                                !out.status.success() && out.stdout.is_empty(),
                                "{when}: cat {}",
                                f.rel
                            );
                            assert!(out.stderr.contains("index"), "{when}: {}", out.stderr);
                        }
                        let out = ok(&work, ["check", "--repair-index"]);
                        assert!(out.contains("rebuilt the index"), "{when}: {out}");
                        ok(&work, ["check", "--read-data"]);
                        assert_reads(&work, &o, &|_| false, &when);
                    }
                    "snapshot record" => {
                        assert_check_names(&work, std::slice::from_ref(&name), &when);
                        assert_reads(&work, &o, &|f| f.snap == name, &when);
                    }
                    _ => {
                        let out = run(&work, ["check", "--read-data"]);
                        let report = format!("{}{}", out.text(), out.stderr);
                        let listing = run(&work, ["snapshots"]);
                        if !listing.status.success() {
                            assert!(
                                listing.stderr.contains("config")
                                    && listing.stderr.trim_end().lines().count() == 1,
                                "{when}: one line naming the config: {}",
                                listing.stderr
                            );
                            assert!(
                                !out.status.success() && report.contains("config"),
                                "{when}: check: {report}"
                            );
                        }
                        // Whatever was hit, a read gives the right bytes or an error.
                        let mut refused = 0;
                        for f in &o.files {
                            let out = run(&work, ["cat", &format!("{}:{}", f.snap, f.rel)]);
                            if out.status.success() {
                                assert!(
                                    out.stdout == f.content,
                                    "{when}: wrong bytes of {}",
                                    f.rel
                                );
                            } else {
                                assert!(
                                    f.content.starts_with(&out.stdout),
                                    "{when}: wrong bytes of {}",
                                    f.rel
                                );
                                refused += 1;
                            }
                        }
                        if out.status.success() {
                            assert_eq!(refused, 0, "{when}: check passes but reads fail");
                            config_harmless += 1;
                        } else {
                            config_detected += 1;
                        }
                    }
                }
                n += 1;
                eprintln!("{when}: ok");
            }
        }
    }
    eprintln!(
        "damaged metadata: {n} trials; config damage detected {config_detected} times, hit a \
         byte that changes nothing read {config_harmless} times; 0 wrong bytes"
    );
}

//! `yester -r REPO …` for tests that keep their repository at a path of their own (on a
//! small file system, beside their data, shared by several processes) instead of in a
//! [`super::Repo`]: one way to run the binary, fail with everything it printed, and read the
//! snapshot id a backup prints.

use std::path::Path;
use std::process::Output;

use super::run::Yester;

fn lossy(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

/// `yester -r REPO` (see [`Yester`]: the test run's environment removed, a timeout).
pub fn yester_at(repo: &Path) -> Yester {
    Yester::at(repo)
}

/// Run `yester -r REPO ARGS…` to its end. When it fails, what it printed goes to stderr,
/// which the test harness shows only for a failing test.
pub fn run_at(repo: &Path, args: &[&str]) -> Output {
    let out = yester_at(repo).args(args).output().expect("run yester");
    if !out.status.success() {
        eprintln!(
            "yester {args:?} -> {:?}\nstdout: {}\nstderr: {}",
            out.status.code(),
            lossy(&out.stdout),
            lossy(&out.stderr)
        );
    }
    out
}

/// As [`run_at`] for a command that must succeed; returns its standard output.
pub fn ok_at(repo: &Path, args: &[&str]) -> String {
    let out = run_at(repo, args);
    assert!(
        out.status.success(),
        "yester {args:?} exited {:?}: {}{}",
        out.status.code(),
        lossy(&out.stdout),
        lossy(&out.stderr)
    );
    lossy(&out.stdout)
}

/// `yester init REPO`, with `--levels LEVELS` when given (else the default levels).
pub fn init_at(repo: &Path, levels: Option<&str>) {
    let mut c = Yester::new();
    c.arg("init").arg(repo);
    if let Some(l) = levels {
        c.args(["--levels", l]);
    }
    let out = c.output().expect("run yester init");
    assert!(
        out.status.success(),
        "yester init {}: {}",
        repo.display(),
        lossy(&out.stderr)
    );
}

/// `yester backup --source SOURCE PATH EXTRA…`, which must succeed; returns the snapshot id
/// from its `snapshot <id> …` line.
pub fn backup_at(repo: &Path, source: &str, path: &Path, extra: &[&str]) -> String {
    let mut args = vec![
        "backup",
        "--source",
        source,
        path.to_str().expect("UTF-8 path"),
    ];
    args.extend_from_slice(extra);
    let out = ok_at(repo, &args);
    let id = out
        .lines()
        .find_map(|l| l.strip_prefix("snapshot "))
        .and_then(|rest| rest.split(' ').next())
        .unwrap_or_default()
        .to_string();
    assert!(
        id.len() == 64 && id.bytes().all(|b| b.is_ascii_hexdigit()),
        "no `snapshot <id>` line in the backup's output: {out}"
    );
    id
}

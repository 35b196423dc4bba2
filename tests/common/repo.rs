//! Test repositories: one in its own temporary directory, run through the harness, with
//! helpers to back up, list and restore.

use std::ffi::{OsStr, OsString};
use std::os::unix::ffi::{OsStrExt, OsStringExt};
use std::path::{Path, PathBuf};
use std::time::Duration;

use super::run::{yester, yester_timeout, Output, YESTER_TIMEOUT};

/// Average chunk size used for test repositories (min 16 KiB, max 256 KiB).
pub const CHUNK_AVG: &str = "64KiB";

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

//! Operations: the configuration file, `yester run`, hooks, `config check`, plain output for
//! logs, completions and man pages, and the quick start followed word for word.

// Tests unwrap freely: a panic is how a test fails (the crate denies it elsewhere).
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::fs;
use std::path::Path;
use std::process::Command;
use std::time::Duration;

fn bin_dir() -> &'static Path {
    Path::new(env!("CARGO_BIN_EXE_yester")).parent().unwrap()
}

fn yester(config: &Path, args: &[&str]) -> (i32, String, String) {
    let out = common::Yester::new()
        .arg("--config")
        .arg(config)
        .args(args)
        .output()
        .unwrap();
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[test]
fn run_backs_up_sources_with_hooks_and_rotates() {
    let t = tempfile::tempdir().unwrap();
    let root = t.path();
    fs::create_dir_all(root.join("web1/etc")).unwrap();
    fs::write(root.join("web1/etc/hosts"), "127.0.0.1 localhost\n").unwrap();
    fs::write(root.join("web1/etc/junk.tmp"), "excluded").unwrap();
    fs::create_dir_all(root.join("db1/backup")).unwrap();
    fs::write(root.join("excludes"), "# comment\n*.log\n").unwrap();
    fs::write(root.join("web1/etc/app.log"), "excluded too").unwrap();
    let config = root.join("yester.toml");
    let r = root.display();
    fs::write(
        &config,
        format!(
            r#"repository = "{r}/repo"
levels = [{{ name = "hourly", keep = 6 }}, {{ name = "daily", keep = 7 }}]

[[source]]
name = "web1"
paths = ["{r}/web1"]
exclude = ["*.tmp"]
exclude_file = "{r}/excludes"

[[source]]
name = "db1"
paths = ["{r}/db1/backup"]
pre = ["echo \"dump of $YESTER_SOURCE at $(date +%s%N)\" > {r}/db1/backup/all.sql"]
post = ["touch {r}/post-ran"]
"#
        ),
    )
    .unwrap();
    let (code, out, err) = yester(&config, &["config", "check"]);
    assert_eq!(code, 0, "{out}{err}");
    let (code, _, err) = yester(&config, &["init"]);
    assert_eq!(code, 0, "{err}");
    for i in 0..7 {
        let (code, out, err) = yester(&config, &["run", "hourly"]);
        assert_eq!(code, 0, "run {i}: {out}{err}");
        let lines: Vec<&str> = out.lines().collect();
        assert_eq!(lines.len(), 2, "one line per source: {out}");
        assert!(
            lines[0].starts_with("web1: ok: snapshot") && lines[1].starts_with("db1: ok: snapshot"),
            "{out}"
        );
        assert!(
            !out.contains('\x1b') && !err.contains('\x1b'),
            "no escape codes in logs"
        );
    }
    let (code, out, _) = yester(&config, &["run", "daily"]);
    assert_eq!(code, 0);
    assert!(
        out.contains("web1: ok: hourly.5") && out.contains("became daily.0"),
        "{out}"
    );
    let (_, json, _) = yester(&config, &["points", "--json"]);
    let points: serde_json::Value = serde_json::from_str(&json).unwrap();
    let mut names: Vec<String> = points
        .as_array()
        .unwrap()
        .iter()
        .map(|p| {
            format!(
                "{} {}",
                p["source"].as_str().unwrap(),
                p["point"].as_str().unwrap()
            )
        })
        .collect();
    names.sort();
    let mut want = Vec::new();
    for s in ["db1", "web1"] {
        want.push(format!("{s} daily.0"));
        for i in 0..5 {
            want.push(format!("{s} hourly.{i}"));
        }
    }
    want.sort();
    assert_eq!(
        names, want,
        "7 backups into 6 hourlies, then one promoted to daily"
    );

    // The hook's dump is inside the snapshot; excluded files are not.
    let inside = r.to_string().trim_start_matches('/').to_string();
    let (code, dump, _) = yester(
        &config,
        &["cat", &format!("latest/db1/{inside}/db1/backup/all.sql")],
    );
    assert_eq!(code, 0);
    assert!(dump.starts_with("dump of db1 at "), "{dump}");
    assert!(root.join("post-ran").exists());
    let (_, ls, _) = yester(&config, &["ls", &format!("latest/web1/{inside}/web1/etc")]);
    assert!(
        ls.contains("hosts") && !ls.contains("junk.tmp") && !ls.contains("app.log"),
        "{ls}"
    );

    // A failing pre hook: that source is named and not backed up; the other one is.
    let text = fs::read_to_string(&config)
        .unwrap()
        .replace("pre = [\"echo", "pre = [\"exit 3\", \"echo");
    fs::write(&config, text).unwrap();
    let (code, out, _) = yester(&config, &["run", "hourly"]);
    assert_eq!(code, 1, "{out}");
    assert!(
        out.contains("web1: ok") && out.contains("db1: FAILED: pre hook `exit 3` failed"),
        "{out}"
    );
    assert_eq!(
        fs::read_dir(root.join("repo/locks")).unwrap().count(),
        0,
        "no lock left behind"
    );
    let (code, _, err) = yester(&config, &["run", "weekly"]);
    assert_eq!(code, 1);
    assert!(err.contains("no level \"weekly\""), "{err}");
}

#[test]
fn config_check_names_each_problem_with_its_line() {
    let t = tempfile::tempdir().unwrap();
    let f = t.path().join("c.toml");
    let check = |text: &str| {
        fs::write(&f, text).unwrap();
        let (code, out, err) = yester(&f, &["config", "check"]);
        (code, format!("{out}{err}"))
    };
    let (code, msg) = check("repository = \"/srv\"\nrepostory = \"/typo\"\n");
    assert_eq!(code, 1);
    assert!(
        msg.contains(":2:") && msg.contains("unknown field `repostory`"),
        "{msg}"
    );
    let (code, msg) = check("repository = \"/srv\"\n\nlevels = [{ name = \"hourly\", keep = 6 }, { name = \"hourly\", keep = 2 }]\n");
    assert_eq!(code, 1);
    assert!(
        msg.contains(":3:") && msg.contains("level hourly is listed twice"),
        "{msg}"
    );
    let (code, msg) = check("levels = [{ name = \"Daily\", keep = 1 }]\n");
    assert_eq!(code, 1);
    assert!(
        msg.contains(":1:") && msg.contains("level name \"Daily\""),
        "{msg}"
    );
    let (code, msg) =
        check("[[source]]\nname = \"web1\"\npaths = [\"/etc\",\n  \"/does/not/exist\"]\n");
    assert_eq!(code, 1);
    assert!(
        msg.contains(":4:") && msg.contains("path /does/not/exist does not exist"),
        "{msg}"
    );
    let (code, msg) =
        check("[[source]]\nname = \"web1\"\npaths = [\"/etc\"]\nexclude_fil = \"x\"\n");
    assert_eq!(code, 1);
    assert!(
        msg.contains(":4:") && msg.contains("unknown field `exclude_fil`"),
        "{msg}"
    );
    let (code, msg) = check("[[source]]\nname = \"web1\"\npaths = [\"/etc\"]\n");
    assert_eq!(code, 0, "{msg}");
}

#[test]
fn completions_and_man_pages() {
    let t = tempfile::tempdir().unwrap();
    let none = t.path().join("none.toml");
    fs::write(&none, "").unwrap();
    let (code, out, _) = yester(&none, &["completions", "bash"]);
    assert_eq!(code, 0);
    assert!(
        out.contains("yester") && out.contains("complete"),
        "bash completion"
    );
    let (code, out, _) = yester(&none, &["man"]);
    assert_eq!(code, 0);
    assert!(out.contains(".TH yester"), "man page");
    let dir = t.path().join("man1");
    let (code, _, _) = yester(&none, &["man", "--dir", dir.to_str().unwrap()]);
    assert_eq!(code, 0);
    assert!(dir.join("yester-backup.1").exists() && dir.join("yester.1").exists());
}

/// The quick start, run exactly as written: every ```sh block of docs/QUICKSTART.md, in order.
#[test]
fn quick_start_works_word_for_word() {
    let fuse =
        Path::new("/dev/fuse").exists() && Command::new("fusermount3").arg("-V").output().is_ok();
    if !fuse || !nix::unistd::geteuid().is_root() {
        eprintln!(
            "SKIPPING quick start test: it mounts with FUSE as root (install fuse3, run as root)"
        );
        return;
    }
    let doc = fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("docs/QUICKSTART.md"))
        .unwrap();
    let mut script = String::from("set -euxo pipefail\n");
    let mut inside = false;
    for line in doc.lines() {
        if line.trim_start() == "```sh" {
            inside = true;
        } else if inside && line.trim_start() == "```" {
            inside = false;
        } else if inside {
            script.push_str(line);
            script.push('\n');
        }
    }
    assert!(
        script.contains("yester run hourly"),
        "the quick start has its commands in ```sh blocks"
    );
    let path = format!(
        "{}:{}",
        bin_dir().display(),
        std::env::var("PATH").unwrap_or_default()
    );
    // The quick start as a user follows it: the harness's clean environment, but the default
    // configuration file rather than none.
    let mut cmd = Command::new("bash");
    cmd.arg("-c").arg(&script).env("PATH", path);
    common::clean_env(&mut cmd);
    cmd.env_remove("YESTER_CONFIG");
    let out = common::run_with_timeout(cmd, Duration::from_secs(600));
    let (stdout, stderr) = (&out.stdout, &out.stderr);
    let _ = Command::new("fusermount3")
        .arg("-u")
        .arg("/tmp/yester-quickstart/mnt")
        .output();
    assert!(
        out.status.success(),
        "quick start failed:\n{stdout}\n{stderr}"
    );
    assert!(
        stdout.contains("<h1>hello</h1>"),
        "the old file comes back: {stdout}"
    );
    assert!(stdout.contains("YESTER OK"), "{stdout}");
    let _ = fs::remove_dir_all("/tmp/yester-quickstart");
}

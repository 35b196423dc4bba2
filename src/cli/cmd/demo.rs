//! `yester demo`: a guided run on a throwaway repository, using the real commands.

use std::ffi::OsString;
use std::fs;
use std::path::Path;
use std::process::Command;

use anyhow::{bail, Context, Result};

use clap::Args;

#[derive(Args)]
pub struct DemoArgs {
    /// Keep the demo directory instead of deleting it
    #[arg(long)]
    keep: bool,
}

/// The sample tree: (path, content). Content is generated so the demo has chunks to dedup.
fn sample_files() -> Vec<(&'static str, Vec<u8>)> {
    let log: Vec<u8> = (0..60_000)
        .flat_map(|i| {
            format!(
                "2026-11-21 12:{:02}:{:02} GET /index.html 200 {}\n",
                i / 60 % 60,
                i % 60,
                i * 7
            )
            .into_bytes()
        })
        .collect();
    vec![
        ("etc/hostname", b"web1\n".to_vec()),
        (
            "etc/hosts",
            b"127.0.0.1 localhost\n192.0.2.10 web1\n".to_vec(),
        ),
        (
            "etc/nginx/nginx.conf",
            b"server {\n  listen 80;\n  root /var/www;\n}\n".to_vec(),
        ),
        ("var/www/index.html", b"<h1>Hello from web1</h1>\n".to_vec()),
        ("var/log/access.log", log),
    ]
}

fn run(exe: &Path, repo: &Path, args: &[OsString]) -> Result<String> {
    run_shown(exe, repo, args, true)
}

fn run_shown(exe: &Path, repo: &Path, args: &[OsString], show: bool) -> Result<String> {
    let shown: Vec<String> = args
        .iter()
        .map(|a| a.to_string_lossy().into_owned())
        .collect();
    if show {
        println!("\n$ yester {}", shown.join(" "));
    }
    let out = Command::new(exe)
        .arg("-r")
        .arg(repo)
        .args(args)
        .output()
        .with_context(|| format!("cannot run {}", exe.display()))?;
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    if show {
        print!("{stdout}");
    }
    eprint!("{}", String::from_utf8_lossy(&out.stderr));
    if !out.status.success() {
        bail!("`yester {}` failed with {}", shown.join(" "), out.status);
    }
    Ok(stdout)
}

fn os(args: &[&str]) -> Vec<OsString> {
    args.iter().map(OsString::from).collect()
}

/// Mount the repository, look around like a user would, unmount.
fn show_mount(exe: &Path, repo: &Path, base: &Path, inside: &str) -> Result<()> {
    let fuse = Path::new("/dev/fuse").exists();
    let fusermount = Command::new("fusermount3").arg("-V").output().is_ok();
    if !fuse || !fusermount {
        println!("\n# skipping the mount: /dev/fuse present: {fuse}, fusermount3 present: {fusermount} (apt-get install fuse3)");
        return Ok(());
    }
    let mnt = base.join("mnt");
    fs::create_dir_all(&mnt)?;
    run(exe, repo, &[OsString::from("mount"), mnt.clone().into()])?;
    let shell = |cmd: String| -> Result<()> {
        println!("\n$ {cmd}");
        let out = Command::new("sh").arg("-c").arg(&cmd).output()?;
        print!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        Ok(())
    };
    let m = mnt.display();
    let res = (|| {
        shell(format!("ls {m} {m}/hourly.1 {m}/snapshots/web1"))?;
        shell(format!("ls -l {m}/hourly.0/web1/{inside}/var/www"))?;
        shell(format!("diff {m}/hourly.1/web1/{inside}/var/www/index.html {m}/hourly.0/web1/{inside}/var/www/index.html"))?;
        shell(format!(
            "touch {m}/hourly.0/web1/{inside}/var/www/index.html"
        ))
    })();
    shell(format!("fusermount3 -u {m}"))?;
    res
}

pub fn demo(a: DemoArgs) -> Result<u8> {
    let exe = std::env::current_exe().context("cannot find the yester executable")?;
    let tmp = tempfile::Builder::new().prefix("yester-demo-").tempdir()?;
    let base = tmp.path().to_path_buf();
    let data = base.join("web1");
    let repo = base.join("repo");
    println!("yester demo in {}", base.display());
    for (p, content) in sample_files() {
        let path = data.join(p);
        fs::create_dir_all(path.parent().context("sample path has no parent")?)?;
        fs::write(&path, content)?;
    }
    std::os::unix::fs::symlink("nginx/nginx.conf", data.join("etc/nginx.conf"))?;
    fs::hard_link(data.join("etc/hosts"), data.join("etc/hosts.bak"))?;

    let data_os = data.as_os_str().to_owned();
    run(
        &exe,
        &repo,
        &[OsString::from("init"), repo.as_os_str().to_owned()],
    )?;
    run(
        &exe,
        &repo,
        &[
            OsString::from("backup"),
            "--source".into(),
            "web1".into(),
            data_os.clone(),
        ],
    )?;

    println!("\n# someone edits the web page and rotates the log");
    fs::write(
        data.join("var/www/index.html"),
        b"<h1>Hello from web1, version 2</h1>\n",
    )?;
    fs::write(data.join("var/www/new.html"), b"<p>new page</p>\n")?;
    run(
        &exe,
        &repo,
        &[
            OsString::from("backup"),
            "--source".into(),
            "web1".into(),
            data_os,
        ],
    )?;

    run(&exe, &repo, &os(&["snapshots"]))?;
    let json = run_shown(&exe, &repo, &os(&["snapshots", "--json"]), false)?;
    let v: serde_json::Value = serde_json::from_str(&json)?;
    let ids: Vec<String> = v
        .as_array()
        .context("snapshots --json is not an array")?
        .iter()
        .filter_map(|s| {
            s.get("short_id")
                .and_then(|x| x.as_str())
                .map(str::to_string)
        })
        .collect();
    let [first, second] = ids.as_slice() else {
        bail!("expected two snapshots, found {}", ids.len());
    };
    let inside = data
        .strip_prefix("/")
        .unwrap_or(&data)
        .display()
        .to_string();
    run(
        &exe,
        &repo,
        &os(&["ls", "-l", &format!("{second}:{inside}/var/www")]),
    )?;
    run(
        &exe,
        &repo,
        &os(&["cat", &format!("{first}:{inside}/var/www/index.html")]),
    )?;
    let target = base.join("restored");
    run(
        &exe,
        &repo,
        &[
            OsString::from("restore"),
            format!("{first}:{inside}").into(),
            "--target".into(),
            target.clone().into(),
        ],
    )?;
    let restored = fs::read(target.join("web1/var/www/index.html"))?;
    println!(
        "\n# the restored index.html is yesterday's version:\n{}",
        String::from_utf8_lossy(&restored)
    );
    run(&exe, &repo, &os(&["points"]))?;
    run(&exe, &repo, &os(&["diff", first, second]))?;
    run(&exe, &repo, &os(&["check", "--read-data"]))?;
    show_mount(&exe, &repo, &base, &inside)?;

    if a.keep {
        let kept = tmp.keep();
        println!("\ndemo files kept in {}", kept.display());
    } else {
        println!("\ndemo done; its files are removed (use --keep to keep them)");
    }
    Ok(0)
}

//! FUSE mounts, for real: trees compare equal to their sources, writes fail with EROFS, file
//! modes hold for other users, big files and directories work, and new backups show up in a
//! running mount. Skips loudly where the machine cannot mount.
//!
//! Longer than 600 lines on purpose: each file under `tests/` is a test binary of its own that
//! links the whole crate, so these related tests share one file rather than adding a binary
//! (and its link time) to every run of the suite.

// Tests unwrap freely: a panic is how a test fails (the crate denies it elsewhere).
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;
use common::cli::{ok_at as ok, yester_at as yester};
use common::{
    fuse_available, is_mounted, random_bytes, run_with_timeout, set_mtime, yester_bin,
    YESTER_TIMEOUT,
};

use std::fs;
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::time::{Duration, Instant};

/// A mount that is unmounted when dropped, also when the test fails.
struct Mount {
    point: PathBuf,
}

impl Mount {
    fn new(repo: &Path, point: &Path, extra: &[&str]) -> Mount {
        fs::create_dir_all(point).unwrap();
        let point = fs::canonicalize(point).unwrap();
        let mut args = vec!["mount", point.to_str().unwrap()];
        args.extend_from_slice(extra);
        ok(repo, &args);
        assert!(is_mounted(&point), "mounted after `yester mount` returns");
        Mount { point }
    }

    fn path(&self, rel: &str) -> PathBuf {
        self.point.join(rel)
    }
}

impl Drop for Mount {
    fn drop(&mut self) {
        common::unmount(&self.point);
    }
}

fn init(repo: &Path) {
    common::cli::init_at(repo, None);
}

fn backup(repo: &Path, source: &str, path: &Path) -> String {
    common::cli::backup_at(repo, source, path, &[])
}

/// A world-readable temp dir (mount tests run readers as other users).
fn open_tempdir() -> tempfile::TempDir {
    let t = tempfile::tempdir().unwrap();
    fs::set_permissions(t.path(), fs::Permissions::from_mode(0o755)).unwrap();
    t
}

/// A world-readable temp dir with an initialised repository `repo` in it, and the path `src`
/// (not made) for the test's source; `None` where FUSE is missing (`fuse_available` says so).
fn fuse_setup() -> Option<(tempfile::TempDir, PathBuf, PathBuf)> {
    if !fuse_available() {
        return None;
    }
    let t = open_tempdir();
    let repo = t.path().join("repo");
    init(&repo);
    let src = t.path().join("src");
    Some((t, repo, src))
}

/// `PROGRAM` (a mount helper, or mount(8) running one) that runs the binary under test, with
/// the harness's environment (see [`common::clean_env`]).
fn mount_command(program: &Path) -> Command {
    let mut cmd = Command::new(program);
    common::clean_env(&mut cmd);
    cmd.env("YESTER_BIN", yester_bin());
    cmd
}

fn sh(cmd: &str) -> Output {
    Command::new("sh").arg("-c").arg(cmd).output().unwrap()
}

/// A varied source tree: nested dirs, sizes around chunk sizes, symlinks, hard links,
/// xattrs, modes, owners, a FIFO (under fifo/), times with nanoseconds.
fn make_tree(root: &Path) {
    fs::create_dir_all(root.join("etc/nginx/sites")).unwrap();
    fs::create_dir_all(root.join("var/www/img")).unwrap();
    fs::create_dir_all(root.join("empty")).unwrap();
    fs::create_dir_all(root.join("fifo")).unwrap();
    fs::write(root.join("etc/hosts"), "127.0.0.1 localhost\n").unwrap();
    fs::write(
        root.join("etc/nginx/nginx.conf"),
        "worker_processes 2;\n".repeat(500),
    )
    .unwrap();
    fs::write(
        root.join("etc/nginx/sites/default"),
        "server { listen 80; }\n",
    )
    .unwrap();
    fs::write(root.join("var/www/index.html"), "<h1>hello needle</h1>\n").unwrap();
    fs::write(root.join("var/www/img/big.bin"), random_bytes(5, 3 << 20)).unwrap();
    fs::write(root.join("var/www/empty.txt"), "").unwrap();
    fs::write(root.join("var/www/name with spaces\u{e9}"), "x").unwrap();
    std::os::unix::fs::symlink("nginx/nginx.conf", root.join("etc/nginx.conf")).unwrap();
    std::os::unix::fs::symlink("/nonexistent/target", root.join("etc/dangling")).unwrap();
    fs::hard_link(root.join("etc/hosts"), root.join("var/hosts.link")).unwrap();
    nix::unistd::mkfifo(
        &root.join("fifo/pipe"),
        nix::sys::stat::Mode::from_bits_truncate(0o640),
    )
    .unwrap();
    let xattrs_ok = xattr::set(root.join("etc/hosts"), "user.origin", b"web1").is_ok();
    if xattrs_ok {
        xattr::set(root.join("var/www"), "user.dir", b"yes").unwrap();
    } else {
        eprintln!(
            "SKIPPING xattr part: the file system under {} has no user xattrs",
            root.display()
        );
    }
    fs::set_permissions(
        root.join("etc/nginx/sites/default"),
        fs::Permissions::from_mode(0o600),
    )
    .unwrap();
    fs::set_permissions(
        root.join("var/www/index.html"),
        fs::Permissions::from_mode(0o4755),
    )
    .unwrap();
    if nix::unistd::geteuid().is_root() {
        let own = |p: &str, u: u32, g: u32| {
            nix::unistd::chown(
                &root.join(p),
                Some(nix::unistd::Uid::from_raw(u)),
                Some(nix::unistd::Gid::from_raw(g)),
            )
            .unwrap()
        };
        own("var/www/index.html", 33, 33);
        own("var/www/img", 1000, 100);
    }
    for (i, p) in [
        "etc/hosts",
        "var/www/img/big.bin",
        "etc/nginx/nginx.conf",
        "var/www/empty.txt",
    ]
    .iter()
    .enumerate()
    {
        set_mtime(&root.join(p), 1_700_000_000 + i as i64 * 1000, 123_456_789);
    }
    set_mtime(&root.join("etc/dangling"), 1_600_000_000, 5);
    for d in [
        "etc/nginx/sites",
        "etc/nginx",
        "var/www/img",
        "var/www",
        "var",
        "etc",
        "empty",
        "fifo",
    ] {
        set_mtime(&root.join(d), 1_650_000_000, 987_654_321);
    }
}

/// `find -printf` listings of type, mode, owner, size (not of dirs), mtime, links, target.
fn listing(dir: &Path) -> (String, String) {
    let run = |args: &str| {
        let out = sh(&format!(
            "cd '{}' && find . {args} | LC_ALL=C sort",
            dir.display()
        ));
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).into_owned()
    };
    (
        run("-not -type d -printf '%P %y %m %U %G %s %T@ %n %l\\n'"),
        run("-type d -printf '%P %y %m %U %G %T@ %n\\n'"),
    )
}

/// Each path with its sorted (name, value) extended attributes.
type XattrListing = Vec<(String, Vec<(String, Vec<u8>)>)>;

fn xattr_listing(dir: &Path) -> XattrListing {
    let mut out = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(p) = stack.pop() {
        let m = fs::symlink_metadata(&p).unwrap();
        let mut attrs: Vec<(String, Vec<u8>)> = xattr::list(&p)
            .map(|names| {
                names
                    .map(|n| {
                        let v = xattr::get(&p, &n).unwrap().unwrap_or_default();
                        (n.to_string_lossy().into_owned(), v)
                    })
                    .collect()
            })
            .unwrap_or_default();
        attrs.sort();
        out.push((
            p.strip_prefix(dir).unwrap().to_string_lossy().into_owned(),
            attrs,
        ));
        if m.is_dir() {
            for e in fs::read_dir(&p).unwrap() {
                stack.push(e.unwrap().path());
            }
        }
    }
    out.sort();
    out
}

#[test]
fn mounted_snapshot_equals_source_and_is_read_only() {
    let Some((t, repo, src)) = fuse_setup() else {
        return;
    };
    make_tree(&src);
    backup(&repo, "web1", &src);
    let m = Mount::new(&repo, &t.path().join("mnt"), &[]);
    let inside = src.to_str().unwrap().trim_start_matches('/');

    for view in [
        format!("latest/web1/{inside}"),
        format!("hourly.0/web1/{inside}"),
    ] {
        let mounted = m.path(&view);
        let diff = Command::new("diff")
            .args(["-r", "--no-dereference", "-x", "fifo"])
            .arg(&src)
            .arg(&mounted)
            .output()
            .unwrap();
        assert!(
            diff.status.success(),
            "diff -r {view}: {}",
            String::from_utf8_lossy(&diff.stdout)
        );
        assert_eq!(listing(&src), listing(&mounted), "find listing of {view}");
        assert_eq!(
            xattr_listing(&src),
            xattr_listing(&mounted),
            "xattrs of {view}"
        );
    }
    // The same file through a point and through its dated name is one inode.
    let dated = fs::read_dir(m.path("snapshots/web1"))
        .unwrap()
        .next()
        .unwrap()
        .unwrap()
        .path();
    let a = fs::metadata(m.path(&format!("hourly.0/web1/{inside}/etc/hosts"))).unwrap();
    let b = fs::metadata(dated.join(format!("{inside}/etc/hosts"))).unwrap();
    let c = fs::metadata(m.path(&format!("hourly.0/web1/{inside}/var/hosts.link"))).unwrap();
    assert_eq!(a.ino(), b.ino());
    assert_eq!(a.ino(), c.ino(), "hard links share an inode");
    assert_eq!(a.nlink(), 2);

    // cp -a out of the mount gives the original file back.
    let copy = t.path().join("copy.bin");
    let st = Command::new("cp")
        .arg("-a")
        .arg(m.path(&format!("latest/web1/{inside}/var/www/img/big.bin")))
        .arg(&copy)
        .status()
        .unwrap();
    assert!(st.success());
    assert!(Command::new("cmp")
        .arg(&copy)
        .arg(src.join("var/www/img/big.bin"))
        .status()
        .unwrap()
        .success());
    let (mc, ms) = (
        fs::metadata(&copy).unwrap(),
        fs::metadata(src.join("var/www/img/big.bin")).unwrap(),
    );
    assert_eq!(
        (mc.mode(), mc.mtime(), mc.mtime_nsec(), mc.uid()),
        (ms.mode(), ms.mtime(), ms.mtime_nsec(), ms.uid())
    );

    // Every write path fails with EROFS.
    let base = m.path(&format!("latest/web1/{inside}"));
    let erofs = |r: std::io::Result<()>, what: &str| {
        let e = r.expect_err(what);
        assert_eq!(e.raw_os_error(), Some(nix::libc::EROFS), "{what}: {e}");
    };
    erofs(fs::write(base.join("etc/hosts"), "x"), "write");
    erofs(fs::write(base.join("new-file"), "x"), "create");
    erofs(fs::create_dir(base.join("newdir")), "mkdir");
    erofs(fs::remove_file(base.join("etc/hosts")), "rm");
    erofs(fs::remove_dir(base.join("empty")), "rmdir");
    erofs(
        fs::set_permissions(base.join("etc/hosts"), fs::Permissions::from_mode(0o777)),
        "chmod",
    );
    erofs(
        fs::rename(base.join("etc/hosts"), base.join("etc/hosts2")),
        "mv",
    );
    erofs(
        fs::hard_link(base.join("etc/hosts"), base.join("etc/hosts3")),
        "ln",
    );
    erofs(
        std::os::unix::fs::symlink("x", base.join("etc/sym")),
        "ln -s",
    );
    erofs(
        xattr::set(base.join("etc/hosts"), "user.x", b"1"),
        "setfattr",
    );
    let touch = sh(&format!("touch '{}'", base.join("etc/hosts").display()));
    assert!(
        !touch.status.success()
            && String::from_utf8_lossy(&touch.stderr).contains("Read-only file system")
    );
    let mknod = sh(&format!("mkfifo '{}'", base.join("newfifo").display()));
    assert!(!mknod.status.success());
    // The FIFO is listed as a FIFO and opening it does not hang the mount.
    let fifo = fs::symlink_metadata(base.join("fifo/pipe")).unwrap();
    assert!(std::os::unix::fs::FileTypeExt::is_fifo(&fifo.file_type()));
    // statfs reports the repository's size.
    let df = sh(&format!("stat -f -c '%b %S' '{}'", m.point.display()));
    let text = String::from_utf8_lossy(&df.stdout);
    let blocks: u64 = text.split_whitespace().next().unwrap().parse().unwrap();
    assert!(
        blocks * 4096 >= 3 << 20,
        "statfs shows the stored bytes: {text}"
    );
}

/// A `security.*` xattr a file lacks answers ENOTSUP, not ENODATA, so GNU `ls -l` (which asks
/// for `security.selinux` on every entry when no LSM answers it) stops asking after the first
/// entry instead of costing a FUSE round trip per entry. Other names still answer ENODATA, and
/// a `security.*` attribute the snapshot holds is listed and returned.
#[test]
fn absent_security_xattrs_are_unsupported_and_present_ones_are_served() {
    let Some((t, repo, src)) = fuse_setup() else {
        return;
    };
    fs::create_dir(&src).unwrap();
    fs::write(src.join("plain"), b"plain\n").unwrap();
    fs::write(src.join("ping"), b"#!/bin/true\n").unwrap();
    // struct vfs_cap_data, revision 2, effective, permitted = CAP_NET_RAW (13).
    let cap: [u8; 20] = [
        1, 0, 0, 2, 0, 0x20, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0,
    ];
    let caps_ok = xattr::set(src.join("ping"), "security.capability", &cap).is_ok();
    if !caps_ok {
        eprintln!(
            "SKIPPING the security.capability part: cannot set it under {}",
            src.display()
        );
    }
    backup(&repo, "web1", &src);
    let m = Mount::new(&repo, &t.path().join("mnt"), &[]);
    let inside = src.to_str().unwrap().trim_start_matches('/');
    let base = m.path(&format!("latest/web1/{inside}"));

    let selinux = xattr::get(base.join("plain"), "security.selinux");
    assert_eq!(
        selinux.as_ref().map_err(|e| e.raw_os_error()),
        Err(Some(nix::libc::ENOTSUP)),
        "an absent security.selinux: {selinux:?}"
    );
    assert_eq!(
        xattr::get(base.join("plain"), "user.absent").unwrap(),
        None,
        "an absent user xattr is ENODATA"
    );
    if caps_ok {
        assert_eq!(
            xattr::get(base.join("ping"), "security.capability").unwrap(),
            Some(cap.to_vec())
        );
        let names: Vec<_> = xattr::list(base.join("ping")).unwrap().collect();
        assert!(
            names.iter().any(|n| n == "security.capability"),
            "listed: {names:?}"
        );
    }
    // ls -l still lists both, without errors.
    let mut ls = Command::new("ls");
    ls.arg("-l").arg(&base);
    let ls = run_with_timeout(ls, YESTER_TIMEOUT);
    ls.expect_success();
    assert!(
        ls.stdout.contains("plain") && ls.stdout.contains("ping"),
        "{}",
        ls.stdout
    );
}

#[test]
fn grep_and_diff_between_points_match_the_originals() {
    let Some((t, repo, src)) = fuse_setup() else {
        return;
    };
    make_tree(&src);
    backup(&repo, "web1", &src);
    let old = t.path().join("old");
    assert!(Command::new("cp")
        .arg("-a")
        .arg(&src)
        .arg(&old)
        .status()
        .unwrap()
        .success());
    fs::write(src.join("etc/hosts"), "127.0.0.1 localhost needle\n").unwrap();
    fs::remove_file(src.join("var/www/empty.txt")).unwrap();
    fs::write(src.join("var/www/new.html"), "needle\n").unwrap();
    backup(&repo, "web1", &src);
    let m = Mount::new(&repo, &t.path().join("mnt"), &[]);
    let inside = src.to_str().unwrap().trim_start_matches('/');
    let p0 = m.path(&format!("hourly.0/web1/{inside}"));
    let p1 = m.path(&format!("hourly.1/web1/{inside}"));

    let grep = |d: &Path| {
        let out = sh(&format!(
            "cd '{}' && grep -r -n needle . --exclude-dir=fifo | LC_ALL=C sort",
            d.display()
        ));
        String::from_utf8_lossy(&out.stdout).into_owned()
    };
    assert_eq!(grep(&p0), grep(&src));
    assert_eq!(grep(&p1), grep(&old));
    assert!(grep(&p0).contains("etc/hosts"));

    let diff = |a: &Path, b: &Path| {
        let out = Command::new("diff")
            .args(["-r", "-x", "fifo"])
            .arg(a)
            .arg(b)
            .output()
            .unwrap();
        String::from_utf8_lossy(&out.stdout)
            .replace(a.to_str().unwrap(), "A")
            .replace(b.to_str().unwrap(), "B")
    };
    let mounted = diff(&p1, &p0);
    assert_eq!(mounted, diff(&old, &src));
    assert!(
        mounted.contains("new.html") && mounted.contains("empty.txt"),
        "{mounted}"
    );
}

#[test]
fn other_users_read_only_what_modes_allow() {
    if !fuse_available() {
        return;
    }
    if !nix::unistd::geteuid().is_root() {
        eprintln!("SKIPPING permission test: needs root to create files owned by root and run a reader as nobody");
        return;
    }
    let t = open_tempdir();
    let repo = t.path().join("repo");
    init(&repo);
    let src = t.path().join("data");
    fs::create_dir(&src).unwrap();
    fs::set_permissions(&src, fs::Permissions::from_mode(0o755)).unwrap();
    fs::write(src.join("secret"), "root only\n").unwrap();
    fs::set_permissions(src.join("secret"), fs::Permissions::from_mode(0o600)).unwrap();
    fs::write(src.join("public"), "everyone\n").unwrap();
    fs::set_permissions(src.join("public"), fs::Permissions::from_mode(0o644)).unwrap();
    backup(&repo, "web1", &src);
    // Mount just this directory (as /.yesterday would be), shared with every user.
    let inside = src.to_str().unwrap().trim_start_matches('/');
    let m = Mount::new(
        &repo,
        &t.path().join("mnt"),
        &["--allow-other", "--path", &format!("latest/web1/{inside}")],
    );
    let as_nobody = |file: &str| {
        Command::new("setpriv")
            .args(["--reuid=65534", "--regid=65534", "--clear-groups", "cat"])
            .arg(m.path(file))
            .output()
            .unwrap()
    };
    let out = as_nobody("public");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(out.stdout, b"everyone\n");
    let out = as_nobody("secret");
    assert!(!out.status.success());
    assert!(out.stdout.is_empty());
    assert!(String::from_utf8_lossy(&out.stderr).contains("Permission denied"));
    // Root still reads it.
    assert_eq!(fs::read(m.path("secret")).unwrap(), b"root only\n");
}

#[test]
fn huge_directory_and_gigabyte_file() {
    if !fuse_available() {
        return;
    }
    let big_mb: usize = std::env::var("YESTER_TEST_BIG_MB")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(1024);
    let entries: usize = std::env::var("YESTER_TEST_DIR_ENTRIES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(100_000);
    let t = open_tempdir();
    let repo = t.path().join("repo");
    init(&repo);
    let src = t.path().join("src");
    let many = src.join("many");
    fs::create_dir_all(&many).unwrap();
    for i in 0..entries {
        fs::File::create(many.join(format!("entry-{i:06}"))).unwrap();
    }
    // A VM-image-like file: random blocks with zero runs between them.
    {
        use std::io::Write;
        let mut f = std::io::BufWriter::new(fs::File::create(src.join("disk.img")).unwrap());
        for mb in 0..big_mb {
            if mb % 4 == 3 {
                f.write_all(&vec![0u8; 1 << 20]).unwrap();
            } else {
                f.write_all(&random_bytes(mb as u64 + 1, 1 << 20)).unwrap();
            }
        }
    }
    backup(&repo, "vm", &src);
    let m = Mount::new(&repo, &t.path().join("mnt"), &[]);
    let inside = src.to_str().unwrap().trim_start_matches('/');
    let base = m.path(&format!("latest/vm/{inside}"));
    let listed = fs::read_dir(base.join("many")).unwrap().count();
    assert_eq!(listed, entries);
    let out = sh(&format!("ls -f '{}' | wc -l", base.join("many").display()));
    assert_eq!(
        String::from_utf8_lossy(&out.stdout).trim(),
        (entries + 2).to_string()
    );
    let started = Instant::now();
    let same = Command::new("cmp")
        .arg(src.join("disk.img"))
        .arg(base.join("disk.img"))
        .status()
        .unwrap();
    eprintln!(
        "cmp of the {big_mb} MiB file through the mount took {:?}",
        started.elapsed()
    );
    assert!(same.success(), "the big file reads back identical");
}

/// A snapshot forgotten under a running mount leaves the listings that showed it, although
/// the newest snapshot (whose time the virtual directories show) stays the same: the kernel
/// keeps every listing cached and drops it only when the directory's mtime moves.
#[test]
fn forgotten_snapshots_leave_a_running_mount() {
    let Some((t, repo, src)) = fuse_setup() else {
        return;
    };
    fs::create_dir(&src).unwrap();
    fs::write(src.join("f"), "one\n").unwrap();
    let old = backup(&repo, "web1", &src);
    fs::write(src.join("f"), "two\n").unwrap();
    backup(&repo, "web1", &src);
    let m = Mount::new(&repo, &t.path().join("mnt"), &[]);
    let names = |dir: &str| -> Vec<String> {
        let mut v: Vec<String> = fs::read_dir(m.path(dir))
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        v.sort();
        v
    };
    let before = names("snapshots/web1");
    assert_eq!(before.len(), 2, "{before:?}");
    let all_before = names("snapshots");
    ok(&repo, &["forget", &old]);
    let deadline = Instant::now() + Duration::from_secs(10);
    while names("snapshots/web1").len() != 1 {
        assert!(
            Instant::now() < deadline,
            "the forgotten snapshot is still listed after 10 s: {:?}",
            names("snapshots/web1")
        );
        std::thread::sleep(Duration::from_millis(200));
    }
    assert_eq!(names("snapshots"), all_before, "the source is still there");
    let left = names("snapshots/web1");
    assert!(before.contains(&left[0]), "{left:?} not among {before:?}");
}

#[test]
fn new_backups_appear_in_a_running_mount() {
    let Some((t, repo, src)) = fuse_setup() else {
        return;
    };
    fs::create_dir(&src).unwrap();
    fs::write(src.join("today"), "version 1\n").unwrap();
    fs::write(src.join("big"), random_bytes(9, 6 << 20)).unwrap();
    backup(&repo, "web1", &src);
    let inside = src.to_str().unwrap().trim_start_matches('/');
    // Like /.yesterday: the mount root follows the point.
    let m = Mount::new(&repo, &t.path().join("mnt"), &["--path", "hourly.0/web1"]);
    let whole = Mount::new(&repo, &t.path().join("mnt-all"), &[]);
    let file = m.path(&format!("{inside}/today"));
    assert_eq!(fs::read_to_string(&file).unwrap(), "version 1\n");
    let mut open_big = fs::File::open(m.path(&format!("{inside}/big"))).unwrap();
    let mut first = vec![0u8; 4096];
    std::io::Read::read_exact(&mut open_big, &mut first).unwrap();

    fs::write(src.join("today"), "version 2\n").unwrap();
    fs::write(src.join("big"), random_bytes(10, 6 << 20)).unwrap();
    fs::write(src.join("added"), "new file\n").unwrap();
    backup(&repo, "web1", &src);
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        if fs::read_to_string(&file).ok().as_deref() == Some("version 2\n") {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the new backup did not show up within 10 s"
        );
        std::thread::sleep(Duration::from_millis(200));
    }
    assert_eq!(
        fs::read_to_string(m.path(&format!("{inside}/added"))).unwrap(),
        "new file\n"
    );
    assert_eq!(
        fs::read_to_string(whole.path(&format!("hourly.1/web1/{inside}/today"))).unwrap(),
        "version 1\n"
    );
    // The file opened before keeps reading the snapshot it was opened from.
    let mut rest = Vec::new();
    std::io::Read::read_to_end(&mut open_big, &mut rest).unwrap();
    first.extend_from_slice(&rest);
    assert!(
        first == random_bytes(9, 6 << 20),
        "an open file keeps its snapshot's content"
    );
}

#[test]
fn mount_helper_and_clean_shutdown() {
    let Some((t, repo, src)) = fuse_setup() else {
        return;
    };
    fs::create_dir(&src).unwrap();
    fs::write(src.join("f"), "hello\n").unwrap();
    backup(&repo, "web1", &src);
    let inside = src.to_str().unwrap().trim_start_matches('/');

    // mount.yester as mount(8) calls it.
    let helper = Path::new(env!("CARGO_MANIFEST_DIR")).join("mount-helpers/mount.yester");
    let point = t.path().join("yesterday");
    fs::create_dir(&point).unwrap();
    let mut cmd = mount_command(&helper);
    cmd.arg(format!("{}:daily.0/web1", repo.display()))
        .arg(&point)
        .args(["-o", "rw,allow_other,nosuid,_netdev"]);
    let out = run_with_timeout(cmd, YESTER_TIMEOUT);
    assert!(!out.status.success(), "daily.0 does not exist yet");
    assert!(out.stderr.contains("daily.0"), "{}", out.stderr);
    let mut cmd = mount_command(&helper);
    cmd.arg(format!("{}:hourly.0/web1", repo.display()))
        .arg(&point)
        .args(["-o", "rw,allow_other,nosuid,_netdev,cache_size=64MiB"]);
    let out = run_with_timeout(cmd, YESTER_TIMEOUT);
    assert!(out.status.success(), "{}", out.stderr);
    let guard = Mount {
        point: fs::canonicalize(&point).unwrap(),
    };
    assert_eq!(
        fs::read_to_string(point.join(format!("{inside}/f"))).unwrap(),
        "hello\n"
    );
    drop(guard);
    assert!(!is_mounted(&fs::canonicalize(&point).unwrap()));

    // Through mount(8) itself when the helper can be installed where mount looks for it.
    let installed = Path::new("/usr/sbin/mount.yester");
    if nix::unistd::geteuid().is_root()
        && !installed.exists()
        && fs::copy(&helper, installed).is_ok()
    {
        let mut cmd = mount_command(Path::new("mount"));
        cmd.args(["-t", "yester"])
            .arg(format!("{}:hourly.0/web1", repo.display()))
            .arg(&point)
            .args(["-o", "allow_other"]);
        let out = run_with_timeout(cmd, YESTER_TIMEOUT);
        let _ = fs::remove_file(installed);
        assert!(out.status.success(), "mount -t yester: {}", out.stderr);
        let guard = Mount {
            point: fs::canonicalize(&point).unwrap(),
        };
        assert_eq!(
            fs::read_to_string(point.join(format!("{inside}/f"))).unwrap(),
            "hello\n"
        );
        let st = Command::new("umount").arg(&point).status().unwrap();
        assert!(st.success());
        drop(guard);
    } else {
        eprintln!("SKIPPING `mount -t yester` part: cannot install /usr/sbin/mount.yester here");
    }

    // SIGTERM to a foreground mount unmounts cleanly.
    let mut child = yester(&repo)
        .args(["mount", "--foreground"])
        .arg(&point)
        .spawn()
        .unwrap();
    let canon = fs::canonicalize(&point).unwrap();
    let deadline = Instant::now() + Duration::from_secs(20);
    while !is_mounted(&canon) {
        assert!(
            Instant::now() < deadline,
            "foreground mount did not come up"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(child.id() as i32),
        nix::sys::signal::Signal::SIGTERM,
    )
    .unwrap();
    let status = child.wait().unwrap();
    assert!(status.success(), "{status:?}");
    assert!(!is_mounted(&canon), "unmounted on SIGTERM");
}

//! The NFSv3 server with a real client (libnfs-utils: nfs-ls, nfs-cat, nfs-cp) and a raw RPC
//! client for what the tools cannot show: handles, credentials, ports, page sizes, garbage.
//!
//! Longer than 600 lines on purpose: each file under `tests/` is a test binary of its own that
//! links the whole crate, so these related tests share one file rather than adding a binary
//! (and its link time) to every run of the suite.

// Tests unwrap freely: a panic is how a test fails (the crate denies it elsewhere).
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;
use common::cli::ok_at as ok;
use common::xdr::{get_opaque, get_u32, put_opaque, put_u32, Conn, Reply};
use common::{proc_status_kib, NfsServer, Yester};

use std::ffi::OsStr;
use std::fs;
use std::io::Write;
use std::net::TcpStream;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::time::{Duration, Instant};

fn have_client() -> bool {
    let ok = Command::new("nfs-ls").output().is_ok();
    if !ok {
        eprintln!("SKIPPING NFS TEST: nfs-ls not found (apt-get install libnfs-utils)");
    }
    ok
}

fn backup(repo: &Path, source: &str, path: &Path) -> String {
    common::cli::backup_at(repo, source, path, &[])
}

/// `yester nfs serve` (tests/common's server), with an exports file holding `exports` if
/// given.
fn start_server(repo: &Path, key: &Path, exports: Option<&str>, dir: &Path) -> NfsServer {
    match exports {
        Some(text) => {
            let f = dir.join(format!("exports-{}", rand_suffix()));
            fs::write(&f, text).unwrap();
            NfsServer::start(repo, key, &[OsStr::new("--exports"), f.as_os_str()])
        }
        None => NfsServer::start(repo, key, &[]),
    }
}

fn rss_kib(srv: &NfsServer) -> u64 {
    proc_status_kib(srv.pid(), "VmRSS").unwrap_or(0)
}

fn rand_suffix() -> String {
    let n = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_nanos();
    format!("{n}")
}

fn tool(cmd: &str, args: &[&str]) -> Output {
    Command::new(cmd).args(args).output().unwrap()
}

// ---- a raw ONC RPC client -------------------------------------------------------------------

struct Rpc(Conn);

impl Rpc {
    /// Connect from a given local port (privileged ports need root).
    fn connect(port: u16, local_port: Option<u16>) -> Rpc {
        Rpc(Conn::connect(1, local_port.unwrap_or(0), port))
    }

    fn call(&mut self, prog: u32, proc_: u32, uid: u32, gid: u32, args: &[u8]) -> Reply {
        self.0.call(prog, proc_, uid, gid, args)
    }

    /// MOUNT MNT: the status and the root handle.
    fn mnt(&mut self, path: &str, uid: u32) -> (u32, Vec<u8>) {
        let mut a = Vec::new();
        put_opaque(&mut a, path.as_bytes());
        let r = self.call(100005, 1, uid, uid, &a);
        let st = r.status();
        let mut pos = 4;
        (
            st,
            if st == 0 {
                get_opaque(&r.body, &mut pos)
            } else {
                Vec::new()
            },
        )
    }

    fn getattr(&mut self, fh: &[u8], uid: u32) -> u32 {
        let mut a = Vec::new();
        put_opaque(&mut a, fh);
        self.call(100003, 1, uid, uid, &a).status()
    }

    /// LOOKUP: status and the handle.
    fn lookup(&mut self, dir: &[u8], name: &str, uid: u32) -> (u32, Vec<u8>) {
        let mut a = Vec::new();
        put_opaque(&mut a, dir);
        put_opaque(&mut a, name.as_bytes());
        let r = self.call(100003, 3, uid, uid, &a);
        let st = r.status();
        let mut pos = 4;
        (
            st,
            if st == 0 {
                get_opaque(&r.body, &mut pos)
            } else {
                Vec::new()
            },
        )
    }

    /// All names of a directory through READDIR (or READDIRPLUS) pages of the given size.
    fn list(&mut self, dir: &[u8], plus: bool, count: u32) -> Vec<String> {
        let mut names = Vec::new();
        let mut cookie = 0u64;
        for _ in 0..100_000 {
            let p = self.page(dir, plus, cookie, [0; 8], count, count * 4);
            assert_eq!(p.status, 0, "readdir page");
            names.extend(p.names);
            cookie = p.last;
            if p.eof {
                return names;
            }
        }
        panic!("listing did not end");
    }
}

/// One READDIR(PLUS) reply, taken apart.
struct Page {
    status: u32,
    verf: [u8; 8],
    /// The cookie of the last entry (the one sent when there is none).
    last: u64,
    names: Vec<String>,
    eof: bool,
    /// The size of the reply's body.
    len: usize,
}

impl Rpc {
    /// One READDIRPLUS (or READDIR, which sends only `dircount`) page from `cookie` with
    /// `verf`.
    fn page(
        &mut self,
        dir: &[u8],
        plus: bool,
        cookie: u64,
        verf: [u8; 8],
        dircount: u32,
        maxcount: u32,
    ) -> Page {
        let mut a = Vec::new();
        put_opaque(&mut a, dir);
        a.extend_from_slice(&cookie.to_be_bytes());
        a.extend_from_slice(&verf);
        put_u32(&mut a, dircount);
        if plus {
            put_u32(&mut a, maxcount);
        }
        let r = self.call(100003, if plus { 17 } else { 16 }, 0, 0, &a);
        let b = &r.body;
        let mut page = Page {
            status: r.status(),
            verf: [0; 8],
            last: cookie,
            names: Vec::new(),
            eof: false,
            len: b.len(),
        };
        if page.status != 0 {
            return page;
        }
        let mut pos = 4;
        if get_u32(b, &mut pos) == 1 {
            pos += 84; // dir attributes
        }
        page.verf = b[pos..pos + 8].try_into().unwrap();
        pos += 8;
        while get_u32(b, &mut pos) == 1 {
            pos += 8; // fileid
            page.names
                .push(String::from_utf8_lossy(&get_opaque(b, &mut pos)).into_owned());
            page.last = u64::from_be_bytes(b[pos..pos + 8].try_into().unwrap());
            pos += 8;
            if plus {
                if get_u32(b, &mut pos) == 1 {
                    pos += 84;
                }
                if get_u32(b, &mut pos) == 1 {
                    get_opaque(b, &mut pos);
                }
            }
        }
        page.eof = get_u32(b, &mut pos) == 1;
        page
    }

    /// The handle of `many` in web1's hourly.0 (1000 files), mounted as root.
    fn many(&mut self, src: &Path) -> Vec<u8> {
        let (st, mut fh) = self.mnt("/hourly.0/web1", 0);
        assert_eq!(st, 0);
        for c in inside(src).split('/').chain(["many"]) {
            fh = self.lookup(&fh, c, 0).1;
        }
        fh
    }
}

// ---- tests ------------------------------------------------------------------------------------

/// A repository with a tree of the usual kinds, backed up as source web1 (and db1).
fn setup() -> (tempfile::TempDir, PathBuf, PathBuf, String) {
    let t = tempfile::tempdir().unwrap();
    fs::set_permissions(t.path(), fs::Permissions::from_mode(0o755)).unwrap();
    let repo = t.path().join("repo");
    assert!(Yester::new()
        .arg("init")
        .arg(&repo)
        .status()
        .unwrap()
        .success());
    let src = t.path().join("src");
    fs::create_dir_all(src.join("etc/nginx")).unwrap();
    fs::create_dir_all(src.join("many")).unwrap();
    fs::set_permissions(&src, fs::Permissions::from_mode(0o755)).unwrap();
    fs::write(src.join("etc/hosts"), "127.0.0.1 localhost\n").unwrap();
    fs::write(src.join("etc/nginx/nginx.conf"), "server {}\n".repeat(1000)).unwrap();
    fs::write(src.join("secret"), "root only\n").unwrap();
    fs::set_permissions(src.join("secret"), fs::Permissions::from_mode(0o600)).unwrap();
    fs::write(src.join("public"), "everyone\n").unwrap();
    fs::set_permissions(src.join("public"), fs::Permissions::from_mode(0o644)).unwrap();
    std::os::unix::fs::symlink("etc/hosts", src.join("hosts-link")).unwrap();
    fs::hard_link(src.join("public"), src.join("public-link")).unwrap();
    for i in 0..1000 {
        fs::write(src.join(format!("many/f{i:04}")), format!("{i}")).unwrap();
    }
    let id = backup(&repo, "web1", &src);
    backup(&repo, "db1", &src.join("etc"));
    (t, repo, src, id)
}

fn inside(p: &Path) -> String {
    p.to_str().unwrap().trim_start_matches('/').to_string()
}

/// Parse `nfs-ls` lines into (path, mode string, nlink, uid, gid, size).
fn nfs_listing(out: &[u8]) -> Vec<String> {
    let mut v: Vec<String> = String::from_utf8_lossy(out)
        .lines()
        .map(|l| l.split_whitespace().collect::<Vec<_>>().join(" "))
        .collect();
    v.sort();
    v
}

/// The same listing made from a FUSE mount.
fn fuse_listing(root: &Path) -> Vec<String> {
    use std::os::unix::fs::MetadataExt;
    let mut out = Vec::new();
    let mut stack = vec![root.to_path_buf()];
    while let Some(d) = stack.pop() {
        for e in fs::read_dir(&d).unwrap() {
            let e = e.unwrap();
            let m = fs::symlink_metadata(e.path()).unwrap();
            let t = if m.is_dir() {
                'd'
            } else if m.file_type().is_symlink() {
                'l'
            } else {
                '-'
            };
            let mut mode = String::from(t);
            for (i, c) in "rwxrwxrwx".chars().enumerate() {
                mode.push(if m.mode() & (0o400 >> i) != 0 { c } else { '-' });
            }
            let rel = e
                .path()
                .strip_prefix(root)
                .unwrap()
                .to_string_lossy()
                .into_owned();
            out.push(format!(
                "{mode} {} {} {} {} {rel}",
                m.nlink(),
                m.uid(),
                m.gid(),
                m.size()
            ));
            if m.is_dir() {
                stack.push(e.path());
            }
        }
    }
    out.sort();
    out
}

#[test]
fn nfs_listing_matches_the_fuse_view_and_reads_are_exact() {
    if !have_client() {
        return;
    }
    let (t, repo, src, _) = setup();
    let key = t.path().join("key");
    let srv = start_server(&repo, &key, None, t.path());
    let export = format!("/hourly.0/web1/{}", inside(&src));

    let out = tool("nfs-ls", &["-R", &srv.url(&export)]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let nfs = nfs_listing(&out.stdout);
    assert_eq!(nfs.len(), 1000 + 9, "every entry, once: {:?}", &nfs[..5]);

    if Path::new("/dev/fuse").exists() && Command::new("fusermount3").arg("-V").output().is_ok() {
        let mnt = t.path().join("mnt");
        fs::create_dir(&mnt).unwrap();
        ok(&repo, &["mount", mnt.to_str().unwrap()]);
        let fuse = fuse_listing(&mnt.join(export.trim_start_matches('/')));
        let _ = Command::new("fusermount3").arg("-u").arg(&mnt).status();
        assert_eq!(nfs, fuse, "nfs-ls -R and the FUSE mount show the same tree");
    } else {
        eprintln!("SKIPPING the FUSE comparison: no /dev/fuse or fusermount3");
    }

    // Content through nfs-cat and nfs-cp.
    let out = tool(
        "nfs-cat",
        &[&srv.url(&format!("{export}/etc/nginx/nginx.conf"))],
    );
    assert_eq!(
        out.stdout,
        fs::read(src.join("etc/nginx/nginx.conf")).unwrap()
    );
    let copy = t.path().join("copy");
    let out = tool(
        "nfs-cp",
        &[
            &srv.url(&format!("{export}/hosts-link")),
            copy.to_str().unwrap(),
        ],
    );
    assert!(
        out.status.success() || fs::read(&copy).is_ok(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );

    // Writes fail read-only.
    let local = t.path().join("upload");
    fs::write(&local, "x").unwrap();
    let out = tool(
        "nfs-cp",
        &[
            local.to_str().unwrap(),
            &srv.url(&format!("{export}/uploaded")),
        ],
    );
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("ROFS"), "{err}");
}

#[test]
fn gigabyte_file_and_hundred_thousand_entries() {
    if !have_client() {
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
    let t = tempfile::tempdir().unwrap();
    let repo = t.path().join("repo");
    assert!(Yester::new()
        .arg("init")
        .arg(&repo)
        .status()
        .unwrap()
        .success());
    let src = t.path().join("src");
    fs::create_dir_all(src.join("many")).unwrap();
    for i in 0..entries {
        fs::File::create(src.join(format!("many/e{i:06}"))).unwrap();
    }
    {
        let mut f = std::io::BufWriter::new(fs::File::create(src.join("disk.img")).unwrap());
        let mut x: u64 = 12345;
        let mut block = vec![0u8; 1 << 20];
        for mb in 0..big_mb {
            if mb % 3 != 2 {
                for c in block.chunks_mut(8) {
                    x ^= x << 13;
                    x ^= x >> 7;
                    x ^= x << 17;
                    c.copy_from_slice(&x.to_le_bytes());
                }
            } else {
                block.fill(0);
            }
            f.write_all(&block).unwrap();
        }
    }
    backup(&repo, "vm", &src);
    let srv = start_server(&repo, &t.path().join("key"), None, t.path());
    let export = format!("/latest/vm/{}", inside(&src));
    let out = tool("nfs-ls", &[&srv.url(&format!("{export}/many"))]);
    assert!(out.status.success());
    assert_eq!(
        String::from_utf8_lossy(&out.stdout).lines().count(),
        entries
    );
    // READDIRPLUS of all of it at once (count=0xffffffff) was an 18.8 MB reply: now at most
    // the advertised maximum, and paging on from there still lists every entry once.
    let mut rpc = Rpc::connect(srv.port, Some(710));
    let (st, mut fh) = rpc.mnt(&export, 0);
    assert_eq!(st, 0);
    fh = rpc.lookup(&fh, "many", 0).1;
    let p = rpc.page(&fh, true, 0, [0; 8], u32::MAX, u32::MAX);
    assert_eq!(p.status, 0);
    assert!(p.len <= 1 << 20, "a {}-byte READDIRPLUS reply", p.len);
    assert!(
        p.names.len() > 1000,
        "{} entries in the first reply",
        p.names.len()
    );
    assert_eq!(rpc.list(&fh, true, 1 << 20).len(), entries + 2);
    let copy = t.path().join("disk.copy");
    let started = Instant::now();
    let out = tool(
        "nfs-cp",
        &[
            &srv.url(&format!("{export}/disk.img")),
            copy.to_str().unwrap(),
        ],
    );
    eprintln!("nfs-cp of {big_mb} MiB took {:?}", started.elapsed());
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(Command::new("cmp")
        .arg(&copy)
        .arg(src.join("disk.img"))
        .status()
        .unwrap()
        .success());
}

#[test]
fn exports_decide_who_mounts_what() {
    if !have_client() {
        return;
    }
    let (t, repo, src, _) = setup();
    let key = t.path().join("key");
    let path = inside(&src);
    {
        let srv = start_server(&repo, &key, Some("/ 127.0.0.2\n"), t.path());
        let out = tool("nfs-ls", &[&srv.url("/hourly.0/web1")]);
        assert!(!out.status.success(), "127.0.0.1 is not allowed");
        assert!(String::from_utf8_lossy(&out.stderr).contains("MNT3ERR_ACCES"));
    }
    let srv = start_server(&repo, &key, Some("/*/web1 127.0.0.1\n"), t.path());
    let out = tool("nfs-ls", &[&srv.url(&format!("/hourly.0/web1/{path}"))]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    for other in ["/hourly.0/db1", "/", "/hourly.0", "/latest/db1"] {
        let out = tool("nfs-ls", &[&srv.url(other)]);
        assert!(!out.status.success(), "{other} must be refused");
    }
    // A handle issued under an export stops working when the exports stop allowing it.
    let mut rpc = Rpc::connect(srv.port, Some(700));
    let (st, fh) = rpc.mnt("/hourly.0/web1", 0);
    assert_eq!(st, 0);
    assert_eq!(rpc.getattr(&fh, 0), 0);
    drop(rpc);
    drop(srv);
    let srv = start_server(&repo, &key, Some("/*/web1 127.0.0.2\n"), t.path());
    let mut rpc = Rpc::connect(srv.port, Some(701));
    assert_eq!(
        rpc.getattr(&fh, 0),
        13,
        "NFS3ERR_ACCES for a client the export no longer lists"
    );
}

#[test]
fn credentials_are_squashed_and_modes_enforced() {
    if !have_client() {
        return;
    }
    let (t, repo, src, _) = setup();
    let key = t.path().join("key");
    let export = format!("/hourly.0/web1/{}", inside(&src));
    let cat = |srv: &NfsServer, file: &str, creds: &str| {
        tool(
            "nfs-cat",
            &[&format!("{}{creds}", srv.url(&format!("{export}/{file}")))],
        )
    };
    {
        let srv = start_server(&repo, &key, None, t.path());
        let out = cat(&srv, "public", "&uid=1000&gid=1000");
        assert_eq!(
            out.stdout,
            b"everyone\n",
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        let out = cat(&srv, "secret", "&uid=1000&gid=1000");
        assert!(out.stdout.is_empty() && String::from_utf8_lossy(&out.stderr).contains("ACCES"));
        let out = cat(&srv, "secret", "&uid=0&gid=0");
        assert!(out.stdout.is_empty(), "root is squashed by default");
    }
    let srv = start_server(&repo, &key, Some("/ 127.0.0.1(no_root_squash)\n"), t.path());
    assert_eq!(cat(&srv, "secret", "&uid=0&gid=0").stdout, b"root only\n");
    assert!(cat(&srv, "secret", "&uid=1000&gid=1000").stdout.is_empty());
    drop(srv);
    let srv = start_server(
        &repo,
        &key,
        Some("/ 127.0.0.1(no_root_squash,all_squash)\n"),
        t.path(),
    );
    assert!(
        cat(&srv, "secret", "&uid=0&gid=0").stdout.is_empty(),
        "all_squash"
    );
    assert_eq!(cat(&srv, "public", "&uid=0&gid=0").stdout, b"everyone\n");
}

#[test]
fn secure_ports_by_default_insecure_on_request() {
    if !have_client() {
        return;
    }
    if !nix::unistd::geteuid().is_root() {
        eprintln!("SKIPPING secure-port test: binding ports below 1024 needs root");
        return;
    }
    let (t, repo, _src, _) = setup();
    let key = t.path().join("key");
    let srv = start_server(&repo, &key, None, t.path());
    let mut low = Rpc::connect(srv.port, Some(702));
    let (st, fh) = low.mnt("/hourly.0/web1", 0);
    assert_eq!(st, 0);
    let mut high = Rpc::connect(srv.port, Some(40702));
    assert_eq!(
        high.mnt("/hourly.0/web1", 0).0,
        1,
        "MNT3ERR_PERM from an unprivileged port"
    );
    assert_eq!(
        high.getattr(&fh, 0),
        1,
        "NFS3ERR_PERM from an unprivileged port"
    );
    // The real client as an unprivileged user (it cannot bind a low port).
    let out = Command::new("setpriv")
        .args(["--reuid=65534", "--regid=65534", "--clear-groups", "nfs-ls"])
        .arg(srv.url("/hourly.0/web1"))
        .output()
        .unwrap();
    assert!(!out.status.success());
    drop(srv);
    let srv = start_server(&repo, &key, Some("/ 127.0.0.1(insecure)\n"), t.path());
    let mut high = Rpc::connect(srv.port, Some(40703));
    let (st, fh2) = high.mnt("/hourly.0/web1", 0);
    assert_eq!(st, 0);
    assert_eq!(high.getattr(&fh2, 0), 0);
    let out = Command::new("setpriv")
        .args(["--reuid=65534", "--regid=65534", "--clear-groups", "nfs-ls"])
        .arg(srv.url("/hourly.0/web1"))
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

#[test]
fn handles_survive_restarts_and_rotations_and_resist_tampering() {
    if !have_client() {
        return;
    }
    let (t, repo, src, first) = setup();
    let key = t.path().join("key");
    let srv = start_server(&repo, &key, None, t.path());
    let mut rpc = Rpc::connect(srv.port, Some(704));
    let (st, point) = rpc.mnt("/hourly.0/web1", 0);
    assert_eq!(st, 0);
    // A file handle inside the first snapshot, found by LOOKUPs from its dated directory.
    let dated = ok(&repo, &["snapshots", "--json"]);
    let v: serde_json::Value = serde_json::from_str(&dated).unwrap();
    let date = v
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["id"] == first.as_str())
        .unwrap()["dated_name"]
        .as_str()
        .unwrap()
        .to_string();
    let (st, mut fh) = rpc.mnt(&format!("/snapshots/web1/{date}"), 0);
    assert_eq!(st, 0);
    for c in inside(&src).split('/').chain(["public"]) {
        let (st, next) = rpc.lookup(&fh, c, 0);
        assert_eq!(st, 0, "lookup {c}");
        fh = next;
    }
    assert!(fh.len() <= 64);
    assert_eq!(rpc.getattr(&fh, 0), 0);
    drop(rpc);
    drop(srv);

    // After a restart, and after a new backup moved hourly.0, both handles still work.
    fs::write(src.join("etc/hosts"), "changed\n").unwrap();
    backup(&repo, "web1", &src);
    let srv = start_server(&repo, &key, None, t.path());
    let mut rpc = Rpc::connect(srv.port, Some(705));
    assert_eq!(
        rpc.getattr(&point, 0),
        0,
        "the point handle survives restart and rotation"
    );
    assert_eq!(rpc.getattr(&fh, 0), 0, "the file handle survives restart");
    // Every flipped byte is refused (BADHANDLE), never served.
    for i in 0..fh.len() {
        let mut bad = fh.clone();
        bad[i] ^= 0x20;
        assert_eq!(rpc.getattr(&bad, 0), 10001, "byte {i}");
    }
    // Another server key: not ours.
    drop(rpc);
    drop(srv);
    let other = start_server(&repo, &t.path().join("other-key"), None, t.path());
    let mut rpc = Rpc::connect(other.port, Some(706));
    assert_eq!(rpc.getattr(&fh, 0), 10001);
    drop(rpc);
    drop(other);

    // The snapshot is forgotten and pruned: STALE.
    ok(&repo, &["forget", &first]);
    ok(&repo, &["prune"]);
    let srv = start_server(&repo, &key, None, t.path());
    let mut rpc = Rpc::connect(srv.port, Some(707));
    assert_eq!(rpc.getattr(&fh, 0), 70, "NFS3ERR_STALE");
    assert_eq!(rpc.getattr(&point, 0), 0);
}

#[test]
fn readdir_pages_list_every_entry_once() {
    if !have_client() {
        return;
    }
    let (t, repo, src, _) = setup();
    let srv = start_server(&repo, &t.path().join("key"), None, t.path());
    let mut rpc = Rpc::connect(srv.port, Some(708));
    let fh = rpc.many(&src);
    let mut want: Vec<String> = (0..1000).map(|i| format!("f{i:04}")).collect();
    want.push(".".into());
    want.push("..".into());
    want.sort();
    for plus in [false, true] {
        for count in [256u32, 700, 4096, 65536, 1 << 20] {
            let mut got = rpc.list(&fh, plus, count);
            got.sort();
            assert_eq!(got, want, "plus {plus}, count {count}");
        }
    }
    // However much a client asks for, a reply is at most the advertised maximum (rtmax).
    for plus in [false, true] {
        let p = rpc.page(&fh, plus, 0, [0; 8], u32::MAX, u32::MAX);
        assert_eq!(p.status, 0);
        assert!(!p.names.is_empty());
        assert!(
            p.len <= 1 << 20,
            "a {}-byte reply for count=0xffffffff",
            p.len
        );
    }
    // Hard links (two names, one fileid) both appear.
    let (_, mut dir) = rpc.mnt("/hourly.0/web1", 0);
    for c in inside(&src).split('/') {
        dir = rpc.lookup(&dir, c, 0).1;
    }
    let names = rpc.list(&dir, true, 300);
    assert!(names.contains(&"public".to_string()) && names.contains(&"public-link".to_string()));
}

/// A point directory's listing changes at a rotation: a cookie handed out under the old
/// listing's verifier gets NFS3ERR_BAD_COOKIE (it could skip or repeat entries), and a fresh
/// listing lists every entry exactly once.
#[test]
fn an_old_cookie_of_a_changed_listing_is_refused() {
    if !have_client() {
        return;
    }
    let (t, repo, src, _) = setup();
    let srv = start_server(&repo, &t.path().join("key"), None, t.path());
    let mut rpc = Rpc::connect(srv.port, Some(709));
    let fh = rpc.many(&src);
    let p = rpc.page(&fh, false, 0, [0; 8], 1024, 1024);
    let (verf, cookie, first) = (p.verf, p.last, p.names);
    assert_eq!(p.status, 0);
    assert!(cookie > 2 && !first.is_empty(), "a first page: {first:?}");
    assert_ne!(verf, [0; 8], "a real verifier");
    // The next page under the same verifier goes on where the first stopped.
    let next = rpc.page(&fh, false, cookie, verf, 1024, 1024);
    assert_eq!((next.status, next.verf), (0, verf));
    assert!(next.names.iter().all(|n| !first.contains(n)));

    fs::write(src.join("many/added"), "new").unwrap();
    backup(&repo, "web1", &src);
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let st = rpc.page(&fh, false, cookie, verf, 1024, 1024).status;
        if st == 10003 {
            break; // NFS3ERR_BAD_COOKIE
        }
        assert_eq!(st, 0);
        assert!(
            Instant::now() < deadline,
            "an old cookie of the changed listing is still accepted"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    let mut got = rpc.list(&fh, true, 700);
    got.sort();
    let mut want: Vec<String> = (0..1000).map(|i| format!("f{i:04}")).collect();
    want.extend([".".to_string(), "..".to_string(), "added".to_string()]);
    want.sort();
    assert_eq!(got, want, "a fresh listing lists every entry once");
}

/// Versions other than NFS 3 and MOUNT 3 get PROG_MISMATCH with the supported range (so a
/// client that tries 4 first falls back to 3), and credentials of a flavor the server does not
/// know get an authentication error (RFC 5531), never the anonymous user's access.
#[test]
fn other_versions_and_auth_flavors_are_refused_as_rfc_5531_says() {
    if !have_client() {
        return;
    }
    let (t, repo, _, _) = setup();
    let srv = start_server(&repo, &t.path().join("key"), None, t.path());
    let mut rpc = Rpc::connect(srv.port, Some(711));
    const PROG_MISMATCH: u32 = 2;
    for (prog, vers) in [(100003, 2), (100003, 4), (100005, 1), (100005, 2)] {
        let r = rpc.0.call_as(prog, vers, 0, 0, &[], &[]);
        assert_eq!(r.stat, PROG_MISMATCH, "program {prog} version {vers}");
        let mut pos = 0;
        let range = (get_u32(&r.body, &mut pos), get_u32(&r.body, &mut pos));
        assert_eq!(range, (3, 3), "program {prog} version {vers}");
    }
    // The version the server has, with AUTH_NONE: served.
    assert_eq!(rpc.0.call_as(100003, 3, 0, 0, &[], &[]).stat, 0);
    // AUTH_DH (3), RPCSEC_GSS (6): MSG_DENIED, AUTH_ERROR, AUTH_BADCRED (the client's stat
    // 100 + 1); also for MNT, which would hand out a handle.
    let mut path = Vec::new();
    put_opaque(&mut path, b"/hourly.0/web1");
    for flavor in [3u32, 6] {
        let r = rpc.0.call_as(100005, 3, 1, flavor, b"\0\0\0\0", &path);
        assert_eq!(r.stat, 101, "flavor {flavor}");
    }
    // The connection still serves.
    assert_eq!(rpc.mnt("/hourly.0/web1", 0).0, 0);
}

#[test]
fn garbage_on_the_wire_does_not_hurt_other_clients() {
    if !have_client() {
        return;
    }
    let (t, repo, _src, _) = setup();
    let srv = start_server(&repo, &t.path().join("key"), None, t.path());
    let good = tool("nfs-ls", &[&srv.url("/hourly.0/web1")]);
    assert!(good.status.success());
    let before = rss_kib(&srv);
    let mut x: u64 = 99;
    let mut rnd = |n: usize| -> Vec<u8> {
        (0..n)
            .map(|_| {
                x ^= x << 13;
                x ^= x >> 7;
                x ^= x << 17;
                x as u8
            })
            .collect()
    };
    for round in 0..300 {
        let Ok(mut s) = TcpStream::connect(("127.0.0.1", srv.port)) else {
            continue;
        };
        let _ = s.set_write_timeout(Some(Duration::from_secs(2)));
        let payload: Vec<u8> = match round % 5 {
            // Random bytes.
            0 => rnd(200),
            // A huge fragment length, then nothing.
            1 => 0xffff_fff0u32.to_be_bytes().to_vec(),
            // A record whose body is random.
            2 => {
                let body = rnd(64);
                let mut r = (0x8000_0000u32 | body.len() as u32).to_be_bytes().to_vec();
                r.extend_from_slice(&body);
                r
            }
            // A truncated real call.
            3 => {
                let mut m = Vec::new();
                for v in [7u32, 0, 2, 100003, 3, 1, 1, 400] {
                    put_u32(&mut m, v);
                }
                let mut r = (0x8000_0000u32 | 4000).to_be_bytes().to_vec();
                r.extend_from_slice(&m);
                r
            }
            // A well-formed call with garbage arguments.
            _ => {
                let mut m = Vec::new();
                for v in [8u32, 0, 2, 100003, 3, 6, 0, 0, 0, 0] {
                    put_u32(&mut m, v);
                }
                m.extend_from_slice(&rnd(40));
                let mut r = (0x8000_0000u32 | m.len() as u32).to_be_bytes().to_vec();
                r.extend_from_slice(&m);
                r
            }
        };
        let _ = s.write_all(&payload);
    }
    std::thread::sleep(Duration::from_millis(500));
    let after = rss_kib(&srv);
    eprintln!("server RSS before {before} KiB, after 300 hostile connections {after} KiB");
    assert!(
        after < before + 64 * 1024,
        "memory stays bounded ({before} -> {after} KiB)"
    );
    let good = tool("nfs-ls", &[&srv.url("/hourly.0/web1")]);
    assert!(
        good.status.success(),
        "still serving: {}",
        String::from_utf8_lossy(&good.stderr)
    );
    // Garbage arguments to a real procedure get GARBAGE_ARGS, not silence.
    let mut rpc = Rpc::connect(srv.port, Some(709));
    let r = rpc.call(100003, 6, 0, 0, &[1, 2, 3]);
    assert_eq!(r.stat, 4);
    let r = rpc.call(100003, 99, 0, 0, &[]);
    assert_eq!(r.stat, 3, "PROC_UNAVAIL");
    let r = rpc.call(100099, 0, 0, 0, &[]);
    assert_eq!(r.stat, 1, "PROG_UNAVAIL");
}

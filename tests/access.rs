//! Access: what the NFS server and the FUSE mount let through, beyond tests/nfs_server.rs and
//! tests/fuse_mount.rs (which cover squashing, secure ports, flipped handle bytes, another
//! server's key, exports at MOUNT, 0600/0644 for other users and EROFS for root).
//!
//! - LOOKUP with `..`, `.`, `/`, embedded slashes, NUL bytes, overlong and non-UTF-8 names;
//!   MOUNT of paths with `..`, `//`, `.`, trailing slashes, outside the exports, not existing.
//! - Handles replayed after their snapshot rotated away (STALE, never another file's data);
//!   handles of one export presented by a client of another; handles obtained legitimately by
//!   one client presented by an address no export lists.
//! - Every NFS write procedure answers ROFS and the repository is untouched.
//! - FUSE for a non-root user: 0700 directories closed, nothing writable, no mount without
//!   `--allow-other`, `nosuid,nodev`.
//!
//! The raw ONC RPC client here binds a chosen loopback address (127.0.0.x), so one machine
//! plays several NFS clients.
//!
//! Longer than 600 lines on purpose: each file under `tests/` is a test binary of its own that
//! links the whole crate, so these related tests share one file rather than adding a binary
//! (and its link time) to every run of the suite.

// Tests unwrap freely: a panic is how a test fails (the crate denies it elsewhere).
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;
use common::xdr::{get_opaque, get_u32, put_opaque, put_u32, Conn, Reply};
use common::{
    fuse_available, is_mounted, is_root, nfs_client_available, random_bytes, run_with_timeout,
    temp_dir, tree_fingerprint, FuseMount, NfsServer, YESTER_TIMEOUT,
};

use std::ffi::OsStr;
use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

// ---- a raw ONC RPC client --------------------------------------------------------------------

const NFS: u32 = 100003;
const MOUNT: u32 = 100005;
const NFS3_OK: u32 = 0;
const NFS3ERR_NOENT: u32 = 2;
const NFS3ERR_ACCES: u32 = 13;
const NFS3ERR_NOTDIR: u32 = 20;
const NFS3ERR_ROFS: u32 = 30;
const NFS3ERR_NAMETOOLONG: u32 = 63;
const NFS3ERR_STALE: u32 = 70;
const MNT3ERR_NOENT: u32 = 2;
const MNT3ERR_ACCES: u32 = 13;
const MNT3ERR_NOTDIR: u32 = 20;
/// RPC accept status for undecodable arguments.
const GARBAGE_ARGS: u32 = 4;

/// One NFS client: a TCP connection from 127.0.0.`host` (port chosen by the kernel; the
/// exports here are `insecure`, the secure-port rule is tested in tests/nfs_server.rs).
struct Rpc(Conn);

impl Rpc {
    fn connect(host: u8, port: u16) -> Rpc {
        Rpc(Conn::connect(host, 0, port))
    }

    /// AUTH_SYS as uid 0: root is squashed (the default), and files here are world-readable
    /// unless a test says otherwise.
    fn call(&mut self, prog: u32, proc_: u32, args: &[u8]) -> Reply {
        self.0.call(prog, proc_, 0, 0, args)
    }

    /// MOUNT MNT of raw path bytes: the status and the root handle.
    fn mnt_bytes(&mut self, path: &[u8]) -> (u32, Vec<u8>) {
        let mut a = Vec::new();
        put_opaque(&mut a, path);
        let r = self.call(MOUNT, 1, &a);
        let st = r.status();
        let mut pos = 4;
        let fh = if st == 0 {
            get_opaque(&r.body, &mut pos)
        } else {
            Vec::new()
        };
        (st, fh)
    }

    fn mnt(&mut self, path: &str) -> (u32, Vec<u8>) {
        self.mnt_bytes(path.as_bytes())
    }

    /// MOUNT EXPORT: the export paths this client is shown.
    fn exports(&mut self) -> Vec<String> {
        let r = self.call(MOUNT, 5, &[]);
        assert_eq!(r.stat, 0);
        let b = &r.body;
        let mut pos = 0;
        let mut out = Vec::new();
        while get_u32(b, &mut pos) == 1 {
            out.push(String::from_utf8_lossy(&get_opaque(b, &mut pos)).into_owned());
            while get_u32(b, &mut pos) == 1 {
                get_opaque(b, &mut pos);
            }
        }
        out
    }

    /// GETATTR: the status and, when it is OK, the fileid.
    fn getattr(&mut self, fh: &[u8]) -> (u32, u64) {
        let mut a = Vec::new();
        put_opaque(&mut a, fh);
        let r = self.call(NFS, 1, &a);
        let st = r.status();
        let fileid = if st == 0 {
            // fattr3: type, mode, nlink, uid, gid (5 words), size, used (2 × 8), rdev (8),
            // fsid (8), then fileid.
            let p = 4 + 20 + 16 + 8 + 8;
            u64::from_be_bytes(r.body[p..p + 8].try_into().unwrap())
        } else {
            0
        };
        (st, fileid)
    }

    /// LOOKUP of raw name bytes: the RPC accept status, the NFS status and the handle.
    fn lookup_raw(&mut self, dir: &[u8], name: &[u8]) -> (u32, u32, Vec<u8>) {
        let mut a = Vec::new();
        put_opaque(&mut a, dir);
        put_opaque(&mut a, name);
        let r = self.call(NFS, 3, &a);
        if r.stat != 0 {
            return (r.stat, u32::MAX, Vec::new());
        }
        let st = r.status();
        let mut pos = 4;
        let fh = if st == 0 {
            get_opaque(&r.body, &mut pos)
        } else {
            Vec::new()
        };
        (0, st, fh)
    }

    fn lookup(&mut self, dir: &[u8], name: &str) -> (u32, Vec<u8>) {
        let (acc, st, fh) = self.lookup_raw(dir, name.as_bytes());
        assert_eq!(acc, 0, "LOOKUP {name:?} accepted");
        (st, fh)
    }

    /// LOOKUP every component of `path` from `dir`; panics unless each is found.
    fn walk(&mut self, dir: &[u8], path: &str) -> Vec<u8> {
        let mut fh = dir.to_vec();
        for c in path.split('/').filter(|c| !c.is_empty()) {
            let (st, next) = self.lookup(&fh, c);
            assert_eq!(st, NFS3_OK, "LOOKUP {c} of {path}");
            fh = next;
        }
        fh
    }

    /// READ: the status and the bytes.
    fn read(&mut self, fh: &[u8], offset: u64, count: u32) -> (u32, Vec<u8>) {
        let mut a = Vec::new();
        put_opaque(&mut a, fh);
        a.extend_from_slice(&offset.to_be_bytes());
        put_u32(&mut a, count);
        let r = self.call(NFS, 6, &a);
        let st = r.status();
        if st != 0 {
            return (st, Vec::new());
        }
        let b = &r.body;
        let mut pos = 4;
        if get_u32(b, &mut pos) == 1 {
            pos += 84; // file attributes
        }
        let _count = get_u32(b, &mut pos);
        let _eof = get_u32(b, &mut pos);
        (st, get_opaque(b, &mut pos))
    }

    /// READDIRPLUS from the start: the status only.
    fn readdirplus(&mut self, dir: &[u8]) -> u32 {
        let mut a = Vec::new();
        put_opaque(&mut a, dir);
        a.extend_from_slice(&[0u8; 16]);
        put_u32(&mut a, 4096);
        put_u32(&mut a, 16384);
        self.call(NFS, 17, &a).status()
    }
}

// ---- set-up ---------------------------------------------------------------------------------

fn yester_ok(repo: &Path, args: &[&str]) -> String {
    let out = common::Yester::at(repo).args(args).output().unwrap();
    assert!(
        out.status.success(),
        "yester {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// The dated name of `source`'s first snapshot.
fn dated_name(s: &Setup, source: &str) -> String {
    let snaps: serde_json::Value =
        serde_json::from_str(&yester_ok(&s.repo, &["snapshots", "--json"])).unwrap();
    snaps
        .as_array()
        .unwrap()
        .iter()
        .find(|x| x["source"] == source)
        .unwrap()["dated_name"]
        .as_str()
        .unwrap()
        .to_string()
}

fn inside(p: &Path) -> String {
    p.to_str().unwrap().trim_start_matches('/').to_string()
}

/// A repository (levels as given) with sources web1 and db1 backed up from a small tree.
struct Setup {
    _t: tempfile::TempDir,
    base: PathBuf,
    repo: PathBuf,
    src: PathBuf,
}

fn setup(levels: &str) -> Setup {
    let (t, base) = temp_dir("yester-access");
    fs::set_permissions(&base, fs::Permissions::from_mode(0o755)).unwrap();
    let repo = base.join("repo");
    let out = common::Yester::new()
        .args(["init", "--levels", levels])
        .arg(&repo)
        .output()
        .unwrap();
    assert!(out.status.success());
    let src = base.join("src");
    fs::create_dir_all(src.join("stable")).unwrap();
    fs::create_dir_all(src.join("private")).unwrap();
    fs::write(src.join("stable/same"), "unchanged in every version\n").unwrap();
    fs::write(src.join("changes"), "version 1\n").unwrap();
    fs::write(src.join("public"), "everyone\n").unwrap();
    fs::write(src.join("secret"), "root only\n").unwrap();
    fs::write(src.join("private/inner"), "behind a closed door\n").unwrap();
    for (p, m) in [
        ("", 0o755),
        ("stable", 0o755),
        ("public", 0o644),
        ("secret", 0o600),
        ("private", 0o700),
        ("private/inner", 0o644),
    ] {
        fs::set_permissions(src.join(p), fs::Permissions::from_mode(m)).unwrap();
    }
    for s in ["web1", "db1"] {
        yester_ok(&repo, &["backup", "--source", s, src.to_str().unwrap()]);
    }
    Setup {
        _t: t,
        base,
        repo,
        src,
    }
}

fn server(s: &Setup, exports: &str) -> NfsServer {
    let f = s.base.join(format!("exports-{}", exports.len()));
    fs::write(&f, exports).unwrap();
    NfsServer::start(
        &s.repo,
        &s.base.join("key"),
        &[OsStr::new("--exports"), f.as_os_str()],
    )
}

/// The NFS tests need nothing beyond a TCP socket; the real client is only a sanity check.
fn nfs_ok() -> bool {
    nfs_client_available()
}

// ---- NFS --------------------------------------------------------------------------------------

#[test]
fn lookup_tricks_never_leave_the_export() {
    if !nfs_ok() {
        return;
    }
    let s = setup("hourly=6");
    let srv = server(&s, "/*/web1 127.0.0.1(insecure)\n");
    let mut c = Rpc::connect(1, srv.port);
    let (st, root) = c.mnt("/hourly.0/web1");
    assert_eq!(st, 0);
    let dir = c.walk(&root, &inside(&s.src));
    let stable = c.walk(&dir, "stable");
    let (_, dir_id) = c.getattr(&dir);

    // `.` is the directory itself; `..` its parent, and at the export root the root itself:
    // climbing never leaves the export.
    let (st, dot) = c.lookup(&dir, ".");
    assert_eq!(st, NFS3_OK);
    assert_eq!(c.getattr(&dot).1, dir_id, "`.` is the same directory");
    let (_, root_id) = c.getattr(&root);
    let (st, up) = c.lookup(&stable, "..");
    assert_eq!(st, NFS3_OK, "LOOKUP .. from a subdirectory");
    assert_eq!(c.getattr(&up).1, dir_id, "`..` of stable is its parent");
    let (st, up) = c.lookup(&root, "..");
    assert_eq!(st, NFS3_OK, "LOOKUP .. at the export root");
    assert_eq!(
        c.getattr(&up).1,
        root_id,
        "`..` of the export root is the root"
    );
    let depth = inside(&s.src).split('/').count();
    let mut fh = stable.clone();
    let mut ids = Vec::new();
    for _ in 0..depth + 3 {
        let (st, next) = c.lookup(&fh, "..");
        assert_eq!(st, NFS3_OK);
        fh = next;
        ids.push(c.getattr(&fh).1);
    }
    assert_eq!(ids[0], dir_id);
    assert_eq!(
        &ids[depth + 1..],
        &[root_id, root_id],
        "climbing stops at the export root"
    );
    assert_eq!(
        c.lookup(&fh, "db1").0,
        NFS3ERR_NOENT,
        "and stays in web1's point"
    );
    // Names that are not one component, or not a name at all, find nothing.
    let long = "a".repeat(256);
    let cases: Vec<(&[u8], u32)> = vec![
        (b"/", NFS3ERR_NOENT),
        (b"", NFS3ERR_NOENT),
        (b"stable/same", NFS3ERR_NOENT),
        (b"stable/", NFS3ERR_NOENT),
        (b"/stable", NFS3ERR_NOENT),
        (b"../db1", NFS3ERR_NOENT),
        (b"./stable", NFS3ERR_NOENT),
        (b"stable\0", NFS3ERR_NOENT),
        (b"\0stable", NFS3ERR_NOENT),
        (b"stab\0le", NFS3ERR_NOENT),
        (b"\xff\xfe", NFS3ERR_NOENT),
        (b"...", NFS3ERR_NOENT),
        (long.as_bytes(), NFS3ERR_NAMETOOLONG),
    ];
    for (name, want) in &cases {
        let (acc, st, fh) = c.lookup_raw(&dir, name);
        assert_eq!(
            (acc, st, fh.len()),
            (0, *want, 0),
            "LOOKUP {}",
            common::esc(name)
        );
    }
    // A name longer than any path is not even decoded.
    let (acc, _, _) = c.lookup_raw(&dir, &[b'a'; 1025]);
    assert_eq!(acc, GARBAGE_ARGS, "LOOKUP of a 1025-byte name");
    // Names in virtual directories: no way from web1's point to db1's or to the root.
    for name in ["db1", "/", "hourly.0", "snapshots"] {
        let (st, _) = c.lookup(&root, name);
        assert_eq!(st, NFS3ERR_NOENT, "LOOKUP {name} at the export root");
    }
    // The real names still work after all that, and the connection is fine.
    let (st, same) = c.lookup(&stable, "same");
    assert_eq!(st, NFS3_OK);
    assert_eq!(
        c.lookup(&same, "..").0,
        NFS3ERR_NOTDIR,
        "a file has no children"
    );
    assert_eq!(c.read(&same, 0, 100).1, b"unchanged in every version\n");
}

/// `..` inside a dated snapshot, whose directories are pinned to it: the parent, up through
/// the snapshot's root to the source's folder, which is the export's root here.
#[test]
fn lookup_dotdot_in_a_dated_snapshot_stops_at_the_export_root() {
    if !nfs_ok() {
        return;
    }
    let s = setup("hourly=6");
    let srv = server(&s, "/snapshots/web1 127.0.0.1(insecure)\n");
    let mut c = Rpc::connect(1, srv.port);
    let (st, root) = c.mnt("/snapshots/web1");
    assert_eq!(st, 0);
    let dated = dated_name(&s, "web1");
    let path = inside(&s.src);
    let snap_root = c.walk(&root, &dated);
    let dir = c.walk(&snap_root, &path);
    let stable = c.walk(&dir, "stable");
    let ids: Vec<u64> = [&root, &snap_root, &dir]
        .iter()
        .map(|fh| c.getattr(fh).1)
        .collect();
    let (st, up) = c.lookup(&stable, "..");
    assert_eq!(st, NFS3_OK);
    assert_eq!(c.getattr(&up).1, ids[2], "`..` of stable");
    let mut fh = dir.clone();
    for _ in 0..path.split('/').count() {
        let (st, next) = c.lookup(&fh, "..");
        assert_eq!(st, NFS3_OK);
        fh = next;
    }
    assert_eq!(c.getattr(&fh).1, ids[1], "up to the snapshot's root");
    let (st, up) = c.lookup(&fh, "..");
    assert_eq!(
        (st, c.getattr(&up).1),
        (NFS3_OK, ids[0]),
        "the source's folder"
    );
    let (st, up) = c.lookup(&up, "..");
    assert_eq!(
        (st, c.getattr(&up).1),
        (NFS3_OK, ids[0]),
        "and no further: /snapshots is outside the export"
    );
}

#[test]
fn mount_path_tricks_resolve_inside_the_exports_or_fail() {
    if !nfs_ok() {
        return;
    }
    let s = setup("hourly=6");
    let srv = server(
        &s,
        "/*/web1 127.0.0.1(insecure)\n/latest/db1 127.0.0.2(insecure)\n",
    );
    let mut c = Rpc::connect(1, srv.port);
    let (st, fh) = c.mnt("/hourly.0/web1");
    assert_eq!(st, 0);
    let (_, id) = c.getattr(&fh);
    // Spellings of the same path give the same directory.
    for p in [
        "//hourly.0//web1",
        "/hourly.0/web1/",
        "/hourly.0/./web1/.",
        "hourly.0/web1",
    ] {
        let (st, h) = c.mnt(p);
        assert_eq!(st, 0, "MNT {p:?}");
        assert_eq!(c.getattr(&h).1, id, "MNT {p:?} is /hourly.0/web1");
    }
    // `..` never climbs: whatever the pattern covers literally, no handle comes back.
    for p in [
        "/hourly.0/web1/..",
        "/hourly.0/web1/../db1",
        "/hourly.0/web1/../../latest/db1",
        "/hourly.0/web1/../../",
        "/../hourly.0/web1",
        "/*/web1",
        "/hourly.0/web1\0/../db1",
        "/hourly.0/db1/../web1",
    ] {
        let (st, h) = c.mnt(p);
        assert!(st != 0 && h.is_empty(), "MNT {p:?} gave status {st}");
    }
    // Outside the exports: refused. Inside but missing: NOENT. A file: NOTDIR.
    for p in [
        "/",
        "/hourly.0",
        "/latest",
        "/hourly.0/db1",
        "/latest/db1",
        "/snapshots",
    ] {
        assert_eq!(c.mnt(p).0, MNT3ERR_ACCES, "MNT {p:?}");
    }
    for p in [
        "/hourly.9/web1",
        "/snapshots/web1/1999-01-01-000000",
        "/hourly.0/web1/no/such/dir",
    ] {
        assert_eq!(c.mnt(p).0, MNT3ERR_NOENT, "MNT {p:?}");
    }
    let file = format!("/hourly.0/web1/{}/public", inside(&s.src));
    assert_eq!(c.mnt(&file).0, MNT3ERR_NOTDIR);
    assert_eq!(
        c.mnt_bytes(b"/hourly.0/\xffweb1").0,
        MNT3ERR_ACCES,
        "non-UTF-8 path"
    );
    // A path longer than MNTPATHLEN is not decoded.
    let mut a = Vec::new();
    put_opaque(&mut a, &[b'/'; 1025]);
    assert_eq!(c.call(MOUNT, 1, &a).stat, GARBAGE_ARGS);
    // EXPORT shows each client only its own exports.
    assert_eq!(c.exports(), vec!["/*/web1".to_string()]);
    let mut other = Rpc::connect(2, srv.port);
    assert_eq!(other.exports(), vec!["/latest/db1".to_string()]);
    assert!(Rpc::connect(9, srv.port).exports().is_empty());
}

#[test]
fn handles_of_other_exports_and_unlisted_clients_are_refused() {
    if !nfs_ok() {
        return;
    }
    let s = setup("hourly=6");
    let srv = server(
        &s,
        "/*/web1 127.0.0.1(insecure)\n/*/db1 127.0.0.2(insecure)\n/latest 127.0.0.3(insecure)\n",
    );
    let path = inside(&s.src);
    let mut a = Rpc::connect(1, srv.port);
    let (st, web_root) = a.mnt("/latest/web1");
    assert_eq!(st, 0);
    let web_dir = a.walk(&web_root, &path);
    let web_file = a.walk(&web_dir, "public");
    assert_eq!(a.read(&web_file, 0, 100), (NFS3_OK, b"everyone\n".to_vec()));
    let mut b = Rpc::connect(2, srv.port);
    let (st, db_root) = b.mnt("/latest/db1");
    assert_eq!(st, 0);
    let db_file = b.walk(&db_root, &format!("{path}/public"));
    assert_eq!(b.mnt("/latest/web1").0, MNT3ERR_ACCES);

    // A client of one export presenting a handle of another: refused on every procedure,
    // although the handle is genuine and the same file is exported to it under its own export.
    for (who, c, fhs) in [
        ("web1's client", &mut a, [&db_root, &db_file]),
        ("db1's client", &mut b, [&web_root, &web_file]),
    ] {
        for fh in fhs {
            assert_eq!(c.getattr(fh).0, NFS3ERR_ACCES, "{who}: GETATTR");
            assert_eq!(
                c.read(fh, 0, 100),
                (NFS3ERR_ACCES, Vec::new()),
                "{who}: READ"
            );
            assert_eq!(c.lookup(fh, &path).0, NFS3ERR_ACCES, "{who}: LOOKUP");
            assert_eq!(c.readdirplus(fh), NFS3ERR_ACCES, "{who}: READDIRPLUS");
        }
    }
    // A client whose export covers the same files (/latest) but not under web1's export: the
    // handle names web1's export, which does not list it.
    let mut l = Rpc::connect(3, srv.port);
    assert_eq!(l.mnt("/latest/web1").0, 0);
    assert_eq!(l.getattr(&web_file).0, NFS3ERR_ACCES);
    assert_eq!(l.read(&web_file, 0, 100).0, NFS3ERR_ACCES);
    // An address no export lists: refused at MOUNT, and the handles others obtained are
    // useless to it.
    let mut x = Rpc::connect(99, srv.port);
    for p in ["/", "/latest/web1", "/latest/db1", "/latest"] {
        assert_eq!(x.mnt(p).0, MNT3ERR_ACCES, "MNT {p}");
    }
    for fh in [&web_root, &web_file, &db_root, &db_file] {
        assert_eq!(x.getattr(fh).0, NFS3ERR_ACCES);
        assert_eq!(x.read(fh, 0, 100), (NFS3ERR_ACCES, Vec::new()));
        assert_eq!(x.readdirplus(fh), NFS3ERR_ACCES);
    }
    // The legitimate clients are unaffected.
    assert_eq!(a.read(&web_file, 0, 100).1, b"everyone\n");
    assert_eq!(b.read(&db_file, 0, 100).1, b"everyone\n");
}

#[test]
fn an_export_listed_twice_serves_each_listed_client() {
    if !nfs_ok() {
        return;
    }
    // The same pattern on two lines (for two clients, with different options) names one
    // export in the handles; each client must be served under its own line.
    let s = setup("hourly=6");
    let srv = server(
        &s,
        "/*/web1 127.0.0.5(insecure)\n/*/web1 127.0.0.1(insecure,all_squash)\n",
    );
    for host in [1, 5] {
        let mut c = Rpc::connect(host, srv.port);
        let (st, root) = c.mnt("/latest/web1");
        assert_eq!(st, 0, "MNT from 127.0.0.{host}");
        assert_eq!(c.getattr(&root).0, NFS3_OK, "GETATTR from 127.0.0.{host}");
        let f = c.walk(&root, &format!("{}/public", inside(&s.src)));
        assert_eq!(
            c.read(&f, 0, 100).1,
            b"everyone\n",
            "READ from 127.0.0.{host}"
        );
    }
    let mut c = Rpc::connect(6, srv.port);
    assert_eq!(c.mnt("/latest/web1").0, MNT3ERR_ACCES);
}

/// Regression: a directory had one handle and fileid whichever point or dated name it was
/// reached through, and a kernel NFS client keeps one dentry (one parent) per directory handle,
/// so `..` of a directory could lead into another, moving view (as it did in FUSE). Now a
/// directory below a point has a handle and fileid of its own per point — the same fileid as
/// its FUSE inode — while a file keeps one handle and fileid everywhere, like a hard link.
#[test]
fn a_directory_has_its_own_handle_and_fileid_per_point() {
    if !nfs_ok() {
        return;
    }
    let s = setup("hourly=2");
    let srv = server(&s, "/ 127.0.0.1(insecure)\n");
    let dated = dated_name(&s, "web1");
    let mut c = Rpc::connect(1, srv.port);
    let (st, root) = c.mnt("/");
    assert_eq!(st, 0);
    let path = inside(&s.src);
    let views = [
        format!("hourly.0/web1/{path}"),
        format!("latest/web1/{path}"),
        format!("snapshots/web1/{dated}/{path}"),
    ];
    let dirs: Vec<(Vec<u8>, u64)> = views
        .iter()
        .map(|v| {
            let fh = c.walk(&root, &format!("{v}/stable"));
            assert!(fh.len() <= 64, "{v}: a {}-byte handle", fh.len());
            let (st, id) = c.getattr(&fh);
            assert_eq!(st, NFS3_OK, "{v}");
            (fh, id)
        })
        .collect();
    for i in 0..dirs.len() {
        for j in i + 1..dirs.len() {
            assert_ne!(
                dirs[i].0, dirs[j].0,
                "{} and {}: one handle",
                views[i], views[j]
            );
            assert_ne!(
                dirs[i].1, dirs[j].1,
                "{} and {}: one fileid",
                views[i], views[j]
            );
        }
    }
    // Each directory handle lists and looks up in its own view.
    for (v, (fh, _)) in views.iter().zip(&dirs) {
        assert_eq!(c.readdirplus(fh), NFS3_OK, "{v}");
        let (st, f) = c.lookup(fh, "same");
        assert_eq!(st, NFS3_OK, "{v}");
        assert_eq!(c.read(&f, 0, 100).1, b"unchanged in every version\n");
    }
    let files: Vec<(Vec<u8>, u64)> = views
        .iter()
        .map(|v| {
            let fh = c.walk(&root, &format!("{v}/stable/same"));
            (fh.clone(), c.getattr(&fh).1)
        })
        .collect();
    assert!(
        files.iter().all(|f| *f == files[0]),
        "a file is one handle and fileid everywhere"
    );
    // The handles survive a restart of the server (same key), the point directories' too.
    drop(c);
    drop(srv);
    let srv = server(&s, "/ 127.0.0.1(insecure)\n");
    let mut c = Rpc::connect(1, srv.port);
    for (v, (fh, id)) in views.iter().zip(&dirs) {
        assert_eq!(c.getattr(fh), (NFS3_OK, *id), "{v} after a restart");
    }
}

#[test]
fn replayed_handles_after_rotation_and_prune_are_stale_never_other_data() {
    if !nfs_ok() {
        return;
    }
    // One point: each backup drops the one before (rotated away).
    let s = setup("hourly=1");
    let srv = server(&s, "/ 127.0.0.1(insecure)\n");
    let path = inside(&s.src);
    let mut c = Rpc::connect(1, srv.port);
    let (st, point) = c.mnt("/hourly.0/web1");
    assert_eq!(st, 0);
    let dir = c.walk(&point, &path);
    let stable = c.walk(&dir, "stable");
    let same = c.walk(&stable, "same");
    let changes = c.walk(&dir, "changes");
    assert_eq!(c.read(&changes, 0, 100).1, b"version 1\n");
    let (st, dated) = c.mnt("/snapshots/web1");
    assert_eq!(st, 0);

    fs::write(s.src.join("changes"), "version 2, longer than version 1\n").unwrap();
    yester_ok(
        &s.repo,
        &["backup", "--source", "web1", s.src.to_str().unwrap()],
    );
    let snaps: serde_json::Value =
        serde_json::from_str(&yester_ok(&s.repo, &["snapshots", "--json"])).unwrap();
    let web1 = snaps
        .as_array()
        .unwrap()
        .iter()
        .filter(|x| x["source"] == "web1")
        .count();
    assert_eq!(web1, 1, "the old snapshot rotated away");
    // "stable/" is the same directory tree in the new snapshot (same tree blob, same index),
    // so only the snapshot in the handle tells the two files apart. Files keep their bytes
    // (an open reader must never see them change), so their handles go stale; directories
    // below the point follow it (the point directory's, `dir`'s and `stable`'s handles show
    // the new snapshot).
    let stale = |c: &mut Rpc, what: &str| {
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            let got = [
                c.getattr(&same).0,
                c.read(&same, 0, 100).0,
                c.read(&changes, 0, 100).0,
            ];
            if got.iter().all(|&s| s == NFS3ERR_STALE) {
                break;
            }
            // Until the server's view refreshes, the old snapshot's own bytes, never others
            // (the refresh may come between the reads above and this one: then it is stale).
            let (st, data) = c.read(&changes, 0, 100);
            assert!(
                st == NFS3ERR_STALE || (st == NFS3_OK && data == b"version 1\n"),
                "{what}: {st} {:?}",
                String::from_utf8_lossy(&data)
            );
            assert!(
                Instant::now() < deadline,
                "{what}: handles of the dropped snapshot's files are not STALE: {got:?}"
            );
            std::thread::sleep(Duration::from_millis(100));
        }
        for d in [&point, &dir, &stable] {
            assert_eq!(
                c.getattr(d).0,
                NFS3_OK,
                "{what}: a directory below the point"
            );
            assert_eq!(c.readdirplus(d), NFS3_OK, "{what}");
        }
        let (st, f) = c.lookup(&stable, "same");
        assert_eq!(st, NFS3_OK, "{what}");
        assert_eq!(c.read(&f, 0, 100).1, b"unchanged in every version\n");
        let (st, f) = c.lookup(&dir, "changes");
        assert_eq!(st, NFS3_OK, "{what}");
        assert_eq!(
            c.read(&f, 0, 100).1,
            b"version 2, longer than version 1\n",
            "{what}: the kept directory handle shows the new snapshot"
        );
    };
    stale(&mut c, "after rotation");
    yester_ok(&s.repo, &["prune"]);
    stale(&mut c, "after prune");
    // A fresh walk finds the new version too.
    assert_eq!(c.getattr(&point).0, NFS3_OK);
    let fresh = c.walk(&point, &format!("{path}/changes"));
    assert_eq!(
        c.read(&fresh, 0, 100).1,
        b"version 2, longer than version 1\n"
    );
    assert_eq!(c.getattr(&dated).0, NFS3_OK, "/snapshots/web1 still exists");
    // db1's snapshot has the very same trees; web1's old handles never reach it.
    let (st, db) = c.mnt("/hourly.0/db1");
    assert_eq!(st, 0);
    let db_same = c.walk(&db, &format!("{path}/stable/same"));
    assert_eq!(c.read(&db_same, 0, 100).0, NFS3_OK);
    assert_eq!(c.getattr(&same).0, NFS3ERR_STALE);
}

/// Seed 004's service: each VM keeps `server:/daily.0/web1/…` mounted. The MOUNT handle of a
/// directory below a point, and the handles of directories under it, follow the point across
/// backup + rotate + prune (and a server restart): they show the new snapshot, and never go
/// stale while that path exists in the point's snapshot.
#[test]
fn a_mount_below_a_point_follows_it_across_rotation_and_prune() {
    if !nfs_ok() {
        return;
    }
    let s = setup("hourly=1,daily=1");
    yester_ok(&s.repo, &["rotate", "daily"]);
    let path = inside(&s.src);
    let export = format!("/daily.0/web1/{path}");
    let exports = format!("{export} 127.0.0.1(insecure)\n");
    let srv = server(&s, &exports);
    let mut c = Rpc::connect(1, srv.port);
    let (st, mnt) = c.mnt(&export);
    assert_eq!(st, 0, "MNT {export}");
    assert!(mnt.len() <= 64);
    let (_, mnt_id) = c.getattr(&mnt);
    let stable = c.walk(&mnt, "stable");
    let (_, stable_id) = c.getattr(&stable);
    let changes = c.walk(&mnt, "changes");
    assert_eq!(c.read(&changes, 0, 100).1, b"version 1\n");

    // A new backup, then `rotate daily` drops daily.0's old snapshot, and prune frees it.
    fs::write(s.src.join("changes"), "version 2 of changes\n").unwrap();
    fs::write(s.src.join("stable/added"), "new in version 2\n").unwrap();
    yester_ok(
        &s.repo,
        &["backup", "--source", "web1", s.src.to_str().unwrap()],
    );
    yester_ok(&s.repo, &["rotate", "daily"]);
    yester_ok(&s.repo, &["prune"]);
    let deadline = Instant::now() + Duration::from_secs(20);
    let fresh = loop {
        let (st, f) = c.lookup(&mnt, "changes");
        assert_eq!(st, NFS3_OK, "LOOKUP through the kept MOUNT handle");
        let (st, data) = c.read(&f, 0, 100);
        if st == NFS3_OK && data == b"version 2 of changes\n" {
            break f;
        }
        assert!(
            Instant::now() < deadline,
            "the kept MOUNT handle still shows {:?} ({st})",
            String::from_utf8_lossy(&data)
        );
        std::thread::sleep(Duration::from_millis(100));
    };
    assert_eq!(
        c.getattr(&mnt),
        (NFS3_OK, mnt_id),
        "same handle, same fileid"
    );
    assert_eq!(c.getattr(&stable), (NFS3_OK, stable_id));
    let (st, added) = c.lookup(&stable, "added");
    assert_eq!(
        st, NFS3_OK,
        "the kept subdirectory handle lists the new snapshot"
    );
    assert_eq!(c.read(&added, 0, 100).1, b"new in version 2\n");
    assert_eq!(
        c.read(&changes, 0, 100).0,
        NFS3ERR_STALE,
        "the old file's handle"
    );

    // libnfs sees the new snapshot's listing through the same export.
    let url = srv.url(&format!("{export}/stable"));
    let out = run_with_timeout(
        {
            let mut cmd = Command::new("nfs-ls");
            cmd.arg(&url);
            cmd
        },
        YESTER_TIMEOUT,
    );
    assert!(out.status.success(), "nfs-ls {url}: {}", out.stderr);
    assert!(
        out.stdout.contains("added") && out.stdout.contains("same"),
        "{}",
        out.stdout
    );

    // After a restart (same key), the handles still find their directories.
    drop(c);
    drop(srv);
    let srv = server(&s, &exports);
    let mut c = Rpc::connect(1, srv.port);
    assert_eq!(c.getattr(&stable), (NFS3_OK, stable_id), "after a restart");
    let (st, f) = c.lookup(&mnt, "changes");
    assert_eq!(st, NFS3_OK);
    assert_eq!(f, fresh, "the same file handle as before the restart");
    assert_eq!(c.read(&f, 0, 100).1, b"version 2 of changes\n");

    // A directory that is gone from the point's snapshot is stale, not another directory.
    fs::remove_dir_all(s.src.join("stable")).unwrap();
    yester_ok(
        &s.repo,
        &["backup", "--source", "web1", s.src.to_str().unwrap()],
    );
    yester_ok(&s.repo, &["rotate", "daily"]);
    let deadline = Instant::now() + Duration::from_secs(20);
    while c.getattr(&stable).0 != NFS3ERR_STALE {
        assert!(
            Instant::now() < deadline,
            "a removed directory's handle is not STALE"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    assert_eq!(
        c.getattr(&mnt),
        (NFS3_OK, mnt_id),
        "the mount itself still works"
    );
}

#[test]
fn nfs_write_procedures_answer_rofs_and_change_nothing() {
    if !nfs_ok() {
        return;
    }
    let s = setup("hourly=6");
    let srv = server(&s, "/ 127.0.0.1(insecure,no_root_squash)\n");
    let before = tree_fingerprint(&s.repo);
    let mut c = Rpc::connect(1, srv.port);
    let (st, root) = c.mnt("/latest/web1");
    assert_eq!(st, 0);
    let dir = c.walk(&root, &inside(&s.src));
    let file = c.walk(&dir, "public");
    // SETATTR, WRITE, CREATE, MKDIR, SYMLINK, MKNOD, REMOVE, RMDIR, RENAME, LINK, COMMIT, with
    // plausible arguments (a handle, then a name or data), as root with no_root_squash.
    for (proc_, name) in [
        (2, "SETATTR"),
        (7, "WRITE"),
        (8, "CREATE"),
        (9, "MKDIR"),
        (10, "SYMLINK"),
        (11, "MKNOD"),
        (12, "REMOVE"),
        (13, "RMDIR"),
        (14, "RENAME"),
        (15, "LINK"),
        (21, "COMMIT"),
    ] {
        for fh in [&dir, &file] {
            let mut a = Vec::new();
            put_opaque(&mut a, fh);
            put_opaque(&mut a, b"public");
            a.extend_from_slice(&[0u8; 64]);
            let r = c.call(NFS, proc_, &a);
            assert_eq!(r.status(), NFS3ERR_ROFS, "{name}");
        }
    }
    // Reads through every read procedure, then nothing in the repository has changed.
    assert_eq!(c.read(&file, 0, 100).1, b"everyone\n");
    assert_eq!(c.readdirplus(&dir), NFS3_OK);
    let out = Command::new("nfs-ls")
        .arg("-R")
        .arg(srv.url("/latest/web1"))
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(before, tree_fingerprint(&s.repo), "the NFS server wrote");
}

// ---- FUSE -------------------------------------------------------------------------------------

/// Run `sh -c SCRIPT` as nobody (uid and gid 65534, no groups).
fn as_nobody(script: &str) -> std::process::Output {
    Command::new("setpriv")
        .args([
            "--reuid=65534",
            "--regid=65534",
            "--clear-groups",
            "sh",
            "-c",
            script,
        ])
        .output()
        .unwrap()
}

#[test]
fn fuse_keeps_other_users_to_what_modes_allow_and_writes_nothing() {
    if !fuse_available() {
        return;
    }
    if !is_root() {
        eprintln!("SKIPPING: needs root to own the files and run a reader as nobody");
        return;
    }
    if Command::new("setpriv").arg("--version").output().is_err() {
        eprintln!("SKIPPING: setpriv not found (util-linux)");
        return;
    }
    let s = setup("hourly=6");
    let before = tree_fingerprint(&s.repo);
    let shared = FuseMount::start(&s.repo, &s.base.join("shared"), &["--allow-other"]);
    let d = shared.path(&format!("latest/web1/{}", inside(&s.src)));
    let q = |p: &str| format!("'{}'", d.join(p).display());

    // Readable as the modes say (0600 and 0644 are in tests/fuse_mount.rs; here: directories).
    let out = as_nobody(&format!("cat {}", q("public")));
    assert_eq!(
        out.stdout,
        b"everyone\n",
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    for script in [
        format!("ls {}", q("private")),
        format!("cat {}", q("private/inner")),
        format!("cd {}", q("private")),
        format!("cat {}", q("secret")),
    ] {
        let out = as_nobody(&script);
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(
            !out.status.success()
                && out.stdout.is_empty()
                && (err.contains("Permission denied") || err.contains("can't cd")),
            "as nobody: {script}: {err}"
        );
    }
    let out = as_nobody(&format!("ls {}", q("")));
    assert!(out.status.success());
    // Nothing is writable, whatever the mode bits: each fails with EROFS or EACCES.
    for script in [
        format!("echo x > {}", q("public")),
        format!("echo x >> {}", q("public")),
        format!("touch {}", q("new-file")),
        format!("mkdir {}", q("new-dir")),
        format!("rm -f {}", q("public")),
        format!("rmdir {}", q("stable")),
        format!("chmod 666 {}", q("public")),
        format!("chown 65534 {}", q("public")),
        format!("mv {} {}", q("public"), q("moved")),
        format!("ln -s x {}", q("link")),
        format!("ln {} {}", q("public"), q("hard")),
        format!("truncate -s 0 {}", q("public")),
        format!("touch {}", q("public")),
    ] {
        let out = as_nobody(&script);
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(
            !out.status.success()
                && (err.contains("Read-only file system")
                    || err.contains("Permission denied")
                    || err.contains("Operation not permitted")),
            "as nobody: {script}: {err}"
        );
    }
    // Root cannot write either (EROFS); the tree is as it was.
    let e = fs::write(d.join("public"), "x").unwrap_err();
    assert_eq!(e.raw_os_error(), Some(nix::libc::EROFS));
    assert_eq!(fs::read(d.join("public")).unwrap(), b"everyone\n");
    assert_eq!(
        fs::read(d.join("private/inner")).unwrap(),
        b"behind a closed door\n"
    );
    assert!(!d.join("new-file").exists() && !d.join("moved").exists());
    // nosuid, nodev, ro on the mount itself.
    let info = fs::read_to_string("/proc/self/mountinfo").unwrap();
    let line = info
        .lines()
        .find(|l| l.split(' ').nth(4) == shared.point.to_str())
        .unwrap();
    let opts = line.split(' ').nth(5).unwrap();
    for o in ["ro", "nosuid", "nodev"] {
        assert!(opts.split(',').any(|x| x == o), "{o} in {opts}");
    }

    // Without --allow-other, other users get nothing at all, not even the root directory.
    let private = FuseMount::start(&s.repo, &s.base.join("private-mnt"), &[]);
    let out = as_nobody(&format!("ls '{}'", private.point.display()));
    assert!(
        !out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stdout)
    );
    let out = as_nobody(&format!(
        "cat '{}'",
        private
            .path(&format!("latest/web1/{}/public", inside(&s.src)))
            .display()
    ));
    assert!(!out.status.success() && out.stdout.is_empty());
    assert!(
        fs::read_dir(&private.point).is_ok(),
        "the owner still reads it"
    );
    drop(private);
    // SIGTERM (systemctl stop) ends an --allow-other mount too: with AutoUnmount the library's
    // own unmount is not enough, so the mount unmounts through the kernel.
    let point = shared.point.clone();
    let status = shared.stop();
    assert!(status.success(), "SIGTERM: {status}");
    assert!(!is_mounted(&point), "still mounted after SIGTERM");
    assert_eq!(before, tree_fingerprint(&s.repo), "the mount wrote");
}

/// The ACL of the tests below, in the kernel's xattr encoding: user::rw-, user:65534:r--
/// (nobody may read), user:1235:---, group::---, mask::r--, other::---. On disk the mode's
/// group bits become the mask (0640), so a check of the mode alone would let the owning group
/// (and user 1235 in it) read, and nobody not.
fn sample_acl() -> Vec<u8> {
    let mut b = 2u32.to_le_bytes().to_vec();
    for (tag, perm, id) in [
        (0x01u16, 6u16, u32::MAX),
        (0x02, 4, 65534),
        (0x02, 0, 1235),
        (0x04, 0, u32::MAX),
        (0x10, 4, u32::MAX),
        (0x20, 0, u32::MAX),
    ] {
        b.extend_from_slice(&tag.to_le_bytes());
        b.extend_from_slice(&perm.to_le_bytes());
        b.extend_from_slice(&id.to_le_bytes());
    }
    b
}

/// A backed-up source `acl` whose file `shared` (root:root) carries [`sample_acl`]; `None`
/// (after saying so) where the file system of the temporary directory has no ACLs.
fn acl_setup() -> Option<Setup> {
    let s = setup("hourly=6");
    let src = s.base.join("aclsrc");
    fs::create_dir_all(&src).unwrap();
    fs::set_permissions(&src, fs::Permissions::from_mode(0o755)).unwrap();
    let f = src.join("shared");
    fs::write(&f, "named users may read\n").unwrap();
    if let Err(e) = xattr::set(&f, "system.posix_acl_access", &sample_acl()) {
        eprintln!(
            "SKIPPING the ACL test: cannot set an ACL in {}: {e}",
            s.base.display()
        );
        return None;
    }
    use std::os::unix::fs::MetadataExt;
    assert_eq!(
        fs::metadata(&f).unwrap().mode() & 0o777,
        0o640,
        "mask in the group bits"
    );
    yester_ok(
        &s.repo,
        &["backup", "--source", "acl", src.to_str().unwrap()],
    );
    Some(Setup { src, ..s })
}

/// Regression: the NFS server checked modes only, so a file whose ACL gave its owning group
/// nothing (and a named user nothing) was readable by that group over NFS, and a user the ACL
/// named could not read it.
#[test]
fn nfs_checks_acls_like_the_kernel() {
    if !nfs_ok() || !is_root() {
        eprintln!("SKIPPING: needs the NFS client tools and root (to own the files)");
        return;
    }
    let Some(s) = acl_setup() else { return };
    let srv = server(&s, "/ 127.0.0.1(insecure)\n");
    let url = srv.url(&format!("/latest/acl/{}/shared", inside(&s.src)));
    let cat = |creds: &str| {
        Command::new("nfs-cat")
            .arg(format!("{url}{creds}"))
            .output()
            .unwrap()
    };
    let out = cat("&uid=65534&gid=65534");
    assert_eq!(
        out.stdout,
        b"named users may read\n",
        "the ACL's named user: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    for (creds, who) in [
        (
            "&uid=1235&gid=0",
            "a named user with --- in the owning group",
        ),
        ("&uid=1236&gid=0", "the owning group (group::---)"),
        ("&uid=1237&gid=1237", "others"),
    ] {
        let out = cat(creds);
        assert!(
            out.stdout.is_empty() && String::from_utf8_lossy(&out.stderr).contains("ACCES"),
            "{who} read it: {:?} {}",
            out.stdout,
            String::from_utf8_lossy(&out.stderr)
        );
    }
}

/// FUSE leaves ACLs to the kernel (FUSE_POSIX_ACL); `--no-xattrs` serves no extended
/// attributes and shows a mode narrowed to what the ACL allows everyone.
#[test]
fn fuse_enforces_acls_and_narrows_modes_without_xattrs() {
    if !fuse_available() {
        return;
    }
    if !is_root() || Command::new("setpriv").arg("--version").output().is_err() {
        eprintln!("SKIPPING: needs root and setpriv to read as nobody");
        return;
    }
    use std::os::unix::fs::MetadataExt;
    let Some(s) = acl_setup() else { return };
    let rel = format!("latest/acl/{}/shared", inside(&s.src));
    {
        let m = FuseMount::start(&s.repo, &s.base.join("m1"), &["--allow-other"]);
        let f = m.path(&rel);
        assert_eq!(fs::metadata(&f).unwrap().mode() & 0o777, 0o640);
        let out = as_nobody(&format!("cat '{}'", f.display()));
        assert_eq!(
            out.stdout,
            b"named users may read\n",
            "nobody is a named user: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        let acl = xattr::get(&f, "system.posix_acl_access").unwrap();
        assert!(acl.is_some(), "the ACL is served");
        assert!(m.stop().success());
    }
    let m = FuseMount::start(
        &s.repo,
        &s.base.join("m2"),
        &["--allow-other", "--no-xattrs"],
    );
    let f = m.path(&rel);
    assert_eq!(
        fs::metadata(&f).unwrap().mode() & 0o777,
        0o600,
        "user:1235 has ---, so the group and others get nothing"
    );
    let out = as_nobody(&format!("cat '{}'", f.display()));
    assert!(
        out.stdout.is_empty() && String::from_utf8_lossy(&out.stderr).contains("Permission denied"),
        "{:?}",
        out
    );
    assert_eq!(
        fs::read(&f).unwrap(),
        b"named users may read\n",
        "root reads"
    );
    let listed = xattr::list(&f).map(|l| l.count()).unwrap_or(0);
    assert_eq!(listed, 0, "no extended attributes");
    assert!(
        !matches!(xattr::get(&f, "system.posix_acl_access"), Ok(Some(_))),
        "no ACL"
    );
    // A file without an ACL keeps its mode.
    let public = m.path(&format!(
        "latest/web1/{}/public",
        inside(&s.base.join("src"))
    ));
    assert_eq!(fs::metadata(&public).unwrap().mode() & 0o777, 0o644);
    assert!(m.stop().success());
}

/// READ replies are sent from the cached chunks without being copied together first: reads
/// within a chunk, across chunk boundaries, at odd offsets and lengths and past the end give
/// exactly the file's bytes (and a well-formed, padded reply, or the client could not parse
/// the next one on the connection), as does a whole-file copy with the real client.
#[test]
fn reads_at_any_offset_and_length_give_the_files_bytes() {
    if !nfs_ok() {
        return;
    }
    let s = setup("hourly=6");
    let src = s.base.join("bigsrc");
    fs::create_dir_all(&src).unwrap();
    // Random bytes: chunks of about 1 MiB (FastCDC), so 5 MiB + 7 bytes is several chunks.
    let data = random_bytes(4242, (5 << 20) + 7);
    fs::write(src.join("big"), &data).unwrap();
    yester_ok(
        &s.repo,
        &["backup", "--source", "big", src.to_str().unwrap()],
    );
    let srv = server(&s, "/ 127.0.0.1(insecure)\n");
    let mut c = Rpc::connect(1, srv.port);
    let (st, root) = c.mnt("/latest/big");
    assert_eq!(st, 0);
    let f = c.walk(&root, &format!("{}/big", inside(&src)));
    let len = data.len() as u64;
    let mut x: u64 = 99;
    let mut cases: Vec<(u64, u32)> = vec![
        (0, 1),
        (1, 3),
        (0, 1 << 20),
        ((1 << 20) - 5, 11),
        (len - 3, 100),
        (len, 10),
        (len + 100, 10),
        (3, (1 << 20) + 1),
    ];
    for _ in 0..40 {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        cases.push((x % len, (x >> 32) as u32 % ((1 << 20) + 1)));
    }
    for (off, count) in cases {
        let (st, got) = c.read(&f, off, count);
        assert_eq!(st, NFS3_OK, "READ {off} {count}");
        let from = off.min(len) as usize;
        // The server reads at most its rtmax (1 MiB) per call.
        let to = (off.saturating_add(u64::from(count.min(1 << 20)))).min(len) as usize;
        assert!(
            got == data[from..to],
            "READ {off} {count}: {} bytes",
            got.len()
        );
    }
    let copy = s.base.join("big.copy");
    let mut cp = Command::new("nfs-cp");
    cp.arg(srv.url(&format!("/latest/big/{}/big", inside(&src))))
        .arg(&copy);
    run_with_timeout(cp, YESTER_TIMEOUT).expect_success();
    assert!(fs::read(&copy).unwrap() == data, "nfs-cp copy differs");
}

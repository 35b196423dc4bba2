//! What this machine allows: privileges, file system features, FUSE and NFS tools, and what
//! a process uses.

use std::fs;
use std::os::unix::fs::MetadataExt;
use std::path::Path;
use std::process::Command;

use super::trees::set_mtime;

pub fn is_root() -> bool {
    nix::unistd::geteuid().is_root()
}

/// Ok if files and directories in `dir` can carry `user.*` extended attributes.
pub fn user_xattrs_supported(dir: &Path) -> Result<(), String> {
    let f = dir.join("xattr-probe");
    fs::write(&f, b"x").map_err(|e| e.to_string())?;
    let res = xattr::set(&f, "user.yester_probe", b"1")
        .and_then(|_| xattr::get(&f, "user.yester_probe"))
        .map_err(|e| format!("setting user.* xattr in {}: {e}", dir.display()))
        .and_then(|v| match v {
            Some(v) if v == b"1" => Ok(()),
            other => Err(format!("user.* xattr read back as {other:?}")),
        });
    let _ = fs::remove_file(&f);
    res
}

/// Ok if `mknod c 1 3` works in `dir` (needs root, and a container may forbid it).
pub fn mknod_supported(dir: &Path) -> Result<(), String> {
    if !is_root() {
        return Err("not running as root".into());
    }
    let p = dir.join("mknod-probe");
    let res = nix::sys::stat::mknod(
        &p,
        nix::sys::stat::SFlag::S_IFCHR,
        nix::sys::stat::Mode::from_bits_truncate(0o600),
        nix::libc::makedev(1, 3),
    )
    .map_err(|e| format!("mknod c 1 3 in {}: {e}", dir.display()));
    let _ = fs::remove_file(&p);
    res
}

/// Ok if mtimes before 1970 and after 2038 survive a round trip through the filesystem.
pub fn wide_mtimes_supported(dir: &Path) -> Result<(), String> {
    let f = dir.join("mtime-probe");
    fs::write(&f, b"x").map_err(|e| e.to_string())?;
    let mut res = Ok(());
    for (s, ns) in [
        (-1_000_000_000i64, 123_456_789i64),
        (8_000_000_000, 999_999_999),
    ] {
        set_mtime(&f, s, ns);
        let m = fs::symlink_metadata(&f).unwrap();
        if (m.mtime(), m.mtime_nsec()) != (s, ns) {
            res = Err(format!(
                "mtime {s}.{ns:09} read back as {}.{:09}",
                m.mtime(),
                m.mtime_nsec()
            ));
        }
    }
    let _ = fs::remove_file(&f);
    res
}

/// Whether FUSE mounts can be made here; says loudly why not.
pub fn fuse_available() -> bool {
    let fuse = Path::new("/dev/fuse").exists();
    let fusermount = Command::new("fusermount3").arg("-V").output().is_ok();
    if !fuse || !fusermount {
        eprintln!(
            "SKIPPING FUSE TEST: /dev/fuse present: {fuse}, fusermount3 present: {fusermount} \
             (install fuse3; run as root)"
        );
    }
    fuse && fusermount
}

/// Whether the NFS client tools (libnfs-utils) are installed; says loudly why not.
pub fn nfs_client_available() -> bool {
    let ok = Command::new("nfs-cat").output().is_ok();
    if !ok {
        eprintln!("SKIPPING NFS TEST: nfs-cat not found (apt-get install libnfs-utils)");
    }
    ok
}

/// A field of `/proc/PID/status` in KiB (`VmHWM` is the peak resident set).
pub fn proc_status_kib(pid: u32, field: &str) -> Option<u64> {
    fs::read_to_string(format!("/proc/{pid}/status"))
        .ok()?
        .lines()
        .find(|l| l.starts_with(field) && l[field.len()..].starts_with(':'))
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|v| v.parse().ok())
}

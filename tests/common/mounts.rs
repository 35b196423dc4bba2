//! Mount points: whether something is mounted, unmounting, and read-only bind mounts.

use std::ffi::OsStr;
use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use super::probe::is_root;

/// Whether a file system is mounted at `p` (a canonical path).
pub fn is_mounted(p: &Path) -> bool {
    let info = fs::read_to_string("/proc/self/mountinfo").unwrap_or_default();
    let want = p.to_str().unwrap_or("");
    info.lines().any(|l| l.split(' ').nth(4) == Some(want))
}

/// Unmount a FUSE mount at `point` (`fusermount3 -u`), waiting for it to go; lazily if it
/// does not.
pub fn unmount(point: &Path) {
    let _ = Command::new("fusermount3").arg("-u").arg(point).status();
    let deadline = Instant::now() + Duration::from_secs(10);
    while is_mounted(point) && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(50));
    }
    if is_mounted(point) {
        let _ = Command::new("umount").arg("-l").arg(point).status();
    }
}

/// Unmounts the FUSE mount at its path when dropped, also when the test fails.
pub struct Unmount(pub PathBuf);

impl Drop for Unmount {
    fn drop(&mut self) {
        unmount(&self.0);
    }
}

/// A read-only bind mount of a directory (needs root), unmounted when dropped. Servers run on
/// it to show they never write to the repository: any write would fail with EROFS.
pub struct ReadOnlyBind {
    pub path: PathBuf,
}

impl ReadOnlyBind {
    /// `None` (with a loud message) where bind mounts cannot be made.
    pub fn new(dir: &Path, at: &Path) -> Option<ReadOnlyBind> {
        if !is_root() {
            eprintln!("SKIPPING the read-only bind mount: needs root");
            return None;
        }
        fs::create_dir_all(at).unwrap();
        let at = fs::canonicalize(at).unwrap();
        let ok = |args: &[&OsStr]| {
            Command::new("mount")
                .args(args)
                .output()
                .map(|o| o.status.success())
                .unwrap_or(false)
        };
        if !ok(&[OsStr::new("--bind"), dir.as_os_str(), at.as_os_str()]) {
            eprintln!("SKIPPING the read-only bind mount: mount --bind failed");
            return None;
        }
        let guard = ReadOnlyBind { path: at.clone() };
        if !ok(&[
            OsStr::new("-o"),
            OsStr::new("remount,bind,ro"),
            at.as_os_str(),
        ]) {
            eprintln!("SKIPPING the read-only bind mount: remount ro failed");
            return None;
        }
        // Prove it is read-only before relying on it.
        match fs::write(at.join("write-probe"), b"x") {
            Err(e) if e.raw_os_error() == Some(nix::libc::EROFS) => Some(guard),
            other => panic!("the read-only bind mount accepted a write: {other:?}"),
        }
    }
}

impl Drop for ReadOnlyBind {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg("-l").arg(&self.path).status();
    }
}

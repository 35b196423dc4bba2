//! File-system access relative to open directory handles, for the backup walk.
//!
//! Every lookup is `*at(directory handle, name)` with `O_NOFOLLOW`, never by full path: a
//! directory swapped for a symlink while the walk runs cannot lead it outside the backed-up
//! tree, and paths longer than PATH_MAX work because no full path is ever resolved.

use std::fs::File;
use std::io;
use std::os::fd::{AsFd, AsRawFd, OwnedFd};
use std::os::unix::ffi::OsStrExt;

use nix::fcntl::{AtFlags, OFlag};
use nix::sys::stat::{FileStat, Mode, SFlag};

use crate::engine::format::tree::{NodeKind, Timestamp};

/// What `lstat` says about an entry.
#[derive(Clone, Copy, Debug)]
pub struct Stat {
    pub mode: u32,
    pub uid: u32,
    pub gid: u32,
    pub size: u64,
    pub mtime: Timestamp,
    pub ctime: Timestamp,
    pub nlink: u64,
    pub dev: u64,
    pub ino: u64,
    pub rdev: u64,
}

fn ts(secs: i64, nanos: i64) -> Timestamp {
    Timestamp {
        secs,
        nanos: u32::try_from(nanos).unwrap_or(0).min(999_999_999),
    }
}

impl From<FileStat> for Stat {
    fn from(s: FileStat) -> Self {
        Stat {
            mode: s.st_mode,
            uid: s.st_uid,
            gid: s.st_gid,
            size: u64::try_from(s.st_size).unwrap_or(0),
            mtime: ts(s.st_mtime, s.st_mtime_nsec),
            ctime: ts(s.st_ctime, s.st_ctime_nsec),
            nlink: s.st_nlink,
            dev: s.st_dev,
            ino: s.st_ino,
            rdev: s.st_rdev,
        }
    }
}

impl Stat {
    pub fn kind(&self) -> NodeKind {
        match SFlag::from_bits_truncate(self.mode & SFlag::S_IFMT.bits()) {
            SFlag::S_IFDIR => NodeKind::Dir,
            SFlag::S_IFLNK => NodeKind::Symlink,
            SFlag::S_IFIFO => NodeKind::Fifo,
            SFlag::S_IFSOCK => NodeKind::Socket,
            SFlag::S_IFCHR => NodeKind::CharDevice,
            SFlag::S_IFBLK => NodeKind::BlockDevice,
            _ => NodeKind::File,
        }
    }

    /// Whether two stats are of the same inode.
    pub fn same_inode(&self, other: &Stat) -> bool {
        self.dev == other.dev && self.ino == other.ino
    }
}

fn err(e: nix::errno::Errno) -> io::Error {
    io::Error::from_raw_os_error(e as i32)
}

/// `lstat` of `name` in `dir`.
pub fn stat_at(dir: &OwnedFd, name: &[u8]) -> io::Result<Stat> {
    nix::sys::stat::fstatat(dir, name, AtFlags::AT_SYMLINK_NOFOLLOW)
        .map(Stat::from)
        .map_err(err)
}

/// `fstat` of an open file or directory.
pub fn stat_fd(fd: impl AsFd) -> io::Result<Stat> {
    nix::sys::stat::fstat(fd).map(Stat::from).map_err(err)
}

/// The root directory.
pub fn open_root() -> io::Result<OwnedFd> {
    nix::fcntl::open(
        "/",
        OFlag::O_RDONLY | OFlag::O_DIRECTORY | OFlag::O_CLOEXEC,
        Mode::empty(),
    )
    .map_err(err)
}

/// Open a subdirectory without following a symlink.
pub fn open_dir_at(dir: &OwnedFd, name: &[u8]) -> io::Result<OwnedFd> {
    nix::fcntl::openat(
        dir,
        name,
        OFlag::O_RDONLY | OFlag::O_DIRECTORY | OFlag::O_NOFOLLOW | OFlag::O_CLOEXEC,
        Mode::empty(),
    )
    .map_err(err)
}

/// Open a file for reading without following a symlink. `O_NONBLOCK`: if it was swapped for a
/// FIFO meanwhile, opening must not hang. `O_NOATIME` where allowed: a backup should not change
/// what it backs up.
pub fn open_file_at(dir: &OwnedFd, name: &[u8]) -> io::Result<File> {
    let base = OFlag::O_RDONLY | OFlag::O_NONBLOCK | OFlag::O_NOFOLLOW | OFlag::O_CLOEXEC;
    nix::fcntl::openat(dir, name, base | OFlag::O_NOATIME, Mode::empty())
        .or_else(|_| nix::fcntl::openat(dir, name, base, Mode::empty()))
        .map(File::from)
        .map_err(err)
}

/// The names in a directory, without `.` and `..`, each with whether the directory listing
/// says it is a regular file (a hint: some file systems do not say, and it may change).
pub fn list_dir(dir: &OwnedFd) -> io::Result<Vec<(Vec<u8>, bool)>> {
    let dup = dir.try_clone()?;
    let mut d = nix::dir::Dir::from_fd(dup).map_err(err)?;
    let mut names = Vec::new();
    for ent in d.iter() {
        let ent = ent.map_err(err)?;
        let n = ent.file_name().to_bytes();
        if n != b"." && n != b".." {
            let regular = ent.file_type() == Some(nix::dir::Type::File);
            names.push((n.to_vec(), regular));
        }
    }
    Ok(names)
}

/// Open `name` in `dir` (as [`open_file_at`]) and ask the kernel to start reading its first
/// `len` bytes in the background (`POSIX_FADV_WILLNEED`), so that a later read finds them
/// cached; returns the open file. Best effort: any failure only means no head start.
pub fn prefetch_at(dir: &OwnedFd, name: &[u8], len: i64) -> Option<File> {
    let f = open_file_at(dir, name).ok()?;
    let _ = nix::fcntl::posix_fadvise(
        &f,
        0,
        len,
        nix::fcntl::PosixFadviseAdvice::POSIX_FADV_WILLNEED,
    );
    Some(f)
}

/// The target of a symlink.
pub fn readlink_at(dir: &OwnedFd, name: &[u8]) -> io::Result<Vec<u8>> {
    nix::fcntl::readlinkat(dir, name)
        .map(|t| t.as_bytes().to_vec())
        .map_err(err)
}

/// Extended attributes of `name` in `dir`, sorted by name. Reached through the directory
/// handle's /proc/self/fd entry, so the lookup is still relative to the handle and does not
/// follow a final symlink.
pub fn xattrs_at(dir: &OwnedFd, name: &[u8]) -> io::Result<Vec<(Vec<u8>, Vec<u8>)>> {
    let mut p = format!("/proc/self/fd/{}/", dir.as_raw_fd()).into_bytes();
    p.extend_from_slice(name);
    let path = std::path::Path::new(std::ffi::OsStr::from_bytes(&p));
    sorted_xattrs(xattr::list(path)?, |n| xattr::get(path, n))
}

/// Extended attributes of an open file, sorted by name.
pub fn xattrs_fd(f: &File) -> io::Result<Vec<(Vec<u8>, Vec<u8>)>> {
    use xattr::FileExt;
    sorted_xattrs(f.list_xattr()?, |n| f.get_xattr(n))
}

/// The values of the listed `names` that are still there, sorted by name.
fn sorted_xattrs(
    names: impl Iterator<Item = std::ffi::OsString>,
    get: impl Fn(&std::ffi::OsStr) -> io::Result<Option<Vec<u8>>>,
) -> io::Result<Vec<(Vec<u8>, Vec<u8>)>> {
    let mut out = Vec::new();
    for n in names {
        if let Some(v) = get(&n)? {
            out.push((n.as_bytes().to_vec(), v));
        }
    }
    out.sort();
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The listing marks regular files, and prefetching anything (a file, a FIFO nobody
    /// writes to, a directory, a name that is gone) returns at once and changes nothing.
    #[test]
    fn listing_marks_regular_files_and_prefetch_never_blocks() {
        let t = tempfile::tempdir().unwrap();
        std::fs::write(t.path().join("file"), b"data").unwrap();
        std::fs::create_dir(t.path().join("dir")).unwrap();
        nix::unistd::mkfifo(&t.path().join("fifo"), Mode::from_bits_truncate(0o600)).unwrap();
        std::os::unix::fs::symlink("file", t.path().join("link")).unwrap();
        let dir: OwnedFd = File::open(t.path()).unwrap().into();
        let mut names = list_dir(&dir).unwrap();
        names.sort();
        let regular: Vec<(&[u8], bool)> = names.iter().map(|(n, r)| (n.as_slice(), *r)).collect();
        // tmpfs and ext4 both report d_type.
        assert_eq!(
            regular,
            [
                (&b"dir"[..], false),
                (b"fifo", false),
                (b"file", true),
                (b"link", false)
            ]
        );
        for name in [&b"file"[..], b"fifo", b"dir", b"link", b"gone"] {
            prefetch_at(&dir, name, 1 << 20);
        }
        assert_eq!(std::fs::read(t.path().join("file")).unwrap(), b"data");
    }
}

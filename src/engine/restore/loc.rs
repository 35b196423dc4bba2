//! A place in the restore target: a name in an open directory handle, and the `*at` calls
//! that open it without following symlinks.

use std::ffi::OsStr;
use std::fs::File;
use std::io;
use std::os::fd::{AsRawFd, OwnedFd};
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use nix::fcntl::OFlag;
use nix::sys::stat::Mode;

use crate::engine::error::{Error, Result};

/// A place in the target: a name in an open directory, and its path for messages.
#[derive(Clone)]
pub(super) struct Loc {
    pub(super) dir: Arc<OwnedFd>,
    pub(super) name: Vec<u8>,
    pub(super) path: PathBuf,
}

impl Loc {
    pub(super) fn child(dir: &Arc<OwnedFd>, path: &Path, name: &[u8]) -> Loc {
        Loc {
            dir: dir.clone(),
            name: name.to_vec(),
            path: path.join(OsStr::from_bytes(name)),
        }
    }

    /// A path naming this entry through the directory handle (short whatever the depth).
    pub(super) fn proc_path(&self) -> PathBuf {
        let mut p = format!("/proc/self/fd/{}/", self.dir.as_raw_fd()).into_bytes();
        p.extend_from_slice(&self.name);
        PathBuf::from(OsStr::from_bytes(&p))
    }

    pub(super) fn io(&self, e: nix::errno::Errno) -> Error {
        Error::io(self.path.display(), io::Error::from_raw_os_error(e as i32))
    }

    pub(super) fn open_dir(&self) -> Result<Arc<OwnedFd>> {
        nix::fcntl::openat(
            self.dir.as_ref(),
            self.name.as_slice(),
            OFlag::O_RDONLY | OFlag::O_DIRECTORY | OFlag::O_NOFOLLOW | OFlag::O_CLOEXEC,
            Mode::empty(),
        )
        .map(Arc::new)
        .map_err(|e| self.io(e))
    }

    pub(super) fn open_file(&self, flags: OFlag) -> Result<File> {
        nix::fcntl::openat(
            self.dir.as_ref(),
            self.name.as_slice(),
            OFlag::O_WRONLY | OFlag::O_NOFOLLOW | OFlag::O_CLOEXEC | flags,
            Mode::from_bits_truncate(0o600),
        )
        .map(File::from)
        .map_err(|e| self.io(e))
    }
}

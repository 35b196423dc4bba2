//! Errors of the view, each with the errno a file-system protocol answers.

use crate::engine;

/// What a view operation can fail with.
#[derive(Debug, thiserror::Error)]
pub enum VfsError {
    #[error("no such file or directory")]
    NotFound,
    #[error("not a directory")]
    NotDir,
    #[error("is a directory")]
    IsDir,
    #[error("invalid argument")]
    Invalid,
    #[error("no such attribute")]
    NoAttr,
    /// The node belongs to a snapshot that no longer exists.
    #[error("stale: the snapshot is gone")]
    Stale,
    /// Damaged or unreadable repository data.
    #[error("{0}")]
    Engine(#[from] engine::Error),
}

impl VfsError {
    /// The errno to answer with.
    pub fn errno(&self) -> i32 {
        use nix::libc;
        match self {
            VfsError::NotFound => libc::ENOENT,
            VfsError::NotDir => libc::ENOTDIR,
            VfsError::IsDir => libc::EISDIR,
            VfsError::Invalid => libc::EINVAL,
            VfsError::NoAttr => libc::ENODATA,
            VfsError::Stale => libc::ESTALE,
            VfsError::Engine(engine::Error::MissingBlob(_)) => libc::EIO,
            VfsError::Engine(_) => libc::EIO,
        }
    }
}

/// Result alias for the view.
pub type VfsResult<T> = Result<T, VfsError>;

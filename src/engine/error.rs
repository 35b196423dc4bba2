//! Errors of the storage engine.
//!
//! Policy: every error names the object or path it concerns, so the CLI can print one clear
//! line. Data read from disk is never trusted: decoding failures are `Corrupt`, not panics.

use std::path::PathBuf;

use crate::engine::store::{StoreError, StoreErrorKind};

/// Result alias for the engine.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Everything that can go wrong in the engine.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// An I/O error on a named file or object.
    // The cause is part of the message (not a `source`), so printing the error chain does not
    // repeat it.
    #[error("{path}: {err}")]
    Io { path: String, err: std::io::Error },
    /// The storage ran out of space; nothing partial was made visible.
    #[error("{path}: no space left on device (nothing was committed; free space and run again)")]
    NoSpace { path: String },
    /// The path does not hold a yester repository.
    #[error("{0}: not a yester repository (no config)")]
    NotARepository(PathBuf),
    /// `init` on a path that already holds something.
    #[error("{0}: already exists and is not empty; refusing to initialise a repository there")]
    AlreadyExists(PathBuf),
    /// The repository, or one object in it, was written in a newer format than this build reads.
    #[error("{object}: format version {found} is not supported (this yester reads version {supported}; was it written by a newer yester?)")]
    UnsupportedVersion {
        object: String,
        found: u32,
        supported: u32,
    },
    /// Bytes read from the repository do not decode or do not match their checksum.
    #[error("{object}: corrupt: {what}")]
    Corrupt { object: String, what: String },
    /// A backup's pack writing stopped after a failed write (that error is reported).
    #[error("the pack writer stopped")]
    WriterStopped,
    /// A blob the repository should have is not in the index.
    #[error("blob {0} is missing from the repository index")]
    MissingBlob(String),
    /// A user-supplied name that matched nothing.
    #[error("{0}")]
    NotFound(String),
    /// A user-supplied name that matched more than one thing.
    #[error("{0}")]
    Ambiguous(String),
    /// A bad argument value.
    #[error("{0}")]
    Invalid(String),
    /// The repository is locked by a live process.
    #[error("repository is locked: {0}")]
    Locked(String),
    /// A restore target exists and overwriting was not asked for.
    #[error("{0}: already exists; refusing to overwrite")]
    WouldOverwrite(PathBuf),
    /// A backend operation failed (not found, already exists, transient, other; running out
    /// of space is [`Error::NoSpace`]).
    #[error("{0}")]
    Store(StoreError),
    /// An operation that deletes data refused to run on a damaged repository: `index` says
    /// whether an index file is what is damaged (the index can be rebuilt from the packs).
    #[error("{what}; refusing to continue on a damaged repository")]
    Damaged { what: String, index: bool },
}

impl From<StoreError> for Error {
    fn from(e: StoreError) -> Self {
        match e.kind {
            StoreErrorKind::NoSpace => Error::NoSpace { path: e.object },
            _ => Error::Store(e),
        }
    }
}

impl Error {
    /// Wrap an I/O error with the path or object it concerns; ENOSPC becomes [`Error::NoSpace`].
    pub fn io(path: impl std::fmt::Display, source: std::io::Error) -> Self {
        if source.raw_os_error() == Some(nix::libc::ENOSPC) {
            return Error::NoSpace {
                path: path.to_string(),
            };
        }
        Error::Io {
            path: path.to_string(),
            err: source,
        }
    }

    /// Whether a repository object was not there (a backend's not-found, whatever the
    /// backend); a user-supplied name that matched nothing is [`Error::NotFound`] instead.
    pub fn is_not_found(&self) -> bool {
        matches!(self, Error::Store(e) if e.is_not_found())
    }

    /// Whether the backend said that trying again may work.
    pub fn is_transient(&self) -> bool {
        matches!(self, Error::Store(e) if e.is_transient())
    }

    /// A corruption error for `object`.
    pub fn corrupt(object: impl std::fmt::Display, what: impl std::fmt::Display) -> Self {
        Error::Corrupt {
            object: object.to_string(),
            what: what.to_string(),
        }
    }
}

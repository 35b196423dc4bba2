//! The errors a backend reports: few kinds, so that the engine decides what to do from the
//! kind (skip a lock record that went away, retry a dropped connection) and never from an
//! operating system's or a cloud SDK's error codes.

use std::io;

/// Result alias for backend operations.
pub type StoreResult<T> = std::result::Result<T, StoreError>;

/// What went wrong, as far as a caller of the backend needs to know.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum StoreErrorKind {
    /// No object of that name.
    NotFound,
    /// An object (or, for `create`, a repository) is already there.
    AlreadyExists,
    /// Worth retrying: a timeout, an interrupted or dropped connection, a throttled request.
    Transient,
    /// The store is full; nothing partial was made visible. (The engine reports it as
    /// `Error::NoSpace`, which tells the user what to do.)
    NoSpace,
    /// Anything else (permissions, a broken disk, a violated contract).
    Other,
}

/// An error of one backend operation on one object.
#[derive(Debug, thiserror::Error)]
#[error("{object}: {msg}")]
pub struct StoreError {
    pub kind: StoreErrorKind,
    /// The object or location it concerns, as [`super::Backend::describe`] names it.
    pub object: String,
    /// What happened, for the message.
    pub msg: String,
}

impl StoreError {
    pub fn new(kind: StoreErrorKind, object: impl Into<String>, msg: impl Into<String>) -> Self {
        StoreError {
            kind,
            object: object.into(),
            msg: msg.into(),
        }
    }

    /// Classify an I/O error of a local file system.
    pub fn io(object: impl std::fmt::Display, err: &io::Error) -> Self {
        use io::ErrorKind as K;
        let kind = match err.kind() {
            K::NotFound => StoreErrorKind::NotFound,
            K::AlreadyExists => StoreErrorKind::AlreadyExists,
            K::Interrupted | K::TimedOut | K::WouldBlock => StoreErrorKind::Transient,
            _ if err.raw_os_error() == Some(nix::libc::ENOSPC) => StoreErrorKind::NoSpace,
            _ => StoreErrorKind::Other,
        };
        StoreError::new(kind, object.to_string(), err.to_string())
    }

    pub fn is_not_found(&self) -> bool {
        self.kind == StoreErrorKind::NotFound
    }

    pub fn is_transient(&self) -> bool {
        self.kind == StoreErrorKind::Transient
    }
}

//! The storage engine: repository, packs, index, chunker, trees, snapshots, and the operations
//! on them (backup, restore, check, diff, prune).
//!
//! It knows nothing of FUSE, NFS or the command line. On-disk format: docs/FORMAT.md.
//!
//! Layout: [`format`] is what is on disk, `store` reaches storage (backends, lock, repository,
//! pack writer), `chunking` cuts content, `localfs` is the local file system side of backup and
//! restore; each operation is its own module (`backup/`, `restore/`, `check`, `diff`, `prune`,
//! `lookup`). What the other layers and the binary use is re-exported here.

pub(crate) mod backup;
pub(crate) mod check;
pub(crate) mod chunking;
pub(crate) mod diff;
pub(crate) mod error;
pub(crate) mod failpoint;
pub mod format;
pub(crate) mod localfs;
pub(crate) mod lookup;
pub(crate) mod prune;
pub(crate) mod restore;
pub(crate) mod store;

#[cfg(test)]
mod crash_tests;
#[cfg(test)]
pub(crate) mod testdata;

pub use backup::{
    backup, BackupOptions, BackupReport, NoProgress as NoBackupProgress, Progress as BackupProgress,
};
pub use check::{check, repair_index, CheckOptions, CheckProgress, CheckReport, NoCheckProgress};
pub use diff::{diff, Change, Difference};
pub use error::{Error, Result};
pub use format::id::{BlobId, PackId, SnapshotId};
pub use format::index::Index;
pub use lookup::{lookup, Node};
pub use prune::{prune, PruneOptions, PruneReport};
pub use restore::{
    restore, total_bytes as restore_total_bytes, NoRestoreProgress, RestoreOptions,
    RestoreProgress, RestoreReport,
};
pub use store::{
    open_url, Backend, BlobReader, Kind, LocalDir, MemoryBackend, MemoryStore, Repository,
    StoreError, StoreErrorKind,
};

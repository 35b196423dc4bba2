//! The storage engine: repository, packs, index, chunker, trees, snapshots.
//!
//! It knows nothing of FUSE, NFS or the command line. On-disk format: docs/FORMAT.md.

pub mod backend;
pub mod backup;
pub mod check;
pub mod chunker;
pub mod codec;
pub mod config;
pub mod diff;
pub mod error;
pub mod failpoint;
pub mod fsat;
pub mod gearcut;
pub mod id;
pub mod idset;
pub mod index;
pub mod lock;
pub mod lookup;
pub mod pack;
pub mod prune;
pub mod repo;
pub mod restore;
pub mod snapshot;
pub mod threads;
pub mod tree;
pub mod writer;
pub mod zeros;

#[cfg(test)]
mod crash_tests;
#[cfg(test)]
pub(crate) mod testdata;

pub use error::{Error, Result};
pub use id::{BlobId, PackId, SnapshotId};
pub use index::Index;
pub use repo::{BlobReader, Repository};

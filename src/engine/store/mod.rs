//! Reaching storage: the [`Backend`] interface and its implementations (a local directory, an
//! in-memory object store for tests), the repository lock, and the [`Repository`] that reads
//! blobs through the index and writes them through the pack writer.

mod backend;
mod direct;
mod error;
pub(crate) mod idset;
mod lease;
mod local;
pub(crate) mod lock;
mod memory;
pub(crate) mod repo;
mod url;
pub(crate) mod writer;

pub use backend::{list_names, Backend, Kind, ObjectInfo, Suffix};
pub use error::{StoreError, StoreErrorKind, StoreResult};
pub use local::LocalDir;
pub use memory::{MemoryBackend, MemoryStore};
pub use repo::{BlobReader, Repository};
pub use url::open_url;

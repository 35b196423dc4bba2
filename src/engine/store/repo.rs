//! Opening a repository and reading blobs; writing them is [`super::writer`]'s.

use std::collections::HashSet;
use std::sync::Arc;
use std::time::Duration;

use super::lock::{self, LockGuard};
use super::{list_names, Backend, Kind, StoreErrorKind};
use crate::engine::error::{Error, Result};
use crate::engine::format::compress::decode_blob;
use crate::engine::format::config::RepoConfig;
use crate::engine::format::id::{BlobId, BlobKey, SnapshotId};
use crate::engine::format::index::Index;
use crate::engine::format::snapshot::{load_all, SnapshotEntry};
use crate::engine::format::tree::{ChunkRef, Tree};

pub use super::writer::BlobWriter;

/// Name of the config object.
pub const CONFIG_NAME: &str = "config";

/// An opened repository: its backend and validated config. The backend is private: the
/// rest of yester uses the typed operations below, so what it may do to stored objects stays
/// within the storage contract (docs/FORMAT.md, "Storage contract").
#[derive(Clone)]
pub struct Repository {
    backend: Arc<dyn Backend>,
    config: RepoConfig,
    key: BlobKey,
    /// The lease of the locks this handle takes.
    lock_lease: Duration,
}

impl Repository {
    /// Create a new repository in an empty store.
    pub fn init(backend: Arc<dyn Backend>, config: RepoConfig) -> Result<Self> {
        let exists = || Error::AlreadyExists(backend.location().into());
        match backend.create() {
            Err(e) if e.kind == StoreErrorKind::AlreadyExists => return Err(exists()),
            r => r?,
        }
        let bytes = config.encode()?;
        if !backend.put_new(Kind::Config, CONFIG_NAME, &bytes)? {
            return Err(exists());
        }
        let key = config.key()?;
        Ok(Repository {
            backend,
            config,
            key,
            lock_lease: lock::default_lease(),
        })
    }

    /// Open an existing repository.
    pub fn open(backend: Arc<dyn Backend>) -> Result<Self> {
        let object = backend.describe(Kind::Config, CONFIG_NAME);
        let bytes = match backend.get(Kind::Config, CONFIG_NAME) {
            Err(e) if e.is_not_found() => {
                return Err(Error::NotARepository(backend.location().into()))
            }
            r => r?,
        };
        let config = RepoConfig::decode(&bytes, &object)?;
        let key = config.key()?;
        Ok(Repository {
            backend,
            config,
            key,
            lock_lease: lock::default_lease(),
        })
    }

    /// The validated config.
    pub fn config(&self) -> &RepoConfig {
        &self.config
    }

    /// The key blob ids are computed with.
    pub fn key(&self) -> &BlobKey {
        &self.key
    }

    /// Where the repository is, for messages.
    pub fn location(&self) -> String {
        self.backend.location()
    }

    /// The backend itself, for code that works on stored objects directly (the engine's
    /// modules, point catalogues). Keep to the storage contract.
    pub fn backend(&self) -> &dyn Backend {
        self.backend.as_ref()
    }

    /// The backend, shared (for threads that outlive a borrow, like the pack writer's).
    pub(crate) fn backend_arc(&self) -> Arc<dyn Backend> {
        self.backend.clone()
    }

    /// This handle with locks of another lease length (default [`lock::default_lease`]).
    pub fn with_lock_lease(mut self, lease: Duration) -> Self {
        self.lock_lease = lease;
        self
    }

    /// Take a lock on `scope` with this handle's lease (see [`lock::acquire`]).
    pub fn lock(
        &self,
        scope: &str,
        exclusive: bool,
        operation: &str,
        wait: Duration,
    ) -> Result<LockGuard> {
        lock::acquire(
            self.backend.clone(),
            scope,
            exclusive,
            operation,
            wait,
            self.lock_lease,
        )
    }

    /// Remove stale lock records, or every one with `all` (see [`lock::unlock`]).
    pub fn unlock(&self, all: bool) -> Result<Vec<String>> {
        lock::unlock(self.backend(), all)
    }

    /// Every snapshot record, oldest first, and the unreadable ones as errors.
    pub fn snapshots(&self) -> Result<(Vec<SnapshotEntry>, Vec<Error>)> {
        load_all(self.backend())
    }

    /// The ids of all snapshot records (not read; names that are not ids are skipped).
    pub fn snapshot_ids(&self) -> Result<Vec<SnapshotId>> {
        Ok(self
            .backend
            .list(Kind::Snapshot)?
            .into_iter()
            .filter_map(|o| SnapshotId::from_hex(&o.name).ok())
            .collect())
    }

    /// Delete a snapshot record (its data stays until a prune).
    pub fn delete_snapshot(&self, id: &SnapshotId) -> Result<()> {
        Ok(self.backend.delete(Kind::Snapshot, &id.to_hex())?)
    }

    /// Bytes stored in packs, index files, snapshot records and catalogues.
    pub fn stored_size(&self) -> Result<u64> {
        let mut size = 0;
        for kind in [Kind::Pack, Kind::Index, Kind::Snapshot, Kind::Catalog] {
            size += self.backend.list(kind)?.iter().map(|o| o.size).sum::<u64>();
        }
        Ok(size)
    }

    /// Load the index and return a reader.
    pub fn reader(&self) -> Result<BlobReader> {
        Ok(BlobReader {
            repo: self.clone(),
            index: Index::load(self.backend.as_ref())?,
        })
    }

    /// A reader over `index` (which the caller built, e.g. from the trailers).
    pub fn reader_with(&self, index: Index) -> BlobReader {
        BlobReader {
            repo: self.clone(),
            index,
        }
    }

    /// A reader that sees the index files written since `old` was loaded, or `None` when
    /// there are none. Index files are immutable, so only the new ones are read; when one
    /// `old` was built from went away (prune, repair), the whole index is loaded again.
    pub fn refresh_reader(&self, old: &BlobReader) -> Result<Option<BlobReader>> {
        let names: HashSet<String> = list_names(self.backend(), Kind::Index)?
            .into_iter()
            .collect();
        let known = old.index.file_names();
        if !known.iter().all(|n| names.contains(n)) {
            return self.reader().map(Some);
        }
        let known: HashSet<String> = known.into_iter().collect();
        let mut new: Vec<String> = names.into_iter().filter(|n| !known.contains(n)).collect();
        if new.is_empty() {
            return Ok(None);
        }
        new.sort();
        let mut index = old.index.clone();
        index.load_files(self.backend(), &new)?;
        Ok(Some(self.reader_with(index)))
    }
}

/// Reads and verifies blobs through the index.
pub struct BlobReader {
    repo: Repository,
    pub index: Index,
}

impl BlobReader {
    /// The repository this reads from.
    pub fn repo(&self) -> &Repository {
        &self.repo
    }

    /// The raw bytes of a blob, verified against its id.
    pub fn read_blob(&self, id: &BlobId) -> Result<Vec<u8>> {
        let loc = self
            .index
            .get(id)
            .ok_or_else(|| Error::MissingBlob(id.to_hex()))?;
        let name = loc.pack.to_hex();
        let object = self.repo.backend.describe(Kind::Pack, &name);
        let stored = self.repo.backend.get_range(
            Kind::Pack,
            &name,
            u64::from(loc.entry.offset),
            u64::from(loc.entry.stored_len),
        )?;
        decode_blob(&self.repo.key, &loc.entry, &stored, &object)
    }

    /// The bytes of a file chunk; its length must be what the tree says.
    pub fn read_chunk(&self, c: &ChunkRef) -> Result<Vec<u8>> {
        let data = self.read_blob(&c.id)?;
        if data.len() != c.len as usize {
            return Err(Error::corrupt(
                format!("blob {}", c.id.short()),
                format!("is {} bytes long but the tree says {}", data.len(), c.len),
            ));
        }
        Ok(data)
    }

    /// A decoded tree.
    pub fn read_tree(&self, id: &BlobId) -> Result<Tree> {
        let bytes = self.read_blob(id)?;
        Tree::decode(&bytes, &format!("tree {}", id.short()))
    }
}

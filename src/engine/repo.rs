//! Opening a repository and reading blobs; writing them is [`super::writer`]'s.

use std::sync::Arc;

use super::backend::{Backend, Kind};
use super::config::RepoConfig;
use super::error::{Error, Result};
use super::id::{BlobId, BlobKey};
use super::index::Index;
use super::pack::decode_blob;
use super::tree::{ChunkRef, Tree};

pub use super::writer::{BlobWriter, WriteStats};

/// Name of the config object.
pub const CONFIG_NAME: &str = "config";

/// An opened repository: its backend and validated config.
#[derive(Clone)]
pub struct Repository {
    pub backend: Arc<dyn Backend>,
    pub config: RepoConfig,
    pub key: BlobKey,
}

impl Repository {
    /// Create a new repository in an empty store.
    pub fn init(backend: Arc<dyn Backend>, config: RepoConfig) -> Result<Self> {
        backend.create()?;
        let bytes = config.encode()?;
        if !backend.put_new(Kind::Config, CONFIG_NAME, &bytes)? {
            return Err(Error::AlreadyExists(backend.location().into()));
        }
        let key = config.key()?;
        Ok(Repository {
            backend,
            config,
            key,
        })
    }

    /// Open an existing repository.
    pub fn open(backend: Arc<dyn Backend>) -> Result<Self> {
        if !backend.exists(Kind::Config, CONFIG_NAME)? {
            return Err(Error::NotARepository(backend.location().into()));
        }
        let object = backend.describe(Kind::Config, CONFIG_NAME);
        let bytes = backend.get(Kind::Config, CONFIG_NAME)?;
        let config = RepoConfig::decode(&bytes, &object)?;
        let key = config.key()?;
        Ok(Repository {
            backend,
            config,
            key,
        })
    }

    /// Load the index and return a reader.
    pub fn reader(&self) -> Result<BlobReader> {
        Ok(BlobReader {
            repo: self.clone(),
            index: Index::load(self.backend.as_ref())?,
        })
    }
}

/// Reads and verifies blobs through the index.
pub struct BlobReader {
    pub repo: Repository,
    pub index: Index,
}

impl BlobReader {
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

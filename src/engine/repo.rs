//! Opening a repository, reading blobs, and writing blobs into packs and index files.

use std::collections::HashSet;
use std::sync::Arc;

use rayon::prelude::*;

use super::backend::{Backend, Kind};
use super::config::RepoConfig;
use super::error::{Error, Result};
use super::id::{BlobId, BlobKey, IndexId, PackId};
use super::index::{encode_index_file, Index, IndexedPack};
use super::pack::{decode_blob, BlobKind, EncodedBlob, PackBuilder};
use super::tree::{ChunkRef, Tree};

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
        let bytes =
            serde_json::to_vec_pretty(&config).map_err(|e| Error::Invalid(e.to_string()))?;
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

/// Raw blobs gathered before compressing them in parallel.
const BATCH_BYTES: usize = 8 << 20;
/// Packs written before their entries go out as an index file.
const PACKS_PER_INDEX: usize = 64;

/// What a writer has added so far.
#[derive(Clone, Copy, Debug, Default)]
pub struct WriteStats {
    pub blobs_added: u64,
    pub bytes_added: u64,
    pub stored_bytes_added: u64,
    pub packs_written: u64,
}

/// Adds blobs to new packs, skipping blobs the repository already has.
///
/// Nothing written is referenced until [`BlobWriter::flush`] has made all packs and index
/// files durable; only then may a snapshot naming these blobs be saved.
pub struct BlobWriter<'a> {
    repo: &'a Repository,
    index: &'a Index,
    seen: HashSet<BlobId>,
    batch: Vec<(BlobId, BlobKind, Vec<u8>)>,
    batch_bytes: usize,
    pack: PackBuilder,
    unindexed: Vec<IndexedPack>,
    pub stats: WriteStats,
    /// Names of the packs and index files written (content-named: an identical object that
    /// already existed has the same name).
    pub written_packs: Vec<PackId>,
    pub written_indexes: Vec<IndexId>,
}

impl<'a> BlobWriter<'a> {
    pub fn new(repo: &'a Repository, index: &'a Index) -> Self {
        BlobWriter {
            repo,
            index,
            seen: HashSet::new(),
            batch: Vec::new(),
            batch_bytes: 0,
            pack: PackBuilder::new(),
            unindexed: Vec::new(),
            stats: WriteStats::default(),
            written_packs: Vec::new(),
            written_indexes: Vec::new(),
        }
    }

    /// Whether the repository or this writer already has the blob.
    pub fn has(&self, id: &BlobId) -> bool {
        self.seen.contains(id) || self.index.contains(id)
    }

    /// Add a blob by content; returns its id.
    pub fn add(&mut self, kind: BlobKind, raw: &[u8]) -> Result<BlobId> {
        let id = self.repo.key.blob_id(raw);
        self.add_with_id(id, kind, raw)?;
        Ok(id)
    }

    /// Add a blob whose id the caller computed with the repository key.
    pub fn add_with_id(&mut self, id: BlobId, kind: BlobKind, raw: &[u8]) -> Result<()> {
        if self.has(&id) {
            return Ok(());
        }
        self.seen.insert(id);
        self.batch_bytes += raw.len();
        self.batch.push((id, kind, raw.to_vec()));
        if self.batch_bytes >= BATCH_BYTES {
            self.drain_batch()?;
        }
        Ok(())
    }

    fn drain_batch(&mut self) -> Result<()> {
        let level = self.repo.config.compression_level;
        let batch = std::mem::take(&mut self.batch);
        self.batch_bytes = 0;
        let encoded: Vec<Result<EncodedBlob>> = batch
            .par_iter()
            .map(|(id, kind, raw)| EncodedBlob::encode_with_id(*id, *kind, raw, level))
            .collect();
        for blob in encoded {
            let blob = blob?;
            self.stats.blobs_added += 1;
            self.stats.bytes_added += u64::from(blob.raw_len);
            self.stats.stored_bytes_added += blob.bytes.len() as u64;
            self.pack.add(blob)?;
            if self.pack.len() >= self.repo.config.pack_size as usize {
                self.write_pack()?;
            }
        }
        Ok(())
    }

    fn write_pack(&mut self) -> Result<()> {
        if self.pack.is_empty() {
            return Ok(());
        }
        let (id, bytes, entries) = std::mem::take(&mut self.pack).finish();
        self.repo.backend.put(Kind::Pack, &id.to_hex(), &bytes)?;
        self.stats.packs_written += 1;
        self.written_packs.push(id);
        self.unindexed.push(IndexedPack { pack: id, entries });
        if self.unindexed.len() >= PACKS_PER_INDEX {
            self.write_index()?;
        }
        Ok(())
    }

    fn write_index(&mut self) -> Result<()> {
        if self.unindexed.is_empty() {
            return Ok(());
        }
        let (id, bytes) = encode_index_file(&self.unindexed);
        self.repo.backend.put(Kind::Index, &id.to_hex(), &bytes)?;
        self.written_indexes.push(id);
        self.unindexed.clear();
        Ok(())
    }

    /// Make every added blob durable: write the open pack and the pending index entries.
    pub fn flush(&mut self) -> Result<()> {
        self.drain_batch()?;
        self.write_pack()?;
        self.write_index()
    }
}

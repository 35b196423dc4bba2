//! Writing blobs: compress them, append them to packs, write the packs and their index files.
//!
//! Two front ends share one [`PackFiles`]: [`BlobWriter`] for single-threaded callers (prune),
//! and [`SharedWriter`] for the parallel backup, where any number of threads compress their
//! own blobs and append them to the open pack in turn. Either way a full pack is written and
//! synced on a thread of its own while the next one fills, so fsyncs overlap reading and
//! compressing.
//! Nothing written is referenced until the writer has been flushed or finished: only then may
//! a snapshot naming these blobs be saved (docs/FORMAT.md, "Write protocol").

use std::sync::Mutex;
use std::thread::JoinHandle;

use rayon::prelude::*;

use super::idset::IdSet;
use super::repo::Repository;
use super::Kind;
use crate::engine::error::{Error, Result};
use crate::engine::format::compress::EncodedBlob;
use crate::engine::format::id::{BlobId, IndexId, PackId};
use crate::engine::format::index::{encode_index_file, Index, IndexedPack};
use crate::engine::format::pack::{BlobKind, PackBuilder};

/// Raw blobs gathered by [`BlobWriter`] before compressing them in parallel.
const BATCH_BYTES: usize = 8 << 20;
/// Packs written before their entries go out as an index file...
const PACKS_PER_INDEX: usize = 64;
/// ...or blob entries, whichever comes first: packs of small files hold thousands of blobs
/// each, and the entries waiting for their index file would grow with the backup.
const ENTRIES_PER_INDEX: usize = 32_768;

/// What a writer has added so far.
#[derive(Clone, Copy, Debug, Default)]
pub struct WriteStats {
    pub blobs_added: u64,
    pub bytes_added: u64,
    pub stored_bytes_added: u64,
    pub packs_written: u64,
}

/// Everything a finished writer wrote.
#[derive(Clone, Debug, Default)]
pub struct Written {
    pub stats: WriteStats,
    /// Names of the packs and index files written (content-named: an identical object that
    /// already existed has the same name).
    pub packs: Vec<PackId>,
    pub indexes: Vec<IndexId>,
}

/// Appends encoded blobs to the open pack and writes full packs and index files.
struct PackFiles {
    repo: Repository,
    pack: PackBuilder,
    unindexed: Vec<IndexedPack>,
    unindexed_entries: usize,
    written: Written,
    /// The full pack being written and synced on its own thread while the next one fills:
    /// compressing threads do not wait for the disk, and memory stays at two packs. The
    /// thread hands its buffer back for the pack after next.
    writing: Option<JoinHandle<Result<Vec<u8>>>>,
    spare: Option<Vec<u8>>,
}

impl PackFiles {
    fn new(repo: &Repository) -> Self {
        PackFiles {
            repo: repo.clone(),
            pack: Self::empty_pack(repo),
            unindexed: Vec::new(),
            unindexed_entries: 0,
            written: Written::default(),
            writing: None,
            spare: None,
        }
    }

    /// A pack buffer with room for a full pack, its last blob and the trailer.
    fn empty_pack(repo: &Repository) -> PackBuilder {
        PackBuilder::with_capacity(Self::pack_capacity(repo))
    }

    fn pack_capacity(repo: &Repository) -> usize {
        let max_blob = repo.config().chunk_sizes.max_size as usize;
        repo.config().pack_size as usize + max_blob + (1 << 20)
    }

    fn add(&mut self, blob: EncodedBlob) -> Result<()> {
        let stats = &mut self.written.stats;
        stats.blobs_added += 1;
        stats.bytes_added += u64::from(blob.raw_len);
        stats.stored_bytes_added += blob.bytes.len() as u64;
        self.pack.add(blob)?;
        if self.pack.len() >= self.repo.config().pack_size as usize {
            self.write_pack()?;
        }
        Ok(())
    }

    fn write_pack(&mut self) -> Result<()> {
        if self.pack.is_empty() {
            return Ok(());
        }
        self.wait_written()?;
        let next = PackBuilder::reusing(
            self.spare.take().unwrap_or_default(),
            Self::pack_capacity(&self.repo),
        );
        let full = std::mem::replace(&mut self.pack, next);
        let (id, bytes, entries) = full.finish();
        let backend = self.repo.backend_arc();
        let put = std::thread::Builder::new()
            .name("yester-pack-put".into())
            .spawn(move || {
                backend
                    .put(Kind::Pack, &id.to_hex(), &bytes)
                    .map(|()| bytes)
                    .map_err(Error::from)
            })
            .map_err(|e| Error::io("pack writer thread", e))?;
        self.writing = Some(put);
        self.written.stats.packs_written += 1;
        self.written.packs.push(id);
        self.unindexed_entries += entries.len();
        self.unindexed.push(IndexedPack { pack: id, entries });
        if self.unindexed.len() >= PACKS_PER_INDEX || self.unindexed_entries >= ENTRIES_PER_INDEX {
            self.write_index()?;
        }
        Ok(())
    }

    /// Wait for the pack being written: it is then durable, or its error is returned.
    fn wait_written(&mut self) -> Result<()> {
        if let Some(put) = self.writing.take() {
            let buf = put.join().unwrap_or_else(|_| {
                Err(Error::Invalid("the pack writer thread panicked".into()))
            })?;
            self.spare = Some(buf);
        }
        Ok(())
    }

    fn write_index(&mut self) -> Result<()> {
        // An index file may only name packs that are durable.
        self.wait_written()?;
        if self.unindexed.is_empty() {
            return Ok(());
        }
        let (id, bytes) = encode_index_file(&self.unindexed);
        self.repo.backend().put(Kind::Index, &id.to_hex(), &bytes)?;
        self.written.indexes.push(id);
        self.unindexed.clear();
        self.unindexed_entries = 0;
        Ok(())
    }

    /// Write the open pack and the pending index entries: every added blob is durable.
    fn flush(&mut self) -> Result<()> {
        self.write_pack()?;
        self.write_index()
    }
}

impl Drop for PackFiles {
    /// An abandoned writer still lets its last pack finish (unreferenced, prune removes it)
    /// rather than leave a thread writing behind it.
    fn drop(&mut self) {
        let _ = self.wait_written();
    }
}

/// Adds blobs to new packs from one thread, skipping blobs the repository already has.
pub struct BlobWriter<'a> {
    repo: &'a Repository,
    index: &'a Index,
    seen: IdSet,
    batch: Vec<(BlobId, BlobKind, Vec<u8>)>,
    batch_bytes: usize,
    files: PackFiles,
}

impl<'a> BlobWriter<'a> {
    pub fn new(repo: &'a Repository, index: &'a Index) -> Self {
        BlobWriter {
            repo,
            index,
            seen: IdSet::new(),
            batch: Vec::new(),
            batch_bytes: 0,
            files: PackFiles::new(repo),
        }
    }

    /// Whether the repository or this writer already has the blob.
    pub fn has(&self, id: &BlobId) -> bool {
        self.seen.contains(id) || self.index.contains(id)
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
        let level = self.repo.config().compression_level;
        let batch = std::mem::take(&mut self.batch);
        self.batch_bytes = 0;
        let encoded: Vec<Result<EncodedBlob>> = batch
            .par_iter()
            .map(|(id, kind, raw)| EncodedBlob::encode_with_id(*id, *kind, raw, level))
            .collect();
        for blob in encoded {
            self.files.add(blob?)?;
        }
        Ok(())
    }

    /// Make every added blob durable: write the open pack and the pending index entries.
    pub fn flush(&mut self) -> Result<()> {
        self.drain_batch()?;
        self.files.flush()
    }

    /// What has been written so far.
    pub fn written(&self) -> &Written {
        &self.files.written
    }
}

/// Adds blobs from many threads at once. Each caller compresses its own blobs and appends
/// them to the open pack under a lock (a copy of the compressed bytes); a full pack goes to
/// its writing thread. No thread hands blobs to another, so a backup of tens of thousands of
/// small files does not wake a packer thread for each of them.
pub struct SharedWriter<'a> {
    repo: &'a Repository,
    index: &'a Index,
    /// Blobs claimed by some thread of this writer (so each new blob is compressed once).
    seen: Mutex<IdSet>,
    packing: Mutex<Packing>,
}

/// The open pack, and the first failed write: every later blob is refused with
/// [`Error::WriterStopped`], and [`SharedWriter::finish`] or `abandon` report the failure.
struct Packing {
    files: PackFiles,
    failed: Option<Error>,
}

impl<'a> SharedWriter<'a> {
    pub fn start(repo: &'a Repository, index: &'a Index) -> Result<Self> {
        Ok(SharedWriter {
            repo,
            index,
            seen: Mutex::new(IdSet::new()),
            packing: Mutex::new(Packing {
                files: PackFiles::new(repo),
                failed: None,
            }),
        })
    }

    fn seen(&self) -> std::sync::MutexGuard<'_, IdSet> {
        // A thread that panicked while holding the lock left the set intact (insert only).
        self.seen.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Whether the repository or this writer already has the blob.
    pub fn has(&self, id: &BlobId) -> bool {
        self.index.contains(id) || self.seen().contains(id)
    }

    /// Add a blob by content; returns its id.
    pub fn add(&self, kind: BlobKind, raw: &[u8]) -> Result<BlobId> {
        let id = self.repo.key().blob_id(raw);
        self.add_with_id(id, kind, raw)?;
        Ok(id)
    }

    /// Add a blob whose id the caller computed with the repository key; it is compressed on
    /// the calling thread.
    pub fn add_with_id(&self, id: BlobId, kind: BlobKind, raw: &[u8]) -> Result<()> {
        if self.claim(id) {
            self.store(id, kind, raw)?;
        }
        Ok(())
    }

    /// Whether `id` is new to the repository and to this writer; if so it is now the
    /// caller's to [`SharedWriter::store`] (and no other thread's).
    pub fn claim(&self, id: BlobId) -> bool {
        !self.index.contains(&id) && self.seen().insert(id)
    }

    /// Compress a claimed blob on the calling thread and append it to the open pack.
    pub fn store(&self, id: BlobId, kind: BlobKind, raw: &[u8]) -> Result<()> {
        let blob =
            EncodedBlob::encode_with_id(id, kind, raw, self.repo.config().compression_level)?;
        // A thread that panicked while appending left at worst a pack that is never written
        // in full; the panic itself ends the backup.
        let mut p = self.packing.lock().unwrap_or_else(|p| p.into_inner());
        if p.failed.is_some() {
            return Err(Error::WriterStopped);
        }
        // Writing a full pack waits here for the one before it: the other threads then wait
        // for the lock, which bounds memory to two packs.
        match p.files.add(blob) {
            Ok(()) => Ok(()),
            Err(e) => {
                p.failed = Some(e);
                Err(Error::WriterStopped)
            }
        }
    }

    fn into_packing(self) -> Packing {
        self.packing.into_inner().unwrap_or_else(|p| p.into_inner())
    }

    /// Write the open pack and the index files: every added blob is then durable. A failed
    /// write's own error (say, a full disk) is reported rather than [`Error::WriterStopped`].
    pub fn finish(self) -> Result<Written> {
        let mut p = self.into_packing();
        if let Some(e) = p.failed.take() {
            return Err(e);
        }
        p.files.flush()?;
        Ok(std::mem::take(&mut p.files.written))
    }

    /// The error to report for a walk that failed with `err`: the failed write's, if that is
    /// what stopped it. Nothing more is written (a pack being written still finishes,
    /// unreferenced, for prune to remove).
    pub fn abandon(self, err: Error) -> Error {
        match (err, self.into_packing().failed) {
            (Error::WriterStopped, Some(e)) => e,
            (err, _) => err,
        }
    }
}

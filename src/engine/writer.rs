//! Writing blobs: compress them, append them to packs, write the packs and their index files.
//!
//! Two front ends share one [`PackFiles`]: [`BlobWriter`] for single-threaded callers (prune),
//! and [`SharedWriter`] for the parallel backup, where any number of threads compress their
//! own blobs and one packer thread fills packs. Either way a full pack is written and synced
//! on a thread of its own while the next one fills, so fsyncs overlap reading and compressing.
//! Nothing written is referenced until the writer has been flushed or finished: only then may
//! a snapshot naming these blobs be saved (docs/FORMAT.md, "Write protocol").

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::{sync_channel, Receiver, SyncSender};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;

use rayon::prelude::*;

use super::backend::Kind;
use super::error::{Error, Result};
use super::id::{BlobId, IndexId, PackId};
use super::idset::IdSet;
use super::index::{encode_index_file, Index, IndexedPack};
use super::pack::{BlobKind, EncodedBlob, PackBuilder};
use super::repo::Repository;

/// Raw blobs gathered by [`BlobWriter`] before compressing them in parallel.
const BATCH_BYTES: usize = 8 << 20;
/// Packs written before their entries go out as an index file...
const PACKS_PER_INDEX: usize = 64;
/// ...or blob entries, whichever comes first: packs of small files hold thousands of blobs
/// each, and the entries waiting for their index file would grow with the backup.
const ENTRIES_PER_INDEX: usize = 32_768;
/// Compressed blobs waiting for the packer thread. With 1 MiB chunks this bounds the queue to
/// a few MiB; the packer only copies them into the open pack (a full pack is written and
/// synced by a thread of its own), so compressing threads seldom wait.
const PACKER_QUEUE: usize = 8;

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
    /// compressing threads do not wait for the disk, and memory stays at two packs.
    writing: Option<JoinHandle<Result<()>>>,
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
        }
    }

    /// A pack buffer with room for a full pack, its last blob and the trailer.
    fn empty_pack(repo: &Repository) -> PackBuilder {
        let max_blob = repo.config.chunk_sizes.max_size as usize;
        PackBuilder::with_capacity(repo.config.pack_size as usize + max_blob + (1 << 20))
    }

    fn add(&mut self, blob: EncodedBlob) -> Result<()> {
        let stats = &mut self.written.stats;
        stats.blobs_added += 1;
        stats.bytes_added += u64::from(blob.raw_len);
        stats.stored_bytes_added += blob.bytes.len() as u64;
        self.pack.add(blob)?;
        if self.pack.len() >= self.repo.config.pack_size as usize {
            self.write_pack()?;
        }
        Ok(())
    }

    fn write_pack(&mut self) -> Result<()> {
        if self.pack.is_empty() {
            return Ok(());
        }
        let full = std::mem::replace(&mut self.pack, Self::empty_pack(&self.repo));
        let (id, bytes, entries) = full.finish();
        self.wait_written()?;
        let backend = self.repo.backend.clone();
        let put = std::thread::Builder::new()
            .name("yester-pack-put".into())
            .spawn(move || backend.put(Kind::Pack, &id.to_hex(), &bytes))
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
        match self.writing.take() {
            None => Ok(()),
            Some(put) => put
                .join()
                .unwrap_or_else(|_| Err(Error::Invalid("the pack writer thread panicked".into()))),
        }
    }

    fn write_index(&mut self) -> Result<()> {
        // An index file may only name packs that are durable.
        self.wait_written()?;
        if self.unindexed.is_empty() {
            return Ok(());
        }
        let (id, bytes) = encode_index_file(&self.unindexed);
        self.repo.backend.put(Kind::Index, &id.to_hex(), &bytes)?;
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

/// Adds blobs from many threads at once. Each caller compresses its own blobs; a packer
/// thread appends them to packs and writes those, through a short bounded queue.
pub struct SharedWriter<'a> {
    repo: &'a Repository,
    index: &'a Index,
    /// Blobs claimed by some thread of this writer (so each new blob is compressed once).
    seen: Mutex<IdSet>,
    tx: SyncSender<EncodedBlob>,
    packer: JoinHandle<(PackFiles, Result<()>)>,
    /// Set when the walk failed: the packer then stops without writing what it holds.
    abort: Arc<AtomicBool>,
}

impl<'a> SharedWriter<'a> {
    /// Start the packer thread.
    pub fn start(repo: &'a Repository, index: &'a Index) -> Result<Self> {
        let (tx, rx) = sync_channel::<EncodedBlob>(PACKER_QUEUE);
        let files = PackFiles::new(repo);
        let abort = Arc::new(AtomicBool::new(false));
        let stop = abort.clone();
        let packer = std::thread::Builder::new()
            .name("yester-packer".into())
            .spawn(move || pack_loop(files, rx, &stop))
            .map_err(|e| Error::io("packer thread", e))?;
        Ok(SharedWriter {
            repo,
            index,
            seen: Mutex::new(IdSet::new()),
            tx,
            packer,
            abort,
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
        let id = self.repo.key.blob_id(raw);
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

    /// Compress a claimed blob on the calling thread and queue it for the packer.
    pub fn store(&self, id: BlobId, kind: BlobKind, raw: &[u8]) -> Result<()> {
        let blob = EncodedBlob::encode_with_id(id, kind, raw, self.repo.config.compression_level)?;
        // The packer only hangs up after a failed write; `finish` reports that failure.
        self.tx.send(blob).map_err(|_| Error::WriterStopped)
    }

    /// Write the open pack and the index files and stop the packer: every added blob is then
    /// durable. The packer's own error (say, a full disk) wins over [`Error::WriterStopped`].
    pub fn finish(self) -> Result<Written> {
        drop(self.tx);
        match self.packer.join() {
            Ok((mut files, Ok(()))) => Ok(std::mem::take(&mut files.written)),
            Ok((_, Err(e))) => Err(e),
            Err(_) => Err(Error::Invalid("the packer thread panicked".into())),
        }
    }

    /// The error to report for a walk that failed with `err`: the packer's if it failed first.
    pub fn abandon(self, err: Error) -> Error {
        self.abort.store(true, Ordering::SeqCst);
        drop(self.tx);
        match self.packer.join() {
            Ok((_, Err(e))) if matches!(err, Error::WriterStopped) => e,
            _ => err,
        }
    }
}

fn pack_loop(
    mut files: PackFiles,
    rx: Receiver<EncodedBlob>,
    abort: &AtomicBool,
) -> (PackFiles, Result<()>) {
    for blob in rx.iter() {
        if abort.load(Ordering::SeqCst) {
            return (files, Ok(()));
        }
        if let Err(e) = files.add(blob) {
            // Dropping the receiver (on return) makes every sender fail fast.
            return (files, Err(e));
        }
    }
    if abort.load(Ordering::SeqCst) {
        return (files, Ok(()));
    }
    let res = files.flush();
    (files, res)
}

//! Reading one file: open it (or take the prefetch's handle), chunk, hash and store its
//! content, and tell whether it changed while it was read.

use std::cell::RefCell;
use std::fs;
use std::io;
use std::path::Path;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Mutex;

use crate::engine::chunking::chunker::Chunker;
use crate::engine::error::{Error, Result};
use crate::engine::format::pack::BlobKind;
use crate::engine::format::tree::{ChunkRef, NodeKind};
use crate::engine::localfs::fsat::{self, Stat};
use std::os::fd::OwnedFd;

use super::walk::{guard, is_vanished, Walker};
use super::Progress;

thread_local! {
    /// Each worker's chunker buffer, allocated once per thread (zeroing megabytes per small
    /// file would dominate a backup); freed with the backup's thread pool.
    static CHUNK_BUF: RefCell<Vec<u8>> = const { RefCell::new(Vec::new()) };
}

impl<P: Progress> Walker<'_, P> {
    /// Save a file's content; returns the chunk list and bytes read, or `None` when the file
    /// could not be read (a warning). Errors are the repository's and end the backup.
    /// `opened`: the file, already opened by the prefetch, with `st` from its `fstat`.
    pub(super) fn save_file(
        &self,
        dir: &OwnedFd,
        name: &[u8],
        path: &Path,
        st: &Stat,
        opened: Option<&fs::File>,
    ) -> Result<Option<(Vec<ChunkRef>, u64)>> {
        if let Some(file) = opened {
            return self.read_file(file, path, *st);
        }
        let file = match fsat::open_file_at(dir, name) {
            Ok(f) => f,
            Err(e) if is_vanished(&e) => {
                self.warn(path, "vanished before it could be read");
                return Ok(None);
            }
            Err(e) => {
                self.warn(path, format_args!("cannot open: {e}"));
                return Ok(None);
            }
        };
        let before = match fsat::stat_fd(&file) {
            Ok(b) if b.kind() == NodeKind::File && b.same_inode(st) => b,
            Ok(_) => {
                self.warn(path, "was replaced while being backed up; skipped");
                return Ok(None);
            }
            Err(e) => {
                self.warn(path, format_args!("cannot stat: {e}"));
                return Ok(None);
            }
        };
        self.read_file(&file, path, before)
    }

    /// Read, chunk and store the open regular file `file`, `fstat`-ed as `before`.
    pub(super) fn read_file(
        &self,
        file: &fs::File,
        path: &Path,
        before: Stat,
    ) -> Result<Option<(Vec<ChunkRef>, u64)>> {
        let (chunks, read) = match self.chunk_file(file)? {
            Ok(r) => r,
            Err(e) => {
                self.warn(path, format_args!("read error: {e}"));
                return Ok(None);
            }
        };
        guard(&self.stats).bytes_read += read;
        if let Ok(after) = fsat::stat_fd(file) {
            // ctime also moves when the file is linked or unlinked, which leaves the content
            // as read intact: only count it when the link count stayed the same.
            let changed = after.size != before.size
                || after.mtime != before.mtime
                || (after.nlink == before.nlink && after.ctime != before.ctime)
                || read != before.size;
            if changed {
                self.warn(
                    path,
                    "changed while being read; the saved copy may be inconsistent",
                );
            }
        }
        Ok(Some((chunks, read)))
    }

    /// Chunk, hash and store an open file; `Ok(Err(e))` when reading it failed.
    ///
    /// The first chunk is compressed here; later ones (big files) go to idle threads of the
    /// pool, at most one per thread at a time, while this thread reads on: otherwise one big
    /// file would be compressed on one core.
    pub(super) fn chunk_file(
        &self,
        file: &fs::File,
    ) -> Result<std::result::Result<(Vec<ChunkRef>, u64), io::Error>> {
        let failed: Mutex<Option<Error>> = Mutex::new(None);
        let in_flight = AtomicUsize::new(0);
        let limit = rayon::current_num_threads();
        // The buffer is borrowed inside the scope, so it is released before the scope waits
        // for its tasks (and this thread, while waiting, may run another file's work).
        let res = rayon::in_place_scope(|s| {
            CHUNK_BUF.with_borrow_mut(|buf| {
                let mut chunker = Chunker::new(file, self.repo.config().chunk_sizes, buf);
                let mut chunks = Vec::new();
                let mut read: u64 = 0;
                loop {
                    let (data, zeros) = match chunker.next_chunk() {
                        Ok(Some(c)) => (c.data, c.zeros),
                        Ok(None) => return Ok(Ok((chunks, read))),
                        Err(e) => return Ok(Err(e)),
                    };
                    read += data.len() as u64;
                    let len = data.len() as u32;
                    let id = match self.zero_chunk.get() {
                        Some(z) if zeros && z.len == len => z.id,
                        _ => {
                            let id = self.repo.key().blob_id(data);
                            if zeros {
                                let _ = self.zero_chunk.set(ChunkRef { id, len });
                            }
                            id
                        }
                    };
                    if self.writer.claim(id) {
                        if !chunks.is_empty() && in_flight.load(Ordering::Acquire) < limit {
                            in_flight.fetch_add(1, Ordering::AcqRel);
                            let raw = data.to_vec();
                            let (failed, in_flight) = (&failed, &in_flight);
                            s.spawn(move |_| {
                                if let Err(e) = self.writer.store(id, BlobKind::Data, &raw) {
                                    guard(failed).get_or_insert(e);
                                }
                                in_flight.fetch_sub(1, Ordering::AcqRel);
                            });
                        } else {
                            // A failure to store is the repository's, not this file's: stop
                            // the backup.
                            self.writer.store(id, BlobKind::Data, data)?;
                        }
                    }
                    chunks.push(ChunkRef { id, len });
                }
            })
        });
        match failed.into_inner().unwrap_or_else(|p| p.into_inner()) {
            Some(e) => Err(e),
            None => res,
        }
    }
}

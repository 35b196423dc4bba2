//! Reading files: open files (shared by the adaptors through one cache), chunks through the
//! chunk cache, and read-ahead for sequential readers.

use std::sync::Arc;

use crate::engine::format::tree::{ChunkRef, NodeKind};

use super::{lock, moved, Node, OpenFile, Slice, Vfs, VfsError, VfsResult};

impl Vfs {
    /// Open a regular file for reading: it keeps reading this snapshot's content whatever
    /// happens to the points afterwards. Files read lately are kept open ([`super::OPEN_FILES`]),
    /// so the adaptors, which read by inode or handle without opens, call this for each read.
    pub fn open(&self, node: &Node) -> VfsResult<Arc<OpenFile>> {
        let Node::Entry {
            snap,
            parent,
            index,
            ..
        } = node
        else {
            // Every other kind of node is a directory.
            return Err(VfsError::IsDir);
        };
        let key = (*snap, *parent, *index);
        if let Some(f) = lock(&self.open).get(&key) {
            return Ok(f.clone());
        }
        let e = self.entry(&self.state(), snap, parent, *index)?;
        let f = match e.kind {
            NodeKind::File => Arc::new(OpenFile::new(e.chunks, e.size)),
            NodeKind::Dir => return Err(VfsError::IsDir),
            _ => return Err(VfsError::Invalid),
        };
        lock(&self.open).put(key, f.clone());
        Ok(f)
    }

    /// Read up to `size` bytes at `offset` of an open file.
    pub fn read(&self, f: &OpenFile, offset: u64, size: u32) -> VfsResult<Vec<u8>> {
        f.read(self, offset, size)
    }

    /// As [`Vfs::read`], as slices of cached chunks (for replies sent without a copy).
    pub fn read_slices(&self, f: &OpenFile, offset: u64, size: u32) -> VfsResult<Vec<Slice>> {
        f.read_slices(self, offset, size)
    }

    /// A chunk, from the cache or read; `request` counts it as wanted again (see
    /// [`super::cache::ChunkCache::get_or_wait`]).
    pub(super) fn chunk(&self, c: &ChunkRef, request: bool) -> VfsResult<Arc<Vec<u8>>> {
        if let Some(d) = self.chunks.get_or_wait(&c.id, request) {
            return Ok(d);
        }
        let st = self.state();
        let data = match st.reader.read_chunk(c) {
            Ok(d) => d,
            Err(e) if moved(&e) => self.shared.reader_after(&st.reader).read_chunk(c)?,
            Err(e) => return Err(e.into()),
        };
        let data = Arc::new(data);
        self.chunks.insert(c.id, data.clone());
        Ok(data)
    }

    /// Fetch chunks in the background so a sequential reader finds them decompressed.
    pub(super) fn prefetch(&self, chunks: &[ChunkRef]) {
        for c in chunks.iter().take(self.prefetch) {
            if !self.chunks.start_fetch(c.id) {
                continue;
            }
            let cache = self.chunks.clone();
            let reader = self.state().reader.clone();
            let c = *c;
            rayon::spawn(move || {
                match reader.read_chunk(&c) {
                    Ok(d) => cache.insert(c.id, Arc::new(d)),
                    Err(e) => tracing::debug!("prefetch of {} failed: {e}", c.id.short()),
                }
                cache.end_fetch(&c.id);
            });
        }
    }
}

//! Open files: a chunk list with end offsets, read by binary search, with read-ahead.

use std::sync::atomic::{AtomicU64, Ordering};

use crate::engine::tree::ChunkRef;

use super::{Vfs, VfsResult};

/// A file opened for reading; it holds its snapshot's chunk list, so it keeps reading the
/// content it was opened with even if its point moves on.
pub struct OpenFile {
    chunks: Vec<ChunkRef>,
    /// `ends[i]` is the offset just past chunk `i`.
    ends: Vec<u64>,
    pub size: u64,
    /// Where the previous read ended, to recognise sequential reading.
    next: AtomicU64,
}

impl OpenFile {
    pub fn new(chunks: Vec<ChunkRef>, size: u64) -> Self {
        let mut end = 0;
        let ends = chunks
            .iter()
            .map(|c| {
                end += u64::from(c.len);
                end
            })
            .collect();
        OpenFile {
            chunks,
            ends,
            size,
            next: AtomicU64::new(0),
        }
    }

    pub(super) fn read(&self, vfs: &Vfs, offset: u64, size: u32) -> VfsResult<Vec<u8>> {
        let mut out = Vec::new();
        self.read_into(vfs, offset, size, &mut out)?;
        Ok(out)
    }

    /// As [`OpenFile::read`], appending to `out` (an NFS reply, without a copy in between).
    pub(super) fn read_into(
        &self,
        vfs: &Vfs,
        offset: u64,
        size: u32,
        out: &mut Vec<u8>,
    ) -> VfsResult<()> {
        let end = offset.saturating_add(u64::from(size)).min(self.size);
        if offset >= end {
            return Ok(());
        }
        out.reserve((end - offset) as usize);
        let mut i = self.ends.partition_point(|&e| e <= offset);
        let mut pos = offset;
        let sequential = self.next.swap(end, Ordering::Relaxed) == offset;
        while pos < end && i < self.chunks.len() {
            let start = if i == 0 { 0 } else { self.ends[i - 1] };
            if sequential && pos == offset {
                vfs.prefetch(&self.chunks[i + 1..]);
            }
            let data = vfs.chunk(&self.chunks[i])?;
            let from = (pos - start) as usize;
            let to = ((end - start) as usize).min(data.len());
            if from >= to {
                break;
            }
            out.extend_from_slice(&data[from..to]);
            pos = start + to as u64;
            i += 1;
        }
        Ok(())
    }
}

//! Open files: a chunk list with end offsets, read by binary search, with read-ahead.

use std::ops::Range;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use crate::engine::format::tree::ChunkRef;

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
        Slice::append_all(&self.read_slices(vfs, offset, size)?, &mut out);
        Ok(out)
    }

    /// The bytes `offset..offset + size` (fewer at the end of the file) as slices of cached
    /// chunks, in order: a reply can be sent from them without copying them first.
    pub(super) fn read_slices(&self, vfs: &Vfs, offset: u64, size: u32) -> VfsResult<Vec<Slice>> {
        let mut out = Vec::new();
        let end = offset.saturating_add(u64::from(size)).min(self.size);
        if offset >= end {
            return Ok(out);
        }
        let mut i = self.ends.partition_point(|&e| e <= offset);
        let mut pos = offset;
        let sequential = self.next.swap(end, Ordering::Relaxed) == offset;
        while pos < end && i < self.chunks.len() {
            let start = if i == 0 { 0 } else { self.ends[i - 1] };
            if sequential && pos == offset {
                vfs.prefetch(&self.chunks[i + 1..]);
            }
            let from = (pos - start) as usize;
            // A sequential reader asks for a big chunk many times; it counts as wanted once,
            // when reading it begins (else big chunks would crowd the cache's admission).
            let data = vfs.chunk(&self.chunks[i], from == 0 || !sequential)?;
            let to = ((end - start) as usize).min(data.len());
            if from >= to {
                break;
            }
            out.push(Slice {
                chunk: data,
                range: from..to,
            });
            pos = start + to as u64;
            i += 1;
        }
        Ok(out)
    }
}

/// Part of a decompressed chunk, held by reference (the cache may drop the chunk meanwhile).
#[derive(Clone, Debug)]
pub struct Slice {
    chunk: Arc<Vec<u8>>,
    range: Range<usize>,
}

impl Slice {
    pub fn bytes(&self) -> &[u8] {
        // The range was cut to the chunk's length when the slice was made.
        self.chunk.get(self.range.clone()).unwrap_or_default()
    }

    pub fn len(&self) -> usize {
        self.range.len()
    }

    pub fn is_empty(&self) -> bool {
        self.range.is_empty()
    }

    /// Append the bytes of `slices`, in order, to `out` (where a reply needs them in one
    /// buffer after all).
    pub fn append_all(slices: &[Slice], out: &mut Vec<u8>) {
        out.reserve(slices.iter().map(Slice::len).sum());
        for s in slices {
            out.extend_from_slice(s.bytes());
        }
    }
}

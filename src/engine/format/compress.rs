//! One blob's bytes: whether and how hard to compress them (zstd; a mostly-zero blob at level
//! 1, data that does not compress kept raw), and decoding a stored blob back, verified against
//! its id. Where blobs sit in a pack is [`super::pack`]'s.

use super::id::{BlobId, BlobKey};
use super::pack::{BlobKind, PackEntry};
use crate::engine::chunking::zeros::all_zero;
use crate::engine::error::{Error, Result};

/// How a blob's bytes are stored.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Compression {
    None,
    Zstd,
}

impl Compression {
    pub fn code(self) -> u8 {
        match self {
            Compression::None => 0,
            Compression::Zstd => 1,
        }
    }
    pub fn from_code(c: u8) -> Option<Self> {
        match c {
            0 => Some(Compression::None),
            1 => Some(Compression::Zstd),
            _ => None,
        }
    }
}

/// A blob ready to be appended to a pack: already compressed (or kept raw).
pub struct EncodedBlob {
    pub id: BlobId,
    pub kind: BlobKind,
    pub compression: Compression,
    pub raw_len: u32,
    pub bytes: Vec<u8>,
}

impl EncodedBlob {
    /// Hash and compress `raw`; keep it raw when zstd does not make it smaller.
    pub fn encode(key: &BlobKey, kind: BlobKind, raw: &[u8], level: i32) -> Result<Self> {
        let id = key.blob_id(raw);
        Self::encode_with_id(id, kind, raw, level)
    }

    /// As [`EncodedBlob::encode`] for a blob whose id is already known.
    pub fn encode_with_id(id: BlobId, kind: BlobKind, raw: &[u8], level: i32) -> Result<Self> {
        let raw_len = u32::try_from(raw.len())
            .map_err(|_| Error::Invalid("blob larger than 4 GiB".into()))?;
        if raw.len() < PROBE_FROM || worth_compressing(raw) {
            let level = if raw.len() >= PROBE_FROM && mostly_zero_blocks(raw) {
                // Level 1 makes the same few bytes of a run of zeros four times faster.
                level.min(1)
            } else {
                level
            };
            let mut c =
                zstd_compress(raw, level).map_err(|e| Error::Invalid(format!("zstd: {e}")))?;
            if c.len() < raw.len() {
                // zstd sized the buffer for the worst case; a queued blob holds what it uses.
                c.shrink_to_fit();
                return Ok(EncodedBlob {
                    id,
                    kind,
                    compression: Compression::Zstd,
                    raw_len,
                    bytes: c,
                });
            }
        }
        Ok(EncodedBlob {
            id,
            kind,
            compression: Compression::None,
            raw_len,
            bytes: raw.to_vec(),
        })
    }
}

/// Blobs from this size on are probed before they are compressed.
const PROBE_FROM: usize = 64 * 1024;
/// The probe compresses this many slices of this many bytes, spread over the blob.
const PROBE_SLICES: usize = 4;
const PROBE_SLICE: usize = 4096;

/// Whether zstd is worth running over `raw` (at least [`PROBE_FROM`] bytes): a level-1 pass
/// over slices from its start, middle and end must save 3 %. Already-compressed data (media,
/// archives, packages) then costs one cheap pass instead of a full one at the real level.
fn worth_compressing(raw: &[u8]) -> bool {
    let mut sample = [0u8; PROBE_SLICES * PROBE_SLICE];
    let step = (raw.len() - PROBE_SLICE) / (PROBE_SLICES - 1);
    for (i, out) in sample.chunks_exact_mut(PROBE_SLICE).enumerate() {
        out.copy_from_slice(&raw[i * step..i * step + PROBE_SLICE]);
    }
    zstd_compress(&sample, 1).is_ok_and(|c| c.len() < sample.len() * 97 / 100)
}

/// Whether at least 7 in 8 of `raw`'s 4 KiB blocks are all zeros: a chunk of a VM image's
/// free space with a few blocks written. Data chunks answer after a few blocks.
fn mostly_zero_blocks(raw: &[u8]) -> bool {
    const BLOCK: usize = 4096;
    let blocks = raw.len() / BLOCK;
    let allowed = blocks / 8;
    let mut data_blocks = 0;
    for b in raw.chunks_exact(BLOCK) {
        if !all_zero(b) {
            data_blocks += 1;
            if data_blocks > allowed {
                return false;
            }
        }
    }
    blocks > 0
}

thread_local! {
    /// This thread's zstd compression contexts by level: a context costs about as much to set
    /// up as compressing a small blob, and a backup compresses tens of thousands.
    static COMPRESSORS: std::cell::RefCell<Vec<(i32, zstd::bulk::Compressor<'static>)>> =
        const { std::cell::RefCell::new(Vec::new()) };
}

/// Compress `raw` at `level` with this thread's context (a standard frame with its content
/// size, as `zstd::bulk::compress` makes).
fn zstd_compress(raw: &[u8], level: i32) -> std::io::Result<Vec<u8>> {
    COMPRESSORS.with_borrow_mut(|cs| {
        let i = match cs.iter().position(|(l, _)| *l == level) {
            Some(i) => i,
            None => {
                cs.push((level, zstd::bulk::Compressor::new(level)?));
                cs.len() - 1
            }
        };
        cs[i].1.compress(raw)
    })
}

thread_local! {
    /// This thread's zstd decompression context: a restore or a mount reads tens of thousands
    /// of small blobs, and setting a context up for each costs about as much as using it.
    static DECOMPRESSOR: std::cell::RefCell<Option<zstd::bulk::Decompressor<'static>>> =
        const { std::cell::RefCell::new(None) };
}

/// Decompress a frame of `capacity` bytes (the caller checked the frame's recorded size) with
/// this thread's context.
fn zstd_decompress(stored: &[u8], capacity: usize) -> std::io::Result<Vec<u8>> {
    DECOMPRESSOR.with_borrow_mut(|d| {
        let d = match d {
            Some(d) => d,
            None => d.insert(zstd::bulk::Decompressor::new()?),
        };
        let mut out = Vec::with_capacity(capacity);
        advise_huge_pages(&mut out);
        d.decompress_to_buffer(stored, &mut out)?;
        Ok(out)
    })
}

/// Ask for transparent huge pages under the untouched capacity of a big buffer. A mount's
/// chunk cache fills with fresh memory during a cold read, and faulting it in 4 KiB at a time
/// cost about 8 % of the daemon's CPU in a cold `cat` of a 1 GiB image. A hint only: where
/// huge pages are off or the memory was touched before, nothing changes.
fn advise_huge_pages(buf: &mut Vec<u8>) {
    const HUGE: usize = 2 << 20;
    if buf.capacity() < HUGE {
        return;
    }
    let start = buf.as_mut_ptr() as usize;
    let first = start.next_multiple_of(HUGE);
    let end = (start + buf.capacity()) / HUGE * HUGE;
    if end > first {
        // SAFETY: the range lies inside this Vec's own allocation; MADV_HUGEPAGE changes how
        // pages are backed, never what they hold.
        unsafe {
            nix::libc::madvise(
                first as *mut nix::libc::c_void,
                end - first,
                nix::libc::MADV_HUGEPAGE,
            );
        }
    }
}

/// Decode a stored blob and verify it hashes to its id. `object` names it for errors.
pub fn decode_blob(
    key: &BlobKey,
    entry: &PackEntry,
    stored: &[u8],
    object: &str,
) -> Result<Vec<u8>> {
    if stored.len() != entry.stored_len as usize {
        return Err(Error::corrupt(object, "blob is truncated"));
    }
    let raw = match entry.compression {
        Compression::None => stored.to_vec(),
        Compression::Zstd => {
            // The frame records its content size (yester always writes it): one that disagrees
            // with the entry is damage, found before reserving memory for a bogus length.
            let framed = zstd::zstd_safe::get_frame_content_size(stored);
            if !matches!(framed, Ok(Some(n)) if n == u64::from(entry.raw_len)) {
                return Err(Error::corrupt(
                    object,
                    format!(
                        "blob {} is not a zstd frame of its recorded length",
                        entry.id.short()
                    ),
                ));
            }
            zstd_decompress(stored, entry.raw_len as usize).map_err(|e| {
                Error::corrupt(
                    object,
                    format!("blob {} does not decompress: {e}", entry.id.short()),
                )
            })?
        }
    };
    if raw.len() != entry.raw_len as usize || key.blob_id(&raw) != entry.id {
        return Err(Error::corrupt(
            object,
            format!(
                "blob {} does not match its id (damaged bytes)",
                entry.id.short()
            ),
        ));
    }
    Ok(raw)
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    /// The pack entry of `blob` stored at offset 8.
    pub(crate) fn entry_of(blob: &EncodedBlob) -> PackEntry {
        PackEntry {
            id: blob.id,
            kind: blob.kind,
            compression: blob.compression,
            offset: 8,
            stored_len: blob.bytes.len() as u32,
            raw_len: blob.raw_len,
        }
    }

    /// A run of zeros with a few 4 KiB writes is found (and data is not), and still stores
    /// as a few bytes that decode back to it.
    #[test]
    fn mostly_zero_blobs_are_recognised_and_round_trip() {
        let key = BlobKey([5; 32]);
        let x = &mut 9u64;
        let mut noise = |n: usize| crate::engine::testdata::noise(x, n);
        let mut raw = vec![0u8; 4 << 20];
        for at in [4096 * 3, 4096 * 500, (4 << 20) - 4096] {
            raw[at..at + 4096].copy_from_slice(&noise(4096));
        }
        assert!(mostly_zero_blocks(&raw));
        let text: Vec<u8> = (0..(1u32 << 20))
            .map(|i| b"abcdefgh"[(i % 8) as usize])
            .collect();
        assert!(!mostly_zero_blocks(&text));
        let mut half = vec![0u8; 1 << 20];
        half[..1 << 19].copy_from_slice(&noise(1 << 19));
        assert!(!mostly_zero_blocks(&half));
        assert!(!mostly_zero_blocks(&[0u8; 100]), "shorter than a block");

        let blob = EncodedBlob::encode(&key, BlobKind::Data, &raw, 3).unwrap();
        assert_eq!(blob.compression, Compression::Zstd);
        assert!(blob.bytes.len() < 3 * 4096 + 4096, "{}", blob.bytes.len());
        assert!(decode_blob(&key, &entry_of(&blob), &blob.bytes, "t").unwrap() == raw);
    }
}

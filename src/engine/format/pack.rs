//! Pack files: immutable concatenations of compressed blobs with a self-describing trailer.
//! Byte layout: docs/FORMAT.md, "Pack files". How one blob's bytes are compressed and
//! verified is [`super::compress`]'s.

use super::codec::{Decoder, Encoder};
use super::compress::{Compression, EncodedBlob};
use super::id::{content_hash, BlobId, PackId};
use crate::engine::error::{Error, Result};
use crate::engine::store::{Backend, Kind};

/// First 8 bytes of every pack.
pub const PACK_MAGIC: &[u8; 8] = b"YSTRPAK1";
/// Last 8 bytes of every pack.
pub const TRAILER_MAGIC: &[u8; 8] = b"YSTRTRL1";
/// Size of one trailer entry.
pub const ENTRY_LEN: usize = 48;
/// Size of the fixed footer (count, reserved, checksum, magic).
pub const FOOTER_LEN: usize = 48;

/// What a blob holds.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum BlobKind {
    /// A chunk of file content.
    Data,
    /// An encoded directory ([`super::tree::Tree`]).
    Tree,
}

impl BlobKind {
    pub fn code(self) -> u8 {
        match self {
            BlobKind::Data => 0,
            BlobKind::Tree => 1,
        }
    }
    pub fn from_code(c: u8) -> Option<Self> {
        match c {
            0 => Some(BlobKind::Data),
            1 => Some(BlobKind::Tree),
            _ => None,
        }
    }
}

/// Where a blob sits inside its pack.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct PackEntry {
    pub id: BlobId,
    pub kind: BlobKind,
    pub compression: Compression,
    pub offset: u32,
    pub stored_len: u32,
    pub raw_len: u32,
}

/// Accumulates blobs for one pack in memory.
pub struct PackBuilder {
    buf: Vec<u8>,
    entries: Vec<PackEntry>,
}

impl Default for PackBuilder {
    fn default() -> Self {
        Self::new()
    }
}

impl PackBuilder {
    pub fn new() -> Self {
        Self::with_capacity(0)
    }

    /// A builder whose buffer holds `bytes` without growing: a pack that doubled its way
    /// past `pack_size` would briefly need three times that.
    pub fn with_capacity(bytes: usize) -> Self {
        Self::reusing(Vec::new(), bytes)
    }

    /// As [`PackBuilder::with_capacity`], in the buffer of a pack already written: a backup
    /// then keeps using the same two buffers instead of faulting in fresh pages for each pack.
    pub fn reusing(mut buf: Vec<u8>, bytes: usize) -> Self {
        buf.clear();
        buf.reserve_exact(bytes.max(PACK_MAGIC.len()));
        buf.extend_from_slice(PACK_MAGIC);
        PackBuilder {
            buf,
            entries: Vec::new(),
        }
    }

    /// Bytes so far.
    pub fn len(&self) -> usize {
        self.buf.len()
    }

    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    pub fn add(&mut self, blob: EncodedBlob) -> Result<()> {
        let offset = u32::try_from(self.buf.len())
            .map_err(|_| Error::Invalid("pack larger than 4 GiB".into()))?;
        self.buf.extend_from_slice(&blob.bytes);
        self.entries.push(PackEntry {
            id: blob.id,
            kind: blob.kind,
            compression: blob.compression,
            offset,
            stored_len: blob.bytes.len() as u32,
            raw_len: blob.raw_len,
        });
        Ok(())
    }

    /// Append the trailer; returns the pack's id, bytes and entries.
    pub fn finish(mut self) -> (PackId, Vec<u8>, Vec<PackEntry>) {
        let trailer = encode_trailer(&self.entries);
        self.buf.extend_from_slice(&trailer);
        let id = PackId(content_hash(&self.buf));
        (id, self.buf, self.entries)
    }
}

fn encode_trailer(entries: &[PackEntry]) -> Vec<u8> {
    let mut e = Encoder::new();
    encode_entries(entries, &mut e);
    e.u32_le(entries.len() as u32);
    let sum = content_hash(&e.buf);
    e.u32_le(0);
    e.raw(&sum);
    e.raw(TRAILER_MAGIC);
    e.buf
}

/// How much of a pack's end one request reads: the footer and the entries of up to about
/// 1,300 blobs, so a trailer usually takes one request (a 16 MiB pack of 1 MiB chunks has a
/// few dozen entries; only packs of many tiny files need a second one).
const TRAILER_READ: u64 = 64 << 10;

/// Read and verify a pack's trailer; every entry is checked to lie inside the pack.
pub fn read_trailer(backend: &dyn Backend, pack: &PackId) -> Result<Vec<PackEntry>> {
    let name = pack.to_hex();
    let object = backend.describe(Kind::Pack, &name);
    let tail = backend.get_suffix(Kind::Pack, &name, TRAILER_READ)?;
    let size = tail.size;
    if size < (PACK_MAGIC.len() + FOOTER_LEN) as u64
        || (tail.bytes.len() as u64) < FOOTER_LEN as u64
    {
        return Err(Error::corrupt(
            &object,
            "pack is truncated (shorter than its trailer)",
        ));
    }
    let footer = &tail.bytes[tail.bytes.len() - FOOTER_LEN..];
    let mut d = Decoder::new(footer, &object);
    let count = d.u32_le()? as u64;
    let _reserved = d.u32_le()?;
    let sum = d.array32()?;
    if d.raw(8)? != TRAILER_MAGIC {
        return Err(Error::corrupt(
            &object,
            "pack trailer magic missing (truncated or damaged)",
        ));
    }
    let entries_len = count * ENTRY_LEN as u64;
    if entries_len + (FOOTER_LEN + PACK_MAGIC.len()) as u64 > size {
        return Err(Error::corrupt(
            &object,
            "pack trailer count larger than the pack",
        ));
    }
    let data_end = size - FOOTER_LEN as u64 - entries_len;
    // The entries end where the footer starts; what the suffix read did not reach is read now.
    let have = (tail.bytes.len() - FOOTER_LEN) as u64;
    let mut table = if have >= entries_len {
        tail.bytes[(have - entries_len) as usize..tail.bytes.len() - FOOTER_LEN].to_vec()
    } else {
        let mut t = backend.get_range(Kind::Pack, &name, data_end, entries_len - have)?;
        if t.len() as u64 != entries_len - have {
            return Err(Error::corrupt(&object, "pack changed while it was read"));
        }
        t.extend_from_slice(&tail.bytes[..tail.bytes.len() - FOOTER_LEN]);
        t
    };
    table.extend_from_slice(&(count as u32).to_le_bytes());
    if content_hash(&table) != sum {
        return Err(Error::corrupt(&object, "pack trailer checksum mismatch"));
    }
    parse_entries(&table[..entries_len as usize], data_end, &object)
}

/// Parse `count` fixed-size entries and check that each lies within `[8, data_end)`.
pub fn parse_entries(table: &[u8], data_end: u64, object: &str) -> Result<Vec<PackEntry>> {
    let mut d = Decoder::new(table, object);
    let mut out = Vec::with_capacity(table.len() / ENTRY_LEN);
    while !d.is_empty() {
        let id = BlobId(d.array32()?);
        let kind = BlobKind::from_code(d.u8()?).ok_or_else(|| d.err("unknown blob kind"))?;
        let compression =
            Compression::from_code(d.u8()?).ok_or_else(|| d.err("unknown compression"))?;
        d.raw(2)?;
        let offset = d.u32_le()?;
        let stored_len = d.u32_le()?;
        let raw_len = d.u32_le()?;
        if u64::from(offset) < PACK_MAGIC.len() as u64
            || u64::from(offset) + u64::from(stored_len) > data_end
        {
            return Err(d.err("blob entry points outside the pack"));
        }
        out.push(PackEntry {
            id,
            kind,
            compression,
            offset,
            stored_len,
            raw_len,
        });
    }
    Ok(out)
}

/// Encode just the entry table (used by index files, which share the entry layout).
pub fn encode_entries(entries: &[PackEntry], out: &mut Encoder) {
    for en in entries {
        out.raw(&en.id.0);
        out.u8(en.kind.code());
        out.u8(en.compression.code());
        out.raw(&[0, 0]);
        out.u32_le(en.offset);
        out.u32_le(en.stored_len);
        out.u32_le(en.raw_len);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::engine::format::compress::decode_blob;
    use crate::engine::format::compress::tests::entry_of;
    use crate::engine::format::id::BlobKey;
    use crate::engine::store::MemoryBackend;
    use proptest::prelude::*;

    fn sample_pack() -> (PackId, Vec<u8>) {
        let key = BlobKey([5; 32]);
        let mut b = PackBuilder::new();
        for i in 0..3u8 {
            let raw = vec![i; 1000 + usize::from(i)];
            b.add(EncodedBlob::encode(&key, BlobKind::Data, &raw, 3).unwrap())
                .unwrap();
        }
        let (id, bytes, _) = b.finish();
        (id, bytes)
    }

    proptest! {
        #![proptest_config(ProptestConfig { cases: 64, ..ProptestConfig::default() })]

        /// Damaged or truncated pack files give an error, never a panic or entries that point
        /// outside the pack.
        #[test]
        fn damaged_trailers_never_panic(pos in any::<usize>(), val in any::<u8>(), cut in any::<bool>()) {
            let be = MemoryBackend::new();
            let (id, mut bytes) = sample_pack();
            let p = pos % bytes.len();
            if cut { bytes.truncate(p) } else { bytes[p] ^= val | 1 }
            be.put(Kind::Pack, &id.to_hex(), &bytes).unwrap();
            if let Ok(entries) = read_trailer(&be, &id) {
                for e in entries {
                    prop_assert!(u64::from(e.offset) + u64::from(e.stored_len) <= bytes.len() as u64);
                }
            }
        }

        #[test]
        fn entry_tables_never_panic(data in proptest::collection::vec(any::<u8>(), 0..200)) {
            let _ = parse_entries(&data, 1 << 20, "t");
        }

        /// A damaged blob never reads back as other bytes: it is refused, or — where the
        /// change hit a bit zstd does not use (one case in ~10^5 here, seen once) — it still
        /// decodes to exactly the stored content, which its id then vouches for.
        #[test]
        fn damaged_blobs_never_read_back_as_other_bytes(pos in any::<usize>(), val in 1u8..) {
            let key = BlobKey([5; 32]);
            let raw: Vec<u8> = (0..5000u32).map(|i| (i % 7) as u8).collect();
            let blob = EncodedBlob::encode(&key, BlobKind::Data, &raw, 3).unwrap();
            let entry = entry_of(&blob);
            let mut stored = blob.bytes.clone();
            let p = pos % stored.len();
            stored[p] ^= val;
            if let Ok(out) = decode_blob(&key, &entry, &stored, "t") {
                prop_assert!(out == raw, "byte {p} ^ {val}: other bytes came back");
            }
        }
    }

    /// Nearly every damaged byte of a blob is refused (the property above allows the rare
    /// byte zstd ignores; this keeps it from hiding a decoder that checks nothing).
    #[test]
    fn damaged_blobs_are_refused() {
        let key = BlobKey([5; 32]);
        let raw: Vec<u8> = (0..5000u32).map(|i| (i % 7) as u8).collect();
        let blob = EncodedBlob::encode(&key, BlobKind::Data, &raw, 3).unwrap();
        let entry = entry_of(&blob);
        let refused = (0..blob.bytes.len())
            .filter(|&p| {
                let mut stored = blob.bytes.clone();
                stored[p] ^= 0x5a;
                decode_blob(&key, &entry, &stored, "t").is_err()
            })
            .count();
        assert!(
            refused * 10 >= blob.bytes.len() * 9,
            "only {refused} of {} damaged bytes refused",
            blob.bytes.len()
        );
    }

    /// A trailer longer than the first suffix read is completed with a second read, and one
    /// that fits is read whole; both give the entries the pack was built with.
    #[test]
    fn trailers_longer_and_shorter_than_one_suffix_read() {
        let key = BlobKey([5; 32]);
        let be = MemoryBackend::new();
        for n in [1u32, 3, TRAILER_READ as u32 / ENTRY_LEN as u32 + 50] {
            let mut b = PackBuilder::new();
            for i in 0..n {
                let raw = i.to_le_bytes();
                b.add(EncodedBlob::encode(&key, BlobKind::Data, &raw, 3).unwrap())
                    .unwrap();
            }
            let (id, bytes, entries) = b.finish();
            be.put(Kind::Pack, &id.to_hex(), &bytes).unwrap();
            assert!(read_trailer(&be, &id).unwrap() == entries, "{n} blobs");
        }
    }
}

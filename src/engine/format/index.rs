//! The blob index: which pack holds each blob.
//!
//! On disk: immutable index files (docs/FORMAT.md, "Index files"). In memory: one sorted vector
//! of 52-byte entries, plus a table of where each run of leading id bits starts (about 2 bytes
//! per blob), so memory grows with the number of blobs only. Blob ids are keyed hashes, spread
//! evenly, so a lookup jumps to a run of one or two entries instead of a binary search's
//! seventeen cache-missing probes over 100k blobs.

use std::collections::HashMap;

use super::codec::{Decoder, Encoder};
use super::compress::Compression;
use super::id::{content_hash, BlobId, IndexId, PackId};
use super::pack::{encode_entries, parse_entries, BlobKind, PackEntry, ENTRY_LEN};
use crate::engine::error::{Error, Result};
use crate::engine::store::{list_names, Backend, Kind};

/// First 8 bytes of every index file.
pub const INDEX_MAGIC: &[u8; 8] = b"YSTRIDX1";

/// One pack's worth of entries in an index file.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct IndexedPack {
    pub pack: PackId,
    pub entries: Vec<PackEntry>,
}

/// Encode an index file; returns its id and bytes.
pub fn encode_index_file(packs: &[IndexedPack]) -> (IndexId, Vec<u8>) {
    let mut e = Encoder::new();
    e.raw(INDEX_MAGIC);
    e.uvarint(packs.len() as u64);
    for p in packs {
        e.raw(&p.pack.0);
        e.uvarint(p.entries.len() as u64);
        encode_entries(&p.entries, &mut e);
    }
    let sum = content_hash(&e.buf);
    e.raw(&sum);
    (IndexId(content_hash(&e.buf)), e.buf)
}

/// Decode and verify an index file.
pub fn decode_index_file(bytes: &[u8], object: &str) -> Result<Vec<IndexedPack>> {
    if bytes.len() < INDEX_MAGIC.len() + 32 || &bytes[..8] != INDEX_MAGIC {
        return Err(Error::corrupt(
            object,
            "not an index file (bad magic or truncated)",
        ));
    }
    let (body, sum) = bytes.split_at(bytes.len() - 32);
    if content_hash(body) != sum {
        return Err(Error::corrupt(object, "index checksum mismatch"));
    }
    let mut d = Decoder::new(&body[8..], object);
    let n = d.count(33)?;
    let mut out = Vec::with_capacity(n);
    for _ in 0..n {
        let pack = PackId(d.array32()?);
        let m = d.count(ENTRY_LEN)?;
        let table = d.raw(m * ENTRY_LEN)?;
        let entries = parse_entries(table, u64::from(u32::MAX), object)?;
        out.push(IndexedPack { pack, entries });
    }
    if !d.is_empty() {
        return Err(d.err("trailing bytes"));
    }
    Ok(out)
}

/// Read one index file: its name must be the hash of its bytes, and it must decode.
pub fn read_index_file(backend: &dyn Backend, name: &str) -> Result<(IndexId, Vec<IndexedPack>)> {
    let object = backend.describe(Kind::Index, name);
    let id = IndexId::from_hex(name)
        .map_err(|_| Error::corrupt(&object, "unexpected file name in index/"))?;
    let bytes = backend.get(Kind::Index, name)?;
    if IndexId(content_hash(&bytes)) != id {
        return Err(Error::corrupt(
            &object,
            "index file does not match its name (damaged)",
        ));
    }
    Ok((id, decode_index_file(&bytes, &object)?))
}

/// Where a blob is stored.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct BlobLocation {
    pub pack: PackId,
    pub entry: PackEntry,
}

/// 52 bytes resident per blob.
#[derive(Clone, Copy, Debug)]
struct Slot {
    id: BlobId,
    pack: u32,
    offset: u32,
    stored_len: u32,
    raw_len: u32,
    /// kind code in the low nibble, compression code in the high nibble.
    flags: u8,
}

/// The in-memory index of every blob in the repository.
#[derive(Clone, Debug, Default)]
pub struct Index {
    packs: Vec<PackId>,
    pack_pos: HashMap<PackId, u32>,
    slots: Vec<Slot>,
    /// `starts[p]`: the first slot whose id's leading `prefix_bits` bits are ≥ `p`, for every
    /// `p` up to `1 << prefix_bits` (then `slots.len()`). Empty until [`Index::finish`].
    starts: Vec<u32>,
    prefix_bits: u32,
    /// Index files this was loaded from.
    pub files: Vec<IndexId>,
}

impl Index {
    /// Load every index file of the repository.
    pub fn load(backend: &dyn Backend) -> Result<Self> {
        let started = std::time::Instant::now();
        let mut idx = Index::default();
        idx.load_files(backend, &list_names(backend, Kind::Index)?)?;
        tracing::info!(
            "index: {} blobs from {} files in {:.3}s, {} KiB resident",
            idx.len(),
            idx.files.len(),
            started.elapsed().as_secs_f64(),
            idx.resident_bytes() / 1024
        );
        Ok(idx)
    }

    /// Names of the index files this index was built from.
    pub fn file_names(&self) -> Vec<String> {
        self.files.iter().map(IndexId::to_hex).collect()
    }

    /// Add the given index files (for a long-running reader that sees new backups land).
    pub fn load_files(&mut self, backend: &dyn Backend, names: &[String]) -> Result<()> {
        for name in names {
            if IndexId::from_hex(name).is_err() {
                let object = backend.describe(Kind::Index, name);
                tracing::warn!("{object}: ignoring a file that is not an index file");
                continue;
            }
            let (id, packs) = read_index_file(backend, name)?;
            for p in &packs {
                self.add_pack(p);
            }
            self.files.push(id);
        }
        self.finish();
        Ok(())
    }

    /// Sum of the stored sizes of all blobs.
    pub fn stored_bytes(&self) -> u64 {
        self.slots.iter().map(|s| u64::from(s.stored_len)).sum()
    }

    /// Bytes the index holds in memory (its vectors' capacity).
    pub fn resident_bytes(&self) -> usize {
        self.slots.capacity() * std::mem::size_of::<Slot>()
            + self.starts.capacity() * std::mem::size_of::<u32>()
    }

    /// Add a pack's entries (call [`Index::finish`] before lookups).
    pub fn add_pack(&mut self, p: &IndexedPack) {
        self.starts.clear();
        let next = self.packs.len() as u32;
        let pos = *self.pack_pos.entry(p.pack).or_insert(next);
        if pos == next {
            self.packs.push(p.pack);
        }
        self.slots.extend(p.entries.iter().map(|e| Slot {
            id: e.id,
            pack: pos,
            offset: e.offset,
            stored_len: e.stored_len,
            raw_len: e.raw_len,
            flags: e.kind.code() | (e.compression.code() << 4),
        }));
    }

    /// Sort for lookups; a blob stored in several packs keeps one location.
    pub fn finish(&mut self) {
        self.slots.sort_unstable_by_key(|a| a.id);
        self.slots.dedup_by(|a, b| a.id == b.id);
        self.slots.shrink_to_fit();
        // About two blobs per run: the table costs 2 bytes per blob, at most 64 MiB.
        let runs = (self.slots.len() / 2).max(1);
        self.prefix_bits = (usize::BITS - runs.leading_zeros() - 1).min(24);
        let n = 1usize << self.prefix_bits;
        self.starts.clear();
        self.starts.reserve_exact(n + 1);
        let mut i = 0;
        for p in 0..n {
            while i < self.slots.len() && self.prefix(&self.slots[i].id) < p {
                i += 1;
            }
            self.starts.push(i as u32);
        }
        self.starts.push(self.slots.len() as u32);
    }

    /// The leading `prefix_bits` bits of an id.
    fn prefix(&self, id: &BlobId) -> usize {
        let head = u32::from_be_bytes([id.0[0], id.0[1], id.0[2], id.0[3]]);
        // `checked_shr`: with 0 bits every id is in run 0.
        (head.checked_shr(32 - self.prefix_bits).unwrap_or(0)) as usize
    }

    /// Number of distinct blobs.
    pub fn len(&self) -> usize {
        self.slots.len()
    }

    pub fn is_empty(&self) -> bool {
        self.slots.is_empty()
    }

    /// Packs referenced by the index.
    pub fn packs(&self) -> &[PackId] {
        &self.packs
    }

    pub fn contains(&self, id: &BlobId) -> bool {
        self.find(id).is_some()
    }

    fn find(&self, id: &BlobId) -> Option<&Slot> {
        let run = match self.starts.len() {
            // Not finished since the last add: the whole (sorted or not) vector.
            0 => &self.slots[..],
            _ => {
                let p = self.prefix(id);
                let (lo, hi) = (self.starts[p] as usize, self.starts[p + 1] as usize);
                &self.slots[lo..hi]
            }
        };
        run.iter().find(|s| s.id == *id)
    }

    /// The full id of the blob whose id starts with `prefix` (the first such, in id order).
    pub fn find_prefix(&self, prefix: &[u8]) -> Option<BlobId> {
        let i = self
            .slots
            .partition_point(|s| &s.id.0[..prefix.len().min(32)] < prefix);
        self.slots
            .get(i)
            .map(|s| s.id)
            .filter(|id| id.0.starts_with(prefix))
    }

    /// Where a blob is stored.
    pub fn get(&self, id: &BlobId) -> Option<BlobLocation> {
        let s = self.find(id)?;
        Some(BlobLocation {
            pack: self.packs[s.pack as usize],
            entry: self.entry_of(s),
        })
    }

    fn entry_of(&self, s: &Slot) -> PackEntry {
        PackEntry {
            id: s.id,
            // Flags were built from valid codes by `add_pack`.
            kind: BlobKind::from_code(s.flags & 0xf).unwrap_or(BlobKind::Data),
            compression: Compression::from_code(s.flags >> 4).unwrap_or(Compression::None),
            offset: s.offset,
            stored_len: s.stored_len,
            raw_len: s.raw_len,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn slot_is_small() {
        assert!(std::mem::size_of::<Slot>() <= 64);
    }

    fn entry(id: BlobId) -> PackEntry {
        PackEntry {
            id,
            kind: BlobKind::Data,
            compression: Compression::Zstd,
            offset: 0,
            stored_len: 1,
            raw_len: 1,
        }
    }

    /// Every stored id is found in its pack and no other id is, at sizes around the table's
    /// steps, with ids that share long prefixes (all-zero and all-ones heads) as well as
    /// hashed ones; the table stays within the 64 bytes per blob the issue allows.
    #[test]
    fn lookups_find_exactly_the_stored_ids() {
        for n in [0usize, 1, 2, 3, 4, 5, 7, 8, 9, 100, 1000, 4097, 70_000] {
            let mut low = [0u8; 32];
            low[31] = 1;
            let mut ids = vec![BlobId([0; 32]), BlobId([0xff; 32]), BlobId(low)];
            ids.extend((0..n as u64).map(|i| BlobId(content_hash(&i.to_le_bytes()))));
            let (stored, absent) = ids.split_at(ids.len() / 2);
            let mut idx = Index::default();
            // Two packs, and one id stored in both.
            let half = stored.len() / 2;
            for (k, part) in [&stored[..half], &stored[half..]].into_iter().enumerate() {
                let mut entries: Vec<PackEntry> = part.iter().copied().map(entry).collect();
                entries.extend(stored.first().copied().map(entry));
                idx.add_pack(&IndexedPack {
                    pack: PackId([k as u8; 32]),
                    entries,
                });
            }
            idx.finish();
            assert_eq!(idx.len(), stored.len(), "n = {n}");
            for (i, id) in stored.iter().enumerate() {
                let at = idx
                    .get(id)
                    .unwrap_or_else(|| panic!("n = {n}: stored id {i} not found"));
                if i > 0 {
                    assert_eq!(
                        at.pack,
                        PackId([u8::from(i >= half); 32]),
                        "n = {n}, id {i}"
                    );
                }
            }
            for id in absent {
                assert!(!idx.contains(id), "n = {n}: an absent id was found");
            }
            if idx.len() >= 1000 {
                let per_blob = idx.resident_bytes() / idx.len();
                assert!(per_blob <= 64, "n = {n}: {per_blob} bytes per blob");
            }
        }
    }

    #[test]
    fn index_file_roundtrip_and_damage() {
        let e = PackEntry {
            id: BlobId([7; 32]),
            kind: BlobKind::Tree,
            compression: Compression::Zstd,
            offset: 8,
            stored_len: 10,
            raw_len: 20,
        };
        let packs = vec![IndexedPack {
            pack: PackId([1; 32]),
            entries: vec![e],
        }];
        let (_, bytes) = encode_index_file(&packs);
        assert_eq!(decode_index_file(&bytes, "x").unwrap(), packs);
        for i in 0..bytes.len() {
            let mut b = bytes.clone();
            b[i] ^= 0x40;
            assert!(decode_index_file(&b, "x").is_err());
            assert!(decode_index_file(&bytes[..i], "x").is_err());
        }
    }
}

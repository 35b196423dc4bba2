//! How often chunks were asked for lately: a count-min sketch of 4-bit counters that are
//! halved as it fills (TinyLFU, Einziger et al.), so the chunk cache can refuse a newcomer that
//! is wanted less than the chunk it would push out.
//!
//! Plain LRU keeps nothing when one file a little larger than the cache is read again and
//! again (copying a VM image twice over NFS: every chunk is evicted just before it is needed
//! again); refusing the newcomers that are no more popular than the oldest chunks keeps most
//! of the file and serves it from memory on the next pass.

use crate::engine::BlobId;

const ROWS: usize = 4;
/// Counters saturate at this (4 bits' worth).
const MAX_COUNT: u8 = 15;

pub struct Sketch {
    /// `ROWS` rows of `width` counters.
    counts: Vec<u8>,
    width: usize,
    /// Increments since the last halving, and how many trigger the next.
    added: usize,
    sample: usize,
}

impl Sketch {
    /// A sketch for about `entries` distinct chunks.
    pub fn new(entries: usize) -> Self {
        let width = entries.clamp(64, 1 << 20).next_power_of_two();
        Sketch {
            counts: vec![0; ROWS * width],
            width,
            added: 0,
            sample: 10 * width,
        }
    }

    /// The counter of `id` in each row. Blob ids are keyed hashes, so their bytes are
    /// already uniform: each row takes its index from different bytes.
    fn slots(&self, id: &BlobId) -> [usize; ROWS] {
        let mut out = [0; ROWS];
        for (r, o) in out.iter_mut().enumerate() {
            let b = &id.0[r * 8..r * 8 + 8];
            let h = u64::from_le_bytes([b[0], b[1], b[2], b[3], b[4], b[5], b[6], b[7]]);
            *o = r * self.width + (h as usize & (self.width - 1));
        }
        out
    }

    /// Count one request for `id`.
    pub fn record(&mut self, id: &BlobId) {
        for s in self.slots(id) {
            if let Some(c) = self.counts.get_mut(s) {
                *c = (*c + 1).min(MAX_COUNT);
            }
        }
        self.added += 1;
        if self.added >= self.sample {
            // Age: what was popular long ago counts half, so a new working set can take over.
            for c in &mut self.counts {
                *c /= 2;
            }
            self.added /= 2;
        }
    }

    /// How often `id` was asked for lately (an overestimate, never an underestimate).
    pub fn estimate(&self, id: &BlobId) -> u8 {
        self.slots(id)
            .iter()
            .map(|&s| self.counts.get(s).copied().unwrap_or(0))
            .min()
            .unwrap_or(0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn id(i: u32) -> BlobId {
        BlobId(*blake3::hash(&i.to_le_bytes()).as_bytes())
    }

    #[test]
    fn counts_what_is_asked_for_and_forgets_slowly() {
        let mut s = Sketch::new(1000);
        for _ in 0..5 {
            s.record(&id(1));
        }
        s.record(&id(2));
        assert!(s.estimate(&id(1)) >= 5);
        assert!(s.estimate(&id(2)) >= 1);
        assert!(s.estimate(&id(1)) > s.estimate(&id(2)));
        assert_eq!(
            s.estimate(&id(3)),
            0,
            "a sketch this empty has no collisions"
        );
        // Many requests for others age the counts: the popular one fades.
        for _ in 0..110 {
            for i in 10..110 {
                s.record(&id(i));
            }
        }
        assert!(s.estimate(&id(1)) < 5);
        assert!(s.estimate(&id(50)) > s.estimate(&id(1)));
    }

    #[test]
    fn counters_saturate() {
        let mut s = Sketch::new(64);
        for _ in 0..100 {
            s.record(&id(7));
        }
        assert_eq!(s.estimate(&id(7)), MAX_COUNT);
    }
}

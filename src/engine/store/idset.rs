//! A set of blob ids that costs 32 bytes an id: a sorted array, plus a small hash set of the
//! newest ids that is merged into the array whenever it fills.
//!
//! A writer remembers every blob it stored that the index did not have, so a blob met twice in
//! one backup is stored once; a first backup of a million small files meets a million new
//! blobs. A `HashSet<BlobId>` takes about twice the bytes (buckets kept at most 7/8 full) and,
//! while it grows, holds its old and new tables at once.

use std::collections::HashSet;

use crate::engine::format::id::BlobId;

/// Ids held in the hash set before it is merged into the array.
const BUFFER: usize = 1 << 16;

#[derive(Default)]
pub struct IdSet {
    sorted: Vec<BlobId>,
    recent: HashSet<BlobId>,
}

impl IdSet {
    pub fn new() -> Self {
        IdSet::default()
    }

    pub fn contains(&self, id: &BlobId) -> bool {
        self.recent.contains(id) || self.sorted.binary_search(id).is_ok()
    }

    /// Add `id`; false if it was there already.
    pub fn insert(&mut self, id: BlobId) -> bool {
        if self.sorted.binary_search(&id).is_ok() || !self.recent.insert(id) {
            return false;
        }
        if self.recent.len() >= BUFFER {
            self.merge();
        }
        true
    }

    #[cfg(test)] // only the tests use it
    pub fn len(&self) -> usize {
        self.sorted.len() + self.recent.len()
    }

    /// Move the recent ids into the array: sorted, then merged in from the back, in place
    /// (growing a large array moves no bytes: the allocator remaps it).
    fn merge(&mut self) {
        let mut add: Vec<BlobId> = self.recent.drain().collect();
        add.sort_unstable();
        let old = self.sorted.len();
        self.sorted.reserve_exact(add.len());
        self.sorted.resize(old + add.len(), BlobId([0; 32]));
        let (mut i, mut j, mut k) = (old, add.len(), old + add.len());
        // The recent ids are never in the array (insert looked first), so no two are equal.
        while j > 0 {
            if i > 0 && self.sorted[i - 1] > add[j - 1] {
                self.sorted[k - 1] = self.sorted[i - 1];
                i -= 1;
            } else {
                self.sorted[k - 1] = add[j - 1];
                j -= 1;
            }
            k -= 1;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn id(i: u64) -> BlobId {
        BlobId(*blake3::hash(&i.to_le_bytes()).as_bytes())
    }

    #[test]
    fn holds_what_was_inserted_across_merges() {
        let mut s = IdSet::new();
        let n = 3 * BUFFER as u64 + 123;
        for i in 0..n {
            assert!(s.insert(id(i)), "{i} is new");
        }
        assert_eq!(s.len(), n as usize);
        assert!(
            s.sorted.windows(2).all(|w| w[0] < w[1]),
            "the array stays sorted"
        );
        for i in (0..n).step_by(97) {
            assert!(s.contains(&id(i)));
            assert!(!s.insert(id(i)), "{i} again");
        }
        assert!(!s.contains(&id(n)));
        assert_eq!(s.len(), n as usize);
    }

    proptest! {
        #[test]
        fn behaves_like_a_hash_set(ops in proptest::collection::vec(0u64..3000, 0..4000)) {
            let mut s = IdSet::new();
            let mut model = HashSet::new();
            for (k, op) in ops.iter().enumerate() {
                prop_assert_eq!(s.insert(id(*op)), model.insert(id(*op)));
                // Merge often, so merges meet every state.
                if k % 500 == 0 {
                    s.merge();
                }
            }
            for i in 0..3000 {
                prop_assert_eq!(s.contains(&id(i)), model.contains(&id(i)));
            }
            prop_assert!(s.sorted.windows(2).all(|w| w[0] < w[1]));
        }
    }
}

//! Bounded caches: decompressed chunks (by bytes) and decoded trees (by count).

use std::collections::HashSet;
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::time::Duration;

use lru::LruCache;

use super::admission::Sketch;
use crate::engine::format::tree::Tree;
use crate::engine::BlobId;

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    // A panic while holding a cache lock leaves a cache, not broken data: keep going.
    m.lock().unwrap_or_else(|p| p.into_inner())
}

struct Chunks {
    /// The newest chunks, kept whatever their popularity (W-TinyLFU's window): a chunk just
    /// fetched ahead is there when its reader comes, and a burst of new chunks has a chance.
    window: LruCache<BlobId, Arc<Vec<u8>>>,
    window_bytes: usize,
    /// The rest of the budget: chunks that won their place against the least recently used.
    main: LruCache<BlobId, Arc<Vec<u8>>>,
    main_bytes: usize,
    sketch: Sketch,
}

/// Decompressed chunks within `capacity` bytes. New chunks enter a small window; one leaving
/// the window takes the place of the main part's least recently used chunks only if it was
/// asked for more often lately (see `admission`), so a read bigger than the cache, repeated,
/// still finds most of its chunks.
pub struct ChunkCache {
    inner: Mutex<Chunks>,
    capacity: usize,
    window_capacity: usize,
    /// Chunks being fetched in the background, and a signal when one is done.
    inflight: Mutex<HashSet<BlobId>>,
    done: Condvar,
}

impl ChunkCache {
    pub fn new(capacity: usize) -> Self {
        // 1/16 of the budget, but at least 16 MiB (four chunks of the default largest size)
        // where the budget allows.
        let window_capacity = (capacity / 16).max((16 << 20).min(capacity / 2));
        ChunkCache {
            inner: Mutex::new(Chunks {
                window: LruCache::unbounded(),
                window_bytes: 0,
                main: LruCache::unbounded(),
                main_bytes: 0,
                sketch: Sketch::new(capacity / (64 << 10)),
            }),
            capacity,
            window_capacity,
            inflight: Mutex::new(HashSet::new()),
            done: Condvar::new(),
        }
    }

    /// The cached chunk (a request: it counts towards the chunk's popularity).
    pub fn get(&self, id: &BlobId) -> Option<Arc<Vec<u8>>> {
        let mut c = lock(&self.inner);
        c.sketch.record(id);
        Self::lookup(&mut c, id)
    }

    fn lookup(c: &mut Chunks, id: &BlobId) -> Option<Arc<Vec<u8>>> {
        if let Some(d) = c.window.get(id) {
            return Some(d.clone());
        }
        c.main.get(id).cloned()
    }

    pub fn contains(&self, id: &BlobId) -> bool {
        let c = lock(&self.inner);
        c.window.contains(id) || c.main.contains(id)
    }

    pub fn insert(&self, id: BlobId, data: Arc<Vec<u8>>) {
        if data.len() > self.capacity {
            return;
        }
        let mut c = lock(&self.inner);
        if let Some(old) = c.main.pop(&id) {
            c.main_bytes -= old.len();
        }
        c.window_bytes += data.len();
        if let Some(old) = c.window.put(id, data) {
            c.window_bytes -= old.len();
        }
        // The window keeps at least its newest chunk (whose reader may be waiting for it).
        while c.window_bytes > self.window_capacity && c.window.len() > 1 {
            let Some((cid, cdata)) = c.window.pop_lru() else {
                break;
            };
            c.window_bytes -= cdata.len();
            self.admit(&mut c, cid, cdata);
        }
    }

    /// A chunk leaving the window: into the main part if there is room, or if it was asked
    /// for more often than the main part's least recently used chunk; else dropped.
    fn admit(&self, c: &mut Chunks, id: BlobId, data: Arc<Vec<u8>>) {
        let main_capacity = self.capacity - self.window_capacity.min(self.capacity);
        if data.len() > main_capacity {
            return;
        }
        if c.main_bytes + data.len() > main_capacity {
            let Some((victim, _)) = c.main.peek_lru() else {
                return;
            };
            if c.sketch.estimate(&id) <= c.sketch.estimate(victim) {
                return;
            }
            while c.main_bytes + data.len() > main_capacity {
                match c.main.pop_lru() {
                    Some((_, old)) => c.main_bytes -= old.len(),
                    None => break,
                }
            }
        }
        c.main_bytes += data.len();
        c.main.put(id, data);
    }

    /// Bytes held now (only the tests ask).
    #[cfg(test)]
    pub fn bytes(&self) -> usize {
        let c = lock(&self.inner);
        c.window_bytes + c.main_bytes
    }

    /// Mark a chunk as being fetched; false if it already is (or is cached).
    pub fn start_fetch(&self, id: BlobId) -> bool {
        !self.contains(&id) && lock(&self.inflight).insert(id)
    }

    pub fn end_fetch(&self, id: &BlobId) {
        lock(&self.inflight).remove(id);
        self.done.notify_all();
    }

    /// The cached chunk; if a background fetch of it is under way, wait for that (a while)
    /// rather than decompress it twice. `None` means: read it yourself. `request` counts
    /// this as a new request for the chunk (not for the rest of a read already counted).
    pub fn get_or_wait(&self, id: &BlobId, request: bool) -> Option<Arc<Vec<u8>>> {
        let found = if request {
            self.get(id)
        } else {
            Self::lookup(&mut lock(&self.inner), id)
        };
        if found.is_some() {
            return found;
        }
        let mut inflight = lock(&self.inflight);
        let deadline = std::time::Instant::now() + Duration::from_secs(10);
        while inflight.contains(id) {
            let left = deadline.saturating_duration_since(std::time::Instant::now());
            if left.is_zero() {
                break;
            }
            inflight = self
                .done
                .wait_timeout(inflight, left)
                .map(|(g, _)| g)
                .unwrap_or_else(|p| p.into_inner().0);
        }
        drop(inflight);
        // Counted as requested above already.
        Self::lookup(&mut lock(&self.inner), id)
    }
}

/// Roughly how much memory a decoded tree takes.
fn tree_bytes(t: &Tree) -> usize {
    t.entries
        .iter()
        .map(|e| {
            std::mem::size_of_val(e)
                + e.name.len()
                + e.target.len()
                + e.chunks.len() * std::mem::size_of::<crate::engine::format::tree::ChunkRef>()
                + e.xattrs
                    .iter()
                    .map(|(k, v)| k.len() + v.len() + 48)
                    .sum::<usize>()
        })
        .sum::<usize>()
        + std::mem::size_of::<Tree>()
}

struct Trees {
    map: LruCache<BlobId, (Arc<Tree>, usize)>,
    bytes: usize,
}

/// Decoded trees, evicted least-recently-used first once over `capacity` bytes (estimated).
pub struct TreeCache {
    inner: Mutex<Trees>,
    capacity: usize,
}

impl TreeCache {
    pub fn new(capacity: usize) -> Self {
        TreeCache {
            inner: Mutex::new(Trees {
                map: LruCache::unbounded(),
                bytes: 0,
            }),
            capacity,
        }
    }

    pub fn get(&self, id: &BlobId) -> Option<Arc<Tree>> {
        lock(&self.inner).map.get(id).map(|(t, _)| t.clone())
    }

    pub fn insert(&self, id: BlobId, tree: Arc<Tree>) {
        let size = tree_bytes(&tree);
        let mut c = lock(&self.inner);
        c.bytes += size;
        if let Some((_, old)) = c.map.put(id, (tree, size)) {
            c.bytes -= old;
        }
        // Keep at least the newest tree, however big: a huge directory must still list.
        while c.bytes > self.capacity && c.map.len() > 1 {
            match c.map.pop_lru() {
                Some((_, (_, old))) => c.bytes -= old,
                None => break,
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn chunk_cache_stays_within_its_bytes() {
        let c = ChunkCache::new(1000);
        for i in 0..50u8 {
            c.insert(BlobId([i; 32]), Arc::new(vec![0; 100]));
            assert!(c.bytes() <= 1000);
        }
        assert!(c.get(&BlobId([49; 32])).is_some(), "the newest is kept");
        let held = (0..50u8).filter(|&i| c.contains(&BlobId([i; 32]))).count();
        assert_eq!(held, 10);
        c.insert(BlobId([99; 32]), Arc::new(vec![0; 5000]));
        assert!(
            c.get(&BlobId([99; 32])).is_none(),
            "larger than the cache: not kept"
        );
    }

    fn chunk(i: u32) -> BlobId {
        BlobId(*blake3::hash(&i.to_le_bytes()).as_bytes())
    }

    /// Read `n` chunks of 1 MiB in order, as a sequential copy of a file does (each request
    /// is a get, then an insert on a miss); returns the hits.
    fn pass(c: &ChunkCache, n: u32) -> u32 {
        let mut hits = 0;
        for i in 0..n {
            if c.get_or_wait(&chunk(i), true).is_some() {
                hits += 1;
            } else {
                c.insert(chunk(i), Arc::new(vec![0; 1 << 20]));
            }
            assert!(c.bytes() <= 256 << 20);
        }
        hits
    }

    #[test]
    fn a_file_a_little_larger_than_the_cache_read_again_is_mostly_served_from_it() {
        // 320 chunks of 1 MiB through a 256 MiB cache: LRU would hit nothing on the second
        // and later passes.
        let c = ChunkCache::new(256 << 20);
        assert_eq!(pass(&c, 320), 0);
        for _ in 0..3 {
            let hits = pass(&c, 320);
            assert!(hits >= 220, "{hits} of 320 hits");
        }
    }

    #[test]
    fn a_new_working_set_takes_over_from_an_old_one() {
        let c = ChunkCache::new(64 << 20);
        for _ in 0..4 {
            pass(&c, 60);
        }
        // Another 60 chunks, read over and over: they win their place in a few passes.
        let other = |i: u32| chunk(1_000_000 + i);
        let mut hits = 0;
        for _ in 0..30 {
            hits = 0;
            for i in 0..60 {
                if c.get_or_wait(&other(i), true).is_some() {
                    hits += 1;
                } else {
                    c.insert(other(i), Arc::new(vec![0; 1 << 20]));
                }
            }
        }
        assert!(hits >= 45, "{hits} of 60");
    }

    #[test]
    fn a_chunk_just_fetched_is_there_for_its_reader_even_in_a_tiny_cache() {
        let c = ChunkCache::new(2 << 20);
        let big = Arc::new(vec![1; (3 << 20) / 2]);
        c.insert(chunk(1), big.clone());
        assert!(c.get_or_wait(&chunk(1), true).is_some());
        c.insert(chunk(2), big);
        assert!(c.get(&chunk(2)).is_some());
    }
}

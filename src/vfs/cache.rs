//! Bounded caches: decompressed chunks (by bytes) and decoded trees (by count).

use std::collections::HashSet;
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::time::Duration;

use lru::LruCache;

use crate::engine::tree::Tree;
use crate::engine::BlobId;

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    // A panic while holding a cache lock leaves a cache, not broken data: keep going.
    m.lock().unwrap_or_else(|p| p.into_inner())
}

struct Chunks {
    map: LruCache<BlobId, Arc<Vec<u8>>>,
    bytes: usize,
}

/// Decompressed chunks, evicted least-recently-used first once over `capacity` bytes.
pub struct ChunkCache {
    inner: Mutex<Chunks>,
    capacity: usize,
    /// Chunks being fetched in the background, and a signal when one is done.
    inflight: Mutex<HashSet<BlobId>>,
    done: Condvar,
}

impl ChunkCache {
    pub fn new(capacity: usize) -> Self {
        ChunkCache {
            inner: Mutex::new(Chunks {
                map: LruCache::unbounded(),
                bytes: 0,
            }),
            capacity,
            inflight: Mutex::new(HashSet::new()),
            done: Condvar::new(),
        }
    }

    pub fn get(&self, id: &BlobId) -> Option<Arc<Vec<u8>>> {
        lock(&self.inner).map.get(id).cloned()
    }

    pub fn contains(&self, id: &BlobId) -> bool {
        lock(&self.inner).map.contains(id)
    }

    pub fn insert(&self, id: BlobId, data: Arc<Vec<u8>>) {
        if data.len() > self.capacity {
            return;
        }
        let mut c = lock(&self.inner);
        c.bytes += data.len();
        if let Some(old) = c.map.put(id, data) {
            c.bytes -= old.len();
        }
        while c.bytes > self.capacity {
            match c.map.pop_lru() {
                Some((_, old)) => c.bytes -= old.len(),
                None => break,
            }
        }
    }

    /// Bytes held now.
    pub fn bytes(&self) -> usize {
        lock(&self.inner).bytes
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
    /// rather than decompress it twice. `None` means: read it yourself.
    pub fn get_or_wait(&self, id: &BlobId) -> Option<Arc<Vec<u8>>> {
        if let Some(d) = self.get(id) {
            return Some(d);
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
        self.get(id)
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
                + e.chunks.len() * std::mem::size_of::<crate::engine::tree::ChunkRef>()
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
        assert!(c.get(&BlobId([49; 32])).is_some());
        assert!(c.get(&BlobId([0; 32])).is_none());
        c.insert(BlobId([99; 32]), Arc::new(vec![0; 5000]));
        assert!(
            c.get(&BlobId([99; 32])).is_none(),
            "larger than the cache: not kept"
        );
    }
}

//! An in-memory backend with object-store semantics, for tests.
//!
//! A map of (kind, name) to bytes: no folders, no rename, no temp files, nothing but what the
//! storage contract (docs/FORMAT.md, "Storage contract") promises. It also *enforces* the
//! contract: a `put` that would replace an existing object of a kind other than
//! [`Kind::Lock`] with other bytes fails, so a test on it catches an engine change that
//! rewrites objects in place (which an object store with eventual listing, or a crash between
//! two replacements, would punish). Fault injection stops accepting writes after a number of
//! them, as a killed process or connection would; the map itself survives, so a test can
//! "restart" by opening the same [`MemoryStore`] again with a fresh [`MemoryBackend`].

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};

use super::{Backend, Kind, ObjectInfo, StoreError, StoreErrorKind, StoreResult, Suffix};

type Objects = BTreeMap<(Kind, String), Arc<Vec<u8>>>;

/// The stored objects, shared by every [`MemoryBackend`] opened on them.
#[derive(Clone, Default)]
pub struct MemoryStore {
    objects: Arc<Mutex<Objects>>,
}

impl MemoryStore {
    pub fn new() -> Self {
        Self::default()
    }

    fn lock(&self) -> MutexGuard<'_, Objects> {
        // A test thread that panicked while holding the map left it consistent: every
        // operation changes it with one insert or remove.
        self.objects.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// An independent copy of the objects as they are now (to run several crashes from one
    /// starting state).
    pub fn duplicate(&self) -> MemoryStore {
        MemoryStore {
            objects: Arc::new(Mutex::new(self.lock().clone())),
        }
    }

    /// How many objects of `kind` are stored.
    pub fn count(&self, kind: Kind) -> usize {
        self.lock().keys().filter(|(k, _)| *k == kind).count()
    }

    /// Replace an object's bytes behind the backend's back (to damage it in a test).
    pub fn overwrite(&self, kind: Kind, name: &str, data: Vec<u8>) {
        self.lock().insert((kind, name.to_string()), Arc::new(data));
    }
}

/// A backend on a [`MemoryStore`], optionally failing every write after the first `n`.
pub struct MemoryBackend {
    store: MemoryStore,
    /// Writes (put, put_new, delete) accepted so far.
    writes: AtomicU64,
    /// Accept this many writes, then refuse every later one.
    fail_after: Option<u64>,
}

impl Default for MemoryBackend {
    fn default() -> Self {
        Self::new()
    }
}

impl MemoryBackend {
    /// A backend on a new, empty store.
    pub fn new() -> Self {
        Self::on(MemoryStore::new())
    }

    /// A backend on an existing store (a "restart" after a simulated crash).
    pub fn on(store: MemoryStore) -> Self {
        MemoryBackend {
            store,
            writes: AtomicU64::new(0),
            fail_after: None,
        }
    }

    /// Accept `n` writes, then fail every later one without effect, as when the writer is
    /// killed or its connection drops; reads keep working.
    pub fn fail_writes_after(mut self, n: u64) -> Self {
        self.fail_after = Some(n);
        self
    }

    /// The store this backend works on.
    pub fn store(&self) -> MemoryStore {
        self.store.clone()
    }

    /// Writes accepted so far.
    pub fn writes(&self) -> u64 {
        self.writes.load(Ordering::SeqCst)
    }

    /// Count a write, or refuse it once the budget is spent.
    fn write(&self, kind: Kind, name: &str) -> StoreResult<()> {
        let n = self.writes.fetch_add(1, Ordering::SeqCst);
        match self.fail_after {
            Some(limit) if n >= limit => {
                self.writes.fetch_sub(1, Ordering::SeqCst);
                Err(StoreError::new(
                    StoreErrorKind::Other,
                    self.describe(kind, name),
                    format!("injected fault: no writes accepted after {limit}"),
                ))
            }
            _ => Ok(()),
        }
    }

    fn not_found(&self, kind: Kind, name: &str) -> StoreError {
        StoreError::new(
            StoreErrorKind::NotFound,
            self.describe(kind, name),
            "no such object",
        )
    }

    fn object(&self, kind: Kind, name: &str) -> StoreResult<Arc<Vec<u8>>> {
        self.store
            .lock()
            .get(&(kind, name.to_string()))
            .cloned()
            .ok_or_else(|| self.not_found(kind, name))
    }
}

impl Backend for MemoryBackend {
    fn location(&self) -> String {
        "memory".to_string()
    }

    fn describe(&self, kind: Kind, name: &str) -> String {
        match kind {
            Kind::Config => format!("memory:{name}"),
            _ => format!("memory:{}/{name}", kind.dir()),
        }
    }

    fn exists(&self, kind: Kind, name: &str) -> StoreResult<bool> {
        Ok(self.store.lock().contains_key(&(kind, name.to_string())))
    }

    fn put(&self, kind: Kind, name: &str, data: &[u8]) -> StoreResult<()> {
        self.write(kind, name)?;
        let mut objects = self.store.lock();
        let key = (kind, name.to_string());
        if let Some(old) = objects.get(&key) {
            if !kind.replaceable() && old.as_slice() != data {
                return Err(StoreError::new(
                    StoreErrorKind::Other,
                    self.describe(kind, name),
                    "storage contract violated: put would replace an immutable object with \
                     other bytes",
                ));
            }
        }
        objects.insert(key, Arc::new(data.to_vec()));
        Ok(())
    }

    fn put_new(&self, kind: Kind, name: &str, data: &[u8]) -> StoreResult<bool> {
        self.write(kind, name)?;
        let mut objects = self.store.lock();
        let key = (kind, name.to_string());
        if objects.contains_key(&key) {
            return Ok(false);
        }
        objects.insert(key, Arc::new(data.to_vec()));
        Ok(true)
    }

    fn get(&self, kind: Kind, name: &str) -> StoreResult<Vec<u8>> {
        Ok(self.object(kind, name)?.as_ref().clone())
    }

    fn get_range(&self, kind: Kind, name: &str, offset: u64, len: u64) -> StoreResult<Vec<u8>> {
        let obj = self.object(kind, name)?;
        let start = usize::try_from(offset).unwrap_or(usize::MAX).min(obj.len());
        let end = usize::try_from(offset.saturating_add(len))
            .unwrap_or(usize::MAX)
            .min(obj.len());
        Ok(obj[start..end].to_vec())
    }

    fn get_suffix(&self, kind: Kind, name: &str, n: u64) -> StoreResult<Suffix> {
        let obj = self.object(kind, name)?;
        let start = obj
            .len()
            .saturating_sub(usize::try_from(n).unwrap_or(usize::MAX));
        Ok(Suffix {
            bytes: obj[start..].to_vec(),
            size: obj.len() as u64,
        })
    }

    fn list(&self, kind: Kind) -> StoreResult<Vec<ObjectInfo>> {
        Ok(self
            .store
            .lock()
            .iter()
            .filter(|((k, _), _)| *k == kind)
            .map(|((_, name), data)| ObjectInfo {
                name: name.clone(),
                size: data.len() as u64,
            })
            .collect())
    }

    fn delete(&self, kind: Kind, name: &str) -> StoreResult<()> {
        self.write(kind, name)?;
        self.store.lock().remove(&(kind, name.to_string()));
        Ok(())
    }

    fn create(&self) -> StoreResult<()> {
        if self.store.lock().is_empty() {
            Ok(())
        } else {
            Err(StoreError::new(
                StoreErrorKind::AlreadyExists,
                self.location(),
                "already holds objects",
            ))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn objects_are_immutable_except_locks() {
        let be = MemoryBackend::new();
        be.put(Kind::Pack, "p", b"abc").unwrap();
        be.put(Kind::Pack, "p", b"abc").unwrap();
        let e = be.put(Kind::Pack, "p", b"abd").unwrap_err();
        assert_eq!(e.kind, StoreErrorKind::Other);
        assert_eq!(be.get(Kind::Pack, "p").unwrap(), b"abc");
        be.put(Kind::Catalog, "web1", b"v1").unwrap();
        assert!(be.put(Kind::Catalog, "web1", b"v2").is_err());
        be.put(Kind::Lock, "l", b"lease 1").unwrap();
        be.put(Kind::Lock, "l", b"lease 2").unwrap();
        assert_eq!(be.get(Kind::Lock, "l").unwrap(), b"lease 2");
        assert!(!be.put_new(Kind::Lock, "l", b"x").unwrap());
    }

    #[test]
    fn reads_ranges_suffixes_and_listings() {
        let be = MemoryBackend::new();
        be.create().unwrap();
        be.put(Kind::Pack, "b", b"0123456789").unwrap();
        be.put(Kind::Pack, "a", b"xy").unwrap();
        be.put(Kind::Index, "i", b"zzz").unwrap();
        assert_eq!(be.get_range(Kind::Pack, "b", 8, 5).unwrap(), b"89");
        assert_eq!(be.get_range(Kind::Pack, "b", 20, 5).unwrap(), b"");
        let s = be.get_suffix(Kind::Pack, "b", 3).unwrap();
        assert_eq!((s.bytes.as_slice(), s.size), (&b"789"[..], 10));
        let s = be.get_suffix(Kind::Pack, "a", 3).unwrap();
        assert_eq!((s.bytes.as_slice(), s.size), (&b"xy"[..], 2));
        let names: Vec<(String, u64)> = be
            .list(Kind::Pack)
            .unwrap()
            .into_iter()
            .map(|o| (o.name, o.size))
            .collect();
        assert_eq!(names, [("a".to_string(), 2), ("b".to_string(), 10)]);
        assert!(be.get(Kind::Pack, "c").unwrap_err().is_not_found());
        be.delete(Kind::Pack, "c").unwrap();
        assert_eq!(be.create().unwrap_err().kind, StoreErrorKind::AlreadyExists);
    }

    #[test]
    fn writes_fail_after_the_budget_and_the_store_survives_a_restart() {
        let be = MemoryBackend::new().fail_writes_after(2);
        be.put(Kind::Snapshot, "a", b"1").unwrap();
        assert!(be.put_new(Kind::Lock, "l", b"2").unwrap());
        assert!(be.put(Kind::Snapshot, "b", b"3").is_err());
        assert!(be.delete(Kind::Lock, "l").is_err());
        assert_eq!(be.writes(), 2);
        assert_eq!(be.get(Kind::Snapshot, "a").unwrap(), b"1");
        let again = MemoryBackend::on(be.store());
        assert!(!again.exists(Kind::Snapshot, "b").unwrap());
        again.delete(Kind::Lock, "l").unwrap();
        assert_eq!(again.store().count(Kind::Lock), 0);
        assert_eq!(again.store().count(Kind::Snapshot), 1);
    }
}

//! Storage backends: a small interface over immutable named objects.
//!
//! Everything the engine stores goes through [`Backend`]. It assumes no POSIX semantics beyond
//! what an S3-compatible store gives: whole-object atomic put, get, ranged and suffix get, list
//! by kind with sizes, delete, and a create-if-absent put used by the lock protocol. The
//! contract, which every backend keeps and the engine relies on, is docs/FORMAT.md, "Storage
//! contract".

use super::error::StoreResult;
#[cfg(doc)]
use super::{MemoryBackend, StoreErrorKind};

/// The kinds of object a repository holds; each maps to a folder (or key prefix).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Kind {
    /// The repository config (one object named `config`).
    Config,
    /// Pack files of blobs.
    Pack,
    /// Index files.
    Index,
    /// Snapshot records.
    Snapshot,
    /// Lock records.
    Lock,
    /// Legacy per-source catalogues of backup points (`points/<source>`, replaced in place by
    /// yester before catalogue version 2; still read).
    Catalog,
    /// Catalogue generations, named `<source>/<seq>-<hash>` (docs/FORMAT.md, "Point
    /// catalogues"): the one kind whose names contain a `/`.
    CatalogGen,
}

impl Kind {
    /// The folder this kind lives in ("" for the config at the top).
    pub fn dir(self) -> &'static str {
        match self {
            Kind::Config => "",
            Kind::Pack => "packs",
            Kind::Index => "index",
            Kind::Snapshot => "snapshots",
            Kind::Lock => "locks",
            Kind::Catalog => "points",
            Kind::CatalogGen => "catalogs",
        }
    }

    /// All kinds that live in folders.
    pub const FOLDERS: [Kind; 6] = [
        Kind::Pack,
        Kind::Index,
        Kind::Snapshot,
        Kind::Lock,
        Kind::Catalog,
        Kind::CatalogGen,
    ];

    /// Whether an object of this kind may be replaced by a `put` with other bytes. Only a
    /// lock holder refreshing its own lease does that (docs/FORMAT.md, "Storage contract").
    pub fn replaceable(self) -> bool {
        self == Kind::Lock
    }
}

/// One listed object: its name and size in bytes.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ObjectInfo {
    pub name: String,
    pub size: u64,
}

/// The end of an object, as [`Backend::get_suffix`] returns it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Suffix {
    /// The last `min(n, size)` bytes.
    pub bytes: Vec<u8>,
    /// The size of the whole object (an S3 suffix range reports it in `Content-Range`).
    pub size: u64,
}

/// A store of named immutable objects (docs/FORMAT.md, "Storage contract").
///
/// Objects are immutable. [`Backend::put`] stores an object whose name is new or names its
/// content (packs, index files, snapshot records are named by their hash), so putting a name
/// again means putting the same bytes; [`Backend::put_new`] is create-if-absent. The only kind
/// whose objects may be replaced by other bytes is [`Kind::Lock`]: a holder refreshing its own
/// lease. A `put` of an existing object of another kind with other bytes is a contract
/// violation ([`MemoryBackend`] refuses it, so tests catch it).
///
/// No operation leaves a partial object visible. Leftovers of writers that died mid-put (a
/// local directory's temp files) are the backend's own business: it removes them itself.
pub trait Backend: Send + Sync {
    /// Human-readable location, for messages.
    fn location(&self) -> String;
    /// Name of an object as shown in messages (e.g. its path).
    fn describe(&self, kind: Kind, name: &str) -> String;
    /// Whether an object exists.
    fn exists(&self, kind: Kind, name: &str) -> StoreResult<bool>;
    /// Store `data` under `name`, atomically and durably (see the trait's rules on names).
    fn put(&self, kind: Kind, name: &str, data: &[u8]) -> StoreResult<()>;
    /// Store `data` under `name` only if no such object exists; returns false if one did.
    fn put_new(&self, kind: Kind, name: &str, data: &[u8]) -> StoreResult<bool>;
    /// The whole object.
    fn get(&self, kind: Kind, name: &str) -> StoreResult<Vec<u8>>;
    /// `len` bytes from `offset`; fewer only if the object is shorter.
    fn get_range(&self, kind: Kind, name: &str, offset: u64, len: u64) -> StoreResult<Vec<u8>>;
    /// The last `n` bytes (all of them if the object is shorter) and the object's size, in one
    /// request: a pack's trailer is read without asking for its size first.
    fn get_suffix(&self, kind: Kind, name: &str, n: u64) -> StoreResult<Suffix>;
    /// All objects of a kind with their sizes, sorted by name.
    fn list(&self, kind: Kind) -> StoreResult<Vec<ObjectInfo>>;
    /// Remove an object (no error if it is already gone).
    fn delete(&self, kind: Kind, name: &str) -> StoreResult<()>;
    /// Prepare the store for a new repository; fails with
    /// [`StoreErrorKind::AlreadyExists`] where something is stored already.
    fn create(&self) -> StoreResult<()>;
}

/// The names of `kind`'s objects (for callers that do not need the sizes).
pub fn list_names(backend: &dyn Backend, kind: Kind) -> StoreResult<Vec<String>> {
    Ok(backend.list(kind)?.into_iter().map(|o| o.name).collect())
}

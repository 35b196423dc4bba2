//! Storage backends: a small interface over immutable named objects.
//!
//! Everything the engine stores goes through [`Backend`]. It assumes no POSIX semantics beyond
//! what an S3-compatible store gives: whole-object atomic put, get and ranged get, list by
//! kind, delete, and a create-if-absent put used by the lock protocol.

mod direct;
mod local;

pub use local::LocalDir;

use super::error::Result;

/// The kinds of object a repository holds; each maps to a folder (or key prefix).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
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
}

/// A store of named immutable objects.
pub trait Backend: Send + Sync {
    /// Human-readable location, for messages.
    fn location(&self) -> String;
    /// Name of an object as shown in messages (e.g. its path).
    fn describe(&self, kind: Kind, name: &str) -> String;
    /// Whether an object exists.
    fn exists(&self, kind: Kind, name: &str) -> Result<bool>;
    /// Store `data` under `name`, atomically and durably, replacing any older object.
    fn put(&self, kind: Kind, name: &str, data: &[u8]) -> Result<()>;
    /// Store `data` under `name` only if no such object exists; returns false if one did.
    fn put_new(&self, kind: Kind, name: &str, data: &[u8]) -> Result<bool>;
    /// The whole object.
    fn get(&self, kind: Kind, name: &str) -> Result<Vec<u8>>;
    /// `len` bytes from `offset`; fewer only if the object is shorter.
    fn get_range(&self, kind: Kind, name: &str, offset: u64, len: u64) -> Result<Vec<u8>>;
    /// Size of an object in bytes.
    fn size(&self, kind: Kind, name: &str) -> Result<u64>;
    /// Names of all objects of a kind.
    fn list(&self, kind: Kind) -> Result<Vec<String>>;
    /// Remove an object (no error if it is already gone).
    fn delete(&self, kind: Kind, name: &str) -> Result<()>;
    /// Prepare the store for a new repository (create folders).
    fn create(&self) -> Result<()>;
    /// Remove leftovers of writers that died mid-put; returns how many were removed.
    fn clean_incomplete(&self) -> Result<usize> {
        Ok(0)
    }
}

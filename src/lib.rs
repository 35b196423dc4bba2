//! yester: deduplicated backup snapshots, exposed read-only as rsnapshot-style backup points.
//!
//! Layers, each depending only on those before it: [`engine`] (repository, packs, index,
//! chunker, trees, snapshots) ← [`points`] (retention and the naming layout). Later layers
//! (vfs, fuse, nfs) build on them.

pub mod engine;
pub mod fuse;
pub mod nfs;
pub mod points;
pub mod vfs;

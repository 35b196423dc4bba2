//! yester: deduplicated backup snapshots, exposed read-only as rsnapshot-style backup points.
//!
//! Layers, each depending only on those before it: [`engine`] (repository, packs, index,
//! chunker, trees, snapshots). Later layers (points, vfs, fuse, nfs) build on it.

pub mod engine;

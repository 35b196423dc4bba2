//! What is on disk: identifiers, the byte encodings, the config object, tree blobs, snapshot
//! records, index files, pack files and the compression of one blob inside a pack. Every
//! decoder of bytes read from storage lives here. Layouts: docs/FORMAT.md.
//!
//! Public (not `pub(crate)`) because the fuzz targets (`fuzz/`) and `tests/fuzz_corpus.rs` call
//! these decoders and encoders directly.

pub mod codec;
pub mod compress;
pub mod config;
pub mod id;
pub mod index;
pub mod pack;
pub mod snapshot;
pub mod tree;

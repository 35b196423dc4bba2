//! Restore: recreate a snapshot tree (or one entry of it) on the local filesystem.
//!
//! Like the backup walk, everything is created relative to open directory handles
//! (`mkdirat`, `openat`, `linkat`, … with `O_NOFOLLOW`), so paths deeper than PATH_MAX restore
//! and a symlink planted in the target cannot redirect the restore.
//!
//! Here: the operation, its options and report. The walk that creates entries and batches
//! files is `walk`, writing content and metadata `write`, a place in the target `loc`.

mod loc;
mod walk;
mod write;

use std::collections::HashMap;
use std::fs;
use std::io;
use std::path::PathBuf;
use std::sync::Arc;

use nix::fcntl::OFlag;
use nix::sys::stat::Mode;

use crate::engine::error::{Error, Result};
use crate::engine::format::id::BlobId;
use crate::engine::format::tree::NodeKind;
use crate::engine::lookup::Node;
use crate::engine::store::repo::BlobReader;

use loc::Loc;
use walk::Restorer;

/// Options for a restore.
#[derive(Clone, Debug, Default)]
pub struct RestoreOptions {
    pub target: PathBuf,
    pub overwrite: bool,
    /// Threads writing content; `None`: [`crate::engine::localfs::threads::default_jobs`].
    pub jobs: Option<usize>,
}

/// Receives progress while a restore runs (from several threads).
pub trait RestoreProgress: Sync {
    /// `bytes` more of file content were written.
    fn bytes_done(&self, _bytes: u64) {}
}

/// A progress sink that ignores everything.
pub struct NoRestoreProgress;
impl RestoreProgress for NoRestoreProgress {}

/// The bytes of file content below a node, for progress totals (reads only trees).
pub fn total_bytes(reader: &BlobReader, node: &Node) -> Result<u64> {
    fn tree(reader: &BlobReader, id: &BlobId) -> Result<u64> {
        let t = reader.read_tree(id)?;
        let mut sum = 0;
        for e in &t.entries {
            sum += match e.kind {
                NodeKind::Dir => tree(reader, &e.subtree.unwrap_or_default())?,
                NodeKind::File => e.size,
                _ => 0,
            };
        }
        Ok(sum)
    }
    match node {
        Node::Root(id) => tree(reader, id),
        Node::Entry(e) if e.kind == NodeKind::Dir => tree(reader, &e.subtree.unwrap_or_default()),
        Node::Entry(e) => Ok(e.size),
    }
}

/// What a restore did.
#[derive(Clone, Debug, Default)]
pub struct RestoreReport {
    pub files: u64,
    pub dirs: u64,
    pub others: u64,
    pub bytes: u64,
    /// Problems that did not stop the restore (damaged files, metadata that could not be set).
    pub errors: Vec<String>,
}

/// Restore `node`: the root's contents go into the target directory, an entry goes to
/// `target/<its name>`.
pub fn restore(
    reader: &BlobReader,
    node: &Node,
    opts: &RestoreOptions,
    progress: &dyn RestoreProgress,
) -> Result<RestoreReport> {
    crate::engine::localfs::threads::pool(opts.jobs, "restore")?
        .install(|| restore_in_pool(reader, node, opts, progress))
}

fn restore_in_pool(
    reader: &BlobReader,
    node: &Node,
    opts: &RestoreOptions,
    progress: &dyn RestoreProgress,
) -> Result<RestoreReport> {
    let mut r = Restorer {
        reader,
        overwrite: opts.overwrite,
        is_root: nix::unistd::geteuid().is_root(),
        links: HashMap::new(),
        report: RestoreReport::default(),
        pending: Vec::new(),
        pending_bytes: 0,
        pending_dirs: Vec::new(),
        progress,
    };
    fs::create_dir_all(&opts.target).map_err(|e| Error::io(opts.target.display(), e))?;
    let target = nix::fcntl::open(
        &opts.target,
        OFlag::O_RDONLY | OFlag::O_DIRECTORY | OFlag::O_CLOEXEC,
        Mode::empty(),
    )
    .map(Arc::new)
    .map_err(|e| {
        Error::io(
            opts.target.display(),
            io::Error::from_raw_os_error(e as i32),
        )
    })?;
    match node {
        // The target may hold files already: nothing in it counts as fresh.
        Node::Root(id) => r.restore_tree(*id, &target, &opts.target, false)?,
        Node::Entry(e) => r.restore_entry(e, &Loc::child(&target, &opts.target, &e.name), false)?,
    }
    r.flush()?;
    Ok(r.report)
}

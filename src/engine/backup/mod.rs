//! Backup: walk the given paths, store their content and metadata, save a snapshot.
//!
//! Each path keeps its absolute location: backing up `/etc` yields `etc/…` at the snapshot
//! root, and the parent directories of a path are recorded with their real metadata but only
//! the children that lead to backed-up paths.
//!
//! Here: the operation, its options and report. The walk of the source tree is `walk`, reading
//! and chunking one file `file`, reusing the parent snapshot's entries for unchanged files
//! `parent`, and the exclude patterns `excludes`.

mod excludes;
mod file;
mod parent;
mod walk;

use std::collections::BTreeMap;
use std::fs;
use std::os::unix::ffi::OsStrExt;
use std::path::{Component, Path, PathBuf};
use std::sync::atomic::AtomicUsize;
use std::sync::{Mutex, OnceLock};
use std::time::{Duration, Instant, SystemTime};

use crate::engine::error::{Error, Result};
use crate::engine::format::id::{BlobId, SnapshotId};
use crate::engine::format::pack::BlobKind;
use crate::engine::format::snapshot::{LinkTable, Snapshot, SnapshotStats, SNAPSHOT_VERSION};
use crate::engine::localfs::fsat;
use crate::engine::store::lock;
use crate::engine::store::repo::Repository;
use crate::engine::store::writer::SharedWriter;

use excludes::Excludes;
use walk::{guard, Walker};

/// What to back up and how.
#[derive(Clone, Debug, Default)]
pub struct BackupOptions {
    pub source: String,
    pub paths: Vec<PathBuf>,
    /// Glob patterns; a pattern with a `/` matches the absolute path, otherwise the name.
    pub excludes: Vec<String>,
    /// Do not descend into directories on other filesystems than their backup path.
    pub one_file_system: bool,
    /// How long to wait for a conflicting lock.
    pub lock_wait: Duration,
    /// Record this time instead of now (for importing older backup trees).
    pub time: Option<SystemTime>,
    /// Read every file, even those unchanged since the source's previous snapshot.
    pub force: bool,
    /// The source's inode numbers change between backups (some FUSE and network file
    /// systems): do not record them or use them to tell unchanged files.
    pub ignore_inode: bool,
    /// Threads that walk, read, chunk, hash and compress; `None`: [`crate::engine::localfs::threads::default_jobs`].
    pub jobs: Option<usize>,
}

/// The result of a backup.
#[derive(Clone, Debug)]
pub struct BackupReport {
    pub id: SnapshotId,
    pub snapshot: Snapshot,
}

impl BackupReport {
    /// True when some files could not be saved completely.
    pub fn is_partial(&self) -> bool {
        !self.snapshot.warnings.is_empty()
    }
}

/// Receives progress while a backup runs (from any of its threads, one call at a time).
pub trait Progress: Send {
    fn file_done(&mut self, _path: &Path, _bytes: u64) {}
    fn warning(&mut self, _msg: &str) {}
}

/// A progress sink that ignores everything.
pub struct NoProgress;
impl Progress for NoProgress {}

/// The backed-up paths as a tree of names below `/`.
#[derive(Default)]
struct PathNode {
    /// This path itself is backed up (whole subtree).
    target: bool,
    children: BTreeMap<Vec<u8>, PathNode>,
}

/// Make a path absolute without resolving its last component (a symlink stays a symlink).
fn absolute(p: &Path) -> Result<PathBuf> {
    let abs = std::path::absolute(p).map_err(|e| Error::io(p.display(), e))?;
    let mut clean = PathBuf::from("/");
    for c in abs.components() {
        match c {
            Component::Normal(n) => clean.push(n),
            Component::ParentDir => {
                clean.pop();
            }
            _ => {}
        }
    }
    let Some(name) = clean.file_name().map(|n| n.to_owned()) else {
        return Ok(clean);
    };
    let parent = clean.parent().unwrap_or(Path::new("/"));
    let parent = fs::canonicalize(parent).map_err(|e| Error::io(parent.display(), e))?;
    Ok(parent.join(name))
}

/// Back up `opts.paths` as a new snapshot of `opts.source`.
pub fn backup<P: Progress>(
    repo: &Repository,
    opts: &BackupOptions,
    progress: &mut P,
) -> Result<BackupReport> {
    crate::engine::format::snapshot::check_source_name(&opts.source)?;
    if opts.paths.is_empty() {
        return Err(Error::Invalid(
            "nothing to back up: give at least one path".into(),
        ));
    }
    let mut root = PathNode::default();
    let mut abs_paths = Vec::new();
    for p in &opts.paths {
        let abs = absolute(p)?;
        fs::symlink_metadata(&abs).map_err(|e| Error::io(abs.display(), e))?;
        let mut node = &mut root;
        for c in abs.components() {
            if let Component::Normal(n) = c {
                node = node.children.entry(n.as_bytes().to_vec()).or_default();
            }
        }
        node.target = true;
        abs_paths.push(abs);
    }
    // A path inside another backed-up path adds nothing.
    fn prune(n: &mut PathNode) {
        if n.target {
            n.children.clear();
        }
        n.children.values_mut().for_each(prune);
    }
    prune(&mut root);

    let lock = repo.lock(lock::REPOSITORY, false, "backup", opts.lock_wait)?;
    let reader = repo.reader()?;
    // Files unchanged since the source's newest snapshot are not read again.
    let parent = if opts.force {
        None
    } else {
        let (snaps, _) = repo.snapshots()?;
        snaps
            .into_iter()
            .rev()
            .find(|s| s.snapshot.source == opts.source)
            .map(|s| s.snapshot.tree)
    };
    let started = opts.time.unwrap_or_else(SystemTime::now);
    let clock = Instant::now();
    let pool = crate::engine::localfs::threads::pool(opts.jobs, "backup")?;
    let w = Walker {
        repo,
        reader: &reader,
        writer: SharedWriter::start(repo, &reader.index)?,
        excludes: Excludes::new(&opts.excludes)?,
        one_fs: opts.one_file_system,
        ignore_inode: opts.ignore_inode,
        stats: Mutex::new(SnapshotStats::default()),
        warnings: Mutex::new(Vec::new()),
        progress: Mutex::new(progress),
        links: Mutex::new(LinkTable::default()),
        zero_chunk: OnceLock::new(),
        held: AtomicUsize::new(0),
    };
    let walked = pool.install(|| -> Result<(BlobId, Option<BlobId>)> {
        let root_fd = fsat::open_root().map_err(|e| Error::io("/", e))?;
        let root_tree = if root.target {
            // Backing up `/` itself.
            let st = fsat::stat_fd(&root_fd).map_err(|e| Error::io("/", e))?;
            match w.save_dir(&root_fd, Path::new("/"), st.dev, parent)? {
                Some(id) => id,
                None => return Err(Error::Invalid("cannot read /".into())),
            }
        } else {
            let t = w.save_spine(&root_fd, Path::new("/"), &root, parent)?;
            w.writer.add(BlobKind::Tree, &t.encode())?
        };
        let links = guard(&w.links);
        let links = if links.counts.is_empty() {
            None
        } else {
            Some(w.writer.add(BlobKind::Data, &links.encode())?)
        };
        Ok((root_tree, links))
    });
    drop(pool);
    let Walker {
        writer,
        stats,
        warnings,
        ..
    } = w;
    let (root_tree, links) = match walked {
        Ok(r) => r,
        Err(e) => return Err(writer.abandon(e)),
    };
    let written = writer.finish()?;
    crate::engine::failpoint::failpoint("backup-before-snapshot");
    let ws = written.stats;
    let mut stats = stats.into_inner().unwrap_or_else(|p| p.into_inner());
    stats.blobs_added = ws.blobs_added;
    stats.bytes_added = ws.bytes_added;
    stats.stored_bytes_added = ws.stored_bytes_added;
    stats.duration_secs = clock.elapsed().as_secs_f64();
    // Threads finish in any order; sorted, the warnings follow the paths.
    let mut warnings = warnings.into_inner().unwrap_or_else(|p| p.into_inner());
    warnings.sort();
    let snapshot = Snapshot {
        version: SNAPSHOT_VERSION,
        time: humantime::format_rfc3339_nanos(started).to_string(),
        hostname: lock::hostname(),
        source: opts.source.clone(),
        paths: abs_paths
            .iter()
            .map(|p| p.to_string_lossy().into_owned())
            .collect(),
        tree: root_tree,
        stats,
        warnings,
        links,
    };
    // A holder whose lease ran out (a prune may have taken the lock since) commits nothing.
    lock.check()?;
    let id = snapshot.save(repo.backend())?;
    Ok(BackupReport { id, snapshot })
}

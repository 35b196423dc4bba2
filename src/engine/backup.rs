//! Backup: walk the given paths, store their content and metadata, save a snapshot.
//!
//! Each path keeps its absolute location: backing up `/etc` yields `etc/…` at the snapshot
//! root, and the parent directories of a path are recorded with their real metadata but only
//! the children that lead to backed-up paths.

use std::collections::BTreeMap;
use std::ffi::OsStr;
use std::fs::{self, Metadata, OpenOptions};
use std::io;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::{FileTypeExt, MetadataExt, OpenOptionsExt};
use std::path::{Component, Path, PathBuf};
use std::time::{Duration, Instant, SystemTime};

use globset::{Glob, GlobSet, GlobSetBuilder};

use super::chunker::Chunker;
use super::error::{Error, Result};
use super::id::{BlobId, SnapshotId};
use super::lock;
use super::pack::BlobKind;
use super::repo::{BlobReader, BlobWriter, Repository};
use super::snapshot::{load_all, LinkTable, Snapshot, SnapshotStats, SNAPSHOT_VERSION};
use super::tree::{ChunkRef, Entry, HardlinkKey, NodeKind, Timestamp, Tree};

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

/// Receives progress while a backup runs.
pub trait Progress {
    fn file_done(&mut self, _path: &Path, _bytes: u64) {}
    fn warning(&mut self, _msg: &str) {}
}

/// A progress sink that ignores everything.
pub struct NoProgress;
impl Progress for NoProgress {}

struct Excludes {
    by_path: GlobSet,
    by_name: GlobSet,
}

impl Excludes {
    fn new(patterns: &[String]) -> Result<Self> {
        let mut by_path = GlobSetBuilder::new();
        let mut by_name = GlobSetBuilder::new();
        for p in patterns {
            let g = Glob::new(p).map_err(|e| Error::Invalid(format!("exclude {p:?}: {e}")))?;
            if p.contains('/') {
                by_path.add(g);
            } else {
                by_name.add(g);
            }
        }
        let build = |b: GlobSetBuilder| b.build().map_err(|e| Error::Invalid(e.to_string()));
        Ok(Excludes {
            by_path: build(by_path)?,
            by_name: build(by_name)?,
        })
    }

    fn excluded(&self, path: &Path) -> bool {
        self.by_path.is_match(path)
            || path
                .file_name()
                .is_some_and(|n| self.by_name.is_match(Path::new(n)))
    }
}

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

struct Walker<'a, P: Progress> {
    repo: &'a Repository,
    /// Reads the previous snapshot's trees.
    reader: &'a BlobReader,
    writer: BlobWriter<'a>,
    excludes: Excludes,
    one_fs: bool,
    stats: SnapshotStats,
    warnings: Vec<String>,
    progress: &'a mut P,
    /// Names seen per hard-linked file.
    links: LinkTable,
}

fn ts(secs: i64, nanos: i64) -> Timestamp {
    Timestamp {
        secs,
        nanos: u32::try_from(nanos).unwrap_or(0).min(999_999_999),
    }
}

fn kind_of(m: &Metadata) -> NodeKind {
    let ft = m.file_type();
    if ft.is_dir() {
        NodeKind::Dir
    } else if ft.is_symlink() {
        NodeKind::Symlink
    } else if ft.is_fifo() {
        NodeKind::Fifo
    } else if ft.is_socket() {
        NodeKind::Socket
    } else if ft.is_char_device() {
        NodeKind::CharDevice
    } else if ft.is_block_device() {
        NodeKind::BlockDevice
    } else {
        NodeKind::File
    }
}

/// Metadata common to every kind of entry.
fn entry_from_meta(name: &[u8], m: &Metadata) -> Entry {
    let mut e = Entry::new(name.to_vec(), kind_of(m));
    e.mode = m.mode() & 0o7777;
    e.uid = m.uid();
    e.gid = m.gid();
    e.mtime = ts(m.mtime(), m.mtime_nsec());
    e.ctime = ts(m.ctime(), m.ctime_nsec());
    if e.kind != NodeKind::Dir {
        e.nlink = m.nlink();
        if m.nlink() > 1 {
            e.hardlink = Some(HardlinkKey {
                dev: m.dev(),
                ino: m.ino(),
            });
        }
    }
    if matches!(e.kind, NodeKind::CharDevice | NodeKind::BlockDevice) {
        e.rdev = m.rdev();
    }
    e
}

fn is_vanished(e: &io::Error) -> bool {
    matches!(
        e.raw_os_error(),
        Some(nix::libc::ENOENT) | Some(nix::libc::ENOTDIR)
    )
}

impl<P: Progress> Walker<'_, P> {
    fn warn(&mut self, path: &Path, msg: impl std::fmt::Display) {
        let m = format!("{}: {msg}", path.display());
        tracing::warn!("{m}");
        self.progress.warning(&m);
        self.warnings.push(m);
    }

    fn xattrs(&mut self, path: &Path) -> Vec<(Vec<u8>, Vec<u8>)> {
        let names = match xattr::list(path) {
            Ok(n) => n,
            Err(e) if e.raw_os_error() == Some(nix::libc::EOPNOTSUPP) => return Vec::new(),
            Err(e) => {
                self.warn(path, format_args!("cannot list extended attributes: {e}"));
                return Vec::new();
            }
        };
        let mut out = Vec::new();
        for n in names {
            match xattr::get(path, &n) {
                Ok(Some(v)) => out.push((n.as_bytes().to_vec(), v)),
                Ok(None) => {}
                Err(e) => self.warn(
                    path,
                    format_args!("cannot read extended attribute {n:?}: {e}"),
                ),
            }
        }
        out.sort();
        out
    }

    /// Save a file's content; returns the chunk list and bytes read, or `None` when the file
    /// could not be read (a warning). Errors are the repository's and end the backup.
    fn save_file(&mut self, path: &Path, meta: &Metadata) -> Result<Option<(Vec<ChunkRef>, u64)>> {
        // O_NONBLOCK: if the file was swapped for a FIFO after lstat, open must not hang.
        // O_NOATIME: a backup should not change what it backs up (allowed for owner and root).
        let open = |flags| {
            OpenOptions::new()
                .read(true)
                .custom_flags(nix::libc::O_NONBLOCK | nix::libc::O_NOFOLLOW | flags)
                .open(path)
        };
        let file = match open(nix::libc::O_NOATIME).or_else(|_| open(0)) {
            Ok(f) => f,
            Err(e) if is_vanished(&e) => {
                self.warn(path, "vanished before it could be read");
                return Ok(None);
            }
            Err(e) => {
                self.warn(path, format_args!("cannot open: {e}"));
                return Ok(None);
            }
        };
        let before = match file.metadata() {
            Ok(m) if m.is_file() && m.ino() == meta.ino() => m,
            Ok(_) => {
                self.warn(path, "was replaced while being backed up; skipped");
                return Ok(None);
            }
            Err(e) => {
                self.warn(path, format_args!("cannot stat: {e}"));
                return Ok(None);
            }
        };
        let mut chunker = Chunker::new(&file, self.repo.config.chunk_sizes);
        let mut chunks = Vec::new();
        let mut read: u64 = 0;
        loop {
            match chunker.next_chunk() {
                Ok(Some(data)) => {
                    read += data.len() as u64;
                    let len = data.len() as u32;
                    let id = self.repo.key.blob_id(data);
                    // A failure to store is the repository's, not this file's: stop the backup.
                    self.writer.add_with_id(id, BlobKind::Data, data)?;
                    chunks.push(ChunkRef { id, len });
                }
                Ok(None) => break,
                Err(e) => {
                    self.warn(path, format_args!("read error: {e}"));
                    return Ok(None);
                }
            }
        }
        self.stats.bytes_read += read;
        if let Ok(after) = file.metadata() {
            if after.len() != before.len()
                || after.mtime() != before.mtime()
                || after.mtime_nsec() != before.mtime_nsec()
                || after.ctime() != before.ctime()
                || after.ctime_nsec() != before.ctime_nsec()
                || read != before.len()
            {
                self.warn(
                    path,
                    "changed while being read; the saved copy may be inconsistent",
                );
            }
        }
        Ok(Some((chunks, read)))
    }

    /// Build the entry for `path` (already lstat-ed); `None` if it had to be skipped.
    /// The previous snapshot's tree of a directory, if it had one and it is readable.
    fn prev_tree(&mut self, id: Option<BlobId>) -> Option<Tree> {
        let id = id?;
        match self.reader.read_tree(&id) {
            Ok(t) => Some(t),
            Err(e) => {
                tracing::info!(
                    "previous snapshot's tree {} unreadable ({e}); reading files again",
                    id.short()
                );
                None
            }
        }
    }

    /// The previous snapshot's chunks of a file whose size, mtime and ctime are unchanged
    /// (ctime changes with any write, rename onto it or metadata change), if all still exist.
    fn unchanged_chunks(&self, prev: Option<&Entry>, meta: &Metadata) -> Option<Vec<ChunkRef>> {
        let p = prev?;
        let same = p.kind == NodeKind::File
            && p.size == meta.len()
            && p.mtime == ts(meta.mtime(), meta.mtime_nsec())
            && p.ctime == ts(meta.ctime(), meta.ctime_nsec());
        (same && p.chunks.iter().all(|c| self.writer.has(&c.id))).then(|| p.chunks.clone())
    }

    fn save_entry(
        &mut self,
        path: &Path,
        name: &[u8],
        meta: &Metadata,
        dev: u64,
        prev: Option<&Entry>,
    ) -> Result<Option<Entry>> {
        let mut e = entry_from_meta(name, meta);
        match e.kind {
            NodeKind::File => {
                if let Some(chunks) = self.unchanged_chunks(prev, meta) {
                    e.chunks = chunks;
                    e.size = meta.len();
                    self.stats.files_unchanged += 1;
                } else {
                    let Some((chunks, read)) = self.save_file(path, meta)? else {
                        return Ok(None);
                    };
                    e.chunks = chunks;
                    e.size = read;
                }
                self.stats.files += 1;
                self.stats.total_bytes += e.size;
                self.progress.file_done(path, e.size);
            }
            NodeKind::Dir => {
                let id = if self.one_fs && meta.dev() != dev {
                    // A mount point: keep the directory itself, not the other filesystem.
                    self.writer.add(BlobKind::Tree, &Tree::default().encode())?
                } else {
                    let prev_dir = prev
                        .filter(|p| p.kind == NodeKind::Dir)
                        .and_then(|p| p.subtree);
                    match self.save_dir(path, dev, prev_dir)? {
                        Some(t) => t,
                        None => return Ok(None),
                    }
                };
                e.subtree = Some(id);
                self.stats.dirs += 1;
            }
            NodeKind::Symlink => match fs::read_link(path) {
                Ok(t) => {
                    e.target = t.as_os_str().as_bytes().to_vec();
                    e.size = e.target.len() as u64;
                    self.stats.others += 1;
                }
                Err(err) => {
                    self.warn(path, format_args!("cannot read symlink: {err}"));
                    return Ok(None);
                }
            },
            _ => self.stats.others += 1,
        }
        e.xattrs = self.xattrs(path);
        if let Some(key) = e.hardlink {
            *self.links.counts.entry(key).or_default() += 1;
        }
        Ok(Some(e))
    }

    /// Save a whole directory; `None` if it could not be listed.
    fn save_dir(&mut self, path: &Path, dev: u64, prev: Option<BlobId>) -> Result<Option<BlobId>> {
        let rd = match fs::read_dir(path) {
            Ok(rd) => rd,
            Err(e) if is_vanished(&e) => {
                self.warn(path, "vanished before it could be read");
                return Ok(None);
            }
            Err(e) => {
                self.warn(path, format_args!("cannot list directory: {e}"));
                return Ok(None);
            }
        };
        let mut names: Vec<Vec<u8>> = Vec::new();
        for ent in rd {
            match ent {
                Ok(ent) => names.push(ent.file_name().as_bytes().to_vec()),
                Err(e) => {
                    self.warn(path, format_args!("error while listing: {e}"));
                }
            }
        }
        names.sort();
        let prev = self.prev_tree(prev);
        let mut tree = Tree::default();
        for name in names {
            let child = path.join(OsStr::from_bytes(&name));
            if self.excludes.excluded(&child) {
                continue;
            }
            let meta = match fs::symlink_metadata(&child) {
                Ok(m) => m,
                Err(e) if is_vanished(&e) => {
                    self.warn(&child, "vanished before it could be read");
                    continue;
                }
                Err(e) => {
                    self.warn(&child, format_args!("cannot stat: {e}"));
                    continue;
                }
            };
            let prev_entry = prev.as_ref().and_then(|t| t.get(&name));
            if let Some(e) = self.save_entry(&child, &name, &meta, dev, prev_entry)? {
                tree.entries.push(e);
            }
        }
        Ok(Some(self.writer.add(BlobKind::Tree, &tree.encode())?))
    }

    /// Save a directory above (or at) the backed-up paths.
    fn save_spine(&mut self, path: &Path, node: &PathNode, prev: Option<BlobId>) -> Result<Tree> {
        let prev = self.prev_tree(prev);
        let mut tree = Tree::default();
        for (name, child) in &node.children {
            let child_path = path.join(OsStr::from_bytes(name));
            let meta = fs::symlink_metadata(&child_path)
                .map_err(|e| Error::io(child_path.display(), e))?;
            let prev_entry = prev.as_ref().and_then(|t| t.get(name));
            let entry = if child.target {
                self.save_entry(&child_path, name, &meta, meta.dev(), prev_entry)?
            } else if meta.is_dir() {
                let prev_dir = prev_entry
                    .filter(|p| p.kind == NodeKind::Dir)
                    .and_then(|p| p.subtree);
                let sub = self.save_spine(&child_path, child, prev_dir)?;
                let mut e = entry_from_meta(name, &meta);
                e.subtree = Some(self.writer.add(BlobKind::Tree, &sub.encode())?);
                e.xattrs = self.xattrs(&child_path);
                self.stats.dirs += 1;
                Some(e)
            } else {
                return Err(Error::Invalid(format!(
                    "{}: not a directory",
                    child_path.display()
                )));
            };
            tree.entries.extend(entry);
        }
        Ok(tree)
    }
}

/// Back up `opts.paths` as a new snapshot of `opts.source`.
pub fn backup<P: Progress>(
    repo: &Repository,
    opts: &BackupOptions,
    progress: &mut P,
) -> Result<BackupReport> {
    super::snapshot::check_source_name(&opts.source)?;
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

    let _lock = lock::acquire(
        repo.backend.clone(),
        lock::REPOSITORY,
        false,
        "backup",
        opts.lock_wait,
    )?;
    let cleaned = repo.backend.clean_incomplete()?;
    if cleaned > 0 {
        tracing::info!("removed {cleaned} temporary files left by interrupted writers");
    }
    let reader = repo.reader()?;
    // Files unchanged since the source's newest snapshot are not read again.
    let parent = if opts.force {
        None
    } else {
        let (snaps, _) = load_all(repo.backend.as_ref())?;
        snaps
            .into_iter()
            .rev()
            .find(|s| s.snapshot.source == opts.source)
            .map(|s| s.snapshot.tree)
    };
    let started = opts.time.unwrap_or_else(SystemTime::now);
    let clock = Instant::now();
    let mut w = Walker {
        repo,
        reader: &reader,
        writer: BlobWriter::new(repo, &reader.index),
        excludes: Excludes::new(&opts.excludes)?,
        one_fs: opts.one_file_system,
        stats: SnapshotStats::default(),
        warnings: Vec::new(),
        progress,
        links: LinkTable::default(),
    };
    let root_tree = if root.target {
        // Backing up `/` itself.
        let meta = fs::symlink_metadata("/").map_err(|e| Error::io("/", e))?;
        match w.save_dir(Path::new("/"), meta.dev(), parent)? {
            Some(id) => id,
            None => return Err(Error::Invalid("cannot read /".into())),
        }
    } else {
        let t = w.save_spine(Path::new("/"), &root, parent)?;
        w.writer.add(BlobKind::Tree, &t.encode())?
    };
    let links = if w.links.counts.is_empty() {
        None
    } else {
        Some(w.writer.add(BlobKind::Data, &w.links.encode())?)
    };
    w.writer.flush()?;
    super::failpoint::failpoint("backup-before-snapshot");
    let ws = w.writer.stats;
    let mut stats = w.stats;
    stats.blobs_added = ws.blobs_added;
    stats.bytes_added = ws.bytes_added;
    stats.stored_bytes_added = ws.stored_bytes_added;
    stats.duration_secs = clock.elapsed().as_secs_f64();
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
        warnings: w.warnings,
        links,
    };
    let id = snapshot.save(repo.backend.as_ref())?;
    Ok(BackupReport { id, snapshot })
}

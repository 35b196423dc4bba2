//! Backup: walk the given paths, store their content and metadata, save a snapshot.
//!
//! Each path keeps its absolute location: backing up `/etc` yields `etc/…` at the snapshot
//! root, and the parent directories of a path are recorded with their real metadata but only
//! the children that lead to backed-up paths.

use std::cell::RefCell;
use std::collections::BTreeMap;
use std::ffi::OsStr;
use std::fs;
use std::io;
use std::os::unix::ffi::OsStrExt;
use std::path::{Component, Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Mutex, MutexGuard, OnceLock};
use std::time::{Duration, Instant, SystemTime};

use globset::{Glob, GlobSet, GlobSetBuilder};
use rayon::prelude::*;

use crate::engine::chunking::chunker::Chunker;
use crate::engine::error::{Error, Result};
use crate::engine::format::id::{BlobId, SnapshotId};
use crate::engine::format::pack::BlobKind;
use crate::engine::format::snapshot::{LinkTable, Snapshot, SnapshotStats, SNAPSHOT_VERSION};
use crate::engine::format::tree::{ChunkRef, Entry, HardlinkKey, NodeKind, Tree};
use crate::engine::localfs::fsat::{self, Stat};
use crate::engine::store::lock;
use crate::engine::store::repo::{BlobReader, Repository};
use crate::engine::store::writer::SharedWriter;
use std::os::fd::OwnedFd;

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

/// Walks the backed-up paths on a pool of threads: the entries of a directory are saved in
/// parallel (files read, chunked, hashed and compressed by the thread that took them), and
/// the shared state below is only touched briefly per entry.
struct Walker<'a, P: Progress> {
    repo: &'a Repository,
    /// Reads the previous snapshot's trees.
    reader: &'a BlobReader,
    writer: SharedWriter<'a>,
    excludes: Excludes,
    one_fs: bool,
    /// The source's inode numbers are not stable: neither record nor compare them.
    ignore_inode: bool,
    stats: Mutex<SnapshotStats>,
    warnings: Mutex<Vec<String>>,
    progress: Mutex<&'a mut P>,
    /// Names seen per hard-linked file.
    links: Mutex<LinkTable>,
    /// The id of the all-zero chunk the chunker cuts from long zero runs (one length for the
    /// repository's parameters): hashed once, not once per chunk of a VM image's free space.
    zero_chunk: OnceLock<ChunkRef>,
    /// Prefetched files held open for their savers now (at most [`PREFETCH_HELD`]).
    held: AtomicUsize,
}

/// How many entries ahead of the one being saved a directory's regular files are prefetched,
/// and how much of each (the whole of a small file, the head of a big one).
const PREFETCH_AHEAD: usize = 8;
const PREFETCH_BYTES: i64 = 256 * 1024;
/// At most this many prefetched files are kept open for their savers at once (the others are
/// closed and opened again), whatever the tree's depth and the pool's splits: the backup's
/// descriptors stay far below the usual limit of 1024.
const PREFETCH_HELD: usize = 32;

thread_local! {
    /// Each worker's chunker buffer, allocated once per thread (zeroing megabytes per small
    /// file would dominate a backup); freed with the backup's thread pool.
    static CHUNK_BUF: RefCell<Vec<u8>> = const { RefCell::new(Vec::new()) };
}

/// Lock a mutex whose holder may have panicked: the data (counters, lists) stays usable.
fn guard<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

/// Metadata common to every kind of entry; `ignore_inode`: do not record the inode number of
/// a single-link file (it is not stable on the source's file system).
fn entry_from_stat(name: &[u8], st: &Stat, ignore_inode: bool) -> Entry {
    let mut e = Entry::new(name.to_vec(), st.kind());
    e.mode = st.mode & 0o7777;
    e.uid = st.uid;
    e.gid = st.gid;
    e.mtime = st.mtime;
    e.ctime = st.ctime;
    if e.kind != NodeKind::Dir {
        e.nlink = st.nlink;
        if st.nlink > 1 {
            e.hardlink = Some(HardlinkKey {
                dev: st.dev,
                ino: st.ino,
            });
        }
        // Hard links keep theirs in the link key whatever `ignore_inode` says (see tree.rs).
        if e.kind == NodeKind::File && (st.nlink > 1 || !ignore_inode) {
            e.ino = st.ino;
        }
    }
    if matches!(e.kind, NodeKind::CharDevice | NodeKind::BlockDevice) {
        e.rdev = st.rdev;
    }
    e
}

/// Whether the file now stat-ed as `st` is the one `prev` recorded, unchanged: same size,
/// mtime and ctime (ctime moves with any write, rename onto it or metadata change, and cannot
/// be set back), and the same inode unless the source's inode numbers are not stable or the
/// previous tree did not record one. A file replaced by another is read again even when a
/// coarse clock gives both the same times. The device is not compared: a source backed up
/// from a fresh btrfs, ZFS or LVM snapshot each time has a new device number every time.
fn looks_unchanged(prev: &Entry, st: &Stat, ignore_inode: bool) -> bool {
    prev.kind == NodeKind::File
        && prev.size == st.size
        && prev.mtime == st.mtime
        && prev.ctime == st.ctime
        && (ignore_inode || prev.ino == 0 || prev.ino == st.ino)
}

/// The previous tree's entry for each of `names`, both sorted by name, in one merge (a tree
/// that is not sorted only gets fewer matches: those files are read again).
fn match_prev<'t>(names: &[(Vec<u8>, bool)], prev: Option<&'t Tree>) -> Vec<Option<&'t Entry>> {
    let Some(tree) = prev else {
        return vec![None; names.len()];
    };
    let mut old = tree.entries.iter().peekable();
    names
        .iter()
        .map(|(name, _)| {
            while old.next_if(|e| e.name < *name).is_some() {}
            old.next_if(|e| e.name == *name)
        })
        .collect()
}

/// An entry as the walk found it: its `lstat`, or the `fstat` of `file` when the prefetch
/// had opened it.
struct Found {
    st: Stat,
    file: Option<fs::File>,
}

/// A directory entry's file as opened by the prefetch, for the thread that saves it.
#[derive(Default)]
enum Opened {
    /// Not opened (yet).
    #[default]
    Not,
    Open(fs::File),
    /// The entry was saved: a prefetch that comes later keeps nothing.
    Taken,
}

fn is_vanished(e: &io::Error) -> bool {
    matches!(
        e.raw_os_error(),
        Some(nix::libc::ENOENT) | Some(nix::libc::ENOTDIR)
    )
}

impl<P: Progress> Walker<'_, P> {
    fn warn(&self, path: &Path, msg: impl std::fmt::Display) {
        let m = format!("{}: {msg}", path.display());
        tracing::warn!("{m}");
        guard(&self.progress).warning(&m);
        guard(&self.warnings).push(m);
    }

    /// The extended attributes of `name` in `dir`, through `opened` if it is open (no path
    /// lookup).
    fn xattrs(
        &self,
        dir: &OwnedFd,
        name: &[u8],
        path: &Path,
        opened: Option<&fs::File>,
    ) -> Vec<(Vec<u8>, Vec<u8>)> {
        let got = match opened {
            Some(f) => fsat::xattrs_fd(f),
            None => fsat::xattrs_at(dir, name),
        };
        match got {
            Ok(x) => x,
            // No xattrs on this file system, or the entry is gone (reported where it matters).
            Err(e) if e.raw_os_error() == Some(nix::libc::EOPNOTSUPP) || is_vanished(&e) => {
                Vec::new()
            }
            Err(e) => {
                self.warn(path, format_args!("cannot read extended attributes: {e}"));
                Vec::new()
            }
        }
    }

    /// Save a file's content; returns the chunk list and bytes read, or `None` when the file
    /// could not be read (a warning). Errors are the repository's and end the backup.
    /// `opened`: the file, already opened by the prefetch, with `st` from its `fstat`.
    fn save_file(
        &self,
        dir: &OwnedFd,
        name: &[u8],
        path: &Path,
        st: &Stat,
        opened: Option<&fs::File>,
    ) -> Result<Option<(Vec<ChunkRef>, u64)>> {
        if let Some(file) = opened {
            return self.read_file(file, path, *st);
        }
        let file = match fsat::open_file_at(dir, name) {
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
        let before = match fsat::stat_fd(&file) {
            Ok(b) if b.kind() == NodeKind::File && b.same_inode(st) => b,
            Ok(_) => {
                self.warn(path, "was replaced while being backed up; skipped");
                return Ok(None);
            }
            Err(e) => {
                self.warn(path, format_args!("cannot stat: {e}"));
                return Ok(None);
            }
        };
        self.read_file(&file, path, before)
    }

    /// Read, chunk and store the open regular file `file`, `fstat`-ed as `before`.
    fn read_file(
        &self,
        file: &fs::File,
        path: &Path,
        before: Stat,
    ) -> Result<Option<(Vec<ChunkRef>, u64)>> {
        let (chunks, read) = match self.chunk_file(file)? {
            Ok(r) => r,
            Err(e) => {
                self.warn(path, format_args!("read error: {e}"));
                return Ok(None);
            }
        };
        guard(&self.stats).bytes_read += read;
        if let Ok(after) = fsat::stat_fd(file) {
            // ctime also moves when the file is linked or unlinked, which leaves the content
            // as read intact: only count it when the link count stayed the same.
            let changed = after.size != before.size
                || after.mtime != before.mtime
                || (after.nlink == before.nlink && after.ctime != before.ctime)
                || read != before.size;
            if changed {
                self.warn(
                    path,
                    "changed while being read; the saved copy may be inconsistent",
                );
            }
        }
        Ok(Some((chunks, read)))
    }

    /// Chunk, hash and store an open file; `Ok(Err(e))` when reading it failed.
    ///
    /// The first chunk is compressed here; later ones (big files) go to idle threads of the
    /// pool, at most one per thread at a time, while this thread reads on: otherwise one big
    /// file would be compressed on one core.
    fn chunk_file(
        &self,
        file: &fs::File,
    ) -> Result<std::result::Result<(Vec<ChunkRef>, u64), io::Error>> {
        let failed: Mutex<Option<Error>> = Mutex::new(None);
        let in_flight = AtomicUsize::new(0);
        let limit = rayon::current_num_threads();
        // The buffer is borrowed inside the scope, so it is released before the scope waits
        // for its tasks (and this thread, while waiting, may run another file's work).
        let res = rayon::in_place_scope(|s| {
            CHUNK_BUF.with_borrow_mut(|buf| {
                let mut chunker = Chunker::new(file, self.repo.config().chunk_sizes, buf);
                let mut chunks = Vec::new();
                let mut read: u64 = 0;
                loop {
                    let (data, zeros) = match chunker.next_chunk() {
                        Ok(Some(c)) => (c.data, c.zeros),
                        Ok(None) => return Ok(Ok((chunks, read))),
                        Err(e) => return Ok(Err(e)),
                    };
                    read += data.len() as u64;
                    let len = data.len() as u32;
                    let id = match self.zero_chunk.get() {
                        Some(z) if zeros && z.len == len => z.id,
                        _ => {
                            let id = self.repo.key().blob_id(data);
                            if zeros {
                                let _ = self.zero_chunk.set(ChunkRef { id, len });
                            }
                            id
                        }
                    };
                    if self.writer.claim(id) {
                        if !chunks.is_empty() && in_flight.load(Ordering::Acquire) < limit {
                            in_flight.fetch_add(1, Ordering::AcqRel);
                            let raw = data.to_vec();
                            let (failed, in_flight) = (&failed, &in_flight);
                            s.spawn(move |_| {
                                if let Err(e) = self.writer.store(id, BlobKind::Data, &raw) {
                                    guard(failed).get_or_insert(e);
                                }
                                in_flight.fetch_sub(1, Ordering::AcqRel);
                            });
                        } else {
                            // A failure to store is the repository's, not this file's: stop
                            // the backup.
                            self.writer.store(id, BlobKind::Data, data)?;
                        }
                    }
                    chunks.push(ChunkRef { id, len });
                }
            })
        });
        match failed.into_inner().unwrap_or_else(|p| p.into_inner()) {
            Some(e) => Err(e),
            None => res,
        }
    }

    /// The previous snapshot's tree of a directory, if it had one and it is readable.
    fn prev_tree(&self, id: Option<BlobId>) -> Option<Tree> {
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

    /// The previous snapshot's chunks of a file that looks unchanged (see [`looks_unchanged`]),
    /// if all still exist.
    fn unchanged_chunks(&self, prev: Option<&Entry>, st: &Stat) -> Option<Vec<ChunkRef>> {
        let p = prev?;
        (looks_unchanged(p, st, self.ignore_inode)
            && p.chunks.iter().all(|c| self.writer.has(&c.id)))
        .then(|| p.chunks.clone())
    }

    /// Build the entry for `name` in `dir` (already lstat-ed as `st`); `None` if it had to be
    /// skipped. `path` is for messages and excludes only; nothing is looked up by it.
    fn save_entry(
        &self,
        dir: &OwnedFd,
        name: &[u8],
        path: &Path,
        found: Found,
        dev: u64,
        prev: Option<&Entry>,
    ) -> Result<Option<Entry>> {
        let Found { st, file: opened } = found;
        let st = &st;
        let mut e = entry_from_stat(name, st, self.ignore_inode);
        match e.kind {
            NodeKind::File => {
                let unchanged = if let Some(chunks) = self.unchanged_chunks(prev, st) {
                    e.chunks = chunks;
                    e.size = st.size;
                    true
                } else {
                    let Some((chunks, read)) =
                        self.save_file(dir, name, path, st, opened.as_ref())?
                    else {
                        return Ok(None);
                    };
                    e.chunks = chunks;
                    e.size = read;
                    false
                };
                {
                    let mut stats = guard(&self.stats);
                    stats.files += 1;
                    stats.files_unchanged += u64::from(unchanged);
                    stats.total_bytes += e.size;
                }
                guard(&self.progress).file_done(path, e.size);
            }
            NodeKind::Dir => {
                let id = if self.one_fs && st.dev != dev {
                    // A mount point: keep the directory itself, not the other filesystem.
                    self.writer.add(BlobKind::Tree, &Tree::default().encode())?
                } else {
                    let sub = match fsat::open_dir_at(dir, name) {
                        Ok(fd) => fd,
                        Err(err) if is_vanished(&err) => {
                            self.warn(path, "vanished before it could be read");
                            return Ok(None);
                        }
                        Err(err) if err.raw_os_error() == Some(nix::libc::ELOOP) => {
                            self.warn(
                                path,
                                "was replaced by a symlink while being backed up; skipped",
                            );
                            return Ok(None);
                        }
                        Err(err) => {
                            self.warn(path, format_args!("cannot list directory: {err}"));
                            return Ok(None);
                        }
                    };
                    match fsat::stat_fd(&sub) {
                        Ok(now) if now.same_inode(st) => {}
                        _ => {
                            self.warn(path, "was replaced while being backed up; skipped");
                            return Ok(None);
                        }
                    }
                    let prev_dir = prev
                        .filter(|p| p.kind == NodeKind::Dir)
                        .and_then(|p| p.subtree);
                    match self.save_dir(&sub, path, dev, prev_dir)? {
                        Some(t) => t,
                        None => return Ok(None),
                    }
                };
                e.subtree = Some(id);
                guard(&self.stats).dirs += 1;
            }
            NodeKind::Symlink => match fsat::readlink_at(dir, name) {
                Ok(t) => {
                    e.target = t;
                    e.size = e.target.len() as u64;
                    guard(&self.stats).others += 1;
                }
                Err(err) if is_vanished(&err) => {
                    self.warn(path, "vanished before it could be read");
                    return Ok(None);
                }
                Err(err) => {
                    self.warn(path, format_args!("cannot read symlink: {err}"));
                    return Ok(None);
                }
            },
            _ => guard(&self.stats).others += 1,
        }
        e.xattrs = match prev {
            // Setting or removing an attribute (an ACL too) moves the ctime, so a file that
            // looks unchanged has its old ones: no `llistxattr` per file of an incremental.
            Some(p) if looks_unchanged(p, st, self.ignore_inode) => p.xattrs.clone(),
            _ => self.xattrs(dir, name, path, opened.as_ref()),
        };
        if let Some(key) = e.hardlink {
            *guard(&self.links).counts.entry(key).or_default() += 1;
        }
        Ok(Some(e))
    }

    /// Save the whole directory open as `dir`; `None` if it could not be listed.
    fn save_dir(
        &self,
        dir: &OwnedFd,
        path: &Path,
        dev: u64,
        prev: Option<BlobId>,
    ) -> Result<Option<BlobId>> {
        let mut names = match fsat::list_dir(dir) {
            Ok(n) => n,
            Err(e) if is_vanished(&e) => {
                self.warn(path, "vanished before it could be read");
                return Ok(None);
            }
            Err(e) => {
                self.warn(path, format_args!("cannot list directory: {e}"));
                return Ok(None);
            }
        };
        names.sort();
        let prev_id = prev;
        let prev = self.prev_tree(prev);
        let prev_at = match_prev(&names, prev.as_ref());
        // Reads of small files from a cold cache wait on the disk one at a time per thread;
        // the files a few places ahead are asked for in the background meanwhile, so the disk
        // has several reads in flight.
        // The prefetch keeps each file it opened for the thread that saves it: one `open` and
        // one `stat` per new file instead of two of each.
        let opened: Vec<Mutex<Opened>> = names.iter().map(|_| Mutex::default()).collect();
        let prefetch = |i: usize| {
            if let (Some((name, true)), Some(None)) = (names.get(i), prev_at.get(i)) {
                // Not files the previous snapshot has (mostly unchanged, so not read) nor
                // excluded ones.
                if !self.excludes.excluded(&path.join(OsStr::from_bytes(name))) {
                    if let Some(f) = fsat::prefetch_at(dir, name, PREFETCH_BYTES) {
                        let mut slot = guard(&opened[i]);
                        if matches!(*slot, Opened::Not) {
                            if self.held.fetch_add(1, Ordering::AcqRel) < PREFETCH_HELD {
                                *slot = Opened::Open(f);
                            } else {
                                self.held.fetch_sub(1, Ordering::AcqRel);
                            }
                        }
                    }
                }
            }
        };
        (0..PREFETCH_AHEAD).for_each(prefetch);
        let saved = names
            .par_iter()
            .enumerate()
            .map(|(i, (name, _))| -> Result<Option<Entry>> {
                prefetch(i + PREFETCH_AHEAD);
                let child = path.join(OsStr::from_bytes(name));
                if self.excludes.excluded(&child) {
                    return Ok(None);
                }
                // What the prefetch opened, if it is still a regular file (else the name is
                // looked at afresh); a late prefetch closes what it opens.
                let pre = match std::mem::replace(&mut *guard(&opened[i]), Opened::Taken) {
                    Opened::Open(f) => {
                        self.held.fetch_sub(1, Ordering::AcqRel);
                        fsat::stat_fd(&f)
                            .ok()
                            .filter(|st| st.kind() == NodeKind::File)
                            .map(|st| Found { st, file: Some(f) })
                    }
                    _ => None,
                };
                let found = match pre {
                    Some(found) => found,
                    None => match fsat::stat_at(dir, name) {
                        Ok(st) => Found { st, file: None },
                        Err(e) if is_vanished(&e) => {
                            self.warn(&child, "vanished before it could be read");
                            return Ok(None);
                        }
                        Err(e) => {
                            self.warn(&child, format_args!("cannot stat: {e}"));
                            return Ok(None);
                        }
                    },
                };
                self.save_entry(dir, name, &child, found, dev, prev_at[i])
            })
            .collect::<Result<Vec<_>>>();
        // Files prefetched for entries never saved (an error ended the listing).
        let left = opened
            .into_iter()
            .map(|o| o.into_inner().unwrap_or_else(|p| p.into_inner()))
            .filter(|o| matches!(o, Opened::Open(_)))
            .count();
        self.held.fetch_sub(left, Ordering::AcqRel);
        let saved = saved?;
        drop(names);
        let tree = Tree {
            entries: saved.into_iter().flatten().collect(),
        };
        // An unchanged directory keeps its tree blob: no encoding, hashing or lookup.
        if let (Some(id), Some(p)) = (prev_id, &prev) {
            if *p == tree && self.writer.has(&id) {
                return Ok(Some(id));
            }
        }
        Ok(Some(self.writer.add(BlobKind::Tree, &tree.encode())?))
    }

    /// Save a directory above (or at) the backed-up paths.
    fn save_spine(
        &self,
        dir: &OwnedFd,
        path: &Path,
        node: &PathNode,
        prev: Option<BlobId>,
    ) -> Result<Tree> {
        let prev = self.prev_tree(prev);
        let mut tree = Tree::default();
        for (name, child) in &node.children {
            let child_path = path.join(OsStr::from_bytes(name));
            let st = fsat::stat_at(dir, name).map_err(|e| Error::io(child_path.display(), e))?;
            let prev_entry = prev.as_ref().and_then(|t| t.get(name));
            let entry = if child.target {
                // A backed-up path that cannot be read at all fails the backup: an empty
                // "partial" snapshot would push good ones out of the points.
                let found = Found { st, file: None };
                let e = self.save_entry(dir, name, &child_path, found, st.dev, prev_entry)?;
                if e.is_none() {
                    // Nothing ran in parallel for an entry that could not be opened at all, so
                    // the newest warning is its own.
                    let why = guard(&self.warnings).last().cloned().unwrap_or_default();
                    return Err(Error::Invalid(format!("{why}; no snapshot was made")));
                }
                e
            } else if st.kind() == NodeKind::Dir {
                let sub_fd =
                    fsat::open_dir_at(dir, name).map_err(|e| Error::io(child_path.display(), e))?;
                let prev_dir = prev_entry
                    .filter(|p| p.kind == NodeKind::Dir)
                    .and_then(|p| p.subtree);
                let sub = self.save_spine(&sub_fd, &child_path, child, prev_dir)?;
                let mut e = entry_from_stat(name, &st, self.ignore_inode);
                e.subtree = Some(self.writer.add(BlobKind::Tree, &sub.encode())?);
                e.xattrs = self.xattrs(dir, name, &child_path, None);
                guard(&self.stats).dirs += 1;
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::engine::format::tree::Timestamp;

    fn stat(ino: u64) -> Stat {
        Stat {
            mode: 0o100644,
            uid: 0,
            gid: 0,
            size: 5,
            mtime: Timestamp { secs: 10, nanos: 1 },
            ctime: Timestamp { secs: 11, nanos: 2 },
            nlink: 1,
            dev: 7,
            ino,
            rdev: 0,
        }
    }

    #[test]
    fn each_name_gets_the_previous_entry_of_that_name() {
        let listed = |n: &[&str]| -> Vec<(Vec<u8>, bool)> {
            n.iter().map(|s| (s.as_bytes().to_vec(), true)).collect()
        };
        let tree = |n: &[&str]| Tree {
            entries: n
                .iter()
                .map(|s| Entry::new(s.as_bytes().to_vec(), NodeKind::File))
                .collect(),
        };
        let found = |names: &[(Vec<u8>, bool)], t: Option<&Tree>| -> Vec<Option<String>> {
            match_prev(names, t)
                .into_iter()
                .map(|e| e.map(|e| String::from_utf8_lossy(&e.name).into_owned()))
                .collect()
        };
        let names = listed(&["a", "c", "d", "f"]);
        let old = tree(&["b", "c", "e", "f", "g"]);
        let want = |v: &[Option<&str>]| -> Vec<Option<String>> {
            v.iter().map(|o| o.map(String::from)).collect()
        };
        assert_eq!(
            found(&names, Some(&old)),
            want(&[None, Some("c"), None, Some("f")])
        );
        assert_eq!(found(&names, None), want(&[None; 4]));
        assert_eq!(found(&[], Some(&old)), want(&[]));
        let all = listed(&["b", "c", "e", "f", "g"]);
        assert_eq!(found(&all, Some(&old)).iter().flatten().count(), 5);
        // A damaged, unsorted tree never gives an entry of another name.
        let unsorted = tree(&["f", "c", "a"]);
        for (name, got) in names.iter().zip(found(&names, Some(&unsorted))) {
            if let Some(g) = got {
                assert_eq!(g.as_bytes(), name.0.as_slice());
            }
        }
    }

    #[test]
    fn an_unchanged_file_is_the_same_size_times_and_inode() {
        let mut was = entry_from_stat(b"f", &stat(40), false);
        assert_eq!(was.ino, 40);
        was.size = 5;
        assert!(looks_unchanged(&was, &stat(40), false));
        // Replaced by another file with the same size and times.
        assert!(!looks_unchanged(&was, &stat(41), false));
        assert!(looks_unchanged(&was, &stat(41), true));
        // A new device number alone (a fresh btrfs or LVM snapshot) is not a change.
        let mut other_dev = stat(40);
        other_dev.dev = 8;
        assert!(looks_unchanged(&was, &other_dev, false));
        let mut written = stat(40);
        written.ctime.nanos += 1;
        assert!(!looks_unchanged(&was, &written, false));
        let mut grown = stat(40);
        grown.size = 6;
        assert!(!looks_unchanged(&was, &grown, true));
        // A version-1 tree recorded no inode: size and times decide.
        was.ino = 0;
        assert!(looks_unchanged(&was, &stat(41), false));
    }

    #[test]
    fn ignore_inode_records_no_inode_except_in_hard_link_keys() {
        assert_eq!(entry_from_stat(b"f", &stat(40), true).ino, 0);
        let mut linked = stat(40);
        linked.nlink = 2;
        let e = entry_from_stat(b"f", &linked, true);
        assert_eq!((e.ino, e.hardlink.map(|h| h.ino)), (40, Some(40)));
        // Directories never carry one.
        let mut dir = stat(40);
        dir.mode = 0o040755;
        assert_eq!(entry_from_stat(b"d", &dir, false).ino, 0);
    }
}

//! Walking the source tree: the [`Walker`] and its shared state, directories saved entry by
//! entry on the backup's thread pool (with a prefetch of the files ahead), and the spine of
//! directories above the backed-up paths.

use std::ffi::OsStr;
use std::fs;
use std::io;
use std::os::unix::ffi::OsStrExt;
use std::path::Path;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Mutex, MutexGuard, OnceLock};

use rayon::prelude::*;

use crate::engine::error::{Error, Result};
use crate::engine::format::id::BlobId;
use crate::engine::format::pack::BlobKind;
use crate::engine::format::snapshot::{LinkTable, SnapshotStats};
use crate::engine::format::tree::{ChunkRef, Entry, HardlinkKey, NodeKind, Tree};
use crate::engine::localfs::fsat::{self, Stat};
use crate::engine::store::repo::{BlobReader, Repository};
use crate::engine::store::writer::SharedWriter;
use std::os::fd::OwnedFd;

use super::excludes::Excludes;
use super::parent::{looks_unchanged, match_prev};
use super::{PathNode, Progress};

/// Walks the backed-up paths on a pool of threads: the entries of a directory are saved in
/// parallel (files read, chunked, hashed and compressed by the thread that took them), and
/// the shared state below is only touched briefly per entry.
pub(super) struct Walker<'a, P: Progress> {
    pub(super) repo: &'a Repository,
    /// Reads the previous snapshot's trees.
    pub(super) reader: &'a BlobReader,
    pub(super) writer: SharedWriter<'a>,
    pub(super) excludes: Excludes,
    pub(super) one_fs: bool,
    /// The source's inode numbers are not stable: neither record nor compare them.
    pub(super) ignore_inode: bool,
    pub(super) stats: Mutex<SnapshotStats>,
    pub(super) warnings: Mutex<Vec<String>>,
    pub(super) progress: Mutex<&'a mut P>,
    /// Names seen per hard-linked file.
    pub(super) links: Mutex<LinkTable>,
    /// The id of the all-zero chunk the chunker cuts from long zero runs (one length for the
    /// repository's parameters): hashed once, not once per chunk of a VM image's free space.
    pub(super) zero_chunk: OnceLock<ChunkRef>,
    /// Prefetched files held open for their savers now (at most [`PREFETCH_HELD`]).
    pub(super) held: AtomicUsize,
}

/// How many entries ahead of the one being saved a directory's regular files are prefetched,
/// and how much of each (the whole of a small file, the head of a big one).
const PREFETCH_AHEAD: usize = 8;
const PREFETCH_BYTES: i64 = 256 * 1024;
/// At most this many prefetched files are kept open for their savers at once (the others are
/// closed and opened again), whatever the tree's depth and the pool's splits: the backup's
/// descriptors stay far below the usual limit of 1024.
const PREFETCH_HELD: usize = 32;

/// Lock a mutex whose holder may have panicked: the data (counters, lists) stays usable.
pub(super) fn guard<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

/// Metadata common to every kind of entry; `ignore_inode`: do not record the inode number of
/// a single-link file (it is not stable on the source's file system).
pub(super) fn entry_from_stat(name: &[u8], st: &Stat, ignore_inode: bool) -> Entry {
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

/// An entry as the walk found it: its `lstat`, or the `fstat` of `file` when the prefetch
/// had opened it.
pub(super) struct Found {
    st: Stat,
    file: Option<fs::File>,
}

/// A directory entry's file as opened by the prefetch, for the thread that saves it.
#[derive(Default)]
pub(super) enum Opened {
    /// Not opened (yet).
    #[default]
    Not,
    Open(fs::File),
    /// The entry was saved: a prefetch that comes later keeps nothing.
    Taken,
}

pub(super) fn is_vanished(e: &io::Error) -> bool {
    matches!(
        e.raw_os_error(),
        Some(nix::libc::ENOENT) | Some(nix::libc::ENOTDIR)
    )
}

impl<P: Progress> Walker<'_, P> {
    pub(super) fn warn(&self, path: &Path, msg: impl std::fmt::Display) {
        let m = format!("{}: {msg}", path.display());
        tracing::warn!("{m}");
        guard(&self.progress).warning(&m);
        guard(&self.warnings).push(m);
    }

    /// The extended attributes of `name` in `dir`, through `opened` if it is open (no path
    /// lookup).
    pub(super) fn xattrs(
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
    /// Build the entry for `name` in `dir` (already lstat-ed as `st`); `None` if it had to be
    /// skipped. `path` is for messages and excludes only; nothing is looked up by it.
    pub(super) fn save_entry(
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
    pub(super) fn save_dir(
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
        // A directory removed while we held it open lists what was left of it, often nothing,
        // without an error: its link count of 0 tells (then whatever it held went with it).
        if fsat::stat_fd(dir).is_ok_and(|st| st.nlink == 0) {
            self.warn(path, "vanished while being read");
        }
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
    pub(super) fn save_spine(
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

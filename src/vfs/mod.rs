//! The read-only view of a repository as one directory tree (docs/LAYOUT.md):
//!
//! ```text
//! /  hourly.0/ … daily.0/ … latest/ snapshots/
//! /daily.0/web1/…   /latest/web1/…   /snapshots/web1/2026-11-21-120000/…
//! ```
//!
//! What the tree looks like is defined here and only here; the FUSE driver and the NFS
//! server are thin adaptors that translate their requests into these calls.
//!
//! Threading: every method takes `&self` and may be called from many threads at once.
//! Caches are behind mutexes held only for map operations, never during I/O.

pub mod acl;
pub mod admission;
pub mod cache;
pub mod error;
pub mod file;
pub mod node;
pub mod state;

use std::collections::BTreeSet;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use lru::LruCache;

use crate::engine::snapshot::{LinkTable, SnapshotEntry};
use crate::engine::tree::{Entry, NodeKind, Timestamp, Tree};
use crate::engine::{BlobId, Repository, SnapshotId};
use crate::points::{PointName, Selector};

pub use error::{VfsError, VfsResult};
pub use file::{OpenFile, Slice};
pub use node::{Node, PointSel};

use cache::{ChunkCache, TreeCache};
use node::{child_ident, snap_root_ident, via_of_point, Ident, Via};
use state::{Shared, State};

/// Settings of a view.
#[derive(Clone, Debug)]
pub struct VfsOptions {
    /// Bytes of decompressed chunks to keep.
    pub cache_bytes: usize,
    /// Bytes of decoded directory trees to keep (estimated).
    pub tree_cache_bytes: usize,
    /// Path of the node to use as the root (e.g. `daily.0/web1`); empty for the whole view.
    pub root: Vec<u8>,
    /// How often to look for new backups, rotations and prunes.
    pub refresh: Duration,
    /// Chunks to fetch ahead of sequential reads. An NFS client such as `nfs-cp` asks for one
    /// range at a time, so only this keeps the disk and the decompression ahead of it: a cold
    /// copy of a 1 GiB image took 1.57–1.78 s with 2, 1.25–1.38 s with 8 (the FUSE kernel's
    /// own read-ahead made no difference there: 0.88–0.95 s either way).
    pub prefetch: usize,
    /// Serve extended attributes (and with them ACLs). Without them a FUSE kernel stops
    /// asking for each file's (`ls -l` asks for `security.selinux` of every entry), and modes
    /// are narrowed to what ACLs allow ([`acl::Acl::narrowed_mode`]).
    pub xattrs: bool,
}

impl Default for VfsOptions {
    fn default() -> Self {
        VfsOptions {
            cache_bytes: 256 << 20,
            tree_cache_bytes: 64 << 20,
            root: Vec::new(),
            refresh: Duration::from_secs(1),
            prefetch: 8,
            xattrs: true,
        }
    }
}

/// Attributes of a node, protocol-neutral.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Attr {
    pub ino: u64,
    pub kind: NodeKind,
    /// Permission bits (`& 0o7777`).
    pub perm: u32,
    pub nlink: u64,
    pub uid: u32,
    pub gid: u32,
    pub size: u64,
    /// 512-byte blocks.
    pub blocks: u64,
    pub atime: Timestamp,
    pub mtime: Timestamp,
    pub ctime: Timestamp,
    pub rdev: u64,
    /// The access ACL the backup recorded, if any (checked by [`acl::permitted`]).
    pub acl: Option<acl::Acl>,
}

/// File-system wide numbers for `statfs`.
#[derive(Clone, Copy, Debug)]
pub struct FsStats {
    /// Bytes stored in the repository.
    pub stored_bytes: u64,
    /// Blobs in the repository.
    pub blobs: u64,
}

/// Where the entries of a directory come from.
#[derive(Clone)]
enum Listing {
    /// Names of virtual directories, with the node each leads to.
    Virtual(Vec<(Vec<u8>, Node)>),
    /// A directory tree inside a snapshot.
    Tree {
        snap: SnapshotId,
        tree_id: BlobId,
        tree: Arc<Tree>,
        ident: Ident,
        via: Via,
    },
}

/// The children of a directory, produced lazily so huge directories page cheaply.
pub struct Dir {
    listing: Listing,
}

impl Dir {
    pub fn len(&self) -> usize {
        match &self.listing {
            Listing::Virtual(v) => v.len(),
            Listing::Tree { tree, .. } => tree.entries.len(),
        }
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The `i`-th child: its name, node and kind.
    pub fn item(&self, i: usize) -> Option<(&[u8], Node, NodeKind)> {
        match &self.listing {
            Listing::Virtual(v) => v
                .get(i)
                .map(|(n, node)| (n.as_slice(), node.clone(), NodeKind::Dir)),
            Listing::Tree {
                snap,
                tree_id,
                tree,
                ident,
                via,
            } => {
                let e = tree.entries.get(i)?;
                let node = Node::Entry {
                    snap: *snap,
                    parent: *tree_id,
                    index: i as u32,
                    ident: child_ident(ident, &e.name, snap, e.hardlink),
                    via: if e.kind == NodeKind::Dir { *via } else { 0 },
                };
                Some((e.name.as_slice(), node, e.kind))
            }
        }
    }

    /// The index of the child called `name`.
    pub fn find(&self, name: &[u8]) -> Option<usize> {
        match &self.listing {
            Listing::Virtual(v) => v.iter().position(|(n, _)| n == name),
            Listing::Tree { tree, .. } => tree
                .entries
                .binary_search_by(|e| e.name.as_slice().cmp(name))
                .ok(),
        }
    }
}

/// The view.
pub struct Vfs {
    shared: Shared,
    trees: TreeCache,
    chunks: Arc<ChunkCache>,
    links: Mutex<LruCache<SnapshotId, Arc<LinkTable>>>,
    root: Node,
    prefetch: usize,
    xattrs: bool,
}

fn virtual_attr(ino: u64, time: Timestamp, subdirs: usize) -> Attr {
    Attr {
        ino,
        kind: NodeKind::Dir,
        perm: 0o555,
        nlink: 2 + subdirs as u64,
        uid: 0,
        gid: 0,
        size: 0,
        blocks: 0,
        atime: time,
        mtime: time,
        ctime: time,
        rdev: 0,
        acl: None,
    }
}

/// Whether a failed read may only mean that the index the view holds is out of date: prune
/// repacked the blob into a new pack and deleted the old one (or dropped the blob). Damaged
/// data is not retried.
fn moved(e: &crate::engine::Error) -> bool {
    e.is_not_found() || matches!(e, crate::engine::Error::MissingBlob(_))
}

fn snap_time(s: &SnapshotEntry) -> Timestamp {
    s.snapshot.timestamp()
}

impl Vfs {
    /// Open a view of `repo`.
    pub fn new(repo: Repository, opts: VfsOptions) -> VfsResult<Self> {
        let mut vfs = Vfs {
            shared: Shared::new(repo, opts.refresh)?,
            trees: TreeCache::new(opts.tree_cache_bytes),
            chunks: Arc::new(ChunkCache::new(opts.cache_bytes)),
            links: Mutex::new(LruCache::new(
                std::num::NonZeroUsize::new(64).unwrap_or(std::num::NonZeroUsize::MIN),
            )),
            root: Node::Root,
            prefetch: opts.prefetch,
            xattrs: opts.xattrs,
        };
        vfs.root = vfs.resolve_root(&opts.root)?;
        Ok(vfs)
    }

    /// The root node of this view.
    pub fn root(&self) -> &Node {
        &self.root
    }

    /// Whether this view serves extended attributes ([`VfsOptions::xattrs`]).
    pub fn serves_xattrs(&self) -> bool {
        self.xattrs
    }

    /// Permission bits and ACL of an entry as this view shows them.
    fn perm_and_acl(&self, e: &Entry) -> (u32, Option<acl::Acl>) {
        let perm = e.mode & 0o7777;
        if e.xattrs.is_empty() {
            return (perm, None);
        }
        let acl = acl::Acl::of(&e.xattrs);
        match &acl {
            Some(a) if !self.xattrs => (a.narrowed_mode(perm), acl),
            _ => (perm, acl),
        }
    }

    fn state(&self) -> Arc<State> {
        self.shared.get()
    }

    /// Run `f` on the current state, and once more on a newer one if it failed on data that
    /// state no longer has: a point still named a snapshot that rotation dropped and prune
    /// removed since, and the failed read has reloaded the state (see [`Vfs::tree`]).
    fn with_state<T>(&self, f: impl Fn(&Arc<State>) -> VfsResult<T>) -> VfsResult<T> {
        let st = self.state();
        match f(&st) {
            Err(VfsError::Engine(e)) if moved(&e) => {
                let now = self.state();
                if Arc::ptr_eq(&st, &now) {
                    return Err(VfsError::Engine(e));
                }
                f(&now)
            }
            r => r,
        }
    }

    /// The mount root for a `--path` such as `daily.0/web1/etc`: a point directory follows
    /// its point, also with a path below it; anything else is walked once.
    fn resolve_root(&self, path: &[u8]) -> VfsResult<Node> {
        let comps: Vec<&[u8]> = path
            .split(|&b| b == b'/')
            .filter(|c| !c.is_empty() && *c != b".")
            .collect();
        if comps.len() >= 2 {
            let first = String::from_utf8_lossy(comps[0]);
            let source = String::from_utf8_lossy(comps[1]).into_owned();
            let sel = if first == "latest" {
                Some(PointSel::Latest)
            } else {
                PointName::parse(&first)
                    .filter(|p| self.state().view.levels.iter().any(|l| l.name == p.level))
                    .map(PointSel::Point)
            };
            if let Some(sel) = sel {
                let node = Node::Point {
                    sel,
                    source,
                    sub: comps[2..].join(&b'/'),
                };
                self.getattr(&node)?;
                return Ok(node);
            }
        }
        let mut node = Node::Root;
        for c in comps {
            node = self.lookup(&node, c)?;
        }
        if self.getattr(&node)?.kind != NodeKind::Dir {
            return Err(VfsError::NotDir);
        }
        Ok(node)
    }

    fn tree(&self, reader: &crate::engine::BlobReader, id: &BlobId) -> VfsResult<Arc<Tree>> {
        if let Some(t) = self.trees.get(id) {
            return Ok(t);
        }
        let t = match reader.read_tree(id) {
            Ok(t) => t,
            Err(e) if moved(&e) => self.shared.reader_after(reader).read_tree(id)?,
            Err(e) => return Err(e.into()),
        };
        let t = Arc::new(t);
        self.trees.insert(*id, t.clone());
        Ok(t)
    }

    /// The tree entry of an `Entry` node.
    fn entry(
        &self,
        st: &State,
        snap: &SnapshotId,
        parent: &BlobId,
        index: u32,
    ) -> VfsResult<Entry> {
        if !st.view.all.iter().any(|s| s.id == *snap) {
            return Err(VfsError::Stale);
        }
        let t = self.tree(&st.reader, parent)?;
        t.entries
            .get(index as usize)
            .cloned()
            .ok_or(VfsError::Stale)
    }

    /// The tree entry behind an `Entry` node; `None` for the other kinds of node.
    fn entry_of(&self, st: &State, node: &Node) -> Option<VfsResult<Entry>> {
        match node {
            Node::Entry {
                snap,
                parent,
                index,
                ..
            } => Some(self.entry(st, snap, parent, *index)),
            _ => None,
        }
    }

    /// The snapshot a point directory shows now.
    fn point_snapshot<'s>(
        &self,
        st: &'s State,
        sel: &PointSel,
        source: &str,
    ) -> VfsResult<&'s SnapshotEntry> {
        let selector = match sel {
            PointSel::Point(p) => Selector::Point {
                point: p.clone(),
                source: source.to_string(),
            },
            PointSel::Latest => Selector::Latest {
                source: source.to_string(),
            },
        };
        st.view.select(&selector).map_err(|_| VfsError::NotFound)
    }

    /// Walk `sub` inside snapshot `s`: returns the directory's tree id, identity and entry
    /// (None for the snapshot root).
    fn walk_sub(
        &self,
        st: &State,
        s: &SnapshotEntry,
        sub: &[u8],
    ) -> VfsResult<(BlobId, Ident, Option<Entry>)> {
        let mut tree_id = s.snapshot.tree;
        let mut ident = snap_root_ident(&s.id);
        let mut entry = None;
        for c in sub.split(|&b| b == b'/').filter(|c| !c.is_empty()) {
            let t = self.tree(&st.reader, &tree_id)?;
            let e = t.get(c).ok_or(VfsError::NotFound)?.clone();
            if e.kind != NodeKind::Dir {
                return Err(VfsError::NotDir);
            }
            ident = child_ident(&ident, c, &s.id, None);
            tree_id = e.subtree.unwrap_or_default();
            entry = Some(e);
        }
        Ok((tree_id, ident, entry))
    }

    fn tree_listing(
        &self,
        st: &State,
        snap: SnapshotId,
        tree_id: BlobId,
        ident: Ident,
        via: Via,
    ) -> VfsResult<Dir> {
        Ok(Dir {
            listing: Listing::Tree {
                snap,
                tree_id,
                tree: self.tree(&st.reader, &tree_id)?,
                ident,
                via,
            },
        })
    }

    /// Point names that exist for some source, in level order.
    fn point_names(st: &State) -> Vec<PointName> {
        let mut names: BTreeSet<(usize, String, usize)> = BTreeSet::new();
        for sv in st.view.sources.values() {
            for (p, id) in sv.catalog.points(&st.view.levels) {
                if sv.by_id(&id).is_some() {
                    let order = st
                        .view
                        .levels
                        .iter()
                        .position(|l| l.name == p.level)
                        .unwrap_or(usize::MAX);
                    names.insert((order, p.level.clone(), p.index));
                }
            }
        }
        names
            .into_iter()
            .map(|(_, level, index)| PointName { level, index })
            .collect()
    }

    /// The children of a directory node.
    pub fn readdir(&self, node: &Node) -> VfsResult<Dir> {
        self.with_state(|st| self.readdir_in(st, node))
    }

    fn readdir_in(&self, st: &Arc<State>, node: &Node) -> VfsResult<Dir> {
        let v = &st.view;
        let virt = |items: Vec<(Vec<u8>, Node)>| {
            Ok(Dir {
                listing: Listing::Virtual(items),
            })
        };
        match node {
            Node::Root => {
                let mut items: Vec<(Vec<u8>, Node)> = Self::point_names(st)
                    .into_iter()
                    .map(|p| (p.to_string().into_bytes(), Node::Level(p)))
                    .collect();
                items.push((b"latest".to_vec(), Node::Latest));
                items.push((b"snapshots".to_vec(), Node::Snapshots));
                virt(items)
            }
            Node::Level(p) => virt(
                v.sources
                    .iter()
                    .filter(|(_, sv)| sv.point(p).is_some())
                    .map(|(name, _)| {
                        (
                            name.as_bytes().to_vec(),
                            Node::Point {
                                sel: PointSel::Point(p.clone()),
                                source: name.clone(),
                                sub: Vec::new(),
                            },
                        )
                    })
                    .collect(),
            ),
            Node::Latest => virt(
                v.sources
                    .iter()
                    .filter(|(_, sv)| sv.latest().is_some())
                    .map(|(name, _)| {
                        (
                            name.as_bytes().to_vec(),
                            Node::Point {
                                sel: PointSel::Latest,
                                source: name.clone(),
                                sub: Vec::new(),
                            },
                        )
                    })
                    .collect(),
            ),
            Node::Snapshots => virt(
                v.sources
                    .iter()
                    .filter(|(_, sv)| !sv.snapshots.is_empty())
                    .map(|(name, _)| (name.as_bytes().to_vec(), Node::SourceDates(name.clone())))
                    .collect(),
            ),
            Node::SourceDates(source) => {
                let sv = v.sources.get(source).ok_or(VfsError::NotFound)?;
                virt(
                    sv.snapshots
                        .iter()
                        .zip(&sv.dated)
                        .map(|(s, d)| (d.as_bytes().to_vec(), Node::SnapRoot(s.id)))
                        .collect(),
                )
            }
            Node::Point { sel, source, sub } => {
                let s = self.point_snapshot(st, sel, source)?;
                let (tree_id, ident, _) = self.walk_sub(st, s, sub)?;
                self.tree_listing(st, s.id, tree_id, ident, via_of_point(sel, source))
            }
            Node::SnapRoot(id) => {
                let s = v.all.iter().find(|s| s.id == *id).ok_or(VfsError::Stale)?;
                self.tree_listing(st, s.id, s.snapshot.tree, snap_root_ident(id), 0)
            }
            Node::Entry {
                snap,
                parent,
                index,
                ident,
                via,
            } => {
                let e = self.entry(st, snap, parent, *index)?;
                if e.kind != NodeKind::Dir {
                    return Err(VfsError::NotDir);
                }
                self.tree_listing(st, *snap, e.subtree.unwrap_or_default(), *ident, *via)
            }
        }
    }

    /// The child `name` of a directory node.
    pub fn lookup(&self, parent: &Node, name: &[u8]) -> VfsResult<Node> {
        let dir = self.readdir(parent)?;
        let i = dir.find(name).ok_or(VfsError::NotFound)?;
        dir.item(i)
            .map(|(_, node, _)| node)
            .ok_or(VfsError::NotFound)
    }

    fn link_count(&self, st: &State, snap: &SnapshotId, e: &Entry) -> u64 {
        let Some(key) = e.hardlink else {
            return 1;
        };
        let table = {
            let mut links = self.links.lock().unwrap_or_else(|p| p.into_inner());
            links.get(snap).cloned()
        };
        let table = match table {
            Some(t) => t,
            None => {
                let loaded = st
                    .view
                    .all
                    .iter()
                    .find(|s| s.id == *snap)
                    .and_then(|s| s.snapshot.links)
                    .and_then(|id| st.reader.read_blob(&id).ok())
                    .and_then(|b| LinkTable::decode(&b, "link table").ok())
                    .unwrap_or_default();
                let t = Arc::new(loaded);
                self.links
                    .lock()
                    .unwrap_or_else(|p| p.into_inner())
                    .put(*snap, t.clone());
                t
            }
        };
        // Older snapshots without a table: the link count seen on the source.
        table.counts.get(&key).copied().unwrap_or(e.nlink)
    }

    fn entry_attr(&self, st: &State, ino: u64, snap: &SnapshotId, e: &Entry) -> VfsResult<Attr> {
        let nlink = if e.kind == NodeKind::Dir {
            let t = self.tree(&st.reader, &e.subtree.unwrap_or_default())?;
            2 + t.entries.iter().filter(|c| c.kind == NodeKind::Dir).count() as u64
        } else {
            self.link_count(st, snap, e)
        };
        let (perm, acl) = self.perm_and_acl(e);
        Ok(Attr {
            ino,
            kind: e.kind,
            perm,
            nlink,
            uid: e.uid,
            gid: e.gid,
            size: e.size,
            blocks: e.size.div_ceil(512),
            atime: e.mtime,
            mtime: e.mtime,
            ctime: e.ctime,
            rdev: e.rdev,
            acl,
        })
    }

    /// Attributes of a node.
    pub fn getattr(&self, node: &Node) -> VfsResult<Attr> {
        self.with_state(|st| self.getattr_in(st, node))
    }

    fn getattr_in(&self, st: &Arc<State>, node: &Node) -> VfsResult<Attr> {
        let ino = node.ino();
        let newest = |it: &mut dyn Iterator<Item = &SnapshotEntry>| {
            it.map(snap_time).max().unwrap_or_default()
        };
        match node {
            Node::Root | Node::Latest | Node::Snapshots | Node::Level(_) | Node::SourceDates(_) => {
                let dir = self.readdir(node)?;
                let v = &st.view;
                let time = match node {
                    Node::Level(p) => newest(&mut v.sources.values().filter_map(|sv| sv.point(p))),
                    Node::SourceDates(s) => newest(
                        &mut v
                            .sources
                            .get(s)
                            .into_iter()
                            .flat_map(|sv| sv.snapshots.iter()),
                    ),
                    _ => newest(&mut v.all.iter()),
                };
                Ok(virtual_attr(ino, time.max(st.changed), dir.len()))
            }
            Node::Point { sel, source, sub } => {
                let s = self.point_snapshot(st, sel, source)?;
                let (tree_id, _, entry) = self.walk_sub(st, s, sub)?;
                let t = self.tree(&st.reader, &tree_id)?;
                let subdirs = t.entries.iter().filter(|c| c.kind == NodeKind::Dir).count();
                // The point's times are its snapshot's: they change exactly when it moves.
                let time = snap_time(s);
                let mut a = virtual_attr(ino, time, subdirs);
                a.perm = 0o755;
                if let Some(e) = entry {
                    (a.perm, a.acl) = self.perm_and_acl(&e);
                    a.uid = e.uid;
                    a.gid = e.gid;
                }
                Ok(a)
            }
            Node::SnapRoot(id) => {
                let s = st
                    .view
                    .all
                    .iter()
                    .find(|s| s.id == *id)
                    .ok_or(VfsError::Stale)?;
                let t = self.tree(&st.reader, &s.snapshot.tree)?;
                let subdirs = t.entries.iter().filter(|c| c.kind == NodeKind::Dir).count();
                let mut a = virtual_attr(ino, snap_time(s), subdirs);
                a.perm = 0o755;
                Ok(a)
            }
            Node::Entry {
                snap,
                parent,
                index,
                ..
            } => {
                let e = self.entry(st, snap, parent, *index)?;
                self.entry_attr(st, ino, snap, &e)
            }
        }
    }

    /// The target of a symlink.
    pub fn readlink(&self, node: &Node) -> VfsResult<Vec<u8>> {
        let e = self
            .entry_of(&self.state(), node)
            .ok_or(VfsError::Invalid)??;
        if e.kind != NodeKind::Symlink {
            return Err(VfsError::Invalid);
        }
        Ok(e.target)
    }

    /// Extended attributes of a node (virtual nodes have none).
    pub fn xattrs(&self, node: &Node) -> VfsResult<Vec<(Vec<u8>, Vec<u8>)>> {
        self.with_state(|st| self.xattrs_in(st, node))
    }

    fn xattrs_in(&self, st: &Arc<State>, node: &Node) -> VfsResult<Vec<(Vec<u8>, Vec<u8>)>> {
        if !self.xattrs {
            return Ok(Vec::new());
        }
        if let Some(e) = self.entry_of(st, node) {
            return Ok(e?.xattrs);
        }
        match node {
            Node::Point { sel, source, sub } if !sub.is_empty() => {
                let s = self.point_snapshot(st, sel, source)?;
                Ok(self
                    .walk_sub(st, s, sub)?
                    .2
                    .map(|e| e.xattrs)
                    .unwrap_or_default())
            }
            _ => Ok(Vec::new()),
        }
    }

    /// Open a regular file for reading: it keeps reading this snapshot's content whatever
    /// happens to the points afterwards.
    pub fn open(&self, node: &Node) -> VfsResult<Arc<OpenFile>> {
        let e = self
            .entry_of(&self.state(), node)
            .ok_or(VfsError::IsDir)??;
        match e.kind {
            NodeKind::File => Ok(Arc::new(OpenFile::new(e.chunks, e.size))),
            NodeKind::Dir => Err(VfsError::IsDir),
            _ => Err(VfsError::Invalid),
        }
    }

    /// Read up to `size` bytes at `offset` of an open file.
    pub fn read(&self, f: &OpenFile, offset: u64, size: u32) -> VfsResult<Vec<u8>> {
        f.read(self, offset, size)
    }

    /// As [`Vfs::read`], as slices of cached chunks (for replies sent without a copy).
    pub fn read_slices(&self, f: &OpenFile, offset: u64, size: u32) -> VfsResult<Vec<Slice>> {
        f.read_slices(self, offset, size)
    }

    /// A chunk, from the cache or read; `request` counts it as wanted again (see
    /// [`ChunkCache::get_or_wait`]).
    fn chunk(&self, c: &crate::engine::tree::ChunkRef, request: bool) -> VfsResult<Arc<Vec<u8>>> {
        if let Some(d) = self.chunks.get_or_wait(&c.id, request) {
            return Ok(d);
        }
        let st = self.state();
        let data = match st.reader.read_chunk(c) {
            Ok(d) => d,
            Err(e) if moved(&e) => self.shared.reader_after(&st.reader).read_chunk(c)?,
            Err(e) => return Err(e.into()),
        };
        let data = Arc::new(data);
        self.chunks.insert(c.id, data.clone());
        Ok(data)
    }

    /// Fetch chunks in the background so a sequential reader finds them decompressed.
    fn prefetch(&self, chunks: &[crate::engine::tree::ChunkRef]) {
        for c in chunks.iter().take(self.prefetch) {
            if !self.chunks.start_fetch(c.id) {
                continue;
            }
            let cache = self.chunks.clone();
            let reader = self.state().reader.clone();
            let c = *c;
            rayon::spawn(move || {
                match reader.read_chunk(&c) {
                    Ok(d) => cache.insert(c.id, Arc::new(d)),
                    Err(e) => tracing::debug!("prefetch of {} failed: {e}", c.id.short()),
                }
                cache.end_fetch(&c.id);
            });
        }
    }

    /// Find a node again from [`Node::encode`]'s bytes. `Invalid` for malformed bytes,
    /// `Stale` for a node whose snapshot (or virtual directory) no longer exists.
    pub fn decode_node(&self, bytes: &[u8]) -> VfsResult<Node> {
        let st = self.state();
        match node::parse_encoded(bytes).ok_or(VfsError::Invalid)? {
            node::Encoded::Virtual(ident) => self
                .virtual_nodes(&st)
                .into_iter()
                .find(|n| n.ident() == ident)
                .ok_or(VfsError::Stale),
            node::Encoded::SnapRoot(prefix) => st
                .view
                .all
                .iter()
                .find(|s| s.id.0.starts_with(prefix))
                .map(|s| Node::SnapRoot(s.id))
                .ok_or(VfsError::Stale),
            node::Encoded::Entry {
                snap,
                parent,
                index,
                ident,
                via,
            } => {
                let snap = st
                    .view
                    .all
                    .iter()
                    .find(|s| s.id.0.starts_with(snap))
                    .ok_or(VfsError::Stale)?
                    .id;
                let parent = st.reader.index.find_prefix(parent).ok_or(VfsError::Stale)?;
                Ok(Node::Entry {
                    snap,
                    parent,
                    index,
                    ident,
                    via,
                })
            }
        }
    }

    /// Every virtual directory and point directory of the current view.
    fn virtual_nodes(&self, st: &State) -> Vec<Node> {
        let mut out = vec![Node::Root, Node::Latest, Node::Snapshots];
        for p in Self::point_names(st) {
            out.push(Node::Level(p));
        }
        for (name, sv) in &st.view.sources {
            out.push(Node::SourceDates(name.clone()));
            out.push(Node::Point {
                sel: PointSel::Latest,
                source: name.clone(),
                sub: Vec::new(),
            });
            for (p, _) in sv.catalog.points(&st.view.levels) {
                out.push(Node::Point {
                    sel: PointSel::Point(p),
                    source: name.clone(),
                    sub: Vec::new(),
                });
            }
        }
        out
    }

    /// Sizes for `statfs`.
    pub fn statfs(&self) -> FsStats {
        let st = self.state();
        FsStats {
            stored_bytes: st.reader.index.stored_bytes(),
            blobs: st.reader.index.len() as u64,
        }
    }

    /// The repository this view shows.
    pub fn repository(&self) -> &Repository {
        &self.shared.repo
    }
}

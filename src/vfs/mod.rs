//! The read-only view of a repository as one directory tree (docs/LAYOUT.md):
//!
//! ```text
//! /  hourly.0/ … daily.0/ … latest/ snapshots/
//! /daily.0/web1/…   /latest/web1/…   /snapshots/web1/2026-11-21-120000/…
//! ```
//!
//! What the tree looks like is defined here and only here; the FUSE driver and the NFS
//! server are thin adaptors that translate their requests into these calls. The files:
//! `layout` (names and the one path parser), `node` (what a node is, its number and its
//! handle bytes), `dir` (listings and paging by cookie), `attr` (attributes, xattrs,
//! symlinks), `read` (open files and their cache, chunk reads, read-ahead), `find` (nodes
//! from handle bytes, parents), `state` (the repository as last loaded, refreshed in the
//! background).
//!
//! Threading: every method takes `&self` and may be called from many threads at once.
//! Caches are behind mutexes held only for map operations, never during I/O.

pub(crate) mod acl;
pub(crate) mod admission;
mod attr;
pub(crate) mod cache;
mod dir;
pub(crate) mod error;
pub(crate) mod file;
mod find;
pub mod layout;
pub(crate) mod node;
mod read;
pub(crate) mod state;

use std::num::NonZeroUsize;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use lru::LruCache;

use crate::engine::format::snapshot::{LinkTable, SnapshotEntry};
use crate::engine::format::tree::{Entry, NodeKind, Tree};
use crate::engine::{BlobId, Repository, SnapshotId};
use crate::points::Selector;

pub use attr::{Attr, FsStats};
pub use dir::{Dir, DirEntry};
pub use error::{VfsError, VfsResult};
pub use file::{OpenFile, Slice};
pub use node::Node;

use cache::{ChunkCache, TreeCache};
use layout::Place;
use node::{child_ident, snap_root_ident, via_of_point, Ident};
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
    /// How often to look for new backups, rotations and prunes (in the background).
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

/// Files whose chunk lists are kept between reads, for both adaptors: FUSE reads by inode
/// without opens, NFS READ has no open at all, so sequential reads of one file share one
/// [`OpenFile`] (and its read-ahead) through this cache. One is rebuilt from the cached tree
/// when needed again.
const OPEN_FILES: usize = 256;
/// Paths of directories below points that were handed out in handles, so a handle finds its
/// directory again without a search (see [`find`]).
const PATH_MEMO: usize = 1 << 16;
/// Directories found by path in a snapshot ([`Vfs::walk`]): every request on a directory
/// below a point finds it by its path, so this keeps those requests from walking down from
/// the snapshot's root each time (`nfs-ls -R` of a point: server CPU 1.6 s without it).
const WALKS: usize = 1 << 16;

fn lru<K: std::hash::Hash + Eq, V>(n: usize) -> Mutex<LruCache<K, V>> {
    Mutex::new(LruCache::new(
        NonZeroUsize::new(n).unwrap_or(NonZeroUsize::MIN),
    ))
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

/// The view.
pub struct Vfs {
    shared: Arc<Shared>,
    trees: TreeCache,
    chunks: Arc<ChunkCache>,
    links: Mutex<LruCache<SnapshotId, Arc<LinkTable>>>,
    /// Open files by (snapshot, directory tree, index): see [`OPEN_FILES`].
    open: Mutex<LruCache<(SnapshotId, BlobId, u32), Arc<OpenFile>>>,
    /// Directory identity → its path below its point directory: see [`PATH_MEMO`].
    paths: Mutex<LruCache<Ident, Vec<u8>>>,
    /// Directory identities a search did not find in a snapshot, so a client that keeps
    /// using a handle of a removed directory costs one search, not one per call.
    missing: Mutex<LruCache<(Ident, SnapshotId), ()>>,
    /// See [`WALKS`].
    walks: Mutex<LruCache<WalkKey, Arc<Walked>>>,
    root: Node,
    prefetch: usize,
    xattrs: bool,
}

/// Whether a failed read may only mean that the index the view holds is out of date: prune
/// repacked the blob into a new pack and deleted the old one (or dropped the blob). Damaged
/// data is not retried.
fn moved(e: &crate::engine::Error) -> bool {
    e.is_not_found() || matches!(e, crate::engine::Error::MissingBlob(_))
}

/// `a/b` → `a`, `a` → ``.
fn parent_path(p: &[u8]) -> &[u8] {
    p.iter()
        .rposition(|&b| b == b'/')
        .map_or(&p[..0], |i| &p[..i])
}

/// `a/b` from `a` and `b` (`b` alone when `a` is empty).
fn join(a: &[u8], b: &[u8]) -> Vec<u8> {
    let mut p = Vec::with_capacity(a.len() + 1 + b.len());
    if !a.is_empty() {
        p.extend_from_slice(a);
        p.push(b'/');
    }
    p.extend_from_slice(b);
    p
}

/// A directory path (`a/b`) in a snapshot.
type WalkKey = (SnapshotId, Vec<u8>);

/// A directory found by a path inside a snapshot.
struct Walked {
    tree: BlobId,
    /// Its identity in the snapshot (the chain of names from the snapshot's root).
    ident: Ident,
    /// Its entry and where that sits (parent tree, index); `None` for the snapshot's root.
    entry: Option<(Entry, BlobId, u32)>,
}

impl Vfs {
    /// Open a view of `repo`. It refreshes itself in the background every
    /// [`VfsOptions::refresh`] for as long as it lives.
    pub fn new(repo: Repository, opts: VfsOptions) -> VfsResult<Self> {
        let mut vfs = Vfs {
            shared: Shared::start(repo, opts.refresh)?,
            trees: TreeCache::new(opts.tree_cache_bytes),
            chunks: Arc::new(ChunkCache::new(opts.cache_bytes)),
            links: lru(64),
            open: lru(OPEN_FILES),
            paths: lru(PATH_MEMO),
            missing: lru(4096),
            walks: lru(WALKS),
            root: Node::Root,
            prefetch: opts.prefetch,
            xattrs: opts.xattrs,
        };
        vfs.root = vfs.resolve(&opts.root)?;
        if vfs.getattr(&vfs.root)?.kind != NodeKind::Dir {
            return Err(VfsError::NotDir);
        }
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

    /// The repository this view shows.
    pub fn repository(&self) -> &Repository {
        &self.shared.repo
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

    /// The node a path of the view leads to (`daily.0/web1/etc`, `latest/web1`,
    /// `snapshots/web1/DATE/…`, an id prefix, or a virtual directory such as `/daily.0`): the
    /// one resolver behind FUSE's `--path` and NFS MNT. Below a point or `latest` the node
    /// follows the name across rotations (a [`Node::Point`] for a directory).
    pub fn resolve(&self, path: &[u8]) -> VfsResult<Node> {
        let st = self.state();
        let place = layout::parse(path, &st.view.levels).map_err(|_| VfsError::NotFound)?;
        let (start, inner) = match place {
            Place::Root => (Node::Root, Vec::new()),
            Place::Level(p) => (Node::Level(p), Vec::new()),
            Place::Latest => (Node::Latest, Vec::new()),
            Place::Snapshots => (Node::Snapshots, Vec::new()),
            Place::SourceDates(s) => (Node::SourceDates(s), Vec::new()),
            Place::In { sel, inner } if sel.moves() => (
                Node::Point {
                    sel,
                    sub: Vec::new(),
                },
                inner,
            ),
            Place::In { sel, inner } => {
                let s = st.view.select(&sel).map_err(|_| VfsError::NotFound)?;
                (Node::SnapRoot(s.id), inner)
            }
        };
        // Virtual directories must exist now (`/daily.9` with no such point does not).
        self.getattr(&start)?;
        let mut node = start;
        for c in inner.split(|&b| b == b'/').filter(|c| !c.is_empty()) {
            node = self.lookup(&node, c)?;
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

    /// The tree entry behind an `Entry` node, or of a directory below a point; `None` for the
    /// other kinds of node.
    fn entry_of(&self, st: &State, node: &Node) -> Option<VfsResult<Entry>> {
        match node {
            Node::Entry {
                snap,
                parent,
                index,
                ..
            } => Some(self.entry(st, snap, parent, *index)),
            Node::Point { sel, sub } if !sub.is_empty() => Some(
                self.point_snapshot(st, sel)
                    .and_then(|s| self.walk(st, s, sub))
                    .and_then(|w| {
                        w.entry
                            .as_ref()
                            .map(|(e, _, _)| e.clone())
                            .ok_or(VfsError::NotFound)
                    }),
            ),
            _ => None,
        }
    }

    /// The snapshot a point directory shows now.
    fn point_snapshot<'s>(&self, st: &'s State, sel: &Selector) -> VfsResult<&'s SnapshotEntry> {
        st.view.select(sel).map_err(|_| VfsError::NotFound)
    }

    /// Walk the directory path `sub` (`a/b`, no empty components) inside snapshot `s`. What a
    /// path is in a snapshot never changes, so walks are remembered ([`WALKS`]); a new one
    /// starts from its parent's, so every walk is one step.
    fn walk(&self, st: &State, s: &SnapshotEntry, sub: &[u8]) -> VfsResult<Arc<Walked>> {
        if sub.is_empty() {
            return Ok(Arc::new(Walked {
                tree: s.snapshot.tree,
                ident: snap_root_ident(&s.id),
                entry: None,
            }));
        }
        let key = (s.id, sub.to_vec());
        if let Some(w) = lock(&self.walks).get(&key) {
            return Ok(w.clone());
        }
        let up = self.walk(st, s, parent_path(sub))?;
        let name = sub.rsplit(|&b| b == b'/').next().unwrap_or(sub);
        let t = self.tree(&st.reader, &up.tree)?;
        let i = t
            .entries
            .binary_search_by(|e| e.name.as_slice().cmp(name))
            .map_err(|_| VfsError::NotFound)?;
        let e = t.entries[i].clone();
        if e.kind != NodeKind::Dir {
            return Err(VfsError::NotDir);
        }
        let w = Arc::new(Walked {
            tree: e.subtree.unwrap_or_default(),
            ident: child_ident(&up.ident, name, &s.id, None),
            entry: Some((e, up.tree, i as u32)),
        });
        lock(&self.walks).put(key, w.clone());
        Ok(w)
    }

    /// The child `name` of a directory node.
    pub fn lookup(&self, parent: &Node, name: &[u8]) -> VfsResult<Node> {
        let dir = self.readdir(parent)?;
        let i = dir.find(name).ok_or(VfsError::NotFound)?;
        dir.item(i)
            .map(|(_, node, _)| node)
            .ok_or(VfsError::NotFound)
    }

    /// The same directory as `node`, pinned to the snapshot it shows now: for a directory
    /// below a point, the directory of today's snapshot (reached through that point), which
    /// never changes; any other node is returned as it is.
    ///
    /// The FUSE adaptor pins what it hands the kernel below its root: the kernel caches an
    /// inode's attributes and listing for as long as it likes and asks a name again only when
    /// its parent's short timeout runs out, so a pinned inode stays right, and a name under a
    /// point leads to the new snapshot's inode within a second of a rotation. NFS clients keep
    /// handles for days instead, so NFS hands out the following node itself.
    pub fn pin(&self, node: &Node) -> VfsResult<Node> {
        let Node::Point { sel, sub } = node else {
            return Ok(node.clone());
        };
        if sub.is_empty() {
            return Ok(node.clone());
        }
        self.with_state(|st| {
            let s = self.point_snapshot(st, sel)?;
            let w = self.walk(st, s, sub)?;
            let (_, parent, index) = w.entry.as_ref().ok_or(VfsError::NotFound)?;
            Ok(Node::Entry {
                snap: s.id,
                parent: *parent,
                index: *index,
                ident: w.ident,
                via: via_of_point(sel),
            })
        })
    }

    /// Bytes from which [`Vfs::decode_node`] finds `node` again, also in another process
    /// (see [`Node::encode`]); remembers the path of a directory below a point, so decoding
    /// its handle needs no search.
    pub fn encode_node(&self, node: &Node) -> Vec<u8> {
        if let Node::Point { sub, .. } = node {
            if !sub.is_empty() {
                lock(&self.paths).put(node.ident(), sub.clone());
            }
        }
        node.encode()
    }
}

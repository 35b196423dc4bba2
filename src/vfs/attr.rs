//! Attributes of nodes, extended attributes, symlink targets and file-system numbers.

use std::sync::Arc;

use crate::engine::format::snapshot::{LinkTable, SnapshotEntry};
use crate::engine::format::tree::{Entry, NodeKind, Timestamp};
use crate::engine::SnapshotId;

use super::state::State;
use super::{acl, lock, Node, Vfs, VfsError, VfsResult};

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

fn snap_time(s: &SnapshotEntry) -> Timestamp {
    s.snapshot.timestamp()
}

impl Vfs {
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

    fn link_count(&self, st: &State, snap: &SnapshotId, e: &Entry) -> u64 {
        let Some(key) = e.hardlink else {
            return 1;
        };
        let table = lock(&self.links).get(snap).cloned();
        let table = match table {
            Some(t) => t,
            None => {
                let loaded = st
                    .snapshot(snap)
                    .and_then(|s| s.snapshot.links)
                    .and_then(|id| st.reader.read_blob(&id).ok())
                    .and_then(|b| LinkTable::decode(&b, "link table").ok())
                    .unwrap_or_default();
                let t = Arc::new(loaded);
                lock(&self.links).put(*snap, t.clone());
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
            Node::Point { sel, sub } => {
                let s = self.point_snapshot(st, sel)?;
                let w = self.walk(st, s, sub)?;
                let t = self.tree(&st.reader, &w.tree)?;
                let subdirs = t.entries.iter().filter(|c| c.kind == NodeKind::Dir).count();
                // A directory that follows a point has its snapshot's times, at every depth:
                // they change exactly when the point moves, which is what tells a client's
                // cache (the FUSE kernel's and an NFS client's compare mtimes) that the
                // listing it holds is another snapshot's now. The directory's own times are
                // under snapshots/SOURCE/DATE/… (docs/LAYOUT.md).
                let mut a = virtual_attr(ino, snap_time(s), subdirs);
                a.perm = 0o755;
                if let Some((e, _, _)) = &w.entry {
                    (a.perm, a.acl) = self.perm_and_acl(e);
                    a.uid = e.uid;
                    a.gid = e.gid;
                }
                Ok(a)
            }
            Node::SnapRoot(id) => {
                let s = st.snapshot(id).ok_or(VfsError::Stale)?;
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
        match self.entry_of(st, node) {
            Some(e) => Ok(e?.xattrs),
            None => Ok(Vec::new()),
        }
    }

    /// Sizes for `statfs`.
    pub fn statfs(&self) -> FsStats {
        let st = self.state();
        FsStats {
            stored_bytes: st.reader.index.stored_bytes(),
            blobs: st.reader.index.len() as u64,
        }
    }
}

//! Finding nodes again: from the bytes of a handle (in another process, days and rotations
//! later), and a directory's parent (NFS `LOOKUP ..`).
//!
//! A directory below a point is known by its path, which does not fit in an NFS handle; its
//! handle holds the identities of the point directory and of the path instead
//! ([`super::node::Encoded::PointDir`]). The path comes back from a memo filled when the
//! handle was made ([`Vfs::encode_node`]), or, after a restart, from a search of the point's
//! directories for that identity.

use std::collections::VecDeque;

use crate::engine::format::tree::NodeKind;
use crate::engine::{BlobId, SnapshotId};
use crate::points::Selector;

use super::node::{self, child_ident, snap_root_ident, Ident};
use super::state::State;
use super::{join, lock, parent_path, Node, Vfs, VfsError, VfsResult};

/// Most directories one search for a handle's path visits; a tree with more below the point
/// finds the rest only through the memo (its handles were made by this process).
const SEARCH_LIMIT: usize = 200_000;

impl Vfs {
    /// Find a node again from [`Vfs::encode_node`]'s bytes. `Invalid` for malformed bytes,
    /// `Stale` for a node whose snapshot (or virtual directory, or path below a point) no
    /// longer exists.
    pub fn decode_node(&self, bytes: &[u8]) -> VfsResult<Node> {
        let st = self.state();
        match node::parse_encoded(bytes).ok_or(VfsError::Invalid)? {
            node::Encoded::Virtual(ident) => self.virtual_node(&st, &ident).ok_or(VfsError::Stale),
            node::Encoded::PointDir { root, dir } => {
                let Some(Node::Point { sel, .. }) = self.virtual_node(&st, &root) else {
                    return Err(VfsError::Stale);
                };
                self.point_dir(&st, sel, dir)
            }
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

    /// The directory below the point `sel` whose identity is `dir`, in the snapshot the point
    /// names now; `Stale` when that snapshot has no such directory.
    fn point_dir(&self, st: &State, sel: Selector, dir: Ident) -> VfsResult<Node> {
        let snap = self.point_snapshot(st, &sel).map_err(|_| VfsError::Stale)?;
        let remembered = lock(&self.paths).get(&dir).cloned();
        if let Some(sub) = remembered {
            let node = Node::Point { sel, sub };
            if node.ident() == dir {
                return match self.walk(st, snap, node_sub(&node)) {
                    Ok(_) => Ok(node),
                    Err(VfsError::NotFound | VfsError::NotDir) => Err(VfsError::Stale),
                    Err(e) => Err(e),
                };
            }
            return Err(VfsError::Stale);
        }
        if lock(&self.missing).get(&(dir, snap.id)).is_some() {
            return Err(VfsError::Stale);
        }
        let found = self.search(st, snap.snapshot.tree, |path| {
            Node::Point {
                sel: sel.clone(),
                sub: path.to_vec(),
            }
            .ident()
                == dir
        })?;
        match found {
            Some(sub) => {
                lock(&self.paths).put(dir, sub.clone());
                Ok(Node::Point { sel, sub })
            }
            None => {
                lock(&self.missing).put((dir, snap.id), ());
                Err(VfsError::Stale)
            }
        }
    }

    /// Breadth first through the directories below `root` (at most [`SEARCH_LIMIT`]) for the
    /// path that `is` says is the one; the snapshot's root itself is path "".
    fn search(
        &self,
        st: &State,
        root: BlobId,
        mut is: impl FnMut(&[u8]) -> bool,
    ) -> VfsResult<Option<Vec<u8>>> {
        let mut queue = VecDeque::from([(Vec::new(), root)]);
        let mut visited = 0;
        while let Some((path, tree)) = queue.pop_front() {
            if is(&path) {
                return Ok(Some(path));
            }
            visited += 1;
            if visited > SEARCH_LIMIT {
                tracing::warn!("gave up looking for a directory after {SEARCH_LIMIT} directories");
                return Ok(None);
            }
            let t = self.tree(&st.reader, &tree)?;
            for e in t.entries.iter().filter(|e| e.kind == NodeKind::Dir) {
                queue.push_back((join(&path, &e.name), e.subtree.unwrap_or_default()));
            }
        }
        Ok(None)
    }

    /// The parent directory of a directory node, and its path in the view (the root is its
    /// own parent): the node's path without its last name, found by the one resolver. Nodes
    /// pinned through a point (FUSE's, see [`Vfs::pin`]) have none here: the kernel keeps
    /// their parents itself.
    pub fn parent(&self, node: &Node) -> VfsResult<(Node, Vec<u8>)> {
        if let Node::Entry {
            snap,
            parent,
            index,
            ..
        } = node
        {
            if self.entry(&self.state(), snap, parent, *index)?.kind != NodeKind::Dir {
                return Err(VfsError::NotDir);
            }
        }
        let path = self.path_of(node)?;
        let up = match parent_path(&path) {
            b"" => b"/".to_vec(),
            p => p.to_vec(),
        };
        Ok((self.resolve(&up)?, up))
    }

    /// The path of the directory with identity `ident` in snapshot `snap` (found by a
    /// search: trees do not point up, and `..` is rare).
    fn entry_path(&self, st: &State, snap: SnapshotId, ident: Ident) -> VfsResult<Vec<u8>> {
        let s = st.snapshot(&snap).ok_or(VfsError::Stale)?;
        self.search(st, s.snapshot.tree, |p| path_ident(&snap, p) == ident)?
            .ok_or(VfsError::Stale)
    }

    /// The path of a directory node in the view, `/`-led (`/daily.0/web1/etc`); what NFS
    /// checks against its exports. Nodes pinned through a point (FUSE's) have none.
    pub fn path_of(&self, node: &Node) -> VfsResult<Vec<u8>> {
        let st = self.state();
        let dated = |id: &SnapshotId| -> VfsResult<Vec<u8>> {
            let s = st.snapshot(id).ok_or(VfsError::Stale)?;
            let source = &s.snapshot.source;
            let name = st
                .view
                .sources
                .get(source)
                .and_then(|sv| sv.dated_name_of(id))
                .ok_or(VfsError::Stale)?;
            Ok(format!("/{}/{source}/{name}", super::layout::SNAPSHOTS).into_bytes())
        };
        Ok(match node {
            Node::Root => b"/".to_vec(),
            Node::Level(p) => format!("/{p}").into_bytes(),
            Node::Latest => format!("/{}", super::layout::LATEST).into_bytes(),
            Node::Snapshots => format!("/{}", super::layout::SNAPSHOTS).into_bytes(),
            Node::SourceDates(s) => format!("/{}/{s}", super::layout::SNAPSHOTS).into_bytes(),
            Node::Point { sel, sub } => {
                let top = format!("/{}/{}", sel.top(), sel.source().unwrap_or_default());
                join(top.as_bytes(), sub)
            }
            Node::SnapRoot(id) => dated(id)?,
            Node::Entry {
                snap, ident, via, ..
            } => {
                if *via != 0 {
                    return Err(VfsError::Invalid);
                }
                let path = self.entry_path(&st, *snap, *ident)?;
                join(&dated(snap)?, &path)
            }
        })
    }
}

fn node_sub(n: &Node) -> &[u8] {
    match n {
        Node::Point { sub, .. } => sub,
        _ => b"",
    }
}

/// The identity of the directory at `path` in `snap`, as listings give it.
fn path_ident(snap: &SnapshotId, path: &[u8]) -> Ident {
    path.split(|&b| b == b'/')
        .filter(|c| !c.is_empty())
        .fold(snap_root_ident(snap), |id, c| {
            child_ident(&id, c, snap, None)
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parent_paths() {
        assert_eq!(parent_path(b"a/b/c"), b"a/b");
        assert_eq!(parent_path(b"a"), b"");
        assert_eq!(parent_path(b""), b"");
    }
}

//! Directory listings, and paging through them by cookie for both adaptors.

use std::collections::BTreeSet;
use std::sync::Arc;

use crate::engine::format::tree::{NodeKind, Tree};
use crate::engine::{BlobId, SnapshotId};
use crate::points::{PointName, Selector};

use super::node::{child_ident, snap_root_ident, Ident, Via};
use super::state::State;
use super::{join, Node, Vfs, VfsError, VfsResult};

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
        /// How child directories are reached: following a point (path `sub` below it), or
        /// pinned to this snapshot (through the point `via`, 0 for none).
        children: Children,
    },
}

#[derive(Clone)]
enum Children {
    Follow { sel: Selector, sub: Vec<u8> },
    Pinned(Via),
}

/// The children of a directory, produced lazily so huge directories page cheaply.
pub struct Dir {
    this: Node,
    listing: Listing,
}

/// One entry of a listing read from a cookie: `cookie` is where the next read goes on.
pub struct DirEntry<'a> {
    pub cookie: u64,
    pub name: &'a [u8],
    /// For `.` and `..`, the directory itself (a listing does not look up its parent).
    pub node: Node,
    pub kind: NodeKind,
    /// Whether this is `.` or `..`.
    pub dot: bool,
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
                children,
            } => {
                let e = tree.entries.get(i)?;
                let node = match children {
                    Children::Follow { sel, sub } if e.kind == NodeKind::Dir => Node::Point {
                        sel: sel.clone(),
                        sub: join(sub, &e.name),
                    },
                    _ => Node::Entry {
                        snap: *snap,
                        parent: *tree_id,
                        index: i as u32,
                        ident: child_ident(ident, &e.name, snap, e.hardlink),
                        via: match children {
                            Children::Pinned(via) if e.kind == NodeKind::Dir => *via,
                            _ => 0,
                        },
                    },
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

    /// Names this listing as it is: it changes when the entries do (a tree listing is its
    /// tree's id, which hashes the entries; a virtual one hashes its names and nodes), so a
    /// cookie handed out with another verifier is a position in another listing. Never zero.
    pub fn verifier(&self) -> [u8; 8] {
        let mut v = [0u8; 8];
        match &self.listing {
            Listing::Tree { tree_id, .. } => v.copy_from_slice(&tree_id.0[..8]),
            Listing::Virtual(items) => {
                let mut h = blake3::Hasher::new();
                for (name, node) in items {
                    h.update(&(name.len() as u64).to_le_bytes());
                    h.update(name);
                    h.update(&node.ident());
                }
                v.copy_from_slice(&h.finalize().as_bytes()[..8]);
            }
        }
        if v == [0; 8] {
            v[7] = 1;
        }
        v
    }

    /// The cookie just past the last entry; a larger one was never handed out.
    pub fn end_cookie(&self) -> u64 {
        self.len() as u64 + 2
    }

    /// The entries from `cookie` on, `.` and `..` first. Cookies are positions: 1 and 2
    /// follow `.` and `..`, child `i` is followed by `i + 3`, so a listing read in pages of
    /// any size lists every entry exactly once.
    pub fn entries_from(&self, cookie: u64) -> impl Iterator<Item = DirEntry<'_>> + '_ {
        let dots = (cookie.min(2)..2).map(|pos| DirEntry {
            cookie: pos + 1,
            name: if pos == 0 { b"." } else { b".." },
            node: self.this.clone(),
            kind: NodeKind::Dir,
            dot: true,
        });
        let first = usize::try_from(cookie.max(2) - 2).unwrap_or(usize::MAX);
        let children = (first..).map_while(move |i| {
            self.item(i).map(|(name, node, kind)| DirEntry {
                cookie: i as u64 + 3,
                name,
                node,
                kind,
                dot: false,
            })
        });
        dots.chain(children)
    }
}

impl Vfs {
    fn tree_listing(
        &self,
        st: &State,
        this: &Node,
        snap: SnapshotId,
        tree_id: BlobId,
        ident: Ident,
        children: Children,
    ) -> VfsResult<Dir> {
        Ok(Dir {
            this: this.clone(),
            listing: Listing::Tree {
                snap,
                tree_id,
                tree: self.tree(&st.reader, &tree_id)?,
                ident,
                children,
            },
        })
    }

    /// Point names that exist for some source, in level order.
    pub(super) fn point_names(st: &State) -> Vec<PointName> {
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
                this: node.clone(),
                listing: Listing::Virtual(items),
            })
        };
        let point = |sel: Selector| Node::Point {
            sel,
            sub: Vec::new(),
        };
        match node {
            Node::Root => {
                let mut items: Vec<(Vec<u8>, Node)> = Self::point_names(st)
                    .into_iter()
                    .map(|p| (p.to_string().into_bytes(), Node::Level(p)))
                    .collect();
                items.push((super::layout::LATEST.as_bytes().to_vec(), Node::Latest));
                items.push((
                    super::layout::SNAPSHOTS.as_bytes().to_vec(),
                    Node::Snapshots,
                ));
                virt(items)
            }
            Node::Level(p) => virt(
                v.sources
                    .iter()
                    .filter(|(_, sv)| sv.point(p).is_some())
                    .map(|(name, _)| {
                        let sel = Selector::Point {
                            point: p.clone(),
                            source: name.clone(),
                        };
                        (name.as_bytes().to_vec(), point(sel))
                    })
                    .collect(),
            ),
            Node::Latest => virt(
                v.sources
                    .iter()
                    .filter(|(_, sv)| sv.latest().is_some())
                    .map(|(name, _)| {
                        let sel = Selector::Latest {
                            source: name.clone(),
                        };
                        (name.as_bytes().to_vec(), point(sel))
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
            Node::Point { sel, sub } => {
                let s = self.point_snapshot(st, sel)?;
                let w = self.walk(st, s, sub)?;
                let children = Children::Follow {
                    sel: sel.clone(),
                    sub: sub.clone(),
                };
                self.tree_listing(st, node, s.id, w.tree, w.ident, children)
            }
            Node::SnapRoot(id) => {
                let s = st.snapshot(id).ok_or(VfsError::Stale)?;
                let root = snap_root_ident(id);
                let children = Children::Pinned(0);
                self.tree_listing(st, node, s.id, s.snapshot.tree, root, children)
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
                let tree = e.subtree.unwrap_or_default();
                self.tree_listing(st, node, *snap, tree, *ident, Children::Pinned(*via))
            }
        }
    }

    /// The virtual directory or point directory with identity `ident` in the state `st`.
    pub(super) fn virtual_node(&self, st: &State, ident: &Ident) -> Option<Node> {
        st.virtuals
            .get_or_init(|| {
                self.virtual_nodes(st)
                    .into_iter()
                    .map(|n| (n.ident(), n))
                    .collect()
            })
            .get(ident)
            .cloned()
    }

    /// Every virtual directory and point directory of the current view.
    fn virtual_nodes(&self, st: &State) -> Vec<Node> {
        let mut out = vec![Node::Root, Node::Latest, Node::Snapshots];
        for p in Self::point_names(st) {
            out.push(Node::Level(p));
        }
        for (name, sv) in &st.view.sources {
            out.push(Node::SourceDates(name.clone()));
            let mut sels = vec![Selector::Latest {
                source: name.clone(),
            }];
            for (p, _) in sv.catalog.points(&st.view.levels) {
                sels.push(Selector::Point {
                    point: p,
                    source: name.clone(),
                });
            }
            out.extend(sels.into_iter().map(|sel| Node::Point {
                sel,
                sub: Vec::new(),
            }));
        }
        out
    }
}

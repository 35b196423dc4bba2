//! Differences between two snapshot trees. Subtrees with the same tree id are equal and are
//! skipped without being read, so diffing two nearly equal snapshots reads little.

use crate::engine::error::Result;
use crate::engine::format::id::BlobId;
use crate::engine::format::tree::{Entry, NodeKind, Tree};
use crate::engine::lookup::Node;
use crate::engine::store::repo::BlobReader;

/// How an entry differs.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Change {
    /// Only in the second tree.
    Added,
    /// Only in the first tree.
    Removed,
    /// Content (or type, or symlink target, or device number) differs.
    Modified,
    /// Same content; mode, owner, mtime or extended attributes differ.
    Metadata,
}

impl Change {
    /// One letter for plain output.
    pub fn letter(self) -> char {
        match self {
            Change::Added => '+',
            Change::Removed => '-',
            Change::Modified => 'M',
            Change::Metadata => 'U',
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            Change::Added => "added",
            Change::Removed => "removed",
            Change::Modified => "modified",
            Change::Metadata => "metadata",
        }
    }
}

/// One difference: what changed at which path (relative to the compared roots, `/`-led).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Difference {
    pub change: Change,
    pub path: Vec<u8>,
    pub kind: NodeKind,
}

fn join(base: &[u8], name: &[u8]) -> Vec<u8> {
    let mut p = base.to_vec();
    p.push(b'/');
    p.extend_from_slice(name);
    p
}

/// Whether the non-content attributes differ. Directory times are left out: they change
/// whenever an entry is added or removed, which the entries themselves already report.
fn metadata_differs(a: &Entry, b: &Entry) -> bool {
    a.mode != b.mode
        || a.uid != b.uid
        || a.gid != b.gid
        || a.xattrs != b.xattrs
        || (a.kind != NodeKind::Dir && a.mtime != b.mtime)
}

fn content_differs(a: &Entry, b: &Entry) -> bool {
    a.kind != b.kind
        || match a.kind {
            NodeKind::File => a.chunks != b.chunks,
            NodeKind::Symlink => a.target != b.target,
            NodeKind::CharDevice | NodeKind::BlockDevice => a.rdev != b.rdev,
            _ => false,
        }
}

struct Differ<'a> {
    reader: &'a BlobReader,
    out: Vec<Difference>,
}

impl Differ<'_> {
    /// Report `e` and, for a directory, everything below it.
    fn whole(&mut self, change: Change, e: &Entry, path: Vec<u8>) -> Result<()> {
        if e.kind == NodeKind::Dir {
            self.out.push(Difference {
                change,
                path: path.clone(),
                kind: e.kind,
            });
            let t = self.reader.read_tree(&e.subtree.unwrap_or_default())?;
            for c in &t.entries {
                self.whole(change, c, join(&path, &c.name))?;
            }
            return Ok(());
        }
        self.out.push(Difference {
            change,
            path,
            kind: e.kind,
        });
        Ok(())
    }

    fn entries(&mut self, a: &Entry, b: &Entry, path: Vec<u8>) -> Result<()> {
        if content_differs(a, b) {
            if a.kind != b.kind && (a.kind == NodeKind::Dir || b.kind == NodeKind::Dir) {
                self.whole(Change::Removed, a, path.clone())?;
                return self.whole(Change::Added, b, path);
            }
            self.out.push(Difference {
                change: Change::Modified,
                path,
                kind: b.kind,
            });
            return Ok(());
        }
        if metadata_differs(a, b) {
            self.out.push(Difference {
                change: Change::Metadata,
                path: path.clone(),
                kind: b.kind,
            });
        }
        if a.kind == NodeKind::Dir {
            self.trees(
                a.subtree.unwrap_or_default(),
                b.subtree.unwrap_or_default(),
                &path,
            )?;
        }
        Ok(())
    }

    fn trees(&mut self, a: BlobId, b: BlobId, path: &[u8]) -> Result<()> {
        if a == b {
            return Ok(());
        }
        let ta: Tree = self.reader.read_tree(&a)?;
        let tb: Tree = self.reader.read_tree(&b)?;
        let (mut i, mut j) = (0, 0);
        while i < ta.entries.len() || j < tb.entries.len() {
            let ea = ta.entries.get(i);
            let eb = tb.entries.get(j);
            match (ea, eb) {
                (Some(x), Some(y)) if x.name == y.name => {
                    self.entries(x, y, join(path, &x.name))?;
                    i += 1;
                    j += 1;
                }
                (Some(x), Some(y)) if x.name < y.name => {
                    self.whole(Change::Removed, x, join(path, &x.name))?;
                    i += 1;
                }
                (Some(x), None) => {
                    self.whole(Change::Removed, x, join(path, &x.name))?;
                    i += 1;
                }
                (_, Some(y)) => {
                    self.whole(Change::Added, y, join(path, &y.name))?;
                    j += 1;
                }
                (None, None) => break,
            }
        }
        Ok(())
    }
}

/// The differences from `a` to `b`, in path order.
pub fn diff(reader: &BlobReader, a: &Node, b: &Node) -> Result<Vec<Difference>> {
    let mut d = Differ {
        reader,
        out: Vec::new(),
    };
    match (a, b) {
        (Node::Root(x), Node::Root(y)) => d.trees(*x, *y, b"")?,
        (Node::Root(x), Node::Entry(e)) | (Node::Entry(e), Node::Root(x))
            if e.kind == NodeKind::Dir =>
        {
            let (ta, tb) = if matches!(a, Node::Root(_)) {
                (*x, e.subtree.unwrap_or_default())
            } else {
                (e.subtree.unwrap_or_default(), *x)
            };
            d.trees(ta, tb, b"")?
        }
        (Node::Entry(x), Node::Entry(y)) if x.kind == NodeKind::Dir && y.kind == NodeKind::Dir => d
            .trees(
                x.subtree.unwrap_or_default(),
                y.subtree.unwrap_or_default(),
                b"",
            )?,
        (Node::Entry(x), Node::Entry(y)) => d.entries(x, y, Vec::new())?,
        _ => {
            return Err(super::Error::Invalid(
                "cannot compare a directory with a file".into(),
            ))
        }
    }
    Ok(d.out)
}

//! Resolving a path inside a snapshot.

use crate::engine::error::{Error, Result};
use crate::engine::format::id::BlobId;
use crate::engine::format::tree::{Entry, NodeKind, Tree};
use crate::engine::store::repo::BlobReader;

/// What a path inside a snapshot names.
#[derive(Clone, Debug)]
pub enum Node {
    /// The snapshot root (a tree without an entry of its own).
    Root(BlobId),
    /// An entry of some directory.
    Entry(Entry),
}

/// Find `path` (slash-separated raw bytes, relative to the snapshot root) in the tree `root`.
pub fn lookup(reader: &BlobReader, root: BlobId, path: &[u8]) -> Result<Node> {
    let mut node = Node::Root(root);
    let mut walked: Vec<u8> = Vec::new();
    for comp in path
        .split(|&b| b == b'/')
        .filter(|c| !c.is_empty() && *c != b".")
    {
        let tree_id = match &node {
            Node::Root(id) => *id,
            Node::Entry(e) if e.kind == NodeKind::Dir => e.subtree.unwrap_or_default(),
            Node::Entry(_) => {
                return Err(Error::NotFound(format!(
                    "{}: not a directory",
                    String::from_utf8_lossy(&walked)
                )))
            }
        };
        let tree: Tree = reader.read_tree(&tree_id)?;
        if !walked.is_empty() {
            walked.push(b'/');
        }
        walked.extend_from_slice(comp);
        let entry = tree.get(comp).cloned().ok_or_else(|| {
            Error::NotFound(format!(
                "{}: no such file or directory in the snapshot",
                String::from_utf8_lossy(&walked)
            ))
        })?;
        node = Node::Entry(entry);
    }
    Ok(node)
}

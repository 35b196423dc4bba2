//! What each inode of the view is, and how its number is derived.
//!
//! Numbers are hashes of a node's identity, so they are the same in every mount and after a
//! restart: virtual directories hash their path, a point directory hashes (source, point), a
//! snapshot root hashes its snapshot id, and an entry inside a snapshot hashes its parent's
//! identity and its name (so the path within the snapshot) — or, for hard-linked files,
//! (snapshot, device, inode), so all names of one file are one inode.
//!
//! One snapshot directory can be reached through several parents (`snapshots/web1/DATE/etc`,
//! `latest/web1/etc`, `daily.0/web1/etc`), but a kernel — FUSE's dentry cache as much as an
//! NFS client's — gives a directory inode (an NFS directory handle) one parent: with one
//! number for all of them, `..` of an open directory and a shell's working directory would
//! jump to whichever parent was looked up last, another and moving view, and `find`, `du` and
//! `pwd -P` would fail or lie. So a directory below a point directory carries the point it is
//! reached through ([`Via`]), which is mixed into its number and kept in its NFS handle;
//! below a dated snapshot it has none. Files keep one number everywhere, like hard links.

use crate::engine::format::tree::HardlinkKey;
use crate::engine::{BlobId, SnapshotId};
use crate::points::{PointName, Selector};

/// An 8-byte node identity: the inode number's bytes.
pub type Ident = [u8; 8];

/// The point directory a directory inside a snapshot is reached through (a hash of the point;
/// never 0), or 0 below a dated snapshot; always 0 for anything but a directory.
pub type Via = u32;

/// A node of the view.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum Node {
    /// `/`
    Root,
    /// `/daily.0`: the sources that have this point.
    Level(PointName),
    /// `/latest`
    Latest,
    /// `/snapshots`
    Snapshots,
    /// `/snapshots/web1`: every snapshot of a source by dated name.
    SourceDates(String),
    /// `/daily.0/web1` (or `/latest/web1`) and every directory below it: the directory at path
    /// `sub` (empty for the point directory itself) of whatever snapshot `sel` names *now*. It
    /// follows the point across rotations: an NFS handle or a mount root of
    /// `daily.0/web1/etc` shows the new snapshot's `etc` after a rotation. `sel` is always a
    /// moving name ([`Selector::moves`]).
    Point { sel: Selector, sub: Vec<u8> },
    /// `/snapshots/web1/2026-11-21-120000`: a snapshot's root, immutable.
    SnapRoot(SnapshotId),
    /// An entry inside a snapshot: entry `index` of directory tree `parent`, reached through
    /// the point `via` (directories only; see the module documentation).
    Entry {
        snap: SnapshotId,
        parent: BlobId,
        index: u32,
        ident: Ident,
        via: Via,
    },
}

fn hash(parts: &[&[u8]]) -> Ident {
    let mut h = blake3::Hasher::new();
    for p in parts {
        h.update(&(p.len() as u64).to_le_bytes());
        h.update(p);
    }
    let mut out = [0u8; 8];
    out.copy_from_slice(&h.finalize().as_bytes()[..8]);
    out
}

/// The inode number of an identity; never 0 or 1 (1 is the mount root in FUSE).
pub fn ino_of(ident: &Ident) -> u64 {
    let n = u64::from_le_bytes(*ident);
    if n < 2 {
        n + 2
    } else {
        n
    }
}

/// What the directories below the point directory of `sel` are reached through.
pub fn via_of_point(sel: &Selector) -> Via {
    let source = sel.source().unwrap_or_default();
    let h = hash(&[b"via", sel.top().as_bytes(), source.as_bytes()]);
    // 0 means "no point"; a point hashing to 0 takes 1 instead.
    u32::from_le_bytes([h[0], h[1], h[2], h[3]]).max(1)
}

/// Identity of a snapshot's root directory.
pub fn snap_root_ident(snap: &SnapshotId) -> Ident {
    hash(&[b"snap", &snap.0])
}

/// Identity of the entry `name` in the directory with identity `parent`.
pub fn child_ident(
    parent: &Ident,
    name: &[u8],
    snap: &SnapshotId,
    link: Option<HardlinkKey>,
) -> Ident {
    match link {
        Some(k) => hash(&[b"link", &snap.0, &k.dev.to_le_bytes(), &k.ino.to_le_bytes()]),
        None => hash(&[b"child", parent, name]),
    }
}

/// Tags of the byte encoding of nodes.
const TAG_VIRTUAL: u8 = 1;
const TAG_SNAP_ROOT: u8 = 2;
const TAG_ENTRY: u8 = 3;
const TAG_ENTRY_VIA: u8 = 4;
const TAG_POINT_DIR: u8 = 5;

/// Longest encoding of a node, in bytes.
pub const MAX_ENCODED: usize = 41;

impl Node {
    /// A compact, stable encoding (at most [`MAX_ENCODED`] bytes) from which
    /// [`crate::vfs::Vfs::decode_node`] finds the node again, also in another process: virtual
    /// nodes by identity, snapshot roots by id prefix, entries by snapshot and directory tree
    /// id prefixes, position and identity (and the point, for a directory reached through
    /// one). A directory below a point directory is encoded by the identities of the point
    /// directory and of itself (a hash of its path), so it finds the same path again in
    /// whatever snapshot the point names later (see `Vfs::decode_node`).
    pub fn encode(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(MAX_ENCODED);
        match self {
            Node::Point { sel, sub } if !sub.is_empty() => {
                out.push(TAG_POINT_DIR);
                out.extend_from_slice(&point_root_ident(sel));
                out.extend_from_slice(&self.ident());
            }
            Node::SnapRoot(id) => {
                out.push(TAG_SNAP_ROOT);
                out.extend_from_slice(&id.0[..16]);
            }
            Node::Entry {
                snap,
                parent,
                index,
                ident,
                via,
            } => {
                out.push(if *via == 0 { TAG_ENTRY } else { TAG_ENTRY_VIA });
                out.extend_from_slice(&snap.0[..8]);
                out.extend_from_slice(&parent.0[..16]);
                out.extend_from_slice(&index.to_be_bytes());
                out.extend_from_slice(ident);
                if *via != 0 {
                    out.extend_from_slice(&via.to_be_bytes());
                }
            }
            _ => {
                out.push(TAG_VIRTUAL);
                out.extend_from_slice(&self.ident());
            }
        }
        out
    }
}

/// The identity of the point directory of `sel` (`/daily.0/web1`).
pub fn point_root_ident(sel: &Selector) -> Ident {
    Node::Point {
        sel: sel.clone(),
        sub: Vec::new(),
    }
    .ident()
}

/// A node encoding taken apart (resolution needs the repository; see `Vfs::decode_node`).
pub enum Encoded<'a> {
    Virtual(Ident),
    /// A directory below the point directory `root`, with identity `dir`.
    PointDir {
        root: Ident,
        dir: Ident,
    },
    SnapRoot(&'a [u8]),
    Entry {
        snap: &'a [u8],
        parent: &'a [u8],
        index: u32,
        ident: Ident,
        via: Via,
    },
}

/// Split an encoding into its parts; `None` if it is malformed.
pub fn parse_encoded(b: &[u8]) -> Option<Encoded<'_>> {
    match (b.first()?, b.len()) {
        (&TAG_VIRTUAL, 9) => Some(Encoded::Virtual(b[1..9].try_into().ok()?)),
        (&TAG_SNAP_ROOT, 17) => Some(Encoded::SnapRoot(&b[1..17])),
        (&TAG_POINT_DIR, 17) => Some(Encoded::PointDir {
            root: b[1..9].try_into().ok()?,
            dir: b[9..17].try_into().ok()?,
        }),
        (&TAG_ENTRY, 37) | (&TAG_ENTRY_VIA, 41) => {
            let via = match b.get(37..41) {
                Some(v) => u32::from_be_bytes(v.try_into().ok()?),
                None => 0,
            };
            // A point is never 0: a via encoding naming none is not one of ours.
            if b[0] == TAG_ENTRY_VIA && via == 0 {
                return None;
            }
            Some(Encoded::Entry {
                snap: &b[1..9],
                parent: &b[9..25],
                index: u32::from_be_bytes(b[25..29].try_into().ok()?),
                ident: b[29..37].try_into().ok()?,
                via,
            })
        }
        _ => None,
    }
}

impl Node {
    /// The identity of this node.
    pub fn ident(&self) -> Ident {
        match self {
            Node::Root => hash(&[b"root"]),
            Node::Level(p) => hash(&[b"level", p.to_string().as_bytes()]),
            Node::Latest => hash(&[b"latest"]),
            Node::Snapshots => hash(&[b"snapshots"]),
            Node::SourceDates(s) => hash(&[b"dates", s.as_bytes()]),
            Node::Point { sel, sub } => hash(&[
                b"point",
                sel.top().as_bytes(),
                sel.source().unwrap_or_default().as_bytes(),
                sub,
            ]),
            Node::SnapRoot(s) => snap_root_ident(s),
            Node::Entry { ident, .. } => *ident,
        }
    }

    /// The inode number: the identity's, mixed with the point for a directory reached
    /// through one.
    pub fn ino(&self) -> u64 {
        match self {
            Node::Entry { ident, via, .. } if *via != 0 => {
                ino_of(&hash(&[b"dir-via-point", ident, &via.to_le_bytes()]))
            }
            _ => ino_of(&self.ident()),
        }
    }

    /// Whether what this node shows can change (virtual directories and point directories);
    /// everything inside a snapshot is immutable.
    pub fn is_volatile(&self) -> bool {
        !matches!(self, Node::SnapRoot(_) | Node::Entry { .. })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(via: Via) -> Node {
        Node::Entry {
            snap: SnapshotId([1; 32]),
            parent: BlobId([2; 32]),
            index: 7,
            ident: [3; 8],
            via,
        }
    }

    #[test]
    fn a_directory_through_a_point_encodes_the_point_and_has_its_own_number() {
        let plain = entry(0).encode();
        let via = entry(0xdead_beef).encode();
        assert_eq!(plain.len(), 37);
        assert_eq!(via.len(), MAX_ENCODED);
        for (b, want) in [(&plain, 0), (&via, 0xdead_beef)] {
            match parse_encoded(b) {
                Some(Encoded::Entry {
                    index, ident, via, ..
                }) => assert_eq!((index, ident, via), (7, [3; 8], want)),
                _ => panic!("{b:?} did not parse"),
            }
        }
        assert_ne!(entry(0).ino(), entry(0xdead_beef).ino());
        assert_ne!(entry(1).ino(), entry(2).ino());
        // A via encoding that names no point is not one of ours.
        let mut zero = via.clone();
        zero[37..].copy_from_slice(&[0; 4]);
        assert!(parse_encoded(&zero).is_none());
        assert!(parse_encoded(&via[..40]).is_none());
    }

    #[test]
    fn points_have_distinct_nonzero_vias() {
        let p = |s: &str, source: &str| Selector::Point {
            point: PointName::parse(s).unwrap(),
            source: source.into(),
        };
        let all = [
            via_of_point(&p("daily.0", "web1")),
            via_of_point(&p("daily.1", "web1")),
            via_of_point(&p("daily.0", "db1")),
            via_of_point(&Selector::Latest {
                source: "web1".into(),
            }),
        ];
        for (i, a) in all.iter().enumerate() {
            assert_ne!(*a, 0);
            assert!(all[i + 1..].iter().all(|b| b != a), "{all:?}");
        }
    }
}

#[cfg(test)]
mod point_dirs {
    use super::*;

    #[test]
    fn a_directory_below_a_point_encodes_its_point_and_path_identity() {
        let sel = Selector::Point {
            point: PointName::parse("daily.0").unwrap(),
            source: "web1".into(),
        };
        let etc = Node::Point {
            sel: sel.clone(),
            sub: b"etc".to_vec(),
        };
        let b = etc.encode();
        assert!(b.len() <= MAX_ENCODED);
        match parse_encoded(&b) {
            Some(Encoded::PointDir { root, dir }) => {
                assert_eq!(root, point_root_ident(&sel));
                assert_eq!(dir, etc.ident());
            }
            _ => panic!("{b:?} did not parse as a point directory"),
        }
        let other = Node::Point {
            sel,
            sub: b"etc/nginx".to_vec(),
        };
        assert_ne!(other.ident(), etc.ident());
        assert!(parse_encoded(&b[..16]).is_none());
    }
}

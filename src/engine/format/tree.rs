//! Trees: one blob per directory listing its entries, sorted by raw name bytes.
//! Encoding: docs/FORMAT.md, "Tree blobs".

use super::codec::{Decoder, Encoder};
use super::id::BlobId;
use crate::engine::error::{Error, Result};

/// Version byte written at the start of every tree blob (2 records files' inode numbers).
pub const TREE_VERSION: u8 = 2;
/// The oldest tree version still read (version 1: no inode numbers of single-link files).
pub const TREE_VERSION_MIN: u8 = 1;

/// The type of a directory entry.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum NodeKind {
    File,
    Dir,
    Symlink,
    Fifo,
    Socket,
    CharDevice,
    BlockDevice,
}

impl NodeKind {
    pub fn code(self) -> u8 {
        match self {
            NodeKind::File => 0,
            NodeKind::Dir => 1,
            NodeKind::Symlink => 2,
            NodeKind::Fifo => 3,
            NodeKind::Socket => 4,
            NodeKind::CharDevice => 5,
            NodeKind::BlockDevice => 6,
        }
    }
    pub fn from_code(c: u8) -> Option<Self> {
        Some(match c {
            0 => NodeKind::File,
            1 => NodeKind::Dir,
            2 => NodeKind::Symlink,
            3 => NodeKind::Fifo,
            4 => NodeKind::Socket,
            5 => NodeKind::CharDevice,
            6 => NodeKind::BlockDevice,
            _ => return None,
        })
    }
    /// The `S_IFMT` bits of this kind.
    pub fn format_bits(self) -> u32 {
        match self {
            NodeKind::File => 0o100000,
            NodeKind::Dir => 0o040000,
            NodeKind::Symlink => 0o120000,
            NodeKind::Fifo => 0o010000,
            NodeKind::Socket => 0o140000,
            NodeKind::CharDevice => 0o020000,
            NodeKind::BlockDevice => 0o060000,
        }
    }
    /// One letter as in `ls -l`.
    pub fn letter(self) -> char {
        match self {
            NodeKind::File => '-',
            NodeKind::Dir => 'd',
            NodeKind::Symlink => 'l',
            NodeKind::Fifo => 'p',
            NodeKind::Socket => 's',
            NodeKind::CharDevice => 'c',
            NodeKind::BlockDevice => 'b',
        }
    }
}

/// Seconds and nanoseconds since the Unix epoch.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Timestamp {
    pub secs: i64,
    pub nanos: u32,
}

/// A piece of a file's content.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct ChunkRef {
    pub id: BlobId,
    pub len: u32,
}

/// Identity of a file among its hard links: (device, inode) on the source host.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct HardlinkKey {
    pub dev: u64,
    pub ino: u64,
}

/// One directory entry.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Entry {
    /// Raw name bytes (not necessarily UTF-8).
    pub name: Vec<u8>,
    pub kind: NodeKind,
    /// Permission bits (`st_mode & 0o7777`).
    pub mode: u32,
    pub uid: u32,
    pub gid: u32,
    pub size: u64,
    pub mtime: Timestamp,
    pub ctime: Timestamp,
    /// Link count on the source (non-directories).
    pub nlink: u64,
    /// Set when `nlink > 1`, so links can be rejoined.
    pub hardlink: Option<HardlinkKey>,
    /// A regular file's inode number on the source, telling a file that was replaced apart
    /// from one that was not; 0 when not recorded (version-1 trees, `ignore_inode` sources).
    pub ino: u64,
    /// Device number for character and block devices.
    pub rdev: u64,
    /// Symlink target bytes.
    pub target: Vec<u8>,
    /// Extended attributes, sorted by name.
    pub xattrs: Vec<(Vec<u8>, Vec<u8>)>,
    /// Content of a regular file.
    pub chunks: Vec<ChunkRef>,
    /// Tree of a directory.
    pub subtree: Option<BlobId>,
}

impl Entry {
    /// An entry with the given name and kind and everything else empty.
    pub fn new(name: Vec<u8>, kind: NodeKind) -> Self {
        Entry {
            name,
            kind,
            mode: 0,
            uid: 0,
            gid: 0,
            size: 0,
            mtime: Timestamp::default(),
            ctime: Timestamp::default(),
            nlink: 1,
            hardlink: None,
            ino: 0,
            rdev: 0,
            target: Vec::new(),
            xattrs: Vec::new(),
            chunks: Vec::new(),
            subtree: None,
        }
    }

    /// Full `st_mode` (type and permission bits).
    pub fn st_mode(&self) -> u32 {
        self.kind.format_bits() | (self.mode & 0o7777)
    }

    /// Name for display (lossy UTF-8).
    pub fn display_name(&self) -> String {
        String::from_utf8_lossy(&self.name).into_owned()
    }
}

/// A directory's entries, sorted by name.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Tree {
    pub entries: Vec<Entry>,
}

/// Whether `name` may appear in a tree: non-empty, not `.`/`..`, no `/` or NUL.
pub fn valid_name(name: &[u8]) -> bool {
    !name.is_empty() && name != b"." && name != b".." && !name.iter().any(|&b| b == b'/' || b == 0)
}

impl Tree {
    /// Find an entry by name.
    pub fn get(&self, name: &[u8]) -> Option<&Entry> {
        self.entries
            .binary_search_by(|e| e.name.as_slice().cmp(name))
            .ok()
            .map(|i| &self.entries[i])
    }

    /// Sort entries by name (call before encoding).
    pub fn sort(&mut self) {
        self.entries.sort_by(|a, b| a.name.cmp(&b.name));
    }

    /// Encode; entries must be sorted and unique.
    pub fn encode(&self) -> Vec<u8> {
        let mut e = Encoder::new();
        e.u8(TREE_VERSION);
        e.uvarint(self.entries.len() as u64);
        for en in &self.entries {
            e.bytes(&en.name);
            e.u8(en.kind.code());
            e.uvarint(u64::from(en.mode));
            e.uvarint(u64::from(en.uid));
            e.uvarint(u64::from(en.gid));
            e.uvarint(en.size);
            e.ivarint(en.mtime.secs);
            e.uvarint(u64::from(en.mtime.nanos));
            e.ivarint(en.ctime.secs);
            e.uvarint(u64::from(en.ctime.nanos));
            match en.kind {
                NodeKind::Dir => e.raw(&en.subtree.unwrap_or_default().0),
                NodeKind::Symlink => e.bytes(&en.target),
                NodeKind::CharDevice | NodeKind::BlockDevice => e.uvarint(en.rdev),
                NodeKind::File => {
                    e.uvarint(en.chunks.len() as u64);
                    for c in &en.chunks {
                        e.raw(&c.id.0);
                        e.uvarint(u64::from(c.len));
                    }
                }
                NodeKind::Fifo | NodeKind::Socket => {}
            }
            if en.kind != NodeKind::Dir {
                e.uvarint(en.nlink);
                if en.nlink > 1 {
                    let h = en.hardlink.unwrap_or(HardlinkKey { dev: 0, ino: 0 });
                    e.uvarint(h.dev);
                    e.uvarint(h.ino);
                } else if en.kind == NodeKind::File {
                    e.uvarint(en.ino);
                }
            }
            e.uvarint(en.xattrs.len() as u64);
            for (k, v) in &en.xattrs {
                e.bytes(k);
                e.bytes(v);
            }
        }
        e.buf
    }

    /// Decode and validate a tree blob; `object` names it for errors.
    pub fn decode(bytes: &[u8], object: &str) -> Result<Tree> {
        let mut d = Decoder::new(bytes, object);
        let v = d.u8()?;
        if v > TREE_VERSION {
            // Written by a newer yester: say so, rather than call the repository damaged.
            return Err(Error::UnsupportedVersion {
                object: object.to_string(),
                found: u32::from(v),
                supported: u32::from(TREE_VERSION),
            });
        }
        if v < TREE_VERSION_MIN {
            return Err(Error::corrupt(object, format!("unknown tree version {v}")));
        }
        let n = d.count(12)?;
        let mut entries: Vec<Entry> = Vec::with_capacity(n);
        for _ in 0..n {
            let name = d.bytes()?.to_vec();
            if !valid_name(&name) {
                return Err(d.err("invalid entry name"));
            }
            if let Some(prev) = entries.last() {
                if prev.name >= name {
                    return Err(d.err("entries not sorted"));
                }
            }
            let kind = NodeKind::from_code(d.u8()?).ok_or_else(|| d.err("unknown entry kind"))?;
            let mut en = Entry::new(name, kind);
            en.mode = d.uvarint32()? & 0o7777;
            en.uid = d.uvarint32()?;
            en.gid = d.uvarint32()?;
            en.size = d.uvarint()?;
            en.mtime = Timestamp {
                secs: d.ivarint()?,
                nanos: d.uvarint32()?,
            };
            en.ctime = Timestamp {
                secs: d.ivarint()?,
                nanos: d.uvarint32()?,
            };
            if en.mtime.nanos >= 1_000_000_000 || en.ctime.nanos >= 1_000_000_000 {
                return Err(d.err("nanoseconds out of range"));
            }
            match kind {
                NodeKind::Dir => en.subtree = Some(BlobId(d.array32()?)),
                NodeKind::Symlink => en.target = d.bytes()?.to_vec(),
                NodeKind::CharDevice | NodeKind::BlockDevice => en.rdev = d.uvarint()?,
                NodeKind::File => {
                    let m = d.count(33)?;
                    let mut total: u64 = 0;
                    en.chunks.reserve(m);
                    for _ in 0..m {
                        let id = BlobId(d.array32()?);
                        let len = d.uvarint32()?;
                        total += u64::from(len);
                        en.chunks.push(ChunkRef { id, len });
                    }
                    if total != en.size {
                        return Err(d.err("file size does not match its chunks"));
                    }
                }
                NodeKind::Fifo | NodeKind::Socket => {}
            }
            if kind != NodeKind::Dir {
                en.nlink = d.uvarint()?;
                if en.nlink > 1 {
                    let h = HardlinkKey {
                        dev: d.uvarint()?,
                        ino: d.uvarint()?,
                    };
                    en.hardlink = Some(h);
                    if kind == NodeKind::File {
                        en.ino = h.ino;
                    }
                } else if kind == NodeKind::File && v >= 2 {
                    en.ino = d.uvarint()?;
                }
            }
            let x = d.count(2)?;
            for _ in 0..x {
                let k = d.bytes()?.to_vec();
                let v = d.bytes()?.to_vec();
                if en.xattrs.last().is_some_and(|(prev, _)| *prev >= k) {
                    return Err(d.err("extended attributes not sorted"));
                }
                en.xattrs.push((k, v));
            }
            entries.push(en);
        }
        if !d.is_empty() {
            return Err(d.err("trailing bytes after the last entry"));
        }
        Ok(Tree { entries })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn sample() -> Tree {
        let mut f = Entry::new(b"a\xff file".to_vec(), NodeKind::File);
        f.size = 5;
        f.chunks = vec![ChunkRef {
            id: BlobId([3; 32]),
            len: 5,
        }];
        f.nlink = 2;
        f.hardlink = Some(HardlinkKey { dev: 1, ino: 99 });
        f.ino = 99;
        f.xattrs = vec![(b"user.x".to_vec(), b"v".to_vec())];
        f.mtime = Timestamp { secs: -5, nanos: 7 };
        let mut d = Entry::new(b"dir".to_vec(), NodeKind::Dir);
        d.subtree = Some(BlobId([9; 32]));
        let mut l = Entry::new(b"link".to_vec(), NodeKind::Symlink);
        l.target = b"../x".to_vec();
        let mut c = Entry::new(b"null".to_vec(), NodeKind::CharDevice);
        c.rdev = 259;
        Tree {
            entries: vec![f, d, l, c],
        }
    }

    #[test]
    fn roundtrip() {
        let t = sample();
        assert_eq!(Tree::decode(&t.encode(), "t").unwrap(), t);
    }

    #[test]
    fn single_link_files_keep_their_inode() {
        let mut t = sample();
        let f = &mut t.entries[0];
        (f.nlink, f.hardlink, f.ino) = (1, None, 4_000_000_123);
        let back = Tree::decode(&t.encode(), "t").unwrap();
        assert_eq!(back.entries[0].ino, 4_000_000_123);
        assert_eq!(back, t);
    }

    #[test]
    fn reads_version_1_trees_without_inodes() {
        // A version-1 tree of one single-link file, as yester wrote them before inodes.
        let mut e = Encoder::new();
        e.u8(1);
        e.uvarint(1);
        e.bytes(b"f");
        e.u8(NodeKind::File.code());
        for v in [0o644, 0, 0, 5] {
            e.uvarint(v);
        }
        for _ in 0..2 {
            e.ivarint(10);
            e.uvarint(0);
        }
        e.uvarint(1);
        e.raw(&[3; 32]);
        e.uvarint(5);
        e.uvarint(1); // nlink, and no inode after it
        e.uvarint(0); // xattrs
        let t = Tree::decode(&e.buf, "t").unwrap();
        let f = &t.entries[0];
        assert_eq!((f.size, f.nlink, f.ino, f.chunks.len()), (5, 1, 0, 1));
        // The same bytes under version 2 lack the inode: the xattr count is read as it and
        // the tree ends early.
        e.buf[0] = 2;
        assert!(Tree::decode(&e.buf, "t").is_err());
        e.buf[0] = 3;
        assert!(matches!(
            Tree::decode(&e.buf, "t"),
            Err(Error::UnsupportedVersion { found: 3, .. })
        ));
        e.buf[0] = 0;
        assert!(matches!(
            Tree::decode(&e.buf, "t"),
            Err(Error::Corrupt { .. })
        ));
    }

    #[test]
    fn rejects_traversal_names() {
        for bad in [&b".."[..], b".", b"a/b", b""] {
            let mut t = sample();
            t.entries.truncate(1);
            t.entries[0].name = bad.to_vec();
            assert!(Tree::decode(&t.encode(), "t").is_err());
        }
    }

    proptest! {
        #[test]
        fn decode_never_panics(data in proptest::collection::vec(any::<u8>(), 0..300)) {
            let _ = Tree::decode(&data, "t");
        }

        #[test]
        fn damaged_sample_never_panics(pos in 0usize..200, val in any::<u8>()) {
            let mut b = sample().encode();
            let p = pos % b.len();
            b[p] = val;
            let _ = Tree::decode(&b, "t");
            let _ = Tree::decode(&b[..p], "t");
        }
    }
}

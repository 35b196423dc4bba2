//! What the FUSE adaptor keeps of its own: which inode number stands for which view node (the
//! kernel's lookups, released by forget), how long the kernel may cache each answer, and the
//! conversions from the view's types to fuser's.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use fuser::{Errno, FileAttr, FileType, INodeNo};

use crate::engine::format::tree::{NodeKind, Timestamp};
use crate::vfs::{Attr, Node, OpenFile, Vfs, VfsError};

/// How long the kernel may cache what never changes (everything inside a snapshot).
pub(super) const IMMUTABLE_TTL: Duration = Duration::from_secs(24 * 3600);
/// How long the kernel may cache what moves (points, virtual directories): new backups and
/// rotations show up within this time.
pub(super) const VOLATILE_TTL: Duration = Duration::from_secs(1);

pub(super) fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

/// The answer for an xattr the node does not have. For `security.*` it is ENOTSUP rather than
/// ENODATA: without an active LSM the kernel hands `security.selinux` lookups to us, and
/// `ls -l` asks for it on every entry (one round trip each, never cached by the kernel). GNU
/// `ls` remembers ENOTSUP per device and stops asking, while a label the snapshot does hold is
/// still returned and `listxattr` (what `cp -a` and `getfattr -d` use) still lists it. The
/// kernel treats ENOTSUP like ENODATA for `security.capability` on exec.
pub(super) fn absent_xattr(name: &[u8]) -> Errno {
    if name.starts_with(b"security.") {
        Errno::ENOTSUP
    } else {
        Errno::NO_XATTR
    }
}

pub(super) fn errno(e: &VfsError) -> Errno {
    if let VfsError::Engine(err) = e {
        tracing::warn!("read error: {err}");
    }
    Errno::from_i32(e.errno())
}

pub(super) fn system_time(t: Timestamp) -> SystemTime {
    if t.secs >= 0 {
        UNIX_EPOCH + Duration::new(t.secs as u64, t.nanos)
    } else {
        UNIX_EPOCH - Duration::from_secs(t.secs.unsigned_abs())
            + Duration::from_nanos(u64::from(t.nanos))
    }
}

pub(super) fn file_type(k: NodeKind) -> FileType {
    match k {
        NodeKind::File => FileType::RegularFile,
        NodeKind::Dir => FileType::Directory,
        NodeKind::Symlink => FileType::Symlink,
        NodeKind::Fifo => FileType::NamedPipe,
        NodeKind::Socket => FileType::Socket,
        NodeKind::CharDevice => FileType::CharDevice,
        NodeKind::BlockDevice => FileType::BlockDevice,
    }
}

/// The FUSE file system over a view.
pub struct YesterFs {
    pub(super) vfs: Arc<Vfs>,
    /// Inode number → node and the kernel's lookup count.
    pub(super) nodes: Mutex<HashMap<u64, (Node, u64)>>,
    /// The kernel opens files (directories) without asking once `open` (`opendir`) answers
    /// ENOSYS: Linux 4.19 (5.1) and later, which say so at INIT.
    pub(super) no_open: bool,
    pub(super) no_opendir: bool,
}

impl YesterFs {
    pub fn new(vfs: Arc<Vfs>) -> Self {
        YesterFs {
            vfs,
            nodes: Mutex::new(HashMap::new()),
            no_open: false,
            no_opendir: false,
        }
    }

    pub(super) fn node(&self, ino: INodeNo) -> Result<Node, Errno> {
        if ino == INodeNo::ROOT {
            return Ok(self.vfs.root().clone());
        }
        lock(&self.nodes)
            .get(&u64::from(ino))
            .map(|(n, _)| n.clone())
            .ok_or(Errno::ESTALE)
    }

    /// FUSE's number for a node: the mount root is always 1.
    pub(super) fn fuse_ino(&self, node: &Node) -> u64 {
        if node == self.vfs.root() {
            1
        } else {
            node.ino()
        }
    }

    /// The open file of `ino` (the kernel opens files without asking, see `open`, so reads
    /// come by inode; the view keeps the files read lately open).
    pub(super) fn open_file(&self, ino: INodeNo) -> Result<Arc<OpenFile>, Errno> {
        self.node(ino)
            .and_then(|n| self.vfs.open(&n).map_err(|e| errno(&e)))
    }

    /// A child node as the kernel gets it: pinned to the snapshot it shows now (see
    /// `Vfs::pin`), so an inode's content never changes under the kernel's caches.
    pub(super) fn child(&self, node: Node) -> Result<Node, Errno> {
        self.vfs.pin(&node).map_err(|e| errno(&e))
    }

    pub(super) fn remember(&self, node: &Node) {
        let ino = self.fuse_ino(node);
        if ino == 1 {
            return;
        }
        lock(&self.nodes)
            .entry(ino)
            .or_insert_with(|| (node.clone(), 0))
            .1 += 1;
    }

    pub(super) fn file_attr(&self, node: &Node, a: &Attr) -> FileAttr {
        FileAttr {
            ino: INodeNo(self.fuse_ino(node)),
            size: a.size,
            blocks: a.blocks,
            atime: system_time(a.atime),
            mtime: system_time(a.mtime),
            ctime: system_time(a.ctime),
            crtime: system_time(a.mtime),
            kind: file_type(a.kind),
            perm: (a.perm & 0o7777) as u16,
            nlink: u32::try_from(a.nlink).unwrap_or(u32::MAX),
            uid: a.uid,
            gid: a.gid,
            rdev: u32::try_from(a.rdev).unwrap_or(0),
            blksize: 4096,
            flags: 0,
        }
    }

    pub(super) fn attr_ttl(node: &Node) -> Duration {
        if node.is_volatile() {
            VOLATILE_TTL
        } else {
            IMMUTABLE_TTL
        }
    }

    /// A name under a point directory maps to a new snapshot's inode after a rotation.
    pub(super) fn entry_ttl(parent: &Node, child: &Node) -> Duration {
        if parent.is_volatile() || child.is_volatile() {
            VOLATILE_TTL
        } else {
            IMMUTABLE_TTL
        }
    }

    /// The entries of directory `ino` from `offset` (the view's cookies), until `add` says the
    /// reply is full.
    pub(super) fn list(
        &self,
        ino: INodeNo,
        offset: u64,
        mut add: impl FnMut(u64, &[u8], &Node, NodeKind) -> bool,
    ) -> Result<(), Errno> {
        let node = self.node(ino)?;
        let dir = self.vfs.readdir(&node).map_err(|e| errno(&e))?;
        for e in dir.entries_from(offset) {
            let child = if e.dot { e.node } else { self.child(e.node)? };
            if add(e.cookie, e.name, &child, e.kind) {
                break;
            }
        }
        Ok(())
    }
}

//! The FUSE driver: a thin adaptor from `fuser` requests to the view ([`crate::vfs`]).
//!
//! It keeps only what FUSE itself needs: which inode number stands for which view node (the
//! kernel's lookups, released by forget) and the open files. Everything else is the view's.
//! Inode numbers are the view's (`vfs::node`), which gives a directory reached through a
//! point directory a number of its own per point, so `..` stays in its view. Below its root
//! it hands the kernel nodes pinned to a snapshot (`Vfs::pin`): the kernel caches an inode's
//! answers, so an inode's content must never change.
//!
//! `inodes` holds the adaptor's own state and conversions; this file answers the kernel's
//! requests (one `Filesystem` impl, so it cannot be split further).

mod inodes;

pub use inodes::YesterFs;

use std::ffi::OsStr;
use std::os::unix::ffi::OsStrExt;
use std::path::Path;
use std::time::SystemTime;

use fuser::{
    AccessFlags, BsdFileFlags, Errno, FileHandle, Filesystem, FopenFlags, Generation, INodeNo,
    InitFlags, KernelConfig, LockOwner, OpenAccMode, OpenFlags, RenameFlags, ReplyAttr,
    ReplyCreate, ReplyData, ReplyDirectory, ReplyDirectoryPlus, ReplyEmpty, ReplyEntry, ReplyOpen,
    ReplyStatfs, ReplyWrite, ReplyXattr, Request, TimeOrNow, WriteFlags,
};

use crate::vfs::Slice;
use inodes::{absent_xattr, errno, file_type, lock};

impl Filesystem for YesterFs {
    fn init(&mut self, _req: &Request, config: &mut KernelConfig) -> std::io::Result<()> {
        let kernel = config.capabilities();
        self.no_open = kernel.contains(InitFlags::FUSE_NO_OPEN_SUPPORT);
        self.no_opendir = kernel.contains(InitFlags::FUSE_NO_OPENDIR_SUPPORT);
        // Without READDIRPLUS, `ls -l` costs one LOOKUP per entry.
        for flag in [
            InitFlags::FUSE_DO_READDIRPLUS,
            InitFlags::FUSE_READDIRPLUS_AUTO,
            InitFlags::FUSE_PARALLEL_DIROPS,
            InitFlags::FUSE_CACHE_SYMLINKS,
            InitFlags::FUSE_MAX_PAGES,
            // A cached listing is checked against the directory's mtime, refreshed first if
            // its attributes are stale (1 s for directories that can change): see `opendir`.
            InitFlags::FUSE_AUTO_INVAL_DATA,
        ] {
            let _ = config.add_capabilities(flag);
        }
        // The kernel then caches each inode's ACLs (or their absence) instead of asking for
        // `system.posix_acl_*` on every `ls -l`, and enforces ACLs a backup holds. Without
        // extended attributes the view narrows modes to what the ACLs allow instead.
        if self.vfs.serves_xattrs() {
            let _ = config.add_capabilities(InitFlags::FUSE_POSIX_ACL);
        }
        let _ = config.set_max_readahead(1 << 20);
        Ok(())
    }

    fn lookup(&self, _req: &Request, parent: INodeNo, name: &OsStr, reply: ReplyEntry) {
        let res = self.node(parent).and_then(|p| {
            let child = self
                .vfs
                .lookup(&p, name.as_bytes())
                .map_err(|e| errno(&e))
                .and_then(|c| self.child(c))?;
            let attr = self.vfs.getattr(&child).map_err(|e| errno(&e))?;
            Ok((p, child, attr))
        });
        match res {
            Ok((p, child, attr)) => {
                self.remember(&child);
                let fa = self.file_attr(&child, &attr);
                reply.entry_with_ttls(
                    &Self::attr_ttl(&child),
                    &Self::entry_ttl(&p, &child),
                    &fa,
                    Generation(0),
                );
            }
            Err(e) => reply.error(e),
        }
    }

    fn forget(&self, _req: &Request, ino: INodeNo, nlookup: u64) {
        let mut nodes = lock(&self.nodes);
        if let Some(entry) = nodes.get_mut(&u64::from(ino)) {
            entry.1 = entry.1.saturating_sub(nlookup);
            if entry.1 == 0 {
                nodes.remove(&u64::from(ino));
            }
        }
    }

    fn getattr(&self, _req: &Request, ino: INodeNo, _fh: Option<FileHandle>, reply: ReplyAttr) {
        match self
            .node(ino)
            .and_then(|n| self.vfs.getattr(&n).map(|a| (n, a)).map_err(|e| errno(&e)))
        {
            Ok((n, a)) => reply.attr(&Self::attr_ttl(&n), &self.file_attr(&n, &a)),
            Err(e) => reply.error(e),
        }
    }

    fn readlink(&self, _req: &Request, ino: INodeNo, reply: ReplyData) {
        match self
            .node(ino)
            .and_then(|n| self.vfs.readlink(&n).map_err(|e| errno(&e)))
        {
            Ok(t) => reply.data(&t),
            Err(e) => reply.error(e),
        }
    }

    /// ENOSYS: the kernel then opens and closes files without asking (two round trips per
    /// file fewer for `grep -r` and `cp -r`) and keeps their page cache across opens, right for
    /// content that never changes. Permissions are the kernel's to check (default_permissions
    /// and ACLs), and the mount is read-only, so a write open fails with EROFS before it could
    /// get here. (A kernel that cannot do without gets the same page cache rule; reads come
    /// by inode either way.)
    fn open(&self, _req: &Request, _ino: INodeNo, flags: OpenFlags, reply: ReplyOpen) {
        if flags.acc_mode() != OpenAccMode::O_RDONLY {
            return reply.error(Errno::EROFS);
        }
        if self.no_open {
            return reply.error(Errno::ENOSYS);
        }
        reply.opened(FileHandle(0), FopenFlags::FOPEN_KEEP_CACHE);
    }

    fn read(
        &self,
        _req: &Request,
        ino: INodeNo,
        _fh: FileHandle,
        offset: u64,
        size: u32,
        _flags: OpenFlags,
        _lock_owner: Option<LockOwner>,
        reply: ReplyData,
    ) {
        let f = match self.open_file(ino) {
            Ok(f) => f,
            Err(e) => return reply.error(e),
        };
        // A read within one chunk (most: chunks average 1 MiB) is answered from the cached
        // chunk itself; only a read across chunks is put together first.
        match self.vfs.read_slices(&f, offset, size) {
            Ok(s) if s.len() <= 1 => reply.data(s.first().map_or(&[][..], |s| s.bytes())),
            Ok(s) => {
                let mut data = Vec::new();
                Slice::append_all(&s, &mut data);
                reply.data(&data)
            }
            Err(e) => reply.error(errno(&e)),
        }
    }

    // `flush`, `release` and `releasedir` are fuser's defaults: FLUSH answers ENOSYS, so the
    // kernel stops sending it (one round trip per `close` fewer), and nothing is held open to
    // release.

    /// ENOSYS: the kernel then opens and closes directories without asking (two round trips
    /// per directory fewer for `find`, `ls -R`, `grep -r`) and caches every listing. Listings
    /// inside a snapshot never change; the virtual directories' mtime moves whenever what
    /// they list may have (see `Vfs::getattr`), and the kernel compares it before it uses a
    /// cached listing (FUSE_AUTO_INVAL_DATA).
    /// (A kernel that cannot do without is told to cache the listings that never change.)
    fn opendir(&self, _req: &Request, ino: INodeNo, _flags: OpenFlags, reply: ReplyOpen) {
        if self.no_opendir {
            return reply.error(Errno::ENOSYS);
        }
        match self.node(ino) {
            Ok(n) if !n.is_volatile() => reply.opened(
                FileHandle(0),
                FopenFlags::FOPEN_KEEP_CACHE | FopenFlags::FOPEN_CACHE_DIR,
            ),
            Ok(_) => reply.opened(FileHandle(0), FopenFlags::empty()),
            Err(e) => reply.error(e),
        }
    }

    fn readdir(
        &self,
        _req: &Request,
        ino: INodeNo,
        _fh: FileHandle,
        offset: u64,
        mut reply: ReplyDirectory,
    ) {
        let res = self.list(ino, offset, |off, name, node, kind| {
            reply.add(
                INodeNo(self.fuse_ino(node)),
                off,
                file_type(kind),
                OsStr::from_bytes(name),
            )
        });
        match res {
            Ok(()) => reply.ok(),
            Err(e) => reply.error(e),
        }
    }

    fn readdirplus(
        &self,
        _req: &Request,
        ino: INodeNo,
        _fh: FileHandle,
        offset: u64,
        mut reply: ReplyDirectoryPlus,
    ) {
        let parent = match self.node(ino) {
            Ok(p) => p,
            Err(e) => return reply.error(e),
        };
        let res = self.list(ino, offset, |off, name, node, _| {
            let attr = match self.vfs.getattr(node) {
                Ok(a) => a,
                Err(e) => {
                    tracing::warn!("{}: {e}", String::from_utf8_lossy(name));
                    return false;
                }
            };
            let fa = self.file_attr(node, &attr);
            let dot = name == b"." || name == b"..";
            let full = reply.add(
                fa.ino,
                off,
                OsStr::from_bytes(name),
                &Self::entry_ttl(&parent, node),
                &fa,
                Generation(0),
            );
            // The kernel takes a lookup reference for each entry it accepts (not . and ..).
            if !full && !dot {
                self.remember(node);
            }
            full
        });
        match res {
            Ok(()) => reply.ok(),
            Err(e) => reply.error(e),
        }
    }

    fn statfs(&self, _req: &Request, _ino: INodeNo, reply: ReplyStatfs) {
        let s = self.vfs.statfs();
        reply.statfs(
            s.stored_bytes.div_ceil(4096),
            0,
            0,
            s.blobs,
            0,
            4096,
            255,
            4096,
        );
    }

    fn getxattr(&self, _req: &Request, ino: INodeNo, name: &OsStr, size: u32, reply: ReplyXattr) {
        // ENOSYS, not ENODATA: the kernel then stops asking for the rest of the mount, which
        // saves a round trip per entry of every `ls -l` (see `VfsOptions::xattrs`).
        if !self.vfs.serves_xattrs() {
            return reply.error(Errno::ENOSYS);
        }
        let res = self
            .node(ino)
            .and_then(|n| self.vfs.xattrs(&n).map_err(|e| errno(&e)));
        match res {
            Ok(x) => match x.iter().find(|(k, _)| k.as_slice() == name.as_bytes()) {
                Some((_, v)) if size == 0 => reply.size(v.len() as u32),
                Some((_, v)) if v.len() <= size as usize => reply.data(v),
                Some(_) => reply.error(Errno::ERANGE),
                None => reply.error(absent_xattr(name.as_bytes())),
            },
            Err(e) => reply.error(e),
        }
    }

    fn listxattr(&self, _req: &Request, ino: INodeNo, size: u32, reply: ReplyXattr) {
        if !self.vfs.serves_xattrs() {
            return reply.error(Errno::ENOSYS);
        }
        let res = self
            .node(ino)
            .and_then(|n| self.vfs.xattrs(&n).map_err(|e| errno(&e)));
        match res {
            Ok(x) => {
                let mut names = Vec::new();
                for (k, _) in &x {
                    names.extend_from_slice(k);
                    names.push(0);
                }
                if size == 0 {
                    reply.size(names.len() as u32);
                } else if names.len() <= size as usize {
                    reply.data(&names);
                } else {
                    reply.error(Errno::ERANGE);
                }
            }
            Err(e) => reply.error(e),
        }
    }

    fn access(&self, _req: &Request, ino: INodeNo, mask: AccessFlags, reply: ReplyEmpty) {
        // Permission bits are checked by the kernel (default_permissions); writing never works.
        if mask.contains(AccessFlags::W_OK) {
            return reply.error(Errno::EROFS);
        }
        match self.node(ino) {
            Ok(_) => reply.ok(),
            Err(e) => reply.error(e),
        }
    }

    // Every write path answers EROFS (the mount is also `ro`, so most never reach us).

    fn setattr(
        &self,
        _req: &Request,
        _ino: INodeNo,
        _mode: Option<u32>,
        _uid: Option<u32>,
        _gid: Option<u32>,
        _size: Option<u64>,
        _atime: Option<TimeOrNow>,
        _mtime: Option<TimeOrNow>,
        _ctime: Option<SystemTime>,
        _fh: Option<FileHandle>,
        _crtime: Option<SystemTime>,
        _chgtime: Option<SystemTime>,
        _bkuptime: Option<SystemTime>,
        _flags: Option<BsdFileFlags>,
        reply: ReplyAttr,
    ) {
        reply.error(Errno::EROFS);
    }

    fn mknod(
        &self,
        _req: &Request,
        _parent: INodeNo,
        _name: &OsStr,
        _mode: u32,
        _umask: u32,
        _rdev: u32,
        reply: ReplyEntry,
    ) {
        reply.error(Errno::EROFS);
    }

    fn mkdir(
        &self,
        _req: &Request,
        _parent: INodeNo,
        _name: &OsStr,
        _mode: u32,
        _umask: u32,
        reply: ReplyEntry,
    ) {
        reply.error(Errno::EROFS);
    }

    fn unlink(&self, _req: &Request, _parent: INodeNo, _name: &OsStr, reply: ReplyEmpty) {
        reply.error(Errno::EROFS);
    }

    fn rmdir(&self, _req: &Request, _parent: INodeNo, _name: &OsStr, reply: ReplyEmpty) {
        reply.error(Errno::EROFS);
    }

    fn symlink(
        &self,
        _req: &Request,
        _parent: INodeNo,
        _name: &OsStr,
        _target: &Path,
        reply: ReplyEntry,
    ) {
        reply.error(Errno::EROFS);
    }

    fn rename(
        &self,
        _req: &Request,
        _parent: INodeNo,
        _name: &OsStr,
        _newparent: INodeNo,
        _newname: &OsStr,
        _flags: RenameFlags,
        reply: ReplyEmpty,
    ) {
        reply.error(Errno::EROFS);
    }

    fn link(
        &self,
        _req: &Request,
        _ino: INodeNo,
        _newparent: INodeNo,
        _newname: &OsStr,
        reply: ReplyEntry,
    ) {
        reply.error(Errno::EROFS);
    }

    fn write(
        &self,
        _req: &Request,
        _ino: INodeNo,
        _fh: FileHandle,
        _offset: u64,
        _data: &[u8],
        _write_flags: WriteFlags,
        _flags: OpenFlags,
        _lock_owner: Option<LockOwner>,
        reply: ReplyWrite,
    ) {
        reply.error(Errno::EROFS);
    }

    fn create(
        &self,
        _req: &Request,
        _parent: INodeNo,
        _name: &OsStr,
        _mode: u32,
        _umask: u32,
        _flags: i32,
        reply: ReplyCreate,
    ) {
        reply.error(Errno::EROFS);
    }

    fn setxattr(
        &self,
        _req: &Request,
        _ino: INodeNo,
        _name: &OsStr,
        _value: &[u8],
        _flags: i32,
        _position: u32,
        reply: ReplyEmpty,
    ) {
        reply.error(Errno::EROFS);
    }

    fn removexattr(&self, _req: &Request, _ino: INodeNo, _name: &OsStr, reply: ReplyEmpty) {
        reply.error(Errno::EROFS);
    }

    fn fallocate(
        &self,
        _req: &Request,
        _ino: INodeNo,
        _fh: FileHandle,
        _offset: u64,
        _length: u64,
        _mode: i32,
        reply: ReplyEmpty,
    ) {
        reply.error(Errno::EROFS);
    }
}

//! GETATTR, ACCESS, FSSTAT, FSINFO and PATHCONF, and the attribute conversions the other
//! procedures share.

use nfsserve::nfs::{fattr3, fsinfo3, ftype3, nfsstat3, nfstime3, post_op_attr, specdata3};

use super::dispatch::{stat_of, Caller, Service, NAME_MAX, RTMAX};
use super::exports::Creds;
use super::xdr::{Garbage, Reader, Writer};
use crate::engine::format::tree::{NodeKind, Timestamp};
use crate::vfs::{acl, Attr, Node, Vfs};

const ACCESS_READ: u32 = 0x1;
const ACCESS_LOOKUP: u32 = 0x2;
const ACCESS_EXECUTE: u32 = 0x20;

pub(super) fn nfstime(t: Timestamp) -> nfstime3 {
    nfstime3 {
        seconds: u32::try_from(t.secs.max(0)).unwrap_or(u32::MAX),
        nseconds: t.nanos,
    }
}

pub(super) fn fattr(a: &Attr) -> fattr3 {
    fattr3 {
        ftype: match a.kind {
            NodeKind::File => ftype3::NF3REG,
            NodeKind::Dir => ftype3::NF3DIR,
            NodeKind::Symlink => ftype3::NF3LNK,
            NodeKind::Fifo => ftype3::NF3FIFO,
            NodeKind::Socket => ftype3::NF3SOCK,
            NodeKind::CharDevice => ftype3::NF3CHR,
            NodeKind::BlockDevice => ftype3::NF3BLK,
        },
        mode: a.perm & 0o7777,
        nlink: u32::try_from(a.nlink).unwrap_or(u32::MAX),
        uid: a.uid,
        gid: a.gid,
        size: a.size,
        used: a.blocks * 512,
        rdev: specdata3 {
            specdata1: nix::sys::stat::major(a.rdev) as u32,
            specdata2: nix::sys::stat::minor(a.rdev) as u32,
        },
        fsid: 0x7965_7374_6572,
        fileid: a.ino,
        atime: nfstime(a.atime),
        mtime: nfstime(a.mtime),
        ctime: nfstime(a.ctime),
    }
}

/// Whether `creds` may do `want` (4 read, 2 write, 1 execute) on a file with these attributes
/// (its mode, or the ACL the backup recorded for it).
pub(super) fn permitted(a: &Attr, c: &Creds, want: u32) -> bool {
    let caller = acl::Caller {
        uid: c.uid,
        gid: c.gid,
        gids: &c.gids,
    };
    acl::permitted(a, a.acl.as_ref(), &caller, want)
}

pub(super) fn post_attr(vfs: &Vfs, node: &Node) -> post_op_attr {
    vfs.getattr(node)
        .map_or(post_op_attr::Void, |a| post_op_attr::attributes(fattr(&a)))
}

impl Service {
    pub(super) fn getattr(
        &self,
        r: &mut Reader,
        w: &mut Writer,
        caller: &Caller,
    ) -> Result<(), Garbage> {
        match self
            .target(r, caller)?
            .and_then(|t| self.vfs.getattr(&t.node).map_err(|e| stat_of(&e)))
        {
            Ok(a) => {
                w.item(&nfsstat3::NFS3_OK).item(&fattr(&a));
            }
            Err(s) => {
                w.item(&s);
            }
        }
        Ok(())
    }

    pub(super) fn access(
        &self,
        r: &mut Reader,
        w: &mut Writer,
        caller: &Caller,
    ) -> Result<(), Garbage> {
        let t = self.target(r, caller)?;
        let mask = r.u32()?;
        match t.and_then(|t| {
            self.vfs
                .getattr(&t.node)
                .map(|a| (t, a))
                .map_err(|e| stat_of(&e))
        }) {
            Ok((t, a)) => {
                let mut granted = 0;
                if permitted(&a, &t.creds, 4) {
                    granted |= ACCESS_READ;
                }
                if permitted(&a, &t.creds, 1) {
                    granted |= if a.kind == NodeKind::Dir {
                        ACCESS_LOOKUP
                    } else {
                        ACCESS_EXECUTE
                    };
                }
                w.item(&nfsstat3::NFS3_OK)
                    .item(&post_op_attr::attributes(fattr(&a)))
                    .u32(granted & mask);
            }
            Err(s) => {
                w.item(&s).item(&post_op_attr::Void);
            }
        }
        Ok(())
    }

    pub(super) fn fsstat(
        &self,
        r: &mut Reader,
        w: &mut Writer,
        caller: &Caller,
    ) -> Result<(), Garbage> {
        match self.target(r, caller)? {
            Ok(t) => {
                let s = self.vfs.statfs();
                w.item(&nfsstat3::NFS3_OK)
                    .item(&post_attr(&self.vfs, &t.node))
                    .u64(s.stored_bytes)
                    .u64(0)
                    .u64(0)
                    .u64(s.blobs)
                    .u64(0)
                    .u64(0)
                    .u32(0);
            }
            Err(s) => {
                w.item(&s).item(&post_op_attr::Void);
            }
        }
        Ok(())
    }

    pub(super) fn fsinfo(
        &self,
        r: &mut Reader,
        w: &mut Writer,
        caller: &Caller,
    ) -> Result<(), Garbage> {
        match self.target(r, caller)? {
            Ok(t) => {
                let info = fsinfo3 {
                    obj_attributes: post_attr(&self.vfs, &t.node),
                    rtmax: RTMAX,
                    rtpref: RTMAX,
                    rtmult: 4096,
                    wtmax: 65536,
                    wtpref: 65536,
                    wtmult: 4096,
                    dtpref: 65536,
                    maxfilesize: u64::MAX,
                    time_delta: nfstime3 {
                        seconds: 0,
                        nseconds: 1,
                    },
                    properties: nfsserve::nfs::FSF_LINK
                        | nfsserve::nfs::FSF_SYMLINK
                        | nfsserve::nfs::FSF_HOMOGENEOUS,
                };
                w.item(&nfsstat3::NFS3_OK).item(&info);
            }
            Err(s) => {
                w.item(&s).item(&post_op_attr::Void);
            }
        }
        Ok(())
    }

    pub(super) fn pathconf(
        &self,
        r: &mut Reader,
        w: &mut Writer,
        caller: &Caller,
    ) -> Result<(), Garbage> {
        match self.target(r, caller)? {
            Ok(t) => {
                w.item(&nfsstat3::NFS3_OK)
                    .item(&post_attr(&self.vfs, &t.node))
                    .u32(u32::MAX)
                    .u32(NAME_MAX as u32)
                    .bool(true)
                    .bool(true)
                    .bool(false)
                    .bool(true);
            }
            Err(s) => {
                w.item(&s).item(&post_op_attr::Void);
            }
        }
        Ok(())
    }
}

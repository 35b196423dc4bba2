//! MOUNT v3 and NFS v3 procedures (RFC 1813) over the view. Every request is checked against
//! the exports (client address, source port, the handle's export) and the caller's
//! credentials (after squashing) against each file's mode, the way knfsd does.

use std::net::SocketAddr;
use std::sync::Arc;

use nfsserve::nfs::{
    fattr3, fsinfo3, ftype3, nfs_fh3, nfsstat3, nfstime3, post_op_attr, post_op_fh3, specdata3,
    wcc_data,
};

use super::exports::{normalise, Creds, Exports, Options};
use super::handle::{ExportTag, HandleKey};
use super::rpc::{self, Call, Cred};
use super::xdr::{opaque_len, Garbage, Reader, Writer};
use crate::engine::tree::{NodeKind, Timestamp};
use crate::vfs::acl;
use crate::vfs::{Attr, Node, Slice, Vfs, VfsError};

pub const NFS_PROGRAM: u32 = 100003;
pub const MOUNT_PROGRAM: u32 = 100005;
const NFS_VERSION: u32 = 3;
const MOUNT_VERSION: u32 = 3;

/// Largest READ we serve (FSINFO rtmax).
pub const RTMAX: u32 = 1 << 20;
const NAME_MAX: usize = 255;
const PATH_MAX: usize = 1024;

const ACCESS_READ: u32 = 0x1;
const ACCESS_LOOKUP: u32 = 0x2;
const ACCESS_EXECUTE: u32 = 0x20;

/// MOUNT status codes.
const MNT3_OK: u32 = 0;
const MNT3ERR_PERM: u32 = 1;
const MNT3ERR_NOENT: u32 = 2;
const MNT3ERR_ACCES: u32 = 13;
const MNT3ERR_NOTDIR: u32 = 20;
const MNT3ERR_SERVERFAULT: u32 = 10006;

/// The NFS and MOUNT service over one view.
pub struct Service {
    vfs: Arc<Vfs>,
    exports: Exports,
    key: HandleKey,
}

/// Who is asking, as far as access control is concerned.
struct Caller<'a> {
    peer: SocketAddr,
    cred: &'a Cred,
}

/// A reply: its bytes, then (READ only) the data as slices of cached chunks and the zero bytes
/// that pad it to a multiple of 4. The server writes the parts with one `writev`.
pub struct Reply {
    pub head: Vec<u8>,
    pub data: Vec<Slice>,
    pub pad: usize,
}

impl Reply {
    fn bytes(head: Vec<u8>) -> Self {
        Reply {
            head,
            data: Vec::new(),
            pad: 0,
        }
    }

    /// Its length on the wire (without the record mark).
    pub fn len(&self) -> usize {
        self.head.len() + self.data.iter().map(Slice::len).sum::<usize>() + self.pad
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// All of it in one buffer.
    pub fn into_bytes(self) -> Vec<u8> {
        let mut out = self.head;
        Slice::append_all(&self.data, &mut out);
        out.resize(out.len() + self.pad, 0);
        out
    }
}

/// A request's node, its export and the caller's effective credentials.
struct Target {
    node: Node,
    tag: ExportTag,
    creds: Creds,
}

fn stat_of(e: &VfsError) -> nfsstat3 {
    match e {
        VfsError::NotFound => nfsstat3::NFS3ERR_NOENT,
        VfsError::NotDir => nfsstat3::NFS3ERR_NOTDIR,
        VfsError::IsDir => nfsstat3::NFS3ERR_ISDIR,
        VfsError::Invalid => nfsstat3::NFS3ERR_INVAL,
        VfsError::NoAttr => nfsstat3::NFS3ERR_NOENT,
        VfsError::Stale => nfsstat3::NFS3ERR_STALE,
        VfsError::Engine(err) => {
            tracing::warn!("nfs: read error: {err}");
            nfsstat3::NFS3ERR_IO
        }
    }
}

fn nfstime(t: Timestamp) -> nfstime3 {
    nfstime3 {
        seconds: u32::try_from(t.secs.max(0)).unwrap_or(u32::MAX),
        nseconds: t.nanos,
    }
}

fn fattr(a: &Attr) -> fattr3 {
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
fn permitted(a: &Attr, c: &Creds, want: u32) -> bool {
    let caller = acl::Caller {
        uid: c.uid,
        gid: c.gid,
        gids: &c.gids,
    };
    acl::permitted(a, a.acl.as_ref(), &caller, want)
}

fn post_attr(vfs: &Vfs, node: &Node) -> post_op_attr {
    vfs.getattr(node)
        .map_or(post_op_attr::Void, |a| post_op_attr::attributes(fattr(&a)))
}

impl Service {
    pub fn new(vfs: Arc<Vfs>, exports: Exports, key: HandleKey) -> Self {
        Service { vfs, exports, key }
    }

    fn handle(&self, tag: &ExportTag, node: &Node) -> nfs_fh3 {
        nfs_fh3 {
            data: self.key.make(tag, &self.vfs.encode_node(node)),
        }
    }

    /// `..` of `node` under the export with `tag`: its parent while that is still inside the
    /// export, else (at the export's root) the node itself, as knfsd answers: a client never
    /// climbs out of its export.
    fn parent_within(&self, tag: &ExportTag, node: &Node) -> Result<Node, nfsstat3> {
        let export = self.exports.by_tag(tag).ok_or(nfsstat3::NFS3ERR_STALE)?;
        let parent = self.vfs.parent(node).map_err(|e| stat_of(&e))?;
        let path = self.vfs.path_of(&parent).map_err(|e| stat_of(&e))?;
        Ok(match std::str::from_utf8(&path) {
            Ok(p) if export.covers(p) => parent,
            _ => node.clone(),
        })
    }

    /// The export options that apply to this caller for export `tag`, checked against the
    /// source port; `Err` is the status to answer.
    fn options(&self, tag: &ExportTag, caller: &Caller) -> Result<&Options, nfsstat3> {
        if self.exports.by_tag(tag).is_none() {
            return Err(nfsstat3::NFS3ERR_STALE);
        }
        // The same pattern may be on several lines (for different clients): the first line
        // with this tag that lists the client decides, as at MOUNT.
        let opts = self
            .exports
            .list
            .iter()
            .filter(|e| &e.tag == tag)
            .find_map(|e| e.options_for(caller.peer.ip()))
            .ok_or(nfsstat3::NFS3ERR_ACCES)?;
        if opts.secure && caller.peer.port() >= 1024 {
            return Err(nfsstat3::NFS3ERR_PERM);
        }
        Ok(opts)
    }

    /// Decode and check a file handle from the arguments.
    fn target(&self, r: &mut Reader, caller: &Caller) -> Result<Result<Target, nfsstat3>, Garbage> {
        let fh = r.opaque(64)?;
        let Some((tag, node_bytes)) = self.key.open(fh) else {
            return Ok(Err(nfsstat3::NFS3ERR_BADHANDLE));
        };
        let opts = match self.options(&tag, caller) {
            Ok(o) => o,
            Err(s) => return Ok(Err(s)),
        };
        let creds = opts.creds(caller.cred);
        Ok(match self.vfs.decode_node(node_bytes) {
            Ok(node) => Ok(Target { node, tag, creds }),
            Err(VfsError::Invalid) => Err(nfsstat3::NFS3ERR_BADHANDLE),
            Err(e) => Err(stat_of(&e)),
        })
    }

    /// Answer one RPC record; `None` means send nothing (unreadable garbage).
    pub fn call(&self, peer: SocketAddr, record: &[u8]) -> Option<Vec<u8>> {
        self.call_reply(peer, record).map(Reply::into_bytes)
    }

    /// As [`Service::call`], with READ data left in the chunk cache (see [`Reply`]).
    pub fn call_reply(&self, peer: SocketAddr, record: &[u8]) -> Option<Reply> {
        let call = match rpc::parse_call(record) {
            Ok(c) => c,
            Err(rpc::BadCall::Unreadable) => return None,
            Err(rpc::BadCall::Mismatch(xid)) => return Some(Reply::bytes(rpc::rpc_mismatch(xid))),
            Err(rpc::BadCall::BadCred(xid)) => {
                return Some(Reply::bytes(rpc::auth_error(xid, rpc::AUTH_BADCRED)))
            }
        };
        let caller = Caller {
            peer,
            cred: &call.cred,
        };
        let result = match (call.prog, call.vers) {
            (NFS_PROGRAM, NFS_VERSION) => self.nfs(&call, &caller),
            (MOUNT_PROGRAM, MOUNT_VERSION) => self.mount(&call, &caller).map(|body| {
                body.map(|body| {
                    let mut w = rpc::accepted(call.xid, rpc::SUCCESS);
                    w.buf.extend_from_slice(&body);
                    Reply::bytes(w.buf)
                })
            }),
            (NFS_PROGRAM, _) => {
                return Some(Reply::bytes(rpc::prog_mismatch(call.xid, NFS_VERSION)))
            }
            (MOUNT_PROGRAM, _) => {
                return Some(Reply::bytes(rpc::prog_mismatch(call.xid, MOUNT_VERSION)))
            }
            _ => return Some(Reply::bytes(rpc::accepted(call.xid, rpc::PROG_UNAVAIL).buf)),
        };
        Some(match result {
            Ok(Some(reply)) => reply,
            Ok(None) => Reply::bytes(rpc::accepted(call.xid, rpc::PROC_UNAVAIL).buf),
            Err(Garbage) => Reply::bytes(rpc::accepted(call.xid, rpc::GARBAGE_ARGS).buf),
        })
    }

    // ---- MOUNT ------------------------------------------------------------------------------

    fn mount(&self, call: &Call, caller: &Caller) -> Result<Option<Vec<u8>>, Garbage> {
        let mut r = Reader::new(call.args);
        let mut w = Writer::default();
        match call.proc_ {
            0 => {}
            1 => {
                let path = String::from_utf8_lossy(r.opaque(PATH_MAX)?).into_owned();
                match self.mnt(&path, caller) {
                    Ok(fh) => {
                        w.u32(MNT3_OK).opaque(&fh.data);
                        w.u32(1).u32(1); // auth flavours: AUTH_SYS
                    }
                    Err(status) => {
                        w.u32(status);
                    }
                }
            }
            // DUMP: we keep no mount list; UMNT and UMNTALL: nothing to forget.
            2 => {
                w.bool(false);
            }
            3 | 4 => {}
            5 => {
                for e in &self.exports.list {
                    if e.options_for(caller.peer.ip()).is_some() {
                        w.bool(true).opaque(e.pattern.as_bytes()).bool(false);
                    }
                }
                w.bool(false);
            }
            _ => return Ok(None),
        }
        Ok(Some(w.buf))
    }

    fn mnt(&self, path: &str, caller: &Caller) -> Result<nfs_fh3, u32> {
        let path = normalise(path);
        let Some((export, opts)) = self.exports.find(&path, caller.peer.ip()) else {
            tracing::info!("nfs: mount of {path} refused for {}", caller.peer);
            return Err(MNT3ERR_ACCES);
        };
        if opts.secure && caller.peer.port() >= 1024 {
            tracing::info!(
                "nfs: mount of {path} from insecure port {} refused",
                caller.peer
            );
            return Err(MNT3ERR_PERM);
        }
        // The view's one resolver: below a point the handle follows the point (a mount of
        // /daily.0/web1/etc shows the new snapshot's etc after a rotation).
        let node = self.vfs.resolve(path.as_bytes()).map_err(|e| match e {
            VfsError::NotFound => MNT3ERR_NOENT,
            VfsError::NotDir => MNT3ERR_NOTDIR,
            _ => MNT3ERR_SERVERFAULT,
        })?;
        match self.vfs.getattr(&node) {
            Ok(a) if a.kind == NodeKind::Dir => {}
            Ok(_) => return Err(MNT3ERR_NOTDIR),
            Err(_) => return Err(MNT3ERR_NOENT),
        }
        Ok(self.handle(&export.tag, &node))
    }

    // ---- NFS --------------------------------------------------------------------------------

    /// An NFS call's whole reply, RPC header included: written in place, so a READ's data is
    /// not copied again behind a header.
    fn nfs(&self, call: &Call, caller: &Caller) -> Result<Option<Reply>, Garbage> {
        let mut r = Reader::new(call.args);
        let mut w = rpc::accepted(call.xid, rpc::SUCCESS);
        let mut data = Vec::new();
        let rofs = |w: &mut Writer, wccs: usize| {
            w.item(&nfsstat3::NFS3ERR_ROFS);
            for _ in 0..wccs {
                w.item(&wcc_data::default());
            }
        };
        match call.proc_ {
            0 => {}
            1 => self.getattr(&mut r, &mut w, caller)?,
            3 => self.lookup(&mut r, &mut w, caller)?,
            4 => self.access(&mut r, &mut w, caller)?,
            5 => self.readlink(&mut r, &mut w, caller)?,
            6 => self.read(&mut r, &mut w, caller, &mut data)?,
            16 => self.readdir(&mut r, &mut w, caller, false)?,
            17 => self.readdir(&mut r, &mut w, caller, true)?,
            18 => self.fsstat(&mut r, &mut w, caller)?,
            19 => self.fsinfo(&mut r, &mut w, caller)?,
            20 => self.pathconf(&mut r, &mut w, caller)?,
            // The write procedures: SETATTR, WRITE, CREATE, MKDIR, SYMLINK, MKNOD, REMOVE,
            // RMDIR, COMMIT answer ROFS with one wcc_data; RENAME with two; LINK with
            // post_op_attr and wcc_data.
            2 | 7 | 8 | 9 | 10 | 11 | 12 | 13 | 21 => rofs(&mut w, 1),
            14 => rofs(&mut w, 2),
            15 => {
                w.item(&nfsstat3::NFS3ERR_ROFS)
                    .item(&post_op_attr::Void)
                    .item(&wcc_data::default());
            }
            _ => return Ok(None),
        }
        let pad = (4 - data.iter().map(Slice::len).sum::<usize>() % 4) % 4;
        Ok(Some(Reply {
            head: w.buf,
            data,
            pad,
        }))
    }

    fn getattr(&self, r: &mut Reader, w: &mut Writer, caller: &Caller) -> Result<(), Garbage> {
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

    fn lookup(&self, r: &mut Reader, w: &mut Writer, caller: &Caller) -> Result<(), Garbage> {
        let t = self.target(r, caller)?;
        let name = r.opaque(PATH_MAX)?;
        let t = match t {
            Ok(t) => t,
            Err(s) => {
                w.item(&s).item(&post_op_attr::Void);
                return Ok(());
            }
        };
        // The directory's attributes, read once: for the checks and for the reply.
        let dir = self.vfs.getattr(&t.node);
        let dir_attr = dir
            .as_ref()
            .map_or(post_op_attr::Void, |a| post_op_attr::attributes(fattr(a)));
        let res = (|| {
            if name.len() > NAME_MAX {
                return Err(nfsstat3::NFS3ERR_NAMETOOLONG);
            }
            let a = dir.map_err(|e| stat_of(&e))?;
            if a.kind != NodeKind::Dir {
                return Err(nfsstat3::NFS3ERR_NOTDIR);
            }
            if !permitted(&a, &t.creds, 1) {
                return Err(nfsstat3::NFS3ERR_ACCES);
            }
            let child = match name {
                b"." => t.node.clone(),
                b".." => self.parent_within(&t.tag, &t.node)?,
                _ => self.vfs.lookup(&t.node, name).map_err(|e| stat_of(&e))?,
            };
            let ca = self.vfs.getattr(&child).map_err(|e| stat_of(&e))?;
            Ok((self.handle(&t.tag, &child), ca))
        })();
        match res {
            Ok((fh, ca)) => {
                w.item(&nfsstat3::NFS3_OK)
                    .item(&fh)
                    .item(&post_op_attr::attributes(fattr(&ca)))
                    .item(&dir_attr);
            }
            Err(s) => {
                w.item(&s).item(&dir_attr);
            }
        }
        Ok(())
    }

    fn access(&self, r: &mut Reader, w: &mut Writer, caller: &Caller) -> Result<(), Garbage> {
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

    fn readlink(&self, r: &mut Reader, w: &mut Writer, caller: &Caller) -> Result<(), Garbage> {
        match self.target(r, caller)? {
            Ok(t) => match self.vfs.readlink(&t.node) {
                Ok(target) => {
                    w.item(&nfsstat3::NFS3_OK)
                        .item(&post_attr(&self.vfs, &t.node))
                        .opaque(&target);
                }
                Err(e) => {
                    w.item(&stat_of(&e)).item(&post_attr(&self.vfs, &t.node));
                }
            },
            Err(s) => {
                w.item(&s).item(&post_op_attr::Void);
            }
        }
        Ok(())
    }

    /// READ; the data is left in `data` (slices of cached chunks), to follow `w`'s bytes.
    fn read(
        &self,
        r: &mut Reader,
        w: &mut Writer,
        caller: &Caller,
        data: &mut Vec<Slice>,
    ) -> Result<(), Garbage> {
        let t = self.target(r, caller)?;
        let offset = r.u64()?;
        let count = r.u32()?.min(RTMAX);
        let res = t.and_then(|t| {
            let a = self.vfs.getattr(&t.node).map_err(|e| stat_of(&e))?;
            if a.kind != NodeKind::File {
                return Err(if a.kind == NodeKind::Dir {
                    nfsstat3::NFS3ERR_ISDIR
                } else {
                    nfsstat3::NFS3ERR_INVAL
                });
            }
            if !permitted(&a, &t.creds, 4) {
                return Err(nfsstat3::NFS3ERR_ACCES);
            }
            let f = self.vfs.open(&t.node).map_err(|e| stat_of(&e))?;
            Ok((a, f))
        });
        let res = res.and_then(|(a, f)| {
            // The data stays in the chunk cache: the reply is sent from there (no copy of up
            // to 1 MiB), after the words that say how long it is.
            let slices = self
                .vfs
                .read_slices(&f, offset, count)
                .map_err(|e| stat_of(&e))?;
            let n: usize = slices.iter().map(Slice::len).sum();
            let eof = offset.saturating_add(n as u64) >= a.size;
            w.item(&nfsstat3::NFS3_OK)
                .item(&post_op_attr::attributes(fattr(&a)));
            w.u32(n as u32).bool(eof).u32(n as u32);
            *data = slices;
            Ok(())
        });
        if let Err(s) = res {
            w.item(&s).item(&post_op_attr::Void);
        }
        Ok(())
    }

    /// READDIR and READDIRPLUS. Cookies are positions: 1 and 2 follow "." and "..", child
    /// `i` is followed by cookie `i + 3`, so every page size lists every entry exactly once.
    fn readdir(
        &self,
        r: &mut Reader,
        w: &mut Writer,
        caller: &Caller,
        plus: bool,
    ) -> Result<(), Garbage> {
        // Where this procedure's results start (after the RPC header).
        let start = w.buf.len();
        let t = self.target(r, caller)?;
        let cookie = r.u64()?;
        let _verf = r.fixed(8)?;
        let (dircount, maxcount) = if plus {
            (r.u32()? as usize, r.u32()? as usize)
        } else {
            let c = r.u32()? as usize;
            (c, c)
        };
        let res = t.and_then(|t| {
            let a = self.vfs.getattr(&t.node).map_err(|e| stat_of(&e))?;
            if a.kind != NodeKind::Dir {
                return Err(nfsstat3::NFS3ERR_NOTDIR);
            }
            if !permitted(&a, &t.creds, 4) {
                return Err(nfsstat3::NFS3ERR_ACCES);
            }
            let dir = self.vfs.readdir(&t.node).map_err(|e| stat_of(&e))?;
            Ok((t, a, dir))
        });
        let (t, a, dir) = match res {
            Ok(x) => x,
            Err(s) => {
                w.item(&s).item(&post_op_attr::Void);
                return Ok(());
            }
        };
        if cookie > dir.end_cookie() {
            w.item(&nfsstat3::NFS3ERR_BAD_COOKIE)
                .item(&post_op_attr::attributes(fattr(&a)));
            return Ok(());
        }
        w.item(&nfsstat3::NFS3_OK)
            .item(&post_op_attr::attributes(fattr(&a)))
            .fixed(&[0u8; 8]);
        // Reply so far (RPC header included), plus the final "no more entries" and eof words,
        // plus record marking.
        let mut size = w.buf.len() + 8 + 4;
        let mut dirbytes = 0usize;
        let mut pos = cookie;
        let total = dir.end_cookie();
        for (added, entry) in dir.entries_from(cookie).enumerate() {
            let mut e = Writer::default();
            e.bool(true)
                .u64(entry.node.ino())
                .opaque(entry.name)
                .u64(entry.cookie);
            let entry_dir = 8 + opaque_len(entry.name.len()) + 8;
            if plus {
                // `..` gets no attributes or handle: the listing does not look up the parent
                // (the client asks LOOKUP ".." when it needs it).
                let attr = (entry.name != b"..")
                    .then(|| self.vfs.getattr(&entry.node).ok())
                    .flatten();
                match attr {
                    Some(ca) => {
                        e.item(&post_op_attr::attributes(fattr(&ca)))
                            .item(&post_op_fh3::handle(self.handle(&t.tag, &entry.node)));
                    }
                    None => {
                        e.item(&post_op_attr::Void).item(&post_op_fh3::Void);
                    }
                }
            }
            if size + e.buf.len() > maxcount || dirbytes + entry_dir > dircount {
                if added == 0 {
                    w.buf.truncate(start);
                    w.item(&nfsstat3::NFS3ERR_TOOSMALL)
                        .item(&post_op_attr::attributes(fattr(&a)));
                    return Ok(());
                }
                break;
            }
            size += e.buf.len();
            dirbytes += entry_dir;
            w.buf.extend_from_slice(&e.buf);
            pos = entry.cookie;
        }
        w.bool(false).bool(pos >= total);
        Ok(())
    }

    fn fsstat(&self, r: &mut Reader, w: &mut Writer, caller: &Caller) -> Result<(), Garbage> {
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

    fn fsinfo(&self, r: &mut Reader, w: &mut Writer, caller: &Caller) -> Result<(), Garbage> {
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

    fn pathconf(&self, r: &mut Reader, w: &mut Writer, caller: &Caller) -> Result<(), Garbage> {
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

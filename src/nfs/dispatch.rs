//! One RPC call in, one reply out: the program and procedure dispatch of MOUNT v3 and NFS v3
//! (RFC 1813) over the view, and the checks every request goes through: the handle's MAC, the
//! exports (client address, source port, the handle's export) and the caller's credentials
//! (after squashing), which the procedures (`attr`, `lookup`, `read`, `readdir`, `mount`)
//! check against each file's mode, the way knfsd does.

use std::net::SocketAddr;
use std::sync::Arc;

use nfsserve::nfs::{nfs_fh3, nfsstat3, post_op_attr, wcc_data};

use super::exports::{Creds, Exports, Options};
use super::handle::{ExportTag, HandleKey};
use super::rpc::{self, Call, Cred};
use super::xdr::{Garbage, Reader, Writer};
use crate::vfs::{Node, Slice, Vfs, VfsError};

pub const NFS_PROGRAM: u32 = 100003;
pub const MOUNT_PROGRAM: u32 = 100005;
const NFS_VERSION: u32 = 3;
const MOUNT_VERSION: u32 = 3;

/// Largest READ we serve (FSINFO rtmax).
pub const RTMAX: u32 = 1 << 20;
pub(super) const NAME_MAX: usize = 255;
pub(super) const PATH_MAX: usize = 1024;

/// The NFS and MOUNT service over one view.
pub struct Service {
    pub(super) vfs: Arc<Vfs>,
    pub(super) exports: Exports,
    pub(super) key: HandleKey,
}

/// Who is asking, as far as access control is concerned.
pub(super) struct Caller<'a> {
    pub(super) peer: SocketAddr,
    pub(super) cred: &'a Cred,
}

/// A reply: its bytes, then (READ only) the data as slices of cached chunks and the zero bytes
/// that pad it to a multiple of 4. The server writes the parts with one `writev`.
pub struct Reply {
    pub head: Vec<u8>,
    pub data: Vec<Slice>,
    pub pad: usize,
}

impl Reply {
    pub(super) fn bytes(head: Vec<u8>) -> Self {
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
pub(super) struct Target {
    pub(super) node: Node,
    pub(super) tag: ExportTag,
    pub(super) creds: Creds,
}

pub(super) fn stat_of(e: &VfsError) -> nfsstat3 {
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

impl Service {
    pub fn new(vfs: Arc<Vfs>, exports: Exports, key: HandleKey) -> Self {
        Service { vfs, exports, key }
    }

    pub(super) fn handle(&self, tag: &ExportTag, node: &Node) -> nfs_fh3 {
        nfs_fh3 {
            data: self.key.make(tag, &self.vfs.encode_node(node)),
        }
    }

    /// The export options that apply to this caller for export `tag`, checked against the
    /// source port; `Err` is the status to answer.
    pub(super) fn options(&self, tag: &ExportTag, caller: &Caller) -> Result<&Options, nfsstat3> {
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
    pub(super) fn target(
        &self,
        r: &mut Reader,
        caller: &Caller,
    ) -> Result<Result<Target, nfsstat3>, Garbage> {
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
}

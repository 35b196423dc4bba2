//! The MOUNT protocol (version 3): MNT through the view's one resolver, EXPORT, and the
//! procedures that keep no state.

use nfsserve::nfs::nfs_fh3;

use super::dispatch::{Caller, Service, PATH_MAX};
use super::exports::normalise;
use super::rpc::Call;
use super::xdr::{Garbage, Reader, Writer};
use crate::engine::format::tree::NodeKind;
use crate::vfs::VfsError;

/// MOUNT status codes.
const MNT3_OK: u32 = 0;
const MNT3ERR_PERM: u32 = 1;
const MNT3ERR_NOENT: u32 = 2;
const MNT3ERR_ACCES: u32 = 13;
const MNT3ERR_NOTDIR: u32 = 20;
const MNT3ERR_SERVERFAULT: u32 = 10006;

impl Service {
    pub(super) fn mount(&self, call: &Call, caller: &Caller) -> Result<Option<Vec<u8>>, Garbage> {
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

    pub(super) fn mnt(&self, path: &str, caller: &Caller) -> Result<nfs_fh3, u32> {
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
}

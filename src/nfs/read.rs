//! READ (its data sent from the chunk cache) and READLINK.

use nfsserve::nfs::{nfsstat3, post_op_attr};

use super::attr::{fattr, permitted, post_attr};
use super::dispatch::{stat_of, Caller, Service, RTMAX};
use super::xdr::{Garbage, Reader, Writer};
use crate::engine::format::tree::NodeKind;
use crate::vfs::Slice;

impl Service {
    /// READ; the data is left in `data` (slices of cached chunks), to follow `w`'s bytes.
    pub(super) fn read(
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

    pub(super) fn readlink(
        &self,
        r: &mut Reader,
        w: &mut Writer,
        caller: &Caller,
    ) -> Result<(), Garbage> {
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
}

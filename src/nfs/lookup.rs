//! LOOKUP, with `.` and `..` (which never leaves the export).

use nfsserve::nfs::{nfsstat3, post_op_attr};

use super::attr::{fattr, permitted};
use super::dispatch::{stat_of, Caller, Service, NAME_MAX, PATH_MAX};
use super::handle::ExportTag;
use super::xdr::{Garbage, Reader, Writer};
use crate::engine::format::tree::NodeKind;
use crate::vfs::Node;

impl Service {
    pub(super) fn lookup(
        &self,
        r: &mut Reader,
        w: &mut Writer,
        caller: &Caller,
    ) -> Result<(), Garbage> {
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

    /// `..` of `node` under the export with `tag`: its parent while that is still inside the
    /// export, else (at the export's root) the node itself, as knfsd answers: a client never
    /// climbs out of its export.
    pub(super) fn parent_within(&self, tag: &ExportTag, node: &Node) -> Result<Node, nfsstat3> {
        let export = self.exports.by_tag(tag).ok_or(nfsstat3::NFS3ERR_STALE)?;
        let (parent, path) = self.vfs.parent(node).map_err(|e| stat_of(&e))?;
        Ok(match std::str::from_utf8(&path) {
            Ok(p) if export.covers(p) => parent,
            _ => node.clone(),
        })
    }
}

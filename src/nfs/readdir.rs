//! READDIR and READDIRPLUS, paged by the view's cookies.

use nfsserve::nfs::{nfsstat3, post_op_attr, post_op_fh3};

use super::attr::{fattr, permitted};
use super::dispatch::{stat_of, Caller, Service, RTMAX};
use super::xdr::{opaque_len, Garbage, Reader, Writer};
use crate::engine::format::tree::NodeKind;

impl Service {
    /// READDIR and READDIRPLUS. Cookies are positions: 1 and 2 follow "." and "..", child
    /// `i` is followed by cookie `i + 3`, so every page size lists every entry exactly once.
    pub(super) fn readdir(
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
        let verf: [u8; 8] = r.fixed(8)?.try_into().map_err(|_| Garbage)?;
        // A reply is never bigger than the advertised maximum transfer (FSINFO rtmax), however
        // much the client asks for: one READDIRPLUS was 18.8 MB for count=0xffffffff.
        let cap = |n: u32| (n as usize).min(RTMAX as usize);
        let (dircount, maxcount) = if plus {
            (cap(r.u32()?), cap(r.u32()?))
        } else {
            let c = cap(r.u32()?);
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
        // A cookie is a position in the listing the verifier names (`Dir::verifier`): once the
        // listing changed (a point directory at a rotation), an old cookie could skip or repeat
        // entries, so it is refused and the client starts again. A zero verifier asks for no
        // check (RFC 1813 lets a server ignore it, and clients send zeros with cookie 0).
        let current = dir.verifier();
        let stale_verf = cookie != 0 && verf != [0; 8] && verf != current;
        if cookie > dir.end_cookie() || stale_verf {
            w.item(&nfsstat3::NFS3ERR_BAD_COOKIE)
                .item(&post_op_attr::attributes(fattr(&a)));
            return Ok(());
        }
        w.item(&nfsstat3::NFS3_OK)
            .item(&post_op_attr::attributes(fattr(&a)))
            .fixed(&current);
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
}

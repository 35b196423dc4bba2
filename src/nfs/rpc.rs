//! ONC RPC v2 (RFC 5531): call headers, AUTH_SYS credentials, reply headers, record marking.

use super::xdr::{Garbage, Reader, Writer};

/// Largest record we accept; anything bigger closes the connection (we never need more than
/// a WRITE's payload, which we refuse anyway).
pub const MAX_RECORD: usize = 2 << 20;

/// The caller's credentials as sent.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Cred {
    /// AUTH_NONE, treated as the anonymous user.
    None,
    /// AUTH_SYS.
    Sys { uid: u32, gid: u32, gids: Vec<u32> },
}

/// A decoded call header; `args` are the procedure's argument bytes.
pub struct Call<'a> {
    pub xid: u32,
    pub prog: u32,
    pub vers: u32,
    pub proc_: u32,
    pub cred: Cred,
    pub args: &'a [u8],
}

/// Why a record is not a call we can answer normally.
pub enum BadCall {
    /// Not even an xid: drop it.
    Unreadable,
    /// Not RPC version 2 (or not a CALL): answer RPC_MISMATCH.
    Mismatch(u32),
    /// A credential we cannot parse: answer AUTH_BADCRED.
    BadCred(u32),
}

const AUTH_NONE: u32 = 0;
const AUTH_SYS: u32 = 1;

fn parse_auth_sys(body: &[u8]) -> Result<Cred, Garbage> {
    let mut r = Reader::new(body);
    let _stamp = r.u32()?;
    let _machine = r.opaque(255)?;
    let uid = r.u32()?;
    let gid = r.u32()?;
    let n = r.u32()?;
    if n > 16 {
        return Err(Garbage);
    }
    let mut gids = Vec::with_capacity(n as usize);
    for _ in 0..n {
        gids.push(r.u32()?);
    }
    Ok(Cred::Sys { uid, gid, gids })
}

/// Decode a call record.
pub fn parse_call(record: &[u8]) -> Result<Call<'_>, BadCall> {
    let mut r = Reader::new(record);
    let xid = r.u32().map_err(|_| BadCall::Unreadable)?;
    let mtype = r.u32().map_err(|_| BadCall::Unreadable)?;
    if mtype != 0 {
        return Err(BadCall::Unreadable);
    }
    let rpcvers = r.u32().map_err(|_| BadCall::Unreadable)?;
    if rpcvers != 2 {
        return Err(BadCall::Mismatch(xid));
    }
    let mut head = || -> Result<(u32, u32, u32, u32, &[u8]), Garbage> {
        let prog = r.u32()?;
        let vers = r.u32()?;
        let proc_ = r.u32()?;
        let flavor = r.u32()?;
        let body = r.opaque(400)?;
        let _verf_flavor = r.u32()?;
        let _verf = r.opaque(400)?;
        Ok((prog, vers, proc_, flavor, body))
    };
    let (prog, vers, proc_, flavor, body) = head().map_err(|_| BadCall::BadCred(xid))?;
    let cred = match flavor {
        AUTH_SYS => parse_auth_sys(body).map_err(|_| BadCall::BadCred(xid))?,
        AUTH_NONE => Cred::None,
        // RFC 5531: a flavor the server does not support is an authentication error, not a
        // way in as the anonymous user (Linux's server answers the same).
        _ => return Err(BadCall::BadCred(xid)),
    };
    Ok(Call {
        xid,
        prog,
        vers,
        proc_,
        cred,
        args: r.rest(),
    })
}

/// accept_stat values.
pub const SUCCESS: u32 = 0;
pub const PROG_UNAVAIL: u32 = 1;
pub const PROG_MISMATCH: u32 = 2;
pub const PROC_UNAVAIL: u32 = 3;
pub const GARBAGE_ARGS: u32 = 4;

/// auth_stat values.
pub const AUTH_BADCRED: u32 = 1;
pub const AUTH_TOOWEAK: u32 = 5;

/// Start an accepted reply; the procedure's results follow in the same writer.
pub fn accepted(xid: u32, stat: u32) -> Writer {
    let mut w = Writer::default();
    w.u32(xid).u32(1).u32(0).u32(AUTH_NONE).u32(0).u32(stat);
    w
}

/// A PROG_MISMATCH reply naming the one version we serve.
pub fn prog_mismatch(xid: u32, version: u32) -> Vec<u8> {
    let mut w = accepted(xid, PROG_MISMATCH);
    w.u32(version).u32(version);
    w.buf
}

/// A reply refusing the caller's authentication.
pub fn auth_error(xid: u32, stat: u32) -> Vec<u8> {
    let mut w = Writer::default();
    w.u32(xid).u32(1).u32(1).u32(1).u32(stat);
    w.buf
}

/// A reply to a call of the wrong RPC version.
pub fn rpc_mismatch(xid: u32) -> Vec<u8> {
    let mut w = Writer::default();
    w.u32(xid).u32(1).u32(1).u32(0).u32(2).u32(2);
    w.buf
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn call(flavor: u32, body: &[u8]) -> Vec<u8> {
        let mut w = Writer::default();
        w.u32(42)
            .u32(0)
            .u32(2)
            .u32(100003)
            .u32(3)
            .u32(1)
            .u32(flavor)
            .opaque(body)
            .u32(0)
            .u32(0)
            .u32(9);
        w.buf
    }

    #[test]
    fn auth_sys_is_decoded() {
        let mut b = Writer::default();
        b.u32(1)
            .opaque(b"client")
            .u32(1000)
            .u32(100)
            .u32(2)
            .u32(4)
            .u32(27);
        let rec = call(1, &b.buf);
        let c = parse_call(&rec).ok().unwrap();
        assert_eq!((c.xid, c.prog, c.vers, c.proc_), (42, 100003, 3, 1));
        assert_eq!(
            c.cred,
            Cred::Sys {
                uid: 1000,
                gid: 100,
                gids: vec![4, 27]
            }
        );
        assert_eq!(c.args, &9u32.to_be_bytes());
    }

    #[test]
    fn unknown_flavors_are_refused() {
        // AUTH_DH (3), RPCSEC_GSS (6), anything else: AUTH_ERROR, never anonymous.
        for flavor in [2u32, 3, 6, 390003, u32::MAX] {
            assert!(
                matches!(parse_call(&call(flavor, b"")), Err(BadCall::BadCred(42))),
                "flavor {flavor}"
            );
        }
        assert!(parse_call(&call(AUTH_NONE, b"")).is_ok());
    }

    proptest! {
        #[test]
        fn never_panics(data in proptest::collection::vec(any::<u8>(), 0..200)) {
            let _ = parse_call(&data);
        }

        #[test]
        fn damaged_calls_never_panic(pos in 0usize..80, val in any::<u8>()) {
            let mut b = Writer::default();
            b.u32(1).opaque(b"client").u32(1000).u32(100).u32(1).u32(4);
            let mut rec = call(1, &b.buf);
            let p = pos % rec.len();
            rec[p] = val;
            let _ = parse_call(&rec);
            let _ = parse_call(&rec[..p]);
        }
    }
}

//! The NFSv3 server: exports the view ([`crate::vfs`]) read-only to NFS clients.
//!
//! `nfsserve`'s file-system trait sees neither client addresses nor credentials, which access
//! control needs, so this module owns the ONC RPC, MOUNT and NFS dispatch itself and uses the
//! crate's public NFSv3 types and XDR encoding for replies. MOUNT is answered on the same
//! port, so clients need no portmapper (`port=N,mountport=N`).

mod attr;
mod dispatch;
pub(crate) mod exports;
pub(crate) mod handle;
mod lookup;
mod mount;
mod read;
mod readdir;
pub mod rpc;
pub(crate) mod server;
pub mod xdr;

pub use dispatch::{Reply, Service};
pub use exports::Exports;
pub use handle::HandleKey;
pub use server::serve;

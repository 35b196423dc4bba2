//! `yester cat`: print a file from a snapshot to standard output.

use std::ffi::OsString;
use std::io::{self, Write};

use anyhow::{bail, Result};
use clap::Args;
use yester::engine::format::tree::NodeKind;
use yester::engine::{lookup, Node};

use crate::cli::context::Ctx;
use crate::cli::repo;

#[derive(Args)]
pub struct CatArgs {
    /// SNAPSHOT:PATH
    spec: OsString,
}

pub fn cat(ctx: &Ctx, a: CatArgs) -> Result<u8> {
    let (repo, view) = repo::open_view(ctx)?;
    let (s, path) = repo::resolve(&view, &a.spec)?;
    let reader = repo.reader()?;
    let e = match lookup(&reader, s.snapshot.tree, &path)? {
        Node::Entry(e) if e.kind == NodeKind::File => e,
        _ => bail!("{}: not a regular file", String::from_utf8_lossy(&path)),
    };
    let mut out = io::stdout().lock();
    for c in &e.chunks {
        out.write_all(&reader.read_chunk(c)?)?;
    }
    out.flush()?;
    Ok(0)
}

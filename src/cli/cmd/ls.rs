//! `yester ls`: list files in a snapshot.

use std::ffi::OsString;
use std::io::{self, Write};

use anyhow::Result;
use clap::Args;
use yester::engine::format::tree::{Entry, NodeKind};
use yester::engine::{lookup, Node};
use yester::engine::{BlobId, BlobReader};

use crate::cli::context::Ctx;
use crate::cli::{format, repo};

#[derive(Args)]
pub struct LsArgs {
    /// SNAPSHOT[:PATH]
    spec: OsString,
    /// Long listing: mode, links, uid, gid, size, mtime
    #[arg(short, long)]
    long: bool,
    /// List everything below the path
    #[arg(short = 'R', long)]
    recursive: bool,
}

fn write_entry(out: &mut impl Write, long: bool, e: &Entry, path: &[u8]) -> io::Result<()> {
    if long {
        out.write_all(format::long_prefix(e).as_bytes())?;
    }
    out.write_all(path)?;
    if long && e.kind == NodeKind::Symlink {
        out.write_all(b" -> ")?;
        out.write_all(&e.target)?;
    }
    out.write_all(b"\n")
}

fn ls_tree(
    reader: &BlobReader,
    out: &mut impl Write,
    a: &LsArgs,
    id: BlobId,
    prefix: &[u8],
) -> Result<()> {
    let tree = reader.read_tree(&id)?;
    for e in &tree.entries {
        let mut p = prefix.to_vec();
        p.push(b'/');
        p.extend_from_slice(&e.name);
        write_entry(out, a.long, e, &p)?;
        if a.recursive && e.kind == NodeKind::Dir {
            ls_tree(reader, out, a, e.subtree.unwrap_or_default(), &p)?;
        }
    }
    Ok(())
}

fn normalize(path: &[u8]) -> Vec<u8> {
    let parts: Vec<&[u8]> = path
        .split(|&b| b == b'/')
        .filter(|c| !c.is_empty() && *c != b".")
        .collect();
    parts.join(&b'/')
}

pub fn ls(ctx: &Ctx, a: LsArgs) -> Result<u8> {
    let (repo, view) = repo::open_view(ctx)?;
    let (s, path) = repo::resolve(&view, &a.spec)?;
    let reader = repo.reader()?;
    let path = normalize(&path);
    let node = lookup(&reader, s.snapshot.tree, &path)?;
    let mut out = io::BufWriter::new(io::stdout().lock());
    let mut shown = Vec::new();
    if !path.is_empty() {
        shown.push(b'/');
        shown.extend_from_slice(&path);
    }
    match node {
        Node::Root(id) => ls_tree(&reader, &mut out, &a, id, &shown)?,
        Node::Entry(e) if e.kind == NodeKind::Dir => {
            ls_tree(&reader, &mut out, &a, e.subtree.unwrap_or_default(), &shown)?
        }
        Node::Entry(e) => write_entry(&mut out, a.long, &e, &shown)?,
    }
    out.flush()?;
    Ok(0)
}

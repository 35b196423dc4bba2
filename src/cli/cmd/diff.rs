//! `yester diff`: what changed between two snapshots or subtrees.

use std::ffi::OsString;
use std::io::{self, Write};

use anyhow::Result;
use clap::Args;
use yester::engine::format::tree::NodeKind;
use yester::engine::lookup;
use yester::engine::{diff as diff_trees, Change};

use crate::cli::context::Ctx;
use crate::cli::repo;

#[derive(Args)]
pub struct DiffArgs {
    /// The older snapshot or subtree
    a: OsString,
    /// The newer snapshot or subtree
    b: OsString,
    /// Print JSON
    #[arg(long)]
    json: bool,
}

pub fn diff(ctx: &Ctx, a: DiffArgs) -> Result<u8> {
    let (repo, view) = repo::open_view(ctx)?;
    let reader = repo.reader()?;
    let (sa, pa) = repo::resolve(&view, &a.a)?;
    let (sb, pb) = repo::resolve(&view, &a.b)?;
    let na = lookup(&reader, sa.snapshot.tree, &pa)?;
    let nb = lookup(&reader, sb.snapshot.tree, &pb)?;
    let diffs = diff_trees(&reader, &na, &nb)?;
    let mut out = io::BufWriter::new(io::stdout().lock());
    if a.json {
        let mut groups = serde_json::Map::new();
        for c in [
            Change::Added,
            Change::Removed,
            Change::Modified,
            Change::Metadata,
        ] {
            let paths: Vec<String> = diffs
                .iter()
                .filter(|d| d.change == c)
                .map(|d| String::from_utf8_lossy(&d.path).into_owned())
                .collect();
            groups.insert(c.name().to_string(), paths.into());
        }
        writeln!(out, "{}", serde_json::to_string_pretty(&groups)?)?;
    } else {
        for d in &diffs {
            write!(out, "{} ", d.change.letter())?;
            out.write_all(if d.path.is_empty() { b"." } else { &d.path })?;
            if d.kind == NodeKind::Dir {
                out.write_all(b"/")?;
            }
            out.write_all(b"\n")?;
        }
    }
    out.flush()?;
    Ok(0)
}

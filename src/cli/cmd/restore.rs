//! `yester restore`: restore a snapshot or part of it into a directory.

use std::ffi::OsString;
use std::path::PathBuf;

use anyhow::Result;
use clap::Args;
use yester::engine::lookup;
use yester::engine::RestoreOptions;

use crate::cli::context::Ctx;
use crate::cli::progress::RestoreBar;
use crate::cli::{format, repo};

#[derive(Args)]
pub struct RestoreArgs {
    /// SNAPSHOT[:PATH]
    spec: OsString,
    /// Directory to restore into (created if missing)
    #[arg(long, short = 't')]
    target: PathBuf,
    /// Replace files that already exist
    #[arg(long)]
    overwrite: bool,
    /// Threads writing files (default: 2 per core, at least 4)
    #[arg(long, short = 'j', value_parser = clap::value_parser!(u16).range(1..=1024))]
    jobs: Option<u16>,
}

pub fn restore(ctx: &Ctx, a: RestoreArgs) -> Result<u8> {
    let (repo, view) = repo::open_view(ctx)?;
    let (s, path) = repo::resolve(&view, &a.spec)?;
    let reader = repo.reader()?;
    let node = lookup(&reader, s.snapshot.tree, &path)?;
    let opts = RestoreOptions {
        target: a.target.clone(),
        overwrite: a.overwrite,
        jobs: a.jobs.map(usize::from),
    };
    let total = if ctx.quiet || !std::io::IsTerminal::is_terminal(&std::io::stderr()) {
        0
    } else {
        yester::engine::restore_total_bytes(&reader, &node)?
    };
    let r = yester::engine::restore(&reader, &node, &opts, &RestoreBar::new(ctx.quiet, total))?;
    for e in &r.errors {
        eprintln!("yester: {e}");
    }
    if !ctx.quiet {
        println!(
            "restored {} files, {} dirs, {} others, {} into {}{}",
            r.files,
            r.dirs,
            r.others,
            format::bytes(r.bytes),
            a.target.display(),
            if r.errors.is_empty() {
                String::new()
            } else {
                format!(", {} errors", r.errors.len())
            }
        );
    }
    Ok(if r.errors.is_empty() { 0 } else { 1 })
}

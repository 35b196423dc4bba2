//! `yester forget`: remove snapshots from their points and delete their records.

use std::ffi::OsString;

use anyhow::{bail, Context, Result};
use clap::Args;

use crate::cli::context::Ctx;
use crate::cli::repo;

#[derive(Args)]
pub struct ForgetArgs {
    /// Snapshots to forget
    #[arg(required = true)]
    snapshots: Vec<OsString>,
}

pub fn forget(ctx: &Ctx, a: ForgetArgs) -> Result<u8> {
    let (repo, view) = repo::open_view(ctx)?;
    let mut targets = Vec::new();
    for spec in &a.snapshots {
        let (s, path) = repo::resolve(&view, spec)?;
        if !path.iter().all(|&b| b == b'/') {
            bail!(
                "{}: forget takes whole snapshots, not paths inside them",
                spec.to_string_lossy()
            );
        }
        targets.push(s.clone());
    }
    for s in targets {
        yester::points::forget(&repo, &s.snapshot.source, &[s.id], ctx.lock_wait)
            .with_context(|| format!("forgetting {}", s.id.short()))?;
        if !ctx.quiet {
            println!(
                "forgot snapshot {} of {} ({})",
                s.id.short(),
                s.snapshot.source,
                s.snapshot.time
            );
        }
    }
    Ok(0)
}

//! `yester unlock`: remove locks left by processes that no longer run.

use anyhow::Result;
use clap::Args;

use crate::cli::context::Ctx;
use crate::cli::repo;

#[derive(Args)]
pub struct UnlockArgs {
    /// Remove every lock, also those of live or remote processes
    #[arg(long)]
    all: bool,
}

pub fn unlock(ctx: &Ctx, a: UnlockArgs) -> Result<u8> {
    let repo = repo::open(ctx)?;
    let removed = repo.unlock(a.all)?;
    if !ctx.quiet {
        for r in &removed {
            println!("removed {r}");
        }
        if removed.is_empty() {
            println!("no stale locks");
        }
    }
    Ok(0)
}

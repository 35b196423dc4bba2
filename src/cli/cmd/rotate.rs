//! `yester rotate LEVEL`: promote the oldest point of the level below into LEVEL.0.

use anyhow::{bail, Result};
use clap::Args;
use yester::points::RotateOutcome;

use crate::cli::context::Ctx;
use crate::cli::repo;

#[derive(Args)]
pub struct RotateArgs {
    /// The level to rotate into (e.g. daily)
    level: String,
    /// Only this source (default: every source)
    #[arg(long)]
    source: Option<String>,
}

pub fn rotate(ctx: &Ctx, a: RotateArgs) -> Result<u8> {
    let (repo, view) = repo::open_view(ctx)?;
    let sources: Vec<String> = match &a.source {
        Some(s) => vec![s.clone()],
        None => view.sources.keys().cloned().collect(),
    };
    if sources.is_empty() {
        bail!("the repository has no sources yet");
    }
    for source in sources {
        match yester::points::rotate(&repo, &source, &a.level, ctx.lock_wait)? {
            RotateOutcome::Promoted {
                from,
                to,
                snapshot,
                dropped,
            } => {
                if !ctx.quiet {
                    println!("{source}: {from} ({}) became {to}", snapshot.short());
                    for d in dropped {
                        println!(
                            "{source}: snapshot {} dropped (past the last {} point)",
                            d.short(),
                            a.level
                        );
                    }
                }
            }
            RotateOutcome::NotFull { lower, have, keep } => {
                if !ctx.quiet {
                    println!(
                        "{source}: nothing to rotate: {lower} has {have} of {keep} points; {} waits until it is full",
                        a.level
                    );
                }
            }
        }
    }
    Ok(0)
}

//! `yester prune`: delete data no snapshot references and repack mostly-empty packs.

use anyhow::{bail, Result};
use clap::Args;
use yester::engine::{prune as prune_repo, PruneOptions};

use crate::cli::context::Ctx;
use crate::cli::{format, progress, repo};

#[derive(Args)]
pub struct PruneArgs {
    /// Only report what would be done
    #[arg(long, short = 'n')]
    dry_run: bool,
    /// Repack packs with more than this percentage of unused bytes
    #[arg(long, default_value_t = 20.0)]
    max_unused: f64,
}

pub fn prune(ctx: &Ctx, a: PruneArgs) -> Result<u8> {
    let repo = repo::open(ctx)?;
    if !(0.0..=100.0).contains(&a.max_unused) {
        bail!("--max-unused is a percentage between 0 and 100");
    }
    let spin = progress::spinner(
        ctx.quiet,
        if a.dry_run {
            "looking for unused data"
        } else {
            "pruning"
        },
    );
    let r = prune_repo(
        &repo,
        &PruneOptions {
            dry_run: a.dry_run,
            max_unused: a.max_unused / 100.0,
            lock_wait: ctx.lock_wait,
        },
    )?;
    // Superseded point catalogue generations (docs/FORMAT.md, "Point catalogues").
    let cats = yester::points::prune_catalogs(&repo, a.dry_run)?;
    if let Some(s) = spin {
        s.finish_and_clear();
    }
    for w in r.warnings.iter().chain(&cats.warnings) {
        eprintln!("yester: {w}");
    }
    if !ctx.quiet {
        println!(
            "{}{} snapshots keep {} blobs; {} of {} packs deleted, {} repacked into {} new, {} unindexed removed; {} {}",
            if a.dry_run { "dry run: " } else { "" },
            r.snapshots,
            r.live_blobs,
            r.packs_deleted,
            r.packs_total,
            r.packs_repacked,
            r.packs_written,
            r.packs_unindexed,
            format::bytes(r.bytes_freed.max(0) as u64),
            if a.dry_run { "would be freed" } else { "freed" }
        );
        if !cats.deleted.is_empty() {
            println!(
                "{}{} superseded point catalogue generations",
                if a.dry_run {
                    "dry run: would delete "
                } else {
                    "deleted "
                },
                cats.deleted.len()
            );
        }
    }
    Ok(0)
}

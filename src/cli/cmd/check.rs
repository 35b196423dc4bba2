//! `yester check`: verify the repository; exit status 1 if anything is damaged.

use anyhow::Result;
use clap::Args;
use yester::engine::{check as check_repo, repair_index, CheckOptions};

use crate::cli::context::Ctx;
use crate::cli::progress::CheckBar;
use crate::cli::repo;

#[derive(Args)]
pub struct CheckArgs {
    /// Also read every blob and verify its content
    #[arg(long)]
    read_data: bool,
    /// Rebuild the index from the pack trailers (takes the exclusive lock)
    #[arg(long)]
    repair_index: bool,
}

pub fn check(ctx: &Ctx, a: CheckArgs) -> Result<u8> {
    let repo = repo::open(ctx)?;
    if a.repair_index {
        let (packs, unreadable) = repair_index(&repo, ctx.lock_wait)?;
        for u in &unreadable {
            eprintln!("yester: unreadable pack left out of the index: {u}");
        }
        if !ctx.quiet {
            println!("rebuilt the index from {packs} packs");
        }
    }
    let r = check_repo(
        &repo,
        CheckOptions {
            read_data: a.read_data,
        },
        &mut CheckBar::new(ctx.quiet),
    )?;
    // Point catalogues are the points module's business (docs/FORMAT.md, "Point catalogues").
    let cats = yester::points::check_catalogs(&repo)?;
    let mut r = r;
    r.notes.extend(cats.notes);
    r.damage.extend(cats.damage);
    if r.index_damaged {
        r.notes
            .push("`yester check --repair-index` rebuilds the index from the packs".into());
    }
    for n in &r.notes {
        eprintln!("note: {n}");
    }
    for d in &r.damage {
        println!("damaged: {d}");
    }
    if !ctx.quiet {
        println!(
            "checked {} snapshots, {} packs, {} blobs{}: {}",
            r.snapshots,
            r.packs,
            r.blobs,
            if a.read_data { " (all data read)" } else { "" },
            if r.is_clean() {
                "no errors".to_string()
            } else {
                format!("{} problems", r.damage.len())
            }
        );
    }
    Ok(if r.is_clean() { 0 } else { 1 })
}

//! `yester snapshots`: list snapshots, oldest first.

use std::io::{self, Write};

use anyhow::Result;
use clap::Args;
use yester::engine::format::snapshot::SnapshotEntry;

use crate::cli::context::Ctx;
use crate::cli::{format, repo};

#[derive(Args)]
pub struct SnapshotsArgs {
    /// Only this source
    #[arg(long)]
    source: Option<String>,
    /// Print JSON
    #[arg(long)]
    json: bool,
}

pub fn snapshots(ctx: &Ctx, a: SnapshotsArgs) -> Result<u8> {
    let (_repo, view) = repo::open_view(ctx)?;
    let mut out = io::stdout().lock();
    let selected = view
        .sources
        .iter()
        .filter(|(name, _)| a.source.as_ref().is_none_or(|s| s == *name))
        .flat_map(|(_, sv)| sv.snapshots.iter().zip(sv.dated.iter()));
    let mut rows: Vec<(&SnapshotEntry, &String)> = selected.collect();
    rows.sort_by_key(|(e, _)| (e.snapshot.unix_time(), e.snapshot.time.clone(), e.id));
    if a.json {
        let v: Vec<serde_json::Value> = rows
            .iter()
            .map(|(e, dated)| {
                let s = &e.snapshot;
                serde_json::json!({
                    "id": e.id,
                    "short_id": e.id.short(),
                    "time": s.time,
                    "dated_name": dated,
                    "source": s.source,
                    "hostname": s.hostname,
                    "paths": s.paths,
                    "tree": s.tree,
                    "stats": s.stats,
                    "warnings": s.warnings,
                })
            })
            .collect();
        writeln!(out, "{}", serde_json::to_string_pretty(&v)?)?;
    } else {
        writeln!(
            out,
            "{:<8}  {:<17}  {:<16}  {:<16}  {:>10}  paths",
            "id", "date (UTC)", "source", "host", "size"
        )?;
        for (e, dated) in rows {
            let s = &e.snapshot;
            writeln!(
                out,
                "{:<8}  {:<17}  {:<16}  {:<16}  {:>10}  {}{}",
                e.id.short(),
                dated,
                s.source,
                s.hostname,
                format::bytes(s.stats.total_bytes),
                s.paths.join(" "),
                if s.warnings.is_empty() {
                    ""
                } else {
                    "  (partial)"
                }
            )?;
        }
    }
    Ok(0)
}

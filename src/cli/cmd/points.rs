//! `yester points`: list backup points (hourly.0 …) with their snapshots.

use std::io::{self, Write};

use anyhow::{bail, Result};
use clap::Args;

use crate::cli::context::Ctx;
use crate::cli::format::{age, now_secs};
use crate::cli::repo;

#[derive(Args)]
pub struct PointsArgs {
    /// Only this source
    #[arg(long)]
    source: Option<String>,
    /// Print JSON
    #[arg(long)]
    json: bool,
}

pub fn points(ctx: &Ctx, a: PointsArgs) -> Result<u8> {
    let (_repo, view) = repo::open_view(ctx)?;
    if let Some(s) = &a.source {
        if !view.sources.contains_key(s) {
            bail!("no source named {s:?} in the repository");
        }
    }
    let now = now_secs();
    let mut rows = Vec::new();
    for (name, sv) in view
        .sources
        .iter()
        .filter(|(n, _)| a.source.as_ref().is_none_or(|s| s == *n))
    {
        for (point, id) in sv.catalog.points(&view.levels) {
            let snap = sv.by_id(&id);
            rows.push((
                name.clone(),
                point,
                id,
                snap.cloned(),
                sv.dated_name_of(&id).map(str::to_string),
            ));
        }
    }
    let mut out = io::stdout().lock();
    if a.json {
        let v: Vec<serde_json::Value> = rows
            .iter()
            .map(|(source, point, id, snap, dated)| {
                serde_json::json!({
                    "source": source,
                    "point": point.to_string(),
                    "level": point.level,
                    "index": point.index,
                    "path": format!("{point}/{source}"),
                    "snapshot": id,
                    "time": snap.as_ref().map(|s| s.snapshot.time.clone()),
                    "dated_name": dated,
                    "age_secs": snap.as_ref().map(|s| now - s.snapshot.unix_time()),
                })
            })
            .collect();
        writeln!(out, "{}", serde_json::to_string_pretty(&v)?)?;
        return Ok(0);
    }
    writeln!(
        out,
        "{:<16}  {:<12}  {:<8}  {:<17}  age",
        "source", "point", "snapshot", "date (UTC)"
    )?;
    for (source, point, id, snap, dated) in rows {
        let (date, age_s) = match &snap {
            Some(s) => (dated.unwrap_or_default(), age(now - s.snapshot.unix_time())),
            None => ("(missing)".to_string(), String::new()),
        };
        writeln!(
            out,
            "{source:<16}  {:<12}  {:<8}  {date:<17}  {age_s}",
            point.to_string(),
            id.short()
        )?;
    }
    Ok(0)
}

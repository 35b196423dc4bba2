//! `yester status`: the newest backup per source, with Nagios-style exit codes and
//! node_exporter metrics for monitoring.

use std::path::PathBuf;
use std::time::SystemTime;

use anyhow::{Context, Result};
use clap::Args;
use yester::points::status::status as source_status;

use crate::cli::context::Ctx;
use crate::cli::format::{self, age, now_secs};
use crate::cli::repo;

#[derive(Args)]
pub struct StatusArgs {
    /// Only this source
    #[arg(long)]
    source: Option<String>,
    /// Alert threshold, e.g. 4h: exit 1 past it, 2 past twice it or with no backup
    #[arg(long, value_parser = humantime::parse_duration)]
    max_age: Option<std::time::Duration>,
    /// Write node_exporter textfile metrics to this file
    #[arg(long)]
    prometheus: Option<PathBuf>,
    /// Print JSON
    #[arg(long)]
    json: bool,
}

/// Escape a Prometheus label value.
fn label(s: &str) -> String {
    s.replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n")
}

pub fn status(ctx: &Ctx, a: StatusArgs) -> Result<u8> {
    let (repo, view) = repo::open_view(ctx)?;
    let (mut all, size) = source_status(&repo, &view, SystemTime::now())?;
    if let Some(s) = &a.source {
        all.retain(|x| &x.source == s);
        if all.is_empty() {
            // An expected source with no backup at all is the worst case for monitoring.
            all.push(yester::points::status::SourceStatus {
                source: s.clone(),
                newest: None,
                age_secs: None,
                snapshots: 0,
                points: 0,
            });
        }
    }
    if let Some(path) = &a.prometheus {
        let mut text = String::from(
            "# HELP yester_last_backup_timestamp_seconds Time of the newest snapshot of a source.\n\
             # TYPE yester_last_backup_timestamp_seconds gauge\n",
        );
        for s in &all {
            if let Some(age) = s.age_secs {
                text += &format!(
                    "yester_last_backup_timestamp_seconds{{source=\"{}\"}} {}\n",
                    label(&s.source),
                    now_secs() - age
                );
            }
        }
        text += "# HELP yester_snapshots Number of snapshots of a source.\n# TYPE yester_snapshots gauge\n";
        for s in &all {
            text += &format!(
                "yester_snapshots{{source=\"{}\"}} {}\n",
                label(&s.source),
                s.snapshots
            );
        }
        text += "# HELP yester_points Number of backup points of a source.\n# TYPE yester_points gauge\n";
        for s in &all {
            text += &format!(
                "yester_points{{source=\"{}\"}} {}\n",
                label(&s.source),
                s.points
            );
        }
        text += &format!(
            "# HELP yester_repository_size_bytes Bytes stored in the repository.\n# TYPE yester_repository_size_bytes gauge\nyester_repository_size_bytes {size}\n"
        );
        // node_exporter may read at any moment: write a temporary file and rename it.
        let tmp = path.with_extension("prom.tmp");
        std::fs::write(&tmp, text).with_context(|| format!("writing {}", tmp.display()))?;
        std::fs::rename(&tmp, path).with_context(|| format!("writing {}", path.display()))?;
    }
    // Nagios semantics: the worst source decides.
    let mut code = 0u8;
    let mut problems = Vec::new();
    if let Some(max) = a.max_age {
        let max = max.as_secs() as i64;
        for s in &all {
            let c = match s.age_secs {
                None => 2,
                Some(age) if age > 2 * max => 2,
                Some(age) if age > max => 1,
                _ => 0,
            };
            if c > 0 {
                problems.push(match s.age_secs {
                    None => format!("{} has no backup", s.source),
                    Some(secs) => format!("{} last backup {} ago", s.source, age(secs)),
                });
            }
            code = code.max(c);
        }
        if all.is_empty() {
            code = 2;
            problems.push("no sources have backups".into());
        }
    }
    if a.json {
        let v = serde_json::json!({ "sources": all, "repository_size_bytes": size, "exit": code });
        println!("{}", serde_json::to_string_pretty(&v)?);
    } else if a.max_age.is_some() {
        let state = ["OK", "WARNING", "CRITICAL"][usize::from(code)];
        let detail = if problems.is_empty() {
            let newest = all.iter().filter_map(|s| s.age_secs).max().unwrap_or(0);
            format!(
                "{} sources backed up, oldest newest-backup {} ago",
                all.len(),
                age(newest)
            )
        } else {
            problems.join(", ")
        };
        let perf: Vec<String> = all
            .iter()
            .filter_map(|s| s.age_secs.map(|a| format!("'{}_age'={}s", s.source, a)))
            .collect();
        println!("YESTER {state} - {detail} | {}", perf.join(" "));
    } else {
        println!(
            "{:<16}  {:<20}  {:>12}  {:>9}  {:>6}",
            "source", "newest (UTC)", "age", "snapshots", "points"
        );
        for s in &all {
            println!(
                "{:<16}  {:<20}  {:>12}  {:>9}  {:>6}",
                s.source,
                s.age_secs
                    .map_or("never".into(), |a| format::time(now_secs() - a)),
                s.age_secs.map_or(String::new(), age),
                s.snapshots,
                s.points
            );
        }
        println!("repository size {}", format::bytes(size));
    }
    Ok(code)
}

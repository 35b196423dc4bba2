//! Commands about backup points: points, rotate, diff, forget, prune, status.

use std::io::{self, Write};
use std::time::SystemTime;

use anyhow::{bail, Context, Result};
use yester::engine::diff::{diff as diff_trees, Change};
use yester::engine::lookup::lookup;
use yester::engine::prune::{prune as prune_repo, PruneOptions};
use yester::points::status::status as source_status;
use yester::points::RotateOutcome;

use super::commands::{open_view, resolve};
use super::{format, Ctx, DiffArgs, ForgetArgs, PointsArgs, PruneArgs, RotateArgs, StatusArgs};

fn now_secs() -> i64 {
    SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs() as i64)
}

/// "3h 12m" style age.
fn age(secs: i64) -> String {
    let s = secs.max(0) as u64;
    let short = humantime::format_duration(std::time::Duration::from_secs(s)).to_string();
    // Keep the two largest units: "1day 2h 3m 4s" → "1day 2h".
    short.split(' ').take(2).collect::<Vec<_>>().join(" ")
}

pub fn points(ctx: &Ctx, a: PointsArgs) -> Result<u8> {
    let (_repo, view) = open_view(ctx)?;
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

pub fn rotate(ctx: &Ctx, a: RotateArgs) -> Result<u8> {
    let (repo, view) = open_view(ctx)?;
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

pub fn diff(ctx: &Ctx, a: DiffArgs) -> Result<u8> {
    let (repo, view) = open_view(ctx)?;
    let reader = repo.reader()?;
    let (sa, pa) = resolve(&view, &a.a)?;
    let (sb, pb) = resolve(&view, &a.b)?;
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
            if d.kind == yester::engine::tree::NodeKind::Dir {
                out.write_all(b"/")?;
            }
            out.write_all(b"\n")?;
        }
    }
    out.flush()?;
    Ok(0)
}

pub fn forget(ctx: &Ctx, a: ForgetArgs) -> Result<u8> {
    let (repo, view) = open_view(ctx)?;
    let mut targets = Vec::new();
    for spec in &a.snapshots {
        let (s, path) = resolve(&view, spec)?;
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

pub fn prune(ctx: &Ctx, a: PruneArgs) -> Result<u8> {
    let repo = ctx.open()?;
    if !(0.0..=100.0).contains(&a.max_unused) {
        bail!("--max-unused is a percentage between 0 and 100");
    }
    let spin = super::progress::spinner(
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

/// Escape a Prometheus label value.
fn label(s: &str) -> String {
    s.replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n")
}

pub fn status(ctx: &Ctx, a: StatusArgs) -> Result<u8> {
    let (repo, view) = open_view(ctx)?;
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

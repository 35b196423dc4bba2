//! One function per command; each returns the process exit status.

use std::ffi::OsStr;
use std::io::{self, Write};
use std::os::unix::ffi::OsStrExt;
use std::sync::Arc;

use anyhow::{bail, Context, Result};
use yester::engine::backend::LocalDir;
use yester::engine::backup::{self as backup_mod, BackupOptions};
use yester::engine::check::{self as check_mod, CheckOptions};
use yester::engine::config::{ChunkerParams, RepoConfig};
use yester::engine::lookup::{lookup, Node};
use yester::engine::restore::{self as restore_mod, RestoreOptions};
use yester::engine::snapshot::SnapshotEntry;
use yester::engine::tree::{Entry, NodeKind};
use yester::engine::{BlobId, BlobReader, Repository};
use yester::points::View;

use super::{
    format, BackupArgs, CatArgs, CheckArgs, Ctx, InitArgs, LsArgs, RestoreArgs, SnapshotsArgs,
    UnlockArgs, EXIT_PARTIAL,
};

/// The repository and its snapshots, points and dated names.
pub fn open_view(ctx: &Ctx) -> Result<(Repository, View)> {
    let repo = ctx.open()?;
    let (view, broken) = View::load(&repo)?;
    for e in &broken {
        tracing::warn!("{e}");
    }
    Ok((repo, view))
}

/// Resolve a SNAPSHOT[:PATH] argument (any naming form) to a snapshot and a path in it.
pub fn resolve<'a>(view: &'a View, spec: &OsStr) -> Result<(&'a SnapshotEntry, Vec<u8>)> {
    Ok(yester::vfs::layout::resolve(view, spec.as_bytes())?)
}

pub fn init(ctx: &Ctx, a: InitArgs) -> Result<u8> {
    let path = match a.path {
        Some(p) => p,
        None => ctx.repo_path()?.clone(),
    };
    let mut config = RepoConfig::new(ChunkerParams::from_avg(a.chunk_avg)?, a.compression)?;
    if !(1024..=1 << 30).contains(&a.pack_size) {
        anyhow::bail!("--pack-size must be between 1KiB and 1GiB");
    }
    config.pack_size = a.pack_size;
    if let Some(l) = a.levels {
        config.levels = l.0;
    } else if let Some(l) = ctx.config.as_ref().and_then(|c| c.levels()) {
        yester::engine::config::validate_levels(&l)?;
        config.levels = l;
    }
    let repo = Repository::init(Arc::new(LocalDir::new(&path)), config)?;
    if !ctx.quiet {
        let c = &repo.config().chunk_sizes;
        println!(
            "created repository {} at {} (chunks {}/{}/{}, zstd level {})",
            repo.config().id,
            path.display(),
            format::bytes(c.min_size.into()),
            format::bytes(c.avg_size.into()),
            format::bytes(c.max_size.into()),
            repo.config().compression_level
        );
    }
    Ok(0)
}

pub fn backup(ctx: &Ctx, a: BackupArgs) -> Result<u8> {
    let repo = ctx.open()?;
    let opts = BackupOptions {
        source: a.source,
        paths: a.paths,
        excludes: a.exclude,
        one_file_system: a.one_file_system,
        lock_wait: ctx.lock_wait,
        time: a.time,
        force: a.force,
        ignore_inode: a.ignore_inode,
        jobs: a.jobs.map(usize::from),
    };
    let report = backup_mod::backup(
        &repo,
        &opts,
        &mut super::progress::BackupProgress::new(ctx.quiet || a.json),
    )?;
    let s = &report.snapshot;
    let dropped = yester::points::record_backup(&repo, &s.source, report.id, ctx.lock_wait)
        .context("the snapshot was saved but could not be added to the backup points")?;
    let lowest = repo.config().levels.first().map_or("", |l| l.name.as_str());
    if a.json {
        let v = serde_json::json!({
            "id": report.id,
            "source": s.source,
            "time": s.time,
            "partial": report.is_partial(),
            "point": format!("{lowest}.0"),
            "dropped": dropped,
            "stats": s.stats,
            "warnings": s.warnings,
        });
        println!("{}", serde_json::to_string_pretty(&v)?);
    } else if !ctx.quiet {
        let st = &s.stats;
        println!(
            "snapshot {} {lowest}.0/{}: {} files ({} unchanged), {} dirs, read {}, added {} ({} stored), {:.2}s{}",
            report.id,
            s.source,
            st.files,
            st.files_unchanged,
            st.dirs,
            format::bytes(st.bytes_read),
            format::bytes(st.bytes_added),
            format::bytes(st.stored_bytes_added),
            st.duration_secs,
            if report.is_partial() {
                format!(", PARTIAL: {} warnings", s.warnings.len())
            } else {
                String::new()
            }
        );
    }
    Ok(if report.is_partial() { EXIT_PARTIAL } else { 0 })
}

pub fn snapshots(ctx: &Ctx, a: SnapshotsArgs) -> Result<u8> {
    let (_repo, view) = open_view(ctx)?;
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

fn write_entry(out: &mut impl Write, long: bool, e: &Entry, path: &[u8]) -> io::Result<()> {
    if long {
        out.write_all(format::long_prefix(e).as_bytes())?;
    }
    out.write_all(path)?;
    if long && e.kind == NodeKind::Symlink {
        out.write_all(b" -> ")?;
        out.write_all(&e.target)?;
    }
    out.write_all(b"\n")
}

fn ls_tree(
    reader: &BlobReader,
    out: &mut impl Write,
    a: &LsArgs,
    id: BlobId,
    prefix: &[u8],
) -> Result<()> {
    let tree = reader.read_tree(&id)?;
    for e in &tree.entries {
        let mut p = prefix.to_vec();
        p.push(b'/');
        p.extend_from_slice(&e.name);
        write_entry(out, a.long, e, &p)?;
        if a.recursive && e.kind == NodeKind::Dir {
            ls_tree(reader, out, a, e.subtree.unwrap_or_default(), &p)?;
        }
    }
    Ok(())
}

fn normalize(path: &[u8]) -> Vec<u8> {
    let parts: Vec<&[u8]> = path
        .split(|&b| b == b'/')
        .filter(|c| !c.is_empty() && *c != b".")
        .collect();
    parts.join(&b'/')
}

pub fn ls(ctx: &Ctx, a: LsArgs) -> Result<u8> {
    let (repo, view) = open_view(ctx)?;
    let (s, path) = resolve(&view, &a.spec)?;
    let reader = repo.reader()?;
    let path = normalize(&path);
    let node = lookup(&reader, s.snapshot.tree, &path)?;
    let mut out = io::BufWriter::new(io::stdout().lock());
    let mut shown = Vec::new();
    if !path.is_empty() {
        shown.push(b'/');
        shown.extend_from_slice(&path);
    }
    match node {
        Node::Root(id) => ls_tree(&reader, &mut out, &a, id, &shown)?,
        Node::Entry(e) if e.kind == NodeKind::Dir => {
            ls_tree(&reader, &mut out, &a, e.subtree.unwrap_or_default(), &shown)?
        }
        Node::Entry(e) => write_entry(&mut out, a.long, &e, &shown)?,
    }
    out.flush()?;
    Ok(0)
}

pub fn cat(ctx: &Ctx, a: CatArgs) -> Result<u8> {
    let (repo, view) = open_view(ctx)?;
    let (s, path) = resolve(&view, &a.spec)?;
    let reader = repo.reader()?;
    let e = match lookup(&reader, s.snapshot.tree, &path)? {
        Node::Entry(e) if e.kind == NodeKind::File => e,
        _ => bail!("{}: not a regular file", String::from_utf8_lossy(&path)),
    };
    let mut out = io::stdout().lock();
    for c in &e.chunks {
        out.write_all(&reader.read_chunk(c)?)?;
    }
    out.flush()?;
    Ok(0)
}

pub fn restore(ctx: &Ctx, a: RestoreArgs) -> Result<u8> {
    let (repo, view) = open_view(ctx)?;
    let (s, path) = resolve(&view, &a.spec)?;
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
        restore_mod::total_bytes(&reader, &node)?
    };
    let r = restore_mod::restore(
        &reader,
        &node,
        &opts,
        &super::progress::RestoreBar::new(ctx.quiet, total),
    )?;
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

pub fn check(ctx: &Ctx, a: CheckArgs) -> Result<u8> {
    let repo = ctx.open()?;
    if a.repair_index {
        let (packs, unreadable) = check_mod::repair_index(&repo, ctx.lock_wait)?;
        for u in &unreadable {
            eprintln!("yester: unreadable pack left out of the index: {u}");
        }
        if !ctx.quiet {
            println!("rebuilt the index from {packs} packs");
        }
    }
    let r = check_mod::check(
        &repo,
        CheckOptions {
            read_data: a.read_data,
        },
        &mut super::progress::CheckBar::new(ctx.quiet),
    )?;
    // Point catalogues are the points module's business (docs/FORMAT.md, "Point catalogues").
    let cats = yester::points::check_catalogs(&repo)?;
    let mut r = r;
    r.notes.extend(cats.notes);
    r.damage.extend(cats.damage);
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

pub fn unlock(ctx: &Ctx, a: UnlockArgs) -> Result<u8> {
    let repo = ctx.open()?;
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

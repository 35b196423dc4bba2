//! One function per command; each returns the process exit status.

use std::ffi::OsStr;
use std::io::{self, Write};
use std::os::unix::ffi::OsStrExt;
use std::sync::Arc;

use anyhow::{bail, Context, Result};
use yester::engine::backend::LocalDir;
use yester::engine::backup::{self as backup_mod, BackupOptions, NoProgress};
use yester::engine::check::{self as check_mod, CheckOptions, NoCheckProgress};
use yester::engine::config::{ChunkerParams, RepoConfig};
use yester::engine::lookup::{lookup, Node};
use yester::engine::restore::{self as restore_mod, RestoreOptions};
use yester::engine::snapshot::{load_all, resolve, SnapshotEntry};
use yester::engine::tree::{Entry, NodeKind};
use yester::engine::{lock, BlobId, BlobReader, Repository};

use super::{
    format, BackupArgs, CatArgs, CheckArgs, Ctx, InitArgs, LsArgs, RestoreArgs, SnapshotsArgs,
    UnlockArgs, EXIT_PARTIAL,
};

/// Split `SNAPSHOT[:PATH]` into the snapshot name and the raw path bytes.
fn split_spec(spec: &OsStr) -> Result<(String, Vec<u8>)> {
    let b = spec.as_bytes();
    let (snap, path) = match b.iter().position(|&c| c == b':') {
        Some(i) => (&b[..i], b[i + 1..].to_vec()),
        None => (b, Vec::new()),
    };
    let snap = std::str::from_utf8(snap).context("snapshot name is not valid UTF-8")?;
    Ok((snap.to_string(), path))
}

/// The repository, its snapshots and the one `name` refers to.
fn open_snapshot(ctx: &Ctx, name: &str) -> Result<(Repository, SnapshotEntry)> {
    let repo = ctx.open()?;
    let (all, broken) = load_all(repo.backend.as_ref())?;
    for e in &broken {
        tracing::warn!("{e}");
    }
    let s = resolve(&all, name)?.clone();
    Ok((repo, s))
}

pub fn init(ctx: &Ctx, a: InitArgs) -> Result<u8> {
    let path = match a.path {
        Some(p) => p,
        None => ctx.repo_path()?.clone(),
    };
    let config = RepoConfig::new(ChunkerParams::from_avg(a.chunk_avg)?, a.compression)?;
    let repo = Repository::init(Arc::new(LocalDir::new(&path)), config)?;
    if !ctx.quiet {
        let c = &repo.config.chunk_sizes;
        println!(
            "created repository {} at {} (chunks {}/{}/{}, zstd level {})",
            repo.config.id,
            path.display(),
            format::bytes(c.min_size.into()),
            format::bytes(c.avg_size.into()),
            format::bytes(c.max_size.into()),
            repo.config.compression_level
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
    };
    let report = backup_mod::backup(&repo, &opts, &mut NoProgress)?;
    let s = &report.snapshot;
    if a.json {
        let v = serde_json::json!({
            "id": report.id,
            "source": s.source,
            "time": s.time,
            "partial": report.is_partial(),
            "stats": s.stats,
            "warnings": s.warnings,
        });
        println!("{}", serde_json::to_string_pretty(&v)?);
    } else if !ctx.quiet {
        let st = &s.stats;
        println!(
            "snapshot {} of {}: {} files, {} dirs, read {}, added {} ({} stored), {:.2}s{}",
            report.id,
            s.source,
            st.files,
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
    let repo = ctx.open()?;
    let (all, broken) = load_all(repo.backend.as_ref())?;
    for e in &broken {
        tracing::warn!("{e}");
    }
    let mut out = io::stdout().lock();
    if a.json {
        let v: Vec<serde_json::Value> = all
            .iter()
            .map(|e| {
                let s = &e.snapshot;
                serde_json::json!({
                    "id": e.id,
                    "short_id": e.id.short(),
                    "time": s.time,
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
            "{:<8}  {:<19}  {:<16}  {:<16}  {:>10}  paths",
            "id", "time (UTC)", "source", "host", "size"
        )?;
        for e in &all {
            let s = &e.snapshot;
            writeln!(
                out,
                "{:<8}  {:<19}  {:<16}  {:<16}  {:>10}  {}{}",
                e.id.short(),
                format::time(s.unix_time()),
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
    Ok(if broken.is_empty() { 0 } else { 1 })
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
    let (snap, path) = split_spec(&a.spec)?;
    let (repo, s) = open_snapshot(ctx, &snap)?;
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
    let (snap, path) = split_spec(&a.spec)?;
    let (repo, s) = open_snapshot(ctx, &snap)?;
    let reader = repo.reader()?;
    let e = match lookup(&reader, s.snapshot.tree, &path)? {
        Node::Entry(e) if e.kind == NodeKind::File => e,
        _ => bail!("{}: not a regular file", String::from_utf8_lossy(&path)),
    };
    let mut out = io::stdout().lock();
    for c in &e.chunks {
        out.write_all(&reader.read_blob(&c.id)?)?;
    }
    out.flush()?;
    Ok(0)
}

pub fn restore(ctx: &Ctx, a: RestoreArgs) -> Result<u8> {
    let (snap, path) = split_spec(&a.spec)?;
    let (repo, s) = open_snapshot(ctx, &snap)?;
    let reader = repo.reader()?;
    let node = lookup(&reader, s.snapshot.tree, &path)?;
    let opts = RestoreOptions {
        target: a.target.clone(),
        overwrite: a.overwrite,
    };
    let r = restore_mod::restore(&reader, &node, &opts)?;
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
    let r = check_mod::check(
        &repo,
        CheckOptions {
            read_data: a.read_data,
        },
        &mut NoCheckProgress,
    )?;
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
    let removed = lock::unlock(repo.backend.as_ref(), a.all)?;
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

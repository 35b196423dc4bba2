//! `yester backup`: back up paths as a new snapshot of a source, into its lowest point.

use std::path::PathBuf;

use anyhow::Result;
use clap::Args;
use yester::engine::BackupOptions;
use yester::points::backup::{backup_and_record, BackupError, Recorded};
use yester::points::levels_of;

use crate::cli::context::Ctx;
use crate::cli::progress::BackupProgress;
use crate::cli::{format, repo};

/// Exit status of a backup that saved a snapshot but had to skip or could not fully read some files.
pub const EXIT_PARTIAL: u8 = 3;

#[derive(Args)]
pub struct BackupArgs {
    /// Name of the source (usually the host name)
    #[arg(long)]
    source: String,
    /// Paths to back up
    #[arg(required = true)]
    paths: Vec<PathBuf>,
    /// Skip paths matching this glob (a pattern with '/' matches the absolute path, else the name)
    #[arg(long)]
    exclude: Vec<String>,
    /// Do not cross into other filesystems
    #[arg(long, short = 'x')]
    one_file_system: bool,
    /// Print the summary as JSON
    #[arg(long)]
    json: bool,
    /// Read every file, also those unchanged since the source's previous snapshot
    #[arg(long)]
    force: bool,
    /// Tell unchanged files by size, mtime and ctime only, not by inode number (for sources
    /// whose inode numbers change between mounts, e.g. sshfs without -o use_ino)
    #[arg(long)]
    ignore_inode: bool,
    /// Worker threads that read, chunk, hash and compress (default: 2 per core, at least 4;
    /// reading many small files waits on the disk, so more threads than cores help)
    #[arg(long, short = 'j', value_parser = clap::value_parser!(u16).range(1..=1024))]
    jobs: Option<u16>,
    /// Record this time (RFC 3339) instead of now, e.g. to import old rsnapshot trees
    #[arg(long, value_parser = humantime::parse_rfc3339_weak)]
    time: Option<std::time::SystemTime>,
}

/// A failed backup as the commands report it. A transparent wrapper would hide the engine
/// error from `root_cause`, so it is unwrapped: [`crate::cli::hints`] must find it.
pub fn into_anyhow(e: BackupError) -> anyhow::Error {
    match e {
        BackupError::Backup(e) => e.into(),
        // "the snapshot was saved but …: CAUSE", the cause as the root.
        e @ BackupError::Record { .. } => e.into(),
    }
}

pub fn backup(ctx: &Ctx, a: BackupArgs) -> Result<u8> {
    let repo = repo::open(ctx)?;
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
    let Recorded { report, dropped } =
        backup_and_record(&repo, &opts, &mut BackupProgress::new(ctx.quiet || a.json))
            .map_err(into_anyhow)?;
    let s = &report.snapshot;
    // Recording the backup read (and checked) these levels already.
    let levels = levels_of(&repo).unwrap_or_default();
    let lowest = levels.first().map_or("", |l| l.name.as_str());
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

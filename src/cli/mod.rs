//! The `yester` command line: argument parsing and one function per command.

mod commands;
mod demo;
mod format;

use std::ffi::OsString;
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context, Result};
use clap::{Args, Parser, Subcommand};
use yester::engine::backend::LocalDir;
use yester::engine::Repository;

/// Exit status of a backup that saved a snapshot but had to skip or could not fully read some files.
pub const EXIT_PARTIAL: u8 = 3;

#[derive(Parser)]
#[command(
    name = "yester",
    version,
    about = "Deduplicated backup snapshots, kept as rsnapshot-style backup points",
    after_help = "Examples:\n  yester init /srv/backup\n  yester -r /srv/backup backup --source web1 /etc /var/www\n  yester -r /srv/backup snapshots\n  yester -r /srv/backup ls 1a2b3c4d:etc -l\n  yester -r /srv/backup restore 1a2b3c4d:etc/nginx --target /tmp/restore\n  yester demo"
)]
struct Cli {
    /// Repository path (or set YESTER_REPO)
    #[arg(short = 'r', long = "repo", env = "YESTER_REPO", global = true)]
    repo: Option<PathBuf>,
    /// Wait this long for a lock held by another process (e.g. "30s", "5m")
    #[arg(long, global = true, default_value = "0s", value_parser = humantime::parse_duration)]
    lock_wait: Duration,
    /// Only print errors
    #[arg(short, long, global = true)]
    quiet: bool,
    /// Print more (repeat for debug output); RUST_LOG overrides
    #[arg(short, long, global = true, action = clap::ArgAction::Count)]
    verbose: u8,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Create a new repository
    #[command(after_help = "Example:\n  yester init /srv/backup --chunk-avg 1MiB --compression 3")]
    Init(InitArgs),
    /// Back up paths as a new snapshot of a source
    #[command(
        after_help = "Each path keeps its absolute location: backing up /etc gives etc/… at the snapshot root.\nExit status: 0 success, 1 error, 3 snapshot saved but some files were skipped (partial).\n\nExample:\n  yester -r /srv/backup backup --source web1 /etc /var/www --exclude '*.tmp'"
    )]
    Backup(BackupArgs),
    /// List snapshots, oldest first
    Snapshots(SnapshotsArgs),
    /// List files in a snapshot
    #[command(
        after_help = "Example:\n  yester ls 1a2b3c4d:etc -l\n  yester ls 1a2b3c4d --recursive"
    )]
    Ls(LsArgs),
    /// Print a file from a snapshot to standard output
    #[command(after_help = "Example:\n  yester cat 1a2b3c4d:etc/hosts")]
    Cat(CatArgs),
    /// Restore a snapshot or part of it into a directory
    #[command(
        after_help = "The snapshot root restores into DIR; SNAPSHOT:PATH restores that entry as DIR/<its name>.\n\nExample:\n  yester restore 1a2b3c4d:etc/nginx --target /tmp/restore"
    )]
    Restore(RestoreArgs),
    /// Verify the repository; exit status 1 if anything is damaged
    Check(CheckArgs),
    /// Remove locks left by processes that no longer run
    Unlock(UnlockArgs),
    /// Build a throwaway repository from a sample tree and show what yester does
    Demo(DemoArgs),
}

#[derive(Args)]
struct InitArgs {
    /// Where to create the repository (default: --repo / YESTER_REPO)
    path: Option<PathBuf>,
    /// Average chunk size (min is a quarter, max four times it), e.g. 1MiB, 512KiB
    #[arg(long, default_value = "1MiB", value_parser = parse_size)]
    chunk_avg: u32,
    /// zstd compression level (1-19)
    #[arg(long, default_value_t = 3)]
    compression: i32,
}

#[derive(Args)]
struct BackupArgs {
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
}

#[derive(Args)]
struct SnapshotsArgs {
    /// Print JSON
    #[arg(long)]
    json: bool,
}

#[derive(Args)]
struct LsArgs {
    /// SNAPSHOT[:PATH]
    spec: OsString,
    /// Long listing: mode, links, uid, gid, size, mtime
    #[arg(short, long)]
    long: bool,
    /// List everything below the path
    #[arg(short = 'R', long)]
    recursive: bool,
}

#[derive(Args)]
struct CatArgs {
    /// SNAPSHOT:PATH
    spec: OsString,
}

#[derive(Args)]
struct RestoreArgs {
    /// SNAPSHOT[:PATH]
    spec: OsString,
    /// Directory to restore into (created if missing)
    #[arg(long, short = 't')]
    target: PathBuf,
    /// Replace files that already exist
    #[arg(long)]
    overwrite: bool,
}

#[derive(Args)]
struct CheckArgs {
    /// Also read every blob and verify its content
    #[arg(long)]
    read_data: bool,
}

#[derive(Args)]
struct UnlockArgs {
    /// Remove every lock, also those of live or remote processes
    #[arg(long)]
    all: bool,
}

#[derive(Args)]
struct DemoArgs {
    /// Keep the demo directory instead of deleting it
    #[arg(long)]
    keep: bool,
}

/// Parse sizes like `1MiB`, `512KiB`, `65536`.
fn parse_size(s: &str) -> Result<u32, String> {
    let t = s.trim();
    let split = t.find(|c: char| !c.is_ascii_digit()).unwrap_or(t.len());
    let (num, unit) = t.split_at(split);
    let n: u64 = num.parse().map_err(|_| format!("not a size: {s:?}"))?;
    let mult: u64 = match unit.trim().to_ascii_lowercase().as_str() {
        "" | "b" => 1,
        "k" | "kib" | "kb" => 1 << 10,
        "m" | "mib" | "mb" => 1 << 20,
        _ => return Err(format!("unknown size unit in {s:?} (use KiB or MiB)")),
    };
    u32::try_from(n * mult).map_err(|_| format!("size too large: {s:?}"))
}

fn init_logging(quiet: bool, verbose: u8) {
    let default = if quiet {
        "error"
    } else {
        match verbose {
            0 => "warn",
            1 => "info",
            _ => "debug",
        }
    };
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(default));
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_target(false)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .without_time()
        .init();
}

/// Global settings every command may use.
pub struct Ctx {
    repo: Option<PathBuf>,
    lock_wait: Duration,
    quiet: bool,
}

impl Ctx {
    fn repo_path(&self) -> Result<&PathBuf> {
        self.repo
            .as_ref()
            .context("no repository given: use -r/--repo or set YESTER_REPO")
    }

    fn open(&self) -> Result<Repository> {
        let path = self.repo_path()?;
        Ok(Repository::open(Arc::new(LocalDir::new(path)))?)
    }
}

pub fn main() -> ExitCode {
    let cli = Cli::parse();
    init_logging(cli.quiet, cli.verbose);
    let ctx = Ctx {
        repo: cli.repo,
        lock_wait: cli.lock_wait,
        quiet: cli.quiet,
    };
    let res = match cli.command {
        Command::Init(a) => commands::init(&ctx, a),
        Command::Backup(a) => commands::backup(&ctx, a),
        Command::Snapshots(a) => commands::snapshots(&ctx, a),
        Command::Ls(a) => commands::ls(&ctx, a),
        Command::Cat(a) => commands::cat(&ctx, a),
        Command::Restore(a) => commands::restore(&ctx, a),
        Command::Check(a) => commands::check(&ctx, a),
        Command::Unlock(a) => commands::unlock(&ctx, a),
        Command::Demo(a) => demo::run_demo(a),
    };
    match res {
        Ok(code) => ExitCode::from(code),
        Err(e) => {
            // A closed pipe (e.g. `yester cat … | head`) is not an error worth a message.
            if e.downcast_ref::<std::io::Error>()
                .is_some_and(|io| io.kind() == std::io::ErrorKind::BrokenPipe)
            {
                return ExitCode::SUCCESS;
            }
            eprintln!("yester: {e:#}");
            ExitCode::from(1)
        }
    }
}

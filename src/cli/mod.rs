//! The `yester` command line: argument parsing and one function per command.

mod commands;
mod config;
mod demo;
mod format;
mod mount;
mod nfs;
mod points;
mod progress;
mod run;

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
    after_help = "SNAPSHOT names: an id or unique prefix (1a2b3c4d), a backup point (daily.0/web1),\nlatest/web1, or snapshots/web1/2026-11-21-120000; a path inside follows after '/' or ':'.\n\nExamples:\n  yester init /srv/backup\n  yester -r /srv/backup backup --source web1 /etc /var/www\n  yester -r /srv/backup points\n  yester -r /srv/backup ls daily.0/web1/etc -l\n  yester -r /srv/backup restore daily.0/web1/etc/nginx --target /tmp/restore\n  yester -r /srv/backup rotate daily\n  yester demo"
)]
struct Cli {
    /// Repository path (or YESTER_REPO, or `repository` in the config file)
    #[arg(short = 'r', long = "repo", env = "YESTER_REPO", global = true)]
    repo: Option<PathBuf>,
    /// Configuration file [default: /etc/yester/yester.toml if it exists]
    #[arg(long, env = "YESTER_CONFIG", global = true)]
    config: Option<PathBuf>,
    /// Wait this long for a lock held by another process (e.g. "30s", "5m") [default: 0s]
    #[arg(long, global = true, value_parser = humantime::parse_duration)]
    lock_wait: Option<Duration>,
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
    /// List backup points (hourly.0 …) with their snapshots
    #[command(after_help = "Example:\n  yester points --source web1\n  yester points --json")]
    Points(PointsArgs),
    /// Promote the oldest point of the level below into LEVEL.0 (like `rsnapshot daily`)
    #[command(
        after_help = "Only when the level below is full; otherwise nothing changes and the reason is printed.\n\nExample:\n  yester rotate daily            # hourly.5 becomes daily.0, for every source\n  yester rotate weekly --source web1"
    )]
    Rotate(RotateArgs),
    /// Show what changed between two snapshots or subtrees
    #[command(
        after_help = "Lines: '+' added, '-' removed, 'M' content changed, 'U' metadata only.\n\nExample:\n  yester diff daily.1/web1 daily.0/web1\n  yester diff daily.0/web1/etc latest/web1/etc --json"
    )]
    Diff(DiffArgs),
    /// Remove snapshots from their points and delete them (prune then frees their data)
    #[command(after_help = "Example:\n  yester forget snapshots/web1/2026-11-21-120000 1a2b3c4d")]
    Forget(ForgetArgs),
    /// Delete data no snapshot references and repack mostly-empty packs
    #[command(after_help = "Example:\n  yester prune --dry-run\n  yester prune")]
    Prune(PruneArgs),
    /// Newest backup per source; Nagios-style exit codes with --max-age
    #[command(
        after_help = "With --max-age: exit 0 OK, 1 WARNING (a source's newest backup is older than max-age),\n2 CRITICAL (older than twice max-age, or no backup at all).\n\nExample:\n  yester status --max-age 4h\n  yester status --prometheus /var/lib/node_exporter/textfile/yester.prom"
    )]
    Status(StatusArgs),
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
    /// Mount backup points read-only with FUSE (like /.yesterday)
    #[command(
        after_help = "Without --foreground the mount runs in the background once it is up (as mount.yester\nand fstab expect). Unmount with `fusermount3 -u MOUNTPOINT` or `umount MOUNTPOINT`.\n\nExample:\n  yester mount --path daily.0/web1 /.yesterday --allow-other\n  yester mount /mnt/backups --foreground"
    )]
    Mount(MountArgs),
    /// The NFSv3 server: export backup points to other machines, read-only
    #[command(subcommand)]
    Nfs(NfsCommand),
    /// What cron or a timer calls: back up every configured source (lowest level) or rotate
    #[command(
        after_help = "For the lowest level (e.g. hourly) every source of the config file is backed up, with its\npre and post hooks, into a new point; for a higher level (daily, weekly, …) the points are\nrotated. One summary line per source. Exit status: 0 all ok, 3 some backup partial, 1 a\nsource failed.\n\nExample (crontab):\n  0 */4 * * *  yester run hourly\n  30 3 * * *   yester run daily"
    )]
    Run(RunArgs),
    /// Configuration file tools
    #[command(subcommand)]
    Config(ConfigCommand),
    /// Print a shell completion script (bash, zsh, fish, elvish, powershell)
    #[command(after_help = "Example:\n  yester completions bash > /etc/bash_completion.d/yester")]
    Completions { shell: clap_complete::Shell },
    /// Write man pages (yester.1 and one per command) into a directory, or yester.1 to stdout
    #[command(after_help = "Example:\n  yester man --dir /usr/local/share/man/man1")]
    Man {
        #[arg(long)]
        dir: Option<PathBuf>,
    },
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
    /// Target size of pack files, e.g. 16MiB (1KiB-1GiB; smaller packs suit object stores
    /// with small-object pricing, larger ones fewer files)
    #[arg(long, default_value = "16MiB", value_parser = parse_size)]
    pack_size: u32,
    /// Retention levels, lowest first, as NAME=KEEP,… [default: the config file's levels, else
    /// hourly=6,daily=7,weekly=4,monthly=6]
    #[arg(long, value_parser = parse_levels)]
    levels: Option<Levels>,
}

/// Parsed `--levels`.
#[derive(Clone)]
pub struct Levels(Vec<yester::engine::config::Level>);

fn parse_levels(s: &str) -> Result<Levels, String> {
    let mut out = Vec::new();
    for part in s.split(',').map(str::trim).filter(|p| !p.is_empty()) {
        let (name, keep) = part
            .split_once('=')
            .ok_or_else(|| format!("{part:?}: write levels as NAME=KEEP, e.g. hourly=6"))?;
        let keep = keep
            .trim()
            .parse()
            .map_err(|_| format!("{part:?}: KEEP must be a number"))?;
        out.push(yester::engine::config::Level {
            name: name.trim().to_string(),
            keep,
        });
    }
    yester::engine::config::validate_levels(&out).map_err(|e| e.to_string())?;
    Ok(Levels(out))
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

#[derive(Args)]
struct SnapshotsArgs {
    /// Only this source
    #[arg(long)]
    source: Option<String>,
    /// Print JSON
    #[arg(long)]
    json: bool,
}

#[derive(Args)]
struct PointsArgs {
    /// Only this source
    #[arg(long)]
    source: Option<String>,
    /// Print JSON
    #[arg(long)]
    json: bool,
}

#[derive(Args)]
struct RotateArgs {
    /// The level to rotate into (e.g. daily)
    level: String,
    /// Only this source (default: every source)
    #[arg(long)]
    source: Option<String>,
}

#[derive(Args)]
struct DiffArgs {
    /// The older snapshot or subtree
    a: OsString,
    /// The newer snapshot or subtree
    b: OsString,
    /// Print JSON
    #[arg(long)]
    json: bool,
}

#[derive(Args)]
struct ForgetArgs {
    /// Snapshots to forget
    #[arg(required = true)]
    snapshots: Vec<OsString>,
}

#[derive(Args)]
struct PruneArgs {
    /// Only report what would be done
    #[arg(long, short = 'n')]
    dry_run: bool,
    /// Repack packs with more than this percentage of unused bytes
    #[arg(long, default_value_t = 20.0)]
    max_unused: f64,
}

#[derive(Args)]
struct StatusArgs {
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
    /// Threads writing files (default: 2 per core, at least 4)
    #[arg(long, short = 'j', value_parser = clap::value_parser!(u16).range(1..=1024))]
    jobs: Option<u16>,
}

#[derive(Args)]
struct CheckArgs {
    /// Also read every blob and verify its content
    #[arg(long)]
    read_data: bool,
    /// Rebuild the index from the pack trailers (takes the exclusive lock)
    #[arg(long)]
    repair_index: bool,
}

#[derive(Args)]
pub struct RunArgs {
    /// The level to run, e.g. hourly (back up) or daily (rotate)
    level: String,
}

#[derive(Subcommand)]
enum ConfigCommand {
    /// Validate the configuration file; every problem is reported with its line
    Check,
}

#[derive(Subcommand)]
enum NfsCommand {
    /// Serve NFSv3 (with MOUNT on the same port) until interrupted
    #[command(
        after_help = "Clients mount with: mount -t nfs -o ro,vers=3,proto=tcp,port=2049,mountport=2049,nolock \\\n  backup-host:/daily.0/web1 /.yesterday\nWithout --exports only this host (127.0.0.0/8, ::1) may mount. See docs/NFS.md.\n\nExample:\n  yester nfs serve --listen 0.0.0.0:2049 --exports /etc/yester/exports"
    )]
    Serve(NfsServeArgs),
}

#[derive(Args)]
pub struct NfsServeArgs {
    /// Address and port to listen on [default: 127.0.0.1:2049, or nfs.listen in the config]
    #[arg(long)]
    listen: Option<String>,
    /// Exports file (shape of /etc/exports) [default: nfs.exports in the config; else loopback only]
    #[arg(long)]
    exports: Option<PathBuf>,
    /// Secret that signs file handles; created on first use (keep it: handles outlive restarts)
    /// [default: /var/lib/yester/nfs-handle.key]
    #[arg(long)]
    handle_key: Option<PathBuf>,
    /// Memory for decompressed chunks, e.g. 512MiB [default: cache_size in the config, else
    /// 1/16 of the machine's RAM, at least 256MiB and at most 1GiB]
    #[arg(long, value_parser = parse_size_usize)]
    cache_size: Option<usize>,
}

#[derive(Args)]
pub struct MountArgs {
    /// Where to mount
    mountpoint: PathBuf,
    /// Mount only this part of the view, e.g. daily.0/web1 (follows the point as it moves)
    #[arg(long)]
    path: Option<String>,
    /// Let every user use the mount (file modes are still enforced for each user)
    #[arg(long)]
    allow_other: bool,
    /// Stay in the foreground until unmounted or interrupted
    #[arg(long, short = 'f')]
    foreground: bool,
    /// (internal) started by a background mount: drop stderr once mounted
    #[arg(long, hide = true)]
    detached: bool,
    /// Memory for decompressed chunks, e.g. 512MiB [default: cache_size in the config, else 256MiB]
    #[arg(long, value_parser = parse_size_usize)]
    cache_size: Option<usize>,
    /// Serve no extended attributes or ACLs: tools that list every file's (`getfattr -R`,
    /// an `ls` that calls listxattr) walk faster, `cp -a` copies none, and files with an ACL
    /// show a mode narrowed to what the ACL allows everyone (named users and groups lose their
    /// extra access)
    #[arg(long)]
    no_xattrs: bool,
}

fn parse_size_usize(s: &str) -> Result<usize, String> {
    parse_size_u64(s).and_then(|v| usize::try_from(v).map_err(|_| format!("size too large: {s:?}")))
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
    parse_size_u64(s).and_then(|v| u32::try_from(v).map_err(|_| format!("size too large: {s:?}")))
}

fn parse_size_u64(s: &str) -> Result<u64, String> {
    let t = s.trim();
    let split = t.find(|c: char| !c.is_ascii_digit()).unwrap_or(t.len());
    let (num, unit) = t.split_at(split);
    let n: u64 = num.parse().map_err(|_| format!("not a size: {s:?}"))?;
    let mult: u64 = match unit.trim().to_ascii_lowercase().as_str() {
        "" | "b" => 1,
        "k" | "kib" | "kb" => 1 << 10,
        "m" | "mib" | "mb" => 1 << 20,
        "g" | "gib" | "gb" => 1 << 30,
        _ => return Err(format!("unknown size unit in {s:?} (use KiB, MiB or GiB)")),
    };
    n.checked_mul(mult)
        .ok_or_else(|| format!("size too large: {s:?}"))
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
    // fuser logs a harmless warning when the kernel side was already unmounted: keep quiet.
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(format!("{default},fuser=error")));
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
    config: Option<config::Loaded>,
}

impl Ctx {
    fn repo_path(&self) -> Result<&PathBuf> {
        self.repo.as_ref().context(
            "no repository given: use -r/--repo, set YESTER_REPO, or set `repository` in /etc/yester/yester.toml",
        )
    }

    /// The chunk cache size: the flag, else the config file's `cache_size`, else `default()`
    /// (worked out only then: the server's asks the kernel for the RAM size).
    fn cache_size(&self, flag: Option<usize>, default: impl FnOnce() -> usize) -> Result<usize> {
        if let Some(f) = flag {
            return Ok(f);
        }
        match self
            .config
            .as_ref()
            .and_then(|c| c.config.cache_size.clone())
        {
            Some(c) => {
                parse_size_usize(&c).map_err(|e| anyhow::anyhow!("cache_size in the config: {e}"))
            }
            None => Ok(default()),
        }
    }

    fn open(&self) -> Result<Repository> {
        let path = self.repo_path()?;
        Ok(Repository::open(Arc::new(LocalDir::new(path)))?)
    }
}

fn make_ctx(cli: &Cli) -> Result<Ctx> {
    let loaded = config::load(cli.config.as_deref())?;
    let from_config =
        |f: &dyn Fn(&config::Config) -> Option<String>| loaded.as_ref().and_then(|l| f(&l.config));
    let lock_wait = match (cli.lock_wait, from_config(&|c| c.lock_wait.clone())) {
        (Some(w), _) => w,
        (None, Some(w)) => humantime::parse_duration(&w)
            .with_context(|| format!("lock_wait {w:?} in the config"))?,
        (None, None) => Duration::ZERO,
    };
    Ok(Ctx {
        repo: cli
            .repo
            .clone()
            .or_else(|| loaded.as_ref().and_then(|l| l.config.repository.clone())),
        lock_wait,
        quiet: cli.quiet,
        config: loaded,
    })
}

pub fn main() -> ExitCode {
    let cli = Cli::parse();
    init_logging(cli.quiet, cli.verbose);
    let ctx = match make_ctx(&cli) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("yester: {e:#}");
            return ExitCode::from(1);
        }
    };
    let res = match cli.command {
        Command::Init(a) => commands::init(&ctx, a),
        Command::Backup(a) => commands::backup(&ctx, a),
        Command::Snapshots(a) => commands::snapshots(&ctx, a),
        Command::Points(a) => points::points(&ctx, a),
        Command::Rotate(a) => points::rotate(&ctx, a),
        Command::Diff(a) => points::diff(&ctx, a),
        Command::Forget(a) => points::forget(&ctx, a),
        Command::Prune(a) => points::prune(&ctx, a),
        Command::Status(a) => points::status(&ctx, a),
        Command::Ls(a) => commands::ls(&ctx, a),
        Command::Cat(a) => commands::cat(&ctx, a),
        Command::Restore(a) => commands::restore(&ctx, a),
        Command::Check(a) => commands::check(&ctx, a),
        Command::Unlock(a) => commands::unlock(&ctx, a),
        Command::Demo(a) => demo::run_demo(a),
        Command::Mount(a) => mount::mount(&ctx, a),
        Command::Nfs(NfsCommand::Serve(a)) => nfs::serve_nfs(&ctx, a),
        Command::Run(a) => run::run(&ctx, a),
        Command::Config(ConfigCommand::Check) => run::config_check(&ctx),
        Command::Completions { shell } => {
            clap_complete::generate(
                shell,
                &mut <Cli as clap::CommandFactory>::command(),
                "yester",
                &mut std::io::stdout(),
            );
            Ok(0)
        }
        Command::Man { dir } => man(dir),
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

/// Man pages from the command definitions.
fn man(dir: Option<PathBuf>) -> Result<u8> {
    let cmd = <Cli as clap::CommandFactory>::command();
    match dir {
        None => clap_mangen::Man::new(cmd).render(&mut std::io::stdout())?,
        Some(d) => {
            std::fs::create_dir_all(&d).with_context(|| format!("creating {}", d.display()))?;
            clap_mangen::generate_to(cmd, &d)
                .with_context(|| format!("writing man pages to {}", d.display()))?;
        }
    }
    Ok(0)
}

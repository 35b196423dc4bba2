//! The `yester` command line: the top-level options, the list of commands and dispatch.
//! Each command's arguments and code live in `cmd/<command>.rs`; what several commands share
//! lives in a file named for it (opening the repository, hints, formatting, progress, …).

mod cmd;
mod config_file;
mod context;
mod format;
mod hints;
mod logging;
mod malloc;
mod progress;
mod repo;
mod size;

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use clap::{Parser, Subcommand};

use cmd::{
    backup, cat, check, completions, config, demo, diff, forget, init, ls, man, mount, nfs, points,
    prune, restore, rotate, run, snapshots, status, unlock,
};
use context::Ctx;

#[derive(Parser)]
#[command(
    name = "yester",
    version,
    about = "Deduplicated backup snapshots, kept as rsnapshot-style backup points",
    after_help = "SNAPSHOT names: an id or unique prefix (1a2b3c4d), a backup point (daily.0/web1),\nlatest/web1, or snapshots/web1/2026-11-21-120000; a path inside follows after '/' or ':'.\n\nExamples:\n  yester init /srv/backup\n  yester -r /srv/backup backup --source web1 /etc /var/www\n  yester -r /srv/backup points\n  yester -r /srv/backup ls daily.0/web1/etc -l\n  yester -r /srv/backup restore daily.0/web1/etc/nginx --target /tmp/restore\n  yester -r /srv/backup rotate daily\n  yester demo"
)]
pub struct Cli {
    /// Repository path (or YESTER_REPO, or `repository` in the config file)
    // A location string rather than a path: `file:///srv/backup` works too, and other schemes
    // get a clear "not supported yet" from `repo::backend` (see there).
    // Completed as a path, as when this was a `PathBuf`.
    #[arg(short = 'r', long = "repo", env = "YESTER_REPO", global = true,
          value_hint = clap::ValueHint::AnyPath)]
    repo: Option<String>,
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
    Init(init::InitArgs),
    /// Back up paths as a new snapshot of a source
    #[command(
        after_help = "Each path keeps its absolute location: backing up /etc gives etc/… at the snapshot root.\nExit status: 0 success, 1 error, 3 snapshot saved but some files were skipped (partial).\n\nExample:\n  yester -r /srv/backup backup --source web1 /etc /var/www --exclude '*.tmp'"
    )]
    Backup(backup::BackupArgs),
    /// List snapshots, oldest first
    Snapshots(snapshots::SnapshotsArgs),
    /// List backup points (hourly.0 …) with their snapshots
    #[command(after_help = "Example:\n  yester points --source web1\n  yester points --json")]
    Points(points::PointsArgs),
    /// Promote the oldest point of the level below into LEVEL.0 (like `rsnapshot daily`)
    #[command(
        after_help = "Only when the level below is full; otherwise nothing changes and the reason is printed.\n\nExample:\n  yester rotate daily            # hourly.5 becomes daily.0, for every source\n  yester rotate weekly --source web1"
    )]
    Rotate(rotate::RotateArgs),
    /// Show what changed between two snapshots or subtrees
    #[command(
        after_help = "Lines: '+' added, '-' removed, 'M' content changed, 'U' metadata only.\n\nExample:\n  yester diff daily.1/web1 daily.0/web1\n  yester diff daily.0/web1/etc latest/web1/etc --json"
    )]
    Diff(diff::DiffArgs),
    /// Remove snapshots from their points and delete them (prune then frees their data)
    #[command(after_help = "Example:\n  yester forget snapshots/web1/2026-11-21-120000 1a2b3c4d")]
    Forget(forget::ForgetArgs),
    /// Delete data no snapshot references and repack mostly-empty packs
    #[command(after_help = "Example:\n  yester prune --dry-run\n  yester prune")]
    Prune(prune::PruneArgs),
    /// Newest backup per source; Nagios-style exit codes with --max-age
    #[command(
        after_help = "With --max-age: exit 0 OK, 1 WARNING (a source's newest backup is older than max-age),\n2 CRITICAL (older than twice max-age, or no backup at all).\n\nExample:\n  yester status --max-age 4h\n  yester status --prometheus /var/lib/node_exporter/textfile/yester.prom"
    )]
    Status(status::StatusArgs),
    /// List files in a snapshot
    #[command(
        after_help = "Example:\n  yester ls 1a2b3c4d:etc -l\n  yester ls 1a2b3c4d --recursive"
    )]
    Ls(ls::LsArgs),
    /// Print a file from a snapshot to standard output
    #[command(after_help = "Example:\n  yester cat 1a2b3c4d:etc/hosts")]
    Cat(cat::CatArgs),
    /// Restore a snapshot or part of it into a directory
    #[command(
        after_help = "The snapshot root restores into DIR; SNAPSHOT:PATH restores that entry as DIR/<its name>.\n\nExample:\n  yester restore 1a2b3c4d:etc/nginx --target /tmp/restore"
    )]
    Restore(restore::RestoreArgs),
    /// Verify the repository; exit status 1 if anything is damaged
    Check(check::CheckArgs),
    /// Remove locks left by processes that no longer run
    Unlock(unlock::UnlockArgs),
    /// Mount backup points read-only with FUSE (like /.yesterday)
    #[command(
        after_help = "Without --foreground the mount runs in the background once it is up (as mount.yester\nand fstab expect). Unmount with `fusermount3 -u MOUNTPOINT` or `umount MOUNTPOINT`.\n\nExample:\n  yester mount --path daily.0/web1 /.yesterday --allow-other\n  yester mount /mnt/backups --foreground"
    )]
    Mount(mount::MountArgs),
    /// The NFSv3 server: export backup points to other machines, read-only
    #[command(subcommand)]
    Nfs(nfs::NfsCommand),
    /// What cron or a timer calls: back up every configured source (lowest level) or rotate
    #[command(
        after_help = "For the lowest level (e.g. hourly) every source of the config file is backed up, with its\npre and post hooks, into a new point; for a higher level (daily, weekly, …) the points are\nrotated. One summary line per source. Exit status: 0 all ok, 3 some backup partial, 1 a\nsource failed.\n\nExample (crontab):\n  0 */4 * * *  yester run hourly\n  30 3 * * *   yester run daily"
    )]
    Run(run::RunArgs),
    /// Configuration file tools
    #[command(subcommand)]
    Config(config::ConfigCommand),
    /// Print a shell completion script (bash, zsh, fish, elvish, powershell)
    #[command(after_help = "Example:\n  yester completions bash > /etc/bash_completion.d/yester")]
    Completions(completions::CompletionsArgs),
    /// Write man pages (yester.1 and one per command) into a directory, or yester.1 to stdout
    #[command(after_help = "Example:\n  yester man --dir /usr/local/share/man/man1")]
    Man(man::ManArgs),
    /// Build a throwaway repository from a sample tree and show what yester does
    Demo(demo::DemoArgs),
}

pub fn main() -> ExitCode {
    let cli = Cli::parse();
    logging::init(cli.quiet, cli.verbose);
    let ctx = match Ctx::new(cli.repo, cli.config.as_deref(), cli.lock_wait, cli.quiet) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("yester: {}", hints::message(&e));
            return ExitCode::from(1);
        }
    };
    let res = match cli.command {
        Command::Init(a) => init::init(&ctx, a),
        Command::Backup(a) => backup::backup(&ctx, a),
        Command::Snapshots(a) => snapshots::snapshots(&ctx, a),
        Command::Points(a) => points::points(&ctx, a),
        Command::Rotate(a) => rotate::rotate(&ctx, a),
        Command::Diff(a) => diff::diff(&ctx, a),
        Command::Forget(a) => forget::forget(&ctx, a),
        Command::Prune(a) => prune::prune(&ctx, a),
        Command::Status(a) => status::status(&ctx, a),
        Command::Ls(a) => ls::ls(&ctx, a),
        Command::Cat(a) => cat::cat(&ctx, a),
        Command::Restore(a) => restore::restore(&ctx, a),
        Command::Check(a) => check::check(&ctx, a),
        Command::Unlock(a) => unlock::unlock(&ctx, a),
        Command::Demo(a) => demo::demo(a),
        Command::Mount(a) => mount::mount(&ctx, a),
        Command::Nfs(c) => nfs::nfs(&ctx, c),
        Command::Run(a) => run::run(&ctx, a),
        Command::Config(c) => config::config(&ctx, c),
        Command::Completions(a) => completions::completions::<Cli>(a),
        Command::Man(a) => man::man::<Cli>(a),
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
            eprintln!("yester: {}", hints::message(&e));
            ExitCode::from(1)
        }
    }
}

//! `yester mount`: serve the view over FUSE until unmounted or signalled.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use fuser::{Config, MountOption, Session, SessionACL};
use nix::sys::signal::{SigSet, Signal};
use yester::fuse::YesterFs;
use yester::vfs::{Vfs, VfsOptions};

use clap::Args;

use crate::cli::context::Ctx;
use crate::cli::malloc::limit_malloc_arenas;
use crate::cli::repo;
use crate::cli::size::parse_size_usize;

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

/// A mount's default chunk cache; the kernel's page cache keeps what it has read besides.
const MOUNT_CACHE: usize = 256 << 20;

/// The `st_dev` of the file system mounted at `path`, as "major:minor", from mountinfo.
fn mounted_device(path: &Path) -> Option<String> {
    let info = std::fs::read_to_string("/proc/self/mountinfo").ok()?;
    let want = path.to_str()?;
    info.lines().rev().find_map(|l| {
        let f: Vec<&str> = l.split(' ').collect();
        (f.get(4) == Some(&want) && l.contains(" - fuse"))
            .then(|| f.get(2).map(|s| s.to_string()))?
    })
}

/// Bigger kernel read-ahead for the mount: 1 MiB requests instead of 128 KiB.
fn raise_readahead(mountpoint: &Path) {
    if let Some(dev) = mounted_device(mountpoint) {
        let p = format!("/sys/class/bdi/{dev}/read_ahead_kb");
        if let Err(e) = std::fs::write(&p, "1024") {
            tracing::debug!("cannot raise read-ahead ({p}): {e}");
        }
    }
}

/// Start the mount as a detached process and return once it is up (for fstab and the
/// `mount.yester` helper, which expect the command to return). The child's stderr comes back
/// through a pipe until it is mounted; then the child lets go of it (see [`detach_stderr`]),
/// so whoever waits for our output is not kept waiting by the daemon.
fn daemonize(mountpoint: &Path) -> Result<u8> {
    use std::io::Read;
    use std::os::unix::process::CommandExt;
    let exe = std::env::current_exe().context("cannot find the yester executable")?;
    let mut args: Vec<std::ffi::OsString> = std::env::args_os().skip(1).collect();
    args.push("--foreground".into());
    args.push("--detached".into());
    let mut child = Command::new(exe)
        .args(&args)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .process_group(0)
        .spawn()
        .context("cannot start the mount process")?;
    let mut err = String::new();
    if let Some(mut pipe) = child.stderr.take() {
        // Ends when the child is mounted (it closes its end) or has died.
        let _ = pipe.read_to_string(&mut err);
    }
    eprint!("{err}");
    let deadline = Instant::now() + Duration::from_secs(60);
    while Instant::now() < deadline {
        if let Some(status) = child.try_wait()? {
            bail!("mounting failed ({status})");
        }
        if mounted_device(mountpoint).is_some() {
            return Ok(0);
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    bail!("the mount did not come up within 60 s");
}

/// With `AutoUnmount` the library's unmount only hangs up on a `fusermount3` helper that has
/// already gone, and the mount would go on serving: unmount through the kernel instead.
fn unmount_fallback(mountpoint: &Path) {
    let deadline = Instant::now() + Duration::from_secs(2);
    while Instant::now() < deadline {
        if mounted_device(mountpoint).is_none() {
            return;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    let unmounted = [("fusermount3", ["-u", "-z"]), ("umount", ["-l", "--"])]
        .iter()
        .any(|(cmd, args)| {
            Command::new(cmd)
                .args(args)
                .arg(mountpoint)
                .stdin(Stdio::null())
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .status()
                .is_ok_and(|s| s.success())
        });
    if !unmounted {
        tracing::warn!("cannot unmount {}", mountpoint.display());
    }
}

/// Point stderr at /dev/null: a detached mount has nobody to tell.
fn detach_stderr() {
    if let Ok(null) = std::fs::OpenOptions::new().write(true).open("/dev/null") {
        let _ = nix::unistd::dup2_stderr(&null);
    }
}

pub fn mount(ctx: &Ctx, a: MountArgs) -> Result<u8> {
    let mountpoint: PathBuf = std::fs::canonicalize(&a.mountpoint)
        .with_context(|| format!("{}: cannot use as mount point", a.mountpoint.display()))?;
    if !mountpoint.is_dir() {
        bail!("{}: not a directory", mountpoint.display());
    }
    limit_malloc_arenas();
    let repo = repo::open(ctx)?;
    let location = ctx.location()?;
    let opts = VfsOptions {
        cache_bytes: ctx.cache_size(a.cache_size, || MOUNT_CACHE)?,
        root: a.path.clone().unwrap_or_default().into_bytes(),
        xattrs: !a.no_xattrs,
        ..VfsOptions::default()
    };
    // Open the view before daemonizing, so a bad --path or repository fails here, visibly.
    let vfs = Vfs::new(repo, opts)
        .with_context(|| format!("cannot mount {}", a.path.as_deref().unwrap_or("/")))?;
    if !a.foreground {
        drop(vfs);
        return daemonize(&mountpoint);
    }
    let mut options = vec![
        MountOption::RO,
        MountOption::FSName(format!("{}:{}", location, a.path.as_deref().unwrap_or("/"))),
        MountOption::Subtype("yester".into()),
        // The kernel checks each file's mode for each user; set-id bits and device nodes in a
        // backup must never grant anything.
        MountOption::DefaultPermissions,
        MountOption::NoSuid,
        MountOption::NoDev,
    ];
    if a.allow_other {
        options.push(MountOption::AutoUnmount);
    }
    let mut config = Config::default();
    config.mount_options = options;
    config.acl = if a.allow_other {
        SessionACL::All
    } else {
        SessionACL::Owner
    };
    config.n_threads = Some(std::thread::available_parallelism().map_or(4, |n| n.get().max(4)));
    config.clone_fd = true;

    // Signals go to one thread that unmounts; everything else runs with them blocked.
    let mut signals = SigSet::empty();
    for s in [Signal::SIGINT, Signal::SIGTERM, Signal::SIGHUP] {
        signals.add(s);
    }
    signals.thread_block().context("cannot block signals")?;
    let fs = YesterFs::new(Arc::new(vfs));
    let mut session = Session::new(fs, &mountpoint, &config).with_context(|| {
        format!(
            "cannot mount on {} (is fuse3 installed and /dev/fuse present?)",
            mountpoint.display()
        )
    })?;
    raise_readahead(&mountpoint);
    let mut unmounter = session.unmount_callable();
    let mp = mountpoint.clone();
    std::thread::spawn(move || {
        if let Ok(sig) = signals.wait() {
            tracing::info!("{sig:?}: unmounting");
            if let Err(e) = unmounter.unmount() {
                tracing::warn!("unmount failed: {e}");
            }
            unmount_fallback(&mp);
        }
    });
    if a.detached {
        detach_stderr();
    } else if !ctx.quiet {
        eprintln!(
            "yester: mounted {} on {}",
            a.path.as_deref().unwrap_or("/"),
            mountpoint.display()
        );
    }
    session.run().context("FUSE session failed")?;
    Ok(0)
}

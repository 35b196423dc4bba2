//! The one way the tests run the `yester` binary: [`Yester`], a builder shaped like
//! [`std::process::Command`] that
//!
//! - removes every `YESTER_*` variable (and `RUST_LOG`) of the test run's own environment, so
//!   a developer's `YESTER_REPO` or a CI job's `YESTER_FAILPOINT` never leaks into a test;
//! - sets `YESTER_CONFIG=/dev/null`, so `/etc/yester/yester.toml` on the machine running the
//!   tests is never read (a test that needs a configuration sets its own `--config` or
//!   `YESTER_CONFIG`, or calls [`Yester::no_config`]);
//! - always applies a timeout: [`Yester::output`], [`Yester::status`] and [`Yester::run`] kill
//!   the process and panic with what it printed after [`YESTER_TIMEOUT`] (or
//!   [`Yester::timeout`]); a process from [`Yester::spawn`] (servers, mounts, runs a test
//!   kills on purpose) is killed after [`SPAWN_TIMEOUT`] unless it has ended by then.
//!
//! Everything else in `common` (the [`super::Repo`] helpers, [`super::cli`], mounts, the NFS
//! server) runs the binary through it.

use std::ffi::OsStr;
use std::io::Read;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

use nix::libc;

/// Default limit for one `yester` run.
pub const YESTER_TIMEOUT: Duration = Duration::from_secs(120);

/// Limit for a process started with [`Yester::spawn`]: longer than any test, so it only ends
/// a process that has hung (and whatever test waits for it).
pub const SPAWN_TIMEOUT: Duration = Duration::from_secs(30 * 60);

/// The path of the `yester` binary built by cargo for these tests.
pub fn yester_bin() -> PathBuf {
    PathBuf::from(env!("CARGO_BIN_EXE_yester"))
}

/// What a finished process printed.
#[derive(Debug)]
pub struct Output {
    /// The command line, for messages.
    pub cmdline: String,
    pub status: ExitStatus,
    pub stdout: String,
    pub stderr: String,
    pub elapsed: Duration,
}

impl Output {
    pub fn code(&self) -> Option<i32> {
        self.status.code()
    }

    /// Panic with everything printed unless the exit code is `code`.
    pub fn expect_code(&self, code: i32) -> &Self {
        assert_eq!(
            self.status.code(),
            Some(code),
            "`{}` exited with {:?}, expected {code}\n--- stdout:\n{}\n--- stderr:\n{}",
            self.cmdline,
            self.status,
            self.stdout,
            self.stderr
        );
        self
    }

    pub fn expect_success(&self) -> &Self {
        self.expect_code(0)
    }
}

/// Remove the test run's `YESTER_*` variables and `RUST_LOG` from `cmd`'s environment and
/// point it at no configuration file (see the module comment). For commands that run the
/// binary indirectly (a shell script, a mount helper) as well as for [`Yester`].
pub fn clean_env(cmd: &mut Command) {
    for (k, _) in std::env::vars_os() {
        if k.as_encoded_bytes().starts_with(b"YESTER_") {
            cmd.env_remove(k);
        }
    }
    cmd.env_remove("RUST_LOG").env("YESTER_CONFIG", "/dev/null");
}

/// Run `cmd` with stdin closed and output captured; panic if it runs longer than `timeout`
/// (the process is killed first, so a hanging process cannot hang the test suite).
pub fn run_with_timeout(mut cmd: Command, timeout: Duration) -> Output {
    let (cmdline, out, elapsed) = capture(&mut cmd, timeout);
    Output {
        cmdline,
        status: out.status,
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
        elapsed,
    }
}

/// As [`run_with_timeout`], with the exact bytes printed (for commands other than `yester`:
/// `yester` itself runs through [`Yester::output`]).
pub fn output_with_timeout(mut cmd: Command, timeout: Duration) -> std::process::Output {
    capture(&mut cmd, timeout).1
}

/// Run `cmd` to its end with stdin closed and both outputs read concurrently (a chatty
/// process never blocks on a full pipe); kill it and panic after `timeout`.
fn capture(cmd: &mut Command, timeout: Duration) -> (String, std::process::Output, Duration) {
    let cmdline = format!("{cmd:?}");
    cmd.stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let start = Instant::now();
    let mut child = cmd
        .spawn()
        .unwrap_or_else(|e| panic!("cannot run {cmdline}: {e}"));
    let mut out = child.stdout.take().expect("piped stdout");
    let mut err = child.stderr.take().expect("piped stderr");
    let t_out = std::thread::spawn(move || {
        let mut v = Vec::new();
        let _ = out.read_to_end(&mut v);
        v
    });
    let t_err = std::thread::spawn(move || {
        let mut v = Vec::new();
        let _ = err.read_to_end(&mut v);
        v
    });
    let Some(status) = wait_until_exit(&mut child, timeout) else {
        let _ = child.kill();
        let _ = child.wait();
        let stdout = String::from_utf8_lossy(&t_out.join().unwrap()).into_owned();
        let stderr = String::from_utf8_lossy(&t_err.join().unwrap()).into_owned();
        panic!(
            "`{cmdline}` did not finish within {timeout:?} and was killed\n--- stdout:\n{stdout}\n--- stderr:\n{stderr}"
        );
    };
    let elapsed = start.elapsed();
    let output = std::process::Output {
        status,
        stdout: t_out.join().unwrap(),
        stderr: t_err.join().unwrap(),
    };
    (cmdline, output, elapsed)
}

/// A pidfd for `child`: it becomes readable when the process ends, and signals sent through
/// it can never reach another process that reused the pid. `None` on kernels before 5.3.
fn pidfd(child: &Child) -> Option<OwnedFd> {
    // SAFETY: pidfd_open takes a pid and flags and returns a new descriptor or -1.
    let fd = unsafe { libc::syscall(libc::SYS_pidfd_open, child.id() as libc::pid_t, 0) };
    // SAFETY: a descriptor just created for us and owned by nothing else.
    (fd >= 0).then(|| unsafe { OwnedFd::from_raw_fd(fd as i32) })
}

/// Whether the process behind `fd` ends within `timeout` (sleeping until then, not polling).
fn ended_within(fd: &OwnedFd, timeout: Duration) -> bool {
    let start = Instant::now();
    loop {
        let Some(left) = timeout.checked_sub(start.elapsed()) else {
            return false;
        };
        let mut pfd = libc::pollfd {
            fd: fd.as_raw_fd(),
            events: libc::POLLIN,
            revents: 0,
        };
        let ms = i32::try_from(left.as_millis()).unwrap_or(i32::MAX);
        // SAFETY: one valid pollfd.
        match unsafe { libc::poll(&mut pfd, 1, ms) } {
            0 => return false,
            r if r > 0 => return true,
            // Interrupted by a signal: wait for what is left.
            _ => {}
        }
    }
}

/// Wait for `child` to end, at most `timeout`; `None` if it still runs. Woken by the
/// process's end, so a short run is not rounded up to a polling interval.
fn wait_until_exit(child: &mut Child, timeout: Duration) -> Option<ExitStatus> {
    if let Some(fd) = pidfd(child) {
        if ended_within(&fd, timeout) {
            return Some(child.wait().expect("wait for child"));
        }
        return child.try_wait().expect("wait for child");
    }
    let start = Instant::now();
    loop {
        if let Some(st) = child.try_wait().expect("wait for child") {
            return Some(st);
        }
        if start.elapsed() > timeout {
            return None;
        }
        std::thread::sleep(Duration::from_millis(2));
    }
}

/// Kill `child` with SIGKILL if it still runs after `timeout` (through a pidfd, so a process
/// that ended and was reaped, its pid perhaps reused, is never signalled by mistake); the
/// watching thread ends as soon as the process does.
fn watchdog(child: &Child, timeout: Duration) {
    let Some(fd) = pidfd(child) else {
        // No pidfds: no watchdog rather than one that could kill a stranger.
        return;
    };
    let pid = child.id();
    std::thread::spawn(move || {
        if !ended_within(&fd, timeout) {
            eprintln!("yester (pid {pid}) still ran after {timeout:?}: killed");
            // SAFETY: a pidfd, a signal number, no siginfo, no flags.
            unsafe {
                libc::syscall(
                    libc::SYS_pidfd_send_signal,
                    fd.as_raw_fd(),
                    libc::SIGKILL,
                    std::ptr::null::<libc::siginfo_t>(),
                    0,
                );
            }
        }
    });
}

/// The `yester` binary as a command (see the module comment); the methods mirror
/// [`std::process::Command`]'s, so it reads like one.
pub struct Yester {
    cmd: Command,
    timeout: Option<Duration>,
}

impl Default for Yester {
    fn default() -> Self {
        Self::new()
    }
}

impl Yester {
    /// `yester`.
    pub fn new() -> Yester {
        Self::from_command(Command::new(yester_bin()))
    }

    /// `yester -r REPO`.
    pub fn at(repo: impl AsRef<Path>) -> Yester {
        let mut y = Self::new();
        y.arg("-r").arg(repo.as_ref());
        y
    }

    /// `PROGRAM ARGS… yester`: through a wrapper that runs the command line after its own
    /// arguments (`setpriv`, `prlimit`, `/usr/bin/time`).
    pub fn via<I, S>(program: impl AsRef<OsStr>, args: I) -> Yester
    where
        I: IntoIterator<Item = S>,
        S: AsRef<OsStr>,
    {
        let mut cmd = Command::new(program);
        cmd.args(args).arg(yester_bin());
        Self::from_command(cmd)
    }

    fn from_command(mut cmd: Command) -> Yester {
        clean_env(&mut cmd);
        Yester { cmd, timeout: None }
    }

    pub fn arg(&mut self, arg: impl AsRef<OsStr>) -> &mut Self {
        self.cmd.arg(arg);
        self
    }

    pub fn args<I, S>(&mut self, args: I) -> &mut Self
    where
        I: IntoIterator<Item = S>,
        S: AsRef<OsStr>,
    {
        self.cmd.args(args);
        self
    }

    pub fn env(&mut self, key: impl AsRef<OsStr>, val: impl AsRef<OsStr>) -> &mut Self {
        self.cmd.env(key, val);
        self
    }

    pub fn env_remove(&mut self, key: impl AsRef<OsStr>) -> &mut Self {
        self.cmd.env_remove(key);
        self
    }

    /// Read the default configuration file (`/etc/yester/yester.toml`, if it exists) as a
    /// user's run would, instead of none.
    pub fn no_config(&mut self) -> &mut Self {
        self.cmd.env_remove("YESTER_CONFIG");
        self
    }

    pub fn current_dir(&mut self, dir: impl AsRef<Path>) -> &mut Self {
        self.cmd.current_dir(dir);
        self
    }

    /// For [`Yester::spawn`]; [`Yester::output`], [`Yester::status`] and [`Yester::run`] close
    /// stdin.
    pub fn stdin(&mut self, cfg: impl Into<Stdio>) -> &mut Self {
        self.cmd.stdin(cfg);
        self
    }

    /// For [`Yester::spawn`] and [`Yester::status`]; [`Yester::output`] and [`Yester::run`]
    /// capture it.
    pub fn stdout(&mut self, cfg: impl Into<Stdio>) -> &mut Self {
        self.cmd.stdout(cfg);
        self
    }

    /// As [`Yester::stdout`].
    pub fn stderr(&mut self, cfg: impl Into<Stdio>) -> &mut Self {
        self.cmd.stderr(cfg);
        self
    }

    /// Start the process in its own process group (so a wrapper and yester can be killed
    /// together).
    pub fn process_group(&mut self, pgroup: i32) -> &mut Self {
        self.cmd.process_group(pgroup);
        self
    }

    /// The limit instead of [`YESTER_TIMEOUT`] (or [`SPAWN_TIMEOUT`] for [`Yester::spawn`]).
    pub fn timeout(&mut self, timeout: Duration) -> &mut Self {
        self.timeout = Some(timeout);
        self
    }

    /// The command line, for messages.
    pub fn cmdline(&self) -> String {
        format!("{:?}", self.cmd)
    }

    /// Run to the end with output captured, like [`Command::output`] (the exact bytes);
    /// panics when the limit is reached. `Err` only when the program cannot be started.
    pub fn output(&mut self) -> std::io::Result<std::process::Output> {
        Ok(capture(&mut self.cmd, self.timeout.unwrap_or(YESTER_TIMEOUT)).1)
    }

    /// Run to the end with output captured as text; panics when the limit is reached.
    pub fn run(&mut self) -> Output {
        let (cmdline, out, elapsed) =
            capture(&mut self.cmd, self.timeout.unwrap_or(YESTER_TIMEOUT));
        Output {
            cmdline,
            status: out.status,
            stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
            elapsed,
        }
    }

    /// Run to the end with stdout and stderr as set (inherited by default), like
    /// [`Command::status`]; panics when the limit is reached.
    pub fn status(&mut self) -> std::io::Result<ExitStatus> {
        let timeout = self.timeout.unwrap_or(YESTER_TIMEOUT);
        let cmdline = self.cmdline();
        let mut child = self.cmd.stdin(Stdio::null()).spawn()?;
        match wait_until_exit(&mut child, timeout) {
            Some(st) => Ok(st),
            None => {
                let _ = child.kill();
                let _ = child.wait();
                panic!("`{cmdline}` did not finish within {timeout:?} and was killed");
            }
        }
    }

    /// Start the process, like [`Command::spawn`]; it is killed if it still runs after the
    /// limit ([`SPAWN_TIMEOUT`] unless set).
    pub fn spawn(&mut self) -> std::io::Result<Child> {
        let child = self.cmd.spawn()?;
        watchdog(&child, self.timeout.unwrap_or(SPAWN_TIMEOUT));
        Ok(child)
    }
}

/// The `yester` binary as a [`Command`] with the environment of [`Yester`] but no timeout:
/// kept for helpers that need a plain `Command` to hand to [`run_with_timeout`]; anything
/// else should use [`Yester`].
pub fn yester_command() -> Command {
    let mut cmd = Command::new(yester_bin());
    clean_env(&mut cmd);
    cmd
}

/// Run `yester ARGS...` with [`YESTER_TIMEOUT`].
pub fn yester<I, S>(args: I) -> Output
where
    I: IntoIterator<Item = S>,
    S: AsRef<OsStr>,
{
    yester_timeout(args, YESTER_TIMEOUT)
}

pub fn yester_timeout<I, S>(args: I, timeout: Duration) -> Output
where
    I: IntoIterator<Item = S>,
    S: AsRef<OsStr>,
{
    Yester::new().args(args).timeout(timeout).run()
}

//! A `yester mount` in the foreground for the length of a test.

use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

use super::mounts::is_mounted;
use super::run::Yester;

/// `yester -r REPO mount --foreground POINT EXTRA...` as a child process (stderr to a log
/// file); unmounted and reaped when dropped, also when the test fails.
pub struct FuseMount {
    pub child: std::process::Child,
    pub point: PathBuf,
    pub log: PathBuf,
}

impl FuseMount {
    pub fn start(repo: &Path, point: &Path, extra: &[&str]) -> FuseMount {
        fs::create_dir_all(point).unwrap();
        let point = fs::canonicalize(point).unwrap();
        let log = point.with_extension("log");
        let mut cmd = Yester::at(repo);
        cmd.arg("mount")
            .arg("--foreground")
            .arg(&point)
            .args(extra)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(fs::File::create(&log).unwrap());
        let mut child = cmd.spawn().expect("start yester mount");
        let deadline = Instant::now() + Duration::from_secs(60);
        while !is_mounted(&point) {
            if let Some(st) = child.try_wait().unwrap() {
                panic!(
                    "yester mount exited with {st}: {}",
                    fs::read_to_string(&log).unwrap_or_default()
                );
            }
            assert!(
                Instant::now() < deadline,
                "the mount did not come up in 60 s"
            );
            std::thread::sleep(Duration::from_millis(20));
        }
        FuseMount { child, point, log }
    }

    pub fn path(&self, rel: &str) -> PathBuf {
        self.point.join(rel)
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Whether the mount process is still running.
    pub fn alive(&mut self) -> bool {
        self.child.try_wait().unwrap().is_none()
    }

    /// What the mount process logged so far.
    pub fn log_text(&self) -> String {
        fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// SIGTERM, as `systemctl stop` would: the process must unmount and exit 0.
    pub fn stop(mut self) -> ExitStatus {
        nix::sys::signal::kill(
            nix::unistd::Pid::from_raw(self.child.id() as i32),
            nix::sys::signal::Signal::SIGTERM,
        )
        .unwrap();
        self.wait_exit()
    }

    /// `fusermount3 -u`, as the systemd unit's ExecStop does: the process must exit 0.
    pub fn unmount(mut self) -> ExitStatus {
        let st = Command::new("fusermount3")
            .arg("-u")
            .arg(&self.point)
            .status()
            .unwrap();
        assert!(st.success(), "fusermount3 -u {}", self.point.display());
        self.wait_exit()
    }

    fn wait_exit(&mut self) -> ExitStatus {
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            if let Some(st) = self.child.try_wait().unwrap() {
                return st;
            }
            assert!(Instant::now() < deadline, "the mount process did not exit");
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

impl Drop for FuseMount {
    fn drop(&mut self) {
        if is_mounted(&self.point) {
            let _ = Command::new("fusermount3")
                .arg("-u")
                .arg(&self.point)
                .status();
        }
        let deadline = Instant::now() + Duration::from_secs(10);
        while self.child.try_wait().ok().flatten().is_none() && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(20));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
        if is_mounted(&self.point) {
            let _ = Command::new("umount").arg("-l").arg(&self.point).status();
        }
    }
}

//! Progress display: a live line on a terminal, nothing on a pipe or log (no escape codes).

use std::io::IsTerminal;
use std::path::Path;
use std::time::Duration;

use indicatif::{ProgressBar, ProgressStyle};
use yester::engine::BackupProgress as Progress;
use yester::engine::CheckProgress;

/// A spinner with counts and rate for backups; hidden when stderr is not a terminal.
pub struct BackupProgress {
    bar: Option<ProgressBar>,
    files: u64,
}

fn bar_if_terminal(quiet: bool) -> Option<ProgressBar> {
    (!quiet && std::io::stderr().is_terminal()).then(ProgressBar::new_spinner)
}

impl BackupProgress {
    pub fn new(quiet: bool) -> Self {
        let bar = bar_if_terminal(quiet);
        if let Some(b) = &bar {
            b.set_style(
                ProgressStyle::with_template("{spinner} {elapsed} {msg} {bytes} ({bytes_per_sec})")
                    .unwrap_or_else(|_| ProgressStyle::default_spinner()),
            );
            b.enable_steady_tick(Duration::from_millis(200));
        }
        BackupProgress { bar, files: 0 }
    }
}

impl Progress for BackupProgress {
    fn file_done(&mut self, _path: &Path, bytes: u64) {
        self.files += 1;
        if let Some(b) = &self.bar {
            b.inc(bytes);
            b.set_message(format!("{} files", self.files));
        }
    }

    fn warning(&mut self, msg: &str) {
        if let Some(b) = &self.bar {
            b.println(format!("warning: {msg}"));
        }
    }
}

impl Drop for BackupProgress {
    fn drop(&mut self) {
        if let Some(b) = &self.bar {
            b.finish_and_clear();
        }
    }
}

/// A bar over packs and snapshots for `check`.
pub struct CheckBar {
    bar: Option<ProgressBar>,
}

impl CheckBar {
    pub fn new(quiet: bool) -> Self {
        let bar = bar_if_terminal(quiet).map(|_| ProgressBar::new(0));
        if let Some(b) = &bar {
            b.set_style(
                ProgressStyle::with_template("{msg} [{bar:30}] {pos}/{len} {eta}")
                    .unwrap_or_else(|_| ProgressStyle::default_bar()),
            );
        }
        CheckBar { bar }
    }
}

impl CheckProgress for CheckBar {
    fn step(&mut self, what: &str, done: usize, total: usize) {
        if let Some(b) = &self.bar {
            b.set_message(what.to_string());
            b.set_length(total as u64);
            b.set_position(done as u64 + 1);
        }
    }
}

impl Drop for CheckBar {
    fn drop(&mut self) {
        if let Some(b) = &self.bar {
            b.finish_and_clear();
        }
    }
}

/// A byte bar with rate and ETA for restores.
pub struct RestoreBar {
    bar: Option<ProgressBar>,
}

impl RestoreBar {
    pub fn new(quiet: bool, total: u64) -> Self {
        let bar = bar_if_terminal(quiet).map(|_| ProgressBar::new(total));
        if let Some(b) = &bar {
            b.set_style(
                ProgressStyle::with_template(
                    "restoring [{bar:30}] {bytes}/{total_bytes} {bytes_per_sec} ETA {eta}",
                )
                .unwrap_or_else(|_| ProgressStyle::default_bar()),
            );
        }
        RestoreBar { bar }
    }
}

impl yester::engine::RestoreProgress for RestoreBar {
    fn bytes_done(&self, bytes: u64) {
        if let Some(b) = &self.bar {
            b.inc(bytes);
        }
    }
}

impl Drop for RestoreBar {
    fn drop(&mut self) {
        if let Some(b) = &self.bar {
            b.finish_and_clear();
        }
    }
}

/// A spinner with elapsed time for work without a known size (prune).
pub fn spinner(quiet: bool, what: &str) -> Option<ProgressBar> {
    let b = bar_if_terminal(quiet)?;
    b.set_style(
        ProgressStyle::with_template("{spinner} {msg} {elapsed}")
            .unwrap_or_else(|_| ProgressStyle::default_spinner()),
    );
    b.set_message(what.to_string());
    b.enable_steady_tick(Duration::from_millis(200));
    Some(b)
}

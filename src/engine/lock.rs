//! The repository lock: one small record per holder under `locks/`.
//!
//! Protocol (docs/FORMAT.md, "Locks"): a process writes its own record with a create-if-absent
//! put, then lists all records. Shared holders (backup) coexist; an exclusive holder (prune,
//! index repair) excludes everyone. On conflict it removes its own record and either retries
//! until the wait runs out or fails with a message naming the holder. A record whose process is
//! gone (same host, pid not alive) is reported as stale, never silently waited on.

use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use serde::{Deserialize, Serialize};

use super::backend::{Backend, Kind};
use super::error::{Error, Result};

/// What is stored in a lock object (JSON).
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct LockRecord {
    pub hostname: String,
    pub pid: u32,
    /// Start time, RFC 3339.
    pub time: String,
    pub exclusive: bool,
    /// The command holding it, for messages.
    pub operation: String,
}

impl LockRecord {
    /// Whether this record was left by a process on this host that no longer runs.
    pub fn is_stale(&self) -> bool {
        self.hostname == hostname() && !pid_alive(self.pid)
    }

    fn describe(&self) -> String {
        format!(
            "{} lock held by `{}` (pid {} on host {}) since {}",
            if self.exclusive {
                "exclusive"
            } else {
                "shared"
            },
            self.operation,
            self.pid,
            self.hostname,
            self.time
        )
    }
}

/// This machine's host name.
pub fn hostname() -> String {
    nix::unistd::gethostname()
        .ok()
        .and_then(|h| h.into_string().ok())
        .unwrap_or_else(|| "unknown".to_string())
}

/// Whether a process with this pid exists on this host.
pub fn pid_alive(pid: u32) -> bool {
    let Ok(pid) = i32::try_from(pid) else {
        return false;
    };
    match nix::sys::signal::kill(nix::unistd::Pid::from_raw(pid), None) {
        Ok(()) => true,
        Err(nix::errno::Errno::ESRCH) => false,
        Err(_) => true, // EPERM: it exists but is not ours
    }
}

/// A held lock; released when dropped.
pub struct LockGuard {
    backend: Arc<dyn Backend>,
    name: String,
    /// Stale records of other processes that did not conflict with ours.
    pub stale_seen: Vec<String>,
}

impl Drop for LockGuard {
    fn drop(&mut self) {
        if let Err(e) = self.backend.delete(Kind::Lock, &self.name) {
            tracing::warn!("could not remove lock {}: {e}", self.name);
        }
    }
}

/// All lock records, with their object names. Unreadable records are returned as `Err`.
pub fn list_locks(backend: &dyn Backend) -> Result<Vec<(String, Result<LockRecord>)>> {
    let mut out = Vec::new();
    for name in backend.list(Kind::Lock)? {
        let rec = match backend.get(Kind::Lock, &name) {
            Ok(bytes) => serde_json::from_slice::<LockRecord>(&bytes)
                .map_err(|e| Error::corrupt(backend.describe(Kind::Lock, &name), e)),
            // Removed between list and get: its holder finished.
            Err(Error::Io { source, .. }) if source.kind() == std::io::ErrorKind::NotFound => {
                continue
            }
            Err(e) => Err(e),
        };
        out.push((name, rec));
    }
    Ok(out)
}

/// Take the lock, retrying for up to `wait` while a live process holds a conflicting one.
pub fn acquire(
    backend: Arc<dyn Backend>,
    exclusive: bool,
    operation: &str,
    wait: Duration,
) -> Result<LockGuard> {
    let deadline = Instant::now() + wait;
    let record = LockRecord {
        hostname: hostname(),
        pid: std::process::id(),
        time: humantime::format_rfc3339_seconds(SystemTime::now()).to_string(),
        exclusive,
        operation: operation.to_string(),
    };
    let bytes = serde_json::to_vec(&record).map_err(|e| Error::Invalid(e.to_string()))?;
    loop {
        let mut rnd = [0u8; 16];
        getrandom::fill(&mut rnd).map_err(|e| Error::Invalid(format!("random: {e}")))?;
        let name = hex::encode(rnd);
        if !backend.put_new(Kind::Lock, &name, &bytes)? {
            continue;
        }
        let guard = LockGuard {
            backend: backend.clone(),
            name: name.clone(),
            stale_seen: Vec::new(),
        };
        let mut live_conflict = None;
        let mut stale_conflict = None;
        let mut stale_seen = Vec::new();
        for (other, rec) in list_locks(backend.as_ref())? {
            if other == name {
                continue;
            }
            match rec {
                Ok(r) => {
                    let conflicts = exclusive || r.exclusive;
                    if r.is_stale() {
                        let msg = format!("{} (that process is gone)", r.describe());
                        if conflicts {
                            stale_conflict = Some(msg);
                        } else {
                            stale_seen.push(msg);
                        }
                    } else if conflicts {
                        live_conflict = Some(r.describe());
                    }
                }
                Err(e) => live_conflict = Some(format!("unreadable lock record: {e}")),
            }
        }
        if live_conflict.is_none() && stale_conflict.is_none() {
            let mut guard = guard;
            guard.stale_seen = stale_seen;
            return Ok(guard);
        }
        drop(guard);
        if let Some(stale) = stale_conflict.filter(|_| live_conflict.is_none()) {
            return Err(Error::StaleLock(stale));
        }
        if Instant::now() >= deadline {
            return Err(Error::Locked(format!(
                "{}; try again later or pass --lock-wait",
                live_conflict.unwrap_or_default()
            )));
        }
        std::thread::sleep(Duration::from_millis(500).min(deadline - Instant::now()));
    }
}

/// Remove stale records (or every record with `all`); returns the descriptions removed.
pub fn unlock(backend: &dyn Backend, all: bool) -> Result<Vec<String>> {
    let mut removed = Vec::new();
    for (name, rec) in list_locks(backend)? {
        let (remove, what) = match &rec {
            Ok(r) => (all || r.is_stale(), r.describe()),
            Err(e) => (all, e.to_string()),
        };
        if remove {
            backend.delete(Kind::Lock, &name)?;
            removed.push(what);
        }
    }
    Ok(removed)
}

//! The repository lock: one small record per holder under `locks/`.
//!
//! Protocol (docs/FORMAT.md, "Locks"): a process writes its own record with a create-if-absent
//! put, then lists all records. Shared holders (backup) coexist; an exclusive holder (prune,
//! index repair) excludes everyone. On conflict it removes its own record and either retries
//! until the wait runs out or fails with a message naming the holder. A conflicting record whose
//! process is gone (same host, and another boot, or the pid not alive, or the pid now another
//! process) is stale: it is reported and removed, never waited on; stale records that do not
//! conflict are only reported.

use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use serde::{Deserialize, Serialize};

use super::backend::{list_names, Backend, Kind};
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
    /// What is locked: [`REPOSITORY`] or `points/<source>`; only equal scopes conflict.
    #[serde(default = "repository_scope")]
    pub scope: String,
    /// The host's boot id (Linux `/proc/sys/kernel/random/boot_id`): after a crash and reboot
    /// the record is stale even if a new process got the same pid.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub boot: Option<String>,
    /// When the holder started, in clock ticks since boot (`/proc/PID/stat`): a pid reused
    /// by a later process does not keep the record alive.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub started: Option<u64>,
}

/// The scope of the repository-wide lock (backup: shared; prune: exclusive).
pub const REPOSITORY: &str = "repository";

fn repository_scope() -> String {
    REPOSITORY.to_string()
}

impl LockRecord {
    /// Whether this record was left by a process on this host that no longer runs. Records
    /// without a boot id or start time (older versions) are judged by the pid alone.
    pub fn is_stale(&self) -> bool {
        if self.hostname != hostname() {
            return false;
        }
        if let (Some(theirs), Some(ours)) = (&self.boot, boot_id()) {
            if *theirs != ours {
                return true;
            }
        }
        if !pid_alive(self.pid) {
            return true;
        }
        matches!((self.started, process_start(self.pid)), (Some(then), Some(now)) if then != now)
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

/// This boot of this host, where the system says (Linux).
pub fn boot_id() -> Option<String> {
    std::fs::read_to_string("/proc/sys/kernel/random/boot_id")
        .ok()
        .map(|s| s.trim().to_string())
        .filter(|s| !s.is_empty())
}

/// When process `pid` started, in clock ticks since boot (field 22 of `/proc/PID/stat`);
/// `None` where that cannot be read.
pub fn process_start(pid: u32) -> Option<u64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // The command name (field 2) is in parentheses and may hold spaces or parentheses itself:
    // the fields after it start after its last ')', with field 3.
    let rest = &stat[stat.rfind(')')? + 1..];
    rest.split_whitespace().nth(22 - 3)?.parse().ok()
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
    for name in list_names(backend, Kind::Lock)? {
        let rec = match backend.get(Kind::Lock, &name).map_err(Error::from) {
            Ok(bytes) => serde_json::from_slice::<LockRecord>(&bytes)
                .map_err(|e| Error::corrupt(backend.describe(Kind::Lock, &name), e)),
            // Removed between list and get: its holder finished.
            Err(e) if e.is_not_found() => continue,
            Err(e) => Err(e),
        };
        out.push((name, rec));
    }
    Ok(out)
}

/// Take a lock on `scope`, retrying for up to `wait` while a live process holds a conflicting
/// one.
pub fn acquire(
    backend: Arc<dyn Backend>,
    scope: &str,
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
        scope: scope.to_string(),
        boot: boot_id(),
        started: process_start(std::process::id()),
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
        };
        let mut live_conflict = None;
        for (other, rec) in list_locks(backend.as_ref())? {
            if other == name {
                continue;
            }
            match rec {
                // A process on this host that no longer exists holds nothing: say so, remove it.
                Ok(r) if r.is_stale() => {
                    tracing::warn!(
                        "removing stale lock: {} (that process is gone)",
                        r.describe()
                    );
                    backend.delete(Kind::Lock, &other)?;
                }
                Ok(r) if r.scope == scope && (exclusive || r.exclusive) => {
                    live_conflict = Some(r.describe());
                }
                Ok(_) => {}
                Err(e) => live_conflict = Some(format!("unreadable lock record: {e}")),
            }
        }
        let Some(conflict) = live_conflict else {
            return Ok(guard);
        };
        drop(guard);
        if Instant::now() >= deadline {
            return Err(Error::Locked(conflict));
        }
        // Jitter, so two exclusive lockers that keep meeting each other drift apart.
        let mut j = [0u8; 1];
        let _ = getrandom::fill(&mut j);
        let pause = Duration::from_millis(100 + 2 * u64::from(j[0]));
        std::thread::sleep(pause.min(deadline - Instant::now()));
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

#[cfg(test)]
mod stale_tests {
    use super::*;

    fn record() -> LockRecord {
        LockRecord {
            hostname: hostname(),
            pid: std::process::id(),
            time: String::new(),
            exclusive: false,
            operation: "test".into(),
            scope: REPOSITORY.into(),
            boot: boot_id(),
            started: process_start(std::process::id()),
        }
    }

    #[test]
    fn a_live_holder_is_not_stale_and_a_reused_pid_or_another_boot_is() {
        let me = record();
        assert!(!me.is_stale(), "{me:?}");
        if me.started.is_some() {
            let reused = LockRecord {
                started: me.started.map(|s| s + 1),
                ..record()
            };
            assert!(reused.is_stale(), "the pid now belongs to a later process");
        }
        if me.boot.is_some() {
            let before_reboot = LockRecord {
                boot: Some("another-boot".into()),
                ..record()
            };
            assert!(before_reboot.is_stale(), "left before a reboot");
        }
        let older = LockRecord {
            boot: None,
            started: None,
            ..record()
        };
        assert!(!older.is_stale(), "an older record: the live pid decides");
        let remote = LockRecord {
            hostname: format!("{}-elsewhere", hostname()),
            boot: Some("another-boot".into()),
            ..record()
        };
        assert!(!remote.is_stale(), "records of other hosts are never stale");
        // Records written without the new fields still parse.
        let old: LockRecord = serde_json::from_str(
            r#"{"hostname":"h","pid":1,"time":"t","exclusive":true,"operation":"prune"}"#,
        )
        .unwrap();
        assert!(old.boot.is_none() && old.started.is_none() && old.scope == REPOSITORY);
    }

    #[test]
    fn the_start_time_of_this_process_is_known() {
        let t = process_start(std::process::id());
        assert!(t.is_some_and(|t| t > 0), "{t:?}");
        assert_eq!(process_start(u32::MAX), None);
    }
}

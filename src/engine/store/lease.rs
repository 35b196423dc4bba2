//! A lock record and its lease: what a holder stores under `locks/`, the lease length, and
//! the rules that make a record stale (an expired lease on any host; on this host, a holder
//! from another boot, a pid not alive or now another process). Taking and holding locks is
//! [`super::lock`]'s.

use std::sync::OnceLock;
use std::time::{Duration, SystemTime};

use serde::{Deserialize, Serialize};

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
    /// Random token of this holder (16 bytes in hex): a refresh re-puts the record only while
    /// the stored one still carries it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub token: Option<String>,
    /// The lease length in seconds; the holder refreshes every third of it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub lease: Option<u64>,
    /// Unix seconds after which the record is stale unless refreshed. Records of older
    /// versions have none and are judged by the same-host rules alone.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub expires: Option<u64>,
}

/// The default lease (docs/FORMAT.md, "Locks", says why 5 minutes).
pub const DEFAULT_LEASE: Duration = Duration::from_secs(300);

/// The lease new locks get unless the library caller sets one
/// ([`super::Repository::with_lock_lease`]): [`DEFAULT_LEASE`], or `YESTER_LOCK_LEASE`
/// (seconds, or a duration like `3s`) where set, so integration tests can watch leases expire.
/// This is the only place that reads the variable.
pub fn default_lease() -> Duration {
    static LEASE: OnceLock<Duration> = OnceLock::new();
    *LEASE.get_or_init(|| {
        let Some(v) = std::env::var_os("YESTER_LOCK_LEASE") else {
            return DEFAULT_LEASE;
        };
        let v = v.to_string_lossy();
        let parsed = v
            .trim()
            .parse::<u64>()
            .map(Duration::from_secs)
            .or_else(|_| humantime::parse_duration(v.trim()));
        match parsed {
            Ok(d) if d >= Duration::from_secs(1) => d,
            _ => {
                tracing::warn!("YESTER_LOCK_LEASE={v}: not a duration of 1s or more; using 300s");
                DEFAULT_LEASE
            }
        }
    })
}

/// Seconds since the Unix epoch.
pub(super) fn unix_now() -> u64 {
    SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

/// A lease in whole seconds, at least one (records store seconds).
pub(super) fn lease_secs(lease: Duration) -> u64 {
    (lease.as_secs() + u64::from(lease.subsec_nanos() > 0)).max(1)
}

/// The scope of the repository-wide lock (backup: shared; prune: exclusive).
pub const REPOSITORY: &str = "repository";

fn repository_scope() -> String {
    REPOSITORY.to_string()
}

impl LockRecord {
    /// Whether this record holds nothing any more: its lease expired (any host), or it was
    /// left by a process on this host that no longer runs. Records without an expiry, boot id
    /// or start time (older versions) are judged by the rules whose fields they have.
    pub fn is_stale(&self) -> bool {
        self.is_stale_at(unix_now())
    }

    /// [`LockRecord::is_stale`] at `now` (Unix seconds).
    pub fn is_stale_at(&self, now: u64) -> bool {
        if self.expires.is_some_and(|e| now > e) {
            return true;
        }
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

    pub(super) fn describe(&self) -> String {
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
            token: None,
            lease: None,
            expires: None,
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
        assert!(old.expires.is_none() && !old.is_stale_at(u64::MAX));
        // A lease expires on any host, and not before its time.
        let leased = LockRecord {
            expires: Some(1000),
            ..remote
        };
        assert!(!leased.is_stale_at(1000) && leased.is_stale_at(1001));
    }

    #[test]
    fn the_start_time_of_this_process_is_known() {
        let t = process_start(std::process::id());
        assert!(t.is_some_and(|t| t > 0), "{t:?}");
        assert_eq!(process_start(u32::MAX), None);
    }
}

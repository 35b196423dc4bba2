//! The repository lock: one small record per holder under `locks/`, held as a lease.
//!
//! Protocol (docs/FORMAT.md, "Locks"): a process writes its own record with a create-if-absent
//! put, then lists all records. Shared holders (backup) coexist; an exclusive holder (prune,
//! index repair) excludes everyone. On conflict it removes its own record and either retries
//! until the wait runs out or fails naming the holder. While held, a thread re-puts the record
//! with a later expiry every third of the lease, so a holder on any host that dies (or loses
//! its connection) stops refreshing and its record expires: then it is stale. A record on this
//! host whose process is gone (another boot, the pid not alive, or the pid now another process)
//! is stale at once. Stale records are reported and removed, never waited on.

use std::sync::{Arc, Condvar, Mutex, OnceLock};
use std::thread::JoinHandle;
use std::time::{Duration, Instant, SystemTime};

use serde::{Deserialize, Serialize};

use super::{list_names, Backend, Kind};
use crate::engine::error::{Error, Result};

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
fn unix_now() -> u64 {
    SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

/// A lease in whole seconds, at least one (records store seconds).
fn lease_secs(lease: Duration) -> u64 {
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

/// Tells the refresh thread to stop, and whether the lease was lost.
#[derive(Default)]
struct RefreshState {
    stop: bool,
    lost: Option<String>,
}

/// A held lock; a thread refreshes its lease until it is dropped, which stops the thread and
/// deletes the record.
pub struct LockGuard {
    backend: Arc<dyn Backend>,
    name: String,
    state: Arc<(Mutex<RefreshState>, Condvar)>,
    refresher: Option<JoinHandle<()>>,
}

impl LockGuard {
    /// The record's object name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// Fails with [`Error::Locked`] if the lease was lost (the record was removed or replaced
    /// by another process, which then took it for stale): a holder about to commit or delete
    /// something stops instead.
    pub fn check(&self) -> Result<()> {
        let st = self.state.0.lock().unwrap_or_else(|p| p.into_inner());
        match &st.lost {
            Some(why) => Err(Error::Locked(format!("lock lease lost: {why}"))),
            None => Ok(()),
        }
    }

    /// Start refreshing `record` (stored as `name`) every third of its lease.
    fn start(backend: Arc<dyn Backend>, name: String, record: LockRecord, lease: Duration) -> Self {
        let state: Arc<(Mutex<RefreshState>, Condvar)> = Arc::default();
        let refresher = {
            let (backend, name, state) = (backend.clone(), name.clone(), state.clone());
            std::thread::Builder::new()
                .name("yester-lock-lease".into())
                .spawn(move || refresh_loop(backend.as_ref(), &name, record, lease, &state))
        };
        let refresher = match refresher {
            Ok(h) => Some(h),
            Err(e) => {
                // Without the thread the lease simply runs out: others may take the lock
                // after it, and `check` says so.
                tracing::warn!("cannot start the lock refresh thread: {e}");
                None
            }
        };
        LockGuard {
            backend,
            name,
            state,
            refresher,
        }
    }
}

/// Re-put the own record with a new expiry every third of the lease until told to stop. A
/// record that is gone or carries another token was taken for stale: stop and say so.
fn refresh_loop(
    backend: &dyn Backend,
    name: &str,
    mut record: LockRecord,
    lease: Duration,
    state: &(Mutex<RefreshState>, Condvar),
) {
    let every = lease / 3;
    let mut st = state.0.lock().unwrap_or_else(|p| p.into_inner());
    loop {
        let deadline = Instant::now() + every;
        while !st.stop {
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                break;
            }
            st = state
                .1
                .wait_timeout(st, left)
                .map_or_else(|p| p.into_inner().0, |(g, _)| g);
        }
        if st.stop {
            return;
        }
        drop(st);
        let lost = match backend.get(Kind::Lock, name) {
            Ok(bytes) => match serde_json::from_slice::<LockRecord>(&bytes) {
                Ok(r) if r.token == record.token => None,
                _ => Some("the record was replaced by another holder".to_string()),
            },
            Err(e) if e.is_not_found() => Some("the record was removed as stale".to_string()),
            // A failed read (a dropped connection): try again next time; the lease has
            // two thirds of its length left.
            Err(e) => {
                tracing::warn!("cannot refresh lock {name}: {e}");
                None
            }
        };
        if lost.is_none() {
            record.expires = Some(unix_now() + lease_secs(lease));
            let put = serde_json::to_vec(&record)
                .map_err(|e| e.to_string())
                .and_then(|b| backend.put(Kind::Lock, name, &b).map_err(|e| e.to_string()));
            if let Err(e) = put {
                tracing::warn!("cannot refresh lock {name}: {e}");
            }
        }
        st = state.0.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(why) = lost {
            tracing::error!("lock {name}: {why}; no longer holding it");
            st.lost = Some(why);
            return;
        }
    }
}

impl Drop for LockGuard {
    fn drop(&mut self) {
        {
            let mut st = self.state.0.lock().unwrap_or_else(|p| p.into_inner());
            st.stop = true;
            self.state.1.notify_all();
        }
        // Joined before the delete, so no refresh can bring the record back after it.
        if let Some(h) = self.refresher.take() {
            let _ = h.join();
        }
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

fn random_hex() -> Result<String> {
    let mut rnd = [0u8; 16];
    getrandom::fill(&mut rnd).map_err(|e| Error::Invalid(format!("random: {e}")))?;
    Ok(hex::encode(rnd))
}

/// Take a lock on `scope` with a lease of `lease`, retrying for up to `wait` while a live
/// holder has a conflicting one.
pub fn acquire(
    backend: Arc<dyn Backend>,
    scope: &str,
    exclusive: bool,
    operation: &str,
    wait: Duration,
    lease: Duration,
) -> Result<LockGuard> {
    let record = LockRecord {
        hostname: hostname(),
        pid: std::process::id(),
        time: humantime::format_rfc3339_seconds(SystemTime::now()).to_string(),
        exclusive,
        operation: operation.to_string(),
        scope: scope.to_string(),
        boot: boot_id(),
        started: process_start(std::process::id()),
        token: None,
        lease: None,
        expires: None,
    };
    acquire_record(backend, record, wait, lease)
}

/// Take the lock `record` describes (its token, lease and expiry are set here).
fn acquire_record(
    backend: Arc<dyn Backend>,
    mut record: LockRecord,
    wait: Duration,
    lease: Duration,
) -> Result<LockGuard> {
    let deadline = Instant::now() + wait;
    let (scope, exclusive) = (record.scope.clone(), record.exclusive);
    record.token = Some(random_hex()?);
    record.lease = Some(lease_secs(lease));
    loop {
        record.expires = Some(unix_now() + lease_secs(lease));
        let bytes = serde_json::to_vec(&record).map_err(|e| Error::Invalid(e.to_string()))?;
        let name = random_hex()?;
        if !backend.put_new(Kind::Lock, &name, &bytes)? {
            continue;
        }
        let guard = LockGuard::start(backend.clone(), name.clone(), record.clone(), lease);
        let mut live_conflict = None;
        for (other, rec) in list_locks(backend.as_ref())? {
            if other == name {
                continue;
            }
            match rec {
                // A process on this host that no longer exists holds nothing: say so, remove it.
                Ok(r) if r.is_stale() => {
                    tracing::warn!(
                        "removing stale lock: {} (that holder is gone or its lease expired)",
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

#[cfg(test)]
mod lease_tests {
    use super::*;
    use crate::engine::store::MemoryBackend;

    /// A record as another host writes it: same-host rules do not apply to it.
    fn remote(exclusive: bool) -> LockRecord {
        LockRecord {
            hostname: format!("{}-elsewhere", hostname()),
            pid: 1,
            time: String::new(),
            exclusive,
            operation: "prune".into(),
            scope: REPOSITORY.into(),
            boot: None,
            started: None,
            token: None,
            lease: None,
            expires: None,
        }
    }

    const LEASE: Duration = Duration::from_secs(1);

    fn names(be: &dyn Backend) -> Vec<String> {
        list_names(be, Kind::Lock).unwrap()
    }

    #[test]
    fn a_remote_lease_that_stopped_refreshing_is_taken_over_after_it_expires() {
        let be: Arc<dyn Backend> = Arc::new(MemoryBackend::new());
        // Left by a holder on another host that died: expires in a second, never refreshed.
        let dead = LockRecord {
            token: Some("dead".into()),
            lease: Some(1),
            expires: Some(unix_now() + 1),
            ..remote(true)
        };
        be.put_new(Kind::Lock, "dead", &serde_json::to_vec(&dead).unwrap())
            .unwrap();
        let Err(Error::Locked(msg)) = acquire(
            be.clone(),
            REPOSITORY,
            false,
            "backup",
            Duration::ZERO,
            LEASE,
        ) else {
            panic!("a live remote lease did not block");
        };
        assert!(msg.contains("elsewhere"), "{msg}");
        assert_eq!(
            names(be.as_ref()),
            ["dead"],
            "the failed attempt left nothing"
        );
        let started = Instant::now();
        let guard = acquire(
            be.clone(),
            REPOSITORY,
            false,
            "backup",
            Duration::from_secs(10),
            LEASE,
        )
        .unwrap();
        assert!(started.elapsed() < Duration::from_secs(5));
        assert_eq!(
            names(be.as_ref()),
            [guard.name().to_string()],
            "stale one removed"
        );
        drop(guard);
        assert!(names(be.as_ref()).is_empty(), "released");
    }

    #[test]
    fn a_remote_lease_that_is_refreshed_is_not_taken_over() {
        let be: Arc<dyn Backend> = Arc::new(MemoryBackend::new());
        let (held_tx, held_rx) = std::sync::mpsc::channel();
        let (release_tx, release_rx) = std::sync::mpsc::channel::<()>();
        // The other "host": holds an exclusive lease on a thread of its own, refreshed by its
        // guard, until told to let go.
        let holder = {
            let be = be.clone();
            std::thread::spawn(move || {
                let guard = acquire_record(be, remote(true), Duration::ZERO, LEASE).unwrap();
                held_tx.send(guard.name().to_string()).unwrap();
                let _ = release_rx.recv();
                guard.check().unwrap();
                drop(guard);
            })
        };
        let held = held_rx.recv().unwrap();
        let first = be.get(Kind::Lock, &held).unwrap();
        // Waits well past several lease lengths: the refreshed lease keeps it out.
        let started = Instant::now();
        let res = acquire(
            be.clone(),
            REPOSITORY,
            false,
            "backup",
            Duration::from_millis(3500),
            LEASE,
        );
        let waited = started.elapsed();
        let Err(Error::Locked(msg)) = res else {
            panic!("took a lock whose holder is alive");
        };
        assert!(msg.contains("exclusive lock held by `prune`"), "{msg}");
        assert!(waited >= Duration::from_millis(3500), "{waited:?}");
        assert_ne!(
            be.get(Kind::Lock, &held).unwrap(),
            first,
            "the lease was refreshed"
        );
        assert_eq!(names(be.as_ref()), std::slice::from_ref(&held));
        release_tx.send(()).unwrap();
        holder.join().unwrap();
        assert!(
            names(be.as_ref()).is_empty(),
            "the holder's record went with its guard"
        );
        let guard = acquire(be.clone(), REPOSITORY, true, "prune", Duration::ZERO, LEASE).unwrap();
        guard.check().unwrap();
    }

    #[test]
    fn a_holder_whose_record_was_taken_for_stale_knows_it_lost_the_lease() {
        let be: Arc<dyn Backend> = Arc::new(MemoryBackend::new());
        let guard = acquire(be.clone(), REPOSITORY, true, "prune", Duration::ZERO, LEASE).unwrap();
        guard.check().unwrap();
        be.delete(Kind::Lock, guard.name()).unwrap();
        let deadline = Instant::now() + Duration::from_secs(5);
        while guard.check().is_ok() && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(50));
        }
        let Err(Error::Locked(msg)) = guard.check() else {
            panic!("the lost lease went unnoticed");
        };
        assert!(msg.contains("lost"), "{msg}");
        drop(guard);
        assert!(
            names(be.as_ref()).is_empty(),
            "no refresh brought the record back"
        );
    }
}

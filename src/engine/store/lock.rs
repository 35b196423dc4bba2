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
//!
//! Here: acquiring, refreshing and releasing. The record and the rules that make it stale are
//! [`super::lease`]'s (re-exported here, so callers name one module).

use std::sync::{Arc, Condvar, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant, SystemTime};

use super::{list_names, Backend, Kind};
use crate::engine::error::{Error, Result};

pub use super::lease::{
    boot_id, default_lease, hostname, pid_alive, process_start, LockRecord, REPOSITORY,
};
use super::lease::{lease_secs, unix_now};

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

//! The repository as the view last saw it, refreshed by one background thread every refresh
//! interval so new backups, rotations and prunes show up in a running mount. Requests never
//! wait for a refresh: they take the state as it is (the one exception: a read that finds its
//! pack gone, see [`Shared::reader_after`]).
//!
//! One refresh lists the snapshot, catalogue and index objects and reads only those it has not
//! seen (records are immutable), so its cost does not grow with the repository.

use std::sync::{Arc, Mutex, RwLock, Weak};
use std::time::Duration;

use crate::engine::format::tree::Timestamp;
use crate::engine::{BlobReader, Repository, Result};
use crate::points::View;

/// Snapshots, points and the index at one moment.
pub struct State {
    pub view: View,
    pub reader: Arc<BlobReader>,
    /// When a refresh last found other snapshots or points than the state before it (zero
    /// until one does): the virtual directories' times are at least this, so a listing the
    /// kernel cached is dropped also when a snapshot older than the newest appears or goes.
    pub changed: Timestamp,
    /// Every virtual and point directory by identity, made on first use (see
    /// `Vfs::virtual_node`): each NFS call on such a handle looks its node up here.
    pub(super) virtuals:
        std::sync::OnceLock<std::collections::HashMap<super::node::Ident, super::Node>>,
}

impl State {
    /// The snapshot with this id, if the state still has it.
    pub fn snapshot(
        &self,
        id: &crate::engine::SnapshotId,
    ) -> Option<&crate::engine::format::snapshot::SnapshotEntry> {
        self.view.all.iter().find(|s| s.id == *id)
    }
}

/// Whether two views list the same snapshots, levels and points.
fn same_listings(a: &View, b: &View) -> bool {
    a.all.len() == b.all.len()
        && a.all.iter().zip(&b.all).all(|(x, y)| x.id == y.id)
        && a.levels.len() == b.levels.len()
        && a.levels
            .iter()
            .zip(&b.levels)
            .all(|(x, y)| x.name == y.name)
        && a.sources.len() == b.sources.len()
        && a.sources
            .iter()
            .zip(&b.sources)
            .all(|((n, x), (m, y))| n == m && x.catalog == y.catalog)
}

fn now() -> Timestamp {
    let d = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap_or_default();
    Timestamp {
        secs: i64::try_from(d.as_secs()).unwrap_or(i64::MAX),
        nanos: d.subsec_nanos(),
    }
}

/// The current [`State`], swapped atomically on refresh.
pub struct Shared {
    pub repo: Repository,
    current: RwLock<Arc<State>>,
    refreshing: Mutex<()>,
}

fn load(repo: &Repository, prev: Option<&State>) -> Result<State> {
    let (view, broken) = View::load_reusing(repo, prev.map(|p| &p.view))?;
    for e in broken {
        tracing::warn!("{e}");
    }
    let reader = match prev {
        // Index files are immutable: only new ones need reading.
        Some(p) => match repo.refresh_reader(&p.reader)? {
            Some(r) => Arc::new(r),
            None => p.reader.clone(),
        },
        None => Arc::new(repo.reader()?),
    };
    let changed = match prev {
        Some(p) if same_listings(&p.view, &view) => p.changed,
        Some(_) => now(),
        None => Timestamp::default(),
    };
    Ok(State {
        view,
        reader,
        changed,
        virtuals: std::sync::OnceLock::new(),
    })
}

impl Shared {
    /// Load the state and start the thread that refreshes it every `interval` for as long
    /// as the returned `Shared` lives.
    pub fn start(repo: Repository, interval: Duration) -> Result<Arc<Self>> {
        let state = load(&repo, None)?;
        let shared = Arc::new(Shared {
            repo,
            current: RwLock::new(Arc::new(state)),
            refreshing: Mutex::new(()),
        });
        let weak: Weak<Shared> = Arc::downgrade(&shared);
        // The thread starts with every signal blocked (a new thread inherits its creator's
        // mask): signals are for the process's own handling, e.g. the mount's wait for
        // SIGTERM, which a thread with the default action would turn into a kill.
        let old = nix::sys::signal::SigSet::all()
            .thread_swap_mask(nix::sys::signal::SigmaskHow::SIG_BLOCK);
        let spawned = std::thread::Builder::new()
            .name("yester-refresh".into())
            .spawn(move || loop {
                std::thread::sleep(interval);
                let Some(shared) = weak.upgrade() else {
                    return;
                };
                shared.refresh();
            });
        if let Ok(old) = old {
            let _ = old.thread_set_mask();
        }
        if let Err(e) = spawned {
            // The view still works; it only stops seeing new backups.
            tracing::warn!("cannot start refreshing the view: {e}");
        }
        Ok(shared)
    }

    /// The state now, as last swapped in.
    fn current(&self) -> Arc<State> {
        self.current
            .read()
            .map_or_else(|p| p.into_inner().clone(), |g| g.clone())
    }

    /// Load a newer state than `cur` and swap it in; on failure keep `cur` (and say why).
    /// The caller holds `refreshing`.
    fn reload(&self, cur: Arc<State>) -> Arc<State> {
        match load(&self.repo, Some(&cur)) {
            Ok(new) => {
                let new = Arc::new(new);
                match self.current.write() {
                    Ok(mut g) => *g = new.clone(),
                    Err(p) => *p.into_inner() = new.clone(),
                }
                new
            }
            Err(e) => {
                tracing::warn!("cannot refresh the view of the repository: {e}");
                cur
            }
        }
    }

    /// A reader that does not have the index `failed` had: a read through `failed` found its
    /// pack gone (prune moved the blob to a new pack and deleted the old one), so the state is
    /// reloaded now, whatever its age — unless another caller already did.
    pub fn reader_after(&self, failed: &BlobReader) -> Arc<BlobReader> {
        let _guard = self.refreshing.lock().unwrap_or_else(|p| p.into_inner());
        let cur = self.current();
        if !std::ptr::eq(cur.reader.as_ref(), failed) {
            return cur.reader.clone();
        }
        self.reload(cur).reader.clone()
    }

    /// The current state.
    pub fn get(&self) -> Arc<State> {
        self.current()
    }

    /// Load a newer state and swap it in (the background thread's work).
    fn refresh(&self) {
        let _guard = self.refreshing.lock().unwrap_or_else(|p| p.into_inner());
        self.reload(self.current());
    }
}

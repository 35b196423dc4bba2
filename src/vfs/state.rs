//! The repository as the view last saw it, refreshed when older than the refresh interval so
//! new backups, rotations and prunes show up in a running mount.

use std::sync::{Arc, Mutex, RwLock};
use std::time::{Duration, Instant};

use crate::engine::backend::Kind;
use crate::engine::tree::Timestamp;
use crate::engine::{BlobReader, Repository, Result};
use crate::points::View;

/// Snapshots, points and the index at one moment.
pub struct State {
    pub view: View,
    pub reader: Arc<BlobReader>,
    loaded: Instant,
    /// When a refresh last found other snapshots or points than the state before it (zero
    /// until one does): the virtual directories' times are at least this, so a listing the
    /// kernel cached is dropped also when a snapshot older than the newest appears or goes.
    pub changed: Timestamp,
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
    interval: Duration,
}

fn load(repo: &Repository, prev: Option<&State>) -> Result<State> {
    let (view, broken) = View::load_reusing(repo, prev.map(|p| &p.view))?;
    for e in broken {
        tracing::warn!("{e}");
    }
    let names = repo.backend.list(Kind::Index)?;
    let reader = match prev {
        // Index files are immutable: when none went away, only the new ones need reading.
        Some(p)
            if p.reader
                .index
                .file_names()
                .iter()
                .all(|n| names.contains(n)) =>
        {
            let known = p.reader.index.file_names();
            let new: Vec<String> = names.into_iter().filter(|n| !known.contains(n)).collect();
            if new.is_empty() {
                p.reader.clone()
            } else {
                let mut index = p.reader.index.clone();
                index.load_files(repo.backend.as_ref(), &new)?;
                Arc::new(BlobReader {
                    repo: repo.clone(),
                    index,
                })
            }
        }
        _ => Arc::new(repo.reader()?),
    };
    let changed = match prev {
        Some(p) if same_listings(&p.view, &view) => p.changed,
        Some(_) => now(),
        None => Timestamp::default(),
    };
    Ok(State {
        view,
        reader,
        loaded: Instant::now(),
        changed,
    })
}

impl Shared {
    pub fn new(repo: Repository, interval: Duration) -> Result<Self> {
        let state = load(&repo, None)?;
        Ok(Shared {
            repo,
            current: RwLock::new(Arc::new(state)),
            refreshing: Mutex::new(()),
            interval,
        })
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

    /// The current state, refreshed first if it is older than the interval. Only one caller
    /// refreshes; the others go on with the state they have.
    pub fn get(&self) -> Arc<State> {
        let cur = self.current();
        if cur.loaded.elapsed() < self.interval {
            return cur;
        }
        let Ok(_guard) = self.refreshing.try_lock() else {
            return cur;
        };
        self.reload(cur)
    }
}

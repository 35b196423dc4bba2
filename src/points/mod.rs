//! Backup points: rsnapshot-style retention on top of the engine's snapshots.
//!
//! Each source has a catalogue naming which snapshot each point (`hourly.0`, `daily.3`, …)
//! holds. Backups push into the lowest level, rotations promote the oldest point of a full
//! lower level, and snapshots no point names any more are forgotten (their records deleted;
//! `prune` later reclaims their data).

pub mod backup;
pub(crate) mod catalog;
pub(crate) mod levels;
pub(crate) mod name;
pub mod status;
pub(crate) mod view;

#[cfg(test)]
mod crash_tests;

use std::time::Duration;

use crate::engine::store::lock::{self, LockGuard};
use crate::engine::{Error, Repository, Result, SnapshotId};

pub use catalog::{Catalog, CatalogCheck, Generation, RotateOutcome};
pub use levels::{default_levels, levels_of, set_levels, validate_levels, Level};
pub use name::PointName;
pub use view::{Selector, View};

/// Catalogue edits are short; wait at least this long for another one to finish.
const MIN_POINTS_WAIT: Duration = Duration::from_secs(30);

/// Locks for editing a source's points: the repository (shared, so prune cannot run while
/// snapshot records are being deleted) and the source's catalogue (exclusive).
fn lock_points(
    repo: &Repository,
    source: &str,
    op: &str,
    wait: Duration,
) -> Result<(LockGuard, LockGuard)> {
    crate::engine::format::snapshot::check_source_name(source)?;
    // (Taking the locks is this process's first write: the backend removes dead writers' temp
    // files then, so the leftovers of a killed rotation or forget do not pile up.)
    let repo_lock = repo.lock(lock::REPOSITORY, false, op, wait)?;
    let scope = format!("points/{source}");
    let points_lock = repo.lock(&scope, true, op, wait.max(MIN_POINTS_WAIT))?;
    Ok((repo_lock, points_lock))
}

/// Delete the records of snapshots no point names any more (after the catalogue is saved, so
/// a crash in between leaves an unnamed snapshot, never a point naming a missing one).
fn forget_records(repo: &Repository, ids: &[SnapshotId]) -> Result<()> {
    for id in ids {
        repo.delete_snapshot(id)?;
    }
    Ok(())
}

/// Load the catalogue of `source` for an edit, under its points lock: the newest valid
/// generation, warning about each damaged newer one (the edit still goes on, so a damaged
/// catalogue never stops backups from recording their points).
fn load_for_edit(repo: &Repository, source: &str) -> Result<catalog::Loaded> {
    let loaded = Catalog::load(repo.backend(), source)?;
    for e in &loaded.problems {
        tracing::warn!("skipping a point catalogue of {source}: {e}");
    }
    Ok(loaded)
}

/// Delete the records of `dropped` unless newer catalogue generations were skipped as damaged:
/// they may have kept those snapshots at other points, so the records stay (reachable under
/// `snapshots/<source>/`, and `forget` removes them) rather than risk deleting a wanted one.
fn forget_dropped(
    repo: &Repository,
    loaded: &catalog::Loaded,
    dropped: &[SnapshotId],
) -> Result<()> {
    if loaded.skipped_newer && !dropped.is_empty() {
        tracing::warn!(
            "{} snapshots left the points of {} but their records are kept: a newer catalogue              generation was damaged and may have named them",
            dropped.len(),
            loaded.catalog.source
        );
        return Ok(());
    }
    forget_records(repo, dropped)
}

/// Record a new backup of `source` as the lowest level's `.0`; returns dropped snapshots.
pub fn record_backup(
    repo: &Repository,
    source: &str,
    id: SnapshotId,
    wait: Duration,
) -> Result<Vec<SnapshotId>> {
    let locks = lock_points(repo, source, "backup", wait)?;
    let loaded = load_for_edit(repo, source)?;
    let mut cat = loaded.catalog.clone();
    let dropped = cat.add_backup(&levels_of(repo)?, id)?;
    // Two edits of one catalogue must not overlap: save only under a live lease.
    locks.1.check()?;
    cat.save(repo.backend(), loaded.next_seq)?;
    forget_dropped(repo, &loaded, &dropped)?;
    Ok(dropped)
}

/// Rotate `level` of `source` (see [`Catalog::rotate`]).
pub fn rotate(
    repo: &Repository,
    source: &str,
    level: &str,
    wait: Duration,
) -> Result<RotateOutcome> {
    let locks = lock_points(repo, source, "rotate", wait)?;
    let loaded = load_for_edit(repo, source)?;
    let mut cat = loaded.catalog.clone();
    let outcome = cat.rotate(&levels_of(repo)?, level)?;
    if let RotateOutcome::Promoted { dropped, .. } = &outcome {
        locks.1.check()?;
        cat.save(repo.backend(), loaded.next_seq)?;
        crate::engine::failpoint::failpoint("rotate-after-catalog");
        forget_dropped(repo, &loaded, dropped)?;
    }
    Ok(outcome)
}

/// Remove snapshots of `source` from its points and delete their records.
pub fn forget(repo: &Repository, source: &str, ids: &[SnapshotId], wait: Duration) -> Result<()> {
    let locks = lock_points(repo, source, "forget", wait)?;
    let loaded = load_for_edit(repo, source)?;
    let mut cat = loaded.catalog.clone();
    let mut changed = false;
    for id in ids {
        changed |= cat.remove(id);
    }
    locks.1.check()?;
    if changed {
        cat.save(repo.backend(), loaded.next_seq)?;
    }
    // The user named these snapshots: their records go whatever the catalogue said.
    forget_records(repo, ids)
}

/// Verify every catalogue generation of every source (for `yester check`).
pub fn check_catalogs(repo: &Repository) -> Result<CatalogCheck> {
    catalog::check_all(repo.backend())
}

/// What pruning catalogue generations did (or, in a dry run, would do).
#[derive(Clone, Debug, Default)]
pub struct CatalogPrune {
    /// The objects deleted, as shown in messages.
    pub deleted: Vec<String>,
    /// Sources left alone, and why.
    pub warnings: Vec<String>,
}

/// Delete superseded catalogue generations (see [`catalog::prune_plan`]).
///
/// No lock is needed: edits only add generations newer than every listed one, so a
/// concurrent edit only supersedes more of them, and the plan keeps the valid generations a
/// reader with a slightly older listing falls back to.
pub fn prune_catalogs(repo: &Repository, dry_run: bool) -> Result<CatalogPrune> {
    let be = repo.backend();
    let mut out = CatalogPrune::default();
    'sources: for (source, gens) in catalog::list(be)?.sources {
        let mut judged = Vec::with_capacity(gens.len());
        for g in gens {
            let ok = match g.read(be) {
                Ok(_) => true,
                // Unreadable is not damaged: deciding on it could delete the only good one.
                Err(e @ (Error::Io { .. } | Error::Store(_))) => {
                    out.warnings
                        .push(format!("catalogue generations of {source} not pruned: {e}"));
                    continue 'sources;
                }
                Err(_) => false,
            };
            judged.push((g, ok));
        }
        for g in catalog::prune_plan(&judged) {
            if !dry_run {
                be.delete(g.kind(), &g.object_name())?;
            }
            out.deleted.push(g.describe(be));
        }
    }
    Ok(out)
}

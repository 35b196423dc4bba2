//! Backup points: rsnapshot-style retention on top of the engine's snapshots.
//!
//! Each source has a catalogue naming which snapshot each point (`hourly.0`, `daily.3`, …)
//! holds. Backups push into the lowest level, rotations promote the oldest point of a full
//! lower level, and snapshots no point names any more are forgotten (their records deleted;
//! `prune` later reclaims their data).

pub mod backup;
pub mod catalog;
pub mod name;
pub mod status;
pub mod view;

use std::time::Duration;

use crate::engine::backend::Kind;
use crate::engine::lock::{self, LockGuard};
use crate::engine::{Repository, Result, SnapshotId};

pub use catalog::{Catalog, RotateOutcome};
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
    crate::engine::snapshot::check_source_name(source)?;
    let repo_lock = lock::acquire(repo.backend.clone(), lock::REPOSITORY, false, op, wait)?;
    let scope = format!("points/{source}");
    let points_lock = lock::acquire(
        repo.backend.clone(),
        &scope,
        true,
        op,
        wait.max(MIN_POINTS_WAIT),
    )?;
    // Like backup and prune, remove dead writers' temp files, so the leftovers of a killed
    // rotation or forget are cleaned by the next one and do not pile up.
    repo.backend.clean_incomplete()?;
    Ok((repo_lock, points_lock))
}

/// Delete the records of snapshots no point names any more (after the catalogue is saved, so
/// a crash in between leaves an unnamed snapshot, never a point naming a missing one).
fn forget_records(repo: &Repository, ids: &[SnapshotId]) -> Result<()> {
    for id in ids {
        repo.backend.delete(Kind::Snapshot, &id.to_hex())?;
    }
    Ok(())
}

/// Record a new backup of `source` as the lowest level's `.0`; returns dropped snapshots.
pub fn record_backup(
    repo: &Repository,
    source: &str,
    id: SnapshotId,
    wait: Duration,
) -> Result<Vec<SnapshotId>> {
    let _locks = lock_points(repo, source, "backup", wait)?;
    let mut cat = Catalog::load(repo.backend.as_ref(), source)?;
    let dropped = cat.add_backup(&repo.config.levels, id)?;
    cat.save(repo.backend.as_ref())?;
    forget_records(repo, &dropped)?;
    Ok(dropped)
}

/// Rotate `level` of `source` (see [`Catalog::rotate`]).
pub fn rotate(
    repo: &Repository,
    source: &str,
    level: &str,
    wait: Duration,
) -> Result<RotateOutcome> {
    let _locks = lock_points(repo, source, "rotate", wait)?;
    let mut cat = Catalog::load(repo.backend.as_ref(), source)?;
    let outcome = cat.rotate(&repo.config.levels, level)?;
    if let RotateOutcome::Promoted { dropped, .. } = &outcome {
        cat.save(repo.backend.as_ref())?;
        crate::engine::failpoint::failpoint("rotate-after-catalog");
        forget_records(repo, dropped)?;
    }
    Ok(outcome)
}

/// Remove snapshots of `source` from its points and delete their records.
pub fn forget(repo: &Repository, source: &str, ids: &[SnapshotId], wait: Duration) -> Result<()> {
    let _locks = lock_points(repo, source, "forget", wait)?;
    let mut cat = Catalog::load(repo.backend.as_ref(), source)?;
    let mut changed = false;
    for id in ids {
        changed |= cat.remove(id);
    }
    if changed {
        cat.save(repo.backend.as_ref())?;
    }
    forget_records(repo, ids)
}

//! A backup that lands in the backup points: the engine saves a snapshot, then the source's
//! catalogue puts it into the lowest level's `.0` point. `yester backup` and `yester run` both
//! need exactly this sequence, and a failure between the two steps must say that the snapshot
//! exists, so it lives here once.

use crate::engine::backup::{self, BackupOptions, BackupReport, Progress};
use crate::engine::{Error, Repository, SnapshotId};

/// What a recorded backup gives back.
#[derive(Debug)]
pub struct Recorded {
    /// The saved snapshot, its stats and warnings.
    pub report: BackupReport,
    /// Snapshots that fell off the lowest level to make room (their records are deleted).
    pub dropped: Vec<SnapshotId>,
}

/// Why a backup did not end up in the points.
#[derive(Debug, thiserror::Error)]
pub enum BackupError {
    /// The backup itself failed: no snapshot was saved.
    #[error(transparent)]
    Backup(Error),
    /// The snapshot was saved but the catalogue was not updated, so no point names it (it is
    /// still listed under `snapshots/SOURCE/DATE` and can be forgotten or kept).
    #[error("the snapshot was saved but could not be added to the backup points")]
    Record {
        id: SnapshotId,
        #[source]
        source: Error,
    },
}

/// Back up `opts.paths` as a new snapshot of `opts.source` and record it in the lowest level
/// (waiting up to `opts.lock_wait` for the locks of both steps).
pub fn backup_and_record<P: Progress>(
    repo: &Repository,
    opts: &BackupOptions,
    progress: &mut P,
) -> Result<Recorded, BackupError> {
    let report = backup::backup(repo, opts, progress).map_err(BackupError::Backup)?;
    let dropped =
        super::record_backup(repo, &opts.source, report.id, opts.lock_wait).map_err(|source| {
            BackupError::Record {
                id: report.id,
                source,
            }
        })?;
    Ok(Recorded { report, dropped })
}

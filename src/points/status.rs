//! Backup freshness per source, for monitoring.

use std::time::SystemTime;

use crate::engine::backend::Kind;
use crate::engine::{Repository, Result};

use super::view::View;

/// The state of one source.
#[derive(Clone, Debug, serde::Serialize)]
pub struct SourceStatus {
    pub source: String,
    /// Time of the newest snapshot (RFC 3339), if any.
    pub newest: Option<String>,
    /// Seconds since the newest snapshot.
    pub age_secs: Option<i64>,
    pub snapshots: usize,
    pub points: usize,
}

/// The state of every source, and the repository's stored size in bytes.
pub fn status(repo: &Repository, view: &View, now: SystemTime) -> Result<(Vec<SourceStatus>, u64)> {
    let now_secs = now
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs() as i64);
    let out = view
        .sources
        .iter()
        .map(|(name, sv)| SourceStatus {
            source: name.clone(),
            newest: sv.latest().map(|s| s.snapshot.time.clone()),
            age_secs: sv.latest().map(|s| now_secs - s.snapshot.unix_time()),
            snapshots: sv.snapshots.len(),
            points: sv.catalog.points(&view.levels).len(),
        })
        .collect();
    let be = repo.backend.as_ref();
    let mut size = 0;
    for kind in [
        Kind::Pack,
        Kind::Index,
        Kind::Snapshot,
        Kind::Catalog,
        Kind::CatalogGen,
    ] {
        for name in be.list(kind)? {
            size += be.size(kind, &name).unwrap_or(0);
        }
    }
    Ok((out, size))
}

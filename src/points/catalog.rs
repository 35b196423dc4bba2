//! The per-source catalogue: which snapshot each backup point names.
//!
//! One small JSON object per source (`points/<source>`), replaced atomically under the
//! source's points lock. Rotation only edits this list; it never copies or rewrites data.
//! Format: docs/FORMAT.md, "Point catalogues".

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::engine::backend::{Backend, Kind};
use crate::engine::config::Level;
use crate::engine::{Error, Result, SnapshotId};

use super::name::PointName;

/// Version of the catalogue layout.
pub const CATALOG_VERSION: u32 = 1;

/// The points of one source: per level, snapshot ids newest first (`level.0` first).
#[derive(Clone, Debug, Default, Serialize, Deserialize, PartialEq, Eq)]
pub struct Catalog {
    pub version: u32,
    pub source: String,
    pub levels: BTreeMap<String, Vec<SnapshotId>>,
}

/// What a rotation did.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum RotateOutcome {
    /// `from` (the oldest point of the level below) became `to`.
    Promoted {
        from: PointName,
        to: PointName,
        snapshot: SnapshotId,
        dropped: Vec<SnapshotId>,
    },
    /// The level below is not full yet; nothing changed.
    NotFull {
        lower: String,
        have: usize,
        keep: usize,
    },
}

impl Catalog {
    pub fn new(source: &str) -> Self {
        Catalog {
            version: CATALOG_VERSION,
            source: source.to_string(),
            levels: BTreeMap::new(),
        }
    }

    /// Load the catalogue of `source` (empty if it has none yet).
    pub fn load(backend: &dyn Backend, source: &str) -> Result<Self> {
        if !backend.exists(Kind::Catalog, source)? {
            return Ok(Catalog::new(source));
        }
        let object = backend.describe(Kind::Catalog, source);
        let bytes = backend.get(Kind::Catalog, source)?;
        let v: serde_json::Value =
            serde_json::from_slice(&bytes).map_err(|e| Error::corrupt(&object, e))?;
        let version = v.get("version").and_then(|x| x.as_u64()).unwrap_or(0);
        if version != u64::from(CATALOG_VERSION) {
            return Err(Error::UnsupportedVersion {
                object,
                found: u32::try_from(version).unwrap_or(u32::MAX),
                supported: CATALOG_VERSION,
            });
        }
        let c: Catalog = serde_json::from_value(v).map_err(|e| Error::corrupt(&object, e))?;
        if c.source != source {
            return Err(Error::corrupt(
                &object,
                format!("names source {:?}", c.source),
            ));
        }
        Ok(c)
    }

    /// Replace the stored catalogue atomically.
    pub fn save(&self, backend: &dyn Backend) -> Result<()> {
        let bytes = serde_json::to_vec_pretty(self).map_err(|e| Error::Invalid(e.to_string()))?;
        Ok(backend.put(Kind::Catalog, &self.source, &bytes)?)
    }

    /// Names of all sources that have a catalogue.
    pub fn sources(backend: &dyn Backend) -> Result<Vec<String>> {
        Ok(crate::engine::backend::list_names(backend, Kind::Catalog)?)
    }

    /// The snapshot a point names.
    pub fn get(&self, p: &PointName) -> Option<SnapshotId> {
        self.levels.get(&p.level)?.get(p.index).copied()
    }

    /// Every point, in level order then index order.
    pub fn points(&self, levels: &[Level]) -> Vec<(PointName, SnapshotId)> {
        let mut out = Vec::new();
        let known = levels.iter().map(|l| l.name.as_str());
        let extra = self
            .levels
            .keys()
            .map(String::as_str)
            .filter(|n| !levels.iter().any(|l| l.name == *n));
        for level in known.chain(extra) {
            for (i, id) in self.levels.get(level).into_iter().flatten().enumerate() {
                out.push((
                    PointName {
                        level: level.to_string(),
                        index: i,
                    },
                    *id,
                ));
            }
        }
        out
    }

    /// Whether any point names `id`.
    pub fn contains(&self, id: &SnapshotId) -> bool {
        self.levels.values().any(|v| v.contains(id))
    }

    /// Drop the points past a level's `keep`; returns the snapshots no point names any more.
    fn trim(&mut self, level: &Level) -> Vec<SnapshotId> {
        let list = self.levels.entry(level.name.clone()).or_default();
        let over = if list.len() > level.keep {
            list.split_off(level.keep)
        } else {
            Vec::new()
        };
        over.into_iter().filter(|id| !self.contains(id)).collect()
    }

    /// A new backup becomes the lowest level's `.0`; returns the snapshots that were dropped.
    pub fn add_backup(&mut self, levels: &[Level], id: SnapshotId) -> Result<Vec<SnapshotId>> {
        let lowest = levels
            .first()
            .ok_or_else(|| Error::Invalid("no levels configured".into()))?;
        self.levels
            .entry(lowest.name.clone())
            .or_default()
            .insert(0, id);
        Ok(self.trim(lowest))
    }

    /// Promote the oldest point of the level below `level` into `level.0`, only when that
    /// lower level is full (like `rsnapshot daily` moving `hourly.5` to `daily.0`).
    pub fn rotate(&mut self, levels: &[Level], level: &str) -> Result<RotateOutcome> {
        let pos = levels.iter().position(|l| l.name == level).ok_or_else(|| {
            Error::NotFound(format!("no level named {level:?} in the repository config"))
        })?;
        if pos == 0 {
            return Err(Error::Invalid(format!(
                "{level} is the lowest level; new backups fill it, it is not rotated"
            )));
        }
        let lower = &levels[pos - 1];
        let have = self.levels.get(&lower.name).map_or(0, Vec::len);
        if have < lower.keep {
            return Ok(RotateOutcome::NotFull {
                lower: lower.name.clone(),
                have,
                keep: lower.keep,
            });
        }
        let lower_list = self.levels.entry(lower.name.clone()).or_default();
        // With more points than `keep` (the config shrank), the oldest is still the last one.
        let from_index = lower_list.len() - 1;
        let Some(snapshot) = lower_list.pop() else {
            return Err(Error::Invalid(format!("{} is empty", lower.name)));
        };
        let target = &levels[pos];
        self.levels
            .entry(target.name.clone())
            .or_default()
            .insert(0, snapshot);
        let dropped = self.trim(target);
        Ok(RotateOutcome::Promoted {
            from: PointName {
                level: lower.name.clone(),
                index: from_index,
            },
            to: PointName {
                level: target.name.clone(),
                index: 0,
            },
            snapshot,
            dropped,
        })
    }

    /// Remove a snapshot from every point; returns whether it was in any.
    pub fn remove(&mut self, id: &SnapshotId) -> bool {
        let mut found = false;
        for list in self.levels.values_mut() {
            let before = list.len();
            list.retain(|x| x != id);
            found |= list.len() != before;
        }
        found
    }
}

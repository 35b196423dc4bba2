//! Every source with its snapshots, dated names and points, and which snapshot a
//! [`Selector`] names. How paths are taken apart into selectors is the view's
//! (`crate::vfs::layout`, docs/LAYOUT.md).

use std::collections::BTreeMap;

use crate::engine::config::Level;
use crate::engine::snapshot::{load_all_reusing, resolve as resolve_id, SnapshotEntry};
use crate::engine::{Error, Repository, Result, SnapshotId};

use super::catalog::Catalog;
use super::name::{dated_name, PointName};

/// Which snapshot a name selects: the one selector type of the CLI, the FUSE mount and NFS.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum Selector {
    /// A snapshot id or unique prefix.
    Id(String),
    /// A backup point of a source.
    Point { point: PointName, source: String },
    /// The newest snapshot of a source.
    Latest { source: String },
    /// A snapshot by dated name.
    Dated { source: String, name: String },
}

/// Snapshots and points of one source.
#[derive(Clone, Debug, Default)]
pub struct SourceView {
    /// Oldest first.
    pub snapshots: Vec<SnapshotEntry>,
    /// Dated name of each snapshot, parallel to `snapshots`.
    pub dated: Vec<String>,
    pub catalog: Catalog,
}

impl SourceView {
    pub fn latest(&self) -> Option<&SnapshotEntry> {
        self.snapshots.last()
    }

    pub fn by_id(&self, id: &SnapshotId) -> Option<&SnapshotEntry> {
        self.snapshots.iter().find(|s| s.id == *id)
    }

    pub fn point(&self, p: &PointName) -> Option<&SnapshotEntry> {
        self.by_id(&self.catalog.get(p)?)
    }

    pub fn dated(&self, name: &str) -> Option<&SnapshotEntry> {
        let i = self.dated.iter().position(|d| d == name)?;
        self.snapshots.get(i)
    }

    pub fn dated_name_of(&self, id: &SnapshotId) -> Option<&str> {
        let i = self.snapshots.iter().position(|s| s.id == *id)?;
        self.dated.get(i).map(String::as_str)
    }
}

/// Every source with its snapshots, dated names and points.
#[derive(Clone, Debug, Default)]
pub struct View {
    pub levels: Vec<Level>,
    pub sources: BTreeMap<String, SourceView>,
    /// All snapshots, oldest first.
    pub all: Vec<SnapshotEntry>,
}

impl View {
    /// Load snapshots and catalogues; unreadable snapshot records are returned as errors.
    pub fn load(repo: &Repository) -> Result<(View, Vec<Error>)> {
        Self::load_reusing(repo, &[])
    }

    /// As [`View::load`], reusing snapshot records already parsed.
    pub fn load_reusing(repo: &Repository, known: &[SnapshotEntry]) -> Result<(View, Vec<Error>)> {
        let be = repo.backend();
        let (all, broken) = load_all_reusing(be, known)?;
        let mut sources: BTreeMap<String, SourceView> = BTreeMap::new();
        for s in &all {
            sources
                .entry(s.snapshot.source.clone())
                .or_default()
                .snapshots
                .push(s.clone());
        }
        for name in Catalog::sources(be)? {
            sources.entry(name).or_default();
        }
        for (name, sv) in sources.iter_mut() {
            sv.catalog = Catalog::load(be, name)?;
            // Two snapshots in one second: the later ones get their short id appended.
            let mut seen = std::collections::HashSet::new();
            sv.dated = sv
                .snapshots
                .iter()
                .map(|s| {
                    let d = dated_name(s.snapshot.unix_time());
                    if seen.insert(d.clone()) {
                        d
                    } else {
                        format!("{d}-{}", s.id.short())
                    }
                })
                .collect();
        }
        Ok((
            View {
                levels: repo.config().levels.clone(),
                sources,
                all,
            },
            broken,
        ))
    }

    fn source(&self, source: &str) -> Result<&SourceView> {
        self.sources
            .get(source)
            .ok_or_else(|| Error::NotFound(format!("no source named {source:?} in the repository")))
    }

    /// The snapshot a selector names.
    pub fn select(&self, sel: &Selector) -> Result<&SnapshotEntry> {
        match sel {
            Selector::Id(prefix) => resolve_id(&self.all, prefix),
            Selector::Latest { source } => self
                .source(source)?
                .latest()
                .ok_or_else(|| Error::NotFound(format!("source {source} has no snapshots"))),
            Selector::Point { point, source } => self
                .source(source)?
                .point(point)
                .ok_or_else(|| Error::NotFound(format!("{point}/{source}: no such backup point"))),
            Selector::Dated { source, name } => self.source(source)?.dated(name).ok_or_else(|| {
                Error::NotFound(format!("snapshots/{source}/{name}: no such snapshot"))
            }),
        }
    }
}

impl Selector {
    /// The source a name other than an id belongs to.
    pub fn source(&self) -> Option<&str> {
        match self {
            Selector::Id(_) => None,
            Selector::Point { source, .. }
            | Selector::Latest { source }
            | Selector::Dated { source, .. } => Some(source),
        }
    }

    /// Whether the name moves on to other snapshots (a point, latest) rather than naming one
    /// snapshot for good (an id, a dated name).
    pub fn moves(&self) -> bool {
        matches!(self, Selector::Point { .. } | Selector::Latest { .. })
    }

    /// Its first path component in the view (`daily.0`, `latest`, `snapshots`, the id).
    pub fn top(&self) -> String {
        match self {
            Selector::Id(p) => p.clone(),
            Selector::Point { point, .. } => point.to_string(),
            Selector::Latest { .. } => super::name::LATEST.to_string(),
            Selector::Dated { .. } => super::name::SNAPSHOTS.to_string(),
        }
    }
}

//! Every source with its snapshots, dated names and points, and which snapshot a
//! [`Selector`] names. How paths are taken apart into selectors is the view's
//! (`crate::vfs::layout`, docs/LAYOUT.md).

use std::collections::BTreeMap;

use crate::engine::format::snapshot::{load_all_reusing, resolve as resolve_id, SnapshotEntry};
use crate::engine::{Error, Repository, Result, SnapshotId};

use super::catalog::{self, Cache, Catalog, Generation};
use super::levels::{levels_of, Level};
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
    /// The catalogue generation `catalog` came from (None: no generation verifies).
    pub generation: Option<Generation>,
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
    /// Catalogue generations read so far, so a reload reads only new ones.
    pub catalogs: Cache,
}

impl View {
    /// Load snapshots and catalogues. Unreadable snapshot records and damaged catalogue
    /// generations are returned as errors beside the view, which holds everything else: a
    /// source whose newest catalogue generation is damaged shows the points of the newest one
    /// that verifies, and a source with none shows no points (its snapshots still show under
    /// `snapshots/<source>/`).
    pub fn load(repo: &Repository) -> Result<(View, Vec<Error>)> {
        Self::load_reusing(repo, None)
    }

    /// As [`View::load`], reusing what `prev` (the view of a moment ago) already parsed:
    /// snapshot records by id and catalogue generations by name, so a reload lists the
    /// objects and reads only new ones. Damaged generations `prev` already knew are not
    /// reported again. A source none of whose listed generations can be read keeps `prev`'s
    /// catalogue (the last good state), and so do all sources if the catalogues cannot be
    /// listed at all.
    pub fn load_reusing(repo: &Repository, prev: Option<&View>) -> Result<(View, Vec<Error>)> {
        let be = repo.backend();
        let (all, mut broken) = load_all_reusing(be, prev.map_or(&[][..], |p| &p.all))?;
        let mut sources: BTreeMap<String, SourceView> = BTreeMap::new();
        for s in &all {
            sources
                .entry(s.snapshot.source.clone())
                .or_default()
                .snapshots
                .push(s.clone());
        }
        let listing = match (catalog::list(be), prev) {
            (Ok(l), _) => Some(l),
            (Err(e), Some(p)) => {
                tracing::warn!("keeping the backup points last read: {e}");
                for name in p.sources.keys() {
                    sources.entry(name.clone()).or_default();
                }
                None
            }
            (Err(e), None) => return Err(e),
        };
        if let Some(l) = &listing {
            for name in l.sources.keys() {
                sources.entry(name.clone()).or_default();
            }
        }
        let prev_cache = prev.map(|p| &p.catalogs);
        let mut catalogs = Cache::new();
        for (name, sv) in sources.iter_mut() {
            let last_good = prev
                .and_then(|p| p.sources.get(name))
                .filter(|p| p.generation.is_some());
            match &listing {
                Some(l) => {
                    let gens = l.sources.get(name).map_or(&[][..], Vec::as_slice);
                    let loaded = catalog::load_newest(be, name, gens, prev_cache, &mut catalogs);
                    let unreadable = loaded.from.is_none() && !gens.is_empty();
                    let news = !loaded.problems.is_empty();
                    broken.extend(loaded.problems);
                    match last_good {
                        Some(p) if unreadable => {
                            if news {
                                tracing::warn!(
                                    "no point catalogue of {name} can be read now; keeping \
                                     the points last read"
                                );
                            }
                            sv.catalog = p.catalog.clone();
                            sv.generation = p.generation.clone();
                        }
                        _ => {
                            sv.catalog = loaded.catalog;
                            sv.generation = loaded.from;
                        }
                    }
                }
                None => {
                    if let Some(p) = last_good {
                        sv.catalog = p.catalog.clone();
                        sv.generation = p.generation.clone();
                    } else {
                        sv.catalog = Catalog::new(name);
                    }
                }
            }
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
        if listing.is_none() {
            if let Some(p) = prev_cache {
                catalogs.clone_from(p);
            }
        }
        Ok((
            View {
                levels: levels_of(repo)?,
                sources,
                all,
                catalogs,
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::engine::format::config::{ChunkerParams, RepoConfig};
    use crate::engine::store::LocalDir;

    fn repo() -> (tempfile::TempDir, Repository) {
        let t = tempfile::tempdir().unwrap();
        let be = std::sync::Arc::new(LocalDir::new(t.path().join("repo")));
        let config = RepoConfig::new(ChunkerParams::default(), 3).unwrap();
        (t, Repository::init(be, config).unwrap())
    }

    fn save(repo: &Repository, source: &str, n: u8) -> Generation {
        let be = repo.backend();
        let next = Catalog::load(be, source).unwrap().next_seq;
        let mut c = Catalog::new(source);
        let id = SnapshotId::from_hex(&hex::encode([n; 32])).unwrap();
        c.levels.insert("hourly".into(), vec![id]);
        c.save(be, next).unwrap()
    }

    #[test]
    fn one_damaged_catalogue_costs_only_its_source_and_reloads_keep_the_last_good_one() {
        let (_t, repo) = repo();
        let web = save(&repo, "web1", 1);
        let db = save(&repo, "db1", 2);
        let path = |g: &Generation| std::path::PathBuf::from(g.describe(repo.backend()));
        let (first, broken) = View::load(&repo).unwrap();
        assert!(broken.is_empty());
        assert_eq!(first.sources["web1"].generation, Some(web.clone()));

        // web1's only generation is damaged in place: the running view, which parsed it
        // already, does not read it again and keeps its points.
        std::fs::write(path(&web), b"{").unwrap();
        let (second, broken) = View::load_reusing(&repo, Some(&first)).unwrap();
        assert!(broken.is_empty(), "{broken:?}");
        assert_eq!(
            second.sources["web1"].catalog,
            first.sources["web1"].catalog
        );

        // A fresh load sees the damage for web1 only.
        let (fresh, broken) = View::load(&repo).unwrap();
        assert_eq!(broken.len(), 1, "{broken:?}");
        assert!(broken[0].to_string().contains(&web.object_name()));
        assert!(fresh.sources["web1"].catalog.levels.is_empty());
        assert_eq!(fresh.sources["db1"].generation, Some(db.clone()));

        // A newer damaged generation and the old one gone: nothing of web1 can be read, so a
        // reload keeps the last good catalogue; it reports the new damage once.
        let newer = save(&repo, "web1", 3);
        std::fs::remove_file(path(&web)).unwrap();
        std::fs::write(path(&newer), b"").unwrap();
        let (third, broken) = View::load_reusing(&repo, Some(&second)).unwrap();
        assert_eq!(broken.len(), 1, "{broken:?}");
        assert_eq!(third.sources["web1"].catalog, first.sources["web1"].catalog);
        assert_eq!(third.sources["db1"].generation, Some(db));
        let (_, broken) = View::load_reusing(&repo, Some(&third)).unwrap();
        assert!(
            broken.is_empty(),
            "known damage is not reported again: {broken:?}"
        );
    }
}

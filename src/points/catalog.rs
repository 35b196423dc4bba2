//! The per-source catalogue: which snapshot each backup point names.
//!
//! Each save writes a new immutable *generation* `catalogs/<source>/<seq>-<hash>` under the
//! source's points lock; a reader takes the newest generation that verifies, so one damaged
//! object costs at most the edits since the previous generation, never the whole source or
//! the whole view. The legacy object `points/<source>` of older repositories is read as the
//! oldest generation. Rotation only edits this list; it never copies or rewrites data.
//! Format: docs/FORMAT.md, "Point catalogues".
//!
//! Over 600 lines because of its tests (about 280): the code itself (the record, its
//! generations, and rotation over them) is one idea and reads best in one file.

use std::collections::{BTreeMap, HashMap};

use serde::{Deserialize, Serialize};

use super::levels::Level;
use crate::engine::format::id::content_hash;
use crate::engine::format::snapshot::check_source_name;
use crate::engine::store::{list_names, Backend, Kind};
use crate::engine::{Error, Result, SnapshotId};

use super::name::PointName;

/// Version of the catalogue layout written (docs/FORMAT.md, "Point catalogues"). Version 1 is
/// the legacy in-place object, which is still read.
pub const CATALOG_VERSION: u32 = 2;

/// Hex digits of the BLAKE3 of a generation's bytes in its name: 64 bits detect accidental
/// damage with certainty for practical purposes, and keep names short.
pub const HASH_DIGITS: usize = 16;

/// Digits the sequence number is zero-padded to, so names sort in order in a listing (readers
/// compare the numbers, so a longer number still sorts right).
pub const SEQ_DIGITS: usize = 10;

/// Valid generations `prune` keeps per source: the newest and the three before it, so that if
/// the newest is damaged later (bit rot, a bad disk), the points of the last three edits
/// before it are still there to fall back on.
pub const KEEP_GENERATIONS: usize = 4;

/// The points of one source: per level, snapshot ids newest first (`level.0` first).
#[derive(Clone, Debug, Default, Serialize, Deserialize, PartialEq, Eq)]
pub struct Catalog {
    pub version: u32,
    pub source: String,
    pub levels: BTreeMap<String, Vec<SnapshotId>>,
}

/// The bytes a generation stores: the catalogue plus its own sequence number, so a generation
/// renamed to another number is caught.
#[derive(Serialize)]
struct Stored<'a> {
    version: u32,
    source: &'a str,
    generation: u64,
    levels: &'a BTreeMap<String, Vec<SnapshotId>>,
}

/// One stored catalogue of a source: a generation `catalogs/<source>/<seq>-<hash>`, or the
/// legacy `points/<source>` (`hash` = None), which orders before every generation.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Generation {
    pub source: String,
    pub seq: u64,
    /// `HASH_DIGITS` lowercase hex digits; None for the legacy object.
    pub hash: Option<String>,
}

impl Generation {
    /// The legacy object of `source`.
    pub fn legacy(source: &str) -> Self {
        Generation {
            source: source.to_string(),
            seq: 0,
            hash: None,
        }
    }

    /// Parse a `CatalogGen` object name `<source>/<seq>-<hash>`; None if it is not one.
    pub fn parse(name: &str) -> Option<Self> {
        let (source, file) = name.split_once('/')?;
        check_source_name(source).ok()?;
        let (seq, hash) = file.split_once('-')?;
        if seq.is_empty() || !seq.bytes().all(|b| b.is_ascii_digit()) {
            return None;
        }
        let is_hex = |b: u8| b.is_ascii_digit() || (b'a'..=b'f').contains(&b);
        if hash.len() != HASH_DIGITS || !hash.bytes().all(is_hex) {
            return None;
        }
        Some(Generation {
            source: source.to_string(),
            seq: seq.parse().ok()?,
            hash: Some(hash.to_string()),
        })
    }

    /// The generation `seq` of `source` holding exactly `bytes`.
    fn of(source: &str, seq: u64, bytes: &[u8]) -> Self {
        Generation {
            source: source.to_string(),
            seq,
            hash: Some(hex::encode(&content_hash(bytes)[..HASH_DIGITS / 2])),
        }
    }

    pub fn is_legacy(&self) -> bool {
        self.hash.is_none()
    }

    pub fn kind(&self) -> Kind {
        if self.is_legacy() {
            Kind::Catalog
        } else {
            Kind::CatalogGen
        }
    }

    /// The backend's name of the object.
    pub fn object_name(&self) -> String {
        match &self.hash {
            None => self.source.clone(),
            Some(h) => format!("{}/{:0w$}-{h}", self.source, self.seq, w = SEQ_DIGITS),
        }
    }

    /// The object as shown in messages (its path on a local directory).
    pub fn describe(&self, backend: &dyn Backend) -> String {
        backend.describe(self.kind(), &self.object_name())
    }

    /// Check `bytes` as this generation's content and parse it (docs/FORMAT.md, "Point
    /// catalogues", reading rules).
    pub fn verify(&self, bytes: &[u8], object: &str) -> Result<Catalog> {
        if let Some(h) = &self.hash {
            let actual = hex::encode(&content_hash(bytes)[..HASH_DIGITS / 2]);
            if *h != actual {
                return Err(Error::corrupt(
                    object,
                    format!("content hash {actual} does not match the name (damaged bytes)"),
                ));
            }
        }
        let v: serde_json::Value =
            serde_json::from_slice(bytes).map_err(|e| Error::corrupt(object, e))?;
        let version = v.get("version").and_then(|x| x.as_u64()).unwrap_or(0);
        if version > u64::from(CATALOG_VERSION) {
            return Err(Error::UnsupportedVersion {
                object: object.to_string(),
                found: u32::try_from(version).unwrap_or(u32::MAX),
                supported: CATALOG_VERSION,
            });
        }
        if version == 0 {
            return Err(Error::corrupt(object, "no catalogue version"));
        }
        if version >= 2 && !self.is_legacy() {
            let generation = v.get("generation").and_then(|x| x.as_u64());
            if generation != Some(self.seq) {
                return Err(Error::corrupt(
                    object,
                    format!(
                        "records generation {generation:?}, but its name says {}",
                        self.seq
                    ),
                ));
            }
        }
        let c: Catalog = serde_json::from_value(v).map_err(|e| Error::corrupt(object, e))?;
        if c.source != self.source {
            return Err(Error::corrupt(
                object,
                format!("names source {:?}", c.source),
            ));
        }
        Ok(c)
    }

    /// Read and verify this generation.
    pub fn read(&self, backend: &dyn Backend) -> Result<Catalog> {
        let bytes = backend.get(self.kind(), &self.object_name())?;
        self.verify(&bytes, &self.describe(backend))
    }
}

/// Every stored catalogue, per source oldest first.
#[derive(Clone, Debug, Default)]
pub struct Listing {
    pub sources: BTreeMap<String, Vec<Generation>>,
    /// Objects under `catalogs/` whose names are not generation names (left alone).
    pub strays: Vec<String>,
}

/// List every generation and legacy catalogue.
pub fn list(backend: &dyn Backend) -> Result<Listing> {
    let mut out = Listing::default();
    for source in list_names(backend, Kind::Catalog)? {
        out.sources
            .entry(source.clone())
            .or_default()
            .push(Generation::legacy(&source));
    }
    for name in list_names(backend, Kind::CatalogGen)? {
        match Generation::parse(&name) {
            Some(g) => out.sources.entry(g.source.clone()).or_default().push(g),
            None => out.strays.push(name),
        }
    }
    for gens in out.sources.values_mut() {
        gens.sort();
    }
    Ok(out)
}

/// Parsed generations by name: `Some` verified, `None` damaged. Generations are immutable, so
/// a reload takes a name it has seen from here instead of reading it again.
pub type Cache = HashMap<Generation, Option<Catalog>>;

/// A source's catalogue as loaded from its newest valid generation.
#[derive(Debug, Default)]
pub struct Loaded {
    pub catalog: Catalog,
    /// The generation it came from; None when no generation verifies (or there is none).
    pub from: Option<Generation>,
    /// Generations newer than `from` that do not verify were skipped: points recorded only
    /// there are lost, and snapshots they named may still be wanted.
    pub skipped_newer: bool,
    /// The sequence number the next save uses: above every listed one, damaged or not, so
    /// the new generation is the newest.
    pub next_seq: u64,
    /// Why generations were skipped, each naming its object (not repeated for generations
    /// the cache already knew to be damaged).
    pub problems: Vec<Error>,
}

/// Load the newest valid generation of `source` among `gens` (oldest first), reading only
/// generations neither `prev` nor `cache` knows; every generation looked at is entered in
/// `cache`. Nothing here fails: a generation that cannot be read or verified is a problem,
/// and the next older one is tried.
pub fn load_newest(
    backend: &dyn Backend,
    source: &str,
    gens: &[Generation],
    prev: Option<&Cache>,
    cache: &mut Cache,
) -> Loaded {
    let mut out = Loaded {
        catalog: Catalog::new(source),
        next_seq: gens.iter().map(|g| g.seq).max().unwrap_or(0) + 1,
        ..Loaded::default()
    };
    for g in gens.iter().rev() {
        let known = cache
            .get(g)
            .cloned()
            .or_else(|| prev.and_then(|p| p.get(g).cloned()));
        let parsed = match known {
            Some(k) => k,
            None => match g.read(backend) {
                Ok(c) => Some(c),
                // An I/O error may pass (a permission fixed, a disk back): not cached, so the
                // next load tries again.
                Err(e @ (Error::Io { .. } | Error::Store(_))) => {
                    out.problems.push(e);
                    out.skipped_newer = true;
                    continue;
                }
                Err(e) => {
                    out.problems.push(e);
                    None
                }
            },
        };
        cache.insert(g.clone(), parsed.clone());
        match parsed {
            Some(c) => {
                out.catalog = c;
                out.from = Some(g.clone());
                break;
            }
            None => out.skipped_newer = true,
        }
    }
    // Keep what the previous load knew of older generations, so they are not read again if
    // the ones above them go away.
    if let Some(p) = prev {
        for g in gens {
            if let Some(k) = p.get(g) {
                cache.entry(g.clone()).or_insert_with(|| k.clone());
            }
        }
    }
    out
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

    /// Load the catalogue of `source` from its newest valid generation (empty if it has
    /// none); see [`load_newest`].
    pub fn load(backend: &dyn Backend, source: &str) -> Result<Loaded> {
        let listing = list(backend)?;
        let gens = listing.sources.get(source).map_or(&[][..], Vec::as_slice);
        Ok(load_newest(backend, source, gens, None, &mut Cache::new()))
    }

    /// The bytes of generation `seq` of this catalogue.
    fn encode(&self, seq: u64) -> Result<Vec<u8>> {
        serde_json::to_vec_pretty(&Stored {
            version: CATALOG_VERSION,
            source: &self.source,
            generation: seq,
            levels: &self.levels,
        })
        .map_err(|e| Error::Invalid(e.to_string()))
    }

    /// Write this catalogue as the new generation `seq` (create-if-absent: generations are
    /// never replaced). The caller holds the source's points lock.
    pub fn save(&self, backend: &dyn Backend, seq: u64) -> Result<Generation> {
        check_source_name(&self.source)?;
        let bytes = self.encode(seq)?;
        let g = Generation::of(&self.source, seq, &bytes);
        // False means the object already exists; its name holds the hash of these very bytes,
        // so it is this generation, written before (a retried save).
        backend.put_new(Kind::CatalogGen, &g.object_name(), &bytes)?;
        Ok(g)
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

/// Which generations of one source `prune` deletes, given each generation (oldest first) and
/// whether it verifies: every generation older than the newest valid one except the
/// [`KEEP_GENERATIONS`]` - 1` newest valid ones before it, damaged ones included (a newer
/// valid generation supersedes them), and the legacy object as soon as it is not the newest
/// valid one. Generations newer than the newest valid one are damaged; they are kept, so
/// `check` goes on naming them until a save supersedes them. A source with no valid
/// generation keeps everything.
pub fn prune_plan(gens: &[(Generation, bool)]) -> Vec<Generation> {
    let Some(newest) = gens.iter().rposition(|(_, ok)| *ok) else {
        return Vec::new();
    };
    let mut kept = 1;
    let mut delete = Vec::new();
    for (g, ok) in gens[..newest].iter().rev() {
        if *ok && !g.is_legacy() && kept < KEEP_GENERATIONS {
            kept += 1;
        } else {
            delete.push(g.clone());
        }
    }
    delete.reverse();
    delete
}

/// What checking every catalogue found.
#[derive(Clone, Debug, Default)]
pub struct CatalogCheck {
    /// Damaged generations, each naming its object.
    pub damage: Vec<String>,
    /// What the damage means for each source's points, and names that are not generations.
    pub notes: Vec<String>,
    pub generations: usize,
}

/// Verify every generation of every source, old ones too: a damaged generation is damage even
/// when an older one is still usable.
pub fn check_all(backend: &dyn Backend) -> Result<CatalogCheck> {
    let listing = list(backend)?;
    let mut out = CatalogCheck::default();
    for s in &listing.strays {
        out.notes.push(format!(
            "{}: not a catalogue generation name (ignored)",
            backend.describe(Kind::CatalogGen, s)
        ));
    }
    for (source, gens) in &listing.sources {
        let mut newest_valid: Option<&Generation> = None;
        let mut newest_bad: Option<&Generation> = None;
        for g in gens {
            match g.read(backend) {
                Ok(_) => newest_valid = Some(g),
                // Deleted since the listing (a prune ran meanwhile): not damage.
                Err(Error::Io { .. } | Error::Store(_))
                    if !backend.exists(g.kind(), &g.object_name()).unwrap_or(true) =>
                {
                    continue
                }
                Err(e) => {
                    out.damage.push(e.to_string());
                    newest_bad = Some(g);
                }
            }
            out.generations += 1;
        }
        match (newest_valid, newest_bad) {
            (None, Some(_)) => out.notes.push(format!(
                "source {source}: no catalogue generation verifies, so it has no backup \
                 points; its snapshots are still under snapshots/{source}/, and its next \
                 backup records a new point"
            )),
            (Some(v), Some(b)) if b > v => out.notes.push(format!(
                "source {source}: its points are those of {}, the newest catalogue \
                 generation that verifies; points recorded after it are lost",
                v.describe(backend)
            )),
            _ => {}
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::engine::store::LocalDir;

    fn store() -> (tempfile::TempDir, LocalDir) {
        let t = tempfile::tempdir().unwrap();
        let be = LocalDir::new(t.path().join("repo"));
        be.create().unwrap();
        (t, be)
    }

    fn id(n: u8) -> SnapshotId {
        SnapshotId::from_hex(&hex::encode([n; 32])).unwrap()
    }

    /// Save a catalogue of `source` whose hourly level is `ids`, as the next generation.
    fn save(be: &LocalDir, source: &str, ids: &[u8]) -> Generation {
        let next = Catalog::load(be, source).unwrap().next_seq;
        let mut c = Catalog::new(source);
        c.levels
            .insert("hourly".into(), ids.iter().map(|n| id(*n)).collect());
        c.save(be, next).unwrap()
    }

    fn path_of(be: &LocalDir, g: &Generation) -> std::path::PathBuf {
        std::path::PathBuf::from(g.describe(be))
    }

    fn hourly(c: &Catalog) -> Vec<SnapshotId> {
        c.levels.get("hourly").cloned().unwrap_or_default()
    }

    #[test]
    fn names_parse_format_and_order() {
        let g = Generation::parse("web1/0000000007-0123456789abcdef").unwrap();
        assert_eq!((g.source.as_str(), g.seq), ("web1", 7));
        assert_eq!(g.object_name(), "web1/0000000007-0123456789abcdef");
        assert_eq!(g.kind(), Kind::CatalogGen);
        // Numbers compare as numbers, whatever their padding; the legacy object is oldest.
        let long = Generation::parse("web1/12345678901-0123456789abcdef").unwrap();
        let two = Generation::parse("web1/2-ffffffffffffffff").unwrap();
        let legacy = Generation::legacy("web1");
        let mut v = vec![long.clone(), g.clone(), legacy.clone(), two.clone()];
        v.sort();
        assert_eq!(v, vec![legacy.clone(), two, g, long]);
        assert_eq!(legacy.kind(), Kind::Catalog);
        assert_eq!(legacy.object_name(), "web1");
        for bad in [
            "web1",
            "web1/0000000007",
            "web1/0000000007-0123456789ABCDEF",
            "web1/0000000007-0123456789abcde",
            "web1/0000000007-0123456789abcdef0",
            "web1/x7-0123456789abcdef",
            "web1/-0123456789abcdef",
            ".hidden/0000000007-0123456789abcdef",
            "/0000000007-0123456789abcdef",
            "web1/0000000007-0123456789abcdef/x",
        ] {
            assert_eq!(Generation::parse(bad), None, "{bad}");
        }
    }

    #[test]
    fn saves_write_new_generations_and_the_newest_wins() {
        let (_t, be) = store();
        let g1 = save(&be, "web1", &[1]);
        let g2 = save(&be, "web1", &[2, 1]);
        save(&be, "db1", &[9]);
        assert_eq!((g1.seq, g2.seq), (1, 2));
        assert!(path_of(&be, &g1).is_file(), "generation 1 is not replaced");
        let l = Catalog::load(&be, "web1").unwrap();
        assert_eq!(l.from.as_ref(), Some(&g2));
        assert_eq!(hourly(&l.catalog), vec![id(2), id(1)]);
        assert_eq!(l.next_seq, 3);
        assert!(!l.skipped_newer && l.problems.is_empty());
        let listing = list(&be).unwrap();
        assert_eq!(listing.sources.keys().collect::<Vec<_>>(), ["db1", "web1"]);
        assert_eq!(listing.sources["web1"], vec![g1, g2]);
        // Stored bytes carry their version and generation number.
        let v: serde_json::Value =
            serde_json::from_slice(&std::fs::read(path_of(&be, &l.from.unwrap())).unwrap())
                .unwrap();
        assert_eq!(
            (v["version"].as_u64(), v["generation"].as_u64()),
            (Some(2), Some(2))
        );
    }

    #[test]
    fn a_damaged_newest_generation_falls_back_to_the_one_before() {
        type Damage = fn(&mut Vec<u8>);
        let damages: [(&str, Damage); 3] = [
            ("flipped byte", |b| b[10] ^= 0x20),
            ("zeroed", |b| b.iter_mut().for_each(|x| *x = 0)),
            ("truncated", |b| b.truncate(b.len() / 2)),
        ];
        for (what, damage) in damages {
            let (_t, be) = store();
            let g1 = save(&be, "web1", &[1]);
            let g2 = save(&be, "web1", &[2, 1]);
            let p = path_of(&be, &g2);
            let mut bytes = std::fs::read(&p).unwrap();
            damage(&mut bytes);
            std::fs::write(&p, &bytes).unwrap();
            let l = Catalog::load(&be, "web1").unwrap();
            assert_eq!(l.from.as_ref(), Some(&g1), "{what}");
            assert_eq!(hourly(&l.catalog), vec![id(1)], "{what}");
            assert!(l.skipped_newer, "{what}");
            assert_eq!(
                l.next_seq, 3,
                "{what}: the next save is newer than the damaged one"
            );
            assert_eq!(l.problems.len(), 1, "{what}");
            let msg = l.problems[0].to_string();
            assert!(msg.contains(&g2.object_name()), "{what}: {msg}");
            // The next save wins over the damaged generation.
            let g3 = save(&be, "web1", &[3, 1]);
            let l = Catalog::load(&be, "web1").unwrap();
            assert_eq!(l.from, Some(g3), "{what}");
            assert!(!l.skipped_newer, "{what}");
        }
    }

    #[test]
    fn content_that_contradicts_its_name_is_rejected() {
        let (_t, be) = store();
        let c = Catalog::new("web1");
        let bytes = c.encode(5).unwrap();
        let ok = Generation::of("web1", 5, &bytes);
        assert!(ok.verify(&bytes, "x").is_ok());
        // Renamed to another number, or to another source's folder: hash fine, content not.
        let renumbered = Generation {
            seq: 6,
            ..ok.clone()
        };
        let err = renumbered.verify(&bytes, "x").unwrap_err().to_string();
        assert!(err.contains("generation"), "{err}");
        let moved = Generation {
            source: "db1".into(),
            ..ok.clone()
        };
        let err = moved.verify(&bytes, "x").unwrap_err().to_string();
        assert!(err.contains("names source"), "{err}");
        // A newer catalogue version is refused as such, not as damage.
        let newer = br#"{"version": 3, "source": "web1", "generation": 1, "levels": {}}"#;
        let g = Generation::of("web1", 1, newer);
        assert!(matches!(
            g.verify(newer, "x"),
            Err(Error::UnsupportedVersion { found: 3, .. })
        ));
        let _ = be;
    }

    #[test]
    fn every_generation_damaged_means_no_points_and_the_next_save_is_newest() {
        let (_t, be) = store();
        let gens = [save(&be, "web1", &[1]), save(&be, "web1", &[2, 1])];
        for g in &gens {
            std::fs::write(path_of(&be, g), b"{").unwrap();
        }
        let l = Catalog::load(&be, "web1").unwrap();
        assert_eq!(l.from, None);
        assert!(l.catalog.levels.is_empty());
        assert_eq!(l.problems.len(), 2);
        assert_eq!(l.next_seq, 3);
        let check = check_all(&be).unwrap();
        assert_eq!(check.damage.len(), 2, "{:?}", check.damage);
        assert!(check
            .notes
            .iter()
            .any(|n| n.contains("no catalogue generation verifies")));
    }

    #[test]
    fn the_legacy_object_is_the_oldest_generation() {
        let (_t, be) = store();
        let legacy = serde_json::json!({
            "version": 1, "source": "web1", "levels": { "hourly": [id(1)] }
        });
        be.put(Kind::Catalog, "web1", legacy.to_string().as_bytes())
            .unwrap();
        let l = Catalog::load(&be, "web1").unwrap();
        assert_eq!(l.from, Some(Generation::legacy("web1")));
        assert_eq!(hourly(&l.catalog), vec![id(1)]);
        assert_eq!(l.next_seq, 1);
        // The first save writes generation 1 beside it (`points/web1` is a file, the
        // generations live under `catalogs/web1/`: no collision).
        let g = save(&be, "web1", &[2, 1]);
        assert_eq!(g.seq, 1);
        assert_eq!(Catalog::load(&be, "web1").unwrap().from, Some(g.clone()));
        assert_eq!(
            prune_plan(&[(Generation::legacy("web1"), true), (g, true)]),
            vec![Generation::legacy("web1")]
        );
        // A damaged legacy object is damage too.
        be.put(Kind::Catalog, "db1", b"{\"version\": 1").unwrap();
        let check = check_all(&be).unwrap();
        assert_eq!(check.damage.len(), 1, "{:?}", check.damage);
        assert!(check.damage[0].contains("points/db1"), "{:?}", check.damage);
    }

    #[test]
    fn reloads_read_only_new_generations() {
        let (_t, be) = store();
        let g1 = save(&be, "web1", &[1]);
        let listing = list(&be).unwrap();
        let mut first = Cache::new();
        let l = load_newest(&be, "web1", &listing.sources["web1"], None, &mut first);
        assert_eq!(l.from, Some(g1.clone()));
        // Make generation 1 unreadable on disk: a reload that knows it must not read it.
        std::fs::write(path_of(&be, &g1), b"garbage").unwrap();
        let g2 = save(&be, "web1", &[2, 1]);
        std::fs::write(path_of(&be, &g2), b"garbage too").unwrap();
        let listing = list(&be).unwrap();
        let mut second = Cache::new();
        let l = load_newest(
            &be,
            "web1",
            &listing.sources["web1"],
            Some(&first),
            &mut second,
        );
        assert_eq!(l.from, Some(g1.clone()), "generation 1 came from the cache");
        assert_eq!(l.problems.len(), 1, "only the new generation 2 was read");
        assert_eq!(second.get(&g2), Some(&None));
        // Known damage is not reported again.
        let mut third = Cache::new();
        let l = load_newest(
            &be,
            "web1",
            &listing.sources["web1"],
            Some(&second),
            &mut third,
        );
        assert_eq!(l.from, Some(g1));
        assert!(l.problems.is_empty() && l.skipped_newer);
    }

    #[test]
    fn prune_keeps_the_newest_valid_generations_and_newer_damaged_ones() {
        let g = |seq: u64| Generation::of("web1", seq, &seq.to_le_bytes());
        let legacy = Generation::legacy("web1");
        // Seven valid generations and the legacy object: the newest four stay.
        let mut gens: Vec<(Generation, bool)> = vec![(legacy.clone(), true)];
        gens.extend((1..=7).map(|s| (g(s), true)));
        assert_eq!(prune_plan(&gens), vec![legacy.clone(), g(1), g(2), g(3)]);
        // Damaged ones older than the newest valid go and do not count; newer ones stay.
        let gens = vec![
            (g(1), true),
            (g(2), true),
            (g(3), false),
            (g(4), true),
            (g(5), true),
            (g(6), false),
            (g(7), true),
            (g(8), false),
        ];
        assert_eq!(prune_plan(&gens), vec![g(1), g(3), g(6)]);
        // Nothing valid: nothing is deleted.
        assert_eq!(prune_plan(&[(g(1), false), (g(2), false)]), vec![]);
        // The legacy object as the only valid one stays.
        assert_eq!(prune_plan(&[(legacy, true), (g(1), false)]), vec![]);
    }

    #[test]
    fn check_names_old_damaged_generations_too() {
        let (_t, be) = store();
        let g1 = save(&be, "web1", &[1]);
        save(&be, "web1", &[2, 1]);
        save(&be, "db1", &[9]);
        assert!(check_all(&be).unwrap().damage.is_empty());
        std::fs::write(path_of(&be, &g1), b"").unwrap();
        std::fs::write(be.root().join("catalogs/web1/notes.txt"), b"hi").unwrap();
        let check = check_all(&be).unwrap();
        assert_eq!(check.damage.len(), 1, "{:?}", check.damage);
        assert!(check.damage[0].contains(&g1.object_name()));
        assert_eq!(check.generations, 3);
        assert!(check.notes.iter().any(|n| n.contains("notes.txt")));
    }
}

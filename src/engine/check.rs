//! Check: verify that every snapshot is complete and, with `read_data`, that every stored byte
//! is intact. Damage is reported as snapshots and paths a user understands.

use std::collections::{HashMap, HashSet};

use crate::engine::error::Result;
use crate::engine::format::compress::decode_blob;
use crate::engine::format::id::{content_hash, BlobId, PackId};
use crate::engine::format::index::{encode_index_file, read_index_file, Index, IndexedPack};
use crate::engine::format::pack::{read_trailer, PackEntry};
use crate::engine::format::snapshot::{load_all, SnapshotEntry};
use crate::engine::format::tree::{NodeKind, Tree};
use crate::engine::store::repo::{BlobReader, Repository};
use crate::engine::store::{list_names, Kind};

/// Check options.
#[derive(Clone, Copy, Debug, Default)]
pub struct CheckOptions {
    /// Read, decompress and hash every blob.
    pub read_data: bool,
}

/// What a check found.
#[derive(Clone, Debug, Default)]
pub struct CheckReport {
    /// Damage: the repository does not hold what it should.
    pub damage: Vec<String>,
    /// Harmless findings (e.g. packs left by an interrupted backup).
    pub notes: Vec<String>,
    pub snapshots: usize,
    pub packs: usize,
    pub blobs: usize,
    /// An index file is damaged (the index can be rebuilt from the pack trailers).
    pub index_damaged: bool,
}

impl CheckReport {
    pub fn is_clean(&self) -> bool {
        self.damage.is_empty()
    }
}

/// Receives progress while a check runs.
pub trait CheckProgress {
    fn step(&mut self, _what: &str, _done: usize, _total: usize) {}
}

/// A progress sink that ignores everything.
pub struct NoCheckProgress;
impl CheckProgress for NoCheckProgress {}

struct Walk<'a> {
    reader: &'a BlobReader,
    /// Blobs known to be unreadable, with why.
    bad: HashMap<BlobId, String>,
    /// Trees whose whole subtree is known to be intact.
    clean: HashSet<BlobId>,
    damage: Vec<String>,
}

impl Walk<'_> {
    fn blob_problem(&self, id: &BlobId) -> Option<String> {
        if let Some(why) = self.bad.get(id) {
            return Some(why.clone());
        }
        if !self.reader.index.contains(id) {
            return Some(format!("blob {} is missing", id.short()));
        }
        None
    }

    /// Walk a tree; returns whether everything below it is intact.
    fn tree(&mut self, snap: &str, path: &str, id: BlobId) -> bool {
        if self.clean.contains(&id) {
            return true;
        }
        if let Some(why) = self.blob_problem(&id) {
            self.damage.push(format!("{snap}: directory {path}: {why}"));
            return false;
        }
        let tree: Tree = match self.reader.read_tree(&id) {
            Ok(t) => t,
            Err(e) => {
                self.bad.insert(id, e.to_string());
                self.damage.push(format!("{snap}: directory {path}: {e}"));
                return false;
            }
        };
        let mut ok = true;
        for e in &tree.entries {
            let p = format!("{}/{}", path.trim_end_matches('/'), e.display_name());
            match e.kind {
                NodeKind::Dir => ok &= self.tree(snap, &p, e.subtree.unwrap_or_default()),
                NodeKind::File => {
                    for c in &e.chunks {
                        if let Some(why) = self.blob_problem(&c.id) {
                            self.damage.push(format!("{snap}: file {p}: {why}"));
                            ok = false;
                            break;
                        }
                    }
                }
                _ => {}
            }
        }
        if ok {
            self.clean.insert(id);
        }
        ok
    }
}

fn describe_snapshot(s: &SnapshotEntry) -> String {
    format!(
        "snapshot {} (source {}, {})",
        s.id.short(),
        s.snapshot.source,
        s.snapshot.time
    )
}

/// Check the repository.
pub fn check<P: CheckProgress>(
    repo: &Repository,
    opts: CheckOptions,
    progress: &mut P,
) -> Result<CheckReport> {
    let be = repo.backend();
    let mut report = CheckReport::default();

    // Index files, one by one, so one damaged file does not hide the others. `indexed` keeps
    // every pack an index file lists, also where another pack holds the same blobs.
    let mut index = Index::default();
    let mut indexed: HashMap<PackId, Vec<PackEntry>> = HashMap::new();
    for name in list_names(be, Kind::Index)? {
        match read_index_file(be, &name) {
            Ok((_, packs)) => {
                for p in packs {
                    index.add_pack(&p);
                    indexed.entry(p.pack).or_default().extend(p.entries);
                }
            }
            Err(e) => {
                report.index_damaged = true;
                report.damage.push(format!(
                    "{e} (the packs are intact; the index can be rebuilt from them)"
                ))
            }
        }
    }
    index.finish();
    report.blobs = index.len();

    // Packs: trailers must agree with the index; with read_data, every blob must verify.
    let packs = list_names(be, Kind::Pack)?;
    report.packs = packs.len();
    let mut bad: HashMap<BlobId, String> = HashMap::new();
    for (i, name) in packs.iter().enumerate() {
        progress.step("packs", i, packs.len());
        let object = be.describe(Kind::Pack, name);
        let Ok(pack) = PackId::from_hex(name) else {
            report
                .notes
                .push(format!("{object}: unexpected file in packs/"));
            continue;
        };
        let in_index = indexed.remove(&pack);
        let trailer = match read_trailer(be, &pack) {
            Ok(t) => t,
            Err(e) => {
                report.damage.push(e.to_string());
                for en in in_index.iter().flatten() {
                    bad.insert(
                        en.id,
                        format!("blob {} is in damaged pack {}", en.id.short(), pack.short()),
                    );
                }
                continue;
            }
        };
        match &in_index {
            None => report.notes.push(format!(
                "{object}: pack not in the index (left by an interrupted backup; harmless)"
            )),
            Some(entries) => {
                let by_id: HashMap<BlobId, &PackEntry> =
                    trailer.iter().map(|e| (e.id, e)).collect();
                for en in entries {
                    if by_id.get(&en.id).map(|t| **t != *en).unwrap_or(true) {
                        report.damage.push(format!(
                            "{object}: index entry for blob {} does not match the pack trailer",
                            en.id.short()
                        ));
                        bad.insert(
                            en.id,
                            format!("blob {} has a wrong index entry", en.id.short()),
                        );
                    }
                }
            }
        }
        if opts.read_data && in_index.is_some() {
            let bytes = match be.get(Kind::Pack, name) {
                Ok(b) => b,
                Err(e) => {
                    report.damage.push(e.to_string());
                    for en in &trailer {
                        bad.insert(
                            en.id,
                            format!(
                                "blob {} is in unreadable pack {}",
                                en.id.short(),
                                pack.short()
                            ),
                        );
                    }
                    continue;
                }
            };
            if content_hash(&bytes) != pack.0 {
                report.damage.push(format!(
                    "{object}: pack content does not match its name (damaged bytes)"
                ));
            }
            for en in &trailer {
                let start = en.offset as usize;
                let stored = bytes
                    .get(start..start + en.stored_len as usize)
                    .unwrap_or(&[]);
                if let Err(e) = decode_blob(repo.key(), en, stored, &object) {
                    report.damage.push(e.to_string());
                    bad.insert(en.id, format!("data damaged ({e})"));
                }
            }
        }
    }
    for (pack, entries) in indexed {
        report.damage.push(format!(
            "pack {} is listed in the index but missing from the repository",
            pack.short()
        ));
        for en in entries {
            bad.insert(
                en.id,
                format!("blob {} is in missing pack {}", en.id.short(), pack.short()),
            );
        }
    }

    // Snapshots: every tree and chunk must be present (and intact, when read).
    let (snaps, broken) = load_all(be)?;
    report.snapshots = snaps.len();
    report.damage.extend(broken.iter().map(|e| e.to_string()));
    let reader = repo.reader_with(index);
    let mut walk = Walk {
        reader: &reader,
        bad,
        clean: HashSet::new(),
        damage: Vec::new(),
    };
    for (i, s) in snaps.iter().enumerate() {
        progress.step("snapshots", i, snaps.len());
        let name = describe_snapshot(s);
        if let Some(links) = s.snapshot.links {
            if let Some(why) = walk.blob_problem(&links) {
                walk.damage.push(format!("{name}: hard-link table: {why}"));
            }
        }
        walk.tree(&name, "/", s.snapshot.tree);
    }
    report.damage.extend(walk.damage);
    Ok(report)
}

/// Rebuild the index from the pack trailers alone: write one index file listing every readable
/// pack, then delete the old index files. Returns the packs indexed and the unreadable ones.
pub fn repair_index(repo: &Repository, wait: std::time::Duration) -> Result<(usize, Vec<String>)> {
    let be = repo.backend();
    let _lock = repo.lock(
        crate::engine::store::lock::REPOSITORY,
        true,
        "check --repair-index",
        wait,
    )?;
    let mut packs = Vec::new();
    let mut unreadable = Vec::new();
    for name in list_names(be, Kind::Pack)? {
        let Ok(pack) = PackId::from_hex(&name) else {
            continue;
        };
        match read_trailer(be, &pack) {
            Ok(entries) => packs.push(IndexedPack { pack, entries }),
            Err(e) => unreadable.push(e.to_string()),
        }
    }
    let old = list_names(be, Kind::Index)?;
    let (id, bytes) = encode_index_file(&packs);
    be.put(Kind::Index, &id.to_hex(), &bytes)?;
    for name in old.into_iter().filter(|n| *n != id.to_hex()) {
        be.delete(Kind::Index, &name)?;
    }
    Ok((packs.len(), unreadable))
}

//! Prune: delete blobs no snapshot references and repack packs that are mostly garbage.
//!
//! Runs under the exclusive repository lock, so no backup writes meanwhile. Crash safety comes
//! from the order of writes (docs/FORMAT.md, "Prune"): new packs and their index first, then a
//! consolidated index of the packs kept, then old index files go, then obsolete packs. At every
//! moment each live blob is listed by a durable index file and present in a durable pack.

use std::collections::{HashMap, HashSet};
use std::time::Duration;

use crate::engine::error::{Error, Result};
use crate::engine::failpoint::failpoint;
use crate::engine::format::compress::decode_blob;
use crate::engine::format::id::{BlobId, PackId};
use crate::engine::format::index::{encode_index_file, read_index_file, Index, IndexedPack};
use crate::engine::format::pack::PackEntry;
use crate::engine::format::snapshot::load_all;
use crate::engine::format::tree::NodeKind;
use crate::engine::store::lock;
use crate::engine::store::repo::{BlobReader, BlobWriter, Repository};
use crate::engine::store::{list_names, Kind, ObjectInfo};

/// Prune options.
#[derive(Clone, Copy, Debug)]
pub struct PruneOptions {
    /// Only report what would be done.
    pub dry_run: bool,
    /// Repack a pack when more than this fraction of its bytes is garbage.
    pub max_unused: f64,
    pub lock_wait: Duration,
}

impl Default for PruneOptions {
    fn default() -> Self {
        PruneOptions {
            dry_run: false,
            max_unused: 0.2,
            lock_wait: Duration::ZERO,
        }
    }
}

/// What prune did (or would do, in a dry run).
#[derive(Clone, Debug, Default)]
pub struct PruneReport {
    pub snapshots: usize,
    pub live_blobs: usize,
    pub packs_total: usize,
    pub packs_deleted: usize,
    pub packs_repacked: usize,
    /// Packs no index lists (left by interrupted backups).
    pub packs_unindexed: usize,
    pub packs_written: u64,
    /// Bytes of packs removed minus bytes of packs written.
    pub bytes_freed: i64,
    /// Problems that made prune keep a pack instead of repacking it.
    pub warnings: Vec<String>,
}

/// Every blob reachable from some snapshot.
fn live_blobs(reader: &BlobReader, roots: &[BlobId]) -> Result<HashSet<BlobId>> {
    let mut live = HashSet::new();
    let mut stack: Vec<BlobId> = roots.to_vec();
    while let Some(id) = stack.pop() {
        if !live.insert(id) {
            continue;
        }
        let tree = reader.read_tree(&id).map_err(|e| Error::Damaged {
            what: format!("cannot read tree {}: {e}", id.short()),
            index: false,
        })?;
        for e in &tree.entries {
            match e.kind {
                NodeKind::Dir => stack.push(e.subtree.unwrap_or_default()),
                NodeKind::File => live.extend(e.chunks.iter().map(|c| c.id)),
                _ => {}
            }
        }
    }
    Ok(live)
}

/// Prune the repository.
pub fn prune(repo: &Repository, opts: &PruneOptions) -> Result<PruneReport> {
    let be = repo.backend();
    let lock = repo.lock(lock::REPOSITORY, true, "prune", opts.lock_wait)?;
    let mut report = PruneReport::default();

    // Every index file must be readable: a blob we cannot see might be one we would delete.
    let index_files = list_names(be, Kind::Index)?;
    let mut by_pack: HashMap<PackId, Vec<PackEntry>> = HashMap::new();
    let mut index = Index::default();
    for name in &index_files {
        let (_, packs) = read_index_file(be, name).map_err(|e| Error::Damaged {
            what: e.to_string(),
            index: true,
        })?;
        for p in packs {
            index.add_pack(&p);
            by_pack.entry(p.pack).or_default().extend(p.entries);
        }
    }
    index.finish();
    let (snaps, broken) = load_all(be)?;
    if let Some(e) = broken.first() {
        return Err(Error::Damaged {
            what: format!("{e} (a snapshot record is unreadable)"),
            index: false,
        });
    }
    report.snapshots = snaps.len();
    let reader = repo.reader_with(index);
    let roots: Vec<BlobId> = snaps.iter().map(|s| s.snapshot.tree).collect();
    let mut live = live_blobs(&reader, &roots)?;
    live.extend(snaps.iter().filter_map(|s| s.snapshot.links));
    report.live_blobs = live.len();

    // A blob is kept in the one pack the index resolves it to; other copies are garbage.
    let is_live = |pack: &PackId, e: &PackEntry| {
        live.contains(&e.id) && reader.index.get(&e.id).is_some_and(|l| l.pack == *pack)
    };
    let on_disk = be.list(Kind::Pack)?;
    report.packs_total = on_disk.len();
    let on_disk_set: HashSet<&str> = on_disk.iter().map(|o| o.name.as_str()).collect();
    if let Some(missing) = by_pack
        .keys()
        .find(|p| !on_disk_set.contains(p.to_hex().as_str()))
    {
        return Err(Error::Damaged {
            what: format!("pack {} is indexed but missing", missing.short()),
            index: false,
        });
    }
    let mut delete: Vec<(String, u64)> = Vec::new();
    let mut repack: Vec<PackId> = Vec::new();
    let mut keep: Vec<IndexedPack> = Vec::new();
    let mut repack_garbage: u64 = 0;
    for ObjectInfo { name, size } in &on_disk {
        let size = *size;
        let Some((pack, entries)) = PackId::from_hex(name)
            .ok()
            .and_then(|p| by_pack.get(&p).map(|e| (p, e)))
        else {
            report.packs_unindexed += 1;
            delete.push((name.clone(), size));
            continue;
        };
        let total: u64 = entries.iter().map(|e| u64::from(e.stored_len)).sum();
        let used: u64 = entries
            .iter()
            .filter(|e| is_live(&pack, e))
            .map(|e| u64::from(e.stored_len))
            .sum();
        if used == 0 {
            report.packs_deleted += 1;
            delete.push((name.clone(), size));
        } else if (total - used) as f64 > opts.max_unused * total as f64 {
            repack_garbage += total - used;
            repack.push(pack);
        } else {
            keep.push(IndexedPack {
                pack,
                entries: entries.clone(),
            });
        }
    }
    let freed_before: u64 = delete.iter().map(|(_, s)| s).sum();
    if opts.dry_run {
        report.packs_repacked = repack.len();
        report.bytes_freed = (freed_before + repack_garbage) as i64;
        return Ok(report);
    }
    if delete.is_empty() && repack.is_empty() {
        return Ok(report);
    }

    // 1. Live blobs of mostly-empty packs go into new packs (with their own index file).
    let empty = Index::default();
    let mut writer = BlobWriter::new(repo, &empty);
    let mut repacked: Vec<(String, u64)> = Vec::new();
    for pack in repack {
        let name = pack.to_hex();
        let object = be.describe(Kind::Pack, &name);
        let entries = &by_pack[&pack];
        let bytes = be.get(Kind::Pack, &name)?;
        let mut blobs = Vec::new();
        let mut damaged = None;
        for e in entries.iter().filter(|e| is_live(&pack, e)) {
            let stored = bytes
                .get(e.offset as usize..(e.offset + e.stored_len) as usize)
                .unwrap_or(&[]);
            match decode_blob(repo.key(), e, stored, &object) {
                Ok(raw) => blobs.push((e.id, e.kind, raw)),
                Err(err) => {
                    damaged = Some(err);
                    break;
                }
            }
        }
        if let Some(err) = damaged {
            report.warnings.push(format!("{err}; pack kept as it is"));
            keep.push(IndexedPack {
                pack,
                entries: entries.clone(),
            });
            continue;
        }
        for (id, kind, raw) in blobs {
            writer.add_with_id(id, kind, &raw)?;
        }
        report.packs_repacked += 1;
        repacked.push((name, bytes.len() as u64));
    }
    writer.flush()?;
    failpoint("prune-after-repack");
    let written = writer.written();
    report.packs_written = written.stats.packs_written;
    let written_bytes = written.stats.stored_bytes_added;

    // 2. One index file for every pack kept as it is.
    let new_index = if keep.is_empty() {
        None
    } else {
        let (id, bytes) = encode_index_file(&keep);
        be.put(Kind::Index, &id.to_hex(), &bytes)?;
        Some(id.to_hex())
    };
    failpoint("prune-after-new-index");
    // Deleting needs the exclusive lock still held: a backup may run once its lease is gone.
    lock.check()?;
    // 3. The old index files. Objects are named by content, so a pack or index file written
    //    just now may have the name of one that was there before (e.g. after a prune killed
    //    half-way): those stay.
    let written_indexes: HashSet<String> = written.indexes.iter().map(|i| i.to_hex()).collect();
    let written_packs: HashSet<String> = written.packs.iter().map(|p| p.to_hex()).collect();
    for name in index_files
        .iter()
        .filter(|n| Some(*n) != new_index.as_ref() && !written_indexes.contains(*n))
    {
        be.delete(Kind::Index, name)?;
    }
    failpoint("prune-after-index-delete");
    // 4. Packs nothing refers to any more.
    let mut removed: u64 = 0;
    for (name, size) in delete.iter().chain(repacked.iter()) {
        if !written_packs.contains(name) {
            be.delete(Kind::Pack, name)?;
            removed += size;
        }
    }
    report.bytes_freed = removed as i64 - written_bytes as i64;
    Ok(report)
}

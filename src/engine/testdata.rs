//! Test data and helpers shared by the unit tests of the engine and of the points (the crash
//! tests of both run backups on a [`MemoryStore`] and read every snapshot back).

use std::collections::BTreeMap;
use std::fs;
use std::os::unix::ffi::OsStrExt;
use std::path::Path;
use std::sync::Arc;

use super::backup::{backup, BackupOptions, NoProgress};
use super::check::{check, CheckOptions, NoCheckProgress};
use super::format::config::{ChunkerParams, RepoConfig};
use super::format::id::{BlobId, SnapshotId};
use super::format::tree::NodeKind;
use super::store::{BlobReader, MemoryBackend, MemoryStore, Repository};

/// `n` pseudo-random bytes (xorshift), continuing the stream in `x` (not zero).
pub fn noise(x: &mut u64, n: usize) -> Vec<u8> {
    (0..n)
        .map(|_| {
            *x ^= *x << 13;
            *x ^= *x >> 7;
            *x ^= *x << 17;
            *x as u8
        })
        .collect()
}

/// File path (absolute, as bytes) → content.
pub type Files = BTreeMap<Vec<u8>, Vec<u8>>;

/// Write `files` (relative names) under `root`; returns them by absolute path.
pub fn write_tree(root: &Path, files: &[(&str, Vec<u8>)]) -> Files {
    let mut out = Files::new();
    for (name, data) in files {
        let p = root.join(name);
        fs::create_dir_all(p.parent().unwrap()).unwrap();
        fs::write(&p, data).unwrap();
        out.insert(p.as_os_str().as_bytes().to_vec(), data.clone());
    }
    out
}

/// Every regular file of a snapshot, read back through the index.
pub fn read_files(reader: &BlobReader, tree: BlobId) -> Files {
    let mut out = Files::new();
    let mut stack = vec![(b"".to_vec(), tree)];
    while let Some((dir, id)) = stack.pop() {
        for e in reader.read_tree(&id).unwrap().entries {
            let mut path = dir.clone();
            path.push(b'/');
            path.extend_from_slice(&e.name);
            match e.kind {
                NodeKind::Dir => stack.push((path, e.subtree.unwrap())),
                NodeKind::File => {
                    let mut data = Vec::new();
                    for c in &e.chunks {
                        data.extend(reader.read_chunk(c).unwrap());
                    }
                    assert_eq!(data.len() as u64, e.size);
                    out.insert(path, data);
                }
                _ => {}
            }
        }
    }
    out
}

/// The source [`run_backup`] backs up.
pub const SOURCE: &str = "web1";

/// A config with small packs, so a backup writes many objects and each can be the one it
/// dies after.
pub fn small_packs() -> RepoConfig {
    let mut config = RepoConfig::new(ChunkerParams::from_avg(1024).unwrap(), 3).unwrap();
    config.pack_size = 4096;
    config
}

/// Back up `src` as [`SOURCE`].
pub fn run_backup(repo: &Repository, src: &Path) -> super::Result<SnapshotId> {
    let opts = BackupOptions {
        source: SOURCE.into(),
        paths: vec![src.to_path_buf()],
        // One thread: the same blobs in the same packs each run, so the same number of writes.
        jobs: Some(1),
        ..BackupOptions::default()
    };
    backup(repo, &opts, &mut NoProgress).map(|r| r.id)
}

/// Open the repository on `store` with a backend that works.
pub fn open(store: &MemoryStore) -> Repository {
    Repository::open(Arc::new(MemoryBackend::on(store.clone()))).unwrap()
}

/// The repository checks clean (data read too), every snapshot record is readable, and every
/// snapshot is one of `known` (snapshot id → the files it must hold) and reads back as such.
/// Returns the ids of the snapshots present.
pub fn assert_sound(
    repo: &Repository,
    known: &BTreeMap<SnapshotId, &Files>,
    when: &str,
) -> Vec<SnapshotId> {
    let report = check(repo, CheckOptions { read_data: true }, &mut NoCheckProgress).unwrap();
    assert!(report.is_clean(), "{when}: {:?}", report.damage);
    let (snaps, broken) = repo.snapshots().unwrap();
    assert!(broken.is_empty(), "{when}: {broken:?}");
    let reader = repo.reader().unwrap();
    for s in &snaps {
        let files = known
            .get(&s.id)
            .unwrap_or_else(|| panic!("{when}: unexpected snapshot {}", s.id.short()));
        assert!(
            read_files(&reader, s.snapshot.tree) == **files,
            "{when}: snapshot {} does not read back",
            s.id.short()
        );
    }
    snaps.iter().map(|s| s.id).collect()
}

/// [`assert_sound`], and every snapshot of `expect` is there: none was lost.
pub fn assert_intact(repo: &Repository, expect: &BTreeMap<SnapshotId, &Files>, when: &str) {
    let present = assert_sound(repo, expect, when);
    for id in expect.keys() {
        assert!(present.contains(id), "{when}: snapshot {} lost", id.short());
    }
}

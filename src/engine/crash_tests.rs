//! A backup killed after every possible number of writes, on an object store
//! ([`MemoryBackend`]): whatever it left, the repository opens, checks clean, keeps every
//! earlier snapshot intact and takes the next backup. (tests/faults.rs does the same on a local
//! directory with power cuts; this one needs no temp files or renames, only the storage
//! contract.)

use std::collections::BTreeMap;
use std::fs;
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use crate::engine::backup::{backup, BackupOptions, NoProgress};
use crate::engine::check::{check, CheckOptions, NoCheckProgress};
use crate::engine::format::config::{ChunkerParams, RepoConfig};
use crate::engine::format::id::{BlobId, SnapshotId};
use crate::engine::format::tree::NodeKind;
use crate::engine::store::repo::{BlobReader, Repository};
use crate::engine::store::{Kind, MemoryBackend, MemoryStore};
use crate::engine::testdata::noise;

/// File path (absolute, as bytes) → content.
type Files = BTreeMap<Vec<u8>, Vec<u8>>;

fn write_tree(root: &Path, files: &[(&str, Vec<u8>)]) -> Files {
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
fn read_files(reader: &BlobReader, tree: BlobId) -> Files {
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

fn run_backup(repo: &Repository, src: &Path) -> super::Result<SnapshotId> {
    let opts = BackupOptions {
        source: "web1".into(),
        paths: vec![src.to_path_buf()],
        // One thread: the same blobs in the same packs each run, so the same number of writes.
        jobs: Some(1),
        ..BackupOptions::default()
    };
    backup(repo, &opts, &mut NoProgress).map(|r| r.id)
}

fn open(store: &MemoryStore) -> Repository {
    Repository::open(Arc::new(MemoryBackend::on(store.clone()))).unwrap()
}

/// Snapshot id → the files it must hold.
fn assert_intact(repo: &Repository, expect: &BTreeMap<SnapshotId, &Files>, when: &str) {
    let report = check(repo, CheckOptions { read_data: true }, &mut NoCheckProgress).unwrap();
    assert!(report.is_clean(), "{when}: {:?}", report.damage);
    let (snaps, broken) = repo.snapshots().unwrap();
    assert!(broken.is_empty(), "{when}: {broken:?}");
    let reader = repo.reader().unwrap();
    for s in &snaps {
        let files = expect
            .get(&s.id)
            .unwrap_or_else(|| panic!("{when}: unexpected snapshot {}", s.id.short()));
        assert!(
            read_files(&reader, s.snapshot.tree) == **files,
            "{when}: snapshot {} does not read back",
            s.id.short()
        );
    }
    for id in expect.keys() {
        assert!(
            snaps.iter().any(|s| s.id == *id),
            "{when}: snapshot {} lost",
            id.short()
        );
    }
}

#[test]
fn a_backup_killed_after_any_number_of_writes_leaves_a_sound_repository() {
    let dir = tempfile::tempdir().unwrap();
    let src: PathBuf = dir.path().join("src");
    let x = &mut 0x9e37_79b9_u64;
    let mut tree = vec![
        ("a/one", noise(x, 20_000)),
        ("a/two", noise(x, 3_000)),
        ("b/empty", Vec::new()),
        ("b/text", b"hello ".repeat(2_000)),
    ];
    let first = write_tree(&src, &tree);

    let store = MemoryStore::new();
    let mut config = RepoConfig::new(ChunkerParams::from_avg(1024).unwrap(), 3).unwrap();
    // Small packs, so a backup writes many objects and each can be the one it dies after.
    config.pack_size = 4096;
    Repository::init(Arc::new(MemoryBackend::on(store.clone())), config).unwrap();
    let s1 = run_backup(&open(&store), &src).unwrap();

    // The second backup: new and changed files, a copy that deduplicates.
    tree[1].1 = noise(x, 9_000);
    tree.push(("c/new", noise(x, 60_000)));
    tree.push(("c/copy-of-one", tree[0].1.clone()));
    let second = write_tree(&src, &tree);

    // How many writes the second backup makes when nothing fails.
    let counting = Arc::new(MemoryBackend::on(store.duplicate()));
    run_backup(&Repository::open(counting.clone()).unwrap(), &src).unwrap();
    let writes = counting.writes();
    assert!(
        writes > 10,
        "only {writes} writes: the test would cover little"
    );

    let mut earlier = BTreeMap::new();
    earlier.insert(s1, &first);
    for n in 0..=writes {
        let when = format!("killed after {n} of {writes} writes");
        let crashed = store.duplicate();
        let dying = MemoryBackend::on(crashed.clone()).fail_writes_after(n);
        let res = Repository::open(Arc::new(dying)).and_then(|r| run_backup(&r, &src));
        // Only the last write (removing the lock record) may fail without failing the backup.
        assert_eq!(res.is_ok(), n + 1 >= writes, "{when}: {res:?}");

        // Restart: the same objects, a backend that works.
        let repo = open(&crashed);
        let mut expect = earlier.clone();
        match res {
            Ok(id) => {
                expect.insert(id, &second);
            }
            Err(_) => assert_eq!(crashed.count(Kind::Snapshot), 1, "{when}"),
        }
        assert_intact(&repo, &expect, &when);
        let again = run_backup(&repo, &src).unwrap_or_else(|e| panic!("{when}: next backup: {e}"));
        expect.insert(again, &second);
        assert_intact(&repo, &expect, &format!("{when}, then a backup"));
    }
}

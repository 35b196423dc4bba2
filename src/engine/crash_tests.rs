//! A backup killed after every possible number of writes, on an object store
//! ([`MemoryBackend`]): whatever it left, the repository opens, checks clean, keeps every
//! earlier snapshot intact and takes the next backup. (tests/faults.rs does the same on a local
//! directory with power cuts; this one needs no temp files or renames, only the storage
//! contract.)

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::Arc;

use crate::engine::store::repo::Repository;
use crate::engine::store::{Kind, MemoryBackend, MemoryStore};
use crate::engine::testdata::{assert_intact, noise, open, run_backup, small_packs, write_tree};

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
    Repository::init(Arc::new(MemoryBackend::on(store.clone())), small_packs()).unwrap();
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

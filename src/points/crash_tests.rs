//! Backup points under crashes, on an object store ([`MemoryBackend`]): a backup with the
//! recording of its point, and a rotation, each killed after every possible number of writes.
//! Whatever was left, the repository opens and checks clean, the catalogues verify, the view
//! loads without errors, no point names a missing snapshot, every named snapshot reads back,
//! the points are either all of the edit or none of it, and the next backup records its point.
//! (The engine's crash test does the same for the backup alone.)

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use super::levels::{set_levels, Level};
use crate::engine::store::{Kind, MemoryBackend, MemoryStore};
use crate::engine::testdata::{
    assert_sound, noise, open, read_files, run_backup, small_packs, write_tree, Files, SOURCE,
};
use crate::engine::{Repository, Result, SnapshotId};

use super::{check_catalogs, record_backup, rotate, Catalog, RotateOutcome, View};

/// No lock is ever held by anyone else here, so there is nothing to wait for.
const WAIT: Duration = Duration::ZERO;

/// A new repository on `store`: small packs, and levels that fill after a few backups.
fn init(store: &MemoryStore) -> Repository {
    let mut config = small_packs();
    let levels: Vec<Level> = [("hourly", 2), ("daily", 1)]
        .into_iter()
        .map(|(name, keep)| Level {
            name: name.to_string(),
            keep,
        })
        .collect();
    set_levels(&mut config, &levels).unwrap();
    Repository::init(Arc::new(MemoryBackend::on(store.clone())), config).unwrap()
}

/// Back up `src` and record it as `hourly.0`, as `yester backup` does. Returns the snapshot
/// id if the backup itself succeeded, and whether both did.
fn backup_and_record(repo: &Repository, src: &Path) -> (Option<SnapshotId>, Result<()>) {
    match run_backup(repo, src) {
        Ok(id) => (Some(id), record_backup(repo, SOURCE, id, WAIT).map(drop)),
        Err(e) => (None, Err(e)),
    }
}

/// [`backup_and_record`] where nothing fails.
fn backup_ok(repo: &Repository, src: &Path) -> SnapshotId {
    let (id, res) = backup_and_record(repo, src);
    res.unwrap();
    id.unwrap()
}

/// The catalogue of [`SOURCE`] as an edit loads it.
fn points_of(repo: &Repository) -> Catalog {
    Catalog::load(repo.backend(), SOURCE).unwrap().catalog
}

/// The snapshots of one level of `cat`, `.0` first.
fn level(cat: &Catalog, name: &str) -> Vec<SnapshotId> {
    cat.levels.get(name).cloned().unwrap_or_default()
}

/// "Restart" on the objects a killed writer left in `store`, and check everything a reader
/// relies on (`known`: every snapshot that may exist, with its files). Returns the repository,
/// the catalogue the view shows for [`SOURCE`] and the snapshots present.
fn restart(
    store: &MemoryStore,
    known: &BTreeMap<SnapshotId, &Files>,
    when: &str,
) -> (Repository, Catalog, Vec<SnapshotId>) {
    let repo = open(store);
    // A killed process's lock records are stale (its pid is gone). The "killed" writer here
    // is this very process, whose records would look alive: remove them as stale by hand, or
    // the next points edit would wait for a holder that no longer exists.
    repo.unlock(true).unwrap();
    let present = assert_sound(&repo, known, when);
    let cat_check = check_catalogs(&repo).unwrap();
    assert!(
        cat_check.damage.is_empty() && cat_check.notes.is_empty(),
        "{when}: {cat_check:?}"
    );
    let (view, errors) = View::load(&repo).unwrap();
    assert!(errors.is_empty(), "{when}: {errors:?}");
    let sv = &view.sources[SOURCE];
    let reader = repo.reader().unwrap();
    for (point, id) in sv.catalog.points(&view.levels) {
        let s = sv
            .by_id(&id)
            .unwrap_or_else(|| panic!("{when}: {point} names missing snapshot {}", id.short()));
        assert!(
            read_files(&reader, s.snapshot.tree) == *known[&id],
            "{when}: {point} does not read back"
        );
    }
    (repo, sv.catalog.clone(), present)
}

#[test]
fn a_backup_and_its_point_killed_after_any_number_of_writes_leave_sound_points() {
    let dir = tempfile::tempdir().unwrap();
    let src = dir.path().join("src");
    let x = &mut 0x2545_f491_u64;
    let mut tree = vec![
        ("a/one", noise(x, 20_000)),
        ("a/two", noise(x, 3_000)),
        ("b/text", b"hello ".repeat(2_000)),
    ];
    let store = MemoryStore::new();
    let repo = init(&store);
    let first = write_tree(&src, &tree);
    let s1 = backup_ok(&repo, &src);
    tree[1].1 = noise(x, 9_000);
    let second = write_tree(&src, &tree);
    let s2 = backup_ok(&repo, &src);
    assert_eq!(
        level(&points_of(&repo), "hourly"),
        [s2, s1],
        "hourly is full"
    );

    // The third backup: new data, and it pushes s1 out of hourly (its record is deleted).
    tree.push(("c/new", noise(x, 40_000)));
    let third = write_tree(&src, &tree);

    // How many writes it makes when nothing fails: the backup's, then the recording's.
    let counting = Arc::new(MemoryBackend::on(store.duplicate()));
    let crepo = Repository::open(counting.clone()).unwrap();
    let id = run_backup(&crepo, &src).unwrap();
    let backup_writes = counting.writes();
    assert_eq!(record_backup(&crepo, SOURCE, id, WAIT).unwrap(), [s1]);
    let writes = counting.writes();
    // The recording takes two locks, saves a catalogue generation, deletes s1's record and
    // removes the locks: fewer writes would mean a step the test no longer kills.
    assert!(
        backup_writes > 10 && writes >= backup_writes + 6,
        "only {backup_writes} + {} writes: the test would cover little",
        writes - backup_writes
    );

    let earlier = BTreeMap::from([(s1, &first), (s2, &second)]);
    let mut seen = BTreeSet::new();
    for n in 0..=writes {
        let when = format!("killed after {n} of {writes} writes ({backup_writes} the backup's)");
        let crashed = store.duplicate();
        let dying = Arc::new(MemoryBackend::on(crashed.clone()).fail_writes_after(n));
        let (new, res) = match Repository::open(dying) {
            Ok(r) => backup_and_record(&r, &src),
            Err(e) => (None, Err(e)),
        };
        // Only the last write of each step (removing a lock record) may fail without failing
        // it: the backup's one, and the recording's two.
        assert_eq!(new.is_some(), n + 1 >= backup_writes, "{when}: {res:?}");
        assert_eq!(res.is_ok(), n + 2 >= writes, "{when}: {res:?}");

        let mut known = earlier.clone();
        if let Some(id) = new {
            known.insert(id, &third);
        }
        let (repo, cat, present) = restart(&crashed, &known, &when);
        let hourly = level(&cat, "hourly");
        let recorded = new.is_some() && hourly.first() == new.as_ref();
        if recorded {
            assert_eq!(hourly, [new.unwrap(), s2], "{when}");
        } else {
            // The previous points, whole.
            assert_eq!(hourly, [s2, s1], "{when}");
            assert!(
                present.contains(&s1),
                "{when}: s1 lost while hourly.1 names it"
            );
        }
        assert!(level(&cat, "daily").is_empty(), "{when}");
        assert!(present.contains(&s2), "{when}: s2 lost");
        match new {
            Some(id) => assert!(present.contains(&id), "{when}: the new snapshot lost"),
            None => assert_eq!(crashed.count(Kind::Snapshot), 2, "{when}"),
        }
        if res.is_ok() {
            assert!(recorded && !present.contains(&s1), "{when}");
        }
        // A snapshot without a point (the backup done, its point not recorded; or s1 after
        // its point went but before its record did) is fine: it is still listed under
        // snapshots/web1/, and `forget` removes it.
        seen.insert(match (new.is_some(), recorded, present.contains(&s1)) {
            (false, ..) => "no new snapshot",
            (true, false, _) => "a new snapshot without a point",
            (true, true, true) => "recorded, the dropped snapshot's record left",
            (true, true, false) => "recorded, the dropped snapshot forgotten",
        });

        // The next backup records its point.
        let (next, res) = backup_and_record(&repo, &src);
        res.unwrap_or_else(|e| panic!("{when}: the next backup: {e}"));
        let next = next.unwrap();
        known.insert(next, &third);
        let when = format!("{when}, then a backup");
        let (_, cat, _) = restart(&crashed, &known, &when);
        let before = if recorded { new.unwrap() } else { s2 };
        assert_eq!(level(&cat, "hourly"), [next, before], "{when}");
    }
    assert_eq!(seen.len(), 4, "some crash states never came up: {seen:?}");
}

#[test]
fn a_rotation_killed_after_any_number_of_writes_never_names_a_missing_snapshot() {
    let dir = tempfile::tempdir().unwrap();
    let src = dir.path().join("src");
    let x = &mut 0x6a09_e667_u64;
    let mut tree = vec![("a/one", noise(x, 20_000)), ("a/two", noise(x, 3_000))];
    let store = MemoryStore::new();
    let repo = init(&store);
    let mut files = Vec::new();
    let mut ids = Vec::new();
    for i in 0..3 {
        tree[1].1 = noise(x, 5_000 + i * 1_000);
        files.push(write_tree(&src, &tree));
        ids.push(backup_ok(&repo, &src));
        if i == 1 {
            // hourly [s2, s1] is full: s1 becomes daily.0.
            let promoted = rotate(&repo, SOURCE, "daily", WAIT).unwrap();
            assert!(
                matches!(promoted, RotateOutcome::Promoted { dropped, .. } if dropped.is_empty())
            );
        }
    }
    let [s1, s2, s3] = ids[..] else {
        unreachable!()
    };
    let cat = points_of(&repo);
    assert_eq!(
        (level(&cat, "hourly"), level(&cat, "daily")),
        (vec![s3, s2], vec![s1])
    );
    let known: BTreeMap<SnapshotId, &Files> = ids.iter().copied().zip(&files).collect();

    // The rotation under test: s2 becomes daily.0, which pushes s1 out (its record deleted).
    let counting = Arc::new(MemoryBackend::on(store.duplicate()));
    let outcome = rotate(
        &Repository::open(counting.clone()).unwrap(),
        SOURCE,
        "daily",
        WAIT,
    );
    assert!(
        matches!(&outcome, Ok(RotateOutcome::Promoted { snapshot, dropped, .. })
            if *snapshot == s2 && *dropped == [s1]),
        "{outcome:?}"
    );
    let writes = counting.writes();
    // Two locks, the catalogue generation, s1's record, the two unlocks.
    assert!(
        writes >= 6,
        "only {writes} writes: the test would cover little"
    );

    let mut seen = BTreeSet::new();
    for n in 0..=writes {
        let when = format!("rotation killed after {n} of {writes} writes");
        let crashed = store.duplicate();
        let dying = Arc::new(MemoryBackend::on(crashed.clone()).fail_writes_after(n));
        let res = Repository::open(dying).and_then(|r| rotate(&r, SOURCE, "daily", WAIT));
        // Only the last two writes (removing the lock records) may fail without failing it.
        assert_eq!(res.is_ok(), n + 2 >= writes, "{when}: {res:?}");

        let (repo, cat, present) = restart(&crashed, &known, &when);
        let (hourly, daily) = (level(&cat, "hourly"), level(&cat, "daily"));
        let rotated = daily.first() == Some(&s2);
        if rotated {
            assert_eq!((hourly, daily), (vec![s3], vec![s2]), "{when}");
        } else {
            assert_eq!((hourly, daily), (vec![s3, s2], vec![s1]), "{when}");
            assert!(
                present.contains(&s1),
                "{when}: s1 lost while daily.0 names it"
            );
        }
        assert!(present.contains(&s2) && present.contains(&s3), "{when}");
        if res.is_ok() {
            assert!(rotated && !present.contains(&s1), "{when}");
        }
        // Killed between saving the catalogue and deleting s1's record, the rotation leaves
        // s1 without a point: fine (still under snapshots/web1/, and `forget` removes it);
        // the other order would leave daily.0 naming a missing snapshot.
        seen.insert(match (rotated, present.contains(&s1)) {
            (false, _) => "not rotated",
            (true, true) => "rotated, the dropped snapshot's record left",
            (true, false) => "rotated, the dropped snapshot forgotten",
        });

        // The next backup records its point, and the next rotation promotes hourly's oldest.
        let (next, res) = backup_and_record(&repo, &src);
        res.unwrap_or_else(|e| panic!("{when}: the next backup: {e}"));
        let next = next.unwrap();
        let mut known = known.clone();
        known.insert(next, &files[2]);
        let promoted = rotate(&repo, SOURCE, "daily", WAIT)
            .unwrap_or_else(|e| panic!("{when}: the next rotation: {e}"));
        assert!(
            matches!(promoted, RotateOutcome::Promoted { snapshot, .. } if snapshot == s3),
            "{when}: {promoted:?}"
        );
        let when = format!("{when}, then a backup and a rotation");
        let (_, cat, _) = restart(&crashed, &known, &when);
        assert_eq!(
            (level(&cat, "hourly"), level(&cat, "daily")),
            (vec![next], vec![s3]),
            "{when}"
        );
    }
    assert_eq!(seen.len(), 3, "some crash states never came up: {seen:?}");
}

//! Reusing the parent snapshot: a file whose size, times and inode match its entry in the
//! source's previous snapshot keeps that entry's chunks and is not read again.

use crate::engine::format::id::BlobId;
use crate::engine::format::tree::{ChunkRef, Entry, NodeKind, Tree};
use crate::engine::localfs::fsat::Stat;

use super::walk::Walker;
use super::Progress;

/// Whether the file now stat-ed as `st` is the one `prev` recorded, unchanged: same size,
/// mtime and ctime (ctime moves with any write, rename onto it or metadata change, and cannot
/// be set back), and the same inode unless the source's inode numbers are not stable or the
/// previous tree did not record one. A file replaced by another is read again even when a
/// coarse clock gives both the same times. The device is not compared: a source backed up
/// from a fresh btrfs, ZFS or LVM snapshot each time has a new device number every time.
pub(super) fn looks_unchanged(prev: &Entry, st: &Stat, ignore_inode: bool) -> bool {
    prev.kind == NodeKind::File
        && prev.size == st.size
        && prev.mtime == st.mtime
        && prev.ctime == st.ctime
        && (ignore_inode || prev.ino == 0 || prev.ino == st.ino)
}

/// The previous tree's entry for each of `names`, both sorted by name, in one merge (a tree
/// that is not sorted only gets fewer matches: those files are read again).
pub(super) fn match_prev<'t>(
    names: &[(Vec<u8>, bool)],
    prev: Option<&'t Tree>,
) -> Vec<Option<&'t Entry>> {
    let Some(tree) = prev else {
        return vec![None; names.len()];
    };
    let mut old = tree.entries.iter().peekable();
    names
        .iter()
        .map(|(name, _)| {
            while old.next_if(|e| e.name < *name).is_some() {}
            old.next_if(|e| e.name == *name)
        })
        .collect()
}

impl<P: Progress> Walker<'_, P> {
    /// The previous snapshot's tree of a directory, if it had one and it is readable.
    pub(super) fn prev_tree(&self, id: Option<BlobId>) -> Option<Tree> {
        let id = id?;
        match self.reader.read_tree(&id) {
            Ok(t) => Some(t),
            Err(e) => {
                tracing::info!(
                    "previous snapshot's tree {} unreadable ({e}); reading files again",
                    id.short()
                );
                None
            }
        }
    }

    /// The previous snapshot's chunks of a file that looks unchanged (see [`looks_unchanged`]),
    /// if all still exist.
    pub(super) fn unchanged_chunks(
        &self,
        prev: Option<&Entry>,
        st: &Stat,
    ) -> Option<Vec<ChunkRef>> {
        let p = prev?;
        (looks_unchanged(p, st, self.ignore_inode)
            && p.chunks.iter().all(|c| self.writer.has(&c.id)))
        .then(|| p.chunks.clone())
    }
}

#[cfg(test)]
mod tests {
    use super::super::walk::entry_from_stat;
    use super::*;
    use crate::engine::format::tree::Timestamp;

    pub(super) fn stat(ino: u64) -> Stat {
        Stat {
            mode: 0o100644,
            uid: 0,
            gid: 0,
            size: 5,
            mtime: Timestamp { secs: 10, nanos: 1 },
            ctime: Timestamp { secs: 11, nanos: 2 },
            nlink: 1,
            dev: 7,
            ino,
            rdev: 0,
        }
    }

    #[test]
    pub(super) fn each_name_gets_the_previous_entry_of_that_name() {
        let listed = |n: &[&str]| -> Vec<(Vec<u8>, bool)> {
            n.iter().map(|s| (s.as_bytes().to_vec(), true)).collect()
        };
        let tree = |n: &[&str]| Tree {
            entries: n
                .iter()
                .map(|s| Entry::new(s.as_bytes().to_vec(), NodeKind::File))
                .collect(),
        };
        let found = |names: &[(Vec<u8>, bool)], t: Option<&Tree>| -> Vec<Option<String>> {
            match_prev(names, t)
                .into_iter()
                .map(|e| e.map(|e| String::from_utf8_lossy(&e.name).into_owned()))
                .collect()
        };
        let names = listed(&["a", "c", "d", "f"]);
        let old = tree(&["b", "c", "e", "f", "g"]);
        let want = |v: &[Option<&str>]| -> Vec<Option<String>> {
            v.iter().map(|o| o.map(String::from)).collect()
        };
        assert_eq!(
            found(&names, Some(&old)),
            want(&[None, Some("c"), None, Some("f")])
        );
        assert_eq!(found(&names, None), want(&[None; 4]));
        assert_eq!(found(&[], Some(&old)), want(&[]));
        let all = listed(&["b", "c", "e", "f", "g"]);
        assert_eq!(found(&all, Some(&old)).iter().flatten().count(), 5);
        // A damaged, unsorted tree never gives an entry of another name.
        let unsorted = tree(&["f", "c", "a"]);
        for (name, got) in names.iter().zip(found(&names, Some(&unsorted))) {
            if let Some(g) = got {
                assert_eq!(g.as_bytes(), name.0.as_slice());
            }
        }
    }

    #[test]
    pub(super) fn an_unchanged_file_is_the_same_size_times_and_inode() {
        let mut was = entry_from_stat(b"f", &stat(40), false);
        assert_eq!(was.ino, 40);
        was.size = 5;
        assert!(looks_unchanged(&was, &stat(40), false));
        // Replaced by another file with the same size and times.
        assert!(!looks_unchanged(&was, &stat(41), false));
        assert!(looks_unchanged(&was, &stat(41), true));
        // A new device number alone (a fresh btrfs or LVM snapshot) is not a change.
        let mut other_dev = stat(40);
        other_dev.dev = 8;
        assert!(looks_unchanged(&was, &other_dev, false));
        let mut written = stat(40);
        written.ctime.nanos += 1;
        assert!(!looks_unchanged(&was, &written, false));
        let mut grown = stat(40);
        grown.size = 6;
        assert!(!looks_unchanged(&was, &grown, true));
        // A version-1 tree recorded no inode: size and times decide.
        was.ino = 0;
        assert!(looks_unchanged(&was, &stat(41), false));
    }

    #[test]
    pub(super) fn ignore_inode_records_no_inode_except_in_hard_link_keys() {
        assert_eq!(entry_from_stat(b"f", &stat(40), true).ino, 0);
        let mut linked = stat(40);
        linked.nlink = 2;
        let e = entry_from_stat(b"f", &linked, true);
        assert_eq!((e.ino, e.hardlink.map(|h| h.ino)), (40, Some(40)));
        // Directories never carry one.
        let mut dir = stat(40);
        dir.mode = 0o040755;
        assert_eq!(entry_from_stat(b"d", &dir, false).ino, 0);
    }
}

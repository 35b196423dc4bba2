//! Round trip: random trees -> `yester backup` -> `yester restore` -> identical content and
//! metadata (property test), plus deterministic tests for special files, FIFOs during backup
//! and `--overwrite`.
//!
//! Trees are compared three ways (see `common`): `diff -r --no-dereference` for content and
//! symlink targets (special files, named `*~fifo`, `*~sock`, `*~dev`, are excluded from diff
//! because GNU diff cannot compare them and exits 1 on "File a is a fifo while file b is a
//! fifo"), a metadata listing built in Rust (type, mode, owner, size, mtime with nanoseconds,
//! nlink, xattrs, rdev, symlink target, content hash), and the grouping of names by inode
//! (hard links).
//!
//! Longer than 600 lines on purpose: each file under `tests/` is a test binary of its own that
//! links the whole crate, so these related tests share one file rather than adding a binary
//! (and its link time) to every run of the suite.

// Tests unwrap freely: a panic is how a test fails (the crate denies it elsewhere).
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::ffi::OsStr;
use std::fs;
use std::io::{Seek, SeekFrom, Write};
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::{FileTypeExt, MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::sync::OnceLock;
use std::time::Duration;

use common::*;
use proptest::collection::{btree_map, vec};
use proptest::prelude::*;
use proptest::sample::Index;

// ---------------------------------------------------------------------------------------
// What this machine allows (probed once)
// ---------------------------------------------------------------------------------------

#[derive(Clone, Copy, Debug)]
struct Env {
    root: bool,
    xattrs: bool,
    devices: bool,
    wide_mtimes: bool,
    uid: u32,
    gid: u32,
}

fn env() -> Env {
    static ENV: OnceLock<Env> = OnceLock::new();
    *ENV.get_or_init(|| {
        let (_d, dir) = temp_dir("yester-probe");
        let xattrs = match user_xattrs_supported(&dir) {
            Ok(()) => true,
            Err(e) => {
                eprintln!("SKIPPING xattr checks: the filesystem under the temp dir does not support user.* xattrs: {e}");
                false
            }
        };
        let root = is_root();
        if !root {
            eprintln!("NOTE: not running as root: owners, 0o000 modes and device nodes are not exercised");
        }
        let devices = match mknod_supported(&dir) {
            Ok(()) => true,
            Err(e) => {
                eprintln!("SKIPPING device nodes in generated trees: {e}");
                false
            }
        };
        let wide_mtimes = match wide_mtimes_supported(&dir) {
            Ok(()) => true,
            Err(e) => {
                eprintln!("NOTE: mtimes before 1970 / after 2038 not supported here ({e}); using 1970..2038 only");
                false
            }
        };
        Env {
            root,
            xattrs,
            devices,
            wide_mtimes,
            uid: nix::unistd::geteuid().as_raw(),
            gid: nix::unistd::getegid().as_raw(),
        }
    })
}

// ---------------------------------------------------------------------------------------
// Generated trees
// ---------------------------------------------------------------------------------------

#[derive(Clone, Debug)]
struct Meta {
    mode: u32,
    uid: u32,
    gid: u32,
    mtime: (i64, i64),
    /// `user.*` attributes (files and directories only).
    xattrs: Vec<(String, Vec<u8>)>,
}

#[derive(Clone, Debug)]
enum Content {
    /// Incompressible bytes.
    Random { size: usize, seed: u64 },
    /// Compressible text.
    Text { size: usize, seed: u64 },
    /// Runs of random bytes, zeros and text.
    Mixed { size: usize, seed: u64 },
    /// `size` bytes of holes with a few 4 KiB data blocks (block index, seed) and maybe a
    /// few bytes at the very end.
    Sparse {
        size: u64,
        blocks: Vec<(u64, u64)>,
        tail: bool,
    },
}

#[derive(Clone, Debug)]
enum LinkTarget {
    /// Random bytes: almost always dangling.
    Raw(Vec<u8>),
    /// A relative path to some entry of the tree.
    Relative(Index),
    /// The absolute path of some entry of the tree.
    Absolute(Index),
}

#[derive(Clone, Debug)]
enum Node {
    File(Content, Meta),
    Dir(Vec<(Vec<u8>, Node)>, Meta),
    Symlink(LinkTarget, Meta),
    Fifo(Meta),
    Device {
        block: bool,
        major: u32,
        minor: u32,
        meta: Meta,
    },
}

/// Extra names for an existing non-directory: (directory, name) pairs.
#[derive(Clone, Debug)]
struct Hardlink {
    target: Index,
    names: Vec<(Index, Vec<u8>)>,
}

#[derive(Clone, Debug)]
struct Case {
    root: Meta,
    children: Vec<(Vec<u8>, Node)>,
    hardlinks: Vec<Hardlink>,
    /// How many hex digits of the snapshot id to give `restore`.
    prefix_len: usize,
    /// An entry restored on its own (`SNAP:path/to/entry`) from a second backup.
    entry: Index,
}

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Kind {
    File,
    Dir,
    Symlink,
    Special,
}

const KIB: usize = 1024;

/// One name: bytes other than `/`, NUL and `~` (reserved for special-file suffixes), with
/// non-UTF-8 bytes, newlines and spaces; sometimes 240..=255 bytes long.
fn name() -> impl Strategy<Value = Vec<u8>> {
    let byte = prop_oneof![
        10 => b'a'..=b'z',
        2 => b'0'..=b'9',
        1 => Just(0xffu8),
        1 => Just(0xe9u8),
        1 => Just(b'\n'),
        2 => Just(b' '),
        1 => Just(b'.'),
        1 => 0x80u8..=0xfe,
        1 => proptest::sample::select(b"-_:*?[]\\\t\"'$#%&()=+,;<>|!@{}^`".to_vec()),
        1 => 1u8..=0x1f,
    ];
    prop_oneof![
        12 => vec(byte.clone(), 1..14),
        1 => vec(byte, 240..=255),
    ]
    .prop_filter("not . or ..", |n| n != b"." && n != b"..")
}

fn size() -> impl Strategy<Value = usize> {
    prop_oneof![
        2 => Just(0usize),
        1 => Just(1usize),
        3 => 0usize..4 * KIB,
        2 => 16 * KIB - 1..=16 * KIB + 1,
        2 => 64 * KIB - 1..=64 * KIB + 1,
        2 => 256 * KIB - 1..=256 * KIB + 1,
        2 => 0usize..600 * KIB,
        1 => 590 * KIB..=600 * KIB,
    ]
}

fn content() -> impl Strategy<Value = Content> {
    prop_oneof![
        3 => (size(), any::<u64>()).prop_map(|(size, seed)| Content::Random { size, seed }),
        2 => (size(), any::<u64>()).prop_map(|(size, seed)| Content::Text { size, seed }),
        2 => (size(), any::<u64>()).prop_map(|(size, seed)| Content::Mixed { size, seed }),
        1 => (
            1u64 << 20..=3u64 << 20,
            vec((0u64..1024, any::<u64>()), 0..5),
            any::<bool>()
        )
            .prop_map(|(size, blocks, tail)| Content::Sparse { size, blocks, tail }),
    ]
}

fn meta(env: Env, kind: Kind) -> impl Strategy<Value = Meta> {
    let mode = match kind {
        // Keep directories walkable for the test itself.
        Kind::Dir => (0u32..=0o7777).prop_map(|m| m | 0o700).boxed(),
        Kind::File if !env.root => (0u32..=0o7777).prop_map(|m| m | 0o600).boxed(),
        Kind::Symlink => Just(0o777u32).boxed(),
        _ => prop_oneof![1 => Just(0u32), 6 => 0u32..=0o7777].boxed(),
    };
    let id = |own: u32| {
        if env.root {
            prop_oneof![
                2 => Just(0u32),
                3 => 1u32..=65535,
                1 => Just(65534u32),
                1 => 65536u32..=4_000_000,
            ]
            .boxed()
        } else {
            Just(own).boxed()
        }
    };
    let secs = if env.wide_mtimes {
        prop_oneof![
            1 => -2_000_000_000i64..0,
            4 => 0i64..=2_000_000_000,
            1 => 2_000_000_000i64..=8_000_000_000,
        ]
        .boxed()
    } else {
        (0i64..=i64::from(i32::MAX)).boxed()
    };
    let nanos = prop_oneof![1 => Just(0i64), 4 => 0i64..1_000_000_000];
    let xattrs = if env.xattrs && matches!(kind, Kind::File | Kind::Dir) {
        prop_oneof![
            2 => Just(Vec::new()),
            1 => btree_map("[a-z0-9_.]{1,20}", vec(any::<u8>(), 0..200), 1..=3)
                .prop_map(|m| m.into_iter().map(|(k, v)| (format!("user.{k}"), v)).collect()),
        ]
        .boxed()
    } else {
        Just(Vec::new()).boxed()
    };
    (mode, id(env.uid), id(env.gid), secs, nanos, xattrs).prop_map(
        |(mode, uid, gid, s, ns, xattrs)| Meta {
            mode,
            uid,
            gid,
            mtime: (s, ns),
            xattrs,
        },
    )
}

fn link_target() -> impl Strategy<Value = LinkTarget> {
    prop_oneof![
        3 => vec(1u8..=255, 1..60).prop_map(LinkTarget::Raw),
        1 => vec(1u8..=255, 3900..=4095).prop_map(LinkTarget::Raw),
        3 => any::<Index>().prop_map(LinkTarget::Relative),
        2 => any::<Index>().prop_map(LinkTarget::Absolute),
    ]
}

fn node(env: Env) -> impl Strategy<Value = Node> {
    let leaf = prop_oneof![
        8 => (content(), meta(env, Kind::File)).prop_map(|(c, m)| Node::File(c, m)),
        3 => (link_target(), meta(env, Kind::Symlink)).prop_map(|(t, m)| Node::Symlink(t, m)),
        1 => meta(env, Kind::Special).prop_map(Node::Fifo),
        1 => (any::<bool>(), 0u32..512, 0u32..0x10_0000, meta(env, Kind::Special))
            .prop_map(|(block, major, minor, meta)| Node::Device { block, major, minor, meta }),
    ];
    leaf.prop_recursive(3, 40, 5, move |inner| {
        (btree_map(name(), inner, 0..6), meta(env, Kind::Dir))
            .prop_map(|(c, m)| Node::Dir(c.into_iter().collect(), m))
    })
}

fn case(env: Env) -> impl Strategy<Value = Case> {
    (
        meta(env, Kind::Dir),
        btree_map(name(), node(env), 1..8),
        vec(
            (any::<Index>(), vec((any::<Index>(), name()), 1..=2))
                .prop_map(|(target, names)| Hardlink { target, names }),
            0..4,
        ),
        4usize..=64,
        any::<Index>(),
    )
        .prop_map(|(root, children, hardlinks, prefix_len, entry)| Case {
            root,
            children: children.into_iter().collect(),
            hardlinks,
            prefix_len,
            entry,
        })
}

// ---------------------------------------------------------------------------------------
// Building a tree on disk
// ---------------------------------------------------------------------------------------

struct SplitMix(u64);
impl SplitMix {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }
    fn fill(&mut self, buf: &mut [u8]) {
        for c in buf.chunks_mut(8) {
            let v = self.next().to_le_bytes();
            c.copy_from_slice(&v[..c.len()]);
        }
    }
}

const WORDS: [&str; 12] = [
    "backup", "snapshot", "chunk", "tree", "restore", "yester", "the", "of", "and", "data", "file",
    "\n",
];

fn gen_text(rng: &mut SplitMix, out: &mut Vec<u8>, n: usize) {
    let end = out.len() + n;
    while out.len() < end {
        let w = WORDS[(rng.next() % WORDS.len() as u64) as usize].as_bytes();
        let take = w.len().min(end - out.len());
        out.extend_from_slice(&w[..take]);
        if out.len() < end && w != b"\n" {
            out.push(b' ');
        }
    }
}

fn gen_content(c: &Content) -> Vec<u8> {
    match *c {
        Content::Random { size, seed } => {
            let mut v = vec![0; size];
            SplitMix(seed).fill(&mut v);
            v
        }
        Content::Text { size, seed } => {
            let mut v = Vec::with_capacity(size);
            gen_text(&mut SplitMix(seed), &mut v, size);
            v
        }
        Content::Mixed { size, seed } => {
            let mut rng = SplitMix(seed);
            let mut v = Vec::with_capacity(size);
            while v.len() < size {
                let run = ((rng.next() % (40 * KIB as u64)) as usize + 1).min(size - v.len());
                match rng.next() % 3 {
                    0 => {
                        let start = v.len();
                        v.resize(start + run, 0);
                        rng.fill(&mut v[start..]);
                    }
                    1 => v.resize(v.len() + run, 0),
                    _ => gen_text(&mut rng, &mut v, run),
                }
            }
            v
        }
        Content::Sparse { .. } => unreachable!(),
    }
}

/// What was built: every entry created (not the extra hard link names), and sparse files.
struct Built {
    /// (relative path, kind, metadata to apply)
    entries: Vec<(Vec<u8>, Kind, Meta)>,
    sparse: Vec<(Vec<u8>, u64)>,
}

fn join(rel: &[u8], name: &[u8]) -> Vec<u8> {
    if rel.is_empty() {
        name.to_vec()
    } else {
        let mut r = rel.to_vec();
        r.push(b'/');
        r.extend_from_slice(name);
        r
    }
}

fn full(root: &Path, rel: &[u8]) -> PathBuf {
    if rel.is_empty() {
        root.to_path_buf()
    } else {
        root.join(OsStr::from_bytes(rel))
    }
}

/// A special file's name: at most 255 bytes including the suffix that keeps it out of diff.
fn special_name(name: &[u8], suffix: &str) -> Vec<u8> {
    let mut n = name[..name.len().min(255 - suffix.len())].to_vec();
    n.extend_from_slice(suffix.as_bytes());
    n
}

fn write_sparse(path: &Path, size: u64, blocks: &[(u64, u64)], tail: bool) {
    let mut f = fs::File::create(path).unwrap();
    f.set_len(size).unwrap();
    let nblocks = size / 4096;
    for &(idx, seed) in blocks {
        let mut b = vec![0u8; 4096];
        SplitMix(seed).fill(&mut b);
        b[0] = 1; // never an all-zero block
        f.seek(SeekFrom::Start((idx % nblocks) * 4096)).unwrap();
        f.write_all(&b).unwrap();
    }
    if tail {
        f.seek(SeekFrom::Start(size - 3)).unwrap();
        f.write_all(b"end").unwrap();
    }
    drop(f);
    let alloc = allocated_bytes(path);
    assert!(
        alloc < size / 2,
        "test setup: {} should be sparse but has {alloc} of {size} bytes allocated",
        path.display()
    );
}

struct Builder<'a> {
    env: Env,
    root: &'a Path,
    built: Built,
    /// (relative path of the symlink, target spec, meta): created after everything else so
    /// they can point at any entry.
    symlinks: Vec<(Vec<u8>, LinkTarget, Meta)>,
}

impl Builder<'_> {
    fn create(&mut self, rel: &[u8], children: &[(Vec<u8>, Node)]) {
        for (name, node) in children {
            let n = match node {
                Node::Fifo(_) => special_name(name, "~fifo"),
                Node::Device { .. } => special_name(name, "~dev"),
                _ => name.clone(),
            };
            let r = join(rel, &n);
            let p = full(self.root, &r);
            if fs::symlink_metadata(&p).is_ok() {
                continue; // two special names truncated to the same bytes
            }
            match node {
                Node::File(Content::Sparse { size, blocks, tail }, m) => {
                    write_sparse(&p, *size, blocks, *tail);
                    self.built.sparse.push((r.clone(), *size));
                    self.built.entries.push((r, Kind::File, m.clone()));
                }
                Node::File(c, m) => {
                    fs::write(&p, gen_content(c))
                        .unwrap_or_else(|e| panic!("write {}: {e}", p.display()));
                    self.built.entries.push((r, Kind::File, m.clone()));
                }
                Node::Dir(ch, m) => {
                    fs::create_dir(&p).unwrap_or_else(|e| panic!("mkdir {}: {e}", p.display()));
                    self.built.entries.push((r.clone(), Kind::Dir, m.clone()));
                    self.create(&r, ch);
                }
                Node::Symlink(t, m) => self.symlinks.push((r, t.clone(), m.clone())),
                Node::Fifo(m) => {
                    nix::unistd::mkfifo(&p, nix::sys::stat::Mode::from_bits_truncate(0o600))
                        .unwrap_or_else(|e| panic!("mkfifo {}: {e}", p.display()));
                    self.built.entries.push((r, Kind::Special, m.clone()));
                }
                Node::Device {
                    block,
                    major,
                    minor,
                    meta,
                } => {
                    if !self.env.devices {
                        continue;
                    }
                    let kind = if *block {
                        nix::sys::stat::SFlag::S_IFBLK
                    } else {
                        nix::sys::stat::SFlag::S_IFCHR
                    };
                    nix::sys::stat::mknod(
                        &p,
                        kind,
                        nix::sys::stat::Mode::from_bits_truncate(0o600),
                        nix::libc::makedev(*major, *minor),
                    )
                    .unwrap_or_else(|e| panic!("mknod {}: {e}", p.display()));
                    self.built.entries.push((r, Kind::Special, meta.clone()));
                }
            }
        }
    }

    fn make_symlinks(&mut self) {
        // Targets: the root and every entry created so far.
        let mut targets: Vec<Vec<u8>> = vec![Vec::new()];
        targets.extend(self.built.entries.iter().map(|e| e.0.clone()));
        for (r, t, m) in std::mem::take(&mut self.symlinks) {
            let p = full(self.root, &r);
            let target = match t {
                LinkTarget::Raw(b) => b,
                LinkTarget::Relative(i) => {
                    let to = i.get(&targets);
                    let depth = r.iter().filter(|&&b| b == b'/').count();
                    let mut v = b"../".repeat(depth);
                    if to.is_empty() {
                        v.push(b'.');
                    } else {
                        v.extend_from_slice(to);
                    }
                    v
                }
                LinkTarget::Absolute(i) => full(self.root, i.get::<Vec<u8>>(&targets))
                    .as_os_str()
                    .as_bytes()
                    .to_vec(),
            };
            std::os::unix::fs::symlink(OsStr::from_bytes(&target), &p)
                .unwrap_or_else(|e| panic!("symlink {}: {e}", p.display()));
            self.built.entries.push((r, Kind::Symlink, m));
        }
    }

    fn make_hardlinks(&mut self, links: &[Hardlink]) {
        let files: Vec<(Vec<u8>, Kind)> = self
            .built
            .entries
            .iter()
            .filter(|e| e.1 != Kind::Dir)
            .map(|e| (e.0.clone(), e.1))
            .collect();
        let mut dirs: Vec<Vec<u8>> = vec![Vec::new()];
        dirs.extend(
            self.built
                .entries
                .iter()
                .filter(|e| e.1 == Kind::Dir)
                .map(|e| e.0.clone()),
        );
        if files.is_empty() {
            return;
        }
        for h in links {
            let (target, kind) = h.target.get(&files);
            let suffix = match kind {
                Kind::Special => target
                    .rsplit(|&b| b == b'~')
                    .next()
                    .map(|s| format!("~{}", String::from_utf8_lossy(s))),
                _ => None,
            };
            for (d, name) in &h.names {
                let n = match &suffix {
                    Some(s) => special_name(name, s),
                    None => name.clone(),
                };
                let p = full(self.root, &join(d.get::<Vec<u8>>(&dirs), &n));
                if fs::symlink_metadata(&p).is_ok() {
                    continue;
                }
                fs::hard_link(full(self.root, target), &p)
                    .unwrap_or_else(|e| panic!("link {}: {e}", p.display()));
            }
        }
    }

    /// Owners, modes, xattrs and times, deepest entries first so that directory mtimes are
    /// set after everything inside them.
    fn apply_metadata(&mut self, root_meta: &Meta) {
        let mut all: Vec<(Vec<u8>, Kind, Meta)> = self.built.entries.clone();
        all.push((Vec::new(), Kind::Dir, root_meta.clone()));
        let depth = |r: &[u8]| {
            if r.is_empty() {
                0
            } else {
                1 + r.iter().filter(|&&b| b == b'/').count()
            }
        };
        all.sort_by_key(|e| std::cmp::Reverse(depth(&e.0)));
        for (r, kind, m) in &all {
            let p = full(self.root, r);
            if self.env.xattrs {
                for (k, v) in &m.xattrs {
                    xattr::set(&p, k, v)
                        .unwrap_or_else(|e| panic!("setxattr {} {k}: {e}", p.display()));
                }
            }
            if self.env.root {
                std::os::unix::fs::lchown(&p, Some(m.uid), Some(m.gid))
                    .unwrap_or_else(|e| panic!("lchown {}: {e}", p.display()));
            }
            // After chown, which clears set-id bits.
            if *kind != Kind::Symlink {
                fs::set_permissions(&p, fs::Permissions::from_mode(m.mode))
                    .unwrap_or_else(|e| panic!("chmod {}: {e}", p.display()));
            }
            set_mtime(&p, m.mtime.0, m.mtime.1);
        }
    }
}

fn build(env: Env, case: &Case, root: &Path) -> Built {
    fs::create_dir(root).unwrap();
    let mut b = Builder {
        env,
        root,
        built: Built {
            entries: Vec::new(),
            sparse: Vec::new(),
        },
        symlinks: Vec::new(),
    };
    b.create(&[], &case.children);
    b.make_symlinks();
    b.make_hardlinks(&case.hardlinks);
    b.apply_metadata(&case.root);
    b.built
}

// ---------------------------------------------------------------------------------------
// The property
// ---------------------------------------------------------------------------------------

/// A one-line summary of a generated tree (printed with ROUNDTRIP_DEBUG=1, to see what the
/// generator produces).
fn describe(src: &Path, list: &[EntryMeta], built: &Built) -> String {
    let mut kinds = std::collections::BTreeMap::new();
    for e in list {
        *kinds.entry(e.kind).or_insert(0) += 1;
    }
    let bytes: u64 = list
        .iter()
        .filter(|e| e.kind == '-')
        .filter_map(|e| e.size)
        .sum();
    let links: Vec<usize> = hardlink_groups(src).iter().map(Vec::len).collect();
    let xattrs = list.iter().filter(|e| !e.xattrs.is_empty()).count();
    let depth = list
        .iter()
        .map(|e| e.path.matches('/').count() + 1)
        .max()
        .unwrap_or(0);
    format!(
        "case: kinds {kinds:?}, {bytes} bytes in files, {} sparse, hard link groups {links:?}, \
         {xattrs} with xattrs, depth {depth}",
        built.sparse.len()
    )
}

fn check_case(env: Env, case: &Case) {
    let (_case_dir, base) = temp_dir("yester-src");
    let src = base.join("src");
    let built = build(env, case, &src);
    let before = listing(&src);
    if std::env::var_os("ROUNDTRIP_DEBUG").is_some() {
        eprintln!("{}", describe(&src, &before, &built));
    }

    let repo = Repo::new();
    let id = repo.backup("proptest", &[&src]);
    // A second backup of the unchanged tree: everything is deduplicated this time.
    let id2 = repo.backup("proptest", &[&src]);
    let snaps = repo.snapshots();
    assert_eq!(snaps.len(), 2, "two snapshots expected: {snaps:?}");
    assert_eq!(
        (&snaps[0].id, &snaps[1].id),
        (&id, &id2),
        "snapshots --json ids (oldest first) differ from the ones backup printed"
    );
    for s in &snaps {
        assert_eq!(s.source, "proptest");
        assert_eq!(s.paths, vec![src.to_string_lossy().into_owned()]);
    }
    assert_eq!(listing(&src), before, "the backup changed the source tree");

    // The backed-up directory from the first snapshot, by a unique id prefix.
    let common = id
        .bytes()
        .zip(id2.bytes())
        .take_while(|(a, b)| a == b)
        .count();
    let prefix = &id[..case.prefix_len.max(common + 1).min(64)];
    let (_target_dir, target) = temp_dir("yester-restore");
    repo.restore(&restore_spec(prefix, &src), &target);
    let restored = target.join("src");

    // First, before anything reads the restored tree (which may update atimes).
    let bad = atime_mismatches(&restored);
    assert!(
        bad.is_empty(),
        "restore should set atime = mtime:\n{}",
        bad.join("\n")
    );

    for (rel, size) in &built.sparse {
        let p = full(&restored, rel);
        let alloc = allocated_bytes(&p);
        assert!(
            alloc <= size / 2,
            "restored sparse file {} has {alloc} of {size} bytes allocated (source: {})",
            esc(rel),
            allocated_bytes(&full(&src, rel))
        );
    }

    assert_trees_equal(&src, &restored);

    // One entry (any kind, with any name bytes in its path) from the second snapshot.
    if !built.entries.is_empty() {
        let (rel, kind, _) = case.entry.get(&built.entries);
        let src_entry = full(&src, rel);
        let name = src_entry.file_name().unwrap().to_owned();
        let (_t2, target2) = temp_dir("yester-restore");
        repo.restore(&restore_spec(&id2, &src_entry), &target2);
        let restored_entry = target2.join(&name);
        let bad = atime_mismatches(&restored_entry);
        assert!(
            bad.is_empty(),
            "restore should set atime = mtime:\n{}",
            bad.join("\n")
        );
        if *kind != Kind::Special {
            diff_trees(&src_entry, &restored_entry);
        }
        // Hard links may reach outside the restored entry, so link counts may differ.
        let no_nlink = |v: Vec<EntryMeta>| -> Vec<EntryMeta> {
            v.into_iter()
                .map(|e| EntryMeta { nlink: None, ..e })
                .collect()
        };
        assert_eq!(
            no_nlink(listing(&src_entry)),
            no_nlink(listing(&restored_entry)),
            "restoring the single entry {} differs (left: source, right: restored)",
            esc(rel)
        );
    }
}

proptest! {
    #![proptest_config(ProptestConfig {
        cases: 24,
        // No regression files: this test may only write inside temporary directories.
        failure_persistence: None,
        max_shrink_iters: 300,
        max_shrink_time: 240_000,
        ..ProptestConfig::default()
    })]

    #[test]
    fn backup_restore_roundtrip(case in case(env())) {
        check_case(env(), &case);
    }
}

// ---------------------------------------------------------------------------------------
// Deterministic tests
// ---------------------------------------------------------------------------------------

/// Sockets, FIFOs and devices (when root and allowed) survive a round trip, both restoring
/// `SNAP:path` with a 4-digit id prefix and restoring the whole snapshot.
#[test]
fn special_files_roundtrip() {
    let (_d, base) = temp_dir("yester-src");
    let src = base.join("src");
    let sub = src.join("sub");
    fs::create_dir_all(&sub).unwrap();
    fs::write(src.join("file.txt"), b"hello\n").unwrap();
    for dir in [&src, &sub] {
        let sock = dir.join("listen~sock");
        drop(std::os::unix::net::UnixListener::bind(&sock).unwrap());
        assert!(fs::symlink_metadata(&sock).unwrap().file_type().is_socket());
        nix::unistd::mkfifo(
            &dir.join("pipe~fifo"),
            nix::sys::stat::Mode::from_bits_truncate(0o640),
        )
        .unwrap();
    }
    let mut specials = vec![
        src.join("listen~sock"),
        sub.join("listen~sock"),
        src.join("pipe~fifo"),
        sub.join("pipe~fifo"),
    ];
    match mknod_supported(&base) {
        Ok(()) => {
            use nix::sys::stat::{mknod, Mode, SFlag};
            mknod(
                &src.join("null~dev"),
                SFlag::S_IFCHR,
                Mode::from_bits_truncate(0o666),
                nix::libc::makedev(1, 3),
            )
            .unwrap();
            mknod(
                &sub.join("loop~dev"),
                SFlag::S_IFBLK,
                Mode::from_bits_truncate(0o660),
                nix::libc::makedev(7, 0),
            )
            .unwrap();
            specials.push(src.join("null~dev"));
            specials.push(sub.join("loop~dev"));
        }
        Err(e) => eprintln!("SKIPPING device nodes in special_files_roundtrip: {e}"),
    }
    for (i, p) in specials.iter().enumerate() {
        fs::set_permissions(p, fs::Permissions::from_mode(0o600 + i as u32)).unwrap();
        if is_root() {
            std::os::unix::fs::lchown(p, Some(1000 + i as u32), Some(2000 + i as u32)).unwrap();
        }
        set_mtime(p, 1_600_000_000 + i as i64, 123_456_789);
    }
    set_mtime(&sub, 1_500_000_000, 1);
    set_mtime(&src, 1_400_000_000, 999_999_999);

    let repo = Repo::new();
    let (out, id) = repo.backup_raw("special", &[&src], Duration::from_secs(60));
    out.expect_success();
    let id = id.expect("snapshot id in backup output");

    // SNAP:path with the shortest allowed prefix.
    let (_t, target) = temp_dir("yester-restore");
    repo.restore(&restore_spec(&id[..4], &src), &target);
    let bad = atime_mismatches(&target.join("src"));
    assert!(
        bad.is_empty(),
        "restore should set atime = mtime:\n{}",
        bad.join("\n")
    );
    let kinds: Vec<char> = listing(&target.join("src"))
        .iter()
        .map(|e| e.kind)
        .collect();
    assert!(
        kinds.contains(&'s') && kinds.contains(&'p'),
        "socket and fifo restored: {kinds:?}"
    );
    assert_trees_equal(&src, &target.join("src"));

    // The whole snapshot: the backed-up path keeps its absolute location below the target.
    let (_t2, target2) = temp_dir("yester-restore");
    repo.restore(OsStr::new(&id), &target2);
    assert_trees_equal(&src, &target2.join(src.strip_prefix("/").unwrap()));
}

/// A FIFO with no writer must not make the backup hang (it must not be opened for reading),
/// neither inside a tree nor when given directly as the path to back up.
#[test]
fn backup_with_fifo_does_not_block() {
    let (_d, base) = temp_dir("yester-src");
    let src = base.join("src");
    fs::create_dir(&src).unwrap();
    fs::write(src.join("before"), b"a").unwrap();
    fs::write(src.join("zafter"), vec![7u8; 100 * KIB]).unwrap();
    let fifo = src.join("nobody-writes~fifo");
    nix::unistd::mkfifo(&fifo, nix::sys::stat::Mode::from_bits_truncate(0o644)).unwrap();

    let repo = Repo::new();
    let limit = Duration::from_secs(60);
    let (out, id) = repo.backup_raw("fifo", &[&src], limit);
    out.expect_success();
    assert!(out.elapsed < limit);
    let id = id.expect("snapshot id in backup output");

    let (out2, id2) = repo.backup_raw("fifo", &[&fifo], limit);
    out2.expect_success();
    let id2 = id2.expect("snapshot id in backup output");

    let (_t, target) = temp_dir("yester-restore");
    repo.restore(&restore_spec(&id, &src), &target);
    assert_trees_equal(&src, &target.join("src"));

    let (_t2, target2) = temp_dir("yester-restore");
    repo.restore(&restore_spec(&id2, &fifo), &target2);
    assert_eq!(listing(&fifo), listing(&target2.join("nobody-writes~fifo")));
}

/// Restoring onto an existing file fails with a non-zero exit status that mentions
/// `--overwrite` and leaves the file alone; with `--overwrite` the restore succeeds.
#[test]
fn restore_refuses_to_overwrite() {
    let (_d, base) = temp_dir("yester-src");
    let src = base.join("src");
    fs::create_dir_all(src.join("sub")).unwrap();
    fs::write(src.join("a.txt"), b"original\n").unwrap();
    fs::write(src.join("sub/b.txt"), vec![b'b'; 70 * KIB]).unwrap();
    set_mtime(&src.join("sub"), 1_000_000_000, 5);
    set_mtime(&src, 1_000_000_001, 6);

    let repo = Repo::new();
    let id = repo.backup("overwrite", &[&src]);
    let spec = restore_spec(&id, &src);

    let (_t, target) = temp_dir("yester-restore");
    fs::create_dir(target.join("src")).unwrap();
    fs::write(target.join("src/a.txt"), b"local change\n").unwrap();

    let out = repo.restore_raw(&spec, &target, false);
    assert_ne!(
        out.code(),
        Some(0),
        "restore over an existing file must fail:\n{out:?}"
    );
    assert!(
        out.stderr.contains("--overwrite"),
        "the error should mention --overwrite:\n{}",
        out.stderr
    );
    assert_eq!(
        fs::read(target.join("src/a.txt")).unwrap(),
        b"local change\n",
        "existing file was modified"
    );

    repo.restore_raw(&spec, &target, true).expect_success();
    assert_trees_equal(&src, &target.join("src"));

    // A second plain restore into the now complete target fails the same way.
    let again = repo.restore_raw(&spec, &target, false);
    assert_ne!(again.code(), Some(0));
    assert!(again.stderr.contains("--overwrite"), "{}", again.stderr);
    assert_eq!(
        fs::metadata(target.join("src/a.txt")).unwrap().mtime(),
        fs::metadata(src.join("a.txt")).unwrap().mtime()
    );
}

/// Extended attributes set, changed or removed between backups reach the next snapshot, and
/// a backup of unchanged files (which takes their attributes from the previous snapshot
/// instead of asking the file system) still has them all.
#[test]
fn xattr_changes_reach_the_next_backup_and_unchanged_files_keep_theirs() {
    let (_d, base) = temp_dir("yester-src");
    let src = base.join("src");
    fs::create_dir_all(src.join("sub")).unwrap();
    if let Err(e) = user_xattrs_supported(&base) {
        eprintln!("SKIPPING xattr_changes_reach_the_next_backup: {e}");
        return;
    }
    let (a, b, c) = (src.join("a"), src.join("sub/b"), src.join("c"));
    fs::write(&a, b"a\n").unwrap();
    fs::write(&b, b"b\n").unwrap();
    fs::write(&c, b"c\n").unwrap();
    xattr::set(&a, "user.k", b"1").unwrap();
    xattr::set(&b, "user.k", b"x").unwrap();
    xattr::set(&b, "user.other", b"y").unwrap();
    xattr::set(src.join("sub"), "user.dir", b"d").unwrap();

    let repo = Repo::new();
    // The listing assert_trees_equal compares holds every entry's attributes.
    let restored_equal = |id: &str| {
        let (_t, target) = temp_dir("yester-restore");
        repo.restore(&restore_spec(id, &src), &target);
        assert_trees_equal(&src, &target.join("src"));
    };
    restored_equal(&repo.backup("xattrs", &[&src]));

    // Only the attributes change (no write): the ctime moves, the size and mtime do not.
    xattr::set(&a, "user.k", b"2").unwrap();
    xattr::remove(&b, "user.k").unwrap();
    xattr::set(&c, "user.new", b"z").unwrap();
    restored_equal(&repo.backup("xattrs", &[&src]));

    // Nothing changed: every file's attributes come from the previous snapshot.
    let id3 = repo.backup("xattrs", &[&src]);
    let (_t, target) = temp_dir("yester-restore");
    repo.restore(&restore_spec(&id3, &src), &target);
    let r = target.join("src");
    assert_trees_equal(&src, &r);
    assert_eq!(
        xattr::get(r.join("a"), "user.k").unwrap().as_deref(),
        Some(&b"2"[..])
    );
    assert_eq!(xattr::get(r.join("sub/b"), "user.k").unwrap(), None);
    assert_eq!(
        xattr::get(r.join("sub/b"), "user.other")
            .unwrap()
            .as_deref(),
        Some(&b"y"[..])
    );
    assert_eq!(
        xattr::get(r.join("c"), "user.new").unwrap().as_deref(),
        Some(&b"z"[..])
    );
}

/// File capabilities (`security.capability`, as set by `setcap cap_net_raw+ep`) survive a
/// round trip as root. The kernel drops them on every chown, so a restore has to set
/// extended attributes after the owner.
#[test]
fn file_capabilities_survive_restore() {
    if !is_root() {
        eprintln!("SKIPPING file_capabilities_survive_restore: not running as root");
        return;
    }
    let (_d, base) = temp_dir("yester-src");
    let src = base.join("src");
    fs::create_dir(&src).unwrap();
    let ping = src.join("ping");
    fs::write(&ping, b"#!/bin/true\n").unwrap();
    std::os::unix::fs::lchown(&ping, Some(1234), Some(5678)).unwrap();
    fs::set_permissions(&ping, fs::Permissions::from_mode(0o755)).unwrap();
    xattr::set(&ping, "user.note", b"kept").unwrap();
    // struct vfs_cap_data, revision 2, effective, permitted = CAP_NET_RAW (13).
    let cap: [u8; 20] = [
        1, 0, 0, 2, 0, 0x20, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0,
    ];
    if let Err(e) = xattr::set(&ping, "security.capability", &cap) {
        eprintln!(
            "SKIPPING file_capabilities_survive_restore: cannot set security.capability here: {e}"
        );
        return;
    }
    set_mtime(&ping, 1_234_567_890, 42);
    set_mtime(&src, 1_234_567_891, 43);

    let repo = Repo::new();
    let id = repo.backup("caps", &[&src]);
    let (_t, target) = temp_dir("yester-restore");
    repo.restore(&restore_spec(&id, &src), &target);
    let restored = target.join("src/ping");
    assert_eq!(
        xattr::get(&restored, "security.capability").unwrap(),
        Some(cap.to_vec()),
        "security.capability was lost on restore (xattrs set before chown, which drops file capabilities?)"
    );
    assert_trees_equal(&src, &target.join("src"));
}

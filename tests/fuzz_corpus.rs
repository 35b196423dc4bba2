//! Hostile input to readers, on the stable toolchain: every fuzz target's checked-in corpus
//! (`fuzz/corpus/<target>/`) is replayed through the same check the cargo-fuzz target runs
//! (`fuzz/checks.rs`), then seeded random mutations of it (bit flips, byte sets, truncations,
//! deletions, insertions, duplications, splices, interesting integers) run for
//! `YESTER_FUZZ_SECS` seconds per target (default 3). Beyond "no panic" and the round trips
//! the checks assert, damaged copies of checksummed objects must be refused: index files and
//! snapshot records entirely, packs and blobs never yielding a byte that differs from the
//! original blob with that id. The NFS server's fixture repository must be unchanged after
//! every call. `YESTER_FUZZ_SEED` fixes the seed (printed on failure).
//!
//! The corpus and the fixture repository `fuzz/repo` are made by
//! `cargo test --test fuzz_corpus -- --ignored regenerate_fuzz_corpus` (see docs/RELIABILITY.md).
//!
//! Longer than 600 lines on purpose: each file under `tests/` is a test binary of its own that
//! links the whole crate, so these related tests share one file rather than adding a binary
//! (and its link time) to every run of the suite.

// Tests unwrap freely: a panic is how a test fails (the crate denies it elsewhere).
#![allow(clippy::unwrap_used, clippy::expect_used)]

#[path = "../fuzz/checks.rs"]
mod checks;
mod common;

use std::collections::{BTreeMap, HashMap};
use std::fs;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use yester::engine::format::compress::{decode_blob, Compression};
use yester::engine::format::config::{ChunkerParams, RepoConfig};
use yester::engine::format::id::{content_hash, BlobId, SnapshotId};
use yester::engine::format::index::decode_index_file;
use yester::engine::format::pack::{BlobKind, PackEntry};
use yester::engine::format::snapshot::{LinkTable, Snapshot};
use yester::engine::format::tree::HardlinkKey;
use yester::engine::LocalDir;
use yester::nfs::xdr::{Reader, Writer};

const TARGETS: [&str; 9] = [
    "pack",
    "blob",
    "index",
    "tree",
    "snapshot",
    "link_table",
    "config",
    "rpc",
    "nfs",
];

fn corpus_dir(target: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("fuzz/corpus")
        .join(target)
}

/// The checked-in corpus of a target, sorted by name so runs are reproducible.
fn corpus(target: &str) -> Vec<Vec<u8>> {
    let dir = corpus_dir(target);
    let mut names: Vec<PathBuf> = fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("{}: {e} (the corpus is checked in)", dir.display()))
        .map(|e| e.unwrap().path())
        .collect();
    names.sort();
    let out: Vec<Vec<u8>> = names.iter().map(|p| fs::read(p).unwrap()).collect();
    assert!(!out.is_empty(), "{}: empty corpus", dir.display());
    out
}

fn budget() -> Duration {
    let secs = std::env::var("YESTER_FUZZ_SECS")
        .ok()
        .and_then(|s| s.parse::<f64>().ok())
        .unwrap_or(3.0);
    Duration::from_secs_f64(secs)
}

/// xorshift64*: small, seeded, reproducible.
struct Rng(u64);

impl Rng {
    fn seeded(target: &str) -> (Rng, u64) {
        let seed = std::env::var("YESTER_FUZZ_SEED")
            .ok()
            .and_then(|s| s.parse().ok())
            .unwrap_or_else(|| {
                std::time::SystemTime::now()
                    .duration_since(std::time::UNIX_EPOCH)
                    .map_or(1, |d| d.as_nanos() as u64)
            });
        let mixed =
            seed ^ u64::from_le_bytes(content_hash(target.as_bytes())[..8].try_into().unwrap());
        (Rng(mixed | 1), seed)
    }
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }
    fn below(&mut self, n: usize) -> usize {
        if n == 0 {
            0
        } else {
            (self.next() % n as u64) as usize
        }
    }
}

const INTERESTING: [u32; 10] = [
    0,
    1,
    0x7f,
    0xff,
    0x100,
    0xffff,
    0x7fff_ffff,
    0x8000_0000,
    0xffff_fffe,
    0xffff_ffff,
];

/// One to four stacked mutations of `seed`, sometimes spliced with `other`.
fn mutate(rng: &mut Rng, seed: &[u8], other: &[u8]) -> Vec<u8> {
    let mut d = seed.to_vec();
    for _ in 0..1 + rng.below(4) {
        let len = d.len();
        match rng.below(9) {
            0 if len > 0 => {
                let i = rng.below(len);
                d[i] ^= 1 << rng.below(8);
            }
            1 if len > 0 => {
                let i = rng.below(len);
                d[i] = rng.next() as u8;
            }
            2 => d.truncate(rng.below(len + 1)),
            3 if len > 0 => {
                let a = rng.below(len);
                let b = (a + 1 + rng.below(16)).min(len);
                d.drain(a..b);
            }
            4 => {
                let at = rng.below(len + 1);
                let n = 1 + rng.below(8);
                let bytes: Vec<u8> = (0..n).map(|_| rng.next() as u8).collect();
                d.splice(at..at, bytes);
            }
            5 if len > 0 => {
                let a = rng.below(len);
                let b = (a + 1 + rng.below(64)).min(len);
                let chunk = d[a..b].to_vec();
                let at = rng.below(len + 1);
                d.splice(at..at, chunk);
            }
            6 => {
                let cut = rng.below(len + 1);
                let from = rng.below(other.len() + 1);
                d.truncate(cut);
                d.extend_from_slice(&other[from..]);
            }
            7 if len >= 4 => {
                let i = rng.below(len - 3);
                let v = INTERESTING[rng.below(INTERESTING.len())];
                let b = if rng.below(2) == 0 {
                    v.to_be_bytes()
                } else {
                    v.to_le_bytes()
                };
                d[i..i + 4].copy_from_slice(&b);
            }
            8 if len > 1 => {
                let a = rng.below(len);
                let b = rng.below(len);
                d[b] = d[a];
            }
            _ => d.push(rng.next() as u8),
        }
    }
    d
}

/// Replay the corpus, then mutate it for the time budget. `extra` adds target-specific
/// assertions on each (seed, mutant) pair. Returns (seeds accepted, executions, mutants
/// accepted).
fn run(
    target: &str,
    check: fn(&[u8]) -> bool,
    mut extra: impl FnMut(&[u8], &[u8]),
) -> (usize, u64, u64) {
    let seeds = corpus(target);
    let accepted_seeds = seeds.iter().filter(|s| check(s)).count();
    let (mut rng, seed) = Rng::seeded(target);
    let deadline = Instant::now() + budget();
    let (mut execs, mut accepted) = (0u64, 0u64);
    while Instant::now() < deadline {
        for _ in 0..32 {
            let s = &seeds[rng.below(seeds.len())];
            let o = &seeds[rng.below(seeds.len())];
            let m = mutate(&mut rng, s, o);
            let ok = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
                let ok = check(&m);
                extra(s, &m);
                ok
            }));
            match ok {
                Ok(true) => accepted += 1,
                Ok(false) => {}
                Err(_) => {
                    let path = std::env::temp_dir().join(format!("yester-fuzz-crash-{target}"));
                    let _ = fs::write(&path, &m);
                    panic!(
                        "{target}: check failed on a mutant (YESTER_FUZZ_SEED={seed}); input saved to {}",
                        path.display()
                    );
                }
            }
            execs += 1;
        }
    }
    eprintln!(
        "fuzz {target}: {} seeds ({accepted_seeds} accepted), {execs} mutants in {:?} ({accepted} accepted), seed {seed}",
        seeds.len(),
        budget()
    );
    (accepted_seeds, execs, accepted)
}

/// The list above, the cargo-fuzz targets and the corpus directories agree.
#[test]
fn every_target_has_a_fuzz_binary_and_a_corpus() {
    let manifest =
        fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("fuzz/Cargo.toml")).unwrap();
    for t in TARGETS {
        assert!(
            manifest.contains(&format!("path = \"fuzz_targets/{t}.rs\"")),
            "{t}: no [[bin]] in fuzz/Cargo.toml"
        );
        let src = fs::read_to_string(
            Path::new(env!("CARGO_MANIFEST_DIR")).join(format!("fuzz/fuzz_targets/{t}.rs")),
        )
        .unwrap();
        assert!(
            src.contains(&format!("checks::{t}(data)")),
            "{t}: the target does not run its check"
        );
        assert!(!corpus(t).is_empty());
    }
    let dirs = fs::read_dir(Path::new(env!("CARGO_MANIFEST_DIR")).join("fuzz/corpus"))
        .unwrap()
        .count();
    assert_eq!(dirs, TARGETS.len(), "a corpus directory without a target");
}

#[test]
fn fuzz_pack() {
    // Every blob any seed pack holds, by id: an accepted blob of a mutant must be one of them.
    let mut known: HashMap<BlobId, Vec<u8>> = HashMap::new();
    for s in corpus("pack") {
        for (e, raw) in checks::pack_blobs(&s).unwrap_or_default() {
            if let Some(raw) = raw {
                known.insert(e.id, raw);
            }
        }
    }
    assert!(!known.is_empty(), "no corpus pack decodes");
    let (ok, execs, _) = run("pack", checks::pack, |_, m| {
        for (e, raw) in checks::pack_blobs(m).unwrap_or_default() {
            if let Some(raw) = raw {
                assert_eq!(
                    known.get(&e.id),
                    Some(&raw),
                    "a damaged pack yielded bytes that are not the blob's"
                );
            }
        }
    });
    assert!(ok > 0 && execs > 0);
}

#[test]
fn fuzz_blob() {
    let key = yester::engine::format::id::BlobKey(checks::FUZZ_KEY);
    let decode = |d: &[u8]| -> Option<Vec<u8>> {
        if d.len() < 37 {
            return None;
        }
        let entry = PackEntry {
            id: BlobId(d.get(5..37)?.try_into().ok()?),
            kind: BlobKind::Data,
            compression: if d[0] & 1 == 0 {
                Compression::None
            } else {
                Compression::Zstd
            },
            offset: 8,
            stored_len: (d.len() - 37) as u32,
            raw_len: u32::from_le_bytes(d[1..5].try_into().ok()?),
        };
        decode_blob(&key, &entry, &d[37..], "t").ok()
    };
    let (ok, execs, _) = run("blob", checks::blob, |s, m| {
        // Same header (id, lengths), damaged stored bytes: never different bytes.
        if s.len() >= 37 && m.len() >= 37 && s[..37] == m[..37] && s != m {
            if let (Some(a), Some(b)) = (decode(s), decode(m)) {
                assert_eq!(a, b, "damaged blob bytes decoded to other bytes");
            }
        }
    });
    assert!(ok > 0 && execs > 0);
}

#[test]
fn fuzz_index() {
    let seeds = corpus("index");
    let (ok, execs, _) = run("index", checks::index, |s, m| {
        // A splice can rebuild another seed whole; anything else must be refused.
        if !seeds.iter().any(|x| x == m) && decode_index_file(s, "t").is_ok() {
            assert!(
                decode_index_file(m, "t").is_err(),
                "a damaged index file was accepted"
            );
        }
    });
    assert!(ok > 0 && execs > 0);
}

#[test]
fn fuzz_tree() {
    let (ok, execs, _) = run("tree", checks::tree, |_, _| {});
    assert!(ok > 0 && execs > 0);
}

#[test]
fn fuzz_snapshot() {
    let (ok, execs, _) = run("snapshot", checks::snapshot, |s, m| {
        if s != m {
            // Under the seed's name (its hash), every other byte string is refused.
            let id = SnapshotId(content_hash(s));
            assert!(
                Snapshot::decode(&id, m, "t").is_err(),
                "a damaged snapshot record was accepted under its name"
            );
        }
    });
    assert!(ok > 0 && execs > 0);
}

#[test]
fn fuzz_link_table() {
    let (ok, execs, _) = run("link_table", checks::link_table, |_, _| {});
    assert!(ok > 0 && execs > 0);
}

#[test]
fn fuzz_config() {
    let (ok, execs, _) = run("config", checks::config, |_, _| {});
    assert!(ok > 0 && execs > 0);
}

#[test]
fn fuzz_rpc() {
    let (ok, execs, _) = run("rpc", checks::rpc, |_, _| {});
    assert!(ok > 0 && execs > 0);
}

/// Every file of a directory tree with a hash of its bytes.
fn tree_state(root: &Path) -> BTreeMap<PathBuf, [u8; 32]> {
    let mut out = BTreeMap::new();
    let mut stack = vec![root.to_path_buf()];
    while let Some(d) = stack.pop() {
        for e in fs::read_dir(&d).unwrap() {
            let e = e.unwrap();
            if e.file_type().unwrap().is_dir() {
                stack.push(e.path());
            } else {
                out.insert(e.path(), content_hash(&fs::read(e.path()).unwrap()));
            }
        }
    }
    out
}

/// Accept status and NFS status of a reply (0, 0 for success).
fn reply_status(reply: &[u8]) -> Option<(u32, u32)> {
    let mut r = Reader::new(reply);
    let _xid = r.u32().ok()?;
    let _reply = r.u32().ok()?;
    let _accepted = r.u32().ok()?;
    let _verf = r.u32().ok()?;
    let _verf_body = r.opaque(400).ok()?;
    let stat = r.u32().ok()?;
    Some((stat, r.u32().unwrap_or(0)))
}

#[test]
fn fuzz_nfs() {
    let f = checks::nfs_fixture();
    let before = tree_state(&f.repo);
    // The corpus reaches the procedures: some READ calls from it are answered with data.
    let peer = checks::PEERS[0].parse().unwrap();
    let reads_ok = corpus("nfs")
        .iter()
        .filter(|c| {
            yester::nfs::rpc::parse_call(c).is_ok_and(|call| call.prog == 100003 && call.proc_ == 6)
                && f.service.call(peer, c).and_then(|r| reply_status(&r)) == Some((0, 0))
        })
        .count();
    assert!(
        reads_ok > 0,
        "no READ in the corpus succeeds: regenerate it (handles no longer match fuzz/repo)"
    );
    let (ok, execs, _) = run("nfs", checks::nfs, |_, _| {});
    assert!(ok > 0 && execs > 0);
    assert_eq!(
        tree_state(&f.repo),
        before,
        "serving NFS changed the repository"
    );
    let _ = fs::remove_dir_all(f.repo.parent().unwrap());
}

// ---------------------------------------------------------------------------------------
// Making the fixture repository and the corpus
// ---------------------------------------------------------------------------------------

fn rpc_call(xid: u32, prog: u32, vers: u32, proc_: u32, uid: Option<u32>, args: &[u8]) -> Vec<u8> {
    let mut w = Writer::default();
    w.u32(xid).u32(0).u32(2).u32(prog).u32(vers).u32(proc_);
    match uid {
        Some(uid) => {
            let mut b = Writer::default();
            b.u32(7)
                .opaque(b"fuzzhost")
                .u32(uid)
                .u32(uid)
                .u32(2)
                .u32(uid)
                .u32(4);
            w.u32(1).opaque(&b.buf);
        }
        None => {
            w.u32(0).opaque(&[]);
        }
    }
    w.u32(0).opaque(&[]);
    w.buf.extend_from_slice(args);
    w.buf
}

/// Calls for the NFS corpus, walking the fixture's view: MOUNT, then every procedure on the
/// nodes found by READDIR and LOOKUP.
fn nfs_calls() -> Vec<Vec<u8>> {
    const NFS: u32 = 100003;
    const MNT: u32 = 100005;
    let f = checks::nfs_fixture();
    let peer = checks::PEERS[0].parse().unwrap();
    let mut xid = 0u32;
    let mut calls = Vec::new();
    let mut ask = |prog: u32, proc_: u32, uid: Option<u32>, args: &[u8]| -> Vec<u8> {
        xid += 1;
        let c = rpc_call(xid, prog, 3, proc_, uid, args);
        let reply = f.service.call(peer, &c).unwrap_or_default();
        calls.push(c);
        reply
    };
    let opaque = |b: &[u8]| {
        let mut w = Writer::default();
        w.opaque(b);
        w.buf
    };
    // Results start after the RPC reply header (24 bytes) and the status word.
    let body = |reply: &[u8]| -> Option<Vec<u8>> {
        (reply_status(reply)? == (0, 0)).then(|| reply[28..].to_vec())
    };
    let root = ask(MNT, 1, Some(0), &opaque(b"/"));
    let root_fh = Reader::new(&root[28..]).opaque(64).unwrap().to_vec();
    ask(MNT, 0, None, &[]);
    ask(MNT, 1, Some(1000), &opaque(b"/nonexistent/../x"));
    ask(MNT, 2, Some(0), &[]);
    ask(MNT, 3, Some(0), &opaque(b"/"));
    ask(MNT, 5, None, &[]);
    ask(NFS, 0, None, &[]);
    let mut todo = vec![(root_fh, 2u32)]; // (handle, ftype) — 2 is a directory
    let mut seen = 0;
    while let Some((fh, ftype)) = todo.pop() {
        seen += 1;
        let h = opaque(&fh);
        ask(NFS, 1, Some(0), &h);
        ask(
            NFS,
            4,
            Some(1000),
            &[h.clone(), 0x3fu32.to_be_bytes().to_vec()].concat(),
        );
        match ftype {
            2 => {
                let mut rd = h.clone();
                rd.extend_from_slice(&[0; 16]); // cookie, verifier
                rd.extend_from_slice(&8192u32.to_be_bytes());
                let reply = ask(NFS, 16, Some(0), &rd);
                let mut plus = h.clone();
                plus.extend_from_slice(&[0; 16]);
                plus.extend_from_slice(&1024u32.to_be_bytes());
                plus.extend_from_slice(&16384u32.to_be_bytes());
                ask(NFS, 17, Some(0), &plus);
                let mut names = Vec::new();
                if let Some(b) = body(&reply) {
                    let mut r = Reader::new(&b);
                    if r.u32().unwrap() == 1 {
                        r.fixed(84).unwrap();
                    }
                    r.fixed(8).unwrap();
                    while r.bool().unwrap() {
                        let _fileid = r.u64().unwrap();
                        names.push(r.opaque(255).unwrap().to_vec());
                        let _cookie = r.u64().unwrap();
                    }
                }
                for n in [&b"."[..], b"..", b"no-such-name"] {
                    ask(NFS, 3, Some(0), &[h.clone(), opaque(n)].concat());
                }
                for n in names.iter().filter(|n| !n.starts_with(b".")) {
                    let reply = ask(NFS, 3, Some(0), &[h.clone(), opaque(n)].concat());
                    if let Some(b) = body(&reply) {
                        let mut r = Reader::new(&b);
                        let child = r.opaque(64).unwrap().to_vec();
                        let kind = if r.u32().unwrap() == 1 {
                            r.u32().unwrap()
                        } else {
                            0
                        };
                        if seen + todo.len() < 40 {
                            todo.push((child, kind));
                        }
                    }
                }
            }
            1 => {
                for (off, count) in [(0u64, 4096u32), (10_000, 100), (u64::MAX - 5, 10)] {
                    let mut a = h.clone();
                    a.extend_from_slice(&off.to_be_bytes());
                    a.extend_from_slice(&count.to_be_bytes());
                    ask(NFS, 6, Some(1000), &a);
                }
            }
            5 => {
                ask(NFS, 5, Some(0), &h);
            }
            _ => {}
        }
        if seen == 1 {
            for p in [18, 19, 20, 2, 7, 8, 12, 14, 15, 21, 99] {
                ask(NFS, p, Some(0), &[h.clone(), vec![0; 16]].concat());
            }
        }
    }
    // Wrong versions, programs and message types, and a long credential.
    calls.push(rpc_call(90, NFS, 2, 1, None, &[]));
    calls.push(rpc_call(91, 100000, 2, 0, None, &[]));
    let mut bad_rpc = rpc_call(92, NFS, 3, 0, None, &[]);
    bad_rpc[8..12].copy_from_slice(&3u32.to_be_bytes());
    calls.push(bad_rpc);
    let mut reply_msg = rpc_call(93, NFS, 3, 0, None, &[]);
    reply_msg[4..8].copy_from_slice(&1u32.to_be_bytes());
    calls.push(reply_msg);
    let mut w = Writer::default();
    w.u32(94).u32(0).u32(2).u32(NFS).u32(3).u32(0).u32(1);
    let mut b = Writer::default();
    b.u32(0).opaque(&[b'm'; 255]).u32(1).u32(1).u32(16);
    for g in 0..16 {
        b.u32(g);
    }
    w.opaque(&b.buf).u32(0).opaque(&[]);
    calls.push(w.buf);
    calls
}

/// Write `items` as the corpus of `target`, replacing the old one; files are named by hash.
fn write_corpus(target: &str, items: &[Vec<u8>]) {
    let dir = corpus_dir(target);
    let _ = fs::remove_dir_all(&dir);
    fs::create_dir_all(&dir).unwrap();
    for it in items {
        fs::write(dir.join(hex::encode(&content_hash(it)[..10])), it).unwrap();
    }
    eprintln!("{target}: {} inputs", items.len());
}

fn files_under(root: &Path) -> Vec<PathBuf> {
    let mut v: Vec<PathBuf> = tree_state(root).into_keys().collect();
    v.sort();
    v
}

/// Make `fuzz/repo` (a real repository: two backups of a small tree with every kind of
/// entry) and the corpus of every target from it. Run by hand after a format change:
/// `cargo test --test fuzz_corpus -- --ignored regenerate_fuzz_corpus`.
#[test]
#[ignore]
fn regenerate_fuzz_corpus() {
    use std::os::unix::fs::symlink;
    let (_t, tmp) = common::temp_dir("yester-fuzz-gen");
    let src = tmp.join("src");
    fs::create_dir_all(src.join("etc/nginx")).unwrap();
    fs::write(
        src.join("etc/hosts"),
        "127.0.0.1 localhost\n::1 localhost\n",
    )
    .unwrap();
    fs::write(
        src.join("etc/nginx/nginx.conf"),
        "worker_processes 2;\n".repeat(300),
    )
    .unwrap();
    let noise: Vec<u8> = (0..12_000u32)
        .map(|i| (i.wrapping_mul(2_654_435_761) >> 13) as u8)
        .collect();
    fs::write(src.join("etc/blob.bin"), &noise).unwrap();
    fs::write(src.join("etc/empty"), "").unwrap();
    fs::hard_link(src.join("etc/hosts"), src.join("etc/hosts.link")).unwrap();
    symlink("nginx/nginx.conf", src.join("etc/conf.link")).unwrap();
    nix::unistd::mkfifo(
        &src.join("etc/pipe"),
        nix::sys::stat::Mode::from_bits_truncate(0o600),
    )
    .unwrap();
    let _ = xattr::set(src.join("etc/hosts"), "user.fuzz", b"v");
    fs::set_permissions(
        src.join("etc/empty"),
        std::os::unix::fs::PermissionsExt::from_mode(0o600),
    )
    .unwrap();

    let repo = tmp.join("repo");
    let mut cfg = RepoConfig::new(ChunkerParams::from_avg(4096).unwrap(), 3).unwrap();
    cfg.blob_key = hex::encode(checks::FUZZ_KEY);
    cfg.id = "00112233445566778899aabbccddeeff".into();
    cfg.created = "2026-11-21T12:00:00Z".into();
    cfg.pack_size = 64 * 1024;
    yester::points::set_levels(&mut cfg, &yester::points::default_levels()).unwrap();
    yester::engine::Repository::init(Arc::new(LocalDir::new(&repo)), cfg).unwrap();
    let r = repo.to_str().unwrap();
    let etc = src.join("etc");
    common::yester(["-r", r, "backup", "--source", "web1", etc.to_str().unwrap()]).expect_success();
    fs::write(src.join("etc/hosts"), "10.0.0.1 web1\n").unwrap();
    common::yester(["-r", r, "backup", "--source", "web1", etc.to_str().unwrap()]).expect_success();
    common::yester(["-r", r, "rotate", "daily"]).expect_success();

    let fixture = Path::new(env!("CARGO_MANIFEST_DIR")).join("fuzz/repo");
    let _ = fs::remove_dir_all(&fixture);
    for p in files_under(&repo) {
        let rel = p.strip_prefix(&repo).unwrap();
        if rel.starts_with("locks") {
            continue;
        }
        fs::create_dir_all(fixture.join(rel).parent().unwrap()).unwrap();
        fs::copy(&p, fixture.join(rel)).unwrap();
    }

    let read_dir = |sub: &str| -> Vec<Vec<u8>> {
        files_under(&fixture.join(sub))
            .iter()
            .map(|p| fs::read(p).unwrap())
            .collect()
    };
    let packs = read_dir("packs");
    let snapshots = read_dir("snapshots");
    write_corpus("config", &[fs::read(fixture.join("config")).unwrap()]);
    write_corpus("index", &read_dir("index"));
    write_corpus("snapshot", &snapshots);
    write_corpus("pack", &packs);
    let links: Vec<BlobId> = snapshots
        .iter()
        .filter_map(|s| serde_json::from_slice::<Snapshot>(s).ok()?.links)
        .collect();
    let (mut blobs, mut trees, mut tables) = (Vec::new(), Vec::new(), Vec::new());
    for p in &packs {
        for (e, raw) in checks::pack_blobs(p).expect("a fixture pack decodes") {
            let raw = raw.expect("a fixture blob decodes");
            let mut b = vec![e.compression.code()];
            b.extend_from_slice(&e.raw_len.to_le_bytes());
            b.extend_from_slice(&e.id.0);
            b.extend_from_slice(&p[e.offset as usize..(e.offset + e.stored_len) as usize]);
            if blobs.len() < 16 || e.kind == BlobKind::Tree {
                blobs.push(b);
            }
            if e.kind == BlobKind::Tree {
                trees.push(raw);
            } else if links.contains(&e.id) {
                tables.push(raw);
            }
        }
    }
    let mut big = LinkTable::default();
    for i in 0..5u64 {
        big.counts.insert(
            HardlinkKey {
                dev: 2049,
                ino: 1 << (i * 9),
            },
            i + 2,
        );
    }
    tables.push(big.encode());
    write_corpus("blob", &blobs);
    write_corpus("tree", &trees);
    write_corpus("link_table", &tables);
    let calls = nfs_calls();
    write_corpus("rpc", &calls);
    write_corpus("nfs", &calls);
    assert!(
        !trees.is_empty() && tables.len() > 1,
        "the fixture has trees and a link table"
    );
    let _ = fs::remove_dir_all(checks::nfs_fixture().repo.parent().unwrap());
}

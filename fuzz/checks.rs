//! The per-target checks of the fuzz targets, shared by `fuzz/fuzz_targets/*.rs` (cargo-fuzz,
//! coverage-guided) and `tests/fuzz_corpus.rs` (stable toolchain, corpus replay and seeded
//! mutations), so both run the same oracle. Included by `#[path]` from both; it depends only on
//! `yester` and std.
//!
//! Each check feeds one input to one decoder and panics only when the decoder breaks a promise:
//! it panicked itself, it accepted something it must refuse, or what it decoded does not
//! survive a round trip (`decode(encode(x)) == x`). Each returns whether the input was accepted
//! as it is, so callers can count, and assert that damaged copies of checksummed objects are
//! refused. Where a checksum stands between the fuzzer and the parser (pack trailers, index
//! files, snapshot records), the check also decodes a copy with the checksum recomputed, so
//! mutations reach the parser behind it.
#![allow(dead_code)] // each fuzz target uses one check

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use yester::engine::format::codec::Encoder;
use yester::engine::format::compress::{decode_blob, Compression, EncodedBlob};
use yester::engine::format::config::RepoConfig;
use yester::engine::format::id::{content_hash, BlobId, BlobKey, PackId, SnapshotId};
use yester::engine::format::index::{decode_index_file, encode_index_file};
use yester::engine::format::pack::{
    encode_entries, parse_entries, read_trailer, BlobKind, PackEntry, ENTRY_LEN, FOOTER_LEN,
    PACK_MAGIC,
};
use yester::engine::format::snapshot::{check_source_name, LinkTable, Snapshot};
use yester::engine::format::tree::Tree;
use yester::engine::{Backend, Kind, LocalDir, MemoryBackend};
use yester::nfs::rpc::{self, Cred};
use yester::nfs::xdr::Writer;
use yester::nfs::{Exports, HandleKey, Service};
use yester::vfs::{Node, Vfs, VfsOptions};

/// The blob key of the fixture repository (`fuzz/repo`); its packs and blobs are keyed with it.
pub const FUZZ_KEY: [u8; 32] = *b"yester-fuzz-fixture-blob-key-32b";
/// The NFS handle key the fixture server signs with, so corpus handles stay valid.
pub const HANDLE_KEY: [u8; 32] = *b"yester-fuzz-fixture-handle-key!!";
/// Largest raw length the blob target asks zstd for (the real limit is a chunk's maximum size;
/// more only makes the fuzzer allocate).
const MAX_FUZZ_RAW: u32 = 1 << 22;

fn key() -> BlobKey {
    BlobKey(FUZZ_KEY)
}

/// Read a pack's trailer and decode every blob it lists. `None` if the trailer is refused;
/// otherwise each entry with its bytes, or `None` for a blob that was refused.
pub fn pack_blobs(data: &[u8]) -> Option<Vec<(PackEntry, Option<Vec<u8>>)>> {
    let id = PackId(content_hash(data));
    // An object store holding just this pack.
    let one_pack = MemoryBackend::new();
    one_pack.put(Kind::Pack, &id.to_hex(), data).ok()?;
    let entries = read_trailer(&one_pack, &id).ok()?;
    let data_end = data
        .len()
        .saturating_sub(FOOTER_LEN + entries.len() * ENTRY_LEN) as u64;
    // Round trip of the entry table (the two reserved bytes are not kept, so compare decoded).
    let mut e = Encoder::new();
    encode_entries(&entries, &mut e);
    let again = parse_entries(&e.buf, data_end, "fuzz").expect("re-encoded entries decode");
    assert_eq!(again, entries, "entry table round trip");
    let key = key();
    let mut out = Vec::with_capacity(entries.len());
    for en in entries {
        let start = en.offset as usize;
        let stored = data
            .get(start..start + en.stored_len as usize)
            .expect("a trailer entry points outside its pack");
        assert!(start >= PACK_MAGIC.len() && (start + stored.len()) as u64 <= data_end);
        let raw = decode_blob(&key, &en, stored, "fuzz").ok();
        if let Some(raw) = &raw {
            assert_eq!(raw.len(), en.raw_len as usize);
            assert_eq!(
                key.blob_id(raw),
                en.id,
                "a blob was accepted with the wrong id"
            );
            match en.kind {
                BlobKind::Tree => {
                    tree(raw);
                }
                BlobKind::Data => {
                    link_table(raw);
                }
            }
        }
        out.push((en, raw));
    }
    Some(out)
}

/// The same pack with its trailer checksum recomputed, if it has a readable footer.
fn with_fixed_trailer_sum(data: &[u8]) -> Option<Vec<u8>> {
    let footer = data.len().checked_sub(FOOTER_LEN)?;
    let count = u32::from_le_bytes(data[footer..footer + 4].try_into().ok()?);
    let table = footer.checked_sub((count as usize).checked_mul(ENTRY_LEN)?)?;
    let mut summed = data[table..footer].to_vec();
    summed.extend_from_slice(&count.to_le_bytes());
    let mut fixed = data.to_vec();
    fixed[footer + 8..footer + 40].copy_from_slice(&content_hash(&summed));
    Some(fixed)
}

/// Pack file: trailer, entry table and every blob in it.
pub fn pack(data: &[u8]) -> bool {
    let accepted = pack_blobs(data).is_some();
    if let Some(fixed) = with_fixed_trailer_sum(data) {
        if fixed != data {
            pack_blobs(&fixed);
        }
    }
    accepted
}

/// Blob: `[compression code][raw_len u32 LE][id 32 bytes][stored bytes…]`, as in a pack entry.
pub fn blob(data: &[u8]) -> bool {
    if data.len() < 37 {
        return false;
    }
    let compression = if data[0] & 1 == 0 {
        Compression::None
    } else {
        Compression::Zstd
    };
    let raw_len = u32::from_le_bytes([data[1], data[2], data[3], data[4]]) % (MAX_FUZZ_RAW + 1);
    let id = BlobId(data[5..37].try_into().expect("32 bytes"));
    let stored = &data[37..];
    let entry = PackEntry {
        id,
        kind: BlobKind::Data,
        compression,
        offset: 8,
        stored_len: stored.len() as u32,
        raw_len,
    };
    let key = key();
    let accepted = match decode_blob(&key, &entry, stored, "fuzz") {
        Ok(raw) => {
            assert_eq!(raw.len(), raw_len as usize);
            assert_eq!(
                key.blob_id(&raw),
                id,
                "a blob was accepted with the wrong id"
            );
            true
        }
        Err(_) => false,
    };
    // Round trip: the stored bytes as a raw blob, encoded (compressed or kept) and decoded.
    let enc = EncodedBlob::encode(&key, BlobKind::Data, stored, 1).expect("encode");
    let entry = PackEntry {
        id: enc.id,
        kind: enc.kind,
        compression: enc.compression,
        offset: 8,
        stored_len: enc.bytes.len() as u32,
        raw_len: enc.raw_len,
    };
    let raw = decode_blob(&key, &entry, &enc.bytes, "fuzz").expect("an encoded blob decodes");
    assert_eq!(raw, stored, "blob round trip");
    accepted
}

/// Index file, as it is and with its checksum recomputed.
pub fn index(data: &[u8]) -> bool {
    let accepted = index_once(data);
    if data.len() >= 32 {
        let body = &data[..data.len() - 32];
        let mut fixed = body.to_vec();
        fixed.extend_from_slice(&content_hash(body));
        if fixed != data {
            index_once(&fixed);
        }
    }
    accepted
}

fn index_once(data: &[u8]) -> bool {
    let Ok(packs) = decode_index_file(data, "fuzz") else {
        return false;
    };
    let (_, bytes) = encode_index_file(&packs);
    let again = decode_index_file(&bytes, "fuzz").expect("a re-encoded index file decodes");
    assert_eq!(again, packs, "index file round trip");
    true
}

/// Tree blob (raw, decompressed bytes).
pub fn tree(data: &[u8]) -> bool {
    let Ok(t) = Tree::decode(data, "fuzz") else {
        return false;
    };
    for e in &t.entries {
        let _ = (e.st_mode(), e.display_name());
        assert!(t.get(&e.name).is_some(), "entries are sorted and unique");
    }
    let again = Tree::decode(&t.encode(), "fuzz").expect("a re-encoded tree decodes");
    assert_eq!(again, t, "tree round trip");
    true
}

/// Snapshot record: under its own name (the hash of its bytes), so the JSON is parsed, and
/// under another name, which must always be refused.
pub fn snapshot(data: &[u8]) -> bool {
    let id = SnapshotId(content_hash(data));
    let mut wrong = id;
    wrong.0[0] ^= 1;
    assert!(
        Snapshot::decode(&wrong, data, "fuzz").is_err(),
        "a snapshot record was accepted under a name that is not its hash"
    );
    let Ok(s) = Snapshot::decode(&id, data, "fuzz") else {
        return false;
    };
    let _ = (s.timestamp(), s.unix_time(), check_source_name(&s.source));
    let (id2, bytes) = s.encode().expect("a decoded snapshot encodes");
    let again = Snapshot::decode(&id2, &bytes, "fuzz").expect("a re-encoded snapshot decodes");
    assert_eq!(again, s, "snapshot round trip");
    true
}

/// Hard-link table blob.
pub fn link_table(data: &[u8]) -> bool {
    let Ok(t) = LinkTable::decode(data, "fuzz") else {
        return false;
    };
    let again = LinkTable::decode(&t.encode(), "fuzz").expect("a re-encoded link table decodes");
    assert_eq!(again, t, "link table round trip");
    true
}

/// Repository config.
pub fn config(data: &[u8]) -> bool {
    let Ok(c) = RepoConfig::decode(data, "fuzz") else {
        return false;
    };
    c.key().expect("an accepted config has a usable key");
    let bytes = serde_json::to_vec_pretty(&c).expect("a config encodes");
    let again = RepoConfig::decode(&bytes, "fuzz").expect("a re-encoded config decodes");
    assert_eq!(
        serde_json::to_value(&again).ok(),
        serde_json::to_value(&c).ok(),
        "config round trip"
    );
    true
}

/// ONC RPC call record (after record marking): header and AUTH_SYS credentials.
pub fn rpc(data: &[u8]) -> bool {
    let Ok(call) = rpc::parse_call(data) else {
        return false;
    };
    // Re-encode what was decoded (machine name and stamp are not kept) and decode again.
    let mut w = Writer::default();
    w.u32(call.xid).u32(0).u32(2).u32(call.prog).u32(call.vers);
    w.u32(call.proc_);
    match &call.cred {
        Cred::None => {
            w.u32(0).opaque(&[]);
        }
        Cred::Sys { uid, gid, gids } => {
            let mut body = Writer::default();
            body.u32(0).opaque(&[]).u32(*uid).u32(*gid);
            body.u32(gids.len() as u32);
            for g in gids {
                body.u32(*g);
            }
            w.u32(1).opaque(&body.buf);
        }
    }
    w.u32(0).opaque(&[]);
    w.buf.extend_from_slice(call.args);
    let again = rpc::parse_call(&w.buf)
        .ok()
        .expect("a re-encoded call decodes");
    assert_eq!(
        (again.xid, again.prog, again.vers, again.proc_),
        (call.xid, call.prog, call.vers, call.proc_)
    );
    assert_eq!(again.cred, call.cred, "credentials round trip");
    assert_eq!(again.args, call.args);
    true
}

/// The NFS server over the fixture repository.
pub struct NfsFixture {
    pub service: Service,
    pub vfs: Arc<Vfs>,
    /// The copy of `fuzz/repo` being served (compare it before and after: nothing may write).
    pub repo: PathBuf,
}

/// Where the checked-in fixture repository is (from the main crate or from `fuzz/`).
pub fn fixture_source() -> PathBuf {
    let base = Path::new(env!("CARGO_MANIFEST_DIR"));
    [base.join("repo"), base.join("fuzz/repo")]
        .into_iter()
        .find(|p| p.join("config").is_file())
        .unwrap_or_else(|| base.join("fuzz/repo"))
}

fn copy_tree(from: &Path, to: &Path) -> std::io::Result<()> {
    std::fs::create_dir_all(to)?;
    for e in std::fs::read_dir(from)? {
        let e = e?;
        if e.file_type()?.is_dir() {
            copy_tree(&e.path(), &to.join(e.file_name()))?;
        } else {
            std::fs::copy(e.path(), to.join(e.file_name()))?;
        }
    }
    Ok(())
}

/// The fixture server, made once per process from a copy of `fuzz/repo` in the temp dir.
pub fn nfs_fixture() -> &'static NfsFixture {
    static F: OnceLock<NfsFixture> = OnceLock::new();
    F.get_or_init(|| {
        let dir = std::env::temp_dir().join(format!("yester-fuzz-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        let repo = dir.join("repo");
        copy_tree(&fixture_source(), &repo).expect("copy the fixture repository");
        let key_path = dir.join("handle.key");
        std::fs::write(&key_path, HANDLE_KEY).expect("write the handle key");
        let key = HandleKey::load_or_create(&key_path).expect("handle key");
        let r = yester::engine::Repository::open(Arc::new(LocalDir::new(&repo)))
            .expect("open the fixture repository");
        let vfs = Arc::new(
            Vfs::new(
                r,
                VfsOptions {
                    cache_bytes: 16 << 20,
                    tree_cache_bytes: 4 << 20,
                    refresh: Duration::from_secs(1 << 20),
                    prefetch: 0,
                    ..VfsOptions::default()
                },
            )
            .expect("open the view"),
        );
        NfsFixture {
            service: Service::new(vfs.clone(), Exports::loopback_only(), key),
            vfs,
            repo,
        }
    })
}

/// Peers the record is answered for: an exported client on a privileged port, the same on an
/// unprivileged port, and a client outside the exports.
pub const PEERS: [&str; 3] = ["127.0.0.1:700", "127.0.0.1:40000", "10.1.2.3:700"];

/// NFSv3 and MOUNT call record, answered by the server over the fixture repository: RPC
/// header, credentials and every procedure's arguments. Also the same bytes as a decoded file
/// handle body (as if the handle key had leaked), through the view's node lookup.
pub fn nfs(data: &[u8]) -> bool {
    let f = nfs_fixture();
    let mut answered = false;
    for peer in PEERS {
        let peer: SocketAddr = peer.parse().expect("peer address");
        if let Some(reply) = f.service.call(peer, data) {
            assert_eq!(
                reply.get(..4),
                data.get(..4),
                "a reply carries the call's xid"
            );
            assert!(reply.len() <= rpc::MAX_RECORD, "reply larger than a record");
            answered = true;
        }
    }
    if let Ok(node) = f.vfs.decode_node(data) {
        node_ops(&f.vfs, &node);
    }
    answered
}

fn node_ops(vfs: &Vfs, node: &Node) {
    let Ok(a) = vfs.getattr(node) else { return };
    let _ = vfs.readlink(node);
    let _ = vfs.xattrs(node);
    if let Ok(d) = vfs.readdir(node) {
        for i in 0..d.len().min(4) {
            if let Some((name, _, _)) = d.item(i) {
                let _ = vfs.lookup(node, name);
            }
        }
    }
    if a.kind == yester::engine::format::tree::NodeKind::File {
        if let Ok(file) = vfs.open(node) {
            let _ = vfs.read(&file, 0, 4096);
            let _ = vfs.read(&file, a.size.saturating_sub(10), 4096);
        }
    }
}

//! Snapshot records (`snapshots/<id>`, JSON). Format: docs/FORMAT.md, "Snapshot records".

use serde::{Deserialize, Serialize};

use super::id::{content_hash, BlobId, SnapshotId};
use crate::engine::error::{Error, Result};
use crate::engine::store::{list_names, Backend, Kind};

/// Version of the snapshot record layout.
pub const SNAPSHOT_VERSION: u32 = 1;

/// Check a source name: it is a path component of the view (`daily.0/<source>`), so it must be
/// non-empty, without `/` or NUL, and not start with `.`.
pub fn check_source_name(s: &str) -> Result<()> {
    if !s.is_empty() && !s.contains('/') && !s.contains('\0') && !s.starts_with('.') {
        Ok(())
    } else {
        Err(Error::Invalid(format!(
            "source name {s:?} must be non-empty, without '/', and not start with '.'"
        )))
    }
}

/// Counts and sizes recorded by a backup.
#[derive(Clone, Debug, Default, Serialize, Deserialize, PartialEq)]
pub struct SnapshotStats {
    pub files: u64,
    pub dirs: u64,
    /// Symlinks, FIFOs, sockets and devices.
    pub others: u64,
    /// Sum of the sizes of all files in the snapshot.
    pub total_bytes: u64,
    /// Bytes read from files during the backup.
    pub bytes_read: u64,
    /// Files not read again because they were unchanged since the previous snapshot.
    #[serde(default)]
    pub files_unchanged: u64,
    /// New blobs written by this backup.
    pub blobs_added: u64,
    /// Raw size of the new blobs.
    pub bytes_added: u64,
    /// Size of the new blobs as stored (after compression).
    pub stored_bytes_added: u64,
    /// Wall-clock duration of the backup in seconds.
    pub duration_secs: f64,
}

/// A snapshot: one backup of one source at one time.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
pub struct Snapshot {
    pub version: u32,
    /// Start time of the backup, RFC 3339 UTC with nanoseconds.
    pub time: String,
    pub hostname: String,
    /// The source name (`--source`), usually a host name.
    pub source: String,
    /// The absolute paths that were backed up.
    pub paths: Vec<String>,
    /// Root tree: the contents of `/` restricted to `paths`.
    pub tree: BlobId,
    pub stats: SnapshotStats,
    /// Problems met during the backup (unreadable or changing files).
    pub warnings: Vec<String>,
    /// Blob holding the link counts of hard-linked files within this snapshot (see
    /// [`LinkTable`]); absent when the snapshot has no hard links.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub links: Option<BlobId>,
}

/// How many names each hard-linked file has inside one snapshot, so that mounts report the
/// link count the snapshot really shows. Encoding: docs/FORMAT.md, "Link tables".
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct LinkTable {
    pub counts: std::collections::BTreeMap<super::tree::HardlinkKey, u64>,
}

impl LinkTable {
    pub fn encode(&self) -> Vec<u8> {
        let mut e = super::codec::Encoder::new();
        e.u8(1);
        e.uvarint(self.counts.len() as u64);
        for (k, n) in &self.counts {
            e.uvarint(k.dev);
            e.uvarint(k.ino);
            e.uvarint(*n);
        }
        e.buf
    }

    pub fn decode(bytes: &[u8], object: &str) -> Result<Self> {
        let mut d = super::codec::Decoder::new(bytes, object);
        if d.u8()? != 1 {
            return Err(d.err("unknown link table version"));
        }
        let n = d.count(3)?;
        let mut counts = std::collections::BTreeMap::new();
        for _ in 0..n {
            let key = super::tree::HardlinkKey {
                dev: d.uvarint()?,
                ino: d.uvarint()?,
            };
            counts.insert(key, d.uvarint()?);
        }
        if !d.is_empty() {
            return Err(d.err("trailing bytes"));
        }
        Ok(LinkTable { counts })
    }
}

impl Snapshot {
    /// Encode to the stored JSON bytes and the id they hash to.
    pub fn encode(&self) -> Result<(SnapshotId, Vec<u8>)> {
        let bytes = serde_json::to_vec_pretty(self).map_err(|e| Error::Invalid(e.to_string()))?;
        Ok((SnapshotId(content_hash(&bytes)), bytes))
    }

    /// Parse stored bytes and check they hash to `id`.
    pub fn decode(id: &SnapshotId, bytes: &[u8], object: &str) -> Result<Self> {
        if SnapshotId(content_hash(bytes)) != *id {
            return Err(Error::corrupt(
                object,
                "snapshot record does not match its name (damaged)",
            ));
        }
        let v: serde_json::Value =
            serde_json::from_slice(bytes).map_err(|e| Error::corrupt(object, e))?;
        let version = v.get("version").and_then(|x| x.as_u64()).unwrap_or(0);
        if version != u64::from(SNAPSHOT_VERSION) {
            return Err(Error::UnsupportedVersion {
                object: object.to_string(),
                found: u32::try_from(version).unwrap_or(u32::MAX),
                supported: SNAPSHOT_VERSION,
            });
        }
        serde_json::from_value(v).map_err(|e| Error::corrupt(object, e))
    }

    /// Time as seconds since the epoch (0 if unparsable, which decode prevents in practice).
    pub fn unix_time(&self) -> i64 {
        self.timestamp().secs
    }

    /// Time with nanoseconds (zero if unparsable, which decode prevents in practice).
    pub fn timestamp(&self) -> super::tree::Timestamp {
        let d = humantime::parse_rfc3339(&self.time)
            .ok()
            .and_then(|t| t.duration_since(std::time::UNIX_EPOCH).ok())
            .unwrap_or_default();
        super::tree::Timestamp {
            secs: d.as_secs() as i64,
            nanos: d.subsec_nanos(),
        }
    }

    /// Store it; the snapshot becomes visible at this moment.
    pub fn save(&self, backend: &dyn Backend) -> Result<SnapshotId> {
        let (id, bytes) = self.encode()?;
        backend.put(Kind::Snapshot, &id.to_hex(), &bytes)?;
        Ok(id)
    }
}

/// A snapshot with its id.
#[derive(Clone, Debug)]
pub struct SnapshotEntry {
    pub id: SnapshotId,
    pub snapshot: Snapshot,
}

/// All readable snapshots, oldest first, and the errors of those that are not readable.
pub fn load_all(backend: &dyn Backend) -> Result<(Vec<SnapshotEntry>, Vec<Error>)> {
    load_all_reusing(backend, &[])
}

/// As [`load_all`], taking records already parsed from `known` (records never change, so a
/// long-running reader only reads the new ones).
pub fn load_all_reusing(
    backend: &dyn Backend,
    known: &[SnapshotEntry],
) -> Result<(Vec<SnapshotEntry>, Vec<Error>)> {
    let known: std::collections::HashMap<SnapshotId, &SnapshotEntry> =
        known.iter().map(|e| (e.id, e)).collect();
    let mut ok = Vec::new();
    let mut bad = Vec::new();
    for name in list_names(backend, Kind::Snapshot)? {
        let object = backend.describe(Kind::Snapshot, &name);
        if let Some(e) = SnapshotId::from_hex(&name)
            .ok()
            .and_then(|id| known.get(&id))
        {
            ok.push((*e).clone());
            continue;
        }
        let res = SnapshotId::from_hex(&name)
            .map_err(|_| Error::corrupt(&object, "unexpected file name in snapshots/"))
            .and_then(|id| {
                let bytes = backend.get(Kind::Snapshot, &name)?;
                Ok(SnapshotEntry {
                    id,
                    snapshot: Snapshot::decode(&id, &bytes, &object)?,
                })
            });
        match res {
            Ok(e) => ok.push(e),
            // Deleted between the listing and the read (a forget or rotation): it is gone.
            Err(e) if e.is_not_found() => {}
            Err(e) => bad.push(e),
        }
    }
    // Oldest first; each record's time is parsed once.
    ok.sort_by_cached_key(|e| (e.snapshot.unix_time(), e.snapshot.time.clone(), e.id));
    Ok((ok, bad))
}

/// Find the snapshot whose id starts with `prefix` (hex, at least 4 digits).
pub fn resolve<'a>(all: &'a [SnapshotEntry], prefix: &str) -> Result<&'a SnapshotEntry> {
    let p = prefix.to_ascii_lowercase();
    if p.len() < 4 || !p.bytes().all(|b| b.is_ascii_hexdigit()) {
        return Err(Error::NotFound(format!(
            "{prefix:?} is not a snapshot id (give at least 4 hex digits)"
        )));
    }
    let mut hits = all.iter().filter(|e| e.id.to_hex().starts_with(&p));
    match (hits.next(), hits.next()) {
        (Some(e), None) => Ok(e),
        (None, _) => Err(Error::NotFound(format!("no snapshot matches {prefix:?}"))),
        (Some(_), Some(_)) => Err(Error::Ambiguous(format!(
            "{prefix:?} matches more than one snapshot; give more digits"
        ))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    proptest! {
        #[test]
        fn snapshot_and_link_table_decoders_never_panic(data in proptest::collection::vec(any::<u8>(), 0..300)) {
            let id = SnapshotId(crate::engine::format::id::content_hash(&data));
            let _ = Snapshot::decode(&id, &data, "t");
            let _ = LinkTable::decode(&data, "t");
        }

        #[test]
        fn damaged_records_are_refused(pos in any::<usize>(), val in 1u8..) {
            let s = Snapshot {
                version: SNAPSHOT_VERSION,
                time: "2026-11-21T12:00:00.000000000Z".into(),
                hostname: "h".into(),
                source: "web1".into(),
                paths: vec!["/etc".into()],
                tree: BlobId([1; 32]),
                stats: SnapshotStats::default(),
                warnings: vec![],
                links: None,
            };
            let (id, mut bytes) = s.encode().unwrap();
            prop_assert_eq!(Snapshot::decode(&id, &bytes, "t").unwrap(), s);
            let p = pos % bytes.len();
            bytes[p] ^= val;
            prop_assert!(Snapshot::decode(&id, &bytes, "t").is_err(), "the id covers every byte");
        }
    }
}

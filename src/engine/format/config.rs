//! The repository config object (`config`, JSON). Format: docs/FORMAT.md, "config".

use serde::{Deserialize, Serialize};

use super::id::{content_hash, BlobKey};
use crate::engine::error::{Error, Result};

/// The repository format version this build reads and writes.
pub const FORMAT_VERSION: u32 = 1;

/// Chunking parameters, fixed at `init`.
#[derive(Clone, Copy, Debug, Serialize, Deserialize, PartialEq, Eq)]
pub struct ChunkerParams {
    pub min_size: u32,
    pub avg_size: u32,
    pub max_size: u32,
}

impl ChunkerParams {
    /// min = avg/4, max = avg*4, as for the default 256 KiB / 1 MiB / 4 MiB.
    pub fn from_avg(avg: u32) -> Result<Self> {
        let p = ChunkerParams {
            min_size: avg / 4,
            avg_size: avg,
            max_size: avg.saturating_mul(4),
        };
        p.validate()?;
        Ok(p)
    }

    /// The limits of fastcdc's v2020 chunker, and evenness it requires.
    pub fn validate(&self) -> Result<()> {
        use fastcdc::v2020::{
            AVERAGE_MAX, AVERAGE_MIN, MAXIMUM_MAX, MAXIMUM_MIN, MINIMUM_MAX, MINIMUM_MIN,
        };
        let (min, avg, max) = (
            self.min_size as usize,
            self.avg_size as usize,
            self.max_size as usize,
        );
        let ok = (MINIMUM_MIN..=MINIMUM_MAX).contains(&min)
            && (AVERAGE_MIN..=AVERAGE_MAX).contains(&avg)
            && (MAXIMUM_MIN..=MAXIMUM_MAX).contains(&max)
            && min <= avg
            && avg <= max
            && min % 2 == 0
            && avg % 2 == 0
            && max % 2 == 0;
        if ok {
            Ok(())
        } else {
            Err(Error::Invalid(format!(
                "chunk sizes min {min} / avg {avg} / max {max} are not usable (the average must be \
                 a multiple of 8 between {} and {} bytes)",
                MINIMUM_MIN * 4,
                MAXIMUM_MAX / 4
            )))
        }
    }
}

impl Default for ChunkerParams {
    fn default() -> Self {
        ChunkerParams {
            min_size: 256 * 1024,
            avg_size: 1024 * 1024,
            max_size: 4 * 1024 * 1024,
        }
    }
}

/// One entry of the config's `levels` list as stored: a name and a count, nothing more. What
/// the names may be, the bounds of `keep`, the defaults and what the list means are the points
/// layer's (`src/points/levels.rs`); the engine only keeps the shape of the JSON.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Eq)]
pub struct StoredLevel {
    pub name: String,
    pub keep: usize,
}

/// Present levels are a list: `"levels": null` is refused as before, not taken as absent.
fn present<'de, D: serde::Deserializer<'de>>(
    d: D,
) -> std::result::Result<Option<Vec<StoredLevel>>, D::Error> {
    Vec::deserialize(d).map(Some)
}

/// The contents of the `config` object.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct RepoConfig {
    /// Always "yester".
    pub format: String,
    pub version: u32,
    /// Random repository id (hex).
    pub id: String,
    /// Creation time, RFC 3339.
    pub created: String,
    /// Always "fastcdc-v2020".
    pub chunker: String,
    pub chunk_sizes: ChunkerParams,
    /// zstd level for blobs.
    pub compression_level: i32,
    /// Target size of pack files in bytes.
    pub pack_size: u32,
    /// Key for blob ids (hex, 32 bytes).
    pub blob_key: String,
    /// Retention levels, lowest (most frequent) first; `None` when the field is absent.
    ///
    /// Stored here so a repository carries its retention with it (and the JSON stays what it
    /// always was), but as data the engine does not interpret: nothing in the engine uses levels.
    /// Their rules (valid names, the reserved `latest`/`snapshots`, `keep` bounds, the defaults
    /// an absent field means) are the points layer's, which checks them when a repository is
    /// created (`points::set_levels`) and whenever it reads them (`points::levels_of`).
    #[serde(
        default,
        deserialize_with = "present",
        skip_serializing_if = "Option::is_none"
    )]
    pub levels: Option<Vec<StoredLevel>>,
}

/// How the `check` field is written (the checksum's 64 hex digits follow).
const CHECK_PREFIX: &[u8] = b",\n  \"check\": \"";

/// A config's `check` is the BLAKE3 hash of its own bytes with the check's 64 hex digits
/// replaced by `0`s. Repositories made before it existed have none and are taken as they are.
fn verify_check(bytes: &[u8], v: &serde_json::Value, object: &str) -> Result<()> {
    let Some(check) = v.get("check") else {
        return Ok(());
    };
    let damaged = || Error::corrupt(object, "config checksum mismatch (damaged bytes)");
    let hexsum = check.as_str().ok_or_else(damaged)?.as_bytes();
    if hexsum.len() != 64 || !hexsum.iter().all(|b| b.is_ascii_hexdigit()) {
        return Err(damaged());
    }
    let mut found = bytes.windows(64).enumerate().filter(|(_, w)| *w == hexsum);
    let (Some((at, _)), None) = (found.next(), found.next()) else {
        return Err(damaged());
    };
    let mut blank = bytes.to_vec();
    blank[at..at + 64].fill(b'0');
    if hex::encode(content_hash(&blank)).as_bytes() != hexsum {
        return Err(damaged());
    }
    Ok(())
}

/// Default target size of a pack file.
pub const DEFAULT_PACK_SIZE: u32 = 16 * 1024 * 1024;

impl RepoConfig {
    /// A config for a new repository.
    pub fn new(chunk_sizes: ChunkerParams, compression_level: i32) -> Result<Self> {
        chunk_sizes.validate()?;
        if !(1..=19).contains(&compression_level) {
            return Err(Error::Invalid(format!(
                "compression level {compression_level} out of range (1-19)"
            )));
        }
        let mut id = [0u8; 16];
        getrandom::fill(&mut id).map_err(|e| Error::Invalid(format!("random: {e}")))?;
        Ok(RepoConfig {
            format: "yester".into(),
            version: FORMAT_VERSION,
            id: hex::encode(id),
            created: humantime::format_rfc3339_seconds(std::time::SystemTime::now()).to_string(),
            chunker: "fastcdc-v2020".into(),
            chunk_sizes,
            compression_level,
            pack_size: DEFAULT_PACK_SIZE,
            blob_key: hex::encode(BlobKey::random()?.0),
            // Set by the points layer (`points::set_levels`); absent means its defaults.
            levels: None,
        })
    }

    /// Parse and validate the config bytes; `object` names the file for errors.
    /// The bytes of the `config` object: pretty JSON with its `check` field last
    /// (docs/FORMAT.md, "config").
    pub fn encode(&self) -> Result<Vec<u8>> {
        let mut bytes =
            serde_json::to_vec_pretty(self).map_err(|e| Error::Invalid(e.to_string()))?;
        // `to_vec_pretty` of a struct ends with "\n}"; the check goes in as the last field.
        if bytes.pop() != Some(b'}') {
            return Err(Error::Invalid("config does not encode as an object".into()));
        }
        while bytes.last() == Some(&b'\n') {
            bytes.pop();
        }
        let at = bytes.len() + CHECK_PREFIX.len();
        bytes.extend_from_slice(CHECK_PREFIX);
        bytes.extend_from_slice(&[b'0'; 64]);
        bytes.extend_from_slice(b"\"\n}");
        let sum = hex::encode(content_hash(&bytes));
        bytes[at..at + 64].copy_from_slice(sum.as_bytes());
        Ok(bytes)
    }

    /// Decode and validate a `config` object's bytes; `object` names it for errors.
    pub fn decode(bytes: &[u8], object: &str) -> Result<Self> {
        let v: serde_json::Value =
            serde_json::from_slice(bytes).map_err(|e| Error::corrupt(object, e))?;
        if v.get("format").and_then(|f| f.as_str()) != Some("yester") {
            return Err(Error::corrupt(object, "not a yester config"));
        }
        let version = v.get("version").and_then(|x| x.as_u64()).unwrap_or(0);
        if version != u64::from(FORMAT_VERSION) {
            return Err(Error::UnsupportedVersion {
                object: object.to_string(),
                found: u32::try_from(version).unwrap_or(u32::MAX),
                supported: FORMAT_VERSION,
            });
        }
        // After the version: a newer format may check itself differently.
        verify_check(bytes, &v, object)?;
        let c: RepoConfig = serde_json::from_value(v).map_err(|e| Error::corrupt(object, e))?;
        if c.chunker != "fastcdc-v2020" {
            return Err(Error::corrupt(
                object,
                format!("unknown chunker {:?}", c.chunker),
            ));
        }
        c.chunk_sizes
            .validate()
            .map_err(|e| Error::corrupt(object, e))?;
        if !(1024..=1 << 30).contains(&c.pack_size) {
            return Err(Error::corrupt(object, "pack_size out of range"));
        }
        c.key().map_err(|e| Error::corrupt(object, e))?;
        if !(1..=19).contains(&c.compression_level) {
            return Err(Error::corrupt(
                object,
                "compression_level out of range (1-19)",
            ));
        }
        Ok(c)
    }

    /// The blob-id key.
    pub fn key(&self) -> Result<BlobKey> {
        let mut k = [0u8; 32];
        hex::decode_to_slice(&self.blob_key, &mut k)
            .map_err(|_| Error::Invalid("blob_key is not 64 hex digits".into()))?;
        Ok(BlobKey(k))
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn every_damaged_byte_of_a_written_config_is_refused() {
        let c = RepoConfig::new(ChunkerParams::default(), 3).unwrap();
        let bytes = c.encode().unwrap();
        let back = RepoConfig::decode(&bytes, "config").unwrap();
        assert_eq!(back.blob_key, c.blob_key);
        let text = String::from_utf8(bytes.clone()).unwrap();
        // Renaming the field itself leaves an unknown field and no check: taken as an older
        // repository's config (the only bytes a flip may change unnoticed).
        let name = text.find("\"check\"").unwrap();
        for i in 0..bytes.len() {
            if (name..name + 7).contains(&i) {
                continue;
            }
            let mut d = bytes.clone();
            d[i] ^= 0x01;
            assert!(
                RepoConfig::decode(&d, "config").is_err(),
                "flipped byte {i} ({:?}) accepted",
                bytes[i] as char
            );
        }
        let legacy = serde_json::to_vec_pretty(&c).unwrap();
        assert!(RepoConfig::decode(&legacy, "config").is_ok());
    }

    use super::*;
    use proptest::prelude::*;

    #[test]
    fn levels_are_kept_as_given_and_only_their_shape_is_checked() {
        let c = RepoConfig::new(ChunkerParams::default(), 3).unwrap();
        let mut v = serde_json::to_value(&c).unwrap();
        assert!(v.get("levels").is_none(), "no levels, no field");
        let decode = |v: &serde_json::Value| {
            RepoConfig::decode(&serde_json::to_vec_pretty(v).unwrap(), "config")
        };
        assert_eq!(decode(&v).unwrap().levels, None);
        // Rules are not the engine's: points refuses this list, opening does not.
        v["levels"] = serde_json::json!([{ "name": "Latest", "keep": 0 }]);
        let got = decode(&v).unwrap().levels.unwrap();
        assert_eq!((got[0].name.as_str(), got[0].keep), ("Latest", 0));
        for bad in [
            serde_json::Value::Null,
            serde_json::json!({}),
            serde_json::json!([{ "name": "hourly" }]),
            serde_json::json!([{ "name": "hourly", "keep": -1 }]),
        ] {
            v["levels"] = bad.clone();
            assert!(decode(&v).is_err(), "{bad}");
        }
    }

    proptest! {
        #[test]
        fn config_decoder_never_panics(data in proptest::collection::vec(any::<u8>(), 0..300)) {
            let _ = RepoConfig::decode(&data, "config");
        }

        #[test]
        fn damaged_configs_never_panic(pos in any::<usize>(), val in any::<u8>()) {
            let c = RepoConfig::new(ChunkerParams::default(), 3).unwrap();
            let mut bytes = serde_json::to_vec_pretty(&c).unwrap();
            let p = pos % bytes.len();
            bytes[p] = val;
            let _ = RepoConfig::decode(&bytes, "config");
            let _ = RepoConfig::decode(&bytes[..p], "config");
        }
    }
}

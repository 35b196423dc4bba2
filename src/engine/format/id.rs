//! Identifiers: 32-byte BLAKE3 digests, shown as lowercase hex.

use std::fmt;
use std::str::FromStr;

use crate::engine::error::{Error, Result};

/// Length of every identifier in bytes.
pub const ID_LEN: usize = 32;

macro_rules! id_type {
    ($(#[$doc:meta])* $name:ident) => {
        $(#[$doc])*
        #[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Default)]
        pub struct $name(pub [u8; ID_LEN]);

        impl $name {
            /// Full lowercase hex form.
            pub fn to_hex(&self) -> String {
                hex::encode(self.0)
            }
            /// The first 8 hex digits, as shown to users.
            pub fn short(&self) -> String {
                hex::encode(&self.0[..4])
            }
            /// Parse from 64 hex digits.
            pub fn from_hex(s: &str) -> Result<Self> {
                let mut out = [0u8; ID_LEN];
                hex::decode_to_slice(s, &mut out)
                    .map_err(|_| Error::Invalid(format!("not a valid id: {s:?}")))?;
                Ok($name(out))
            }
            /// Read from a slice that must be exactly 32 bytes long.
            pub fn from_slice(b: &[u8]) -> Option<Self> {
                Some($name(b.try_into().ok()?))
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(&self.to_hex())
            }
        }

        impl fmt::Debug for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                write!(f, "{}({})", stringify!($name), self.short())
            }
        }

        impl FromStr for $name {
            type Err = Error;
            fn from_str(s: &str) -> Result<Self> {
                Self::from_hex(s)
            }
        }

        impl serde::Serialize for $name {
            fn serialize<S: serde::Serializer>(&self, s: S) -> std::result::Result<S::Ok, S::Error> {
                s.serialize_str(&self.to_hex())
            }
        }

        impl<'de> serde::Deserialize<'de> for $name {
            fn deserialize<D: serde::Deserializer<'de>>(d: D) -> std::result::Result<Self, D::Error> {
                let s = String::deserialize(d)?;
                Self::from_hex(&s).map_err(serde::de::Error::custom)
            }
        }
    };
}

id_type!(
    /// Id of a blob (file chunk or tree): keyed BLAKE3 of its raw bytes.
    BlobId
);
id_type!(
    /// Id of a pack file: plain BLAKE3 of the whole file.
    PackId
);
id_type!(
    /// Id of an index file: plain BLAKE3 of the whole file.
    IndexId
);
id_type!(
    /// Id of a snapshot record: plain BLAKE3 of its JSON bytes.
    SnapshotId
);

/// The per-repository secret key for blob ids.
#[derive(Clone)]
pub struct BlobKey(pub [u8; 32]);

impl BlobKey {
    /// A fresh random key.
    pub fn random() -> Result<Self> {
        let mut k = [0u8; 32];
        getrandom::fill(&mut k)
            .map_err(|e| Error::Invalid(format!("cannot get random bytes: {e}")))?;
        Ok(BlobKey(k))
    }

    /// The id of a blob with these raw bytes.
    pub fn blob_id(&self, data: &[u8]) -> BlobId {
        BlobId(*blake3::keyed_hash(&self.0, data).as_bytes())
    }
}

impl fmt::Debug for BlobKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("BlobKey(..)")
    }
}

/// Plain BLAKE3 of `data`.
pub fn content_hash(data: &[u8]) -> [u8; 32] {
    *blake3::hash(data).as_bytes()
}

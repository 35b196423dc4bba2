//! NFS file handles: a view node's encoding, the export it was handed out under, and a MAC
//! keyed by a server secret, so clients cannot forge handles into other exports or snapshots.
//!
//! Layout (docs/NFS.md "File handles"; at most 62 bytes, under NFSv3's 64): version 2 (1
//! byte), export tag (4), node (9–41, see `vfs::node`), MAC (16) = keyed BLAKE3 of everything
//! before it. Version 1 handles (an 8-byte tag, nodes of at most 37 bytes) are still accepted,
//! so clients keep their handles across an upgrade. Nothing in a handle depends on the server
//! process, so handles survive restarts; a point directory's handle names the point, so it
//! survives rotations too.

use std::io::Write;
use std::os::unix::fs::OpenOptionsExt;
use std::path::Path;

/// First byte of every handle made now.
const VERSION: u8 = 2;
/// The first layout, with an 8-byte export tag (of which the first 4 are today's tag).
const VERSION_1: u8 = 1;
const MAC_LEN: usize = 16;

/// Which export a handle was handed out under: the first bytes of a hash of its pattern.
pub type ExportTag = [u8; 4];

/// The secret that signs handles.
pub struct HandleKey([u8; 32]);

impl HandleKey {
    /// Read the key from `path`, creating it (mode 0600) on first use.
    pub fn load_or_create(path: &Path) -> std::io::Result<Self> {
        match std::fs::read(path) {
            Ok(b) if b.len() == 32 => {
                let mut k = [0u8; 32];
                k.copy_from_slice(&b);
                Ok(HandleKey(k))
            }
            Ok(_) => Err(std::io::Error::other(format!(
                "{}: not a handle key (must be 32 bytes)",
                path.display()
            ))),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                let mut k = [0u8; 32];
                getrandom::fill(&mut k).map_err(|e| std::io::Error::other(e.to_string()))?;
                if let Some(dir) = path.parent() {
                    std::fs::create_dir_all(dir)?;
                }
                let mut f = std::fs::OpenOptions::new()
                    .write(true)
                    .create_new(true)
                    .mode(0o600)
                    .open(path)?;
                f.write_all(&k)?;
                f.sync_all()?;
                Ok(HandleKey(k))
            }
            Err(e) => Err(e),
        }
    }

    #[cfg(test)]
    pub fn fixed(k: [u8; 32]) -> Self {
        HandleKey(k)
    }

    fn mac(&self, body: &[u8]) -> [u8; MAC_LEN] {
        let mut out = [0u8; MAC_LEN];
        out.copy_from_slice(&blake3::keyed_hash(&self.0, body).as_bytes()[..MAC_LEN]);
        out
    }

    /// A handle for `node` (its encoding) under the export with `tag`.
    pub fn make(&self, tag: &ExportTag, node: &[u8]) -> Vec<u8> {
        let mut h = Vec::with_capacity(1 + tag.len() + node.len() + MAC_LEN);
        h.push(VERSION);
        h.extend_from_slice(tag);
        h.extend_from_slice(node);
        let mac = self.mac(&h);
        h.extend_from_slice(&mac);
        h
    }

    /// Check a handle; returns its export tag and node encoding, or `None` if it is not one
    /// of ours (malformed or tampered with).
    pub fn open<'a>(&self, h: &'a [u8]) -> Option<(ExportTag, &'a [u8])> {
        let tag_len = match *h.first()? {
            VERSION => 4,
            VERSION_1 => 8,
            _ => return None,
        };
        if h.len() < 1 + tag_len + MAC_LEN + 1 || h.len() > 64 {
            return None;
        }
        let (body, mac) = h.split_at(h.len() - MAC_LEN);
        let want = self.mac(body);
        // Constant time, so timing tells nothing about how much of a forged MAC was right.
        if mac
            .iter()
            .zip(want.iter())
            .fold(0u8, |acc, (a, b)| acc | (a ^ b))
            != 0
        {
            return None;
        }
        let tag: ExportTag = body[1..5].try_into().ok()?;
        Some((tag, &body[1 + tag_len..]))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tampering_is_detected() {
        let k = HandleKey::fixed([7; 32]);
        let h = k.make(&[1; 4], &[3; 41]);
        assert!(h.len() <= 64);
        assert_eq!(k.open(&h), Some(([1; 4], &[3u8; 41][..])));
        for i in 0..h.len() {
            let mut bad = h.clone();
            bad[i] ^= 0x01;
            assert!(k.open(&bad).is_none(), "byte {i}");
        }
        assert!(
            HandleKey::fixed([8; 32]).open(&h).is_none(),
            "another server's key"
        );
        assert!(k.open(&h[..h.len() - 1]).is_none());
    }
}

#[cfg(test)]
mod version_1 {
    use super::*;

    /// A handle as the first layout made it: version 1, an 8-byte tag.
    fn v1(k: &HandleKey, tag: &[u8; 8], node: &[u8]) -> Vec<u8> {
        let mut h = vec![VERSION_1];
        h.extend_from_slice(tag);
        h.extend_from_slice(node);
        let mac = k.mac(&h);
        h.extend_from_slice(&mac);
        h
    }

    #[test]
    fn old_handles_still_open_with_the_short_tag() {
        let k = HandleKey::fixed([7; 32]);
        let h = v1(&k, &[1, 2, 3, 4, 5, 6, 7, 8], &[3; 37]);
        assert_eq!(k.open(&h), Some(([1, 2, 3, 4], &[3u8; 37][..])));
        let mut bad = h.clone();
        bad[6] ^= 1;
        assert!(
            k.open(&bad).is_none(),
            "the tag's last bytes are still signed"
        );
        let mut other = h.clone();
        other[0] = 3;
        assert!(k.open(&other).is_none(), "unknown version");
    }
}

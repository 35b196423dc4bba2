//! Byte encoding helpers shared by the binary formats (trees, pack trailers, index files).
//!
//! Unsigned integers are LEB128 varints ("uvarint", at most 10 bytes); signed ones are
//! zig-zag mapped first. Byte strings are a uvarint length followed by the bytes. See
//! docs/FORMAT.md, section "Encodings".

use crate::engine::error::{Error, Result};

/// Appends encoded values to a byte vector.
#[derive(Default)]
pub struct Encoder {
    pub buf: Vec<u8>,
}

impl Encoder {
    pub fn new() -> Self {
        Self::default()
    }
    pub fn u8(&mut self, v: u8) {
        self.buf.push(v);
    }
    pub fn u32_le(&mut self, v: u32) {
        self.buf.extend_from_slice(&v.to_le_bytes());
    }
    pub fn raw(&mut self, b: &[u8]) {
        self.buf.extend_from_slice(b);
    }
    pub fn uvarint(&mut self, mut v: u64) {
        while v >= 0x80 {
            self.buf.push((v as u8) | 0x80);
            v >>= 7;
        }
        self.buf.push(v as u8);
    }
    pub fn ivarint(&mut self, v: i64) {
        self.uvarint(((v << 1) ^ (v >> 63)) as u64);
    }
    pub fn bytes(&mut self, b: &[u8]) {
        self.uvarint(b.len() as u64);
        self.raw(b);
    }
}

/// Reads encoded values from a byte slice; every failure is a `Corrupt` error naming `object`.
pub struct Decoder<'a> {
    data: &'a [u8],
    pos: usize,
    object: &'a str,
}

impl<'a> Decoder<'a> {
    pub fn new(data: &'a [u8], object: &'a str) -> Self {
        Decoder {
            data,
            pos: 0,
            object,
        }
    }
    pub fn is_empty(&self) -> bool {
        self.pos >= self.data.len()
    }
    pub fn remaining(&self) -> usize {
        self.data.len().saturating_sub(self.pos)
    }
    pub fn err(&self, what: &str) -> Error {
        Error::corrupt(self.object, format!("{what} at byte {}", self.pos))
    }
    pub fn raw(&mut self, n: usize) -> Result<&'a [u8]> {
        if self.remaining() < n {
            return Err(self.err("unexpected end of data"));
        }
        let s = &self.data[self.pos..self.pos + n];
        self.pos += n;
        Ok(s)
    }
    pub fn u8(&mut self) -> Result<u8> {
        Ok(self.raw(1)?[0])
    }
    pub fn u32_le(&mut self) -> Result<u32> {
        let b = self.raw(4)?;
        Ok(u32::from_le_bytes([b[0], b[1], b[2], b[3]]))
    }
    pub fn array32(&mut self) -> Result<[u8; 32]> {
        let b = self.raw(32)?;
        let mut out = [0u8; 32];
        out.copy_from_slice(b);
        Ok(out)
    }
    pub fn uvarint(&mut self) -> Result<u64> {
        let mut v: u64 = 0;
        for i in 0..10 {
            let b = self.u8()?;
            if i == 9 && b > 1 {
                return Err(self.err("varint overflows 64 bits"));
            }
            v |= u64::from(b & 0x7f) << (7 * i);
            if b & 0x80 == 0 {
                return Ok(v);
            }
        }
        Err(self.err("varint too long"))
    }
    /// A uvarint that must fit in u32.
    pub fn uvarint32(&mut self) -> Result<u32> {
        let v = self.uvarint()?;
        u32::try_from(v).map_err(|_| self.err("value out of range"))
    }
    pub fn ivarint(&mut self) -> Result<i64> {
        let u = self.uvarint()?;
        Ok(((u >> 1) as i64) ^ -((u & 1) as i64))
    }
    /// A length-prefixed byte string.
    pub fn bytes(&mut self) -> Result<&'a [u8]> {
        let n = self.uvarint()?;
        let n = usize::try_from(n).map_err(|_| self.err("length out of range"))?;
        self.raw(n)
    }
    /// A count of items, each at least `min_item_len` bytes long: rejects counts the remaining
    /// data cannot hold, so hostile input cannot make us allocate huge vectors.
    pub fn count(&mut self, min_item_len: usize) -> Result<usize> {
        let n = self.uvarint()?;
        let n = usize::try_from(n).map_err(|_| self.err("count out of range"))?;
        if n.saturating_mul(min_item_len.max(1)) > self.remaining() {
            return Err(self.err("count larger than the data"));
        }
        Ok(n)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    proptest! {
        #[test]
        fn varints_roundtrip(u in any::<u64>(), i in any::<i64>(), b in proptest::collection::vec(any::<u8>(), 0..40)) {
            let mut e = Encoder::new();
            e.uvarint(u);
            e.ivarint(i);
            e.bytes(&b);
            let mut d = Decoder::new(&e.buf, "t");
            prop_assert_eq!(d.uvarint().unwrap(), u);
            prop_assert_eq!(d.ivarint().unwrap(), i);
            prop_assert_eq!(d.bytes().unwrap(), &b[..]);
            prop_assert!(d.is_empty());
        }

        #[test]
        fn decoder_never_panics(data in proptest::collection::vec(any::<u8>(), 0..64)) {
            let mut d = Decoder::new(&data, "t");
            while !d.is_empty() {
                if d.bytes().is_err() { break; }
            }
        }
    }
}

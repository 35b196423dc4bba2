//! XDR (RFC 4506) for the parts of ONC RPC, MOUNT and NFSv3 that we decode ourselves.
//!
//! Decoding never trusts a length: every opaque or string is bounded by the caller and by the
//! bytes actually present, so hostile records cannot make us allocate or panic. Replies are
//! encoded with `nfsserve`'s public types and its `XDR` trait where they exist.

use nfsserve::xdr::XDR;

/// Decoding failed: the arguments are garbage.
#[derive(Debug)]
pub struct Garbage;

/// Reads XDR items from a byte slice.
pub struct Reader<'a> {
    data: &'a [u8],
    pos: usize,
}

impl<'a> Reader<'a> {
    pub fn new(data: &'a [u8]) -> Self {
        Reader { data, pos: 0 }
    }

    pub fn rest(&self) -> &'a [u8] {
        &self.data[self.pos.min(self.data.len())..]
    }

    fn take(&mut self, n: usize) -> Result<&'a [u8], Garbage> {
        let end = self.pos.checked_add(n).ok_or(Garbage)?;
        let s = self.data.get(self.pos..end).ok_or(Garbage)?;
        self.pos = end;
        Ok(s)
    }

    pub fn u32(&mut self) -> Result<u32, Garbage> {
        let b = self.take(4)?;
        Ok(u32::from_be_bytes([b[0], b[1], b[2], b[3]]))
    }

    pub fn u64(&mut self) -> Result<u64, Garbage> {
        Ok((u64::from(self.u32()?) << 32) | u64::from(self.u32()?))
    }

    pub fn bool(&mut self) -> Result<bool, Garbage> {
        match self.u32()? {
            0 => Ok(false),
            1 => Ok(true),
            _ => Err(Garbage),
        }
    }

    /// Variable-length opaque data of at most `max` bytes.
    pub fn opaque(&mut self, max: usize) -> Result<&'a [u8], Garbage> {
        let n = self.u32()? as usize;
        if n > max {
            return Err(Garbage);
        }
        let b = self.take(n)?;
        self.take((4 - n % 4) % 4)?;
        Ok(b)
    }

    /// Fixed-length opaque data.
    pub fn fixed(&mut self, n: usize) -> Result<&'a [u8], Garbage> {
        let b = self.take(n)?;
        self.take((4 - n % 4) % 4)?;
        Ok(b)
    }
}

/// Appends XDR items to a buffer.
#[derive(Default)]
pub struct Writer {
    pub buf: Vec<u8>,
}

impl Writer {
    pub fn u32(&mut self, v: u32) -> &mut Self {
        self.buf.extend_from_slice(&v.to_be_bytes());
        self
    }

    pub fn u64(&mut self, v: u64) -> &mut Self {
        self.buf.extend_from_slice(&v.to_be_bytes());
        self
    }

    pub fn bool(&mut self, v: bool) -> &mut Self {
        self.u32(u32::from(v))
    }

    pub fn opaque(&mut self, b: &[u8]) -> &mut Self {
        self.u32(b.len() as u32);
        self.fixed(b)
    }

    pub fn fixed(&mut self, b: &[u8]) -> &mut Self {
        self.buf.extend_from_slice(b);
        self.buf
            .extend(std::iter::repeat_n(0, (4 - b.len() % 4) % 4));
        self
    }

    /// Anything `nfsserve` knows how to encode.
    pub fn item<T: XDR>(&mut self, v: &T) -> &mut Self {
        // Writing into a Vec cannot fail.
        let _ = v.serialize(&mut self.buf);
        self
    }
}

/// Bytes an opaque of `n` bytes takes on the wire (length word plus padded data).
pub fn opaque_len(n: usize) -> usize {
    4 + n.div_ceil(4) * 4
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    proptest! {
        #[test]
        fn reader_never_panics(data in proptest::collection::vec(any::<u8>(), 0..64)) {
            let mut r = Reader::new(&data);
            let _ = r.u32();
            let _ = r.opaque(16);
            let _ = r.u64();
            let _ = r.fixed(5);
            let _ = r.bool();
        }
    }

    #[test]
    fn roundtrip() {
        let mut w = Writer::default();
        w.u32(7).opaque(b"abcde").u64(1 << 40).bool(true);
        let mut r = Reader::new(&w.buf);
        assert_eq!(r.u32().unwrap(), 7);
        assert_eq!(r.opaque(10).unwrap(), b"abcde");
        assert_eq!(r.u64().unwrap(), 1 << 40);
        assert!(r.bool().unwrap());
        assert!(r.rest().is_empty());
        let mut r = Reader::new(&w.buf[4..]);
        assert!(r.opaque(4).is_err(), "longer than allowed");
    }
}

//! Streaming content-defined chunking with FastCDC (v2020) over any reader.
//!
//! fastcdc's own `StreamCDC` allocates per chunk and is slower than the slice chunker, so we
//! keep one buffer of a few maximum chunks, cut inside it and slide the tail down.

use std::io::{self, Read};

use fastcdc::v2020::FastCDC;

use super::config::ChunkerParams;

/// Splits a byte stream into chunks; call [`Chunker::next_chunk`] until it returns `None`.
pub struct Chunker<'b, R> {
    reader: R,
    params: ChunkerParams,
    buf: &'b mut Vec<u8>,
    start: usize,
    end: usize,
    eof: bool,
}

/// Bytes of buffer a [`Chunker`] needs: two maximum chunks, so that after a refill a whole
/// maximum chunk is always in view (or the end of the stream).
fn buffer_len(params: ChunkerParams) -> usize {
    (params.max_size as usize * 2).max(1 << 20)
}

/// A buffer for [`Chunker`]. Allocate it once and reuse it for every file (zeroing megabytes
/// per small file would dominate a backup).
pub fn chunk_buffer(params: ChunkerParams) -> Vec<u8> {
    vec![0; buffer_len(params)]
}

impl<'b, R: Read> Chunker<'b, R> {
    pub fn new(reader: R, params: ChunkerParams, buf: &'b mut Vec<u8>) -> Self {
        let want = buffer_len(params);
        if buf.len() < want {
            // Fresh zeroed pages (calloc), touched only as far as files reach.
            *buf = vec![0; want];
        }
        Chunker {
            reader,
            params,
            buf,
            start: 0,
            end: 0,
            eof: false,
        }
    }

    fn fill(&mut self) -> io::Result<()> {
        if self.start > 0 {
            self.buf.copy_within(self.start..self.end, 0);
            self.end -= self.start;
            self.start = 0;
        }
        while !self.eof && self.end < self.buf.len() {
            match self.reader.read(&mut self.buf[self.end..]) {
                Ok(0) => self.eof = true,
                Ok(n) => self.end += n,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return Err(e),
            }
        }
        Ok(())
    }

    /// The next chunk's bytes, or `None` at the end of the stream.
    pub fn next_chunk(&mut self) -> io::Result<Option<&[u8]>> {
        let max = self.params.max_size as usize;
        if self.end - self.start < max && !self.eof {
            self.fill()?;
        }
        let avail = self.end - self.start;
        if avail == 0 {
            return Ok(None);
        }
        let cdc = FastCDC::new(
            &self.buf[self.start..self.end],
            self.params.min_size as usize,
            self.params.avg_size as usize,
            max,
        );
        let (_, cut) = cdc.cut(0, avail);
        let len = if cut == 0 { avail } else { cut };
        let s = self.start;
        self.start += len;
        Ok(Some(&self.buf[s..s + len]))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn chunks_of(data: &[u8], p: ChunkerParams) -> Vec<Vec<u8>> {
        let mut buf = chunk_buffer(p);
        let mut c = Chunker::new(data, p, &mut buf);
        let mut out = Vec::new();
        while let Some(ch) = c.next_chunk().unwrap() {
            out.push(ch.to_vec());
        }
        out
    }

    #[test]
    fn same_cuts_as_slice_chunker() {
        let p = ChunkerParams::from_avg(16 * 1024).unwrap();
        let mut x: u64 = 1;
        let data: Vec<u8> = (0..3_000_000)
            .map(|_| {
                x ^= x << 13;
                x ^= x >> 7;
                x ^= x << 17;
                x as u8
            })
            .collect();
        let streamed = chunks_of(&data, p);
        let sliced: Vec<Vec<u8>> = FastCDC::new(&data, 4096, 16384, 65536)
            .map(|c| data[c.offset..c.offset + c.length].to_vec())
            .collect();
        assert_eq!(streamed, sliced);
        assert!(streamed.len() > 100);
    }

    #[test]
    fn small_and_empty() {
        let p = ChunkerParams::default();
        assert!(chunks_of(b"", p).is_empty());
        assert_eq!(chunks_of(b"hello", p), vec![b"hello".to_vec()]);
    }
}

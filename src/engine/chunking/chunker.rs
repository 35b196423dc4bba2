//! Streaming content-defined chunking with FastCDC (v2020) over any reader.
//!
//! fastcdc's own `StreamCDC` allocates per chunk and is slower than the slice chunker, so we
//! keep one buffer of a few maximum chunks, cut inside it and slide the tail down.
//!
//! Runs of zeros (the unused blocks of a VM image or a preallocated file) take a shortcut:
//! the cut search jumps through them ([`GearCut`]), and where the next maximum chunk's worth
//! of bytes is all zeros the chunk is flagged so the caller can reuse its id instead of
//! hashing it again. The chunks are exactly the ones FastCDC makes.

use std::io::{self, Read};

use super::gearcut::GearCut;
use super::zeros::all_zero;
use crate::engine::format::config::ChunkerParams;

/// Splits a byte stream into chunks; call [`Chunker::next_chunk`] until it returns `None`.
pub struct Chunker<'b, R> {
    reader: R,
    params: ChunkerParams,
    gear: GearCut,
    buf: &'b mut Vec<u8>,
    start: usize,
    end: usize,
    eof: bool,
}

/// One chunk of the stream.
pub struct Chunk<'a> {
    pub data: &'a [u8],
    /// Known to be all zeros (so every such chunk of its length has the same id). `false`
    /// means unknown, not "has non-zero bytes".
    pub zeros: bool,
}

/// Bytes of buffer a [`Chunker`] needs: two maximum chunks, so that after a refill a whole
/// maximum chunk is always in view (or the end of the stream).
fn buffer_len(params: ChunkerParams) -> usize {
    (params.max_size as usize * 2).max(1 << 20)
}

#[cfg(test)] // only the tests use it
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
            gear: GearCut::new(params),
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

    /// The next chunk, or `None` at the end of the stream.
    pub fn next_chunk(&mut self) -> io::Result<Option<Chunk<'_>>> {
        let max = self.params.max_size as usize;
        if self.end - self.start < max && !self.eof {
            self.fill()?;
        }
        let avail = self.end - self.start;
        if avail == 0 {
            return Ok(None);
        }
        let window = &self.buf[self.start..self.end];
        // FastCDC looks at no more than a maximum chunk, so a window of that many zeros is
        // always cut at the same place: every such chunk has one length and one id. (The cut
        // search jumps through zeros, so finding that place again costs next to nothing.)
        let zeros = avail >= max && all_zero(&window[..max]);
        let len = self.gear.cut(window);
        let s = self.start;
        self.start += len;
        Ok(Some(Chunk {
            data: &self.buf[s..s + len],
            zeros,
        }))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::engine::testdata::noise;
    use fastcdc::v2020::FastCDC;

    fn chunks_of(data: &[u8], p: ChunkerParams) -> Vec<Vec<u8>> {
        let mut buf = chunk_buffer(p);
        let mut c = Chunker::new(data, p, &mut buf);
        let mut out = Vec::new();
        while let Some(ch) = c.next_chunk().unwrap() {
            out.push(ch.data.to_vec());
        }
        out
    }

    /// FastCDC's own cuts of `data` with the 16 KiB-average parameters the tests use.
    fn sliced(data: &[u8]) -> Vec<Vec<u8>> {
        FastCDC::new(data, 4096, 16384, 65536)
            .map(|c| data[c.offset..c.offset + c.length].to_vec())
            .collect()
    }

    #[test]
    fn same_cuts_as_slice_chunker() {
        let p = ChunkerParams::from_avg(16 * 1024).unwrap();
        let data = noise(&mut 1, 3_000_000);
        let streamed = chunks_of(&data, p);
        let sliced = sliced(&data);
        assert_eq!(streamed, sliced);
        assert!(streamed.len() > 100);
    }

    /// Zero runs (short, exactly a maximum chunk, long, between data, at the end) are cut
    /// exactly where FastCDC cuts them, and only all-zero chunks are flagged.
    #[test]
    fn zero_runs_are_cut_like_fastcdc_and_flagged() {
        let p = ChunkerParams::from_avg(16 * 1024).unwrap();
        let max = p.max_size as usize;
        let x = &mut 7;
        let mut data = noise(x, 100_000);
        data.extend(vec![0u8; max * 5 + 1234]);
        data.extend(noise(x, 70_000));
        data.extend(vec![0u8; max]);
        data.extend(noise(x, 3));
        data.extend(vec![0u8; 1000]);
        data.extend(noise(x, 50_000));
        data.extend(vec![0u8; max * 3]);
        let mut buf = chunk_buffer(p);
        let mut c = Chunker::new(&data[..], p, &mut buf);
        let mut streamed = Vec::new();
        let mut flagged = 0;
        while let Some(ch) = c.next_chunk().unwrap() {
            if ch.zeros {
                assert!(
                    ch.data.iter().all(|&b| b == 0),
                    "a flagged chunk is all zeros"
                );
                flagged += 1;
            }
            streamed.push(ch.data.to_vec());
        }
        let sliced = sliced(&data);
        assert_eq!(streamed.len(), sliced.len());
        assert!(streamed == sliced, "same cuts as the slice chunker");
        assert!(
            flagged >= 6,
            "the long zero runs took the shortcut ({flagged})"
        );
    }

    #[test]
    fn small_and_empty() {
        let p = ChunkerParams::default();
        assert!(chunks_of(b"", p).is_empty());
        assert_eq!(chunks_of(b"hello", p), vec![b"hello".to_vec()]);
    }
}

//! FastCDC v2020's cut search, with the same cut points as `fastcdc::v2020::FastCDC::cut`,
//! plus a shortcut through runs of zeros.
//!
//! The gear hash is `H = (H << 1) + GEAR[byte]` (the crate folds two bytes per step; the
//! values tested are the same). It forgets everything older than 64 bytes, and for a zero
//! byte `Z = -GEAR[0]` is a fixed point: inside a run of zeros the hash sits at `Z`. When `Z`
//! passes none of the masks, no cut can fall anywhere in the run, so the scan jumps to its
//! end with the hash still `Z`. A 4 MiB chunk of a VM image that is all zeros but for one
//! 4 KiB write is then hashed over 4 KiB instead of 4 MiB; everything else is hashed exactly
//! as the crate does (the crate's own loop is the reference in the tests below).

use std::sync::LazyLock;

use fastcdc::v2020::{get_gear_with_seed, select_masks, Normalization};

use super::zeros::zero_run;
use crate::engine::format::config::ChunkerParams;

/// The crate's unseeded gear tables (`FastCDC::new` uses these), as arrays so that indexing
/// by a byte needs no bounds check.
static TABLES: LazyLock<([u64; 256], [u64; 256])> = LazyLock::new(|| {
    let (g, g_ls) = get_gear_with_seed(0);
    let mut gear = [0u64; 256];
    let mut gear_ls = [0u64; 256];
    gear.copy_from_slice(&g);
    gear_ls.copy_from_slice(&g_ls);
    (gear, gear_ls)
});

/// The masks and tables of one set of chunking parameters.
pub struct GearCut {
    min: usize,
    avg: usize,
    max: usize,
    mask_s: u64,
    mask_l: u64,
    mask_s_ls: u64,
    mask_l_ls: u64,
    gear: &'static [u64; 256],
    gear_ls: &'static [u64; 256],
    /// The hash inside a run of zeros, and whether it can skip each region's tests.
    zero_hash: u64,
    zero_skips_s: bool,
    zero_skips_l: bool,
}

impl GearCut {
    pub fn new(p: ChunkerParams) -> Self {
        // `FastCDC::new` uses normalisation level 1.
        let (mask_s, mask_l) = select_masks(p.avg_size as usize, Normalization::Level1);
        let (gear, gear_ls) = (&TABLES.0, &TABLES.1);
        let (mask_s_ls, mask_l_ls) = (mask_s << 1, mask_l << 1);
        let zero_hash = gear[0].wrapping_neg();
        // The two values a pair of zero bytes leaves from `Z`, as the scan computes them:
        // `2Z` after the first, `Z` again after the second (checked, not assumed, so that
        // other tables could only turn the shortcut off).
        let first = (zero_hash << 2).wrapping_add(gear_ls[0]);
        let fixed = first.wrapping_add(gear[0]) == zero_hash;
        let skips = |m: u64, m_ls: u64| fixed && first & m_ls != 0 && zero_hash & m != 0;
        GearCut {
            min: p.min_size as usize,
            avg: p.avg_size as usize,
            max: p.max_size as usize,
            mask_s,
            mask_l,
            mask_s_ls,
            mask_l_ls,
            gear,
            gear_ls,
            zero_hash,
            zero_skips_s: skips(mask_s, mask_s_ls),
            zero_skips_l: skips(mask_l, mask_l_ls),
        }
    }

    /// Length of the first chunk of `source` (all of it when no cut is found within a
    /// maximum chunk, or when it is shorter than a minimum chunk).
    pub fn cut(&self, source: &[u8]) -> usize {
        let mut remaining = source.len();
        if remaining <= self.min {
            return remaining;
        }
        let mut center = self.avg;
        if remaining > self.max {
            remaining = self.max;
        } else if remaining < center {
            center = remaining;
        }
        let src = &source[..remaining];
        // Bytes are tested in pairs from `min`; a last odd byte is never a cut candidate.
        let small_end = (center / 2) * 2;
        let large_end = (remaining / 2) * 2;
        let mut hash = 0u64;
        let mut at = self.min;
        let small = (self.mask_s, self.mask_s_ls, self.zero_skips_s);
        let large = (self.mask_l, self.mask_l_ls, self.zero_skips_l);
        for (end, (m, m_ls, skips)) in [(small_end, small), (large_end, large)] {
            if let Err(cut) = self.scan(src, &mut at, end, &mut hash, m, m_ls, skips) {
                return cut;
            }
        }
        remaining
    }

    /// Test the pairs from `*at` (even) up to `end`; `Err(cut)` at the first cut.
    #[allow(clippy::too_many_arguments)]
    #[inline(always)]
    fn scan(
        &self,
        src: &[u8],
        at: &mut usize,
        end: usize,
        hash: &mut u64,
        mask: u64,
        mask_ls: u64,
        zero_skips: bool,
    ) -> Result<(), usize> {
        let mut a = *at;
        let mut h = *hash;
        while a < end {
            // The zero-run test runs once per block, off the hash's dependency chain.
            let block_end = end.min(a + ZERO_TEST_EVERY);
            while a < block_end {
                h = (h << 2).wrapping_add(self.gear_ls[src[a] as usize]);
                if h & mask_ls == 0 {
                    return Err(a);
                }
                h = h.wrapping_add(self.gear[src[a + 1] as usize]);
                if h & mask == 0 {
                    return Err(a + 1);
                }
                a += 2;
            }
            if h == self.zero_hash && zero_skips {
                // Every following zero byte leaves the hash at `Z`, which cuts nowhere.
                // Resume at the pair holding the first non-zero byte.
                a += zero_run(&src[a..end]) & !1;
            }
        }
        *at = a.max(end);
        *hash = h;
        Ok(())
    }
}

/// Bytes hashed between two checks for a run of zeros (even).
const ZERO_TEST_EVERY: usize = 256;

#[cfg(test)]
mod tests {
    use super::*;
    use crate::engine::testdata::noise;
    use fastcdc::v2020::FastCDC;
    use proptest::prelude::*;

    /// The crate's cut of `data`, as our chunker used to call it.
    fn reference(data: &[u8], p: ChunkerParams) -> usize {
        let cdc = FastCDC::new(
            data,
            p.min_size as usize,
            p.avg_size as usize,
            p.max_size as usize,
        );
        let (_, cut) = cdc.cut(0, data.len());
        if cut == 0 {
            data.len()
        } else {
            cut
        }
    }

    /// Every cut of `data` by both, start to end.
    fn assert_same_cuts(data: &[u8], p: ChunkerParams) {
        let g = GearCut::new(p);
        let mut s = 0;
        while s < data.len() {
            let ours = g.cut(&data[s..]);
            assert_eq!(ours, reference(&data[s..], p), "cut at offset {s}");
            assert!(ours > 0);
            s += ours;
        }
    }

    #[test]
    fn the_default_parameters_skip_zero_runs() {
        let g = GearCut::new(ChunkerParams::default());
        assert!(g.zero_skips_s && g.zero_skips_l);
    }

    #[test]
    fn same_cuts_on_noise_and_zero_runs_at_every_size() {
        for avg in [8 * 1024, 16 * 1024, 64 * 1024, 1 << 20] {
            let p = ChunkerParams::from_avg(avg).unwrap();
            let x = &mut (avg as u64);
            let mut data = noise(x, 3 * avg as usize);
            for run in [
                1,
                63,
                64,
                65,
                4095,
                4096,
                4097,
                avg as usize,
                5 * avg as usize + 3,
            ] {
                data.extend(vec![0u8; run]);
                data.extend(noise(x, run % 9000 + 1));
            }
            data.extend(vec![0u8; 2 * p.max_size as usize + 1]);
            assert_same_cuts(&data, p);
        }
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(64))]
        /// Mixtures of noise, zeros and low-entropy bytes, at the test parameters.
        #[test]
        fn same_cuts_as_fastcdc(parts in prop::collection::vec((0u8..3, 1usize..40_000), 1..40), seed in 1u64..) {
            let p = ChunkerParams::from_avg(8 * 1024).unwrap();
            let x = &mut { seed };
            let mut data = Vec::new();
            for (kind, len) in parts {
                match kind {
                    0 => data.extend(noise(x, len)),
                    1 => data.extend(vec![0u8; len]),
                    _ => data.extend(noise(x, len).iter().map(|b| b & 1)),
                }
            }
            assert_same_cuts(&data, p);
        }
    }
}

//! Telling runs of zeros (a VM image's free space, a preallocated file) from data, by
//! comparing against a block of zeros (a `memcmp`, several times faster than hashing).

const BLOCK: usize = 4096;
static ZEROS: [u8; BLOCK] = [0; BLOCK];

/// Whether every byte of `data` is zero.
pub fn all_zero(data: &[u8]) -> bool {
    let mut blocks = data.chunks_exact(BLOCK);
    blocks.all(|b| b == ZEROS) && blocks.remainder().iter().all(|&b| b == 0)
}

/// Length of the run of zero bytes at the start of `data`.
pub fn zero_run(data: &[u8]) -> usize {
    // Short blocks: the run usually ends inside the first few hundred bytes of data.
    const STEP: usize = 256;
    let whole = data
        .chunks_exact(STEP)
        .take_while(|b| *b == &ZEROS[..STEP])
        .count()
        * STEP;
    whole + data[whole..].iter().take_while(|&&b| b == 0).count()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn runs_and_blocks() {
        assert!(all_zero(&[]));
        assert!(all_zero(&[0u8; 10_000]));
        for at in [0, 4095, 4096, 9999] {
            let mut d = vec![0u8; 10_000];
            d[at] = 1;
            assert!(!all_zero(&d), "byte {at}");
            assert_eq!(zero_run(&d), at);
        }
        assert_eq!(zero_run(&[0u8; 1000]), 1000);
        assert_eq!(zero_run(&[]), 0);
    }
}

//! Test data shared by the engine's unit tests.

/// `n` pseudo-random bytes (xorshift), continuing the stream in `x` (not zero).
pub fn noise(x: &mut u64, n: usize) -> Vec<u8> {
    (0..n)
        .map(|_| {
            *x ^= *x << 13;
            *x ^= *x >> 7;
            *x ^= *x << 17;
            *x as u8
        })
        .collect()
}

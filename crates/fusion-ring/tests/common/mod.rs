//! Helpers shared by the integration tests: the deterministic content of
//! test messages, a small generator, and child processes ([`child`]).

#![allow(dead_code)] // each test binary uses its own subset

pub mod child;

/// splitmix64.
pub fn mix(mut z: u64) -> u64 {
    // splitmix64
    z = z.wrapping_add(0x9E37_79B9_7F4A_7C15);
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

/// Word `k` of message `tag`: word 0 is the tag itself, the others a cheap
/// hash of (tag, k).
#[inline(always)]
pub fn word(tag: u64, k: u64) -> u64 {
    if k == 0 {
        return tag;
    }
    let z = (tag.wrapping_mul(0xD6E8_FEB8_6659_FD93) ^ k.wrapping_mul(0x9E37_79B9_7F4A_7C15))
        .wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z ^ (z >> 29)
}

/// Writes the content of message `tag` into all of `buf`.
pub fn fill(tag: u64, buf: &mut [u8]) {
    let mut chunks = buf.chunks_exact_mut(8);
    let mut k = 0;
    for c in &mut chunks {
        c.copy_from_slice(&word(tag, k).to_le_bytes());
        k += 1;
    }
    let rest = chunks.into_remainder();
    let w = word(tag, k).to_le_bytes();
    rest.copy_from_slice(&w[..rest.len()]);
}

/// A small deterministic generator (splitmix64 over a counter).
pub struct Rng(pub u64);

impl Rng {
    pub fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(1);
        mix(self.0)
    }
    /// Uniform in `0..n` (n > 0).
    pub fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
    /// Uniform in `lo..=hi`.
    pub fn range(&mut self, lo: usize, hi: usize) -> usize {
        lo + self.below((hi - lo + 1) as u64) as usize
    }
    /// Log-uniform in `lo..=hi` (lo >= 1): every power of two as likely.
    pub fn log_range(&mut self, lo: usize, hi: usize) -> usize {
        let (a, b) = ((lo as f64).ln(), ((hi + 1) as f64).ln());
        let u = (self.next() >> 11) as f64 / (1u64 << 53) as f64;
        ((a + (b - a) * u).exp() as usize).clamp(lo, hi)
    }
}

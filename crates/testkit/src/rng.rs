//! Deterministic randomness and message contents: splitmix64 ([`mix`]), a
//! small generator over it ([`Rng`]), and the bytes of test message `tag`
//! ([`fill`]), which a receiver can check without being told them
//! ([`is_message`], [`assert_message`]).
//!
//! Seeds are printed by the tests that take them (`FRING_FUZZ_SEED`,
//! `FRING_DEATH_SEED`): the sequences here must not change, or a printed
//! seed no longer reproduces its run.

/// splitmix64's increment (the golden ratio): also a good odd multiplier.
pub const GOLDEN: u64 = 0x9E37_79B9_7F4A_7C15;

/// splitmix64's output function applied to `z + GOLDEN`, a bijective 64-bit
/// hash: `mix(s)`, `mix(s + GOLDEN)`, ... is splitmix64 seeded with `s`.
///
/// ```
/// use fusion_ring_testkit::rng::mix;
/// assert_eq!(mix(0), 0xE220_A839_7B1D_CDAF); // splitmix64(0)'s first output
/// ```
pub fn mix(mut z: u64) -> u64 {
    z = z.wrapping_add(GOLDEN);
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

/// A small deterministic generator: [`mix`] of a state that moves by a
/// fixed step. Two sequences, both kept because tests derive sizes and
/// seeds from them:
///
/// - [`Rng::new`]: splitmix64 itself (the state moves by [`GOLDEN`]);
/// - [`Rng::counter`]: `mix(seed + 1)`, `mix(seed + 2)`, ... (splitmix64's
///   output over a counter).
///
/// ```
/// use fusion_ring_testkit::rng::{mix, Rng};
/// let mut r = Rng::counter(41);
/// assert_eq!(r.next(), mix(42));
/// let mut s = Rng::new(7);
/// assert_eq!(s.next(), mix(7));
/// assert!(s.below(10) < 10);
/// ```
#[derive(Debug, Clone)]
pub struct Rng {
    state: u64,
    step: u64,
}

impl Rng {
    /// splitmix64 seeded with `seed`: `mix(seed)`, `mix(seed + GOLDEN)`, ...
    pub fn new(seed: u64) -> Self {
        Rng {
            state: seed.wrapping_sub(GOLDEN),
            step: GOLDEN,
        }
    }

    /// `mix(seed + 1)`, `mix(seed + 2)`, ...
    pub fn counter(seed: u64) -> Self {
        Rng {
            state: seed,
            step: 1,
        }
    }

    /// The next 64 random bits.
    #[allow(clippy::should_implement_trait)] // not an iterator: never ends
    pub fn next(&mut self) -> u64 {
        self.state = self.state.wrapping_add(self.step);
        mix(self.state)
    }

    /// Uniform in `0..n` (0 when `n` is 0).
    pub fn below(&mut self, n: u64) -> u64 {
        self.next() % n.max(1)
    }

    /// Uniform in `lo..=hi`.
    pub fn range(&mut self, lo: usize, hi: usize) -> usize {
        lo + self.below((hi - lo + 1) as u64) as usize
    }

    /// Log-uniform in `lo..=hi` (`lo >= 1`): every power of two as likely.
    pub fn log_range(&mut self, lo: usize, hi: usize) -> usize {
        let (a, b) = ((lo as f64).ln(), ((hi + 1) as f64).ln());
        let u = (self.next() >> 11) as f64 / (1u64 << 53) as f64;
        ((a + (b - a) * u).exp() as usize).clamp(lo, hi)
    }

    /// True with probability `pct` percent.
    pub fn pct(&mut self, pct: u64) -> bool {
        self.below(100) < pct
    }
}

/// Word `k` of message `tag`: word 0 is the tag itself, the others a cheap
/// hash of (tag, k).
#[inline(always)]
pub fn word(tag: u64, k: u64) -> u64 {
    if k == 0 {
        return tag;
    }
    let z = (tag.wrapping_mul(0xD6E8_FEB8_6659_FD93) ^ k.wrapping_mul(GOLDEN))
        .wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z ^ (z >> 29)
}

/// Writes the content of message `tag` into all of `buf`: its words
/// ([`word`]) little-endian, the last one cut short. A message of 8 bytes
/// or more starts with its tag.
///
/// ```
/// use fusion_ring_testkit::rng::{fill, is_message};
/// let mut m = [0u8; 20];
/// fill(9, &mut m);
/// assert_eq!(m[..8], 9u64.to_le_bytes());
/// assert!(is_message(9, &m));
/// ```
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

/// Whether `got` is the content of message `tag` (of its length).
pub fn is_message(tag: u64, got: &[u8]) -> bool {
    got.chunks(8)
        .zip(0..)
        .all(|(c, k)| c == &word(tag, k).to_le_bytes()[..c.len()])
}

/// Panics, naming `who` and the first difference, unless `got` is message
/// `tag` of `len` bytes. `scratch` must hold at least `len` bytes.
pub fn assert_message(who: &str, tag: u64, len: usize, got: &[u8], scratch: &mut [u8]) {
    assert_eq!(
        got.len(),
        len,
        "{who}: message {tag} has length {}, expected {len}",
        got.len()
    );
    let want = &mut scratch[..len];
    fill(tag, want);
    if got != &want[..] {
        let at = got.iter().zip(want.iter()).position(|(a, b)| a != b);
        let at = at.expect("slices differ");
        panic!(
            "{who}: message {tag} ({len} bytes) differs at byte {at}: got {:#04x}, expected {:#04x} \
             (got[{at}..] = {:02x?}, expected {:02x?})",
            got[at],
            want[at],
            &got[at..(at + 16).min(len)],
            &want[at..(at + 16).min(len)],
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn new_is_splitmix64() {
        // The reference sequence of splitmix64 seeded with 0.
        let mut r = Rng::new(0);
        assert_eq!(
            [r.next(), r.next(), r.next()],
            [
                0xE220_A839_7B1D_CDAF,
                0x6E78_9E6A_A1B9_65F4,
                0x06C4_5D18_8009_454F
            ]
        );
    }

    #[test]
    fn both_sequences_are_what_the_tests_were_seeded_with() {
        // `Rng::new`: hostile_peer's generator (state moves after the output).
        let mut state = 0x5EED_u64;
        let mut r = Rng::new(state);
        for _ in 0..100 {
            let z = state;
            state = state.wrapping_add(GOLDEN);
            assert_eq!(r.next(), mix(z));
        }
        // `Rng::counter`: tests/common's `Rng(seed)` (counter moves first).
        let mut counter = u64::MAX - 3; // wraps
        let mut r = Rng::counter(counter);
        for _ in 0..100 {
            counter = counter.wrapping_add(1);
            assert_eq!(r.next(), mix(counter));
        }
    }

    #[test]
    fn ranges_stay_in_range() {
        let mut r = Rng::counter(1);
        for _ in 0..10_000 {
            assert!((3..=9).contains(&r.range(3, 9)));
            assert!((41..=1 << 20).contains(&r.log_range(41, 1 << 20)));
            assert!(r.below(7) < 7);
        }
        assert_eq!(r.below(0), 0);
        assert!((0..1000).all(|_| !r.pct(0)) && (0..1000).all(|_| r.pct(100)));
    }

    #[test]
    fn message_contents_are_checked_to_the_byte() {
        for len in [0, 1, 7, 8, 9, 64, 1000] {
            let mut m = vec![0u8; len];
            fill(len as u64 * 31, &mut m);
            assert!(is_message(len as u64 * 31, &m));
            assert_message("t", len as u64 * 31, len, &m, &mut vec![0; len]);
            if len > 0 {
                m[len - 1] ^= 1;
                assert!(!is_message(len as u64 * 31, &m), "{len}");
            }
        }
        // Different tags, different bytes (past the tag word too).
        let (mut a, mut b) = ([0u8; 16], [0u8; 16]);
        fill(1, &mut a);
        fill(2, &mut b);
        assert_ne!(a[8..], b[8..]);
    }

    #[test]
    #[should_panic(expected = "differs at byte 12")]
    fn assert_message_names_the_first_difference() {
        let mut m = [0u8; 32];
        fill(5, &mut m);
        m[12] ^= 0xff;
        assert_message("t", 5, 32, &m, &mut [0u8; 32]);
    }
}

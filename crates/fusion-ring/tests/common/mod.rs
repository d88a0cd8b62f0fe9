//! Helpers shared by the integration tests: the deterministic content of
//! test messages.

#![allow(dead_code)] // each test binary uses its own subset

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

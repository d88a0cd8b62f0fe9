//! Packed slots: several small messages of one batch in one slot line.
//!
//! A batch of messages of one class, none longer than
//! [`PACKED_RECORD_MAX`] bytes, is stored end to end: a slot's 40 payload
//! bytes hold a record count, then each record as a length byte and its
//! bytes. The slot's `meta` says `SlotKind::Packed`, its class, and as its
//! length the longest record's: a receive claim checks that length against
//! the caller's buffer as it checks a plain message's, so one buffer big
//! enough for the claim takes every record of the slot.
//!
//! ```text
//! payload: [count][len0][bytes0 ...][len1][bytes1 ...] ... (<= 40 bytes)
//! meta:    longest record | Packed << 32 | class << 40
//! ```
//!
//! Why one line and no more: a record never crosses a slot, so packing is a
//! slot content like any other and the slot protocols, their models and
//! peer-death recovery do not change. Eight-byte messages travel four to a
//! line, four-byte ones seven: a batch of small messages moves a quarter to
//! a seventh of the lines. Messages of 19 bytes or more gain nothing (two
//! of them do not fit a line with their headers) and go a line each, as
//! before.
//!
//! A receiver that takes a packed slot takes all its records from the ring
//! at once; those its call has no room for wait in the handle
//! (`ring::Ring`'s carry) and come out first at the next receive.
//! A peer writes these bytes, so decoding trusts none of them: a count of
//! 0, a record running past the line or longer than the slot's stated
//! length is a corrupt slot.

use crate::lockfree::protocol::PAYLOAD_WORDS;
use crate::shm::layout::SLOT_PAYLOAD;

/// The longest message a packed slot carries: two records of 18 bytes and
/// their length bytes fill 39 of the 40 bytes with the count.
pub(crate) const PACKED_RECORD_MAX: usize = (SLOT_PAYLOAD - 1) / 2 - 1;

/// How many messages of at most `longest` bytes one slot holds packed
/// (fewer than 2: packing gains nothing).
#[inline(always)]
pub(crate) const fn per_slot(longest: usize) -> usize {
    (SLOT_PAYLOAD - 1) / (longest + 1)
}

/// Packs `records` (at most `per_slot` of the longest, checked by the
/// caller) into one slot's payload words.
#[inline]
pub(crate) fn pack<'m>(records: impl Iterator<Item = &'m [u8]>) -> [u64; PAYLOAD_WORDS] {
    let mut bytes = [0u8; SLOT_PAYLOAD];
    let (mut count, mut at) = (0u8, 1);
    for r in records {
        bytes[at] = r.len() as u8;
        bytes[at + 1..at + 1 + r.len()].copy_from_slice(r);
        at += 1 + r.len();
        count += 1;
    }
    bytes[0] = count;
    let mut words = [0u64; PAYLOAD_WORDS];
    for (w, chunk) in words.iter_mut().zip(bytes.chunks_exact(8)) {
        *w = u64::from_le_bytes(chunk.try_into().expect("8-byte chunk"));
    }
    words
}

/// The records of a packed slot, checked; taken one by one with
/// [`Records::next_words`].
#[derive(Clone, Copy)]
pub(crate) struct Records {
    bytes: [u8; SLOT_PAYLOAD],
    left: u8,
    at: u8,
}

impl Records {
    /// Checks a packed slot's payload against what its meta states: the
    /// longest record (`longest`) and the record count (`count`, which a
    /// receive claim budgeted with). A description of what is wrong if a
    /// peer scribbled it.
    pub(crate) fn check(
        words: &[u64; PAYLOAD_WORDS],
        longest: usize,
        count: u8,
    ) -> Result<Self, String> {
        let mut bytes = [0u8; SLOT_PAYLOAD];
        for (chunk, w) in bytes.chunks_exact_mut(8).zip(words) {
            chunk.copy_from_slice(&w.to_le_bytes());
        }
        if bytes[0] != count || count == 0 {
            return Err(format!(
                "packed slot holds {} records, its meta says {count}",
                bytes[0]
            ));
        }
        let mut at = 1;
        for k in 0..count {
            let Some(&len) = bytes.get(at) else {
                return Err(format!(
                    "packed record {k} of {count} starts at byte {at}, past the slot's {SLOT_PAYLOAD}"
                ));
            };
            let len = len as usize;
            if len > longest {
                return Err(format!(
                    "packed record {k} is {len} bytes, longer than the slot's stated {longest}"
                ));
            }
            if at + 1 + len > SLOT_PAYLOAD {
                return Err(format!(
                    "packed record {k} ({len} bytes at byte {at}) runs past the slot's \
                     {SLOT_PAYLOAD} bytes"
                ));
            }
            at += 1 + len;
        }
        Ok(Records {
            bytes,
            left: count,
            at: 1,
        })
    }

    /// Whether every record was taken.
    pub(crate) fn is_empty(&self) -> bool {
        self.left == 0
    }

    /// The length of the next record (0 if none is left).
    pub(crate) fn peek_len(&self) -> usize {
        if self.is_empty() {
            return 0;
        }
        self.bytes[self.at as usize] as usize
    }

    /// Takes the next record into `dst` (zero past its length); its length.
    #[inline]
    pub(crate) fn next_into(&mut self, dst: &mut [u8; SLOT_PAYLOAD]) -> Option<usize> {
        if self.is_empty() {
            return None;
        }
        // Bounds were checked by `check`; indexing stays checked anyway.
        let at = self.at as usize;
        let len = self.bytes[at] as usize;
        *dst = [0; SLOT_PAYLOAD];
        dst[..len].copy_from_slice(&self.bytes[at + 1..at + 1 + len]);
        self.at += 1 + len as u8;
        self.left -= 1;
        Some(len)
    }

    /// Takes the next record: its bytes as a slot's payload words (zero
    /// past its length, as an inline slot's) and its length.
    pub(crate) fn next_words(&mut self) -> Option<([u64; PAYLOAD_WORDS], usize)> {
        if self.is_empty() {
            return None;
        }
        // Bounds were checked by `check`; indexing stays checked anyway.
        let mut record = [0u8; SLOT_PAYLOAD];
        let len = self.next_into(&mut record)?;
        let mut words = [0u64; PAYLOAD_WORDS];
        for (w, chunk) in words.iter_mut().zip(record.chunks_exact(8)) {
            *w = u64::from_le_bytes(chunk.try_into().expect("8-byte chunk"));
        }
        Some((words, len))
    }
}

#[cfg(all(test, not(fusion_ring_loom)))]
mod tests {
    use super::*;

    fn unpack(words: &[u64; PAYLOAD_WORDS], longest: usize) -> Result<Vec<Vec<u8>>, String> {
        let count = words[0] as u8;
        let mut records = Records::check(words, longest, count)?;
        let mut out = Vec::new();
        while let Some((words, len)) = records.next_words() {
            let bytes: Vec<u8> = words.iter().flat_map(|w| w.to_le_bytes()).collect();
            assert!(bytes[len..].iter().all(|&b| b == 0), "zero past the record");
            out.push(bytes[..len].to_vec());
        }
        Ok(out)
    }

    #[test]
    fn every_length_packs_as_many_as_fit_and_round_trips() {
        for longest in 0..=PACKED_RECORD_MAX {
            let n = per_slot(longest);
            assert!(n >= 2, "{longest} bytes pack {n} to a slot");
            let records: Vec<Vec<u8>> = (0..n)
                .map(|k| (0..longest - k.min(longest)).map(|b| (b * 7 + k) as u8).collect())
                .collect();
            let words = pack(records.iter().map(Vec::as_slice));
            assert_eq!(unpack(&words, longest).unwrap(), records);
        }
        assert_eq!(per_slot(PACKED_RECORD_MAX + 1), 1);
        assert_eq!((per_slot(8), per_slot(4), per_slot(0)), (4, 7, 39));
    }

    #[test]
    fn scribbled_slots_are_named_not_trusted() {
        let words = pack([b"abcd".as_slice(), b"ef"].into_iter());
        assert!(unpack(&words, 3).unwrap_err().contains("longer than the slot's stated 3"));
        let mut bytes = [0u8; SLOT_PAYLOAD];
        let to_words = |b: &[u8; SLOT_PAYLOAD]| -> [u64; PAYLOAD_WORDS] {
            core::array::from_fn(|i| u64::from_le_bytes(b[8 * i..8 * i + 8].try_into().unwrap()))
        };
        assert!(unpack(&to_words(&bytes), 40).unwrap_err().contains("holds 0 records"));
        let two = pack([b"ab".as_slice(), b"c"].into_iter());
        let err = Records::check(&two, 2, 3).err().unwrap();
        assert!(err.contains("holds 2 records, its meta says 3"), "{err}");
        bytes[0] = 2;
        bytes[1] = 38; // one record of 38 fills the line; the second has no room
        assert!(unpack(&to_words(&bytes), 40).unwrap_err().contains("past the slot's 40"));
        bytes[0] = 1;
        bytes[1] = 39;
        assert!(unpack(&to_words(&bytes), 40).unwrap_err().contains("runs past"));
        bytes[0] = 255;
        bytes[1] = 0;
        assert!(unpack(&to_words(&bytes), 40).unwrap_err().contains("past the slot's 40"));
    }
}

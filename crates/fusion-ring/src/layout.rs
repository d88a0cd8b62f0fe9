//! The shared-memory contract: the `#[repr(C)]` structures every process maps.
//!
//! ```text
//! offset 0            SegmentHeader (one page): magic, layout version and hash,
//!                     capacity, the offset of every region, creator, tick rate
//! control_offset      ControlBlock: one 64-B line each for producer_head,
//!                     producer_tail, consumer_head, consumer_tail, then lines
//!                     reserved for RingSync / credits / coalescing
//! participants_offset ParticipantEntry x MAX_PARTICIPANTS: identity line +
//!                     LaneCounters[5], each written by one handle only
//! arena_offset        zero-copy arena (arena_len bytes; 0 in layout v1)
//! slots_offset        Slot x capacity (64 B each, page aligned); the file
//!                     ends with the last slot
//! ```
//!
//! Every field is a fixed-width little-endian integer; everything another
//! process may write is an atomic, so a misbehaving peer can make us read
//! garbage values but never causes a data race. Regions are page aligned and
//! their offsets are recomputed from the capacity when a segment is opened,
//! so a header whose offsets disagree with its capacity is rejected.

use crate::atomic::{AtomicU32, AtomicU64};

/// First 8 bytes of every segment: `"FRING\0v\x01"` read as little-endian u64.
pub(crate) const MAGIC: u64 = u64::from_le_bytes(*b"FRING\0v\x01");
/// Bumped on every incompatible change of the structures below.
pub(crate) const LAYOUT_VERSION: u32 = 1;
/// Header flag: producers do not timestamp messages (see `Config::timestamps`).
pub(crate) const FLAG_NO_TIMESTAMPS: u32 = 1;
/// Every flag this build knows.
pub(crate) const KNOWN_FLAGS: u32 = FLAG_NO_TIMESTAMPS;
/// Size of a slot.
pub(crate) const SLOT_SIZE: usize = 64;
/// Header bytes of a slot (sequence, timestamp, meta).
pub(crate) const SLOT_HEADER: usize = 24;
/// Payload bytes of a slot: the inline limit.
pub(crate) const SLOT_PAYLOAD: usize = SLOT_SIZE - SLOT_HEADER;
/// Participant entries per segment; entry 0 is the shared "retired" entry.
pub(crate) const MAX_PARTICIPANTS: usize = 64;
/// Buckets of the log2 latency histogram per lane (bucket i holds latencies
/// in `[2^(i-1), 2^i)` ticks; the last one everything above).
pub(crate) const LATENCY_BUCKETS: usize = 23;
/// Regions start on page boundaries.
pub(crate) const PAGE: usize = 4096;
/// Smallest and largest ring capacity (slots).
pub(crate) const MIN_CAPACITY: usize = 2;
pub(crate) const MAX_CAPACITY: usize = 1 << 24;

/// A value alone on its 64-byte cache line (no false sharing).
#[repr(C, align(64))]
#[derive(Default)]
pub(crate) struct CacheLine<T> {
    pub(crate) value: T,
}

/// Page 0 of a segment. Written by the creator before `magic`; read once,
/// into a [`Geometry`], by every opener.
#[repr(C)]
pub(crate) struct SegmentHeader {
    /// [`MAGIC`], stored last with `Release` by the creator.
    pub(crate) magic: AtomicU64,
    pub(crate) layout_version: AtomicU32,
    pub(crate) header_size: AtomicU32,
    pub(crate) layout_hash: AtomicU64,
    pub(crate) total_size: AtomicU64,
    pub(crate) capacity: AtomicU64,
    pub(crate) slot_size: AtomicU32,
    pub(crate) max_participants: AtomicU32,
    pub(crate) control_offset: AtomicU64,
    pub(crate) participants_offset: AtomicU64,
    pub(crate) slots_offset: AtomicU64,
    pub(crate) arena_offset: AtomicU64,
    pub(crate) arena_len: AtomicU64,
    pub(crate) created_unix_ns: AtomicU64,
    pub(crate) creator_pid: AtomicU32,
    /// `FLAG_*` bits, fixed at creation.
    pub(crate) flags: AtomicU32,
    /// Creator's calibrated ticks per ns, as `f64::to_bits` (for tools that
    /// read the segment from another process).
    pub(crate) ticks_per_ns_bits: AtomicU64,
    _reserved: [u8; PAGE - 112],
}

/// The ring's shared counters, each on its own cache line.
#[repr(C)]
pub(crate) struct ControlBlock {
    /// Next position a producer will claim (CAS).
    pub(crate) producer_head: CacheLine<AtomicU64>,
    /// Reserved for the blocking layer's "published" event counter.
    pub(crate) producer_tail: CacheLine<AtomicU64>,
    /// Next position a consumer will claim (CAS).
    pub(crate) consumer_head: CacheLine<AtomicU64>,
    /// Reserved for the blocking layer's "released" event counter.
    pub(crate) consumer_tail: CacheLine<AtomicU64>,
    /// RingSync futex words, credits and coalescing (later layout versions).
    pub(crate) reserved: [CacheLine<AtomicU64>; 12],
}

/// One 64-byte slot: 24-B header + 40-B payload, all atomics (see module docs).
#[repr(C, align(64))]
pub(crate) struct Slot {
    /// Vyukov sequence word: `pos` = free for the producer of `pos`,
    /// `pos + 1` = holds message `pos`, `pos + capacity` = released.
    pub(crate) seq: AtomicU64,
    /// Send timestamp ([`crate::Clock`] ticks).
    pub(crate) stamp: AtomicU64,
    /// `len` (bits 0..32) | `kind` (32..40) | `priority` (40..48).
    pub(crate) meta: AtomicU64,
    /// Inline bytes, or a zero-copy descriptor.
    pub(crate) payload: [AtomicU64; SLOT_PAYLOAD / 8],
}

/// What a slot carries.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u8)]
pub(crate) enum SlotKind {
    Inline = 1,
    ZeroCopy = 2,
    /// A skipped slot (e.g. reclaimed from a dead producer).
    Tombstone = 3,
}

impl SlotKind {
    pub(crate) fn from_u8(v: u8) -> Option<Self> {
        match v {
            1 => Some(Self::Inline),
            2 => Some(Self::ZeroCopy),
            3 => Some(Self::Tombstone),
            _ => None,
        }
    }
}

#[inline(always)]
pub(crate) const fn pack_meta(len: u32, kind: SlotKind, priority: u8) -> u64 {
    len as u64 | (kind as u64) << 32 | (priority as u64) << 40
}

/// `(len, kind byte, priority byte)`: unvalidated, straight from the slot.
#[inline(always)]
pub(crate) const fn unpack_meta(meta: u64) -> (u32, u8, u8) {
    (meta as u32, (meta >> 32) as u8, (meta >> 40) as u8)
}

/// Identity of a participant (one ring handle).
#[repr(C, align(64))]
pub(crate) struct ParticipantId {
    /// 0 = free, 1 = in use.
    pub(crate) state: AtomicU32,
    /// Bit 0 = sends, bit 1 = receives (as observed so far).
    pub(crate) role: AtomicU32,
    pub(crate) pid: AtomicU32,
    _pad0: u32,
    /// Process start time (`/proc/PID/stat` field 22) to tell a reused pid.
    pub(crate) start_time: AtomicU64,
    pub(crate) heartbeat: AtomicU64,
}

/// Counters of one priority lane, written only by the owning handle.
#[repr(C, align(64))]
pub(crate) struct LaneCounters {
    pub(crate) sent: AtomicU64,
    pub(crate) sent_bytes: AtomicU64,
    pub(crate) inline_sent: AtomicU64,
    pub(crate) zerocopy_sent: AtomicU64,
    pub(crate) received: AtomicU64,
    pub(crate) received_bytes: AtomicU64,
    pub(crate) latency_sum: AtomicU64,
    /// Smallest latency seen plus one (0 = none yet).
    pub(crate) latency_min_plus1: AtomicU64,
    pub(crate) latency_max: AtomicU64,
    pub(crate) latency_hist: [AtomicU64; LATENCY_BUCKETS],
}

/// One handle's identity and its five lanes of counters.
#[repr(C)]
pub(crate) struct ParticipantEntry {
    pub(crate) id: ParticipantId,
    pub(crate) lanes: [LaneCounters; 5],
}

/// Where every region of a segment lies; derived from the capacity alone.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Geometry {
    pub(crate) capacity: usize,
    pub(crate) control_offset: usize,
    pub(crate) participants_offset: usize,
    pub(crate) slots_offset: usize,
    pub(crate) arena_offset: usize,
    pub(crate) arena_len: usize,
    pub(crate) total_size: usize,
}

const fn page_up(n: usize) -> usize {
    (n + PAGE - 1) & !(PAGE - 1)
}

impl Geometry {
    /// The layout of a ring of `capacity` slots (validated by the caller).
    ///
    /// The slot array comes last and the file ends exactly where it ends, so
    /// the file size pins the capacity down: a header whose capacity field
    /// was changed no longer matches the size of its file.
    pub(crate) const fn for_capacity(capacity: usize) -> Self {
        let control_offset = PAGE;
        let participants_offset = page_up(control_offset + core::mem::size_of::<ControlBlock>());
        let arena_offset = page_up(
            participants_offset + MAX_PARTICIPANTS * core::mem::size_of::<ParticipantEntry>(),
        );
        let arena_len = 0;
        let slots_offset = page_up(arena_offset + arena_len);
        Geometry {
            capacity,
            control_offset,
            participants_offset,
            slots_offset,
            arena_offset,
            arena_len,
            total_size: slots_offset + capacity * SLOT_SIZE,
        }
    }
}

/// Checks a capacity: a power of two in `MIN_CAPACITY..=MAX_CAPACITY`.
pub(crate) fn check_capacity(capacity: usize) -> crate::Result<()> {
    if capacity.is_power_of_two() && (MIN_CAPACITY..=MAX_CAPACITY).contains(&capacity) {
        Ok(())
    } else {
        Err(crate::RingError::InvalidCapacity {
            capacity,
            min: MIN_CAPACITY,
            max: MAX_CAPACITY,
        })
    }
}

/// FNV-1a over the sizes and offsets the layout is made of: a segment from a
/// build whose structures differ in any of them has another hash.
pub(crate) const LAYOUT_HASH: u64 = {
    use core::mem::{offset_of, size_of};
    let parts: [u64; 20] = [
        LAYOUT_VERSION as u64,
        size_of::<SegmentHeader>() as u64,
        offset_of!(SegmentHeader, capacity) as u64,
        offset_of!(SegmentHeader, slots_offset) as u64,
        offset_of!(SegmentHeader, ticks_per_ns_bits) as u64,
        size_of::<ControlBlock>() as u64,
        offset_of!(ControlBlock, producer_head) as u64,
        offset_of!(ControlBlock, consumer_head) as u64,
        offset_of!(ControlBlock, reserved) as u64,
        size_of::<Slot>() as u64,
        offset_of!(Slot, seq) as u64,
        offset_of!(Slot, stamp) as u64,
        offset_of!(Slot, meta) as u64,
        offset_of!(Slot, payload) as u64,
        size_of::<ParticipantEntry>() as u64,
        offset_of!(ParticipantEntry, lanes) as u64,
        size_of::<LaneCounters>() as u64,
        offset_of!(LaneCounters, latency_hist) as u64,
        MAX_PARTICIPANTS as u64,
        LATENCY_BUCKETS as u64,
    ];
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    let mut i = 0;
    while i < parts.len() {
        let mut b = 0;
        while b < 8 {
            h ^= (parts[i] >> (b * 8)) & 0xff;
            h = h.wrapping_mul(0x0000_0100_0000_01b3);
            b += 1;
        }
        i += 1;
    }
    h
};

// The contract, checked at compile time (loom's atomics have other sizes).
#[cfg(not(fusion_ring_loom))]
const _: () = {
    use core::mem::{align_of, offset_of, size_of};
    assert!(size_of::<SegmentHeader>() == PAGE);
    assert!(offset_of!(SegmentHeader, magic) == 0);
    assert!(offset_of!(SegmentHeader, layout_version) == 8);
    assert!(offset_of!(SegmentHeader, layout_hash) == 16);
    assert!(offset_of!(SegmentHeader, total_size) == 24);
    assert!(offset_of!(SegmentHeader, capacity) == 32);
    assert!(offset_of!(SegmentHeader, slots_offset) == 64);
    assert!(offset_of!(SegmentHeader, ticks_per_ns_bits) == 104);
    assert!(size_of::<CacheLine<AtomicU64>>() == 64);
    assert!(size_of::<ControlBlock>() == 16 * 64);
    assert!(offset_of!(ControlBlock, producer_head) == 0);
    assert!(offset_of!(ControlBlock, producer_tail) == 64);
    assert!(offset_of!(ControlBlock, consumer_head) == 128);
    assert!(offset_of!(ControlBlock, consumer_tail) == 192);
    assert!(size_of::<Slot>() == SLOT_SIZE && align_of::<Slot>() == 64);
    assert!(offset_of!(Slot, seq) == 0);
    assert!(offset_of!(Slot, stamp) == 8);
    assert!(offset_of!(Slot, meta) == 16);
    assert!(offset_of!(Slot, payload) == SLOT_HEADER);
    assert!(size_of::<ParticipantId>() == 64);
    assert!(size_of::<LaneCounters>() == 256);
    assert!(size_of::<ParticipantEntry>() == 64 + 5 * 256);
    assert!(Geometry::for_capacity(MIN_CAPACITY).slots_offset % PAGE == 0);
};

#[cfg(all(test, not(fusion_ring_loom)))]
mod tests {
    use super::*;

    #[test]
    fn geometry_regions_are_ordered_aligned_and_disjoint() {
        for shift in 1..=24 {
            let g = Geometry::for_capacity(1 << shift);
            assert_eq!(g.control_offset, PAGE);
            assert!(g.participants_offset >= g.control_offset + size_of::<ControlBlock>());
            assert!(
                g.arena_offset
                    >= g.participants_offset + MAX_PARTICIPANTS * size_of::<ParticipantEntry>()
            );
            assert!(g.slots_offset >= g.arena_offset + g.arena_len);
            for off in [g.participants_offset, g.slots_offset, g.arena_offset] {
                assert_eq!(off % PAGE, 0, "{g:?}");
            }
            assert_eq!(g.total_size, g.slots_offset + (1 << shift) * SLOT_SIZE);
            // Distinct capacities give distinct file sizes (see for_capacity).
            assert_ne!(g.total_size, Geometry::for_capacity(1 << (shift + 1)).total_size);
        }
    }

    #[test]
    fn meta_round_trips() {
        for len in [0u32, 1, 40, u32::MAX] {
            for prio in 0..5u8 {
                let m = pack_meta(len, SlotKind::ZeroCopy, prio);
                assert_eq!(unpack_meta(m), (len, SlotKind::ZeroCopy as u8, prio));
            }
        }
        assert_eq!(SlotKind::from_u8(0), None);
        assert_eq!(SlotKind::from_u8(3), Some(SlotKind::Tombstone));
    }

    #[test]
    fn capacity_rules() {
        assert!(check_capacity(2).is_ok());
        assert!(check_capacity(1 << 24).is_ok());
        for bad in [0, 1, 3, 100, 1 << 25] {
            assert_eq!(
                check_capacity(bad),
                Err(crate::RingError::InvalidCapacity {
                    capacity: bad,
                    min: MIN_CAPACITY,
                    max: MAX_CAPACITY
                })
            );
        }
    }

    #[test]
    fn magic_and_hash_are_stable_within_a_build() {
        assert_eq!(&MAGIC.to_le_bytes(), b"FRING\0v\x01");
        assert_ne!(LAYOUT_HASH, 0);
    }
}

//! The shared-memory contract: the `#[repr(C)]` structures every process maps.
//!
//! ```text
//! offset 0            SegmentHeader (one page): magic, layout version and hash,
//!                     capacity, the offset of every region, creator, tick rate
//! control_offset      ControlBlock: one 64-B line each for producer_head,
//!                     roles_seen, consumer_head, consumer_tail, then lines
//!                     reserved for credits / coalescing
//! sync_offset         SyncBlock: the not-empty and not-full event counts
//! participants_offset ParticipantEntry x MAX_PARTICIPANTS: identity line +
//!                     LaneCounters[5], each written by one handle only
//! arena_offset        ArenaControl (bump pointer, free-list heads), then the
//!                     block area: [BlockHeader | payload] ... (absent when
//!                     the ring has no arena)
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
/// Bumped on every incompatible change of the structures below, or of
/// what they mean to the processes sharing them (4: a participant's life
/// is its liveness mark, not its pid, see `shm::liveness`; 5: a ring with
/// one producer and one consumer runs the protocol of `lockfree::single`;
/// 6: broadcast rings, a cursor line in each participant entry; 7: a
/// broadcast publisher marks a slot before rewriting it and subscribers
/// re-check it after reading, the overwrite policy).
pub(crate) const LAYOUT_VERSION: u32 = 7;
/// Header flag: producers do not timestamp messages (see `Config::timestamps`).
pub(crate) const FLAG_NO_TIMESTAMPS: u32 = 1;
/// Every flag this build knows.
pub(crate) const KNOWN_FLAGS: u32 = FLAG_NO_TIMESTAMPS
    | FLAG_WAKEUPS
    | FLAG_SINGLE_PRODUCER
    | FLAG_SINGLE_CONSUMER
    | FLAG_BROADCAST
    | FLAG_OVERWRITE;
/// Header flag: senders and receivers wake blocked peers (see `lockfree::event`).
pub(crate) const FLAG_WAKEUPS: u32 = 2;
/// Header flag: one handle at a time may send (see `Config::single_producer`).
pub(crate) const FLAG_SINGLE_PRODUCER: u32 = 4;
/// Header flag: one handle at a time may receive.
pub(crate) const FLAG_SINGLE_CONSUMER: u32 = 8;
/// Header flag: a broadcast ring (`Config::broadcast`): one publisher, and
/// subscribers that each read every message (`lockfree::broadcast`).
pub(crate) const FLAG_BROADCAST: u32 = 16;
/// Header flag, only with [`FLAG_BROADCAST`]: the publisher never waits for
/// subscribers and writes over the oldest message (`Config::overflow`).
pub(crate) const FLAG_OVERWRITE: u32 = 32;
/// Most subscribers a broadcast ring may have: every participant entry but
/// the shared entry 0 and one for the publisher.
pub const MAX_SUBSCRIBERS: usize = MAX_PARTICIPANTS - 2;
/// Size of a slot.
pub(crate) const SLOT_SIZE: usize = 64;
/// Header bytes of a slot (sequence, timestamp, meta).
pub(crate) const SLOT_HEADER: usize = 24;
/// Payload bytes of a slot: the inline limit.
pub(crate) const SLOT_PAYLOAD: usize = SLOT_SIZE - SLOT_HEADER;
/// Largest message that travels inline in a slot (the 40-byte payload).
pub const INLINE_MAX: usize = SLOT_PAYLOAD;
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
    /// Largest message the arena accepts (bytes; 40 without an arena).
    pub(crate) max_message: AtomicU64,
    /// On a broadcast ring, how many subscribers it admits (0 otherwise).
    pub(crate) max_subscribers: AtomicU32,
    _reserved: [u8; PAGE - 124],
}

/// The ring's shared counters, each on its own cache line.
#[repr(C)]
pub(crate) struct ControlBlock {
    /// Next position a producer will claim (CAS).
    pub(crate) producer_head: CacheLine<AtomicU64>,
    /// `ROLE_*` bits of every handle that ever sent or received: a
    /// blocking call reports `Disconnected` only once its other side has
    /// existed (see `handle::peer`).
    pub(crate) roles_seen: CacheLine<AtomicU64>,
    /// Next position a consumer will claim (CAS).
    pub(crate) consumer_head: CacheLine<AtomicU64>,
    /// Reserved for the blocking layer's "released" event counter.
    pub(crate) consumer_tail: CacheLine<AtomicU64>,
    /// On a single-producer ring, the handle that holds the producer role:
    /// its participant entry's index + 1 (0: none). Valid while that entry
    /// is in use, alive and has sent (`handle::roles`).
    pub(crate) producer_holder: CacheLine<AtomicU64>,
    /// The same for the consumer role of a single-consumer ring.
    pub(crate) consumer_holder: CacheLine<AtomicU64>,
    /// RingSync futex words, credits and coalescing (later layout versions).
    pub(crate) reserved: [CacheLine<AtomicU64>; 10],
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
    /// Its pid namespace (`process::pid_namespace`), so that tools can say
    /// when `pid` is not a pid of theirs.
    pub(crate) pid_ns: AtomicU32,
    /// Process start time (`/proc/PID/stat` field 22), shown by tools with
    /// the pid (liveness is the entry's mark, see `shm::liveness`).
    pub(crate) start_time: AtomicU64,
    /// The arena block this handle is taking or handing back, written
    /// before the step that a kill could leave half done (`arena::Taker`):
    /// `generation << 32 | (block index + 1)`, 0 = none.
    pub(crate) arena_claim: AtomicU64,
    /// Positions this handle is claiming or has claimed to send into, so a
    /// survivor can tell a slot a dead producer left unpublished (`handle::peer`).
    pub(crate) send_claim: ClaimRecord,
    /// Positions this handle is claiming or has claimed to receive.
    pub(crate) recv_claim: ClaimRecord,
    /// On a broadcast ring, the subscriber's cursor: the next position it
    /// reads (`lockfree::broadcast`). Written by the subscriber only.
    pub(crate) cursor: CacheLine<AtomicU64>,
}

/// Positions `start .. end` of a handle's latest claim, written before the
/// claim's CAS (`protocol`); `end <= start` means none. Alone on its line:
/// a handle's sends and receives may run in two processes (entry 0 is
/// shared by the handles that found the table full; before handles moved
/// to an entry of their own after a fork, a forked child used its parent's),
/// and records of a sender and a receiver sharing a line cost 1.5-3x in the
/// cross-process benchmarks.
#[repr(C, align(64))]
#[derive(Default)]
pub(crate) struct ClaimRecord {
    pub(crate) start: AtomicU64,
    pub(crate) end: AtomicU64,
}

impl ClaimRecord {
    /// Whether the claim covers position `pos`.
    pub(crate) fn covers(&self, pos: u64) -> bool {
        use crate::atomic::Ordering::Relaxed;
        (self.start.load(Relaxed)..self.end.load(Relaxed)).contains(&pos)
    }
}

/// Counters of one priority lane, written only by the owning handle. The
/// sending counters and the receiving ones are on separate cache lines: the
/// shared entry 0 may have a sender and a receiver in two processes, and
/// they must not bounce one line between them on every message.
#[repr(C, align(64))]
pub(crate) struct LaneCounters {
    pub(crate) sent: AtomicU64,
    pub(crate) sent_bytes: AtomicU64,
    pub(crate) inline_sent: AtomicU64,
    pub(crate) zerocopy_sent: AtomicU64,
    pub(crate) _send_pad: [u64; 4],
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

/// Bytes of a block header in the arena (the payload follows it).
pub(crate) const BLOCK_HEADER: usize = 64;
/// Payload capacity of size class 0; class `c` holds `MIN_BLOCK_PAYLOAD << c`.
pub(crate) const MIN_BLOCK_PAYLOAD: usize = 64;

/// Initial sequence word of slot `index` in a fresh ring: free for the
/// producer that claims position `index` (the meanings of a sequence word
/// are tabled in `lockfree::protocol`).
pub(crate) fn initial_seq(index: u64) -> u64 {
    index
}

/// Size class for a payload of `len` bytes (class `c` holds `64 << c`).
#[inline]
pub(crate) fn class_for(len: usize) -> usize {
    let units = len.div_ceil(MIN_BLOCK_PAYLOAD).max(1);
    units.next_power_of_two().trailing_zeros() as usize
}

/// Payload capacity of class `c`.
#[inline]
pub(crate) const fn class_payload(c: usize) -> usize {
    MIN_BLOCK_PAYLOAD << c
}

/// Bytes a block of class `c` takes in the block area.
#[inline]
pub(crate) const fn block_size(c: usize) -> usize {
    BLOCK_HEADER + class_payload(c)
}
/// Number of size classes (class 23 holds 512 MiB).
pub(crate) const MAX_CLASSES: usize = 24;

/// Head of the zero-copy arena: the carving pointer and one lock-free free
/// list per size class.
#[repr(C)]
pub(crate) struct ArenaControl {
    /// Bytes of the block area carved so far (a multiple of 64: blocks are
    /// never un-carved), plus in the low 6 bits the class + 1 of the last
    /// block carved (0: none), whose header its carver may not have written
    /// yet (see `arena::carve`).
    pub(crate) bump: CacheLine<AtomicU64>,
    /// Free-list heads, tagged: `tag << 32 | (block index + 1)`, 0 = empty;
    /// a block's index is its offset in the block area / 64.
    pub(crate) free: [CacheLine<AtomicU64>; MAX_CLASSES],
    /// Pid of the process sweeping the arena for abandoned blocks (0: none;
    /// see `Arena::reclaim`).
    pub(crate) sweeper: AtomicU64,
    pub(crate) _reserved: [AtomicU64; MAX_CLASSES - 1],
}

/// Header of an arena block; the payload follows.
#[repr(C, align(64))]
pub(crate) struct BlockHeader {
    /// Owners: the loan, the queued message, or receive guards.
    pub(crate) refcount: AtomicU32,
    /// Bumped each time the block is freed: a descriptor names the
    /// generation it was sent with, so a stale descriptor is detected.
    pub(crate) generation: AtomicU32,
    /// Payload length of the current message.
    pub(crate) len: AtomicU32,
    /// Size class (fixed when the block is carved).
    pub(crate) class: AtomicU32,
    /// Free-list link: index + 1 of the next free block, 0 = end.
    pub(crate) next: AtomicU64,
    /// Pid of the process holding it: its allocator, then the receiver that
    /// took it (0 if shared; see `Arena::take`), for reclaiming after a crash.
    pub(crate) owner_pid: AtomicU32,
    pub(crate) _pad: u32,
}

/// The blocking layer's words: one event count per direction, each on its
/// own line (see `lockfree::event`).
#[repr(C)]
pub(crate) struct SyncBlock {
    /// Bumped (and futex-woken) when a message is published to a waiter.
    pub(crate) not_empty: CacheLine<EventCount>,
    /// Bumped (and futex-woken) when a slot is released to a waiter.
    pub(crate) not_full: CacheLine<EventCount>,
}

/// A futex word and the number of waiters announced on it.
#[repr(C)]
pub(crate) struct EventCount {
    pub(crate) seq: AtomicU32,
    pub(crate) waiters: AtomicU32,
    /// Under loom, the futex is emulated with these (see `lockfree::event`).
    #[cfg(fusion_ring_loom)]
    pub(crate) parker: loom::sync::Mutex<()>,
    #[cfg(fusion_ring_loom)]
    pub(crate) wakeup: loom::sync::Condvar,
}

/// Where every region of a segment lies; derived from the capacity, the
/// arena size and the maximum message alone.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Geometry {
    pub(crate) capacity: usize,
    pub(crate) control_offset: usize,
    pub(crate) sync_offset: usize,
    pub(crate) participants_offset: usize,
    /// The arena region: `ArenaControl`, then the block area.
    pub(crate) arena_offset: usize,
    pub(crate) arena_len: usize,
    /// Start and length of the block area (0 length: no arena).
    pub(crate) blocks_offset: usize,
    pub(crate) blocks_len: usize,
    pub(crate) max_message: usize,
    pub(crate) slots_offset: usize,
    pub(crate) total_size: usize,
}

const fn page_up(n: usize) -> usize {
    (n + PAGE - 1) & !(PAGE - 1)
}

impl Geometry {
    /// The layout of a ring (arguments validated by the caller: see
    /// `Config::validate`). `blocks_len` 0 means no arena.
    ///
    /// The slot array comes last and the file ends exactly where it ends, so
    /// the file size pins the capacity down: a header whose capacity field
    /// was changed no longer matches the size of its file.
    pub(crate) const fn new(capacity: usize, blocks_len: usize, max_message: usize) -> Self {
        let control_offset = PAGE;
        let sync_offset = control_offset + core::mem::size_of::<ControlBlock>();
        let participants_offset = page_up(sync_offset + core::mem::size_of::<SyncBlock>());
        let arena_offset = page_up(
            participants_offset + MAX_PARTICIPANTS * core::mem::size_of::<ParticipantEntry>(),
        );
        let (arena_len, blocks_offset, max_message) = if blocks_len == 0 {
            (0, arena_offset, SLOT_PAYLOAD)
        } else {
            let ctrl = page_up(core::mem::size_of::<ArenaControl>());
            (ctrl + blocks_len, arena_offset + ctrl, max_message)
        };
        let slots_offset = page_up(arena_offset + arena_len);
        Geometry {
            capacity,
            control_offset,
            sync_offset,
            participants_offset,
            arena_offset,
            arena_len,
            blocks_offset,
            blocks_len,
            max_message,
            slots_offset,
            total_size: slots_offset + capacity * SLOT_SIZE,
        }
    }

    /// A ring without an arena.
    #[cfg(test)]
    pub(crate) const fn for_capacity(capacity: usize) -> Self {
        Self::new(capacity, 0, 0)
    }
}

/// Checks a capacity: a power of two in `MIN_CAPACITY..=MAX_CAPACITY`.
pub(crate) fn check_capacity(capacity: usize) -> crate::error::Result<()> {
    if capacity.is_power_of_two() && (MIN_CAPACITY..=MAX_CAPACITY).contains(&capacity) {
        Ok(())
    } else {
        Err(crate::error::RingError::InvalidCapacity {
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
    let parts: [u64; 26] = [
        LAYOUT_VERSION as u64,
        size_of::<SegmentHeader>() as u64,
        offset_of!(SegmentHeader, capacity) as u64,
        offset_of!(SegmentHeader, slots_offset) as u64,
        offset_of!(SegmentHeader, max_message) as u64,
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
        size_of::<SyncBlock>() as u64,
        size_of::<ArenaControl>() as u64,
        offset_of!(ArenaControl, sweeper) as u64,
        offset_of!(ParticipantId, arena_claim) as u64,
        size_of::<BlockHeader>() as u64,
        MAX_CLASSES as u64,
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
    assert!(offset_of!(SegmentHeader, max_message) == 112);
    assert!(size_of::<SyncBlock>() == 128);
    assert!(size_of::<EventCount>() == 8);
    assert!(size_of::<BlockHeader>() == BLOCK_HEADER);
    assert!(offset_of!(BlockHeader, next) == 16);
    assert!(size_of::<ArenaControl>() == 64 + MAX_CLASSES * 64 + MAX_CLASSES * 8);
    assert!(size_of::<CacheLine<AtomicU64>>() == 64);
    assert!(size_of::<ControlBlock>() == 16 * 64);
    assert!(offset_of!(ControlBlock, producer_head) == 0);
    assert!(offset_of!(ControlBlock, roles_seen) == 64);
    assert!(offset_of!(ControlBlock, consumer_head) == 128);
    assert!(offset_of!(ControlBlock, consumer_tail) == 192);
    assert!(size_of::<Slot>() == SLOT_SIZE && align_of::<Slot>() == 64);
    assert!(offset_of!(Slot, seq) == 0);
    assert!(offset_of!(Slot, stamp) == 8);
    assert!(offset_of!(Slot, meta) == 16);
    assert!(offset_of!(Slot, payload) == SLOT_HEADER);
    assert!(size_of::<ParticipantId>() == 4 * 64);
    assert!(offset_of!(ParticipantId, arena_claim) == 24);
    assert!(offset_of!(ParticipantId, send_claim) == 64);
    assert!(offset_of!(ParticipantId, recv_claim) == 128);
    assert!(offset_of!(ParticipantId, cursor) == 192);
    assert!(size_of::<LaneCounters>() == 320);
    assert!(offset_of!(LaneCounters, received) == 64);
    assert!(size_of::<ParticipantEntry>() == 4 * 64 + 5 * 320);
    assert!(Geometry::new(MIN_CAPACITY, 0, 0)
        .slots_offset
        .is_multiple_of(PAGE));
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
            let a = Geometry::new(1 << shift, 1 << 20, 4096);
            assert!(a.blocks_offset >= a.arena_offset + size_of::<ArenaControl>());
            assert_eq!(a.blocks_offset % 64, 0);
            assert_eq!(a.blocks_offset + a.blocks_len, a.arena_offset + a.arena_len);
            assert!(a.slots_offset >= a.arena_offset + a.arena_len);
            assert!(a.sync_offset >= a.control_offset + size_of::<ControlBlock>());
            assert!(a.participants_offset >= a.sync_offset + size_of::<SyncBlock>());
            // Distinct capacities give distinct file sizes (see for_capacity).
            assert_ne!(
                g.total_size,
                Geometry::for_capacity(1 << (shift + 1)).total_size
            );
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
                Err(crate::error::RingError::InvalidCapacity {
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

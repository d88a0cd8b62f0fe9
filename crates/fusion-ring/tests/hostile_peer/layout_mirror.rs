//! The segment layout, mirrored from src/shm/layout.rs (checked against a real
//! segment by `layout_mirror_matches_a_real_segment`): where the words a
//! hostile peer aims at lie.

use fusion_ring::{Config, FusionRing, PriorityClass};
use testkit::names::shm_path;

use crate::harness::fuzz_name;

pub const PAGE: usize = 4096;
pub const SLOT: usize = 64;
pub const MAGIC: &[u8; 8] = b"FRING\0v\x01";
/// Header fields: (offset, width in bytes).
pub const HEADER_FIELDS: [(usize, usize); 19] = [
    (0, 8),   // magic
    (8, 4),   // layout_version
    (12, 4),  // header_size
    (16, 8),  // layout_hash
    (24, 8),  // total_size
    (32, 8),  // capacity
    (40, 4),  // slot_size
    (44, 4),  // max_participants
    (48, 8),  // control_offset
    (56, 8),  // participants_offset
    (64, 8),  // slots_offset
    (72, 8),  // arena_offset
    (80, 8),  // arena_len
    (88, 8),  // created_unix_ns
    (96, 4),  // creator_pid
    (100, 4), // flags
    (104, 8), // ticks_per_ns_bits
    (112, 8), // max_message
    (120, 4), // max_subscribers
];
/// ControlBlock is 16 lines; the SyncBlock follows it.
pub const CONTROL_SIZE: usize = 16 * 64;
pub const CONSUMER_HEAD: usize = 128;
/// The header's flags word, and the broadcast-ring flag in it.
pub const HEADER_FLAGS: usize = 100;
pub const FLAG_BROADCAST: u64 = 16;
/// A participant entry: identity line, send-claim line, receive-claim line,
/// a broadcast subscriber's cursor line, then 5 lanes of counters (320 B
/// each).
pub const LANES: usize = 4 * 64;
/// A subscriber's cursor, in its entry.
pub const CURSOR: usize = 3 * 64;
pub const PARTICIPANT_SIZE: usize = LANES + 5 * 320;
pub const MAX_PARTICIPANTS: usize = 64;
/// ArenaControl: bump line, 24 free-list head lines, the sweep lock and 23
/// reserved words; the block area starts on the next page.
pub const MAX_CLASSES: usize = 24;
pub const ARENA_FREE: usize = 64;
pub const ARENA_SWEEPER: usize = 64 + MAX_CLASSES * 64;
pub const ARENA_CTRL_PAGE: usize = PAGE;
pub const BLOCK_HEADER: usize = 64;

/// Where the regions of a segment lie, read from its header.
#[derive(Debug, Clone, Copy, Default)]
pub struct Lay {
    pub total: usize,
    pub capacity: usize,
    pub ctrl: usize,
    pub sync: usize,
    pub participants: usize,
    pub slots: usize,
    pub arena: usize,
    pub arena_len: usize,
    pub blocks: usize,
    pub blocks_len: usize,
    pub max_message: usize,
}

pub fn le64(b: &[u8], off: usize) -> u64 {
    off.checked_add(8)
        .and_then(|end| b.get(off..end))
        .map_or(0, |s| u64::from_le_bytes(s.try_into().unwrap()))
}

impl Lay {
    /// From header words (unchecked: callers clamp every offset to `total`).
    pub fn from_words(word: impl Fn(usize) -> u64, total: usize) -> Self {
        let arena_len = word(80) as usize;
        let arena = word(72) as usize;
        let ctrl = word(48) as usize;
        Lay {
            total,
            capacity: (word(32) as usize).clamp(1, 1 << 24),
            ctrl,
            sync: ctrl.wrapping_add(CONTROL_SIZE),
            participants: word(56) as usize,
            slots: word(64) as usize,
            arena,
            arena_len,
            blocks: arena.wrapping_add(ARENA_CTRL_PAGE),
            blocks_len: arena_len.saturating_sub(ARENA_CTRL_PAGE),
            max_message: word(112) as usize,
        }
    }

    pub fn from_bytes(b: &[u8]) -> Self {
        Self::from_words(|o| le64(b, o), b.len())
    }

    pub fn has_arena(&self) -> bool {
        self.arena_len > ARENA_CTRL_PAGE
    }
}

pub fn read_le(b: &[u8], off: usize, width: usize) -> u64 {
    let mut w = [0u8; 8];
    w[..width].copy_from_slice(&b[off..off + width]);
    u64::from_le_bytes(w)
}

#[test]
fn layout_mirror_matches_a_real_segment() {
    let name = fuzz_name();
    let cfg = Config::new(16).arena_bytes(64 << 10).max_message(4096);
    let ring = FusionRing::create(&name, &cfg).expect("create");
    ring.send(b"inline message").expect("send inline");
    ring.send(&[7u8; 1000]).expect("send zero-copy");
    let b = std::fs::read(shm_path(&name)).expect("read segment");
    let lay = Lay::from_bytes(&b);
    assert_eq!(&b[..8], MAGIC);
    assert_eq!(lay.total, b.len());
    assert_eq!(lay.capacity, 16);
    assert_eq!(lay.ctrl, PAGE);
    assert_eq!(lay.slots + 16 * SLOT, lay.total, "slots end the file");
    assert_eq!(lay.arena_len, ARENA_CTRL_PAGE + (64 << 10));
    assert_eq!(lay.max_message, 4096);
    assert!(lay.participants >= lay.sync + 128);
    assert!(lay.arena >= lay.participants + MAX_PARTICIPANTS * PARTICIPANT_SIZE);
    // Two messages claimed and published: head 2, slot 0 holds position 0
    // (sequence 1), slot 1 position 1; nothing received yet.
    assert_eq!(le64(&b, lay.ctrl), 2, "producer_head");
    assert_eq!(le64(&b, lay.ctrl + CONSUMER_HEAD), 0, "consumer_head");
    assert_eq!(le64(&b, lay.slots), 1, "slot 0 sequence");
    assert_eq!(read_le(&b, lay.slots + 16, 4), 14, "slot 0 length");
    assert_eq!(b[lay.slots + 20], 1, "slot 0 kind inline");
    assert_eq!(b[lay.slots + 21], PriorityClass::Normal as u8);
    assert_eq!(&b[lay.slots + 24..lay.slots + 38], b"inline message");
    assert_eq!(b[lay.slots + SLOT + 20], 2, "slot 1 kind zero-copy");
    // The 1000-byte message took a class-4 block (1024 B + header) at 0,
    // and the sender then allocated the next one ahead (a spare: count
    // u32::MAX - 1) right after it; the bump word's low bits name the last
    // block's class + 1.
    assert_eq!(le64(&b, lay.arena), (2 * (64 + 1024)) | (4 + 1), "bump");
    assert_eq!(le64(&b, lay.arena + ARENA_SWEEPER), 0, "sweep lock");
    assert_eq!(
        read_le(&b, lay.blocks + 64 + 1024, 4),
        u32::MAX as u64 - 1,
        "spare"
    );
    assert_eq!(le64(&b, lay.slots + SLOT + 24), 0, "descriptor offset");
    assert_eq!(read_le(&b, lay.blocks, 4), 1, "refcount");
    assert_eq!(read_le(&b, lay.blocks + 8, 4), 1000, "block length");
    assert_eq!(read_le(&b, lay.blocks + 12, 4), 4, "block class");
    assert_eq!(b[lay.blocks + BLOCK_HEADER], 7, "payload");
    // Receiving frees the block onto free list 4 (head = index 0 + 1).
    let mut buf = vec![0u8; 4096];
    ring.recv(&mut buf).expect("recv inline");
    ring.recv(&mut buf).expect("recv block");
    let b = std::fs::read(shm_path(&name)).expect("read segment");
    assert_eq!(le64(&b, lay.ctrl + CONSUMER_HEAD), 2);
    assert_eq!(le64(&b, lay.arena + ARENA_FREE + 4 * 64) & 0xffff_ffff, 1);
    // Our participant entry (1) counted the sends in lane Normal.
    let lane = lay.participants + PARTICIPANT_SIZE + LANES + PriorityClass::Normal.lane() * 320;
    assert_eq!(le64(&b, lane), 2, "sent");
    assert_eq!(le64(&b, lane + 64), 2, "received");
}

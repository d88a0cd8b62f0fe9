//! Reading a slot's content as a message, trusting none of it.

use crate::handle::registration::Registration;
use crate::handle::shared::SharedRing;
use crate::lockfree::arena::Descriptor;
use crate::lockfree::protocol::SlotContent;
use crate::priority::PriorityClass;
use crate::shm::layout::{unpack_meta, SlotKind, INLINE_MAX};

/// What a slot holds, checked.
pub(crate) enum Decoded {
    Inline {
        len: usize,
        priority: PriorityClass,
    },
    /// A block that passed `Arena::check`, now taken by the receiver (on a
    /// broadcast ring: not taken, to be copied out).
    Block {
        desc: Descriptor,
        priority: PriorityClass,
    },
    Tombstone,
    /// On a broadcast ring, a block that fails the check: the publisher
    /// released it (its slot was rewritten, or every live subscriber had
    /// read it when the arena ran out), or a scribbler changed the
    /// descriptor. Nothing is read; the subscriber is told it lagged.
    Gone,
    Bad(String),
}

/// Classifies a slot's content, checking zero-copy descriptors against the
/// arena; a good block is taken for the registered process (see
/// `Arena::take`; the caller has called `follow_fork`).
#[inline(always)]
pub(crate) fn decode(ring: &SharedRing, c: &SlotContent, reg: &Registration) -> Decoded {
    if let Some((len, priority)) = inline_message(c.meta, INLINE_MAX) {
        return Decoded::Inline { len, priority };
    }
    decode_unusual(ring, c, reg)
}

/// The length and class of a slot whose `meta` says it holds a plain
/// inline message of at most `max` (<= 40) bytes; `None` for anything else
/// (a block, a tombstone, a longer or scribbled one).
#[inline(always)]
pub(crate) fn inline_message(meta: u64, max: usize) -> Option<(usize, PriorityClass)> {
    let (len, kind, class) = unpack_meta(meta);
    let len = len as usize;
    // Both tests made before branching: the form that compiles to the
    // fewest instructions here (callgrind: 11 fewer per message than
    // `then` + `map`).
    match (
        kind == SlotKind::Inline as u8 && len <= INLINE_MAX && len <= max,
        PriorityClass::from_u8(class),
    ) {
        (true, Some(priority)) => Some((len, priority)),
        _ => None,
    }
}

#[cold]
#[inline(never)]
fn decode_unusual(ring: &SharedRing, c: &SlotContent, reg: &Registration) -> Decoded {
    let (len, kind, prio) = unpack_meta(c.meta);
    let Some(priority) = PriorityClass::from_u8(prio) else {
        return Decoded::Bad(format!("slot priority {prio} is not one of the 5 classes"));
    };
    match SlotKind::from_u8(kind) {
        Some(SlotKind::Inline) => {
            Decoded::Bad(format!("inline slot length {len} exceeds {INLINE_MAX}"))
        }
        Some(SlotKind::Tombstone) => Decoded::Tombstone,
        Some(SlotKind::ZeroCopy) => {
            let Some(arena) = ring.arena() else {
                return Decoded::Bad("zero-copy slot on a ring without an arena".into());
            };
            let desc = Descriptor::from_words(&c.payload);
            if desc.len != len {
                return Decoded::Bad(format!(
                    "slot length {len} differs from its descriptor's {}",
                    desc.len
                ));
            }
            // The receiver writes the header (`take`, then the release)
            // and pushes the block on its class's free list when done:
            // fetch both lines writable now, overlapped with the checks.
            arena.prefetch_header(desc.offset);
            arena.prefetch_free_list(desc.class as usize);
            arena.prefetch_payload(desc.offset);
            match arena.check(&desc) {
                Ok(()) => {
                    // Before the slot is released (the caller's next
                    // step): see `Arena::take`. A broadcast subscriber
                    // takes nothing: the slot keeps the block for every
                    // subscriber (`ring::broadcast`).
                    if !ring.broadcast() {
                        arena.take(desc.offset, reg.caller_followed().pid);
                    }
                    Decoded::Block { desc, priority }
                }
                Err(_) if ring.broadcast() => Decoded::Gone,
                Err(what) => Decoded::Bad(what),
            }
        }
        None => Decoded::Bad(format!("slot kind {kind} is unknown")),
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use super::{decode, Decoded};
    use crate::handle::registration::Registration;
    use crate::handle::shared::SharedRing;
    use crate::lockfree::arena::Taker;
    use crate::lockfree::protocol::SlotContent;
    use crate::priority::PriorityClass;
    use crate::shm::config::Config;
    use crate::shm::layout::{pack_meta, SlotKind};
    use crate::shm::process::current_pid;
    use crate::shm::segment::Segment;

    fn ring(config: &Config) -> (SharedRing, Registration) {
        let ring = SharedRing::new(Arc::new(Segment::create_anonymous(config).unwrap()));
        let reg = Registration::new(ring.segment(), ring.core());
        reg.follow_fork(ring.core());
        (ring, reg)
    }

    fn slot(len: u32, kind: SlotKind, prio: u8, payload: [u64; 5]) -> SlotContent {
        SlotContent {
            stamp: 0,
            meta: pack_meta(len, kind, prio),
            payload,
        }
    }

    fn bad(d: Decoded) -> String {
        match d {
            Decoded::Bad(what) => what,
            _ => panic!("not reported as bad"),
        }
    }

    /// Inline slots and tombstones decode; every field a peer could
    /// scribble is checked.
    #[test]
    fn inline_slots_decode_and_scribbles_are_named() {
        let (ring, reg) = ring(&Config::inline_only(8));
        let high = PriorityClass::High as u8;
        match decode(&ring, &slot(40, SlotKind::Inline, high, [0; 5]), &reg) {
            Decoded::Inline { len, priority } => assert_eq!((len, priority), (40, PriorityClass::High)),
            _ => panic!("not inline"),
        }
        let tomb = slot(0, SlotKind::Tombstone, 0, [0; 5]);
        assert!(matches!(decode(&ring, &tomb, &reg), Decoded::Tombstone));
        assert!(bad(decode(&ring, &slot(41, SlotKind::Inline, high, [0; 5]), &reg)).contains("41"));
        assert!(bad(decode(&ring, &slot(1, SlotKind::Inline, 9, [0; 5]), &reg)).contains("priority 9"));
        let zero_copy = slot(100, SlotKind::ZeroCopy, high, [0; 5]);
        assert!(bad(decode(&ring, &zero_copy, &reg)).contains("without an arena"));
        let unknown = SlotContent {
            meta: (7u64 << 32) | 1,
            ..slot(1, SlotKind::Inline, 0, [0; 5])
        };
        assert!(bad(decode(&ring, &unknown, &reg)).contains("kind 7"));
        reg.unregister(ring.core());
    }

    /// A zero-copy slot is checked against the arena, and a good block is
    /// taken for the registered process.
    #[test]
    fn zero_copy_slots_are_checked_and_taken() {
        let (ring, reg) = ring(&Config::new(8).arena_bytes(1 << 16).max_message(1024));
        let arena = ring.arena().unwrap();
        let d = arena.alloc(100, Taker::detached(current_pid())).unwrap();
        let prio = PriorityClass::Low as u8;
        let good = slot(100, SlotKind::ZeroCopy, prio, d.to_words());
        match decode(&ring, &good, &reg) {
            Decoded::Block { desc, priority } => {
                assert_eq!((desc.offset, desc.len), (d.offset, 100));
                assert_eq!(priority, PriorityClass::Low);
            }
            _ => panic!("not a block"),
        }
        assert_eq!(arena.owner(d.offset), current_pid());
        let lying = slot(99, SlotKind::ZeroCopy, prio, d.to_words());
        assert!(bad(decode(&ring, &lying, &reg)).contains("differs"));
        let mut far = d.to_words();
        far[0] = 1 << 40;
        assert!(matches!(decode(&ring, &slot(100, SlotKind::ZeroCopy, prio, far), &reg), Decoded::Bad(_)));
        arena.release(d.offset, current_pid());
        reg.unregister(ring.core());
    }
}

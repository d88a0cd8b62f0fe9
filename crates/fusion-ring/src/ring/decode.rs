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
    /// A block that passed `Arena::check`, now taken by the receiver.
    Block {
        desc: Descriptor,
        priority: PriorityClass,
    },
    Tombstone,
    Bad(String),
}

/// Classifies a slot's content, checking zero-copy descriptors against the
/// arena; a good block is taken for the registered process (see
/// `Arena::take`; the caller has called `follow_fork`).
#[inline(always)]
pub(crate) fn decode(ring: &SharedRing, c: &SlotContent, reg: &Registration) -> Decoded {
    let (len, kind, prio) = unpack_meta(c.meta);
    if kind == SlotKind::Inline as u8 && len as usize <= INLINE_MAX {
        if let Some(priority) = PriorityClass::from_u8(prio) {
            return Decoded::Inline {
                len: len as usize,
                priority,
            };
        }
    }
    decode_unusual(ring, c, reg)
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
                    // step): see `Arena::take`.
                    arena.take(desc.offset, reg.caller_followed().pid);
                    Decoded::Block { desc, priority }
                }
                Err(what) => Decoded::Bad(what),
            }
        }
        None => Decoded::Bad(format!("slot kind {kind} is unknown")),
    }
}

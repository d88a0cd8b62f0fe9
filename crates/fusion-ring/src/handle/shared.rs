//! [`SharedRing`]: the ring a segment holds, as every handle on it sees it.

use core::ptr::NonNull;
use std::sync::Arc;

use crate::error::{CorruptError, RingError};
use crate::lockfree::arena::Arena;
use crate::lockfree::event;
use crate::lockfree::protocol::RingCore;
use crate::shm::layout::{ParticipantEntry, SyncBlock, FLAG_NO_TIMESTAMPS, FLAG_WAKEUPS};
use crate::shm::segment::Segment;

/// The parts of a mapped segment that no handle owns: the slot protocol
/// over its control block and slots, its arena, the event counts blocked
/// callers sleep on, and the flags fixed at creation. Built once per
/// handle from the validated geometry; holds no per-handle state.
pub(crate) struct SharedRing {
    core: RingCore,
    sync: NonNull<SyncBlock>,
    arena: Option<Arena>,
    /// Producers stamp messages (header flag, fixed at creation).
    timestamps: bool,
    /// Senders and receivers wake blocked peers (header flag).
    wakeups: bool,
    /// Largest message (40 without an arena), from the validated geometry.
    max_message: usize,
    segment: Arc<Segment>,
}

// SAFETY: the raw pointers point into `segment`, which this value keeps
// alive through its Arc; nothing in it is tied to the creating thread.
unsafe impl Send for SharedRing {}

impl SharedRing {
    /// The views over `segment`'s validated regions.
    pub(crate) fn new(segment: Arc<Segment>) -> Self {
        let g = *segment.geometry();
        // SAFETY: the control block and `capacity` slots lie inside the
        // segment's mapping, which `segment` (kept in self) keeps alive.
        let core = unsafe { RingCore::new(segment.control(), segment.slots(), g.capacity as u64) };
        let wakeups = segment.flags() & FLAG_WAKEUPS != 0;
        let arena = segment.arena_parts().map(|(ctrl, blocks)| {
            let waker = wakeups.then(|| NonNull::from(&segment.sync_block().not_full.value));
            // SAFETY: control block, block area and event count all lie in
            // the segment's mapping (validated geometry), which `segment`
            // keeps alive with the handle and every payload that clones it.
            unsafe { Arena::new(ctrl, blocks, g.blocks_len, g.max_message, waker) }
        });
        SharedRing {
            core,
            sync: NonNull::from(segment.sync_block()),
            arena,
            timestamps: segment.flags() & FLAG_NO_TIMESTAMPS == 0,
            wakeups,
            max_message: g.max_message,
            segment,
        }
    }

    /// The slot protocol.
    #[inline(always)]
    pub(crate) fn core(&self) -> &RingCore {
        &self.core
    }

    /// The arena, if the ring has one.
    #[inline(always)]
    pub(crate) fn arena(&self) -> Option<&Arena> {
        self.arena.as_ref()
    }

    /// The event counts of the blocking layer.
    #[inline(always)]
    pub(crate) fn sync_block(&self) -> &SyncBlock {
        // SAFETY: points into the mapping kept alive by `segment`.
        unsafe { self.sync.as_ref() }
    }

    #[inline(always)]
    pub(crate) fn timestamps(&self) -> bool {
        self.timestamps
    }

    #[inline(always)]
    pub(crate) fn wakeups(&self) -> bool {
        self.wakeups
    }

    /// Largest message this ring carries (40 without an arena).
    #[inline(always)]
    pub(crate) fn max_message(&self) -> usize {
        self.max_message
    }

    #[inline]
    pub(crate) fn segment(&self) -> &Arc<Segment> {
        &self.segment
    }

    /// The participant table.
    #[inline]
    pub(crate) fn participants(&self) -> &[ParticipantEntry] {
        self.segment.participants()
    }

    /// A corruption error naming this ring.
    pub(crate) fn corrupt(&self, what: String) -> RingError {
        RingError::Corrupt(CorruptError::new(self.segment.label(), what))
    }

    /// Drops `pid`'s reference to a block; wakes blocked senders if that
    /// freed it.
    #[inline]
    pub(crate) fn release_block(&self, offset: u64, pid: u32) {
        if let Some(arena) = &self.arena {
            if arena.release(offset, pid) {
                notify_block_freed(arena);
            }
        }
    }
}

/// Wakes senders blocked on a full arena, after a release freed a block
/// (nothing on a ring without wake-ups).
#[inline]
pub(crate) fn notify_block_freed(arena: &Arena) {
    if let Some(ec) = arena.freed_waker() {
        event::notify(ec);
    }
}

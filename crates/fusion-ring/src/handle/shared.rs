//! [`SharedRing`]: the ring a segment holds, as every handle on it sees it.

use core::ptr::NonNull;
use std::sync::Arc;

use crate::error::{CorruptError, RingError};
use crate::lockfree::arena::Arena;
use crate::lockfree::event;
use crate::lockfree::protocol::RingCore;
use crate::shm::layout::{
    ParticipantEntry, SyncBlock, FLAG_BROADCAST, FLAG_NO_TIMESTAMPS, FLAG_OVERWRITE, FLAG_SINGLE_CONSUMER,
    FLAG_SINGLE_PRODUCER, FLAG_WAKEUPS,
};
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
    /// One producer and one consumer at a time (both header flags): the
    /// ring runs the protocol of `lockfree::single`.
    single: bool,
    /// A broadcast ring: one publisher (the single-producer side of
    /// `lockfree::single`), subscribers with cursors (`lockfree::broadcast`).
    broadcast: bool,
    /// A broadcast ring whose publisher writes over the oldest message
    /// instead of waiting (`Config::overflow`).
    overwrite: bool,
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
        // Once per process: its wakers on any ring may then skip the fence
        // (`lockfree::event`, "wakers without a fence").
        event::register_light_wakers(crate::shm::process::current_pid());
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
            single: segment.flags() & (FLAG_SINGLE_PRODUCER | FLAG_SINGLE_CONSUMER)
                == FLAG_SINGLE_PRODUCER | FLAG_SINGLE_CONSUMER,
            broadcast: segment.flags() & FLAG_BROADCAST != 0,
            overwrite: segment.flags() & FLAG_OVERWRITE != 0,
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

    /// Whether the ring has one producer and one consumer at a time and
    /// runs the protocol of `lockfree::single` (else the shared one of
    /// `lockfree::protocol`, whichever side is many).
    #[inline(always)]
    pub(crate) fn single(&self) -> bool {
        self.single
    }

    /// Whether the ring is a broadcast ring (header flag).
    #[inline(always)]
    pub(crate) fn broadcast(&self) -> bool {
        self.broadcast
    }

    /// Whether the ring is a broadcast ring whose publisher overwrites
    /// (header flag).
    #[inline(always)]
    pub(crate) fn overwrite(&self) -> bool {
        self.overwrite
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

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use super::SharedRing;
    use crate::error::RingError;
    use crate::lockfree::arena::Taker;
    use crate::shm::config::Config;
    use crate::shm::process::current_pid;
    use crate::shm::segment::Segment;

    fn shared(config: &Config) -> SharedRing {
        SharedRing::new(Arc::new(Segment::create_anonymous(config).unwrap()))
    }

    /// The flags and sizes fixed at creation are read back as configured.
    #[test]
    fn the_views_follow_the_config() {
        let plain = shared(&Config::inline_only(8).timestamps(false));
        assert!(!plain.wakeups() && !plain.timestamps());
        assert!(plain.arena().is_none());
        assert_eq!((plain.max_message(), plain.core().capacity()), (40, 8));
        let full = shared(&Config::new(16).arena_bytes(1 << 16).max_message(4096));
        assert!(full.wakeups() && full.timestamps());
        assert!(full.arena().is_some());
        assert_eq!((full.max_message(), full.core().capacity()), (4096, 16));
    }

    /// A corruption error names the segment; the last release of a block
    /// frees it.
    #[test]
    fn corrupt_names_the_segment_and_release_block_frees() {
        let ring = shared(&Config::new(8).arena_bytes(1 << 16).max_message(1024));
        match ring.corrupt("what".into()) {
            RingError::Corrupt(e) => assert_eq!((e.segment.as_str(), e.what.as_str()), ("memfd", "what")),
            other => panic!("{other:?}"),
        }
        let arena = ring.arena().unwrap();
        let d = arena.alloc(100, Taker::detached(current_pid())).unwrap();
        assert_eq!(arena.usage().blocks_in_use, 1);
        ring.release_block(d.offset, current_pid());
        assert_eq!(arena.usage().blocks_in_use, 0);
    }
}

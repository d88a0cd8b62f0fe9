//! [`BlockAllocator`]: a handle's side of the arena: its spare block and
//! the block it allocated last.

use core::cell::Cell;

use crate::handle::participant::Caller;
use crate::lockfree::arena::{self, AllocError, Arena, Descriptor};

/// What a handle keeps between allocations. Both cells are hints about the
/// shared arena, never the only record of a block: a spare is claimed by
/// CAS before use (another handle, or the other side of a fork, may have
/// taken it), and the last block is only prefetched.
pub(crate) struct BlockAllocator {
    /// The block this handle allocated last: most often the next one it
    /// gets back (free lists are LIFO), so its header is fetched ahead.
    last_block: Cell<u64>,
    /// A block allocated ahead for this handle's next loan (`Arena`'s
    /// `SPARE`), offset + 1; 0: none.
    spare: Cell<u64>,
}

impl BlockAllocator {
    pub(crate) fn new() -> Self {
        BlockAllocator {
            last_block: Cell::new(u64::MAX),
            spare: Cell::new(0),
        }
    }

    /// Allocates a block as `Arena::alloc`: the spare if it is still there
    /// and of the right size class, else from the arena, first fetching the
    /// header of the block allocated last.
    #[inline]
    pub(crate) fn alloc(
        &self,
        arena: &Arena,
        len: usize,
        max_message: usize,
        caller: Caller<'_>,
    ) -> Result<Descriptor, AllocError> {
        if let Some(mut d) = self.take_spare(arena, caller) {
            if d.class as usize == arena::class_for(len) && len <= max_message {
                arena.set_len(&mut d, len);
                return Ok(d);
            }
            arena.release(d.offset, caller.pid); // another size: back to its free list
        }
        arena.prefetch_header(self.last_block.get());
        let d = arena.alloc(len, caller.taker())?;
        self.last_block.set(d.offset);
        Ok(d)
    }

    /// Claims the spare, if another handle has not taken it.
    #[inline]
    pub(crate) fn take_spare(&self, arena: &Arena, caller: Caller<'_>) -> Option<Descriptor> {
        match self.spare.replace(0) {
            0 => None,
            s => arena.claim_spare(s - 1, caller.taker()),
        }
    }

    /// After a loan of `len` bytes was sent, allocates the next one ahead
    /// (a spare), while the receiver handles this one: the next loan then
    /// touches no line the receiver wrote. In a ping-pong, the free-list
    /// head that the receiver's free last wrote no longer crosses on the
    /// sender's critical path (1 MiB loan one-way 454-484 -> 344-386 ns in
    /// a prototype, 3 alternating runs). Nothing if the arena has no block
    /// to spare.
    #[inline]
    pub(crate) fn refill_spare(&self, arena: &Arena, len: usize, caller: Caller<'_>) {
        if self.spare.get() != 0 {
            return;
        }
        if let Ok(d) = arena.alloc_spare(len, caller.taker()) {
            self.last_block.set(d.offset);
            self.spare.set(d.offset + 1);
        }
    }

    /// Gives the spare back to its free list (unless another handle, or
    /// the other side of a fork, took it first).
    pub(crate) fn give_back(&self, arena: &Arena, caller: Caller<'_>) {
        if let Some(d) = self.take_spare(arena, caller) {
            arena.release(d.offset, caller.pid);
        }
    }

    /// The spare's offset + 1 (0: none), for tests.
    #[cfg(test)]
    pub(crate) fn spare(&self) -> u64 {
        self.spare.get()
    }

    /// Names a spare by hand, for tests (as a handle's copy across a fork
    /// names its parent's).
    #[cfg(test)]
    pub(crate) fn set_spare(&self, spare: u64) {
        self.spare.set(spare)
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use super::BlockAllocator;
    use crate::handle::registration::Registration;
    use crate::handle::shared::SharedRing;
    use crate::shm::config::Config;
    use crate::shm::segment::Segment;

    fn ring() -> SharedRing {
        let config = Config::new(8).arena_bytes(1 << 16).max_message(4096);
        SharedRing::new(Arc::new(Segment::create_anonymous(&config).unwrap()))
    }

    /// A refilled spare is the next block of its class, counts as free
    /// until then, and is not given twice.
    #[test]
    fn the_spare_is_the_next_block_of_its_class() {
        let ring = ring();
        let reg = Registration::new(ring.segment(), ring.core());
        let (arena, me) = (ring.arena().unwrap(), reg.caller(ring.core()));
        let alloc = BlockAllocator::new();
        alloc.refill_spare(arena, 1000, me);
        let spare = alloc.spare();
        assert_ne!(spare, 0);
        assert_eq!(arena.usage().blocks_in_use, 0, "a spare counts as free");
        let d = alloc.alloc(arena, 900, 4096, me).unwrap();
        assert_eq!((d.offset, d.len), (spare - 1, 900));
        assert_eq!(alloc.spare(), 0);
        let e = alloc.alloc(arena, 900, 4096, me).unwrap();
        assert_ne!(e.offset, d.offset);
        arena.release(d.offset, me.pid);
        arena.release(e.offset, me.pid);
        assert_eq!(arena.usage().blocks_in_use, 0);
        reg.unregister(ring.core());
    }

    /// A spare of another size class goes back to its free list, and one
    /// given back is no longer this handle's.
    #[test]
    fn a_spare_of_another_class_goes_back() {
        let ring = ring();
        let reg = Registration::new(ring.segment(), ring.core());
        let (arena, me) = (ring.arena().unwrap(), reg.caller(ring.core()));
        let alloc = BlockAllocator::new();
        alloc.refill_spare(arena, 64, me);
        let small = alloc.spare() - 1;
        let big = alloc.alloc(arena, 3000, 4096, me).unwrap();
        assert_ne!(big.offset, small);
        assert_eq!(arena.usage().blocks_in_use, 1, "the small spare is free again");
        alloc.refill_spare(arena, 64, me);
        alloc.give_back(arena, me);
        assert_eq!(alloc.spare(), 0);
        assert!(alloc.take_spare(arena, me).is_none());
        arena.release(big.offset, me.pid);
        assert_eq!(arena.usage().blocks_in_use, 0);
        reg.unregister(ring.core());
    }
}

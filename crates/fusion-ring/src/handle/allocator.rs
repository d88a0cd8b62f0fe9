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

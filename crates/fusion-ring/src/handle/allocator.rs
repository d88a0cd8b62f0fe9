//! [`BlockAllocator`]: a handle's side of the arena: its spare block and
//! the block it allocated last.

use core::cell::Cell;

use crate::handle::registration::Caller;
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
    use crate::fusion::FusionRing;
    use crate::priority::PriorityClass;
    use crate::shm::config::Config;

    fn zero_copy_ring(blocks_of_1k: usize) -> FusionRing {
        let bytes = blocks_of_1k * (1024 + 64);
        FusionRing::with_config(&Config::new(8).arena_bytes(bytes).max_message(1024)).unwrap()
    }

    /// After a sent loan the handle keeps the next block ready: the next
    /// loan of that size gets it, and it counts as free meanwhile.
    #[test]
    fn a_sent_loan_leaves_a_spare_that_the_next_loan_takes() {
        let ring = zero_copy_ring(4);
        let r = ring.as_ring();
        let first = ring.loan(1000).unwrap();
        let first_at = first.descriptor().offset;
        ring.send_loan(first, PriorityClass::Normal).unwrap();
        let spare = r.allocator().spare();
        assert_ne!(spare, 0, "no spare after a sent loan");
        assert_ne!(spare - 1, first_at);
        assert_eq!(r.arena_usage().blocks_in_use, 1, "the spare counts as free");
        let second = ring.loan(900).unwrap();
        assert_eq!(second.descriptor().offset, spare - 1, "the spare is used");
        assert_eq!(second.len(), 900);
        drop(second);
        drop(ring.recv_zerocopy().unwrap());
        assert_eq!(r.arena_usage().blocks_in_use, 0);
    }

    /// A spare is claimed by CAS: two handles naming the same one (as a
    /// handle and its copy in a forked child do) never both get it, and a
    /// handle that finds the arena otherwise exhausted takes another's.
    #[test]
    fn spares_are_claimed_once_and_taken_when_the_arena_runs_out() {
        let ring = zero_copy_ring(2);
        let other = ring.clone();
        let (a, b) = (ring.as_ring(), other.as_ring());
        let sent = ring.loan(1000).unwrap();
        ring.send_loan(sent, PriorityClass::Normal).unwrap();
        let spare = a.allocator().spare();
        assert_ne!(spare, 0);
        // The other handle: the only block not queued is the spare.
        let mut stolen = other.loan(1000).expect("takes the spare");
        stolen.copy_from_slice(&[5; 1000]);
        assert_eq!(stolen.descriptor().offset, spare - 1);
        // Its maker no longer finds it, and the arena is exhausted.
        assert!(matches!(
            ring.loan(1000),
            Err(crate::error::RingError::ArenaExhausted { .. })
        ));
        // A copy of a spare claims nothing once it is claimed.
        b.allocator().set_spare(spare);
        assert!(b
            .allocator()
            .take_spare(b.arena().unwrap(), b.caller())
            .is_none());
        drop(stolen);
        drop(ring.recv_zerocopy().unwrap());
        drop((ring, other));
    }

    /// A handle's spare goes back to its free list when the handle goes.
    #[test]
    fn a_dropped_handle_gives_its_spare_back() {
        let ring = zero_copy_ring(4);
        let sender = ring.clone();
        let loan = sender.loan(1000).unwrap();
        sender.send_loan(loan, PriorityClass::Normal).unwrap();
        assert_ne!(sender.as_ring().allocator().spare(), 0);
        drop(sender);
        drop(ring.recv_zerocopy().unwrap());
        let usage = ring.as_ring().arena_usage();
        assert_eq!(usage.blocks_in_use, 0);
        // Both blocks are on the free list, none a spare: two loans fit
        // without carving more.
        let carved = usage.bytes_carved;
        let (x, y) = (ring.loan(1000).unwrap(), ring.loan(1000).unwrap());
        assert_eq!(ring.as_ring().arena_usage().bytes_carved, carved);
        drop((x, y));
    }
}

//! A block's life after allocation: more owners, the receiver taking a
//! queued message's reference, and the last release that frees it (plus
//! the hooks tests use to play a process killed in each window).

use super::*;

impl Arena {
    /// Adds an owner to a checked block.
    pub(crate) fn retain(&self, offset: u64) {
        // Relaxed: the new owner already holds a reference (as in Arc::clone).
        self.header_at(offset as usize)
            .refcount
            .fetch_add(1, Ordering::Relaxed);
    }

    /// Records that process `pid` took over the reference a queued message
    /// held on a checked block, before the message's slot is released: if
    /// `pid` dies holding it, `reclaim_dead` can free it. A block with other
    /// owners too gets owner 0, which `reclaim_dead` never frees (a leak
    /// rather than freeing a block a live process still reads).
    #[inline(always)]
    pub(crate) fn take(&self, offset: u64, pid: u32) {
        let h = self.header_at(offset as usize);
        // Relaxed: made visible by the slot's Release store that follows
        // (SYNC POINT "block taken", pairs with `reclaim_dead`'s Acquire
        // loads of the sequence words).
        let only = h.refcount.load(Ordering::Relaxed) == 1;
        h.owner_pid
            .store(if only { pid } else { 0 }, Ordering::Relaxed);
    }

    /// Plays a process killed in `carve` right after its bump CAS, before it
    /// wrote anything into the block (tests of peer death).
    #[cfg(test)]
    pub(crate) fn carve_killed_for_test(&self, c: usize) {
        let bump = &self.ctrl().bump.value;
        let cur = bump.load(Ordering::Relaxed);
        self.label_last(cur);
        bump.store(
            (bump_end(cur) + block_size(c) as u64) | (c as u64 + 1),
            Ordering::Relaxed,
        );
    }

    /// Plays a process killed in `alloc` right after it popped a block of
    /// class `c` off its free list (tests of peer death): the block's offset.
    #[cfg(test)]
    pub(crate) fn pop_killed_for_test(&self, c: usize, taker: Taker<'_>) -> Option<u64> {
        self.pop(c, taker).map(|o| o as u64)
    }

    /// Plays a process killed in `free` between marking the block at
    /// `offset` free and linking it in (tests of peer death).
    #[cfg(test)]
    pub(crate) fn free_killed_for_test(&self, offset: u64, pid: u32) {
        let h = self.header_at(offset as usize);
        h.generation.fetch_add(1, Ordering::Relaxed);
        h.owner_pid.store(pid, Ordering::Relaxed);
        h.refcount.store(ON_FREE_LIST, Ordering::Release);
    }

    /// Plays a process killed in `claim_spare` right after its CAS (tests).
    #[cfg(test)]
    pub(crate) fn claim_killed_for_test(&self, offset: u64, taker: Taker<'_>) -> bool {
        let h = self.header_at(offset as usize);
        taker.announce(offset / 64, h.generation.load(Ordering::Relaxed));
        h.refcount
            .compare_exchange(SPARE, TAKING, Ordering::AcqRel, Ordering::Relaxed)
            .is_ok()
    }

    /// The header of a block, for tests that play a misbehaving peer.
    #[cfg(test)]
    pub(crate) fn header_for_test(&self, offset: u64) -> &BlockHeader {
        self.header_at(offset as usize)
    }

    /// The generation of a checked block now (bumped each time it is
    /// freed). Relaxed: callers order it with fences (`ring::broadcast`).
    pub(crate) fn generation(&self, offset: u64) -> u32 {
        self.header_at(offset as usize)
            .generation
            .load(Ordering::Relaxed)
    }

    /// The process recorded as holding a checked block (0: unknown).
    pub(crate) fn owner(&self, offset: u64) -> u32 {
        self.header_at(offset as usize)
            .owner_pid
            .load(Ordering::Relaxed)
    }

    /// Drops `pid`'s reference; the last one frees the block (and gets
    /// `true`).
    pub(crate) fn release(&self, offset: u64, pid: u32) -> bool {
        let h = self.header_at(offset as usize);
        // Acquire: as the decrement's below, pairs with the other owners'
        // Release decrements, so their reads of the payload happen before
        // the block is reused.
        let mut refs = h.refcount.load(Ordering::Acquire);
        loop {
            match refs {
                // The caller holds a reference, so a count of 1 is ours
                // alone, and nobody can add one: that takes holding a
                // reference too (a clone, a forward), and a queued message
                // holds its own. Free without touching the count: it stays
                // 1, with its holder recorded, until `free` marks the block
                // (the common case of a message received, read and dropped
                // costs no locked decrement: 1 MiB loan one-way 413-463 ->
                // 367-429 ns, 2 x 3 alternating runs), and a count never
                // reads 0 while a block is in use.
                1 => {
                    self.free(h, offset, pid);
                    return true;
                }
                // Released more often than retained, or not a held block:
                // only a scribbling peer can cause this. Leave it alone
                // (leaked, not reused while someone may still read it).
                0 | TAKING.. => return false,
                // AcqRel: see the module docs ("reference count").
                n => match h.refcount.compare_exchange_weak(
                    n,
                    n - 1,
                    Ordering::AcqRel,
                    Ordering::Acquire,
                ) {
                    Ok(_) => return false,
                    Err(now) => refs = now,
                },
            }
        }
    }

    /// Puts a block nobody references any more on its free list, bumping
    /// its generation first. Right before each attempt to link it in, marks
    /// it [`ON_FREE_LIST`] with `pid` as its holder: a process killed
    /// between that mark and the link leaves a block on no list, marked by
    /// a dead process, which `reclaim` links in (while `pid` lives, the
    /// block may be about to be linked: it is left alone).
    pub(super) fn free(&self, h: &BlockHeader, offset: u64, pid: u32) {
        h.generation.store(
            h.generation.load(Ordering::Relaxed).wrapping_add(1),
            Ordering::Relaxed,
        );
        let class = h.class.load(Ordering::Relaxed) as usize;
        if class < MAX_CLASSES {
            self.list(class).push(offset / 64, |b| {
                b.owner_pid.store(pid, Ordering::Relaxed);
                // Release: a reclaimer that reads the mark (Acquire) sees
                // who made it.
                b.refcount.store(ON_FREE_LIST, Ordering::Release);
            });
        }
    }
}

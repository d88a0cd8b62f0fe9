//! The zero-copy arena: payload blocks inside the segment, handed between
//! processes by offset.
//!
//! The block area is carved on demand with a bump pointer (one CAS), in
//! segregated power-of-two size classes (64 B .. the ring's maximum message).
//! A freed block goes onto its class's lock-free free list (see
//! [`free_list`]) and is reused from there; blocks are never merged or
//! returned to the bump area. When a class has no free block and the bump
//! area is used up, a block of a larger class is used instead.
//!
//! A block is owned by reference count: the sender's loan (1), which becomes
//! the queued message's reference on send, then the receiver's guard (clones
//! add references). The last owner frees the block, bumping its generation
//! so a stale descriptor naming the old generation is detected.
//!
//! A block's count says which of four states it is in: on a free list
//! ([`ON_FREE_LIST`]), a *spare* ([`SPARE`]: allocated ahead by a handle
//! that sent a loan, for its next one, and claimed by a CAS to 1), owned
//! (1 and up), or being freed (0, briefly). A spare is free for accounting
//! and for any allocation that finds nothing else; it spares the sender the
//! free-list head's trip from the receiver on each loan.
//!
//! # Orderings
//! - SYNC POINT "block free": the free-list push is `Release` and the pop
//!   `Acquire` (in [`free_list`]), so everything the last owner did with the
//!   block happens before the next allocator writes it.
//! - The reference count decrement is `AcqRel`: `Release` so each owner's
//!   reads of the payload happen before the block is freed, `Acquire` in the
//!   last owner so it sees the others' releases before freeing. An owner
//!   that finds the count at 1 (its own reference alone) frees without
//!   decrementing, after an `Acquire` load that plays the same part.
//! - A spare is published by a `Release` store of [`SPARE`] and claimed by
//!   an `Acquire` CAS: its maker's writes happen before its next owner's.
//! - The payload itself travels with the slot: the sender writes it before
//!   publishing the slot (`Release`), the receiver reads it after seeing the
//!   slot published (`Acquire`).
//!
//! # Untrusted peers
//! A descriptor read from a slot is checked against the arena (offset in
//! range and aligned, class in range, header class, generation, length)
//! before any byte is touched; free-list links are range-checked when
//! popped. A peer can make us report `Corrupt` or leak blocks, not read or
//! write outside the arena.

pub(crate) mod free_list;

use core::ptr::NonNull;

use crate::atomic::Ordering;
use crate::layout::{
    ArenaControl, BlockHeader, EventCount, BLOCK_HEADER, MAX_CLASSES, MIN_BLOCK_PAYLOAD,
};
use free_list::FreeList;

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

/// Reference count of a block on a free list (or being put there). Not 0,
/// so that `reclaim_dead` can tell a free block from one whose last holder
/// died while freeing it.
pub(crate) const ON_FREE_LIST: u32 = u32::MAX;

/// Reference count of a *spare*: a block a handle allocated ahead for its
/// next loan (`Ring::alloc_block`), owned by nobody until a CAS from this
/// value to 1 claims it. Any handle may claim any spare (the CAS decides),
/// so a copy of a handle's spare (after `fork`) is never used twice, and an
/// allocation that finds the arena exhausted takes other handles' spares.
/// Counted as free by [`Arena::usage`].
pub(crate) const SPARE: u32 = u32::MAX - 1;

/// Why an allocation failed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum AllocError {
    /// Larger than the ring's maximum message.
    TooLarge { max: usize },
    /// No free block of a suitable class and no room to carve one.
    Exhausted,
}

/// A zero-copy descriptor as it travels in a slot.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Descriptor {
    /// Offset of the block in the block area.
    pub(crate) offset: u64,
    pub(crate) len: u32,
    pub(crate) class: u32,
    pub(crate) generation: u32,
}

impl Descriptor {
    pub(crate) fn to_words(self) -> [u64; 5] {
        [
            self.offset,
            self.len as u64 | (self.class as u64) << 32,
            self.generation as u64,
            0,
            0,
        ]
    }

    pub(crate) fn from_words(w: &[u64; 5]) -> Self {
        Descriptor {
            offset: w[0],
            len: w[1] as u32,
            class: (w[1] >> 32) as u32,
            generation: w[2] as u32,
        }
    }
}

/// Blocks and bytes in use (carved minus free), a snapshot.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ArenaUsage {
    /// Blocks currently allocated (loaned, queued or held by a guard). A
    /// handle's spare (allocated ahead for its next loan, and taken by any
    /// allocation that finds nothing else) counts as free.
    pub blocks_in_use: u64,
    /// Bytes those blocks occupy (headers included).
    pub bytes_in_use: u64,
    /// Bytes of the block area carved so far.
    pub bytes_carved: u64,
    /// Size of the block area.
    pub capacity_bytes: u64,
}

/// A view of the arena of one segment.
#[derive(Clone)]
pub(crate) struct Arena {
    ctrl: NonNull<ArenaControl>,
    blocks: NonNull<u8>,
    blocks_len: usize,
    /// Largest class a message may use (from the ring's maximum message).
    max_class: usize,
    max_message: usize,
    /// The not-full event count to signal when a block is freed (rings with
    /// wake-ups only): a sender blocked on a full arena waits on it.
    freed_waker: Option<NonNull<EventCount>>,
}

// SAFETY: only shared references to atomics and raw pointers into the
// segment, which the owner keeps mapped (see `Arena::new`).
unsafe impl Send for Arena {}
// SAFETY: as above.
unsafe impl Sync for Arena {}

impl Arena {
    /// # Safety
    /// `ctrl` must point to a valid `ArenaControl` and `blocks` to
    /// `blocks_len` bytes (64-byte aligned) of the same mapping, and
    /// `freed_waker` (if any) to an `EventCount` of it, all alive as long as
    /// the returned value (or a clone) is used. `max_message` must be at most
    /// `class_payload(MAX_CLASSES - 1)`.
    pub(crate) unsafe fn new(
        ctrl: NonNull<ArenaControl>,
        blocks: NonNull<u8>,
        blocks_len: usize,
        max_message: usize,
        freed_waker: Option<NonNull<EventCount>>,
    ) -> Self {
        Arena {
            ctrl,
            blocks,
            blocks_len,
            max_class: class_for(max_message).min(MAX_CLASSES - 1),
            max_message,
            freed_waker,
        }
    }

    /// Wakes senders blocked on a full arena (after `release` freed a block).
    #[cfg(not(fusion_ring_loom))]
    pub(crate) fn notify_freed(&self) {
        if let Some(ec) = self.freed_waker {
            // SAFETY: points into the same mapping as the arena (`new`).
            crate::sync::notify(unsafe { ec.as_ref() });
        }
    }

    fn ctrl(&self) -> &ArenaControl {
        // SAFETY: `new`'s contract.
        unsafe { self.ctrl.as_ref() }
    }

    /// The header of the block at `offset`; the caller has checked that
    /// `offset + BLOCK_HEADER <= blocks_len` and `offset % 64 == 0`.
    fn header_at(&self, offset: usize) -> &BlockHeader {
        debug_assert!(offset.is_multiple_of(64) && offset + BLOCK_HEADER <= self.blocks_len);
        // SAFETY: in bounds and aligned (caller), and the block area holds
        // only atomics in headers, valid for any bit pattern.
        unsafe { self.blocks.add(offset).cast::<BlockHeader>().as_ref() }
    }

    fn list<'a>(
        &'a self,
        class: usize,
    ) -> FreeList<'a, impl Fn(u64) -> Option<&'a BlockHeader> + 'a> {
        FreeList::new(&self.ctrl().free[class].value, move |index| {
            let offset = usize::try_from(index).ok()?.checked_mul(64)?;
            let end = offset.checked_add(block_size(class))?;
            if end > self.blocks_len {
                return None;
            }
            let h = self.header_at(offset);
            // Relaxed: the class is fixed at carving; a mismatch is corruption.
            (h.class.load(Ordering::Relaxed) as usize == class).then_some(h)
        })
    }

    /// Fetches the header of the block at `offset` writable ahead of use
    /// (nothing if `offset` cannot be a block's).
    #[inline(always)]
    pub(crate) fn prefetch_header(&self, offset: u64) {
        if offset.is_multiple_of(64)
            && offset.saturating_add(BLOCK_HEADER as u64) <= self.blocks_len as u64
        {
            crate::atomic::prefetch_for_write(self.header_at(offset as usize));
        }
    }

    /// Fetches the first payload line of the block at `offset` ahead of a
    /// read (nothing if `offset` cannot be a block's).
    #[inline(always)]
    pub(crate) fn prefetch_payload(&self, offset: u64) {
        if offset.is_multiple_of(64)
            && offset.saturating_add(2 * BLOCK_HEADER as u64) <= self.blocks_len as u64
        {
            crate::atomic::prefetch_for_read(self.payload_ptr(offset).as_ptr());
        }
    }

    /// Fetches the head of class `class`'s free list writable ahead of a
    /// push or pop (nothing for a class out of range).
    #[inline(always)]
    pub(crate) fn prefetch_free_list(&self, class: usize) {
        if let Some(head) = self.ctrl().free.get(class) {
            crate::atomic::prefetch_for_write(&head.value);
        }
    }

    /// Allocates a block for `len` payload bytes, owned once (refcount 1);
    /// when nothing else is left, claims another handle's spare.
    pub(crate) fn alloc(&self, len: usize, pid: u32) -> Result<Descriptor, AllocError> {
        self.alloc_from(len, pid, true)
    }

    /// [`Arena::alloc`] without touching other handles' spares (to make
    /// one's own: taking another's would only move it).
    pub(crate) fn alloc_spare(&self, len: usize, pid: u32) -> Result<Descriptor, AllocError> {
        let d = self.alloc_from(len, pid, false)?;
        // Release: pairs with the Acquire of the CAS that claims it (ours
        // or another handle's): its writes to the block come before.
        self.header_at(d.offset as usize)
            .refcount
            .store(SPARE, Ordering::Release);
        Ok(d)
    }

    /// Claims the spare at `offset` (see [`SPARE`]) for process `pid`:
    /// `None` if it is not one any more (another handle took it, or the
    /// offset is not a block's). The block then holds one reference, ours;
    /// its length is still to be set (`set_len`).
    pub(crate) fn claim_spare(&self, offset: u64, pid: u32) -> Option<Descriptor> {
        let offset = usize::try_from(offset).ok()?;
        if !offset.is_multiple_of(64) || offset.checked_add(BLOCK_HEADER)? > self.blocks_len {
            return None;
        }
        let h = self.header_at(offset);
        let class = h.class.load(Ordering::Relaxed) as usize;
        if class > self.max_class || offset + block_size(class) > self.blocks_len {
            return None;
        }
        // Acquire: pairs with `alloc_spare`'s Release store.
        h.refcount
            .compare_exchange(SPARE, 1, Ordering::Acquire, Ordering::Relaxed)
            .ok()?;
        h.owner_pid.store(pid, Ordering::Relaxed);
        Some(Descriptor {
            offset: offset as u64,
            len: 0,
            class: class as u32,
            generation: h.generation.load(Ordering::Relaxed),
        })
    }

    /// Sets the payload length of a block we own.
    pub(crate) fn set_len(&self, d: &mut Descriptor, len: usize) {
        d.len = len as u32;
        self.header_at(d.offset as usize)
            .len
            .store(len as u32, Ordering::Relaxed);
    }

    fn alloc_from(&self, len: usize, pid: u32, steal: bool) -> Result<Descriptor, AllocError> {
        if len > self.max_message {
            return Err(AllocError::TooLarge {
                max: self.max_message,
            });
        }
        let want = class_for(len);
        // The pop loads the head, then CASes it: fetched writable, the line
        // moves once instead of twice.
        self.prefetch_free_list(want);
        let offset = self
            .list(want)
            .pop()
            .map(|i| i as usize * 64)
            .or_else(|| self.carve(want))
            .or_else(|| {
                (want + 1..=self.max_class)
                    .find_map(|c| self.list(c).pop().map(|i| i as usize * 64))
            })
            .or_else(|| steal.then(|| self.steal_spare(want)).flatten())
            .ok_or(AllocError::Exhausted)?;
        let h = self.header_at(offset);
        // The caller is about to write the payload: its first line too.
        crate::atomic::prefetch_for_write(self.payload_ptr(offset as u64).as_ptr());
        // Relaxed: we own the block (popped with Acquire or freshly carved);
        // these become visible to a receiver through the slot's Release.
        h.refcount.store(1, Ordering::Relaxed);
        h.len.store(len as u32, Ordering::Relaxed);
        h.owner_pid.store(pid, Ordering::Relaxed);
        Ok(Descriptor {
            offset: offset as u64,
            len: len as u32,
            class: h.class.load(Ordering::Relaxed),
            generation: h.generation.load(Ordering::Relaxed),
        })
    }

    /// Claims a spare of class `want` or larger, walking the carved area
    /// (only when the arena is otherwise exhausted).
    fn steal_spare(&self, want: usize) -> Option<usize> {
        self.carved_blocks().find_map(|(offset, h, class)| {
            (class >= want
                && class <= self.max_class
                && h.refcount.load(Ordering::Relaxed) == SPARE
                // Acquire: as in `claim_spare`.
                && h.refcount
                    .compare_exchange(SPARE, 1, Ordering::Acquire, Ordering::Relaxed)
                    .is_ok())
            .then_some(offset)
        })
    }

    /// Every carved block: offset, header and class, in address order. Ends
    /// early at a header whose class makes no sense (a scribbled segment).
    fn carved_blocks(&self) -> impl Iterator<Item = (usize, &BlockHeader, usize)> + '_ {
        let carved = (self.ctrl().bump.value.load(Ordering::Relaxed) as usize).min(self.blocks_len);
        let mut offset = 0usize;
        core::iter::from_fn(move || {
            if offset + BLOCK_HEADER > carved {
                return None;
            }
            let h = self.header_at(offset);
            let class = h.class.load(Ordering::Relaxed) as usize;
            if class >= MAX_CLASSES || offset + block_size(class) > carved {
                return None;
            }
            let at = offset;
            offset += block_size(class);
            Some((at, h, class))
        })
    }

    /// Takes a fresh block of class `c` from the bump area.
    fn carve(&self, c: usize) -> Option<usize> {
        let size = block_size(c) as u64;
        let bump = &self.ctrl().bump.value;
        // Relaxed: the CAS only hands out disjoint ranges; the block is new
        // memory nobody else references.
        let mut cur = bump.load(Ordering::Relaxed);
        loop {
            let end = cur.checked_add(size)?;
            if end > self.blocks_len as u64 || !cur.is_multiple_of(64) {
                return None;
            }
            match bump.compare_exchange_weak(cur, end, Ordering::Relaxed, Ordering::Relaxed) {
                Ok(_) => break,
                Err(now) => cur = now,
            }
        }
        let h = self.header_at(cur as usize);
        h.class.store(c as u32, Ordering::Relaxed);
        h.next.store(0, Ordering::Relaxed);
        self.ctrl().carved[c].fetch_add(1, Ordering::Relaxed);
        Some(cur as usize)
    }

    /// Checks a descriptor read from a slot against the arena.
    pub(crate) fn check(&self, d: &Descriptor) -> Result<(), String> {
        let class = d.class as usize;
        if class > self.max_class {
            return Err(format!(
                "descriptor class {class} exceeds the largest class {}",
                self.max_class
            ));
        }
        let offset = usize::try_from(d.offset)
            .map_err(|_| format!("descriptor offset {} out of range", d.offset))?;
        if !offset.is_multiple_of(64)
            || offset
                .checked_add(block_size(class))
                .is_none_or(|end| end > self.blocks_len)
        {
            return Err(format!(
                "descriptor offset {offset} (class {class}) lies outside the {}-byte block area",
                self.blocks_len
            ));
        }
        if d.len as usize > class_payload(class).min(self.max_message) {
            return Err(format!(
                "descriptor length {} exceeds its class capacity {}",
                d.len,
                class_payload(class)
            ));
        }
        let h = self.header_at(offset);
        let (hc, hg) = (
            h.class.load(Ordering::Relaxed),
            h.generation.load(Ordering::Relaxed),
        );
        if hc != d.class || hg != d.generation {
            return Err(format!(
                "block at {offset} is class {hc} generation {hg}, the descriptor says class {class} generation {}",
                d.generation
            ));
        }
        Ok(())
    }

    /// Pointer to the payload of a checked block.
    pub(crate) fn payload_ptr(&self, offset: u64) -> NonNull<u8> {
        let offset = offset as usize + BLOCK_HEADER;
        assert!(offset <= self.blocks_len);
        // SAFETY: in bounds of the block area (asserted); the caller checked
        // the whole block lies inside it.
        unsafe { self.blocks.add(offset) }
    }

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

    /// The header of a block, for tests that play a misbehaving peer.
    #[cfg(test)]
    pub(crate) fn header_for_test(&self, offset: u64) -> &BlockHeader {
        self.header_at(offset as usize)
    }

    /// The process recorded as holding a checked block (0: unknown).
    pub(crate) fn owner(&self, offset: u64) -> u32 {
        self.header_at(offset as usize)
            .owner_pid
            .load(Ordering::Relaxed)
    }

    /// Drops an owner; the last one frees the block (and gets `true`).
    pub(crate) fn release(&self, offset: u64) -> bool {
        let h = self.header_at(offset as usize);
        // The caller holds a reference, so a count of 1 is ours alone, and
        // nobody can add one: that takes holding a reference too (a clone,
        // a forward), and a queued message holds its own. Free at once,
        // without the locked decrement: the common case of a message
        // received, read and dropped (1 MiB loan one-way 413-463 -> 367-429
        // ns, 2 x 3 alternating runs). Acquire: as the decrement's, pairs
        // with the other owners' Release decrements, so their reads of the
        // payload happen before the block is reused. Dying here leaves the
        // count at 1 with us as holder: `reclaim_dead` frees it.
        if h.refcount.load(Ordering::Acquire) == 1 {
            self.free(h, offset);
            return true;
        }
        // AcqRel: see the module docs ("reference count").
        let before = h.refcount.fetch_sub(1, Ordering::AcqRel);
        if before == 1 {
            // Until `free` marks it ON_FREE_LIST, right before linking it
            // in, a count of 0 with a holder recorded tells `reclaim_dead`
            // that a process is freeing it (and may die doing so).
            self.free(h, offset);
            true
        } else if before == 0 || before >= SPARE {
            // Released more often than retained: only a scribbling peer can
            // cause this. Undo, and leave the block alone (leaked, not reused
            // while someone may still read it).
            h.refcount.fetch_add(1, Ordering::Relaxed);
            false
        } else {
            false
        }
    }

    /// Puts a block nobody references any more on its free list, marking
    /// it [`ON_FREE_LIST`] (and without holder) just before the link-in
    /// CAS: a process killed between the mark and the CAS leaks the block
    /// (it is then neither on the list nor recognisable as half-freed), so
    /// that window is kept to a few instructions.
    fn free(&self, h: &BlockHeader, offset: u64) {
        h.generation.store(
            h.generation.load(Ordering::Relaxed).wrapping_add(1),
            Ordering::Relaxed,
        );
        let class = h.class.load(Ordering::Relaxed) as usize;
        if class < MAX_CLASSES {
            self.list(class).push(offset / 64, |b| {
                // Relaxed: published by the push's Release CAS.
                b.refcount.store(ON_FREE_LIST, Ordering::Relaxed);
                b.owner_pid.store(0, Ordering::Relaxed);
            });
        }
    }

    /// Frees the blocks whose recorded owner is a dead process: its loans,
    /// and the messages it received and still held. `queued` lists the
    /// offsets that messages still in the ring name (read, with Acquire,
    /// before calling: see `take`); `dead(pid)` tells a dead owner.
    /// Returns how many blocks were freed.
    ///
    /// Walks the carved area block by block and stops at a header whose
    /// class makes no sense (a scribbled segment).
    pub(crate) fn reclaim_dead(
        &self,
        queued: &std::collections::HashSet<u64>,
        mut dead: impl FnMut(u32) -> bool,
    ) -> u64 {
        let mut freed = 0;
        for (offset, h, _) in self.carved_blocks() {
            // Acquire: the owner's and holders' last writes to the block
            // happen before we free it (as the refcount's AcqRel does).
            // A count of 0 or 1 with a holder recorded: the holder died
            // holding it, or while freeing it (see `release`); a spare: its
            // maker died. Finish the job.
            let refs = h.refcount.load(Ordering::Acquire);
            let owner = h.owner_pid.load(Ordering::Relaxed);
            if refs != ON_FREE_LIST
                && owner != 0
                && !queued.contains(&(offset as u64))
                && dead(owner)
                // One survivor frees it; a holder that was not dead after
                // all would have changed the count.
                && h
                    .refcount
                    .compare_exchange(refs, ON_FREE_LIST, Ordering::AcqRel, Ordering::Relaxed)
                    .is_ok()
            {
                self.free(h, offset as u64);
                freed += 1;
            }
        }
        freed
    }

    /// Blocks and bytes in use (carved minus free and spare). Walks the
    /// free lists and the carved area, so it is for statistics, not the hot
    /// path.
    pub(crate) fn usage(&self) -> ArenaUsage {
        let ctrl = self.ctrl();
        let mut u = ArenaUsage {
            bytes_carved: ctrl.bump.value.load(Ordering::Relaxed),
            capacity_bytes: self.blocks_len as u64,
            ..Default::default()
        };
        for c in 0..MAX_CLASSES {
            // At most what fits: `carved` is shared memory, and the walk
            // below must end even on a scribbled, cyclic list.
            let carved = ctrl.carved[c]
                .load(Ordering::Relaxed)
                .min((self.blocks_len / block_size(c)) as u64);
            let free = self.list(c).len_bounded(carved);
            let used = carved.saturating_sub(free);
            // Saturating: `carved` is shared memory a peer may scribble on.
            u.blocks_in_use = u.blocks_in_use.saturating_add(used);
            u.bytes_in_use = u
                .bytes_in_use
                .saturating_add(used.saturating_mul(block_size(c) as u64));
        }
        // Spares are free for every handle to take (see `SPARE`).
        for (_, h, class) in self.carved_blocks() {
            if h.refcount.load(Ordering::Relaxed) == SPARE {
                u.blocks_in_use = u.blocks_in_use.saturating_sub(1);
                u.bytes_in_use = u.bytes_in_use.saturating_sub(block_size(class) as u64);
            }
        }
        u
    }
}

#[cfg(all(test, not(fusion_ring_loom)))]
mod tests {
    use super::*;

    #[test]
    fn classes_round_up_to_powers_of_two_of_64() {
        assert_eq!(class_for(0), 0);
        assert_eq!(class_for(41), 0);
        assert_eq!(class_for(64), 0);
        assert_eq!(class_for(65), 1);
        assert_eq!(class_for(128), 1);
        assert_eq!(class_for(129), 2);
        assert_eq!(class_for(1 << 20), 14);
        assert_eq!(class_payload(14), 1 << 20);
        for len in [41, 100, 1000, 4096, 65_537, 1 << 20] {
            let c = class_for(len);
            assert!(class_payload(c) >= len);
            assert!(c == 0 || class_payload(c - 1) < len);
        }
    }

    #[test]
    fn descriptor_words_round_trip() {
        let d = Descriptor {
            offset: 123 * 64,
            len: 70_000,
            class: 11,
            generation: u32::MAX,
        };
        assert_eq!(Descriptor::from_words(&d.to_words()), d);
    }
}

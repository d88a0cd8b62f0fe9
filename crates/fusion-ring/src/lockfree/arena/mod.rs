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
//! A block's count says which state it is in: on a free list
//! ([`ON_FREE_LIST`], also while being popped or linked in), a *spare*
//! ([`SPARE`]: allocated ahead by a handle that sent a loan, for its next
//! one), being claimed as a spare ([`TAKING`], briefly), owned (1 and up;
//! the last owner frees the block with the count still at 1), or freshly
//! carved (0, briefly). A spare is free for accounting and for any
//! allocation that finds nothing else; it spares the sender the free-list
//! head's trip from the receiver on each loan.
//!
//! # A process killed at any instruction
//! Every state a kill can leave a block in is recognisable by survivors
//! ([`Arena::reclaim`]): owned or spare with a dead holder recorded; or
//! abandoned halfway (carved or popped and no holder written yet, claimed
//! as a spare, marked free and not linked in). For the second kind the
//! taker names the block in its claim word ([`Taker`]) before the CAS that
//! takes it, and the freer writes its pid into the mark, so a block is
//! taken as abandoned only when no live process can be in the middle of a
//! step on it. The bump word carries the class of the last block carved,
//! so a carver killed before writing its block's header leaves the carved
//! area walkable.
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
//!   an `AcqRel` CAS: its maker's writes happen before its next owner's.
//! - SYNC POINT "block claimed": a taker's claim word is written (Relaxed)
//!   before the `Release` CAS that takes the block (pop, carve, spare
//!   claim); a reclaimer that sees the CAS's effect with an `Acquire` load
//!   (the list head, the bump word, the count) then sees the claim. The
//!   claim is cleared with `Release` after the holder is written, so a
//!   reclaimer that reads it cleared (`Acquire`) sees the holder.
//! - SYNC POINT "block carved": each carver writes the previous block's
//!   class before its `Release` CAS of the bump word; walks load the bump
//!   word with `Acquire`.
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
//!
//! # Files
//! This file holds the types and the checks; [`alloc`] carving, free lists
//! and spares; [`lifetime`] owners, taking and releasing; [`reclaim`] what
//! dead processes left; [`free_list`] the tagged Treiber stack.

mod alloc;
pub(crate) mod free_list;
mod lifetime;
#[cfg(all(test, fusion_ring_loom))]
mod loom_model;
mod reclaim;

pub(crate) use reclaim::Peers;

use core::ptr::NonNull;

use crate::atomic::{AtomicU64, Ordering};
use crate::shm::layout::{ArenaControl, BlockHeader, EventCount, BLOCK_HEADER, MAX_CLASSES};
use free_list::FreeList;

pub(crate) use crate::shm::layout::{block_size, class_for, class_payload};

/// Reference count of a block on a free list (or being put there). Not 0,
/// so that `reclaim_dead` can tell a free block from one whose last holder
/// died while freeing it.
pub(crate) const ON_FREE_LIST: u32 = u32::MAX;

/// Reference count of a *spare*: a block a handle allocated ahead for its
/// next loan (`BlockAllocator::alloc`), owned by nobody until a CAS from this
/// value to 1 claims it. Any handle may claim any spare (the CAS decides),
/// so a copy of a handle's spare (after `fork`) is never used twice, and an
/// allocation that finds the arena exhausted takes other handles' spares.
/// Counted as free by [`Arena::usage`].
pub(crate) const SPARE: u32 = u32::MAX - 1;

/// Reference count of a spare being claimed (`Arena::claim_spare`): its
/// claimer has announced it ([`Taker`]) and is about to record itself as
/// its holder. Never reclaimed by holder; abandoned once no live claim names
/// it.
pub(crate) const TAKING: u32 = u32::MAX - 2;

/// Who takes a block (or frees one for dead processes): the process,
/// recorded as the block's holder, and the participant's claim word
/// (`ParticipantId::arena_claim`). The claim names the block before each
/// step that a kill could leave half done (popping it off a free list,
/// carving it, claiming a spare) and is cleared once the block records its
/// holder, so survivors can tell a block a live process is taking from one
/// a dead process abandoned (`Arena::reclaim`).
#[derive(Clone, Copy)]
pub(crate) struct Taker<'a> {
    pub(crate) pid: u32,
    pub(crate) claim: &'a AtomicU64,
}

impl Taker<'static> {
    /// A taker whose claim word lies outside any segment, where nobody
    /// reads it (tests that play other processes).
    #[cfg(all(test, not(fusion_ring_loom)))]
    pub(crate) fn detached(pid: u32) -> Self {
        static NOWHERE: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
        Taker {
            pid,
            claim: &NOWHERE,
        }
    }
}

impl Taker<'_> {
    /// Announces block `index` at `generation`. Relaxed: published by the
    /// Release CAS that takes the block (SYNC POINT "block claimed").
    #[inline(always)]
    fn announce(&self, index: u64, generation: u32) {
        self.claim
            .store(claim_word(index, generation), Ordering::Relaxed);
    }

    /// Clears the claim. Release: a reclaimer that reads it cleared
    /// (Acquire) sees the block's holder recorded.
    #[inline(always)]
    fn done(&self) {
        self.claim.store(0, Ordering::Release);
    }
}

/// A claim word: `generation << 32 | (block index + 1)`; 0 is no claim.
pub(crate) fn claim_word(index: u64, generation: u32) -> u64 {
    u64::from(generation) << 32 | (index & 0xffff_ffff).wrapping_add(1)
}

/// The block a claim word names, if any.
pub(crate) fn claimed_index(word: u64) -> Option<u64> {
    (word & 0xffff_ffff).checked_sub(1)
}

/// Bytes carved, from the bump word.
fn bump_end(word: u64) -> u64 {
    word & !63
}

/// Class of the last block carved, from the bump word.
fn bump_last_class(word: u64) -> Option<usize> {
    ((word & 63) as usize)
        .checked_sub(1)
        .filter(|&c| c < MAX_CLASSES)
}

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
    /// Under loom the headers are a table of their own (loom atomics cannot
    /// live in the bytes of a block area): one per 64-byte unit.
    #[cfg(fusion_ring_loom)]
    model_headers: NonNull<BlockHeader>,
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
            #[cfg(fusion_ring_loom)]
            model_headers: NonNull::dangling(),
        }
    }

    /// An arena over a control block and a table of `blocks_len / 64`
    /// headers (the loom models).
    ///
    /// # Safety
    /// `ctrl`, `headers` and `blocks` (`blocks_len` bytes) must outlive the
    /// returned value.
    #[cfg(fusion_ring_loom)]
    pub(crate) unsafe fn model(
        ctrl: &ArenaControl,
        headers: &[BlockHeader],
        blocks: NonNull<u8>,
        max_message: usize,
    ) -> Self {
        // SAFETY: the caller keeps all three alive; the headers are
        // reached through `model_headers`, never through `blocks`.
        let mut arena = unsafe {
            Arena::new(
                NonNull::from(ctrl),
                blocks,
                headers.len() * 64,
                max_message,
                None,
            )
        };
        arena.model_headers = NonNull::from(headers).cast();
        arena
    }

    /// The event count senders blocked on a full arena wait on, to signal
    /// after `release` freed a block (`handle::shared::notify_block_freed`); `None`
    /// on a ring without wake-ups.
    pub(crate) fn freed_waker(&self) -> Option<&EventCount> {
        // SAFETY: points into the same mapping as the arena (`new`).
        self.freed_waker.map(|ec| unsafe { ec.as_ref() })
    }

    fn ctrl(&self) -> &ArenaControl {
        // SAFETY: `new`'s contract.
        unsafe { self.ctrl.as_ref() }
    }

    /// The header of the block at `offset`; the caller has checked that
    /// `offset + BLOCK_HEADER <= blocks_len` and `offset % 64 == 0`.
    fn header_at(&self, offset: usize) -> &BlockHeader {
        debug_assert!(offset.is_multiple_of(64) && offset + BLOCK_HEADER <= self.blocks_len);
        #[cfg(fusion_ring_loom)]
        // SAFETY: one header per 64-byte unit of the block area (`model`),
        // and `offset` is in bounds (caller).
        return unsafe { self.model_headers.add(offset / 64).as_ref() };
        #[cfg(not(fusion_ring_loom))]
        // SAFETY: in bounds and aligned (caller), and the block area holds
        // only atomics in headers, valid for any bit pattern.
        unsafe {
            self.blocks.add(offset).cast::<BlockHeader>().as_ref()
        }
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

    /// Blocks and bytes in use (carved minus free and spare). Walks the
    /// free lists and the carved area, so it is for statistics, not the hot
    /// path.
    pub(crate) fn usage(&self) -> ArenaUsage {
        let ctrl = self.ctrl();
        let mut u = ArenaUsage {
            bytes_carved: bump_end(ctrl.bump.value.load(Ordering::Relaxed))
                .min(self.blocks_len as u64),
            capacity_bytes: self.blocks_len as u64,
            ..Default::default()
        };
        let mut carved = [0u64; MAX_CLASSES];
        for (_, h, class) in self.carved_blocks() {
            carved[class] += 1;
            // Spares are free for every handle to take (see `SPARE`).
            if h.refcount.load(Ordering::Relaxed) != SPARE {
                u.blocks_in_use += 1;
                u.bytes_in_use += block_size(class) as u64;
            }
        }
        for (c, &n) in carved.iter().enumerate() {
            // Bounded: the walk must end even on a scribbled, cyclic list.
            let free = self.list(c).len_bounded(n);
            u.blocks_in_use = u.blocks_in_use.saturating_sub(free);
            u.bytes_in_use = u
                .bytes_in_use
                .saturating_sub(free.saturating_mul(block_size(c) as u64));
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

//! The engine's broadcast parts: a publisher rewriting slots (the mark, and
//! the block the slot's previous lap named), a subscriber passed by the
//! publisher (`Lagged`), and a subscriber copying a block out of the arena
//! without taking it (`lockfree::broadcast`, "Overwriting"; docs/BROADCAST.md).
//!
//! # A block on a broadcast ring
//! Every subscriber reads the same block, so nobody takes it from the
//! message: the slot holds its one reference (the publisher's, recorded as
//! its holder) until the publisher rewrites the slot, when it releases the
//! block of the slot's previous lap. A subscriber copies the bytes out and
//! then checks that the slot still holds that message and the block still
//! has the descriptor's generation; otherwise what it copied is discarded
//! and the lag reported. The publisher marks a slot before it releases its
//! block, and a freed block's generation is bumped before it can be reused
//! (with a `Release` fence after the mark, and the subscriber's `Acquire`
//! fence before its checks), so a copy that read any byte of a reused block
//! fails one of the two checks.
//!
//! When the arena runs out, a publisher on a ring that blocks releases the
//! blocks of the messages every live subscriber has read
//! (`release_passed_blocks`): their slots keep the descriptor, whose
//! generation then fails the check of a subscriber that went back into the
//! history, and the publisher's own release at the rewrite.

use crate::atomic::{fence, Ordering};
use crate::error::RingError;
use crate::handle::broadcast;
use crate::lockfree::arena::Descriptor;
use crate::lockfree::protocol::Claim;
use crate::shm::layout::{unpack_meta, SlotKind};

use super::Ring;

impl Ring {
    /// Before a broadcast publisher writes the slots of `claim`: marks each
    /// one, and releases the block its previous lap named, if any.
    #[inline]
    pub(super) fn prepare_rewrite(&self, claim: Claim) {
        let core = self.shared.core();
        let Some(arena) = self.shared.arena() else {
            for k in 0..claim.count {
                core.mark_rewriting(claim.pos.wrapping_add(k));
            }
            return;
        };
        for k in 0..claim.count {
            let pos = claim.pos.wrapping_add(k);
            let old = self.slot_block(pos.wrapping_sub(core.capacity()));
            core.mark_rewriting(pos);
            if let Some(desc) = old {
                // SYNC POINT "slot rewritten": the mark before the release
                // and anything written into the block once reused.
                fence(Ordering::Release);
                if arena.check(&desc).is_ok() {
                    self.release_block(desc.offset);
                }
            }
        }
    }

    /// The block the slot of `pos` names, if it holds the published
    /// message of `pos` and that is a block (unchecked).
    fn slot_block(&self, pos: u64) -> Option<Descriptor> {
        let core = self.shared.core();
        let slot = core.slot(pos);
        // Acquire: the message's words (an earlier publisher's, after a
        // take-over). Our own otherwise.
        if slot.seq.load(Ordering::Acquire) != pos.wrapping_add(1) {
            return None;
        }
        let (_, kind, _) = unpack_meta(slot.meta.load(Ordering::Relaxed));
        (kind == SlotKind::ZeroCopy as u8).then(|| {
            let words = core::array::from_fn(|i| slot.payload[i].load(Ordering::Relaxed));
            Descriptor::from_words(&words)
        })
    }

    /// The arena is exhausted: on a broadcast ring that blocks, releases
    /// the blocks of the messages every live subscriber has read (module
    /// docs). Whether it released any.
    pub(crate) fn release_passed_blocks(&self) -> bool {
        let core = self.shared.core();
        let Some(arena) = self.shared.arena() else {
            return false;
        };
        if !self.shared.broadcast() || self.shared.overwrite() {
            return false;
        }
        // Relaxed: our own word (only the publisher allocates here).
        let head = core.ctrl().producer_head.value.load(Ordering::Relaxed);
        // SYNC POINT "subscriber joined", as a scan before sending.
        fence(Ordering::SeqCst);
        let capacity = core.capacity();
        let slowest = match broadcast::slowest(self.shared.participants(), head, capacity) {
            Ok(Some(c)) => c,
            Ok(None) => head,
            Err(_) => return false,
        };
        let mut released = false;
        let mut pos = head.saturating_sub(capacity);
        while pos < slowest {
            if let Some(desc) = self.slot_block(pos) {
                if arena.check(&desc).is_ok() {
                    self.release_block(desc.offset);
                    released = true;
                }
            }
            pos += 1;
        }
        released
    }

    /// Copies the checked block `desc`, which the slot of `pos` named, into
    /// `dest` (at least `desc.len` long), then checks that the slot and the
    /// block still hold that message: `false` if not (the copy is to be
    /// discarded and the lag reported; module docs).
    pub(super) fn copy_shared_block(&self, pos: u64, desc: Descriptor, dest: &mut [u8]) -> bool {
        let arena = self.shared.arena().expect("checked block implies an arena");
        let len = desc.len as usize;
        // SAFETY: the block was checked to lie inside the arena with room
        // for `len` bytes, and `dest` holds `len`. The publisher may reuse
        // the block while we copy (we hold no reference): the bytes may
        // then be another message's, never outside the block, and the
        // checks below discard them.
        unsafe {
            core::ptr::copy_nonoverlapping(
                arena.payload_ptr(desc.offset).as_ptr(),
                dest.as_mut_ptr(),
                len,
            )
        };
        // SYNC POINT "slot rewritten" (the Acquire fence in
        // `still_published`; pairs with the publisher's after its mark).
        self.shared.core().still_published(pos)
            && arena.generation(desc.offset) == desc.generation
    }

    /// A subscriber whose slot at `pos` holds a later lap (or was rewritten
    /// while read): moves its cursor to the oldest message still in the
    /// ring and says how many it missed (`lockfree::broadcast`,
    /// "Overwriting").
    #[cold]
    #[inline(never)]
    pub(super) fn lapped(&self, pos: u64) -> RingError {
        let core = self.shared.core();
        let next = core.after_lap(pos);
        let wake = self.wake_for(1);
        // A publisher of a ring that blocks may wait for this cursor (one
        // that went back into the history).
        core.release_single_on(self.cursor(), next, wake.seqcst());
        wake.notify(&self.shared.sync_block().not_full.value);
        let missed = next.wrapping_sub(pos);
        self.missed_total
            .set(self.missed_total.get().wrapping_add(missed));
        RingError::Lagged { missed }
    }

    /// This handle has just become a sender (in this process). The blocks
    /// a broadcast ring's slots name are its publisher's: one taking the
    /// role over records itself as their holder, so that survivors
    /// reclaiming a dead publisher's blocks leave them alone once their
    /// slot is marked for a rewrite.
    #[cold]
    #[inline(never)]
    pub(super) fn became_sender(&self) {
        if self.shared.broadcast() {
            self.adopt_slot_blocks();
        }
    }

    fn adopt_slot_blocks(&self) {
        let core = self.shared.core();
        let Some(arena) = self.shared.arena() else {
            return;
        };
        // Relaxed: our own word now.
        let head = core.ctrl().producer_head.value.load(Ordering::Relaxed);
        let pid = self.caller().pid;
        for pos in head.saturating_sub(core.capacity())..head {
            if let Some(desc) = self.slot_block(pos) {
                if arena.check(&desc).is_ok() {
                    arena.take(desc.offset, pid);
                }
            }
        }
    }
}

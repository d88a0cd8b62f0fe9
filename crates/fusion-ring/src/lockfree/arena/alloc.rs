//! Allocation: carving blocks off the bump pointer, popping free lists,
//! spares (a block allocated ahead for a handle's next loan) and stealing
//! them when nothing else is left.

use super::*;

impl Arena {
    /// Allocates a block for `len` payload bytes, owned once (refcount 1);
    /// when nothing else is left, claims another handle's spare.
    pub(crate) fn alloc(&self, len: usize, taker: Taker<'_>) -> Result<Descriptor, AllocError> {
        self.alloc_from(len, taker, true)
    }

    /// [`Arena::alloc`] without touching other handles' spares (to make
    /// one's own: taking another's would only move it).
    pub(crate) fn alloc_spare(
        &self,
        len: usize,
        taker: Taker<'_>,
    ) -> Result<Descriptor, AllocError> {
        let d = self.alloc_from(len, taker, false)?;
        // Release: pairs with the Acquire of the CAS that claims it (ours
        // or another handle's): its writes to the block come before.
        self.header_at(d.offset as usize)
            .refcount
            .store(SPARE, Ordering::Release);
        Ok(d)
    }

    /// Claims the spare at `offset` (see [`SPARE`]) for `taker`: `None` if
    /// it is not one any more (another handle took it, or the offset is not
    /// a block's). The block then holds one reference, the taker's; its
    /// length is still to be set (`set_len`).
    pub(crate) fn claim_spare(&self, offset: u64, taker: Taker<'_>) -> Option<Descriptor> {
        let offset = usize::try_from(offset).ok()?;
        if !offset.is_multiple_of(64) || offset.checked_add(BLOCK_HEADER)? > self.blocks_len {
            return None;
        }
        let h = self.header_at(offset);
        let class = h.class.load(Ordering::Relaxed) as usize;
        if class > self.max_class || offset + block_size(class) > self.blocks_len {
            return None;
        }
        let taken = self.take_spare_at(offset, h, h.generation.load(Ordering::Relaxed), taker);
        taker.done();
        // The generation as of the claim (the one read before it may be an
        // earlier spare's, had this block been taken, freed and spared again
        // in between).
        taken.then(|| Descriptor {
            offset: offset as u64,
            len: 0,
            class: class as u32,
            generation: h.generation.load(Ordering::Relaxed),
        })
    }

    /// Claims the spare `h` at `offset` by a CAS from [`SPARE`] through
    /// [`TAKING`] to one reference held by `taker` (its claim still set:
    /// the caller clears it). Until the count reads 1 the block's holder
    /// field may still name the spare's maker, so the taker announces the
    /// block first and `reclaim` leaves it alone while the taker lives.
    pub(super) fn take_spare_at(
        &self,
        offset: usize,
        h: &BlockHeader,
        generation: u32,
        t: Taker<'_>,
    ) -> bool {
        t.announce(offset as u64 / 64, generation);
        // AcqRel: Acquire pairs with `alloc_spare`'s Release store; Release
        // is SYNC POINT "block claimed" (the claim above happens before a
        // reclaimer's Acquire load that reads TAKING).
        if h.refcount
            .compare_exchange(SPARE, TAKING, Ordering::AcqRel, Ordering::Relaxed)
            .is_err()
        {
            return false;
        }
        h.owner_pid.store(t.pid, Ordering::Relaxed);
        // Release: a reclaimer that reads 1 (Acquire) sees the new holder.
        h.refcount.store(1, Ordering::Release);
        true
    }

    /// Sets the payload length of a block we own.
    pub(crate) fn set_len(&self, d: &mut Descriptor, len: usize) {
        d.len = len as u32;
        self.header_at(d.offset as usize)
            .len
            .store(len as u32, Ordering::Relaxed);
    }

    pub(super) fn alloc_from(
        &self,
        len: usize,
        taker: Taker<'_>,
        steal: bool,
    ) -> Result<Descriptor, AllocError> {
        if len > self.max_message {
            return Err(AllocError::TooLarge {
                max: self.max_message,
            });
        }
        let want = class_for(len);
        // The pop loads the head, then CASes it: fetched writable, the line
        // moves once instead of twice.
        self.prefetch_free_list(want);
        let found = self
            .pop(want, taker)
            .or_else(|| self.carve(want, taker))
            .or_else(|| (want + 1..=self.max_class).find_map(|c| self.pop(c, taker)));
        let offset = match found {
            Some(offset) => offset,
            None => match steal.then(|| self.steal_spare(want, taker)).flatten() {
                Some(offset) => offset,
                None => {
                    taker.done();
                    return Err(AllocError::Exhausted);
                }
            },
        };
        let h = self.header_at(offset);
        // The caller is about to write the payload: its first line too.
        crate::atomic::prefetch_for_write(self.payload_ptr(offset as u64).as_ptr());
        // Relaxed: we own the block (popped with Acquire or freshly carved);
        // these become visible to a receiver through the slot's Release.
        h.len.store(len as u32, Ordering::Relaxed);
        h.owner_pid.store(taker.pid, Ordering::Relaxed);
        // Release: a reclaimer that reads 1 (Acquire) sees the holder.
        h.refcount.store(1, Ordering::Release);
        // Release: a reclaimer that reads the claim cleared sees the above.
        taker.done();
        Ok(Descriptor {
            offset: offset as u64,
            len: len as u32,
            class: h.class.load(Ordering::Relaxed),
            generation: h.generation.load(Ordering::Relaxed),
        })
    }

    /// Pops a block of class `c`, announcing each candidate first (see
    /// [`Taker`]).
    pub(super) fn pop(&self, c: usize, taker: Taker<'_>) -> Option<usize> {
        self.list(c)
            .pop_with(|index, h| taker.announce(index, h.generation.load(Ordering::Relaxed)))
            .map(|i| i as usize * 64)
    }

    /// Claims a spare of class `want` or larger, walking the carved area
    /// (only when the arena is otherwise exhausted).
    pub(super) fn steal_spare(&self, want: usize, taker: Taker<'_>) -> Option<usize> {
        self.carved_blocks().find_map(|(offset, h, class)| {
            (class >= want
                && class <= self.max_class
                && h.refcount.load(Ordering::Relaxed) == SPARE
                && self.take_spare_at(offset, h, h.generation.load(Ordering::Relaxed), taker))
            .then_some(offset)
        })
    }

    /// Every carved block: offset, header and class, in address order. Ends
    /// early at a header whose class makes no sense (a scribbled segment).
    /// The class of the last block comes from the bump word: its carver may
    /// have been killed before it wrote the header (see [`Arena::carve`]).
    pub(super) fn carved_blocks(&self) -> impl Iterator<Item = (usize, &BlockHeader, usize)> + '_ {
        // Acquire: SYNC POINT "block carved" (pairs with `carve`'s CAS: the
        // headers of all blocks but the last are written, and the carvers'
        // claims are visible).
        let word = self.ctrl().bump.value.load(Ordering::Acquire);
        let carved = (bump_end(word) as usize).min(self.blocks_len);
        let last =
            bump_last_class(word).and_then(|c| Some((carved.checked_sub(block_size(c))?, c)));
        let mut offset = 0usize;
        core::iter::from_fn(move || {
            if offset + BLOCK_HEADER > carved {
                return None;
            }
            let h = self.header_at(offset);
            let class = match last {
                Some((at, c)) if at == offset => c,
                _ => h.class.load(Ordering::Relaxed) as usize,
            };
            if class >= MAX_CLASSES || offset + block_size(class) > carved {
                return None;
            }
            let at = offset;
            offset += block_size(class);
            Some((at, h, class))
        })
    }

    /// Takes a fresh block of class `c` from the bump area.
    ///
    /// The bump word carries the class of the last block carved, and every
    /// carver writes that block's class into its header before its own CAS
    /// moves past it: a carver killed between its CAS and its header write
    /// leaves a block whose size is still known, so walks over the carved
    /// area (`carved_blocks`) never lose their way.
    pub(super) fn carve(&self, c: usize, taker: Taker<'_>) -> Option<usize> {
        let size = block_size(c) as u64;
        let bump = &self.ctrl().bump.value;
        // Acquire: as in `carved_blocks`.
        let mut cur = bump.load(Ordering::Acquire);
        let at = loop {
            let end = bump_end(cur);
            let new_end = end.checked_add(size)?;
            if new_end > self.blocks_len as u64 {
                return None;
            }
            self.label_last(cur);
            taker.announce(end / 64, 0);
            // Release: SYNC POINT "block carved" (the label and the claim
            // above come before); Acquire: the labels of the others.
            match bump.compare_exchange_weak(
                cur,
                new_end | (c as u64 + 1),
                Ordering::AcqRel,
                Ordering::Acquire,
            ) {
                Ok(_) => break end as usize,
                Err(now) => cur = now,
            }
        };
        let h = self.header_at(at);
        h.class.store(c as u32, Ordering::Relaxed);
        h.next.store(0, Ordering::Relaxed);
        Some(at)
    }

    /// Writes the class of the last block carved (from bump word `word`)
    /// into its header: the same value its carver writes, in case it died
    /// before it could.
    pub(super) fn label_last(&self, word: u64) {
        let end = (bump_end(word) as usize).min(self.blocks_len);
        if let Some(c) = bump_last_class(word) {
            if let Some(at) = end.checked_sub(block_size(c)) {
                let class = &self.header_at(at).class;
                // Written only where it is missing (a carver killed before
                // it wrote it): a scribbled bump word then costs no write
                // into the middle of a block. Relaxed: published by the
                // caller's Release CAS.
                if at.is_multiple_of(64) && class.load(Ordering::Relaxed) != c as u32 {
                    class.store(c as u32, Ordering::Relaxed);
                }
            }
        }
    }
}

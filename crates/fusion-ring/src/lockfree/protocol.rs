//! The slot protocol (Vyukov's bounded MPMC queue over per-slot sequence
//! words), written against a [`ControlBlock`] and a slot array and knowing
//! nothing of mmap, so loom can check it on ordinary values.
//!
//! A slot's sequence word tells who may touch it, for position `pos`
//! (slot index `pos & mask`):
//!
//! | `seq`            | meaning                                        |
//! |------------------|------------------------------------------------|
//! | `pos`            | free: the producer that claims `pos` may write |
//! | `pos + 1`        | holds message `pos`: a consumer may claim it   |
//! | `pos + capacity` | released: free for the producer of the next lap |
//!
//! Producer: read `producer_head`, check the slot is free, claim with one CAS
//! on `producer_head` (a batch checks the next k slots and claims k with one
//! CAS), write, publish with a `Release` store of `pos + 1`.
//! Consumer: check the slot holds `pos`, read its length (so a too-small
//! buffer is reported before anything is claimed), claim with one CAS on
//! `consumer_head`, read, release with a `Release` store of `pos + capacity`.
//!
//! Between claim and publish/release the claimer owns the slot exclusively:
//! nobody else can reach `seq == pos` (producers) or `seq == pos + 1`
//! (consumers) for it, because the head has moved past `pos`.
//!
//! # Orderings
//! - SYNC POINT "message visible": the producer's `Release` store of
//!   `pos + 1` pairs with the consumer's `Acquire` load that sees `pos + 1`;
//!   the slot's stamp, meta and payload written before are visible after.
//! - SYNC POINT "slot free": the consumer's `Release` store of `pos + capacity`
//!   pairs with the next-lap producer's `Acquire` load that sees it; the
//!   consumer's reads of the old content happen before the producer's writes.
//! - A successful head CAS is `Release`, for SYNC POINT "claim recorded"
//!   only: the claimer's record of the positions it takes (`handle::peer`) happens
//!   before a survivor's `Acquire` load that sees the head past them. Head
//!   loads and failed CASes are `Relaxed`: the CAS only arbitrates which
//!   claimer owns a position; all data visibility goes through the sequence
//!   words above.
//! - Slot contents are `Relaxed` atomics, ordered by those two edges.
//!
//! # Untrusted peers
//! Every word here may be scribbled on by another process. A sequence word
//! ahead of its head with the head not moving is reported as corruption
//! instead of spinning; lengths and kinds are validated by the callers.

use core::ptr::NonNull;

use crate::atomic::{fence, Ordering};
use crate::shm::layout::{ClaimRecord, ControlBlock, Slot, SLOT_PAYLOAD};

/// Words of a slot payload.
pub(crate) const PAYLOAD_WORDS: usize = SLOT_PAYLOAD / 8;

/// Why a claim did not succeed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum ClaimError {
    /// No free slot (producer side).
    Full,
    /// No published message (consumer side).
    Empty,
    /// The next message is `needed` bytes, more than the caller's buffer.
    TooSmall { needed: usize },
    /// A sequence word contradicts its head: the segment was scribbled on.
    Corrupt { pos: u64, seq: u64 },
}

/// A run of claimed positions `pos .. pos + count`.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Claim {
    pub(crate) pos: u64,
    pub(crate) count: u64,
}

/// What a consumer read out of a slot.
#[derive(Debug, Clone, Copy)]
pub(crate) struct SlotContent {
    pub(crate) stamp: u64,
    pub(crate) meta: u64,
    pub(crate) payload: [u64; PAYLOAD_WORDS],
}

/// The protocol over one control block and its slot array.
pub(crate) struct RingCore {
    ctrl: NonNull<ControlBlock>,
    slots: NonNull<Slot>,
    mask: u64,
}

// SAFETY: RingCore only hands out shared references to atomics; the owner
// guarantees the memory outlives it (see `RingCore::new`).
unsafe impl Send for RingCore {}
// SAFETY: as above; all access goes through atomics.
unsafe impl Sync for RingCore {}

impl RingCore {
    /// # Safety
    /// `ctrl` must point to a valid `ControlBlock` and `slots` to `capacity`
    /// valid, 64-byte aligned `Slot`s, both alive for as long as the
    /// returned value (and every copy of its pointers) is used.
    /// `capacity` must be a power of two >= 2.
    pub(crate) unsafe fn new(
        ctrl: NonNull<ControlBlock>,
        slots: NonNull<Slot>,
        capacity: u64,
    ) -> Self {
        debug_assert!(capacity.is_power_of_two() && capacity >= 2);
        Self {
            ctrl,
            slots,
            mask: capacity - 1,
        }
    }

    #[inline(always)]
    pub(crate) fn capacity(&self) -> u64 {
        self.mask + 1
    }

    #[inline(always)]
    pub(crate) fn ctrl(&self) -> &ControlBlock {
        // SAFETY: `new`'s contract: ctrl is valid for our lifetime.
        unsafe { self.ctrl.as_ref() }
    }

    #[inline(always)]
    pub(crate) fn slot(&self, pos: u64) -> &Slot {
        // SAFETY: `pos & mask` < capacity, and `new`'s contract says the
        // array holds `capacity` valid slots for our lifetime.
        unsafe { &*self.slots.as_ptr().add((pos & self.mask) as usize) }
    }

    /// Asks for the slot at `pos` in exclusive state ahead of writing it
    /// (`prefetchw`; a plain read prefetch would fetch it shared and the
    /// write would pay a second round trip).
    ///
    /// Consumers prefetch the slot they are about to claim (already written:
    /// they saw its sequence), never the next one: pulling that while the
    /// producer is about to write it would cost the producer an extra
    /// invalidation. Without it, one-way latency and streaming were 1.03x
    /// (8 paired `fring bench --quick` runs, AMD EPYC guest, session 8).
    ///
    /// Producers do not prefetch. They did, 3 slots past their claim (the
    /// next slot cost 50-80 ns of latency: a consumer that keeps up polls
    /// it; on the Intel host of session 4, 3 ahead and none measured the
    /// same). On the AMD EPYC host of session 8 it cost 40% of inline
    /// streaming: in a full ring the slots ahead are the ones the consumer
    /// is reading and releasing, and the prefetch takes their lines from
    /// it. Dropping it: inline streaming 139.9 -> 83.6 ticks/msg (paired
    /// median ratio 0.60), batch-32 0.86, one-way latency 1.00, in 8
    /// paired `fring bench --quick` runs.
    #[inline(always)]
    fn prefetch_for_write(&self, pos: u64) {
        crate::atomic::prefetch_for_write(self.slot(pos));
    }

    /// Claims up to `max` (>= 1) consecutive free slots with one CAS.
    #[cfg(all(test, fusion_ring_loom))]
    pub(crate) fn claim_send(&self, max: u64) -> Result<Claim, ClaimError> {
        self.claim_send_as(max, None)
    }

    /// [`RingCore::claim_send`], first writing the positions it is about to
    /// claim into `record` (the claimer's participant entry), so that a
    /// survivor can tell that a slot left unpublished belongs to a dead
    /// process (`handle::peer`). On failure the record is emptied.
    #[inline]
    pub(crate) fn claim_send_as(
        &self,
        max: u64,
        record: Option<&ClaimRecord>,
    ) -> Result<Claim, ClaimError> {
        let head = &self.ctrl().producer_head.value;
        let mut pos = head.load(Ordering::Relaxed);
        let result = loop {
            let slot = self.slot(pos);
            // SYNC POINT "slot free" (Acquire; pairs with `release`).
            let seq = slot.seq.load(Ordering::Acquire);
            let diff = seq.wrapping_sub(pos) as i64;
            if diff == 0 {
                let mut count = 1;
                while count < max
                    // SYNC POINT "slot free" for each further slot of a batch.
                    && self.slot(pos.wrapping_add(count)).seq.load(Ordering::Acquire) == pos.wrapping_add(count)
                {
                    count += 1;
                }
                record_claim(record, pos, count);
                // Release on success: SYNC POINT "claim recorded", pairs
                // with the Acquire head load of `stalled_publish`, so a
                // survivor that sees the head past `pos` sees our record.
                // Otherwise the CAS only decides ownership (module docs).
                match head.compare_exchange_weak(
                    pos,
                    pos.wrapping_add(count),
                    Ordering::Release,
                    Ordering::Relaxed,
                ) {
                    Ok(_) => return Ok(Claim { pos, count }),
                    Err(current) => pos = current,
                }
            } else if diff < 0 {
                // The slot still holds the message of the previous lap.
                break ClaimError::Full;
            } else {
                // Another producer claimed `pos` since we read the head.
                let current = head.load(Ordering::Relaxed);
                if current == pos {
                    break ClaimError::Corrupt { pos, seq };
                }
                pos = current;
            }
            crate::atomic::spin_hint();
        };
        record_claim(record, 0, 0);
        Err(result)
    }

    /// Writes a claimed slot and publishes it to consumers.
    #[inline(always)]
    ///
    /// With `seqcst`, the store is also a `SeqCst` read-modify-write, the
    /// producer's half of the wake-up handshake (`lockfree::event`): on x86 one `xchg`,
    /// cheaper than the `mfence` a separate fence would cost.
    pub(crate) fn publish(
        &self,
        pos: u64,
        stamp: u64,
        meta: u64,
        payload: &[u64; PAYLOAD_WORDS],
        seqcst: bool,
    ) {
        let slot = self.slot(pos);
        // Pairs with the Acquire fence of `claim_recv`'s too-small re-check:
        // a consumer that reads this meta and then still sees the old
        // sequence word would otherwise report another message's length
        // (found by loom, `loom_tests::too_small_reports_...`). Free on x86.
        fence(Ordering::Release);
        slot.stamp.store(stamp, Ordering::Relaxed);
        slot.meta.store(meta, Ordering::Relaxed);
        for (word, value) in slot.payload.iter().zip(payload) {
            word.store(*value, Ordering::Relaxed);
        }
        // SYNC POINT "message visible" (Release; pairs with `claim_recv`).
        store_seq(&slot.seq, pos.wrapping_add(1), seqcst);
    }

    /// Claims up to `max` (>= 1) consecutive published messages with one CAS.
    ///
    /// With `limit = Some(n)`, a first message longer than `n` bytes is
    /// reported as `TooSmall` and left in the ring.
    #[cfg(all(test, fusion_ring_loom))]
    pub(crate) fn claim_recv(&self, max: u64, limit: Option<usize>) -> Result<Claim, ClaimError> {
        self.claim_recv_as(max, limit, None)
    }

    /// [`RingCore::claim_recv`], recording the claim as `claim_send_as` does.
    #[inline]
    pub(crate) fn claim_recv_as(
        &self,
        max: u64,
        limit: Option<usize>,
        record: Option<&ClaimRecord>,
    ) -> Result<Claim, ClaimError> {
        let head = &self.ctrl().consumer_head.value;
        let mut pos = head.load(Ordering::Relaxed);
        let result = loop {
            let slot = self.slot(pos);
            // SYNC POINT "message visible" (Acquire; pairs with `publish`).
            let seq = slot.seq.load(Ordering::Acquire);
            let diff = seq.wrapping_sub(pos.wrapping_add(1)) as i64;
            if diff == 0 {
                if let Some(limit) = limit {
                    let len = slot.meta.load(Ordering::Relaxed) as u32 as usize;
                    if len > limit {
                        // Seqlock-style re-check that the length we read is
                        // message `pos`'s and `pos` is still the next one:
                        // the Acquire fence keeps the meta load before them.
                        fence(Ordering::Acquire);
                        if slot.seq.load(Ordering::Relaxed) == seq
                            && head.load(Ordering::Relaxed) == pos
                        {
                            break ClaimError::TooSmall { needed: len };
                        }
                        pos = head.load(Ordering::Relaxed);
                        continue;
                    }
                }
                // We will write this slot's sequence word when releasing it:
                // start taking it exclusive now, so that store does not wait
                // for the producer's copy to be invalidated (the next locked
                // instruction would otherwise stall on it).
                self.prefetch_for_write(pos);
                let mut count = 1;
                while count < max {
                    let next = self.slot(pos.wrapping_add(count));
                    // SYNC POINT "message visible" for each further slot.
                    if next.seq.load(Ordering::Acquire) != pos.wrapping_add(count + 1) {
                        break;
                    }
                    // A batch stops before a message too long for the caller.
                    if limit.is_some_and(|l| next.meta.load(Ordering::Relaxed) as u32 as usize > l)
                    {
                        break;
                    }
                    count += 1;
                }
                record_claim(record, pos, count);
                // Release on success: SYNC POINT "claim recorded" (as in
                // `claim_send_as`; pairs with `stalled_release`).
                match head.compare_exchange_weak(
                    pos,
                    pos.wrapping_add(count),
                    Ordering::Release,
                    Ordering::Relaxed,
                ) {
                    Ok(_) => return Ok(Claim { pos, count }),
                    Err(current) => pos = current,
                }
            } else if diff < 0 || seq & RECLAIMING != 0 {
                // Nothing published yet (or a survivor is turning the slot
                // of a dead producer into a tombstone, see `tombstone`).
                break ClaimError::Empty;
            } else {
                // Another consumer claimed `pos` since we read the head.
                let current = head.load(Ordering::Relaxed);
                if current == pos {
                    break ClaimError::Corrupt { pos, seq };
                }
                pos = current;
            }
            crate::atomic::spin_hint();
        };
        record_claim(record, 0, 0);
        Err(result)
    }

    /// Reads a slot the caller has claimed for receiving.
    #[inline(always)]
    pub(crate) fn read(&self, pos: u64) -> SlotContent {
        let slot = self.slot(pos);
        let mut payload = [0u64; PAYLOAD_WORDS];
        for (value, word) in payload.iter_mut().zip(&slot.payload) {
            *value = word.load(Ordering::Relaxed);
        }
        SlotContent {
            stamp: slot.stamp.load(Ordering::Relaxed),
            meta: slot.meta.load(Ordering::Relaxed),
            payload,
        }
    }

    /// Hands a consumed slot back to producers (next lap).
    #[inline(always)]
    ///
    /// `seqcst`: as in [`RingCore::publish`], for the wake-up handshake.
    pub(crate) fn release(&self, pos: u64, seqcst: bool) {
        // SYNC POINT "slot free" (Release; pairs with `claim_send`).
        store_seq(
            &self.slot(pos).seq,
            pos.wrapping_add(self.capacity()),
            seqcst,
        );
    }

    /// Whether the next position to receive holds a published message.
    pub(crate) fn readable(&self) -> bool {
        // Relaxed head, Acquire seq: a hint for waiters, who then claim.
        let pos = self.ctrl().consumer_head.value.load(Ordering::Relaxed);
        self.slot(pos).seq.load(Ordering::Acquire) == pos.wrapping_add(1)
    }

    /// Whether the next position to send into is free.
    pub(crate) fn writable(&self) -> bool {
        let pos = self.ctrl().producer_head.value.load(Ordering::Relaxed);
        self.slot(pos).seq.load(Ordering::Acquire) == pos
    }

    /// `(head, tail)`: the next positions producers and consumers will
    /// claim (a statistics snapshot).
    pub(crate) fn positions(&self) -> (u64, u64) {
        let ctrl = self.ctrl();
        // Relaxed: a statistics snapshot, ordered with nothing.
        (
            ctrl.producer_head.value.load(Ordering::Relaxed),
            ctrl.consumer_head.value.load(Ordering::Relaxed),
        )
    }

    /// Messages published or being written and not yet claimed by a
    /// consumer (a snapshot; exact only when the ring is quiet).
    pub(crate) fn len(&self) -> u64 {
        let ctrl = self.ctrl();
        // Relaxed: a heuristic snapshot, read in this order so that a
        // concurrent consumer cannot make it negative in practice.
        let tail = ctrl.consumer_head.value.load(Ordering::Relaxed);
        let head = ctrl.producer_head.value.load(Ordering::Relaxed);
        head.saturating_sub(tail).min(self.capacity())
    }

    /// The position consumers wait at if a producer claimed it and has not
    /// published it: the candidate for [`RingCore::tombstone`] when its
    /// claimer turns out to be dead.
    pub(crate) fn stalled_publish(&self) -> Option<u64> {
        let pos = self.ctrl().consumer_head.value.load(Ordering::Relaxed);
        let seq = self.slot(pos).seq.load(Ordering::Relaxed);
        // Acquire: SYNC POINT "claim recorded" (pairs with the claim CAS):
        // the caller then reads the claimers' records.
        let head = self.ctrl().producer_head.value.load(Ordering::Acquire);
        (seq & POSITION == pos && head > pos).then_some(pos)
    }

    /// The position producers wait at if a consumer claimed the message
    /// there and has not released it: the candidate for
    /// [`RingCore::force_release`].
    pub(crate) fn stalled_release(&self) -> Option<u64> {
        let next = self.ctrl().producer_head.value.load(Ordering::Relaxed);
        let pos = next.checked_sub(self.capacity())?;
        let seq = self.slot(pos).seq.load(Ordering::Relaxed);
        // Acquire: SYNC POINT "claim recorded" (pairs with the claim CAS).
        let tail = self.ctrl().consumer_head.value.load(Ordering::Acquire);
        (seq & POSITION == pos.wrapping_add(1) & POSITION && tail > pos).then_some(pos)
    }

    /// Publishes an empty tombstone at `pos`, a position claimed by a
    /// producer that died before publishing it, so consumers move on.
    /// Returns false if the slot was no longer waiting (published after
    /// all, or another survivor got there first).
    ///
    /// The caller has checked that no live producer's claim covers `pos`:
    /// nobody else writes this slot but other survivors, and the CAS from
    /// `observed` (the sequence word it saw: `pos`, or the mark of a
    /// survivor that died while doing this) to a new [`reclaim_mark`]
    /// picks one of them. `record` (the caller's send-claim record) is set
    /// to cover `pos` first, so that a later survivor waits for this one
    /// while it is alive and takes over if it dies.
    pub(crate) fn tombstone(
        &self,
        pos: u64,
        observed: u64,
        meta: u64,
        record: Option<&ClaimRecord>,
    ) -> bool {
        if !self.mark_for_reclaim(pos, observed, pos, record) {
            return false;
        }
        let slot = self.slot(pos);
        slot.stamp.store(0, Ordering::Relaxed);
        slot.meta.store(meta, Ordering::Relaxed);
        for word in &slot.payload {
            word.store(0, Ordering::Relaxed);
        }
        // SYNC POINT "message visible" (as in `publish`).
        store_seq(&slot.seq, pos.wrapping_add(1), true);
        true
    }

    /// Releases position `pos`, whose message a consumer claimed and died
    /// before releasing, to the producers of the next lap; `before` sees
    /// the slot's content first (to drop a zero-copy reference). Returns
    /// false if the slot was no longer waiting.
    ///
    /// As with `tombstone`, the caller has checked that no live consumer's
    /// claim covers `pos`; `observed` and `record` (its receive-claim
    /// record) work as there. Taking over from a survivor that died here,
    /// `before` is not called (it may have run already: a block reference
    /// is leaked rather than dropped twice).
    pub(crate) fn force_release(
        &self,
        pos: u64,
        observed: u64,
        record: Option<&ClaimRecord>,
        before: impl FnOnce(&SlotContent),
    ) -> bool {
        if !self.mark_for_reclaim(pos, observed, pos.wrapping_add(1), record) {
            return false;
        }
        if observed & RECLAIMING == 0 {
            before(&self.read(pos));
        }
        // SYNC POINT "slot free" (as in `release`).
        store_seq(&self.slot(pos).seq, pos.wrapping_add(self.capacity()), true);
        true
    }

    /// The first step of `tombstone` and `force_release`: records `pos` as
    /// the caller's claim, then moves the slot's sequence word from
    /// `observed` (holding `value`, or a dead survivor's mark of it) to a
    /// new mark. True if this survivor won the slot.
    fn mark_for_reclaim(
        &self,
        pos: u64,
        observed: u64,
        value: u64,
        record: Option<&ClaimRecord>,
    ) -> bool {
        record_claim(record, pos, 1);
        // Release: SYNC POINT "claim recorded", for a survivor that sees
        // the mark (as the claim CAS does). Acquire: the slot content the
        // winner reads next is the published message's (SYNC POINT
        // "message visible", as in `claim_recv`).
        self.slot(pos)
            .seq
            .compare_exchange(
                observed,
                reclaim_mark(observed, value),
                Ordering::AcqRel,
                Ordering::Relaxed,
            )
            .is_ok()
    }
}

/// Top bit of a sequence word: a survivor is reclaiming the slot (see
/// `tombstone` and `force_release`). Bits 56..63 of such a mark count the
/// survivors that took over from one that died, and the low bits keep the
/// sequence value; positions are taken to stay below 2^56 (over two years
/// at a billion messages a second).
pub(crate) const RECLAIMING: u64 = 1 << 63;
/// The sequence value bits of a sequence word (see [`RECLAIMING`]).
pub(crate) const POSITION: u64 = (1 << 56) - 1;

/// Whether sequence word `seq` holds `value`, or a survivor's mark of it
/// (see [`RECLAIMING`]): what a survivor may reclaim from.
pub(crate) fn holds_or_marks(seq: u64, value: u64) -> bool {
    seq == value || (seq & RECLAIMING != 0 && seq & POSITION == value & POSITION)
}

/// The mark a survivor puts on a sequence word it found holding `observed`
/// (`value`, or an earlier survivor's mark of it): each takeover makes a
/// new mark, so one CAS from what a survivor saw picks one survivor.
pub(crate) fn reclaim_mark(observed: u64, value: u64) -> u64 {
    let takeovers = if observed & RECLAIMING != 0 {
        ((observed >> 56) & 0x7f) + 1
    } else {
        0
    };
    RECLAIMING | (takeovers & 0x7f) << 56 | (value & POSITION)
}

/// Writes the positions a claimer is about to take (see `claim_send_as`).
#[inline(always)]
fn record_claim(record: Option<&ClaimRecord>, pos: u64, count: u64) {
    if let Some(r) = record {
        // Relaxed: ordered before the claim by the CAS's Release.
        r.start.store(pos, Ordering::Relaxed);
        r.end.store(pos.wrapping_add(count), Ordering::Relaxed);
    }
}

/// Stores a sequence word with `Release`, or as a `SeqCst` swap.
///
/// Under loom the SeqCst case is a store plus a `SeqCst` fence instead:
/// loom models `SeqCst` read-modify-writes only as `AcqRel`, which would
/// make it report wake-ups lost that the real orderings cannot lose.
#[inline(always)]
pub(super) fn store_seq(seq: &crate::atomic::AtomicU64, value: u64, seqcst: bool) {
    if !seqcst {
        seq.store(value, Ordering::Release);
    } else if cfg!(fusion_ring_loom) {
        seq.store(value, Ordering::Release);
        fence(Ordering::SeqCst);
    } else {
        seq.swap(value, Ordering::SeqCst);
    }
}

/// Packs up to 40 bytes into payload words (little-endian, zero padded).
///
/// Whole words are moved as 8-byte loads and the tail byte by byte: cheaper
/// than a call to `memcpy` for so few bytes.
#[inline(always)]
pub(crate) fn pack_payload(data: &[u8]) -> [u64; PAYLOAD_WORDS] {
    debug_assert!(data.len() <= SLOT_PAYLOAD);
    let mut words = [0u64; PAYLOAD_WORDS];
    let mut chunks = data.chunks_exact(8);
    for (w, chunk) in words.iter_mut().zip(&mut chunks) {
        *w = u64::from_le_bytes(chunk.try_into().expect("8-byte chunk"));
    }
    let tail = chunks.remainder();
    if !tail.is_empty() {
        let mut last = 0u64;
        for (i, b) in tail.iter().enumerate() {
            last |= (*b as u64) << (8 * i);
        }
        words[data.len() / 8] = last;
    }
    words
}

/// Unpacks the first `out.len()` (<= 40) payload bytes into `out`.
#[inline(always)]
pub(crate) fn unpack_payload_into(words: &[u64; PAYLOAD_WORDS], out: &mut [u8]) {
    debug_assert!(out.len() <= SLOT_PAYLOAD);
    let full = out.len() / 8;
    let mut chunks = out.chunks_exact_mut(8);
    for (chunk, w) in (&mut chunks).zip(words) {
        chunk.copy_from_slice(&w.to_le_bytes());
    }
    let tail = chunks.into_remainder();
    if let Some(w) = words.get(full) {
        for (i, b) in tail.iter_mut().enumerate() {
            *b = (w >> (8 * i)) as u8;
        }
    }
}

#[cfg(all(test, not(fusion_ring_loom)))]
mod tests {
    use super::*;

    #[test]
    fn payload_packing_round_trips_every_length() {
        for len in 0..=SLOT_PAYLOAD {
            let data: Vec<u8> = (0..len as u8).map(|i| i.wrapping_mul(37) ^ 0xA5).collect();
            let words = pack_payload(&data);
            let mut bytes = [0u8; SLOT_PAYLOAD];
            unpack_payload_into(&words, &mut bytes);
            assert_eq!(&bytes[..len], &data[..]);
            assert!(bytes[len..].iter().all(|&b| b == 0));
            let mut out = vec![0xEE; len];
            unpack_payload_into(&words, &mut out);
            assert_eq!(out, data);
        }
    }
}

/// A lean loom model of claim / publish / release: 2 producers x 2
/// consumers, capacity 2, starting one lap in so positions wrap both the
/// slot index and the lap. Each thread does one operation (consumers retry
/// a few times on `Empty`, then leave what they did not get to the main
/// thread), which keeps the state space small enough for CI at preemption
/// bound 2. The heavier models (several messages per thread, batches) are
/// in `loom_tests`.
#[cfg(all(test, fusion_ring_loom))]
pub(crate) mod loom_model {
    use core::ptr::NonNull;

    use loom::sync::Arc;

    use super::{ClaimError, RingCore};
    use crate::atomic::{AtomicU64, Ordering};
    use crate::shm::layout::{CacheLine, ControlBlock, Slot};

    pub(crate) struct Model {
        ctrl: Box<ControlBlock>,
        slots: Box<[Slot]>,
    }

    /// A loom checker bounded to `preemptions` (unless `LOOM_MAX_PREEMPTIONS`
    /// says otherwise), the bound that keeps a model CI-sized.
    pub(crate) fn builder(preemptions: usize) -> loom::model::Builder {
        let mut b = loom::model::Builder::new();
        if std::env::var_os("LOOM_MAX_PREEMPTIONS").is_none() {
            b.preemption_bound = Some(preemptions);
        }
        b
    }

    fn line(v: u64) -> CacheLine<AtomicU64> {
        CacheLine {
            value: AtomicU64::new(v),
        }
    }

    impl Model {
        /// A capacity-2 ring after one message went through: heads at 1,
        /// slot 1 free for position 1, slot 0 released for position 2.
        pub(crate) fn one_lap_in() -> Self {
            let slot = |seq| Slot {
                seq: AtomicU64::new(seq),
                stamp: AtomicU64::new(0),
                meta: AtomicU64::new(0),
                payload: core::array::from_fn(|_| AtomicU64::new(0)),
            };
            Model {
                ctrl: Box::new(ControlBlock {
                    producer_head: line(1),
                    roles_seen: line(0),
                    consumer_head: line(1),
                    consumer_tail: line(0),
                    producer_holder: line(0),
                    consumer_holder: line(0),
                    reserved: core::array::from_fn(|_| line(0)),
                }),
                slots: vec![slot(2), slot(1)].into_boxed_slice(),
            }
        }

        pub(crate) fn core(&self) -> RingCore {
            // SAFETY: the model outlives every thread using the core (they
            // hold an Arc of it); capacity 2 is a power of two.
            unsafe { RingCore::new(NonNull::from(&*self.ctrl), NonNull::from(&self.slots[0]), 2) }
        }
    }

    fn send(m: &Model, value: u64) {
        let ring = m.core();
        let c = ring.claim_send(1).expect("two free slots for two messages");
        ring.publish(c.pos, value, 0, &[value, !value, 0, 0, 0], false);
    }

    fn recv(ring: &RingCore) -> Option<u64> {
        let c = match ring.claim_recv(1, None) {
            Ok(c) => c,
            Err(ClaimError::Empty) => return None,
            Err(e) => panic!("{e:?}"),
        };
        let content = ring.read(c.pos);
        ring.release(c.pos, false);
        // Acquire/Release on the sequence words make the whole payload
        // visible, not just the word that carries the value.
        assert_eq!(
            content.payload[1], !content.payload[0],
            "torn or stale payload"
        );
        assert_eq!(content.stamp, content.payload[0]);
        Some(content.payload[0])
    }

    fn consumer(m: &Model) -> Option<u64> {
        let ring = m.core();
        for _ in 0..3 {
            if let Some(v) = recv(&ring) {
                return Some(v);
            }
            loom::thread::yield_now();
        }
        None
    }

    #[test]
    fn two_producers_two_consumers_wrap_around() {
        builder(2).check(|| {
            let m = Arc::new(Model::one_lap_in());
            let producers: Vec<_> = [10u64, 20]
                .into_iter()
                .map(|v| {
                    let m = Arc::clone(&m);
                    loom::thread::spawn(move || send(&m, v))
                })
                .collect();
            let consumers: Vec<_> = (0..2)
                .map(|_| {
                    let m = Arc::clone(&m);
                    loom::thread::spawn(move || consumer(&m))
                })
                .collect();
            for p in producers {
                p.join().unwrap();
            }
            let mut got: Vec<u64> = consumers
                .into_iter()
                .filter_map(|c| c.join().unwrap())
                .collect();
            let ring = m.core();
            while let Some(v) = recv(&ring) {
                got.push(v);
            }
            got.sort_unstable();
            assert_eq!(got, [10, 20], "every message exactly once");
            // Both positions were consumed and released for the next lap.
            assert_eq!(ring.ctrl().consumer_head.value.load(Ordering::Relaxed), 3);
            assert!(ring.writable());
        });
    }

    /// A survivor looking for a dead producer's slot must never take a
    /// live producer's claim for one: once it sees the head past a
    /// position, it sees the claimer's record covering it (the claim CAS
    /// is Release, the survivor's head load Acquire). Fails if either is
    /// made Relaxed: the survivor then tombstones the live producer's slot.
    #[test]
    fn a_live_claim_is_never_taken_for_a_dead_one() {
        use crate::shm::layout::{pack_meta, ClaimRecord, SlotKind};
        builder(3).check(|| {
            let m = Arc::new(Model::one_lap_in());
            let record = Arc::new(ClaimRecord {
                start: AtomicU64::new(0),
                end: AtomicU64::new(0),
            });
            let producer = {
                let (m, record) = (Arc::clone(&m), Arc::clone(&record));
                loom::thread::spawn(move || {
                    let ring = m.core();
                    let c = ring.claim_send_as(1, Some(&record)).expect("a free slot");
                    ring.publish(c.pos, 7, 0, &[7, !7, 0, 0, 0], false);
                })
            };
            let survivor = {
                let (m, record) = (Arc::clone(&m), Arc::clone(&record));
                loom::thread::spawn(move || {
                    let ring = m.core();
                    if let Some(pos) = ring.stalled_publish() {
                        // As `peer::recover_slots` does, with this one
                        // producer as the only (live) participant.
                        if !record.covers(pos) {
                            let meta = pack_meta(0, SlotKind::Tombstone, 4);
                            assert!(
                                !ring.tombstone(pos, pos, meta, None),
                                "tombstoned position {pos}, claimed by a live producer"
                            );
                        }
                    }
                })
            };
            producer.join().unwrap();
            survivor.join().unwrap();
            let ring = m.core();
            assert_eq!(recv(&ring), Some(7), "the live producer's message");
        });
    }

    /// The mirror image for consumers: a survivor releasing the slot of a
    /// dead consumer must never release one a live consumer has claimed
    /// (the consumer's claim CAS is Release, `stalled_release`'s head load
    /// Acquire). Fails if either is made Relaxed.
    #[test]
    fn a_live_receive_claim_is_never_taken_for_a_dead_one() {
        use crate::shm::layout::ClaimRecord;
        builder(3).check(|| {
            let m = Arc::new(Model::one_lap_in());
            // A full ring: positions 1 and 2 published, producers wait at 3.
            send(&m, 10);
            send(&m, 20);
            let record = Arc::new(ClaimRecord {
                start: AtomicU64::new(0),
                end: AtomicU64::new(0),
            });
            let consumer = {
                let (m, record) = (Arc::clone(&m), Arc::clone(&record));
                loom::thread::spawn(move || {
                    let ring = m.core();
                    let c = ring
                        .claim_recv_as(1, None, Some(&record))
                        .expect("a message");
                    let value = ring.read(c.pos).payload[0];
                    ring.release(c.pos, false);
                    value
                })
            };
            let survivor = {
                let (m, record) = (Arc::clone(&m), Arc::clone(&record));
                loom::thread::spawn(move || {
                    let ring = m.core();
                    if let Some(pos) = ring.stalled_release() {
                        if !record.covers(pos) {
                            assert!(
                                !ring.force_release(pos, pos + 1, None, |_| {}),
                                "released position {pos}, claimed by a live consumer"
                            );
                        }
                    }
                })
            };
            assert_eq!(consumer.join().unwrap(), 10);
            survivor.join().unwrap();
            let ring = m.core();
            assert_eq!(recv(&ring), Some(20), "the second message is still there");
            assert!(ring.writable());
        });
    }
}

//! The send and receive engine of [`Ring`]: claims, publishes, reads and
//! releases slots, and keeps the handle's counters.

use crate::clock::Clock;
use crate::error::{Result, RingError};
use crate::atomic::AtomicU64;
use crate::handle::broadcast;
use crate::handle::participant::{ROLE_RECEIVER, ROLE_SENDER, ROLE_SUBSCRIBER};
use crate::handle::peer;
use crate::handle::stats::{RecvTally, SendTally};
use crate::lockfree::broadcast::is_later_lap;
use crate::lockfree::event;
use crate::atomic::Ordering;
use crate::lockfree::protocol::{
    pack_payload, unpack_payload_into, Claim, ClaimError, PAYLOAD_WORDS,
};
use crate::priority::PriorityClass;
use crate::shm::layout::{pack_meta, EventCount, SlotKind, INLINE_MAX};

use super::decode::{decode, inline_message, Decoded};
use super::message::{latency_since, Body, InlineMessage, Outgoing, Received};
use super::{Ring, FULL_BACKOFF_MAX_SHIFT, FULL_BACKOFF_MIN, STALL_CHECK_EVERY};

impl Ring {
    /// Sends `n` messages with one claim; `msg(k)` gives the k-th (its size
    /// already checked). Returns how many were sent: a prefix, fewer than
    /// `n` if the ring filled up; `Full` if none fitted. The caller still
    /// owns the blocks of unsent messages.
    #[inline(always)]
    pub(crate) fn send_with<'m>(
        &self,
        n: usize,
        msg: impl Fn(usize) -> (Outgoing<'m>, PriorityClass),
    ) -> Result<usize> {
        if n == 0 {
            return Ok(0);
        }
        let core = self.shared.core();
        self.reg.follow_fork(core);
        self.reg
            .note_role_then(ROLE_SENDER, core, || self.became_sender())?;
        // Read the clock before the claim: the TSC read then overlaps the
        // locked CAS instead of waiting behind it.
        let stamp = if self.shared.timestamps() {
            Clock::now()
        } else {
            0
        };
        // The single/single and the broadcast protocols publish alike
        // (`lockfree::single`); only their room differs.
        let single = self.shared.single() || self.shared.broadcast();
        let claim = if self.shared.single() {
            core.claim_send_single(n as u64, &self.room_end)
        } else if self.shared.broadcast() {
            core.claim_send_broadcast(n as u64, &self.room_end, |pos| {
                if self.shared.overwrite() {
                    // Nothing holds the publisher back.
                    return Ok(None);
                }
                broadcast::slowest(self.shared.participants(), pos, core.capacity())
            })
        } else {
            core.claim_send_as(n as u64, Some(&self.reg.entry_followed().id.send_claim))
        }
        .map_err(|e| self.send_claim_error(e))?;
        self.full_streak.set(0);
        let stats = self.reg.stats_writer();
        let mut tally = SendTally::default();
        let wake = self.wake_for(claim.count);
        let seqcst = wake == Wake::SeqCst;
        if self.shared.broadcast() {
            // A subscriber may be reading a slot we rewrite: each is marked
            // before `publish` writes it (`lockfree::broadcast`,
            // "Overwriting"), and the block of its previous lap released
            // (`ring::broadcast_engine`). Out of the publish loop: inside
            // it, the test cost the work-queue rings 7-16 instructions a
            // send (callgrind).
            self.prepare_rewrite(claim);
        }
        // A run is published last slot first: a consumer waiting at its
        // first slot sees the whole run at once and claims it whole, rather
        // than chasing the producer slot by slot and pulling each line away
        // from it mid-write (producer-bound batch-32 streaming: 182-214 ->
        // 105-130 ticks/msg; the consumer took 27 messages per call, now 32).
        for k in (0..claim.count).rev() {
            let (out, priority) = msg(k as usize);
            match out {
                Outgoing::Inline(data) => {
                    let meta = pack_meta(data.len() as u32, SlotKind::Inline, priority as u8);
                    core.publish(
                        claim.pos.wrapping_add(k),
                        stamp,
                        meta,
                        &pack_payload(data),
                        seqcst,
                    );
                    stats.tally_send(&mut tally, priority.lane(), data.len() as u64, false);
                }
                Outgoing::Block(desc) => {
                    let meta = pack_meta(desc.len, SlotKind::ZeroCopy, priority as u8);
                    core.publish(
                        claim.pos.wrapping_add(k),
                        stamp,
                        meta,
                        &desc.to_words(),
                        seqcst,
                    );
                    stats.tally_send(&mut tally, priority.lane(), desc.len as u64, true);
                }
            }
        }
        if single {
            core.commit_send_single(claim.pos.wrapping_add(claim.count));
        }
        stats.flush_send(&mut tally);
        wake.notify(&self.shared.sync_block().not_empty.value);
        Ok(claim.count as usize)
    }

    /// Sends `n` inline messages with one claim; all are checked first.
    #[inline(always)]
    pub(crate) fn send_inline_with<'m>(
        &self,
        n: usize,
        msg: impl Fn(usize) -> (&'m [u8], PriorityClass),
    ) -> Result<usize> {
        for i in 0..n {
            let len = msg(i).0.len();
            if len > INLINE_MAX {
                return Err(RingError::TooLarge {
                    len,
                    max: INLINE_MAX,
                });
            }
        }
        self.send_with(n, |k| {
            let (data, priority) = msg(k);
            (Outgoing::Inline(data), priority)
        })
    }

    /// Claims up to `max` messages; `limit`: the first must be at most that
    /// long (else `BufferTooSmall`, nothing taken) and the batch stops
    /// before any longer one. Calls `each` for every message taken, in
    /// order; every claimed slot is released, whatever it held.
    #[inline(always)]
    pub(crate) fn recv_with(
        &self,
        max: usize,
        limit: Option<usize>,
        mut each: impl FnMut(Received),
    ) -> Result<usize> {
        let core = self.shared.core();
        self.reg.follow_fork(core);
        self.reg.note_role(self.receiving_role(), core)?;
        loop {
            let claim = self.claim_recv(max as u64, limit)?;
            let now = if claim.count > 1 && self.shared.timestamps() {
                Some(Clock::now())
            } else {
                None
            };
            let stats = self.reg.stats_writer();
            let mut tally = RecvTally::default();
            let (mut taken, mut bad) = (0, None);
            let wake = self.wake_for(claim.count);
            let mut end = claim.count;
            for k in 0..claim.count {
                let pos = claim.pos.wrapping_add(k);
                let content = core.read(pos);
                if self.shared.broadcast() && !core.still_published(pos) {
                    // Rewritten while we read it: what we read is not
                    // taken; the next claim there reports the lag.
                    end = k;
                    break;
                }
                let (body, len, priority) = match decode(&self.shared, &content, &self.reg) {
                    Decoded::Inline { len, priority } => {
                        (Body::Inline(content.payload), len, priority)
                    }
                    Decoded::Block { desc, priority } if self.shared.broadcast() => {
                        match self.copy_out(pos, desc) {
                            Some(body) => (body, desc.len as usize, priority),
                            None => {
                                // Rewritten while copied: not taken; the
                                // next claim there reports the lag.
                                end = k;
                                break;
                            }
                        }
                    }
                    Decoded::Block { desc, priority } => {
                        (Body::Block(desc), desc.len as usize, priority)
                    }
                    Decoded::Tombstone => continue,
                    Decoded::Gone => {
                        end = k;
                        break;
                    }
                    Decoded::Bad(what) => {
                        bad = Some(format!("at position {pos}: {what}"));
                        continue;
                    }
                };
                let latency = latency_since(content.stamp, now);
                stats.tally_recv(&mut tally, priority.lane(), len as u64, latency);
                each(Received {
                    body,
                    len,
                    priority,
                    latency,
                });
                taken += 1;
            }
            // The run is released after it is read, last slot first: a
            // producer waiting at its first slot (the ring was full) then
            // finds the whole run free and claims it at once, instead of
            // taking slot after slot as they are released and pulling each
            // line back from us in between (every block was taken, as
            // `Arena::take` requires, while decoding).
            if end == 0 {
                return Err(self.lapped(claim.pos));
            }
            self.release_run(Claim { count: end, ..claim }, wake);
            stats.flush_recv(&mut tally);
            wake.notify(&self.shared.sync_block().not_full.value);
            match (taken, bad) {
                (0, Some(what)) => return Err(self.corrupt(what)),
                (0, None) => continue, // only tombstones: look again
                (n, _) => return Ok(n),
            }
        }
    }

    /// Takes one message: `recv_with` for a single slot, without the batch
    /// bookkeeping (this is the hot path of `recv_zerocopy` and of `recv`
    /// for what is not a plain inline message).
    #[inline(always)]
    pub(crate) fn recv_one(&self, limit: Option<usize>) -> Result<Received> {
        let core = self.shared.core();
        self.reg.follow_fork(core);
        self.reg.note_role(self.receiving_role(), core)?;
        loop {
            let claim = self.claim_recv(1, limit)?;
            let taken = if self.shared.broadcast() {
                self.take_one::<true>(claim)
            } else {
                self.take_one::<false>(claim)
            };
            if let Some(r) = taken? {
                return Ok(r);
            }
        }
    }

    /// Reads, checks and releases the one claimed slot at `claim.pos`:
    /// `None` for a tombstone (the caller looks again). `REREAD`: the ring
    /// is a broadcast ring, whose reads are re-checked (`lapped` if the
    /// slot was rewritten meanwhile).
    #[inline(always)]
    fn take_one<const REREAD: bool>(&self, claim: Claim) -> Result<Option<Received>> {
        let core = self.shared.core();
        let content = core.read(claim.pos);
        if REREAD && !core.still_published(claim.pos) {
            return Err(self.lapped(claim.pos));
        }
        let (body, len, priority) = match decode(&self.shared, &content, &self.reg) {
            Decoded::Inline { len, priority } => (Body::Inline(content.payload), len, priority),
            // Copied out before the cursor moves past it.
            Decoded::Block { desc, priority } if REREAD => match self.copy_out(claim.pos, desc) {
                Some(body) => (body, desc.len as usize, priority),
                None => return Err(self.lapped(claim.pos)),
            },
            Decoded::Block { desc, priority } => (Body::Block(desc), desc.len as usize, priority),
            Decoded::Gone => return Err(self.lapped(claim.pos)),
            Decoded::Tombstone => {
                self.release_one(claim.pos);
                return Ok(None);
            }
            Decoded::Bad(what) => {
                self.release_one(claim.pos);
                return Err(self.corrupt(format!("at position {}: {what}", claim.pos)));
            }
        };
        self.release_one(claim.pos);
        let latency = latency_since(content.stamp, None);
        self.reg
            .stats_writer()
            .record_recv(priority.lane(), len as u64, latency);
        Ok(Some(Received {
            body,
            len,
            priority,
            latency,
        }))
    }

    /// Hands the one slot at `pos` back to producers and wakes them if
    /// they sleep. One slot: no loop over a run (10-26 instructions a
    /// message more with `release_run`, callgrind).
    #[inline(always)]
    fn release_one(&self, pos: u64) {
        let core = self.shared.core();
        let wake = self.wake_for(1);
        let seqcst = wake == Wake::SeqCst;
        if self.shared.single() {
            core.release_single(pos.wrapping_add(1), seqcst);
        } else if self.shared.broadcast() {
            core.release_single_on(self.cursor(), pos.wrapping_add(1), seqcst);
        } else {
            core.release(pos, seqcst);
        }
        wake.notify(&self.shared.sync_block().not_full.value);
    }

    /// Receives one message by copying it into `buf` (inline bytes, or the
    /// block's payload, whose reference is then dropped).
    ///
    /// A plain inline message that fits goes from the slot straight into
    /// `buf`, checked as `decode` checks it (kind, length, class), without
    /// the `SlotContent` / `Received` values of the general path. One
    /// thread's receive (1024 sends then 1024 receives, median of 2000):
    /// single/single 26 -> 13 ticks, many/many 45 -> 26. Streaming 40-byte
    /// messages between two pinned processes, unstamped, single/single:
    /// 47-51 -> 15 ticks/msg (the consumer, now faster than the producer,
    /// no longer lets the ring run full). Anything else takes the general
    /// path from the same claim.
    #[inline(always)]
    pub(crate) fn recv_copy(&self, buf: &mut [u8]) -> Result<(usize, PriorityClass, u64)> {
        // One copy of the path per shape, the broadcast one out of line
        // (`Subscriber` calls it directly). The work-queue receive pays
        // 14 instructions for the branch (callgrind, one thread, many to
        // many: 178 -> 192 a receive; 196-201 with the broadcast re-check
        // tested inside a shared copy, or with the broadcast copy inlined).
        if self.shared.broadcast() {
            return self.recv_copy_out_of_line(buf);
        }
        self.recv_copy_as::<false>(buf)
    }

    /// [`Ring::recv_copy`] on a broadcast ring, inlined (for `Subscriber`).
    #[inline(always)]
    pub(crate) fn recv_copy_broadcast(
        &self,
        buf: &mut [u8],
    ) -> Result<(usize, PriorityClass, u64)> {
        self.recv_copy_as::<true>(buf)
    }

    /// [`Ring::recv_copy_broadcast`], not inlined (the seeds' types on a
    /// broadcast ring).
    #[cold]
    #[inline(never)]
    fn recv_copy_out_of_line(&self, buf: &mut [u8]) -> Result<(usize, PriorityClass, u64)> {
        self.recv_copy_as::<true>(buf)
    }

    /// [`Ring::recv_copy`]; `REREAD` as in `take_one`.
    #[inline(always)]
    fn recv_copy_as<const REREAD: bool>(
        &self,
        buf: &mut [u8],
    ) -> Result<(usize, PriorityClass, u64)> {
        // Without an arena no message is longer than 40 bytes: a buffer that
        // big needs no length check before the claim.
        let limit = (buf.len() < self.shared.max_message()).then_some(buf.len());
        let core = self.shared.core();
        self.reg.follow_fork(core);
        self.reg.note_role(self.receiving_role(), core)?;
        let r = loop {
            let claim = self.claim_recv(1, limit)?;
            let slot = core.slot(claim.pos);
            // One read of the meta decides; the rest of the slot is read
            // after it (a scribbler changing it meanwhile garbles the
            // bytes, never their bounds: `len` <= 40 and <= `buf.len()`).
            let meta = slot.meta.load(Ordering::Relaxed);
            if let Some((len, priority)) = inline_message(meta, buf.len()) {
                let stamp = slot.stamp.load(Ordering::Relaxed);
                let mut words = [0u64; PAYLOAD_WORDS];
                for (w, a) in words.iter_mut().zip(&slot.payload) {
                    *w = a.load(Ordering::Relaxed);
                }
                if REREAD && !core.still_published(claim.pos) {
                    return Err(self.lapped(claim.pos));
                }
                self.release_one(claim.pos);
                unpack_payload_into(&words, &mut buf[..len]);
                let latency = latency_since(stamp, None);
                self.reg
                    .stats_writer()
                    .record_recv(priority.lane(), len as u64, latency);
                return Ok((len, priority, latency.unwrap_or(0)));
            }
            if let Some(r) = self.take_one::<REREAD>(claim)? {
                break r;
            }
        };
        let result = (r.len, r.priority, r.latency.unwrap_or(0));
        match r.body {
            // The length was checked against `buf` before the claim, but a
            // scribbling peer may have changed it since.
            _ if r.len > buf.len() => {
                if let Body::Block(d) = r.body {
                    self.release_block(d.offset);
                }
                Err(self.corrupt(format!("length changed to {} while being received", r.len)))
            }
            Body::Inline(words) => {
                unpack_payload_into(&words, &mut buf[..r.len]);
                Ok(result)
            }
            Body::Copied(bytes) => {
                buf[..r.len].copy_from_slice(&bytes);
                Ok(result)
            }
            Body::Block(d) => {
                let arena = self.arena().expect("checked block implies an arena");
                // SAFETY: the block was checked to lie inside the arena with
                // room for `len` bytes, and we hold a reference to it, so no
                // well-behaved process writes it until we release it.
                unsafe {
                    core::ptr::copy_nonoverlapping(
                        arena.payload_ptr(d.offset).as_ptr(),
                        buf.as_mut_ptr(),
                        r.len,
                    )
                };
                self.release_block(d.offset);
                Ok(result)
            }
        }
    }

    /// Receives up to `out.len()` inline messages with one claim; stops
    /// before a message longer than 40 bytes (which stays queued).
    ///
    /// Each message is written straight into its `out` entry: copying it
    /// through a local first, together with per-message stats writes,
    /// made single-thread `send_batch` + `recv_batch` of 32 cost 50-73
    /// ticks per message; 37-40 now (6 alternating runs; `first_measurement`).
    pub(crate) fn recv_inline_batch(&self, out: &mut [InlineMessage]) -> Result<usize> {
        if out.is_empty() {
            return Ok(0);
        }
        let mut n = 0;
        self.recv_with(out.len(), Some(INLINE_MAX), |r| {
            let m = &mut out[n];
            match r.body {
                Body::Inline(words) => unpack_payload_into(&words, &mut m.data),
                Body::Copied(bytes) => {
                    let len = bytes.len().min(INLINE_MAX);
                    m.data[..len].copy_from_slice(&bytes[..len]);
                    m.data[len..].fill(0);
                }
                Body::Block(d) => {
                    let arena = self.arena().expect("checked block implies an arena");
                    let len = r.len.min(INLINE_MAX);
                    // SAFETY: as in `recv_copy`; at most `len` <= block bytes.
                    unsafe {
                        core::ptr::copy_nonoverlapping(
                            arena.payload_ptr(d.offset).as_ptr(),
                            m.data.as_mut_ptr(),
                            len,
                        )
                    };
                    // Zero padding, as an inline slot's (no stale bytes of
                    // the entry's previous message past `len`).
                    m.data[len..].fill(0);
                    self.release_block(d.offset);
                }
            }
            m.len = r.len.min(INLINE_MAX) as u8;
            m.priority = r.priority;
            m.latency_cycles = r.latency.unwrap_or(0);
            n += 1;
        })
    }

    /// Counts a `Full`/`Empty`; now and then, looks for a claim of a dead
    /// peer that keeps the ring stuck (cheap when there is none).
    #[cold]
    #[inline(never)]
    fn missed(&self) {
        let n = self.misses.get().wrapping_add(1);
        self.misses.set(n);
        if n.is_multiple_of(STALL_CHECK_EVERY) {
            peer::recover_slots(&self.shared, self.caller());
            if self.shared.broadcast() {
                // A dead subscriber's cursor holds the publisher back until
                // its entry is reaped.
                peer::reap_dead(self.shared.segment(), self.shared.core(), &self.reg.lock());
            }
        }
    }

    /// A broadcast ring's block, copied out of the arena for a subscriber
    /// (`ring::broadcast_engine`): the bytes, or `Lagged` if the slot was
    /// rewritten meanwhile.
    #[cold]
    #[inline(never)]
    fn copy_out(&self, pos: u64, desc: crate::lockfree::arena::Descriptor) -> Option<Body> {
        let mut bytes = vec![0u8; desc.len as usize].into_boxed_slice();
        self.copy_shared_block(pos, desc, &mut bytes)
            .then_some(Body::Copied(bytes))
    }

    /// This handle's cursor on a broadcast ring (its entry's).
    #[inline(always)]
    pub(super) fn cursor(&self) -> &AtomicU64 {
        &self.reg.entry_followed().id.cursor.value
    }

    /// The role a receive takes on this ring: a subscriber on a broadcast
    /// ring (it joins at its first receive), a receiver elsewhere.
    #[inline(always)]
    fn receiving_role(&self) -> u32 {
        if self.shared.broadcast() {
            ROLE_SUBSCRIBER
        } else {
            ROLE_RECEIVER
        }
    }

    /// Claims up to `max` messages to receive, with the protocol of this
    /// ring (`lockfree::single` or the shared one).
    #[inline(always)]
    fn claim_recv(&self, max: u64, limit: Option<usize>) -> Result<Claim> {
        let core = self.shared.core();
        if self.shared.single() {
            core.claim_recv_single(max, limit)
        } else if self.shared.broadcast() {
            core.claim_recv_single_on(self.cursor(), max, limit)
        } else {
            core.claim_recv_as(max, limit, Some(&self.reg.entry_followed().id.recv_claim))
        }
        .map_err(|e| self.recv_claim_error(e, limit))
    }

    /// Hands a received run back to producers: one store of the consumer's
    /// head on a single/single ring, else each slot, last first (see
    /// `recv_with`).
    #[inline(always)]
    fn release_run(&self, claim: Claim, wake: Wake) {
        let core = self.shared.core();
        let seqcst = wake == Wake::SeqCst;
        if self.shared.single() {
            core.release_single(claim.pos.wrapping_add(claim.count), seqcst);
        } else if self.shared.broadcast() {
            core.release_single_on(self.cursor(), claim.pos.wrapping_add(claim.count), seqcst);
        } else {
            for k in (0..claim.count).rev() {
                core.release(claim.pos.wrapping_add(k), seqcst);
            }
        }
    }

    /// How a publish or release of `count` slots takes part in the wake-up
    /// handshake (`lockfree::event`).
    #[inline(always)]
    pub(super) fn wake_for(&self, count: u64) -> Wake {
        if !self.shared.wakeups() {
            Wake::Off
        } else if event::light_wakers() {
            // Registered for the waiters' heavy barriers: no fence.
            Wake::Light
        } else if count == 1 {
            // The store is a SeqCst swap, which doubles as the fence.
            Wake::SeqCst
        } else {
            Wake::Fence
        }
    }

    /// Pauses before a `Full` is returned, longer at each `Full` in a row
    /// (8, 16, then 32 spin hints; reset by a send that gets room).
    ///
    /// A producer that retries at once keeps reading the line the consumer
    /// is writing to hand slots back (its head, or the slot's sequence
    /// word), and each read takes that line from the consumer in the
    /// middle of its work. Streaming 40-byte messages into a full ring
    /// (2 M messages, 9 runs, two pinned processes): one producer and one
    /// consumer 84 -> 47 ticks/msg with 8 hints, many-to-many 89 -> 70;
    /// with 8 doubling to 32, 84 -> 49 and 89 -> 67. A `Full` thus costs
    /// 8 spin hints (~0.2 us on the AMD EPYC host) after a success, 32
    /// (~0.9 us) each when the ring stays full.
    #[cold]
    #[inline(never)]
    fn back_off_full(&self) {
        let streak = self.full_streak.get();
        for _ in 0..FULL_BACKOFF_MIN << streak.min(FULL_BACKOFF_MAX_SHIFT) {
            crate::atomic::spin_hint();
        }
        self.full_streak.set(streak.saturating_add(1));
    }

    fn claim_error(&self, e: ClaimError) -> RingError {
        match e {
            ClaimError::Full => {
                self.missed();
                self.back_off_full();
                RingError::Full
            }
            ClaimError::Empty => {
                self.missed();
                RingError::Empty
            }
            ClaimError::TooSmall { .. } => self.recv_claim_error(e, None),
            ClaimError::Corrupt { .. } if self.shared.segment().truncated() => self.corrupt(
                "another process truncated the segment's file; the ring is lost (its mapping \
                 was replaced by a poisoned copy instead of faulting)"
                    .into(),
            ),
            ClaimError::Corrupt { pos, seq } => self.corrupt(format!(
                "slot sequence {seq} contradicts head position {pos}"
            )),
        }
    }

    /// A send claim's error: on a broadcast ring, `Corrupt` is the
    /// publisher's scan finding a cursor no subscriber can have.
    #[cold]
    fn send_claim_error(&self, e: ClaimError) -> RingError {
        match e {
            ClaimError::Corrupt { pos, seq } if self.shared.broadcast() => self.corrupt(format!(
                "a subscriber's cursor {seq} contradicts the publisher's position {pos} (ahead of \
                 it, or more than the ring's {} slots behind)",
                self.shared.core().capacity()
            )),
            e => self.claim_error(e),
        }
    }

    /// A receive claim's error; `limit` is the caller's buffer size. A
    /// waiting message longer than any this ring carries is a scribbled
    /// length: reported as corruption, not as a buffer to grow.
    #[cold]
    fn recv_claim_error(&self, e: ClaimError, limit: Option<usize>) -> RingError {
        match e {
            ClaimError::TooSmall { needed } if needed > self.shared.max_message() => {
                self.corrupt(format!(
                    "a waiting message is {needed} bytes long, more than the largest the ring \
                     carries ({})",
                    self.shared.max_message()
                ))
            }
            ClaimError::TooSmall { needed } => RingError::BufferTooSmall {
                needed,
                got: limit.unwrap_or(0),
            },
            ClaimError::Corrupt { pos, seq }
                if self.shared.broadcast()
                    && is_later_lap(seq, pos, self.shared.core().capacity()) =>
            {
                self.lapped(pos)
            }
            e => self.claim_error(e),
        }
    }
}

/// How a publish or release takes part in the wake-up handshake (see
/// `lockfree::event`): not at all (a ring without wake-ups), with no fence
/// (a process registered for the waiters' heavy barriers), with the store
/// made a `SeqCst` swap (one slot), or with a fence after the run.
#[derive(Clone, Copy, PartialEq, Eq)]
pub(super) enum Wake {
    Off,
    Light,
    SeqCst,
    Fence,
}

impl Wake {
    /// Whether the publish or release store is a `SeqCst` swap.
    #[inline(always)]
    pub(super) fn seqcst(self) -> bool {
        self == Wake::SeqCst
    }

    /// Wakes the sleepers on `ec` if any (after the publish or release).
    #[inline(always)]
    pub(super) fn notify(self, ec: &EventCount) {
        match self {
            Wake::Off => {}
            Wake::Light => event::notify_light(ec),
            Wake::SeqCst => event::notify_after_seqcst(ec),
            Wake::Fence => event::notify(ec),
        }
    }
}

//! The single-producer single-consumer protocol: the same slots and
//! sequence words as [`protocol`](super::protocol), for a ring with one
//! producer and one consumer at a time (`Config::single_producer` and
//! `single_consumer`, enforced by `handle::roles`), without a CAS and
//! without a line written by both sides per message.
//!
//! - The **producer** owns `producer_head`. It knows which positions are
//!   free from the consumer's `consumer_head`, read only when its cached
//!   copy says the ring is full (`claim_send_single`), writes its slots and
//!   publishes each with the sequence word, as in the shared protocol
//!   (`publish`: `seq = pos + 1`), then stores its head once per call.
//! - The **consumer** owns `consumer_head`. It polls the sequence word of
//!   its next slot (the line that carries the message, so a message costs
//!   it one line transfer), reads the run it found, and hands the whole run
//!   back with one store of its head (`release_single`). It never writes a
//!   slot: a consumed slot keeps `seq = pos + 1` until the producer of the
//!   next lap writes `pos + capacity + 1`.
//!
//! | shared line      | written by | read by the other side                 |
//! |------------------|------------|----------------------------------------|
//! | slot (seq, data) | producer   | consumer, once per message             |
//! | `consumer_head`  | consumer   | producer, when its cache says full     |
//! | `producer_head`  | producer   | tools, waiters, a producer taking over |
//!
//! # Orderings
//! - SYNC POINT "message visible": as in the shared protocol (`publish`'s
//!   `Release` store of the sequence word, the consumer's `Acquire` load).
//! - SYNC POINT "run free": the consumer's `Release` store of
//!   `consumer_head` pairs with the producer's `Acquire` load that sees it;
//!   the consumer's reads of the run (and its record of the blocks it took,
//!   `Arena::take`) happen before the producer's writes of the next lap.
//!
//! # Peers that die or scribble
//! Neither head moves before its side is done, so a dead consumer leaves
//! its run in the ring for the next one, and a dead producer leaves its
//! unpublished slots outside the consumer's reach. Its last call may have
//! published part of a run (runs are published last slot first) without
//! storing its head: the producer that takes the role over calls
//! [`RingCore::adopt_single_producer`], which moves the head past what was
//! published and fills the holes below it with tombstones.
//! A head that contradicts the other one (more than a ring apart, or
//! behind it) is reported as corruption; a sequence word ahead of its
//! position likewise.

use core::cell::Cell;

use super::protocol::{store_seq, Claim, ClaimError, RingCore};
use crate::atomic::{AtomicU64, Ordering};

impl RingCore {
    /// Claims up to `max` (>= 1) free positions for the lone producer.
    /// `room_end` is its cache of the first position it may not write yet
    /// (`consumer_head + capacity` when last read); the consumer's head is
    /// read only when the cache leaves room for fewer than `max`.
    #[inline(always)]
    pub(crate) fn claim_send_single(
        &self,
        max: u64,
        room_end: &Cell<u64>,
    ) -> Result<Claim, ClaimError> {
        // Relaxed: our own word, written only by this producer.
        let pos = self.ctrl().producer_head.value.load(Ordering::Relaxed);
        let mut room = room_end.get().wrapping_sub(pos);
        if room < max || room > self.capacity() {
            room = self.refresh_room(pos, room_end)?;
        }
        Ok(Claim {
            pos,
            count: room.min(max),
        })
    }

    /// Reads the consumer's head into `room_end`; the room from `pos`.
    #[inline]
    fn refresh_room(&self, pos: u64, room_end: &Cell<u64>) -> Result<u64, ClaimError> {
        // SYNC POINT "run free" (Acquire; pairs with `release_single`).
        let tail = self.ctrl().consumer_head.value.load(Ordering::Acquire);
        let used = pos.wrapping_sub(tail);
        if used > self.capacity() {
            return Err(ClaimError::Corrupt { pos, seq: tail });
        }
        room_end.set(tail.wrapping_add(self.capacity()));
        match self.capacity() - used {
            0 => Err(ClaimError::Full),
            room => Ok(room),
        }
    }

    /// Makes positions up to `end` (exclusive) the producer's past, after
    /// it published them (`publish`): one store per call, not per message.
    #[inline(always)]
    pub(crate) fn commit_send_single(&self, end: u64) {
        // Release: a producer taking the role over (`adopt_single_producer`)
        // and tools that read the head see the slots written before it.
        self.ctrl()
            .producer_head
            .value
            .store(end, Ordering::Release);
    }

    /// Claims up to `max` (>= 1) published messages for the lone consumer;
    /// `limit` as in `claim_recv_as`. Nothing is written: the claim is made
    /// by [`RingCore::release_single`] once the run has been read.
    #[inline(always)]
    pub(crate) fn claim_recv_single(
        &self,
        max: u64,
        limit: Option<usize>,
    ) -> Result<Claim, ClaimError> {
        self.claim_recv_single_on(&self.ctrl().consumer_head.value, max, limit)
    }

    /// [`RingCore::claim_recv_single`] for a reader whose position is
    /// `head` (the consumer's head, or a broadcast subscriber's cursor,
    /// `lockfree::broadcast`).
    #[inline(always)]
    pub(crate) fn claim_recv_single_on(
        &self,
        head: &AtomicU64,
        max: u64,
        limit: Option<usize>,
    ) -> Result<Claim, ClaimError> {
        // Relaxed: our own word, written only by this reader.
        let pos = head.load(Ordering::Relaxed);
        let published = |p: u64| {
            // SYNC POINT "message visible" (Acquire; pairs with `publish`).
            self.slot(p).seq.load(Ordering::Acquire) == p.wrapping_add(1)
        };
        let too_long = |p: u64| {
            limit.is_some_and(|l| self.slot(p).meta.load(Ordering::Relaxed) as u32 as usize > l)
        };
        // SYNC POINT "message visible" (Acquire; pairs with `publish`).
        let seq = self.slot(pos).seq.load(Ordering::Acquire);
        if seq != pos.wrapping_add(1) {
            // One load decides: a second one could see the message
            // published meanwhile and call that corruption.
            // Behind: the previous lap's message (consumed) or a free slot.
            // Ahead: only a scribbler writes a lap the producer cannot
            // have reached while this head is at `pos`.
            return Err(if (seq.wrapping_sub(pos.wrapping_add(1)) as i64) < 0 {
                ClaimError::Empty
            } else {
                ClaimError::Corrupt { pos, seq }
            });
        }
        if too_long(pos) {
            let needed = self.slot(pos).meta.load(Ordering::Relaxed) as u32 as usize;
            // A consumer's slot cannot be rewritten before its head moves
            // past it, but a broadcast subscriber's can (a ring that
            // overwrites): the length read is another lap's if the slot
            // changed meanwhile, which the caller reports as lag.
            if !self.still_published(pos) {
                let seq = self.slot(pos).seq.load(Ordering::Relaxed);
                return Err(ClaimError::Corrupt { pos, seq });
            }
            return Err(ClaimError::TooSmall { needed });
        }
        let mut count = 1;
        while count < max
            && published(pos.wrapping_add(count))
            && !too_long(pos.wrapping_add(count))
        {
            count += 1;
        }
        Ok(Claim { pos, count })
    }

    /// Hands the consumed run ending at `end` (exclusive) back to the
    /// producer; `seqcst` as in [`RingCore::publish`], for the wake-up
    /// handshake.
    #[inline(always)]
    pub(crate) fn release_single(&self, end: u64, seqcst: bool) {
        self.release_single_on(&self.ctrl().consumer_head.value, end, seqcst);
    }

    /// [`RingCore::release_single`] for a reader whose position is `head`.
    #[inline(always)]
    pub(crate) fn release_single_on(&self, head: &AtomicU64, end: u64, seqcst: bool) {
        // SYNC POINT "run free" (Release; pairs with `refresh_room`, or a
        // broadcast publisher's scan of the cursors).
        store_seq(head, end, seqcst);
    }

    /// Whether the lone producer has room for a message.
    pub(crate) fn writable_single(&self) -> bool {
        let ctrl = self.ctrl();
        // Relaxed: a hint for waiters, who then claim.
        let head = ctrl.producer_head.value.load(Ordering::Relaxed);
        let tail = ctrl.consumer_head.value.load(Ordering::Relaxed);
        head.wrapping_sub(tail) < self.capacity()
    }

    /// Called by a producer that has just taken the role: moves the head
    /// past what an earlier producer published without storing its head
    /// (it died in between), writing a tombstone (`tombstone_meta`) into
    /// every slot below the last published one that it left unpublished.
    /// Returns the tombstones written.
    ///
    /// Sound because the earlier producer is gone (the role is held by one
    /// live handle at a time): nobody else writes these slots, and the
    /// consumer reads only the published ones, which are left alone.
    pub(crate) fn adopt_single_producer(&self, tombstone_meta: u64) -> u64 {
        // Acquire: the consumer's head, before the slots it freed.
        let tail = self.ctrl().consumer_head.value.load(Ordering::Acquire);
        self.adopt_producer_above(tail, tombstone_meta)
    }

    /// [`RingCore::adopt_single_producer`] for the publisher of a broadcast
    /// ring, which has no consumer head: the earlier publisher's last run
    /// lies within a ring of its head (its room never reached further past
    /// the slowest cursor, which was at or behind its head), and a
    /// subscriber that read part of it beyond that head finds the new head
    /// past what it read (the published slots are kept).
    pub(crate) fn adopt_broadcast_publisher(&self, tombstone_meta: u64) -> u64 {
        // Acquire: as below.
        let head = self.ctrl().producer_head.value.load(Ordering::Acquire);
        self.adopt_producer_above(head, tombstone_meta)
    }

    fn adopt_producer_above(&self, tail: u64, tombstone_meta: u64) -> u64 {
        let ctrl = self.ctrl();
        let capacity = self.capacity();
        // Acquire: the earlier producer's slots, before its head (as tools
        // read it).
        let head = ctrl.producer_head.value.load(Ordering::Acquire);
        // A head more than a ring ahead of the consumer, or behind it, was
        // scribbled: look from the consumer's position instead.
        let start = if head.wrapping_sub(tail) <= capacity {
            head
        } else {
            tail
        };
        let published = |p: u64| {
            // SYNC POINT "message visible", for what we leave to the
            // consumer (and for our stores to come after its writes).
            self.slot(p).seq.load(Ordering::Acquire) == p.wrapping_add(1)
        };
        let end = (0..tail.wrapping_add(capacity).wrapping_sub(start))
            .rev()
            .map(|k| start.wrapping_add(k))
            .find(|&p| published(p))
            .map_or(start, |p| p.wrapping_add(1));
        let mut filled = 0;
        let mut pos = start;
        while pos != end {
            if !published(pos) {
                // A broadcast subscriber a lap behind may be reading the
                // slot (`lockfree::broadcast`, "Overwriting").
                self.mark_rewriting(pos);
                self.publish(
                    pos,
                    0,
                    tombstone_meta,
                    &[0; super::protocol::PAYLOAD_WORDS],
                    false,
                );
                filled += 1;
            }
            pos = pos.wrapping_add(1);
        }
        self.commit_send_single(end);
        filled
    }
}

/// Loom models of the single-producer single-consumer protocol: a stream
/// that wraps the ring twice (one message and runs of two per call), and
/// a producer taking over from one that died after publishing half a run.
#[cfg(all(test, fusion_ring_loom))]
mod loom_model {
    use core::cell::Cell;

    use loom::sync::Arc;

    use crate::lockfree::protocol::loom_model::{builder, Model};
    use crate::lockfree::protocol::{ClaimError, RingCore};
    use crate::shm::layout::{pack_meta, SlotKind};

    /// Sends `values` in runs of up to `run`, spinning while full.
    fn produce(ring: &RingCore, values: &[u64], run: u64) {
        let room = Cell::new(0);
        let mut next = 0;
        while next < values.len() {
            let want = run.min((values.len() - next) as u64);
            match ring.claim_send_single(want, &room) {
                Ok(c) => {
                    for k in (0..c.count).rev() {
                        let v = values[next + k as usize];
                        ring.publish(c.pos + k, v, 0, &[v, !v, 0, 0, 0], false);
                    }
                    ring.commit_send_single(c.pos + c.count);
                    next += c.count as usize;
                }
                Err(ClaimError::Full) => loom::thread::yield_now(),
                Err(e) => panic!("{e:?}"),
            }
        }
    }

    /// Receives `n` messages in runs of up to `run`, skipping tombstones.
    fn consume(ring: &RingCore, n: usize, run: u64) -> Vec<u64> {
        let mut got = Vec::new();
        while got.len() < n {
            match ring.claim_recv_single(run, None) {
                Ok(c) => {
                    for k in 0..c.count {
                        let content = ring.read(c.pos + k);
                        if content.meta != 0 {
                            continue; // a tombstone
                        }
                        assert_eq!(content.payload[1], !content.payload[0], "torn payload");
                        assert_eq!(content.stamp, content.payload[0]);
                        got.push(content.payload[0]);
                    }
                    ring.release_single(c.pos + c.count, false);
                }
                Err(ClaimError::Empty) => loom::thread::yield_now(),
                Err(e) => panic!("{e:?}"),
            }
        }
        got
    }

    fn stream(run: u64) {
        builder(2).check(move || {
            let m = Arc::new(Model::one_lap_in());
            let producer = {
                let m = Arc::clone(&m);
                loom::thread::spawn(move || produce(&m.core(), &[10, 20, 30, 40], run))
            };
            let got = consume(&m.core(), 4, run);
            producer.join().unwrap();
            assert_eq!(got, [10, 20, 30, 40], "every message once, in order");
            let ring = m.core();
            assert_eq!(
                ring.ctrl()
                    .consumer_head
                    .value
                    .load(crate::atomic::Ordering::Relaxed),
                5
            );
            assert!(ring.writable_single());
        });
    }

    /// Fails if `publish`'s store of the sequence word is made Relaxed (a
    /// stale payload: checked by making it so). The "run free" edge
    /// (`release_single` / `refresh_room`) guards against the producer's
    /// writes being seen by the consumer's earlier reads, load buffering,
    /// which loom does not explore: it is argued in the module docs, not
    /// checked here (weakened, these models still pass).
    #[test]
    fn single_messages_wrap_around_twice() {
        stream(1);
    }

    #[test]
    fn runs_of_two_wrap_around_twice() {
        stream(2);
    }

    /// A producer that died after publishing the second slot of a run of
    /// two, before the first and before its head: the next producer takes
    /// over while the consumer waits, fills the hole with a tombstone and
    /// goes on after the published message.
    #[test]
    fn a_new_producer_fills_the_hole_a_dead_one_left() {
        builder(3).check(|| {
            let m = Arc::new(Model::one_lap_in());
            {
                let ring = m.core();
                let room = Cell::new(0);
                let c = ring.claim_send_single(2, &room).expect("room for two");
                assert_eq!((c.pos, c.count), (1, 2));
                ring.publish(2, 20, 0, &[20, !20, 0, 0, 0], false);
            }
            let producer = {
                let m = Arc::clone(&m);
                loom::thread::spawn(move || {
                    let ring = m.core();
                    let tombstone = pack_meta(0, SlotKind::Tombstone, 4);
                    assert_eq!(ring.adopt_single_producer(tombstone), 1);
                    produce(&ring, &[30], 1);
                })
            };
            let got = consume(&m.core(), 2, 2);
            producer.join().unwrap();
            assert_eq!(got, [20, 30]);
        });
    }
}

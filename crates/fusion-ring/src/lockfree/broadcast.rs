//! The broadcast protocol: one publisher, and subscribers that each read
//! every message, over the same slots and sequence words as
//! [`single`](super::single).
//!
//! - The **publisher** is `single`'s producer: it owns `producer_head`,
//!   publishes each slot with its sequence word (`seq = pos + 1`, a run
//!   last slot first) and stores its head once per call. Its room is
//!   bounded by the **slowest live subscriber**: it caches `slowest +
//!   capacity` and scans the subscribers' cursors only when that cache says
//!   full ([`RingCore::claim_send_broadcast`]; the scan itself, over the
//!   participant table, is the handle layer's, `handle::broadcast`).
//!   Without subscribers nothing holds it back: a message nobody is
//!   subscribed to is overwritten a lap later.
//! - A **subscriber** is `single`'s consumer with a head of its own, its
//!   **cursor** (a word on its own line in its participant entry): it polls
//!   the sequence word of its cursor's slot, reads the run it found and
//!   stores its cursor once per call ([`RingCore::claim_recv_single_on`],
//!   [`RingCore::release_single_on`]). It writes no slot, so any number of
//!   subscribers read the same message without a line written per reader.
//!
//! | shared line      | written by   | read by                                 |
//! |------------------|--------------|-----------------------------------------|
//! | slot (seq, data) | publisher    | every subscriber, once per message      |
//! | a cursor         | its subscriber | the publisher, when its cache says full |
//! | `producer_head`  | publisher    | joining subscribers, tools              |
//!
//! # Orderings
//! - SYNC POINT "message visible": as in the shared protocol.
//! - SYNC POINT "run free", once per subscriber: its `Release` store of its
//!   cursor pairs with the publisher's `Acquire` load of that cursor in the
//!   scan; its reads of a slot happen before the publisher rewrites it.
//! - SYNC POINT "subscriber joined": a joiner stores its cursor, marks
//!   itself a subscriber, issues a `SeqCst` fence and reads `producer_head`
//!   again, moving its cursor up to it. The publisher issues a `SeqCst`
//!   fence before each scan. Of the two fences, if the publisher's comes
//!   first, the joiner's load sees the head stored before it, so the
//!   joiner starts at or past every position the scan let the publisher
//!   reach a lap later; if the joiner's comes first, the scan sees the
//!   joiner (store-buffering: the two fences forbid both missing the
//!   other). Either way no slot the joiner will read is rewritten before
//!   it is read (`loom_model::a_joiner_is_never_lapped`).
//!
//! # Overwriting, history, and reads that are checked
//! A subscriber may read a slot the publisher is rewriting: on a ring that
//! overwrites (`Config::overflow`), where nothing holds the publisher back,
//! and on any broadcast ring for a subscriber that went back into the
//! ring's history (`rewind_broadcast`) further than the publisher's room,
//! cached before it did, respects. So every read of a broadcast slot is
//! checked as a seqlock's (Boehm, "Can seqlocks get along with programming
//! language memory models?", 2012):
//! - the publisher first stores the slot's sequence word `pos` (the value
//!   that says "free for position `pos`", [`RingCore::mark_rewriting`]),
//!   then `publish` writes the payload after a `Release` fence and stores
//!   `pos + 1` last;
//! - a subscriber loads `seq == pos + 1` (`Acquire`), copies the slot,
//!   issues an `Acquire` fence and loads the sequence word again
//!   ([`RingCore::still_published`]). SYNC POINT "slot rewritten": if its
//!   copy read any word the publisher wrote after the mark, the fences
//!   make the mark visible to the second load, which then differs. A copy
//!   is thus either the message of position `pos`, whole, or discarded.
//! - A sequence word of a later lap at the cursor (marked or published:
//!   [`is_later_lap`]) means the publisher passed the subscriber: it is
//!   told how many it missed and goes on from the oldest message still in
//!   the ring, `producer_head - capacity` (the engine's `lapped`).
//!   `loom_model::an_overwritten_read_is_reported_not_torn`.
//!
//! A scan that finds a cursor more than a ring behind the publisher (a
//! subscriber that went back into the history) counts it as exactly a ring
//! behind: the publisher waits until it reads (on a ring that blocks), and
//! the subscriber, finding its slot rewritten, moves up.

use core::cell::Cell;

use super::protocol::{Claim, ClaimError, RingCore};
use crate::atomic::{fence, AtomicU64, Ordering};

impl RingCore {
    /// Claims up to `max` (>= 1) positions for the publisher of a
    /// broadcast ring. `room_end` is its cache of the first position it may
    /// not write yet (`slowest + capacity` when last scanned); `slowest(pos)`
    /// scans the live subscribers' cursors: the smallest, `Ok(None)` if
    /// there are none, `Err(cursor)` for a cursor that cannot be (ahead of
    /// `pos`, or more than a ring behind it: a scribbler's).
    #[inline(always)]
    pub(crate) fn claim_send_broadcast(
        &self,
        max: u64,
        room_end: &Cell<u64>,
        slowest: impl FnOnce(u64) -> Result<Option<u64>, u64>,
    ) -> Result<Claim, ClaimError> {
        // Relaxed: our own word, written only by this publisher.
        let pos = self.ctrl().producer_head.value.load(Ordering::Relaxed);
        let mut room = room_end.get().wrapping_sub(pos);
        if room < max || room > self.capacity() {
            room = self.refresh_broadcast_room(pos, room_end, slowest)?;
        }
        Ok(Claim {
            pos,
            count: room.min(max),
        })
    }

    /// Scans the cursors into `room_end`; the room from `pos`.
    #[cold]
    #[inline(never)]
    fn refresh_broadcast_room(
        &self,
        pos: u64,
        room_end: &Cell<u64>,
        slowest: impl FnOnce(u64) -> Result<Option<u64>, u64>,
    ) -> Result<u64, ClaimError> {
        // SYNC POINT "subscriber joined" (the publisher's side; module docs).
        fence(Ordering::SeqCst);
        let tail = slowest(pos)
            .map_err(|cursor| ClaimError::Corrupt { pos, seq: cursor })?
            .unwrap_or(pos);
        // `slowest` checked `tail <= pos` and `pos - tail <= capacity`.
        room_end.set(tail.wrapping_add(self.capacity()));
        match self.capacity() - pos.wrapping_sub(tail) {
            0 => Err(ClaimError::Full),
            room => Ok(room),
        }
    }
}

impl RingCore {
    /// Marks the slot of `pos` as being rewritten, before `publish` writes
    /// it (module docs, "Overwriting"): `seq = pos`, which a subscriber at
    /// `pos` reads as "not yet" and one a lap behind as a later lap.
    #[inline(always)]
    pub(crate) fn mark_rewriting(&self, pos: u64) {
        // Relaxed: SYNC POINT "slot rewritten"; `publish`'s Release fence
        // orders this store before the payload's.
        self.slot(pos).seq.store(pos, Ordering::Relaxed);
    }

    /// After copying the slot of `pos`: whether it still holds the message
    /// of `pos` (the copy is then whole; else it is to be discarded).
    #[inline(always)]
    pub(crate) fn still_published(&self, pos: u64) -> bool {
        // SYNC POINT "slot rewritten" (Acquire fence; pairs with the
        // Release fence in `publish` after `mark_rewriting`).
        fence(Ordering::Acquire);
        self.slot(pos).seq.load(Ordering::Relaxed) == pos.wrapping_add(1)
    }

    /// Moves a joined subscriber's cursor back by up to `depth` (at most a
    /// ring) messages before the head: its history. Never before position
    /// 0, nor forward. Returns the cursor.
    pub(crate) fn rewind_broadcast(&self, cursor: &AtomicU64, depth: u64) -> u64 {
        // Relaxed: which slots to read is checked per read (the module
        // docs), not inferred from the head.
        let head = self.ctrl().producer_head.value.load(Ordering::Relaxed);
        let back = head.saturating_sub(depth.min(self.capacity()));
        // Relaxed: our own word.
        let now = cursor.load(Ordering::Relaxed);
        if back >= now {
            return now;
        }
        // Release: as every store of a cursor (the publisher's scan pairs
        // with it); moving back frees nothing.
        cursor.store(back, Ordering::Release);
        back
    }

    /// Where a subscriber whose slot at `pos` holds a later lap goes on:
    /// the oldest message still in the ring, and at least `pos + 1`.
    pub(crate) fn after_lap(&self, pos: u64) -> u64 {
        // Relaxed: a hint; the slot there is checked when it is read.
        let head = self.ctrl().producer_head.value.load(Ordering::Relaxed);
        let oldest = head.wrapping_sub(self.capacity());
        if (oldest.wrapping_sub(pos) as i64) > 0 {
            oldest
        } else {
            pos.wrapping_add(1)
        }
    }

    /// Joins a subscriber whose cursor is `cursor`: at the next message.
    /// `subscribe` marks it a subscriber where the publisher's scan looks
    /// (a `Release` store, after which the scan may read the cursor).
    /// Returns the position it starts at.
    pub(crate) fn join_broadcast(&self, cursor: &AtomicU64, subscribe: impl FnOnce()) -> u64 {
        let head = &self.ctrl().producer_head.value;
        // Acquire: the slots below the head are published (the
        // publisher's Release store of its head).
        let start = head.load(Ordering::Acquire);
        // Relaxed: made visible to the scan by `subscribe`'s Release.
        cursor.store(start, Ordering::Relaxed);
        subscribe();
        // SYNC POINT "subscriber joined" (the joiner's side; module docs).
        fence(Ordering::SeqCst);
        let now = head.load(Ordering::Relaxed);
        if now == start {
            return start;
        }
        // A scan that missed us may have let the publisher reach a lap
        // past `start`, not past `now`: start there (messages sent while
        // we joined are not ours). Relaxed: we have read nothing yet.
        cursor.store(now, Ordering::Relaxed);
        now
    }
}

/// A cursor read by the publisher at `pos`, as its scan counts it: at most
/// a ring behind (a subscriber further back, in its history, holds the
/// publisher a ring back until it moves up); `Err(cursor)` for one ahead of
/// `pos`, which no subscriber can have.
#[inline]
pub(crate) fn gating_cursor(cursor: u64, pos: u64, capacity: u64) -> Result<u64, u64> {
    let behind = pos.wrapping_sub(cursor);
    if behind <= capacity {
        Ok(cursor)
    } else if (behind as i64) > 0 {
        Ok(pos.wrapping_sub(capacity))
    } else {
        Err(cursor)
    }
}

/// Whether the sequence word `seq` of the slot at a subscriber's position
/// `pos` belongs to a later lap (published, `q + 1`, or being rewritten,
/// `q`, for a position `q` a multiple of the capacity past `pos`): the
/// publisher passed the subscriber.
#[inline]
pub(crate) fn is_later_lap(seq: u64, pos: u64, capacity: u64) -> bool {
    let ahead = seq.wrapping_sub(pos);
    (ahead as i64) >= capacity as i64 && ahead & (capacity - 1) <= 1
}

#[cfg(all(test, fusion_ring_loom))]
mod loom_model {
    use core::cell::Cell;

    use loom::sync::Arc;

    use super::{gating_cursor, is_later_lap};
    use crate::atomic::{AtomicU64, Ordering};
    use crate::lockfree::protocol::loom_model::{builder, Model};
    use crate::lockfree::protocol::{ClaimError, RingCore};

    /// Two subscribers' cursors and whether each is subscribed.
    struct Subscribers {
        cursor: [AtomicU64; 2],
        /// 1 once subscribed.
        joined: [AtomicU64; 2],
    }

    impl Subscribers {
        /// The publisher's scan (as `handle::broadcast::slowest`).
        fn slowest(&self, pos: u64) -> Result<Option<u64>, u64> {
            let mut min = None;
            for k in 0..2 {
                // Acquire: the cursor after the mark (`join_broadcast`).
                if self.joined[k].load(Ordering::Acquire) == 1 {
                    // Acquire: SYNC POINT "run free".
                    let c = gating_cursor(self.cursor[k].load(Ordering::Acquire), pos, 2)?;
                    min = Some(min.map_or(c, |m: u64| m.min(c)));
                }
            }
            Ok(min)
        }
    }

    fn publish(ring: &RingCore, subs: &Subscribers, values: &[u64]) {
        let room = Cell::new(0);
        let mut next = 0;
        while next < values.len() {
            match ring.claim_send_broadcast(1, &room, |pos| subs.slowest(pos)) {
                Ok(c) => {
                    let v = values[next];
                    ring.publish(c.pos, v, 0, &[v, !v, 0, 0, 0], false);
                    ring.commit_send_single(c.pos + 1);
                    next += 1;
                }
                Err(ClaimError::Full) => loom::thread::yield_now(),
                Err(e) => panic!("{e:?}"),
            }
        }
    }

    /// Reads from subscriber `k`'s cursor up to position `end`.
    fn read_until(ring: &RingCore, subs: &Subscribers, k: usize, end: u64) -> Vec<u64> {
        let mut got = Vec::new();
        // Relaxed: the subscriber's own word.
        while subs.cursor[k].load(Ordering::Relaxed) < end {
            match ring.claim_recv_single_on(&subs.cursor[k], 1, None) {
                Ok(c) => {
                    let content = ring.read(c.pos);
                    assert_eq!(content.payload[1], !content.payload[0], "torn payload");
                    assert_eq!(content.stamp, content.payload[0], "a mix of two messages");
                    got.push(content.payload[0]);
                    ring.release_single_on(&subs.cursor[k], c.pos + 1, false);
                }
                Err(ClaimError::Empty) => loom::thread::yield_now(),
                Err(e) => panic!("{e:?}"),
            }
        }
        got
    }

    /// A subscriber joins while three messages go through a capacity-2
    /// ring with no other subscriber (nothing holds the publisher back
    /// until the joiner is seen): it reads a suffix of them, in order,
    /// never a message of another lap than the one it expects (that would
    /// be a sequence word ahead of its cursor, `Corrupt`, or a torn
    /// payload). Fails if the fence of either side of "subscriber joined"
    /// is removed (checked).
    #[test]
    fn a_joiner_is_never_lapped() {
        builder(2).check(|| {
            let m = Arc::new(Model::one_lap_in());
            let subs = Arc::new(Subscribers {
                cursor: [AtomicU64::new(0), AtomicU64::new(0)],
                joined: [AtomicU64::new(0), AtomicU64::new(0)],
            });
            let joiner = {
                let (m, subs) = (Arc::clone(&m), Arc::clone(&subs));
                loom::thread::spawn(move || {
                    let ring = m.core();
                    ring.join_broadcast(&subs.cursor[1], || {
                        subs.joined[1].store(1, Ordering::Release)
                    });
                    read_until(&ring, &subs, 1, 4)
                })
            };
            publish(&m.core(), &subs, &[10, 20, 30]);
            let suffix = joiner.join().unwrap();
            assert!(
                [10, 20, 30].ends_with(&suffix),
                "{suffix:?} is not a suffix"
            );
        });
    }

    /// A publisher that overwrites sends 10, 20, 30 (positions 1-3) through
    /// a capacity-2 ring, marking each slot before it rewrites it, while a
    /// subscriber at position 1 reads with the re-check (as the engine's
    /// receive and `lapped`). Every message it takes is the one of its
    /// position, whole; what it missed is reported, so it accounts for all
    /// three. Fails if the publisher does not mark the slot first, or if
    /// the subscriber does not re-check (both checked).
    #[test]
    fn an_overwritten_read_is_reported_not_torn() {
        builder(2).check(|| {
            let m = Arc::new(Model::one_lap_in());
            let publisher = {
                let m = Arc::clone(&m);
                loom::thread::spawn(move || {
                    let ring = m.core();
                    let room = Cell::new(0);
                    for v in [10, 20, 30] {
                        // As the engine: an overwriting publisher's scan
                        // finds nobody to wait for.
                        let c = ring.claim_send_broadcast(1, &room, |_| Ok(None)).unwrap();
                        ring.mark_rewriting(c.pos);
                        ring.publish(c.pos, v, 0, &[v, !v, 0, 0, 0], false);
                        ring.commit_send_single(c.pos + 1);
                    }
                })
            };
            let ring = m.core();
            let cursor = AtomicU64::new(1);
            let (mut got, mut missed) = (Vec::new(), 0);
            while cursor.load(Ordering::Relaxed) < 4 {
                let pos = match ring.claim_recv_single_on(&cursor, 1, None) {
                    Ok(c) => {
                        let content = ring.read(c.pos);
                        if ring.still_published(c.pos) {
                            assert_eq!(content.payload[1], !content.payload[0], "torn payload");
                            assert_eq!(content.stamp, content.payload[0], "a mix of two messages");
                            assert_eq!(content.payload[0], 10 * c.pos, "another lap's message");
                            got.push(content.payload[0]);
                            ring.release_single_on(&cursor, c.pos + 1, false);
                            continue;
                        }
                        c.pos
                    }
                    Err(ClaimError::Empty) => {
                        loom::thread::yield_now();
                        continue;
                    }
                    Err(ClaimError::Corrupt { pos, seq }) if is_later_lap(seq, pos, 2) => pos,
                    Err(e) => panic!("{e:?}"),
                };
                let next = ring.after_lap(pos);
                missed += next - pos;
                ring.release_single_on(&cursor, next, false);
            }
            publisher.join().unwrap();
            assert!(got.windows(2).all(|w| w[0] < w[1]), "{got:?} out of order");
            assert_eq!(got.len() as u64 + missed, 3, "{got:?}, {missed} missed");
        });
    }

    /// Two subscribers from the start, three messages through a capacity-2
    /// ring: the publisher waits for the slower one, and each reads all
    /// three in order (the cursor gating; fails if the scan takes the
    /// larger cursor, checked). One thread plays both subscribers, in turn
    /// (a third thread spinning makes the model too long for loom).
    #[test]
    fn the_slowest_subscriber_gates_the_publisher() {
        builder(2).check(|| {
            let m = Arc::new(Model::one_lap_in());
            let subs = Arc::new(Subscribers {
                cursor: [AtomicU64::new(1), AtomicU64::new(1)],
                joined: [AtomicU64::new(1), AtomicU64::new(1)],
            });
            let publisher = {
                let (m, subs) = (Arc::clone(&m), Arc::clone(&subs));
                loom::thread::spawn(move || publish(&m.core(), &subs, &[10, 20, 30]))
            };
            let ring = m.core();
            let mut got = [Vec::new(), Vec::new()];
            // Subscriber 1 reads only once subscriber 0 is two ahead: the
            // ring is full for the publisher until 1 moves.
            while subs.cursor[1].load(Ordering::Relaxed) < 4 {
                let k = usize::from(got[0].len() >= got[1].len() + 2 || got[0].len() == 3);
                match ring.claim_recv_single_on(&subs.cursor[k], 1, None) {
                    Ok(c) => {
                        let content = ring.read(c.pos);
                        assert_eq!(content.payload[1], !content.payload[0], "torn payload");
                        got[k].push(content.payload[0]);
                        ring.release_single_on(&subs.cursor[k], c.pos + 1, false);
                    }
                    Err(ClaimError::Empty) => loom::thread::yield_now(),
                    Err(e) => panic!("{e:?}"),
                }
            }
            publisher.join().unwrap();
            assert_eq!(got, [[10, 20, 30], [10, 20, 30]]);
        });
    }
}

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

/// Whether a cursor read by the publisher at `pos` can be a subscriber's:
/// at or behind `pos`, at most a ring behind.
#[inline]
pub(crate) fn cursor_is_possible(cursor: u64, pos: u64, capacity: u64) -> bool {
    pos.wrapping_sub(cursor) <= capacity
}

#[cfg(all(test, fusion_ring_loom))]
mod loom_model {
    use core::cell::Cell;

    use loom::sync::Arc;

    use super::cursor_is_possible;
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
                    let c = self.cursor[k].load(Ordering::Acquire);
                    if !cursor_is_possible(c, pos, 2) {
                        return Err(c);
                    }
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

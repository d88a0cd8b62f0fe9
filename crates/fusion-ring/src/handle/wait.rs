//! Blocking on a ring: sleeping on its event counts while looking after
//! dead peers now and then.

use std::time::{Duration, Instant};

use crate::error::{Result, RingError};
use crate::handle::participant::{ROLE_RECEIVER, ROLE_SENDER};
use crate::handle::peer;
use crate::handle::registration::Registration;
use crate::handle::shared::SharedRing;
use crate::lockfree::event::{wait_until, Deadline, SLEEP_SLICE};

/// Longest single sleep when polling a ring made without wake-ups.
const POLL_SLICE: Duration = Duration::from_micros(200);

/// How often a blocked caller looks at its peers (`handle::peer`): whether a dead
/// one's claim blocks the ring, and whether any is left at all.
const PEER_CHECK: Duration = Duration::from_millis(5);
/// How often a blocked sender looks for arena blocks of dead processes
/// (a walk over the arena: slower than the check above).
const BLOCK_CHECK: Duration = Duration::from_millis(100);

/// What a blocked caller waits for.
#[derive(Clone, Copy, PartialEq, Eq)]
pub(crate) enum Waiting {
    /// A message: the peers are senders.
    NotEmpty,
    /// A free slot or arena block: the peers are receivers.
    NotFull,
}

/// Waits on the event count of `waiting` until `ready()` or `deadline`
/// (`Timeout`); on a ring without wake-ups nobody signals, so sleeps are
/// short polls. Between sleeps, reclaims what dead peers left, and reports
/// `Disconnected` once the other side has no live participant.
pub(crate) fn wait_on(
    ring: &SharedRing,
    me: &Registration,
    waiting: Waiting,
    deadline: Deadline,
    ready: impl FnMut() -> bool,
) -> Result<()> {
    let (ec, peers) = match waiting {
        Waiting::NotEmpty => (&ring.sync_block().not_empty.value, ROLE_SENDER),
        Waiting::NotFull => (&ring.sync_block().not_full.value, ROLE_RECEIVER),
    };
    let slice = if ring.wakeups() {
        SLEEP_SLICE
    } else {
        POLL_SLICE
    };
    let start = Instant::now();
    let (mut next_check, mut next_blocks) = (start + PEER_CHECK, start + BLOCK_CHECK);
    wait_until(ec, deadline, slice, ready, || {
        let now = Instant::now();
        if now < next_check {
            return Ok(());
        }
        next_check = now + PEER_CHECK;
        // Looked up here, not before the first try: the calls that find
        // their message at once pay nothing for it.
        let registration = me;
        let me = me.caller(ring.core());
        let (unpublished, unreleased) = peer::recover_slots(ring, me);
        let mut freed = 0;
        if waiting == Waiting::NotFull && now >= next_blocks {
            next_blocks = now + BLOCK_CHECK;
            freed = peer::reclaim_blocks(ring, me, true).0;
        }
        if waiting == Waiting::NotFull && ring.broadcast() {
            // A dead subscriber's cursor holds the publisher back until its
            // entry is reaped.
            freed += peer::reap_dead(ring.segment(), ring.core(), &registration.lock());
        }
        // Anything put right may have made the caller ready: look again
        // before concluding that nobody is left.
        if unpublished + unreleased + freed == 0 && peer::disconnected(ring, peers) {
            Err(RingError::Disconnected)
        } else {
            Ok(())
        }
    })
}

//! Blocking: [`RingSync`], built on the event counts of [`event`].

use std::time::{Duration, Instant};

pub(crate) use crate::lockfree::event::{notify, notify_after_seqcst, wait_until, wake_all, SLEEP_SLICE};

use crate::lockfree::arena::Arena;
use crate::handle::participant::{ROLE_RECEIVER, ROLE_SENDER};
use crate::handle::peer;
use crate::error::{Result, RingError};
use crate::ring::Ring;

/// Wakes senders blocked on a full arena, after a release freed a block
/// (nothing on a ring without wake-ups).
#[inline]
pub(crate) fn notify_block_freed(arena: &Arena) {
    if let Some(ec) = arena.freed_waker() {
        notify(ec);
    }
}

/// Longest single sleep when polling a ring made without wake-ups.
const POLL_SLICE: Duration = Duration::from_micros(200);

/// How often a blocked caller looks at its peers (`peer`): whether a dead
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

/// Waits on the event count of `waiting` until `ready()`; on a ring
/// without wake-ups nobody signals, so sleeps are short polls. Between
/// sleeps, reclaims what dead peers left, and reports `Disconnected` once
/// the other side has no live participant.
pub(crate) fn wait_on(
    ring: &Ring,
    waiting: Waiting,
    deadline: Option<Instant>,
    ready: impl FnMut() -> bool,
) -> Result<()> {
    let (ec, peers) = match waiting {
        Waiting::NotEmpty => (&ring.sync_block().not_empty.value, ROLE_SENDER),
        Waiting::NotFull => (&ring.sync_block().not_full.value, ROLE_RECEIVER),
    };
    let slice = if ring.has_wakeups() {
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
        let (unpublished, unreleased) = peer::recover_slots(ring);
        let mut freed = 0;
        if waiting == Waiting::NotFull && now >= next_blocks {
            next_blocks = now + BLOCK_CHECK;
            freed = peer::reclaim_blocks(ring, true).0;
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

/// The blocking primitives of a ring (the seeds' `RingSync`): wait until
/// it is not empty / not full, and wake the other side by hand. Works
/// across processes: the futex words live in the ring's segment.
///
/// `FusionRing`'s blocking calls use it; it is public for callers that
/// build their own loops over the non-blocking ones.
///
/// ```
/// use std::time::Duration;
/// use fusion_ring::{FusionRing, RingError, RingSync};
/// let ring = FusionRing::new(8)?;
/// let sync = RingSync::new(&ring);
/// assert_eq!(sync.wait_not_empty_timeout(Duration::from_millis(5)), Err(RingError::Timeout));
/// ring.send(b"wake up")?;
/// sync.wait_not_empty()?;
/// sync.wait_not_full()?;
/// sync.wake_readers();
/// # Ok::<(), RingError>(())
/// ```
pub struct RingSync<'r> {
    ring: &'r Ring,
}

impl<'r> RingSync<'r> {
    /// The blocking primitives of `ring`.
    pub fn new<R: AsRef<Ring>>(ring: &'r R) -> Self {
        RingSync {
            ring: ring.as_ref(),
        }
    }

    /// Blocks until a message is ready to be received, or returns
    /// [`crate::RingError::Disconnected`] once the ring has had senders and
    /// none is alive (checked every few ms of sleep).
    pub fn wait_not_empty(&self) -> Result<()> {
        wait_on(self.ring, Waiting::NotEmpty, None, || self.ring.readable())
    }

    /// Like [`RingSync::wait_not_empty`], giving up with `Timeout` after `timeout`.
    pub fn wait_not_empty_timeout(&self, timeout: Duration) -> Result<()> {
        let deadline = Instant::now() + timeout;
        wait_on(self.ring, Waiting::NotEmpty, Some(deadline), || {
            self.ring.readable()
        })
    }

    /// Blocks until a slot is free, or returns
    /// [`crate::RingError::Disconnected`] once the ring has had receivers
    /// and none is alive.
    pub fn wait_not_full(&self) -> Result<()> {
        wait_on(self.ring, Waiting::NotFull, None, || self.ring.writable())
    }

    /// Like [`RingSync::wait_not_full`], giving up with `Timeout` after `timeout`.
    pub fn wait_not_full_timeout(&self, timeout: Duration) -> Result<()> {
        let deadline = Instant::now() + timeout;
        wait_on(self.ring, Waiting::NotFull, Some(deadline), || {
            self.ring.writable()
        })
    }

    /// The system calls this process has made to sleep on rings or to wake
    /// sleepers (futex waits and wakes, all rings together), since it
    /// started. Sending and receiving make none while traffic flows: the
    /// count moves only when a blocked call sleeps, or when a send or
    /// receive finds a sleeper to wake.
    ///
    /// ```
    /// use fusion_ring::{FusionRing, RingSync};
    /// let ring = FusionRing::new(8)?;
    /// let before = RingSync::syscalls();
    /// let mut buf = [0u8; 64];
    /// for _ in 0..1000 {
    ///     ring.send_blocking(b"flowing")?;
    ///     ring.recv_blocking(&mut buf)?;
    /// }
    /// // (Another thread of this process sleeping on a ring would count too.)
    /// assert_eq!(RingSync::syscalls(), before);
    /// # Ok::<(), fusion_ring::RingError>(())
    /// ```
    pub fn syscalls() -> u64 {
        crate::lockfree::event::SYSCALLS.load(std::sync::atomic::Ordering::Relaxed)
    }

    /// Wakes every receiver sleeping on this ring (one syscall).
    pub fn wake_readers(&self) {
        wake_all(&self.ring.sync_block().not_empty.value);
    }

    /// Wakes every sender sleeping on this ring (one syscall).
    pub fn wake_writers(&self) {
        wake_all(&self.ring.sync_block().not_full.value);
    }

    /// Waits until `attempt` stops reporting "not yet" (`None`): the
    /// building block of the blocking calls.
    pub(crate) fn not_empty_until<T>(
        ring: &Ring,
        deadline: Option<Instant>,
        attempt: impl FnMut() -> Option<T>,
    ) -> Result<T> {
        Self::until(ring, Waiting::NotEmpty, deadline, attempt)
    }

    pub(crate) fn not_full_until<T>(
        ring: &Ring,
        deadline: Option<Instant>,
        attempt: impl FnMut() -> Option<T>,
    ) -> Result<T> {
        Self::until(ring, Waiting::NotFull, deadline, attempt)
    }

    fn until<T>(
        ring: &Ring,
        waiting: Waiting,
        deadline: Option<Instant>,
        mut attempt: impl FnMut() -> Option<T>,
    ) -> Result<T> {
        let mut out = None;
        wait_on(ring, waiting, deadline, || {
            out = attempt();
            out.is_some()
        })?;
        Ok(out.expect("ready means attempt returned Some"))
    }
}

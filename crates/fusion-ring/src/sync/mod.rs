//! Blocking: [`RingSync`], built on the event counts of [`event`].

pub(crate) mod event;

use std::time::{Duration, Instant};

pub(crate) use event::{notify, notify_after_seqcst, wait_until, wake_all, SLEEP_SLICE};

use crate::layout::EventCount;
use crate::{Result, Ring};

/// Longest single sleep when polling a ring made without wake-ups.
const POLL_SLICE: Duration = Duration::from_micros(200);

/// Waits on `ec` until `ready()`; on a ring without wake-ups nobody
/// signals, so sleeps are short polls.
pub(crate) fn wait_on(
    ring: &Ring,
    ec: &EventCount,
    deadline: Option<Instant>,
    ready: impl FnMut() -> bool,
) -> Result<()> {
    let slice = if ring.has_wakeups() {
        SLEEP_SLICE
    } else {
        POLL_SLICE
    };
    wait_until(ec, deadline, slice, ready)
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

    fn not_empty(&self) -> &EventCount {
        &self.ring.sync_block().not_empty.value
    }

    fn not_full(&self) -> &EventCount {
        &self.ring.sync_block().not_full.value
    }

    /// Blocks until a message is ready to be received.
    pub fn wait_not_empty(&self) -> Result<()> {
        wait_on(self.ring, self.not_empty(), None, || self.ring.readable())
    }

    /// Like [`RingSync::wait_not_empty`], giving up with `Timeout` after `timeout`.
    pub fn wait_not_empty_timeout(&self, timeout: Duration) -> Result<()> {
        let deadline = Instant::now() + timeout;
        wait_on(self.ring, self.not_empty(), Some(deadline), || {
            self.ring.readable()
        })
    }

    /// Blocks until a slot is free.
    pub fn wait_not_full(&self) -> Result<()> {
        wait_on(self.ring, self.not_full(), None, || self.ring.writable())
    }

    /// Like [`RingSync::wait_not_full`], giving up with `Timeout` after `timeout`.
    pub fn wait_not_full_timeout(&self, timeout: Duration) -> Result<()> {
        let deadline = Instant::now() + timeout;
        wait_on(self.ring, self.not_full(), Some(deadline), || {
            self.ring.writable()
        })
    }

    /// Wakes every receiver sleeping on this ring (one syscall).
    pub fn wake_readers(&self) {
        wake_all(self.not_empty());
    }

    /// Wakes every sender sleeping on this ring (one syscall).
    pub fn wake_writers(&self) {
        wake_all(self.not_full());
    }

    /// Waits until `attempt` stops reporting "not yet" (`None`): the
    /// building block of the blocking calls.
    pub(crate) fn not_empty_until<T>(
        ring: &Ring,
        deadline: Option<Instant>,
        attempt: impl FnMut() -> Option<T>,
    ) -> Result<T> {
        Self::until(ring, &ring.sync_block().not_empty.value, deadline, attempt)
    }

    pub(crate) fn not_full_until<T>(
        ring: &Ring,
        deadline: Option<Instant>,
        attempt: impl FnMut() -> Option<T>,
    ) -> Result<T> {
        Self::until(ring, &ring.sync_block().not_full.value, deadline, attempt)
    }

    fn until<T>(
        ring: &Ring,
        ec: &EventCount,
        deadline: Option<Instant>,
        mut attempt: impl FnMut() -> Option<T>,
    ) -> Result<T> {
        let mut out = None;
        wait_on(ring, ec, deadline, || {
            out = attempt();
            out.is_some()
        })?;
        Ok(out.expect("ready means attempt returned Some"))
    }
}

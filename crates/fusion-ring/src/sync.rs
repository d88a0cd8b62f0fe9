//! Blocking: [`RingSync`], built on the event counts of `lockfree::event`.

use std::time::{Duration, Instant};

use crate::error::Result;
use crate::handle::wait::Waiting;
use crate::lockfree::event::{wake_all, Deadline, SYSCALLS};
use crate::ring::Ring;

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
        self.not_empty(Deadline::NEVER)
    }

    /// Like [`RingSync::wait_not_empty`], giving up with `Timeout` after `timeout`.
    pub fn wait_not_empty_timeout(&self, timeout: Duration) -> Result<()> {
        self.not_empty(Deadline::after(timeout))
    }

    /// Like [`RingSync::wait_not_empty`], giving up with `Timeout` at `deadline`.
    ///
    /// ```
    /// use std::time::{Duration, Instant};
    /// use fusion_ring::{RingError, RingSync, UltraFastRing};
    /// let ring = UltraFastRing::new(2)?;
    /// let sync = RingSync::new(&ring);
    /// let soon = Instant::now() + Duration::from_millis(5);
    /// assert_eq!(sync.wait_not_empty_deadline(soon), Err(RingError::Timeout));
    /// sync.wait_not_full_deadline(soon)?;
    /// # Ok::<(), RingError>(())
    /// ```
    pub fn wait_not_empty_deadline(&self, deadline: Instant) -> Result<()> {
        self.not_empty(Deadline::at(deadline))
    }

    /// Blocks until a slot is free, or returns
    /// [`crate::RingError::Disconnected`] once the ring has had receivers
    /// and none is alive.
    pub fn wait_not_full(&self) -> Result<()> {
        self.not_full(Deadline::NEVER)
    }

    /// Like [`RingSync::wait_not_full`], giving up with `Timeout` after `timeout`.
    pub fn wait_not_full_timeout(&self, timeout: Duration) -> Result<()> {
        self.not_full(Deadline::after(timeout))
    }

    /// Like [`RingSync::wait_not_full`], giving up with `Timeout` at `deadline`.
    pub fn wait_not_full_deadline(&self, deadline: Instant) -> Result<()> {
        self.not_full(Deadline::at(deadline))
    }

    fn not_empty(&self, deadline: Deadline) -> Result<()> {
        self.ring
            .wait(Waiting::NotEmpty, deadline, || self.ring.readable())
    }

    fn not_full(&self, deadline: Deadline) -> Result<()> {
        self.ring
            .wait(Waiting::NotFull, deadline, || self.ring.writable())
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
        SYSCALLS.load(std::sync::atomic::Ordering::Relaxed)
    }

    /// Wakes every receiver sleeping on this ring (one syscall).
    pub fn wake_readers(&self) {
        wake_all(&self.ring.sync_block().not_empty.value);
    }

    /// Wakes every sender sleeping on this ring (one syscall).
    pub fn wake_writers(&self) {
        wake_all(&self.ring.sync_block().not_full.value);
    }
}

//! [`UltraFastRing`]: the inline hot path with the seeds' API.

use std::os::fd::{BorrowedFd, OwnedFd};

use crate::shm::config::Config;
use crate::ring::{InlineMessage, Ring, RingStats};
use crate::priority::PriorityClass;
use crate::error::Result;

/// The hot-path ring: inline messages of at most 40 bytes, lock-free, no
/// syscall, usable across processes.
///
/// Each handle is `Send` but not `Sync`; [`Clone`] it for another thread.
///
/// ```
/// use fusion_ring::{PriorityClass, UltraFastRing};
///
/// let ring = UltraFastRing::new(256)?;
/// ring.send_fast(b"price 101.5", PriorityClass::RealTime)?;
///
/// let mut buffer = [0u8; 64];
/// let (size, priority, latency) = ring.recv_fast(&mut buffer)?;
/// assert_eq!(&buffer[..size], b"price 101.5");
/// assert_eq!(priority, PriorityClass::RealTime);
/// println!("{size} bytes, {priority:?}, {latency} ticks");
/// # Ok::<(), fusion_ring::RingError>(())
/// ```
#[derive(Debug, Clone)]
pub struct UltraFastRing {
    ring: Ring,
}

impl UltraFastRing {
    /// A ring of `capacity` slots (power of two, 2..=2^24) in an anonymous
    /// shared segment; `InvalidCapacity` otherwise.
    ///
    /// The ring has no zero-copy arena and no wake-ups (the hot path pays
    /// for neither): it is `with_config(&Config::inline_only(capacity))`,
    /// and `create(name, &Config::inline_only(capacity))` makes the same
    /// ring under a name. Use [`UltraFastRing::with_config`] for other
    /// settings ([`Config::new`] has an arena and wake-ups).
    ///
    /// ```
    /// use fusion_ring::{RingError, UltraFastRing};
    /// let ring = UltraFastRing::new(64)?;
    /// assert_eq!((ring.as_ring().capacity(), ring.as_ring().max_message()), (64, 40));
    /// assert!(matches!(UltraFastRing::new(3), Err(RingError::InvalidCapacity { .. })));
    /// # Ok::<(), RingError>(())
    /// ```
    pub fn new(capacity: usize) -> Result<Self> {
        Self::with_config(&Config::inline_only(capacity))
    }

    /// A new anonymous ring with the given [`Config`].
    pub fn with_config(config: &Config) -> Result<Self> {
        Ring::with_config(config).map(Self::from)
    }

    /// A ring of [`crate::DEFAULT_CAPACITY`] (256) slots.
    /// (Like [`UltraFastRing::new`]: no arena, no wake-ups.)
    pub fn with_default_capacity() -> Result<Self> {
        Self::new(crate::shm::config::DEFAULT_CAPACITY)
    }

    /// Creates a named ring under `/dev/shm` (see [`Ring::create`]); with
    /// [`Config::inline_only`], the ring [`UltraFastRing::new`] makes.
    pub fn create(name: &str, config: &Config) -> Result<Self> {
        Ring::create(name, config).map(Self::from)
    }

    /// Opens a named ring (see [`Ring::open`]).
    pub fn open(name: &str) -> Result<Self> {
        Ring::open(name).map(Self::from)
    }

    /// Adopts a ring from a file descriptor (see [`Ring::from_fd`]).
    pub fn from_fd(fd: OwnedFd) -> Result<Self> {
        Ring::from_fd(fd).map(Self::from)
    }

    /// The segment's file descriptor, to hand to another process.
    pub fn as_fd(&self) -> BorrowedFd<'_> {
        self.ring.as_fd()
    }

    /// The low-level view.
    pub fn as_ring(&self) -> &Ring {
        &self.ring
    }

    /// Sends up to 40 bytes with a priority class.
    ///
    /// `TooLarge { len, max: 40 }` for a longer message and `Full` when no
    /// slot is free; in both cases nothing is sent and the ring is unchanged.
    #[inline]
    pub fn send_fast(&self, data: &[u8], priority: PriorityClass) -> Result<()> {
        self.ring
            .send_inline_with(1, |_| (data, priority))
            .map(drop)
    }

    /// Receives the next message into `buffer`: `(size, priority,
    /// latency_cycles)`, the latency in [`crate::Clock`] ticks since it was
    /// sent.
    ///
    /// `Empty` if there is none; `BufferTooSmall { needed, .. }` if `buffer`
    /// is shorter than the message, which then stays in the ring.
    #[inline]
    pub fn recv_fast(&self, buffer: &mut [u8]) -> Result<(usize, PriorityClass, u64)> {
        self.ring.recv_copy(buffer)
    }

    /// Sends several messages of one class with a single claim; returns how
    /// many were sent (a prefix, if the ring filled up; `Full` if none).
    /// All are checked first: one over 40 bytes gives `TooLarge`, nothing sent.
    /// The messages become visible to receivers together (the run is
    /// published last slot first), and are received in order.
    pub fn send_batch(&self, messages: &[&[u8]], priority: PriorityClass) -> Result<usize> {
        self.ring
            .send_inline_with(messages.len(), |i| (messages[i], priority))
    }

    /// Receives up to `out.len()` messages with a single claim; returns how
    /// many (`Empty` if none).
    pub fn recv_batch(&self, out: &mut [InlineMessage]) -> Result<usize> {
        self.ring.recv_inline_batch(out)
    }

    /// Sent / received counts, mean latency and per-lane counters, summed
    /// over every handle on the ring (in any process): the same snapshot as
    /// [`Ring::stats`].
    ///
    /// ```
    /// use fusion_ring::{PriorityClass, UltraFastRing};
    /// let ring = UltraFastRing::with_default_capacity()?;
    /// ring.send_fast(b"x", PriorityClass::Background)?;
    /// let s = ring.stats();
    /// assert_eq!((s.sent, s.received), (1, 0));
    /// assert_eq!(s.lanes[PriorityClass::Background.lane()].sent, 1);
    /// # Ok::<(), fusion_ring::RingError>(())
    /// ```
    pub fn stats(&self) -> RingStats {
        self.ring.stats()
    }
}

impl From<Ring> for UltraFastRing {
    fn from(ring: Ring) -> Self {
        Self { ring }
    }
}

impl AsRef<Ring> for UltraFastRing {
    fn as_ref(&self) -> &Ring {
        &self.ring
    }
}

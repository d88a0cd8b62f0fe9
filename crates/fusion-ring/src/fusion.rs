//! [`FusionRing`]: the adaptive ring. Messages of up to 40 bytes travel
//! inline, larger ones through the zero-copy arena; blocking calls sleep on
//! futexes in the segment.

use std::os::fd::{BorrowedFd, OwnedFd};
use std::time::{Duration, Instant};

use crate::batch::{self, BatchMessage};
use crate::error::{Result, RingError};
use crate::handle::wait::Waiting;
use crate::lockfree::event::Deadline;
use crate::priority::PriorityClass;
use crate::ring::message::Outgoing;
use crate::ring::{Ring, RingStats};
use crate::shm::config::Config;
use crate::sync::RingSync;
use crate::zerocopy::{self, Loan, LoanError, Payload};

/// The adaptive ring: `send` picks the inline path (<= 40 bytes) or the
/// zero-copy arena; receive by copy ([`FusionRing::recv`]) or in place
/// ([`FusionRing::recv_zerocopy`]); write large messages in place with
/// [`FusionRing::loan`]; block with timeouts.
///
/// Each handle is `Send` but not `Sync`: [`Clone`] it for another thread,
/// or open the ring from another process.
///
/// ```
/// use std::time::Duration;
/// use fusion_ring::FusionRing;
///
/// let ring = FusionRing::new(256)?;
/// ring.send(b"small")?;                // inline
/// ring.send(&vec![1u8; 64 * 1024])?;   // zero-copy
///
/// let mut buffer = vec![0u8; 1 << 20];
/// let size = ring.recv(&mut buffer)?;
/// assert_eq!(&buffer[..size], b"small");
/// let size = ring.recv_blocking(&mut buffer)?;
/// assert_eq!(size, 64 * 1024);
/// ring.send_with_timeout(b"x", Duration::from_millis(100))?;
/// # Ok::<(), fusion_ring::RingError>(())
/// ```
#[derive(Debug, Clone)]
pub struct FusionRing {
    ring: Ring,
}

impl FusionRing {
    /// A ring of `capacity` slots in an anonymous segment with the default
    /// [`Config`]: a 32 MiB arena, messages up to 1 MiB, timestamps and
    /// wake-ups on.
    pub fn new(capacity: usize) -> Result<Self> {
        Self::with_config(&Config::new(capacity))
    }

    /// An anonymous ring with the given config.
    pub fn with_config(config: &Config) -> Result<Self> {
        Ring::with_config(config).map(Self::from)
    }

    /// Creates a named ring under `/dev/shm`.
    pub fn create(name: &str, config: &Config) -> Result<Self> {
        Ring::create(name, config).map(Self::from)
    }

    /// Opens a named ring.
    pub fn open(name: &str) -> Result<Self> {
        Ring::open(name).map(Self::from)
    }

    /// Adopts a ring from a file descriptor.
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

    /// The blocking primitives.
    pub fn sync(&self) -> RingSync<'_> {
        RingSync::new(&self.ring)
    }

    /// Largest message this ring carries.
    pub fn max_message(&self) -> usize {
        self.ring.max_message()
    }


    /// Sends `data` with [`PriorityClass::Normal`]: inline up to 40 bytes,
    /// else copied once into an arena block. `Full` / `ArenaExhausted` /
    /// `TooLarge` leave the ring and the arena as they were.
    pub fn send(&self, data: &[u8]) -> Result<()> {
        self.send_with_priority(data, PriorityClass::Normal)
    }

    /// [`FusionRing::send`] with a priority class.
    pub fn send_with_priority(&self, data: &[u8], priority: PriorityClass) -> Result<()> {
        zerocopy::send_bytes(&self.ring, data, priority)
    }

    /// A writable block of `len` bytes in shared memory (see [`Loan`]).
    /// `TooLarge` above the ring's maximum message, `ArenaExhausted` if no
    /// block is free, `InvalidConfig` (naming `arena_bytes`) on a ring
    /// created without an arena.
    pub fn loan(&self, len: usize) -> Result<Loan<'_>> {
        Loan::new(&self.ring, len)
    }

    /// Sends a filled loan with no copy. On failure (`Full`) the loan comes
    /// back in the error, still yours.
    pub fn send_loan<'r>(
        &'r self,
        loan: Loan<'r>,
        priority: PriorityClass,
    ) -> std::result::Result<(), LoanError<'r>> {
        zerocopy::send_loan(&self.ring, loan, priority)
    }

    /// Sends a received payload on with no copy when it lives in this
    /// ring's segment (a new reference to the same block); otherwise copies.
    pub fn forward(&self, payload: &Payload, priority: PriorityClass) -> Result<()> {
        match payload.share_into(self.ring.segment()) {
            Some(Outgoing::Block(desc)) => self
                .ring
                .send_with(1, |_| (Outgoing::Block(desc), priority))
                .map(drop)
                .inspect_err(|_| self.ring.release_block(desc.offset)),
            _ => self.send_with_priority(payload, priority),
        }
    }

    /// Receives the next message into `buffer`; returns its length.
    /// `Empty` if none; `BufferTooSmall { needed, .. }` if it does not fit
    /// (it stays queued).
    pub fn recv(&self, buffer: &mut [u8]) -> Result<usize> {
        self.ring.recv_copy(buffer).map(|(n, _, _)| n)
    }

    /// Like [`FusionRing::recv`], also giving the priority class and the
    /// latency in ticks.
    pub fn recv_with_meta(&self, buffer: &mut [u8]) -> Result<(usize, PriorityClass, u64)> {
        self.ring.recv_copy(buffer)
    }

    /// Receives the next message in place (no copy for zero-copy messages).
    pub fn recv_zerocopy(&self) -> Result<Payload> {
        let r = self.ring.recv_one(None)?;
        Ok(Payload::from_received(&self.ring, r))
    }

    /// Sends a batch of mixed sizes with one claim (blocks for the large
    /// ones are taken first). Returns how many were sent: all, or a prefix
    /// if the ring or the arena filled up. One message over the maximum
    /// gives `TooLarge` and nothing is sent.
    pub fn send_batch(&self, messages: &[BatchMessage<'_>]) -> Result<usize> {
        batch::send_mixed(&self.ring, messages)
    }

    /// Receives up to `max` messages with one claim, appending them to
    /// `out` (in place, like [`FusionRing::recv_zerocopy`]); returns how many.
    pub fn recv_batch(&self, out: &mut Vec<Payload>, max: usize) -> Result<usize> {
        if max == 0 {
            return Ok(0);
        }
        self.ring.recv_with(max, None, |r| {
            out.push(Payload::from_received(&self.ring, r))
        })
    }

    // Blocking calls. Each operation comes as `_blocking` (no limit),
    // `_timeout(Duration)` (the seeds spell two of them `_with_timeout`)
    // and `_deadline(Instant)`; the `_deadline` forms are the general ones
    // (the priority class in, the meta data out), the others shorthands.

    /// Sends, waiting while the ring (or the arena) is full.
    ///
    /// Returns [`RingError::Disconnected`] (nothing sent) if, while it
    /// waits, the ring has had receivers and none is alive any more: they
    /// dropped their handles or their processes died. Slots and blocks that
    /// dead processes held are reclaimed as it waits (see [`Ring::recover`]).
    pub fn send_blocking(&self, data: &[u8]) -> Result<()> {
        self.send_waiting(data, PriorityClass::Normal, Deadline::NEVER)
    }

    /// [`FusionRing::send_blocking`] with a priority class.
    ///
    /// ```
    /// use fusion_ring::{FusionRing, PriorityClass};
    /// let ring = FusionRing::new(8)?;
    /// ring.send_blocking_with_priority(b"urgent", PriorityClass::RealTime)?;
    /// let mut buf = [0u8; 8];
    /// let (n, priority, _) = ring.recv_blocking_with_meta(&mut buf)?;
    /// assert_eq!((&buf[..n], priority), (&b"urgent"[..], PriorityClass::RealTime));
    /// # Ok::<(), fusion_ring::RingError>(())
    /// ```
    pub fn send_blocking_with_priority(&self, data: &[u8], priority: PriorityClass) -> Result<()> {
        self.send_waiting(data, priority, Deadline::NEVER)
    }

    /// Sends, waiting at most `timeout`; `Timeout` means nothing was sent.
    pub fn send_with_timeout(&self, data: &[u8], timeout: Duration) -> Result<()> {
        self.send_waiting(data, PriorityClass::Normal, Deadline::after(timeout))
    }

    /// Sends with a priority class, waiting until `deadline`; `Timeout`
    /// means nothing was sent.
    ///
    /// ```
    /// use std::time::{Duration, Instant};
    /// use fusion_ring::{FusionRing, PriorityClass, RingError};
    /// let ring = FusionRing::new(2)?;
    /// let soon = Instant::now() + Duration::from_millis(5);
    /// ring.send_deadline(b"a", PriorityClass::High, soon)?;
    /// ring.send_deadline(b"b", PriorityClass::High, soon)?;
    /// assert_eq!(ring.send_deadline(b"c", PriorityClass::High, soon), Err(RingError::Timeout));
    /// # Ok::<(), RingError>(())
    /// ```
    pub fn send_deadline(
        &self,
        data: &[u8],
        priority: PriorityClass,
        deadline: Instant,
    ) -> Result<()> {
        self.send_waiting(data, priority, Deadline::at(deadline))
    }

    fn send_waiting(&self, data: &[u8], priority: PriorityClass, deadline: Deadline) -> Result<()> {
        zerocopy::send_bytes_waiting(&self.ring, data, priority, deadline)
    }

    /// Receives into `buffer`, waiting for a message; returns its length.
    ///
    /// Returns [`RingError::Disconnected`] once the ring is empty, has had
    /// senders, and none is alive any more; a slot a dead sender claimed and
    /// never published is skipped as it waits (see [`Ring::recover`]).
    pub fn recv_blocking(&self, buffer: &mut [u8]) -> Result<usize> {
        self.recv_waiting(buffer, Deadline::NEVER).map(|(n, _, _)| n)
    }

    /// [`FusionRing::recv_blocking`], also giving the priority class and
    /// the latency in ticks (as [`FusionRing::recv_with_meta`]).
    pub fn recv_blocking_with_meta(
        &self,
        buffer: &mut [u8],
    ) -> Result<(usize, PriorityClass, u64)> {
        self.recv_waiting(buffer, Deadline::NEVER)
    }

    /// Receives into `buffer`, waiting at most `timeout`; `Timeout` means
    /// nothing was consumed.
    pub fn recv_with_timeout(&self, buffer: &mut [u8], timeout: Duration) -> Result<usize> {
        self.recv_waiting(buffer, Deadline::after(timeout))
            .map(|(n, _, _)| n)
    }

    /// Receives into `buffer`, waiting until `deadline`; gives the length,
    /// the priority class and the latency in ticks. `Timeout` means nothing
    /// was consumed.
    ///
    /// ```
    /// use std::time::{Duration, Instant};
    /// use fusion_ring::{FusionRing, PriorityClass, RingError};
    /// let ring = FusionRing::new(8)?;
    /// let mut buf = [0u8; 16];
    /// let soon = Instant::now() + Duration::from_millis(5);
    /// assert_eq!(ring.recv_deadline(&mut buf, soon), Err(RingError::Timeout));
    /// ring.send_with_priority(b"late", PriorityClass::Low)?;
    /// let (n, priority, _) = ring.recv_deadline(&mut buf, soon)?;
    /// assert_eq!((n, priority), (4, PriorityClass::Low));
    /// # Ok::<(), RingError>(())
    /// ```
    pub fn recv_deadline(
        &self,
        buffer: &mut [u8],
        deadline: Instant,
    ) -> Result<(usize, PriorityClass, u64)> {
        self.recv_waiting(buffer, Deadline::at(deadline))
    }

    fn recv_waiting(
        &self,
        buffer: &mut [u8],
        deadline: Deadline,
    ) -> Result<(usize, PriorityClass, u64)> {
        self.ring.recv_copy_waiting(buffer, deadline)
    }

    /// Receives in place (see [`FusionRing::recv_zerocopy`]), waiting for a
    /// message. The `_timeout` and `_deadline` forms give up with `Timeout`.
    ///
    /// ```
    /// use std::time::{Duration, Instant};
    /// use fusion_ring::{FusionRing, RingError};
    /// let ring = FusionRing::new(8)?;
    /// let t = Duration::from_millis(5);
    /// assert_eq!(ring.recv_zerocopy_timeout(t).unwrap_err(), RingError::Timeout);
    /// ring.send(&[9u8; 4096])?;
    /// ring.send(b"small")?;
    /// assert_eq!(ring.recv_zerocopy_blocking()?.len(), 4096);
    /// assert_eq!(&ring.recv_zerocopy_deadline(Instant::now() + t)?[..], b"small");
    /// # Ok::<(), RingError>(())
    /// ```
    pub fn recv_zerocopy_blocking(&self) -> Result<Payload> {
        self.recv_zerocopy_waiting(Deadline::NEVER)
    }

    /// Receives in place, waiting at most `timeout`.
    pub fn recv_zerocopy_timeout(&self, timeout: Duration) -> Result<Payload> {
        self.recv_zerocopy_waiting(Deadline::after(timeout))
    }

    /// Receives in place, waiting until `deadline`.
    pub fn recv_zerocopy_deadline(&self, deadline: Instant) -> Result<Payload> {
        self.recv_zerocopy_waiting(Deadline::at(deadline))
    }

    fn recv_zerocopy_waiting(&self, deadline: Deadline) -> Result<Payload> {
        self.ring
            .wait_for(Waiting::NotEmpty, deadline, || match self.recv_zerocopy() {
                Err(RingError::Empty) => None,
                r => Some(r),
            })?
    }

    /// Positions, counters, lanes and arena use, read from the segment
    /// (the same snapshot as [`Ring::stats`]).
    pub fn stats(&self) -> RingStats {
        self.ring.stats()
    }
}

impl From<Ring> for FusionRing {
    fn from(ring: Ring) -> Self {
        Self { ring }
    }
}

impl AsRef<Ring> for FusionRing {
    fn as_ref(&self) -> &Ring {
        &self.ring
    }
}

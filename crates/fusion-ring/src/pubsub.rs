//! [`Publisher`] and [`Subscriber`]: the handles of a broadcast ring
//! ([`Config::broadcast`]), where every subscriber receives every message.

use std::os::fd::{BorrowedFd, OwnedFd};
use std::time::{Duration, Instant};

use crate::error::{Result, RingError};
use crate::handle::participant::{ROLE_SENDER, ROLE_SUBSCRIBER};
use crate::lockfree::event::Deadline;
use crate::priority::PriorityClass;
use crate::ring::{Ring, RingStats};
use crate::shm::config::Config;
use crate::zerocopy::{self, Loan, LoanError};

/// The publisher of a broadcast ring: the one handle that sends (a second
/// one, in any process, gets [`RingError::RoleTaken`] naming the holder; a
/// dead one's role is taken over). Every [`Subscriber`] receives every
/// message it sends after the subscriber joined, in order; a slot is
/// reused once every live subscriber has read it, so a full ring means the
/// slowest subscriber is a ring behind (`Full`, or a blocking send waits).
/// With no subscriber nothing holds it back.
///
/// ```
/// use fusion_ring::{Config, Publisher, Subscriber};
/// let publisher = Publisher::with_config(&Config::new(4).broadcast(2))?;
/// let sub = Subscriber::from_publisher(&publisher)?;
/// for tick in 0..4u8 {
///     publisher.send(&[tick])?;
/// }
/// // The subscriber is a ring behind: the publisher waits for it.
/// assert_eq!(publisher.send(b"x"), Err(fusion_ring::RingError::Full));
/// let mut buf = [0u8; 40];
/// assert_eq!((sub.recv(&mut buf)?, buf[0]), (1, 0));
/// publisher.send(b"x")?;
/// # Ok::<(), fusion_ring::RingError>(())
/// ```
#[derive(Debug)]
pub struct Publisher {
    ring: Ring,
}

/// A subscriber of a broadcast ring: receives every message the
/// [`Publisher`] sends from the moment it joined (when it was made), in
/// order, whatever the other subscribers do. It joins when it is made and
/// leaves when it is dropped or its process dies (its dead entry stops
/// holding the publisher back once found, as the liveness checks of a
/// blocked call find dead peers). Not `Clone`: a second subscriber is
/// made with [`Subscriber::open`] (or `from_*`) and starts at the next
/// message. A subscriber carried into a forked child joins anew there at
/// its first receive.
///
/// ```
/// use fusion_ring::{Config, Publisher, PriorityClass, Subscriber};
/// let publisher = Publisher::with_config(&Config::new(64).broadcast(4))?;
/// let early = Subscriber::from_publisher(&publisher)?;
/// publisher.send_with_priority(b"first", PriorityClass::High)?;
/// let late = Subscriber::from_publisher(&publisher)?;
/// publisher.send(b"second")?;
/// let mut buf = [0u8; 40];
/// let (n, priority, _latency) = early.recv_with_meta(&mut buf)?;
/// assert_eq!((&buf[..n], priority), (&b"first"[..], PriorityClass::High));
/// assert_eq!(early.recv(&mut buf)?, 6);
/// assert_eq!(late.recv(&mut buf)?, 6); // joined after "first"
/// assert_eq!(publisher.subscribers(), 2);
/// # Ok::<(), fusion_ring::RingError>(())
/// ```
#[derive(Debug)]
pub struct Subscriber {
    ring: Ring,
}

/// `WrongShape` unless `ring` is a broadcast ring.
fn broadcast_ring(ring: Ring) -> Result<Ring> {
    if ring.is_broadcast() {
        Ok(ring)
    } else {
        Err(RingError::WrongShape {
            ring: ring.label().to_string(),
            found: "work queue",
            expected: "broadcast ring",
        })
    }
}

impl Publisher {
    /// A new anonymous broadcast ring (`config` made with
    /// [`Config::broadcast`], else `WrongShape`), and its publisher.
    pub fn with_config(config: &Config) -> Result<Self> {
        Self::from_ring(Ring::with_config(config)?)
    }

    /// Creates a named broadcast ring under `/dev/shm` (see
    /// [`Ring::create`]) and its publisher.
    pub fn create(name: &str, config: &Config) -> Result<Self> {
        Self::from_ring(Ring::create(name, config)?)
    }

    /// Opens a named broadcast ring as its publisher (`RoleTaken` if a
    /// live publisher has it).
    pub fn open(name: &str) -> Result<Self> {
        Self::from_ring(Ring::open(name)?)
    }

    /// The publisher of the broadcast ring behind `fd` (see
    /// [`Ring::from_fd`]).
    pub fn from_fd(fd: OwnedFd) -> Result<Self> {
        Self::from_ring(Ring::from_fd(fd)?)
    }

    /// Makes `ring`'s handle the publisher: `WrongShape` for a work queue,
    /// `RoleTaken` if a live publisher has the role.
    pub fn from_ring(ring: Ring) -> Result<Self> {
        let ring = broadcast_ring(ring)?;
        ring.take_role(ROLE_SENDER)?;
        Ok(Publisher { ring })
    }

    /// The segment's file descriptor, to hand to a subscriber's process.
    pub fn as_fd(&self) -> BorrowedFd<'_> {
        self.ring.as_fd()
    }

    /// The low-level view.
    pub fn as_ring(&self) -> &Ring {
        &self.ring
    }

    /// Publishes `data`, class [`PriorityClass::Normal`]: inline up to 40
    /// bytes, else copied once into an arena block that every subscriber
    /// reads. `Full` if the slowest subscriber is a ring behind,
    /// `ArenaExhausted` if no block is free, `TooLarge` over the ring's
    /// largest message; either way nothing is sent.
    ///
    /// ```
    /// use fusion_ring::{Config, Publisher, Subscriber};
    /// let publisher = Publisher::with_config(&Config::new(8).broadcast(2))?;
    /// let (a, b) = (Subscriber::from_publisher(&publisher)?, Subscriber::from_publisher(&publisher)?);
    /// publisher.send(&[7u8; 1000])?; // one block, read by both
    /// let mut buf = vec![0u8; publisher.as_ring().max_message()];
    /// assert_eq!(a.recv(&mut buf)?, 1000);
    /// assert_eq!(b.recv(&mut buf)?, 1000);
    /// # Ok::<(), fusion_ring::RingError>(())
    /// ```
    pub fn send(&self, data: &[u8]) -> Result<()> {
        self.send_with_priority(data, PriorityClass::Normal)
    }

    /// Publishes with a priority class (carried to every subscriber).
    pub fn send_with_priority(&self, data: &[u8], priority: PriorityClass) -> Result<()> {
        zerocopy::send_bytes(&self.ring, data, priority)
    }

    /// A writable block of `len` bytes in the ring's arena, to fill in
    /// place and publish with [`Publisher::send_loan`] (no copy on the
    /// publisher's side). `ArenaExhausted` if no block is free,
    /// `TooLarge` over the ring's largest message.
    pub fn loan(&self, len: usize) -> Result<Loan<'_>> {
        Loan::new(&self.ring, len)
    }

    /// Publishes a filled loan; on failure (`Full`) it comes back in the
    /// error, still yours.
    pub fn send_loan<'r>(
        &'r self,
        loan: Loan<'r>,
        priority: PriorityClass,
    ) -> std::result::Result<(), LoanError<'r>> {
        zerocopy::send_loan(&self.ring, loan, priority)
    }

    /// Publishes several messages of one class with one claim; returns how
    /// many were sent (a prefix if the ring filled up; `Full` if none).
    pub fn send_batch(&self, messages: &[&[u8]], priority: PriorityClass) -> Result<usize> {
        self.ring
            .send_inline_with(messages.len(), |i| (messages[i], priority))
    }

    /// Publishes, waiting while the slowest subscriber is a ring behind.
    pub fn send_blocking(&self, data: &[u8]) -> Result<()> {
        self.send_waiting(data, PriorityClass::Normal, Deadline::NEVER)
    }

    /// Publishes, waiting at most `timeout`; `Timeout` means nothing was
    /// sent.
    ///
    /// ```
    /// use std::time::Duration;
    /// use fusion_ring::{Config, Publisher, RingError, Subscriber};
    /// let publisher = Publisher::with_config(&Config::new(2).broadcast(1))?;
    /// let _slow = Subscriber::from_publisher(&publisher)?;
    /// publisher.send(b"a")?;
    /// publisher.send(b"b")?;
    /// let t = Duration::from_millis(5);
    /// assert_eq!(publisher.send_timeout(b"c", t), Err(RingError::Timeout));
    /// # Ok::<(), RingError>(())
    /// ```
    pub fn send_timeout(&self, data: &[u8], timeout: Duration) -> Result<()> {
        self.send_waiting(data, PriorityClass::Normal, Deadline::after(timeout))
    }

    /// Publishes with a priority class, waiting until `deadline`.
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

    /// How many subscribers the ring has now.
    pub fn subscribers(&self) -> usize {
        self.ring.subscribers()
    }

    /// Counters summed over every handle (see [`RingStats`]): `sent` counts
    /// messages published, `received` the copies the subscribers took.
    pub fn stats(&self) -> RingStats {
        self.ring.stats()
    }
}

impl Subscriber {
    /// Subscribes to the named broadcast ring, at its next message
    /// (`TooManySubscribers` past the ring's limit).
    pub fn open(name: &str) -> Result<Self> {
        Self::from_ring(Ring::open(name)?)
    }

    /// Subscribes to the broadcast ring behind `fd`.
    pub fn from_fd(fd: OwnedFd) -> Result<Self> {
        Self::from_ring(Ring::from_fd(fd)?)
    }

    /// A subscriber of `publisher`'s ring, in this process.
    pub fn from_publisher(publisher: &Publisher) -> Result<Self> {
        Self::from_ring(publisher.ring.clone())
    }

    /// Makes `ring`'s handle a subscriber, at the next message:
    /// `WrongShape` for a work queue, `TooManySubscribers` past the ring's
    /// limit.
    pub fn from_ring(ring: Ring) -> Result<Self> {
        let ring = broadcast_ring(ring)?;
        ring.take_role(ROLE_SUBSCRIBER)?;
        Ok(Subscriber { ring })
    }

    /// The low-level view.
    pub fn as_ring(&self) -> &Ring {
        &self.ring
    }

    /// Receives the next message into `buffer`: its length. `Empty` if the
    /// publisher has sent nothing newer; `BufferTooSmall` leaves it
    /// unread; on a ring that overwrites, [`RingError::Lagged`] if the
    /// publisher wrote over messages this subscriber had not read (it then
    /// goes on from the oldest one left).
    pub fn recv(&self, buffer: &mut [u8]) -> Result<usize> {
        self.ring.recv_copy_broadcast(buffer).map(|(n, _, _)| n)
    }

    /// [`Subscriber::recv`], also giving the priority class and the latency
    /// in ticks since it was published.
    pub fn recv_with_meta(&self, buffer: &mut [u8]) -> Result<(usize, PriorityClass, u64)> {
        self.ring.recv_copy_broadcast(buffer)
    }

    /// Receives, waiting for a message; `Disconnected` once the ring has
    /// had a publisher, none is alive, and nothing is left to read.
    pub fn recv_blocking(&self, buffer: &mut [u8]) -> Result<usize> {
        self.recv_waiting(buffer, Deadline::NEVER).map(|(n, _, _)| n)
    }

    /// Receives, waiting at most `timeout`; `Timeout` means nothing was
    /// read.
    pub fn recv_timeout(&self, buffer: &mut [u8], timeout: Duration) -> Result<usize> {
        self.recv_waiting(buffer, Deadline::after(timeout))
            .map(|(n, _, _)| n)
    }

    /// Receives, waiting until `deadline`; gives the length, the class and
    /// the latency.
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

    /// How many published messages this subscriber has not read yet (a
    /// snapshot; on a ring that overwrites, more than the ring holds once
    /// it fell behind).
    pub fn lag(&self) -> u64 {
        self.ring.lag()
    }

    /// Goes back by up to `depth` messages already published, as far as
    /// the ring still holds them: the subscriber then receives those first
    /// (iceoryx2 calls it history). `InvalidConfig` past the ring's
    /// capacity. Called right after joining, it starts the subscriber
    /// `depth` messages back; on a ring that blocks, the publisher then
    /// waits for it as for any subscriber. A history message the publisher
    /// writes over before it is read is reported as [`RingError::Lagged`]
    /// (on either policy: the publisher's room was reckoned before the
    /// subscriber went back).
    ///
    /// ```
    /// use fusion_ring::{Config, Publisher, Subscriber};
    /// let publisher = Publisher::with_config(&Config::new(8).broadcast(2))?;
    /// for tick in 0..5u8 {
    ///     publisher.send(&[tick])?; // nobody subscribed yet
    /// }
    /// let late = Subscriber::from_publisher(&publisher)?.with_history(3)?;
    /// let mut buf = [0u8; 40];
    /// for tick in 2..5u8 {
    ///     assert_eq!((late.recv(&mut buf)?, buf[0]), (1, tick));
    /// }
    /// # Ok::<(), fusion_ring::RingError>(())
    /// ```
    pub fn with_history(self, depth: usize) -> Result<Self> {
        self.ring.rewind(depth)?;
        Ok(self)
    }

    /// How many messages this subscriber lost to a publisher that
    /// overwrites ([`crate::Overflow::Overwrite`]): the sum of the
    /// `missed` of every [`RingError::Lagged`] it got.
    pub fn missed(&self) -> u64 {
        self.ring.messages_missed()
    }
}

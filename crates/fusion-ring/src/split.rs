//! [`Producer`] and [`Consumer`]: a ring's two sides as handles of their
//! own, in the shape of rtrb's: one only sends, the other only receives,
//! and neither is `Clone`. On a ring with a single producer (consumer,
//! [`Config::single_producer`]) the handle takes its role when it is made,
//! so a second one fails then, not at its first send, with
//! [`crate::RingError::RoleTaken`] naming the holder's process; dropping it
//! gives the role back.
//!
//! In one process, [`FusionRing::split`] makes both over a new anonymous
//! ring; across processes each side makes its own from a named ring or an
//! fd ([`FusionRing::into_producer`], [`FusionRing::into_consumer`]).
//!
//! A forked child that uses an inherited `Producer` is another handle (its
//! own participant entry): on a single-producer ring its sends fail while
//! the parent's handle holds the role.

use std::os::fd::BorrowedFd;
use std::time::{Duration, Instant};

use crate::batch::BatchMessage;
use crate::error::Result;
use crate::fusion::FusionRing;
use crate::handle::participant::{ROLE_RECEIVER, ROLE_SENDER};
use crate::priority::PriorityClass;
use crate::ring::{Ring, RingStats};
use crate::shm::config::Config;
use crate::sync::RingSync;
use crate::zerocopy::{Loan, LoanError, Payload};

/// The sending side of a ring: every send of [`FusionRing`], nothing that
/// receives. Not `Clone`.
///
/// ```
/// use fusion_ring::{Config, FusionRing, RingError};
/// let (tx, rx) = FusionRing::split(&Config::new(64))?;
/// tx.send(b"hello")?;
/// let mut buf = [0u8; 64];
/// assert_eq!(rx.recv(&mut buf)?, 5);
/// // The ring has one producer: a second one is refused at once.
/// let again = FusionRing::from_fd(tx.as_fd().try_clone_to_owned().unwrap())?;
/// assert!(matches!(again.into_producer(), Err(RingError::RoleTaken { .. })));
/// # Ok::<(), RingError>(())
/// ```
///
/// There is one: it cannot be cloned.
///
/// ```compile_fail
/// let (tx, _rx) = fusion_ring::FusionRing::split(&fusion_ring::Config::new(8)).unwrap();
/// let second = tx.clone();
/// ```
#[derive(Debug)]
pub struct Producer {
    ring: FusionRing,
}

/// The receiving side of a ring: every receive of [`FusionRing`], nothing
/// that sends. Not `Clone`.
#[derive(Debug)]
pub struct Consumer {
    ring: FusionRing,
}

impl FusionRing {
    /// A new anonymous ring with one producer and one consumer (`config`
    /// with [`Config::single_producer`] and [`Config::single_consumer`]
    /// set), as its two sides. Hand the ring to another process with
    /// [`Producer::as_fd`] / [`Consumer::as_fd`], or `fork`.
    pub fn split(config: &Config) -> Result<(Producer, Consumer)> {
        let config = config.clone().single_producer(true).single_consumer(true);
        let ring = FusionRing::with_config(&config)?;
        let consumer = ring.clone().into_consumer()?;
        Ok((ring.into_producer()?, consumer))
    }

    /// This handle as the ring's sending side, taking the producer role now
    /// on a single-producer ring ([`crate::RingError::RoleTaken`] if a live
    /// handle has it).
    pub fn into_producer(self) -> Result<Producer> {
        self.as_ring().take_role(ROLE_SENDER)?;
        Ok(Producer { ring: self })
    }

    /// This handle as the ring's receiving side, taking the consumer role
    /// now on a single-consumer ring.
    pub fn into_consumer(self) -> Result<Consumer> {
        self.as_ring().take_role(ROLE_RECEIVER)?;
        Ok(Consumer { ring: self })
    }
}

/// Methods both sides share.
macro_rules! common {
    ($t:ty) => {
        impl $t {
            /// The segment's file descriptor, to hand to another process.
            pub fn as_fd(&self) -> BorrowedFd<'_> {
                self.ring.as_fd()
            }

            /// The low-level view.
            pub fn as_ring(&self) -> &Ring {
                self.ring.as_ring()
            }

            /// The blocking primitives.
            pub fn sync(&self) -> RingSync<'_> {
                self.ring.sync()
            }

            /// Largest message this ring carries.
            pub fn max_message(&self) -> usize {
                self.ring.max_message()
            }

            /// The ring's statistics (every process's, see [`FusionRing::stats`]).
            pub fn stats(&self) -> RingStats {
                self.ring.stats()
            }
        }
    };
}
common!(Producer);
common!(Consumer);

impl Producer {
    /// [`FusionRing::send`].
    pub fn send(&self, data: &[u8]) -> Result<()> {
        self.ring.send(data)
    }

    /// [`FusionRing::send_with_priority`].
    pub fn send_with_priority(&self, data: &[u8], priority: PriorityClass) -> Result<()> {
        self.ring.send_with_priority(data, priority)
    }

    /// [`FusionRing::send_blocking`].
    pub fn send_blocking(&self, data: &[u8]) -> Result<()> {
        self.ring.send_blocking(data)
    }

    /// [`FusionRing::send_blocking_with_priority`].
    pub fn send_blocking_with_priority(&self, data: &[u8], priority: PriorityClass) -> Result<()> {
        self.ring.send_blocking_with_priority(data, priority)
    }

    /// [`FusionRing::send_with_timeout`].
    pub fn send_with_timeout(&self, data: &[u8], timeout: Duration) -> Result<()> {
        self.ring.send_with_timeout(data, timeout)
    }

    /// [`FusionRing::send_deadline`].
    pub fn send_deadline(&self, data: &[u8], priority: PriorityClass, deadline: Instant) -> Result<()> {
        self.ring.send_deadline(data, priority, deadline)
    }

    /// [`FusionRing::loan`].
    pub fn loan(&self, len: usize) -> Result<Loan<'_>> {
        self.ring.loan(len)
    }

    /// [`FusionRing::send_loan`].
    pub fn send_loan<'r>(
        &'r self,
        loan: Loan<'r>,
        priority: PriorityClass,
    ) -> std::result::Result<(), LoanError<'r>> {
        self.ring.send_loan(loan, priority)
    }

    /// [`FusionRing::forward`].
    pub fn forward(&self, payload: &Payload, priority: PriorityClass) -> Result<()> {
        self.ring.forward(payload, priority)
    }

    /// [`FusionRing::send_batch`].
    pub fn send_batch(&self, messages: &[BatchMessage<'_>]) -> Result<usize> {
        self.ring.send_batch(messages)
    }
}

impl Consumer {
    /// [`FusionRing::recv`].
    pub fn recv(&self, buffer: &mut [u8]) -> Result<usize> {
        self.ring.recv(buffer)
    }

    /// [`FusionRing::recv_with_meta`].
    pub fn recv_with_meta(&self, buffer: &mut [u8]) -> Result<(usize, PriorityClass, u64)> {
        self.ring.recv_with_meta(buffer)
    }

    /// [`FusionRing::recv_zerocopy`].
    pub fn recv_zerocopy(&self) -> Result<Payload> {
        self.ring.recv_zerocopy()
    }

    /// [`FusionRing::recv_batch`].
    pub fn recv_batch(&self, out: &mut Vec<Payload>, max: usize) -> Result<usize> {
        self.ring.recv_batch(out, max)
    }

    /// [`FusionRing::recv_blocking`].
    pub fn recv_blocking(&self, buffer: &mut [u8]) -> Result<usize> {
        self.ring.recv_blocking(buffer)
    }

    /// [`FusionRing::recv_blocking_with_meta`].
    pub fn recv_blocking_with_meta(
        &self,
        buffer: &mut [u8],
    ) -> Result<(usize, PriorityClass, u64)> {
        self.ring.recv_blocking_with_meta(buffer)
    }

    /// [`FusionRing::recv_with_timeout`].
    pub fn recv_with_timeout(&self, buffer: &mut [u8], timeout: Duration) -> Result<usize> {
        self.ring.recv_with_timeout(buffer, timeout)
    }

    /// [`FusionRing::recv_deadline`].
    pub fn recv_deadline(
        &self,
        buffer: &mut [u8],
        deadline: Instant,
    ) -> Result<(usize, PriorityClass, u64)> {
        self.ring.recv_deadline(buffer, deadline)
    }

    /// [`FusionRing::recv_zerocopy_blocking`].
    pub fn recv_zerocopy_blocking(&self) -> Result<Payload> {
        self.ring.recv_zerocopy_blocking()
    }

    /// [`FusionRing::recv_zerocopy_timeout`].
    pub fn recv_zerocopy_timeout(&self, timeout: Duration) -> Result<Payload> {
        self.ring.recv_zerocopy_timeout(timeout)
    }

    /// [`FusionRing::recv_zerocopy_deadline`].
    pub fn recv_zerocopy_deadline(&self, deadline: Instant) -> Result<Payload> {
        self.ring.recv_zerocopy_deadline(deadline)
    }
}

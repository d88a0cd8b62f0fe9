//! What goes into a slot and what comes out of one.

use crate::clock::Clock;
use crate::lockfree::arena::Descriptor;
use crate::lockfree::protocol::PAYLOAD_WORDS;
use crate::priority::PriorityClass;
use crate::shm::layout::SLOT_PAYLOAD;

/// One message taken by a batch receive.
///
/// ```
/// use fusion_ring::{InlineMessage, PriorityClass, UltraFastRing};
/// let ring = UltraFastRing::new(8)?;
/// ring.send_batch(&[b"a".as_slice(), b"bc"], PriorityClass::Low)?;
/// let mut out = [InlineMessage::default(); 4];
/// let n = ring.recv_batch(&mut out)?;
/// assert_eq!(n, 2);
/// assert_eq!(out[1].as_bytes(), b"bc");
/// assert_eq!(out[1].priority(), PriorityClass::Low);
/// # Ok::<(), fusion_ring::RingError>(())
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct InlineMessage {
    pub(crate) data: [u8; SLOT_PAYLOAD],
    pub(crate) len: u8,
    pub(crate) priority: PriorityClass,
    pub(crate) latency_cycles: u64,
}

impl Default for InlineMessage {
    fn default() -> Self {
        Self {
            data: [0; SLOT_PAYLOAD],
            len: 0,
            priority: PriorityClass::Normal,
            latency_cycles: 0,
        }
    }
}

impl InlineMessage {
    /// The message bytes.
    pub fn as_bytes(&self) -> &[u8] {
        &self.data[..self.len as usize]
    }
    /// Length in bytes.
    pub fn len(&self) -> usize {
        self.len as usize
    }
    /// Whether the message is empty.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }
    /// Its priority class.
    pub fn priority(&self) -> PriorityClass {
        self.priority
    }
    /// Ticks from send to receive.
    pub fn latency_cycles(&self) -> u64 {
        self.latency_cycles
    }
}

/// A message to put into a slot (sizes already checked by the caller).
#[derive(Clone, Copy)]
pub(crate) enum Outgoing<'m> {
    Inline(&'m [u8]),
    Block(Descriptor),
}

impl<'m> Outgoing<'m> {
    /// The block if there is one, else the bytes inline.
    pub(crate) fn inline_or(block: Option<Descriptor>, data: &'m [u8]) -> Self {
        block.map_or(Outgoing::Inline(data), Outgoing::Block)
    }
}

/// The body of a received message.
pub(crate) enum Body {
    Inline([u64; PAYLOAD_WORDS]),
    /// A checked block: this receiver now holds the message's reference.
    Block(Descriptor),
    /// A broadcast ring's block, copied out (`ring::broadcast`).
    Copied(Box<[u8]>),
}

/// A message taken out of the ring.
pub(crate) struct Received {
    pub(crate) body: Body,
    pub(crate) len: usize,
    pub(crate) priority: PriorityClass,
    pub(crate) latency: Option<u64>,
}

/// Ticks since `stamp` (`None` for an unstamped message), reading the
/// clock unless the caller already has `now`.
#[inline(always)]
pub(crate) fn latency_since(stamp: u64, now: Option<u64>) -> Option<u64> {
    (stamp != 0).then(|| now.unwrap_or_else(Clock::now).saturating_sub(stamp))
}

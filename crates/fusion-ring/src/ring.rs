//! [`Ring`]: one handle on a segment, the layer every ring type is built on.

use core::cell::Cell;
use core::marker::PhantomData;
use core::ptr::NonNull;
use std::os::fd::{BorrowedFd, OwnedFd};
use std::sync::Arc;

use crate::atomic::Ordering;
use crate::error::CorruptError;
use crate::layout::{pack_meta, FLAG_NO_TIMESTAMPS, unpack_meta, ParticipantEntry, SlotKind, SLOT_PAYLOAD};
use crate::participant::{self, ROLE_RECEIVER, ROLE_SENDER};
use crate::protocol::{pack_payload, unpack_payload, unpack_payload_into, ClaimError, RingCore, SlotContent};
use crate::segment::Segment;
use crate::stats::{aggregate, LaneStats, StatsWriter};
use crate::{Clock, Config, PriorityClass, Result, RingError, INLINE_MAX};

/// The low-level view of a ring: one handle on a shared segment.
///
/// A handle is `Send` but not `Sync`: give each thread its own with
/// [`Clone`] (each clone registers as a participant and keeps its own stats
/// lanes in the segment, which is what lets the hot path update statistics
/// without atomic read-modify-write).
///
/// ```
/// use fusion_ring::{send_inline, Ring};
/// let ring = Ring::new(256)?;
/// send_inline(&ring, b"hello")?;
/// let stats = ring.stats();
/// assert_eq!((stats.head, stats.tail), (1, 0));
/// assert_eq!((stats.inline_count, stats.zerocopy_count), (1, 0));
/// # Ok::<(), fusion_ring::RingError>(())
/// ```
pub struct Ring {
    core: RingCore,
    entry: NonNull<ParticipantEntry>,
    entry_index: usize,
    shared_stats: bool,
    owner_pid: u32,
    /// Producers stamp messages (header flag, fixed at creation).
    timestamps: bool,
    roles: Cell<u32>,
    segment: Arc<Segment>,
    _not_sync: PhantomData<Cell<()>>,
}

// SAFETY: the raw pointers point into `segment`, which the handle keeps alive
// through its Arc; nothing in the handle is tied to the creating thread.
unsafe impl Send for Ring {}

/// Head/tail positions and message counts of a ring.
///
/// `head` is the next position producers will claim, `tail` the next one
/// consumers will claim: `head - tail` messages are queued.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RingStats {
    /// Next position a producer will claim (= messages ever claimed for send).
    pub head: u64,
    /// Next position a consumer will claim (= messages ever claimed for receive).
    pub tail: u64,
    /// Messages sent inline.
    pub inline_count: u64,
    /// Messages sent zero-copy.
    pub zerocopy_count: u64,
    /// Slots in the ring.
    pub capacity: u64,
}

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
    data: [u8; SLOT_PAYLOAD],
    len: u8,
    priority: PriorityClass,
    latency_cycles: u64,
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

/// A slot's content, checked.
enum Decoded {
    Inline { len: usize, priority: PriorityClass },
    Tombstone,
    Bad(String),
}

/// Fast path of [`decode`]: a well-formed inline slot.
#[inline(always)]
fn decode(c: &SlotContent) -> Decoded {
    let (len, kind, prio) = unpack_meta(c.meta);
    if kind == SlotKind::Inline as u8 && len as usize <= INLINE_MAX {
        if let Some(priority) = PriorityClass::from_u8(prio) {
            return Decoded::Inline {
                len: len as usize,
                priority,
            };
        }
    }
    decode_unusual(c)
}

#[cold]
#[inline(never)]
fn decode_unusual(c: &SlotContent) -> Decoded {
    let (len, kind, prio) = unpack_meta(c.meta);
    let Some(priority) = PriorityClass::from_u8(prio) else {
        return Decoded::Bad(format!("slot priority {prio} is not one of the 5 classes"));
    };
    match SlotKind::from_u8(kind) {
        Some(SlotKind::Inline) if len as usize <= INLINE_MAX => Decoded::Inline {
            len: len as usize,
            priority,
        },
        Some(SlotKind::Inline) => {
            Decoded::Bad(format!("inline slot length {len} exceeds {INLINE_MAX}"))
        }
        Some(SlotKind::Tombstone) => Decoded::Tombstone,
        Some(SlotKind::ZeroCopy) => {
            Decoded::Bad("zero-copy slot on a ring without an arena".into())
        }
        None => Decoded::Bad(format!("slot kind {kind} is unknown")),
    }
}

/// Ticks since `stamp` (`None` for an unstamped message), reading the
/// clock unless the caller already has `now`.
#[inline(always)]
fn latency_since(stamp: u64, now: Option<u64>) -> Option<u64> {
    (stamp != 0).then(|| now.unwrap_or_else(Clock::now).saturating_sub(stamp))
}

impl Ring {
    /// A new ring of `capacity` slots (power of two, 2..=2^24) in an
    /// anonymous shared-memory segment (memfd), shareable with children
    /// (fork) and other processes (see [`Ring::as_fd`]).
    pub fn new(capacity: usize) -> Result<Self> {
        Self::with_config(&Config::new(capacity))
    }

    /// A new anonymous ring (memfd) with the given [`Config`] (its mode and
    /// unlink options only matter for named rings).
    pub fn with_config(config: &Config) -> Result<Self> {
        Ok(Self::from_segment(Arc::new(Segment::create_anonymous(
            config,
        )?)))
    }

    /// Creates a named ring under `/dev/shm` (`O_EXCL`: fails with
    /// [`RingError::AlreadyExists`] if the name is taken).
    pub fn create(name: &str, config: &Config) -> Result<Self> {
        Ok(Self::from_segment(Arc::new(Segment::create_named(
            name, config,
        )?)))
    }

    /// Opens a named ring created by another handle or process.
    pub fn open(name: &str) -> Result<Self> {
        Ok(Self::from_segment(Arc::new(Segment::open_named(name)?)))
    }

    /// Adopts a ring from a file descriptor (from [`Ring::as_fd`] in another
    /// process, received over a Unix socket or inherited).
    pub fn from_fd(fd: OwnedFd) -> Result<Self> {
        Ok(Self::from_segment(Arc::new(Segment::from_fd(fd)?)))
    }

    /// The segment's file descriptor, to hand to another process.
    pub fn as_fd(&self) -> BorrowedFd<'_> {
        self.segment.fd()
    }

    /// The segment's name (`/name`), `memfd`, or `fd N` for an adopted fd.
    pub fn label(&self) -> &str {
        self.segment.label()
    }

    /// Number of slots.
    pub fn capacity(&self) -> usize {
        self.segment.geometry().capacity
    }

    /// Messages queued (a snapshot).
    pub fn len(&self) -> usize {
        self.core.len() as usize
    }

    /// Whether no message is queued (a snapshot).
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Head/tail positions and inline/zero-copy counts.
    pub fn stats(&self) -> RingStats {
        let ctrl = self.core.ctrl();
        let lanes = self.lane_stats();
        RingStats {
            // Relaxed: a statistics snapshot.
            head: ctrl.producer_head.value.load(Ordering::Relaxed),
            tail: ctrl.consumer_head.value.load(Ordering::Relaxed),
            inline_count: lanes.iter().map(|l| l.inline_sent).sum(),
            zerocopy_count: lanes.iter().map(|l| l.zerocopy_sent).sum(),
            capacity: self.core.capacity(),
        }
    }

    /// Counters of the five lanes, summed over every participant.
    pub fn lane_stats(&self) -> [LaneStats; 5] {
        aggregate(self.segment.participants())
    }

    fn from_segment(segment: Arc<Segment>) -> Self {
        let g = *segment.geometry();
        // SAFETY: the control block and `capacity` slots lie inside the
        // segment's mapping, which `segment` (kept in self) keeps alive.
        let core = unsafe { RingCore::new(segment.control(), segment.slots(), g.capacity as u64) };
        let (entry_index, shared_stats) = participant::register(segment.participants());
        let entry = NonNull::from(&segment.participants()[entry_index]);
        Ring {
            core,
            entry,
            entry_index,
            shared_stats,
            owner_pid: participant::current_pid(),
            timestamps: segment.flags() & FLAG_NO_TIMESTAMPS == 0,
            roles: Cell::new(0),
            segment,
            _not_sync: PhantomData,
        }
    }

    #[inline(always)]
    fn stats_writer(&self) -> StatsWriter<'_> {
        StatsWriter {
            // SAFETY: `entry` points into the mapping kept alive by `segment`.
            entry: unsafe { self.entry.as_ref() },
            shared: self.shared_stats,
        }
    }

    #[cold]
    fn note_role(&self, role: u32) {
        self.roles.set(self.roles.get() | role);
        // SAFETY: as in `stats_writer`.
        let e = unsafe { self.entry.as_ref() };
        e.id.role.fetch_or(role, Ordering::Relaxed);
    }

    pub(crate) fn corrupt(&self, what: String) -> RingError {
        RingError::Corrupt(CorruptError::new(self.segment.label(), what))
    }

    fn claim_error(&self, e: ClaimError) -> RingError {
        match e {
            ClaimError::Full => RingError::Full,
            ClaimError::Empty => RingError::Empty,
            ClaimError::TooSmall { needed } => RingError::BufferTooSmall { needed, got: 0 },
            ClaimError::Corrupt { pos, seq } => self.corrupt(format!(
                "slot sequence {seq} contradicts head position {pos}"
            )),
        }
    }

    /// Sends `n` inline messages with one claim; `msg(i)` gives the i-th.
    /// All are checked before anything is claimed. Returns how many were
    /// sent (fewer than `n` if the ring filled up; `Full` if none fitted).
    #[inline(always)]
    pub(crate) fn send_inline_with<'m>(
        &self,
        n: usize,
        msg: impl Fn(usize) -> (&'m [u8], PriorityClass),
    ) -> Result<usize> {
        if n == 0 {
            return Ok(0);
        }
        for i in 0..n {
            let len = msg(i).0.len();
            if len > INLINE_MAX {
                return Err(RingError::TooLarge {
                    len,
                    max: INLINE_MAX,
                });
            }
        }
        if self.roles.get() & ROLE_SENDER == 0 {
            self.note_role(ROLE_SENDER);
        }
        let claim = self
            .core
            .claim_send(n as u64)
            .map_err(|e| self.claim_error(e))?;
        let stamp = if self.timestamps { Clock::now() } else { 0 };
        let stats = self.stats_writer();
        for k in 0..claim.count {
            let (data, priority) = msg(k as usize);
            let meta = pack_meta(data.len() as u32, SlotKind::Inline, priority as u8);
            self.core
                .publish(claim.pos + k, stamp, meta, &pack_payload(data));
            stats.record_send(priority.lane(), 1, data.len() as u64, false);
        }
        Ok(claim.count as usize)
    }

    /// Receives one inline message into `buf`.
    #[inline(always)]
    pub(crate) fn recv_inline(&self, buf: &mut [u8]) -> Result<(usize, PriorityClass, u64)> {
        if self.roles.get() & ROLE_RECEIVER == 0 {
            self.note_role(ROLE_RECEIVER);
        }
        loop {
            let limit = (buf.len() < INLINE_MAX).then_some(buf.len());
            let claim = self.core.claim_recv(1, limit).map_err(|e| match e {
                ClaimError::TooSmall { needed } => RingError::BufferTooSmall {
                    needed,
                    got: buf.len(),
                },
                e => self.claim_error(e),
            })?;
            let content = self.core.read(claim.pos);
            self.core.release(claim.pos);
            match decode(&content) {
                // The length was checked against `buf` before the claim, but
                // a scribbling peer may have changed it since.
                Decoded::Inline { len, .. } if len > buf.len() => {
                    return Err(self.corrupt(format!(
                        "at position {}: length changed to {len} while being received",
                        claim.pos
                    )))
                }
                Decoded::Inline { len, priority } => {
                    unpack_payload_into(&content.payload, &mut buf[..len]);
                    let latency = latency_since(content.stamp, None);
                    self.stats_writer()
                        .record_recv(priority.lane(), len as u64, latency);
                    return Ok((len, priority, latency.unwrap_or(0)));
                }
                Decoded::Tombstone => continue,
                Decoded::Bad(what) => {
                    return Err(self.corrupt(format!("at position {}: {what}", claim.pos)))
                }
            }
        }
    }

    /// Receives up to `out.len()` inline messages with one claim.
    pub(crate) fn recv_inline_batch(&self, out: &mut [InlineMessage]) -> Result<usize> {
        if out.is_empty() {
            return Ok(0);
        }
        if self.roles.get() & ROLE_RECEIVER == 0 {
            self.note_role(ROLE_RECEIVER);
        }
        let claim = self
            .core
            .claim_recv(out.len() as u64, None)
            .map_err(|e| self.claim_error(e))?;
        let now = self.timestamps.then(Clock::now);
        let stats = self.stats_writer();
        let mut n = 0;
        let mut bad = None;
        for k in 0..claim.count {
            let content = self.core.read(claim.pos + k);
            // Every claimed slot is released, whatever it held.
            self.core.release(claim.pos + k);
            match decode(&content) {
                Decoded::Inline { len, priority } => {
                    let latency = latency_since(content.stamp, now);
                    out[n] = InlineMessage {
                        data: unpack_payload(&content.payload),
                        len: len as u8,
                        priority,
                        latency_cycles: latency.unwrap_or(0),
                    };
                    stats.record_recv(priority.lane(), len as u64, latency);
                    n += 1;
                }
                Decoded::Tombstone => {}
                Decoded::Bad(what) => bad = Some(format!("at position {}: {what}", claim.pos + k)),
            }
        }
        match (n, bad) {
            (0, Some(what)) => Err(self.corrupt(what)),
            (0, None) => Err(RingError::Empty),
            (n, _) => Ok(n),
        }
    }
}

impl Clone for Ring {
    /// Another handle on the same ring, with its own participant entry.
    fn clone(&self) -> Self {
        Self::from_segment(Arc::clone(&self.segment))
    }
}

impl Drop for Ring {
    fn drop(&mut self) {
        // A forked child holds a copy of its parent's handle: only the
        // process that registered the entry may fold and free it.
        if participant::current_pid() == self.owner_pid {
            participant::unregister(self.segment.participants(), self.entry_index);
        }
    }
}

impl AsRef<Ring> for Ring {
    fn as_ref(&self) -> &Ring {
        self
    }
}

impl core::fmt::Debug for Ring {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("Ring")
            .field("segment", &self.segment.label())
            .field("capacity", &self.capacity())
            .field("len", &self.len())
            .finish()
    }
}
